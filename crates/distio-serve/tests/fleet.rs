//! The loopback fleets of `common::fleet`: in-process servers with their own capacities, and
//! server processes that die with SIGKILL (slaves included) and come back on their port.

mod common;

use common::fleet::{Fleet, ProcessFleet};
use common::{Client, within};
use distio_proto::remote::{ClientEvent, ClientSession, SessionCodec};
use std::net::SocketAddr;

/// The capacity a server announces in its welcome.
async fn announced_capacity(addr: SocketAddr) -> u32 {
    let mut client = Client {
        ws: Client::connect_raw(addr).await,
        session: ClientSession::new(SessionCodec::new()),
    };
    let open = client.session.open("fleet-test").unwrap();
    client.send(open).await;
    let capacity = match client.event().await {
        ClientEvent::Welcomed(welcome) => welcome.capacity,
        other => panic!("expected a welcome from {addr}, got {other:?}"),
    };
    client.close().await;
    capacity
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_fleet_has_one_capacity_per_server_and_stops() {
    let mut fleet = Fleet::start(&[1, 2, 3]).await;
    let urls = fleet.urls();
    assert_eq!(urls.len(), 3);
    for (i, cap) in [1, 2, 3].into_iter().enumerate() {
        assert_eq!(urls[i], format!("ws://{}", fleet.addr(i)));
        assert_eq!(announced_capacity(fleet.addr(i)).await, cap, "server {i}");
    }
    fleet.stop(1).await;
    assert!(fleet.server(1).is_none());
    assert!(
        within(tokio::net::TcpStream::connect(fleet.addr(1)))
            .await
            .is_err(),
        "a stopped server refuses"
    );
    assert_eq!(announced_capacity(fleet.addr(2)).await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_killed_takes_its_slaves_and_restarts_on_its_port() {
    let mut fleet = ProcessFleet::start(&[2, 3]);
    assert_eq!(fleet.len(), 2);
    assert_eq!(announced_capacity(fleet.addr(1)).await, 3);

    let mut client = Client::connect(fleet.addr(0)).await;
    let channel = client.spawn("sleep.sh", &[]).await;
    let slave = client.spawned(channel).await.pid;
    let server = fleet.pid(0).expect("running");
    let addr = fleet.addr(0);

    let tree = common::fleet::descendants(server);
    assert!(tree.contains(&slave), "{slave} below {server}: {tree:?}");

    fleet.kill9(0);
    assert!(common::process_gone(server));
    for pid in tree {
        assert!(common::wait_gone(pid).await, "{pid} outlived its host");
    }
    // The session ends (closed or reset), with no word from the server.
    let ended = within(async {
        loop {
            use futures_util::StreamExt;
            match client.ws.next().await {
                None | Some(Err(_)) => break,
                Some(Ok(_)) => continue,
            }
        }
    });
    ended.await;
    assert!(
        within(tokio::net::TcpStream::connect(addr)).await.is_err(),
        "a killed server's port refuses"
    );

    fleet.restart(0);
    assert_eq!(fleet.addr(0), addr, "back on its port");
    assert_eq!(announced_capacity(addr).await, 2);
    let pids = [fleet.pid(0).unwrap(), fleet.pid(1).unwrap()];
    drop(fleet);
    for pid in pids {
        assert!(common::process_gone(pid), "server {pid} outlived the fleet");
    }
}

//! Both sides of a session brought to each of their phases, so a test can feed them
//! messages wherever they are.

use distio_proto::remote::{
    ClientEvent, ClientSession, CloseReason, ExitCause, Exited, ResumeToken, ServerEvent,
    ServerSession, SessionCodec, Spawn, Spawned, Welcome,
};

/// The channel limit of the servers built here.
pub const MAX_CHANNELS: usize = 4;

/// A master and a server through the handshake.
pub fn open_pair() -> (ClientSession, ServerSession) {
    let mut client = ClientSession::new(SessionCodec::new());
    let mut server = ServerSession::new(SessionCodec::new(), MAX_CHANNELS);
    let open = client.open("test").unwrap();
    assert!(matches!(
        server.receive(&open).unwrap(),
        ServerEvent::Opened(_)
    ));
    let welcome = server.welcome(&Welcome::new("host", 1, 8)).unwrap();
    assert!(matches!(
        client.receive(&welcome).unwrap(),
        ClientEvent::Welcomed(_)
    ));
    (client, server)
}

/// An open pair with channel 1 ended, 2 running and 3 starting, on both sides.
pub fn busy_pair() -> (ClientSession, ServerSession) {
    let (mut client, mut server) = open_pair();
    for _ in 0..3 {
        let (_, spawn) = client.spawn(Spawn::new(0, 1, "s.sh")).unwrap();
        assert!(matches!(
            server.receive(&spawn).unwrap(),
            ServerEvent::Spawn(_)
        ));
    }
    for channel in [1, 2] {
        let spawned = server
            .spawned(Spawned {
                channel,
                pid: 100 + channel,
                server_id: channel.into(),
            })
            .unwrap();
        client.receive(&spawned).unwrap();
    }
    let exited = server
        .exited(Exited {
            channel: 1,
            code: Some(0),
            signal: None,
            cause: ExitCause::Exited,
        })
        .unwrap();
    client.receive(&exited).unwrap();
    assert_eq!((client.live_channels(), server.live_channels()), (2, 2));
    (client, server)
}

/// An open pair whose master has received the session's resume token.
pub fn token_pair() -> (ClientSession, ServerSession) {
    let (mut client, server) = busy_pair();
    let token = server
        .resume_token(&ResumeToken {
            token: [7; 32],
            grace_ms: 1_000,
        })
        .unwrap();
    assert!(matches!(
        client.receive(&token).unwrap(),
        ClientEvent::ResumeToken(_)
    ));
    (client, server)
}

/// A master in each of its phases: new, opening, open (busy), open with its resume token,
/// resuming (a resume sent, no answer yet), closed.
pub fn clients() -> Vec<(&'static str, ClientSession)> {
    let fresh = || ClientSession::new(SessionCodec::new());
    let mut opening = fresh();
    opening.open("test").unwrap();
    let mut resuming = token_pair().0;
    resuming.resume([7; 32], 1, 0).unwrap();
    let mut closed = busy_pair().0;
    closed.close(CloseReason::Done, "bye").unwrap();
    vec![
        ("new", fresh()),
        ("opening", opening),
        ("open", busy_pair().0),
        ("open with its token", token_pair().0),
        ("resuming", resuming),
        ("closed", closed),
    ]
}

/// A server in each of its phases: awaiting open, opened (welcome not sent), open (busy),
/// closed.
pub fn servers() -> Vec<(&'static str, ServerSession)> {
    let fresh = || ServerSession::new(SessionCodec::new(), MAX_CHANNELS);
    let mut opened = fresh();
    let open = ClientSession::new(SessionCodec::new()).open("t").unwrap();
    opened.receive(&open).unwrap();
    let mut closed = busy_pair().1;
    closed.close(CloseReason::Done, "bye").unwrap();
    vec![
        ("awaiting open", fresh()),
        ("opened", opened),
        ("open", busy_pair().1),
        ("closed", closed),
    ]
}

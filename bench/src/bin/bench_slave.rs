//! The benchmark's distio slave: serves `echo` (bytes in, the same bytes out) and `noop`
//! on one thread, like the floor's child. A binary of its own, linking only the slave
//! runtime, so what the memory scenario reads is a slave's footprint.

use distio_slave::SlaveProcess;
use serde_bytes::ByteBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return ExitCode::FAILURE;
    };
    let served = runtime.block_on(async {
        SlaveProcess::new()
            .task("echo", |data: ByteBuf, _| async move { Ok(data) })
            .task("noop", |_: (), _| async { Ok(()) })
            .serve()
            .await
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bench slave: {err}");
            ExitCode::FAILURE
        }
    }
}

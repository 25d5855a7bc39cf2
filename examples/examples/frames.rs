//! Encodes a request frame, prints its bytes, and decodes it back.
//!
//! Run with `cargo run -p distio-examples --example frames`.

use bytes::BytesMut;
use distio_proto::{Frame, FrameCodec, Metadata, Payload, ProtoError, Request};
use tokio_util::codec::{Decoder, Encoder};

fn main() -> Result<(), ProtoError> {
    let frame = Frame::Request(Request {
        id: 1,
        task: "say hello".into(),
        payload: Payload::encode("world")?,
        meta: Metadata::new().with_timeout(std::time::Duration::from_millis(1500)),
    });
    let mut codec = FrameCodec::new();
    let mut wire = BytesMut::new();
    codec.encode(&frame, &mut wire)?;
    println!("{} bytes on the wire:", wire.len());
    for row in wire.chunks(16) {
        let hex: Vec<String> = row.iter().map(|b| format!("{b:02x}")).collect();
        println!("  {}", hex.join(" "));
    }
    let back = codec.decode(&mut wire)?.expect("one whole frame");
    println!("decoded back: {back:?}");
    assert_eq!(back, frame);
    Ok(())
}

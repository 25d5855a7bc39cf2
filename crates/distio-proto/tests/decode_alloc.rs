//! Decoding a session message or a slave frame body never asks for a buffer larger than
//! the message: every length and count in it is checked against the bytes present before
//! anything is allocated for it.
//!
//! A counting allocator records the largest single allocation each thread makes, so the
//! decode of one message is measured alone even while other tests run.

#![allow(unsafe_code)] // the counting allocator below; it only forwards to `System`

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::Bytes;
use common::{clients, frame, servers, session_frame};
use distio_proto::FrameCodec;
use distio_proto::remote::SessionCodec;
use proptest::prelude::*;

struct Largest;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    // `try_with`: nothing to record while the thread's storage is being torn down.
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

// SAFETY: every call is forwarded unchanged to the system allocator; `note` only updates a
// thread-local counter and never allocates.
unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which is `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: `ptr` and `layout` came from this allocator, that is from `System`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as for `realloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Largest = Largest;

/// The largest single allocation `f` makes on this thread.
fn largest_allocation(f: impl FnOnce()) -> usize {
    LARGEST.with(|l| l.set(0));
    f();
    LARGEST.with(Cell::get)
}

/// What decoding `message` may ask for at most: its own length, or a small fixed amount
/// (error messages, the first few elements of a list) for a tiny message.
fn allowed(message: &[u8]) -> usize {
    message.len().max(1024)
}

/// `bytes` with eight of them, after the first four (a tag), replaced by `len` as a
/// little-endian `u64`: where a string, list or byte string's length sits, a forged one.
fn forge(mut bytes: Vec<u8>, at: prop::sample::Index, len: u64) -> Bytes {
    if bytes.len() >= 4 + 8 {
        let i = 4 + at.index(bytes.len() - 4 - 8 + 1);
        bytes[i..i + 8].copy_from_slice(&len.to_le_bytes());
    }
    Bytes::from(bytes)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn forged_lengths_in_slave_frames_allocate_no_more_than_the_body(
        f in frame(),
        at in any::<prop::sample::Index>(),
        len in any::<u64>(),
    ) {
        let mut body = bytes::BytesMut::new();
        FrameCodec::new().encode_body(&f, &mut body).unwrap();
        let body = forge(body.to_vec(), at, len);
        let used = largest_allocation(|| {
            let _ = FrameCodec::new().decode_body(&body);
            let _ = FrameCodec::new().decode_body_bytes(&body);
        });
        prop_assert!(used <= allowed(&body), "{used} bytes for a body of {}", body.len());
    }

    #[test]
    fn forged_lengths_allocate_no_more_than_the_message(
        f in session_frame(),
        at in any::<prop::sample::Index>(),
        len in any::<u64>(),
    ) {
        let message = forge(SessionCodec::new().encode(&f).unwrap().to_vec(), at, len);
        let (mut clients, mut servers) = (clients(), servers());
        let used = largest_allocation(|| {
            let _ = SessionCodec::new().decode(&message);
            for (_, client) in &mut clients {
                let _ = client.receive(&message);
            }
            for (_, server) in &mut servers {
                let _ = server.receive(&message);
            }
        });
        prop_assert!(used <= allowed(&message), "{used} bytes for a message of {}", message.len());
    }
}

/// A decoder that answers whether it refused the bytes.
type Refuses = dyn Fn(&Bytes) -> bool;

#[test]
fn a_forged_list_count_reserves_no_room_for_it() {
    use distio_proto::remote::Spawn;
    use distio_proto::{Frame, Ready};
    // The count of Ready's `tasks` (an empty alias before it) and of Spawn's `args` (an
    // empty script before it), each forged to 2^40 with no elements behind it.
    let mut ready = bytes::BytesMut::new();
    let frame = Frame::Ready(Ready::new(1, 2, "", Vec::new()));
    FrameCodec::new().encode_body(&frame, &mut ready).unwrap();
    let spawn = SessionCodec::new()
        .encode(&distio_proto::remote::SessionFrame::Spawn(Spawn::new(
            1, 1, "",
        )))
        .unwrap();
    let slave = |b: &Bytes| FrameCodec::new().decode_body(b).is_err();
    let session = |b: &Bytes| SessionCodec::new().decode(b).is_err();
    let cases: [(Vec<u8>, usize, &Refuses); 2] =
        [(ready.to_vec(), 30, &slave), (spawn.to_vec(), 24, &session)];
    for (mut bytes, at, refused) in cases {
        assert_eq!(
            bytes[at..at + 8],
            [0; 8],
            "the count is where it is said to be"
        );
        bytes[at..at + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
        let bytes = Bytes::from(bytes);
        let used = largest_allocation(|| {
            assert!(refused(&bytes));
        });
        assert!(
            used <= allowed(&bytes),
            "{used} bytes for {} bytes",
            bytes.len()
        );
    }
}

//! Per-thread buffers for encodings whose length is not known in advance.
//!
//! A payload is encoded in one pass into a [`Growing`] buffer. It starts in this thread's
//! small scratch buffer; a small encoding is copied out of it into an allocation of exactly
//! its size, and the scratch is reused for the next one.
//!
//! An encoding that reaches [`MIN`] bytes moves to a large buffer and is handed out without
//! a copy. Allocated fresh each time, such buffers are often handed back to the operating
//! system when freed and faulted in again page by page for the next payload, which costs
//! more than the encoding itself. Keeping the last couple of large buffers per thread avoids
//! that. The pool is bounded: at most [`SLOTS`] buffers per thread, each between [`MIN`] and
//! [`MAX`] bytes; the scratch buffer stays under `2 * MIN` bytes.

use bytes::Bytes;
use std::cell::{Cell, RefCell};
use std::mem;

/// Encodings smaller than this use a fresh allocation (cheap, and usually recycled by the
/// allocator anyway).
pub(crate) const MIN: usize = 64 * 1024;
/// Buffers larger than this are not kept.
pub(crate) const MAX: usize = 8 * 1024 * 1024;
/// Buffers kept per thread.
pub(crate) const SLOTS: usize = 2;

thread_local! {
    static POOL: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    /// This thread's buffer for small encodings; empty while a [`Growing`] holds it.
    static SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// An encoding being written whose final length is unknown: see the module documentation.
pub(crate) struct Growing {
    buf: Vec<u8>,
    /// Whether `buf` is a large buffer (true) or this thread's scratch buffer (false).
    large: bool,
}

impl Growing {
    /// An empty encoding, in this thread's scratch buffer when it is free (an encoding
    /// started while another one is being written gets a buffer of its own).
    pub(crate) fn new() -> Self {
        Growing {
            buf: SCRATCH.try_with(Cell::take).unwrap_or_default(),
            large: false,
        }
    }

    /// Appends `bytes`.
    #[inline]
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        if !self.large && self.buf.len().saturating_add(bytes.len()) >= MIN {
            self.move_to_large(bytes.len());
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Moves what is written so far (less than [`MIN`] bytes) to a large buffer with room
    /// for `additional` more: the largest one in the pool, or a fresh one.
    #[cold]
    fn move_to_large(&mut self, additional: usize) {
        let needed = self.buf.len().saturating_add(additional);
        let mut large = take_largest().unwrap_or_default();
        large.reserve(needed.max(2 * MIN));
        large.extend_from_slice(&self.buf);
        put_scratch(mem::replace(&mut self.buf, large));
        self.large = true;
    }

    /// The bytes written. A small encoding is copied out of the scratch buffer; a large one
    /// is handed out as it is, and its buffer goes back to the pool when the bytes are
    /// dropped.
    pub(crate) fn finish(mut self) -> Bytes {
        if !self.large {
            return Bytes::copy_from_slice(&self.buf);
        }
        let mut buf = mem::take(&mut self.buf);
        if buf.capacity() > MAX {
            // Too large to pool; do not keep up to twice the encoding alive with it.
            buf.shrink_to_fit();
        }
        into_bytes(buf)
    }
}

impl Drop for Growing {
    fn drop(&mut self) {
        let buf = mem::take(&mut self.buf);
        if self.large {
            // Only after a failed encoding: `finish` took the buffer otherwise.
            give_back(buf);
        } else {
            put_scratch(buf);
        }
    }
}

/// Makes `buf` this thread's scratch buffer, unless the one there already is larger.
fn put_scratch(mut buf: Vec<u8>) {
    buf.clear();
    let _ = SCRATCH.try_with(|scratch| {
        let current = scratch.take();
        scratch.set(if current.capacity() >= buf.capacity() {
            current
        } else {
            buf
        });
    });
}

/// The pool's largest buffer, emptied, if the pool holds any.
fn take_largest() -> Option<Vec<u8>> {
    POOL.try_with(|pool| {
        let mut pool = pool.borrow_mut();
        let largest = (0..pool.len()).max_by_key(|&i| pool[i].capacity())?;
        Some(pool.swap_remove(largest))
    })
    .ok()
    .flatten()
}

/// Bytes over `buf` that put it back in the pool (of the dropping thread) when dropped.
pub(crate) fn into_bytes(buf: Vec<u8>) -> Bytes {
    Bytes::from_owner(Pooled(buf))
}

/// Keeps `buf` in this thread's pool if it has the size and the pool has room.
fn give_back(mut buf: Vec<u8>) {
    if !(MIN..=MAX).contains(&buf.capacity()) {
        return;
    }
    buf.clear();
    // During thread teardown the pool may be gone; then the buffer is simply freed.
    let _ = POOL.try_with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.len() < SLOTS {
            pool.push(buf);
        }
    });
}

struct Pooled(Vec<u8>);

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        give_back(mem::take(&mut self.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(parts: &[&[u8]]) -> Bytes {
        let mut out = Growing::new();
        for part in parts {
            out.push(part);
        }
        out.finish()
    }

    #[test]
    fn large_encodings_reuse_a_pooled_buffer() {
        let first = written(&[&[1; 100], &[2; MIN]]);
        assert_eq!(first.len(), 100 + MIN);
        assert!(first[..100].iter().all(|&b| b == 1) && first[100..].iter().all(|&b| b == 2));
        let ptr = first.as_ptr();
        drop(first);
        let again = written(&[&[3; MIN]]);
        assert_eq!(again.as_ptr(), ptr, "the buffer came back from the pool");
        assert_eq!(&again[..], &[3; MIN][..]);
    }

    #[test]
    fn small_encodings_are_copied_out_of_the_scratch_buffer() {
        let small = written(&[b"ab", b"cd"]);
        assert_eq!(&small[..], b"abcd");
        let scratch = SCRATCH.with(Cell::take);
        assert!(scratch.is_empty() && scratch.capacity() >= 4);
        assert_ne!(scratch.as_ptr(), small.as_ptr());
        SCRATCH.with(|s| s.set(scratch));
    }

    #[test]
    fn the_scratch_buffer_stays_small() {
        for part in [MIN - 1, MIN / 2 + 1] {
            drop(written(&[&vec![0; part], &[0; 2]]));
            drop(written(&[&vec![0; part]]));
            let cap = SCRATCH.with(|s| {
                let buf = s.take();
                let cap = buf.capacity();
                s.set(buf);
                cap
            });
            assert!(cap < 2 * MIN, "{cap}");
        }
    }

    #[test]
    fn huge_encodings_are_not_pooled() {
        let huge = written(&[&[7; 16], &vec![7; MAX]]);
        assert_eq!(huge.len(), MAX + 16);
        drop(huge);
        let kept = POOL.with(|p| p.borrow().iter().all(|b| b.capacity() <= MAX));
        assert!(kept);
    }

    #[test]
    fn an_encoding_started_inside_another_gets_its_own_buffer() {
        let mut outer = Growing::new();
        outer.push(b"outer");
        let inner = written(&[b"inner"]);
        outer.push(b"!");
        assert_eq!(&inner[..], b"inner");
        assert_eq!(&outer.finish()[..], b"outer!");
    }

    #[test]
    fn an_abandoned_large_encoding_returns_its_buffer() {
        let mut abandoned = Growing::new();
        abandoned.push(&[0; MIN]);
        let ptr = abandoned.buf.as_ptr();
        drop(abandoned);
        assert_eq!(written(&[&[1; MIN]]).as_ptr(), ptr);
    }

    #[test]
    fn the_pool_is_bounded() {
        let bufs: Vec<Bytes> = (0..SLOTS + 3)
            .map(|_| into_bytes(Vec::with_capacity(MIN)))
            .collect();
        drop(bufs);
        let kept = POOL.with(|p| p.borrow().len());
        assert!(kept <= SLOTS, "{kept}");
    }
}

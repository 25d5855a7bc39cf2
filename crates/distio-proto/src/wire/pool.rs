//! A small per-thread pool of large encoding buffers.
//!
//! Encoding a large payload needs a large buffer. Allocated fresh each time, such buffers
//! are often handed back to the operating system when freed and faulted in again page by
//! page for the next payload, which costs more than the encoding itself. Keeping the last
//! couple of large buffers per thread avoids that. The pool is bounded: at most
//! [`SLOTS`] buffers per thread, each between [`MIN`] and [`MAX`] bytes.

use bytes::Bytes;
use std::cell::RefCell;

/// Encodings smaller than this use a fresh allocation (cheap, and usually recycled by the
/// allocator anyway).
pub(crate) const MIN: usize = 64 * 1024;
/// Buffers larger than this are not kept.
pub(crate) const MAX: usize = 8 * 1024 * 1024;
/// Buffers kept per thread.
pub(crate) const SLOTS: usize = 2;

thread_local! {
    static POOL: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// An empty buffer with room for `len` bytes, from the pool when one fits; `None` when
/// `len` is too small or too large to pool.
pub(crate) fn take(len: usize) -> Option<Vec<u8>> {
    if !(MIN..=MAX).contains(&len) {
        return None;
    }
    let reused = POOL
        .try_with(|pool| {
            let mut pool = pool.borrow_mut();
            let fit = pool.iter().position(|buf| buf.capacity() >= len)?;
            Some(pool.swap_remove(fit))
        })
        .ok()
        .flatten();
    Some(reused.unwrap_or_else(|| Vec::with_capacity(len)))
}

/// Bytes over `buf` that put it back in the pool (of the dropping thread) when dropped.
pub(crate) fn into_bytes(buf: Vec<u8>) -> Bytes {
    Bytes::from_owner(Pooled(buf))
}

struct Pooled(Vec<u8>);

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.0);
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_buffers_are_reused_small_and_huge_ones_are_not() {
        assert!(take(MIN - 1).is_none());
        assert!(take(MAX + 1).is_none());
        let mut buf = take(MIN).expect("poolable");
        buf.extend_from_slice(&[1; MIN]);
        let ptr = buf.as_ptr();
        drop(into_bytes(buf));
        let again = take(MIN).expect("poolable");
        assert_eq!(again.as_ptr(), ptr, "the buffer came back from the pool");
        assert!(again.is_empty());
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

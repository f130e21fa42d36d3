//! The process allocator, hardened against absurd capacity requests.
//!
//! Request decoding (the `kafka-protocol` crate) sizes a `Vec` from an
//! array length read off the wire before decoding any element, so a 20-byte
//! frame can ask for hundreds of gigabytes. Untouched, such a reservation
//! costs nothing but address space — yet the system allocator refuses it and
//! Rust then aborts the whole process. Allocations of [`HUGE_ALLOCATION`]
//! bytes or more are therefore served by an anonymous mapping with
//! `MAP_NORESERVE`: the kernel only backs the pages actually written, the
//! request then fails to decode for lack of bytes, and the mapping is
//! returned. Real memory use still follows the bytes actually received.
//! Everything smaller goes to the system allocator unchanged.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr;

/// Size from which allocations are lazily committed mappings. Larger than
/// anything the broker allocates on purpose (frames stop at
/// `socket.request.max.bytes`, 100 MiB by default).
pub const HUGE_ALLOCATION: usize = 1 << 30;

const PAGE: usize = 4096;

/// System allocator, with huge allocations as `MAP_NORESERVE` mappings.
#[derive(Debug)]
pub struct GuardedAllocator;

fn is_huge(size: usize, align: usize) -> bool {
    size >= HUGE_ALLOCATION && align <= PAGE
}

fn map(size: usize) -> *mut u8 {
    use rustix::mm::{MapFlags, ProtFlags, mmap_anonymous};
    // SAFETY: a fresh private anonymous mapping at an address of the kernel's
    // choosing aliases no existing memory.
    let mapped = unsafe {
        mmap_anonymous(
            ptr::null_mut(),
            size,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::PRIVATE | MapFlags::NORESERVE,
        )
    };
    mapped.map_or(ptr::null_mut(), |p| p.cast())
}

// SAFETY: every pointer handed out comes from `System` or from `map`, and
// `dealloc`/`realloc` send it back to the same source, chosen by the same
// size test on the layout the caller must pass back unchanged. Mappings are
// page-aligned, which satisfies any alignment up to a page (larger
// alignments always go to `System`), and anonymous mappings are zeroed.
unsafe impl GlobalAlloc for GuardedAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_huge(layout.size(), layout.align()) {
            return map(layout.size());
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_huge(layout.size(), layout.align()) {
            return map(layout.size());
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_huge(layout.size(), layout.align()) {
            // SAFETY: `ptr` is a mapping of exactly this size made by `map`.
            // A failed munmap leaks address space but cannot corrupt memory.
            let _ = unsafe { rustix::mm::munmap(ptr.cast(), layout.size()) };
            return;
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !is_huge(layout.size(), layout.align()) && !is_huge(new_size, layout.align()) {
            // SAFETY: forwarded with the caller's guarantees.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // Crossing or beyond the threshold: move between the two sources.
        // SAFETY: the caller guarantees `new_size` with `layout.align()` is a valid layout.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: a non-zero-sized layout, as the caller guarantees.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are valid for the copied length and distinct.
            unsafe {
                ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_absurd_capacity_is_reserved_without_aborting_and_usable() {
        // 64 GiB: more than this machine's memory, so the system allocator
        // would refuse it and the process would abort.
        let mut v: Vec<u64> = Vec::with_capacity(8 << 30);
        assert!(v.capacity() >= 8 << 30);
        v.extend(0..1000u64);
        assert_eq!(v.iter().sum::<u64>(), 499_500);
        v.shrink_to_fit();
        assert_eq!(v.len(), 1000);
    }

    #[test]
    fn a_request_with_an_absurd_array_length_is_refused_not_fatal() {
        // Metadata v0 whose topic array claims 2^31-1 entries (over 100 GiB
        // of Vec) in 5 bytes: without the guard the process aborts here.
        let frame = bytes::Bytes::from_static(&[0, 3, 0, 0, 0, 0, 0, 1, 0, 0, 0x7f, 0xff, 0xff, 0xff, 0xb6]);
        assert!(crate::protocol::codec::decode_request(frame, u64::MAX).is_err());
    }
}

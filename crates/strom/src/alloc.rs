//! The process allocator: the system allocator, except that very large requests
//! are served by `MAP_NORESERVE` anonymous mappings.
//!
//! Why: the wire codec (`kafka-protocol` 0.18) calls `Vec::with_capacity(n)` with
//! `n` read off the wire before it has seen the elements. A 14-byte Metadata
//! request claiming 2^31-1 topics asks for ~150 GB; the system allocator refuses,
//! and a failed allocation aborts the process. Served from a `MAP_NORESERVE`
//! mapping, that request only reserves address space: no page is touched, the
//! decode fails at the next missing byte, the mapping is unmapped, and only that
//! connection is closed. Memory actually used stays bounded by the frame size
//! (`socket.request.max.bytes`), because elements are only materialised from
//! bytes that arrived.
//!
//! Since then request bodies pass a bounds walk (`strom_protocol::bounds`) before
//! the codec sees them, so no such count reaches it. This allocator stays as a
//! second line of defence. Its own limit: under strict overcommit
//! (`vm.overcommit_memory=2`) the kernel accounts even `MAP_NORESERVE` mappings.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};

/// Requests at or above this size are mapped. Nothing Strom does legitimately
/// allocates this much in one piece (frames are capped far below it by default).
const HUGE: usize = 1 << 30;
const PAGE: usize = 4096;

pub struct StromAlloc;

fn is_huge(layout: &Layout) -> bool {
    layout.size() >= HUGE && layout.align() <= PAGE
}

// SAFETY: every pointer handed out is either from `System` (and returned to it)
// or from `mmap` with the layout's size (and returned with `munmap` of that size);
// `is_huge` depends only on the layout, which callers pass back unchanged.
unsafe impl GlobalAlloc for StromAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_huge(&layout) {
            map(layout.size())
        } else {
            System.alloc(layout)
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_huge(&layout) {
            // Fresh anonymous mappings are zero-filled.
            map(layout.size())
        } else {
            System.alloc_zeroed(layout)
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_huge(&layout) {
            libc::munmap(ptr.cast(), layout.size());
        } else {
            System.dealloc(ptr, layout)
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
        if !is_huge(&layout) && !is_huge(&new_layout) {
            return System.realloc(ptr, layout, new_size);
        }
        let new = self.alloc(new_layout);
        if !new.is_null() {
            std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
            self.dealloc(ptr, layout);
        }
        new
    }
}

unsafe fn map(size: usize) -> *mut u8 {
    let p = libc::mmap(
        std::ptr::null_mut(),
        size,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
        -1,
        0,
    );
    if p == libc::MAP_FAILED {
        std::ptr::null_mut()
    } else {
        p.cast()
    }
}

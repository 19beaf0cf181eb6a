#![no_main]
//! See `strom_protocol::fuzzing::request`. This target also bounds every single
//! allocation the decode makes by the input's size: the bounds check exists so that
//! no count on the wire can size an allocation its bytes do not back.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Largest;
static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOC: Largest = Largest;

/// Worst case: an element of a few hundred bytes in memory for each byte of input.
const PER_INPUT_BYTE: usize = 256;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    LARGEST.store(0, Ordering::Relaxed);
    strom_protocol::fuzzing::request(data);
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(largest <= PER_INPUT_BYTE * data.len() + 4096, "one allocation of {largest} bytes for {} input bytes", data.len());
});

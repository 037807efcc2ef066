//! A counting global allocator: off (one relaxed load per call) while timing, on while the
//! memory pass measures one call at a time.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering::Relaxed};

/// The bench binary's global allocator.
pub struct Counting;

static ON: AtomicBool = AtomicBool::new(false);
/// Net bytes allocated since `start` (frees of older blocks can take it below zero).
static CURRENT: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);
static COUNT: AtomicUsize = AtomicUsize::new(0);
static TOTAL: AtomicUsize = AtomicUsize::new(0);

#[inline]
fn grow(by: usize) {
    let now = CURRENT.fetch_add(by as isize, Relaxed) + by as isize;
    if now > PEAK.load(Relaxed) {
        PEAK.store(now, Relaxed);
    }
}

// SAFETY: every call is forwarded to the system allocator unchanged; the counters are only
// bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let p = unsafe { System.alloc(layout) };
        if ON.load(Relaxed) && !p.is_null() {
            COUNT.fetch_add(1, Relaxed);
            TOTAL.fetch_add(layout.size(), Relaxed);
            grow(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let p = unsafe { System.alloc_zeroed(layout) };
        if ON.load(Relaxed) && !p.is_null() {
            COUNT.fetch_add(1, Relaxed);
            TOTAL.fetch_add(layout.size(), Relaxed);
            grow(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded; the block came from `System` with this layout.
        unsafe { System.dealloc(ptr, layout) };
        if ON.load(Relaxed) {
            CURRENT.fetch_sub(layout.size() as isize, Relaxed);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded; the block came from `System` with this layout.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if ON.load(Relaxed) && !p.is_null() {
            COUNT.fetch_add(1, Relaxed);
            TOTAL.fetch_add(new_size, Relaxed);
            if new_size >= layout.size() {
                grow(new_size - layout.size());
            } else {
                CURRENT.fetch_sub((layout.size() - new_size) as isize, Relaxed);
            }
        }
        p
    }
}

/// What one measured call allocated.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    /// Highest net heap growth during the call, in bytes.
    pub peak_bytes: usize,
    /// Allocations (reallocations included).
    pub allocs: usize,
    /// Bytes requested in all.
    pub alloc_bytes: usize,
}

/// Runs `f` once with counting on.
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, Usage) {
    CURRENT.store(0, Relaxed);
    PEAK.store(0, Relaxed);
    COUNT.store(0, Relaxed);
    TOTAL.store(0, Relaxed);
    ON.store(true, Relaxed);
    let r = std::hint::black_box(f());
    ON.store(false, Relaxed);
    let usage = Usage {
        peak_bytes: PEAK.load(Relaxed).max(0) as usize,
        allocs: COUNT.load(Relaxed),
        alloc_bytes: TOTAL.load(Relaxed),
    };
    (r, usage)
}

//! A global allocator that counts live heap bytes per *tag*: the simulator tags every call
//! into a node's [`crate::node::NodeCore`] (and the decoding of the frames it receives) with
//! that node's index, so what each node holds is measured, not estimated.
//!
//! Each allocation carries a small header with the tag it was made under; freeing it
//! subtracts from that tag, whoever frees it. A `realloc` stays with the tag of the original
//! allocation (a table that grows stays the table's owner's). The header costs
//! `max(16, align)` bytes per allocation; it is not counted.
//!
//! Install it in a binary (or a test binary) with
//! `#[global_allocator] static A: TaggedAlloc = TaggedAlloc;`. Without it, [`live_bytes`]
//! stays 0 and [`installed`] says so.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

/// Tags 1..=MAX_TAGS are nodes (index + 1); tag 0 is everything else (the simulator itself).
pub const MAX_TAGS: usize = 64;

static LIVE: [AtomicI64; MAX_TAGS + 1] = [const { AtomicI64::new(0) }; MAX_TAGS + 1];
static INSTALLED: AtomicBool = AtomicBool::new(false);

thread_local! {
    static TAG: Cell<u32> = const { Cell::new(0) };
}

/// Counts live bytes per tag (see the module doc).
pub struct TaggedAlloc;

fn header(layout: Layout) -> usize {
    layout.align().max(16)
}

// SAFETY: every pointer handed out is `header` bytes past a block obtained from `System` with
// the caller's alignment and `size + header` bytes; `header` is a multiple of the alignment
// (both powers of two, header >= align), so the returned pointer keeps it, and the tag
// written at the block's start (a `u32`, 16-byte aligned) stays inside the header.
unsafe impl GlobalAlloc for TaggedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let h = header(layout);
        let Ok(full) = Layout::from_size_align(layout.size() + h, layout.align()) else {
            return std::ptr::null_mut();
        };
        // SAFETY: `full` has a non-zero size (h >= 16).
        let base = unsafe { System.alloc(full) };
        if base.is_null() {
            return base;
        }
        let tag = TAG.try_with(Cell::get).unwrap_or(0);
        // SAFETY: the block is at least `h` >= 4 bytes and aligned for `u32`.
        unsafe { (base as *mut u32).write(tag) };
        LIVE[tag as usize].fetch_add(layout.size() as i64, Ordering::Relaxed);
        INSTALLED.store(true, Ordering::Relaxed);
        // SAFETY: `h` < `full.size()`.
        unsafe { base.add(h) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let h = header(layout);
        // SAFETY: `ptr` came from `alloc`/`realloc` above with this layout, so the block
        // starts `h` bytes before it and holds the tag.
        unsafe {
            let base = ptr.sub(h);
            let tag = (base as *const u32).read() as usize;
            LIVE[tag].fetch_sub(layout.size() as i64, Ordering::Relaxed);
            System.dealloc(
                base,
                Layout::from_size_align_unchecked(layout.size() + h, layout.align()),
            );
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let h = header(layout);
        // SAFETY: as in `dealloc`; the new block keeps the header (System's realloc copies
        // it with the rest) and the alignment.
        unsafe {
            let base = ptr.sub(h);
            let tag = (base as *const u32).read() as usize;
            let old = Layout::from_size_align_unchecked(layout.size() + h, layout.align());
            let new = System.realloc(base, old, new_size + h);
            if new.is_null() {
                return new;
            }
            LIVE[tag].fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
            new.add(h)
        }
    }
}

/// Whether [`TaggedAlloc`] is the global allocator (it has allocated something).
pub fn installed() -> bool {
    INSTALLED.load(Ordering::Relaxed)
}

/// Live bytes allocated under `tag` (0: untagged; node `i`: `i + 1`).
pub fn live_bytes(tag: usize) -> i64 {
    LIVE.get(tag).map_or(0, |c| c.load(Ordering::Relaxed))
}

/// Runs `f` with allocations counted under `tag` (tags above [`MAX_TAGS`] count as 0).
pub fn with_tag<T>(tag: usize, f: impl FnOnce() -> T) -> T {
    let tag = if tag <= MAX_TAGS { tag as u32 } else { 0 };
    let before = TAG.with(|t| t.replace(tag));
    let out = f();
    TAG.with(|t| t.set(before));
    out
}

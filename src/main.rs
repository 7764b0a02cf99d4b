//! `logalarm`: parse, run, exit. Everything else is in the library.

// PERF: mimalloc instead of the C library's allocator: start-up with Debian's 2,101 rules is
// mostly regex parsing and literal extraction, a third of it malloc/free (CPU to exit 0.388 ->
// 0.308 s); the log path allocates nothing per line, so its throughput is unchanged. Built
// without transparent huge pages (`no_thp`): with them peak RSS doubled (66 -> 115 MiB).
// In the static musl binary the gain is larger (musl's allocator is slow): start-up 0.92 ->
// 0.36 s, Debian's rules over 128 MiB 1.15 -> 0.83 s, every line raising a `log:` alarm 1.97
// -> 1.14 s (PERF.md, eleventh run).
#[global_allocator]
static GLOBAL: Mimalloc = Mimalloc;

/// mimalloc called the way the C library's `malloc` is: `mi_malloc` for every alignment a
/// block has anyway, `mi_malloc_aligned` only above it.
///
/// PERF: the `mimalloc` crate's wrapper (used before) asks `mi_malloc_aligned(size, align)` for every
/// allocation, and mimalloc v3 serves an alignment of 8 on a block over 1 KiB whose size is
/// not a power of two by over-allocating and aligning by hand (`..._aligned_at_generic`,
/// `..._overalloc`), `realloc` the same way: 19 % of the instructions of a start with
/// Debian's 2,101 rules (150 of 777 M in the per-rule work, mostly `regex_syntax`'s vectors).
/// Every mimalloc block is aligned to a word at least (blocks are whole words and a page's
/// first block is 16-aligned), so a word's alignment or less needs nothing more.
struct Mimalloc;

const WORD: usize = std::mem::size_of::<usize>();

// SAFETY: each method forwards to the mimalloc function of the same contract; a layout whose
// alignment a plain block does not guarantee goes to the aligned variant.
unsafe impl std::alloc::GlobalAlloc for Mimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        fresh(layout, false)
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        fresh(layout, true)
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: std::alloc::Layout) {
        // SAFETY: `ptr` came from this allocator.
        unsafe { libmimalloc_sys::mi_free(ptr.cast()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= WORD {
            // SAFETY: `ptr` came from this allocator; forwarded as documented above.
            unsafe { libmimalloc_sys::mi_realloc(ptr.cast(), new_size).cast() }
        } else {
            // SAFETY: `ptr` came from this allocator; forwarded as documented above.
            unsafe {
                libmimalloc_sys::mi_realloc_aligned(ptr.cast(), new_size, layout.align()).cast()
            }
        }
    }
}

/// A new block for `layout`, zeroed or not: the plain call up to a word's alignment, the
/// aligned one above it.
#[inline]
fn fresh(layout: std::alloc::Layout, zeroed: bool) -> *mut u8 {
    use libmimalloc_sys::{mi_malloc, mi_malloc_aligned, mi_zalloc, mi_zalloc_aligned};
    let (size, align) = (layout.size(), layout.align());
    // SAFETY: mimalloc's allocation calls take any size and a power-of-two alignment (a
    // `Layout`'s is); a null return is the allocation failure `GlobalAlloc` expects.
    let block = unsafe {
        match (align <= WORD, zeroed) {
            (true, false) => mi_malloc(size),
            (true, true) => mi_zalloc(size),
            (false, false) => mi_malloc_aligned(size, align),
            (false, true) => mi_zalloc_aligned(size, align),
        }
    };
    block.cast()
}

fn main() {
    let code = logalarm::main(std::env::args_os().skip(1).collect());
    // What std buffered is flushed, then the process ends without the C library's exit
    // handlers: mimalloc's would hand every page it holds back to the kernel (madvise) and the
    // loaded libraries would run their destructors, a tenth of a short run's CPU, for a process
    // that is gone the next instant. Everything logalarm writes is written by now (its own
    // writers flush before `main` returns).
    let _ = std::io::Write::flush(&mut std::io::stdout());
    let _ = std::io::Write::flush(&mut std::io::stderr());
    // SAFETY: _exit ends the process; nothing after it runs.
    unsafe { libc::_exit(code) }
}

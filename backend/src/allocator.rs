//! The memory allocator: mimalloc, told to keep what is freed.
//!
//! A training step allocates and frees tensors of the same sizes every time, many above
//! 32 MB on a CPU batch of images. glibc hands blocks that large back to the OS on free and
//! faults their pages in, zeroed, on the next step: a third of a CPU step went to the kernel
//! by perf (CNN, batch 32, 128x128). mimalloc with purging off reuses them.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_arena_eager_commit` and `mi_option_purge_delay` (mimalloc.h, v2;
/// libmimalloc-sys does not name the second).
const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps freed memory in the process for reuse instead of returning it to the OS; call once
/// at start-up (the `balancelab` binary and the benchmarks do).
pub fn keep_freed_memory() {
    // SAFETY: setting an option is a plain store mimalloc allows at any time.
    unsafe {
        libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 1);
        libmimalloc_sys::mi_option_set(PURGE_DELAY, -1);
    }
}

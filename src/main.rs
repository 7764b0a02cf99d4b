//! `logalarm`: parse, run, exit. Everything else is in the library.

// PERF: mimalloc instead of the C library's allocator: start-up with Debian's 2,101 rules is
// mostly regex parsing and literal extraction, a third of it malloc/free (CPU to exit 0.388 ->
// 0.308 s); the log path allocates nothing per line, so its throughput is unchanged. Built
// without transparent huge pages (`no_thp`): with them peak RSS doubled (66 -> 115 MiB).
// In the static musl binary the gain is larger (musl's allocator is slow): start-up 0.92 ->
// 0.36 s, Debian's rules over 128 MiB 1.15 -> 0.83 s, every line raising a `log:` alarm 1.97
// -> 1.14 s (PERF.md, eleventh run).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

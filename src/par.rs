//! Independent work spread over this process's cores: start-up's per-rule translation and
//! parsing (thousands of rules), the pipeline's count of cores.
//!
//! Role: [`map`] computes `f(i)` for `0..n` in order on several threads that draw chunks of
//! indices from one counter, so a thread that drew cheap items takes more of them (fixed halves
//! left one of two threads idle for a quarter of the parse of Debian's 2,101 rules: one half
//! held the heavier rules). Invariants: the result is in index order and holds every index once;
//! a thread that cannot be started, or that panics (a bug), costs only time: the indices it had
//! not delivered are computed by the calling thread, where a panic shows again.

use std::sync::atomic::{AtomicUsize, Ordering};

/// At most this many threads for one [`map`] (start-up work of a few thousand items).
const MAX_THREADS: usize = 16;

/// The cores this process may use, asked once (std reads the cgroup's quota files at each
/// call: ~60 µs, and a pipeline is made per input).
pub(crate) fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Start `f` on a new thread of `scope` that keeps off the caller's CPU (see
/// `sys::avoid_cpu`), for work meant to run beside the caller's.
// PERF: left to the scheduler, a thread made at start-up ran on its parent's CPU, the two
// taking turns, for the first ~20 ms of 70 while the other CPU idled (Debian's 2,101 rules
// behind `(?i)`, sampled per CPU: PERF.md "thirty-second run").
pub(crate) fn spawn_beside<'scope, T: Send + 'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    f: impl FnOnce() -> T + Send + 'scope,
) -> std::io::Result<std::thread::ScopedJoinHandle<'scope, T>> {
    let caller = crate::sys::current_cpu();
    let started = std::thread::Builder::new().spawn_scoped(scope, move || {
        if let Some(cpu) = caller {
            crate::sys::avoid_cpu(cpu);
        }
        f()
    });
    // PERF: the new thread starts queued on this CPU, which the caller keeps busy: let it run
    // once, so that it leaves first thing, instead of waiting for the scheduler to move it
    // while the other CPU idles (a region's helper: Debian's 2,101 rules through `cat |`, idle
    // samples 10.0 -> 6.7 %, PERF.md "thirty-third run"). Returns at once when nothing else is
    // runnable here.
    std::thread::yield_now();
    started
}

/// `f(i)` for every `i` in `0..n`, in order, on up to `threads` threads (the caller's among
/// them) taking `chunk` indices at a time.
pub(crate) fn map<T: Send>(
    n: usize,
    threads: usize,
    chunk: usize,
    f: impl Fn(usize) -> T + Sync,
) -> Vec<T> {
    let chunk = chunk.max(1);
    let threads = threads.min(MAX_THREADS).min(n.div_ceil(chunk)).max(1);
    if threads == 1 {
        return (0..n).map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let start = next.fetch_add(chunk, Ordering::Relaxed);
            if start >= n {
                break done;
            }
            done.push((
                start,
                (start..(start + chunk).min(n)).map(&f).collect::<Vec<T>>(),
            ));
        }
    };
    let mut parts = std::thread::scope(|s| {
        let work = &work;
        let others: Vec<_> = (1..threads)
            .filter_map(|_| spawn_beside(s, work).ok())
            .collect();
        let mut parts = work();
        for other in others {
            if let Ok(p) = other.join() {
                parts.extend(p);
            }
        }
        parts
    });
    parts.sort_unstable_by_key(|p| p.0);
    let mut out = Vec::with_capacity(n);
    for (start, items) in parts {
        while out.len() < start {
            out.push(f(out.len()));
        }
        out.extend(items);
    }
    while out.len() < n {
        out.push(f(out.len()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_index_once_in_order_whatever_the_threads_and_chunks() {
        for (n, threads, chunk) in [(0, 4, 8), (1, 4, 8), (7, 1, 3), (1000, 2, 16), (1001, 5, 7)] {
            let calls = AtomicUsize::new(0);
            let got = map(n, threads, chunk, |i| {
                calls.fetch_add(1, Ordering::Relaxed);
                i * 3
            });
            assert_eq!(got, (0..n).map(|i| i * 3).collect::<Vec<_>>());
            assert_eq!(calls.into_inner(), n, "{n} {threads} {chunk}");
        }
    }

    #[test]
    fn a_panicking_thread_costs_only_time() {
        // The first item the other thread computes panics (the caller's items are slow, so the
        // other thread surely draws some); the caller computes that chunk again.
        let tried = std::sync::Mutex::new(false);
        let main = std::thread::current().id();
        let got = map(64, 2, 4, |i| {
            if std::thread::current().id() == main {
                std::thread::sleep(std::time::Duration::from_millis(1));
            } else {
                let mut t = tried.lock().unwrap_or_else(|e| e.into_inner());
                if !*t {
                    *t = true;
                    drop(t);
                    panic!("a bug in item {i}");
                }
            }
            i
        });
        assert_eq!(got, (0..64).collect::<Vec<_>>());
        assert!(*tried.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

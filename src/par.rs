//! Independent work spread over this process's cores: start-up's per-rule translation and
//! parsing (thousands of rules), the pipeline's count of cores, and the thread each pipeline
//! keeps to match half of its large regions ([`Worker`]).
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

/// A job for a [`Worker`], its borrows' lifetime erased (see [`Worker::beside`]).
type Job = Box<dyn FnOnce() + Send + 'static>;

enum Turn {
    Idle,
    /// A job to run, and the caller's CPU to keep off.
    Run(Job, Option<usize>),
    Busy,
    Done(std::thread::Result<()>),
    Exit,
}

struct Slot {
    turn: std::sync::Mutex<Turn>,
    wake: std::sync::Condvar,
}

impl Slot {
    fn lock(&self) -> std::sync::MutexGuard<'_, Turn> {
        // Jobs run outside the lock and under catch_unwind: a poisoned lock holds a valid turn.
        self.turn.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A thread kept for work beside its caller's, one job at a time: a region's helper.
// PERF: a scoped thread started per region began 85-540 µs after the spawn (a new thread
// queues behind what runs on the other CPU), and Debian's 2,101 rules left the helper 1,595 of
// 3,976 pieces; a sleeping thread woken per region preempts sooner (PERF.md "fortieth run").
pub(crate) struct Worker {
    slot: std::sync::Arc<Slot>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Worker {
    pub(crate) fn new() -> std::io::Result<Worker> {
        let slot = std::sync::Arc::new(Slot {
            turn: std::sync::Mutex::new(Turn::Idle),
            wake: std::sync::Condvar::new(),
        });
        let theirs = slot.clone();
        let thread = std::thread::Builder::new()
            .name("logalarm-helper".into())
            .spawn(move || serve(&theirs))?;
        Ok(Worker {
            slot,
            thread: Some(thread),
        })
    }

    /// Run `job` on the worker while this thread runs `mine`; returns when both are done. A
    /// panic in either is raised here (after the other finished).
    pub(crate) fn beside<'a, T>(
        &mut self,
        job: impl FnOnce() + Send + 'a,
        mine: impl FnOnce() -> T,
    ) -> T {
        let job: Box<dyn FnOnce() + Send + 'a> = Box::new(job);
        // SAFETY: only the lifetime changes. The job's borrows live for 'a, which spans this
        // call, and this call does not return (or unwind) before the worker has finished the
        // job: `Finish` below waits for it, on unwind too, and the job is dropped by the
        // worker right after it ran (inside its `catch_unwind`).
        let job: Job = unsafe { std::mem::transmute::<Box<dyn FnOnce() + Send + 'a>, Job>(job) };
        *self.slot.lock() = Turn::Run(job, crate::sys::current_cpu());
        self.slot.wake.notify_all();
        let finish = Finish(&self.slot);
        let out = mine();
        let done = finish.wait();
        if let Err(e) = done {
            std::panic::resume_unwind(e);
        }
        out
    }
}

/// Waits until the worker's job is done (on drop too: a job never outlives its borrows).
struct Finish<'s>(&'s Slot);

impl Finish<'_> {
    fn wait(self) -> std::thread::Result<()> {
        let out = take_done(self.0);
        std::mem::forget(self);
        out
    }
}

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        let _ = take_done(self.0);
    }
}

fn take_done(slot: &Slot) -> std::thread::Result<()> {
    let mut turn = slot.lock();
    loop {
        match std::mem::replace(&mut *turn, Turn::Idle) {
            Turn::Done(r) => return r,
            // The worker is gone (it never is while a Worker lives): nothing to wait for.
            Turn::Exit => {
                *turn = Turn::Exit;
                return Ok(());
            }
            other => {
                *turn = other;
                turn = slot.wake.wait(turn).unwrap_or_else(|e| e.into_inner());
            }
        }
    }
}

fn serve(slot: &Slot) {
    let original = crate::sys::affinity();
    let mut avoided = None;
    let mut turn = slot.lock();
    loop {
        match std::mem::replace(&mut *turn, Turn::Busy) {
            Turn::Run(job, cpu) => {
                drop(turn);
                if cpu != avoided {
                    // Off the caller's CPU, wherever the caller is now (see `spawn_beside`).
                    if let Some(set) = &original {
                        crate::sys::set_affinity(set);
                    }
                    if let Some(c) = cpu {
                        crate::sys::avoid_cpu(c);
                    }
                    avoided = cpu;
                }
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                turn = slot.lock();
                *turn = Turn::Done(r);
                slot.wake.notify_all();
            }
            Turn::Exit => {
                *turn = Turn::Exit;
                return;
            }
            other => {
                *turn = other;
                turn = slot.wake.wait(turn).unwrap_or_else(|e| e.into_inner());
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        *self.slot.lock() = Turn::Exit;
        self.slot.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
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

    /// A job borrowing the caller's data runs beside the caller's own work, many times on
    /// the same thread; a panic on either side is raised once both sides are done.
    #[test]
    fn a_worker_runs_a_job_beside_its_caller() {
        let mut w = match Worker::new() {
            Ok(w) => w,
            Err(e) => panic!("no thread: {e}"),
        };
        let mut sums = [0u64; 2];
        for round in 0..200u64 {
            let data: Vec<u64> = (0..1000).map(|i| i * round).collect();
            let (a, b) = sums.split_at_mut(1);
            let last = w.beside(|| a[0] += data.iter().sum::<u64>(), || data[999]);
            b[0] += last;
        }
        assert_eq!(sums, [499_500 * 19_900, 999 * 19_900]);
        // The job's panic: raised here, after the caller's part ran.
        let mut mine_ran = false;
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            w.beside(|| panic!("job"), || mine_ran = true)
        }));
        assert!(r.is_err() && mine_ran);
        // The caller's panic: raised after the job finished with what it borrowed.
        let done = AtomicUsize::new(0);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            w.beside(
                || {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    done.store(1, Ordering::SeqCst);
                },
                || panic!("mine"),
            )
        }));
        assert!(r.is_err());
        assert_eq!(done.load(Ordering::SeqCst), 1, "the job had finished");
        // Still serving after both panics.
        let mut x = 0;
        w.beside(|| x = 7, || ());
        assert_eq!(x, 7);
    }
}

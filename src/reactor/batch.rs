//! Many inputs read, matched and passed in one turn, the matching shared with a helper thread.
//!
//! Role: with two or more supervised pipes or followed files, a turn reads each ready one into
//! its pipeline and holds the reads (`Pipeline::hold`) instead of matching them on this thread
//! one read at a time. While this thread reads the next inputs, a helper thread
//! ([`crate::par::Worker`]) matches the ones already read (`Pipeline::match_ahead`), and this
//! thread raises and passes each input's lines (`Pipeline::release`) as soon as they are
//! matched, in token order; once everything is read, it matches the rest beside the helper. A
//! turn takes the helper only when the last one was worth two threads, by the measure a
//! pipeline shares its own regions by ([`Pace`]); otherwise each input is matched and released
//! right after its read, here.
//! Invariants: an input's lines are passed whole and in order, its alarms raised in line order
//! before its lines are passed, as when it is read alone; nothing stays held after a turn;
//! this thread only ever matches with the pipelines' own matchers and the helper only with
//! their helper matchers (`Matcher::helper`), so the two never wait on each other's caches.
//! Rejected alternatives: each input's own helper for half of its regions — with 100 inputs a
//! region is a hundredth of the buffers' budget, too small to share, and this thread did nearly
//! all the matching (100 tailed files with Debian's 2,101 rules: ~60 % of standard input's
//! speed, PERF.md "forty-first run"); all reads first, then matching on two threads — the
//! helper idled while this thread read and wrote (PERF.md "forty-second run").

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use super::source::{read_turn, Input};
use crate::dispatch::LogSink;
use crate::pipeline::{Pace, Pipeline};
use crate::supervise::Supervisor;

/// A ready input of the turn, borrowed from the reactor's table.
pub(super) struct Ready<'t> {
    pub(super) token: usize,
    pub(super) input: &'t mut Input,
    pub(super) pipeline: &'t mut Pipeline,
    pub(super) ready: &'t mut bool,
}

/// What a turn needs besides its inputs.
pub(super) struct TurnCx<'a, 's> {
    pub(super) sink: &'a mut LogSink<'s>,
    pub(super) supervisor: &'a mut Supervisor,
    /// Reads of one input in the turn.
    pub(super) max: usize,
}

/// How the turns of many inputs are matched.
pub(super) struct Batch {
    pace: Pace,
    /// The helper thread, started at the first turn worth it.
    worker: Option<crate::par::Worker>,
    /// Whole-line bytes matched in the last turn (whether the next is worth the helper).
    last: usize,
}

impl Batch {
    /// A batch for inputs matched with `rules` (or `None`: one core, or no rules, so nothing
    /// is gained by holding reads).
    pub(super) fn new(rules: bool) -> Option<Batch> {
        // PERF: any matcher's speed: here the second core is not the reader thread's and
        // `cat`'s, as it is for standard input (PERF.md "forty-second run": 100 tailed files
        // with rules100, 0.18-0.21 s alone, 0.115-0.14 s shared).
        let pace = Pace::new(rules).any_speed();
        pace.parallel().then_some(Batch {
            pace,
            worker: None,
            last: 0,
        })
    }

    /// Read each of `inputs` (ready, in token order) at most `cx.max` times, match and release
    /// them; `after` is called on each once its lines are passed. Returns the tokens of the
    /// inputs that ended (to be closed). On an error (of the output), the inputs read until
    /// then are still released, the others not read, and the first error is returned.
    pub(super) fn turn(
        &mut self,
        inputs: Vec<Ready<'_>>,
        cx: TurnCx<'_, '_>,
        mut after: impl FnMut(usize, &Input, &Pipeline),
    ) -> io::Result<Vec<usize>> {
        let two = self.pace.two(self.last);
        let n = inputs.len();
        let mut readers = Vec::with_capacity(n);
        let mut items = Vec::with_capacity(n);
        for r in inputs {
            readers.push((r.token, r.input, r.ready));
            items.push(Item {
                pipeline: Mutex::new(r.pipeline),
                matched: AtomicBool::new(false),
            });
        }
        let shared = Shared {
            items,
            next: AtomicUsize::new(0),
            published: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            helper_gone: AtomicBool::new(false),
            nanos: AtomicU64::new(0),
            helper: std::sync::OnceLock::new(),
            parked: AtomicBool::new(false),
        };
        let mut mine = Turn {
            shared: &shared,
            readers,
            read_at: Vec::with_capacity(n),
            ended: Vec::new(),
            released: 0,
            bytes: 0,
            raised: 0,
            res: Ok(()),
            cx,
        };
        // Alone until the turn's matching shows it is worth the helper (at once when the last
        // turn's did).
        let share = two || mine.run(Some(&self.pace), &mut after);
        if share && self.worker.is_none() {
            self.worker = crate::par::Worker::new().ok();
        }
        match (share, &mut self.worker) {
            (true, Some(w)) => {
                w.beside(|| shared.help(), || mine.run(None, &mut after));
            }
            (true, None) => {
                // No helper thread could be started: the rest here.
                mine.run(Some(&Pace::new(false)), &mut after);
            }
            (false, _) => {}
        }
        let Turn {
            ended,
            bytes,
            raised,
            res,
            ..
        } = mine;
        self.last = bytes;
        // Both threads' matching time, added: what one thread would take.
        let nanos = shared.nanos.load(Ordering::Relaxed) as f64;
        self.pace.after(bytes, raised, nanos, 1.0);
        res.map(|()| ended)
    }
}

/// A held pipeline of a turn.
struct Item<'p> {
    /// Locked by this thread to read it and to release it, by either thread to match it.
    pipeline: Mutex<&'p mut Pipeline>,
    /// Its whole lines are matched (`Pipeline::match_ahead`).
    matched: AtomicBool,
}

/// What the two threads of a turn share.
struct Shared<'p> {
    items: Vec<Item<'p>>,
    /// The next item to be matched by whichever thread comes first.
    next: AtomicUsize,
    /// Items read so far (they may be matched).
    published: AtomicUsize,
    /// Every item that will be read this turn is.
    closed: AtomicBool,
    /// The helper's job ended (normally, or by a panic that `beside` raises afterwards).
    helper_gone: AtomicBool,
    /// Nanoseconds spent matching, by both threads.
    nanos: AtomicU64,
    /// The helper thread, parked while there is nothing to match ...
    helper: std::sync::OnceLock<std::thread::Thread>,
    /// ... as it says here.
    parked: AtomicBool,
}

/// Spins of a waiting thread before it lets others run on its CPU.
const SPINS: u32 = 64;
/// How long the helper spins for the next read before it parks.
const HELPER_SPIN: std::time::Duration = std::time::Duration::from_micros(50);
/// The longest the helper stays parked without being woken (a safety net: it is woken).
const HELPER_PARK: std::time::Duration = std::time::Duration::from_millis(1);

impl<'p> Shared<'p> {
    /// Lock item `k` (a poisoned lock only means the other thread panicked: raised later).
    fn lock(&self, k: usize) -> std::sync::MutexGuard<'_, &'p mut Pipeline> {
        self.items[k]
            .pipeline
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Match item `k` (`helper`: with the pipeline's helper matcher).
    fn match_item(&self, k: usize, helper: bool) {
        let t = Instant::now();
        self.lock(k).match_ahead(helper);
        let nanos = u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_add(nanos, Ordering::Relaxed);
        self.items[k].matched.store(true, Ordering::Release);
    }

    /// Take the next item read and not yet taken, and match it. Returns false when there is
    /// none now.
    fn match_next(&self, helper: bool) -> bool {
        let k = self.next.load(Ordering::Acquire);
        if k >= self.published.load(Ordering::Acquire) {
            return false;
        }
        if self
            .next
            .compare_exchange(k, k + 1, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.match_item(k, helper);
        }
        true
    }

    /// The helper's job: match the items as they are read, until all are taken.
    fn help(&self) {
        struct Gone<'a>(&'a AtomicBool);
        impl Drop for Gone<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Release);
            }
        }
        let _gone = Gone(&self.helper_gone);
        let _ = self.helper.set(std::thread::current());
        let mut idle = None;
        loop {
            // Read before looking for work: items published before `closed` are seen.
            let closed = self.closed.load(Ordering::SeqCst);
            if self.match_next(true) {
                idle = None;
                continue;
            }
            if closed {
                return;
            }
            let since = *idle.get_or_insert_with(Instant::now);
            if since.elapsed() < HELPER_SPIN {
                std::hint::spin_loop();
                continue;
            }
            // PERF: parked, not spinning, while this thread reads or waits on a slow output:
            // the inputs' writers may need the CPU.
            self.parked.store(true, Ordering::SeqCst);
            // Looked at again once `parked` is said: a read published or a turn closed since
            // the look above is not slept through (and `wake` finds `parked`).
            if self.next.load(Ordering::SeqCst) >= self.published.load(Ordering::SeqCst)
                && !self.closed.load(Ordering::SeqCst)
            {
                std::thread::park_timeout(HELPER_PARK);
            }
            self.parked.store(false, Ordering::SeqCst);
            idle = None;
        }
    }

    /// Wake the helper if it is parked (an item was read, or the turn closed).
    fn wake(&self) {
        if self.parked.load(Ordering::SeqCst) {
            if let Some(t) = self.helper.get() {
                t.unpark();
            }
        }
    }
}

/// This thread's part of a turn.
struct Turn<'s, 'p, 't, 'a, 'b> {
    shared: &'s Shared<'p>,
    readers: Vec<(usize, &'t mut Input, &'t mut bool)>,
    /// When each item's first read returned.
    read_at: Vec<Instant>,
    ended: Vec<usize>,
    /// Items released so far.
    released: usize,
    bytes: usize,
    raised: u64,
    res: io::Result<()>,
    cx: TurnCx<'a, 'b>,
}

impl Turn<'_, '_, '_, '_, '_> {
    /// Read the inputs not yet read, releasing each as soon as it is matched: with `alone`,
    /// here right after its read, until the matching so far is worth a helper by `alone`'s
    /// measure (then returns true, the turn unfinished); without, by whichever of this
    /// thread and a helper thread comes first.
    fn run(
        &mut self,
        alone: Option<&Pace>,
        after: &mut impl FnMut(usize, &Input, &Pipeline),
    ) -> bool {
        let shared = self.shared;
        for k in self.read_at.len()..shared.items.len() {
            let (_, input, ready) = &mut self.readers[k];
            let at = Instant::now();
            let open = {
                let mut p = shared.lock(k);
                p.hold(true);
                let sink = &mut *self.cx.sink;
                read_turn(input, &mut p, ready, sink, self.cx.supervisor, self.cx.max)
            };
            self.read_at.push(at);
            match open {
                Ok(true) => {}
                Ok(false) => self.ended.push(self.readers[k].0),
                Err(e) => {
                    // What was read is still released; nothing more is read.
                    self.res = Err(e);
                    shared.published.store(k + 1, Ordering::SeqCst);
                    break;
                }
            }
            shared.published.store(k + 1, Ordering::SeqCst);
            if let Some(pace) = alone {
                shared.match_next(false);
                self.release_matched(after);
                let nanos = shared.nanos.load(Ordering::Relaxed) as f64;
                if pace.worth_sharing(self.bytes, nanos) && k + 1 < shared.items.len() {
                    return true;
                }
            } else {
                shared.wake();
                self.release_matched(after);
            }
        }
        shared.closed.store(true, Ordering::SeqCst);
        shared.wake();
        let published = shared.published.load(Ordering::Acquire);
        let mut spins = 0;
        while self.released < published {
            if self.release_matched(after) {
                spins = 0;
                continue;
            }
            if shared.match_next(false) {
                continue;
            }
            let k = self.released;
            if shared.helper_gone.load(Ordering::Acquire)
                && !shared.items[k].matched.load(Ordering::Acquire)
            {
                // The helper stopped (a panic, raised once this returns) before it matched
                // this one, or while it did: matched here, from the start.
                shared.match_item(k, false);
                continue;
            }
            spins += 1;
            if spins < SPINS {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        false
    }

    /// Release the items matched next in order. Returns whether any was.
    fn release_matched(&mut self, after: &mut impl FnMut(usize, &Input, &Pipeline)) -> bool {
        let shared = self.shared;
        let mut any = false;
        let published = shared.published.load(Ordering::Acquire);
        while self.released < published
            && shared.items[self.released].matched.load(Ordering::Acquire)
        {
            let k = self.released;
            let mut p = shared.lock(k);
            self.bytes += p.held_lines();
            self.raised += p.ahead_alarms();
            let sink = &mut *self.cx.sink;
            sink.dispatcher.read_at = Some(self.read_at[k]);
            // Every item is released, even after an output error (the first is returned).
            let r = p.release(sink);
            sink.dispatcher.read_at = None;
            sink.flush();
            let (token, input, _) = &self.readers[k];
            after(*token, input, &p);
            if self.res.is_ok() {
                self.res = r;
            }
            self.released += 1;
            any = true;
        }
        any
    }
}

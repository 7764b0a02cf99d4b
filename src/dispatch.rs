//! From matched lines to running actions, off the log path.
//!
//! Role: the reader raises alarms into bounded lock-free queues (`crossbeam_queue::ArrayQueue`),
//! one per *lane*; each lane is drained by one thread that applies anti-flood and
//! `alarm-msg-size` and runs the actions routed to it. Lane 0 is the main alarm thread (cheap,
//! non-blocking actions, and every action with `alarm-cheap`); each blocking alarm instance gets
//! a lane of its own, so a slow endpoint only delays its own alarm.
//!
//! Overflow: what happens to an alarm that finds its queue full (or its action without room:
//! 64 `cmd:` commands running) is the alarm's [`Overflow`] policy. `drop` counts it and keeps
//! the first and last message: when room returns the lane sends one *digest* through the
//! alarm's own action ("N alarms dropped between T1 and T2; first: …; last: …"). `block` makes
//! the reader wait for room (the log path slows, nothing is lost; `log:` alarms always block);
//! after SIGTERM/SIGINT it waits at most `alarm-grace`, then discards and counts. `spool`
//! blocks too, but its lane only appends to a file on disk (see `spool`), so it rarely waits.
//!
//! Events travel in [`Batch`]es: the reader copies each raised message into its open batch for
//! the lane and hands the batch over (one queue push, one wake-up) before the region's bytes are
//! written, or when it holds [`BATCH_EVENTS`] events; the lane returns emptied batches for reuse.
//! The queue's capacity is counted in events (`alarm-queue`) and in bytes of messages
//! ([`QUEUE_BYTES`]), the open batch included.
//! Invariants: the reader never locks and, once batches are recycled, allocates nothing per
//! raised line, except when an alarm is dropped (the digest keeps two messages). Lanes are
//! woken once per batch, not per event (`Parker`/`Unparker`). Anti-flood runs where the
//! action runs, so "the last message that instance actually ran" is exact. Every alarm raised
//! ends counted in exactly one of: ran, suppressed, dropped, discarded at shutdown
//! ([`AlarmSummary`]).
//! Rejected alternatives: a `Mutex<VecDeque>` (the reader would lock per event); unbounded
//! channels (memory grows without bound when an action is down).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_queue::{ArrayQueue, SegQueue};
use crossbeam_utils::sync::{Parker, Unparker};
use crossbeam_utils::CachePadded;

use crate::action::delivery::Failure;
use crate::action::{Action, Ctx, Outcome, Runner};
use crate::backoff::Backoff;
use crate::output::Output;
use crate::pipeline::Sink;
use crate::plan::DispatchPlan;
use crate::report::{report, DropCount};
use crate::spool::{Feed, Spool};

/// The log path's sink: bytes to the output, alarms to the dispatcher.
#[derive(Debug)]
pub(crate) struct LogSink<'a> {
    pub(crate) output: &'a Output,
    pub(crate) dispatcher: &'a mut Dispatcher,
}

impl LogSink<'_> {
    /// Wake the lanes that got alarms since the last flush (once per read, not per alarm).
    pub(crate) fn flush(&mut self) {
        self.dispatcher.flush();
    }
}

impl Sink for LogSink<'_> {
    #[inline]
    fn region(&mut self, region: &[u8]) {
        let base = self.output.passed();
        self.dispatcher.after = base + region.len() as u64;
        self.dispatcher.region = (region.as_ptr() as usize, region.len(), base);
        self.dispatcher.raised_at = None;
    }
    #[inline]
    fn pass(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        // The region's alarms go to their lanes before its bytes are written: a write that
        // waits (an output nobody reads) must not hold them back.
        self.dispatcher.hand_off_touched();
        self.output.write(bytes)
    }
    #[inline]
    fn alarm(&mut self, alarm: u32, msg: &[u8]) {
        // The line's place in the output: its offset in the region (the matcher's messages are
        // slices of it), known when the whole line is there (it ends in `\n`).
        let (start, len, base) = self.dispatcher.region;
        let addr = msg.as_ptr() as usize;
        let pos = match addr.checked_sub(start) {
            Some(off) if off + msg.len() <= len && msg.ends_with(b"\n") => {
                let at = base + off as u64;
                (at, at + msg.len() as u64)
            }
            _ => NO_POS,
        };
        self.dispatcher.raise_at(alarm, msg, pos);
    }
}

/// What an alarm does when its queue is full or its action has no room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Overflow {
    /// Count it; summarise the lost ones in a digest through the alarm's action.
    Drop,
    /// The reader waits for room: the log stream slows instead.
    Block,
    /// A bounded queue on disk that outlives an outage and a restart (delivery actions).
    Spool,
}

impl Overflow {
    pub(crate) fn parse(s: &str) -> Option<Overflow> {
        match s {
            "drop" => Some(Overflow::Drop),
            "block" => Some(Overflow::Block),
            "spool" => Some(Overflow::Spool),
            _ => None,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Overflow::Drop => "drop",
            Overflow::Block => "block",
            Overflow::Spool => "spool",
        }
    }
}

/// One raised alarm on its way to its action (a view into its [`Batch`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Event<'a> {
    pub alarm: u32,
    pub msg: &'a [u8],
    /// When the bytes of the line were read (the raise, for monitors): latency is measured
    /// from here.
    pub read: Instant,
    /// When the line was matched (for `max_age`).
    pub raised: Instant,
    /// The log output's position after the region that raised it: a `log:` line is written
    /// there, never before the line it reports.
    pub after: u64,
    /// Where the raising line starts and ends in the log output ([`NO_POS`] when unknown:
    /// monitors, a line cut to `log-master-bufsize`): `alarm-multiline` joins only lines that
    /// follow each other there.
    pub pos: (u64, u64),
}

/// An [`Event`] in a [`Batch`]: its message is `bytes[msg.0..msg.1]`.
#[derive(Debug, Clone, Copy)]
struct Head {
    alarm: u32,
    msg: (usize, usize),
    read: Instant,
    raised: Instant,
    after: u64,
    pos: (u64, u64),
}

/// The events the reader raised for one lane between two hand-offs, their messages in one
/// buffer. PERF: one queue push, one wake-up check and no allocation per event (a storm
/// raising every line paid a `Box<[u8]>`, a push and a pop per line, and the lane freed the
/// reader's allocations); emptied batches go back to the reader through the lane's `spare`
/// queue, so a steady storm allocates nothing.
#[derive(Debug, Default)]
struct Batch {
    events: Vec<Head>,
    bytes: Vec<u8>,
}

/// A batch is handed to its lane at the end of each read ([`Dispatcher::flush`]), or when it
/// holds this many events or bytes of messages.
const BATCH_EVENTS: usize = 256;
const BATCH_BYTES: usize = 64 * 1024;
/// Most bytes of messages a lane's queue holds (or two messages of `alarm-msg-size`, when
/// that is more): the events `alarm-queue` counts are bounded in memory too, as the 1,024
/// of `alarm-msg-size`'s default 8,192 bytes were before that default became 8,192 events.
const QUEUE_BYTES: usize = 8 << 20;
/// Emptied batches a lane keeps for its reader.
const SPARE_BATCHES: usize = 4;

impl Batch {
    fn event(&self, h: &Head) -> Event<'_> {
        Event {
            alarm: h.alarm,
            msg: self.bytes.get(h.msg.0..h.msg.1).unwrap_or_default(),
            read: h.read,
            raised: h.raised,
            after: h.after,
            pos: h.pos,
        }
    }

    fn clear(&mut self) {
        self.events.clear();
        self.bytes.clear();
    }
}

/// An unknown line position.
pub(crate) const NO_POS: (u64, u64) = (u64::MAX, u64::MAX);

/// Anti-flood for one alarm instance, exactly as uWSGI: a message is suppressed when it equals
/// the last message this instance ran and less than `freq` has passed since that run.
/// Suppressed messages do not move the window. `freq == 0` disables it.
#[derive(Debug, Default)]
pub(crate) struct AntiFlood {
    freq: Duration,
    last: Vec<u8>,
    last_run: Option<Instant>,
}

impl AntiFlood {
    pub(crate) fn new(freq: Duration) -> AntiFlood {
        AntiFlood {
            freq,
            last: Vec::new(),
            last_run: None,
        }
    }

    /// Whether `msg` may run at `now`; if so, it becomes the reference.
    #[cfg(test)]
    pub(crate) fn admit(&mut self, msg: &[u8], now: Instant) -> bool {
        self.decide(msg, now).is_ok()
    }

    /// [`admit`](Self::admit), telling when the message that suppresses `msg` ran. The live
    /// lanes call it with the clock, `replay` with the log's own time: one decision for both.
    pub(crate) fn decide(&mut self, msg: &[u8], now: Instant) -> Result<(), Instant> {
        // PERF: off (`alarm-freq 0`), nothing is ever held: no copy of each message (a storm
        // of `log:` alarms spent 2 % of the lane copying and comparing them).
        if self.freq.is_zero() {
            return Ok(());
        }
        if let Some(t) = self.last_run {
            if msg == self.last.as_slice() {
                if now.saturating_duration_since(t) < self.freq {
                    return Err(t);
                }
                // The same message again: it is the reference already.
                self.last_run = Some(now);
                return Ok(());
            }
        }
        self.last.clear();
        self.last.extend_from_slice(msg);
        self.last_run = Some(now);
        Ok(())
    }
}

/// A time for `{first}` and `{last}` in live alarms: the wall clock's, local, to the second.
fn wall(t: Instant) -> String {
    let ago = Instant::now().saturating_duration_since(t);
    crate::sys::time::local_iso(std::time::SystemTime::now() - ago)
}

/// An alarm's message: the line cut to `alarm-msg-size` (live and in `replay`).
#[inline]
pub(crate) fn message(line: &[u8], msg_size: usize) -> &[u8] {
    &line[..line.len().min(msg_size)]
}

/// A configured alarm instance, owned by the thread of its lane.
pub(crate) struct Instance {
    pub name: String,
    pub action: Action,
    /// Anti-flood, templates, keys, thresholds (see `suppress`).
    pub suppress: crate::suppress::Suppress,
    pub overflow: Overflow,
    /// The `spool` policy's queue on disk (opened at start-up).
    pub spool: Option<Arc<Spool>>,
}

/// Alarms of one alarm lost since its last digest.
#[derive(Debug, Clone)]
struct Lost {
    count: u64,
    first_at: SystemTime,
    last_at: SystemTime,
    first: Vec<u8>,
    last: Vec<u8>,
}

/// Longest sample message quoted in a digest.
const DIGEST_SAMPLE: usize = 512;

impl Lost {
    fn new(msg: &[u8]) -> Lost {
        let now = SystemTime::now();
        let sample = msg[..msg.len().min(DIGEST_SAMPLE)].to_vec();
        Lost {
            count: 1,
            first_at: now,
            last_at: now,
            first: sample.clone(),
            last: sample,
        }
    }

    fn add(&mut self, msg: &[u8]) {
        self.count += 1;
        self.last_at = SystemTime::now();
        self.last.clear();
        self.last
            .extend_from_slice(&msg[..msg.len().min(DIGEST_SAMPLE)]);
    }

    /// Put back a digest that could not run, merged with what was lost since.
    fn merge(&mut self, newer: Lost) {
        self.count += newer.count;
        self.last_at = newer.last_at;
        self.last = newer.last;
    }

    /// The digest's text.
    fn message(&self, alarm: &str) -> Vec<u8> {
        let text = |m: &[u8]| {
            String::from_utf8_lossy(m)
                .trim_end_matches(['\n', '\r'])
                .to_string()
        };
        format!(
            "logalarm: {} alarm(s) of \"{alarm}\" dropped between {} and {} (no room); first: {}; last: {}\n",
            self.count,
            crate::sys::time::local_iso(self.first_at),
            crate::sys::time::local_iso(self.last_at),
            text(&self.first),
            text(&self.last)
        )
        .into_bytes()
    }
}

/// One alarm's counters: written by its lane (and the reader), read at exit.
#[derive(Debug, Default)]
struct Counters {
    /// Raised by the reader (or a monitor): the one counter the log path writes, once per
    /// raising line, never per line; only the [`Dispatcher`] (one thread) writes it. On a cache line of its own: the lane writes the others
    /// (PERF: in a storm the two threads otherwise took the line from each other per event).
    raised: CachePadded<AtomicU64>,
    ran: AtomicU64,
    suppressed: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    discarded: AtomicU64,
    digests: AtomicU64,
    /// Written to the spool (delivered later: `ran` counts deliveries).
    spooled: AtomicU64,
    /// Spooled deliveries that failed for now and will be tried again.
    retried: AtomicU64,
    /// Keys forgotten to stay within `alarm-keys-max` (the lane's `Suppress`, published).
    keys_forgotten: AtomicU64,
}

/// Add one to a counter only the calling thread writes: a load and a store (other threads
/// only read it), not a locked add.
#[inline]
fn own_add(a: &AtomicU64, order: Ordering) {
    own_add_by(a, 1, order);
}

/// Add `by` to a counter only the calling thread writes (see [`own_add`]).
#[inline]
fn own_add_by(a: &AtomicU64, by: u64, order: Ordering) {
    a.store(a.load(Ordering::Relaxed).wrapping_add(by), order);
}

/// Upper bounds (seconds) of the latency histograms' buckets; the last bucket is +Inf.
pub(crate) const LATENCY_BOUNDS: [f64; 19] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_2, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0,
];

/// The latency histograms of each alarm ([`Dispatcher::latency`]): metric name, help, and the
/// JSON key of `/status`.
pub(crate) const LATENCIES: [(&str, &str, &str); 4] = [
    (
        "logalarm_alarm_read_seconds",
        "From the read of the raising line's bytes to its match",
        "read",
    ),
    (
        "logalarm_alarm_wait_seconds",
        "From the line's match to its action's start",
        "wait",
    ),
    (
        "logalarm_alarm_latency_seconds",
        "From the read of the raising line's bytes to its action's start",
        "latency",
    ),
    (
        "logalarm_alarm_run_seconds",
        "From the action's start to its end",
        "run",
    ),
];

/// A latency histogram of atomics: written by one lane, read by the metrics server.
#[derive(Debug, Default)]
pub(crate) struct Latency {
    buckets: [AtomicU64; LATENCY_BOUNDS.len() + 1],
    sum_ns: AtomicU64,
}

/// [`LATENCY_BOUNDS`] in nanoseconds (a test holds them equal).
const LATENCY_BOUNDS_NS: [u64; 19] = [
    10_000,
    25_000,
    50_000,
    100_000,
    200_000,
    500_000,
    1_000_000,
    2_000_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    10_000_000_000,
    60_000_000_000,
];

/// Per bit length `b` of a duration in nanoseconds: the first bound not below the smallest
/// such duration (`2^(b-1)`; 0 for 0), or the overflow bucket.
const FIRST_BUCKET_BY_BITS: [u8; 65] = {
    let mut t = [0u8; 65];
    let mut b = 0;
    while b <= 64 {
        let lo = if b == 0 { 0 } else { 1u64 << (b - 1) };
        let mut i = 0;
        while i < LATENCY_BOUNDS_NS.len() && LATENCY_BOUNDS_NS[i] < lo {
            i += 1;
        }
        t[b] = i as u8;
        b += 1;
    }
    t
};

/// The bucket of a duration of `ns` nanoseconds: the first bound not below it, or the
/// overflow bucket. PERF: a table by bit length and one comparison (each bound is at least
/// twice the one before, so a power-of-two interval holds at most one): four histograms per
/// event, and `perf annotate` put most of the lane's deciding on the binary search's chain of
/// dependent compares; replacing it cut a storm's CPU by 2.7 % (PERF.md "twentieth run"; a
/// walk over the bounds before the search, "seventeenth run").
#[inline]
fn bucket_of(ns: u64) -> usize {
    let i = FIRST_BUCKET_BY_BITS[(64 - ns.leading_zeros()) as usize] as usize;
    i + LATENCY_BOUNDS_NS.get(i).map_or(0, |&b| usize::from(b < ns))
}

impl Latency {
    /// Count `d`. Only the lane of the alarm writes its histograms (a reload that keeps an
    /// alarm keeps its lane; a changed one gets a new slot), so a load and a store suffice
    /// (PERF: four histograms per event, no locked instruction).
    fn record(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let i = bucket_of(ns);
        own_add_by(&self.buckets[i], 1, Ordering::Relaxed);
        own_add_by(&self.sum_ns, ns, Ordering::Relaxed);
    }

    /// (sum in seconds, count, count per bucket by upper bound; `f64::MAX` is +Inf, as
    /// prometheus-client writes it).
    pub(crate) fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let mut total = 0;
        let mut out = Vec::with_capacity(self.buckets.len());
        for (i, b) in self.buckets.iter().enumerate() {
            let n = b.load(Ordering::Relaxed);
            total += n;
            out.push((LATENCY_BOUNDS.get(i).copied().unwrap_or(f64::MAX), n));
        }
        (self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9, total, out)
    }
}

/// What one alarm shares between the reader and its lane.
#[derive(Debug, Default)]
struct AlarmShared {
    counts: Counters,
    /// Read → matched (the line waiting in its read buffer, then matching), raised → its
    /// action starts (dispatch and queue wait), read → action start (the whole path), and the
    /// action's own time.
    read: Latency,
    wait: Latency,
    total: Latency,
    run: Latency,
    /// Lost alarms not yet summarised (the `drop` policy).
    lost: Mutex<Option<Lost>>,
}

impl AlarmShared {
    /// Count one alarm lost for want of room and keep it for the digest.
    fn lose(&self, msg: &[u8]) {
        self.counts.dropped.fetch_add(1, Ordering::Relaxed);
        let mut lost = self.lost.lock().unwrap_or_else(|p| p.into_inner());
        match lost.as_mut() {
            Some(l) => l.add(msg),
            None => *lost = Some(Lost::new(msg)),
        }
    }
}

/// One alarm's fate, at exit.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct AlarmSummary {
    pub name: String,
    pub kind: &'static str,
    pub overflow: &'static str,
    pub raised: u64,
    pub ran: u64,
    pub suppressed: u64,
    pub failed: u64,
    pub dropped: u64,
    pub discarded: u64,
    pub digests: u64,
    pub spooled: u64,
    /// Left in the spool at exit, for the next start.
    pub kept: u64,
    pub keys_forgotten: u64,
}

struct Lane {
    label: String,
    /// Every alarm of this lane was removed by a reload: the thread ends once its queue is
    /// empty.
    retired: AtomicBool,
    /// Batches of events, in the order they were raised; at most `capacity` events and
    /// `byte_capacity` bytes of messages in all (`pushed - done`, the reader's open batch
    /// included: see [`Dispatcher::make_room`]). PERF: a `SegQueue`, whose blocks are
    /// allocated as batches come (one per 31), not an `ArrayQueue` of `capacity` slots made
    /// up front: 8,192 of them were 400 KiB per lane whether any alarm came or not.
    queue: SegQueue<Batch>,
    /// Emptied batches, back to the reader.
    spare: ArrayQueue<Batch>,
    capacity: usize,
    byte_capacity: usize,
    unparker: Unparker,
    /// Dropped at this lane's queue (the rate-limited report).
    dropped: AtomicU64,
    /// The alarm whose action runs now, plus one (0: none): an action still running when
    /// the grace period ends is counted as discarded.
    /// The alarm of each event of the batch the lane's thread holds, and the index of the next
    /// one it may take (`usize::MAX`: none, or the shutdown claimed the rest): an event is
    /// taken by the lane or counted as discarded by the shutdown, exactly once, even when the
    /// thread is stuck in an action when the grace period ends.
    hand: Mutex<Vec<u32>>,
    next: CachePadded<std::sync::atomic::AtomicUsize>,
    /// (PERF: the reader's and the lane's counters on cache lines of their own: sharing one,
    /// the lane's two swaps of `running` per event waited for the line the reader had
    /// taken: 47 % of the lane's own time in a storm.)
    running: CachePadded<AtomicU64>,
    /// Events queued here so far, and events this lane has finished with (run, held,
    /// dropped by the action, spooled or discarded): a [`Mark`] compares them. `pushed` is
    /// written by the reader only, `done` by the lane's thread only.
    pushed: CachePadded<AtomicU64>,
    done: CachePadded<AtomicU64>,
    /// The same for the bytes of the events' messages; `done_bytes` counts a batch's bytes
    /// once the lane has finished with all of it.
    pushed_bytes: CachePadded<AtomicU64>,
    done_bytes: CachePadded<AtomicU64>,
    /// The lane's thread ended.
    ended: AtomicBool,
}

/// The lanes' progress when some lines were passed on: [`Mark::reached`] once every alarm
/// those lines raised is handled. `--nats` acknowledges a message only then, so an instance
/// killed with alarms still queued has its lines delivered again to another.
#[derive(Debug, Default)]
#[cfg_attr(not(feature = "fleet"), allow(dead_code))] // only --nats acknowledges
pub(crate) struct Mark(Vec<(Arc<Lane>, u64)>);

impl Lane {
    /// Events queued and not yet handled (the reader's open batch not counted).
    fn queued(&self) -> usize {
        let done = self.done.load(Ordering::Acquire);
        let pushed = self.pushed.load(Ordering::Acquire);
        usize::try_from(pushed.saturating_sub(done)).unwrap_or(usize::MAX)
    }

    /// Bytes of messages queued and not yet handled (counted free a batch at a time).
    fn queued_bytes(&self) -> usize {
        let done = self.done_bytes.load(Ordering::Acquire);
        let pushed = self.pushed_bytes.load(Ordering::Acquire);
        usize::try_from(pushed.saturating_sub(done)).unwrap_or(usize::MAX)
    }
}

impl std::fmt::Debug for Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label)
    }
}

#[cfg_attr(not(feature = "fleet"), allow(dead_code))]
impl Mark {
    /// Whether every event queued before the mark was taken is handled (a lane whose thread
    /// ended handles nothing more: its events were counted as discarded).
    pub(crate) fn reached(&self) -> bool {
        self.0
            .iter()
            .all(|(l, n)| l.done.load(Ordering::Acquire) >= *n || l.ended.load(Ordering::Acquire))
    }
}

struct Shared {
    closing: AtomicBool,
    /// Per slot: an alarm definition (a reload that adds or changes an alarm takes a new
    /// slot). Allocated once, [`RELOAD_SLOTS`] more than the first configuration needs, so the
    /// reader and the lanes index it without a lock.
    alarms: Box<[AlarmShared]>,
    /// What the summary and the metrics call each slot in use (read at a scrape and at exit).
    table: Mutex<Vec<SlotInfo>>,
    /// Every lane, for the queue gauges.
    lanes: Mutex<Vec<Arc<Lane>>>,
}

/// Slots a process can add by reloads before a reload that adds alarms needs a restart.
pub(crate) const RELOAD_SLOTS: usize = 256;

/// How one slot is named and run.
#[derive(Debug, Clone)]
struct SlotInfo {
    name: String,
    kind: &'static str,
    overflow: Overflow,
}

impl Shared {
    fn table(&self) -> std::sync::MutexGuard<'_, Vec<SlotInfo>> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The delivery thread of a `spool` alarm.
struct Worker {
    alarm: usize,
    spool: Arc<Spool>,
    unparker: Unparker,
    thread: JoinHandle<()>,
}

/// Producer side, owned by the reader.
pub(crate) struct Dispatcher {
    lanes: Vec<Arc<Lane>>,
    /// Alarm rank (as the rules and monitors raise it) → slot.
    slots: Vec<u32>,
    /// Per slot: its lane, its overflow policy, its definition key (see `AlarmPlan::key`) and
    /// name, and whether a rank still routes to it.
    route: Vec<u16>,
    overflow: Vec<Overflow>,
    keys: Vec<String>,
    names: Vec<String>,
    active: Vec<bool>,
    /// Per lane: its slots (a lane whose slots are all removed is retired).
    lane_slots: Vec<Vec<u32>>,
    queue_capacity: usize,
    cheap: bool,
    /// Per lane: the batch being filled, and how many more events it may take before the
    /// queue's room is counted again (0: count first, see `make_room`).
    open: Vec<Batch>,
    room: Vec<usize>,
    /// The same for the bytes of messages (see `count_room`).
    room_bytes: Vec<usize>,
    touched: Vec<bool>,
    msg_size: usize,
    /// See [`Event::after`]; set by [`LogSink`] before each region.
    after: u64,
    /// When the bytes being matched were read: set by the log sources before they feed a
    /// read's bytes, cleared by [`Dispatcher::flush`] after (monitors' raises then use their
    /// own time).
    pub(crate) read_at: Option<Instant>,
    /// The match time of the region's alarms: read once, at its first alarm (PERF: a storm
    /// raising every line read the clock per line: 18 % of its CPU with the lane's reads).
    raised_at: Option<Instant>,
    /// The region being matched: its address, length and output offset (see
    /// [`Event::pos`]).
    region: (usize, usize, u64),
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    workers: Vec<Worker>,
    /// What was reported of each lane's `dropped`.
    drops: Vec<DropCount>,
    ctx: Arc<Ctx>,
    /// Set by SIGTERM/SIGINT: a blocked reader waits at most `grace` more.
    stop: Arc<AtomicBool>,
    stop_seen: Option<Instant>,
    grace: Duration,
}

/// What a reload did to the alarms.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Reconfigured {
    pub kept: usize,
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
}

/// What happened at shutdown.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Summary {
    pub ran: u64,
    pub suppressed: u64,
    pub dropped: u64,
    pub discarded: u64,
    pub failed: u64,
    /// `cmd:` commands started.
    pub(crate) commands: u64,
    /// Threads still running an action when the grace period ended.
    pub unfinished: usize,
    /// Per alarm, in rank order.
    pub alarms: Vec<AlarmSummary>,
}

/// A read-only view of the dispatcher's counters and queues, for `--metrics` and `--stats`.
#[derive(Clone)]
pub(crate) struct Probe {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probe").finish_non_exhaustive()
    }
}

/// One alarm's counters now.
#[derive(Debug, Clone, Default)]
pub(crate) struct AlarmNow {
    pub name: String,
    pub action: &'static str,
    pub overflow: &'static str,
    pub raised: u64,
    pub ran: u64,
    pub suppressed: u64,
    pub dropped: u64,
    pub discarded: u64,
    pub failed: u64,
    pub spooled: u64,
    pub retried: u64,
    pub digests: u64,
    pub keys_forgotten: u64,
}

impl Probe {
    /// Every alarm's counters, by slot (rank order until a reload adds slots).
    pub(crate) fn alarms(&self) -> Vec<AlarmNow> {
        let table = self.shared.table().clone();
        table
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let c = &self.shared.alarms[i].counts;
                // Acquire: `ran` is released after the event's histograms are recorded, which a
                // scrape reads after these counters.
                let get = |x: &AtomicU64| x.load(Ordering::Acquire);
                AlarmNow {
                    name: t.name.clone(),
                    action: t.kind,
                    overflow: t.overflow.name(),
                    raised: get(&c.raised),
                    ran: get(&c.ran),
                    suppressed: get(&c.suppressed),
                    dropped: get(&c.dropped),
                    discarded: get(&c.discarded),
                    failed: get(&c.failed),
                    spooled: get(&c.spooled),
                    retried: get(&c.retried),
                    digests: get(&c.digests),
                    keys_forgotten: get(&c.keys_forgotten),
                }
            })
            .collect()
    }

    /// Alarm `i`'s latency histograms: read → matched, matched → action start, read → action
    /// start, action start → its end (the order of [`LATENCIES`]).
    pub(crate) fn latency(&self, i: usize) -> Option<[&Latency; 4]> {
        self.shared
            .alarms
            .get(i)
            .map(|a| [&a.read, &a.wait, &a.total, &a.run])
    }

    /// Each lane's (name, events queued now, capacity).
    pub(crate) fn queues(&self) -> Vec<(String, usize, usize)> {
        let lanes = self
            .shared
            .lanes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        lanes
            .iter()
            .map(|l| (l.label.clone(), l.queued(), l.capacity))
            .collect()
    }
}

/// Wait until `done()` or `deadline`, looking again after 20 µs, then twice as long each time
/// up to 2 ms: a lane told to stop usually ends within microseconds, and a fixed 2 ms nap was
/// most of a short run's exit.
fn wait_until(deadline: Instant, mut done: impl FnMut() -> bool) -> bool {
    let mut nap = Duration::from_micros(20);
    loop {
        if done() {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        std::thread::sleep(nap.min(deadline - now));
        nap = (nap * 2).min(Duration::from_millis(2));
    }
}

impl Dispatcher {
    /// A view of the counters and queues for the metrics server.
    pub(crate) fn probe(&self) -> Probe {
        Probe {
            shared: self.shared.clone(),
        }
    }

    /// Start the lanes for `instances` (rank order, each with its definition key).
    /// `cheap` puts all on lane 0. `stop` is set by SIGTERM/SIGINT.
    pub(crate) fn start(
        instances: Vec<(Instance, String)>,
        settings: &DispatchPlan,
        ctx: Ctx,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<Dispatcher> {
        let n = instances.len();
        let shared = Arc::new(Shared {
            closing: AtomicBool::new(false),
            alarms: (0..n + RELOAD_SLOTS)
                .map(|_| AlarmShared::default())
                .collect(),
            table: Mutex::new(Vec::new()),
            lanes: Mutex::new(Vec::new()),
        });
        let mut d = Dispatcher {
            lanes: Vec::new(),
            slots: (0..n as u32).collect(),
            route: Vec::new(),
            overflow: Vec::new(),
            keys: Vec::new(),
            names: Vec::new(),
            active: Vec::new(),
            lane_slots: Vec::new(),
            queue_capacity: settings.queue.max(1),
            cheap: settings.cheap,
            open: Vec::new(),
            room: Vec::new(),
            room_bytes: Vec::new(),
            touched: Vec::new(),
            msg_size: settings.msg_size,
            after: 0,
            read_at: None,
            raised_at: None,
            region: (0, 0, 0),
            shared,
            threads: Vec::new(),
            workers: Vec::new(),
            drops: Vec::new(),
            ctx: Arc::new(ctx),
            stop,
            stop_seen: None,
            grace: settings.grace,
        };
        // Lane 0 first (the main alarm thread), then one per blocking instance.
        let mut groups: Vec<(String, Vec<(u32, Instance)>)> = vec![("main".into(), Vec::new())];
        for (mut inst, key) in instances {
            let slot = d.add_slot(&mut inst, key);
            let lane = if !d.cheap && inst.action.blocking() {
                groups.push((format!("alarm \"{}\"", inst.name), Vec::new()));
                groups.len() - 1
            } else {
                0
            };
            groups[lane].1.push((slot, inst));
        }
        for (label, group) in groups {
            d.start_lane(label, group)?;
        }
        Ok(d)
    }

    /// Apply a reloaded configuration's alarms (`alarms`, in the new rank order): an alarm
    /// whose definition is unchanged keeps its slot, lane, instance and anti-flood state; an
    /// added or changed one gets a new slot and a lane of its own (`make` builds its
    /// instance); a removed or replaced one is no longer raised, runs what is queued for it,
    /// and its lane ends once empty. Nothing changes when it returns an error.
    pub(crate) fn reconfigure(
        &mut self,
        alarms: Vec<crate::plan::AlarmPlan>,
        msg_size: usize,
        mut make: impl FnMut(crate::plan::AlarmPlan) -> Result<(Instance, String), String>,
    ) -> Result<Reconfigured, String> {
        // What was raised under the old configuration goes to its lanes first.
        for lane in 0..self.lanes.len() {
            self.hand_off(lane);
        }
        let active: std::collections::HashMap<&str, u32> = self
            .names
            .iter()
            .enumerate()
            .filter(|(i, _)| self.active[*i])
            .map(|(i, n)| (n.as_str(), i as u32))
            .collect();
        let mut report = Reconfigured::default();
        // First every check, then the instances, then the change: all or nothing.
        let mut plan: Vec<Result<u32, crate::plan::AlarmPlan>> = Vec::new();
        for a in alarms {
            match active.get(a.name.as_str()) {
                Some(&slot) if self.keys[slot as usize] == a.key => {
                    report.kept += 1;
                    plan.push(Ok(slot));
                }
                Some(&slot) => {
                    if self.overflow[slot as usize] == Overflow::Spool {
                        return Err(format!(
                            "alarm \"{}\" keeps a spool and its definition changed: restart logalarm to apply it",
                            a.name
                        ));
                    }
                    report.changed.push(a.name.clone());
                    plan.push(Err(a));
                }
                None => {
                    report.added.push(a.name.clone());
                    plan.push(Err(a));
                }
            }
        }
        let new = plan.iter().filter(|p| p.is_err()).count();
        if self.route.len() + new > self.shared.alarms.len() {
            return Err(format!(
                "this reload would add {new} alarm definition(s), beyond the {RELOAD_SLOTS} that reloads may add: restart logalarm"
            ));
        }
        let mut built: Vec<Result<u32, (Instance, String)>> = Vec::with_capacity(plan.len());
        for p in plan {
            built.push(match p {
                Ok(slot) => Ok(slot),
                Err(a) => Err(make(a)?),
            });
        }
        let kept: std::collections::HashSet<u32> = built
            .iter()
            .filter_map(|b| b.as_ref().ok().copied())
            .collect();
        for (name, &slot) in &active {
            if !kept.contains(&slot) && !report.changed.iter().any(|c| c == name) {
                report.removed.push(name.to_string());
            }
        }
        let mut slots = Vec::with_capacity(built.len());
        let mut shared_lane: Vec<(u32, Instance)> = Vec::new();
        let mut own_lanes: Vec<(String, Vec<(u32, Instance)>)> = Vec::new();
        for b in built {
            match b {
                Ok(slot) => slots.push(slot),
                Err((mut inst, key)) => {
                    let slot = self.add_slot(&mut inst, key);
                    slots.push(slot);
                    if !self.cheap && inst.action.blocking() {
                        own_lanes.push((format!("alarm \"{}\"", inst.name), vec![(slot, inst)]));
                    } else {
                        shared_lane.push((slot, inst));
                    }
                }
            }
        }
        if !shared_lane.is_empty() {
            own_lanes.push((format!("reload {}", self.lanes.len()), shared_lane));
        }
        for (label, group) in own_lanes {
            self.start_lane(label, group)
                .map_err(|e| format!("cannot start a lane: {e}"))?;
        }
        // Retire what no rank routes to any more.
        let routed: std::collections::HashSet<u32> = slots.iter().copied().collect();
        for (slot, on) in self.active.iter_mut().enumerate() {
            if *on && !routed.contains(&(slot as u32)) {
                *on = false;
                if let Some(t) = self.shared.table().get_mut(slot) {
                    t.name.push_str(" (before the reload)");
                }
            }
        }
        for (i, lane) in self.lanes.iter().enumerate().skip(1) {
            if self.lane_slots[i].iter().all(|&s| !self.active[s as usize]) {
                lane.retired.store(true, Ordering::SeqCst);
                lane.unparker.unpark();
            }
        }
        self.slots = slots;
        self.msg_size = msg_size;
        Ok(report)
    }

    /// Take the next slot for `inst` (its counters, its name in the summary).
    fn add_slot(&mut self, inst: &mut Instance, key: String) -> u32 {
        if let Some(c) = &self.ctx.cluster {
            inst.suppress.set_link(c.link(&inst.name));
        }
        let slot = self.route.len() as u32;
        self.route.push(0);
        self.overflow.push(inst.overflow);
        self.keys.push(key);
        self.names.push(inst.name.clone());
        self.active.push(true);
        self.shared.table().push(SlotInfo {
            name: inst.name.clone(),
            kind: inst.action.kind(),
            overflow: inst.overflow,
        });
        slot
    }

    /// Start a lane (its queue and thread) for `group` (slot, instance); spooled instances get
    /// their delivery thread.
    fn start_lane(
        &mut self,
        label: String,
        mut group: Vec<(u32, Instance)>,
    ) -> std::io::Result<()> {
        let index = self.lanes.len();
        for (slot, inst) in &mut group {
            self.route[*slot as usize] = index as u16;
            if let Some(spool) = inst.spool.clone() {
                let w = start_worker(inst, *slot as usize, spool, &self.shared, &self.ctx)?;
                self.workers.push(w);
            }
        }
        let parker = Parker::new();
        let lane = Arc::new(Lane {
            label,
            retired: AtomicBool::new(false),
            queue: SegQueue::new(),
            spare: ArrayQueue::new(SPARE_BATCHES),
            capacity: self.queue_capacity,
            byte_capacity: QUEUE_BYTES.max(2 * self.msg_size),
            unparker: parker.unparker().clone(),
            dropped: AtomicU64::new(0),
            running: CachePadded::new(AtomicU64::new(0)),
            hand: Mutex::new(Vec::new()),
            next: CachePadded::new(std::sync::atomic::AtomicUsize::new(usize::MAX)),
            pushed: CachePadded::new(AtomicU64::new(0)),
            done: CachePadded::new(AtomicU64::new(0)),
            pushed_bytes: CachePadded::new(AtomicU64::new(0)),
            done_bytes: CachePadded::new(AtomicU64::new(0)),
            ended: AtomicBool::new(false),
        });
        let (l, s, c) = (lane.clone(), self.shared.clone(), self.ctx.clone());
        let name = if index == 0 {
            "logalarm-alarm".to_string()
        } else {
            format!("logalarm-lane{index}")
        };
        self.lane_slots
            .push(group.iter().map(|(slot, _)| *slot).collect());
        self.threads.push(
            std::thread::Builder::new()
                .name(name)
                .spawn(move || run_lane(l, parker, group, s, c))?,
        );
        self.shared
            .lanes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(lane.clone());
        self.lanes.push(lane);
        self.open.push(Batch::default());
        self.room.push(0);
        self.room_bytes.push(0);
        self.touched.push(false);
        self.drops.push(DropCount::default());
        Ok(())
    }

    /// Queue alarm `alarm` with `msg` (cut to `alarm-msg-size`). Never blocks, except when the
    /// queue is full and the alarm's policy is `block` or `spool`: then the reader waits for
    /// room.
    #[inline]
    pub(crate) fn raise(&mut self, alarm: u32, msg: &[u8]) {
        // A monitor's raise: its own time, not a region's or a read's.
        self.raised_at = None;
        self.read_at = None;
        self.raise_at(alarm, msg, NO_POS);
    }

    /// [`raise`](Self::raise) for a log line at `pos` in the output.
    #[inline]
    pub(crate) fn raise_at(&mut self, alarm: u32, msg: &[u8], pos: (u64, u64)) {
        let Some(&slot) = self.slots.get(alarm as usize) else {
            return;
        };
        let a = slot as usize;
        let Some(&lane) = self.route.get(a) else {
            return;
        };
        // Only the dispatcher (one thread: the reader's) writes `raised`: a load and a store
        // (PERF: the locked add was a quarter of this function in a storm).
        own_add(&self.shared.alarms[a].counts.raised, Ordering::Relaxed);
        let lane = lane as usize;
        let msg = message(msg, self.msg_size);
        let raised = *self.raised_at.get_or_insert_with(Instant::now);
        let read = self.read_at.unwrap_or(raised);
        if (self.room[lane] == 0 || self.room_bytes[lane] < msg.len())
            && !self.make_room(lane, a, msg)
        {
            return;
        }
        self.room[lane] -= 1;
        self.room_bytes[lane] -= msg.len();
        let b = &mut self.open[lane];
        let start = b.bytes.len();
        b.bytes.extend_from_slice(msg);
        b.events.push(Head {
            alarm: slot,
            msg: (start, b.bytes.len()),
            read,
            raised,
            after: self.after,
            pos,
        });
        self.touched[lane] = true;
        if b.events.len() >= BATCH_EVENTS || b.bytes.len() >= BATCH_BYTES {
            self.hand_off(lane);
        }
    }

    /// Hand `lane` the reader's open batch, and wake it.
    fn hand_off(&mut self, lane: usize) {
        let l = &self.lanes[lane];
        let n = self.open[lane].events.len();
        if n == 0 {
            return;
        }
        let next = l.spare.pop().unwrap_or_default();
        let batch = std::mem::replace(&mut self.open[lane], next);
        l.pushed_bytes
            .fetch_add(batch.bytes.len() as u64, Ordering::Release);
        l.pushed.fetch_add(n as u64, Ordering::Release);
        // Bounded by the count of events and bytes ([`make_room`](Self::make_room)).
        l.queue.push(batch);
        // Woken per batch (per region, or per full batch): not per event.
        l.unparker.unpark();
    }

    /// The lane's queue has no room by the reader's last count: count again (the lane has
    /// handled events since), and if it is full apply alarm slot `a`'s overflow policy to
    /// `msg`. True when the event may be queued now.
    #[cold]
    fn make_room(&mut self, lane: usize, a: usize, msg: &[u8]) -> bool {
        self.count_room(lane);
        if self.fits(lane, 1, msg.len()) {
            return true;
        }
        // Full: the lane gets what is open, and wakes up now.
        self.hand_off(lane);
        match self.overflow[a] {
            Overflow::Drop => {
                self.lanes[lane].unparker.unpark();
                self.lanes[lane].dropped.fetch_add(1, Ordering::Relaxed);
                self.shared.alarms[a].lose(msg);
                false
            }
            Overflow::Block | Overflow::Spool => {
                // Back-pressure: wait until the event fits (the log path slows instead of
                // losing the alarm). A lane whose thread is gone cannot make room, and after
                // SIGTERM/SIGINT the wait is bounded by `alarm-grace`: the alarm is then
                // discarded and counted.
                // PERF: wait for a quarter of the queue (a batch with the default queue)
                // to be free, not for one place: resuming at the first free place made the
                // reader count the lane's progress again at every event of a storm, and the
                // lane's per-event counter store wait for the cache line the reader had just
                // read (PERF.md "fourteenth run"). The lane still has three quarters of its
                // queue to run meanwhile.
                let l = &self.lanes[lane];
                let resume = ((l.capacity / 4).max(1), msg.len().max(l.byte_capacity / 4));
                let mut spins = 0u32;
                loop {
                    self.lanes[lane].unparker.unpark();
                    self.count_room(lane);
                    if self.fits(lane, resume.0, resume.1) {
                        return true;
                    }
                    let gone = self.threads.get(lane).is_none_or(|t| t.is_finished());
                    if gone || self.stop_waiting() {
                        if self.fits(lane, 1, msg.len()) {
                            // It fits (the rest of the quarter is not waited for).
                            return true;
                        }
                        let counts = &self.shared.alarms[a].counts;
                        counts.discarded.fetch_add(1, Ordering::Relaxed);
                        return false;
                    }
                    spins += 1;
                    if spins < 64 {
                        std::thread::yield_now();
                    } else {
                        std::thread::sleep(Duration::from_micros(100));
                    }
                }
            }
        }
    }

    /// Count `lane`'s room again: the events and bytes of messages it may still take, its
    /// reader's open batch included.
    fn count_room(&mut self, lane: usize) {
        let (l, open) = (&self.lanes[lane], &self.open[lane]);
        self.room[lane] = l.capacity.saturating_sub(l.queued() + open.events.len());
        let bytes = l.queued_bytes() + open.bytes.len();
        // A lane holding nothing takes any one message (a reload may have raised
        // alarm-msg-size above the byte capacity the lane was made with).
        let least = if bytes == 0 { self.msg_size } else { 0 };
        self.room_bytes[lane] = l.byte_capacity.saturating_sub(bytes).max(least);
    }

    /// Whether `lane` has room for `events` events and `bytes` bytes of messages by the last
    /// count.
    fn fits(&self, lane: usize, events: usize, bytes: usize) -> bool {
        self.room[lane] >= events && self.room_bytes[lane] >= bytes
    }

    /// Whether a stop was requested longer than `alarm-grace` ago.
    fn stop_waiting(&mut self) -> bool {
        if !self.stop.load(Ordering::Relaxed) {
            return false;
        }
        let since = *self.stop_seen.get_or_insert_with(Instant::now);
        since.elapsed() >= self.grace
    }

    /// The lanes' progress now (see [`Mark`]): the lanes with events not yet handled.
    #[cfg_attr(not(feature = "fleet"), allow(dead_code))]
    pub(crate) fn mark(&mut self) -> Mark {
        for lane in 0..self.lanes.len() {
            self.hand_off(lane);
        }
        Mark(
            self.lanes
                .iter()
                .filter_map(|l| {
                    let n = l.pushed.load(Ordering::Relaxed);
                    (l.done.load(Ordering::Acquire) < n).then(|| (l.clone(), n))
                })
                .collect(),
        )
    }

    /// Hand the lanes that got events what is open and wake them, and report drops (at most
    /// once a second).
    pub(crate) fn flush(&mut self) {
        self.read_at = None;
        self.raised_at = None;
        self.hand_off_touched();
        self.report_drops(false);
    }

    /// Hand each lane that got events its open batch (and wake it).
    #[inline]
    pub(crate) fn hand_off_touched(&mut self) {
        for i in 0..self.touched.len() {
            if self.touched[i] {
                self.hand_off(i);
                self.touched[i] = false;
            }
        }
    }

    fn report_drops(&mut self, force: bool) {
        let now = Instant::now();
        for (lane, drops) in self.lanes.iter().zip(&mut self.drops) {
            let total = lane.dropped.load(Ordering::Relaxed);
            if let Some((new, total)) = drops.due_of(total, now, force) {
                report!(
                    Alarm,
                    "queue of {} full: {new} alarm(s) dropped ({total} in all)",
                    lane.label
                );
            }
        }
    }

    /// Let queued alarms run for at most `grace`, wait for `cmd` children within the same
    /// deadline, and stop the lanes. What is still queued then is discarded and counted.
    pub(crate) fn shutdown(mut self, grace: Duration) -> Summary {
        self.flush();
        let deadline = Instant::now() + grace;
        self.shared.closing.store(true, Ordering::SeqCst);
        for l in &self.lanes {
            l.unparker.unpark();
        }
        wait_until(deadline, || self.threads.iter().all(|t| t.is_finished()));
        // The lanes have written their last alarms into the spools: the delivery threads
        // deliver what they can within the same deadline, the rest stays for the next start.
        for w in &self.workers {
            w.unparker.unpark();
        }
        wait_until(deadline, || {
            self.workers.iter().all(|w| w.thread.is_finished())
        });
        self.ctx.stopping.store(true, Ordering::SeqCst);
        let mut kept = vec![0u64; self.route.len()];
        for w in self.workers.drain(..) {
            w.unparker.unpark();
            wait_until(Instant::now() + Duration::from_secs(1), || {
                w.thread.is_finished()
            });
            if w.thread.is_finished() {
                let _ = w.thread.join();
            }
            kept[w.alarm] = w.spool.pending();
            if kept[w.alarm] > 0 {
                report!(
                    Alarm,
                    "alarm \"{}\": {} alarm(s) kept in its spool {} for the next start",
                    self.names[w.alarm],
                    kept[w.alarm],
                    w.spool.dir().display()
                );
            }
        }
        let mut unfinished = 0;
        for (t, lane) in self.threads.drain(..).zip(&self.lanes) {
            if t.is_finished() {
                let _ = t.join();
            } else {
                unfinished += 1;
                // Its thread is inside an action: that one and what waits behind it will
                // not end or run.
                let running = lane.running.swap(0, Ordering::SeqCst);
                if let Some(a) = running
                    .checked_sub(1)
                    .and_then(|a| self.shared.alarms.get(a as usize))
                {
                    a.counts.discarded.fetch_add(1, Ordering::Relaxed);
                }
                // The events of its batch it has not taken.
                let from = lane.next.swap(usize::MAX, Ordering::AcqRel);
                let hand = lane.hand.lock().unwrap_or_else(|p| p.into_inner());
                for &id in hand.get(from..).unwrap_or_default() {
                    if let Some(a) = self.shared.alarms.get(id as usize) {
                        a.counts.discarded.fetch_add(1, Ordering::Relaxed);
                    }
                }
                drop(hand);
                discard_queue(lane, &self.shared);
            }
        }
        let mut children = self.ctx.children.wait_all(deadline);
        if children > 0 {
            // They would run on after logalarm, their output lost: stopped, and what they
            // wrote until then is forwarded (at most a second more).
            let killed = self.ctx.children.kill_all();
            children = self
                .ctx
                .children
                .wait_all(Instant::now() + Duration::from_secs(1));
            report!(
                Alarm,
                "{killed} cmd alarm command(s) still running after the grace period: killed"
            );
        }
        self.report_drops(true);
        // The same counters the metrics read, plus what stays in each spool.
        let alarms: Vec<AlarmSummary> = self
            .probe()
            .alarms()
            .into_iter()
            .enumerate()
            .map(|(i, a)| AlarmSummary {
                name: a.name,
                kind: a.action,
                overflow: a.overflow,
                raised: a.raised,
                ran: a.ran,
                suppressed: a.suppressed,
                failed: a.failed,
                dropped: a.dropped,
                discarded: a.discarded,
                digests: a.digests,
                spooled: a.spooled,
                kept: kept.get(i).copied().unwrap_or(0),
                keys_forgotten: a.keys_forgotten,
            })
            .collect();
        let sum = |f: fn(&AlarmSummary) -> u64| alarms.iter().map(f).sum();
        Summary {
            ran: sum(|a| a.ran),
            suppressed: sum(|a| a.suppressed),
            dropped: sum(|a| a.dropped),
            discarded: sum(|a| a.discarded),
            failed: sum(|a| a.failed),
            unfinished: unfinished + children,
            commands: self.ctx.children.started() as u64,
            alarms,
        }
    }
}

/// Empty `lane`'s queue, counting each event as discarded at shutdown.
fn discard_queue(lane: &Lane, shared: &Shared) -> u64 {
    let mut n = 0;
    while let Some(batch) = lane.queue.pop() {
        n += discard(&batch.events, shared);
    }
    n
}

/// Count `events` as discarded at shutdown.
fn discard(events: &[Head], shared: &Shared) -> u64 {
    for h in events {
        if let Some(a) = shared.alarms.get(h.alarm as usize) {
            a.counts.discarded.fetch_add(1, Ordering::Relaxed);
        }
    }
    events.len() as u64
}

/// The instances of one lane, indexed by alarm id, and when each last sent a digest.
struct LaneAlarms {
    by_id: Vec<Option<(Instance, Option<Instant>)>>,
}

impl LaneAlarms {
    fn new(group: Vec<(u32, Instance)>) -> LaneAlarms {
        let mut by_id: Vec<Option<(Instance, Option<Instant>)>> = Vec::new();
        for (id, inst) in group {
            let id = id as usize;
            if by_id.len() <= id {
                by_id.resize_with(id + 1, || None);
            }
            by_id[id] = Some((inst, None));
        }
        LaneAlarms { by_id }
    }

    /// Run one event: anti-flood, the action, the counts.
    /// Returns false when the shutdown gave up on this lane while the action ran (it counted
    /// the event as discarded; the lane ends).
    fn run(&mut self, ev: &Event, shared: &Shared, run: &mut Runner, lane: &Lane) -> bool {
        let Some(Some((inst, _))) = self.by_id.get_mut(ev.alarm as usize) else {
            return true;
        };
        let a = &shared.alarms[ev.alarm as usize];
        let now = run.ended.take().unwrap_or_else(Instant::now);
        a.read.record(run.spans[0].between(ev.read, ev.raised));
        // alarm-multiline: the line may start or join an event, decided when it is complete.
        let ok = match inst.suppress.gather(ev.msg, ev.pos, now) {
            Some(held) => {
                // The gathered event's `log:` line goes after its last line.
                run.set_after(ev.after);
                if held == crate::suppress::Held::Merged {
                    a.counts.suppressed.fetch_add(1, Ordering::Relaxed);
                }
                true
            }
            None => {
                let stamps = (Some(ev.read), ev.raised, now);
                decide_and_fire(inst, a, ev.alarm, ev.msg, stamps, ev.after, run, lane)
            }
        };
        let after = run.after();
        ok && complete_gathered(inst, a, ev.alarm, after, run, lane, false)
    }

    /// Send the digest of each alarm that lost alarms, at most one a second per alarm (all
    /// that are left when `last`). Returns whether one is still waiting (its action had no
    /// room).
    fn digests(&mut self, shared: &Shared, run: &mut Runner, last: bool) -> bool {
        let mut waiting = false;
        for (id, slot) in self.by_id.iter_mut().enumerate() {
            let Some((inst, sent)) = slot else {
                continue;
            };
            if !last && sent.is_some_and(|t| t.elapsed() < crate::report::EVERY) {
                continue;
            }
            let a = &shared.alarms[id];
            let Some(lost) = a.lost.lock().unwrap_or_else(|p| p.into_inner()).take() else {
                continue;
            };
            *sent = Some(Instant::now());
            let msg = lost.message(&inst.name);
            // A digest bypasses anti-flood: it is the news that alarms were lost.
            match inst.action.fire(&inst.name, &msg, Instant::now(), run) {
                Outcome::Dropped => {
                    // Still no room: kept for the next try, with what is lost meanwhile.
                    let mut slot = a.lost.lock().unwrap_or_else(|p| p.into_inner());
                    let mut back = lost;
                    if let Some(newer) = slot.take() {
                        back.merge(newer);
                    }
                    *slot = Some(back);
                    waiting = true;
                }
                _ => {
                    a.counts.digests.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        waiting
    }

    /// The messages due without a line (`alarm-digest`, `alarm-absence`), sent through each
    /// alarm's action now.
    fn ticks(&mut self, shared: &Shared, run: &mut Runner, lane: &Lane, last: bool) {
        let now = Instant::now();
        for (id, slot) in self.by_id.iter_mut().enumerate() {
            let Some((inst, _)) = slot else {
                continue;
            };
            // Gathered events nothing continued for a while (all, at the end).
            complete_gathered(
                inst,
                &shared.alarms[id],
                id as u32,
                run.after(),
                run,
                lane,
                last,
            );
            inst.suppress.start(now);
            while let Some((_, msg, _)) = inst.suppress.tick(&inst.name, now, &wall).or_else(|| {
                last.then(|| inst.suppress.flush(&inst.name, &wall))
                    .flatten()
            }) {
                let a = &shared.alarms[id];
                let (rendered, resolved) = inst.suppress.rendered();
                inst.action.prepare(rendered, resolved);
                // Counted with the digests: not a raised line (raised = ran + suppressed +
                // dropped + discarded stays true).
                match inst.action.fire(&inst.name, &msg, now, run) {
                    Outcome::Dropped => a.lose(&msg),
                    _ => {
                        a.counts.digests.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }

    fn instances(&mut self) -> impl Iterator<Item = &mut Instance> {
        self.by_id.iter_mut().flatten().map(|(i, _)| i)
    }
}

/// Decide one raised message of alarm `id` (anti-flood, templates, keys, thresholds) and run
/// its action, counting the outcome. False when the shutdown gave up on the lane while the
/// action ran (it counted the event as discarded; the lane ends).
#[allow(clippy::too_many_arguments)]
fn decide_and_fire(
    inst: &mut Instance,
    a: &AlarmShared,
    id: u32,
    raised_msg: &[u8],
    (read, raised, now): (Option<Instant>, Instant, Instant),
    after: u64,
    run: &mut Runner,
    lane: &Lane,
) -> bool {
    let decided = inst.suppress.decide(raised_msg, &inst.name, now, &wall);
    a.counts
        .keys_forgotten
        .store(inst.suppress.keys(), Ordering::Relaxed);
    let templated = match decided {
        Ok(m) => m,
        Err(_) => {
            a.counts.suppressed.fetch_add(1, Ordering::Relaxed);
            return true;
        }
    };
    let msg: &[u8] = templated.as_deref().unwrap_or(raised_msg);
    let (rendered, resolved) = inst.suppress.rendered();
    inst.action.prepare(rendered, resolved);
    run.set_after(after);
    // A `log:` line that only goes into the lane's batch (no write) cannot block: the
    // shutdown never has to give up on it, so it needs no claim (PERF: the claim's locked
    // swap was a quarter of this function in a storm).
    let appends = inst.action.appends_only(run, msg.len());
    if !appends {
        // A plain store: the swap below (a read-modify-write, like the shutdown's) is what
        // decides whether the shutdown claimed this event, whichever order the two swaps
        // take.
        lane.running.store(u64::from(id) + 1, Ordering::Release);
    }
    // PERF: the time the lane took for this event (deciding takes microseconds): one clock
    // read less per alarm.
    let started = now;
    a.wait.record(run.spans[1].between(raised, started));
    if let Some(read) = read {
        a.total.record(run.spans[2].between(read, started));
    }
    let outcome = inst.action.fire(&inst.name, msg, raised, run);
    let ended = run.clock_after(appends, started);
    a.run.record(if ended == started {
        Duration::ZERO
    } else {
        ended.saturating_duration_since(started)
    });
    run.ended = Some(ended);
    if !appends && lane.running.swap(0, Ordering::SeqCst) == 0 {
        return false;
    }
    // Only this lane counts its alarm's runs (a spool alarm's are counted by its delivery
    // thread: it never returns `Done` here). PERF: a load and a store, not a locked add
    // (which waits for the lane's earlier stores: a fifth of the lane's time in the mixed
    // bench set, a third of its lines raising).
    let ran = || own_add(&a.counts.ran, Ordering::Release);
    match outcome {
        Outcome::Done => ran(),
        Outcome::Failed => {
            ran();
            a.counts.failed.fetch_add(1, Ordering::Relaxed);
        }
        Outcome::Dropped => a.lose(msg),
        Outcome::Spooled => {
            a.counts.spooled.fetch_add(1, Ordering::Relaxed);
        }
    }
    true
}

/// Decide and run alarm `id`'s gathered events that are complete (all of them when `force`).
fn complete_gathered(
    inst: &mut Instance,
    a: &AlarmShared,
    id: u32,
    after: u64,
    run: &mut Runner,
    lane: &Lane,
    force: bool,
) -> bool {
    // PERF: no clock read per alarm when nothing is gathered (alarm-multiline unused).
    while inst.suppress.has_gathered() {
        let now = Instant::now();
        let Some(g) = inst.suppress.complete(now, force) else {
            break;
        };
        // A gathered event waits for its end by design: not counted in read → start.
        let stamps = (None, g.started, now);
        if !decide_and_fire(inst, a, id, &g.msg, stamps, after, run, lane) {
            return false;
        }
    }
    true
}

fn run_lane(
    lane: Arc<Lane>,
    parker: Parker,
    group: Vec<(u32, Instance)>,
    shared: Arc<Shared>,
    ctx: Arc<Ctx>,
) {
    let mut alarms = LaneAlarms::new(group);
    for inst in alarms.instances() {
        inst.action.start(&inst.name);
    }
    let mut run = Runner::new(ctx);
    let finish = |alarms: &mut LaneAlarms, run: &mut Runner| {
        run.end_batch();
        for inst in alarms.instances() {
            inst.action.finish(Duration::from_secs(3));
        }
        lane.ended.store(true, Ordering::Release);
    };
    let mut digest_check = Instant::now();
    let mut since_check = 0u32;
    loop {
        while let Some(mut batch) = lane.queue.pop() {
            {
                let mut hand = lane.hand.lock().unwrap_or_else(|p| p.into_inner());
                hand.clear();
                hand.extend(batch.events.iter().map(|h| h.alarm));
            }
            lane.next.store(0, Ordering::Release);
            for (i, h) in batch.events.iter().enumerate() {
                // Take event i, unless the shutdown gave up on this lane and counted the rest.
                let taken =
                    lane.next
                        .compare_exchange(i, i + 1, Ordering::AcqRel, Ordering::Acquire);
                if taken.is_err() {
                    lane.ended.store(true, Ordering::Release);
                    return;
                }
                if run.ctx().stopping.load(Ordering::Relaxed) {
                    // Event i is this thread's; the rest too unless the shutdown took them.
                    let rest = match lane.next.swap(usize::MAX, Ordering::AcqRel) {
                        usize::MAX => 0,
                        _ => discard(&batch.events[i + 1..], &shared),
                    };
                    let left = discard(&batch.events[i..=i], &shared)
                        + rest
                        + discard_queue(&lane, &shared);
                    report!(
                        Alarm,
                        "grace period over: {left} queued alarm(s) of {} not run",
                        lane.label
                    );
                    finish(&mut alarms, &mut run);
                    return;
                }
                let ok = alarms.run(&batch.event(h), &shared, &mut run, &lane);
                // Only this thread writes `done` (PERF: a store, not a locked add).
                own_add(&lane.done, Ordering::Release);
                if !ok {
                    // This one and the rest of the batch were counted as discarded by the
                    // shutdown while it ran (not counted twice).
                    lane.ended.store(true, Ordering::Release);
                    return;
                }
                since_check = since_check.wrapping_add(1);
                // PERF: the clock once per 64 events, not per event.
                if since_check.is_multiple_of(64) && digest_check.elapsed() >= crate::report::EVERY
                {
                    // A storm that keeps the queue full still gets its digests, once a second.
                    digest_check = Instant::now();
                    alarms.digests(&shared, &mut run, false);
                    alarms.ticks(&shared, &mut run, &lane, false);
                    run.ended = None;
                }
            }
            let all = batch.events.len();
            if lane
                .next
                .compare_exchange(all, usize::MAX, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                // The shutdown gave up on this lane meanwhile: nothing more is taken.
                lane.ended.store(true, Ordering::Release);
                return;
            }
            // Only this thread writes `done_bytes`.
            own_add_by(
                &lane.done_bytes,
                batch.bytes.len() as u64,
                Ordering::Release,
            );
            batch.clear();
            let _ = lane.spare.push(batch);
        }
        run.ended = None;
        run.end_batch();
        let closing = shared.closing.load(Ordering::SeqCst);
        let waiting = alarms.digests(&shared, &mut run, closing);
        alarms.ticks(&shared, &mut run, &lane, closing);
        run.end_batch();
        let over = run.ctx().stopping.load(Ordering::Relaxed);
        let retired = lane.retired.load(Ordering::SeqCst);
        if (closing || retired) && lane.queue.is_empty() && (!waiting || over) {
            finish(&mut alarms, &mut run);
            return;
        }
        // A digest waiting for room is tried again soon; otherwise wait for events.
        let nap = if waiting { 20 } else { 500 };
        parker.park_timeout(Duration::from_millis(nap));
    }
}

/// Start the delivery thread of spooled `inst` (alarm `id`): it takes the real action, the lane
/// keeps a [`Feed`] that appends to the spool.
fn start_worker(
    inst: &mut Instance,
    id: usize,
    spool: Arc<Spool>,
    shared: &Arc<Shared>,
    ctx: &Arc<Ctx>,
) -> std::io::Result<Worker> {
    let parker = Parker::new();
    let unparker = parker.unparker().clone();
    let kind = inst.action.kind();
    let feed = Action::Spooled(Feed::new(spool.clone(), unparker.clone(), kind));
    let mut action = std::mem::replace(&mut inst.action, feed);
    action.set_once();
    let (name, sp, sh, c) = (
        inst.name.clone(),
        spool.clone(),
        shared.clone(),
        ctx.clone(),
    );
    let thread = std::thread::Builder::new()
        .name(format!("logalarm-spool{id}"))
        .spawn(move || {
            action.start(&name);
            let mut d = Delivery {
                name: &name,
                alarm: id,
                spool: &sp,
                shared: &sh,
                run: Runner::new(c),
                failing: None,
                retry: SPOOL_RETRY,
            };
            d.run(&mut action, &parker);
            action.finish(Duration::from_secs(1));
        })?;
    Ok(Worker {
        alarm: id,
        spool,
        unparker,
        thread,
    })
}

/// How a spool's delivery thread waits after a transient failure.
const SPOOL_RETRY: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));

/// How often a spool whose endpoint stays down says so.
const SPOOL_REPORT: Duration = Duration::from_secs(60);

/// A spool's delivery loop: oldest first, one at a time, at least once.
struct Delivery<'a> {
    name: &'a str,
    alarm: usize,
    spool: &'a Spool,
    shared: &'a Shared,
    run: Runner,
    /// Since when deliveries fail: (first failure, attempts, last report).
    failing: Option<(Instant, u64, Instant)>,
    retry: Backoff,
}

impl Delivery<'_> {
    fn run(&mut self, action: &mut Action, parker: &Parker) {
        let counts = &self.shared.alarms[self.alarm].counts;
        loop {
            self.report_skipped();
            if self.run.ctx().stopping.load(Ordering::Relaxed) {
                return;
            }
            let closing = self.shared.closing.load(Ordering::SeqCst);
            let rec = match self.spool.peek() {
                Ok(Some(rec)) => rec,
                Ok(None) if closing => return,
                Ok(None) => {
                    parker.park_timeout(Duration::from_millis(500));
                    continue;
                }
                Err(e) => {
                    self.failed(&format!("cannot read the spool: {e}"), parker);
                    if closing {
                        return;
                    }
                    continue;
                }
            };
            match action.attempt(self.name, &rec.msg, Instant::now(), &mut self.run) {
                Err(Failure::Transient(why)) => {
                    // Kept; at shutdown it waits for the next start.
                    if closing {
                        return;
                    }
                    counts.retried.fetch_add(1, Ordering::Relaxed);
                    self.failed(&why, parker);
                    continue;
                }
                Err(Failure::Permanent(_)) => {
                    counts.failed.fetch_add(1, Ordering::Relaxed);
                }
                Ok(()) => self.recovered(),
            }
            counts.ran.fetch_add(1, Ordering::Release);
            if let Err(e) = self.spool.ack() {
                report!(
                    Alarm,
                    "alarm \"{}\": cannot update its spool: {e}",
                    self.name
                );
            }
        }
    }

    /// A transient failure: say so (the first, then once a minute), wait the back-off.
    fn failed(&mut self, why: &str, parker: &Parker) {
        let now = Instant::now();
        let wait = self.retry.next_delay();
        let (first, attempts, last) = self.failing.get_or_insert((now, 0, now));
        *attempts += 1;
        if *attempts == 1 || now.duration_since(*last) >= SPOOL_REPORT {
            *last = now;
            report!(
                Alarm,
                "{why}; {} alarm(s) kept in the spool, next attempt in {}s ({} attempt(s) since {}s ago)",
                self.spool.pending(),
                wait.as_secs(),
                attempts,
                now.duration_since(*first).as_secs()
            );
        }
        let end = now + wait;
        while Instant::now() < end {
            if self.run.ctx().stopping.load(Ordering::Relaxed)
                || self.shared.closing.load(Ordering::Relaxed)
            {
                return;
            }
            parker.park_timeout(Duration::from_millis(100).min(end - Instant::now()));
        }
    }

    fn recovered(&mut self) {
        if let Some((first, attempts, _)) = self.failing.take() {
            report!(
                Alarm,
                "alarm \"{}\": delivering again after {} failed attempt(s) over {}s; {} alarm(s) waiting in the spool",
                self.name,
                attempts,
                first.elapsed().as_secs(),
                self.spool.pending()
            );
        }
        self.retry.reset();
    }

    fn report_skipped(&self) {
        let s = self.spool.take_skipped();
        let counts = &self.shared.alarms[self.alarm].counts;
        if s.expired > 0 {
            counts.discarded.fetch_add(s.expired, Ordering::Relaxed);
            report!(
                Alarm,
                "alarm \"{}\": {} spooled alarm(s) older than alarm-spool-max-age discarded",
                self.name,
                s.expired
            );
        }
        if s.damaged_bytes > 0 {
            report!(
                Alarm,
                "alarm \"{}\": {} damaged byte(s) of its spool {} skipped",
                self.name,
                s.damaged_bytes,
                self.spool.dir().display()
            );
        }
    }
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("route", &self.route)
            .field("msg_size", &self.msg_size)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_bounds_agree() {
        for (s, ns) in LATENCY_BOUNDS.iter().zip(LATENCY_BOUNDS_NS) {
            assert_eq!((s * 1e9).round() as u64, ns);
        }
        let l = Latency::default();
        for us in [0, 10, 11, 60_000_000, 70_000_000] {
            l.record(Duration::from_micros(us));
        }
        let (sum, n, buckets) = l.snapshot();
        assert_eq!(n, 5);
        assert!((sum - 130.000021).abs() < 1e-9, "{sum}");
        assert_eq!(buckets[0], (0.000_01, 2));
        assert_eq!(buckets[1], (0.000_025, 1));
        assert_eq!(buckets[18], (60.0, 1));
        assert_eq!(buckets[19], (f64::MAX, 1));
        // The table's premise: each bound at least twice the one before.
        for w in LATENCY_BOUNDS_NS.windows(2) {
            assert!(w[1] >= 2 * w[0], "{w:?}");
        }
        // Every power of two and its neighbours, each bound and its neighbours, land where the
        // first bound not below them says.
        let first_not_below = |ns: u64| LATENCY_BOUNDS_NS.iter().take_while(|&&x| x < ns).count();
        for b in 0..64 {
            for ns in [(1u64 << b) - 1, 1 << b, (1 << b) + 1, u64::MAX] {
                assert_eq!(bucket_of(ns), first_not_below(ns), "{ns} ns");
            }
        }
        for &b in &LATENCY_BOUNDS_NS {
            for ns in [b - 1, b, b + 1] {
                let l = Latency::default();
                l.record(Duration::from_nanos(ns));
                let want = LATENCY_BOUNDS_NS.iter().take_while(|&&x| x < ns).count();
                let (_, _, buckets) = l.snapshot();
                let got: Vec<u64> = buckets.iter().map(|b| b.1).collect();
                assert_eq!(got.iter().position(|&n| n == 1), Some(want), "{ns} ns");
            }
        }
    }

    #[test]
    fn anti_flood_is_uwsgis() {
        let t0 = Instant::now();
        let s = |n| t0 + Duration::from_secs(n);
        let mut f = AntiFlood::new(Duration::from_secs(3));
        assert!(f.admit(b"A", s(0)));
        assert!(!f.admit(b"A", s(1)));
        assert!(
            !f.admit(b"A", s(2)),
            "suppressed messages do not move the window"
        );
        assert!(f.admit(b"A", s(3)));
        assert!(f.admit(b"B", s(3)));
        assert!(f.admit(b"A", s(3)), "A, B, A runs three times");
        let mut off = AntiFlood::new(Duration::ZERO);
        assert!(off.admit(b"A", s(0)));
        assert!(off.admit(b"A", s(0)));
    }
}

//! From matched lines to running actions, off the log path.
//!
//! Role: the reader raises alarms into bounded lock-free queues (`crossbeam_queue::ArrayQueue`),
//! one per *lane*; each lane is drained by one thread that applies anti-flood and
//! `alarm-msg-size` and runs the actions routed to it. Lane 0 is the main alarm thread (cheap,
//! non-blocking actions, and every action with `alarm-cheap`); each blocking alarm instance gets
//! a lane of its own, so a slow endpoint only delays its own alarm.
//!
//! Invariants: the reader never blocks, never locks, and allocates only for a line that raises
//! an alarm (its message is copied). When a queue is full the *new* event of a `log:` alarm waits
//! for room (back-pressure: the log path slows, the alarm is never lost); any other is dropped (the
//! producer side drops), counted, and reported on standard error at most once a second. Lanes
//! are woken once per buffer, not per event (`Parker`/`Unparker`). Anti-flood runs where the
//! action runs, so "the last message that instance actually ran" is exact.
//! Rejected alternatives: a `Mutex<VecDeque>` (the reader would lock per event); unbounded
//! channels (memory grows without bound when an action is down).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use crossbeam_utils::sync::{Parker, Unparker};

use crate::action::{Action, Ctx, Runner};
use crate::output::Output;
use crate::pipeline::Sink;
use crate::plan::DispatchPlan;
use crate::report::{report, DropCount};

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
    fn pass(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.output.write(bytes)
    }
    #[inline]
    fn alarm(&mut self, alarm: u32, msg: &[u8]) {
        self.dispatcher.raise(alarm, msg);
    }
}

/// One raised alarm on its way to its action.
#[derive(Debug)]
pub(crate) struct Event {
    pub alarm: u32,
    pub msg: Box<[u8]>,
    /// When the line was matched (for `max_age`).
    pub raised: Instant,
}

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
    pub(crate) fn admit(&mut self, msg: &[u8], now: Instant) -> bool {
        if let Some(t) = self.last_run {
            if msg == self.last.as_slice() && now.saturating_duration_since(t) < self.freq {
                return false;
            }
        }
        self.last.clear();
        self.last.extend_from_slice(msg);
        self.last_run = Some(now);
        true
    }
}

/// A configured alarm instance, owned by the thread of its lane.
pub(crate) struct Instance {
    pub name: String,
    pub action: Action,
    pub flood: AntiFlood,
}

struct Lane {
    label: String,
    queue: ArrayQueue<Event>,
    unparker: Unparker,
    dropped: AtomicU64,
}

struct Shared {
    closing: AtomicBool,
    suppressed: AtomicU64,
    ran: AtomicU64,
}

/// Producer side, owned by the reader.
pub(crate) struct Dispatcher {
    lanes: Vec<Arc<Lane>>,
    route: Vec<u16>,
    /// Per alarm: never dropped — a full queue makes the reader wait for room (`log:` alarms:
    /// one formatted line each, nothing for them to wait on but the output).
    lossless: Vec<bool>,
    touched: Vec<bool>,
    msg_size: usize,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    /// What was reported of each lane's `dropped`.
    drops: Vec<DropCount>,
    ctx: Arc<Ctx>,
}

/// What happened at shutdown.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Summary {
    pub ran: u64,
    pub suppressed: u64,
    pub dropped: u64,
    /// `cmd:` commands started, and alarms dropped because 64 were running.
    pub(crate) commands: u64,
    pub(crate) commands_dropped: u64,
    /// Threads still running an action when the grace period ended.
    pub unfinished: usize,
}

impl Dispatcher {
    /// Start the lanes for `instances` (index = alarm id). `cheap` puts all on lane 0.
    pub(crate) fn start(
        instances: Vec<Instance>,
        settings: &DispatchPlan,
        ctx: Ctx,
    ) -> std::io::Result<Dispatcher> {
        let (cheap, queue_capacity, msg_size) = (settings.cheap, settings.queue, settings.msg_size);
        let ctx = Arc::new(ctx);
        let shared = Arc::new(Shared {
            closing: AtomicBool::new(false),
            suppressed: AtomicU64::new(0),
            ran: AtomicU64::new(0),
        });
        // Group instances per lane: lane 0 first, then one per blocking instance.
        let mut groups: Vec<(String, Vec<(u32, Instance)>)> = vec![("main".into(), Vec::new())];
        let mut route = Vec::with_capacity(instances.len());
        let lossless = instances
            .iter()
            .map(|i| matches!(i.action, Action::Log(_)))
            .collect();
        for (id, inst) in instances.into_iter().enumerate() {
            let lane = if !cheap && inst.action.blocking() {
                groups.push((format!("alarm \"{}\"", inst.name), Vec::new()));
                groups.len() - 1
            } else {
                0
            };
            route.push(lane as u16);
            groups[lane].1.push((id as u32, inst));
        }
        let mut lanes = Vec::new();
        let mut threads = Vec::new();
        for (label, group) in groups {
            let parker = Parker::new();
            let lane = Arc::new(Lane {
                label,
                queue: ArrayQueue::new(queue_capacity.max(1)),
                unparker: parker.unparker().clone(),
                dropped: AtomicU64::new(0),
            });
            let (l, s, c) = (lane.clone(), shared.clone(), ctx.clone());
            let name = if lanes.is_empty() {
                "logalarm-alarm".to_string()
            } else {
                format!("logalarm-lane{}", lanes.len())
            };
            threads.push(
                std::thread::Builder::new()
                    .name(name)
                    .spawn(move || run_lane(l, parker, group, s, c))?,
            );
            lanes.push(lane);
        }
        let n = lanes.len();
        Ok(Dispatcher {
            lanes,
            route,
            lossless,
            touched: vec![false; n],
            msg_size,
            shared,
            threads,
            drops: (0..n).map(|_| DropCount::default()).collect(),
            ctx,
        })
    }

    /// Queue alarm `alarm` with `msg` (cut to `alarm-msg-size`). Never blocks, except for a
    /// lossless alarm whose queue is full: then the reader waits for room.
    #[inline]
    pub(crate) fn raise(&mut self, alarm: u32, msg: &[u8]) {
        let Some(&lane) = self.route.get(alarm as usize) else {
            return;
        };
        let lane = lane as usize;
        let msg = &msg[..msg.len().min(self.msg_size)];
        let ev = Event {
            alarm,
            msg: msg.into(),
            raised: Instant::now(),
        };
        if let Err(ev) = self.lanes[lane].queue.push(ev) {
            if self.lossless[alarm as usize] {
                self.wait_for_room(lane, ev);
            } else {
                self.lanes[lane].dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.touched[lane] = true;
    }

    /// Back-pressure: wake the lane and wait until `ev` fits in its queue (the log path slows
    /// instead of losing the alarm). A lane whose thread is gone cannot make room: dropped and
    /// counted then.
    #[cold]
    fn wait_for_room(&mut self, lane: usize, mut ev: Event) {
        let mut spins = 0u32;
        loop {
            self.lanes[lane].unparker.unpark();
            match self.lanes[lane].queue.push(ev) {
                Ok(()) => return,
                Err(back) => ev = back,
            }
            if self.threads.get(lane).is_none_or(|t| t.is_finished()) {
                self.lanes[lane].dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            spins += 1;
            if spins < 64 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(std::time::Duration::from_micros(100));
            }
        }
    }

    /// Wake the lanes that got events, and report drops (at most once a second).
    pub(crate) fn flush(&mut self) {
        for (i, t) in self.touched.iter_mut().enumerate() {
            if *t {
                self.lanes[i].unparker.unpark();
                *t = false;
            }
        }
        self.report_drops(false);
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
    /// deadline, and stop the lanes.
    pub(crate) fn shutdown(mut self, grace: Duration) -> Summary {
        let deadline = Instant::now() + grace;
        self.shared.closing.store(true, Ordering::SeqCst);
        for l in &self.lanes {
            l.unparker.unpark();
        }
        while self.threads.iter().any(|t| !t.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        self.ctx.stopping.store(true, Ordering::SeqCst);
        let mut unfinished = 0;
        for t in self.threads.drain(..) {
            if t.is_finished() {
                let _ = t.join();
            } else {
                unfinished += 1;
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
        Summary {
            ran: self.shared.ran.load(Ordering::Relaxed),
            suppressed: self.shared.suppressed.load(Ordering::Relaxed),
            dropped: self
                .lanes
                .iter()
                .map(|l| l.dropped.load(Ordering::Relaxed))
                .sum(),
            unfinished: unfinished + children,
            commands: self.ctx.children.started() as u64,
            commands_dropped: self.ctx.children.dropped(),
        }
    }
}

fn run_lane(
    lane: Arc<Lane>,
    parker: Parker,
    group: Vec<(u32, Instance)>,
    shared: Arc<Shared>,
    ctx: Arc<Ctx>,
) {
    let mut by_id: Vec<Option<Instance>> = Vec::new();
    for (id, inst) in group {
        let id = id as usize;
        if by_id.len() <= id {
            by_id.resize_with(id + 1, || None);
        }
        by_id[id] = Some(inst);
    }
    for inst in by_id.iter_mut().flatten() {
        inst.action.start(&inst.name);
    }
    let mut run = Runner::new(ctx);
    let finish = |by_id: &mut Vec<Option<Instance>>, run: &mut Runner| {
        run.end_batch();
        for inst in by_id.iter_mut().flatten() {
            inst.action.finish(Duration::from_secs(3));
        }
    };
    loop {
        while let Some(ev) = lane.queue.pop() {
            if run.ctx().stopping.load(Ordering::Relaxed) {
                let left = 1 + lane.queue.len() as u64;
                lane.dropped.fetch_add(left, Ordering::Relaxed);
                report!(
                    Alarm,
                    "grace period over: {left} queued alarm(s) of {} not run",
                    lane.label
                );
                finish(&mut by_id, &mut run);
                return;
            }
            let Some(Some(inst)) = by_id.get_mut(ev.alarm as usize) else {
                continue;
            };
            if inst.flood.admit(&ev.msg, Instant::now()) {
                inst.action.fire(&inst.name, &ev.msg, ev.raised, &mut run);
                shared.ran.fetch_add(1, Ordering::Relaxed);
            } else {
                shared.suppressed.fetch_add(1, Ordering::Relaxed);
            }
        }
        run.end_batch();
        if shared.closing.load(Ordering::SeqCst) && lane.queue.is_empty() {
            finish(&mut by_id, &mut run);
            return;
        }
        parker.park_timeout(Duration::from_millis(500));
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

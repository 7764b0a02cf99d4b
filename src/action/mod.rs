//! Alarm actions: what an alarm does when it runs. One file per type, enum dispatch.
//!
//! Role: parse an alarm's `TYPE:ARG` into an [`Action`], say whether it blocks (and so gets a
//! thread of its own), and run it with a message. Invariants: actions never run on the thread
//! that reads logs; an action's failure is reported as one `[uwsgi-alarm...]` line on standard
//! error and never stops logalarm; secrets never appear in what an action reports.
//! Rejected alternative: `Box<dyn Action>` — the set of types is closed and known at build time.

pub(crate) mod airbrake;
pub(crate) mod cmd;
pub(crate) mod curl;
pub(crate) mod delivery;
pub(crate) mod log;
pub(crate) mod mule;
pub(crate) mod signal;
pub(crate) mod speech;
pub(crate) mod webhook;
pub(crate) mod xmpp;

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use crate::output::Output;

/// Every alarm type of uWSGI's alarm subsystem, and whether this build has it.
pub(crate) const TYPES: &[(&str, bool, &str)] = &[
    (
        "cmd",
        true,
        "cmd:COMMAND — run COMMAND with $binsh -c, the message on its stdin",
    ),
    (
        "log",
        true,
        "log:[PREFIX] — write \"<date> - ALARM: PREFIX MESSAGE\" into the log output",
    ),
    (
        "signal",
        true,
        "signal:N — send signal N to the supervised processes",
    ),
    ("mule", true, "mule:N — write the message to mule N's stdin"),
    (
        "curl",
        true,
        "curl:URL[;key=val...] — HTTP(S) request or SMTP(S) mail via libcurl",
    ),
    (
        "xmpp",
        true,
        "xmpp:JID;PASSWORD;TO[,TO...] — XMPP chat message",
    ),
    (
        "speech",
        true,
        "speech:[VOICE][;wav=PATH] — speak the message with espeak-ng (or into a WAV file)",
    ),
    (
        "airbrake",
        true,
        "airbrake:URL[;key=val...] — Airbrake/Errbit notice",
    ),
    (
        "webhook",
        true,
        "webhook:URL[;shape=json|slack|mattermost|pagerduty;header=Name: value...] — JSON POST",
    ),
    (
        "alertmanager",
        true,
        "alertmanager:URL[;label.NAME=VALUE...;resolve=SECONDS] — an alert to Prometheus Alertmanager",
    ),
];

/// What actions need from the running process.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub output: Arc<Output>,
    pub binsh: PathBuf,
    pub children: Arc<cmd::Children>,
    /// Set when the grace period is over: actions stop retrying.
    pub stopping: Arc<AtomicBool>,
    /// Process groups of the supervised processes (for `signal:`).
    pub pids: crate::supervise::Pids,
    /// The mules' stdin pipes (for `mule:`).
    pub mules: crate::supervise::Mules,
    /// `alarm-cluster`: the fleet's shared decisions.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
}

/// Why an alarm's `TYPE:ARG` was refused. The message says what is wrong without quoting the
/// argument, which may hold a secret (the caller quotes it redacted, with the option's origin).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum ActionError {
    #[error("unknown alarm type `{kind}` (available: {available})")]
    UnknownType { kind: String, available: String },
    #[error("alarm type `{kind}` is not available in this build of logalarm yet (available: {available})")]
    NotInBuild { kind: String, available: String },
    /// The argument of a known type is wrong (which key, which value, what was expected).
    #[error("{0}")]
    Argument(String),
}

impl From<String> for ActionError {
    fn from(why: String) -> ActionError {
        ActionError::Argument(why)
    }
}

impl From<crate::sys::strophe::StropheError> for ActionError {
    fn from(e: crate::sys::strophe::StropheError) -> ActionError {
        ActionError::Argument(e.to_string())
    }
}

impl From<&str> for ActionError {
    fn from(why: &str) -> ActionError {
        ActionError::Argument(why.to_string())
    }
}

/// One lane's view while its thread runs actions: the process-wide [`Ctx`] and what the lane's
/// actions batch until its queue is drained (the `log:` lines, so that lines of different
/// alarms keep the order their alarms ran in, in one write).
/// `log:` appends between two clock reads of a lane (see [`Runner::clock_after`]).
const UNCLOCKED_MAX: u32 = 15;

#[derive(Debug)]
pub(crate) struct Runner {
    ctx: Arc<Ctx>,
    /// `log:` lines not yet written (see `log::Log::fire`).
    log_batch: Vec<u8>,
    /// The log output position the batch must follow (see `dispatch::Event::after`).
    after: u64,
    /// When the last action ended, while the lane goes straight on to its next event: that
    /// event's start (PERF: one clock read per event instead of two).
    pub(crate) ended: Option<std::time::Instant>,
    /// `log:` lines appended since the clock was last read (see [`Runner::clock_after`]).
    unclocked: u32,
    /// The latency histograms' last spans: read → raised, raised → start, read → start.
    pub(crate) spans: [Span; 3],
}

/// The time between two instants, remembered: the events of one read share their read and
/// raise stamps, and appended `log:` lines their start (see [`Runner::clock_after`]), so a
/// storm's lane computed the same spans again and again (PERF: `Instant` subtraction was 6 %
/// of a storm's instructions).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Span(Option<(Instant, Instant, std::time::Duration)>);

impl Span {
    /// `later - earlier` (zero when `later` is earlier).
    #[inline]
    pub(crate) fn between(&mut self, earlier: Instant, later: Instant) -> std::time::Duration {
        if let Some((e, l, d)) = self.0 {
            if e == earlier && l == later {
                return d;
            }
        }
        let d = later.saturating_duration_since(earlier);
        self.0 = Some((earlier, later, d));
        d
    }
}

impl Runner {
    pub(crate) fn new(ctx: Arc<Ctx>) -> Runner {
        Runner {
            ctx,
            log_batch: Vec::new(),
            after: 0,
            ended: None,
            unclocked: 0,
            spans: [Span::default(); 3],
        }
    }

    /// When an action that began at `started` ended. After a `log:` line that was only
    /// appended (`appended`: some 100 ns of work), the clock is read once per
    /// [`UNCLOCKED_MAX`] such lines and `started` stands for the end in between (PERF: the
    /// clock read was 8 % of a storm's lane on this VM). The stamps so taken lag by at most
    /// that many appends, a few µs: under the histograms' first bucket (10 µs).
    pub(crate) fn clock_after(&mut self, appended: bool, started: Instant) -> Instant {
        if appended && self.unclocked < UNCLOCKED_MAX {
            self.unclocked += 1;
            return started;
        }
        self.unclocked = 0;
        Instant::now()
    }

    pub(crate) fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    /// The next action runs for an event raised by the region ending at log position `after`.
    pub(crate) fn set_after(&mut self, after: u64) {
        self.after = self.after.max(after);
    }

    /// The log position the next `log:` line follows.
    pub(crate) fn after(&self) -> u64 {
        self.after
    }

    /// The lane's queue is drained (or the lane ends): write what its actions batched.
    pub(crate) fn end_batch(&mut self) {
        log::write_batch(&mut self.log_batch, self.after, &self.ctx);
    }
}

/// What became of one run of an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Ran (or was handed to its connection, for `xmpp:`).
    Done,
    /// Ran and failed (reported by the action).
    Failed,
    /// Not run for want of room (64 `cmd:` commands running, a mule not reading, the XMPP
    /// queue full, the spool full): counted and summarised like a full alarm queue.
    Dropped,
    /// Written to the alarm's spool: its delivery thread takes it from there.
    Spooled,
}

impl Outcome {
    fn of(ok: bool) -> Outcome {
        if ok {
            Outcome::Done
        } else {
            Outcome::Failed
        }
    }
}

/// A configured action.
#[derive(Debug)]
pub(crate) enum Action {
    Cmd(cmd::Cmd),
    Log(log::Log),
    Curl(Box<curl::Curl>),
    Airbrake(Box<airbrake::Airbrake>),
    /// `webhook:` and `alertmanager:`.
    Webhook(Box<webhook::Webhook>),
    Speech(speech::Speech),
    Signal(signal::Signal),
    Mule(mule::Mule),
    Xmpp(Box<xmpp::Xmpp>),
    /// A `spool` alarm as its lane sees it: the real action runs on its delivery thread.
    Spooled(crate::spool::Feed),
}

impl Action {
    /// Build an action from its type and argument. The error says what is wrong (without
    /// quoting the argument, which may hold a secret: the caller quotes it redacted).
    /// Warnings (unknown keys) are pushed to `warnings`.
    pub(crate) fn parse(
        kind: &str,
        arg: &str,
        warnings: &mut Vec<String>,
    ) -> Result<Action, ActionError> {
        match kind {
            "cmd" => Ok(Action::Cmd(cmd::Cmd::parse(arg)?)),
            "log" => Ok(Action::Log(log::Log::parse(arg))),
            "curl" => Ok(Action::Curl(Box::new(curl::Curl::parse(arg, warnings)?))),
            "xmpp" => Ok(Action::Xmpp(Box::new(xmpp::Xmpp::parse(arg, warnings)?))),
            "mule" => Ok(Action::Mule(mule::Mule::parse(arg)?)),
            "signal" => Ok(Action::Signal(signal::Signal::parse(arg)?)),
            "speech" => Ok(Action::Speech(speech::Speech::parse(arg, warnings)?)),
            "airbrake" => Ok(Action::Airbrake(Box::new(airbrake::Airbrake::parse(
                arg, warnings,
            )?))),
            "webhook" => Ok(Action::Webhook(Box::new(webhook::Webhook::parse(
                "webhook", arg, warnings,
            )?))),
            "alertmanager" => Ok(Action::Webhook(Box::new(webhook::Webhook::parse(
                "alertmanager",
                arg,
                warnings,
            )?))),
            _ => match TYPES.iter().find(|(name, _, _)| *name == kind) {
                Some(_) => Err(ActionError::NotInBuild {
                    kind: kind.to_string(),
                    available: available().join(", "),
                }),
                None => Err(ActionError::UnknownType {
                    kind: kind.to_string(),
                    available: available().join(", "),
                }),
            },
        }
    }

    /// Whether the action may hold a secret (a password, an API key): curl, airbrake, xmpp.
    pub(crate) fn may_hold_secrets(&self) -> bool {
        matches!(
            self,
            Action::Curl(_) | Action::Airbrake(_) | Action::Xmpp(_) | Action::Webhook(_)
        )
    }

    /// Blocking actions get a thread and queue of their own (unless `alarm-cheap`). `cmd:`
    /// is one: starting a process costs about a millisecond, and on the main alarm thread a
    /// storm of them would hold back the `log:` alarms there, whose policy is to block the log
    /// stream rather than lose one (a soak with both: 11 MB/s shared, see RELIABILITY.md).
    pub(crate) fn blocking(&self) -> bool {
        match self {
            Action::Log(_) | Action::Signal(_) | Action::Mule(_) => false,
            Action::Cmd(_)
            | Action::Curl(_)
            | Action::Airbrake(_)
            | Action::Webhook(_)
            | Action::Speech(_)
            | Action::Xmpp(_)
            | Action::Spooled(_) => true,
        }
    }

    /// Run the action for one message of alarm `alarm` (already truncated and past
    /// anti-flood), raised at `raised`, on lane `run`.
    /// Whether firing for a message of `msg_len` bytes only appends a `log:` line to the
    /// lane's batch (no write: it cannot block).
    #[inline]
    pub(crate) fn appends_only(&self, run: &Runner, msg_len: usize) -> bool {
        match self {
            Action::Log(l) => run.log_batch.len() + l.line_len_bound(msg_len) < log::BATCH_MAX,
            _ => false,
        }
    }

    pub(crate) fn fire(
        &mut self,
        alarm: &str,
        msg: &[u8],
        raised: Instant,
        run: &mut Runner,
    ) -> Outcome {
        if let Action::Log(l) = self {
            l.fire(msg, &run.ctx, &mut run.log_batch, run.after);
            return Outcome::Done;
        }
        let ctx = &*run.ctx;
        match self {
            Action::Cmd(c) => c.fire(alarm, msg, ctx),
            Action::Log(_) => Outcome::Done,
            Action::Curl(c) => Outcome::of(c.fire(alarm, msg, raised, ctx).is_ok()),
            Action::Airbrake(a) => Outcome::of(a.fire(alarm, msg, raised, ctx).is_ok()),
            Action::Webhook(w) => Outcome::of(w.fire(alarm, msg, raised, ctx).is_ok()),
            Action::Speech(s) => Outcome::of(s.fire(msg, ctx)),
            Action::Signal(s) => Outcome::of(s.fire(alarm, ctx)),
            Action::Mule(m) => m.fire(alarm, msg, ctx),
            Action::Xmpp(x) => x.fire(alarm, msg, ctx),
            Action::Spooled(f) => f.fire(alarm, msg),
        }
    }

    /// One delivery attempt of a spooled alarm (curl, airbrake): `Err(Transient)` keeps it in
    /// the spool for a later attempt.
    pub(crate) fn attempt(
        &mut self,
        alarm: &str,
        msg: &[u8],
        raised: Instant,
        run: &mut Runner,
    ) -> Result<(), delivery::Failure> {
        let ctx = &*run.ctx;
        match self {
            Action::Curl(c) => c.fire(alarm, msg, raised, ctx),
            Action::Airbrake(a) => a.fire(alarm, msg, raised, ctx),
            Action::Webhook(w) => w.fire(alarm, msg, raised, ctx),
            Action::Xmpp(x) => x.attempt(alarm, msg, ctx),
            other => match other.fire(alarm, msg, raised, run) {
                Outcome::Done | Outcome::Spooled => Ok(()),
                Outcome::Failed => Err(delivery::Failure::Permanent("failed".into())),
                Outcome::Dropped => Err(delivery::Failure::Transient("no room".into())),
            },
        }
    }

    /// The action's own templates (`alertmanager:` labels), rendered by the alarm's decision.
    pub(crate) fn templates(&self) -> Vec<(&crate::suppress::Template, crate::suppress::Escape)> {
        match self {
            Action::Webhook(w) => w
                .templates()
                .into_iter()
                .map(|t| (t, crate::suppress::Escape::None))
                .collect(),
            Action::Curl(c) => c.templates(),
            _ => Vec::new(),
        }
    }

    /// Hand the rendered templates (and whether the message resolves an absence) to the action
    /// for its next delivery.
    pub(crate) fn prepare(&mut self, rendered: &[Vec<u8>], resolved: bool) {
        match self {
            Action::Webhook(w) => w.prepare(rendered, resolved),
            Action::Curl(c) => c.prepare(rendered),
            _ => {}
        }
    }

    /// From now on [`Action::attempt`] tries once (the spool retries).
    pub(crate) fn set_once(&mut self) {
        match self {
            Action::Curl(c) => c.end.once = true,
            Action::Airbrake(a) => a.end.once = true,
            Action::Webhook(w) => w.end.once = true,
            _ => {}
        }
    }

    /// The type's name, as in `TYPE:ARG`.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Action::Cmd(_) => "cmd",
            Action::Log(_) => "log",
            Action::Curl(_) => "curl",
            Action::Airbrake(_) => "airbrake",
            Action::Webhook(w) => w.kind,
            Action::Speech(_) => "speech",
            Action::Signal(_) => "signal",
            Action::Mule(_) => "mule",
            Action::Xmpp(_) => "xmpp",
            Action::Spooled(f) => f.kind,
        }
    }
}

impl Action {
    /// Called once on the action's own thread before its first event (XMPP connects here, so
    /// the account is online while logalarm runs).
    pub(crate) fn start(&mut self, alarm: &str) {
        if let Action::Xmpp(x) = self {
            x.start(alarm);
        }
    }

    /// Called when the action's thread ends: deliver what is pending, at most `limit`.
    pub(crate) fn finish(&mut self, limit: std::time::Duration) {
        if let Action::Xmpp(x) = self {
            x.finish(limit);
        }
    }
}

/// Names of the types this build can run.
pub(crate) fn available() -> Vec<&'static str> {
    TYPES.iter().filter(|t| t.1).map(|t| t.0).collect()
}

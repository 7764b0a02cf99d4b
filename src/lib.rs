//! logalarm: a standalone, high-throughput re-implementation of the uWSGI alarm subsystem.
//!
//! # Using it as a library
//! A Rust service can run logalarm's log path in-process: build a [`Plan`] from uWSGI options
//! ([`parse_args`] or [`parse_ini_str`], then [`build_plan`]), take its [`RuleSet`]
//! ([`Plan::rules`]) and feed bytes through a [`Pipeline`] into your own [`Sink`], which receives
//! every byte to pass on and every raised alarm (rank, message). [`main`] is the whole program.
//!
//! ```
//! use logalarm::{build_plan, parse_args, Pipeline, Sink};
//!
//! struct Collect(Vec<(u32, Vec<u8>)>);
//! impl Sink for Collect {
//!     fn pass(&mut self, _bytes: &[u8]) -> std::io::Result<()> {
//!         Ok(())
//!     }
//!     fn alarm(&mut self, alarm: u32, msg: &[u8]) {
//!         self.0.push((alarm, msg.to_vec()));
//!     }
//! }
//!
//! let args = ["--alarm", "disk log:", "--log-alarm", "disk No space left"];
//! let config = parse_args(args.iter().map(Into::into)).unwrap();
//! let plan = build_plan(&config).unwrap();
//! let mut pipeline = Pipeline::new(plan.rules().matcher(), 64 * 1024);
//! let mut sink = Collect(Vec::new());
//! pipeline.feed(b"ok\nwrite failed: No space left on device\n", &mut sink).unwrap();
//! pipeline.finish(&mut sink).unwrap();
//! // The message is the line as read, with its newline (as uWSGI passes it).
//! assert_eq!(sink.0, vec![(0, b"write failed: No space left on device\n".to_vec())]);
//! ```
//!
//! # Layout
//! The log path: [`reactor`](crate) reads the inputs (`source/`: stdin, tails, UDP, pipes of
//! supervised processes) into a `linebuf::LineBuffer`; `pipeline` passes every byte to the
//! `output` and asks `rules` (literal-first, `litscan`, then automata) which lines raise which
//! alarms; `dispatch` queues them to the threads that run the `action`s (`spool` keeps a
//! delivery alarm's queue on disk). `monitor/` raises
//! alarms from outside the log (`alarm-fd`, `alarm-backlog`, `--alarm-socket`), `supervise`
//! runs processes and reports crashes (`alarm-segfault`). `config` reads uWSGI options, `plan`
//! checks and compiles them into the [`Plan`], `app` runs it. `report` writes logalarm's own
//! `[uwsgi-alarm…]` lines, `backoff` is the retry policy, `sys` holds every libc call. README's
//! "How the code is laid out" has one line per file.

mod action;
mod app;
mod backoff;
mod check;
mod cluster;
mod config;
mod dispatch;
mod docs;
mod linebuf;
mod litscan;
mod metrics;
mod monitor;
mod nats;
mod output;
mod par;
mod pipeline;
mod plan;
mod raise;
mod reactor;
mod reload;
mod replay;
mod report;
mod rules;
mod source;
mod spool;
mod supervise;
mod suppress;
mod sys;

pub use app::main;
pub use config::{parse_args, parse_ini_str, Config, ConfigError, Origin, RuleSyntax};
pub use pipeline::{Pipeline, Sink, DEFAULT_CAPACITY};
pub use plan::{build as build_plan, Plan};
pub use rules::fields::{FieldCond, FieldSpec, Format as FieldFormat};
pub use rules::{Matcher, RegexError, Rule, RuleCost, RuleError, RuleSet};

/// Helpers for logalarm's own tests, benches, fuzz targets and probes: not a stable API.
#[doc(hidden)]
pub mod testing {
    pub use crate::config::{help_text, OptDef, OPTIONS};
    pub use crate::litscan::LitScan;
    pub use crate::monitor::socket::split_raise;
    pub use crate::pipeline::{CollectSink, CountSink};
    pub use crate::rules::pcre::{
        pcre_only, translate as translate_pcre, Translation, Untranslatable,
    };
    pub use crate::rules::{parse_regex, rule_needles};

    /// `search` placed again by the window counts of `sample` (what a rule set's matchers do
    /// after the first MiB of a stream: `rules::placed`); None when nothing would change.
    pub fn placed_by_sample(search: &LitScan, sample: &[u8]) -> Option<LitScan> {
        let mut counts = crate::litscan::WindowCounts::new(search.width());
        counts.add(sample);
        search.placed_for(&counts)
    }

    /// The thrash probe's warnings for `plan`'s rules (what `logalarm` prints beside the log
    /// path after start-up).
    pub fn probe_warnings(plan: &crate::Plan) -> Vec<String> {
        crate::plan::probe_warnings(&plan.probe, plan.probe_cache.as_deref())
    }

    /// Every alarm's decision (template, key, threshold, anti-flood) over `lines`, one a
    /// second apart: the messages it would send, in order (fuzzing and tests).
    pub fn decide_all(plan: &crate::Plan, lines: &[&[u8]]) -> Vec<Vec<u8>> {
        let t0 = std::time::Instant::now();
        let show = |_: std::time::Instant| String::from("T");
        let mut out = Vec::new();
        for a in &plan.alarms {
            let mut s = crate::suppress::Suppress::new(a.policy.clone(), plan.dispatch.freq);
            for (i, l) in lines.iter().enumerate() {
                let now = t0 + std::time::Duration::from_secs(i as u64);
                if let Ok(m) = s.decide(l, &a.name, now, &show) {
                    out.push(m.unwrap_or_else(|| l.to_vec()));
                }
            }
        }
        out
    }
}

//! Live reload: SIGHUP (or `logalarm reload --socket PATH`) re-reads the configuration and
//! swaps rules and alarms without a restart.
//!
//! Role: [`Reloader`] keeps the command line and the configuration now running. A reload
//! parses the command line again (so the ini files are read again), keeps what cannot change
//! in a running process (inputs, output, sockets, servers, mules, spool settings, queue and
//! buffer sizes: each one that changed is named, and applies at the next start; daemons whose
//! `attach-daemon` line changed are stopped and started, the others untouched), builds a plan exactly as start-up does, and hands the new rules and alarms to the
//! reactor, which swaps them at a line boundary of every input (see
//! `Reactor::apply_reload`). An invalid configuration is refused with its error; the running
//! one goes on untouched.
//!
//! Decision (SIGHUP): uWSGI reloads on SIGHUP, and logalarm already reopened `--logto` on it
//! for logrotate; SIGHUP now does both. logrotate's `postrotate kill -HUP` keeps working (a
//! configuration that did not change is not rebuilt: "unchanged").

use std::ffi::OsString;

use crate::config::{self, Config, Sourced};
use crate::plan::{self, Plan};

/// The configuration now running and how to read it again.
#[derive(Debug)]
pub(crate) struct Reloader {
    args: Vec<OsString>,
    running: Config,
}

/// A reload that passed every check: what to swap in.
#[derive(Debug)]
pub(crate) struct Next {
    pub(crate) plan: Plan,
    /// Options that changed but apply only at the next start.
    pub(crate) kept: Vec<&'static str>,
}

fn values<T: Clone>(v: &[Sourced<T>]) -> Vec<T> {
    v.iter().map(|s| s.value.clone()).collect()
}

impl Reloader {
    pub(crate) fn new(args: Vec<OsString>, running: Config) -> Reloader {
        Reloader { args, running }
    }

    /// Read the configuration again. `Ok(None)`: nothing changed.
    pub(crate) fn prepare(&self) -> Result<Option<Next>, String> {
        let mut new = config::parse_args_on_reload(self.args.clone()).map_err(|e| e.to_string())?;
        if same_options(&new, &self.running) {
            return Ok(None);
        }
        let kept = keep_restart_only(&self.running, &mut new);
        let plan = plan::build(&new).map_err(|e| e.to_string())?;
        Ok(Some(Next { plan, kept }))
    }

    /// The reload was applied: `new` is what runs now.
    pub(crate) fn applied(&mut self) -> Result<(), String> {
        let mut new = config::parse_args_on_reload(self.args.clone()).map_err(|e| e.to_string())?;
        keep_restart_only(&self.running, &mut new);
        self.running = new;
        Ok(())
    }
}

/// Whether two configurations read the same options with the same values (where they were
/// written does not matter).
fn same_options(a: &Config, b: &Config) -> bool {
    let same_trace = a.trace.len() == b.trace.len()
        && a.trace
            .iter()
            .zip(&b.trace)
            .all(|(x, y)| x.option == y.option && x.same_value(y));
    // The alarms themselves too (a belt to the trace's braces: every alarm is an option).
    let alarms = |c: &Config| -> Vec<(String, String, String)> {
        c.alarms
            .iter()
            .map(|d| (d.name.clone(), d.kind.clone(), d.arg.clone()))
            .collect()
    };
    same_trace && alarms(a) == alarms(b)
}

/// Put back into `new` what a running process cannot change, naming each that differs.
fn keep_restart_only(old: &Config, new: &mut Config) -> Vec<&'static str> {
    let mut kept = Vec::new();
    macro_rules! keep {
        ($name:literal, $field:ident) => {
            if old.$field != new.$field {
                kept.push($name);
                new.$field = old.$field.clone();
            }
        };
        ($name:literal, $field:ident, values) => {
            if values(&old.$field) != values(&new.$field) {
                kept.push($name);
                new.$field = old.$field.clone();
            }
        };
    }
    keep!("tail", tail, values);
    keep!("tail-from-start", tail_from_start);
    keep!("tail-state", tail_state);
    keep!("udp", udp, values);
    keep!("udp-allow", udp_allow, values);
    keep!("udp-sender", udp_sender);
    keep!("logto", logto);
    keep!("logto-follow-symlinks", logto_follow_symlinks);
    keep!("alarm-socket", alarm_socket, values);
    keep!("watch-socket", watch_socket, values);
    keep!("mule", mule, values);
    keep!("alarm-spool", alarm_spool);
    keep!("alarm-spool-max-size", alarm_spool_max_size);
    keep!("alarm-spool-max-age", alarm_spool_max_age);
    keep!("alarm-queue", alarm_queue);
    keep!("alarm-cheap", alarm_cheap);
    keep!("alarm-grace", alarm_grace);
    keep!("log-master-bufsize", log_master_bufsize);
    keep!("binsh", binsh);
    keep!("env", env);
    let fds = |c: &Config| -> Vec<(String, i32, Option<usize>, String)> {
        c.alarm_fds
            .iter()
            .map(|d| (d.name.clone(), d.fd, d.bytes, d.message.clone()))
            .collect()
    };
    if fds(old) != fds(new) {
        kept.push("alarm-fd");
        new.alarm_fds = old.alarm_fds.clone();
    }
    let addr = |v: &Option<Sourced<String>>| v.as_ref().map(|s| s.value.clone());
    if addr(&old.metrics) != addr(&new.metrics) {
        kept.push("metrics");
        new.metrics = old.metrics.clone();
    }
    if addr(&old.stats) != addr(&new.stats) || old.stats_http != new.stats_http {
        kept.push("stats");
        new.stats = old.stats.clone();
        new.stats_http = old.stats_http;
    }
    kept
}

//! From options to a runnable plan: alarms resolved, rules compiled, cross-references checked.
//!
//! Role: every start-up error that needs more than one option (unknown alarm names, duplicate
//! names, unknown or unavailable types, invalid regexes) is found here, with the option, the
//! value (secrets masked) and the file:line. Alarm ids are ranks: alarms named by rules come
//! first, in the order the configuration first names them, so the matcher's bitset order is the
//! order alarms are raised in. Deviations from uWSGI (documented in README): an unknown alarm
//! name is an error in every option that names one, and a duplicate alarm name is an error.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::action::Action;
use crate::config::RuleSyntax;
use crate::config::{AlarmFdDef, Config, ConfigError, Origin, RuleDef};
use crate::dispatch::Overflow;
use crate::monitor::backlog::{self, Watched};
use crate::rules::pcre::{self, Translation};
use crate::rules::{Rule, RuleError, RuleSet};
use crate::source::udp;
use crate::supervise::Program;

/// One alarm, resolved.
#[derive(Debug)]
pub(crate) struct AlarmPlan {
    pub(crate) name: String,
    pub(crate) action: Action,
    pub(crate) overflow: Overflow,
    /// What makes two definitions the same alarm across a reload: `TYPE:ARG`, the overflow
    /// policy and the anti-flood window (held in memory only, never shown: it may hold a
    /// secret).
    pub(crate) key: String,
    /// `alarm-template`, `alarm-key`, `alarm-threshold` (uWSGI's behaviour when none is set).
    pub(crate) policy: std::sync::Arc<crate::suppress::Policy>,
}

/// `--alarm-spool` and its limits.
#[derive(Debug, Clone)]
pub(crate) struct SpoolPlan {
    pub(crate) dir: PathBuf,
    pub(crate) max_size: u64,
    pub(crate) max_age: Duration,
}

/// How alarms are queued and run (`alarm-*` options).
#[derive(Debug, Clone)]
pub(crate) struct DispatchPlan {
    /// `alarm-cluster`: decisions shared by a fleet on Redis.
    pub(crate) cluster: Option<crate::cluster::ClusterPlan>,
    /// `alarm-cheap`: every action on the main alarm thread.
    pub(crate) cheap: bool,
    /// `alarm-queue`: events each lane's queue holds.
    pub(crate) queue: usize,
    /// `alarm-msg-size`: longest message, longer ones are cut.
    pub(crate) msg_size: usize,
    /// `alarm-freq`: the anti-flood window.
    pub(crate) freq: Duration,
    /// `alarm-grace`: how long queued alarms and supervised processes get at shutdown.
    pub(crate) grace: Duration,
}

/// The monitors and extra inputs, checked but not yet opened (see `monitor::Monitors::open`).
#[derive(Debug, Default)]
pub(crate) struct MonitorPlan {
    pub(crate) alarm_fds: Vec<AlarmFdDef>,
    /// `--watch-socket`: (as written, address).
    pub(crate) watch: Vec<(String, Watched)>,
    /// Ranks of the `alarm-backlog` alarms.
    pub(crate) backlog: Vec<u32>,
    /// Ranks of the `alarm-segfault` alarms.
    pub(crate) segfault: Vec<u32>,
    pub(crate) tails: Vec<PathBuf>,
    pub(crate) tail_from_start: bool,
    /// `--tail-state`.
    pub(crate) tail_state: Option<PathBuf>,
    /// `--udp`: (as written, address, origin).
    pub(crate) udp: Vec<(String, SocketAddr, Origin)>,
    /// `--udp-allow` (empty: every sender).
    pub(crate) udp_allow: Vec<udp::Net>,
    /// `--udp-sender`.
    pub(crate) udp_sender: bool,
    pub(crate) alarm_sockets: Vec<(PathBuf, Origin)>,
    /// `--nats`: JetStream inputs.
    pub(crate) nats: Vec<crate::nats::InputPlan>,
}

/// The runnable configuration: everything the runtime receives (`app::run` reads nothing else).
#[derive(Debug)]
pub struct Plan {
    /// Indexed by alarm rank.
    pub(crate) alarms: Vec<AlarmPlan>,
    /// Alarm name → rank (the one map: the alarm socket and every monitor use it).
    pub(crate) names: HashMap<String, u32>,
    pub(crate) rules: RuleSet,
    pub(crate) monitors: MonitorPlan,
    pub(crate) dispatch: DispatchPlan,
    /// Supervised processes: daemons, mules, then `-- CMD`.
    pub(crate) programs: Vec<Program>,
    pub(crate) binsh: PathBuf,
    /// `--logto`, or standard output.
    pub(crate) logto: Option<PathBuf>,
    /// `--logto-follow-symlinks`.
    pub(crate) logto_follow_symlinks: bool,
    /// Where `spool` alarms keep their queues.
    pub(crate) spool: Option<SpoolPlan>,
    /// Start-up warnings (unknown action keys).
    pub(crate) warnings: Vec<String>,
    /// The rules the thrash probe looks at (see [`probe_warnings`]): probed after
    /// start-up, off the path of the first log line.
    pub(crate) probe: Vec<ProbeRule>,
    /// Where the probe's verdicts are kept for the next start (the rules cache's directory;
    /// see `rules::cache`).
    pub(crate) probe_cache: Option<PathBuf>,
    /// `--metrics`, `--stats`: where the counters are served.
    pub(crate) observe: ObservePlan,
    /// `--nats-out`: where the log stream is published too.
    pub(crate) nats_out: Option<crate::nats::OutputPlan>,
}

/// `--metrics`, `--stats`, `--stats-http`.
#[derive(Debug, Clone, Default)]
pub(crate) struct ObservePlan {
    pub(crate) metrics: Option<(std::net::SocketAddr, String, Origin)>,
    pub(crate) stats: Option<(std::net::SocketAddr, String, Origin)>,
    pub(crate) stats_http: bool,
    /// Each rule as its metrics label: `log-alarm NAME REGEX` (empty when no counters are
    /// served).
    pub(crate) rules: Vec<String>,
}

/// The warnings of the thrash probe: each suspicious rule's lazy DFA run on text made of its
/// own bytes (up to tens of milliseconds a rule: `app` runs it on a thread once the log path has
/// started, and waits for it before exit).
pub(crate) fn probe_warnings(rules: &[ProbeRule], cache: Option<&Path>) -> Vec<String> {
    let patterns: Vec<&str> = rules.iter().map(|r| r.pattern.as_str()).collect();
    // PERF: the verdicts depend only on the patterns and the executable: a large set's are
    // kept beside its rules cache record and read back at the next start instead of probing
    // again (Debian's 2,101 rules: 0.4 s of CPU at every start, 10 % of a 256 MiB run's
    // samples; see PERF.md thirteenth run). A record that cannot be read or written only
    // costs the probe (the rules cache's own warning names a directory others may write).
    let cache = cache.filter(|_| patterns.len() >= crate::rules::cache::MIN_RULES);
    let known = cache.and_then(|dir| crate::rules::cache::load_probe(dir, &patterns).ok()?);
    let thrashing = known.unwrap_or_else(|| {
        let found: Vec<(u32, f64)> = RuleSet::costs(&patterns, false)
            .into_iter()
            .filter(|(_, _, cost)| cost.thrashes)
            .map(|(i, _, cost)| (i as u32, cost.mb_per_s))
            .collect();
        if let Some(dir) = cache {
            let _ = crate::rules::cache::store_probe(dir, &patterns, &found);
        }
        found
    });
    thrashing
        .into_iter()
        .filter_map(|(i, mb_per_s)| {
            let r = rules.get(i as usize)?;
            let cost = crate::rules::Cost {
                thrashes: true,
                mb_per_s,
            };
            Some(format!(
                "{} {}: {}{}",
                r.option,
                r.raw,
                thrash_text(&cost),
                r.origin
            ))
        })
        .collect()
}

/// A rule as the thrash probe needs it: its pattern and how a warning names it.
#[derive(Debug, Clone)]
pub(crate) struct ProbeRule {
    pattern: String,
    /// `log-alarm` (or the option it was given by) and `NAME REGEX`, shown in a warning.
    // PERF: written out only for a rule warned of, not for every rule at every start
    // (Debian's 2,101 rules: 6 M instructions of formatting).
    option: &'static str,
    raw: std::sync::Arc<str>,
    /// Where it was configured.
    origin: crate::config::Origin,
}

impl ObservePlan {
    pub(crate) fn any(&self) -> bool {
        self.metrics.is_some() || self.stats.is_some()
    }
}

impl Plan {
    /// The rank of alarm `name` (checked to exist when the plan was built).
    pub(crate) fn rank(&self, name: &str) -> u32 {
        self.names.get(name).copied().unwrap_or(0)
    }

    /// The compiled rules: feed a [`crate::Pipeline`] with `rules().matcher()`.
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// The alarms' names by rank: a [`crate::Sink`] receives alarm `r` as `alarm_names()[r]`.
    pub fn alarm_names(&self) -> Vec<String> {
        self.alarms.iter().map(|a| a.name.clone()).collect()
    }

    /// Start-up warnings, one line each.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

/// Check and compile a configuration.
pub fn build(c: &Config) -> Result<Plan, ConfigError> {
    let by_name = unique_names(c)?;
    check_references(c, &by_name)?;
    let order = rank_order(c, &by_name);
    let overflow = overflow_policies(c, &by_name)?;
    let mut warnings = Vec::new();
    let alarms = order
        .iter()
        .map(|&i| resolve_alarm(c, i, overflow[i], &mut warnings))
        .collect::<Result<Vec<_>, _>>()?;
    let names: HashMap<String, u32> = alarms
        .iter()
        .enumerate()
        .map(|(rank, a)| (a.name.clone(), rank as u32))
        .collect();
    if alarms.iter().any(|a| matches!(a.action, Action::Cmd(_))) && !c.binsh.exists() {
        let msg = format!("invalid binsh: {}: no such file", c.binsh.display());
        return Err(ConfigError::new(msg, &Origin::Cli));
    }
    let (rules, translated, note) = compile_rules(c, &names)?;
    let mut alarms = alarms;
    let extras: Vec<Vec<(crate::suppress::Template, crate::suppress::Escape)>> = alarms
        .iter()
        .map(|a| {
            a.action
                .templates()
                .into_iter()
                .map(|(t, e)| (t.clone(), e))
                .collect()
        })
        .collect();
    for (a, (policy, key)) in alarms.iter_mut().zip(policies(c, &names, extras)?) {
        a.key.push_str(&key);
        let per_firing = policy.extra.iter().any(|(t, _)| t.uses_groups())
            || (!policy.extra.is_empty() && policy.absence.is_some());
        if a.overflow == Overflow::Spool && per_firing {
            let origin = c
                .alarms
                .iter()
                .find(|d| d.name == a.name)
                .map_or(Origin::Cli, |d| d.origin.clone());
            return Err(ConfigError::new(
                format!(
                    "invalid alarm-overflow: alarm \"{}\" is spooled, and the spool keeps messages only: its templates from captures (labels, URL, subject, mail_to) and an absence's resolution would be lost (give it alarm-overflow \"{} drop\" or \"{} block\")",
                    a.name, a.name, a.name
                ),
                &origin,
            ));
        }
        a.policy = std::sync::Arc::new(policy);
    }
    warnings.extend(note);
    for (i, (r, t)) in c.rules.iter().zip(&translated).enumerate() {
        if pcre::pcre_only(t) {
            warnings.push(format!(
                "{} {}: {}; every line costs a PCRE match for it{}",
                rule_option(r),
                r.raw,
                t.notes.join("; "),
                r.origin
            ));
        }
        if rules.never_matches(i) {
            warnings.push(format!(
                "{} {}: can never match: every match of it holds a newline, and each line is matched on its own without its \"\\n\" (uWSGI matched each read() chunk, which may hold several lines){}",
                rule_option(r),
                r.raw,
                r.origin
            ));
        }
    }
    let probe = c
        .rules
        .iter()
        .zip(translated)
        .map(|(r, t)| ProbeRule {
            pattern: t.pattern,
            option: rule_option(r),
            raw: r.raw.clone(),
            origin: r.origin.clone(),
        })
        .collect();
    let mut monitors = monitors(c, &names)?;
    for v in &c.nats {
        let p = checked("nats", v, crate::nats::InputPlan::parse)?;
        monitors.nats.push(p);
    }
    let nats_out = c
        .nats_out
        .as_ref()
        .map(|v| checked("nats-out", v, crate::nats::OutputPlan::parse))
        .transpose()?;
    for (shown, addr, _) in &monitors.udp {
        if !addr.ip().is_loopback() && monitors.udp_allow.is_empty() {
            warnings.push(format!(
                "udp {shown}: datagrams from any sender are read as log lines and may raise alarms (restrict them with --udp-allow NETWORKS)"
            ));
        }
    }
    Ok(Plan {
        alarms,
        names,
        rules,
        monitors,
        dispatch: DispatchPlan {
            cluster: c
                .alarm_cluster
                .as_ref()
                .map(|v| checked("alarm-cluster", v, crate::cluster::ClusterPlan::parse))
                .transpose()?,
            cheap: c.alarm_cheap,
            queue: c.alarm_queue,
            msg_size: c.alarm_msg_size,
            freq: c.alarm_freq,
            grace: c.alarm_grace,
        },
        programs: programs(c),
        binsh: c.binsh.clone(),
        logto: c.logto.clone(),
        logto_follow_symlinks: c.logto_follow_symlinks,
        spool: c.alarm_spool.as_ref().map(|dir| SpoolPlan {
            dir: dir.clone(),
            max_size: c.alarm_spool_max_size,
            max_age: c.alarm_spool_max_age,
        }),
        warnings,
        probe,
        probe_cache: rules_cache_dir(c),
        observe: observe(c)?,
        nats_out,
    })
}

/// Every `(value, reason)` of `cases` is refused by `parse` with an error containing the reason
/// (the option parsers' unit tests).
#[cfg(test)]
pub(crate) fn assert_refused<T>(parse: fn(&str) -> Result<T, String>, cases: &[(&str, &str)]) {
    for (bad, why) in cases {
        match parse(bad) {
            Err(e) => assert!(e.contains(why), "{bad}: {e}"),
            Ok(_) => panic!("{bad} accepted"),
        }
    }
}

/// Option `opt`'s value parsed by `parse`; its error names the option and shows the value
/// with its secrets masked.
fn checked<T>(
    opt: &str,
    v: &crate::config::Sourced<String>,
    parse: fn(&str) -> Result<T, String>,
) -> Result<T, ConfigError> {
    parse(&v.value).map_err(|e| {
        ConfigError::new(
            format!(
                "invalid {opt} `{}`: {e}",
                crate::config::redact_value(&v.value)
            ),
            &v.origin,
        )
    })
}

fn observe(c: &Config) -> Result<ObservePlan, ConfigError> {
    let addr = |opt: &str, v: &Option<crate::config::Sourced<String>>| {
        v.as_ref()
            .map(|s| {
                crate::metrics::address(opt, &s.value)
                    .map(|a| (a, s.value.clone(), s.origin.clone()))
                    .map_err(|e| ConfigError::new(e, &s.origin))
            })
            .transpose()
    };
    let metrics = addr("metrics", &c.metrics)?;
    let stats = addr("stats", &c.stats)?;
    // PERF: the labels are written only when counters are served (Debian's 2,101 rules: 0.3
    // MB of fresh memory, ~70 page faults, before the first line out at every start).
    let rules = match metrics.is_some() || stats.is_some() {
        true => c
            .rules
            .iter()
            .map(|r| format!("{} {}", rule_option(r), r.raw))
            .collect(),
        false => Vec::new(),
    };
    Ok(ObservePlan {
        metrics,
        stats,
        stats_http: c.stats_http,
        rules,
    })
}

/// The types whose alarms may be spooled: they deliver to a remote end that can be down.
const SPOOLABLE: [&str; 5] = ["curl", "airbrake", "xmpp", "webhook", "alertmanager"];

/// The policy of an alarm of type `kind` without an `alarm-overflow`: `log:` blocks (one line,
/// never a reason to lose it); delivery types spool when `--alarm-spool` is given; the rest
/// drop with a digest (uWSGI drops; a stalled log path would stall the service behind it).
fn default_overflow(c: &Config, kind: &str) -> Overflow {
    match kind {
        "log" => Overflow::Block,
        k if SPOOLABLE.contains(&k) && c.alarm_spool.is_some() => Overflow::Spool,
        _ => Overflow::Drop,
    }
}

/// Each alarm's overflow policy (indexed like `c.alarms`).
pub(crate) fn overflow_policies(
    c: &Config,
    by_name: &HashMap<&str, usize>,
) -> Result<Vec<Overflow>, ConfigError> {
    let mut policies: Vec<Overflow> = c
        .alarms
        .iter()
        .map(|a| default_overflow(c, &a.kind))
        .collect();
    for o in &c.alarm_overflow {
        let err = |why: String| {
            ConfigError::new(
                format!("invalid alarm-overflow: {}: {why}", o.value),
                &o.origin,
            )
        };
        let (names, policy) = o
            .value
            .trim()
            .rsplit_once(char::is_whitespace)
            .ok_or_else(|| err("expected \"NAME[,NAME...] POLICY\"".to_string()))?;
        let policy = Overflow::parse(policy.trim()).ok_or_else(|| {
            err(format!(
                "unknown policy `{}` (drop, block or spool)",
                policy.trim()
            ))
        })?;
        for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let Some(&i) = by_name.get(name) else {
                return Err(err(format!("no alarm named \"{name}\"")));
            };
            let kind = c.alarms[i].kind.as_str();
            if kind == "log" && policy != Overflow::Block {
                return Err(err(format!(
                    "alarm \"{name}\" is a log: alarm: its lines are never dropped (its policy is block)"
                )));
            }
            if policy == Overflow::Spool && !SPOOLABLE.contains(&kind) {
                return Err(err(format!(
                    "alarm \"{name}\" is a {kind}: alarm: only curl, airbrake, xmpp, webhook and alertmanager alarms can be spooled"
                )));
            }
            if policy == Overflow::Spool && c.alarm_spool.is_none() {
                return Err(err(
                    "spool needs a directory: add --alarm-spool DIR".to_string()
                ));
            }
            policies[i] = policy;
        }
    }
    Ok(policies)
}

/// What a thrashing rule costs, in words.
pub(crate) fn thrash_text(cost: &crate::rules::Cost) -> String {
    format!(
        "its lazy DFA thrashes (regex-automata gives up on its cache) on lines made of the bytes it repeats: such lines are matched at {:.1} MB/s; bound or anchor the repetition (logalarm --check-rules shows every rule's cost)",
        cost.mb_per_s
    )
}

/// Probe the rules' costs (`all`: every rule, else the suspicious ones).
pub(crate) fn rule_costs(
    c: &Config,
    all: bool,
) -> Vec<(&RuleDef, &'static str, crate::rules::Cost)> {
    let Ok(translated) = rule_patterns(c) else {
        return Vec::new();
    };
    let patterns: Vec<&str> = translated.iter().map(|t| t.pattern.as_str()).collect();
    RuleSet::costs(&patterns, all)
        .into_iter()
        .filter_map(|(i, engine, cost)| c.rules.get(i).map(|r| (r, engine, cost)))
        .collect()
}

/// `--check-rules`: every rule's engine and cost, one line each; whether one thrashes.
pub(crate) fn check_rules(c: &Config) -> (String, bool) {
    let mut s = String::from(
        "*** logalarm rule costs (probed on lines made of each rule's own bytes) ***\n",
    );
    let mut bad = false;
    for (r, engine, cost) in rule_costs(c, true) {
        let verdict = if cost.thrashes {
            bad = true;
            format!("PATHOLOGICAL: {}", thrash_text(&cost))
        } else {
            format!("ok, {:.0} MB/s", cost.mb_per_s)
        };
        s.push_str(&format!(
            "{} {}\n    engine: {engine}; {verdict}\n",
            rule_option(r),
            r.raw
        ));
    }
    (s, bad)
}

/// Alarm name → index in `c.alarms`; a name defined twice is an error.
pub(crate) fn unique_names(c: &Config) -> Result<HashMap<&str, usize>, ConfigError> {
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    for (i, a) in c.alarms.iter().enumerate() {
        if let Some(&first) = by_name.get(a.name.as_str()) {
            return Err(ConfigError::new(
                format!(
                    "invalid alarm: {}: alarm \"{}\" is already defined ({})",
                    a.redacted(),
                    a.name,
                    c.alarms[first].redacted()
                ),
                &a.origin,
            ));
        }
        by_name.insert(&a.name, i);
    }
    Ok(by_name)
}

pub(crate) fn rule_option(r: &RuleDef) -> &'static str {
    use crate::rules::fields::Format;
    if r.continuation {
        return "alarm-multiline";
    }
    match (&r.fields, r.negate) {
        (Some(f), _) if f.format == Format::Json => "log-alarm-json",
        (Some(_), _) => "log-alarm-logfmt",
        (None, true) => "not-log-alarm",
        (None, false) => "log-alarm",
    }
}

/// Every option that names an alarm names a defined one.
fn check_references(c: &Config, by_name: &HashMap<&str, usize>) -> Result<(), ConfigError> {
    let check = |opt: &str, name: &str, value: &str, o: &Origin| {
        if by_name.contains_key(name) {
            Ok(())
        } else {
            Err(ConfigError::new(
                format!("invalid {opt}: {value}: no alarm named \"{name}\" (define it with --alarm \"{name} TYPE:ARG\")"),
                o,
            ))
        }
    };
    for r in &c.rules {
        for n in &r.names {
            check(rule_option(r), n, &r.raw, &r.origin)?;
        }
    }
    for s in &c.alarm_backlog {
        check("alarm-backlog", &s.value, &s.value, &s.origin)?;
    }
    for s in &c.alarm_segfault {
        check("alarm-segfault", &s.value, &s.value, &s.origin)?;
    }
    for d in &c.alarm_fds {
        check("alarm-fd", &d.name, &d.name, &d.origin)?;
    }
    if let (Some(b), true) = (c.alarm_backlog.first(), c.watch_socket.is_empty()) {
        return Err(ConfigError::new(
            format!(
                "invalid alarm-backlog: {}: no listen queue to watch (add --watch-socket HOST:PORT or PATH)",
                b.value
            ),
            &b.origin,
        ));
    }
    Ok(())
}

/// Indexes into `c.alarms` in rank order: first named by a rule first, then the rest in
/// definition order (so the matcher's bitset order is the order alarms are raised in).
fn rank_order(c: &Config, by_name: &HashMap<&str, usize>) -> Vec<usize> {
    let mut ranked = vec![false; c.alarms.len()];
    let mut order = Vec::with_capacity(c.alarms.len());
    let named = c.rules.iter().flat_map(|r| r.names.iter());
    let all = named.filter_map(|n| by_name.get(n.as_str()).copied());
    for i in all.chain(0..c.alarms.len()) {
        if !std::mem::replace(&mut ranked[i], true) {
            order.push(i);
        }
    }
    order
}

/// Parse alarm `i`'s action and check what it needs (mules, supervised processes).
fn resolve_alarm(
    c: &Config,
    i: usize,
    overflow: Overflow,
    warnings: &mut Vec<String>,
) -> Result<AlarmPlan, ConfigError> {
    let a = &c.alarms[i];
    let mut w = Vec::new();
    let mut action = Action::parse(&a.kind, &a.arg, &mut w).map_err(|why| {
        ConfigError::new(format!("invalid alarm: {}: {why}", a.redacted()), &a.origin)
    })?;
    if let Action::Mule(m) = &action {
        if c.mule.is_empty() || m.n > c.mule.len() {
            return Err(ConfigError::new(
                format!(
                    "invalid alarm: {}: there {} {} mule(s) (start them with --mule \"CMD\")",
                    a.redacted(),
                    if c.mule.len() == 1 { "is" } else { "are" },
                    c.mule.len()
                ),
                &a.origin,
            ));
        }
    }
    if matches!(action, Action::Signal(_)) && c.attach_daemon.is_empty() && c.command.is_empty() {
        return Err(ConfigError::new(
            format!(
                "invalid alarm: {}: signal alarms signal supervised processes, and there is none (add --attach-daemon \"CMD\" or -- CMD ARGS...)",
                a.redacted()
            ),
            &a.origin,
        ));
    }
    warnings.extend(
        w.into_iter()
            .map(|w| format!("alarm {}: {w}{}", a.redacted(), a.origin)),
    );
    if let Action::Cmd(cmd) = &mut action {
        cmd.block = overflow == Overflow::Block;
    }
    Ok(AlarmPlan {
        name: a.name.clone(),
        action,
        overflow,
        key: format!(
            "{}:{}|{}|{:?}",
            a.kind,
            a.arg,
            overflow.name(),
            c.alarm_freq
        ),
        policy: Default::default(),
    })
}

/// Longest window of `alarm-threshold`, `alarm-digest`, `alarm-absence`: a year.
const MAX_POLICY_SECONDS: u64 = 31_622_400;

/// `v` as a whole number from 1 to `max`; the error names it as `what`.
fn whole(v: &str, what: &str, max: u64) -> Result<u64, String> {
    v.parse::<u64>()
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| format!("`{v}`: {what} must be a whole number from 1 to {max}"))
}

/// Each alarm's `alarm-template`, `alarm-key` and `alarm-threshold` (indexed by rank), and
/// the same as text for the alarm's reload key.
fn policies(
    c: &Config,
    names: &HashMap<String, u32>,
    extras: Vec<Vec<(crate::suppress::Template, crate::suppress::Escape)>>,
) -> Result<Vec<(crate::suppress::Policy, String)>, ConfigError> {
    use crate::suppress::{Captor, Policy, Template, Threshold};
    let mut out: Vec<(Policy, String)> = (0..names.len())
        .map(|_| {
            (
                Policy {
                    keys_max: c.alarm_keys_max,
                    ..Policy::default()
                },
                String::new(),
            )
        })
        .collect();
    // (option, definition, the part after the names, the ranks it names)
    let mut defs = Vec::new();
    for (opt, list) in [
        ("alarm-template", &c.alarm_template),
        ("alarm-template-json", &c.alarm_template_json),
        ("alarm-key", &c.alarm_key),
        ("alarm-threshold", &c.alarm_threshold),
        ("alarm-digest", &c.alarm_digest),
        ("alarm-absence", &c.alarm_absence),
    ] {
        for d in list {
            let err = move |why: String| {
                ConfigError::new(format!("invalid {opt}: {}: {why}", d.value), &d.origin)
            };
            let v = d.value.trim_start();
            let Some((list, rest)) = v.split_once(char::is_whitespace) else {
                return Err(err("expected \"NAME[,NAME...] VALUE\"".into()));
            };
            let mut ranks = Vec::new();
            for n in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                match names.get(n) {
                    Some(&r) => ranks.push(r as usize),
                    None => return Err(err(format!("no alarm named \"{n}\""))),
                }
            }
            defs.push((opt, d, rest.trim(), ranks, err));
        }
    }
    for (opt, _, rest, ranks, err) in &defs {
        for &r in ranks {
            let (p, key) = &mut out[r];
            match *opt {
                "alarm-template" => p.template = Some(Template::parse(rest).map_err(err)?),
                "alarm-template-json" => {
                    p.template = Some(Template::parse(rest).map_err(err)?);
                    p.template_escape = crate::suppress::Escape::Json;
                }
                "alarm-key" => p.key = Some(Template::parse(rest).map_err(err)?),
                "alarm-digest" | "alarm-absence" => {
                    let secs = whole(rest, "SECONDS", MAX_POLICY_SECONDS).map_err(&err)?;
                    let d = Some(Duration::from_secs(secs));
                    if *opt == "alarm-digest" {
                        p.digest = d;
                    } else {
                        p.absence = d;
                    }
                }
                _ => {
                    let mut it = rest.split_whitespace();
                    let (Some(n), Some(s), None) = (it.next(), it.next(), it.next()) else {
                        return Err(err("expected \"NAME[,NAME...] COUNT SECONDS\"".into()));
                    };
                    let count = whole(n, "COUNT", 1_000_000).map_err(&err)? as usize;
                    let secs = whole(s, "SECONDS", MAX_POLICY_SECONDS).map_err(&err)?;
                    p.threshold = Some(Threshold {
                        count,
                        window: Duration::from_secs(secs),
                    });
                }
            }
            key.push_str(&format!("|{opt} {rest}"));
            p.shown.push(format!("{opt} {rest}"));
        }
    }
    for ((p, _), extra) in out.iter_mut().zip(extras) {
        p.extra = extra;
        p.msg_size = c.alarm_msg_size;
    }
    // alarm-multiline: the alarm's own rules start an event, its continuation rules join it.
    let pcre = c.rule_syntax == RuleSyntax::Pcre;
    for (name, &rank) in names {
        let source = |r: &&RuleDef| !r.negate && r.names.iter().any(|n| n == name);
        let conts: Vec<&RuleDef> = c
            .rules
            .iter()
            .filter(source)
            .filter(|r| r.continuation)
            .collect();
        let Some(first) = conts.first() else {
            continue;
        };
        let err = |why: String| {
            ConfigError::new(
                format!("invalid alarm-multiline: {}: {why}", first.raw),
                &first.origin,
            )
        };
        fn as_source(r: &RuleDef) -> crate::suppress::CapSource<'_> {
            match &r.fields {
                Some(f) => crate::suppress::CapSource::Fields(f),
                None => crate::suppress::CapSource::Regex(r.regex()),
            }
        }
        let starts: Vec<_> = c
            .rules
            .iter()
            .filter(source)
            .filter(|r| !r.continuation)
            .map(as_source)
            .collect();
        if starts.is_empty() {
            return Err(err(format!(
                "no log-alarm rule raises alarm \"{name}\": nothing starts an event to continue"
            )));
        }
        let cont: Vec<_> = conts.iter().map(|r| as_source(r)).collect();
        let (starts, _) = Captor::new(&starts, pcre).map_err(&err)?;
        let (cont, _) = Captor::new(&cont, pcre).map_err(&err)?;
        if let Some((p, key)) = out.get_mut(rank as usize) {
            p.multiline = Some(crate::suppress::Multiline { starts, cont });
            key.push_str(&format!("|alarm-multiline {}", first.raw));
            p.shown.push(format!("alarm-multiline {}", first.raw));
        }
    }
    // The captures: the rules naming the alarm (positively), in configuration order.
    for (rank, (p, _)) in out.iter_mut().enumerate() {
        if !p.needs_groups() {
            continue;
        }
        let Some(name) = names
            .iter()
            .find(|(_, &r)| r as usize == rank)
            .map(|(n, _)| n)
        else {
            continue;
        };
        // The option to name in errors: the template or key using groups, else the alarm
        // itself (its action's labels use them).
        let named = defs
            .iter()
            .find(|(o, _, _, ranks, _)| {
                ranks.contains(&rank)
                    && matches!(*o, "alarm-template" | "alarm-template-json" | "alarm-key")
            })
            .map(|(o, d, ..)| (o.to_string(), d.value.clone(), d.origin.clone()));
        let (opt, value, origin) = match named {
            Some(n) => n,
            None => match c.alarms.iter().find(|a| &a.name == name) {
                Some(a) => ("alarm".to_string(), a.redacted(), a.origin.clone()),
                None => continue,
            },
        };
        let err = |why: String| ConfigError::new(format!("invalid {opt}: {value}: {why}"), &origin);
        let rules: Vec<crate::suppress::CapSource<'_>> = c
            .rules
            .iter()
            .filter(|r| !r.negate && !r.continuation && r.names.iter().any(|n| n == name))
            .map(|r| match &r.fields {
                Some(f) => crate::suppress::CapSource::Fields(f),
                None => crate::suppress::CapSource::Regex(r.regex()),
            })
            .collect();
        if rules.is_empty() {
            return Err(err(format!(
                "alarm \"{name}\" is raised by no log-alarm rule, so it has no groups to use"
            )));
        }
        let (captor, groups) = Captor::new(&rules, c.rule_syntax == RuleSyntax::Pcre)
            .map_err(|e| err(format!("a rule of alarm \"{name}\": {e}")))?;
        let most = groups.iter().map(|(n, _)| *n).max().unwrap_or(0);
        for t in p
            .template
            .iter()
            .chain(p.key.iter())
            .chain(p.extra.iter().map(|(t, _)| t))
        {
            if let Some(g) = t.max_group().filter(|&g| g > most) {
                return Err(err(format!(
                    "`{{{g}}}`: the rules of alarm \"{name}\" have at most {most} group(s)"
                )));
            }
            // A field rule captures every field of its line: names cannot be checked ahead.
            let any_field_rule = rules
                .iter()
                .any(|r| matches!(r, crate::suppress::CapSource::Fields(_)));
            for n in t.names() {
                if !any_field_rule && !groups.iter().any(|(_, names)| names.iter().any(|x| x == n))
                {
                    let known: Vec<&str> = groups
                        .iter()
                        .flat_map(|(_, names)| names.iter().map(String::as_str))
                        .collect();
                    return Err(err(format!(
                        "`{{{n}}}`: no rule of alarm \"{name}\" has a group of that name (named groups: {})",
                        if known.is_empty() { "none".to_string() } else { known.join(", ") }
                    )));
                }
            }
        }
        p.captor = Some(captor);
    }
    Ok(out)
}

/// Each rule in the automaton's syntax: PCRE rules translated (`rule-syntax = pcre`, the
/// default), Rust-syntax rules as written.
pub(crate) fn rule_patterns(c: &Config) -> Result<Vec<Translation>, ConfigError> {
    // PERF: translated on every core with a large set, as they are parsed (PERF.md
    // "twenty-sixth run").
    let one = |i: usize| {
        let r = &c.rules[i];
        match c.rule_syntax {
            RuleSyntax::Rust => Ok(Translation {
                pattern: r.regex().to_string(),
                notes: Vec::new(),
                pcre: false,
                pcre_source: None,
            }),
            RuleSyntax::Pcre => pcre::translate(r.regex()).map_err(|e| {
                ConfigError::new(
                    format!("invalid {}: {}: regex error {e}", rule_option(r), r.raw),
                    &r.origin,
                )
            }),
        }
    };
    let n = c.rules.len();
    crate::par::map(n, crate::rules::parallel_threads(n), 64, one)
        .into_iter()
        .collect()
}

/// Confirmers made on every core from this many on (a PCRE2 compile is ~10 µs).
const CONFIRMERS_ON_EVERY_CORE: usize = 32;

/// The rules compiled, their translations from PCRE, and a warning about the rules cache, if
/// any.
fn compile_rules(
    c: &Config,
    names: &HashMap<String, u32>,
) -> Result<(RuleSet, Vec<Translation>, Option<String>), ConfigError> {
    let rank = |n: &str| names.get(n).copied().unwrap_or(0);
    let translated = rule_patterns(c)?;
    let patterns: Vec<(&str, Rule)> = c
        .rules
        .iter()
        .zip(&translated)
        .map(|(r, t)| {
            let alarms = r.names.iter().map(|n| rank(n)).collect();
            let rule = Rule {
                alarms,
                negate: r.negate,
            };
            (t.pattern.as_str(), rule)
        })
        .collect();
    // PERF: only the rules that have one, on every core when they are many (Debian's 2,101
    // rules: 194 PCRE2 compiles, 1.8 ms on the calling thread), into room made once (collected
    // through a `Result`, the vector grew by doubling: ~250 page faults before the first line
    // out). The first error in rule order is the one reported, as before.
    let make = |i: usize| {
        let r = &c.rules[i];
        match &r.fields {
            Some(spec) => crate::rules::fields::FieldRule::new(spec)
                .map(crate::rules::Confirmer::Fields)
                .map_err(|e| {
                    ConfigError::new(
                        format!("invalid {}: {}: {e}", rule_option(r), r.raw),
                        &r.origin,
                    )
                }),
            None => pcre_confirmer(r, &translated[i]).map(crate::rules::Confirmer::Pcre),
        }
    };
    let wanted: Vec<usize> = (0..c.rules.len())
        .filter(|&i| c.rules[i].fields.is_some() || translated[i].pcre)
        .collect();
    let threads = match wanted.len() >= CONFIRMERS_ON_EVERY_CORE {
        true => crate::par::cores(),
        false => 1,
    };
    let made = crate::par::map(wanted.len(), threads, 8, |k| make(wanted[k]));
    let mut confirm = Vec::new();
    if !wanted.is_empty() {
        confirm.resize_with(c.rules.len(), || None);
    }
    for (&i, one) in wanted.iter().zip(made) {
        confirm[i] = Some(one?);
    }
    let cache = rules_cache_dir(c);
    let (mut set, note) = RuleSet::with_cache(
        &patterns,
        names.len(),
        c.log_master_bufsize,
        cache.as_deref(),
    )
    .map_err(|e: RuleError| {
        match e.rule.and_then(|i| c.rules.get(i).zip(translated.get(i))) {
            Some((r, t)) => {
                let mut msg = format!("invalid {}: {}: {}", rule_option(r), r.raw, e.error);
                if t.pattern != r.regex() {
                    msg.push_str(&format!(" (in its translation from PCRE: {})", t.pattern));
                }
                ConfigError::new(msg, &r.origin)
            }
            None => ConfigError::new(format!("invalid log-alarm: {}", e.error), &Origin::Cli),
        }
    })?;
    if !set.set_confirmers(confirm) {
        return Err(ConfigError::new(
            "logalarm: internal error: the rule set was shared before its PCRE confirmers were set",
            &Origin::Cli,
        ));
    }
    Ok((set, translated, note))
}

/// `--rules-cache`: the rules cache's directory, or None when it is off or there is no home.
fn rules_cache_dir(c: &Config) -> Option<PathBuf> {
    match c.rules_cache.as_deref() {
        Some("off") => None,
        Some(dir) => Some(PathBuf::from(dir)),
        None => crate::rules::cache::default_dir(),
    }
}

/// The PCRE that confirms rule `r`'s lines, compiled as uWSGI compiles rules (no options: no
/// UTF, no multi-line, `.` not newline), JIT when available (at its first candidate line); the
/// rule as PCRE 8 reads it (`t`'s [`Translation::pcre_text`]).
fn pcre_confirmer(r: &RuleDef, t: &Translation) -> Result<crate::rules::LazyJit, ConfigError> {
    crate::rules::LazyJit::new(t.pcre_text(r.regex())).map_err(|e| {
        ConfigError::new(
            format!(
                "invalid {}: {}: PCRE refuses it: {e}",
                rule_option(r),
                r.raw
            ),
            &r.origin,
        )
    })
}

fn monitors(c: &Config, names: &HashMap<String, u32>) -> Result<MonitorPlan, ConfigError> {
    let rank = |n: &str| names.get(n).copied().unwrap_or(0);
    let mut watch = Vec::new();
    for w in &c.watch_socket {
        let what = backlog::parse_watch(&w.value).map_err(|e| {
            ConfigError::new(format!("invalid watch-socket: {}: {e}", w.value), &w.origin)
        })?;
        watch.push((w.value.clone(), what));
    }
    let mut udp = Vec::new();
    for u in &c.udp {
        let addr = udp::bind_address(&u.value)
            .map_err(|e| ConfigError::new(format!("invalid udp: {}: {e}", u.value), &u.origin))?;
        udp.push((u.value.clone(), addr, u.origin.clone()));
    }
    let mut udp_allow = Vec::new();
    for a in &c.udp_allow {
        for net in a.value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            udp_allow.push(udp::Net::parse(net).map_err(|e| {
                ConfigError::new(format!("invalid udp-allow: {}: {e}", a.value), &a.origin)
            })?);
        }
    }
    Ok(MonitorPlan {
        udp_allow,
        udp_sender: c.udp_sender,
        alarm_fds: c.alarm_fds.clone(),
        watch,
        backlog: c.alarm_backlog.iter().map(|s| rank(&s.value)).collect(),
        segfault: c.alarm_segfault.iter().map(|s| rank(&s.value)).collect(),
        tails: c.tail.iter().map(|t| t.value.clone()).collect(),
        tail_from_start: c.tail_from_start,
        tail_state: c.tail_state.clone(),
        udp,
        alarm_sockets: c
            .alarm_socket
            .iter()
            .map(|s| (s.value.clone(), s.origin.clone()))
            .collect(),
        nats: Vec::new(),
    })
}

/// Daemons, then mules (numbered in order), then `-- CMD`.
fn programs(c: &Config) -> Vec<Program> {
    let daemons = c
        .attach_daemon
        .iter()
        .map(|d| Program::Daemon(d.value.clone()));
    let mules = c
        .mule
        .iter()
        .enumerate()
        .map(|(i, m)| Program::Mule(m.value.clone(), i));
    let main = (!c.command.is_empty()).then(|| Program::Main(c.command.clone()));
    daemons.chain(mules).chain(main).collect()
}

/// How rule `r` runs (`runs on: ...`, with its translation from PCRE), or why it is refused;
/// None with `rule-syntax rust` (the rule is the automaton's own syntax).
pub(crate) fn runs_on(c: &Config, r: &RuleDef) -> Option<String> {
    if c.rule_syntax != RuleSyntax::Pcre {
        return None;
    }
    Some(match pcre::translate(r.regex()) {
        Ok(t) if pcre::pcre_only(&t) => {
            format!("runs on: PCRE alone, every line ({})", t.notes.join("; "))
        }
        Ok(t) => {
            let on = if t.pcre {
                "the automaton, each match confirmed by PCRE"
            } else {
                "the automaton"
            };
            let mut s = format!("runs on: {on}");
            if !t.notes.is_empty() {
                s.push_str(&format!(", as {} ({})", t.pattern, t.notes.join("; ")));
            }
            s
        }
        Err(e) => format!("refused: regex error {e}"),
    })
}

/// `--alarm-list`: the types, then the configured alarms (secrets masked).
pub(crate) fn alarm_list(c: &Config) -> String {
    let mut s = String::from("*** logalarm alarm types ***\n");
    for (name, built, doc) in crate::action::TYPES {
        s.push_str(&format!(
            "{name}{}\t{doc}\n",
            if *built {
                ""
            } else {
                " (not in this build yet)"
            }
        ));
    }
    s.push_str("*** configured alarms ***\n");
    let policies = unique_names(c).and_then(|by_name| overflow_policies(c, &by_name));
    for (i, a) in c.alarms.iter().enumerate() {
        let policy = match &policies {
            Ok(p) => p[i].name(),
            Err(_) => "invalid (see the error)",
        };
        s.push_str(&format!("{}\t(overflow: {policy})\n", a.redacted()));
    }
    s.push_str("*** log-alarm rules ***\n");
    for r in &c.rules {
        s.push_str(&format!("{} {}\n", rule_option(r), r.raw));
        if let Some(how) = runs_on(c, r) {
            s.push_str(&format!("    {how}\n"));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_args;

    fn plan(args: &[&str]) -> Result<Plan, ConfigError> {
        build(&parse_args(args.iter().map(Into::into)).unwrap())
    }

    #[test]
    fn uwsgi_error_messages() {
        let e = plan(&["--alarm", "a foo:bar"]).unwrap_err().to_string();
        assert!(
            e.starts_with("invalid alarm: a foo:bar: unknown alarm type `foo`"),
            "{e}"
        );
        let e = plan(&["--alarm", "a log:", "--log-alarm", "a,zz TERRIBLE"])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("invalid log-alarm: a,zz TERRIBLE: no alarm named \"zz\""),
            "{e}"
        );
        let e = plan(&["--alarm", "a log:", "--not-log-alarm", "zz x"])
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("invalid not-log-alarm: zz x"), "{e}");
        let e = plan(&["--alarm", "a log:", "--log-alarm", "a (unclosed"])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("invalid log-alarm: a (unclosed: regex error at offset 0"),
            "{e}"
        );
        let e = plan(&["--alarm", "a log:", "--alarm", "a cmd:x"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("already defined"), "{e}");
        let e = plan(&["--alarm", "a log:", "--alarm-segfault", "zz"])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("invalid alarm-segfault: zz: no alarm named"),
            "{e}"
        );
        let e = plan(&["--alarm", "m curl:smtp://h;auth_pass=hunter2"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs mail_to") && !e.contains("hunter2"), "{e}");
    }

    /// With one alarm, the rules sharing an automaton are alike and the first one confirmed
    /// decides a line. When PCRE refuses the automaton's earliest match (its look-behind), the
    /// other rules that match are still tried: in a group sharing a literal, and among the
    /// rules without long literals, as one automaton and in chunks of 16.
    #[test]
    fn a_refused_first_match_leaves_the_other_rules_to_decide() {
        let fillers: Vec<String> = (1..=16).map(|k| format!(r"\d[^\w\s]{{{k}}}\w")).collect();
        // (rules, lines, the lines that raise)
        type Case<'a> = (Vec<String>, &'a [u8], Vec<&'a [u8]>);
        let cases: [Case; 3] = [
            (
                vec![
                    r"(?<!x)connect from \d+".into(),
                    r"connect from \d+ host".into(),
                ],
                b"xconnect from 12 host\nxconnect from 12 guest\nconnect from 12 guest\n",
                vec![b"xconnect from 12 host\n", b"connect from 12 guest\n"],
            ),
            (
                vec![r"(?<![x0-9])\d+".into(), r"\d+[u-y]$".into()],
                b"x12y\nx12z\n12z\n",
                vec![b"x12y\n", b"12z\n"],
            ),
            (
                fillers
                    .iter()
                    .cloned()
                    .chain([r"(?<![x0-9])\d+".into(), r"\d+[u-y]$".into()])
                    .collect(),
                b"x12y\nx12z\n12z\n",
                vec![b"x12y\n", b"12z\n"],
            ),
        ];
        for (rules, buf, want) in cases {
            let mut args = vec!["--alarm".to_string(), "a log:".to_string()];
            for r in &rules {
                args.extend(["--log-alarm".to_string(), format!("a {r}")]);
            }
            let p = plan(&args.iter().map(String::as_str).collect::<Vec<_>>()).unwrap();
            let mut m = p.rules().matcher();
            let mut got: Vec<Vec<u8>> = Vec::new();
            m.scan_lines(buf, &mut |line, alarms| {
                assert_eq!(alarms, &[0][..]);
                got.push(line.to_vec());
            });
            assert_eq!(got, want, "{rules:?}");
        }
    }

    #[test]
    fn ranks_follow_first_naming() {
        let p = plan(&[
            "--alarm",
            "z log:",
            "--alarm",
            "b log:",
            "--alarm",
            "a log:",
            "--log-alarm",
            "a,b x",
            "--not-log-alarm",
            "z y",
        ])
        .unwrap();
        let names: Vec<&str> = p.alarms.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, vec!["a", "b", "z"]);
    }

    #[test]
    fn list_masks_secrets() {
        let c = parse_args(
            [
                "--alarm",
                "m curl:smtp://u:pw@h;auth_pass=hunter2",
                "--alarm",
                "x xmpp:a@b;sekret;c@d",
            ]
            .iter()
            .map(Into::into),
        )
        .unwrap();
        let l = alarm_list(&c);
        assert!(
            !l.contains("hunter2") && !l.contains("sekret") && !l.contains(":pw@"),
            "{l}"
        );
        assert!(l.contains("cmd") && l.contains("airbrake"));
    }
}

//! `--metrics ADDR` (Prometheus text) and `--stats ADDR` (JSON, as uWSGI's stats server):
//! what logalarm did so far, read without touching the log path.
//!
//! Role: [`Metrics`] holds the numbers; each is written by the one thread that owns the work
//! and read by the server threads at a scrape. The reader publishes its inputs' counters
//! (bytes, lines, alarms, matches per rule) once per read turn, not per line
//! ([`Meter::publish`]); alarm counters, queue depths and latency histograms are the
//! dispatcher's own atomics ([`Probe`]); supervised processes' starts and exits are counted
//! when they happen. The Prometheus exposition is encoded by `prometheus-client` (OpenMetrics
//! text) from a collector that reads these at each scrape.
//!
//! Invariants: the servers run on their own threads, answer one request at a time with a
//! 2-second read and write timeout (a stuck client cannot hold a scrape slot), and bind to
//! loopback unless the address names a host. Without `--metrics`/`--stats` nothing here
//! exists and lines are not counted.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::dispatch::Probe;
use crate::output::Output;
use crate::pipeline::{Pipeline, Stats};

/// One input's counters.
#[derive(Debug)]
pub(crate) struct InputMeter {
    name: String,
    bytes: AtomicU64,
    /// Bytes of this input handed to the output.
    passed: AtomicU64,
    lines: AtomicU64,
    alarms: AtomicU64,
}

/// One input's counters as read together.
#[derive(Debug, Clone, Copy)]
struct InputCounts {
    bytes: u64,
    passed: u64,
    lines: u64,
    alarms: u64,
}

impl InputMeter {
    /// Count what one read turn did. The lines go last, released: a reader that sees them
    /// (`snapshot`) also sees the bytes and alarms of the same lines, and the rule matches
    /// `Meter::publish` counted before.
    fn add(&self, d: InputCounts) {
        for (a, n) in [
            (&self.bytes, d.bytes),
            (&self.passed, d.passed),
            (&self.alarms, d.alarms),
        ] {
            if n > 0 {
                a.fetch_add(n, Ordering::Relaxed);
            }
        }
        if d.lines > 0 {
            self.lines.fetch_add(d.lines, Ordering::Release);
        }
    }

    /// The counters, consistent with the lines: `Meter::publish` adds the lines last
    /// (released) and they are read first here (acquired), so the bytes, alarms and rule
    /// matches read after them include at least those of the lines counted.
    fn snapshot(&self) -> InputCounts {
        let lines = self.lines.load(Ordering::Acquire);
        InputCounts {
            lines,
            bytes: self.bytes.load(Ordering::Relaxed),
            passed: self.passed.load(Ordering::Relaxed),
            alarms: self.alarms.load(Ordering::Relaxed),
        }
    }
}

/// One supervised program's starts and exits (by how it ended).
#[derive(Debug, Default, Clone)]
struct ProcessCounts {
    starts: u64,
    exits: BTreeMap<String, u64>,
}

/// Everything `--metrics` and `--stats` report.
pub(crate) struct Metrics {
    started: SystemTime,
    inputs: Mutex<Vec<Arc<InputMeter>>>,
    /// Per rule: its text (`log-alarm NAME REGEX`) and the lines it matched.
    /// (a reload replaces the list: a rule kept by its text keeps its count).
    rules: std::sync::RwLock<Vec<(String, AtomicU64)>>,
    dispatch: OnceLock<Probe>,
    output: OnceLock<Arc<Output>>,
    processes: Mutex<BTreeMap<String, ProcessCounts>>,
    /// `alarm-cluster`, `--nats`, `--nats-out`: the fleet's counters.
    cluster: OnceLock<Arc<crate::cluster::ClusterStats>>,
    nats_in: Mutex<Vec<(String, Arc<crate::nats::InputStats>)>>,
    nats_out: OnceLock<Arc<crate::nats::OutputStats>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("rules", &self.rule_list().len())
            .finish()
    }
}

impl Metrics {
    pub(crate) fn new(rules: Vec<String>) -> Metrics {
        Metrics {
            started: SystemTime::now(),
            inputs: Mutex::new(Vec::new()),
            rules: std::sync::RwLock::new(
                rules.into_iter().map(|r| (r, AtomicU64::new(0))).collect(),
            ),
            dispatch: OnceLock::new(),
            output: OnceLock::new(),
            processes: Mutex::new(BTreeMap::new()),
            cluster: OnceLock::new(),
            nats_in: Mutex::new(Vec::new()),
            nats_out: OnceLock::new(),
        }
    }

    fn rule_list(&self) -> std::sync::RwLockReadGuard<'_, Vec<(String, AtomicU64)>> {
        self.rules.read().unwrap_or_else(|p| p.into_inner())
    }

    /// A reload's rules: a rule whose text was there before keeps its count.
    pub(crate) fn set_rules(&self, rules: Vec<String>) {
        let mut list = self.rules.write().unwrap_or_else(|p| p.into_inner());
        let mut old = std::mem::take(&mut *list);
        *list = rules
            .into_iter()
            .map(|r| {
                let n = old
                    .iter_mut()
                    .find(|(t, _)| *t == r)
                    .map_or(0, |(_, n)| std::mem::take(n.get_mut()));
                (r, AtomicU64::new(n))
            })
            .collect();
    }

    pub(crate) fn attach(&self, probe: Probe, output: Arc<Output>) {
        let _ = self.dispatch.set(probe);
        let _ = self.output.set(output);
    }

    /// The fleet's counters: `alarm-cluster`, `--nats-out`.
    pub(crate) fn attach_fleet(
        &self,
        cluster: Option<Arc<crate::cluster::ClusterStats>>,
        out: Option<Arc<crate::nats::OutputStats>>,
    ) {
        if let Some(c) = cluster {
            let _ = self.cluster.set(c);
        }
        if let Some(o) = out {
            let _ = self.nats_out.set(o);
        }
    }

    /// A `--nats` input's counters.
    pub(crate) fn attach_nats(&self, name: String, stats: Arc<crate::nats::InputStats>) {
        self.nats_in
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((name, stats));
    }

    /// The counters of input `name` (the same ones again for a restarted process).
    pub(crate) fn input(&self, name: &str) -> Arc<InputMeter> {
        let mut inputs = self.inputs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = inputs.iter().find(|m| m.name == name) {
            return m.clone();
        }
        let m = Arc::new(InputMeter {
            name: name.to_string(),
            bytes: AtomicU64::new(0),
            passed: AtomicU64::new(0),
            lines: AtomicU64::new(0),
            alarms: AtomicU64::new(0),
        });
        inputs.push(m.clone());
        m
    }

    /// A supervised program started.
    pub(crate) fn process_started(&self, label: &str) {
        let mut p = self.processes.lock().unwrap_or_else(|p| p.into_inner());
        p.entry(label.to_string()).or_default().starts += 1;
    }

    /// A supervised program ended (`how`: `status 1`, `signal 11`, ...).
    pub(crate) fn process_exited(&self, label: &str, how: &str) {
        let mut p = self.processes.lock().unwrap_or_else(|p| p.into_inner());
        *p.entry(label.to_string())
            .or_default()
            .exits
            .entry(how.to_string())
            .or_default() += 1;
    }

    fn uptime(&self) -> f64 {
        self.started.elapsed().map_or(0.0, |d| d.as_secs_f64())
    }

    /// The Prometheus exposition (OpenMetrics text, ending in `# EOF`).
    pub(crate) fn prometheus(self: &Arc<Self>) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Scrape(self.clone())));
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
            out = "# encoding failed\n# EOF\n".to_string();
        }
        out
    }

    /// The same numbers as one JSON document (`--stats`).
    pub(crate) fn json(&self) -> String {
        let inputs: Vec<_> = self
            .inputs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|m| {
                let c = m.snapshot();
                serde_json::json!({
                    "input": m.name,
                    "bytes": c.bytes,
                    "passed_bytes": c.passed,
                    "lines": c.lines,
                    "alarms": c.alarms,
                })
            })
            .collect();
        let rules: Vec<_> = self
            .rule_list()
            .iter()
            .map(|(r, n)| serde_json::json!({"rule": r, "matches": n.load(Ordering::Relaxed)}))
            .collect();
        let (alarms, queues) = match self.dispatch.get() {
            Some(p) => (
                p.alarms()
                    .into_iter()
                    .enumerate()
                    .map(|(i, a)| {
                        let lat = |h: Option<&crate::dispatch::Latency>| {
                            h.map(|h| {
                                let (sum, count, _) = h.snapshot();
                                serde_json::json!({"count": count, "sum_seconds": sum})
                            })
                        };
                        let l = p.latency(i);
                        let mut o = serde_json::json!({
                            "alarm": a.name, "action": a.action, "overflow": a.overflow,
                            "raised": a.raised, "ran": a.ran, "suppressed": a.suppressed,
                            "dropped": a.dropped, "discarded": a.discarded, "failed": a.failed,
                            "spooled": a.spooled, "retried": a.retried, "digests": a.digests,
                            "keys_forgotten": a.keys_forgotten,
                        });
                        for (k, (_, _, key)) in crate::dispatch::LATENCIES.iter().enumerate() {
                            o[*key] = serde_json::json!(lat(l.map(|x| x[k])));
                        }
                        o
                    })
                    .collect::<Vec<_>>(),
                p.queues()
                    .into_iter()
                    .map(|(lane, len, cap)| {
                        serde_json::json!({"lane": lane, "queued": len, "capacity": cap})
                    })
                    .collect::<Vec<_>>(),
            ),
            None => (Vec::new(), Vec::new()),
        };
        let processes: Vec<_> = self
            .processes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(label, c)| serde_json::json!({"process": label, "starts": c.starts, "exits": c.exits}))
            .collect();
        let doc = serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "pid": std::process::id(),
            "uptime_seconds": self.uptime(),
            "output_bytes": self.output.get().map_or(0, |o| o.passed()),
            "inputs": inputs,
            "rules": rules,
            "alarms": alarms,
            "queues": queues,
            "processes": processes,
        });
        format!("{doc}\n")
    }
}

/// What the reactor keeps per log input: the counters it publishes to, and what it
/// published last.
#[derive(Debug)]
pub(crate) struct Meter {
    input: Arc<InputMeter>,
    seen: Stats,
    rules_seen: Vec<u64>,
    scratch: Vec<u64>,
}

impl Meter {
    pub(crate) fn new(metrics: &Metrics, name: &str) -> Meter {
        Meter {
            input: metrics.input(name),
            seen: Stats::default(),
            rules_seen: vec![0; metrics.rule_list().len()],
            scratch: vec![0; metrics.rule_list().len()],
        }
    }

    /// The pipeline's matcher was replaced by a reload's: its counts start again from zero.
    pub(crate) fn rules_swapped(&mut self, metrics: &Metrics) {
        let n = metrics.rule_list().len();
        self.rules_seen = vec![0; n];
        self.scratch = vec![0; n];
    }

    /// Publish what `pipeline` did since the last call (once per read turn).
    pub(crate) fn publish(&mut self, metrics: &Metrics, pipeline: &Pipeline) {
        let s = &pipeline.stats;
        if s.confirmed != self.seen.confirmed {
            // Only when lines were confirmed: the rules' counts can have moved.
            self.scratch.fill(0);
            let scratch = &mut self.scratch;
            pipeline.each_rule_hit(|r, n| {
                if let Some(x) = scratch.get_mut(r) {
                    *x += n;
                }
            });
            let rules = metrics.rule_list();
            for (r, (&now, seen)) in self.scratch.iter().zip(&mut self.rules_seen).enumerate() {
                if now > *seen {
                    if let Some((_, a)) = rules.get(r) {
                        a.fetch_add(now - *seen, Ordering::Relaxed);
                    }
                    *seen = now;
                }
            }
        }
        // The input's counters after the rules': their lines last (see `InputMeter::add`).
        let seen = &self.seen;
        self.input.add(InputCounts {
            bytes: s.bytes.saturating_sub(seen.bytes),
            passed: s.passed.saturating_sub(seen.passed),
            lines: s.lines.saturating_sub(seen.lines),
            alarms: s.alarms.saturating_sub(seen.alarms),
        });
        self.seen = *s;
    }
}

/// Escape a label value for the text exposition (`\`, `"`, newline).
fn label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// The collector a scrape runs.
#[derive(Debug)]
struct Scrape(Arc<Metrics>);

type Enc<'a, 'b> = &'a mut DescriptorEncoder<'b>;

fn counters(
    e: Enc<'_, '_>,
    name: &str,
    help: &str,
    rows: &[(Vec<(&str, String)>, u64)],
) -> std::fmt::Result {
    let mut fam = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in rows {
        let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
        ConstCounter::new(*v).encode(fam.encode_family(&labels)?)?;
    }
    Ok(())
}

fn gauges(
    e: Enc<'_, '_>,
    name: &str,
    help: &str,
    rows: &[(Vec<(&str, String)>, i64)],
) -> std::fmt::Result {
    let mut fam = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in rows {
        let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
        ConstGauge::new(*v).encode(fam.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for Scrape {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let m = &self.0;
        let uptime = ConstGauge::new(m.uptime());
        uptime.encode(e.encode_descriptor(
            "logalarm_uptime_seconds",
            "Seconds since logalarm started",
            None,
            MetricType::Gauge,
        )?)?;
        let inputs: Vec<(String, InputCounts)> = m
            .inputs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|i| (label(&i.name), i.snapshot()))
            .collect();
        // After the inputs' lines (see `InputMeter::snapshot`): the output holds them.
        let out = m.output.get().map_or(0, |o| o.passed());
        ConstCounter::new(out).encode(e.encode_descriptor(
            "logalarm_output_bytes",
            "Log bytes written to the output",
            None,
            MetricType::Counter,
        )?)?;
        let per_input = |f: fn(&InputCounts) -> u64| -> Vec<(Vec<(&str, String)>, u64)> {
            inputs
                .iter()
                .map(|(name, c)| (vec![("input", name.clone())], f(c)))
                .collect()
        };
        counters(
            &mut e,
            "logalarm_input_bytes",
            "Log bytes read, per input",
            &per_input(|c| c.bytes),
        )?;
        counters(
            &mut e,
            "logalarm_input_passed_bytes",
            "Log bytes of each input handed to the output",
            &per_input(|c| c.passed),
        )?;
        counters(
            &mut e,
            "logalarm_input_lines",
            "Log lines of each input passed to the output",
            &per_input(|c| c.lines),
        )?;
        counters(
            &mut e,
            "logalarm_input_alarms",
            "Alarms raised by the lines of each input",
            &per_input(|c| c.alarms),
        )?;
        let rules: Vec<_> = m
            .rule_list()
            .iter()
            .enumerate()
            .map(|(i, (r, n))| {
                (
                    vec![("index", (i + 1).to_string()), ("rule", label(r))],
                    n.load(Ordering::Relaxed),
                )
            })
            .collect();
        counters(
            &mut e,
            "logalarm_rule_matches",
            "Lines each rule matched (not-log-alarm rules too)",
            &rules,
        )?;
        if let Some(p) = m.dispatch.get() {
            let alarms = p.alarms();
            let each =
                |f: fn(&crate::dispatch::AlarmNow) -> u64| -> Vec<(Vec<(&str, String)>, u64)> {
                    alarms
                        .iter()
                        .map(|a| {
                            (
                                vec![("alarm", label(&a.name)), ("action", a.action.to_string())],
                                f(a),
                            )
                        })
                        .collect()
                };
            type Row = (
                &'static str,
                &'static str,
                fn(&crate::dispatch::AlarmNow) -> u64,
            );
            let rows: [Row; 10] = [
                ("logalarm_alarms_raised", "Alarms raised", |a| a.raised),
                (
                    "logalarm_alarms_ran",
                    "Alarms whose action ran (or was delivered from the spool)",
                    |a| a.ran,
                ),
                (
                    "logalarm_alarms_suppressed",
                    "Alarms suppressed by anti-flood",
                    |a| a.suppressed,
                ),
                (
                    "logalarm_alarms_dropped",
                    "Alarms dropped for want of room (overflow drop)",
                    |a| a.dropped,
                ),
                (
                    "logalarm_alarms_discarded",
                    "Alarms discarded at shutdown",
                    |a| a.discarded,
                ),
                (
                    "logalarm_alarms_failed",
                    "Alarms whose action failed",
                    |a| a.failed,
                ),
                (
                    "logalarm_alarms_spooled",
                    "Alarms written to the spool",
                    |a| a.spooled,
                ),
                (
                    "logalarm_alarms_retried",
                    "Spooled deliveries that failed and will be retried",
                    |a| a.retried,
                ),
                (
                    "logalarm_alarm_digests",
                    "Digests of dropped alarms sent",
                    |a| a.digests,
                ),
                (
                    "logalarm_alarm_keys_forgotten",
                    "Keys forgotten to stay within alarm-keys-max",
                    |a| a.keys_forgotten,
                ),
            ];
            for (name, help, f) in rows {
                counters(&mut e, name, help, &each(f))?;
            }
            let queues = p.queues();
            let q: Vec<_> = queues
                .iter()
                .map(|(l, n, _)| (vec![("lane", label(l))], *n as i64))
                .collect();
            gauges(
                &mut e,
                "logalarm_queue_length",
                "Alarms queued now, per lane",
                &q,
            )?;
            let q: Vec<_> = queues
                .iter()
                .map(|(l, _, c)| (vec![("lane", label(l))], *c as i64))
                .collect();
            gauges(
                &mut e,
                "logalarm_queue_capacity",
                "Queue capacity, per lane",
                &q,
            )?;
            for (which, (name, help, _)) in crate::dispatch::LATENCIES.iter().enumerate() {
                let mut fam = e.encode_descriptor(name, help, None, MetricType::Histogram)?;
                for (i, a) in alarms.iter().enumerate() {
                    let Some(l) = p.latency(i) else { continue };
                    let h = l[which];
                    let (sum, count, buckets) = h.snapshot();
                    let labels = [("alarm", label(&a.name))];
                    fam.encode_family(&labels)?
                        .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                            sum, count, &buckets, None,
                        )?;
                }
            }
        }
        let procs = m
            .processes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let starts: Vec<_> = procs
            .iter()
            .map(|(l, c)| (vec![("process", label(l))], c.starts))
            .collect();
        counters(
            &mut e,
            "logalarm_process_starts",
            "Supervised processes started (restarts included)",
            &starts,
        )?;
        let exits: Vec<_> = procs
            .iter()
            .flat_map(|(l, c)| {
                c.exits
                    .iter()
                    .map(move |(how, n)| (vec![("process", label(l)), ("how", label(how))], *n))
            })
            .collect();
        counters(
            &mut e,
            "logalarm_process_exits",
            "Supervised processes that ended, by exit status or signal",
            &exits,
        )?;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        if let Some(c) = m.cluster.get() {
            counters(
                &mut e,
                "logalarm_cluster_decisions",
                "Raising lines decided by the fleet on Redis (by=fleet) or alone (by=alone)",
                &[
                    (vec![("by", "fleet".to_string())], get(&c.shared)),
                    (vec![("by", "alone".to_string())], get(&c.alone)),
                ],
            )?;
            counters(
                &mut e,
                "logalarm_cluster_round_trips",
                "Pipelines sent to Redis",
                &[(vec![], get(&c.round_trips))],
            )?;
            counters(
                &mut e,
                "logalarm_cluster_outages",
                "Times Redis stopped answering",
                &[(vec![], get(&c.outages))],
            )?;
            gauges(
                &mut e,
                "logalarm_cluster_up",
                "1 when the last question to Redis was answered",
                &[(vec![], i64::from(c.up.load(Ordering::Relaxed)))],
            )?;
        }
        let nats = self
            .0
            .nats_in
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if !nats.is_empty() {
            for (name, help, f) in [
                (
                    "logalarm_nats_messages",
                    "JetStream messages read",
                    (|s: &crate::nats::InputStats| &s.messages)
                        as fn(&crate::nats::InputStats) -> &AtomicU64,
                ),
                (
                    "logalarm_nats_redelivered",
                    "JetStream messages read that were delivered before (at least once)",
                    |s| &s.redelivered,
                ),
                (
                    "logalarm_nats_acked",
                    "JetStream messages acknowledged (lines passed on, alarms handled)",
                    |s| &s.acked,
                ),
            ] {
                let rows: Vec<_> = nats
                    .iter()
                    .map(|(n, s)| (vec![("input", label(n))], get(f(s))))
                    .collect();
                counters(&mut e, name, help, &rows)?;
            }
        }
        if let Some(o) = m.nats_out.get() {
            counters(
                &mut e,
                "logalarm_nats_out_lines",
                "Lines published by --nats-out (result=published, dropped)",
                &[
                    (vec![("result", "published".to_string())], get(&o.published)),
                    (vec![("result", "dropped".to_string())], get(&o.dropped)),
                ],
            )?;
        }
        Ok(())
    }
}

/// The OpenMetrics text as the classic Prometheus text format (0.0.4), for clients that do not
/// ask for OpenMetrics (`curl`, `promtool check metrics`): a counter's HELP and TYPE name its
/// samples' `_total` name, and there is no `# EOF`.
fn classic(om: &str) -> String {
    let counters: std::collections::HashSet<&str> = om
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(om.len() + 64);
    for l in om.lines() {
        if l == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|p| {
            let rest = l.strip_prefix(p)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{p}{name}_total {tail}"))
        });
        match renamed {
            Some(r) => out.push_str(&r),
            None => out.push_str(l),
        }
        out.push('\n');
    }
    out
}

/// `--metrics`/`--stats` address: `:PORT` is loopback, `HOST:PORT` as given.
pub(crate) fn address(opt: &str, v: &str) -> Result<SocketAddr, String> {
    let full = if v.starts_with(':') {
        format!("127.0.0.1{v}")
    } else {
        v.to_string()
    };
    full.to_socket_addrs()
        .map_err(|e| format!("invalid {opt}: {v}: {e} (expected :PORT or HOST:PORT)"))?
        .next()
        .ok_or_else(|| format!("invalid {opt}: {v}: no address"))
}

/// What a server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Serve {
    /// HTTP: `GET /metrics` → Prometheus text.
    Prometheus,
    /// uWSGI's stats server: the JSON document on connect, then close.
    StatsRaw,
    /// The same, as an HTTP response (`--stats-http`).
    StatsHttp,
}

const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// Bind `addr` and answer on a thread of its own. The bind error is the caller's (start-up).
pub(crate) fn serve(
    metrics: Arc<Metrics>,
    addr: SocketAddr,
    what: Serve,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let bound = listener.local_addr()?;
    std::thread::Builder::new()
        .name("logalarm-metrics".into())
        .spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let _ = answer(&metrics, conn, what);
            }
        })?;
    Ok(bound)
}

fn answer(metrics: &Arc<Metrics>, mut conn: TcpStream, what: Serve) -> std::io::Result<()> {
    conn.set_read_timeout(Some(IO_TIMEOUT))?;
    conn.set_write_timeout(Some(IO_TIMEOUT))?;
    if what == Serve::StatsRaw {
        return conn.write_all(metrics.json().as_bytes());
    }
    let started = Instant::now();
    let mut req = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") && !req.windows(2).any(|w| w == b"\n\n") {
        let n = conn.read(&mut buf)?;
        if n == 0 || req.len() > 16 * 1024 || started.elapsed() > IO_TIMEOUT {
            break;
        }
        req.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&req);
    let line = text.lines().next().unwrap_or_default();
    let openmetrics = text.lines().any(|h| {
        h.split_once(':').is_some_and(|(k, v)| {
            k.eq_ignore_ascii_case("accept") && v.contains("application/openmetrics-text")
        })
    });
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, ctype, body) = match (what, method, path) {
        (_, m, _) if m != "GET" && m != "HEAD" => (
            "405 Method Not Allowed",
            "text/plain",
            "GET only\n".to_string(),
        ),
        (Serve::Prometheus, _, "/metrics") if openmetrics => (
            "200 OK",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.prometheus(),
        ),
        (Serve::Prometheus, _, "/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            classic(&metrics.prometheus()),
        ),
        (Serve::StatsHttp, _, _) => ("200 OK", "application/json", metrics.json()),
        _ => (
            "404 Not Found",
            "text/plain",
            "logalarm serves /metrics\n".to_string(),
        ),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes())?;
    if method != "HEAD" {
        conn.write_all(body.as_bytes())?;
    }
    conn.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scrape taken while the reactor publishes never shows lines whose bytes, passed bytes
    /// or alarms it has not counted yet (a CI run once read the bytes before a publish and
    /// the lines after it).
    #[test]
    fn a_snapshot_never_counts_lines_ahead_of_their_bytes() {
        let m = Metrics::new(Vec::new());
        let input = m.input("stdin");
        let writer = {
            let input = input.clone();
            std::thread::spawn(move || {
                for _ in 0..200_000 {
                    input.add(InputCounts {
                        bytes: 10,
                        passed: 10,
                        lines: 1,
                        alarms: 1,
                    });
                }
            })
        };
        let mut last = 0;
        while last < 200_000 {
            let c = input.snapshot();
            assert!(c.bytes >= 10 * c.lines, "{c:?}");
            assert!(c.passed >= 10 * c.lines, "{c:?}");
            assert!(c.alarms >= c.lines, "{c:?}");
            last = c.lines;
        }
        writer.join().unwrap();
    }
}

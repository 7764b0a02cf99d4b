//! The Redis side of the fleet: the connection, the scripts and the cluster thread's loop
//! (built with the `fleet` feature; without it `server::serve` only answers "alone").

use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{Answer, Ask, Claimed, ClusterPlan, ClusterStats, Job, Verdict};
use super::{CLAIM, DECIDE, HOLD, MAX_BATCH, RETRY};
use crate::report::report;

impl ClusterPlan {
    fn connect(&self) -> Result<redis::Connection, String> {
        use redis::IntoConnectionInfo;
        let addr = if self.tls {
            redis::ConnectionAddr::TcpTls {
                host: self.host.clone(),
                port: self.port,
                insecure: self.insecure,
                tls_params: None,
            }
        } else {
            redis::ConnectionAddr::Tcp(self.host.clone(), self.port)
        };
        let mut settings = redis::RedisConnectionInfo::default();
        if let Some(u) = &self.username {
            settings = settings.set_username(u);
        }
        if let Some(p) = &self.password {
            settings = settings.set_password(p.expose());
        }
        let info = addr
            .into_connection_info()
            .map_err(|e| self.scrub(&e.to_string()))?
            .set_redis_settings(settings);
        let client = match (&self.ca, self.tls) {
            (Some(ca), true) => {
                let pem = std::fs::read(ca).map_err(|e| format!("ca={}: {e}", ca.display()))?;
                redis::Client::build_with_tls(
                    info,
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(pem),
                    },
                )
            }
            _ => redis::Client::open(info),
        }
        .map_err(|e| self.scrub(&e.to_string()))?;
        let con = client
            .get_connection_with_timeout(self.timeout)
            .map_err(|e| self.scrub(&e.to_string()))?;
        con.set_read_timeout(Some(self.timeout))
            .and_then(|()| con.set_write_timeout(Some(self.timeout)))
            .map_err(|e| self.scrub(&e.to_string()))?;
        Ok(con)
    }
}

/// The connection and the loaded scripts' hashes.
struct Conn {
    con: redis::Connection,
    decide: String,
    claim: String,
    hold: String,
}

fn open(plan: &ClusterPlan) -> Result<Conn, String> {
    let mut con = plan.connect()?;
    let decide = redis::Script::new(DECIDE)
        .load(&mut con)
        .map_err(|e| plan.scrub(&e.to_string()))?;
    let claim = redis::Script::new(CLAIM)
        .load(&mut con)
        .map_err(|e| plan.scrub(&e.to_string()))?;
    let hold = redis::Script::new(HOLD)
        .load(&mut con)
        .map_err(|e| plan.scrub(&e.to_string()))?;
    Ok(Conn {
        con,
        decide,
        claim,
        hold,
    })
}

/// The thread: take every waiting question, ask them in one pipeline, answer each.
pub(super) fn serve(plan: &ClusterPlan, rx: &mpsc::Receiver<Job>, stats: &ClusterStats) {
    let mut conn: Option<Conn> = None;
    let mut next_try = Instant::now();
    // Since when it is down, and the lines decided alone before then.
    let mut down: Option<(Instant, u64)> = None;
    let mut said_down = false;
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        if conn.is_none() && Instant::now() >= next_try {
            match open(plan) {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    next_try = Instant::now() + RETRY;
                    if !said_down {
                        said_down = true;
                        stats.outages.fetch_add(1, Ordering::Relaxed);
                        report!(
                            Alarm,
                            "alarm-cluster {}: unreachable ({e}); alarms are decided locally until it is back",
                            plan.shown
                        );
                    }
                    down.get_or_insert((Instant::now(), stats.alone.load(Ordering::Relaxed)));
                }
            }
        }
        let answers = match conn.as_mut() {
            Some(c) => match query(c, &jobs) {
                Ok(a) => Some(a),
                Err(e) => {
                    conn = None;
                    // A broken connection is tried again at once, a refused one once a second.
                    next_try = Instant::now();
                    said_down = true;
                    stats.outages.fetch_add(1, Ordering::Relaxed);
                    report!(
                        Alarm,
                        "alarm-cluster {}: {} ; alarms are decided locally until it is back",
                        plan.shown,
                        plan.scrub(&e)
                    );
                    down.get_or_insert((Instant::now(), stats.alone.load(Ordering::Relaxed)));
                    None
                }
            },
            None => None,
        };
        stats.up.store(answers.is_some(), Ordering::Relaxed);
        if answers.is_some() {
            stats.round_trips.fetch_add(1, Ordering::Relaxed);
            if let Some((since, alone0)) = down.take() {
                let alone = stats.alone.load(Ordering::Relaxed).saturating_sub(alone0);
                report!(
                    Alarm,
                    "alarm-cluster {}: back after {:.1} s; {alone} alarm decision(s) were made locally meanwhile",
                    plan.shown,
                    since.elapsed().as_secs_f64()
                );
            }
            said_down = false;
        }
        let mut answers = answers.map(Vec::into_iter);
        for job in jobs {
            if let Some(a) = answers.as_mut().and_then(Iterator::next) {
                let _ = job.reply.send((job.seq, a));
            }
            // No answer: the job's sender is dropped with it; the lane stops waiting.
        }
    }
}

/// Ask `jobs` in one pipeline.
fn query(c: &mut Conn, jobs: &[Job]) -> Result<Vec<Answer>, String> {
    let mut pipe = redis::pipe();
    for j in jobs {
        match &j.ask {
            Ask::Decide { keys, args } => {
                let cmd = pipe.cmd("EVALSHA").arg(&c.decide).arg(3);
                for k in keys {
                    cmd.arg(k.as_slice());
                }
                for a in args {
                    cmd.arg(a.as_slice());
                }
            }
            Ask::Claim { key } => {
                pipe.cmd("EVALSHA").arg(&c.claim).arg(1).arg(key.as_slice());
            }
            Ask::Hold { key, args } => {
                let cmd = pipe.cmd("EVALSHA").arg(&c.hold).arg(1).arg(key.as_slice());
                for a in args {
                    cmd.arg(a.as_slice());
                }
            }
        }
    }
    let values: Vec<redis::Value> = pipe.query(&mut c.con).map_err(|e| e.to_string())?;
    if values.len() != jobs.len() {
        return Err(format!(
            "{} answers to {} questions",
            values.len(),
            jobs.len()
        ));
    }
    jobs.iter()
        .zip(values)
        .map(|(j, v)| match j.ask {
            Ask::Decide { .. } => verdict(&v).map(Answer::Verdict),
            Ask::Claim { .. } => claimed(&v).map(Answer::Claimed),
            Ask::Hold { .. } => Ok(Answer::Held),
        })
        .collect()
}

fn int(v: &redis::Value) -> Option<i64> {
    match v {
        redis::Value::Int(i) => Some(*i),
        redis::Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

fn verdict(v: &redis::Value) -> Result<Verdict, String> {
    let bad = || format!("unexpected answer to the decision script: {v:?}");
    let redis::Value::Array(items) = v else {
        return Err(bad());
    };
    let n = |i: usize| items.get(i).and_then(int).ok_or_else(bad);
    let ms = |x: i64| Duration::from_millis(u64::try_from(x).unwrap_or(0));
    match n(0)? {
        0 => Ok(Verdict::Fire {
            count: usize::try_from(n(1)?).unwrap_or(1),
            age: ms(n(2)?),
        }),
        1 => Ok(Verdict::Below(usize::try_from(n(1)?).unwrap_or(0))),
        2 => Ok(Verdict::Flood { ago: ms(n(1)?) }),
        _ => Err(bad()),
    }
}

fn claimed(v: &redis::Value) -> Result<Option<Claimed>, String> {
    let redis::Value::Array(items) = v else {
        return Err(format!("unexpected answer to the digest claim: {v:?}"));
    };
    if items.is_empty() {
        return Ok(None);
    }
    let bytes = |v: &redis::Value| match v {
        redis::Value::BulkString(b) => b.clone(),
        other => format!("{other:?}").into_bytes(),
    };
    let mut c = Claimed::default();
    let mut samples: Vec<(String, Vec<u8>)> = Vec::new();
    for pair in items.chunks(2) {
        let [k, v] = pair else { continue };
        let k = String::from_utf8_lossy(&bytes(k)).into_owned();
        let num = || int(v).and_then(|i| u64::try_from(i).ok()).unwrap_or(0);
        match k.as_str() {
            "n" => c.n = num(),
            "first" => c.first = bytes(v),
            "last" => c.last = bytes(v),
            "first_at" => c.first_at = num(),
            "last_at" => c.last_at = num(),
            _ if k.starts_with("h:") => c.hosts.push((k[2..].to_string(), num())),
            _ if k.starts_with('s') => samples.push((k, bytes(v))),
            _ => {}
        }
    }
    samples.sort();
    c.samples = samples.into_iter().map(|(_, s)| s).collect();
    c.hosts.sort();
    Ok(Some(c))
}

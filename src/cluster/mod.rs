//! `alarm-cluster`: anti-flood, thresholds, per-key suppression and digests shared by every
//! logalarm of a fleet, on Redis (or Valkey).
//!
//! Role: [`ClusterPlan`] is the option, checked at start-up; [`Cluster`] is a thread that owns
//! one connection and answers the lanes' questions; a [`Link`] is one alarm's end of it, kept
//! by its `Suppress`. A raising line costs one question: a Lua script (`EVALSHA`) decides it
//! atomically on the server — the threshold's sliding window (a sorted set, timed by the
//! server's clock), then anti-flood (`SET NX PX`), and when held, the digest's counts (a hash).
//! The thread sends every question waiting when it is free as one pipeline, so lanes that ask
//! at once share a round trip. Log lines that raise nothing never reach it.
//! Invariants: a lane never waits more than twice the timeout for an answer; no answer (Redis
//! down, slow, refusing) means the alarm decides alone with its local state, which is counted
//! and said once per outage, and the thread tries again at most once a second, saying when it
//! is back. Passwords never leave [`ClusterPlan`] except into the connection.
//! Rejected alternatives: a connection per lane (no pipelining, one more connection per action
//! for the server to hold); an async client (the lanes are threads; one blocking connection
//! on its own thread pipelines as well); a home-made protocol between logalarms (the issue
//! excludes it: Redis is what fleets already run).

// Without the `fleet` feature the Redis side is not built: what only it uses is unused.
#![cfg_attr(not(feature = "fleet"), allow(dead_code, unused_imports))]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::action::delivery::Secret;

#[cfg(feature = "fleet")]
mod server;
/// The fuzz targets' build (no `fleet` feature): [`Cluster::start`] refuses before this runs.
#[cfg(not(feature = "fleet"))]
mod server {
    pub(super) fn serve(
        _: &super::ClusterPlan,
        _: &super::mpsc::Receiver<super::Job>,
        _: &super::ClusterStats,
    ) {
    }
}

/// Default wait for Redis, connection and answer alike.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_millis(200);

/// How often a down cluster is tried again.
const RETRY: Duration = Duration::from_secs(1);

/// Most questions sent in one pipeline.
const MAX_BATCH: usize = 512;

/// How long a digest's counts live on the server when nobody claims them (every logalarm of
/// the fleet stopped): a day.
const DIGEST_TTL_MS: u64 = 86_400_000;

/// `alarm-cluster = redis[s]://[USER:PASSWORD@]HOST:PORT/PREFIX[?timeout=MS&ca=FILE&insecure=1&id=NAME]`.
#[derive(Clone)]
pub(crate) struct ClusterPlan {
    /// The URL with its password masked (for reports).
    pub(crate) shown: String,
    host: String,
    port: u16,
    tls: bool,
    username: Option<String>,
    password: Option<Secret>,
    /// Every key starts with it.
    pub(crate) prefix: String,
    pub(crate) timeout: Duration,
    /// `ca=`: the certificate authority to trust instead of the system's.
    ca: Option<PathBuf>,
    /// `insecure=1`: do not verify the server's certificate host name.
    insecure: bool,
    /// How this logalarm is named in digests (`id=`; default HOSTNAME:PID).
    pub(crate) id: String,
}

impl std::fmt::Debug for ClusterPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl ClusterPlan {
    /// Parse the option's value; the error says what is wrong (the caller names the option
    /// and shows the value masked).
    pub(crate) fn parse(v: &str) -> Result<ClusterPlan, String> {
        let shown = crate::config::redact_value(v);
        let (tls, rest) = if let Some(r) = v.strip_prefix("rediss://") {
            (true, r)
        } else if let Some(r) = v.strip_prefix("redis://") {
            (false, r)
        } else {
            return Err("expected redis://HOST:PORT/PREFIX or rediss://HOST:PORT/PREFIX".into());
        };
        // The userinfo ends at the last `@` (a password may hold `/`, `?`, `@`).
        let (userinfo, rest) = match rest.rsplit_once('@') {
            Some((u, r)) => (Some(u), r),
            None => (None, rest),
        };
        let (authority, prefix) = match rest.split_once('/') {
            Some((a, p)) => (a, p),
            None => (rest, ""),
        };
        let (prefix, query) = match prefix.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (prefix, None),
        };
        if prefix.is_empty() {
            return Err("no key prefix after the address (redis://HOST:PORT/PREFIX): every key of this fleet starts with it".into());
        }
        if prefix.len() > 200 || prefix.contains(['/', ' ']) {
            return Err(
                "the key prefix must be at most 200 characters, without `/` or spaces".into(),
            );
        }
        let hostport = authority;
        let (username, password) = match userinfo {
            None => (None, None),
            Some(u) => match u.split_once(':') {
                Some((user, pw)) => (
                    (!user.is_empty()).then(|| percent_decode(user)),
                    Some(Secret::new(&percent_decode(pw))),
                ),
                None => (None, Some(Secret::new(&percent_decode(u)))),
            },
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => match p.parse::<u16>() {
                Ok(p) if p > 0 => (h, p),
                _ => return Err(format!("`{p}` is not a port")),
            },
            None => (hostport, 6379),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err("no host".into());
        }
        let mut plan = ClusterPlan {
            shown,
            host: host.to_string(),
            port,
            tls,
            username,
            password,
            prefix: prefix.to_string(),
            timeout: DEFAULT_TIMEOUT,
            ca: None,
            insecure: false,
            id: default_id(),
        };
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, val) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "timeout" => match val.parse::<u64>() {
                    Ok(ms) if (1..=60_000).contains(&ms) => {
                        plan.timeout = Duration::from_millis(ms)
                    }
                    _ => {
                        return Err(format!(
                            "timeout=`{val}`: expected milliseconds from 1 to 60000"
                        ))
                    }
                },
                "ca" if !val.is_empty() => plan.ca = Some(PathBuf::from(val)),
                "insecure" => plan.insecure = crate::action::delivery::flag(val),
                "id" if !val.is_empty() => plan.id = val.to_string(),
                _ => {
                    return Err(format!(
                        "unknown key `{k}` (known: timeout, ca, insecure, id)"
                    ))
                }
            }
        }
        if !tls && (plan.ca.is_some() || plan.insecure) {
            return Err("ca= and insecure= need TLS: rediss://".into());
        }
        if let Some(ca) = &plan.ca {
            if let Err(e) = std::fs::metadata(ca) {
                return Err(format!("ca={}: {e}", ca.display()));
            }
        }
        Ok(plan)
    }

    /// Whether the value holds a secret (the process then becomes non-dumpable).
    pub(crate) fn has_secret(&self) -> bool {
        self.password.is_some()
    }

    /// `text` without the password (a client error may quote what it sent).
    fn scrub(&self, text: &str) -> String {
        match &self.password {
            Some(p) if !p.expose().is_empty() => text.replace(p.expose(), "***"),
            _ => text.to_string(),
        }
    }
}

/// `%XX` escapes decoded (a password written percent-encoded, as URLs want); anything else as
/// written.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn default_id() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into the buffer it is given.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let host = if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "localhost".to_string()
    };
    format!("{host}:{}", std::process::id())
}

/// The digest's counts of `n` held lines (the first and last of them given), in hash `d`.
macro_rules! hold_fn {
    () => {
        r"
local function hold(d, n, first, last, id, ttl, now)
  redis.call('HINCRBY', d, 'n', n)
  redis.call('HINCRBY', d, 'h:' .. id, n)
  if redis.call('HSETNX', d, 'first', first) == 1 then
    redis.call('HSET', d, 'first_at', now)
  end
  redis.call('HSET', d, 'last', last, 'last_at', now)
  for _, m in ipairs({first, last}) do
    local found = false
    local k = 0
    for i = 1, 3 do
      local s = redis.call('HGET', d, 's' .. i)
      if s == m then found = true end
      if s then k = i end
    end
    if not found and k < 3 then redis.call('HSET', d, 's' .. (k + 1), m) end
  end
  redis.call('PEXPIRE', d, ttl)
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"
    };
}

/// The decision script: KEYS = anti-flood key, threshold key, digest key; ARGV = anti-flood
/// window (ms, 0: none), threshold count (0: none), threshold window (ms), digest (1/0), the
/// threshold entry's unique name, the message (for the digest), this logalarm's id, the
/// digest's time to live (ms).
/// Answers {0, count, ms since the window's first match}: fire; {1, n}: below the threshold;
/// {2, ms since the firing that holds it}: anti-flood.
const DECIDE: &str = concat!(
    hold_fn!(),
    r"
local freq = tonumber(ARGV[1])
local thc = tonumber(ARGV[2])
local thw = tonumber(ARGV[3])
local count = 1
local age = 0
if thc > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - thw)
  redis.call('ZADD', KEYS[2], now, ARGV[5])
  redis.call('PEXPIRE', KEYS[2], thw)
  local n = redis.call('ZCARD', KEYS[2])
  if n < thc then return {1, n} end
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  age = now - tonumber(oldest[2])
  count = n
  redis.call('DEL', KEYS[2])
end
if freq > 0 then
  if not redis.call('SET', KEYS[1], now, 'NX', 'PX', freq) then
    local fired = tonumber(redis.call('GET', KEYS[1]) or now)
    if ARGV[4] == '1' then
      hold(KEYS[3], 1, ARGV[6], ARGV[6], ARGV[7], tonumber(ARGV[8]), now)
    end
    return {2, now - fired}
  end
end
return {0, count, age}
"
);

/// The counts of lines held from the fleet's last answer (no round trip each): KEYS = the
/// digest key; ARGV = how many, the first and last of them, this logalarm's id, the time to
/// live (ms).
const HOLD: &str = concat!(
    hold_fn!(),
    r"
hold(KEYS[1], tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), now)
return 1
"
);

/// The digest claim: KEYS = the digest key. Answers its fields and deletes it (one logalarm
/// of the fleet gets them), or an empty list.
const CLAIM: &str = r"
local h = redis.call('HGETALL', KEYS[1])
if #h > 0 then redis.call('DEL', KEYS[1]) end
return h
";

/// What the server decided for one raised line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Fire: `count` matches counted toward it, the first `age` ago.
    Fire { count: usize, age: Duration },
    /// Below the threshold: `n` matches within its window.
    Below(usize),
    /// Held by anti-flood: the firing that holds it was `ago` ago.
    Flood { ago: Duration },
}

/// The digest counts claimed from the server: every logalarm's held lines since the last
/// claim.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Claimed {
    pub(crate) n: u64,
    /// Logalarms that held lines, by id, with how many.
    pub(crate) hosts: Vec<(String, u64)>,
    pub(crate) first: Vec<u8>,
    pub(crate) last: Vec<u8>,
    /// Milliseconds since the epoch, by the server's clock.
    pub(crate) first_at: u64,
    pub(crate) last_at: u64,
    pub(crate) samples: Vec<Vec<u8>>,
}

/// One question for the thread.
enum Ask {
    Decide {
        keys: [Vec<u8>; 3],
        args: [Vec<u8>; 8],
    },
    Claim {
        key: Vec<u8>,
    },
    Hold {
        key: Vec<u8>,
        args: [Vec<u8>; 5],
    },
}

enum Answer {
    Verdict(Verdict),
    Claimed(Option<Claimed>),
    Held,
}

struct Job {
    seq: u64,
    ask: Ask,
    reply: mpsc::Sender<(u64, Answer)>,
}

/// The fleet's counters, for the summary and the metrics.
#[derive(Debug, Default)]
pub(crate) struct ClusterStats {
    /// Lines decided by the server.
    pub(crate) shared: AtomicU64,
    /// Lines decided alone (no answer in time).
    pub(crate) alone: AtomicU64,
    /// Lines held from the fleet's last answer for the same key (no round trip): counted in
    /// `shared` too.
    pub(crate) cached: AtomicU64,
    /// Round trips (pipelines) sent.
    pub(crate) round_trips: AtomicU64,
    /// Whether the last round trip worked.
    pub(crate) up: AtomicBool,
    /// Outages seen.
    pub(crate) outages: AtomicU64,
}

/// The cluster's thread and its counters.
#[derive(Debug)]
pub(crate) struct Cluster {
    tx: mpsc::Sender<Job>,
    pub(crate) stats: Arc<ClusterStats>,
    prefix: String,
    id: String,
    timeout: Duration,
}

impl Cluster {
    /// Start the thread (it connects on the first question; a fleet whose Redis is down at
    /// start-up starts anyway, deciding alone, and says so).
    pub(crate) fn start(plan: ClusterPlan) -> std::io::Result<Cluster> {
        if !cfg!(feature = "fleet") {
            return Err(std::io::Error::other(
                "this logalarm was built without the `fleet` feature (cargo build --features fleet)",
            ));
        }
        let (tx, rx) = mpsc::channel();
        let stats = Arc::new(ClusterStats::default());
        let st = stats.clone();
        let (prefix, id, timeout) = (plan.prefix.clone(), plan.id.clone(), plan.timeout);
        std::thread::Builder::new()
            .name("logalarm-cluster".into())
            .spawn(move || server::serve(&plan, &rx, &st))?;
        Ok(Cluster {
            tx,
            stats,
            prefix,
            id,
            timeout,
        })
    }

    /// One alarm's end of the cluster.
    pub(crate) fn link(self: &Arc<Self>, alarm: &str) -> Link {
        let (reply_tx, reply) = mpsc::channel();
        let base = format!("{}:{}", self.prefix, alarm).into_bytes();
        Link {
            cluster: self.clone(),
            base,
            seq: 0,
            member: 0,
            reply_tx,
            reply,
            held: HashMap::new(),
            pending: (0, Vec::new(), Vec::new()),
        }
    }
}

/// One alarm's end of the cluster (owned by its lane).
pub(crate) struct Link {
    cluster: Arc<Cluster>,
    /// `PREFIX:ALARM`.
    base: Vec<u8>,
    seq: u64,
    member: u64,
    reply_tx: mpsc::Sender<(u64, Answer)>,
    reply: mpsc::Receiver<(u64, Answer)>,
    /// Anti-flood keys (hashed) the fleet holds, and until when (by this clock, never later
    /// than the server's expiry): a line with one of them is held without asking.
    held: HashMap<u64, Instant>,
    /// Lines held that way since the last [`Link::flush`]: their count, first and last.
    pending: (u64, Vec<u8>, Vec<u8>),
}

/// Most keys [`Link::held`] remembers (expired ones are forgotten first).
const HELD_MAX: usize = 10_000;

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Link({})", String::from_utf8_lossy(&self.base))
    }
}

impl Link {
    fn key(&self, kind: &str, hash: Option<u64>) -> Vec<u8> {
        let mut k = self.base.clone();
        k.push(b':');
        k.extend_from_slice(kind.as_bytes());
        if let Some(h) = hash {
            k.extend_from_slice(format!(":{h:016x}").as_bytes());
        }
        k
    }

    fn ask(&mut self, ask: Ask) -> Option<Answer> {
        self.seq += 1;
        let seq = self.seq;
        let job = Job {
            seq,
            ask,
            reply: self.reply_tx.clone(),
        };
        if self.cluster.tx.send(job).is_err() {
            return None;
        }
        let deadline = Instant::now() + self.cluster.timeout * 2;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.reply.recv_timeout(left) {
                // A late answer to a question given up on: skipped.
                Ok((s, _)) if s != seq => continue,
                Ok((_, a)) => return Some(a),
                Err(_) => return None,
            }
        }
    }

    /// Decide one raised line on the server: anti-flood on `flood_key` for `freq`, the
    /// threshold (`count` within `window`) on `key`, and the digest's counts with `msg` when
    /// `digest`. `None`: no answer in time; the caller decides alone (counted here).
    pub(crate) fn decide(
        &mut self,
        flood_key: &[u8],
        key: &[u8],
        freq: Duration,
        threshold: Option<crate::suppress::Threshold>,
        digest: bool,
        msg: &[u8],
    ) -> Option<Verdict> {
        let flood_hash = hash(flood_key);
        let sent = Instant::now();
        // A key the fleet holds: held without a round trip (not with a threshold, whose
        // window counts every line), its count sent with the next flush.
        let cacheable = threshold.is_none() && !freq.is_zero();
        if let Some(&until) = self.held.get(&flood_hash).filter(|_| cacheable) {
            if sent < until {
                if digest {
                    let p = &mut self.pending;
                    if p.0 == 0 {
                        p.1 = msg.to_vec();
                    }
                    p.0 += 1;
                    p.2.clear();
                    p.2.extend_from_slice(msg);
                }
                let stats = &self.cluster.stats;
                stats.shared.fetch_add(1, Ordering::Relaxed);
                stats.cached.fetch_add(1, Ordering::Relaxed);
                return Some(Verdict::Flood {
                    ago: freq.saturating_sub(until - sent),
                });
            }
            self.held.remove(&flood_hash);
        }
        self.member += 1;
        let (thc, thw) = threshold.map_or((0, 0), |t| (t.count, t.window.as_millis()));
        let keys = [
            self.key("af", Some(flood_hash)),
            self.key("th", Some(hash(key))),
            self.key("dg", None),
        ];
        let args = [
            freq.as_millis().to_string().into_bytes(),
            thc.to_string().into_bytes(),
            thw.to_string().into_bytes(),
            if digest { b"1".to_vec() } else { b"0".to_vec() },
            format!("{}:{}", self.cluster.id, self.member).into_bytes(),
            msg.to_vec(),
            self.cluster.id.clone().into_bytes(),
            DIGEST_TTL_MS.to_string().into_bytes(),
        ];
        let answer = self.ask(Ask::Decide { keys, args });
        let stats = &self.cluster.stats;
        match answer {
            Some(Answer::Verdict(v)) => {
                stats.shared.fetch_add(1, Ordering::Relaxed);
                // The server's expiry of the key is at least `sent` + what is left of it.
                let left = match v {
                    Verdict::Fire { .. } => Some(freq),
                    Verdict::Flood { ago } => Some(freq.saturating_sub(ago)),
                    Verdict::Below(_) => None,
                };
                if let Some(left) = left.filter(|l| cacheable && !l.is_zero()) {
                    if self.held.len() >= HELD_MAX {
                        self.held.retain(|_, &mut until| until > sent);
                        if self.held.len() >= HELD_MAX {
                            self.held.clear();
                        }
                    }
                    self.held.insert(flood_hash, sent + left);
                }
                Some(v)
            }
            _ => {
                stats.alone.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Send the counts of the lines held without asking (see [`Link::decide`]) for the
    /// fleet's digest. Kept for the next flush when there is no answer.
    pub(crate) fn flush(&mut self) {
        if self.pending.0 == 0 {
            return;
        }
        let (n, first, last) = std::mem::take(&mut self.pending);
        let key = self.key("dg", None);
        let args = [
            n.to_string().into_bytes(),
            first.clone(),
            last.clone(),
            self.cluster.id.clone().into_bytes(),
            DIGEST_TTL_MS.to_string().into_bytes(),
        ];
        if self.ask(Ask::Hold { key, args }).is_none() {
            self.pending = (n, first, last);
        }
    }

    /// Claim the digest's counts of the whole fleet. `None`: no answer (try again later);
    /// `Some(None)`: nothing to tell (another logalarm claimed them).
    pub(crate) fn claim(&mut self) -> Option<Option<Claimed>> {
        self.flush();
        let key = self.key("dg", None);
        match self.ask(Ask::Claim { key }) {
            Some(Answer::Claimed(c)) => Some(c),
            _ => None,
        }
    }
}

/// FNV-1a, 64 bits: the same key on every logalarm of the fleet, whatever its build.
fn hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_option_is_parsed_and_refused_with_reasons() {
        let p = ClusterPlan::parse("redis://ops:s3cret@10.0.0.5:6380/shop?timeout=50&id=web1")
            .expect("valid");
        assert_eq!((p.host.as_str(), p.port, p.tls), ("10.0.0.5", 6380, false));
        assert_eq!(p.prefix, "shop");
        assert_eq!(p.timeout, Duration::from_millis(50));
        assert_eq!(p.id, "web1");
        assert_eq!(p.username.as_deref(), Some("ops"));
        assert!(!p.shown.contains("s3cret") && !format!("{p:?}").contains("s3cret"));
        let p = ClusterPlan::parse("rediss://:pw@h/x").expect("valid");
        assert!(p.tls && p.username.is_none() && p.port == 6379 && p.has_secret());
        // A password holding `/`, `@`, `?`, raw or percent-encoded; never shown.
        for v in [
            "redis://:a/b@c?d@h:1/x?id=n",
            "redis://:a%2Fb%40c%3Fd@h:1/x?id=n",
        ] {
            let p = ClusterPlan::parse(v).expect("valid");
            assert_eq!(p.password.as_ref().map(Secret::expose), Some("a/b@c?d"));
            assert_eq!(
                (p.host.as_str(), p.prefix.as_str(), p.id.as_str()),
                ("h", "x", "n")
            );
            assert!(
                !p.shown.contains("a/b") && !p.shown.contains("a%2F"),
                "{}",
                p.shown
            );
        }
        crate::plan::assert_refused(
            ClusterPlan::parse,
            &[
                ("http://h:1/x", "expected redis://"),
                ("redis://h:1", "no key prefix"),
                ("redis://h:0/x", "is not a port"),
                ("redis://h:1/x?timeout=0", "timeout="),
                ("redis://h:1/x?color=red", "unknown key `color`"),
                ("redis://h:1/x?insecure=1", "need TLS"),
                ("redis://:pw@/x", "no host"),
            ],
        );
    }

    #[test]
    fn keys_hash_the_same_everywhere() {
        // FNV-1a's published test value.
        assert_eq!(hash(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_ne!(hash(b"db down"), hash(b"db up"));
    }
}

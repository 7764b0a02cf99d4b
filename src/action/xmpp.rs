//! `xmpp:JID;PASSWORD;TO1[,TO2...][;server=HOST[:PORT]][;ssl_insecure=1]`: chat messages through
//! one persistent XMPP client per alarm (libstrophe).
//!
//! Role: at start-up each alarm starts a client thread that connects (STARTTLS when offered,
//! SASL, binding the JID's `/resource` if it has one), sends presence — so the account is online
//! while logalarm runs — and sends one chat message per recipient per alarm. When the connection
//! drops it reconnects after 1 s, then 2, 4 … 60 s, keeping messages meanwhile in a bounded
//! queue (overflow dropped, counted, reported at most once a second) and sending them after the
//! reconnect. At shutdown it sends what is queued (when online), goes offline and disconnects.
//! Invariants: the password is never printed (every line is scrubbed); certificates are
//! verified (system store or `SSL_CERT_FILE`) unless `ssl_insecure`; the alarm's lane thread
//! only pushes to the queue, so a dead server never slows anything else.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;

use super::airbrake::xml;
use super::delivery::{self, Secret, Secrets};
use super::ActionError;
use super::Ctx;
use crate::backoff::Backoff;
use crate::report::{report, DropCount};
use crate::sys::strophe;

/// Messages kept while offline.
pub(crate) const QUEUE: usize = 1024;
/// Reconnects wait 1 s, doubling up to 60 s.
const RECONNECT: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));

/// An `xmpp:` action.
#[derive(Debug)]
pub(crate) struct Xmpp {
    /// What the client thread runs with (it gets a clone; the queue and flag are shared).
    job: Job,
    dropped: DropCount,
    thread: Option<JoinHandleDebug>,
}

struct JoinHandleDebug(JoinHandle<()>);

impl std::fmt::Debug for JoinHandleDebug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JoinHandle")
    }
}

impl Xmpp {
    pub(crate) fn parse(arg: &str, warnings: &mut Vec<String>) -> Result<Xmpp, ActionError> {
        let mut parts = arg.split(';');
        let jid = parts.next().unwrap_or("").trim().to_string();
        let pass = parts.next().unwrap_or("");
        let to = parts.next().unwrap_or("");
        if jid.is_empty() || !jid.contains('@') {
            return Err(ActionError::from(
                "expected xmpp:JID;PASSWORD;TO[,TO...] (the JID is user@domain[/resource])",
            ));
        }
        let to: Vec<String> = to
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect();
        if to.is_empty() {
            return Err(ActionError::from(
                "no recipient: expected xmpp:JID;PASSWORD;TO[,TO...]",
            ));
        }
        let mut x = Xmpp {
            job: Job {
                alarm: String::new(),
                jid,
                pass: Secret::new(pass),
                to,
                server: None,
                insecure: false,
                queue: Arc::new(ArrayQueue::new(QUEUE)),
                stop: Arc::new(AtomicBool::new(false)),
                online: Arc::new(AtomicBool::new(false)),
            },
            dropped: DropCount::default(),
            thread: None,
        };
        for p in parts.filter(|p| !p.is_empty()) {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            match k.trim() {
                "server" => {
                    let v = v.trim();
                    let (h, port) = match v.rsplit_once(':') {
                        Some((h, p)) => match p.parse::<u16>() {
                            Ok(port) => (h.trim_matches(['[', ']']).to_string(), port),
                            Err(_) => {
                                return Err(ActionError::from(format!(
                                    "server={v}: the port is not a number"
                                )))
                            }
                        },
                        None => (v.to_string(), 5222),
                    };
                    if h.is_empty() {
                        return Err(ActionError::from(format!(
                            "server={v}: expected HOST[:PORT]"
                        )));
                    }
                    x.job.server = Some((h, port));
                }
                "ssl_insecure" => x.job.insecure = delivery::flag(v),
                other => warnings.push(format!("unknown xmpp key `{other}` ignored")),
            }
        }
        strophe::available()?;
        Ok(x)
    }

    /// Start the client thread (at start-up: the account is online while logalarm runs).
    pub(crate) fn start(&mut self, alarm: &str) {
        if self.thread.is_some() {
            return;
        }
        let job = Job {
            alarm: alarm.to_string(),
            ..self.job.clone()
        };
        match std::thread::Builder::new()
            .name(format!("logalarm-xmpp-{alarm}"))
            .spawn(move || job.run())
        {
            Ok(h) => self.thread = Some(JoinHandleDebug(h)),
            Err(e) => {
                report!(Xmpp, "alarm \"{alarm}\": cannot start its thread: {e}")
            }
        }
    }

    /// One attempt of a spooled message: accepted only while the account is online (otherwise
    /// the spool keeps it), never queued in memory while offline.
    pub(crate) fn attempt(
        &mut self,
        alarm: &str,
        msg: &[u8],
        ctx: &Ctx,
    ) -> Result<(), super::delivery::Failure> {
        self.start(alarm);
        if !self.job.online.load(Ordering::SeqCst) {
            return Err(super::delivery::Failure::Transient(format!(
                "not connected to the XMPP server (alarm \"{alarm}\", {})",
                self.job.jid
            )));
        }
        match self.fire(alarm, msg, ctx) {
            super::Outcome::Dropped => Err(super::delivery::Failure::Transient(format!(
                "XMPP queue full (alarm \"{alarm}\")"
            ))),
            _ => Ok(()),
        }
    }

    pub(crate) fn fire(&mut self, alarm: &str, msg: &[u8], _ctx: &Ctx) -> super::Outcome {
        self.start(alarm);
        let mut outcome = super::Outcome::Done;
        if self.job.queue.push(msg.into()).is_err() {
            self.dropped.add(1);
            outcome = super::Outcome::Dropped;
        }
        if let Some((new, total)) = self.dropped.due(Instant::now(), false) {
            report!(
                Xmpp,
                "alarm \"{alarm}\": {new} message(s) dropped while offline ({total} in all)"
            );
        }
        outcome
    }

    /// Send what is queued (when online), go offline, stop the thread (at most `limit`).
    pub(crate) fn finish(&mut self, limit: Duration) {
        self.job.stop.store(true, Ordering::SeqCst);
        if let Some(JoinHandleDebug(h)) = self.thread.take() {
            let end = Instant::now() + limit;
            while !h.is_finished() && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(10));
            }
            if h.is_finished() {
                let _ = h.join();
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Job {
    alarm: String,
    jid: String,
    pass: Secret,
    to: Vec<String>,
    server: Option<(String, u16)>,
    insecure: bool,
    queue: Arc<ArrayQueue<Box<[u8]>>>,
    stop: Arc<AtomicBool>,
    /// The account is online (set by the client thread).
    online: Arc<AtomicBool>,
}

impl Job {
    fn line(&self, secrets: &Secrets, what: &str) {
        report!(
            Xmpp,
            "{} (alarm \"{}\", {})",
            secrets.scrub(what),
            self.alarm,
            self.jid
        );
    }

    fn run(self) {
        let mut secrets = Secrets::default();
        secrets.add(&self.pass);
        let cafile = std::env::var("SSL_CERT_FILE")
            .ok()
            .filter(|f| !f.is_empty());
        let client = match strophe::Client::new(
            &self.jid,
            self.pass.expose(),
            self.insecure,
            cafile.as_deref(),
        ) {
            Ok(c) => c,
            Err(e) => {
                self.line(&secrets, &e.to_string());
                return;
            }
        };
        let mut s = Session {
            job: &self,
            secrets,
            client,
            retry: RECONNECT,
            next_attempt: Instant::now(),
            connecting: false,
        };
        let mut stop_since: Option<Instant> = None;
        loop {
            let stopping = self.stop.load(Ordering::Relaxed);
            if stopping && stop_since.is_none() {
                stop_since = Some(Instant::now());
            }
            let online = s.client.online();
            self.online.store(online, Ordering::SeqCst);
            if online {
                s.send_queued();
                if stopping {
                    s.sign_off();
                    return;
                }
            } else if stopping {
                let left = self.queue.len();
                if left > 0 {
                    s.line(&format!("{left} message(s) not sent: offline at exit"));
                }
                return;
            } else {
                s.connect_if_due();
            }
            s.events();
            if stop_since.is_some_and(|t| t.elapsed() > Duration::from_secs(3)) {
                return;
            }
        }
    }
}

/// The client thread's connection and its reconnect schedule.
struct Session<'j> {
    job: &'j Job,
    secrets: Secrets,
    client: strophe::Client,
    retry: Backoff,
    next_attempt: Instant,
    /// A connection attempt is under way (its outcome comes as an event).
    connecting: bool,
}

impl Session<'_> {
    fn line(&self, what: &str) {
        self.job.line(&self.secrets, what);
    }

    /// Send every queued message to every recipient.
    fn send_queued(&mut self) {
        while let Some(msg) = self.job.queue.pop() {
            let body = xml(String::from_utf8_lossy(&msg).trim_end_matches(['\n', '\r']));
            for to in &self.job.to {
                self.client.send(&format!(
                    "<message to=\"{}\" type=\"chat\"><body>{body}</body></message>",
                    xml(to)
                ));
            }
        }
    }

    /// Say goodbye (presence unavailable) and wait up to a second for the server to close.
    fn sign_off(&mut self) {
        self.client.send("<presence type=\"unavailable\"/>");
        self.client.disconnect();
        for _ in 0..20 {
            self.client.run(50);
            if !self.client.online() {
                break;
            }
        }
    }

    fn connect_if_due(&mut self) {
        if self.connecting || Instant::now() < self.next_attempt {
            return;
        }
        let (host, port) = match &self.job.server {
            Some((h, p)) => (Some(h.as_str()), *p),
            None => (None, 0),
        };
        match self.client.connect(host, port) {
            Ok(()) => self.connecting = true,
            Err(e) => {
                let wait = self.retry.next_delay();
                self.line(&format!("{e}; retrying in {}s", wait.as_secs()));
                self.next_attempt = Instant::now() + wait;
            }
        }
    }

    /// Run the client's event loop for up to 50 ms and act on what happened.
    fn events(&mut self) {
        for ev in self.client.run(50) {
            match ev {
                strophe::Event::Online => {
                    self.connecting = false;
                    self.retry.reset();
                    self.line("online");
                }
                strophe::Event::Offline { reason, bad_cert } => {
                    self.connecting = false;
                    let reason = if reason.starts_with("auth") {
                        format!("login refused (wrong JID or password?): {reason}")
                    } else {
                        reason
                    };
                    let hint = if bad_cert {
                        ": give its CA in SSL_CERT_FILE, or add ;ssl_insecure=1 after the recipients"
                    } else {
                        ""
                    };
                    let wait = self.retry.next_delay();
                    self.line(&format!(
                        "{reason}{hint}; reconnecting in {}s",
                        wait.as_secs()
                    ));
                    self.next_attempt = Instant::now() + wait;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments() {
        if strophe::available().is_err() {
            return;
        }
        let x = Xmpp::parse(
            "a@b/res;pw;c@d, e@f;server=127.0.0.1:5333;ssl_insecure=1",
            &mut Vec::new(),
        )
        .unwrap();
        assert_eq!(x.job.to, ["c@d", "e@f"]);
        assert_eq!(x.job.server, Some(("127.0.0.1".to_string(), 5333)));
        assert!(x.job.insecure);
        assert!(!format!("{x:?}").contains("pw;"));
        assert!(Xmpp::parse("nojid;pw;c@d", &mut Vec::new()).is_err());
        assert!(Xmpp::parse("a@b;pw", &mut Vec::new())
            .unwrap_err()
            .to_string()
            .contains("recipient"));
        assert!(Xmpp::parse("a@b;pw;c@d;server=h:x", &mut Vec::new()).is_err());
    }
}

//! What `curl:` and `airbrake:` share: `key=value` arguments, libcurl transport settings, the
//! classification of failures, and delivery with retries.
//!
//! Role: one place decides how an alarm reaches a remote endpoint. Invariants: certificates are
//! verified unless the alarm says `ssl_insecure`; a password or API key never appears in a line
//! this module writes (every line goes through [`Secrets::scrub`]); a failure is one line on
//! standard error starting with the action's tag (`[uwsgi-alarm-curl]`); transient failures are
//! retried with capped exponential back-off and jitter, permanent ones are reported once;
//! nothing here runs on the log path (each instance has its own lane thread).
//! Rejected alternatives: the curl `Multi` interface (one thread per alarm is what uWSGI does
//! and keeps a slow endpoint from delaying another alarm); retrying in a background queue of
//! its own (the lane's bounded queue already holds what waits, and drops are counted there).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::sys::curl::{self as libcurl, Easy};

use super::ActionError;
use crate::backoff::{Backoff, Jitter};
use crate::report::Tag;

/// One alarm's remote end: its URL, how it is reached (transport), how persistently (retry),
/// what its reports must hide, and its libcurl handle. `curl:` and `airbrake:` are each an
/// `Endpoint` plus what they send.
#[derive(Debug)]
pub(crate) struct Endpoint {
    pub url: String,
    /// The URL with any password masked, for failure lines.
    pub shown: String,
    pub transport: Transport,
    pub retry: Retry,
    secrets: Secrets,
    easy: Handle,
    jitter: Jitter,
    /// Spooled: one attempt per call, a transient failure returned (unreported) to the spool's
    /// delivery thread, which keeps the alarm and retries later.
    pub(crate) once: bool,
}

impl Endpoint {
    /// `kind` is the alarm type (for masking the URL as `--alarm-list` does).
    pub(crate) fn new(kind: &str, url: String) -> Endpoint {
        let mut secrets = Secrets::default();
        if let Some(p) = url_password(&url) {
            secrets.add(&Secret::new(p));
        }
        Endpoint {
            shown: crate::config::redact_arg(kind, &url),
            url,
            transport: Transport::default(),
            retry: Retry::default(),
            secrets,
            easy: Handle::default(),
            jitter: Jitter::new(),
            once: false,
        }
    }

    /// Deliver to `url` from now on (a `curl:` URL template rendered per alarm).
    pub(crate) fn set_url(&mut self, kind: &str, url: String) {
        self.shown = crate::config::redact_arg(kind, &url);
        self.url = url;
    }

    /// Take `key=v` if it is a transport or retry key. `Ok(false)`: not one of these.
    pub(crate) fn key(&mut self, key: &str, v: &str) -> Result<bool, ActionError> {
        if self.transport.key(key, v)? {
            if let Some(p) = &self.transport.pass {
                self.secrets.add(p);
            }
            return Ok(true);
        }
        self.retry.key(key, v)
    }

    /// One more secret to keep out of reports (an API key).
    pub(crate) fn hide(&mut self, s: &Secret) {
        self.secrets.add(s);
    }

    #[cfg(test)]
    pub(crate) fn scrub(&self, text: &str) -> String {
        self.secrets.scrub(text)
    }

    /// [`deliver`] one alarm: `attempt(handle, transport, url)` until it succeeds or gives up
    /// (once, when spooled: a transient failure is then returned with its text, secrets
    /// masked, and not reported).
    pub(crate) fn deliver(
        &mut self,
        alarm: &str,
        raised: Instant,
        stop: &AtomicBool,
        mut attempt: impl FnMut(&mut Easy, &Transport, &str) -> Result<(), Failure>,
    ) -> Result<(), Failure> {
        let who = Reporter {
            tag: Tag::Curl,
            alarm,
            target: &self.shown,
            secrets: &self.secrets,
        };
        let mut easy = match self.easy.take() {
            Ok(easy) => easy,
            // libcurl is loaded at start-up (`check_protocol`): this is a handle it could not
            // make (out of memory).
            Err(e) => {
                return Err(match classify(&e, 0, false) {
                    Failure::Transient(w) if self.once => Failure::Transient(who.text(&w)),
                    Failure::Transient(w) | Failure::Permanent(w) => {
                        who.line(&format!("{w}; not retried"));
                        Failure::Permanent(w)
                    }
                })
            }
        };
        let (transport, url) = (&self.transport, self.url.as_str());
        let result = if self.once {
            match attempt(&mut easy, transport, url) {
                Err(Failure::Permanent(why)) => {
                    who.line(&format!("{why}; not retried"));
                    Err(Failure::Permanent(why))
                }
                Err(Failure::Transient(why)) => Err(Failure::Transient(who.text(&why))),
                Ok(()) => Ok(()),
            }
        } else if deliver(&who, self.retry, raised, stop, &mut self.jitter, || {
            attempt(&mut easy, transport, url)
        }) {
            Ok(())
        } else {
            Err(Failure::Permanent("given up".into()))
        };
        self.easy.put(easy);
        result
    }

    /// [`deliver`] one HTTP request (`method`, `headers`, `body`).
    pub(crate) fn http(
        &mut self,
        alarm: &str,
        raised: Instant,
        stop: &AtomicBool,
        method: &str,
        headers: &[String],
        body: &[u8],
    ) -> Result<(), Failure> {
        self.deliver(alarm, raised, stop, |easy, transport, url| {
            transport.apply(easy).map_err(|e| classify(&e, 0, false))?;
            http_request(easy, url, method, headers, body)
        })
    }
}

/// The scheme of `URL`, lower-cased, if it has one.
pub(crate) fn scheme(url: &str) -> Option<String> {
    match url.split_once("://") {
        Some((s, _)) if !s.is_empty() => Some(s.to_ascii_lowercase()),
        _ => None,
    }
}

/// The password of `scheme://user:PASS@host/...`, if any.
fn url_password(url: &str) -> Option<&str> {
    let after = &url[url.find("://")? + 3..];
    let auth = &after[..after.find('/').unwrap_or(after.len())];
    let userinfo = &auth[..auth.rfind('@')?];
    userinfo.split_once(':').map(|(_, p)| p)
}

/// The libcurl handle of one alarm: made on the alarm's own thread at its first run, then reused
/// (so connections are kept alive between alarms).
#[derive(Default)]
struct Handle(Option<Easy>);

impl Handle {
    fn take(&mut self) -> Result<Easy, libcurl::Error> {
        match self.0.take() {
            Some(easy) => Ok(easy),
            None => Easy::new(),
        }
    }
    fn put(&mut self, easy: Easy) {
        self.0 = Some(easy);
    }
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Easy")
    }
}

/// A password or API key: never printed, never in `Debug`.
#[derive(Clone, Default)]
pub(crate) struct Secret(String);

impl Secret {
    pub(crate) fn new(s: &str) -> Secret {
        Secret(s.to_string())
    }
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Every secret of one alarm, to mask in whatever it reports.
#[derive(Debug, Clone, Default)]
pub(crate) struct Secrets(Vec<Secret>);

impl Secrets {
    pub(crate) fn add(&mut self, s: &Secret) {
        if !s.0.is_empty() {
            self.0.push(s.clone());
        }
    }
    /// `text` with every secret replaced by `***`.
    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.0 {
            out = out.replace(s.expose(), "***");
        }
        out
    }
}

/// Split `URL;key=val;...` into the URL and its pairs, as uWSGI does (a `url=` key overrides
/// the first token). A token without `=` is a key with an empty value.
pub(crate) fn split_args(arg: &str) -> (String, Vec<(&str, &str)>) {
    let mut tokens = arg.split(';');
    let mut url = tokens.next().unwrap_or("").trim().to_string();
    let mut pairs = Vec::new();
    for t in tokens {
        if t.is_empty() {
            continue;
        }
        let (k, v) = t.split_once('=').unwrap_or((t, ""));
        if k.trim() == "url" {
            url = v.trim().to_string();
        } else {
            pairs.push((k.trim(), v));
        }
    }
    (url, pairs)
}

/// A boolean key: absent or `0`/`false`/`no`/`off` is false; anything else (even empty) true.
pub(crate) fn flag(v: &str) -> bool {
    !matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "0" | "false" | "no" | "off"
    )
}

fn seconds(key: &str, v: &str) -> Result<Duration, ActionError> {
    match v.trim().parse::<u64>() {
        Ok(n) if n <= 86_400 => Ok(Duration::from_secs(n)),
        _ => Err(ActionError::from(format!(
            "{key}={v}: expected a whole number of seconds (0 to 86400)"
        ))),
    }
}

/// How one alarm talks to its endpoint: timeouts, TLS and credentials.
#[derive(Debug, Clone)]
pub(crate) struct Transport {
    pub timeout: Duration,
    pub conn_timeout: Duration,
    /// Require TLS (`CURLOPT_USE_SSL`: STARTTLS for smtp://).
    pub ssl: bool,
    pub ssl_insecure: bool,
    pub user: Option<String>,
    pub pass: Option<Secret>,
    /// `SSL_CERT_FILE` / `SSL_CERT_DIR` at start-up: trust these instead of the system store.
    ca_file: Option<String>,
    ca_dir: Option<String>,
}

impl Default for Transport {
    fn default() -> Transport {
        let env = |k| std::env::var(k).ok().filter(|v: &String| !v.is_empty());
        Transport {
            timeout: Duration::from_secs(4),
            conn_timeout: Duration::from_secs(4),
            ssl: false,
            ssl_insecure: false,
            user: None,
            pass: None,
            ca_file: env("SSL_CERT_FILE"),
            ca_dir: env("SSL_CERT_DIR"),
        }
    }
}

impl Transport {
    /// Take `key=v` if it is a transport key. `Ok(false)`: not one of ours.
    pub(crate) fn key(&mut self, key: &str, v: &str) -> Result<bool, ActionError> {
        match key {
            "timeout" => self.timeout = seconds(key, v)?,
            "conn_timeout" => self.conn_timeout = seconds(key, v)?,
            "ssl" => self.ssl = flag(v),
            "ssl_insecure" => self.ssl_insecure = flag(v),
            "auth_user" => self.user = Some(v.to_string()),
            "auth_pass" => self.pass = Some(Secret::new(v)),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Set these options on `easy` (a zero timeout means none, as in libcurl).
    pub(crate) fn apply(&self, easy: &mut Easy) -> Result<(), libcurl::Error> {
        easy.no_signal()?;
        easy.timeout(self.timeout)?;
        easy.connect_timeout(self.conn_timeout)?;
        easy.verify(!self.ssl_insecure)?;
        if let Some(f) = &self.ca_file {
            easy.cainfo(f)?;
        }
        if let Some(d) = &self.ca_dir {
            easy.capath(d)?;
        }
        easy.use_ssl(self.ssl)?;
        if let Some(u) = &self.user {
            easy.username(u)?;
        }
        if let Some(p) = &self.pass {
            easy.password(p.expose())?;
        }
        Ok(())
    }
}

/// Retry policy: `retries=N` (default 3) more attempts after the first, and `max_age=SECONDS`
/// (default 300): an alarm older than that is given up.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Retry {
    pub retries: u32,
    pub max_age: Duration,
}

impl Default for Retry {
    fn default() -> Retry {
        Retry {
            retries: 3,
            max_age: Duration::from_secs(300),
        }
    }
}

/// Retries wait 0.5 s, doubling per attempt up to 30 s, with equal jitter.
pub(crate) const BACKOFF: Backoff =
    Backoff::new(Duration::from_millis(500), Duration::from_secs(30));

impl Retry {
    pub(crate) fn key(&mut self, key: &str, v: &str) -> Result<bool, ActionError> {
        match key {
            "retries" => {
                self.retries = match v.trim().parse::<u32>() {
                    Ok(n) if n <= 100 => n,
                    _ => {
                        return Err(ActionError::from(format!(
                            "retries={v}: expected a number from 0 to 100"
                        )))
                    }
                }
            }
            "max_age" => self.max_age = seconds(key, v)?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// Why one attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Worth another attempt: connection refused, timeout, HTTP 5xx/429/408, SMTP 4xx.
    Transient(String),
    /// Not worth retrying: other HTTP 4xx, authentication, certificates, bad URL, SMTP 5xx.
    Permanent(String),
}

/// Classify a libcurl error. `reply` is the last response code (HTTP status or SMTP reply).
pub(crate) fn classify(err: &libcurl::Error, reply: u32, smtp: bool) -> Failure {
    use libcurl::code;
    let mut why = format!("curl_easy_perform() failed: {}", err.description());
    if let Some(extra) = err.extra_description() {
        if !extra.is_empty() && extra != err.description() {
            why.push_str(&format!(" ({extra})"));
        }
    }
    if smtp && reply >= 400 {
        why.push_str(&format!(" [server replied {reply}]"));
    }
    let bad_cert = matches!(
        err.code,
        code::PEER_FAILED_VERIFICATION
            | code::SSL_CERTPROBLEM
            | code::SSL_CACERT_BADFILE
            | code::SSL_ISSUER_ERROR
    );
    if bad_cert {
        why.push_str(
            "; the server's certificate is not trusted: give its CA in SSL_CERT_FILE, \
             or add ;ssl_insecure=1 to this alarm to skip the check",
        );
        return Failure::Permanent(why);
    }
    let permanent = matches!(
        err.code,
        code::LOGIN_DENIED
            | code::URL_MALFORMAT
            | code::UNSUPPORTED_PROTOCOL
            | code::USE_SSL_FAILED
            | code::REMOTE_ACCESS_DENIED
            | code::BAD_FUNCTION_ARGUMENT
    ) || (smtp && (500..600).contains(&reply));
    if permanent {
        Failure::Permanent(why)
    } else {
        Failure::Transient(why)
    }
}

/// Classify an HTTP status that libcurl reported as a completed transfer.
pub(crate) fn classify_status(status: u32, answer: &[u8]) -> Result<(), Failure> {
    if (100..400).contains(&status) {
        return Ok(());
    }
    let snippet: String = String::from_utf8_lossy(&answer[..answer.len().min(120)])
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let why = format!("HTTP {status}: {}", snippet.trim());
    if status == 408 || status == 425 || status == 429 || status >= 500 || status == 0 {
        Err(Failure::Transient(why))
    } else {
        Err(Failure::Permanent(why))
    }
}

/// One HTTP request: `method` with `body` (Content-Length set), response body kept (capped) for
/// the failure line. The handle is reused, so connections are kept alive between alarms.
pub(crate) fn http_request(
    easy: &mut Easy,
    url: &str,
    method: &str,
    headers: &[String],
    body: &[u8],
) -> Result<(), Failure> {
    let setup = |easy: &mut Easy| -> Result<(), libcurl::Error> {
        easy.url(url)?;
        // Never wait for `100 Continue`: some recorders and proxies do not send it.
        let mut lines: Vec<&str> = headers.iter().map(String::as_str).collect();
        lines.push("Expect:");
        easy.request(method, &lines, body)
    };
    setup(easy).map_err(|e| classify(&e, 0, false))?;
    let mut answer = Vec::new();
    let result = easy.perform(None, &mut |data: &[u8]| {
        let room = 4096usize.saturating_sub(answer.len());
        answer.extend_from_slice(&data[..data.len().min(room)]);
        data.len()
    });
    let status = easy.response_code();
    match result {
        Ok(()) => classify_status(status, &answer),
        Err(e) => Err(classify(&e, status, false)),
    }
}

/// Check at start-up that libcurl can be loaded and speaks `scheme`.
pub(crate) fn check_protocol(scheme: &str) -> Result<(), ActionError> {
    let (version, protocols) = libcurl::version().map_err(|e| ActionError::from(e.to_string()))?;
    let protocols: Vec<&str> = protocols.iter().map(String::as_str).collect();
    check_protocol_in(scheme, &protocols, &version)
}

pub(crate) fn check_protocol_in(
    scheme: &str,
    protocols: &[&str],
    version: &str,
) -> Result<(), ActionError> {
    if protocols.iter().any(|p| p.eq_ignore_ascii_case(scheme)) {
        return Ok(());
    }
    let (which, fix) = if cfg!(target_env = "musl") {
        (
            "built into this static logalarm",
            "use the .deb or a build from source",
        )
    } else {
        (
            "logalarm loaded",
            "install Debian's libcurl4 (libcurl4t64 on Debian 13), which has both",
        )
    };
    Err(ActionError::from(format!(
        "the libcurl {which} ({version}) does not support {scheme}:// (it supports: {}); {fix}",
        protocols.join(" ")
    )))
}

/// Who is delivering, for the lines [`deliver`] writes.
pub(crate) struct Reporter<'a> {
    /// `Curl`.
    pub tag: Tag,
    pub alarm: &'a str,
    /// The endpoint, password masked.
    pub target: &'a str,
    pub secrets: &'a Secrets,
}

impl Reporter<'_> {
    fn text(&self, what: &str) -> String {
        format!(
            "{} (alarm \"{}\", {})",
            self.secrets.scrub(what),
            self.alarm,
            self.target
        )
    }

    fn line(&self, what: &str) {
        crate::report::line(self.tag, format_args!("{}", self.text(what)));
    }
}

/// Run `attempt` until it succeeds, fails permanently, runs out of retries, the alarm gets older
/// than `max_age`, or logalarm stops (`stop`). Every failure is one line. Returns whether the
/// alarm was delivered.
pub(crate) fn deliver(
    who: &Reporter<'_>,
    retry: Retry,
    raised: Instant,
    stop: &AtomicBool,
    jitter: &mut Jitter,
    mut attempt: impl FnMut() -> Result<(), Failure>,
) -> bool {
    let attempts = retry.retries + 1;
    for n in 1..=attempts {
        let age = raised.elapsed();
        if age > retry.max_age {
            who.line(&format!(
                "given up: the alarm is {}s old, older than max_age={}s, after {} attempt(s)",
                age.as_secs(),
                retry.max_age.as_secs(),
                n - 1
            ));
            return false;
        }
        match attempt() {
            Ok(()) => return true,
            Err(Failure::Permanent(why)) => {
                who.line(&format!("{why}; not retried"));
                return false;
            }
            Err(Failure::Transient(why)) => {
                if n == attempts {
                    who.line(&format!("{why}; given up after {n} attempt(s)"));
                    return false;
                }
                let wait = BACKOFF.jittered(n, jitter);
                who.line(&format!(
                    "{why}; retry {n} of {} in {:.1}s",
                    retry.retries,
                    wait.as_secs_f64()
                ));
                if !sleep_unless(stop, wait) {
                    who.line(&format!(
                        "given up after {n} attempt(s): logalarm is stopping"
                    ));
                    return false;
                }
            }
        }
    }
    false
}

/// Sleep `d`, waking early (and returning false) when `stop` is set.
fn sleep_unless(stop: &AtomicBool, d: Duration) -> bool {
    let end = Instant::now() + d;
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let now = Instant::now();
        if now >= end {
            return true;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(20)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_split_like_uwsgi() {
        let (url, pairs) = split_args("smtp://h:25;mail_to=a@b,c@d;subject=x y;ssl");
        assert_eq!(url, "smtp://h:25");
        assert_eq!(
            pairs,
            [("mail_to", "a@b,c@d"), ("subject", "x y"), ("ssl", "")]
        );
        let (url, _) = split_args("ignored;url=http://real/");
        assert_eq!(url, "http://real/");
        assert!(flag("") && flag("1") && flag("true") && !flag("0") && !flag("False"));
    }

    #[test]
    fn backoff_doubles_caps_and_jitters() {
        let mut j = Jitter::new();
        for n in 1..40 {
            let d = BACKOFF.jittered(n, &mut j);
            let full = (Duration::from_millis(500) * 2u32.pow((n - 1).min(16)))
                .min(Duration::from_secs(30));
            assert!(d >= full / 2 && d <= full, "{n}: {d:?}");
        }
    }

    #[test]
    fn status_classes() {
        assert!(classify_status(200, b"").is_ok());
        assert!(classify_status(302, b"").is_ok());
        assert!(matches!(
            classify_status(503, b"busy"),
            Err(Failure::Transient(_))
        ));
        assert!(matches!(
            classify_status(429, b""),
            Err(Failure::Transient(_))
        ));
        assert!(matches!(
            classify_status(404, b"no\x00such"),
            Err(Failure::Permanent(w)) if w == "HTTP 404: no such"
        ));
    }

    #[test]
    fn curl_errors_classes() {
        use libcurl::code;
        let e = |c| libcurl::Error::new(c);
        assert!(matches!(
            classify(&e(code::COULDNT_CONNECT), 0, false),
            Failure::Transient(_)
        ));
        assert!(matches!(
            classify(&e(code::OPERATION_TIMEDOUT), 0, false),
            Failure::Transient(_)
        ));
        assert!(matches!(
            classify(&e(code::PEER_FAILED_VERIFICATION), 0, false),
            Failure::Permanent(w) if w.contains("ssl_insecure")
        ));
        assert!(matches!(
            classify(&e(code::LOGIN_DENIED), 535, true),
            Failure::Permanent(_)
        ));
        assert!(matches!(
            classify(&e(code::SEND_ERROR), 451, true),
            Failure::Transient(_)
        ));
        assert!(matches!(
            classify(&e(code::SEND_ERROR), 550, true),
            Failure::Permanent(_)
        ));
    }

    #[test]
    fn secrets_are_scrubbed() {
        let mut s = Secrets::default();
        s.add(&Secret::new("hunter2"));
        assert_eq!(s.scrub("pw hunter2 here"), "pw *** here");
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "***");
    }

    #[test]
    fn the_loaded_libcurl_sends_mail() {
        // Debian's libcurl4 is installed where the tests run (scripts/setup.sh).
        for p in ["http", "https", "smtp", "smtps"] {
            check_protocol(p).unwrap();
        }
        let e = check_protocol_in("smtp", &["http"], "8.0")
            .unwrap_err()
            .to_string();
        assert!(e.contains("(8.0) does not support smtp://"), "{e}");
        assert!(e.contains("libcurl4"), "{e}");
    }

    #[test]
    fn deliver_retries_transient_and_stops_on_permanent() {
        let stop = AtomicBool::new(false);
        let secrets = Secrets::default();
        let who = Reporter {
            tag: Tag::Curl,
            alarm: "t",
            target: "test",
            secrets: &secrets,
        };
        let mut j = Jitter::new();
        let mut calls = 0;
        let retry = Retry {
            retries: 1,
            max_age: Duration::from_secs(60),
        };
        let ok = deliver(&who, retry, Instant::now(), &stop, &mut j, || {
            calls += 1;
            if calls == 1 {
                Err(Failure::Transient("x".into()))
            } else {
                Ok(())
            }
        });
        assert!(ok && calls == 2);
        let mut calls = 0;
        let ok = deliver(&who, retry, Instant::now(), &stop, &mut j, || {
            calls += 1;
            Err(Failure::Permanent("no".into()))
        });
        assert!(!ok && calls == 1);
        stop.store(true, Ordering::Relaxed);
        let mut calls = 0;
        let ok = deliver(&who, retry, Instant::now(), &stop, &mut j, || {
            calls += 1;
            Err(Failure::Transient("down".into()))
        });
        assert!(!ok && calls == 1, "stopping ends the back-off");
    }
}

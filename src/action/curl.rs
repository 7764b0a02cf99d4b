//! `curl:URL[;key=val...]`: an HTTP(S) request or an SMTP(S) mail per alarm, through libcurl.
//!
//! HTTP: `PUT` by default (as uWSGI documents), `method=` overrides; the body is the optional
//! `To:`/`Subject:` block, a blank line (only when one of those keys is set, as uWSGI) and the
//! message. SMTP/SMTPS: a real mail — `MAIL FROM`, one `RCPT TO` per recipient, and `DATA` with
//! `From`, `To`, `Subject`, `Date` and `Message-ID` headers (uWSGI's SMTP is broken on current
//! libcurl: a documented deviation). Delivery, retries and secrecy: see [`super::delivery`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::delivery::{self, Endpoint, Failure, Transport};
use super::ActionError;
use super::Ctx;
use crate::sys;
use crate::sys::curl::{self as libcurl, Easy};

/// A `curl:` action.
#[derive(Debug)]
pub(crate) struct Curl {
    pub(crate) end: Endpoint,
    smtp: bool,
    method: String,
    mail_to: Vec<String>,
    /// `mail_to` as written: the HTTP header block carries it verbatim, as uWSGI.
    mail_to_raw: String,
    mail_from: Option<String>,
    subject: Option<String>,
    /// `templates=1`: the URL, `subject` and `mail_to` are templates, rendered per alarm with
    /// the raising rule's captures (escaped for a URL, a header, an address).
    templates: Option<Templates>,
}

/// The templated arguments of a `curl:` alarm with `templates=1`.
#[derive(Debug)]
struct Templates {
    url: crate::suppress::Template,
    subject: Option<crate::suppress::Template>,
    mail_to: Option<crate::suppress::Template>,
}

static MAIL_SEQ: AtomicU64 = AtomicU64::new(0);

impl Curl {
    /// Parse the argument; unknown keys are pushed to `warnings`.
    pub(crate) fn parse(arg: &str, warnings: &mut Vec<String>) -> Result<Curl, ActionError> {
        let (url, pairs) = delivery::split_args(arg);
        if url.is_empty() {
            return Err(ActionError::from("no URL: expected curl:URL[;key=val...]"));
        }
        let Some(scheme) = delivery::scheme(&url) else {
            return Err(ActionError::from(format!(
                "`{}` is not a URL: expected scheme://host/... (http, https, smtp, smtps)",
                crate::config::redact_arg("curl", &url)
            )));
        };
        delivery::check_protocol(&scheme)?;
        let smtp = scheme == "smtp" || scheme == "smtps";
        let mut c = Curl {
            end: Endpoint::new("curl", url),
            smtp,
            method: "PUT".into(),
            mail_to: Vec::new(),
            mail_to_raw: String::new(),
            mail_from: None,
            subject: None,
            templates: None,
        };
        let mut templated = false;
        for (k, v) in pairs {
            if c.end.key(k, v)? {
                continue;
            }
            match k {
                "method" => {
                    let m = v.trim().to_ascii_uppercase();
                    if m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic()) {
                        return Err(ActionError::from(format!(
                            "method={v}: expected an HTTP method such as POST"
                        )));
                    }
                    c.method = m;
                }
                "mail_to" => {
                    c.mail_to_raw = v.to_string();
                    c.mail_to = v
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                }
                "mail_from" => c.mail_from = Some(v.trim().to_string()),
                "subject" => c.subject = Some(v.to_string()),
                "templates" => templated = delivery::flag(v),
                _ => warnings.push(format!("unknown curl key `{k}` ignored")),
            }
        }
        if templated {
            let t = |key: &str, v: &str| {
                crate::suppress::Template::parse(v)
                    .map_err(|e| ActionError::from(format!("{key}: {e}")))
            };
            c.templates = Some(Templates {
                url: t("url", &c.end.url)?,
                subject: c.subject.as_deref().map(|s| t("subject", s)).transpose()?,
                mail_to: if c.mail_to_raw.is_empty() {
                    None
                } else {
                    Some(t("mail_to", &c.mail_to_raw)?)
                },
            });
        }
        if c.smtp && c.mail_to.is_empty() {
            return Err(ActionError::from(
                "an smtp:// or smtps:// alarm needs mail_to=ADDRESS[,ADDRESS...]",
            ));
        }
        for s in c.mail_to.iter().chain(c.mail_from.iter()) {
            if s.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                return Err(ActionError::from(
                    "mail_to and mail_from must not hold control characters",
                ));
            }
        }
        Ok(c)
    }

    /// The templated arguments (`templates=1`) in the order [`prepare`](Self::prepare) takes
    /// them back rendered: the URL, then `subject`, then `mail_to`.
    pub(crate) fn templates(&self) -> Vec<(&crate::suppress::Template, crate::suppress::Escape)> {
        use crate::suppress::Escape;
        let Some(t) = &self.templates else {
            return Vec::new();
        };
        let mut v = vec![(&t.url, Escape::Url)];
        v.extend(t.subject.iter().map(|s| (s, Escape::Header)));
        v.extend(t.mail_to.iter().map(|m| (m, Escape::Address)));
        v
    }

    /// The templated arguments rendered for the next alarm (see [`templates`](Self::templates)).
    pub(crate) fn prepare(&mut self, rendered: &[Vec<u8>]) {
        let Some(t) = &self.templates else {
            return;
        };
        let (has_subject, has_mail_to) = (t.subject.is_some(), t.mail_to.is_some());
        let mut it = rendered
            .iter()
            .map(|v| String::from_utf8_lossy(v).into_owned());
        if let Some(url) = it.next() {
            self.end.set_url("curl", url);
        }
        if has_subject {
            self.subject = it.next();
        }
        if let (true, Some(to)) = (has_mail_to, it.next()) {
            self.mail_to = to
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            self.mail_to_raw = to;
        }
    }

    /// The sender: `mail_from`, else `auth_user` when it is an address, else
    /// `logalarm@HOSTNAME`.
    fn sender(&self) -> String {
        if let Some(f) = &self.mail_from {
            return f.clone();
        }
        match &self.end.transport.user {
            Some(u) if u.contains('@') => u.clone(),
            _ => format!("logalarm@{}", sys::uname().nodename),
        }
    }

    /// The HTTP body: the optional header block, then the message.
    pub(crate) fn http_body(&self, msg: &[u8]) -> Vec<u8> {
        let mut body = Vec::with_capacity(msg.len() + 64);
        if !self.mail_to.is_empty() {
            body.extend_from_slice(format!("To: {}\r\n", self.mail_to_raw).as_bytes());
        }
        if let Some(s) = &self.subject {
            body.extend_from_slice(format!("Subject: {s}\r\n").as_bytes());
        }
        if !body.is_empty() {
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(msg);
        body
    }

    /// The whole mail (headers and body, CRLF line ends) for `msg` raised by `alarm`.
    pub(crate) fn mail(&self, alarm: &str, msg: &[u8], date: &str, host: &str) -> Vec<u8> {
        let seq = MAIL_SEQ.fetch_add(1, Ordering::Relaxed);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or(0);
        let subject = match &self.subject {
            Some(s) => s.clone(),
            None => format!("logalarm: alarm {alarm}"),
        };
        let mut m = format!(
            "From: {}\r\nTo: {}\r\nSubject: {}\r\nDate: {}\r\nMessage-ID: <{}.{}.{}.logalarm@{}>\r\n\
             MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: 8bit\r\n\r\n",
            self.sender(),
            self.mail_to.join(", "),
            subject,
            date,
            now,
            std::process::id(),
            seq,
            host
        )
        .into_bytes();
        // Bare LF and CR become CRLF, as SMTP requires (libcurl does the dot-stuffing).
        let mut prev = 0u8;
        for &b in msg {
            match b {
                b'\n' if prev != b'\r' => m.extend_from_slice(b"\r\n"),
                b'\n' => m.push(b'\n'),
                b'\r' => m.push(b'\r'),
                _ => {
                    if prev == b'\r' {
                        m.push(b'\n');
                    }
                    m.push(b);
                }
            }
            prev = b;
        }
        if prev == b'\r' {
            m.push(b'\n');
        }
        if !m.ends_with(b"\r\n") {
            m.extend_from_slice(b"\r\n");
        }
        m
    }

    /// Deliver one alarm; `Err` when it did not arrive.
    pub(crate) fn fire(
        &mut self,
        alarm: &str,
        msg: &[u8],
        raised: Instant,
        ctx: &Ctx,
    ) -> Result<(), delivery::Failure> {
        if self.smtp {
            let mail = self.mail(
                alarm,
                msg,
                &sys::time::rfc5322_now(),
                &sys::uname().nodename,
            );
            let sender = self.sender();
            let to = &self.mail_to;
            self.end
                .deliver(alarm, raised, &ctx.stopping, |easy, transport, url| {
                    send_mail(easy, url, transport, &sender, to, &mail)
                })
        } else {
            let body = self.http_body(msg);
            let headers = ["Content-Type: text/plain".to_string()];
            self.end
                .http(alarm, raised, &ctx.stopping, &self.method, &headers, &body)
        }
    }
}

/// One SMTP transaction.
fn send_mail(
    easy: &mut Easy,
    url: &str,
    transport: &Transport,
    from: &str,
    to: &[String],
    mail: &[u8],
) -> Result<(), Failure> {
    let setup = |easy: &mut Easy| -> Result<(), libcurl::Error> {
        transport.apply(easy)?;
        easy.url(url)?;
        easy.upload(mail.len() as u64)?;
        easy.envelope(&format!("<{from}>"), &addresses(to))
    };
    setup(easy).map_err(|e| delivery::classify(&e, 0, true))?;
    let mut rest = mail;
    let result = easy.perform(
        Some(&mut |buf: &mut [u8]| {
            let n = buf.len().min(rest.len());
            buf[..n].copy_from_slice(&rest[..n]);
            rest = &rest[n..];
            n
        }),
        // An SMTP server sends no body; anything else is dropped (never to standard output).
        &mut |data: &[u8]| data.len(),
    );
    match result {
        Ok(()) => Ok(()),
        Err(e) => Err(delivery::classify(&e, easy.response_code(), true)),
    }
}

/// `RCPT TO` arguments: each address in angle brackets.
fn addresses(to: &[String]) -> Vec<String> {
    to.iter()
        .map(|a| {
            if a.starts_with('<') {
                a.clone()
            } else {
                format!("<{a}>")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(arg: &str) -> Result<Curl, ActionError> {
        Curl::parse(arg, &mut Vec::new())
    }

    #[test]
    fn http_body_has_the_header_block_only_when_asked() {
        let c = parse("http://h/p").unwrap();
        assert_eq!(c.method, "PUT");
        assert_eq!(c.http_body(b"boom"), b"boom");
        let c = parse("http://h/p;mail_to=a@b,c@d;subject=Hi there;method=post").unwrap();
        assert_eq!(c.method, "POST");
        assert_eq!(
            c.http_body(b"boom"),
            b"To: a@b,c@d\r\nSubject: Hi there\r\n\r\nboom"
        );
    }

    #[test]
    fn mail_has_every_header_and_crlf_lines() {
        let c = parse("smtp://h;mail_to=a@b,c@d;mail_from=me@x;subject=S").unwrap();
        let m = c.mail(
            "disk",
            b"line one\nline two\r\nthree",
            "Mon, 23 Nov 2026 19:03:42 +0000",
            "host",
        );
        let m = String::from_utf8(m).unwrap();
        assert!(m.starts_with("From: me@x\r\nTo: a@b, c@d\r\nSubject: S\r\nDate: Mon, 23 Nov 2026 19:03:42 +0000\r\nMessage-ID: <"), "{m}");
        assert!(m.contains("@host>\r\n"));
        assert!(
            m.ends_with("\r\n\r\nline one\r\nline two\r\nthree\r\n"),
            "{m:?}"
        );
    }

    #[test]
    fn bad_arguments_are_refused_and_unknown_keys_warned() {
        assert!(parse("").is_err());
        assert!(parse("nourl")
            .unwrap_err()
            .to_string()
            .contains("not a URL"));
        assert!(parse("smtp://h")
            .unwrap_err()
            .to_string()
            .contains("mail_to"));
        assert!(parse("http://h;timeout=x")
            .unwrap_err()
            .to_string()
            .contains("timeout=x"));
        assert!(parse("http://h;retries=-1")
            .unwrap_err()
            .to_string()
            .contains("retries"));
        assert!(parse("http://h;method=P O").is_err());
        let mut w = Vec::new();
        Curl::parse("http://h;colour=red", &mut w).unwrap();
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("colour"));
        let c = parse("http://u:pw@h/;auth_pass=sek").unwrap();
        assert_eq!(c.end.scrub("pw sek"), "*** ***");
        assert!(!format!("{c:?}").contains("sek"));
    }

    #[test]
    fn sender_defaults() {
        assert_eq!(
            parse("smtp://h;mail_to=a@b;auth_user=me@x")
                .unwrap()
                .sender(),
            "me@x"
        );
        assert!(parse("smtp://h;mail_to=a@b;auth_user=me")
            .unwrap()
            .sender()
            .starts_with("logalarm@"));
    }
}

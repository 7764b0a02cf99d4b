//! `airbrake:URL[;key=val...]`: an Airbrake/Errbit error notice per alarm.
//!
//! Default: a notifier API v2.3 XML notice that validates against the v2.3 schema (uWSGI's own
//! does not: a documented deviation). `api=v3`: the JSON notice of Airbrake's v3 API, with the
//! key in an `Authorization: Bearer` header (so it never sits in a URL). A segfault backtrace
//! message (`*** backtrace of PID ***` ... `*** end of backtrace ***`) becomes frames; any other
//! message becomes the error message with an empty backtrace.
//! The XML is written with quick-xml's `Writer` and the JSON with `serde_json` (escaping is
//! theirs; only XML 1.0's forbidden control characters are replaced first, [`xml_safe`]).

use std::borrow::Cow;
use std::time::Instant;

use quick_xml::events::{BytesDecl, BytesText, Event};
use quick_xml::Writer;
use serde_json::json;

use super::delivery::{self, Endpoint, Secret};
use super::ActionError;
use super::Ctx;
use crate::sys;

const NOTIFIER_URL: &str = "https://github.com/logalarm/logalarm";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    V2,
    V3,
}

/// An `airbrake:` action.
#[derive(Debug)]
pub(crate) struct Airbrake {
    pub(crate) end: Endpoint,
    apikey: Secret,
    env: String,
    api: Api,
    subject: Option<String>,
}

/// One backtrace frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frame {
    pub file: String,
    pub method: String,
}

/// What a notice reports: the error message and the frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Report {
    pub message: String,
    pub frames: Vec<Frame>,
}

impl Airbrake {
    pub(crate) fn parse(arg: &str, warnings: &mut Vec<String>) -> Result<Airbrake, ActionError> {
        let (url, pairs) = delivery::split_args(arg);
        let Some(scheme) = delivery::scheme(&url).filter(|s| s == "http" || s == "https") else {
            return Err(ActionError::from(format!(
                "`{}` is not an http:// or https:// URL: expected airbrake:URL[;apikey=KEY...]",
                crate::config::redact_arg("airbrake", &url)
            )));
        };
        delivery::check_protocol(&scheme)?;
        let mut a = Airbrake {
            end: Endpoint::new("airbrake", url),
            apikey: Secret::default(),
            env: "production".into(),
            api: Api::V2,
            subject: None,
        };
        for (k, v) in pairs {
            if a.end.key(k, v)? {
                continue;
            }
            match k {
                "apikey" => a.apikey = Secret::new(v.trim()),
                "env" => a.env = v.to_string(),
                "subject" => a.subject = Some(v.to_string()),
                "api" => {
                    a.api = match v.trim() {
                        "v2" | "v2.3" | "2" => Api::V2,
                        "v3" | "3" => Api::V3,
                        _ => {
                            return Err(ActionError::from(format!(
                                "api={v}: expected v2 (XML, the default) or v3 (JSON)"
                            )))
                        }
                    }
                }
                _ => warnings.push(format!("unknown airbrake key `{k}` ignored")),
            }
        }
        if a.apikey.expose().is_empty() {
            warnings
                .push("airbrake alarm without apikey=: the server will refuse its notices".into());
        }
        a.end.hide(&a.apikey);
        Ok(a)
    }

    /// The XML v2.3 notice for `msg`, raised by `alarm`, on machine `u`.
    pub(crate) fn xml_notice(&self, alarm: &str, msg: &[u8], u: &sys::Uname) -> String {
        let r = report(msg);
        let mut w = Writer::new_with_indent(Vec::with_capacity(1024 + msg.len()), b' ', 2);
        // Writing into a Vec cannot fail.
        let _ = self.write_notice(&mut w, alarm, &r, u);
        let mut x = String::from_utf8(w.into_inner()).unwrap_or_default();
        x.push('\n');
        x
    }

    fn write_notice(
        &self,
        w: &mut Writer<Vec<u8>>,
        alarm: &str,
        r: &Report,
        u: &sys::Uname,
    ) -> std::io::Result<()> {
        let version = env!("CARGO_PKG_VERSION");
        w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
        w.create_element("notice")
            .with_attribute(("version", "2.3"))
            .write_inner_content(|w| {
                text(w, "api-key", self.apikey.expose())?;
                w.create_element("notifier").write_inner_content(|w| {
                    text(w, "name", "logalarm")?;
                    text(w, "version", version)?;
                    text(w, "url", NOTIFIER_URL)
                })?;
                w.create_element("error").write_inner_content(|w| {
                    text(w, "class", "RuntimeError")?;
                    text(w, "message", &r.message)?;
                    w.create_element("backtrace").write_inner_content(|w| {
                        for f in &r.frames {
                            w.create_element("line")
                                .with_attribute(("method", xml_safe(&f.method).as_ref()))
                                .with_attribute(("file", xml_safe(&f.file).as_ref()))
                                .with_attribute(("number", "0"))
                                .write_empty()?;
                        }
                        Ok(())
                    })?;
                    Ok(())
                })?;
                w.create_element("request").write_inner_content(|w| {
                    text(w, "url", &format!("logalarm://{}/{alarm}", u.nodename))?;
                    text(w, "component", alarm)?;
                    if let Some(s) = &self.subject {
                        text(w, "action", s)?;
                    }
                    let os_version = format!("{} {}", u.release, u.version);
                    w.create_element("cgi-data").write_inner_content(|w| {
                        for (k, v) in [
                            ("version", version),
                            ("os_sysname", &u.sysname),
                            ("os_version", &os_version),
                            ("machine", &u.machine),
                            ("nodename", &u.nodename),
                        ] {
                            w.create_element("var")
                                .with_attribute(("key", k))
                                .write_text_content(BytesText::new(&xml_safe(v)))?;
                        }
                        Ok(())
                    })?;
                    Ok(())
                })?;
                w.create_element("server-environment")
                    .write_inner_content(|w| {
                        text(w, "environment-name", &self.env)?;
                        text(w, "app-version", version)?;
                        text(w, "hostname", &u.nodename)
                    })?;
                Ok(())
            })?;
        Ok(())
    }

    /// The JSON v3 notice.
    pub(crate) fn json_notice(&self, alarm: &str, msg: &[u8], u: &sys::Uname) -> String {
        let r = report(msg);
        let backtrace: Vec<serde_json::Value> = r
            .frames
            .iter()
            .map(|f| json!({"file": f.file, "function": f.method, "line": 0}))
            .collect();
        json!({
            "errors": [{"type": "RuntimeError", "message": r.message, "backtrace": backtrace}],
            "context": {
                "notifier": {"name": "logalarm", "version": env!("CARGO_PKG_VERSION"), "url": NOTIFIER_URL},
                "environment": self.env,
                "component": alarm,
                "action": self.subject.as_deref().unwrap_or(""),
                "hostname": u.nodename,
                "os": format!("{} {} {}", u.sysname, u.release, u.machine),
                "version": env!("CARGO_PKG_VERSION"),
                "severity": "error",
            },
            "params": {"alarm": alarm},
        })
        .to_string()
    }

    /// Deliver one notice; `Err` when it did not arrive.
    pub(crate) fn fire(
        &mut self,
        alarm: &str,
        msg: &[u8],
        raised: Instant,
        ctx: &Ctx,
    ) -> Result<(), delivery::Failure> {
        let u = sys::uname();
        let (body, headers) = match self.api {
            Api::V2 => (
                self.xml_notice(alarm, msg, &u),
                vec!["Content-Type: text/xml; charset=utf-8".to_string()],
            ),
            Api::V3 => (
                self.json_notice(alarm, msg, &u),
                vec![
                    "Content-Type: application/json".to_string(),
                    format!("Authorization: Bearer {}", self.apikey.expose()),
                ],
            ),
        };
        self.end.http(
            alarm,
            raised,
            &ctx.stopping,
            "POST",
            &headers,
            body.as_bytes(),
        )
    }
}

/// Read a message: a crash report with a backtrace gives frames, anything else is the message.
pub(crate) fn report(msg: &[u8]) -> Report {
    let text = String::from_utf8_lossy(msg);
    let text = text.trim_end_matches(['\n', '\r']);
    if !text.starts_with("*** backtrace of") {
        return Report {
            message: text.to_string(),
            frames: Vec::new(),
        };
    }
    let mut frames = Vec::new();
    let mut first_other = None;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with("***") {
            continue;
        }
        match frame(line) {
            Some(f) => frames.push(f),
            None => {
                if first_other.is_none() {
                    first_other = Some(line.to_string());
                }
            }
        }
    }
    let message = match frames.first() {
        Some(f) => format!("segfault at {} in {}", f.method, f.file),
        None => first_other.unwrap_or_else(|| "segfault".to_string()),
    };
    Report { message, frames }
}

/// `file(method+0x..) [0x..]` → frame. `file() [0x..]` has an empty method.
fn frame(line: &str) -> Option<Frame> {
    let open = line.find('(')?;
    let close = open + line[open..].find(')')?;
    let rest = line[close + 1..].trim_start();
    if !(rest.starts_with("[0x") && rest.ends_with(']')) {
        return None;
    }
    let inner = &line[open + 1..close];
    let method = inner.split('+').next().unwrap_or("");
    Some(Frame {
        file: line[..open].trim().to_string(),
        method: method.to_string(),
    })
}

/// `<name>value</name>`, the value escaped.
fn text(w: &mut Writer<Vec<u8>>, name: &str, value: &str) -> std::io::Result<()> {
    w.create_element(name)
        .write_text_content(BytesText::new(&xml_safe(value)))?;
    Ok(())
}

/// Text XML 1.0 can hold: characters it cannot hold at all (controls other than tab, LF, CR,
/// U+FFFE, U+FFFF) become U+FFFD. quick-xml escapes markup but leaves these as they are.
fn xml_safe(s: &str) -> Cow<'_, str> {
    let bad = |c: char| {
        ((c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r'))
            || c == '\u{FFFE}'
            || c == '\u{FFFF}'
    };
    if !s.chars().any(bad) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| if bad(c) { '\u{FFFD}' } else { c })
            .collect(),
    )
}

/// Escape text for XML 1.0 content and attributes (quick-xml's escaping of `<>&'"`, after
/// [`xml_safe`]): the bodies of XMPP messages.
pub(crate) fn xml(s: &str) -> String {
    quick_xml::escape::escape(xml_safe(s).as_ref()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BT: &[u8] = b"*** backtrace of 4242 ***\n\
        /usr/bin/app(crash_here+0x1d) [0x55d0c0de1234]\n\
        /lib/x86_64-linux-gnu/libc.so.6(__libc_start_main+0xea) [0x7f00aa]\n\
        /usr/bin/app() [0x55d0c0de0042]\n\
        *** end of backtrace ***";

    #[test]
    fn backtraces_become_frames() {
        let r = report(BT);
        assert_eq!(r.message, "segfault at crash_here in /usr/bin/app");
        assert_eq!(r.frames.len(), 3);
        assert_eq!(r.frames[2].method, "");
        let r = report(b"plain <message> & more\n");
        assert_eq!(r.message, "plain <message> & more");
        assert!(r.frames.is_empty());
    }

    #[test]
    fn escaping() {
        assert_eq!(xml("a<b>&\"'\u{1}"), "a&lt;b&gt;&amp;&quot;&apos;\u{FFFD}");
        // The JSON notice carries any message text intact.
        let a = Airbrake::parse("http://e/n;apikey=K;api=v3", &mut Vec::new()).unwrap();
        let j = a.json_notice("x", "a\"\\\n\u{2}".as_bytes(), &sys::uname());
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(v["errors"][0]["message"], "a\"\\\n\u{2}");
    }

    #[test]
    fn notices_hold_the_key_env_and_frames() {
        let a = Airbrake::parse("http://e/n;apikey=K3Y;env=staging", &mut Vec::new()).unwrap();
        let u = sys::uname();
        let x = a.xml_notice("crash", BT, &u);
        assert!(x.contains("<api-key>K3Y</api-key>"));
        assert!(x.contains("<environment-name>staging</environment-name>"));
        assert!(x.contains("method=\"crash_here\" file=\"/usr/bin/app\" number=\"0\""));
        let j = a.json_notice("crash", BT, &u);
        assert!(j.contains("\"function\":\"crash_here\""), "{j}");
        assert!(!j.contains("K3Y"), "the v3 key travels in a header");
        assert!(!format!("{a:?}").contains("K3Y"));
        assert!(Airbrake::parse("ftp://x", &mut Vec::new()).is_err());
        assert!(Airbrake::parse("http://x;api=v9", &mut Vec::new()).is_err());
    }
}

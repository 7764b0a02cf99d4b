//! `airbrake:URL[;key=val...]`: an Airbrake/Errbit error notice per alarm.
//!
//! Default: a notifier API v2.3 XML notice that validates against the v2.3 schema (uWSGI's own
//! does not: a documented deviation). `api=v3`: the JSON notice of Airbrake's v3 API, with the
//! key in an `Authorization: Bearer` header (so it never sits in a URL). A segfault backtrace
//! message (`*** backtrace of PID ***` ... `*** end of backtrace ***`) becomes frames; any other
//! message becomes the error message with an empty backtrace.

use std::time::Instant;

use super::delivery::{self, Endpoint, Secret};
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
    end: Endpoint,
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
    pub(crate) fn parse(arg: &str, warnings: &mut Vec<String>) -> Result<Airbrake, String> {
        let (url, pairs) = delivery::split_args(arg);
        let Some(scheme) = delivery::scheme(&url).filter(|s| s == "http" || s == "https") else {
            return Err(format!(
                "`{}` is not an http:// or https:// URL: expected airbrake:URL[;apikey=KEY...]",
                crate::config::redact_arg("airbrake", &url)
            ));
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
                            return Err(format!(
                                "api={v}: expected v2 (XML, the default) or v3 (JSON)"
                            ))
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
        let mut x = String::with_capacity(1024 + msg.len());
        x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<notice version=\"2.3\">\n");
        x.push_str(&format!(
            "  <api-key>{}</api-key>\n",
            xml(self.apikey.expose())
        ));
        x.push_str(&format!(
            "  <notifier>\n    <name>logalarm</name>\n    <version>{}</version>\n    <url>{}</url>\n  </notifier>\n",
            env!("CARGO_PKG_VERSION"),
            NOTIFIER_URL
        ));
        x.push_str("  <error>\n    <class>RuntimeError</class>\n");
        x.push_str(&format!("    <message>{}</message>\n", xml(&r.message)));
        x.push_str("    <backtrace>\n");
        for f in &r.frames {
            x.push_str(&format!(
                "      <line method=\"{}\" file=\"{}\" number=\"0\"/>\n",
                xml(&f.method),
                xml(&f.file)
            ));
        }
        x.push_str("    </backtrace>\n  </error>\n");
        x.push_str(&format!(
            "  <request>\n    <url>logalarm://{}/{}</url>\n    <component>{}</component>\n",
            xml(&u.nodename),
            xml(alarm),
            xml(alarm)
        ));
        if let Some(s) = &self.subject {
            x.push_str(&format!("    <action>{}</action>\n", xml(s)));
        }
        x.push_str("    <cgi-data>\n");
        for (k, v) in [
            ("version", env!("CARGO_PKG_VERSION")),
            ("os_sysname", &u.sysname),
            ("os_version", &format!("{} {}", u.release, u.version)),
            ("machine", &u.machine),
            ("nodename", &u.nodename),
        ] {
            x.push_str(&format!("      <var key=\"{k}\">{}</var>\n", xml(v)));
        }
        x.push_str("    </cgi-data>\n  </request>\n");
        x.push_str(&format!(
            "  <server-environment>\n    <environment-name>{}</environment-name>\n    <app-version>{}</app-version>\n    <hostname>{}</hostname>\n  </server-environment>\n",
            xml(&self.env),
            env!("CARGO_PKG_VERSION"),
            xml(&u.nodename)
        ));
        x.push_str("</notice>\n");
        x
    }

    /// The JSON v3 notice.
    pub(crate) fn json_notice(&self, alarm: &str, msg: &[u8], u: &sys::Uname) -> String {
        let r = report(msg);
        let frames: Vec<String> = r
            .frames
            .iter()
            .map(|f| {
                format!(
                    "{{\"file\":{},\"function\":{},\"line\":0}}",
                    json(&f.file),
                    json(&f.method)
                )
            })
            .collect();
        format!(
            "{{\"errors\":[{{\"type\":\"RuntimeError\",\"message\":{},\"backtrace\":[{}]}}],\
             \"context\":{{\"notifier\":{{\"name\":\"logalarm\",\"version\":{},\"url\":{}}},\
             \"environment\":{},\"component\":{},\"action\":{},\"hostname\":{},\"os\":{},\
             \"version\":{},\"severity\":\"error\"}},\"params\":{{\"alarm\":{}}}}}",
            json(&r.message),
            frames.join(","),
            json(env!("CARGO_PKG_VERSION")),
            json(NOTIFIER_URL),
            json(&self.env),
            json(alarm),
            json(self.subject.as_deref().unwrap_or("")),
            json(&u.nodename),
            json(&format!("{} {} {}", u.sysname, u.release, u.machine)),
            json(env!("CARGO_PKG_VERSION")),
            json(alarm)
        )
    }

    pub(crate) fn fire(&mut self, alarm: &str, msg: &[u8], raised: Instant, ctx: &Ctx) {
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
        );
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

/// Escape text for XML 1.0 content and attributes; characters XML 1.0 cannot hold at all
/// (controls other than tab, LF, CR) become U+FFFD.
pub(crate) fn xml(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            '\t' | '\n' | '\r' => o.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => o.push('\u{FFFD}'),
            c => o.push(c),
        }
    }
    o
}

/// A JSON string literal.
pub(crate) fn json(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
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
        assert_eq!(json("a\"\\\n\u{2}"), "\"a\\\"\\\\\\n\\u0002\"");
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

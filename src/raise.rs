//! `logalarm raise --socket PATH NAME MESSAGE...`: the client of `--alarm-socket`.
//!
//! Role: raise an alarm in a running logalarm (the standalone `uwsgi.alarm(name, msg)`), for
//! scripts and cron jobs. It binds an abstract address so the server can answer, sends one
//! `NAME MESSAGE` datagram and waits up to 2 s for the answer: exit 0 when the alarm was queued,
//! 1 with the reason otherwise.
//! Invariant: never touches the log path; the server's protocol is `monitor::socket`.

use std::ffi::OsString;
use std::io::Write;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::Path;
use std::time::Duration;

const USAGE: &str = "usage: logalarm raise --socket PATH NAME [MESSAGE...]";

/// Run the client with `args` (after `raise`). Returns the exit status.
pub(crate) fn main(args: &[OsString]) -> i32 {
    let Some((path, name, msg)) = parse(args) else {
        crate::report::plain(format_args!("{USAGE}"));
        return 1;
    };
    let datagram = format!("{name} {msg}");
    match ask(
        "raise",
        Path::new(&path),
        datagram.as_bytes(),
        Duration::from_secs(2),
    ) {
        Some(answer) if answer == "ok\n" => 0,
        Some(why) => {
            crate::report::plain(format_args!("logalarm raise: {}", why.trim_end()));
            1
        }
        None => 1,
    }
}

/// Send `datagram` to the `--alarm-socket` at `path` and wait up to `wait` for the answer;
/// None (after saying why, as `logalarm WHO: ...`) when it cannot be sent or none comes.
fn ask(who: &str, path: &Path, datagram: &[u8], wait: Duration) -> Option<String> {
    let sock = match bind() {
        Ok(s) => s,
        Err(e) => {
            crate::report::plain(format_args!("logalarm {who}: {e}"));
            return None;
        }
    };
    if let Err(e) = sock.send_to(datagram, path) {
        crate::report::plain(format_args!(
            "logalarm {who}: cannot reach {}: {e} (is logalarm running with --alarm-socket {}?)",
            path.display(),
            path.display()
        ));
        return None;
    }
    let _ = sock.set_read_timeout(Some(wait));
    let mut buf = [0u8; 4096];
    match sock.recv(&mut buf) {
        Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
        Err(e) => {
            crate::report::plain(format_args!(
                "logalarm {who}: no answer from {}: {e}",
                path.display()
            ));
            None
        }
    }
}

/// `logalarm reload --socket PATH`: ask a running logalarm to read its configuration again
/// (as SIGHUP does) and print what the reload did. Exit 0 when it was applied or nothing
/// changed, 1 when it was refused or logalarm did not answer within 60 s.
pub(crate) fn reload_main(args: &[OsString]) -> i32 {
    const USAGE: &str = "usage: logalarm reload --socket PATH";
    let mut with_name = args.to_vec();
    with_name.push("reload".into());
    let Some((path, _, _)) = parse(&with_name) else {
        crate::report::plain(format_args!("{USAGE}"));
        return 1;
    };
    let Some(said) = ask(
        "reload",
        Path::new(&path),
        crate::monitor::socket::RELOAD,
        Duration::from_secs(60),
    ) else {
        return 1;
    };
    let said = said.trim_end();
    let _ = writeln!(std::io::stdout(), "{said}");
    if said.starts_with("reloaded") || said.starts_with("configuration unchanged") {
        0
    } else {
        1
    }
}

/// `--socket PATH` (or `--alarm-socket`, `--socket=PATH`), NAME, and the message words.
fn parse(args: &[OsString]) -> Option<(OsString, String, String)> {
    let mut socket = None;
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let s = a.to_string_lossy();
        if s == "--socket" || s == "--alarm-socket" {
            socket = it.next().cloned();
        } else if let Some(v) = s.strip_prefix("--socket=") {
            socket = Some(v.into());
        } else {
            rest.push(s.into_owned());
        }
    }
    let name = rest.first()?.clone();
    Some((socket?, name, rest[1..].join(" ")))
}

/// A socket the server can answer: an abstract address unique to this call, else unbound.
fn bind() -> std::io::Result<UnixDatagram> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let me = format!("logalarm-raise-{}-{nanos:?}", std::process::id());
    SocketAddr::from_abstract_name(me.as_bytes())
        .and_then(|a| UnixDatagram::bind_addr(&a))
        .or_else(|_| UnixDatagram::unbound())
}

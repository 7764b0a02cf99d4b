//! The whole program behind `main`: options → plan → threads → reactor → shutdown.
//!
//! Role: everything `main.rs` would otherwise hold, as a library function the integration tests
//! can reason about; returns the process exit status. Start-up errors are one line on standard
//! error and status 1; a broken log output is one line and status 1 after queued alarms ran.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::Write;
use std::sync::Arc;

use crate::action::{cmd::Children, Ctx};
use crate::config::{self, Config};
use crate::dispatch::{AntiFlood, Dispatcher, Instance};
use crate::monitor::{self, Backlog, FdWatch, Tail};
use crate::output::Output;
use crate::plan;
use crate::reactor::Monitors;
use crate::reactor::{self, End, Signals};
use crate::supervise::{Mules, Pids, Program, Supervisor};

/// Run logalarm with `args` (without the program name). Returns the exit status.
pub fn main(args: Vec<OsString>) -> i32 {
    if args.first().is_some_and(|a| a == "raise") {
        return raise_client(&args[1..]);
    }
    let config = match config::parse_args(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    if config.help {
        print!("{}", config::help_text());
        return 0;
    }
    if config.version {
        println!("logalarm {}", env!("CARGO_PKG_VERSION"));
        return 0;
    }
    for w in &config.warnings {
        eprintln!("logalarm: warning: {w}");
    }
    if config.alarm_list {
        print!("{}", plan::alarm_list(&config));
        let _ = std::io::stdout().flush();
        return match plan::build(&config) {
            Ok(_) => 0,
            Err(e) => {
                eprintln!("{e}");
                1
            }
        };
    }
    let plan = match plan::build(&config) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    for w in &plan.warnings {
        eprintln!("logalarm: warning: {w}");
    }
    match run(&config, plan) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("logalarm: {e}");
            1
        }
    }
}

fn run(config: &Config, plan: plan::Plan) -> std::io::Result<i32> {
    if plan
        .alarms
        .iter()
        .any(|a| matches!(a.action, crate::action::Action::Cmd(_)))
        && !config.binsh.exists()
    {
        eprintln!("invalid binsh: {}: no such file", config.binsh.display());
        return Ok(1);
    }
    let output = Arc::new(match &config.logto {
        Some(p) => Output::file(p).map_err(|e| {
            std::io::Error::new(e.kind(), format!("invalid logto: {}: {e}", p.display()))
        })?,
        None => Output::stdout(),
    });
    let names: HashMap<String, u32> = plan
        .alarms
        .iter()
        .enumerate()
        .map(|(i, a)| (a.name.clone(), i as u32))
        .collect();
    let mut monitors = match monitors(config, &plan, names) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("{e}");
            return Ok(1);
        }
    };
    let mut signals = Signals::install()?;
    let ctx = Ctx {
        output: output.clone(),
        binsh: config.binsh.clone(),
        children: Arc::new(Children::default()),
        stopping: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        pids: Pids::default(),
        mules: Mules::default(),
    };
    let pids = ctx.pids.clone();
    let mules = ctx.mules.clone();
    let instances = plan
        .alarms
        .into_iter()
        .map(|a| Instance {
            name: a.name,
            action: a.action,
            flood: AntiFlood::new(config.alarm_freq),
        })
        .collect();
    let mut dispatcher = Dispatcher::start(
        instances,
        config.alarm_cheap,
        config.alarm_queue,
        config.alarm_msg_size,
        ctx,
    )?;
    let mut programs: Vec<Program> = config
        .attach_daemon
        .iter()
        .map(|d| Program::Daemon(d.value.clone()))
        .collect();
    programs.extend(
        config
            .mule
            .iter()
            .enumerate()
            .map(|(i, m)| Program::Mule(m.value.clone(), i)),
    );
    if !config.command.is_empty() {
        programs.push(Program::Main(config.command.clone()));
    }
    let mut supervisor = Supervisor::new(programs, config.binsh.clone(), pids, mules);
    // With `-- CMD`, standard input belongs to the command (logalarm as an entrypoint).
    let stdin = (!supervisor.has_main()).then_some(0);
    let result = reactor::run(
        &plan.rules,
        stdin,
        reactor::Ctx {
            output: &output,
            dispatcher: &mut dispatcher,
            signals: &mut signals,
            supervisor: &mut supervisor,
            segfault: &plan.segfault,
            grace: config.alarm_grace,
            monitors: &mut monitors,
        },
    );
    if result.is_err() {
        output.stop_retrying();
    }
    let summary = dispatcher.shutdown(config.alarm_grace);
    if summary.unfinished > 0 {
        eprintln!(
            "[uwsgi-alarm] {} action(s) still running after the {}s grace period",
            summary.unfinished,
            config.alarm_grace.as_secs()
        );
    }
    match result {
        Ok(End::Command(code)) => Ok(code),
        Ok(_) => Ok(0),
        Err(e) => {
            eprintln!("logalarm: {e}");
            Ok(1)
        }
    }
}

/// Check and open what the monitors need (descriptors, addresses, sockets): start-up errors.
fn monitors(
    config: &Config,
    plan: &plan::Plan,
    names: HashMap<String, u32>,
) -> Result<Monitors, String> {
    let rank = |n: &str| names.get(n).copied().unwrap_or(0);
    let fds = FdWatch::group(&config.alarm_fds, rank)?;
    let mut backlogs = Vec::new();
    for w in &config.watch_socket {
        let what = monitor::parse_watch(&w.value)
            .map_err(|e| format!("invalid watch-socket: {}: {e}{}", w.value, w.origin))?;
        backlogs.push(Backlog::new(&w.value, what));
    }
    let tails = config
        .tail
        .iter()
        .map(|t| Tail::open(&t.value, config.tail_from_start))
        .collect();
    let mut udp = Vec::new();
    for u in &config.udp {
        let addr = monitor::resolve(&u.value)
            .map_err(|e| format!("invalid udp: {}: {e}{}", u.value, u.origin))?;
        let sock = std::net::UdpSocket::bind(addr).map_err(|e| {
            format!(
                "invalid udp: {}: cannot bind {addr}: {e}{}",
                u.value, u.origin
            )
        })?;
        udp.push((u.value.clone(), sock));
    }
    let mut sockets = Vec::new();
    for s in &config.alarm_socket {
        use std::os::unix::fs::FileTypeExt;
        let p = &s.value;
        if std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_socket()) {
            // A stale socket of an earlier run (a live one would still be bound: bind fails).
            let _ = std::fs::remove_file(p);
        }
        let sock = std::os::unix::net::UnixDatagram::bind(p).map_err(|e| {
            format!(
                "invalid alarm-socket: {}: cannot bind: {e}{}",
                p.display(),
                s.origin
            )
        })?;
        sockets.push((p.clone(), sock));
    }
    Ok(Monitors {
        fds,
        backlogs,
        backlog_alarms: plan.backlog.clone(),
        tails,
        udp,
        sockets,
        names,
    })
}

/// `logalarm raise --socket PATH NAME MESSAGE...`: raise an alarm in a running logalarm through
/// its `--alarm-socket` (the standalone `uwsgi.alarm(name, msg)`). Waits up to 2 s for the
/// answer: exit 0 when the alarm was queued, 1 with the reason otherwise.
fn raise_client(args: &[OsString]) -> i32 {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let usage = "usage: logalarm raise --socket PATH NAME [MESSAGE...]";
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
    let (Some(path), Some(name)) = (socket, rest.first()) else {
        eprintln!("{usage}");
        return 1;
    };
    let msg = rest[1..].join(" ");
    let me = format!(
        "logalarm-raise-{}-{:?}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
    );
    let sock = match SocketAddr::from_abstract_name(me.as_bytes())
        .and_then(|a| UnixDatagram::bind_addr(&a))
    {
        Ok(s) => s,
        Err(_) => match UnixDatagram::unbound() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("logalarm raise: {e}");
                return 1;
            }
        },
    };
    let datagram = format!("{name} {msg}");
    if let Err(e) = sock.send_to(datagram.as_bytes(), &path) {
        eprintln!(
            "logalarm raise: cannot reach {}: {e} (is logalarm running with --alarm-socket {}?)",
            std::path::Path::new(&path).display(),
            std::path::Path::new(&path).display()
        );
        return 1;
    }
    let _ = sock.set_read_timeout(Some(std::time::Duration::from_secs(2)));
    let mut buf = [0u8; 512];
    match sock.recv(&mut buf) {
        Ok(n) if &buf[..n] == b"ok\n" => 0,
        Ok(n) => {
            eprintln!(
                "logalarm raise: {}",
                String::from_utf8_lossy(&buf[..n]).trim_end()
            );
            1
        }
        Err(e) => {
            eprintln!(
                "logalarm raise: no answer from {}: {e}",
                std::path::Path::new(&path).display()
            );
            1
        }
    }
}

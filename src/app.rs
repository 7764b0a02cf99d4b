//! The whole program behind `main`: options → plan → threads → reactor → shutdown.
//!
//! Role: everything `main.rs` would otherwise hold, as a library function the integration tests
//! can reason about; returns the process exit status. Start-up errors are one line on standard
//! error and status 1; a broken log output is one line and status 1 after queued alarms ran.

use std::ffi::OsString;
use std::io::Write;
use std::sync::Arc;

use crate::action::{cmd::Children, Ctx};
use crate::config::{self, Config};
use crate::dispatch::{AntiFlood, Dispatcher, Instance};
use crate::output::Output;
use crate::plan;
use crate::reactor::{self, End, Signals};
use crate::supervise::{Pids, Program, Supervisor};

/// Run logalarm with `args` (without the program name). Returns the exit status.
pub fn main(args: Vec<OsString>) -> i32 {
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
    let mut signals = Signals::install()?;
    let ctx = Ctx {
        output: output.clone(),
        binsh: config.binsh.clone(),
        children: Arc::new(Children::default()),
        stopping: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        pids: Pids::default(),
    };
    let pids = ctx.pids.clone();
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
    if !config.command.is_empty() {
        programs.push(Program::Main(config.command.clone()));
    }
    let mut supervisor = Supervisor::new(programs, config.binsh.clone(), pids);
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

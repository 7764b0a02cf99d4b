//! `logalarm check [--ini FILE] [OPTIONS]`: validate a configuration without running it.
//!
//! Role: everything start-up checks (options, ini files, alarms, rules compiled, references,
//! overflow policies, monitors' addresses), nothing opened or started: no input read, no
//! socket bound, no process run. Prints the effective configuration — every option in the
//! order read, with secrets masked and where it came from (`file:line` or the command line) —,
//! each alarm's type, overflow policy and thread, each rule's engine, translation from PCRE
//! and probed cost, the settings, and the warnings.
//!
//! Exit status, for CI: 0 valid, 2 valid with warnings (an ignored option or section, a rule
//! whose cost is pathological, ...), 1 invalid (the error, naming the option, the value and
//! `file:line`, on standard error).

use std::ffi::OsString;
use std::fmt::Write as _;

use crate::config::{self, Config, Origin};
use crate::plan;

/// Run `check` with `args` (after the word `check`). Returns the exit status.
pub(crate) fn main(args: &[OsString]) -> i32 {
    let c = match config::parse_args(args.iter().cloned()) {
        Ok(c) => c,
        Err(e) => return invalid(e),
    };
    if !c.command.is_empty() {
        // A command to supervise is part of the configuration: checked, never run.
        crate::report::plain(format_args!(
            "logalarm check: the command after -- is not run: {}",
            c.command
                .iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    let built = match plan::build(&c) {
        Ok(p) => p,
        Err(e) => return invalid(e),
    };
    let (text, warnings) = report(&c, &built);
    let mut out = std::io::stdout().lock();
    if std::io::Write::write_all(&mut out, text.as_bytes()).is_err() {
        return 1;
    }
    if warnings > 0 {
        2
    } else {
        0
    }
}

fn invalid(e: impl std::fmt::Display) -> i32 {
    crate::report::plain(format_args!("logalarm check: invalid configuration: {e}"));
    1
}

fn origin(o: &Origin) -> String {
    match o {
        Origin::Cli => "command line".to_string(),
        Origin::Ini { file, line } => format!("{}:{line}", file.display()),
    }
}

/// The report and the number of warnings in it.
fn report(c: &Config, p: &plan::Plan) -> (String, usize) {
    let mut s = String::new();
    let costs = plan::rule_costs(c, true);
    let mut warnings: Vec<String> = c.warnings.clone();
    warnings.extend(p.warnings().iter().cloned());
    for (r, _, cost) in &costs {
        if cost.thrashes {
            let w = format!(
                "{} {} ({}): {}",
                plan::rule_option(r),
                r.raw,
                origin(&r.origin).trim(),
                plan::thrash_text(cost)
            );
            if !warnings.iter().any(|x| x.contains(&*r.raw)) {
                warnings.push(w);
            }
        }
    }
    let _ = writeln!(
        s,
        "logalarm check: the configuration is valid ({} alarm(s), {} rule(s), {} warning(s))",
        c.alarms.len(),
        c.rules.len(),
        warnings.len()
    );
    s.push_str("*** options, in the order read (secrets masked) ***\n");
    let width = c
        .trace
        .iter()
        .map(|t| t.option.len() + t.value().chars().count() + 3)
        .max()
        .unwrap_or(0)
        .min(72);
    for t in &c.trace {
        let opt = format!("{} = {}", t.option, t.value());
        let _ = writeln!(s, "{opt:<width$}  # {}", origin(&t.origin));
    }
    s.push_str("*** alarms ***\n");
    let policies = plan::unique_names(c).and_then(|n| plan::overflow_policies(c, &n));
    for (i, a) in c.alarms.iter().enumerate() {
        let policy = policies.as_ref().map_or("?", |p| p[i].name());
        let planned = p.alarms.iter().find(|x| x.name == a.name);
        let shown = planned.map_or(String::new(), |x| {
            x.policy.shown.iter().map(|o| format!("; {o}")).collect()
        });
        let lane = match planned {
            Some(x) if !p.dispatch.cheap && x.action.blocking() => "its own thread",
            Some(_) => "the main alarm thread",
            None => "?",
        };
        let _ = writeln!(
            s,
            "{}  (overflow: {policy}; runs on {lane}{shown})  # {}",
            a.redacted(),
            origin(&a.origin)
        );
    }
    s.push_str("*** rules ***\n");
    for r in &c.rules {
        let _ = writeln!(
            s,
            "{} {}  # {}",
            plan::rule_option(r),
            r.raw,
            origin(&r.origin)
        );
        if let Some(how) = plan::runs_on(c, r) {
            let _ = writeln!(s, "    {how}");
        }
        if let Some((_, engine, cost)) = costs.iter().find(|(x, _, _)| std::ptr::eq(*x, r)) {
            let verdict = if cost.thrashes {
                "PATHOLOGICAL (see the warnings)".to_string()
            } else {
                format!("ok, {:.0} MB/s on its own bytes", cost.mb_per_s)
            };
            let _ = writeln!(s, "    engine: {engine}; cost: {verdict}");
        }
    }
    // How the rules without long literals are found: an operator learns which rule sends the
    // automaton over every byte (PERF.md "thirty-ninth run": one such rule cost sagan-rules'
    // set 46 % of its time).
    if let Some((n, by, every)) = p.rules().candidate_search() {
        match every {
            None => {
                let _ = writeln!(
                    s,
                    "({n} rule(s) without long literals: their candidate lines are found by {})",
                    by.join(" and ")
                );
            }
            Some(because) => {
                let _ = writeln!(
                    s,
                    "({n} rule(s) without long literals: the automaton runs over every byte for them, about 2 ns a byte, because these have no literal, no anchor at a line's start or end and no rare window of byte classes:"
                );
                for r in because.iter().filter_map(|&i| c.rules.get(i as usize)) {
                    let _ = writeln!(
                        s,
                        "    {} {}  # {}",
                        plan::rule_option(r),
                        r.raw,
                        origin(&r.origin)
                    );
                }
                s.push_str(")\n");
            }
        }
    }
    let d = &p.dispatch;
    let _ = writeln!(
        s,
        "*** settings ***\nalarm-freq {} s; alarm-msg-size {}; log-master-bufsize {}; alarm-queue {}; alarm-grace {} s; alarm-cheap {}; rule-syntax {}",
        d.freq.as_secs_f64(),
        d.msg_size,
        c.log_master_bufsize,
        d.queue,
        d.grace.as_secs_f64(),
        if d.cheap { "yes" } else { "no" },
        match c.rule_syntax {
            config::RuleSyntax::Pcre => "pcre",
            _ => "rust",
        }
    );
    if !warnings.is_empty() {
        s.push_str("*** warnings ***\n");
        for w in &warnings {
            let _ = writeln!(s, "{w}");
        }
    }
    (s, warnings.len())
}

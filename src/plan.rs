//! From options to a runnable plan: alarms resolved, rules compiled, cross-references checked.
//!
//! Role: every start-up error that needs more than one option (unknown alarm names, duplicate
//! names, unknown or unavailable types, invalid regexes) is found here, with the option, the
//! value (secrets masked) and the file:line. Alarm ids are ranks: alarms named by rules come
//! first, in the order the configuration first names them, so the matcher's bitset order is the
//! order alarms are raised in. Deviations from uWSGI (documented in README): an unknown alarm
//! name is an error in every option that names one, and a duplicate alarm name is an error.

use std::collections::HashMap;

use crate::action::Action;
use crate::config::{Config, ConfigError, Origin};
use crate::rules::{Rule, RuleSet};

/// One alarm, resolved.
#[derive(Debug)]
pub struct AlarmPlan {
    pub name: String,
    /// `NAME TYPE:ARG` with secrets masked.
    pub display: String,
    pub action: Action,
}

/// The runnable configuration.
#[derive(Debug)]
pub struct Plan {
    /// Indexed by alarm id.
    pub alarms: Vec<AlarmPlan>,
    pub rules: RuleSet,
    /// Start-up warnings (unknown action keys).
    pub warnings: Vec<String>,
    /// Ranks of the `alarm-segfault` alarms.
    pub segfault: Vec<u32>,
    /// Ranks of the `alarm-backlog` alarms.
    pub backlog: Vec<u32>,
}

/// Check and compile a configuration.
pub fn build(c: &Config) -> Result<Plan, ConfigError> {
    // Alarms: names unique, types known and available.
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    for (i, a) in c.alarms.iter().enumerate() {
        if let Some(&first) = by_name.get(a.name.as_str()) {
            return Err(ConfigError::new(
                format!(
                    "invalid alarm: {}: alarm \"{}\" is already defined ({})",
                    a.redacted(),
                    a.name,
                    c.alarms[first].redacted()
                ),
                &a.origin,
            ));
        }
        by_name.insert(&a.name, i);
    }
    let check_name = |opt: &str, name: &str, value: &str, o: &Origin| {
        if by_name.contains_key(name) {
            Ok(())
        } else {
            Err(ConfigError::new(
                format!("invalid {opt}: {value}: no alarm named \"{name}\" (define it with --alarm \"{name} TYPE:ARG\")"),
                o,
            ))
        }
    };
    for r in &c.rules {
        for n in &r.names {
            check_name(
                if r.negate {
                    "not-log-alarm"
                } else {
                    "log-alarm"
                },
                n,
                &r.raw,
                &r.origin,
            )?;
        }
    }
    for s in c.alarm_backlog.iter() {
        check_name("alarm-backlog", &s.value, &s.value, &s.origin)?;
    }
    for s in c.alarm_segfault.iter() {
        check_name("alarm-segfault", &s.value, &s.value, &s.origin)?;
    }
    for d in &c.alarm_fds {
        check_name("alarm-fd", &d.name, &d.name, &d.origin)?;
    }
    if let (Some(b), true) = (c.alarm_backlog.first(), c.watch_socket.is_empty()) {
        return Err(ConfigError::new(
            format!(
                "invalid alarm-backlog: {}: no listen queue to watch (add --watch-socket HOST:PORT or PATH)",
                b.value
            ),
            &b.origin,
        ));
    }

    // Ranks: first named by a rule first, then the rest in definition order.
    let mut rank_of: Vec<Option<u32>> = vec![None; c.alarms.len()];
    let mut order: Vec<usize> = Vec::with_capacity(c.alarms.len());
    let named = c.rules.iter().flat_map(|r| r.names.iter());
    for n in named {
        let i = by_name[n.as_str()];
        if rank_of[i].is_none() {
            rank_of[i] = Some(order.len() as u32);
            order.push(i);
        }
    }
    for (i, r) in rank_of.iter_mut().enumerate() {
        if r.is_none() {
            *r = Some(order.len() as u32);
            order.push(i);
        }
    }
    let mut alarms = Vec::with_capacity(order.len());
    let mut warnings = Vec::new();
    for &i in &order {
        let a = &c.alarms[i];
        let mut w = Vec::new();
        let action = Action::parse(&a.kind, &a.arg, &mut w).map_err(|why| {
            ConfigError::new(format!("invalid alarm: {}: {why}", a.redacted()), &a.origin)
        })?;
        if let Action::Mule(m) = &action {
            if c.mule.is_empty() || m.n > c.mule.len() {
                return Err(ConfigError::new(
                    format!(
                        "invalid alarm: {}: there {} {} mule(s) (start them with --mule \"CMD\")",
                        a.redacted(),
                        if c.mule.len() == 1 { "is" } else { "are" },
                        c.mule.len()
                    ),
                    &a.origin,
                ));
            }
        }
        if matches!(action, Action::Signal(_)) && c.attach_daemon.is_empty() && c.command.is_empty()
        {
            return Err(ConfigError::new(
                format!(
                    "invalid alarm: {}: signal alarms signal supervised processes, and there is none (add --attach-daemon \"CMD\" or -- CMD ARGS...)",
                    a.redacted()
                ),
                &a.origin,
            ));
        }
        warnings.extend(
            w.into_iter()
                .map(|w| format!("alarm {}: {w}{}", a.redacted(), a.origin)),
        );
        alarms.push(AlarmPlan {
            name: a.name.clone(),
            display: a.redacted(),
            action,
        });
    }
    let rank = |n: &str| rank_of[by_name[n]].unwrap_or(0);
    let patterns: Vec<(&str, Rule)> = c
        .rules
        .iter()
        .map(|r| {
            (
                r.regex.as_str(),
                Rule {
                    alarms: r.names.iter().map(|n| rank(n)).collect(),
                    negate: r.negate,
                },
            )
        })
        .collect();
    let rules = RuleSet::new(&patterns, alarms.len(), c.log_master_bufsize).map_err(|(i, e)| {
        match c.rules.get(i) {
            Some(r) => ConfigError::new(
                format!(
                    "invalid {}: {}: {}",
                    if r.negate {
                        "not-log-alarm"
                    } else {
                        "log-alarm"
                    },
                    r.raw,
                    e
                ),
                &r.origin,
            ),
            None => ConfigError::new(format!("invalid log-alarm: {e}"), &Origin::Cli),
        }
    })?;
    let segfault = c.alarm_segfault.iter().map(|s| rank(&s.value)).collect();
    let backlog = c.alarm_backlog.iter().map(|s| rank(&s.value)).collect();
    Ok(Plan {
        alarms,
        rules,
        warnings,
        segfault,
        backlog,
    })
}

/// `--alarm-list`: the types, then the configured alarms (secrets masked).
pub fn alarm_list(c: &Config) -> String {
    let mut s = String::from("*** logalarm alarm types ***\n");
    for (name, built, doc) in crate::action::TYPES {
        s.push_str(&format!(
            "{name}{}\t{doc}\n",
            if *built {
                ""
            } else {
                " (not in this build yet)"
            }
        ));
    }
    s.push_str("*** configured alarms ***\n");
    for a in &c.alarms {
        s.push_str(&a.redacted());
        s.push('\n');
    }
    s.push_str("*** log-alarm rules ***\n");
    for r in &c.rules {
        s.push_str(&format!(
            "{} {}\n",
            if r.negate {
                "not-log-alarm"
            } else {
                "log-alarm"
            },
            r.raw
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_args;

    fn plan(args: &[&str]) -> Result<Plan, ConfigError> {
        build(&parse_args(args.iter().map(Into::into)).unwrap())
    }

    #[test]
    fn uwsgi_error_messages() {
        let e = plan(&["--alarm", "a foo:bar"]).unwrap_err().to_string();
        assert!(
            e.starts_with("invalid alarm: a foo:bar: unknown alarm type `foo`"),
            "{e}"
        );
        let e = plan(&["--alarm", "a log:", "--log-alarm", "a,zz TERRIBLE"])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("invalid log-alarm: a,zz TERRIBLE: no alarm named \"zz\""),
            "{e}"
        );
        let e = plan(&["--alarm", "a log:", "--not-log-alarm", "zz x"])
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("invalid not-log-alarm: zz x"), "{e}");
        let e = plan(&["--alarm", "a log:", "--log-alarm", "a (unclosed"])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("invalid log-alarm: a (unclosed: regex error at offset 0"),
            "{e}"
        );
        let e = plan(&["--alarm", "a log:", "--alarm", "a cmd:x"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("already defined"), "{e}");
        let e = plan(&["--alarm", "a log:", "--alarm-segfault", "zz"])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("invalid alarm-segfault: zz: no alarm named"),
            "{e}"
        );
        let e = plan(&["--alarm", "m curl:smtp://h;auth_pass=hunter2"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs mail_to") && !e.contains("hunter2"), "{e}");
    }

    #[test]
    fn ranks_follow_first_naming() {
        let p = plan(&[
            "--alarm",
            "z log:",
            "--alarm",
            "b log:",
            "--alarm",
            "a log:",
            "--log-alarm",
            "a,b x",
            "--not-log-alarm",
            "z y",
        ])
        .unwrap();
        let names: Vec<&str> = p.alarms.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, vec!["a", "b", "z"]);
    }

    #[test]
    fn list_masks_secrets() {
        let c = parse_args(
            [
                "--alarm",
                "m curl:smtp://u:pw@h;auth_pass=hunter2",
                "--alarm",
                "x xmpp:a@b;sekret;c@d",
            ]
            .iter()
            .map(Into::into),
        )
        .unwrap();
        let l = alarm_list(&c);
        assert!(
            !l.contains("hunter2") && !l.contains("sekret") && !l.contains(":pw@"),
            "{l}"
        );
        assert!(l.contains("cmd") && l.contains("airbrake"));
    }
}

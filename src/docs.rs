//! `logalarm man` and `logalarm completions SHELL`: the man page and the shell completions,
//! generated from the one option table ([`crate::config::OPTIONS`]) so they never drift from
//! `--help`. `scripts/package.sh` writes them into the `.deb`.

use std::fmt::Write as _;

use crate::config::{Arity, OPTIONS};

/// The subcommands: (name, synopsis, what it does).
const COMMANDS: [(&str, &str, &str); 6] = [
    (
        "replay",
        "FILE... [OPTIONS] [--json] [--summary] [--report FILE.html] [--execute] [--rate N] [--time-format FMT] [--year YYYY]",
        "run the alarm path over historical logs in the log's own time and print what would fire and what anti-flood would suppress; no action runs unless --execute",
    ),
    (
        "check",
        "[OPTIONS]",
        "validate a configuration without running it: the effective options with where each came from, alarms, rules and their cost; exit 0 valid, 2 with warnings, 1 invalid",
    ),
    (
        "raise",
        "--socket PATH NAME [MESSAGE...]",
        "raise alarm NAME in a running logalarm through its --alarm-socket",
    ),
    (
        "reload",
        "--socket PATH",
        "make a running logalarm (started with --alarm-socket PATH) read its configuration again, as SIGHUP does, and print the outcome",
    ),
    ("man", "", "print this manual page (troff)"),
    (
        "completions",
        "bash|zsh|fish",
        "print the shell completions",
    ),
];

/// Run `man` or `completions`. Returns the exit status.
pub(crate) fn main(cmd: &str, args: &[std::ffi::OsString]) -> i32 {
    let text = match cmd {
        "man" => man(),
        _ => match args.first().and_then(|a| a.to_str()) {
            Some("bash") => bash(),
            Some("zsh") => zsh(),
            Some("fish") => fish(),
            other => {
                crate::report::plain(format_args!(
                    "logalarm completions: {}: expected bash, zsh or fish",
                    other.unwrap_or("(none)")
                ));
                return 1;
            }
        },
    };
    let mut out = std::io::stdout().lock();
    match std::io::Write::write_all(&mut out, text.as_bytes()) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

/// Escape text for troff: backslashes, and a leading dot or quote.
fn roff(s: &str) -> String {
    let s = s.replace('\\', "\\e").replace('-', "\\-");
    if s.starts_with('.') || s.starts_with('\'') {
        format!("\\&{s}")
    } else {
        s
    }
}

/// The manual page, section 1.
pub(crate) fn man() -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        ".TH LOGALARM 1 \"\" \"logalarm {}\" \"User Commands\"",
        env!("CARGO_PKG_VERSION")
    );
    s.push_str(".SH NAME\nlogalarm \\- raise uWSGI\\-style alarms on high\\-volume log streams\n");
    s.push_str(".SH SYNOPSIS\n.B app 2>&1 | logalarm\n[\\fIOPTIONS\\fR]\n.br\n.B logalarm\n[\\fIOPTIONS\\fR] \\-\\- \\fICMD\\fR [\\fIARGS\\fR...]\n");
    for (name, syn, _) in COMMANDS {
        let _ = writeln!(s, ".br\n.B logalarm {name}");
        if !syn.is_empty() {
            let _ = writeln!(s, "{}", roff(syn));
        }
    }
    s.push_str(
        ".SH DESCRIPTION\nlogalarm reads log lines (standard input, supervised processes, followed files, UDP), \
         passes every line to its output unchanged, and raises named alarms when lines match its rules, \
         exactly as uWSGI's alarm subsystem does: the same option names on the command line and in the \
         [uwsgi] section of ini files, the same PCRE rules, the same anti\\-flood. Actions run off the log \
         path, so a slow or failing action never delays a line.\n",
    );
    s.push_str(".SH COMMANDS\n");
    for (name, syn, what) in COMMANDS {
        let _ = writeln!(s, ".TP\n.B {name} {}\n{}", roff(syn), roff(what));
    }
    s.push_str(".SH OPTIONS\nEvery option also works as \\fIname = value\\fR in an ini file's [uwsgi] or [logalarm] section.\n");
    for d in OPTIONS {
        let value = if d.value_name.is_empty() {
            String::new()
        } else {
            format!(" \\fI{}\\fR", roff(d.value_name))
        };
        let _ = writeln!(s, ".TP\n.B \\-\\-{}{value}", roff(d.name));
        let _ = writeln!(s, "{}", roff(d.doc));
        if !d.aliases.is_empty() {
            let a: Vec<String> = d
                .aliases
                .iter()
                .map(|a| format!("\\-\\-{}", roff(a)))
                .collect();
            let _ = writeln!(s, ".br\nAliases: {}", a.join(", "));
        }
    }
    s.push_str(
        ".SH SIGNALS\n.TP\n.B SIGTERM, SIGINT\nstop: supervised processes get the signal and alarm\\-grace to end, queued alarms run, every line read is written.\n\
         .TP\n.B SIGHUP\nreopen \\-\\-logto (logrotate), re\\-read the ini files and apply the new rules and alarms (an invalid configuration is refused and the running one kept), and forward SIGHUP to supervised processes.\n\
         .TP\n.B SIGUSR1, SIGUSR2\nforwarded to supervised processes.\n",
    );
    s.push_str(
        ".SH EXIT STATUS\n0 when the input ended and every alarm was accounted for; 1 on a start\\-up error \
         (one line naming the option, the value and where it came from) or a broken output; \
         the status of \\fICMD\\fR when it is supervised.\n",
    );
    s.push_str(".SH FILES\n.TP\n.I /etc/logalarm/logalarm.ini\nthe configuration the packaged systemd unit reads.\n");
    s.push_str(".SH SEE ALSO\n.BR uwsgi (1),\n.BR logrotate (8),\n.BR systemd.exec (5)\n");
    s
}

/// Every long option, with `--`.
fn flags() -> Vec<String> {
    OPTIONS
        .iter()
        .flat_map(|d| std::iter::once(d.name).chain(d.aliases.iter().copied()))
        .map(|n| format!("--{n}"))
        .collect()
}

/// Options that take a file or directory.
fn takes_path(name: &str) -> bool {
    matches!(
        name,
        "ini" | "logto" | "tail" | "alarm-spool" | "binsh" | "alarm-socket"
    )
}

pub(crate) fn bash() -> String {
    let commands: Vec<&str> = COMMANDS.iter().map(|c| c.0).collect();
    let paths: Vec<String> = OPTIONS
        .iter()
        .filter(|d| takes_path(d.name))
        .map(|d| format!("--{}", d.name))
        .collect();
    format!(
        "# bash completion for logalarm (generated by `logalarm completions bash`)\n\
         _logalarm() {{\n    \
             local cur prev\n    \
             cur=\"${{COMP_WORDS[COMP_CWORD]}}\"\n    \
             prev=\"${{COMP_WORDS[COMP_CWORD-1]}}\"\n    \
             case \"$prev\" in\n        \
                 {}) COMPREPLY=( $(compgen -f -- \"$cur\") ); return ;;\n    \
             esac\n    \
             if [ \"$COMP_CWORD\" -eq 1 ] && [[ \"$cur\" != -* ]]; then\n        \
                 COMPREPLY=( $(compgen -W \"{}\" -- \"$cur\") ); return\n    \
             fi\n    \
             if [[ \"$cur\" == -* ]]; then\n        \
                 COMPREPLY=( $(compgen -W \"{} --help --version\" -- \"$cur\") ); return\n    \
             fi\n    \
             COMPREPLY=( $(compgen -f -- \"$cur\") )\n\
         }}\n\
         complete -F _logalarm logalarm\n",
        paths.join("|"),
        commands.join(" "),
        flags().join(" ")
    )
}

pub(crate) fn zsh() -> String {
    let mut s = String::from("#compdef logalarm\n# zsh completion for logalarm (generated by `logalarm completions zsh`)\n_logalarm() {\n  local -a opts\n  opts=(\n");
    for d in OPTIONS {
        let doc = d
            .doc
            .replace('\'', "'\\''")
            .replace('[', "\\[")
            .replace(']', "\\]")
            .replace(':', "\\:");
        let action = match (d.arity, takes_path(d.name)) {
            (Arity::Flag, _) => String::new(),
            (_, true) => ":file:_files".to_string(),
            _ => format!(":{}:", d.value_name.replace([':', '\''], "")),
        };
        for n in std::iter::once(d.name).chain(d.aliases.iter().copied()) {
            let _ = writeln!(s, "    '--{n}[{doc}]{action}'");
        }
    }
    s.push_str("  )\n  _arguments -s $opts '1::command:(");
    s.push_str(&COMMANDS.iter().map(|c| c.0).collect::<Vec<_>>().join(" "));
    s.push_str(")' '*:file:_files'\n}\n_logalarm \"$@\"\n");
    s
}

pub(crate) fn fish() -> String {
    let mut s =
        String::from("# fish completion for logalarm (generated by `logalarm completions fish`)\n");
    for (name, _, what) in COMMANDS {
        let _ = writeln!(
            s,
            "complete -c logalarm -n '__fish_use_subcommand' -a {name} -d '{}'",
            what.replace('\'', "\\'")
        );
    }
    for d in OPTIONS {
        for n in std::iter::once(d.name).chain(d.aliases.iter().copied()) {
            let req = match (d.arity, takes_path(d.name)) {
                (Arity::Flag, _) => "",
                (_, true) => " -r -F",
                _ => " -r",
            };
            let _ = writeln!(
                s,
                "complete -c logalarm -l {n}{req} -d '{}'",
                d.doc.replace('\'', "\\'")
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_option_is_in_the_man_page_and_completions() {
        let (m, b, z, f) = (man(), bash(), zsh(), fish());
        for d in OPTIONS {
            assert!(
                m.contains(&format!(".B \\-\\-{}", roff(d.name))),
                "{}",
                d.name
            );
            assert!(
                b.contains(&format!("--{} ", d.name)) || b.contains(&format!("--{}\"", d.name))
            );
            assert!(z.contains(&format!("'--{}[", d.name)), "{}", d.name);
            assert!(f.contains(&format!("-l {}", d.name)), "{}", d.name);
        }
    }
}

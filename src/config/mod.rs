//! Configuration: one table of uWSGI option names feeding both the command line and ini files.
//!
//! Role: turn `--name value` arguments and `--ini` files into one [`Config`] whose lists keep the
//! order options were given in, command line and ini interleaved. Invariant: every entry remembers
//! where it came from ([`Origin`]) so that every error names the option, the offending value and,
//! for ini files, the file and line. Syntax is checked here (what a single option value must look
//! like); cross-references (unknown alarm names, regexes) are checked by [`crate::plan`].
//! Rejected alternative: clap — uWSGI's option grammar (aliases, ini files as argument streams,
//! optional boolean values) fits one small table better than a derive macro.

pub(crate) mod ini;
mod stream;

use std::ffi::OsString;
use std::fmt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Where an option value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The command line.
    Cli,
    /// An ini file, 1-based line.
    Ini { file: Arc<Path>, line: usize },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Cli => Ok(()),
            Origin::Ini { file, line } => write!(f, " (in {}:{})", file.display(), line),
        }
    }
}

/// A start-up error: one line, naming the option, the value and what is wrong.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{message}{origin}")]
pub struct ConfigError {
    pub message: String,
    pub origin: Origin,
}

/// Longest error message kept whole: a 10 MB rule must not become a 10 MB error line.
const MAX_MESSAGE: usize = 1024;

impl ConfigError {
    /// An error about `origin`; a message over `MAX_MESSAGE` (1 KiB) bytes keeps its head and its
    /// tail (the reason is at the end) around a note of how much was cut.
    pub fn new(message: impl Into<String>, origin: &Origin) -> Self {
        let mut message = message.into();
        if message.len() > MAX_MESSAGE {
            let head = floor_char_boundary(&message, MAX_MESSAGE / 2);
            let tail = ceil_char_boundary(&message, message.len() - MAX_MESSAGE / 2);
            message = format!(
                "{} […{} bytes cut…] {}",
                &message[..head],
                tail - head,
                &message[tail..]
            );
        }
        ConfigError {
            message,
            origin: origin.clone(),
        }
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_char_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// `--alarm NAME TYPE:ARG`, split but not yet interpreted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmDef {
    pub name: String,
    pub kind: String,
    pub arg: String,
    pub origin: Origin,
}

impl AlarmDef {
    /// The definition as the user wrote it, with secrets masked.
    pub fn redacted(&self) -> String {
        redact_value(&format!("{} {}:{}", self.name, self.kind, self.arg))
    }
}

/// `--log-alarm` / `--not-log-alarm NAME[,NAME...] REGEX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleDef {
    pub names: Vec<String>,
    /// The regex: [`RuleDef::regex`].
    regex: RegexText,
    pub negate: bool,
    /// The whole option value, for error messages.
    pub raw: Arc<str>,
    pub origin: Origin,
    /// `log-alarm-json` / `log-alarm-logfmt`: the fields (then `regex` is the candidate
    /// pattern the automaton runs, and the fields confirm).
    pub fields: Option<crate::rules::fields::FieldSpec>,
    /// `alarm-multiline`: a continuation rule (its lines join the event a rule of the same
    /// alarm started; alone they raise nothing).
    pub continuation: bool,
}

/// Where a rule's regex is.
// PERF: a rule's regex is the end of its option's text, not a copy of it (Debian's 2,101
// rules: 0.4 MB of fresh memory less, ~100 page faults, before the first line out).
#[derive(Debug, Clone, PartialEq, Eq)]
enum RegexText {
    /// `raw` from this byte on.
    At(usize),
    /// A pattern of its own (a field rule's candidate pattern).
    Own(String),
}

impl RuleDef {
    /// The regex the rule's automaton runs: as written after the alarm names, or a field
    /// rule's candidate pattern.
    pub fn regex(&self) -> &str {
        match &self.regex {
            RegexText::At(at) => self.raw.get(*at..).unwrap_or(""),
            RegexText::Own(s) => s,
        }
    }
}

/// The dialect of `log-alarm` rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RuleSyntax {
    /// uWSGI's: PCRE without UTF mode, translated for the automaton (`rules::pcre`).
    #[default]
    Pcre,
    /// Rust's `regex` syntax, byte-based, as written.
    Rust,
}

/// `--alarm-fd NAME FD[:BYTES] MESSAGE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmFdDef {
    pub name: String,
    pub fd: i32,
    /// `:BYTES`; `None` when absent or 0: 1, or 8 for an eventfd.
    pub bytes: Option<usize>,
    pub message: String,
    pub origin: Origin,
}

/// A value with its origin (monitor names, paths, commands).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sourced<T> {
    pub value: T,
    pub origin: Origin,
}

/// Everything the options said, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub alarms: Vec<AlarmDef>,
    pub rules: Vec<RuleDef>,
    pub alarm_fds: Vec<AlarmFdDef>,
    pub alarm_backlog: Vec<Sourced<String>>,
    pub alarm_segfault: Vec<Sourced<String>>,
    pub alarm_cheap: bool,
    pub alarm_freq: Duration,
    pub alarm_msg_size: usize,
    pub alarm_list: bool,
    /// `--check-rules`: print every rule's cost and exit.
    pub check_rules: bool,
    /// `rules-cache`: where start-up keeps what it learns of a large rule set (None: the
    /// default directory; `off`: no cache).
    pub rules_cache: Option<String>,
    /// `--rule-syntax pcre|rust`.
    pub rule_syntax: RuleSyntax,
    pub alarm_grace: Duration,
    pub alarm_queue: usize,
    pub log_master_bufsize: usize,
    pub binsh: PathBuf,
    /// `env`/`unenv`, in order: a variable set (`Some`) or unset (`None`) in logalarm's own
    /// environment at start-up, so every child (`cmd:` actions, daemons, mules, `-- CMD`)
    /// inherits it, as uWSGI's children do.
    pub env: Vec<(String, Option<String>)>,
    pub logto: Option<PathBuf>,
    pub attach_daemon: Vec<Sourced<String>>,
    pub tail: Vec<Sourced<PathBuf>>,
    pub tail_from_start: bool,
    /// `--tail-state FILE`: where each followed file was passed on to, kept across restarts.
    pub tail_state: Option<PathBuf>,
    /// `--logto` may be a symbolic link (off: one logalarm did not create is refused).
    pub logto_follow_symlinks: bool,
    pub udp: Vec<Sourced<String>>,
    /// `--udp-allow`: networks `--udp` accepts datagrams from, as written.
    pub udp_allow: Vec<Sourced<String>>,
    /// `--udp-sender`: prefix each datagram line with its sender.
    pub udp_sender: bool,
    pub watch_socket: Vec<Sourced<String>>,
    pub mule: Vec<Sourced<String>>,
    pub alarm_socket: Vec<Sourced<PathBuf>>,
    /// `--alarm-overflow "NAME[,NAME...] POLICY"`, as written.
    pub alarm_overflow: Vec<Sourced<String>>,
    /// `--alarm-template "NAME[,NAME...] TEMPLATE"`, as written.
    pub alarm_template: Vec<Sourced<String>>,
    /// `--alarm-template-json "NAME[,NAME...] TEMPLATE"`, as written.
    pub alarm_template_json: Vec<Sourced<String>>,
    /// `--alarm-key "NAME[,NAME...] TEMPLATE"`, as written.
    pub alarm_key: Vec<Sourced<String>>,
    /// `--alarm-threshold "NAME[,NAME...] COUNT SECONDS"`, as written.
    pub alarm_threshold: Vec<Sourced<String>>,
    /// `--alarm-digest "NAME[,NAME...] SECONDS"`, as written.
    pub alarm_digest: Vec<Sourced<String>>,
    /// `--alarm-absence "NAME[,NAME...] SECONDS"`, as written.
    pub alarm_absence: Vec<Sourced<String>>,
    /// `--alarm-cluster redis://HOST:PORT/PREFIX`: decisions shared by a fleet.
    pub alarm_cluster: Option<Sourced<String>>,
    /// `--nats URL,STREAM,CONSUMER[,key=value...]`: JetStream inputs.
    pub nats: Vec<Sourced<String>>,
    /// `--nats-out URL,SUBJECT[,key=value...]`: publish the passed-through lines.
    pub nats_out: Option<Sourced<String>>,
    /// `--alarm-keys-max`.
    pub alarm_keys_max: usize,
    /// `--alarm-spool DIR`: where `spool` alarms keep what waits for delivery.
    pub alarm_spool: Option<PathBuf>,
    /// Most bytes each alarm's spool holds.
    pub alarm_spool_max_size: u64,
    /// Oldest alarm a spool still delivers.
    pub alarm_spool_max_age: Duration,
    /// `-- CMD ARGS...`
    pub command: Vec<OsString>,
    pub help: bool,
    pub version: bool,
    /// Non-fatal remarks (ignored uWSGI options in ini files), printed once at start-up.
    pub warnings: Vec<String>,
    /// `--metrics`: the Prometheus endpoint's address.
    pub metrics: Option<Sourced<String>>,
    /// `--stats`: the stats server's address; `--stats-http`: answer it as HTTP.
    pub stats: Option<Sourced<String>>,
    pub stats_http: bool,
    /// Every option as it was read, in order (for `logalarm check`): its name, its value
    /// after expansion with secrets masked, and where it came from.
    pub trace: Vec<Traced>,
}

/// One option as read (see [`Config::trace`]).
#[derive(Clone, PartialEq, Eq)]
pub struct Traced {
    pub option: &'static str,
    /// The value as written: shown only masked, by [`Traced::value`].
    // PERF: masked when shown, not when read (Debian's 2,101 rules: 11 M instructions, a
    // tenth of a cold start's serial work, for a listing only `check` prints).
    written: Arc<str>,
    pub origin: Origin,
}

impl Traced {
    /// The value with its secrets masked (never the secret itself).
    pub fn value(&self) -> String {
        // An `env` value may be a token a `cmd:` action reads: never shown.
        if self.option == "env" {
            if let Some((name, _)) = self.written.split_once('=') {
                return format!("{name}=***");
            }
        }
        redact_value(&self.written)
    }

    /// Whether two options read the same value (secrets compared, never shown).
    pub(crate) fn same_value(&self, other: &Traced) -> bool {
        self.written == other.written
    }
}

impl std::fmt::Debug for Traced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Traced")
            .field("option", &self.option)
            .field("value", &self.value())
            .field("origin", &self.origin)
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            alarms: Vec::new(),
            rules: Vec::new(),
            alarm_fds: Vec::new(),
            alarm_backlog: Vec::new(),
            alarm_segfault: Vec::new(),
            alarm_cheap: false,
            alarm_freq: Duration::from_secs(3),
            alarm_msg_size: 8192,
            alarm_list: false,
            check_rules: false,
            rules_cache: None,
            rule_syntax: RuleSyntax::Pcre,
            alarm_grace: Duration::from_secs(5),
            alarm_queue: 8192,
            log_master_bufsize: 8192,
            binsh: PathBuf::from("/bin/sh"),
            env: Vec::new(),
            logto: None,
            attach_daemon: Vec::new(),
            tail: Vec::new(),
            tail_from_start: false,
            tail_state: None,
            logto_follow_symlinks: false,
            udp: Vec::new(),
            udp_allow: Vec::new(),
            udp_sender: false,
            watch_socket: Vec::new(),
            mule: Vec::new(),
            alarm_socket: Vec::new(),
            alarm_overflow: Vec::new(),
            alarm_template: Vec::new(),
            alarm_template_json: Vec::new(),
            alarm_key: Vec::new(),
            alarm_threshold: Vec::new(),
            alarm_digest: Vec::new(),
            alarm_absence: Vec::new(),
            alarm_keys_max: 100_000,
            alarm_spool: None,
            alarm_spool_max_size: 64 << 20,
            alarm_spool_max_age: Duration::from_secs(86_400),
            command: Vec::new(),
            help: false,
            version: false,
            warnings: Vec::new(),
            metrics: None,
            alarm_cluster: None,
            nats: Vec::new(),
            nats_out: None,
            stats: None,
            stats_http: false,
            trace: Vec::new(),
        }
    }
}

impl Config {
    fn traced(&mut self, def: &OptDef, value: &str, origin: &Origin) {
        self.trace.push(Traced {
            option: def.name,
            written: value.into(),
            origin: origin.clone(),
        });
    }

    /// `value` as the option just traced holds it (shared, not copied: a rule's text is kept
    /// by the trace and by its rule; Debian's 2,101 rules: 0.4 MB of fresh memory less before
    /// the first line out), or a copy when it was not traced.
    fn written(&self, value: &str) -> Arc<str> {
        match self.trace.last() {
            Some(t) if *t.written == *value => t.written.clone(),
            _ => value.into(),
        }
    }
}

/// Largest accepted `log-master-bufsize` / `alarm-msg-size`: memory stays bounded.
pub(crate) const MAX_BUFSIZE: usize = 16 << 20;

/// Whether an option takes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arity {
    /// `--name VALUE` or `--name=VALUE`.
    Value,
    /// A boolean: `--name`, `--name=VALUE`, or `name = VALUE` / `name` in ini.
    Flag,
}

type Apply = fn(&mut Config, &str, &Origin) -> Result<(), ConfigError>;

/// One option: its uWSGI name, aliases, arity, help text and parser.
#[derive(Debug)]
pub struct OptDef {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    pub arity: Arity,
    pub value_name: &'static str,
    pub doc: &'static str,
    apply: Apply,
}

/// The option table. Names and aliases are uWSGI's, verbatim.
pub static OPTIONS: &[OptDef] = &[
    OptDef {
        name: "alarm",
        aliases: &[],
        arity: Arity::Value,
        value_name: "\"NAME TYPE:ARG\"",
        doc: "define an alarm (types: cmd, signal, mule, log, curl, xmpp, speech, airbrake; see --alarm-list)",
        apply: |c, v, o| {
            let def = parse_alarm(v, o)?;
            c.alarms.push(def);
            Ok(())
        },
    },
    OptDef {
        name: "log-alarm",
        aliases: &["alarm-log"],
        arity: Arity::Value,
        value_name: "\"NAME[,NAME...] REGEX\"",
        doc: "raise the named alarms when a log line matches REGEX",
        apply: |c, v, o| {
            c.rules.push(parse_rule(c.written(v), false, o)?);
            warn_empty_names(c, "log-alarm", v, o);
            Ok(())
        },
    },
    OptDef {
        name: "log-alarm-json",
        aliases: &[],
        arity: Arity::Value,
        value_name: "\"NAME[,NAME...] FIELD=REGEX...\"",
        doc: "logalarm: raise the named alarms when a JSON line's fields (a.b: nested) each match their REGEX entirely",
        apply: |c, v, o| {
            let raw = c.written(v);
            c.rules.push(parse_field_rule(raw, crate::rules::fields::Format::Json, o)?);
            Ok(())
        },
    },
    OptDef {
        name: "log-alarm-logfmt",
        aliases: &[],
        arity: Arity::Value,
        value_name: "\"NAME[,NAME...] FIELD=REGEX...\"",
        doc: "logalarm: raise the named alarms when a logfmt line's fields (key=value) each match their REGEX entirely",
        apply: |c, v, o| {
            let raw = c.written(v);
            c.rules.push(parse_field_rule(raw, crate::rules::fields::Format::Logfmt, o)?);
            Ok(())
        },
    },
    OptDef {
        name: "alarm-multiline",
        aliases: &[],
        arity: Arity::Value,
        value_name: "\"NAME[,NAME...] REGEX\"",
        doc: "logalarm: lines matching REGEX right after a line that raised NAME join its message (a stack trace as one alarm)",
        apply: |c, v, o| {
            let mut r = parse_rule(c.written(v), false, o).map_err(|_| {
                ConfigError::new(
                    format!("invalid alarm-multiline syntax: {v} (expected \"NAME[,NAME...] REGEX\")"),
                    o,
                )
            })?;
            r.continuation = true;
            c.rules.push(r);
            Ok(())
        },
    },
    OptDef {
        name: "not-log-alarm",
        aliases: &["not-alarm-log"],
        arity: Arity::Value,
        value_name: "\"NAME[,NAME...] REGEX\"",
        doc: "skip the named alarms for log lines matching REGEX",
        apply: |c, v, o| {
            c.rules.push(parse_rule(c.written(v), true, o)?);
            warn_empty_names(c, "not-log-alarm", v, o);
            Ok(())
        },
    },
    OptDef {
        name: "alarm-fd",
        aliases: &[],
        arity: Arity::Value,
        value_name: "\"NAME FD[:BYTES] MESSAGE\"",
        doc: "raise NAME with MESSAGE when descriptor FD becomes readable",
        apply: |c, v, o| {
            c.alarm_fds.push(parse_alarm_fd(v, o)?);
            Ok(())
        },
    },
    OptDef {
        name: "alarm-backlog",
        aliases: &[
            "backlog-alarm",
            "lq-alarm",
            "alarm-lq",
            "alarm-listen-queue",
            "listen-queue-alarm",
        ],
        arity: Arity::Value,
        value_name: "NAME",
        doc: "raise NAME when a --watch-socket listen queue is full",
        apply: |c, v, o| {
            c.alarm_backlog.push(sourced(name_only("alarm-backlog", v, o)?, o));
            Ok(())
        },
    },
    OptDef {
        name: "alarm-segfault",
        aliases: &["segfault-alarm"],
        arity: Arity::Value,
        value_name: "NAME",
        doc: "raise NAME when a supervised process crashes (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT)",
        apply: |c, v, o| {
            c.alarm_segfault.push(sourced(name_only("alarm-segfault", v, o)?, o));
            Ok(())
        },
    },
    OptDef {
        name: "tail-from-start",
        aliases: &[],
        arity: Arity::Flag,
        value_name: "",
        doc: "read --tail files from their beginning instead of their end",
        apply: |c, v, o| {
            c.tail_from_start = parse_bool(c, "tail-from-start", v, o);
            Ok(())
        },
    },
    OptDef {
        name: "alarm-cheap",
        aliases: &[],
        arity: Arity::Flag,
        value_name: "",
        doc: "run every action on the main alarm thread instead of per-action threads",
        apply: |c, v, o| {
            c.alarm_cheap = parse_bool(c, "alarm-cheap", v, o);
            Ok(())
        },
    },
    OptDef {
        name: "alarm-freq",
        aliases: &[],
        arity: Arity::Value,
        value_name: "SECONDS",
        doc: "anti-flood window: an identical message within it is suppressed (default 3, 0 disables)",
        apply: |c, v, o| {
            c.alarm_freq = Duration::from_secs(parse_uint("alarm-freq", v, o, 0, u32::MAX as u64)?);
            Ok(())
        },
    },
    OptDef {
        name: "alarm-msg-size",
        aliases: &[],
        arity: Arity::Value,
        value_name: "BYTES",
        doc: "longest alarm message; longer ones are truncated (default 8192)",
        apply: |c, v, o| {
            c.alarm_msg_size = parse_uint("alarm-msg-size", v, o, 1, MAX_BUFSIZE as u64)? as usize;
            Ok(())
        },
    },
    OptDef {
        name: "alarm-list",
        aliases: &["alarms-list"],
        arity: Arity::Flag,
        value_name: "",
        doc: "print the alarm types and the configured alarms (secrets masked), then exit",
        apply: |c, v, o| {
            c.alarm_list = parse_bool(c, "alarm-list", v, o);
            Ok(())
        },
    },
    OptDef {
        name: "rule-syntax",
        aliases: &[],
        arity: Arity::Value,
        value_name: "pcre|rust",
        doc: "logalarm: the dialect of log-alarm rules: pcre (uWSGI's, the default) or rust (the regex crate's syntax)",
        apply: |c, v, o| {
            c.rule_syntax = match v.trim() {
                "pcre" => RuleSyntax::Pcre,
                "rust" => RuleSyntax::Rust,
                other => {
                    return Err(ConfigError::new(
                        format!("invalid rule-syntax: `{other}`: expected pcre or rust"),
                        o,
                    ))
                }
            };
            Ok(())
        },
    },
    OptDef {
        name: "check-rules",
        aliases: &[],
        arity: Arity::Flag,
        value_name: "",
        doc: "logalarm: print each rule's engine and cost (its speed on lines made of its own bytes; pathological rules named), then exit: 0, or 2 when a rule is pathological",
        apply: |c, v, o| {
            c.check_rules = parse_bool(c, "check-rules", v, o);
            Ok(())
        },
    },
    OptDef {
        name: "rules-cache",
        aliases: &[],
        arity: Arity::Value,
        value_name: "DIR",
        doc: "logalarm: directory where start-up keeps the literals of sets of 256 rules or more, so the next start need not parse them (default $XDG_CACHE_HOME/logalarm or ~/.cache/logalarm; off: none)",
        apply: |c, v, o| {
            c.rules_cache = Some(non_empty("rules-cache", v, o)?.to_string());
            Ok(())
        },
    },
    OptDef {
        name: "alarm-grace",
        aliases: &[],
        arity: Arity::Value,
        value_name: "SECONDS",
        doc: "logalarm: at shutdown, how long queued alarms may still run (default 5)",
        apply: |c, v, o| {
            c.alarm_grace = Duration::from_secs(parse_uint("alarm-grace", v, o, 0, 3600)?);
            Ok(())
        },
    },
    OptDef {
        name: "alarm-queue",
        aliases: &[],
        arity: Arity::Value,
        value_name: "EVENTS",
        doc: "logalarm: capacity of each alarm queue in events (and at most 8 MiB of messages); a full queue applies the alarm's overflow policy (default 8192)",
        apply: |c, v, o| {
            c.alarm_queue = parse_uint("alarm-queue", v, o, 1, 1 << 20)? as usize;
            Ok(())
        },
    },
    OptDef {
        name: "log-master-bufsize",
        aliases: &[],
        arity: Arity::Value,
        value_name: "BYTES",
        doc: "how much of one line is matched and used as its message (default 8192)",
        apply: |c, v, o| {
            c.log_master_bufsize =
                parse_uint("log-master-bufsize", v, o, 1, MAX_BUFSIZE as u64)? as usize;
            Ok(())
        },
    },
    OptDef {
        name: "binsh",
        aliases: &[],
        arity: Arity::Value,
        value_name: "PATH",
        doc: "shell used by cmd: alarms (default /bin/sh)",
        apply: |c, v, o| {
            c.binsh = PathBuf::from(non_empty("binsh", v, o)?);
            Ok(())
        },
    },
    OptDef {
        name: "env",
        aliases: &[],
        arity: Arity::Value,
        value_name: "NAME=VALUE",
        doc: "set an environment variable for every child (cmd: actions, daemons, mules, -- CMD); NAME alone unsets it",
        apply: |c, v, o| {
            let v = non_empty("env", v, o)?;
            let (name, value) = match v.split_once('=') {
                Some((n, val)) => (n, Some(val.to_string())),
                None => (v, None),
            };
            let name = env_name("env", name, o)?;
            if value.as_ref().is_some_and(|v| v.contains('\0')) {
                return Err(ConfigError::new(
                    format!("invalid env: {name}: a NUL byte in the value"),
                    o,
                ));
            }
            c.env.push((name, value));
            Ok(())
        },
    },
    OptDef {
        name: "unenv",
        aliases: &[],
        arity: Arity::Value,
        value_name: "NAME",
        doc: "unset an environment variable for every child",
        apply: |c, v, o| {
            let name = env_name("unenv", v, o)?;
            c.env.push((name, None));
            Ok(())
        },
    },
    OptDef {
        name: "ini",
        aliases: &[],
        arity: Arity::Value,
        value_name: "FILE",
        doc: "load options from the [uwsgi] and [logalarm] sections of an ini file (repeatable)",
        // Read while the options are (`stream`): here only checked.
        apply: |_, v, o| non_empty("ini", v, o).map(|_| ()),
    },
    OptDef {
        name: "logto",
        aliases: &[],
        arity: Arity::Value,
        value_name: "PATH",
        doc: "write the log stream to PATH instead of stdout (reopened on SIGHUP)",
        apply: |c, v, o| {
            c.logto = Some(PathBuf::from(non_empty("logto", v, o)?));
            Ok(())
        },
    },
    OptDef {
        name: "logto-follow-symlinks",
        aliases: &[],
        arity: Arity::Flag,
        value_name: "",
        doc: "let --logto be a symbolic link (refused otherwise: a planted link could make logalarm overwrite another file)",
        apply: |c, v, o| {
            c.logto_follow_symlinks = parse_bool(c, "logto-follow-symlinks", v, o);
            Ok(())
        },
    },
    OptDef {
        name: "attach-daemon",
        aliases: &[],
        arity: Arity::Value,
        value_name: "COMMAND",
        doc: "supervise a shell command; its output joins the log stream",
        apply: |c, v, o| {
            c.attach_daemon
                .push(sourced(non_empty("attach-daemon", v, o)?.to_string(), o));
            Ok(())
        },
    },
    OptDef {
        name: "tail",
        aliases: &[],
        arity: Arity::Value,
        value_name: "PATH",
        doc: "follow a file as a log input",
        apply: |c, v, o| {
            c.tail.push(sourced(PathBuf::from(non_empty("tail", v, o)?), o));
            Ok(())
        },
    },
    OptDef {
        name: "tail-state",
        aliases: &[],
        arity: Arity::Value,
        value_name: "FILE",
        doc: "logalarm: keep in FILE where each --tail file was passed on to, so a restart goes on at the next line",
        apply: |c, v, o| {
            c.tail_state = Some(PathBuf::from(non_empty("tail-state", v, o)?));
            Ok(())
        },
    },
    OptDef {
        name: "udp",
        aliases: &[],
        arity: Arity::Value,
        value_name: "HOST:PORT",
        doc: "receive log lines as UDP datagrams (:PORT = loopback only)",
        apply: |c, v, o| {
            c.udp.push(sourced(non_empty("udp", v, o)?.to_string(), o));
            Ok(())
        },
    },
    OptDef {
        name: "udp-allow",
        aliases: &[],
        arity: Arity::Value,
        value_name: "CIDR[,CIDR...]",
        doc: "logalarm: accept --udp datagrams only from these networks (e.g. 10.0.0.0/8,::1); others are dropped and counted",
        apply: |c, v, o| {
            c.udp_allow.push(sourced(non_empty("udp-allow", v, o)?.to_string(), o));
            Ok(())
        },
    },
    OptDef {
        name: "udp-sender",
        aliases: &[],
        arity: Arity::Flag,
        value_name: "",
        doc: "logalarm: put the sender's address in front of each line of a --udp datagram (\"[1.2.3.4:514] line\"), so rules and messages see it",
        apply: |c, v, o| {
            c.udp_sender = parse_bool(c, "udp-sender", v, o);
            Ok(())
        },
    },
    OptDef {
        name: "watch-socket",
        aliases: &[],
        arity: Arity::Value,
        value_name: "ADDR",
        doc: "a listening socket whose queue --alarm-backlog watches",
        apply: |c, v, o| {
            c.watch_socket
                .push(sourced(non_empty("watch-socket", v, o)?.to_string(), o));
            Ok(())
        },
    },
    OptDef {
        name: "mule",
        aliases: &[],
        arity: Arity::Value,
        value_name: "COMMAND",
        doc: "start a mule process for mule: alarms",
        apply: |c, v, o| {
            c.mule.push(sourced(non_empty("mule", v, o)?.to_string(), o));
            Ok(())
        },
    },
    OptDef {
        name: "alarm-socket",
        aliases: &[],
        arity: Arity::Value,
        value_name: "PATH",
        doc: "unix datagram socket where applications raise alarms as \"NAME MESSAGE\"",
        apply: |c, v, o| {
            c.alarm_socket
                .push(sourced(PathBuf::from(non_empty("alarm-socket", v, o)?), o));
            Ok(())
        },
    },
    OptDef {
        name: "alarm-overflow",
        aliases: &[],
        arity: Arity::Value,
        value_name: "\"NAME[,NAME...] POLICY\"",
        doc: "logalarm: what an alarm does when its queue is full: drop (count, then send a digest), block (slow the log stream), spool (queue on disk; curl, airbrake, xmpp)",
        apply: |c, v, o| {
            c.alarm_overflow.push(sourced(non_empty("alarm-overflow", v, o)?.to_string(), o));
            Ok(())
        },
    },
    OptDef {
        name: "alarm-template",
        aliases: &[],
        arity: Arity::Value,
        value_name: "\"NAME[,NAME...] TEMPLATE\"",
        doc: "logalarm: the message NAME sends: TEMPLATE with {1}, {group} (the raising rule's captures), {line}, {alarm}, {count}, {first}, {last}",
        apply: |c, v, o| {
            c.alarm_template.push(sourced(non_empty("alarm-template", v, o)?.to_string(), o));
            Ok(())
        },
    },
    OptDef {
        name: "alarm-template-json",
        aliases: &[],
        arity: Arity::Value,
        value_name: "\"NAME[,NAME...] TEMPLATE\"",
        doc: "logalarm: alarm-template whose values are written JSON-escaped, for a message that is JSON: {{\"ip\": \"{ip}\"}}",
        apply: |c, v, o| {
            c.alarm_template_json.push(sourced(non_empty("alarm-template-json", v, o)?.to_string(), o));
            Ok(())
        },
    },
    OptDef {
        name: "alarm-key",
        aliases: &[],
        arity: Arity::Value,
        value_name: "\"NAME[,NAME...] TEMPLATE\"",
        doc: "logalarm: anti-flood and thresholds of NAME per key (TEMPLATE, e.g. {ip}) instead of per message",
        apply: |c, v, o| {
            c.alarm_key.push(sourced(non_empty("alarm-key", v, o)?.to_string(), o));
            Ok(())
        },
    },
    OptDef {
        name: "alarm-threshold",
        aliases: &[],
        arity: Arity::Value,
        value_name: "\"NAME[,NAME...] COUNT SECONDS\"",
        doc: "logalarm: NAME fires on the COUNT-th match within SECONDS (per key with alarm-key)",
        apply: |c, v, o| {
            c.alarm_threshold.push(sourced(non_empty("alarm-threshold", v, o)?.to_string(), o));
            Ok(())
        },
    },
    OptDef {
        name: "alarm-digest",
        aliases: &[],
        arity: Arity::Value,
        value_name: "\"NAME[,NAME...] SECONDS\"",
        doc: "logalarm: lines anti-flood held are summed up in one message SECONDS after the first of them",
        apply: |c, v, o| {
            c.alarm_digest.push(sourced(non_empty("alarm-digest", v, o)?.to_string(), o));
            Ok(())
        },
    },
    OptDef {
        name: "alarm-cluster",
        aliases: &[],
        arity: Arity::Value,
        value_name: "redis[s]://[USER:PASSWORD@]HOST:PORT/PREFIX[?timeout=MS&ca=FILE&id=NAME]",
        doc: "logalarm: anti-flood, thresholds, keys and digests shared by every logalarm using the same Redis and PREFIX (one page per incident for a fleet)",
        apply: |c, v, o| {
            c.alarm_cluster = Some(sourced(non_empty("alarm-cluster", v, o)?.to_string(), o));
            Ok(())
        },
    },
    OptDef {
        name: "nats",
        aliases: &[],
        arity: Arity::Value,
        value_name: "URL,STREAM,CONSUMER[,ack_wait=S][,batch=N][,max_pending=N]",
        doc: "logalarm: read log lines from a NATS JetStream stream as a member of durable consumer CONSUMER (instances sharing it share the stream), each message acknowledged once its lines are passed on and their alarms handled",
        apply: |c, v, o| {
            c.nats.push(sourced(non_empty("nats", v, o)?.to_string(), o));
            Ok(())
        },
    },
    OptDef {
        name: "nats-out",
        aliases: &[],
        arity: Arity::Value,
        value_name: "URL,SUBJECT[,stream=NAME]",
        doc: "logalarm: publish every passed-through line to SUBJECT on NATS (with stream=NAME, to JetStream, each publish acknowledged; the stream is created when missing)",
        apply: |c, v, o| {
            c.nats_out = Some(sourced(non_empty("nats-out", v, o)?.to_string(), o));
            Ok(())
        },
    },
    OptDef {
        name: "alarm-absence",
        aliases: &[],
        arity: Arity::Value,
        value_name: "\"NAME[,NAME...] SECONDS\"",
        doc: "logalarm: NAME's lines are heartbeats: it fires when none came for SECONDS, and again when one comes back",
        apply: |c, v, o| {
            c.alarm_absence.push(sourced(non_empty("alarm-absence", v, o)?.to_string(), o));
            Ok(())
        },
    },
    OptDef {
        name: "alarm-keys-max",
        aliases: &[],
        arity: Arity::Value,
        value_name: "KEYS",
        doc: "logalarm: most keys each alarm-key/alarm-threshold alarm remembers (default 100000)",
        apply: |c, v, o| {
            c.alarm_keys_max = parse_uint("alarm-keys-max", v, o, 2, 1 << 26)? as usize;
            Ok(())
        },
    },
    OptDef {
        name: "metrics",
        aliases: &[],
        arity: Arity::Value,
        value_name: "[HOST]:PORT",
        doc: "logalarm: serve Prometheus metrics at http://ADDR/metrics (:PORT is loopback)",
        apply: |c, v, o| {
            crate::metrics::address("metrics", v).map_err(|e| ConfigError::new(e, o))?;
            c.metrics = Some(sourced(v.to_string(), o));
            Ok(())
        },
    },
    OptDef {
        name: "stats",
        aliases: &["stats-server"],
        arity: Arity::Value,
        value_name: "[HOST]:PORT",
        doc: "enable the stats server: the counters as JSON to each connection, as uWSGI's (:PORT is loopback)",
        apply: |c, v, o| {
            crate::metrics::address("stats", v).map_err(|e| ConfigError::new(e, o))?;
            c.stats = Some(sourced(v.to_string(), o));
            Ok(())
        },
    },
    OptDef {
        name: "stats-http",
        aliases: &[],
        arity: Arity::Flag,
        value_name: "",
        doc: "prefix stats server json output with http headers",
        apply: |c, v, o| {
            c.stats_http = parse_bool(c, "stats-http", v, o);
            Ok(())
        },
    },
    OptDef {
        name: "alarm-spool",
        aliases: &[],
        arity: Arity::Value,
        value_name: "DIR",
        doc: "logalarm: directory of the on-disk queues of spool alarms (makes spool the default for curl, airbrake and xmpp alarms)",
        apply: |c, v, o| {
            c.alarm_spool = Some(PathBuf::from(non_empty("alarm-spool", v, o)?));
            Ok(())
        },
    },
    OptDef {
        name: "alarm-spool-max-size",
        aliases: &[],
        arity: Arity::Value,
        value_name: "BYTES",
        doc: "logalarm: most bytes each alarm's spool holds, K/M/G suffixes (default 64M); beyond it new alarms are dropped and counted",
        apply: |c, v, o| {
            c.alarm_spool_max_size = parse_size("alarm-spool-max-size", v, o)?;
            Ok(())
        },
    },
    OptDef {
        name: "alarm-spool-max-age",
        aliases: &[],
        arity: Arity::Value,
        value_name: "SECONDS",
        doc: "logalarm: spooled alarms older than this are discarded and counted (default 86400)",
        apply: |c, v, o| {
            c.alarm_spool_max_age =
                Duration::from_secs(parse_uint("alarm-spool-max-age", v, o, 1, 30 * 86_400)?);
            Ok(())
        },
    },
    OptDef {
        name: "help",
        aliases: &["h"],
        arity: Arity::Flag,
        value_name: "",
        doc: "print this help and exit",
        apply: |c, _, _| {
            c.help = true;
            Ok(())
        },
    },
    OptDef {
        name: "version",
        aliases: &[],
        arity: Arity::Flag,
        value_name: "",
        doc: "print the version and exit",
        apply: |c, _, _| {
            c.version = true;
            Ok(())
        },
    },
];

/// Find an option by name or alias.
pub(crate) fn lookup(name: &str) -> Option<&'static OptDef> {
    OPTIONS
        .iter()
        .find(|d| d.name == name || d.aliases.contains(&name))
}

/// Apply the options of `stream` to a fresh [`Config`], in order, after uWSGI's passes over
/// their values (see [`stream`]).
fn apply_stream(mut st: stream::Stream) -> Result<Config, ConfigError> {
    st.finish()?;
    let mut c = Config::default();
    c.warnings.append(&mut st.warnings);
    let (values, placeholders) = st.resolve()?;
    // PERF: room for the rules and the trace made once (grown by doubling, they were ~1 MB of
    // fresh memory more for Debian's 2,101 rules before the first line out).
    c.trace.reserve(st.opts.len());
    let rules = st
        .opts
        .iter()
        .filter(|e| ini::RULE_KEYS.contains(&st.key(e)));
    c.rules.reserve(rules.count());
    for (e, value) in st.opts.iter().zip(values) {
        let key = st.key(e);
        let o = &e.origin;
        let Some(def) = lookup(key) else {
            if !e.configured
                && stream::stream_option(key).is_none()
                && key != "end"
                && !placeholders.contains(key)
            {
                c.warnings
                    .push(format!("ignoring option `{key}`: not a logalarm option{o}"));
            }
            continue;
        };
        if e.configured {
            // `ini`, read already.
            c.traced(def, &value, o);
            continue;
        }
        if matches!(o, Origin::Ini { .. }) && (def.name == "help" || def.name == "version") {
            c.warnings
                .push(format!("ignoring option `{key}` in ini file{o}"));
            continue;
        }
        let value: &str = if def.arity == Arity::Flag && value.is_empty() {
            "true"
        } else {
            &value
        };
        if def.arity == Arity::Value && value.is_empty() {
            return Err(ConfigError::new(format!("option {key} needs a value"), o));
        }
        c.traced(def, value, o);
        (def.apply)(&mut c, value, o)?;
    }
    Ok(c)
}

/// Parse ini text as if it were a file named `name` given with `--ini` (fuzzing, tests).
/// `ini` options inside it are read from disk as usual.
pub fn parse_ini_str(text: &str, name: &str) -> Result<Config, ConfigError> {
    let mut st = stream::Stream::new(false);
    st.read_ini_text(text.to_string(), Path::new(name), None, &Origin::Cli)?;
    apply_stream(st)
}

/// Parse command-line arguments (without the program name).
pub fn parse_args<I>(args: I) -> Result<Config, ConfigError>
where
    I: IntoIterator<Item = OsString>,
{
    parse_args_as(args, false)
}

/// [`parse_args`] for a reload (uWSGI's `if-reload` blocks hold).
pub(crate) fn parse_args_on_reload<I>(args: I) -> Result<Config, ConfigError>
where
    I: IntoIterator<Item = OsString>,
{
    parse_args_as(args, true)
}

fn parse_args_as<I>(args: I, reload: bool) -> Result<Config, ConfigError>
where
    I: IntoIterator<Item = OsString>,
{
    let mut st = stream::Stream::new(reload);
    let mut command = Vec::new();
    let mut it = args.into_iter().peekable();
    let cli = Origin::Cli;
    while let Some(arg) = it.next() {
        let arg = arg.into_string().map_err(|a| {
            ConfigError::new(
                format!("invalid argument: {}: not UTF-8", a.to_string_lossy()),
                &cli,
            )
        })?;
        if arg == "--" {
            command = it.by_ref().collect();
            break;
        }
        let body = if let Some(b) = arg.strip_prefix("--") {
            b
        } else if let Some(b) = arg.strip_prefix('-').filter(|b| !b.is_empty()) {
            b
        } else if !arg.starts_with('[') && is_ini_path(&arg) {
            // uWSGI reads a bare `app.ini` (or `app.ini:section`) argument as `--ini`.
            st.export(stream::Text::owned("ini"), stream::Text::owned(&arg), &cli)?;
            continue;
        } else {
            return Err(ConfigError::new(
                format!("unexpected argument: {arg} (options start with --; a command to supervise goes after --)"),
                &cli,
            ));
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        // uWSGI's one short option among logalarm's: `-S KEY=VALUE` is `--set`.
        let name = if name == "S" { "set" } else { name };
        let def = lookup(name);
        let takes_value = match (def, stream::stream_option(name)) {
            (Some(d), _) => d.arity == Arity::Value,
            (None, Some(v)) => v,
            (None, None) => {
                return Err(ConfigError::new(
                    format!("unknown option: --{name} (see --help)"),
                    &cli,
                ))
            }
        };
        let value = match (takes_value, inline) {
            (_, Some(v)) => v,
            (false, None) => match def {
                // A boolean takes the next argument as its value when it is one (`--alarm-cheap
                // 1`; uWSGI declares `alarm-cheap` with a required value, so a uWSGI command
                // line always has one, and there any next argument is it).
                Some(d) => match it.peek().and_then(|v| v.to_str()) {
                    Some(v)
                        if is_bool_word(v)
                            || (UWSGI_VALUED_FLAGS.contains(&d.name) && !v.starts_with('-')) =>
                    {
                        let v = v.to_string();
                        it.next();
                        v
                    }
                    _ => "true".to_string(),
                },
                None => String::new(),
            },
            (true, None) => match it.next() {
                Some(v) => match v.into_string() {
                    Ok(v) => v,
                    // A rule may hold raw bytes: PCRE bytes (see `ini::RULE_KEYS`).
                    Err(v) if def.is_some_and(|d| ini::RULE_KEYS.contains(&d.name)) => {
                        ini::rule_bytes(std::os::unix::ffi::OsStrExt::as_bytes(v.as_os_str()))
                    }
                    Err(v) => {
                        return Err(ConfigError::new(
                            format!("invalid {name}: {}: not UTF-8", v.to_string_lossy()),
                            &cli,
                        ))
                    }
                },
                None => {
                    let what = def.map_or("VALUE", |d| d.value_name);
                    return Err(ConfigError::new(
                        format!("option --{name} needs a value: {what}"),
                        &cli,
                    ));
                }
            },
        };
        st.export(stream::Text::owned(name), stream::Text::owned(&value), &cli)?;
    }
    let mut c = apply_stream(st)?;
    c.command = command;
    Ok(c)
}

/// Whether a bare argument names an ini file (`PATH.ini` or `PATH.ini:SECTION`).
fn is_ini_path(arg: &str) -> bool {
    arg.ends_with(".ini")
        || arg
            .rsplit_once(':')
            .is_some_and(|(f, _)| f.ends_with(".ini"))
}

/// Largest file `@(PATH)` reads (a password, a key; never a log).
const MAX_AT_FILE: u64 = 1 << 20;

/// The content of `@(PATH)` (never quoted in errors: it may be a secret).
fn read_at_file(opt: &str, path: &str, o: &Origin) -> Result<String, ConfigError> {
    let err = |why: String| ConfigError::new(format!("invalid {opt}: @({path}): {why}"), o);
    let text = read_small_file(path, MAX_AT_FILE).map_err(err)?;
    let mut text = String::from_utf8(text).map_err(|_| err("not UTF-8".to_string()))?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(text)
}

/// A regular file of at most `max` bytes, opened without blocking (a FIFO must not hang
/// start-up, `/dev/zero` must not fill memory). The error is the reason alone.
pub(crate) fn read_small_file(path: &str, max: u64) -> Result<Vec<u8>, String> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| e.to_string())?;
    if !f.metadata().is_ok_and(|m| m.is_file()) {
        return Err("not a regular file".to_string());
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(f, max + 1), &mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > max {
        return Err(format!("larger than {max} bytes"));
    }
    Ok(bytes)
}

fn sourced<T>(value: T, origin: &Origin) -> Sourced<T> {
    Sourced {
        value,
        origin: origin.clone(),
    }
}

/// `NAME TYPE:ARG`: the name ends at the first space, the type at the first `:` after it.
pub(crate) fn parse_alarm(v: &str, o: &Origin) -> Result<AlarmDef, ConfigError> {
    let v = v.trim();
    let bad = || {
        ConfigError::new(
            format!(
                "invalid alarm syntax: {} (expected \"NAME TYPE:ARG\")",
                redact_value(v)
            ),
            o,
        )
    };
    let (name, rest) = v.split_once(' ').ok_or_else(bad)?;
    let (kind, arg) = rest.trim_start().split_once(':').ok_or_else(bad)?;
    if name.is_empty() || kind.is_empty() {
        return Err(bad());
    }
    Ok(AlarmDef {
        name: name.to_string(),
        kind: kind.to_string(),
        arg: arg.to_string(),
        origin: o.clone(),
    })
}

/// `NAME[,NAME...] REGEX` (the regex may be empty: it matches every line).
pub(crate) fn parse_rule(raw: Arc<str>, negate: bool, o: &Origin) -> Result<RuleDef, ConfigError> {
    let opt = if negate { "not-log-alarm" } else { "log-alarm" };
    let v = &*raw;
    let (names, regex) = match v.split_once(' ') {
        Some(p) => p,
        None => {
            return Err(ConfigError::new(
                format!("invalid {opt} syntax: {v} (expected \"NAME[,NAME...] REGEX\")"),
                o,
            ))
        }
    };
    // uWSGI splits the names with strtok: empty ones (`a,`, `a,,b`) are skipped.
    let names: Vec<String> = names
        .split(',')
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .collect();
    Ok(RuleDef {
        names,
        regex: RegexText::At(v.len() - regex.len()),
        negate,
        raw,
        origin: o.clone(),
        fields: None,
        continuation: false,
    })
}

/// A rule's alarm list with an empty name (`a,` or `a,,b`): skipped as uWSGI skips it, and
/// said, since `log-alarm = mail, pager ERROR` (a space after the comma) names only `mail`.
fn warn_empty_names(c: &mut Config, opt: &str, v: &str, o: &Origin) {
    let names = v.split_once(' ').map_or(v, |(n, _)| n);
    if names.split(',').any(str::is_empty) {
        c.warnings.push(format!(
            "{opt} = {v}: the empty alarm name in \"{names}\" is skipped, as uWSGI skips it \
             (the names end at the first space){o}"
        ));
    }
}

/// `log-alarm-json` / `log-alarm-logfmt`: `NAME[,NAME...] FIELD=REGEX [FIELD=REGEX...]`.
fn parse_field_rule(
    raw: Arc<str>,
    format: crate::rules::fields::Format,
    o: &Origin,
) -> Result<RuleDef, ConfigError> {
    let v = &*raw;
    let opt = match format {
        crate::rules::fields::Format::Json => "log-alarm-json",
        crate::rules::fields::Format::Logfmt => "log-alarm-logfmt",
    };
    let mut r = parse_rule(raw.clone(), false, o).map_err(|_| {
        ConfigError::new(
            format!("invalid {opt} syntax: {v} (expected \"NAME[,NAME...] FIELD=REGEX [FIELD=REGEX...]\")"),
            o,
        )
    })?;
    let spec = crate::rules::fields::FieldSpec::parse(format, r.regex())
        .map_err(|e| ConfigError::new(format!("invalid {opt}: {v}: {e}"), o))?;
    r.regex = RegexText::Own(spec.candidate());
    r.fields = Some(spec);
    Ok(r)
}

/// `NAME FD[:BYTES] MESSAGE`. The `:BYTES` suffix is read from the FD token only.
pub(crate) fn parse_alarm_fd(v: &str, o: &Origin) -> Result<AlarmFdDef, ConfigError> {
    let bad = |why: &str| {
        ConfigError::new(
            format!("invalid alarm-fd: {v}: {why} (expected \"NAME FD[:BYTES] MESSAGE\")"),
            o,
        )
    };
    let (name, rest) = v.split_once(' ').ok_or_else(|| bad("no descriptor"))?;
    let (fd_tok, message) = rest.split_once(' ').unwrap_or((rest, ""));
    let (fd_s, bytes_s) = match fd_tok.split_once(':') {
        Some((f, b)) => (f, Some(b)),
        None => (fd_tok, None),
    };
    let fd: i32 = fd_s
        .parse()
        .ok()
        .filter(|&f| f >= 0)
        .ok_or_else(|| bad(&format!("descriptor `{fd_s}` is not a number")))?;
    let bytes = match bytes_s {
        None => None,
        Some(b) => match b.parse::<usize>() {
            Ok(0) => None,
            Ok(n) if n <= 65536 => Some(n),
            _ => {
                return Err(bad(&format!(
                    "byte count `{b}` is not a number up to 65536"
                )))
            }
        },
    };
    if name.is_empty() {
        return Err(bad("empty alarm name"));
    }
    Ok(AlarmFdDef {
        name: name.to_string(),
        fd,
        bytes,
        message: message.to_string(),
        origin: o.clone(),
    })
}

/// An environment variable's name: not empty, no `=` and no NUL.
fn env_name(opt: &str, v: &str, o: &Origin) -> Result<String, ConfigError> {
    if v.is_empty() || v.contains(['=', '\0']) {
        return Err(ConfigError::new(
            format!("invalid {opt}: {v}: expected an environment variable's name"),
            o,
        ));
    }
    Ok(v.to_string())
}

fn name_only(opt: &str, v: &str, o: &Origin) -> Result<String, ConfigError> {
    let v = v.trim();
    if v.is_empty() || v.contains(char::is_whitespace) {
        return Err(ConfigError::new(
            format!("invalid {opt}: `{v}`: expected one alarm name"),
            o,
        ));
    }
    Ok(v.to_string())
}

fn non_empty<'a>(opt: &str, v: &'a str, o: &Origin) -> Result<&'a str, ConfigError> {
    if v.trim().is_empty() {
        return Err(ConfigError::new(format!("option {opt} needs a value"), o));
    }
    Ok(v.trim())
}

/// Boolean options that uWSGI declares with a required value (`required_argument`): on the
/// command line the argument after them is their value unless it is an option.
const UWSGI_VALUED_FLAGS: &[&str] = &["alarm-cheap"];

/// A word a boolean option's value is commonly written as.
fn is_bool_word(v: &str) -> bool {
    ["1", "0", "true", "false", "yes", "no", "on", "off"]
        .iter()
        .any(|w| v.trim().eq_ignore_ascii_case(w))
}

/// A boolean option's value, read as uWSGI's `uwsgi_opt_true` reads it: `false`, `off`, `no`
/// (any case) and `0` are false, anything else is true. A value that is no usual word for
/// true (`enable`, `n`) is read so too, with a warning, since it may be a typo.
fn parse_bool(c: &mut Config, opt: &str, v: &str, o: &Origin) -> bool {
    let t = v.trim();
    if ["false", "off", "no"]
        .iter()
        .any(|w| t.eq_ignore_ascii_case(w))
        || t == "0"
    {
        return false;
    }
    if !t.is_empty() && !is_bool_word(t) {
        c.warnings.push(format!(
            "{opt} = {t}: read as true, as uWSGI reads any value but false, off, no and 0{o}"
        ));
    }
    true
}

fn parse_uint(opt: &str, v: &str, o: &Origin, min: u64, max: u64) -> Result<u64, ConfigError> {
    let t = v.trim();
    match t.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        Ok(_) => Err(ConfigError::new(
            format!("invalid {opt}: `{t}`: must be between {min} and {max}"),
            o,
        )),
        Err(_) if t.starts_with('-') && t[1..].parse::<u64>().is_ok() => Err(ConfigError::new(
            format!("invalid {opt}: `{t}`: must not be negative"),
            o,
        )),
        Err(_) => Err(ConfigError::new(
            format!("invalid {opt}: `{t}`: not a whole number"),
            o,
        )),
    }
}

/// A size in bytes with an optional K, M or G suffix (powers of 1024), 4 KiB to 1 TiB.
fn parse_size(opt: &str, v: &str, o: &Origin) -> Result<u64, ConfigError> {
    let t = v.trim();
    let (digits, unit) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                _ => {
                    return Err(ConfigError::new(
                        format!("invalid {opt}: `{t}`: the suffix may be K, M or G"),
                        o,
                    ))
                }
            };
            (&t[..i], shift)
        }
        _ => (t, 0),
    };
    let n = parse_uint(opt, digits, o, 0, u64::MAX >> 30)?;
    let bytes = n << unit;
    if !(4096..=1 << 40).contains(&bytes) {
        return Err(ConfigError::new(
            format!("invalid {opt}: `{t}`: must be between 4K and 1024G"),
            o,
        ));
    }
    Ok(bytes)
}

/// Keys whose values are secrets in `key=value` alarm arguments.
const SECRET_KEYS: [&str; 8] = [
    "routing_key",
    "header",
    "auth_pass",
    "apikey",
    "api_key",
    "password",
    "pass",
    "token",
];

/// Mask the secrets in an alarm argument: `key=value` secrets, URL passwords
/// (`scheme://user:PASS@host`) and the password field of `xmpp:JID;PASSWORD;...`.
pub(crate) fn redact_arg(kind: &str, arg: &str) -> String {
    let mut parts: Vec<String> = arg.split(';').map(str::to_string).collect();
    for (i, p) in parts.iter_mut().enumerate() {
        // The second field of xmpp:JID;PASSWORD;TO is the password whatever it holds (`=`).
        if kind == "xmpp" && i == 1 {
            *p = "***".to_string();
            continue;
        }
        if let Some((k, _)) = p.split_once('=') {
            if SECRET_KEYS.contains(&k.trim()) {
                *p = format!("{k}=***");
                continue;
            }
        }
        *p = redact_url_password(p);
    }
    parts.join(";")
}

/// Mask a whole option value that may hold an alarm definition. URL passwords are masked
/// wherever they are, also in a mistyped definition (`curl http://u:pw@h`, a space for the
/// colon, whose "type" would be `curl http`).
pub(crate) fn redact_value(v: &str) -> String {
    let structured = match v
        .split_once(' ')
        .and_then(|(n, r)| r.split_once(':').map(|(k, a)| (n, k, a)))
    {
        Some((name, kind, arg)) => format!("{name} {kind}:{}", redact_arg(kind, arg)),
        None => redact_arg("", v),
    };
    let mut out = String::with_capacity(structured.len());
    let mut rest = structured.as_str();
    // Each piece from one `://` to the next gets its `user:password@` masked.
    while let Some(i) = rest.find("://") {
        let start = rest[..i].rfind([' ', ';', ',', '=']).map_or(0, |j| j + 1);
        out.push_str(&rest[..start]);
        let end = rest[i + 3..].find(' ').map_or(rest.len(), |j| i + 3 + j);
        out.push_str(&redact_url_password(&rest[start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

fn redact_url_password(s: &str) -> String {
    if let Some(scheme_end) = s.find("://") {
        let after = &s[scheme_end + 3..];
        // The userinfo ends at the last `@` before the next `;key=value` of the alarm or a
        // space: a password may hold `/`, `?` or `@` (masking a path's `@` too is harmless).
        let auth_end = after.find([';', ' ']).unwrap_or(after.len());
        if let Some(at) = after[..auth_end].rfind('@') {
            if let Some(colon) = after[..at].find(':') {
                return format!(
                    "{}{}:***{}",
                    &s[..scheme_end + 3],
                    &after[..colon],
                    &after[at..]
                );
            }
        }
    }
    s.to_string()
}

/// The `--help` text, generated from the option table.
pub fn help_text() -> String {
    let mut s = String::from(
        "logalarm: raise uWSGI-style alarms on log streams\n\n\
         usage: app 2>&1 | logalarm [OPTIONS]\n       logalarm [OPTIONS] -- CMD ARGS...\n       \
         logalarm raise --socket PATH NAME [MESSAGE...]   (raise an alarm through --alarm-socket)\n       \
         logalarm reload --socket PATH                    (re-read the configuration; also SIGHUP)\n       \
         logalarm replay FILE... [OPTIONS] [--json] [--summary] [--report FILE.html] [--execute] [--rate N] [--time-format FMT] [--year YYYY]\n       \
         logalarm check [OPTIONS]                         (validate: 0 ok, 2 warnings, 1 invalid)\n       \
         logalarm man | logalarm completions bash|zsh|fish\n\n\
         Every option also works as `name = value` in an ini file's [uwsgi] or [logalarm] section\n\
         (--ini FILE:SECTION for another). As in uWSGI: config logic (--if-env, --if-not-env,\n\
         --if-exists, --if-file, --if-dir, --if-opt, --if-hostname, --if-reload, ... up to --endif;\n\
         --for, --for-times, --for-glob, --for-readline up to --endfor; %(_) is the item), --include,\n\
         --inherit, --set NAME=VALUE, --set-placeholder NAME=VALUE, and in values $(ENV), @(FILE),\n\
         %(name) (the first value of a key).\n\n\
         options:\n",
    );
    for d in OPTIONS {
        let mut names = format!("--{}", d.name);
        if !d.value_name.is_empty() {
            names.push(' ');
            names.push_str(d.value_name);
        }
        s.push_str(&format!("  {names}\n      {}\n", d.doc));
        if !d.aliases.is_empty() {
            let a: Vec<String> = d.aliases.iter().map(|a| format!("--{a}")).collect();
            s.push_str(&format!("      aliases: {}\n", a.join(", ")));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn logic_sections_and_includes_from_the_command_line_too() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.ini");
        std::fs::write(
            &p,
            "[uwsgi]\nalarm = a log:\n[prod]\nalarm = p log:\ninherit = INHERIT\n[dev]\nalarm = d log:\n"
                .replace("INHERIT", &dir.path().join("base.ini").display().to_string()),
        )
        .unwrap();
        std::fs::write(dir.path().join("base.ini"), "[uwsgi]\nalarm = base log:\n").unwrap();
        let names = |c: &Config| c.alarms.iter().map(|a| a.name.clone()).collect::<Vec<_>>();
        let a = p.to_str().unwrap();
        // `--ini FILE:SECTION`, a bare `FILE.ini` argument, `inherit` read after the rest.
        let c = parse_args(args(&[
            "--ini",
            &format!("{a}:prod"),
            a,
            "--alarm",
            "z log:",
        ]))
        .unwrap();
        assert_eq!(names(&c), ["p", "a", "z", "base"]);
        let c = parse_args(args(&["--ini", a, "--ini", ":dev"])).unwrap();
        assert_eq!(names(&c), ["a", "d"]);
        let e = parse_args(args(&["--ini", &format!("{a}:nope")])).unwrap_err();
        assert!(e.to_string().contains("no [nope] section"), "{e}");
        // Logic on the command line: `--endif` takes no value.
        let c = parse_args(args(&[
            "--if-env",
            "PATH",
            "--alarm",
            "yes log:",
            "--endif",
            "--if-not-env",
            "PATH",
            "--alarm",
            "no log:",
            "--endif",
            "--for",
            "x y",
            "--alarm",
            "f%(_) log:",
            "--endfor",
            "--set-ph",
            "n=1",
            "--alarm",
            "n%(n) log:",
        ]))
        .unwrap();
        assert_eq!(names(&c), ["yes", "fx", "fy", "n1"]);
        let reload = [
            "--if-reload",
            "--alarm",
            "r log:",
            "--endif",
            "--if-not-reload",
            "--alarm",
            "s log:",
            "--endif",
        ];
        assert_eq!(names(&parse_args(args(&reload)).unwrap()), ["s"]);
        assert_eq!(names(&parse_args_on_reload(args(&reload)).unwrap()), ["r"]);
        let e = parse_args(args(&["--include", "x.yaml"])).unwrap_err();
        assert!(e.to_string().contains("only ini files"), "{e}");
        let e = parse_args(args(&[
            "--for-readline",
            "/nonexistent/list",
            "--alarm",
            "a%(_) log:",
        ]))
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid for-readline: /nonexistent/list"),
            "{e}"
        );
        // A placeholder is the first value of its key anywhere, the command line included.
        let c = parse_args(args(&["--alarm", "%(name) log:", "--ini", a])).unwrap();
        assert_eq!(names(&c), ["%(name)", "a"]);
        std::fs::write(
            dir.path().join("n.ini"),
            "[uwsgi]\nname = fromini\nname = second\n",
        )
        .unwrap();
        let n = dir.path().join("n.ini");
        let c = parse_args(args(&[
            "--alarm",
            "%(name) log:",
            "--ini",
            n.to_str().unwrap(),
        ]))
        .unwrap();
        assert_eq!(names(&c), ["fromini"]);
        assert!(
            c.warnings.is_empty(),
            "a placeholder's source is no typo: {:?}",
            c.warnings
        );
    }

    #[test]
    fn env_and_file_expansion_as_uwsgi() {
        // (Checked against uWSGI 2.0.21's --show-config: same results.)
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "s3cr3t\n").unwrap();
        let home = std::env::var("HOME").unwrap();
        let v = format!(
            "m curl:smtp://h;mail_to=a@b;auth_pass=@({});x=$(HOME)$(LOGALARM_SURELY_UNSET) @(",
            pw.display()
        );
        let c = parse_args(args(&["--alarm", &v])).unwrap();
        assert_eq!(
            c.alarms[0].arg,
            format!("smtp://h;mail_to=a@b;auth_pass=s3cr3t;x={home}$(LOGALARM_SURELY_UNSET) @(")
        );
        assert!(!c.alarms[0].redacted().contains("s3cr3t"));
        let e = parse_args(args(&[
            "--alarm",
            "m curl:http://h/;auth_pass=@(/nonexistent/pw)",
        ]))
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("invalid alarm: @(/nonexistent/pw): No such file"),
            "{e}"
        );
        let ini = format!(
            "[uwsgi]\nalarm = m curl:http://h/;auth_pass=@({})\n",
            pw.display()
        );
        let c = parse_ini_str(&ini, "t.ini").unwrap();
        assert!(c.alarms[0].arg.ends_with("auth_pass=s3cr3t"));
    }

    #[test]
    fn every_alias_resolves() {
        for d in OPTIONS {
            assert!(std::ptr::eq(lookup(d.name).unwrap(), d));
            for a in d.aliases {
                assert!(std::ptr::eq(lookup(a).unwrap(), d), "{a}");
            }
        }
    }

    #[test]
    fn alarm_syntax() {
        let c = parse_args(args(&["--alarm", "a cmd:cat > /tmp/x", "--alarm=b log:"])).unwrap();
        assert_eq!(c.alarms[0].name, "a");
        assert_eq!(c.alarms[0].kind, "cmd");
        assert_eq!(c.alarms[0].arg, "cat > /tmp/x");
        assert_eq!(c.alarms[1].arg, "");
        let e = parse_args(args(&["--alarm", "a nocolon"])).unwrap_err();
        assert!(
            e.to_string().starts_with("invalid alarm syntax: a nocolon"),
            "{e}"
        );
        let e = parse_args(args(&["--alarm", "nospace"])).unwrap_err();
        assert!(
            e.to_string().starts_with("invalid alarm syntax: nospace"),
            "{e}"
        );
    }

    #[test]
    fn rule_syntax_and_aliases() {
        let c = parse_args(args(&[
            "--alarm-log",
            "a,b ^x y",
            "--not-alarm-log",
            "b z",
            "--log-alarm",
            "a ",
        ]))
        .unwrap();
        assert_eq!(c.rules[0].names, vec!["a", "b"]);
        assert_eq!(c.rules[0].regex(), "^x y");
        assert!(c.rules[1].negate);
        assert_eq!(c.rules[2].regex(), "");
        let e = parse_args(args(&["--log-alarm", "nospace"])).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("invalid log-alarm syntax: nospace"));
        // uWSGI skips empty names (strtok), and so does logalarm, with a warning.
        let c = parse_args(args(&[
            "--alarm",
            "a log:",
            "--alarm",
            "b log:",
            "--log-alarm",
            "a,,b x",
            "--not-log-alarm",
            ", y",
            "--log-alarm",
            "a, b z",
        ]))
        .unwrap();
        assert_eq!(c.rules[0].names, vec!["a", "b"]);
        assert!(c.rules[1].names.is_empty());
        assert_eq!(c.rules[2].names, vec!["a"]);
        assert_eq!(c.rules[2].regex(), "b z");
        assert_eq!(c.warnings.len(), 3, "{:?}", c.warnings);
        assert!(c.warnings[2].contains("empty alarm name in \"a,\" is skipped"));
    }

    #[test]
    fn a_rules_text_is_shared_by_its_trace_and_its_regex_is_the_texts_end() {
        let ini = "[uwsgi]\nalarm = a log:\nlog-alarm = a,b  x y\nnot-log-alarm = a z\n\
                   log-alarm-json = a level=error\nalarm-multiline = a ^\\s\n";
        let c = match parse_ini_str(ini, "t.ini") {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        let rules: Vec<(&str, &str)> = c.rules.iter().map(|r| (&*r.raw, r.regex())).collect();
        assert_eq!(rules[..2], [("a,b  x y", " x y"), ("a z", "z")]);
        assert_eq!(rules[2].0, "a level=error");
        assert_ne!(
            rules[2].1, "level=error",
            "a field rule runs its candidate pattern"
        );
        assert_eq!(rules[3], ("a ^\\s", "^\\s"));
        for (r, t) in c.rules.iter().zip(&c.trace[1..]) {
            assert!(Arc::ptr_eq(&r.raw, &t.written), "{}", r.raw);
        }
        let Origin::Ini { file, line } = &c.rules[1].origin else {
            panic!("not from the ini file");
        };
        assert_eq!((&**file, *line), (Path::new("t.ini"), 4));
    }

    #[test]
    fn bools_as_uwsgi_reads_them() {
        // uWSGI declares `alarm-cheap` with a required value: its command lines have one.
        let cheap = |a: &[&str]| {
            let mut v = vec!["--alarm", "a log:"];
            v.extend_from_slice(a);
            v.extend_from_slice(&["--log-alarm", "a x"]);
            let c = parse_args(args(&v)).unwrap();
            (c.alarm_cheap, c.warnings.len(), c.rules.len())
        };
        assert_eq!(cheap(&["--alarm-cheap", "1"]), (true, 0, 1));
        assert_eq!(cheap(&["--alarm-cheap", "0"]), (false, 0, 1));
        assert_eq!(cheap(&["--alarm-cheap", "False"]), (false, 0, 1));
        assert_eq!(cheap(&["--alarm-cheap", "OFF"]), (false, 0, 1));
        assert_eq!(cheap(&["--alarm-cheap"]), (true, 0, 1));
        assert_eq!(cheap(&["--alarm-cheap=no"]), (false, 0, 1));
        // Any other value is true in uWSGI; logalarm says so, since it may be a typo.
        assert_eq!(cheap(&["--alarm-cheap", "enable"]), (true, 1, 1));
        assert_eq!(cheap(&["--alarm-cheap", "n"]), (true, 1, 1));
        // A flag uWSGI declares without a value takes only a boolean word after it.
        let c = parse_args(args(&["--tail-from-start", "off", "--tail", "/x"])).unwrap();
        assert!(!c.tail_from_start);
        let e = parse_args(args(&["--tail-from-start", "/x"])).unwrap_err();
        assert!(e.to_string().contains("unexpected argument: /x"), "{e}");
        // `-S` is uWSGI's short `--set`.
        let c = parse_args(args(&["-S", "alarm-freq=7"])).unwrap();
        assert_eq!(c.alarm_freq, Duration::from_secs(7));
        let c = parse_ini_str("[uwsgi]\nalarm-cheap = flase\n", "b.ini").unwrap();
        assert!(c.alarm_cheap);
        assert!(
            c.warnings[0].contains("alarm-cheap = flase: read as true"),
            "{:?}",
            c.warnings
        );
        assert!(c.warnings[0].contains("b.ini:2"), "{:?}", c.warnings);
    }

    #[test]
    fn numbers_and_bools() {
        let c = parse_args(args(&[
            "--alarm-freq",
            "0",
            "--alarm-msg-size=10",
            "--alarm-cheap",
            "--log-master-bufsize",
            "100",
        ]))
        .unwrap();
        assert_eq!(c.alarm_freq, Duration::ZERO);
        assert_eq!(c.alarm_msg_size, 10);
        assert!(c.alarm_cheap);
        assert_eq!(c.log_master_bufsize, 100);
        let e = parse_args(args(&["--alarm-freq", "-1"])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid alarm-freq: `-1`: must not be negative"
        );
        let e = parse_args(args(&["--alarm-freq", "abc"])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid alarm-freq: `abc`: not a whole number"
        );
        let c = parse_args(args(&["--alarm-cheap=maybe"])).unwrap();
        assert!(c.alarm_cheap && c.warnings[0].contains("alarm-cheap = maybe"));
        let e = parse_args(args(&["--log-master-bufsize", "0"])).unwrap_err();
        assert!(e.to_string().contains("between 1 and"));
    }

    #[test]
    fn unknown_and_missing() {
        let e = parse_args(args(&["--nope"])).unwrap_err();
        assert_eq!(e.to_string(), "unknown option: --nope (see --help)");
        let e = parse_args(args(&["--alarm"])).unwrap_err();
        assert!(e.to_string().starts_with("option --alarm needs a value"));
        let e = parse_args(args(&["stray"])).unwrap_err();
        assert!(e.to_string().contains("unexpected argument: stray"));
    }

    #[test]
    fn command_after_double_dash() {
        let c = parse_args(args(&["--alarm-cheap", "--", "sh", "-c", "--alarm x"])).unwrap();
        assert_eq!(c.command, args(&["sh", "-c", "--alarm x"]));
    }

    #[test]
    fn alarm_fd_syntax() {
        let d = parse_alarm_fd("a 5:8 the msg: with colon", &Origin::Cli).unwrap();
        assert_eq!(
            (d.fd, d.bytes, d.message.as_str()),
            (5, Some(8), "the msg: with colon")
        );
        let d = parse_alarm_fd("a 5 m", &Origin::Cli).unwrap();
        assert_eq!(d.bytes, None);
        let d = parse_alarm_fd("a 5:0 m", &Origin::Cli).unwrap();
        assert_eq!(d.bytes, None);
        assert!(parse_alarm_fd("a x m", &Origin::Cli).is_err());
        assert!(parse_alarm_fd("a", &Origin::Cli).is_err());
    }

    #[test]
    fn ini_interleaves_with_cli_and_reports_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.ini");
        std::fs::write(
            &p,
            "[uwsgi]\nsocket = /tmp/x\nalarm = b log:\nlog-alarm = b \\d+\n[logalarm]\nalarm-cheap\n",
        )
        .unwrap();
        let c = parse_args(args(&[
            "--alarm",
            "a log:",
            "--ini",
            p.to_str().unwrap(),
            "--alarm",
            "c log:",
        ]))
        .unwrap();
        let names: Vec<&str> = c.alarms.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, vec!["a", "b", "c"]);
        assert_eq!(c.rules[0].regex(), "\\d+");
        assert!(c.alarm_cheap);
        assert_eq!(c.warnings.len(), 1);
        assert!(c.warnings[0].contains("socket"));
        assert!(c.warnings[0].contains("a.ini:2"));

        std::fs::write(&p, "[uwsgi]\nalarm-freq = -3\n").unwrap();
        let e = parse_args(args(&["--ini", p.to_str().unwrap()])).unwrap_err();
        assert!(e.to_string().ends_with("a.ini:2)"), "{e}");

        std::fs::write(&p, format!("[uwsgi]\nini = {}\n", p.display())).unwrap();
        let e = parse_args(args(&["--ini", p.to_str().unwrap()])).unwrap_err();
        assert!(e.to_string().contains("included from itself"), "{e}");

        let e = parse_args(args(&["--ini", "/nonexistent/x.ini"])).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/x.ini"), "{e}");
    }

    #[test]
    fn ini_files_without_their_section_too_large_or_too_many_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.ini");
        let load = |text: &[u8]| {
            std::fs::write(&p, text).unwrap();
            parse_args(args(&["--ini", p.to_str().unwrap()]))
        };
        let c = load(b"\xef\xbb\xbf[uwsgi]\nalarm = a log:\n").unwrap();
        assert_eq!(c.alarms.len(), 1, "a byte order mark is skipped");
        let e = load(b"[uWSGI]\nalarm = a log:\n").unwrap_err().to_string();
        assert!(
            e.contains("no [uwsgi] or [logalarm] section") && e.contains("[uWSGI]"),
            "{e}"
        );
        let e = load(b"alarm = a log:\n").unwrap_err().to_string();
        assert!(e.contains("put `[uwsgi]` before"), "{e}");
        let c = load(b"[uwsgi]\nalarm = a log:\n[UWSGI]\nalarm = b log:\n").unwrap();
        assert_eq!(c.alarms.len(), 1);
        assert!(c.warnings[0].contains("[UWSGI]"), "{:?}", c.warnings);
        let mut big = b"[uwsgi]\n".to_vec();
        big.resize(17 << 20, b';');
        let e = load(&big).unwrap_err().to_string();
        assert!(e.contains("larger than 16 MiB"), "{e}");
        // Ten includes of one file, six levels deep: refused at 64 files, not read for ever.
        for level in 0..6 {
            let next = dir.path().join(format!("l{}.ini", level + 1));
            let mut text = String::from("[uwsgi]\n");
            for _ in 0..10 {
                text.push_str(&format!("ini = {}\n", next.display()));
            }
            std::fs::write(dir.path().join(format!("l{level}.ini")), text).unwrap();
        }
        std::fs::write(dir.path().join("l6.ini"), "[uwsgi]\n").unwrap();
        let top = dir.path().join("l0.ini");
        let e = parse_args(args(&["--ini", top.to_str().unwrap()]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("more than 64 ini files"), "{e}");
    }

    #[test]
    fn a_huge_value_makes_a_short_error() {
        let rule = format!("a ({}", "x".repeat(10 << 20));
        let e = parse_args(args(&["--alarm", "a log:", "--log-alarm", &rule]))
            .and_then(|c| crate::plan::build(&c).map(|_| c))
            .unwrap_err()
            .to_string();
        assert!(e.len() < 2048, "{} bytes", e.len());
        assert!(
            e.starts_with("invalid log-alarm: a (xxx") && e.contains("bytes cut"),
            "{e}"
        );
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact_arg("curl", "smtp://h;auth_user=u;auth_pass=secret;subject=x"),
            "smtp://h;auth_user=u;auth_pass=***;subject=x"
        );
        assert_eq!(redact_arg("curl", "https://u:pw@h/p"), "https://u:***@h/p");
        assert_eq!(redact_arg("xmpp", "a@b;pw;c@d"), "a@b;***;c@d");
        assert_eq!(
            redact_arg("airbrake", "http://e/n;apikey=K"),
            "http://e/n;apikey=***"
        );
        let e = parse_args(args(&["--alarm", "mnospace;auth_pass=secret"])).unwrap_err();
        assert!(!e.to_string().contains("secret"), "{e}");
        // A password holding `=`, and a URL password in a mistyped definition.
        assert_eq!(redact_arg("xmpp", "a@b;p=w;c@d"), "a@b;***;c@d");
        assert_eq!(redact_value("x xmpp:a@b;p=w;c@d"), "x xmpp:a@b;***;c@d");
        assert_eq!(
            redact_value("m curl http://u:pw@h/x"),
            "m curl http://u:***@h/x"
        );
        assert_eq!(
            redact_value("m curl:smtp://u:pw@h;mail_to=a https://v:pw2@i"),
            "m curl:smtp://u:***@h;mail_to=a https://v:***@i"
        );
    }

    #[test]
    fn help_mentions_every_option() {
        let h = help_text();
        for d in OPTIONS {
            assert!(h.contains(&format!("--{}", d.name)));
            for a in d.aliases {
                assert!(h.contains(&format!("--{a}")));
            }
        }
    }
}

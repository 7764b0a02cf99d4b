//! uWSGI's option stream: every option, from the command line and from ini files, in the order
//! uWSGI reads them, before any is applied.
//!
//! Role: [`Stream::export`] is uWSGI's `add_exported_option`. It keeps each `key = value` in
//! order and acts at once on the options that shape the list itself, as uWSGI does: `ini` and
//! `include` read a file's options in place (`FILE:SECTION` picks a section), `inherit` reads
//! one after everything else, uWSGI's config logic (`if-env`, `if-exists`, `if-opt`, `for`,
//! `for-glob`, ... up to `endif`/`endfor`/`end`) keeps, drops or repeats the options inside its
//! block with `%(_)` replaced, and `set`/`set-placeholder` add a `NAME=VALUE`. Then
//! [`Stream::resolve`] makes every value what uWSGI's three passes make it: `$(NAME)` the
//! environment, `@(PATH)` a file, `%(name)` the first value of the option `name` anywhere in the
//! stream (before or after; placeholders inside it read in turn), with uWSGI's arithmetic
//! (`%(workers + 1)`).
//! Invariant: ini text is borrowed by span, never copied per line (Debian's 2,101 rules in one
//! file are 2,101 entries and no allocation each); only values that logic or a placeholder
//! rewrites are owned.
//! Rejected alternative: applying each option as it is read (logalarm did until 2026-12-05):
//! `%(name)` can only see what came before, and an `if-env` block can only be ignored, so both
//! branches of an `if-env`/`if-not-env` pair applied, two `alarm` lines of one name and a
//! start-up error where uWSGI runs.

use std::borrow::Cow;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{ini, lookup, ConfigError, Origin};

/// Deepest ini nesting (an include loop must not recurse for ever).
const MAX_INI_DEPTH: usize = 8;
/// Most ini files read in all (includes fanning out must not read for ever).
const MAX_INI_FILES: usize = 64;
/// Most placeholder substitutions in one value (uWSGI loops for ever on `a = %(a)`).
const MAX_SUBSTITUTIONS: usize = 1_000;
/// Most bytes placeholders may add to one value.
const MAX_EXPANDED: usize = 256 << 10;
/// Largest ini text after its magic variables (spans are 32-bit).
const MAX_EXPANDED_INI: usize = 64 << 20;
/// Most options in all (`for-times = 1000000000` must not take the machine's memory).
const MAX_OPTIONS: usize = 1 << 20;
/// Largest file `for-readline` reads.
const MAX_READLINE: u64 = 16 << 20;

/// Every option's value after the passes, and the names placeholders looked up.
pub(crate) type Resolved<'a> = (Vec<Cow<'a, str>>, HashSet<String>);

/// A key or value: a span of one of the stream's ini texts, or text of its own.
#[derive(Debug, Clone)]
pub(crate) enum Text {
    Span { text: u32, start: u32, end: u32 },
    Owned(Box<str>),
}

impl Text {
    pub(crate) fn owned(s: &str) -> Text {
        Text::Owned(s.into())
    }
}

/// One option as read (uWSGI's "exported option").
#[derive(Debug, Clone)]
pub(crate) struct Exported {
    key: Text,
    value: Text,
    pub(crate) origin: Origin,
    /// Acted on while reading (`ini`, logic, placeholders): not applied again, and (as in
    /// uWSGI) not expanded by the passes, though still a placeholder's source.
    pub(crate) configured: bool,
}

/// uWSGI's config logic: what a block's condition or loop is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Logic {
    For,
    ForGlob,
    ForTimes,
    ForReadline,
    IfOpt(bool),
    IfEnv(bool),
    IfReload(bool),
    IfHostname(bool),
    IfHostnameMatch(bool),
    IfExists(bool),
    IfFile(bool),
    IfDir(bool),
    IfPlugin(bool),
}

/// Every logic option of uWSGI 2.0.21, with its aliases (`true` in `If*`: the positive form).
const LOGIC: &[(&str, Logic)] = &[
    ("for", Logic::For),
    ("for-glob", Logic::ForGlob),
    ("for-times", Logic::ForTimes),
    ("for-readline", Logic::ForReadline),
    ("if-opt", Logic::IfOpt(true)),
    ("if-not-opt", Logic::IfOpt(false)),
    ("if-env", Logic::IfEnv(true)),
    ("ifenv", Logic::IfEnv(true)),
    ("if-not-env", Logic::IfEnv(false)),
    ("if-reload", Logic::IfReload(true)),
    ("if-not-reload", Logic::IfReload(false)),
    ("if-hostname", Logic::IfHostname(true)),
    ("if-not-hostname", Logic::IfHostname(false)),
    ("if-hostname-match", Logic::IfHostnameMatch(true)),
    ("if-not-hostname-match", Logic::IfHostnameMatch(false)),
    ("if-exists", Logic::IfExists(true)),
    ("ifexists", Logic::IfExists(true)),
    ("if-not-exists", Logic::IfExists(false)),
    ("if-file", Logic::IfFile(true)),
    ("if-not-file", Logic::IfFile(false)),
    ("if-dir", Logic::IfDir(true)),
    ("ifdir", Logic::IfDir(true)),
    ("if-directory", Logic::IfDir(true)),
    ("if-not-dir", Logic::IfDir(false)),
    ("if-plugin", Logic::IfPlugin(true)),
    ("ifplugin", Logic::IfPlugin(true)),
    ("if-not-plugin", Logic::IfPlugin(false)),
];

/// The keys that end a logic block (`end` is no option of uWSGI's, but ends one in a file).
const ENDS: [&str; 5] = ["end", "endfor", "end-for", "endif", "end-if"];

/// What reading an option does at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Act {
    Nothing,
    Ini,
    Include,
    Inherit,
    Logic(Logic),
    /// `set` (`false`: the name may be an option) or `set-placeholder`/`set-ph` (`true`).
    Set(bool),
    End,
}

fn act(key: &str) -> Act {
    match key {
        "ini" => Act::Ini,
        "include" => Act::Include,
        "inherit" => Act::Inherit,
        "set" => Act::Set(false),
        "set-placeholder" | "set-ph" => Act::Set(true),
        k if ENDS.contains(&k) => Act::End,
        k => LOGIC
            .iter()
            .find(|(name, _)| *name == k)
            .map_or(Act::Nothing, |&(_, l)| Act::Logic(l)),
    }
}

/// Whether `key` is one of the options this module acts on while reading (so the command line
/// accepts it and an ini file does not warn about it), and whether it takes a value there.
pub(crate) fn stream_option(key: &str) -> Option<bool> {
    match act(key) {
        Act::Nothing => None,
        // `end` is no command-line option of uWSGI's either.
        Act::End if key == "end" => None,
        Act::End | Act::Logic(Logic::IfReload(_)) => Some(false),
        _ => Some(true),
    }
}

/// An open logic block: its kind, its argument, where it opened.
#[derive(Debug, Clone)]
struct Block {
    logic: Logic,
    key: String,
    arg: String,
    origin: Origin,
}

/// The options read so far, and the reader's state.
#[derive(Debug, Default)]
pub(crate) struct Stream {
    texts: Vec<String>,
    pub(crate) opts: Vec<Exported>,
    block: Option<Block>,
    /// Inside a block's own `add` (uWSGI's `logic_opt_running`).
    running: bool,
    /// This read is a reload (`if-reload`).
    reload: bool,
    /// The files (and sections) being read, outermost first.
    stack: Vec<(PathBuf, Option<String>)>,
    files: usize,
    /// The last ini file read (`--ini :section` reads another section of it).
    last_file: Option<String>,
    inherit: Vec<(String, Origin)>,
    pub(crate) warnings: Vec<String>,
}

impl Stream {
    pub(crate) fn new(reload: bool) -> Stream {
        Stream {
            reload,
            ..Stream::default()
        }
    }

    pub(crate) fn text<'s>(&'s self, t: &'s Text) -> &'s str {
        match t {
            Text::Span { text, start, end } => self
                .texts
                .get(*text as usize)
                .and_then(|s| s.get(*start as usize..*end as usize))
                .unwrap_or(""),
            Text::Owned(s) => s,
        }
    }

    pub(crate) fn key<'s>(&'s self, e: &'s Exported) -> &'s str {
        self.text(&e.key)
    }

    /// `t[from..to]` (byte offsets into its text) as a text of its own kind.
    fn sub(&self, t: &Text, from: usize, to: usize) -> Text {
        match t {
            Text::Span { text, start, .. } => Text::Span {
                text: *text,
                start: *start + from as u32,
                end: *start + to as u32,
            },
            Text::Owned(s) => Text::owned(s.get(from..to).unwrap_or("")),
        }
    }

    /// uWSGI's `add_exported_option`: an end key closes the open block; inside a block the
    /// block decides (nothing, once, or once per loop item, `%(_)` replaced); else it is added.
    pub(crate) fn export(
        &mut self,
        key: Text,
        value: Text,
        origin: &Origin,
    ) -> Result<(), ConfigError> {
        if !self.running {
            if act(self.text(&key)) == Act::End {
                self.block = None;
            }
            if let Some(block) = self.block.clone() {
                self.running = true;
                let res = self.run_block(&block, key, value, origin);
                self.running = false;
                return res;
            }
        }
        self.add(key, value, origin)
    }

    fn add(&mut self, key: Text, value: Text, origin: &Origin) -> Result<(), ConfigError> {
        let what = act(self.text(&key));
        let idx = self.opts.len();
        if idx >= MAX_OPTIONS {
            return Err(ConfigError::new(
                format!(
                    "invalid {}: more than {MAX_OPTIONS} options in all (a loop too long?)",
                    self.text(&key)
                ),
                origin,
            ));
        }
        self.opts.push(Exported {
            key,
            value,
            origin: origin.clone(),
            configured: what != Act::Nothing,
        });
        let e = &self.opts[idx];
        let (key, value) = (self.text(&e.key), self.text(&e.value));
        match what {
            Act::Nothing | Act::End => Ok(()),
            Act::Ini => {
                let spec = expand_path("ini", value, origin)?;
                self.load_ini(&spec, origin)
            }
            Act::Include | Act::Inherit => {
                let spec = expand_path(key, value, origin)?;
                let file = spec.rsplit_once(':').map_or(spec.as_str(), |(f, _)| f);
                if !file.ends_with(".ini") && !Path::new(&spec).is_file() {
                    return Err(ConfigError::new(
                        format!("invalid {key}: {spec}: only ini files are read (uWSGI's xml, yaml and json configurations are not)"),
                        origin,
                    ));
                }
                if what == Act::Inherit {
                    self.inherit.push((spec, origin.clone()));
                    Ok(())
                } else {
                    self.load_ini(&spec, origin)
                }
            }
            Act::Logic(logic) => {
                if self.block.is_some() {
                    return Err(ConfigError::new(
                        format!("recursive logic in options is not supported (option = {key})"),
                        origin,
                    ));
                }
                self.block = Some(Block {
                    logic,
                    key: key.to_string(),
                    arg: value.to_string(),
                    origin: origin.clone(),
                });
                Ok(())
            }
            Act::Set(placeholder_only) => {
                let Some(eq) = value.find('=') else {
                    return Err(ConfigError::new(
                        format!("invalid {key}: {value}: expected NAME=VALUE (invalid placeholder/--set value)"),
                        origin,
                    ));
                };
                let name = &value[..eq];
                if placeholder_only && (lookup(name).is_some() || act(name) != Act::Nothing) {
                    return Err(ConfigError::new(
                        format!("invalid {key}: you cannot use {name} as a placeholder, it is already available as an option"),
                        origin,
                    ));
                }
                let v = &self.opts[idx].value;
                let (name, val) = (self.sub(v, 0, eq), self.sub(v, eq + 1, value.len()));
                if placeholder_only {
                    self.opts.push(Exported {
                        key: name,
                        value: val,
                        origin: origin.clone(),
                        configured: true,
                    });
                    Ok(())
                } else {
                    self.add(name, val, origin)
                }
            }
        }
    }

    /// An option inside an open block: added as the block decides.
    fn run_block(
        &mut self,
        block: &Block,
        key: Text,
        value: Text,
        origin: &Origin,
    ) -> Result<(), ConfigError> {
        let arg = block.arg.as_str();
        let fail = |why: String| {
            ConfigError::new(
                format!("invalid {}: {arg}: {why}", block.key),
                &block.origin,
            )
        };
        // Each Some(x): add once with `%(_)` as x; None: add once as written.
        let items: Vec<Option<String>> = match block.logic {
            Logic::For => arg
                .split(' ')
                .filter(|t| !t.is_empty())
                .map(|t| Some(t.to_string()))
                .collect(),
            Logic::ForGlob => crate::sys::glob(arg)
                .map_err(|e| fail(e.to_string()))?
                .into_iter()
                .map(Some)
                .collect(),
            Logic::ForTimes => {
                let n = atoi(arg);
                if n > MAX_OPTIONS as i64 {
                    return Err(fail(format!("more than {MAX_OPTIONS} times")));
                }
                (1..=n.max(0)).map(|n| Some(n.to_string())).collect()
            }
            Logic::ForReadline => super::read_small_file(arg, MAX_READLINE)
                .map_err(fail)?
                .split_inclusive(|&b| b == b'\n')
                .map(|l| {
                    let l = l.strip_suffix(b"\n").unwrap_or(l);
                    let l = l.strip_suffix(b"\r").unwrap_or(l);
                    Some(String::from_utf8_lossy(l).into_owned())
                })
                .collect(),
            Logic::IfOpt(want) | Logic::IfEnv(want) => {
                let (name, expected) = match arg.split_once('=') {
                    Some((n, v)) => (n, Some(v)),
                    None => (arg, None),
                };
                let found = if matches!(block.logic, Logic::IfOpt(_)) {
                    self.first_value(name).map(str::to_string)
                } else if name.is_empty() {
                    None
                } else {
                    std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
                };
                let holds = match (&found, expected) {
                    (Some(f), Some(e)) => f == e,
                    (Some(_), None) => true,
                    (None, _) => false,
                };
                if holds == want {
                    vec![found]
                } else {
                    Vec::new()
                }
            }
            Logic::IfReload(want) => when(self.reload == want, None),
            Logic::IfHostname(want) => {
                when((crate::sys::uname().nodename == arg) == want, Some(arg))
            }
            Logic::IfHostnameMatch(want) => {
                let re = pcre2::bytes::Regex::new(arg).map_err(|e| fail(e.to_string()))?;
                let host = crate::sys::uname().nodename;
                let hit = re
                    .is_match(host.as_bytes())
                    .map_err(|e| fail(e.to_string()))?;
                when(hit == want, Some(arg))
            }
            Logic::IfExists(want) => when(Path::new(arg).exists() == want, Some(arg)),
            Logic::IfFile(want) => when(Path::new(arg).is_file() == want, Some(arg)),
            Logic::IfDir(want) => when(Path::new(arg).is_dir() == want, Some(arg)),
            // logalarm has no plugins.
            Logic::IfPlugin(want) => when(!want, Some(arg)),
        };
        for item in items {
            let value = match item {
                Some(with) if self.text(&value).contains("%(_)") => {
                    Text::owned(&self.text(&value).replace("%(_)", &with))
                }
                _ => value.clone(),
            };
            self.add(key.clone(), value, origin)?;
        }
        Ok(())
    }

    /// uWSGI's `uwsgi_get_exported_opt`: the first value given to `key` so far.
    fn first_value(&self, key: &str) -> Option<&str> {
        self.opts
            .iter()
            .find(|e| self.text(&e.key) == key)
            .map(|e| self.text(&e.value))
    }

    /// Read an ini file (`PATH`, `PATH:SECTION`, or `:SECTION` of the last file read) into the
    /// stream, its magic variables applied.
    pub(crate) fn load_ini(&mut self, spec: &str, origin: &Origin) -> Result<(), ConfigError> {
        let (file, section) = match spec.rsplit_once(':') {
            // A path that holds a `:` itself is read whole.
            Some(_) if Path::new(spec).is_file() => (spec.to_string(), None),
            Some((f, s)) => {
                let f = if f.is_empty() {
                    self.last_file.clone().ok_or_else(|| {
                        ConfigError::new(
                            format!("invalid ini: {spec}: no ini file read before to take section [{s}] from"),
                            origin,
                        )
                    })?
                } else {
                    f.to_string()
                };
                (f, (!s.is_empty()).then(|| s.to_string()))
            }
            None => (spec.to_string(), None),
        };
        self.last_file = Some(file.clone());
        let path = PathBuf::from(&file);
        let frame = (path.clone(), section);
        if self.stack.len() >= MAX_INI_DEPTH || self.stack.contains(&frame) {
            return Err(ConfigError::new(
                format!(
                    "invalid ini: {}: included from itself or nested too deep",
                    path.display()
                ),
                origin,
            ));
        }
        self.files += 1;
        if self.files > MAX_INI_FILES {
            return Err(ConfigError::new(
                format!(
                    "invalid ini: {}: more than {MAX_INI_FILES} ini files in all",
                    path.display()
                ),
                origin,
            ));
        }
        let text = ini::load(&path).map_err(|e| {
            ConfigError::new(format!("invalid ini: {}: {}", path.display(), e), origin)
        })?;
        let section = frame.1.clone();
        self.stack.push(frame);
        let res = self.read_ini_text(text, &path, section.as_deref(), origin);
        self.stack.pop();
        res
    }

    /// Ini text read as the file `path` (its magic variables applied): its accepted section's
    /// entries exported in order.
    pub(crate) fn read_ini_text(
        &mut self,
        text: String,
        path: &Path,
        section: Option<&str>,
        origin: &Origin,
    ) -> Result<(), ConfigError> {
        let text = match ini::magic(&text, path) {
            Cow::Owned(t) => t,
            Cow::Borrowed(_) => text,
        };
        if text.len() > MAX_EXPANDED_INI {
            return Err(ConfigError::new(
                format!(
                    "invalid ini: {}: its magic variables make it larger than {} MiB",
                    path.display(),
                    MAX_EXPANDED_INI >> 20
                ),
                origin,
            ));
        }
        let spans = {
            let parsed = ini::parse(&text, section);
            accepted(&parsed, path, section, &mut self.warnings, origin)?;
            let base = text.as_ptr() as usize;
            // An empty key or value may be a literal "" (no `=`): any empty span will do.
            let at = |s: &str| {
                if s.is_empty() {
                    0
                } else {
                    (s.as_ptr() as usize).saturating_sub(base) as u32
                }
            };
            parsed
                .entries
                .iter()
                .map(|e| {
                    (
                        (at(e.key), at(e.key) + e.key.len() as u32),
                        (at(e.value), at(e.value) + e.value.len() as u32),
                        e.line,
                    )
                })
                .collect::<Vec<_>>()
        };
        let id = self.texts.len() as u32;
        self.texts.push(text);
        let file: Arc<Path> = Arc::from(path);
        self.opts.reserve(spans.len());
        for ((ks, ke), (vs, ve), line) in spans {
            let o = Origin::Ini {
                file: file.clone(),
                line,
            };
            let key = Text::Span {
                text: id,
                start: ks,
                end: ke,
            };
            let value = Text::Span {
                text: id,
                start: vs,
                end: ve,
            };
            self.export(key, value, &o)?;
        }
        Ok(())
    }

    /// The end of reading: `inherit` files (read after everything else, as uWSGI reads them
    /// while applying the options), and a warning for a block never closed.
    pub(crate) fn finish(&mut self) -> Result<(), ConfigError> {
        while !self.inherit.is_empty() {
            let pending = std::mem::take(&mut self.inherit);
            for (spec, origin) in pending {
                self.load_ini(&spec, &origin)?;
            }
        }
        if let Some(b) = &self.block {
            self.warnings.push(format!(
                "`{} = {}`{} has no endif/endfor: it holds to the end of the configuration, as in uWSGI",
                b.key, b.arg, b.origin
            ));
        }
        Ok(())
    }

    /// Every option's value after uWSGI's passes: `$(NAME)`, then `@(PATH)`, then `%(name)`
    /// (see the module's doc). Options acted on while reading keep what they had. `@(PATH)`
    /// that cannot be read is an error for a logalarm option (it may be a password), and left
    /// as written for another.
    /// Also returns the names placeholders looked up (not options, but no typos either).
    pub(crate) fn resolve(&self) -> Result<Resolved<'_>, ConfigError> {
        let mut values: Vec<Cow<'_, str>> = Vec::with_capacity(self.opts.len());
        let mut any_placeholder = false;
        for e in &self.opts {
            let v = self.text(&e.value);
            if e.configured {
                values.push(Cow::Borrowed(v));
                continue;
            }
            let key = self.text(&e.key);
            let strict = lookup(key).is_some();
            let v = expand_env_files(key, v, &e.origin, strict)?;
            any_placeholder |= v.contains("%(");
            values.push(v);
        }
        if !any_placeholder {
            return Ok((values, HashSet::new()));
        }
        let used = std::cell::RefCell::new(HashSet::new());
        let mut first: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        for (i, e) in self.opts.iter().enumerate() {
            first.entry(self.text(&e.key)).or_insert(i);
        }
        // In order, each value replaced as it is resolved, as uWSGI's pass does: a placeholder
        // (or an arithmetic operand) reads a key's value resolved when the key came before,
        // and as written (then read again) when it comes after.
        for i in 0..values.len() {
            let e = &self.opts[i];
            if e.configured || !values[i].contains("%(") {
                continue;
            }
            let resolved = {
                let value_of = |n: &str| {
                    let v = first.get(n).map(|&j| values[j].to_string());
                    if v.is_some() {
                        used.borrow_mut().insert(n.to_string());
                    }
                    v
                };
                let hook = |name: &str| -> Option<String> {
                    if name.contains(' ') {
                        return Some(arithmetic(name, value_of));
                    }
                    value_of(name)
                };
                placeholders(&values[i], hook).ok_or_else(|| {
                    ConfigError::new(
                        format!(
                            "invalid {}: {}: its placeholders expand without end (one refers to itself)",
                            self.text(&e.key),
                            &values[i]
                        ),
                        &e.origin,
                    )
                })?
            };
            values[i] = Cow::Owned(resolved);
        }
        Ok((values, used.into_inner()))
    }
}

/// A logic result: once with `%(_)` as `with`, or not at all.
fn when(holds: bool, with: Option<&str>) -> Vec<Option<String>> {
    if holds {
        vec![with.map(str::to_string)]
    } else {
        Vec::new()
    }
}

/// C's `atoi`: leading white space, a sign, digits; 0 when none.
fn atoi(s: &str) -> i64 {
    let s = s.trim_start();
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let n = digits
        .bytes()
        .take_while(u8::is_ascii_digit)
        .fold(0i64, |n, d| {
            n.saturating_mul(10).saturating_add(i64::from(d - b'0'))
        });
    if neg {
        -n
    } else {
        n
    }
}

/// An ini file's parse must have its section: a file without it is an error (uWSGI only
/// warns, and then runs without the alarms the file was meant to define); sections that differ
/// from the one asked only in case get a warning.
fn accepted(
    parsed: &ini::Parsed<'_>,
    path: &Path,
    section: Option<&str>,
    warnings: &mut Vec<String>,
    origin: &Origin,
) -> Result<(), ConfigError> {
    let wanted = section.map_or("[uwsgi]".to_string(), |s| format!("[{s}]"));
    for (name, line) in &parsed.near_misses {
        warnings.push(format!(
            "section [{name}] of {}:{line} ignored: section names are compared exactly, as uWSGI does (write {wanted})",
            path.display()
        ));
    }
    if parsed.accepted {
        return Ok(());
    }
    let hint = match parsed.near_misses.first() {
        Some((name, _)) => {
            format!(" (it has [{name}]: section names are compared exactly, as uWSGI does)")
        }
        None => format!(" (put `{wanted}` before the options)"),
    };
    let what = match section {
        Some(s) => format!("[{s}]"),
        None => "[uwsgi] or [logalarm]".to_string(),
    };
    Err(ConfigError::new(
        format!("invalid ini: {}: no {what} section{hint}", path.display()),
        origin,
    ))
}

/// An `ini`/`include` path with `$(NAME)` and `@(PATH)` expanded (uWSGI reads it as written;
/// logalarm also lets it name a directory from the environment).
fn expand_path(opt: &str, v: &str, o: &Origin) -> Result<String, ConfigError> {
    Ok(expand_env_files(opt, v, o, true)?.into_owned())
}

/// uWSGI's scan for `SYMBOL(KEY)` in `v` (`uwsgi_apply_config_pass`): the key runs to the `)`
/// that closes its `(`, inner parentheses included; `hook` gives its value or leaves it as
/// written. `again`: the text put in is scanned again (placeholders inside placeholders);
/// else scanning goes on after it (the environment's and files' text is taken as it is).
/// `None` when substitutions never end.
fn scan<E>(
    v: &str,
    symbol: u8,
    again: bool,
    mut hook: impl FnMut(&str) -> Result<Option<String>, E>,
) -> Result<Option<String>, E> {
    let mut out = v.to_string();
    let mut from = 0;
    let mut count = 0;
    // Where the placeholders that hold the one being read start (`%(a%(b))`: `%(a`), outermost
    // first: after a substitution inside them the scan starts again at the outermost, not at
    // the value's start (uWSGI's), so a value is read in time linear in what it puts in.
    let mut open: Vec<usize> = Vec::new();
    'outer: loop {
        let bytes = out.as_bytes();
        let mut j = from;
        let mut mark: Option<usize> = None;
        while j < bytes.len() {
            let c = bytes[j];
            if c == symbol {
                mark = Some(j);
            } else if c == b'(' && mark == Some(j.wrapping_sub(1)) {
                let start = j + 1;
                let mut depth = 0usize;
                let mut k = start;
                while k < bytes.len() {
                    match bytes[k] {
                        b'(' => depth += 1,
                        b')' if depth > 0 => depth -= 1,
                        b')' => break,
                        // A symbol inside starts another key (uWSGI's scan starts again there).
                        b if b == symbol => break,
                        _ => {}
                    }
                    k += 1;
                }
                if k < bytes.len() && bytes[k] == b')' && k > start {
                    if let Some(val) = hook(&out[start..k])? {
                        count += 1;
                        if count > MAX_SUBSTITUTIONS
                            || out.len() + val.len() > MAX_EXPANDED + v.len()
                        {
                            return Ok(None);
                        }
                        let head = j - 1;
                        out.replace_range(head..=k, &val);
                        // Again: from the outermost placeholder around it, or from the byte
                        // before it (a symbol there and a `(` put in make a new one).
                        from = if again {
                            open.first()
                                .map_or(head, |&o| o.min(head))
                                .saturating_sub(1)
                        } else {
                            head + val.len()
                        };
                        open.clear();
                        continue 'outer;
                    }
                }
                if k < bytes.len() && bytes[k] == symbol {
                    open.push(j - 1);
                }
                mark = None;
                j = k.max(j + 1);
                continue;
            } else {
                mark = None;
            }
            j += 1;
        }
        return Ok(Some(out));
    }
}

/// `$(NAME)` (the environment; left as written when unset) and `@(PATH)` (the file without its
/// last newline) in `v`. `strict`: a file that cannot be read is an error; else left as written.
pub(super) fn expand_env_files<'a>(
    opt: &str,
    v: &'a str,
    o: &Origin,
    strict: bool,
) -> Result<Cow<'a, str>, ConfigError> {
    let mut v: Cow<'a, str> = Cow::Borrowed(v);
    if v.contains("$(") {
        let env = |name: &str| -> Result<Option<String>, ConfigError> {
            Ok(std::env::var_os(name).map(|s| s.to_string_lossy().into_owned()))
        };
        if let Some(s) = scan(&v, b'$', false, env)? {
            v = Cow::Owned(s);
        }
    }
    if v.contains("@(") {
        let file = |path: &str| -> Result<Option<String>, ConfigError> {
            match super::read_at_file(opt, path, o) {
                Ok(s) => Ok(Some(s)),
                Err(e) if strict => Err(e),
                Err(_) => Ok(None),
            }
        };
        if let Some(s) = scan(&v, b'@', false, file)? {
            v = Cow::Owned(s);
        }
    }
    Ok(v)
}

/// `%(name)` placeholders in `v`, each replaced by `hook`'s value and read again; `None` when
/// they never end.
fn placeholders(v: &str, mut hook: impl FnMut(&str) -> Option<String>) -> Option<String> {
    let r: Result<Option<String>, std::convert::Infallible> = scan(v, b'%', true, |k| Ok(hook(k)));
    r.unwrap_or_else(|never| match never {})
}

/// uWSGI's placeholder arithmetic (`uwsgi_manage_placeholder`, a key with a space): tokens are
/// numbers, option names (their value, empty when none) and `+ - * /` (applied to what came
/// before and the next token as 64-bit integers, `/ 0` giving 0), `++`/`--`; anything else is
/// concatenated.
fn arithmetic(key: &str, value: impl Fn(&str) -> Option<String>) -> String {
    #[derive(Clone, Copy)]
    enum Op {
        Concat,
        Sum,
        Sub,
        Mul,
        Div,
    }
    let num = atoi;
    let mut current: Option<String> = None;
    let mut op = Op::Concat;
    for token in key.split(' ').filter(|t| !t.is_empty()) {
        let arith = match token {
            "+" => Some(Op::Sum),
            "-" => Some(Op::Sub),
            "*" => Some(Op::Mul),
            "/" => Some(Op::Div),
            _ => None,
        };
        if let Some(next) = arith {
            op = next;
            continue;
        }
        let v = match token {
            "++" | "--" => {
                if let Some(c) = &current {
                    let d = if token == "++" { 1 } else { -1 };
                    current = Some(num(c).wrapping_add(d).to_string());
                }
                op = Op::Concat;
                continue;
            }
            t if is_a_number(t) => t.to_string(),
            t => value(t).unwrap_or_default(),
        };
        let a = current.as_deref().map_or(0, num);
        let b = num(&v);
        current = Some(match op {
            Op::Concat => format!("{}{v}", current.as_deref().unwrap_or("")),
            Op::Sum => a.wrapping_add(b).to_string(),
            Op::Sub => a.wrapping_sub(b).to_string(),
            Op::Mul => a.wrapping_mul(b).to_string(),
            Op::Div => a.checked_div(b).unwrap_or(0).to_string(),
        });
        op = Op::Concat;
    }
    current.unwrap_or_default()
}

/// uWSGI's `is_a_number`: every byte a digit (an empty token is one too).
fn is_a_number(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(ini_text: &str) -> Result<Vec<(String, String)>, ConfigError> {
        let mut s = Stream::new(false);
        s.read_ini_text(
            ini_text.to_string(),
            Path::new("/tmp/t.ini"),
            None,
            &Origin::Cli,
        )?;
        s.finish()?;
        let (values, _) = s.resolve()?;
        Ok(s.opts
            .iter()
            .zip(values)
            .filter(|(e, _)| !e.configured)
            .map(|(e, v)| (s.key(e).to_string(), v.into_owned()))
            .collect())
    }

    fn printed(ini_text: &str) -> Vec<String> {
        stream(ini_text)
            .unwrap()
            .into_iter()
            .filter(|(k, _)| k == "print")
            .map(|(_, v)| v)
            .collect()
    }

    #[test]
    fn placeholders_as_uwsgi_resolves_them() {
        // The values uWSGI 2.0.21 prints for the same file (its `print` option).
        let p = printed(
            "[uwsgi]\nx = first\nprint = A %(x) B %(later) C %(nest) D %(x x) E %(nope)\nx = second\nlater = L\nnest = N%(x)\n",
        );
        assert_eq!(p, ["A first B L C Nfirst D firstfirst E %(nope)"]);
        let p = printed(
            "[uwsgi]\nprint = [%(a)] [x%(a)] [%(q)] [%(num + 2)] [%(num * num)] [%(num ++)] [%(v w)] [%(num / 0)] [%(a(b))] [%(v%(w))]\na = %(b)\nb = %(c)\nc = C\nq = %(a)%(a)\nnum = 7\nv = V\nw = W\n",
        );
        assert_eq!(p, ["[C] [xC] [CC] [9] [49] [8] [VW] [0] [%(a(b))] [%(vW)]"]);
        // A placeholder inside another's name is read first (uWSGI prints `[both]`).
        let p = printed("[uwsgi]\nv = V\nw = W\nvW = both\nprint = [%(v%(w))]\n");
        assert_eq!(p, ["[both]"]);
        // One that refers to itself is an error (it grows 8 bytes a turn until the cap).
        let e = stream("[uwsgi]\nx = 1 y=%(x)\nlog-alarm = a %(x)\n").unwrap_err();
        assert!(e.to_string().contains("expand without end"), "{e}");
        // An operand that came before is read resolved (uWSGI 2.0.21 prints `x0 77%(k3)`).
        let p = printed("[uwsgi]\nk1 = 7%(k3)\nk0 = 7%(k1 k3)\nprint = x%(k1 / k0) %(k0)\n");
        assert_eq!(p, ["x0 77%(k3)"]);
        let e = stream("[uwsgi]\nlog-alarm = a %(a)\na = x%(a)\n").unwrap_err();
        assert!(e.to_string().contains("expand without end"), "{e}");
    }

    #[test]
    fn logic_as_uwsgi_runs_it() {
        std::env::set_var("LOGALARM_TEST_LOGIC", "yes");
        let p = printed(concat!(
            "[uwsgi]\n",
            "for = one two\nprint = loop %(_)\nendfor =\n",
            "if-env = LOGALARM_TEST_LOGIC\nprint = env %(_)\nendif =\n",
            "if-env = LOGALARM_TEST_LOGIC=no\nprint = wrong value\nendif =\n",
            "if-not-env = LOGALARM_SURELY_UNSET_VAR\nprint = unset %(_)\nend-if =\n",
            "if-env = LOGALARM_SURELY_UNSET_VAR\nif-env = PATH\nprint = skipped\nendif =\nprint = after\n",
            "for-times = 3\nprint = t%(_)\nend-for\n",
            "if-exists = /\nprint = exists %(_)\nendif\n",
            "if-dir = /nonexistent\nprint = no dir\nendif\n",
            "if-opt = num=7\nprint = too early\nendif\nnum = 7\nif-opt = num=7\nprint = opt %(_)\nendif\n",
            "set = print=via set\nset-ph = ph=PH\nprint = ph %(ph)\n",
            "if-not-plugin = python\nprint = no plugins\nend\n",
            "if-reload\nprint = reload\nendif\n",
        ));
        assert_eq!(
            p,
            [
                "loop one",
                "loop two",
                "env yes",
                "unset %(_)",
                "after",
                "t1",
                "t2",
                "t3",
                "exists /",
                "opt 7",
                "via set",
                "ph PH",
                "no plugins"
            ]
        );
        let e = stream("[uwsgi]\nif-env = PATH\nif-env = HOME\nendif\n").unwrap_err();
        assert!(
            e.to_string()
                .contains("recursive logic in options is not supported (option = if-env)"),
            "{e}"
        );
        let e = stream("[uwsgi]\nset-ph = alarm=x\n").unwrap_err();
        assert!(
            e.to_string().contains("cannot use alarm as a placeholder"),
            "{e}"
        );
        let e = stream("[uwsgi]\nfor-times = 99999999999\nprint = %(_)\n").unwrap_err();
        assert!(e.to_string().contains("more than 1048576 times"), "{e}");
        let e = stream("[uwsgi]\nfor-readline = /dev/zero\nprint = %(_)\n").unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let e = stream("[uwsgi]\nfor = a b\nfor-times = 1048576\nprint = %(_)\n").unwrap_err();
        assert!(e.to_string().contains("recursive logic"), "{e}");
        let e =
            stream("[uwsgi]\nfor-times = 1048576\nprint = %(_)\nprint = again %(_)\n").unwrap_err();
        assert!(e.to_string().contains("options in all"), "{e}");
        let e = stream("[uwsgi]\nset = zz\n").unwrap_err();
        assert!(e.to_string().contains("expected NAME=VALUE"), "{e}");
        let mut s = Stream::new(false);
        s.read_ini_text(
            "[uwsgi]\nif-env = PATH\nprint = x\n".into(),
            Path::new("/tmp/t.ini"),
            None,
            &Origin::Cli,
        )
        .unwrap();
        s.finish().unwrap();
        assert!(s.warnings[0].contains("has no endif"), "{:?}", s.warnings);
    }

    #[test]
    fn scans_as_uwsgi_does() {
        let env = |k: &str| -> Result<Option<String>, ()> {
            Ok(match k {
                "A" => Some("$(B)".into()),
                "B" => Some("b".into()),
                _ => None,
            })
        };
        assert_eq!(scan("x$(A)y", b'$', false, env), Ok(Some("x$(B)y".into())));
        assert_eq!(scan("$(B)$(B)", b'$', false, env), Ok(Some("bb".into())));
        assert_eq!(
            scan("$(Z) $() $(B", b'$', false, env),
            Ok(Some("$(Z) $() $(B".into()))
        );
        assert_eq!(atoi("  12x"), 12);
        assert_eq!(atoi("-3"), -3);
        assert_eq!(atoi("x"), 0);
        assert_eq!(arithmetic("a + 1", |_| Some("41".into())), "42");
        assert_eq!(arithmetic("nope 5", |_| None), "5");
    }
}

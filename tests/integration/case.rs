//! The one scenario format: `tests/cases/*.toml`, read by two runners.
//!
//! A case is a configuration (alarm names and an ini fragment), an input, and what must come of
//! it. `scenarios` runs every self-contained case through the real binary (each alarm a `log:`
//! alarm, read back from the output) and through the library pipeline at three chunkings;
//! `conformance` runs every case not marked `uwsgi = false` through the real uWSGI beside
//! logalarm (each alarm a `cmd:` recorder). Records are `NAME<TAB>message` in both.

use std::path::{Path, PathBuf};

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Case {
    pub(crate) description: String,
    /// Whether the real uWSGI runs it too (default: yes). Scenarios of logalarm-only behaviour
    /// (chunking, binary input, its own option handling) say `false`.
    #[serde(default = "yes")]
    pub(crate) uwsgi: bool,
    /// Alarm names: the runner defines each (`log:` or a `cmd:` recorder).
    #[serde(default)]
    pub(crate) alarms: Vec<String>,
    /// The rest of the configuration (rules, alarm-freq, ...), ini syntax without the section.
    pub(crate) config: String,
    /// Extra command-line options (logalarm only; e.g. an empty regex, which an ini trims).
    #[serde(default)]
    pub(crate) args: Vec<String>,
    /// The input as lines (each gets a `\n`) ...
    #[serde(default)]
    pub(crate) lines: Vec<String>,
    /// ... or as exact text (CRLF, no final newline) ...
    #[serde(default)]
    pub(crate) input: Option<String>,
    /// ... or as hex bytes (NUL, invalid UTF-8).
    #[serde(default)]
    pub(crate) input_hex: Option<String>,
    /// Lines taken from a corpus file under tests/data/corpus (path, first line, count).
    #[serde(default)]
    pub(crate) corpus: Option<(String, usize, usize)>,
    #[serde(default)]
    pub(crate) delay_ms: u64,
    /// What logalarm must raise, as records; `expect_hex`: `NAME<TAB>HEX MESSAGE`.
    #[serde(default)]
    pub(crate) expect: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) expect_hex: Vec<String>,
    /// For documented deviations: the records each side must produce.
    #[serde(default)]
    pub(crate) deviation: Option<String>,
    #[serde(default)]
    pub(crate) expect_uwsgi: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) expect_logalarm: Option<Vec<String>>,
    /// Start-up error case: both must exit non-zero and name this text.
    #[serde(default)]
    pub(crate) error_names: Option<String>,
    /// Deviation where uWSGI accepts the configuration and logalarm refuses it, naming this.
    #[serde(default)]
    pub(crate) logalarm_error_names: Option<String>,
    /// Raw writes instead of `lines`: each string is written with one `write()` (several lines
    /// in one write test the framing deviation).
    #[serde(default)]
    pub(crate) writes: Vec<String>,
    /// `curl:` alarms over HTTP: each `NAME[;key=val...]` becomes
    /// `alarm = NAME curl:http://127.0.0.1:PORT/NAME[;key=val...]` against a request recorder
    /// (tests/servers/http_recorder.py) whose records are `NAME<TAB>METHOD body`.
    #[serde(default)]
    pub(crate) curl: Vec<String>,
    /// A shell snippet whose standard output both get as descriptor 5 (for `alarm-fd`).
    #[serde(default)]
    pub(crate) fd5: Option<String>,
}

fn yes() -> bool {
    true
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every case file, sorted. Fewer than `min` is a failure (a lost directory must not pass).
pub(crate) fn paths(min: usize) -> Vec<PathBuf> {
    let dir = root().join("tests/cases");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    v.sort();
    assert!(
        v.len() >= min,
        "only {} cases in {}",
        v.len(),
        dir.display()
    );
    v
}

pub(crate) fn load(path: &Path) -> Case {
    let text = std::fs::read_to_string(path).unwrap();
    toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

impl Case {
    /// The input lines (`lines`, then the corpus lines). A missing corpus file fails loudly.
    pub(crate) fn lines(&self) -> Vec<String> {
        let mut lines = self.lines.clone();
        if let Some((file, first, count)) = &self.corpus {
            let path = root().join("tests/data/corpus").join(file);
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e} (corpus input of a case)", path.display()));
            assert!(
                text.lines().count() >= first + count,
                "{}: fewer than {} lines",
                path.display(),
                first + count
            );
            lines.extend(
                text.lines()
                    .skip(*first)
                    .take(*count)
                    .map(|l| l.trim_end_matches('\r').to_string()),
            );
        }
        lines
    }

    /// The input as bytes, whichever way the case gives it.
    pub(crate) fn input_bytes(&self) -> Vec<u8> {
        if let Some(s) = &self.input {
            return s.as_bytes().to_vec();
        }
        if let Some(h) = &self.input_hex {
            return unhex(h);
        }
        if !self.writes.is_empty() {
            return self.writes.concat().into_bytes();
        }
        let mut v = Vec::new();
        for l in self.lines() {
            v.extend_from_slice(l.as_bytes());
            v.push(b'\n');
        }
        v
    }

    /// The records logalarm must produce from the whole input at once, when the case says
    /// (`expect`, `expect_hex`; `expect_logalarm` belongs to the conformance run, with its
    /// delays and writes).
    pub(crate) fn expected(&self) -> Option<Vec<Vec<u8>>> {
        let text = self.expect.as_ref();
        if text.is_none() && self.expect_hex.is_empty() {
            return None;
        }
        let mut v: Vec<Vec<u8>> = text
            .into_iter()
            .flatten()
            .map(|s| s.as_bytes().to_vec())
            .collect();
        for h in &self.expect_hex {
            let (name, hex) = h.split_once('\t').expect("expect_hex is NAME<TAB>HEX");
            let mut r = format!("{name}\t").into_bytes();
            r.extend(unhex(hex));
            v.push(r);
        }
        Some(v)
    }

    /// Whether logalarm alone can run it from its input (no server, descriptor or error).
    pub(crate) fn self_contained(&self) -> bool {
        self.curl.is_empty()
            && self.fd5.is_none()
            && self.error_names.is_none()
            && self.logalarm_error_names.is_none()
    }
}

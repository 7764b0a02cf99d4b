//! Bench inputs: the loghub samples of `tests/data/corpus` (CRLF normalised), the rule sets of
//! `benches/rules`, and synthetic lines of chosen shapes.

#![allow(dead_code)]

use std::path::PathBuf;

use logalarm::RuleSet;

/// Every pattern raising alarm 0, with the default `log-master-bufsize`.
pub(crate) fn build(pats: &[String]) -> RuleSet {
    let v: Vec<&str> = pats.iter().map(String::as_str).collect();
    RuleSet::one_alarm(&v, 8192).unwrap_or_else(|e| panic!("rule {:?}: {e}", e.rule))
}

/// The repository's own data (`tests/data/corpus`, `benches/rules`).
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// About 3 MiB of real, mixed log lines: every loghub sample of `tests/data/corpus/loghub`,
/// CRLF normalised. A missing or empty directory is a panic (the bench would measure nothing).
pub(crate) fn corpus() -> Vec<u8> {
    let dir = root().join("tests/data/corpus/loghub");
    let rd = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut files: Vec<_> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let b = std::fs::read(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        out.extend(b.into_iter().filter(|&c| c != b'\r'));
    }
    assert!(!out.is_empty(), "{}: no log samples", dir.display());
    out
}

/// Rule set `benches/rules/rules{n}.txt` (a missing file is a panic).
pub(crate) fn rules(n: usize) -> Vec<String> {
    let p = root().join(format!("benches/rules/rules{n}.txt"));
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

/// Lines of `len` bytes, one in `every` containing `NEEDLE` (0: none).
pub(crate) fn synthetic(total: usize, len: usize, every: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(total + len);
    let mut i = 0usize;
    while out.len() < total {
        let start = out.len();
        out.extend_from_slice(format!("Nov 23 10:00:00 host app[{i}]: ").as_bytes());
        if every > 0 && i.is_multiple_of(every) {
            out.extend_from_slice(b"NEEDLE ");
        }
        while out.len() - start < len.saturating_sub(1) {
            out.extend_from_slice(b"lorem ipsum dolor sit amet ");
        }
        out.truncate(start + len.saturating_sub(1).max(1));
        out.push(b'\n');
        i += 1;
    }
    out
}

//! Shared bench inputs: the loghub samples (../shared/corpus, CRLF normalised) and the rule sets
//! of ../shared/bench, with synthetic stand-ins when those are not next to the repository.

#![allow(dead_code)]

use std::path::PathBuf;

use logalarm::rules::RuleSet;

/// Every pattern raising alarm 0, with the default `log-master-bufsize`.
pub fn build(pats: &[String]) -> RuleSet {
    let v: Vec<&str> = pats.iter().map(String::as_str).collect();
    RuleSet::one_alarm(&v, 8192).unwrap_or_else(|(i, e)| panic!("rule {i}: {e}"))
}

pub fn shared() -> PathBuf {
    std::env::var_os("LOGALARM_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared")))
}

/// About 3 MiB of real, mixed log lines.
pub fn corpus() -> Vec<u8> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(shared().join("corpus/loghub")) {
        let mut files: Vec<_> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        files.sort();
        for f in files {
            if let Ok(b) = std::fs::read(&f) {
                out.extend(b.into_iter().filter(|&c| c != b'\r'));
            }
        }
    }
    if out.is_empty() {
        for i in 0..40_000 {
            out.extend_from_slice(
                format!(
                    "2026-11-23 10:00:{:02},123 INFO [worker-{i}] request served in {i} ms\n",
                    i % 60
                )
                .as_bytes(),
            );
        }
    }
    out
}

/// Rule set `rules{n}.txt`, or a synthetic one.
pub fn rules(n: usize) -> Vec<String> {
    match std::fs::read_to_string(shared().join(format!("bench/rules{n}.txt"))) {
        Ok(t) => t
            .lines()
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect(),
        Err(_) => (0..n).map(|i| format!("ERROR code {i}\\d+")).collect(),
    }
}

/// Lines of `len` bytes, one in `every` containing `NEEDLE` (0: none).
pub fn synthetic(total: usize, len: usize, every: usize) -> Vec<u8> {
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

//! The rules cache: what start-up learns about each rule of a large set (its literals, whether
//! it is plain, whether it is heavy), kept on disk so that the next start need not parse the
//! rules the literal search finds (they are parsed at their group's first candidate line); and
//! the thrash probe's verdicts on the same set, so that the next start need not probe again.
//!
//! Role: [`load`] finds the record of exactly this rule set made by exactly this executable,
//! [`store`] writes one; [`load_probe`] and [`store_probe`] do the same for the probe's
//! verdicts (a file of their own: they come later than the rules' record). Invariants: a record is used only when the executable (device, inode,
//! size, modification time), logalarm's version and every pattern, in order, are those it was
//! made from, its checksum holds, and it and its directory belong to this user and are writable
//! by nobody else (a planted record could hide rules); anything else is a miss, and a miss costs
//! only the parse it would have saved. Writes are atomic (a new file renamed into place,
//! `O_EXCL|O_NOFOLLOW`, mode 0600, directory 0700); the newest [`KEEP`] records are kept.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::sys;

/// What a rule set's start-up keeps of one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    /// The rule's literals and whether they compare ignoring case (`rule_needles`).
    pub lits: Option<(Vec<Vec<u8>>, bool)>,
    /// The rule is exactly its literal (no automaton needed: `gate::is_plain`).
    pub plain: bool,
    /// The rule is exactly its one literal at the line's start (`gate::is_prefix`).
    pub prefix: bool,
    /// The rule is compiled alone at start-up (see `EAGER_WEIGHT`).
    pub heavy: bool,
}

/// Rule sets at least this large use the cache (smaller ones start in a few milliseconds).
pub(crate) const MIN_RULES: usize = 256;
/// Records kept in the directory (the newest), of each kind.
const KEEP: usize = 16;
/// The largest record read (50,000 literals of 32 bytes fit many times over).
const MAX_BYTES: u64 = 64 << 20;

/// What a file of the cache holds.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// The rules' [`Record`]s.
    Rules,
    /// The thrash probe's verdicts: the rules whose lazy DFA thrashes, with their speed.
    Probe,
}

impl Kind {
    fn magic(self) -> &'static [u8; 8] {
        match self {
            Kind::Rules => b"LARULES1",
            Kind::Probe => b"LAPROBE1",
        }
    }

    /// The file names' prefix.
    fn name(self) -> &'static str {
        match self {
            Kind::Rules => "rules-",
            Kind::Probe => "probe-",
        }
    }
}

/// The file of `kind` for `patterns` made by this executable, and its key, or None when the
/// executable cannot be identified.
fn record_path(dir: &Path, kind: Kind, patterns: &[&str]) -> Option<(PathBuf, u64)> {
    let exe = std::fs::metadata("/proc/self/exe").ok()?;
    let mut h = DefaultHasher::new();
    kind.magic().hash(&mut h);
    env!("CARGO_PKG_VERSION").hash(&mut h);
    env!("LOGALARM_GIT").hash(&mut h);
    (
        exe.dev(),
        exe.ino(),
        exe.size(),
        exe.mtime(),
        exe.mtime_nsec(),
    )
        .hash(&mut h);
    patterns.len().hash(&mut h);
    for p in patterns {
        p.hash(&mut h);
    }
    let key = h.finish();
    Some((dir.join(format!("{}{key:016x}.cache", kind.name())), key))
}

/// The records for `patterns`, one per pattern, when a valid one is in `dir`. `Err` names why
/// a record that is there was not used (its directory or file is writable by others).
pub(crate) fn load(dir: &Path, patterns: &[&str]) -> Result<Option<Vec<Record>>, String> {
    Ok(read(dir, Kind::Rules, patterns)?.and_then(|(b, key)| decode(&b, key, patterns.len())))
}

/// Write the records for `patterns` into `dir` (made 0700 if missing), replacing any record of
/// the same set; the oldest records beyond [`KEEP`] go.
pub(crate) fn store(dir: &Path, patterns: &[&str], records: &[Record]) -> io::Result<()> {
    write(dir, Kind::Rules, patterns, |key| encode(records, key))
}

/// The thrash probe's verdicts on `patterns` when a valid record of them is in `dir`: the
/// indices of the rules that thrash, each with its speed (MB/s); empty when none does. `Err`
/// as for [`load`].
pub(crate) fn load_probe(dir: &Path, patterns: &[&str]) -> Result<Option<Vec<(u32, f64)>>, String> {
    Ok(
        read(dir, Kind::Probe, patterns)?
            .and_then(|(b, key)| decode_probe(&b, key, patterns.len())),
    )
}

/// Write the thrash probe's verdicts on `patterns` (as [`load_probe`] returns them) into `dir`,
/// as [`store`] does.
pub(crate) fn store_probe(
    dir: &Path,
    patterns: &[&str],
    thrashing: &[(u32, f64)],
) -> io::Result<()> {
    write(dir, Kind::Probe, patterns, |key| {
        encode_probe(thrashing, key, patterns.len())
    })
}

/// The bytes of the file of `kind` for `patterns` in `dir` and the key they must carry, when
/// it is there, private and not too large.
fn read(dir: &Path, kind: Kind, patterns: &[&str]) -> Result<Option<(Vec<u8>, u64)>, String> {
    let Some((path, key)) = record_path(dir, kind, patterns) else {
        return Ok(None);
    };
    let Ok(dmeta) = std::fs::symlink_metadata(dir) else {
        return Ok(None);
    };
    let mut f = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
    {
        Ok(f) => f,
        Err(_) => return Ok(None),
    };
    let Ok(fmeta) = f.metadata() else {
        return Ok(None);
    };
    if !dmeta.is_dir() || !sys::private(&dmeta) || !sys::private(&fmeta) {
        return Err(format!(
            "{}: not used: it or its directory belongs to another user or is writable by others",
            path.display()
        ));
    }
    if fmeta.len() > MAX_BYTES {
        return Ok(None);
    }
    let mut bytes = Vec::with_capacity(fmeta.len() as usize);
    if f.read_to_end(&mut bytes).is_err() {
        return Ok(None);
    }
    Ok(Some((bytes, key)))
}

/// Write the file of `kind` for `patterns` into `dir` (made 0700 if missing) atomically, its
/// bytes made by `encode` from its key; the oldest files of `kind` beyond [`KEEP`] go.
fn write(
    dir: &Path,
    kind: Kind,
    patterns: &[&str],
    encode: impl FnOnce(u64) -> Vec<u8>,
) -> io::Result<()> {
    let Some((path, key)) = record_path(dir, kind, patterns) else {
        return Ok(());
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let dmeta = std::fs::symlink_metadata(dir)?;
    if !dmeta.is_dir() || !sys::private(&dmeta) {
        return Err(io::Error::other(
            "the directory belongs to another user or is writable by others",
        ));
    }
    sys::replace_file(&path, kind.name(), &encode(key))?;
    prune(dir, kind);
    Ok(())
}

/// Remove all but the newest [`KEEP`] files of `kind`.
fn prune(dir: &Path, kind: Kind) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut records: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.starts_with(kind.name()) && n.ends_with(".cache")
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    if records.len() <= KEEP {
        return;
    }
    records.sort_by_key(|r| std::cmp::Reverse(r.0));
    for (_, p) in records.into_iter().skip(KEEP) {
        let _ = std::fs::remove_file(p);
    }
}

fn checksum(bytes: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

/// The frame of every file: its kind's magic, its key, the rule count, the `body`, then the
/// checksum of all that.
fn frame(kind: Kind, key: u64, n: usize, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 32);
    out.extend_from_slice(kind.magic());
    out.extend_from_slice(&key.to_le_bytes());
    out.extend_from_slice(&(n as u64).to_le_bytes());
    out.extend_from_slice(body);
    let sum = checksum(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// The body of `bytes` when they are whole and framed for `kind`, `key` and `n` rules.
fn unframe(bytes: &[u8], kind: Kind, key: u64, n: usize) -> Option<Reader<'_>> {
    let (body, sum) = bytes.split_at_checked(bytes.len().checked_sub(8)?)?;
    if checksum(body) != u64::from_le_bytes(sum.try_into().ok()?) {
        return None;
    }
    let mut r = Reader(body);
    if r.take(8)? != kind.magic() || r.u64()? != key || r.u64()? != n as u64 {
        return None;
    }
    Some(r)
}

/// Framed (see [`frame`]): per rule, a flags byte, the literal count, each literal's length
/// and bytes.
fn encode(records: &[Record], key: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        let (lits, ci) = match &r.lits {
            Some((l, ci)) => (&l[..], *ci),
            None => (&[][..], false),
        };
        let flags = u8::from(r.lits.is_some())
            | u8::from(ci) << 1
            | u8::from(r.plain) << 2
            | u8::from(r.heavy) << 3
            | u8::from(r.prefix) << 4;
        out.push(flags);
        out.extend_from_slice(&(lits.len() as u32).to_le_bytes());
        for l in lits {
            out.extend_from_slice(&(l.len() as u32).to_le_bytes());
            out.extend_from_slice(l);
        }
    }
    frame(Kind::Rules, key, records.len(), &out)
}

/// The records of `bytes` when they are whole, made for `key` and hold `n` rules.
fn decode(bytes: &[u8], key: u64, n: usize) -> Option<Vec<Record>> {
    let mut r = unframe(bytes, Kind::Rules, key, n)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let flags = r.take(1)?[0];
        let count = r.u32()? as usize;
        let mut lits = Vec::with_capacity(count.min(64));
        for _ in 0..count {
            let len = r.u32()? as usize;
            lits.push(r.take(len)?.to_vec());
        }
        out.push(Record {
            lits: (flags & 1 != 0).then_some((lits, flags & 2 != 0)),
            plain: flags & 4 != 0,
            heavy: flags & 8 != 0,
            prefix: flags & 16 != 0,
        });
    }
    r.0.is_empty().then_some(out)
}

/// Framed (see [`frame`], for `n` rules): the count of thrashing rules, then each one's index
/// and speed (the bits of an f64).
fn encode_probe(thrashing: &[(u32, f64)], key: u64, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + thrashing.len() * 12);
    out.extend_from_slice(&(thrashing.len() as u32).to_le_bytes());
    for &(i, mb) in thrashing {
        out.extend_from_slice(&i.to_le_bytes());
        out.extend_from_slice(&mb.to_bits().to_le_bytes());
    }
    frame(Kind::Probe, key, n, &out)
}

/// The verdicts of `bytes` when they are whole, made for `key` and `n` rules, and name only
/// rules below `n`.
fn decode_probe(bytes: &[u8], key: u64, n: usize) -> Option<Vec<(u32, f64)>> {
    let mut r = unframe(bytes, Kind::Probe, key, n)?;
    let count = r.u32()? as usize;
    let mut out = Vec::with_capacity(count.min(n));
    for _ in 0..count {
        let i = r.u32()?;
        let mb = f64::from_bits(r.u64()?);
        if i as usize >= n {
            return None;
        }
        out.push((i, mb));
    }
    r.0.is_empty().then_some(out)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (a, b) = self.0.split_at_checked(n)?;
        self.0 = b;
        Some(a)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

/// The cache directory when none is given: `$XDG_CACHE_HOME/logalarm`, else
/// `$HOME/.cache/logalarm`; None without either.
pub(crate) fn default_dir() -> Option<PathBuf> {
    let abs = |v: std::ffi::OsString| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").and_then(abs) {
        return Some(x.join("logalarm"));
    }
    std::env::var_os("HOME")
        .and_then(abs)
        .map(|h| h.join(".cache").join("logalarm"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records() -> Vec<Record> {
        vec![
            Record {
                lits: Some((vec![b"disk full".to_vec(), b"no space".to_vec()], false)),
                plain: true,
                heavy: false,
                prefix: false,
            },
            Record {
                lits: None,
                plain: false,
                heavy: true,
                prefix: false,
            },
            Record {
                lits: Some((vec![b"error".to_vec()], true)),
                plain: false,
                heavy: false,
                prefix: false,
            },
            Record {
                lits: Some((vec![b"STORM".to_vec()], false)),
                plain: false,
                heavy: false,
                prefix: true,
            },
        ]
    }

    #[test]
    fn a_record_is_used_only_for_its_own_rules_whole_and_private() {
        let dir = std::env::temp_dir().join(format!("logalarm-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let pats = ["disk full|no space", "a{2000}", "(?i)error", "^STORM"];
        assert_eq!(load(&dir, &pats), Ok(None), "nothing there yet");
        store(&dir, &pats, &records()).unwrap();
        assert_eq!(load(&dir, &pats), Ok(Some(records())));
        let mode = std::fs::metadata(&dir).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
        // Another rule set, or the same rules in another order: a miss.
        assert_eq!(load(&dir, &pats[..2]), Ok(None));
        assert_eq!(load(&dir, &[pats[1], pats[0], pats[2], pats[3]]), Ok(None));
        // A damaged record: a miss.
        let (path, _) = record_path(&dir, Kind::Rules, &pats).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(load(&dir, &pats), Ok(None));
        bytes.truncate(mid);
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(load(&dir, &pats), Ok(None));
        // A record others may write: refused, saying why.
        store(&dir, &pats, &records()).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o666))
            .unwrap();
        assert!(load(&dir, &pats).is_err_and(|e| e.contains("writable by others")));
        // A link planted in its place is not followed.
        std::fs::remove_file(&path).unwrap();
        let other = dir.join("elsewhere");
        store(&dir, &pats, &records()).unwrap();
        std::fs::rename(&path, &other).unwrap();
        std::os::unix::fs::symlink(&other, &path).unwrap();
        assert_eq!(load(&dir, &pats), Ok(None));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_the_newest_records_are_kept() {
        let dir = std::env::temp_dir().join(format!("logalarm-prune-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let names: Vec<String> = (0..KEEP + 4).map(|i| format!("rule {i}")).collect();
        for n in &names {
            store(&dir, &[n.as_str()], &records()[..1]).unwrap();
        }
        let kept = std::fs::read_dir(&dir).unwrap().count();
        assert_eq!(kept, KEEP);
        let last = names.last().unwrap().as_str();
        assert!(load(&dir, &[last]).is_ok_and(|r| r.is_some()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_probes_verdicts_are_kept_apart_from_the_rules_record() {
        let dir = std::env::temp_dir().join(format!("logalarm-probe-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let pats = ["disk full|no space", "(a|b)*a(a|b){20}c", "(?i)error"];
        assert_eq!(load_probe(&dir, &pats), Ok(None), "nothing there yet");
        store(&dir, &pats, &records()[..3]).unwrap();
        assert_eq!(
            load_probe(&dir, &pats),
            Ok(None),
            "the rules' record is not the probe's"
        );
        store_probe(&dir, &pats, &[(1, 0.25)]).unwrap();
        assert_eq!(load_probe(&dir, &pats), Ok(Some(vec![(1, 0.25)])));
        assert_eq!(load(&dir, &pats), Ok(Some(records()[..3].to_vec())));
        store_probe(&dir, &pats[..2], &[]).unwrap();
        assert_eq!(
            load_probe(&dir, &pats[..2]),
            Ok(Some(vec![])),
            "none thrashes"
        );
        // A damaged verdict is a miss; one others may write is refused.
        let (path, _) = record_path(&dir, Kind::Probe, &pats).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 9;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(load_probe(&dir, &pats), Ok(None));
        store_probe(&dir, &pats, &[(1, 0.25)]).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o646))
            .unwrap();
        assert!(load_probe(&dir, &pats).is_err_and(|e| e.contains("writable by others")));
        // Every cut refused; an index beyond the rules refused.
        let bytes = encode_probe(&[(0, 1.5), (2, 3.0)], 9, 3);
        assert_eq!(decode_probe(&bytes, 9, 3), Some(vec![(0, 1.5), (2, 3.0)]));
        assert_eq!(decode_probe(&bytes, 9, 2), None);
        assert_eq!(
            decode(&bytes, 9, 3),
            None,
            "a probe record is not a rules record"
        );
        for cut in 0..bytes.len() {
            assert_eq!(decode_probe(&bytes[..cut], 9, 3), None);
        }
        assert_eq!(decode_probe(&encode_probe(&[(3, 1.0)], 9, 3), 9, 3), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn decode_refuses_every_cut_of_a_record() {
        let bytes = encode(&records(), 7);
        assert_eq!(decode(&bytes, 7, 4), Some(records()));
        assert_eq!(decode(&bytes, 8, 4), None);
        assert_eq!(decode(&bytes, 7, 2), None);
        for cut in 0..bytes.len() {
            assert_eq!(decode(&bytes[..cut], 7, 4), None);
        }
    }
}

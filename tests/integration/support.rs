//! What the integration tests share: running the real binary, waiting for files, TLS material
//! made with the real `openssl`, and test servers started on 127.0.0.1 and stopped on drop.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The binary under test: this build's, or another build of the same source named by
/// `LOGALARM_TEST_BIN` (scripts/static-musl.sh runs the delivery tests on the static binary).
pub(crate) fn bin_path() -> PathBuf {
    std::env::var_os("LOGALARM_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_logalarm")))
}

pub(crate) fn bin() -> Command {
    Command::new(bin_path())
}

/// Spawn the binary with piped stdin, stdout and stderr.
pub(crate) fn spawn_open(args: &[&str]) -> Child {
    bin()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Spawn the binary with stdin from /dev/null (its inputs are elsewhere) and piped stdout and
/// stderr.
pub(crate) fn spawn_detached(args: &[&str]) -> Child {
    bin()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Every password and key the tests give logalarm: none may ever appear in what logalarm says
/// about itself (standard error), whatever the test.
pub(crate) const SECRETS: &[&str] = &[
    "hunter2",
    "alarmpw",
    "APIKEY123",
    "s3cret",
    "s3cr3t",
    "pa55word",
    "WRONGpw",
    "K3Y",
    "sekret",
    "opspw",
    "devpw",
];

/// Fail if logalarm's standard error holds one of the tests' [`SECRETS`].
pub(crate) fn assert_no_secret(stderr: &[u8]) {
    let text = String::from_utf8_lossy(stderr);
    for s in SECRETS {
        assert!(
            !text.contains(s),
            "a secret ({s}) on standard error: {text}"
        );
    }
}

/// Run with `input` on stdin (written from a thread, so large inputs cannot deadlock). Its
/// standard error is checked for the tests' secrets.
pub(crate) fn run(args: &[&str], input: Vec<u8>) -> Output {
    let mut cmd = bin();
    cmd.args(args);
    run_cmd(cmd, input)
}

/// [`run`] of a command made by the caller (its arguments and environment; stdio is piped).
pub(crate) fn run_cmd(mut cmd: Command, input: Vec<u8>) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let w = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    w.join().unwrap();
    assert_no_secret(&out.stderr);
    out
}

/// Read `path` until `pred` holds or `secs` pass; the last content either way.
pub(crate) fn wait_for(path: &Path, pred: impl Fn(&[u8]) -> bool, secs: u64) -> Vec<u8> {
    let t = Instant::now();
    loop {
        let got = std::fs::read(path).unwrap_or_default();
        if pred(&got) || t.elapsed() > Duration::from_secs(secs) {
            return got;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Wait until `pred` holds; fail the test after `secs` seconds naming `what`.
pub(crate) fn wait_until(what: &str, secs: u64, mut pred: impl FnMut() -> bool) {
    let t = Instant::now();
    while !pred() {
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A loopback port free now.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether `program` runs; under CI (`CI` set) a missing one fails the test, since
/// `scripts/test.sh` installs it.
pub(crate) fn have(program: &str, check: &[&str]) -> bool {
    let ok = Command::new(program)
        .args(check)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "{program} is missing: scripts/test.sh installs it"
        );
        eprintln!("SKIPPED: {program} is missing (scripts/test.sh installs it)");
    }
    ok
}

/// A CA and a leaf it signed for localhost/127.0.0.1, plus a leaf signed by another CA that
/// nobody trusts.
pub(crate) struct Tls {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) ca: PathBuf,
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
    pub(crate) rogue_cert: PathBuf,
    pub(crate) rogue_key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Tls {
    pub(crate) fn new() -> Tls {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("leaf.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        for who in ["ca", "rogue"] {
            openssl(
                d,
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:prime256v1",
                    "-nodes",
                    "-keyout",
                    &format!("{who}.key"),
                    "-out",
                    &format!("{who}.pem"),
                    "-days",
                    "30",
                    "-subj",
                    &format!("/CN=logalarm test {who}"),
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign",
                ],
            );
            let leaf = if who == "ca" { "leaf" } else { "rogue-leaf" };
            openssl(
                d,
                &[
                    "req",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:prime256v1",
                    "-nodes",
                    "-keyout",
                    &format!("{leaf}.key"),
                    "-out",
                    &format!("{leaf}.csr"),
                    "-subj",
                    "/CN=localhost",
                ],
            );
            openssl(
                d,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &format!("{leaf}.csr"),
                    "-CA",
                    &format!("{who}.pem"),
                    "-CAkey",
                    &format!("{who}.key"),
                    "-CAcreateserial",
                    "-out",
                    &format!("{leaf}.pem"),
                    "-days",
                    "30",
                    "-extfile",
                    "leaf.ext",
                ],
            );
        }
        Tls {
            ca: d.join("ca.pem"),
            cert: d.join("leaf.pem"),
            key: d.join("leaf.key"),
            rogue_cert: d.join("rogue-leaf.pem"),
            rogue_key: d.join("rogue-leaf.key"),
            dir,
        }
    }
}

/// A test server process: killed when dropped. `banner` is its first stdout line.
pub(crate) struct Server {
    child: Child,
    pub(crate) banner: String,
    pub(crate) records: PathBuf,
}

impl Server {
    /// Start `python3 tests/servers/SCRIPT --records FILE ARGS...` and read its banner.
    pub(crate) fn start(script: &str, records: &Path, args: &[&str]) -> Server {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/servers")
            .join(script);
        let mut child = Command::new("python3")
            .arg(path)
            .arg("--records")
            .arg(records)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3");
        let mut banner = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut banner)
            .unwrap();
        assert!(!banner.trim().is_empty(), "{script} did not start");
        Server {
            child,
            banner: banner.trim().to_string(),
            records: records.to_path_buf(),
        }
    }

    /// The records written so far, one JSON value per line.
    pub(crate) fn records(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.records)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Wait until at least `n` records exist (or `secs` pass).
    pub(crate) fn wait_records(&self, n: usize, secs: u64) -> Vec<serde_json::Value> {
        let t = Instant::now();
        loop {
            let r = self.records();
            if r.len() >= n || t.elapsed() > Duration::from_secs(secs) {
                return r;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A JSON string field whose chars are bytes (the recorders write bodies as latin-1).
pub(crate) fn latin1(v: &serde_json::Value) -> Vec<u8> {
    v.as_str()
        .unwrap_or_default()
        .chars()
        .map(|c| c as u32 as u8)
        .collect()
}

/// Send `sig` to `child`.
pub(crate) fn signal(child: &std::process::Child, sig: i32) {
    // SAFETY: kill has no memory preconditions; the pid is our own child's.
    unsafe { libc::kill(child.id() as i32, sig) };
}

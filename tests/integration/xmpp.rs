//! `xmpp:` against a real prosody on 127.0.0.1 (started by the test, with a leaf certificate
//! signed by a test CA): delivery to two recipients (prosody's offline store), presence while
//! running, a `/resource`, queued messages across a server restart, a wrong password and an
//! untrusted certificate.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::{bin, wait_until, Tls};

struct Prosody {
    dir: tempfile::TempDir,
    config: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Prosody {
    fn new(tls: &Tls) -> Prosody {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("certs")).unwrap();
        std::fs::create_dir_all(d.join("data")).unwrap();
        std::fs::copy(&tls.cert, d.join("certs/localhost.crt")).unwrap();
        std::fs::copy(&tls.key, d.join("certs/localhost.key")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = d.join("prosody.cfg.lua");
        std::fs::write(
            &config,
            format!(
                r#"run_as_root = true
pidfile = "{d}/prosody.pid"
data_path = "{d}/data"
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {port} }}
s2s_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
c2s_require_encryption = true
authentication = "internal_hashed"
modules_enabled = {{ "roster"; "saslauth"; "tls"; "disco"; "ping"; "posix"; "offline"; "admin_shell" }}
admin_socket = "{d}/admin.sock"
log = {{ info = "{d}/prosody.log" }}
certificates = "{d}/certs"
VirtualHost "localhost"
  ssl = {{ certificate = "{d}/certs/localhost.crt"; key = "{d}/certs/localhost.key" }}
"#,
                d = d.display()
            ),
        )
        .unwrap();
        let p = Prosody {
            dir,
            config,
            port,
            child: None,
        };
        for (user, pw) in [("alarm", "alarmpw"), ("ops", "opspw"), ("dev", "devpw")] {
            let st = p.ctl(&["register", user, "localhost", pw]);
            assert!(
                st.status.success(),
                "{}",
                String::from_utf8_lossy(&st.stderr)
            );
        }
        p
    }

    fn ctl(&self, args: &[&str]) -> std::process::Output {
        Command::new("prosodyctl")
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .unwrap()
    }

    fn start(&mut self) {
        self.child = Some(
            Command::new("prosody")
                .arg("--config")
                .arg(&self.config)
                .arg("-F")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        wait_until("prosody", 10, || {
            std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
        });
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
    }

    /// What prosody stored for an offline user.
    fn offline(&self, user: &str) -> String {
        std::fs::read_to_string(
            self.dir
                .path()
                .join(format!("data/localhost/offline/{user}.list")),
        )
        .unwrap_or_default()
    }

    fn sessions(&self) -> String {
        String::from_utf8_lossy(&self.ctl(&["shell", "c2s:show()"]).stdout).into_owned()
    }
}

impl Drop for Prosody {
    fn drop(&mut self) {
        self.stop();
    }
}

fn ready() -> Option<Tls> {
    // (`prosody --version` starts a server: only look it up.)
    let found = Path::new("/usr/bin/prosody").exists() && Path::new("/usr/bin/prosodyctl").exists();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "prosody is missing: scripts/test.sh installs it"
        );
        eprintln!("SKIPPED: prosody is missing (scripts/test.sh installs it)");
    }
    found.then(Tls::new)
}

/// logalarm with one xmpp alarm on `^ALARM` lines; stdin stays open until the test drops it.
struct Running {
    child: Child,
    stdin: Option<std::process::ChildStdin>,
    err: Arc<Mutex<String>>,
}

fn logalarm(alarm: &str, ca: &Path) -> Running {
    logalarm_with(alarm, ca, &[])
}

/// [`logalarm`] with more options.
fn logalarm_with(alarm: &str, ca: &Path, extra: &[&str]) -> Running {
    let mut child = bin()
        .args([
            "--alarm",
            alarm,
            "--log-alarm",
            "j ^ALARM",
            "--alarm-freq",
            "0",
        ])
        .args(extra)
        .env("SSL_CERT_FILE", ca)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = Arc::new(Mutex::new(String::new()));
    let e = err.clone();
    let mut stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = std::io::Read::read(&mut stderr, &mut buf) {
            if n == 0 {
                break;
            }
            e.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    Running {
        stdin: child.stdin.take(),
        child,
        err,
    }
}

impl Running {
    fn line(&mut self, l: &str) {
        let s = self.stdin.as_mut().unwrap();
        s.write_all(format!("{l}\n").as_bytes()).unwrap();
        s.flush().unwrap();
    }
    fn err(&self) -> String {
        self.err.lock().unwrap().clone()
    }
    fn end(mut self) -> (Option<i32>, String) {
        drop(self.stdin.take());
        let st = self.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        crate::support::assert_no_secret(self.err().as_bytes());
        (st.code(), self.err())
    }
}

#[test]
fn messages_reach_every_recipient_and_the_account_is_online_while_running() {
    let Some(tls) = ready() else { return };
    let mut p = Prosody::new(&tls);
    p.start();
    let alarm = format!(
        "j xmpp:alarm@localhost/logalarm;alarmpw;ops@localhost,dev@localhost;server=127.0.0.1:{}",
        p.port
    );
    let mut run = logalarm(&alarm, &tls.ca);
    wait_until("online", 10, || run.err().contains("online"));
    let s = p.sessions();
    assert!(
        s.contains("alarm@localhost/logalarm") && s.contains("online"),
        "{s}"
    );
    run.line("ALARM <disk> & \"full\"");
    run.line("quiet");
    wait_until("delivery", 10, || p.offline("dev").contains("ALARM"));
    let (code, err) = run.end();
    assert_eq!(code, Some(0), "{err}");
    for user in ["ops", "dev"] {
        let stored = p.offline(user);
        assert!(
            stored.contains("ALARM <disk> & \\\"full\\\"")
                || stored.contains("ALARM <disk> & \"full\""),
            "{user}: {stored}"
        );
        assert!(stored.contains("\"chat\""), "{stored}");
        assert!(!stored.contains("quiet"));
    }
    wait_until("offline after exit", 10, || {
        !p.sessions().contains("alarm@localhost")
    });
    assert!(!err.contains("alarmpw"));
}

#[test]
fn messages_queued_during_a_server_restart_arrive_after_it() {
    let Some(tls) = ready() else { return };
    let mut p = Prosody::new(&tls);
    p.start();
    let alarm = format!(
        "j xmpp:alarm@localhost;alarmpw;ops@localhost;server=127.0.0.1:{}",
        p.port
    );
    let mut run = logalarm(&alarm, &tls.ca);
    wait_until("online", 10, || run.err().contains("online"));
    p.stop();
    wait_until("the drop noticed", 10, || {
        run.err().contains("reconnecting in")
    });
    run.line("ALARM during the outage");
    std::thread::sleep(Duration::from_millis(500));
    p.start();
    wait_until("online again", 20, || {
        run.err().matches("online").count() >= 2
    });
    wait_until("delivery", 10, || {
        p.offline("ops").contains("during the outage")
    });
    let (code, err) = run.end();
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn spooled_messages_wait_on_disk_for_a_server_that_is_down_and_a_restart() {
    let Some(tls) = ready() else { return };
    let mut p = Prosody::new(&tls);
    let spool = tempfile::tempdir().unwrap();
    let spool_s = spool.path().display().to_string();
    let alarm = format!(
        "j xmpp:alarm@localhost;alarmpw;ops@localhost;server=127.0.0.1:{}",
        p.port
    );
    let extra = ["--alarm-spool", spool_s.as_str(), "--alarm-grace", "1"];
    // The server is down for a whole run: both messages stay in the spool.
    let mut run = logalarm_with(&alarm, &tls.ca, &extra);
    run.line("ALARM first while down");
    run.line("ALARM second while down");
    let (code, err) = run.end();
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("2 alarm(s) kept in its spool"), "{err}");
    // Up again, logalarm restarted: they arrive, in order, once online.
    p.start();
    let mut run = logalarm_with(&alarm, &tls.ca, &extra);
    wait_until("delivery", 20, || {
        p.offline("ops").contains("second while down")
    });
    run.line("ALARM third");
    wait_until("the third", 10, || p.offline("ops").contains("ALARM third"));
    let (code, err) = run.end();
    assert_eq!(code, Some(0), "{err}");
    let stored = p.offline("ops");
    let first = stored.find("first while down").unwrap();
    let second = stored.find("second while down").unwrap();
    assert!(first < second, "{stored}");
    assert_eq!(stored.matches("first while down").count(), 1, "{stored}");
    assert!(!err.contains("alarmpw"), "{err}");
}

#[test]
fn a_wrong_password_and_an_untrusted_certificate_are_clear_lines_and_retried() {
    let Some(tls) = ready() else { return };
    let mut p = Prosody::new(&tls);
    p.start();
    let alarm = format!(
        "j xmpp:alarm@localhost;WRONGpw;ops@localhost;server=127.0.0.1:{}",
        p.port
    );
    let run = logalarm(&alarm, &tls.ca);
    wait_until("two attempts", 10, || {
        run.err().matches("login refused").count() >= 2
    });
    let (code, err) = run.end();
    assert_eq!(code, Some(0));
    assert!(
        err.contains("[uwsgi-alarm-xmpp] login refused (wrong JID or password?)"),
        "{err}"
    );
    assert!(!err.contains("WRONGpw"), "{err}");

    // A CA that did not sign prosody's certificate.
    let alarm = format!(
        "j xmpp:alarm@localhost;alarmpw;ops@localhost;server=127.0.0.1:{}",
        p.port
    );
    let run = logalarm(&alarm, &tls.rogue_cert);
    wait_until("the refusal", 10, || run.err().contains("not trusted"));
    let (_, err) = run.end();
    assert!(
        err.contains("give its CA in SSL_CERT_FILE, or add ;ssl_insecure=1"),
        "{err}"
    );
    assert!(!err.contains("online"), "{err}");

    let run = logalarm(&format!("{alarm};ssl_insecure=1"), &tls.rogue_cert);
    wait_until("online without verification", 10, || {
        run.err().contains("online")
    });
    run.end();
}

//! `speech:[VOICE][;wav=PATH]`: speak the message with espeak-ng (`say` on macOS).
//!
//! The text goes to the synthesizer's standard input, never onto its command line; the voice is
//! one argument of its own. `wav=PATH` writes the audio to that file (overwritten per alarm)
//! instead of the sound device: for tests and headless servers. logalarm opens that file itself
//! and refuses a symbolic link in a directory others may write to (as `--logto`), unless
//! `wav_follow_symlinks=1`. The synthesizer and the voice
//! are checked at start-up. Each alarm waits for the synthesizer (at most 60 s, then it is
//! killed), so speech never overlaps itself; it runs on the alarm's own thread.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::ActionError;
use super::Ctx;
use crate::report::report;

#[cfg(target_os = "macos")]
const PROGRAM: &str = "say";
#[cfg(not(target_os = "macos"))]
const PROGRAM: &str = "espeak-ng";

const LIMIT: Duration = Duration::from_secs(60);

/// A `speech:` action.
#[derive(Debug)]
pub(crate) struct Speech {
    voice: Option<String>,
    wav: Option<PathBuf>,
    /// `wav_follow_symlinks=1`: `wav=` may be a symbolic link in a directory others write to.
    follow: bool,
}

impl Speech {
    pub(crate) fn parse(arg: &str, warnings: &mut Vec<String>) -> Result<Speech, ActionError> {
        let mut tokens = arg.split(';');
        let voice = tokens.next().unwrap_or("").trim();
        let mut s = Speech {
            voice: (!voice.is_empty()).then(|| voice.to_string()),
            wav: None,
            follow: false,
        };
        for t in tokens.filter(|t| !t.is_empty()) {
            match t.split_once('=') {
                Some(("wav", p)) if !p.trim().is_empty() => s.wav = Some(PathBuf::from(p.trim())),
                Some(("wav", _)) => return Err(ActionError::from("wav= needs a file path")),
                Some(("wav_follow_symlinks", v)) => s.follow = super::delivery::flag(v),
                _ => warnings.push(format!("unknown speech key `{t}` ignored")),
            }
        }
        if let Some(v) = &s.voice {
            if v.starts_with('-') || v.chars().any(char::is_whitespace) {
                return Err(ActionError::from(format!("`{v}` is not a voice name")));
            }
        }
        s.check()?;
        Ok(s)
    }

    fn command(&self) -> Command {
        let mut c = Command::new(PROGRAM);
        if cfg!(target_os = "macos") {
            c.args(["-f", "-"]);
            if let Some(v) = &self.voice {
                c.arg("-v").arg(v);
            }
            if let Some(w) = &self.wav {
                c.arg("--data-format=LEI16@22050").arg("-o").arg(w);
            }
        } else {
            c.arg("--stdin");
            if let Some(v) = &self.voice {
                c.arg("-v").arg(v);
            }
            if self.wav.is_some() {
                // logalarm opened the file (refusing a planted link): espeak-ng writes it
                // through its standard output, and can still seek to fill in the WAV sizes.
                c.arg("-w").arg("/dev/stdout");
            }
        }
        c
    }

    /// The synthesizer exists and knows the voice: speak an empty text to nowhere.
    fn check(&self) -> Result<(), ActionError> {
        let mut c = Command::new(PROGRAM);
        if cfg!(target_os = "macos") {
            c.arg("");
        } else {
            c.arg("-q");
            if let Some(v) = &self.voice {
                c.arg("-v").arg(v);
            }
            c.arg("");
        }
        let out = c.stdin(Stdio::null()).output().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                format!("{PROGRAM} is not installed (Debian: apt-get install espeak-ng)")
            } else {
                format!("cannot run {PROGRAM}: {e}")
            }
        })?;
        if !out.status.success() {
            return Err(ActionError::from(format!(
                "{PROGRAM} refused voice `{}`: {} (list voices with `{PROGRAM} --voices`)",
                self.voice.as_deref().unwrap_or("default"),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    }

    /// Speak one message; whether espeak-ng succeeded.
    pub(crate) fn fire(&mut self, msg: &[u8], _ctx: &Ctx) -> bool {
        match self.speak(msg) {
            Ok(()) => true,
            Err(e) => {
                report!(Speech, "{e}");
                false
            }
        }
    }

    fn speak(&self, msg: &[u8]) -> Result<(), ActionError> {
        let stdout = match &self.wav {
            Some(w) if !cfg!(target_os = "macos") => {
                let f = crate::output::open_refusing_links(w, self.follow, false)
                    .map_err(|e| format!("wav={}: {e}", w.display()))?;
                Stdio::from(f)
            }
            _ => Stdio::null(),
        };
        let mut child = self
            .command()
            .stdin(Stdio::piped())
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {PROGRAM}: {e}"))?;
        if let Some(mut stdin) = child.stdin.take() {
            let text = String::from_utf8_lossy(msg);
            // A synthesizer that dies early closes its stdin: its status says why.
            let _ = stdin.write_all(text.trim_end().as_bytes());
        }
        let start = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(st)) if st.success() => return Ok(()),
                Ok(Some(st)) => {
                    let mut err = String::new();
                    if let Some(mut e) = child.stderr.take() {
                        let _ = std::io::Read::read_to_string(&mut e, &mut err);
                    }
                    return Err(ActionError::from(format!(
                        "{PROGRAM} failed ({st}): {}",
                        err.trim()
                    )));
                }
                Ok(None) if start.elapsed() > LIMIT => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(ActionError::from(format!(
                        "{PROGRAM} still speaking after {}s: killed",
                        LIMIT.as_secs()
                    )));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => return Err(ActionError::from(format!("waiting for {PROGRAM}: {e}"))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments() {
        if Command::new(PROGRAM).arg("--version").output().is_err() {
            return;
        }
        let s = Speech::parse("en;wav=/tmp/x.wav", &mut Vec::new()).unwrap();
        assert_eq!(s.voice.as_deref(), Some("en"));
        assert!(Speech::parse("", &mut Vec::new()).unwrap().voice.is_none());
        assert!(Speech::parse("--help", &mut Vec::new()).is_err());
        assert!(Speech::parse("nosuchvoice", &mut Vec::new())
            .unwrap_err()
            .to_string()
            .contains("refused voice"));
        assert!(Speech::parse(";wav=", &mut Vec::new()).is_err());
    }
}

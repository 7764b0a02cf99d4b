//! `speech:` with the real espeak-ng: a WAV file is written, and its duration grows with the
//! length of the message.

use crate::support;
use std::path::Path;

/// Duration in seconds from a WAV file's header (`fmt ` byte rate, `data` size).
fn wav_seconds(path: &Path) -> f64 {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[0..4], b"RIFF", "not a WAV file");
    assert_eq!(&b[8..12], b"WAVE");
    let (mut pos, mut rate, mut data) = (12, 0u32, 0u32);
    while pos + 8 <= b.len() {
        let id = &b[pos..pos + 4];
        let size = u32::from_le_bytes(b[pos + 4..pos + 8].try_into().unwrap());
        if id == b"fmt " {
            rate = u32::from_le_bytes(b[pos + 16..pos + 20].try_into().unwrap());
        } else if id == b"data" {
            // espeak-ng writing to a file it can seek fills the real size in.
            data = if size == 0 || size == u32::MAX {
                (b.len() - pos - 8) as u32
            } else {
                size
            };
        }
        pos += 8 + size.min((b.len() - pos) as u32) as usize;
    }
    assert!(rate > 0, "no fmt chunk");
    data as f64 / rate as f64
}

#[test]
fn speech_writes_a_wav_whose_length_follows_the_message() {
    if !support::have("espeak-ng", &["--version"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut secs = Vec::new();
    for (i, text) in ["ALARM disk full", "ALARM the primary database stopped answering; failing over to the replica in the second data centre now"]
        .iter()
        .enumerate()
    {
        let wav = dir.path().join(format!("{i}.wav"));
        let alarm = format!("say speech:en;wav={}", wav.display());
        let input = format!("{text}\nquiet\n");
        let out = support::run(&["--alarm", &alarm, "--log-alarm", "say ^ALARM"], input.clone().into_bytes());
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.stdout, input.as_bytes());
        secs.push(wav_seconds(&wav));
    }
    assert!(secs[0] > 0.3, "{secs:?}");
    assert!(
        secs[1] > secs[0] * 2.0,
        "a longer message speaks longer: {secs:?}"
    );
}

#[test]
fn unknown_voice_is_a_startup_error() {
    if !support::have("espeak-ng", &["--version"]) {
        return;
    }
    let out = support::run(&["--alarm", "say speech:klingon-xx"], Vec::new());
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid alarm: say speech:klingon-xx") && err.contains("refused voice"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

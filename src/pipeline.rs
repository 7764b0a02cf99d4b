//! The log path for one input: bytes in, every byte out, alarms raised per matching line.
//!
//! Role: drive a [`LineBuffer`] and a [`Matcher`] over one input stream and report to a
//! [`Sink`]: `pass` gets every byte (whole lines, in order), `alarm` gets each alarm a line
//! raises. It knows nothing of descriptors or threads, so tests, benches and fuzz targets run
//! exactly the code the reactor runs.
//!
//! Invariants: output is byte-identical to input, whatever the chunking; each line is passed
//! before its alarms are raised (so a `log:` alarm's line follows the line that raised it); a line
//! longer than the buffer is passed through in pieces, its first `log-master-bufsize` bytes are
//! matched once (its message), and the rest is never matched; no allocation per line.
//! Rejected alternative: writing line by line — one write per buffer is what makes pass-through
//! cheap.

use std::io;

use crate::linebuf::LineBuffer;
use crate::rules::Matcher;

/// Where the log path delivers.
pub trait Sink {
    /// Write log bytes to the output (whole lines, except the pieces of an over-long line and a
    /// last line without `\n`).
    fn pass(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Raise alarm `alarm` (its rank) with `msg` (the line, cut to `log-master-bufsize`).
    fn alarm(&mut self, alarm: u32, msg: &[u8]);
}

/// Counters, published per buffer.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub bytes: u64,
    /// Lines checked exactly (candidates of the fast scan).
    pub confirmed: u64,
    /// Alarm events raised.
    pub alarms: u64,
}

/// Smallest buffer: big reads are what make the path fast.
pub const DEFAULT_CAPACITY: usize = 256 * 1024;

/// The log path of one input.
pub struct Pipeline<'r> {
    matcher: Matcher<'r>,
    buf: LineBuffer,
    /// Inside a line longer than the buffer whose head was already matched.
    skipping: bool,
    pub stats: Stats,
}

impl<'r> Pipeline<'r> {
    /// A pipeline with a buffer of at least `capacity` bytes (and always more than twice
    /// `log-master-bufsize`, so an over-long line's head is in the buffer when it overflows).
    pub fn new(matcher: Matcher<'r>, capacity: usize) -> Pipeline<'r> {
        let cap = capacity.max(matcher.rules().bufsize().saturating_mul(2) + 1);
        Pipeline {
            matcher,
            buf: LineBuffer::with_capacity(cap),
            skipping: false,
            stats: Stats::default(),
        }
    }

    /// Room to read into (never empty: a full buffer is drained by `commit`).
    pub fn spare(&mut self) -> &mut [u8] {
        self.buf.spare()
    }

    /// `n` bytes were read into [`spare`](Self::spare): pass and match every complete line.
    pub fn commit(&mut self, n: usize, sink: &mut dyn Sink) -> io::Result<()> {
        let old_len = self.buf.filled().len();
        self.buf.commit(n);
        self.stats.bytes += n as u64;
        let filled = self.buf.filled();
        match memchr::memrchr(b'\n', &filled[old_len..]) {
            Some(i) => {
                let last = old_len + i + 1;
                self.process(last, sink)
            }
            None if self.buf.is_full() => {
                // A line longer than the whole buffer: match its head once, pass it in pieces.
                let written = sink.pass(self.buf.filled());
                if !self.skipping {
                    self.raise_line(self.buf.filled().len(), sink);
                    self.skipping = true;
                }
                let len = self.buf.filled().len();
                self.buf.consume(len);
                written
            }
            None => Ok(()),
        }
    }

    /// End of input: the last line (without `\n`) is a line too.
    pub fn finish(&mut self, sink: &mut dyn Sink) -> io::Result<()> {
        let len = self.buf.filled().len();
        if len == 0 {
            return Ok(());
        }
        self.process(len, sink)
    }

    /// Copy `data` in and process it (for tests, benches and fuzzing; the reactor reads
    /// straight into [`spare`](Self::spare)).
    pub fn feed(&mut self, mut data: &[u8], sink: &mut dyn Sink) -> io::Result<()> {
        while !data.is_empty() {
            let spare = self.spare();
            let n = spare.len().min(data.len());
            spare[..n].copy_from_slice(&data[..n]);
            data = &data[n..];
            self.commit(n, sink)?;
        }
        Ok(())
    }

    /// Pass and match the first `upto` unprocessed bytes (they end at a line end).
    fn process(&mut self, upto: usize, sink: &mut dyn Sink) -> io::Result<()> {
        let written = sink.pass(&self.buf.filled()[..upto]);
        let mut from = 0;
        if self.skipping {
            // The tail of an over-long line ends at the first newline: never matched.
            from = memchr::memchr(b'\n', &self.buf.filled()[..upto]).map_or(upto, |i| i + 1);
            self.skipping = false;
        }
        if from < upto {
            let lines = &self.buf.filled()[from..upto];
            let alarms = &mut self.stats.alarms;
            let n = self.matcher.scan_lines(lines, &mut |msg, hits| {
                for &a in hits {
                    *alarms += 1;
                    sink.alarm(a, msg);
                }
            });
            self.stats.confirmed += n as u64;
        }
        self.buf.consume(upto);
        written
    }

    fn raise_line(&mut self, len: usize, sink: &mut dyn Sink) {
        let line = &self.buf.filled()[..len];
        let alarms = &mut self.stats.alarms;
        self.matcher.confirm(line, &mut |msg, hits| {
            for &a in hits {
                *alarms += 1;
                sink.alarm(a, msg);
            }
        });
        self.stats.confirmed += 1;
    }
}

/// A sink that collects everything (tests, fuzzing, benches).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CollectSink {
    pub out: Vec<u8>,
    pub alarms: Vec<(u32, Vec<u8>)>,
}

impl Sink for CollectSink {
    fn pass(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.extend_from_slice(bytes);
        Ok(())
    }
    fn alarm(&mut self, alarm: u32, msg: &[u8]) {
        self.alarms.push((alarm, msg.to_vec()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{Rule, RuleSet};

    fn rules(bufsize: usize) -> RuleSet {
        let r = |a: u32| Rule {
            alarms: vec![a],
            negate: false,
        };
        RuleSet::new(&[("ERR", r(0)), ("^x+$", r(1))], 2, bufsize).unwrap()
    }

    fn run(set: &RuleSet, cap: usize, chunks: &[&[u8]]) -> CollectSink {
        let mut p = Pipeline::new(set.matcher(), cap);
        let mut s = CollectSink::default();
        for c in chunks {
            p.feed(c, &mut s).unwrap();
        }
        p.finish(&mut s).unwrap();
        s
    }

    #[test]
    fn whole_and_bytewise_agree() {
        let set = rules(8192);
        let input: &[u8] = b"a\nERR 1\nxxx\r\nno\nlast ERR";
        let whole = run(&set, 16, &[input]);
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        let bytewise = run(&set, 16, &bytes);
        assert_eq!(whole, bytewise);
        assert_eq!(whole.out, input);
        assert_eq!(
            whole.alarms,
            vec![
                (0, b"ERR 1\n".to_vec()),
                (1, b"xxx\r\n".to_vec()),
                (0, b"last ERR".to_vec())
            ]
        );
    }

    #[test]
    fn overlong_line_is_matched_once_by_its_head_and_passed_whole() {
        let set = rules(4);
        let mut line = b"ERR ".to_vec();
        line.extend(std::iter::repeat_n(b'y', 100));
        line.extend_from_slice(b" ERR\nERR\n");
        let s = run(&set, 9, &[&line]);
        assert_eq!(s.out, line);
        assert_eq!(
            s.alarms,
            vec![(0, b"ERR ".to_vec()), (0, b"ERR\n".to_vec())]
        );
    }

    #[test]
    fn overlong_tail_is_not_matched() {
        let set = rules(4);
        let mut line = vec![b'y'; 50];
        line.extend_from_slice(b"ERR\nok\n");
        let s = run(&set, 9, &[&line]);
        assert_eq!(s.out, line);
        assert!(s.alarms.is_empty());
    }
}

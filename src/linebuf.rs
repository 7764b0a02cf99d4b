//! A roll buffer that reads from a descriptor and hands out whole lines.
//!
//! Role: hold the bytes of one log input between `read()` and processing. Reads go straight into
//! the spare tail ([`LineBuffer::spare`]); processed bytes are consumed from the front; when the
//! tail runs short, the unfinished last line is copied to the front ("roll", as ripgrep's
//! `LineBuffer` does), so every line that fits is one contiguous `&[u8]` for memchr and the DFA.
//! Invariants: capacity is fixed at construction (memory is bounded whatever the input);
//! `start <= end <= capacity`; bytes in `start..end` are unprocessed.
//! Rejected alternative: a `bytes::BytesMut` growing per line — it grows without bound on a line
//! of 100 MB and allocates as lines are split off; lines longer than the buffer are handled by
//! the caller instead (see `pipeline`).

/// Fixed-capacity roll buffer.
pub(crate) struct LineBuffer {
    /// The storage; its length is the capacity and never changes.
    buf: crate::sys::ZeroedBytes,
    /// Where the unprocessed bytes begin: everything before was handed out and consumed.
    /// Moves forward as lines are consumed; back to 0 when the buffer rolls.
    start: usize,
    /// Where the unprocessed bytes end and the spare room (the next read's target) begins:
    /// `start <= end <= buf.len()`.
    end: usize,
}

impl LineBuffer {
    /// A buffer of `capacity` bytes (at least 1).
    pub(crate) fn with_capacity(capacity: usize) -> LineBuffer {
        LineBuffer {
            buf: crate::sys::ZeroedBytes::new(capacity),
            start: 0,
            end: 0,
        }
    }

    /// The unprocessed bytes.
    #[inline]
    pub(crate) fn filled(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Whether the unprocessed bytes fill the whole buffer (a line longer than the buffer).
    pub(crate) fn is_full(&self) -> bool {
        self.end - self.start == self.buf.len()
    }

    /// The bytes it holds when full.
    pub(crate) fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Room left to read into once the unprocessed bytes are rolled to the front.
    pub(crate) fn room(&self) -> usize {
        self.buf.len() - (self.end - self.start)
    }

    /// Room to read into. Rolls the unprocessed bytes to the front first when less than an
    /// eighth of the buffer is left. Empty only when [`is_full`](Self::is_full).
    pub(crate) fn spare(&mut self) -> &mut [u8] {
        let cap = self.buf.len();
        if self.start > 0 && cap - self.end < cap / 8 + 1 {
            // PERF: only the unfinished last line is copied, and only once per buffer fill.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.buf[self.end..]
    }

    /// The first `n` bytes of the spare room as they are (no roll): what a read just put there.
    pub(crate) fn just_read(&self, n: usize) -> &[u8] {
        &self.buf[self.end..(self.end + n).min(self.buf.len())]
    }

    /// `n` bytes were written at the front of [`spare`](Self::spare).
    pub(crate) fn commit(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }

    /// Mark the first `n` unprocessed bytes as processed.
    pub(crate) fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rolls_the_tail_to_the_front() {
        let mut b = LineBuffer::with_capacity(8);
        b.spare()[..8].copy_from_slice(b"abc\ndefg");
        b.commit(8);
        assert!(b.is_full());
        b.consume(4);
        assert_eq!(b.filled(), b"defg");
        let s = b.spare();
        assert_eq!(s.len(), 4);
        s[..2].copy_from_slice(b"h\n");
        b.commit(2);
        assert_eq!(b.filled(), b"defgh\n");
        b.consume(6);
        assert_eq!(b.spare().len(), 8);
    }
}

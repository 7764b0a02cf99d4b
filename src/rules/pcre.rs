//! uWSGI's rule dialect: PCRE (version 1, as uWSGI 2.0.21 links it, without UTF mode) rewritten
//! into the byte-based syntax the one-pass automaton compiles.
//!
//! Role: [`translate`] reads a rule the way PCRE's compiler does and writes the same language in
//! regex-syntax's terms, so a uWSGI user's rule is accepted when PCRE accepts it and matches the
//! same lines: `\Q…\E` quoting, octal (`\101`, `\0`, `\o{…}`) and hex (`\x{…}`, `\xhh`) bytes,
//! `\a \e \cX`, `\h \H \v \V \R \N \C` (PCRE's meanings, not regex-syntax's), `\Z` and `\G`,
//! `\K` (it moves only the reported start: dropped), unknown letter escapes as the letter
//! (`\<` is `<`), a `{` that does not start a quantifier as a literal (`a{,3}`,
//! `{ DriveReady }`), classes as PCRE parses them (a `[` inside a class is a literal unless it
//! opens `[:name:]`: `dhcpd[[[:digit:]]+]` is "dhcpd", a class of `[` and digits, repeated, then
//! `]`), `\b` in a class as backspace, branch reset `(?|…)` as a plain group, `(?#…)` comments,
//! `(?x)` whitespace and comments, `(?'name'…)` names, and every byte of a non-ASCII character
//! as the byte it is (no UTF mode: `caf[éè]` is a class of three bytes).
//! Constructs the automaton cannot run are written in a relaxed form matching a superset
//! (look-around dropped, backreferences as any text, possessive as greedy, atomic groups as
//! plain ones, Unicode properties as any byte, a conditional group as either of its branches)
//! and PCRE confirms the lines it matches; a rule with recursion, a recursion or `DEFINE`
//! condition or a verb has no relaxed form and is run by PCRE alone on every line (a start-up
//! warning says so).
//! Invariant: every literal byte is written as `\xHH` unless it is an ASCII letter or digit, so
//! nothing PCRE reads as a literal can mean something else to regex-syntax.

use std::fmt::Write;

/// A rule in the automaton's syntax, and what was rewritten (for `--alarm-list`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translation {
    pub pattern: String,
    /// One note per construct rewritten (`\Q…\E quoted`, …), in order, without repeats.
    pub notes: Vec<String>,
    /// `pattern` is a relaxed form matching a superset (look-around dropped, possessive made
    /// greedy, …): the lines it matches are confirmed by PCRE on the original rule.
    pub pcre: bool,
    /// The rule as PCRE2 must read it to mean what uWSGI's PCRE 8 means, when that differs from
    /// the rule as written: each `{` that starts no quantifier escaped (PCRE2 10.43 and later
    /// read `{,3}` as `{0,3}` and `{ 2 }` as `{2}`; PCRE 8 reads both as text), `\x` without
    /// digits written `\x00` (PCRE2 refuses it; PCRE 8 reads a NUL), `\8` and `\9` that are
    /// no backreference written `(?:8)`, `(?:9)` (PCRE2 refuses them; PCRE 8 reads the digit),
    /// and a `-` after a class escape in a class escaped (`[\d-z]`: PCRE2 refuses the range;
    /// PCRE 8 reads a literal `-`).
    pub pcre_source: Option<String>,
}

impl Translation {
    /// The rule for the PCRE that confirms it (see [`Translation::pcre_source`]).
    pub fn pcre_text<'a>(&'a self, rule: &'a str) -> &'a str {
        self.pcre_source.as_deref().unwrap_or(rule)
    }
}

/// Why a rule cannot be translated: PCRE refuses it too, or the automaton cannot run it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Untranslatable {
    /// Byte offset in the rule.
    pub offset: usize,
    pub what: String,
    /// A construct PCRE runs that has no relaxed form (recursion, conditionals, verbs): the
    /// rule is then run by PCRE alone (see [`translate`]).
    pub pcre_only: bool,
}

impl std::fmt::Display for Untranslatable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at offset {}: {}", self.offset, self.what)
    }
}

/// A construct PCRE runs that has no relaxed form for the automaton.
fn unsupported(offset: usize, construct: &str) -> Untranslatable {
    Untranslatable {
        offset,
        what: construct.to_string(),
        pcre_only: true,
    }
}

fn error(offset: usize, what: &str) -> Untranslatable {
    Untranslatable {
        offset,
        what: what.to_string(),
        pcre_only: false,
    }
}

struct Translator<'a> {
    src: &'a [u8],
    at: usize,
    out: String,
    notes: Vec<String>,
    /// Capturing groups opened so far (PCRE decides `\NN` backreference vs octal by it).
    groups: usize,
    /// `(?x)` per open group (the last is the current one).
    extended: Vec<bool>,
    /// The last thing written can take a quantifier's `+` as possessive.
    after_quantifier: bool,
    /// Groups whose content is dropped at their `)`: (depth, length of `out` after the
    /// group's opening, `Some(negative)` for a look-behind that may prove to hold always).
    discard: Vec<(usize, usize, Option<bool>)>,
    /// Look-behinds dropped without relaxing the rule yet: where they stood in `out`, their
    /// translated content, whether negative (see [`Translator::look_behinds_hold`]).
    behind: Vec<(usize, String, bool)>,
    /// A relaxed construct was written (see [`Translation::pcre`]).
    relaxed: bool,
    /// Open conditional groups: (depth, a `|` of theirs was written).
    conditionals: Vec<(usize, bool)>,
    /// What PCRE2 must read otherwise (see [`Translation::pcre_source`]): at an offset of
    /// `src`, how many bytes to leave out and what to put in their place.
    fixes: Vec<(usize, usize, &'static str)>,
    /// The first construct with no relaxed form (the rule is then run by PCRE alone); the rest
    /// of the rule is still read, for its errors and its braces.
    alone: Option<Untranslatable>,
    /// A `(*UTF…)` verb was read.
    utf: bool,
    /// What a quantifier here would repeat (PCRE refuses one with nothing to repeat).
    repeat: Repeat,
}

/// What the item before a quantifier is, as PCRE 8 sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repeat {
    /// Nothing a quantifier can take: the start of the rule, of a group or of an alternative,
    /// an anchor or another zero-width escape (`^ $ \b \B \A \Z \z \G \K`), an option
    /// setting.
    Nothing,
    /// An item (a literal, a class, a group).
    Item,
    /// A quantifier: `?` (lazy) or `+` (possessive) may follow, no other.
    Quantified,
    /// A quantifier made lazy or possessive: nothing more may follow.
    Done,
}

impl Repeat {
    /// What follows a comment or `\E` after this: PCRE 8 repeats the item before them
    /// (`a(?#c)*`), but reads a `?` or `+` after them as a quantifier of its own (`a*(?#c)?` is
    /// refused).
    fn across(self) -> Repeat {
        match self {
            Repeat::Item => Repeat::Item,
            _ => Repeat::Nothing,
        }
    }
}

/// Translate PCRE rule `pattern` (see the module doc).
pub fn translate(pattern: &str) -> Result<Translation, Untranslatable> {
    let mut t = Translator {
        src: pattern.as_bytes(),
        at: 0,
        // PERF: room for some bytes written as `\xHH` (a growing string was copied again).
        out: String::with_capacity(pattern.len() * 2 + 16),
        notes: Vec::new(),
        groups: 0,
        extended: vec![false],
        after_quantifier: false,
        discard: Vec::new(),
        behind: Vec::new(),
        relaxed: false,
        conditionals: Vec::new(),
        fixes: Vec::new(),
        alone: None,
        utf: false,
        repeat: Repeat::Nothing,
    };
    // A construct PCRE alone runs makes the rule PCRE's; an error the translator sees after
    // `(*UTF…)` is PCRE's to decide (UTF mode allows bytes above \xFF), as before the rest of
    // such a rule was read.
    let run = match t.run() {
        Ok(()) => t.alone.take().map_or(Ok(()), Err),
        Err(e) if t.utf => Err(t.alone.take().unwrap_or(e)),
        Err(e) => Err(e),
    };
    let pcre_source = (!t.fixes.is_empty()).then(|| fixed(pattern, &mut t.fixes));
    match run {
        Ok(()) => {
            if !t.discard.is_empty() {
                // A look-around left open (PCRE refuses the rule too).
                t.relax("look-around");
            }
            if !t.behind.is_empty() {
                if t.look_behinds_hold() {
                    t.note("one-byte look-behind that always holds where it stands dropped");
                } else {
                    t.relax("look-around");
                }
            }
            // PERF: kept at its length: the room made for `\xHH` is freed for the next rule's
            // translation (Debian's 2,101 rules: 0.4 MB of fresh memory less, ~100 page
            // faults, before the first line out).
            let pattern = match t.out.capacity() > t.out.len() + 16 {
                true => t.out.as_str().to_owned(),
                false => t.out,
            };
            Ok(Translation {
                pattern,
                notes: t.notes,
                pcre: t.relaxed,
                pcre_source,
            })
        }
        // No relaxed form: every line is a candidate (the empty pattern) and PCRE decides.
        Err(e) if e.pcre_only => Ok(Translation {
            pattern: String::new(),
            notes: vec![format!(
                "{} (offset {}): the whole rule run by PCRE on every line",
                e.what, e.offset
            )],
            pcre: true,
            pcre_source,
        }),
        Err(e) => Err(e),
    }
}

/// `s` (from a `[`) starts PCRE's POSIX syntax `[:…:]` (`.` or `=` for `:`), read as PCRE's
/// `check_posix_syntax` reads it: up to the first `:]`, with no `]` and no `[:` before it (`\]`
/// and `\\` skipped): (the kind, the offset of its closing `:`). `[:[:xdigit:]]` is a class.
fn posix_syntax(s: &[u8]) -> Option<(u8, usize)> {
    let &kind = s.get(1)?;
    if !matches!(kind, b':' | b'.' | b'=') {
        return None;
    }
    let mut i = 2;
    while let Some(&c) = s.get(i) {
        let next = s.get(i + 1).copied();
        if c == b'\\' && matches!(next, Some(b']' | b'\\')) {
            i += 1;
        } else if (c == b'[' && next == Some(kind)) || c == b']' {
            return None;
        } else if c == kind && next == Some(b']') {
            return Some((kind, i));
        }
        i += 1;
    }
    None
}

/// Whether `group` (from its `(`) is an option setting such as `(?i)` or `(?-x)`.
fn is_option_setting(group: &[u8]) -> bool {
    match group {
        [b'(', b'?', flags @ .., b')'] => {
            !flags.is_empty() && flags.iter().all(|b| b"imsxXUJ-".contains(b))
        }
        _ => false,
    }
}

/// `rule` with `fixes` made ((offset, bytes left out, text put in), at ASCII bytes).
fn fixed(rule: &str, fixes: &mut [(usize, usize, &str)]) -> String {
    fixes.sort_unstable();
    let mut out = String::with_capacity(rule.len() + 2 * fixes.len());
    let mut from = 0;
    for &(at, cut, put) in fixes.iter() {
        if at < from {
            continue;
        }
        out.push_str(rule.get(from..at).unwrap_or_default());
        out.push_str(put);
        from = at + cut;
    }
    out.push_str(rule.get(from..).unwrap_or_default());
    out
}

/// Whether `t` is run by PCRE alone on every line (see [`translate`]).
pub fn pcre_only(t: &Translation) -> bool {
    t.pcre && t.pattern.is_empty()
}

/// A literal byte outside a class: letters, digits and punctuation that means nothing to the
/// automaton's syntax (in or out of a class, in any mode) as they are, its meta characters
/// escaped, any other byte `\xHH`.
// PERF: written as `\xHH` each of these was four characters to parse again at every start
// (Debian's 2,101 rules: 65,000 of their 388,000 bytes are spaces and such punctuation;
// PERF.md "twenty-sixth run").
fn byte(out: &mut String, b: u8) {
    match BYTE_SPELLING[usize::from(b)] {
        AS_IS => out.push(char::from(b)),
        // `\[`, `\.`: the automaton's syntax reads an escaped meta character as itself in
        // any mode, at less cost than `\xHH`.
        ESCAPED => {
            out.push('\\');
            out.push(char::from(b));
        }
        _ => hex(out, b),
    }
}

/// How [`byte`] writes each byte: as it is, escaped, or `\xHH`.
// PERF: a table, not a search of the punctuation list and of the meta characters per byte
// (Debian's 2,101 rules: 112,847 literal bytes at every cold start).
const AS_IS: u8 = 0;
const ESCAPED: u8 = 1;
const HEX: u8 = 2;
const BYTE_SPELLING: [u8; 256] = {
    let mut t = [HEX; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = if c.is_ascii_alphanumeric() {
            AS_IS
        } else {
            // regex-syntax's meta characters (checked against `is_meta_character` in a test).
            match c {
                b'_' | b':' | b',' | b'/' | b'=' | b'"' | b'\'' | b'@' | b'%' | b'!' | b';'
                | b'<' | b'>' | b'`' => AS_IS,
                b'\\' | b'.' | b'+' | b'*' | b'?' | b'(' | b')' | b'|' | b'[' | b']' | b'{'
                | b'}' | b'^' | b'$' | b'#' | b'&' | b'-' | b'~' => ESCAPED,
                _ => HEX,
            }
        };
        b += 1;
    }
    t
};

/// `\xHH` for `b`. PERF: not `write!` (the formatting machinery was 7 % of a warm start
/// with Debian's 2,101 rules, most of it here).
fn hex(out: &mut String, b: u8) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    out.push_str("\\x");
    out.push(char::from(DIGITS[usize::from(b >> 4)]));
    out.push(char::from(DIGITS[usize::from(b & 15)]));
}

/// A byte in a class: an ASCII letter or digit as it is (never special in a class), any other
/// byte `\xHH` (`-`, `^`, `&`, `~`, `[` and `]` are).
// PERF: `[0-9]` rather than `[\x30-\x39]`: Debian's 2,101 rules' classes are mostly digits and
// letters, each four characters to parse again at every start.
fn class_byte(out: &mut String, b: u8) {
    if b.is_ascii_alphanumeric() {
        out.push(char::from(b));
    } else {
        hex(out, b);
    }
}

const HSPACE: &str = r"\x09\x20\xA0";
const VSPACE: &str = r"\x0A-\x0D\x85";

/// A class escape's items inside a class, or `None` when it is not one. PERF: static text,
/// not a `String` made per escape (`\d`, `\s`, `\w` in classes: 5 M instructions of
/// formatting with Debian's 2,101 rules).
fn class_escape(c: u8) -> Option<&'static str> {
    Some(match c {
        b'd' => r"\d",
        b'D' => r"\D",
        b's' => r"\s",
        b'S' => r"\S",
        b'w' => r"\w",
        b'W' => r"\W",
        b'h' => HSPACE,
        b'H' => r"[^\x09\x20\xA0]",
        b'v' => VSPACE,
        b'V' => r"[^\x0A-\x0D\x85]",
        _ => return None,
    })
}

/// The byte of a one-letter escape (`\n`, `\e`, …).
fn letter_byte(c: u8) -> Option<u8> {
    Some(match c {
        b'a' => 0x07,
        b'e' => 0x1B,
        b'f' => 0x0C,
        b'n' => 0x0A,
        b'r' => 0x0D,
        b't' => 0x09,
        _ => return None,
    })
}

impl Translator<'_> {
    fn peek(&self) -> Option<u8> {
        self.src.get(self.at).copied()
    }

    fn peek_at(&self, k: usize) -> Option<u8> {
        self.src.get(self.at + k).copied()
    }

    fn note(&mut self, n: &str) {
        if !self.notes.iter().any(|x| x == n) {
            self.notes.push(n.to_string());
        }
    }

    /// A relaxed construct: the automaton runs a superset, PCRE confirms its lines.
    fn relax(&mut self, what: &str) {
        self.relaxed = true;
        self.note(&format!("{what} confirmed by PCRE"));
    }

    /// Open a group whose content the automaton does not see (`(?:)` stays); `behind`:
    /// `Some(negative)` for a look-behind.
    fn open_discarded(&mut self, behind: Option<bool>) {
        let x = self.extended();
        self.extended.push(x);
        self.out.push_str("(?:");
        self.discard
            .push((self.extended.len(), self.out.len(), behind));
    }

    /// A discarded group closes at `len` of `out` (its content after that): a look-behind
    /// outside any other discarded group is kept for [`Self::look_behinds_hold`]; any other
    /// look-around makes the rule relaxed.
    fn close_discarded(&mut self, len: usize, behind: Option<bool>) {
        match behind {
            Some(negative) if self.discard.is_empty() => {
                let content = self.out[len..].to_string();
                self.behind.push((len, content, negative));
            }
            _ => self.relax("look-around"),
        }
    }

    /// Whether every look-behind dropped is of one byte and holds wherever it stands: the
    /// bytes that can come before its place in a match (the rule read as written, any text
    /// before the match) are all ones it accepts and the line's start is not among them
    /// (negative: none it refuses). The fail2ban `<HOST>` pattern's
    /// `(?:[0-9a-fA-F]{1,4}::?|::){1,7}(?:…|(?<=:):)` then needs no PCRE: 168 of Debian's
    /// 2,101 rules (PERF.md "nineteenth run").
    fn look_behinds_hold(&self) -> bool {
        // PERF: each look-behind is checked within the smallest group around it first (the
        // `<HOST>` shape holds within its `(?P<ip6>…)`): parsing each whole rule again cost
        // Debian's 2,101 rules 15 ms of every start. Flags set anywhere in the rule could mean
        // something else in a group taken alone: then only the whole rule is read.
        // A rule's leading flag directive (`(?i)…`: Debian's rules behind `(?i)` parsed each
        // whole rule again, 32 M instructions of a cold start) means the same before a group
        // taken alone.
        let lead = leading_flags(&self.out);
        let flags = has_flags(&self.out[lead..]);
        let mut text = String::new();
        self.behind.iter().all(|(at, content, negative)| {
            if self.out.get(at.saturating_sub(3)..at + 1) != Some("(?:)") {
                return false;
            }
            let groups = if flags {
                Vec::new()
            } else {
                enclosing_groups(&self.out, *at)
            };
            let whole = (0, self.out.len());
            groups
                .into_iter()
                .filter_map(|start| Some((start, group_end(&self.out, start)?)))
                .chain([whole])
                .any(|(start, end)| {
                    let (prefix, group) = match start {
                        0 => ("", &self.out[..end]),
                        _ => (&self.out[..lead], &self.out[start..end]),
                    };
                    text.clear();
                    text.push_str(prefix);
                    text.push_str(group);
                    holds_within(&text, at - start + prefix.len(), content, *negative)
                })
        })
    }

    /// A backreference: any text of the line for the automaton.
    fn backreference(&mut self) {
        self.relax("backreferences");
        self.out.push_str("(?s:.*)");
    }

    fn extended(&self) -> bool {
        self.extended.last().copied().unwrap_or(false)
    }

    /// A literal byte outside a class ([`byte`]); a space as it is where the automaton's
    /// syntax does not skip it (the `x` flag, mirrored from the rule, is off here).
    fn literal(&mut self, b: u8) {
        if b == b' ' && !self.extended() {
            self.out.push(' ');
        } else {
            byte(&mut self.out, b);
        }
    }

    fn run(&mut self) -> Result<(), Untranslatable> {
        while let Some(c) = self.peek() {
            let quantifier = self.after_quantifier;
            self.after_quantifier = false;
            let prev = self.repeat;
            self.repeat = Repeat::Item;
            match c {
                b'\\' => {
                    let (start, written) = (self.at, self.out.len());
                    self.escape()?;
                    let zero = matches!(
                        self.src.get(start + 1),
                        Some(b'b' | b'B' | b'A' | b'Z' | b'z' | b'G' | b'K')
                    );
                    if zero {
                        self.repeat = Repeat::Nothing;
                    } else if self.out.len() == written {
                        // `\E`, an empty `\Q\E`: the item before still takes a quantifier
                        // (but a quantifier does not take `?` or `+` across them).
                        self.repeat = prev.across();
                    }
                }
                b'[' => self.class()?,
                b'(' => {
                    let (start, depth) = (self.at, self.extended.len());
                    self.open()?;
                    let opened = &self.src[start..self.at];
                    self.repeat = if opened.starts_with(b"(?#") {
                        prev.across()
                    } else if self.extended.len() > depth
                        || is_option_setting(opened)
                        || opened.starts_with(b"(*")
                    {
                        Repeat::Nothing
                    } else {
                        Repeat::Item
                    };
                }
                b')' => {
                    self.at += 1;
                    let depth = self.extended.len();
                    if let Some(&(d, len, behind)) = self.discard.last() {
                        if d == depth {
                            self.discard.pop();
                            self.close_discarded(len, behind);
                            self.out.truncate(len);
                        }
                    }
                    if let Some(&(d, bar)) = self.conditionals.last() {
                        if d == depth {
                            self.conditionals.pop();
                            if !bar {
                                // `(?(c)yes)`: yes or nothing.
                                self.out.push('|');
                            }
                        }
                    }
                    if self.extended.len() > 1 {
                        self.extended.pop();
                    }
                    self.out.push(')');
                }
                b'*' | b'+' | b'?' => {
                    self.repeat = match (prev, c) {
                        (Repeat::Item, _) => Repeat::Quantified,
                        (Repeat::Quantified, b'?' | b'+') => Repeat::Done,
                        _ => return Err(error(self.at, "nothing to repeat")),
                    };
                    if c == b'+' && quantifier {
                        // Possessive: greedy for the automaton, PCRE decides.
                        self.relax("possessive quantifiers");
                        self.at += 1;
                        continue;
                    }
                    self.at += 1;
                    self.out.push(c as char);
                    // `+` after a quantifier is possessive; after `?` (lazy) it is not.
                    self.after_quantifier = c != b'?' || !quantifier;
                }
                b'{' => match self.quantifier_len() {
                    Some(_) if prev != Repeat::Item => {
                        return Err(error(self.at, "nothing to repeat"));
                    }
                    Some(n) => {
                        self.repeat = Repeat::Quantified;
                        let q =
                            String::from_utf8_lossy(&self.src[self.at..self.at + n]).into_owned();
                        self.out.push_str(&q);
                        self.at += n;
                        self.after_quantifier = true;
                    }
                    None => {
                        self.note("`{` that starts no quantifier read as a literal, as PCRE does");
                        self.fixes.push((self.at, 0, "\\"));
                        self.at += 1;
                        byte(&mut self.out, b'{');
                    }
                },
                b'^' | b'$' | b'.' | b'|' => {
                    self.at += 1;
                    self.out.push(c as char);
                    if c != b'.' {
                        self.repeat = Repeat::Nothing;
                    }
                    if c == b'|' {
                        let depth = self.extended.len();
                        if let Some(top) = self.conditionals.last_mut() {
                            if top.0 == depth {
                                top.1 = true;
                            }
                        }
                    }
                }
                b' ' | b'\t' | b'\n' | b'\r' | 0x0B | 0x0C if self.extended() => {
                    self.at += 1;
                    self.repeat = prev;
                }
                b'#' if self.extended() => {
                    self.repeat = prev;
                    while let Some(c) = self.peek() {
                        self.at += 1;
                        if c == b'\n' {
                            break;
                        }
                    }
                }
                _ => {
                    if c >= 0x80 {
                        self.note("non-ASCII characters read byte by byte (no UTF mode, as uWSGI)");
                    }
                    self.at += 1;
                    self.literal(c);
                }
            }
        }
        Ok(())
    }

    /// The length of a PCRE quantifier `{n}`, `{n,}`, `{n,m}` at the position, if one is there.
    fn quantifier_len(&self) -> Option<usize> {
        let s = &self.src[self.at..];
        let close = s.iter().position(|&b| b == b'}')?;
        let inner = &s[1..close];
        let (min, max) = match inner.iter().position(|&b| b == b',') {
            Some(k) => (&inner[..k], Some(&inner[k + 1..])),
            None => (inner, None),
        };
        let digits = |d: &[u8]| d.iter().all(u8::is_ascii_digit);
        let ok = !min.is_empty() && digits(min) && max.is_none_or(digits);
        ok.then_some(close + 1)
    }

    /// `(` and what follows it.
    fn open(&mut self) -> Result<(), Untranslatable> {
        let start = self.at;
        self.at += 1;
        let x = self.extended();
        match (self.peek(), self.peek_at(1)) {
            (Some(b'*'), _) => self.alone_atom(start, "a PCRE verb `(*...)`"),
            (Some(b'?'), next) => {
                self.at += 1;
                match next {
                    Some(b'#') => {
                        while let Some(c) = self.peek() {
                            self.at += 1;
                            if c == b')' {
                                return Ok(());
                            }
                        }
                        Err(error(start, "missing ) after comment"))
                    }
                    Some(b':') => {
                        self.at += 1;
                        self.extended.push(x);
                        self.out.push_str("(?:");
                        Ok(())
                    }
                    Some(b'|') => {
                        self.at += 1;
                        self.note("branch reset `(?|...)` run as a plain group (only capture numbers differ)");
                        self.extended.push(x);
                        self.out.push_str("(?:");
                        Ok(())
                    }
                    Some(b'>') => {
                        self.at += 1;
                        self.relax("atomic groups");
                        self.extended.push(x);
                        self.out.push_str("(?:");
                        Ok(())
                    }
                    Some(b'=') | Some(b'!') => {
                        self.at += 1;
                        self.open_discarded(None);
                        Ok(())
                    }
                    Some(b'<') if matches!(self.peek_at(1), Some(b'=') | Some(b'!')) => {
                        let negative = self.peek_at(1) == Some(b'!');
                        self.at += 2;
                        self.open_discarded(Some(negative));
                        Ok(())
                    }
                    Some(b'<') | Some(b'\'') => {
                        let close = if next == Some(b'<') { b'>' } else { b'\'' };
                        self.named_group(start, close)
                    }
                    Some(b'P') => match self.peek_at(1) {
                        Some(b'<') => {
                            self.at += 1;
                            self.named_group(start, b'>')
                        }
                        Some(b'=') => {
                            while let Some(c) = self.peek() {
                                self.at += 1;
                                if c == b')' {
                                    self.backreference();
                                    return Ok(());
                                }
                            }
                            Err(error(start, "missing ) after (?P=name"))
                        }
                        _ => self.alone_atom(start, "recursion `(?P>name)`"),
                    },
                    Some(b'(') => self.conditional(start),
                    Some(b'R') | Some(b'&') | Some(b'+') | Some(b'0'..=b'9') => {
                        self.alone_atom(start, "recursion or a subroutine call")
                    }
                    Some(b'-') if self.peek_at(1).is_some_and(|d| d.is_ascii_digit()) => {
                        self.alone_atom(start, "a subroutine call")
                    }
                    Some(b'C') => self.alone_atom(start, "a callout `(?C...)`"),
                    _ => self.flags(start),
                }
            }
            _ => {
                self.groups += 1;
                self.extended.push(x);
                self.out.push('(');
                Ok(())
            }
        }
    }

    /// Note `what` (at `start`) as a construct PCRE alone can run, the first one being the one
    /// reported.
    fn alone(&mut self, start: usize, what: &str) {
        if self.alone.is_none() {
            self.alone = Some(unsupported(start, what));
        }
    }

    /// [`Translator::alone`] for a construct that ends at the next `)` (a verb, a recursion,
    /// a callout), read past as an empty group.
    fn alone_atom(&mut self, start: usize, what: &str) -> Result<(), Untranslatable> {
        let rest = &self.src[self.at..];
        let close = rest
            .iter()
            .position(|&b| b == b')')
            .ok_or_else(|| error(start, "missing )"))?;
        self.utf |= self.src[start..].starts_with(b"(*UTF");
        self.at += close + 1;
        self.alone(start, what);
        self.out.push_str("(?:)");
        self.after_quantifier = false;
        Ok(())
    }

    /// `(?(CONDITION)YES|NO)` (the position at the condition's `(`): for the automaton either
    /// branch, `(?:YES|NO)` (`(?:YES|)` without NO), and PCRE confirms. Conditions on a group
    /// (`(?(1)`, `(?(<name>)`, `(?('name')`, `(?(name)`) are dropped; an assertion
    /// (`(?(?=…)`) is left to be read as the relaxed look-around it is. Recursion conditions
    /// and `(?(DEFINE)` have no relaxed form.
    fn conditional(&mut self, start: usize) -> Result<(), Untranslatable> {
        let rest = &self.src[self.at..];
        let assertion = rest.get(1) == Some(&b'?');
        if !assertion {
            let close = rest
                .iter()
                .position(|&b| b == b')')
                .ok_or_else(|| error(start, "missing ) after (?( condition"))?;
            let cond = &rest[1..close];
            let name = |c: &[u8]| {
                !c.is_empty() && c.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
            };
            let ok = match cond {
                [b'<', n @ .., b'>'] | [b'\'', n @ .., b'\''] => name(n),
                [b'R', ..] | b"DEFINE" => false,
                c => name(c),
            };
            if !ok {
                self.alone(start, "a conditional group `(?(...)...)`");
            }
            self.at += close + 1;
        }
        self.relax("conditional groups");
        let x = self.extended();
        self.extended.push(x);
        self.out.push_str("(?:");
        self.conditionals.push((self.extended.len(), false));
        Ok(())
    }

    /// `(?<name>`, `(?'name'`, `(?P<name>` (the `?` and opening quote at the position).
    fn named_group(&mut self, start: usize, close: u8) -> Result<(), Untranslatable> {
        self.at += 1;
        let from = self.at;
        while let Some(c) = self.peek() {
            if c == close {
                break;
            }
            if !(c.is_ascii_alphanumeric() || c == b'_') {
                return Err(error(
                    start,
                    "a group name holds letters, digits and _ only",
                ));
            }
            self.at += 1;
        }
        if self.peek() != Some(close) || self.at == from {
            return Err(error(start, "an unterminated or empty group name"));
        }
        let name = String::from_utf8_lossy(&self.src[from..self.at]).into_owned();
        self.at += 1;
        self.groups += 1;
        let x = self.extended();
        self.extended.push(x);
        let _ = write!(self.out, "(?P<{name}>");
        Ok(())
    }

    /// `(?imsxUXJ-imsx)` or `(?imsx-imsx:` (the position after `?`).
    fn flags(&mut self, start: usize) -> Result<(), Untranslatable> {
        let mut x = self.extended();
        let mut kept = String::new();
        let mut on = true;
        loop {
            let Some(c) = self.peek() else {
                return Err(error(start, "missing ) after (?"));
            };
            self.at += 1;
            match c {
                b'-' => {
                    on = false;
                    kept.push('-');
                }
                b'x' => {
                    x = on;
                    kept.push('x');
                }
                b'i' | b'm' | b's' | b'U' => kept.push(c as char),
                // Duplicate names and PCRE_EXTRA change nothing the automaton runs.
                b'J' | b'X' => {}
                b')' => {
                    if let Some(cur) = self.extended.last_mut() {
                        *cur = x;
                    }
                    if !kept.trim_matches('-').is_empty() {
                        let _ = write!(self.out, "(?{kept})");
                    }
                    return Ok(());
                }
                b':' => {
                    self.extended.push(x);
                    let _ = write!(self.out, "(?{kept}:");
                    return Ok(());
                }
                _ => return Err(error(start, "unrecognized character after (? or (?-")),
            }
        }
    }

    /// A backslash outside a class.
    fn escape(&mut self) -> Result<(), Untranslatable> {
        let start = self.at;
        self.at += 1;
        let Some(c) = self.peek() else {
            return Err(error(start, "\\ at end of pattern"));
        };
        self.at += 1;
        match c {
            b'Q' => {
                self.note("\\Q...\\E quoted");
                while let Some(b) = self.peek() {
                    if b == b'\\' && self.peek_at(1) == Some(b'E') {
                        self.at += 2;
                        break;
                    }
                    self.at += 1;
                    self.literal(b);
                }
            }
            b'E' => {}
            b'd' | b'D' | b's' | b'S' | b'w' | b'W' | b'b' | b'B' | b'A' => {
                self.out.push('\\');
                self.out.push(c as char);
            }
            b'z' => self.out.push_str("\\z"),
            b'Z' => {
                self.note("\\Z read as the end of the line");
                self.out.push('$');
            }
            b'G' => {
                self.note("\\G read as the start of the line (uWSGI matches each line once)");
                self.out.push_str("\\A");
            }
            b'K' => {
                self.note("\\K dropped (it moves only the start of the reported match)");
            }
            b'h' | b'H' | b'v' | b'V' => {
                self.note("\\h \\H \\v \\V with PCRE's meanings");
                let items = class_escape(c).unwrap_or_default();
                let negated = items.starts_with("[^");
                if negated {
                    self.out.push_str(items);
                } else {
                    let _ = write!(self.out, "[{items}]");
                }
                self.after_quantifier = false;
            }
            b'R' => {
                self.note("\\R as any line break");
                let _ = write!(self.out, "(?:\\x0D\\x0A|[{VSPACE}])");
            }
            b'N' => {
                // `\N{2}` is `\N` repeated; only `\N{name}` is refused.
                if self.peek() == Some(b'{') && self.quantifier_len().is_none() {
                    return Err(error(start, "PCRE does not support \\N{name}"));
                }
                self.out.push_str("[^\\x0A]");
            }
            b'C' => self.out.push_str("(?s:.)"),
            b'x' => {
                let v = self.hex(start)?;
                self.emit_value(v, start)?;
            }
            b'o' => {
                let v = self.braced(start, 8)?;
                self.emit_value(v, start)?;
            }
            b'c' => {
                let Some(x) = self.peek() else {
                    return Err(error(start, "\\c at end of pattern"));
                };
                if !x.is_ascii() {
                    return Err(error(start, "\\c must be followed by an ASCII character"));
                }
                self.at += 1;
                self.literal(x.to_ascii_uppercase() ^ 0x40);
            }
            b'0' => {
                self.at -= 1;
                let v = self.octal(3);
                self.literal(v as u8);
            }
            b'1'..=b'9' => self.digits(start)?,
            b'g' | b'k' => {
                if self.peek() == Some(b'<') && c == b'g' {
                    self.alone(start, "a subroutine call `\\g<...>`");
                }
                self.skip_reference();
                self.backreference();
            }
            b'p' | b'P' => {
                self.skip_property();
                self.relax("Unicode properties");
                self.out.push_str("(?s:.)");
            }
            b'X' => {
                self.relax("Unicode properties");
                self.out.push_str("(?s:.+)");
            }
            b'L' | b'l' | b'U' | b'u' => {
                return Err(error(start, "PCRE does not support \\L, \\l, \\U or \\u"))
            }
            _ => {
                if let Some(b) = letter_byte(c) {
                    self.literal(b);
                } else {
                    if c.is_ascii_alphabetic() {
                        self.note("an unknown letter escape read as the letter, as PCRE does");
                    }
                    self.literal(c);
                }
            }
        }
        Ok(())
    }

    /// `\` and a digit 1–9 outside a class: a backreference, an octal byte, or digits.
    fn digits(&mut self, start: usize) -> Result<(), Untranslatable> {
        let from = self.at - 1;
        let mut end = from;
        while self.src.get(end).is_some_and(u8::is_ascii_digit) {
            end += 1;
        }
        let n: usize = std::str::from_utf8(&self.src[from..end])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(usize::MAX);
        if n < 8 || n <= self.groups {
            self.at = end;
            self.backreference();
            return Ok(());
        }
        self.at = from;
        if matches!(self.src[from], b'8' | b'9') {
            // `\8`, `\9` without that many groups: the digit itself.
            // A group, not the bare digit: `\1\8` must not become `\18`.
            let digit = if self.src[from] == b'8' {
                "(?:8)"
            } else {
                "(?:9)"
            };
            self.fixes.push((from - 1, 2, digit));
            self.at += 1;
            self.literal(self.src[from]);
            return Ok(());
        }
        self.note("\\NNN read as an octal byte");
        let v = self.octal(3);
        if v > 0xFF {
            return Err(error(
                start,
                "octal value is greater than \\377 (not in UTF-8 mode)",
            ));
        }
        self.literal(v as u8);
        Ok(())
    }

    /// The reference after `\\g` or `\\k`: `{...}`, `<...>`, `'...'`, or `-`/digits.
    fn skip_reference(&mut self) {
        match self.peek() {
            Some(open @ (b'{' | b'<' | b'\'')) => {
                let close = match open {
                    b'{' => b'}',
                    b'<' => b'>',
                    _ => b'\'',
                };
                self.at += 1;
                while let Some(c) = self.peek() {
                    self.at += 1;
                    if c == close {
                        break;
                    }
                }
            }
            _ => {
                if matches!(self.peek(), Some(b'-' | b'+')) {
                    self.at += 1;
                }
                while self.peek().is_some_and(|d| d.is_ascii_digit()) {
                    self.at += 1;
                }
            }
        }
    }

    /// The property after `\\p` or `\\P`: `{...}` or one letter.
    fn skip_property(&mut self) {
        if self.peek() == Some(b'{') {
            while let Some(c) = self.peek() {
                self.at += 1;
                if c == b'}' {
                    break;
                }
            }
        } else if self.peek().is_some() {
            self.at += 1;
        }
    }

    /// Up to `max` octal digits at the position.
    fn octal(&mut self, max: usize) -> u32 {
        let mut v = 0u32;
        for _ in 0..max {
            match self.peek() {
                Some(d @ b'0'..=b'7') => {
                    v = v * 8 + u32::from(d - b'0');
                    self.at += 1;
                }
                _ => break,
            }
        }
        v
    }

    /// After `\x`: `{hex}` or up to two hex digits (none: NUL).
    fn hex(&mut self, start: usize) -> Result<u32, Untranslatable> {
        if self.peek() == Some(b'{') {
            return self.braced(start, 16);
        }
        let (mut v, from) = (0u32, self.at);
        for _ in 0..2 {
            match self.peek().and_then(|d| (d as char).to_digit(16)) {
                Some(d) => {
                    v = v * 16 + d;
                    self.at += 1;
                }
                None => break,
            }
        }
        if self.at == from {
            self.fixes.push((from, 0, "00"));
        }
        Ok(v)
    }

    /// `{digits}` in `radix`.
    fn braced(&mut self, start: usize, radix: u32) -> Result<u32, Untranslatable> {
        if self.peek() != Some(b'{') {
            return Err(error(start, "\\o must be followed by {"));
        }
        self.at += 1;
        let from = self.at;
        while self.peek().is_some_and(|d| (d as char).is_digit(radix)) {
            self.at += 1;
        }
        if self.peek() != Some(b'}') || self.at == from {
            return Err(error(start, "a malformed \\x{...} or \\o{...}"));
        }
        let digits = std::str::from_utf8(&self.src[from..self.at]).unwrap_or("");
        self.at += 1;
        u32::from_str_radix(digits, radix)
            .map_err(|_| error(start, "character value in \\x{} or \\o{} is too large"))
    }

    fn emit_value(&mut self, v: u32, start: usize) -> Result<(), Untranslatable> {
        if v > 0xFF {
            return Err(error(
                start,
                "character value in \\x{} or \\o{} is too large (not in UTF-8 mode: a byte)",
            ));
        }
        if v >= 0x80 {
            self.note("\\x{..} and \\xhh as bytes (no UTF mode, as uWSGI)");
        }
        self.literal(v as u8);
        Ok(())
    }

    /// A class `[...]`, as PCRE parses it.
    fn class(&mut self) -> Result<(), Untranslatable> {
        let start = self.at;
        // `[:alpha:]` outside a class.
        match posix_syntax(&self.src[start..]) {
            Some((b':', _)) => {
                return Err(error(
                    start,
                    "POSIX named classes are supported only within a class",
                ))
            }
            Some(_) => return Err(error(start, "POSIX collating elements are not supported")),
            None => {}
        }
        self.at += 1;
        let mut items = String::new();
        let negated = self.peek() == Some(b'^');
        if negated {
            self.at += 1;
        }
        // A `]` first is a literal.
        let mut first = true;
        // The previous item, when it is one byte (a range may start there).
        let mut prev: Option<u8> = None;
        // The previous item is a class escape or a POSIX class.
        let mut set_before = false;
        loop {
            let Some(c) = self.peek() else {
                return Err(error(start, "missing terminating ] for character class"));
            };
            if c == b']' && !first {
                self.at += 1;
                break;
            }
            first = false;
            // A range `a-z`: `-` between a byte and a byte (not before `]`).
            if c == b'-' && prev.is_some() && self.peek_at(1).is_some_and(|n| n != b']') {
                let save = self.at;
                self.at += 1;
                match self.class_item(start, true)? {
                    Item::Byte(hi) => {
                        let lo = prev.unwrap_or(hi);
                        if hi < lo {
                            return Err(error(save, "range out of order in character class"));
                        }
                        items.push('-');
                        class_byte(&mut items, hi);
                        prev = None;
                        continue;
                    }
                    // `a-\d`, `a-[:digit:]`: PCRE 8 refuses the range (PCRE2 and Perl read
                    // the `-` as a literal).
                    Item::Set(_) => {
                        return Err(error(save, "invalid range in character class"));
                    }
                    Item::Nothing => {
                        items.push_str("\\x2D");
                        prev = Some(b'-');
                        continue;
                    }
                }
            }
            if c == b'-' && set_before && self.peek_at(1).is_some_and(|n| n != b']') {
                // `[\d-z]`: PCRE 8 reads a literal `-`; PCRE2 10.46 refuses the range.
                self.fixes.push((self.at, 0, "\\"));
            }
            set_before = false;
            match self.class_item(start, false)? {
                Item::Byte(b) => {
                    class_byte(&mut items, b);
                    prev = Some(b);
                }
                Item::Set(s) => {
                    items.push_str(&s);
                    prev = None;
                    set_before = true;
                }
                Item::Nothing => {}
            }
        }
        if items.is_empty() {
            // `[\E]`-like: PCRE would have read the `]` as a literal; be safe.
            return Err(error(start, "an empty character class"));
        }
        self.out.push_str(if negated { "[^" } else { "[" });
        self.out.push_str(&items);
        self.out.push(']');
        Ok(())
    }

    /// One item of a class at the position.
    fn class_item(&mut self, start: usize, in_range: bool) -> Result<Item, Untranslatable> {
        let Some(c) = self.peek() else {
            return Err(error(start, "missing terminating ] for character class"));
        };
        if c == b'[' {
            if let Some(set) = self.posix_class(start)? {
                return Ok(Item::Set(set.into()));
            }
            self.at += 1;
            if !in_range {
                self.note("`[` inside a class read as a literal, as PCRE does");
            }
            return Ok(Item::Byte(b'['));
        }
        if c != b'\\' {
            self.at += 1;
            if c >= 0x80 {
                self.note("non-ASCII characters read byte by byte (no UTF mode, as uWSGI)");
            }
            return Ok(Item::Byte(c));
        }
        let esc = self.at;
        self.at += 1;
        let Some(e) = self.peek() else {
            return Err(error(esc, "\\ at end of pattern"));
        };
        self.at += 1;
        if let Some(set) = class_escape(e) {
            if matches!(e, b'h' | b'H' | b'v' | b'V') {
                self.note("\\h \\H \\v \\V with PCRE's meanings");
            }
            return Ok(Item::Set(set.into()));
        }
        Ok(match e {
            b'b' => Item::Byte(0x08),
            b'Q' => {
                // Literal bytes until \E: the first is the item, the rest follow as items.
                self.note("\\Q...\\E quoted");
                let mut bytes = Vec::new();
                while let Some(b) = self.peek() {
                    if b == b'\\' && self.peek_at(1) == Some(b'E') {
                        self.at += 2;
                        break;
                    }
                    self.at += 1;
                    bytes.push(b);
                }
                match bytes.as_slice() {
                    [] => Item::Nothing,
                    [one] => Item::Byte(*one),
                    many => Item::Set(
                        many.iter()
                            .fold(String::new(), |mut s, &b| {
                                hex(&mut s, b);
                                s
                            })
                            .into(),
                    ),
                }
            }
            b'E' => Item::Nothing,
            b'x' => {
                let v = self.hex(esc)?;
                Item::Byte(
                    u8::try_from(v).map_err(|_| {
                        error(esc, "character value in \\x{} or \\o{} is too large")
                    })?,
                )
            }
            b'o' => {
                let v = self.braced(esc, 8)?;
                Item::Byte(
                    u8::try_from(v).map_err(|_| {
                        error(esc, "character value in \\x{} or \\o{} is too large")
                    })?,
                )
            }
            b'0'..=b'7' => {
                self.at -= 1;
                let v = self.octal(3);
                Item::Byte(u8::try_from(v).map_err(|_| {
                    error(esc, "octal value is greater than \\377 (not in UTF-8 mode)")
                })?)
            }
            b'c' => {
                let Some(x) = self.peek().filter(u8::is_ascii) else {
                    return Err(error(esc, "\\c must be followed by an ASCII character"));
                };
                self.at += 1;
                Item::Byte(x.to_ascii_uppercase() ^ 0x40)
            }
            b'N' | b'R' | b'X' | b'B' => {
                return Err(error(
                    esc,
                    "\\N, \\R, \\X and \\B are not allowed in a character class",
                ))
            }
            b'p' | b'P' => {
                self.skip_property();
                self.relax("Unicode properties");
                Item::Set("\\x00-\\xFF".into())
            }
            b'L' | b'l' | b'U' | b'u' => {
                return Err(error(esc, "PCRE does not support \\L, \\l, \\U or \\u"))
            }
            other => Item::Byte(letter_byte(other).unwrap_or(other)),
        })
    }

    /// `[:name:]` / `[:^name:]` at the position (inside a class), if one is there.
    fn posix_class(&mut self, start: usize) -> Result<Option<&'static str>, Untranslatable> {
        let s = &self.src[self.at..];
        let Some((kind, end)) = posix_syntax(s) else {
            return Ok(None);
        };
        if kind != b':' {
            return Err(error(start, "POSIX collating elements are not supported"));
        }
        let body = &s[2..end];
        let (neg, name) = match body.strip_prefix(b"^") {
            Some(n) => (true, n),
            None => (false, body),
        };
        // PERF: the class as written, from a table (Debian's 2,101 rules hold 7,719 of them:
        // 5 M instructions formatting each at every cold start).
        const NAMES: [(&str, &str, &str); 14] = [
            ("alnum", "[:alnum:]", "[:^alnum:]"),
            ("alpha", "[:alpha:]", "[:^alpha:]"),
            ("ascii", "[:ascii:]", "[:^ascii:]"),
            ("blank", "[:blank:]", "[:^blank:]"),
            ("cntrl", "[:cntrl:]", "[:^cntrl:]"),
            ("digit", "[:digit:]", "[:^digit:]"),
            ("graph", "[:graph:]", "[:^graph:]"),
            ("lower", "[:lower:]", "[:^lower:]"),
            ("print", "[:print:]", "[:^print:]"),
            ("punct", "[:punct:]", "[:^punct:]"),
            ("space", "[:space:]", "[:^space:]"),
            ("upper", "[:upper:]", "[:^upper:]"),
            ("word", "[:word:]", "[:^word:]"),
            ("xdigit", "[:xdigit:]", "[:^xdigit:]"),
        ];
        let Some(&(_, plain, negated)) = NAMES.iter().find(|n| n.0.as_bytes() == name) else {
            return Err(error(start, "unknown POSIX class name"));
        };
        self.at += end + 2;
        Ok(Some(if neg { negated } else { plain }))
    }
}

enum Item {
    Byte(u8),
    Set(std::borrow::Cow<'static, str>),
    Nothing,
}

/// The length of the flag directive that `text` (a translated pattern) starts with (`(?i)`,
/// `(?is)`), 0 when none: it holds for the whole pattern.
fn leading_flags(text: &str) -> usize {
    let b = text.as_bytes();
    match b.get(..2) {
        Some(b"(?") => b[2..]
            .iter()
            .position(|&c| !(c.is_ascii_alphabetic() || c == b'-'))
            .filter(|&i| i > 0 && b.get(2 + i) == Some(&b')'))
            .map_or(0, |i| i + 3),
        _ => 0,
    }
}

/// Whether `text` (a translated pattern) sets flags (`(?i)`, `(?s:…)`, …).
fn has_flags(text: &str) -> bool {
    let b = text.as_bytes();
    b.windows(3).enumerate().any(|(i, w)| {
        w[0] == b'('
            && w[1] == b'?'
            && (w[2].is_ascii_alphabetic() || w[2] == b'-')
            && w[2] != b'P'
            && (i == 0 || b[i - 1] != b'\\')
    })
}

/// Where the groups around position `at` of a translated pattern open, innermost first. A
/// translation writes every literal `(` and `)` as `\x28` and `\x29`, so a bare one opens or
/// closes a group.
fn enclosing_groups(text: &str, at: usize) -> Vec<usize> {
    let b = text.as_bytes();
    let mut depth = 0usize;
    let mut out = Vec::new();
    for i in (0..at.min(b.len())).rev() {
        if i > 0 && b[i - 1] == b'\\' {
            continue;
        }
        match b[i] {
            b')' => depth += 1,
            b'(' if depth == 0 => out.push(i),
            b'(' => depth -= 1,
            _ => {}
        }
    }
    out
}

/// Just past the `)` closing the group that opens at `start` of a translated pattern.
fn group_end(text: &str, start: usize) -> Option<usize> {
    let b = text.as_bytes();
    let mut depth = 0usize;
    for i in start..b.len() {
        if i > 0 && b[i - 1] == b'\\' {
            continue;
        }
        match b[i] {
            b'(' => depth += 1,
            b')' if depth == 1 => return Some(i + 1),
            b')' => depth = depth.checked_sub(1)?,
            _ => {}
        }
    }
    None
}

/// Whether a look-behind of `content` placed at `at` of `text` (a translated pattern, or a
/// group of one) holds wherever a match of `text` that may start after any text reaches it:
/// what can come before it (see [`walk`]) is all bytes it accepts and never the line's start
/// (negative: no byte it refuses).
fn holds_within(text: &str, at: usize, content: &str, negative: bool) -> bool {
    let mut marked = String::with_capacity(text.len() + content.len() + 32);
    marked.push_str(&text[..at]);
    let _ = write!(marked, "(?P<{MARK}0>{content})");
    marked.push_str(&text[at..]);
    let Ok(h) = crate::rules::parse_regex(&marked) else {
        return false;
    };
    let mut w = Walk {
        seen: vec![None],
        budget: WALK_BUDGET,
    };
    walk(&h, Before::anything(), &mut w);
    if w.budget == 0 {
        return false;
    }
    match w.seen.first().copied().flatten() {
        // Never reached (inside `{0}`): nothing to hold.
        None => true,
        Some((_, None)) => false,
        Some((before, Some(set))) => match negative {
            false => !before.start && before.bytes.within(&set),
            true => before.bytes.disjoint(&set),
        },
    }
}

/// The name prefix of the empty groups marking where look-behinds stood
/// ([`Translator::look_behinds_hold`]).
const MARK: &str = "logalarmlookbehind";

/// A set of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Bytes([u64; 4]);

impl Bytes {
    const ALL: Bytes = Bytes([u64::MAX; 4]);

    fn add(&mut self, b: u8) {
        self.0[usize::from(b / 64)] |= 1 << (b % 64);
    }

    fn union(self, o: Bytes) -> Bytes {
        Bytes(std::array::from_fn(|i| self.0[i] | o.0[i]))
    }

    fn within(&self, o: &Bytes) -> bool {
        (0..4).all(|i| self.0[i] & !o.0[i] == 0)
    }

    fn disjoint(&self, o: &Bytes) -> bool {
        (0..4).all(|i| self.0[i] & o.0[i] == 0)
    }

    fn of_class(c: &regex_syntax::hir::Class) -> Bytes {
        match c {
            regex_syntax::hir::Class::Bytes(c) => {
                let mut set = Bytes::default();
                for r in c.ranges() {
                    for b in r.start()..=r.end() {
                        set.add(b);
                    }
                }
                set
            }
            // An alternation of ASCII literals becomes one (`(?:a|:)`); a character past ASCII
            // is several bytes, the last of them any byte from 0x80 on, to stay on the safe
            // side.
            regex_syntax::hir::Class::Unicode(c) => {
                let mut set = Bytes::default();
                for r in c.ranges() {
                    let (start, end) = (u32::from(r.start()), u32::from(r.end()));
                    for b in start.min(0x80)..=end.min(0x7F) {
                        set.add(b as u8);
                    }
                    if end >= 0x80 {
                        (0x80..=0xFF).for_each(|b| set.add(b));
                    }
                }
                set
            }
        }
    }
}

/// The bytes a look-behind's content matches when it is one byte.
fn one_byte(h: &regex_syntax::hir::Hir) -> Option<Bytes> {
    use regex_syntax::hir::HirKind;
    match h.kind() {
        HirKind::Literal(l) if l.0.len() == 1 => {
            let mut set = Bytes::default();
            set.add(l.0[0]);
            Some(set)
        }
        HirKind::Class(c) => Some(Bytes::of_class(c)),
        HirKind::Capture(c) => one_byte(&c.sub),
        _ => None,
    }
}

/// What can come before a place in a match: bytes, and whether the subject's start can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Before {
    bytes: Bytes,
    start: bool,
}

impl Before {
    fn anything() -> Before {
        Before {
            bytes: Bytes::ALL,
            start: true,
        }
    }

    fn union(self, o: Before) -> Before {
        Before {
            bytes: self.bytes.union(o.bytes),
            start: self.start || o.start,
        }
    }
}

/// The state of [`walk`]: what can come before each marker group ([`MARK`]`N`) and the bytes
/// its content matches if it is one byte, and how many more steps the walk may take.
struct Walk {
    seen: Vec<Option<(Before, Option<Bytes>)>>,
    budget: usize,
}

/// Steps of [`walk`] for one rule: nested repetitions are walked until what comes before
/// them stops growing, a few times each; past this the rule keeps PCRE.
const WALK_BUDGET: usize = 100_000;

/// What can come before the end of a match of `h` that starts after `before`; each marker
/// group ([`MARK`]`N`) records into `w.seen[N]` what can come before it. A superset where
/// repetition counts are ignored (so the check it serves errs towards keeping PCRE).
fn walk(h: &regex_syntax::hir::Hir, before: Before, w: &mut Walk) -> Before {
    use regex_syntax::hir::HirKind;
    if w.budget == 0 {
        return Before::anything();
    }
    w.budget -= 1;
    match h.kind() {
        HirKind::Empty | HirKind::Look(_) => before,
        HirKind::Literal(l) => match l.0.last() {
            Some(&b) => {
                let mut bytes = Bytes::default();
                bytes.add(b);
                Before {
                    bytes,
                    start: false,
                }
            }
            None => before,
        },
        HirKind::Class(c) => Before {
            bytes: Bytes::of_class(c),
            start: false,
        },
        HirKind::Capture(c) => {
            let marker = c.name.as_deref().and_then(|n| n.strip_prefix(MARK));
            match marker.and_then(|i| i.parse::<usize>().ok()) {
                Some(i) if i < w.seen.len() => {
                    let all = w.seen[i].map_or(before, |(s, _)| s.union(before));
                    w.seen[i] = Some((all, one_byte(&c.sub)));
                    before
                }
                _ => walk(&c.sub, before, w),
            }
        }
        HirKind::Concat(v) => v.iter().fold(before, |b, h| walk(h, b, w)),
        HirKind::Alternation(v) => v
            .iter()
            .map(|h| walk(h, before, w))
            .fold(Before::default(), Before::union),
        HirKind::Repetition(r) => {
            // Iterate until what can come before an iteration stops growing.
            let mut input = before;
            let mut out = Before::default();
            loop {
                let after = walk(&r.sub, input, w);
                out = out.union(after);
                let next = input.union(after);
                if next == input {
                    break;
                }
                input = next;
            }
            if r.min == 0 {
                out.union(before)
            } else {
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(p: &str) -> String {
        translate(p).unwrap().pattern
    }

    #[test]
    fn negated_space_escapes_are_the_classes_negated() {
        assert_eq!(class_escape(b'H'), Some(format!("[^{HSPACE}]").as_str()));
        assert_eq!(class_escape(b'V'), Some(format!("[^{VSPACE}]").as_str()));
        assert_eq!(class_escape(b'q'), None);
    }

    #[test]
    fn the_byte_table_escapes_exactly_the_meta_characters() {
        for b in 0..=255u8 {
            let want = if b.is_ascii_alphanumeric() || b"_:,/=\"'@%!;<>`".contains(&b) {
                AS_IS
            } else if regex_syntax::is_meta_character(char::from(b)) {
                ESCAPED
            } else {
                HEX
            };
            assert_eq!(BYTE_SPELLING[usize::from(b)], want, "byte {b:#04x}");
        }
    }

    #[test]
    fn posix_classes_are_written_as_named() {
        for name in [
            "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print",
            "punct", "space", "upper", "word", "xdigit",
        ] {
            assert_eq!(t(&format!("[[:{name}:]]")), format!("[[:{name}:]]"));
            assert_eq!(t(&format!("[x[:^{name}:]]")), format!("[x[:^{name}:]]"));
        }
        assert!(translate("[[:nope:]]").is_err());
    }

    #[test]
    fn translations() {
        assert_eq!(t(r"Switch\<0\>\(0x0\)"), r"Switch<0>\(0x0\)");
        assert_eq!(t(r"\Qkernel[0]:\E ARPT"), r"kernel\[0\]: ARPT");
        assert_eq!(t(r"\101\0\x41\x{e9}\o{101}"), r"A\x00A\xE9A");
        assert_eq!(t("a{,3}"), r"a\{,3\}");
        // A space is written as it is only where the `x` flag is off (the automaton's syntax
        // skips it where the flag is on, as PCRE does).
        assert_eq!(t(r"(?x) a b\ c (?-x)d e"), r"(?x)ab\x20c(?-x)d e");
        assert_eq!(t(r"(?x:a\ b) c"), r"(?x:a\x20b) c");
        assert_eq!(t("a{2,3}b{2}c{1,}"), "a{2,3}b{2}c{1,}");
        assert_eq!(t(r"\e\cA\h"), r"\x1B\x01[\x09\x20\xA0]");
        assert_eq!(t("caf[éè]"), r"caf[\xC3\xA9\xC3\xA8]");
        assert_eq!(t("dhcpd[[[:digit:]]+]"), r"dhcpd[\x5B[:digit:]]+\]");
        // In a class a letter or digit is written as it is, anything else as `\xHH`.
        assert_eq!(t("[x/[[:digit:]]+"), r"[x\x2F\x5B[:digit:]]+");
        assert_eq!(
            t("{ DriveReady SeekComplete Error }"),
            r"\{ DriveReady SeekComplete Error \}"
        );
        assert_eq!(t("[]a-c-]"), r"[\x5Da-c\x2D]");
        assert_eq!(t(r"[\d-z]"), r"[\d\x2Dz]");
        assert_eq!(t(r"[^0-9A-F.:&~-]"), r"[^0-9A-F\x2E\x3A\x26\x7E\x2D]");
        assert_eq!(t("(?|a|b)(?#note)x"), "(?:a|b)x");
        assert_eq!(t("(?x) a b # c\n d"), "(?x)abd");
        assert_eq!(t("(?'n'x)"), "(?P<n>x)");
        assert_eq!(t(r"a\Kb\Z"), "ab$");
        assert_eq!(t(r"\8\9"), "89");
    }

    #[test]
    fn relaxed_forms_are_supersets_confirmed_by_pcre() {
        for (p, relaxed) in [
            ("foo (?!bar)", r"foo (?:)"),
            ("(?<=x)y", "(?:)y"),
            (r"(abc)\1", "(abc)(?s:.*)"),
            (r"(?P<w>a)(?P=w)", "(?P<w>a)(?s:.*)"),
            (r"(a)\g{1}\k<x>", "(a)(?s:.*)(?s:.*)"),
            (r"\d++8", r"\d+8"),
            ("(?>a+)b", "(?:a+)b"),
            (r"\p{L}x", "(?s:.)x"),
            ("a(?=(b|c))*d", "a(?:)*d"),
            ("(a)?(?(1)b|c)", "(a)?(?:b|c)"),
            ("(?P<u>x)?(?(u): |(?:y))z", r"(?P<u>x)?(?:: |(?:y))z"),
            ("(?<v>a)(?(<v>)b)", "(?P<v>a)(?:b|)"),
            ("(?('v')b|(c|d))", "(?:b|(c|d))"),
            ("(?(?=a)ab|cd)", "(?:(?:)ab|cd)"),
        ] {
            let t = translate(p).unwrap();
            assert!(t.pcre, "{p}");
            assert_eq!(t.pattern, relaxed, "{p}");
        }
        assert!(
            !translate(r"a+?b*?").unwrap().pcre,
            "lazy quantifiers are not possessive"
        );
        assert!(
            translate(r"(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)\10")
                .unwrap()
                .pcre
        );
    }

    #[test]
    fn one_byte_look_behinds_that_always_hold_are_dropped() {
        // fail2ban's `<HOST>` (IPv6 part): every iteration ends with `:`.
        let host = r"(?:[0-9a-fA-F]{1,4}::?|::){1,7}(?:[0-9a-fA-F]{1,4}|(?<=:):)";
        for (p, exact) in [
            (host, true),
            ("a(?<=a)b", true),
            ("a(?<![b:])b", true),
            ("(?i)a(?<=[aA])b", true),
            ("(?:a|b:)(?<=[a:])c", true),
            ("x(?:a|:)*(?<=[ax:])y", true),
            ("(?<=x)y", false),
            ("(?<!x)y", false),
            ("[ab](?<=a)c", false),
            ("a?(?<=a)c", false),
            ("(?i)a(?<=a)b", true),
            ("(?i)a(?<=a)b|(?<=b)c", false),
            ("a(?<=ab)c", false),
            ("a(?=(?<=a))b", false),
            ("a(?<=a)(?!b)", false),
            // Within a group taken alone `a(?<=a)` holds, not under the rule's `(?i)`.
            ("(?i)(?:a(?-i:(?<=a)))", false),
            ("(?i)x(?:a|b)+(?<=[aAbB])y", true),
            // A leading directive holds for a group taken alone too: the group is read
            // with it (under `(?i)` the look-behind accepts both cases as well).
            ("(?i)q(?:a(?<=a))", true),
            ("(?i)q(?:[ab](?<=a))", false),
            ("(?i)q(?:a(?-i:(?<=a)))", false),
            ("(?is)(?:x|:)(?<=[xX:])y", true),
            (r"\((?:a|:)(?<=[a:])\)", true),
            (r"(?:x\)|:)(?<=:)", false),
        ] {
            let t = translate(p).unwrap();
            assert_eq!(!t.pcre, exact, "{p}: {t:?}");
        }
        let t = translate(host).unwrap();
        assert!(t.notes.iter().any(|n| n.contains("look-behind")), "{t:?}");
        assert_eq!(leading_flags("(?i)abc"), 4);
        assert_eq!(leading_flags("(?is-m)abc"), 7);
        for p in ["(?i:a)b", "(?P<x>a)", "(?)a", "a(?i)b", "(?i", ""] {
            assert_eq!(leading_flags(p), 0, "{p}");
        }
        let p = "a(b(?:c)(d(?:)e)f)";
        assert_eq!(enclosing_groups(p, 13), vec![10, 8, 1]);
        assert_eq!(enclosing_groups(p, 14), vec![8, 1]);
        assert_eq!(group_end(p, 8), Some(16));
        assert_eq!(group_end(p, 1), Some(p.len()));
        assert_eq!(group_end(r"(a\)", 0), None);
        assert!(!t.pattern.contains("logalarm"), "{t:?}");
    }

    #[test]
    fn refusals_name_the_construct() {
        for p in [
            "a(?R)?b",
            "(a)(?(R)a|b)",
            "(?(DEFINE)(a))b",
            "(*UTF8)x",
            r"(a)\g<1>",
        ] {
            let t = translate(p).unwrap();
            assert!(pcre_only(&t), "{p}: {t:?}");
            assert!(t.notes[0].contains("run by PCRE on every line"), "{t:?}");
        }
        for (p, what) in [
            (r"\x{100}", "too large"),
            ("[a", "missing terminating ]"),
            (r"\", "at end"),
            ("[z-a]", "out of order"),
        ] {
            let e = translate(p).unwrap_err().to_string();
            assert!(e.contains(what), "{p}: {e}");
        }
    }

    /// Each checked against uWSGI's libpcre 8.39 (`pcre_compile` with no options) when written.
    #[test]
    fn what_pcre_8_refuses_is_refused() {
        for (p, what) in [
            ("a**", "nothing to repeat"),
            ("a{2}{3}", "nothing to repeat"),
            ("a?*", "nothing to repeat"),
            ("a??+", "nothing to repeat"),
            ("a*+?", "nothing to repeat"),
            (r"\d{2}*", "nothing to repeat"),
            ("[a]{2}{1}", "nothing to repeat"),
            ("^*", "nothing to repeat"),
            ("$+", "nothing to repeat"),
            (r"a\b{2}", "nothing to repeat"),
            (r"\A?", "nothing to repeat"),
            (r"\K*", "nothing to repeat"),
            ("a(?i)*", "nothing to repeat"),
            ("x|{2}", "nothing to repeat"),
            ("({2})", "nothing to repeat"),
            ("(?#c)*", "nothing to repeat"),
            ("a*(?#c)?", "nothing to repeat"),
            ("a+(?#c)(?#d)?", "nothing to repeat"),
            (r"a*\E?", "nothing to repeat"),
            (r"a*\Q\E+", "nothing to repeat"),
            (r"\Q\E*", "nothing to repeat"),
            ("(?x) *", "nothing to repeat"),
            ("a(*ACCEPT)?", "nothing to repeat"),
            (r"[a-\d]", "invalid range"),
            ("[%-[:digit:]]", "invalid range"),
            ("[:alpha:]", "only within a class"),
            ("x[:al:]y", "only within a class"),
            ("[.a.]", "collating"),
        ] {
            let e = translate(p).unwrap_err().to_string();
            assert!(e.contains(what), "{p}: {e}");
        }
        for p in [
            "a*+",
            "a*?",
            "a{2}?",
            "a{1,2}+",
            "(?=x)*",
            "(?<=x){2}",
            "()*",
            r"a\Q\E*",
            r"a\E*",
            "a(?#c)*",
            "(?x)a #c\n*",
            "(?x)a* ?",
            "a(?#c)?",
            "a{,3}{2}",
            r"\N{2}",
            r"a\N{1,3}",
            r"[\d-a]",
            r"[a-\Q\E]",
            "[:a]",
            "[:[:xdigit:]]+",
            "[[:[:digit:]]]",
        ] {
            assert!(translate(p).is_ok(), "{p}");
        }
        assert!(translate(r"\N{name}").is_err());
    }

    #[test]
    fn pcre2_reads_the_rule_as_pcre_8_does() {
        let src = |p: &str| translate(p).unwrap().pcre_source;
        // PCRE2 10.43+ reads `{,3}` as `{0,3}` and `{ 2 }` as `{2}`.
        assert_eq!(src("(?<=x)a{,3}b").as_deref(), Some(r"(?<=x)a\{,3}b"));
        assert_eq!(src("(?!z)c{ 2}{").as_deref(), Some(r"(?!z)c\{ 2}\{"));
        // PCRE2 refuses `\x` without digits and `\8` without eight groups.
        assert_eq!(src(r"(?=a)\xg").as_deref(), Some(r"(?=a)\x00g"));
        assert_eq!(src(r"(?=a)[\x]").as_deref(), Some(r"(?=a)[\x00]"));
        assert_eq!(src(r"(a)\1\8\9").as_deref(), Some(r"(a)\1(?:8)(?:9)"));
        // ... and `[\d-z]` (PCRE 8: a literal `-`).
        let want = r"(?=a)[\d\-z][[:digit:]\-a]";
        assert_eq!(src(r"(?=a)[\d-z][[:digit:]-a]").as_deref(), Some(want));
        assert_eq!(src(r"(?=a)[\d-]"), None);
        // Braces that PCRE reads otherwise are left as written.
        assert_eq!(src(r"(?=a)a{2}\x{41}\p{L}[{]\Q{\E(?#{)"), None);
        assert_eq!(src(r"(?=a)\x41\8"), Some(r"(?=a)\x41(?:8)".into()));
        // A rule PCRE alone runs is read to its end for them.
        assert_eq!(src("(?R)|x{,2}").as_deref(), Some(r"(?R)|x\{,2}"));
        // The text PCRE2 compiles.
        let t = translate("(?<=x)a{,3}b").unwrap();
        assert_eq!(t.pcre_text("(?<=x)a{,3}b"), r"(?<=x)a\{,3}b");
        let t = translate("(?<=x)ab").unwrap();
        assert_eq!(t.pcre_text("(?<=x)ab"), "(?<=x)ab");
        for p in [
            r"(?<=x)a\{,3}b",
            r"(?!z)c\{ 2}\{",
            r"(?=a)\x00g",
            r"(a)\1(?:8)(?:9)",
            r"(?=a)[\d\-z]",
        ] {
            assert!(crate::rules::LazyJit::new(p).is_ok(), "{p}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]
        /// Any text: an answer, never a panic; an accepted rule's translation always parses.
        #[test]
        fn any_text_is_translated_or_refused(p in "[\\\\\\[\\](){}?*+|^$.:<=!>'#PQEKxo0-9a-fhvRNCZGgkpuL,\\- é\t\n]{0,24}") {
            if let Ok(t) = translate(&p) {
                let _ = crate::rules::parse_regex(&t.pattern);
            }
        }
    }
}

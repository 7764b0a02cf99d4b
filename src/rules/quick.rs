//! The regex parse's fast path: the part of regex-syntax's syntax that the PCRE translation
//! writes (and most hand-written rules use), read straight into the syntax tree.
//!
//! Role: [`parse`] reads a pattern in one pass into the very `Hir` regex-syntax's parser makes
//! of it (`unicode(false)`, `utf8(false)`, default flags and line terminator), built with the
//! same `Hir` constructors, or says `None` and [`super::parse_regex`] asks regex-syntax.
//! It knows: literals (printable ASCII, meta characters escaped, `\xHH`, `\n \t \r \f \v \a`),
//! `.`, `^ $ \A \z \b \B`, `\d \D \s \S \w \W`, bracketed classes of literals, ranges,
//! `[:name:]`/`[:^name:]` and Perl classes (negated or not), groups (capturing, named,
//! non-capturing, with flags), flag directives of `i m s U`, alternation, and the quantifiers
//! `? * + {n} {n,} {n,m}`, greedy or lazy. Anything else — an error, a construct it does not
//! know, a spelling with more than one reading (`[]a]`, `[a-]`, `a**`, `^*`), any byte outside
//! printable ASCII — is `None`, so what it accepts it reads exactly as regex-syntax does.
//! PERF: regex-syntax builds a spanned AST, then walks it into the HIR: with Debian's 2,101
//! rules that was 366 M instructions, two thirds of a cold start's per-rule work; this reads
//! each byte once and allocates little beyond the tree.
//! Invariant: `parse(p) == Some(h)` implies regex-syntax parses `p` to `Ok(h)` (tests: every
//! shipped rule, a table of edge cases, a property test over generated patterns).

use regex_syntax::hir::{self, Class, ClassBytes, ClassBytesRange, Hir, Look};

/// Deeper groups than this are left to regex-syntax (its nest limit counts groups,
/// repetitions, concatenations and alternations: 250).
const MAX_DEPTH: usize = 32;

/// The class of each ASCII letter in both cases (`[Aa]` to `[Zz]`), as regex-syntax makes it
/// for a letter under `(?i)`: made once, cloned for each such letter.
// PERF: each letter of a `(?i)` rule made its class anew (a one-range class grown by case
// folding, sorted, its properties computed): a tenth of the parse of Debian's 2,101 rules
// behind `(?i)` (PERF.md "thirty-second run").
fn letter_classes() -> &'static [Hir; 26] {
    static CLASSES: std::sync::OnceLock<[Hir; 26]> = std::sync::OnceLock::new();
    CLASSES.get_or_init(|| {
        std::array::from_fn(|i| {
            let b = b'a' + i as u8;
            let mut c = ClassBytes::new([ClassBytesRange::new(b, b)]);
            c.case_fold_simple();
            Hir::class(Class::Bytes(c))
        })
    })
}

/// Read `pattern` as regex-syntax would (see the module doc), or `None`.
pub(crate) fn parse(pattern: &str) -> Option<Hir> {
    let mut q = Quick {
        p: pattern.as_bytes(),
        at: 0,
        flags: Flags::default(),
        captures: 0,
        names: Vec::new(),
        depth: 0,
    };
    let h = q.alternation()?;
    (q.at == q.p.len()).then_some(h)
}

#[derive(Clone, Copy, Default)]
struct Flags {
    case_insensitive: bool,
    multi_line: bool,
    dot_all: bool,
    swap_greed: bool,
}

struct Quick<'a> {
    p: &'a [u8],
    at: usize,
    flags: Flags,
    captures: u32,
    names: Vec<Box<str>>,
    depth: usize,
}

/// One item of a concatenation before its quantifier: a plain byte joins the literal run.
enum Atom {
    Byte(u8),
    Tree(Hir),
    /// A flag directive `(?i)`: nothing to match, and no quantifier may follow.
    Directive,
}

/// A class item: one byte (may start or end a range) or a class to join.
enum ClassItem {
    Byte(u8),
    Set(ClassBytes),
}

impl Quick<'_> {
    fn peek(&self) -> Option<u8> {
        self.p.get(self.at).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        let hit = self.peek() == Some(b);
        self.at += usize::from(hit);
        hit
    }

    fn alternation(&mut self) -> Option<Hir> {
        let first = self.concat()?;
        if self.peek() != Some(b'|') {
            return Some(first);
        }
        let mut branches = vec![first];
        while self.eat(b'|') {
            branches.push(self.concat()?);
        }
        Some(Hir::alternation(branches))
    }

    /// Items up to `|`, `)` or the end.
    fn concat(&mut self) -> Option<Hir> {
        let mut items: Vec<Hir> = Vec::new();
        let mut run: Vec<u8> = Vec::new();
        while let Some(b) = self.peek() {
            if b == b'|' || b == b')' {
                break;
            }
            let atom = self.atom()?;
            let quantified = matches!(self.peek(), Some(b'?' | b'*' | b'+' | b'{'));
            match atom {
                Atom::Directive if quantified => return None,
                Atom::Directive => {}
                Atom::Byte(b) if !quantified => run.push(b),
                atom => {
                    let h = match atom {
                        Atom::Byte(b) => Hir::literal([b]),
                        Atom::Tree(h) => h,
                        Atom::Directive => Hir::empty(),
                    };
                    let h = if quantified { self.quantifier(h)? } else { h };
                    if !run.is_empty() {
                        items.push(Hir::literal(std::mem::take(&mut run)));
                    }
                    items.push(h);
                }
            }
        }
        if !run.is_empty() {
            items.push(Hir::literal(run));
        }
        Some(match items.len() {
            0 => Hir::empty(),
            1 => items.pop()?,
            _ => Hir::concat(items),
        })
    }

    fn quantifier(&mut self, sub: Hir) -> Option<Hir> {
        let (min, max) = match self.peek()? {
            b'?' => (0, Some(1)),
            b'*' => (0, None),
            b'+' => (1, None),
            _ => {
                self.at += 1;
                let min = self.decimal()?;
                let max = if self.eat(b',') {
                    if self.peek() == Some(b'}') {
                        None
                    } else {
                        Some(self.decimal()?)
                    }
                } else {
                    Some(min)
                };
                if self.peek() != Some(b'}') || max.is_some_and(|m| m < min) {
                    return None;
                }
                (min, max)
            }
        };
        self.at += 1;
        let lazy = self.eat(b'?');
        if matches!(self.peek(), Some(b'?' | b'*' | b'+' | b'{')) {
            return None;
        }
        Some(Hir::repetition(hir::Repetition {
            min,
            max,
            greedy: lazy == self.flags.swap_greed,
            sub: Box::new(sub),
        }))
    }

    /// 1 to 6 decimal digits (regex-syntax reads up to `u32::MAX`).
    fn decimal(&mut self) -> Option<u32> {
        let start = self.at;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) && self.at - start < 6 {
            self.at += 1;
        }
        if self.at == start || self.peek().is_some_and(|b| b.is_ascii_digit()) {
            return None;
        }
        std::str::from_utf8(&self.p[start..self.at])
            .ok()?
            .parse()
            .ok()
    }

    fn atom(&mut self) -> Option<Atom> {
        let b = self.peek()?;
        self.at += 1;
        Some(match b {
            b'(' => return self.group(),
            b'[' => Atom::Tree(Hir::class(Class::Bytes(self.class()?))),
            b'.' => Atom::Tree(Hir::dot(if self.flags.dot_all {
                hir::Dot::AnyByte
            } else {
                hir::Dot::AnyByteExcept(b'\n')
            })),
            b'^' => Atom::Tree(Hir::look(if self.flags.multi_line {
                Look::StartLF
            } else {
                Look::Start
            })),
            b'$' => Atom::Tree(Hir::look(if self.flags.multi_line {
                Look::EndLF
            } else {
                Look::End
            })),
            b'\\' => match self.peek()? {
                b'A' => self.look(Look::Start),
                b'z' => self.look(Look::End),
                b'b' => self.look(Look::WordAscii),
                b'B' => self.look(Look::WordAsciiNegate),
                _ => match self.escape()? {
                    ClassItem::Byte(b) => self.literal(b),
                    ClassItem::Set(c) => Atom::Tree(Hir::class(Class::Bytes(c))),
                },
            },
            b'?' | b'*' | b'+' | b'{' | b'}' | b']' => return None,
            b' '..=b'~' => self.literal(b),
            _ => return None,
        })
    }

    fn look(&mut self, look: Look) -> Atom {
        self.at += 1;
        Atom::Tree(Hir::look(look))
    }

    /// A literal byte as the flags make it: a letter under `(?i)` is the class of its cases.
    fn literal(&self, b: u8) -> Atom {
        if self.flags.case_insensitive && b.is_ascii_alphabetic() {
            let letter = usize::from(b.to_ascii_lowercase() - b'a');
            if let Some(class) = letter_classes().get(letter) {
                return Atom::Tree(class.clone());
            }
        }
        Atom::Byte(b)
    }

    /// After a `\` outside a group's syntax: a byte or a Perl class (in or out of brackets).
    fn escape(&mut self) -> Option<ClassItem> {
        let e = self.peek()?;
        self.at += 1;
        Some(match e {
            b'x' => {
                let hex = self.p.get(self.at..self.at + 2)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                self.at += 2;
                ClassItem::Byte(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?)
            }
            b'n' => ClassItem::Byte(b'\n'),
            b't' => ClassItem::Byte(b'\t'),
            b'r' => ClassItem::Byte(b'\r'),
            b'f' => ClassItem::Byte(0x0C),
            b'v' => ClassItem::Byte(0x0B),
            b'a' => ClassItem::Byte(0x07),
            b'd' | b'D' | b's' | b'S' | b'w' | b'W' => {
                let mut c = ascii_class(match e.to_ascii_lowercase() {
                    b'd' => "digit",
                    b's' => "space",
                    _ => "word",
                })?;
                if e.is_ascii_uppercase() {
                    c.negate();
                }
                ClassItem::Set(c)
            }
            // What regex-syntax lets be escaped (`\<` and `\>` are assertions there).
            b'!'..=b'/' | b':'..=b';' | b'=' | b'?'..=b'@' | b'['..=b'`' | b'{'..=b'~' => {
                ClassItem::Byte(e)
            }
            _ => return None,
        })
    }

    fn group(&mut self) -> Option<Atom> {
        let saved = self.flags;
        let mut name = None;
        let capture = if self.eat(b'?') {
            if self.eat(b'P') && self.peek() != Some(b'<') {
                return None;
            }
            if self.eat(b'<') {
                name = Some(self.capture_name()?);
                true
            } else if self.eat(b':') {
                false
            } else {
                // Flags: `(?i)` for the rest of the enclosing group, `(?i:…)` for this one.
                self.flag_letters()?;
                if self.eat(b')') {
                    return Some(Atom::Directive);
                }
                if !self.eat(b':') {
                    return None;
                }
                false
            }
        } else {
            true
        };
        let index = if capture {
            self.captures = self.captures.checked_add(1)?;
            Some(self.captures)
        } else {
            None
        };
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return None;
        }
        let sub = self.alternation()?;
        self.depth -= 1;
        if !self.eat(b')') {
            return None;
        }
        self.flags = saved;
        Some(Atom::Tree(match index {
            Some(index) => Hir::capture(hir::Capture {
                index,
                name,
                sub: Box::new(sub),
            }),
            None => sub,
        }))
    }

    /// `name>` of a named group: ASCII letters, digits and `_`, not starting with a digit,
    /// and not a name used before.
    fn capture_name(&mut self) -> Option<Box<str>> {
        let start = self.at;
        while self
            .peek()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            self.at += 1;
        }
        let name = std::str::from_utf8(&self.p[start..self.at]).ok()?;
        if !self.eat(b'>') || name.is_empty() || name.as_bytes()[0].is_ascii_digit() {
            return None;
        }
        if self.names.iter().any(|n| &**n == name) {
            return None;
        }
        self.names.push(name.into());
        Some(name.into())
    }

    /// `i`, `m`, `s`, `U`, each once, optionally with one `-` before those turned off (at
    /// least one letter after it), up to the `)` or `:` (not taken).
    fn flag_letters(&mut self) -> Option<()> {
        let mut seen = 0u8;
        let mut on = true;
        let mut last_was_minus = false;
        loop {
            let bit = match self.peek()? {
                b'i' => 1,
                b'm' => 2,
                b's' => 4,
                b'U' => 8,
                b'-' if on => {
                    on = false;
                    last_was_minus = true;
                    self.at += 1;
                    continue;
                }
                b')' | b':' if seen != 0 && !last_was_minus => return Some(()),
                _ => return None,
            };
            if seen & bit != 0 {
                return None;
            }
            seen |= bit;
            last_was_minus = false;
            let f = &mut self.flags;
            match bit {
                1 => f.case_insensitive = on,
                2 => f.multi_line = on,
                4 => f.dot_all = on,
                _ => f.swap_greed = on,
            }
            self.at += 1;
        }
    }

    /// After `[`: the class up to its `]`, folded and negated as written.
    fn class(&mut self) -> Option<ClassBytes> {
        let negated = self.eat(b'^');
        let mut class = ClassBytes::empty();
        let mut first = true;
        loop {
            let b = self.peek()?;
            if b == b']' && !first {
                self.at += 1;
                break;
            }
            first = false;
            match self.class_item()? {
                ClassItem::Set(c) => class.union(&c),
                ClassItem::Byte(start) => {
                    let end = if self.peek() == Some(b'-') {
                        self.at += 1;
                        match self.class_item()? {
                            ClassItem::Byte(end) if end >= start => end,
                            _ => return None,
                        }
                    } else {
                        start
                    };
                    if self.peek() == Some(b'-') {
                        return None;
                    }
                    class.push(ClassBytesRange::new(start, end));
                }
            }
        }
        if self.flags.case_insensitive {
            class.case_fold_simple();
        }
        if negated {
            class.negate();
        }
        Some(class)
    }

    fn class_item(&mut self) -> Option<ClassItem> {
        let b = self.peek()?;
        self.at += 1;
        match b {
            b'\\' => {
                if matches!(self.peek()?, b'b' | b'B' | b'A' | b'z') {
                    return None;
                }
                self.escape()
            }
            b'[' => {
                if !self.eat(b':') {
                    return None;
                }
                let negated = self.eat(b'^');
                let start = self.at;
                while self.peek().is_some_and(|b| b.is_ascii_lowercase()) {
                    self.at += 1;
                }
                let name = std::str::from_utf8(&self.p[start..self.at]).ok()?;
                if !(self.eat(b':') && self.eat(b']')) {
                    return None;
                }
                let mut c = ascii_class(name)?;
                if self.flags.case_insensitive {
                    c.case_fold_simple();
                }
                if negated {
                    c.negate();
                }
                Some(ClassItem::Set(c))
            }
            b']' | b'-' | b'&' | b'~' | b'^' => None,
            b' '..=b'~' => Some(ClassItem::Byte(b)),
            _ => None,
        }
    }
}

/// regex-syntax's ASCII classes (`[[:name:]]`; `\d`, `\s`, `\w` are digit, space, word).
fn ascii_class(name: &str) -> Option<ClassBytes> {
    let ranges: &[(u8, u8)] = match name {
        "alnum" => &[(b'0', b'9'), (b'A', b'Z'), (b'a', b'z')],
        "alpha" => &[(b'A', b'Z'), (b'a', b'z')],
        "ascii" => &[(0, 0x7F)],
        "blank" => &[(b'\t', b'\t'), (b' ', b' ')],
        "cntrl" => &[(0, 0x1F), (0x7F, 0x7F)],
        "digit" => &[(b'0', b'9')],
        "graph" => &[(b'!', b'~')],
        "lower" => &[(b'a', b'z')],
        "print" => &[(b' ', b'~')],
        "punct" => &[(b'!', b'/'), (b':', b'@'), (b'[', b'`'), (b'{', b'~')],
        "space" => &[(b'\t', b'\r'), (b' ', b' ')],
        "upper" => &[(b'A', b'Z')],
        "word" => &[(b'0', b'9'), (b'A', b'Z'), (b'_', b'_'), (b'a', b'z')],
        "xdigit" => &[(b'0', b'9'), (b'A', b'F'), (b'a', b'f')],
        _ => return None,
    };
    Some(ClassBytes::new(
        ranges.iter().map(|&(s, e)| ClassBytesRange::new(s, e)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// regex-syntax's own reading, configured as `parse_regex` configures it.
    fn slow(p: &str) -> Option<Hir> {
        regex_syntax::ParserBuilder::new()
            .unicode(false)
            .utf8(false)
            .build()
            .parse(p)
            .ok()
    }

    /// What the fast path reads, regex-syntax reads the same; `Err` names the difference.
    fn agrees(p: &str) -> Result<bool, String> {
        match (parse(p), slow(p)) {
            (None, _) => Ok(false),
            (Some(q), Some(s)) if q == s => Ok(true),
            (Some(q), s) => Err(format!("{p:?}: fast {q:?}\nregex-syntax {s:?}")),
        }
    }

    #[test]
    fn edge_cases_read_as_regex_syntax_reads_them() {
        // (pattern, the fast path takes it)
        let cases: &[(&str, bool)] = &[
            ("", true),
            ("abc", true),
            ("a|b|c", true),
            ("a||", true),
            ("|a", true),
            ("()", true),
            ("(?:)", true),
            ("(?i)", true),
            ("((?i))", true),
            ("a(?i)b|c", true),
            ("(?i)ab(?-i)cd", true),
            ("(a(?i)b)c", true),
            ("(?i:a)b", true),
            ("(?is-mU:a.)b.", true),
            ("(?U)a*b*?", true),
            ("(?m)^a$", true),
            ("\\A\\z\\b\\B", true),
            ("^*a", true),
            ("a{3}b{2,}c{1,4}?d{0}e{0,0}f{1}", true),
            ("(?:ab)+|(cd){2,3}", true),
            ("(?P<x>a)(?<y>b)(c)", true),
            ("(?i)\\x41\\xe9[\\xe0-\\xff]", true),
            ("(?i)[a-c[:upper:]\\d]", true),
            ("(?i)[^x]", true),
            ("[^[:^alpha:]\\W]", true),
            ("[\\x00-\\xff]", true),
            ("[^\\x00-\\xff]", true),
            ("[a]b", true),
            (
                "\\.\\[\\]\\{\\}\\(\\)\\|\\^\\$\\*\\+\\?\\\\\\-\\&\\~\\#\\/\\:\\\"\\%",
                true,
            ),
            ("\\n\\t\\r\\f\\v\\a", true),
            ("[\\n\\-\\]\\[]", true),
            ("a# b&c~d-e}", false),
            ("a**", false),
            ("a{2}{3}", false),
            ("(?i)*", false),
            ("*a", false),
            ("a{", false),
            ("a{,3}", false),
            ("a{3,2}", false),
            ("a{1234567}", false),
            ("(a", false),
            ("a)", false),
            ("[a", false),
            ("[]a]", false),
            ("[-a]", false),
            ("[a-]", false),
            ("[z-a]", false),
            ("[a-c-e]", false),
            ("[a--b]", false),
            ("[a&&b]", false),
            ("[[a]]", false),
            ("[[:foo:]]", false),
            ("(?P<1a>x)", false),
            ("(?P<a>x)(?P<a>y)", false),
            ("(?x)a b", false),
            ("(?u)a", false),
            ("(?ii)a", false),
            ("(?i-)a", false),
            ("(?-)a", false),
            ("(?)a", false),
            ("(?=a)", false),
            ("\\1", false),
            ("\\pL", false),
            ("\\<a", false),
            ("\\Z", false),
            ("\\x4", false),
            ("\\x{41}", false),
            ("caf\u{e9}", false),
            ("a\tb", false),
        ];
        for &(p, fast) in cases {
            assert_eq!(agrees(p), Ok(fast), "{p:?}");
        }
        let deep = format!("{}a{}", "(".repeat(40), ")".repeat(40));
        assert_eq!(agrees(&deep), Ok(false));
    }

    /// Every shipped rule, as the PCRE translation writes it, takes the fast path.
    #[test]
    fn shipped_rules_take_the_fast_path() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/rules");
        let mut n = 0;
        for f in [
            "rules10",
            "rules100",
            "rules100pcre",
            "rulesmixed",
            "rulesipport",
        ] {
            let text = std::fs::read_to_string(format!("{dir}/{f}.txt")).unwrap();
            for rule in text.lines().filter(|l| !l.is_empty()) {
                let t = crate::rules::pcre::translate(rule).unwrap();
                assert_eq!(agrees(&t.pattern), Ok(true), "{f}: {rule}");
                n += 1;
            }
        }
        assert!(n > 200, "{n}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(20000))]
        /// Generated patterns, valid and not: whatever the fast path reads, regex-syntax reads
        /// alike.
        #[test]
        fn reads_what_regex_syntax_reads(
            parts in proptest::collection::vec(proptest::sample::select(vec![
                "a", "B", "7", " ", ":", "-", "_", "#", "&", "~", "}", "]", "{", "\\", "/",
                "(", ")", "|", "(?:", "(?i)", "(?-i)", "(?i:", "(?s)", "(?m)", "(?U)", "(?is-U:",
                "(?P<n>", "(?<m>", "?", "*", "+", "??", "*?", "{2}", "{1,3}", "{2,}", "{0}",
                "{3,1}", ".", "^", "$", "\\b", "\\B", "\\A", "\\z", "\\d", "\\W", "\\s", "\\S",
                "\\x41", "\\xe9", "\\x0a", "\\n", "\\.", "\\-", "\\]", "[", "[^", "[a-z]",
                "[^\\x00-\\x09]", "[[:alpha:]", "[:^digit:]]", "[\\w\\x2D.]", "[z-a]", "a-c",
                "[]", "[A-Fa-f0-9]+", "(?i)[k-m]", "\\<", "\\1", "(?P<n>a)",
            ]), 1..20)
        ) {
            let p = parts.concat();
            let verdict = agrees(&p);
            proptest::prop_assert!(verdict.is_ok(), "{}", verdict.unwrap_err());
        }
    }
}

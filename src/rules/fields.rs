//! Rules on the fields of structured lines: `log-alarm-json` and `log-alarm-logfmt`.
//!
//! Role: a rule `NAME level=error|fatal service=api` holds when the line's JSON object (from its
//! first `{`; a prefix such as a timestamp is allowed) or its logfmt pairs have each field, and
//! each field's value matches its regex *entirely*. The automaton never parses: it runs a plain
//! regex that every such line matches (its *candidate pattern*: the first field's name, and its
//! value when the value regex is a plain word list), so only candidate lines are parsed, by the
//! [`FieldRule`] that confirms them (the literal prefilter first, as for every rule). Captures:
//! each field's value, by the field's name (dots become `_`).

use regex_automata::meta::Regex;

/// The line format of a field rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Logfmt,
}

/// One `FIELD=REGEX` condition, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldCond {
    /// The field's path (`a.b`: key `b` of object `a`; logfmt keys are taken whole).
    pub field: String,
    pub regex: String,
}

/// A parsed field rule's conditions and its format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSpec {
    pub format: Format,
    pub conds: Vec<FieldCond>,
}

impl FieldSpec {
    /// Parse `FIELD=REGEX [FIELD=REGEX...]` (space-separated; a regex cannot hold a space:
    /// write `\s` or `\x20`).
    pub fn parse(format: Format, text: &str) -> Result<FieldSpec, String> {
        let mut conds = Vec::new();
        for tok in text.split_whitespace() {
            let Some((field, regex)) = tok.split_once('=') else {
                return Err(format!("`{tok}`: expected FIELD=REGEX"));
            };
            let ok = !field.is_empty()
                && field
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-.@/".contains(&b));
            if !ok {
                return Err(format!(
                    "`{field}`: a field name is letters, digits and _ - . @ /"
                ));
            }
            conds.push(FieldCond {
                field: field.to_string(),
                regex: regex.to_string(),
            });
        }
        if conds.is_empty() {
            return Err("no FIELD=REGEX".to_string());
        }
        Ok(FieldSpec { format, conds })
    }

    /// The candidate pattern (PCRE, as a `log-alarm` rule): every line the rule holds for
    /// matches it.
    pub fn candidate(&self) -> String {
        let c = &self.conds[0];
        let key = match self.format {
            Format::Json => c.field.rsplit('.').next().unwrap_or(&c.field),
            Format::Logfmt => c.field.as_str(),
        };
        let key = quote(key);
        // The value joins the pattern only when it is a plain list of words: then the raw
        // text of a matching value is the value itself (no JSON escapes to differ).
        let plain = !c.regex.is_empty()
            && c.regex
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'|' || b == b'-');
        match (self.format, plain) {
            (Format::Json, true) => format!("\"{key}\"\\s*:\\s*\"?(?:{})[\",}}\\s]", c.regex),
            (Format::Json, false) => format!("\"{key}\"\\s*:"),
            (Format::Logfmt, true) => {
                format!("(?:^|\\s){key}=\"?(?:{})(?:\"|\\s|$)", c.regex)
            }
            (Format::Logfmt, false) => format!("(?:^|\\s){key}="),
        }
    }
}

/// A PCRE-quoted literal (the field names' characters are all safe but `.`, `-`, `/`).
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == '@' {
            out.push(c);
        } else {
            out.push('\\');
            out.push(c);
        }
    }
    out
}

/// A field rule, compiled: parses candidate lines and checks every condition.
#[derive(Debug)]
pub(crate) struct FieldRule {
    format: Format,
    conds: Vec<(Vec<String>, Regex)>,
}

impl FieldRule {
    pub(crate) fn new(spec: &FieldSpec) -> Result<FieldRule, String> {
        let mut conds = Vec::new();
        for c in &spec.conds {
            let re = Regex::builder()
                .syntax(
                    regex_automata::util::syntax::Config::new()
                        .unicode(false)
                        .utf8(false),
                )
                .build(&format!("^(?:{})$", c.regex))
                .map_err(|e| format!("{}={}: {e}", c.field, c.regex))?;
            let path = match spec.format {
                Format::Json => c.field.split('.').map(str::to_string).collect(),
                Format::Logfmt => vec![c.field.clone()],
            };
            conds.push((path, re));
        }
        Ok(FieldRule {
            format: spec.format,
            conds,
        })
    }

    /// Whether every condition holds on `text` (a line without its terminator).
    pub(crate) fn holds(&self, text: &[u8]) -> bool {
        self.values(text).is_some()
    }

    /// The values of the fields when every condition holds: `(field, value)` in the order
    /// written, then (`all`) every other top-level field of the line (captures).
    pub(crate) fn values(&self, text: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
        self.values_all(text, false)
    }

    /// [`values`](Self::values), with every top-level field of the line after the
    /// conditions' when `all`.
    pub(crate) fn values_all(&self, text: &[u8], all: bool) -> Option<Vec<(String, Vec<u8>)>> {
        let mut out = Vec::with_capacity(self.conds.len());
        match self.format {
            Format::Json => {
                let start = memchr::memchr(b'{', text)?;
                let mut it = serde_json::Deserializer::from_slice(&text[start..])
                    .into_iter::<serde_json::Value>();
                let doc = it.next()?.ok()?;
                for (path, re) in &self.conds {
                    let mut v = &doc;
                    for k in path {
                        v = v.get(k)?;
                    }
                    let s: Vec<u8> = match v {
                        serde_json::Value::String(s) => s.as_bytes().to_vec(),
                        other => other.to_string().into_bytes(),
                    };
                    if !re.is_match(&s) {
                        return None;
                    }
                    out.push((path.join("."), s));
                }
                if let (true, Some(obj)) = (all, doc.as_object()) {
                    for (k, v) in obj {
                        let s = match v {
                            serde_json::Value::String(s) => s.as_bytes().to_vec(),
                            other => other.to_string().into_bytes(),
                        };
                        out.push((k.clone(), s));
                    }
                }
            }
            Format::Logfmt => {
                let pairs = logfmt(text);
                for (path, re) in &self.conds {
                    let key = path.first()?.as_bytes();
                    let (_, v) = pairs.iter().find(|(k, _)| k.as_slice() == key)?;
                    if !re.is_match(v) {
                        return None;
                    }
                    out.push((path.join("."), v.clone()));
                }
                if all {
                    for (k, v) in pairs {
                        out.push((String::from_utf8_lossy(&k).into_owned(), v));
                    }
                }
            }
        }
        Some(out)
    }
}

/// The `key=value` pairs of a logfmt line (`value` may be `"quoted \" like this"`); bare words
/// are skipped.
fn logfmt(text: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    let mut i = 0;
    let n = text.len();
    while i < n {
        while i < n && text[i].is_ascii_whitespace() {
            i += 1;
        }
        let ks = i;
        while i < n && !text[i].is_ascii_whitespace() && text[i] != b'=' {
            i += 1;
        }
        let key = text[ks..i].to_vec();
        if i >= n || text[i] != b'=' {
            continue;
        }
        i += 1;
        let mut val = Vec::new();
        if i < n && text[i] == b'"' {
            i += 1;
            while i < n && text[i] != b'"' {
                if text[i] == b'\\' && i + 1 < n {
                    i += 1;
                }
                val.push(text[i]);
                i += 1;
            }
            i += 1;
        } else {
            while i < n && !text[i].is_ascii_whitespace() {
                val.push(text[i]);
                i += 1;
            }
        }
        if !key.is_empty() {
            out.push((key, val));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(format: Format, spec: &str) -> (FieldSpec, FieldRule) {
        let s = FieldSpec::parse(format, spec).unwrap();
        let r = FieldRule::new(&s).unwrap();
        (s, r)
    }

    #[test]
    fn json_fields_nested_any_order_with_a_prefix() {
        let (s, r) = rule(Format::Json, "level=error|fatal http.status=5\\d\\d");
        let line =
            br#"2026-12-01T10:00:00Z app {"http":{"status":503},"msg":"a \"b\"","level":"error"}"#;
        assert!(r.holds(line));
        assert!(!r.holds(br#"{"level":"errors","http":{"status":503}}"#));
        assert!(!r.holds(br#"{"level":"error","http":{"status":404}}"#));
        assert!(!r.holds(b"level=error not json"));
        let v = r.values(line).unwrap();
        assert_eq!(v[1], ("http.status".to_string(), b"503".to_vec()));
        // The candidate pattern holds on every line the rule holds on.
        let cand = regex::bytes::Regex::new(&s.candidate()).unwrap();
        assert!(cand.is_match(line), "{}", s.candidate());
    }

    #[test]
    fn logfmt_quoted_values() {
        let (s, r) = rule(Format::Logfmt, "level=error msg=.*timeout.*");
        let line = br#"ts=2026-12-01 level=error msg="upstream \"db\" timeout after 3s" svc=api"#;
        assert!(r.holds(line));
        assert_eq!(
            r.values(line).unwrap()[1].1,
            b"upstream \"db\" timeout after 3s".to_vec()
        );
        assert!(!r.holds(b"level=warn msg=timeout"));
        let cand = regex::bytes::Regex::new(&s.candidate()).unwrap();
        assert!(cand.is_match(line));
    }

    #[test]
    fn bad_specs_are_named() {
        assert!(FieldSpec::parse(Format::Json, "").is_err());
        assert!(FieldSpec::parse(Format::Json, "level").is_err());
        assert!(FieldSpec::parse(Format::Json, "lev{el=x").is_err());
        let s = FieldSpec::parse(Format::Json, "level=(").unwrap();
        assert!(FieldRule::new(&s).is_err());
    }
}

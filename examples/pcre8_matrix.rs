//! The differential tests' oracle: which rules uWSGI's libpcre 8 matches on which lines.
//!
//! `pcre8_matrix RULES LINES` reads rules and lines (one per `\n`-ended line, raw bytes),
//! compiles each rule as uWSGI does (`pcre_compile` without options, `pcre_study`) and runs
//! `pcre_exec` on every line without its newline. It prints one row per line: the indices of
//! the rules that match, separated by spaces, an index written `?N` when libpcre reported an
//! error for that pair (a match limit), `!N` for a rule that did not compile.
//!
//! `tests/ruleset_diff.py` and `tests/pcre8_diff.py` call it with `--oracle` (scripts/test.sh
//! builds it): the same calls they make through Python's ctypes, at a fifth of the cost
//! (ctypes spent ~3.5 µs a call, most of the differentials' two CPU minutes). libpcre.so.3 is
//! opened at run time (uwsgi-core installs it; no -dev package needed).

use std::ffi::{c_char, c_int, c_void, CStr};
use std::io::{BufWriter, Write};
use std::process::ExitCode;

type Compile = unsafe extern "C" fn(
    *const c_char,
    c_int,
    *mut *const c_char,
    *mut c_int,
    *const c_void,
) -> *mut c_void;
type Study = unsafe extern "C" fn(*const c_void, c_int, *mut *const c_char) -> *mut c_void;
type Exec = unsafe extern "C" fn(
    *const c_void,
    *const c_void,
    *const c_char,
    c_int,
    c_int,
    c_int,
    *mut c_int,
    c_int,
) -> c_int;

struct Pcre {
    compile: Compile,
    study: Study,
    exec: Exec,
}

/// A compiled rule (null when it did not compile) and its study.
struct Rule {
    re: *mut c_void,
    extra: *mut c_void,
}

// SAFETY: libpcre's compiled patterns are read-only during pcre_exec (its documentation: a
// compiled pattern may be used by several threads at once).
unsafe impl Sync for Rule {}

fn open() -> Result<Pcre, String> {
    // SAFETY: dlopen/dlsym with NUL-terminated names; the symbols' types are libpcre 8's
    // documented prototypes (pcre.h).
    unsafe {
        let h = libc::dlopen(c"libpcre.so.3".as_ptr(), libc::RTLD_NOW);
        if h.is_null() {
            return Err("libpcre.so.3 (uWSGI's PCRE, from uwsgi-core) cannot be opened".into());
        }
        let sym = |name: &CStr| {
            let p = libc::dlsym(h, name.as_ptr());
            if p.is_null() {
                Err(format!("libpcre.so.3 has no {name:?}"))
            } else {
                Ok(p)
            }
        };
        Ok(Pcre {
            compile: std::mem::transmute::<*mut c_void, Compile>(sym(c"pcre_compile")?),
            study: std::mem::transmute::<*mut c_void, Study>(sym(c"pcre_study")?),
            exec: std::mem::transmute::<*mut c_void, Exec>(sym(c"pcre_exec")?),
        })
    }
}

fn records(path: &str) -> Result<Vec<Vec<u8>>, String> {
    let data = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    let mut v: Vec<Vec<u8>> = data.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    if v.last().is_some_and(Vec::is_empty) {
        v.pop();
    }
    Ok(v)
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pcre8_matrix: {e}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [rules, lines] = args.as_slice() else {
        return Err("usage: pcre8_matrix RULES LINES".into());
    };
    let pcre = open()?;
    let rules: Vec<Rule> = records(rules)?
        .into_iter()
        .map(|mut r| {
            // A C string: libpcre reads the pattern up to its first NUL, as ctypes passes it.
            if let Some(n) = r.iter().position(|&b| b == 0) {
                r.truncate(n);
            }
            r.push(0);
            let (mut err, mut off) = (std::ptr::null(), 0);
            // SAFETY: `r` is NUL-terminated; err/off are valid out-pointers.
            let re = unsafe {
                (pcre.compile)(r.as_ptr().cast(), 0, &mut err, &mut off, std::ptr::null())
            };
            let extra = match re.is_null() {
                true => std::ptr::null_mut(),
                // SAFETY: `re` is a compiled pattern.
                false => unsafe { (pcre.study)(re, 0, &mut err) },
            };
            Rule { re, extra }
        })
        .collect();
    // Each line followed by a NUL, as a Python bytes object is (an empty line's pointer is
    // then a real one: libpcre read through the dangling pointer of an empty slice).
    let lines: Vec<Vec<u8>> = records(lines)?
        .into_iter()
        .map(|mut l| {
            l.push(0);
            l
        })
        .collect();
    // Two threads, each a half of the lines; rows printed in line order. libpcre 8 recurses
    // on the C stack (a thread's 2 MiB overflowed where Python's and uWSGI's 8 MiB main
    // thread did not): 64 MiB each.
    let half = lines.len().div_ceil(2).max(1);
    let rows: Vec<Vec<String>> = std::thread::scope(|s| {
        let parts: Vec<_> = lines
            .chunks(half)
            .map(|part| {
                let (rules, pcre) = (&rules, &pcre);
                std::thread::Builder::new()
                    .stack_size(64 << 20)
                    .spawn_scoped(s, move || {
                        part.iter().map(|l| row(pcre, rules, l)).collect::<Vec<_>>()
                    })
            })
            .collect();
        parts
            .into_iter()
            .filter_map(|h| h.ok()?.join().ok())
            .collect()
    });
    if rows.iter().map(Vec::len).sum::<usize>() != lines.len() {
        return Err("a matching thread failed".into());
    }
    let mut out = BufWriter::new(std::io::stdout().lock());
    for r in rows.iter().flatten() {
        writeln!(out, "{r}").map_err(|e| e.to_string())?;
    }
    out.flush().map_err(|e| e.to_string())
}

/// The row of `line`: the matching rules' indices, `?N` for an error, `!N` for no pattern.
fn row(pcre: &Pcre, rules: &[Rule], line: &[u8]) -> String {
    let mut s = String::new();
    let mut ov = [0 as c_int; 30];
    // `line` ends with the NUL added after it: not part of the subject.
    let len = c_int::try_from(line.len().saturating_sub(1)).unwrap_or(c_int::MAX);
    for (i, r) in rules.iter().enumerate() {
        let mark = if r.re.is_null() {
            "!"
        } else {
            // SAFETY: `r.re`/`r.extra` come from pcre_compile/pcre_study; `line` holds `len`
            // bytes and a NUL; `ov` holds 30 ints.
            let rc = unsafe {
                (pcre.exec)(
                    r.re,
                    r.extra,
                    line.as_ptr().cast(),
                    len,
                    0,
                    0,
                    ov.as_mut_ptr(),
                    30,
                )
            };
            match rc {
                0.. => "",
                -1 => continue,
                _ => "?",
            }
        };
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(mark);
        s.push_str(&i.to_string());
    }
    s
}

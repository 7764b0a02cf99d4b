#!/usr/bin/env python3
"""Differential test of logalarm's rule dialect against uWSGI's own regex library.

uWSGI 2.0.21 compiles `log-alarm` rules with libpcre 8 (`pcre_compile(rule, 0, ...)`, then
`pcre_study`) and matches each with `pcre_exec`. This script generates random rules of the
constructs log rules use (literals, classes and their escapes, POSIX classes, anchors,
quantifiers lazy and possessive, groups of every kind, look-around, backreferences to closed
groups, `\\Q...\\E`, comments, flags, stray braces) and random lines made of the same words, and
checks, rule by rule, that

* logalarm accepts exactly the rules libpcre 8 accepts (`logalarm check`), and
* for the accepted rules, logalarm raises a rule's alarm on exactly the lines libpcre 8 matches
  (one `log:` alarm per rule, `alarm-freq = 0`, every line distinct).

libpcre 8 is loaded with ctypes from libpcre.so.3 (installed with uwsgi-core, which links it);
with --oracle, examples/pcre8_matrix (built by `cargo build --release --example pcre8_matrix`)
makes the matching calls natively, the compile checks staying here.
A (rule, line) pair on which libpcre 8 reports an error (its match limit) is left out, as is a
rule that libpcre refuses only for a reason logalarm documents (see README "The PCRE dialect").

Usage: tests/pcre8_diff.py --bin target/release/logalarm [--seeds N] [--first S] [--rules R]
       [--oracle target/release/examples/pcre8_matrix]
Exit status 1 and the offending rule and line on any difference; 2 when libpcre.so.3 is missing.
"""
import argparse
import ctypes
import os
import random
import re
import subprocess
import sys
import tempfile


def load_pcre8():
    try:
        lib = ctypes.CDLL("libpcre.so.3")
    except OSError as e:
        print(f"pcre8_diff: libpcre.so.3 (uWSGI's PCRE) is not installed: {e}", file=sys.stderr)
        sys.exit(2)
    lib.pcre_compile.restype = ctypes.c_void_p
    lib.pcre_compile.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_char_p),
                                 ctypes.POINTER(ctypes.c_int), ctypes.c_void_p]
    lib.pcre_study.restype = ctypes.c_void_p
    lib.pcre_study.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_char_p)]
    lib.pcre_exec.restype = ctypes.c_int
    lib.pcre_exec.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int,
                              ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    return lib


class Pcre8:
    """One rule compiled as uWSGI compiles it."""

    def __init__(self, lib, pattern: bytes):
        self.lib = lib
        err, off = ctypes.c_char_p(), ctypes.c_int()
        self.re = lib.pcre_compile(pattern, 0, ctypes.byref(err), ctypes.byref(off), None)
        self.error = None if self.re else (err.value or b"").decode("latin-1")
        self.extra = None
        if self.re:
            serr = ctypes.c_char_p()
            self.extra = lib.pcre_study(self.re, 0, ctypes.byref(serr))
        self.ovector = (ctypes.c_int * 30)()

    def match(self, line: bytes):
        """True, False, or None when libpcre reports an error (a match limit)."""
        rc = self.lib.pcre_exec(self.re, self.extra, line, len(line), 0, 0, self.ovector, 30)
        if rc >= 0:
            return True
        return False if rc == -1 else None


def match_matrix(pcre, patterns, lines, oracle=None):
    """Which rules libpcre 8 matches on each line: (rows, unknown), rows[li] the indices of
    the rules matching lines[li] in order, unknown the (rule, line) index pairs libpcre
    reported an error for (a match limit). `pcre` are the rules compiled here (Pcre8, all
    compiled); with `oracle` (examples/pcre8_matrix, built by scripts/test.sh) the same calls
    are made there, natively: ctypes costs ~3.5 µs a call, most of a differential's time."""
    if oracle and not any(b"\n" in x for x in patterns + lines):
        with tempfile.TemporaryDirectory() as tmp:
            rp, lp = os.path.join(tmp, "rules"), os.path.join(tmp, "lines")
            with open(rp, "wb") as f:
                f.write(b"".join(x + b"\n" for x in patterns))
            with open(lp, "wb") as f:
                f.write(b"".join(x + b"\n" for x in lines))
            out = subprocess.run([oracle, rp, lp], capture_output=True, check=True).stdout
        got = out.decode("ascii").split("\n")[:-1]
        if len(got) != len(lines):
            raise RuntimeError(f"{oracle}: {len(got)} rows for {len(lines)} lines")
        rows, unknown = [], set()
        for li, text in enumerate(got):
            row = []
            for w in text.split():
                if w[0] == "?":
                    unknown.add((int(w[1:]), li))
                elif w[0] == "!":
                    raise RuntimeError(f"{oracle}: rule {int(w[1:])} did not compile there")
                else:
                    row.append(int(w))
            rows.append(row)
        return rows, unknown
    rows, unknown = [], set()
    for li, ln in enumerate(lines):
        row = []
        for ri, p in enumerate(pcre):
            v = p.match(ln)
            if v is None:
                unknown.add((ri, li))
            elif v:
                row.append(ri)
        rows.append(row)
    return rows, unknown


WORDS = ["error", "Error", "ERROR", "fail", "failed", "user", "root", "from", "port", "sshd",
         "kernel", "out of memory", "connection", "refused", "Connection", "timeout", "a", "ab",
         "abc", "x", "foo", "bar", "denied", "WARN", "INFO", "id", "ip"]
PUNCT = ["[", "]", ":", "=", "-", ".", ",", "(", ")", "/", "_", "\"", "'", "<", ">", "|", "{",
         "}", "+", "*", "?", "\\", "^", "$", " ", "  ", "\t"]
CLASSES = [r"\d", r"\w", r"\s", r"\S", r"\W", r"\D", ".", "[a-z]", "[^ ]", "[[:digit:]]",
           "[[:alpha:]_]", "[0-9a-f]", "[A-Z]", "[^]a]", "[]a]", "[a-]", r"[\d.]", r"[^\s:]",
           r"\x41", r"\t", r"\h", r"\H", r"\v", "[[:space:]]", "[[:upper:][:digit:]]",
           "[^[:alnum:]]", r"\xe9", r"[\x80-\xff]", r"\.", r"\-", r"\:", r"\/", r"\<", r"\>",
           r"\_", r"\e", r"[\w-]", r"[.-9]", r"\0", r"\cA", "[[:punct:]]", "[[:xdigit:]]",
           "[[:word:]]", r"\N", r"\R", r"\x{41}", r"\x{e9}", r"\101", r"\o{101}", r"\c[", r"[\b]",
           r"\p{L}", r"\P{N}", r"\pL", r"[\Q]\E]", r"[a-\d]", r"[\x00-\x1f]", r"x{ 2}", r"x{2 }",
           r"x{2,3", "{", "}", "x{1,2}{", r"\11", r"\011", r"\8", r"[^\W\d]", r"[\s\S]", r"[z-a]",
           r"\x", r"\xg", r"\ca", r"\C", r"[:alpha:]", r"[[:^digit:]]", r"[[=a=]]", r"[[.a.]]",
           r"\V", r"\Z", "[:[:xdigit:]]", r"[\d-z]"]
QUANT = ["*", "+", "?", "{2}", "{1,3}", "{2,}", "{0,1}", "*?", "+?", "??", "{1,2}?", "++", "*+",
         "?+", "{,3}", "{3,2}", "**", "{2}{3}", "*(?#c)?"]


class Gen:
    def __init__(self, seed):
        self.r = random.Random(seed)

    def lit(self):
        w = self.r.choice(WORDS)
        return w.upper() if self.r.random() < 0.2 else w

    @staticmethod
    def esc(s):
        return "".join("\\" + c if c in "[](){}.*+?^$|\\" else c for c in s)

    def atom(self, d):
        R = self.r
        x = R.random()
        if d > 3 or x < 0.35:
            if R.random() < 0.6:
                return self.esc(self.lit())
            return R.choice(CLASSES + [self.esc(R.choice(PUNCT))])
        if x < 0.45:
            self.opened += 1
            n = self.opened
            inner = self.alt(d + 1)
            self.closed.append(n)
            return "(" + inner + ")"
        if x < 0.55:
            return "(?:" + self.alt(d + 1) + ")"
        if x < 0.60:
            return "(?i)" if R.random() < 0.5 else "(?i:" + self.alt(d + 1) + ")"
        if x < 0.65:
            return "(?=" + self.alt(d + 1) + ")"
        if x < 0.70:
            return "(?!" + self.alt(d + 1) + ")"
        if x < 0.74:
            return "(?<=" + self.esc(self.lit()) + ")"
        if x < 0.77:
            return "(?<!" + self.esc(self.lit()) + ")"
        if x < 0.80:
            return "(?>" + self.alt(d + 1) + ")"
        if x < 0.83:
            return R.choice([r"\b", r"\B", "^", "$", r"\A", r"\z", r"\Z", r"\G"])
        if x < 0.86 and self.closed:
            n = R.choice(self.closed)
            return R.choice([f"\\{n}", f"\\g{{{n}}}", f"\\g{n}"])
        if x < 0.88:
            return r"\Q" + self.lit() + (r"\E" if R.random() < 0.8 else "")
        if x < 0.90:
            return R.choice(["(?s)", "(?m)", "(?x)", "(?U)", "(?-i)", "(?J)", "(?i-s)"])
        if x < 0.92:
            self.opened += 1
            n = self.opened
            inner = self.alt(d + 1)
            self.closed.append(n)
            return f"(?P<n{n}>" + inner + ")"
        if x < 0.94:
            return "(?|" + self.alt(d + 1) + ")"
        if x < 0.96:
            return "(?#" + self.lit() + ")"
        return self.esc(self.lit())

    def piece(self, d):
        a = self.atom(d)
        if self.r.random() < 0.3:
            a += self.r.choice(QUANT)
        return a

    def seq(self, d):
        return "".join(self.piece(d) for _ in range(self.r.randint(1, 4)))

    def alt(self, d):
        n = 1 if self.r.random() < 0.75 else self.r.randint(2, 3)
        return "|".join(self.seq(d) for _ in range(n))

    def rule(self):
        self.opened, self.closed = 0, []
        s = self.alt(0)
        if self.r.random() < 0.15:
            s = "^" + s
        if self.r.random() < 0.15:
            s = s + "$"
        return s

    def line(self):
        R = self.r
        parts = []
        for _ in range(R.randint(0, 8)):
            x = R.random()
            if x < 0.5:
                parts.append(self.lit())
            elif x < 0.75:
                parts.append(R.choice(PUNCT))
            elif x < 0.85:
                parts.append(str(R.randint(0, 99999)))
            elif x < 0.9:
                parts.append(".".join(str(R.randint(0, 255)) for _ in range(4)))
            elif x < 0.95:
                parts.append(R.choice(["\xe9", "\xff", "\x01", "\r", "AA", "__", "0x1f", "{,3}"]))
            else:
                parts.append(R.choice(WORDS).capitalize())
        return R.choice([" ", "", " ", ":"]).join(parts).encode("latin-1")


def usable(rule):
    # `@(` in an option value includes a file in uWSGI's and logalarm's ini syntax; `%` is
    # a magic variable; a value cannot start or end with blanks or start a comment.
    return not ("@" in rule or "%" in rule or rule != rule.strip() or rule[:1] in ";#")


def run_seed(lib, binary, oracle, seed, nrules, tmp):
    g = Gen(seed)
    rules = []
    while len(rules) < nrules:
        s = g.rule()
        if usable(s):
            rules.append(s)
    lines = [ln for ln in dict.fromkeys(g.line() for _ in range(400))
             if not ln.startswith(b"[uwsgi-alarm") and not ln.endswith(b"\r")]
    ini = os.path.join(tmp, "rules.ini")

    def write(idx):
        with open(ini, "wb") as f:
            f.write(b"[uwsgi]\nalarm-freq = 0\n")
            for i in idx:
                f.write(b"alarm = r%d log:R%d\n" % (i, i))
                f.write(b"log-alarm = r%d %s\n" % (i, rules[i].encode("latin-1")))

    problems = []
    pcre = [Pcre8(lib, s.encode("latin-1")) for s in rules]
    for i, s in enumerate(rules):
        write([i])
        p = subprocess.run([binary, "check", "--ini", ini], capture_output=True)
        accepted = p.returncode in (0, 2)
        if accepted != (pcre[i].error is None):
            why = pcre[i].error or p.stderr.decode("latin-1").strip().splitlines()[-1:]
            problems.append(f"seed {seed}: rule {s!r}: libpcre 8 "
                            f"{'refuses' if pcre[i].error else 'accepts'} it, logalarm "
                            f"{'accepts' if accepted else 'refuses'} it ({why})")
    idx = [i for i in range(len(rules)) if pcre[i].error is None and
           not any(f"rule {rules[i]!r}:" in p for p in problems)]
    write(idx)
    data = b"".join(ln + b"\n" for ln in lines)
    p = subprocess.run([binary, "--ini", ini, "--rules-cache", "off"], input=data,
                       capture_output=True)
    if p.returncode != 0:
        problems.append(f"seed {seed}: logalarm exited {p.returncode}: {p.stderr[-400:]!r}")
        return problems, 0
    got = set()
    for ln in (p.stdout + p.stderr).split(b"\n"):
        m = re.match(rb".* - ALARM: R(\d+) (.*)$", ln, re.S)
        if m:
            got.add((int(m.group(1)), m.group(2)))
    rows, pairs = match_matrix([pcre[i] for i in idx],
                               [rules[i].encode("latin-1") for i in idx], lines, oracle)
    want = {(idx[k], lines[li]) for li, row in enumerate(rows) for k in row}
    unknown = {(idx[k], lines[li]) for k, li in pairs}
    got -= unknown
    for i, ln in sorted(want - got)[:5]:
        problems.append(f"seed {seed}: rule {rules[i]!r} matches {ln!r} in libpcre 8, not in logalarm")
    for i, ln in sorted(got - want)[:5]:
        problems.append(f"seed {seed}: rule {rules[i]!r} matches {ln!r} in logalarm, not in libpcre 8")
    return problems, len(want)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--first", type=int, default=1)
    ap.add_argument("--rules", type=int, default=150)
    ap.add_argument("--oracle", help="examples/pcre8_matrix's binary: libpcre 8 called natively")
    a = ap.parse_args()
    lib = load_pcre8()
    problems, matches = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(a.first, a.first + a.seeds):
            p, n = run_seed(lib, a.bin, a.oracle, seed, a.rules, tmp)
            problems += p
            matches += n
    print(f"pcre8_diff: {a.seeds} seeds of {a.rules} random rules: {matches} (rule, line) matches "
          f"compared, {len(problems)} difference(s)")
    for p in problems[:40]:
        print("  " + p)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()

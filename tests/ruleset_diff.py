#!/usr/bin/env python3
"""Differential test of a real rule set against uWSGI's own regex library.

`tests/pcre8_diff.py` checks random rules; this checks rules written by others (Debian's
logcheck and fail2ban rules, as `scripts/debian-rules.py` writes them), where logalarm's
matcher takes its large-set paths: the literal search over thousands of literals, rules
grouped and stopped at the first that decides a line's alarms, PCRE confirmation of fail2ban's
look-around. Lines are the loghub samples of tests/data/corpus and, for every rule, lines made
from the rule itself (sampled from its parse, some of them mutated by a byte), so that every
rule has lines it matches and lines it nearly matches.

libpcre 8 (`libpcre.so.3`, uWSGI's) decides which rules match each line, as uWSGI runs them
(`pcre_compile` without options, `pcre_exec` on the line without its newline). Three
configurations of the same rules are run through logalarm (`alarm-freq = 0`, `log:` alarms):

* each rule its own alarm: every (rule, line) match must be an alarm, and nothing else;
* the rules spread at random over five alarms, one rule in five a `not-log-alarm`: each line
  must raise the alarms its matching positive rules name minus those its matching negative
  rules name (README, "not-log-alarm");
* every rule naming one alarm: each line that any rule matches must raise it (the rules that
  share an automaton are then alike, and the first one confirmed decides a line).

Usage: tests/ruleset_diff.py --bin BIN --rules RULES.txt [--seed N] [--per-rule K]
       [--corpus-lines N] [--ignore-case] [--oracle target/release/examples/pcre8_matrix]
(--oracle: libpcre 8 called by that small native program instead of through ctypes, about five
times less CPU; the same calls, the same verdicts.)
Exit status 1 and the first differences on any difference; 2 when libpcre.so.3 or the rules
file is missing.
"""
import argparse
import collections
import os
import random
import re
import subprocess
import sys
import tempfile
import warnings

from pcre8_diff import Pcre8, load_pcre8, match_matrix

try:
    import re._constants as sc
    import re._parser as sp
except ImportError:  # Python < 3.11
    import sre_constants as sc
    import sre_parse as sp

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "corpus", "loghub")
ALARM_LINE = re.compile(rb"^\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4} - ALARM: (\S+) (.*)$", re.S)
# POSIX classes, which Python's parser does not know, written as ranges for the sampler only.
POSIX = {"digit": "0-9", "alpha": "a-zA-Z", "alnum": "a-zA-Z0-9", "space": r" \t",
         "blank": r" \t", "upper": "A-Z", "lower": "a-z", "xdigit": "0-9a-fA-F",
         "punct": r"!\-.:;_/\[\]()", "print": " -~", "graph": "!-~", "word": r"\w",
         "cntrl": r"\x01"}
CONTEXT = [b"kernel:", b"sshd[123]:", b"error", b"localhost", b"CRON[99]:", b"(root)",
           b"postfix/smtpd[77]:", b"warning", b"from", b"192.168.1.1", b"port 22"]


class Sampler:
    """Byte strings drawn from a regex's parse tree (Python's `re` parser): what the rule
    would match, or nearly (classes and repeats are drawn at random, look-around ignored)."""

    def __init__(self, rnd):
        self.r = rnd

    def category(self, c):
        return {sc.CATEGORY_DIGIT: b"0123456789", sc.CATEGORY_SPACE: b" \t",
                sc.CATEGORY_WORD: b"abcXYZ_09", sc.CATEGORY_NOT_DIGIT: b"ab :-",
                sc.CATEGORY_NOT_SPACE: b"ab1:-", sc.CATEGORY_NOT_WORD: b" :-[]."}.get(c, b"x")

    def emit(self, tree, out, depth=0):
        r = self.r
        for op, av in tree:
            if op == sc.LITERAL:
                out.append(av & 0xFF)
            elif op == sc.NOT_LITERAL:
                out.append(r.choice([c for c in b"axz09 :" if c != av]))
            elif op == sc.ANY:
                out.append(r.choice(b"abc 1:"))
            elif op == sc.IN:
                neg = any(o == sc.NEGATE for o, _ in av)
                cands = []
                for o, a in av:
                    if o == sc.LITERAL:
                        cands.append(a & 0xFF)
                    elif o == sc.RANGE:
                        cands += [r.randint(a[0], a[1]) & 0xFF for _ in range(3)]
                    elif o == sc.CATEGORY:
                        cands += list(self.category(a))
                if neg or not cands:
                    pool = [c for c in b"abcxyz019 :-_./" if c not in cands] or [ord("q")]
                    out.append(r.choice(pool))
                else:
                    out.append(r.choice(cands))
            elif op in (sc.MAX_REPEAT, sc.MIN_REPEAT, getattr(sc, "POSSESSIVE_REPEAT", None)):
                lo, hi, sub = av
                hi = lo + 3 if hi == sc.MAXREPEAT else min(hi, lo + 3)
                for _ in range(r.randint(lo, hi)):
                    if depth < 30:
                        self.emit(sub, out, depth + 1)
            elif op == sc.SUBPATTERN:
                self.emit(av[-1], out, depth + 1)
            elif op == sc.BRANCH:
                self.emit(r.choice(av[1]), out, depth + 1)
            elif op == getattr(sc, "ATOMIC_GROUP", None):
                self.emit(av, out, depth + 1)
            elif op == sc.GROUPREF:
                out += b"x"

    def mutate(self, b):
        r = self.r
        b = bytearray(b)
        if b:
            i = r.randrange(len(b))
            k = r.randrange(4)
            if k == 0:
                del b[i]
            elif k == 1:
                b[i] = r.choice(b"aZ0 :.")
            elif k == 2:
                b.insert(i, r.choice(b"aZ0 :."))
            else:
                b = bytearray(b.upper() if r.random() < 0.5 else b.lower())
        return bytes(b)

    def lines(self, rule, k):
        text = rule.decode("latin-1")
        for name, ranges in POSIX.items():
            text = text.replace("[:%s:]" % name, ranges)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tree = sp.parse(text)
        except Exception:
            return []
        out = []
        for _ in range(k):
            buf = bytearray()
            try:
                self.emit(tree, buf)
            except Exception:
                continue
            s = bytes(buf)
            if self.r.random() < 0.15:
                s = self.mutate(s)
            pre = b"" if rule.startswith(b"^") or self.r.random() < 0.3 else \
                b"Dec  5 08:09:56 host " + self.r.choice(CONTEXT) + b" "
            suf = b"" if rule.endswith(b"$") or self.r.random() < 0.5 else \
                b" " + self.r.choice(CONTEXT)
            out.append((pre + s + suf).replace(b"\n", b" ").replace(b"\r", b" ")[:4000])
        return out


def usable(rule):
    # What an ini value cannot hold as such (see tests/pcre8_diff.py): `@(` and `%` are
    # expansions (a `%` is written `%%` below), blanks at either end are trimmed, `;`/`#`
    # start a comment.
    return rule == rule.strip() and rule[:1] not in (b";", b"#") and b"@(" not in rule \
        and b"$(" not in rule


def corpus_lines(n, rnd):
    names = sorted(os.listdir(CORPUS))
    if not names:
        raise SystemExit("ruleset_diff: no corpus in %s" % CORPUS)
    out = []
    for name in names:
        with open(os.path.join(CORPUS, name), "rb") as f:
            lines = [ln.rstrip(b"\r\n") for ln in f]
        out += rnd.sample(lines, min(len(lines), max(1, n // len(names))))
    return out


def run_logalarm(binary, ini, data):
    p = subprocess.run([binary, "--ini", ini, "--rules-cache", "off"], input=data,
                       capture_output=True)
    if p.returncode != 0:
        raise SystemExit("ruleset_diff: logalarm exited %d: %r" % (p.returncode, p.stderr[-600:]))
    got = collections.Counter()
    for ln in p.stdout.split(b"\n"):
        m = ALARM_LINE.match(ln)
        if m:
            got[(m.group(1).decode(), m.group(2))] += 1
    return got


def report(what, want, got, rules):
    missing, extra = want - got, got - want
    for (name, line), _ in sorted(missing.items())[:5]:
        print("  %s: %s should raise %s (libpcre 8)%s" % (what, line[:200], name, rules(name)))
    for (name, line), _ in sorted(extra.items())[:5]:
        print("  %s: %s raises %s, libpcre 8 says not%s" % (what, line[:200], name, rules(name)))
    return sum(missing.values()) + sum(extra.values())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--rules", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--per-rule", type=int, default=1)
    ap.add_argument("--corpus-lines", type=int, default=1200)
    ap.add_argument("--ignore-case", action="store_true", help="every rule behind (?i)")
    ap.add_argument("--oracle", help="examples/pcre8_matrix's binary: libpcre 8 called natively")
    a = ap.parse_args()
    if not os.path.exists(a.rules):
        print("ruleset_diff: no rules file %s" % a.rules, file=sys.stderr)
        return 2
    lib = load_pcre8()
    rnd = random.Random(a.seed)
    with open(a.rules, "rb") as f:
        rules = [ln.rstrip(b"\n") for ln in f if ln.strip()]
    rules = [r for r in rules if usable(r)]
    if a.ignore_case:
        rules = [b"(?i)" + r for r in rules]
    pcre = [Pcre8(lib, r) for r in rules]
    keep = [i for i, p in enumerate(pcre) if p.error is None]
    rules = [rules[i] for i in keep]
    pcre = [pcre[i] for i in keep]
    sampler = Sampler(rnd)
    lines = corpus_lines(a.corpus_lines, rnd)
    for r in rules:
        lines += sampler.lines(r, a.per_rule)
    lines = [ln for ln in dict.fromkeys(lines) if not ln.startswith(b"[uwsgi-alarm")]
    data = b"".join(ln + b"\n" for ln in lines)
    # Which rules libpcre 8 matches on each line; a match-limit error leaves the pair out.
    matches, unknown = match_matrix(pcre, rules, lines, a.oracle)
    problems = 0
    with tempfile.TemporaryDirectory() as tmp:
        # Each rule its own alarm.
        ini = os.path.join(tmp, "each.ini")
        with open(ini, "wb") as f:
            f.write(b"[uwsgi]\nalarm-freq = 0\n")
            for i, r in enumerate(rules):
                f.write(b"alarm = R%d log:R%d\nlog-alarm = R%d %s\n"
                        % (i, i, i, r.replace(b"%", b"%%")))
        want = collections.Counter()
        for li, row in enumerate(matches):
            for ri in row:
                want[("R%d" % ri, lines[li])] += 1
        got = run_logalarm(a.bin, ini, data)
        for ri, li in unknown:
            got.pop(("R%d" % ri, lines[li]), None)
        each = sum(want.values())
        problems += report("each rule its own alarm", want, got,
                           lambda n: " (rule %r)" % rules[int(n[1:])][:200])
        # Five alarms, negative rules among them.
        names = ["a", "b", "c", "d", "e"]
        spread = []
        for _ in rules:
            spread.append((rnd.random() < 0.2,
                           sorted({rnd.choice(names) for _ in range(rnd.randint(1, 3))})))
        ini = os.path.join(tmp, "five.ini")
        with open(ini, "wb") as f:
            f.write(b"[uwsgi]\nalarm-freq = 0\n")
            for n in names:
                f.write(b"alarm = %s log:%s\n" % (n.encode(), n.encode()))
            for r, (neg, al) in zip(rules, spread):
                f.write(b"%s = %s %s\n" % (b"not-log-alarm" if neg else b"log-alarm",
                                           ",".join(al).encode(), r.replace(b"%", b"%%")))
        want = collections.Counter()
        for li, row in enumerate(matches):
            if any((ri, li) in unknown for ri in range(len(rules))):
                continue
            pos, negs = set(), set()
            for ri in row:
                neg, al = spread[ri]
                (negs if neg else pos).update(al)
            for n in pos - negs:
                want[(n, lines[li])] += 1
        got = run_logalarm(a.bin, ini, data)
        unknown_lines = {lines[li] for _, li in unknown}
        got = collections.Counter({k: v for k, v in got.items() if k[1] not in unknown_lines})
        five = sum(want.values())
        problems += report("five alarms", want, got, lambda n: "")
        # One alarm (the commonest configuration): the rules that share an automaton (a
        # group, the rules without literals) are alike for the alarms, and the first one
        # confirmed decides a line.
        ini = os.path.join(tmp, "one.ini")
        with open(ini, "wb") as f:
            f.write(b"[uwsgi]\nalarm-freq = 0\nalarm = a log:a\n")
            for r in rules:
                f.write(b"log-alarm = a %s\n" % r.replace(b"%", b"%%"))
        want = collections.Counter()
        for li, row in enumerate(matches):
            if row and not any((ri, li) in unknown for ri in range(len(rules))):
                want[("a", lines[li])] += 1
        got = run_logalarm(a.bin, ini, data)
        got = collections.Counter({k: v for k, v in got.items() if k[1] not in unknown_lines})
        one = sum(want.values())
        problems += report("one alarm", want, got, lambda n: "")
    print("ruleset_diff: %d rules%s, %d lines: %d (rule, line) matches, %d alarms of five and "
          "%d of one compared, %d difference(s)"
          % (len(rules), " behind (?i)" if a.ignore_case else "", len(lines), each, five, one,
             problems))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

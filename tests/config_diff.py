#!/usr/bin/env python3
"""Differential test of logalarm's option stream against the real uWSGI.

uWSGI reads every option before it applies any: its config logic (`if-env`, `if-not-env`,
`if-opt`, `if-not-opt`, `if-exists`, `if-file`, `if-dir` and their `if-not-` forms, `for`,
`for-times`, `for-glob` up to `endif`/`endfor`), `set`, placeholders
(`set-placeholder`, `%(name)`: a key's first value anywhere, with arithmetic), and the
environment (`$(NAME)`). This script writes random ini files of those, each with probe lines,
and checks that logalarm resolves every probe as uWSGI does:

* uWSGI runs the file with each probe as `print = a VALUE` (uWSGI prints it when it applies the
  options; a socket it cannot bind then ends the run);
* logalarm runs `check` on the same file with each probe as `alarm-template = a VALUE`, and
  `check` lists the options in the order read, with their values.

Every third seed runs the same options as command-line arguments as well (keys that are no
option through `--set`/`-S`, logic blocks as `--if-env X ... --endif`, a boolean with its value),
since uWSGI reads both alike. The two sequences of values must be equal. The generator leaves out what README names as a
difference: a placeholder that refers to itself (uWSGI loops for ever) and a value that begins
with a placeholder put in by another (uWSGI's rescan starts at its second byte).

Usage: tests/config_diff.py --bin target/release/logalarm [--seeds N] [--first S]
Exit status 1 and the offending file on any difference; 2 when uwsgi is missing.
"""
import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile

KEYS = ["k0", "k1", "k2", "k3", "k4"]
PHS = ["p0", "p1"]
ENVS = ["PATH", "HOME", "LOGALARM_SURELY_UNSET"]


class Gen:
    def __init__(self, seed):
        self.r = random.Random(seed)

    def word(self):
        return self.r.choice(["x", "ab", "7", "12", "-", "q.r", "z_z", "0"])

    def ref(self, above, in_loop):
        """A placeholder to a key after `above` (never a cycle), or another expansion."""
        r = self.r
        later = [k for k in KEYS if above is None or KEYS.index(k) > above]
        choices = ["env", "nope"]
        if later:
            choices += ["key", "key", "sum", "concat"]
        if above is None:
            choices += ["ph"]
        if in_loop:
            choices += ["item", "item"]
        c = r.choice(choices)
        if c == "key":
            return "%%(%s)" % r.choice(later)
        if c == "sum":
            return "%%(%s %s %s)" % (r.choice(later), r.choice(["+", "-", "*", "/"]),
                                     r.choice(later + ["3", "0"]))
        if c == "concat":
            return "%%(%s %s)" % (r.choice(later), r.choice(later))
        if c == "ph":
            return "%%(%s)" % r.choice(PHS)
        if c == "item":
            return "%(_)"
        if c == "env":
            return "$(%s)" % r.choice(["HOME", "LOGALARM_SURELY_UNSET"])
        return "%(nope)"

    def value(self, above, in_loop):
        parts = [self.word()]  # never a placeholder first (see the docstring)
        for _ in range(self.r.randint(0, 3)):
            parts.append(self.ref(above, in_loop) if self.r.random() < 0.6 else self.word())
            if self.r.random() < 0.3:
                parts.append(" ")
        return "".join(parts)

    def statement(self, in_loop):
        r = self.r.random()
        if r < 0.45:
            i = self.r.randrange(len(KEYS))
            return ("%s = %s" % (KEYS[i], self.value(i, in_loop)),)
        if r < 0.55:
            # A placeholder's value refers to no placeholder (never a cycle).
            return ("set-ph = %s=%s" % (self.r.choice(PHS), self.word() + self.word()),)
        if r < 0.6:
            i = self.r.randrange(len(KEYS))
            return ("set = %s=%s" % (KEYS[i], self.value(i, in_loop)),)
        return ("PROBE", "a " + self.value(None, in_loop))

    def block(self):
        r = self.r
        kind = r.choice(["if-env", "if-not-env", "if-opt", "if-not-opt", "for", "for-times",
                         "for-glob", "if-exists", "if-not-exists", "if-file", "if-not-file",
                         "if-dir", "if-not-dir"])
        if kind in ("if-env", "if-not-env"):
            arg = r.choice(ENVS)
            if arg == "HOME" and r.random() < 0.5:
                arg += "=" + r.choice([os.environ.get("HOME", "/root"), "/elsewhere"])
        elif kind in ("if-opt", "if-not-opt"):
            arg = r.choice(KEYS)
            if r.random() < 0.5:
                arg += "=" + self.word()
        elif kind == "for":
            arg = " ".join(self.word() for _ in range(r.randint(1, 3)))
        elif kind == "for-glob":
            arg = r.choice(["/etc/host*", "/nonexistent/*", "/etc/passw?", "/e*"])
        elif kind.startswith("if-"):
            arg = r.choice(["/etc", "/etc/hostname", "/nonexistent", "/etc/"])
        else:
            arg = str(r.randint(0, 3))
        loop = kind.startswith("for")
        body = [self.statement(loop) for _ in range(r.randint(1, 3))]
        end = "endfor =" if loop else r.choice(["endif =", "end-if =", "endif"])
        return [("%s = %s" % (kind, arg),)] + body + [(end,)]

    def config(self):
        out = []
        for _ in range(self.r.randint(4, 14)):
            if self.r.random() < 0.3:
                out += self.block()
            else:
                out.append(self.statement(False))
        if not any(s[0] == "PROBE" for s in out):
            out.append(("PROBE", "a " + self.value(None, False)))
        return out


def render(stmts, probe, head):
    lines = ["[uwsgi]"] + head
    for s in stmts:
        lines.append(probe + " = " + s[1] if s[0] == "PROBE" else s[0])
    return "\n".join(lines) + "\n"


def render_cli(stmts, probe, r):
    """The same statements as command-line arguments: a key that is no option goes through
    `--set` (or its short form `-S`), as on uWSGI's command line; a boolean with its value
    (uWSGI gives `alarm-cheap` a required one) and `--name=value` now and then."""
    args = []
    if r.random() < 0.5:
        args += ["--alarm-cheap", r.choice(["1", "0", "true", "off"])]
    for st in stmts:
        if st[0] == "PROBE":
            args += ["--" + probe, st[1]]
            continue
        key, _, value = st[0].partition("=")
        key, value = key.strip(), value.strip()
        if key in KEYS:
            args += [r.choice(["--set", "-S"]), "%s=%s" % (key, value)]
        elif not value:
            args.append("--" + key)
        elif r.random() < 0.2:
            args.append("--%s=%s" % (key, value))
        else:
            args += ["--" + key, value]
    return args


def uwsgi_values(uwsgi, path, tmp, cli=None):
    argv = [uwsgi] + (cli + ["--socket", "/nonexistent/logalarm/x.sock"] if cli else ["--ini", path])
    p = subprocess.run(argv, capture_output=True, timeout=20, cwd=tmp)
    out = []
    for ln in p.stdout.decode("latin-1").splitlines() + p.stderr.decode("latin-1").splitlines():
        if ln.startswith("a "):
            # `check` pads its columns: trailing white space is compared away on both sides.
            out.append(ln.rstrip())
    return out


def logalarm_values(binary, path, cli=None):
    argv = [binary, "check", "--rules-cache", "off"]
    argv += ["--alarm", "a log:"] + cli if cli else ["--ini", path]
    p = subprocess.run(argv, capture_output=True, timeout=20)
    if p.returncode not in (0, 2):
        return None, p.stdout.decode("latin-1") + p.stderr.decode("latin-1")
    out = []
    for ln in p.stdout.decode("latin-1").splitlines():
        if ln.startswith("alarm-template = "):
            v = ln[len("alarm-template = "):]
            cut = v.rfind("  # ")
            out.append(v[:cut].rstrip() if cut >= 0 else v)
    return out, ""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--seeds", type=int, default=100)
    ap.add_argument("--first", type=int, default=0)
    a = ap.parse_args()
    uwsgi = shutil.which("uwsgi")
    if not uwsgi:
        print("config_diff: uwsgi is not installed", file=sys.stderr)
        return 2
    os.environ.pop("LOGALARM_SURELY_UNSET", None)
    compared = 0
    cli_seeds = 0
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(a.first, a.first + a.seeds):
            stmts = Gen(seed).config()
            u_ini = os.path.join(tmp, "u.ini")
            l_ini = os.path.join(tmp, "l.ini")
            with open(u_ini, "w") as f:
                f.write(render(stmts, "print", []) + "socket = /nonexistent/logalarm/x.sock\n")
            with open(l_ini, "w") as f:
                f.write(render(stmts, "alarm-template", ["alarm = a log:"]))
            want = uwsgi_values(uwsgi, u_ini, tmp)
            got, err = logalarm_values(a.bin, l_ini)
            if got != want:
                print("config_diff: seed %d differs\n--- file ---\n%s--- uWSGI ---\n%s\n"
                      "--- logalarm ---\n%s\n%s" % (seed, open(l_ini).read(), "\n".join(want),
                                                   "\n".join(got or []), err))
                return 1
            compared += len(want)
            # Every third seed: the same options on the command line.
            if seed % 3 == 0:
                u_cli = render_cli(stmts, "print", random.Random(seed))
                l_cli = render_cli(stmts, "alarm-template", random.Random(seed))
                want = uwsgi_values(uwsgi, None, tmp, u_cli)
                got, err = logalarm_values(a.bin, None, l_cli)
                if got != want:
                    print("config_diff: seed %d differs on the command line\n--- args ---\n%s\n"
                          "--- uWSGI ---\n%s\n--- logalarm ---\n%s\n%s"
                          % (seed, u_cli, "\n".join(want), "\n".join(got or []), err))
                    return 1
                compared += len(want)
                cli_seeds += 1
    print("config_diff: %d seeds (%d also on the command line), %d resolved values compared, "
          "0 differences" % (a.seeds, cli_seeds, compared))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Logstash's grok patterns, expanded, as logalarm benchmark and test rules.

    scripts/grok-rules.py OUTDIR

Downloads (pip download, nothing installed) pygrok 1.0.0 from PyPI (MIT licence), whose
`pygrok/patterns/*` are Logstash's grok pattern files (Apache-2.0): `NAME regex` lines whose
regexes name other patterns as `%{NAME}` or `%{NAME:field}`. A user moving alerts off
Logstash writes rules like these: PCRE with look-behind (`(?<![0-9])`), atomic groups
(`(?>\\d\\d){1,2}`), long alternations (IPv6, month names) and patterns that match almost any
line (`%{WORD}`, `%{GREEDYDATA}`).

Writes, one regex per line (the format of benches/rules/):
  OUTDIR/grok.txt   every pattern with its references expanded (each as a non-capturing
                    group: the named ones would repeat a name, which PCRE refuses), uWSGI's
                    `@(` `$(` `%(` written `[@](` etc.; patterns that libpcre 8 refuses (a
                    quantifier on a quantifier, a name defined twice; Python's `re` decides
                    where libpcre.so.3 is missing) are left out and counted in SOURCES
  OUTDIR/SOURCES    the package, its licence and the counts
The rules are downloaded at benchmark or test time, never stored in this repository.
"""
import ctypes
import glob
import os
import re
import subprocess
import sys
import tarfile
import tempfile

PACKAGE = "pygrok==1.0.0"
REF = re.compile(r"%\{(\w+)(?::[\w\[\]]+)?(?::\w+)?\}")


def download(into):
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
           "-d", into, PACKAGE]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return glob.glob(os.path.join(into, "pygrok-*.tar.gz"))[0]


def patterns(sdist):
    pats = {}
    with tarfile.open(sdist) as t:
        members = sorted((m for m in t.getmembers()
                          if m.isfile() and "/pygrok/patterns/" in m.name), key=lambda m: m.name)
        for m in members:
            for line in t.extractfile(m).read().decode("utf-8").splitlines():
                if not line.strip() or line.startswith("#"):
                    continue
                name, _, rx = line.partition(" ")
                pats[name] = rx.strip()
    return pats


def expand(pats, rx, depth=0):
    if depth > 40:
        raise ValueError("references nest too deep")
    return REF.sub(lambda m: "(?:" + expand(pats, pats[m.group(1)], depth + 1) + ")", rx)


def accepter():
    """Whether a rule compiles: by libpcre 8 (uWSGI's, `pcre_compile` without options) when
    it is installed, else by Python's `re` (which refuses a few rules PCRE takes: `\\h`)."""
    try:
        lib = ctypes.CDLL("libpcre.so.3")
        lib.pcre_compile.restype = ctypes.c_void_p
        lib.pcre_compile.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_char_p),
                                     ctypes.POINTER(ctypes.c_int), ctypes.c_void_p]
    except OSError:
        lib = None

    def accepts(rx):
        if lib is not None:
            err, off = ctypes.c_char_p(), ctypes.c_int()
            return bool(lib.pcre_compile(rx.encode(), 0, ctypes.byref(err), ctypes.byref(off),
                                         None))
        try:
            # Python spells PCRE's named group (?<name>...) as (?P<name>...).
            re.compile(re.sub(r"\(\?<(?=[A-Za-z_])", "(?P<", rx))
            return True
        except (re.error, RecursionError):
            return False
    return accepts


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    with tempfile.TemporaryDirectory() as d:
        sdist = download(d)
        pats = patterns(sdist)
        name = os.path.basename(sdist)
    accepts = accepter()
    rules, refused = [], []
    for n, rx in pats.items():
        try:
            e = expand(pats, rx)
        except (KeyError, ValueError):
            refused.append(n)
            continue
        if not accepts(e):
            refused.append(n)
            continue
        rules.append(re.sub(r"([@$%])\(", r"[\1](", e))
    with open(os.path.join(out, "grok.txt"), "w", encoding="utf-8") as f:
        f.writelines(r + "\n" for r in rules)
    with open(os.path.join(out, "SOURCES"), "w", encoding="utf-8") as f:
        f.write("%s (PyPI, MIT; its patterns are Logstash's grok patterns, Apache-2.0): "
                "%d patterns, %d rules, %d left out (%s)\n"
                % (name, len(pats), len(rules), len(refused), " ".join(refused)))
    print("grok-rules: %d rules in %s" % (len(rules), os.path.join(out, "grok.txt")))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Rule sets written by others, from Debian's packages, as logalarm benchmark rules.

    scripts/debian-rules.py OUTDIR

Downloads (apt-get download, nothing installed, no service started) and unpacks:
  - logcheck-database: /etc/logcheck/*.d*/*, POSIX extended regexes matched by `egrep` (GPL-2+);
  - fail2ban: /etc/fail2ban/filter.d/*.conf, Python regexes with fail2ban's tags and includes
    (GPL-2+), expanded by fail2ban's own reader (its Python package from the same .deb).
  - sagan-rules: /etc/sagan-rules/*.rules, Sagan's (Snort-like) log rules (BSD-3-clause): a
    rule's `pcre:` (its `/i` as `(?i)`), or else its positive `content:` strings in the order
    written, joined by `.*` (`nocase` as `(?i:…)`, `|xx xx|` as the bytes); negated contents,
    offsets and Sagan's other conditions are left out.
  - logwatch: /usr/share/logwatch/scripts/services/*, the Perl regexes its service scripts match
    lines against (`=~ /…/`; X11 licence), written for the messages of a hundred daemons: short
    literals, lazy quantifiers, back-references (see `logwatch` below for what is left out).
  - grc and multitail: the regexes of two log colourisers, written to pick out the parts of
    log and command lines (`/usr/share/grc/conf.*`'s `regexp=`, Python regexes, GPL-2+;
    `/etc/multitail.conf`'s `cs_re…:colour:regex`, POSIX extended regexes, GPL-2+): short,
    mostly without literals, and matching often.
Writes, one regex per line (the format of benches/rules/):
  OUTDIR/logcheck.txt   every logcheck rule, ERE turned into its PCRE meaning (below)
  OUTDIR/fail2ban.txt   every failregex with its filter's prefregex around it, unanchored
  OUTDIR/debian.txt     both (the "2,000 rules written by others" set)
  OUTDIR/sagan.txt      every sagan rule with a pcre or a content (a second large set, written
                        for other logs: firewalls, Windows events, web servers)
  OUTDIR/colour.txt     every grc and multitail regex (a set of rules without literals)
  OUTDIR/logwatch.txt   logwatch's regexes (a third large set: ~4,000 rules, many of them short)
  OUTDIR/SOURCES        package versions and counts
The rules are the packages' own text, downloaded at benchmark time, never stored in this
repository.

ERE to PCRE: GNU egrep takes `\\<` `\\>` as word edges (PCRE `\\b`), and a backslash inside a
bracket expression is a literal backslash (`[\\.]` is backslash or dot): written `\\\\` for PCRE.
fail2ban matches its regexes after cutting the date off the line (`datepattern`), so a rule's
leading `^` is dropped: the rules then find the same text in a raw syslog line. Rules fail2ban
itself cannot expand (a tag it needs a jail's value for) and rules Python's `re` does not compile
are left out and counted in SOURCES. `@(`, `$(` and `%(` (uWSGI's expansions in an option's value)
are written `[@](` etc.
"""
import glob
import os
import re
import subprocess
import sys
import tempfile
import warnings


def unpack(pkg, into):
    with tempfile.TemporaryDirectory() as d:
        subprocess.run(["apt-get", "download", "-qq", pkg], cwd=d, check=True,
                       stdout=subprocess.DEVNULL)
        deb = glob.glob(os.path.join(d, pkg + "_*.deb"))[0]
        subprocess.run(["dpkg-deb", "-x", deb, into], check=True)
        return os.path.basename(deb)


def ere_to_pcre(rx):
    out, i, n = [], 0, len(rx)
    while i < n:
        c = rx[i]
        if c == "\\" and i + 1 < n:
            nxt = rx[i + 1]
            out.append("\\b" if nxt in "<>" else rx[i:i + 2])
            i += 2
        elif c == "[":
            # A bracket expression: `]` first (after an optional `^`) is a member, `[:x:]`
            # classes are kept, a backslash is a member.
            j = i + 1
            if j < n and rx[j] == "^":
                j += 1
            if j < n and rx[j] == "]":
                j += 1
            body = []
            k = i + 1
            while k < j:
                body.append("\\]" if rx[k] == "]" else rx[k])
                k += 1
            while k < n and rx[k] != "]":
                if rx.startswith("[:", k):
                    end = rx.find(":]", k + 2)
                    if end < 0:
                        break
                    body.append(rx[k:end + 2])
                    k = end + 2
                    continue
                body.append("\\\\" if rx[k] == "\\" else ("\\[" if rx[k] == "[" else rx[k]))
                k += 1
            if k >= n:  # no closing bracket: leave the rest as it was
                out.append(rx[i:])
                break
            out.append("[" + "".join(body) + "]")
            i = k + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def logcheck(root):
    rules = []
    for f in sorted(glob.glob(os.path.join(root, "etc/logcheck/*/*"))):
        with open(f, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                line = line.rstrip("\n")
                if line.strip() and not line.lstrip().startswith("#"):
                    rules.append(ere_to_pcre(line))
    return rules


def fail2ban(root):
    sys.path.insert(0, os.path.join(root, "usr/lib/python3/dist-packages"))
    from fail2ban.client.filterreader import FilterReader
    from fail2ban.server.failregex import Regex

    base = os.path.join(root, "etc/fail2ban")
    rules, skipped = [], 0
    for conf in sorted(glob.glob(os.path.join(base, "filter.d/*.conf"))):
        name = os.path.basename(conf)[:-5]
        try:
            r = FilterReader(name, name, {}, share_config={}, basedir=base)
            if not r.read():
                continue
            r.getOptions({})
            cmds = r.convert()
        except Exception:
            skipped += 1
            continue
        pref = None
        fails = []
        for c in cmds:
            if c[0] == "set" and c[2] == "prefregex":
                pref = c[3]
            if c[0] == "multi-set" and c[2] == "addfailregex":
                fails.extend(c[3])
            if c[0] == "set" and c[2] == "addfailregex":
                fails.append(c[3])
        for fr in fails:
            rx = fr
            if pref and "<F-CONTENT>" in pref:
                head, tail = pref.split("<F-CONTENT>", 1)
                tail = tail.split("</F-CONTENT>", 1)[1]
                rx = head + "(?:" + fr.lstrip("^") + ")" + tail.lstrip("$")
            try:
                final = Regex(rx).getRegex()
                final = re.sub(r"<F-[A-Z_]+>|</F-[A-Z_]+>", "", final)
                re.compile(final)
            except Exception:
                skipped += 1
                continue
            rules.append(final[1:] if final.startswith("^") else final)
    return rules, skipped


def sagan(root):
    def unhex(text):
        # `|28 29|`: the bytes written in hex between bars.
        parts = text.split("|")
        return "".join(bytes(int(h, 16) for h in p.split()).decode("latin-1") if i % 2 else p
                       for i, p in enumerate(parts))

    def escape(text):
        return "".join("\\" + c if c in "\\.^$|?*+()[]{}" else
                       (c if 32 <= ord(c) < 127 else "\\x%02x" % ord(c)) for c in text)

    content = re.compile(r'content:\s*(!?)\s*"((?:[^"\\]|\\.)*)"\s*;((?:\s*(?:nocase|offset[^;]*|'
                         r'depth[^;]*|distance[^;]*|within[^;]*)\s*;)*)')
    rules, skipped = [], 0
    for f in sorted(glob.glob(os.path.join(root, "etc/sagan-rules/*.rules"))):
        with open(f, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                line = line.strip()
                if not re.match(r"(alert|drop|pass)\b", line):
                    continue
                body = line[line.find("(") + 1:]
                pcre = re.search(r'pcre:\s*"/(.*?)/([a-zA-Z]*)"\s*;', body)
                parts = []
                for m in content.finditer(body):
                    if m.group(1):
                        continue
                    text = m.group(2).replace('\\"', '"').replace("\\;", ";").replace("\\\\", "\\")
                    c = escape(unhex(text))
                    parts.append("(?i:" + c + ")" if "nocase" in m.group(3) else c)
                if pcre:
                    rx = ("(?i)" if "i" in pcre.group(2) else "") + pcre.group(1)
                elif parts:
                    rx = ".*".join(parts)
                else:
                    skipped += 1
                    continue
                rules.append(rx)
    rules, bad = python_compiles(rules)
    return rules, skipped + bad


def python_compiles(rules):
    """The rules Python's `re` compiles (the samplers of tests/ruleset_diff.py need it), and
    how many it does not."""
    kept = []
    for rx in rules:
        try:
            re.compile(rx)
        except Exception:
            continue
        kept.append(rx)
    return kept, len(rules) - len(kept)


def perl_regexes(text):
    """Each regex literal matched against in Perl source `text` (`=~ /…/flags`, `!~`, `m` with
    any delimiter), as (body, flags); bodies that span lines are left out."""
    closing = {"{": "}", "(": ")", "[": "]", "<": ">"}
    for m in re.finditer(r"[=!]~\s*(?:m\s*([^\w\s])|(/))", text):
        opening = m.group(1) or m.group(2)
        close = closing.get(opening, opening)
        i, depth, body = m.end(), 0, []
        while i < len(text) and text[i] != "\n":
            c = text[i]
            if c == "\\":
                body.append(text[i:i + 2])
                i += 2
                continue
            if c == close and depth == 0:
                break
            if close != opening:
                depth += (c == opening) - (c == close)
            body.append(c)
            i += 1
        else:
            continue
        yield "".join(body), re.match(r"[a-z]*", text[i + 1:]).group(0)


def interpolates(body):
    """Whether Perl would put a variable's value into the regex (`$name`, `${…}`, `@name`): the
    rule is then not the text written."""
    i = 0
    while i < len(body):
        if body[i] == "\\":
            i += 2
            continue
        if body[i] in "$@" and re.match(r"[A-Za-z_{:]", body[i + 1:i + 2]):
            return True
        i += 1
    return False


def loghub_sample():
    """One line in 16 of the loghub samples in tests/data/corpus (1,500 lines of 16 systems)."""
    here = os.path.dirname(os.path.abspath(__file__))
    lines = []
    for f in sorted(glob.glob(os.path.join(here, "..", "tests", "data", "corpus", "loghub", "*"))):
        with open(f, encoding="utf-8", errors="replace") as fh:
            lines += fh.read().splitlines()[::16]
    if not lines:
        sys.exit("debian-rules.py: tests/data/corpus/loghub is missing")
    return lines


def logwatch(root):
    """Logwatch's service scripts (Perl, /usr/share/logwatch/scripts/services/*): every regex
    a line is matched against, without those that interpolate a variable, match an empty line
    or are a field parser (`\\w+`, `(\\S+)`, `(\\d+)\\s.*`: logwatch runs them on lines
    already picked out; one that matches 2 % or more of a sample of loghub's lines would raise
    an alarm on most lines); `i`, `s` and `x` flags become `(?i)`, `(?s)`, `(?x)`. Logwatch
    matches a syslog line's message (its date, host and program cut off), so a leading `^` is
    dropped, as for fail2ban's rules. Distinct rules, in the order first met."""
    sample = loghub_sample()
    rules, seen, skipped = [], set(), 0
    for f in sorted(glob.glob(os.path.join(root, "usr/share/logwatch/scripts/services/*"))):
        with open(f, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
        for body, flags in perl_regexes(text):
            if not body or interpolates(body):
                skipped += 1
                continue
            rx = "".join("(?" + c + ")" for c in "isx" if c in flags) + body.removeprefix("^")
            if rx in seen:
                continue
            seen.add(rx)
            try:
                compiled = re.compile(rx)
            except Exception:
                rules.append(rx)  # counted by python_compiles
                continue
            most = len(sample) // 50
            if compiled.search("") or sum(1 for l in sample if compiled.search(l)) > most:
                skipped += 1
                continue
            rules.append(rx)
    rules, bad = python_compiles(rules)
    return rules, skipped + bad


def colour(root):
    rules = set()
    for f in sorted(glob.glob(os.path.join(root, "usr/share/grc/conf.*"))):
        with open(f, encoding="utf-8", errors="replace") as fh:
            rules.update(l[len("regexp="):].rstrip("\n") for l in fh if l.startswith("regexp="))
    with open(os.path.join(root, "etc/multitail.conf"), encoding="utf-8", errors="replace") as fh:
        for line in fh:
            m = re.match(r"(?:cs_re|mcsre)\w*:[^:]*:(.*)$", line.rstrip("\n"))
            if m:
                rules.add(ere_to_pcre(m.group(1)))

    def ends(rx):
        # Blanks at the end as `\x20` / `\x09` (an escaped one without its backslash): an ini
        # value loses them, and `\` would be left at the end.
        tail = ""
        while rx and rx[-1] in " \t":
            c = rx[-1]
            rx = rx[:-1]
            slashes = len(rx) - len(rx.rstrip("\\"))
            if slashes % 2 == 1:
                rx = rx[:-1]
            tail = ("\\x20" if c == " " else "\\x09") + tail
        return rx + tail

    return python_compiles(sorted(ends(r) for r in rules if r.strip()))


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    # Python's re warns of `[[` ("possible nested set"), which POSIX classes and these rules
    # write: the rules mean what PCRE reads, and the warnings would bury the summary.
    warnings.simplefilter("ignore", FutureWarning)
    os.makedirs(out, exist_ok=True)
    with tempfile.TemporaryDirectory() as root:
        lc_deb = unpack("logcheck-database", root)
        f2b_deb = unpack("fail2ban", root)
        lc = logcheck(root)
        f2b, skipped = fail2ban(root)
    with tempfile.TemporaryDirectory() as root:
        sg_deb = unpack("sagan-rules", root)
        sg, sg_skipped = sagan(root)
    with tempfile.TemporaryDirectory() as root:
        lw_deb = unpack("logwatch", root)
        lw, lw_skipped = logwatch(root)
    with tempfile.TemporaryDirectory() as root:
        grc_deb = unpack("grc", root)
        mt_deb = unpack("multitail", root)
        co, co_skipped = colour(root)
    # `@(`, `$(` and `%(` start uWSGI's file, environment and placeholder expansions in an
    # option's value: written `[@](` and so on, the same regex.
    lc, f2b, sg, co, lw = ([re.sub(r"([@$%])\(", r"[\1](", r) for r in rs]
                           for rs in (lc, f2b, sg, co, lw))
    sets = (("logcheck", lc), ("fail2ban", f2b), ("debian", lc + f2b), ("sagan", sg),
            ("colour", co), ("logwatch", lw))
    for name, rules in sets:
        with open(os.path.join(out, name + ".txt"), "w") as fh:
            fh.writelines(r + "\n" for r in rules)
    with open(os.path.join(out, "SOURCES"), "w") as fh:
        fh.write(f"{lc_deb}: {len(lc)} rules (logcheck.txt)\n")
        fh.write(f"{f2b_deb}: {len(f2b)} rules (fail2ban.txt), {skipped} left out\n")
        fh.write(f"debian.txt: {len(lc) + len(f2b)} rules\n")
        fh.write(f"{sg_deb}: {len(sg)} rules (sagan.txt), {sg_skipped} without a pcre or "
                 "content or not compiled by Python's re\n")
        fh.write(f"{grc_deb}, {mt_deb}: {len(co)} rules (colour.txt), {co_skipped} not "
                 "compiled by Python's re\n")
        fh.write(f"{lw_deb}: {len(lw)} rules (logwatch.txt), {lw_skipped} left out (a "
                 "variable's value, a field parser, or not compiled by Python's re)\n")
    print(open(os.path.join(out, "SOURCES")).read(), end="")


if __name__ == "__main__":
    main()

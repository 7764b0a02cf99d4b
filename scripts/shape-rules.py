#!/usr/bin/env python3
"""Rule sets of one shape each, made from a corpus's own words: the shapes a rule set written
by others may hold that the real sets (scripts/debian-rules.py) have few of, to find where
logalarm falls behind Hyperscan (PERF.md "fifty-third run").

    scripts/shape-rules.py CORPUS OUTDIR     # writes OUTDIR/<shape>.txt, one rule a line

The words are taken from the corpus's first 8 MB by frequency, so the rules name what the log
really holds (the most common words on purpose: a rule set's literals are often common words);
the random choices are seeded: the same corpus gives the same rules.

Shapes:
  ciend      200 `(?i)WORD\\s+\\S+$` (a common word before the line's last token)
  shared     300 `INFO .*WORD`: every rule requires a literal most lines hold, and a rarer one
  cishared   300 `(?i)info:? .*WORD`, the same ignoring case
  literalfree 15 rules without any literal (addresses, UUIDs, hex, e-mail, paths, counts)
  dot3       200 `W1.*W2.*W3`
  alt3       200 `(W1|W2|W3) .*\\d+ W4`
  numeric    200 `\\bNNN\\b.*WORD`
  short3     150 `\\bxyz\\b \\d+` over the most common three-letter words
  ciphrase   500 `(?i)W1 W2`
"""
import os
import random
import re
import sys
from collections import Counter


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: shape-rules.py CORPUS OUTDIR")
    corpus, out = sys.argv[1], sys.argv[2]
    with open(corpus, "rb") as f:
        data = f.read(8_000_000)
    found = re.findall(rb"[A-Za-z]{4,12}", data)
    words = Counter(found)
    common = [w.decode() for w, _ in words.most_common(3000)]
    lower = Counter(w.lower() for w in found)
    common_lower = [w.decode() for w, _ in lower.most_common(2000)]
    three = [w.decode() for w, _ in Counter(re.findall(rb"\b[a-z]{3}\b", data)).most_common(150)]
    if len(common) < 700 or len(common_lower) < 300 or len(three) < 50:
        sys.exit(f"{corpus}: too few distinct words for the shapes (a log corpus of a few MB is needed)")
    n = len(common)
    rnd = random.Random(53)
    pick = lambda lo, hi: common[rnd.randrange(lo, min(hi, n))]
    shapes = {
        "ciend": [f"(?i){re.escape(w)}\\s+\\S+$" for w in common_lower[100:300]],
        "shared": [f"INFO .*{pick(200, n)}" for _ in range(300)],
        "cishared": [f"(?i)info:? .*{pick(200, n)}" for _ in range(300)],
        "literalfree": [
            r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}:\d{2,5}\b",
            r"\b[A-Z]{2,}_[A-Z_]{3,}\b",
            r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b",
            r"\b[A-Z][a-z]+[A-Z][a-z]+Exception\b",
            r"\d{2}:\d{2}:\d{2}\.\d{6}",
            r"\b0x[0-9a-f]{12,16}\b",
            r"[a-z]+@[a-z]+\.[a-z]{2,3}",
            r"\b[A-Z]{3,5}-\d{3,6}\b",
            r"\w+=\d{5,}",
            r"\(\d+ ms\)",
            r"\[\w+:\d+\]",
            r"\b\d{3} \d{3,}\b",
            r"\b[a-f0-9]{32}\b",
            r"/[a-z]+/[a-z]+/[a-z]+\.[a-z]{2,4}",
            r"\b\d+\.\d+\.\d+-\d+\b",
        ],
        "dot3": [f"{pick(0, 100)}.*{pick(100, 600)}.*{pick(600, n)}" for _ in range(200)],
        "alt3": [f"({pick(0, 50)}|{pick(0, 50)}|{pick(0, 50)}) .*\\d+ {pick(50, n)}" for _ in range(200)],
        "numeric": [f"\\b{rnd.randrange(100, 999)}\\b.*{pick(0, n)}" for _ in range(200)],
        "short3": [f"\\b{w}\\b \\d+" for w in three],
        "ciphrase": [f"(?i){pick(0, 400)} {pick(0, 400)}" for _ in range(500)],
    }
    os.makedirs(out, exist_ok=True)
    for name, rules in shapes.items():
        with open(os.path.join(out, f"{name}.txt"), "w") as f:
            f.write("\n".join(rules) + "\n")
    print(f"shape-rules: {len(shapes)} sets in {out}", file=sys.stderr)


if __name__ == "__main__":
    main()

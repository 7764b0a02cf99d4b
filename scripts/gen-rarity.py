#!/usr/bin/env python3
"""Generate src/data/rarity.bin: how rare bytes and byte pairs are in log text, case kept.
128*128 bytes for the pairs (a, b) below 128 (row a, column b), then 128 bytes for the single
bytes: round(-log2 P) over the log samples given (default tests/data/corpus/loghub), capped at
40 (pairs) and 21 (bytes). litscan.rs uses it to place each literal's filter windows where they
are least likely to occur in ordinary log text (summing over case variants for literals compared
ignoring case).

usage: scripts/gen-rarity.py [DIR] > src/data/rarity.bin"""
import math, os, sys

root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), '../tests/data/corpus/loghub')
pairs = [0] * (128 * 128)
singles = [0] * 128
total = 0
for d, _, files in os.walk(root):
    for f in sorted(files):
        data = open(os.path.join(d, f), 'rb').read()
        for a, b in zip(data, data[1:]):
            if a < 128 and b < 128:
                pairs[a * 128 + b] += 1
                total += 1
        for a in data:
            if a < 128:
                singles[a] += 1
out = bytearray()
for c in pairs:
    out.append(min(40, round(-math.log2((c + 0.5) / total))))
n = sum(singles)
for c in singles:
    out.append(min(21, round(-math.log2((c + 0.5) / n))))
sys.stdout.buffer.write(bytes(out))

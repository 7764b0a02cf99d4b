#!/usr/bin/env python3
"""Generate src/data/bigram_rarity.bin: for each pair of bytes (a, b) below 128, ASCII case
folded, round(-log2 P(ab)) over the log samples given (default ../shared/corpus/loghub), capped
at 40, as 128*128 bytes (row a, column b). litscan.rs uses it to place each literal's filter
windows where they are least likely to occur in ordinary log text.

usage: scripts/gen-rarity.py [DIR] > src/data/bigram_rarity.bin"""
import math, os, sys

root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), '../../shared/corpus/loghub')
counts = [0] * (128 * 128)
total = 0
for d, _, files in os.walk(root):
    for f in sorted(files):
        data = open(os.path.join(d, f), 'rb').read().lower()
        for a, b in zip(data, data[1:]):
            if a < 128 and b < 128:
                counts[a * 128 + b] += 1
                total += 1
out = bytearray()
for c in counts:
    out.append(min(40, round(-math.log2((c + 0.5) / total))))
sys.stdout.buffer.write(bytes(out))

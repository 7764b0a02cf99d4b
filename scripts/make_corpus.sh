#!/usr/bin/env bash
# make_corpus.sh SIZE_MB OUT
# Build a deterministic mixed log corpus of about SIZE_MB MiB (1 MiB = 1048576 bytes)
# from the loghub *_2k.log samples in tests/data/corpus/loghub (see its README.md).
#
# Construction (fully deterministic, no randomness):
#   * every source file is split into lines; CRLF / trailing CR is normalised to LF,
#     empty lines are dropped (the loghub samples are stored with CRLF endings);
#   * the 16 sources are interleaved round-robin, one line from each source in turn,
#     like 16 services writing into one stream;
#   * on cycle k (one pass over ~2000 lines of every source) source s starts at offset
#     (k * 389 * (s + 1)) mod n_s, so neighbouring-line combinations differ between cycles
#     instead of one 4.4 MB block repeating verbatim;
#   * output stops at the first line boundary at or after SIZE_MB MiB.
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 SIZE_MB OUT" >&2
  exit 2
fi
SIZE_MB=$1
OUT=$2
HERE=$(cd "$(dirname "$0")" && pwd)
exec python3 - "$HERE/../tests/data/corpus/loghub" "$SIZE_MB" "$OUT" <<'PY'
import glob, os, sys
src_dir, size_mb, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
files = sorted(glob.glob(os.path.join(src_dir, "*_2k.log")))
if not files:
    sys.exit("no *_2k.log files in " + src_dir)
sources = []
for f in files:
    raw = open(f, "rb").read()
    lines = [l.rstrip(b"\r") for l in raw.split(b"\n")]
    lines = [l + b"\n" for l in lines if l]
    sources.append(lines)
target = int(size_mb * 1048576)
maxn = max(len(s) for s in sources)
written = 0
nlines = 0
k = 0
with open(out, "wb", buffering=1 << 20) as fh:
    while written < target:
        offs = [(k * 389 * (s + 1)) % len(src) for s, src in enumerate(sources)]
        block = []
        for i in range(maxn):
            for s, src in enumerate(sources):
                n = len(src)
                if i < n:
                    block.append(src[(offs[s] + i) % n])
        # trim the last block to the first line boundary at/after target
        chunk = b"".join(block)
        if written + len(chunk) >= target:
            acc = written
            cut = 0
            for j, l in enumerate(block):
                acc += len(l)
                if acc >= target:
                    cut = j + 1
                    break
            block = block[:cut]
            chunk = b"".join(block)
        fh.write(chunk)
        written += len(chunk)
        nlines += len(block)
        k += 1
print(f"{out}: {written} bytes, {nlines} lines, {k} cycles, {len(sources)} sources",
      file=sys.stderr)
PY

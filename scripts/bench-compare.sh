#!/usr/bin/env bash
# bench-compare.sh: logalarm beside its peers on the same corpus, all reading from a pipe.
#
#   scripts/bench-compare.sh                 # 1 GiB corpus, 10 and 100 rules, 3 runs each
#   SIZE_MB=256 RUNS=1 scripts/bench-compare.sh
#   RULESETS="10 100 1000" UWSGI_MB=16 scripts/bench-compare.sh
#   UWSGI=0 RUNS=1 scripts/bench-compare.sh     # without the uWSGI rows (minutes each)
#   LOGALARM_OLD=/tmp/old/logalarm UWSGI=0 scripts/bench-compare.sh   # an older build beside
#   CORPUS_KIND=other RULESETS="100 debian" scripts/bench-compare.sh     # a corpus that is not loghub
#
# Rule sets: benches/rules/rulesN.txt (rules100pcre: 10 of the 100 with a PCRE look-ahead);
# `debian`, `logcheck`, `fail2ban`: rule sets written by others, from Debian's logcheck-database
# and fail2ban packages (scripts/debian-rules.py downloads and converts them: 1,907 + 194);
# `debianci`: the 2,101 of `debian`, each behind `(?i)`; `sagan`: sagan-rules' 2,052 (Sagan's
# log rules, their pcre or contents; same script); `colour`: grc's and multitail's 1,175
# colouring regexes (mostly without literals; nearly every line raises; Hyperscan takes ~2 min
# a run of 256 MiB); `logwatch`: logwatch's 4,076 Perl regexes (same script; short literals,
# lazy quantifiers, a third of the lines raise); `grok`: Logstash's 300 grok patterns expanded (scripts/grok-rules.py
# downloads them from PyPI: look-behind and atomic groups confirmed by PCRE, patterns that match
# almost every line: nearly every line raises; Hyperscan refuses most of them);
# 1000 is made from the 100 by varying each rule ten
# times (rule R becomes `R|v{i}x{len(R)}`, i in 0..10: ten distinct rules that match what R does).
# `shape-NAME` (ciend, shared, cishared, literalfree, dot3, alt3, numeric, short3, ciphrase):
# rules of one shape each, made from the corpus's own words by scripts/shape-rules.py.
# `storm100`, `storm10`: alarm storms — the corpus with `STORM ` before every line (or one line
# in ten), the rule `^STORM` raising a `log:` alarm with `alarm-freq = 0` (every raise runs: the
# output gets one alarm line per raising line); a last run checks that none was lost.
# WORKLOADS="latency cmd" adds: in-process latency (examples/latency --in-process: read → action
# start of `log:`, `mule:`, `signal:` alarms at 100 MB/s background, from logalarm's own
# histograms) and the `cmd:` spawn rate (20,000 raising lines, `cmd:/bin/true` and the same
# through the shell, `alarm-overflow block`: every command runs, at most 64 at once); "many":
# 100 supervised processes and 100 tailed files beside stdin (the same bytes, rules100;
# MANY_RULES=debian: Debian's 2,101 rules instead).
# Floors: `newline_count` is `cat | memchr newline count` in 128 KiB reads (the floor with a pipe); the header
# prints the in-memory memchr newline count (the floor for splitting lines).
#
# Peers: rg --passthru (the same job: pass everything through, find matches), rg -c, GNU grep
# -E -c (10 rules only unless GREP_ALL=1: it needs minutes for 100), Hyperscan/vectorscan block
# mode counting matching lines (scripts/hs_count.c), and the real uWSGI 2.0 log-alarm (the corpus
# written line by line by an attach-daemon (scripts/uwsgi_feed.py) into uWSGI's log pipe, every
# rule raising a signal: alarm; uWSGI reads only the first UWSGI_MB MiB (default 128): it runs at
# a few MB/s, and MB/s is what is compared; the check at the end says how many alarms uWSGI raised, so a run that lost lines shows).
# logalarm runs the same rules as log-alarm lines raising a log: alarm, output to /dev/null.
# Prints one table per rule count: median wall time, MB/s, lines/s, peak RSS, ratio to logalarm.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SIZE_MB=${SIZE_MB:-1024}
RUNS=${RUNS:-3}
RULESETS=${RULESETS:-"10 100"}
WORK=${WORK:-/tmp/logalarm-bench}
mkdir -p "$WORK"

need() { command -v "$1" >/dev/null 2>&1 || { [ "$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${@:2}" >/dev/null; } || true; }
[ -f /var/lib/apt/lists/lock ] && [ -z "$(ls /var/lib/apt/lists/ 2>/dev/null | grep -v lock | head -1)" ] && apt-get update -qq || true
need bc bc
need rg ripgrep
need uwsgi uwsgi-core
need /usr/bin/time time
need pkg-config pkg-config
pkg-config --exists libhs 2>/dev/null || need __no_such_cmd libvectorscan-dev

cargo build --release --quiet --bin logalarm --example nlcount
LOGALARM=$ROOT/target/release/logalarm
NLCOUNT=$ROOT/target/release/examples/nlcount

# CORPUS_KIND=other: text the literal search's rarity model never saw (nginx access lines,
# RFC 3339 syslog, Java and Python traces; scripts/make_other_corpus.py) instead of loghub's.
case ${CORPUS_KIND:-loghub} in
  loghub) NAME=corpus ;;
  other) NAME=other ;;
  *) echo "CORPUS_KIND is loghub or other" >&2; exit 2 ;;
esac
CORPUS=$WORK/$NAME-${SIZE_MB}.log
if [ ! -s "$CORPUS" ]; then
  if [ "$NAME" = other ]; then python3 scripts/make_other_corpus.py "$SIZE_MB" "$CORPUS"
  else scripts/make_corpus.sh "$SIZE_MB" "$CORPUS"; fi
fi
BYTES=$(stat -c %s "$CORPUS")
UWSGI_MB=${UWSGI_MB:-128}
UCORPUS=$WORK/$NAME-${SIZE_MB}-first${UWSGI_MB}.log
[ -s "$UCORPUS" ] || head -c $((UWSGI_MB * 1048576)) "$CORPUS" | sed '$d' > "$UCORPUS"
UBYTES=$(stat -c %s "$UCORPUS")
ULINES=$(wc -l < "$UCORPUS")
LINES=$(wc -l < "$CORPUS")

HS=""
if pkg-config --exists libhs 2>/dev/null; then
  cc -O2 -o "$WORK/hs_count" scripts/hs_count.c $(pkg-config --cflags --libs libhs) && HS=$WORK/hs_count
fi

# run NAME CMD: CMD reads the corpus on stdin; prints "seconds rss_kb"
measure() {
  local cmd=$1 t0 t1 ok=1
  t0=$(date +%s.%N)
  # (`|| true`: a tool that reads its own input, like logalarm_supervised, leaves cat to SIGPIPE.)
  { cat "$CORPUS" || true; } | /usr/bin/time -f '%M' -o "$WORK/rss" bash -c "$cmd" > "$WORK/out" 2>"$WORK/err" || { ok=0; echo "FAILED: $cmd" >&2; tail -3 "$WORK/err" >&2; }
  t1=$(date +%s.%N)
  # A tool that refused the rules (rg on look-around, say) gets a "failed" row, not a time.
  if [ $ok = 1 ]; then echo "$(echo "$t1 - $t0" | bc -l) $(tail -1 "$WORK/rss")"; else echo "FAILED $(grep -m1 . "$WORK/err" | tr -s ' ' | cut -c1-60)"; fi
}

uwsgi_run() { # uwsgi_run RULES: the whole uWSGI master life, corpus through its log pipe
  local rules=$1 dir=$WORK/uwsgi
  rm -rf "$dir"; mkdir -p "$dir"
  {
    echo "[uwsgi]"; echo "master = true"; echo "socket = $dir/x.sock"; echo "processes = 1"
    echo "log-master = true"; echo "logto = $dir/out.log"; echo "pidfile = $dir/pid"
    echo "alarm = a signal:30"; echo "alarm = done cmd:kill -INT \$(cat $dir/pid)"
    while IFS= read -r r; do [ -n "$r" ] && echo "log-alarm = a ${r//%/%%}"; done < "$rules"
    echo "log-alarm = done ^LOGALARM_BENCH_DONE\$"
    # uWSGI's log pipe is a datagram socket: one write() is one message (cat's 128 KiB writes
    # fail with EMSGSIZE), so the corpus is written one line per write(), as applications do.
    echo "attach-daemon = sh -c 'python3 $ROOT/scripts/uwsgi_feed.py $UCORPUS; exec sleep 100000'"
  } > "$dir/u.ini"
  local t0 t1
  t0=$(date +%s.%N)
  /usr/bin/time -f '%M' -o "$WORK/rss" timeout 1800 uwsgi --ini "$dir/u.ini" >/dev/null 2>&1 || true
  t1=$(date +%s.%N)
  pkill -f "$dir/u.ini" 2>/dev/null || true
  # Seconds scaled to the whole corpus, so MB/s and lines/s compare with the other rows.
  echo "$(echo "($t1 - $t0) * $BYTES / $UBYTES" | bc -l) $(tail -1 "$WORK/rss")"
}

median() { sort -n | awk '{a[NR]=$0} END {print a[int((NR+1)/2)]}'; }

echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(uname -m) $(nproc) cores; corpus $BYTES bytes, $LINES lines; median of $RUNS"
echo "# memchr newline count in memory (best of 5): $($NLCOUNT "$CORPUS" 2>&1) MB/s"
echo "# logalarm $($LOGALARM --version | cut -d' ' -f2), $(rg --version 2>/dev/null | sed -n 1p), $(grep --version | head -1), uwsgi $(uwsgi --version 2>/dev/null)${HS:+, vectorscan $(pkg-config --modversion libhs)}"
numeric() { [[ "$1" =~ ^[0-9]+$ ]]; }
MAIN_CORPUS=$CORPUS
for n in $RULESETS; do
  RULES=$ROOT/benches/rules/rules$n.txt
  CORPUS=$MAIN_CORPUS
  case $n in
    storm100|storm10)
      pct=${n#storm}
      CORPUS=$WORK/$NAME-${SIZE_MB}-$n.log
      [ -s "$CORPUS" ] || awk -v p="$pct" 'p == 100 || NR % 10 == 1 { print "STORM " $0; next } { print }' "$MAIN_CORPUS" > "$CORPUS"
      RULES=$WORK/storm.txt; echo '^STORM' > "$RULES" ;;
    debian|logcheck|fail2ban|sagan|colour|logwatch)
      [ -s "$WORK/debian-rules/$n.txt" ] || python3 scripts/debian-rules.py "$WORK/debian-rules" >&2
      RULES=$WORK/debian-rules/$n.txt
      sed 's/^/# /' "$WORK/debian-rules/SOURCES" ;;
    grok)
      [ -s "$WORK/grok-rules/grok.txt" ] || python3 scripts/grok-rules.py "$WORK/grok-rules" >&2
      RULES=$WORK/grok-rules/grok.txt
      sed 's/^/# /' "$WORK/grok-rules/SOURCES" ;;
    shape-*)
      # One rule shape each, made from the corpus's own words (scripts/shape-rules.py).
      SHAPES=$WORK/shape-rules-$NAME-$SIZE_MB
      [ -s "$SHAPES/${n#shape-}.txt" ] || python3 scripts/shape-rules.py "$MAIN_CORPUS" "$SHAPES" >&2
      RULES=$SHAPES/${n#shape-}.txt
      [ -s "$RULES" ] || { echo "unknown rule set $n (scripts/shape-rules.py lists the shapes)" >&2; exit 2; } ;;
    debianci)
      # Debian's 2,101 rules each behind `(?i)` (every literal compared ignoring case).
      [ -s "$WORK/debian-rules/debian.txt" ] || python3 scripts/debian-rules.py "$WORK/debian-rules" >&2
      RULES=$WORK/debianci.txt
      sed 's/^/(?i)/' "$WORK/debian-rules/debian.txt" > "$RULES"
      sed 's/^/# /' "$WORK/debian-rules/SOURCES" ;;
  esac
  if [ "$n" = 1000 ]; then
    RULES=$WORK/rules1000.txt
    for i in $(seq 0 9); do
      while IFS= read -r r; do [ -n "$r" ] && printf '%s|v%dx%d\n' "$r" "$i" "${#r}"; done < "$ROOT/benches/rules/rules100.txt"
    done > "$RULES"
  fi
  BYTES=$(stat -c %s "$CORPUS")
  LINES=$(wc -l < "$CORPUS")
  INI=$WORK/rules$n.ini
  { echo "[uwsgi]"; echo "alarm = a log:"; while IFS= read -r r; do [ -n "$r" ] && echo "log-alarm = a ${r//%/%%}"; done < "$RULES"
    if [[ "$n" == storm* ]]; then echo "alarm-freq = 0"; fi; } > "$INI"
  # The same rules, one in ten on an alarm with a message template using the match, a key
  # and a threshold (alarm-template, alarm-key, alarm-threshold): what only raising lines pay.
  INIP=$WORK/rules$n-policies.ini
  { echo "[uwsgi]"; echo "alarm = a log:"; echo "alarm = p log:"
    i=0; while IFS= read -r r; do [ -n "$r" ] || continue; i=$((i+1))
      if [ $((i % 10)) = 1 ]; then echo "log-alarm = p ${r//%/%%}"; else echo "log-alarm = a ${r//%/%%}"; fi
    done < "$RULES"
    echo "alarm-key = p {0}"; echo "alarm-threshold = p 3 60"; echo "alarm-template = p {count} x {0} ({alarm}, {first}..{last})"
  } > "$INIP"
  declare -A CMDS=(
    [logalarm]="$LOGALARM --ini $INI > /dev/null"
    # The same corpus from a supervised process's pipe (`-- cat`) instead of stdin: the cost of
    # supervision per line. (The outer `cat |` of measure() is then unread and ends on SIGPIPE.)
    [logalarm_supervised]="$LOGALARM --ini $INI -- cat $CORPUS < /dev/null > /dev/null"
    # `logalarm replay` (no actions, virtual time) over the same stream: the live path plus
    # the timestamp of each raising line; and the live path with --metrics on (lines counted).
    [logalarm_replay]="$LOGALARM replay - --ini $INI --summary > /dev/null"
    [logalarm_metrics]="$LOGALARM --ini $INI --metrics 127.0.0.1:0 > /dev/null 2>&1"
    [logalarm_policies]="$LOGALARM --ini $INIP > /dev/null"
    [rg_passthru]="rg --passthru -f $RULES > /dev/null"
    [rg_count]="rg -c -f $RULES"
    [newline_count]="$NLCOUNT"
  )
  ORDER="logalarm logalarm_policies logalarm_replay logalarm_metrics logalarm_supervised newline_count rg_passthru rg_count"
  # LOGALARM_OLD=path/to/logalarm: an earlier build beside this one, in the same runs.
  if [ -n "${LOGALARM_OLD:-}" ]; then CMDS[logalarm_old]="$LOGALARM_OLD --ini $INI > /dev/null"; ORDER="logalarm logalarm_old ${ORDER#logalarm }"; fi
  # rulesNpcre: the same rules, some with PCRE look-ahead (confirmed by PCRE2 in logalarm):
  # the other tools do not take that syntax, only logalarm's rows run.
  if [[ "$n" == *pcre ]]; then ORDER="logalarm logalarm_replay logalarm_supervised newline_count"; fi
  if [[ "$n" == storm* ]]; then ORDER="logalarm ${LOGALARM_OLD:+logalarm_old }logalarm_metrics newline_count rg_passthru rg_count"; fi
  # grok: ripgrep refuses look-behind; replay and --metrics confirm every rule a line matches
  # (a hundred of these patterns match almost any line: ~3 MB/s, PERF.md forty-third run).
  if [[ "$n" == grok ]]; then ORDER="logalarm ${LOGALARM_OLD:+logalarm_old }logalarm_policies logalarm_supervised newline_count"; fi
  # logwatch: ripgrep refuses Perl's `\/` and back-references, and with -P (PCRE2) the 4,076
  # patterns are "too large".
  if [[ "$n" == logwatch ]]; then ORDER="${ORDER/ rg_passthru rg_count/}"; fi
  if [[ "$n" == *pcre ]]; then :; elif { numeric "$n" && [ "$n" -le 10 ]; } || [ "${GREP_ALL:-0}" = 1 ]; then CMDS[grep_count]="LC_ALL=C grep -E -c -f $RULES"; ORDER="$ORDER grep_count"; fi
  # (hs_count says on stderr how long hs_scan alone took: kept for the hs_scan_only row.)
  : > "$WORK/hs.log"
  if [ -n "$HS" ] && [[ "$n" != *pcre ]]; then CMDS[hyperscan]="$HS $RULES 2>> $WORK/hs.log"; ORDER="$ORDER hyperscan"; fi
  printf '\n## %s rules\n' "$n"
  # Start-up: the rules compiled, empty input, exit (median of 5).
  for _ in 1 2 3 4 5; do
    t0=$(date +%s.%N); $LOGALARM --ini "$INI" --rules-cache off < /dev/null > /dev/null 2>&1 || true; t1=$(date +%s.%N)
    echo "($t1 - $t0) * 1000" | bc -l
  done | median | xargs printf '# logalarm start-up with %s rules (%s in the file): %.0f ms\n' "$n" "$(grep -c . "$RULES")"
  # Ready: from start until a first line is out, input still open (what a log stream waits
  # for; the exit above also waits for the thrash probe, which runs beside the log path).
  # Both without the rules cache (what every start costs when the rules change) and with it
  # (a warm record in a directory of this run: sets of 256+ rules only).
  rm -rf "$WORK/rules-cache"
  $LOGALARM --ini "$INI" --rules-cache "$WORK/rules-cache" < /dev/null > /dev/null 2>&1 || true
  for cache in off "$WORK/rules-cache"; do
    for _ in 1 2 3 4 5; do
      t0=$(date +%s.%N)
      exec 3< <( { echo "first line"; sleep 3; } | $LOGALARM --ini "$INI" --rules-cache "$cache" 2>/dev/null )
      read -r _ <&3 || true
      t1=$(date +%s.%N)
      exec 3<&-
      echo "($t1 - $t0) * 1000" | bc -l
    done | median | xargs printf '# logalarm first line out with %s rules, rules cache %s: %.0f ms\n' "$n" "$([ "$cache" = off ] && echo off || echo warm)"
  done
  printf '%-14s %10s %10s %14s %10s %10s\n' tool seconds MB/s lines/s rss_MiB "vs logalarm"
  base=""
  # Interleaved: run k of every tool before run k+1 of any, so drift (thermal, other load)
  # spreads over all rows alike; and each round starts RUNS-th of the way further along the
  # order, so no tool is always first (straight after the previous round's Hyperscan compile:
  # the first column read 10-30 % slower than the same binary in later ones, PERF.md
  # "twenty-third run").
  for tool in $ORDER; do : > "$WORK/times.$tool"; done
  read -r -a tools <<< "$ORDER"
  for round in $(seq 0 $((RUNS - 1))); do
    shift_by=$(( round * ${#tools[@]} / RUNS ))
    for i in "${!tools[@]}"; do
      tool=${tools[$(( (i + shift_by) % ${#tools[@]} ))]}
      measure "${CMDS[$tool]}" >> "$WORK/times.$tool"
    done
  done
  if command -v uwsgi >/dev/null && [ "${UWSGI:-1}" != 0 ] && { { numeric "$n" && [ "$n" -le 100 ]; } || [ "${UWSGI_ALL:-0}" = 1 ]; }; then
    # uWSGI runs each line through every PCRE in turn (1,000 rules would take an hour), and
    # one run takes minutes: one run only.
    uwsgi_run "$RULES" > "$WORK/times.uwsgi"
    echo "# uwsgi: $(grep -c 'error managing signal' "$WORK/uwsgi/out.log" || true) alarms raised, $(grep -vc -e 'error managing signal' "$WORK/uwsgi/out.log" || true) lines logged of $ULINES" >&2
    ORDER="$ORDER uwsgi"
  fi
  for tool in $ORDER; do
    if grep -q '^FAILED' "$WORK/times.$tool"; then
      printf '%-14s %10s   (%s)\n' "$tool" failed "$(grep -m1 '^FAILED' "$WORK/times.$tool" | cut -d' ' -f2-)"
      continue
    fi
    secs=$(awk '{print $1}' "$WORK/times.$tool" | median)
    rss=$(awk '{print $2}' "$WORK/times.$tool" | median)
    mbs=$(echo "$BYTES / $secs / 1000000" | bc -l)
    [ -z "$base" ] && base=$mbs
    printf '%-14s %10.2f %10.0f %14.0f %10.1f %9.2fx\n' "$tool" "$secs" "$mbs" "$(echo "$LINES / $secs" | bc -l)" "$(echo "$rss / 1024" | bc -l)" "$(echo "$mbs / $base" | bc -l)"
  done
  if grep -q "scan" "$WORK/hs.log"; then
    # Hyperscan's hs_scan calls alone (no pipe, no compile): the issue's "scan time alone".
    secs=$(sed -n 's/.*scan \([0-9.]*\) s/\1/p' "$WORK/hs.log" | median)
    mbs=$(echo "$BYTES / $secs / 1000000" | bc -l)
    printf '%-14s %10.2f %10.0f %14.0f %10s %9.2fx   (%s)\n' hs_scan_only "$secs" "$mbs" "$(echo "$LINES / $secs" | bc -l)" - "$(echo "$mbs / $base" | bc -l)" "$(tail -1 "$WORK/hs.log" | sed 's/^hs_count: //')"
  fi
  if [[ "$n" == storm* ]]; then
    # Nothing lost: every raising line ran its alarm (logalarm's exit summary, and the alarm
    # lines in the output).
    raising=$(grep -c '^STORM ' "$CORPUS" || true)
    "$LOGALARM" --ini "$INI" < "$CORPUS" 2> "$WORK/err" | grep -c ' - ALARM: STORM ' > "$WORK/out" || true
    echo "# storm check: $raising raising lines, $(cat "$WORK/out") alarm lines written; $(grep -m1 'exit: .*alarms raised' "$WORK/err" | sed 's/.*passed, //')"
  fi
  unset CMDS
done
CORPUS=$MAIN_CORPUS
BYTES=$(stat -c %s "$CORPUS")

for w in ${WORKLOADS:-}; do
  case $w in
    latency)
      cargo build --release --quiet --example latency
      printf '\n## in-process latency (log:, mule:, signal:; 300 probes, 100 MB/s background)\n'
      "$ROOT/target/release/examples/latency" "$CORPUS" 100 300 --in-process 2>/dev/null ;;
    cmd)
      printf '\n## cmd: spawn rate (20,000 raising lines, alarm-overflow block)\n'
      seq 1 20000 | sed 's/^/SPAWN line /' > "$WORK/spawn.log"
      for c in /bin/true 'true' '/bin/true && true'; do
        printf '[uwsgi]\nalarm = run cmd:%s\nalarm-overflow = run block\nalarm-freq = 0\nlog-alarm = run ^SPAWN\n' "$c" > "$WORK/spawn.ini"
        t0=$(date +%s.%N); "$LOGALARM" --ini "$WORK/spawn.ini" < "$WORK/spawn.log" > /dev/null 2> "$WORK/err"; t1=$(date +%s.%N)
        printf '%-22s %8.0f commands/s  (%s)\n' "cmd:$c" "$(echo "20000 / ($t1 - $t0)" | bc -l)" "$(grep -m1 -o '[0-9]* cmd commands started' "$WORK/err")"
      done ;;
    many)
      # The corpus cut into 100 parts at line ends, read by 100 supervised processes (each
      # `cat`s its part, then sleeps) or followed as 100 files (`tail`, from their start),
      # with rules100; timed until every byte is out (`head -c` of the total), beside the
      # same rules on the whole corpus through stdin. Median of RUNS.
      PARTS=$WORK/parts-$NAME-$SIZE_MB
      if [ ! -s "$PARTS/part-99" ]; then
        rm -rf "$PARTS"; mkdir -p "$PARTS"
        split -n l/100 -d -a 2 "$MAIN_CORPUS" "$PARTS/part-"
      fi
      cargo build --release --quiet --example outclock
      OUTCLOCK=$ROOT/target/release/examples/outclock
      MANY_RULES=${MANY_RULES:-100}
      case $MANY_RULES in
        100) RMANY=$ROOT/benches/rules/rules100.txt; MANY_NAME=rules100 ;;
        debian)
          [ -s "$WORK/debian-rules/debian.txt" ] || python3 scripts/debian-rules.py "$WORK/debian-rules" >&2
          RMANY=$WORK/debian-rules/debian.txt; MANY_NAME="Debian's rules" ;;
        *) echo "unknown MANY_RULES $MANY_RULES (100, debian)" >&2; exit 2 ;;
      esac
      rules_ini() { echo "[uwsgi]"; echo "alarm = a log:"; while IFS= read -r r; do [ -n "$r" ] && echo "log-alarm = a ${r//%/%%}"; done < "$RMANY"; }
      { rules_ini; for f in "$PARTS"/part-*; do echo "attach-daemon = cat $f; exec sleep 100000"; done; } > "$WORK/many-daemons.ini"
      { rules_ini; echo "tail-from-start = true"; for f in "$PARTS"/part-*; do echo "tail = $f"; done; } > "$WORK/many-tails.ini"
      rules_ini > "$WORK/many-stdin.ini"
      printf '\n## many inputs (%s, %s MiB; the output counted to the last byte)\n' "$MANY_NAME" "$SIZE_MB"
      printf '%-22s %10s %10s %10s %12s\n' inputs seconds MB/s rss_MiB steady_MB/s
      # Two stdin rows: the file itself as standard input (what the tails compare with: they
      # read files), and through a pipe from `cat` (what the daemons compare with: each `cat`s
      # its part into a pipe). `outclock` reads the output to its last byte and says when the
      # last, the 10 %'s and the 90 %'s bytes came: MB/s is the whole run's (with the start of
      # 300 processes for the daemons: 100 `sh`, their `cat` and `sleep`), steady_MB/s the
      # 80 % between (what the inputs give once they are running).
      for kind in stdin stdin-pipe daemons tails; do
        : > "$WORK/times.many"
        for _ in $(seq "$RUNS"); do
          t0=$(date +%s.%N)
          if [ $kind = stdin ]; then
            /usr/bin/time -f '%M' -o "$WORK/rss" "$LOGALARM" --ini "$WORK/many-stdin.ini" < "$MAIN_CORPUS" 2>/dev/null | "$OUTCLOCK" "$t0" "$BYTES" > "$WORK/clock" || true
          elif [ $kind = stdin-pipe ]; then
            cat "$MAIN_CORPUS" | /usr/bin/time -f '%M' -o "$WORK/rss" "$LOGALARM" --ini "$WORK/many-stdin.ini" 2>/dev/null | "$OUTCLOCK" "$t0" "$BYTES" > "$WORK/clock" || true
          else
            /usr/bin/time -f '%M' -o "$WORK/rss" "$LOGALARM" --ini "$WORK/many-$kind.ini" < /dev/null 2>/dev/null | "$OUTCLOCK" "$t0" "$BYTES" > "$WORK/clock" || true
          fi
          read -r end at10 at90 < "$WORK/clock"
          echo "$end $(tail -1 "$WORK/rss" | grep -o '^[0-9]*$' || echo 0) $(echo "$BYTES * 0.8 / ($at90 - $at10) / 1000000" | bc -l)" >> "$WORK/times.many"
        done
        secs=$(awk '{print $1}' "$WORK/times.many" | median)
        rss=$(awk '{print $2}' "$WORK/times.many" | median)
        steady=$(awk '{print $3}' "$WORK/times.many" | median)
        printf '%-22s %10.2f %10.0f %10.1f %12.0f\n' "$kind$([[ $kind = stdin* ]] || echo ' (100)')" "$secs" "$(echo "$BYTES / $secs / 1000000" | bc -l)" "$(echo "$rss / 1024" | bc -l)" "$steady"
      done ;;
    *) echo "unknown workload $w (latency, cmd, many)" >&2; exit 2 ;;
  esac
done

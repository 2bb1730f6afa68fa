#!/usr/bin/env bash
# Fan-out: a recipe built as N parts (scripts/fanout/parallel.sh: GNU parallel, J parts at a
# time, each s2s-build -j 1) and merged, beside the one-machine build of the same recipe
# (s2s-build -j J, same codebook file), on this machine, in one run. Wall and CPU seconds
# (user+system of every process, /usr/bin/time), medians of RUNS runs (default 3); merge alone
# is timed separately. Both results are checked to hold the same samples and bytes
# (tests/tools/fanout_compare.py) once.
#   RECIPE=samples (default) or sstorycloze-val (needs S2S_CORPORA or ../shared/corpora)
#   PARTS=3 JOBS=2 RUNS=3
# Usage: bench/fanout.sh [BUILD_DIR]
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${1:-${S2S_BUILD:-$SRC/build}}" && pwd)
BIN=$BUILD/bin
RECIPE=${RECIPE:-samples}
PARTS=${PARTS:-3}
JOBS=${JOBS:-2}
RUNS=${RUNS:-3}
export S2S_CORPORA=${S2S_CORPORA:-$(cd "$SRC/../shared/corpora" 2>/dev/null && pwd || true)}
for t in s2s-build s2s-shard s2s-tokenize; do
  [ -x "$BIN/$t" ] || { echo "no $BIN/$t (build first)" >&2; exit 2; }
done
command -v parallel >/dev/null || { echo "GNU parallel missing (apt-get install parallel)" >&2; exit 2; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
export S2S_BIN=$BIN
# a codebook once (the samples build trains one; any codebook works for timing)
"$BIN/s2s-build" samples -o "$T/cbsrc" -j "$JOBS" >/dev/null 2>&1
"$SRC/scripts/fanout/recipe-with-codebook.sh" "$RECIPE" "$T/cbsrc/codebook-samples-k50.cb" "$T/r.recipe"
timed() { # timed OUTFILE CMD...: appends "wall cpu"
  local out=$1
  shift
  /usr/bin/time -f "%e %U %S" -o "$T/t" "$@" >/dev/null 2>&1
  awk '{ printf "%s %.2f\n", $1, $2 + $3 }' "$T/t" >>"$out"
}
for r in $(seq 1 "$RUNS"); do
  rm -rf "$T/one" "$T/parts" "$T/out" "$T/m"
  timed "$T/one.txt" "$BIN/s2s-build" "$T/r.recipe" -o "$T/one" -j "$JOBS"
  timed "$T/fan.txt" "$SRC/scripts/fanout/parallel.sh" -n "$PARTS" -j "$JOBS" -b 1 "$T/r.recipe" "$T/parts" "$T/out"
  dirs=()
  for i in $(seq 0 $((PARTS - 1))); do dirs+=("$T/parts/$i"); done
  timed "$T/merge.txt" "$BIN/s2s-shard" merge "${dirs[@]}" -o "$T/m"
done
"$BIN/s2s-shard" cat "$T/one" >"$T/one.tar"
"$BIN/s2s-shard" cat "$T/out" >"$T/out.tar"
python3 "$SRC/tests/tools/fanout_compare.py" "$T/one.tar" "$T/out.tar" "$PARTS" >&2
samples=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["samples"])' "$T/out/dataset.json")
med() { sort -n -k"$2" "$1" | awk -v k="$2" '{ v[NR] = $k } END { print v[int((NR + 1) / 2)] }'; }
echo "$RECIPE: $samples samples, $PARTS parts, $JOBS at a time, medians of $RUNS runs; load: $(uptime | sed 's/.*load average: //')"
echo
echo "| build | wall s | CPU s |"
echo "| --- | ---: | ---: |"
echo "| one machine: s2s-build -j $JOBS | $(med "$T/one.txt" 1) | $(med "$T/one.txt" 2) |"
echo "| fan-out: parallel.sh -n $PARTS -j $JOBS (parts -j 1) + merge | $(med "$T/fan.txt" 1) | $(med "$T/fan.txt" 2) |"
echo "| merge alone (hard links, verify parts and result) | $(med "$T/merge.txt" 1) | $(med "$T/merge.txt" 2) |"

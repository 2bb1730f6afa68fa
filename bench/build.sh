#!/usr/bin/env bash
# bench/build.sh — the headline benchmark: the whole sStoryCloze build (StoryCloze Spring 2016
# validation, 1871 items: contexts and both endings -> speech -> 16 kHz -> units -> shards,
# verified) with `s2s-build -j2`, against the floor of this machine measured in the same run:
# bare `espeak-ng -v en-us -f FILE -w /dev/null` (a real null device: bench/lib/null.sh) on the same text (every context and ending,
# one utterance per line, exactly the texts s2s-synth speaks) split in two halves of equal
# characters, the two processes run in parallel (2 cores). The floor is synthesis only.
#
# Goals (issue #9): build wall <= 1.5 x floor wall (everything after synthesis costs at most half
# of synthesis); peak RSS of every process < 64 MB.
#
# Codebook: the shipped recipe says `codebook = train 100`. Training k-means is a one-off choice
# of the recipe, not part of the per-item work the floor measures, so the timed build uses
# `codebook = FILE` with a 100-unit codebook learned beforehand (untimed, on the first 100
# items' speech); its training time is printed on its own row. Everything else is the shipped
# recipe (voice en-us, speech ctx,candidates, rate 16000, per_shard 1000, seed 1).
#
# Measured per stage: each tool s2s-build starts is run through GNU time (a wrapper directory
# holding a copy of s2s-build, which runs the tools found beside itself), giving its peak RSS
# (the largest of the process and the children it waited for, e.g. s2s-synth's workers) and its
# CPU time; s2s-build's own peak is its VmHWM sampled from /proc. Floors are measured before and
# after the build; their mean is the anchor (both printed). The machine is shared: `uptime`
# load is printed.
#
# Repetitions (env REPS, default 3): floor, build, floor, build, ..., floor. Each build's ratio
# is its wall over the mean of the two floors around it (so a change of load between runs hits
# both); the table gives the median build, the median floor and the median ratio, and each
# stage's median CPU (peak RSS: the largest of all runs).
#
# Usage: bench/build.sh [--items N] [BUILD_DIR]   (default: all 1871 items; BUILD_DIR default
# $S2S_BUILD or ./build). Output: a markdown table (figure | ours | anchor | ratio | goal | met)
# on stdout, progress on stderr.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
ITEMS=0
while [ $# -gt 0 ]; do
  case $1 in
  --items) ITEMS=$2; shift 2 ;;
  -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) break ;;
  esac
done
BUILD=$(cd "${1:-${S2S_BUILD:-$SRC/build}}" && pwd)
BIN=$BUILD/bin
SHARED=${S2S_SHARED:-$SRC/../shared}
CSV=$SHARED/corpora/storycloze_spring2016/cloze_test_val__spring2016.csv
GTIME=/usr/bin/time
for t in s2s-build s2s-import s2s-synth s2s-resample s2s-tokenize s2s-pack s2s-shard; do
  [ -x "$BIN/$t" ] || { echo "bench/build.sh: no $BIN/$t (build first)" >&2; exit 2; }
done
command -v espeak-ng >/dev/null || { echo "bench/build.sh: needs espeak-ng" >&2; exit 2; }
[ -x $GTIME ] && $GTIME -f %M true 2>/dev/null ||
  { echo "bench/build.sh: needs GNU time (apt-get install time)" >&2; exit 2; }
[ -r "$CSV" ] || { echo "bench/build.sh: no $CSV (S2S_SHARED)" >&2; exit 2; }
T=$(mktemp -d)
SAMPLER=
trap '[ -n "$SAMPLER" ] && kill $SAMPLER 2>/dev/null; rm -rf "$T"' EXIT
log() { echo "bench/build.sh: $*" >&2; }

# ---- inputs: the CSV (or its first N rows), the recipe, the floor's text ----------------------
python3 - "$CSV" "$ITEMS" "$T/src.csv" <<'EOF'
import csv, sys
rows = list(csv.reader(open(sys.argv[1], encoding="utf-8", newline="")))
n = int(sys.argv[2]) or len(rows) - 1
with open(sys.argv[3], "w", encoding="utf-8", newline="") as f:
    csv.writer(f, lineterminator="\n").writerows(rows[: n + 1])
EOF
"$BIN/s2s-import" storycloze "$T/src.csv" > "$T/items.jsonl" 2>/dev/null
N=$(wc -l < "$T/items.jsonl")
# What s2s-synth speaks: context text and every candidate's text, one utterance per line; two
# files of (nearly) equal characters for two processes.
python3 - "$T/items.jsonl" "$T/a.txt" "$T/b.txt" <<'EOF'
import json, sys
utt = []
for line in open(sys.argv[1], encoding="utf-8"):
    it = json.loads(line)
    utt.append(it["context"]["text"])
    utt += [c["text"] for c in it["candidates"]]
utt = [u.replace("\n", " ") for u in utt]
total, acc, cut = sum(len(u) for u in utt), 0, len(utt)
for i, u in enumerate(utt):
    if acc >= total / 2:
        cut = i
        break
    acc += len(u)
open(sys.argv[2], "w", encoding="utf-8").write("\n".join(utt[:cut]) + "\n")
open(sys.argv[3], "w", encoding="utf-8").write("\n".join(utt[cut:]) + "\n")
print(len(utt), file=open(sys.argv[1] + ".utt", "w"))
EOF
UTT=$(cat "$T/items.jsonl.utt")

# ---- the codebook (untimed): 100 units from the first 100 items' speech -----------------------
log "training the codebook on $(( N < 100 ? N : 100 )) items (untimed)"
head -n 100 "$T/items.jsonl" > "$T/train.jsonl"
t0=$(date +%s.%N)
"$BIN/s2s-synth" -q -j 2 --voice en-us "$T/train.jsonl" | "$BIN/s2s-resample" -q --rate 16000 |
  "$BIN/s2s-tokenize" train -q -k 100 --seed 1 -j 2 -o "$T/units-100.cb"
t_train=$(echo "$(date +%s.%N) - $t0" | bc -l)
cat > "$T/bench.recipe" <<EOF
name = sstorycloze-val
source = storycloze en src.csv
root = .
voice = en-us
speech = ctx,candidates
rate = 16000
codebook = units-100.cb
per_shard = 1000
seed = 1
EOF

# ---- wrappers: every stage under GNU time -----------------------------------------------------
W=$T/wrap
mkdir -p "$W"
cp "$BIN/s2s-build" "$W/"
for t in s2s-import s2s-synth s2s-resample s2s-tokenize s2s-pack s2s-shard; do
  printf '#!/bin/sh\nexec %s -a -o "$S2S_BENCH_LOG" -f "%s %%M %%U %%S %%e" %s "$@"\n' \
    "$GTIME" "$t" "$BIN/$t" > "$W/$t"
  chmod +x "$W/$t"
done

. "$SRC/bench/lib/null.sh"
NULL=$(null_sink "$T")
floor() { # -> "wall cpu" seconds of the two espeak-ng processes in parallel
  local t0 t1
  t0=$(date +%s.%N)
  $GTIME -f "%U %S" -o "$T/fa.cpu" espeak-ng -v en-us -f "$T/a.txt" -w "$NULL" &
  local p1=$!
  $GTIME -f "%U %S" -o "$T/fb.cpu" espeak-ng -v en-us -f "$T/b.txt" -w "$NULL" &
  local p2=$!
  wait $p1 $p2
  t1=$(date +%s.%N)
  echo "$(echo "$t1 - $t0" | bc -l) $(cat "$T/fa.cpu" "$T/fb.cpu" | awk '{s += $1 + $2} END {print s}')"
}

REPS=${REPS:-3}
load0=$(uptime | sed 's/.*load average: //')
log "floor 1: two espeak-ng processes, $UTT utterances"
read -r f c < <(floor)
FLOORS="$f" FCPUS="$c" BUILDS=""
for r in $(seq "$REPS"); do
  log "build $r/$REPS: $N items, s2s-build -j2"
  rm -rf "$T/out"
  export S2S_BENCH_LOG=$T/stages-$r.log
  : > "$S2S_BENCH_LOG"
  # s2s-build's own peak (VmHWM), sampled every 0.2 s
  "$W/s2s-build" "$T/bench.recipe" -o "$T/out" -j 2 > "$T/build.out" 2> "$T/build.err" &
  BPID=$!
  (
    hwm=$(cat "$T/build.hwm" 2>/dev/null || echo 0)
    while kill -0 $BPID 2>/dev/null; do
      v=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\).*/\1/p' /proc/$BPID/status 2>/dev/null || true)
      [ -n "$v" ] && [ "$v" -gt "$hwm" ] && hwm=$v && echo "$hwm" > "$T/build.hwm"
      sleep 0.2
    done
  ) &
  SAMPLER=$!
  t0=$(date +%s.%N)
  st=0
  wait $BPID || st=$?
  BUILDS="$BUILDS $(echo "$(date +%s.%N) - $t0" | bc -l)"
  wait $SAMPLER 2>/dev/null || true
  SAMPLER=
  [ $st = 0 ] || { cat "$T/build.err" >&2; echo "bench/build.sh: s2s-build failed ($st)" >&2; exit 1; }
  log "floor $((r + 1))"
  read -r f c < <(floor)
  FLOORS="$FLOORS $f" FCPUS="$FCPUS $c"
done
load1=$(uptime | sed 's/.*load average: //')
samples=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["samples"])' "$T/out/dataset.json" 2>/dev/null || echo "?")

# ---- the table --------------------------------------------------------------------------------
python3 - "$T" "$REPS" "$FLOORS" "$FCPUS" "$BUILDS" "$t_train" "$N" "$UTT" "$samples" \
  "$(cat "$T/build.hwm" 2>/dev/null || echo 0)" "$load0" "$load1" <<'EOF'
import statistics, sys
tdir, reps, floors, fcpus, builds, ttrain, n, utt, samples, bhwm, load0, load1 = sys.argv[1:]
reps = int(reps)
floors = [float(x) for x in floors.split()]
fcpus = [float(x) for x in fcpus.split()]
builds = [float(x) for x in builds.split()]
ttrain = float(ttrain)
med = statistics.median
ratios = [b / ((floors[i] + floors[i + 1]) / 2) for i, b in enumerate(builds)]
fcpu, floor, tb, ratio = med(fcpus), med(floors), med(builds), med(ratios)
stages = {}
for r in range(1, reps + 1):
    per = {}
    for line in open(f"{tdir}/stages-{r}.log"):
        p = line.split()
        if len(p) != 5 or not p[0].startswith("s2s-"):
            continue
        name, rss, u, s, e = p[0], int(p[1]), float(p[2]), float(p[3]), float(p[4])
        d = per.setdefault(name, {"rss": 0, "cpu": 0.0})
        d["rss"] = max(d["rss"], rss)
        d["cpu"] += u + s
    for name, d in per.items():
        a = stages.setdefault(name, {"rss": 0, "cpus": []})
        a["rss"] = max(a["rss"], d["rss"])
        a["cpus"].append(d["cpu"])
for a in stages.values():
    a["cpu"] = med(a["cpus"])
stages["s2s-build"] = {"rss": int(bhwm), "cpu": 0.0}
synth_cpu = stages.get("s2s-synth", {}).get("cpu", 0.0)
after = sum(d["cpu"] for k, d in stages.items() if k not in ("s2s-synth", "s2s-build"))
yes = lambda ok: "yes" if ok else "**no**"
fmt = lambda v: ", ".join(f"{x:.1f}" for x in v)
print(f"StoryCloze val build: {n} items ({utt} utterances, {samples} samples in the shards); "
      f"{reps} builds ({fmt(builds)} s) between {reps + 1} floors ({fmt(floors)} s); medians; "
      f"ratio = median of each build over the mean of its two floors ({', '.join(f'{x:.2f}' for x in ratios)}); "
      f"load average {load0} before, {load1} after.")
print()
print("| figure | ours | anchor | ratio | goal | met |")
print("| --- | ---: | ---: | ---: | --- | --- |")
print(f"| build wall s, {n} items, s2s-build -j2 vs 2x espeak-ng -f (floor) | {tb:.1f} | "
      f"{floor:.1f} | {ratio:.2f} | <= 1.5 | {yes(ratio <= 1.5)} |")
if synth_cpu > 0:
    r = after / synth_cpu
    print(f"| CPU s after synthesis (import, resample, tokenize, pack, verify) vs s2s-synth CPU s"
          f" | {after:.1f} | {synth_cpu:.1f} | {r:.2f} | <= 0.5 | {yes(r <= 0.5)} |")
print(f"| CPU s, s2s-synth vs espeak-ng -f (floor, both processes) | {synth_cpu:.1f} | {fcpu:.1f} | "
      f"{synth_cpu / fcpu:.2f} | - | - |")
for name in ["s2s-import", "s2s-resample", "s2s-tokenize", "s2s-pack", "s2s-shard"]:
    if name in stages and synth_cpu > 0:
        c = stages[name]["cpu"]
        print(f"| CPU s, {name}{' (verify)' if name == 's2s-shard' else ''} vs s2s-synth CPU s | "
              f"{c:.1f} | {synth_cpu:.1f} | {c / synth_cpu:.2f} | - | - |")
for name in ["s2s-build", "s2s-import", "s2s-synth", "s2s-resample", "s2s-tokenize", "s2s-pack",
             "s2s-shard"]:
    if name not in stages:
        continue
    d = stages[name]
    mb = d["rss"] / 1024
    what = " (VmHWM, sampled)" if name == "s2s-build" else (" (verify)" if name == "s2s-shard" else "")
    print(f"| peak RSS MB, {name}{what} | {mb:.1f} | 64 | {mb / 64:.2f} | < 64 MB | {yes(mb < 64)} |")
print(f"| codebook training s (untimed above: speech of {min(int(n), 100)} items, k=100) | {ttrain:.1f} | - | - | - | - |")
EOF

#!/usr/bin/env bash
# bench/synth.sh — s2s-synth -j2 against one `espeak-ng -f FILE -w out.wav` process on the same
# text: every context and every ending of StoryCloze Spring 2016 validation (1871 items, 5613
# utterances, ~10 h of speech), voice en-us, rate 175.
#
# Ours: items JSONL -> s2s-synth -j2 (default --isolate item --reset snapshot) -> tar stream to
# /dev/null. Anchor: the same texts, one per line, in one file -> espeak-ng -f FILE -w /dev/null
# (the CLI speaks the file as one text; our 5613 utterances each get espeak-ng's end pause, so we
# produce a bit more audio, printed below). Also -j1, -j2 --reset fork (a fresh fork per item,
# the same bytes) and --isolate none (no reset at all). Figures: wall and CPU (user+sys, children
# included) seconds, medians of RUNS (default 3); the programs take turns within each run, so a
# change of load hits them alike. The goal is wall(espeak-ng) / wall(s2s-synth -j2) >= 1.8 on 2
# cores; the cores may be shared with other work (load averages are printed), so the CPU ratio
# is printed too: it is the per-core overhead. Before timing, the -j2 bytes are checked equal
# to --reset fork's on the first 100 items.
# Row "2 x espeak-ng": two CLI processes at once, each on half the lines: perfect parallelism
# with no overhead, i.e. the most any 2-process program gets from this machine at that moment.
# Usage: bench/synth.sh [--items N] [BUILD_DIR]   (env RUNS; ROWS: a subset of
#        "cli2 j2 j1 j2fork none", default all; the espeak-ng row is always run)
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
ITEMS=0
if [ "${1:-}" = "--items" ]; then ITEMS=$2; shift 2; fi
BUILD=$(cd "${1:-${S2S_BUILD:-$SRC/build}}" && pwd)
SYNTH="$BUILD/bin/s2s-synth"
SHARED=${S2S_SHARED:-$SRC/../shared}
CSV="$SHARED/corpora/storycloze_spring2016/cloze_test_val__spring2016.csv"
RUNS=${RUNS:-3}
ROWS=${ROWS:-cli2 j2 j1 j2fork none}
[ -x "$SYNTH" ] || { echo "no $SYNTH (build first)" >&2; exit 2; }
command -v espeak-ng >/dev/null || { echo "no espeak-ng CLI" >&2; exit 2; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$T"
python3 - "$CSV" "$ITEMS" <<'EOF'
import csv, json, sys
rows = list(csv.DictReader(open(sys.argv[1], encoding="utf-8")))
n = int(sys.argv[2]) or len(rows)
rows = rows[:n]
with open("items.jsonl", "w", encoding="utf-8") as f, open("all.txt", "w", encoding="utf-8") as t:
    for i, r in enumerate(rows):
        ctx = " ".join(r["InputSentence%d" % k] for k in range(1, 5))
        ends = [r["RandomFifthSentenceQuiz1"], r["RandomFifthSentenceQuiz2"]]
        right = int(r["AnswerRightEnding"])
        f.write(json.dumps({"id": "sc%06d" % i, "task": "cloze", "lang": "en",
                            "context": {"text": ctx},
                            "candidates": [{"text": e, "label": int(right == k + 1)}
                                           for k, e in enumerate(ends)]},
                           ensure_ascii=False) + "\n")
        t.write(ctx + "\n" + ends[0] + "\n" + ends[1] + "\n")
print(len(rows), file=open("n", "w"))
EOF
N=$(cat n)
L=$(wc -l < all.txt)
head -n $((L / 2)) all.txt > half1.txt
tail -n +$((L / 2 + 1)) all.txt > half2.txt

. "$SRC/bench/lib/null.sh"
S2S_NULL=$(null_sink "$T")
export S2S_NULL
median() { sort -g | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
# "wall cpu" of one command (stdout to /dev/null), children's CPU included.
measure() {
    python3 -c 'import os, sys, time
null = os.open(os.environ.get("S2S_NULL", os.devnull), os.O_WRONLY)
t = time.monotonic()
pid = os.posix_spawnp(sys.argv[1], sys.argv[1:], os.environ,
                      file_actions=[(os.POSIX_SPAWN_DUP2, null, 1)])
_, status, ru = os.wait4(pid, 0)
wall = time.monotonic() - t
if os.waitstatus_to_exitcode(status): sys.exit("failed: " + " ".join(sys.argv[1:]))
c = os.times()
print("%.3f %.3f" % (wall, c.children_user + c.children_system))' "$@"
}
run() { # name, command...
    local name=$1; shift
    read -r w c < <(measure "$@")
    echo "$w" >> "w_$name"; echo "$c" >> "c_$name"
}
head -100 items.jsonl > first.jsonl
"$SYNTH" -q -j2 --voice en-us first.jsonl > snap.tar
"$SYNTH" -q --reset fork --voice en-us first.jsonl > fork.tar
cmp -s snap.tar fork.tar || { echo "s2s-synth -j2 and --reset fork differ" >&2; exit 1; }
rm -f snap.tar fork.tar
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
for _ in $(seq "$RUNS"); do
    run cli espeak-ng -v en-us -s 175 -f all.txt -w "$S2S_NULL"
    for v in $ROWS; do
        case $v in
        cli2) run cli2 bash -c 'espeak-ng -v en-us -s 175 -f half1.txt -w "$S2S_NULL" &
                espeak-ng -v en-us -s 175 -f half2.txt -w "$S2S_NULL"; wait $!' ;;
        j2) run j2 "$SYNTH" -q -j2 --voice en-us items.jsonl ;;
        j1) run j1 "$SYNTH" -q -j1 --voice en-us items.jsonl ;;
        j2fork) run j2fork "$SYNTH" -q -j2 --reset fork --voice en-us items.jsonl ;;
        none) run none "$SYNTH" -q -j1 --isolate none --voice en-us items.jsonl ;;
        *) echo "unknown row $v" >&2; exit 2 ;;
        esac
    done
done
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)

# Audio produced (seconds), from one run each.
espeak-ng -v en-us -s 175 -f all.txt -w cli.wav
AUD_CLI=$(python3 -c 'import wave; w = wave.open("cli.wav"); print("%.0f" % (w.getnframes() / w.getframerate()))')
rm -f cli.wav
AUD_OURS=$("$SYNTH" -q --voice en-us items.jsonl | python3 -c '
import json, sys, tarfile
s = 0.0
with tarfile.open(fileobj=sys.stdin.buffer, mode="r|") as tf:
    for m in tf:
        if m.name.endswith(".json"):
            s += sum(json.loads(tf.extractfile(m).read())["audio"]["durations"].values())
print("%.0f" % s)')

W_CLI=$(median < w_cli); C_CLI=$(median < c_cli)
echo "StoryCloze val: $N items, $((N * 3)) utterances; medians of $RUNS runs; $(nproc) cores"
echo "load average (1, 5, 15 min) before: $LOAD0; after: $LOAD1"
echo "s2s-synth -j2 and -j2 --reset fork: same bytes on the first $(wc -l < first.jsonl) items"
echo
echo "| program | wall s | CPU s | audio s | speedup (wall) vs espeak-ng | CPU vs espeak-ng |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
printf '| espeak-ng -f FILE -w (1 process) | %s | %s | %s | 1.00 | 1.00 |\n' "$W_CLI" "$C_CLI" "$AUD_CLI"
for v in $ROWS; do
    W=$(median < "w_$v"); C=$(median < "c_$v")
    case $v in
    cli2) label="2 x espeak-ng -f HALF -w at once (ceiling for 2 processes)" ;;
    j2) label="s2s-synth -j2" ;;
    j1) label="s2s-synth -j1" ;;
    j2fork) label="s2s-synth -j2 --reset fork" ;;
    none) label="s2s-synth -j1 --isolate none" ;;
    esac
    A=$AUD_OURS
    [ "$v" = cli2 ] && A=$AUD_CLI
    awk -v l="$label" -v w="$W" -v c="$C" -v wc="$W_CLI" -v cc="$C_CLI" -v a="$A" \
        'BEGIN { printf "| %s | %s | %s | %s | %.2f | %.2f |\n", l, w, c, a, wc / w, c / cc }'
done

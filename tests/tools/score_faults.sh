#!/usr/bin/env bash
# s2s-score with faulty workers (tests/workers/fault_worker.py) and batching:
#  - crash, hang, garbage, wrong id, duplicate id, early EOF: with S2S_WORKER_RESTARTS=0 the run
#    stops (exit 1, no report, the answers so far kept in the cache); the rerun asks only the
#    missing scores and its report and pairs equal an uninterrupted run's byte for byte. With
#    restarts allowed the run recovers, says "worker restarted 1 time" on stderr, and its report
#    is the same bytes again (restarts are not in report.json);
#  - a worker that returns the same score for everything: the report flags the backend;
#  - results do not depend on batching or reply order: S2S_WORKER_CAPACITY=1 and 64 give the
#    same bytes, a worker answering in reverse order the same pairs, and `s2s-lm serve` the
#    same pairs as the in-process n-gram backend.
set -euo pipefail
BIN=${S2S_BIN:?}
SRC=${S2S_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
FW=$SRC/tests/workers/fault_worker.py
[ -r "$FW" ] || { echo "score_faults.sh: $FW missing: skipped"; exit 0; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
cd "$T"
"$BIN/s2s-import" storycloze "$SRC/data/samples-en.csv" > items.jsonl 2>/dev/null || fail "import"
score_lines() { grep -c '"item"' "$1" || true; }
export S2S_WORKER_TIMEOUT=3 # the hang case waits this long (twice); python under load needs a margin

for f in crash hang garbage wrongid duplicate eof; do
    W="worker:python3 $FW $f $T/st_$f"
    touch "st_$f" # the fault fires only when this file is absent
    "$BIN/s2s-score" --lm "$W" -o "clean_$f" items.jsonl > /dev/null 2> "clean_$f.err" \
        || fail "$f: clean run: $(cat "clean_$f.err")"
    grep -q "restarted" "clean_$f.err" && fail "$f: the clean run restarted its worker"
    rm "st_$f"
    set +e
    S2S_WORKER_RESTARTS=0 "$BIN/s2s-score" --lm "$W" -o "f_$f" items.jsonl > /dev/null 2> "f_$f.err"
    rc=$?
    set -e
    [ "$rc" = 1 ] || fail "$f: faulty run without restarts: exit $rc, want 1 ($(cat "f_$f.err"))"
    [ ! -e "f_$f/report.json" ] && [ ! -e "f_$f/pairs.jsonl" ] || fail "$f: report of a failed run"
    # the answers before the fault are kept, also those that arrive in the same read as a bad
    # line (the worker backend hands them out before it reports the failure)
    least=1
    n=$(score_lines "f_$f/scores.cache.jsonl")
    [ "$n" -ge $least ] && [ "$n" -lt 60 ] || fail "$f: $n answers kept, want $least..59 ($(cat "f_$f.err"))"
    if [ "$n" -gt 0 ]; then
        grep -q "$n candidate scores are kept in f_$f/scores.cache.jsonl" "f_$f.err" \
            || fail "$f: no resume hint: $(cat "f_$f.err")"
    fi
    S2S_WORKER_RESTARTS=0 "$BIN/s2s-score" --lm "$W" -o "f_$f" items.jsonl > /dev/null 2> "f2_$f.err" \
        || fail "$f: rerun: $(cat "f2_$f.err")"
    if [ "$n" -gt 0 ]; then
        grep -q "^s2s-score: $n of 60 candidate scores from f_$f/scores.cache.jsonl, $((60 - n)) asked" \
            "f2_$f.err" || fail "$f: the rerun did not ask only the missing: $(cat "f2_$f.err")"
    fi
    [ "$(score_lines "f_$f/scores.cache.jsonl")" = 60 ] || fail "$f: cache after the rerun"
    cmp "f_$f/report.json" "clean_$f/report.json" || fail "$f: report after the rerun differs"
    cmp "f_$f/pairs.jsonl" "clean_$f/pairs.jsonl" || fail "$f: pairs after the rerun differ"
    # restarts allowed: one run recovers
    rm "st_$f"
    "$BIN/s2s-score" --lm "$W" -o "r_$f" items.jsonl > /dev/null 2> "r_$f.err" \
        || fail "$f: run with restarts: $(cat "r_$f.err")"
    grep -q "^s2s-score: worker restarted 1 time " "r_$f.err" \
        || fail "$f: restart not reported: $(cat "r_$f.err")"
    cmp "r_$f/report.json" "clean_$f/report.json" || fail "$f: report of a recovered run differs"
done

# a worker that says the same for everything
"$BIN/s2s-score" --lm "worker:python3 $FW same" -o same items.jsonl > same.out 2> same.err \
    || fail "same: $(cat same.err)"
grep -q "t2t: backend looks broken: every score is equal" same.err || fail "same: not flagged on stderr"
python3 -c '
import json
r = json.load(open("same/report.json"))
w = r["modes"]["t2t"]["warnings"]
assert any("every score is equal" in x for x in w) and any("pairs tie" in x for x in w), w
assert r["warnings"] == w and r["modes"]["t2t"]["ties"] == 30' || fail "same: report does not flag it"
grep -q "^warning: t2t: backend looks broken" same.out || fail "same: table does not flag it"

# ---- batching and reply order ---------------------------------------------------------------------
python3 - <<'PY'
import json
items = [json.loads(l) for l in open("items.jsonl")]
with open("many.jsonl", "w") as f:
    for c in range(4):  # 240 candidates: whole batches of 8 for the reverse worker
        for it in items:
            it = dict(it); it["id"] = f"{it['id']}-{c}"
            f.write(json.dumps(it) + "\n")
PY
"$BIN/s2s-lm" text items.jsonl 2>/dev/null | "$BIN/s2s-lm" train --order 3 -o w.arpa 2>/dev/null \
    || fail "train"
S="worker:$BIN/s2s-lm serve w.arpa"
S2S_WORKER_CAPACITY=1 "$BIN/s2s-score" --lm "$S" -o cap1 many.jsonl > /dev/null 2>&1 || fail "capacity 1"
S2S_WORKER_CAPACITY=64 "$BIN/s2s-score" --lm "$S" -o cap64 many.jsonl > /dev/null 2>&1 || fail "capacity 64"
cmp cap1/report.json cap64/report.json || fail "capacity 1 and 64 give different reports"
cmp cap1/pairs.jsonl cap64/pairs.jsonl || fail "capacity 1 and 64 give different pairs"
"$BIN/s2s-score" --lm ngram:w.arpa -o inproc many.jsonl > /dev/null 2>&1 || fail "in-process"
cmp cap1/pairs.jsonl inproc/pairs.jsonl || fail "s2s-lm serve and ngram: give different pairs"
"$BIN/s2s-score" --lm "worker:python3 $FW ok" -o ok many.jsonl > /dev/null 2>&1 || fail "ok worker"
"$BIN/s2s-score" --lm "worker:python3 $FW reverse" -o rev many.jsonl > /dev/null 2>&1 || fail "reverse"
cmp ok/pairs.jsonl rev/pairs.jsonl || fail "replies in reverse order give different pairs"
python3 -c '
import json
a, b = json.load(open("ok/report.json")), json.load(open("rev/report.json"))
assert a["run"]["backend"] != b["run"]["backend"]
a["run"]["backend"] = b["run"]["backend"] = None
assert a == b' || fail "replies in reverse order give a different report"
echo "score_faults.sh: ok"

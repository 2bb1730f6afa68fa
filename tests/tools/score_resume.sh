#!/usr/bin/env bash
# s2s-score resume: the score cache DIR/scores.cache.jsonl (docs/score.md "Score cache").
#  - a rerun finds every answer in the cache and writes the same report and pairs byte for byte;
#    --no-cache gives the same bytes too; nothing about the cache is in report.json;
#  - a new model file behind the same spec, a changed item or ctx.wav, another --model-id: asked
#    afresh;
#  - SIGINT in the middle of a run (exit 130, no report), then a rerun: only the missing scores
#    are asked and the report equals an uninterrupted run's; the same after SIGKILL plus a torn
#    last line, which is cut off with a note;
#  - a malformed line inside the cache is an error naming FILE:LINE; two runs on one DIR: the
#    second fails fast; failed replies are not cached (asked again) and a worker without a
#    model_id is warned about.
set -euo pipefail
BIN=${S2S_BIN:?}
SRC=${S2S_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
T=$(mktemp -d)
bgpid=
cleanup() {
    [ -n "$bgpid" ] && kill -9 "$bgpid" 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
cd "$T"

# 120 items (data/samples-en.csv four times under new ids), one candidate the worker refuses
"$BIN/s2s-import" storycloze "$SRC/data/samples-en.csv" > one.jsonl 2>/dev/null || fail "import"
python3 - <<'PY'
import json
items = [json.loads(l) for l in open("one.jsonl")]
with open("items.jsonl", "w") as f:
    for c in range(4):
        for it in items:
            it = json.loads(json.dumps(it)); it["id"] = f"{it['id']}-{c}"
            if c == 2 and it["id"].startswith("sstorycloze_000007"):
                it["candidates"][1]["text"] += " ERRTOKEN"
            f.write(json.dumps(it) + "\n")
PY
"$BIN/s2s-lm" text one.jsonl 2>/dev/null | "$BIN/s2s-lm" train --order 3 -o w.arpa 2>/dev/null \
    || fail "train"
# a slow worker (DELAY s per reply): deterministic scores, an error for ERRTOKEN candidates
cat > slow.py <<'PY'
import json, sys, time
delay, mid = float(sys.argv[1]), sys.argv[2]
print(json.dumps({"hello": "s2s-worker", "protocol": 1, "model_id": mid, "capacity": 8}), flush=True)
for line in sys.stdin:
    r = json.loads(line)
    time.sleep(delay)
    c, x = r["candidate"]["text"], r["context"]["text"]
    if "ERRTOKEN" in c:
        out = {"id": r["id"], "error": "cannot score " + r["item"]}
    else:
        out = {"id": r["id"], "nll": 0.1 * len(c) + 0.001 * len(x) + 1 / 3, "ntok": len(c.split())}
    print(json.dumps(out), flush=True)
PY
score_lines() { grep -c '"item"' "$1" || true; }
check_cache() { # every line is JSON with a 16-hex "b"; prints the number of score lines
    python3 - "$1" <<'PY' || fail "cache file $1 is not well-formed JSON lines"
import json, re, sys
n = 0
for i, l in enumerate(open(sys.argv[1], encoding="utf-8"), 1):
    assert l.endswith("\n"), f"line {i} not terminated"
    d = json.loads(l)
    assert re.fullmatch(r"[0-9a-f]{16}", d["b"]), d
    if "item" in d:
        float.fromhex(d["nll"]); n += 1
print(n)
PY
}

# ---- 1. a rerun is answered from the cache, byte for byte ---------------------------------------
"$BIN/s2s-score" --lm ngram:w.arpa -o a items.jsonl > /dev/null 2> a1.err || fail "first run"
[ "$(check_cache a/scores.cache.jsonl)" = 240 ] || fail "cache lines: $(check_cache a/scores.cache.jsonl), want 240"
grep -q "candidate scores from" a1.err && fail "first run claims cache hits: $(cat a1.err)"
cp a/report.json a1.report.json && cp a/pairs.jsonl a1.pairs.jsonl
"$BIN/s2s-score" --lm ngram:w.arpa -o a items.jsonl > /dev/null 2> a2.err || fail "rerun"
grep -q "240 of 240 candidate scores from a/scores.cache.jsonl, 0 asked" a2.err \
    || fail "rerun not answered from the cache: $(cat a2.err)"
cmp a/report.json a1.report.json || fail "report from the cache differs"
cmp a/pairs.jsonl a1.pairs.jsonl || fail "pairs from the cache differ"
[ "$(check_cache a/scores.cache.jsonl)" = 240 ] || fail "a rerun appended cached answers again"
"$BIN/s2s-score" --lm ngram:w.arpa --no-cache -o n items.jsonl > /dev/null 2>&1 || fail "--no-cache"
[ ! -e n/scores.cache.jsonl ] || fail "--no-cache wrote a cache"
cmp n/report.json a1.report.json || fail "--no-cache report differs"
grep -qi cache a/report.json && fail "report.json mentions the cache"

# ---- 2. what must not be reused ------------------------------------------------------------------
# another model file behind the same spec
head -n 40 items.jsonl | "$BIN/s2s-lm" text 2>/dev/null | "$BIN/s2s-lm" train --order 2 -o w.arpa \
    2>/dev/null || fail "retrain"
"$BIN/s2s-score" --lm ngram:w.arpa -o a items.jsonl > /dev/null 2> a3.err || fail "new model"
grep -q "candidate scores from" a3.err && fail "a new model file reused cached scores: $(cat a3.err)"
cmp -s a/report.json a1.report.json && fail "new model, same report"
[ "$(check_cache a/scores.cache.jsonl)" = 480 ] || fail "new model's answers not appended"
[ "$(grep -c '"backend"' a/scores.cache.jsonl)" = 2 ] || fail "want one declaration per model"
# a changed item: only its two candidates are asked again
python3 -c '
import json, sys
for l in sys.stdin:
    d = json.loads(l)
    if d["id"] == "sstorycloze_000003-1":
        d["context"]["text"] += " Then it rained."
    print(json.dumps(d))' < items.jsonl > items2.jsonl
"$BIN/s2s-score" --lm ngram:w.arpa -o a items2.jsonl > /dev/null 2> a4.err || fail "changed item"
grep -q "238 of 240 candidate scores from" a4.err || fail "changed item: $(cat a4.err)"

# ---- 3. SIGINT in the middle, then a rerun ------------------------------------------------------
W="worker:python3 $T/slow.py 0.01 slow-v1"
"$BIN/s2s-score" --lm "$W" -o clean items.jsonl > /dev/null 2> clean.err || fail "clean worker run: $(cat clean.err)"
python3 -c '
import json
m = json.load(open("clean/report.json"))["modes"]["t2t"]
assert m["failed"] == 1 and m["failure_examples"] == ["sstorycloze_000007-2: candidate 1: worker: cannot score sstorycloze_000007-2"], m' \
    || fail "the refused candidate is not a failed pair"
[ "$(check_cache clean/scores.cache.jsonl)" = 239 ] || fail "a failed reply was cached"
wait_lines() { # wait_lines FILE N: until FILE holds N score lines (10 s at most)
    for _ in $(seq 200); do
        [ -e "$1" ] && [ "$(score_lines "$1")" -ge "$2" ] && return 0
        sleep 0.05
    done
    fail "$1 did not reach $2 lines"
}
"$BIN/s2s-score" --lm "$W" -o int items.jsonl > /dev/null 2> int1.err &
bgpid=$!
wait_lines int/scores.cache.jsonl 20
kill -INT $bgpid
set +e; wait $bgpid; rc=$?; set -e
bgpid=
[ "$rc" = 130 ] || fail "SIGINT: exit $rc, want 130 ($(cat int1.err))"
[ ! -e int/report.json ] && [ ! -e int/pairs.jsonl ] || fail "SIGINT: outputs written"
grep -q "rerun the same command to resume" int1.err || fail "SIGINT: no resume hint: $(cat int1.err)"
n1=$(check_cache int/scores.cache.jsonl)
[ "$n1" -ge 20 ] && [ "$n1" -lt 239 ] || fail "SIGINT: $n1 cached scores, want between 20 and 238"
"$BIN/s2s-score" --lm "$W" -o int items.jsonl > /dev/null 2> int2.err || fail "rerun after SIGINT"
grep -q "^s2s-score: $n1 of 240 candidate scores from int/scores.cache.jsonl, $((240 - n1)) asked" int2.err \
    || fail "rerun after SIGINT did not ask only the missing: $(cat int2.err)"
cmp int/report.json clean/report.json || fail "report after SIGINT + rerun differs"
cmp int/pairs.jsonl clean/pairs.jsonl || fail "pairs after SIGINT + rerun differ"

# ---- 4. SIGKILL, a torn last line, then a rerun -------------------------------------------------
"$BIN/s2s-score" --lm "$W" -o kil items.jsonl > /dev/null 2>&1 &
bgpid=$!
wait_lines kil/scores.cache.jsonl 70
kill -9 $bgpid
wait $bgpid 2>/dev/null || true
bgpid=
sleep 0.2 # the orphaned worker sees EOF and exits
printf '{"b":"0123456789abcdef","item":"sstorycl' >> kil/scores.cache.jsonl
"$BIN/s2s-score" --lm "$W" -o kil items.jsonl > /dev/null 2> kil.err || fail "rerun after SIGKILL: $(cat kil.err)"
grep -q "kil/scores.cache.jsonl:[0-9]*: torn last line" kil.err || fail "torn line not noted: $(cat kil.err)"
grep -q "candidate scores from kil/scores.cache.jsonl" kil.err || fail "nothing from the cache after SIGKILL"
cmp kil/report.json clean/report.json || fail "report after SIGKILL + rerun differs"
[ "$(check_cache kil/scores.cache.jsonl)" = 239 ] || fail "cache after SIGKILL + rerun"

# ---- 5. a malformed line inside the cache --------------------------------------------------------
mkdir bad
sed '3s/.*/{"b":"not a cache line"}/' clean/scores.cache.jsonl > bad/scores.cache.jsonl
set +e
"$BIN/s2s-score" --lm "$W" -o bad items.jsonl > /dev/null 2> bad.err; rc=$?
set -e
[ "$rc" = 1 ] || fail "malformed cache line: exit $rc, want 1"
grep -q "bad/scores.cache.jsonl:3:" bad.err || fail "malformed cache line not named: $(cat bad.err)"
[ ! -e bad/report.json ] || fail "report written despite a malformed cache"

# ---- 6. two runs on one DIR ----------------------------------------------------------------------
"$BIN/s2s-score" --lm "worker:python3 $T/slow.py 0.05 slow-v2" -o lk items.jsonl > /dev/null 2>&1 &
bgpid=$!
for _ in $(seq 100); do [ -e lk/scores.cache.jsonl ] && break; sleep 0.05; done
sleep 0.2
set +e
"$BIN/s2s-score" --lm "worker:python3 $T/slow.py 0.05 slow-v2" -o lk items.jsonl > /dev/null 2> lk.err
rc=$?
set -e
kill -INT $bgpid
wait $bgpid 2>/dev/null || true
bgpid=
[ "$rc" = 3 ] && grep -q "in use by another s2s-score" lk.err || fail "second run on one DIR: exit $rc: $(cat lk.err)"

# ---- 7. model identity of workers ----------------------------------------------------------------
head -n 5 items.jsonl > five.jsonl
"$BIN/s2s-score" --lm "worker:python3 $T/slow.py 0 ''" -o noid five.jsonl > /dev/null 2> noid.err \
    || fail "worker without a model_id"
grep -q "announced no model_id" noid.err || fail "no warning for a worker without model_id"
"$BIN/s2s-score" --lm "worker:python3 $T/slow.py 0 ''" --model-id ckpt-100 -o noid five.jsonl \
    > /dev/null 2> noid2.err || fail "--model-id"
grep -q "announced no model_id\|candidate scores from" noid2.err && fail "--model-id: $(cat noid2.err)"
python3 -c '
import json; r = json.load(open("noid/report.json"))["run"]
assert r["model_id"] == "ckpt-100" and r["model_sha256"] == "", r' || fail "run.model_id"
"$BIN/s2s-score" --lm "worker:python3 $T/slow.py 0 ''" --model-id ckpt-100 -o noid five.jsonl \
    > /dev/null 2> noid3.err || fail "--model-id rerun"
grep -q "10 of 10 candidate scores from" noid3.err || fail "--model-id rerun not cached: $(cat noid3.err)"

# ---- 8. audio: the bytes handed to the worker are part of the key, not the temporary paths -----
FW=$SRC/tests/workers/fault_worker.py
if [ -r "$FW" ]; then
    mkaudio() { # mkaudio OUT.tar FLIP: items of five.jsonl with a ctx.wav each; FLIP changes one
        python3 - "$1" "$2" <<'PY'
import io, json, struct, sys, tarfile, wave
out, flip = sys.argv[1], sys.argv[2] == "1"
with tarfile.open(out, "w", format=tarfile.USTAR_FORMAT) as tf:
    def add(name, data):
        ti = tarfile.TarInfo(name); ti.size = len(data); ti.mtime = 0
        tf.addfile(ti, io.BytesIO(data))
    for i, l in enumerate(open("five.jsonl")):
        it = json.loads(l)
        b = io.BytesIO()
        with wave.open(b, "wb") as w:
            w.setnchannels(1); w.setsampwidth(2); w.setframerate(16000)
            w.writeframes(struct.pack("<160h", *[(k * 37 + i + (flip and i == 3)) % 2000 for k in range(160)]))
        add(it["id"] + ".json", json.dumps(it).encode())
        add(it["id"] + ".ctx.wav", b.getvalue())
PY
    }
    mkaudio au1.tar 0 && mkaudio au2.tar 1 || fail "audio items"
    "$BIN/s2s-score" --mode s2t --lm "worker:python3 $FW ok" -o au au1.tar > /dev/null 2>&1 || fail "s2t run"
    "$BIN/s2s-score" --mode s2t --lm "worker:python3 $FW ok" -o au au1.tar > /dev/null 2> au1.err || fail "s2t rerun"
    grep -q "10 of 10 candidate scores from" au1.err || fail "s2t rerun not from the cache: $(cat au1.err)"
    "$BIN/s2s-score" --mode s2t --lm "worker:python3 $FW ok" -o au au2.tar > /dev/null 2> au2.err || fail "s2t, one wav changed"
    grep -q "8 of 10 candidate scores from" au2.err || fail "a changed ctx.wav reused its scores: $(cat au2.err)"
fi

# ---- 9. progress (rate, ETA) on stderr only when it is a terminal --------------------------------
grep -q "ETA\|items/s\|/s," a1.err && fail "progress written to a non-terminal stderr"
if command -v script > /dev/null; then
    env -u S2S_NO_PROGRESS script -qec "$BIN/s2s-score --lm 'worker:python3 $T/slow.py 0.002 slow-v3' -o prog items.jsonl > /dev/null" \
        /dev/null > prog.tty 2>&1 || fail "run under a terminal: $(cat prog.tty)"
    tr '\r' '\n' < prog.tty | grep -q "^s2s-score: [0-9]*/120 items ([0-9]*%), [0-9.]*/s, ETA [0-9]" \
        || fail "no progress with rate and ETA on a terminal: $(tr '\r' '\n' < prog.tty | head -5)"
fi
echo "score_resume.sh: ok"

#!/usr/bin/env bash
# s2s-synth on real text: equality with the espeak-ng CLI, WAV/JSON checked by independent
# readers (python3 wave/tarfile, soxi), plausible durations, trim/normalize, determinism across
# runs and -j, and every bad-input case (exit status, message, nothing partial left behind).
set -euo pipefail
: "${S2S_BIN:?}" "${S2S_SRC:?}"
SYNTH="$S2S_BIN/s2s-synth"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$T"
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }

# ---- items written here (JSON lines) ---------------------------------------------------------
# t_amp has '<' and '&': plain text for us and for the CLI without -m (never SSML). ('[[' is
# text for us but phoneme input for the CLI, which passes espeakPHONEMES: docs/synth.md.)
cat > items.jsonl <<'EOF'
{"id":"t_amp","task":"cloze","lang":"en","context":{"text":"Tom & Jerry met at 5 <b>pm</b> near the old bridge. They talked for hours."},"candidates":[{"text":"They became friends.","label":1},{"text":"The bridge ate them.","label":0}]}
{"id":"t_zh","task":"cloze","lang":"zh","context":{"text":"今天天气很好，我们一起去公园散步。"},"candidates":[{"text":"我们玩得很开心。","label":1},{"text":"公园飞到了月亮上。","label":0}]}
{"id":"t_len1","task":"cloze","lang":"en","context":{"text":"Karen was assigned a roommate."},"candidates":[{"text":"She was glad.","label":1},{"text":"She was a cloud.","label":0}]}
{"id":"t_len2","task":"cloze","lang":"en","context":{"text":"Karen was assigned a roommate. They did not know each other at all before the first day of college."},"candidates":[{"text":"She was glad.","label":1},{"text":"She was a cloud.","label":0}]}
{"id":"t_len3","task":"cloze","lang":"en","context":{"text":"Karen was assigned a roommate. They did not know each other at all before the first day of college. Their first meeting went really well, and they talked late into the night about music, books and their families back home."},"candidates":[{"text":"She was glad.","label":1},{"text":"She was a cloud.","label":0}]}
{"id":"t_choice","task":"choice","lang":"zh","context":{"text":"下面哪种动物会飞？"},"candidates":[{"text":"麻雀","label":1},{"text":"乌龟","label":0},{"text":"金鱼","label":0},{"text":"大象","label":0}]}
EOF

"$SYNTH" -q --rate 160 items.jsonl -o out.tar || fail "s2s-synth failed"
[ -s out.tar ] || fail "no output"

# ---- structure, WAV format and audio fields, read with python3 tarfile/wave ------------------
python3 - out.tar <<'EOF' || fail "stream structure"
import io, json, sys, tarfile, wave
names = []
items = {}
with tarfile.open(sys.argv[1], "r|") as tf:   # streaming mode, as WebDataset reads
    for m in tf:
        names.append(m.name)
        d = tf.extractfile(m).read()
        if m.name.endswith(".json"):
            items[m.name[:-5]] = json.loads(d)
        else:
            assert m.name.endswith(".wav"), m.name
            assert d[:4] == b"RIFF" and d[8:16] == b"WAVEfmt " and d[36:40] == b"data", m.name
            assert int.from_bytes(d[40:44], "little") == len(d) - 44, "canonical 44-byte header"
            w = wave.open(io.BytesIO(d))
            assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 22050), m.name
            key, part = m.name.split(".")[0], m.name.split(".")[1]
            items.setdefault("_n", {})[(key, part)] = w.getnframes()
expect = []
for k in ["t_amp", "t_zh", "t_len1", "t_len2", "t_len3", "t_choice"]:
    nc = 4 if k == "t_choice" else 2
    expect += [k + ".json", k + ".ctx.wav"] + ["%s.c%d.wav" % (k, i) for i in range(nc)]
assert names == expect, names
for k, it in items.items():
    if k == "_n": continue
    a = it["audio"]
    for f in ("rate", "format", "voice", "speed", "pitch", "seed", "durations", "samples", "clipped"):
        assert f in a, (k, f)
    assert a["rate"] == 22050 and a["format"] == "wav" and a["speed"] == 160 and a["pitch"] == 50
    assert a["voice"] == ("cmn" if it["lang"] == "zh" else "en-us"), (k, a["voice"])
    for part, n in a["samples"].items():
        assert items["_n"][(k, part)] == n, (k, part)
        assert abs(a["durations"][part] - n / 22050) < 1e-9
    assert it["provenance"][-1]["tool"] == "s2s-synth"
    assert "candidates" in it and "context" in it  # the item travels whole
print("structure ok")
EOF
ok "tar members, WAV headers (python wave), audio object"
if command -v soxi >/dev/null; then
  tar xf out.tar t_zh.ctx.wav
  [ "$(soxi -r t_zh.ctx.wav)" = 22050 ] && [ "$(soxi -c t_zh.ctx.wav)" = 1 ] &&
    [ "$(soxi -b t_zh.ctx.wav)" = 16 ] || fail "soxi disagrees on t_zh.ctx.wav"
  ok "soxi reads 22050 Hz mono 16-bit"
fi

# ---- equality with the espeak-ng CLI: same samples, and here even the same bytes --------------
tar xf out.tar t_amp.ctx.wav t_zh.ctx.wav
espeak-ng -v en-us -s 160 -w cli_amp.wav "$(python3 -c 'import json;print([json.loads(l) for l in open("items.jsonl")][0]["context"]["text"])')"
espeak-ng -v cmn -s 160 -w cli_zh.wav "今天天气很好，我们一起去公园散步。"
python3 - <<'EOF' || fail "context audio differs from the espeak-ng CLI"
import wave
for ours, cli in (("t_amp.ctx.wav", "cli_amp.wav"), ("t_zh.ctx.wav", "cli_zh.wav")):
    a, b = wave.open(ours), wave.open(cli)
    assert a.getparams()[:3] == b.getparams()[:3], (ours, a.getparams(), b.getparams())
    fa, fb = a.readframes(a.getnframes()), b.readframes(b.getnframes())
    assert len(fa) == len(fb), (ours, len(fa), len(fb))
    assert fa == fb, ours + ": samples differ"
print("cli equal")
EOF
cmp -s t_amp.ctx.wav cli_amp.wav || fail "t_amp.ctx.wav: same samples but not the same bytes as the CLI's WAV"
ok "context audio equals espeak-ng -v VOICE -s 160 -w, sample for sample (en-us with < and &, cmn)"

# ---- durations plausible: monotone in text length, words per second in a sane band -----------
python3 - out.tar <<'EOF' || fail "durations"
import json, sys, tarfile
it = {}
with tarfile.open(sys.argv[1]) as tf:
    for m in tf:
        if m.name.endswith(".json"):
            j = json.loads(tf.extractfile(m).read()); it[j["id"]] = j
d = [it[k]["audio"]["durations"]["ctx"] for k in ("t_len1", "t_len2", "t_len3")]
assert d[0] < d[1] < d[2], d
for k in ("t_len1", "t_len2", "t_len3", "t_amp"):
    words = len(it[k]["context"]["text"].split())
    wps = words / it[k]["audio"]["durations"]["ctx"]
    assert 1.5 <= wps <= 4.5, (k, wps)        # 160 wpm = 2.7 words/s, minus pauses
zh = it["t_zh"]; chars = sum(1 for c in zh["context"]["text"] if "\u4e00" <= c <= "\u9fff")
cps = chars / zh["audio"]["durations"]["ctx"]
assert 1.5 <= cps <= 8, cps
print("durations", d)
EOF
ok "durations monotone in length, en 1.5-4.5 words/s, zh 1.5-8 chars/s"

# ---- determinism: two runs, -j1 vs -j2/-j3, several voices ------------------------------------
"$SYNTH" -q --rate 160 items.jsonl -o again.tar
cmp -s out.tar again.tar || fail "two runs differ"
"$SYNTH" -q --rate 160 -j2 items.jsonl > j2.tar
cmp -s out.tar j2.tar || fail "-j1 and -j2 differ"
"$SYNTH" -q --voices en-us,en-us+f3,cmn --seed 5 -j1 items.jsonl -o v1.tar
"$SYNTH" -q --voices en-us,en-us+f3,cmn --seed 5 -j3 < items.jsonl > v3.tar
cmp -s v1.tar v3.tar || fail "--voices: -j1 and -j3 differ"
python3 - v1.tar <<'EOF' || fail "--voices spread"
import json, sys, tarfile
with tarfile.open(sys.argv[1]) as tf:
    v = [json.loads(tf.extractfile(m).read())["audio"]["voice"] for m in tf if m.name.endswith(".json")]
assert len(set(v)) >= 2 and set(v) <= {"en-us", "en-us+f3", "cmn"}, v
EOF
"$SYNTH" -q --voices en-us,en-us+f3,cmn --seed 6 items.jsonl -o v6.tar
cmp -s v1.tar v6.tar && fail "--seed does not change the voice choice"
ok "byte-identical: two runs, -j1/-j2, --voices with -j1/-j3; --seed matters"

# ---- --shard: the parts cover every item once, and an item's audio does not depend on the split
"$SYNTH" -q --rate 160 --shard 0/2 items.jsonl -o s0.tar
"$SYNTH" -q --rate 160 --shard 1/2 -j2 items.jsonl -o s1.tar
python3 - out.tar s0.tar s1.tar <<'EOF' || fail "--shard"
import sys, tarfile
def members(p):
    with tarfile.open(p) as tf:
        return {m.name: tf.extractfile(m).read() for m in tf}
full, a, b = (members(p) for p in sys.argv[1:])
assert a and b and not (a.keys() & b.keys()), "parts overlap or one is empty"
assert set(full) == a.keys() | b.keys(), "parts do not cover the input"
for k, v in list(a.items()) + list(b.items()):
    if k.endswith(".wav"):
        assert full[k] == v, k + " differs between the full run and its shard"
EOF
ok "--shard 0/2 + 1/2 cover every item once; audio identical to the unsharded run"

# ---- parts ------------------------------------------------------------------------------------
"$SYNTH" -q --parts ctx items.jsonl | tar t > ctx.lst
grep -q 'c0.wav' ctx.lst && fail "--parts ctx wrote candidates"
[ "$(grep -c 'ctx.wav' ctx.lst)" = 6 ] || fail "--parts ctx: not 6 contexts"
"$SYNTH" -q --parts candidates items.jsonl | tar t > cand.lst
grep -q 'ctx.wav' cand.lst && fail "--parts candidates wrote a context"
[ "$(grep -c '\.c[0-9]\.wav' cand.lst)" = 14 ] || fail "--parts candidates: not 14 candidates"
ok "--parts ctx / candidates"
# a tar stream in (re-synthesis): old speech members are replaced or dropped, other fields kept
"$SYNTH" -q --parts ctx --voice en-us+f3 out.tar | tar t > re.lst
grep -q 'c0.wav' re.lst && fail "re-synthesis kept stale candidate audio"
[ "$(grep -c 'ctx.wav' re.lst)" = 6 ] || fail "re-synthesis from a tar stream: not 6 contexts"
"$SYNTH" -q --parts ctx --voice en-us+f3 out.tar | tar xO t_len1.json | python3 -c '
import json, sys
j = json.load(sys.stdin)
assert j["audio"]["voice"] == "en-us+f3" and list(j["audio"]["samples"]) == ["ctx"], j["audio"]
assert [p["tool"] for p in j["provenance"]] == ["s2s-synth", "s2s-synth"], j["provenance"]' ||
  fail "re-synthesis: audio object or provenance wrong"
ok "tar input: re-synthesis replaces the audio, drops stale members, appends provenance"

# ---- trim and normalize ----------------------------------------------------------------------
head -1 items.jsonl > one.jsonl
"$SYNTH" -q --trim --parts ctx one.jsonl -o trim.tar
"$SYNTH" -q --normalize --parts ctx one.jsonl -o norm.tar
tar xOf out.tar t_amp.ctx.wav > plain.wav   # rate 160 in out.tar: speak one at 175 instead
"$SYNTH" -q --parts ctx one.jsonl | tar xO t_amp.ctx.wav > plain.wav
tar xOf trim.tar t_amp.ctx.wav > trim.wav
tar xOf norm.tar t_amp.ctx.wav > norm.wav
python3 - <<'EOF' || fail "trim/normalize"
import array, wave
def pcm(p):
    w = wave.open(p); a = array.array("h"); a.frombytes(w.readframes(w.getnframes())); return a
p, t, n = pcm("plain.wav"), pcm("trim.wav"), pcm("norm.wav")
assert len(t) < len(p), (len(t), len(p))
# the kept part is an exact slice of the original and holds every sample above the threshold
loud = [i for i, x in enumerate(p) if abs(x) > 100]
first, last = loud[0], loud[-1]
pad = 22050 * 10 // 1000
a = max(0, first - pad)
assert list(t) == list(p[a:a + len(t)]), "trimmed audio is not a slice of the original"
assert a + len(t) == min(len(p), last + pad + 1), (a, len(t), last)
assert len(p) - len(t) > 0.2 * 22050, "espeak-ng's end pause (>0.2 s) should be cut"
assert max(abs(x) for x in n) == 29204, max(abs(x) for x in n)
assert len(n) == len(p)
print("trim kept", len(t), "of", len(p))
EOF
python3 -c "
import json,tarfile
tf=tarfile.open('trim.tar'); a=json.loads(tf.extractfile('t_amp.json').read())['audio']; assert a['trim'] is True, a
tf=tarfile.open('norm.tar'); a=json.loads(tf.extractfile('t_amp.json').read())['audio']; assert a['normalize'] is True and 'gains' in a, a
" || fail "trim/normalize not recorded in ID.json"
ok "--trim cuts silence only (exact slice, speech intact); --normalize peak -1 dBFS; both recorded"

# ---- voices: list, unknown names with close matches ------------------------------------------
"$SYNTH" --list-voices > voices.txt
grep -q $'^cmn\t' voices.txt && grep -q $'^en-us\t' voices.txt && grep -q $'^+f3\t' voices.txt ||
  fail "--list-voices misses cmn, en-us or +f3"
set +e
"$SYNTH" --voice en-uss items.jsonl > /dev/null 2> err.txt; rc=$?
set -e
[ $rc = 2 ] || fail "unknown voice: exit $rc, want 2"
grep -q 'unknown voice "en-uss".*en-us' err.txt || fail "unknown voice: no close match: $(cat err.txt)"
set +e
"$SYNTH" --voice en-us+f33 items.jsonl > /dev/null 2> err.txt; rc=$?
set -e
[ $rc = 2 ] && grep -q '+f3' err.txt || fail "unknown variant: exit $rc $(cat err.txt)"
ok "--list-voices; unknown voice/variant -> exit 2 with close matches"

# ---- bad input: each case stops with "item ID: why", exit 1, nothing partial ---------------
good='{"id":"g1","task":"cloze","lang":"en","context":{"text":"A good story."},"candidates":[{"text":"Yes.","label":1},{"text":"No.","label":0}]}'
good2='{"id":"g2","task":"cloze","lang":"en","context":{"text":"Another good story."},"candidates":[{"text":"Yes.","label":1},{"text":"No.","label":0}]}'
printf '%s\n' "$good" '{"id":"b_empty","task":"cloze","lang":"en","context":{"text":""},"candidates":[{"text":"Yes.","label":1},{"text":"No.","label":0}]}' "$good2" > bad_empty.jsonl
printf '%s\n' "$good" '{"id":"b_ws","task":"cloze","lang":"en","context":{"text":" \t\u3000\u00a0 "},"candidates":[{"text":"Yes.","label":1},{"text":"No.","label":0}]}' "$good2" > bad_ws.jsonl
printf '%s\n' "$good" '{"id":"b_ws_cand","task":"cloze","lang":"en","context":{"text":"Fine."},"candidates":[{"text":"Yes.","label":1},{"text":"  ","label":0}]}' "$good2" > bad_wscand.jsonl
{ printf '%s\n' "$good"; printf '{"id":"b_utf8","task":"cloze","lang":"en","context":{"text":"caf\xe9 latin-1"},"candidates":[{"text":"Yes.","label":1},{"text":"No.","label":0}]}\n'; printf '%s\n' "$good2"; } > bad_utf8.jsonl
printf '%s\n' "$good" '{"id":"b_lang","task":"cloze","lang":"xx","context":{"text":"Hello there."},"candidates":[{"text":"Yes.","label":1},{"text":"No.","label":0}]}' "$good2" > bad_lang.jsonl
check_bad() { # file, regex of the message
  local f=$1 re=$2 rc
  for j in 1 2; do
    mkdir -p "o_$f"
    set +e
    "$SYNTH" -q -j$j "$f" -o "o_$f/out.tar" 2> err.txt; rc=$?
    set -e
    [ $rc = 1 ] || fail "$f -j$j: exit $rc, want 1 ($(cat err.txt))"
    grep -Eq "$re" err.txt || fail "$f -j$j: message '$(cat err.txt)' does not match /$re/"
    [ -z "$(ls -A "o_$f")" ] || fail "$f -j$j: partial output left: $(ls -A "o_$f")"
    rm -rf "o_$f"
  done
  # on stdout: the stream has no end-of-archive marker, so a reader sees it is truncated
  set +e
  "$SYNTH" -q "$f" > stream.tar 2> /dev/null
  set -e
  set +e
  "$SYNTH" -q stream.tar > /dev/null 2> err2.txt; rc=$?
  set -e
  [ $rc = 1 ] && grep -Eq 'no end-of-archive marker|empty input' err2.txt ||
    fail "$f: the stdout stream of a failed run reads as complete ($rc: $(cat err2.txt))"
  # --skip-bad: the two good items, the bad one reported and counted
  "$SYNTH" --skip-bad "$f" -o skip.tar 2> err.txt || fail "$f --skip-bad failed: $(cat err.txt)"
  [ "$(tar tf skip.tar | grep -c '\.json$')" = 2 ] || fail "$f --skip-bad: not 2 items"
  grep -q 'skipped: ' err.txt && grep -q '1 bad items skipped' err.txt || fail "$f --skip-bad: not reported: $(cat err.txt)"
  ok "bad input $f: exit 1, message, nothing partial; --skip-bad counts it"
}
check_bad bad_empty.jsonl 'b_empty.*empty'
check_bad bad_ws.jsonl 'item b_ws: context text is only whitespace'
check_bad bad_wscand.jsonl 'item b_ws_cand: candidate 1.*(empty|only whitespace)'
check_bad bad_utf8.jsonl 'bad_utf8.jsonl:2:.*(UTF-8|decode byte 0xe9)'
check_bad bad_lang.jsonl 'item b_lang: language "xx" has no espeak-ng voice'

# ---- engine reset by snapshot (default) vs a fresh fork per item: same bytes on real items ----
SC="${S2S_SHARED:-}/corpora/storycloze_spring2016/cloze_test_val__spring2016.csv"
CM="${S2S_SHARED:-}/corpora/cmmlu/test/agronomy.csv"
if [ -f "$SC" ] && [ -f "$CM" ]; then
  python3 - "$SC" "$CM" <<'EOF'
import csv, json, sys
rows = list(csv.DictReader(open(sys.argv[1], encoding="utf-8")))
zh = list(csv.DictReader(open(sys.argv[2], encoding="utf-8")))
items = []
for i, r in enumerate(rows[100:132]):
    ends = [r["RandomFifthSentenceQuiz1"], r["RandomFifthSentenceQuiz2"]]
    items.append({"id": "r_sc%03d" % i, "task": "cloze", "lang": "en",
                  "context": {"text": " ".join(r["InputSentence%d" % k] for k in range(1, 5))},
                  "candidates": [{"text": e, "label": int(int(r["AnswerRightEnding"]) == k + 1)}
                                 for k, e in enumerate(ends)]})
for i, r in enumerate(zh[:8]):
    items.insert(4 * i + 1, {"id": "r_zh%03d" % i, "task": "choice", "lang": "zh",
                             "context": {"text": r["Question"]},
                             "candidates": [{"text": r[c] or "空", "label": int(r["Answer"] == c)}
                                            for c in "ABCD"]})
with open("real.jsonl", "w", encoding="utf-8") as f:
    for it in items:
        f.write(json.dumps(it, ensure_ascii=False) + "\n")
EOF
  [ "$(wc -l < real.jsonl)" = 40 ] || fail "real.jsonl: not 40 items"
  "$SYNTH" -j2 real.jsonl -o snap.tar 2> snap.err || fail "snapshot run failed: $(cat snap.err)"
  grep -q 'engine reset per item: 40 by restoring a snapshot, 0 by a fresh fork' snap.err ||
    fail "the default run did not reset by snapshot: $(cat snap.err)"
  "$SYNTH" --reset fork real.jsonl -o fork.tar 2> fork.err || fail "fork run failed"
  grep -q '0 by restoring a snapshot, 40 by a fresh fork' fork.err || fail "--reset fork: $(cat fork.err)"
  cmp -s snap.tar fork.tar || fail "--reset snapshot and --reset fork differ on 40 real items"
  # noise voices draw from rand(): srand(1) before each item must give the fresh fork's bytes
  v="--voices en-us+whisper,en-us+klatt4,en-us+f3,cmn --seed 1"
  "$SYNTH" -q -j2 $v real.jsonl -o snapv.tar
  "$SYNTH" -q --reset fork $v real.jsonl -o forkv.tar
  cmp -s snapv.tar forkv.tar || fail "--voices with whisper/klatt: snapshot and fork differ"
  ok "40 real items (StoryCloze val, CMMLU): snapshot workers (-j2) = a fresh fork per item, byte for byte (also +whisper/+klatt4/+f3/cmn)"
fi

# ---- a synthesis worker killed in the middle of a run ------------------------------------------
# The parent reads every worker's pipe as audio arrives (libs2s/synth.c, "reading results"): a
# worker that dies (here SIGKILL) must fail the item it owed with a clear message, the run must
# exit non-zero, and -o must not appear. Workers keep the tool's name (pgrep -x finds them).
python3 - > many.jsonl <<'EOF'
import json
t = ("Karen was assigned a roommate. They did not know each other at all before the first day "
     "of college. Their first meeting went really well, and they talked late into the night.")
for i in range(600):
    print(json.dumps({"id": "k%04d" % i, "task": "cloze", "lang": "en", "context": {"text": t},
                      "candidates": [{"text": "She was glad.", "label": 1},
                                     {"text": "She was a cloud %d." % i, "label": 0}]}))
EOF
"$SYNTH" -q -j2 many.jsonl -o killed.tar 2> killed.err &
spid=$!
w=
for _ in $(seq 100); do
  w=$(pgrep -x -P "$spid" s2s-synth | head -n 1 || true)
  [ -n "$w" ] && break
  sleep 0.05
done
[ -n "$w" ] || fail "no worker process named s2s-synth under $spid"
sleep 0.3
kill -9 "$w"
st=0
wait "$spid" || st=$?
[ "$st" -ne 0 ] || fail "s2s-synth exited 0 after its worker was killed"
# (which message depends on what the main process was doing: reading the worker's audio, or
# handing it the next item)
grep -Eq 'item k[0-9]*: (synthesis worker died before it finished|the synthesis worker is gone)' killed.err ||
  fail "worker death: unclear message: $(cat killed.err)"
[ ! -e killed.tar ] || fail "worker death: partial output killed.tar left"
if ls killed.tar.tmp-* >/dev/null 2>&1; then fail "worker death: temporary file left"; fi
ok "a worker killed mid-run: exit $st, \"$(head -c 120 killed.err)\", no output left"

# ---- a reader that stalls: the workers' shared rings fill up -----------------------------------
# While the reader of s2s-synth's output sleeps, the main process blocks on its stdout, stops
# reading the workers, and each worker fills its 4 MiB ring (~6 items of audio) and then sends
# frames through its pipe instead (libs2s/synth.c, "ring"): the output must not change.
head -n 150 many.jsonl > stall.jsonl
"$SYNTH" -q -j2 stall.jsonl -o stall-ref.tar
"$SYNTH" -q -j2 stall.jsonl | { sleep 1.5; cat > stall.tar; }
cmp -s stall.tar stall-ref.tar || fail "a stalled reader changed the output (ring full -> pipe)"
ok "a reader stalled for 1.5 s (rings full, frames through the pipes): same bytes"

# ---- the project's sample data, when the importer is built -----------------------------------
if [ -x "$S2S_BIN/s2s-import" ]; then
  "$S2S_BIN/s2s-import" storycloze -q "$S2S_SRC/data/samples-en.csv" -o en_all.jsonl
  "$S2S_BIN/s2s-import" storycloze -q --lang zh --prefix szh "$S2S_SRC/data/samples-zh.csv" -o zh_all.jsonl
  sed -n 1,3p en_all.jsonl > en.jsonl
  sed -n 1,3p zh_all.jsonl > zh.jsonl
  cat en.jsonl zh.jsonl | "$SYNTH" -q -j2 > data.tar
  python3 - data.tar <<'EOF' || fail "sample data"
import json, sys, tarfile
with tarfile.open(sys.argv[1]) as tf:
    js = [json.loads(tf.extractfile(m).read()) for m in tf if m.name.endswith(".json")]
assert len(js) == 6, len(js)
for j in js:
    a = j["audio"]
    assert a["voice"] == ("cmn" if j["lang"] == "zh" else "en-us"), a["voice"]
    assert 3 < a["durations"]["ctx"] < 30, a["durations"]
EOF
  ok "data/samples-en.csv and samples-zh.csv (3 items each) synthesize with en-us and cmn"
fi
echo "all synth tests passed"

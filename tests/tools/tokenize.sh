#!/usr/bin/env bash
# tests/tools/tokenize.sh — s2s-tokenize on real speech: espeak-ng CLI + sox to 16 kHz, packed in
# a tar stream by python tarfile. Training is deterministic, the same sentence gives the same
# units, different sentences differ, -j2 = -j1 byte for byte, frame counts follow Kaldi's
# formula, import (GSLM and JSON lines) attaches exactly the given units, and bad codebooks,
# wrong rates, unknown ids and missing items are errors without output.
set -euo pipefail
BIN=${S2S_BIN:?S2S_BIN not set}
T=$BIN/s2s-tokenize
TMP=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$TMP"' EXIT
cd "$TMP"
fail() {
  echo "tokenize.sh: FAIL: $*" >&2
  exit 1
}
for t in espeak-ng sox python3 sha256sum; do
  command -v $t >/dev/null || fail "needs $t"
done

# complete FILE: a finished tar stream (ends with the end-of-archive marker, 2 zero blocks).
complete() {
  python3 -c "
import sys; b = open(sys.argv[1], 'rb').read()
sys.exit(0 if len(b) >= 1024 and b[-1024:] == bytes(1024) else 1)" "$1"
}
say() { # say NAME VOICE TEXT -> NAME.wav at 16 kHz
  espeak-ng -v "$2" -w "$1.22k.wav" "$3"
  sox -q -R "$1.22k.wav" -r 16000 "$1.wav" # -R: repeatable dither (else runs differ)
}
say a1 en-us "The quick brown fox jumps over the lazy dog near the river bank."
say a2 en-us "The quick brown fox jumps over the lazy dog near the river bank."
say b en-us "She sells sea shells by the sea shore every single morning."
say c en-us+f3 "Karen was assigned a roommate her first year of college."
say d en-gb "Rick grew up in a troubled household and never found good support."
cp a1.22k.wav r22.wav
# 300 samples: shorter than one 400-sample window.
sox -q -n -r 16000 -b 16 -c 1 tiny.wav synth 300s sine 440

# pack OUT ID=ctx.wav[,c0.wav] ...: a tar stream with ID.json and the audio members.
cat > pack.py <<'EOF'
import io, json, sys, tarfile
out = sys.argv[1]
with tarfile.open(out, "w", format=tarfile.USTAR_FORMAT) as t:
    for spec in sys.argv[2:]:
        sid, files = spec.split("=")
        item = {"id": sid, "task": "cloze", "lang": "en", "context": {"text": "ctx " + sid},
                "candidates": [{"text": "right", "label": 1}, {"text": "wrong", "label": 0}]}
        members = [(sid + ".json", json.dumps(item).encode())]
        for i, f in enumerate(files.split(",")):
            stem = "ctx" if i == 0 else "c%d" % (i - 1)
            members.append(("%s.%s.wav" % (sid, stem), open(f, "rb").read()))
        for name, data in members:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
EOF
python3 pack.py train.tar tb=b.wav tc=c.wav td=d.wav ta=a1.wav
python3 pack.py in.tar s1=a1.wav,b.wav s2=a2.wav,c.wav s3=b.wav s4=tiny.wav,d.wav

# ---- train: deterministic, documented header ---------------------------------------------------
"$T" train -k 16 --seed 7 -o cb1 train.tar 2>train.err || fail "train: $(cat train.err)"
"$T" train -k 16 --seed 7 -o cb2 < train.tar 2>/dev/null || fail "train from stdin"
cmp -s cb1 cb2 || fail "same input and seed gave different codebook bytes"
"$T" train -k 16 --seed 7 -j 2 -q -o cbj train.tar || fail "train -j 2"
cmp -s cb1 cbj || fail "train -j 2 gave other codebook bytes than -j 1"
"$T" train -k 16 --seed 8 -o cb3 train.tar 2>/dev/null
cmp -s cb1 cb3 && fail "another seed gave the same codebook"
[ "$(head -c 15 cb1)" = "s2s-codebook 1" ] || fail "codebook magic line"
python3 - cb1 <<'EOF' || fail "codebook header/size"
import hashlib, json, sys
b = open(sys.argv[1], "rb").read()
nl1 = b.index(b"\n"); nl2 = b.index(b"\n", nl1 + 1)
h = json.loads(b[nl1 + 1:nl2])
assert h["k"] == 16 and h["dim"] == 80 and h["features"]["n_mels"] == 80, h
assert h["features"]["hop_samples"] == 160 and h["features"]["frame_samples"] == 400, h
data = b[nl2 + 1:]
assert len(data) == 16 * 80 * 4, len(data)
assert hashlib.sha256(data).hexdigest() == h["data_sha256"]
assert h["train"]["seed"] == 7
EOF

# ---- tokenize --------------------------------------------------------------------------------
"$T" --codebook cb1 in.tar > out1.tar 2>tok.err || fail "tokenize: $(cat tok.err)"
"$T" --codebook cb1 -j 2 -q < in.tar > out2.tar || fail "tokenize -j 2"
cmp -s out1.tar out2.tar || fail "-j 2 output differs from -j 1"
tar tf out1.tar > list.txt || fail "GNU tar cannot read the output"
for m in s1.ctx.units s1.c0.units s2.ctx.units s2.c0.units s3.ctx.units s4.ctx.units s4.c0.units; do
  grep -qx "$m" list.txt || fail "member $m missing"
done
H=$(sha256sum cb1 | cut -d' ' -f1)
python3 - out1.tar "$H" a1.wav b.wav tiny.wav <<'EOF' || fail "units content"
import json, sys, tarfile, wave
t = tarfile.open(sys.argv[1])
get = lambda n: t.extractfile(n).read()
u = {n: get(n).decode() for n in t.getnames() if n.endswith(".units")}
# Same sentence synthesized twice (two espeak-ng runs) -> same units.
assert u["s1.ctx.units"] == u["s2.ctx.units"], "same sentence, different units"
# Different sentences -> different units.
assert u["s1.ctx.units"] != u["s3.ctx.units"], "different sentences, same units"
assert u["s2.c0.units"] != u["s1.c0.units"]
# Raw frames: Kaldi snip-edges count, integers in [0, k), space separated, one newline.
for name, wav in (("s1.ctx.units", sys.argv[3]), ("s3.ctx.units", sys.argv[4])):
    n = wave.open(wav).getnframes()
    toks = u[name].split(" ")
    assert "\n" not in u[name] and "  " not in u[name]
    assert len(toks) == 1 + (n - 400) // 160, (name, len(toks), n)
    assert all(0 <= int(x) < 16 for x in toks)
# Not deduplicated: speech holds runs of equal units.
toks = u["s1.ctx.units"].split()
assert any(a == b for a, b in zip(toks, toks[1:])), "units look deduplicated"
# Shorter than one window: an empty member, recorded as 0 frames.
assert u["s4.ctx.units"] == ""
j = json.loads(get("s4.json"))
assert j["units"]["frames"] == {"ctx": 0, "c0": len(u["s4.c0.units"].split())}, j["units"]
j = json.loads(get("s1.json"))
un = j["units"]
assert un["codebook"] == sys.argv[2], "units.codebook is not the SHA-256 of the file"
assert un["k"] == 16 and un["hop_ms"] == 10 and un["frame_rate"] == 100 and un["dim"] == 80, un
assert j["provenance"][-1]["tool"] == "s2s-tokenize"
assert j["context"]["text"] == "ctx s1"
# Audio members pass through untouched.
assert get("s1.ctx.wav") == open(sys.argv[3], "rb").read()
EOF

# ---- errors: wrong rate, bad codebooks --------------------------------------------------------
python3 pack.py r22.tar x=r22.wav
set +e
"$T" --codebook cb1 r22.tar > r22.out 2> r22.err
rc=$?
set -e
[ $rc -eq 1 ] || fail "22050 Hz audio: exit $rc, want 1"
grep -q "22050 Hz" r22.err && grep -q "s2s-resample --rate 16000" r22.err ||
  fail "wrong-rate message does not tell to resample: $(cat r22.err)"
grep -q "sample x ctx.wav" r22.err || fail "wrong-rate message does not name the sample"
complete r22.out && fail "wrong rate left a complete-looking stream"
"$T" --codebook cb1 --skip-bad -o skipped.tar r22.tar in.tar 2>skip.err || fail "--skip-bad"
complete skipped.tar || fail "--skip-bad output incomplete"
complete out1.tar || fail "tokenize output lacks the end-of-archive marker"
grep -q "skipped: sample x" skip.err || fail "--skip-bad does not report the sample"
grep -q "1 bad samples skipped" skip.err || fail "--skip-bad does not count"

head -c $(($(stat -c %s cb1) - 5)) cb1 > trunc.cb
python3 -c "
import sys; b = bytearray(open('cb1','rb').read()); b[-7] ^= 1; open('flip.cb','wb').write(b)"
printf 'RIFF not a codebook' > junk.cb
for c in trunc.cb:truncated flip.cb:"hash mismatch" junk.cb:"not an s2s codebook" nosuch.cb:"No such file"; do
  f=${c%%:*} want=${c#*:}
  set +e
  "$T" --codebook "$f" in.tar > bad.out 2> bad.err
  rc=$?
  set -e
  [ $rc -ne 0 ] || fail "$f accepted"
  grep -q "$want" bad.err || fail "$f: message lacks '$want': $(cat bad.err)"
  grep -q "$f" bad.err || fail "$f: message does not name the file"
  [ -s bad.out ] && fail "$f: output written"
done
# A codebook whose dimension disagrees with its features: dim edited, hash still fine.
python3 - <<'EOF'
b = open("cb1", "rb").read()
nl1 = b.index(b"\n"); nl2 = b.index(b"\n", nl1 + 1)
h = b[:nl2].replace(b'"dim":80', b'"dim":40')
open("dim.cb", "wb").write(h + b[nl2:])
EOF
set +e
"$T" --codebook dim.cb in.tar > /dev/null 2> dim.err
rc=$?
set -e
[ $rc -eq 1 ] && grep -q "wrong dimension" dim.err || fail "dimension mismatch: exit $rc $(cat dim.err)"

# ---- import ----------------------------------------------------------------------------------
python3 pack.py imp.tar i1=a1.wav,b.wav i2=c.wav
cat > units.txt <<'EOF'
i1|5 5 5 7 1 0 12
/data/wavs/i1.c0.wav|3 3 9
i2.ctx|
EOF
"$T" import units.txt imp.tar > imp.out 2>imp.err || fail "import gslm: $(cat imp.err)"
python3 - imp.out <<'EOF' || fail "imported units"
import json, sys, tarfile
t = tarfile.open(sys.argv[1])
get = lambda n: t.extractfile(n).read().decode()
assert get("i1.ctx.units") == "5 5 5 7 1 0 12", repr(get("i1.ctx.units"))
assert get("i1.c0.units") == "3 3 9"
assert get("i2.ctx.units") == ""
j = json.loads(get("i1.json"))
assert j["units"]["source"] == "import" and j["units"]["format"] == "gslm", j["units"]
assert j["units"]["frames"] == {"c0": 3, "ctx": 7}, j["units"]
EOF
printf '{"id": "i1", "units": [1, 2, 3]}\n{"id": "i1", "member": "c0", "units": []}\n{"id": "i2", "units": [4]}\n' > units.jsonl
"$T" import -q --units-k 10 --name test-km10 units.jsonl imp.tar > imp2.out || fail "import jsonl"
[ "$(tar xOf imp2.out i1.ctx.units)" = "1 2 3" ] || fail "jsonl units"
[ "$(tar xOf imp2.out i2.ctx.units)" = "4" ] || fail "jsonl units i2"
tar xOf imp2.out i1.json | grep -q '"name":"test-km10"' || fail "import --name not recorded"
bad_import() { # FILE WANT
  set +e
  "$T" import "$1" imp.tar > bi.out 2> bi.err
  local rc=$?
  set -e
  [ $rc -eq 1 ] || fail "import $1: exit $rc, want 1"
  grep -q "$2" bi.err || fail "import $1: message lacks '$2': $(cat bi.err)"
  complete bi.out && fail "import $1: a complete-looking output"
  true
}
printf 'i1|1 2\ni2|3\nnobody|4 5\n' > unknown.txt
bad_import unknown.txt "unknown id 'nobody'"
printf 'i1|1 2\n' > missing.txt
bad_import missing.txt "sample i2: no units"
printf 'i1|1 x 2\ni2|3\n' > notint.txt
bad_import notint.txt "notint.txt:1"
printf 'i1|1\ni1.ctx|2\ni2|3\n' > dup.txt
bad_import dup.txt "given twice"
printf 'i1|1 12\ni2|3\n' > big.txt
set +e
"$T" import --units-k 10 big.txt imp.tar > /dev/null 2> big.err
rc=$?
set -e
[ $rc -eq 1 ] && grep -q "unit 12 >= the vocabulary size 10" big.err || fail "--units-k bound: $(cat big.err)"

# ---- an item without audio (JSON lines in): passes unchanged, counted on stderr -------------
printf '{"id":"j1","task":"cloze","lang":"en","context":{"text":"x"},"candidates":[{"text":"a","label":1},{"text":"b","label":0}]}\n' > j.jsonl
"$T" --codebook cb1 j.jsonl > j.tar 2> j.err || fail "JSON lines input"
[ "$(tar xOf j.tar j1.json)" = "$(cat j.jsonl)" ] || fail "item without audio was changed"
grep -q "1 samples have no audio member" j.err || fail "no warning for items without audio"

# ---- usage -----------------------------------------------------------------------------------
"$T" --help | grep -q "s2s-resample --rate 16000" || fail "--help"
"$T" --version | grep -q "s2s-tokenize" || fail "--version"
set +e
"$T" in.tar > /dev/null 2>&1
[ $? -eq 2 ] || fail "missing --codebook: want exit 2"
"$T" train -o x.cb train.tar > /dev/null 2>&1
[ $? -eq 2 ] || fail "train without -k: want exit 2"
"$T" --codebook cb1 -j 0 in.tar > /dev/null 2>&1
[ $? -eq 2 ] || fail "-j 0: want exit 2"
set -e
[ -e x.cb ] && fail "train without -k wrote a codebook"
echo "tokenize.sh: ok"

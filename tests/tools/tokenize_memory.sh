#!/usr/bin/env bash
# Memory and the two input paths of s2s-tokenize on a long member: 20 minutes of 16 kHz speech-
# like noise (38 MB WAV) in one sample. Since 0.2.0 features and units are computed 1024 frames
# at a time and a 16-bit WAV is read in place, so the peak RSS is the member itself plus a
# bounded overhead (0.1.0 held the float samples and every feature too: ~4x the member). Checks
# that peak (member size + 40 MB, against ~140 MB more in 0.1.0; the process starts at ~29 MB,
# mostly shared libraries; not checked under a sanitizer), the frame count, that the same audio
# as FLAC (decoded to float, the other path) gives the same units, and -j 2.
set -euo pipefail
BIN=${S2S_BIN:?S2S_BIN not set}
TK=$BIN/s2s-tokenize
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$T"
fail() { echo "tokenize_memory.sh: FAIL: $*" >&2; exit 1; }
for t in sox soxi python3; do command -v $t >/dev/null || fail "needs $t"; done
MINUTES=20

sox -n -r 16000 -b 16 -c 1 long.wav synth $((MINUTES * 60)) pinknoise tremolo 3 90 vol 0.5
sox long.wav long.flac
cat > mk.py <<'PY'
import io, json, sys, tarfile
item = {"id": "long", "task": "cloze", "lang": "en", "context": {"text": "long"},
        "candidates": [{"text": "a", "label": 1}, {"text": "b", "label": 0}]}
with tarfile.open(sys.argv[1], "w", format=tarfile.USTAR_FORMAT) as t:
    data = json.dumps(item).encode()
    ti = tarfile.TarInfo("long.json"); ti.size = len(data)
    t.addfile(ti, io.BytesIO(data))
    t.add(sys.argv[2], arcname="long.ctx." + sys.argv[2].rsplit(".", 1)[1])
PY
python3 mk.py wav.tar long.wav
python3 mk.py flac.tar long.flac
cat > peak.py <<'PY'
import resource, subprocess, sys
with open(sys.argv[1], "rb") as i, open(sys.argv[2], "wb") as o:
    rc = subprocess.call(sys.argv[3:], stdin=i, stdout=o)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(rc)
PY
"$TK" train -k 16 --seed 1 --max-frames 4000 -o cb wav.tar 2> train.err || fail "train: $(cat train.err)"

kb=$(python3 peak.py wav.tar out.tar "$TK" -q --codebook cb)
wav_kb=$(( $(stat -c %s long.wav) / 1024 ))
limit=$(( wav_kb + 40 * 1024 ))
echo "tokenize_memory.sh: ${MINUTES} min member (${wav_kb} KB WAV): peak RSS ${kb} KB"
# (ldd read whole: grep -q would stop early and, under pipefail, ldd's SIGPIPE failed the test)
if grep -Eq 'lib(a|ub|t)san' <<<"$(ldd "$TK" 2>/dev/null || true)"; then
  echo "tokenize_memory.sh: sanitizer build: RSS bound not checked"
else
  [ "$kb" -lt "$limit" ] || fail "peak RSS ${kb} KB >= member + 40 MB (${limit} KB)"
fi
"$TK" -q --codebook cb flac.tar > outf.tar || fail "FLAC input failed"
"$TK" -q --codebook cb -j 2 wav.tar > outj.tar || fail "-j 2 failed"
cmp -s out.tar outj.tar || fail "-j 2 output differs from -j 1"
python3 - out.tar outf.tar "$(soxi -s long.wav)" <<'PY' || fail "units check failed"
import json, sys, tarfile
def get(p, ext):
    t = tarfile.open(p)
    return t.extractfile("long.ctx.units").read(), json.load(t.extractfile("long.json"))
u, item = get(sys.argv[1], "wav")
uf, itemf = get(sys.argv[2], "flac")
n = int(sys.argv[3])
want = 1 + (n - 400) // 160
units = u.split()
assert len(units) == want, (len(units), want)
assert item["units"]["frames"]["ctx"] == want, item["units"]
assert all(0 <= int(x) < 16 for x in units), "unit out of range"
assert len(set(units)) > 4, "degenerate units"
assert u == uf, "16-bit WAV (read in place) and FLAC (decoded to float) give different units"
PY
echo "tokenize_memory.sh: ok"

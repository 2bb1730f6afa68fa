#!/usr/bin/env bash
# Peak memory of s2s-resample on a long member: 25 minutes of 22.05 kHz audio (66 MB WAV) in a
# tar stream must convert with a peak RSS under 64 MB (before members were streamed through
# temporary files it peaked at ~130 MB: input and output members both in memory). Also checks
# that the spooled path gives the same bytes as the in-memory path (S2S_RESAMPLE_SPILL forces
# either), for WAV and FLAC output and for an attached file, and that a truncated long member
# still fails with no end-of-archive marker. Peak RSS is ru_maxrss of the child (Python's
# resource module); under a sanitizer build the RSS bound is not checked (shadow memory).
set -euo pipefail
BIN=${S2S_BIN:?S2S_BIN not set}
R=$BIN/s2s-resample
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$T"
fail() { echo "memory.sh: FAIL: $*" >&2; exit 1; }
for t in sox soxi python3 tar; do command -v $t >/dev/null || fail "needs $t"; done
LIMIT_KB=$((64 * 1024))
MINUTES=25

# A long member: speech-like noise bursts (not silence: every sample must be computed).
sox -n -r 22050 -b 16 -c 1 long.wav synth $((MINUTES * 60)) pinknoise tremolo 3 90 vol 0.5
cat > mk.py <<'PY'
import json, sys, tarfile
item = {"id": "long", "task": "cloze", "lang": "en", "context": {"text": "long"},
        "candidates": [{"text": "a", "label": 1}, {"text": "b", "label": 0}]}
with tarfile.open(sys.argv[1], "w", format=tarfile.USTAR_FORMAT) as t:
    data = json.dumps(item).encode()
    ti = tarfile.TarInfo("long.json"); ti.size = len(data)
    import io; t.addfile(ti, io.BytesIO(data))
    t.add(sys.argv[2], arcname="long.ctx.wav")
PY
python3 mk.py long.tar long.wav
# peak IN OUT CMD...: runs CMD < IN > OUT and prints its peak RSS in KB
cat > peak.py <<'PY'
import resource, subprocess, sys
with open(sys.argv[1], "rb") as i, open(sys.argv[2], "wb") as o:
    rc = subprocess.call(sys.argv[3:], stdin=i, stdout=o)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(rc)
PY
peak() { python3 peak.py "$@"; }
sanitized=0
# (ldd read whole: grep -q would stop early and, under pipefail, ldd's SIGPIPE failed the test)
if grep -Eq 'lib(a|ub|t)san' <<<"$(ldd "$R" 2>/dev/null || true)"; then sanitized=1; fi

kb=$(peak long.tar out.tar "$R" -q --rate 16000)
n_in=$(soxi -s long.wav)
want=$(( (n_in * 16000 + 11025) / 22050 ))
tar -xOf out.tar long.ctx.wav > out.wav || fail "no long.ctx.wav in the output"
got=$(soxi -s out.wav)
[ "$got" = "$want" ] || fail "output has $got samples, expected round($n_in * 16000 / 22050) = $want"
[ "$(soxi -r out.wav)" = 16000 ] || fail "output rate is not 16000"
python3 - out.tar "$want" <<'PY' || fail "item JSON does not record the output length"
import json, sys, tarfile
t = tarfile.open(sys.argv[1])
item = json.load(t.extractfile("long.json"))
assert item["audio"]["samples"]["ctx"] == int(sys.argv[2]), item["audio"]
PY
echo "memory.sh: s2s-resample, ${MINUTES} min member at 22050 Hz -> 16000 Hz: peak RSS ${kb} KB"
if [ $sanitized = 0 ]; then
  [ "$kb" -lt $LIMIT_KB ] || fail "s2s-resample peak RSS ${kb} KB >= 64 MB on a ${MINUTES}-minute member"
else
  echo "memory.sh: sanitizer build: RSS bound not checked"
fi

# Same bytes through memory and through spool files.
S2S_RESAMPLE_SPILL=999999999999 "$R" -q --rate 16000 < long.tar > mem.tar
cmp -s mem.tar out.tar || fail "spooled and in-memory conversions differ (WAV)"
S2S_RESAMPLE_SPILL=999999999999 "$R" -q --rate 16000 --container flac long.tar > memf.tar
kbf=$(peak /dev/null spf.tar "$R" -q --rate 16000 --container flac long.tar)
cmp -s memf.tar spf.tar || fail "spooled and in-memory conversions differ (FLAC)"
[ $sanitized = 1 ] || [ "$kbf" -lt $LIMIT_KB ] || fail "FLAC output: peak RSS ${kbf} KB >= 64 MB"
# a small member spooled (limit 0) equals the in-memory one too; pass-through of a spooled member
sox -n -r 16000 -b 16 short.wav synth 2 sine 440
python3 mk.py short.tar short.wav
S2S_RESAMPLE_SPILL=0 "$R" -q --rate 16000 short.tar > s0.tar
"$R" -q --rate 16000 short.tar > s1.tar
cmp -s s0.tar s1.tar || fail "pass-through of a spooled member differs from the in-memory one"
tar -xOf s0.tar long.ctx.wav | cmp -s - short.wav || fail "pass-through changed the bytes"
# --attach of a long file
mkdir att && cp long.wav att/long.wav
printf '{"id":"long","task":"cloze","lang":"en","context":{"text":"x"},"candidates":[{"text":"a","label":1},{"text":"b","label":0}]}\n' > items.jsonl
kba=$(peak /dev/null att.tar "$R" -q --rate 16000 --attach att items.jsonl)
S2S_RESAMPLE_SPILL=999999999999 "$R" -q --rate 16000 --attach att items.jsonl > attm.tar
cmp -s att.tar attm.tar || fail "--attach: spooled and in-memory conversions differ"
[ $sanitized = 1 ] || [ "$kba" -lt $LIMIT_KB ] || fail "--attach: peak RSS ${kba} KB >= 64 MB"

# Spool files go to $TMPDIR and are gone afterwards; an unusable TMPDIR is an I/O error (3).
mkdir spool
TMPDIR=$T/spool "$R" -q --rate 16000 long.tar > tmpd.tar
cmp -s tmpd.tar out.tar || fail "TMPDIR=spool changed the output"
[ -z "$(ls -A spool)" ] || fail "temporary files left in TMPDIR: $(ls spool)"
set +e
TMPDIR=$T/missing "$R" -q --rate 16000 long.tar > /dev/null 2> tmpd.err; st=$?
set -e
[ $st = 3 ] || fail "missing TMPDIR: exit $st, expected 3"
grep -q "long.ctx.wav.*temporary file" tmpd.err || fail "missing TMPDIR: message: $(cat tmpd.err)"

# A long member cut short: exit 1, output without the end-of-archive marker.
head -c 60000000 long.tar > cut.tar
set +e
"$R" -q --rate 16000 < cut.tar > cut.out 2> cut.err; st=$?
set -e
[ $st = 1 ] || fail "truncated long member: exit $st, expected 1"
grep -q 'truncated' cut.err || fail "truncated long member: message does not say so: $(cat cut.err)"
if tar -tf cut.out > /dev/null 2>&1 && [ "$(tail -c 1024 cut.out | tr -d '\0' | wc -c)" = 0 ] &&
   [ -s cut.out ]; then
  fail "truncated input gave an output with an end-of-archive marker"
fi
echo "memory.sh: ok (resample ${kb} KB, flac ${kbf} KB, attach ${kba} KB)"

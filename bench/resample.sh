#!/usr/bin/env bash
# bench/resample.sh — s2s-resample (each engine and quality) against sox and ffmpeg, same run.
#
# Speed: MINUTES (default 60) of espeak-ng speech at 22050 Hz -> 16000 Hz, 16-bit WAV out,
# wall and CPU (user+sys) time, median of REPS (default 3) runs; libsamplerate "best" runs once
# (it is ~25x slower than sox). The speed ratio uses CPU time: the cores are shared. Our figure includes reading and writing the tar stream; sox/ffmpeg read and write WAV.
# Quality, on float input and output (no dither, no 16-bit floor), against the exact answer:
#   passband SNR: a 20 -> 7000 Hz linear chirp, 4 s, -6 dBFS, compared with the same chirp
#     computed at 16000 Hz (what a perfect resampler gives);
#   stop-band rejection: a 8500 -> 11000 Hz chirp (all above the new Nyquist): input power over
#     output power.
# Usage: bench/resample.sh [BUILD_DIR]   (env: MINUTES, REPS; SRC_BEST=0 leaves out the slow
# libsamplerate best row). Speech is cached in bench/out/.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$SRC/build}
BIN=$BUILD/bin
M="python3 $SRC/tests/tools/audio_metrics.py"
MINUTES=${MINUTES:-60}
REPS=${REPS:-3}
OUT=$SRC/bench/out/resample
mkdir -p "$OUT"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
for t in sox soxi ffmpeg espeak-ng python3; do
  command -v $t >/dev/null || { echo "bench/resample.sh: needs $t" >&2; exit 3; }
done
[ -x "$BIN/s2s-resample" ] || { echo "bench/resample.sh: build first ($BIN/s2s-resample)" >&2; exit 3; }

# ---- 1. speech: espeak-ng reading StoryCloze stories until MINUTES are full (cached) ----------
speech=$OUT/speech-${MINUTES}min-22050.wav
if [ ! -s "$speech" ]; then
  csv=${S2S_SHARED:-$SRC/../shared}/corpora/storycloze_spring2016/cloze_test_val__spring2016.csv
  python3 - "$csv" "$MINUTES" > "$TMP/text.txt" <<'EOF'
import csv, sys
rows = list(csv.reader(open(sys.argv[1], encoding="utf-8")))[1:]
words, want, out = 0, int(sys.argv[2]) * 175 * 1.15, []   # espeak-ng speaks ~175 words/min
while words < want:
    for r in rows:
        line = " ".join(r[1:5])
        out.append(line)
        words += len(line.split())
        if words >= want:
            break
print("\n".join(out))
EOF
  espeak-ng -v en-us -f "$TMP/text.txt" -w "$TMP/raw.wav"
  sox "$TMP/raw.wav" "$speech.tmp.wav" trim 0 $((MINUTES * 60))
  mv "$speech.tmp.wav" "$speech"
fi
secs=$(soxi -D "$speech")
python3 - "$speech" "$TMP/speech.tar" <<'EOF'
import io, json, sys, tarfile
item = {"id": "speech", "task": "cloze", "lang": "en", "context": {"text": "bench"},
        "candidates": [{"text": "a", "label": 1}, {"text": "b", "label": 0}]}
with tarfile.open(sys.argv[2], "w", format=tarfile.USTAR_FORMAT) as t:
    for name, data in (("speech.json", json.dumps(item).encode()),
                       ("speech.ctx.wav", open(sys.argv[1], "rb").read())):
        ti = tarfile.TarInfo(name); ti.size = len(data); t.addfile(ti, io.BytesIO(data))
EOF

# ---- 2. quality signals ----------------------------------------------------------------------
$M gen sweep "$TMP/pass.wav" 22050 4 20 7000 0.5 f32
$M gen sweep "$TMP/stop.wav" 22050 4 8500 11000 0.5 f32
for s in pass stop; do
  python3 - "$TMP/$s.wav" "$TMP/$s.tar" <<'EOF'
import io, json, sys, tarfile
item = {"id": "q", "task": "cloze", "lang": "en", "context": {"text": "q"},
        "candidates": [{"text": "a", "label": 1}, {"text": "b", "label": 0}]}
with tarfile.open(sys.argv[2], "w", format=tarfile.USTAR_FORMAT) as t:
    for name, data in (("q.json", json.dumps(item).encode()), ("q.ctx.wav", open(sys.argv[1], "rb").read())):
        ti = tarfile.TarInfo(name); ti.size = len(data); t.addfile(ti, io.BytesIO(data))
EOF
done

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
timeit() { # reps cmd... -> "median-wall median-cpu" seconds (cpu = user + sys)
  local reps=$1; shift
  : > "$TMP/times"
  for ((i = 0; i < reps; i++)); do
    local TIMEFORMAT='%R %U %S'
    { time "$@" >/dev/null 2>"$TMP/err"; } 2>> "$TMP/times" ||
      { echo "bench/resample.sh: failed: $*: $(cat "$TMP/err")" >&2; exit 1; }
  done
  echo "$(awk '{print $1}' "$TMP/times" | median) $(awk '{print $2 + $3}' "$TMP/times" | median)"
}

# ---- 3. the runs -----------------------------------------------------------------------------
run_sox() { sox "$speech" -r 16000 "$TMP/o.wav"; }
run_ffmpeg() { ffmpeg -nostdin -loglevel error -y -i "$speech" -af aresample=resampler=soxr -ar 16000 "$TMP/o.wav"; }
run_ours() { "$BIN/s2s-resample" -q --rate 16000 --engine "$1" --quality "$2" "$TMP/speech.tar" > "$TMP/o.tar"; }

q_sox() { sox "$TMP/$1.wav" -e floating-point -b 32 -r 16000 "$TMP/$1.out.wav" 2>/dev/null; }
q_ffmpeg() { ffmpeg -nostdin -loglevel error -y -i "$TMP/$1.wav" -af aresample=resampler=soxr -ar 16000 -c:a pcm_f32le "$TMP/$1.out.wav"; }
q_ours() { "$BIN/s2s-resample" -q --rate 16000 --format f32 --engine "$2" --quality "$3" "$TMP/$1.tar" | tar -xO q.ctx.wav > "$TMP/$1.out.wav"; }
quality() { # fn args... -> "snr rejection"
  local fn=$1; shift
  $fn pass "$@"; $fn stop "$@"
  echo "$($M snr-sweep "$TMP/pass.out.wav" 4 20 7000 0.5) $($M reject "$TMP/stop.wav" "$TMP/stop.out.wav")"
}

echo "Resampling $(awk -v s="$secs" 'BEGIN {printf "%.1f", s / 60}') min of espeak-ng speech, 22050 -> 16000 Hz, s16 WAV;"
echo "wall time median of $REPS (libsamplerate best: 1 run); $(nproc) shared cores; $(date -u +%F)."
echo
echo "| resampler | wall s | CPU s | x sox speed (CPU) | passband SNR dB | stop-band rejection dB |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
read -r w_sox c_sox <<< "$(timeit "$REPS" run_sox)"
read -r snr rej <<< "$(quality q_sox)"
printf '| sox (default quality -h) | %.2f | %.2f | 1.00 | %s | %s |\n' "$w_sox" "$c_sox" "$snr" "$rej"
read -r w c <<< "$(timeit "$REPS" run_ffmpeg)"
read -r snr rej <<< "$(quality q_ffmpeg)"
printf '| ffmpeg aresample=resampler=soxr | %.2f | %.2f | %.2f | %s | %s |\n' "$w" "$c" "$(awk -v a="$c_sox" -v b="$c" 'BEGIN {print a / b}')" "$snr" "$rej"
for eq in "s2s medium" "soxr medium" "soxr best" "soxr fastest" "src best" "src medium" "src fastest"; do
  set -- $eq
  reps=$REPS
  [ "$eq" = "src best" ] && reps=1
  [ "$eq" = "src best" ] && [ "${SRC_BEST:-1}" = 0 ] && continue
  read -r w c <<< "$(timeit "$reps" run_ours "$1" "$2")"
  read -r snr rej <<< "$(quality q_ours "$1" "$2")"
  tag=""
  [ "$eq" = "s2s medium" ] && tag=" (default)"
  [ "$eq" = "soxr medium" ] && tag=" (0.2.0's default)"
  printf '| s2s-resample --engine %s --quality %s%s | %.2f | %.2f | %.2f | %s | %s |\n' "$1" "$2" "$tag" \
    "$w" "$c" "$(awk -v a="$c_sox" -v b="$c" 'BEGIN {print a / b}')" "$snr" "$rej"
done

# ---- 4. the default's samples against 0.2.0's (soxr medium) on the same speech, 16-bit ---------
run_ours s2s medium
tar -xOf "$TMP/o.tar" speech.ctx.wav > "$TMP/new.wav"
run_ours soxr medium
tar -xOf "$TMP/o.tar" speech.ctx.wav > "$TMP/old.wav"
python3 - "$TMP/new.wav" "$TMP/old.wav" <<'EOF'
import array, math, sys
def pcm(p):
    d = open(p, "rb").read()
    a = array.array("h"); a.frombytes(d[44:]); return a
n, o = pcm(sys.argv[1]), pcm(sys.argv[2])
assert len(n) == len(o)
m = min(len(n), 16000 * 300)  # the first 5 minutes: pure Python
nd = mx = sa = se = ss = 0
for i in range(m):
    x, y = n[i], o[i]
    e = x - y
    if e:
        nd += 1
        sa += abs(e)
        se += e * e
        mx = max(mx, abs(e))
    ss += y * y
print()
print("16-bit output (first %.0f min), s2s vs soxr medium (0.2.0's default): %.2f %% of the "
      "samples differ, by at most %d LSB (mean |difference| %.3f LSB; difference %.1f dB below "
      "the signal)." % (m / 16000 / 60, 100 * nd / m, mx, sa / m, 10 * math.log10(ss / max(se, 1))))
EOF

# ---- 5. optional: against an older s2s-resample on a stream, e.g. the previous release --------
# OLD=/path/to/old/s2s-resample FIXTURE=synth.tar bench/resample.sh BUILD: CPU-s, median of REPS
# runs of each, interleaved (same minute), output into a pipe as s2s-build runs it.
if [ -n "${OLD:-}" ] && [ -n "${FIXTURE:-}" ]; then
  : > "$TMP/t_old"
  : > "$TMP/t_new"
  for ((i = 0; i < REPS; i++)); do
    for w in old new; do
      b=$BIN/s2s-resample
      [ $w = old ] && b=$OLD
      { /usr/bin/time -f "%U %S" "$b" -q --rate 16000 "$FIXTURE" | cat > /dev/null; } 2>> "$TMP/t_$w"
    done
  done
  co=$(awk '{print $1 + $2}' "$TMP/t_old" | median)
  cn=$(awk '{print $1 + $2}' "$TMP/t_new" | median)
  echo
  echo "| s2s-resample --rate 16000 on $(basename "$FIXTURE") | CPU s (median of $REPS) |"
  echo "| --- | ---: |"
  echo "| $OLD ($("$OLD" --version | awk '{print $2}')) | $co |"
  echo "| $BIN/s2s-resample ($("$BIN/s2s-resample" --version | awk '{print $2}')) | $cn |"
  echo "| ratio | $(awk -v a="$co" -v b="$cn" 'BEGIN {printf "%.2fx", a / b}') |"
fi

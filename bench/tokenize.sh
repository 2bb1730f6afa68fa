#!/usr/bin/env bash
# bench/tokenize.sh — s2s-tokenize: k-means training on TRAIN_HOURS (default 1) and tokenizing
# TOK_HOURS (default 10) of 16 kHz espeak-ng speech with K=100, against a NumPy anchor (the same
# Kaldi log-mel with numpy.fft.rfft + a BLAS matmul for the nearest centre) and scikit-learn's
# KMeans (Lloyd, k-means++, one init) on the same frames, all on one core (BLAS threads 1).
#
# Speech: espeak-ng reads the StoryCloze stories (voices en-us and en-us+f3, one long WAV each),
# sox converts to 16 kHz, Python cuts 15 s samples into tar streams; cached in bench/out/tokenize.
# Speed uses CPU time (user+sys) because the 2 cores are shared: "x real time per core" is
# seconds of speech per CPU second. Medians of REPS (default 3) runs; -j 2 is wall time.
# Usage: bench/tokenize.sh [BUILD_DIR]   (env: TRAIN_HOURS, TOK_HOURS, ANCHOR_HOURS, REPS, K)
#        bench/tokenize.sh BUILD_DIR OLD_BUILD_DIR INPUT.tar CODEBOOK
#   The second form compares two builds on one stream (e.g. the session fixture rs.tar): the
#   median CPU time (user+sys) and peak RSS of `s2s-tokenize -q --codebook CODEBOOK INPUT`,
#   REPS runs each, interleaved so both see the same load, output written to a file; then the
#   share of frames whose unit differs between the two outputs.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$SRC/build}
T=$BUILD/bin/s2s-tokenize
if [ $# -ge 4 ]; then
  OLD=$2/bin/s2s-tokenize IN=$3 CB=$4 REPS=${REPS:-3}
  TMP=$(mktemp -d)
  trap 'rm -rf "$TMP"' EXIT
  for b in "$T" "$OLD"; do [ -x "$b" ] || { echo "bench/tokenize.sh: no $b" >&2; exit 3; }; done
  : > "$TMP/old.t"
  : > "$TMP/new.t"
  for r in $(seq "$REPS"); do
    /usr/bin/time -f "%U %S %M" -a -o "$TMP/old.t" "$OLD" -q --codebook "$CB" -o "$TMP/old.tar" "$IN"
    /usr/bin/time -f "%U %S %M" -a -o "$TMP/new.t" "$T" -q --codebook "$CB" -o "$TMP/new.tar" "$IN"
  done
  python3 - "$TMP/old.t" "$TMP/new.t" "$TMP/old.tar" "$TMP/new.tar" "$REPS" <<'EOF'
import statistics, sys, tarfile
def times(p):
    rows = [l.split() for l in open(p) if l.strip() and l.split()[0][0].isdigit()]
    return statistics.median(float(u) + float(s) for u, s, m in rows), max(int(m) for u, s, m in rows)
def units(p):
    d = {}
    with tarfile.open(p, "r|") as t:
        for m in t:
            if m.name.endswith(".units"):
                d[m.name] = t.extractfile(m).read().split()
    return d
(oc, om), (nc, nm) = times(sys.argv[1]), times(sys.argv[2])
a, b = units(sys.argv[3]), units(sys.argv[4])
assert a.keys() == b.keys(), "the outputs have different .units members"
assert all(len(a[k]) == len(b[k]) for k in a), "frame counts differ"
tot = sum(len(v) for v in a.values())
diff = sum(x != y for k in a for x, y in zip(a[k], b[k]))
print("| s2s-tokenize -q --codebook CB (median of %s runs, interleaved) | old | new |" % sys.argv[5])
print("| --- | --- | --- |")
print("| CPU time user+sys | %.2f s | %.2f s (%.2fx of old) |" % (oc, nc, nc / oc))
print("| peak RSS | %.1f MB | %.1f MB |" % (om / 1024, nm / 1024))
print("| frames whose unit differs | | %d of %d (%.4f %%) in %d members |" % (diff, tot, 100.0 * diff / tot, len(a)))
EOF
  exit 0
fi
TRAIN_HOURS=${TRAIN_HOURS:-1}
TOK_HOURS=${TOK_HOURS:-10}
ANCHOR_HOURS=${ANCHOR_HOURS:-1}
REPS=${REPS:-3}
K=${K:-100}
OUT=$SRC/bench/out/tokenize
mkdir -p "$OUT"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
for t in sox espeak-ng python3; do
  command -v $t >/dev/null || { echo "bench/tokenize.sh: needs $t" >&2; exit 3; }
done
[ -x "$T" ] || { echo "bench/tokenize.sh: build first ($T)" >&2; exit 3; }
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1

# ---- 1. speech (cached) --------------------------------------------------------------------
csv=${S2S_SHARED:-$SRC/../shared}/corpora/storycloze_spring2016/cloze_test_val__spring2016.csv
for v in en-us en-us+f3; do
  w=$OUT/speech-$v-16k.wav
  [ -s "$w" ] && continue
  python3 - "$csv" > "$TMP/text.txt" <<'EOF'
import csv, sys
rows = list(csv.reader(open(sys.argv[1], encoding="utf-8")))[1:]
print("\n".join(" ".join(r[1:5]) for r in rows))
EOF
  echo "bench/tokenize.sh: synthesizing all stories with espeak-ng -v $v ..." >&2
  espeak-ng -v "$v" -f "$TMP/text.txt" -w "$TMP/raw.wav"
  sox -q -R "$TMP/raw.wav" -r 16000 "$w.tmp.wav"
  rm -f "$TMP/raw.wav"
  mv "$w.tmp.wav" "$w"
done
# tar streams of 15 s samples: train = the first TRAIN_HOURS/2 of each voice, tok = TOK_HOURS/2
# of each voice (what the voices hold at most: ~5.7 h each).
mk_tar() { # OUT SECONDS_PER_VOICE
  [ -s "$1" ] && return 0
  python3 - "$1" "$2" "$OUT/speech-en-us-16k.wav" "$OUT/speech-en-us+f3-16k.wav" <<'EOF'
import io, json, sys, tarfile, wave
out, secs = sys.argv[1], float(sys.argv[2])
chunk = 15 * 16000
with tarfile.open(out + ".tmp", "w", format=tarfile.USTAR_FORMAT) as t:
    for vi, path in enumerate(sys.argv[3:]):
        w = wave.open(path)
        assert w.getframerate() == 16000 and w.getnchannels() == 1 and w.getsampwidth() == 2
        left = min(int(secs * 16000), w.getnframes())
        i = 0
        while left > 0:
            n = min(chunk, left)
            pcm = w.readframes(n)
            left -= n
            b = io.BytesIO()
            o = wave.open(b, "wb"); o.setnchannels(1); o.setsampwidth(2); o.setframerate(16000)
            o.writeframes(pcm); o.close()
            sid = "v%d_%06d" % (vi, i); i += 1
            item = {"id": sid, "task": "cloze", "lang": "en", "context": {"text": "bench"},
                    "candidates": [{"text": "a", "label": 1}, {"text": "b", "label": 0}]}
            for name, data in ((sid + ".json", json.dumps(item).encode()), (sid + ".ctx.wav", b.getvalue())):
                ti = tarfile.TarInfo(name); ti.size = len(data); t.addfile(ti, io.BytesIO(data))
import os; os.rename(out + ".tmp", out)
EOF
}
train_tar=$OUT/train-${TRAIN_HOURS}h.tar
tok_tar=$OUT/tok-${TOK_HOURS}h.tar
anc_tar=$OUT/tok-${ANCHOR_HOURS}h.tar
mk_tar "$train_tar" "$(python3 -c "print($TRAIN_HOURS * 1800)")"
mk_tar "$tok_tar" "$(python3 -c "print($TOK_HOURS * 1800)")"
mk_tar "$anc_tar" "$(python3 -c "print($ANCHOR_HOURS * 1800)")"

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# cpu CMD...: runs CMD, prints "CPU WALL" (seconds).
cpu() {
  /usr/bin/time -f "%U %S %e" -o "$TMP/time" "$@"
  awk '{printf "%.3f %.3f\n", $1 + $2, $3}' "$TMP/time"
}

# ---- 2. training ----------------------------------------------------------------------------
maxf=$(python3 -c "print(int($TRAIN_HOURS * 3600 * 100 + 1000))")
: > "$TMP/train.cpu"
for r in $(seq "$REPS"); do
  cpu "$T" train -k "$K" --seed 1 --max-frames "$maxf" -o "$TMP/cb$r" "$train_tar" 2> "$TMP/train.err" >> "$TMP/train.cpu"
done
cmp -s "$TMP/cb1" "$TMP/cb$REPS" || { echo "bench/tokenize.sh: training is not deterministic" >&2; exit 1; }
cp "$TMP/cb1" "$OUT/units-$K.cb"
: > "$TMP/train2.cpu"
for r in $(seq "$REPS"); do
  cpu "$T" train -k "$K" --seed 1 --max-frames "$maxf" -j 2 -o "$TMP/cbj$r" "$train_tar" 2>/dev/null >> "$TMP/train2.cpu"
done
cmp -s "$TMP/cb1" "$TMP/cbj1" || { echo "bench/tokenize.sh: train -j 2 differs from -j 1" >&2; exit 1; }
train_wall=$(cut -d' ' -f2 "$TMP/train.cpu" | median)
train2_wall=$(cut -d' ' -f2 "$TMP/train2.cpu" | median)
train_cpu=$(cut -d' ' -f1 "$TMP/train.cpu" | median)
train_line=$(grep "train:" "$TMP/train.err")
iters=$(sed -n 's/.*members), \([0-9]*\) iterations.*/\1/p' <<< "$train_line")
kmeans_cpu=$(sed -n 's/.*k-means \([0-9.]*\) s CPU.*/\1/p' <<< "$train_line")
train_frames=$(sed -n 's/.*on \([0-9]*\) of.*/\1/p' <<< "$train_line")
inertia=$(sed -n 's/.*inertia\/frame \([0-9.e+]*\).*/\1/p' <<< "$train_line")

# ---- 3. tokenizing ---------------------------------------------------------------------------
: > "$TMP/tok.cpu"
for r in $(seq "$REPS"); do
  cpu "$T" --codebook "$OUT/units-$K.cb" -o "$TMP/tok1.tar" "$tok_tar" 2> "$TMP/tok.err" >> "$TMP/tok.cpu"
done
frames=$(sed -n 's/.* samples, \([0-9]*\) frames.*/\1/p' "$TMP/tok.err")
tok_cpu=$(cut -d' ' -f1 "$TMP/tok.cpu" | median)
tok_wall=$(cut -d' ' -f2 "$TMP/tok.cpu" | median)
: > "$TMP/tok2.cpu"
for r in $(seq "$REPS"); do
  cpu "$T" --codebook "$OUT/units-$K.cb" -j 2 -o "$TMP/tok2.tar" "$tok_tar" 2>/dev/null >> "$TMP/tok2.cpu"
done
cmp -s "$TMP/tok1.tar" "$TMP/tok2.tar" || { echo "bench/tokenize.sh: -j 2 output differs" >&2; exit 1; }
tok2_wall=$(cut -d' ' -f2 "$TMP/tok2.cpu" | median)
rm -f "$TMP/tok2.tar"

# ---- 4. anchors: NumPy log-mel + matmul argmin, scikit-learn KMeans --------------------------
anchor="(python3-numpy / python3-sklearn not installed)"
PY=
for p in python3 /usr/bin/python3; do # pyenv's python3 may lack Debian's numpy
  if $p -c "import numpy, sklearn" 2>/dev/null; then PY=$p; break; fi
done
if [ -n "$PY" ]; then
  "$T" --codebook "$OUT/units-$K.cb" -q -o "$TMP/anc_ours.tar" "$anc_tar"
  $PY - "$OUT/units-$K.cb" "$anc_tar" "$TMP/anc_ours.tar" "$train_tar" "$maxf" "$K" > "$TMP/anchor.txt" <<'EOF'
import io, json, sys, tarfile, time, wave
import numpy as np
from sklearn.cluster import KMeans

cbpath, anc, ours, train, maxf, K = sys.argv[1:7]
b = open(cbpath, "rb").read()
nl1 = b.index(b"\n"); nl2 = b.index(b"\n", nl1 + 1)
h = json.loads(b[nl1 + 1:nl2]); f = h["features"]
C = np.frombuffer(b[nl2 + 1:], dtype="<f4").reshape(h["k"], h["dim"]).astype(np.float32)
L, H, N, M = f["frame_samples"], f["hop_samples"], 512, f["n_mels"]
mel = lambda x: 1127.0 * np.log(1.0 + x / 700.0)
mlo, mhi = mel(f["low_hz"]), mel(f["high_hz"]); d = (mhi - mlo) / (M + 1)
bm = mel(np.arange(N // 2) * f["rate"] / N)
W = np.zeros((N // 2, M), np.float32)
for m in range(M):
    l, c, r = mlo + m * d, mlo + (m + 1) * d, mlo + (m + 2) * d
    up = (bm - l) / (c - l); down = (r - bm) / (r - c)
    W[:, m] = np.where((bm > l) & (bm < r), np.where(bm <= c, up, down), 0)
win = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(L) / (L - 1))) ** 0.85
win = win.astype(np.float32)

def logmel(x):
    n = 0 if len(x) < L else 1 + (len(x) - L) // H
    if n == 0: return np.zeros((0, M), np.float32)
    fr = np.lib.stride_tricks.sliding_window_view(x, L)[::H][:n].astype(np.float32) * 32768
    fr = fr - fr.mean(axis=1, keepdims=True)
    fr = np.concatenate([fr[:, :1] * (1 - 0.97), fr[:, 1:] - 0.97 * fr[:, :-1]], axis=1) * win
    p = np.abs(np.fft.rfft(fr, n=N, axis=1)[:, :N // 2]) ** 2
    return np.log(np.maximum(p.astype(np.float32) @ W, np.finfo(np.float32).eps))

def read_pcm(tf, m):
    w = wave.open(io.BytesIO(tf.extractfile(m).read()))
    return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768

cn = (C * C).sum(axis=1)
t0 = time.process_time()
tf = tarfile.open(anc); units = {}; frames = 0; secs = 0.0
for m in tf:
    if not m.name.endswith(".ctx.wav"): continue
    x = read_pcm(tf, m); secs += len(x) / 16000
    F = logmel(x); frames += len(F)
    units[m.name[:-4] + ".units"] = np.argmin(cn[None, :] - 2 * F @ C.T, axis=1)
tok = time.process_time() - t0
# agreement with s2s-tokenize on the same audio and codebook
to = tarfile.open(ours); same = tot = 0
for m in to:
    if m.name in units:
        a = np.array(to.extractfile(m).read().split(), dtype=np.int64)
        same += int((a == units[m.name]).sum()); tot += len(a)
# sklearn KMeans on the anchor's features of the training set
tt = tarfile.open(train); X = []
for m in tt:
    if m.name.endswith(".wav"): X.append(logmel(read_pcm(tt, m)))
X = np.concatenate(X)[: int(maxf)]
t0 = time.process_time()
km = KMeans(n_clusters=int(K), init="k-means++", n_init=1, max_iter=100, tol=1e-4,
            algorithm="lloyd", random_state=1).fit(X)
kt = time.process_time() - t0
print(frames, secs, tok, same, tot, kt, km.n_iter_, km.inertia_ / len(X), len(X))
EOF
  read -r a_frames a_secs a_cpu a_same a_tot a_km a_iter a_inertia a_n < "$TMP/anchor.txt"
  anchor=ok
fi

# ---- 5. report ---------------------------------------------------------------------------------
secs=$(python3 -c "print($frames / 100)")
python3 - <<EOF
f, s, c, w, w2 = $frames, $secs, $tok_cpu, $tok_wall, $tok2_wall
print("| s2s-tokenize (K=$K, 80 log-mel, 10 ms) | value |")
print("| --- | --- |")
print("| tokenized speech | %.2f h (%d frames, 15 s samples) |" % (s / 3600, f))
print("| tokenize CPU time, -j 1 (median of $REPS) | %.2f s (wall %.2f s) |" % (c, w))
print("| frames/s per core | %.0f |" % (f / c))
print("| x real time per core (goal >= 2000) | **%.0fx** |" % (s / c))
print("| wall time -j 2 (shared 2-core machine) | %.2f s = %.0fx real time |" % (w2, s / w2))
print("| training: $train_frames frames ($TRAIN_HOURS h), whole command CPU | %.2f s |" % $train_cpu)
print("| k-means alone (k-means++ + $iters Lloyd iterations), CPU | %s s |" % "$kmeans_cpu")
print("| training wall time -j 1 / -j 2 (same codebook bytes) | %.2f s / %.2f s |" % ($train_wall, $train2_wall))
print("| inertia / frame | $inertia |")
EOF
if [ "$anchor" = ok ]; then
  python3 - <<EOF
af, asec, ac, same, tot, km, it, ine, n = $a_frames, $a_secs, $a_cpu, $a_same, $a_tot, $a_km, $a_iter, $a_inertia, $a_n
print()
print("| anchor, same run | ours | anchor |")
print("| --- | --- | --- |")
print("| x real time per core, tokenize (anchor: NumPy rfft + BLAS argmin on %.1f h) | %.0fx | %.0fx |" % (asec / 3600, $secs / $tok_cpu, asec / ac))
print("| units identical to ours on that audio, same codebook | | %.2f %% of %d frames |" % (100.0 * same / max(tot, 1), tot))
print("| k-means, K=$K on %d frames: CPU s (iterations) | %s s ($iters) | %.2f s (%d, scikit-learn Lloyd, tol 1e-4) |" % (n, "$kmeans_cpu", km, it))
print("| k-means inertia / frame | $inertia | %.4g |" % ine)
EOF
else
  echo; echo "anchor: $anchor"
fi

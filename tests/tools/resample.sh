#!/usr/bin/env bash
# s2s-resample on real files: tones and sweeps against sox's result on the same input (length,
# frequency, passband SNR, stop-band rejection), mp3/opus/m4a/stereo/48 kHz/FLAC inputs made
# with ffmpeg, --attach, bad input (truncated, NaN, empty) with and without --skip-bad,
# pass-through, byte-identical reruns, engines and their fallback, golden output hashes, real
# speech against soxr and sox. Outputs checked with soxi, ffprobe, flac and Python.
set -euo pipefail
BIN=${S2S_BIN:?S2S_BIN not set}
SRC=${S2S_SRC:?S2S_SRC not set}
R=$BIN/s2s-resample
M="python3 $SRC/tests/tools/audio_metrics.py"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$T"
fail() { echo "resample.sh: FAIL: $*" >&2; exit 1; }
for t in sox soxi ffmpeg ffprobe flac python3; do
  command -v $t >/dev/null || fail "needs $t"
done

# mk OUT.tar KEY,SUFFIX=FILE,... ...  -> tar stream of samples (item JSON + members)
cat > mk.py <<'EOF'
import io, json, sys, tarfile
def item(i):
    return {"id": i, "task": "cloze", "lang": "en", "context": {"text": "hello"},
            "candidates": [{"text": "a", "label": 1}, {"text": "b", "label": 0}]}
with tarfile.open(sys.argv[1], "w", format=tarfile.USTAR_FORMAT) as out:
    def add(name, data):
        ti = tarfile.TarInfo(name); ti.size = len(data); out.addfile(ti, io.BytesIO(data))
    for spec in sys.argv[2:]:
        key, *members = spec.split(",")
        add(key + ".json", json.dumps(item(key)).encode())
        for m in members:
            suf, path = m.split("=")
            add(key + "." + suf, open(path, "rb").read())
EOF
mk() { python3 mk.py "$@"; }
# libsndfile (like our Python writer) gives float WAVs a 16-byte fmt chunk, which sox reads but
# warns about; only that warning is dropped.
soxi() { command soxi "$@" 2> >(grep -v 'missing extended part of fmt chunk' >&2); }
# get TAR MEMBER OUT: extract one member with GNU tar
get() { tar -xOf "$1" "$2" > "$3" || fail "$1 has no member $2"; }
ge() { python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) >= float(sys.argv[2]) else 1)" "$1" "$2"; }
near() { python3 -c "import sys; sys.exit(0 if abs(float(sys.argv[1]) - float(sys.argv[2])) <= float(sys.argv[3]) else 1)" "$1" "$2" "$3"; }

# ---- usage -----------------------------------------------------------------------------------
"$R" --help | grep -q -- '--attach' || fail "--help does not document --attach"
"$R" --version | grep -q 's2s-resample' || fail "--version"
set +e
"$R" < /dev/null > /dev/null 2> err.txt; st=$?
"$R" --rate 16000 --engine sox < /dev/null > /dev/null 2>> err.txt; st2=$?
"$R" --rate 16000 --container flac --format f32 < /dev/null > /dev/null 2>> err.txt; st3=$?
set -e
[ $st = 2 ] && [ $st2 = 2 ] && [ $st3 = 2 ] || fail "usage errors must exit 2 (got $st $st2 $st3)"
grep -q 'rate R is required' err.txt || fail "missing --rate not explained"

# ---- quality against sox: 22050 -> 16000 and 16000 -> 24000 -----------------------------------
# Float in and out, so neither 16-bit rounding nor sox's dither sets the figures.
# Thresholds (what a converter as good as sox -h must reach; measured figures: docs/resample.md):
#  - length exactly round(n * out / in), +-1 allowed;
#  - tone frequency within 0.01 Hz (the zero-crossing estimate on 2 s resolves ~1e-4 Hz);
#  - tone and sweep SNR: the default (the s2s engine, single-precision FFTs; 0.2.0's default,
#    soxr at 20 bits, measured ~131) >= 120 dB (sox -h is specified for 20 bits, ~120 dB; it
#    measures ~113-138 computed in double precision; the s2s engine ~135; 16-bit audio itself
#    is ~98 dB, so in the s16 output they are alike);
#    --quality best (28 bits) >= 100 dB and not below sox's own figure on the same input;
#  - stop band (8.5-11 kHz chirp into 16 kHz): rejection >= 120 dB (sox -h: 125 dB spec; the
#    default measures ~140 dB: 40 dB under the floor of the 16-bit output), and --quality best
#    (28 bits, sox -v) not below sox's own (-h) figure.
q_case() { # IN_RATE OUT_RATE TONE_HZ
  local ir=$1 or=$2 f=$3 tag=$1-$2
  $M gen tone tone-$tag.wav "$ir" 2 "$f" 0.5 f32
  $M gen sweep sweep-$tag.wav "$ir" 2 20 7000 0.5 f32
  mk q-$tag.tar "tone,ctx.wav=tone-$tag.wav" "sweep,ctx.wav=sweep-$tag.wav"
  "$R" -q --rate "$or" --format f32 q-$tag.tar > o-$tag.tar
  "$R" -q --rate "$or" --format f32 --quality best q-$tag.tar > ob-$tag.tar
  for s in tone sweep; do
    get o-$tag.tar $s.ctx.wav ours-$s-$tag.wav
    get ob-$tag.tar $s.ctx.wav best-$s-$tag.wav
    sox $s-$tag.wav -e floating-point -b 32 -r "$or" sox-$s-$tag.wav 2>/dev/null
    local n_in want got
    n_in=$(soxi -s $s-$tag.wav)
    want=$(( (n_in * or + ir / 2) / ir ))
    got=$(soxi -s ours-$s-$tag.wav)
    [ "$(soxi -r ours-$s-$tag.wav)" = "$or" ] || fail "$tag $s: soxi rate $(soxi -r ours-$s-$tag.wav)"
    near "$got" "$want" 1 || fail "$tag $s: $got samples, want $want (+-1)"
    read -r frate fch fn fkind <<< "$($M info ours-$s-$tag.wav)"
    [ "$frate $fch $fn $fkind" = "$or 1 $got f32" ] || fail "$tag $s: python reads $frate $fch $fn $fkind"
  done
  local fo fx to ts so ss
  fo=$($M freq ours-tone-$tag.wav)
  fx=$($M freq sox-tone-$tag.wav)
  near "$fo" "$f" 0.01 || fail "$tag: tone $f Hz came out at $fo Hz (sox: $fx Hz)"
  local tb sb
  to=$($M snr-tone ours-tone-$tag.wav "$f")
  tb=$($M snr-tone best-tone-$tag.wav "$f")
  ts=$($M snr-tone sox-tone-$tag.wav "$f")
  ge "$to" 120 || fail "$tag: tone SNR $to dB (sox $ts dB, need >= 120)"
  ge "$tb" 100 && ge "$tb" "$ts" || fail "$tag: tone SNR --quality best $tb dB (sox $ts dB, need >= 100 and >= sox)"
  so=$($M snr-sweep ours-sweep-$tag.wav 2 20 7000)
  sb=$($M snr-sweep best-sweep-$tag.wav 2 20 7000)
  ss=$($M snr-sweep sox-sweep-$tag.wav 2 20 7000)
  ge "$so" 120 || fail "$tag: sweep SNR $so dB (sox $ss dB, need >= 120)"
  ge "$sb" 100 && ge "$sb" "$ss" || fail "$tag: sweep SNR --quality best $sb dB (sox $ss dB, need >= 100 and >= sox)"
  echo "resample.sh: $tag: tone $fo Hz (sox $fx); SNR tone ours $to (best $tb) / sox $ts dB, sweep ours $so (best $sb) / sox $ss dB"
}
q_case 22050 16000 1000
q_case 16000 24000 440

$M gen sweep stop.wav 22050 2 8500 11000 0.5 f32
mk stop.tar "stop,ctx.wav=stop.wav"
"$R" -q --rate 16000 --format f32 stop.tar > stop-o.tar
get stop-o.tar stop.ctx.wav stop-ours.wav
sox stop.wav -e floating-point -b 32 -r 16000 stop-sox.wav 2>/dev/null
"$R" -q --rate 16000 --format f32 --quality best stop.tar > stop-b.tar
get stop-b.tar stop.ctx.wav stop-best.wav
ro=$($M reject stop.wav stop-ours.wav)
rb=$($M reject stop.wav stop-best.wav)
rs=$($M reject stop.wav stop-sox.wav)
ge "$ro" 120 || fail "stop-band rejection $ro dB (sox $rs dB, need >= 120)"
ge "$rb" 120 && ge "$rb" "$rs" || fail "stop-band rejection --quality best $rb dB (sox $rs dB, need >= 120 and >= sox)"
echo "resample.sh: stop band 8.5-11 kHz -> 16 kHz: rejection ours $ro dB (best $rb dB), sox $rs dB"
# every engine and quality runs and keeps the length exact
# (the s2s engine has one quality, medium: best and fastest run soxr's, and ID.json says so)
for e in s2s soxr src; do
  for q in best medium fastest; do
    "$R" -q --rate 16000 --engine $e --quality $q q-22050-16000.tar > eq.tar
    get eq.tar tone.ctx.wav eq.wav
    near "$(soxi -s eq.wav)" 32000 1 || fail "$e/$q: length $(soxi -s eq.wav)"
    ran=$e
    [ $e = s2s ] && [ $q != medium ] && ran=soxr
    grep -q "\"engine\":\"$ran\",\"quality\":\"$q\"" <(tar -xOf eq.tar tone.json) || fail "$e/$q: ID.json: $(tar -xOf eq.tar tone.json)"
    grep -q "\"params\":{[^}]*\"engine\":\"$e\"" <(tar -xOf eq.tar tone.json) || fail "$e/$q: provenance"
  done
done
# the default is the s2s engine, medium quality
"$R" -q --rate 16000 q-22050-16000.tar > def.tar
"$R" -q --rate 16000 --engine s2s --quality medium q-22050-16000.tar > s2s.tar
cmp -s def.tar s2s.tar || fail "the default is not --engine s2s --quality medium"
# --quality best with the default engine: exactly soxr's 28 bits, as before 0.3.0
"$R" -q --rate 16000 --quality best q-22050-16000.tar > db.tar
"$R" -q --rate 16000 --engine soxr --quality best q-22050-16000.tar > sb.tar
cmp -s <(tar -xOf db.tar tone.ctx.wav) <(tar -xOf sb.tar tone.ctx.wav) || fail "--quality best is not soxr's"
# a rate pair the s2s engine does not take (11111 = 41 * 271) falls back to soxr and says so
"$R" --rate 11111 q-22050-16000.tar > fb.tar 2> fb.err
grep -q 'note: s2s resampler: 22050 -> 11111 Hz .*prime factor above 7; libsoxr runs instead' fb.err ||
  fail "fallback not reported: $(cat fb.err)"
[ "$(grep -c note fb.err)" = 1 ] || fail "fallback reported more than once: $(cat fb.err)"
grep -q '"resampler":{"engine":"soxr","quality":"medium"}' <(tar -xOf fb.tar tone.json) ||
  fail "fallback: ID.json does not name soxr: $(tar -xOf fb.tar tone.json)"
get fb.tar tone.ctx.wav fb.wav
near "$(soxi -s fb.wav)" 22222 1 || fail "fallback: length $(soxi -s fb.wav)"
"$R" -q --rate 11111 --engine soxr q-22050-16000.tar > fbs.tar
cmp -s <(tar -xOf fb.tar tone.ctx.wav) <(tar -xOf fbs.tar tone.ctx.wav) || fail "fallback is not soxr medium"
# "swr" (the engine's name before 0.2.0, when it went through libswresample) is the same engine
"$R" -q --rate 16000 --engine swr q-22050-16000.tar > swr.tar
"$R" -q --rate 16000 --engine soxr q-22050-16000.tar > soxr.tar
cmp -s swr.tar soxr.tar || fail "--engine swr differs from --engine soxr"
# libsoxr's SOXR_* variables (SIMD choice, DFT sizes ...) change its output: the tool unsets them
SOXR_USE_SIMD=0 SOXR_COEF_INTERP=2 "$R" -q --rate 16000 --engine soxr q-22050-16000.tar > env.tar
cmp -s env.tar soxr.tar || fail "SOXR_* in the environment changed the output"

# ---- golden bytes: the default engine's output must not change silently ----------------------
# 1 s of noise from an integer LCG at 22050 Hz, 16-bit (no libm: the same file everywhere),
# resampled to 16000 Hz as s16 and f32. The hashes are those of 0.3.0 on x86-64 (any kernel:
# SSE2, AVX2 or AVX-512 give the same bytes). If a change of bytes is intended, document it in
# docs/resample.md (what changed, why, measured effect) and update the hashes here.
python3 - <<'EOF'
import struct
s, v = 1, []
for i in range(22050):
    s = (s * 1103515245 + 12345) & 0x7fffffff
    v.append(((s >> 8) % 20001) - 10000)
data = struct.pack("<%dh" % len(v), *v)
open("golden.wav", "wb").write(b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE" + b"fmt " +
    struct.pack("<IHHIIHH", 16, 1, 1, 22050, 44100, 2, 16) + b"data" + struct.pack("<I", len(data)) + data)
EOF
mk golden.tar "g,ctx.wav=golden.wav"
"$R" -q --rate 16000 golden.tar > golden-o.tar
"$R" -q --rate 16000 --format f32 golden.tar > golden-f.tar
h16=$(tar -xOf golden-o.tar g.ctx.wav | sha256sum | cut -c1-64)
h32=$(tar -xOf golden-f.tar g.ctx.wav | sha256sum | cut -c1-64)
[ "$h16" = 7a8e4b89145f70e7960e6ea0fb5cf257ede9d80893e4eda42169760fa81148f3 ] || fail "s16 output bytes changed: sha256 $h16 (see the comment above)"
[ "$h32" = ce9e4ee95b476d724c34fd6bb6c652676a5e19436ed0e62d0294ace62d2fcdcf ] || fail "f32 output bytes changed: sha256 $h32 (see the comment above)"
# the same bytes from every kernel this CPU has (0 portable SSE2, 1 AVX2, 2 AVX-512)
for k in 0 1 2; do
  if S2S_RESAMPLE_KERNEL=$k "$R" -q --rate 16000 --format f32 golden.tar > golden-k.tar 2> k.err; then
    cmp -s golden-k.tar golden-f.tar || fail "kernel $k gives other bytes than the default"
  else
    grep -q 'no such kernel on this CPU' k.err || fail "S2S_RESAMPLE_KERNEL=$k: $(cat k.err)"
    echo "resample.sh: kernel $k not on this CPU: not compared"
  fi
done
if S2S_RESAMPLE_KERNEL=7 "$R" -q --rate 16000 golden.tar > /dev/null 2> k.err; then fail "kernel 7 accepted"; fi

# ---- real speech (espeak-ng, 22050 Hz): the s2s engine against soxr (0.2.0's bytes) and sox ---
# Float output, differences in 16-bit LSB. Against soxr (same passband and transition band):
# mean well below an LSB; sox -h's own transition band starts lower (its bandwidth, 95 %, is its
# -3 dB point: 7.6 kHz, where soxr's and ours are flat), so speech with energy at 7.6-8 kHz
# differs from it by more; with its -3 dB point moved to ours (rate -h -b 97.1) sox agrees
# with us as soxr does (mean well below an LSB).
if command -v espeak-ng >/dev/null; then
  espeak-ng -v en-us -w speech.wav "Rick grew up in a troubled household. He never found good support in family, and turned to gangs."
  mk speech.tar "s,ctx.wav=speech.wav"
  "$R" -q --rate 16000 --format f32 speech.tar > sp-o.tar
  "$R" -q --rate 16000 --format f32 --engine soxr speech.tar > sp-s.tar
  get sp-o.tar s.ctx.wav sp-ours.wav
  get sp-s.tar s.ctx.wav sp-soxr.wav
  sox speech.wav -e floating-point -b 32 -r 16000 sp-sox.wav 2>/dev/null
  sox speech.wav -e floating-point -b 32 sp-sox97.wav rate -h -b 97.1 16000 2>/dev/null
  python3 - "$SRC/tests/tools" <<'EOF' || fail "speech: s2s engine too far from soxr or sox -b 97.1"
import sys
sys.path.insert(0, sys.argv[1])
from audio_metrics import read_wav
o, s, x, x97 = (read_wav(f)[2] for f in ("sp-ours.wav", "sp-soxr.wav", "sp-sox.wav", "sp-sox97.wav"))
assert len(o) == len(s) == len(x) == len(x97), (len(o), len(s), len(x), len(x97))
def diff(a, b):
    d = [abs(p - q) * 32768 for p, q in zip(a, b)]
    return sum(d) / len(d), max(d)
ms, xs = diff(o, s)
mx, xx = diff(o, x)
m9, x9 = diff(o, x97)
print("resample.sh: speech, s2s engine vs soxr: mean %.3f LSB, max %.2f; vs sox: mean %.3f, max %.1f;"
      " vs sox rate -h -b 97.1: mean %.3f, max %.2f" % (ms, xs, mx, xx, m9, x9))
assert ms < 0.5 and xs < 32, (ms, xs)
assert m9 < 0.5 and x9 < 32, (m9, x9)
EOF
fi

# ---- any input: mp3 / opus / m4a / stereo 48 kHz WAV / 24-bit FLAC, made with ffmpeg ----------
# FFmpeg's libraries are loaded only when a member needs them (libs2s/audio.c): the tools do not
# link them (a start would cost ~130 shared libraries), yet decode mp3/opus/m4a below.
# (Not checked in a sanitizer build: GCC links libasan with --no-as-needed, which then keeps
# every library named on the command line.)
sanitized=0
for t in s2s-resample s2s-tokenize; do
  needed=$(readelf -d "$S2S_BIN/$t" | grep NEEDED || true)
  case $needed in *libasan*) sanitized=1; continue ;; esac
  case $needed in *libavformat* | *libavcodec* | *libavutil*)
    fail "$t links FFmpeg at start: $(echo "$needed" | grep -o 'libav[a-z]*' | tr '\n' ' ')" ;;
  esac
done
ff() { ffmpeg -nostdin -loglevel error -y "$@"; }
ff -f lavfi -i "sine=frequency=440:sample_rate=44100:duration=2" -ac 2 -c:a libmp3lame -b:a 128k in.mp3
ff -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=2" -c:a libopus -b:a 64k in.opus
ff -f lavfi -i "sine=frequency=440:sample_rate=44100:duration=2" -c:a aac -b:a 128k in.m4a
ff -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=2" -ac 2 -c:a pcm_s16le in48.wav
ff -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=2" -c:a flac -sample_fmt s32 in.flac
mk any.tar "a,ctx.mp3=in.mp3,c0.opus=in.opus,c1.m4a=in.m4a" "b,ctx.wav=in48.wav,c0.flac=in.flac"
"$R" -q --rate 16000 any.tar > any-o.tar
names=$(tar -tf any-o.tar | tr '\n' ' ')
[ "$names" = "a.json a.ctx.wav a.c0.wav a.c1.wav b.json b.ctx.wav b.c0.wav " ] ||
  fail "members after conversion: $names"
for m in a.ctx a.c0 a.c1 b.ctx b.c0; do
  get any-o.tar $m.wav $m.wav
  [ "$(soxi -r $m.wav) $(soxi -c $m.wav) $(soxi -b $m.wav)" = "16000 1 16" ] ||
    fail "$m: soxi says $(soxi -r $m.wav) Hz $(soxi -c $m.wav) ch $(soxi -b $m.wav) bit"
  probe=$(ffprobe -v error -show_entries stream=codec_name,sample_rate,channels -of csv=p=0 $m.wav)
  [ "$probe" = "pcm_s16le,16000,1" ] || fail "$m: ffprobe says $probe"
  d=$(soxi -D $m.wav)
  near "$d" 2 0.1 || fail "$m: duration $d s, want 2 s (codec delay +-0.1)"
  f=$($M freq $m.wav)
  near "$f" 440 1 || fail "$m: 440 Hz came out at $f Hz"
done
# FFmpeg that cannot be used: a libavutil of the right soname without its functions, found
# first through LD_LIBRARY_PATH (then libavcodec does not load: its libswresample misses
# libavutil's symbols). The mp3 member fails with a message naming the member and the library;
# the WAV/FLAC sample alone still converts (FFmpeg is never loaded for it).
# (Not in a sanitizer build, which links FFmpeg at start: see above.)
if [ "$sanitized" = 0 ]; then
  mkdir -p fakeav
  echo 'int s2s_not_ffmpeg;' > fakeav/empty.c
  so=$(ldd "$(command -v ffmpeg)" | grep -o 'libavutil\.so\.[0-9]*' | head -n 1)
  cc -shared -fPIC -o "fakeav/$so" fakeav/empty.c -Wl,-soname,"$so"
  st=0
  LD_LIBRARY_PATH=$PWD/fakeav "$R" -q --rate 16000 any.tar > /dev/null 2> fakeav.err || st=$?
  [ "$st" = 1 ] || fail "unusable FFmpeg: exit $st, want 1 ($(cat fakeav.err))"
  grep -Eq "sample a ctx\.mp3: .*(FFmpeg's libav[a-z]+\.so\.[0-9]+, which cannot be loaded|$so has no )" fakeav.err ||
    fail "unusable FFmpeg: unclear message: $(cat fakeav.err)"
  mk wavonly.tar "b,ctx.wav=in48.wav,c0.flac=in.flac"
  LD_LIBRARY_PATH=$PWD/fakeav "$R" -q --rate 16000 wavonly.tar > wavonly-o.tar ||
    fail "WAV/FLAC failed with an unusable FFmpeg around"
  echo "resample.sh: FFmpeg loaded only for mp3/opus/m4a; unusable FFmpeg: exit 1, $(head -c 150 fakeav.err)"
fi
python3 - any-o.tar <<'EOF' || fail "ID.json audio/provenance"
import json, sys, tarfile
t = tarfile.open(sys.argv[1])
j = json.load(t.extractfile("a.json"))
a = j["audio"]
assert a["rate"] == 16000 and a["format"] == "wav" and a["sample_format"] == "s16", a
assert a["channels"] == 1 and a["resampler"] == {"engine": "s2s", "quality": "medium"}, a
# per member: the sample count at the new rate (the files hold exactly these many)
for stem in ("ctx", "c0", "c1"):
    import wave
    with wave.open(t.extractfile("a.%s.wav" % stem)) as w:
        assert a["samples"][stem] == w.getnframes(), (stem, a["samples"], w.getnframes())
    assert abs(a["durations"][stem] - a["samples"][stem] / 16000) < 1e-9
assert j["provenance"][-1]["tool"] == "s2s-resample", j["provenance"]
assert j["provenance"][-1]["params"]["rate"] == 16000
assert j["context"]["text"] == "hello"
EOF

# FLAC container, rerun identity, and an independent FLAC check
"$R" -q --rate 16000 --container flac any.tar > flac1.tar
"$R" -q --rate 16000 --container flac any.tar > flac2.tar
cmp -s flac1.tar flac2.tar || fail "FLAC output differs between two runs"
get flac1.tar a.ctx.flac a.flac
flac -s -t a.flac || fail "flac -t rejects our FLAC"
[ "$(soxi -r a.flac) $(soxi -c a.flac)" = "16000 1" ] || fail "FLAC: soxi $(soxi -r a.flac)"
"$R" -q --rate 16000 any.tar > any-o2.tar
cmp -s any-o.tar any-o2.tar || fail "WAV output differs between two runs"
"$R" -q --rate 24000 --format f32 any.tar > f32.tar
get f32.tar a.ctx.wav f32.wav
soxi -e f32.wav 2>/dev/null | grep -q 'Floating Point' || fail "--format f32: soxi says $(soxi -e f32.wav)"

# --shard I/N: the parts are disjoint and cover every sample
"$R" -q --rate 16000 --shard 0/2 any.tar > p0.tar
"$R" -q --rate 16000 --shard 1/2 any.tar > p1.tar
parts=$( (tar -tf p0.tar; tar -tf p1.tar) | grep '\.json$' | sort | tr '\n' ' ')
[ "$parts" = "a.json b.json " ] || fail "--shard 0/2 + 1/2 give: $parts"
[ "$(tar -tf p0.tar | grep -c json)" = 1 ] || fail "--shard: a and b in the same part (hash changed?)"

# ---- pass-through: already mono 16 kHz 16-bit WAV stays byte-identical ------------------------
sox -n -r 16000 -b 16 -c 1 pass.wav synth 1 sine 300 gain -6
mk pass.tar "p,ctx.wav=pass.wav,c0.mp3=in.mp3"
"$R" -q --rate 16000 pass.tar > pass-o.tar
get pass-o.tar p.ctx.wav pass-o.wav
cmp -s pass.wav pass-o.wav || fail "a member already at the target changed"
tar -tf pass-o.tar | grep -qx 'p.c0.wav' || fail "the mp3 beside it was not converted"

# ---- --attach: recorded speech replaces a context, by id --------------------------------------
mkdir rec
cp in.mp3 rec/b.mp3
mk att.tar "a,ctx.wav=pass.wav" "b,ctx.wav=pass.wav"
"$R" --rate 16000 --attach rec --member ctx att.tar > att-o.tar 2> att-err.txt
get att-o.tar b.ctx.wav b-att.wav
get att-o.tar a.ctx.wav a-att.wav
cmp -s a-att.wav pass.wav || fail "--attach changed an item without a file"
f=$($M freq b-att.wav)
near "$f" 440 1 || fail "--attach: b.ctx.wav is not the attached 440 Hz recording ($f Hz)"
grep -q 'attached from rec to 1 (1 without a file)' att-err.txt || fail "--attach summary: $(cat att-err.txt)"
tar -xOf att-o.tar b.json | grep -q '"attached":"ctx"' || fail "--attach not in provenance"
cp in.opus rec/b.opus
set +e
"$R" -q --rate 16000 --attach rec att.tar > /dev/null 2> amb.txt; st=$?
set -e
[ $st = 1 ] && grep -q 'sample b ctx: several files' amb.txt || fail "two files for one id: $(cat amb.txt)"

# ---- bad input: clear message, exit 1, no output; --skip-bad counts ---------------------------
head -c 9000 in.mp3 > cut.mp3
head -c 6000 in.opus > cut.opus
ff -f lavfi -i "sine=frequency=440:sample_rate=44100:duration=2" -c:a aac -movflags +faststart fs.m4a
head -c 12000 fs.m4a > cut.m4a
head -c 20000 in48.wav > cut.wav
python3 - <<'EOF'
import struct
data = b"".join(struct.pack("<f", float("nan") if i == 100 else 0.1) for i in range(1000))
fmt = struct.pack("<HHIIHH", 3, 1, 16000, 64000, 4, 32)
open("nan.wav", "wb").write(b"RIFF" + struct.pack("<I", 4 + 24 + 8 + len(data)) + b"WAVE" +
    b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(data)) + data)
EOF
: > empty.wav
bad() { # NAME FILE SUFFIX EXPECTED-MESSAGE
  mk bad-$1.tar "good,ctx.wav=pass.wav" "x,$3=$2"
  set +e
  "$R" -q --rate 16000 -o bad-$1-out.tar bad-$1.tar 2> bad-$1.err; local st=$?
  set -e
  [ $st = 1 ] || fail "$1: exit $st, want 1"
  grep -q "^s2s-resample: sample x $3: $4" bad-$1.err || fail "$1: message: $(cat bad-$1.err)"
  [ ! -e bad-$1-out.tar ] || fail "$1: partial output file left behind"
  ls | grep -q 'bad-.*tmp' && fail "$1: temporary file left behind"
  "$R" --rate 16000 --skip-bad bad-$1.tar > skip-$1.tar 2> skip-$1.err || fail "$1: --skip-bad failed"
  [ "$(tar -tf skip-$1.tar | tr '\n' ' ')" = "good.json good.ctx.wav " ] || fail "$1: --skip-bad output"
  grep -q '1 bad samples skipped' skip-$1.err || fail "$1: --skip-bad count: $(cat skip-$1.err)"
  grep -q "skipped: sample x $3" skip-$1.err || fail "$1: --skip-bad reason"
}
bad mp3 cut.mp3 ctx.mp3 "truncated"
bad wav cut.wav ctx.wav "truncated WAV"
bad opus cut.opus ctx.opus "truncated Ogg"
bad m4a cut.m4a c1.m4a "truncated or corrupt"
bad nan nan.wav ctx.wav "NaN sample"
bad empty empty.wav ctx.wav "zero-length"
bad junk mk.py c0.ogg "not readable as audio"
# a stream cut short upstream is refused, and the output does not end like a complete archive
head -c 30000 any.tar > cut-stream.tar
if "$R" -q --rate 16000 cut-stream.tar > cut-o.tar 2> cut.err; then fail "truncated stream accepted"; fi
grep -q . cut.err || fail "truncated stream: no message"
if [ -s cut-o.tar ] && [ "$(tail -c 1024 cut-o.tar | tr -d '\0' | wc -c)" = 0 ]; then
  fail "output of a failed run ends with an end-of-archive marker"
fi
echo "resample.sh: all checks passed"

#!/usr/bin/env bash
# s2s-pack's FLAC members, built-in encoder (default, --flac-level 0) and libFLAC (-f 5), on WAVs
# of every shape the encoder has a branch for (8/16/24 bits, 1-3 channels, frame-header sample
# rate codes, lengths around the 4096-sample block, silence, noise, full-scale square waves):
# every member passes `flac -t`, and the flac CLI, ffmpeg and s2s-shard cat all decode it to
# the input's samples.
set -euo pipefail
: "${S2S_BIN:?}"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$T"
die() { echo "FAIL: $*" >&2; exit 1; }
command -v flac >/dev/null || die "flac CLI missing (apt-get install flac)"

# name rate bits channels seconds sox-synth-args
cat > shapes.txt <<'EOF'
speech 16000 16 1 1.3 noise vol 0.05 : synth 1.3 sine 200-900 vol 0.4
one 16000 16 1 0.0000625 sine 300
block 16000 16 1 0.256 sine 440
blockp1 16000 16 1 0.2560625 sine 440
silence 16000 16 1 0.5 sine 0 vol 0
noise 22050 16 1 0.7 whitenoise
square 44100 16 2 0.4 square 1000 vol 1
deep 48000 24 1 0.5 sine 100-5000 vol 0.9
deepsq 96000 24 2 0.2 square 300 vol 1
byte 8000 8 1 0.6 sine 500 vol 0.7
odd 11025 16 3 0.5 sine 700
khz 50000 16 1 0.2 pinknoise
hz 7350 24 1 0.3 brownnoise
EOF
python3 - <<'EOF'
import io, json, subprocess, tarfile
out = tarfile.open("in.tar", "w", format=tarfile.USTAR_FORMAT)
def add(name, data):
    ti = tarfile.TarInfo(name); ti.size = len(data); out.addfile(ti, io.BytesIO(data))
for line in open("shapes.txt"):
    name, rate, bits, ch, secs, *synth = line.split()
    if ":" in synth:  # two sox runs mixed: noise under a sweep
        a, b = synth[:synth.index(":")], synth[synth.index(":") + 2:]
        subprocess.run(["sox", "-D", "-n", "-r", rate, "-b", bits, "-c", ch, "a.wav", "synth",
                        secs] + a, check=True)
        subprocess.run(["sox", "-D", "-n", "-r", rate, "-b", bits, "-c", ch, "b.wav", "synth",
                        secs] + b[1:], check=True)
        subprocess.run(["sox", "-D", "-m", "a.wav", "b.wav", "w.wav"], check=True)
    else:
        subprocess.run(["sox", "-D", "-n", "-r", rate, "-b", bits, "-c", ch, "w.wav", "synth",
                        secs] + synth, check=True)
    key = "s_" + name
    item = {"id": key, "task": "cloze", "lang": "en", "context": {"text": "c"},
            "candidates": [{"text": "a", "label": 1}, {"text": "b", "label": 0}]}
    add(key + ".json", (json.dumps(item) + "\n").encode())
    add(key + ".ctx.wav", open("w.wav", "rb").read())
out.close()
EOF
mkdir src && tar -xf in.tar -C src
for f in src/*.wav; do  # the shapes really are what the encoder must handle
  b=$(basename "$f" .ctx.wav); b=${b#s_}
  want=$(awk -v n="$b" '$1 == n {print $2, $3, $4}' shapes.txt)
  got="$(soxi -r "$f") $(soxi -b "$f") $(soxi -c "$f")"
  [ "$got" = "$want" ] || die "$b: sox made $got, wanted $want"
done
[ "$(soxi -s src/s_one.ctx.wav)" = 1 ] || die "one: not 1 sample"
[ "$(soxi -s src/s_blockp1.ctx.wav)" = 4097 ] || die "blockp1: not 4097 samples"

for level in 0 5; do
  rm -rf o x && mkdir o x
  "$S2S_BIN/s2s-pack" -q -f "$level" -o 'o/t-%06d.tar' in.tar || die "pack -f $level failed"
  "$S2S_BIN/s2s-shard" verify o >/dev/null || die "verify -f $level failed"
  tar -xf o/t-000000.tar -C x
  n=0
  for f in x/*.flac; do
    k=$(basename "$f" .ctx.flac)
    w=src/$k.ctx.wav
    flac -t "$f" > t.txt 2>&1 || die "-f $level: flac -t rejects $k: $(tr '\r' '\n' < t.txt | tail -3)"
    tr '\r' '\n' < t.txt | grep -q 'ok *$' || die "-f $level: flac -t does not say ok for $k"
    # the flac CLI's decode and ffmpeg's give the input's samples (raw, native width)
    bits=$(soxi -b "$w")
    [ "$bits" = 8 ] && rawbits=16 || rawbits=$bits
    sox -D "$w" -t raw -e signed -b "$rawbits" want.raw
    flac -d -s -f --force-raw-format --endian=little --sign=signed -o got.raw "$f" 2>/dev/null
    cmp -s want.raw got.raw || die "-f $level: flac -d gives other samples for $k"
    fmt=$([ "$rawbits" = 24 ] && echo s24le || echo s16le)
    ffmpeg -v error -i "$f" -f "$fmt" -y ff.raw
    if [ "$rawbits" = 24 ]; then  # ffmpeg decodes 24-bit FLAC to s32: compare via sox
      sox -D -t raw -r "$(soxi -r "$w")" -c "$(soxi -c "$w")" -e signed -b 24 ff.raw -t raw -e signed -b 24 ff2.raw
      mv ff2.raw ff.raw
    fi
    cmp -s want.raw ff.raw || die "-f $level: ffmpeg gives other samples for $k"
    n=$((n + 1))
  done
  [ "$n" = "$(wc -l < shapes.txt)" ] || die "-f $level: $n FLAC members"
  # s2s-shard cat: the stream's WAVs back (8-bit as 16-bit)
  "$S2S_BIN/s2s-shard" cat o > back.tar
  rm -rf y && mkdir y && tar -xf back.tar -C y
  for w in src/*.wav; do
    k=$(basename "$w")
    [ "$(soxi -b "$w")" = 8 ] && continue
    cmp -s <(sox -D "$w" -t raw -) <(sox -D "y/$k" -t raw -) || die "-f $level: cat gives other samples for $k"
  done
  python3 - "$level" <<'EOF' || die "-f $level: STREAMINFO check failed"
import glob, sys
for f in glob.glob("x/*.flac"):
    d = open(f, "rb").read()
    assert d[:4] == b"fLaC", f
    si = d[8:42]
    assert si[18:34] == bytes(16), f"{f}: MD5 is set (we turn it off)"
    total = int.from_bytes(si[13:18], "big") & ((1 << 36) - 1)
    assert total > 0, f"{f}: total samples unset"
    if sys.argv[1] == "0":
        assert b"s2sbench flacenc 1" in d[:200], f"{f}: vendor string missing"
EOF
done
echo "pack_flac ok: $(wc -l < shapes.txt) shapes, built-in and libFLAC"

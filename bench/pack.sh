#!/usr/bin/env bash
# Shards: pack and read back the StoryCloze-validation stream at 16 kHz (1871 items, 5613
# utterances by s2s-synth, s2s-resample --rate 16000), ours beside the tar+flac pair on the same
# files, in one run.
#   pack:  s2s-pack (built-in FLAC encoder, gzip 6, index, dataset.json, fsync)  vs  flac -5 of every WAV
#          + tar -cf of the FLAC and JSON files
#   read:  s2s-shard cat (CRC-checked, FLAC decoded back to WAV, tar stream to /dev/null)  vs
#          tar -xf (no decoding) and tar -xf + flac -d (the same work as cat)
# MB/s are raw-WAV megabytes (10^6) per wall-clock second; CPU s = user+system of all processes
# of the step (our pack compresses on a second thread, so its wall time can be below its CPU
# time on an idle machine); ratio = stored bytes / raw WAV bytes.
# Medians of RUNS runs (default 3). STREAM=file reuses a stream; ITEMS=N uses the first N items.
# Usage: bench/pack.sh [BUILD_DIR]
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${1:-${S2S_BUILD:-$SRC/build}}" && pwd)
BIN="$BUILD/bin"
SHARED=${S2S_SHARED:-$SRC/../shared}
CSV="$SHARED/corpora/storycloze_spring2016/cloze_test_val__spring2016.csv"
RUNS=${RUNS:-3}
for t in s2s-import s2s-synth s2s-resample s2s-pack s2s-shard; do
    [ -x "$BIN/$t" ] || { echo "no $BIN/$t (build first)" >&2; exit 2; }
done
command -v flac >/dev/null || { echo "flac CLI missing (apt-get install flac)" >&2; exit 2; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$T"

if [ -n "${STREAM:-}" ]; then
    cp "$STREAM" stream.tar
else
    "$BIN/s2s-import" storycloze "$CSV" -o items.jsonl 2>/dev/null
    if [ -n "${ITEMS:-}" ]; then head -n "$ITEMS" items.jsonl >i && mv i items.jsonl; fi
    "$BIN/s2s-synth" -j 2 items.jsonl 2>/dev/null | "$BIN/s2s-resample" --rate 16000 2>/dev/null >stream.tar
fi
mkdir files
tar -xf stream.tar -C files
(cd files && ls) >names.txt
grep '\.wav$' names.txt >wavs.txt
grep -v '\.wav$' names.txt >other.txt
sed 's/\.wav$/.flac/' wavs.txt | cat - other.txt | sort >anchor-list.txt
raw=$(cd files && xargs -a ../wavs.txt stat -c %s | paste -sd+ | bc)
samples=$(( $(grep -c '\.wav$' names.txt) ))
secs=$(python3 -c "print(($raw - 44 * $samples) / 32000)")
items=$(grep -c '\.json$' names.txt)

median() { sort -g | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
# "WALL CPU" seconds of a shell snippet: wall clock, and user+system CPU of everything it ran
# (the machine may be shared: CPU seconds are the steadier figure)
wall() {
    python3 -c 'import os, subprocess, sys, time
t = time.time()
subprocess.run(["bash", "-c", sys.argv[1]], stdout=subprocess.DEVNULL, check=True)
ru = os.times()
print("%.3f %.3f" % (time.time() - t, ru.children_user + ru.children_system))' "$1"
}

ours_pack=() anc_pack=() ours_cat=() anc_x=() anc_xd=()
wall_of() { for v in "$@"; do echo "${v% *}"; done | median; }
cpu_of() { for v in "$@"; do echo "${v#* }"; done | median; }
for r in $(seq "$RUNS"); do
    rm -rf ours anchor.tar x xd && mkdir ours x xd
    sync
    ours_pack+=("$(wall "'$BIN/s2s-pack' -q -o 'ours/sc-%06d.tar' -n 1000 stream.tar")")
    (cd files && rm -f -- *.flac)
    sync
    # the anchor: flac -5 (its default) on every WAV, then one tar of the FLAC and JSON files
    anc_pack+=("$(wall "cd files && xargs -a ../wavs.txt flac -s -5 -f && tar -cf ../anchor.tar -T ../anchor-list.txt && sync -f ../anchor.tar")")
    ours_cat+=("$(wall "'$BIN/s2s-shard' cat ours >/dev/null")")
    anc_x+=("$(wall "tar -xf anchor.tar -C x")")
    anc_xd+=("$(wall "tar -xf anchor.tar -C xd && cd xd && ls | grep '\.flac$' | xargs flac -s -d -f")")
done
"$BIN/s2s-shard" verify ours >/dev/null || { echo "verify of our shards failed" >&2; exit 1; }
# both sides hold the same audio: our cat gives back the input WAVs' samples
"$BIN/s2s-shard" cat ours >back.tar
python3 - <<'EOF' || { echo "round trip differs" >&2; exit 1; }
import tarfile
def pcm(p):
    out = {}
    with tarfile.open(p, "r|") as t:
        for m in t:
            if m.name.endswith(".wav"):
                d = t.extractfile(m).read()
                out[m.name] = d[d.find(b"data") + 8:]
    return out
a, b = pcm("stream.tar"), pcm("back.tar")
assert a.keys() == b.keys() and all(a[k] == b[k] for k in a)
EOF
ours_bytes=$(cat ours/*.tar | wc -c)
idx_bytes=$(cat ours/*.idx ours/dataset.json | wc -c)
anc_bytes=$(stat -c %s anchor.tar)

mbps() { python3 -c "print('%.1f' % ($raw / 1e6 / $1))"; }
ratio() { python3 -c "print('%.3f' % ($1 / $raw))"; }
m_op=$(wall_of "${ours_pack[@]}") c_op=$(cpu_of "${ours_pack[@]}")
m_ap=$(wall_of "${anc_pack[@]}") c_ap=$(cpu_of "${anc_pack[@]}")
m_oc=$(wall_of "${ours_cat[@]}") c_oc=$(cpu_of "${ours_cat[@]}")
m_ax=$(wall_of "${anc_x[@]}") c_ax=$(cpu_of "${anc_x[@]}")
m_axd=$(wall_of "${anc_xd[@]}") c_axd=$(cpu_of "${anc_xd[@]}")
hours=$(python3 -c "print('%.2f' % ($secs / 3600))")
echo "StoryCloze validation at 16 kHz: $items items, $samples utterances, $hours h of speech, raw WAV $(python3 -c "print('%.1f' % ($raw / 1e6))") MB; medians of $RUNS runs, $(nproc) cores"
echo
echo "| step | ours | wall s | MB/s | CPU s | anchor | wall s | MB/s | CPU s |"
echo "| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |"
echo "| pack | s2s-pack -n 1000 | $(printf %.2f "$m_op") | $(mbps "$m_op") | $(printf %.2f "$c_op") | flac -5 + tar -cf | $(printf %.2f "$m_ap") | $(mbps "$m_ap") | $(printf %.2f "$c_ap") |"
echo "| read | s2s-shard cat (CRC + FLAC decode) | $(printf %.2f "$m_oc") | $(mbps "$m_oc") | $(printf %.2f "$c_oc") | tar -xf + flac -d | $(printf %.2f "$m_axd") | $(mbps "$m_axd") | $(printf %.2f "$c_axd") |"
echo "| read | | | | | tar -xf only (no decode) | $(printf %.2f "$m_ax") | $(mbps "$m_ax") | $(printf %.2f "$c_ax") |"
echo
echo "| stored | bytes | ratio to raw WAV |"
echo "| --- | ---: | ---: |"
echo "| our shards (.tar) | $ours_bytes | $(ratio "$ours_bytes") |"
echo "| our index + dataset.json | $idx_bytes | $(ratio "$idx_bytes") |"
echo "| anchor tar of FLAC + JSON | $anc_bytes | $(ratio "$anc_bytes") |"

#!/bin/bash
# A new language end to end, as docs/new-language.md walks through it: French stories from a CSV
# with the StoryCloze columns (data/samples-fr.csv, 12 original stories) and the shipped recipe
# manifests/fr-samples.recipe (voice = fr).
#  - espeak-ng has the voice (s2s-synth --list-voices) and it is French;
#  - s2s-build fr-samples builds and verifies 3 shards (5 per shard);
#  - every item: id fr_sstorycloze_N, lang fr, audio.voice "fr" (and in the synth provenance),
#    16 kHz WAV whose length is the recorded sample count, plausible durations for French read
#    at 175 words per minute (context 4-30 s, 9-25 characters per second; candidates 1-10 s),
#    not silent; units present;
#  - a tiny character 5-gram trained on the contexts scores t2t, and a unit 4-gram scores s2s,
#    over the 12 pairs, with no failure.
set -euo pipefail
BIN=${S2S_BIN:?} SRC=${S2S_SRC:?}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
export S2S_NO_PROGRESS=1

# the voice
"$BIN/s2s-synth" --list-voices >"$T/voices.tsv"
awk -F'\t' '$1 == "fr" || $1 == "fr-fr"' "$T/voices.tsv" | grep -q 'French' ||
    fail "s2s-synth --list-voices lists no French voice"

# the build
"$BIN/s2s-build" fr-samples -o "$T/fr" 2>"$T/build.log" || { cat "$T/build.log"; fail "build"; }
"$BIN/s2s-shard" verify "$T/fr" >/dev/null || fail "verify"
[ "$(ls "$T"/fr/fr-samples-*.tar | wc -l)" = 3 ] || fail "expected 3 shards"
"$BIN/s2s-shard" cat "$T"/fr/fr-samples-*.tar >"$T/stream.tar"

python3 - "$T/stream.tar" <<'EOF' || fail "items or audio"
import io, json, re, sys, tarfile, wave, array
t = tarfile.open(sys.argv[1], "r:")
items, wavs, units = {}, {}, {}
for m in t:
    key, suffix = m.name.split(".", 1)
    data = t.extractfile(m).read()
    if suffix == "json":
        items[key] = json.loads(data)
    elif suffix.endswith(".wav"):
        wavs[(key, suffix[:-4])] = data
    elif suffix.endswith(".units"):
        units[(key, suffix[:-6])] = data.split()
assert len(items) == 12, f"{len(items)} items, expected 12"
for key, it in items.items():
    assert re.fullmatch(r"fr_sstorycloze_\d+", it["id"]) and key == it["id"], it["id"]
    assert it["lang"] == "fr", (key, it["lang"])
    assert it["task"] == "cloze" and len(it["candidates"]) == 2, key
    a = it["audio"]
    assert a["voice"] == "fr" and a["rate"] == 16000, (key, a["voice"], a["rate"])
    synth = [p for p in it["provenance"] if p["tool"] == "s2s-synth"]
    assert synth and synth[0]["params"]["voice"] == "fr", key
    texts = {"ctx": it["context"]["text"]}
    for i, c in enumerate(it["candidates"]):
        texts[f"c{i}"] = c["text"]
    for part, text in texts.items():
        w = wave.open(io.BytesIO(wavs[(key, part)]))
        assert w.getframerate() == 16000 and w.getnchannels() == 1 and w.getsampwidth() == 2
        n = w.getnframes()
        assert n == a["samples"][part], (key, part, n, a["samples"][part])
        secs = n / 16000
        assert abs(secs - a["durations"][part]) < 1e-3, (key, part)
        lo, hi = (4, 30) if part == "ctx" else (1, 10)
        assert lo <= secs <= hi, f"{key} {part}: {secs:.2f} s"
        if part == "ctx":
            cps = len(text) / secs
            assert 9 <= cps <= 25, f"{key}: {cps:.1f} characters per second"
        pcm = array.array("h", w.readframes(n))
        rms = (sum(x * x for x in pcm) / len(pcm)) ** 0.5
        assert rms > 300, f"{key} {part}: nearly silent (RMS {rms:.0f})"
        assert len(units[(key, part)]) > 50, (key, part)
print("items: 12 French items, voice fr, durations and levels plausible")
EOF

# scores: t2t with a character 5-gram of the contexts, s2s with a unit 4-gram of the contexts
"$BIN/s2s-lm" text --what ctx "$T"/fr/*.tar |
    "$BIN/s2s-lm" train --order 5 --tok chars -o "$T/chars.arpa" 2>/dev/null
"$BIN/s2s-lm" text --what ctx --units "$T"/fr/*.tar |
    "$BIN/s2s-lm" train --order 4 --tok units -o "$T/units.arpa" 2>/dev/null
"$BIN/s2s-score" --mode t2t,s2s --lm "ngram:$T/chars.arpa,$T/units.arpa" -o "$T/score" \
    "$T"/fr/*.tar >"$T/score.txt" 2>"$T/score.log" || { cat "$T/score.log"; fail "score"; }
python3 - "$T/score/report.json" <<'EOF' || fail "report"
import json, sys
r = json.load(open(sys.argv[1]))
for mode in ("t2t", "s2s"):
    m = r["modes"][mode]
    assert m["pairs"] == 12 and m["failed"] == 0, (mode, m["pairs"], m["failed"])
    assert 0 <= m["accuracy"] <= 1 and list(m["by_lang"]) == ["fr"], mode
    print(f"{mode}: accuracy {m['accuracy']:.3f} over {m['pairs']} French pairs")
EOF
echo "build_new_language: OK"

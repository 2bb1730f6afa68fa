#!/usr/bin/env bash
# n-gram scoring speed: tokens per second per core of our ARPA model (s2s-lm ppl: tokenize,
# intern, back off through the hash table), beside plain readings of the same ARPA file (awk
# counting its n-grams) and IRSTLM's compile-lm --eval on the same text. Models: 3-gram and
# 4-gram trained by s2s-lm on all StoryCloze sentences (7484 lines); the text scored is the same
# sentences, pre-tokenized (so tokenization is a whitespace split). Goal: >= 1M tokens/s/core.
# Figures are medians of RUNS runs (default 5). Usage: bench/ngram.sh [BUILD_DIR]
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${1:-${S2S_BUILD:-$SRC/build}}" && pwd)
LM="$BUILD/bin/s2s-lm"
SHARED=${S2S_SHARED:-$SRC/../shared}
CSV="$SHARED/corpora/storycloze_spring2016/cloze_test_val__spring2016.csv"
RUNS=${RUNS:-5}
REPEAT=${REPEAT:-20}
export PATH="$PATH:/usr/lib/irstlm/bin"
[ -x "$LM" ] || { echo "no $LM (build first)" >&2; exit 2; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$T"
python3 - "$CSV" <<'EOF'
import csv, sys
rows = list(csv.reader(open(sys.argv[1], encoding="utf-8")))[1:]
open("all.txt", "w", encoding="utf-8").write("\n".join(s for r in rows for s in r[1:5]) + "\n")
EOF
"$LM" tok all.txt >all.tok
have_irst=0
command -v compile-lm >/dev/null && have_irst=1
[ $have_irst = 1 ] && command -v add-start-end.sh >/dev/null && add-start-end.sh <all.tok >all.se

median() { sort -g | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
# CPU seconds (user + system) of one command: posix_spawn + wait4, so nothing but the command
# itself is counted (microsecond resolution).
cpu() {
    python3 -c 'import os, sys
null = os.open(os.devnull, os.O_WRONLY)
pid = os.posix_spawnp(sys.argv[1], sys.argv[1:], os.environ,
                      file_actions=[(os.POSIX_SPAWN_DUP2, null, 1), (os.POSIX_SPAWN_DUP2, null, 2)])
_, status, ru = os.wait4(pid, 0)
if os.waitstatus_to_exitcode(status): sys.exit("failed: " + " ".join(sys.argv[1:]))
print("%.4f" % (ru.ru_utime + ru.ru_stime))' "$@"
}

echo "| model | n-grams | awk counts the ARPA n-grams (s) | our load (s CPU) | our scoring (tokens/s/core) | our ppl, whole run (s CPU) | IRSTLM compile-lm --eval, whole run (s CPU) |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
for order in 3 4; do
    "$LM" train --order $order -o lm.arpa all.txt 2>/dev/null
    ngrams=$(sed -n 's/^ngram [0-9]*=//p' lm.arpa | paste -sd+ | bc)
    awk_s=() load=() rate=() whole=() irst=()
    for r in $(seq "$RUNS"); do
        awk_s+=("$(cpu awk '/^\\[0-9]+-grams:/{s=1;next} /^\\/{s=0} s && NF {n++} END {print n}' lm.arpa)")
        "$LM" ppl --time --repeat "$REPEAT" --tok units lm.arpa all.tok 2>tm.txt >/dev/null
        load+=("$(sed -n 's/.* in \([0-9.]*\) s CPU$/\1/p' tm.txt)")
        rate+=("$(sed -n 's/.*: \([0-9]*\) tokens\/s$/\1/p' tm.txt)")
        whole+=("$(cpu "$LM" ppl --tok units lm.arpa all.tok)")
        if [ $have_irst = 1 ]; then
            irst+=("$(cpu compile-lm lm.arpa --eval=all.se)")
        else
            irst+=("n/a")
        fi
    done
    m() { printf '%s\n' "$@" | median; }
    irst_m=n/a
    [ $have_irst = 1 ] && irst_m=$(m "${irst[@]}")
    printf '| %d-gram | %d | %.4f | %.4f | %.0f | %.4f | %s |\n' "$order" "$ngrams" "$(m "${awk_s[@]}")" \
        "$(m "${load[@]}")" "$(m "${rate[@]}")" "$(m "${whole[@]}")" "$irst_m"
done
tokens=$("$LM" ppl --tok units lm.arpa all.tok | sed -n 's/.*scored=\([0-9]*\).*/\1/p')
echo
echo "Scored text: $tokens tokens (words + </s>), scored $REPEAT times per run for the rate; whole-run"
echo "columns load the model and score the text once. $(nproc) cores, $(uname -m); medians of $RUNS runs."

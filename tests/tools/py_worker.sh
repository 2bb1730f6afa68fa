#!/usr/bin/env bash
# The Python reference worker (scorer/s2s_worker.py) with a tiny model defined in
# tests/workers/test_s2s_worker.py, as a real separate process: straight over its stdin/stdout and
# through `s2s-score --lm worker:...` in all four modes. Every NLL and token count is recomputed
# independently in the test (regex tokenizer, math.log of the fixed bigram probabilities,
# hand-written tokens for the lm-evaluation-harness boundary rule).
set -euo pipefail
BIN=${S2S_BIN:?}
SRC=${S2S_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
python3 "$SRC/tests/workers/test_s2s_worker.py" "$BIN" "$SRC" "$T" || {
    echo "FAIL: tests/workers/test_s2s_worker.py" >&2
    exit 1
}
echo "py_worker: ok"

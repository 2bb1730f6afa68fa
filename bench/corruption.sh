#!/usr/bin/env bash
# bench/corruption.sh [BIN] — share of damaged shards that s2s-shard detects.
#
# Packs a 4-sample stream with audio (WAV -> FLAC) and units into one shard, then makes damaged
# copies: every byte of the shard flipped (one bit, deterministic), every byte of its index
# flipped, the shard cut at every 64th byte, and every byte of dataset.json flipped. All copies
# are checked by ONE `s2s-shard verify` process (one directory per copy). For a sample of the
# shard flips (every 5th byte) it also runs `s2s-shard cat` — the reading path the scorer uses —
# and classifies each copy: refused with an error, or read with output identical to the clean
# shard (harmless: the flip hit nothing the reader uses), or read with DIFFERENT output (silently
# wrong — must be 0). Prints markdown rows. Goal: verify detects 100%.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
BIN=$(cd "${1:-${S2S_BIN:-$SRC/build/bin}}" && pwd)
for t in s2s-pack s2s-shard; do
  [ -x "$BIN/$t" ] || { echo "corruption.sh: $BIN/$t not built" >&2; exit 2; }
done
T=$(mktemp -d)
DMG=$(mktemp -d -p /dev/shm 2>/dev/null || mktemp -d)
trap 'rm -rf "$T" "$DMG"' EXIT
cd "$T"
python3 "$SRC/tests/bad-inputs/gen.py" stream 4 in.tar
python3 - <<'EOF'
# add a units member per sample (text member -> gzip in the shard)
import io, tarfile
src = tarfile.open("in.tar")
out = tarfile.open("in2.tar", "w", format=tarfile.USTAR_FORMAT)
prev = None
members = [(m, src.extractfile(m).read()) for m in src]
for i, (m, data) in enumerate(members):
    out.addfile(m, io.BytesIO(data))
    key = m.name.split(".", 1)[0]
    nxt = members[i + 1][0].name.split(".", 1)[0] if i + 1 < len(members) else None
    if nxt != key:
        u = " ".join(str((j * 7) % 50) for j in range(40)).encode()
        ti = tarfile.TarInfo(key + ".ctx.units"); ti.size = len(u)
        out.addfile(ti, io.BytesIO(u))
out.close()
EOF
mkdir g
"$BIN/s2s-pack" -q -o 'g/t-%06d.tar' -n 0 in2.tar
"$BIN/s2s-shard" cat g > clean.tar

python3 - "$BIN/s2s-shard" g "$DMG" <<'EOF'
import hashlib, os, subprocess, sys
shard_bin, g, dmg = sys.argv[1], sys.argv[2], sys.argv[3]
names = ["t-000000.tar", "t-000000.tar.idx", "dataset.json"]
clean = {n: open(os.path.join(g, n), "rb").read() for n in names}
cases = []  # (kind, file, damaged bytes)
for n, kind in (("t-000000.tar", "shard: 1-bit flip of every byte"),
                ("t-000000.tar.idx", "index: 1-bit flip of every byte"),
                ("dataset.json", "dataset.json: 1-bit flip of every byte")):
    data = clean[n]
    for pos in range(len(data)):
        b = bytearray(data)
        b[pos] ^= 1 << (pos % 8)
        cases.append((kind, n, bytes(b), pos))
data = clean["t-000000.tar"]
for cut in range(0, len(data), 64):
    cases.append(("shard: cut at every 64th byte", "t-000000.tar", data[:cut], cut))
dirs = []
for i, (kind, n, b, pos) in enumerate(cases):
    d = os.path.join(dmg, f"{i:06d}")
    os.makedirs(d)
    for m in names:
        open(os.path.join(d, m), "wb").write(b if m == n else clean[m])
    dirs.append(d)
# one process verifies every copy; it prints one FAILED line per damaged directory
r = subprocess.run([shard_bin, "verify", "-q"] + dirs, capture_output=True, text=True)
failed = set()
for line in r.stderr.splitlines():
    for part in line.split():
        if part.startswith(dmg + "/"):
            failed.add(part[len(dmg) + 1:len(dmg) + 7])
stats = {}
for i, (kind, n, b, pos) in enumerate(cases):
    s = stats.setdefault(kind, [0, 0])
    s[0] += 1
    s[1] += f"{i:06d}" in failed
print("| damage | copies | detected by verify | share |")
print("|---|---:|---:|---:|")
for kind, (tot, det) in stats.items():
    print(f"| {kind} | {tot} | {det} | {100.0 * det / tot:.2f}% |")
# the reading path: s2s-shard cat on every 5th shard flip
clean_out = open("clean.tar", "rb").read()
refused = same = different = 0
diff_pos = []
for i, (kind, n, b, pos) in enumerate(cases):
    if kind.startswith("shard: 1-bit") and pos % 5 == 0:
        p = subprocess.run([shard_bin, "cat", dirs[i]], capture_output=True)
        if p.returncode != 0:
            refused += 1
        elif p.stdout == clean_out:
            same += 1
        else:
            different += 1
            diff_pos.append(pos)
tot = refused + same + different
print(f"| shard flips read by `s2s-shard cat` (every 5th byte) | {tot} | refused {refused}, "
      f"identical output {same}, silently different {different} | "
      f"{100.0 * different / max(tot, 1):.2f}% wrong |")
if different:
    print("silently different at shard bytes:", diff_pos[:20], file=sys.stderr)
sys.exit(0 if all(d == t for t, d in stats.values()) and different == 0 else 1)
EOF

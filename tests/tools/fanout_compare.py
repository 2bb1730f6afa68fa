#!/usr/bin/env python3
"""fanout_compare.py ONE.tar MERGED.tar N — the sample streams (`s2s-shard cat DIR`) of a
one-machine build and of N merged --shard parts hold the same samples with the same bytes.

Read with Python's tarfile (an independent reader). Members are compared by name, so the order
of samples may differ. Audio and units members must be byte-identical. Item JSON must be equal
except for one field: the part's s2s-import provenance record carries "shard": "I/N", and I must
be the part the id hashes to (s2s_fnv1a64 of the id mod N, as s2s_part_keep). Exit 1 on any
difference, naming the first one."""
import hashlib
import json
import sys
import tarfile


def load(path):
    members, order = {}, []
    with tarfile.open(path, "r|") as t:
        for m in t:
            members[m.name] = t.extractfile(m).read()
            key = m.name.split(".", 1)[0]
            if not order or order[-1] != key:
                order.append(key)
    return members, order


def fnv1a64(s):
    # the published FNV-1a 64 (libs2s/util.c's s2s_fnv1a64 since 0.2.0)
    h = 14695981039346656037
    for b in s.encode():
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def fail(msg):
    print("fanout_compare: " + msg, file=sys.stderr)
    sys.exit(1)


def main():
    one, one_order = load(sys.argv[1])
    merged, merged_order = load(sys.argv[2])
    n = int(sys.argv[3])
    if not one:
        fail("%s holds no members" % sys.argv[1])
    if set(one) != set(merged):
        only1 = sorted(set(one) - set(merged))[:3]
        only2 = sorted(set(merged) - set(one))[:3]
        fail("member names differ: only in one build %s, only in merged %s" % (only1, only2))
    json_diff = 0
    for name in sorted(one):
        a, b = one[name], merged[name]
        if not name.endswith(".json"):
            if a != b:
                fail("%s: bytes differ (%s vs %s)" % (name, hashlib.sha256(a).hexdigest()[:12],
                                                      hashlib.sha256(b).hexdigest()[:12]))
            continue
        if a == b:
            continue
        ia, ib = json.loads(a), json.loads(b)
        key = name[: -len(".json")]
        want = "%d/%d" % (fnv1a64(key) % n, n)
        for rec in ib.get("provenance", []):
            if rec.get("tool") == "s2s-import" and rec.get("params", {}).get("shard") is not None:
                if rec["params"]["shard"] != want:
                    fail("%s: import provenance says shard %s, its id hashes to %s"
                         % (name, rec["params"]["shard"], want))
                del rec["params"]["shard"]
        if ia != ib:
            fail("%s: items differ beyond the import's shard record:\n  %s\n  %s" % (name, a, b))
        json_diff += 1
    samples = len(set(n.split(".", 1)[0] for n in one))
    print("fanout_compare: %d samples, %d members equal (%d items differ only in the import's "
          "\"shard\" record); sample order %s" % (samples, len(one), json_diff,
                                                  "same" if one_order == merged_order else "differs"))


main()

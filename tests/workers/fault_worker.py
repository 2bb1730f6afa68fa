#!/usr/bin/env python3
"""A worker for tests: the reference protocol layer (scorer/s2s_worker.py) over a tiny model,
plus injected faults. The tiny model: nll = 0.25 * (number of UTF-8 bytes of the candidate text)
+ 0.01 * (number of words of the context), ntok = number of words of the candidate.

Usage: fault_worker.py BEHAVIOUR [STATEFILE]
  ok          answer every request, in order
  reverse     read requests in batches of 8 and answer each batch in reverse order
  crash       exit(1) after 5 answers, the first time only (STATEFILE marks it)
  hang        stop answering after 5 answers, the first time only
  garbage     print a non-JSON line after 5 answers, the first time only
  wrongid     answer id+100000 after 5 answers, the first time only
  duplicate   answer the 5th request twice, the first time only
  eof         close stdout after 5 answers, the first time only
  always-crash  exit(1) after 3 answers, every time
  same        every answer is nll=1.0, ntok=1 (a broken model the report must flag)
  variants    valid replies in every shape JSON allows (key order, spaces, extra keys, exponents),
              so the scorer's fast path and its jansson fallback must agree
  nohello     never print the hello line
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "scorer"))
import s2s_worker  # noqa: E402


class Tiny:
    model_id = "tiny-test-model"

    def score(self, req):
        cand = req["candidate"]["text"]
        ctx = req["context"]["text"]
        return 0.25 * len(cand.encode()) + 0.01 * len(ctx.split()), len(cand.split())


def first_time(state):
    if not state or os.path.exists(state):
        return False
    open(state, "w").close()
    return True


def main():
    mode = sys.argv[1]
    state = sys.argv[2] if len(sys.argv) > 2 else None
    m = Tiny()
    if mode == "ok":
        s2s_worker.serve(m)
        return
    if mode == "nohello":
        for _ in sys.stdin:
            pass
        return
    out = sys.stdout
    out.write(json.dumps({"hello": "s2s-worker", "protocol": 1, "model_id": m.model_id}) + "\n")
    out.flush()
    fault = mode == "always-crash" or first_time(state)
    n = 0
    batch = []

    def answer(req):
        if mode == "same":
            return {"id": req["id"], "nll": 1.0, "ntok": 1}
        nll, ntok = m.score(req)
        return {"id": req["id"], "nll": nll, "ntok": ntok}

    shapes = [
        lambda i, x, k: '{"id":%d,"nll":%s,"ntok":%d}' % (i, repr(x), k),
        lambda i, x, k: '{"ntok":%d,"id":%d,"nll":%s}' % (k, i, repr(x)),
        lambda i, x, k: '{"id":%d,"nll":%s,"ntok":%d,"tokens":[1,2]}' % (i, repr(x), k),
        lambda i, x, k: ' { "id" : %d , "nll" :\t%.17e , "ntok" : %d }\r' % (i, x, k),
        lambda i, x, k: '{"id":%d,"nll":%.17E,"ntok":%d}' % (i, x, k),
        lambda i, x, k: '{"id":%d,"nll":%s,"ntok":%d,"error":null}' % (i, repr(x), k),
    ]
    for line in sys.stdin:
        req = json.loads(line)
        if mode == "variants":
            a = answer(req)
            out.write(shapes[n % len(shapes)](a["id"], a["nll"], a["ntok"]) + "\n")
            out.flush()
            n += 1
            continue
        if mode == "reverse":
            batch.append(req)
            if len(batch) == 8:
                for r in reversed(batch):
                    out.write(json.dumps(answer(r)) + "\n")
                out.flush()
                batch = []
            continue
        n += 1
        if fault and n == (4 if mode == "always-crash" else 6):
            if mode in ("crash", "always-crash"):
                sys.exit(1)
            if mode == "hang":
                time.sleep(3600)
            if mode == "garbage":
                out.write("this is not json\n")
                out.flush()
                continue
            if mode == "wrongid":
                out.write(json.dumps({"id": req["id"] + 100000, "nll": 1.0, "ntok": 1}) + "\n")
                out.flush()
                continue
            if mode == "eof":
                out.close()
                for _ in sys.stdin:
                    pass
                return
        out.write(json.dumps(answer(req)) + "\n")
        if mode == "duplicate" and fault and n == 5:
            out.write(json.dumps(answer(req)) + "\n")
        out.flush()
    for r in reversed(batch):
        out.write(json.dumps(answer(r)) + "\n")
    out.flush()


if __name__ == "__main__":
    main()

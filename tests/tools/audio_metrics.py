#!/usr/bin/env python3
"""Test signals and resampling quality figures, standard library only (no numpy).

  gen tone  OUT.wav RATE SECONDS FREQ [AMP] [s16|f32]
  gen sweep OUT.wav RATE SECONDS F0 F1 [AMP] [s16|f32]   linear chirp F0 -> F1 Hz
  snr-sweep OUT.wav SECONDS F0 F1 [AMP]   SNR (dB) of OUT against the same chirp computed
                                          exactly at OUT's rate (the ideal resampler's output)
  snr-tone  OUT.wav FREQ [AMP]            same for a tone
  reject IN.wav OUT.wav                   stop-band rejection: input power / output power, dB
  freq OUT.wav                            tone frequency from interpolated zero crossings, Hz
  info OUT.wav                            rate channels frames format

Edges (the first and last 50 ms) are left out of every figure: there the ideal output of a
signal that starts abruptly is not the analytic one.
"""
import math
import struct
import sys

EDGE = 0.05


def read_wav(path):
    """Returns (rate, channels, samples as floats of channel 0, fmt) for PCM16/float32 WAV."""
    with open(path, "rb") as f:
        d = f.read()
    if d[:4] != b"RIFF" or d[8:12] != b"WAVE":
        raise SystemExit(f"{path}: not a WAV file")
    off, fmt, data = 12, None, None
    while off + 8 <= len(d):
        cid, size = d[off:off + 4], struct.unpack("<I", d[off + 4:off + 8])[0]
        body = d[off + 8:off + 8 + size]
        if cid == b"fmt ":
            tag, ch, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
            if tag == 0xFFFE:
                tag = struct.unpack("<H", body[24:26])[0]
            fmt = (tag, ch, rate, bits)
        elif cid == b"data":
            data = body
            break
        off += 8 + size + (size & 1)
    if not fmt or data is None:
        raise SystemExit(f"{path}: no fmt or data chunk")
    tag, ch, rate, bits = fmt
    if tag == 1 and bits == 16:
        n = len(data) // 2
        v = [x / 32768.0 for x in struct.unpack(f"<{n}h", data[:2 * n])]
        kind = "s16"
    elif tag == 3 and bits == 32:
        n = len(data) // 4
        v = list(struct.unpack(f"<{n}f", data[:4 * n]))
        kind = "f32"
    else:
        raise SystemExit(f"{path}: unsupported WAV format tag {tag} bits {bits}")
    return rate, ch, v[0::ch], kind


def write_wav(path, rate, samples, kind):
    if kind == "s16":
        data = struct.pack(f"<{len(samples)}h",
                           *[max(-32768, min(32767, round(x * 32768))) for x in samples])
        tag, bits = 1, 16
    else:
        data = struct.pack(f"<{len(samples)}f", *samples)
        tag, bits = 3, 32
    ba = bits // 8
    fmt = struct.pack("<HHIIHH", tag, 1, rate, rate * ba, ba, bits)
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(data)) + b"WAVE")
        f.write(b"fmt " + struct.pack("<I", len(fmt)) + fmt)
        f.write(b"data" + struct.pack("<I", len(data)) + data)


def chirp(rate, secs, f0, f1, amp, n=None):
    n = round(rate * secs) if n is None else n
    k = (f1 - f0) / secs
    out = []
    for i in range(n):
        t = i / rate
        out.append(amp * math.sin(2 * math.pi * (f0 * t + 0.5 * k * t * t)))
    return out


def snr(got, ref, rate):
    e = int(EDGE * rate)
    n = min(len(got), len(ref))
    s = sum(r * r for r in ref[e:n - e])
    d = sum((g - r) ** 2 for g, r in zip(got[e:n - e], ref[e:n - e]))
    return 10 * math.log10(s / d) if d > 0 else 999.0


def power(v, rate):
    e = int(EDGE * rate)
    v = v[e:len(v) - e]
    return sum(x * x for x in v) / max(1, len(v))


def main(a):
    cmd = a[0]
    if cmd == "gen":
        what, out, rate, secs = a[1], a[2], int(a[3]), float(a[4])
        if what == "tone":
            f, amp = float(a[5]), float(a[6]) if len(a) > 6 else 0.5
            kind = a[7] if len(a) > 7 else "s16"
            v = chirp(rate, secs, f, f, amp)
        else:
            f0, f1 = float(a[5]), float(a[6])
            amp = float(a[7]) if len(a) > 7 else 0.5
            kind = a[8] if len(a) > 8 else "s16"
            v = chirp(rate, secs, f0, f1, amp)
        write_wav(out, rate, v, kind)
    elif cmd == "snr-sweep":
        rate, _, got, _ = read_wav(a[1])
        secs, f0, f1 = float(a[2]), float(a[3]), float(a[4])
        amp = float(a[5]) if len(a) > 5 else 0.5
        print(f"{snr(got, chirp(rate, secs, f0, f1, amp, len(got)), rate):.1f}")
    elif cmd == "snr-tone":
        rate, _, got, _ = read_wav(a[1])
        f, amp = float(a[2]), float(a[3]) if len(a) > 3 else 0.5
        print(f"{snr(got, chirp(rate, len(got) / rate, f, f, amp, len(got)), rate):.1f}")
    elif cmd == "reject":
        r1, _, x, _ = read_wav(a[1])
        r2, _, y, _ = read_wav(a[2])
        py = power(y, r2)
        print(f"{10 * math.log10(power(x, r1) / py) if py > 0 else 999.0:.1f}")
    elif cmd == "freq":
        rate, _, v, _ = read_wav(a[1])
        e = int(EDGE * rate)
        v = v[e:len(v) - e]
        cross = []
        for i in range(1, len(v)):
            if v[i - 1] < 0 <= v[i]:
                cross.append(i - 1 + (-v[i - 1]) / (v[i] - v[i - 1]))
        if len(cross) < 2:
            raise SystemExit(f"{a[1]}: no tone found")
        print(f"{(len(cross) - 1) * rate / (cross[-1] - cross[0]):.2f}")
    elif cmd == "info":
        rate, ch, v, kind = read_wav(a[1])
        print(rate, ch, len(v), kind)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])

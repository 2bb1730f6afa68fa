/* s2s/flacenc.h — a small, fast FLAC encoder for integer PCM (what s2s-pack's --flac-level 0,
 * its default, uses; docs/shards.md "FLAC").
 *
 * It writes a streamable-subset FLAC stream (RFC 9639) with fixed blocks of 4096 samples, each
 * channel coded independently with the best of the fixed predictors of order 0-2 (or CONSTANT,
 * or VERBATIM when prediction does not pay), residuals Rice-coded with a per-block search of the
 * partition order (0-8) and the parameters. No LPC, no stereo decorrelation, no MD5 (STREAMINFO's
 * MD5 is zero: "unset" for every decoder), one VORBIS_COMMENT block with the vendor string
 * "s2sbench flacenc 1" and no comments. The output depends only on the input samples: every
 * choice is made from exact integer sums, so every x86-64 (and every other) CPU writes the same
 * bytes. The encoding loop runs in an AVX2 build where the CPU has AVX2/BMI2/LZCNT and the frame
 * CRC-16 by PCLMULQDQ where it has that; both are exact integer or polynomial arithmetic, the same
 * bytes as the baseline code (tests/unit/test_flacenc.c compares them). */
#ifndef S2S_FLACENC_H
#define S2S_FLACENC_H

#include "s2s/err.h"
#include "s2s/util.h"
#include <stddef.h>
#include <stdint.h>

/* Samples to encode, interleaved: either raw little-endian PCM bytes (raw != NULL; in_bits 8 =
 * unsigned 8-bit, stored as 16-bit (x - 128) * 256; 16; 24) or int32 values (i32 != NULL,
 * already at out_bits: a value outside that range is S2S_EINVAL). */
typedef struct s2s_flacenc_in {
    const unsigned char *raw;
    const int32_t *i32;
    unsigned in_bits;  /* for raw: 8, 16 or 24 */
    unsigned out_bits; /* 16 or 24 */
    uint64_t frames;   /* samples per channel, >= 1 */
    unsigned rate;     /* 1-1048575 Hz (above 655350 only STREAMINFO holds it: still valid
                        * FLAC, but outside the streamable subset) */
    unsigned channels; /* 1-8 */
} s2s_flacenc_in;

/* Encodes in to a complete FLAC stream, replacing out's contents (out->len is set; the buffer
 * is grown as needed and may be reused across calls). Returns 0, or S2S_EINVAL for parameters
 * out of range, S2S_ENOMEM. */
int s2s_flacenc(const s2s_flacenc_in *in, s2s_buf *out, s2s_err *err);

/* s2s_flacenc with flags: S2S_FLACENC_PORTABLE runs the code for any x86-64 even where the CPU
 * has AVX2 and PCLMULQDQ (the bytes are the same either way; for the test that checks so). */
#define S2S_FLACENC_PORTABLE 1u
int s2s_flacenc_flags(const s2s_flacenc_in *in, unsigned flags, s2s_buf *out, s2s_err *err);

/* CRC-16 of FLAC frames (polynomial 0x8005, MSB first, initial value 0) of p[0..n-1], as the
 * encoder computes it: with PCLMULQDQ where the CPU has it (portable = 0), else (or with
 * portable = 1) with tables. Both give the same value on every input; exported for the test
 * that checks so. Returns the CRC (0-65535). */
int s2s_flac_crc16(const void *p, size_t n, int portable);

#endif

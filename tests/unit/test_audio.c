/* test_audio.c — libs2s/audio.c: WAV/FLAC round trips are exact and deterministic, stereo is
 * mixed down, streaming reads equal whole reads, and every kind of bad input is named. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <libavutil/log.h>
#include <sndfile.h>

#include "s2s/audio.h"

static int16_t *pcm_tone(size_t n) {
    int16_t *p = malloc(n * sizeof *p);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++)
        p[i] = (int16_t)lrint(12000 * sin(0.05 * (double)i));
    p[7] = -32768; /* extremes survive */
    p[8] = 32767;
    return p;
}

static void test_s16_round_trip_wav_flac(void **state) {
    (void)state;
    size_t n = 10007;
    int16_t *p = pcm_tone(n);
    s2s_err err;
    s2s_err_clear(&err);
    for (int c = S2S_AUDIO_WAV; c <= S2S_AUDIO_FLAC; c++) {
        unsigned char *b1, *b2;
        size_t l1, l2;
        assert_int_equal(s2s_audio_encode_s16(p, n, 16000, c, &b1, &l1, &err), 0);
        assert_int_equal(s2s_audio_encode_s16(p, n, 16000, c, &b2, &l2, &err), 0);
        assert_int_equal(l1, l2); /* deterministic */
        assert_memory_equal(b1, b2, l1);
        if (c == S2S_AUDIO_WAV) assert_int_equal(l1, 44 + 2 * n); /* plain header, no extras */
        s2s_audio a;
        assert_int_equal(s2s_audio_decode(b1, l1, "x", &a, &err), 0);
        assert_int_equal(a.n, n);
        assert_int_equal(a.rate, 16000);
        assert_int_equal(a.src_channels, 1);
        assert_int_equal(a.src_container, c);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(lrintf(a.samples[i] * 32768.0f), p[i]);
        /* float -> s16 encode gives back the same bytes: the scaling is symmetric */
        unsigned char *b3;
        size_t l3;
        assert_int_equal(s2s_audio_encode(&a, c, S2S_AUDIO_S16, &b3, &l3, &err), 0);
        assert_int_equal(l3, l1);
        assert_memory_equal(b3, b1, l1);
        s2s_audio_free(&a);
        free(b1);
        free(b2);
        free(b3);
    }
    free(p);
}

static void test_f32_wav_and_clipping(void **state) {
    (void)state;
    float x[6] = {0.0f, 0.5f, -0.25f, 1.5f, -3.0f, 0.999f};
    s2s_audio a = {x, 6, 24000, 0, 0, 0, ""};
    s2s_err err;
    unsigned char *b;
    size_t l;
    assert_int_equal(s2s_audio_encode(&a, S2S_AUDIO_WAV, S2S_AUDIO_F32, &b, &l, &err), 0);
    s2s_audio d;
    assert_int_equal(s2s_audio_decode(b, l, "f.wav", &d, &err), 0);
    assert_int_equal(d.src_format, S2S_AUDIO_F32);
    assert_int_equal(d.n, 6);
    assert_memory_equal(d.samples, x, sizeof x); /* float kept as is, > 1 too */
    s2s_audio_free(&d);
    free(b);
    assert_int_equal(s2s_audio_encode(&a, S2S_AUDIO_WAV, S2S_AUDIO_S16, &b, &l, &err), 0);
    assert_int_equal(s2s_audio_decode(b, l, "s.wav", &d, &err), 0);
    assert_true(fabsf(d.samples[3] - 32767 / 32768.0f) < 1e-7f); /* clipped, not wrapped */
    assert_true(d.samples[4] == -1.0f);
    s2s_audio_free(&d);
    free(b);
    assert_int_equal(s2s_audio_encode(&a, S2S_AUDIO_FLAC, S2S_AUDIO_F32, &b, &l, &err), S2S_EINVAL);
    assert_null(b);
    assert_int_equal(s2s_audio_encode(&a, 9, S2S_AUDIO_S16, &b, &l, &err), S2S_EINVAL);
}

/* A stereo 16-bit WAV written by hand: L = 0.5, R = -0.25 -> mono 0.125. */
static unsigned char *stereo_wav(size_t frames, size_t *len) {
    size_t data = frames * 4;
    unsigned char *b = calloc(1, 44 + data);
    assert_non_null(b);
    memcpy(b, "RIFF", 4);
    uint32_t v = (uint32_t)(36 + data);
    memcpy(b + 4, &v, 4);
    memcpy(b + 8, "WAVEfmt ", 8);
    v = 16;
    memcpy(b + 16, &v, 4);
    uint16_t h[2] = {1, 2};
    memcpy(b + 20, h, 4);
    v = 44100;
    memcpy(b + 24, &v, 4);
    v = 44100 * 4;
    memcpy(b + 28, &v, 4);
    h[0] = 4;
    h[1] = 16;
    memcpy(b + 32, h, 4);
    memcpy(b + 36, "data", 4);
    v = (uint32_t)data;
    memcpy(b + 40, &v, 4);
    for (size_t i = 0; i < frames; i++) {
        int16_t s[2] = {16384, -8192};
        memcpy(b + 44 + 4 * i, s, 4);
    }
    *len = 44 + data;
    return b;
}

static void test_stereo_downmix_and_streaming(void **state) {
    (void)state;
    size_t len, n = 20000;
    unsigned char *b = stereo_wav(n, &len);
    s2s_err err;
    s2s_audio a;
    assert_int_equal(s2s_audio_decode(b, len, "st.wav", &a, &err), 0);
    assert_int_equal(a.n, n);
    assert_int_equal(a.src_channels, 2);
    assert_int_equal(a.rate, 44100);
    assert_string_equal(a.codec, "pcm_s16le");
    for (size_t i = 0; i < n; i++)
        assert_true(a.samples[i] == 0.125f);
    /* the reader in small odd blocks gives the same samples */
    s2s_audio info;
    s2s_audio_reader *r = s2s_audio_reader_open(b, len, "st.wav", &info, &err);
    assert_non_null(r);
    assert_null(info.samples);
    float blk[37];
    size_t total = 0;
    long got;
    while ((got = s2s_audio_reader_read(r, blk, 37, &err)) > 0) {
        assert_memory_equal(blk, a.samples + total, (size_t)got * sizeof *blk);
        total += (size_t)got;
    }
    assert_int_equal(got, 0);
    assert_int_equal(total, n);
    assert_int_equal(s2s_audio_reader_count(r), n);
    s2s_audio_reader_close(r);
    s2s_audio_free(&a);
    /* a codec nobody decodes (WAV format tag 0x7777) */
    uint16_t tag = 0x7777;
    memcpy(b + 20, &tag, 2);
    assert_int_equal(s2s_audio_decode(b, len, "u.wav", &a, &err), S2S_EUNSUP);
    assert_non_null(strstr(err.msg, "unsupported codec"));
    s2s_audio_free(&a);
    tag = 1;
    memcpy(b + 20, &tag, 2);
    /* cut: the data chunk says more than there is */
    assert_int_equal(s2s_audio_decode(b, len - 1000, "st.wav", &a, &err), S2S_EFORMAT);
    assert_non_null(strstr(err.msg, "truncated WAV"));
    s2s_audio_free(&a);
    free(b);
}

static void test_bad_inputs(void **state) {
    (void)state;
    s2s_err err;
    s2s_audio a;
    assert_int_equal(s2s_audio_decode("", 0, "e.wav", &a, &err), S2S_EDATA);
    assert_non_null(strstr(err.msg, "zero-length"));
    s2s_audio_free(&a);
    static const char junk[] = "this is not audio at all, just some text in a file........";
    assert_int_equal(s2s_audio_decode(junk, sizeof junk, "j.mp3", &a, &err), S2S_EFORMAT);
    assert_non_null(strstr(err.msg, "not readable as audio"));
    s2s_audio_free(&a);
    /* NaN in a float WAV */
    float x[4] = {0.1f, 0.2f, 0.3f, 0.4f};
    s2s_audio f = {x, 4, 8000, 0, 0, 0, ""};
    unsigned char *b;
    size_t l;
    assert_int_equal(s2s_audio_encode(&f, S2S_AUDIO_WAV, S2S_AUDIO_F32, &b, &l, &err), 0);
    float nan = NAN;
    unsigned char *data = b + l - 4 * 2; /* third sample: samples are the file's last bytes */
    memcpy(data, &nan, 4);
    assert_int_equal(s2s_audio_decode(b, l, "n.wav", &a, &err), S2S_EDATA);
    assert_non_null(strstr(err.msg, "NaN sample at 2"));
    s2s_audio_free(&a);
    free(b);
    /* FLAC cut in half */
    int16_t *p = pcm_tone(20000);
    assert_int_equal(s2s_audio_encode_s16(p, 20000, 16000, S2S_AUDIO_FLAC, &b, &l, &err), 0);
    assert_int_not_equal(s2s_audio_decode(b, l / 2, "c.flac", &a, &err), 0);
    assert_int_equal(err.code, S2S_EFORMAT);
    s2s_audio_free(&a);
    free(b);
    free(p);
    /* no samples at all: a valid empty WAV */
    assert_int_equal(s2s_audio_encode_s16(NULL, 0, 16000, S2S_AUDIO_WAV, &b, &l, &err), 0);
    assert_int_equal(s2s_audio_decode(b, l, "z.wav", &a, &err), S2S_EDATA);
    assert_non_null(strstr(err.msg, "zero-length"));
    s2s_audio_free(&a);
    free(b);
}

/* ---- s2s_wav_pcm_view against libsndfile ---------------------------------------------------- */

/* libsndfile read of buf, independent of audio.c: mono float (sum in channel order / channels,
 * as the reader mixes down), *frames, *rate. Returns NULL if libsndfile refuses the file. */
typedef struct {
    const unsigned char *p;
    sf_count_t n, pos;
} vmem;
static sf_count_t vm_len(void *u) {
    return ((vmem *)u)->n;
}
static sf_count_t vm_seek(sf_count_t off, int wh, void *u) {
    vmem *m = u;
    sf_count_t b = wh == SEEK_SET ? 0 : wh == SEEK_CUR ? m->pos : m->n;
    if (b + off < 0) return -1;
    return m->pos = b + off;
}
static sf_count_t vm_read(void *ptr, sf_count_t n, void *u) {
    vmem *m = u;
    if (m->pos >= m->n) return 0;
    if (n > m->n - m->pos) n = m->n - m->pos;
    memcpy(ptr, m->p + m->pos, (size_t)n);
    m->pos += n;
    return n;
}
static sf_count_t vm_write(const void *p, sf_count_t n, void *u) {
    (void)p, (void)n, (void)u;
    return 0;
}
static sf_count_t vm_tell(void *u) {
    return ((vmem *)u)->pos;
}
static float *sndfile_read(const unsigned char *buf, size_t size, size_t *frames, int *rate,
                           int *ch) {
    SF_VIRTUAL_IO io = {vm_len, vm_seek, vm_read, vm_write, vm_tell};
    vmem m = {buf, (sf_count_t)size, 0};
    SF_INFO info;
    memset(&info, 0, sizeof info);
    SNDFILE *sf = sf_open_virtual(&io, SFM_READ, &info, &m);
    if (!sf) return NULL;
    size_t n = (size_t)info.frames, c = (size_t)info.channels;
    float *all = malloc((n ? n : 1) * c * sizeof *all), *mono = malloc((n ? n : 1) * sizeof *mono);
    assert_non_null(all);
    assert_non_null(mono);
    size_t got = (size_t)sf_readf_float(sf, all, (sf_count_t)n);
    sf_close(sf);
    for (size_t i = 0; i < got; i++) {
        float s = 0;
        for (size_t k = 0; k < c; k++)
            s += all[i * c + k];
        mono[i] = c == 1 ? all[i] : s / (float)c;
    }
    free(all);
    *frames = got;
    *rate = info.samplerate;
    *ch = info.channels;
    return mono;
}

/* A WAV by hand: RIFF header, optional chunk `pre` (id, len bytes + pad), fmt, data. */
typedef struct {
    unsigned char b[65536];
    size_t n;
} wbuf;
static void put(wbuf *w, const void *p, size_t n) {
    assert_true(w->n + n <= sizeof w->b);
    memcpy(w->b + w->n, p, n);
    w->n += n;
}
static void put32(wbuf *w, uint32_t v) {
    unsigned char b[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    put(w, b, 4);
}
static void put16(wbuf *w, unsigned v) {
    unsigned char b[2] = {(unsigned char)v, (unsigned char)(v >> 8)};
    put(w, b, 2);
}
static void chunk(wbuf *w, const char *id, const void *p, uint32_t len, int pad) {
    put(w, id, 4);
    put32(w, len);
    put(w, p, len);
    if (pad && (len & 1)) put(w, "", 1);
}
static void fmt(wbuf *w, int ext, int ch, int rate, int bits) {
    unsigned align = (unsigned)(ch * bits / 8);
    put(w, "fmt ", 4);
    put32(w, ext ? 40 : 16);
    put16(w, ext ? 0xFFFE : 1);
    put16(w, (unsigned)ch);
    put32(w, (uint32_t)rate);
    put32(w, (uint32_t)rate * align);
    put16(w, align);
    put16(w, (unsigned)bits);
    if (ext) {
        static const unsigned char g[16] = {1,    0, 0, 0,    0, 0,    0x10, 0,
                                            0x80, 0, 0, 0xaa, 0, 0x38, 0x9b, 0x71};
        put16(w, 22);
        put16(w, (unsigned)bits);
        put32(w, 0); /* channel mask */
        put(w, g, 16);
    }
}
static void riff(wbuf *w) {
    w->n = 0;
    put(w, "RIFF\0\0\0\0WAVE", 12);
}
static void riff_size(wbuf *w) {
    uint32_t v = (uint32_t)(w->n - 8);
    memcpy(w->b + 4, &v, 4);
}
static unsigned char *noise(size_t n, unsigned seed) {
    unsigned char *p = malloc(n ? n : 1);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (unsigned char)(seed >> 16);
    }
    return p;
}

/* view(buf) == expect; when 1, libsndfile reads the same rate, channels, frames and samples,
 * and so does s2s_audio_decode (which goes through the view). */
#define agree(b, n, e, f) agree_at(__LINE__, b, n, e, f)
static void agree_at(int line, const unsigned char *buf, size_t size, int expect, size_t frames) {
    s2s_wav_pcm v;
    int got = s2s_wav_pcm_view(buf, size, &v);
    if (got != expect) fail_msg("line %d: view gave %d, expected %d", line, got, expect);
    if (!got) {
        assert_null(v.data);
        return;
    }
    assert_int_equal(v.frames, frames);
    assert_true(v.data >= buf &&
                v.data + v.frames * (size_t)v.channels * (size_t)v.bits / 8 <= buf + size);
    size_t n;
    int rate, ch;
    float *ref = sndfile_read(buf, size, &n, &rate, &ch);
    assert_non_null(ref);
    assert_int_equal(n, v.frames);
    assert_int_equal(rate, v.rate);
    assert_int_equal(ch, v.channels);
    s2s_audio a;
    s2s_err err;
    int rc = s2s_audio_decode(buf, size, "v.wav", &a, &err);
    if (n == 0) {
        assert_int_equal(rc, S2S_EDATA);
        assert_non_null(strstr(err.msg, "zero-length"));
    } else {
        assert_int_equal(rc, 0);
        assert_int_equal(a.n, n);
        assert_int_equal(a.rate, rate);
        assert_int_equal(a.src_channels, ch);
        assert_memory_equal(a.samples, ref, n * sizeof *ref); /* bit for bit */
    }
    s2s_audio_free(&a);
    free(ref);
}

static void test_wav_pcm_view_formats(void **state) {
    (void)state;
    /* what our tools write */
    int16_t *p = pcm_tone(1001);
    unsigned char *b;
    size_t l;
    s2s_err err;
    assert_int_equal(s2s_audio_encode_s16(p, 1001, 22050, S2S_AUDIO_WAV, &b, &l, &err), 0);
    agree(b, l, 1, 1001);
    s2s_wav_pcm v;
    assert_int_equal(s2s_wav_pcm_view(b, l, &v), 1);
    assert_int_equal(v.bits, 16);
    assert_int_equal(v.channels, 1);
    assert_int_equal(v.rate, 22050);
    assert_ptr_equal(v.data, b + 44);
    assert_memory_equal(v.data, p, 2002); /* little-endian host */
    /* every prefix: 0 or a view inside the prefix (ASan checks no byte past size is read) */
    for (size_t k = 0; k < 60; k++)
        assert_int_equal(s2s_wav_pcm_view(b, k, &v), 0);
    for (size_t k = 60; k < l; k += 7)
        assert_int_equal(s2s_wav_pcm_view(b, k, &v), 0); /* data chunk cut: refused */
    free(b);
    free(p);
    /* float WAV: not ours to take */
    float x[3] = {0.1f, 0.2f, 0.3f};
    s2s_audio f = {x, 3, 8000, 0, 0, 0, ""};
    assert_int_equal(s2s_audio_encode(&f, S2S_AUDIO_WAV, S2S_AUDIO_F32, &b, &l, &err), 0);
    agree(b, l, 0, 0);
    free(b);
    p = pcm_tone(50);
    assert_int_equal(s2s_audio_encode_s16(p, 50, 8000, S2S_AUDIO_FLAC, &b, &l, &err), 0);
    agree(b, l, 0, 0); /* FLAC */
    free(b);
    free(p);
    assert_int_equal(s2s_wav_pcm_view(NULL, 0, &v), 0);
    /* every width, 1-3 channels, plain and EXTENSIBLE */
    static wbuf w;
    const int bits[] = {8, 16, 24, 32};
    for (int bi = 0; bi < 4; bi++)
        for (int ch = 1; ch <= 3; ch++)
            for (int ext = 0; ext < 2; ext++) {
                size_t frames = 333, len = frames * (size_t)ch * (size_t)bits[bi] / 8;
                unsigned char *d = noise(len, (unsigned)(bi * 7 + ch * 3 + ext));
                riff(&w);
                fmt(&w, ext, ch, 11025 * ch, bits[bi]);
                chunk(&w, "data", d, (uint32_t)len, 1);
                riff_size(&w);
                agree(w.b, w.n, 1, frames);
                free(d);
            }
}

static void test_wav_pcm_view_oddities(void **state) {
    (void)state;
    static wbuf w;
    unsigned char *d = noise(4001, 9);
    /* LIST chunk of odd length (with its pad byte) before the data, a fact chunk too */
    riff(&w);
    fmt(&w, 0, 1, 16000, 16);
    chunk(&w, "LIST", "INFOISFT\5\0\0\0Lavf\0", 17, 1);
    chunk(&w, "fact", "\x10\0\0\0", 4, 1);
    chunk(&w, "data", d, 4000, 1);
    riff_size(&w);
    agree(w.b, w.n, 1, 2000);
    /* LIST before fmt, and a chunk after the data */
    riff(&w);
    chunk(&w, "LIST", "INFOISFT\4\0\0\0abc\0", 16, 1);
    fmt(&w, 0, 2, 16000, 16);
    chunk(&w, "data", d, 4000, 1);
    chunk(&w, "LIST", "INFOICMT\3\0\0\0ab\0", 15, 1);
    riff_size(&w);
    agree(w.b, w.n, 1, 1000);
    /* odd data length (a partial frame, then the pad byte): the partial frame is ignored */
    riff(&w);
    fmt(&w, 0, 1, 16000, 16);
    chunk(&w, "data", d, 4001, 1);
    riff_size(&w);
    agree(w.b, w.n, 1, 2000);
    /* ... also without the pad byte at the end of the file */
    riff(&w);
    fmt(&w, 0, 1, 16000, 16);
    chunk(&w, "data", d, 4001, 0);
    riff_size(&w);
    agree(w.b, w.n, 1, 2000);
    /* 0 frames */
    riff(&w);
    fmt(&w, 0, 1, 16000, 16);
    chunk(&w, "data", d, 0, 1);
    riff_size(&w);
    agree(w.b, w.n, 1, 0);
    /* data larger than the file: refused, and the decoder names the truncation */
    riff(&w);
    fmt(&w, 0, 1, 16000, 16);
    chunk(&w, "data", d, 4000, 1);
    riff_size(&w);
    uint32_t big = 4016; /* declares 16 bytes more than there are */
    memcpy(w.b + 40, &big, 4);
    agree(w.b, w.n, 0, 0);
    s2s_audio a;
    s2s_err err;
    assert_int_equal(s2s_audio_decode(w.b, w.n, "t.wav", &a, &err), S2S_EFORMAT);
    assert_non_null(strstr(err.msg, "truncated WAV: data chunk declares 4016 bytes, 4000 present"));
    s2s_audio_free(&a);
    /* a streaming writer's placeholder lengths: to the end of the file, as libsndfile reads */
    const uint32_t ph[] = {0xFFFFFFFFu, 0x7FFFFFFFu, 0x7fff0000u};
    for (int i = 0; i < 3; i++) {
        riff(&w);
        fmt(&w, 0, 1, 16000, 16);
        chunk(&w, "data", d, 3999, 0);
        memcpy(w.b + 40, &ph[i], 4);
        memcpy(w.b + 4, &ph[i], 4);
        agree(w.b, w.n, 1, 1999);
    }
    /* data before fmt; no data; a chunk id that is not text; fmt oddities: refused */
    riff(&w);
    chunk(&w, "data", d, 4000, 1);
    fmt(&w, 0, 1, 16000, 16);
    agree(w.b, w.n, 0, 0);
    riff(&w);
    fmt(&w, 0, 1, 16000, 16);
    agree(w.b, w.n, 0, 0);
    riff(&w);
    fmt(&w, 0, 1, 16000, 16);
    chunk(&w, "\1\2\3\4", d, 10, 1);
    chunk(&w, "data", d, 4000, 1);
    agree(w.b, w.n, 0, 0);
    riff(&w);
    fmt(&w, 0, 1, 16000, 12); /* 12 bits */
    chunk(&w, "data", d, 4000, 1);
    agree(w.b, w.n, 0, 0);
    riff(&w);
    fmt(&w, 1, 1, 16000, 16);
    w.b[12 + 8 + 18] = 12; /* EXTENSIBLE, 12 valid bits of 16 */
    chunk(&w, "data", d, 4000, 1);
    agree(w.b, w.n, 0, 0);
    riff(&w);
    fmt(&w, 1, 1, 16000, 16);
    w.b[12 + 8 + 24] = 3; /* EXTENSIBLE, float subformat */
    chunk(&w, "data", d, 4000, 1);
    agree(w.b, w.n, 0, 0);
    free(d);
}

/* Random damage to the header of a small WAV with a LIST chunk: whenever the view takes the
 * result, libsndfile reads the same thing (agree() checks it). */
static void test_wav_pcm_view_mutations(void **state) {
    (void)state;
    static wbuf w, m;
    unsigned char *d = noise(600, 5);
    riff(&w);
    fmt(&w, 0, 2, 16000, 16);
    chunk(&w, "LIST", "INFOISFT\5\0\0\0Lavf\0", 17, 1);
    chunk(&w, "data", d, 600, 1);
    riff_size(&w);
    unsigned seed = 1;
    int taken = 0;
    for (int it = 0; it < 3000; it++) {
        m = w;
        int k = 1 + it % 3;
        for (int j = 0; j < k; j++) {
            seed = seed * 1103515245u + 12345u;
            size_t pos = (seed >> 8) % 90;
            seed = seed * 1103515245u + 12345u;
            m.b[pos] =
                (seed >> 20) & 1 ? (unsigned char)(seed >> 8) : m.b[pos] ^ (1u << (seed % 8));
        }
        s2s_wav_pcm v;
        int got = s2s_wav_pcm_view(m.b, m.n, &v);
        if (got) {
            agree(m.b, m.n, 1, v.frames);
            taken++;
        }
    }
    assert_true(taken > 100); /* the test exercised both answers */
    assert_true(taken < 3000);
    free(d);
}

/* 16-bit mono WAV is written by audio.c itself since 0.2.0: the bytes must be libsndfile's. */
typedef struct {
    unsigned char *p;
    sf_count_t n, pos, cap;
} wmem;
static sf_count_t wm_len(void *u) {
    return ((wmem *)u)->n;
}
static sf_count_t wm_seek(sf_count_t off, int wh, void *u) {
    wmem *m = u;
    sf_count_t b = wh == SEEK_SET ? 0 : wh == SEEK_CUR ? m->pos : m->n;
    if (b + off < 0) return -1;
    return m->pos = b + off;
}
static sf_count_t wm_read(void *ptr, sf_count_t n, void *u) {
    wmem *m = u;
    if (m->pos >= m->n) return 0;
    if (n > m->n - m->pos) n = m->n - m->pos;
    memcpy(ptr, m->p + m->pos, (size_t)n);
    m->pos += n;
    return n;
}
static sf_count_t wm_write(const void *ptr, sf_count_t n, void *u) {
    wmem *m = u;
    if (m->pos + n > m->cap) {
        m->cap = (m->pos + n) * 2;
        m->p = realloc(m->p, (size_t)m->cap);
        assert_non_null(m->p);
    }
    if (m->pos > m->n) memset(m->p + m->n, 0, (size_t)(m->pos - m->n));
    memcpy(m->p + m->pos, ptr, (size_t)n);
    m->pos += n;
    if (m->pos > m->n) m->n = m->pos;
    return n;
}
static sf_count_t wm_tell(void *u) {
    return ((wmem *)u)->pos;
}
static void test_wav_writer_is_libsndfile(void **state) {
    (void)state;
    const size_t lens[] = {0, 1, 7, 8191, 8192, 8193, 100003};
    const int rates[] = {16000, 22050, 8000, 44100, 24000, 1, 1000000};
    for (int i = 0; i < 7; i++) {
        size_t n = lens[i];
        int16_t *p = pcm_tone(n + 9);
        SF_VIRTUAL_IO io = {wm_len, wm_seek, wm_read, wm_write, wm_tell};
        wmem m = {0};
        SF_INFO info = {0, rates[i], 1, SF_FORMAT_WAV | SF_FORMAT_PCM_16, 0, 0};
        SNDFILE *sf = sf_open_virtual(&io, SFM_WRITE, &info, &m);
        assert_non_null(sf);
        assert_int_equal(sf_writef_short(sf, p, (sf_count_t)n), (sf_count_t)n);
        sf_close(sf);
        s2s_err err;
        unsigned char *b;
        size_t l;
        assert_int_equal(s2s_audio_encode_s16(p, n, rates[i], S2S_AUDIO_WAV, &b, &l, &err), 0);
        assert_int_equal(l, (size_t)m.n);
        assert_memory_equal(b, m.p, l);
        free(b);
        /* float in, in blocks, to memory and to a file: the same bytes */
        float *x = malloc((n + 1) * sizeof *x);
        assert_non_null(x);
        for (size_t k = 0; k < n; k++)
            x[k] = p[k] / 32768.0f;
        s2s_audio_writer *w = s2s_audio_writer_new(rates[i], S2S_AUDIO_WAV, S2S_AUDIO_S16, &err);
        assert_non_null(w);
        if (i & 1) assert_int_equal(s2s_audio_writer_reserve(w, n, &err), 0);
        for (size_t k = 0; k < n; k += 5000)
            assert_int_equal(s2s_audio_writer_write(w, x + k, n - k < 5000 ? n - k : 5000, &err),
                             0);
        assert_int_equal(s2s_audio_writer_finish(w, &b, &l, &err), 0);
        assert_int_equal(l, (size_t)m.n);
        assert_memory_equal(b, m.p, l);
        free(b);
        FILE *f = tmpfile();
        assert_non_null(f);
        w = s2s_audio_writer_new_fd(fileno(f), rates[i], S2S_AUDIO_WAV, S2S_AUDIO_S16, &err);
        assert_non_null(w);
        for (size_t k = 0; k < n; k += 9000)
            assert_int_equal(s2s_audio_writer_write(w, x + k, n - k < 9000 ? n - k : 9000, &err),
                             0);
        assert_int_equal(s2s_audio_writer_finish(w, &b, &l, &err), 0);
        assert_null(b);
        assert_int_equal(l, (size_t)m.n);
        unsigned char *fb = malloc(l);
        assert_non_null(fb);
        assert_int_equal(pread(fileno(f), fb, l, 0), (ssize_t)l);
        assert_memory_equal(fb, m.p, l);
        free(fb);
        fclose(f);
        free(x);
        free(m.p);
        free(p);
    }
}

static void test_names(void **state) {
    (void)state;
    assert_true(s2s_audio_is_audio_name("ctx.wav"));
    assert_true(s2s_audio_is_audio_name("c0.FLAC"));
    assert_true(s2s_audio_is_audio_name("rec/x.m4a"));
    assert_true(s2s_audio_is_audio_name("opus"));
    assert_false(s2s_audio_is_audio_name("ctx.units"));
    assert_false(s2s_audio_is_audio_name("json"));
    assert_false(s2s_audio_is_audio_name(NULL));
    assert_string_equal(s2s_audio_container_ext(S2S_AUDIO_FLAC), "flac");
    assert_null(s2s_audio_container_ext(S2S_AUDIO_OTHER));
    assert_string_equal(s2s_audio_format_name(S2S_AUDIO_F32), "f32");
}

int main(void) {
    av_log_set_level(AV_LOG_QUIET); /* our messages are checked; libav's would be noise */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_s16_round_trip_wav_flac),
        cmocka_unit_test(test_f32_wav_and_clipping),
        cmocka_unit_test(test_stereo_downmix_and_streaming),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_wav_pcm_view_formats),
        cmocka_unit_test(test_wav_pcm_view_oddities),
        cmocka_unit_test(test_wav_pcm_view_mutations),
        cmocka_unit_test(test_wav_writer_is_libsndfile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_shard.c — member codecs, the packer, indexes, verify and get (s2s/shard.h). */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
// clang-format on
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "s2s/item.h"
#include "s2s/sample.h"
#include "s2s/shard.h"
#include "s2s/util.h"

/* Every dataset check below runs twice: one shard at a time and three at once
 * (s2s_dataset_verify_threads); the verdict and the message must be the same. */
static int verify_both(const char *dir, s2s_err *err) {
    s2s_err e3;
    s2s_err_clear(&e3);
    int r3 = s2s_dataset_verify_threads(dir, 3, &e3);
    int r1 = s2s_dataset_verify(dir, err);
    assert_int_equal(r1, r3);
    if (r1 < 0) assert_string_equal(err->msg, e3.msg);
    return r1;
}
#define s2s_dataset_verify verify_both

static char tmpdir[256];

static int setup(void **state) {
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/s2s-test-shard-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    return system(cmd);
}

static void put16(unsigned char *p, unsigned v) {
    p[0] = v & 255;
    p[1] = (v >> 8) & 255;
}
static void put32(unsigned char *p, unsigned v) {
    put16(p, v & 0xffff);
    put16(p + 2, v >> 16);
}

/* A 16-bit PCM WAV of n frames: a deterministic chirp-like pattern. */
static unsigned char *make_wav(unsigned n, unsigned channels, unsigned rate, size_t *len) {
    size_t bytes = (size_t)n * channels * 2;
    unsigned char *w = malloc(44 + bytes);
    assert_non_null(w);
    memcpy(w, "RIFF", 4);
    put32(w + 4, (unsigned)(36 + bytes));
    memcpy(w + 8, "WAVEfmt ", 8);
    put32(w + 16, 16);
    put16(w + 20, 1);
    put16(w + 22, channels);
    put32(w + 24, rate);
    put32(w + 28, rate * channels * 2);
    put16(w + 32, channels * 2);
    put16(w + 34, 16);
    memcpy(w + 36, "data", 4);
    put32(w + 40, (unsigned)bytes);
    uint32_t x = 12345;
    for (size_t i = 0; i < (size_t)n * channels; i++) {
        x = x * 1103515245u + 12345u;
        int v = (int)((i * 37) % 2000) - 1000 + (int)((x >> 16) % 64);
        put16(w + 44 + 2 * i, (unsigned)(v & 0xffff));
    }
    *len = 44 + bytes;
    return w;
}

static void test_gzip_roundtrip(void **state) {
    (void)state;
    const char *text = "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 1 2 3 4 5";
    unsigned char *z1, *z2, *plain;
    size_t n1, n2, np;
    s2s_err err;
    assert_int_equal(s2s_gzip(text, strlen(text), 6, &z1, &n1, &err), 0);
    assert_int_equal(s2s_gzip(text, strlen(text), 6, &z2, &n2, &err), 0);
    assert_int_equal(n1, n2);
    assert_memory_equal(z1, z2, n1);
    /* magic, deflate, no flags, mtime 0, OS 255 */
    assert_int_equal(z1[0], 0x1f);
    assert_int_equal(z1[1], 0x8b);
    assert_int_equal(z1[3], 0);
    assert_int_equal(z1[4] | z1[5] | z1[6] | z1[7], 0);
    assert_int_equal(z1[9], 255);
    assert_int_equal(s2s_gunzip(z1, n1, &plain, &np, &err), 0);
    assert_int_equal(np, strlen(text));
    assert_memory_equal(plain, text, np);
    free(plain);
    /* damage: a flipped byte in the deflate data or the CRC, a truncation, trailing garbage */
    for (size_t i = 10; i < n1; i++) {
        unsigned char *bad = malloc(n1);
        memcpy(bad, z1, n1);
        bad[i] ^= 0x55;
        int rc = s2s_gunzip(bad, n1, &plain, &np, &err);
        if (rc == 0) {
            /* a flip in the deflate stream may still decode; then the CRC must catch it */
            fail_msg("flip at byte %zu of %zu not detected", i, n1);
        }
        free(bad);
    }
    assert_true(s2s_gunzip(z1, n1 - 1, &plain, &np, &err) < 0);
    assert_true(s2s_gunzip("plain text, not gzip", 20, &plain, &np, &err) < 0);
    /* two members concatenated are joined */
    unsigned char *cat = malloc(n1 * 2 + 32);
    memcpy(cat, z1, n1);
    memcpy(cat + n1, z2, n2);
    assert_int_equal(s2s_gunzip(cat, n1 + n2, &plain, &np, &err), 0);
    assert_int_equal(np, 2 * strlen(text));
    assert_memory_equal(plain, text, strlen(text));
    assert_memory_equal(plain + strlen(text), text, strlen(text));
    free(plain);
    /* garbage after a member (short, or as long as a gzip header) is damage */
    static const char junk[] = "\x1f\x8bgarbage-garbage-garbage";
    memcpy(cat + n1, junk, sizeof junk - 1);
    assert_true(s2s_gunzip(cat, n1 + 3, &plain, &np, &err) < 0);
    assert_true(s2s_gunzip(cat, n1 + sizeof junk - 1, &plain, &np, &err) < 0);
    free(cat);
    free(z1);
    free(z2);
    assert_true(s2s_gzip(text, 3, 10, &z2, &n2, &err) < 0);
    assert_null(z2);
}

static void test_flac_roundtrip(void **state) {
    (void)state;
    unsigned chans[] = {1, 2};
    for (int c = 0; c < 2; c++) {
        size_t wl;
        unsigned char *wav = make_wav(4000, chans[c], 16000, &wl);
        unsigned char *fl, *fl2, *back;
        size_t fn, fn2, bn;
        s2s_err err;
        assert_int_equal(s2s_flac_encode(wav, wl, 5, &fl, &fn, &err), 0);
        assert_memory_equal(fl, "fLaC", 4);
        assert_int_equal(s2s_flac_encode(wav, wl, 5, &fl2, &fn2, &err), 0);
        assert_int_equal(fn, fn2); /* deterministic */
        assert_memory_equal(fl, fl2, fn);
        assert_int_equal(s2s_flac_decode(fl, fn, &back, &bn, &err), 0);
        /* our WAV writer is the canonical 44-byte header: identical to the input */
        assert_int_equal(bn, wl);
        assert_memory_equal(back, wav, wl);
        /* a truncated FLAC is an error, not a silent short read */
        unsigned char *b2;
        size_t bn2;
        assert_true(s2s_flac_decode(fl, fn / 2, &b2, &bn2, &err) < 0);
        assert_true(s2s_flac_decode(wav, wl, &b2, &bn2, &err) < 0);
        assert_true(s2s_flac_encode("RIFFxxxx", 8, 5, &b2, &bn2, &err) < 0);
        free(wav);
        free(fl);
        free(fl2);
        free(back);
    }
}

/* A PCM WAV of n frames at 8/16/24 bits; kind 0 chirp + noise, 1 white noise (verbatim
 * blocks), 2 constant, 3 full-scale square wave (the largest residuals: RICE2 parameters). */
static unsigned char *make_wav_bits(unsigned n, unsigned ch, unsigned rate, unsigned bits, int kind,
                                    size_t *len) {
    size_t bw = bits / 8, bytes = (size_t)n * ch * bw;
    unsigned char *w = calloc(1, 44 + bytes + 1);
    assert_non_null(w);
    memcpy(w, "RIFF", 4);
    put32(w + 4, (unsigned)(36 + bytes));
    memcpy(w + 8, "WAVEfmt ", 8);
    put32(w + 16, 16);
    put16(w + 20, 1);
    put16(w + 22, ch);
    put32(w + 24, rate);
    put32(w + 28, rate * ch * (unsigned)bw);
    put16(w + 32, ch * (unsigned)bw);
    put16(w + 34, bits);
    memcpy(w + 36, "data", 4);
    put32(w + 40, (unsigned)bytes);
    uint32_t x = 777;
    long full = (1L << (bits - 1)) - 1;
    for (size_t i = 0; i < (size_t)n * ch; i++) {
        x = x * 1103515245u + 12345u;
        long v;
        if (kind == 0)
            v = (long)((i * i / 7) % 4000) - 2000 + (long)((x >> 16) % 32);
        else if (kind == 1)
            v = (long)(x >> 8) % (2 * full) - full;
        else if (kind == 2)
            v = -1234;
        else
            v = (i / ch) % 2 ? full : -full - 1;
        if (v > full) v = full;
        if (v < -full - 1) v = -full - 1;
        unsigned char *p = w + 44 + i * bw;
        if (bits == 8)
            p[0] = (unsigned char)(v + 128);
        else {
            uint32_t u = (uint32_t)v;
            for (size_t b = 0; b < bw; b++)
                p[b] = (u >> (8 * b)) & 255;
        }
    }
    *len = 44 + bytes;
    return w;
}

/* The built-in encoder (level 0): lossless for every block shape, width, channel count and
 * sample-rate coding of the frame header; decodes with libFLAC (our decoder) to the input. */
static void test_flac_builtin(void **state) {
    (void)state;
    struct {
        unsigned n, ch, rate, bits;
        int kind;
    } cs[] = {
        {1, 1, 16000, 16, 0},     {7, 1, 16000, 16, 0},     {9, 1, 16000, 16, 1},
        {4095, 1, 16000, 16, 0},  {4096, 1, 16000, 16, 0},  {4097, 1, 16000, 16, 0},
        {20000, 1, 16000, 16, 1}, {20000, 1, 16000, 16, 2}, {20000, 1, 16000, 16, 3},
        {9000, 2, 44100, 16, 0},  {9000, 3, 22050, 16, 1},  {5000, 8, 48000, 16, 0},
        {9000, 1, 11025, 16, 0},  {9000, 1, 96000, 24, 0},  {9000, 2, 7350, 24, 3},
        {9000, 1, 50000, 24, 1},  {9000, 1, 384000, 16, 0}, {9000, 1, 100001, 16, 0},
        {9000, 1, 16000, 8, 0},   {9000, 2, 8000, 8, 3},    {300, 1, 16000, 24, 2},
        {70000, 1, 16000, 16, 0},
    };
    for (size_t t = 0; t < sizeof cs / sizeof *cs; t++) {
        size_t wl, fn, bn;
        unsigned char *wav =
            make_wav_bits(cs[t].n, cs[t].ch, cs[t].rate, cs[t].bits, cs[t].kind, &wl);
        unsigned char *fl, *back;
        s2s_err err;
        if (s2s_flac_encode(wav, wl, 0, &fl, &fn, &err) != 0)
            fail_msg("case %zu: encode: %s", t, err.msg);
        assert_memory_equal(fl, "fLaC", 4);
        if (s2s_flac_decode(fl, fn, &back, &bn, &err) != 0)
            fail_msg("case %zu: decode: %s", t, err.msg);
        if (cs[t].bits != 8) {
            assert_int_equal(bn, wl);
            if (memcmp(back, wav, wl) != 0) fail_msg("case %zu: samples differ", t);
        } else { /* 8-bit WAV comes back as 16-bit: (x - 128) * 256 */
            assert_int_equal(bn, 44 + (wl - 44) * 2);
            for (size_t i = 0; i < wl - 44; i++) {
                int v = (int16_t)(back[44 + 2 * i] | back[45 + 2 * i] << 8);
                if (v != (wav[44 + i] - 128) * 256) fail_msg("case %zu: sample %zu", t, i);
            }
        }
        /* libFLAC at level 5 stores the same samples */
        unsigned char *fl5, *back5;
        size_t fn5, bn5;
        assert_int_equal(s2s_flac_encode(wav, wl, 5, &fl5, &fn5, &err), 0);
        assert_int_equal(s2s_flac_decode(fl5, fn5, &back5, &bn5, &err), 0);
        assert_int_equal(bn5, bn);
        assert_memory_equal(back5, back, bn);
        /* any cut is caught */
        unsigned char *b2;
        size_t bn2;
        assert_true(s2s_flac_decode(fl, fn - 1, &b2, &bn2, &err) < 0);
        free(fl5);
        free(back5);
        free(wav);
        free(fl);
        free(back);
    }
}

/* The built-in encoder's bytes are part of the dataset's identity: same samples, same bytes on
 * every build (-O0, -O2, ASan) and CPU. A change of this hash is a change of shard bytes
 * (docs/shards.md must say so). */
static void test_flac_builtin_golden(void **state) {
    (void)state;
    struct {
        unsigned n, ch, rate, bits;
        int kind;
    } cs[] = {{30000, 1, 16000, 16, 0}, {9000, 2, 44100, 16, 1}, {5000, 1, 16000, 16, 2},
              {9000, 1, 48000, 24, 3},  {7000, 3, 22050, 24, 0}, {4097, 1, 8000, 8, 0}};
    s2s_sha256 h;
    s2s_sha256_init(&h);
    size_t total = 0;
    for (size_t t = 0; t < sizeof cs / sizeof *cs; t++) {
        size_t wl, fn;
        unsigned char *wav =
            make_wav_bits(cs[t].n, cs[t].ch, cs[t].rate, cs[t].bits, cs[t].kind, &wl);
        unsigned char *fl;
        s2s_err err;
        assert_int_equal(s2s_flac_encode(wav, wl, 0, &fl, &fn, &err), 0);
        s2s_sha256_update(&h, fl, fn);
        total += fn;
        free(fl);
        free(wav);
    }
    unsigned char dig[32];
    char hex[65];
    s2s_sha256_final(&h, dig);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", dig[i]);
    printf("flacenc golden: %zu bytes, %s\n", total, hex);
    assert_string_equal(hex, "8b849466a40e3a6fdb864a22766629e41d5d3b3b9ef2be193a00a75a5aa091eb");
}

/* SHA-256 (what the index and dataset.json record of every shard; SHA-NI where the CPU has it)
 * against Python's hashlib on lengths around the 64-byte block and the padding boundary, whole
 * and fed in uneven pieces. */
static void test_sha256_known(void **state) {
    (void)state;
    static const struct {
        size_t n;
        const char *hex;
    } cs[] = {{0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
              {1, "084fed08b978af4d7d196a7446a86b58009e636b611db16211b65a9aadff29c5"},
              {55, "e7313d333c272e639f790978283f9eb392e843d0f29b7016828bb1daa4aac70b"},
              {56, "4324d65f3c103567f5589c710bc08f8523f929a9272e3af36fc968e52abc6c27"},
              {63, "81c80242132f230c3bd41b3e63bbcff16107339549214a99614ff26664625055"},
              {64, "39e3d7b6b5d075d37d053ad89b24b41bef4f3c29760c84447cab3f3be1882241"},
              {65, "aacca6ff74fdbb296d165a45cecfa04e5127bc008770fbbdd48006f2d2fae95e"},
              {127, "a8d23e75d936f303d248888d9b165ee543f4cbafcad3c9dd2a79bd84faa11d07"},
              {128, "d2742f1f4ac6bb7ca2b239ee18402ba8b3f9f8e652d2a72973c2b9ba11c08cf6"},
              {1000, "1e9bc38cbf860b9ec31918b065f9b52476c549a782e0e7990bed8ce3868d2371"},
              {4099, "68950b5dc8001f651c3884f0201a276dd63eb870c6f2d153ed52719ddbce3101"},
              {300000, "75bd90773c8246d53fe62f66e08a3828e82632011be5f8c0836484ffd49ab819"}};
    size_t max = 300000;
    unsigned char *d = malloc(max);
    assert_non_null(d);
    for (size_t i = 0; i < max; i++)
        d[i] = (unsigned char)(i * 7 + 3);
    for (size_t t = 0; t < sizeof cs / sizeof *cs; t++) {
        char hex[65];
        s2s_sha256_hex(d, cs[t].n, hex);
        assert_string_equal(hex, cs[t].hex);
        s2s_sha256 h; /* in pieces of 1, 2, ... 97 bytes */
        s2s_sha256_init(&h);
        for (size_t o = 0, k = 1; o < cs[t].n; o += k, k = k % 97 + 1)
            s2s_sha256_update(&h, d + o, o + k <= cs[t].n ? k : cs[t].n - o);
        unsigned char dig[32];
        s2s_sha256_final(&h, dig);
        for (int i = 0; i < 32; i++)
            snprintf(hex + 2 * i, 3, "%02x", dig[i]);
        assert_string_equal(hex, cs[t].hex);
    }
    free(d);
}

static void test_flac_empty(void **state) {
    (void)state;
    size_t wl, n;
    unsigned char *wav = make_wav(0, 1, 16000, &wl), *out = NULL;
    s2s_err err;
    assert_int_equal(s2s_flac_encode(wav, wl, 5, &out, &n, &err), S2S_EDATA);
    assert_null(out);
    assert_non_null(strstr(err.msg, "empty audio"));
    free(wav);
}

static void test_pattern(void **state) {
    (void)state;
    s2s_err err;
    assert_int_equal(s2s_pack_pattern_check("out/x-%06d.tar", &err), 0);
    assert_int_equal(s2s_pack_pattern_check("x-%d.tar", &err), 0);
    assert_int_equal(s2s_pack_pattern_check("x-100%%-%d.tar", &err), 0);
    assert_int_equal(s2s_pack_pattern_check("x.tar", &err), S2S_EINVAL);
    assert_int_equal(s2s_pack_pattern_check("x-%s.tar", &err), S2S_EINVAL);
    assert_int_equal(s2s_pack_pattern_check("x-%d-%d.tar", &err), S2S_EINVAL);
    assert_int_equal(s2s_pack_pattern_check("x-%06d.tgz", &err), S2S_EINVAL);
    assert_int_equal(s2s_pack_pattern_check("x-%n.tar", &err), S2S_EINVAL);
}

static s2s_sample *make_sample(const char *key, const char *task, int n_cand) {
    s2s_err err;
    s2s_sample *s = s2s_sample_new(key, &err);
    assert_non_null(s);
    json_t *c = json_array();
    for (int i = 0; i < n_cand; i++)
        json_array_append_new(c, json_pack("{s:s, s:i}", "text", "cand", "label", i == 1));
    s->item = json_pack("{s:s, s:s, s:s, s:{s:s}, s:o, s:[{s:s, s:s, s:{s:i}}]}", "id", key, "task",
                        task, "lang", "en", "context", "text", "ctx", "candidates", c, "provenance",
                        "tool", "s2s-synth", "version", "0.1.0", "params", "seed", 1);
    assert_non_null(s->item);
    assert_int_equal(s2s_item_validate(s->item, &err), 0);
    size_t wl;
    unsigned char *wav = make_wav(800, 1, 16000, &wl);
    assert_int_equal(s2s_sample_put(s, "ctx.wav", wav, wl, &err), 0);
    assert_int_equal(s2s_sample_put_copy(s, "ctx.units", "1 2 3 3 3 4", 11, &err), 0);
    return s;
}

static char *path_in(const char *name) {
    char *p = malloc(512);
    snprintf(p, 512, "%s/%s", tmpdir, name);
    return p;
}

static void test_pack_verify_get(void **state) {
    (void)state;
    s2s_err err;
    s2s_pack_opts o;
    s2s_pack_opts_init(&o);
    char *pat = path_in("p-%03d.tar");
    o.pattern = pat;
    o.per_shard = 2;
    s2s_packer *p = s2s_packer_open(&o, &err);
    assert_non_null(p);
    /* a 150-byte key makes member names longer than 100 bytes: pax headers */
    char longkey[160];
    memset(longkey, 'k', 150);
    longkey[150] = 0;
    const char *keys[] = {"a_1", "b_2", longkey, "d-4", "e_5"};
    for (int i = 0; i < 5; i++) {
        s2s_sample *s = make_sample(keys[i], i < 3 ? "cloze" : "choice", i < 3 ? 2 : 4);
        assert_int_equal(s2s_packer_put(p, s, &err), 0);
        s2s_sample_free(s);
    }
    s2s_sample *dot = make_sample("x_1", "cloze", 2);
    free(dot->key);
    dot->key = strdup("x.1");
    assert_int_equal(s2s_packer_put(p, dot, &err), S2S_EDATA);
    assert_non_null(strstr(err.msg, "x.1"));
    s2s_sample_free(dot);
    assert_int_equal(s2s_packer_flush(p, &err), 0);
    assert_int_equal(s2s_packer_shards(p), 3);
    assert_int_equal(s2s_packer_close(p, &err), 0);

    /* dataset.json counts */
    char *dj = path_in("dataset.json");
    json_t *ds = json_load_file(dj, 0, NULL);
    assert_non_null(ds);
    assert_int_equal(json_integer_value(json_object_get(ds, "samples")), 5);
    assert_int_equal(json_integer_value(json_object_get(ds, "pairs")), 3 + 2 * 3);
    json_t *ce = json_object_get(json_object_get(json_object_get(ds, "counts"), "choice"), "en");
    assert_int_equal(json_integer_value(json_object_get(ce, "pairs")), 6);
    json_t *pv = json_array_get(json_object_get(ds, "provenance"), 0);
    assert_string_equal(json_string_value(json_object_get(pv, "tool")), "s2s-synth");
    assert_int_equal(json_integer_value(json_object_get(pv, "samples")), 5);
    json_decref(ds);

    assert_int_equal(s2s_dataset_verify(tmpdir, &err), 0);
    char *s1 = path_in("p-001.tar");
    uint64_t n = 0;
    assert_int_equal(s2s_shard_verify(s1, NULL, NULL, &n, &err), 0);
    assert_int_equal(n, 2);

    /* the index */
    char *ip = s2s_index_path(s1);
    s2s_index *ix = s2s_index_read(ip, &err);
    assert_non_null(ix);
    assert_string_equal(ix->shard, "p-001.tar");
    assert_int_equal(ix->n_samples, 2);
    assert_string_equal(ix->samples[0].key, longkey);
    assert_int_equal(ix->samples[0].n, 3); /* json.gz, ctx.flac, ctx.units.gz */
    assert_true(ix->members[0].data_off - ix->members[0].hdr_off > 512); /* pax */
    s2s_index_free(ix);

    /* get by seeking, then back to the stream form */
    char **paths;
    size_t np;
    assert_int_equal(s2s_dataset_shards(tmpdir, &paths, &np, &err), 0);
    assert_int_equal(np, 3);
    s2s_sample *g = NULL;
    assert_int_equal(s2s_shard_get((const char *const *)paths, np, "d-4", &g, &err), 1);
    assert_string_equal(s2s_item_id(g->item), "d-4");
    assert_non_null(s2s_sample_get(g, "ctx.flac"));
    assert_non_null(s2s_sample_get(g, "ctx.units.gz"));
    assert_int_equal(s2s_shard_sample_to_stream(g, &err), 0);
    s2s_member *w = s2s_sample_get(g, "ctx.wav");
    assert_non_null(w);
    size_t wl;
    unsigned char *wav = make_wav(800, 1, 16000, &wl);
    assert_int_equal(w->size, wl);
    assert_memory_equal(w->data, wav, wl);
    free(wav);
    s2s_member *u = s2s_sample_get(g, "ctx.units");
    assert_non_null(u);
    assert_memory_equal(u->data, "1 2 3 3 3 4", 11);
    s2s_sample_free(g);
    assert_int_equal(s2s_shard_get((const char *const *)paths, np, "nope", &g, &err), 0);

    /* damage the data of a member: verify and get name it */
    FILE *f = fopen(s1, "r+b");
    assert_non_null(f);
    fseek(f, 2048 + 600, SEEK_SET);
    int ch = fgetc(f);
    fseek(f, 2048 + 600, SEEK_SET);
    fputc(ch ^ 1, f);
    fclose(f);
    assert_int_equal(s2s_shard_verify(s1, NULL, NULL, NULL, &err), S2S_EDATA);
    assert_non_null(strstr(err.msg, "p-001.tar"));
    assert_int_equal(s2s_dataset_verify(tmpdir, &err), S2S_EDATA);
    s2s_paths_free(paths, np);
    free(ip);
    free(s1);
    free(dj);
    free(pat);
}

static void test_abort_leaves_nothing(void **state) {
    (void)state;
    char *dir = path_in("ab");
    assert_int_equal(mkdir(dir, 0755), 0);
    char pat[600];
    snprintf(pat, sizeof pat, "%s/q-%%d.tar", dir);
    s2s_pack_opts o;
    s2s_pack_opts_init(&o);
    o.pattern = pat;
    o.per_shard = 1;
    s2s_err err;
    s2s_packer *p = s2s_packer_open(&o, &err);
    assert_non_null(p);
    for (int i = 0; i < 3; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        s2s_sample *s = make_sample(key, "cloze", 2);
        assert_int_equal(s2s_packer_put(p, s, &err), 0);
        s2s_sample_free(s);
    }
    s2s_packer_abort(p);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A %s)\"", dir);
    assert_int_equal(system(cmd), 0);
    free(dir);
}

static void test_index_syntax(void **state) {
    (void)state;
    const char *bad[] = {
        "",
        "s2s-shard-index 2\n",
        "s2s-shard-index 1\nshard\tx.tar\t1024\tnothex\nend\t0\t0\n",
        "s2s-shard-index 1\nshard\tx.tar\t1024\t" /* no end line */
        "0000000000000000000000000000000000000000000000000000000000000000\n",
        "s2s-shard-index 1\nshard\tx.tar\t2048\t"
        "0000000000000000000000000000000000000000000000000000000000000000\n"
        "sample\tk\t2\nmember\tk.json.gz\t0\t512\t10\t00000000\nend\t1\t1\n",
        "s2s-shard-index 1\nshard\tx.tar\t2048\t"
        "0000000000000000000000000000000000000000000000000000000000000000\n"
        "sample\tk\t1\nmember\tother.json.gz\t0\t512\t10\t00000000\nend\t1\t1\n",
        "s2s-shard-index 1\nshard\tx.tar\t2048\t"
        "0000000000000000000000000000000000000000000000000000000000000000\n"
        "sample\tk\t1\nmember\tk.json.gz\t0\t100\t10\t00000000\nend\t1\t1\n",
    };
    char *ip = path_in("x.tar.idx");
    s2s_err err;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        FILE *f = fopen(ip, "wb");
        fputs(bad[i], f);
        fclose(f);
        s2s_index *ix = s2s_index_read(ip, &err);
        if (ix) fail_msg("bad index %zu accepted", i);
        assert_non_null(strstr(err.msg, "x.tar.idx"));
    }
    unlink(ip);
    assert_null(s2s_index_read(ip, &err));
    assert_non_null(strstr(err.msg, "missing index"));
    free(ip);
}

/* Writes ds to path in the canonical dump form without touching the seal. */
static void dump_canonical(const json_t *ds, const char *path) {
    char *t = json_dumps(ds, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    assert_non_null(t);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(t, f);
    fputc('\n', f);
    fclose(f);
    free(t);
}

/* dataset.json: seal, canonical form, unknown keys, recipe, cross-checked counts. */
static void test_dataset_json(void **state) {
    (void)state;
    s2s_err err;
    char *dir = path_in("dj");
    assert_int_equal(mkdir(dir, 0755), 0);
    char pat[600], dj[600];
    snprintf(pat, sizeof pat, "%s/q-%%03d.tar", dir);
    snprintf(dj, sizeof dj, "%s/dataset.json", dir);
    s2s_pack_opts o;
    s2s_pack_opts_init(&o);
    o.pattern = pat;
    o.per_shard = 2;
    s2s_packer *p = s2s_packer_open(&o, &err);
    assert_non_null(p);
    const char *keys[] = {"a_1", "b_2", "c_3"};
    for (int i = 0; i < 3; i++) {
        s2s_sample *s = make_sample(keys[i], "cloze", 2);
        assert_int_equal(s2s_packer_put(p, s, &err), 0);
        s2s_sample_free(s);
    }
    assert_int_equal(s2s_packer_close(p, &err), 0);
    assert_int_equal(s2s_dataset_verify(dir, &err), 0);
    json_t *ds = json_load_file(dj, 0, NULL);
    assert_non_null(ds);
    assert_true(json_is_string(json_object_get(ds, "self_sha256")));

    /* a recipe stamped after the pack (as s2s-build does) keeps the seal valid */
    const char *text = "name = q\nsource = items en x.jsonl\n";
    char hex[65];
    s2s_sha256_hex(text, strlen(text), hex);
    json_t *c = json_deep_copy(ds);
    json_object_set_new(c, "recipe",
                        json_pack("{s:s, s:s, s:s}", "name", "q", "sha256", hex, "text", text));
    dump_canonical(c, dj);
    assert_int_equal(s2s_dataset_verify(dir, &err), 0);
    /* ... but not a recipe whose name is not the shard pattern's, or whose text changed */
    json_object_set_new(json_object_get(c, "recipe"), "name", json_string("r"));
    dump_canonical(c, dj);
    assert_int_equal(s2s_dataset_verify(dir, &err), S2S_EDATA);
    assert_non_null(strstr(err.msg, "recipe name"));
    json_object_set_new(json_object_get(c, "recipe"), "name", json_string("q"));
    json_object_set_new(json_object_get(c, "recipe"), "text", json_string("name = q\n"));
    dump_canonical(c, dj);
    assert_int_equal(s2s_dataset_verify(dir, &err), S2S_EDATA);
    assert_non_null(strstr(err.msg, "recipe.text"));
    json_decref(c);

    /* a misspelled key */
    c = json_deep_copy(ds);
    json_object_set_new(json_object_get(c, "build"), "toal", json_string("x"));
    dump_canonical(c, dj);
    assert_int_equal(s2s_dataset_verify(dir, &err), S2S_EFORMAT);
    assert_non_null(strstr(err.msg, "unknown key \"toal\""));
    json_decref(c);

    /* a build parameter changed: only the seal can tell */
    c = json_deep_copy(ds);
    json_object_set_new(json_object_get(json_object_get(c, "build"), "params"), "gzip_level",
                        json_integer(5));
    dump_canonical(c, dj);
    assert_int_equal(s2s_dataset_verify(dir, &err), S2S_EDATA);
    assert_non_null(strstr(err.msg, "self_sha256"));
    /* re-sealed by s2s_dataset_write it verifies again */
    assert_int_equal(s2s_dataset_write(dj, c, &err), 0);
    assert_int_equal(s2s_dataset_verify(dir, &err), 0);
    json_decref(c);

    /* cross-checks: members and first key of a shard, the format version */
    c = json_deep_copy(ds);
    json_object_set_new(json_array_get(json_object_get(c, "shards"), 1), "first_key",
                        json_string("a_1"));
    assert_int_equal(s2s_dataset_write(dj, c, &err), 0);
    assert_int_equal(s2s_dataset_verify(dir, &err), S2S_EDATA);
    assert_non_null(strstr(err.msg, "first sample is c_3"));
    json_object_set_new(json_array_get(json_object_get(c, "shards"), 1), "first_key",
                        json_string("c_3"));
    json_object_set_new(json_array_get(json_object_get(c, "shards"), 0), "members",
                        json_integer(5));
    assert_int_equal(s2s_dataset_write(dj, c, &err), 0);
    assert_int_equal(s2s_dataset_verify(dir, &err), S2S_EDATA);
    assert_non_null(strstr(err.msg, "members"));
    json_decref(c);
    c = json_deep_copy(ds);
    json_object_set_new(c, "format_version", json_integer(2));
    assert_int_equal(s2s_dataset_write(dj, c, &err), 0);
    assert_int_equal(s2s_dataset_verify(dir, &err), S2S_EUNSUP);
    json_decref(c);

    /* the same content spelled differently (compact): not the canonical form */
    assert_int_equal(json_dump_file(ds, dj, JSON_COMPACT | JSON_PRESERVE_ORDER), 0);
    assert_int_equal(s2s_dataset_verify(dir, &err), S2S_EDATA);
    assert_non_null(strstr(err.msg, "canonical form"));
    dump_canonical(ds, dj);
    assert_int_equal(s2s_dataset_verify(dir, &err), 0);
    json_decref(ds);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gzip_roundtrip),       cmocka_unit_test(test_flac_roundtrip),
        cmocka_unit_test(test_flac_empty),           cmocka_unit_test(test_pattern),
        cmocka_unit_test(test_flac_builtin),         cmocka_unit_test(test_flac_builtin_golden),
        cmocka_unit_test(test_sha256_known),         cmocka_unit_test(test_pack_verify_get),
        cmocka_unit_test(test_abort_leaves_nothing), cmocka_unit_test(test_index_syntax),
        cmocka_unit_test(test_dataset_json),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

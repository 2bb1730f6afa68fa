/* targets.c — the fuzz targets: one function per parser of outside data, each taking raw bytes.
 *
 * Shared by the libFuzzer harnesses (fuzz_main.c, built with -DS2S_FUZZ=ON) and by the regression
 * test tests/unit/test_fuzz_regress.c, which replays tests/fuzz/regress/<target>/<file> through
 * the same functions in every normal (and ASan) build. A target must never crash, leak, or
 * read/write out of bounds on any input; returning an error is the expected outcome for garbage.
 *
 * Targets that read files (the library only opens paths there) write the bytes into a private
 * temporary directory first (one per process, removed at exit). */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sndfile.h>

#include "s2s/audio.h"
#include "s2s/backend.h"
#include "s2s/csv.h"
#include "s2s/err.h"
#include "s2s/flacenc.h"
#include "s2s/import.h"
#include "s2s/item.h"
#include "s2s/kmeans.h"
#include "s2s/ngram.h"
#include "s2s/recipe.h"
#include "s2s/resample.h"
#include "s2s/sample.h"
#include "s2s/shard.h"
#include "s2s/tar.h"
#include "s2s/util.h"
#include "s2s/worker.h"

typedef int (*s2s_fuzz_fn)(const uint8_t *data, size_t size);

static char fz_dir[256];

static void fz_cleanup(void) {
    if (!fz_dir[0]) return;
    DIR *d = opendir(fz_dir);
    if (d) {
        struct dirent *e;
        char p[600];
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.') continue;
            snprintf(p, sizeof p, "%s/%s", fz_dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(fz_dir);
    fz_dir[0] = 0;
}

/* Private temp dir of this process. */
static const char *fz_tmpdir(void) {
    if (fz_dir[0]) return fz_dir;
    const char *t = getenv("TMPDIR");
    snprintf(fz_dir, sizeof fz_dir, "%s/s2s-fuzz-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(fz_dir)) {
        perror("mkdtemp");
        abort();
    }
    atexit(fz_cleanup);
    return fz_dir;
}

/* Writes bytes to DIR/name; returns the path in a static buffer (one per slot). */
static const char *fz_file(int slot, const char *name, const uint8_t *data, size_t size) {
    static char paths[4][600];
    snprintf(paths[slot], sizeof paths[slot], "%s/%s", fz_tmpdir(), name);
    FILE *f = fopen(paths[slot], "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror(paths[slot]);
        abort();
    }
    return paths[slot];
}

static void fz_rm(const char *name) {
    char p[600];
    snprintf(p, sizeof p, "%s/%s", fz_tmpdir(), name);
    unlink(p);
}

/* A FILE* over the bytes (fmemopen refuses size 0 on some libcs: use an empty temp file). */
static FILE *fz_fp(const uint8_t *data, size_t size) {
    if (size == 0) return fopen(fz_file(3, "empty", data, 0), "rb");
    FILE *f = fmemopen((void *)data, size, "rb");
    if (!f) abort();
    return f;
}

/* ---- tar reader: s2s_tar_* ---------------------------------------------------------------- */
static int fz_tar(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int mode = data[0];
    FILE *f = fz_fp(data + 1, size - 1);
    s2s_err err;
    s2s_tar_reader *r = s2s_tar_reader_new(f, "fuzz.tar", &err);
    if (r) {
        s2s_tar_reader_set_lenient(r, mode & 1);
        s2s_tar_entry *e;
        int i = 0, rc;
        while ((rc = s2s_tar_next(r, &e, &err)) == 1) {
            (void)strlen(e->name); /* the name must be a valid string */
            /* read every other member (or all): both the data path and the skip path */
            if ((mode & 2) || (i & 1)) {
                unsigned char *d = NULL;
                size_t n = 0;
                if (s2s_tar_read_data(r, &d, &n, &err) == 0) {
                    if (d[n] != 0) abort(); /* promised NUL terminator */
                    free(d);
                } else {
                    break;
                }
            }
            i++;
        }
        s2s_tar_reader_free(r);
    }
    fclose(f);
    return 0;
}

/* ---- sample stream reader: s2s_reader over a file (JSON lines or tar, gz members) --------- */
static int fz_reader(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int mode = data[0];
    int flags =
        mode & (S2S_READ_NO_VALIDATE | S2S_READ_KEEP_GZ | S2S_READ_LENIENT_END | S2S_READ_RAW);
    const char *p = fz_file(0, "in.stream", data + 1, size - 1);
    const char *paths[2] = {p, p}; /* twice: the second copy must fail as duplicates */
    s2s_err err;
    s2s_reader *r = s2s_reader_open(paths, (mode & 0x10) ? 2 : 1, flags, &err);
    if (r) {
        if (mode & 0x20) {
            s2s_part part = {1, 2};
            s2s_reader_set_part(r, &part);
        }
        s2s_sample *s;
        while (s2s_reader_next(r, &s, &err) == 1) {
            if (!s->key || (!s->item && !(flags & S2S_READ_RAW))) abort();
            for (size_t i = 0; i < s->n_members; i++)
                if (s->members[i].data[s->members[i].size] != 0) abort();
            if (s->item) {
                char *d = s2s_item_dumps(s->item);
                free(d);
            }
            s2s_sample_free(s);
        }
        (void)s2s_reader_format(r);
        s2s_reader_close(r);
    }
    return 0;
}

/* ---- items: JSON parse + s2s_item_validate + accessors ------------------------------------ */
static int fz_item(const uint8_t *data, size_t size) {
    json_error_t je;
    json_t *j = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &je);
    if (!j) return 0;
    s2s_err err;
    int ok = s2s_item_validate(j, &err) == 0;
    (void)s2s_item_id(j);
    (void)s2s_item_task(j);
    (void)s2s_item_lang(j);
    (void)s2s_item_context_text(j);
    size_t n = s2s_item_n_candidates(j);
    for (size_t i = 0; i < n + 1; i++) {
        (void)s2s_item_candidate_text(j, i);
        (void)s2s_item_candidate_label(j, i);
    }
    int right = s2s_item_right_index(j);
    if (ok && (right < 0 || (size_t)right >= n)) abort(); /* a valid item has its right answer */
    if (ok && json_is_object(j)) {
        s2s_item_add_provenance(j, "fuzz", json_pack("{s:i}", "k", 1), &err);
        char *d = s2s_item_dumps(j);
        free(d);
    }
    json_decref(j);
    return 0;
}

/* ---- CSV reader ---------------------------------------------------------------------------- */
static int fz_csv(const uint8_t *data, size_t size) {
    FILE *f = fz_fp(data, size);
    s2s_err err;
    s2s_csv *c = s2s_csv_new(f, "fuzz.csv", &err);
    if (c) {
        char **fields;
        size_t n;
        long line, last = 0;
        while (s2s_csv_next(c, &fields, &n, &line, &err) == 1) {
            if (n < 1 || line < last) abort();
            last = line;
            for (size_t i = 0; i < n; i++)
                (void)strlen(fields[i]);
        }
        s2s_csv_free(c);
    }
    fclose(f);
    return 0;
}

/* ---- importers: storycloze / cmmlu / s2sbench / items ------------------------------------- */
static int fz_import_cb(json_t *item, void *arg, s2s_err *err) {
    (void)arg;
    if (s2s_item_validate(item, err) != 0) abort(); /* importers hand out valid items only */
    char *d = s2s_item_dumps(item);
    free(d);
    return 0;
}

static int fz_import(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    static const char *formats[] = {"storycloze", "cmmlu", "s2sbench", "items"};
    const char *fmt = formats[data[0] & 3];
    s2s_import_opts o = {NULL, NULL, (data[0] >> 2) & 1};
    s2s_err err;
    s2s_importer *im = s2s_importer_new(fmt, &o, fz_import_cb, NULL, &err);
    if (!im) abort();
    const char *p = fz_file(0, "in.csv", data + 1, size - 1);
    long n = s2s_importer_file(im, p, &err);
    if (n >= 0 && (data[0] & 8)) n = s2s_importer_file(im, p, &err); /* dups across files */
    uint64_t sk = s2s_importer_skipped(im);
    for (uint64_t i = 0; i < sk; i++)
        if (!s2s_importer_skip_reason(im, i)) abort();
    s2s_importer_free(im);
    return 0;
}

/* ---- shard index file (NAME.tar.idx) ------------------------------------------------------ */
static int fz_index(const uint8_t *data, size_t size) {
    const char *p = fz_file(0, "s.tar.idx", data, size);
    s2s_err err;
    s2s_index *ix = s2s_index_read(p, &err);
    if (ix) {
        for (size_t i = 0; i < ix->n_samples; i++)
            if (ix->samples[i].first + ix->samples[i].n > ix->n_members) abort();
        s2s_index_free(ix);
    }
    return 0;
}

/* ---- a shard and its index: verify, get, read as a stream ---------------------------------
 * Input: 4 bytes big-endian length L of the index text, the index, then the shard bytes. */
static int fz_shard(const uint8_t *data, size_t size) {
    if (size < 4) return 0;
    size_t l = ((size_t)data[0] << 24) | ((size_t)data[1] << 16) | ((size_t)data[2] << 8) | data[3];
    if (l > size - 4) l = size - 4;
    fz_file(1, "s.tar.idx", data + 4, l);
    const char *shard = fz_file(0, "s.tar", data + 4 + l, size - 4 - l);
    s2s_err err;
    s2s_idset *keys = s2s_idset_new();
    uint64_t n = 0;
    (void)s2s_shard_verify(shard, NULL, keys, &n, &err);
    s2s_idset_free(keys);
    s2s_index *ix = s2s_index_read(fz_file(2, "s.tar.idx", data + 4, l), &err);
    if (ix) {
        if (ix->n_samples) {
            const char *const shards[1] = {shard};
            s2s_sample *s = NULL;
            if (s2s_shard_get(shards, 1, ix->samples[0].key, &s, &err) == 1) {
                (void)s2s_shard_sample_to_stream(s, &err);
                s2s_sample_free(s);
            }
        }
        s2s_index_free(ix);
    }
    const char *paths[1] = {shard};
    s2s_reader *r = s2s_reader_open(paths, 1, 0, &err);
    if (r) {
        s2s_sample *s;
        while (s2s_reader_next(r, &s, &err) == 1) {
            (void)s2s_shard_sample_to_stream(s, &err);
            s2s_sample_free(s);
        }
        s2s_reader_close(r);
    }
    return 0;
}

/* ---- dataset.json ------------------------------------------------------------------------- */
static int fz_dataset(const uint8_t *data, size_t size) {
    fz_file(0, "dataset.json", data, size);
    s2s_err err;
    char **paths = NULL;
    size_t n = 0;
    if (s2s_dataset_shards(fz_tmpdir(), &paths, &n, &err) == 0) s2s_paths_free(paths, n);
    (void)s2s_dataset_verify(fz_tmpdir(), &err);
    /* sealed and rewritten in canonical form: a second write gives the same bytes (the
     * canonical form is a fixed point), and verify never blames the seal or the spelling */
    json_t *ds = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (json_is_object(ds)) {
        const char *p = fz_file(0, "dataset.json", (const uint8_t *)"", 0);
        unsigned char *a = NULL, *b = NULL;
        size_t al = 0, bl = 0;
        if (s2s_dataset_write(p, ds, &err) == 0 && s2s_read_file(p, &a, &al, &err) == 0) {
            /* the messages of the seal and canonical-form checks start so (a key name in
             * another message may hold any text) */
            char seal_msg[700], canon_msg[700];
            snprintf(seal_msg, sizeof seal_msg, "%s: damaged or edited: its content hashes", p);
            snprintf(canon_msg, sizeof canon_msg, "%s: byte ", p);
            if (s2s_dataset_verify(fz_tmpdir(), &err) < 0 &&
                (strncmp(err.msg, seal_msg, strlen(seal_msg)) == 0 ||
                 strncmp(err.msg, canon_msg, strlen(canon_msg)) == 0)) {
                fprintf(stderr, "fuzz dataset: sealed file fails: %s\n", err.msg);
                abort();
            }
            if (s2s_dataset_write(p, ds, &err) != 0 || s2s_read_file(p, &b, &bl, &err) != 0 ||
                al != bl || memcmp(a, b, al) != 0)
                abort();
        }
        free(a);
        free(b);
    }
    json_decref(ds);
    fz_rm("dataset.json");
    return 0;
}

/* ---- ARPA n-gram files -------------------------------------------------------------------- */
static int fz_arpa(const uint8_t *data, size_t size) {
    const char *p = fz_file(0, "lm.arpa", data, size);
    s2s_err err;
    s2s_lm *lm = s2s_lm_load_arpa(p, &err);
    if (lm) {
        int order = s2s_lm_order(lm);
        if (order < 1) abort();
        size_t v = s2s_lm_vocab_size(lm);
        const char *ctx[3], *cont[3];
        for (size_t i = 0; i < 3; i++) {
            ctx[i] = v ? s2s_lm_vocab_word(lm, (i * 7) % v) : "a";
            cont[i] = v ? s2s_lm_vocab_word(lm, (i * 5 + 1) % v) : "b";
        }
        double nll;
        size_t ntok, oov;
        (void)s2s_lm_score(lm, ctx, 3, cont, 3, 1, &nll, &ntok, &oov, &err);
        const char *unk[1] = {"zzz-not-a-word"};
        (void)s2s_lm_score(lm, unk, 1, unk, 1, 0, &nll, &ntok, &oov, &err);
        FILE *null = fopen("/dev/null", "w");
        if (null) {
            (void)s2s_lm_write_arpa(lm, null, &err);
            fclose(null);
        }
        s2s_lm_free(lm);
    }
    return 0;
}

/* libsndfile over memory, the reference of s2s_wav_pcm_view */
typedef struct {
    const unsigned char *p;
    sf_count_t n, pos;
} memvio;
static sf_count_t mv_len(void *u) {
    return ((memvio *)u)->n;
}
static sf_count_t mv_seek(sf_count_t off, int whence, void *u) {
    memvio *m = u;
    sf_count_t at = whence == SEEK_SET ? off : whence == SEEK_CUR ? m->pos + off : m->n + off;
    if (at < 0 || at > m->n) return -1;
    return m->pos = at;
}
static sf_count_t mv_read(void *buf, sf_count_t cnt, void *u) {
    memvio *m = u;
    if (cnt > m->n - m->pos) cnt = m->n - m->pos;
    if (cnt > 0) memcpy(buf, m->p + m->pos, (size_t)cnt), m->pos += cnt;
    return cnt > 0 ? cnt : 0;
}
static sf_count_t mv_write(const void *buf, sf_count_t cnt, void *u) {
    (void)buf, (void)cnt, (void)u;
    return 0;
}
static sf_count_t mv_tell(void *u) {
    return ((memvio *)u)->pos;
}

/* Differential: what s2s_wav_pcm_view accepts lies inside the buffer, and when libsndfile opens
 * it too, rate, channels, frame count and, for 16-bit, every sample equal libsndfile's (the
 * view's contract in s2s/audio.h). Any disagreement aborts (a finding). */
static void wav_view_vs_libsndfile(const uint8_t *b, size_t n) {
    s2s_wav_pcm v;
    if (s2s_wav_pcm_view(b, n, &v) != 1) return;
    size_t bps = (size_t)v.bits / 8, bytes = v.frames * (size_t)v.channels * bps;
    if (v.channels < 1 || bps < 1 || v.data < b || v.data > b + n ||
        bytes > (size_t)(b + n - v.data))
        abort();
    memvio m = {b, (sf_count_t)n, 0};
    SF_VIRTUAL_IO io = {mv_len, mv_seek, mv_read, mv_write, mv_tell};
    SF_INFO info;
    memset(&info, 0, sizeof info);
    SNDFILE *sf = sf_open_virtual(&io, SFM_READ, &info, &m);
    /* The view may take a file libsndfile refuses (e.g. bytes after the RIFF chunk that
     * libsndfile reads as a broken chunk: sox and ffmpeg take those too); what both take, they
     * must read alike. */
    if (!sf) return;
    if (info.samplerate != v.rate || info.channels != v.channels ||
        info.frames != (sf_count_t)v.frames)
        abort();
    if (v.bits == 16) {
        enum { FR = 256 };
        short *got = malloc((size_t)v.channels * FR * sizeof *got);
        if (!got) abort();
        for (size_t done = 0; done < v.frames;) {
            sf_count_t want = (sf_count_t)(v.frames - done < FR ? v.frames - done : FR);
            sf_count_t r = sf_readf_short(sf, got, want);
            if (r != want) abort(); /* libsndfile has fewer frames than the view */
            for (size_t i = 0; i < (size_t)r * (size_t)v.channels; i++) {
                const unsigned char *q = v.data + 2 * (done * (size_t)v.channels + i);
                if ((short)(uint16_t)(q[0] | (unsigned)q[1] << 8) != got[i]) abort();
            }
            done += (size_t)r;
        }
        free(got);
    }
    sf_close(sf);
}

/* Round trip: the built-in FLAC encoder (s2s/flacenc.h) on any samples, decoded by libFLAC
 * (s2s_flac_decode), gives the samples back bit for bit. Layout: channels-1 (mod 8); a mode
 * byte (bits 0-1: raw 16-bit, raw 24-bit, raw unsigned 8-bit (stored as 16-bit (x-128)*256),
 * int32 values at 16 or 24 bits (bit 2), which also tries an out-of-range value when bit 3 is
 * set); two bytes of rate (bit 4 of the mode adds 655350, beyond the streamable subset); then
 * little-endian samples. */
static void flacenc_roundtrip(const uint8_t *b, size_t n) {
    if (n < 4) return;
    unsigned ch = b[0] % 8u + 1, mode = b[1] % 4u, wide = b[1] & 4u;
    unsigned rate = 1 + (b[2] | (unsigned)b[3] << 8) + (b[1] & 16u ? 655350u : 0u);
    b += 4, n -= 4;
    unsigned in_bits = mode == 1 ? 24 : mode == 2 ? 8 : 16, bits = in_bits == 24 ? 24 : 16;
    if (mode == 3) in_bits = bits = wide ? 24 : 16; /* int32 */
    size_t fb = (size_t)ch * (mode == 3 ? 4 : in_bits / 8), frames = n / fb;
    if (frames == 0) return;
    int32_t *v32 = NULL;
    int16_t *want16 = NULL;
    if (mode == 3) {
        if (!(v32 = malloc(frames * ch * sizeof *v32))) return;
        for (size_t i = 0; i < frames * ch; i++) { /* the low `bits` bits, sign-extended */
            uint32_t u = (uint32_t)b[4 * i] | (uint32_t)b[4 * i + 1] << 8 |
                         (uint32_t)b[4 * i + 2] << 16 | (uint32_t)b[4 * i + 3] << 24;
            u <<= 32 - bits;
            v32[i] = (int32_t)u / (1 << (32 - bits));
        }
        if (b[1] & 8u) { /* one value one past the range: refused, not encoded */
            int32_t keep = v32[0];
            v32[0] = (int32_t)(1u << (bits - 1));
            s2s_flacenc_in bad = {NULL, v32, bits, bits, frames, rate, ch};
            s2s_buf e = {0};
            s2s_err err;
            if (s2s_flacenc(&bad, &e, &err) != S2S_EINVAL) abort();
            s2s_buf_free(&e);
            v32[0] = keep;
        }
    } else if (mode == 2) {
        if (!(want16 = malloc(frames * ch * sizeof *want16))) return;
        for (size_t i = 0; i < frames * ch; i++)
            want16[i] = (int16_t)(((int)b[i] - 128) * 256);
    }
    s2s_flacenc_in in = {mode == 3 ? NULL : b, v32, in_bits, bits, frames, rate, ch};
    s2s_buf enc = {0};
    s2s_err err;
    if (s2s_flacenc(&in, &enc, &err) != 0) abort(); /* valid parameters: must encode */
    unsigned char *wav = NULL;
    size_t wn = 0;
    if (s2s_flac_decode(enc.data, enc.len, &wav, &wn, &err) != 0) abort();
    s2s_wav_pcm v;
    if (s2s_wav_pcm_view(wav, wn, &v) != 1 || v.frames != frames || v.channels != (int)ch ||
        v.bits != (int)bits || v.rate != (int)rate)
        abort();
    size_t bb = bits / 8;
    for (size_t i = 0; i < frames * ch; i++) {
        const unsigned char *q = v.data + bb * i;
        int32_t got =
            bb == 2 ? (int16_t)(uint16_t)(q[0] | q[1] << 8)
                    : (int32_t)((uint32_t)q[0] << 8 | (uint32_t)q[1] << 16 | (uint32_t)q[2] << 24) /
                          256;
        int32_t want = mode == 3   ? v32[i]
                       : mode == 2 ? want16[i]
                       : bb == 2
                           ? (int16_t)(uint16_t)(b[2 * i] | b[2 * i + 1] << 8)
                           : (int32_t)((uint32_t)b[3 * i] << 8 | (uint32_t)b[3 * i + 1] << 16 |
                                       (uint32_t)b[3 * i + 2] << 24) /
                                 256;
        if (got != want) abort();
    }
    free(wav);
    free(v32);
    free(want16);
    s2s_buf_free(&enc);
}

/* Runs in[0..n-1] through r, cut into blocks whose sizes come from cuts[] (0: all at once);
 * returns the malloc'd output (length *n_out). Aborts on an error: the inputs are valid. */
static float *rs_run(s2s_resampler *r, const float *in, size_t n, const uint8_t *cuts,
                     size_t n_cuts, size_t *n_out) {
    s2s_err err;
    size_t cap = 1024, len = 0, pos = 0, ci = 0;
    float *o = malloc(cap * sizeof *o);
    if (!o) abort();
    for (int fin = 0; fin < 2;) {
        const float *y;
        size_t ny, take = 0;
        if (pos < n) {
            take = n_cuts ? 1 + (size_t)cuts[ci++ % n_cuts] * 7 : n;
            if (take > n - pos) take = n - pos;
            if (s2s_resampler_process(r, in + pos, take, &y, &ny, &err) != 0) abort();
            pos += take;
        } else {
            if (s2s_resampler_flush(r, &y, &ny, &err) != 0) abort();
            fin = 2;
        }
        if (len + ny > cap) {
            while (len + ny > cap)
                cap *= 2;
            float *t = realloc(o, cap * sizeof *o);
            if (!t) abort();
            o = t;
        }
        if (ny) memcpy(o + len, y, ny * sizeof *y);
        len += ny;
    }
    *n_out = len;
    return o;
}

/* The resampler's contract (s2s/resample.h) on any rates, lengths and block cuts: the length is
 * round(n * out / in); the bytes do not depend on how the input is cut, on a reset handle, or
 * (s2s engine) on the SIMD kernel; the output is finite. Input: [rate a][rate b][cut bytes
 * count][cuts...][16-bit samples...]. */
static void resample_contract(const uint8_t *b, size_t n) {
    static const int rates[16] = {8000,  11025, 16000, 22050, 24000, 32000, 44100, 48000,
                                  12000, 96000, 16000, 22050, 16000, 24000, 7350,  64000};
    if (n < 5) return;
    int ra = b[0] & 0x80 ? 4000 + (b[0] & 0x7F) * 700 + b[3] : rates[b[0] & 15];
    int rb = b[1] & 0x80 ? 4000 + (b[1] & 0x7F) * 700 + b[4] : rates[b[1] & 15];
    size_t nc = b[2] % 16;
    b += 5, n -= 5;
    if (nc > n) nc = n;
    const uint8_t *cuts = b;
    b += nc, n -= nc;
    size_t ns = n / 2 > 6000 ? 6000 : n / 2;
    float *x = malloc((ns ? ns : 1) * sizeof *x);
    if (!x) abort();
    for (size_t i = 0; i < ns; i++)
        x[i] = (float)(int16_t)(b[2 * i] | b[2 * i + 1] << 8) / 32768.0f;
    s2s_err err;
    s2s_resampler *r =
        s2s_resampler_new(S2S_RS_DEFAULT_ENGINE, S2S_RS_DEFAULT_QUALITY, ra, rb, &err);
    if (!r) abort(); /* every rate here is valid: the s2s engine falls back, never fails */
    size_t n1, n2, n3;
    float *y1 = rs_run(r, x, ns, NULL, 0, &n1);
    if (n1 != s2s_resample_out_len(ns, ra, rb)) abort();
    for (size_t i = 0; i < n1; i++)
        if (!(y1[i] > -8.0f && y1[i] < 8.0f)) abort(); /* finite, and no wild overshoot */
    if (s2s_resampler_reset(r, &err) != 0) abort();
    float *y2 = rs_run(r, x, ns, cuts, nc, &n2);
    if (n2 != n1 || (n1 && memcmp(y1, y2, n1 * sizeof *y1) != 0)) abort();
    s2s_resampler_free(r);
    /* the portable kernel gives the same bytes as the one this CPU picks */
    r = s2s_resampler_new(S2S_RS_DEFAULT_ENGINE, S2S_RS_DEFAULT_QUALITY, ra, rb, &err);
    if (!r || s2s_resampler_set_impl(r, 0) != 0) abort();
    float *y3 = rs_run(r, x, ns, cuts, nc, &n3);
    if (n3 != n1 || (n1 && memcmp(y1, y3, n1 * sizeof *y1) != 0)) abort();
    s2s_resampler_free(r);
    free(y1), free(y2), free(y3), free(x);
}

/* ---- member codecs: gunzip, FLAC, any audio (what arrives in streams and shards), and the
 * resampler's contract on what they decode ------------------------------------------------- */
static int fz_codec(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    unsigned char *out = NULL;
    size_t n = 0;
    s2s_err err;
    switch (data[0] % 6) {
    case 5:
        resample_contract(data + 1, size - 1);
        break;
    case 4:
        flacenc_roundtrip(data + 1, size - 1);
        break;
    case 3:
        wav_view_vs_libsndfile(data + 1, size - 1);
        break;
    case 0:
        if (s2s_gunzip(data + 1, size - 1, &out, &n, &err) == 0) free(out);
        break;
    case 1:
        /* regress/codec/flac-streaminfo-huge-total: a header claiming 4 GB must not be
         * allocated before anything decodes (fixed: the buffer grows with the decoded data). */
        if (s2s_flac_decode(data + 1, size - 1, &out, &n, &err) == 0) free(out);
        break;
    default: {
        s2s_audio a;
        memset(&a, 0, sizeof a);
        (void)s2s_audio_decode(data + 1, size - 1, "fuzz.wav", &a, &err);
        s2s_audio_free(&a); /* also after failure (s2s/audio.h) */
        break;
    }
    }
    return 0;
}

/* ---- upstream losses file (losses:FILE backend) ------------------------------------------- */
static int fz_losses(const uint8_t *data, size_t size) {
    const char *p = fz_file(0, "result.jsonl", data, size);
    char spec[700];
    snprintf(spec, sizeof spec, "losses:%s", p);
    s2s_err err;
    s2s_backend *b = s2s_backend_open(spec, &err);
    if (b) s2s_backend_free(b);
    return 0;
}

/* ---- worker replies: a "worker" that prints the fuzz bytes (after a valid hello unless the
 * first byte says otherwise) while the backend has requests 0..3 in flight. Slow (a process per
 * input), but it drives the real reply parser and the fault path. */
static int fz_worker(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const char *hello = "{\"hello\":\"s2s-worker\",\"protocol\":1,\"model_id\":\"fz\"}\n";
    size_t hl = (data[0] & 1) ? 0 : strlen(hello);
    uint8_t *buf = malloc(hl + size);
    if (!buf) abort();
    memcpy(buf, hello, hl);
    memcpy(buf + hl, data + 1, size - 1);
    const char *p = fz_file(0, "replies", buf, hl + size - 1);
    free(buf);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "exec cat '%s'", p);
    s2s_worker_opts o = {2.0, 0, 4};
    s2s_err err;
    s2s_backend *b = s2s_backend_worker_open("worker:fuzz", cmd, &o, &err);
    if (!b) return 0;
    unsigned needs;
    (void)s2s_backend_needs(b, S2S_MODE_T2T, &needs, &err);
    int rc = 0;
    for (uint64_t id = 0; id < 4 && rc == 0 && s2s_backend_in_flight(b) < s2s_backend_capacity(b);
         id++) {
        s2s_request rq;
        memset(&rq, 0, sizeof rq);
        rq.req_id = id;
        rq.item_id = "fz-1";
        rq.mode = S2S_MODE_T2T;
        rq.ctx_text = "a b";
        rq.cand_text = "c";
        rc = s2s_backend_submit(b, &rq, &err);
    }
    s2s_reply rep[8];
    while (rc >= 0 && s2s_backend_in_flight(b) > 0) {
        rc = s2s_backend_poll(b, rep, 8, 1, &err);
        if (rc == 0) break;
    }
    s2s_backend_free(b);
    return 0;
}

/* ---- codebook files (s2s-tokenize --codebook) ------------------------------------------------
 * The content hash stops most mutations early; with the first byte odd the harness recomputes
 * data_sha256 over the centres after mutation so the fuzzer also reaches the checks behind it. */
static int fz_codebook(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    s2s_err err;
    unsigned char *buf = malloc(size);
    if (!buf) abort();
    memcpy(buf, data + 1, size - 1);
    size_t n = size - 1;
    if (data[0] & 1) {
        unsigned char *nl1 = memchr(buf, '\n', n);
        unsigned char *nl2 = nl1 ? memchr(nl1 + 1, '\n', n - (size_t)(nl1 + 1 - buf)) : NULL;
        unsigned char *h = NULL;
        for (unsigned char *q = nl1; q && nl2 && q + 15 <= nl2 && !h; q++)
            if (memcmp(q, "\"data_sha256\":\"", 15) == 0) h = q;
        if (h && nl2 && (size_t)(nl2 - h) > 15 + 64) {
            char hex[65];
            s2s_sha256_hex(nl2 + 1, n - (size_t)(nl2 + 1 - buf), hex);
            memcpy(h + 15, hex, 64);
        }
    }
    s2s_codebook *cb = s2s_codebook_parse(buf, n, "fuzz.cb", &err);
    if (cb) {
        size_t k = s2s_codebook_k(cb), dim = s2s_codebook_dim(cb);
        if (k < 1 || dim < 1) abort();
        float *x = calloc(2 * dim, sizeof *x);
        int32_t u[2];
        if (!x) abort();
        x[0] = 1.0f;
        if (s2s_codebook_assign(cb, x, 2, u, &err) == 0)
            for (int i = 0; i < 2; i++)
                if (u[i] < 0 || (size_t)u[i] >= k) abort();
        free(x);
        unsigned char *out = NULL;
        size_t on = 0;
        if (s2s_codebook_serialize(cb, &out, &on, &err) == 0) free(out);
        s2s_codebook_free(cb);
    }
    free(buf);
    return 0;
}

/* ---- recipes (s2s-build) -------------------------------------------------------------------- */
static int fz_recipe(const uint8_t *data, size_t size) {
    const char *p = fz_file(0, "fz.recipe", data, size);
    s2s_err err;
    s2s_recipe *r = s2s_recipe_load(p, fz_tmpdir(), &err);
    if (r) {
        (void)s2s_recipe_check_sources(r, &err);
        s2s_recipe_free(r);
    }
    return 0;
}

/* ---- worker requests, as `s2s-lm serve` reads them (s2s_worker_serve over an n-gram model) --- */
static int fz_serve(const uint8_t *data, size_t size) {
    static s2s_backend *b;
    s2s_err err;
    if (!b) {
        static const char arpa[] = "\\data\\\nngram 1=4\nngram 2=2\n\n\\1-grams:\n-1.0\t<s>\t-0.3\n"
                                   "-0.7\t</s>\n-0.5\ta\t-0.2\n-0.6\tb\t-0.1\n\n\\2-grams:\n"
                                   "-0.2\t<s> a\n-0.3\ta b\n\n\\end\\\n";
        char spec[700];
        snprintf(spec, sizeof spec, "ngram:%s",
                 fz_file(2, "serve.arpa", (const uint8_t *)arpa, sizeof arpa - 1));
        if (!(b = s2s_backend_open(spec, &err))) {
            fprintf(stderr, "fz_serve: %s\n", err.msg);
            abort();
        }
    }
    /* regress/serve/ngram-empty-context: a context with no tokens (fixed in backend_ngram.c). */
    FILE *in = fz_fp(data, size);
    FILE *out = fopen("/dev/null", "w");
    if (!out) abort();
    (void)s2s_worker_serve(b, "fz", in, out, &err);
    fclose(out);
    fclose(in);
    return 0;
}

typedef struct s2s_fuzz_target {
    const char *name;
    s2s_fuzz_fn fn;
} s2s_fuzz_target;

static const s2s_fuzz_target s2s_fuzz_targets[] = {
    {"tar", fz_tar},           {"reader", fz_reader},   {"item", fz_item},
    {"csv", fz_csv},           {"import", fz_import},   {"index", fz_index},
    {"shard", fz_shard},       {"dataset", fz_dataset}, {"arpa", fz_arpa},
    {"codec", fz_codec},       {"losses", fz_losses},   {"worker", fz_worker},
    {"codebook", fz_codebook}, {"recipe", fz_recipe},   {"serve", fz_serve},
};

static const s2s_fuzz_target *s2s_fuzz_find(const char *name) {
    for (size_t i = 0; i < sizeof s2s_fuzz_targets / sizeof *s2s_fuzz_targets; i++)
        if (strcmp(s2s_fuzz_targets[i].name, name) == 0) return &s2s_fuzz_targets[i];
    return NULL;
}

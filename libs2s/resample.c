/* resample.c — one streaming handle over libsoxr (called directly) and libsamplerate. */
#include "s2s/resample.h"
#include "resample_fft.h"

#include <samplerate.h>
#include <soxr.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct s2s_resampler {
    int engine, quality, in_rate, out_rate, flushed;
    int used; /* the engine that runs (s2s falls back to soxr for pairs it does not take) */
    SRC_STATE *src;
    soxr_t sox;
    s2s_rsfft *fft;
    char note[200]; /* why the engine that runs is not the one asked for ("" if it is) */
    /* carry[0..n_carry-1]: converted, not yet handed out; the first `given` of them were handed
     * out by the previous call and are dropped at the start of the next. */
    float *carry;
    size_t n_carry, cap, given;
    int64_t total_in, total_out;
};

static const char *const engine_names[] = {"soxr", "src", "s2s"};
static const char *const quality_names[] = {"best", "medium", "fastest"};

const char *s2s_resample_engine_name(int e) {
    return e >= 0 && e < 3 ? engine_names[e] : NULL;
}
const char *s2s_resample_quality_name(int q) {
    return q >= 0 && q < 3 ? quality_names[q] : NULL;
}
int s2s_resample_parse_engine(const char *s) {
    for (int i = 0; s && i < 3; i++)
        if (strcmp(s, engine_names[i]) == 0) return i;
    if (s && strcmp(s, "swr") == 0) return S2S_RS_SOXR; /* the name before 0.2.0: same samples */
    return -1;
}
int s2s_resample_parse_quality(const char *s) {
    for (int i = 0; s && i < 3; i++)
        if (strcmp(s, quality_names[i]) == 0) return i;
    return -1;
}

size_t s2s_resample_out_len(size_t n, int in_rate, int out_rate) {
    if (in_rate <= 0 || out_rate <= 0) return 0;
    /* n * out_rate fits in 64 bits for any n a machine can hold at rates <= 1e6. */
    return (size_t)(((uint64_t)n * (uint64_t)out_rate + (uint64_t)in_rate / 2) / (uint64_t)in_rate);
}

static int reserve(s2s_resampler *r, size_t extra, s2s_err *err) {
    if (r->n_carry + extra <= r->cap) return 0;
    size_t cap = r->cap ? r->cap : 8192;
    while (cap < r->n_carry + extra)
        cap *= 2;
    float *p = realloc(r->carry, cap * sizeof *p);
    if (!p) return s2s_err_set(err, S2S_ENOMEM, "out of memory resampling");
    r->carry = p;
    r->cap = cap;
    return 0;
}

/* Soxr precision (bits) for our qualities: best 28 (sox -v), medium 20 (sox's default -h, the
 * default: the output is 16-bit, whose own floor is ~98 dB, and 20 bits runs soxr's
 * single-precision SSE code, ~30 % less CPU than 24), fastest 16 (sox -m's precision).
 * Measured effect of each: docs/resample.md. */
static const double soxr_precision[] = {28, 20, 16};

static int engine_open(s2s_resampler *r, s2s_err *err);
static const int src_types[] = {SRC_SINC_BEST_QUALITY, SRC_SINC_MEDIUM_QUALITY, SRC_SINC_FASTEST};

s2s_resampler *s2s_resampler_new(int engine, int quality, int in_rate, int out_rate, s2s_err *err) {
    if (in_rate < 1 || in_rate > 1000000 || out_rate < 1 || out_rate > 1000000) {
        s2s_err_set(err, S2S_EINVAL, "sample rates must be 1..1000000 Hz (got %d -> %d)", in_rate,
                    out_rate);
        return NULL;
    }
    if (!s2s_resample_engine_name(engine) || !s2s_resample_quality_name(quality)) {
        s2s_err_set(err, S2S_EINVAL, "unknown resampler engine %d or quality %d", engine, quality);
        return NULL;
    }
    s2s_resampler *r = calloc(1, sizeof *r);
    if (!r) {
        s2s_err_set(err, S2S_ENOMEM, "out of memory");
        return NULL;
    }
    r->engine = r->used = engine;
    r->quality = quality;
    r->in_rate = in_rate;
    r->out_rate = out_rate;
    if (engine_open(r, err) < 0) {
        free(r);
        return NULL;
    }
    return r;
}

/* Opens r's engine for r's rates (r->used, r->note set). Returns 0 or negative (err set). */
static int engine_open(s2s_resampler *r, s2s_err *err) {
    int engine = r->engine, quality = r->quality, in_rate = r->in_rate, out_rate = r->out_rate;
    r->used = engine;
    r->note[0] = 0;
    if (in_rate == out_rate) return 0; /* plain copy */
    if (engine == S2S_RS_S2S) {
        if (quality == S2S_RS_MEDIUM) {
            s2s_err e2;
            s2s_err_clear(&e2);
            if ((r->fft = s2s_rsfft_new(in_rate, out_rate, &e2))) return 0;
            if (e2.code != S2S_EUNSUP) return s2s_err_set(err, e2.code, "%s", e2.msg);
            snprintf(r->note, sizeof r->note, "%s; libsoxr runs instead", e2.msg);
        }
        /* best and fastest: libsoxr's 28 and 16 bits (the s2s engine has one quality) */
        r->used = engine = S2S_RS_SOXR;
    }
    if (engine == S2S_RS_SRC) {
        int e = 0;
        r->src = src_new(src_types[quality], 1, &e);
        if (!r->src) return s2s_err_set(err, S2S_EUNSUP, "libsamplerate: %s", src_strerror(e));
        return 0;
    }
    /* As libswresample's soxr resampler sets it up (resampler=soxr precision=P cutoff=0.95
     * cheby=1), so the samples are those of the 0.1 releases, which went through it: recipe
     * (P - 2) / 4, flat passband (ROLLOFF_NONE) and the high-precision clock; the passband up to
     * 95 % of the output Nyquist frequency as in sox's rate effect (soxr's own default for
     * 20 bits is 91 %, which cuts 7.3-7.6 kHz of 16 kHz speech that sox keeps). */
    double prec = soxr_precision[quality];
    soxr_quality_spec_t q =
        soxr_quality_spec((unsigned long)((prec - 2) / 4), SOXR_HI_PREC_CLOCK | SOXR_ROLLOFF_NONE);
    q.precision = prec;
    q.passband_end = 0.95;
    soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
    soxr_runtime_spec_t rt = soxr_runtime_spec(1);
    soxr_error_t e = NULL;
    r->sox = soxr_create(in_rate, out_rate, 1, &e, &io, &q, &rt);
    if (!r->sox)
        return s2s_err_set(err, S2S_EUNSUP, "libsoxr: %s", e ? e : "cannot create the resampler");
    return 0;
}

void s2s_resampler_free(s2s_resampler *r) {
    if (!r) return;
    if (r->src) src_delete(r->src);
    soxr_delete(r->sox);
    s2s_rsfft_free(r->fft);
    free(r->carry);
    free(r);
}

int s2s_resampler_reset(s2s_resampler *r, s2s_err *err) {
    r->flushed = 0;
    r->n_carry = r->given = 0;
    r->total_in = r->total_out = 0;
    if (r->fft) { /* the filter and the transforms' tables are kept */
        s2s_rsfft_reset(r->fft);
        return 0;
    }
    /* libsoxr and libsamplerate: a fresh state, exactly as a new handle */
    if (r->src) src_delete(r->src);
    soxr_delete(r->sox);
    r->src = NULL;
    r->sox = NULL;
    return engine_open(r, err);
}

int s2s_resampler_engine(const s2s_resampler *r) {
    return r->used;
}

const char *s2s_resampler_note(const s2s_resampler *r) {
    return r->note[0] ? r->note : NULL;
}

int s2s_resampler_set_impl(s2s_resampler *r, int impl) {
    if (!r->fft) return impl == 0 || impl == -1 ? 0 : S2S_EUNSUP;
    return s2s_rsfft_set_impl(r->fft, impl);
}

/* Runs the engine on in[0..n-1] (in NULL: end of input), appending to carry. */
static int run(s2s_resampler *r, const float *in, size_t n, int eof, s2s_err *err) {
    if (!eof && n == 0) return 0; /* nothing to feed: libsoxr would read in = NULL as the end */
    if (r->fft) {
        const float *y;
        size_t ny;
        int rc = s2s_rsfft_feed(r->fft, in, n, eof, &y, &ny, err);
        if (rc < 0) return rc;
        if (ny) {
            if (reserve(r, ny, err) < 0) return S2S_ENOMEM;
            memcpy(r->carry + r->n_carry, y, ny * sizeof *y);
            r->n_carry += ny;
        }
        return 0;
    }
    if (!r->src && !r->sox) { /* equal rates */
        if (reserve(r, n, err) < 0) return S2S_ENOMEM;
        if (n) memcpy(r->carry + r->n_carry, in, n * sizeof *in);
        r->n_carry += n;
        return 0;
    }
    double ratio = (double)r->out_rate / r->in_rate;
    if (r->src) {
        SRC_DATA d;
        static const float none[1] = {0};
        size_t used = 0;
        for (;;) {
            size_t chunk = n - used > 65536 ? 65536 : n - used;
            size_t room = (size_t)((double)chunk * ratio) + 4096;
            if (reserve(r, room, err) < 0) return S2S_ENOMEM;
            memset(&d, 0, sizeof d);
            d.data_in = chunk ? in + used : none;
            d.input_frames = (long)chunk;
            d.data_out = r->carry + r->n_carry;
            d.output_frames = (long)room;
            d.src_ratio = ratio;
            d.end_of_input = eof;
            int e = src_process(r->src, &d);
            if (e) return s2s_err_set(err, S2S_EUNSUP, "libsamplerate: %s", src_strerror(e));
            used += (size_t)d.input_frames_used;
            r->n_carry += (size_t)d.output_frames_gen;
            if (eof ? d.output_frames_gen == 0 : used >= n) break;
            if (!eof && d.input_frames_used == 0 && d.output_frames_gen == 0)
                return s2s_err_set(err, S2S_EUNSUP, "libsamplerate made no progress");
        }
        return 0;
    }
    /* soxr takes what fits the output room and keeps the rest of its input to itself only up to
     * that room: loop until everything is taken (and, at the end, until nothing more comes). */
    size_t used = 0;
    for (;;) {
        size_t room = (size_t)((double)(n - used) * ratio) + 1024;
        if (reserve(r, room, err) < 0) return S2S_ENOMEM;
        size_t idone = 0, odone = 0;
        soxr_error_t e =
            eof ? soxr_process(r->sox, NULL, 0, NULL, r->carry + r->n_carry, room, &odone)
                : soxr_process(r->sox, in + used, n - used, &idone, r->carry + r->n_carry, room,
                               &odone);
        if (e) return s2s_err_set(err, S2S_EUNSUP, "libsoxr: %s", e);
        used += idone;
        r->n_carry += odone;
        if (eof ? odone == 0 : used >= n) break;
        if (!idone && !odone) return s2s_err_set(err, S2S_EUNSUP, "libsoxr made no progress");
    }
    return 0;
}

/* Hands out carry[0..k-1] where k keeps the total at most `limit`. */
static void give(s2s_resampler *r, int64_t limit, const float **out, size_t *n_out) {
    int64_t k = limit - r->total_out;
    if (k < 0) k = 0;
    if ((size_t)k > r->n_carry) k = (int64_t)r->n_carry;
    r->given = (size_t)k;
    r->total_out += k;
    *out = r->carry;
    *n_out = (size_t)k;
}

static void drop_given(s2s_resampler *r) {
    if (r->given && r->carry) {
        memmove(r->carry, r->carry + r->given, (r->n_carry - r->given) * sizeof *r->carry);
        r->n_carry -= r->given;
        r->given = 0;
    }
}

int s2s_resampler_process(s2s_resampler *r, const float *in, size_t n_in, const float **out,
                          size_t *n_out, s2s_err *err) {
    *out = NULL;
    *n_out = 0;
    if (r->flushed) return s2s_err_set(err, S2S_EINVAL, "resampler already flushed");
    drop_given(r);
    /* Never run ahead of floor(total_in * ratio): the final length is round() of it. */
    int64_t limit = (r->total_in + (int64_t)n_in) * r->out_rate / r->in_rate;
    if (r->fft && r->n_carry == 0) {
        /* The s2s engine only runs blocks whose input is all there, so its output never passes
         * the limit: handed out from its own buffer, no copy. */
        const float *y;
        size_t ny;
        int rc = s2s_rsfft_feed(r->fft, in, n_in, 0, &y, &ny, err);
        if (rc < 0) return rc;
        r->total_in += (int64_t)n_in;
        if ((int64_t)ny <= limit - r->total_out) {
            *out = y;
            *n_out = ny;
            r->total_out += (int64_t)ny;
            return 0;
        }
        if (reserve(r, ny, err) < 0) return S2S_ENOMEM; /* not reached: kept for safety */
        memcpy(r->carry, y, ny * sizeof *y);
        r->n_carry = ny;
    } else {
        int rc = run(r, in, n_in, 0, err);
        if (rc < 0) return rc;
        r->total_in += (int64_t)n_in;
    }
    give(r, limit, out, n_out);
    return 0;
}

int s2s_resampler_flush(s2s_resampler *r, const float **out, size_t *n_out, s2s_err *err) {
    *out = NULL;
    *n_out = 0;
    if (r->flushed) return s2s_err_set(err, S2S_EINVAL, "resampler already flushed");
    r->flushed = 1;
    drop_given(r);
    int64_t target = (int64_t)s2s_resample_out_len((size_t)r->total_in, r->in_rate, r->out_rate);
    if (r->fft && r->n_carry == 0) { /* as in process: straight from the engine's buffer */
        const float *y;
        size_t ny;
        int rc = s2s_rsfft_feed(r->fft, NULL, 0, 1, &y, &ny, err);
        if (rc < 0) return rc;
        if ((int64_t)ny >= target - r->total_out) {
            *out = y;
            *n_out = (size_t)(target - r->total_out);
            r->total_out = target;
            return 0;
        }
        if (reserve(r, ny, err) < 0) return S2S_ENOMEM; /* not reached: kept for safety */
        if (ny) memcpy(r->carry, y, ny * sizeof *y);
        r->n_carry = ny;
    } else {
        int rc = run(r, NULL, 0, 1, err);
        if (rc < 0) return rc;
    }
    int64_t have = r->total_out + (int64_t)r->n_carry;
    if (have < target) { /* engines may stop a sample or two short: pad with silence */
        size_t pad = (size_t)(target - have);
        if (reserve(r, pad, err) < 0) return S2S_ENOMEM;
        memset(r->carry + r->n_carry, 0, pad * sizeof *r->carry);
        r->n_carry += pad;
    }
    give(r, target, out, n_out);
    return 0;
}

int s2s_resample_buffer(int engine, int quality, const float *in, size_t n, int in_rate,
                        int out_rate, float **out, size_t *n_out, s2s_err *err) {
    *out = NULL;
    *n_out = 0;
    s2s_resampler *r = s2s_resampler_new(engine, quality, in_rate, out_rate, err);
    if (!r) return err ? err->code : S2S_EINVAL;
    size_t want = s2s_resample_out_len(n, in_rate, out_rate);
    float *o = malloc((want ? want : 1) * sizeof *o);
    if (!o) {
        s2s_resampler_free(r);
        return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    }
    size_t got = 0, k;
    const float *p;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i += 65536) {
        size_t b = n - i < 65536 ? n - i : 65536;
        rc = s2s_resampler_process(r, in + i, b, &p, &k, err);
        if (rc == 0 && k && got + k <= want) {
            memcpy(o + got, p, k * sizeof *p);
            got += k;
        }
    }
    if (rc == 0) rc = s2s_resampler_flush(r, &p, &k, err);
    if (rc == 0 && k && got + k <= want) {
        memcpy(o + got, p, k * sizeof *p);
        got += k;
    }
    s2s_resampler_free(r);
    if (rc == 0 && got != want)
        rc = s2s_err_set(err, S2S_EUNSUP, "resampler gave %zu samples, expected %zu", got, want);
    if (rc < 0) {
        free(o);
        return rc;
    }
    *out = o;
    *n_out = got;
    return 0;
}

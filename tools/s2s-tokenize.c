/* s2s-tokenize — speech to discrete units: log-mel features + k-means codebook (train, apply),
 * or attach units made by another tokenizer (import). */
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "s2s/audio.h"
#include "s2s/err.h"
#include "s2s/features.h"
#include "s2s/item.h"
#include "s2s/kmeans.h"
#include "s2s/sample.h"
#include "s2s/stats.h"
#include "s2s/units.h"
#include "s2s/util.h"

static const char *prog = "s2s-tokenize";
static volatile sig_atomic_t interrupted;

static void on_signal(int sig) {
    (void)sig;
    interrupted = 1;
}

static void usage(FILE *f) {
    fprintf(
        f,
        "Usage: s2s-tokenize --codebook CODEBOOK [OPTIONS] [INPUT...]\n"
        "       s2s-tokenize train -k K -o CODEBOOK [TRAIN OPTIONS] [INPUT...]\n"
        "       s2s-tokenize import [OPTIONS] UNITS_FILE [INPUT...]\n"
        "\n"
        "Reads a sample stream (tar stream, shards or JSON lines; stdin when no INPUT).\n"
        "\n"
        "Tokenize (default): for every audio member ID.STEM.EXT (ctx.wav, c0.flac, ...) computes\n"
        "log-mel features with the settings stored in the codebook (80 mels, 25 ms window, 10 ms\n"
        "hop at 16 kHz by default) and writes the nearest centre of every frame as member\n"
        "ID.STEM.units: integers separated by spaces, one per 10 ms frame, raw (repeats kept;\n"
        "de-duplication is the scorer's --dedup). Audio shorter than one window gives an empty\n"
        "member, recorded as 0 frames; samples without audio pass unchanged (counted).\n"
        "ID.json gets \"units\": {codebook (SHA-256 of the file), k, features, dim, hop_ms,\n"
        "frame_rate, frames: {STEM: count}} and a provenance record.\n"
        "Audio at another rate than the codebook's is an error: run s2s-resample --rate 16000.\n"
        "  -c, --codebook FILE   the codebook (from 'train'; format: docs/codebook.md)\n"
        "  -j, --jobs N          worker threads (default 1); output identical for every N\n"
        "  -s, --shard I/N       keep only part I of N (by id hash)\n"
        "  -k, --skip-bad        drop samples with bad audio (wrong rate, corrupt) instead of\n"
        "                        stopping; each is reported on stderr and counted\n"
        "  -o, --output OUT      write to OUT (appears only when complete) instead of stdout\n"
        "  -q, --quiet           no summary line on stderr\n"
        "\n"
        "train: samples up to --max-frames feature frames from every audio member of the input\n"
        "(reservoir sampling, seeded: the same input and seed pick the same frames) and learns\n"
        "K centres by k-means++ and Lloyd iterations.\n"
        "  -k, --clusters K      number of units (required; 50, 100, 200 are usual)\n"
        "  -o, --output FILE     codebook to write (required; appears only when complete)\n"
        "  -j, --jobs N          threads for k-means (default 1); the codebook is the same\n"
        "                        for every N\n"
        "      --seed S          seed of the frame sampling and of k-means++ (default 1)\n"
        "      --max-frames N    frames kept for training (default 200000 = 33 min of speech)\n"
        "      --iters I         Lloyd iterations at most (default 100)\n"
        "      --tol T           stop when the inertia improves by less than T (relative,\n"
        "                        default 1e-6)\n"
        "      --mels M          mel bins = feature dimension (default 80)\n"
        "      --rate R          feature sample rate (default 16000)\n"
        "      --frame-ms MS     window (default 25)      --hop-ms MS   hop (default 10)\n"
        "      --low-hz F        lowest mel edge (default 20)\n"
        "      --high-hz F       highest mel edge; <= 0: Nyquist + F (default 0)\n"
        "      --preemph C       pre-emphasis (default 0.97)\n"
        "      --window W        povey (default) | hamming | hann\n"
        "      --cmvn            per-utterance mean/variance normalisation\n"
        "\n"
        "import: attaches units made elsewhere (HuBERT, mHuBERT, SpeechTokenizer, ...). "
        "UNITS_FILE\n"
        "is GSLM/fairseq 'NAME|u1 u2 ...' lines, where NAME is ID (= the context), ID.STEM or a\n"
        "path whose base name is ID.STEM.EXT; or JSON lines {\"id\": ID, \"member\": STEM,\n"
        "\"units\": [u1, ...]} (member defaults to ctx). Format detected from the first line.\n"
        "A line whose id is not in the stream, and a sample with no line, are errors.\n"
        "      --units-k K       vocabulary size of the imported units (recorded; units >= K are\n"
        "                        an error)\n"
        "      --name NAME       tokenizer name recorded in ID.json (e.g. hubert-base-l9-km100)\n"
        "  plus -s, -k (skips samples without units), -o, -q as above.\n"
        "\n"
        "  -h, --help            this help\n"
        "  -V, --version         version\n"
        "\n"
        "Examples:\n"
        "  s2s-tokenize train -k 100 -o units-100.cb speech16k.tar\n"
        "  s2s-import storycloze val.csv | s2s-synth --voice en-us | s2s-resample --rate 16000 \\\n"
        "    | s2s-tokenize --codebook units-100.cb -j 2 | s2s-pack -o 'shards/s-%%06d.tar'\n"
        "  s2s-tokenize import hubert_km100.txt speech16k.tar > with-units.tar\n"
        "\n"
        "Exit status: 0 ok, 1 bad input data (message says sample and member), 2 usage error,\n"
        "3 I/O or system error, 130 interrupted.\n");
}

static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "%s: ", prog);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry '%s --help'.\n", prog);
    return 2;
}

static int is_data_error(int rc) {
    return rc == S2S_EDATA || rc == S2S_EFORMAT || rc == S2S_EUNSUP;
}

/* An audio member "STEM.EXT" with a single dot; *stem_len gets the length of STEM. */
static int audio_member(const char *suffix, size_t *stem_len) {
    const char *dot = strchr(suffix, '.');
    if (!dot || strchr(dot + 1, '.') || !s2s_audio_is_audio_name(suffix)) return 0;
    *stem_len = (size_t)(dot - suffix);
    return 1;
}

/* Decodes a member to mono float at the feature rate. */
static int decode_member(const s2s_sample *s, const s2s_member *m, int rate, s2s_audio *a,
                         s2s_err *err) {
    int rc = s2s_audio_decode(m->data, m->size, m->suffix, a, err);
    if (rc < 0) return s2s_err_prefix(err, "sample %s %s: ", s->key, m->suffix);
    if (a->rate != rate)
        return s2s_err_set(err, S2S_EDATA,
                           "sample %s %s: audio is at %d Hz but the features need %d Hz: run "
                           "s2s-resample --rate %d first",
                           s->key, m->suffix, a->rate, rate, rate);
    return 0;
}

/* Grows a float buffer to hold n floats. */
static int grow(float **buf, size_t *cap, size_t n, s2s_err *err) {
    if (n <= *cap) return 0;
    size_t c = *cap ? *cap : 4096;
    while (c < n)
        c *= 2;
    float *p = realloc(*buf, c * sizeof *p);
    if (!p) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    *buf = p;
    *cap = c;
    return 0;
}

/* The samples of an audio member: 16-bit mono PCM WAV in place (*xs; copied into *pcm only if
 * its data is misaligned), anything else decoded to float into *a (*xf). The features are the
 * same either way. Free *a with s2s_audio_free (also after failure); *pcm is the caller's
 * reusable buffer (capacity *pcm_cap). */
typedef struct member_audio {
    const int16_t *xs;
    const float *xf;
    size_t n;
    s2s_audio a;
} member_audio;

static int member_samples(const s2s_sample *s, const s2s_member *m, int rate, member_audio *ma,
                          int16_t **pcm, size_t *pcm_cap, s2s_err *err) {
    memset(ma, 0, sizeof *ma);
    s2s_wav_pcm v;
    if (s2s_wav_pcm_view(m->data, m->size, &v) == 1 && v.channels == 1 && v.bits == 16 &&
        v.frames > 0) {
        if (v.rate != rate)
            return s2s_err_set(err, S2S_EDATA,
                               "sample %s %s: audio is at %d Hz but the features need %d Hz: run "
                               "s2s-resample --rate %d first",
                               s->key, m->suffix, v.rate, rate, rate);
        ma->xs = (const int16_t *)(const void *)v.data;
        ma->n = v.frames;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        if (((uintptr_t)v.data & 1) == 0) return 0;
#endif
        if (v.frames > *pcm_cap) { /* misaligned (or big-endian host): copy */
            int16_t *p = realloc(*pcm, v.frames * sizeof *p);
            if (!p) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
            *pcm = p;
            *pcm_cap = v.frames;
        }
        for (size_t i = 0; i < v.frames; i++)
            (*pcm)[i] = (int16_t)(uint16_t)(v.data[2 * i] | v.data[2 * i + 1] << 8);
        ma->xs = *pcm;
        return 0;
    }
    /* the decoder rejects NaN and infinite samples (S2S_EDATA) */
    int rc = decode_member(s, m, rate, &ma->a, err);
    ma->xf = ma->a.samples;
    ma->n = ma->a.n;
    return rc;
}

/* ================================ tokenize =================================================== */
enum { TOK_CHUNK = 1024 }; /* frames computed and assigned at a time (memory flat per member) */

typedef struct tok_ctx {
    const s2s_codebook *cb;
    s2s_fbank *fb;
    float *feat; /* TOK_CHUNK x dim, or a whole member with CMVN */
    size_t cap;
    int32_t *units; /* TOK_CHUNK */
    int16_t *pcm;   /* aligned copy of a WAV's samples when its data is misaligned */
    size_t pcm_cap;
    uint64_t frames;   /* total, for the summary */
    uint64_t no_audio; /* samples without an audio member (left untouched) */
} tok_ctx;

/* Features and units of one member's audio (16-bit samples xs, or floats xf), as text: the
 * frames are computed and assigned TOK_CHUNK at a time (all at once with CMVN, which needs the
 * utterance's statistics), into *txt (malloc'd, the caller frees). */
static int tok_audio(tok_ctx *t, const int16_t *xs, const float *xf, size_t n, size_t *nf_out,
                     char **txt, size_t *txt_len, s2s_err *err) {
    size_t dim = s2s_codebook_dim(t->cb), nf = s2s_fbank_n_frames(t->fb, n);
    int cmvn = s2s_fbank_get_opts(t->fb)->cmvn;
    size_t chunk = cmvn ? (nf ? nf : 1) : TOK_CHUNK;
    if (grow(&t->feat, &t->cap, chunk * dim, err) < 0) return err->code;
    if (!t->units) {
        t->units = malloc(TOK_CHUNK * sizeof *t->units);
        if (!t->units) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    }
    char *out = malloc(s2s_units_text_max(nf, s2s_codebook_k(t->cb)));
    if (!out) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    size_t len = 0;
    for (size_t t0 = 0; t0 < nf; t0 += chunk) {
        long got = xs ? s2s_fbank_frames_s16(t->fb, xs, n, t0, chunk, t->feat)
                      : s2s_fbank_frames(t->fb, xf, n, t0, chunk, t->feat);
        if (cmvn) s2s_fbank_cmvn(t->feat, (size_t)got, dim);
        for (size_t u0 = 0; u0 < (size_t)got; u0 += TOK_CHUNK) {
            size_t m = (size_t)got - u0 < TOK_CHUNK ? (size_t)got - u0 : TOK_CHUNK;
            int rc = s2s_codebook_assign(t->cb, t->feat + u0 * dim, m, t->units, err);
            if (rc < 0) {
                free(out);
                return rc;
            }
            len += s2s_units_format_to(t->units, m, len > 0, out + len);
        }
    }
    out[len] = 0;
    *nf_out = nf;
    *txt = out;
    *txt_len = len;
    return 0;
}

/* One audio member -> its units text. */
static int tok_member(tok_ctx *t, const s2s_sample *s, const s2s_member *m, size_t *nf, char **txt,
                      size_t *len, s2s_err *err) {
    member_audio ma;
    int rc = member_samples(s, m, s2s_fbank_get_opts(t->fb)->rate, &ma, &t->pcm, &t->pcm_cap, err);
    if (rc == 0) rc = tok_audio(t, ma.xs, ma.xf, ma.n, nf, txt, len, err);
    s2s_audio_free(&ma.a);
    return rc;
}

static int tok_sample(tok_ctx *t, s2s_sample *s, s2s_err *err) {
    const s2s_fbank_opts *fo = s2s_codebook_fbank_opts(t->cb);
    json_t *frames = json_object();
    if (!frames) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    size_t n0 = s->n_members, naudio = 0;
    int rc = 0;
    for (size_t i = 0; i < n0 && rc == 0; i++) {
        size_t sl;
        if (!audio_member(s->members[i].suffix, &sl)) continue;
        size_t nf = 0, len = 0;
        char *txt = NULL;
        if ((rc = tok_member(t, s, &s->members[i], &nf, &txt, &len, err)) < 0) break;
        char stem[256], suffix[270];
        if (sl >= sizeof stem) sl = sizeof stem - 1;
        memcpy(stem, s->members[i].suffix, sl);
        stem[sl] = 0;
        snprintf(suffix, sizeof suffix, "%s.units", stem);
        if (json_object_set_new(frames, stem, json_integer((json_int_t)nf)) < 0) {
            free(txt);
            rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
            break;
        }
        /* members may move (realloc) when a new one is added: indices stay valid. */
        if ((rc = s2s_sample_put(s, suffix, (unsigned char *)txt, len, err)) < 0) break;
        t->frames += nf;
        naudio++;
    }
    if (rc == 0 && naudio == 0) t->no_audio++;
    if (rc == 0 && s->item && naudio > 0) {
        json_t *u = json_pack("{s:s, s:I, s:s, s:i, s:b, s:f, s:f, s:O}", "codebook",
                              s2s_codebook_hash(t->cb), "k", (json_int_t)s2s_codebook_k(t->cb),
                              "features", "logmel", "dim", fo->n_mels, "cmvn", fo->cmvn, "hop_ms",
                              fo->hop_ms, "frame_rate", 1000.0 / fo->hop_ms, "frames", frames);
        json_t *p = json_pack("{s:s, s:I}", "codebook", s2s_codebook_hash(t->cb), "k",
                              (json_int_t)s2s_codebook_k(t->cb));
        if (!u || !p || json_object_set_new(s->item, "units", u) < 0) {
            json_decref(p);
            rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
        } else {
            rc = s2s_item_add_provenance(s->item, prog, p, err);
        }
    }
    json_decref(frames);
    return rc;
}

/* ---- -j N: worker threads over a ring of samples, written in input order ------------------- */
enum { SLOT_FREE, SLOT_TODO, SLOT_BUSY, SLOT_DONE };
typedef struct slot {
    s2s_sample *s;
    int state, rc;
    s2s_err err;
} slot;

typedef struct pool {
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    slot *slots;
    size_t q;          /* ring size */
    uint64_t next_job; /* next sequence number a worker takes */
    uint64_t tail;     /* sequence numbers < tail have been queued */
    int quit;
    tok_ctx *ctx; /* one per worker */
    const s2s_codebook *cb;
} pool;

typedef struct worker_arg {
    pool *p;
    tok_ctx *t;
} worker_arg;

static void *worker(void *arg) {
    worker_arg *wa = arg;
    pool *p = wa->p;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->quit && p->next_job >= p->tail)
            pthread_cond_wait(&p->work, &p->mu);
        if (p->quit) break;
        slot *sl = &p->slots[p->next_job % p->q];
        p->next_job++;
        sl->state = SLOT_BUSY;
        pthread_mutex_unlock(&p->mu);
        s2s_err_clear(&sl->err);
        int rc = tok_sample(wa->t, sl->s, &sl->err);
        pthread_mutex_lock(&p->mu);
        sl->rc = rc;
        sl->state = SLOT_DONE;
        pthread_cond_broadcast(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

typedef struct run_stats {
    uint64_t done, bad, no_audio;
} run_stats;

/* Writes (or skips) a processed sample; frees it. */
static int emit(s2s_writer *w, s2s_sample *s, int rc, const s2s_err *serr, int skip_bad,
                run_stats *st, s2s_err *err) {
    if (rc < 0 && skip_bad && is_data_error(rc)) {
        fprintf(stderr, "%s: skipped: %s\n", prog, serr->msg);
        st->bad++;
        s2s_sample_free(s);
        return 0;
    }
    if (rc < 0) {
        *err = *serr;
        s2s_sample_free(s);
        return rc;
    }
    rc = s2s_writer_put(w, s, err);
    s2s_sample_free(s);
    if (rc == 0) st->done++;
    return rc;
}

static int run_tokenize(s2s_reader *r, s2s_writer *w, const s2s_codebook *cb, int jobs,
                        int skip_bad, run_stats *st, uint64_t *frames, s2s_err *err) {
    int n_ctx = jobs > 1 ? jobs : 1, rc = 0;
    tok_ctx *ctx = calloc((size_t)n_ctx, sizeof *ctx);
    if (!ctx) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    for (int i = 0; i < n_ctx && rc == 0; i++) {
        ctx[i].cb = cb;
        if (!(ctx[i].fb = s2s_fbank_new(s2s_codebook_fbank_opts(cb), err))) rc = err->code;
    }
    s2s_progress *pg = s2s_progress_new(prog, "samples", 0);
    if (rc == 0 && jobs <= 1) {
        for (;;) {
            s2s_sample *s = NULL;
            int got = s2s_reader_next(r, &s, err);
            if (got <= 0) {
                rc = got;
                break;
            }
            if (interrupted) {
                s2s_sample_free(s);
                rc = s2s_err_set(err, S2S_EINTR, "interrupted");
                break;
            }
            s2s_err serr;
            s2s_err_clear(&serr);
            int prc = tok_sample(&ctx[0], s, &serr);
            if ((rc = emit(w, s, prc, &serr, skip_bad, st, err)) < 0) break;
            s2s_progress_update(pg, st->done);
        }
    } else if (rc == 0) {
        pool p;
        memset(&p, 0, sizeof p);
        p.q = (size_t)jobs * 4;
        p.slots = calloc(p.q, sizeof *p.slots);
        pthread_t *th = calloc((size_t)jobs, sizeof *th);
        worker_arg *wa = calloc((size_t)jobs, sizeof *wa);
        int started = 0;
        if (!p.slots || !th || !wa) rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
        pthread_mutex_init(&p.mu, NULL);
        pthread_cond_init(&p.work, NULL);
        pthread_cond_init(&p.done, NULL);
        for (int i = 0; rc == 0 && i < jobs; i++) {
            wa[i].p = &p;
            wa[i].t = &ctx[i];
            if (pthread_create(&th[i], NULL, worker, &wa[i]) != 0) {
                rc = s2s_err_set(err, S2S_EIO, "cannot start worker thread %d", i);
                break;
            }
            started++;
        }
        uint64_t head = 0;
        int eof = 0;
        while (rc == 0) {
            /* Write finished samples in order. */
            pthread_mutex_lock(&p.mu);
            while (head < p.tail && p.slots[head % p.q].state == SLOT_DONE) {
                slot *sl = &p.slots[head % p.q];
                s2s_sample *s = sl->s;
                int prc = sl->rc;
                s2s_err serr = sl->err;
                sl->s = NULL;
                sl->state = SLOT_FREE;
                head++;
                pthread_mutex_unlock(&p.mu);
                rc = emit(w, s, prc, &serr, skip_bad, st, err);
                s2s_progress_update(pg, st->done);
                pthread_mutex_lock(&p.mu);
                if (rc < 0) break;
            }
            if (rc < 0 || (eof && head == p.tail)) {
                pthread_mutex_unlock(&p.mu);
                break;
            }
            if (!eof && p.tail - head < p.q) {
                pthread_mutex_unlock(&p.mu);
                s2s_sample *s = NULL;
                int got = s2s_reader_next(r, &s, err);
                if (got < 0) {
                    rc = got;
                    break;
                }
                if (interrupted) {
                    s2s_sample_free(s);
                    rc = s2s_err_set(err, S2S_EINTR, "interrupted");
                    break;
                }
                if (got == 0) {
                    eof = 1;
                    continue;
                }
                pthread_mutex_lock(&p.mu);
                slot *sl = &p.slots[p.tail % p.q];
                sl->s = s;
                sl->state = SLOT_TODO;
                p.tail++;
                pthread_cond_signal(&p.work);
                pthread_mutex_unlock(&p.mu);
                continue;
            }
            pthread_cond_wait(&p.done, &p.mu);
            pthread_mutex_unlock(&p.mu);
        }
        pthread_mutex_lock(&p.mu);
        p.quit = 1;
        pthread_cond_broadcast(&p.work);
        pthread_mutex_unlock(&p.mu);
        for (int i = 0; i < started; i++)
            pthread_join(th[i], NULL);
        if (p.slots)
            for (size_t i = 0; i < p.q; i++)
                s2s_sample_free(p.slots[i].s);
        pthread_mutex_destroy(&p.mu);
        pthread_cond_destroy(&p.work);
        pthread_cond_destroy(&p.done);
        free(p.slots);
        free(th);
        free(wa);
    }
    s2s_progress_end(pg, st->done);
    for (int i = 0; i < n_ctx; i++) {
        *frames += ctx[i].frames;
        st->no_audio += ctx[i].no_audio;
        s2s_fbank_free(ctx[i].fb);
        free(ctx[i].feat);
        free(ctx[i].units);
        free(ctx[i].pcm);
    }
    free(ctx);
    return rc;
}

/* ================================ train ====================================================== */
typedef struct reservoir {
    float *x; /* max x dim */
    size_t max, dim, have;
    uint64_t seen;
    s2s_rng rng;
} reservoir;

/* Algorithm R: frame t (0-based, over the whole input in order) is kept with probability
 * max/(t+1), replacing a uniformly chosen kept frame. */
static void reservoir_add(reservoir *rv, const float *f, size_t nf) {
    for (size_t i = 0; i < nf; i++, rv->seen++) {
        const float *src = f + i * rv->dim;
        if (rv->seen < rv->max) {
            memcpy(rv->x + rv->have * rv->dim, src, rv->dim * sizeof *src);
            rv->have++;
            continue;
        }
        uint64_t j = s2s_rng_below(&rv->rng, rv->seen + 1);
        if (j < rv->max) memcpy(rv->x + j * rv->dim, src, rv->dim * sizeof *src);
    }
}

static int main_train(int argc, char **argv) {
    enum {
        O_SEED = 256,
        O_MAXF,
        O_ITERS,
        O_TOL,
        O_MELS,
        O_RATE,
        O_FRAME,
        O_HOP,
        O_LOW,
        O_HIGH,
        O_PRE,
        O_WIN,
        O_CMVN
    };
    static const struct option longopts[] = {{"clusters", required_argument, 0, 'k'},
                                             {"output", required_argument, 0, 'o'},
                                             {"seed", required_argument, 0, O_SEED},
                                             {"max-frames", required_argument, 0, O_MAXF},
                                             {"iters", required_argument, 0, O_ITERS},
                                             {"tol", required_argument, 0, O_TOL},
                                             {"mels", required_argument, 0, O_MELS},
                                             {"rate", required_argument, 0, O_RATE},
                                             {"frame-ms", required_argument, 0, O_FRAME},
                                             {"hop-ms", required_argument, 0, O_HOP},
                                             {"low-hz", required_argument, 0, O_LOW},
                                             {"high-hz", required_argument, 0, O_HIGH},
                                             {"preemph", required_argument, 0, O_PRE},
                                             {"window", required_argument, 0, O_WIN},
                                             {"cmvn", no_argument, 0, O_CMVN},
                                             {"jobs", required_argument, 0, 'j'},
                                             {"quiet", no_argument, 0, 'q'},
                                             {"help", no_argument, 0, 'h'},
                                             {"version", no_argument, 0, 'V'},
                                             {0, 0, 0, 0}};
    s2s_fbank_opts fo;
    s2s_fbank_opts_default(&fo);
    s2s_kmeans_opts ko;
    s2s_kmeans_opts_default(&ko);
    ko.k = 0;
    unsigned long long max_frames = 200000;
    const char *out = NULL;
    int quiet = 0, opt;
    s2s_err err;
    s2s_err_clear(&err);
    while ((opt = getopt_long(argc, argv, "k:o:j:qhV", longopts, NULL)) != -1) {
        char *end = NULL;
        double v = 0;
        if (optarg) v = strtod(optarg, &end);
        int bad = optarg && (end == optarg || *end);
        switch (opt) {
        case 'k':
            if (bad || v < 1 || v > 65536 || v != (long)v)
                return usage_error("-k: '%s' is not a number of clusters (1..65536)", optarg);
            ko.k = (size_t)v;
            break;
        case 'o':
            out = optarg;
            break;
        case O_SEED:
            if (bad || !optarg || v < 0 || v != (double)(unsigned long long)v)
                return usage_error("--seed: '%s' is not a non-negative integer", optarg);
            ko.seed = strtoull(optarg, NULL, 10);
            break;
        case O_MAXF:
            if (bad || v < 1 || v > 1e9 || v != (long)v)
                return usage_error("--max-frames: '%s' is not a count (1..1e9)", optarg);
            max_frames = (unsigned long long)v;
            break;
        case O_ITERS:
            if (bad || v < 0 || v > 100000 || v != (long)v)
                return usage_error("--iters: '%s' is not a count (0..100000)", optarg);
            ko.max_iters = (int)v;
            break;
        case O_TOL:
            if (bad || v < 0) return usage_error("--tol: '%s' is not >= 0", optarg);
            ko.tol = v;
            break;
        case O_MELS:
            if (bad || v != (long)v) return usage_error("--mels: '%s' is not an integer", optarg);
            fo.n_mels = (int)v;
            break;
        case O_RATE:
            if (bad || v != (long)v) return usage_error("--rate: '%s' is not an integer", optarg);
            fo.rate = (int)v;
            break;
        case O_FRAME:
            if (bad) return usage_error("--frame-ms: '%s' is not a number", optarg);
            fo.frame_ms = v;
            break;
        case O_HOP:
            if (bad) return usage_error("--hop-ms: '%s' is not a number", optarg);
            fo.hop_ms = v;
            break;
        case O_LOW:
            if (bad) return usage_error("--low-hz: '%s' is not a number", optarg);
            fo.low_hz = v;
            break;
        case O_HIGH:
            if (bad) return usage_error("--high-hz: '%s' is not a number", optarg);
            fo.high_hz = v;
            break;
        case O_PRE:
            if (bad) return usage_error("--preemph: '%s' is not a number", optarg);
            fo.preemph = v;
            break;
        case O_WIN:
            if ((fo.window = s2s_fbank_window_parse(optarg)) < 0)
                return usage_error("--window: '%s' is not povey, hamming or hann", optarg);
            break;
        case O_CMVN:
            fo.cmvn = 1;
            break;
        case 'j':
            if (bad || v < 1 || v > 64 || v != (long)v)
                return usage_error("--jobs: '%s' is not a count (1..64)", optarg);
            ko.threads = (int)v;
            break;
        case 'q':
            quiet = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("%s %s\n", prog, S2S_VERSION);
            return 0;
        default:
            fprintf(stderr, "Try '%s --help'.\n", prog);
            return 2;
        }
    }
    if (!ko.k) return usage_error("%s", "train: -k K is required");
    if (!out) return usage_error("%s", "train: -o CODEBOOK is required");
    if (s2s_fbank_opts_check(&fo, &err) < 0) return usage_error("%s", err.msg);
    s2s_fbank *fb = s2s_fbank_new(&fo, &err);
    if (!fb) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        return s2s_exit_status(err.code);
    }
    reservoir rv;
    memset(&rv, 0, sizeof rv);
    rv.dim = (size_t)fo.n_mels;
    rv.max = (size_t)max_frames;
    s2s_rng_seed(&rv.rng, ko.seed);
    /* Grown as frames arrive, so a small input does not reserve max-frames of memory. */
    size_t rcap = 0;
    float *feat = NULL;
    size_t fcap = 0;
    int16_t *pcm = NULL;
    size_t pcm_cap = 0;
    uint64_t members = 0;
    int rc = 0;
    s2s_reader *r =
        s2s_reader_open((const char *const *)argv + optind, (size_t)(argc - optind), 0, &err);
    if (!r) rc = err.code ? err.code : S2S_EIO;
    s2s_progress *pg = rc ? NULL : s2s_progress_new("s2s-tokenize train", "samples", 0);
    uint64_t n_samples = 0;
    while (rc == 0) {
        s2s_sample *s = NULL;
        int got = s2s_reader_next(r, &s, &err);
        if (got <= 0) {
            rc = got;
            break;
        }
        if (interrupted) {
            s2s_sample_free(s);
            rc = s2s_err_set(&err, S2S_EINTR, "interrupted");
            break;
        }
        s2s_progress_update(pg, ++n_samples);
        for (size_t i = 0; i < s->n_members && rc == 0; i++) {
            size_t sl;
            if (!audio_member(s->members[i].suffix, &sl)) continue;
            /* features TOK_CHUNK frames at a time (the whole member with CMVN), in order, so
             * the reservoir sees the same frames as from one call */
            member_audio ma;
            rc = member_samples(s, &s->members[i], fo.rate, &ma, &pcm, &pcm_cap, &err);
            size_t nf = rc == 0 ? s2s_fbank_n_frames(fb, ma.n) : 0;
            size_t chunk = fo.cmvn ? (nf ? nf : 1) : TOK_CHUNK;
            if (rc == 0) rc = grow(&feat, &fcap, chunk * rv.dim, &err);
            if (rc == 0) {
                size_t want = rv.have + nf < rv.max ? rv.have + nf : rv.max;
                rc = grow(&rv.x, &rcap, want * rv.dim, &err);
            }
            for (size_t t0 = 0; rc == 0 && feat && t0 < nf; t0 += chunk) {
                long got = ma.xs ? s2s_fbank_frames_s16(fb, ma.xs, ma.n, t0, chunk, feat)
                                 : s2s_fbank_frames(fb, ma.xf, ma.n, t0, chunk, feat);
                if (fo.cmvn) s2s_fbank_cmvn(feat, (size_t)got, rv.dim);
                reservoir_add(&rv, feat, (size_t)got);
            }
            s2s_audio_free(&ma.a);
            if (rc == 0) members++;
        }
        s2s_sample_free(s);
    }
    s2s_progress_end(pg, n_samples);
    s2s_reader_close(r);
    free(feat);
    free(pcm);
    s2s_fbank_free(fb);
    if (rc == 0 && rv.have < ko.k)
        rc = s2s_err_set(&err, S2S_EDATA,
                         "train: %zu frames in %" PRIu64 " audio members are too few for k = %zu",
                         rv.have, members, ko.k);
    float *c = rc == 0 ? malloc(ko.k * rv.dim * sizeof *c) : NULL;
    if (rc == 0 && !c) rc = s2s_err_set(&err, S2S_ENOMEM, "out of memory");
    s2s_kmeans_stats st;
    clock_t t0 = clock();
    if (rc == 0) rc = s2s_kmeans_train(rv.x, rv.have, rv.dim, &ko, c, &st, &err);
    double km_cpu = (double)(clock() - t0) / CLOCKS_PER_SEC;
    free(rv.x);
    if (rc == 0) {
        json_t *info =
            json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:i, s:f, s:i, s:b, s:f, s:I}", "tool",
                      prog, "version", S2S_VERSION, "seed", (json_int_t)ko.seed, "max_frames",
                      (json_int_t)max_frames, "frames_seen", (json_int_t)rv.seen, "frames_used",
                      (json_int_t)rv.have, "members", (json_int_t)members, "max_iters",
                      ko.max_iters, "tol", ko.tol, "iters", st.iters, "converged", st.converged,
                      "inertia", st.inertia, "reseeded", (json_int_t)st.reseeded);
        s2s_codebook *cb = info ? s2s_codebook_new(c, ko.k, rv.dim, &fo, info, &err) : NULL;
        if (!info)
            rc = s2s_err_set(&err, S2S_ENOMEM, "out of memory");
        else if (!cb)
            rc = err.code;
        else
            rc = s2s_codebook_save(cb, out, &err);
        if (rc == 0 && !quiet)
            fprintf(stderr,
                    "%s: train: k = %zu on %zu of %" PRIu64 " frames (%" PRIu64
                    " audio members), %d iterations%s, inertia/frame %.4g, k-means %.2f s CPU; "
                    "codebook %s sha256 %s\n",
                    prog, ko.k, rv.have, rv.seen, members, st.iters,
                    st.converged ? " (converged)" : " (bound reached)",
                    st.inertia / (double)rv.have, km_cpu, out, s2s_codebook_hash(cb));
        s2s_codebook_free(cb);
    }
    free(c);
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        return s2s_exit_status(rc);
    }
    return 0;
}

/* ================================ import ===================================================== */
static int import_sample(s2s_units_set *is, const char *is_path, long long k, const char *name,
                         s2s_sample *s, s2s_err *err) {
    json_t *frames;
    int n = s2s_units_set_attach(is, s, &frames, err);
    if (n < 0) return n;
    if (n == 0)
        return s2s_err_set(err, S2S_EDATA, "sample %s: no units for it in %s (missing item)",
                           s->key, is_path);
    int rc = 0;
    if (s->item) {
        const char *fmt = s2s_units_set_format(is), *sha = s2s_units_set_sha256(is);
        json_t *u =
            json_pack("{s:s, s:s, s:s}", "source", "import", "format", fmt, "file_sha256", sha);
        if (u && name) json_object_set_new(u, "name", json_string(name));
        if (u && k > 0) json_object_set_new(u, "k", json_integer(k));
        if (u) json_object_set(u, "frames", frames);
        const char *base = strrchr(is_path, '/');
        json_t *p = json_pack("{s:s, s:s, s:s}", "import", base ? base + 1 : is_path, "format", fmt,
                              "sha256", sha);
        if (p && name) json_object_set_new(p, "name", json_string(name));
        if (!u || !p || json_object_set_new(s->item, "units", u) < 0) {
            json_decref(p);
            rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
        } else {
            rc = s2s_item_add_provenance(s->item, prog, p, err);
        }
    }
    json_decref(frames);
    return rc;
}

static int main_import(int argc, char **argv) {
    enum { O_K = 256, O_NAME };
    static const struct option longopts[] = {{"units-k", required_argument, 0, O_K},
                                             {"name", required_argument, 0, O_NAME},
                                             {"shard", required_argument, 0, 's'},
                                             {"skip-bad", no_argument, 0, 'k'},
                                             {"output", required_argument, 0, 'o'},
                                             {"quiet", no_argument, 0, 'q'},
                                             {"help", no_argument, 0, 'h'},
                                             {"version", no_argument, 0, 'V'},
                                             {0, 0, 0, 0}};
    long long units_k = 0;
    const char *out = NULL, *name = NULL;
    int skip_bad = 0, quiet = 0, opt;
    s2s_part part = {0, 1};
    s2s_err err;
    s2s_err_clear(&err);
    while ((opt = getopt_long(argc, argv, "s:ko:qhV", longopts, NULL)) != -1) {
        switch (opt) {
        case O_K: {
            char *end;
            units_k = strtoll(optarg, &end, 10);
            if (*end || end == optarg || units_k < 1)
                return usage_error("--units-k: '%s' is not a positive integer", optarg);
            break;
        }
        case O_NAME:
            name = optarg;
            break;
        case 's':
            if (s2s_part_parse(optarg, &part, &err) < 0) return usage_error("--shard: %s", err.msg);
            break;
        case 'k':
            skip_bad = 1;
            break;
        case 'o':
            out = optarg;
            break;
        case 'q':
            quiet = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("%s %s\n", prog, S2S_VERSION);
            return 0;
        default:
            fprintf(stderr, "Try '%s --help'.\n", prog);
            return 2;
        }
    }
    if (optind >= argc) return usage_error("%s", "import: UNITS_FILE is required");
    const char *path = argv[optind++];
    s2s_units_set *is = s2s_units_set_load(path, units_k, &err);
    int rc = is ? 0 : err.code;
    s2s_reader *r = NULL;
    s2s_writer *w = NULL;
    if (rc == 0) {
        r = s2s_reader_open((const char *const *)argv + optind, (size_t)(argc - optind), 0, &err);
        w = r ? s2s_writer_open(out, S2S_FMT_TAR, &err) : NULL;
        if (!w) rc = err.code ? err.code : S2S_EIO;
        if (r) s2s_reader_set_part(r, &part);
    }
    run_stats st = {0, 0, 0};
    while (rc == 0) {
        s2s_sample *s = NULL;
        int got = s2s_reader_next(r, &s, &err);
        if (got <= 0) {
            rc = got;
            break;
        }
        if (interrupted) {
            s2s_sample_free(s);
            rc = s2s_err_set(&err, S2S_EINTR, "interrupted");
            break;
        }
        s2s_err serr;
        s2s_err_clear(&serr);
        int prc = import_sample(is, path, units_k, name, s, &serr);
        rc = emit(w, s, prc, &serr, skip_bad, &st, &err);
    }
    /* Every line must have found its sample (in this part). */
    if (rc == 0) rc = s2s_units_set_check_used(is, &part, &err);
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        s2s_writer_abort(w);
    } else if ((rc = s2s_writer_close(w, &err)) < 0) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
    } else if (!quiet || st.bad) {
        fprintf(stderr,
                "%s: import: %zu unit sequences from %s (%s) attached to %" PRIu64 " samples", prog,
                s2s_units_set_size(is), path, s2s_units_set_format(is), st.done);
        if (st.bad)
            fprintf(stderr, ", %" PRIu64 " samples without units skipped (--skip-bad)", st.bad);
        fprintf(stderr, "\n");
    }
    s2s_reader_close(r);
    s2s_units_set_free(is);
    return rc < 0 ? s2s_exit_status(rc) : 0;
}

/* ================================ main ======================================================= */
int main(int argc, char **argv) {
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    if (argc > 1 && strcmp(argv[1], "train") == 0) return main_train(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "import") == 0) return main_import(argc - 1, argv + 1);
    static const struct option longopts[] = {{"codebook", required_argument, 0, 'c'},
                                             {"jobs", required_argument, 0, 'j'},
                                             {"shard", required_argument, 0, 's'},
                                             {"skip-bad", no_argument, 0, 'k'},
                                             {"output", required_argument, 0, 'o'},
                                             {"quiet", no_argument, 0, 'q'},
                                             {"help", no_argument, 0, 'h'},
                                             {"version", no_argument, 0, 'V'},
                                             {0, 0, 0, 0}};
    const char *cbpath = NULL, *out = NULL;
    int jobs = 1, skip_bad = 0, quiet = 0, opt;
    s2s_part part = {0, 1};
    s2s_err err;
    s2s_err_clear(&err);
    while ((opt = getopt_long(argc, argv, "c:j:s:ko:qhV", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            cbpath = optarg;
            break;
        case 'j': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || end == optarg || v < 1 || v > 256)
                return usage_error("--jobs: '%s' is not a count (1..256)", optarg);
            jobs = (int)v;
            break;
        }
        case 's':
            if (s2s_part_parse(optarg, &part, &err) < 0) return usage_error("--shard: %s", err.msg);
            break;
        case 'k':
            skip_bad = 1;
            break;
        case 'o':
            out = optarg;
            break;
        case 'q':
            quiet = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("%s %s\n", prog, S2S_VERSION);
            return 0;
        default:
            fprintf(stderr, "Try '%s --help'.\n", prog);
            return 2;
        }
    }
    if (!cbpath)
        return usage_error("%s", "--codebook CODEBOOK is required (or use 'train' / 'import')");
    s2s_codebook *cb = s2s_codebook_load(cbpath, &err);
    if (!cb) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        return s2s_exit_status(err.code);
    }
    s2s_reader *r =
        s2s_reader_open((const char *const *)argv + optind, (size_t)(argc - optind), 0, &err);
    s2s_writer *w = r ? s2s_writer_open(out, S2S_FMT_TAR, &err) : NULL;
    int rc = w ? 0 : err.code ? err.code : S2S_EIO;
    if (r) s2s_reader_set_part(r, &part);
    run_stats st = {0, 0, 0};
    uint64_t frames = 0;
    if (rc == 0) rc = run_tokenize(r, w, cb, jobs, skip_bad, &st, &frames, &err);
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        s2s_writer_abort(w);
    } else if ((rc = s2s_writer_close(w, &err)) < 0) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
    } else if (!quiet || st.bad) {
        fprintf(stderr, "%s: %" PRIu64 " samples, %" PRIu64 " frames (%.1f s of speech), k = %zu",
                prog, st.done, frames,
                (double)frames * s2s_codebook_fbank_opts(cb)->hop_ms / 1000.0, s2s_codebook_k(cb));
        if (st.bad) fprintf(stderr, ", %" PRIu64 " bad samples skipped (--skip-bad)", st.bad);
        fprintf(stderr, "\n");
    }
    if (rc == 0 && st.no_audio)
        fprintf(stderr,
                "%s: warning: %" PRIu64 " samples have no audio member and got no units (run "
                "s2s-synth first?)\n",
                prog, st.no_audio);
    s2s_reader_close(r);
    s2s_codebook_free(cb);
    return rc < 0 ? s2s_exit_status(rc) : 0;
}

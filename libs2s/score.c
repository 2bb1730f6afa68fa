/* score.c — the pairwise protocol: requests to a backend, pairs from labels, outcomes, report. */
#include "s2s/score.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "s2s/item.h"
#include "s2s/stats.h"
#include "s2s/util.h"

#define MAX_FAIL_EXAMPLES 10
#define CAND_BITS 20

typedef struct cand_rec {
    double nll;
    uint64_t ntok;
    int status; /* 0 ok, 1 waiting, negative failed */
    unsigned flags;
    uint32_t bytes, chars;
    char *msg; /* why the request failed (status < 0), else NULL */
} cand_rec;

typedef struct item_rec {
    char *id, *task, *lang, *category;
    unsigned ncand;
    int right;
    int is_choice;
    cand_rec *c; /* [mode slot * ncand + k] */
    unsigned pending;
    char **tmpfiles; /* audio handed to the backend, removed when the item is complete */
    size_t ntmp;
} item_rec;

struct s2s_scorer {
    s2s_score_opts o;
    s2s_backend *b;
    s2s_mode modes[S2S_MODE_COUNT];
    unsigned needs[S2S_MODE_COUNT];
    int nmodes;
    item_rec *items;
    size_t n, cap;
    uint64_t answered, submitted;
    s2s_reply *rbuf;
    size_t rcap;
    char *tmpdir;
    int sorted;
    s2s_score_hooks hooks;
    uint64_t cached;
    json_t *tools; /* "tool version" of every provenance record seen -> true */
};

static const char *const kind_names[] = {"mean", "sum", "byte"};

const char *s2s_score_kind_name(s2s_score_kind k) {
    return (unsigned)k < 3 ? kind_names[k] : "?";
}

int s2s_score_kind_parse(const char *name, s2s_score_kind *k, s2s_err *err) {
    for (int i = 0; i < 3; i++)
        if (!strcmp(name, kind_names[i])) {
            *k = (s2s_score_kind)i;
            return 0;
        }
    return s2s_err_set(err, S2S_EINVAL, "unknown score '%s' (mean, sum, byte)", name);
}

void s2s_score_opts_init(s2s_score_opts *o) {
    memset(o, 0, sizeof *o);
    o->modes = 1u << S2S_MODE_T2T;
    o->kind = S2S_SCORE_MEAN;
    o->seed = 1;
    o->bootstrap = 1000;
    o->tie_warn = 0.10;
}

double s2s_pair_outcome(double p, double i, int is_choice, int compat) {
    if (compat == S2S_COMPAT_S2SBENCH) {
        /* eval_cmmlu4.py: losses[answer] <= losses[key]; eval_story.py: loss_even < loss_odd.
         * C comparisons with NaN are false, as Python's are. */
        if (is_choice) return p <= i ? 1.0 : 0.0;
        return p < i ? 1.0 : 0.0;
    }
    if (!isfinite(p) || !isfinite(i)) return NAN;
    if (p < i) return 1.0;
    if (p > i) return 0.0;
    return 0.5;
}

void s2s_candidate_scores(double nll, uint64_t ntok, unsigned flags, size_t bytes, double *mean,
                          double *sum, double *per_byte) {
    if (flags & S2S_REPLY_MEAN_ONLY) {
        *mean = nll;
        *sum = NAN;
        *per_byte = NAN;
        return;
    }
    *mean = ntok ? nll / (double)ntok : NAN;
    *sum = nll;
    *per_byte = bytes ? nll / (double)bytes : NAN;
}

s2s_scorer *s2s_scorer_new(const s2s_score_opts *o, s2s_backend *b, s2s_err *err) {
    if (o->compat && o->kind != S2S_SCORE_MEAN) {
        s2s_err_set(err, S2S_EINVAL,
                    "--compat s2sbench decides on the mean NLL per token (upstream's loss): "
                    "drop --score %s",
                    s2s_score_kind_name(o->kind));
        return NULL;
    }
    if (!strcmp(s2s_backend_kind(b), "losses") && o->kind != S2S_SCORE_MEAN) {
        s2s_err_set(err, S2S_EINVAL,
                    "--lm %s: precomputed losses are per-token means; --score %s needs summed "
                    "NLLs and token counts",
                    s2s_backend_spec(b), s2s_score_kind_name(o->kind));
        return NULL;
    }
    if (!(o->modes & ((1u << S2S_MODE_COUNT) - 1))) {
        s2s_err_set(err, S2S_EINVAL, "no mode to score");
        return NULL;
    }
    s2s_scorer *sc = calloc(1, sizeof *sc);
    if (!sc) {
        s2s_err_set(err, S2S_ENOMEM, "out of memory");
        return NULL;
    }
    sc->o = *o;
    sc->b = b;
    for (int m = 0; m < S2S_MODE_COUNT; m++) {
        if (!(o->modes & (1u << m))) continue;
        unsigned nd = 0;
        if (s2s_backend_needs(b, (s2s_mode)m, &nd, err)) {
            s2s_err_prefix(err, "--lm %s: ", s2s_backend_spec(b));
            free(sc);
            return NULL;
        }
        sc->modes[sc->nmodes] = (s2s_mode)m;
        sc->needs[sc->nmodes] = nd;
        sc->nmodes++;
    }
    sc->rcap = 256;
    sc->rbuf = malloc(sizeof *sc->rbuf * sc->rcap);
    if (!sc->rbuf) {
        free(sc);
        s2s_err_set(err, S2S_ENOMEM, "out of memory");
        return NULL;
    }
    return sc;
}

uint64_t s2s_scorer_items(const s2s_scorer *sc) {
    return sc->n;
}

void s2s_scorer_set_hooks(s2s_scorer *sc, const s2s_score_hooks *h) {
    sc->hooks = *h;
}

uint64_t s2s_scorer_cached(const s2s_scorer *sc) {
    return sc->cached;
}

uint64_t s2s_scorer_answered(const s2s_scorer *sc) {
    return sc->answered;
}

static void item_cleanup_tmp(item_rec *it) {
    for (size_t i = 0; i < it->ntmp; i++) {
        unlink(it->tmpfiles[i]);
        free(it->tmpfiles[i]);
    }
    free(it->tmpfiles);
    it->tmpfiles = NULL;
    it->ntmp = 0;
}

/* Stores one answer (from the backend, or from the cache lookup when from_backend = 0). */
static int record_reply(s2s_scorer *sc, const s2s_reply *r, int from_backend, s2s_err *err) {
    uint64_t id = r->req_id;
    size_t item = (size_t)(id >> (CAND_BITS + 3));
    int slot = (int)((id >> CAND_BITS) & 7);
    unsigned k = (unsigned)(id & ((1u << CAND_BITS) - 1));
    if (item >= sc->n || slot >= sc->nmodes || k >= sc->items[item].ncand)
        return s2s_err_set(err, S2S_EMODEL, "backend %s replied to unknown request %llu",
                           s2s_backend_spec(sc->b), (unsigned long long)id);
    item_rec *it = &sc->items[item];
    cand_rec *c = &it->c[(size_t)slot * it->ncand + k];
    if (c->status != 1)
        return s2s_err_set(err, S2S_EMODEL, "backend %s replied twice to request %llu",
                           s2s_backend_spec(sc->b), (unsigned long long)id);
    if (from_backend && sc->hooks.store) {
        int rc = sc->hooks.store(sc->hooks.ctx, it->id, sc->modes[slot], k, r, err);
        if (rc < 0) return rc;
    }
    c->nll = r->nll;
    c->ntok = r->ntok;
    c->flags = r->flags;
    c->status = r->status < 0 ? r->status : 0;
    if (c->status && !(c->msg = strdup(r->msg[0] ? r->msg : s2s_strerror(r->status))))
        return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    sc->answered++;
    if (--it->pending == 0) item_cleanup_tmp(it);
    return 0;
}

static int take_replies(s2s_scorer *sc, int wait, s2s_err *err) {
    int n = s2s_backend_poll(sc->b, sc->rbuf, sc->rcap, wait, err);
    if (n < 0) return n;
    for (int i = 0; i < n; i++) {
        int rc = record_reply(sc, &sc->rbuf[i], 1, err);
        if (rc < 0) return rc;
    }
    return n;
}

static char *dedup_units(const char *s) {
    size_t n = strlen(s);
    char *out = malloc(n + 1);
    if (!out) return NULL;
    size_t w = 0;
    const char *p = s, *prev = NULL;
    size_t prevlen = 0;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
            p++;
        if (!*p) break;
        const char *e = p;
        while (*e && *e != ' ' && *e != '\t' && *e != '\n' && *e != '\r')
            e++;
        size_t len = (size_t)(e - p);
        if (!(prev && len == prevlen && !memcmp(prev, p, len))) {
            if (w) out[w++] = ' ';
            memcpy(out + w, p, len);
            w += len;
        }
        prev = p;
        prevlen = len;
        p = e;
    }
    out[w] = 0;
    return out;
}

static const json_t *find_uttid(const json_t *item, const json_t *cand) {
    const json_t *v = json_object_get(cand, "uttid");
    if (!v) v = json_object_get(item, "uttid");
    return v;
}

/* Writes an audio member to the scorer's private temp dir; returns a malloc'd path. */
static char *write_tmp_audio(s2s_scorer *sc, const char *key, const s2s_member *m, s2s_err *err) {
    if (!sc->tmpdir) {
        const char *t = getenv("TMPDIR");
        char tmpl[4096];
        snprintf(tmpl, sizeof tmpl, "%s/s2s-score-XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(tmpl)) {
            s2s_err_errno(err, "mkdtemp %s", tmpl);
            return NULL;
        }
        sc->tmpdir = strdup(tmpl);
        if (!sc->tmpdir) {
            rmdir(tmpl);
            s2s_err_set(err, S2S_ENOMEM, "out of memory");
            return NULL;
        }
    }
    size_t n = strlen(sc->tmpdir) + strlen(key) + strlen(m->suffix) + 3;
    char *path = malloc(n);
    if (!path) {
        s2s_err_set(err, S2S_ENOMEM, "out of memory");
        return NULL;
    }
    snprintf(path, n, "%s/%s.%s", sc->tmpdir, key, m->suffix);
    FILE *fp = fopen(path, "wb");
    int bad = !fp;
    if (fp) {
        bad = fwrite(m->data, 1, m->size, fp) != m->size;
        bad |= fclose(fp) != 0;
    }
    if (bad) {
        s2s_err_errno(err, "%s", path);
        unlink(path);
        free(path);
        return NULL;
    }
    return path;
}

static const s2s_member *audio_member(const s2s_sample *s, const char *base, char *want, size_t n) {
    static const char *const ext[] = {"wav", "flac"};
    for (int i = 0; i < 2; i++) {
        snprintf(want, n, "%s.%s", base, ext[i]);
        const s2s_member *m = s2s_sample_get(s, want);
        if (m) return m;
    }
    snprintf(want, n, "%s.wav", base);
    return NULL;
}

static uint32_t utf8_chars(const char *s) {
    uint32_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80) n++;
    return n;
}

static int missing(const s2s_sample *s, s2s_mode m, const char *what, const char *hint,
                   s2s_err *err) {
    return s2s_err_set(err, S2S_EDATA, "%s%s%s: mode %s needs %s%s", s->key, s->origin ? " (" : "",
                       s->origin ? s->origin : "", s2s_mode_name(m), what, hint);
}

int s2s_scorer_add(s2s_scorer *sc, const s2s_sample *s, s2s_err *err) {
    const json_t *item = s->item;
    if (!item) return s2s_err_set(err, S2S_EDATA, "%s: sample without an item", s->key);
    size_t nc = s2s_item_n_candidates(item);
    int right = s2s_item_right_index(item);
    if (nc < 2 || right < 0)
        return s2s_err_set(err, S2S_EDATA, "%s: needs at least 2 candidates and one label 1",
                           s->key);
    if (nc >= (1u << CAND_BITS))
        return s2s_err_set(err, S2S_EDATA, "%s: too many candidates", s->key);
    const char *task = s2s_item_task(item);
    const char *lang = s2s_item_lang(item);
    const json_t *cat = json_object_get(item, "category");
    const json_t *cands = json_object_get(item, "candidates");
    size_t pi;
    const json_t *pv;
    json_array_foreach(json_object_get(item, "provenance"), pi, pv) {
        const char *tool = json_string_value(json_object_get(pv, "tool"));
        const char *ver = json_string_value(json_object_get(pv, "version"));
        if (!tool) continue;
        char tv[256];
        snprintf(tv, sizeof tv, "%s %s", tool, ver ? ver : "?");
        if (!sc->tools && !(sc->tools = json_object()))
            return s2s_err_set(err, S2S_ENOMEM, "out of memory");
        if (!json_object_get(sc->tools, tv)) json_object_set_new(sc->tools, tv, json_true());
    }

    /* Check every mode's inputs first, so a missing member stops the run before asking. */
    char want[64];
    for (int slot = 0; slot < sc->nmodes; slot++) {
        unsigned nd = sc->needs[slot];
        s2s_mode m = sc->modes[slot];
        if ((nd & S2S_NEED_CTX_UNITS) && !s2s_sample_get(s, "ctx.units"))
            return missing(s, m, "member ctx.units", " (no speech units: run s2s-tokenize)", err);
        if ((nd & S2S_NEED_CTX_AUDIO) && !audio_member(s, "ctx", want, sizeof want))
            return missing(s, m, "member ctx.wav or ctx.flac", " (no speech: run s2s-synth)", err);
        for (size_t k = 0; k < nc; k++) {
            char base[32];
            snprintf(base, sizeof base, "c%zu", k);
            if (nd & S2S_NEED_CAND_UNITS) {
                snprintf(want, sizeof want, "c%zu.units", k);
                if (!s2s_sample_get(s, want))
                    return missing(s, m, want, " (no speech units: run s2s-tokenize)", err);
            }
            if ((nd & S2S_NEED_CAND_AUDIO) && !audio_member(s, base, want, sizeof want)) {
                snprintf(want, sizeof want, "member c%zu.wav or c%zu.flac", k, k);
                return missing(s, m, want, " (no speech: run s2s-synth)", err);
            }
            if ((nd & S2S_NEED_UTTID) && !find_uttid(item, json_array_get(cands, k)))
                return missing(s, m, "the upstream uttid of every candidate",
                               " (import the items with s2s-import s2sbench)", err);
        }
    }

    if (sc->n == sc->cap) {
        size_t ncap = sc->cap ? sc->cap * 2 : 256;
        item_rec *ni = realloc(sc->items, sizeof *ni * ncap);
        if (!ni) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
        sc->items = ni;
        sc->cap = ncap;
    }
    item_rec *it = &sc->items[sc->n];
    memset(it, 0, sizeof *it);
    it->id = strdup(s->key);
    it->task = strdup(task ? task : "");
    it->lang = strdup(lang ? lang : "");
    it->category = strdup(json_is_string(cat) ? json_string_value(cat) : "");
    it->c = calloc((size_t)sc->nmodes * nc, sizeof *it->c);
    if (!it->id || !it->task || !it->lang || !it->category || !it->c) {
        free(it->id), free(it->task), free(it->lang), free(it->category), free(it->c);
        return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    }
    it->ncand = (unsigned)nc;
    it->right = right;
    it->is_choice = task && !strcmp(task, "choice");
    size_t idx = sc->n++;
    for (size_t k = 0; k < nc; k++) {
        const char *t = s2s_item_candidate_text(item, k);
        for (int slot = 0; slot < sc->nmodes; slot++) {
            cand_rec *c = &it->c[(size_t)slot * nc + k];
            c->bytes = t ? (uint32_t)strlen(t) : 0;
            c->chars = t ? utf8_chars(t) : 0;
            c->status = 1;
        }
    }
    it->pending = (unsigned)(sc->nmodes * nc);

    int rc = 0;
    char *ctx_audio = NULL;
    for (int slot = 0; slot < sc->nmodes && !rc; slot++) {
        unsigned nd = sc->needs[slot];
        s2s_request rq = {0};
        rq.item_id = s->key;
        rq.mode = sc->modes[slot];
        rq.lang = lang;
        rq.item = item;
        rq.ctx_text = s2s_item_context_text(item);
        char *ctx_units = NULL;
        if (nd & S2S_NEED_CTX_UNITS) {
            const s2s_member *mu = s2s_sample_get(s, "ctx.units");
            rq.ctx_units = (const char *)mu->data;
            if (sc->o.dedup) {
                if (!(ctx_units = dedup_units(rq.ctx_units))) {
                    rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
                    break;
                }
                rq.ctx_units = ctx_units;
            }
        }
        if ((nd & S2S_NEED_CTX_AUDIO) && !ctx_audio) {
            const s2s_member *ma = audio_member(s, "ctx", want, sizeof want);
            ctx_audio = write_tmp_audio(sc, s->key, ma, err);
            if (!ctx_audio) {
                free(ctx_units);
                rc = err->code ? err->code : S2S_EIO;
                break;
            }
            char **nt = realloc(it->tmpfiles, sizeof *nt * (it->ntmp + 1));
            if (!nt) {
                free(ctx_units);
                unlink(ctx_audio);
                free(ctx_audio);
                rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
                break;
            }
            it->tmpfiles = nt;
            it->tmpfiles[it->ntmp++] = ctx_audio;
        }
        if (nd & S2S_NEED_CTX_AUDIO) rq.ctx_audio = ctx_audio;
        for (size_t k = 0; k < nc && !rc; k++) {
            rq.cand = (unsigned)k;
            rq.cand_text = s2s_item_candidate_text(item, k);
            rq.cand_units = NULL;
            rq.cand_audio = NULL;
            char *cu = NULL;
            if (nd & S2S_NEED_CAND_UNITS) {
                snprintf(want, sizeof want, "c%zu.units", k);
                const s2s_member *mu = s2s_sample_get(s, want);
                rq.cand_units = (const char *)mu->data;
                if (sc->o.dedup) {
                    if (!(cu = dedup_units(rq.cand_units))) {
                        rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
                        break;
                    }
                    rq.cand_units = cu;
                }
            }
            if (nd & S2S_NEED_CAND_AUDIO) {
                char base[32];
                snprintf(base, sizeof base, "c%zu", k);
                const s2s_member *ma = audio_member(s, base, want, sizeof want);
                char *p = NULL;
                /* the same file serves every mode of this item */
                for (size_t t = 0; t < it->ntmp; t++) {
                    const char *q = strrchr(it->tmpfiles[t], '/');
                    size_t kl = strlen(s->key);
                    if (q && !strncmp(q + 1, s->key, kl) && q[1 + kl] == '.' &&
                        !strcmp(q + 2 + kl, ma->suffix))
                        p = it->tmpfiles[t];
                }
                if (!p) {
                    char **nt = realloc(it->tmpfiles, sizeof *nt * (it->ntmp + 1));
                    if (!nt) {
                        free(cu);
                        rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
                        break;
                    }
                    it->tmpfiles = nt;
                    if (!(p = write_tmp_audio(sc, s->key, ma, err))) {
                        free(cu);
                        rc = err->code ? err->code : S2S_EIO;
                        break;
                    }
                    it->tmpfiles[it->ntmp++] = p;
                }
                rq.cand_audio = p;
            }
            rq.req_id = ((uint64_t)idx << (CAND_BITS + 3)) | ((uint64_t)slot << CAND_BITS) | k;
            if (sc->hooks.lookup) {
                s2s_reply known;
                memset(&known, 0, sizeof known);
                int hit = sc->hooks.lookup(sc->hooks.ctx, &rq, &known, err);
                if (hit < 0) {
                    rc = hit;
                } else if (hit > 0) {
                    known.req_id = rq.req_id;
                    rc = record_reply(sc, &known, 0, err);
                    sc->cached++;
                    free(cu);
                    continue;
                }
                if (rc) {
                    free(cu);
                    break;
                }
            }
            while (!rc && s2s_backend_in_flight(sc->b) >= s2s_backend_capacity(sc->b)) {
                int n = take_replies(sc, 1, err);
                if (n < 0) rc = n;
                if (!rc && sc->o.stop && *sc->o.stop)
                    rc = s2s_err_set(err, S2S_EINTR, "interrupted");
            }
            if (!rc) rc = s2s_backend_submit(sc->b, &rq, err);
            if (!rc) sc->submitted++;
            free(cu);
        }
        free(ctx_units);
    }
    if (rc) return rc;
    /* collect what is ready without blocking */
    int n = take_replies(sc, 0, err);
    return n < 0 ? n : 0;
}

int s2s_scorer_finish(s2s_scorer *sc, s2s_err *err) {
    while (s2s_backend_in_flight(sc->b) > 0) {
        if (sc->o.stop && *sc->o.stop) return s2s_err_set(err, S2S_EINTR, "interrupted");
        int n = take_replies(sc, 1, err);
        if (n < 0) return n;
        if (n == 0 && s2s_backend_in_flight(sc->b) > 0)
            return s2s_err_set(err, S2S_EMODEL, "backend %s: requests lost in flight",
                               s2s_backend_spec(sc->b));
    }
    if (sc->answered != sc->submitted + sc->cached)
        return s2s_err_set(err, S2S_EMODEL, "backend %s answered %llu of %llu requests",
                           s2s_backend_spec(sc->b), (unsigned long long)sc->answered,
                           (unsigned long long)(sc->submitted + sc->cached));
    return 0;
}

/* ---- analysis ------------------------------------------------------------------------------- */

static int cmp_item(const void *a, const void *b) {
    return strcmp(((const item_rec *)a)->id, ((const item_rec *)b)->id);
}

static void sort_items(s2s_scorer *sc) {
    if (!sc->sorted && sc->n) qsort(sc->items, sc->n, sizeof *sc->items, cmp_item);
    sc->sorted = 1;
}

/* Decision score of a candidate, NAN when failed. */
static double decision(const s2s_scorer *sc, const cand_rec *c) {
    if (c->status != 0) return NAN;
    double mean, sum, pb;
    s2s_candidate_scores(c->nll, c->ntok, c->flags, c->bytes, &mean, &sum, &pb);
    return sc->o.kind == S2S_SCORE_SUM ? sum : sc->o.kind == S2S_SCORE_BYTE ? pb : mean;
}

/* Outcome of pair (item, slot, wrong candidate k); NAN = failed. *tie set for equal scores. */
static double pair_outcome(const s2s_scorer *sc, const item_rec *it, int slot, unsigned k,
                           double *ps, double *is, int *tie) {
    const cand_rec *p = &it->c[(size_t)slot * it->ncand + (unsigned)it->right];
    const cand_rec *w = &it->c[(size_t)slot * it->ncand + k];
    *ps = decision(sc, p);
    *is = decision(sc, w);
    *tie = *ps == *is;
    if (p->status != 0 || w->status != 0) return NAN;
    return s2s_pair_outcome(*ps, *is, it->is_choice, sc->o.compat);
}

typedef struct acc_t {
    uint64_t expected, scored, ties;
    double correct, sum_p, sum_i;
    double *num, *den; /* per item (cluster bootstrap) */
    size_t nunits;
} acc_t;

static json_t *jnum(double v) {
    return isfinite(v) ? json_real(v) : json_null();
}

static json_t *acc_json(const s2s_scorer *sc, acc_t *a, int full, s2s_err *err) {
    json_t *o = json_object();
    if (!o) return NULL;
    double acc = a->scored ? a->correct / (double)a->scored : NAN;
    json_object_set_new(o, "accuracy", jnum(acc));
    json_object_set_new(o, "pairs", json_integer((json_int_t)a->scored));
    json_object_set_new(o, "correct", json_real(a->correct));
    json_object_set_new(o, "ties", json_integer((json_int_t)a->ties));
    json_object_set_new(o, "failed", json_integer((json_int_t)(a->expected - a->scored)));
    json_object_set_new(o, "expected", json_integer((json_int_t)a->expected));
    json_t *ci = json_null();
    if (sc->o.bootstrap && a->nunits > 0) {
        double lo, hi;
        if (s2s_bootstrap_ci(a->num, a->den, a->nunits, sc->o.bootstrap, sc->o.seed, 0.95, &lo, &hi,
                             err)) {
            json_decref(o);
            return NULL;
        }
        ci = json_pack("[ff]", lo, hi);
    }
    json_object_set_new(o, "ci95", ci);
    if (full) {
        json_object_set_new(o, "mean_score_plausible",
                            jnum(a->scored ? a->sum_p / (double)a->scored : NAN));
        json_object_set_new(o, "mean_score_implausible",
                            jnum(a->scored ? a->sum_i / (double)a->scored : NAN));
    }
    return o;
}

/* Accumulates the pairs of item it in mode slot into a. */
static int acc_item(const s2s_scorer *sc, const item_rec *it, int slot, acc_t *a, s2s_err *err) {
    double inum = 0, iden = 0;
    for (unsigned k = 0; k < it->ncand; k++) {
        if ((int)k == it->right) continue;
        a->expected++;
        double ps, is;
        int tie;
        double out = pair_outcome(sc, it, slot, k, &ps, &is, &tie);
        if (isnan(out)) continue;
        a->scored++;
        a->ties += tie ? 1 : 0;
        a->correct += out;
        a->sum_p += ps;
        a->sum_i += is;
        inum += out;
        iden += 1;
    }
    if (iden > 0) {
        if ((a->nunits & (a->nunits + 1)) == 0 || !a->num) {
            /* grow at powers of two */
            size_t nc = (a->nunits + 1) * 2;
            double *nn = realloc(a->num, sizeof *nn * nc), *nd;
            if (!nn) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
            a->num = nn;
            nd = realloc(a->den, sizeof *nd * nc);
            if (!nd) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
            a->den = nd;
        }
        a->num[a->nunits] = inum;
        a->den[a->nunits] = iden;
        a->nunits++;
    }
    return 0;
}

static void acc_free(acc_t *a) {
    free(a->num);
    free(a->den);
    memset(a, 0, sizeof *a);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Breakdown of mode slot by a field (category or lang): object with sorted keys. */
static json_t *breakdown(const s2s_scorer *sc, int slot, int by_lang, s2s_err *err) {
    const char **names = malloc(sizeof *names * (sc->n ? sc->n : 1));
    if (!names) return NULL;
    for (size_t i = 0; i < sc->n; i++) {
        const char *v = by_lang ? sc->items[i].lang : sc->items[i].category;
        names[i] = *v ? v : "-";
    }
    qsort(names, sc->n, sizeof *names, cmp_str);
    json_t *o = json_object();
    for (size_t i = 0; o && i < sc->n; i++) {
        if (i > 0 && !strcmp(names[i], names[i - 1])) continue;
        acc_t a = {0};
        int rc = 0;
        for (size_t j = 0; j < sc->n && !rc; j++) {
            const char *v = by_lang ? sc->items[j].lang : sc->items[j].category;
            if (!strcmp(*v ? v : "-", names[i])) rc = acc_item(sc, &sc->items[j], slot, &a, err);
        }
        json_t *e = rc ? NULL : acc_json(sc, &a, 1, err);
        acc_free(&a);
        if (!e) {
            json_decref(o);
            o = NULL;
            break;
        }
        json_object_set_new(o, names[i], e);
    }
    free(names);
    return o;
}

static int slot_of(const s2s_scorer *sc, s2s_mode m) {
    for (int i = 0; i < sc->nmodes; i++)
        if (sc->modes[i] == m) return i;
    return -1;
}

/* Paired comparison of two modes over the pairs scored in both. */
static json_t *degradation(const s2s_scorer *sc, int sa, int sb, s2s_err *err) {
    double *a = malloc(sizeof *a * (sc->n + 1)), *b = malloc(sizeof *b * (sc->n + 1));
    double *d = malloc(sizeof *d * (sc->n + 1));
    json_t *o = NULL;
    if (!a || !b || !d) {
        s2s_err_set(err, S2S_ENOMEM, "out of memory");
        goto done;
    }
    size_t nu = 0;
    uint64_t pairs = 0, bcount = 0, ccount = 0, untied = 0;
    double suma = 0, sumb = 0;
    for (size_t i = 0; i < sc->n; i++) {
        const item_rec *it = &sc->items[i];
        double ia = 0, ib = 0, id = 0;
        for (unsigned k = 0; k < it->ncand; k++) {
            if ((int)k == it->right) continue;
            double p1, i1, p2, i2;
            int t1, t2;
            double oa = pair_outcome(sc, it, sa, k, &p1, &i1, &t1);
            double ob = pair_outcome(sc, it, sb, k, &p2, &i2, &t2);
            if (isnan(oa) || isnan(ob)) continue;
            ia += oa;
            ib += ob;
            id += 1;
            /* McNemar on decided pairs: a pair tied in either mode is left out */
            if (oa != 0.5 && ob != 0.5) {
                untied++;
                if (oa > ob) bcount++;
                if (oa < ob) ccount++;
            }
        }
        if (id > 0) {
            a[nu] = ia;
            b[nu] = ib;
            d[nu] = id;
            nu++;
            pairs += (uint64_t)id;
            suma += ia;
            sumb += ib;
        }
    }
    o = json_object();
    if (!o) goto done;
    json_object_set_new(o, "from", json_string(s2s_mode_name(sc->modes[sa])));
    json_object_set_new(o, "to", json_string(s2s_mode_name(sc->modes[sb])));
    json_object_set_new(o, "pairs", json_integer((json_int_t)pairs));
    double fa = pairs ? suma / (double)pairs : NAN, fb = pairs ? sumb / (double)pairs : NAN;
    json_object_set_new(o, "accuracy_from", jnum(fa));
    json_object_set_new(o, "accuracy_to", jnum(fb));
    json_object_set_new(o, "difference", jnum(fa - fb));
    json_t *ci = json_null();
    if (sc->o.bootstrap && nu > 0) {
        double lo, hi;
        if (s2s_bootstrap_paired_diff(a, b, d, nu, sc->o.bootstrap, sc->o.seed, 0.95, &lo, &hi,
                                      err)) {
            json_decref(o);
            o = NULL;
            goto done;
        }
        ci = json_pack("[ff]", lo, hi);
    }
    json_object_set_new(o, "ci95", ci);
    json_object_set_new(o, "mcnemar",
                        json_pack("{sI sI sI sf}", "pairs", (json_int_t)untied, "b",
                                  (json_int_t)bcount, "c", (json_int_t)ccount, "p",
                                  s2s_mcnemar_exact(bcount, ccount)));
done:
    free(a);
    free(b);
    free(d);
    return o;
}

/* The first MAX_FAIL_EXAMPLES failure messages of a mode, items in id order then candidates in
 * index order (never in reply order: the report must not depend on batching or timing). */
static json_t *failure_examples(const s2s_scorer *sc, int slot) {
    json_t *fx = json_array();
    for (size_t i = 0; i < sc->n && json_array_size(fx) < MAX_FAIL_EXAMPLES; i++) {
        const item_rec *it = &sc->items[i];
        for (unsigned k = 0; k < it->ncand && json_array_size(fx) < MAX_FAIL_EXAMPLES; k++) {
            const cand_rec *c = &it->c[(size_t)slot * it->ncand + k];
            const char *why = c->status < 0 ? (c->msg ? c->msg : s2s_strerror(c->status))
                              : (!isfinite(c->nll) && !sc->o.compat) ? "non-finite NLL"
                                                                     : NULL;
            if (!why) continue;
            size_t n = strlen(it->id) + strlen(why) + 64;
            char *m = malloc(n);
            if (!m) continue;
            snprintf(m, n, "%s: candidate %u: %s", it->id, k, why);
            json_array_append_new(fx, json_string(m));
            free(m);
        }
    }
    return fx;
}

json_t *s2s_scorer_report(s2s_scorer *sc, json_t *run, s2s_err *err) {
    sort_items(sc);
    json_t *rep = json_object();
    json_t *r = run ? run : json_object();
    if (!rep || !r) {
        json_decref(rep);
        json_decref(r);
        s2s_err_set(err, S2S_ENOMEM, "out of memory");
        return NULL;
    }
    json_object_set_new(rep, "tool", json_string("s2s-score"));
    json_object_set_new(rep, "version", json_string(S2S_VERSION));
    json_object_set_new(r, "backend", json_string(s2s_backend_spec(sc->b)));
    json_object_set_new(r, "backend_kind", json_string(s2s_backend_kind(sc->b)));
    json_object_set_new(r, "model_sha256", json_string(s2s_backend_model_sha256(sc->b)));
    if (sc->o.model_id) json_object_set_new(r, "model_id", json_string(sc->o.model_id));
    json_object_set_new(r, "score", json_string(s2s_score_kind_name(sc->o.kind)));
    json_object_set_new(r, "compat", sc->o.compat ? json_string("s2sbench") : json_null());
    json_object_set_new(r, "dedup", json_boolean(sc->o.dedup));
    json_object_set_new(r, "seed", json_integer((json_int_t)sc->o.seed));
    /* tools (and versions) that made the items, from their provenance, sorted */
    json_t *tv = json_array();
    if (sc->tools) {
        size_t nt = json_object_size(sc->tools), i = 0;
        const char **names = malloc(sizeof *names * (nt ? nt : 1));
        const char *key;
        json_t *val;
        if (names) {
            json_object_foreach(sc->tools, key, val) names[i++] = key;
            qsort(names, nt, sizeof *names, cmp_str);
            for (i = 0; i < nt; i++)
                json_array_append_new(tv, json_string(names[i]));
            free(names);
        }
    }
    json_object_set_new(r, "bootstrap", json_integer((json_int_t)sc->o.bootstrap));
    json_object_set_new(r, "item_tools", tv);
    json_object_set_new(rep, "run", r);
    json_object_set_new(rep, "decision_score", json_string(s2s_score_kind_name(sc->o.kind)));
    json_object_set_new(rep, "items", json_integer((json_int_t)sc->n));
    json_t *modes = json_object(), *warn = json_array();
    json_object_set_new(rep, "modes", modes);
    for (int slot = 0; slot < sc->nmodes; slot++) {
        acc_t a = {0};
        int rc = 0;
        uint64_t cand_failed = 0, cand_total = 0, distinct = 0;
        double first = NAN;
        for (size_t i = 0; i < sc->n && !rc; i++) {
            const item_rec *it = &sc->items[i];
            rc = acc_item(sc, it, slot, &a, err);
            for (unsigned k = 0; k < it->ncand; k++) {
                const cand_rec *c = &it->c[(size_t)slot * it->ncand + k];
                double v = decision(sc, c);
                cand_total++;
                if (!isfinite(v)) {
                    cand_failed++;
                    continue;
                }
                if (isnan(first)) {
                    first = v;
                    distinct = 1;
                } else if (v != first) {
                    distinct = 2;
                }
            }
        }
        json_t *m = rc ? NULL : acc_json(sc, &a, 1, err);
        if (!m) {
            acc_free(&a);
            json_decref(rep);
            json_decref(warn);
            return NULL;
        }
        const char *mn = s2s_mode_name(sc->modes[slot]);
        json_object_set_new(m, "scored", json_integer((json_int_t)a.scored));
        json_object_set_new(m, "candidates", json_integer((json_int_t)cand_total));
        json_object_set_new(m, "failed_candidates", json_integer((json_int_t)cand_failed));
        json_t *fx = failure_examples(sc, slot);
        json_object_set_new(m, "failure_examples", fx);
        json_t *mw = json_array();
        char buf[256];
        if (a.scored > 0 && (double)a.ties > sc->o.tie_warn * (double)a.scored) {
            snprintf(buf, sizeof buf,
                     "%s: backend looks broken: %.1f%% of pairs tie (%llu of %llu)", mn,
                     100.0 * (double)a.ties / (double)a.scored, (unsigned long long)a.ties,
                     (unsigned long long)a.scored);
            json_array_append_new(mw, json_string(buf));
        }
        if (distinct == 1 && cand_total - cand_failed > 1) {
            snprintf(buf, sizeof buf, "%s: backend looks broken: every score is equal (%.17g)", mn,
                     first);
            json_array_append_new(mw, json_string(buf));
        }
        if (a.expected > a.scored) {
            snprintf(buf, sizeof buf, "%s: %llu of %llu pairs failed (not counted)", mn,
                     (unsigned long long)(a.expected - a.scored), (unsigned long long)a.expected);
            json_array_append_new(mw, json_string(buf));
        }
        for (size_t w = 0; w < json_array_size(mw); w++)
            json_array_append(warn, json_array_get(mw, w));
        json_object_set_new(m, "warnings", mw);
        acc_free(&a);
        json_t *bc = breakdown(sc, slot, 0, err), *bl = bc ? breakdown(sc, slot, 1, err) : NULL;
        if (!bc || !bl) {
            json_decref(bc);
            json_decref(m);
            json_decref(rep);
            json_decref(warn);
            if (!err->code) s2s_err_set(err, S2S_ENOMEM, "out of memory");
            return NULL;
        }
        json_object_set_new(m, "by_category", bc);
        json_object_set_new(m, "by_lang", bl);
        json_object_set_new(modes, mn, m);
    }
    json_t *deg = json_object();
    static const s2s_mode against[] = {S2S_MODE_S2T, S2S_MODE_S2S};
    int st = slot_of(sc, S2S_MODE_T2T);
    for (int i = 0; i < 2 && st >= 0; i++) {
        int sb = slot_of(sc, against[i]);
        if (sb < 0) continue;
        json_t *d = degradation(sc, st, sb, err);
        if (!d) {
            json_decref(deg);
            json_decref(rep);
            json_decref(warn);
            return NULL;
        }
        char key[16];
        snprintf(key, sizeof key, "t2t-%s", s2s_mode_name(against[i]));
        json_object_set_new(deg, key, d);
    }
    json_object_set_new(rep, "degradation", deg);
    json_object_set_new(rep, "warnings", warn);
    return rep;
}

static json_t *cand_json(const s2s_scorer *sc, const item_rec *it, int slot, unsigned k) {
    const cand_rec *c = &it->c[(size_t)slot * it->ncand + k];
    json_t *o = json_object();
    json_object_set_new(o, "cand", json_integer(k));
    if (c->status != 0) {
        json_object_set_new(o, "failed", json_true());
        return o;
    }
    double mean, sum, pb;
    s2s_candidate_scores(c->nll, c->ntok, c->flags, c->bytes, &mean, &sum, &pb);
    (void)sc;
    json_object_set_new(o, "nll", jnum(c->nll));
    json_object_set_new(o, "ntok",
                        (c->flags & S2S_REPLY_MEAN_ONLY) ? json_null()
                                                         : json_integer((json_int_t)c->ntok));
    json_object_set_new(o, "bytes", json_integer(c->bytes));
    json_object_set_new(o, "chars", json_integer(c->chars));
    json_object_set_new(o, "mean", jnum(mean));
    json_object_set_new(o, "sum", jnum(sum));
    json_object_set_new(o, "byte", jnum(pb));
    return o;
}

int s2s_scorer_write_pairs(s2s_scorer *sc, FILE *fp, s2s_err *err) {
    sort_items(sc);
    for (size_t i = 0; i < sc->n; i++) {
        const item_rec *it = &sc->items[i];
        for (int slot = 0; slot < sc->nmodes; slot++) {
            for (unsigned k = 0; k < it->ncand; k++) {
                if ((int)k == it->right) continue;
                double ps, is;
                int tie;
                double out = pair_outcome(sc, it, slot, k, &ps, &is, &tie);
                json_t *o = json_object();
                if (!o) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
                json_object_set_new(o, "item", json_string(it->id));
                json_object_set_new(o, "mode", json_string(s2s_mode_name(sc->modes[slot])));
                json_object_set_new(o, "task", json_string(it->task));
                json_object_set_new(o, "lang", json_string(it->lang));
                json_object_set_new(o, "category", json_string(it->category));
                json_object_set_new(o, "outcome", jnum(out));
                json_object_set_new(o, "tie", json_boolean(!isnan(out) && tie));
                json_object_set_new(o, "plausible", cand_json(sc, it, slot, (unsigned)it->right));
                json_object_set_new(o, "implausible", cand_json(sc, it, slot, k));
                char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
                json_decref(o);
                if (!s) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
                int bad = fputs(s, fp) < 0 || fputc('\n', fp) == EOF;
                free(s);
                if (bad) return s2s_err_errno(err, "pairs.jsonl");
            }
        }
    }
    return 0;
}

static void fmt_num(char *buf, size_t n, const json_t *v, const char *fmt) {
    if (json_is_number(v))
        snprintf(buf, n, fmt, json_number_value(v));
    else
        snprintf(buf, n, "-");
}

void s2s_score_print_table(const json_t *rep, FILE *fp) {
    const json_t *modes = json_object_get(rep, "modes");
    fprintf(fp, "%-5s %9s  %-17s %7s %6s %7s %11s %11s\n", "mode", "accuracy", "95% CI", "pairs",
            "ties", "failed", "plausible", "implausible");
    const char *key;
    const json_t *m;
    json_object_foreach((json_t *)modes, key, m) {
        char acc[32], lo[32], hi[32], mp[32], mi[32], ci[48];
        fmt_num(acc, sizeof acc, json_object_get(m, "accuracy"), "%.4f");
        const json_t *c = json_object_get(m, "ci95");
        fmt_num(lo, sizeof lo, json_array_get(c, 0), "%.4f");
        fmt_num(hi, sizeof hi, json_array_get(c, 1), "%.4f");
        snprintf(ci, sizeof ci, "[%s, %s]", lo, hi);
        fmt_num(mp, sizeof mp, json_object_get(m, "mean_score_plausible"), "%.4f");
        fmt_num(mi, sizeof mi, json_object_get(m, "mean_score_implausible"), "%.4f");
        fprintf(fp, "%-5s %9s  %-17s %7lld %6lld %7lld %11s %11s\n", key, acc, ci,
                (long long)json_integer_value(json_object_get(m, "pairs")),
                (long long)json_integer_value(json_object_get(m, "ties")),
                (long long)json_integer_value(json_object_get(m, "failed")), mp, mi);
    }
    const json_t *deg = json_object_get(rep, "degradation");
    json_object_foreach((json_t *)deg, key, m) {
        char d[32], lo[32], hi[32], p[32];
        fmt_num(d, sizeof d, json_object_get(m, "difference"), "%+.4f");
        const json_t *c = json_object_get(m, "ci95");
        fmt_num(lo, sizeof lo, json_array_get(c, 0), "%+.4f");
        fmt_num(hi, sizeof hi, json_array_get(c, 1), "%+.4f");
        fmt_num(p, sizeof p, json_object_get(json_object_get(m, "mcnemar"), "p"), "%.4g");
        fprintf(fp, "degradation %s: %s [%s, %s] over %lld pairs, McNemar exact p = %s\n", key, d,
                lo, hi, (long long)json_integer_value(json_object_get(m, "pairs")), p);
    }
    fprintf(fp, "decision score: %s (lower wins)\n",
            json_string_value(json_object_get(rep, "decision_score")));
    const json_t *w = json_object_get(rep, "warnings");
    for (size_t i = 0; i < json_array_size(w); i++)
        fprintf(fp, "warning: %s\n", json_string_value(json_array_get(w, i)));
}

void s2s_scorer_free(s2s_scorer *sc) {
    if (!sc) return;
    for (size_t i = 0; i < sc->n; i++) {
        item_rec *it = &sc->items[i];
        item_cleanup_tmp(it);
        for (size_t k = 0; it->c && k < (size_t)sc->nmodes * it->ncand; k++)
            free(it->c[k].msg);
        free(it->id);
        free(it->task);
        free(it->lang);
        free(it->category);
        free(it->c);
    }
    free(sc->items);
    free(sc->rbuf);
    json_decref(sc->tools);
    if (sc->tmpdir) {
        rmdir(sc->tmpdir);
        free(sc->tmpdir);
    }
    free(sc);
}

/* backend_ngram.c — ngram:FILE / arpa:FILE: an ARPA model scored in process (s2s/ngram.h),
 * optionally interpolated with a unigram cache of the context. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s2s/backend.h"
#include "s2s/ngram.h"
#include "s2s/util.h"

typedef struct ngram_model {
    s2s_lm *lm;
    char *path;
    int recorded_mode; /* the ARPA names its token mode (\s2s-tok:), else text follows the lang */
} ngram_model;

/* One text model and/or one unit model ("ngram:words.arpa,units.arpa"): t2t asks the text
 * model, s2s the unit model, so one run reports both modes and their degradation. */
typedef struct ngram_be {
    ngram_model m[2];
    int nm;
    double cache; /* weight of the unigram cache, 0 = off */
    int eos;
} ngram_be;

static void ngram_destroy(void *self) {
    ngram_be *g = self;
    if (!g) return;
    for (int i = 0; i < 2; i++) {
        s2s_lm_free(g->m[i].lm);
        free(g->m[i].path);
    }
    free(g);
}

/* The model for units (want_units) or for text, or NULL. */
static const ngram_model *model_for(const ngram_be *g, int want_units) {
    for (int i = 0; i < g->nm; i++)
        if ((s2s_lm_tok_mode(g->m[i].lm) == S2S_TOK_UNITS) == want_units) return &g->m[i];
    return NULL;
}

static const char *tok_name(s2s_tok_mode m) {
    return m == S2S_TOK_UNITS ? "units" : m == S2S_TOK_CHARS ? "chars" : "words";
}

static int ngram_needs(void *self, s2s_mode mode, unsigned *needs, s2s_err *err) {
    ngram_be *g = self;
    const ngram_model *any = &g->m[0];
    switch (mode) {
    case S2S_MODE_T2T:
        if (!model_for(g, 0))
            return s2s_err_set(err, S2S_EUNSUP,
                               "mode t2t needs a text model, but %s is a unit model (its tokens "
                               "are speech units): train one on text with s2s-lm train, and "
                               "give both as ngram:TEXT.arpa,UNITS.arpa",
                               any->path);
        *needs = S2S_NEED_CTX_TEXT | S2S_NEED_CAND_TEXT;
        return 0;
    case S2S_MODE_S2S:
        if (!model_for(g, 1))
            return s2s_err_set(err, S2S_EUNSUP,
                               "mode s2s needs a unit model, but %s is a text model (%s): train "
                               "one on unit sequences with s2s-lm train --tok units, and give "
                               "both as ngram:TEXT.arpa,UNITS.arpa",
                               any->path, tok_name(s2s_lm_tok_mode(any->lm)));
        *needs = S2S_NEED_CTX_UNITS | S2S_NEED_CAND_UNITS;
        return 0;
    default:
        return s2s_err_set(err, S2S_EUNSUP,
                           "mode %s needs a model that reads both speech and text; an n-gram "
                           "model (%s, %s tokens) reads one kind only: use a worker model "
                           "(--lm worker:COMMAND) for s2t and t2s",
                           s2s_mode_name(mode), any->path, tok_name(s2s_lm_tok_mode(any->lm)));
    }
}

/* Counts of tokens seen so far, for the cache: open addressing on FNV-1a. */
typedef struct cache_tab {
    const char **key;
    uint32_t *cnt;
    size_t cap;
} cache_tab;

static size_t cache_slot(const cache_tab *c, const char *k) {
    size_t i = (size_t)s2s_fnv1a64(k) & (c->cap - 1);
    while (c->key[i] && strcmp(c->key[i], k) != 0)
        i = (i + 1) & (c->cap - 1);
    return i;
}

static double score_cache(const ngram_be *g, const s2s_lm *lm, char **all, size_t n, size_t m,
                          double *nll, size_t *ntok, s2s_err *err) {
    size_t total = n + m;
    cache_tab c = {0};
    c.cap = 16;
    while (c.cap < 2 * total + 2)
        c.cap <<= 1;
    c.key = calloc(c.cap, sizeof *c.key);
    c.cnt = calloc(c.cap, sizeof *c.cnt);
    if (!c.key || !c.cnt) {
        free(c.key);
        free(c.cnt);
        return s2s_err_set(err, S2S_ENOMEM, "ngram: out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        size_t s = cache_slot(&c, all[i]);
        c.key[s] = all[i];
        c.cnt[s]++;
    }
    size_t win = (size_t)(s2s_lm_order(lm) > 1 ? s2s_lm_order(lm) - 1 : 0);
    double sum = 0;
    int rc = 0;
    size_t steps = m + (g->eos ? 1 : 0);
    for (size_t j = 0; j < steps; j++) {
        size_t hl = n + j, w = hl < win ? hl : win;
        const char *const *hist = (const char *const *)(all + hl - w);
        double l;
        size_t nt;
        if (j < m)
            rc = s2s_lm_score(lm, hist, w, (const char *const *)&all[hl], 1, 0, &l, &nt, NULL, err);
        else
            rc = s2s_lm_score(lm, hist, w, NULL, 0, 1, &l, &nt, NULL, err);
        if (rc < 0) break;
        double pc = 0;
        if (j < m && hl > 0) {
            size_t s = cache_slot(&c, all[hl]);
            if (c.key[s]) pc = (double)c.cnt[s] / (double)hl;
        }
        double p = (1 - g->cache) * exp(-l) + g->cache * pc;
        sum += -log(p);
        if (j < m) {
            size_t s = cache_slot(&c, all[hl]);
            c.key[s] = all[hl];
            c.cnt[s]++;
        }
    }
    free(c.key);
    free(c.cnt);
    if (rc < 0) return rc;
    *nll = sum;
    *ntok = steps;
    return 0;
}

static int ngram_answer(void *self, const s2s_request *rq, s2s_reply *out, s2s_err *err) {
    ngram_be *g = self;
    int units = rq->mode == S2S_MODE_S2S;
    const ngram_model *md = model_for(g, units);
    if (!md)
        return s2s_err_set(err, S2S_EUNSUP, "ngram: no model for mode %s", s2s_mode_name(rq->mode));
    const s2s_lm *lm = md->lm;
    s2s_tok_mode tm = s2s_lm_tok_mode(lm);
    const char *ctx, *cand;
    if (units) {
        ctx = rq->ctx_units;
        cand = rq->cand_units;
    } else {
        ctx = rq->ctx_text;
        cand = rq->cand_text;
        s2s_tok_mode want = s2s_tok_mode_for_lang(rq->lang ? rq->lang : "");
        if (!md->recorded_mode)
            tm = want;
        else if (tm != want && !(tm == S2S_TOK_CHARS && want == S2S_TOK_WORDS))
            /* every token would be unknown: a wrong model, not a result. A character model reads
             * any script, so it may score a words language (one model for en and zh). */
            return s2s_err_set(err, S2S_EDATA,
                               "%s: language '%s' is tokenized as %s, but %s is a %s model "
                               "(train one with s2s-lm train --tok %s)",
                               rq->item_id, rq->lang ? rq->lang : "", tok_name(want), md->path,
                               tok_name(tm), tok_name(want));
    }
    char **ct = NULL, **kt = NULL;
    long n = 0, m = 0;
    s2s_err e;
    s2s_err_clear(&e);
    out->status = 0;
    n = s2s_ngram_tokenize(ctx ? ctx : "", tm, &ct, &e);
    if (n >= 0) m = s2s_ngram_tokenize(cand ? cand : "", tm, &kt, &e);
    if (n < 0 || m < 0) {
        out->status = n < 0 ? (int)n : (int)m;
        snprintf(out->msg, sizeof out->msg, "tokenize: %s", e.msg);
        if (n >= 0) s2s_tokens_free(ct, (size_t)n);
        return 0;
    }
    double nll = 0;
    size_t ntok = 0;
    int rc;
    if (g->cache > 0) {
        char **all = malloc(sizeof *all * ((size_t)n + (size_t)m + 1));
        if (!all) {
            rc = s2s_err_set(&e, S2S_ENOMEM, "out of memory");
        } else {
            if (n) memcpy(all, ct, sizeof *all * (size_t)n);
            if (m) memcpy(all + n, kt, sizeof *all * (size_t)m);
            rc = (int)score_cache(g, lm, all, (size_t)n, (size_t)m, &nll, &ntok, &e);
            free(all);
        }
    } else {
        /* Only the last order-1 context tokens can matter (the <s> the model puts before a
         * shorter history is then out of reach too): skip the lookups of the rest. */
        size_t win = (size_t)(s2s_lm_order(lm) > 1 ? s2s_lm_order(lm) - 1 : 0);
        size_t skip = (size_t)n > win ? (size_t)n - win : 0;
        rc = s2s_lm_score(lm, ct ? (const char *const *)ct + skip : NULL, (size_t)n - skip,
                          (const char *const *)kt, (size_t)m, g->eos, &nll, &ntok, NULL, &e);
    }
    s2s_tokens_free(ct, (size_t)n);
    s2s_tokens_free(kt, (size_t)m);
    if (rc < 0) {
        if (rc == S2S_ENOMEM) return s2s_err_set(err, rc, "ngram: out of memory");
        out->status = rc;
        snprintf(out->msg, sizeof out->msg, "%s", e.msg);
        return 0;
    }
    if (ntok == 0) {
        out->status = S2S_EDATA;
        snprintf(out->msg, sizeof out->msg, "candidate %u has no tokens", rq->cand);
        return 0;
    }
    out->nll = nll;
    out->ntok = ntok;
    return 0;
}

static const s2s_backend_ops ngram_ops = {
    .kind = "ngram", .needs = ngram_needs, .answer = ngram_answer, .destroy = ngram_destroy};
static const s2s_backend_ops arpa_ops = {
    .kind = "arpa", .needs = ngram_needs, .answer = ngram_answer, .destroy = ngram_destroy};

/* Does the file name its token mode before \data\ (a "\s2s-tok:" line, as s2s-lm writes)? */
static int has_recorded_mode(const char *path) {
    FILE *fp = fopen(path, "r");
    if (!fp) return 0;
    char line[512];
    int found = 0;
    for (int i = 0; i < 1000 && fgets(line, sizeof line, fp); i++) {
        if (strstr(line, "\\s2s-tok:")) {
            found = 1;
            break;
        }
        if (!strncmp(line, "\\data\\", 6)) break;
    }
    fclose(fp);
    return found;
}

static int parse_opts(ngram_be *g, const char *spec, const char *opts, s2s_err *err) {
    if (!opts || !*opts) return 0;
    char *dup = strdup(opts), *save = NULL;
    if (!dup) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    int rc = 0;
    for (char *kv = strtok_r(dup, "&", &save); kv && !rc; kv = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(kv, '=');
        char *end = NULL;
        if (!eq) {
            rc = s2s_err_set(err, S2S_EINVAL, "--lm '%s': option '%s' needs a value", spec, kv);
            break;
        }
        *eq = 0;
        double v = strtod(eq + 1, &end);
        if (!*(eq + 1) || *end) {
            rc = s2s_err_set(err, S2S_EINVAL, "--lm '%s': option %s: '%s' is not a number", spec,
                             kv, eq + 1);
        } else if (!strcmp(kv, "cache")) {
            if (!(v >= 0 && v < 1))
                rc = s2s_err_set(err, S2S_EINVAL, "--lm '%s': cache weight must be in [0,1)", spec);
            g->cache = v;
        } else if (!strcmp(kv, "eos")) {
            g->eos = v != 0;
        } else {
            rc = s2s_err_set(err, S2S_EINVAL, "--lm '%s': unknown option '%s' (cache=L, eos=0|1)",
                             spec, kv);
        }
    }
    free(dup);
    return rc;
}

s2s_backend *s2s_backend_ngram_open(const char *spec, const char *kind, const char *path,
                                    const char *opts, s2s_err *err) {
    ngram_be *g = calloc(1, sizeof *g);
    char *list = strdup(path);
    if (!g || !list) {
        free(g);
        free(list);
        s2s_err_set(err, S2S_ENOMEM, "out of memory");
        return NULL;
    }
    if (parse_opts(g, spec, opts, err)) goto fail;
    /* "a.arpa,b.arpa": a text model and a unit model; the identity hashes both files */
    s2s_sha256 ctx;
    s2s_sha256_init(&ctx);
    char first_sha[65] = "", hex[65];
    char *save = NULL;
    for (char *p = strtok_r(list, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        if (g->nm == 2) {
            s2s_err_set(err, S2S_EINVAL, "--lm '%s': at most two models (text,units)", spec);
            goto fail;
        }
        ngram_model *m = &g->m[g->nm];
        char sha[65];
        if (s2s_sha256_file(p, sha, err)) goto fail;
        if (g->nm == 0) memcpy(first_sha, sha, sizeof sha);
        s2s_sha256_update(&ctx, sha, 64);
        if (!(m->path = strdup(p))) {
            s2s_err_set(err, S2S_ENOMEM, "out of memory");
            goto fail;
        }
        if (!(m->lm = s2s_lm_load_arpa(p, err))) goto fail;
        m->recorded_mode = has_recorded_mode(p);
        g->nm++;
    }
    if (g->nm == 0) {
        s2s_err_set(err, S2S_EINVAL, "--lm '%s': no model file", spec);
        goto fail;
    }
    if (g->nm == 2 && (s2s_lm_tok_mode(g->m[0].lm) == S2S_TOK_UNITS) ==
                          (s2s_lm_tok_mode(g->m[1].lm) == S2S_TOK_UNITS)) {
        s2s_err_set(err, S2S_EINVAL,
                    "--lm '%s': two models must be one text model and one unit model", spec);
        goto fail;
    }
    if (g->nm == 1) {
        memcpy(hex, first_sha, sizeof hex);
    } else {
        unsigned char d[32];
        s2s_sha256_final(&ctx, d);
        for (int i = 0; i < 32; i++)
            snprintf(hex + 2 * i, 3, "%02x", d[i]);
    }
    free(list);
    return s2s_backend_new(!strcmp(kind, "arpa") ? &arpa_ops : &ngram_ops, g, spec, hex, err);
fail:
    free(list);
    ngram_destroy(g);
    return NULL;
}

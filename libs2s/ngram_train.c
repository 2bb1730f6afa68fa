/* ngram_train.c — training the n-gram model with interpolated modified Kneser-Ney
 * (Chen & Goodman 1998, as KenLM's lmplz estimates it; see docs/ngram.md for the formulas).
 *
 * Counts: the highest order keeps raw counts; every lower order k keeps continuation counts
 * N1+(. g) (number of distinct tokens seen before g), except k-grams that begin with <s>, which
 * keep raw counts (nothing can precede <s>). Discounts D1, D2, D3+ per order come from the
 * count-of-counts n1..n4 of those adjusted counts. The unigram level interpolates with the uniform
 * distribution over the vocabulary (every token seen, </s> and <unk>; not <s>), which is where
 * <unk> gets its probability: gamma(empty) / |V|. */
#include "ngram_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Count table of one order: open addressing over id sequences. */
typedef struct ng_ctab {
    int n;
    uint32_t *ids; /* n per entry */
    uint64_t *cnt;
    size_t len, cap;
    uint32_t *slot; /* entry + 1, 0 = empty */
    size_t mask;
} ng_ctab;

struct s2s_lm_trainer {
    int order;
    s2s_tok_mode mode;
    ng_vocab vocab;
    uint32_t bos, eos, unk;
    ng_ctab tab[S2S_NGRAM_MAX_ORDER + 1];
    double disc[S2S_NGRAM_MAX_ORDER + 1][3];
    int fixed[S2S_NGRAM_MAX_ORDER + 1];
    uint32_t *seq;
    size_t seqcap;
    size_t sentences;
};

static int ct_init(ng_ctab *t, int n, s2s_err *err) {
    memset(t, 0, sizeof *t);
    t->n = n;
    t->mask = 1023;
    t->slot = calloc(t->mask + 1, sizeof *t->slot);
    if (!t->slot) return s2s_err_set(err, S2S_ENOMEM, "n-gram training: out of memory");
    return 0;
}

static void ct_free(ng_ctab *t) {
    free(t->ids);
    free(t->cnt);
    free(t->slot);
    memset(t, 0, sizeof *t);
}

static int64_t ct_find(const ng_ctab *t, const uint32_t *ids) {
    size_t i = ng_hash(ids, t->n) & t->mask;
    for (;;) {
        uint32_t x = t->slot[i];
        if (!x) return -1;
        if (memcmp(t->ids + (size_t)(x - 1) * t->n, ids, (size_t)t->n * sizeof *ids) == 0)
            return x - 1;
        i = (i + 1) & t->mask;
    }
}

/* Adds inc to the count of ids (inserting it); returns the entry index or negative. */
static int64_t ct_add(ng_ctab *t, const uint32_t *ids, uint64_t inc, s2s_err *err) {
    int64_t k = ct_find(t, ids);
    if (k >= 0) {
        t->cnt[k] += inc;
        return k;
    }
    if (t->len >= UINT32_MAX - 1)
        return s2s_err_set(err, S2S_EUNSUP, "n-gram training: too many %d-grams", t->n);
    if ((t->len + 1) * 2 > t->mask + 1) {
        size_t nm = (t->mask + 1) * 2 - 1;
        uint32_t *ns = calloc(nm + 1, sizeof *ns);
        if (!ns) return s2s_err_set(err, S2S_ENOMEM, "n-gram training: out of memory");
        for (size_t e = 0; e < t->len; e++) {
            size_t i = ng_hash(t->ids + e * t->n, t->n) & nm;
            while (ns[i])
                i = (i + 1) & nm;
            ns[i] = (uint32_t)e + 1;
        }
        free(t->slot);
        t->slot = ns, t->mask = nm;
    }
    if (t->len == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 1024;
        uint32_t *ni = realloc(t->ids, cap * (size_t)(t->n ? t->n : 1) * sizeof *ni);
        if (!ni) return s2s_err_set(err, S2S_ENOMEM, "n-gram training: out of memory");
        t->ids = ni;
        uint64_t *nc = realloc(t->cnt, cap * sizeof *nc);
        if (!nc) return s2s_err_set(err, S2S_ENOMEM, "n-gram training: out of memory");
        t->cnt = nc;
        t->cap = cap;
    }
    size_t e = t->len++;
    memcpy(t->ids + e * t->n, ids, (size_t)t->n * sizeof *ids);
    t->cnt[e] = inc;
    size_t i = ng_hash(ids, t->n) & t->mask;
    while (t->slot[i])
        i = (i + 1) & t->mask;
    t->slot[i] = (uint32_t)e + 1;
    return (int64_t)e;
}

void s2s_lm_trainer_free(s2s_lm_trainer *t) {
    if (!t) return;
    for (int k = 0; k <= S2S_NGRAM_MAX_ORDER; k++)
        ct_free(&t->tab[k]);
    ng_vocab_free(&t->vocab);
    free(t->seq);
    free(t);
}

s2s_lm_trainer *s2s_lm_trainer_new(int order, s2s_tok_mode mode, s2s_err *err) {
    if (order < 1 || order > S2S_NGRAM_MAX_ORDER) {
        s2s_err_set(err, S2S_EINVAL, "n-gram order %d out of range 1..%d", order,
                    S2S_NGRAM_MAX_ORDER);
        return NULL;
    }
    if (mode != S2S_TOK_WORDS && mode != S2S_TOK_CHARS && mode != S2S_TOK_UNITS) {
        s2s_err_set(err, S2S_EINVAL, "unknown token mode %d", (int)mode);
        return NULL;
    }
    s2s_lm_trainer *t = calloc(1, sizeof *t);
    if (!t) {
        s2s_err_set(err, S2S_ENOMEM, "n-gram training: out of memory");
        return NULL;
    }
    t->order = order;
    t->mode = mode;
    if (ng_vocab_init(&t->vocab, err) < 0) goto fail;
    for (int k = 1; k <= order; k++)
        if (ct_init(&t->tab[k], k, err) < 0) goto fail;
    /* Fixed ids: <s> 0, </s> 1, <unk> 2. */
    if (ng_vocab_intern(&t->vocab, "<s>", err) < 0 || ng_vocab_intern(&t->vocab, "</s>", err) < 0 ||
        ng_vocab_intern(&t->vocab, "<unk>", err) < 0)
        goto fail;
    t->bos = 0, t->eos = 1, t->unk = 2;
    return t;
fail:
    s2s_lm_trainer_free(t);
    return NULL;
}

int s2s_lm_trainer_set_discounts(s2s_lm_trainer *t, int n, double d1, double d2, double d3,
                                 s2s_err *err) {
    if (n < 1 || n > t->order) return s2s_err_set(err, S2S_EINVAL, "discount order %d", n);
    if (!(d1 >= 0 && d1 <= 1 && d2 >= 0 && d2 <= 2 && d3 >= 0 && d3 <= 3))
        return s2s_err_set(err, S2S_EINVAL, "discounts %g %g %g out of range", d1, d2, d3);
    t->disc[n][0] = d1, t->disc[n][1] = d2, t->disc[n][2] = d3;
    t->fixed[n] = 1;
    return 0;
}

int s2s_lm_trainer_add(s2s_lm_trainer *t, const char *line, s2s_err *err) {
    char **toks;
    long nt = s2s_ngram_tokenize(line, t->mode, &toks, err);
    if (nt < 0) return (int)nt;
    int rc = 0;
    if (nt == 0) goto done; /* an empty line is not a sentence */
    if ((size_t)nt + 2 > t->seqcap) {
        size_t cap = (size_t)nt + 64;
        uint32_t *ns = realloc(t->seq, cap * sizeof *ns);
        if (!ns) {
            rc = s2s_err_set(err, S2S_ENOMEM, "n-gram training: out of memory");
            goto done;
        }
        t->seq = ns, t->seqcap = cap;
    }
    size_t len = 0;
    t->seq[len++] = t->bos;
    for (long i = 0; i < nt; i++) { /* before interning anything: no word without counts */
        if (strcmp(toks[i], "<s>") == 0 || strcmp(toks[i], "</s>") == 0) {
            rc = s2s_err_set(err, S2S_EDATA, "token %s is reserved (sentence boundary)", toks[i]);
            goto done;
        }
    }
    for (long i = 0; i < nt; i++) {
        int64_t id = ng_vocab_intern(&t->vocab, toks[i], err);
        if (id < 0) {
            rc = (int)id;
            goto done;
        }
        t->seq[len++] = (uint32_t)id;
    }
    t->seq[len++] = t->eos;
    /* Every token after <s> ends one n-gram: the full order where the sentence is long enough,
     * else the shorter one that begins with <s>. */
    for (size_t i = 1; i < len; i++) {
        int k = (size_t)t->order < i + 1 ? t->order : (int)(i + 1);
        if ((rc = (int)ct_add(&t->tab[k], t->seq + i + 1 - k, 1, err)) < 0) goto done;
    }
    t->sentences++;
    rc = 0;
done:
    s2s_tokens_free(toks, nt > 0 ? (size_t)nt : 0);
    return rc;
}

static double disc_of(const double d[3], uint64_t c) {
    return c == 0 ? 0 : c == 1 ? d[0] : c == 2 ? d[1] : d[2];
}

/* Discounts from count-of-counts: Y = n1/(n1+2n2), Dk = k - (k+1) Y n(k+1)/nk. On small corpora
 * the estimate can be undefined (nk = 0) or reach the ends of its range (e.g. D2 = 2 when n3 = 0,
 * which would leave every count-2 n-gram no probability of its own); a Dk outside (0, k) is
 * replaced by Ney's single absolute discount Y, or 0.5 if Y is not in (0, k) either. */
static void estimate_discounts(const ng_ctab *t, double d[3]) {
    double nc[5] = {0};
    for (size_t e = 0; e < t->len; e++) {
        uint64_t c = t->cnt[e];
        if (c >= 1 && c <= 4) nc[c]++;
    }
    double y = nc[1] + 2 * nc[2] > 0 ? nc[1] / (nc[1] + 2 * nc[2]) : 0;
    for (int k = 1; k <= 3; k++) {
        double v = nc[k] > 0 ? k - (k + 1) * y * nc[k + 1] / nc[k] : NAN;
        if (!(v > 0 && v < k)) v = (y > 0 && y < k) ? y : 0.5;
        d[k - 1] = v;
    }
}

/* Per-history statistics of one order: sum of counts and how many continuations have count 1,
 * 2, 3+. Indexed like the history's entry in a ctab of order n-1. */
typedef struct ng_hist {
    ng_ctab keys; /* cnt = sum of counts */
    uint64_t (*nk)[3];
    double *gamma;
} ng_hist;

s2s_lm *s2s_lm_trainer_finish(s2s_lm_trainer *t, s2s_err *err) {
    int N = t->order;
    s2s_lm *lm = NULL;
    double *prob[S2S_NGRAM_MAX_ORDER + 1] = {0};
    ng_hist hist[S2S_NGRAM_MAX_ORDER + 1];
    memset(hist, 0, sizeof hist);
    if (t->sentences == 0) {
        s2s_err_set(err, S2S_EDATA, "n-gram training: no sentences (empty text)");
        goto fail;
    }
    /* Continuation counts: every distinct (k+1)-gram adds one to its k-suffix. */
    for (int k = N - 1; k >= 1; k--) {
        ng_ctab *up = &t->tab[k + 1];
        for (size_t e = 0; e < up->len; e++)
            if (ct_add(&t->tab[k], up->ids + e * up->n + 1, 1, err) < 0) goto fail;
    }
    if (ct_add(&t->tab[1], &t->unk, 0, err) < 0) goto fail; /* <unk> in the vocabulary */
    if (ct_add(&t->tab[1], &t->eos, 0, err) < 0) goto fail;
    for (int k = 1; k <= N; k++)
        if (!t->fixed[k]) estimate_discounts(&t->tab[k], t->disc[k]);

    /* History statistics of every order (order 1: the empty history, one entry). */
    for (int k = 1; k <= N; k++) {
        ng_hist *h = &hist[k];
        if (ct_init(&h->keys, k - 1, err) < 0) goto fail;
        const ng_ctab *tb = &t->tab[k];
        for (size_t e = 0; e < tb->len; e++) {
            uint64_t c = tb->cnt[e];
            if (ct_add(&h->keys, tb->ids + e * k, c, err) < 0) goto fail;
        }
        h->nk = calloc(h->keys.len + 1, sizeof *h->nk);
        h->gamma = calloc(h->keys.len + 1, sizeof *h->gamma);
        if (!h->nk || !h->gamma) {
            s2s_err_set(err, S2S_ENOMEM, "n-gram training: out of memory");
            goto fail;
        }
        for (size_t e = 0; e < tb->len; e++) {
            uint64_t c = tb->cnt[e];
            if (!c) continue;
            int64_t hi = ct_find(&h->keys, tb->ids + e * k);
            h->nk[hi][c >= 3 ? 2 : c - 1]++;
        }
        for (size_t j = 0; j < h->keys.len; j++) {
            double s = (double)h->keys.cnt[j];
            const double *d = t->disc[k];
            h->gamma[j] = s > 0 ? (d[0] * (double)h->nk[j][0] + d[1] * (double)h->nk[j][1] +
                                   d[2] * (double)h->nk[j][2]) /
                                      s
                                : 1.0;
        }
    }

    /* Interpolated probabilities, lower orders first. */
    for (int k = 1; k <= N; k++) {
        const ng_ctab *tb = &t->tab[k];
        prob[k] = malloc((tb->len + 1) * sizeof *prob[k]);
        if (!prob[k]) {
            s2s_err_set(err, S2S_ENOMEM, "n-gram training: out of memory");
            goto fail;
        }
        for (size_t e = 0; e < tb->len; e++) {
            const uint32_t *ids = tb->ids + e * k;
            uint64_t c = tb->cnt[e];
            int64_t hi = ct_find(&hist[k].keys, ids);
            double s = (double)hist[k].keys.cnt[hi];
            double own = s > 0 ? ((double)c - disc_of(t->disc[k], c)) / s : 0;
            double lower;
            if (k == 1) {
                lower = 1.0 / (double)tb->len; /* uniform over the vocabulary (no <s> in tab[1]) */
            } else {
                int64_t le = ct_find(&t->tab[k - 1], ids + 1);
                if (le < 0) {
                    s2s_err_set(err, S2S_EDATA, "n-gram training: internal error (no suffix)");
                    goto fail;
                }
                lower = prob[k - 1][le];
            }
            prob[k][e] = own + hist[k].gamma[hi] * lower;
        }
    }

    /* The model: 1-grams (<s> with -99 as SRILM and KenLM write it), then every order. */
    lm = ng_lm_new(err);
    if (!lm) goto fail;
    ng_vocab_free(&lm->vocab);
    lm->vocab = t->vocab; /* moved */
    memset(&t->vocab, 0, sizeof t->vocab);
    lm->order = N;
    lm->mode = t->mode;
    lm->mode_known = 1;
    lm->bos = t->bos, lm->eos = t->eos, lm->unk = t->unk;
    for (int k = 1; k <= N; k++)
        for (int j = 0; j < 3; j++)
            lm->disc[k][j] = t->disc[k][j];
    {
        double bow = 0;
        int has = 0;
        if (N > 1) {
            int64_t hi = ct_find(&hist[2].keys, &t->bos);
            if (hi >= 0) bow = ng_round(log10(hist[2].gamma[hi])), has = 1;
        }
        if (ng_lm_add(lm, &t->bos, 1, -99, bow, has, err) < 0) goto fail;
    }
    for (int k = 1; k <= N; k++) {
        const ng_ctab *tb = &t->tab[k];
        for (size_t e = 0; e < tb->len; e++) {
            const uint32_t *ids = tb->ids + e * k;
            double bow = 0;
            int has = 0;
            if (k < N) {
                int64_t hi = ct_find(&hist[k + 1].keys, ids);
                if (hi >= 0) bow = ng_round(log10(hist[k + 1].gamma[hi])), has = 1;
            }
            if (ng_lm_add(lm, ids, k, ng_round(log10(prob[k][e])), bow, has, err) < 0) goto fail;
        }
    }
    if (ng_lm_index(lm, err) < 0) goto fail;
    goto done;
fail:
    s2s_lm_free(lm);
    lm = NULL;
done:
    for (int k = 0; k <= S2S_NGRAM_MAX_ORDER; k++) {
        free(prob[k]);
        ct_free(&hist[k].keys);
        free(hist[k].nk);
        free(hist[k].gamma);
    }
    s2s_lm_trainer_free(t);
    return lm;
}

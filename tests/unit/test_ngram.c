/* test_ngram.c — the built-in n-gram model (libs2s/ngram.c, ngram_train.c, ngram_tok.c):
 * Kneser-Ney probabilities against a hand computation, normalisation for orders 1..4, ARPA round
 * trips, tokenization, and errors on malformed ARPA files. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <zlib.h>

#include "s2s/ngram.h"

/* ---- helpers --------------------------------------------------------------------------------- */
static s2s_lm *train(int order, const char *const *lines, size_t n, const double *fixed) {
    s2s_err err;
    s2s_err_clear(&err);
    s2s_lm_trainer *t = s2s_lm_trainer_new(order, S2S_TOK_WORDS, &err);
    assert_non_null(t);
    if (fixed)
        for (int k = 1; k <= order; k++)
            assert_int_equal(s2s_lm_trainer_set_discounts(t, k, fixed[0], fixed[1], fixed[2], &err),
                             0);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(s2s_lm_trainer_add(t, lines[i], &err), 0);
    s2s_lm *lm = s2s_lm_trainer_finish(t, &err);
    if (!lm) fail_msg("finish: %s", err.msg);
    return lm;
}

/* Natural-log probability of one token w after the context (space-separated words, may be ""). */
static double lp(const s2s_lm *lm, const char *ctx, const char *w) {
    char buf[1024];
    const char *toks[64];
    size_t n = 0;
    snprintf(buf, sizeof buf, "%s", ctx);
    for (char *save, *t = strtok_r(buf, " ", &save); t; t = strtok_r(NULL, " ", &save))
        toks[n++] = t;
    double nll;
    size_t ntok, oov;
    s2s_err err;
    s2s_err_clear(&err);
    int rc = s2s_lm_score(lm, toks, n, &w, 1, 0, &nll, &ntok, &oov, &err);
    if (rc) fail_msg("score: %s", err.msg);
    assert_int_equal(ntok, 1);
    return -nll;
}

/* ARPA stores log10 with 7 significant digits: compare in log space with that precision. */
#define assert_prob(lm, ctx, w, p)                                                                 \
    do {                                                                                           \
        double got_ = lp(lm, ctx, w), want_ = log(p);                                              \
        if (fabs(got_ - want_) > 1e-6)                                                             \
            fail_msg("P(%s | %s) = %.9f, want %.9f", w, ctx, exp(got_), (double)(p));              \
    } while (0)

static char *tmp_path(const char *tag) {
    static char buf[8][256];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 256, "/tmp/test_ngram_%ld_%s.arpa", (long)getpid(), tag);
    return p;
}

static void write_file(const char *path, const char *text) {
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static char *slurp(const char *path, size_t *len) {
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, fp), (size_t)n);
    b[n] = 0;
    fclose(fp);
    *len = (size_t)n;
    return b;
}

/* ---- Kneser-Ney by hand ---------------------------------------------------------------------
 * Corpus (4 sentences): "a b", "a b", "a", "b a"; order 3; discounts fixed at D1 = 0.5,
 * D2 = 1.0, D3+ = 1.5 for every order.
 *
 * Raw 3-grams: <s> a b:2, a b </s>:2, <s> a </s>:1, <s> b a:1, b a </s>:1.
 * 2-grams (adjusted): those starting with <s> keep raw counts: <s> a:3, <s> b:1; the others get
 *   continuation counts (distinct left neighbours in the 3-grams): a b:1 ({<s>}, although seen
 *   twice), b </s>:1 ({a}), a </s>:2 ({<s>, b}), b a:1 ({<s>}).
 * 1-grams (continuation counts over all 2-grams): a:2 (<s> a, b a), b:2 (<s> b, a b),
 *   </s>:2 (b </s>, a </s>), <unk>:0. Vocabulary V = {a, b, </s>, <unk>}, |V| = 4.
 *
 * Order 1: total 6, three counts of 2: gamma0 = D2*3/6 = 0.5.
 *   p1(a) = p1(b) = p1(</s>) = (2-1)/6 + 0.5/4 = 7/24;  p1(<unk>) = 0.5/4 = 3/24.
 * Order 2: history <s>: a:3, b:1, total 4, gamma = (D1*1 + D3*1)/4 = 0.5
 *   p2(a|<s>) = (3-1.5)/4 + 0.5*7/24 = 25/48;  p2(b|<s>) = (1-0.5)/4 + 7/48 = 13/48
 *   p2(</s>|<s>) = 0.5*7/24 = 7/48 (unseen: backoff);  p2(<unk>|<s>) = 0.5*3/24 = 3/48
 * history a: b:1, </s>:2, total 3, gamma = (0.5 + 1.0)/3 = 0.5
 *   p2(b|a) = 0.5/3 + 7/48 = 15/48;  p2(</s>|a) = 1/3 + 7/48 = 23/48;  p2(a|a) = 7/48
 * history b: </s>:1, a:1, total 2, gamma = (0.5*2)/2 = 0.5
 *   p2(</s>|b) = p2(a|b) = 0.5/2 + 7/48 = 19/48;  p2(b|b) = 7/48
 * Order 3: history "<s> a": b:2, </s>:1, total 3, gamma = (0.5 + 1.0)/3 = 0.5
 *   p3(b|<s> a) = (2-1)/3 + 0.5*15/48 = 47/96;  p3(</s>|<s> a) = 0.5/3 + 0.5*23/48 = 39/96
 *   p3(a|<s> a) = 0.5*7/48 = 7/96 (unseen)
 * history "a b": </s>:2, total 2, gamma = 1.0/2 = 0.5:  p3(</s>|a b) = 1/2 + 0.5*19/48 = 67/96
 *   p3(a|a b) = 0.5 * p2(a|b) = 19/96 (unseen 3-gram: backoff weight of "a b" times p2)
 * history "<s> b": a:1, gamma = 0.5:  p3(a|<s> b) = 0.5 + 0.5*19/48 = 67/96
 * history "b a": </s>:1:  p3(</s>|b a) = 0.5 + 0.5*23/48 = 71/96
 * "b b" is no n-gram, so P(a | b b) = p2(a|b) = 19/48 (backoff weight 1).
 * An unknown word is <unk>: P(zzz | <s>) = 3/48. */
static const char *const HAND[] = {"a b", "a b", "a", "b a"};

static void test_kn_hand(void **state) {
    (void)state;
    const double d[3] = {0.5, 1.0, 1.5};
    s2s_lm *lm = train(3, HAND, 4, d);
    assert_int_equal(s2s_lm_order(lm), 3);
    assert_int_equal(s2s_lm_count(lm, 1), 5); /* <s> a b </s> <unk> */
    assert_int_equal(s2s_lm_count(lm, 2), 6);
    assert_int_equal(s2s_lm_count(lm, 3), 5);
    assert_prob(lm, "", "a", 25.0 / 48);
    assert_prob(lm, "", "b", 13.0 / 48);
    assert_prob(lm, "", "</s>", 7.0 / 48);
    assert_prob(lm, "", "zzz", 3.0 / 48);
    assert_prob(lm, "a", "b", 47.0 / 96);
    assert_prob(lm, "a", "</s>", 39.0 / 96);
    assert_prob(lm, "a", "a", 7.0 / 96);
    assert_prob(lm, "a b", "</s>", 67.0 / 96);
    assert_prob(lm, "a b", "a", 19.0 / 96);
    assert_prob(lm, "b", "a", 67.0 / 96);
    assert_prob(lm, "b a", "</s>", 71.0 / 96);
    assert_prob(lm, "b b", "a", 19.0 / 48);
    assert_prob(lm, "x a", "b", 15.0 / 48); /* "x" is <unk>: history "<unk> a" backs off */

    /* A whole sentence with </s>: p2(a|<s>) p3(b|<s> a) p3(</s>|a b). */
    const char *cont[] = {"a", "b"};
    double nll;
    size_t ntok, oov;
    s2s_err err;
    assert_int_equal(s2s_lm_score(lm, NULL, 0, cont, 2, 1, &nll, &ntok, &oov, &err), 0);
    assert_int_equal(ntok, 3);
    assert_int_equal(oov, 0);
    assert_true(fabs(-nll - log(25.0 / 48 * 47.0 / 96 * 67.0 / 96)) < 1e-6);
    const char *cont2[] = {"q", "a"};
    assert_int_equal(s2s_lm_score(lm, NULL, 0, cont2, 2, 0, &nll, &ntok, &oov, &err), 0);
    assert_int_equal(oov, 1);
    assert_int_equal(ntok, 2);
    s2s_lm_free(lm);
}

/* Discounts estimated from count-of-counts on the same corpus (Y = n1/(n1+2n2),
 * Dk = k - (k+1) Y n(k+1)/nk; undefined or outside (0, k) -> Y, or 0.5 if Y is not in (0, k)):
 * order 3: counts {2,2,1,1,1}: n1=3 n2=2 n3=0: Y=3/7, D1 = 1-2(3/7)(2/3) = 3/7,
 *          D2 = 2-3(3/7)(0/2) = 2 (not < 2) -> Y = 3/7, D3 undefined (n3=0) -> 3/7
 * order 2: counts {3,1,1,1,2,1}: n1=4 n2=1 n3=1 n4=0: Y=2/3, D1 = 1-2(2/3)(1/4) = 2/3,
 *          D2 = 2-3(2/3)(1/1) = 0 -> Y = 2/3, D3 = 3-4(2/3)(0) = 3 -> 2/3
 * order 1: counts {2,2,2}: n1=0 -> Y=0; D1 undefined, D2 = 2, D3 undefined: all -> 0.5 */
static void test_kn_discounts(void **state) {
    (void)state;
    s2s_lm *lm = train(3, HAND, 4, NULL);
    const double want[4][3] = {
        {0}, {0.5, 0.5, 0.5}, {2.0 / 3, 2.0 / 3, 2.0 / 3}, {3.0 / 7, 3.0 / 7, 3.0 / 7}};
    for (int n = 1; n <= 3; n++)
        for (int k = 1; k <= 3; k++)
            if (fabs(s2s_lm_discount(lm, n, k) - want[n][k - 1]) > 1e-12)
                fail_msg("D%d of order %d = %g, want %g", k, n, s2s_lm_discount(lm, n, k),
                         want[n][k - 1]);
    s2s_lm_free(lm);
}

/* ---- normalisation ------------------------------------------------------------------------- */
static uint32_t lcg(uint32_t *s) {
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

/* A deterministic pseudo-random corpus over 25 words with a skewed (Zipf-like) distribution and
 * some repeated phrases, so that every order has counts of 1, 2, 3 and more. */
static char **make_corpus(size_t n, uint32_t seed) {
    static const char *const words[] = {"the", "cat", "dog",   "sat", "on",   "mat",  "a",
                                        "ran", "to",  "big",   "red", "ate",  "fish", "and",
                                        "it",  "was", "happy", "sad", "home", "went", "saw",
                                        "he",  "she", "then",  "."};
    char **lines = calloc(n, sizeof *lines);
    assert_non_null(lines);
    for (size_t i = 0; i < n; i++) {
        char buf[512] = "";
        size_t len = 2 + lcg(&seed) % 9;
        for (size_t k = 0; k < len; k++) {
            uint32_t r = lcg(&seed) % 1000;
            size_t w = r < 300 ? r % 3 : r < 600 ? 3 + r % 5 : 8 + r % 17;
            strcat(buf, k ? " " : "");
            strcat(buf, words[w]);
        }
        lines[i] = strdup(buf);
    }
    return lines;
}

static void free_corpus(char **lines, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(lines[i]);
    free(lines);
}

static void test_sums_to_one(void **state) {
    (void)state;
    const size_t N = 300;
    char **corpus = make_corpus(N, 7);
    const char *hist[] = {
        "",        "the",         "the cat",         "cat sat on", "zzz",
        "the zzz", "sat the cat", "he went home to", ". .",        "red fish and it was"};
    for (int order = 1; order <= 4; order++) {
        s2s_lm *lm = train(order, (const char *const *)corpus, N, NULL);
        for (size_t h = 0; h < sizeof hist / sizeof *hist; h++) {
            double sum = 0;
            for (size_t v = 0; v < s2s_lm_vocab_size(lm); v++) {
                const char *w = s2s_lm_vocab_word(lm, v);
                if (strcmp(w, "<s>") == 0) continue; /* never predicted */
                sum += exp(lp(lm, hist[h], w));
            }
            if (fabs(sum - 1) > 1e-5)
                fail_msg("order %d, history \"%s\": probabilities sum to %.9f", order, hist[h],
                         sum);
        }
        s2s_lm_free(lm);
    }
    free_corpus(corpus, N);
}

/* ---- concurrent readers --------------------------------------------------------------------- */
typedef struct par_job {
    const s2s_lm *lm;
    char **corpus;
    size_t n;
    double sum;
} par_job;

static void *par_score(void *arg) {
    par_job *j = arg;
    s2s_err err;
    for (int rep = 0; rep < 20; rep++) {
        double total = 0;
        for (size_t i = 0; i < j->n; i++) {
            char **toks;
            long nt = s2s_ngram_tokenize(j->corpus[i], S2S_TOK_WORDS, &toks, &err);
            double nll;
            if (nt < 0 || s2s_lm_score(j->lm, (const char *const *)toks, (size_t)nt / 2,
                                       (const char *const *)toks + nt / 2,
                                       (size_t)nt - (size_t)nt / 2, 1, &nll, NULL, NULL, &err))
                total = NAN;
            else
                total += nll;
            s2s_tokens_free(toks, nt > 0 ? (size_t)nt : 0);
        }
        if (rep && total != j->sum)
            j->sum = NAN; /* every pass must give the same bits */
        else
            j->sum = total;
    }
    return NULL;
}

/* One model, four threads scoring at once: the same results as one thread alone. */
static void test_concurrent_readers(void **state) {
    (void)state;
    const size_t N = 200;
    char **corpus = make_corpus(N, 5);
    s2s_lm *lm = train(4, (const char *const *)corpus, N, NULL);
    par_job alone = {lm, corpus, N, 0};
    par_score(&alone);
    assert_true(isfinite(alone.sum) && alone.sum > 0);
    pthread_t th[4];
    par_job jobs[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (par_job){lm, corpus, N, 0};
        assert_int_equal(pthread_create(&th[i], NULL, par_score, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_true(jobs[i].sum == alone.sum);
    }
    s2s_lm_free(lm);
    free_corpus(corpus, N);
}

/* ---- ARPA round trip ------------------------------------------------------------------------- */
static void test_arpa_roundtrip(void **state) {
    (void)state;
    const size_t N = 200;
    char **corpus = make_corpus(N, 11);
    s2s_err err;
    s2s_err_clear(&err);
    for (int order = 1; order <= 4; order++) {
        s2s_lm *lm = train(order, (const char *const *)corpus, N, NULL);
        const char *p1 = tmp_path("rt1"), *p2 = tmp_path("rt2");
        FILE *fp = fopen(p1, "w");
        assert_non_null(fp);
        assert_int_equal(s2s_lm_write_arpa(lm, fp, &err), 0);
        fclose(fp);
        s2s_lm *back = s2s_lm_load_arpa(p1, &err);
        if (!back) fail_msg("load: %s", err.msg);
        assert_int_equal(s2s_lm_order(back), order);
        assert_int_equal(s2s_lm_tok_mode(back), S2S_TOK_WORDS);
        assert_int_equal(s2s_lm_tok_mode_known(back), 1);
        assert_int_equal(s2s_lm_has_unk(back), 1);
        for (int n = 1; n <= order; n++)
            assert_int_equal(s2s_lm_count(back, n), s2s_lm_count(lm, n));
        /* Identical probabilities: the trained model holds exactly what the file says. */
        for (size_t i = 0; i < 40; i++) {
            char **toks;
            long nt = s2s_ngram_tokenize(corpus[(i * 7) % N], S2S_TOK_WORDS, &toks, &err);
            assert_true(nt > 0);
            const char *alt[] = {"zzz", toks[0]};
            double a, b;
            size_t na, nb;
            assert_int_equal(s2s_lm_score(lm, alt, 2, (const char *const *)toks, (size_t)nt, 1, &a,
                                          &na, NULL, &err),
                             0);
            assert_int_equal(s2s_lm_score(back, alt, 2, (const char *const *)toks, (size_t)nt, 1,
                                          &b, &nb, NULL, &err),
                             0);
            assert_true(a == b);
            assert_int_equal(na, nb);
            s2s_tokens_free(toks, (size_t)nt);
        }
        /* Identical bytes on rewrite. */
        fp = fopen(p2, "w");
        assert_non_null(fp);
        assert_int_equal(s2s_lm_write_arpa(back, fp, &err), 0);
        fclose(fp);
        size_t l1, l2;
        char *b1 = slurp(p1, &l1), *b2 = slurp(p2, &l2);
        assert_int_equal(l1, l2);
        assert_memory_equal(b1, b2, l1);
        /* Deterministic order: 1-grams sorted by their strings. */
        char *u = strstr(b1, "\\1-grams:\n");
        assert_non_null(u);
        char prev[64] = "";
        for (char *line = strchr(u, '\n') + 1; *line && *line != '\n';
             line = strchr(line, '\n') + 1) {
            char w[64];
            assert_int_equal(sscanf(line, "%*s %63s", w), 1);
            assert_true(strcmp(prev, w) < 0);
            strcpy(prev, w);
        }
        free(b1);
        free(b2);
        s2s_lm_free(back);
        s2s_lm_free(lm);
        unlink(p1);
        unlink(p2);
    }
    free_corpus(corpus, N);
}

/* gzip-compressed ARPA files are read like plain ones; a truncated one is an error. */
static void test_arpa_gzip(void **state) {
    (void)state;
    s2s_lm *lm = train(3, HAND, 4, NULL);
    const char *plain = tmp_path("gz-plain"), *gz = tmp_path("gz"), *cut = tmp_path("gz-cut");
    s2s_err err;
    FILE *fp = fopen(plain, "w");
    assert_int_equal(s2s_lm_write_arpa(lm, fp, &err), 0);
    fclose(fp);
    size_t len;
    char *text = slurp(plain, &len);
    gzFile g = gzopen(gz, "wb");
    assert_non_null(g);
    assert_int_equal(gzwrite(g, text, (unsigned)len), (int)len);
    gzclose(g);
    s2s_lm *back = s2s_lm_load_arpa(gz, &err);
    if (!back) fail_msg("gz: %s", err.msg);
    assert_true(lp(back, "a", "b") == lp(lm, "a", "b"));
    assert_int_equal(s2s_lm_count(back, 3), 5);
    s2s_lm_free(back);
    size_t glen;
    char *gzbytes = slurp(gz, &glen);
    fp = fopen(cut, "wb");
    fwrite(gzbytes, 1, glen / 2, fp);
    fclose(fp);
    assert_null(s2s_lm_load_arpa(cut, &err));
    assert_int_equal(err.code, S2S_EFORMAT);
    if (!strstr(err.msg, cut)) fail_msg("truncated gz: %s", err.msg);
    free(text);
    free(gzbytes);
    s2s_lm_free(lm);
    unlink(plain);
    unlink(gz);
    unlink(cut);
}

/* A hand-written ARPA file in another tool's style (IRSTLM count lines, no <unk>, backoff
 * missing on some lines): read, scored by the backoff rule, rewritten, mode comment honoured. */
static void test_arpa_foreign(void **state) {
    (void)state;
    const char *p = tmp_path("foreign");
    write_file(p, "some header text\n"
                  "# \\s2s-tok: units\n"
                  "\\data\\\n"
                  "ngram  1=      4\n"
                  "ngram 2=2\n"
                  "\n"
                  "\\1-grams:\n"
                  "-99\t<s>\t-0.30103\n"
                  "-0.5\t</s>\n"
                  "-0.60206 7\t-0.1\n"
                  "-1  12\n"
                  "\n"
                  "\\2-grams:\n"
                  "-0.2\t<s> 7\n"
                  "-0.1\t7 12\n"
                  "\n"
                  "\\end\\\n");
    s2s_err err;
    s2s_err_clear(&err);
    s2s_lm *lm = s2s_lm_load_arpa(p, &err);
    if (!lm) fail_msg("load: %s", err.msg);
    assert_int_equal(s2s_lm_tok_mode(lm), S2S_TOK_UNITS);
    assert_int_equal(s2s_lm_tok_mode_known(lm), 1);
    assert_int_equal(s2s_lm_order(lm), 2);
    assert_int_equal(s2s_lm_has_unk(lm), 0);
    assert_true(fabs(lp(lm, "", "7") - (-0.2 * M_LN10)) < 1e-12);
    assert_true(fabs(lp(lm, "7", "12") - (-0.1 * M_LN10)) < 1e-12);
    assert_true(fabs(lp(lm, "7", "7") - (-0.1 - 0.60206) * M_LN10) < 1e-12); /* bow(7) p(7) */
    assert_true(fabs(lp(lm, "12", "7") - (-0.60206 * M_LN10)) < 1e-12);      /* no bow(12) */
    assert_true(fabs(lp(lm, "", "12") - (-0.30103 - 1) * M_LN10) < 1e-12);
    /* OOV without <unk>: an error naming the token. */
    const char *w = "99";
    double nll;
    assert_int_equal(s2s_lm_score(lm, NULL, 0, &w, 1, 0, &nll, NULL, NULL, &err), S2S_EDATA);
    assert_non_null(strstr(err.msg, "\"99\""));
    /* Perplexity leaves such OOVs out, as SRILM does: "7 99" -> p(7|<s>) p(</s>|99 -> 1-gram). */
    const char *text = "7 99\n\n";
    FILE *fp = fmemopen((void *)text, strlen(text), "r");
    s2s_lm_ppl st;
    assert_int_equal(s2s_lm_perplexity_ex(lm, fp, &st, &err), 0);
    fclose(fp);
    assert_int_equal(st.sentences, 1);
    assert_int_equal(st.words, 2);
    assert_int_equal(st.oov, 1);
    assert_int_equal(st.scored, 2);
    assert_true(fabs(st.logprob10 - (-0.2 - 0.5)) < 1e-12);
    assert_true(fabs(st.ppl - pow(10, 0.35)) < 1e-9);
    s2s_lm_free(lm);
    unlink(p);
}

/* ---- malformed ARPA ------------------------------------------------------------------------- */
static void expect_arpa_error(const char *text, const char *want) {
    const char *p = tmp_path("bad");
    write_file(p, text);
    s2s_err err;
    s2s_err_clear(&err);
    s2s_lm *lm = s2s_lm_load_arpa(p, &err);
    if (lm) fail_msg("loaded a bad file; expected \"%s\"", want);
    assert_int_equal(err.code, S2S_EFORMAT);
    if (!strstr(err.msg, want)) fail_msg("message \"%s\" lacks \"%s\"", err.msg, want);
    if (!strstr(err.msg, p)) fail_msg("message \"%s\" does not name the file", err.msg);
    unlink(p);
}

#define HEAD "\\data\\\nngram 1=3\nngram 2=1\n\n\\1-grams:\n-99\t<s>\t-0.1\n-0.5\t</s>\n-0.5\ta\n\n"
static void test_arpa_errors(void **state) {
    (void)state;
    expect_arpa_error("just text\n", ":1: no \\data\\ line");
    {
        const char *p = tmp_path("nomode");
        write_file(p, HEAD "\\2-grams:\n-0.1\t<s> a\n\\end\\\n");
        s2s_err e;
        s2s_lm *lm = s2s_lm_load_arpa(p, &e);
        assert_non_null(lm);
        assert_int_equal(s2s_lm_tok_mode(lm), S2S_TOK_WORDS);
        assert_int_equal(s2s_lm_tok_mode_known(lm), 0);
        s2s_lm_set_tok_mode(lm, S2S_TOK_UNITS);
        assert_int_equal(s2s_lm_tok_mode_known(lm), 1);
        s2s_lm_free(lm);
        unlink(p);
    }
    expect_arpa_error(HEAD "\\end\\\n", ":10: missing \\2-grams: section");
    expect_arpa_error(HEAD "\\2-grams:\n-0.1\t<s> a\n", ":11: missing \\end\\");
    expect_arpa_error(HEAD "\\2-grams:\n-0.1\t<s> a\n-0.2\ta </s>\n\\end\\\n",
                      ":12: more 2-grams than the 1");
    expect_arpa_error(HEAD "\\2-grams:\n\\end\\\n", ":11: \\2-grams: has 0 entries");
    expect_arpa_error(HEAD "\\2-grams:\n-0.1\t<s>\n\\end\\\n", ":11: too few fields");
    expect_arpa_error(HEAD "\\2-grams:\n-0.1\t<s> a b c\n\\end\\\n", ":11: too many fields");
    expect_arpa_error(HEAD "\\2-grams:\nx\t<s> a\n\\end\\\n", ":11: bad log10 probability");
    expect_arpa_error(HEAD "\\2-grams:\n-0.1\t<s> a\t1e\n\\end\\\n", ":11: bad log10 backoff");
    expect_arpa_error(HEAD "\\2-grams:\n-0.1\t<s> zz\n\\end\\\n", ":11: token \"zz\" of a 2-gram");
    expect_arpa_error("\\data\\\nngram 1=x\n", ":2: bad count line");
    expect_arpa_error("\\data\\\nngram 2=1\n", ":2: ngram 2= after ngram 0=");
    expect_arpa_error("\\data\\\nngrams 1=1\n", ":2: expected \"ngram N=COUNT\"");
    expect_arpa_error("\\data\\\nngram 1=1\n\\3-grams:\n", ":3: section \\3-grams: not declared");
    expect_arpa_error("# \\s2s-tok: bytes\n\\data\\\n", ":1: unknown token mode \"bytes\"");
    expect_arpa_error(
        "\\data\\\nngram 1=4\n\\1-grams:\n-99\t<s>\n-1\t</s>\n-1\ta\n-1\ta\n\\end\\\n",
        "duplicate 1-gram \"a\"");
    expect_arpa_error("\\data\\\nngram 1=1\n\\1-grams:\n-1\ta\n\\end\\\n", "lack <s>");
    expect_arpa_error(HEAD "\\2-grams:\n-0.1\t<s> a\n\\end\\\nmore\n", ":13: text after \\end\\");

    {
        const char *p = tmp_path("nul");
        FILE *fp = fopen(p, "wb");
        fwrite("\\data\\\nngram 1=1\n\\1-grams:\n-1\ta\0b\n\\end\\\n", 1, 40, fp);
        fclose(fp);
        s2s_err e;
        assert_null(s2s_lm_load_arpa(p, &e));
        if (!strstr(e.msg, ":4: NUL byte")) fail_msg("NUL: %s", e.msg);
        unlink(p);
    }
    s2s_err err;
    assert_null(s2s_lm_load_arpa("/nonexistent/x.arpa", &err));
    assert_int_equal(err.code, S2S_EIO);
    assert_non_null(strstr(err.msg, "/nonexistent/x.arpa"));
}

/* Random damage to a valid file (bytes changed, lines dropped or repeated, truncation) must give
 * a model or a format error naming the file — never a crash (run under ASan in CI). */
static void test_arpa_mutations(void **state) {
    (void)state;
    s2s_lm *lm = train(3, HAND, 4, NULL);
    const char *p = tmp_path("mut");
    s2s_err err;
    FILE *fp = fopen(p, "w");
    assert_int_equal(s2s_lm_write_arpa(lm, fp, &err), 0);
    fclose(fp);
    s2s_lm_free(lm);
    size_t len;
    char *orig = slurp(p, &len);
    uint32_t seed = 12345;
    static const char junk[] = " \t\n\\-0123456789.e=abs<>/#";
    int loaded = 0, failed = 0;
    for (int it = 0; it < 400; it++) {
        char *b = malloc(len * 2 + 16);
        assert_non_null(b);
        size_t n = len;
        memcpy(b, orig, len);
        int edits = 1 + (int)(lcg(&seed) % 3);
        for (int e = 0; e < edits && n > 0; e++) {
            size_t at = lcg(&seed) % n;
            switch (lcg(&seed) % 4) {
            case 0:
                b[at] = junk[lcg(&seed) % (sizeof junk - 1)];
                break;
            case 1:
                memmove(b + at, b + at + 1, n - at - 1), n--;
                break;
            case 2:
                n = at;
                break;
            default:
                memmove(b + at + 1, b + at, n - at), b[at] = junk[lcg(&seed) % (sizeof junk - 1)],
                                                     n++;
            }
        }
        fp = fopen(p, "wb");
        fwrite(b, 1, n, fp);
        fclose(fp);
        free(b);
        s2s_lm *m = s2s_lm_load_arpa(p, &err);
        if (m) {
            loaded++;
            const char *toks[] = {"a", "b", "zz"};
            double nll;
            size_t nt;
            int rc = s2s_lm_score(m, toks, 1, toks + 1, 2, 1, &nll, &nt, NULL, &err);
            assert_true(rc == 0 || rc == S2S_EDATA);
            s2s_lm_free(m);
        } else {
            failed++;
            if (err.code != S2S_EFORMAT || !strstr(err.msg, p))
                fail_msg("iteration %d: code %d, message \"%s\"", it, err.code, err.msg);
        }
    }
    assert_true(failed > 100); /* the damage is usually noticed */
    assert_true(loaded > 0);   /* and some is harmless (a changed digit) */
    free(orig);
    unlink(p);
}

/* ---- tokenization ---------------------------------------------------------------------------- */
static char *tok(const char *text, s2s_tok_mode mode) {
    static char out[2048];
    char **t;
    s2s_err err;
    long n = s2s_ngram_tokenize(text, mode, &t, &err);
    if (n < 0) {
        snprintf(out, sizeof out, "ERR:%s", err.msg);
        return out;
    }
    out[0] = 0;
    for (long i = 0; i < n; i++) {
        strcat(out, i ? "|" : "");
        strcat(out, t[i]);
    }
    s2s_tokens_free(t, (size_t)n);
    return out;
}

static void test_tokenize(void **state) {
    (void)state;
    assert_string_equal(tok("Hello, World!", S2S_TOK_WORDS), "hello|,|world|!");
    assert_string_equal(tok("  Don't stop\tat 3.14 or 1,000. ", S2S_TOK_WORDS),
                        "don't|stop|at|3.14|or|1,000|.");
    assert_string_equal(tok("well-known -- 'quoted' \"x\"", S2S_TOK_WORDS),
                        "well-known|-|-|'|quoted|'|\"|x|\"");
    assert_string_equal(
        tok("John\xE2\x80\x99s CAF\xC3\x89 \xE2\x80\x9Cok\xE2\x80\x9D", S2S_TOK_WORDS),
        "john's|caf\xC3\x89|\xE2\x80\x9C|ok|\xE2\x80\x9D");
    assert_string_equal(tok("great\xF0\x9F\x98\x80\xF0\x9F\x98\x80 \xE2\x86\x92x", S2S_TOK_WORDS),
                        "great|\xF0\x9F\x98\x80|\xF0\x9F\x98\x80|\xE2\x86\x92|x");
    assert_string_equal(tok("", S2S_TOK_WORDS), "");
    assert_string_equal(tok(" \t\n", S2S_TOK_WORDS), "");
    /* chars: one token per code point, whitespace (also U+3000) dropped, ASCII lower-cased */
    assert_string_equal(tok("我爱 北京。\xE3\x80\x80Hi", S2S_TOK_CHARS), "我|爱|北|京|。|h|i");
    assert_string_equal(tok("ﾃｽﾄ𝄞", S2S_TOK_CHARS), "ﾃ|ｽ|ﾄ|𝄞");
    /* units: taken as they are */
    assert_string_equal(tok(" 12 7\t7  0\n", S2S_TOK_UNITS), "12|7|7|0");
    assert_string_equal(tok("A,b", S2S_TOK_UNITS), "A,b");
    /* invalid UTF-8 names the byte */
    assert_string_equal(tok("ab\xC3(", S2S_TOK_WORDS), "ERR:invalid UTF-8 at byte 2 of the text");
    assert_string_equal(tok("\xED\xA0\x80", S2S_TOK_CHARS),
                        "ERR:invalid UTF-8 at byte 0 of the text");
    assert_string_equal(tok("\xC0\x80", S2S_TOK_CHARS), "ERR:invalid UTF-8 at byte 0 of the text");

    assert_int_equal(s2s_tok_mode_for_lang("zh"), S2S_TOK_CHARS);
    assert_int_equal(s2s_tok_mode_for_lang("zh-CN"), S2S_TOK_CHARS);
    assert_int_equal(s2s_tok_mode_for_lang("JA"), S2S_TOK_CHARS);
    assert_int_equal(s2s_tok_mode_for_lang("th"), S2S_TOK_CHARS);
    assert_int_equal(s2s_tok_mode_for_lang("en"), S2S_TOK_WORDS);
    assert_int_equal(s2s_tok_mode_for_lang("zhx"), S2S_TOK_WORDS);
    assert_int_equal(s2s_tok_mode_for_lang(NULL), S2S_TOK_WORDS);
}

/* Chinese characters as tokens, end to end: training in chars mode and the mode in the file. */
static void test_chars_model(void **state) {
    (void)state;
    s2s_err err;
    s2s_lm_trainer *t = s2s_lm_trainer_new(2, S2S_TOK_CHARS, &err);
    assert_non_null(t);
    assert_int_equal(s2s_lm_trainer_add(t, "我爱北京", &err), 0);
    assert_int_equal(s2s_lm_trainer_add(t, "我爱你", &err), 0);
    assert_int_equal(s2s_lm_trainer_add(t, "bad \xFF", &err), S2S_EDATA);
    s2s_lm *lm = s2s_lm_trainer_finish(t, &err);
    assert_non_null(lm);
    assert_int_equal(s2s_lm_vocab_size(lm), 3 + 5);
    const char *p = tmp_path("chars");
    FILE *fp = fopen(p, "w");
    assert_int_equal(s2s_lm_write_arpa(lm, fp, &err), 0);
    fclose(fp);
    s2s_lm *back = s2s_lm_load_arpa(p, &err);
    assert_non_null(back);
    assert_int_equal(s2s_lm_tok_mode(back), S2S_TOK_CHARS);
    assert_true(lp(back, "我", "爱") > lp(back, "我", "京"));
    s2s_lm_free(back);
    s2s_lm_free(lm);
    unlink(p);
}

static void test_train_errors(void **state) {
    (void)state;
    s2s_err err;
    assert_null(s2s_lm_trainer_new(0, S2S_TOK_WORDS, &err));
    assert_int_equal(err.code, S2S_EINVAL);
    assert_null(s2s_lm_trainer_new(33, S2S_TOK_WORDS, &err));
    s2s_lm_trainer *t = s2s_lm_trainer_new(2, S2S_TOK_UNITS, &err);
    assert_int_equal(s2s_lm_trainer_add(t, "1 </s> 2", &err), S2S_EDATA);
    assert_int_equal(s2s_lm_trainer_add(t, "   ", &err), 0); /* empty: skipped */
    assert_null(s2s_lm_trainer_finish(t, &err));             /* no sentences */
    assert_int_equal(err.code, S2S_EDATA);
    t = s2s_lm_trainer_new(2, S2S_TOK_UNITS, &err);
    assert_int_equal(s2s_lm_trainer_set_discounts(t, 3, 0.5, 1, 1.5, &err), S2S_EINVAL);
    assert_int_equal(s2s_lm_trainer_set_discounts(t, 1, 1.5, 1, 1.5, &err), S2S_EINVAL);
    s2s_lm_trainer_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kn_hand),
        cmocka_unit_test(test_kn_discounts),
        cmocka_unit_test(test_sums_to_one),
        cmocka_unit_test(test_arpa_roundtrip),
        cmocka_unit_test(test_concurrent_readers),
        cmocka_unit_test(test_arpa_foreign),
        cmocka_unit_test(test_arpa_gzip),
        cmocka_unit_test(test_arpa_errors),
        cmocka_unit_test(test_arpa_mutations),
        cmocka_unit_test(test_tokenize),
        cmocka_unit_test(test_chars_model),
        cmocka_unit_test(test_train_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_backend.c — backend handle (backend.c) and the n-gram backend (backend_ngram.c) against
 * hand-computed probabilities on a tiny ARPA bigram model. */
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

#include "s2s/backend.h"

/* p(a) = 0.2, p(b) = 0.4, p(</s>) = p(<unk>) = 0.1; p(a|<s>) = 0.5, p(b|a) = 0.8;
 * bow(a) = bow(<s>) = 0.5, bow(b) = 1. No "\s2s-tok:" line: text follows the item's language. */
static const char *arpa = "\\data\\\n"
                          "ngram 1=5\n"
                          "ngram 2=2\n"
                          "\n"
                          "\\1-grams:\n"
                          "-1.0\t</s>\n"
                          "-99\t<s>\t-0.30102999566\n"
                          "-0.69897000434\ta\t-0.30102999566\n"
                          "-0.39794000867\tb\t0\n"
                          "-1.0\t<unk>\n"
                          "\n"
                          "\\2-grams:\n"
                          "-0.30102999566\t<s> a\n"
                          "-0.09691001301\ta b\n"
                          "\n"
                          "\\end\\\n";

static char dir[64], path[128];

static int setup(void **state) {
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/test_backend-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    snprintf(path, sizeof path, "%s/tiny.arpa", dir);
    FILE *fp = fopen(path, "w");
    if (!fp) return -1;
    fputs(arpa, fp);
    fclose(fp);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    unlink(path);
    rmdir(dir);
    return 0;
}

/* Asks for one t2t candidate; returns the reply. */
static s2s_reply ask(s2s_backend *b, const char *lang, const char *ctx, const char *cand) {
    json_t *item = json_pack("{ss}", "id", "x");
    s2s_request rq = {.req_id = 42,
                      .item_id = "x",
                      .mode = S2S_MODE_T2T,
                      .cand = 0,
                      .lang = lang,
                      .ctx_text = ctx,
                      .cand_text = cand,
                      .item = item};
    s2s_err err;
    assert_int_equal(s2s_backend_submit(b, &rq, &err), 0);
    assert_int_equal(s2s_backend_in_flight(b), 1);
    s2s_reply r;
    assert_int_equal(s2s_backend_poll(b, &r, 1, 1, &err), 1);
    assert_int_equal(s2s_backend_in_flight(b), 0);
    assert_true(r.req_id == 42);
    json_decref(item);
    return r;
}

static s2s_backend *open_spec(const char *opts) {
    char spec[256];
    snprintf(spec, sizeof spec, "ngram:%s%s%s", path, opts ? "?" : "", opts ? opts : "");
    s2s_err err;
    s2s_backend *b = s2s_backend_open(spec, &err);
    if (!b) fprintf(stderr, "%s\n", err.msg);
    assert_non_null(b);
    return b;
}

#define NEAR(a, b) assert_true(fabs((a) - (b)) < 1e-9)

static void test_ngram_probabilities(void **state) {
    (void)state;
    s2s_backend *b = open_spec(NULL);
    assert_string_equal(s2s_backend_kind(b), "ngram");
    assert_int_equal(strlen(s2s_backend_model_sha256(b)), 64);
    s2s_reply r = ask(b, "en", "a", "b"); /* p(b|a) = 0.8 */
    assert_int_equal(r.status, 0);
    NEAR(r.nll, -log(0.8));
    assert_true(r.ntok == 1);
    r = ask(b, "en", "a", "a"); /* backoff: bow(a) p(a) = 0.1 */
    NEAR(r.nll, log(10.0));
    r = ask(b, "en", "a", "b a"); /* 0.8 * bow(b) p(a) = 0.8 * 0.2 */
    NEAR(r.nll, -log(0.8) - log(0.2));
    assert_true(r.ntok == 2);
    r = ask(b, "en", "", "a"); /* sentence start: p(a|<s>) = 0.5 */
    NEAR(r.nll, log(2.0));
    /* only the last n-1 context tokens matter */
    r = ask(b, "en", "b b a b a", "b");
    NEAR(r.nll, -log(0.8));
    /* zh is written without spaces: "ba" is two tokens for a model that records no mode */
    r = ask(b, "zh", "a", "ba");
    NEAR(r.nll, -log(0.8) - log(0.2));
    assert_true(r.ntok == 2);
    /* unknown word: <unk> = 0.1 after backoff bow(a) = 0.5 */
    r = ask(b, "en", "a", "zebra");
    NEAR(r.nll, -log(0.05));
    /* an empty candidate is a failed request, not a zero */
    r = ask(b, "en", "a", "");
    assert_true(r.status < 0);
    assert_non_null(strstr(r.msg, "no tokens"));
    s2s_backend_free(b);
}

static void test_ngram_options(void **state) {
    (void)state;
    /* cache 0.5: p = 0.5 p_ngram + 0.5 count(w in history) / |history| */
    s2s_backend *b = open_spec("cache=0.5");
    s2s_reply r = ask(b, "en", "a", "a");
    NEAR(r.nll, -log(0.5 * 0.1 + 0.5 * 1.0));
    r = ask(b, "en", "a", "b a"); /* b: 0.5*0.8 + 0; a: 0.5*0.2 + 0.5*(1/2) */
    NEAR(r.nll, -log(0.4) - log(0.35));
    s2s_backend_free(b);
    /* eos: </s> after b = bow(b) p(</s>) = 0.1, counted as a token */
    b = open_spec("eos=1");
    r = ask(b, "en", "a", "b");
    NEAR(r.nll, -log(0.8) - log(0.1));
    assert_true(r.ntok == 2);
    s2s_backend_free(b);
    /* cache and eos together: </s> gets no cache mass */
    b = open_spec("cache=0.5&eos=1");
    r = ask(b, "en", "a", "b");
    NEAR(r.nll, -log(0.4) - log(0.05));
    s2s_backend_free(b);

    s2s_err err;
    char spec[256];
    const char *bad[] = {"cache=1", "cache=-0.1", "cache=x", "foo=1", "cache"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(spec, sizeof spec, "ngram:%s?%s", path, bad[i]);
        assert_null(s2s_backend_open(spec, &err));
        assert_int_equal(err.code, S2S_EINVAL);
    }
    assert_null(s2s_backend_open("ngram:/nonexistent/x.arpa", &err));
    assert_int_equal(err.code, S2S_EIO);
    assert_null(s2s_backend_open("bogus:x", &err));
    assert_int_equal(err.code, S2S_EINVAL);
    assert_null(s2s_backend_open("ngram", &err));
    assert_int_equal(err.code, S2S_EINVAL);
    /* two text models cannot be told apart */
    snprintf(spec, sizeof spec, "ngram:%s,%s", path, path);
    assert_null(s2s_backend_open(spec, &err));
    assert_non_null(strstr(err.msg, "one text model and one unit model"));
}

static void test_ngram_needs(void **state) {
    (void)state;
    s2s_backend *b = open_spec(NULL);
    s2s_err err;
    unsigned needs;
    assert_int_equal(s2s_backend_needs(b, S2S_MODE_T2T, &needs, &err), 0);
    assert_int_equal(needs, S2S_NEED_CTX_TEXT | S2S_NEED_CAND_TEXT);
    assert_int_equal(s2s_backend_needs(b, S2S_MODE_S2S, &needs, &err), S2S_EUNSUP);
    assert_non_null(strstr(err.msg, "unit model"));
    assert_int_equal(s2s_backend_needs(b, S2S_MODE_S2T, &needs, &err), S2S_EUNSUP);
    assert_non_null(strstr(err.msg, "worker"));
    assert_int_equal(s2s_backend_needs(b, S2S_MODE_T2S, &needs, &err), S2S_EUNSUP);
    s2s_backend_free(b);
}

static void test_modes(void **state) {
    (void)state;
    s2s_err err;
    unsigned m;
    assert_int_equal(s2s_modes_parse("t2t,s2s", &m, &err), 0);
    assert_int_equal(m, (1u << S2S_MODE_T2T) | (1u << S2S_MODE_S2S));
    assert_int_equal(s2s_modes_parse("t2t,,s2t", &m, &err), S2S_EINVAL);
    assert_int_equal(s2s_modes_parse("t2x", &m, &err), S2S_EINVAL);
    assert_int_equal(s2s_modes_parse("", &m, &err), S2S_EINVAL);
    assert_string_equal(s2s_mode_name(S2S_MODE_S2T), "s2t");
}

/* The reply queue of synchronous backends: FIFO across growth and wrap-around. */
static int echo_answer(void *self, const s2s_request *rq, s2s_reply *out, s2s_err *err) {
    (void)self, (void)err;
    out->nll = (double)rq->req_id;
    out->ntok = 1;
    return 0;
}
static int echo_needs(void *self, s2s_mode mode, unsigned *needs, s2s_err *err) {
    (void)self, (void)mode, (void)err;
    *needs = 0;
    return 0;
}
static const s2s_backend_ops echo_ops = {
    .kind = "echo", .needs = echo_needs, .answer = echo_answer};

static void test_queue(void **state) {
    (void)state;
    s2s_err err;
    s2s_backend *b = s2s_backend_new(&echo_ops, NULL, "echo:", NULL, &err);
    assert_true(s2s_backend_capacity(b) >= 1);
    uint64_t next = 0, want = 0;
    s2s_reply r[7];
    for (int round = 0; round < 50; round++) {
        for (int i = 0; i < 13; i++) {
            s2s_request rq = {.req_id = next++};
            assert_int_equal(s2s_backend_submit(b, &rq, &err), 0);
        }
        int n = s2s_backend_poll(b, r, 7, 0, &err);
        assert_int_equal(n, 7);
        for (int i = 0; i < n; i++) {
            assert_true(r[i].req_id == want);
            assert_true(r[i].nll == (double)want);
            want++;
        }
    }
    while (s2s_backend_in_flight(b) > 0) {
        int n = s2s_backend_poll(b, r, 7, 1, &err);
        for (int i = 0; i < n; i++)
            assert_true(r[i].req_id == want++);
    }
    assert_true(want == next);
    assert_int_equal(s2s_backend_poll(b, r, 7, 1, &err), 0);
    s2s_backend_free(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ngram_probabilities),
        cmocka_unit_test(test_ngram_options),
        cmocka_unit_test(test_ngram_needs),
        cmocka_unit_test(test_modes),
        cmocka_unit_test(test_queue),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

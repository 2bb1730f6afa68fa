/* test_cache.c — the score cache (cache.c): answers survive a reopen bit for bit (inf and
 * subnormals included), identities and changed requests are kept apart, failed replies are not
 * stored, a torn last line is cut off, a malformed line is an error naming FILE:LINE, and a second
 * opener of a locked file fails. */
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

#include "s2s/cache.h"

static char dir[256], path[300];

static int setup(void **state) {
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/test_cache-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/scores.cache.jsonl", dir);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    unlink(path);
    rmdir(dir);
    return 0;
}

static json_t *item(const char *id, const char *ctx) {
    return json_pack("{s:s, s:s, s:s, s:{s:s}, s:[{s:s, s:i}, {s:s, s:i}]}", "id", id, "task",
                     "cloze", "lang", "en", "context", "text", ctx, "candidates", "text", "good",
                     "label", 1, "text", "bad", "label", 0);
}

static s2s_request req(const json_t *it, unsigned cand) {
    s2s_request rq;
    memset(&rq, 0, sizeof rq);
    rq.item_id = json_string_value(json_object_get(it, "id"));
    rq.mode = S2S_MODE_T2T;
    rq.cand = cand;
    rq.lang = "en";
    rq.item = it;
    rq.ctx_text = json_string_value(json_object_get(json_object_get(it, "context"), "text"));
    rq.cand_text = cand ? "bad" : "good";
    return rq;
}

/* Looks up rq; on a miss stores reply r (as the scorer does). Returns the lookup's verdict. */
static int ask(s2s_cache *c, const s2s_request *rq, s2s_reply *r) {
    s2s_score_hooks h;
    s2s_cache_hooks(c, &h);
    s2s_err err;
    s2s_reply got;
    memset(&got, 0, sizeof got);
    int hit = h.lookup(h.ctx, rq, &got, &err);
    assert_true(hit >= 0);
    if (hit) {
        *r = got;
        return 1;
    }
    assert_int_equal(h.store(h.ctx, rq->item_id, rq->mode, rq->cand, r, &err), 0);
    return 0;
}

static size_t lines(void) {
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    size_t n = 0;
    int c;
    while ((c = fgetc(fp)) != EOF)
        n += c == '\n';
    fclose(fp);
    return n;
}

static void test_roundtrip(void **state) {
    (void)state;
    s2s_err err;
    json_t *a = item("a1", "once upon a time"), *b = item("b2", "the end");
    static const double vals[] = {1.0 / 3.0, INFINITY, 4.9e-324, 123456.789};
    s2s_cache *c = s2s_cache_open(path, "ngram:m.arpa", "abc", NULL, 0, &err);
    assert_non_null(c);
    assert_string_equal(s2s_cache_note(c), "");
    assert_int_equal(s2s_cache_loaded(c), 0);
    s2s_request r0 = req(a, 0), r1 = req(a, 1), r2 = req(b, 0), r3 = req(b, 1);
    s2s_request *rs[] = {&r0, &r1, &r2, &r3};
    for (int i = 0; i < 4; i++) {
        s2s_reply r = {.nll = vals[i], .ntok = (uint64_t)i + 1, .flags = i == 3};
        assert_int_equal(ask(c, rs[i], &r), 0);
    }
    /* a failed reply is not stored */
    s2s_request r4 = req(b, 1);
    r4.cand = 2;
    s2s_reply bad = {.status = S2S_EMODEL};
    assert_int_equal(ask(c, &r4, &bad), 0);
    assert_int_equal(s2s_cache_stored(c), 4);
    assert_int_equal(s2s_cache_close(c, &err), 0);
    assert_int_equal(lines(), 5); /* declaration + 4 answers */

    c = s2s_cache_open(path, "ngram:m.arpa", "abc", NULL, 0, &err);
    assert_non_null(c);
    assert_int_equal(s2s_cache_loaded(c), 4);
    for (int i = 0; i < 4; i++) {
        s2s_reply r = {.nll = -1};
        assert_int_equal(ask(c, rs[i], &r), 1);
        assert_memory_equal(&r.nll, &vals[i], sizeof(double)); /* bit for bit */
        assert_int_equal(r.ntok, (uint64_t)i + 1);
        assert_int_equal(r.flags, i == 3);
        assert_int_equal(r.status, 0);
    }
    s2s_reply r = {.nll = 7, .ntok = 1};
    assert_int_equal(ask(c, &r4, &r), 0); /* the failed one is asked again */
    /* a changed request (other context) is a miss */
    json_t *a2 = item("a1", "once upon a time!");
    s2s_request rc0 = req(a2, 0);
    assert_int_equal(ask(c, &rc0, &r), 0);
    assert_int_equal(s2s_cache_hits(c), 4);
    assert_int_equal(s2s_cache_close(c, &err), 0);

    /* other identities see nothing: model, spec, --model-id, --dedup */
    const char *specs[] = {"ngram:m.arpa", "ngram:n.arpa", "ngram:m.arpa", "ngram:m.arpa"};
    const char *models[] = {"abd", "abc", "abc", "abc"};
    const char *ids[] = {NULL, NULL, "step-1", NULL};
    for (int k = 0; k < 4; k++) {
        c = s2s_cache_open(path, specs[k], models[k], ids[k], k == 3, &err);
        assert_non_null(c);
        assert_int_equal(s2s_cache_loaded(c), 0);
        s2s_cache_close(c, NULL);
    }
    json_decref(a);
    json_decref(a2);
    json_decref(b);
}

static void append(const char *text) {
    FILE *fp = fopen(path, "a");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void test_torn_and_malformed(void **state) {
    (void)state;
    s2s_err err;
    json_t *a = item("a1", "ctx");
    s2s_cache *c = s2s_cache_open(path, "x:y", "", NULL, 0, &err);
    assert_non_null(c);
    s2s_request r0 = req(a, 0);
    s2s_reply r = {.nll = 2.5, .ntok = 2};
    ask(c, &r0, &r);
    s2s_cache_close(c, NULL);
    append("{\"b\":\"0123456789abcdef\",\"item\":\"zz");
    c = s2s_cache_open(path, "x:y", "", NULL, 0, &err);
    assert_non_null(c);
    assert_non_null(strstr(s2s_cache_note(c), ":3: torn last line"));
    assert_int_equal(s2s_cache_loaded(c), 1);
    s2s_cache_close(c, NULL);
    assert_int_equal(lines(), 2); /* cut off: the next append starts a fresh line */

    append(
        "{\"b\":\"0123456789abcdef\",\"item\":\"a\",\"mode\":\"t2x\",\"cand\":0,"
        "\"h\":\"00000000000000000000000000000000\",\"nll\":\"0x1p+0\",\"ntok\":1,\"flags\":0}\n");
    c = s2s_cache_open(path, "x:y", "", NULL, 0, &err);
    assert_null(c);
    assert_int_equal(err.code, S2S_EFORMAT);
    char want[400];
    snprintf(want, sizeof want, "%s:3: \"mode\"", path);
    assert_non_null(strstr(err.msg, want));
    json_decref(a);
}

static void test_lock(void **state) {
    (void)state;
    s2s_err err;
    s2s_cache *c = s2s_cache_open(path, "x:y", "", NULL, 0, &err);
    assert_non_null(c);
    s2s_cache *d = s2s_cache_open(path, "x:z", "", NULL, 0, &err);
    assert_null(d);
    assert_int_equal(err.code, S2S_EIO);
    assert_non_null(strstr(err.msg, "in use by another s2s-score"));
    s2s_cache_close(c, NULL);
    d = s2s_cache_open(path, "x:z", "", NULL, 0, &err);
    assert_non_null(d);
    s2s_cache_close(d, NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_and_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

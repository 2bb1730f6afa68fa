/* test_worker.c — the worker backend against a real second process (tests/workers/
 * fault_worker.py): pipelining, out-of-order replies, and every fault it must survive or report. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "s2s/worker.h"

#define NREQ 40

static char dir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/s2s-test-worker-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd);
}

static const char *src(void)
{
    const char *s = getenv("S2S_SRC");
    return s ? s : S2S_SOURCE_DIR;
}

static void texts(int i, char *ctx, char *cand)
{
    sprintf(ctx, "context number %d has some words", i);
    sprintf(cand, "candidate %d with text \xe4\xb8\xad", i); /* one CJK char: 3 bytes */
}

static double expect_nll(int i)
{
    char ctx[128], cand[128];
    texts(i, ctx, cand);
    int words = 0, in = 0;
    for (char *p = ctx; *p; p++) {
        if (*p != ' ' && !in) words++;
        in = *p != ' ';
    }
    return 0.25 * (double)strlen(cand) + 0.01 * words;
}

static s2s_backend *open_worker(const char *mode, double timeout, unsigned restarts, s2s_err *err)
{
    char cmd[1024], spec[1100];
    snprintf(cmd, sizeof cmd, "python3 %s/tests/workers/fault_worker.py %s %s/state-%s", src(), mode,
             dir, mode);
    snprintf(spec, sizeof spec, "worker:%s", cmd);
    s2s_worker_opts o;
    s2s_worker_opts_default(&o);
    o.timeout_s = timeout;
    o.max_restarts = restarts;
    o.capacity = 16;
    return s2s_backend_worker_open(spec, cmd, &o, err);
}

/* Runs NREQ requests; returns 0 with every reply checked, or the backend's error code. */
static int run_all(s2s_backend *b, int *seen, s2s_err *err)
{
    int sent = 0, got = 0;
    s2s_reply rep[16];
    while (got < NREQ) {
        while (sent < NREQ && s2s_backend_in_flight(b) < s2s_backend_capacity(b)) {
            char ctx[128], cand[128];
            texts(sent, ctx, cand);
            s2s_request rq = {0};
            rq.req_id = (uint64_t)sent + 1000;
            rq.item_id = "item";
            rq.mode = S2S_MODE_T2T;
            rq.lang = "en";
            rq.ctx_text = ctx;
            rq.cand_text = cand;
            int rc = s2s_backend_submit(b, &rq, err);
            if (rc) return rc;
            sent++;
        }
        int n = s2s_backend_poll(b, rep, 16, 1, err);
        if (n < 0) return n;
        for (int k = 0; k < n; k++) {
            int i = (int)rep[k].req_id - 1000;
            assert_true(i >= 0 && i < NREQ);
            assert_int_equal(rep[k].status, 0);
            seen[i]++;
            assert_true(fabs(rep[k].nll - expect_nll(i)) < 1e-9);
            assert_int_equal(rep[k].ntok, 5);
            got++;
        }
    }
    return 0;
}

/* Runs the mode and checks s2s_backend_restarts: each faulty behaviour fails once. */
static void check_mode(const char *mode, double timeout, uint64_t restarts)
{
    s2s_err err;
    s2s_backend *b = open_worker(mode, timeout, 3, &err);
    assert_non_null(b);
    assert_string_equal(s2s_backend_model_sha256(b), "tiny-test-model");
    int seen[NREQ] = {0};
    int rc = run_all(b, seen, &err);
    if (rc) fprintf(stderr, "%s: %s\n", mode, err.msg);
    assert_int_equal(rc, 0);
    for (int i = 0; i < NREQ; i++) assert_int_equal(seen[i], 1); /* none lost, none doubled */
    assert_int_equal(s2s_backend_restarts(b), restarts);
    s2s_backend_free(b);
}

static void test_ok(void **s) { (void)s; check_mode("ok", 10, 0); }
static void test_out_of_order(void **s) { (void)s; check_mode("reverse", 10, 0); }
static void test_crash_restart(void **s) { (void)s; check_mode("crash", 10, 1); }
static void test_hang_restart(void **s) { (void)s; check_mode("hang", 1, 1); }
static void test_garbage_restart(void **s) { (void)s; check_mode("garbage", 10, 1); }
static void test_wrong_id_restart(void **s) { (void)s; check_mode("wrongid", 10, 1); }
static void test_duplicate_restart(void **s) { (void)s; check_mode("duplicate", 10, 1); }
static void test_early_eof_restart(void **s) { (void)s; check_mode("eof", 10, 1); }

static void test_gives_up(void **state)
{
    (void)state;
    s2s_err err;
    s2s_backend *b = open_worker("always-crash", 10, 2, &err);
    assert_non_null(b);
    int seen[NREQ] = {0};
    int rc = run_all(b, seen, &err);
    assert_int_equal(rc, S2S_EMODEL);
    assert_non_null(strstr(err.msg, "failed 3 times"));
    assert_int_equal(s2s_backend_restarts(b), 2);
    s2s_backend_free(b);
}

static void test_no_hello(void **state)
{
    (void)state;
    s2s_err err;
    s2s_backend *b = open_worker("nohello", 1, 0, &err);
    assert_null(b);
    assert_non_null(strstr(err.msg, "no hello"));
}

/* In-process backends never restart. */
static void test_restarts_in_process(void **state)
{
    (void)state;
    char path[300];
    snprintf(path, sizeof path, "%s/uni.arpa", dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("\\data\\\nngram 1=3\n\n\\1-grams:\n-1.0\t<s>\n-0.5\ta\n-0.5\t</s>\n\n\\end\\\n", fp);
    fclose(fp);
    char spec[320];
    snprintf(spec, sizeof spec, "ngram:%s", path);
    s2s_err err;
    s2s_backend *b = s2s_backend_open(spec, &err);
    if (!b) fprintf(stderr, "%s\n", err.msg);
    assert_non_null(b);
    assert_int_equal(s2s_backend_restarts(b), 0);
    s2s_backend_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ok),
        cmocka_unit_test(test_out_of_order),
        cmocka_unit_test(test_crash_restart),
        cmocka_unit_test(test_hang_restart),
        cmocka_unit_test(test_garbage_restart),
        cmocka_unit_test(test_wrong_id_restart),
        cmocka_unit_test(test_duplicate_restart),
        cmocka_unit_test(test_early_eof_restart),
        cmocka_unit_test(test_gives_up),
        cmocka_unit_test(test_no_hello),
        cmocka_unit_test(test_restarts_in_process),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

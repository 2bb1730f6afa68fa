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
#include <sys/wait.h>
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
static void test_reply_shapes(void **s) { (void)s; check_mode("variants", 10, 0); }
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

/* The request lines the backend writes by hand are what jansson would write (same bytes as
 * json_dumps of the parsed line), escape what JSON needs, and replace invalid UTF-8 by U+FFFD. */
static void test_request_lines(void **state)
{
    (void)state;
    char cmd[1200], spec[1300], path[300];
    snprintf(path, sizeof path, "%s/requests.txt", dir);
    snprintf(cmd, sizeof cmd, "tee %s | python3 %s/tests/workers/fault_worker.py ok", path, src());
    snprintf(spec, sizeof spec, "worker:%s", cmd);
    s2s_err err;
    s2s_backend *b = s2s_backend_worker_open(spec, cmd, NULL, &err);
    assert_non_null(b);
    const char *ctx = "say \"hi\" \\ back\nslash\ttab \x01\x1f \xe4\xb8\xad end/";
    const char *cand = "bad \xff byte \xc3\x28 and \xf0\x9f\x98\x80 ok";
    s2s_request rq = {0};
    rq.item_id = "it\"em";
    rq.mode = S2S_MODE_S2T;
    rq.cand = 1;
    rq.lang = "zh";
    rq.ctx_text = ctx;
    rq.cand_text = cand;
    rq.ctx_audio = "/tmp/x y/1.ctx.wav";
    rq.ctx_units = "1 2 3";
    for (int i = 0; i < 3; i++) {
        rq.req_id = (uint64_t)i * 1000003u;
        assert_int_equal(s2s_backend_submit(b, &rq, &err), 0);
    }
    s2s_reply rep[4];
    int got = 0;
    while (got < 3) {
        int n = s2s_backend_poll(b, rep, 4, 1, &err);
        assert_true(n > 0);
        got += n;
    }
    s2s_backend_free(b); /* the worker exits, tee has written everything */
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    char line[4096];
    int lines = 0;
    while (fgets(line, sizeof line, fp)) {
        size_t n = strlen(line);
        assert_true(n > 0 && line[n - 1] == '\n');
        line[n - 1] = 0;
        json_error_t je;
        json_t *j = json_loads(line, 0, &je);
        assert_non_null(j);
        char *again = json_dumps(j, JSON_COMPACT);
        assert_string_equal(again, line);
        free(again);
        assert_int_equal(json_integer_value(json_object_get(j, "id")), lines * 1000003);
        assert_string_equal(json_string_value(json_object_get(j, "item")), "it\"em");
        assert_string_equal(json_string_value(json_object_get(j, "mode")), "s2t");
        assert_int_equal(json_integer_value(json_object_get(j, "cand")), 1);
        json_t *c = json_object_get(j, "context");
        assert_string_equal(json_string_value(json_object_get(c, "text")), ctx);
        assert_string_equal(json_string_value(json_object_get(c, "audio")), "/tmp/x y/1.ctx.wav");
        assert_string_equal(json_string_value(json_object_get(c, "units")), "1 2 3");
        assert_string_equal(json_string_value(json_object_get(json_object_get(j, "candidate"), "text")),
                            "bad \xef\xbf\xbd byte \xef\xbf\xbd( and \xf0\x9f\x98\x80 ok");
        assert_null(json_object_get(json_object_get(j, "candidate"), "audio"));
        json_decref(j);
        lines++;
    }
    fclose(fp);
    assert_int_equal(lines, 3);
}

/* s2s_worker_serve over a real pipe (its read() path): requests arrive in 7-byte pieces that split
 * lines, the last line has no newline, a bad line gets no reply; every reply equals the in-process
 * backend's answer to the same request. */
static void test_serve_pipe(void **state)
{
    (void)state;
    char path[300], spec[320];
    snprintf(path, sizeof path, "%s/serve.arpa", dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("\\data\\\nngram 1=4\nngram 2=2\n\n\\1-grams:\n-1.0\t<s>\t-0.3\n-0.7\t</s>\n"
          "-0.5\ta\t-0.2\n-0.6\tb\t-0.1\n\n\\2-grams:\n-0.2\t<s> a\n-0.3\ta b\n\n\\end\\\n",
          fp);
    fclose(fp);
    snprintf(spec, sizeof spec, "ngram:%s", path);
    s2s_err err;
    s2s_backend *b = s2s_backend_open(spec, &err);
    if (!b) fprintf(stderr, "%s\n", err.msg);
    assert_non_null(b);
    enum { N = 60 };
    static const char *const words[] = {"a", "b", "a b", "b b a", "a a a b", "c"};
    char req[N][200];
    size_t total = 0;
    for (int i = 0; i < N; i++) {
        snprintf(req[i], sizeof req[i],
                 "{\"id\":%d,\"item\":\"x\",\"mode\":\"t2t\",\"cand\":0,\"lang\":\"en\","
                 "\"context\":{\"text\":\"%s\"},\"candidate\":{\"text\":\"%s\"}}%s",
                 i, words[i % 6], words[(i * 7 + 1) % 6], i == N - 1 ? "" : "\n");
        total += strlen(req[i]);
    }
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) { /* the writer: small pieces, a bad line in the middle */
        close(pfd[0]);
        for (int i = 0; i < N; i++) {
            if (i == N / 2 && write(pfd[1], "not json\n", 9) != 9) _exit(1);
            for (size_t o = 0, n = strlen(req[i]); o < n; o += 7) {
                size_t k = n - o < 7 ? n - o : 7;
                if (write(pfd[1], req[i] + o, k) != (ssize_t)k) _exit(1);
                if (o % 49 == 0) usleep(200);
            }
        }
        _exit(0);
    }
    close(pfd[1]);
    FILE *in = fdopen(pfd[0], "r");
    assert_non_null(in);
    FILE *out = tmpfile();
    assert_non_null(out);
    assert_int_equal(s2s_worker_serve(b, "pipe-test", in, out, &err), 0);
    fclose(in);
    int st = 0;
    waitpid(pid, &st, 0);
    assert_int_equal(st, 0);
    rewind(out);
    char line[512];
    assert_non_null(fgets(line, sizeof line, out));
    assert_non_null(strstr(line, "\"model_id\":\"pipe-test\""));
    int seen[N] = {0}, lines = 0, errors = 0;
    while (fgets(line, sizeof line, out)) {
        json_error_t je;
        json_t *j = json_loads(line, 0, &je);
        assert_non_null(j);
        int id = (int)json_integer_value(json_object_get(j, "id"));
        assert_true(id >= 0 && id < N);
        seen[id]++;
        s2s_request rq = {0};
        rq.req_id = 1;
        rq.item_id = "x";
        rq.mode = S2S_MODE_T2T;
        rq.lang = "en";
        rq.ctx_text = words[id % 6];
        rq.cand_text = words[(id * 7 + 1) % 6];
        s2s_reply r;
        assert_int_equal(s2s_backend_submit(b, &rq, &err), 0);
        assert_int_equal(s2s_backend_poll(b, &r, 1, 1, &err), 1);
        if (r.status == 0) {
            assert_true(json_real_value(json_object_get(j, "nll")) == r.nll);
            assert_int_equal(json_integer_value(json_object_get(j, "ntok")), r.ntok);
        } else { /* an unknown word in a model without <unk>: the same error, as a reply */
            assert_string_equal(json_string_value(json_object_get(j, "error")), r.msg);
            errors++;
        }
        json_decref(j);
        lines++;
    }
    fclose(out);
    assert_int_equal(lines, N);
    assert_int_equal(errors, N / 6);
    for (int i = 0; i < N; i++) assert_int_equal(seen[i], 1);
    (void)total;
    s2s_backend_free(b);
}

/* serve's own request decoder against jansson: each line once as is (decoded by hand when it has
 * the usual shape) and once with an extra key (which sends it to jansson) must be answered with
 * the same bytes: same scores, same error replies, same silence for lines without a usable id. */
static void test_serve_fast_path(void **state)
{
    (void)state;
    char path[300], spec[320];
    snprintf(path, sizeof path, "%s/fast.arpa", dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("\\data\\\nngram 1=5\n\n\\1-grams:\n-1.0\t<s>\n-0.7\t</s>\n-0.5\ta\n-0.6\tb\n-2.0\t<unk>\n"
          "\n\\end\\\n",
          fp);
    fclose(fp);
    snprintf(spec, sizeof spec, "ngram:%s", path);
    s2s_err err;
    s2s_backend *b = s2s_backend_open(spec, &err);
    assert_non_null(b);
    static const char *const bodies[] = {
        "\"id\":1,\"mode\":\"t2t\",\"context\":{\"text\":\"a b\"},\"candidate\":{\"text\":\"b a\"}}",
        "\"id\":2,\"mode\":\"t2t\",\"context\":{\"text\":\"a\\u0020b\\/a\"},\"candidate\":{\"text\":\"b\\ta\\nb\"}}",
        "\"id\":3,\"mode\":\"t2t\",\"context\":{\"text\":\"\\ud83d\\ude00 a \\u00e9\"},\"candidate\":{\"text\":\"\\\"b\\\\\"}}",
        "\"id\":4,\"mode\":\"t2t\",\"context\":{\"text\":\"a\\u0000b\"},\"candidate\":{\"text\":\"b\"}}",
        "\"id\":5,\"mode\":\"t2t\",\"context\":{\"text\":\"\\udc00\"},\"candidate\":{\"text\":\"b\"}}",
        "\"id\":6,\"mode\":\"t2t\",\"context\":{\"text\":\"\\x\"},\"candidate\":{\"text\":\"b\"}}",
        "\"id\":7,\"mode\":\"t2t\",\"context\":{\"text\":\"a\x01\"},\"candidate\":{\"text\":\"b\"}}",
        "\"id\":8,\"mode\":\"t2t\",\"context\":{\"text\":\"a\xff\"},\"candidate\":{\"text\":\"b\"}}",
        "\"id\":9,\"mode\":\"t2t\",\"context\":{\"text\":\"a\",\"text\":\"b\"},\"candidate\":{\"text\":\"b\"}}",
        "\"id\":010,\"mode\":\"t2t\",\"context\":{\"text\":\"a\"},\"candidate\":{\"text\":\"b\"}}",
        "\"id\":11.0,\"mode\":\"t2t\",\"context\":{\"text\":\"a\"},\"candidate\":{\"text\":\"b\"}}",
        "\"id\":12,\"cand\":1.5,\"mode\":\"t2t\",\"context\":{\"text\":\"a\"},\"candidate\":{\"text\":\"b\"}}",
        "\"id\":13,\"cand\":-1,\"mode\":\"t2t\",\"context\":{\"text\":\"a\"},\"candidate\":{\"text\":\"b\"}}",
        "\"id\":14,\"mode\":\"t2t\",\"context\":{\"text\":\"a\"},\"candidate\":{\"text\":\"b\"}} trailing",
        "\"id\":15,\"mode\":\"zz\",\"context\":{\"text\":\"a\"},\"candidate\":{\"text\":\"b\"}}",
        "\"id\":16,\"context\":{\"text\":\"a\"},\"candidate\":{\"text\":\"b\"}}",
        " \"id\" : 17 , \"item\" : \"i\" , \"lang\" : \"en\" , \"cand\" : 0 , \"mode\" : \"t2t\" ,"
        " \"candidate\" : { \"units\" : \"1 2\" , \"text\" : \"a\" } , \"context\" : { } } ",
        "\"id\":18,\"mode\":\"t2t\",\"context\":{\"text\":\"a \\u00E9\\u4E2D\"},\"candidate\":{\"text\":\"\\uD83D\\uDE00\"}}",
        "\"id\":19,\"mode\":\"t2t\",\"context\":{\"text\":\"\xe4\xb8\xad \xf0\x9f\x98\x80\"},\"candidate\":{\"text\":\"\xed\xa0\x80\"}}",
        "\"id\":20,\"mode\":\"t2t\",\"context\":{\"text\":1},\"candidate\":{\"text\":\"b\"}}",
        "\"id\":21,\"mode\":\"t2t\",\"context\":{\"text\":\"a\"},\"candidate\":{\"text\":\"b\"},\"id\":22}",
        "\"id\":123456789012345678901,\"mode\":\"t2t\",\"context\":{\"text\":\"a\"},\"candidate\":{\"text\":\"b\"}}",
        "\"id\":23,\"mode\":\"t2t\",\"context\":{\"text\":\"a\\ud83d\"},\"candidate\":{\"text\":\"b\"}}",
    };
    enum { NB = sizeof bodies / sizeof bodies[0] };
    char *outs[2];
    for (int variant = 0; variant < 2; variant++) {
        char *text = NULL, *o = NULL;
        size_t tlen = 0, olen = 0;
        FILE *in = open_memstream(&text, &tlen);
        assert_non_null(in);
        for (size_t i = 0; i < NB; i++)
            fprintf(in, "{%s%s\n", variant ? "\"x\":0," : "", bodies[i]);
        fclose(in);
        in = fmemopen(text, tlen, "r");
        FILE *out = open_memstream(&o, &olen);
        assert_non_null(in);
        assert_non_null(out);
        assert_int_equal(s2s_worker_serve(b, "m", in, out, &err), 0);
        fclose(in);
        fclose(out);
        free(text);
        outs[variant] = o;
    }
    assert_string_equal(outs[0], outs[1]);
    /* and the accepted ones were answered */
    assert_non_null(strstr(outs[0], "{\"id\":1,\"nll\":"));
    assert_non_null(strstr(outs[0], "{\"id\":3,\"nll\":"));
    assert_non_null(strstr(outs[0], "{\"id\":15,\"error\":\"unknown mode\"}"));
    assert_non_null(strstr(outs[0], "{\"id\":17,\"nll\":"));
    assert_null(strstr(outs[0], "{\"id\":4,"));
    free(outs[0]);
    free(outs[1]);
    s2s_backend_free(b);
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
        cmocka_unit_test(test_reply_shapes),
        cmocka_unit_test(test_crash_restart),
        cmocka_unit_test(test_hang_restart),
        cmocka_unit_test(test_garbage_restart),
        cmocka_unit_test(test_wrong_id_restart),
        cmocka_unit_test(test_duplicate_restart),
        cmocka_unit_test(test_early_eof_restart),
        cmocka_unit_test(test_gives_up),
        cmocka_unit_test(test_no_hello),
        cmocka_unit_test(test_restarts_in_process),
        cmocka_unit_test(test_request_lines),
        cmocka_unit_test(test_serve_pipe),
        cmocka_unit_test(test_serve_fast_path),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

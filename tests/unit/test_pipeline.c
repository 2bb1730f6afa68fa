/* test_pipeline.c — chains of processes (libs2s/pipeline.c): data flows through, the first
 * failing stage is named with its status or signal, the stop flag ends every stage, the tick
 * reports how far the first stage has read its input file. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "s2s/pipeline.h"
#include "s2s/util.h"

static char dir[] = "/tmp/test_pipeline.XXXXXX";

static void path(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/%s", dir, name);
}

static s2s_pipeline *chain(const char *a, const char *b) {
    s2s_err err;
    s2s_pipeline *p = s2s_pipeline_new(&err);
    assert_non_null(p);
    const char *s1[] = {"sh", "-c", a, NULL}, *s2[] = {"sh", "-c", b, NULL};
    assert_int_equal(s2s_pipeline_add(p, s1, &err), 0);
    if (b) assert_int_equal(s2s_pipeline_add(p, s2, &err), 0);
    return p;
}

static void test_flow(void **state) {
    (void)state;
    char in[256], out[256];
    path(in, sizeof in, "in.txt");
    path(out, sizeof out, "out.txt");
    FILE *f = fopen(in, "w");
    fputs("hello pipes\n", f);
    fclose(f);
    s2s_pipeline *p = chain("tr a-z A-Z", "rev");
    assert_string_equal(s2s_pipeline_str(p), "sh -c 'tr a-z A-Z' | sh -c rev");
    s2s_err err;
    s2s_err_clear(&err);
    assert_int_equal(s2s_pipeline_run(p, in, out, &err), 0);
    s2s_pipeline_free(p);
    unsigned char *d;
    size_t n;
    assert_int_equal(s2s_read_file(out, &d, &n, &err), 0);
    assert_string_equal((char *)d, "SEPIP OLLEH\n");
    free(d);
}

static void test_failures(void **state) {
    (void)state;
    s2s_err err;
    s2s_err_clear(&err);
    /* the first failing stage in pipeline order is named, not the one that failed first */
    s2s_pipeline *p = chain("sleep 0.2; exit 3", "exit 4");
    assert_int_equal(s2s_pipeline_run(p, NULL, "/dev/null", &err), S2S_EDATA);
    assert_string_equal(err.msg, "stage 1 (sh) exited with status 3");
    s2s_pipeline_free(p);
    p = chain("cat", "kill -USR1 $$");
    assert_int_equal(s2s_pipeline_run(p, NULL, "/dev/null", &err), S2S_EDATA);
    assert_string_equal(err.msg, "stage 2 (sh) killed by signal 10");
    s2s_pipeline_free(p);
    /* exit 130 of a stage is an interruption */
    p = chain("exit 130", NULL);
    assert_int_equal(s2s_pipeline_run(p, NULL, "/dev/null", &err), S2S_EINTR);
    s2s_pipeline_free(p);
    /* a program that does not exist: 127 from the child */
    s2s_pipeline *q = s2s_pipeline_new(&err);
    const char *nope[] = {"s2s-no-such-tool-xyz", NULL};
    assert_int_equal(s2s_pipeline_add(q, nope, &err), 0);
    assert_int_equal(s2s_pipeline_run(q, NULL, "/dev/null", &err), S2S_EDATA);
    assert_non_null(strstr(err.msg, "status 127"));
    s2s_pipeline_free(q);
}

static volatile sig_atomic_t stop;
static int ticks;
static double last_frac;

static void tick(void *ctx, double frac) {
    (void)ctx;
    ticks++;
    last_frac = frac;
    /* as a SIGINT handler would; from the third tick on, once the first stage has read (on a
     * loaded machine the shell may start after several ticks) */
    if (ticks >= 3 && frac > 0) stop = 1;
}

static void test_stop_and_tick(void **state) {
    (void)state;
    char in[256];
    path(in, sizeof in, "big.txt");
    FILE *f = fopen(in, "w");
    for (int i = 0; i < 1000; i++)
        fputs("0123456789012345678901234567890123456789012345678901234567890123456789\n", f);
    fclose(f);
    /* the first stage reads 4000 of 71000 bytes, then waits: the tick sees ~5.6%; the stop
     * flag set on the third tick ends both stages long before their 30 s */
    s2s_pipeline *p = chain("dd bs=4000 count=1 of=/dev/null 2>/dev/null; sleep 30", "sleep 30");
    s2s_pipeline_set_tick(p, tick, NULL);
    s2s_pipeline_set_stop_flag(p, &stop);
    s2s_err err;
    s2s_err_clear(&err);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(s2s_pipeline_run(p, in, "/dev/null", &err), S2S_EINTR);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    s2s_pipeline_free(p);
    assert_true(t1.tv_sec - t0.tv_sec < 25); /* the stages alone would take 30 s */
    assert_true(ticks >= 3);
    assert_true(last_frac > 0.05 && last_frac < 0.06);
}

static int setup(void **state) {
    (void)state;
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flow),
        cmocka_unit_test(test_failures),
        cmocka_unit_test(test_stop_and_tick),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

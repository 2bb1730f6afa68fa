/* test_units.c — libs2s/units.c: GSLM and JSON-lines units files, names with paths and audio
 * extensions, attaching to samples, unknown ids, and every parse error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "s2s/units.h"

static s2s_units_set *parse(const char *text, long long k, s2s_err *err) {
    s2s_err_clear(err);
    return s2s_units_set_parse((const unsigned char *)text, strlen(text), "u.txt", k, err);
}

static const char *member(const s2s_sample *s, const char *suffix) {
    s2s_member *m = s2s_sample_get(s, suffix);
    return m ? (const char *)m->data : NULL;
}

static void test_gslm_attach(void **state) {
    (void)state;
    s2s_err err;
    s2s_units_set *u = parse("a|5 5 7\n/x/y/a.c0.wav|1\r\n\nb.ctx|\nc.c1.flac| 3  4 \n", 0, &err);
    if (!u) fail_msg("%s", err.msg);
    assert_string_equal(s2s_units_set_format(u), "gslm");
    assert_int_equal(s2s_units_set_size(u), 4);
    assert_int_equal(strlen(s2s_units_set_sha256(u)), 64);

    s2s_sample *s = s2s_sample_new("a", &err);
    json_t *fr;
    assert_int_equal(s2s_units_set_attach(u, s, &fr, &err), 2);
    assert_string_equal(member(s, "ctx.units"), "5 5 7");
    assert_string_equal(member(s, "c0.units"), "1");
    assert_int_equal(json_integer_value(json_object_get(fr, "ctx")), 3);
    assert_int_equal(json_integer_value(json_object_get(fr, "c0")), 1);
    json_decref(fr);
    s2s_sample_free(s);

    s = s2s_sample_new("b", &err);
    assert_int_equal(s2s_units_set_attach(u, s, &fr, &err), 1);
    assert_string_equal(member(s, "ctx.units"), "");
    assert_int_equal(s2s_sample_get(s, "ctx.units")->size, 0);
    json_decref(fr);
    s2s_sample_free(s);

    s = s2s_sample_new("zz", &err);
    assert_int_equal(s2s_units_set_attach(u, s, &fr, &err), 0);
    assert_null(fr);
    s2s_sample_free(s);

    /* c was never attached. */
    assert_int_equal(s2s_units_set_check_used(u, NULL, &err), S2S_EDATA);
    assert_non_null(strstr(err.msg, "u.txt:5: unknown id 'c'"));
    s = s2s_sample_new("c", &err);
    assert_int_equal(s2s_units_set_attach(u, s, &fr, &err), 1);
    assert_string_equal(member(s, "c1.units"), "3 4");
    json_decref(fr);
    s2s_sample_free(s);
    assert_int_equal(s2s_units_set_check_used(u, NULL, &err), 0);
    s2s_units_set_free(u);
}

static void test_jsonl(void **state) {
    (void)state;
    s2s_err err;
    s2s_units_set *u =
        parse("  {\"id\": \"q\", \"units\": [0, 99]}\n{\"id\": \"q\", \"member\": \"c2\", "
              "\"units\": []}\n",
              100, &err);
    if (!u) fail_msg("%s", err.msg);
    assert_string_equal(s2s_units_set_format(u), "jsonl");
    s2s_sample *s = s2s_sample_new("q", &err);
    json_t *fr;
    assert_int_equal(s2s_units_set_attach(u, s, &fr, &err), 2);
    assert_string_equal(member(s, "ctx.units"), "0 99");
    assert_string_equal(member(s, "c2.units"), "");
    json_decref(fr);
    s2s_sample_free(s);
    s2s_units_set_free(u);
}

static void bad(const char *text, long long k, int code, const char *want) {
    s2s_err err;
    s2s_units_set *u = parse(text, k, &err);
    if (u) fail_msg("accepted: %s", text);
    if (err.code != code) fail_msg("%s: code %d want %d (%s)", text, err.code, code, err.msg);
    if (!strstr(err.msg, want)) fail_msg("message '%s' lacks '%s'", err.msg, want);
}

static void test_errors(void **state) {
    (void)state;
    bad("a 1 2\n", 0, S2S_EFORMAT, "u.txt:1: expected NAME|");
    bad("a|1\nb|1 x\n", 0, S2S_EFORMAT, "u.txt:2:");
    bad("a|1 -3\n", 0, S2S_EDATA, "not a non-negative");
    bad("a|1 10\n", 10, S2S_EDATA, "unit 10 >= the vocabulary size 10");
    bad("a|1\na.ctx|2\n", 0, S2S_EDATA, "u.txt:2: units for a.ctx given twice (also line 1)");
    bad("bad id!|1\n", 0, S2S_EDATA, "u.txt:1:");
    bad("\n\n", 0, S2S_EDATA, "no units");
    bad("{\"id\": 3, \"units\": []}\n", 0, S2S_EFORMAT, "expected {");
    bad("{\"id\": \"a\", \"units\": [1.5]}\n", 0, S2S_EFORMAT, "units[0] is not an integer");
    bad("{\"id\": \"a\"\n", 0, S2S_EFORMAT, "not JSON");
    s2s_err err;
    const unsigned char nul[] = {'a', '|', '1', 0, '2', '\n'};
    assert_null(s2s_units_set_parse(nul, sizeof nul, "u.txt", 0, &err));
    assert_non_null(strstr(err.msg, "NUL"));
    assert_null(s2s_units_set_load("/nonexistent/units.txt", 0, &err));
    assert_int_equal(err.code, S2S_EIO);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_gslm_attach),
                                       cmocka_unit_test(test_jsonl), cmocka_unit_test(test_errors)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}

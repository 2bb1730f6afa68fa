/* test_item.c — item validation (every error of s2s_item_validate), accessors, deterministic
 * serialisation with unknown fields kept byte for byte, provenance, id sets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "s2s/item.h"

#define CLOZE_CANDS "[{\"text\":\"good\",\"label\":1},{\"text\":\"bad\",\"label\":0}]"
#define VALID                                                                                      \
    "{\"id\":\"sstorycloze_000001\",\"task\":\"cloze\",\"lang\":\"en\",\"category\":"              \
    "\"storycloze\","                                                                              \
    "\"context\":{\"text\":\"Karen was assigned a roommate.\"},\"candidates\":" CLOZE_CANDS "}"

static json_t *parse(const char *s) {
    json_error_t e;
    json_t *j = json_loads(s, JSON_DECODE_ANY, &e);
    if (!j) fail_msg("bad test JSON: %s: %s", s, e.text);
    return j;
}

/* Validates the JSON text; want NULL = must pass, else the error must contain want. */
static void check(const char *text, const char *want) {
    json_t *j = parse(text);
    s2s_err err;
    s2s_err_clear(&err);
    int rc = s2s_item_validate(j, &err);
    if (!want) {
        if (rc != 0) fail_msg("valid item rejected: %s\n  %s", err.msg, text);
    } else {
        if (rc != S2S_EDATA) fail_msg("want S2S_EDATA (\"%s\"), got %d for %s", want, rc, text);
        if (!strstr(err.msg, want)) fail_msg("message \"%s\" lacks \"%s\"", err.msg, want);
    }
    json_decref(j);
}

/* The valid item with one top-level field replaced (value NULL = removed). */
static void check_field(const char *field, const char *value, const char *want) {
    json_t *j = parse(VALID);
    if (value)
        json_object_set_new(j, field, parse(value));
    else
        json_object_del(j, field);
    char *s = json_dumps(j, JSON_COMPACT);
    check(s, want);
    free(s);
    json_decref(j);
}

static void test_valid(void **state) {
    (void)state;
    check(VALID, NULL);
    check_field("category", NULL, NULL); /* optional */
    check_field("task", "\"choice\"", NULL);
    check("{\"id\":\"scmmlu_agronomy_0001\",\"task\":\"choice\",\"lang\":\"zh\",\"context\":{"
          "\"text\":"
          "\"问题\"},\"candidates\":[{\"text\":\"a\",\"label\":0},{\"text\":\"b\",\"label\":0},"
          "{\"text\":\"c\",\"label\":1},{\"text\":\"d\",\"label\":0}],\"x\":{\"unknown\":[1]}}",
          NULL);
    check_field("id", "\"A-z_09\"", NULL);
}

static void test_not_object(void **state) {
    (void)state;
    check("[1,2]", "not a JSON object");
    check("\"text\"", "not a JSON object");
}

static void test_id(void **state) {
    (void)state;
    check_field("id", NULL, "missing field \"id\"");
    check_field("id", "17", "\"id\" must be a string");
    check_field("id", "\"a.b\"", "id \"a.b\" is not valid");
    check_field("id", "\"\"", "is not valid");
    check_field("id", "\"caf\\u00e9\"", "is not valid"); /* non-ASCII */
    check_field("id", "\"a b\"", "is not valid");
    check_field("id", "\"a/b\"", "is not valid");
    char long_id[260];
    long_id[0] = '"';
    memset(long_id + 1, 'x', 201);
    strcpy(long_id + 202, "\"");
    check_field("id", long_id, "is not valid");
    long_id[201] = '"', long_id[202] = 0; /* 200 characters: allowed */
    check_field("id", long_id, NULL);
}

static void test_task(void **state) {
    (void)state;
    check_field("task", NULL, "missing field \"task\"");
    check_field("task", "\"mcq\"", "\"task\" must be \"cloze\" or \"choice\"");
    check_field("task", "1", "\"task\" must be \"cloze\" or \"choice\"");
}

static void test_lang(void **state) {
    (void)state;
    check_field("lang", NULL, "missing field \"lang\"");
    check_field("lang", "\"\"", "\"lang\" must be a non-empty string");
    check_field("lang", "[\"en\"]", "\"lang\" must be a non-empty string");
}

static void test_category(void **state) {
    (void)state;
    check_field("category", "3", "\"category\" must be a string");
    check_field("category", "null", "\"category\" must be a string");
}

static void test_context(void **state) {
    (void)state;
    check_field("context", NULL, "missing field \"context\"");
    check_field("context", "\"text\"", "\"context\" must be an object");
    check_field("context", "{}", "\"context.text\" must be a string");
    check_field("context", "{\"text\":5}", "\"context.text\" must be a string");
    check_field("context", "{\"text\":\"\"}", "\"context.text\" is empty");
    check_field("context", "{\"text\":\" \\t\\n\"}", "\"context.text\" is empty");
}

static void test_candidates(void **state) {
    (void)state;
    check_field("candidates", NULL, "missing field \"candidates\"");
    check_field("candidates", "{}", "\"candidates\" must be an array");
    check_field("candidates", "[\"good\",\"bad\"]", "candidate 0 is not an object");
    check_field("candidates", "[{\"label\":1},{\"text\":\"b\",\"label\":0}]",
                "candidate 0: \"text\" must be a string");
    check_field("candidates", "[{\"text\":\"a\",\"label\":1},{\"text\":\" \",\"label\":0}]",
                "candidate 1: \"text\" is empty");
    check_field("candidates", "[{\"text\":\"a\",\"label\":1},{\"text\":\"b\"}]",
                "candidate 1: \"label\" must be 0 or 1");
    check_field("candidates", "[{\"text\":\"a\",\"label\":2},{\"text\":\"b\",\"label\":0}]",
                "candidate 0: \"label\" must be 0 or 1");
    check_field("candidates", "[{\"text\":\"a\",\"label\":\"1\"},{\"text\":\"b\",\"label\":0}]",
                "candidate 0: \"label\" must be 0 or 1");
    check_field("candidates", "[{\"text\":\"a\",\"label\":1.0},{\"text\":\"b\",\"label\":0}]",
                "candidate 0: \"label\" must be 0 or 1");
    check_field("candidates", "[{\"text\":\"a\",\"label\":true},{\"text\":\"b\",\"label\":0}]",
                "candidate 0: \"label\" must be 0 or 1");
}

static void test_counts(void **state) {
    (void)state;
    /* cloze: exactly 2 */
    check_field("candidates",
                "[{\"text\":\"a\",\"label\":1},{\"text\":\"b\",\"label\":0},{\"text\":\"c\","
                "\"label\":0}]",
                "a cloze item needs exactly 2 candidates, has 3");
    check_field("candidates", "[{\"text\":\"a\",\"label\":1}]",
                "a cloze item needs exactly 2 candidates, has 1");
    /* choice: at least 2 */
    json_t *j = parse(VALID);
    json_object_set_new(j, "task", json_string("choice"));
    json_object_set_new(j, "candidates", parse("[{\"text\":\"a\",\"label\":1}]"));
    char *s = json_dumps(j, JSON_COMPACT);
    check(s, "a choice item needs at least 2 candidates, has 1");
    free(s);
    json_object_set_new(j, "candidates", parse("[]"));
    s = json_dumps(j, JSON_COMPACT);
    check(s, "a choice item needs at least 2 candidates, has 0");
    free(s);
    json_decref(j);
}

static void test_right_answers(void **state) {
    (void)state;
    check_field("candidates", "[{\"text\":\"a\",\"label\":0},{\"text\":\"b\",\"label\":0}]",
                "exactly one candidate must have label 1, 0 do");
    check_field("candidates", "[{\"text\":\"a\",\"label\":1},{\"text\":\"b\",\"label\":1}]",
                "exactly one candidate must have label 1, 2 do");
}

static void test_accessors(void **state) {
    (void)state;
    json_t *j = parse(VALID);
    assert_string_equal(s2s_item_id(j), "sstorycloze_000001");
    assert_string_equal(s2s_item_task(j), "cloze");
    assert_string_equal(s2s_item_lang(j), "en");
    assert_string_equal(s2s_item_context_text(j), "Karen was assigned a roommate.");
    assert_int_equal(s2s_item_n_candidates(j), 2);
    assert_string_equal(s2s_item_candidate_text(j, 1), "bad");
    assert_int_equal(s2s_item_candidate_label(j, 0), 1);
    assert_int_equal(s2s_item_candidate_label(j, 5), -1);
    assert_null(s2s_item_candidate_text(j, 5));
    assert_int_equal(s2s_item_right_index(j), 0);
    json_decref(j);
    j = parse("{}");
    assert_null(s2s_item_id(j));
    assert_null(s2s_item_context_text(j));
    assert_int_equal(s2s_item_n_candidates(j), 0);
    assert_int_equal(s2s_item_right_index(j), -1);
    json_decref(j);
}

/* Unknown fields (top level, in the context, in candidates; every JSON type; UTF-8 text; escapes)
 * come back byte for byte from our own compact form. */
static void test_round_trip(void **state) {
    (void)state;
    static const char line[] =
        "{\"id\":\"x-1\",\"zz_first\":true,\"task\":\"cloze\",\"lang\":\"zh\",\"context\":{"
        "\"text\":\"她说：\\\"你好\\\"\\n\",\"speaker\":{\"age\":31,\"tags\":[]}},\"candidates\":[{"
        "\"text\":\"好\",\"label\":1,\"uttid\":12,\"key\":\"A\"},{\"text\":\"坏😀\",\"label\":0,"
        "\"score\":-0.5,\"w\":0.25}],\"audio\":{\"rate\":16000,\"voice\":\"cmn\",\"dur\":[1.5,"
        "2.0]},\"n\":null,\"big\":9007199254740993,\"esc\":\"tab\\tslash\\\\ctl\\u0001\",\"a\":"
        "false,\"provenance\":[{\"tool\":\"s2s-import\",\"version\":\"0.1.0\"}]}";
    json_t *j = parse(line);
    s2s_err err;
    assert_int_equal(s2s_item_validate(j, &err), 0);
    char *out = s2s_item_dumps(j);
    assert_non_null(out);
    assert_string_equal(out, line);
    /* and again through a second parse (deterministic) */
    json_t *j2 = parse(out);
    char *out2 = s2s_item_dumps(j2);
    assert_string_equal(out2, line);
    /* s2s_item_write adds exactly one newline */
    char buf[4096];
    FILE *fp = fmemopen(buf, sizeof buf, "w");
    assert_int_equal(s2s_item_write(fp, j, &err), 0);
    long n = ftell(fp);
    fclose(fp);
    assert_int_equal(n, (long)strlen(line) + 1);
    assert_memory_equal(buf, line, strlen(line));
    assert_int_equal(buf[strlen(line)], '\n');
    free(out);
    free(out2);
    json_decref(j);
    json_decref(j2);
}

/* A real that has no short exact form (0.1) keeps its value; its text becomes 17 digits. This
 * is jansson's formatting, documented in docs/items.md. */
static void test_round_trip_real_value(void **state) {
    (void)state;
    json_t *j = parse("{\"x\":0.1}");
    char *out = s2s_item_dumps(j);
    json_t *back = parse(out);
    assert_true(json_real_value(json_object_get(back, "x")) == 0.1);
    free(out);
    json_decref(j);
    json_decref(back);
}

static void test_provenance(void **state) {
    (void)state;
    json_t *j = parse(VALID);
    s2s_err err;
    assert_int_equal(
        s2s_item_add_provenance(j, "s2s-import", json_pack("{s:s}", "format", "x"), &err), 0);
    assert_int_equal(s2s_item_add_provenance(j, "s2s-synth", NULL, &err), 0);
    json_t *p = json_object_get(j, "provenance");
    assert_int_equal(json_array_size(p), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(p, 0), "tool")),
                        "s2s-import");
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_array_get(p, 0), "params"), "format")),
                        "x");
    assert_non_null(json_object_get(json_array_get(p, 1), "version"));
    assert_int_equal(s2s_item_validate(j, &err), 0);
    json_decref(j);
    j = parse("{\"id\":\"a\",\"provenance\":5}");
    assert_int_equal(s2s_item_add_provenance(j, "t", json_object(), &err), S2S_EDATA);
    assert_non_null(strstr(err.msg, "\"provenance\" is not an array"));
    json_decref(j);
}

static void test_idset(void **state) {
    (void)state;
    s2s_idset *s = s2s_idset_new();
    assert_non_null(s);
    char id[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(id, sizeof id, "id_%d", i);
        assert_int_equal(s2s_idset_add(s, id), 1);
    }
    assert_int_equal(s2s_idset_add(s, "id_42"), 0);
    assert_true(s2s_idset_has(s, "id_4999"));
    assert_false(s2s_idset_has(s, "id_5000"));
    assert_int_equal(s2s_idset_size(s), 5000);
    s2s_idset_free(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_not_object),
        cmocka_unit_test(test_id),
        cmocka_unit_test(test_task),
        cmocka_unit_test(test_lang),
        cmocka_unit_test(test_category),
        cmocka_unit_test(test_context),
        cmocka_unit_test(test_candidates),
        cmocka_unit_test(test_counts),
        cmocka_unit_test(test_right_answers),
        cmocka_unit_test(test_accessors),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_round_trip_real_value),
        cmocka_unit_test(test_provenance),
        cmocka_unit_test(test_idset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

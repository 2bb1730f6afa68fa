/* test_import.c — the importers of libs2s/import.c through their API, on small files written
 * here: RFC 4180 details reaching the items, ids, skip_bad reasons, callback errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "s2s/import.h"
#include "s2s/item.h"

static char dir[256];

static int setup(void **state) {
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/test_import.XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd);
}

static const char *write_file(const char *name, const char *text, size_t len) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(text, 1, len, fp), len);
    fclose(fp);
    return path;
}
#define WRITE(name, s) write_file(name, s, sizeof(s) - 1)

typedef struct got {
    json_t *items; /* array of copies */
    int fail_at;   /* callback fails on this item (1-based), 0 = never */
} got;

static int collect(json_t *item, void *arg, s2s_err *err) {
    got *g = arg;
    json_array_append(g->items, item);
    if (g->fail_at && (int)json_array_size(g->items) == g->fail_at)
        return s2s_err_set(err, S2S_EIO, "disk full");
    return 0;
}

static long run(const char *fmt, const s2s_import_opts *o, const char *path, got *g, s2s_err *err,
                s2s_importer **keep) {
    s2s_importer *im = s2s_importer_new(fmt, o, collect, g, err);
    assert_non_null(im);
    long n = s2s_importer_file(im, path, err);
    if (keep)
        *keep = im;
    else
        s2s_importer_free(im);
    return n;
}

#define SC_HDR                                                                                     \
    "InputStoryid,InputSentence1,InputSentence2,InputSentence3,InputSentence4,"                    \
    "RandomFifthSentenceQuiz1,RandomFifthSentenceQuiz2,AnswerRightEnding\r\n"

static void test_storycloze_csv_details(void **state) {
    (void)state;
    /* BOM, CRLF, columns in another order are found by name, a quoted field with a comma, a
     * doubled quote and an embedded CRLF, surrounding spaces trimmed. */
    const char *p =
        WRITE("sc.csv", "\xEF\xBB\xBF"
                        "AnswerRightEnding,InputStoryid,InputSentence1,InputSentence2,"
                        "InputSentence3,InputSentence4,RandomFifthSentenceQuiz1,"
                        "RandomFifthSentenceQuiz2\r\n"
                        "2,s1,\"Ann said \"\"hi,\r\nthere\"\".\", B. ,C.,D.,Bad.,Good.\r\n"
                        "1,s2,E.,F.,G.,H.,Right.,Wrong.\r\n");
    got g = {json_array(), 0};
    s2s_err err;
    assert_int_equal(run("storycloze", NULL, p, &g, &err, NULL), 2);
    json_t *a = json_array_get(g.items, 0), *b = json_array_get(g.items, 1);
    assert_string_equal(s2s_item_id(a), "sstorycloze_000001");
    assert_string_equal(s2s_item_context_text(a), "Ann said \"hi,\r\nthere\". B. C. D.");
    assert_int_equal(s2s_item_right_index(a), 1);
    assert_string_equal(s2s_item_candidate_text(a, 1), "Good.");
    assert_string_equal(s2s_item_lang(a), "en");
    /* the second record starts on physical line 4 but is data row 2 */
    json_t *src = json_object_get(b, "source");
    assert_int_equal(json_integer_value(json_object_get(src, "line")), 4);
    assert_int_equal(json_integer_value(json_object_get(src, "row")), 2);
    assert_string_equal(json_string_value(json_object_get(src, "story_id")), "s2");
    assert_string_equal(json_string_value(json_object_get(src, "file")), "sc.csv");
    assert_string_equal(s2s_item_id(b), "sstorycloze_000002");
    assert_int_equal(s2s_item_right_index(b), 0);
    json_decref(g.items);
}

static void test_storycloze_skip_bad(void **state) {
    (void)state;
    const char *p = WRITE("bad.csv", SC_HDR "a,1,2,3,4,r,w,1\r\n"
                                            "b,1,2,3,4,r,w,0\r\n"
                                            "c,1,2,3,4,r,w\r\n"
                                            "d,1,2,3,,r,w,2\r\n"
                                            "\r\n"
                                            "e,1,2,3,4,r,w,2\r\n");
    got g = {json_array(), 0};
    s2s_err err;
    /* without skip_bad: the first bad row stops the import */
    assert_int_equal(run("storycloze", NULL, p, &g, &err, NULL), S2S_EDATA);
    assert_non_null(strstr(err.msg, "bad.csv:3: AnswerRightEnding must be 1 or 2, not \"0\""));
    json_array_clear(g.items);
    s2s_import_opts o = {.skip_bad = 1};
    s2s_importer *im;
    assert_int_equal(run("storycloze", &o, p, &g, &err, &im), 2);
    assert_int_equal(s2s_importer_skipped(im), 3);
    assert_non_null(strstr(s2s_importer_skip_reason(im, 0), "bad.csv:3: AnswerRightEnding"));
    assert_non_null(
        strstr(s2s_importer_skip_reason(im, 1), "bad.csv:4: 7 fields, the header has 8"));
    assert_non_null(strstr(s2s_importer_skip_reason(im, 2), "bad.csv:5: InputSentence4 is empty"));
    assert_null(s2s_importer_skip_reason(im, 3));
    /* the blank line is not a row; ids keep the row numbers of the file, skipped rows included */
    assert_string_equal(s2s_item_id(json_array_get(g.items, 0)), "sstorycloze_000001");
    assert_string_equal(s2s_item_id(json_array_get(g.items, 1)), "sstorycloze_000005");
    assert_int_equal(s2s_importer_count(im), 2);
    s2s_importer_free(im);
    json_decref(g.items);
}

static void test_callback_error_stops(void **state) {
    (void)state;
    const char *p =
        WRITE("cb.csv", SC_HDR "a,1,2,3,4,r,w,1\r\nb,1,2,3,4,r,w,2\r\nc,1,2,3,4,r,w,1\r\n");
    got g = {json_array(), 2};
    s2s_err err;
    assert_int_equal(run("storycloze", NULL, p, &g, &err, NULL), S2S_EIO);
    assert_string_equal(err.msg, "disk full");
    assert_int_equal(json_array_size(g.items), 2);
    json_decref(g.items);
}

static void test_options(void **state) {
    (void)state;
    s2s_err err;
    assert_null(s2s_importer_new("csv", NULL, collect, NULL, &err));
    assert_int_equal(err.code, S2S_EINVAL);
    assert_non_null(strstr(err.msg, "storycloze, cmmlu, s2sbench, items"));
    s2s_import_opts o = {.prefix = "a.b"};
    assert_null(s2s_importer_new("storycloze", &o, collect, NULL, &err));
    assert_non_null(strstr(err.msg, "--prefix \"a.b\" is not valid"));
    o.prefix = "x";
    assert_null(s2s_importer_new("items", &o, collect, NULL, &err));
    o = (s2s_import_opts){.lang = ""};
    assert_null(s2s_importer_new("cmmlu", &o, collect, NULL, &err));
    /* prefix and lang reach the items */
    const char *p = WRITE("opt.csv", SC_HDR "a,1,2,3,4,r,w,1\r\n");
    got g = {json_array(), 0};
    o = (s2s_import_opts){.prefix = "zh-sc", .lang = "zh"};
    assert_int_equal(run("storycloze", &o, p, &g, &err, NULL), 1);
    assert_string_equal(s2s_item_id(json_array_get(g.items, 0)), "zh-sc_000001");
    assert_string_equal(s2s_item_lang(json_array_get(g.items, 0)), "zh");
    json_decref(g.items);
}

static void test_cmmlu_ids(void **state) {
    (void)state;
    /* a subject name with characters not allowed in ids; the category keeps the name */
    const char *p = WRITE("high.school v2.csv", ",Question,A,B,C,D,Answer\n"
                                                "0,\"问题一，有逗号\",甲, 乙 ,丙,丁,C\n"
                                                "1,问题二,a,b,c,d,A\n");
    got g = {json_array(), 0};
    s2s_err err;
    assert_int_equal(run("cmmlu", NULL, p, &g, &err, NULL), 2);
    json_t *a = json_array_get(g.items, 0);
    assert_string_equal(s2s_item_id(a), "scmmlu_high_school_v2_0001");
    assert_string_equal(json_string_value(json_object_get(a, "category")), "high.school v2");
    assert_string_equal(s2s_item_task(a), "choice");
    assert_string_equal(s2s_item_lang(a), "zh");
    assert_int_equal(s2s_item_right_index(a), 2);
    assert_string_equal(s2s_item_candidate_text(a, 1), "乙");
    json_t *cands = json_object_get(a, "candidates");
    assert_string_equal(json_string_value(json_object_get(json_array_get(cands, 3), "key")), "D");
    assert_string_equal(json_string_value(json_object_get(json_object_get(a, "source"), "index")),
                        "0");
    json_decref(g.items);
}

static void test_cmmlu_dir(void **state) {
    (void)state;
    char sub[300];
    snprintf(sub, sizeof sub, "%s/subj", dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    WRITE("subj/b.csv", ",Question,A,B,C,D,Answer\n0,qb,a,b,c,d,D\n");
    WRITE("subj/a.csv", ",Question,A,B,C,D,Answer\n0,qa,a,b,c,d,A\n1,qa2,a,b,c,d,B\n");
    WRITE("subj/notes.txt", "not a csv");
    got g = {json_array(), 0};
    s2s_err err;
    assert_int_equal(run("cmmlu", NULL, sub, &g, &err, NULL), 3);
    assert_string_equal(s2s_item_id(json_array_get(g.items, 0)), "scmmlu_a_0001");
    assert_string_equal(s2s_item_id(json_array_get(g.items, 2)), "scmmlu_b_0001");
    json_decref(g.items);
    /* a directory for storycloze is refused */
    g.items = json_array();
    assert_int_equal(run("storycloze", NULL, sub, &g, &err, NULL), S2S_EINVAL);
    json_decref(g.items);
}

static void test_s2sbench(void **state) {
    (void)state;
    const char *p = WRITE("up.jsonl", "{\"uttid\": \"11_x\", \"first\": \"c\", \"last\": \"w\"}\n"
                                      "\n"
                                      "{\"uttid\": \"10_x\", \"first\": \"c\", \"last\": \"r\"}\r\n"
                                      "{\"uttid\": 5, \"question\": \"q\", \"A\": \"a\", \"B\": "
                                      "\"b\", \"C\": \"c\", \"D\": \"d\", \"answer\": \"A\", "
                                      "\"subject\": \"math\"}\n");
    got g = {json_array(), 0};
    s2s_err err;
    assert_int_equal(run("s2sbench", NULL, p, &g, &err, NULL), 2);
    json_t *choice = json_array_get(g.items, 0), *story = json_array_get(g.items, 1);
    assert_string_equal(s2s_item_id(choice), "s2sbench_5");
    assert_string_equal(json_string_value(json_object_get(choice, "category")), "math");
    assert_string_equal(s2s_item_id(story), "s2sbench_10_x");
    assert_string_equal(s2s_item_candidate_text(story, 0), "r");
    assert_int_equal(s2s_item_right_index(story), 0);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(story, "source"), "line")),
                     3);
    json_decref(g.items);

    /* duplicate uttid number */
    p = WRITE("dup.jsonl", "{\"uttid\": 0, \"first\": \"c\", \"last\": \"r\"}\n"
                           "{\"uttid\": \"0_b\", \"first\": \"c\", \"last\": \"r\"}\n");
    g.items = json_array();
    assert_int_equal(run("s2sbench", NULL, p, &g, &err, NULL), S2S_EDATA);
    assert_non_null(strstr(err.msg, "dup.jsonl:2: duplicate uttid number 0 (first at line 1)"));
    /* uttid without a number */
    p = WRITE("nonum.jsonl", "{\"uttid\": \"abc\", \"first\": \"c\", \"last\": \"r\"}\n");
    assert_int_equal(run("s2sbench", NULL, p, &g, &err, NULL), S2S_EDATA);
    assert_non_null(strstr(err.msg, "nonum.jsonl:1: uttid \"abc\" does not start with a number"));
    /* neither form */
    p = WRITE("neither.jsonl", "{\"uttid\": 0, \"text\": \"c\"}\n");
    assert_int_equal(run("s2sbench", NULL, p, &g, &err, NULL), S2S_EDATA);
    assert_non_null(strstr(err.msg, "neither.jsonl:1: neither a story record"));
    /* bad answer letter */
    p = WRITE("ans.jsonl", "{\"uttid\": 1, \"first\": \"q\", \"A\": \"a\", \"B\": \"b\", \"C\": "
                           "\"c\", \"D\": \"d\", \"answer\": \"E\"}\n");
    assert_int_equal(run("s2sbench", NULL, p, &g, &err, NULL), S2S_EDATA);
    assert_non_null(strstr(err.msg, "ans.jsonl:1: \"answer\" must be"));
    assert_int_equal(json_array_size(g.items), 0);
    json_decref(g.items);
}

static void test_items(void **state) {
    (void)state;
    const char *p =
        WRITE("it.jsonl", "{\"id\":\"a\",\"task\":\"cloze\",\"lang\":\"en\",\"context\":{\"text\":"
                          "\"c\"},\"candidates\":[{\"text\":\"x\",\"label\":1},{\"text\":\"y\","
                          "\"label\":1}]}\n");
    got g = {json_array(), 0};
    s2s_err err;
    assert_int_equal(run("items", NULL, p, &g, &err, NULL), S2S_EDATA);
    assert_non_null(strstr(err.msg, "it.jsonl:1: item a: exactly one candidate must have label 1"));
    p = WRITE("dupkey.jsonl", "{\"id\":\"a\",\"id\":\"b\"}\n");
    assert_int_equal(run("items", NULL, p, &g, &err, NULL), S2S_EFORMAT);
    assert_non_null(strstr(err.msg, "dupkey.jsonl:1: bad JSON"));
    p = WRITE("arr.jsonl", "[1]\n");
    assert_int_equal(run("items", NULL, p, &g, &err, NULL), S2S_EFORMAT);
    assert_non_null(strstr(err.msg, "arr.jsonl:1: not a JSON object"));
    static const char nul[] = "{}\n{\"a\0\"}\n";
    p = write_file("nul.jsonl", nul, sizeof nul - 1);
    assert_int_equal(run("items", NULL, p, &g, &err, NULL), S2S_EFORMAT);
    assert_non_null(strstr(err.msg, "nul.jsonl:2: NUL byte"));
    assert_int_equal(run("items", NULL, "/nonexistent/x.jsonl", &g, &err, NULL), S2S_EIO);
    json_decref(g.items);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_storycloze_csv_details),
        cmocka_unit_test(test_storycloze_skip_bad),
        cmocka_unit_test(test_callback_error_stops),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_cmmlu_ids),
        cmocka_unit_test(test_cmmlu_dir),
        cmocka_unit_test(test_s2sbench),
        cmocka_unit_test(test_items),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

/* test_csv.c — RFC 4180 reader (libs2s/csv.c): every edge case and every error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "s2s/csv.h"

/* Reads all records of text (len bytes) and renders them as "[a|b]@line" strings joined by ' ',
 * so one assert compares a whole parse. On error, "ERR:" + message is appended and reading goes
 * on (the reader resynchronises at the next line when it can). */
static char *parse(const char *text, size_t len) {
    FILE *fp = fmemopen((void *)text, len, "rb");
    assert_non_null(fp);
    s2s_err err;
    s2s_err_clear(&err);
    s2s_csv *c = s2s_csv_new(fp, "t.csv", &err);
    assert_non_null(c);
    static char out[4096];
    out[0] = 0;
    size_t o = 0;
    for (int guard = 0; guard < 100; guard++) {
        char **f;
        size_t n;
        long line;
        int r = s2s_csv_next(c, &f, &n, &line, &err);
        if (r == 0) break;
        if (r < 0) {
            o += (size_t)snprintf(out + o, sizeof out - o, "%sERR:%s", o ? " " : "", err.msg);
            assert_int_equal(err.code, S2S_EFORMAT);
            continue;
        }
        o += (size_t)snprintf(out + o, sizeof out - o, "%s[", o ? " " : "");
        for (size_t i = 0; i < n; i++)
            o += (size_t)snprintf(out + o, sizeof out - o, "%s%s", i ? "|" : "", f[i]);
        o += (size_t)snprintf(out + o, sizeof out - o, "]@%ld", line);
    }
    assert_string_equal(s2s_csv_name(c), "t.csv");
    s2s_csv_free(c);
    fclose(fp);
    return out;
}

#define P(s) parse(s, sizeof(s) - 1)

static void test_plain(void **state) {
    (void)state;
    assert_string_equal(P("a,b,c\n1,2,3\n"), "[a|b|c]@1 [1|2|3]@2");
    /* no final line end */
    assert_string_equal(P("a,b\n1,2"), "[a|b]@1 [1|2]@2");
    /* empty fields, leading and trailing */
    assert_string_equal(P(",a,\n,,\n"), "[|a|]@1 [||]@2");
    /* spaces are data */
    assert_string_equal(P(" a , b \n"), "[ a | b ]@1");
}

static void test_empty_input(void **state) {
    (void)state;
    assert_string_equal(P(""), "");
    assert_string_equal(P("\xEF\xBB\xBF"), "");
}

static void test_blank_line(void **state) {
    (void)state;
    assert_string_equal(P("a\n\nb\n"), "[a]@1 []@2 [b]@3");
    assert_string_equal(P("\n"), "[]@1");
}

static void test_crlf(void **state) {
    (void)state;
    assert_string_equal(P("a,b\r\n1,2\r\n"), "[a|b]@1 [1|2]@2");
    /* a lone CR ends a line too (old Mac files) */
    assert_string_equal(P("a\rb\r"), "[a]@1 [b]@2");
    /* mixed */
    assert_string_equal(P("a\r\nb\nc"), "[a]@1 [b]@2 [c]@3");
}

static void test_bom(void **state) {
    (void)state;
    assert_string_equal(P("\xEF\xBB\xBFInputStoryid,x\n1,2\n"), "[InputStoryid|x]@1 [1|2]@2");
    /* a BOM is only skipped at the very start */
    assert_string_equal(P("a\n\xEF\xBB\xBF"
                          "b\n"),
                        "[a]@1 [\xEF\xBB\xBF"
                        "b]@2");
    /* U+FFFD (EF BF BD) at the start is text, not a BOM */
    assert_string_equal(P("\xEF\xBF\xBDx\n"), "[\xEF\xBF\xBDx]@1");
}

static void test_quoted(void **state) {
    (void)state;
    assert_string_equal(P("\"a,b\",c\n"), "[a,b|c]@1");
    assert_string_equal(P("\"say \"\"hi\"\"\",x\n"), "[say \"hi\"|x]@1");
    assert_string_equal(P("\"\"\"\"\n"), "[\"]@1");
    assert_string_equal(P("\"\",\"\"\n"), "[|]@1");
    /* quoted last field without final newline */
    assert_string_equal(P("a,\"b\""), "[a|b]@1");
    /* quotes inside quoted field with comma right after */
    assert_string_equal(P("\"x\"\",\"\"y\",z\n"), "[x\",\"y|z]@1");
}

static void test_embedded_newlines(void **state) {
    (void)state;
    /* the record keeps its first line; the next record's line counts the embedded ones */
    assert_string_equal(P("\"one\ntwo\",x\nnext\n"), "[one\ntwo|x]@1 [next]@3");
    assert_string_equal(P("\"one\r\ntwo\",x\r\nnext\r\n"), "[one\r\ntwo|x]@1 [next]@3");
    assert_string_equal(P("h\n\"a\n\nb\"\nz\n"), "[h]@1 [a\n\nb]@2 [z]@5");
}

static void test_utf8(void **state) {
    (void)state;
    assert_string_equal(P("问题,答案\n\"你好，世界\",😀\n"), "[问题|答案]@1 [你好，世界|😀]@2");
}

static void test_err_unterminated(void **state) {
    (void)state;
    assert_string_equal(P("a\n\"open,b\nc\n"),
                        "[a]@1 ERR:t.csv:2: unterminated quoted field (the quote opened at line 2 "
                        "is never closed)");
}

static void test_err_stray_quote(void **state) {
    (void)state;
    const char *o = P("a,b\"c\"\nok\n");
    assert_non_null(strstr(o, "ERR:t.csv:1: stray quote inside an unquoted field 2"));
    assert_non_null(strstr(o, "[ok]@2")); /* resynchronised at the next line */
}

static void test_err_text_after_quote(void **state) {
    (void)state;
    const char *o = P("x\n\"a\"b,c\nok\n");
    assert_non_null(strstr(o, "[x]@1 ERR:t.csv:2: stray text after the closing quote of field 1"));
    assert_non_null(strstr(o, "[ok]@3"));
}

static void test_err_utf8(void **state) {
    (void)state;
    /* Latin-1 byte */
    const char *o = P("a\ncaf\xE9,x\nok\n");
    assert_non_null(strstr(
        o, "ERR:t.csv:2: invalid UTF-8 (a sequence starting with byte 0xE9 broken by 0x2C)"));
    assert_non_null(strstr(o, "[ok]@3"));
    /* overlong encoding of '/' */
    assert_non_null(strstr(P("\xC0\xAF\n"), "ERR:t.csv:1: invalid UTF-8 (byte 0xC0)"));
    /* UTF-16 surrogate */
    assert_non_null(
        strstr(P("\xED\xA0\x80\n"),
               "ERR:t.csv:1: invalid UTF-8 (a sequence starting with byte 0xED broken by 0xA0)"));
    /* beyond U+10FFFF */
    assert_non_null(
        strstr(P("\xF4\x90\x80\x80\n"),
               "ERR:t.csv:1: invalid UTF-8 (a sequence starting with byte 0xF4 broken by 0x90)"));
    /* truncated at a line end */
    assert_non_null(
        strstr(P("a\xE4\xBD\nb\n"),
               "ERR:t.csv:1: invalid UTF-8 (a sequence starting with byte 0xE4 broken by 0x0A)"));
    /* truncated at the end of the file */
    assert_non_null(strstr(P("a\xE4\xBD"), "ERR:t.csv:1: invalid UTF-8 (the file ends inside"));
    /* invalid inside a quoted field names the line of the byte */
    assert_non_null(strstr(P("\"a\nb\xFF\"\n"), "ERR:t.csv:2: invalid UTF-8 (byte 0xFF)"));
    /* a broken BOM */
    assert_non_null(
        strstr(P("\xEF\xBB"
                 "a\n"),
               "ERR:t.csv:1: invalid UTF-8 (a sequence starting with byte 0xEF broken by 0x61)"));
}

static void test_err_nul(void **state) {
    (void)state;
    static const char t[] = "a\nb\0c\nok\n";
    const char *o = parse(t, sizeof t - 1);
    assert_non_null(strstr(o, "[a]@1 ERR:t.csv:2: NUL byte in the input"));
    assert_non_null(strstr(o, "[ok]@3"));
}

static void test_long_record(void **state) {
    (void)state;
    /* many fields and a long field grow the buffers */
    size_t nf = 300, flen = 5000;
    size_t len = nf * 2 + flen + 2;
    char *t = malloc(len + 1);
    assert_non_null(t);
    size_t o = 0;
    for (size_t i = 0; i < nf; i++)
        t[o++] = 'x', t[o++] = ',';
    memset(t + o, 'y', flen);
    o += flen;
    t[o++] = '\n';
    t[o] = 0;
    FILE *fp = fmemopen(t, o, "rb");
    s2s_err err;
    s2s_csv *c = s2s_csv_new(fp, "big.csv", &err);
    char **f;
    size_t n;
    long line;
    assert_int_equal(s2s_csv_next(c, &f, &n, &line, &err), 1);
    assert_int_equal(n, nf + 1);
    assert_string_equal(f[0], "x");
    assert_string_equal(f[nf - 1], "x");
    assert_int_equal(strlen(f[nf]), flen);
    assert_int_equal(s2s_csv_next(c, &f, &n, &line, &err), 0);
    assert_int_equal(s2s_csv_next(c, &f, &n, &line, &err), 0); /* stays at the end */
    s2s_csv_free(c);
    fclose(fp);
    free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain),
        cmocka_unit_test(test_empty_input),
        cmocka_unit_test(test_blank_line),
        cmocka_unit_test(test_crlf),
        cmocka_unit_test(test_bom),
        cmocka_unit_test(test_quoted),
        cmocka_unit_test(test_embedded_newlines),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_err_unterminated),
        cmocka_unit_test(test_err_stray_quote),
        cmocka_unit_test(test_err_text_after_quote),
        cmocka_unit_test(test_err_utf8),
        cmocka_unit_test(test_err_nul),
        cmocka_unit_test(test_long_record),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

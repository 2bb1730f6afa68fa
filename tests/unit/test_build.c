/* test_build.c — resumable builds (libs2s/build.c): shard moves with the index renamed, the
 * journal (create, resume, header mismatch, torn last line), dataset.json assembly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "s2s/build.h"
#include "s2s/util.h"

static char dir[] = "/tmp/test_build.XXXXXX";

static void put(const char *name, const char *text) {
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static char *get(const char *name) {
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    unsigned char *d;
    size_t n;
    s2s_err err;
    if (s2s_read_file(p, &d, &n, &err) < 0) return NULL;
    return (char *)d;
}

static void path(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/%s", dir, name);
}

static void test_move_shard(void **state) {
    (void)state;
    const char *idx = "s2s-shard-index 1\nshard\tx-000000.tar\t1536\tabc\nsample\tk\t1\n"
                      "member\tk.json.gz\t0\t512\t3\t00000000\nend\t1\t1\n";
    put("x-000000.tar", "SHARD");
    put("x-000000.tar.idx", idx);
    char a[256], b[256], sha[65];
    path(a, sizeof a, "x-000000.tar");
    path(b, sizeof b, "x-000007.tar");
    s2s_err err;
    s2s_err_clear(&err);
    assert_int_equal(s2s_build_move_shard(a, b, sha, &err), 0);
    char *moved = get("x-000007.tar"), *nidx = get("x-000007.tar.idx");
    assert_string_equal(moved, "SHARD");
    /* only the base name on the shard line changed */
    assert_string_equal(nidx, "s2s-shard-index 1\nshard\tx-000007.tar\t1536\tabc\nsample\tk\t1\n"
                              "member\tk.json.gz\t0\t512\t3\t00000000\nend\t1\t1\n");
    char want[65];
    s2s_sha256_hex(nidx, strlen(nidx), want);
    assert_string_equal(sha, want);
    assert_null(get("x-000000.tar"));
    assert_null(get("x-000000.tar.idx"));
    free(moved), free(nidx);

    /* an index naming another shard is refused, nothing moved */
    put("y-000000.tar", "S");
    put("y-000000.tar.idx", "s2s-shard-index 1\nshard\tother.tar\t1\tabc\nend\t0\t0\n");
    path(a, sizeof a, "y-000000.tar");
    path(b, sizeof b, "y-000001.tar");
    assert_int_equal(s2s_build_move_shard(a, b, sha, &err), S2S_EFORMAT);
    assert_non_null(strstr(err.msg, "y-000000.tar.idx"));
    assert_null(get("y-000001.tar"));
    char *still = get("y-000000.tar");
    assert_non_null(still);
    free(still);
}

static void test_journal(void **state) {
    (void)state;
    char jp[256];
    path(jp, sizeof jp, "journal");
    json_t *hdr = json_pack("{s:s, s:i}", "recipe_sha256", "aa", "per_shard", 5);
    s2s_err err;
    s2s_err_clear(&err);
    int resumed = -1;
    s2s_journal *j = s2s_journal_open(jp, hdr, &resumed, &err);
    assert_non_null(j);
    assert_int_equal(resumed, 0);
    assert_null(s2s_journal_find(j, "shard", 0));
    json_t *r0 = json_pack("{s:i, s:s}", "shard", 0, "sha256", "s0");
    json_t *r1 = json_pack("{s:i, s:s}", "shard", 1, "sha256", "s1");
    json_t *r0b = json_pack("{s:i, s:s}", "shard", 0, "sha256", "s0b");
    json_t *cb = json_pack("{s:s, s:s}", "codebook", "c.cb", "sha256", "cc");
    assert_int_equal(s2s_journal_append(j, r0, &err), 0);
    assert_int_equal(s2s_journal_append(j, r1, &err), 0);
    s2s_journal_close(j);

    /* resume: records are back; a torn last line (no newline) is dropped and cut off */
    FILE *f = fopen(jp, "ab");
    fputs("{\"shard\":2,\"sha2", f);
    fclose(f);
    j = s2s_journal_open(jp, hdr, &resumed, &err);
    assert_non_null(j);
    assert_int_equal(resumed, 1);
    assert_string_equal(
        json_string_value(json_object_get(s2s_journal_find(j, "shard", 1), "sha256")), "s1");
    assert_null(s2s_journal_find(j, "shard", 2));
    assert_null(s2s_journal_find(j, "codebook", -1));
    assert_int_equal(s2s_journal_append(j, r0b, &err), 0); /* the later record wins */
    assert_int_equal(s2s_journal_append(j, cb, &err), 0);
    s2s_journal_close(j);
    char *text = get("journal");
    assert_non_null(text);
    assert_null(strstr(text, "sha2\"")); /* the torn bytes are gone */
    assert_int_equal(text[strlen(text) - 1], '\n');
    free(text);
    j = s2s_journal_open(jp, hdr, &resumed, &err);
    assert_non_null(j);
    assert_string_equal(
        json_string_value(json_object_get(s2s_journal_find(j, "shard", 0), "sha256")), "s0b");
    assert_non_null(s2s_journal_find(j, "codebook", -1));
    s2s_journal_close(j);

    /* another header: refused, naming the key */
    json_t *other = json_pack("{s:s, s:i}", "recipe_sha256", "aa", "per_shard", 6);
    assert_null(s2s_journal_open(jp, other, &resumed, &err));
    assert_int_equal(err.code, S2S_EINVAL);
    assert_non_null(strstr(err.msg, "per_shard 5, this one has 6"));
    /* a damaged line in the middle is a format error with its line number */
    put("bad", "{\"recipe_sha256\":\"aa\",\"per_shard\":5}\nnot json\n{\"shard\":0}\n");
    path(jp, sizeof jp, "bad");
    assert_null(s2s_journal_open(jp, hdr, &resumed, &err));
    assert_int_equal(err.code, S2S_EFORMAT);
    assert_non_null(strstr(err.msg, "bad:2:"));
    json_decref(other), json_decref(hdr), json_decref(r0), json_decref(r1), json_decref(r0b);
    json_decref(cb);
}

static json_t *chunk(const char *shard, int samples, const char *lang, const char *prov) {
    json_t *c = json_loads("{\"format\":\"s2s-shards\",\"format_version\":1}", 0, NULL);
    json_object_set_new(c, "shard_count", json_integer(shard ? 1 : 0));
    json_object_set_new(c, "samples", json_integer(samples));
    json_object_set_new(c, "members", json_integer(samples * 4));
    json_object_set_new(c, "pairs", json_integer(samples));
    json_object_set_new(
        c, "counts",
        json_pack("{s:{s:{s:i, s:i}}}", "cloze", lang, "samples", samples, "pairs", samples));
    json_object_set_new(c, "shards", shard ? json_pack("[{s:s}]", "name", shard) : json_array());
    json_object_set_new(c, "build", json_pack("{s:s}", "tool", "s2s-pack"));
    json_object_set_new(c, "provenance",
                        json_pack("[{s:s, s:i}, {s:s, s:i}]", "tool", "import", "samples", samples,
                                  "tool", prov, "samples", samples));
    return c;
}

static void test_dataset(void **state) {
    (void)state;
    json_t *c[3] = {chunk("a-0.tar", 5, "en", "synth-en"), chunk("a-1.tar", 5, "zh", "synth-zh"),
                    chunk("a-2.tar", 2, "en", "synth-en")};
    s2s_err err;
    s2s_err_clear(&err);
    json_t *ds = s2s_build_dataset(c, 3, &err);
    assert_non_null(ds);
    char *s = json_dumps(ds, JSON_COMPACT | JSON_PRESERVE_ORDER);
    assert_string_equal(
        s, "{\"format\":\"s2s-shards\",\"format_version\":1,\"shard_count\":3,\"samples\":12,"
           "\"members\":48,\"pairs\":12,\"counts\":{\"cloze\":{\"en\":{\"samples\":7,\"pairs\":7},"
           "\"zh\":{\"samples\":5,\"pairs\":5}}},\"shards\":[{\"name\":\"a-0.tar\"},{\"name\":"
           "\"a-1.tar\"},{\"name\":\"a-2.tar\"}],\"build\":{\"tool\":\"s2s-pack\"},"
           "\"provenance\":[{\"tool\":\"import\",\"samples\":12},{\"tool\":\"synth-en\","
           "\"samples\":7},{\"tool\":\"synth-zh\",\"samples\":5}]}");
    free(s);
    json_decref(ds);
    /* an empty part: one chunk without shards */
    json_t *e = chunk(NULL, 0, "en", "x");
    ds = s2s_build_dataset(&e, 1, &err);
    assert_non_null(ds);
    assert_int_equal(json_integer_value(json_object_get(ds, "shard_count")), 0);
    json_decref(ds);
    assert_null(s2s_build_dataset(c, 0, &err));
    json_object_set_new(e, "format", json_string("other"));
    assert_null(s2s_build_dataset(&e, 1, &err));
    assert_int_equal(err.code, S2S_EFORMAT);
    json_decref(e);
    for (int i = 0; i < 3; i++)
        json_decref(c[i]);
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
        cmocka_unit_test(test_move_shard),
        cmocka_unit_test(test_journal),
        cmocka_unit_test(test_dataset),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

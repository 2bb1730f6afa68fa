/* test_sample.c — the stream reader/writer: format detection, grouping, damage, parts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "s2s/item.h"
#include "s2s/sample.h"
#include "s2s/tar.h"

static char dir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/s2s-test-sample-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd);
}

static const char *ITEM_FMT =
    "{\"id\":\"%s\",\"task\":\"cloze\",\"lang\":\"en\",\"extra\":{\"keep\":[1,2]},"
    "\"context\":{\"text\":\"A story.\"},\"candidates\":[{\"text\":\"Good.\",\"label\":1},"
    "{\"text\":\"Bad.\",\"label\":0}]}";

static void put_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static int read_count(const char *path, int flags, s2s_err *err, char **keys)
{
    const char *paths[] = {path};
    s2s_reader *r = s2s_reader_open(paths, 1, flags, err);
    assert_non_null(r);
    s2s_sample *s;
    int rc, n = 0;
    while ((rc = s2s_reader_next(r, &s, err)) == 1) {
        if (keys) {
            strcat(*keys, s->key);
            strcat(*keys, ";");
        }
        n++;
        s2s_sample_free(s);
    }
    s2s_reader_close(r);
    return rc < 0 ? rc : n;
}

static void test_jsonl(void **state)
{
    (void)state;
    char path[300], buf[4096];
    snprintf(path, sizeof path, "%s/items.jsonl", dir);
    int n = snprintf(buf, sizeof buf, "\xEF\xBB\xBF");
    n += snprintf(buf + n, sizeof buf - n, ITEM_FMT, "a1");
    n += snprintf(buf + n, sizeof buf - n, "\n\n");
    n += snprintf(buf + n, sizeof buf - n, ITEM_FMT, "a2");
    n += snprintf(buf + n, sizeof buf - n, "\n");
    put_file(path, buf);
    s2s_err err;
    char keys[256] = "", *kp = keys;
    assert_int_equal(read_count(path, 0, &err, &kp), 2);
    assert_string_equal(keys, "a1;a2;");
    /* duplicate id names the line */
    n = snprintf(buf, sizeof buf, ITEM_FMT, "a1");
    n += snprintf(buf + n, sizeof buf - n, "\n");
    n += snprintf(buf + n, sizeof buf - n, ITEM_FMT, "a1");
    put_file(path, buf);
    assert_true(read_count(path, 0, &err, NULL) < 0);
    assert_non_null(strstr(err.msg, "items.jsonl:2: duplicate id a1"));
    /* invalid item names file:line and the reason */
    snprintf(buf, sizeof buf, "{\"id\":\"x.y\",\"task\":\"cloze\"}\n");
    put_file(path, buf);
    assert_true(read_count(path, 0, &err, NULL) < 0);
    assert_non_null(strstr(err.msg, "items.jsonl:1: id \"x.y\" is not valid"));
    /* broken JSON */
    put_file(path, "{\"id\": \n");
    assert_true(read_count(path, 0, &err, NULL) < 0);
    assert_non_null(strstr(err.msg, "items.jsonl:1: invalid JSON"));
    /* empty input is an error, not zero items */
    put_file(path, "");
    assert_true(read_count(path, 0, &err, NULL) < 0);
    assert_non_null(strstr(err.msg, "empty input"));
}

static void write_stream(const char *path, int n_items, int split)
{
    s2s_err err;
    s2s_writer *w = s2s_writer_open(path, S2S_FMT_TAR, &err);
    assert_non_null(w);
    for (int i = 0; i < n_items; i++) {
        char id[32], js[1024];
        snprintf(id, sizeof id, "it_%03d", i);
        snprintf(js, sizeof js, ITEM_FMT, id);
        s2s_sample *s = s2s_sample_new(id, &err);
        s->item = json_loads(js, 0, NULL);
        assert_int_equal(s2s_sample_put_copy(s, "ctx.wav", "WAVDATA", 7, &err), 0);
        assert_int_equal(s2s_sample_put_copy(s, "c0.units", "1 2 3", 5, &err), 0);
        assert_int_equal(s2s_writer_put(w, s, &err), 0);
        s2s_sample_free(s);
    }
    if (split) { /* a member of it_000 after it_001's: the sample is split */
        s2s_sample *s = s2s_sample_new("it_000", &err);
        s->item = json_loads("{\"id\":\"it_000\"}", 0, NULL);
        assert_int_equal(s2s_writer_put(w, s, &err), 0);
        s2s_sample_free(s);
    }
    assert_int_equal(s2s_writer_close(w, &err), 0);
}

static void test_tar_stream(void **state)
{
    (void)state;
    char path[300];
    snprintf(path, sizeof path, "%s/s.tar", dir);
    write_stream(path, 5, 0);
    s2s_err err;
    const char *paths[] = {path};
    s2s_reader *r = s2s_reader_open(paths, 1, 0, &err);
    s2s_sample *s;
    int n = 0;
    while (s2s_reader_next(r, &s, &err) == 1) {
        assert_int_equal(s->n_members, 2);
        assert_string_equal(s->members[0].suffix, "ctx.wav");
        assert_memory_equal(s2s_sample_get(s, "c0.units")->data, "1 2 3", 5);
        /* unknown field kept */
        assert_non_null(json_object_get(s->item, "extra"));
        s2s_sample_free(s);
        n++;
    }
    assert_int_equal(n, 5);
    assert_int_equal(s2s_reader_format(r), S2S_FMT_TAR);
    s2s_reader_close(r);
    /* split sample */
    write_stream(path, 3, 1);
    assert_true(read_count(path, S2S_READ_NO_VALIDATE, &err, NULL) < 0);
    assert_non_null(strstr(err.msg, "sample split"));
    /* the stream cut short: truncated, never a silent partial read */
    write_stream(path, 3, 0);
    struct stat st;
    stat(path, &st);
    assert_int_equal(truncate(path, st.st_size - 1024), 0);
    assert_true(read_count(path, 0, &err, NULL) < 0);
    assert_non_null(strstr(err.msg, "no end-of-archive marker"));
}

static void test_parts(void **state)
{
    (void)state;
    char path[300];
    snprintf(path, sizeof path, "%s/p.tar", dir);
    write_stream(path, 40, 0);
    s2s_err err;
    for (unsigned nparts = 1; nparts <= 5; nparts++) {
        int total = 0;
        for (unsigned i = 0; i < nparts; i++) {
            const char *paths[] = {path};
            s2s_reader *r = s2s_reader_open(paths, 1, 0, &err);
            s2s_part part = {i, nparts};
            s2s_reader_set_part(r, &part);
            s2s_sample *s;
            while (s2s_reader_next(r, &s, &err) == 1) {
                assert_true(s2s_part_keep(&part, s->key));
                total++;
                s2s_sample_free(s);
            }
            assert_int_equal(s2s_reader_count(r) + s2s_reader_skipped(r), 40);
            s2s_reader_close(r);
        }
        assert_int_equal(total, 40);
    }
    s2s_part p;
    assert_int_equal(s2s_part_parse("2/3", &p, &err), 0);
    assert_int_equal(p.index, 2);
    assert_true(s2s_part_parse("3/3", &p, &err) < 0);
    assert_true(s2s_part_parse("1/0", &p, &err) < 0);
    assert_true(s2s_part_parse("x", &p, &err) < 0);
    /* the published FNV-1a 64 test vectors (the part rule is FNV-1a of the id) */
    assert_true(s2s_fnv1a64("") == 0xcbf29ce484222325ULL);
    assert_true(s2s_fnv1a64("a") == 0xaf63dc4c8601ec8cULL);
    assert_true(s2s_fnv1a64("foobar") == 0x85944171f73967e8ULL);
}

static void test_gz_members(void **state)
{
    (void)state;
    char path[300];
    snprintf(path, sizeof path, "%s/g.tar", dir);
    char js[1024];
    snprintf(js, sizeof js, ITEM_FMT, "g1");
    /* gzip the JSON the way a shard stores it */
    unsigned char gz[2048];
    z_stream z = {0};
    deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
    z.next_in = (unsigned char *)js;
    z.avail_in = (uInt)strlen(js);
    z.next_out = gz;
    z.avail_out = sizeof gz;
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    size_t gzn = z.total_out;
    deflateEnd(&z);
    FILE *fp = fopen(path, "wb");
    s2s_err err;
    s2s_tar_writer *w = s2s_tar_writer_new(fp, path, &err);
    assert_int_equal(s2s_tar_write(w, "g1.json.gz", gz, gzn, NULL, NULL, &err), 0);
    assert_int_equal(s2s_tar_writer_finish(w, &err), 0);
    fclose(fp);
    const char *paths[] = {path};
    s2s_reader *r = s2s_reader_open(paths, 1, 0, &err);
    s2s_sample *s;
    assert_int_equal(s2s_reader_next(r, &s, &err), 1);
    assert_string_equal(s2s_item_id(s->item), "g1");
    s2s_sample_free(s);
    s2s_reader_close(r);
    /* corrupt gzip: named */
    gz[gzn / 2] ^= 0xff;
    fp = fopen(path, "wb");
    w = s2s_tar_writer_new(fp, path, &err);
    assert_int_equal(s2s_tar_write(w, "g1.json.gz", gz, gzn, NULL, NULL, &err), 0);
    assert_int_equal(s2s_tar_writer_finish(w, &err), 0);
    fclose(fp);
    assert_true(read_count(path, 0, &err, NULL) < 0);
    assert_non_null(strstr(err.msg, "g1.json.gz"));
}

static void test_writer_abort(void **state)
{
    (void)state;
    char path[300];
    snprintf(path, sizeof path, "%s/out.tar", dir);
    s2s_err err;
    s2s_writer *w = s2s_writer_open(path, S2S_FMT_TAR, &err);
    s2s_sample *s = s2s_sample_new("k", &err);
    s->item = json_loads("{\"id\":\"k\"}", 0, NULL);
    assert_int_equal(s2s_writer_put(w, s, &err), 0);
    s2s_sample_free(s);
    s2s_writer_abort(w);
    struct stat st;
    assert_int_not_equal(stat(path, &st), 0);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "test -z \"$(ls %s | grep out.tar)\"", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jsonl),      cmocka_unit_test(test_tar_stream),
        cmocka_unit_test(test_parts),      cmocka_unit_test(test_gz_members),
        cmocka_unit_test(test_writer_abort),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

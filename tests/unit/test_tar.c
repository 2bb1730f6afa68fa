/* test_tar.c — ustar writer/reader: round trips, long names, pax from Python, damage. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "s2s/tar.h"
#include "s2s/util.h"

static char tmpdir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/s2s-test-tar-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    return system(cmd);
}

static void write_tar(const char *path, const char **names, const char **datas, int n, int finish)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    s2s_err err;
    s2s_tar_writer *w = s2s_tar_writer_new(fp, path, &err);
    assert_non_null(w);
    for (int i = 0; i < n; i++)
        assert_int_equal(s2s_tar_write(w, names[i], datas[i], strlen(datas[i]), NULL, NULL, &err), 0);
    if (finish) assert_int_equal(s2s_tar_writer_finish(w, &err), 0);
    else s2s_tar_writer_free(w);
    fclose(fp);
}

static char longname[400];

static void test_roundtrip(void **state)
{
    (void)state;
    char path[300];
    snprintf(path, sizeof path, "%s/a.tar", tmpdir);
    /* a 180-byte name with no usable '/' forces a pax path record; a 150-byte one with a '/'
     * uses the ustar prefix field */
    memset(longname, 'k', 180);
    strcpy(longname + 180, ".json");
    char prefixed[200];
    memset(prefixed, 'd', 90);
    prefixed[90] = '/';
    memset(prefixed + 91, 'f', 60);
    strcpy(prefixed + 151, ".txt");
    const char *names[] = {"x.json", "x.ctx.wav", longname, prefixed, "empty.c0.units"};
    const char *datas[] = {"{\"id\":\"x\"}\n", "RIFF....", "long", "pre", ""};
    write_tar(path, names, datas, 5, 1);
    FILE *fp = fopen(path, "rb");
    s2s_err err;
    s2s_tar_reader *r = s2s_tar_reader_new(fp, path, &err);
    s2s_tar_entry *e;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(s2s_tar_next(r, &e, &err), 1);
        assert_string_equal(e->name, names[i]);
        unsigned char *d;
        size_t n;
        assert_int_equal(s2s_tar_read_data(r, &d, &n, &err), 0);
        assert_int_equal(n, strlen(datas[i]));
        assert_memory_equal(d, datas[i], n);
        free(d);
    }
    assert_int_equal(s2s_tar_next(r, &e, &err), 0);
    s2s_tar_reader_free(r);
    fclose(fp);
    /* GNU tar lists the same names */
    char cmd[600];
    snprintf(cmd, sizeof cmd, "tar -tf %s > %s/list.txt", path, tmpdir);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s/list.txt", tmpdir);
    unsigned char *list;
    size_t ln;
    assert_int_equal(s2s_read_file(cmd, &list, &ln, &err), 0);
    char expect[2000] = "";
    for (int i = 0; i < 5; i++) strcat(strcat(expect, names[i]), "\n");
    assert_string_equal((char *)list, expect);
    free(list);
    /* and Python's tarfile in streaming mode reads the same bytes */
    snprintf(cmd, sizeof cmd,
             "python3 -c \"import tarfile,sys; t=tarfile.open(sys.argv[1],'r|'); "
             "print(sum(len(t.extractfile(m).read()) for m in t))\" %s > %s/py.txt",
             path, tmpdir);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s/py.txt", tmpdir);
    assert_int_equal(s2s_read_file(cmd, &list, &ln, &err), 0);
    size_t tot = 0;
    for (int i = 0; i < 5; i++) tot += strlen(datas[i]);
    assert_int_equal(atoi((char *)list), (int)tot);
    free(list);
}

static void test_deterministic_and_skip(void **state)
{
    (void)state;
    char p1[300], p2[300];
    snprintf(p1, sizeof p1, "%s/d1.tar", tmpdir);
    snprintf(p2, sizeof p2, "%s/d2.tar", tmpdir);
    const char *names[] = {"a.json", "a.txt"};
    const char *datas[] = {"{}", "hello"};
    write_tar(p1, names, datas, 2, 1);
    write_tar(p2, names, datas, 2, 1);
    char h1[65], h2[65];
    s2s_err err;
    assert_int_equal(s2s_sha256_file(p1, h1, &err), 0);
    assert_int_equal(s2s_sha256_file(p2, h2, &err), 0);
    assert_string_equal(h1, h2);
    /* next() without read_data skips the data */
    FILE *fp = fopen(p1, "rb");
    s2s_tar_reader *r = s2s_tar_reader_new(fp, p1, &err);
    s2s_tar_entry *e;
    assert_int_equal(s2s_tar_next(r, &e, &err), 1);
    assert_int_equal(e->hdr_off, 0);
    assert_int_equal(e->data_off, 512);
    assert_int_equal(s2s_tar_next(r, &e, &err), 1);
    assert_string_equal(e->name, "a.txt");
    assert_int_equal(e->hdr_off, 1024);
    assert_int_equal(s2s_tar_next(r, &e, &err), 0);
    s2s_tar_reader_free(r);
    fclose(fp);
}

static void test_python_pax(void **state)
{
    (void)state;
    char path[300], cmd[1200];
    snprintf(path, sizeof path, "%s/py.tar", tmpdir);
    /* Python writes a pax header for a non-ASCII name and a long name */
    snprintf(cmd, sizeof cmd,
             "python3 -c \"import tarfile,io,sys\n"
             "t=tarfile.open(sys.argv[1],'w',format=tarfile.PAX_FORMAT)\n"
             "for n,d in [('s\\u00e9ance.json',b'{}'),('z'*150+'.ctx.wav',b'abc')]:\n"
             "  i=tarfile.TarInfo(n); i.size=len(d); t.addfile(i,io.BytesIO(d))\n"
             "t.close()\" %s",
             path);
    assert_int_equal(system(cmd), 0);
    FILE *fp = fopen(path, "rb");
    s2s_err err;
    s2s_tar_reader *r = s2s_tar_reader_new(fp, path, &err);
    s2s_tar_entry *e;
    assert_int_equal(s2s_tar_next(r, &e, &err), 1);
    assert_string_equal(e->name, "s\xc3\xa9" "ance.json");
    assert_int_equal(s2s_tar_next(r, &e, &err), 1);
    assert_int_equal(strlen(e->name), 158);
    unsigned char *d;
    size_t n;
    assert_int_equal(s2s_tar_read_data(r, &d, &n, &err), 0);
    assert_memory_equal(d, "abc", 3);
    free(d);
    assert_int_equal(s2s_tar_next(r, &e, &err), 0);
    s2s_tar_reader_free(r);
    fclose(fp);
}

static int read_all(const char *path, int lenient, s2s_err *err)
{
    FILE *fp = fopen(path, "rb");
    s2s_tar_reader *r = s2s_tar_reader_new(fp, path, err);
    s2s_tar_reader_set_lenient(r, lenient);
    s2s_tar_entry *e;
    int rc;
    while ((rc = s2s_tar_next(r, &e, err)) == 1) {
        unsigned char *d;
        size_t n;
        if ((rc = s2s_tar_read_data(r, &d, &n, err)) != 0) break;
        free(d);
    }
    s2s_tar_reader_free(r);
    fclose(fp);
    return rc;
}

static void test_damage(void **state)
{
    (void)state;
    char path[300];
    snprintf(path, sizeof path, "%s/t.tar", tmpdir);
    const char *names[] = {"a.json", "a.txt"};
    const char *datas[] = {"{}", "hello world"};
    /* no end-of-archive marker: an error unless lenient */
    write_tar(path, names, datas, 2, 0);
    s2s_err err;
    assert_true(read_all(path, 0, &err) < 0);
    assert_non_null(strstr(err.msg, "no end-of-archive marker"));
    assert_int_equal(read_all(path, 1, &err), 0);
    /* cut inside data */
    write_tar(path, names, datas, 2, 1);
    assert_int_equal(truncate(path, 512 + 512 + 512 + 5), 0);
    assert_true(read_all(path, 0, &err) < 0);
    assert_non_null(strstr(err.msg, "truncated"));
    /* a flipped byte in a header: checksum error naming the offset */
    write_tar(path, names, datas, 2, 1);
    FILE *fp = fopen(path, "r+b");
    fseek(fp, 1024 + 3, SEEK_SET);
    fputc('Q', fp);
    fclose(fp);
    assert_true(read_all(path, 0, &err) < 0);
    assert_non_null(strstr(err.msg, "checksum at byte 1024"));
    /* not a tar at all */
    fp = fopen(path, "wb");
    for (int i = 0; i < 2000; i++) fputc('x', fp);
    fclose(fp);
    assert_true(read_all(path, 0, &err) < 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_deterministic_and_skip),
        cmocka_unit_test(test_python_pax),
        cmocka_unit_test(test_damage),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

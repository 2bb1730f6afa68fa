/* test_merge.c — s2s_merge (s2s/merge.h) on parts written by the packer: a good merge verifies;
 * every way the parts can fail to add up is refused with a message naming the part, and leaves
 * nothing at the output. */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
// clang-format on
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "s2s/item.h"
#include "s2s/merge.h"
#include "s2s/sample.h"
#include "s2s/shard.h"
#include "s2s/util.h"

static char tmpdir[256];
#define N_IDS 24

static int setup(void **state) {
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/s2s-test-merge-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    return system(cmd);
}

static char *path_in(const char *name) {
    char *p = malloc(512);
    assert_non_null(p);
    snprintf(p, 512, "%s/%s", tmpdir, name);
    return p;
}

static s2s_sample *make_sample(const char *key, const char *synth_version) {
    s2s_err err;
    s2s_sample *s = s2s_sample_new(key, &err);
    assert_non_null(s);
    s->item =
        json_pack("{s:s, s:s, s:s, s:{s:s}, s:[{s:s, s:i}, {s:s, s:i}], s:[{s:s, s:s, "
                  "s:{s:i}}]}",
                  "id", key, "task", "cloze", "lang", "en", "context", "text", "ctx", "candidates",
                  "text", "right", "label", 1, "text", "wrong", "label", 0, "provenance", "tool",
                  "s2s-synth", "version", synth_version, "params", "seed", 1);
    assert_non_null(s->item);
    assert_int_equal(s2s_item_validate(s->item, &err), 0);
    char units[64];
    snprintf(units, sizeof units, "%zu 2 3 3 4", strlen(key));
    assert_int_equal(s2s_sample_put_copy(s, "ctx.units", units, strlen(units), &err), 0);
    return s;
}

static void id_of(int i, char *buf, size_t n) {
    snprintf(buf, n, "it_%03d", i);
}

static unsigned part_of_id(const char *id, unsigned n) {
    return (unsigned)(s2s_fnv1a64(id) % n);
}

/* Packs part I/N into DIR: the ids of that part, plus extra_id (may be NULL), minus skip_id (may
 * be NULL). name: shard base name ("t-p%uof%u" when NULL). */
static void make_part(const char *dir, unsigned I, unsigned N, const char *extra_id,
                      const char *skip_id, const char *name, const char *synth_version) {
    char *d = path_in(dir), pat[700], part[32], base[64];
    assert_int_equal(mkdir(d, 0755), 0);
    if (name)
        snprintf(base, sizeof base, "%s", name);
    else
        snprintf(base, sizeof base, "t-p%uof%u", I, N);
    snprintf(pat, sizeof pat, "%s/%s-%%06d.tar", d, base);
    snprintf(part, sizeof part, "%u/%u", I, N);
    s2s_pack_opts o;
    s2s_pack_opts_init(&o);
    o.pattern = pat;
    o.per_shard = 3;
    o.part = part;
    s2s_err err;
    s2s_packer *p = s2s_packer_open(&o, &err);
    assert_non_null(p);
    for (int i = 0; i < N_IDS; i++) {
        char id[32];
        id_of(i, id, sizeof id);
        int keep = part_of_id(id, N) == I || (extra_id && strcmp(id, extra_id) == 0);
        if (skip_id && strcmp(id, skip_id) == 0) keep = 0;
        if (!keep) continue;
        s2s_sample *s = make_sample(id, synth_version ? synth_version : "0.1.0");
        assert_int_equal(s2s_packer_put(p, s, &err), 0);
        s2s_sample_free(s);
    }
    assert_int_equal(s2s_packer_close(p, &err), 0);
    assert_int_equal(s2s_dataset_verify(d, &err), 0);
    free(d);
}

static int exists(const char *name) {
    char *p = path_in(name);
    struct stat st;
    int r = stat(p, &st) == 0;
    free(p);
    return r;
}

/* No "NAME.tmp-merge-*" left in tmpdir. */
static int tmp_left(void) {
    DIR *d = opendir(tmpdir);
    assert_non_null(d);
    struct dirent *e;
    int left = 0;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".tmp-merge-")) left = 1;
    closedir(d);
    return left;
}

/* Merges the named dirs (relative to tmpdir) into out; returns the code, err filled. */
static int merge(const char *const *names, size_t n, const char *out, const s2s_merge_opts *o,
                 s2s_merge_stats *st, s2s_err *err) {
    char **paths = calloc(n, sizeof(char *));
    assert_non_null(paths);
    for (size_t i = 0; i < n; i++)
        paths[i] = path_in(names[i]);
    char *op = path_in(out);
    s2s_err_clear(err);
    int rc = s2s_merge((const char *const *)paths, n, op, o, st, err);
    for (size_t i = 0; i < n; i++)
        free(paths[i]);
    free(paths);
    free(op);
    return rc;
}

static void expect_refused(const char *const *names, size_t n, int code, const char *what) {
    s2s_err err;
    int rc = merge(names, n, "refused", NULL, NULL, &err);
    if (rc != code || !strstr(err.msg, what))
        fail_msg("expected %d '%s', got %d: %s", code, what, rc, err.msg);
    assert_false(exists("refused"));
    assert_false(tmp_left());
}

static void test_merge_good(void **state) {
    (void)state;
    make_part("g0", 0, 3, NULL, NULL, NULL, NULL);
    make_part("g1", 1, 3, NULL, NULL, NULL, NULL);
    make_part("g2", 2, 3, NULL, NULL, NULL, NULL);
    const char *names[] = {"g2", "g0", "g1"};
    s2s_err err;
    s2s_merge_stats st;
    assert_int_equal(merge(names, 3, "good", NULL, &st, &err), 0);
    assert_int_equal(st.parts, 3);
    assert_int_equal(st.samples, N_IDS);
    assert_int_equal(st.pairs, N_IDS);
    assert_int_equal(st.linked, 2 * st.shards);
    assert_int_equal(st.copied, 0);
    char *out = path_in("good");
    assert_int_equal(s2s_dataset_verify(out, &err), 0);
    /* the same parts with --copy give the same dataset.json */
    s2s_merge_opts o = {1, NULL};
    assert_int_equal(merge(names, 3, "good-copy", &o, &st, &err), 0);
    assert_int_equal(st.linked, 0);
    assert_true(st.copied > 0);
    char *a = path_in("good/dataset.json"), *b = path_in("good-copy/dataset.json");
    unsigned char *da, *db;
    size_t la, lb;
    assert_int_equal(s2s_read_file(a, &da, &la, &err), 0);
    assert_int_equal(s2s_read_file(b, &db, &lb, &err), 0);
    assert_int_equal(la, lb);
    assert_memory_equal(da, db, la);
    json_t *ds = json_loadb((const char *)da, la, 0, NULL);
    assert_non_null(ds);
    json_t *m = json_object_get(ds, "merge");
    assert_int_equal(json_integer_value(json_object_get(m, "parts")), 3);
    assert_int_equal(json_array_size(json_object_get(m, "part_list")), 3);
    json_t *prov = json_object_get(ds, "provenance");
    assert_int_equal(json_array_size(prov), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(prov, 0), "samples")),
                     N_IDS);
    json_decref(ds);
    free(da), free(db), free(a), free(b), free(out);
    /* a merged directory is not a part; an existing non-empty output is refused */
    const char *again[] = {"good"};
    expect_refused(again, 1, S2S_EINVAL, "already a merged dataset");
    assert_int_equal(merge(names, 3, "good", NULL, NULL, &err), S2S_EINVAL);
    assert_non_null(strstr(err.msg, "not an empty directory"));
    /* an empty directory is a fine output */
    char *e = path_in("empty");
    assert_int_equal(mkdir(e, 0755), 0);
    free(e);
    assert_int_equal(merge(names, 3, "empty", NULL, NULL, &err), 0);
}

static void test_merge_refusals(void **state) {
    (void)state;
    make_part("r0", 0, 3, NULL, NULL, NULL, NULL);
    make_part("r1", 1, 3, NULL, NULL, NULL, NULL);
    make_part("r2", 2, 3, NULL, NULL, NULL, NULL);
    const char *missing[] = {"r0", "r2"};
    expect_refused(missing, 2, S2S_EDATA, "missing: 1/3");
    const char *twice[] = {"r0", "r1", "r2", "r1"};
    expect_refused(twice, 4, S2S_EDATA, "part 1/3 given twice");
    make_part("h0", 0, 2, NULL, NULL, NULL, NULL);
    const char *split[] = {"r0", "r1", "h0"};
    expect_refused(split, 3, S2S_EDATA, "different splits");
    /* another version of a tool in one part */
    make_part("v1", 1, 3, NULL, NULL, NULL, "0.0.9");
    const char *ver[] = {"r0", "v1", "r2"};
    expect_refused(ver, 3, S2S_EDATA, "s2s-synth version");
    /* two parts with the same shard names */
    make_part("n1", 1, 3, NULL, NULL, "t-p0of3", NULL);
    const char *names[] = {"r0", "n1", "r2"};
    expect_refused(names, 3, S2S_EDATA, "same name");
    /* a sample of part 0 also in part 2 (parts are checked in part order) */
    char id0[32] = "";
    for (int i = 0; i < N_IDS && !id0[0]; i++) {
        id_of(i, id0, sizeof id0);
        if (part_of_id(id0, 3) != 0) id0[0] = 0;
    }
    assert_true(id0[0] != 0);
    make_part("d2", 2, 3, id0, NULL, NULL, NULL);
    const char *dup[] = {"r0", "r1", "d2"};
    expect_refused(dup, 3, S2S_EDATA, "is also in");
    /* ... and moved there: in part 2, but its id belongs to part 0 */
    make_part("m0", 0, 3, NULL, id0, NULL, NULL);
    const char *moved[] = {"m0", "r1", "d2"};
    expect_refused(moved, 3, S2S_EDATA, "belongs to part 0/3");
    /* not a part / not a dataset */
    const char *nodir[] = {"r0", "r1", "nonexistent"};
    expect_refused(nodir, 3, S2S_EINVAL, "not a directory");
    char *empty = path_in("nodataset");
    assert_int_equal(mkdir(empty, 0755), 0);
    free(empty);
    const char *nods[] = {"r0", "r1", "nodataset"};
    expect_refused(nods, 3, S2S_EINVAL, "no dataset.json");
}

/* More parts than items: some parts are empty (no shard, no sample) and still count. */
static void test_merge_empty_parts(void **state) {
    (void)state;
    enum { NP = 40 };
    const char *names[NP];
    char bufs[NP][16];
    int empty = 0;
    for (unsigned i = 0; i < NP; i++) {
        snprintf(bufs[i], sizeof bufs[i], "e%u", i);
        names[i] = bufs[i];
        make_part(bufs[i], i, NP, NULL, NULL, NULL, NULL);
        int any = 0;
        for (int k = 0; k < N_IDS; k++) {
            char id[32];
            id_of(k, id, sizeof id);
            any |= part_of_id(id, NP) == i;
        }
        empty += !any;
    }
    assert_true(empty > 0);
    s2s_err err;
    s2s_merge_stats st;
    assert_int_equal(merge(names, NP, "all", NULL, &st, &err), 0);
    assert_int_equal(st.parts, NP);
    assert_int_equal(st.samples, N_IDS);
    char *out = path_in("all");
    assert_int_equal(s2s_dataset_verify(out, &err), 0);
    free(out);
    expect_refused(names, NP - 1, S2S_EDATA, "missing: 39/40");
}

static void test_merge_stop(void **state) {
    (void)state;
    make_part("s0", 0, 2, NULL, NULL, NULL, NULL);
    make_part("s1", 1, 2, NULL, NULL, NULL, NULL);
    const char *names[] = {"s0", "s1"};
    volatile sig_atomic_t stop = 1;
    s2s_merge_opts o = {0, &stop};
    s2s_err err;
    assert_int_equal(merge(names, 2, "stopped", &o, NULL, &err), S2S_EINTR);
    assert_false(exists("stopped"));
    assert_false(tmp_left());
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_merge_good, setup, teardown),
        cmocka_unit_test_setup_teardown(test_merge_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_merge_empty_parts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_merge_stop, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

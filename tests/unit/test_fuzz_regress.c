/* test_fuzz_regress.c — replays every input under tests/fuzz/regress/TARGET/ through the same
 * fuzz target functions the libFuzzer harnesses use (tests/fuzz/targets.c), in the normal and the
 * ASan build, so a crash found once by fuzzing stays fixed. No clang needed. */
/* clang-format off: cmocka.h needs these first */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
/* clang-format on */

#include "../fuzz/targets.c"

static int replay_dir(const s2s_fuzz_target *t) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tests/fuzz/regress/%s", S2S_SOURCE_DIR, t->name);
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char p[2048];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unsigned char *data = NULL;
        size_t len = 0;
        s2s_err err;
        assert_int_equal(s2s_read_file(p, &data, &len, &err), 0);
        print_message("replay %s/%s (%zu bytes)\n", t->name, e->d_name, len);
        assert_int_equal(t->fn(data, len), 0);
        free(data);
        n++;
    }
    closedir(d);
    return n;
}

static void test_regress_all(void **state) {
    (void)state;
    int total = 0;
    for (size_t i = 0; i < sizeof s2s_fuzz_targets / sizeof *s2s_fuzz_targets; i++)
        total += replay_dir(&s2s_fuzz_targets[i]);
    print_message("%d regression inputs replayed\n", total);
}

/* Every target survives the degenerate inputs (empty, one byte, all zeros, all 0xff). */
static void test_degenerate(void **state) {
    (void)state;
    static uint8_t zeros[4096], ones[4096];
    memset(ones, 0xff, sizeof ones);
    for (size_t i = 0; i < sizeof s2s_fuzz_targets / sizeof *s2s_fuzz_targets; i++) {
        const s2s_fuzz_target *t = &s2s_fuzz_targets[i];
        assert_int_equal(t->fn(zeros, 0), 0);
        assert_int_equal(t->fn(zeros, 1), 0);
        assert_int_equal(t->fn(zeros, sizeof zeros), 0);
        assert_int_equal(t->fn(ones, sizeof ones), 0);
    }
}

/* The use-after-free fuzzing found in next_jsonl (sample.c): a JSON line whose "id" is not a
 * string, read through the stream reader. */
static void test_jsonl_bad_id(void **state) {
    (void)state;
    const char *in = "\x00{\"id\": 5, \"task\": \"cloze\"}\n";
    assert_int_equal(s2s_fuzz_find("reader")->fn((const uint8_t *)in, 29), 0);
    const char *arr = "\x00[1, 2]\n";
    assert_int_equal(s2s_fuzz_find("reader")->fn((const uint8_t *)arr, 8), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_regress_all),
        cmocka_unit_test(test_degenerate),
        cmocka_unit_test(test_jsonl_bad_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

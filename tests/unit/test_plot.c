/* test_plot.c — the sweep chart (plot.c): well-formed XML (checked by xmllint, an independent
 * parser), one curve per mode and series, escaping, numeric sorting, gaps, one-run sweeps,
 * deterministic bytes, and the errors of bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "s2s/plot.h"

static char dir[256];
static int have_xmllint;

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/s2s-test-plot-XXXXXX");
    have_xmllint = system("command -v xmllint >/dev/null 2>&1") == 0;
    if (!have_xmllint) fprintf(stderr, "test_plot: xmllint not found, XML checks skipped\n");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd);
}

/* A report with modes given as "MODE:acc:plaus:implaus" specs ("n" = null, ci from acc±0.05). */
static json_t *report(const char *decision, int nspec, const char **spec)
{
    json_t *modes = json_object();
    for (int i = 0; i < nspec; i++) {
        char name[16];
        char a[32], pl[32], im[32];
        assert_int_equal(sscanf(spec[i], "%15[^:]:%31[^:]:%31[^:]:%31s", name, a, pl, im), 4);
        json_t *m = json_object();
        if (strcmp(a, "n")) {
            double v = atof(a);
            json_object_set_new(m, "accuracy", json_real(v));
            json_object_set_new(m, "ci95", json_pack("[f, f]", v - 0.05, v + 0.05));
        } else {
            json_object_set_new(m, "accuracy", json_null());
            json_object_set_new(m, "ci95", json_null());
        }
        json_object_set_new(m, "mean_score_plausible", strcmp(pl, "n") ? json_real(atof(pl)) : json_null());
        json_object_set_new(m, "mean_score_implausible", strcmp(im, "n") ? json_real(atof(im)) : json_null());
        json_object_set_new(modes, name, m);
    }
    return json_pack("{s:s, s:o}", "decision_score", decision, "modes", modes);
}

static void add_run(json_t *sweep, const char *label, json_t *rep)
{
    json_array_append_new(sweep, json_pack("{s:s, s:o}", "label", label, "report", rep));
}

/* Plots into DIR/name.svg; returns the file's text (malloc'd) and checks it with xmllint. */
static char *plot_file(const json_t *sweep, const char *name)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s.svg", dir, name);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    s2s_err err;
    int rc = s2s_plot_sweep_svg(sweep, fp, &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_int_equal(fclose(fp), 0);
    if (have_xmllint) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "xmllint --noout '%s'", path);
        assert_int_equal(system(cmd), 0);
    }
    fp = fopen(path, "r");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    assert_int_equal(fread(s, 1, (size_t)n, fp), (size_t)n);
    s[n] = 0;
    fclose(fp);
    return s;
}

static int count(const char *s, const char *what)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, what)) != NULL; p += strlen(what)) n++;
    return n;
}

/* The text of one curve group (malloc'd), or NULL. */
static char *group(const char *svg, const char *mode, const char *series)
{
    char key[100];
    snprintf(key, sizeof key, "data-mode=\"%s\" data-series=\"%s\"", mode, series);
    const char *a = strstr(svg, key);
    if (!a) return NULL;
    const char *b = strstr(a, "</g>");
    assert_non_null(b);
    return strndup(a, (size_t)(b - a));
}

static void test_three_runs(void **state)
{
    (void)state;
    json_t *sweep = json_array();
    const char *r1[] = {"t2t:0.61:2.5:2.9", "s2s:0.52:4.0:4.1"};
    const char *r2[] = {"t2t:0.66:2.4:2.9", "s2s:n:3.9:4.0"};
    const char *r3[] = {"t2t:0.70:2.2:2.8", "s2s:0.55:3.8:n"};
    add_run(sweep, "small", report("mean", 2, r1));
    add_run(sweep, "a<b&\"c\"", report("mean", 2, r2));
    add_run(sweep, "it's>big", report("mean", 2, r3));
    char *svg = plot_file(sweep, "three");
    assert_int_equal(count(svg, "data-series=\"accuracy\""), 2);
    assert_int_equal(count(svg, "data-series=\"plausible\""), 2);
    assert_int_equal(count(svg, "data-series=\"implausible\""), 2);
    assert_int_equal(count(svg, "class=\"curve\""), 6);
    /* escaping: the raw label never appears, the escaped one does */
    assert_null(strstr(svg, "a<b"));
    assert_non_null(strstr(svg, "a&lt;b&amp;&quot;c&quot;"));
    assert_non_null(strstr(svg, "it&apos;s&gt;big"));
    /* t2t: one polyline over 3 points, 3 markers, 3 CI whiskers */
    char *g = group(svg, "t2t", "accuracy");
    assert_non_null(g);
    assert_int_equal(count(g, "<polyline"), 1);
    assert_int_equal(count(g, "<circle"), 3);
    assert_int_equal(count(g, "class=\"ci\""), 3);
    free(g);
    /* s2s accuracy: null in the middle -> two lone points, no line across the gap */
    g = group(svg, "s2s", "accuracy");
    assert_non_null(g);
    assert_int_equal(count(g, "<polyline"), 0);
    assert_int_equal(count(g, "<circle"), 2);
    free(g);
    /* s2s implausible: null at the end -> one line over the first two, dashed */
    g = group(svg, "s2s", "implausible");
    assert_non_null(g);
    assert_int_equal(count(g, "<polyline"), 1);
    assert_int_equal(count(g, "<circle"), 2);
    assert_non_null(strstr(g, "stroke-dasharray=\"6 4\""));
    free(g);
    /* t2t before s2s (canonical order), a chance line, a legend, a title */
    assert_true(strstr(svg, "data-mode=\"t2t\"") < strstr(svg, "data-mode=\"s2s\""));
    assert_int_equal(count(svg, "class=\"chance\""), 1);
    assert_int_equal(count(svg, "class=\"legend\""), 1);
    assert_non_null(strstr(svg, "<title>s2s-score sweep"));
    assert_null(strstr(svg, "<script"));
    /* deterministic bytes */
    char *again = plot_file(sweep, "three-again");
    assert_string_equal(svg, again);
    free(again);
    free(svg);
    json_decref(sweep);
}

/* Marker x coordinate of the point titled "LABEL: t2t accuracy". */
static double marker_x(const char *svg, const char *label)
{
    char key[100];
    snprintf(key, sizeof key, "<title>%s: t2t accuracy", label);
    const char *t = strstr(svg, key);
    assert_non_null(t);
    const char *c = t;
    while (c > svg && strncmp(c, "<circle cx=\"", 12)) c--;
    assert_true(c > svg);
    return atof(c + 12);
}

static void test_numeric_sorted(void **state)
{
    (void)state;
    json_t *sweep = json_array();
    const char *a[] = {"t2t:0.7:1:2"}, *b[] = {"t2t:0.6:1:2"}, *c[] = {"t2t:0.65:1:2"};
    add_run(sweep, "100", report("mean", 1, a));
    add_run(sweep, "5", report("mean", 1, b));
    add_run(sweep, "2e1", report("mean", 1, c));
    char *svg = plot_file(sweep, "numeric");
    double x5 = marker_x(svg, "5"), x20 = marker_x(svg, "2e1"), x100 = marker_x(svg, "100");
    assert_true(x5 < x20 && x20 < x100);
    /* numeric scale: 5 -> 20 is 15 of 95 units, not a third of the width */
    assert_true((x20 - x5) < 0.3 * (x100 - x5));
    assert_non_null(strstr(svg, "run (numeric label)"));
    free(svg);
    /* one non-number among them: categories in the given order */
    add_run(sweep, "10x", report("mean", 1, a));
    svg = plot_file(sweep, "categorical");
    assert_true(marker_x(svg, "100") < marker_x(svg, "5"));
    assert_true(marker_x(svg, "5") < marker_x(svg, "2e1"));
    assert_null(strstr(svg, "run (numeric label)"));
    free(svg);
    json_decref(sweep);
}

static void test_one_run(void **state)
{
    (void)state;
    json_t *sweep = json_array();
    const char *a[] = {"s2t:0.55:3:3.5", "t2t:0.6:2:2.5"};
    add_run(sweep, "only", report("byte", 2, a));
    char *svg = plot_file(sweep, "one");
    assert_int_equal(count(svg, "data-series=\"accuracy\""), 2);
    char *g = group(svg, "s2t", "accuracy");
    assert_non_null(g);
    assert_int_equal(count(g, "<circle"), 1);
    assert_int_equal(count(g, "<polyline"), 0);
    free(g);
    assert_non_null(strstr(svg, "NLL per byte"));
    free(svg);
    /* a numeric single label, and a run whose report is null */
    json_decref(sweep);
    sweep = json_array();
    add_run(sweep, "42", report("mean", 2, a));
    char *svg2 = plot_file(sweep, "one-numeric");
    assert_int_equal(count(svg2, "<circle cx"), 6);
    free(svg2);
    json_array_append_new(sweep, json_pack("{s:s, s:n}", "label", "7", "report"));
    svg2 = plot_file(sweep, "null-report");
    assert_int_equal(count(svg2, "<circle cx"), 6);
    free(svg2);
    json_decref(sweep);
}

static void expect_error(json_t *sweep, const char *what)
{
    char path[400];
    snprintf(path, sizeof path, "%s/bad.svg", dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    s2s_err err;
    s2s_err_clear(&err);
    assert_int_equal(s2s_plot_sweep_svg(sweep, fp, &err), S2S_EINVAL);
    assert_non_null(strstr(err.msg, what));
    fclose(fp);
    json_decref(sweep);
}

static void test_bad_input(void **state)
{
    (void)state;
    expect_error(json_object(), "expected a JSON array");
    expect_error(json_array(), "no runs");
    expect_error(json_pack("[{s:s, s:{}}, {s:i}]", "label", "a", "report", "label", 3),
                 "sweep[1]: no string \"label\"");
    expect_error(json_pack("[{s:s, s:i}]", "label", "x", "report", 3),
                 "sweep[0] (x): \"report\" is not an object");
}

static void test_write_error(void **state)
{
    (void)state;
    FILE *fp = fopen("/dev/full", "w");
    if (!fp) skip();
    json_t *sweep = json_array();
    const char *a[] = {"t2t:0.6:2:2.5"};
    add_run(sweep, "x", report("mean", 1, a));
    s2s_err err;
    assert_int_equal(s2s_plot_sweep_svg(sweep, fp, &err), S2S_EIO);
    fclose(fp);
    json_decref(sweep);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_three_runs),
        cmocka_unit_test(test_numeric_sorted),
        cmocka_unit_test(test_one_run),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_write_error),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

/* test_score.c — the pairwise protocol (score.c) on hand-computed cases, with fake backends
 * (synchronous, and asynchronous answering out of order) and the losses backend in compat mode. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "s2s/backend.h"
#include "s2s/sample.h"
#include "s2s/score.h"

/* ---- fake backends: the NLL and token count come from the candidate's "fake" field
 * [nll, ntok] (nll may be the string "nan"); "fake_MODE" overrides it for one mode. */
static int fake_fill(const s2s_request *rq, s2s_reply *out) {
    const json_t *c = json_array_get(json_object_get(rq->item, "candidates"), rq->cand);
    char name[32];
    snprintf(name, sizeof name, "fake_%s", s2s_mode_name(rq->mode));
    const json_t *f = json_object_get(c, name);
    if (!f) f = json_object_get(c, "fake");
    const json_t *v = json_array_get(f, 0);
    out->req_id = rq->req_id;
    if (json_is_string(v)) {
        out->nll = NAN;
    } else if (json_is_null(v)) {
        out->status = S2S_EDATA;
        snprintf(out->msg, sizeof out->msg, "fake failure");
    } else {
        out->nll = json_number_value(v);
    }
    out->ntok = (uint64_t)json_integer_value(json_array_get(f, 1));
    return 0;
}

static unsigned fake_needs_mask = S2S_NEED_CTX_TEXT | S2S_NEED_CAND_TEXT;

static int fake_needs(void *self, s2s_mode mode, unsigned *needs, s2s_err *err) {
    (void)self;
    if (mode == S2S_MODE_T2S) return s2s_err_set(err, S2S_EUNSUP, "fake cannot do t2s");
    *needs = fake_needs_mask;
    return 0;
}

static int fake_answer(void *self, const s2s_request *rq, s2s_reply *out, s2s_err *err) {
    (void)self, (void)err;
    return fake_fill(rq, out);
}

static const s2s_backend_ops sync_ops = {
    .kind = "fake", .needs = fake_needs, .answer = fake_answer};

/* asynchronous: holds up to 3 requests, returns them last-in first-out */
typedef struct lifo {
    s2s_reply r[3];
    size_t n;
} lifo;

static int lifo_submit(void *self, const s2s_request *rq, s2s_err *err) {
    lifo *l = self;
    if (l->n >= 3) return s2s_err_set(err, S2S_EMODEL, "over capacity");
    memset(&l->r[l->n], 0, sizeof l->r[0]);
    fake_fill(rq, &l->r[l->n++]);
    return 0;
}

static int lifo_poll(void *self, s2s_reply *out, size_t max, int wait, s2s_err *err) {
    lifo *l = self;
    (void)err;
    /* without wait, answer only when full, so that replies really pile up */
    if (!wait && l->n < 3) return 0;
    size_t n = 0;
    while (n < max && l->n > 0)
        out[n++] = l->r[--l->n];
    return (int)n;
}

static void lifo_destroy(void *self) {
    free(self);
}

static const s2s_backend_ops lifo_ops = {.kind = "fake",
                                         .needs = fake_needs,
                                         .submit = lifo_submit,
                                         .poll = lifo_poll,
                                         .capacity = 3,
                                         .destroy = lifo_destroy};

static s2s_sample *mk(const char *json) {
    json_error_t je;
    json_t *it = json_loads(json, 0, &je);
    assert_non_null(it);
    s2s_sample *s = s2s_sample_new(json_string_value(json_object_get(it, "id")), NULL);
    assert_non_null(s);
    s->item = it;
    return s;
}

/* A: cloze right; B: choice 1 win, 1 loss, 1 tie; C: cloze with a NaN score. */
static const char *items3[] = {
    "{\"id\":\"A\",\"task\":\"cloze\",\"lang\":\"en\",\"category\":\"story\",\"context\":{\"text\":"
    "\"ctx\"},\"candidates\":[{\"text\":\"ab\",\"label\":1,\"fake\":[2,2]},{\"text\":\"abc\","
    "\"label\":0,\"fake\":[3,1]}]}",
    "{\"id\":\"B\",\"task\":\"choice\",\"lang\":\"zh\",\"category\":\"math\",\"context\":{\"text\":"
    "\"q\"},\"candidates\":[{\"text\":\"w\",\"label\":0,\"fake\":[4,2]},{\"text\":\"r\",\"label\":"
    "1,"
    "\"fake\":[3,2]},{\"text\":\"x\",\"label\":0,\"fake\":[1,1]},{\"text\":\"y\",\"label\":0,"
    "\"fake\":[1.5,1]}]}",
    "{\"id\":\"C\",\"task\":\"cloze\",\"lang\":\"en\",\"category\":\"story\",\"context\":{\"text\":"
    "\"ctx\"},\"candidates\":[{\"text\":\"a\",\"label\":0,\"fake\":[\"nan\",1]},{\"text\":\"b\","
    "\"label\":1,\"fake\":[1,1]}]}",
};

static json_t *run(const s2s_backend_ops *ops, void *self, const s2s_score_opts *o,
                   const char **items, size_t n, char **pairs) {
    s2s_err err;
    s2s_err_clear(&err);
    s2s_backend *b = s2s_backend_new(ops, self, "fake:", "", &err);
    assert_non_null(b);
    s2s_scorer *sc = s2s_scorer_new(o, b, &err);
    assert_non_null(sc);
    for (size_t i = 0; i < n; i++) {
        s2s_sample *s = mk(items[i]);
        assert_int_equal(s2s_scorer_add(sc, s, &err), 0);
        s2s_sample_free(s);
    }
    assert_int_equal(s2s_scorer_finish(sc, &err), 0);
    json_t *rep = s2s_scorer_report(sc, NULL, &err);
    assert_non_null(rep);
    if (pairs) {
        char *buf = NULL;
        size_t len = 0;
        FILE *fp = open_memstream(&buf, &len);
        assert_int_equal(s2s_scorer_write_pairs(sc, fp, &err), 0);
        fclose(fp);
        *pairs = buf;
    }
    s2s_scorer_free(sc);
    s2s_backend_free(b);
    return rep;
}

static double num(const json_t *o, const char *path) {
    /* "a.b.c" */
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    const json_t *cur = o;
    for (char *save = NULL, *t = strtok_r(buf, ".", &save); t; t = strtok_r(NULL, ".", &save))
        cur = json_object_get(cur, t);
    assert_non_null(cur);
    return json_number_value(cur);
}

static void test_outcome(void **state) {
    (void)state;
    assert_true(s2s_pair_outcome(1, 2, 0, 0) == 1.0);
    assert_true(s2s_pair_outcome(2, 1, 0, 0) == 0.0);
    assert_true(s2s_pair_outcome(2, 2, 0, 0) == 0.5);
    assert_true(s2s_pair_outcome(2, 2, 1, 0) == 0.5);
    assert_true(isnan(s2s_pair_outcome(NAN, 2, 0, 0)));
    assert_true(isnan(s2s_pair_outcome(1, INFINITY, 1, 0)));
    /* upstream: story strict <, CMMLU <=, NaN compares false */
    assert_true(s2s_pair_outcome(2, 2, 0, S2S_COMPAT_S2SBENCH) == 0.0);
    assert_true(s2s_pair_outcome(2, 2, 1, S2S_COMPAT_S2SBENCH) == 1.0);
    assert_true(s2s_pair_outcome(1, 2, 0, S2S_COMPAT_S2SBENCH) == 1.0);
    assert_true(s2s_pair_outcome(NAN, 2, 1, S2S_COMPAT_S2SBENCH) == 0.0);
    assert_true(s2s_pair_outcome(1, INFINITY, 0, S2S_COMPAT_S2SBENCH) == 1.0);

    double m, s, b;
    s2s_candidate_scores(6, 3, 0, 4, &m, &s, &b);
    assert_true(m == 2 && s == 6 && b == 1.5);
    s2s_candidate_scores(6, 0, 0, 0, &m, &s, &b);
    assert_true(isnan(m) && s == 6 && isnan(b));
    s2s_candidate_scores(2.5, 0, S2S_REPLY_MEAN_ONLY, 4, &m, &s, &b);
    assert_true(m == 2.5 && isnan(s) && isnan(b));
}

static void test_protocol(void **state) {
    (void)state;
    s2s_score_opts o;
    s2s_score_opts_init(&o);
    o.bootstrap = 200;
    char *pairs = NULL;
    json_t *rep = run(&sync_ops, NULL, &o, items3, 3, &pairs);
    /* pairs: A 1; B vs w (1.5 < 2) 1, vs x (1.5 > 1) 0, vs y tie 0.5; C failed */
    assert_true(num(rep, "modes.t2t.expected") == 5);
    assert_true(num(rep, "modes.t2t.pairs") == 4);
    assert_true(num(rep, "modes.t2t.failed") == 1);
    assert_true(num(rep, "modes.t2t.ties") == 1);
    assert_true(num(rep, "modes.t2t.correct") == 2.5);
    assert_true(num(rep, "modes.t2t.accuracy") == 0.625);
    assert_true(fabs(num(rep, "modes.t2t.mean_score_plausible") - 1.375) < 1e-12);
    assert_true(fabs(num(rep, "modes.t2t.mean_score_implausible") - 1.875) < 1e-12);
    assert_true(num(rep, "modes.t2t.by_category.math.pairs") == 3);
    assert_true(num(rep, "modes.t2t.by_category.story.accuracy") == 1.0);
    assert_true(num(rep, "modes.t2t.by_lang.zh.accuracy") == 0.5);
    const json_t *ci =
        json_object_get(json_object_get(json_object_get(rep, "modes"), "t2t"), "ci95");
    assert_true(json_array_size(ci) == 2);
    assert_true(json_number_value(json_array_get(ci, 0)) <= 0.625);
    assert_true(json_number_value(json_array_get(ci, 1)) >= 0.625);
    /* 1 tie in 4 pairs: more than 10% -> broken-backend warning */
    const json_t *w = json_object_get(rep, "warnings");
    int broken = 0;
    for (size_t i = 0; i < json_array_size(w); i++)
        broken |= strstr(json_string_value(json_array_get(w, i)), "looks broken") != NULL;
    assert_true(broken);
    assert_string_equal(json_string_value(json_object_get(rep, "decision_score")), "mean");
    /* pairs.jsonl: 5 lines (failed pair included, outcome null) */
    int lines = 0;
    for (char *p = pairs; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 5);
    assert_non_null(strstr(pairs, "\"item\":\"C\",\"mode\":\"t2t\""));
    assert_non_null(strstr(pairs, "\"outcome\":null"));
    free(pairs);

    /* the sum decides: A 2 < 3 right; B r=3 vs w 4 (1), x 1 (0), y 1.5 (0) -> 2 of 4 */
    o.kind = S2S_SCORE_SUM;
    json_t *rs = run(&sync_ops, NULL, &o, items3, 3, NULL);
    assert_true(num(rs, "modes.t2t.correct") == 2.0);
    assert_true(num(rs, "modes.t2t.ties") == 0);
    json_decref(rs);
    /* per byte: A 1.0 vs 1.0: a tie */
    o.kind = S2S_SCORE_BYTE;
    rs = run(&sync_ops, NULL, &o, items3, 3, NULL);
    assert_true(num(rs, "modes.t2t.ties") == 1);
    json_decref(rs);
    json_decref(rep);
}

static void test_compat_fake(void **state) {
    (void)state;
    s2s_score_opts o;
    s2s_score_opts_init(&o);
    o.bootstrap = 0;
    o.compat = S2S_COMPAT_S2SBENCH;
    json_t *rep = run(&sync_ops, NULL, &o, items3, 3, NULL);
    /* A 1; B: 1, 0, tie -> 1 (<=); C: NaN compares false -> 0, counted as upstream does */
    assert_true(num(rep, "modes.t2t.pairs") == 5);
    assert_true(num(rep, "modes.t2t.correct") == 3);
    assert_true(num(rep, "modes.t2t.accuracy") == 0.6);
    assert_true(json_is_null(
        json_object_get(json_object_get(json_object_get(rep, "modes"), "t2t"), "ci95")));
    json_decref(rep);
    /* compat decides on the mean only */
    s2s_err err;
    o.kind = S2S_SCORE_SUM;
    s2s_backend *b = s2s_backend_new(&sync_ops, NULL, "fake:", "", &err);
    assert_null(s2s_scorer_new(&o, b, &err));
    assert_int_equal(err.code, S2S_EINVAL);
    s2s_backend_free(b);
}

static void test_async_out_of_order(void **state) {
    (void)state;
    s2s_score_opts o;
    s2s_score_opts_init(&o);
    o.modes = (1u << S2S_MODE_T2T) | (1u << S2S_MODE_S2T);
    o.bootstrap = 300;
    char *p1, *p2;
    json_t *a = run(&sync_ops, NULL, &o, items3, 3, &p1);
    lifo *l = calloc(1, sizeof *l);
    json_t *b = run(&lifo_ops, l, &o, items3, 3, &p2);
    char *sa = json_dumps(a, JSON_COMPACT), *sb = json_dumps(b, JSON_COMPACT);
    assert_string_equal(sa, sb);
    assert_string_equal(p1, p2);
    /* both modes got the same scores here: degradation 0, McNemar p 1 */
    assert_true(num(a, "degradation.t2t-s2t.difference") == 0);
    assert_true(num(a, "degradation.t2t-s2t.mcnemar.p") == 1);
    free(sa), free(sb), free(p1), free(p2);
    json_decref(a);
    json_decref(b);
}

static void test_degradation(void **state) {
    (void)state;
    /* 12 cloze items: in t2t all right; in s2t items 0..9 wrong, 10..11 right -> b=10, c=0 */
    char *items[12];
    for (int i = 0; i < 12; i++) {
        items[i] = malloc(512);
        snprintf(
            items[i], 512,
            "{\"id\":\"i%02d\",\"task\":\"cloze\",\"lang\":\"en\",\"context\":{\"text\":\"c\"},"
            "\"candidates\":[{\"text\":\"a\",\"label\":1,\"fake\":[1,1],\"fake_s2t\":[%d,1]},"
            "{\"text\":\"b\",\"label\":0,\"fake\":[2,1]}]}",
            i, i < 10 ? 3 : 1);
    }
    s2s_score_opts o;
    s2s_score_opts_init(&o);
    o.modes = (1u << S2S_MODE_T2T) | (1u << S2S_MODE_S2T);
    json_t *rep = run(&sync_ops, NULL, &o, (const char **)items, 12, NULL);
    assert_true(num(rep, "modes.t2t.accuracy") == 1.0);
    assert_true(fabs(num(rep, "modes.s2t.accuracy") - 2.0 / 12) < 1e-12);
    assert_true(fabs(num(rep, "degradation.t2t-s2t.difference") - 10.0 / 12) < 1e-12);
    assert_true(num(rep, "degradation.t2t-s2t.mcnemar.b") == 10);
    assert_true(num(rep, "degradation.t2t-s2t.mcnemar.c") == 0);
    assert_true(fabs(num(rep, "degradation.t2t-s2t.mcnemar.p") - 2.0 / 1024) < 1e-12);
    const json_t *ci =
        json_object_get(json_object_get(json_object_get(rep, "degradation"), "t2t-s2t"), "ci95");
    assert_true(json_number_value(json_array_get(ci, 0)) > 0.4);
    assert_true(json_number_value(json_array_get(ci, 1)) <= 1.0);
    json_decref(rep);
    for (int i = 0; i < 12; i++)
        free(items[i]);
}

static void test_missing_inputs(void **state) {
    (void)state;
    s2s_err err;
    s2s_score_opts o;
    s2s_score_opts_init(&o);
    /* a mode the backend cannot do */
    o.modes = 1u << S2S_MODE_T2S;
    s2s_backend *b = s2s_backend_new(&sync_ops, NULL, "fake:", "", &err);
    assert_null(s2s_scorer_new(&o, b, &err));
    assert_int_equal(err.code, S2S_EUNSUP);
    assert_non_null(strstr(err.msg, "t2s"));
    /* units missing from the sample */
    o.modes = 1u << S2S_MODE_S2S;
    fake_needs_mask = S2S_NEED_CTX_UNITS | S2S_NEED_CAND_UNITS;
    s2s_scorer *sc = s2s_scorer_new(&o, b, &err);
    assert_non_null(sc);
    s2s_sample *s = mk(items3[0]);
    assert_int_equal(s2s_scorer_add(sc, s, &err), S2S_EDATA);
    assert_non_null(strstr(err.msg, "ctx.units"));
    assert_non_null(strstr(err.msg, "s2s"));
    const char *u = "1 2 2 3";
    assert_int_equal(s2s_sample_put_copy(s, "ctx.units", u, strlen(u), &err), 0);
    assert_int_equal(s2s_sample_put_copy(s, "c0.units", u, strlen(u), &err), 0);
    assert_int_equal(s2s_scorer_add(sc, s, &err), S2S_EDATA);
    assert_non_null(strstr(err.msg, "c1.units"));
    assert_int_equal(s2s_sample_put_copy(s, "c1.units", u, strlen(u), &err), 0);
    assert_int_equal(s2s_scorer_add(sc, s, &err), 0);
    assert_int_equal(s2s_scorer_finish(sc, &err), 0);
    s2s_sample_free(s);
    s2s_scorer_free(sc);
    s2s_backend_free(b);
    fake_needs_mask = S2S_NEED_CTX_TEXT | S2S_NEED_CAND_TEXT;
}

/* Upstream losses in compat mode: story pairs (uttid 2k right, 2k+1 wrong, strict <) and CMMLU
 * (right <= each other key). Expected values are upstream's rules applied by hand. */
static void test_losses_compat(void **state) {
    (void)state;
    char dir[] = "/tmp/test_score-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/result.jsonl", dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("{\"uttid\": 0, \"key\": null, \"loss\": [2.0], \"ppl\": [7.4]}\n"
          "{\"uttid\": 1, \"key\": null, \"loss\": [2.5], \"ppl\": [12.2]}\n"
          "{\"uttid\": 2, \"key\": null, \"loss\": [3.0], \"ppl\": [20.1]}\n"
          "{\"uttid\": 3, \"key\": null, \"loss\": [3.0], \"ppl\": [20.1]}\n"
          "{\"uttid\": 7, \"key\": \"A\", \"loss\": [1.0]}\n"
          "{\"uttid\": 7, \"key\": \"B\", \"loss\": [1.0]}\n"
          "{\"uttid\": 7, \"key\": \"C\", \"loss\": [0.5]}\n"
          "{\"uttid\": 7, \"key\": \"D\", \"loss\": [2.0]}\n"
          "{\"uttid\": 9, \"key\": \"A\", \"loss\": [1.0]}\n"
          "{\"uttid\": 9, \"key\": \"B\", \"loss\": [0.9]}\n"
          "{\"uttid\": 9, \"key\": \"C\", \"loss\": []}\n"
          "{\"uttid\": 9, \"key\": \"D\", \"loss\": [3.0]}\n",
          fp);
    fclose(fp);
    static const char *items[] = {
        "{\"id\":\"s0\",\"task\":\"cloze\",\"lang\":\"en\",\"context\":{\"text\":\"x\"},"
        "\"candidates\":[{\"text\":\"a\",\"label\":1,\"uttid\":0},{\"text\":\"b\",\"label\":0,"
        "\"uttid\":1}]}",
        "{\"id\":\"s2\",\"task\":\"cloze\",\"lang\":\"en\",\"context\":{\"text\":\"x\"},"
        "\"candidates\":[{\"text\":\"a\",\"label\":1,\"uttid\":2},{\"text\":\"b\",\"label\":0,"
        "\"uttid\":3}]}",
        "{\"id\":\"c7\",\"task\":\"choice\",\"lang\":\"zh\",\"category\":\"cmmlu\",\"context\":"
        "{\"text\":\"q\"},\"candidates\":[{\"text\":\"a\",\"label\":1,\"key\":\"A\",\"uttid\":7},"
        "{\"text\":\"b\",\"label\":0,\"key\":\"B\",\"uttid\":7},{\"text\":\"c\",\"label\":0,"
        "\"key\":\"C\",\"uttid\":7},{\"text\":\"d\",\"label\":0,\"key\":\"D\",\"uttid\":7}]}",
        "{\"id\":\"c9\",\"task\":\"choice\",\"lang\":\"zh\",\"category\":\"cmmlu\",\"context\":"
        "{\"text\":\"q\"},\"candidates\":[{\"text\":\"a\",\"label\":1,\"key\":\"A\",\"uttid\":9},"
        "{\"text\":\"b\",\"label\":0,\"key\":\"B\",\"uttid\":9},{\"text\":\"c\",\"label\":0,"
        "\"key\":\"C\",\"uttid\":9},{\"text\":\"d\",\"label\":0,\"key\":\"D\",\"uttid\":9}]}",
    };
    char spec[300];
    snprintf(spec, sizeof spec, "losses:%s", path);
    s2s_err err;
    s2s_backend *b = s2s_backend_open(spec, &err);
    assert_non_null(b);
    s2s_score_opts o;
    s2s_score_opts_init(&o);
    o.modes = 1u << S2S_MODE_S2T;
    o.compat = S2S_COMPAT_S2SBENCH;
    o.bootstrap = 0;
    s2s_scorer *sc = s2s_scorer_new(&o, b, &err);
    assert_non_null(sc);
    for (int i = 0; i < 4; i++) {
        s2s_sample *s = mk(items[i]);
        assert_int_equal(s2s_scorer_add(sc, s, &err), 0);
        s2s_sample_free(s);
    }
    assert_int_equal(s2s_scorer_finish(sc, &err), 0);
    json_t *rep = s2s_scorer_report(sc, NULL, &err);
    assert_non_null(rep);
    /* story: 2.0 < 2.5 right; 3.0 < 3.0 false -> 1/2 (upstream eval_story.py: 50%).
     * CMMLU 7: A=1.0 <= B 1.0 yes, <= C 0.5 no, <= D 2.0 yes -> 2/3;
     * CMMLU 9: C has no loss (skipped upstream); A 1.0 <= B 0.9 no, <= D 3.0 yes -> 1/2.
     * upstream eval_cmmlu4.py: 3/5; by category below. Overall 4 of 7 counted pairs. */
    assert_true(num(rep, "modes.s2t.pairs") == 7);
    assert_true(num(rep, "modes.s2t.correct") == 4);
    assert_true(num(rep, "modes.s2t.failed") == 1);
    assert_true(num(rep, "modes.s2t.by_category.cmmlu.accuracy") == 0.6);
    assert_true(num(rep, "modes.s2t.by_category.-.accuracy") == 0.5);
    /* upstream's average losses: story (2.0+3.0)/2 vs (2.5+3.0)/2 */
    assert_true(num(rep, "modes.s2t.by_category.-.mean_score_plausible") == 2.5);
    assert_true(num(rep, "modes.s2t.by_category.-.mean_score_implausible") == 2.75);
    /* CMMLU: answer loss repeated per pair: (1+1+1+1+1)/5; others (1+.5+2+.9+3)/5 */
    assert_true(fabs(num(rep, "modes.s2t.by_category.cmmlu.mean_score_plausible") - 1.0) < 1e-12);
    assert_true(fabs(num(rep, "modes.s2t.by_category.cmmlu.mean_score_implausible") - 1.48) <
                1e-12);
    json_decref(rep);
    s2s_scorer_free(sc);
    s2s_backend_free(b);

    /* without compat the story tie counts 0.5 */
    o.compat = 0;
    b = s2s_backend_open(spec, &err);
    sc = s2s_scorer_new(&o, b, &err);
    s2s_sample *s = mk(items[1]);
    assert_int_equal(s2s_scorer_add(sc, s, &err), 0);
    s2s_sample_free(s);
    assert_int_equal(s2s_scorer_finish(sc, &err), 0);
    rep = s2s_scorer_report(sc, NULL, &err);
    assert_true(num(rep, "modes.s2t.correct") == 0.5);
    json_decref(rep);
    s2s_scorer_free(sc);
    /* sum/byte scores cannot come from per-token means */
    o.kind = S2S_SCORE_SUM;
    assert_null(s2s_scorer_new(&o, b, &err));
    s2s_backend_free(b);

    /* a malformed losses file is refused with its line */
    fp = fopen(path, "w");
    fputs("{\"uttid\": 0, \"loss\": [1.0]}\n{\"uttid\": [1], \"loss\": [1.0]}\n", fp);
    fclose(fp);
    assert_null(s2s_backend_open(spec, &err));
    assert_non_null(strstr(err.msg, ":2:"));
    fp = fopen(path, "w");
    fputs("{\"uttid\": 0, \"loss\": [1.0]}\n{\"uttid\": 0, \"loss\": [2.0]}\n", fp);
    fclose(fp);
    assert_null(s2s_backend_open(spec, &err));
    assert_non_null(strstr(err.msg, "duplicate"));
    unlink(path);
    rmdir(dir);
}

/* Audio members are handed to the backend as files in a private temp dir, removed afterwards. */
static char seen_audio[3][512];
static int audio_answer(void *self, const s2s_request *rq, s2s_reply *out, s2s_err *err) {
    (void)self, (void)err;
    assert_non_null(rq->ctx_audio);
    FILE *fp = fopen(rq->ctx_audio, "rb");
    assert_non_null(fp);
    char buf[16] = {0};
    assert_true(fread(buf, 1, sizeof buf - 1, fp) == 8);
    fclose(fp);
    assert_string_equal(buf, "RIFFdata");
    assert_null(rq->cand_audio);
    if (rq->cand < 3) snprintf(seen_audio[rq->cand], sizeof seen_audio[0], "%s", rq->ctx_audio);
    out->nll = rq->cand + 1.0;
    out->ntok = 1;
    return 0;
}

static int audio_needs(void *self, s2s_mode mode, unsigned *needs, s2s_err *err) {
    (void)self, (void)mode, (void)err;
    *needs = S2S_NEED_CTX_AUDIO | S2S_NEED_CAND_TEXT;
    return 0;
}

static const s2s_backend_ops audio_ops = {
    .kind = "fake", .needs = audio_needs, .answer = audio_answer};

static void test_audio_files(void **state) {
    (void)state;
    s2s_err err;
    s2s_score_opts o;
    s2s_score_opts_init(&o);
    o.modes = 1u << S2S_MODE_S2T;
    s2s_backend *b = s2s_backend_new(&audio_ops, NULL, "fake:", "", &err);
    s2s_scorer *sc = s2s_scorer_new(&o, b, &err);
    assert_non_null(sc);
    s2s_sample *s = mk(items3[0]);
    assert_int_equal(s2s_scorer_add(sc, s, &err), S2S_EDATA);
    assert_non_null(strstr(err.msg, "ctx.wav or ctx.flac"));
    assert_int_equal(s2s_sample_put_copy(s, "ctx.wav", "RIFFdata", 8, &err), 0);
    assert_int_equal(s2s_scorer_add(sc, s, &err), 0);
    assert_int_equal(s2s_scorer_finish(sc, &err), 0);
    /* the same file for both candidates, gone once the item is complete */
    assert_string_equal(seen_audio[0], seen_audio[1]);
    assert_int_equal(access(seen_audio[0], F_OK), -1);
    json_t *rep = s2s_scorer_report(sc, NULL, &err);
    assert_true(num(rep, "modes.s2t.accuracy") == 1.0);
    json_decref(rep);
    s2s_sample_free(s);
    s2s_scorer_free(sc);
    s2s_backend_free(b);
}

/* Cache hooks: candidates 0 come from lookup, the rest from the backend and go to store; the
 * report is the same as without a cache. */
typedef struct cache_ctx {
    unsigned looked, hits, stored;
} cache_ctx;

static int cache_lookup(void *ctx, const s2s_request *rq, s2s_reply *r, s2s_err *err) {
    cache_ctx *c = ctx;
    (void)err;
    c->looked++;
    if (rq->cand != 0) return 0;
    c->hits++;
    fake_fill(rq, r);
    return 1;
}

static int cache_store(void *ctx, const char *item_id, s2s_mode mode, unsigned cand,
                       const s2s_reply *r, s2s_err *err) {
    cache_ctx *c = ctx;
    (void)item_id, (void)mode, (void)r, (void)err;
    assert_true(cand != 0);
    c->stored++;
    return 0;
}

static void test_cache_hooks(void **state) {
    (void)state;
    s2s_score_opts o;
    s2s_score_opts_init(&o);
    o.modes = (1u << S2S_MODE_T2T) | (1u << S2S_MODE_S2T);
    char *p1, *p2;
    json_t *a = run(&sync_ops, NULL, &o, items3, 3, &p1);
    s2s_err err;
    s2s_backend *b = s2s_backend_new(&sync_ops, NULL, "fake:", "", &err);
    s2s_scorer *sc = s2s_scorer_new(&o, b, &err);
    cache_ctx cc = {0};
    s2s_score_hooks h = {&cc, cache_lookup, cache_store};
    s2s_scorer_set_hooks(sc, &h);
    for (int i = 0; i < 3; i++) {
        s2s_sample *s = mk(items3[i]);
        assert_int_equal(s2s_scorer_add(sc, s, &err), 0);
        s2s_sample_free(s);
    }
    assert_int_equal(s2s_scorer_finish(sc, &err), 0);
    /* 8 candidates x 2 modes asked about; 3 candidates 0 x 2 modes from the cache */
    assert_int_equal(cc.looked, 16);
    assert_int_equal(cc.hits, 6);
    assert_int_equal(cc.stored, 10);
    assert_int_equal(s2s_scorer_cached(sc), 6);
    json_t *bb = s2s_scorer_report(sc, NULL, &err);
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    assert_int_equal(s2s_scorer_write_pairs(sc, fp, &err), 0);
    fclose(fp);
    p2 = buf;
    char *sa = json_dumps(a, JSON_COMPACT), *sb = json_dumps(bb, JSON_COMPACT);
    assert_string_equal(sa, sb);
    assert_string_equal(p1, p2);
    free(sa), free(sb), free(p1), free(p2);
    json_decref(a);
    json_decref(bb);
    s2s_scorer_free(sc);
    s2s_backend_free(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_outcome),       cmocka_unit_test(test_protocol),
        cmocka_unit_test(test_compat_fake),   cmocka_unit_test(test_async_out_of_order),
        cmocka_unit_test(test_degradation),   cmocka_unit_test(test_missing_inputs),
        cmocka_unit_test(test_losses_compat), cmocka_unit_test(test_audio_files),
        cmocka_unit_test(test_cache_hooks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

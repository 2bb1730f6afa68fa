/* test_synth.c — libs2s/synth.c: text checks, voices, post-processing, WAV bytes, isolation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "s2s/item.h"
#include "s2s/sample.h"
#include "s2s/synth.h"

static s2s_synth *new_synth(const char *voice, const char *voices, int isolate) {
    s2s_synth_opts o;
    s2s_synth_opts_default(&o);
    o.voice = voice;
    o.voices = voices;
    o.isolate = isolate;
    s2s_err err;
    s2s_err_clear(&err);
    s2s_synth *s = s2s_synth_new(&o, &err);
    if (!s) fprintf(stderr, "s2s_synth_new: %s\n", err.msg);
    assert_non_null(s);
    return s;
}

static void test_check_text(void **state) {
    (void)state;
    s2s_err err;
    assert_int_equal(s2s_synth_check_text("Hello.", &err), 0);
    assert_int_equal(s2s_synth_check_text("今天天气很好。", &err), 0);
    assert_int_equal(s2s_synth_check_text("a <b> & c", &err), 0);
    assert_int_equal(s2s_synth_check_text("", &err), S2S_EDATA);
    assert_string_equal(err.msg, "is empty");
    assert_int_equal(s2s_synth_check_text(" \t\n", &err), S2S_EDATA);
    assert_string_equal(err.msg, "is only whitespace");
    /* U+3000 ideographic space, U+00A0 no-break space, U+200B zero width space */
    assert_int_equal(s2s_synth_check_text("\xe3\x80\x80\xc2\xa0\xe2\x80\x8b", &err), S2S_EDATA);
    assert_string_equal(err.msg, "is only whitespace");
    assert_int_equal(s2s_synth_check_text("caf\xe9", &err), S2S_EDATA);
    assert_string_equal(err.msg, "is not valid UTF-8 (byte 3)");
    assert_int_equal(s2s_synth_check_text("\xc0\xaf", &err), S2S_EDATA);         /* overlong */
    assert_int_equal(s2s_synth_check_text("\xed\xa0\x80", &err), S2S_EDATA);     /* surrogate */
    assert_int_equal(s2s_synth_check_text("\xf4\x90\x80\x80", &err), S2S_EDATA); /* > U+10FFFF */
    assert_int_equal(s2s_synth_check_text("ab\xe4\xbb", &err), S2S_EDATA);       /* truncated */
}

static void test_trim(void **state) {
    (void)state;
    int16_t pcm[3000];
    memset(pcm, 0, sizeof pcm);
    for (int i = 1000; i < 1500; i++)
        pcm[i] = (int16_t)((i % 7) * 1000 - 3000);
    pcm[1000] = 5000, pcm[1499] = -5000;
    int16_t orig[3000];
    memcpy(orig, pcm, sizeof pcm);
    size_t lead = 0;
    size_t n = s2s_synth_trim(pcm, 3000, 22050, &lead);
    size_t pad = 22050 * S2S_SYNTH_TRIM_PAD_MS / 1000; /* 220 */
    assert_int_equal(lead, 1000 - pad);
    assert_int_equal(n, 500 + 2 * pad);
    assert_memory_equal(pcm, orig + lead, n * sizeof *pcm);
    /* all silent (below the threshold) -> 0 */
    int16_t quiet[100];
    for (int i = 0; i < 100; i++)
        quiet[i] = (int16_t)(i % 2 ? S2S_SYNTH_TRIM_THRESHOLD : -S2S_SYNTH_TRIM_THRESHOLD);
    assert_int_equal(s2s_synth_trim(quiet, 100, 22050, NULL), 0);
    /* loud at both ends: nothing to cut */
    int16_t loud[10] = {3000, 0, 0, 0, 0, 0, 0, 0, 0, -3000};
    assert_int_equal(s2s_synth_trim(loud, 10, 22050, &lead), 10);
    assert_int_equal(lead, 0);
}

static void test_normalize_clipped(void **state) {
    (void)state;
    int16_t pcm[4] = {1000, -2000, 500, 0};
    double g = 0;
    assert_int_equal(s2s_synth_normalize(pcm, 4, &g), 0);
    assert_int_equal(pcm[1], -S2S_SYNTH_NORM_PEAK);
    assert_int_equal(pcm[0], (S2S_SYNTH_NORM_PEAK + 1) / 2); /* 14602: rounded half away */
    assert_true(g > 14.6 && g < 14.61);
    int16_t zero[3] = {0, 0, 0};
    assert_int_equal(s2s_synth_normalize(zero, 3, &g), 0);
    assert_true(g == 1.0);
    int16_t c[5] = {32767, -32768, 5, 32767, 0};
    assert_int_equal(s2s_synth_clipped(c, 5), 3);
    /* the vector path: every length and offset around the 8-sample vectors, and runs long
     * enough (all clipped) to overflow 16-bit lane counters if they were not folded */
    size_t big = 8 * 4096 * 3 + 13;
    int16_t *b = malloc(big * sizeof *b);
    assert_non_null(b);
    uint32_t r = 12345;
    for (size_t i = 0; i < big; i++) {
        r = r * 1103515245u + 12345u;
        int v = (int)(r >> 16) % 5;
        b[i] = v == 0 ? 32767 : v == 1 ? -32768 : v == 2 ? 32766 : v == 3 ? -32767 : 0;
    }
    for (size_t off = 0; off < 9; off++)
        for (size_t len = 0; len < 40; len++) {
            size_t want = 0;
            for (size_t i = 0; i < len; i++)
                want += b[off + i] == 32767 || b[off + i] == -32768;
            assert_int_equal(s2s_synth_clipped(b + off, len), want);
        }
    size_t want = 0;
    for (size_t i = 0; i < big; i++)
        want += b[i] == 32767 || b[i] == -32768;
    assert_int_equal(s2s_synth_clipped(b, big), want);
    for (size_t i = 0; i < big; i++)
        b[i] = (i & 1) ? 32767 : -32768;
    assert_int_equal(s2s_synth_clipped(b + 1, big - 1), big - 1);
    free(b);
}

static void test_wav_bytes(void **state) {
    (void)state;
    int16_t pcm[3] = {1, -2, 0x1234};
    unsigned char *w;
    size_t n;
    s2s_err err;
    assert_int_equal(s2s_synth_wav(pcm, 3, 22050, &w, &n, &err), 0);
    static const unsigned char want[50] = {
        'R', 'I', 'F', 'F', 42,  0,   0, 0,    'W',  'A', 'V', 'E',  'f',  'm',  't',  ' ', 16,
        0,   0,   0,   1,   0,   1,   0, 0x22, 0x56, 0,   0,   0x44, 0xac, 0,    0,    2,   0,
        16,  0,   'd', 'a', 't', 'a', 6, 0,    0,    0,   1,   0,    0xfe, 0xff, 0x34, 0x12};
    assert_int_equal(n, 50);
    assert_memory_equal(w, want, 50);
    free(w);
}

static json_t *item(const char *id, const char *lang, const char *ctx) {
    json_t *j = json_pack("{s:s, s:s, s:s, s:{s:s}, s:[{s:s, s:i}, {s:s, s:i}]}", "id", id, "task",
                          "cloze", "lang", lang, "context", "text", ctx, "candidates", "text",
                          "Yes.", "label", 1, "text", "No.", "label", 0);
    assert_non_null(j);
    return j;
}

static void test_voices_and_speak(void **state) {
    (void)state;
    s2s_err err;
    s2s_synth_opts o;
    s2s_synth_opts_default(&o);
    o.rate = 20;
    assert_null(s2s_synth_new(&o, &err));
    assert_int_equal(err.code, S2S_EINVAL);
    s2s_synth_opts_default(&o);
    o.voice = "en-uss";
    assert_null(s2s_synth_new(&o, &err));
    assert_non_null(strstr(err.msg, "close: en-us"));

    s2s_synth *s = new_synth(NULL, NULL, S2S_SYNTH_ISOLATE_ITEM);
    assert_int_equal(s2s_synth_rate(s), 22050);
    /* one handle per process */
    assert_null(s2s_synth_new(&o, &err));
    assert_int_equal(err.code, S2S_EUNSUP);

    char v[128];
    json_t *en = item("a1", "en", "Hello there."), *zh = item("a2", "zh", "你好。");
    json_t *fr = item("a3", "fr", "Bonjour."), *xx = item("a4", "xx", "Hello.");
    json_t *de = item("a5", "de-DE", "Hallo.");
    assert_int_equal(s2s_synth_voice_for(s, en, v, sizeof v, &err), 0);
    assert_string_equal(v, "en-us");
    assert_int_equal(s2s_synth_voice_for(s, zh, v, sizeof v, &err), 0);
    assert_string_equal(v, "cmn");
    assert_int_equal(s2s_synth_voice_for(s, fr, v, sizeof v, &err), 0);
    assert_string_equal(v, "fr");
    assert_int_equal(s2s_synth_voice_for(s, de, v, sizeof v, &err), 0);
    assert_string_equal(v, "de");
    assert_int_equal(s2s_synth_voice_for(s, xx, v, sizeof v, &err), S2S_EDATA);
    assert_non_null(strstr(err.msg, "item a4: language \"xx\" has no espeak-ng voice"));

    /* a sample gets ctx.wav, c0.wav, c1.wav and the audio object */
    s2s_sample *smp = s2s_sample_new("a1", &err);
    assert_non_null(smp);
    smp->item = json_incref(en);
    assert_int_equal(s2s_synth_sample(s, smp, &err), 0);
    s2s_member *m = s2s_sample_get(smp, "ctx.wav");
    assert_non_null(m);
    assert_true(m->size > 44 + 22050); /* more than half a second */
    assert_non_null(s2s_sample_get(smp, "c1.wav"));
    json_t *a = json_object_get(smp->item, "audio");
    assert_int_equal(json_integer_value(json_object_get(a, "rate")), 22050);
    assert_string_equal(json_string_value(json_object_get(a, "voice")), "en-us");
    assert_int_equal((json_int_t)(m->size - 44) / 2,
                     json_integer_value(json_object_get(json_object_get(a, "samples"), "ctx")));
    /* isolation: the same item again gives the same bytes (the engine state does not carry) */
    s2s_sample *again = s2s_sample_new("a1", &err);
    again->item = json_incref(en);
    assert_int_equal(s2s_synth_sample(s, again, &err), 0);
    s2s_member *m2 = s2s_sample_get(again, "ctx.wav");
    assert_int_equal(m->size, m2->size);
    assert_memory_equal(m->data, m2->data, m->size);
    /* a bad item leaves the sample alone */
    s2s_sample *bad = s2s_sample_new("a4", &err);
    bad->item = json_incref(xx);
    assert_int_equal(s2s_synth_sample(s, bad, &err), S2S_EDATA);
    assert_int_equal(bad->n_members, 0);
    assert_null(json_object_get(bad->item, "audio"));

    s2s_sample_free(smp), s2s_sample_free(again), s2s_sample_free(bad);
    json_decref(en), json_decref(zh), json_decref(fr), json_decref(xx), json_decref(de);
    s2s_synth_free(s);
}

static void test_voices_spread(void **state) {
    (void)state;
    s2s_synth *s = new_synth(NULL, "en-us,en-us+f3,cmn", S2S_SYNTH_ISOLATE_ITEM);
    s2s_err err;
    char v[128], first[128];
    int seen[3] = {0, 0, 0};
    for (int i = 0; i < 60; i++) {
        char id[16];
        snprintf(id, sizeof id, "x%d", i);
        json_t *it = item(id, "en", "Hi.");
        assert_int_equal(s2s_synth_voice_for(s, it, v, sizeof v, &err), 0);
        if (i == 0) snprintf(first, sizeof first, "%s", v);
        seen[strcmp(v, "en-us") == 0 ? 0 : strcmp(v, "cmn") == 0 ? 2 : 1]++;
        json_decref(it);
    }
    assert_true(seen[0] > 5 && seen[1] > 5 && seen[2] > 5);
    /* pure function of seed and id */
    json_t *it = item("x0", "en", "Hi.");
    assert_int_equal(s2s_synth_voice_for(s, it, v, sizeof v, &err), 0);
    assert_string_equal(v, first);
    json_decref(it);
    s2s_synth_free(s);
}

/* RESET_SNAPSHOT workers against RESET_FORK: same bytes; jobs of one worker ended out of order;
 * a dropped job stops its worker (its other queued job fails), the next item starts a new one. */
static void test_snapshot_workers(void **state) {
    (void)state;
    static const char *const texts[6] = {
        "Karen was assigned a roommate. They did not know each other.",
        "The dog barked at 3 cats, then slept.",
        "Tom & Jerry met at 5 pm near the old bridge.",
        "She baked a cake for her mother's 60th birthday!",
        "Was it raining? Nobody could tell.",
        "He paid $12.50 for two tickets."};
    s2s_err err;
    s2s_member ref[6];
    s2s_sample *keep[6];
    s2s_synth_opts o;
    s2s_synth_opts_default(&o);
    o.reset = S2S_SYNTH_RESET_FORK;
    s2s_synth *s = s2s_synth_new(&o, &err);
    assert_non_null(s);
    for (int i = 0; i < 6; i++) {
        char id[8];
        snprintf(id, sizeof id, "w%d", i);
        keep[i] = s2s_sample_new(id, &err);
        keep[i]->item = item(id, "en", texts[i]);
        assert_int_equal(s2s_synth_sample(s, keep[i], &err), 0);
        ref[i] = *s2s_sample_get(keep[i], "c1.wav");
    }
    s2s_synth_free(s);
    o.reset = S2S_SYNTH_RESET_SNAPSHOT;
    o.jobs = 2;
    s = s2s_synth_new(&o, &err);
    assert_non_null(s);
    /* items 0, 2, 4 go to worker 0; 1, 3 to worker 1 (the least busy, ties to the first) */
    s2s_sample *smp[6];
    s2s_synth_job *job[6];
    for (int i = 0; i < 5; i++) {
        smp[i] = s2s_sample_new(s2s_item_id(keep[i]->item), &err);
        smp[i]->item = item(s2s_item_id(keep[i]->item), "en", texts[i]);
        job[i] = s2s_synth_begin(s, smp[i]->item, &err);
        assert_non_null(job[i]);
    }
    s2s_synth_job_free(job[1]); /* worker 1 owes its audio: stopped */
    int order[3] = {4, 0, 2};
    for (int k = 0; k < 3; k++) {
        int i = order[k];
        assert_int_equal(s2s_synth_end(s, job[i], smp[i], &err), 0);
        s2s_member *m = s2s_sample_get(smp[i], "c1.wav");
        assert_int_equal(m->size, ref[i].size);
        assert_memory_equal(m->data, ref[i].data, m->size);
    }
    assert_int_equal(s2s_synth_end(s, job[3], smp[3], &err), S2S_EIO);
    /* item 5 goes to worker 1 again: a new one */
    smp[5] = s2s_sample_new("w5", &err);
    smp[5]->item = item("w5", "en", texts[5]);
    job[5] = s2s_synth_begin(s, smp[5]->item, &err);
    assert_non_null(job[5]);
    assert_int_equal(s2s_synth_end(s, job[5], smp[5], &err), 0);
    s2s_member *m = s2s_sample_get(smp[5], "ctx.wav");
    s2s_member *r = s2s_sample_get(keep[5], "ctx.wav");
    assert_int_equal(m->size, r->size);
    assert_memory_equal(m->data, r->data, m->size);
    for (int i = 0; i < 6; i++) {
        if (i != 1) s2s_sample_free(smp[i]);
        s2s_sample_free(keep[i]);
    }
    s2s_sample_free(smp[1]);
    s2s_synth_free(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_text),        cmocka_unit_test(test_trim),
        cmocka_unit_test(test_normalize_clipped), cmocka_unit_test(test_wav_bytes),
        cmocka_unit_test(test_voices_and_speak),  cmocka_unit_test(test_voices_spread),
        cmocka_unit_test(test_snapshot_workers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

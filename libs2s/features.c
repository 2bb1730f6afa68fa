/* features.c — Kaldi-compatible log-mel filterbank over libavutil's real FFT. */
#include "s2s/features.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <libavutil/mem.h>
#include <libavutil/tx.h>

struct s2s_fbank {
    s2s_fbank_opts o;
    size_t frame, hop, nfft;
    float *win;   /* frame */
    float *buf;   /* nfft (av_malloc'd: av_tx wants aligned buffers) */
    float *spec;  /* nfft + 2 (N/2+1 complex) */
    float *power; /* nfft/2 */
    float *tmp;   /* frame: scaled, DC-free samples */
    /* Sparse mel matrix: filter m covers bins first[m] .. first[m]+len[m]-1. */
    size_t *first, *len;
    float **w;
    double *center_hz;
    AVTXContext *tx;
    av_tx_fn fn;
};

void s2s_fbank_opts_default(s2s_fbank_opts *o) {
    o->rate = 16000;
    o->frame_ms = 25.0;
    o->hop_ms = 10.0;
    o->n_mels = 80;
    o->low_hz = 20.0;
    o->high_hz = 0.0;
    o->preemph = 0.97;
    o->window = S2S_WIN_POVEY;
    o->remove_dc = 1;
    o->cmvn = 0;
    o->scale = 32768.0;
}

static const char *win_names[] = {"povey", "hamming", "hann"};

const char *s2s_fbank_window_name(int window) {
    return window >= 0 && window < 3 ? win_names[window] : NULL;
}

int s2s_fbank_window_parse(const char *name) {
    for (int i = 0; i < 3; i++)
        if (name && strcmp(name, win_names[i]) == 0) return i;
    return -1;
}

static double resolved_high(const s2s_fbank_opts *o) {
    double nyq = o->rate / 2.0;
    return o->high_hz > 0 ? o->high_hz : nyq + o->high_hz;
}

static size_t ms_to_samples(int rate, double ms) {
    return (size_t)llround(rate * ms / 1000.0);
}

int s2s_fbank_opts_check(const s2s_fbank_opts *o, s2s_err *err) {
    if (o->rate < 1000 || o->rate > 384000)
        return s2s_err_set(err, S2S_EINVAL, "feature rate %d Hz out of range 1000..384000",
                           o->rate);
    if (!(o->frame_ms >= 1 && o->frame_ms <= 1000))
        return s2s_err_set(err, S2S_EINVAL, "frame length %g ms out of range 1..1000", o->frame_ms);
    if (!(o->hop_ms >= 0.1 && o->hop_ms <= o->frame_ms))
        return s2s_err_set(err, S2S_EINVAL, "hop %g ms must be in 0.1..frame length (%g ms)",
                           o->hop_ms, o->frame_ms);
    if (ms_to_samples(o->rate, o->hop_ms) < 1 || ms_to_samples(o->rate, o->frame_ms) < 2)
        return s2s_err_set(err, S2S_EINVAL, "frame or hop shorter than a sample at %d Hz", o->rate);
    if (o->n_mels < 1 || o->n_mels > 512)
        return s2s_err_set(err, S2S_EINVAL, "number of mel filters %d out of range 1..512",
                           o->n_mels);
    double hi = resolved_high(o);
    if (!(o->low_hz >= 0 && o->low_hz < hi && hi <= o->rate / 2.0))
        return s2s_err_set(err, S2S_EINVAL,
                           "mel range %g..%g Hz invalid (need 0 <= low < high <= %g Hz)", o->low_hz,
                           hi, o->rate / 2.0);
    if (!(o->preemph >= 0 && o->preemph <= 1))
        return s2s_err_set(err, S2S_EINVAL, "pre-emphasis %g out of range 0..1", o->preemph);
    if (!s2s_fbank_window_name(o->window))
        return s2s_err_set(err, S2S_EINVAL, "unknown window type %d", o->window);
    if (!(o->scale > 0 && isfinite(o->scale)))
        return s2s_err_set(err, S2S_EINVAL, "input scale %g must be positive", o->scale);
    return 0;
}

json_t *s2s_fbank_opts_to_json(const s2s_fbank_opts *o) {
    return json_pack("{s:s, s:i, s:f, s:f, s:I, s:I, s:i, s:f, s:f, s:f, s:s, s:b, s:b, s:f}",
                     "type", "logmel", "rate", o->rate, "frame_ms", o->frame_ms, "hop_ms",
                     o->hop_ms, "frame_samples", (json_int_t)ms_to_samples(o->rate, o->frame_ms),
                     "hop_samples", (json_int_t)ms_to_samples(o->rate, o->hop_ms), "n_mels",
                     o->n_mels, "low_hz", o->low_hz, "high_hz", resolved_high(o), "preemph",
                     o->preemph, "window", s2s_fbank_window_name(o->window), "remove_dc",
                     o->remove_dc, "cmvn", o->cmvn, "scale", o->scale);
}

static int get_num(const json_t *j, const char *k, double *v, s2s_err *err) {
    json_t *x = json_object_get(j, k);
    if (!json_is_number(x))
        return s2s_err_set(err, S2S_EFORMAT, "features: \"%s\" missing or not a number", k);
    *v = json_number_value(x);
    return 0;
}

static int get_int(const json_t *j, const char *k, int *v, s2s_err *err) {
    json_t *x = json_object_get(j, k);
    if (!json_is_integer(x) || json_integer_value(x) < -2147483647 ||
        json_integer_value(x) > 2147483647)
        return s2s_err_set(err, S2S_EFORMAT, "features: \"%s\" missing or not an integer", k);
    *v = (int)json_integer_value(x);
    return 0;
}

static int get_bool(const json_t *j, const char *k, int *v, s2s_err *err) {
    json_t *x = json_object_get(j, k);
    if (!json_is_boolean(x))
        return s2s_err_set(err, S2S_EFORMAT, "features: \"%s\" missing or not a boolean", k);
    *v = json_is_true(x);
    return 0;
}

int s2s_fbank_opts_from_json(const json_t *j, s2s_fbank_opts *o, s2s_err *err) {
    if (!json_is_object(j)) return s2s_err_set(err, S2S_EFORMAT, "features: not a JSON object");
    const char *type = json_string_value(json_object_get(j, "type"));
    if (!type || strcmp(type, "logmel") != 0)
        return s2s_err_set(err, S2S_EFORMAT, "features: \"type\" must be \"logmel\"");
    const char *win = json_string_value(json_object_get(j, "window"));
    if (!win) return s2s_err_set(err, S2S_EFORMAT, "features: \"window\" missing");
    s2s_fbank_opts_default(o);
    int rc;
    if ((rc = get_int(j, "rate", &o->rate, err)) < 0 ||
        (rc = get_num(j, "frame_ms", &o->frame_ms, err)) < 0 ||
        (rc = get_num(j, "hop_ms", &o->hop_ms, err)) < 0 ||
        (rc = get_int(j, "n_mels", &o->n_mels, err)) < 0 ||
        (rc = get_num(j, "low_hz", &o->low_hz, err)) < 0 ||
        (rc = get_num(j, "high_hz", &o->high_hz, err)) < 0 ||
        (rc = get_num(j, "preemph", &o->preemph, err)) < 0 ||
        (rc = get_bool(j, "remove_dc", &o->remove_dc, err)) < 0 ||
        (rc = get_bool(j, "cmvn", &o->cmvn, err)) < 0 ||
        (rc = get_num(j, "scale", &o->scale, err)) < 0)
        return rc;
    if ((o->window = s2s_fbank_window_parse(win)) < 0)
        return s2s_err_set(err, S2S_EFORMAT, "features: unknown window \"%s\"", win);
    return s2s_fbank_opts_check(o, err);
}

static double mel_scale(double hz) {
    return 1127.0 * log(1.0 + hz / 700.0);
}

static double inverse_mel(double mel) {
    return 700.0 * (exp(mel / 1127.0) - 1.0);
}

void s2s_fbank_free(s2s_fbank *fb) {
    if (!fb) return;
    if (fb->w)
        for (int m = 0; m < fb->o.n_mels; m++)
            free(fb->w[m]);
    free(fb->w);
    free(fb->first);
    free(fb->len);
    free(fb->center_hz);
    free(fb->win);
    free(fb->power);
    free(fb->tmp);
    av_free(fb->buf);
    av_free(fb->spec);
    av_tx_uninit(&fb->tx);
    free(fb);
}

s2s_fbank *s2s_fbank_new(const s2s_fbank_opts *o, s2s_err *err) {
    if (s2s_fbank_opts_check(o, err) < 0) return NULL;
    s2s_fbank *fb = calloc(1, sizeof *fb);
    if (!fb) {
        s2s_err_set(err, S2S_ENOMEM, "out of memory");
        return NULL;
    }
    fb->o = *o;
    fb->frame = ms_to_samples(o->rate, o->frame_ms);
    fb->hop = ms_to_samples(o->rate, o->hop_ms);
    fb->nfft = 2;
    while (fb->nfft < fb->frame)
        fb->nfft *= 2;
    size_t nb = fb->nfft / 2;
    int nm = o->n_mels;
    fb->win = malloc(fb->frame * sizeof *fb->win);
    fb->power = malloc(nb * sizeof *fb->power);
    fb->tmp = malloc(fb->frame * sizeof *fb->tmp);
    fb->buf = av_malloc(fb->nfft * sizeof *fb->buf);
    fb->spec = av_malloc((fb->nfft + 2) * sizeof *fb->spec);
    fb->first = calloc((size_t)nm, sizeof *fb->first);
    fb->len = calloc((size_t)nm, sizeof *fb->len);
    fb->w = calloc((size_t)nm, sizeof *fb->w);
    fb->center_hz = calloc((size_t)nm, sizeof *fb->center_hz);
    if (!fb->win || !fb->power || !fb->tmp || !fb->buf || !fb->spec || !fb->first || !fb->len ||
        !fb->w || !fb->center_hz)
        goto nomem;
    float scale = 1.0f;
    int r = av_tx_init(&fb->tx, &fb->fn, AV_TX_FLOAT_RDFT, 0, (int)fb->nfft, &scale, 0);
    if (r < 0 || !fb->tx) {
        s2s_err_set(err, r == AVERROR(ENOMEM) ? S2S_ENOMEM : S2S_EUNSUP,
                    "av_tx_init: cannot make a real FFT of size %zu (error %d)", fb->nfft, r);
        s2s_fbank_free(fb);
        return NULL;
    }
    /* Window, in double then rounded, as Kaldi's FeatureWindowFunction. */
    double a = 2.0 * M_PI / (double)(fb->frame - 1);
    for (size_t i = 0; i < fb->frame; i++) {
        double c = cos(a * (double)i), v;
        if (o->window == S2S_WIN_POVEY)
            v = pow(0.5 - 0.5 * c, 0.85);
        else if (o->window == S2S_WIN_HAMMING)
            v = 0.54 - 0.46 * c;
        else
            v = 0.5 - 0.5 * c;
        fb->win[i] = (float)v;
    }
    /* Mel filters as Kaldi's MelBanks: equal widths on the mel scale, evaluated at the centre
     * frequency of FFT bins 0 .. N/2-1 (the Nyquist bin is not used). */
    double bin_hz = (double)o->rate / (double)fb->nfft;
    double mlo = mel_scale(o->low_hz), mhi = mel_scale(resolved_high(o));
    double delta = (mhi - mlo) / (nm + 1);
    for (int m = 0; m < nm; m++) {
        double left = mlo + m * delta, center = left + delta, right = center + delta;
        fb->center_hz[m] = inverse_mel(center);
        size_t first = nb, last = 0;
        for (size_t i = 0; i < nb; i++) {
            double mel = mel_scale(bin_hz * (double)i);
            if (mel > left && mel < right) {
                if (first == nb) first = i;
                last = i;
            }
        }
        if (first == nb) { /* too narrow to hold a bin: an all-zero filter, as Kaldi */
            first = 0;
            last = 0;
        }
        fb->first[m] = first;
        fb->len[m] = last - first + 1;
        if (!(fb->w[m] = calloc(fb->len[m], sizeof(float)))) goto nomem;
        for (size_t i = first; i <= last; i++) {
            double mel = mel_scale(bin_hz * (double)i), v = 0;
            if (mel > left && mel < right)
                v = mel <= center ? (mel - left) / (center - left)
                                  : (right - mel) / (right - center);
            fb->w[m][i - first] = (float)v;
        }
    }
    return fb;
nomem:
    s2s_fbank_free(fb);
    s2s_err_set(err, S2S_ENOMEM, "out of memory");
    return NULL;
}

const s2s_fbank_opts *s2s_fbank_get_opts(const s2s_fbank *fb) {
    return &fb->o;
}
size_t s2s_fbank_frame_len(const s2s_fbank *fb) {
    return fb->frame;
}
size_t s2s_fbank_hop_len(const s2s_fbank *fb) {
    return fb->hop;
}
size_t s2s_fbank_fft_len(const s2s_fbank *fb) {
    return fb->nfft;
}

size_t s2s_fbank_n_frames(const s2s_fbank *fb, size_t n) {
    return n < fb->frame ? 0 : 1 + (n - fb->frame) / fb->hop;
}

const float *s2s_fbank_mel_weights(const s2s_fbank *fb, int m, size_t *first, size_t *len) {
    if (m < 0 || m >= fb->o.n_mels) return NULL;
    *first = fb->first[m];
    *len = fb->len[m];
    return fb->w[m];
}

double s2s_fbank_mel_center_hz(const s2s_fbank *fb, int m) {
    return m >= 0 && m < fb->o.n_mels ? fb->center_hz[m] : 0.0;
}

/* One frame: x[0..frame-1] -> out[0..n_mels-1]. Loops are written so that O3 vectorises them
 * without reordering any floating-point operation (the DC mean is a plain sum in double); this
 * halved the cost of the features relative to -O2 (perf on bench/tokenize.sh). */
__attribute__((optimize("O3"))) static void one_frame(s2s_fbank *fb, const float *restrict x,
                                                      float *restrict out) {
    size_t L = fb->frame, nb = fb->nfft / 2;
    float *restrict b = fb->buf;
    float *restrict pw = fb->power;
    const float *restrict win = fb->win;
    float sc = (float)fb->o.scale, c = (float)fb->o.preemph;
    float *restrict t = fb->tmp;
    for (size_t i = 0; i < L; i++)
        t[i] = x[i] * sc;
    if (fb->o.remove_dc) {
        double sum = 0;
        for (size_t i = 0; i < L; i++)
            sum += t[i];
        float mean = (float)(sum / (double)L);
        for (size_t i = 0; i < L; i++)
            t[i] -= mean;
    }
    /* Kaldi's pre-emphasis, w[i] -= c w[i-1] from the end, w[0] -= c w[0]; then the window. */
    b[0] = (t[0] - c * t[0]) * win[0];
    for (size_t i = 1; i < L; i++)
        b[i] = (t[i] - c * t[i - 1]) * win[i];
    for (size_t i = L; i < fb->nfft; i++)
        b[i] = 0;
    fb->fn(fb->tx, fb->spec, b, sizeof(float));
    const float *restrict s = fb->spec;
    for (size_t k = 0; k < nb; k++)
        pw[k] = s[2 * k] * s[2 * k] + s[2 * k + 1] * s[2 * k + 1];
    for (int m = 0; m < fb->o.n_mels; m++) {
        const float *w = fb->w[m], *p = pw + fb->first[m];
        float e = 0;
        for (size_t i = 0; i < fb->len[m]; i++)
            e += w[i] * p[i];
        out[m] = logf(e > FLT_EPSILON ? e : FLT_EPSILON);
    }
}

long s2s_fbank_compute(s2s_fbank *fb, const float *x, size_t n, float *out, s2s_err *err) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return s2s_err_set(err, S2S_EDATA, "sample %zu is not a finite number", i);
    size_t nf = s2s_fbank_n_frames(fb, n), D = (size_t)fb->o.n_mels;
    for (size_t t = 0; t < nf; t++)
        one_frame(fb, x + t * fb->hop, out + t * D);
    if (fb->o.cmvn && nf > 0) {
        for (size_t d = 0; d < D; d++) {
            double s = 0, ss = 0;
            for (size_t t = 0; t < nf; t++) {
                double v = out[t * D + d];
                s += v;
                ss += v * v;
            }
            double mean = s / (double)nf, var = ss / (double)nf - mean * mean;
            double inv = var > 1e-10 ? 1.0 / sqrt(var) : 1.0;
            for (size_t t = 0; t < nf; t++)
                out[t * D + d] = (float)((out[t * D + d] - mean) * inv);
        }
    }
    return (long)nf;
}

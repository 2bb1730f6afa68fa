/* audio.c — decode any audio bytes to float mono (libsndfile fast path, libav* otherwise);
 * encode mono WAV/FLAC deterministically with libsndfile virtual I/O. */
#include "s2s/audio.h"

#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <sndfile.h>
#include <stdlib.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libavutil/error.h>

void s2s_audio_free(s2s_audio *a) {
    if (!a) return;
    free(a->samples);
    memset(a, 0, sizeof *a);
}

const char *s2s_audio_container_ext(int container) {
    return container == S2S_AUDIO_WAV ? "wav" : container == S2S_AUDIO_FLAC ? "flac" : NULL;
}

const char *s2s_audio_format_name(int sample_format) {
    return sample_format == S2S_AUDIO_S16 ? "s16" : sample_format == S2S_AUDIO_F32 ? "f32" : NULL;
}

int s2s_audio_is_audio_name(const char *name) {
    static const char *const ext[] = {"wav", "flac", "mp3", "ogg",  "oga", "opus",
                                      "m4a", "mp4",  "aac", "wma",  "aif", "aiff",
                                      "au",  "webm", "mka", "wave", NULL};
    if (!name) return 0;
    const char *dot = strrchr(name, '.');
    const char *e = dot ? dot + 1 : name; /* a bare suffix such as "wav" counts too */
    for (size_t i = 0; ext[i]; i++)
        if (strcasecmp(e, ext[i]) == 0) return 1;
    return 0;
}

/* ---- growable float array ------------------------------------------------------------------- */
typedef struct {
    float *p;
    size_t n, cap;
} fvec;

static int fvec_reserve(fvec *v, size_t extra) {
    if (v->n + extra <= v->cap) return 0;
    size_t cap = v->cap ? v->cap : 16384;
    while (cap < v->n + extra) {
        if (cap > SIZE_MAX / 2 / sizeof(float)) return -1;
        cap *= 2;
    }
    float *p = realloc(v->p, cap * sizeof *p);
    if (!p) return -1;
    v->p = p;
    v->cap = cap;
    return 0;
}

static int check_samples(const s2s_audio *a, s2s_err *err) {
    if (a->n == 0) return s2s_err_set(err, S2S_EDATA, "zero-length audio (no samples)");
    for (size_t i = 0; i < a->n; i++)
        if (!isfinite(a->samples[i]))
            return s2s_err_set(err, S2S_EDATA, "%s sample at %zu (of %zu)",
                               isnan(a->samples[i]) ? "NaN" : "infinite", i, a->n);
    return 0;
}

/* ---- libsndfile virtual I/O over memory (read) and a growable buffer (write) ---------------- */
typedef struct {
    unsigned char *data;
    sf_count_t size, pos, cap;
    int writable;
} membuf;

static sf_count_t mb_len(void *u) {
    return ((membuf *)u)->size;
}

static sf_count_t mb_seek(sf_count_t off, int whence, void *u) {
    membuf *m = u;
    sf_count_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? m->pos : m->size;
    sf_count_t p = base + off;
    if (p < 0) return -1;
    m->pos = p;
    return p;
}

static sf_count_t mb_read(void *ptr, sf_count_t n, void *u) {
    membuf *m = u;
    if (m->pos >= m->size || n <= 0) return 0;
    if (n > m->size - m->pos) n = m->size - m->pos;
    memcpy(ptr, m->data + m->pos, (size_t)n);
    m->pos += n;
    return n;
}

static sf_count_t mb_write(const void *ptr, sf_count_t n, void *u) {
    membuf *m = u;
    if (!m->writable || n < 0) return 0;
    if (m->pos + n > m->cap) {
        sf_count_t cap = m->cap ? m->cap : 65536;
        while (cap < m->pos + n)
            cap *= 2;
        unsigned char *d = realloc(m->data, (size_t)cap);
        if (!d) return 0;
        m->data = d;
        m->cap = cap;
    }
    if (m->pos > m->size) memset(m->data + m->size, 0, (size_t)(m->pos - m->size));
    memcpy(m->data + m->pos, ptr, (size_t)n);
    m->pos += n;
    if (m->pos > m->size) m->size = m->pos;
    return n;
}

static sf_count_t mb_tell(void *u) {
    return ((membuf *)u)->pos;
}

static SF_VIRTUAL_IO mb_io = {mb_len, mb_seek, mb_read, mb_write, mb_tell};

static uint32_t le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* libsndfile quietly shortens a WAV whose data chunk runs past the end of the file; we call that
 * truncation. Sizes >= 0x7fff0000 are the placeholders streaming writers use (unknown length). */
static int wav_check_truncated(const unsigned char *d, size_t size, s2s_err *err) {
    size_t off = 12;
    while (off + 8 <= size) {
        uint32_t len = le32(d + off + 4);
        if (memcmp(d + off, "data", 4) == 0) {
            size_t have = size - off - 8;
            if (len < 0x7fff0000u && len > have)
                return s2s_err_set(err, S2S_EFORMAT,
                                   "truncated WAV: data chunk declares %u bytes, %zu present", len,
                                   have);
            return 0;
        }
        if (len > size - off - 8)
            return s2s_err_set(err, S2S_EFORMAT, "truncated WAV: chunk '%.4s' runs past the end",
                               (const char *)(d + off));
        off += 8 + (size_t)len + (len & 1);
    }
    return s2s_err_set(err, S2S_EFORMAT, "truncated WAV: no data chunk");
}

/* Returns 1 if handled (result in rc), 0 if libsndfile cannot open it (fall back to libav). */
static int decode_sndfile(const unsigned char *data, size_t size, s2s_audio *out, int *rc,
                          s2s_err *err) {
    int is_wav = size >= 12 && memcmp(data, "RIFF", 4) == 0 && memcmp(data + 8, "WAVE", 4) == 0;
    int is_flac = size >= 4 && memcmp(data, "fLaC", 4) == 0;
    if (!is_wav && !is_flac) return 0;
    if (is_wav && (*rc = wav_check_truncated(data, size, err)) < 0) return 1;
    membuf m = {(unsigned char *)data, (sf_count_t)size, 0, 0, 0};
    SF_INFO info;
    memset(&info, 0, sizeof info);
    SNDFILE *sf = sf_open_virtual(&mb_io, SFM_READ, &info, &m);
    if (!sf) return 0;
    int type = info.format & SF_FORMAT_TYPEMASK, sub = info.format & SF_FORMAT_SUBMASK;
    if ((type != SF_FORMAT_WAV && type != SF_FORMAT_WAVEX && type != SF_FORMAT_FLAC) ||
        info.channels < 1 || info.samplerate < 1) {
        sf_close(sf);
        return 0;
    }
    out->rate = info.samplerate;
    out->src_channels = info.channels;
    out->src_container = type == SF_FORMAT_FLAC ? S2S_AUDIO_FLAC : S2S_AUDIO_WAV;
    out->src_format = sub == SF_FORMAT_PCM_16                            ? S2S_AUDIO_S16
                      : sub == SF_FORMAT_FLOAT && type != SF_FORMAT_FLAC ? S2S_AUDIO_F32
                                                                         : S2S_AUDIO_FMT_OTHER;
    snprintf(out->codec, sizeof out->codec, "%s",
             type == SF_FORMAT_FLAC    ? "flac"
             : sub == SF_FORMAT_PCM_16 ? "pcm_s16le"
             : sub == SF_FORMAT_FLOAT  ? "pcm_f32le"
             : sub == SF_FORMAT_PCM_24 ? "pcm_s24le"
             : sub == SF_FORMAT_PCM_32 ? "pcm_s32le"
             : sub == SF_FORMAT_PCM_U8 ? "pcm_u8"
             : sub == SF_FORMAT_DOUBLE ? "pcm_f64le"
                                       : "wav");
    /* Float files are read as they are (no normalisation applies); integers are scaled 1/2^(b-1).
     */
    int ch = info.channels;
    fvec v = {0};
    float block[4096];
    sf_count_t per = (sf_count_t)(sizeof block / sizeof block[0]) / ch, got;
    if (per < 1) {
        sf_close(sf);
        *rc = s2s_err_set(err, S2S_EUNSUP, "%d channels are too many", ch);
        return 1;
    }
    while ((got = sf_readf_float(sf, block, per)) > 0) {
        if (fvec_reserve(&v, (size_t)got) < 0) {
            free(v.p);
            sf_close(sf);
            *rc = s2s_err_set(err, S2S_ENOMEM, "out of memory decoding audio");
            return 1;
        }
        for (sf_count_t i = 0; i < got; i++) {
            float s = 0;
            for (int c = 0; c < ch; c++)
                s += block[i * ch + c];
            v.p[v.n++] = ch == 1 ? s : s / (float)ch;
        }
    }
    int serr = sf_error(sf);
    char smsg[256];
    snprintf(smsg, sizeof smsg, "%s", sf_strerror(sf));
    sf_close(sf);
    out->samples = v.p;
    out->n = v.n;
    if (serr != SF_ERR_NO_ERROR) {
        *rc = s2s_err_set(err, S2S_EFORMAT, "corrupt %s: %s", is_flac ? "FLAC" : "WAV", smsg);
        return 1;
    }
    /* FLAC knows its length (STREAMINFO total samples; 0 = unknown): fewer means truncated. */
    if (type == SF_FORMAT_FLAC && info.frames > 0 && info.frames != SF_COUNT_MAX &&
        (sf_count_t)v.n < info.frames) {
        *rc =
            s2s_err_set(err, S2S_EFORMAT, "truncated or corrupt FLAC: %zu of %lld samples decoded",
                        v.n, (long long)info.frames);
        return 1;
    }
    *rc = check_samples(out, err);
    return 1;
}

/* ---- libavformat/libavcodec over a memory buffer -------------------------------------------- */
typedef struct {
    const unsigned char *data;
    size_t size, pos;
} avmem;

static int av_read(void *u, uint8_t *buf, int n) {
    avmem *m = u;
    if (m->pos >= m->size) return AVERROR_EOF;
    size_t k = m->size - m->pos;
    if (k > (size_t)n) k = (size_t)n;
    memcpy(buf, m->data + m->pos, k);
    m->pos += k;
    return (int)k;
}

static int64_t av_seek(void *u, int64_t off, int whence) {
    avmem *m = u;
    if (whence & AVSEEK_SIZE) return (int64_t)m->size;
    whence &= ~AVSEEK_FORCE;
    int64_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? (int64_t)m->pos : (int64_t)m->size;
    int64_t p = base + off;
    if (p < 0 || p > (int64_t)m->size) return -1;
    m->pos = (size_t)p;
    return p;
}

static double get_sample(const AVFrame *f, int fmt, int c, int i, int ch) {
    int planar = av_sample_fmt_is_planar(fmt);
    const uint8_t *base = planar ? f->extended_data[c] : f->extended_data[0];
    int idx = planar ? i : i * ch + c;
    switch (av_get_packed_sample_fmt(fmt)) {
    case AV_SAMPLE_FMT_U8:
        return (((const uint8_t *)base)[idx] - 128) / 128.0;
    case AV_SAMPLE_FMT_S16:
        return ((const int16_t *)base)[idx] / 32768.0;
    case AV_SAMPLE_FMT_S32:
        return ((const int32_t *)base)[idx] / 2147483648.0;
    case AV_SAMPLE_FMT_S64:
        return (double)((const int64_t *)base)[idx] / 9223372036854775808.0;
    case AV_SAMPLE_FMT_FLT:
        return ((const float *)base)[idx];
    case AV_SAMPLE_FMT_DBL:
        return ((const double *)base)[idx];
    default:
        return 0;
    }
}

static int av_fail(s2s_err *err, int code, const char *what, int averr) {
    char b[AV_ERROR_MAX_STRING_SIZE] = "";
    av_strerror(averr, b, sizeof b);
    return s2s_err_set(err, code, "%s: %s", what, b);
}

static int append_frame(fvec *v, const AVFrame *f, s2s_err *err) {
    int ch = f->ch_layout.nb_channels;
    if (ch < 1) return s2s_err_set(err, S2S_EFORMAT, "decoded frame without channels");
    if (fvec_reserve(v, (size_t)f->nb_samples) < 0)
        return s2s_err_set(err, S2S_ENOMEM, "out of memory decoding audio");
    for (int i = 0; i < f->nb_samples; i++) {
        double s = 0;
        for (int c = 0; c < ch; c++)
            s += get_sample(f, f->format, c, i, ch);
        v->p[v->n++] = (float)(s / ch);
    }
    return 0;
}

static int drain(AVCodecContext *cc, AVFrame *fr, fvec *v, int rate, s2s_err *err) {
    for (;;) {
        int r = avcodec_receive_frame(cc, fr);
        if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return 0;
        if (r < 0) return av_fail(err, S2S_EFORMAT, "corrupt audio data", r);
        if (fr->sample_rate != rate) {
            av_frame_unref(fr);
            return s2s_err_set(err, S2S_EUNSUP, "sample rate changes inside the stream");
        }
        r = append_frame(v, fr, err);
        av_frame_unref(fr);
        if (r < 0) return r;
    }
}

static int decode_libav(const unsigned char *data, size_t size, const char *name, s2s_audio *out,
                        s2s_err *err) {
    avmem m = {data, size, 0};
    AVFormatContext *fc = NULL;
    AVIOContext *io = NULL;
    AVCodecContext *cc = NULL;
    AVPacket *pkt = NULL;
    AVFrame *fr = NULL;
    fvec v = {0};
    int rc = 0, r;
    unsigned char *iobuf = av_malloc(32768);
    if (!iobuf) goto nomem;
    io = avio_alloc_context(iobuf, 32768, 0, &m, av_read, NULL, av_seek);
    if (!io) {
        av_free(iobuf);
        goto nomem;
    }
    fc = avformat_alloc_context();
    if (!fc) goto nomem;
    fc->pb = io;
    fc->flags |= AVFMT_FLAG_CUSTOM_IO;
    if ((r = avformat_open_input(&fc, name ? name : "", NULL, NULL)) < 0) {
        fc = NULL; /* freed by avformat_open_input on failure */
        rc = av_fail(err, S2S_EFORMAT, "not a readable audio file", r);
        goto done;
    }
    if ((r = avformat_find_stream_info(fc, NULL)) < 0) {
        rc = av_fail(err, S2S_EFORMAT, "cannot read stream info", r);
        goto done;
    }
    int si = av_find_best_stream(fc, AVMEDIA_TYPE_AUDIO, -1, -1, NULL, 0);
    if (si < 0) {
        rc = s2s_err_set(err, S2S_EFORMAT, "no audio stream (format %s)", fc->iformat->name);
        goto done;
    }
    AVStream *st = fc->streams[si];
    const AVCodec *codec = avcodec_find_decoder(st->codecpar->codec_id);
    if (!codec) {
        rc = s2s_err_set(err, S2S_EUNSUP, "unsupported codec %s",
                         avcodec_get_name(st->codecpar->codec_id));
        goto done;
    }
    cc = avcodec_alloc_context3(codec);
    if (!cc) goto nomem;
    if ((r = avcodec_parameters_to_context(cc, st->codecpar)) < 0 ||
        (r = avcodec_open2(cc, codec, NULL)) < 0) {
        rc = av_fail(err, S2S_EUNSUP, "cannot open the decoder", r);
        goto done;
    }
    int rate = cc->sample_rate;
    if (rate < 1) {
        rc = s2s_err_set(err, S2S_EFORMAT, "no sample rate");
        goto done;
    }
    pkt = av_packet_alloc();
    fr = av_frame_alloc();
    if (!pkt || !fr) goto nomem;
    for (;;) {
        r = av_read_frame(fc, pkt);
        if (r == AVERROR_EOF) break;
        if (r < 0) {
            rc = av_fail(err, S2S_EFORMAT, "truncated or corrupt file", r);
            goto done;
        }
        if (pkt->stream_index != si) {
            av_packet_unref(pkt);
            continue;
        }
        if (pkt->flags & AV_PKT_FLAG_CORRUPT) {
            av_packet_unref(pkt);
            rc = s2s_err_set(err, S2S_EFORMAT, "truncated or corrupt file: damaged packet");
            goto done;
        }
        r = avcodec_send_packet(cc, pkt);
        av_packet_unref(pkt);
        if (r < 0 && r != AVERROR(EAGAIN)) {
            rc = av_fail(err, S2S_EFORMAT, "corrupt audio data", r);
            goto done;
        }
        if ((rc = drain(cc, fr, &v, rate, err)) < 0) goto done;
    }
    avcodec_send_packet(cc, NULL);
    if ((rc = drain(cc, fr, &v, rate, err)) < 0) goto done;
    /* A container that states its length (not estimated from the bit rate) and gives clearly
     * fewer samples was cut short. Tolerance: 50 ms plus one codec frame. */
    if (st->duration > 0 && st->duration != AV_NOPTS_VALUE &&
        fc->duration_estimation_method != AVFMT_DURATION_FROM_BITRATE) {
        int64_t want = av_rescale_q(st->duration, st->time_base, (AVRational){1, rate});
        int64_t slack = rate / 20 + (cc->frame_size > 0 ? cc->frame_size : 2048);
        if ((int64_t)v.n + slack < want) {
            rc = s2s_err_set(err, S2S_EFORMAT, "truncated: %zu of %lld samples decoded", v.n,
                             (long long)want);
            goto done;
        }
    }
    out->rate = rate;
    out->src_channels = cc->ch_layout.nb_channels;
    out->src_container = S2S_AUDIO_OTHER;
    out->src_format = S2S_AUDIO_FMT_OTHER;
    if (strcmp(fc->iformat->name, "wav") == 0) {
        out->src_container = S2S_AUDIO_WAV;
        if (st->codecpar->codec_id == AV_CODEC_ID_PCM_S16LE) out->src_format = S2S_AUDIO_S16;
        if (st->codecpar->codec_id == AV_CODEC_ID_PCM_F32LE) out->src_format = S2S_AUDIO_F32;
    } else if (strcmp(fc->iformat->name, "flac") == 0) {
        out->src_container = S2S_AUDIO_FLAC;
    }
    snprintf(out->codec, sizeof out->codec, "%s", codec->name);
    goto done;
nomem:
    rc = s2s_err_set(err, S2S_ENOMEM, "out of memory decoding audio");
done:
    av_frame_free(&fr);
    av_packet_free(&pkt);
    avcodec_free_context(&cc);
    avformat_close_input(&fc);
    if (io) {
        av_freep(&io->buffer);
        avio_context_free(&io);
    }
    out->samples = v.p;
    out->n = v.n;
    if (rc == 0) rc = check_samples(out, err);
    return rc;
}

int s2s_audio_decode(const void *data, size_t size, const char *name, s2s_audio *out,
                     s2s_err *err) {
    memset(out, 0, sizeof *out);
    if (!data || size == 0) return s2s_err_set(err, S2S_EDATA, "zero-length audio (empty file)");
    int rc = 0;
    if (decode_sndfile(data, size, out, &rc, err)) return rc;
    s2s_audio_free(out);
    return decode_libav(data, size, name, out, err);
}

/* ---- encoding ------------------------------------------------------------------------------- */
static inline short f2s16(float x) {
    float y = x * 32768.0f;
    if (!(y > -32768.0f)) return -32768; /* also NaN */
    if (y >= 32767.0f) return 32767;
    return (short)lrintf(y);
}

static int encode(const float *f, const int16_t *s, size_t n, int rate, int container,
                  int sample_format, unsigned char **out, size_t *outsize, s2s_err *err) {
    *out = NULL;
    *outsize = 0;
    if (rate < 1) return s2s_err_set(err, S2S_EINVAL, "bad sample rate %d", rate);
    if (container != S2S_AUDIO_WAV && container != S2S_AUDIO_FLAC)
        return s2s_err_set(err, S2S_EINVAL, "container must be WAV or FLAC");
    if (sample_format != S2S_AUDIO_S16 && sample_format != S2S_AUDIO_F32)
        return s2s_err_set(err, S2S_EINVAL, "sample format must be s16 or f32");
    if (container == S2S_AUDIO_FLAC && sample_format == S2S_AUDIO_F32)
        return s2s_err_set(err, S2S_EINVAL, "FLAC cannot hold float samples (use s16 or WAV)");
    if (container == S2S_AUDIO_FLAC && rate > 655350)
        return s2s_err_set(err, S2S_EINVAL, "FLAC cannot hold rate %d", rate);
    SF_INFO info;
    memset(&info, 0, sizeof info);
    info.samplerate = rate;
    info.channels = 1;
    info.format = (container == S2S_AUDIO_WAV ? SF_FORMAT_WAV : SF_FORMAT_FLAC) |
                  (sample_format == S2S_AUDIO_F32 ? SF_FORMAT_FLOAT : SF_FORMAT_PCM_16);
    membuf m = {NULL, 0, 0, 0, 1};
    SNDFILE *sf = sf_open_virtual(&mb_io, SFM_WRITE, &info, &m);
    if (!sf) {
        free(m.data);
        return s2s_err_set(err, S2S_EIO, "libsndfile: %s", sf_strerror(NULL));
    }
    /* The PEAK chunk of float WAVs carries a timestamp: off, for byte-identical output. */
    sf_command(sf, SFC_SET_ADD_PEAK_CHUNK, NULL, SF_FALSE);
    short blk[4096];
    size_t done = 0;
    int ok = 1;
    while (ok && done < n) {
        size_t k = n - done < 4096 ? n - done : 4096;
        sf_count_t w;
        if (sample_format == S2S_AUDIO_F32) {
            w = sf_writef_float(sf, f + done, (sf_count_t)k);
        } else if (s) {
            w = sf_writef_short(sf, s + done, (sf_count_t)k);
        } else {
            for (size_t i = 0; i < k; i++)
                blk[i] = f2s16(f[done + i]);
            w = sf_writef_short(sf, blk, (sf_count_t)k);
        }
        ok = w == (sf_count_t)k;
        done += k;
    }
    char smsg[256];
    snprintf(smsg, sizeof smsg, "%s", sf_strerror(sf));
    if (sf_close(sf) != 0) ok = 0;
    if (!ok) {
        free(m.data);
        return s2s_err_set(err, S2S_EIO, "encoding audio failed: %s", smsg);
    }
    *out = m.data;
    *outsize = (size_t)m.size;
    return 0;
}

int s2s_audio_encode(const s2s_audio *a, int container, int sample_format, unsigned char **out,
                     size_t *outsize, s2s_err *err) {
    if (!a || (!a->samples && a->n)) return s2s_err_set(err, S2S_EINVAL, "no samples to encode");
    return encode(a->samples, NULL, a->n, a->rate, container, sample_format, out, outsize, err);
}

int s2s_audio_encode_s16(const int16_t *pcm, size_t n, int rate, int container, unsigned char **out,
                         size_t *outsize, s2s_err *err) {
    if (!pcm && n) return s2s_err_set(err, S2S_EINVAL, "no samples to encode");
    return encode(NULL, pcm, n, rate, container, S2S_AUDIO_S16, out, outsize, err);
}

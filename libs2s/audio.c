/* audio.c — decode any audio bytes to float mono (libsndfile fast path, libav* otherwise);
 * encode mono WAV/FLAC deterministically with libsndfile virtual I/O. */
#include "s2s/audio.h"
#include "wav_pcm.h"

#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <sndfile.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libavutil/error.h>
#include <libavutil/log.h>

/* ---- FFmpeg, loaded when first needed -------------------------------------------------------
 * WAV and FLAC are read without FFmpeg (our PCM parser, libsndfile); only other formats (MP3,
 * Ogg/Opus, M4A, ...) need libavformat/libavcodec, which pull in ~130 shared libraries: linking
 * them made every start of s2s-resample and s2s-tokenize cost ~20 ms of CPU and ~40 ms of wall
 * for nothing. So they are dlopen()ed by the first reader that needs them (RTLD_NODELETE: they
 * stay loaded for the process, whatever later readers do), each reader keeping its own table of
 * the functions it calls (no global state here). The sonames are those of the headers we were
 * built with. Their log is silenced: our messages say what went wrong. */
#define AV_STR2(x) #x
#define AV_STR(x) AV_STR2(x)
enum { AVL_UTIL, AVL_CODEC, AVL_FORMAT };
#define AV_FUNCS(X)                                                                                \
    X(AVL_UTIL, av_log_set_level)                                                                  \
    X(AVL_UTIL, av_strerror)                                                                       \
    X(AVL_UTIL, av_sample_fmt_is_planar)                                                           \
    X(AVL_UTIL, av_get_packed_sample_fmt)                                                          \
    X(AVL_UTIL, av_rescale_q)                                                                      \
    X(AVL_UTIL, av_malloc)                                                                         \
    X(AVL_UTIL, av_free)                                                                           \
    X(AVL_UTIL, av_freep)                                                                          \
    X(AVL_UTIL, av_frame_alloc)                                                                    \
    X(AVL_UTIL, av_frame_free)                                                                     \
    X(AVL_UTIL, av_frame_unref)                                                                    \
    X(AVL_CODEC, av_packet_alloc)                                                                  \
    X(AVL_CODEC, av_packet_free)                                                                   \
    X(AVL_CODEC, av_packet_unref)                                                                  \
    X(AVL_CODEC, avcodec_find_decoder)                                                             \
    X(AVL_CODEC, avcodec_get_name)                                                                 \
    X(AVL_CODEC, avcodec_alloc_context3)                                                           \
    X(AVL_CODEC, avcodec_free_context)                                                             \
    X(AVL_CODEC, avcodec_parameters_to_context)                                                    \
    X(AVL_CODEC, avcodec_open2)                                                                    \
    X(AVL_CODEC, avcodec_send_packet)                                                              \
    X(AVL_CODEC, avcodec_receive_frame)                                                            \
    X(AVL_FORMAT, avio_alloc_context)                                                              \
    X(AVL_FORMAT, avio_context_free)                                                               \
    X(AVL_FORMAT, avformat_alloc_context)                                                          \
    X(AVL_FORMAT, avformat_open_input)                                                             \
    X(AVL_FORMAT, avformat_find_stream_info)                                                       \
    X(AVL_FORMAT, avformat_close_input)                                                            \
    X(AVL_FORMAT, av_find_best_stream)                                                             \
    X(AVL_FORMAT, av_read_frame)

typedef struct avlib {
/* f names a function and a member: it cannot take parentheses */
// NOLINTNEXTLINE(bugprone-macro-parentheses)
#define AV_MEMBER(lib, f) __typeof__(&f) f;
    AV_FUNCS(AV_MEMBER)
#undef AV_MEMBER
} avlib;

/* Fills L from the FFmpeg libraries (loading them if this process has not yet). */
static int avlib_load(avlib *L, s2s_err *err) {
    static const char *const so[] = {"libavutil.so." AV_STR(LIBAVUTIL_VERSION_MAJOR),
                                     "libavcodec.so." AV_STR(LIBAVCODEC_VERSION_MAJOR),
                                     "libavformat.so." AV_STR(LIBAVFORMAT_VERSION_MAJOR)};
    void *h[3] = {NULL, NULL, NULL};
    int rc = 0;
    for (int i = 0; i < 3 && rc == 0; i++)
        if (!(h[i] = dlopen(so[i], RTLD_LAZY | RTLD_LOCAL | RTLD_NODELETE))) {
            const char *why = dlerror();
            rc = s2s_err_set(err, S2S_EUNSUP,
                             "this audio format needs FFmpeg's %s, which cannot be loaded (%s); "
                             "WAV and FLAC do not need it",
                             so[i], why ? why : "dlopen failed");
        }
#define AV_LOAD(lib, f)                                                                            \
    if (rc == 0 && !(*(void **)(&L->f) = dlsym(h[lib], #f)))                                       \
        rc = s2s_err_set(err, S2S_EUNSUP,                                                          \
                         "%s has no %s (not the FFmpeg version we were built for)", so[lib], #f);
    AV_FUNCS(AV_LOAD)
#undef AV_LOAD
    for (int i = 0; i < 3; i++) /* RTLD_NODELETE: the libraries and L's pointers stay valid */
        if (h[i]) dlclose(h[i]);
    if (rc == 0) L->av_log_set_level(AV_LOG_QUIET);
    return rc;
}

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

/* ---- bytes in memory or in a file ------------------------------------------------------------
 * A member is either held in memory (data) or, when too large for that, in a file read and
 * written with pread/pwrite at explicit offsets (fd1 = descriptor + 1; 0 means memory). */
static int fd_read_at(int fd, void *buf, size_t n, size_t off) {
    size_t got = 0;
    while (got < n) {
        ssize_t k = pread(fd, (char *)buf + got, n - got, (off_t)(off + got));
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        got += (size_t)k;
    }
    return (int)(got == n ? 0 : -1);
}

static size_t fd_read_some(int fd, void *buf, size_t n, size_t off) {
    for (;;) {
        ssize_t k = pread(fd, buf, n, (off_t)off);
        if (k < 0 && errno == EINTR) continue;
        return k < 0 ? 0 : (size_t)k;
    }
}

static int fd_write_at(int fd, const void *buf, size_t n, size_t off) {
    size_t put = 0;
    while (put < n) {
        ssize_t k = pwrite(fd, (const char *)buf + put, n - put, (off_t)(off + put));
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        put += (size_t)k;
    }
    return 0;
}

typedef struct {
    const unsigned char *data; /* NULL when fd1 */
    int fd1;
    size_t size;
} bsrc;

/* Copies n bytes at off into buf: 0, or -1 if they are not all there. */
static int bs_get(const bsrc *b, size_t off, void *buf, size_t n) {
    if (off > b->size || n > b->size - off) return -1;
    if (b->fd1) return fd_read_at(b->fd1 - 1, buf, n, off);
    memcpy(buf, b->data + off, n);
    return 0;
}

/* ---- libsndfile virtual I/O over memory or a file (read) and a growable buffer or a file
 * (write) ------------------------------------------------------------------------------------- */
typedef struct {
    unsigned char *data;
    sf_count_t size, pos, cap;
    int writable;
    int fd1; /* file descriptor + 1 instead of data; 0: memory */
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
    if (m->fd1) {
        n = (sf_count_t)fd_read_some(m->fd1 - 1, ptr, (size_t)n, (size_t)m->pos);
        m->pos += n;
        return n;
    }
    memcpy(ptr, m->data + m->pos, (size_t)n);
    m->pos += n;
    return n;
}

static sf_count_t mb_write(const void *ptr, sf_count_t n, void *u) {
    membuf *m = u;
    if (!m->writable || n < 0) return 0;
    if (m->fd1) {
        if (fd_write_at(m->fd1 - 1, ptr, (size_t)n, (size_t)m->pos) < 0) return 0;
        m->pos += n;
        if (m->pos > m->size) m->size = m->pos;
        return n;
    }
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
static int wav_check_truncated(const bsrc *b, s2s_err *err) {
    size_t off = 12, size = b->size;
    unsigned char d[8];
    while (off + 8 <= size) {
        if (bs_get(b, off, d, 8) < 0) return s2s_err_set(err, S2S_EIO, "cannot read WAV header");
        uint32_t len = le32(d + 4);
        if (memcmp(d, "data", 4) == 0) {
            size_t have = size - off - 8;
            if (len < 0x7fff0000u && len > have)
                return s2s_err_set(err, S2S_EFORMAT,
                                   "truncated WAV: data chunk declares %u bytes, %zu present", len,
                                   have);
            return 0;
        }
        if (len > size - off - 8)
            return s2s_err_set(err, S2S_EFORMAT, "truncated WAV: chunk '%.4s' runs past the end",
                               (const char *)d);
        off += 8 + (size_t)len + (len & 1);
    }
    return s2s_err_set(err, S2S_EFORMAT, "truncated WAV: no data chunk");
}

/* ---- plain PCM WAV: parsed here, samples read straight from the bytes ------------------------
 * Only what libsndfile reads the same way is taken (s2s_wav_pcm_view in s2s/audio.h says what);
 * anything else goes to libsndfile/libav as before, which also words the errors. */
typedef struct {
    size_t off, frames; /* byte offset of the first sample; frames */
    int rate, ch, bits;
} wavpcm;

static uint16_t le16(const unsigned char *p) {
    return (uint16_t)(p[0] | p[1] << 8);
}

static int bs_get_cb(void *u, size_t off, void *buf, size_t n) {
    return bs_get(u, off, buf, n);
}

/* s2s_wav_pcm_parse (wav_pcm.c, the rules of s2s_wav_pcm_view) over memory or a file. */
static int wav_pcm_parse(const bsrc *b, wavpcm *w) {
    s2s_wav_pcm v;
    memset(w, 0, sizeof *w);
    if (!s2s_wav_pcm_parse(bs_get_cb, (void *)b, b->size, &v, &w->off)) return 0;
    w->frames = v.frames;
    w->rate = v.rate;
    w->ch = v.channels;
    w->bits = v.bits;
    return 1;
}

/* Frames src[0..n-1] (w->ch interleaved, w->bits wide) to mono float, with libsndfile's
 * arithmetic (integer * power-of-two float scale, 32-bit through (float) first) and the
 * reader's downmix (float sum in channel order, then / channels): bit-identical results. */
static void pcm_to_float(const unsigned char *src, size_t n, int ch, int bits, float *dst) {
    if (ch == 1 && bits == 16) {
        size_t i = 0;
#if defined(__SSE2__)
        /* 8 at a time: sign-extend to 32 bits, convert (exact), scale by 2^-15 (exact): the
         * same floats as the loop below. x86 is little-endian, as the file. */
        const __m128 scale = _mm_set1_ps(1.0f / 32768.0f);
        for (; i + 8 <= n; i += 8) {
            __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(src + 2 * i));
            __m128i lo = _mm_srai_epi32(_mm_unpacklo_epi16(v, v), 16);
            __m128i hi = _mm_srai_epi32(_mm_unpackhi_epi16(v, v), 16);
            _mm_storeu_ps(dst + i, _mm_mul_ps(_mm_cvtepi32_ps(lo), scale));
            _mm_storeu_ps(dst + i + 4, _mm_mul_ps(_mm_cvtepi32_ps(hi), scale));
        }
#endif
        for (; i < n; i++)
            dst[i] = (float)(int16_t)le16(src + 2 * i) * (1.0f / 32768.0f);
        return;
    }
    size_t bw = (size_t)bits / 8;
    for (size_t i = 0; i < n; i++) {
        float s = 0;
        for (int c = 0; c < ch; c++, src += bw) {
            float x;
            switch (bits) {
            case 8:
                x = (float)((int)src[0] - 128) * (1.0f / 128.0f);
                break;
            case 16:
                x = (float)(int16_t)le16(src) * (1.0f / 32768.0f);
                break;
            case 24:
                x = (float)(int32_t)((uint32_t)src[0] << 8 | (uint32_t)src[1] << 16 |
                                     (uint32_t)src[2] << 24) *
                    (1.0f / 2147483648.0f);
                break;
            default:
                x = (float)(int32_t)le32(src) * (1.0f / 2147483648.0f);
                break;
            }
            s = c == 0 ? x : s + x;
        }
        dst[i] = ch == 1 ? s : s / (float)ch;
    }
}

/* Returns 1 if handled (result in rc), 0 if libsndfile cannot open it (fall back to libav). */
/* ---- libavformat/libavcodec over a memory buffer -------------------------------------------- */
typedef struct {
    const unsigned char *data;
    size_t size, pos;
    int fd1; /* file descriptor + 1 instead of data; 0: memory */
} avmem;

static int av_read(void *u, uint8_t *buf, int n) {
    avmem *m = u;
    if (m->pos >= m->size) return AVERROR_EOF;
    size_t k = m->size - m->pos;
    if (k > (size_t)n) k = (size_t)n;
    if (m->fd1) {
        k = fd_read_some(m->fd1 - 1, buf, k, m->pos);
        if (k == 0) return AVERROR(EIO);
    } else {
        memcpy(buf, m->data + m->pos, k);
    }
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

static double get_sample(const avlib *L, const AVFrame *f, int fmt, int c, int i, int ch) {
    int planar = L->av_sample_fmt_is_planar(fmt);
    const uint8_t *base = planar ? f->extended_data[c] : f->extended_data[0];
    int idx = planar ? i : i * ch + c;
    switch (L->av_get_packed_sample_fmt(fmt)) {
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

static int av_fail(const avlib *L, s2s_err *err, int code, const char *what, int averr) {
    char b[AV_ERROR_MAX_STRING_SIZE] = "";
    L->av_strerror(averr, b, sizeof b);
    return s2s_err_set(err, code, "%s: %s", what, b);
}

/* ---- streaming reader ------------------------------------------------------------------------ */
struct s2s_audio_reader {
    int kind; /* 1 libsndfile, 2 libav, 3 plain PCM WAV read here */
    int ch, is_flac, done;
    size_t count;
    /* libsndfile */
    membuf mb;
    SNDFILE *sf;
    sf_count_t frames; /* FLAC: declared total (0/unknown: <= 0) */
    float blk[8192];
    /* libav */
    avlib av; /* loaded by open_libav (kind 2 only) */
    avmem am;
    AVIOContext *io;
    AVFormatContext *fc;
    AVCodecContext *cc;
    AVPacket *pkt;
    AVFrame *fr;
    int si, rate, frame_pos, have_frame, sent_eof;
    int64_t want; /* samples the container declares, -1 unknown */
    /* plain PCM WAV */
    bsrc src;
    wavpcm wp;
    size_t pos;         /* frames read */
    unsigned char *raw; /* fd: bytes read with pread before conversion */
};

void s2s_audio_reader_close(s2s_audio_reader *r) {
    if (!r) return;
    free(r->raw);
    if (r->sf) sf_close(r->sf);
    if (r->kind == 2 && r->av.av_frame_free) { /* libav's objects exist only once it is loaded */
        r->av.av_frame_free(&r->fr);
        r->av.av_packet_free(&r->pkt);
        r->av.avcodec_free_context(&r->cc);
        r->av.avformat_close_input(&r->fc);
        if (r->io) {
            r->av.av_freep(&r->io->buffer);
            r->av.avio_context_free(&r->io);
        }
    }
    free(r);
}

size_t s2s_audio_reader_count(const s2s_audio_reader *r) {
    return r->count;
}

/* Ogg pages state their own length and the last page of a stream carries the end-of-stream
 * flag; libavformat quietly stops at a cut page, so a cut Ogg (vorbis, opus, flac) is caught
 * here. */
static int ogg_check_truncated(const bsrc *b, s2s_err *err) {
    size_t off = 0, size = b->size;
    int last_eos = 0;
    unsigned char h[27], seg[255];
    while (off < size) {
        if (size - off < 27 || bs_get(b, off, h, 27) < 0 || memcmp(h, "OggS", 4) != 0)
            return s2s_err_set(err, S2S_EFORMAT, "truncated or corrupt Ogg: bad page at byte %zu",
                               off);
        size_t nseg = h[26], body = 0;
        if (size - off < 27 + nseg || bs_get(b, off + 27, seg, nseg) < 0)
            return s2s_err_set(err, S2S_EFORMAT, "truncated Ogg: last page cut at byte %zu", off);
        for (size_t i = 0; i < nseg; i++)
            body += seg[i];
        if (size - off - 27 - nseg < body)
            return s2s_err_set(err, S2S_EFORMAT, "truncated Ogg: last page cut at byte %zu", off);
        last_eos = (h[5] & 4) != 0;
        off += 27 + nseg + body;
    }
    if (!last_eos) return s2s_err_set(err, S2S_EFORMAT, "truncated Ogg: no end-of-stream page");
    return 0;
}

/* Returns 1 if libsndfile took it, 0 if it cannot (try libav), negative on error. */
static int open_sndfile(s2s_audio_reader *r, const bsrc *b, const unsigned char *head,
                        s2s_audio *out, s2s_err *err) {
    size_t size = b->size;
    int is_wav = size >= 12 && memcmp(head, "RIFF", 4) == 0 && memcmp(head + 8, "WAVE", 4) == 0;
    int is_flac = size >= 4 && memcmp(head, "fLaC", 4) == 0;
    if (!is_wav && !is_flac) return 0;
    int rc;
    if (is_wav && (rc = wav_check_truncated(b, err)) < 0) return rc;
    r->mb = (membuf){(unsigned char *)b->data, (sf_count_t)size, 0, 0, 0, b->fd1};
    SF_INFO info;
    memset(&info, 0, sizeof info);
    r->sf = sf_open_virtual(&mb_io, SFM_READ, &info, &r->mb);
    if (!r->sf) return 0;
    int type = info.format & SF_FORMAT_TYPEMASK, sub = info.format & SF_FORMAT_SUBMASK;
    if ((type != SF_FORMAT_WAV && type != SF_FORMAT_WAVEX && type != SF_FORMAT_FLAC) ||
        info.channels < 1 || info.channels > 64 || info.samplerate < 1) {
        sf_close(r->sf);
        r->sf = NULL;
        return 0;
    }
    r->kind = 1;
    r->ch = info.channels;
    r->is_flac = type == SF_FORMAT_FLAC;
    r->frames = r->is_flac && info.frames != SF_COUNT_MAX ? info.frames : 0;
    out->rate = info.samplerate;
    out->src_channels = info.channels;
    out->src_container = r->is_flac ? S2S_AUDIO_FLAC : S2S_AUDIO_WAV;
    out->src_format = sub == SF_FORMAT_PCM_16                 ? S2S_AUDIO_S16
                      : sub == SF_FORMAT_FLOAT && !r->is_flac ? S2S_AUDIO_F32
                                                              : S2S_AUDIO_FMT_OTHER;
    snprintf(out->codec, sizeof out->codec, "%s",
             r->is_flac                ? "flac"
             : sub == SF_FORMAT_PCM_16 ? "pcm_s16le"
             : sub == SF_FORMAT_FLOAT  ? "pcm_f32le"
             : sub == SF_FORMAT_PCM_24 ? "pcm_s24le"
             : sub == SF_FORMAT_PCM_32 ? "pcm_s32le"
             : sub == SF_FORMAT_PCM_U8 ? "pcm_u8"
             : sub == SF_FORMAT_DOUBLE ? "pcm_f64le"
                                       : "wav");
    return 1;
}

static int open_libav(s2s_audio_reader *r, const bsrc *b, const char *name, s2s_audio *out,
                      s2s_err *err) {
    r->kind = 2;
    r->am = (avmem){b->data, b->size, 0, b->fd1};
    r->want = -1;
    if (avlib_load(&r->av, err) != 0) {
        memset(&r->av, 0, sizeof r->av);
        return err->code;
    }
    const avlib *L = &r->av;
    int e;
    unsigned char *iobuf = L->av_malloc(32768);
    if (!iobuf) goto nomem;
    r->io = L->avio_alloc_context(iobuf, 32768, 0, &r->am, av_read, NULL, av_seek);
    if (!r->io) {
        L->av_free(iobuf);
        goto nomem;
    }
    if (!(r->fc = L->avformat_alloc_context())) goto nomem;
    r->fc->pb = r->io;
    r->fc->flags |= AVFMT_FLAG_CUSTOM_IO;
    if ((e = L->avformat_open_input(&r->fc, name ? name : "", NULL, NULL)) < 0) {
        r->fc = NULL; /* freed by avformat_open_input on failure */
        return av_fail(L, err, S2S_EFORMAT,
                       "not readable as audio (truncated, corrupt or unknown format)", e);
    }
    if ((e = L->avformat_find_stream_info(r->fc, NULL)) < 0)
        return av_fail(L, err, S2S_EFORMAT, "cannot read stream info (truncated or corrupt)", e);
    r->si = L->av_find_best_stream(r->fc, AVMEDIA_TYPE_AUDIO, -1, -1, NULL, 0);
    if (r->si < 0)
        return s2s_err_set(err, S2S_EFORMAT, "no audio stream (format %s)", r->fc->iformat->name);
    AVStream *st = r->fc->streams[r->si];
    const AVCodec *codec = L->avcodec_find_decoder(st->codecpar->codec_id);
    if (!codec)
        return s2s_err_set(err, S2S_EUNSUP, "unsupported codec %s",
                           L->avcodec_get_name(st->codecpar->codec_id));
    if (!(r->cc = L->avcodec_alloc_context3(codec))) goto nomem;
    if ((e = L->avcodec_parameters_to_context(r->cc, st->codecpar)) < 0 ||
        (e = L->avcodec_open2(r->cc, codec, NULL)) < 0)
        return av_fail(L, err, S2S_EUNSUP, "cannot open the decoder", e);
    r->rate = r->cc->sample_rate;
    if (r->rate < 1) return s2s_err_set(err, S2S_EFORMAT, "no sample rate");
    if (!(r->pkt = L->av_packet_alloc()) || !(r->fr = L->av_frame_alloc())) goto nomem;
    /* A container that states its length (not estimated from the bit rate) lets us notice a cut. */
    if (st->duration > 0 && st->duration != AV_NOPTS_VALUE &&
        r->fc->duration_estimation_method != AVFMT_DURATION_FROM_BITRATE)
        r->want = L->av_rescale_q(st->duration, st->time_base, (AVRational){1, r->rate});
    out->rate = r->rate;
    out->src_channels = r->cc->ch_layout.nb_channels;
    out->src_container = S2S_AUDIO_OTHER;
    out->src_format = S2S_AUDIO_FMT_OTHER;
    if (strcmp(r->fc->iformat->name, "wav") == 0) {
        out->src_container = S2S_AUDIO_WAV;
        if (st->codecpar->codec_id == AV_CODEC_ID_PCM_S16LE) out->src_format = S2S_AUDIO_S16;
        if (st->codecpar->codec_id == AV_CODEC_ID_PCM_F32LE) out->src_format = S2S_AUDIO_F32;
    } else if (strcmp(r->fc->iformat->name, "flac") == 0) {
        out->src_container = S2S_AUDIO_FLAC;
    }
    snprintf(out->codec, sizeof out->codec, "%s", codec->name);
    return 0;
nomem:
    return s2s_err_set(err, S2S_ENOMEM, "out of memory decoding audio");
}

static s2s_audio_reader *reader_open(const bsrc *b, const char *name, s2s_audio *info,
                                     s2s_err *err) {
    memset(info, 0, sizeof *info);
    if ((!b->data && !b->fd1) || b->size == 0) {
        s2s_err_set(err, S2S_EDATA, "zero-length audio (empty file)");
        return NULL;
    }
    unsigned char head[12] = {0};
    if (bs_get(b, 0, head, b->size < 12 ? b->size : 12) < 0) {
        s2s_err_set(err, S2S_EIO, "cannot read the audio file");
        return NULL;
    }
    s2s_audio_reader *r = calloc(1, sizeof *r);
    if (!r) {
        s2s_err_set(err, S2S_ENOMEM, "out of memory");
        return NULL;
    }
    if (wav_pcm_parse(b, &r->wp)) { /* plain PCM WAV: no libsndfile, no copy */
        r->kind = 3;
        r->src = *b;
        r->ch = r->wp.ch;
        info->rate = r->wp.rate;
        info->src_channels = r->wp.ch;
        info->src_container = S2S_AUDIO_WAV;
        info->src_format = r->wp.bits == 16 ? S2S_AUDIO_S16 : S2S_AUDIO_FMT_OTHER;
        snprintf(info->codec, sizeof info->codec, "%s",
                 r->wp.bits == 8    ? "pcm_u8"
                 : r->wp.bits == 16 ? "pcm_s16le"
                 : r->wp.bits == 24 ? "pcm_s24le"
                                    : "pcm_s32le");
        return r;
    }
    int rc = b->size >= 4 && memcmp(head, "OggS", 4) == 0 ? ogg_check_truncated(b, err) : 0;
    if (rc == 0) rc = open_sndfile(r, b, head, info, err);
    if (rc == 0) {
        memset(info, 0, sizeof *info);
        rc = open_libav(r, b, name, info, err);
    } else if (rc > 0) {
        rc = 0;
    }
    if (rc < 0) {
        s2s_audio_reader_close(r);
        return NULL;
    }
    return r;
}

s2s_audio_reader *s2s_audio_reader_open(const void *data, size_t size, const char *name,
                                        s2s_audio *info, s2s_err *err) {
    bsrc b = {data, 0, size};
    return reader_open(&b, name, info, err);
}

s2s_audio_reader *s2s_audio_reader_open_fd(int fd, size_t size, const char *name, s2s_audio *info,
                                           s2s_err *err) {
    if (fd < 0) {
        memset(info, 0, sizeof *info);
        s2s_err_set(err, S2S_EINVAL, "bad file descriptor");
        return NULL;
    }
    bsrc b = {NULL, fd + 1, size};
    return reader_open(&b, name, info, err);
}

/* Fills buf from libav frames; returns count (0 = end). */
static long read_libav(s2s_audio_reader *r, float *buf, size_t max, s2s_err *err) {
    const avlib *L = &r->av;
    size_t n = 0;
    int e;
    while (n < max && !r->done) {
        if (r->have_frame) {
            AVFrame *f = r->fr;
            int ch = f->ch_layout.nb_channels;
            if (ch < 1) return s2s_err_set(err, S2S_EFORMAT, "decoded frame without channels");
            while (r->frame_pos < f->nb_samples && n < max) {
                double s = 0;
                for (int c = 0; c < ch; c++)
                    s += get_sample(L, f, f->format, c, r->frame_pos, ch);
                buf[n++] = (float)(s / ch);
                r->frame_pos++;
            }
            if (r->frame_pos >= f->nb_samples) {
                L->av_frame_unref(f);
                r->have_frame = 0;
            }
            continue;
        }
        e = L->avcodec_receive_frame(r->cc, r->fr);
        if (e == 0) {
            if (r->fr->sample_rate != r->rate) {
                L->av_frame_unref(r->fr);
                return s2s_err_set(err, S2S_EUNSUP, "sample rate changes inside the stream");
            }
            r->have_frame = 1;
            r->frame_pos = 0;
            continue;
        }
        if (e == AVERROR_EOF) {
            r->done = 1;
            break;
        }
        if (e != AVERROR(EAGAIN)) return av_fail(L, err, S2S_EFORMAT, "corrupt audio data", e);
        if (r->sent_eof) { /* decoder wants more after the end: treat as done */
            r->done = 1;
            break;
        }
        e = L->av_read_frame(r->fc, r->pkt);
        if (e == AVERROR_EOF) {
            L->avcodec_send_packet(r->cc, NULL);
            r->sent_eof = 1;
            continue;
        }
        if (e < 0) return av_fail(L, err, S2S_EFORMAT, "truncated or corrupt file", e);
        if (r->pkt->stream_index != r->si) {
            L->av_packet_unref(r->pkt);
            continue;
        }
        if (r->pkt->flags & AV_PKT_FLAG_CORRUPT) {
            L->av_packet_unref(r->pkt);
            return s2s_err_set(err, S2S_EFORMAT, "truncated or corrupt file: damaged packet");
        }
        e = L->avcodec_send_packet(r->cc, r->pkt);
        L->av_packet_unref(r->pkt);
        if (e < 0 && e != AVERROR(EAGAIN))
            return av_fail(L, err, S2S_EFORMAT, "corrupt audio data", e);
    }
    return (long)n;
}

static long read_sndfile(s2s_audio_reader *r, float *buf, size_t max, s2s_err *err) {
    int ch = r->ch;
    size_t n = 0;
    while (n < max && !r->done) {
        sf_count_t per = (sf_count_t)(sizeof r->blk / sizeof r->blk[0]) / ch;
        if ((sf_count_t)(max - n) < per) per = (sf_count_t)(max - n);
        float *dst = ch == 1 ? buf + n : r->blk;
        sf_count_t got = sf_readf_float(r->sf, dst, per);
        if (got <= 0) {
            r->done = 1;
            break;
        }
        if (ch > 1)
            for (sf_count_t i = 0; i < got; i++) {
                float s = 0;
                for (int c = 0; c < ch; c++)
                    s += r->blk[i * ch + c];
                buf[n + (size_t)i] = s / (float)ch;
            }
        n += (size_t)got;
    }
    if (r->done && sf_error(r->sf) != SF_ERR_NO_ERROR)
        return s2s_err_set(err, S2S_EFORMAT, "corrupt %s: %s", r->is_flac ? "FLAC" : "WAV",
                           sf_strerror(r->sf));
    return (long)n;
}

/* Plain PCM WAV: straight from memory, or through r->raw from a file. */
static long read_pcm(s2s_audio_reader *r, float *buf, size_t max, s2s_err *err) {
    enum { RAW = 1 << 16 };
    size_t fb = (size_t)r->wp.ch * (size_t)r->wp.bits / 8, n = r->wp.frames - r->pos;
    if (n > max) n = max;
    if (!r->src.fd1) {
        pcm_to_float(r->src.data + r->wp.off + r->pos * fb, n, r->wp.ch, r->wp.bits, buf);
        r->pos += n;
        return (long)n;
    }
    if (!r->raw && n && !(r->raw = malloc(RAW)))
        return s2s_err_set(err, S2S_ENOMEM, "out of memory decoding audio");
    size_t done = 0;
    while (done < n) {
        size_t k = n - done < RAW / fb ? n - done : RAW / fb;
        if (bs_get(&r->src, r->wp.off + (r->pos + done) * fb, r->raw, k * fb) < 0)
            return s2s_err_set(err, S2S_EIO, "cannot read the audio file");
        pcm_to_float(r->raw, k, r->wp.ch, r->wp.bits, buf + done);
        done += k;
    }
    r->pos += n;
    return (long)n;
}

long s2s_audio_reader_read(s2s_audio_reader *r, float *buf, size_t max, s2s_err *err) {
    if (max > LONG_MAX) max = LONG_MAX;
    long n;
    if (r->kind == 3) { /* integers: never NaN or infinite */
        if ((n = read_pcm(r, buf, max, err)) < 0) return n;
        r->count += (size_t)n;
        if (n == 0 && r->count == 0)
            return s2s_err_set(err, S2S_EDATA, "zero-length audio (no samples)");
        return n;
    }
    n = r->kind == 1 ? read_sndfile(r, buf, max, err) : read_libav(r, buf, max, err);
    if (n < 0) return n;
    for (long i = 0; i < n; i++)
        /* NOLINTNEXTLINE(clang-analyzer-core.CallAndMessage): the decoders fill what they count */
        if (!isfinite(buf[i]))
            return s2s_err_set(err, S2S_EDATA, "%s sample at %zu",
                               isnan(buf[i]) ? "NaN" : "infinite", r->count + (size_t)i);
    r->count += (size_t)n;
    if (n > 0) return n;
    /* The end: was it the whole file? */
    if (r->count == 0) return s2s_err_set(err, S2S_EDATA, "zero-length audio (no samples)");
    if (r->kind == 1 && r->frames > 0 && (sf_count_t)r->count < r->frames)
        return s2s_err_set(err, S2S_EFORMAT,
                           "truncated or corrupt FLAC: %zu of %lld samples decoded", r->count,
                           (long long)r->frames);
    if (r->kind == 2 && r->want > 0) {
        /* Tolerance: 50 ms plus one codec frame (encoder delay and padding). */
        int64_t slack = r->rate / 20 + (r->cc->frame_size > 0 ? r->cc->frame_size : 2048);
        if ((int64_t)r->count + slack < r->want)
            return s2s_err_set(err, S2S_EFORMAT, "truncated: %zu of %lld samples decoded", r->count,
                               (long long)r->want);
    }
    return 0;
}

int s2s_audio_decode(const void *data, size_t size, const char *name, s2s_audio *out,
                     s2s_err *err) {
    s2s_audio_reader *r = s2s_audio_reader_open(data, size, name, out, err);
    if (!r) return err ? err->code : S2S_EFORMAT;
    fvec v = {0};
    long got;
    for (;;) {
        if (fvec_reserve(&v, 65536) < 0) {
            got = s2s_err_set(err, S2S_ENOMEM, "out of memory decoding audio");
            break;
        }
        got = s2s_audio_reader_read(r, v.p + v.n, 65536, err);
        if (got <= 0) break;
        v.n += (size_t)got;
    }
    s2s_audio_reader_close(r);
    out->samples = v.p;
    out->n = v.n;
    return got < 0 ? (int)got : 0;
}

/* ---- encoding ------------------------------------------------------------------------------- */
static inline short f2s16(float x) {
    float y = x * 32768.0f;
    if (!(y > -32768.0f)) return -32768; /* also NaN */
    if (y >= 32767.0f) return 32767;
    return (short)lrintf(y);
}

/* f2s16 over a block. With SSE2, four at a time: max/min clamp (a NaN becomes -32768, as in
 * f2s16, since maxps returns its second operand when one is NaN) and cvtps2dq, which rounds
 * by MXCSR like lrintf (to nearest, ties to even): the same values, 4-5x faster. */
static void f2s16_block(const float *x, short *out, size_t n) {
    size_t i = 0;
#if defined(__SSE2__)
    const __m128 scale = _mm_set1_ps(32768.0f), lo = _mm_set1_ps(-32768.0f),
                 hi = _mm_set1_ps(32767.0f);
    for (; i + 8 <= n; i += 8) {
        __m128 a = _mm_mul_ps(_mm_loadu_ps(x + i), scale);
        __m128 b = _mm_mul_ps(_mm_loadu_ps(x + i + 4), scale);
        a = _mm_min_ps(_mm_max_ps(a, lo), hi);
        b = _mm_min_ps(_mm_max_ps(b, lo), hi);
        __m128i p = _mm_packs_epi32(_mm_cvtps_epi32(a), _mm_cvtps_epi32(b));
        _mm_storeu_si128((__m128i *)(out + i), p);
    }
#endif
    for (; i < n; i++)
        out[i] = f2s16(x[i]);
}

/* 16-bit mono WAV is written here (the 44-byte header libsndfile writes, then the samples);
 * float WAV and FLAC through libsndfile. */
struct s2s_audio_writer {
    SNDFILE *sf; /* NULL: 16-bit WAV written here */
    membuf m;    /* libsndfile's output, or ours: data/cap (memory) or fd1 */
    int format, rate;
    size_t n; /* samples written (16-bit WAV) */
    short blk[8192];
};

enum { WAV_HDR = 44 };

void s2s_audio_writer_abort(s2s_audio_writer *w) {
    if (!w) return;
    if (w->sf) sf_close(w->sf);
    free(w->m.data);
    free(w);
}

static s2s_audio_writer *writer_new(int fd, int rate, int container, int sample_format,
                                    s2s_err *err) {
    if (rate < 1) {
        s2s_err_set(err, S2S_EINVAL, "bad sample rate %d", rate);
        return NULL;
    }
    if (container != S2S_AUDIO_WAV && container != S2S_AUDIO_FLAC) {
        s2s_err_set(err, S2S_EINVAL, "container must be WAV or FLAC");
        return NULL;
    }
    if (sample_format != S2S_AUDIO_S16 && sample_format != S2S_AUDIO_F32) {
        s2s_err_set(err, S2S_EINVAL, "sample format must be s16 or f32");
        return NULL;
    }
    if (container == S2S_AUDIO_FLAC && sample_format == S2S_AUDIO_F32) {
        s2s_err_set(err, S2S_EINVAL, "FLAC cannot hold float samples (use s16 or WAV)");
        return NULL;
    }
    if (container == S2S_AUDIO_FLAC && rate > 655350) {
        s2s_err_set(err, S2S_EINVAL, "FLAC cannot hold rate %d", rate);
        return NULL;
    }
    s2s_audio_writer *w = calloc(1, sizeof *w);
    if (!w) {
        s2s_err_set(err, S2S_ENOMEM, "out of memory");
        return NULL;
    }
    w->m.writable = 1;
    w->m.fd1 = fd + 1;
    w->format = sample_format;
    w->rate = rate;
    if (container == S2S_AUDIO_WAV && sample_format == S2S_AUDIO_S16) return w;
    SF_INFO info;
    memset(&info, 0, sizeof info);
    info.samplerate = rate;
    info.channels = 1;
    info.format = (container == S2S_AUDIO_WAV ? SF_FORMAT_WAV : SF_FORMAT_FLAC) |
                  (sample_format == S2S_AUDIO_F32 ? SF_FORMAT_FLOAT : SF_FORMAT_PCM_16);
    w->sf = sf_open_virtual(&mb_io, SFM_WRITE, &info, &w->m);
    if (!w->sf) {
        s2s_err_set(err, S2S_EIO, "libsndfile: %s", sf_strerror(NULL));
        s2s_audio_writer_abort(w);
        return NULL;
    }
    /* The PEAK chunk of float WAVs carries a timestamp: off, for byte-identical output. */
    sf_command(w->sf, SFC_SET_ADD_PEAK_CHUNK, NULL, SF_FALSE);
    return w;
}

s2s_audio_writer *s2s_audio_writer_new(int rate, int container, int sample_format, s2s_err *err) {
    return writer_new(-1, rate, container, sample_format, err);
}

s2s_audio_writer *s2s_audio_writer_new_fd(int fd, int rate, int container, int sample_format,
                                          s2s_err *err) {
    if (fd < 0) {
        s2s_err_set(err, S2S_EINVAL, "bad file descriptor");
        return NULL;
    }
    return writer_new(fd, rate, container, sample_format, err);
}

/* 16-bit WAV in memory: room for the header and `more` samples after the n written. */
static int wav_room(s2s_audio_writer *w, size_t more, s2s_err *err) {
    if (more > (UINT32_MAX - WAV_HDR) / 2 - w->n)
        return s2s_err_set(err, S2S_EINVAL, "too long for a WAV file (4 GB)");
    size_t need = WAV_HDR + 2 * (w->n + more);
    if (w->m.data && need <= (size_t)w->m.cap) return 0;
    size_t cap = w->m.cap ? (size_t)w->m.cap : 65536;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    unsigned char *d = realloc(w->m.data, cap);
    if (!d) return s2s_err_set(err, S2S_ENOMEM, "out of memory encoding audio");
    w->m.data = d;
    w->m.cap = (sf_count_t)cap;
    return 0;
}

int s2s_audio_writer_reserve(s2s_audio_writer *w, size_t n, s2s_err *err) {
    if (w->sf || w->m.fd1 || n > (UINT32_MAX - WAV_HDR) / 2 - w->n) return 0; /* only a hint */
    size_t need = WAV_HDR + 2 * (w->n + n);
    if (w->m.data && need <= (size_t)w->m.cap) return 0;
    unsigned char *d = realloc(w->m.data, need);
    if (!d) return s2s_err_set(err, S2S_ENOMEM, "out of memory encoding audio");
    w->m.data = d;
    w->m.cap = (sf_count_t)need;
    return 0;
}

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
static void to_le16(short *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        s[i] = (short)__builtin_bswap16((uint16_t)s[i]);
}
#else
static void to_le16(short *s, size_t n) {
    (void)s, (void)n;
}
#endif

/* 16-bit WAV: appends s[0..n-1] (NULL: x[0..n-1] converted with f2s16). */
static int wav_put(s2s_audio_writer *w, const short *s, const float *x, size_t n, s2s_err *err) {
    if (!w->m.fd1) {
        int rc = wav_room(w, n, err);
        if (rc < 0) return rc;
        short *dst = (short *)(void *)(w->m.data + WAV_HDR + 2 * w->n);
        if (s)
            memcpy(dst, s, n * sizeof *s);
        else
            f2s16_block(x, dst, n);
        to_le16(dst, n);
        w->n += n;
        return 0;
    }
    const size_t cap = sizeof w->blk / sizeof w->blk[0];
    for (size_t done = 0; done < n;) {
        size_t k = n - done < cap ? n - done : cap;
        if (k > (UINT32_MAX - WAV_HDR) / 2 - w->n)
            return s2s_err_set(err, S2S_EINVAL, "too long for a WAV file (4 GB)");
        if (s)
            memcpy(w->blk, s + done, k * sizeof *s);
        else
            f2s16_block(x + done, w->blk, k);
        to_le16(w->blk, k);
        if (fd_write_at(w->m.fd1 - 1, w->blk, 2 * k, WAV_HDR + 2 * w->n) < 0)
            return s2s_err_errno(err, "encoding audio failed: writing the file");
        w->n += k;
        done += k;
    }
    return 0;
}

/* The header libsndfile writes for 16-bit mono PCM WAV (SF_FORMAT_WAV | SF_FORMAT_PCM_16). */
static void wav_header(unsigned char *h, int rate, size_t n) {
    uint32_t data = (uint32_t)(2 * n), r = (uint32_t)rate, v[] = {36 + data, 16, r, 2 * r, data};
    memcpy(h, "RIFF\0\0\0\0WAVEfmt \0\0\0\0\1\0\1\0\0\0\0\0\0\0\0\0\2\0\20\0data\0\0\0\0", 44);
    const int at[] = {4, 16, 24, 28, 40};
    for (int i = 0; i < 5; i++)
        for (int b = 0; b < 4; b++)
            h[at[i] + b] = (unsigned char)(v[i] >> (8 * b));
}

static int write_s16(s2s_audio_writer *w, const short *s, size_t n, s2s_err *err) {
    if (!w->sf) return wav_put(w, s, NULL, n, err);
    if (sf_writef_short(w->sf, s, (sf_count_t)n) != (sf_count_t)n)
        return s2s_err_set(err, S2S_EIO, "encoding audio failed: %s", sf_strerror(w->sf));
    return 0;
}

int s2s_audio_writer_write(s2s_audio_writer *w, const float *x, size_t n, s2s_err *err) {
    if (!w->sf) return wav_put(w, NULL, x, n, err);
    if (w->format == S2S_AUDIO_F32) {
        if (sf_writef_float(w->sf, x, (sf_count_t)n) != (sf_count_t)n)
            return s2s_err_set(err, S2S_EIO, "encoding audio failed: %s", sf_strerror(w->sf));
        return 0;
    }
    const size_t cap = sizeof w->blk / sizeof w->blk[0];
    for (size_t done = 0; done < n;) {
        size_t k = n - done < cap ? n - done : cap;
        f2s16_block(x + done, w->blk, k);
        int rc = write_s16(w, w->blk, k, err);
        if (rc < 0) return rc;
        done += k;
    }
    return 0;
}

int s2s_audio_writer_finish(s2s_audio_writer *w, unsigned char **out, size_t *outsize,
                            s2s_err *err) {
    *out = NULL;
    *outsize = 0;
    if (!w->sf) { /* 16-bit WAV: the header now that the length is known */
        int rc = w->m.fd1 ? 0 : wav_room(w, 0, err);
        unsigned char h[WAV_HDR];
        wav_header(h, w->rate, w->n);
        if (rc == 0 && !w->m.fd1) memcpy(w->m.data, h, WAV_HDR);
        if (rc == 0 && w->m.fd1 && fd_write_at(w->m.fd1 - 1, h, WAV_HDR, 0) < 0)
            rc = s2s_err_errno(err, "encoding audio failed: writing the file");
        if (rc < 0) {
            s2s_audio_writer_abort(w);
            return rc;
        }
        *out = w->m.fd1 ? NULL : w->m.data;
        *outsize = WAV_HDR + 2 * w->n;
        free(w);
        return 0;
    }
    int bad = sf_close(w->sf) != 0;
    w->sf = NULL;
    if (bad) {
        s2s_audio_writer_abort(w);
        return s2s_err_set(err, S2S_EIO, "encoding audio failed when closing");
    }
    *out = w->m.fd1 ? NULL : w->m.data;
    *outsize = (size_t)w->m.size;
    if (w->m.fd1) free(w->m.data);
    free(w);
    return 0;
}

int s2s_audio_encode(const s2s_audio *a, int container, int sample_format, unsigned char **out,
                     size_t *outsize, s2s_err *err) {
    *out = NULL;
    *outsize = 0;
    if (!a || (!a->samples && a->n)) return s2s_err_set(err, S2S_EINVAL, "no samples to encode");
    s2s_audio_writer *w = s2s_audio_writer_new(a->rate, container, sample_format, err);
    if (!w) return err ? err->code : S2S_EINVAL;
    int rc = s2s_audio_writer_write(w, a->samples, a->n, err);
    if (rc < 0) {
        s2s_audio_writer_abort(w);
        return rc;
    }
    return s2s_audio_writer_finish(w, out, outsize, err);
}

int s2s_audio_encode_s16(const int16_t *pcm, size_t n, int rate, int container, unsigned char **out,
                         size_t *outsize, s2s_err *err) {
    *out = NULL;
    *outsize = 0;
    if (!pcm && n) return s2s_err_set(err, S2S_EINVAL, "no samples to encode");
    s2s_audio_writer *w = s2s_audio_writer_new(rate, container, S2S_AUDIO_S16, err);
    if (!w) return err ? err->code : S2S_EINVAL;
    int rc = n ? write_s16(w, pcm, n, err) : 0;
    if (rc < 0) {
        s2s_audio_writer_abort(w);
        return rc;
    }
    return s2s_audio_writer_finish(w, out, outsize, err);
}

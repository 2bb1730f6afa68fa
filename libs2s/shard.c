/* shard.c — member codecs (gzip, FLAC) and the shard writer s2s_packer (s2s/shard.h).
 * The format is specified in docs/shards.md and docs/shard-index.md. */
#define _GNU_SOURCE /* fopencookie */
#include "s2s/shard.h"

#include <FLAC/stream_decoder.h>
#include <FLAC/stream_encoder.h>
#include <errno.h>
#include <libdeflate.h>
#include <limits.h>
#include <pthread.h>
#include <sndfile.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "s2s/audio.h"
#include "s2s/flacenc.h"
#include "s2s/item.h"
#include "s2s/tar.h"
#include "s2s/util.h"

/* ---- gzip --------------------------------------------------------------------------------- */

/* CRC-32 and gzip members through libdeflate: its CRC-32 folds with PCLMUL where the CPU has
 * it (the same values everywhere; 3.4x zlib's), its deflate is 1.7x zlib's at level 6 with
 * smaller output (docs/shards.md). Inflating stays with zlib (streaming, no size needed). */
uint32_t s2s_crc32(const void *p, size_t n) {
    return libdeflate_crc32(0, p, n);
}

/* A compressor kept across members (allocated once per level, not per member). */
typedef struct gz_ctx {
    struct libdeflate_compressor *c;
    int level; /* level of c; -1 = none */
} gz_ctx;

static void gz_ctx_free(gz_ctx *g) {
    if (g->c) libdeflate_free_compressor(g->c);
    g->c = NULL;
    g->level = -1;
}

static int gzip_ctx(gz_ctx *g, const void *in, size_t n, int level, unsigned char **out,
                    size_t *out_n, s2s_err *err) {
    *out = NULL;
    *out_n = 0;
    if (level < 0 || level > 9)
        return s2s_err_set(err, S2S_EINVAL, "gzip level %d out of range 0-9", level);
    if (g->level != level) {
        gz_ctx_free(g);
        if (!(g->c = libdeflate_alloc_compressor(level)))
            return s2s_err_set(err, S2S_ENOMEM, "gzip: out of memory");
        g->level = level;
    }
    size_t bound = libdeflate_gzip_compress_bound(g->c, n);
    unsigned char *buf = malloc(bound);
    if (!buf) return s2s_err_set(err, S2S_ENOMEM, "gzip: out of memory (%zu bytes)", bound);
    /* libdeflate's gzip header: no name, no comment, MTIME 0, OS 255 ("unknown") */
    size_t k = libdeflate_gzip_compress(g->c, in, n, buf, bound);
    if (k == 0) {
        free(buf);
        return s2s_err_set(err, S2S_EIO, "gzip: compression failed");
    }
    *out = buf;
    *out_n = k;
    return 0;
}

int s2s_gzip(const void *in, size_t n, int level, unsigned char **out, size_t *out_n,
             s2s_err *err) {
    gz_ctx g = {NULL, -1};
    int rc = gzip_ctx(&g, in, n, level, out, out_n, err);
    gz_ctx_free(&g);
    return rc;
}

/* The common case through libdeflate (3x zlib's inflate on short members): complete members
 * one after another, the output sized from the last member's ISIZE and doubled when short. 1 =
 * done, 0 = anything else (damage, truncation, out of memory: the zlib code below then gives
 * the result and its message), the output identical either way. */
static int gunzip_fast(const unsigned char *in, size_t n, unsigned char **out, size_t *out_n) {
    struct libdeflate_decompressor *d = libdeflate_alloc_decompressor();
    if (!d) return 0;
    /* The last member's ISIZE sizes the output, but only as far as the input can justify it:
     * deflate expands at most 1032:1, so a damaged or hostile trailer claiming 4 GB must not be
     * allocated up front (fuzz: regress/codec/gunzip-isize-4gb). Start at most at 8x the input
     * (+64 KiB), double while short, never past the bound (beyond it the data is not valid
     * deflate: zlib below reports it). */
    size_t isize = (size_t)(in[n - 4] | (uint32_t)in[n - 3] << 8 | (uint32_t)in[n - 2] << 16 |
                            (uint32_t)in[n - 1] << 24);
    size_t bound = n > ((size_t)1 << 40) ? ((size_t)1 << 50) : n * 1032 + 64;
    size_t cap = isize + 1, len = 0, pos = 0;
    if (cap > n * 8 + 65536) cap = n * 8 + 65536;
    if (cap > bound) cap = bound;
    if (cap < 64) cap = 64;
    unsigned char *b = malloc(cap);
    int ok = 0;
    while (b) {
        size_t inu = 0, outu = 0;
        enum libdeflate_result r = libdeflate_gzip_decompress_ex(d, in + pos, n - pos, b + len,
                                                                 cap - len - 1, &inu, &outu);
        if (r == LIBDEFLATE_INSUFFICIENT_SPACE && cap < bound) {
            size_t nc = cap * 2 < bound ? cap * 2 : bound;
            unsigned char *nb = realloc(b, nc);
            if (!nb) break;
            b = nb, cap = nc;
            continue;
        }
        if (r != LIBDEFLATE_SUCCESS) break;
        pos += inu, len += outu;
        if (pos == n) {
            ok = 1;
            break;
        }
        if (n - pos < 18) break; /* (trailing bytes: zlib's message) */
    }
    libdeflate_free_decompressor(d);
    if (!ok) {
        free(b);
        return 0;
    }
    b[len] = 0;
    *out = b;
    *out_n = len;
    return 1;
}

int s2s_gunzip(const void *in, size_t n, unsigned char **out, size_t *out_n, s2s_err *err) {
    *out = NULL;
    *out_n = 0;
    if (n >= 18 && gunzip_fast(in, n, out, out_n)) return 0;
    s2s_buf b = {0};
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 15 + 16) != Z_OK)
        return s2s_err_set(err, S2S_ENOMEM, "gunzip: inflateInit2 failed");
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)n;
    if (n < 18) {
        inflateEnd(&z);
        return s2s_err_set(err, S2S_EFORMAT, "not gzip data (%zu bytes)", n);
    }
    int rc = Z_OK;
    for (;;) {
        if (s2s_buf_reserve(&b, n * 3 + 4096, err) < 0) {
            inflateEnd(&z);
            s2s_buf_free(&b);
            return S2S_ENOMEM;
        }
        z.next_out = b.data + b.len;
        z.avail_out = (uInt)(b.cap - b.len);
        uInt before = z.avail_out;
        rc = inflate(&z, Z_NO_FLUSH);
        b.len += before - z.avail_out;
        if (rc == Z_STREAM_END) {
            if (z.avail_in == 0) break;
            /* another gzip member follows */
            if (inflateReset(&z) != Z_OK) break;
            continue;
        }
        if (rc == Z_OK) continue;
        if (rc == Z_BUF_ERROR && z.avail_in == 0) {
            inflateEnd(&z);
            s2s_buf_free(&b);
            return s2s_err_set(err, S2S_EFORMAT, "gzip data truncated");
        }
        if (rc == Z_BUF_ERROR) continue;
        const char *m = z.msg ? z.msg : "corrupt data";
        s2s_err_set(err, S2S_EFORMAT, "gzip data damaged: %s", m);
        inflateEnd(&z);
        s2s_buf_free(&b);
        return S2S_EFORMAT;
    }
    inflateEnd(&z);
    if (s2s_buf_reserve(&b, 1, err) < 0) {
        s2s_buf_free(&b);
        return S2S_ENOMEM;
    }
    b.data[b.len] = 0;
    *out = s2s_buf_steal(&b, out_n);
    return 0;
}

/* ---- FLAC: libFLAC directly ----------------------------------------------------------------
 * The encoder is fed the WAV's integer samples straight (no float, no libsndfile buffers), with
 * the STREAMINFO MD5 off (the shard's SHA-256 and the index's CRC-32 per member already cover
 * the bytes; docs/shards.md), verify off, the streamable subset on where the rate allows it.
 * One encoder object is reused across members (flac_enc). Only WAV forms that are not plain
 * integer PCM (WAVE_FORMAT_EXTENSIBLE oddities, A-law...) are read through libsndfile. */

/* libsndfile virtual I/O over a read-only buffer (the fallback WAV reader). */
typedef struct vio {
    const unsigned char *rd;
    sf_count_t len, pos;
} vio;

static sf_count_t vio_len(void *u) {
    return ((vio *)u)->len;
}

static sf_count_t vio_seek(sf_count_t off, int whence, void *u) {
    vio *v = u;
    sf_count_t np = whence == SEEK_SET ? off : whence == SEEK_CUR ? v->pos + off : v->len + off;
    if (np < 0) return -1;
    v->pos = np;
    return np;
}

static sf_count_t vio_read(void *p, sf_count_t n, void *u) {
    vio *v = u;
    if (v->pos >= v->len) return 0;
    if (n > v->len - v->pos) n = v->len - v->pos;
    memcpy(p, v->rd + v->pos, (size_t)n);
    v->pos += n;
    return n;
}

static sf_count_t vio_write(const void *p, sf_count_t n, void *u) {
    (void)p, (void)n, (void)u;
    return 0;
}

static sf_count_t vio_tell(void *u) {
    return ((vio *)u)->pos;
}

static SF_VIRTUAL_IO vio_ops = {vio_len, vio_seek, vio_read, vio_write, vio_tell};

/* A reusable FLAC encoder: the libFLAC object and the int32 staging buffer. */
typedef struct flac_enc {
    FLAC__StreamEncoder *e;
    FLAC__int32 *ibuf;
    size_t icap; /* samples */
    s2s_buf *out;
    size_t pos;
    int oom;
} flac_enc;

enum { FLAC_CHUNK = 8192 }; /* frames per process call */

/* Exported by libFLAC (1.3 and later) but declared only in its private headers; the flac CLI's
 * --no-md5-sum declares it the same way (src/share/private.h). */
extern FLAC__bool FLAC__stream_encoder_set_do_md5(FLAC__StreamEncoder *encoder, FLAC__bool value);

static void flac_enc_free(flac_enc *fe) {
    if (!fe) return;
    if (fe->e) FLAC__stream_encoder_delete(fe->e);
    free(fe->ibuf);
    memset(fe, 0, sizeof *fe);
}

static FLAC__StreamEncoderWriteStatus enc_write(const FLAC__StreamEncoder *e,
                                                const FLAC__byte buffer[], size_t bytes,
                                                uint32_t samples, uint32_t frame, void *u) {
    (void)e, (void)samples, (void)frame;
    flac_enc *fe = u;
    s2s_buf *b = fe->out;
    if (fe->pos + bytes > b->len && s2s_buf_reserve(b, fe->pos + bytes - b->len, NULL) < 0) {
        fe->oom = 1;
        return FLAC__STREAM_ENCODER_WRITE_STATUS_FATAL_ERROR;
    }
    memcpy(b->data + fe->pos, buffer, bytes);
    fe->pos += bytes;
    if (fe->pos > b->len) b->len = fe->pos;
    return FLAC__STREAM_ENCODER_WRITE_STATUS_OK;
}

static FLAC__StreamEncoderSeekStatus enc_seek(const FLAC__StreamEncoder *e, FLAC__uint64 off,
                                              void *u) {
    (void)e;
    flac_enc *fe = u;
    if (off > fe->out->len) return FLAC__STREAM_ENCODER_SEEK_STATUS_ERROR;
    fe->pos = (size_t)off;
    return FLAC__STREAM_ENCODER_SEEK_STATUS_OK;
}

static FLAC__StreamEncoderTellStatus enc_tell(const FLAC__StreamEncoder *e, FLAC__uint64 *off,
                                              void *u) {
    (void)e;
    *off = ((flac_enc *)u)->pos;
    return FLAC__STREAM_ENCODER_TELL_STATUS_OK;
}

/* Where the samples come from: a plain integer-PCM WAV's bytes (s2s_wav_pcm_view), or
 * libsndfile for any other WAV form. */
typedef struct pcm_in {
    const unsigned char *raw; /* interleaved little-endian PCM, or NULL: read through sf */
    unsigned in_bits;         /* 8 (unsigned), 16, 24 */
    SNDFILE *sf;
    unsigned sf_shift; /* sf_readf_int gives 32-bit-scaled ints: >> this */
} pcm_in;

/* Encodes frames x channels samples at out_bits (16 or 24) into *out (appended from its
 * current length 0). */
static int flac_encode_pcm(flac_enc *fe, pcm_in *in, uint64_t frames, unsigned rate,
                           unsigned channels, unsigned out_bits, int level, s2s_buf *out,
                           s2s_err *err) {
    if (frames == 0)
        return s2s_err_set(err, S2S_EDATA, "empty audio (0 frames): nothing to encode");
    if (channels < 1 || channels > 8 || rate < 1 || rate > 1048575)
        return s2s_err_set(err, S2S_EUNSUP, "FLAC cannot store %u Hz, %u channels", rate, channels);
    if (level == 0) { /* the built-in encoder (s2s/flacenc.h) */
        s2s_flacenc_in fi = {in->raw, NULL, in->in_bits, out_bits, frames, rate, channels};
        int32_t *all = NULL;
        if (!in->raw) { /* libsndfile's samples, all of them (a rare WAV form) */
            if (frames > SIZE_MAX / sizeof *all / channels)
                return s2s_err_set(err, S2S_ENOMEM, "FLAC: out of memory");
            all = malloc((size_t)frames * channels * sizeof *all);
            if (!all) return s2s_err_set(err, S2S_ENOMEM, "FLAC: out of memory");
            sf_count_t got = sf_readf_int(in->sf, (int *)all, (sf_count_t)frames);
            if (got != (sf_count_t)frames) {
                free(all);
                return s2s_err_set(err, S2S_EFORMAT, "WAV truncated: %lld of %llu frames",
                                   (long long)(got > 0 ? got : 0), (unsigned long long)frames);
            }
            for (size_t i = 0; i < (size_t)frames * channels; i++)
                all[i] >>= in->sf_shift;
            fi.i32 = all;
        }
        int rc = s2s_flacenc(&fi, out, err);
        free(all);
        return rc;
    }
    if (!fe->e && !(fe->e = FLAC__stream_encoder_new()))
        return s2s_err_set(err, S2S_ENOMEM, "FLAC: out of memory");
    size_t need = (size_t)FLAC_CHUNK * channels;
    if (fe->icap < need) {
        FLAC__int32 *nb = realloc(fe->ibuf, need * sizeof *nb);
        if (!nb) return s2s_err_set(err, S2S_ENOMEM, "FLAC: out of memory");
        fe->ibuf = nb;
        fe->icap = need;
    }
    FLAC__StreamEncoder *e = fe->e;
    /* finish() resets every setting to its default: set them all for each stream */
    FLAC__stream_encoder_set_channels(e, channels);
    FLAC__stream_encoder_set_bits_per_sample(e, out_bits);
    FLAC__stream_encoder_set_sample_rate(e, rate);
    FLAC__stream_encoder_set_compression_level(e, (uint32_t)level);
    FLAC__stream_encoder_set_do_md5(e, false);
    FLAC__stream_encoder_set_verify(e, false);
    FLAC__stream_encoder_set_streamable_subset(e, FLAC__format_sample_rate_is_subset(rate));
    FLAC__stream_encoder_set_total_samples_estimate(e, frames);
    out->len = 0;
    /* a guess of the output size saves most of the growth steps */
    size_t guess = (size_t)(frames * channels * (out_bits / 8) / 2 + 8192);
    if (s2s_buf_reserve(out, guess, err) < 0) return S2S_ENOMEM;
    fe->out = out;
    fe->pos = 0;
    fe->oom = 0;
    FLAC__StreamEncoderInitStatus is =
        FLAC__stream_encoder_init_stream(e, enc_write, enc_seek, enc_tell, NULL, fe);
    if (is != FLAC__STREAM_ENCODER_INIT_STATUS_OK) {
        FLAC__stream_encoder_finish(e);
        return s2s_err_set(err, S2S_EUNSUP, "cannot open a FLAC encoder (%u Hz, %u channels): %s",
                           rate, channels, FLAC__StreamEncoderInitStatusString[is]);
    }
    int rc = 0;
    uint64_t done = 0;
    const unsigned char *src = in->raw;
    while (done < frames) {
        size_t k = frames - done < FLAC_CHUNK ? (size_t)(frames - done) : FLAC_CHUNK;
        size_t ns = k * channels;
        FLAC__int32 *d = fe->ibuf;
        if (src && in->in_bits == 16) {
            for (size_t i = 0; i < ns; i++)
                d[i] = (int16_t)(uint16_t)(src[2 * i] | (unsigned)src[2 * i + 1] << 8);
            src += 2 * ns;
        } else if (src && in->in_bits == 24) {
            for (size_t i = 0; i < ns; i++) {
                uint32_t v =
                    src[3 * i] | (uint32_t)src[3 * i + 1] << 8 | (uint32_t)src[3 * i + 2] << 16;
                d[i] = (FLAC__int32)(v ^ 0x800000u) - 0x800000; /* sign-extend 24 bits */
            }
            src += 3 * ns;
        } else if (src) { /* 8-bit WAV is unsigned; stored as 16-bit (x - 128) * 256 */
            for (size_t i = 0; i < ns; i++)
                d[i] = ((FLAC__int32)src[i] - 128) * 256;
            src += ns;
        } else {
            sf_count_t got = sf_readf_int(in->sf, (int *)d, (sf_count_t)k);
            if (got != (sf_count_t)k) {
                rc = s2s_err_set(err, S2S_EFORMAT, "WAV truncated: %llu of %llu frames",
                                 (unsigned long long)(done + (got > 0 ? (uint64_t)got : 0)),
                                 (unsigned long long)frames);
                break;
            }
            for (size_t i = 0; i < ns; i++)
                d[i] >>= in->sf_shift; /* arithmetic shift of a scaled integer: exact */
        }
        if (!FLAC__stream_encoder_process_interleaved(e, d, (uint32_t)k)) {
            rc = fe->oom ? s2s_err_set(err, S2S_ENOMEM, "FLAC: out of memory")
                         : s2s_err_set(
                               err, S2S_EIO, "FLAC encoder failed: %s",
                               FLAC__StreamEncoderStateString[FLAC__stream_encoder_get_state(e)]);
            break;
        }
        done += k;
    }
    if (!FLAC__stream_encoder_finish(e) && rc == 0)
        rc = fe->oom ? s2s_err_set(err, S2S_ENOMEM, "FLAC: out of memory")
                     : s2s_err_set(err, S2S_EIO, "FLAC encoder failed at the end of the stream");
    fe->out = NULL;
    if (rc == 0 && (out->len < 42 || memcmp(out->data, "fLaC", 4) != 0))
        rc = s2s_err_set(err, S2S_EIO, "FLAC encoder produced no FLAC stream");
    return rc;
}

/* WAV bytes -> FLAC bytes in *out (its length is reset), with a reusable encoder. */
static int flac_encode_wav(flac_enc *fe, const void *wav, size_t n, int level, s2s_buf *out,
                           s2s_err *err) {
    if (level < 0 || level > 8)
        return s2s_err_set(err, S2S_EINVAL, "FLAC level %d out of range 0-8", level);
    pcm_in in;
    memset(&in, 0, sizeof in);
    s2s_wav_pcm v; /* (libs2s/wav_pcm.c: calling it does not link libav into s2s-pack) */
    if (s2s_wav_pcm_view(wav, n, &v) == 1 && (v.bits == 8 || v.bits == 16 || v.bits == 24)) {
        in.raw = v.data;
        in.in_bits = (unsigned)v.bits;
        return flac_encode_pcm(fe, &in, v.frames, (unsigned)v.rate, (unsigned)v.channels,
                               v.bits == 24 ? 24 : 16, level, out, err);
    }
    vio vi = {wav, (sf_count_t)n, 0};
    SF_INFO ii;
    memset(&ii, 0, sizeof ii);
    SNDFILE *si = sf_open_virtual(&vio_ops, SFM_READ, &ii, &vi);
    if (!si) return s2s_err_set(err, S2S_EFORMAT, "not a readable WAV: %s", sf_strerror(NULL));
    int sub = ii.format & SF_FORMAT_SUBMASK;
    unsigned ob;
    if (sub == SF_FORMAT_PCM_16 || sub == SF_FORMAT_PCM_S8 || sub == SF_FORMAT_PCM_U8)
        ob = 16;
    else if (sub == SF_FORMAT_PCM_24)
        ob = 24;
    else {
        sf_close(si);
        return s2s_err_set(err, S2S_EUNSUP,
                           "WAV sample format 0x%x is not 8/16/24-bit PCM (FLAC stores integers)",
                           sub);
    }
    in.sf = si;
    in.sf_shift = 32 - ob;
    int rc = flac_encode_pcm(fe, &in, ii.frames > 0 ? (uint64_t)ii.frames : 0,
                             (unsigned)ii.samplerate, (unsigned)ii.channels, ob, level, out, err);
    sf_close(si);
    return rc;
}

int s2s_flac_encode(const void *wav, size_t n, int level, unsigned char **out, size_t *out_n,
                    s2s_err *err) {
    *out = NULL;
    *out_n = 0;
    flac_enc fe;
    memset(&fe, 0, sizeof fe);
    s2s_buf ob = {0};
    int rc = flac_encode_wav(&fe, wav, n, level, &ob, err);
    flac_enc_free(&fe);
    if (rc < 0) {
        s2s_buf_free(&ob);
        return rc;
    }
    *out = s2s_buf_steal(&ob, out_n);
    return 0;
}

static void le16(unsigned char *p, unsigned v) {
    p[0] = v & 255;
    p[1] = (v >> 8) & 255;
}
static void le32(unsigned char *p, uint32_t v) {
    le16(p, v & 0xffff);
    le16(p + 2, v >> 16);
}

/* Decoder state: the input buffer, the WAV being built. */
typedef struct flac_dec {
    const unsigned char *in;
    size_t n, pos;
    s2s_buf w;
    unsigned channels, bits, rate, obps; /* obps: output bytes per sample, 2 or 3 */
    uint64_t total, got;                 /* total 0 = unknown */
    int have_info, fault;
    char why[160];
} flac_dec;

static FLAC__StreamDecoderReadStatus dec_read(const FLAC__StreamDecoder *d, FLAC__byte buffer[],
                                              size_t *bytes, void *u) {
    (void)d;
    flac_dec *f = u;
    size_t k = f->n - f->pos;
    if (k == 0) {
        *bytes = 0;
        return FLAC__STREAM_DECODER_READ_STATUS_END_OF_STREAM;
    }
    if (k > *bytes) k = *bytes;
    memcpy(buffer, f->in + f->pos, k);
    f->pos += k;
    *bytes = k;
    return FLAC__STREAM_DECODER_READ_STATUS_CONTINUE;
}

static void dec_meta(const FLAC__StreamDecoder *d, const FLAC__StreamMetadata *m, void *u) {
    (void)d;
    flac_dec *f = u;
    if (m->type != FLAC__METADATA_TYPE_STREAMINFO || f->have_info) return;
    f->have_info = 1;
    f->channels = m->data.stream_info.channels;
    f->bits = m->data.stream_info.bits_per_sample;
    f->rate = m->data.stream_info.sample_rate;
    f->total = m->data.stream_info.total_samples;
    f->obps = f->bits <= 16 ? 2 : 3;
}

static FLAC__StreamDecoderWriteStatus dec_write(const FLAC__StreamDecoder *d, const FLAC__Frame *fr,
                                                const FLAC__int32 *const buf[], void *u) {
    (void)d;
    flac_dec *f = u;
    const FLAC__FrameHeader *h = &fr->header;
    if (!f->have_info) {
        snprintf(f->why, sizeof f->why, "audio frame before STREAMINFO");
    } else if (f->bits < 4 || f->bits > 24) {
        snprintf(f->why, sizeof f->why, "%u-bit FLAC is not supported (4-24 bits)", f->bits);
    } else if (f->rate == 0) {
        snprintf(f->why, sizeof f->why, "FLAC stream without a sample rate");
    } else if (h->channels != f->channels || h->bits_per_sample != f->bits) {
        snprintf(f->why, sizeof f->why,
                 "a frame at sample %llu has %u channels, %u bits; STREAMINFO says %u, %u",
                 (unsigned long long)f->got, h->channels, h->bits_per_sample, f->channels, f->bits);
    } else if (f->total && f->got + h->blocksize > f->total) {
        snprintf(f->why, sizeof f->why, "more samples than STREAMINFO's %llu",
                 (unsigned long long)f->total);
    }
    if (f->why[0]) {
        f->fault = 1;
        return FLAC__STREAM_DECODER_WRITE_STATUS_ABORT;
    }
    size_t bytes = (size_t)h->blocksize * h->channels * f->obps;
    if (f->w.len + bytes > 0xffffffffULL - 64) {
        snprintf(f->why, sizeof f->why, "FLAC too long for a WAV");
        f->fault = 1;
        return FLAC__STREAM_DECODER_WRITE_STATUS_ABORT;
    }
    if (f->w.len + bytes + 1 > f->w.cap) {
        /* grow with what actually decodes: the header's count is not trusted for the size */
        size_t want = f->w.cap * 2;
        uint64_t full = 44 + f->total * f->channels * f->obps + 1;
        if (f->total && want > full) want = (size_t)full;
        if (want < f->w.len + bytes + 1) want = f->w.len + bytes + 1;
        if (s2s_buf_reserve(&f->w, want - f->w.len, NULL) < 0) {
            snprintf(f->why, sizeof f->why, "out of memory");
            f->fault = 2;
            return FLAC__STREAM_DECODER_WRITE_STATUS_ABORT;
        }
    }
    unsigned char *p = f->w.data + f->w.len;
    unsigned ch = h->channels, bs = h->blocksize;
    if (f->obps == 2) {
        unsigned sh = 16 - f->bits;
        if (ch == 1) {
            const FLAC__int32 *s = buf[0];
            for (unsigned i = 0; i < bs; i++) {
                uint32_t v = (uint32_t)s[i] << sh;
                p[2 * i] = v & 255;
                p[2 * i + 1] = (v >> 8) & 255;
            }
        } else {
            for (unsigned i = 0; i < bs; i++)
                for (unsigned c = 0; c < ch; c++) {
                    uint32_t v = (uint32_t)buf[c][i] << sh;
                    p[0] = v & 255;
                    p[1] = (v >> 8) & 255;
                    p += 2;
                }
        }
    } else {
        unsigned sh = 24 - f->bits;
        for (unsigned i = 0; i < bs; i++)
            for (unsigned c = 0; c < ch; c++) {
                uint32_t v = (uint32_t)buf[c][i] << sh;
                p[0] = v & 255;
                p[1] = (v >> 8) & 255;
                p[2] = (v >> 16) & 255;
                p += 3;
            }
    }
    f->w.len += bytes;
    f->got += bs;
    return FLAC__STREAM_DECODER_WRITE_STATUS_CONTINUE;
}

static void dec_error(const FLAC__StreamDecoder *d, FLAC__StreamDecoderErrorStatus st, void *u) {
    (void)d;
    flac_dec *f = u;
    if (!f->fault) {
        f->fault = 1;
        snprintf(f->why, sizeof f->why, "%s after %llu samples",
                 FLAC__StreamDecoderErrorStatusString[st], (unsigned long long)f->got);
    }
}

int s2s_flac_decode(const void *flac, size_t n, unsigned char **out, size_t *out_n, s2s_err *err) {
    *out = NULL;
    *out_n = 0;
    if (n < 4 || memcmp(flac, "fLaC", 4) != 0)
        return s2s_err_set(err, S2S_EFORMAT, "not FLAC data (no \"fLaC\" signature)");
    flac_dec f;
    memset(&f, 0, sizeof f);
    f.in = flac;
    f.n = n;
    FLAC__StreamDecoder *d = FLAC__stream_decoder_new();
    if (!d) return s2s_err_set(err, S2S_ENOMEM, "FLAC decode: out of memory");
    /* first size: the input's, up to 1 MiB; then doubling (never trusting the header) */
    size_t first = n * 3 < (1u << 20) ? n * 3 + 64 : (1u << 20);
    int rc = 0;
    if (s2s_buf_reserve(&f.w, first, err) < 0) {
        FLAC__stream_decoder_delete(d);
        return S2S_ENOMEM;
    }
    f.w.len = 44;
    if (FLAC__stream_decoder_init_stream(d, dec_read, NULL, NULL, NULL, NULL, dec_write, dec_meta,
                                         dec_error, &f) != FLAC__STREAM_DECODER_INIT_STATUS_OK) {
        rc = s2s_err_set(err, S2S_ENOMEM, "FLAC decode: cannot start the decoder");
    } else {
        FLAC__bool ok = FLAC__stream_decoder_process_until_end_of_stream(d);
        FLAC__StreamDecoderState st = FLAC__stream_decoder_get_state(d);
        if (f.fault == 2)
            rc = s2s_err_set(err, S2S_ENOMEM, "FLAC decode: out of memory");
        else if (f.fault)
            rc = s2s_err_set(err, S2S_EFORMAT, "FLAC data damaged: %s", f.why);
        else if (!ok || st != FLAC__STREAM_DECODER_END_OF_STREAM)
            rc = s2s_err_set(err, S2S_EFORMAT, "FLAC data damaged: %s after %llu samples",
                             FLAC__StreamDecoderStateString[st], (unsigned long long)f.got);
        else if (!f.have_info)
            rc = s2s_err_set(err, S2S_EFORMAT, "FLAC data damaged: no STREAMINFO");
        else if (f.bits < 4 || f.bits > 24)
            rc = s2s_err_set(err, S2S_EUNSUP, "%u-bit FLAC is not supported (4-24 bits)", f.bits);
        else if (f.rate == 0)
            rc = s2s_err_set(err, S2S_EUNSUP, "FLAC stream without a sample rate");
        else if (f.total && f.got != f.total)
            rc = s2s_err_set(err, S2S_EFORMAT, "FLAC data damaged: decoded %llu of %llu frames",
                             (unsigned long long)f.got, (unsigned long long)f.total);
        else if (f.pos != n)
            rc = s2s_err_set(err, S2S_EFORMAT, "FLAC data damaged: %zu bytes after the stream",
                             n - f.pos);
    }
    FLAC__stream_decoder_finish(d);
    FLAC__stream_decoder_delete(d);
    if (rc < 0) {
        s2s_buf_free(&f.w);
        return rc;
    }
    if (f.w.len + 1 > f.w.cap && s2s_buf_reserve(&f.w, 1, err) < 0) {
        s2s_buf_free(&f.w);
        return S2S_ENOMEM;
    }
    uint32_t bytes = (uint32_t)(f.w.len - 44);
    unsigned char *w = f.w.data;
    memcpy(w, "RIFF", 4);
    le32(w + 4, 36 + bytes);
    memcpy(w + 8, "WAVEfmt ", 8);
    le32(w + 16, 16);
    le16(w + 20, 1);
    le16(w + 22, f.channels);
    le32(w + 24, f.rate);
    le32(w + 28, f.rate * f.channels * f.obps);
    le16(w + 32, f.channels * f.obps);
    le16(w + 34, f.obps * 8);
    memcpy(w + 36, "data", 4);
    le32(w + 40, bytes);
    w[f.w.len] = 0;
    *out = s2s_buf_steal(&f.w, out_n);
    return 0;
}

/* ---- packer ------------------------------------------------------------------------------- */

void s2s_pack_opts_init(s2s_pack_opts *o) {
    memset(o, 0, sizeof *o);
    o->per_shard = 1000;
    o->gzip_level = 6;
    o->flac_level = 0;
}

int s2s_pack_pattern_check(const char *pattern, s2s_err *err) {
    if (!pattern || !*pattern) return s2s_err_set(err, S2S_EINVAL, "empty shard name pattern");
    int convs = 0;
    for (const char *p = pattern; *p; p++) {
        if (*p != '%') continue;
        if (p[1] == '%') {
            p++;
            continue;
        }
        const char *q = p + 1;
        while (*q == '0')
            q++;
        int width = 0;
        while (*q >= '0' && *q <= '9')
            width = width * 10 + (*q++ - '0');
        if (*q != 'd' || width > 20)
            return s2s_err_set(err, S2S_EINVAL,
                               "pattern \"%s\": only %%d, %%0Nd and %%%% are allowed", pattern);
        convs++;
        p = q;
    }
    if (convs != 1)
        return s2s_err_set(err, S2S_EINVAL,
                           "pattern \"%s\" needs exactly one %%d (such as %%06d) for the shard "
                           "number",
                           pattern);
    size_t n = strlen(pattern);
    if (n < 4 || strcmp(pattern + n - 4, ".tar") != 0)
        return s2s_err_set(err, S2S_EINVAL, "pattern \"%s\" must end in .tar", pattern);
    return 0;
}

/* Codec state of one compression job, reused from sample to sample. The packer has two, used
 * by turns: sample i compresses on the worker thread while sample i-1 is joined, so the job
 * of sample i-2, the last user of the same context, has ended. */
typedef struct pctx {
    gz_ctx gz;
    flac_enc fe;
} pctx;

typedef struct committed {
    char **paths;
    size_t n, cap;
} committed;

struct s2s_packer {
    s2s_pack_opts o;
    char *pattern, *dir;
    /* current shard */
    s2s_ofile *shard_of, *idx_of;
    s2s_tar_writer *tw;
    char *shard_path;
    FILE *idx_body; /* index lines after the header, buffered until the shard is complete */
    char *idx_body_buf;
    size_t idx_body_len;
    uint64_t shard_samples, shard_members, shard_pairs;
    char *first_key;
    /* totals */
    uint64_t n_shards, n_samples, n_members, n_bytes;
    json_t *shards;         /* dataset.json "shards" */
    json_t *counts;         /* task -> lang -> {samples, pairs} */
    json_t *prov;           /* array of {tool, version, params, samples} */
    json_t *prov_ix;        /* dumps(record) -> index in prov */
    committed done;         /* files committed, removed again by abort */
    struct pjob *inflight;  /* sample being compressed on the worker thread */
    struct pworker *worker; /* the compression thread (started with the first sample) */
    pctx cx[2];             /* codec state, by turns (pctx) */
    unsigned cx_turn;
    char *part;
    FILE *hfp;           /* the shard as the tar writer sees it: hashes, then writes */
    unsigned char *hbuf; /* hfp's buffer (HBUF bytes; glibc ignores a size without one) */
    s2s_sha256 sha;
    uint64_t shard_bytes;
};

static int committed_add(committed *c, const char *path, s2s_err *err) {
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 16;
        char **np = realloc(c->paths, nc * sizeof *np);
        if (!np) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
        c->paths = np;
        c->cap = nc;
    }
    c->paths[c->n] = strdup(path);
    if (!c->paths[c->n]) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    c->n++;
    return 0;
}

s2s_packer *s2s_packer_open(const s2s_pack_opts *o, s2s_err *err) {
    if (s2s_pack_pattern_check(o->pattern, err) < 0) return NULL;
    if (o->gzip_level < 0 || o->gzip_level > 9) {
        s2s_err_set(err, S2S_EINVAL, "--gzip-level %d out of range 0-9", o->gzip_level);
        return NULL;
    }
    if (o->flac_level < 0 || o->flac_level > 8) {
        s2s_err_set(err, S2S_EINVAL, "--flac-level %d out of range 0-8", o->flac_level);
        return NULL;
    }
    s2s_packer *p = calloc(1, sizeof *p);
    if (!p) goto nomem;
    p->cx[0].gz.level = p->cx[1].gz.level = -1;
    p->o = *o;
    p->pattern = strdup(o->pattern);
    if (!p->pattern) goto nomem;
    p->o.pattern = p->pattern;
    if (o->part && !(p->part = strdup(o->part))) goto nomem;
    p->o.part = p->part;
    const char *slash = strrchr(o->pattern, '/');
    p->dir = slash ? strndup(o->pattern, (size_t)(slash - o->pattern) + (slash == o->pattern))
                   : strdup(".");
    if (!p->dir) goto nomem;
    struct stat st;
    if (stat(p->dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        s2s_err_set(err, S2S_EIO, "%s: output directory does not exist", p->dir);
        s2s_packer_abort(p);
        return NULL;
    }
    p->shards = json_array();
    p->counts = json_object();
    p->prov = json_array();
    p->prov_ix = json_object();
    if (!p->shards || !p->counts || !p->prov || !p->prov_ix) goto nomem;
    return p;
nomem:
    s2s_err_set(err, S2S_ENOMEM, "out of memory");
    s2s_packer_abort(p);
    return NULL;
}

uint64_t s2s_packer_shards(const s2s_packer *p) {
    return p->n_shards + (p->tw ? 1 : 0);
}

uint64_t s2s_packer_samples(const s2s_packer *p) {
    return p->n_samples;
}

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* The SHA-256 of a shard is computed on the bytes as they are written (no second read). The
 * bytes go straight to the file's descriptor, in hfp's whole buffers (1 MiB): nothing else
 * writes to that FILE, whose own 4 KiB buffer split every write in two system calls. */
#define HBUF (1u << 20)
static ssize_t hash_write(void *c, const char *buf, size_t n) {
    s2s_packer *p = c;
    int fd = fileno(s2s_ofile_fp(p->shard_of));
    for (size_t done = 0; done < n;) {
        ssize_t w = write(fd, buf + done, n - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1; /* errno says why (ENOSPC, EIO...) */
        done += (size_t)w;
    }
    s2s_ofile_wrote(p->shard_of, n);
    s2s_sha256_update(&p->sha, buf, n);
    p->shard_bytes += n;
    return (ssize_t)n;
}

static int hash_close(void *c) {
    (void)c;
    return 0;
}

static int shard_start(s2s_packer *p, s2s_err *err) {
    uint64_t no = p->n_shards;
    if (no > INT_MAX) return s2s_err_set(err, S2S_EINVAL, "too many shards");
    size_t n = strlen(p->pattern) + 32;
    p->shard_path = malloc(n);
    if (!p->shard_path) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    snprintf(p->shard_path, n, p->pattern, (int)no); /* pattern checked: one %d */
#pragma GCC diagnostic pop
    p->shard_of = s2s_ofile_open(p->shard_path, err);
    if (!p->shard_of) return err ? err->code : S2S_EIO;
    cookie_io_functions_t io = {NULL, hash_write, NULL, hash_close};
    s2s_sha256_init(&p->sha);
    p->shard_bytes = 0;
    if (!(p->hfp = fopencookie(p, "w", io))) return s2s_err_errno(err, "%s", p->shard_path);
    if (!p->hbuf && !(p->hbuf = malloc(HBUF))) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    setvbuf(p->hfp, (char *)p->hbuf, _IOFBF, HBUF);
    p->tw = s2s_tar_writer_new(p->hfp, p->shard_path, err);
    if (!p->tw) return err ? err->code : S2S_ENOMEM;
    p->idx_body = open_memstream(&p->idx_body_buf, &p->idx_body_len);
    if (!p->idx_body) return s2s_err_errno(err, "index buffer");
    p->shard_samples = p->shard_members = p->shard_pairs = 0;
    free(p->first_key);
    p->first_key = NULL;
    return 0;
}

/* Ends the current shard: end marker, commit, SHA-256, then the index. */
static int shard_finish(s2s_packer *p, s2s_err *err) {
    int rc = s2s_tar_writer_finish(p->tw, err);
    p->tw = NULL;
    if (rc < 0) return rc;
    FILE *h = p->hfp;
    p->hfp = NULL;
    if (fflush(h) != 0) {
        fclose(h);
        return s2s_err_errno(err, "%s: write failed", p->shard_path);
    }
    fclose(h);
    rc = s2s_ofile_commit(p->shard_of, err);
    p->shard_of = NULL;
    if (rc < 0) return rc;
    if ((rc = committed_add(&p->done, p->shard_path, err)) < 0) return rc;
    char sha[65];
    unsigned char dig[32];
    static const char hx[] = "0123456789abcdef";
    s2s_sha256_final(&p->sha, dig);
    for (int i = 0; i < 32; i++) {
        sha[2 * i] = hx[dig[i] >> 4];
        sha[2 * i + 1] = hx[dig[i] & 15];
    }
    sha[64] = 0;
    struct stat st;
    if (stat(p->shard_path, &st) != 0) return s2s_err_errno(err, "%s", p->shard_path);
    if ((uint64_t)st.st_size != p->shard_bytes)
        return s2s_err_set(err, S2S_EIO, "%s: %llu bytes on disk, %llu written", p->shard_path,
                           (unsigned long long)st.st_size, (unsigned long long)p->shard_bytes);
    if (fclose(p->idx_body) != 0) {
        p->idx_body = NULL;
        return s2s_err_errno(err, "index buffer");
    }
    p->idx_body = NULL;

    char *ipath = s2s_index_path(p->shard_path);
    if (!ipath) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    p->idx_of = s2s_ofile_open(ipath, err);
    if (!p->idx_of) {
        free(ipath);
        return err ? err->code : S2S_EIO;
    }
    FILE *f = s2s_ofile_fp(p->idx_of);
    fprintf(f, "s2s-shard-index 1\n");
    fprintf(f, "shard\t%s\t%llu\t%s\n", base_name(p->shard_path), (unsigned long long)st.st_size,
            sha);
    fwrite(p->idx_body_buf, 1, p->idx_body_len, f);
    fprintf(f, "end\t%llu\t%llu\n", (unsigned long long)p->shard_samples,
            (unsigned long long)p->shard_members);
    rc = s2s_ofile_commit(p->idx_of, err);
    p->idx_of = NULL;
    free(p->idx_body_buf);
    p->idx_body_buf = NULL;
    p->idx_body_len = 0;
    char isha[65];
    if (rc == 0) rc = committed_add(&p->done, ipath, err);
    if (rc == 0) rc = s2s_sha256_file(ipath, isha, err);
    free(ipath);
    if (rc < 0) return rc;

    json_t *js = json_pack(
        "{s:s, s:I, s:s, s:s, s:s, s:I, s:I, s:I, s:s}", "name", base_name(p->shard_path), "size",
        (json_int_t)st.st_size, "sha256", sha, "index", "", "index_sha256", isha, "samples",
        (json_int_t)p->shard_samples, "members", (json_int_t)p->shard_members, "pairs",
        (json_int_t)p->shard_pairs, "first_key", p->first_key ? p->first_key : "");
    if (!js) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    char *iname = s2s_index_path(base_name(p->shard_path));
    if (!iname) {
        json_decref(js);
        return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    }
    json_object_set_new(js, "index", json_string(iname));
    free(iname);
    json_array_append_new(p->shards, js);
    p->n_shards++;
    p->n_bytes += (uint64_t)st.st_size;
    free(p->shard_path);
    p->shard_path = NULL;
    return 0;
}

/* A compressed member ready to be written. */
typedef struct pmember {
    char *name;
    unsigned char *data;
    size_t size;
} pmember;

static void pmembers_free(pmember *m, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(m[i].name);
        free(m[i].data);
    }
    free(m);
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

/* Stored name and bytes for one stream member. Members stored as they are take *datap (left
 * NULL) instead of a copy. */
static int compress_member(const s2s_pack_opts *o, pctx *cx, const char *key, const char *suffix,
                           unsigned char **datap, size_t size, pmember *out, s2s_err *err) {
    const unsigned char *data = *datap;
    size_t kl = strlen(key), sl = strlen(suffix);
    out->name = malloc(kl + sl + 8);
    if (!out->name) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    int rc = 0;
    if (ends_with(suffix, ".wav")) {
        sprintf(out->name, "%s.%.*s.flac", key, (int)(sl - 4), suffix);
        s2s_buf ob = {0};
        rc = flac_encode_wav(&cx->fe, data, size, o->flac_level, &ob, err);
        if (rc == 0)
            out->data = s2s_buf_steal(&ob, &out->size);
        else
            s2s_buf_free(&ob);
    } else if (ends_with(suffix, ".flac")) {
        if (size < 4 || memcmp(data, "fLaC", 4) != 0)
            return s2s_err_set(err, S2S_EDATA, "member %s.%s is not FLAC data", key, suffix);
        sprintf(out->name, "%s.%s", key, suffix);
        out->data = *datap; /* (NULL when size is 0: tar writes no data then) */
        *datap = NULL;
        out->size = size;
    } else if (strcmp(suffix, "json") == 0 || ends_with(suffix, ".json") ||
               strcmp(suffix, "units") == 0 || ends_with(suffix, ".units")) {
        sprintf(out->name, "%s.%s.gz", key, suffix);
        rc = gzip_ctx(&cx->gz, data, size, o->gzip_level, &out->data, &out->size, err);
    } else {
        sprintf(out->name, "%s.%s", key, suffix);
        out->data = *datap;
        *datap = NULL;
        out->size = size;
    }
    if (rc < 0) s2s_err_prefix(err, "sample %s, member %s.%s: ", key, key, suffix);
    return rc;
}

/* Bytes a member takes in the tar (headers + padded data), as tar.c writes it. */
static uint64_t tar_cost(const pmember *m) {
    uint64_t c = 512 + ((m->size + 511) / 512) * 512;
    if (strlen(m->name) > 100) c += 1024; /* pax header + its data block */
    return c;
}

static int count_item(s2s_packer *p, const json_t *item, uint64_t *pairs, s2s_err *err) {
    const char *task = s2s_item_task(item), *lang = s2s_item_lang(item);
    if (!task) task = "unknown";
    if (!lang) lang = "und";
    size_t nc = s2s_item_n_candidates(item);
    uint64_t np = strcmp(task, "cloze") == 0 ? 1 : nc > 0 ? nc - 1 : 0;
    *pairs = np;
    json_t *t = json_object_get(p->counts, task);
    if (!t) {
        t = json_object();
        if (!t || json_object_set_new(p->counts, task, t) < 0)
            return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    }
    json_t *l = json_object_get(t, lang);
    if (!l) {
        l = json_pack("{s:I, s:I}", "samples", (json_int_t)0, "pairs", (json_int_t)0);
        if (!l || json_object_set_new(t, lang, l) < 0)
            return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    }
    json_object_set_new(l, "samples",
                        json_integer(json_integer_value(json_object_get(l, "samples")) + 1));
    json_object_set_new(
        l, "pairs", json_integer(json_integer_value(json_object_get(l, "pairs")) + (json_int_t)np));
    /* provenance: distinct records (tool, version, params), first seen first, with counts */
    json_t *pv = json_object_get(item, "provenance");
    size_t i;
    json_t *rec;
    json_array_foreach(pv, i, rec) {
        char *k = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS);
        if (!k) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
        json_t *ix = json_object_get(p->prov_ix, k);
        if (ix) {
            json_t *r = json_array_get(p->prov, (size_t)json_integer_value(ix));
            json_object_set_new(
                r, "samples", json_integer(json_integer_value(json_object_get(r, "samples")) + 1));
        } else if (json_array_size(p->prov) < 256) {
            json_t *r = json_deep_copy(rec);
            if (!json_is_object(r)) {
                json_decref(r);
                r = json_pack("{s:O}", "record", rec);
            }
            if (!r) {
                free(k);
                return s2s_err_set(err, S2S_ENOMEM, "out of memory");
            }
            json_object_set_new(r, "samples", json_integer(1));
            json_object_set_new(p->prov_ix, k, json_integer((json_int_t)json_array_size(p->prov)));
            json_array_append_new(p->prov, r);
        }
        free(k);
    }
    return 0;
}

/* One sample on its way into a shard. Compression (FLAC, gzip: two thirds of the CPU time of a
 * pack) runs on a worker thread for sample i while the main thread reads sample i+1 and writes
 * sample i-1 (tar, CRC-32, SHA-256): the output order, hence the bytes, do not change. Memory
 * holds at most two samples. */
typedef struct pjob {
    char *key;
    size_t n_in;
    char **in_suffix; /* [0] = "json" */
    unsigned char **in_data;
    size_t *in_size;
    pmember *m; /* n_in outputs; name NULL = skipped */
    uint64_t pairs;
    const s2s_pack_opts *o;
    pctx *cx;
    int rc;
    s2s_err err;
    struct pworker *worker; /* running there; NULL = done in the caller's thread */
} pjob;

/* One compression thread for the whole pack, fed one job at a time (a thread per sample cost
 * a clone, a fresh 8 MiB stack mapping and its page faults per sample). */
typedef struct pworker {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pjob *job; /* the job to run or running; NULL when idle */
    int quit;
} pworker;

static void *pjob_run(void *arg);

static void *pworker_main(void *arg) {
    pworker *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->job && !w->quit)
            pthread_cond_wait(&w->cv, &w->mu);
        if (!w->job) break; /* quit */
        pjob *j = w->job;
        pthread_mutex_unlock(&w->mu);
        pjob_run(j);
        pthread_mutex_lock(&w->mu);
        w->job = NULL;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* A started worker, or NULL (no thread: jobs then run in the caller's thread). */
static pworker *pworker_start(void) {
    pworker *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    if (pthread_mutex_init(&w->mu, NULL) != 0) {
        free(w);
        return NULL;
    }
    if (pthread_cond_init(&w->cv, NULL) != 0) {
        pthread_mutex_destroy(&w->mu);
        free(w);
        return NULL;
    }
    if (pthread_create(&w->th, NULL, pworker_main, w) != 0) {
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        free(w);
        return NULL;
    }
    return w;
}

static void pworker_stop(pworker *w) {
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    while (w->job) /* (the packer waits for its job before stopping; this is a safety net) */
        pthread_cond_wait(&w->cv, &w->mu);
    w->quit = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->th, NULL);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

static void pjob_free(pjob *j) {
    if (!j) return;
    for (size_t i = 0; i < j->n_in; i++) {
        free(j->in_suffix[i]);
        free(j->in_data[i]);
    }
    free(j->in_suffix);
    free(j->in_data);
    free(j->in_size);
    if (j->m) pmembers_free(j->m, j->n_in);
    free(j->key);
    free(j);
}

static void *pjob_run(void *arg) {
    pjob *j = arg;
    s2s_err_clear(&j->err);
    j->rc = 0;
    for (size_t i = 0; i < j->n_in && j->rc == 0; i++) {
        j->rc = compress_member(j->o, j->cx, j->key, j->in_suffix[i], &j->in_data[i], j->in_size[i],
                                &j->m[i], &j->err);
        /* the input is not needed any more */
        free(j->in_data[i]);
        j->in_data[i] = NULL;
        for (size_t k = 0; j->rc == 0 && k < i; k++)
            if (strcmp(j->m[k].name, j->m[i].name) == 0)
                j->rc = s2s_err_set(&j->err, S2S_EDATA,
                                    "sample %s: members collide as %s in the shard (both a .wav "
                                    "and a .flac of the same name?)",
                                    j->key, j->m[k].name);
    }
    return NULL;
}

static int pjob_wait(pjob *j, s2s_err *err) {
    pworker *w = j->worker;
    if (w) {
        pthread_mutex_lock(&w->mu);
        while (w->job == j)
            pthread_cond_wait(&w->cv, &w->mu);
        pthread_mutex_unlock(&w->mu);
        j->worker = NULL;
    }
    if (j->rc < 0 && err) *err = j->err;
    return j->rc;
}

/* Main thread: the compressed sample into the current (or a new) shard and its index. */
static int pjob_write(s2s_packer *p, pjob *j, s2s_err *err) {
    int rc = 0;
    uint64_t cost = 0;
    for (size_t i = 0; i < j->n_in; i++)
        cost += tar_cost(&j->m[i]);
    /* roll to a new shard before this sample if it would overflow the current one */
    if (p->tw && ((p->o.per_shard && p->shard_samples >= p->o.per_shard) ||
                  (p->o.max_bytes && p->shard_samples > 0 &&
                   s2s_tar_writer_offset(p->tw) + cost + 1024 > p->o.max_bytes))) {
        if ((rc = shard_finish(p, err)) < 0) return rc;
    }
    if (!p->tw && (rc = shard_start(p, err)) < 0) return rc;
    fprintf(p->idx_body, "sample\t%s\t%zu\n", j->key, j->n_in);
    for (size_t i = 0; i < j->n_in; i++) {
        pmember *m = &j->m[i];
        uint64_t ho = 0, dof = 0;
        rc = s2s_tar_write(p->tw, m->name, m->data, m->size, &ho, &dof, err);
        if (rc < 0) return rc;
        fprintf(p->idx_body, "member\t%s\t%llu\t%llu\t%zu\t%08x\n", m->name, (unsigned long long)ho,
                (unsigned long long)dof, m->size, s2s_crc32(m->data, m->size));
        p->shard_members++;
        p->n_members++;
    }
    if (!p->first_key && !(p->first_key = strdup(j->key)))
        return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    p->shard_samples++;
    p->shard_pairs += j->pairs;
    p->n_samples++;
    return 0;
}

/* Waits for the sample in flight and writes it. */
static int flush_inflight(s2s_packer *p, s2s_err *err) {
    pjob *j = p->inflight;
    if (!j) return 0;
    p->inflight = NULL;
    int rc = pjob_wait(j, err);
    if (rc == 0) rc = pjob_write(p, j, err);
    pjob_free(j);
    return rc;
}

static int packer_put(s2s_packer *p, s2s_sample *s, int steal, s2s_err *err);

int s2s_packer_put(s2s_packer *p, const s2s_sample *s, s2s_err *err) {
    return packer_put(p, (s2s_sample *)s, 0, err); /* steal = 0: s is not modified */
}

int s2s_packer_put_steal(s2s_packer *p, s2s_sample *s, s2s_err *err) {
    return packer_put(p, s, 1, err);
}

int s2s_packer_flush(s2s_packer *p, s2s_err *err) {
    return flush_inflight(p, err);
}

static int packer_put(s2s_packer *p, s2s_sample *s, int steal, s2s_err *err) {
    if (!s2s_id_valid(s->key))
        return s2s_err_set(err, S2S_EDATA,
                           "sample key \"%.80s\" is not valid (letters, digits, '_', '-'; no dots: "
                           "WebDataset splits keys at the first dot)",
                           s->key);
    if (!s->item) return s2s_err_set(err, S2S_EDATA, "sample %s has no %s.json", s->key, s->key);
    pjob *j = calloc(1, sizeof *j);
    size_t cap = s->n_members + 1;
    if (!j) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    j->o = &p->o;
    j->cx = &p->cx[p->cx_turn++ & 1];
    j->key = strdup(s->key);
    j->in_suffix = calloc(cap, sizeof *j->in_suffix);
    j->in_data = calloc(cap, sizeof *j->in_data);
    j->in_size = calloc(cap, sizeof *j->in_size);
    j->m = calloc(cap, sizeof *j->m);
    int rc = 0;
    if (!j->key || !j->in_suffix || !j->in_data || !j->in_size || !j->m) goto nomem;
    j->n_in = cap; /* for pjob_free: every slot is NULL or owned */
    char *js = s2s_item_dumps(s->item);
    if (!js) goto nomem;
    size_t jl = strlen(js);
    /* one line of compact JSON + "\n", as the stream writer stores KEY.json */
    unsigned char *line = malloc(jl + 2);
    if (!line) {
        free(js);
        goto nomem;
    }
    memcpy(line, js, jl);
    line[jl] = '\n';
    line[jl + 1] = 0;
    free(js);
    size_t n = 0;
    j->in_suffix[n] = strdup("json");
    j->in_data[n] = line;
    j->in_size[n] = jl + 1;
    if (!j->in_suffix[n++]) goto nomem;
    for (size_t i = 0; i < s->n_members; i++) {
        const s2s_member *sm = &s->members[i];
        if (strcmp(sm->suffix, "json") == 0) continue;
        j->in_suffix[n] = strdup(sm->suffix);
        j->in_size[n] = sm->size;
        if (steal && sm->data) { /* saves a copy of every member (1 GB for 8 h of speech) */
            j->in_data[n] = sm->data;
            s->members[i].data = NULL;
            s->members[i].size = 0;
        } else if ((j->in_data[n] = malloc(sm->size ? sm->size : 1)) && sm->data) {
            memcpy(j->in_data[n], sm->data, sm->size); /* (data is NULL when size is 0) */
        }
        n++;
        if (!j->in_suffix[n - 1] || !j->in_data[n - 1]) goto nomem;
    }
    /* shrink to the members actually used (slots past n are NULL) */
    j->n_in = n;
    if ((rc = count_item(p, s->item, &j->pairs, err)) < 0) {
        pjob_free(j);
        return rc;
    }
    /* wait for the previous sample's compression, start this sample's on the worker, then
     * write the previous one meanwhile */
    pjob *prev = p->inflight;
    p->inflight = NULL;
    rc = prev ? pjob_wait(prev, err) : 0;
    if (!p->worker) p->worker = pworker_start();
    if (p->worker) { /* idle now */
        pthread_mutex_lock(&p->worker->mu);
        p->worker->job = j;
        j->worker = p->worker;
        pthread_cond_broadcast(&p->worker->cv);
        pthread_mutex_unlock(&p->worker->mu);
    } else {
        pjob_run(j);
    }
    if (rc == 0 && prev) rc = pjob_write(p, prev, err);
    pjob_free(prev);
    if (rc < 0) {
        pjob_wait(j, NULL);
        pjob_free(j);
        return rc;
    }
    p->inflight = j;
    return 0;
nomem:
    pjob_free(j);
    return s2s_err_set(err, S2S_ENOMEM, "out of memory");
}

int s2s_packer_close(s2s_packer *p, s2s_err *err) {
    int rc = flush_inflight(p, err);
    if (rc == 0 && p->tw) rc = shard_finish(p, err);
    if (rc < 0) {
        s2s_packer_abort(p);
        return rc;
    }
    uint64_t pairs = 0;
    size_t i;
    json_t *sh;
    json_array_foreach(p->shards, i, sh) pairs +=
        (uint64_t)json_integer_value(json_object_get(sh, "pairs"));
    char pat[512];
    snprintf(pat, sizeof pat, "%s", base_name(p->pattern));
    json_t *ds = json_pack(
        "{s:s, s:i, s:I, s:I, s:I, s:I, s:O, s:O, s:{s:s, s:s, s:{s:s, s:I, s:I, s:i, s:i}}, s:O}",
        "format", "s2s-shards", "format_version", 1, "shard_count", (json_int_t)p->n_shards,
        "samples", (json_int_t)p->n_samples, "members", (json_int_t)p->n_members, "pairs",
        (json_int_t)pairs, "counts", p->counts, "shards", p->shards, "build", "tool", "s2s-pack",
        "version", S2S_VERSION, "params", "pattern", pat, "per_shard", (json_int_t)p->o.per_shard,
        "max_bytes", (json_int_t)p->o.max_bytes, "gzip_level", p->o.gzip_level, "flac_level",
        p->o.flac_level, "provenance", p->prov);
    if (!ds) {
        s2s_err_set(err, S2S_ENOMEM, "out of memory");
        s2s_packer_abort(p);
        return S2S_ENOMEM;
    }
    if (p->part)
        json_object_set_new(json_object_get(json_object_get(ds, "build"), "params"), "part",
                            json_string(p->part));
    size_t dl = strlen(p->dir) + 16;
    char *dpath = malloc(dl);
    if (!dpath) {
        json_decref(ds);
        s2s_packer_abort(p);
        return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    }
    snprintf(dpath, dl, "%s/dataset.json", p->dir);
    /* sealed, 2-space indent, insertion order: diff-friendly and byte-stable */
    rc = s2s_dataset_write(dpath, ds, err);
    json_decref(ds);
    free(dpath);
    if (rc < 0) {
        s2s_packer_abort(p);
        return rc;
    }
    /* success: forget the committed list so that free does not remove anything */
    for (size_t k = 0; k < p->done.n; k++)
        free(p->done.paths[k]);
    p->done.n = 0;
    s2s_packer_abort(p);
    return 0;
}

void s2s_packer_abort(s2s_packer *p) {
    if (!p) return;
    if (p->inflight) {
        pjob_wait(p->inflight, NULL);
        pjob_free(p->inflight);
        p->inflight = NULL;
    }
    pworker_stop(p->worker);
    p->worker = NULL;
    s2s_tar_writer_free(p->tw);
    if (p->hfp) fclose(p->hfp);
    s2s_ofile_abort(p->shard_of);
    s2s_ofile_abort(p->idx_of);
    if (p->idx_body) fclose(p->idx_body);
    free(p->idx_body_buf);
    for (size_t k = 0; k < p->done.n; k++) {
        unlink(p->done.paths[k]);
        free(p->done.paths[k]);
    }
    free(p->done.paths);
    json_decref(p->shards);
    json_decref(p->counts);
    json_decref(p->prov);
    json_decref(p->prov_ix);
    free(p->first_key);
    free(p->shard_path);
    free(p->pattern);
    free(p->part);
    free(p->dir);
    free(p->hbuf); /* after hfp's fclose above */
    for (int k = 0; k < 2; k++) {
        gz_ctx_free(&p->cx[k].gz);
        flac_enc_free(&p->cx[k].fe);
    }
    free(p);
}

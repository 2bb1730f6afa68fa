/* shard.c — member codecs (gzip, FLAC) and the shard writer s2s_packer (s2s/shard.h).
 * The format is specified in docs/shards.md and docs/shard-index.md. */
#define _GNU_SOURCE /* fopencookie */
#include "s2s/shard.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sndfile.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "s2s/item.h"
#include "s2s/tar.h"
#include "s2s/util.h"

/* ---- gzip --------------------------------------------------------------------------------- */

uint32_t s2s_crc32(const void *p, size_t n) {
    uLong c = crc32(0L, Z_NULL, 0);
    const unsigned char *b = p;
    while (n > 0) {
        uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        c = crc32(c, b, k);
        b += k;
        n -= k;
    }
    return (uint32_t)c;
}

int s2s_gzip(const void *in, size_t n, int level, unsigned char **out, size_t *out_n,
             s2s_err *err) {
    *out = NULL;
    *out_n = 0;
    if (level < 0 || level > 9)
        return s2s_err_set(err, S2S_EINVAL, "gzip level %d out of range 0-9", level);
    z_stream z;
    memset(&z, 0, sizeof z);
    /* windowBits 15 + 16: gzip wrapper; memLevel 8 as gzip(1) uses */
    if (deflateInit2(&z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return s2s_err_set(err, S2S_ENOMEM, "gzip: deflateInit2 failed");
    gz_header h;
    memset(&h, 0, sizeof h);
    h.os = 255; /* "unknown": the same bytes on every platform (zlib's default depends on it) */
    h.time = 0;
    deflateSetHeader(&z, &h);
    uLong bound = deflateBound(&z, (uLong)n) + 32;
    unsigned char *buf = malloc(bound);
    if (!buf) {
        deflateEnd(&z);
        return s2s_err_set(err, S2S_ENOMEM, "gzip: out of memory (%lu bytes)",
                           (unsigned long)bound);
    }
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)n;
    z.next_out = buf;
    z.avail_out = (uInt)bound;
    int rc = deflate(&z, Z_FINISH);
    if (rc != Z_STREAM_END) {
        deflateEnd(&z);
        free(buf);
        return s2s_err_set(err, S2S_EIO, "gzip: deflate failed (%d)", rc);
    }
    *out_n = z.total_out;
    *out = buf;
    deflateEnd(&z);
    return 0;
}

int s2s_gunzip(const void *in, size_t n, unsigned char **out, size_t *out_n, s2s_err *err) {
    *out = NULL;
    *out_n = 0;
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

/* ---- FLAC through libsndfile virtual I/O --------------------------------------------------- */
/* When s2s/audio.h lands, these two helpers can become calls into it. */

typedef struct vio {
    const unsigned char *rd; /* read-only source, or NULL when writing */
    s2s_buf *wr;
    sf_count_t len, pos;
} vio;

static sf_count_t vio_len(void *u) {
    vio *v = u;
    return v->rd ? v->len : (sf_count_t)v->wr->len;
}

static sf_count_t vio_seek(sf_count_t off, int whence, void *u) {
    vio *v = u;
    sf_count_t len = vio_len(u), np;
    switch (whence) {
    case SEEK_SET:
        np = off;
        break;
    case SEEK_CUR:
        np = v->pos + off;
        break;
    default:
        np = len + off;
        break;
    }
    if (np < 0) return -1;
    v->pos = np;
    return np;
}

static sf_count_t vio_read(void *p, sf_count_t n, void *u) {
    vio *v = u;
    const unsigned char *src = v->rd ? v->rd : v->wr->data;
    sf_count_t len = vio_len(u);
    if (v->pos >= len) return 0;
    if (n > len - v->pos) n = len - v->pos;
    memcpy(p, src + v->pos, (size_t)n);
    v->pos += n;
    return n;
}

static sf_count_t vio_write(const void *p, sf_count_t n, void *u) {
    vio *v = u;
    if (!v->wr) return 0;
    size_t end = (size_t)(v->pos + n);
    if (end > v->wr->len) {
        if (s2s_buf_reserve(v->wr, end - v->wr->len, NULL) < 0) return 0;
        memset(v->wr->data + v->wr->len, 0, end - v->wr->len);
        v->wr->len = end;
    }
    memcpy(v->wr->data + v->pos, p, (size_t)n);
    v->pos += n;
    return n;
}

static sf_count_t vio_tell(void *u) {
    return ((vio *)u)->pos;
}

static SF_VIRTUAL_IO vio_ops = {vio_len, vio_seek, vio_read, vio_write, vio_tell};

int s2s_flac_encode(const void *wav, size_t n, int level, unsigned char **out, size_t *out_n,
                    s2s_err *err) {
    *out = NULL;
    *out_n = 0;
    if (level < 0 || level > 8)
        return s2s_err_set(err, S2S_EINVAL, "FLAC level %d out of range 0-8", level);
    vio in = {wav, NULL, (sf_count_t)n, 0};
    SF_INFO ii;
    memset(&ii, 0, sizeof ii);
    SNDFILE *si = sf_open_virtual(&vio_ops, SFM_READ, &ii, &in);
    if (!si) return s2s_err_set(err, S2S_EFORMAT, "not a readable WAV: %s", sf_strerror(NULL));
    int sub = ii.format & SF_FORMAT_SUBMASK, osub;
    if (sub == SF_FORMAT_PCM_16 || sub == SF_FORMAT_PCM_S8 || sub == SF_FORMAT_PCM_U8)
        osub = SF_FORMAT_PCM_16;
    else if (sub == SF_FORMAT_PCM_24)
        osub = SF_FORMAT_PCM_24;
    else {
        sf_close(si);
        return s2s_err_set(err, S2S_EUNSUP,
                           "WAV sample format 0x%x is not 8/16/24-bit PCM (FLAC stores integers)",
                           sub);
    }
    s2s_buf ob = {0};
    vio o = {NULL, &ob, 0, 0};
    SF_INFO oi;
    memset(&oi, 0, sizeof oi);
    oi.samplerate = ii.samplerate;
    oi.channels = ii.channels;
    oi.format = SF_FORMAT_FLAC | osub;
    SNDFILE *so = sf_open_virtual(&vio_ops, SFM_WRITE, &oi, &o);
    if (!so) {
        sf_close(si);
        return s2s_err_set(err, S2S_EUNSUP, "cannot open a FLAC encoder (%d Hz, %d channels): %s",
                           ii.samplerate, ii.channels, sf_strerror(NULL));
    }
    double q = level / 8.0;
    sf_command(so, SFC_SET_COMPRESSION_LEVEL, &q, sizeof q);
    int rc = 0;
    enum { CHUNK = 8192 };
    int *buf = malloc(sizeof(int) * CHUNK * (size_t)ii.channels);
    if (!buf) rc = s2s_err_set(err, S2S_ENOMEM, "FLAC: out of memory");
    sf_count_t total = 0;
    while (rc == 0) {
        sf_count_t k = sf_readf_int(si, buf, CHUNK);
        if (k <= 0) break;
        total += k;
        if (sf_writef_int(so, buf, k) != k)
            rc = s2s_err_set(err, S2S_EIO, "FLAC encoder failed: %s", sf_strerror(so));
    }
    if (rc == 0 && total != ii.frames)
        rc = s2s_err_set(err, S2S_EFORMAT, "WAV truncated: %lld of %lld frames", (long long)total,
                         (long long)ii.frames);
    free(buf);
    sf_close(si);
    if (sf_close(so) != 0 && rc == 0) rc = s2s_err_set(err, S2S_EIO, "FLAC encoder failed");
    if (rc < 0) {
        s2s_buf_free(&ob);
        return rc;
    }
    /* libsndfile writes nothing at all for 0 frames: refuse rather than store a non-FLAC */
    if (ob.len < 4 || memcmp(ob.data, "fLaC", 4) != 0) {
        s2s_buf_free(&ob);
        return s2s_err_set(err, S2S_EDATA, "%s",
                           total == 0 ? "empty audio (0 frames): nothing to encode"
                                      : "FLAC encoder produced no FLAC stream");
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

int s2s_flac_decode(const void *flac, size_t n, unsigned char **out, size_t *out_n, s2s_err *err) {
    *out = NULL;
    *out_n = 0;
    if (n < 4 || memcmp(flac, "fLaC", 4) != 0)
        return s2s_err_set(err, S2S_EFORMAT, "not FLAC data (no \"fLaC\" signature)");
    vio in = {flac, NULL, (sf_count_t)n, 0};
    SF_INFO ii;
    memset(&ii, 0, sizeof ii);
    SNDFILE *si = sf_open_virtual(&vio_ops, SFM_READ, &ii, &in);
    if (!si) return s2s_err_set(err, S2S_EFORMAT, "FLAC data unreadable: %s", sf_strerror(NULL));
    int sub = ii.format & SF_FORMAT_SUBMASK;
    unsigned bps = sub == SF_FORMAT_PCM_24 ? 3 : 2;
    uint64_t bytes = (uint64_t)ii.frames * (uint64_t)ii.channels * bps;
    if (ii.channels <= 0 || bytes > 0xffffffffULL - 64) {
        sf_close(si);
        return s2s_err_set(err, S2S_EUNSUP, "FLAC too long for a WAV (%lld frames)",
                           (long long)ii.frames);
    }
    /* The header's frame count is not trusted for the allocation (a 130-byte file may claim
     * gigabytes): start small and grow with what actually decodes. */
    size_t wcap = 44 + (bytes < (1u << 20) ? (size_t)bytes : (1u << 20)) + 1;
    unsigned char *w = malloc(wcap);
    int *buf = malloc(sizeof(int) * 8192 * (size_t)ii.channels);
    if (!w || !buf) {
        free(w);
        free(buf);
        sf_close(si);
        return s2s_err_set(err, S2S_ENOMEM, "FLAC decode: out of memory");
    }
    memcpy(w, "RIFF", 4);
    le32(w + 4, (uint32_t)(36 + bytes));
    memcpy(w + 8, "WAVEfmt ", 8);
    le32(w + 16, 16);
    le16(w + 20, 1);
    le16(w + 22, (unsigned)ii.channels);
    le32(w + 24, (uint32_t)ii.samplerate);
    le32(w + 28, (uint32_t)ii.samplerate * (uint32_t)ii.channels * bps);
    le16(w + 32, (unsigned)ii.channels * bps);
    le16(w + 34, bps * 8);
    memcpy(w + 36, "data", 4);
    le32(w + 40, (uint32_t)bytes);
    unsigned char *p = w + 44;
    sf_count_t got = 0;
    for (;;) {
        sf_count_t k = sf_readf_int(si, buf, 8192);
        if (k <= 0) break;
        if (got + k > ii.frames) k = ii.frames - got;
        size_t need = (size_t)(p - w) + (size_t)k * (size_t)ii.channels * bps + 1;
        if (need > wcap) {
            size_t nc = wcap;
            while (nc < need)
                nc *= 2;
            if (nc > 44 + (size_t)bytes + 1) nc = 44 + (size_t)bytes + 1;
            size_t off = (size_t)(p - w);
            unsigned char *nw = realloc(w, nc);
            if (!nw) {
                free(w);
                free(buf);
                sf_close(si);
                return s2s_err_set(err, S2S_ENOMEM, "FLAC decode: out of memory");
            }
            w = nw;
            wcap = nc;
            p = w + off;
        }
        for (sf_count_t i = 0; i < k * ii.channels; i++) {
            uint32_t v = (uint32_t)buf[i];
            if (bps == 2) {
                le16(p, (v >> 16) & 0xffff);
                p += 2;
            } else {
                p[0] = (v >> 8) & 255;
                p[1] = (v >> 16) & 255;
                p[2] = (v >> 24) & 255;
                p += 3;
            }
        }
        got += k;
        if (got >= ii.frames) break;
    }
    int errn = sf_error(si);
    sf_close(si);
    free(buf);
    if (got != ii.frames || errn) {
        free(w);
        return s2s_err_set(err, S2S_EFORMAT, "FLAC data damaged: decoded %lld of %lld frames",
                           (long long)got, (long long)ii.frames);
    }
    w[44 + bytes] = 0;
    *out = w;
    *out_n = 44 + (size_t)bytes;
    return 0;
}

/* ---- packer ------------------------------------------------------------------------------- */

void s2s_pack_opts_init(s2s_pack_opts *o) {
    memset(o, 0, sizeof *o);
    o->per_shard = 1000;
    o->gzip_level = 6;
    o->flac_level = 5;
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
    json_t *shards;        /* dataset.json "shards" */
    json_t *counts;        /* task -> lang -> {samples, pairs} */
    json_t *prov;          /* array of {tool, version, params, samples} */
    json_t *prov_ix;       /* dumps(record) -> index in prov */
    committed done;        /* files committed, removed again by abort */
    struct pjob *inflight; /* sample being compressed on the worker thread */
    char *part;
    FILE *hfp; /* the shard as the tar writer sees it: hashes, then writes */
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

/* The SHA-256 of a shard is computed on the bytes as they are written (no second read). */
static ssize_t hash_write(void *c, const char *buf, size_t n) {
    s2s_packer *p = c;
    FILE *real = s2s_ofile_fp(p->shard_of);
    if (n && fwrite(buf, 1, n, real) != n) return -1;
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
    setvbuf(p->hfp, NULL, _IOFBF, 1 << 16);
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

/* Stored name and bytes for one stream member. */
static int compress_member(const s2s_packer *p, const char *key, const char *suffix,
                           const unsigned char *data, size_t size, pmember *out, s2s_err *err) {
    size_t kl = strlen(key), sl = strlen(suffix);
    out->name = malloc(kl + sl + 8);
    if (!out->name) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    int rc = 0;
    if (ends_with(suffix, ".wav")) {
        sprintf(out->name, "%s.%.*s.flac", key, (int)(sl - 4), suffix);
        rc = s2s_flac_encode(data, size, p->o.flac_level, &out->data, &out->size, err);
    } else if (ends_with(suffix, ".flac")) {
        if (size < 4 || memcmp(data, "fLaC", 4) != 0)
            return s2s_err_set(err, S2S_EDATA, "member %s.%s is not FLAC data", key, suffix);
        sprintf(out->name, "%s.%s", key, suffix);
        out->data = malloc(size ? size : 1);
        if (!out->data) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
        memcpy(out->data, data, size);
        out->size = size;
    } else if (strcmp(suffix, "json") == 0 || ends_with(suffix, ".json") ||
               strcmp(suffix, "units") == 0 || ends_with(suffix, ".units")) {
        sprintf(out->name, "%s.%s.gz", key, suffix);
        rc = s2s_gzip(data, size, p->o.gzip_level, &out->data, &out->size, err);
    } else {
        sprintf(out->name, "%s.%s", key, suffix);
        out->data = malloc(size ? size : 1);
        if (!out->data) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
        memcpy(out->data, data, size);
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
    int rc;
    s2s_err err;
    pthread_t th;
    int threaded;
} pjob;

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
    s2s_packer tmp; /* compress_member only reads the options */
    memset(&tmp, 0, sizeof tmp);
    tmp.o = *j->o;
    s2s_err_clear(&j->err);
    j->rc = 0;
    for (size_t i = 0; i < j->n_in && j->rc == 0; i++) {
        j->rc = compress_member(&tmp, j->key, j->in_suffix[i], j->in_data[i], j->in_size[i],
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
    if (j->threaded) {
        pthread_join(j->th, NULL);
        j->threaded = 0;
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
    /* start this sample's compression, then write the previous one meanwhile */
    j->threaded = pthread_create(&j->th, NULL, pjob_run, j) == 0;
    if (!j->threaded) pjob_run(j);
    rc = flush_inflight(p, err);
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
    free(p);
}

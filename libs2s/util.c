/* util.c — atomic output files, buffers, hashing, --shard parts, ids, progress. */
#define _GNU_SOURCE /* sync_file_range */
#include "s2s/util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- atomic output -------------------------------------------------------------------------- */
struct s2s_ofile {
    FILE *fp;
    char *path, *tmp;   /* tmp NULL for stdout */
    uint64_t sent, off; /* bytes written out through s2s_ofile_wrote; bytes handed to writeback */
};

s2s_ofile *s2s_ofile_open(const char *path, s2s_err *err) {
    s2s_ofile *of = calloc(1, sizeof *of);
    if (!of) goto nomem;
    if (!path || strcmp(path, "-") == 0) {
        of->fp = stdout;
        of->path = strdup("<stdout>");
        if (!of->path) goto nomem;
        return of;
    }
    of->path = strdup(path);
    size_t n = strlen(path) + 64;
    of->tmp = malloc(n);
    if (!of->path || !of->tmp) goto nomem;
    static const char tag[] = ".tmp-";
    for (unsigned k = 0; k < 1000; k++) {
        snprintf(of->tmp, n, "%s%s%ld-%u", path, tag, (long)getpid(), k);
        int fd = open(of->tmp, O_WRONLY | O_CREAT | O_EXCL, 0644);
        if (fd < 0 && errno == EEXIST) continue;
        if (fd < 0) {
            s2s_err_errno(err, "%s: cannot create", path);
            goto fail;
        }
        of->fp = fdopen(fd, "wb");
        if (!of->fp) {
            close(fd);
            unlink(of->tmp);
            s2s_err_errno(err, "%s", path);
            goto fail;
        }
        return of;
    }
    s2s_err_set(err, S2S_EIO, "%s: cannot create a temporary file beside it", path);
    goto fail;
nomem:
    s2s_err_set(err, S2S_ENOMEM, "out of memory");
fail:
    if (of) {
        free(of->path);
        free(of->tmp);
        free(of);
    }
    return NULL;
}

FILE *s2s_ofile_fp(s2s_ofile *of) {
    return of->fp;
}

const char *s2s_ofile_path(const s2s_ofile *of) {
    return of->path;
}

#define OFILE_KICK (8u << 20)
void s2s_ofile_wrote(s2s_ofile *of, size_t n) {
    of->sent += n;
    if (!of->tmp || of->sent - of->off < OFILE_KICK) return;
#if defined(__linux__) && defined(SYNC_FILE_RANGE_WRITE)
    if (fflush(of->fp) != 0) return; /* the error stays in the FILE for commit */
    (void)sync_file_range(fileno(of->fp), (off64_t)of->off, (off64_t)(of->sent - of->off),
                          SYNC_FILE_RANGE_WRITE);
#endif
    of->off = of->sent;
}

int s2s_ofile_commit(s2s_ofile *of, s2s_err *err) {
    int rc = 0;
    if (fflush(of->fp) != 0 || ferror(of->fp))
        rc = s2s_err_errno(err, "%s: write failed", of->path);
    if (of->tmp) {
        if (rc == 0 && fsync(fileno(of->fp)) != 0 && errno != EINVAL)
            rc = s2s_err_errno(err, "%s: fsync failed", of->path);
        if (fclose(of->fp) != 0 && rc == 0) rc = s2s_err_errno(err, "%s: close failed", of->path);
        if (rc == 0 && rename(of->tmp, of->path) != 0)
            rc = s2s_err_errno(err, "%s: cannot rename %s", of->path, of->tmp);
        if (rc != 0) unlink(of->tmp);
    }
    free(of->path);
    free(of->tmp);
    free(of);
    return rc;
}

void s2s_ofile_abort(s2s_ofile *of) {
    if (!of) return;
    if (of->tmp) {
        fclose(of->fp);
        unlink(of->tmp);
    } else {
        fflush(of->fp);
    }
    free(of->path);
    free(of->tmp);
    free(of);
}

/* ---- buffers -------------------------------------------------------------------------------- */
int s2s_buf_reserve(s2s_buf *b, size_t extra, s2s_err *err) {
    if (extra > SIZE_MAX - 1 - b->len) return s2s_err_set(err, S2S_ENOMEM, "buffer too large");
    if (b->len + extra + 1 <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) {
        if (cap > SIZE_MAX / 2) return s2s_err_set(err, S2S_ENOMEM, "buffer too large");
        cap *= 2;
    }
    unsigned char *p = realloc(b->data, cap);
    if (!p) return s2s_err_set(err, S2S_ENOMEM, "out of memory (%zu bytes)", cap);
    b->data = p;
    b->cap = cap;
    return 0;
}

int s2s_buf_append(s2s_buf *b, const void *p, size_t n, s2s_err *err) {
    int rc = s2s_buf_reserve(b, n, err);
    if (rc) return rc;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
    return 0;
}

unsigned char *s2s_buf_steal(s2s_buf *b, size_t *len) {
    unsigned char *p = b->data;
    if (len) *len = b->len;
    if (!p) p = calloc(1, 1);
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

void s2s_buf_free(s2s_buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int s2s_read_file(const char *path, unsigned char **data, size_t *len, s2s_err *err) {
    int use_stdin = !path || strcmp(path, "-") == 0;
    FILE *fp = use_stdin ? stdin : fopen(path, "rb");
    if (!fp) return s2s_err_errno(err, "%s: cannot open", path);
    s2s_buf b = {0};
    unsigned char chunk[65536];
    size_t n;
    int rc = 0;
    while ((n = fread(chunk, 1, sizeof chunk, fp)) > 0)
        if ((rc = s2s_buf_append(&b, chunk, n, err)) != 0) break;
    if (rc == 0 && ferror(fp))
        rc = s2s_err_errno(err, "%s: read failed", use_stdin ? "<stdin>" : path);
    if (!use_stdin) fclose(fp);
    if (rc == 0 && (rc = s2s_buf_reserve(&b, 0, err)) == 0) {
        b.data[b.len] = 0;
        *data = s2s_buf_steal(&b, len);
        return 0;
    }
    s2s_buf_free(&b);
    return rc;
}

/* ---- hashing -------------------------------------------------------------------------------- */
uint64_t s2s_fnv1a64(const char *s) {
    uint64_t h = 14695981039346656037ULL; /* the published FNV-1a 64 offset basis */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(s2s_sha256 *c, const unsigned char *p) {
    uint32_t w[64], a, b, cc, d, e, f, g, h;
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    a = c->h[0], b = c->h[1], cc = c->h[2], d = c->h[3];
    e = c->h[4], f = c->h[5], g = c->h[6], h = c->h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 =
            h + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + K256[i] + w[i];
        uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & cc) ^ (b & cc));
        h = g, g = f, f = e, e = d + t1, d = cc, cc = b, b = a, a = t1 + t2;
    }
    c->h[0] += a, c->h[1] += b, c->h[2] += cc, c->h[3] += d;
    c->h[4] += e, c->h[5] += f, c->h[6] += g, c->h[7] += h;
}

void s2s_sha256_init(s2s_sha256 *c) {
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(c->h, iv, sizeof iv);
    c->nbytes = 0;
    c->fill = 0;
}

int s2s_sha256_blocks_hw(uint32_t h[8], const unsigned char *p, size_t nblocks); /* sha256_x86.c */

void s2s_sha256_update(s2s_sha256 *c, const void *data, size_t n) {
    const unsigned char *p = data;
    c->nbytes += n;
    if (c->fill) {
        size_t k = 64 - c->fill < n ? 64 - c->fill : n;
        memcpy(c->block + c->fill, p, k);
        c->fill += k, p += k, n -= k;
        if (c->fill < 64) return;
        sha256_block(c, c->block);
        c->fill = 0;
    }
    /* SHA-NI when the CPU has it (sha256_x86.c): ~5x faster on shards */
    if (n >= 64 && s2s_sha256_blocks_hw(c->h, p, n / 64)) p += n / 64 * 64, n %= 64;
    for (; n >= 64; p += 64, n -= 64)
        sha256_block(c, p);
    memcpy(c->block, p, n);
    c->fill = n;
}

void s2s_sha256_final(s2s_sha256 *c, unsigned char out[32]) {
    uint64_t bits = c->nbytes * 8;
    unsigned char pad[72] = {0x80};
    size_t padlen = (c->fill < 56 ? 56 : 120) - c->fill;
    unsigned char len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (unsigned char)(bits >> (56 - 8 * i));
    s2s_sha256_update(c, pad, padlen);
    s2s_sha256_update(c, len, 8);
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 4; j++)
            out[4 * i + j] = (unsigned char)(c->h[i] >> (24 - 8 * j));
}

static void hex32(const unsigned char d[32], char out[65]) {
    static const char hx[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++)
        out[2 * i] = hx[d[i] >> 4], out[2 * i + 1] = hx[d[i] & 15];
    out[64] = 0;
}

void s2s_sha256_hex(const void *p, size_t n, char out[65]) {
    s2s_sha256 c;
    unsigned char d[32];
    s2s_sha256_init(&c);
    s2s_sha256_update(&c, p, n);
    s2s_sha256_final(&c, d);
    hex32(d, out);
}

int s2s_sha256_file(const char *path, char out[65], s2s_err *err) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return s2s_err_errno(err, "%s: cannot open", path);
    s2s_sha256 c;
    unsigned char buf[1 << 16], d[32];
    size_t n;
    s2s_sha256_init(&c);
    while ((n = fread(buf, 1, sizeof buf, fp)) > 0)
        s2s_sha256_update(&c, buf, n);
    int bad = ferror(fp);
    fclose(fp);
    if (bad) return s2s_err_errno(err, "%s: read failed", path);
    s2s_sha256_final(&c, d);
    hex32(d, out);
    return 0;
}

/* ---- parts ---------------------------------------------------------------------------------- */
int s2s_part_parse(const char *spec, s2s_part *part, s2s_err *err) {
    char *end;
    errno = 0;
    unsigned long i = strtoul(spec, &end, 10);
    if (end == spec || *end != '/' || spec[0] == '-')
        return s2s_err_set(err, S2S_EINVAL, "--shard '%s': expected I/N, e.g. 0/4", spec);
    const char *q = end + 1;
    unsigned long n = strtoul(q, &end, 10);
    if (end == q || *end || q[0] == '-' || errno || n == 0 || n > 1000000 || i >= n)
        return s2s_err_set(err, S2S_EINVAL, "--shard '%s': need 0 <= I < N, N >= 1", spec);
    part->index = (unsigned)i;
    part->count = (unsigned)n;
    return 0;
}

int s2s_part_keep(const s2s_part *part, const char *id) {
    if (!part || part->count <= 1) return 1;
    return s2s_fnv1a64(id) % part->count == part->index;
}

int s2s_id_valid(const char *id) {
    if (!id || !*id) return 0;
    size_t n = 0;
    for (const char *p = id; *p; p++, n++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return 0;
    }
    return n <= 200;
}

/* ---- progress ------------------------------------------------------------------------------- */
struct s2s_progress {
    char label[64], what[32];
    uint64_t total;
    double start, last;
    int tty;
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

s2s_progress *s2s_progress_new(const char *label, const char *what, uint64_t total) {
    s2s_progress *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    snprintf(p->label, sizeof p->label, "%s", label);
    snprintf(p->what, sizeof p->what, "%s", what);
    p->total = total;
    p->start = p->last = now_s();
    p->tty = isatty(STDERR_FILENO) && !getenv("S2S_NO_PROGRESS");
    return p;
}

static void progress_draw(s2s_progress *p, uint64_t done, double t) {
    double el = t - p->start, rate = el > 0 ? done / el : 0;
    if (p->total && rate > 0) {
        double eta = (p->total > done ? p->total - done : 0) / rate;
        fprintf(stderr, "\r%s: %llu/%llu %s (%.0f%%), %.1f/s, ETA %.0fs   ", p->label,
                (unsigned long long)done, (unsigned long long)p->total, p->what,
                100.0 * done / p->total, rate, eta);
    } else {
        fprintf(stderr, "\r%s: %llu %s, %.1f/s   ", p->label, (unsigned long long)done, p->what,
                rate);
    }
    fflush(stderr);
}

void s2s_progress_update(s2s_progress *p, uint64_t done) {
    if (!p || !p->tty) return;
    double t = now_s();
    if (t - p->last < 0.2) return;
    p->last = t;
    progress_draw(p, done, t);
}

void s2s_progress_end(s2s_progress *p, uint64_t done) {
    if (!p) return;
    if (p->tty) {
        progress_draw(p, done, now_s());
        fputc('\n', stderr);
    }
    free(p);
}

/* tar.c — deterministic ustar writer and a ustar/GNU/pax reader (s2s/tar.h). */
#include "s2s/tar.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "s2s/util.h"

#define BLK 512

/* ---- writer --------------------------------------------------------------------------------- */
struct s2s_tar_writer {
    FILE *fp;
    char *name;
    uint64_t off;
};

s2s_tar_writer *s2s_tar_writer_new(FILE *fp, const char *name, s2s_err *err)
{
    s2s_tar_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->name = strdup(name ? name : "<tar>"))) {
        free(w);
        s2s_err_set(err, S2S_ENOMEM, "out of memory");
        return NULL;
    }
    w->fp = fp;
    return w;
}

uint64_t s2s_tar_writer_offset(const s2s_tar_writer *w)
{
    return w->off;
}

static void put_octal(char *field, size_t width, uint64_t v)
{
    /* width-1 octal digits, zero padded, then NUL (the POSIX form GNU tar and Python write) */
    field[width - 1] = '\0';
    for (size_t i = width - 1; i-- > 0;) {
        field[i] = (char)('0' + (v & 7));
        v >>= 3;
    }
}

static unsigned header_sum(const unsigned char *h)
{
    unsigned s = 0;
    for (int i = 0; i < BLK; i++) s += (i >= 148 && i < 156) ? ' ' : h[i];
    return s;
}

static void fill_header(unsigned char *h, const char *name, const char *prefix, uint64_t size,
                        char type)
{
    memset(h, 0, BLK);
    memcpy(h, name, strlen(name));
    put_octal((char *)h + 100, 8, 0644);
    put_octal((char *)h + 108, 8, 0);
    put_octal((char *)h + 116, 8, 0);
    put_octal((char *)h + 124, 12, size);
    put_octal((char *)h + 136, 12, 0);
    h[156] = (unsigned char)type;
    memcpy(h + 257, "ustar", 6); /* "ustar\0" */
    memcpy(h + 263, "00", 2);
    put_octal((char *)h + 329, 8, 0);
    put_octal((char *)h + 337, 8, 0);
    if (prefix) memcpy(h + 345, prefix, strlen(prefix));
    unsigned s = header_sum(h);
    put_octal((char *)h + 148, 7, s); /* 6 digits + NUL, then a space */
    h[155] = ' ';
}

static int wr(s2s_tar_writer *w, const void *p, size_t n, s2s_err *err)
{
    if (n && fwrite(p, 1, n, w->fp) != n) return s2s_err_errno(err, "%s: write failed", w->name);
    w->off += n;
    return 0;
}

static int wr_pad(s2s_tar_writer *w, uint64_t size, s2s_err *err)
{
    static const unsigned char zero[BLK];
    size_t pad = (size_t)((BLK - size % BLK) % BLK);
    return wr(w, zero, pad, err);
}

/* Header block(s) of a member of `size` bytes (s2s_tar_write and s2s_tar_write_begin). */
static int write_header(s2s_tar_writer *w, const char *name, size_t size, uint64_t *hdr_off,
                        uint64_t *data_off, s2s_err *err)
{
    unsigned char h[BLK];
    size_t len = strlen(name);
    const char *nm = name;
    char prefix[156] = "", shortname[101];
    int need_pax = 0;
    int rc;
    if (len == 0) return s2s_err_set(err, S2S_EINVAL, "%s: empty member name", w->name);
    if (len > 100) {
        /* ustar split at a '/' so that prefix <= 155 and name <= 100; else a pax path record */
        const char *slash = NULL;
        for (const char *p = name + len - 1; p > name; p--)
            if (*p == '/' && (size_t)(p - name) <= 155 && strlen(p + 1) <= 100 && p[1]) {
                slash = p;
                break;
            }
        if (slash) {
            memcpy(prefix, name, (size_t)(slash - name));
            prefix[slash - name] = 0;
            nm = slash + 1;
        } else {
            need_pax = 1;
            memcpy(shortname, name, 100);
            shortname[100] = 0;
            nm = shortname;
        }
    }
    if ((uint64_t)size > 077777777777ULL) need_pax = 1;
    if (hdr_off) *hdr_off = w->off;
    if (need_pax) {
        char rec[4096 + 64];
        size_t rl = 0;
        if (len > 100) {
            /* "LEN path=NAME\n" where LEN counts itself */
            size_t body = strlen(" path=\n") + len, digits = 1;
            while (1) {
                size_t tot = body + digits, d = 0;
                for (size_t t = tot; t; t /= 10) d++;
                if (d == digits) break;
                digits = d;
            }
            if (body + digits >= sizeof rec / 2)
                return s2s_err_set(err, S2S_EINVAL, "%s: member name too long: %.60s...", w->name, name);
            rl += (size_t)snprintf(rec + rl, sizeof rec - rl, "%zu path=%s\n", body + digits, name);
        }
        if ((uint64_t)size > 077777777777ULL) {
            char tmp[64];
            size_t body = (size_t)snprintf(tmp, sizeof tmp, " size=%zu\n", size), digits = 1;
            while (1) {
                size_t d = 0;
                for (size_t t = body + digits; t; t /= 10) d++;
                if (d == digits) break;
                digits = d;
            }
            rl += (size_t)snprintf(rec + rl, sizeof rec - rl, "%zu size=%zu\n", body + digits, size);
        }
        fill_header(h, "././@PaxHeader", NULL, rl, 'x');
        if ((rc = wr(w, h, BLK, err)) || (rc = wr(w, rec, rl, err)) || (rc = wr_pad(w, rl, err)))
            return rc;
    }
    fill_header(h, nm, prefix[0] ? prefix : NULL, (uint64_t)size > 077777777777ULL ? 0 : size, '0');
    if ((rc = wr(w, h, BLK, err))) return rc;
    if (data_off) *data_off = w->off;
    return 0;
}

int s2s_tar_write(s2s_tar_writer *w, const char *name, const void *data, size_t size,
                  uint64_t *hdr_off, uint64_t *data_off, s2s_err *err)
{
    int rc;
    if ((rc = write_header(w, name, size, hdr_off, data_off, err))) return rc;
    if ((rc = wr(w, data, size, err)) || (rc = wr_pad(w, size, err))) return rc;
    return 0;
}

int s2s_tar_writer_finish(s2s_tar_writer *w, s2s_err *err)
{
    static const unsigned char zero[2 * BLK];
    int rc = wr(w, zero, sizeof zero, err);
    s2s_tar_writer_free(w);
    return rc;
}

void s2s_tar_writer_free(s2s_tar_writer *w)
{
    if (!w) return;
    free(w->name);
    free(w);
}

/* ---- reader --------------------------------------------------------------------------------- */
struct s2s_tar_reader {
    FILE *fp;
    char *name;
    uint64_t off;       /* bytes consumed */
    uint64_t remaining; /* data + padding of the current member not yet consumed */
    uint64_t cur_size;
    int data_pending; /* current member's data not read */
    int lenient;
    char *gpath;      /* global pax path (rare) */
    s2s_tar_entry ent;
};

s2s_tar_reader *s2s_tar_reader_new(FILE *fp, const char *name, s2s_err *err)
{
    s2s_tar_reader *r = calloc(1, sizeof *r);
    if (!r || !(r->name = strdup(name ? name : "<tar>"))) {
        free(r);
        s2s_err_set(err, S2S_ENOMEM, "out of memory");
        return NULL;
    }
    r->fp = fp;
    return r;
}

void s2s_tar_reader_set_lenient(s2s_tar_reader *r, int lenient)
{
    r->lenient = lenient;
}

void s2s_tar_reader_free(s2s_tar_reader *r)
{
    if (!r) return;
    free(r->ent.name);
    free(r->gpath);
    free(r->name);
    free(r);
}

/* Reads exactly n bytes; returns 0, or 1 on clean EOF before the first byte, or negative. */
static int rd(s2s_tar_reader *r, void *p, size_t n, s2s_err *err)
{
    size_t got = fread(p, 1, n, r->fp);
    r->off += got;
    if (got == n) return 0;
    if (ferror(r->fp)) return s2s_err_errno(err, "%s: read failed at byte %llu", r->name,
                                            (unsigned long long)r->off);
    if (got == 0) return 1;
    return s2s_err_set(err, S2S_EFORMAT, "%s: truncated at byte %llu (inside a %zu-byte block)",
                       r->name, (unsigned long long)r->off, n);
}

static int skip(s2s_tar_reader *r, uint64_t n, s2s_err *err)
{
    unsigned char buf[65536];
    while (n > 0) {
        size_t k = n < sizeof buf ? (size_t)n : sizeof buf;
        int rc = rd(r, buf, k, err);
        if (rc == 1)
            return s2s_err_set(err, S2S_EFORMAT, "%s: truncated at byte %llu: member data cut short",
                               r->name, (unsigned long long)r->off);
        if (rc) return rc;
        n -= k;
    }
    return 0;
}

static int parse_num(const unsigned char *f, size_t w, uint64_t *out)
{
    if (f[0] & 0x80) { /* GNU base-256 */
        uint64_t v = f[0] & 0x7f;
        for (size_t i = 1; i < w; i++) {
            if (v >> 56) return -1;
            v = (v << 8) | f[i];
        }
        *out = v;
        return 0;
    }
    uint64_t v = 0;
    size_t i = 0;
    while (i < w && (f[i] == ' ' || f[i] == 0)) i++;
    if (i == w) {
        *out = 0;
        return 0;
    }
    for (; i < w && f[i] >= '0' && f[i] <= '7'; i++) {
        if (v >> 60) return -1;
        v = v * 8 + (uint64_t)(f[i] - '0');
    }
    for (; i < w; i++)
        if (f[i] != ' ' && f[i] != 0) return -1;
    *out = v;
    return 0;
}

/* Parses pax records "LEN key=value\n"; keeps path and size. */
static int parse_pax(s2s_tar_reader *r, const char *buf, size_t n, char **path, uint64_t *size,
                     int *has_size, s2s_err *err)
{
    size_t i = 0;
    while (i < n) {
        if (buf[i] == 0) break;
        size_t len = 0, j = i;
        while (j < n && buf[j] >= '0' && buf[j] <= '9') len = len * 10 + (size_t)(buf[j++] - '0');
        if (j >= n || buf[j] != ' ' || len == 0 || i + len > n || buf[i + len - 1] != '\n')
            return s2s_err_set(err, S2S_EFORMAT, "%s: malformed pax header near byte %llu", r->name,
                               (unsigned long long)r->off);
        const char *kv = buf + j + 1, *end = buf + i + len - 1;
        const char *eq = memchr(kv, '=', (size_t)(end - kv));
        if (!eq)
            return s2s_err_set(err, S2S_EFORMAT, "%s: malformed pax record near byte %llu", r->name,
                               (unsigned long long)r->off);
        size_t klen = (size_t)(eq - kv), vlen = (size_t)(end - eq - 1);
        if (klen == 4 && memcmp(kv, "path", 4) == 0 && path) {
            free(*path);
            if (!(*path = strndup(eq + 1, vlen))) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
        } else if (klen == 4 && memcmp(kv, "size", 4) == 0 && size) {
            char tmp[32];
            if (vlen == 0 || vlen >= sizeof tmp)
                return s2s_err_set(err, S2S_EFORMAT, "%s: bad pax size", r->name);
            memcpy(tmp, eq + 1, vlen);
            tmp[vlen] = 0;
            char *e;
            errno = 0;
            unsigned long long v = strtoull(tmp, &e, 10);
            if (*e || errno) return s2s_err_set(err, S2S_EFORMAT, "%s: bad pax size", r->name);
            *size = v;
            *has_size = 1;
        }
        i += len;
    }
    return 0;
}

static int read_small(s2s_tar_reader *r, uint64_t size, char **out, s2s_err *err)
{
    if (size > (16u << 20))
        return s2s_err_set(err, S2S_EFORMAT, "%s: extended header of %llu bytes at byte %llu is too large",
                           r->name, (unsigned long long)size, (unsigned long long)r->off);
    uint64_t padded = (size + BLK - 1) / BLK * BLK;
    char *buf = malloc((size_t)padded + 1);
    if (!buf) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    int rc = rd(r, buf, (size_t)padded, err);
    if (rc == 1)
        rc = s2s_err_set(err, S2S_EFORMAT, "%s: truncated inside an extended header", r->name);
    if (rc) {
        free(buf);
        return rc;
    }
    buf[size] = 0;
    *out = buf;
    return 0;
}

int s2s_tar_next(s2s_tar_reader *r, s2s_tar_entry **e, s2s_err *err)
{
    int rc;
    if (r->remaining) {
        if ((rc = skip(r, r->remaining, err))) return rc;
        r->remaining = 0;
    }
    r->data_pending = 0;
    char *pax_path = NULL, *long_name = NULL;
    uint64_t pax_size = 0;
    int has_pax_size = 0;
    unsigned char h[BLK];
    uint64_t first_hdr = UINT64_MAX; /* first header block of this member (pax/GNU included) */
    for (;;) {
        uint64_t hoff = r->off;
        rc = rd(r, h, BLK, err);
        if (rc == 1) {
            if (r->lenient && !pax_path && !long_name) goto end;
            rc = s2s_err_set(err, S2S_EFORMAT,
                             "%s: truncated at byte %llu: no end-of-archive marker (was the "
                             "stream cut short, or did the previous tool fail?)",
                             r->name, (unsigned long long)r->off);
        }
        if (rc) goto fail;
        int allzero = 1;
        for (int i = 0; i < BLK && allzero; i++) allzero = h[i] == 0;
        if (allzero) {
            unsigned char h2[BLK];
            rc = rd(r, h2, BLK, err);
            if (rc == 1 && r->lenient) goto end;
            if (rc == 1)
                rc = s2s_err_set(err, S2S_EFORMAT,
                                 "%s: truncated at byte %llu: end-of-archive marker has one block of two",
                                 r->name, (unsigned long long)r->off);
            if (rc) goto fail;
            for (int i = 0; i < BLK; i++)
                if (h2[i]) {
                    rc = s2s_err_set(err, S2S_EFORMAT, "%s: zero block followed by data at byte %llu",
                                     r->name, (unsigned long long)hoff);
                    goto fail;
                }
            goto end;
        }
        if (first_hdr == UINT64_MAX) first_hdr = hoff;
        uint64_t sum;
        if (parse_num(h + 148, 8, &sum) != 0 || sum != header_sum(h)) {
            /* historic signed-char sums are accepted too */
            int ssum = 0;
            for (int i = 0; i < BLK; i++) ssum += (i >= 148 && i < 156) ? ' ' : (signed char)h[i];
            if (parse_num(h + 148, 8, &sum) != 0 || (int64_t)sum != ssum) {
                rc = s2s_err_set(err, S2S_EFORMAT,
                                 "%s: bad tar header checksum at byte %llu (corrupt or not a tar)",
                                 r->name, (unsigned long long)hoff);
                goto fail;
            }
        }
        uint64_t size;
        if (parse_num(h + 124, 12, &size) != 0) {
            rc = s2s_err_set(err, S2S_EFORMAT, "%s: bad size field in header at byte %llu", r->name,
                             (unsigned long long)hoff);
            goto fail;
        }
        char type = (char)h[156];
        if (type == 'x' || type == 'g') {
            char *buf;
            if ((rc = read_small(r, size, &buf, err))) goto fail;
            if (type == 'x')
                rc = parse_pax(r, buf, (size_t)size, &pax_path, &pax_size, &has_pax_size, err);
            else
                rc = parse_pax(r, buf, (size_t)size, &r->gpath, NULL, NULL, err);
            free(buf);
            if (rc) goto fail;
            continue;
        }
        if (type == 'L') {
            free(long_name);
            long_name = NULL; /* read_small leaves it untouched on failure: no double free */
            if ((rc = read_small(r, size, &long_name, err))) goto fail;
            continue;
        }
        if (type == 'K') {
            char *tmp;
            if ((rc = read_small(r, size, &tmp, err))) goto fail;
            free(tmp);
            continue;
        }
        if (has_pax_size) size = pax_size;
        char name[257];
        if (memcmp(h + 257, "ustar", 5) == 0 && h[345]) {
            size_t pl = strnlen((char *)h + 345, 155);
            memcpy(name, h + 345, pl);
            name[pl] = '/';
            size_t nl = strnlen((char *)h, 100);
            memcpy(name + pl + 1, h, nl);
            name[pl + 1 + nl] = 0;
        } else {
            size_t nl = strnlen((char *)h, 100);
            memcpy(name, h, nl);
            name[nl] = 0;
        }
        const char *final = pax_path ? pax_path : long_name ? long_name : name;
        uint64_t padded = (size + BLK - 1) / BLK * BLK;
        if (type == '5' || type == 'D') { /* directory: nothing to return */
            if ((rc = skip(r, padded, err))) goto fail;
            free(pax_path), free(long_name);
            pax_path = long_name = NULL;
            has_pax_size = 0;
            first_hdr = UINT64_MAX;
            continue;
        }
        if (type != '0' && type != '\0' && type != '7') {
            rc = s2s_err_set(err, S2S_EUNSUP,
                             "%s: member '%s' at byte %llu has tar type '%c': only regular files "
                             "are supported",
                             r->name, final, (unsigned long long)hoff, type >= 32 ? type : '?');
            goto fail;
        }
        free(r->ent.name);
        if (!(r->ent.name = strdup(final))) {
            rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
            goto fail;
        }
        r->ent.hdr_off = first_hdr;
        r->ent.size = size;
        r->ent.data_off = r->off;
        r->ent.type = '0';
        r->remaining = padded;
        r->cur_size = size;
        r->data_pending = 1;
        free(pax_path);
        free(long_name);
        *e = &r->ent;
        return 1;
    }
end:
    free(pax_path);
    free(long_name);
    return 0;
fail:
    free(pax_path);
    free(long_name);
    return rc < 0 ? rc : S2S_EFORMAT;
}

int s2s_tar_read_data(s2s_tar_reader *r, unsigned char **data, size_t *size, s2s_err *err)
{
    if (!r->data_pending) return s2s_err_set(err, S2S_EINVAL, "%s: no member data pending", r->name);
    uint64_t n = r->cur_size;
    if (n > (uint64_t)1 << 34)
        return s2s_err_set(err, S2S_EFORMAT, "%s: member '%s' claims %llu bytes", r->name,
                           r->ent.name, (unsigned long long)n);
    /* The buffer grows with the bytes actually read, 1 MiB at a time, not with what the header
     * claims: a 1.5 KB input whose size field says 2 GB must not allocate 2 GB (found by
     * fuzzing, tests/fuzz/regress/tar/). */
    s2s_buf b = {0};
    int rc = 0;
    for (uint64_t left = n; left > 0 && !rc;) {
        size_t chunk = left > ((uint64_t)1 << 20) ? (size_t)1 << 20 : (size_t)left;
        if ((rc = s2s_buf_reserve(&b, chunk, err)) != 0) break;
        if ((rc = rd(r, b.data + b.len, chunk, err)) != 0) {
            rc = s2s_err_set(err, S2S_EFORMAT,
                             "%s: truncated inside member '%s' (%llu bytes expected at byte %llu)",
                             r->name, r->ent.name, (unsigned long long)n,
                             (unsigned long long)r->ent.data_off);
            break;
        }
        b.len += chunk;
        left -= chunk;
    }
    if (!rc) rc = s2s_buf_reserve(&b, 0, err); /* room for the NUL, also when n == 0 */
    if (rc) {
        s2s_buf_free(&b);
        return rc;
    }
    unsigned char *buf = b.data;
    buf[n] = 0;
    r->remaining -= n;
    r->data_pending = 0;
    if (r->remaining && (rc = skip(r, r->remaining, err))) {
        free(buf);
        return rc;
    }
    r->remaining = 0;
    *data = buf;
    *size = (size_t)n;
    return 0;
}

/* ---- streaming members (added for s2s-resample: members too large to hold in memory) ------- */
int s2s_tar_write_begin(s2s_tar_writer *w, const char *name, size_t size, s2s_err *err)
{
    return write_header(w, name, size, NULL, NULL, err);
}

int s2s_tar_write_more(s2s_tar_writer *w, const void *data, size_t n, s2s_err *err)
{
    return wr(w, data, n, err);
}

int s2s_tar_write_end(s2s_tar_writer *w, size_t size, s2s_err *err)
{
    return wr_pad(w, size, err);
}

long s2s_tar_read_some(s2s_tar_reader *r, void *buf, size_t max, s2s_err *err)
{
    if (!r->data_pending) return s2s_err_set(err, S2S_EINVAL, "%s: no member data pending", r->name);
    uint64_t padded = (r->cur_size + BLK - 1) / BLK * BLK;
    uint64_t left = r->cur_size - (padded - r->remaining);
    if (left == 0) {
        int rc = r->remaining ? skip(r, r->remaining, err) : 0;
        if (rc) return rc;
        r->remaining = 0;
        r->data_pending = 0;
        return 0;
    }
    size_t k = max > (1u << 30) ? (1u << 30) : max;
    if ((uint64_t)k > left) k = (size_t)left;
    int rc = rd(r, buf, k, err);
    if (rc == 1 || rc == S2S_EFORMAT)
        return s2s_err_set(err, S2S_EFORMAT,
                           "%s: truncated inside member '%s' (%llu bytes expected at byte %llu)",
                           r->name, r->ent.name, (unsigned long long)r->cur_size,
                           (unsigned long long)r->ent.data_off);
    if (rc) return rc;
    r->remaining -= k;
    return (long)k;
}

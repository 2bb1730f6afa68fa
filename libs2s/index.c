/* index.c — shard indexes (docs/shard-index.md): reading, verifying shards and datasets against
 * them, random access by key, and the conversion back to the stream form (s2s/shard.h). */
#include "s2s/shard.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "s2s/item.h"
#include "s2s/tar.h"
#include "s2s/util.h"

char *s2s_index_path(const char *shard_path) {
    size_t n = strlen(shard_path);
    char *p = malloc(n + 5);
    if (!p) return NULL;
    memcpy(p, shard_path, n);
    memcpy(p + n, ".idx", 5);
    return p;
}

void s2s_index_free(s2s_index *ix) {
    if (!ix) return;
    free(ix->shard);
    for (size_t i = 0; i < ix->n_samples; i++)
        free(ix->samples[i].key);
    for (size_t i = 0; i < ix->n_members; i++)
        free(ix->members[i].name);
    free(ix->samples);
    free(ix->members);
    free(ix);
}

/* Splits line at tabs into at most max fields; returns the count. */
static int split_tabs(char *line, char **f, int max) {
    int n = 0;
    char *p = line;
    while (n < max) {
        f[n++] = p;
        char *t = strchr(p, '\t');
        if (!t) break;
        *t = 0;
        p = t + 1;
    }
    return n;
}

static int parse_u64(const char *s, int base, uint64_t *v) {
    if (!*s || *s == '-' || *s == '+' || *s == ' ') return -1;
    char *e;
    errno = 0;
    unsigned long long x = strtoull(s, &e, base);
    if (*e || errno) return -1;
    *v = x;
    return 0;
}

static int is_hex64(const char *s) {
    if (strlen(s) != 64) return 0;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f'))) return 0;
    return 1;
}

s2s_index *s2s_index_read(const char *path, s2s_err *err) {
    unsigned char *data = NULL;
    size_t len = 0;
    struct stat st;
    if (stat(path, &st) != 0) {
        s2s_err_errno(err, "%s: missing index (every shard needs its NAME.tar.idx)", path);
        return NULL;
    }
    if (s2s_read_file(path, &data, &len, err) < 0) return NULL;
    s2s_index *ix = calloc(1, sizeof *ix);
    size_t cap_s = 0, cap_m = 0;
    int rc = 0;
    size_t lineno = 0;
    char *p = (char *)data, *end = (char *)data + len;
    int seen_end = 0;
    size_t cur = (size_t)-1, cur_left = 0;
    if (!ix) {
        rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
        goto out;
    }
    if (memchr(data, 0, len)) {
        rc = s2s_err_set(err, S2S_EFORMAT, "%s: NUL byte in index", path);
        goto out;
    }
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        lineno++;
        if (!nl) {
            rc = s2s_err_set(err, S2S_EFORMAT, "%s:%zu: index truncated (last line unterminated)",
                             path, lineno);
            goto out;
        }
        *nl = 0;
        char *line = p;
        p = nl + 1;
        char *f[8];
        if (seen_end) {
            rc = s2s_err_set(err, S2S_EFORMAT, "%s:%zu: text after the \"end\" line", path, lineno);
            goto out;
        }
        if (lineno == 1) {
            if (strcmp(line, "s2s-shard-index 1") != 0) {
                rc = s2s_err_set(err, S2S_EFORMAT,
                                 "%s:1: not an s2s shard index (expected \"s2s-shard-index 1\")",
                                 path);
                goto out;
            }
            continue;
        }
        int nf = split_tabs(line, f, 8);
        if (lineno == 2) {
            if (nf != 4 || strcmp(f[0], "shard") != 0 || !*f[1] ||
                parse_u64(f[2], 10, &ix->shard_size) < 0 || !is_hex64(f[3])) {
                rc = s2s_err_set(err, S2S_EFORMAT,
                                 "%s:2: expected \"shard<TAB>NAME<TAB>SIZE<TAB>SHA256\"", path);
                goto out;
            }
            ix->shard = strdup(f[1]);
            memcpy(ix->sha256, f[3], 65);
            if (!ix->shard) {
                rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
                goto out;
            }
            continue;
        }
        if (nf == 3 && strcmp(f[0], "sample") == 0) {
            uint64_t n;
            if (cur_left) {
                rc = s2s_err_set(err, S2S_EFORMAT, "%s:%zu: sample %s lists %zu member(s) fewer",
                                 path, lineno, ix->samples[cur].key, cur_left);
                goto out;
            }
            if (parse_u64(f[2], 10, &n) < 0 || n == 0 || n > 100000) {
                rc = s2s_err_set(err, S2S_EFORMAT, "%s:%zu: bad member count \"%s\"", path, lineno,
                                 f[2]);
                goto out;
            }
            if (!s2s_id_valid(f[1])) {
                rc = s2s_err_set(err, S2S_EDATA,
                                 "%s:%zu: sample key \"%.80s\" is not valid (letters, digits, '_', "
                                 "'-'; a dot would split it for WebDataset readers)",
                                 path, lineno, f[1]);
                goto out;
            }
            if (ix->n_samples == cap_s) {
                cap_s = cap_s ? cap_s * 2 : 64;
                void *np = realloc(ix->samples, cap_s * sizeof *ix->samples);
                if (!np) {
                    rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
                    goto out;
                }
                ix->samples = np;
            }
            cur = ix->n_samples++;
            ix->samples[cur].key = strdup(f[1]);
            ix->samples[cur].first = ix->n_members;
            ix->samples[cur].n = (size_t)n;
            if (!ix->samples[cur].key) {
                ix->n_samples--;
                rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
                goto out;
            }
            cur_left = (size_t)n;
            continue;
        }
        if (nf == 6 && strcmp(f[0], "member") == 0) {
            uint64_t h, d, s, c;
            if (!cur_left) {
                rc = s2s_err_set(err, S2S_EFORMAT, "%s:%zu: member line outside a sample", path,
                                 lineno);
                goto out;
            }
            if (parse_u64(f[2], 10, &h) < 0 || parse_u64(f[3], 10, &d) < 0 ||
                parse_u64(f[4], 10, &s) < 0 || strlen(f[5]) != 8 || parse_u64(f[5], 16, &c) < 0 ||
                d < h + 512 || (h % 512) || (d % 512)) {
                rc = s2s_err_set(err, S2S_EFORMAT,
                                 "%s:%zu: expected \"member<TAB>NAME<TAB>HDR_OFF<TAB>DATA_OFF<TAB>"
                                 "SIZE<TAB>CRC32\" with 512-aligned offsets",
                                 path, lineno);
                goto out;
            }
            const char *key = ix->samples[cur].key;
            size_t kl = strlen(key);
            if (strncmp(f[1], key, kl) != 0 || f[1][kl] != '.' || !f[1][kl + 1] ||
                strchr(f[1], '/')) {
                rc = s2s_err_set(err, S2S_EDATA,
                                 "%s:%zu: member \"%.200s\" does not belong to sample %s (names "
                                 "must be KEY.SUFFIX)",
                                 path, lineno, f[1], key);
                goto out;
            }
            if (ix->n_members == cap_m) {
                cap_m = cap_m ? cap_m * 2 : 256;
                void *np = realloc(ix->members, cap_m * sizeof *ix->members);
                if (!np) {
                    rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
                    goto out;
                }
                ix->members = np;
            }
            s2s_index_member *m = &ix->members[ix->n_members];
            m->name = strdup(f[1]);
            if (!m->name) {
                rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
                goto out;
            }
            m->hdr_off = h;
            m->data_off = d;
            m->size = s;
            m->crc = (uint32_t)c;
            ix->n_members++;
            cur_left--;
            continue;
        }
        if (nf == 3 && strcmp(f[0], "end") == 0) {
            uint64_t ns, nm;
            if (cur_left || parse_u64(f[1], 10, &ns) < 0 || parse_u64(f[2], 10, &nm) < 0 ||
                ns != ix->n_samples || nm != ix->n_members) {
                rc = s2s_err_set(err, S2S_EFORMAT,
                                 "%s:%zu: \"end\" counts do not match the %zu samples and %zu "
                                 "members listed",
                                 path, lineno, ix->n_samples, ix->n_members);
                goto out;
            }
            seen_end = 1;
            continue;
        }
        rc = s2s_err_set(err, S2S_EFORMAT, "%s:%zu: unrecognised line \"%.60s\"", path, lineno,
                         line);
        goto out;
    }
    if (!seen_end)
        rc = s2s_err_set(err, S2S_EFORMAT, "%s: index truncated (no \"end\" line)", path);
out:
    free(data);
    if (rc < 0) {
        s2s_index_free(ix);
        return NULL;
    }
    return ix;
}

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* Sample that owns member mi. */
static const s2s_index_sample *owner(const s2s_index *ix, size_t mi) {
    for (size_t i = 0; i < ix->n_samples; i++)
        if (mi >= ix->samples[i].first && mi < ix->samples[i].first + ix->samples[i].n)
            return &ix->samples[i];
    return NULL;
}

/* Expected bytes of a member (headers, data, padding) as our tar writer writes them. */
/* The header block(s) our tar writer writes for a member NAME of SIZE bytes (the data and its
 * zero padding follow them; the header does not depend on the data). */
static int expected_header(const char *name, size_t size, unsigned char **out, size_t *out_n,
                           s2s_err *err) {
    char *buf = NULL;
    size_t blen = 0;
    FILE *ms = open_memstream(&buf, &blen);
    if (!ms) return s2s_err_errno(err, "memory stream");
    s2s_tar_writer *w = s2s_tar_writer_new(ms, "verify", err);
    int rc = w ? s2s_tar_write_begin(w, name, size, err) : S2S_ENOMEM;
    s2s_tar_writer_free(w);
    fclose(ms);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    *out = (unsigned char *)buf;
    *out_n = blen;
    return 0;
}

static int read_exact(FILE *f, void *p, size_t n, s2s_sha256 *sha) {
    if (n && fread(p, 1, n, f) != n) return -1;
    s2s_sha256_update(sha, p, n);
    return 0;
}

/* Reads member m (headers, data, padding) at the current position of f and checks it byte for
 * byte: CRC-32 of the data, the header(s) and the padding exactly as our tar writer writes them.
 * *out receives the data (malloc'd, NUL-terminated). sha (may be NULL) is fed every byte. */
static int read_member(FILE *f, const char *shard_path, const s2s_index_member *m, const char *key,
                       s2s_sha256 *sha, unsigned char **out, s2s_err *err) {
    *out = NULL;
    size_t hl = (size_t)(m->data_off - m->hdr_off);
    size_t padded = (size_t)((m->size + 511) / 512 * 512), size = (size_t)m->size;
    unsigned char *hdr = malloc(hl), *data = malloc(padded + 1), *exp = NULL;
    size_t el = 0;
    int rc = 0;
    if (!hdr || !data) {
        rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
        goto out;
    }
    if (fread(hdr, 1, hl, f) != hl || fread(data, 1, padded, f) != padded) {
        if (ferror(f))
            rc = s2s_err_errno(err, "%s: read failed in sample %s, member %s", shard_path, key,
                               m->name);
        else
            rc = s2s_err_set(err, S2S_EDATA, "%s: truncated inside sample %s, member %s",
                             shard_path, key, m->name);
        goto out;
    }
    if (sha) {
        s2s_sha256_update(sha, hdr, hl);
        s2s_sha256_update(sha, data, padded);
    }
    uint32_t crc = s2s_crc32(data, size);
    if (crc != m->crc) {
        rc = s2s_err_set(err, S2S_EDATA,
                         "%s: sample %s, member %s: data damaged (CRC-32 %08x, index says %08x; "
                         "bytes %llu-%llu)",
                         shard_path, key, m->name, crc, m->crc, (unsigned long long)m->data_off,
                         (unsigned long long)(m->data_off + size));
        goto out;
    }
    if ((rc = expected_header(m->name, size, &exp, &el, err)) < 0) goto out;
    if (el != hl || memcmp(exp, hdr, hl) != 0) {
        rc = s2s_err_set(err, S2S_EDATA,
                         "%s: sample %s, member %s: tar header damaged (bytes %llu-%llu)",
                         shard_path, key, m->name, (unsigned long long)m->hdr_off,
                         (unsigned long long)m->data_off);
        goto out;
    }
    for (size_t i = size; i < padded; i++)
        if (data[i] != 0) {
            rc = s2s_err_set(err, S2S_EDATA,
                             "%s: sample %s, member %s: padding after the data damaged (bytes "
                             "%llu-%llu)",
                             shard_path, key, m->name, (unsigned long long)(m->data_off + size),
                             (unsigned long long)(m->data_off + padded));
            goto out;
        }
    data[size] = 0;
    *out = data;
    data = NULL;
out:
    free(hdr);
    free(data);
    free(exp);
    return rc;
}

/* What verify learns from a shard's index, for the cross-checks against dataset.json. */
typedef struct shard_facts {
    uint64_t samples, members;
    char *first_key; /* malloc'd; NULL for a shard without samples */
    /* parallel verify (s2s_dataset_verify_threads): with want_keys set, shard_verify copies the
     * index's keys here when it reaches the key checks (keys_reached), so the caller can run
     * the across-shard key check afterwards, in shard order */
    int want_keys, keys_reached;
    char **keys;
    size_t n_keys;
} shard_facts;

static void facts_free(shard_facts *fa) {
    free(fa->first_key);
    for (size_t i = 0; i < fa->n_keys; i++)
        free(fa->keys[i]);
    free(fa->keys);
    fa->first_key = NULL, fa->keys = NULL, fa->n_keys = 0;
}

/* The key check of shard_verify: key k of a shard against the shard's own keys (local) and
 * every earlier shard's (keys, may be NULL). 0, or the fault. */
static int key_check(const char *shard_path, const char *key, s2s_idset *local, s2s_idset *keys,
                     s2s_err *err) {
    int a = s2s_idset_add(local, key);
    int b = a > 0 && keys ? s2s_idset_add(keys, key) : 1;
    if (a < 0 || b < 0) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    if (a == 0 || b == 0)
        return s2s_err_set(err, S2S_EDATA, "%s: sample %s: key appears %s", shard_path, key,
                           a == 0 ? "twice in this shard (sample split?)"
                                  : "in another shard too (sample split across shards or "
                                    "shards of two datasets mixed)");
    return 0;
}

static int shard_verify(const char *shard_path, const char *expect_sha, s2s_idset *keys,
                        shard_facts *facts, s2s_err *err);

int s2s_shard_verify(const char *shard_path, const char *expect_sha, s2s_idset *keys,
                     uint64_t *n_samples, s2s_err *err) {
    shard_facts fa = {0};
    int rc = shard_verify(shard_path, expect_sha, keys, &fa, err);
    facts_free(&fa);
    if (rc == 0 && n_samples) *n_samples = fa.samples;
    return rc;
}

static int shard_verify(const char *shard_path, const char *expect_sha, s2s_idset *keys,
                        shard_facts *facts, s2s_err *err) {
    int rc = 0;
    char *ipath = s2s_index_path(shard_path);
    if (!ipath) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    s2s_index *ix = s2s_index_read(ipath, err);
    FILE *f = NULL;
    unsigned char *data = NULL, *exp = NULL, *hdr = NULL;
    if (!ix) {
        rc = err ? err->code : S2S_EFORMAT;
        goto out;
    }
    const char *bn = base_name(shard_path);
    if (strcmp(ix->shard, bn) != 0) {
        rc = s2s_err_set(err, S2S_EDATA, "%s: index %s belongs to another shard (%s)", shard_path,
                         ipath, ix->shard);
        goto out;
    }
    struct stat st;
    f = fopen(shard_path, "rb");
    if (!f || fstat(fileno(f), &st) != 0) {
        rc = s2s_err_errno(err, "%s: cannot open shard", shard_path);
        goto out;
    }
    uint64_t fsize = (uint64_t)st.st_size;
    /* keys: valid (checked by the reader), unique in the shard and across shards */
    s2s_idset *local = s2s_idset_new();
    if (!local) {
        rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
        goto out;
    }
    if (facts->want_keys) {
        facts->keys_reached = 1;
        facts->keys = calloc(ix->n_samples ? ix->n_samples : 1, sizeof *facts->keys);
        for (size_t i = 0; facts->keys && i < ix->n_samples; i++) {
            if (!(facts->keys[i] = strdup(ix->samples[i].key))) break;
            facts->n_keys++;
        }
        if (facts->n_keys != ix->n_samples) {
            s2s_idset_free(local);
            rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
            goto out;
        }
    }
    for (size_t i = 0; i < ix->n_samples; i++)
        if ((rc = key_check(shard_path, ix->samples[i].key, local, keys, err)) < 0) {
            s2s_idset_free(local);
            goto out;
        }
    s2s_idset_free(local);
    /* layout: members back to back from byte 0, then the 1024-byte end marker */
    uint64_t pos = 0;
    for (size_t i = 0; i < ix->n_members; i++) {
        const s2s_index_member *m = &ix->members[i];
        if (m->hdr_off != pos) {
            rc = s2s_err_set(err, S2S_EFORMAT,
                             "%s: index entry of member %s says byte %llu, expected %llu (index "
                             "damaged)",
                             ipath, m->name, (unsigned long long)m->hdr_off,
                             (unsigned long long)pos);
            goto out;
        }
        pos = m->data_off + (m->size + 511) / 512 * 512;
    }
    uint64_t want = pos + 1024;
    if (fsize != ix->shard_size || fsize != want) {
        if (fsize < want) {
            /* name what the cut loses */
            const char *what = "the end-of-archive marker";
            char buf[600];
            for (size_t i = 0; i < ix->n_members; i++) {
                const s2s_index_member *m = &ix->members[i];
                if (fsize < m->data_off + (m->size + 511) / 512 * 512) {
                    snprintf(buf, sizeof buf, "sample %s, member %s", owner(ix, i)->key, m->name);
                    what = buf;
                    break;
                }
            }
            rc = s2s_err_set(
                err, S2S_EDATA, "%s: truncated: %llu bytes, index says %llu; cut inside %s",
                shard_path, (unsigned long long)fsize, (unsigned long long)ix->shard_size, what);
        } else if (fsize > want) {
            rc = s2s_err_set(err, S2S_EDATA,
                             "%s: %llu bytes after the end-of-archive marker (index says %llu "
                             "bytes, the shard has %llu): stale index or appended data",
                             shard_path, (unsigned long long)(fsize - want),
                             (unsigned long long)ix->shard_size, (unsigned long long)fsize);
        } else {
            rc = s2s_err_set(err, S2S_EDATA, "%s: index %s records %llu bytes, the shard has %llu",
                             shard_path, ipath, (unsigned long long)ix->shard_size,
                             (unsigned long long)fsize);
        }
        goto out;
    }
    s2s_sha256 sha;
    s2s_sha256_init(&sha);
    for (size_t si = 0; si < ix->n_samples; si++) {
        const s2s_index_sample *smp = &ix->samples[si];
        for (size_t i = smp->first; i < smp->first + smp->n; i++) {
            const s2s_index_member *m = &ix->members[i];
            free(data);
            data = NULL;
            if ((rc = read_member(f, shard_path, m, smp->key, &sha, &data, err)) < 0) goto out;
            size_t size = (size_t)m->size, nl = strlen(m->name);
            if (nl > 3 && strcmp(m->name + nl - 3, ".gz") == 0) {
                unsigned char *raw = NULL;
                size_t rl = 0;
                if ((rc = s2s_gunzip(data, size, &raw, &rl, err)) < 0) {
                    s2s_err_prefix(err, "%s: sample %s, member %s: ", shard_path, smp->key,
                                   m->name);
                    goto out;
                }
                free(raw);
            } else if (nl > 5 && strcmp(m->name + nl - 5, ".flac") == 0 &&
                       (size < 4 || memcmp(data, "fLaC", 4) != 0)) {
                rc = s2s_err_set(err, S2S_EDATA, "%s: sample %s, member %s: not FLAC data",
                                 shard_path, smp->key, m->name);
                goto out;
            }
        }
    }
    unsigned char zero[1024], tail[1024];
    memset(zero, 0, sizeof zero);
    if (read_exact(f, tail, sizeof tail, &sha) < 0) {
        rc = s2s_err_errno(err, "%s: read failed at the end-of-archive marker", shard_path);
        goto out;
    }
    if (memcmp(tail, zero, sizeof zero) != 0) {
        rc = s2s_err_set(err, S2S_EDATA, "%s: end-of-archive marker damaged (bytes %llu-%llu)",
                         shard_path, (unsigned long long)pos, (unsigned long long)want);
        goto out;
    }
    unsigned char dig[32];
    char hex[65];
    static const char hx[] = "0123456789abcdef";
    s2s_sha256_final(&sha, dig);
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = hx[dig[i] >> 4];
        hex[2 * i + 1] = hx[dig[i] & 15];
    }
    hex[64] = 0;
    if (strcmp(hex, ix->sha256) != 0) {
        rc = s2s_err_set(err, S2S_EDATA,
                         "%s: SHA-256 %s differs from the index's %s although every member "
                         "checks: stale or edited index %s",
                         shard_path, hex, ix->sha256, ipath);
        goto out;
    }
    if (expect_sha && strcmp(hex, expect_sha) != 0) {
        rc = s2s_err_set(err, S2S_EDATA,
                         "%s: SHA-256 %s differs from dataset.json's %s (shard and index "
                         "replaced together?)",
                         shard_path, hex, expect_sha);
        goto out;
    }
    facts->samples = ix->n_samples;
    facts->members = ix->n_members;
    if (ix->n_samples && !(facts->first_key = strdup(ix->samples[0].key)))
        rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
out:
    if (f) fclose(f);
    free(hdr);
    free(data);
    free(exp);
    s2s_index_free(ix);
    free(ipath);
    return rc;
}

void s2s_paths_free(char **paths, size_t n) {
    if (!paths) return;
    for (size_t i = 0; i < n; i++)
        free(paths[i]);
    free(paths);
}

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static json_t *load_dataset(const char *dir, char **dpath_out, s2s_err *err) {
    char *dpath = join(dir, "dataset.json");
    if (!dpath) {
        s2s_err_set(err, S2S_ENOMEM, "out of memory");
        return NULL;
    }
    json_error_t je;
    json_t *ds = json_load_file(dpath, 0, &je);
    if (!ds) {
        struct stat st;
        if (stat(dpath, &st) != 0)
            s2s_err_set(err, S2S_EIO,
                        "%s: missing (not a dataset directory, or the pack did not "
                        "finish)",
                        dpath);
        else
            s2s_err_set(err, S2S_EFORMAT, "%s:%d: %s", dpath, je.line, je.text);
        free(dpath);
        return NULL;
    }
    if (!json_is_array(json_object_get(ds, "shards"))) {
        s2s_err_set(err, S2S_EFORMAT, "%s: no \"shards\" array", dpath);
        json_decref(ds);
        free(dpath);
        return NULL;
    }
    *dpath_out = dpath;
    return ds;
}

int s2s_dataset_shards(const char *dir, char ***paths, size_t *n, s2s_err *err) {
    *paths = NULL;
    *n = 0;
    char *dpath = join(dir, "dataset.json");
    if (!dpath) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    struct stat st;
    int have = stat(dpath, &st) == 0;
    free(dpath);
    if (have) {
        char *dp = NULL;
        json_t *ds = load_dataset(dir, &dp, err);
        if (!ds) return err ? err->code : S2S_EFORMAT;
        json_t *sh = json_object_get(ds, "shards");
        size_t cnt = json_array_size(sh);
        char **v = calloc(cnt ? cnt : 1, sizeof *v);
        if (!v) {
            json_decref(ds);
            free(dp);
            return s2s_err_set(err, S2S_ENOMEM, "out of memory");
        }
        for (size_t i = 0; i < cnt; i++) {
            const char *name = json_string_value(json_object_get(json_array_get(sh, i), "name"));
            if (!name || strchr(name, '/')) {
                s2s_paths_free(v, i);
                json_decref(ds);
                int rc =
                    s2s_err_set(err, S2S_EFORMAT, "%s: shard %zu has no valid \"name\"", dp, i);
                free(dp);
                return rc;
            }
            v[i] = join(dir, name);
            if (!v[i]) {
                s2s_paths_free(v, i);
                json_decref(ds);
                free(dp);
                return s2s_err_set(err, S2S_ENOMEM, "out of memory");
            }
        }
        json_decref(ds);
        free(dp);
        *paths = v;
        *n = cnt;
        return 0;
    }
    DIR *d = opendir(dir);
    if (!d) return s2s_err_errno(err, "%s: cannot open directory", dir);
    char **v = NULL;
    size_t cnt = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l < 5 || strcmp(de->d_name + l - 4, ".tar") != 0) continue;
        if (cnt == cap) {
            cap = cap ? cap * 2 : 16;
            char **nv = realloc(v, cap * sizeof *nv);
            if (!nv) {
                closedir(d);
                s2s_paths_free(v, cnt);
                return s2s_err_set(err, S2S_ENOMEM, "out of memory");
            }
            v = nv;
        }
        if (!(v[cnt] = join(dir, de->d_name))) {
            closedir(d);
            s2s_paths_free(v, cnt);
            return s2s_err_set(err, S2S_ENOMEM, "out of memory");
        }
        cnt++;
    }
    closedir(d);
    if (cnt) qsort(v, cnt, sizeof *v, cmp_str);
    *paths = v;
    *n = cnt;
    return 0;
}

/* ---- dataset.json: canonical form, seal, schema ------------------------------------------------
 */

#define DS_SEAL "self_sha256"

/* The canonical text of a dataset.json object: 2-space indent, keys in insertion order, one
 * final newline (what s2s_dataset_write writes). malloc'd, NULL when out of memory. */
static char *ds_canonical(const json_t *ds) {
    char *t = json_dumps(ds, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (!t) return NULL;
    size_t n = strlen(t);
    char *r = realloc(t, n + 2);
    if (!r) {
        free(t);
        return NULL;
    }
    r[n] = '\n';
    r[n + 1] = 0;
    return r;
}

/* SHA-256 of the canonical text of ds without DS_SEAL and "recipe" (s2s-build adds the recipe
 * after the pack; it carries the SHA-256 of its own text and is cross-checked separately). */
static int ds_seal_hex(const json_t *ds, char hex[65]) {
    json_t *c = json_copy((json_t *)ds); /* shallow: only top-level keys are removed */
    if (!c) return S2S_ENOMEM;
    json_object_del(c, DS_SEAL);
    json_object_del(c, "recipe");
    char *t = ds_canonical(c);
    json_decref(c);
    if (!t) return S2S_ENOMEM;
    s2s_sha256_hex(t, strlen(t), hex);
    free(t);
    return 0;
}

int s2s_dataset_seal(json_t *ds, s2s_err *err) {
    char hex[65];
    if (!json_is_object(ds)) return s2s_err_set(err, S2S_EINVAL, "dataset.json: not an object");
    if (ds_seal_hex(ds, hex) < 0 || json_object_set_new(ds, DS_SEAL, json_string(hex)) != 0)
        return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    return 0;
}

int s2s_dataset_write(const char *path, json_t *ds, s2s_err *err) {
    int rc = s2s_dataset_seal(ds, err);
    if (rc < 0) return rc;
    char *t = ds_canonical(ds);
    if (!t) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    s2s_ofile *of = s2s_ofile_open(path, err);
    if (!of) {
        free(t);
        return err ? err->code : S2S_EIO;
    }
    size_t n = strlen(t);
    if (fwrite(t, 1, n, s2s_ofile_fp(of)) != n) {
        rc = s2s_err_errno(err, "%s: write failed", path);
        s2s_ofile_abort(of);
    } else {
        rc = s2s_ofile_commit(of, err);
    }
    free(t);
    return rc;
}

/* One allowed key of an object: its name, JSON type, and whether it must be present. */
typedef struct ds_key {
    const char *name;
    json_type type; /* JSON_TRUE stands for "any type" */
    int required;   /* 1 required, 0 optional, 2 optional and may be null */
} ds_key;

/* Checks that obj is an object holding only the keys of spec (typed as listed) and every
 * required one: a misspelled key (a flipped byte in a key name) is a fault, not an extension. */
static int ds_keys(const json_t *obj, const ds_key *spec, const char *dpath, const char *where,
                   s2s_err *err) {
    if (!json_is_object(obj))
        return s2s_err_set(err, S2S_EFORMAT, "%s: %s is not an object", dpath, where);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v) {
        const ds_key *s = spec;
        while (s->name && strcmp(s->name, k) != 0)
            s++;
        if (!s->name)
            return s2s_err_set(err, S2S_EFORMAT, "%s: %s: unknown key \"%.80s\" (misspelled?)",
                               dpath, where, k);
        if (s->type != JSON_TRUE && json_typeof(v) != s->type &&
            !(s->required == 2 && json_is_null(v)))
            return s2s_err_set(err, S2S_EFORMAT, "%s: %s: \"%s\" has the wrong type", dpath, where,
                               k);
        if (s->type == JSON_INTEGER && json_integer_value(v) < 0)
            return s2s_err_set(err, S2S_EFORMAT, "%s: %s: \"%s\" is negative", dpath, where, k);
        if (strstr(k, "sha256") && json_is_string(v) && !is_hex64(json_string_value(v)))
            return s2s_err_set(err, S2S_EFORMAT, "%s: %s: \"%s\" is not 64 lowercase hex digits",
                               dpath, where, k);
    }
    for (const ds_key *s = spec; s->name; s++)
        if (s->required == 1 && !json_object_get(obj, s->name))
            return s2s_err_set(err, S2S_EFORMAT, "%s: %s: \"%s\" missing", dpath, where, s->name);
    return 0;
}

/* clang-format off */
static const ds_key DS_TOP[] = {
    {"format", JSON_STRING, 1},       {"format_version", JSON_INTEGER, 1},
    {"shard_count", JSON_INTEGER, 1}, {"samples", JSON_INTEGER, 1},
    {"members", JSON_INTEGER, 1},     {"pairs", JSON_INTEGER, 0},
    {"counts", JSON_OBJECT, 0},       {"shards", JSON_ARRAY, 1},
    {"build", JSON_OBJECT, 0},        {"recipe", JSON_OBJECT, 0},
    {"merge", JSON_OBJECT, 0},        {"provenance", JSON_ARRAY, 0},
    {DS_SEAL, JSON_STRING, 0},        {NULL, JSON_NULL, 0}};
static const ds_key DS_SHARD[] = {
    {"name", JSON_STRING, 1},         {"size", JSON_INTEGER, 1},
    {"sha256", JSON_STRING, 1},       {"index", JSON_STRING, 1},
    {"index_sha256", JSON_STRING, 1}, {"samples", JSON_INTEGER, 1},
    {"members", JSON_INTEGER, 0},     {"pairs", JSON_INTEGER, 0},
    {"first_key", JSON_STRING, 0},    {NULL, JSON_NULL, 0}};
static const ds_key DS_COUNT[] = {
    {"samples", JSON_INTEGER, 1}, {"pairs", JSON_INTEGER, 1}, {NULL, JSON_NULL, 0}};
static const ds_key DS_BUILD[] = {
    {"tool", JSON_STRING, 1}, {"version", JSON_STRING, 1}, {"params", JSON_OBJECT, 1},
    {NULL, JSON_NULL, 0}};
static const ds_key DS_PARAMS[] = {
    {"pattern", JSON_STRING, 0}, /* absent after s2s-shard merge (one per part) */
    {"per_shard", JSON_INTEGER, 1},  {"max_bytes", JSON_INTEGER, 1},
    {"gzip_level", JSON_INTEGER, 1}, {"flac_level", JSON_INTEGER, 1},
    {"part", JSON_STRING, 0},        {NULL, JSON_NULL, 0}};
static const ds_key DS_RECIPE[] = {
    {"name", JSON_STRING, 1}, {"sha256", JSON_STRING, 1}, {"text", JSON_STRING, 1},
    {"part", JSON_STRING, 2}, {NULL, JSON_NULL, 0}}; /* s2s-build writes null: no part */
static const ds_key DS_MERGE[] = {
    {"tool", JSON_STRING, 1},   {"version", JSON_STRING, 1},
    {"parts", JSON_INTEGER, 1}, {"part_list", JSON_ARRAY, 1},
    {NULL, JSON_NULL, 0}};
static const ds_key DS_MERGE_PART[] = {
    {"part", JSON_STRING, 1},    {"dataset_sha256", JSON_STRING, 1},
    {"shards", JSON_INTEGER, 1}, {"samples", JSON_INTEGER, 1},
    {NULL, JSON_NULL, 0}};
static const ds_key DS_PROV[] = {
    {"tool", JSON_STRING, 1}, {"version", JSON_STRING, 1}, {"params", JSON_TRUE, 0},
    {"samples", JSON_INTEGER, 1}, {NULL, JSON_NULL, 0}};
/* clang-format on */

/* The structure of dataset.json (docs/shards.md): known keys only, with their types. */
static int ds_schema(const json_t *ds, const char *dpath, s2s_err *err) {
    int rc = ds_keys(ds, DS_TOP, dpath, "top level", err);
    if (rc < 0) return rc;
    const char *fmt = json_string_value(json_object_get(ds, "format"));
    if (strcmp(fmt, "s2s-shards") != 0)
        return s2s_err_set(err, S2S_EFORMAT, "%s: \"format\" is \"%.40s\", not \"s2s-shards\"",
                           dpath, fmt);
    if (json_integer_value(json_object_get(ds, "format_version")) != 1)
        return s2s_err_set(err, S2S_EUNSUP, "%s: \"format_version\" %lld (this version reads 1)",
                           dpath,
                           (long long)json_integer_value(json_object_get(ds, "format_version")));
    size_t i;
    json_t *e;
    char where[64];
    json_array_foreach(json_object_get(ds, "shards"), i, e) {
        snprintf(where, sizeof where, "shard entry %zu", i);
        if ((rc = ds_keys(e, DS_SHARD, dpath, where, err)) < 0) return rc;
    }
    const char *task, *lang;
    json_t *t, *l;
    json_object_foreach(json_object_get(ds, "counts"), task, t) {
        if (!json_is_object(t))
            return s2s_err_set(err, S2S_EFORMAT, "%s: counts.%.40s is not an object", dpath, task);
        json_object_foreach(t, lang, l) {
            snprintf(where, sizeof where, "counts.%.20s.%.20s", task, lang);
            if ((rc = ds_keys(l, DS_COUNT, dpath, where, err)) < 0) return rc;
        }
    }
    json_t *b = json_object_get(ds, "build");
    if (b &&
        ((rc = ds_keys(b, DS_BUILD, dpath, "build", err)) < 0 ||
         (rc = ds_keys(json_object_get(b, "params"), DS_PARAMS, dpath, "build.params", err)) < 0))
        return rc;
    json_t *r = json_object_get(ds, "recipe");
    if (r && (rc = ds_keys(r, DS_RECIPE, dpath, "recipe", err)) < 0) return rc;
    json_t *m = json_object_get(ds, "merge");
    if (m) {
        if ((rc = ds_keys(m, DS_MERGE, dpath, "merge", err)) < 0) return rc;
        uint64_t ns = 0, nsh = 0;
        json_t *parts = json_object_get(m, "part_list");
        json_array_foreach(parts, i, e) {
            snprintf(where, sizeof where, "merge.part_list[%zu]", i);
            if ((rc = ds_keys(e, DS_MERGE_PART, dpath, where, err)) < 0) return rc;
            ns += (uint64_t)json_integer_value(json_object_get(e, "samples"));
            nsh += (uint64_t)json_integer_value(json_object_get(e, "shards"));
        }
        /* the parts add up to the whole (the totals are checked against the shards later) */
        if ((uint64_t)json_integer_value(json_object_get(m, "parts")) != json_array_size(parts) ||
            ns != (uint64_t)json_integer_value(json_object_get(ds, "samples")) ||
            nsh != (uint64_t)json_integer_value(json_object_get(ds, "shard_count")))
            return s2s_err_set(err, S2S_EDATA,
                               "%s: merge: the part list (%zu parts, %llu shards, %llu samples) "
                               "does not add up to \"parts\", \"shard_count\" and \"samples\"",
                               dpath, json_array_size(parts), (unsigned long long)nsh,
                               (unsigned long long)ns);
    }
    json_array_foreach(json_object_get(ds, "provenance"), i, e) {
        snprintf(where, sizeof where, "provenance record %zu", i);
        if ((rc = ds_keys(e, DS_PROV, dpath, where, err)) < 0) return rc;
    }
    return 0;
}

/* The recipe s2s-build records: its SHA-256 is that of its text; its name (and part) are those
 * of every shard name ("NAME-%06d.tar", "NAME-pIofN-%06d.tar", docs/recipes.md) and of the
 * shard pattern and part the build gave s2s-pack. Shard names are checked against the files, so
 * a damaged name or part cannot match by accident. */
static int ds_recipe(const json_t *ds, const char *dpath, s2s_err *err) {
    json_t *r = json_object_get(ds, "recipe");
    if (!r) return 0;
    const char *text = json_string_value(json_object_get(r, "text"));
    const char *sha = json_string_value(json_object_get(r, "sha256"));
    const char *name = json_string_value(json_object_get(r, "name"));
    const char *part = json_string_value(json_object_get(r, "part"));
    char hex[65];
    s2s_sha256_hex(text, strlen(text), hex);
    if (strcmp(hex, sha) != 0)
        return s2s_err_set(err, S2S_EDATA,
                           "%s: recipe.text hashes to %s, recipe.sha256 says %s (damaged)", dpath,
                           hex, sha);
    json_t *params = json_object_get(json_object_get(ds, "build"), "params");
    const char *pat = json_string_value(json_object_get(params, "pattern"));
    const char *ppart = json_string_value(json_object_get(params, "part"));
    char want[300];
    if (part) {
        unsigned a, n;
        char extra;
        if (sscanf(part, "%u/%u%c", &a, &n, &extra) != 2) /* NOLINT(cert-err34-c) */
            return s2s_err_set(err, S2S_EFORMAT, "%s: recipe.part \"%.40s\" is not I/N", dpath,
                               part);
        snprintf(want, sizeof want, "%.200s-p%uof%u-", name, a, n);
    } else {
        snprintf(want, sizeof want, "%.200s-", name);
    }
    size_t wl = strlen(want), i;
    json_t *e;
    /* (s2s-build splits the items itself: a part's pack records no part of its own) */
    int bad = (part && ppart && strcmp(ppart, part) != 0) || (!part && ppart) ||
              (pat && (strncmp(pat, want, wl) != 0 || (!part && pat[wl] != '%')));
    json_array_foreach(json_object_get(ds, "shards"), i, e) {
        if (strncmp(json_string_value(json_object_get(e, "name")), want, wl) != 0) bad = 1;
    }
    if (bad)
        return s2s_err_set(err, S2S_EDATA,
                           "%s: recipe name \"%.80s\" and part \"%.20s\" do not match the shard "
                           "names, the pattern \"%.80s\" or the part \"%.20s\" of the build "
                           "(damaged)",
                           dpath, name, part ? part : "", pat ? pat : "", ppart ? ppart : "");
    return 0;
}

/* The seal (when present) and the canonical form: any change that the cross-checks above cannot
 * see (build parameters, provenance, per-shard pair counts) changes the seal, and any change of
 * spelling that parses to the same content (whitespace, escapes, number forms, key order) changes
 * the bytes: both are faults, so every damaged byte is detected. */
static int ds_seal_check(const json_t *ds, const unsigned char *raw, size_t len, const char *dpath,
                         s2s_err *err) {
    const char *seal = json_string_value(json_object_get(ds, DS_SEAL));
    char hex[65];
    if (seal) {
        if (ds_seal_hex(ds, hex) < 0) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
        if (strcmp(hex, seal) != 0)
            return s2s_err_set(err, S2S_EDATA,
                               "%s: damaged or edited: its content hashes to %s, \"" DS_SEAL
                               "\" says %s",
                               dpath, hex, seal);
    }
    char *t = ds_canonical(ds);
    if (!t) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    size_t n = strlen(t), at = 0;
    while (at < n && at < len && (unsigned char)t[at] == raw[at])
        at++;
    free(t);
    if (at != n || len != n)
        return s2s_err_set(err, S2S_EDATA,
                           "%s: byte %zu: not in the canonical form s2s-pack writes (2-space "
                           "indent, no other spacing or escapes): damaged or edited by hand",
                           dpath, at);
    return 0;
}

/* ---- parallel shard checks (s2s_dataset_verify_threads) ----------------------------------
 * The expensive part of a dataset's verification, shard_verify (reading and hashing every
 * byte), runs for several shards at once without the across-shard key set; the main loop then
 * takes the results in shard order, first running the key check shard_verify would have run
 * against the keys of the earlier shards, so the fault reported is the one a sequential run
 * reports. */
typedef struct vjob {
    char *path;      /* NULL: not precomputed (an entry the main loop refuses anyway) */
    const char *sha; /* borrowed from dataset.json */
    int rc;
    s2s_err err;
    shard_facts fa;
} vjob;

typedef struct vpool {
    vjob *jobs;
    size_t n, next;
    pthread_mutex_t mu;
} vpool;

static void *vpool_worker(void *arg) {
    vpool *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        size_t i = p->next < p->n ? p->next++ : p->n;
        pthread_mutex_unlock(&p->mu);
        if (i >= p->n) return NULL;
        vjob *j = &p->jobs[i];
        if (!j->path) continue;
        s2s_err_clear(&j->err);
        j->fa.want_keys = 1;
        j->rc = shard_verify(j->path, j->sha, NULL, &j->fa, &j->err);
    }
}

/* Runs shard_verify for the valid entries of shards[] on up to `threads` threads. Returns the
 * jobs (caller frees with vjobs_free) or NULL when there is nothing to win (one thread or one
 * shard) or no memory (then the main loop verifies sequentially, the same result). */
static vjob *vjobs_run(const char *dir, json_t *sh, int threads) {
    size_t n = json_array_size(sh);
    if (threads < 2 || n < 2) return NULL;
    vjob *jobs = calloc(n, sizeof *jobs);
    if (!jobs) return NULL;
    size_t i;
    json_t *e;
    json_array_foreach(sh, i, e) {
        const char *name = json_string_value(json_object_get(e, "name"));
        const char *iname = json_string_value(json_object_get(e, "index"));
        jobs[i].sha = json_string_value(json_object_get(e, "sha256"));
        if (name && iname && *name && !strchr(name, '/') && !strchr(iname, '/'))
            jobs[i].path = join(dir, name);
    }
    vpool p = {jobs, n, 0, PTHREAD_MUTEX_INITIALIZER};
    size_t nt = (size_t)threads < n ? (size_t)threads : n;
    pthread_t tid[64];
    if (nt > 64) nt = 64;
    size_t started = 0;
    for (; started + 1 < nt; started++)
        if (pthread_create(&tid[started], NULL, vpool_worker, &p) != 0) break;
    vpool_worker(&p); /* this thread works too; with no other thread it does everything */
    for (size_t t = 0; t < started; t++)
        pthread_join(tid[t], NULL);
    return jobs;
}

static void vjobs_free(vjob *jobs, size_t n) {
    for (size_t i = 0; jobs && i < n; i++) {
        free(jobs[i].path);
        facts_free(&jobs[i].fa);
    }
    free(jobs);
}

/* shard_verify's result for shard j, taken in order: the key check against the earlier
 * shards' keys first (where shard_verify ran it), then the precomputed result. */
static int vjob_take(vjob *j, const char *spath, s2s_idset *keys, shard_facts *fa, s2s_err *err) {
    if (j->fa.keys_reached) {
        s2s_idset *local = s2s_idset_new();
        if (!local) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
        int rc = 0;
        for (size_t k = 0; k < j->fa.n_keys && rc == 0; k++)
            rc = key_check(spath, j->fa.keys[k], local, keys, err);
        s2s_idset_free(local);
        if (rc < 0) return rc;
    }
    fa->samples = j->fa.samples, fa->members = j->fa.members;
    fa->first_key = j->fa.first_key;
    j->fa.first_key = NULL;
    if (j->rc < 0) {
        if (err) *err = j->err;
        return j->rc;
    }
    return 0;
}

int s2s_dataset_verify(const char *dir, s2s_err *err) {
    return s2s_dataset_verify_threads(dir, 1, err);
}

int s2s_dataset_verify_threads(const char *dir, int threads, s2s_err *err) {
    char *dpath = join(dir, "dataset.json");
    if (!dpath) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    unsigned char *raw = NULL;
    size_t rawlen = 0;
    json_t *ds = NULL;
    s2s_idset *keys = NULL;
    int rc = 0;
    vjob *jobs = NULL;
    size_t n_jobs = 0;
    struct stat dst;
    if (stat(dpath, &dst) != 0) {
        rc =
            s2s_err_set(err, S2S_EIO,
                        "%s: missing (not a dataset directory, or the pack did not finish)", dpath);
        goto out;
    }
    if ((rc = s2s_read_file(dpath, &raw, &rawlen, err)) < 0) goto out;
    json_error_t je;
    ds = json_loadb((const char *)raw, rawlen, JSON_REJECT_DUPLICATES, &je);
    if (!ds) {
        rc = s2s_err_set(err, S2S_EFORMAT, "%s:%d: %s", dpath, je.line, je.text);
        goto out;
    }
    if ((rc = ds_schema(ds, dpath, err)) < 0) goto out;
    if (!(keys = s2s_idset_new())) {
        rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
        goto out;
    }
    json_t *sh = json_object_get(ds, "shards");
    uint64_t total = 0, pairs = 0, members = 0;
    size_t i;
    json_t *e;
    jobs = vjobs_run(dir, sh, threads);
    n_jobs = json_array_size(sh);
    if ((uint64_t)json_integer_value(json_object_get(ds, "shard_count")) != json_array_size(sh)) {
        rc = s2s_err_set(err, S2S_EDATA, "%s: \"shard_count\" is %lld, \"shards\" lists %zu", dpath,
                         (long long)json_integer_value(json_object_get(ds, "shard_count")),
                         json_array_size(sh));
        goto out;
    }
    json_array_foreach(sh, i, e) {
        const char *name = json_string_value(json_object_get(e, "name"));
        const char *sha = json_string_value(json_object_get(e, "sha256"));
        const char *iname = json_string_value(json_object_get(e, "index"));
        const char *isha = json_string_value(json_object_get(e, "index_sha256"));
        const char *fk = json_string_value(json_object_get(e, "first_key"));
        json_t *js = json_object_get(e, "samples"), *jz = json_object_get(e, "size");
        json_t *jm = json_object_get(e, "members");
        if (!*name || strchr(name, '/') || strchr(iname, '/')) {
            rc = s2s_err_set(err, S2S_EFORMAT, "%s: shard entry %zu: bad \"name\" or \"index\"",
                             dpath, i);
            goto out;
        }
        char *spath = join(dir, name), *ipath = join(dir, iname);
        char *want_ipath = spath ? s2s_index_path(spath) : NULL;
        if (!spath || !ipath || !want_ipath) {
            free(spath);
            free(ipath);
            free(want_ipath);
            rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
            goto out;
        }
        struct stat st;
        memset(&st, 0, sizeof st);
        if (strcmp(ipath, want_ipath) != 0)
            rc = s2s_err_set(err, S2S_EFORMAT, "%s: shard %s: index must be named %s.idx", dpath,
                             name, name);
        else if (stat(spath, &st) != 0)
            rc = s2s_err_errno(err, "%s: shard listed in dataset.json is missing", spath);
        else if ((uint64_t)st.st_size > (uint64_t)json_integer_value(jz))
            rc = s2s_err_set(err, S2S_EDATA, "%s: %llu bytes, dataset.json says %llu", spath,
                             (unsigned long long)st.st_size,
                             (unsigned long long)json_integer_value(jz));
        if (rc == 0) {
            char got[65];
            struct stat ist;
            if (stat(ipath, &ist) != 0)
                rc = s2s_err_errno(err, "%s: missing index (every shard needs its NAME.tar.idx)",
                                   ipath);
            else if ((rc = s2s_sha256_file(ipath, got, err)) == 0 && strcmp(got, isha) != 0)
                rc = s2s_err_set(err, S2S_EDATA,
                                 "%s: index damaged or stale: SHA-256 %s, dataset.json says %s",
                                 ipath, got, isha);
        }
        shard_facts fa = {0};
        /* a truncated shard is reported by shard_verify (naming the member the cut falls in) */
        if (rc == 0 && jobs && jobs[i].path && strcmp(jobs[i].path, spath) == 0)
            rc = vjob_take(&jobs[i], spath, keys, &fa, err);
        else if (rc == 0)
            rc = shard_verify(spath, sha, keys, &fa, err);
        if (rc == 0 && fa.samples != (uint64_t)json_integer_value(js))
            rc = s2s_err_set(err, S2S_EDATA, "%s: %llu samples, dataset.json says %lld", spath,
                             (unsigned long long)fa.samples, (long long)json_integer_value(js));
        if (rc == 0 && (uint64_t)st.st_size != (uint64_t)json_integer_value(jz))
            rc = s2s_err_set(err, S2S_EDATA, "%s: %llu bytes, dataset.json says %llu", spath,
                             (unsigned long long)st.st_size,
                             (unsigned long long)json_integer_value(jz));
        if (rc == 0 && jm && fa.members != (uint64_t)json_integer_value(jm))
            rc = s2s_err_set(err, S2S_EDATA, "%s: %llu members, dataset.json says %lld", spath,
                             (unsigned long long)fa.members, (long long)json_integer_value(jm));
        if (rc == 0 && fk && (!fa.first_key || strcmp(fk, fa.first_key) != 0))
            rc = s2s_err_set(err, S2S_EDATA, "%s: first sample is %s, dataset.json says %.80s",
                             spath, fa.first_key ? fa.first_key : "(none)", fk);
        facts_free(&fa);
        free(spath);
        free(ipath);
        free(want_ipath);
        if (rc < 0) goto out;
        total += fa.samples;
        members += fa.members;
        pairs += (uint64_t)json_integer_value(json_object_get(e, "pairs"));
    }
    /* a shard file the dataset does not list: left by an earlier pack with more shards, or
     * copied in from another dataset; readers of the directory would disagree about it */
    {
        DIR *d = opendir(dir);
        struct dirent *de;
        while (d && rc == 0 && (de = readdir(d))) {
            size_t l = strlen(de->d_name);
            int is_tar = l > 4 && strcmp(de->d_name + l - 4, ".tar") == 0;
            int is_tmp = strstr(de->d_name, ".tmp-") != NULL;
            if (!is_tar && !is_tmp) continue;
            int listed = 0;
            json_array_foreach(sh, i, e) {
                const char *name = json_string_value(json_object_get(e, "name"));
                if (name && strcmp(name, de->d_name) == 0) listed = 1;
            }
            if (is_tmp)
                rc = s2s_err_set(err, S2S_EDATA,
                                 "%s/%s: temporary file of an unfinished write (a pack or build "
                                 "was killed?)",
                                 dir, de->d_name);
            else if (!listed)
                rc = s2s_err_set(err, S2S_EDATA,
                                 "%s/%s: shard not listed in dataset.json (left from an earlier "
                                 "pack, or from another dataset?)",
                                 dir, de->d_name);
        }
        if (d) closedir(d);
        if (rc < 0) goto out;
    }
    json_t *jt = json_object_get(ds, "samples");
    if ((uint64_t)json_integer_value(jt) != total) {
        rc = s2s_err_set(err, S2S_EDATA, "%s: \"samples\" is %lld, the shards hold %llu", dpath,
                         (long long)json_integer_value(jt), (unsigned long long)total);
        goto out;
    }
    json_t *jmm = json_object_get(ds, "members");
    if ((uint64_t)json_integer_value(jmm) != members) {
        rc = s2s_err_set(err, S2S_EDATA, "%s: \"members\" is %lld, the shards hold %llu", dpath,
                         (long long)json_integer_value(jmm), (unsigned long long)members);
        goto out;
    }
    json_t *jp = json_object_get(ds, "pairs");
    if (jp && (uint64_t)json_integer_value(jp) != pairs) {
        rc = s2s_err_set(err, S2S_EDATA, "%s: \"pairs\" is %lld, the shard entries add up to %llu",
                         dpath, (long long)json_integer_value(jp), (unsigned long long)pairs);
        goto out;
    }
    /* counts per task and language must add up to the total too */
    json_t *counts = json_object_get(ds, "counts");
    if (counts) {
        uint64_t cs = 0, cp = 0;
        const char *task, *lang;
        json_t *t, *l;
        json_object_foreach(counts, task, t) {
            json_object_foreach(t, lang, l) {
                cs += (uint64_t)json_integer_value(json_object_get(l, "samples"));
                cp += (uint64_t)json_integer_value(json_object_get(l, "pairs"));
            }
        }
        if (cs != total || (jp && cp != pairs)) {
            rc = s2s_err_set(err, S2S_EDATA,
                             "%s: \"counts\" add up to %llu samples / %llu pairs, the shards "
                             "hold %llu / %llu",
                             dpath, (unsigned long long)cs, (unsigned long long)cp,
                             (unsigned long long)total, (unsigned long long)pairs);
            goto out;
        }
    }
    if ((rc = ds_recipe(ds, dpath, err)) < 0) goto out;
    rc = ds_seal_check(ds, raw, rawlen, dpath, err);
out:
    vjobs_free(jobs, n_jobs);
    s2s_idset_free(keys);
    json_decref(ds);
    free(raw);
    free(dpath);
    return rc;
}

/* Adds a stored member (takes buf) to s: KEY.json[.gz] becomes s->item, others members. */
static int add_stored(s2s_sample *s, const char *shard, const char *name, unsigned char *buf,
                      size_t size, s2s_err *err) {
    const char *suffix = name + strlen(s->key) + 1;
    if (strcmp(suffix, "json.gz") == 0 || strcmp(suffix, "json") == 0) {
        unsigned char *raw = buf;
        size_t rl = size;
        int rc;
        if (suffix[4] == '.') {
            rc = s2s_gunzip(buf, size, &raw, &rl, err);
            free(buf);
            if (rc < 0)
                return s2s_err_prefix(err, "%s: sample %s, member %s: ", shard, s->key, name);
        }
        json_error_t je;
        json_decref(s->item);
        s->item = json_loadb((const char *)raw, rl, JSON_REJECT_DUPLICATES, &je);
        free(raw);
        if (!s->item)
            return s2s_err_set(err, S2S_EDATA, "%s: sample %s, member %s: bad JSON: %s", shard,
                               s->key, name, je.text);
        return 0;
    }
    return s2s_sample_put(s, suffix, buf, size, err);
}

int s2s_shard_get(const char *const *shards, size_t n, const char *key, s2s_sample **out,
                  s2s_err *err) {
    *out = NULL;
    for (size_t si = 0; si < n; si++) {
        char *ipath = s2s_index_path(shards[si]);
        if (!ipath) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
        s2s_index *ix = s2s_index_read(ipath, err);
        if (!ix) {
            free(ipath);
            return err ? err->code : S2S_EFORMAT;
        }
        size_t k = 0;
        while (k < ix->n_samples && strcmp(ix->samples[k].key, key) != 0)
            k++;
        if (k == ix->n_samples) {
            s2s_index_free(ix);
            free(ipath);
            continue;
        }
        int rc = 0;
        s2s_sample *s = NULL;
        unsigned char *buf = NULL;
        FILE *f = fopen(shards[si], "rb");
        struct stat st;
        const char *bn = base_name(shards[si]);
        if (!f || fstat(fileno(f), &st) != 0) {
            rc = s2s_err_errno(err, "%s: cannot open shard", shards[si]);
            goto done;
        }
        if (strcmp(ix->shard, bn) != 0) {
            rc = s2s_err_set(err, S2S_EDATA, "%s: index %s belongs to another shard (%s)",
                             shards[si], ipath, ix->shard);
            goto done;
        }
        if ((uint64_t)st.st_size != ix->shard_size) {
            rc = s2s_err_set(
                err, S2S_EDATA, "%s: %llu bytes, index says %llu (truncated shard or stale index)",
                shards[si], (unsigned long long)st.st_size, (unsigned long long)ix->shard_size);
            goto done;
        }
        if (!(s = s2s_sample_new(key, err))) {
            rc = err ? err->code : S2S_ENOMEM;
            goto done;
        }
        if (!(s->origin = strdup(shards[si]))) {
            rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
            goto done;
        }
        const s2s_index_sample *is = &ix->samples[k];
        for (size_t mi = is->first; mi < is->first + is->n; mi++) {
            const s2s_index_member *m = &ix->members[mi];
            unsigned char h[512];
            /* the header must name this member: a cheap guard against a stale index */
            size_t nl = strlen(m->name);
            if (fseeko(f, (off_t)(m->data_off - 512), SEEK_SET) != 0 ||
                fread(h, 1, 512, f) != 512) {
                rc = s2s_err_errno(err, "%s: sample %s, member %s: cannot read header", shards[si],
                                   key, m->name);
                goto done;
            }
            if (nl <= 100 && (memcmp(h, m->name, nl) != 0 || (nl < 100 && h[nl] != 0))) {
                rc = s2s_err_set(err, S2S_EDATA,
                                 "%s: sample %s, member %s: the tar header at byte %llu names "
                                 "another member (stale index?)",
                                 shards[si], key, m->name, (unsigned long long)(m->data_off - 512));
                goto done;
            }
            if (m->size > (uint64_t)st.st_size) {
                rc = s2s_err_set(err, S2S_EDATA, "%s: member %s larger than the shard", ipath,
                                 m->name);
                goto done;
            }
            buf = malloc((size_t)m->size + 1);
            if (!buf) {
                rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
                goto done;
            }
            if (m->size && fread(buf, 1, (size_t)m->size, f) != m->size) {
                rc = s2s_err_errno(err, "%s: sample %s, member %s: short read", shards[si], key,
                                   m->name);
                goto done;
            }
            buf[m->size] = 0;
            uint32_t crc = s2s_crc32(buf, (size_t)m->size);
            if (crc != m->crc) {
                rc = s2s_err_set(err, S2S_EDATA,
                                 "%s: sample %s, member %s: data damaged (CRC-32 %08x, index "
                                 "says %08x)",
                                 shards[si], key, m->name, crc, m->crc);
                goto done;
            }
            rc = add_stored(s, shards[si], m->name, buf, (size_t)m->size, err);
            buf = NULL;
            if (rc < 0) goto done;
        }
    done:
        free(buf);
        if (f) fclose(f);
        s2s_index_free(ix);
        free(ipath);
        if (rc < 0) {
            s2s_sample_free(s);
            return rc;
        }
        *out = s;
        return 1;
    }
    return 0;
}

int s2s_shard_sample_to_stream(s2s_sample *s, s2s_err *err) {
    for (size_t i = 0; i < s->n_members; i++) {
        s2s_member *m = &s->members[i];
        size_t sl = strlen(m->suffix);
        unsigned char *raw = NULL;
        size_t rl = 0;
        int rc;
        if (sl > 3 && strcmp(m->suffix + sl - 3, ".gz") == 0) {
            rc = s2s_gunzip(m->data, m->size, &raw, &rl, err);
            if (rc == 0) m->suffix[sl - 3] = 0;
        } else if (sl > 5 && strcmp(m->suffix + sl - 5, ".flac") == 0) {
            rc = s2s_flac_decode(m->data, m->size, &raw, &rl, err);
            if (rc == 0) memcpy(m->suffix + sl - 5, ".wav", 5);
        } else {
            continue;
        }
        if (rc < 0) return s2s_err_prefix(err, "sample %s, member %s: ", s->key, m->suffix);
        free(m->data);
        m->data = raw;
        m->size = rl;
    }
    return 0;
}

/* ---- sequential reader ----------------------------------------------------------------------- */
struct s2s_shard_reader {
    char *path;
    FILE *f;
    s2s_index *ix;
    size_t next; /* next sample */
    int done;
};

s2s_shard_reader *s2s_shard_reader_open(const char *path, s2s_err *err) {
    s2s_shard_reader *r = calloc(1, sizeof *r);
    char *ipath = s2s_index_path(path);
    struct stat st;
    if (!r || !ipath || !(r->path = strdup(path))) {
        s2s_err_set(err, S2S_ENOMEM, "out of memory");
        goto fail;
    }
    if (!(r->ix = s2s_index_read(ipath, err))) goto fail;
    if (strcmp(r->ix->shard, base_name(path)) != 0) {
        s2s_err_set(err, S2S_EDATA, "%s: index %s belongs to another shard (%s)", path, ipath,
                    r->ix->shard);
        goto fail;
    }
    if (!(r->f = fopen(path, "rb")) || fstat(fileno(r->f), &st) != 0) {
        s2s_err_errno(err, "%s: cannot open shard", path);
        goto fail;
    }
    if ((uint64_t)st.st_size != r->ix->shard_size) {
        s2s_err_set(err, S2S_EDATA, "%s: %s: %llu bytes, index says %llu (stale index?)", path,
                    (uint64_t)st.st_size < r->ix->shard_size ? "truncated" : "size differs",
                    (unsigned long long)st.st_size, (unsigned long long)r->ix->shard_size);
        goto fail;
    }
    /* members must lie back to back from byte 0 (as verify checks) for a sequential read */
    uint64_t pos = 0;
    for (size_t i = 0; i < r->ix->n_members; i++) {
        const s2s_index_member *m = &r->ix->members[i];
        if (m->hdr_off != pos) {
            s2s_err_set(err, S2S_EFORMAT,
                        "%s: member %s at byte %llu, expected %llu (index damaged)", ipath, m->name,
                        (unsigned long long)m->hdr_off, (unsigned long long)pos);
            goto fail;
        }
        pos = m->data_off + (m->size + 511) / 512 * 512;
    }
    if (pos + 1024 != r->ix->shard_size) {
        s2s_err_set(err, S2S_EFORMAT,
                    "%s: members end at byte %llu, the shard at %llu (index "
                    "damaged)",
                    ipath, (unsigned long long)pos, (unsigned long long)r->ix->shard_size);
        goto fail;
    }
    free(ipath);
    return r;
fail:
    free(ipath);
    s2s_shard_reader_close(r);
    return NULL;
}

int s2s_shard_reader_next(s2s_shard_reader *r, s2s_sample **out, s2s_err *err) {
    *out = NULL;
    if (r->done) return 0;
    s2s_index *ix = r->ix;
    if (r->next == ix->n_samples) {
        unsigned char tail[1024], zero[1024];
        memset(zero, 0, sizeof zero);
        if (fread(tail, 1, sizeof tail, r->f) != sizeof tail || memcmp(tail, zero, 1024) != 0)
            return s2s_err_set(err, S2S_EDATA, "%s: end-of-archive marker damaged or missing",
                               r->path);
        r->done = 1;
        return 0;
    }
    const s2s_index_sample *is = &ix->samples[r->next++];
    s2s_sample *s = s2s_sample_new(is->key, err);
    if (!s) return err ? err->code : S2S_ENOMEM;
    int rc = 0;
    if (!(s->origin = strdup(r->path))) rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
    for (size_t mi = is->first; rc == 0 && mi < is->first + is->n; mi++) {
        const s2s_index_member *m = &ix->members[mi];
        unsigned char *buf = NULL;
        if ((rc = read_member(r->f, r->path, m, is->key, NULL, &buf, err)) < 0) break;
        rc = add_stored(s, r->path, m->name, buf, (size_t)m->size, err);
    }
    if (rc == 0 && !s->item)
        rc = s2s_err_set(err, S2S_EDATA, "%s: sample %s has no %s.json.gz member", r->path, is->key,
                         is->key);
    if (rc < 0) {
        s2s_sample_free(s);
        return rc;
    }
    *out = s;
    return 1;
}

size_t s2s_shard_reader_count(const s2s_shard_reader *r) {
    return r->ix->n_samples;
}

void s2s_shard_reader_close(s2s_shard_reader *r) {
    if (!r) return;
    if (r->f) fclose(r->f);
    s2s_index_free(r->ix);
    free(r->path);
    free(r);
}

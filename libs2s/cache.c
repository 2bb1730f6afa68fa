/* cache.c — the score cache of s2s-score (s2s/cache.h, docs/score.md "Score cache"). */
#include "s2s/cache.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "s2s/item.h"
#include "s2s/util.h"

#define FLUSH_LINES 64
#define FLUSH_SECONDS 1.0
#define FSYNC_SECONDS 5.0
#define HASH_HEX 32 /* request hash: 128 bits of SHA-256 */

/* An answer, keyed by the request hash (which covers item id, mode and candidate too). */
typedef struct entry {
    unsigned char key[16];
    int used;
    unsigned flags;
    double nll;
    uint64_t ntok;
} entry;

/* A request asked of the backend (lookup missed), waiting for its reply to be stored. Replies
 * come back roughly in order, so a ring searched from its head finds them at once. */
typedef struct pend {
    char item[256];
    s2s_mode mode;
    unsigned cand;
    int done;
    unsigned char key[16];
} pend;

struct s2s_cache {
    char *path;
    int fd;
    FILE *out;
    char ident[17];
    char *spec, *model, *model_id;
    int dedup, declared;
    entry *tab;
    size_t ntab, captab;
    pend *ring; /* pending requests: ring[head .. head+npend) modulo ringcap */
    size_t ringcap, head, npend;
    uint64_t loaded, stored, hits;
    unsigned unflushed;
    double last_flush, last_sync;
    char note[512];
    /* per-item memo: the hash of the item's JSON and of its audio files */
    char *memo_item;
    unsigned char memo_item_hash[32];
    json_t *memo_audio; /* path -> 64 hex */
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- hash table of answers (no deletions) --------------------------------------------------- */

static uint64_t key_hv(const unsigned char k[16]) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)k[i] << (8 * i);
    return v;
}

static entry *tab_find(const s2s_cache *c, const unsigned char key[16]) {
    if (!c->captab) return NULL;
    size_t mask = c->captab - 1;
    for (size_t i = (size_t)key_hv(key) & mask;; i = (i + 1) & mask) {
        entry *e = &c->tab[i];
        if (!e->used) return NULL;
        if (!memcmp(e->key, key, 16)) return e;
    }
}

static int tab_grow(s2s_cache *c) {
    size_t ncap = c->captab ? c->captab * 2 : 1024;
    entry *nt = calloc(ncap, sizeof *nt);
    if (!nt) return -1;
    for (size_t i = 0; i < c->captab; i++) {
        entry *e = &c->tab[i];
        if (!e->used) continue;
        size_t j = (size_t)key_hv(e->key) & (ncap - 1);
        while (nt[j].used)
            j = (j + 1) & (ncap - 1);
        nt[j] = *e;
    }
    free(c->tab);
    c->tab = nt;
    c->captab = ncap;
    return 0;
}

/* Inserts unless the key is there (the first answer stays). 1 inserted, 0 present, -1 ENOMEM. */
static int tab_put(s2s_cache *c, const unsigned char key[16], double nll, uint64_t ntok,
                   unsigned flags) {
    if (tab_find(c, key)) return 0;
    if ((c->ntab + 1) * 4 > c->captab * 3 && tab_grow(c)) return -1;
    size_t mask = c->captab - 1, i = (size_t)key_hv(key) & mask;
    while (c->tab[i].used)
        i = (i + 1) & mask;
    entry *e = &c->tab[i];
    memcpy(e->key, key, 16);
    e->used = 1;
    e->nll = nll;
    e->ntok = ntok;
    e->flags = flags;
    c->ntab++;
    return 1;
}

/* ---- keys ------------------------------------------------------------------------------------ */

static void to_hex(const unsigned char *k, size_t n, char *out) {
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hx[k[i] >> 4];
        out[2 * i + 1] = hx[k[i] & 15];
    }
    out[2 * n] = 0;
}

static int from_hex(const char *s, unsigned char *k, size_t n) {
    if (!s || strlen(s) != 2 * n) return -1;
    for (size_t i = 0; i < 2 * n; i++) {
        int v = s[i] >= '0' && s[i] <= '9'   ? s[i] - '0'
                : s[i] >= 'a' && s[i] <= 'f' ? s[i] - 'a' + 10
                                             : -1;
        if (v < 0) return -1;
        if (i % 2 == 0)
            k[i / 2] = (unsigned char)(v << 4);
        else
            k[i / 2] |= (unsigned char)v;
    }
    return 0;
}

static void hash_field(s2s_sha256 *s, char tag, const void *p, size_t n) {
    unsigned char hdr[9];
    hdr[0] = (unsigned char)tag;
    uint64_t len = p ? (uint64_t)n : UINT64_MAX; /* NULL differs from "" */
    for (int i = 0; i < 8; i++)
        hdr[1 + i] = (unsigned char)(len >> (8 * i));
    s2s_sha256_update(s, hdr, sizeof hdr);
    if (p && n) s2s_sha256_update(s, p, n);
}

static void hash_str(s2s_sha256 *s, char tag, const char *v) {
    hash_field(s, tag, v, v ? strlen(v) : 0);
}

/* Adds the SHA-256 of an audio file (memoized per item by path). */
static int hash_audio(s2s_cache *c, s2s_sha256 *s, char tag, const char *path, s2s_err *err) {
    if (!path) {
        hash_field(s, tag, NULL, 0);
        return 0;
    }
    const char *hex = json_string_value(json_object_get(c->memo_audio, path));
    char buf[65];
    if (!hex) {
        int rc = s2s_sha256_file(path, buf, err);
        if (rc) return rc;
        json_object_set_new(c->memo_audio, path, json_string(buf));
        hex = buf;
    }
    hash_field(s, tag, hex, 64);
    return 0;
}

/* Hash of everything a request carries (see s2s/cache.h): item id, mode, candidate, the item's
 * JSON, lang, texts, units and audio bytes. */
static int request_hash(s2s_cache *c, const s2s_request *rq, unsigned char out[16], s2s_err *err) {
    if (!c->memo_item || strcmp(c->memo_item, rq->item_id) != 0) {
        free(c->memo_item);
        c->memo_item = strdup(rq->item_id);
        if (!c->memo_item) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
        if (json_object_size(c->memo_audio)) json_object_clear(c->memo_audio);
        char *js = rq->item ? s2s_item_dumps(rq->item) : NULL;
        if (rq->item && !js) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
        s2s_sha256 s;
        s2s_sha256_init(&s);
        hash_str(&s, 'J', js);
        s2s_sha256_final(&s, c->memo_item_hash);
        free(js);
    }
    s2s_sha256 s;
    s2s_sha256_init(&s);
    s2s_sha256_update(&s, "s2s-score request 1", 19);
    hash_str(&s, 'i', rq->item_id);
    unsigned char mc[8] = {(unsigned char)rq->mode, (unsigned char)rq->cand,
                           (unsigned char)(rq->cand >> 8), (unsigned char)(rq->cand >> 16),
                           (unsigned char)(rq->cand >> 24)};
    hash_field(&s, 'k', mc, sizeof mc);
    hash_field(&s, 'I', c->memo_item_hash, 32);
    hash_str(&s, 'l', rq->lang);
    hash_str(&s, 'x', rq->ctx_text);
    hash_str(&s, 'y', rq->cand_text);
    hash_str(&s, 'u', rq->ctx_units);
    hash_str(&s, 'v', rq->cand_units);
    int rc = hash_audio(c, &s, 'a', rq->ctx_audio, err);
    if (!rc) rc = hash_audio(c, &s, 'b', rq->cand_audio, err);
    if (rc) return rc;
    unsigned char d[32];
    s2s_sha256_final(&s, d);
    memcpy(out, d, 16);
    return 0;
}

/* ---- loading ----------------------------------------------------------------------------------
 */

static int bad_line(s2s_cache *c, size_t line, const char *why, s2s_err *err) {
    return s2s_err_set(err, S2S_EFORMAT,
                       "%s:%zu: %s (not a score cache line; remove the file to start afresh)",
                       c->path, line, why);
}

static int is_hex(const char *s, size_t n) {
    if (!s || strlen(s) != n) return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return 1;
}

static int parse_line(s2s_cache *c, const char *text, size_t line, s2s_err *err) {
    json_error_t je;
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    if (!j || !json_is_object(j)) {
        json_decref(j);
        return bad_line(c, line, j ? "not a JSON object" : je.text, err);
    }
    int rc = 0;
    const char *b = json_string_value(json_object_get(j, "b"));
    if (!is_hex(b, 16)) {
        rc = bad_line(c, line, "\"b\" is not a 16-hex-digit backend identity", err);
    } else if (json_object_get(j, "backend")) {
        if (!strcmp(b, c->ident)) c->declared = 1;
    } else {
        const char *item = json_string_value(json_object_get(j, "item"));
        const char *mode = json_string_value(json_object_get(j, "mode"));
        const char *h = json_string_value(json_object_get(j, "h"));
        const char *nls = json_string_value(json_object_get(j, "nll"));
        json_t *jc = json_object_get(j, "cand"), *jn = json_object_get(j, "ntok");
        json_t *jf = json_object_get(j, "flags");
        s2s_mode m;
        char *end = NULL;
        double nll = nls ? strtod(nls, &end) : 0;
        if (!item || !*item)
            rc = bad_line(c, line, "no \"item\"", err);
        else if (!mode || s2s_mode_parse(mode, &m, NULL))
            rc = bad_line(c, line, "\"mode\" is not t2t, s2t, t2s or s2s", err);
        else if (!json_is_integer(jc) || json_integer_value(jc) < 0 ||
                 json_integer_value(jc) > 0xFFFFFFF)
            rc = bad_line(c, line, "\"cand\" is not a candidate index", err);
        else if (!is_hex(h, HASH_HEX))
            rc = bad_line(c, line, "\"h\" is not a request hash", err);
        else if (!nls || !*nls || *end)
            rc = bad_line(c, line, "\"nll\" is not a number written as a string", err);
        else if (!json_is_integer(jn) || json_integer_value(jn) < 0)
            rc = bad_line(c, line, "\"ntok\" is not a count", err);
        else if (!json_is_integer(jf) || json_integer_value(jf) < 0)
            rc = bad_line(c, line, "\"flags\" is not a count", err);
        else if (!strcmp(b, c->ident)) {
            unsigned char key[16];
            from_hex(h, key, 16);
            int put = tab_put(c, key, nll, (uint64_t)json_integer_value(jn),
                              (unsigned)json_integer_value(jf));
            if (put < 0) rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
            c->loaded += put > 0;
        }
    }
    json_decref(j);
    return rc;
}

static int load(s2s_cache *c, s2s_err *err) {
    int fd2 = dup(c->fd);
    if (fd2 < 0) return s2s_err_errno(err, "%s", c->path);
    FILE *in = fdopen(fd2, "r");
    if (!in) {
        close(fd2);
        return s2s_err_errno(err, "%s", c->path);
    }
    char *buf = NULL;
    size_t bcap = 0, line = 0;
    off_t good = 0; /* end of the last complete line */
    ssize_t n;
    int rc = 0;
    while ((n = getline(&buf, &bcap, in)) > 0) {
        line++;
        if (buf[n - 1] != '\n') {
            snprintf(c->note, sizeof c->note, "%s:%zu: torn last line (an interrupted run) removed",
                     c->path, line);
            if (ftruncate(c->fd, good)) rc = s2s_err_errno(err, "%s: truncate", c->path);
            break;
        }
        buf[n - 1] = 0;
        if (memchr(buf, 0, (size_t)n - 1)) {
            rc = bad_line(c, line, "NUL byte in the line", err);
            break;
        }
        if ((rc = parse_line(c, buf, line, err))) break;
        good += n;
    }
    if (!rc && ferror(in)) rc = s2s_err_errno(err, "%s", c->path);
    free(buf);
    fclose(in);
    return rc;
}

/* ---- public ---------------------------------------------------------------------------------- */

s2s_cache *s2s_cache_open(const char *path, const char *spec, const char *model,
                          const char *model_id, int dedup, s2s_err *err) {
    s2s_cache *c = calloc(1, sizeof *c);
    if (!c) {
        s2s_err_set(err, S2S_ENOMEM, "out of memory");
        return NULL;
    }
    c->fd = -1;
    c->path = strdup(path);
    c->spec = strdup(spec ? spec : "");
    c->model = strdup(model ? model : "");
    c->model_id = model_id ? strdup(model_id) : NULL;
    c->dedup = dedup != 0;
    c->memo_audio = json_object();
    if (!c->path || !c->spec || !c->model || (model_id && !c->model_id) || !c->memo_audio) {
        s2s_err_set(err, S2S_ENOMEM, "out of memory");
        s2s_cache_close(c, NULL);
        return NULL;
    }
    s2s_sha256 s;
    s2s_sha256_init(&s);
    s2s_sha256_update(&s, "s2s-score cache 1", 17);
    hash_str(&s, 's', c->spec);
    hash_str(&s, 'm', c->model);
    hash_str(&s, 'i', c->model_id);
    hash_str(&s, 'd', c->dedup ? "1" : "0");
    unsigned char d[32];
    s2s_sha256_final(&s, d);
    for (int i = 0; i < 8; i++)
        snprintf(c->ident + 2 * i, 3, "%02x", d[i]);

    c->fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
    if (c->fd < 0) {
        s2s_err_errno(err, "%s", path);
        s2s_cache_close(c, NULL);
        return NULL;
    }
    if (flock(c->fd, LOCK_EX | LOCK_NB)) {
        if (errno == EWOULDBLOCK) {
            s2s_err_set(err, S2S_EIO,
                        "%s: in use by another s2s-score writing to the same directory "
                        "(wait for it, or choose another -o DIR)",
                        path);
            s2s_cache_close(c, NULL);
            return NULL;
        }
        /* a file system without locks (some NFS setups): go on, and say so */
        snprintf(c->note, sizeof c->note,
                 "%s: cannot be locked (%s): do not run two s2s-score on this directory at once",
                 path, strerror(errno));
    }
    if (load(c, err)) {
        s2s_cache_close(c, NULL);
        return NULL;
    }
    c->out = fdopen(c->fd, "a");
    if (!c->out) {
        s2s_err_errno(err, "%s", path);
        s2s_cache_close(c, NULL);
        return NULL;
    }
    c->last_flush = c->last_sync = now_s();
    return c;
}

const char *s2s_cache_note(const s2s_cache *c) {
    return c->note;
}

const char *s2s_cache_identity(const s2s_cache *c) {
    return c->ident;
}

uint64_t s2s_cache_loaded(const s2s_cache *c) {
    return c->loaded;
}

uint64_t s2s_cache_stored(const s2s_cache *c) {
    return c->stored;
}

uint64_t s2s_cache_hits(const s2s_cache *c) {
    return c->hits;
}

static int do_flush(s2s_cache *c, int sync, s2s_err *err) {
    if (!c->out) return 0;
    if (fflush(c->out)) return s2s_err_errno(err, "%s", c->path);
    c->unflushed = 0;
    c->last_flush = now_s();
    if (sync) {
        if (fsync(fileno(c->out))) return s2s_err_errno(err, "%s: fsync", c->path);
        c->last_sync = c->last_flush;
    }
    return 0;
}

int s2s_cache_flush(s2s_cache *c, s2s_err *err) {
    return do_flush(c, 1, err);
}

static int cache_lookup(void *ctx, const s2s_request *rq, s2s_reply *r, s2s_err *err) {
    s2s_cache *c = ctx;
    unsigned char key[16];
    int rc = request_hash(c, rq, key, err);
    if (rc) return rc;
    entry *e = tab_find(c, key);
    if (e) {
        r->nll = e->nll;
        r->ntok = e->ntok;
        r->flags = e->flags;
        r->status = 0;
        r->msg[0] = 0;
        c->hits++;
        return 1;
    }
    if (strlen(rq->item_id) >= sizeof c->ring[0].item) return 0; /* too long an id: not cached */
    if (c->npend == c->ringcap) {
        size_t ncap = c->ringcap ? 2 * c->ringcap : 64;
        pend *nr = malloc(ncap * sizeof *nr);
        if (!nr) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
        for (size_t i = 0; i < c->npend; i++)
            nr[i] = c->ring[(c->head + i) % c->ringcap];
        free(c->ring);
        c->ring = nr;
        c->ringcap = ncap;
        c->head = 0;
    }
    pend *p = &c->ring[(c->head + c->npend) % c->ringcap];
    snprintf(p->item, sizeof p->item, "%s", rq->item_id);
    p->mode = rq->mode;
    p->cand = rq->cand;
    p->done = 0;
    memcpy(p->key, key, 16);
    c->npend++;
    return 0;
}

/* Finds and retires the pending request (item, mode, cand); copies its key. 0 if not found. */
static int pend_take(s2s_cache *c, const char *item, s2s_mode mode, unsigned cand,
                     unsigned char key[16]) {
    int found = 0;
    for (size_t i = 0; i < c->npend; i++) {
        pend *p = &c->ring[(c->head + i) % c->ringcap];
        if (!p->done && p->cand == cand && p->mode == mode && !strcmp(p->item, item)) {
            p->done = 1;
            memcpy(key, p->key, 16);
            found = 1;
            break;
        }
    }
    while (c->npend && c->ring[c->head].done) {
        c->head = (c->head + 1) % c->ringcap;
        c->npend--;
    }
    return found;
}

/* Writes s as a JSON string: as is when it needs no escaping (ids do not), else via jansson. */
static int put_json_str(FILE *fp, const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    for (; *p; p++)
        if (*p < 0x20 || *p >= 0x7f || *p == '"' || *p == '\\') break;
    if (!*p) return fprintf(fp, "\"%s\"", s) < 0 ? -1 : 0;
    json_t *js = json_string(s);
    char *ij = js ? json_dumps(js, JSON_ENCODE_ANY | JSON_ENSURE_ASCII) : NULL;
    json_decref(js);
    if (!ij) return -1;
    int rc = fputs(ij, fp) < 0 ? -1 : 0;
    free(ij);
    return rc;
}

static int write_declaration(s2s_cache *c, s2s_err *err) {
    json_t *d = json_pack("{s:s, s:s, s:s?, s:b, s:s}", "backend", c->spec, "model", c->model,
                          "model_id", c->model_id, "dedup", c->dedup, "b", c->ident);
    char *s = d ? json_dumps(d, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII) : NULL;
    json_decref(d);
    if (!s) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    int bad = fprintf(c->out, "%s\n", s) < 0;
    free(s);
    if (bad) return s2s_err_errno(err, "%s", c->path);
    c->declared = 1;
    return 0;
}

static int cache_store(void *ctx, const char *item_id, s2s_mode mode, unsigned cand,
                       const s2s_reply *r, s2s_err *err) {
    s2s_cache *c = ctx;
    unsigned char key[16];
    if (!pend_take(c, item_id, mode, cand, key) || r->status != 0)
        return 0; /* failed replies are asked again by a rerun */
    if (!c->declared) {
        int rc = write_declaration(c, err);
        if (rc) return rc;
    }
    char h[33];
    to_hex(key, 16, h);
    int bad = fprintf(c->out, "{\"b\":\"%s\",\"item\":", c->ident) < 0;
    bad = bad || put_json_str(c->out, item_id) < 0;
    bad = bad ||
          fprintf(c->out,
                  ",\"mode\":\"%s\",\"cand\":%u,\"h\":\"%s\",\"nll\":\"%a\",\"ntok\":%llu,"
                  "\"flags\":%u}\n",
                  s2s_mode_name(mode), cand, h, r->nll, (unsigned long long)r->ntok, r->flags) < 0;
    if (bad) return s2s_err_errno(err, "%s", c->path);
    c->stored++;
    if (tab_put(c, key, r->nll, r->ntok, r->flags) < 0)
        return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    if (++c->unflushed >= FLUSH_LINES || now_s() - c->last_flush >= FLUSH_SECONDS)
        return do_flush(c, now_s() - c->last_sync >= FSYNC_SECONDS, err);
    return 0;
}

void s2s_cache_hooks(s2s_cache *c, s2s_score_hooks *h) {
    memset(h, 0, sizeof *h);
    h->ctx = c;
    h->lookup = cache_lookup;
    h->store = cache_store;
}

int s2s_cache_close(s2s_cache *c, s2s_err *err) {
    if (!c) return 0;
    int rc = 0;
    if (c->out) {
        rc = do_flush(c, 1, err);
        if (fclose(c->out) && !rc) rc = s2s_err_errno(err, "%s", c->path);
    } else if (c->fd >= 0) {
        close(c->fd); /* closing releases the lock */
    }
    free(c->tab);
    free(c->ring);
    json_decref(c->memo_audio);
    free(c->memo_item);
    free(c->path);
    free(c->spec);
    free(c->model);
    free(c->model_id);
    free(c);
    return rc;
}

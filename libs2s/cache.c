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

typedef struct entry {
    char *key; /* "item\x1fmode\x1fcand\x1fhash" */
    uint64_t hv;
    double nll;
    uint64_t ntok;
    unsigned flags;
} entry;

struct s2s_cache {
    char *path;
    int fd;
    FILE *out;
    char ident[17];
    char *spec, *model, *model_id;
    int dedup, declared;
    entry *tab;
    size_t ntab, captab;
    json_t *pending; /* "item\x1fmode\x1fcand" -> request hash, between lookup and store */
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

/* ---- hash table (no deletions) ------------------------------------------------------------- */

static entry *tab_find(const s2s_cache *c, const char *key, uint64_t hv) {
    if (!c->captab) return NULL;
    size_t mask = c->captab - 1;
    for (size_t i = (size_t)hv & mask;; i = (i + 1) & mask) {
        entry *e = &c->tab[i];
        if (!e->key) return NULL;
        if (e->hv == hv && !strcmp(e->key, key)) return e;
    }
}

static int tab_grow(s2s_cache *c) {
    size_t ncap = c->captab ? c->captab * 2 : 1024;
    entry *nt = calloc(ncap, sizeof *nt);
    if (!nt) return -1;
    for (size_t i = 0; i < c->captab; i++) {
        entry *e = &c->tab[i];
        if (!e->key) continue;
        size_t j = (size_t)e->hv & (ncap - 1);
        while (nt[j].key)
            j = (j + 1) & (ncap - 1);
        nt[j] = *e;
    }
    free(c->tab);
    c->tab = nt;
    c->captab = ncap;
    return 0;
}

/* Inserts unless the key is there (the first answer stays). 1 inserted, 0 present, -1 ENOMEM. */
static int tab_put(s2s_cache *c, const char *key, double nll, uint64_t ntok, unsigned flags) {
    uint64_t hv = s2s_fnv1a64(key);
    if (tab_find(c, key, hv)) return 0;
    if ((c->ntab + 1) * 4 > c->captab * 3 && tab_grow(c)) return -1;
    size_t mask = c->captab - 1, i = (size_t)hv & mask;
    while (c->tab[i].key)
        i = (i + 1) & mask;
    char *k = strdup(key);
    if (!k) return -1;
    c->tab[i] = (entry){k, hv, nll, ntok, flags};
    c->ntab++;
    return 1;
}

/* ---- keys ------------------------------------------------------------------------------------ */

static char *make_key(const char *item, const char *mode, unsigned cand, const char *h) {
    size_t n = strlen(item) + strlen(mode) + (h ? strlen(h) : 0) + 32;
    char *k = malloc(n);
    if (!k) return NULL;
    if (h)
        snprintf(k, n, "%s\x1f%s\x1f%u\x1f%s", item, mode, cand, h);
    else
        snprintf(k, n, "%s\x1f%s\x1f%u", item, mode, cand);
    return k;
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

/* Hash of everything a request carries (see s2s/cache.h), as HASH_HEX hex digits. */
static int request_hash(s2s_cache *c, const s2s_request *rq, char out[HASH_HEX + 1], s2s_err *err) {
    if (!c->memo_item || strcmp(c->memo_item, rq->item_id) != 0) {
        free(c->memo_item);
        c->memo_item = strdup(rq->item_id);
        if (!c->memo_item) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
        json_object_clear(c->memo_audio);
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
    for (int i = 0; i < HASH_HEX / 2; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
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
            char *k = make_key(item, mode, (unsigned)json_integer_value(jc), h);
            int put = k ? tab_put(c, k, nll, (uint64_t)json_integer_value(jn),
                                  (unsigned)json_integer_value(jf))
                        : -1;
            free(k);
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
    c->pending = json_object();
    c->memo_audio = json_object();
    if (!c->path || !c->spec || !c->model || (model_id && !c->model_id) || !c->pending ||
        !c->memo_audio) {
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
        if (errno == EWOULDBLOCK)
            s2s_err_set(err, S2S_EIO,
                        "%s: in use by another s2s-score writing to the same directory "
                        "(wait for it, or choose another -o DIR)",
                        path);
        else
            s2s_err_errno(err, "%s: lock", path);
        s2s_cache_close(c, NULL);
        return NULL;
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
    char h[HASH_HEX + 1];
    int rc = request_hash(c, rq, h, err);
    if (rc) return rc;
    const char *mode = s2s_mode_name(rq->mode);
    char *k = make_key(rq->item_id, mode, rq->cand, h);
    if (!k) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    entry *e = tab_find(c, k, s2s_fnv1a64(k));
    free(k);
    if (e) {
        r->nll = e->nll;
        r->ntok = e->ntok;
        r->flags = e->flags;
        r->status = 0;
        r->msg[0] = 0;
        c->hits++;
        return 1;
    }
    char *pk = make_key(rq->item_id, mode, rq->cand, NULL);
    json_t *hv = json_string(h);
    if (!pk || !hv || json_object_set_new(c->pending, pk, hv)) {
        free(pk);
        return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    }
    free(pk);
    return 0;
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
    const char *mn = s2s_mode_name(mode);
    char *pk = make_key(item_id, mn, cand, NULL);
    if (!pk) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    json_t *hv = json_object_get(c->pending, pk);
    char h[HASH_HEX + 1] = "";
    if (hv) snprintf(h, sizeof h, "%s", json_string_value(hv));
    json_object_del(c->pending, pk);
    free(pk);
    if (!*h || r->status != 0) return 0; /* failed replies are asked again by a rerun */
    if (!c->declared) {
        int rc = write_declaration(c, err);
        if (rc) return rc;
    }
    json_t *js = json_string(item_id);
    char *ij = js ? json_dumps(js, JSON_ENCODE_ANY | JSON_ENSURE_ASCII) : NULL;
    json_decref(js);
    if (!ij) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    int bad = fprintf(c->out,
                      "{\"b\":\"%s\",\"item\":%s,\"mode\":\"%s\",\"cand\":%u,\"h\":\"%s\","
                      "\"nll\":\"%a\",\"ntok\":%llu,\"flags\":%u}\n",
                      c->ident, ij, mn, cand, h, r->nll, (unsigned long long)r->ntok, r->flags) < 0;
    free(ij);
    if (bad) return s2s_err_errno(err, "%s", c->path);
    c->stored++;
    char *k = make_key(item_id, mn, cand, h);
    if (!k || tab_put(c, k, r->nll, r->ntok, r->flags) < 0) {
        free(k);
        return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    }
    free(k);
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
    for (size_t i = 0; i < c->captab; i++)
        free(c->tab[i].key);
    free(c->tab);
    json_decref(c->pending);
    json_decref(c->memo_audio);
    free(c->memo_item);
    free(c->path);
    free(c->spec);
    free(c->model);
    free(c->model_id);
    free(c);
    return rc;
}

/* ngram.c — the n-gram model in memory, ARPA reading and writing, scoring with backoff
 * (see s2s/ngram.h, docs/ngram.md).
 *
 * Storage: token strings are interned to dense ids; every n-gram of every order is one entry
 * (log10 probability, log10 backoff, its ids in one pool) found through one open-addressing table
 * keyed by a 64-bit hash of its id sequence (ids are compared too, so a hash collision can never
 * give a wrong answer). Probabilities are kept as log10 exactly as the ARPA file has them; scores
 * are converted to natural log once per call. */
#include "ngram_impl.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "s2s/util.h"

/* ---- vocabulary ------------------------------------------------------------------------------ */
int ng_vocab_init(ng_vocab *v, s2s_err *err) {
    memset(v, 0, sizeof *v);
    v->mask = 1023;
    v->slot = calloc(v->mask + 1, sizeof *v->slot);
    if (!v->slot) return s2s_err_set(err, S2S_ENOMEM, "n-gram vocabulary: out of memory");
    return 0;
}

void ng_vocab_free(ng_vocab *v) {
    for (uint32_t i = 0; i < v->n; i++)
        free(v->str[i]);
    free(v->str);
    free(v->slot);
    memset(v, 0, sizeof *v);
}

uint32_t ng_vocab_find(const ng_vocab *v, const char *s) {
    size_t i = s2s_fnv1a64(s) & v->mask;
    for (;;) {
        uint32_t x = v->slot[i];
        if (!x) return NG_NONE;
        if (strcmp(v->str[x - 1], s) == 0) return x - 1;
        i = (i + 1) & v->mask;
    }
}

int64_t ng_vocab_intern(ng_vocab *v, const char *s, s2s_err *err) {
    uint32_t id = ng_vocab_find(v, s);
    if (id != NG_NONE) return id;
    if (v->n >= UINT32_MAX - 2)
        return s2s_err_set(err, S2S_EUNSUP, "n-gram vocabulary: too many tokens");
    if ((size_t)(v->n + 1) * 2 > v->mask + 1) { /* keep the load factor <= 1/2 */
        size_t nm = (v->mask + 1) * 2 - 1;
        uint32_t *ns = calloc(nm + 1, sizeof *ns);
        if (!ns) return s2s_err_set(err, S2S_ENOMEM, "n-gram vocabulary: out of memory");
        for (uint32_t k = 0; k < v->n; k++) {
            size_t i = s2s_fnv1a64(v->str[k]) & nm;
            while (ns[i])
                i = (i + 1) & nm;
            ns[i] = k + 1;
        }
        free(v->slot);
        v->slot = ns, v->mask = nm;
    }
    if (v->n == v->cap) {
        uint32_t cap = v->cap ? v->cap * 2 : 1024;
        char **ns = realloc(v->str, (size_t)cap * sizeof *ns);
        if (!ns) return s2s_err_set(err, S2S_ENOMEM, "n-gram vocabulary: out of memory");
        v->str = ns, v->cap = cap;
    }
    char *copy = strdup(s);
    if (!copy) return s2s_err_set(err, S2S_ENOMEM, "n-gram vocabulary: out of memory");
    id = v->n++;
    v->str[id] = copy;
    size_t i = s2s_fnv1a64(s) & v->mask;
    while (v->slot[i])
        i = (i + 1) & v->mask;
    v->slot[i] = id + 1;
    return id;
}

/* ---- model ----------------------------------------------------------------------------------- */
s2s_lm *ng_lm_new(s2s_err *err) {
    s2s_lm *lm = calloc(1, sizeof *lm);
    if (!lm) {
        s2s_err_set(err, S2S_ENOMEM, "n-gram model: out of memory");
        return NULL;
    }
    if (ng_vocab_init(&lm->vocab, err) < 0) {
        free(lm);
        return NULL;
    }
    lm->unk = lm->bos = lm->eos = NG_NONE;
    for (int k = 0; k <= S2S_NGRAM_MAX_ORDER; k++)
        for (int j = 0; j < 3; j++)
            lm->disc[k][j] = NAN;
    return lm;
}

void s2s_lm_free(s2s_lm *lm) {
    if (!lm) return;
    ng_vocab_free(&lm->vocab);
    free(lm->ent);
    free(lm->ids);
    free(lm->tab);
    free(lm);
}

int64_t ng_lm_add(s2s_lm *lm, const uint32_t *ids, int n, double lp, double bow, int has_bow,
                  s2s_err *err) {
    if (lm->n_ent >= UINT32_MAX - 1 || lm->n_ids + (size_t)n >= UINT32_MAX)
        return s2s_err_set(err, S2S_EUNSUP, "n-gram model: too many n-grams");
    if (lm->n_ent == lm->cap_ent) {
        size_t cap = lm->cap_ent ? lm->cap_ent * 2 : 4096;
        ng_entry *ne = realloc(lm->ent, cap * sizeof *ne);
        if (!ne) return s2s_err_set(err, S2S_ENOMEM, "n-gram model: out of memory");
        lm->ent = ne, lm->cap_ent = cap;
    }
    if (lm->n_ids + (size_t)n > lm->cap_ids) {
        size_t cap = lm->cap_ids ? lm->cap_ids * 2 : 16384;
        while (cap < lm->n_ids + (size_t)n)
            cap *= 2;
        uint32_t *ni = realloc(lm->ids, cap * sizeof *ni);
        if (!ni) return s2s_err_set(err, S2S_ENOMEM, "n-gram model: out of memory");
        lm->ids = ni, lm->cap_ids = cap;
    }
    ng_entry *e = &lm->ent[lm->n_ent];
    e->lp = lp;
    e->bow = bow;
    e->off = (uint32_t)lm->n_ids;
    e->n = (uint8_t)n;
    e->has_bow = (uint8_t)(has_bow != 0);
    memcpy(lm->ids + lm->n_ids, ids, (size_t)n * sizeof *ids);
    lm->n_ids += (size_t)n;
    lm->count[n]++;
    return (int64_t)lm->n_ent++;
}

const ng_entry *ng_lm_find(const s2s_lm *lm, const uint32_t *ids, int n) {
    uint64_t h = ng_hash(ids, n);
    size_t i = h & lm->tab_mask;
    for (;;) {
        const ng_slot *s = &lm->tab[i];
        if (s->idx == UINT32_MAX) return NULL;
        if (s->key == h) {
            const ng_entry *e = &lm->ent[s->idx];
            if (e->n == n && memcmp(lm->ids + e->off, ids, (size_t)n * sizeof *ids) == 0) return e;
        }
        i = (i + 1) & lm->tab_mask;
    }
}

static void ng_print_ngram(const s2s_lm *lm, const uint32_t *ids, int n, char *buf, size_t cap) {
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && len + 1 < cap; i++) {
        int w = snprintf(buf + len, cap - len, "%s%s", i ? " " : "", lm->vocab.str[ids[i]]);
        if (w < 0) break;
        len += (size_t)w;
    }
}

int ng_lm_index(s2s_lm *lm, s2s_err *err) {
    size_t size = 1024;
    while (size < lm->n_ent * 2 + 2)
        size *= 2; /* load factor <= 1/2 */
    free(lm->tab);
    lm->tab = malloc(size * sizeof *lm->tab);
    if (!lm->tab) return s2s_err_set(err, S2S_ENOMEM, "n-gram model: out of memory (index)");
    for (size_t i = 0; i < size; i++)
        lm->tab[i].idx = UINT32_MAX, lm->tab[i].key = 0;
    lm->tab_mask = size - 1;
    for (size_t k = 0; k < lm->n_ent; k++) {
        const ng_entry *e = &lm->ent[k];
        const uint32_t *ids = lm->ids + e->off;
        uint64_t h = ng_hash(ids, e->n);
        size_t i = h & lm->tab_mask;
        while (lm->tab[i].idx != UINT32_MAX) {
            const ng_entry *o = &lm->ent[lm->tab[i].idx];
            if (lm->tab[i].key == h && o->n == e->n &&
                memcmp(lm->ids + o->off, ids, (size_t)e->n * sizeof *ids) == 0) {
                char buf[512];
                ng_print_ngram(lm, ids, e->n, buf, sizeof buf);
                return s2s_err_set(err, S2S_EFORMAT, "duplicate %d-gram \"%s\"", e->n, buf);
            }
            i = (i + 1) & lm->tab_mask;
        }
        lm->tab[i].key = h;
        lm->tab[i].idx = (uint32_t)k;
    }
    return 0;
}

double ng_round(double x) {
    if (!isfinite(x)) return x;
    char buf[64];
    snprintf(buf, sizeof buf, "%.7g", x);
    return strtod(buf, NULL);
}

int s2s_lm_order(const s2s_lm *lm) {
    return lm->order;
}

s2s_tok_mode s2s_lm_tok_mode(const s2s_lm *lm) {
    return lm->mode;
}

void s2s_lm_set_tok_mode(s2s_lm *lm, s2s_tok_mode mode) {
    lm->mode = mode;
    lm->mode_known = 1;
}

int s2s_lm_tok_mode_known(const s2s_lm *lm) {
    return lm->mode_known;
}

size_t s2s_lm_count(const s2s_lm *lm, int n) {
    if (n < 1 || n > lm->order) return 0;
    return lm->count[n];
}

size_t s2s_lm_vocab_size(const s2s_lm *lm) {
    return lm->vocab.n;
}

const char *s2s_lm_vocab_word(const s2s_lm *lm, size_t i) {
    return i < lm->vocab.n ? lm->vocab.str[i] : NULL;
}

int s2s_lm_has_unk(const s2s_lm *lm) {
    return lm->unk != NG_NONE;
}

double s2s_lm_discount(const s2s_lm *lm, int n, int k) {
    if (n < 1 || n > lm->order || n > S2S_NGRAM_MAX_ORDER || k < 1 || k > 3) return NAN;
    return lm->disc[n][k - 1];
}

const char *s2s_tok_mode_name(s2s_tok_mode mode) {
    switch (mode) {
    case S2S_TOK_WORDS:
        return "words";
    case S2S_TOK_CHARS:
        return "chars";
    case S2S_TOK_UNITS:
        return "units";
    }
    return "?";
}

int s2s_tok_mode_parse(const char *name, s2s_tok_mode *mode) {
    if (!name) return S2S_EINVAL;
    if (strcmp(name, "words") == 0)
        *mode = S2S_TOK_WORDS;
    else if (strcmp(name, "chars") == 0)
        *mode = S2S_TOK_CHARS;
    else if (strcmp(name, "units") == 0)
        *mode = S2S_TOK_UNITS;
    else
        return S2S_EINVAL;
    return 0;
}

/* ---- ARPA writing ---------------------------------------------------------------------------- */
typedef struct ng_sortkey {
    const uint32_t *rank; /* ranks of the n-gram's tokens in byte order of their strings */
    uint32_t idx;
    int n;
} ng_sortkey;

static int ng_sortkey_cmp(const void *a, const void *b) {
    const ng_sortkey *x = a, *y = b;
    for (int i = 0; i < x->n; i++) {
        if (x->rank[i] != y->rank[i]) return x->rank[i] < y->rank[i] ? -1 : 1;
    }
    return 0;
}

static int ng_strp_cmp(const void *a, const void *b) {
    const char *const *x = a, *const *y = b;
    return strcmp(*x, *y);
}

int s2s_lm_write_arpa(const s2s_lm *lm, FILE *fp, s2s_err *err) {
    int rc = 0;
    size_t nv = lm->vocab.n;
    uint32_t *rank = NULL, *ranks = NULL;
    ng_sortkey *keys = NULL;
    const char **sorted = malloc((nv + 1) * sizeof *sorted);
    rank = malloc((nv + 1) * sizeof *rank);
    ranks = malloc((lm->n_ids + 1) * sizeof *ranks);
    keys = malloc((lm->n_ent + 1) * sizeof *keys);
    if (!sorted || !rank || !ranks || !keys) {
        rc = s2s_err_set(err, S2S_ENOMEM, "ARPA writer: out of memory");
        goto done;
    }
    /* Rank of each id = position of its string in byte order. strcmp of distinct strings never
     * returns 0, and the pointers are recovered by interning lookups. */
    for (size_t i = 0; i < nv; i++)
        sorted[i] = lm->vocab.str[i];
    qsort(sorted, nv, sizeof *sorted, ng_strp_cmp);
    for (size_t i = 0; i < nv; i++)
        rank[ng_vocab_find(&lm->vocab, sorted[i])] = (uint32_t)i;
    for (size_t i = 0; i < lm->n_ids; i++)
        ranks[i] = rank[lm->ids[i]];

    fprintf(fp, "# \\s2s-tok: %s\n", s2s_tok_mode_name(lm->mode));
    fprintf(fp, "# written by s2sbench %s: interpolated modified Kneser-Ney n-gram model\n",
            S2S_VERSION);
    fprintf(fp, "\n\\data\\\n");
    for (int n = 1; n <= lm->order; n++)
        fprintf(fp, "ngram %d=%zu\n", n, lm->count[n]);
    for (int n = 1; n <= lm->order; n++) {
        size_t m = 0;
        for (size_t k = 0; k < lm->n_ent; k++) {
            const ng_entry *e = &lm->ent[k];
            if (e->n != n) continue;
            keys[m].rank = ranks + e->off;
            keys[m].idx = (uint32_t)k;
            keys[m].n = n;
            m++;
        }
        qsort(keys, m, sizeof *keys, ng_sortkey_cmp);
        fprintf(fp, "\n\\%d-grams:\n", n);
        for (size_t j = 0; j < m; j++) {
            const ng_entry *e = &lm->ent[keys[j].idx];
            const uint32_t *ids = lm->ids + e->off;
            fprintf(fp, "%.7g\t", e->lp);
            for (int i = 0; i < n; i++) {
                if (i) fputc(' ', fp);
                fputs(lm->vocab.str[ids[i]], fp);
            }
            if (e->has_bow) fprintf(fp, "\t%.7g", e->bow);
            fputc('\n', fp);
        }
    }
    fprintf(fp, "\n\\end\\\n");
    if (ferror(fp)) rc = s2s_err_errno(err, "ARPA writer: write failed");
done:
    free(sorted);
    free(rank);
    free(ranks);
    free(keys);
    return rc;
}

/* ---- ARPA reading ---------------------------------------------------------------------------- */
static char *ng_trim(char *s) {
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
    while (*s == ' ' || *s == '\t')
        s++;
    return s;
}

static int ng_parse_double(const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end) return -1;
    if (errno == ERANGE && fabs(v) > 1) return -1;
    *out = v;
    return 0;
}

/* getline over zlib, which reads gzip-compressed and plain files alike. Returns the length,
 * -1 at the end, -2 on ENOMEM, -3 on a NUL byte inside a line. */
static long ng_gz_getline(gzFile gz, char **buf, size_t *cap) {
    size_t len = 0;
    if (!*buf) {
        *cap = 4096;
        if (!(*buf = malloc(*cap))) return -2;
    }
    for (;;) {
        if (!gzgets(gz, *buf + len, (int)(*cap - len > INT32_MAX ? INT32_MAX : *cap - len)))
            return len ? (long)len : -1;
        size_t got = strlen(*buf + len);
        len += got;
        if (len && (*buf)[len - 1] == '\n') return (long)len;
        if (len + 1 < *cap) return gzeof(gz) ? (long)len : -3; /* short without newline */
        size_t nc = *cap * 2;
        char *nb = realloc(*buf, nc);
        if (!nb) return -2;
        *buf = nb, *cap = nc;
    }
}

s2s_lm *s2s_lm_load_arpa(const char *path, s2s_err *err) {
    int use_stdin = !path || strcmp(path, "-") == 0;
    const char *name = use_stdin ? "<stdin>" : path;
    gzFile fp = NULL;
    if (use_stdin) {
        int fd = dup(0);
        if (fd >= 0 && !(fp = gzdopen(fd, "rb"))) close(fd);
    } else {
        fp = gzopen(path, "rb");
    }
    if (!fp) {
        s2s_err_errno(err, "%s: cannot open", name);
        return NULL;
    }
    gzbuffer(fp, 1 << 17);
    s2s_lm *lm = ng_lm_new(err);
    if (!lm) {
        gzclose(fp);
        return NULL;
    }
    char *line = NULL;
    size_t cap = 0;
    long got;
    size_t lineno = 0;
    int rc = 0;
    size_t want[S2S_NGRAM_MAX_ORDER + 1] = {0};
    int declared = 0; /* highest order in \data\ */
    int state = 0;    /* 0 header, 1 counts, 2 inside a section, 3 after \end\ */
    int section = 0;  /* order of the current section */
    int seen[S2S_NGRAM_MAX_ORDER + 1] = {0};
    size_t have = 0; /* lines read in the current section */
    int ends = 0;
    uint32_t ids[S2S_NGRAM_MAX_ORDER];

#define FAIL(code, ...)                                                                            \
    do {                                                                                           \
        rc = s2s_err_set(err, code, __VA_ARGS__);                                                  \
        goto fail;                                                                                 \
    } while (0)

    while ((got = ng_gz_getline(fp, &line, &cap)) != -1) {
        lineno++;
        if (got == -2) FAIL(S2S_ENOMEM, "%s:%zu: out of memory", name, lineno);
        if (got == -3) FAIL(S2S_EFORMAT, "%s:%zu: NUL byte in the line", name, lineno);
        char *s = ng_trim(line);
        if (state == 0) {
            const char *c = s;
            while (*c == '#' || *c == ' ' || *c == '\t')
                c++;
            if (strncmp(c, "\\s2s-tok:", 9) == 0) {
                char *m = ng_trim((char *)c + 9);
                if (s2s_tok_mode_parse(m, &lm->mode) < 0)
                    FAIL(S2S_EFORMAT, "%s:%zu: unknown token mode \"%s\" (words, chars, units)",
                         name, lineno, m);
                lm->mode_known = 1;
            } else if (strcmp(s, "\\data\\") == 0) {
                state = 1;
            }
            continue; /* anything else before \data\ is ignored, as SRILM does */
        }
        if (!*s) continue;
        if (state == 3) FAIL(S2S_EFORMAT, "%s:%zu: text after \\end\\", name, lineno);
        if (s[0] == '\\') {
            if (state == 2 && have != want[section])
                FAIL(S2S_EFORMAT, "%s:%zu: \\%d-grams: has %zu entries, \\data\\ says %zu", name,
                     lineno, section, have, want[section]);
            if (strcmp(s, "\\end\\") == 0) {
                for (int n = 1; n <= declared; n++)
                    if (!seen[n])
                        FAIL(S2S_EFORMAT, "%s:%zu: missing \\%d-grams: section", name, lineno, n);
                if (!declared)
                    FAIL(S2S_EFORMAT, "%s:%zu: no ngram counts in \\data\\", name, lineno);
                state = 3;
                ends = 1;
                continue;
            }
            int n;
            char tail[16];
            if (sscanf(s, "\\%d-grams%15s", &n, tail) != 2 || strcmp(tail, ":") != 0)
                FAIL(S2S_EFORMAT, "%s:%zu: expected \\N-grams: or \\end\\, got \"%.60s\"", name,
                     lineno, s);
            if (n < 1 || n > declared)
                FAIL(S2S_EFORMAT, "%s:%zu: section \\%d-grams: not declared in \\data\\", name,
                     lineno, n);
            if (seen[n]) FAIL(S2S_EFORMAT, "%s:%zu: second \\%d-grams: section", name, lineno, n);
            if (n > 1 && !seen[n - 1])
                FAIL(S2S_EFORMAT, "%s:%zu: \\%d-grams: before \\%d-grams:", name, lineno, n, n - 1);
            seen[n] = 1;
            section = n;
            have = 0;
            state = 2;
            continue;
        }
        if (state == 1) {
            int n;
            long long c;
            char extra;
            char *p = s;
            if (strncmp(p, "ngram", 5) != 0 || (p[5] != ' ' && p[5] != '\t'))
                FAIL(S2S_EFORMAT, "%s:%zu: expected \"ngram N=COUNT\", got \"%.60s\"", name, lineno,
                     s);
            p += 5;
            /* "ngram 2=123" and IRSTLM's "ngram 2= 123" */
            if (sscanf(p, " %d = %lld %c", &n, &c, &extra) != 2)
                FAIL(S2S_EFORMAT, "%s:%zu: bad count line \"%.60s\"", name, lineno, s);
            if (n < 1 || n > S2S_NGRAM_MAX_ORDER)
                FAIL(S2S_EFORMAT, "%s:%zu: order %d out of range 1..%d", name, lineno, n,
                     S2S_NGRAM_MAX_ORDER);
            if (c < 0) FAIL(S2S_EFORMAT, "%s:%zu: negative count %lld", name, lineno, c);
            if (n != declared + 1)
                FAIL(S2S_EFORMAT, "%s:%zu: ngram %d= after ngram %d= (orders must be 1, 2, ...)",
                     name, lineno, n, declared);
            want[n] = (size_t)c;
            declared = n;
            lm->order = n;
            continue;
        }
        /* An n-gram line: LOGPROB w1 .. wn [BACKOFF], fields separated by blanks. */
        char *f[S2S_NGRAM_MAX_ORDER + 3];
        int nf = 0;
        char *save = NULL;
        for (char *t = strtok_r(s, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
            if (nf == section + 2)
                FAIL(S2S_EFORMAT, "%s:%zu: too many fields for a %d-gram", name, lineno, section);
            f[nf++] = t;
        }
        if (nf < section + 1)
            FAIL(S2S_EFORMAT, "%s:%zu: too few fields for a %d-gram (%d)", name, lineno, section,
                 nf);
        double lp, bow = 0;
        if (ng_parse_double(f[0], &lp) < 0 || lp > 1e-6)
            FAIL(S2S_EFORMAT, "%s:%zu: bad log10 probability \"%s\"", name, lineno, f[0]);
        if (lp > 0) lp = 0;
        if (nf == section + 2 && ng_parse_double(f[section + 1], &bow) < 0)
            FAIL(S2S_EFORMAT, "%s:%zu: bad log10 backoff \"%s\"", name, lineno, f[section + 1]);
        if (have == want[section])
            FAIL(S2S_EFORMAT, "%s:%zu: more %d-grams than the %zu \\data\\ declares", name, lineno,
                 section, want[section]);
        for (int i = 0; i < section; i++) {
            const char *w = f[i + 1];
            if (section == 1) {
                int64_t id = ng_vocab_intern(&lm->vocab, w, err);
                if (id < 0) goto fail_rc;
                ids[i] = (uint32_t)id;
            } else {
                ids[i] = ng_vocab_find(&lm->vocab, w);
                if (ids[i] == NG_NONE)
                    FAIL(S2S_EFORMAT, "%s:%zu: token \"%.60s\" of a %d-gram is not a 1-gram", name,
                         lineno, w, section);
            }
        }
        if (ng_lm_add(lm, ids, section, lp, bow, nf == section + 2, err) < 0) goto fail_rc;
        have++;
    }
    {
        int zerr = Z_OK;
        const char *zmsg = gzerror(fp, &zerr);
        if (zerr == Z_ERRNO) {
            rc = s2s_err_errno(err, "%s: read failed", name);
            goto fail;
        }
        if (zerr != Z_OK && zerr != Z_BUF_ERROR)
            FAIL(S2S_EFORMAT, "%s:%zu: bad gzip data: %s", name, lineno, zmsg);
        if (zerr == Z_BUF_ERROR) FAIL(S2S_EFORMAT, "%s:%zu: truncated gzip data", name, lineno);
    }
    if (state == 0) FAIL(S2S_EFORMAT, "%s:%zu: no \\data\\ line (not an ARPA file)", name, lineno);
    if (!ends) {
        if (state == 2 && have != want[section])
            FAIL(S2S_EFORMAT, "%s:%zu: \\%d-grams: has %zu entries, \\data\\ says %zu", name,
                 lineno, section, have, want[section]);
        for (int n = 1; n <= declared; n++)
            if (!seen[n]) FAIL(S2S_EFORMAT, "%s:%zu: missing \\%d-grams: section", name, lineno, n);
        FAIL(S2S_EFORMAT, "%s:%zu: missing \\end\\ (truncated file?)", name, lineno);
    }
#undef FAIL
    free(line);
    line = NULL;
    gzclose(fp);
    fp = NULL;
    lm->unk = ng_vocab_find(&lm->vocab, "<unk>");
    lm->bos = ng_vocab_find(&lm->vocab, "<s>");
    lm->eos = ng_vocab_find(&lm->vocab, "</s>");
    if (lm->bos == NG_NONE || lm->eos == NG_NONE) {
        s2s_err_set(err, S2S_EFORMAT, "%s: the 1-grams lack %s", name,
                    lm->bos == NG_NONE ? "<s>" : "</s>");
        s2s_lm_free(lm);
        return NULL;
    }
    if (ng_lm_index(lm, err) < 0) {
        s2s_err_prefix(err, "%s: ", name);
        s2s_lm_free(lm);
        return NULL;
    }
    return lm;
fail_rc:
    s2s_err_prefix(err, "%s:%zu: ", name, lineno);
fail:
    (void)rc;
    free(line);
    if (fp) gzclose(fp);
    s2s_lm_free(lm);
    return NULL;
}

/* ---- scoring --------------------------------------------------------------------------------- */
/* log10 P(seq[i] | seq[i-order+1 .. i-1]) with ARPA backoff. seq[0..i] are ids; NG_NONE never
 * matches anything (an OOV in a model without <unk>), so the history backs off past it. */
static double ng_lp10(const s2s_lm *lm, const uint32_t *seq, size_t i) {
    int maxh = lm->order - 1;
    if ((size_t)maxh > i) maxh = (int)i;
    double bo = 0;
    for (int l = maxh; l >= 0; l--) {
        const ng_entry *e = ng_lm_find(lm, seq + i - l, l + 1);
        if (e) return bo + e->lp;
        if (l > 0) {
            const ng_entry *h = ng_lm_find(lm, seq + i - l, l);
            if (h) bo += h->bow;
        }
    }
    return NAN; /* token has no 1-gram */
}

static uint32_t ng_map(const s2s_lm *lm, const char *tok, int *is_oov) {
    uint32_t id = ng_vocab_find(&lm->vocab, tok);
    /* <s> cannot be predicted and has no usable 1-gram probability: treat it as unknown. */
    if (id == NG_NONE || id == lm->bos) {
        *is_oov = 1;
        return lm->unk;
    }
    *is_oov = 0;
    return id;
}

int s2s_lm_score(const s2s_lm *lm, const char *const *ctx, size_t n, const char *const *cont,
                 size_t m, int with_eos, double *nll, size_t *ntok, size_t *oov, s2s_err *err) {
    uint32_t stack[512];
    size_t len = 1 + n + m + (with_eos ? 1 : 0);
    uint32_t *seq = len <= sizeof stack / sizeof *stack ? stack : malloc(len * sizeof *seq);
    if (!seq) return s2s_err_set(err, S2S_ENOMEM, "n-gram scoring: out of memory");
    size_t k = 0, n_oov = 0;
    int o;
    seq[k++] = lm->bos;
    for (size_t i = 0; i < n; i++)
        seq[k++] = ng_map(lm, ctx[i], &o);
    double sum10 = 0;
    int rc = 0;
    for (size_t i = 0; i < m + (with_eos ? 1 : 0); i++) {
        uint32_t id;
        if (i < m) {
            id = ng_map(lm, cont[i], &o);
            if (o) {
                n_oov++;
                if (id == NG_NONE) {
                    rc = s2s_err_set(err, S2S_EDATA,
                                     "token \"%.60s\" is not in the model's vocabulary and the "
                                     "model has no <unk>",
                                     cont[i]);
                    goto done;
                }
            }
        } else {
            id = lm->eos;
        }
        seq[k] = id;
        double lp = ng_lp10(lm, seq, k);
        k++;
        if (!isfinite(lp)) {
            rc = s2s_err_set(err, S2S_EDATA, "token \"%.60s\" has no probability in the model",
                             i < m ? cont[i] : "</s>");
            goto done;
        }
        sum10 += lp;
    }
    if (nll) *nll = -sum10 * M_LN10;
    if (ntok) *ntok = m + (with_eos ? 1 : 0);
    if (oov) *oov = n_oov;
done:
    if (seq != stack) free(seq);
    return rc;
}

int s2s_lm_perplexity_ex(const s2s_lm *lm, FILE *fp, s2s_lm_ppl *st, s2s_err *err) {
    memset(st, 0, sizeof *st);
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    uint32_t *seq = NULL;
    size_t seqcap = 0;
    int rc = 0;
    double sum10 = 0;
    while (getline(&line, &cap, fp) != -1) {
        lineno++;
        char **toks;
        long nt = s2s_ngram_tokenize(line, lm->mode, &toks, err);
        if (nt < 0) {
            rc = s2s_err_prefix(err, "line %zu: ", lineno);
            goto done;
        }
        if (nt == 0) { /* empty lines are not sentences (SRILM skips them too) */
            s2s_tokens_free(toks, 0);
            continue;
        }
        if ((size_t)nt + 2 > seqcap) {
            size_t nc = (size_t)nt + 64;
            uint32_t *ns = realloc(seq, nc * sizeof *ns);
            if (!ns) {
                s2s_tokens_free(toks, (size_t)nt);
                rc = s2s_err_set(err, S2S_ENOMEM, "perplexity: out of memory");
                goto done;
            }
            seq = ns, seqcap = nc;
        }
        st->sentences++;
        seq[0] = lm->bos;
        for (long i = 0; i <= nt; i++) {
            int o = 0;
            uint32_t id = i < nt ? ng_map(lm, toks[i], &o) : lm->eos;
            seq[i + 1] = id;
            if (i < nt) st->words++;
            if (o) st->oov++;
            if (id == NG_NONE) continue; /* OOV without <unk>: excluded, as SRILM does */
            double lp = ng_lp10(lm, seq, (size_t)i + 1);
            if (!isfinite(lp)) {
                rc = s2s_err_set(err, S2S_EDATA, "line %zu: token \"%.60s\" has no probability",
                                 lineno, i < nt ? toks[i] : "</s>");
                s2s_tokens_free(toks, (size_t)nt);
                goto done;
            }
            sum10 += lp;
            st->scored++;
        }
        s2s_tokens_free(toks, (size_t)nt);
    }
    if (ferror(fp)) rc = s2s_err_errno(err, "perplexity: read failed");
done:
    free(line);
    free(seq);
    st->logprob10 = sum10;
    st->ppl = st->scored ? pow(10.0, -sum10 / (double)st->scored) : NAN;
    return rc;
}

int s2s_lm_perplexity(const s2s_lm *lm, FILE *fp, double *ppl, size_t *ntok, size_t *oov,
                      s2s_err *err) {
    s2s_lm_ppl st;
    int rc = s2s_lm_perplexity_ex(lm, fp, &st, err);
    if (rc < 0) return rc;
    if (ppl) *ppl = st.ppl;
    if (ntok) *ntok = st.scored;
    if (oov) *oov = st.oov;
    return 0;
}

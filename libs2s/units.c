/* units.c — unit sequences made by other tokenizers (GSLM/fairseq lines, JSON lines). */
#include "s2s/units.h"

#include <stdlib.h>
#include <string.h>

#include "s2s/audio.h"

typedef struct entry {
    char *id, *member; /* member stem: "ctx", "c0" */
    char *units;       /* normalised text "u1 u2" or "" */
    size_t n_units, line;
    int used;
} entry;

static int cmp_entry(const void *a, const void *b) {
    const entry *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    return c ? c : strcmp(x->member, y->member);
}

/* Appends unit v to a growing text. */
static int units_push(s2s_buf *b, long long v, s2s_err *err) {
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%s%lld", b->len ? " " : "", v);
    return s2s_buf_append(b, tmp, (size_t)n, err);
}

/* Splits a GSLM name into id and member: "dir/ID.c0.wav" -> ID, c0; "ID" -> ID, ctx. */
static int split_name(const char *name, char **id, char **member) {
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    char *b = strdup(base);
    if (!b) return -1;
    char *last = strrchr(b, '.');
    if (last && strchr(b, '.') != last && s2s_audio_is_audio_name(b))
        *last = 0;
    else if (last && strchr(b, '.') == last && s2s_audio_is_audio_name(b))
        *last = 0;
    char *dot = strchr(b, '.');
    *member = strdup(dot ? dot + 1 : "ctx");
    if (dot) *dot = 0;
    *id = b;
    if (!*member) {
        free(b);
        return -1;
    }
    return 0;
}

struct s2s_units_set {
    entry *e;
    size_t n, cap;
    long long k; /* vocabulary bound, 0 = none */
    char *name;
    const char *format;
    char sha[65];
};

static int add_entry(s2s_units_set *is, char *id, char *member, s2s_buf *units, size_t n_units,
                     size_t line, s2s_err *err) {
    if (!s2s_id_valid(id) || !s2s_id_valid(member)) {
        s2s_err_set(err, S2S_EDATA, "%s:%zu: '%s.%s' is not ID or ID.MEMBER with a valid id",
                    is->name, line, id, member);
        free(id);
        free(member);
        return S2S_EDATA;
    }
    if (is->n == is->cap) {
        size_t c = is->cap ? is->cap * 2 : 256;
        entry *p = realloc(is->e, c * sizeof *p);
        if (!p) {
            free(id);
            free(member);
            return s2s_err_set(err, S2S_ENOMEM, "out of memory");
        }
        is->e = p;
        is->cap = c;
    }
    if (s2s_buf_append(units, "", 1, err) < 0) {
        free(id);
        free(member);
        return S2S_ENOMEM;
    }
    size_t len;
    entry *e = &is->e[is->n++];
    e->id = id;
    e->member = member;
    e->units = (char *)s2s_buf_steal(units, &len);
    e->n_units = n_units;
    e->line = line;
    e->used = 0;
    return 0;
}

static int check_unit(s2s_units_set *is, long long v, size_t line, s2s_err *err) {
    if (v < 0 || v > 2147483647LL)
        return s2s_err_set(err, S2S_EDATA, "%s:%zu: unit %lld is not a non-negative integer",
                           is->name, line, v);
    if (is->k > 0 && v >= is->k)
        return s2s_err_set(err, S2S_EDATA, "%s:%zu: unit %lld >= the vocabulary size %lld",
                           is->name, line, v, is->k);
    return 0;
}

static int parse_gslm_line(s2s_units_set *is, char *l, size_t line, s2s_err *err) {
    char *bar = strchr(l, '|');
    if (!bar)
        return s2s_err_set(err, S2S_EFORMAT, "%s:%zu: expected NAME|u1 u2 ... (no '|')", is->name,
                           line);
    *bar = 0;
    char *id, *member;
    if (split_name(l, &id, &member) < 0) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    s2s_buf b = {0};
    size_t n = 0;
    char *p = bar + 1;
    int rc = 0;
    while (rc == 0) {
        while (*p == ' ' || *p == '\t' || *p == '\r')
            p++;
        if (!*p) break;
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p || (*end && *end != ' ' && *end != '\t' && *end != '\r')) {
            rc = s2s_err_set(err, S2S_EFORMAT, "%s:%zu: '%.20s' is not an integer unit", is->name,
                             line, p);
            break;
        }
        if ((rc = check_unit(is, v, line, err)) < 0 || (rc = units_push(&b, v, err)) < 0) break;
        n++;
        p = end;
    }
    if (rc < 0) {
        s2s_buf_free(&b);
        free(id);
        free(member);
        return rc;
    }
    rc = add_entry(is, id, member, &b, n, line, err);
    s2s_buf_free(&b);
    return rc;
}

static int parse_json_line(s2s_units_set *is, const char *l, size_t line, s2s_err *err) {
    json_error_t je;
    json_t *j = json_loads(l, 0, &je);
    if (!j) return s2s_err_set(err, S2S_EFORMAT, "%s:%zu: not JSON: %s", is->name, line, je.text);
    const char *id = json_string_value(json_object_get(j, "id"));
    json_t *jm = json_object_get(j, "member"), *ju = json_object_get(j, "units");
    int rc = 0;
    if (!id || (jm && !json_is_string(jm)) || !json_is_array(ju)) {
        rc = s2s_err_set(err, S2S_EFORMAT,
                         "%s:%zu: expected {\"id\": string, \"member\": string (optional), "
                         "\"units\": [integers]}",
                         is->name, line);
        json_decref(j);
        return rc;
    }
    s2s_buf b = {0};
    size_t i;
    json_t *v;
    json_array_foreach(ju, i, v) {
        if (!json_is_integer(v)) {
            rc = s2s_err_set(err, S2S_EFORMAT, "%s:%zu: units[%zu] is not an integer", is->name,
                             line, i);
            break;
        }
        if ((rc = check_unit(is, json_integer_value(v), line, err)) < 0 ||
            (rc = units_push(&b, json_integer_value(v), err)) < 0)
            break;
    }
    char *sid = strdup(id), *sm = strdup(jm ? json_string_value(jm) : "ctx");
    if (rc == 0 && (!sid || !sm)) rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
    if (rc == 0) {
        rc = add_entry(is, sid, sm, &b, json_array_size(ju), line, err);
    } else {
        free(sid);
        free(sm);
    }
    s2s_buf_free(&b);
    json_decref(j);
    return rc;
}

static int parse_all(s2s_units_set *is, unsigned char *data, size_t len, s2s_err *err) {
    if (memchr(data, 0, len))
        return s2s_err_set(err, S2S_EFORMAT, "%s: holds a NUL byte: not a text file", is->name);
    s2s_sha256_hex(data, len, is->sha);
    size_t i = 0;
    while (i < len && (data[i] == ' ' || data[i] == '\n' || data[i] == '\r' || data[i] == '\t'))
        i++;
    int json = i < len && data[i] == '{';
    is->format = json ? "jsonl" : "gslm";
    size_t line = 0;
    int rc = 0;
    char *s = (char *)data, *end = (char *)data + len;
    while (rc == 0 && s < end) {
        char *nl = memchr(s, '\n', (size_t)(end - s));
        if (nl) *nl = 0;
        line++;
        char *t = s;
        while (*t == ' ' || *t == '\t' || *t == '\r')
            t++;
        if (*t) rc = json ? parse_json_line(is, s, line, err) : parse_gslm_line(is, s, line, err);
        if (!nl) break;
        s = nl + 1;
    }
    if (rc < 0) return rc;
    if (is->n == 0) return s2s_err_set(err, S2S_EDATA, "%s: no units in the file", is->name);
    qsort(is->e, is->n, sizeof *is->e, cmp_entry);
    for (size_t j = 1; j < is->n; j++)
        if (cmp_entry(&is->e[j - 1], &is->e[j]) == 0) {
            size_t a = is->e[j - 1].line, b = is->e[j].line;
            return s2s_err_set(err, S2S_EDATA,
                               "%s:%zu: units for %s.%s given twice (also line %zu)", is->name,
                               a > b ? a : b, is->e[j].id, is->e[j].member, a > b ? b : a);
        }
    return 0;
}

void s2s_units_set_free(s2s_units_set *is) {
    if (!is) return;
    for (size_t i = 0; i < is->n; i++) {
        free(is->e[i].id);
        free(is->e[i].member);
        free(is->e[i].units);
    }
    free(is->e);
    free(is->name);
    free(is);
}

s2s_units_set *s2s_units_set_parse(const unsigned char *data, size_t len, const char *name,
                                   long long k, s2s_err *err) {
    s2s_units_set *is = calloc(1, sizeof *is);
    unsigned char *copy = malloc(len + 1);
    if (!is || !copy || !(is->name = strdup(name ? name : "units"))) {
        free(copy);
        s2s_units_set_free(is);
        s2s_err_set(err, S2S_ENOMEM, "out of memory");
        return NULL;
    }
    memcpy(copy, data, len);
    copy[len] = 0;
    is->k = k > 0 ? k : 0;
    int rc = parse_all(is, copy, len, err);
    free(copy);
    if (rc < 0) {
        s2s_units_set_free(is);
        return NULL;
    }
    return is;
}

s2s_units_set *s2s_units_set_load(const char *path, long long k, s2s_err *err) {
    unsigned char *data;
    size_t len;
    if (s2s_read_file(path, &data, &len, err) < 0) return NULL;
    s2s_units_set *is = s2s_units_set_parse(data, len, path, k, err);
    free(data);
    return is;
}

const char *s2s_units_set_format(const s2s_units_set *is) {
    return is->format;
}
const char *s2s_units_set_sha256(const s2s_units_set *is) {
    return is->sha;
}
size_t s2s_units_set_size(const s2s_units_set *is) {
    return is->n;
}

/* First entry with this id, or is->n. */
static size_t find_id(const s2s_units_set *is, const char *id) {
    size_t lo = 0, hi = is->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(is->e[mid].id, id) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < is->n && strcmp(is->e[lo].id, id) == 0 ? lo : is->n;
}

int s2s_units_set_attach(s2s_units_set *is, s2s_sample *s, json_t **frames, s2s_err *err) {
    *frames = NULL;
    size_t i = find_id(is, s->key);
    if (i == is->n) return 0;
    json_t *fr = json_object();
    if (!fr) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    int n = 0, rc = 0;
    for (; i < is->n && strcmp(is->e[i].id, s->key) == 0; i++, n++) {
        entry *e = &is->e[i];
        char suffix[256];
        snprintf(suffix, sizeof suffix, "%s.units", e->member);
        if ((rc = s2s_sample_put_copy(s, suffix, e->units, strlen(e->units), err)) < 0) break;
        if (json_object_set_new(fr, e->member, json_integer((json_int_t)e->n_units)) < 0) {
            rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
            break;
        }
        e->used = 1;
    }
    if (rc < 0) {
        json_decref(fr);
        return rc;
    }
    *frames = fr;
    return n;
}

int s2s_units_set_check_used(const s2s_units_set *is, const s2s_part *part, s2s_err *err) {
    for (size_t i = 0; i < is->n; i++)
        if (!is->e[i].used && (!part || s2s_part_keep(part, is->e[i].id)))
            return s2s_err_set(err, S2S_EDATA,
                               "%s:%zu: unknown id '%s': no such sample in the input", is->name,
                               is->e[i].line, is->e[i].id);
    return 0;
}

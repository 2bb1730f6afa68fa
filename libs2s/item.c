/* item.c — validation, accessors and deterministic serialisation of items (s2s/item.h). */
#include "s2s/item.h"

#include <stdlib.h>
#include <string.h>

#include "s2s/util.h"

static int nonblank(const char *s)
{
    for (; s && *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r') return 1;
    return 0;
}

int s2s_item_validate(const json_t *item, s2s_err *err)
{
    if (!json_is_object(item)) return s2s_err_set(err, S2S_EDATA, "item is not a JSON object");
    const json_t *id = json_object_get(item, "id");
    if (!id) return s2s_err_set(err, S2S_EDATA, "missing field \"id\"");
    if (!json_is_string(id)) return s2s_err_set(err, S2S_EDATA, "\"id\" must be a string");
    const char *ids = json_string_value(id);
    if (!s2s_id_valid(ids))
        return s2s_err_set(err, S2S_EDATA,
                           "id \"%.80s\" is not valid: use 1-200 ASCII letters, digits, '_' or '-' "
                           "(no dots: WebDataset splits keys at the first dot)",
                           ids);
    const json_t *task = json_object_get(item, "task");
    if (!task) return s2s_err_set(err, S2S_EDATA, "item %s: missing field \"task\"", ids);
    const char *ts = json_string_value(task);
    if (!ts || (strcmp(ts, "cloze") != 0 && strcmp(ts, "choice") != 0))
        return s2s_err_set(err, S2S_EDATA, "item %s: \"task\" must be \"cloze\" or \"choice\"", ids);
    const json_t *lang = json_object_get(item, "lang");
    if (!lang) return s2s_err_set(err, S2S_EDATA, "item %s: missing field \"lang\"", ids);
    if (!json_is_string(lang) || !*json_string_value(lang))
        return s2s_err_set(err, S2S_EDATA, "item %s: \"lang\" must be a non-empty string", ids);
    const json_t *cat = json_object_get(item, "category");
    if (cat && !json_is_string(cat))
        return s2s_err_set(err, S2S_EDATA, "item %s: \"category\" must be a string", ids);
    const json_t *ctx = json_object_get(item, "context");
    if (!ctx) return s2s_err_set(err, S2S_EDATA, "item %s: missing field \"context\"", ids);
    if (!json_is_object(ctx))
        return s2s_err_set(err, S2S_EDATA, "item %s: \"context\" must be an object", ids);
    const json_t *ct = json_object_get(ctx, "text");
    if (!json_is_string(ct))
        return s2s_err_set(err, S2S_EDATA, "item %s: \"context.text\" must be a string", ids);
    if (!nonblank(json_string_value(ct)))
        return s2s_err_set(err, S2S_EDATA, "item %s: \"context.text\" is empty", ids);
    const json_t *cands = json_object_get(item, "candidates");
    if (!cands) return s2s_err_set(err, S2S_EDATA, "item %s: missing field \"candidates\"", ids);
    if (!json_is_array(cands))
        return s2s_err_set(err, S2S_EDATA, "item %s: \"candidates\" must be an array", ids);
    size_t n = json_array_size(cands), right = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *c = json_array_get(cands, i);
        if (!json_is_object(c))
            return s2s_err_set(err, S2S_EDATA, "item %s: candidate %zu is not an object", ids, i);
        const json_t *tx = json_object_get(c, "text");
        if (!json_is_string(tx))
            return s2s_err_set(err, S2S_EDATA, "item %s: candidate %zu: \"text\" must be a string",
                               ids, i);
        if (!nonblank(json_string_value(tx)))
            return s2s_err_set(err, S2S_EDATA, "item %s: candidate %zu: \"text\" is empty", ids, i);
        const json_t *lb = json_object_get(c, "label");
        if (!json_is_integer(lb) || (json_integer_value(lb) != 0 && json_integer_value(lb) != 1))
            return s2s_err_set(err, S2S_EDATA, "item %s: candidate %zu: \"label\" must be 0 or 1",
                               ids, i);
        right += json_integer_value(lb) == 1;
    }
    if (strcmp(ts, "cloze") == 0 && n != 2)
        return s2s_err_set(err, S2S_EDATA, "item %s: a cloze item needs exactly 2 candidates, has %zu",
                           ids, n);
    if (n < 2)
        return s2s_err_set(err, S2S_EDATA, "item %s: a choice item needs at least 2 candidates, has %zu",
                           ids, n);
    if (right != 1)
        return s2s_err_set(err, S2S_EDATA, "item %s: exactly one candidate must have label 1, %zu do",
                           ids, right);
    return 0;
}

const char *s2s_item_id(const json_t *item)
{
    return json_string_value(json_object_get(item, "id"));
}

const char *s2s_item_task(const json_t *item)
{
    return json_string_value(json_object_get(item, "task"));
}

const char *s2s_item_lang(const json_t *item)
{
    return json_string_value(json_object_get(item, "lang"));
}

const char *s2s_item_context_text(const json_t *item)
{
    return json_string_value(json_object_get(json_object_get(item, "context"), "text"));
}

size_t s2s_item_n_candidates(const json_t *item)
{
    return json_array_size(json_object_get(item, "candidates"));
}

const char *s2s_item_candidate_text(const json_t *item, size_t i)
{
    return json_string_value(json_object_get(json_array_get(json_object_get(item, "candidates"), i), "text"));
}

int s2s_item_candidate_label(const json_t *item, size_t i)
{
    const json_t *l = json_object_get(json_array_get(json_object_get(item, "candidates"), i), "label");
    return json_is_integer(l) ? (int)json_integer_value(l) : -1;
}

int s2s_item_right_index(const json_t *item)
{
    size_t n = s2s_item_n_candidates(item);
    for (size_t i = 0; i < n; i++)
        if (s2s_item_candidate_label(item, i) == 1) return (int)i;
    return -1;
}

char *s2s_item_dumps(const json_t *item)
{
    /* Insertion order (jansson >= 2.8 keeps it), compact, UTF-8 as is, reals shortest round-trip. */
    return json_dumps(item, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
}

int s2s_item_write(FILE *fp, const json_t *item, s2s_err *err)
{
    char *s = s2s_item_dumps(item);
    if (!s) return s2s_err_set(err, S2S_ENOMEM, "cannot serialise item");
    int bad = fputs(s, fp) < 0 || fputc('\n', fp) == EOF;
    free(s);
    if (bad) return s2s_err_errno(err, "write failed");
    return 0;
}

int s2s_item_add_provenance(json_t *item, const char *tool, json_t *params, s2s_err *err)
{
    json_t *prov = json_object_get(item, "provenance");
    if (!prov) {
        prov = json_array();
        if (!prov || json_object_set_new(item, "provenance", prov) != 0) {
            json_decref(params);
            return s2s_err_set(err, S2S_ENOMEM, "out of memory");
        }
    } else if (!json_is_array(prov)) {
        json_decref(params);
        return s2s_err_set(err, S2S_EDATA, "item %s: \"provenance\" is not an array",
                           s2s_item_id(item) ? s2s_item_id(item) : "?");
    }
    json_t *rec = json_pack("{s:s, s:s}", "tool", tool, "version", S2S_VERSION);
    if (!rec) {
        json_decref(params);
        return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    }
    if (params && json_object_set_new(rec, "params", params) != 0) {
        json_decref(rec);
        return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    }
    if (json_array_append_new(prov, rec) != 0) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    return 0;
}

/* ---- id set: open addressing on FNV-1a ------------------------------------------------------- */
struct s2s_idset {
    char **slots;
    size_t cap, n;
};

s2s_idset *s2s_idset_new(void)
{
    s2s_idset *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->cap = 1024;
    s->slots = calloc(s->cap, sizeof *s->slots);
    if (!s->slots) {
        free(s);
        return NULL;
    }
    return s;
}

static size_t idset_find(char **slots, size_t cap, const char *id)
{
    size_t i = (size_t)(s2s_fnv1a64(id) & (cap - 1));
    while (slots[i] && strcmp(slots[i], id) != 0) i = (i + 1) & (cap - 1);
    return i;
}

int s2s_idset_add(s2s_idset *s, const char *id)
{
    if ((s->n + 1) * 2 > s->cap) {
        size_t cap = s->cap * 2;
        char **slots = calloc(cap, sizeof *slots);
        if (!slots) return S2S_ENOMEM;
        for (size_t i = 0; i < s->cap; i++)
            if (s->slots[i]) slots[idset_find(slots, cap, s->slots[i])] = s->slots[i];
        free(s->slots);
        s->slots = slots;
        s->cap = cap;
    }
    size_t i = idset_find(s->slots, s->cap, id);
    if (s->slots[i]) return 0;
    if (!(s->slots[i] = strdup(id))) return S2S_ENOMEM;
    s->n++;
    return 1;
}

int s2s_idset_has(const s2s_idset *s, const char *id)
{
    return s->slots[idset_find(s->slots, s->cap, id)] != NULL;
}

size_t s2s_idset_size(const s2s_idset *s)
{
    return s->n;
}

void s2s_idset_free(s2s_idset *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->cap; i++) free(s->slots[i]);
    free(s->slots);
    free(s);
}

/* recipe.c — dataset recipes (s2s/recipe.h). */
#include "s2s/recipe.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "s2s/synth.h"
#include "s2s/util.h"

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        s[--n] = 0;
    return s;
}

static char *join_path(const char *dir, const char *rel) {
    if (!dir || rel[0] == '/') return strdup(rel);
    size_t n = strlen(dir) + strlen(rel) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, rel);
    return p;
}

static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    return strndup(path, (size_t)(slash - path) ? (size_t)(slash - path) : 1);
}

void s2s_recipe_free(s2s_recipe *r) {
    if (!r) return;
    for (size_t i = 0; i < r->n_sources; i++) {
        free(r->sources[i].importer);
        free(r->sources[i].lang);
        for (size_t j = 0; j < r->sources[i].n_paths; j++)
            free(r->sources[i].paths[j]);
        free(r->sources[i].paths);
    }
    free(r->sources);
    free(r->path), free(r->name), free(r->root), free(r->voice), free(r->voices);
    free(r->speech), free(r->codebook_path), free(r->text);
    free(r);
}

static int is_name(const char *s) {
    return s2s_id_valid(s);
}

s2s_recipe *s2s_recipe_load(const char *name_or_path, const char *root_override, s2s_err *err) {
    s2s_recipe *r = calloc(1, sizeof *r);
    char *text = NULL, *rdir = NULL, *root_key = NULL;
    unsigned char *data = NULL;
    size_t len;
    if (!r) goto nomem;
    if (!strchr(name_or_path, '/') && !strstr(name_or_path, ".recipe")) {
        size_t n = strlen(S2S_SOURCE_DIR) + strlen(name_or_path) + 32;
        if (!(r->path = malloc(n))) goto nomem;
        snprintf(r->path, n, "%s/manifests/%s.recipe", S2S_SOURCE_DIR, name_or_path);
        if (access(r->path, R_OK) != 0) {
            s2s_err_set(
                err, S2S_EINVAL,
                "no recipe '%s': not a file and not in %s/manifests/ (ls manifests/ for the "
                "shipped ones)",
                name_or_path, S2S_SOURCE_DIR);
            goto fail;
        }
    } else if (!(r->path = strdup(name_or_path))) {
        goto nomem;
    }
    if (s2s_read_file(r->path, &data, &len, err) != 0) goto fail;
    if (!(r->text = strdup((char *)data))) goto nomem;
    if (!(rdir = dir_of(r->path))) goto nomem;
    r->rate = 16000;
    r->per_shard = 1000;
    r->seed = 1;
    char *save = NULL, *line;
    long lineno = 0;
    char *cursor = (char *)data;
    (void)save;
    while ((line = cursor) != NULL && *cursor) {
        char *nl = strchr(cursor, '\n');
        if (nl) {
            *nl = 0;
            cursor = nl + 1;
        } else {
            cursor += strlen(cursor);
        }
        lineno++;
        char *hash = strchr(line, '#');
        if (hash) *hash = 0;
        char *l = trim(line);
        if (!*l) continue;
        char *eq = strchr(l, '=');
        if (!eq) {
            s2s_err_set(err, S2S_EFORMAT, "%s:%ld: expected 'key = value'", r->path, lineno);
            goto fail;
        }
        *eq = 0;
        char *key = trim(l), *val = trim(eq + 1);
        char **dst = NULL;
        if (!*val) {
            s2s_err_set(err, S2S_EFORMAT, "%s:%ld: '%s' has no value", r->path, lineno, key);
            goto fail;
        }
        if (strcmp(key, "name") == 0) {
            if (!is_name(val)) {
                s2s_err_set(err, S2S_EFORMAT, "%s:%ld: name '%s': use letters, digits, '_', '-'",
                            r->path, lineno, val);
                goto fail;
            }
            dst = &r->name;
        } else if (strcmp(key, "root") == 0) {
            dst = &root_key;
        } else if (strcmp(key, "voice") == 0) {
            dst = &r->voice;
            r->voice_line = lineno;
        } else if (strcmp(key, "voices") == 0) {
            dst = &r->voices;
            r->voices_line = lineno;
        } else if (strcmp(key, "speech") == 0) {
            if (strcmp(val, "ctx") != 0 && strcmp(val, "ctx,candidates") != 0 &&
                strcmp(val, "candidates") != 0) {
                s2s_err_set(err, S2S_EFORMAT,
                            "%s:%ld: speech must be ctx, candidates or ctx,candidates", r->path,
                            lineno);
                goto fail;
            }
            dst = &r->speech;
        } else if (strcmp(key, "rate") == 0 || strcmp(key, "per_shard") == 0 ||
                   strcmp(key, "seed") == 0) {
            char *end;
            errno = 0;
            unsigned long v = strtoul(val, &end, 10);
            if (*end || errno || val[0] == '-' ||
                (strcmp(key, "seed") != 0 && (v == 0 || v > 1000000))) {
                s2s_err_set(err, S2S_EFORMAT, "%s:%ld: %s must be a positive integer", r->path,
                            lineno, key);
                goto fail;
            }
            if (key[0] == 'r')
                r->rate = (unsigned)v;
            else if (key[0] == 'p')
                r->per_shard = (unsigned)v;
            else
                r->seed = v;
            continue;
        } else if (strcmp(key, "codebook") == 0) {
            r->codebook_line = lineno;
            if (strncmp(val, "train", 5) == 0) {
                char *end;
                long k = strtol(val + 5, &end, 10);
                if (*trim(end) || k < 2 || k > 65536) {
                    s2s_err_set(err, S2S_EFORMAT, "%s:%ld: codebook = train K, 2 <= K <= 65536",
                                r->path, lineno);
                    goto fail;
                }
                r->codebook_train_k = (int)k;
            } else if (strcmp(val, "none") != 0) {
                free(r->codebook_path);
                if (!(r->codebook_path = join_path(rdir, val))) goto nomem;
            }
            continue;
        } else if (strcmp(key, "source") == 0) {
            s2s_recipe_source *ns = realloc(r->sources, (r->n_sources + 1) * sizeof *ns);
            if (!ns) goto nomem;
            r->sources = ns;
            s2s_recipe_source *src = &r->sources[r->n_sources++];
            memset(src, 0, sizeof *src);
            src->line = lineno;
            char *tok, *sp = NULL;
            int k = 0;
            for (tok = strtok_r(val, " \t", &sp); tok; tok = strtok_r(NULL, " \t", &sp), k++) {
                if (k == 0) {
                    if (!(src->importer = strdup(tok))) goto nomem;
                } else if (k == 1) {
                    if (!(src->lang = strdup(tok))) goto nomem;
                } else {
                    char **np = realloc(src->paths, (src->n_paths + 1) * sizeof *np);
                    if (!np) goto nomem;
                    src->paths = np;
                    if (!(src->paths[src->n_paths++] = strdup(tok))) goto nomem;
                }
            }
            if (k < 3) {
                s2s_err_set(err, S2S_EFORMAT, "%s:%ld: source = IMPORTER LANG PATH [PATH...]",
                            r->path, lineno);
                goto fail;
            }
            continue;
        } else {
            s2s_err_set(err, S2S_EFORMAT, "%s:%ld: unknown key '%s' (see docs/recipes.md)", r->path,
                        lineno, key);
            goto fail;
        }
        free(*dst);
        if (!(*dst = strdup(val))) goto nomem;
    }
    if (!r->name) {
        s2s_err_set(err, S2S_EFORMAT, "%s: no 'name = ...' line", r->path);
        goto fail;
    }
    if (!r->n_sources) {
        s2s_err_set(err, S2S_EFORMAT, "%s: no 'source = IMPORTER LANG PATH' line", r->path);
        goto fail;
    }
    if (!r->speech && !(r->speech = strdup("ctx,candidates"))) goto nomem;
    const char *env = getenv("S2S_CORPORA");
    if (root_override)
        r->root = strdup(root_override);
    else if (root_key)
        r->root = join_path(rdir, root_key);
    else if (env && *env)
        r->root = strdup(env);
    for (size_t i = 0; i < r->n_sources; i++)
        for (size_t j = 0; j < r->sources[i].n_paths; j++) {
            char *p = r->sources[i].paths[j];
            if (p[0] != '/' && !r->root) {
                s2s_err_set(err, S2S_EINVAL,
                            "%s: source '%s' is relative, and no root is known: give --root DIR "
                            "(e.g. --root ../shared/corpora) or set S2S_CORPORA",
                            r->path, p);
                goto fail;
            }
            char *full = join_path(r->root, p);
            if (!full) goto nomem;
            free(p);
            r->sources[i].paths[j] = full;
        }
    free(data);
    free(rdir);
    free(root_key);
    return r;
nomem:
    s2s_err_set(err, S2S_ENOMEM, "out of memory");
fail:
    free(data);
    free(text);
    free(rdir);
    free(root_key);
    s2s_recipe_free(r);
    return NULL;
}

int s2s_recipe_check_sources(const s2s_recipe *r, s2s_err *err) {
    static const char *known[] = {"storycloze", "cmmlu", "s2sbench", "items"};
    for (size_t i = 0; i < r->n_sources; i++) {
        const s2s_recipe_source *s = &r->sources[i];
        int ok = 0;
        for (size_t k = 0; k < sizeof known / sizeof *known; k++)
            ok |= strcmp(known[k], s->importer) == 0;
        if (!ok)
            return s2s_err_set(
                err, S2S_EINVAL,
                "%s:%ld: unknown importer '%s' (known: storycloze, cmmlu, s2sbench, items)",
                r->path, s->line, s->importer);
        for (size_t j = 0; j < s->n_paths; j++) {
            struct stat st;
            if (stat(s->paths[j], &st) != 0)
                return s2s_err_errno(err, "%s:%ld: source %s", r->path, s->line, s->paths[j]);
        }
    }
    if (r->codebook_path && access(r->codebook_path, R_OK) != 0)
        return s2s_err_errno(err, "%s:%ld: codebook %s", r->path, r->codebook_line,
                             r->codebook_path);
    return 0;
}

int s2s_recipe_check_voices(const s2s_recipe *r, s2s_err *err) {
    s2s_synth_opts o;
    s2s_synth_opts_default(&o);
    o.voice = r->voice;
    o.voices = r->voices;
    o.seed = r->seed;
    s2s_synth *s = s2s_synth_new(&o, err);
    if (!s) {
        if (err->code == S2S_EINVAL && (r->voices || r->voice))
            s2s_err_prefix(err, "%s:%ld: %s: ", r->path, r->voices ? r->voices_line : r->voice_line,
                           r->voices ? "voices" : "voice");
        return err->code;
    }
    int rc = 0;
    for (size_t i = 0; rc == 0 && !r->voice && !r->voices && i < r->n_sources; i++) {
        json_t *item = json_pack("{s:s, s:s}", "id", "recipe", "lang", r->sources[i].lang);
        char voice[128];
        if (!item) {
            rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
            break;
        }
        s2s_err e;
        s2s_err_clear(&e);
        if (s2s_synth_voice_for(s, item, voice, sizeof voice, &e) != 0) {
            /* the synthesizer says "item recipe: language ... (close: ...)": keep its reason */
            const char *why = strncmp(e.msg, "item recipe: ", 13) == 0 ? e.msg + 13 : e.msg;
            rc = s2s_err_set(err, S2S_EINVAL,
                             "%s:%ld: %s; name one with 'voice = VOICE' (s2s-synth --list-voices)",
                             r->path, r->sources[i].line, why);
        }
        json_decref(item);
    }
    s2s_synth_free(s);
    return rc;
}

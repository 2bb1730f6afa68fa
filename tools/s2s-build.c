/* s2s-build — one recipe from manifests/ -> a verified dataset directory, by running our own
 * tools as pipelines of processes: import -> synth -> resample -> [tokenize] -> pack -> verify.
 *
 * Resumable at shard granularity (s2s/build.h): the items are cut into chunks of per_shard
 * items, each chunk runs through its own pipeline and its shard is moved to its final name and
 * recorded in DIR/.build/journal as soon as it is packed; a rerun skips the chunks whose shards
 * the journal lists and that still verify. dataset.json is written last, from the journal. */
#define _XOPEN_SOURCE 700 /* nftw */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "s2s/build.h"
#include "s2s/err.h"
#include "s2s/pipeline.h"
#include "s2s/recipe.h"
#include "s2s/shard.h"
#include "s2s/util.h"

static const char *prog = "s2s-build";
static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) {
    stop_signal = sig;
}

static void usage(FILE *fp) {
    fprintf(fp,
            "Usage: s2s-build RECIPE -o DIR [-j N] [--shard I/N] [--codebook FILE] [--root DIR]\n"
            "                 [--keep-temp]\n"
            "\n"
            "Builds the dataset a recipe describes into DIR: imports the text sources, speaks\n"
            "contexts and candidates (s2s-synth), resamples (s2s-resample), learns or applies a\n"
            "unit codebook (s2s-tokenize), packs shards (s2s-pack) and verifies them\n"
            "(s2s-shard verify). Each step is one of our tools, connected by pipes; one\n"
            "progress line covers the whole build (on a terminal).\n"
            "\n"
            "Resumable: every shard is moved to its final name and recorded in DIR/.build/journal\n"
            "as soon as it is packed. After an interruption (Ctrl-C, kill, a crash), run the same\n"
            "command again: the shards the journal lists that still verify are kept, the build\n"
            "goes on from the first missing one, and the result is byte for byte what an\n"
            "uninterrupted build writes. A learned codebook (codebook = train K) is kept in DIR\n"
            "and reused, never retrained. dataset.json appears only when every shard is done.\n"
            "\n"
            "RECIPE is a file, or the name of a shipped recipe in manifests/ (samples,\n"
            "sstorycloze, sstorycloze-val, zh-sstorycloze, scmmlu, fr-samples). Format:\n"
            "docs/recipes.md. The recipe is checked before any work starts (unknown key or\n"
            "importer, missing source or codebook, a language without an espeak-ng voice):\n"
            "the error names RECIPE:LINE and DIR is not created.\n"
            "\n"
            "Options:\n"
            "  -o, --output DIR   dataset directory (created; must be empty, a finished build of\n"
            "                     the same recipe, which is then only verified, or an\n"
            "                     interrupted build of the same recipe, which is resumed)\n"
            "  -j, --jobs N       synthesis worker processes (default 2)\n"
            "      --shard I/N    build only part I of N (items by a hash of their id) into\n"
            "                     DIR, shards named NAME-pIofN-%%06d.tar; combine parts with\n"
            "                     `s2s-shard merge PART... -o DIR`. Needs a codebook file, not\n"
            "                     'codebook = train K' (each part would learn its own):\n"
            "                     give --codebook FILE.\n"
            "      --codebook FILE  tokenize with the codebook FILE whatever the recipe's\n"
            "                     'codebook =' says (e.g. the one a whole build trained, for\n"
            "                     its parts). dataset.json records the recipe with that line\n"
            "                     replaced by 'codebook = ABSOLUTE-PATH', so parts built with\n"
            "                     the same FILE merge.\n"
            "      --root DIR     directory the recipe's sources are under (else the recipe's\n"
            "                     root, else $S2S_CORPORA)\n"
            "      --keep-temp    keep DIR/.build (journal, items, staging) after success\n"
            "  -h, --help, --version\n"
            "\n"
            "Examples:\n"
            "  s2s-build samples -o out/samples\n"
            "  s2s-build sstorycloze --root ../shared/corpora -o out/sstorycloze -j 2\n"
            "  # parts need one codebook file (docs/fanout.md): train it once, then\n"
            "  parallel s2s-build scmmlu --root CORPORA --codebook units.cb --shard {}/4 \\\n"
            "      -o parts/{} ::: 0 1 2 3\n"
            "  s2s-shard merge parts/[0-9]* -o out/scmmlu\n"
            "\n"
            "Exit status: 0 built (or already up to date), 1 a step failed (its message says\n"
            "which and why), 2 usage or recipe error, 3 I/O error, 130 interrupted (rerun to\n"
            "resume).\n");
}

/* ---- progress: one line for the whole build -------------------------------------------- */
typedef struct progress {
    int tty;
    const char *name;
    struct timespec start;
    uint64_t total, done; /* work units: items through the speech pass, items packed */
    uint64_t cur;         /* units of the pipeline running now */
    double frac;          /* how far it is (from its input offset), -1 unknown */
    const char *phase;
    size_t shard, shards;
} progress;

static double elapsed(const progress *pg) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - pg->start.tv_sec) + (now.tv_nsec - pg->start.tv_nsec) * 1e-9;
}

static void progress_draw(progress *pg) {
    if (!pg->tty) return;
    double f = pg->frac > 0 ? (pg->frac > 1 ? 1 : pg->frac) : 0;
    double done = (double)pg->done + f * (double)pg->cur, el = elapsed(pg);
    double pct = pg->total ? 100.0 * done / (double)pg->total : 0;
    char eta[32] = "";
    if (done > 0 && pg->total)
        snprintf(eta, sizeof eta, ", ETA %.0fs", el * (pg->total - done) / done);
    fprintf(stderr, "\r%s: %s: %s, shard %zu/%zu, %.0f%% (%.0fs%s)\033[K", prog, pg->name,
            pg->phase, pg->shard, pg->shards, pct, el, eta);
    fflush(stderr);
}

static void on_tick(void *ctx, double frac) {
    progress *pg = ctx;
    pg->frac = frac;
    progress_draw(pg);
}

/* A log line: on a terminal it replaces the progress line, which is redrawn below it. */
static void say(progress *pg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(progress *pg, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (pg && pg->tty) fputs("\r\033[K", stderr);
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    if (pg) progress_draw(pg);
}

/* ---- pipelines ------------------------------------------------------------------------- */
/* Runs p with stdin from in and stdout to out; echoes the command line the first time a label is
 * used (or always when verbose). */
static int run(s2s_pipeline *p, const char *in, const char *out, const char *label, progress *pg,
               s2s_err *err) {
    static char seen[16][32];
    static int n_seen;
    int first = 1;
    for (int i = 0; i < n_seen; i++)
        first &= strcmp(seen[i], label) != 0;
    if (first && n_seen < 16) snprintf(seen[n_seen++], sizeof seen[0], "%s", label);
    if (first)
        say(pg, "%s: %s%s%s%s%s", label, s2s_pipeline_str(p), in ? " < " : "", in ? in : "",
            out ? " > " : "", out ? out : "");
    s2s_pipeline_set_stop_flag(p, &stop_signal);
    if (pg) {
        pg->frac = -1;
        s2s_pipeline_set_tick(p, on_tick, pg);
    }
    int rc = stop_signal ? s2s_err_set(err, S2S_EINTR, "interrupted")
                         : s2s_pipeline_run(p, in, out, err);
    if (rc) s2s_err_prefix(err, "%s: ", label);
    return rc;
}

/* Appends argv[0..n-1] to p, leaving out NULL entries (absent options). */
static int add_argv(s2s_pipeline *p, const char **argv, int n, s2s_err *err) {
    const char *out[64];
    int k = 0;
    for (int i = 0; i < n && k < 63; i++)
        if (argv[i]) out[k++] = argv[i];
    out[k] = NULL;
    return s2s_pipeline_add(p, out, err);
}
#define ADD(p, err, ...)                                                                           \
    add_argv((p), (const char *[]){__VA_ARGS__},                                                   \
             (int)(sizeof((const char *[]){__VA_ARGS__}) / sizeof(const char *)), (err))

/* ---- files ----------------------------------------------------------------------------- */
static int concat_files(char **paths, size_t n, const char *out, s2s_err *err) {
    FILE *o = fopen(out, "wb");
    if (!o) return s2s_err_errno(err, "%s", out);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        unsigned char *d;
        size_t len;
        if ((rc = s2s_read_file(paths[i], &d, &len, err)) != 0) break;
        if (len && fwrite(d, 1, len, o) != len) rc = s2s_err_errno(err, "%s", out);
        free(d);
    }
    if (fclose(o) != 0 && rc == 0) rc = s2s_err_errno(err, "%s", out);
    return rc;
}

static json_t *recipe_record(const s2s_recipe *r, const char *part) {
    char hash[65];
    s2s_sha256_hex(r->text, strlen(r->text), hash);
    json_t *rec = json_pack("{s:s, s:s, s:s}", "name", r->name, "sha256", hash, "text", r->text);
    if (rec && part) json_object_set_new(rec, "part", json_string(part));
    return rec;
}

/* 1 if DIR holds a finished build of this recipe and part. */
static int already_built(const char *dir, const s2s_recipe *r, const char *part) {
    char path[4096];
    snprintf(path, sizeof path, "%s/dataset.json", dir);
    json_t *ds = json_load_file(path, 0, NULL);
    if (!ds) return 0;
    char hash[65];
    s2s_sha256_hex(r->text, strlen(r->text), hash);
    json_t *rec = json_object_get(ds, "recipe");
    const char *h = json_string_value(json_object_get(rec, "sha256"));
    const char *p = json_string_value(json_object_get(rec, "part"));
    int same = h && strcmp(h, hash) == 0 && ((!p && !part) || (p && part && strcmp(p, part) == 0));
    json_decref(ds);
    return same;
}

/* Directory helpers without a shell: -o may hold any character, quotes included. */
static int dir_is_empty(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT;
    struct dirent *e;
    int empty = 1;
    while (empty && (e = readdir(d)) != NULL)
        empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
    closedir(d);
    return empty;
}

static int mkdir_p(const char *path) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
            *p = '/';
        }
    return mkdir(buf, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)ftw;
    return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static int remove_tree(const char *path) {
    return nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0 && errno != ENOENT ? -1 : 0;
}

/* Removes what a killed run may have left: temporary files (".tmp-") in dir, and in work the
 * staging directories of packs ("pack-PID") and partial speech files. */
static void remove_leftovers(const char *dir, const char *work) {
    const char *dirs[2] = {dir, work};
    char path[4400];
    for (int k = 0; k < 2; k++) {
        DIR *d = opendir(dirs[k]);
        if (!d) continue;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            int stale = strstr(e->d_name, ".tmp-") != NULL ||
                        (k == 1 && (strncmp(e->d_name, "pack-", 5) == 0 ||
                                    strstr(e->d_name, ".partial") != NULL));
            if (!stale) continue;
            snprintf(path, sizeof path, "%s/%s", dirs[k], e->d_name);
            remove_tree(path);
        }
        closedir(d);
    }
}

/* ---- the build ------------------------------------------------------------------------- */
typedef struct build {
    const s2s_recipe *r;
    const char *out, *part; /* part: "I/N" or NULL */
    char work[4096], stage[4200], final_pat[4200], stage_pat[4400], stage_shard[4400], cb[4200];
    char jobs[16], rate[16], seed[32], k[16], per_shard[16];
    size_t n_items, n_chunks;
    s2s_journal *j;
    progress pg;
} build;

static void chunk_path(const build *b, const char *what, size_t k, char *buf, size_t n) {
    snprintf(buf, n, "%s/%s-%06zu.%s", b->work, what, k,
             strcmp(what, "items") == 0 ? "jsonl" : "tar");
}

static void final_path(const build *b, size_t k, char *buf, size_t n) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    snprintf(buf, n, b->final_pat, (int)k); /* our own pattern: one %06d */
#pragma GCC diagnostic pop
}

/* Imports every source into work/items.jsonl (a duplicate id across sources is caught by the
 * next tool's reader), then writes one items file per chunk. *sha receives the SHA-256 of all
 * items: the journal pins it, so a rerun on changed sources cannot mix two datasets. */
static int import_items(build *b, char sha[65], s2s_err *err) {
    const s2s_recipe *r = b->r;
    int rc = 0;
    char items[4400];
    snprintf(items, sizeof items, "%s/items.jsonl", b->work);
    char **parts = calloc(r->n_sources, sizeof *parts);
    if (!parts) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    for (size_t i = 0; rc == 0 && i < r->n_sources; i++) {
        const s2s_recipe_source *s = &r->sources[i];
        if (!(parts[i] = malloc(4400))) {
            rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
            break;
        }
        snprintf(parts[i], 4400, "%s/source-%zu.jsonl", b->work, i);
        const char *av[64];
        int n = 0;
        av[n++] = "s2s-import";
        av[n++] = s->importer;
        av[n++] = "-q";
        av[n++] = "--lang";
        av[n++] = s->lang;
        /* StoryCloze ids number rows: give each language its own prefix so an English and a
         * Chinese file in one recipe cannot collide (en keeps upstream's sstorycloze_N). */
        char prefix[64];
        if (strcmp(s->importer, "storycloze") == 0 && strcmp(s->lang, "en") != 0) {
            snprintf(prefix, sizeof prefix, "%s_sstorycloze", s->lang);
            av[n++] = "--prefix";
            av[n++] = prefix;
        }
        if (b->part) av[n++] = "--shard", av[n++] = b->part;
        av[n++] = "-o";
        av[n++] = parts[i];
        for (size_t j = 0; j < s->n_paths && n < 62; j++)
            av[n++] = s->paths[j];
        s2s_pipeline *p = s2s_pipeline_new(err);
        rc = !p ? err->code : add_argv(p, av, n, err);
        if (!rc) rc = run(p, NULL, NULL, "import", NULL, err);
        s2s_pipeline_free(p);
    }
    if (!rc) rc = concat_files(parts, r->n_sources, items, err);
    for (size_t i = 0; i < r->n_sources; i++)
        free(parts[i]);
    free(parts);
    if (rc) return rc;
    unsigned char *data;
    size_t len;
    if ((rc = s2s_read_file(items, &data, &len, err)) < 0) return rc;
    s2s_sha256_hex(data, len, sha);
    /* one item per line (s2s-import writes JSON lines) */
    b->n_items = 0;
    for (size_t i = 0; i < len; i++)
        b->n_items += data[i] == '\n';
    if (len && data[len - 1] != '\n') b->n_items++;
    unsigned ps = b->r->per_shard;
    b->n_chunks = b->n_items ? (b->n_items + ps - 1) / ps : 1;
    size_t off = 0;
    for (size_t k = 0; rc == 0 && k < b->n_chunks; k++) {
        size_t end = off, lines = 0;
        while (end < len && lines < ps)
            if (data[end++] == '\n') lines++;
        char path[4400];
        chunk_path(b, "items", k, path, sizeof path);
        FILE *f = fopen(path, "wb");
        if (!f || (end > off && fwrite(data + off, 1, end - off, f) != end - off))
            rc = s2s_err_errno(err, "%s", path);
        if (f && fclose(f) != 0 && rc == 0) rc = s2s_err_errno(err, "%s", path);
        off = end;
    }
    free(data);
    return rc;
}

/* Items in chunk k. */
static size_t chunk_items(const build *b, size_t k) {
    size_t ps = b->r->per_shard, first = k * ps;
    return first >= b->n_items ? 0 : (b->n_items - first < ps ? b->n_items - first : ps);
}

/* The synth | resample part of a pipeline (stdin: the chunk's items). */
static int add_speech(build *b, s2s_pipeline *p, s2s_err *err) {
    const s2s_recipe *r = b->r;
    if (ADD(p, err, "s2s-synth", "-q", "-j", b->jobs, "--parts", r->speech, "--seed", b->seed,
            r->voice ? "--voice" : NULL, r->voice, r->voices ? "--voices" : NULL, r->voices) ||
        ADD(p, err, "s2s-resample", "-q", "--rate", b->rate))
        return err->code ? err->code : S2S_ENOMEM;
    return 0;
}

/* Speech of chunk k into work/speech-K.tar (for codebook training), unless already there. */
static int chunk_speech(build *b, size_t k, s2s_err *err) {
    char items[4400], speech[4400], partial[4500];
    chunk_path(b, "items", k, items, sizeof items);
    chunk_path(b, "speech", k, speech, sizeof speech);
    if (access(speech, F_OK) == 0) return 0;
    snprintf(partial, sizeof partial, "%s.partial", speech);
    s2s_pipeline *p = s2s_pipeline_new(err);
    int rc = !p ? err->code : add_speech(b, p, err);
    if (!rc) rc = run(p, items, partial, "speech", &b->pg, err);
    s2s_pipeline_free(p);
    if (!rc && rename(partial, speech) != 0) rc = s2s_err_errno(err, "rename %s", partial);
    if (rc) unlink(partial);
    return rc;
}

/* Packs chunk k into the staging directory, moves its shard to the final name, journals it. */
static int chunk_pack(build *b, size_t k, int train, s2s_err *err) {
    char in[4400], dsp[4500];
    chunk_path(b, train ? "speech" : "items", k, in, sizeof in);
    s2s_pipeline *p = s2s_pipeline_new(err);
    if (!p) return err->code;
    int rc = 0, empty = chunk_items(b, k) == 0;
    if (empty) {
        /* an empty part (--shard of a small dataset): no tool accepts empty input, but a pack
         * of an empty tar stream (the end-of-archive marker) writes the dataset.json of no
         * sample, which merge counts as this part */
        snprintf(in, sizeof in, "%s/empty.tar", b->work);
        FILE *f = fopen(in, "wb");
        static const char zeros[1024];
        if (!f || fwrite(zeros, 1, sizeof zeros, f) != sizeof zeros)
            rc = s2s_err_errno(err, "%s", in);
        if (f && fclose(f) != 0 && !rc) rc = s2s_err_errno(err, "%s", in);
    }
    if (!rc && !train && !empty) rc = add_speech(b, p, err);
    if (!rc && b->cb[0] && !empty) rc = ADD(p, err, "s2s-tokenize", "-q", "--codebook", b->cb);
    /* --shard: the pack records the part in build.params (the items are already that part) */
    if (!rc)
        rc = ADD(p, err, "s2s-pack", "-q", "-o", b->stage_pat, "--per-shard", b->per_shard,
                 b->part ? "--shard" : NULL, b->part);
    if (!rc) rc = run(p, in, NULL, train ? "units+pack" : "shard", &b->pg, err);
    s2s_pipeline_free(p);
    if (rc) return rc;
    snprintf(dsp, sizeof dsp, "%s/dataset.json", b->stage);
    json_error_t je;
    json_t *ds = json_load_file(dsp, JSON_REJECT_DUPLICATES, &je);
    if (!ds) return s2s_err_set(err, S2S_EFORMAT, "%s: %s", dsp, je.text);
    json_t *shards = json_object_get(ds, "shards");
    size_t ns = json_array_size(shards);
    json_t *rec = json_pack("{s:I}", "shard", (json_int_t)k);
    if (!rec) rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
    if (!rc && ns > 1)
        rc = s2s_err_set(err, S2S_EDATA, "%s: chunk %zu gave %zu shards, not 1", dsp, k, ns);
    if (!rc && ns == 1) {
        char final[4400], idx_sha[65];
        final_path(b, k, final, sizeof final);
        json_t *sh = json_array_get(shards, 0);
        if ((rc = s2s_build_move_shard(b->stage_shard, final, idx_sha, err)) == 0) {
            const char *base = strrchr(final, '/') + 1;
            char iname[4500];
            snprintf(iname, sizeof iname, "%s.idx", base);
            json_object_set_new(sh, "name", json_string(base));
            json_object_set_new(sh, "index", json_string(iname));
            json_object_set_new(sh, "index_sha256", json_string(idx_sha));
            json_object_set(rec, "sha256", json_object_get(sh, "sha256"));
            json_object_set_new(rec, "index_sha256", json_string(idx_sha));
        }
    }
    if (!rc) {
        json_object_set(rec, "dataset", ds);
        rc = s2s_journal_append(b->j, rec, err);
    }
    json_decref(rec);
    json_decref(ds);
    unlink(dsp);
    if (!rc && train) {
        chunk_path(b, "speech", k, in, sizeof in);
        unlink(in); /* its units are in the shard now */
    }
    return rc;
}

/* 1 if the journal lists chunk k as done and its shard still verifies. */
static int chunk_done(build *b, size_t k) {
    const json_t *rec = s2s_journal_find(b->j, "shard", (long long)k);
    if (!rec) return 0;
    const char *sha = json_string_value(json_object_get(rec, "sha256"));
    if (!sha) return json_object_get(rec, "dataset") != NULL; /* an empty part: no shard */
    const char *isha = json_string_value(json_object_get(rec, "index_sha256"));
    char final[4400], idx[4500], got[65];
    final_path(b, k, final, sizeof final);
    snprintf(idx, sizeof idx, "%s.idx", final);
    s2s_err e;
    s2s_err_clear(&e);
    if (!isha || s2s_sha256_file(idx, got, &e) < 0 || strcmp(got, isha) != 0 ||
        s2s_shard_verify(final, sha, NULL, NULL, &e) < 0) {
        say(&b->pg, "%s: shard %zu of the interrupted build does not verify (%s): rebuilding it",
            b->r->name, k, e.msg[0] ? e.msg : "index changed");
        return 0;
    }
    return 1;
}

/* 1 if the journal lists a codebook and DIR still holds it, byte for byte. */
static int codebook_done(build *b) {
    const json_t *rec = s2s_journal_find(b->j, "codebook", -1);
    const char *sha = json_string_value(json_object_get(rec, "sha256"));
    char got[65];
    s2s_err e;
    return sha && s2s_sha256_file(b->cb, got, &e) == 0 && strcmp(got, sha) == 0;
}

static int train_codebook(build *b, s2s_err *err) {
    s2s_pipeline *p = s2s_pipeline_new(err);
    if (!p) return err->code;
    const char *av[64];
    int n = 0;
    av[n++] = "s2s-tokenize";
    av[n++] = "train";
    av[n++] = "-q";
    av[n++] = "-k";
    av[n++] = b->k;
    av[n++] = "--seed";
    av[n++] = b->seed;
    av[n++] = "-o";
    av[n++] = b->cb;
    char **paths = calloc(b->n_chunks, sizeof *paths);
    int rc = paths ? 0 : s2s_err_set(err, S2S_ENOMEM, "out of memory");
    for (size_t k = 0; rc == 0 && k < b->n_chunks; k++) {
        if (!(paths[k] = malloc(4400))) {
            rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
            break;
        }
        chunk_path(b, "speech", k, paths[k], 4400);
    }
    if (!rc) {
        /* every chunk's speech, in item order: what one stream of the whole dataset holds */
        const char **all = calloc((size_t)n + b->n_chunks + 1, sizeof *all);
        if (!all) {
            rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
        } else {
            memcpy(all, av, (size_t)n * sizeof *all);
            for (size_t k = 0; k < b->n_chunks; k++)
                all[n + (int)k] = paths[k];
            rc = s2s_pipeline_add(p, all, err);
            free(all);
        }
    }
    b->pg.phase = "training the codebook";
    b->pg.cur = 0;
    if (!rc) rc = run(p, NULL, NULL, "codebook", &b->pg, err);
    s2s_pipeline_free(p);
    for (size_t k = 0; paths && k < b->n_chunks; k++)
        free(paths[k]);
    free(paths);
    if (rc) return rc;
    char sha[65];
    if ((rc = s2s_sha256_file(b->cb, sha, err)) < 0) return rc;
    const char *base = strrchr(b->cb, '/') + 1;
    json_t *rec = json_pack("{s:s, s:s}", "codebook", base, "sha256", sha);
    if (!rec) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    rc = s2s_journal_append(b->j, rec, err);
    json_decref(rec);
    say(&b->pg, "%s: codebook %s (k = %s, sha256 %.16s...) kept in %s for reruns", b->r->name, base,
        b->k, sha, b->out);
    return rc;
}

static int assemble(build *b, s2s_err *err) {
    json_t **chunks = calloc(b->n_chunks, sizeof *chunks);
    if (!chunks) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    int rc = 0;
    for (size_t k = 0; rc == 0 && k < b->n_chunks; k++) {
        const json_t *rec = s2s_journal_find(b->j, "shard", (long long)k);
        if (!(chunks[k] = json_object_get(rec, "dataset")))
            rc = s2s_err_set(err, S2S_EDATA, "%s/journal: no record of shard %zu", b->work, k);
    }
    json_t *ds = rc ? NULL : s2s_build_dataset(chunks, b->n_chunks, err);
    free(chunks);
    if (!ds) return rc ? rc : err->code;
    json_t *rr = recipe_record(b->r, b->part);
    if (!rr || json_object_set_new(ds, "recipe", rr) != 0) {
        json_decref(ds);
        return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/dataset.json", b->out);
    /* sealed and in the canonical form, as s2s-pack writes it (s2s-shard verify checks both) */
    rc = s2s_dataset_write(path, ds, err);
    json_decref(ds);
    return rc;
}

/* Everything between "DIR is ours" and dataset.json. */
static int do_build(build *b, s2s_err *err) {
    const s2s_recipe *r = b->r;
    char sha[65], jpath[4400];
    int rc = import_items(b, sha, err);
    if (rc) return rc;
    /* what a resumed build must share with the interrupted one, most telling first */
    char rh[65];
    s2s_sha256_hex(r->text, strlen(r->text), rh);
    json_t *hdr =
        json_pack("{s:s, s:s, s:s?, s:s, s:I, s:i, s:s}", "journal", "s2s-build", "recipe_sha256",
                  rh, "part", b->part, "items_sha256", sha, "items", (json_int_t)b->n_items,
                  "per_shard", (int)r->per_shard, "version", S2S_VERSION);
    if (!hdr) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    snprintf(jpath, sizeof jpath, "%s/journal", b->work);
    int resumed = 0;
    b->j = s2s_journal_open(jpath, hdr, &resumed, err);
    json_decref(hdr);
    if (!b->j) {
        if (err->code == S2S_EINVAL)
            s2s_err_prefix(err,
                           "%s holds an interrupted build of other inputs (remove it or use "
                           "another -o): ",
                           b->out);
        return err->code;
    }
    int train = r->codebook_train_k > 0;
    if (train && b->n_items == 0)
        return s2s_err_set(err, S2S_EDATA, "%s: the sources hold no item to learn a codebook from",
                           r->path);
    char *done = calloc(b->n_chunks, 1);
    if (!done) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    size_t n_done = 0;
    int have_cb = train && resumed && codebook_done(b);
    for (size_t k = 0; resumed && (!train || have_cb) && k < b->n_chunks; k++)
        n_done += done[k] = (char)chunk_done(b, k);
    b->pg.shards = b->n_chunks;
    b->pg.total = (uint64_t)b->n_items * (train ? 2 : 1);
    for (size_t k = 0; k < b->n_chunks; k++)
        if (done[k]) b->pg.done += chunk_items(b, k) * (train ? 2 : 1);
    if (resumed)
        say(&b->pg, "%s: resuming the interrupted build in %s: %zu of %zu shard(s) done%s", r->name,
            b->out, n_done, b->n_chunks,
            train ? (have_cb ? ", codebook kept" : ", codebook not trained yet") : "");
    else
        say(&b->pg, "%s: %zu items -> %zu shard(s) of up to %u in %s", r->name, b->n_items,
            b->n_chunks, r->per_shard, b->out);
    if (train && !have_cb) {
        /* the codebook is learned from the whole dataset's speech before any unit exists */
        b->pg.phase = "speech for the codebook";
        for (size_t k = 0; rc == 0 && k < b->n_chunks; k++) {
            b->pg.shard = k + 1;
            b->pg.cur = chunk_items(b, k);
            rc = chunk_speech(b, k, err);
            b->pg.done += b->pg.cur;
        }
        if (!rc) rc = train_codebook(b, err);
    } else if (train) {
        b->pg.done += b->n_items - 0; /* the speech pass of the codebook is behind us */
        for (size_t k = 0; k < b->n_chunks; k++)
            if (done[k]) b->pg.done -= chunk_items(b, k);
    }
    b->pg.phase = train ? "units and shards" : "speech and shards";
    for (size_t k = 0; rc == 0 && k < b->n_chunks; k++) {
        if (done[k]) continue;
        b->pg.shard = k + 1;
        b->pg.cur = chunk_items(b, k);
        if (train) rc = chunk_speech(b, k, err); /* gone only if .build was tampered with */
        if (!rc) rc = chunk_pack(b, k, train, err);
        if (rc) break;
        b->pg.done += b->pg.cur;
        b->pg.cur = 0;
        n_done++;
        if (!b->pg.tty)
            say(NULL, "%s: shard %zu/%zu done (%zu items, %.1f s)", r->name, n_done, b->n_chunks,
                chunk_items(b, k), elapsed(&b->pg));
    }
    free(done);
    if (!rc) rc = assemble(b, err);
    return rc;
}

/* --codebook FILE: the recipe tokenizes with FILE (absolute), and its recorded text says so. */
static int override_codebook(s2s_recipe *r, const char *file, s2s_err *err) {
    char abs[PATH_MAX];
    if (!realpath(file, abs) || access(abs, R_OK) != 0)
        return s2s_err_errno(err, "--codebook %s", file);
    struct stat st;
    if (stat(abs, &st) != 0 || !S_ISREG(st.st_mode))
        return s2s_err_set(err, S2S_EINVAL, "--codebook %s: not a regular file", file);
    char *path = strdup(abs);
    /* the text with line codebook_line replaced (or the line appended) */
    const char *t = r->text;
    size_t n = strlen(t), cap = n + strlen(abs) + 32;
    char *text = malloc(cap);
    if (!path || !text) {
        free(path), free(text);
        return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    }
    size_t o = 0;
    long line = 1;
    int done = 0;
    for (const char *p = t; *p;) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) + 1 : strlen(p);
        if (line == r->codebook_line) {
            o += (size_t)snprintf(text + o, cap - o, "codebook = %s\n", abs);
            done = 1;
        } else {
            memcpy(text + o, p, len);
            o += len;
        }
        p += len;
        line++;
    }
    text[o] = 0;
    if (!done) {
        if (o && text[o - 1] != '\n') text[o++] = '\n';
        snprintf(text + o, cap - o, "codebook = %s\n", abs);
    }
    free(r->text);
    r->text = text;
    free(r->codebook_path);
    r->codebook_path = path;
    r->codebook_train_k = 0;
    return 0;
}

int main(int argc, char **argv) {
    const char *out = NULL, *root = NULL, *shard = NULL, *codebook = NULL;
    int jobs = 2, keep = 0;
    static const struct option opts[] = {{"output", required_argument, 0, 'o'},
                                         {"jobs", required_argument, 0, 'j'},
                                         {"shard", required_argument, 0, 'S'},
                                         {"root", required_argument, 0, 'R'},
                                         {"keep-temp", no_argument, 0, 'K'},
                                         {"codebook", required_argument, 0, 'C'},
                                         {"help", no_argument, 0, 'h'},
                                         {"version", no_argument, 0, 'V'},
                                         {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "o:j:h", opts, NULL)) != -1) {
        switch (c) {
        case 'o':
            out = optarg;
            break;
        case 'j':
            jobs = atoi(optarg);
            break;
        case 'S':
            shard = optarg;
            break;
        case 'R':
            root = optarg;
            break;
        case 'K':
            keep = 1;
            break;
        case 'C':
            codebook = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("s2s-build %s\n", S2S_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind + 1 != argc || !out || !*out || jobs < 1 || jobs > 256) {
        fprintf(stderr, "%s: need one RECIPE and -o DIR (see --help)\n", prog);
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: the naps of the pipeline wait end early */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    s2s_err err;
    s2s_err_clear(&err);
    s2s_part part = {0, 1};
    char partstr[64] = "";
    if (shard) {
        if (s2s_part_parse(shard, &part, &err) != 0) {
            fprintf(stderr, "%s: %s\n", prog, err.msg);
            return 2;
        }
        snprintf(partstr, sizeof partstr, "%u/%u", part.index, part.count);
    }
    /* every check that can fail on the recipe runs here, before DIR is touched */
    s2s_recipe *r = s2s_recipe_load(argv[optind], root, &err);
    if (!r || s2s_recipe_check_sources(r, &err) != 0 || s2s_recipe_check_voices(r, &err) != 0) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        s2s_recipe_free(r);
        return err.code == S2S_EIO || s2s_exit_status(err.code) == 1 ? 2
                                                                     : s2s_exit_status(err.code);
    }
    if (codebook && override_codebook(r, codebook, &err) != 0) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        s2s_recipe_free(r);
        return err.code == S2S_ENOMEM ? 3 : 2;
    }
    if (shard && r->codebook_train_k) {
        fprintf(stderr,
                "%s: %s:%ld: --shard needs a codebook file: with 'codebook = train %d' each part "
                "would learn different units. Train one first (s2s-tokenize train, or a whole "
                "build, which keeps DIR/codebook-NAME-kK.cb) and give it with --codebook FILE.\n",
                prog, r->path, r->codebook_line, r->codebook_train_k);
        s2s_recipe_free(r);
        return 2;
    }
    build b;
    memset(&b, 0, sizeof b);
    b.r = r;
    b.out = out;
    b.part = shard ? partstr : NULL;
    snprintf(b.work, sizeof b.work, "%s/.build", out);
    char jpath[4400];
    snprintf(jpath, sizeof jpath, "%s/journal", b.work);
    int building = !already_built(out, r, b.part);
    if (!building) {
        fprintf(stderr, "%s: %s is a finished build of %s; verifying only\n", prog, out, r->name);
    } else if (!dir_is_empty(out) && access(jpath, F_OK) != 0) {
        fprintf(stderr,
                "%s: %s exists and is neither a finished nor an interrupted build of this recipe: "
                "remove it or choose another -o\n",
                prog, out);
        s2s_recipe_free(r);
        return 2;
    }
    b.pg.tty = isatty(STDERR_FILENO) && !getenv("S2S_NO_PROGRESS");
    b.pg.name = r->name;
    b.pg.phase = "starting";
    clock_gettime(CLOCK_MONOTONIC, &b.pg.start);
    snprintf(b.jobs, sizeof b.jobs, "%d", jobs);
    snprintf(b.rate, sizeof b.rate, "%u", r->rate);
    snprintf(b.seed, sizeof b.seed, "%lu", r->seed);
    snprintf(b.per_shard, sizeof b.per_shard, "%u", r->per_shard);
    /* a staging directory per run: a stage of a killed run can never write into ours */
    snprintf(b.stage, sizeof b.stage, "%s/pack-%ld", b.work, (long)getpid());
    char base[300];
    if (shard)
        snprintf(base, sizeof base, "%s-p%uof%u-%%06d.tar", r->name, part.index, part.count);
    else
        snprintf(base, sizeof base, "%s-%%06d.tar", r->name);
    snprintf(b.final_pat, sizeof b.final_pat, "%s/%s", out, base);
    snprintf(b.stage_pat, sizeof b.stage_pat, "%s/%s", b.stage, base);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    snprintf(b.stage_shard, sizeof b.stage_shard, b.stage_pat, 0);
#pragma GCC diagnostic pop
    if (r->codebook_train_k) {
        snprintf(b.cb, sizeof b.cb, "%s/codebook-%s-k%d.cb", out, r->name, r->codebook_train_k);
        snprintf(b.k, sizeof b.k, "%d", r->codebook_train_k);
    } else if (r->codebook_path) {
        snprintf(b.cb, sizeof b.cb, "%s", r->codebook_path);
    }
    int rc = 0, lock = -1;
    if (building) {
        if (mkdir_p(out) != 0 || (mkdir(b.work, 0755) != 0 && errno != EEXIST)) {
            fprintf(stderr, "%s: %s: cannot create: %s\n", prog, b.work, strerror(errno));
            s2s_recipe_free(r);
            return 3;
        }
        char lpath[4400];
        snprintf(lpath, sizeof lpath, "%s/lock", b.work);
        lock = open(lpath, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (lock < 0 || flock(lock, LOCK_EX | LOCK_NB) != 0) {
            fprintf(stderr, "%s: %s: %s\n", prog, lpath,
                    lock < 0 ? strerror(errno) : "another s2s-build is working in this directory");
            s2s_recipe_free(r);
            return lock < 0 ? 3 : 2;
        }
        remove_leftovers(out, b.work);
        if (mkdir(b.stage, 0755) != 0) {
            fprintf(stderr, "%s: %s: cannot create: %s\n", prog, b.stage, strerror(errno));
            s2s_recipe_free(r);
            return 3;
        }
        setenv("S2S_NO_PROGRESS", "1", 1);
        rc = do_build(&b, &err);
        s2s_journal_close(b.j);
        remove_tree(b.stage);
    }
    /* verify what is there */
    if (!rc) {
        b.pg.phase = "verifying";
        b.pg.cur = 0;
        s2s_pipeline *p = s2s_pipeline_new(&err);
        rc = !p ? err.code : ADD(p, &err, "s2s-shard", "verify", "-j", b.jobs, out);
        if (!rc) rc = run(p, NULL, NULL, "verify", &b.pg, &err);
        s2s_pipeline_free(p);
        if (rc && building && !stop_signal) {
            /* let a rerun resume (and re-verify every shard) instead of "verifying only" */
            char ds[4200];
            snprintf(ds, sizeof ds, "%s/dataset.json", out);
            unlink(ds);
        }
    }
    if (b.pg.tty) fputs("\r\033[K", stderr);
    if (!rc && building && !keep && remove_tree(b.work) != 0)
        fprintf(stderr, "%s: could not remove %s\n", prog, b.work);
    if (lock >= 0) close(lock);
    if (rc && (stop_signal || err.code == S2S_EINTR)) {
        fprintf(stderr,
                "%s: %s: interrupted%s; run the same command again to resume from the last "
                "finished shard\n",
                prog, r->name, building ? " (finished shards are kept in the journal)" : "");
        s2s_recipe_free(r);
        return 130;
    }
    if (rc) {
        fprintf(stderr, "%s: %s: %s\n", prog, r->name, err.msg);
        if (building)
            fprintf(stderr,
                    "%s: %s keeps the shards finished so far (%s/journal): fix the cause and "
                    "rerun to resume, or remove it\n",
                    prog, out, b.work);
        s2s_recipe_free(r);
        return s2s_exit_status(rc);
    }
    fprintf(stderr, "%s: %s: built and verified in %s (%.1f s)\n", prog, r->name, out,
            elapsed(&b.pg));
    s2s_recipe_free(r);
    return 0;
}

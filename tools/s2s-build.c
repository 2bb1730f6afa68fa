/* s2s-build — one recipe from manifests/ -> a verified dataset directory, by running our own
 * tools as pipelines of processes: import -> synth -> resample -> [tokenize] -> pack -> verify. */
#define _XOPEN_SOURCE 700 /* nftw */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "s2s/err.h"
#include "s2s/pipeline.h"
#include "s2s/recipe.h"
#include "s2s/util.h"

static const char *prog = "s2s-build";
static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) {
    stop_signal = sig;
}

static void usage(FILE *fp) {
    fprintf(fp,
            "Usage: s2s-build RECIPE -o DIR [-j N] [--shard I/N] [--root DIR] [--keep-temp]\n"
            "\n"
            "Builds the dataset a recipe describes into DIR: imports the text sources, speaks\n"
            "contexts and candidates (s2s-synth), resamples (s2s-resample), learns or applies a\n"
            "unit codebook (s2s-tokenize), packs shards (s2s-pack) and verifies them\n"
            "(s2s-shard verify). Each step is one of our tools, connected by pipes.\n"
            "\n"
            "RECIPE is a file, or the name of a shipped recipe in manifests/ (samples,\n"
            "sstorycloze, zh-sstorycloze, scmmlu). Format: docs/recipes.md.\n"
            "\n"
            "Options:\n"
            "  -o, --output DIR   dataset directory (created; must be empty or a finished build\n"
            "                     of the same recipe, which is then left as it is)\n"
            "  -j, --jobs N       synthesis worker processes (default 2)\n"
            "      --shard I/N    build only part I of N (items by a hash of their id) into\n"
            "                     DIR, shards named NAME-pIofN-%%06d.tar; combine parts with\n"
            "                     `s2s-shard merge PART... -o DIR`. Needs a codebook file, not\n"
            "                     'codebook = train K' (each part would learn its own).\n"
            "      --root DIR     directory the recipe's sources are under (else the recipe's\n"
            "                     root, else $S2S_CORPORA)\n"
            "      --keep-temp    keep DIR/.build (intermediate items and speech)\n"
            "  -h, --help, --version\n"
            "\n"
            "Examples:\n"
            "  s2s-build samples -o out/samples\n"
            "  s2s-build sstorycloze --root ../shared/corpora -o out/sstorycloze -j 2\n"
            "  parallel s2s-build scmmlu --root CORPORA --shard {}/4 -o parts/{} ::: 0 1 2 3\n"
            "  s2s-shard merge parts/* -o out/scmmlu\n"
            "\n"
            "Exit status: 0 built (or already up to date), 1 a step failed (its message says\n"
            "which and why), 2 usage or recipe error, 3 I/O error, 130 interrupted.\n");
}

static int run(s2s_pipeline *p, const char *in, const char *out, const char *label, s2s_err *err) {
    fprintf(stderr, "%s: %s: %s%s%s%s%s\n", prog, label, s2s_pipeline_str(p), in ? " < " : "",
            in ? in : "", out ? " > " : "", out ? out : "");
    s2s_pipeline_set_stop_flag(p, &stop_signal);
    int rc = stop_signal ? s2s_err_set(err, S2S_EINTR, "interrupted")
                         : s2s_pipeline_run(p, in, out, err);
    if (rc) s2s_err_prefix(err, "%s: ", label);
    return rc;
}

static int add(s2s_pipeline *p, s2s_err *err, ...) {
    const char *argv[64];
    int n = 0;
    va_list ap;
    va_start(ap, err);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && n < 63)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    return s2s_pipeline_add(p, argv, err);
}

/* Appends argv to p after filtering out NULL-valued option pairs. */
static int add_argv(s2s_pipeline *p, const char **argv, int n, s2s_err *err) {
    const char *out[64];
    int k = 0;
    for (int i = 0; i < n && k < 63; i++) {
        if (!argv[i]) continue;
        out[k++] = argv[i];
    }
    out[k] = NULL;
    return s2s_pipeline_add(p, out, err);
}

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

/* Records the recipe in dataset.json (written by s2s-pack) so a rerun can tell it is done. */
static int stamp_dataset(const char *dir, const s2s_recipe *r, const char *part, s2s_err *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/dataset.json", dir);
    json_error_t je;
    json_t *ds = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!ds) return s2s_err_set(err, S2S_EFORMAT, "%s: %s", path, je.text);
    char hash[65];
    s2s_sha256_hex(r->text, strlen(r->text), hash);
    json_t *rec = json_pack("{s:s, s:s, s:s, s:s?}", "name", r->name, "sha256", hash, "text",
                            r->text, "part", part);
    if (!rec || json_object_set_new(ds, "recipe", rec) != 0) {
        json_decref(ds);
        return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    }
    s2s_ofile *of = s2s_ofile_open(path, err);
    if (!of) {
        json_decref(ds);
        return err->code;
    }
    int rc = json_dumpf(ds, s2s_ofile_fp(of), JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0 ||
                     fputc('\n', s2s_ofile_fp(of)) == EOF
                 ? s2s_err_errno(err, "%s: write failed", path)
                 : 0;
    json_decref(ds);
    if (rc) {
        s2s_ofile_abort(of);
        return rc;
    }
    return s2s_ofile_commit(of, err);
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

/* Removes dataset.json, *.tar and *.idx of dir: what makes a build look finished. */
static int remove_outputs(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? 0 : -1;
    struct dirent *e;
    int rc = 0;
    char path[4400];
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        int hit = strcmp(e->d_name, "dataset.json") == 0 ||
                  (n > 4 && (strcmp(e->d_name + n - 4, ".tar") == 0 ||
                             strcmp(e->d_name + n - 4, ".idx") == 0));
        if (!hit) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (unlink(path) != 0) rc = -1;
    }
    closedir(d);
    return rc;
}

int main(int argc, char **argv) {
    const char *out = NULL, *root = NULL, *shard = NULL;
    int jobs = 2, keep = 0;
    static const struct option opts[] = {
        {"output", required_argument, 0, 'o'}, {"jobs", required_argument, 0, 'j'},
        {"shard", required_argument, 0, 'S'},  {"root", required_argument, 0, 'R'},
        {"keep-temp", no_argument, 0, 'K'},    {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'},      {0, 0, 0, 0}};
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
    if (optind + 1 != argc || !out || jobs < 1 || jobs > 256) {
        fprintf(stderr, "%s: need one RECIPE and -o DIR (see --help)\n", prog);
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: the wait for the stages must see EINTR */
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
    s2s_recipe *r = s2s_recipe_load(argv[optind], root, &err);
    if (!r || s2s_recipe_check_sources(r, &err) != 0) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        s2s_recipe_free(r);
        return err.code == S2S_EIO              ? 2
               : s2s_exit_status(err.code) == 1 ? 2
                                                : s2s_exit_status(err.code);
    }
    if (shard && r->codebook_train_k) {
        fprintf(stderr,
                "%s: %s: --shard needs a codebook file: with 'codebook = train %d' each part "
                "would learn different units. Train one first (s2s-tokenize train) and name it "
                "in the recipe.\n",
                prog, r->path, r->codebook_train_k);
        s2s_recipe_free(r);
        return 2;
    }
    if (already_built(out, r, shard ? partstr : NULL)) {
        fprintf(stderr, "%s: %s is a finished build of %s; verifying only\n", prog, out, r->name);
    } else if (!dir_is_empty(out)) {
        fprintf(stderr,
                "%s: %s exists and is not a finished build of this recipe: remove it or choose "
                "another -o\n",
                prog, out);
        s2s_recipe_free(r);
        return 2;
    }
    int rc = 0;
    char work[4096], items[4200], speech[4200], cb[4200], pattern[4200], jobsstr[16], ratestr[16],
        seedstr[32], kstr[16], pershard[16];
    snprintf(work, sizeof work, "%s/.build", out);
    snprintf(items, sizeof items, "%s/items.jsonl", work);
    snprintf(speech, sizeof speech, "%s/speech.tar", work);
    snprintf(jobsstr, sizeof jobsstr, "%d", jobs);
    snprintf(ratestr, sizeof ratestr, "%u", r->rate);
    snprintf(seedstr, sizeof seedstr, "%lu", r->seed);
    snprintf(pershard, sizeof pershard, "%u", r->per_shard);
    if (shard)
        snprintf(pattern, sizeof pattern, "%s/%s-p%uof%u-%%06d.tar", out, r->name, part.index,
                 part.count);
    else
        snprintf(pattern, sizeof pattern, "%s/%s-%%06d.tar", out, r->name);
    if (r->codebook_train_k) {
        snprintf(cb, sizeof cb, "%s/codebook-%s-k%d.cb", out, r->name, r->codebook_train_k);
        snprintf(kstr, sizeof kstr, "%d", r->codebook_train_k);
    } else if (r->codebook_path) {
        snprintf(cb, sizeof cb, "%s", r->codebook_path);
    } else {
        cb[0] = 0;
    }
    int building = !already_built(out, r, shard ? partstr : NULL);
    if (building) {
        if (mkdir_p(out) != 0 || (mkdir(work, 0755) != 0 && errno != EEXIST)) {
            fprintf(stderr, "%s: %s: cannot create: %s\n", prog, work, strerror(errno));
            s2s_recipe_free(r);
            return 3;
        }
        setenv("S2S_NO_PROGRESS", "1", 1);
        /* 1. import every source to JSON lines, then concatenate (duplicate ids across sources
         * are caught by the next tool's reader). */
        char **parts = calloc(r->n_sources, sizeof *parts);
        for (size_t i = 0; rc == 0 && i < r->n_sources; i++) {
            const s2s_recipe_source *s = &r->sources[i];
            parts[i] = malloc(4200);
            snprintf(parts[i], 4200, "%s/items-%zu.jsonl", work, i);
            const char *av[64];
            int n = 0;
            av[n++] = "s2s-import";
            av[n++] = s->importer;
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
            if (shard) av[n++] = "--shard", av[n++] = partstr;
            av[n++] = "-o";
            av[n++] = parts[i];
            for (size_t j = 0; j < s->n_paths && n < 62; j++)
                av[n++] = s->paths[j];
            s2s_pipeline *p = s2s_pipeline_new(&err);
            if (!p || add_argv(p, av, n, &err) != 0) rc = err.code;
            if (!rc) rc = run(p, NULL, NULL, "import", &err);
            s2s_pipeline_free(p);
        }
        if (!rc) rc = concat_files(parts, r->n_sources, items, &err);
        for (size_t i = 0; i < r->n_sources; i++)
            free(parts[i]);
        free(parts);
        /* 2. speech: synth | resample [| tokenize] | pack, or in two steps when the codebook is
         * learned from this dataset's own speech. */
        const char *synth[] = {"s2s-synth", "-j",
                               jobsstr,     "--parts",
                               r->speech,   "--seed",
                               seedstr,     r->voice ? "--voice" : NULL,
                               r->voice,    r->voices ? "--voices" : NULL,
                               r->voices,   items};
        const char *resample[] = {"s2s-resample", "--rate", ratestr};
        if (!rc) {
            s2s_pipeline *p = s2s_pipeline_new(&err);
            rc = !p || add_argv(p, synth, 12, &err) || add_argv(p, resample, 3, &err);
            if (!rc && cb[0] && !r->codebook_train_k)
                rc = add(p, &err, "s2s-tokenize", "--codebook", cb, (char *)NULL);
            if (!rc && r->codebook_train_k) {
                rc = run(p, NULL, speech, "speech", &err);
            } else if (!rc) {
                rc = add(p, &err, "s2s-pack", "-o", pattern, "--per-shard", pershard, (char *)NULL);
                if (!rc) rc = run(p, NULL, NULL, "build", &err);
            }
            rc = rc ? (err.code ? err.code : S2S_ENOMEM) : 0;
            s2s_pipeline_free(p);
        }
        if (!rc && r->codebook_train_k) {
            s2s_pipeline *p = s2s_pipeline_new(&err);
            rc = !p || add(p, &err, "s2s-tokenize", "train", "-k", kstr, "--seed", seedstr, "-o",
                           cb, speech, (char *)NULL);
            if (!rc) rc = run(p, NULL, NULL, "codebook", &err);
            s2s_pipeline_free(p);
            if (!rc) {
                p = s2s_pipeline_new(&err);
                rc = !p || add(p, &err, "s2s-tokenize", "--codebook", cb, speech, NULL) ||
                     add(p, &err, "s2s-pack", "-o", pattern, "--per-shard", pershard, (char *)NULL);
                if (!rc) rc = run(p, NULL, NULL, "pack", &err);
                s2s_pipeline_free(p);
            }
            rc = rc ? (err.code ? err.code : S2S_ENOMEM) : 0;
        }
        if (!rc) rc = stamp_dataset(out, r, shard ? partstr : NULL, &err);
    }
    /* 3. verify what is there */
    if (!rc) {
        s2s_pipeline *p = s2s_pipeline_new(&err);
        rc = !p || add(p, &err, "s2s-shard", "verify", out, (char *)NULL);
        if (!rc) rc = run(p, NULL, NULL, "verify", &err);
        rc = rc ? (err.code ? err.code : S2S_ENOMEM) : 0;
        s2s_pipeline_free(p);
    }
    if (!keep) {
        if (remove_tree(work) != 0) fprintf(stderr, "%s: could not remove %s\n", prog, work);
    }
    if (rc && stop_signal && building) {
        /* a finished-looking build must not remain: drop what this run wrote */
        if (remove_outputs(out) != 0) fprintf(stderr, "%s: could not clean %s\n", prog, out);
        fprintf(stderr, "%s: %s: interrupted\n", prog, r->name);
        s2s_recipe_free(r);
        return 130;
    }
    if (rc && stop_signal) {
        fprintf(stderr, "%s: %s: interrupted\n", prog, r->name);
        s2s_recipe_free(r);
        return 130;
    }
    if (rc) {
        fprintf(stderr, "%s: %s: %s\n", prog, r->name, err.msg);
        s2s_recipe_free(r);
        return s2s_exit_status(rc);
    }
    fprintf(stderr, "%s: %s: built and verified in %s\n", prog, r->name, out);
    s2s_recipe_free(r);
    return 0;
}

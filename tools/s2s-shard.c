/* s2s-shard — look into, read back, check, unpack and export shards written by s2s-pack. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "s2s/err.h"
#include "s2s/item.h"
#include "s2s/merge.h"
#include "s2s/sample.h"
#include "s2s/shard.h"
#include "s2s/tar.h"
#include "s2s/util.h"

static const char *prog = "s2s-shard";

static void usage(FILE *f) {
    fprintf(
        f, "Usage: s2s-shard COMMAND [OPTIONS] ARGS\n"
           "\n"
           "Commands (SHARD is a NAME.tar written by s2s-pack; a DIR stands for the shards its\n"
           "dataset.json lists, or every *.tar in it):\n"
           "  ls [--json] SHARD|DIR...     samples, members and stored sizes\n"
           "  cat SHARD|DIR...             back to the uncompressed sample stream on stdout\n"
           "                               (.gz members inflated, FLAC decoded to WAV)\n"
           "  get [-o FILE] ID SHARD|DIR...  one sample found through the indexes and read by\n"
           "                               seeking, as a tar stream (stdout by default)\n"
           "  verify [-j N] SHARD|DIR...   every CRC-32 and SHA-256, index against tar byte by\n"
           "                               byte, counts against dataset.json; names the damaged\n"
           "                               shard, sample and member; -j: shards of a DIR checked\n"
           "                               N at a time (default: the CPUs, at most 8; the same\n"
           "                               verdict and message for any N)\n"
           "  extract -C OUTDIR SHARD|DIR...  plain files OUTDIR/KEY.json, KEY.ctx.wav, ...\n"
           "  export --layout s2sbench -o OUTDIR SHARD|DIR...\n"
           "                               upstream S2SBench layout: OUTDIR/NAME.jsonl per\n"
           "                               dataset (cloze: uttid/first/last, consecutive uttids\n"
           "                               2k = right, 2k+1 = wrong; choice: uttid/first/A-D/\n"
           "                               answer), OUTDIR/NAME/{uttid}.wav (context speech at\n"
           "                               the stream's rate) and OUTDIR/eval_s2t.yaml;\n"
           "                               NAME: sStory_s2t (cloze, en), zh_story (cloze, zh),\n"
           "                               LANG_story, cmmlu_write_4 (choice, zh),\n"
           "                               cmmlu_write_4_LANG\n"
           "  merge [--copy] PART_DIR... -o DIR\n"
           "                               combine the parts of a dataset built with\n"
           "                               `s2s-build --shard I/N` (0/N .. N-1/N, each once) into\n"
           "                               DIR: checks every part verifies, same recipe, tool\n"
           "                               versions and codebook, no item twice; hard-links\n"
           "                               (--copy: copies) the shards under their part names\n"
           "                               and writes one dataset.json (docs/fanout.md)\n"
           "\n"
           "Options: -h, --help   this help;  -V, --version   version\n"
           "\n"
           "Examples:\n"
           "  s2s-shard verify shards/\n"
           "  s2s-shard cat shards/ | s2s-score --mode t2t,s2t ...\n"
           "  s2s-shard get sstorycloze_000123 shards/ | tar -xvf -\n"
           "  s2s-shard export --layout s2sbench shards/ -o upstream/\n"
           "  s2s-shard merge parts/0 parts/1 parts/2 -o shards/\n"
           "\n"
           "Exit status: 0 ok, 1 bad or damaged data (verify: any fault), 2 usage error,\n"
           "3 I/O or system error, 130 interrupted.\n");
}

static int fail(s2s_err *err) {
    fprintf(stderr, "%s: %s\n", prog, err->msg);
    return s2s_exit_status(err->code ? err->code : S2S_EIO);
}

/* ---- arguments: shards and directories -------------------------------------------------- */
typedef struct plist {
    char **v;
    size_t n, cap;
} plist;

static int plist_add(plist *l, char *p) {
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 16;
        char **nv = realloc(l->v, nc * sizeof *nv);
        if (!nv) return -1;
        l->v = nv;
        l->cap = nc;
    }
    l->v[l->n++] = p;
    return 0;
}

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int expand(char **args, int n, plist *out, s2s_err *err) {
    for (int i = 0; i < n; i++) {
        if (is_dir(args[i])) {
            char **v;
            size_t k;
            int rc = s2s_dataset_shards(args[i], &v, &k, err);
            if (rc < 0) return rc;
            for (size_t j = 0; j < k; j++)
                if (plist_add(out, v[j]) < 0) {
                    s2s_paths_free(v + j, k - j);
                    return s2s_err_set(err, S2S_ENOMEM, "out of memory");
                }
            free(v);
        } else {
            char *p = strdup(args[i]);
            if (!p || plist_add(out, p) < 0) {
                free(p);
                return s2s_err_set(err, S2S_ENOMEM, "out of memory");
            }
        }
    }
    return 0;
}

static void plist_free(plist *l) {
    s2s_paths_free(l->v, l->n);
}

/* ---- ls ------------------------------------------------------------------------------- */
static int cmd_ls(int argc, char **argv) {
    int json = 0, c;
    static const struct option lo[] = {
        {"json", no_argument, 0, 'j'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    while ((c = getopt_long(argc, argv, "jh", lo, NULL)) != -1) {
        if (c == 'j')
            json = 1;
        else if (c == 'h') {
            usage(stdout);
            return 0;
        } else
            return 2;
    }
    if (optind >= argc) {
        fprintf(stderr, "%s ls: name at least one SHARD or DIR\n", prog);
        return 2;
    }
    s2s_err err;
    s2s_err_clear(&err);
    plist l = {0};
    if (expand(argv + optind, argc - optind, &l, &err) < 0) {
        plist_free(&l);
        return fail(&err);
    }
    uint64_t ns = 0, nm = 0, bytes = 0;
    int rc = 0;
    if (json) printf("{\"samples\": [");
    for (size_t i = 0; i < l.n && rc == 0; i++) {
        FILE *f = fopen(l.v[i], "rb");
        if (!f) {
            rc = s2s_err_errno(&err, "%s: cannot open", l.v[i]);
            break;
        }
        s2s_tar_reader *tr = s2s_tar_reader_new(f, l.v[i], &err);
        if (!tr) {
            fclose(f);
            rc = err.code;
            break;
        }
        char *key = NULL;
        json_t *cur = NULL;
        s2s_tar_entry *e;
        int k;
        for (;;) {
            k = s2s_tar_next(tr, &e, &err);
            char *nk = NULL;
            if (k > 0) {
                const char *dot = strchr(e->name, '.');
                nk = strndup(e->name, dot ? (size_t)(dot - e->name) : strlen(e->name));
                if (!nk) {
                    k = s2s_err_set(&err, S2S_ENOMEM, "out of memory");
                }
            }
            if (k <= 0 || !key || strcmp(nk, key) != 0) {
                if (cur) { /* flush the previous sample */
                    if (json) {
                        char *s = json_dumps(cur, JSON_COMPACT | JSON_PRESERVE_ORDER);
                        printf("%s%s", ns ? ",\n " : "\n ", s ? s : "null");
                        free(s);
                    } else {
                        printf("%s\t%s", key, l.v[i]);
                        size_t j;
                        json_t *m;
                        json_array_foreach(json_object_get(cur, "members"), j, m)
                            printf("\t%s:%lld",
                                   json_string_value(json_object_get(m, "name")) + strlen(key) + 1,
                                   (long long)json_integer_value(json_object_get(m, "size")));
                        printf("\n");
                    }
                    ns++;
                    json_decref(cur);
                    cur = NULL;
                }
                free(key);
                key = nk;
                nk = NULL;
                if (k <= 0) break;
                cur = json_pack("{s:s, s:s, s:[]}", "key", key, "shard", l.v[i], "members");
            }
            free(nk);
            json_array_append_new(json_object_get(cur, "members"),
                                  json_pack("{s:s, s:I, s:I}", "name", e->name, "size",
                                            (json_int_t)e->size, "offset",
                                            (json_int_t)e->data_off));
            nm++;
            bytes += e->size;
        }
        free(key);
        s2s_tar_reader_free(tr);
        fclose(f);
        if (k < 0) rc = k;
    }
    if (json)
        printf("\n], \"n_samples\": %llu, \"n_members\": %llu, \"bytes\": %llu, \"n_shards\": "
               "%zu}\n",
               (unsigned long long)ns, (unsigned long long)nm, (unsigned long long)bytes, l.n);
    plist_free(&l);
    if (fflush(stdout) != 0 && rc == 0) rc = s2s_err_errno(&err, "stdout");
    return rc < 0 ? fail(&err) : 0;
}

/* ---- cat / extract ---------------------------------------------------------------------- */
static volatile sig_atomic_t interrupted;
static void on_signal(int sig) {
    (void)sig;
    interrupted = 1;
}

/* Reads every sample of the shards in stream form and hands it to fn. A shard with an index is
 * read through it (every member's CRC-32, header and padding checked); one without is read as a
 * plain tar (with a warning: nothing but the tar structure is checked then). */
static int each_sample(plist *l, int flags, int (*fn)(s2s_sample *, void *, s2s_err *), void *ctx,
                       s2s_err *err) {
    s2s_idset *keys = s2s_idset_new();
    if (!keys) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    int rc = 0;
    for (size_t i = 0; i < l->n && rc == 0; i++) {
        char *ip = s2s_index_path(l->v[i]);
        if (!ip) {
            rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
            break;
        }
        int have_index = access(ip, F_OK) == 0;
        free(ip);
        s2s_shard_reader *sr = NULL;
        s2s_reader *r = NULL;
        if (have_index) {
            if (!(sr = s2s_shard_reader_open(l->v[i], err))) rc = err->code ? err->code : S2S_EIO;
        } else {
            fprintf(stderr, "%s: warning: %s has no index: CRC-32 not checked\n", prog, l->v[i]);
            const char *one[1] = {l->v[i]};
            if (!(r = s2s_reader_open(one, 1, flags | S2S_READ_NO_VALIDATE, err)))
                rc = err->code ? err->code : S2S_EIO;
        }
        s2s_sample *s;
        while (rc == 0) {
            rc = sr ? s2s_shard_reader_next(sr, &s, err) : s2s_reader_next(r, &s, err);
            if (rc <= 0) break;
            rc = 0;
            if (interrupted) {
                s2s_sample_free(s);
                rc = s2s_err_set(err, S2S_EINTR, "interrupted");
                break;
            }
            int added = s2s_idset_add(keys, s->key);
            if (added <= 0)
                rc = added < 0 ? s2s_err_set(err, S2S_ENOMEM, "out of memory")
                               : s2s_err_set(err, S2S_EDATA,
                                             "%s: sample %s appeared in an earlier shard too "
                                             "(sample split across shards?)",
                                             l->v[i], s->key);
            if (rc == 0 && !(flags & S2S_READ_NO_VALIDATE) && s->item &&
                (rc = s2s_item_validate(s->item, err)) < 0)
                s2s_err_prefix(err, "%s: sample %s: ", l->v[i], s->key);
            if (rc == 0 && (rc = s2s_shard_sample_to_stream(s, err)) < 0)
                s2s_err_prefix(err, "%s: ", l->v[i]);
            if (rc == 0) rc = fn(s, ctx, err);
            s2s_sample_free(s);
        }
        s2s_shard_reader_close(sr);
        s2s_reader_close(r);
    }
    s2s_idset_free(keys);
    return rc;
}

static int put_writer(s2s_sample *s, void *ctx, s2s_err *err) {
    return s2s_writer_put((s2s_writer *)ctx, s, err);
}

static int cmd_cat(int argc, char **argv) {
    if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        usage(stdout);
        return 0;
    }
    if (argc < 2) {
        fprintf(stderr, "%s cat: name at least one SHARD or DIR\n", prog);
        return 2;
    }
    s2s_err err;
    s2s_err_clear(&err);
    plist l = {0};
    if (expand(argv + 1, argc - 1, &l, &err) < 0) {
        plist_free(&l);
        return fail(&err);
    }
    if (l.n == 0) {
        plist_free(&l);
        s2s_err_set(&err, S2S_EDATA, "no shards found");
        return fail(&err);
    }
    s2s_writer *w = s2s_writer_open(NULL, S2S_FMT_TAR, &err);
    if (!w) {
        plist_free(&l);
        return fail(&err);
    }
    int rc = each_sample(&l, S2S_READ_NO_VALIDATE, put_writer, w, &err);
    plist_free(&l);
    if (rc < 0) {
        s2s_writer_abort(w);
        return fail(&err);
    }
    if (s2s_writer_close(w, &err) < 0) return fail(&err);
    return 0;
}

static int write_file(const char *path, const void *p, size_t n, s2s_err *err) {
    s2s_ofile *of = s2s_ofile_open(path, err);
    if (!of) return err->code ? err->code : S2S_EIO;
    if (n && fwrite(p, 1, n, s2s_ofile_fp(of)) != n) {
        s2s_ofile_abort(of);
        return s2s_err_errno(err, "%s: write failed", path);
    }
    return s2s_ofile_commit(of, err);
}

static int put_files(s2s_sample *s, void *ctx, s2s_err *err) {
    const char *dir = ctx;
    size_t cap = strlen(dir) + strlen(s->key) + 300;
    char *path = malloc(cap);
    if (!path) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    int rc = 0;
    if (s->item) {
        char *js = s2s_item_dumps(s->item);
        if (!js)
            rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
        else {
            size_t jl = strlen(js);
            char *line = realloc(js, jl + 2);
            if (!line) {
                free(js);
                rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
            } else {
                line[jl] = '\n';
                snprintf(path, cap, "%s/%s.json", dir, s->key);
                rc = write_file(path, line, jl + 1, err);
                free(line);
            }
        }
    }
    for (size_t i = 0; rc == 0 && i < s->n_members; i++) {
        if (strchr(s->members[i].suffix, '/') || strlen(s->members[i].suffix) > 250) {
            rc = s2s_err_set(err, S2S_EDATA,
                             "sample %s: member suffix \"%.60s\" unsafe as a file name", s->key,
                             s->members[i].suffix);
            break;
        }
        snprintf(path, cap, "%s/%s.%s", dir, s->key, s->members[i].suffix);
        rc = write_file(path, s->members[i].data, s->members[i].size, err);
    }
    free(path);
    return rc;
}

static int cmd_extract(int argc, char **argv) {
    const char *dir = NULL;
    int c;
    static const struct option lo[] = {
        {"directory", required_argument, 0, 'C'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    while ((c = getopt_long(argc, argv, "C:h", lo, NULL)) != -1) {
        if (c == 'C')
            dir = optarg;
        else if (c == 'h') {
            usage(stdout);
            return 0;
        } else
            return 2;
    }
    if (!dir || optind >= argc) {
        fprintf(stderr, "%s extract: usage: extract -C OUTDIR SHARD|DIR...\n", prog);
        return 2;
    }
    s2s_err err;
    s2s_err_clear(&err);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        s2s_err_errno(&err, "%s: cannot create directory", dir);
        return fail(&err);
    }
    plist l = {0};
    if (expand(argv + optind, argc - optind, &l, &err) < 0) {
        plist_free(&l);
        return fail(&err);
    }
    int rc = each_sample(&l, S2S_READ_NO_VALIDATE, put_files, (void *)dir, &err);
    plist_free(&l);
    return rc < 0 ? fail(&err) : 0;
}

/* ---- get ---------------------------------------------------------------------------------- */
static int cmd_get(int argc, char **argv) {
    const char *out = NULL;
    int c;
    static const struct option lo[] = {
        {"output", required_argument, 0, 'o'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    while ((c = getopt_long(argc, argv, "o:h", lo, NULL)) != -1) {
        if (c == 'o')
            out = optarg;
        else if (c == 'h') {
            usage(stdout);
            return 0;
        } else
            return 2;
    }
    if (argc - optind < 2) {
        fprintf(stderr, "%s get: usage: get [-o FILE] ID SHARD|DIR...\n", prog);
        return 2;
    }
    const char *id = argv[optind];
    s2s_err err;
    s2s_err_clear(&err);
    plist l = {0};
    if (expand(argv + optind + 1, argc - optind - 1, &l, &err) < 0) {
        plist_free(&l);
        return fail(&err);
    }
    s2s_sample *s = NULL;
    int rc = s2s_shard_get((const char *const *)l.v, l.n, id, &s, &err);
    plist_free(&l);
    if (rc < 0) return fail(&err);
    if (rc == 0) {
        s2s_err_set(&err, S2S_EDATA, "%s: no such sample in the indexes", id);
        return fail(&err);
    }
    if (s2s_shard_sample_to_stream(s, &err) < 0) {
        s2s_sample_free(s);
        return fail(&err);
    }
    s2s_writer *w = s2s_writer_open(out, S2S_FMT_TAR, &err);
    if (!w) {
        s2s_sample_free(s);
        return fail(&err);
    }
    rc = s2s_writer_put(w, s, &err);
    s2s_sample_free(s);
    if (rc < 0) {
        s2s_writer_abort(w);
        return fail(&err);
    }
    return s2s_writer_close(w, &err) < 0 ? fail(&err) : 0;
}

/* ---- verify ------------------------------------------------------------------------------- */
static int cmd_verify(int argc, char **argv) {
    int quiet = 0, c;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int jobs = ncpu < 1 ? 1 : ncpu > 8 ? 8 : (int)ncpu;
    static const struct option lo[] = {{"quiet", no_argument, 0, 'q'},
                                       {"jobs", required_argument, 0, 'j'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
    while ((c = getopt_long(argc, argv, "qj:h", lo, NULL)) != -1) {
        if (c == 'q')
            quiet = 1;
        else if (c == 'j') {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || !*optarg || v < 1 || v > 64) {
                fprintf(stderr, "%s verify: --jobs must be 1..64\n", prog);
                return 2;
            }
            jobs = (int)v;
        } else if (c == 'h') {
            usage(stdout);
            return 0;
        } else
            return 2;
    }
    if (optind >= argc) {
        fprintf(stderr, "%s verify: name at least one SHARD or DIR\n", prog);
        return 2;
    }
    s2s_idset *keys = s2s_idset_new();
    if (!keys) return 3;
    int faults = 0;
    for (int i = optind; i < argc; i++) {
        s2s_err err;
        s2s_err_clear(&err);
        int rc;
        uint64_t n = 0;
        if (is_dir(argv[i]))
            rc = s2s_dataset_verify_threads(argv[i], jobs, &err);
        else
            rc = s2s_shard_verify(argv[i], NULL, keys, &n, &err);
        if (rc < 0) {
            fprintf(stderr, "%s: FAILED: %s\n", prog, err.msg);
            faults++;
            if (rc == S2S_ENOMEM || rc == S2S_EINTR) break;
        } else if (!quiet) {
            if (n)
                printf("%s: OK (%llu samples)\n", argv[i], (unsigned long long)n);
            else
                printf("%s: OK\n", argv[i]);
        }
    }
    s2s_idset_free(keys);
    return faults ? 1 : 0;
}

/* ---- export --layout s2sbench ------------------------------------------------------------ */
typedef struct xds {
    char *name, *lang, *task;
    s2s_ofile *jsonl;
    uint64_t next_uttid, lines;
} xds;

typedef struct xctx {
    const char *out;
    xds *ds;
    size_t n, cap;
} xctx;

static const char *dataset_name(const char *task, const char *lang, char *buf, size_t n) {
    if (strcmp(task, "cloze") == 0) {
        if (strcmp(lang, "en") == 0) return "sStory_s2t";
        snprintf(buf, n, "%s_story", lang);
        return buf;
    }
    if (strcmp(lang, "zh") == 0) return "cmmlu_write_4";
    snprintf(buf, n, "cmmlu_write_4_%s", lang);
    return buf;
}

static xds *get_ds(xctx *x, const char *task, const char *lang, s2s_err *err) {
    char buf[300];
    const char *name = dataset_name(task, lang, buf, sizeof buf);
    for (size_t i = 0; i < x->n; i++)
        if (strcmp(x->ds[i].name, name) == 0) return &x->ds[i];
    if (x->n == x->cap) {
        size_t nc = x->cap ? x->cap * 2 : 4;
        xds *nd = realloc(x->ds, nc * sizeof *nd);
        if (!nd) {
            s2s_err_set(err, S2S_ENOMEM, "out of memory");
            return NULL;
        }
        x->ds = nd;
        x->cap = nc;
    }
    xds *d = &x->ds[x->n];
    memset(d, 0, sizeof *d);
    d->name = strdup(name);
    d->lang = strdup(lang);
    d->task = strdup(task);
    size_t pl = strlen(x->out) + strlen(name) + 16;
    char *path = malloc(pl);
    if (!d->name || !d->lang || !d->task || !path) {
        free(d->name), free(d->lang), free(d->task), free(path);
        s2s_err_set(err, S2S_ENOMEM, "out of memory");
        return NULL;
    }
    snprintf(path, pl, "%s/%s", x->out, name);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        s2s_err_errno(err, "%s: cannot create directory", path);
        free(d->name), free(d->lang), free(d->task), free(path);
        return NULL;
    }
    snprintf(path, pl, "%s/%s.jsonl", x->out, name);
    d->jsonl = s2s_ofile_open(path, err);
    free(path);
    if (!d->jsonl) {
        free(d->name), free(d->lang), free(d->task);
        return NULL;
    }
    x->n++;
    return d;
}

static int write_line(xds *d, json_t *o, s2s_err *err) {
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!s) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    FILE *f = s2s_ofile_fp(d->jsonl);
    /* upstream writes json.dumps(..., ensure_ascii=False): "key": value with ", " separators */
    int ok = fputs(s, f) >= 0 && fputc('\n', f) != EOF;
    free(s);
    d->lines++;
    return ok ? 0 : s2s_err_errno(err, "%s: write failed", s2s_ofile_path(d->jsonl));
}

static int export_sample(s2s_sample *s, void *ctx, s2s_err *err) {
    xctx *x = ctx;
    const json_t *it = s->item;
    const char *task = s2s_item_task(it), *lang = s2s_item_lang(it);
    const char *ctxt = s2s_item_context_text(it);
    size_t nc = s2s_item_n_candidates(it);
    int right = s2s_item_right_index(it);
    if (!task || !lang || !ctxt || right < 0 || nc < 2)
        return s2s_err_set(err, S2S_EDATA, "%s: sample %s: not a valid item", s->origin, s->key);
    s2s_member *wav = s2s_sample_get(s, "ctx.wav");
    if (!wav)
        return s2s_err_set(err, S2S_EDATA,
                           "%s: sample %s has no context speech (ctx.wav/ctx.flac): synthesise "
                           "it first (s2s-synth)",
                           s->origin, s->key);
    xds *d = get_ds(x, task, lang, err);
    if (!d) return err->code;
    size_t pl = strlen(x->out) + strlen(d->name) + 64;
    char *path = malloc(pl), *first = NULL;
    if (!path) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    int rc = 0;
    if (strcmp(task, "cloze") == 0) {
        if (nc != 2) {
            free(path);
            return s2s_err_set(err, S2S_EDATA, "sample %s: cloze needs 2 candidates", s->key);
        }
        int wrong = 1 - right;
        uint64_t u = d->next_uttid; /* even: right ending, odd: wrong ending (eval_story.py) */
        d->next_uttid += 2;
        for (int k = 0; k < 2 && rc == 0; k++) {
            int ci = k == 0 ? right : wrong;
            json_t *o = json_pack("{s:I, s:s, s:s, s:s, s:i}", "uttid", (json_int_t)u + k, "first",
                                  ctxt, "last", s2s_item_candidate_text(it, (size_t)ci), "id",
                                  s->key, "candidate", ci);
            if (!o)
                rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
            else
                rc = write_line(d, o, err);
            if (rc < 0) break;
            snprintf(path, pl, "%s/%s/%llu.wav", x->out, d->name,
                     (unsigned long long)u + (unsigned)k);
            if (k == 1 && first && link(first, path) == 0) continue;
            rc = write_file(path, wav->data, wav->size, err);
            if (k == 0) first = strdup(path);
        }
    } else {
        if (nc > 26) {
            free(path);
            return s2s_err_set(err, S2S_EDATA, "sample %s: %zu candidates, at most 26 letters",
                               s->key, nc);
        }
        uint64_t u = d->next_uttid++;
        json_t *o = json_pack("{s:I, s:s}", "uttid", (json_int_t)u, "first", ctxt);
        char letter[2] = {0, 0};
        for (size_t i = 0; o && i < nc; i++) {
            letter[0] = (char)('A' + i);
            json_object_set_new(o, letter, json_string(s2s_item_candidate_text(it, i)));
        }
        letter[0] = (char)('A' + right);
        if (o) {
            json_object_set_new(o, "answer", json_string(letter));
            json_object_set_new(o, "id", json_string(s->key));
        }
        if (!o)
            rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
        else
            rc = write_line(d, o, err);
        if (rc == 0) {
            snprintf(path, pl, "%s/%s/%llu.wav", x->out, d->name, (unsigned long long)u);
            rc = write_file(path, wav->data, wav->size, err);
        }
    }
    free(first);
    free(path);
    return rc;
}

static int cmd_export(int argc, char **argv) {
    const char *out = NULL, *layout = NULL;
    int c;
    static const struct option lo[] = {{"layout", required_argument, 0, 'l'},
                                       {"output", required_argument, 0, 'o'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
    while ((c = getopt_long(argc, argv, "l:o:h", lo, NULL)) != -1) {
        if (c == 'l')
            layout = optarg;
        else if (c == 'o')
            out = optarg;
        else if (c == 'h') {
            usage(stdout);
            return 0;
        } else
            return 2;
    }
    if (!layout || strcmp(layout, "s2sbench") != 0) {
        fprintf(stderr, "%s export: --layout s2sbench is required (the only layout)\n", prog);
        return 2;
    }
    if (!out || optind >= argc) {
        fprintf(stderr, "%s export: usage: export --layout s2sbench -o OUTDIR SHARD|DIR...\n",
                prog);
        return 2;
    }
    s2s_err err;
    s2s_err_clear(&err);
    if (mkdir(out, 0755) != 0 && errno != EEXIST) {
        s2s_err_errno(&err, "%s: cannot create directory", out);
        return fail(&err);
    }
    plist l = {0};
    if (expand(argv + optind, argc - optind, &l, &err) < 0) {
        plist_free(&l);
        return fail(&err);
    }
    xctx x = {out, NULL, 0, 0};
    int rc = each_sample(&l, 0, export_sample, &x, &err);
    plist_free(&l);
    /* eval_s2t.yaml in upstream's form, so s2t_infer_ppl.py --root_dir OUTDIR finds the data */
    s2s_ofile *yo = NULL;
    if (rc == 0) {
        size_t pl = strlen(out) + 32;
        char *yp = malloc(pl);
        if (!yp)
            rc = s2s_err_set(&err, S2S_ENOMEM, "out of memory");
        else {
            snprintf(yp, pl, "%s/eval_s2t.yaml", out);
            yo = s2s_ofile_open(yp, &err);
            free(yp);
            if (!yo) rc = err.code;
        }
    }
    if (rc == 0) {
        FILE *f = s2s_ofile_fp(yo);
        fprintf(f, "datasets:\n");
        for (size_t i = 0; i < x.n; i++)
            fprintf(f, "  %s:\n    path: \"%s.jsonl\"\n    audio_path: \"%s\"\n    lang: \"%s\"\n",
                    x.ds[i].name, x.ds[i].name, x.ds[i].name, x.ds[i].lang);
    }
    for (size_t i = 0; i < x.n; i++) {
        if (rc == 0)
            rc = s2s_ofile_commit(x.ds[i].jsonl, &err);
        else
            s2s_ofile_abort(x.ds[i].jsonl);
        if (rc == 0)
            fprintf(stderr, "%s: %s: %llu lines (%s)\n", prog, x.ds[i].name,
                    (unsigned long long)x.ds[i].lines, x.ds[i].task);
        free(x.ds[i].name), free(x.ds[i].lang), free(x.ds[i].task);
    }
    free(x.ds);
    if (yo) {
        if (rc == 0)
            rc = s2s_ofile_commit(yo, &err);
        else
            s2s_ofile_abort(yo);
    }
    return rc < 0 ? fail(&err) : 0;
}

/* ---- merge ------------------------------------------------------------------------------- */
static int cmd_merge(int argc, char **argv) {
    const char *out = NULL;
    int copy = 0, quiet = 0, c;
    static const struct option lo[] = {{"output", required_argument, 0, 'o'},
                                       {"copy", no_argument, 0, 'c'},
                                       {"quiet", no_argument, 0, 'q'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
    while ((c = getopt_long(argc, argv, "o:cqh", lo, NULL)) != -1) {
        if (c == 'o')
            out = optarg;
        else if (c == 'c')
            copy = 1;
        else if (c == 'q')
            quiet = 1;
        else if (c == 'h') {
            usage(stdout);
            return 0;
        } else
            return 2;
    }
    if (!out || optind >= argc) {
        fprintf(stderr, "%s merge: usage: merge [--copy] PART_DIR... -o DIR\n", prog);
        return 2;
    }
    s2s_err err;
    s2s_err_clear(&err);
    s2s_merge_opts o = {copy, &interrupted};
    s2s_merge_stats st;
    int rc = s2s_merge((const char *const *)(argv + optind), (size_t)(argc - optind), out, &o, &st,
                       &err);
    if (rc < 0) {
        fprintf(stderr, "%s: merge: %s\n", prog, err.msg);
        return rc == S2S_EINVAL ? 2 : s2s_exit_status(rc);
    }
    if (!quiet)
        fprintf(stderr,
                "%s: merge: %llu parts, %llu shards, %llu samples, %llu pairs -> %s (%llu files "
                "hard-linked, %llu copied)\n",
                prog, (unsigned long long)st.parts, (unsigned long long)st.shards,
                (unsigned long long)st.samples, (unsigned long long)st.pairs, out,
                (unsigned long long)st.linked, (unsigned long long)st.copied);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "-V") || !strcmp(cmd, "--version")) {
        printf("s2s-shard %s\n", S2S_VERSION);
        return 0;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    argc--;
    argv++;
    optind = 1;
    if (!strcmp(cmd, "ls")) return cmd_ls(argc, argv);
    if (!strcmp(cmd, "cat")) return cmd_cat(argc, argv);
    if (!strcmp(cmd, "get")) return cmd_get(argc, argv);
    if (!strcmp(cmd, "verify")) return cmd_verify(argc, argv);
    if (!strcmp(cmd, "extract")) return cmd_extract(argc, argv);
    if (!strcmp(cmd, "export")) return cmd_export(argc, argv);
    if (!strcmp(cmd, "merge")) return cmd_merge(argc, argv);
    fprintf(stderr, "%s: unknown command \"%s\" (ls, cat, get, verify, extract, export, merge)\n",
            prog, cmd);
    return 2;
}

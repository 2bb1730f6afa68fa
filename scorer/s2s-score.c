/* s2s-score — the pairwise protocol over shards or a stream with a model backend → report. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <libgen.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "s2s/backend.h"
#include "s2s/cache.h"
#include "s2s/err.h"
#include "s2s/plot.h"
#include "s2s/sample.h"
#include "s2s/score.h"
#include "s2s/util.h"

static const char *prog = "s2s-score";
static volatile sig_atomic_t interrupted;

static void on_signal(int sig) {
    (void)sig;
    interrupted = 1;
}

static void usage(FILE *fp) {
    fprintf(
        fp,
        "Usage: s2s-score --lm SPEC -o DIR [options] [SHARD...]\n"
        "       s2s-score --lm LABEL=SPEC --lm LABEL=SPEC ... -o DIR [options] [SHARD...]\n"
        "\n"
        "Scores every item of the shards (or of the tar stream / items JSONL on stdin when no\n"
        "file is named) with a model backend, in one or more modes, and writes DIR/report.json\n"
        "and DIR/pairs.jsonl (both appear only when complete) and a table on stdout.\n"
        "For each item, mode and candidate the backend gives the summed NLL (natural log) and\n"
        "the token count of the candidate given the context; a pair (plausible, implausible)\n"
        "is right when the plausible candidate scores LOWER. Ties count 0.5 and are counted.\n"
        "\n"
        "Resume: every answer is also appended to DIR/scores.cache.jsonl, keyed by the model\n"
        "(spec + model identity), item, mode, candidate and a hash of the request. Rerunning\n"
        "the same command after a crash, a worker failure or Ctrl-C asks only what is missing\n"
        "and writes the same report byte for byte. A changed model or dataset is asked afresh.\n"
        "\n"
        "Sweep: --lm LABEL=SPEC repeated (a label is a checkpoint step or a name) scores every\n"
        "model on the same items, one after the other: DIR/LABEL/{report.json,pairs.jsonl},\n"
        "DIR/report.json = {\"tool\",\"version\",\"sweep\":[{\"label\",\"report\"}...]} and\n"
        "DIR/sweep.svg, accuracy and mean scores per mode against the label (a browser opens\n"
        "it; all-numeric labels get a numeric axis). A single model also gets DIR/report.svg.\n"
        "\n"
        "Options:\n"
        "  --mode LIST       modes, comma-separated: t2t (text context, text candidate), s2t\n"
        "                    (speech context), t2s (speech candidate), s2s (default t2t)\n"
        "  --lm SPEC         model backend (required):\n"
        "                      ngram:FILE[?cache=L&eos=1]  ARPA model from s2s-lm train\n"
        "                      arpa:FILE[?...]             any ARPA file (SRILM, KenLM, IRSTLM)\n"
        "                      ngram:TEXT.arpa,UNITS.arpa  text model for t2t, unit model for s2s\n"
        "                      losses:FILE                 upstream S2SBench result.jsonl\n"
        "                      losses:t2t=FILE,s2t=FILE    one result.jsonl per mode\n"
        "                      worker:COMMAND              a model in a child process (worker.md)\n"
        "                    n-gram models score t2t (text model) or s2s (unit model); s2t and\n"
        "                    t2s need a model that reads speech and text (a worker model).\n"
        "                    Repeat as LABEL=SPEC for a sweep (labels: letters, digits . _ + -).\n"
        "  --model-id ID     the model's identity, recorded as run.model_id and part of the\n"
        "                    cache key (for a worker that announces none; one model only)\n"
        "  --no-cache        neither read nor write DIR/scores.cache.jsonl\n"
        "  --score KIND      decision score: mean (NLL per token, upstream's; default), sum,\n"
        "                    byte (NLL per UTF-8 byte of the candidate text, acc_norm style)\n"
        "  --compat s2sbench reproduce upstream S2SBench's accuracy exactly (cloze: right <\n"
        "                    wrong, strict; choice: right <= wrong; ties are not 0.5)\n"
        "  --dedup           collapse runs of repeated units before scoring (unit models)\n"
        "  --seed S          bootstrap seed (default 1)\n"
        "  --bootstrap B     bootstrap replicates for the 95%% CIs (default 1000; 0 = none)\n"
        "  --tie-warn F      share of tied pairs that flags a broken backend (default 0.10)\n"
        "  --shard I/N       score only part I of N (by item id)\n"
        "  --skip-bad        skip items whose inputs are missing (counted, reported on stderr)\n"
        "  -o, --output DIR  output directory (created if needed; required)\n"
        "  -h, --help        this help;  -V, --version  print the version\n"
        "\n"
        "Example:\n"
        "  s2s-lm train --order 3 -o words.arpa < train.txt\n"
        "  s2s-score --mode t2t --lm ngram:words.arpa -o out shards/sstorycloze-*.tar\n"
        "  s2s-import s2sbench story.jsonl | s2s-score --mode s2t --lm losses:result.jsonl \\\n"
        "      --compat s2sbench -o out\n"
        "  s2s-score --lm 1000=ngram:step1000.arpa --lm 2000=ngram:step2000.arpa -o sweep \\\n"
        "      shards/*.tar                        # then open sweep/sweep.svg\n"
        "\n"
        "Environment (worker: backends): S2S_WORKER_CAPACITY (requests in flight, default 64),\n"
        "S2S_WORKER_TIMEOUT (seconds, default 60), S2S_WORKER_RESTARTS (default 3).\n"
        "\n"
        "Exit status: 0 ok, 1 bad input or model failure, 2 usage, 3 I/O or system error,\n"
        "130 interrupted (the scores so far stay in the cache: rerun to resume).\n");
}

static int die(int code, const char *msg) {
    fprintf(stderr, "%s: %s\n", prog, msg);
    return s2s_exit_status(code);
}

static int mkdir_p(const char *dir, s2s_err *err) {
    char *d = strdup(dir);
    if (!d) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    for (char *p = d + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(d, 0777) && errno != EEXIST) {
            int rc = s2s_err_errno(err, "%s", d);
            free(d);
            return rc;
        }
        *p = '/';
    }
    int rc = 0;
    if (mkdir(d, 0777) && errno != EEXIST) rc = s2s_err_errno(err, "%s", d);
    free(d);
    return rc;
}

/* SHA-256 of the dataset.json beside the named shards (one per distinct directory). */
static json_t *dataset_hashes(char **paths, int n, s2s_err *err) {
    json_t *arr = json_array();
    json_t *seen = json_object();
    for (int i = 0; i < n && arr; i++) {
        if (!strcmp(paths[i], "-")) continue;
        char *c = strdup(paths[i]);
        if (!c) break;
        char *dir = dirname(c);
        char path[4096];
        snprintf(path, sizeof path, "%s/dataset.json", dir);
        if (!json_object_get(seen, path) && access(path, R_OK) == 0) {
            char hex[65];
            json_object_set_new(seen, path, json_true());
            if (s2s_sha256_file(path, hex, err) == 0) json_array_append_new(arr, json_string(hex));
        }
        free(c);
    }
    json_decref(seen);
    return arr;
}

/* Items of a JSON-lines file (non-blank lines; it starts with '{'), 0 if it is something else. */
static uint64_t jsonl_items(const char *path) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return 0;
    uint64_t n = 0;
    int c, first = 1, blank = 1;
    char buf[1 << 16];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, fp)) > 0) {
        for (size_t i = 0; i < got; i++) {
            c = (unsigned char)buf[i];
            if (first && c != ' ' && c != '\t' && c != '\n' && c != '\r') {
                first = 0;
                if (c != '{') {
                    fclose(fp);
                    return 0;
                }
            }
            if (c == '\n') {
                n += !blank;
                blank = 1;
            } else if (c != ' ' && c != '\t' && c != '\r') {
                blank = 0;
            }
        }
    }
    n += !blank;
    fclose(fp);
    return n;
}

/* Samples the named shards hold, from the dataset.json beside them, or the lines of JSON-lines
 * item files (for the progress ETA); 0 when unknown (stdin, a tar without dataset.json). */
static uint64_t expected_samples(char **paths, int n) {
    uint64_t total = 0;
    for (int i = 0; i < n; i++) {
        if (!strcmp(paths[i], "-")) return 0;
        char *c1 = strdup(paths[i]), *c2 = strdup(paths[i]);
        char path[4096];
        uint64_t got = 0;
        if (c1 && c2) {
            snprintf(path, sizeof path, "%s/dataset.json", dirname(c1));
            json_t *ds = json_load_file(path, 0, NULL);
            const char *base = basename(c2);
            size_t k;
            json_t *sh;
            json_array_foreach(json_object_get(ds, "shards"), k, sh) {
                const char *nm = json_string_value(json_object_get(sh, "name"));
                if (nm && !strcmp(nm, base))
                    got = (uint64_t)json_integer_value(json_object_get(sh, "samples"));
            }
            json_decref(ds);
        }
        free(c1);
        free(c2);
        if (!got) got = jsonl_items(paths[i]);
        if (!got) return 0;
        total += got;
    }
    return total;
}

/* Writes json (pretty, 2-space indent) to path via a temporary name. */
static int write_json(const char *path, const json_t *j, s2s_err *err) {
    s2s_ofile *of = s2s_ofile_open(path, err);
    if (!of) return err->code;
    if (json_dumpf(j, s2s_ofile_fp(of), JSON_INDENT(2) | JSON_PRESERVE_ORDER) ||
        fputc('\n', s2s_ofile_fp(of)) == EOF) {
        s2s_ofile_abort(of);
        return s2s_err_errno(err, "%s", path);
    }
    return s2s_ofile_commit(of, err);
}

/* Writes the sweep chart (s2s/plot.h) of sweep to path via a temporary name. */
static int write_svg(const char *path, const json_t *sweep, s2s_err *err) {
    s2s_ofile *of = s2s_ofile_open(path, err);
    if (!of) return err->code;
    int rc = s2s_plot_sweep_svg(sweep, s2s_ofile_fp(of), err);
    if (rc) {
        s2s_ofile_abort(of);
        return s2s_err_prefix(err, "%s: ", path);
    }
    return s2s_ofile_commit(of, err);
}

static int write_outputs(const char *dir, s2s_scorer *sc, json_t *rep, s2s_err *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/pairs.jsonl", dir);
    s2s_ofile *of = s2s_ofile_open(path, err);
    if (!of) return err->code;
    int rc = s2s_scorer_write_pairs(sc, s2s_ofile_fp(of), err);
    if (rc) {
        s2s_ofile_abort(of);
        return rc;
    }
    if ((rc = s2s_ofile_commit(of, err))) return rc;
    snprintf(path, sizeof path, "%s/report.json", dir);
    return write_json(path, rep, err);
}

/* Appends printf-style text to err's message. */
static void err_append(s2s_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void err_append(s2s_err *err, const char *fmt, ...) {
    size_t n = strlen(err->msg);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg + n, sizeof err->msg - n, fmt, ap);
    va_end(ap);
}

/* One model of the run: --lm [LABEL=]SPEC. */
#define MAX_MODELS 1000
typedef struct model_arg {
    const char *label; /* NULL: the single-model run of old */
    const char *spec;
} model_arg;

/* What every model of a run shares. */
typedef struct run_cfg {
    s2s_score_opts o;
    const char *outdir;
    char **paths; /* inputs the reader opens (the stdin spool in a sweep over stdin) */
    int npaths;
    char **named; /* inputs as named on the command line */
    int nnamed;
    const char *shard;
    s2s_part part;
    int skip_bad, use_cache;
} run_cfg;

/* Scores every item with one model: writes DIR[/LABEL]/pairs.jsonl and report.json, the table on
 * stdout; *out_report gets a new reference to the report. Returns 0 or a negative code. */
static int score_model(const run_cfg *cfg, const model_arg *ma, json_t **out_report, s2s_err *err) {
    char dir[4096], cpath[4096], lab[160];
    snprintf(lab, sizeof lab, "%s%s", ma->label ? ma->label : "", ma->label ? ": " : "");
    if (ma->label)
        snprintf(dir, sizeof dir, "%s/%s", cfg->outdir, ma->label);
    else
        snprintf(dir, sizeof dir, "%s", cfg->outdir);
    snprintf(cpath, sizeof cpath, "%s/scores.cache.jsonl", cfg->outdir);
    *out_report = NULL;

    s2s_backend *b = s2s_backend_open(ma->spec, err);
    if (!b) return ma->label ? s2s_err_prefix(err, "%s", lab) : err->code;
    int rc = 0;
    s2s_scorer *sc = NULL;
    s2s_cache *cache = NULL;
    s2s_reader *r = NULL;
    s2s_progress *pg = NULL;
    json_t *rep = NULL;
    uint64_t skipped = 0;
    const char *model = s2s_backend_model_sha256(b);
    if (!strcmp(s2s_backend_kind(b), "worker") && !*model && !cfg->o.model_id)
        fprintf(stderr,
                "%s: warning: %sthe worker announced no model_id and --model-id is not given: "
                "cached scores are keyed on the command only (a new checkpoint behind the same "
                "command would reuse them)\n",
                prog, lab);
    if (!(sc = s2s_scorer_new(&cfg->o, b, err))) {
        rc = err->code;
        goto done;
    }
    if (cfg->use_cache) {
        cache = s2s_cache_open(cpath, ma->spec, model, cfg->o.model_id, cfg->o.dedup, err);
        if (!cache) {
            rc = err->code;
            goto done;
        }
        if (*s2s_cache_note(cache)) fprintf(stderr, "%s: note: %s\n", prog, s2s_cache_note(cache));
        s2s_score_hooks h;
        s2s_cache_hooks(cache, &h);
        s2s_scorer_set_hooks(sc, &h);
    }
    r = s2s_reader_open((const char *const *)cfg->paths, (size_t)cfg->npaths, 0, err);
    if (!r) {
        rc = err->code;
        goto done;
    }
    if (cfg->shard) s2s_reader_set_part(r, &cfg->part);
    char plabel[200];
    snprintf(plabel, sizeof plabel, "%s%s%s", prog, ma->label ? " " : "",
             ma->label ? ma->label : "");
    pg = s2s_progress_new(plabel, "items",
                          cfg->shard || !isatty(2) ? 0 : expected_samples(cfg->named, cfg->nnamed));
    while (!rc && !interrupted) {
        s2s_sample *s = NULL;
        int got = s2s_reader_next(r, &s, err);
        if (got < 0) {
            rc = got;
            break;
        }
        if (got == 0) break;
        rc = s2s_scorer_add(sc, s, err);
        if (rc == S2S_EDATA && cfg->skip_bad) {
            fprintf(stderr, "%s: %sskipped: %s\n", prog, lab, err->msg);
            s2s_err_clear(err);
            skipped++;
            rc = 0;
        }
        s2s_sample_free(s);
        s2s_progress_update(pg, s2s_scorer_items(sc));
    }
    if (!rc && !interrupted) rc = s2s_scorer_finish(sc, err);
    s2s_progress_end(pg, s2s_scorer_items(sc));
    pg = NULL;
    if (interrupted) rc = s2s_err_set(err, S2S_EINTR, "interrupted");
    if (!rc) {
        json_t *run = json_object();
        json_t *inputs = json_array();
        for (int i = 0; i < cfg->nnamed; i++) {
            char *c = strdup(cfg->named[i]);
            if (c) json_array_append_new(inputs, json_string(basename(c)));
            free(c);
        }
        json_object_set_new(run, "inputs", inputs);
        json_object_set_new(run, "dataset_json_sha256",
                            dataset_hashes(cfg->named, cfg->nnamed, err));
        json_object_set_new(run, "shard", json_string(cfg->shard ? cfg->shard : "0/1"));
        json_object_set_new(run, "skipped_items", json_integer((json_int_t)skipped));
        rep = s2s_scorer_report(sc, run, err);
        if (!rep) rc = err->code ? err->code : S2S_ENOMEM;
    }
    if (!rc && ma->label) rc = mkdir_p(dir, err);
    if (!rc) rc = write_outputs(dir, sc, rep, err);
    if (!rc) {
        if (ma->label) printf("== %s (%s)\n", ma->label, ma->spec);
        s2s_score_print_table(rep, stdout);
        if (ma->label) putchar('\n');
        const json_t *w = json_object_get(rep, "warnings");
        for (size_t i = 0; i < json_array_size(w); i++)
            fprintf(stderr, "%s: warning: %s%s\n", prog, lab,
                    json_string_value(json_array_get(w, i)));
        const char *mk;
        json_t *mv;
        json_object_foreach(json_object_get(rep, "modes"), mk, mv) {
            const json_t *fx = json_object_get(mv, "failure_examples");
            if (json_array_size(fx))
                fprintf(stderr, "%s: %s%s: first failure: %s\n", prog, lab, mk,
                        json_string_value(json_array_get(fx, 0)));
        }
        if (skipped)
            fprintf(stderr, "%s: %s%llu item(s) skipped (--skip-bad)\n", prog, lab,
                    (unsigned long long)skipped);
    }
done:
    s2s_progress_end(pg, sc ? s2s_scorer_items(sc) : 0);
    if (b && s2s_backend_restarts(b))
        fprintf(stderr,
                "%s: %sworker restarted %llu time%s (replies came from more than one "
                "process; not in report.json)\n",
                prog, lab, (unsigned long long)s2s_backend_restarts(b),
                s2s_backend_restarts(b) == 1 ? "" : "s");
    if (cache) {
        uint64_t hits = s2s_cache_hits(cache);
        uint64_t kept = s2s_cache_loaded(cache) + s2s_cache_stored(cache);
        uint64_t total = sc ? s2s_scorer_answered(sc) : 0;
        s2s_err cerr;
        s2s_err_clear(&cerr);
        int crc = s2s_cache_close(cache, &cerr);
        if (crc && !rc) {
            rc = crc;
            *err = cerr;
        }
        if (hits && !rc)
            fprintf(stderr, "%s: %s%llu of %llu candidate scores from %s, %llu asked\n", prog, lab,
                    (unsigned long long)hits, (unsigned long long)total, cpath,
                    (unsigned long long)(total - hits));
        if (rc && !crc && kept)
            err_append(err,
                       " (%llu candidate scores are kept in %s: rerun the same command to "
                       "resume)",
                       (unsigned long long)kept, cpath);
    }
    if (rc && ma->label) s2s_err_prefix(err, "%s", lab);
    s2s_reader_close(r);
    s2s_scorer_free(sc);
    s2s_backend_free(b);
    if (!rc)
        *out_report = rep;
    else
        json_decref(rep);
    return rc;
}

/* Copies stdin into a temporary file (a sweep reads its input once per model). */
static char *spool_stdin(s2s_err *err) {
    const char *t = getenv("TMPDIR");
    char tmpl[4096];
    snprintf(tmpl, sizeof tmpl, "%s/s2s-score-stdin-XXXXXX", t && *t ? t : "/tmp");
    int fd = mkstemp(tmpl);
    if (fd < 0) {
        s2s_err_errno(err, "%s", tmpl);
        return NULL;
    }
    char buf[1 << 16];
    ssize_t n;
    while ((n = read(0, buf, sizeof buf)) != 0 && !interrupted) {
        if (n < 0) {
            if (errno == EINTR) continue;
            s2s_err_errno(err, "<stdin>");
            break;
        }
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(fd, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) {
                s2s_err_errno(err, "%s", tmpl);
                n = -1;
                break;
            }
            off += w;
        }
        if (n < 0) break;
    }
    if (interrupted && !err->code) s2s_err_set(err, S2S_EINTR, "interrupted");
    if (close(fd) && !err->code) s2s_err_errno(err, "%s", tmpl);
    if (err->code) {
        unlink(tmpl);
        return NULL;
    }
    char *p = strdup(tmpl);
    if (!p) {
        unlink(tmpl);
        s2s_err_set(err, S2S_ENOMEM, "out of memory");
    }
    return p;
}

static int label_valid(const char *l) {
    size_t n = strlen(l);
    if (!n || n > 64 || l[0] == '.' || l[0] == '-') return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)l[i]) && !strchr("._+-", l[i])) return 0;
    return 1;
}

int main(int argc, char **argv) {
    static const struct option longopts[] = {
        {"mode", required_argument, 0, 'm'},      {"lm", required_argument, 0, 'l'},
        {"score", required_argument, 0, 's'},     {"compat", required_argument, 0, 'c'},
        {"dedup", no_argument, 0, 'd'},           {"seed", required_argument, 0, 'S'},
        {"bootstrap", required_argument, 0, 'B'}, {"tie-warn", required_argument, 0, 'T'},
        {"shard", required_argument, 0, 'P'},     {"skip-bad", no_argument, 0, 'k'},
        {"output", required_argument, 0, 'o'},    {"model-id", required_argument, 0, 'M'},
        {"no-cache", no_argument, 0, 'N'},        {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'},         {0, 0, 0, 0}};
    run_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    s2s_score_opts_init(&cfg.o);
    cfg.o.stop = &interrupted;
    cfg.use_cache = 1;
    const char *modes = "t2t";
    static model_arg models[MAX_MODELS];
    int nmodels = 0, nlabeled = 0, opt;
    s2s_err err;
    s2s_err_clear(&err);
    char *end;
    while ((opt = getopt_long(argc, argv, "o:hV", longopts, NULL)) != -1) {
        switch (opt) {
        case 'm':
            modes = optarg;
            break;
        case 'l': {
            if (nmodels == MAX_MODELS) {
                fprintf(stderr, "%s: --lm: at most %d models in one run\n", prog, MAX_MODELS);
                return 2;
            }
            char *eq = strchr(optarg, '='), *colon = strchr(optarg, ':');
            models[nmodels].label = NULL;
            models[nmodels].spec = optarg;
            if (eq && (!colon || eq < colon)) { /* LABEL=SPEC: every spec has a "kind:" */
                *eq = 0;
                models[nmodels].label = optarg;
                models[nmodels].spec = eq + 1;
                if (!label_valid(optarg)) {
                    fprintf(stderr,
                            "%s: --lm %s=...: a label is 1-64 letters, digits, '.', '_', '+', "
                            "'-' (not first: '.', '-'); it names DIR/LABEL/\n",
                            prog, optarg);
                    return 2;
                }
                for (int i = 0; i < nmodels; i++)
                    if (models[i].label && !strcmp(models[i].label, optarg)) {
                        fprintf(stderr, "%s: --lm: label '%s' given twice\n", prog, optarg);
                        return 2;
                    }
                nlabeled++;
            }
            nmodels++;
            break;
        }
        case 's':
            if (s2s_score_kind_parse(optarg, &cfg.o.kind, &err)) return die(err.code, err.msg);
            break;
        case 'c':
            if (strcmp(optarg, "s2sbench") != 0)
                return die(S2S_EINVAL, "--compat: only 's2sbench' is known");
            cfg.o.compat = S2S_COMPAT_S2SBENCH;
            break;
        case 'd':
            cfg.o.dedup = 1;
            break;
        case 'S':
            errno = 0;
            cfg.o.seed = strtoull(optarg, &end, 10);
            if (errno || *end || !*optarg || *optarg == '-' || cfg.o.seed > INT64_MAX)
                return die(S2S_EINVAL, "--seed: a number from 0 to 2^63-1");
            break;
        case 'B': {
            errno = 0;
            unsigned long v = strtoul(optarg, &end, 10);
            if (errno || *end || !*optarg || v > 1000000)
                return die(S2S_EINVAL, "--bootstrap: a count from 0 to 1000000");
            cfg.o.bootstrap = (unsigned)v;
            break;
        }
        case 'T':
            cfg.o.tie_warn = strtod(optarg, &end);
            if (*end || !*optarg || cfg.o.tie_warn < 0 || cfg.o.tie_warn > 1)
                return die(S2S_EINVAL, "--tie-warn: a share from 0 to 1");
            break;
        case 'P':
            cfg.shard = optarg;
            break;
        case 'k':
            cfg.skip_bad = 1;
            break;
        case 'o':
            cfg.outdir = optarg;
            break;
        case 'M':
            if (!*optarg) return die(S2S_EINVAL, "--model-id: an empty identity");
            cfg.o.model_id = optarg;
            break;
        case 'N':
            cfg.use_cache = 0;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("s2s-score %s\n", S2S_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!nmodels) {
        fprintf(stderr, "%s: --lm SPEC is required (try --help)\n", prog);
        return 2;
    }
    int sweep = nlabeled > 0;
    if (sweep && nlabeled != nmodels) {
        fprintf(stderr, "%s: --lm given %d times: label every model (--lm LABEL=SPEC)\n", prog,
                nmodels);
        return 2;
    }
    if (!sweep && nmodels > 1) {
        fprintf(stderr,
                "%s: --lm given %d times: a sweep labels every model (--lm LABEL=SPEC, e.g. "
                "--lm 1000=ngram:ckpt1000.arpa)\n",
                prog, nmodels);
        return 2;
    }
    if (sweep && cfg.o.model_id) {
        fprintf(stderr,
                "%s: --model-id names one model: not with a sweep (each worker announces its "
                "model_id in its hello, docs/worker.md)\n",
                prog);
        return 2;
    }
    if (!cfg.outdir) {
        fprintf(stderr, "%s: -o DIR is required (try --help)\n", prog);
        return 2;
    }
    if (s2s_modes_parse(modes, &cfg.o.modes, &err)) {
        return die(err.code, err.msg);
    }
    if (cfg.shard && s2s_part_parse(cfg.shard, &cfg.part, &err)) {
        return die(err.code, err.msg);
    }
    cfg.named = argv + optind;
    cfg.nnamed = argc - optind;
    cfg.paths = cfg.named;
    cfg.npaths = cfg.nnamed;

    /* Ctrl-C: stop reading, keep the cache, remove temporary files, write no report, exit 130. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    int rc = mkdir_p(cfg.outdir, &err);
    char *spool = NULL, **spaths = NULL;
    if (!rc && sweep && nmodels > 1) {
        /* every model reads the same input: stdin ("-" or no file) is kept in a temporary file */
        int uses_stdin = cfg.nnamed == 0;
        for (int i = 0; i < cfg.nnamed; i++)
            uses_stdin |= !strcmp(cfg.named[i], "-");
        if (uses_stdin) {
            spool = spool_stdin(&err);
            int n = cfg.nnamed ? cfg.nnamed : 1;
            spaths = spool ? calloc((size_t)n, sizeof *spaths) : NULL;
            if (!spool)
                rc = err.code;
            else if (!spaths)
                rc = s2s_err_set(&err, S2S_ENOMEM, "out of memory");
            for (int i = 0; !rc && i < n; i++)
                spaths[i] = (!cfg.nnamed || !strcmp(cfg.named[i], "-")) ? spool : cfg.named[i];
            if (!rc) {
                cfg.paths = spaths;
                cfg.npaths = n;
            }
        }
    }
    json_t *sw = json_array();
    if (!sw && !rc) rc = s2s_err_set(&err, S2S_ENOMEM, "out of memory");
    for (int i = 0; i < nmodels && !rc; i++) {
        json_t *rep = NULL;
        rc = score_model(&cfg, &models[i], &rep, &err);
        if (!rc)
            json_array_append_new(sw, json_pack("{s:s, s:o}", "label",
                                                models[i].label ? models[i].label : models[i].spec,
                                                "report", rep));
    }
    if (spool) unlink(spool);
    free(spool);
    free(spaths);
    char path[4096];
    if (!rc && sweep) {
        json_t *top =
            json_pack("{s:s, s:s, s:O}", "tool", "s2s-score", "version", S2S_VERSION, "sweep", sw);
        snprintf(path, sizeof path, "%s/report.json", cfg.outdir);
        rc = top ? write_json(path, top, &err) : s2s_err_set(&err, S2S_ENOMEM, "out of memory");
        json_decref(top);
        snprintf(path, sizeof path, "%s/sweep.svg", cfg.outdir);
        if (!rc) rc = write_svg(path, sw, &err);
        if (!rc) {
            /* summary: accuracy per mode against the label */
            const json_t *m0 =
                json_object_get(json_object_get(json_array_get(sw, 0), "report"), "modes");
            const char *mk;
            json_t *mv;
            printf("%-16s", "sweep");
            json_object_foreach((json_t *)m0, mk, mv) printf(" %9s", mk);
            putchar('\n');
            for (size_t i = 0; i < json_array_size(sw); i++) {
                const json_t *e = json_array_get(sw, i);
                printf("%-16s", json_string_value(json_object_get(e, "label")));
                json_object_foreach((json_t *)m0, mk, mv) {
                    const json_t *a = json_object_get(
                        json_object_get(json_object_get(json_object_get(e, "report"), "modes"), mk),
                        "accuracy");
                    if (json_is_number(a))
                        printf(" %9.4f", json_number_value(a));
                    else
                        printf(" %9s", "-");
                }
                putchar('\n');
            }
            printf("chart: %s\n", path);
        }
    } else if (!rc) {
        snprintf(path, sizeof path, "%s/report.svg", cfg.outdir);
        rc = write_svg(path, sw, &err);
    }
    json_decref(sw);
    if (rc) return die(rc, err.msg);
    return 0;
}

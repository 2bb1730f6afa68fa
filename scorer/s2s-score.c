/* s2s-score — the pairwise protocol over shards or a stream with a model backend → report. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <libgen.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "s2s/backend.h"
#include "s2s/err.h"
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
        "\n"
        "Scores every item of the shards (or of the tar stream / items JSONL on stdin when no\n"
        "file is named) with a model backend, in one or more modes, and writes DIR/report.json\n"
        "and DIR/pairs.jsonl (both appear only when complete) and a table on stdout.\n"
        "For each item, mode and candidate the backend gives the summed NLL (natural log) and\n"
        "the token count of the candidate given the context; a pair (plausible, implausible)\n"
        "is right when the plausible candidate scores LOWER. Ties count 0.5 and are counted.\n"
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
        "\n"
        "Exit status: 0 ok, 1 bad input or model failure, 2 usage, 3 I/O or system error,\n"
        "130 interrupted.\n");
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

/* Samples the named shards hold, from the dataset.json beside them (for the progress ETA);
 * 0 when unknown (stdin, a file without dataset.json). */
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
        if (!got) return 0;
        total += got;
    }
    return total;
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
    of = s2s_ofile_open(path, err);
    if (!of) return err->code;
    if (json_dumpf(rep, s2s_ofile_fp(of), JSON_INDENT(2) | JSON_PRESERVE_ORDER) ||
        fputc('\n', s2s_ofile_fp(of)) == EOF) {
        s2s_ofile_abort(of);
        return s2s_err_errno(err, "%s", path);
    }
    return s2s_ofile_commit(of, err);
}

int main(int argc, char **argv) {
    static const struct option longopts[] = {
        {"mode", required_argument, 0, 'm'},      {"lm", required_argument, 0, 'l'},
        {"score", required_argument, 0, 's'},     {"compat", required_argument, 0, 'c'},
        {"dedup", no_argument, 0, 'd'},           {"seed", required_argument, 0, 'S'},
        {"bootstrap", required_argument, 0, 'B'}, {"tie-warn", required_argument, 0, 'T'},
        {"shard", required_argument, 0, 'P'},     {"skip-bad", no_argument, 0, 'k'},
        {"output", required_argument, 0, 'o'},    {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'},         {0, 0, 0, 0}};
    s2s_score_opts o;
    s2s_score_opts_init(&o);
    const char *lm = NULL, *outdir = NULL, *modes = "t2t", *shard = NULL;
    int skip_bad = 0, opt;
    s2s_err err;
    s2s_err_clear(&err);
    char *end;
    while ((opt = getopt_long(argc, argv, "o:hV", longopts, NULL)) != -1) {
        switch (opt) {
        case 'm':
            modes = optarg;
            break;
        case 'l':
            lm = optarg;
            break;
        case 's':
            if (s2s_score_kind_parse(optarg, &o.kind, &err)) return die(err.code, err.msg);
            break;
        case 'c':
            if (strcmp(optarg, "s2sbench") != 0)
                return die(S2S_EINVAL, "--compat: only 's2sbench' is known");
            o.compat = S2S_COMPAT_S2SBENCH;
            break;
        case 'd':
            o.dedup = 1;
            break;
        case 'S':
            errno = 0;
            o.seed = strtoull(optarg, &end, 10);
            if (errno || *end || !*optarg || *optarg == '-' || o.seed > INT64_MAX)
                return die(S2S_EINVAL, "--seed: a number from 0 to 2^63-1");
            break;
        case 'B': {
            errno = 0;
            unsigned long v = strtoul(optarg, &end, 10);
            if (errno || *end || !*optarg || v > 1000000)
                return die(S2S_EINVAL, "--bootstrap: a count from 0 to 1000000");
            o.bootstrap = (unsigned)v;
            break;
        }
        case 'T':
            o.tie_warn = strtod(optarg, &end);
            if (*end || !*optarg || o.tie_warn < 0 || o.tie_warn > 1)
                return die(S2S_EINVAL, "--tie-warn: a share from 0 to 1");
            break;
        case 'P':
            shard = optarg;
            break;
        case 'k':
            skip_bad = 1;
            break;
        case 'o':
            outdir = optarg;
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
    if (!lm) {
        fprintf(stderr, "%s: --lm SPEC is required (try --help)\n", prog);
        return 2;
    }
    if (!outdir) {
        fprintf(stderr, "%s: -o DIR is required (try --help)\n", prog);
        return 2;
    }
    if (s2s_modes_parse(modes, &o.modes, &err)) return die(err.code, err.msg);
    s2s_part part = {0, 1};
    if (shard && s2s_part_parse(shard, &part, &err)) return die(err.code, err.msg);

    s2s_backend *b = s2s_backend_open(lm, &err);
    if (!b) return die(err.code, err.msg);
    s2s_scorer *sc = s2s_scorer_new(&o, b, &err);
    if (!sc) {
        s2s_backend_free(b);
        return die(err.code, err.msg);
    }
    int nin = argc - optind;
    s2s_reader *r = s2s_reader_open((const char *const *)(argv + optind), (size_t)nin, 0, &err);
    int rc = 0;
    uint64_t skipped = 0;
    if (!r) rc = err.code;
    if (r && shard) s2s_reader_set_part(r, &part);
    s2s_progress *pg =
        s2s_progress_new("s2s-score", "items", shard ? 0 : expected_samples(argv + optind, nin));
    /* Ctrl-C: stop reading, remove temporary files, write nothing, exit 130. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    while (!rc && !interrupted) {
        s2s_sample *s = NULL;
        int got = s2s_reader_next(r, &s, &err);
        if (got < 0) {
            rc = got;
            break;
        }
        if (got == 0) break;
        rc = s2s_scorer_add(sc, s, &err);
        if (rc == S2S_EDATA && skip_bad) {
            fprintf(stderr, "%s: skipped: %s\n", prog, err.msg);
            s2s_err_clear(&err);
            skipped++;
            rc = 0;
        }
        s2s_sample_free(s);
        s2s_progress_update(pg, s2s_scorer_items(sc));
    }
    if (!rc && !interrupted) rc = s2s_scorer_finish(sc, &err);
    if (interrupted) rc = s2s_err_set(&err, S2S_EINTR, "interrupted: nothing written");
    s2s_progress_end(pg, s2s_scorer_items(sc));
    json_t *rep = NULL;
    if (!rc) {
        json_t *run = json_object();
        json_t *inputs = json_array();
        for (int i = optind; i < argc; i++) {
            char *c = strdup(argv[i]);
            if (c) json_array_append_new(inputs, json_string(basename(c)));
            free(c);
        }
        json_object_set_new(run, "inputs", inputs);
        json_object_set_new(run, "dataset_json_sha256", dataset_hashes(argv + optind, nin, &err));
        json_object_set_new(run, "shard", json_string(shard ? shard : "0/1"));
        json_object_set_new(run, "skipped_items", json_integer((json_int_t)skipped));
        rep = s2s_scorer_report(sc, run, &err);
        if (!rep) rc = err.code ? err.code : S2S_ENOMEM;
    }
    if (!rc && (rc = mkdir_p(outdir, &err)) == 0) rc = write_outputs(outdir, sc, rep, &err);
    if (!rc) {
        s2s_score_print_table(rep, stdout);
        const json_t *w = json_object_get(rep, "warnings");
        for (size_t i = 0; i < json_array_size(w); i++)
            fprintf(stderr, "%s: warning: %s\n", prog, json_string_value(json_array_get(w, i)));
        const char *mk;
        json_t *mv;
        json_object_foreach(json_object_get(rep, "modes"), mk, mv) {
            const json_t *fx = json_object_get(mv, "failure_examples");
            if (json_array_size(fx))
                fprintf(stderr, "%s: %s: first failure: %s\n", prog, mk,
                        json_string_value(json_array_get(fx, 0)));
        }
        if (skipped)
            fprintf(stderr, "%s: %llu item(s) skipped (--skip-bad)\n", prog,
                    (unsigned long long)skipped);
    }
    json_decref(rep);
    s2s_reader_close(r);
    s2s_scorer_free(sc);
    s2s_backend_free(b);
    if (rc) return die(rc, err.msg);
    return 0;
}

/* s2s-import — text sources (StoryCloze CSV, CMMLU CSV, upstream S2SBench jsonl, our items) ->
 * items as JSON lines or a tar stream of ID.json samples (docs/items.md). */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s2s/err.h"
#include "s2s/import.h"
#include "s2s/item.h"
#include "s2s/sample.h"
#include "s2s/util.h"

static const char *prog = "s2s-import";
static volatile sig_atomic_t interrupted;

static void on_signal(int sig) {
    (void)sig;
    interrupted = 1;
}

static void usage(FILE *f) {
    fprintf(
        f,
        "Usage: s2s-import FORMAT [OPTIONS] [FILE|DIR|-]...\n"
        "\n"
        "Turns benchmark text into items (docs/items.md) and writes them as JSON lines, one\n"
        "item per line (default), or with --tar as a tar stream of ID.json samples that every\n"
        "other s2s tool reads. Reads stdin when no file is named. Every item is validated;\n"
        "ids are unique across all inputs (a duplicate names both places).\n"
        "\n"
        "Formats:\n"
        "  storycloze  StoryCloze Spring 2016 CSV (InputStoryid, InputSentence1-4,\n"
        "              RandomFifthSentenceQuiz1-2, AnswerRightEnding; found by header name).\n"
        "              context = the 4 sentences joined by spaces; 2 candidates, label from\n"
        "              AnswerRightEnding. id PREFIX_NNNNNN (data row, default prefix\n"
        "              sstorycloze), lang en. The ROCStories training CSV (5 sentences) is\n"
        "              refused: it has no wrong ending.\n"
        "  cmmlu       CMMLU CSV (,Question,A,B,C,D,Answer): task choice, lang zh, category =\n"
        "              file name without .csv, candidates A-D with \"key\". id\n"
        "              PREFIX_SUBJECT_NNNN (default prefix scmmlu). A DIR imports every *.csv\n"
        "              in it in name order.\n"
        "  s2sbench    upstream S2SBench jsonl. Story records {\"uttid\",\"first\",\"last\"}:\n"
        "              uttid N (even) = right ending, N+1 = wrong, same \"first\" (checked).\n"
        "              CMMLU records {\"uttid\",\"first\"|\"question\",\"A\"..\"D\",\"answer\"}.\n"
        "              Candidates keep \"uttid\" (and \"key\") to join upstream losses back.\n"
        "              id PREFIX_UTTID (default prefix s2sbench); lang zh if the text has CJK\n"
        "              characters, else en.\n"
        "  items       our own JSON lines: validated, unknown fields kept.\n"
        "\n"
        "CSV input is RFC 4180: quoted fields with commas, \"\" and newlines, UTF-8 (BOM\n"
        "allowed), CRLF or LF.\n"
        "\n"
        "Options:\n"
        "  -l, --lang L       language of the items (default: per format, see above; for\n"
        "                     items only where an item has no \"lang\")\n"
        "  -p, --prefix P     id prefix (letters, digits, _ and - only)\n"
        "  -t, --tar          write a tar stream of ID.json samples instead of JSON lines\n"
        "  -s, --shard I/N    keep only part I of N (0 <= I < N) by id hash: N jobs over the\n"
        "                     same input cover every item exactly once\n"
        "  -k, --skip-bad     skip bad rows instead of stopping; each one is reported on\n"
        "                     stderr with file:line and reason, then counted. CSV syntax\n"
        "                     errors and duplicate ids still stop the import.\n"
        "  -o, --output OUT   write to OUT (appears only when complete) instead of stdout\n"
        "  -q, --quiet        no summary line on stderr\n"
        "  -h, --help         this help\n"
        "  -V, --version      version\n"
        "\n"
        "Examples:\n"
        "  s2s-import storycloze cloze_test_val__spring2016.csv -o items.jsonl\n"
        "  s2s-import cmmlu --tar corpora/cmmlu/test/ | s2s-synth --voice cmn | s2s-pack ...\n"
        "  s2s-import s2sbench --lang zh upstream_story_zh.jsonl > items.jsonl\n"
        "  for i in 0 1 2 3; do s2s-import storycloze --shard $i/4 val.csv -o part$i.jsonl & done\n"
        "\n"
        "Exit status: 0 ok, 1 bad input data (message says file:line: why), 2 usage error,\n"
        "3 I/O or system error, 130 interrupted.\n");
}

typedef struct ctx {
    s2s_writer *w;
    s2s_part part;
    const char *format, *lang, *prefix, *shard, *file;
    int use_part;
    uint64_t written;
    s2s_progress *progress;
} ctx;

static int on_item(json_t *item, void *arg, s2s_err *err) {
    ctx *c = arg;
    if (interrupted) return s2s_err_set(err, S2S_EINTR, "interrupted");
    const char *id = s2s_item_id(item);
    if (c->use_part && !s2s_part_keep(&c->part, id)) return 0;
    /* The file the item came from: the CSV inside a directory when the source says so. */
    const char *file = json_string_value(json_object_get(json_object_get(item, "source"), "file"));
    if (!file || strcmp(c->format, "items") == 0) {
        file = c->file;
        if (strcmp(file, "-") == 0)
            file = "stdin";
        else if (strrchr(file, '/') && strrchr(file, '/')[1])
            file = strrchr(file, '/') + 1;
    }
    json_t *params = json_pack("{s:s, s:s}", "format", c->format, "file", file);
    if (!params) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    if (c->lang) json_object_set_new(params, "lang", json_string(c->lang));
    if (c->prefix) json_object_set_new(params, "prefix", json_string(c->prefix));
    if (c->shard) json_object_set_new(params, "shard", json_string(c->shard));
    int rc = s2s_item_add_provenance(item, prog, params, err);
    if (rc < 0) return rc;
    s2s_sample *s = s2s_sample_new(id, err);
    if (!s) return err->code;
    s->item = json_incref(item);
    rc = s2s_writer_put(c->w, s, err);
    s2s_sample_free(s);
    if (rc < 0) return rc;
    c->written++;
    s2s_progress_update(c->progress, c->written);
    return 0;
}

int main(int argc, char **argv) {
    static const struct option longopts[] = {
        {"lang", required_argument, 0, 'l'}, {"prefix", required_argument, 0, 'p'},
        {"tar", no_argument, 0, 't'},        {"shard", required_argument, 0, 's'},
        {"skip-bad", no_argument, 0, 'k'},   {"output", required_argument, 0, 'o'},
        {"quiet", no_argument, 0, 'q'},      {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'},    {0, 0, 0, 0}};
    s2s_import_opts io = {0};
    ctx c = {0};
    const char *out = NULL;
    int tar = 0, quiet = 0, opt;
    s2s_err err;
    s2s_err_clear(&err);
    while ((opt = getopt_long(argc, argv, "l:p:ts:ko:qhV", longopts, NULL)) != -1) {
        switch (opt) {
        case 'l':
            io.lang = optarg;
            break;
        case 'p':
            io.prefix = optarg;
            break;
        case 't':
            tar = 1;
            break;
        case 's':
            if (s2s_part_parse(optarg, &c.part, &err) < 0) {
                fprintf(stderr, "%s: %s\n", prog, err.msg);
                return 2;
            }
            c.use_part = 1;
            c.shard = optarg;
            break;
        case 'k':
            io.skip_bad = 1;
            break;
        case 'o':
            out = optarg;
            break;
        case 'q':
            quiet = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("%s %s\n", prog, S2S_VERSION);
            return 0;
        default:
            fprintf(stderr, "Try '%s --help'.\n", prog);
            return 2;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "%s: name a FORMAT (%s); try '%s --help'\n", prog, s2s_import_formats(),
                prog);
        return 2;
    }
    c.format = argv[optind++];
    c.lang = io.lang;
    c.prefix = io.prefix;
    s2s_importer *im = s2s_importer_new(c.format, &io, on_item, &c, &err);
    if (!im) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        return s2s_exit_status(err.code);
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN); /* a closed pipe becomes a write error we report */
    c.w = s2s_writer_open(out, tar ? S2S_FMT_TAR : S2S_FMT_JSONL, &err);
    if (!c.w) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        s2s_importer_free(im);
        return s2s_exit_status(err.code);
    }
    c.progress = s2s_progress_new(prog, "items", 0);
    static const char *const stdin_only[] = {"-"};
    const char *const *files = optind < argc ? (const char *const *)argv + optind : stdin_only;
    int nfiles = optind < argc ? argc - optind : 1;
    int rc = 0;
    for (int i = 0; i < nfiles && rc >= 0; i++) {
        c.file = files[i];
        long got = s2s_importer_file(im, files[i], &err);
        if (got < 0) rc = (int)got;
        if (interrupted && rc >= 0) rc = s2s_err_set(&err, S2S_EINTR, "interrupted");
    }
    s2s_progress_end(c.progress, c.written);
    uint64_t skipped = s2s_importer_skipped(im);
    for (uint64_t i = 0; i < skipped; i++)
        fprintf(stderr, "%s: skipped: %s\n", prog, s2s_importer_skip_reason(im, i));
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        s2s_writer_abort(c.w);
    } else if ((rc = s2s_writer_close(c.w, &err)) < 0) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
    } else if (!quiet || skipped) {
        fprintf(stderr, "%s: %" PRIu64 " items written", prog, c.written);
        if (c.use_part)
            fprintf(stderr, " (part %s of %" PRIu64 " imported)", c.shard, s2s_importer_count(im));
        if (skipped) fprintf(stderr, ", %" PRIu64 " bad rows skipped (--skip-bad)", skipped);
        fprintf(stderr, "\n");
    }
    s2s_importer_free(im);
    return rc < 0 ? s2s_exit_status(rc) : 0;
}

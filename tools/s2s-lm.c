/* s2s-lm — the built-in n-gram language model: train (interpolated modified Kneser-Ney, ARPA
 * output), perplexity, model info, and training text extracted from an item stream. */
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "s2s/err.h"
#include "s2s/item.h"
#include "s2s/ngram.h"
#include "s2s/sample.h"
#include "s2s/util.h"
#include "s2s/worker.h"

static const char *prog = "s2s-lm";
static volatile sig_atomic_t interrupted;

static void on_signal(int sig) {
    (void)sig;
    interrupted = 1;
}

static void usage(FILE *fp) {
    fprintf(fp,
            "Usage: s2s-lm train --order N [--tok MODE] [--lang L] -o MODEL.arpa [TEXT...]\n"
            "       s2s-lm ppl [--tok MODE] MODEL.arpa [TEXT...]\n"
            "       s2s-lm info MODEL.arpa\n"
            "       s2s-lm tok [--tok MODE] [--lang L] [TEXT...]\n"
            "       s2s-lm serve [--model-id ID] MODEL.arpa[?OPTS]\n"
            "       s2s-lm text [--units] [--what WHAT] [--shard I/N] [--skip-bad] [-o FILE]\n"
            "                   [STREAM...]\n"
            "\n"
            "The built-in n-gram language model of s2sbench (docs/ngram.md).\n"
            "\n"
            "train  reads plain text or unit sequences, one sentence per line (stdin when no TEXT\n"
            "       is named; empty lines are skipped), and writes an interpolated modified\n"
            "       Kneser-Ney model as a standard ARPA file (log10), readable by SRILM, KenLM,\n"
            "       IRSTLM and sphinxbase. The file appears only when complete.\n"
            "  -n, --order N    n-gram order, 1..32 (default 3)\n"
            "  -t, --tok MODE   words (lower-cased, punctuation split), chars (one token per\n"
            "                   UTF-8 character: zh, ja, ko, th), units (whitespace-separated,\n"
            "                   as is), or auto: chars or words from --lang (default words)\n"
            "  -l, --lang L     language code for --tok auto (zh, en, ...)\n"
            "  -o, --output F   model file (default stdout)\n"
            "\n"
            "ppl    perplexity of the model on TEXT (one sentence per line, </s> counted), as\n"
            "       SRILM/IRSTLM report it: sentences, words, OOVs, log10 probability, PP.\n"
            "       OOVs are scored as <unk> when the model has <unk>, else left out.\n"
            "  -t, --tok MODE   tokenize with MODE instead of the model's own mode\n"
            "  --repeat N       score each TEXT N times (for timing; figures are per pass)\n"
            "  --time           print load time and scoring speed (tokens/s, CPU) on stderr\n"
            "\n"
            "info   order, token mode, n-gram counts, vocabulary size, <unk>.\n"
            "\n"
            "tok    prints TEXT tokenized as train sees it, tokens separated by one space, one\n"
            "       line per input line (to train another toolkit on the same tokens).\n"
            "  -t, --tok MODE, -l, --lang L   as for train\n"
            "\n"
            "serve  answers the worker protocol of docs/worker.md on stdin/stdout with the model\n"
            "       (s2s-score --lm 'worker:s2s-lm serve MODEL.arpa'); same scores as\n"
            "       --lm ngram:MODEL.arpa. OPTS as in ngram: specs (cache=L, eos=1, joined by &);\n"
            "       MODEL may also be TEXT.arpa,UNITS.arpa.\n"
            "  --model-id ID    identity announced in the hello (default ngram:SHA-256 of the\n"
            "                   model file)\n"
            "\n"
            "text   training text from a stream of items or samples (JSON lines or tar stream,\n"
            "       shards included; stdin when no STREAM is named): one line per item.\n"
            "  --what WHAT      ctx+right (default: the context followed by the plausible\n"
            "                   candidate), ctx (contexts only), all (one line per candidate,\n"
            "                   context + candidate)\n"
            "  --units          unit sequences from the ctx.units and cN.units members instead\n"
            "                   of text\n"
            "  --shard I/N      only items of part I of N\n"
            "  --skip-bad       skip items lacking what is asked (counted on stderr)\n"
            "  -o, --output F   output file (default stdout)\n"
            "       A model trained on ctx+right text of the items it then scores has seen their\n"
            "       plausible endings: train on other items (e.g. --shard 0/2, score 1/2).\n"
            "\n"
            "  -h, --help, --version\n"
            "\n"
            "Examples:\n"
            "  s2s-lm text shards/*.tar | s2s-lm train --order 4 -o story.arpa\n"
            "  s2s-lm text --units shards/*.tar | s2s-lm train --order 4 --tok units -o u.arpa\n"
            "  s2s-lm train --order 3 --tok auto --lang zh -o zh.arpa zh.txt\n"
            "  s2s-lm ppl story.arpa held-out.txt\n"
            "\n"
            "Exit status: 0 ok, 1 bad input (malformed ARPA, invalid UTF-8, missing members),\n"
            "2 usage, 3 I/O or system error, 130 interrupted.\n");
}

static int fail(s2s_err *err) {
    if (interrupted) { /* a read cut short by the signal: say so, not "I/O error" */
        fprintf(stderr, "%s: interrupted\n", prog);
        return s2s_exit_status(S2S_EINTR);
    }
    fprintf(stderr, "%s: %s\n", prog, err->msg);
    return s2s_exit_status(err->code);
}

static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "%s: ", prog);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry '%s --help'.\n", prog);
    return 2;
}

static int parse_tok(const char *name, const char *lang, s2s_tok_mode *mode) {
    if (strcmp(name, "auto") == 0) {
        *mode = s2s_tok_mode_for_lang(lang);
        return 0;
    }
    return s2s_tok_mode_parse(name, mode);
}

static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- train ----------------------------------------------------------------------------------- */
static int train_file(s2s_lm_trainer *t, const char *path, uint64_t *lines, s2s_progress *pg,
                      s2s_err *err) {
    const char *name = strcmp(path, "-") ? path : "<stdin>";
    FILE *fp = strcmp(path, "-") ? fopen(path, "r") : stdin;
    if (!fp) return s2s_err_errno(err, "%s: cannot open", name);
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    int rc = 0;
    while (getline(&line, &cap, fp) != -1) {
        lineno++;
        if (interrupted) {
            rc = s2s_err_set(err, S2S_EINTR, "interrupted");
            break;
        }
        if ((rc = s2s_lm_trainer_add(t, line, err)) < 0) {
            s2s_err_prefix(err, "%s:%zu: ", name, lineno);
            break;
        }
        ++*lines;
        if ((*lines & 1023) == 0) s2s_progress_update(pg, *lines);
    }
    if (!rc && interrupted) rc = s2s_err_set(err, S2S_EINTR, "interrupted");
    if (!rc && ferror(fp)) rc = s2s_err_errno(err, "%s: read failed", name);
    free(line);
    if (fp != stdin) fclose(fp);
    return rc;
}

static int cmd_train(int argc, char **argv) {
    static const struct option opts[] = {
        {"order", required_argument, 0, 'n'}, {"tok", required_argument, 0, 't'},
        {"lang", required_argument, 0, 'l'},  {"output", required_argument, 0, 'o'},
        {"help", no_argument, 0, 'h'},        {0, 0, 0, 0}};
    int order = 3, c;
    const char *tok = "words", *lang = NULL, *out = "-";
    while ((c = getopt_long(argc, argv, "n:t:l:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'n': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || v < 1 || v > 32) return usage_error("bad --order '%s' (1..32)", optarg);
            order = (int)v;
            break;
        }
        case 't':
            tok = optarg;
            break;
        case 'l':
            lang = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            return usage_error("%s", "bad option");
        }
    }
    s2s_tok_mode mode;
    if (parse_tok(tok, lang, &mode) < 0)
        return usage_error("bad --tok '%s' (words, chars, units, auto)", tok);
    if (strcmp(tok, "auto") == 0 && !lang) return usage_error("%s", "--tok auto needs --lang");
    s2s_err err;
    s2s_err_clear(&err);
    s2s_lm_trainer *t = s2s_lm_trainer_new(order, mode, &err);
    if (!t) return fail(&err);
    s2s_progress *pg = s2s_progress_new("s2s-lm train", "lines", 0);
    uint64_t lines = 0;
    int rc = 0;
    if (optind == argc) {
        rc = train_file(t, "-", &lines, pg, &err);
    } else {
        for (int i = optind; i < argc && !rc; i++)
            rc = train_file(t, argv[i], &lines, pg, &err);
    }
    s2s_progress_end(pg, lines);
    if (rc < 0) {
        s2s_lm_trainer_free(t);
        return fail(&err);
    }
    s2s_lm *lm = s2s_lm_trainer_finish(t, &err);
    if (!lm) return fail(&err);
    s2s_ofile *of = s2s_ofile_open(out, &err);
    if (!of) {
        s2s_lm_free(lm);
        return fail(&err);
    }
    rc = s2s_lm_write_arpa(lm, s2s_ofile_fp(of), &err);
    if (!rc && interrupted) rc = s2s_err_set(&err, S2S_EINTR, "interrupted");
    if (rc < 0) {
        s2s_ofile_abort(of);
        s2s_lm_free(lm);
        return fail(&err);
    }
    if (s2s_ofile_commit(of, &err) < 0) {
        s2s_lm_free(lm);
        return fail(&err);
    }
    fprintf(stderr, "%s: %llu lines, order %d, %s tokens, vocabulary %zu:", prog,
            (unsigned long long)lines, order, s2s_tok_mode_name(mode), s2s_lm_vocab_size(lm));
    for (int n = 1; n <= order; n++)
        fprintf(stderr, " %zu %d-grams", s2s_lm_count(lm, n), n);
    fprintf(stderr, "\n");
    s2s_lm_free(lm);
    return 0;
}

/* ---- ppl ------------------------------------------------------------------------------------- */
static int cmd_ppl(int argc, char **argv) {
    static const struct option opts[] = {{"tok", required_argument, 0, 't'},
                                         {"repeat", required_argument, 0, 'r'},
                                         {"time", no_argument, 0, 'T'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *tok = NULL;
    int c, timing = 0;
    long repeat = 1;
    while ((c = getopt_long(argc, argv, "t:h", opts, NULL)) != -1) {
        switch (c) {
        case 't':
            tok = optarg;
            break;
        case 'r': {
            char *end;
            repeat = strtol(optarg, &end, 10);
            if (*end || repeat < 1 || repeat > 1000000)
                return usage_error("bad --repeat '%s'", optarg);
            break;
        }
        case 'T':
            timing = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            return usage_error("%s", "bad option");
        }
    }
    if (optind >= argc) return usage_error("%s", "ppl needs MODEL.arpa");
    s2s_tok_mode mode = S2S_TOK_WORDS;
    if (tok && s2s_tok_mode_parse(tok, &mode) < 0)
        return usage_error("bad --tok '%s' (words, chars, units)", tok);
    s2s_err err;
    s2s_err_clear(&err);
    double t0 = cpu_seconds();
    s2s_lm *lm = s2s_lm_load_arpa(argv[optind], &err);
    if (!lm) return fail(&err);
    if (timing)
        fprintf(stderr, "%s: loaded %s in %.3f s CPU\n", prog, argv[optind], cpu_seconds() - t0);
    if (tok) s2s_lm_set_tok_mode(lm, mode);
    int n_in = argc - optind - 1;
    const char *stdin_only[] = {"-"};
    const char *const *paths = n_in ? (const char *const *)argv + optind + 1 : stdin_only;
    if (!n_in) n_in = 1;
    int status = 0;
    for (int i = 0; i < n_in; i++) {
        const char *p = paths[i];
        const char *name = strcmp(p, "-") ? p : "<stdin>";
        unsigned char *text;
        size_t len;
        if (s2s_read_file(p, &text, &len, &err) < 0) {
            status = fail(&err);
            break;
        }
        s2s_lm_ppl st;
        memset(&st, 0, sizeof st);
        int rc = 0;
        double t1 = cpu_seconds();
        for (long r = 0; r < repeat && !rc; r++) {
            FILE *fp = fmemopen(text, len ? len : 1, "r");
            if (!fp) {
                rc = s2s_err_errno(&err, "%s: fmemopen", name);
                break;
            }
            if (!len) { /* fmemopen needs a size > 0: an empty text is one empty line */
                fclose(fp);
                fp = fmemopen((void *)"\n", 1, "r");
                if (!fp) {
                    rc = s2s_err_errno(&err, "%s: fmemopen", name);
                    break;
                }
            }
            rc = s2s_lm_perplexity_ex(lm, fp, &st, &err);
            fclose(fp);
        }
        double dt = cpu_seconds() - t1;
        free(text);
        if (rc < 0) {
            s2s_err_prefix(&err, "%s: ", name);
            status = fail(&err);
            break;
        }
        printf("file %s: %zu sentences, %zu words, %zu OOVs\n", name, st.sentences, st.words,
               st.oov);
        printf("scored=%zu logprob=%.6f ppl=%.6f\n", st.scored, st.logprob10, st.ppl);
        if (timing)
            fprintf(stderr, "%s: scored %zu tokens x %ld in %.3f s CPU: %.0f tokens/s\n", prog,
                    st.scored, repeat, dt, dt > 0 ? (double)st.scored * (double)repeat / dt : 0);
    }
    s2s_lm_free(lm);
    return status;
}

/* ---- info ------------------------------------------------------------------------------------ */
static int cmd_info(int argc, char **argv) {
    if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc != 2) return usage_error("%s", "info needs exactly one MODEL.arpa");
    s2s_err err;
    s2s_err_clear(&err);
    s2s_lm *lm = s2s_lm_load_arpa(argv[1], &err);
    if (!lm) return fail(&err);
    printf("file: %s\norder: %d\ntokens: %s\nvocabulary: %zu\nunk: %s\n", argv[1], s2s_lm_order(lm),
           s2s_tok_mode_name(s2s_lm_tok_mode(lm)), s2s_lm_vocab_size(lm),
           s2s_lm_has_unk(lm) ? "yes" : "no");
    for (int n = 1; n <= s2s_lm_order(lm); n++)
        printf("ngram %d: %zu\n", n, s2s_lm_count(lm, n));
    s2s_lm_free(lm);
    return 0;
}

/* ---- tok ----------------------------------------------------------------------------------- */
static int cmd_tok(int argc, char **argv) {
    static const struct option opts[] = {{"tok", required_argument, 0, 't'},
                                         {"lang", required_argument, 0, 'l'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *tok = "words", *lang = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "t:l:h", opts, NULL)) != -1) {
        switch (c) {
        case 't':
            tok = optarg;
            break;
        case 'l':
            lang = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            return usage_error("%s", "bad option");
        }
    }
    s2s_tok_mode mode;
    if (parse_tok(tok, lang, &mode) < 0)
        return usage_error("bad --tok '%s' (words, chars, units, auto)", tok);
    if (strcmp(tok, "auto") == 0 && !lang) return usage_error("%s", "--tok auto needs --lang");
    s2s_err err;
    s2s_err_clear(&err);
    int n_in = argc - optind;
    for (int i = 0; i < (n_in ? n_in : 1); i++) {
        const char *p = n_in ? argv[optind + i] : "-";
        const char *name = strcmp(p, "-") ? p : "<stdin>";
        FILE *fp = strcmp(p, "-") ? fopen(p, "r") : stdin;
        if (!fp) {
            s2s_err_errno(&err, "%s: cannot open", name);
            return fail(&err);
        }
        char *line = NULL;
        size_t cap = 0, lineno = 0;
        int rc = 0;
        while (getline(&line, &cap, fp) != -1) {
            lineno++;
            char **toks;
            long nt = s2s_ngram_tokenize(line, mode, &toks, &err);
            if (nt < 0) {
                s2s_err_prefix(&err, "%s:%zu: ", name, lineno);
                rc = (int)nt;
                break;
            }
            for (long k = 0; k < nt; k++) {
                if (k) putchar(' ');
                fputs(toks[k], stdout);
            }
            putchar('\n');
            s2s_tokens_free(toks, (size_t)nt);
        }
        free(line);
        if (fp != stdin) fclose(fp);
        if (rc < 0) return fail(&err);
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        s2s_err_errno(&err, "<stdout>: write failed");
        return fail(&err);
    }
    return 0;
}

/* ---- serve --------------------------------------------------------------------------------- */
static int cmd_serve(int argc, char **argv) {
    static const struct option opts[] = {
        {"model-id", required_argument, 0, 'm'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *model_id = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "m:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            model_id = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            return usage_error("%s", "bad option");
        }
    }
    if (optind != argc - 1) return usage_error("%s", "serve needs exactly one MODEL");
    const char *model = argv[optind];
    s2s_err err;
    s2s_err_clear(&err);
    size_t n = strlen(model) + 8;
    char *spec = malloc(n);
    if (!spec) return s2s_exit_status(S2S_ENOMEM);
    if (strncmp(model, "ngram:", 6) == 0 || strncmp(model, "arpa:", 5) == 0)
        snprintf(spec, n, "%s", model);
    else
        snprintf(spec, n, "ngram:%s", model);
    s2s_backend *b = s2s_backend_open(spec, &err);
    free(spec);
    if (!b) return fail(&err);
    char idbuf[128];
    if (!model_id) {
        snprintf(idbuf, sizeof idbuf, "ngram:%s", s2s_backend_model_sha256(b));
        model_id = idbuf;
    }
    signal(SIGPIPE, SIG_IGN);
    /* replies leave in batches (s2s_worker_serve flushes before it waits for input): a 64 KiB
     * buffer instead of the pipe's 4 KiB means fewer writes and fewer wake-ups of the scorer */
    static char obuf[1 << 16];
    setvbuf(stdout, obuf, _IOFBF, sizeof obuf);
    int rc = s2s_worker_serve(b, model_id, stdin, stdout, &err);
    s2s_backend_free(b);
    if (rc < 0) return fail(&err);
    return 0;
}

/* ---- text ------------------------------------------------------------------------------------ */
/* Appends s to b with newlines and tabs turned into spaces (one sentence per line). */
static int put_flat(s2s_buf *b, const char *s, size_t n, s2s_err *err) {
    if (b->len && s2s_buf_append(b, " ", 1, err) < 0) return S2S_ENOMEM;
    size_t start = b->len;
    if (s2s_buf_append(b, s, n, err) < 0) return S2S_ENOMEM;
    for (size_t i = start; i < b->len; i++)
        if (b->data[i] == '\n' || b->data[i] == '\r' || b->data[i] == '\t') b->data[i] = ' ';
    while (b->len > start && b->data[b->len - 1] == ' ')
        b->len--;
    return 0;
}

static int put_member(s2s_buf *b, const s2s_sample *s, const char *suffix, s2s_err *err) {
    const s2s_member *m = s2s_sample_get(s, suffix);
    if (!m) return s2s_err_set(err, S2S_EDATA, "sample %s: no %s member", s->key, suffix);
    return put_flat(b, (const char *)m->data, m->size, err);
}

/* One line per wanted candidate (what: 0 ctx, 1 ctx+right, 2 all). */
static int text_sample(FILE *out, const s2s_sample *s, int units, int what, s2s_err *err) {
    const json_t *item = s->item;
    if (!item) return s2s_err_set(err, S2S_EDATA, "sample %s: no item", s->key);
    size_t nc = s2s_item_n_candidates(item);
    int right = s2s_item_right_index(item);
    s2s_buf b = {0};
    int rc = 0;
    for (size_t i = 0; i < (what == 2 ? nc : 1); i++) {
        size_t cand = what == 2 ? i : (size_t)right;
        b.len = 0;
        if (units) {
            if ((rc = put_member(&b, s, "ctx.units", err)) < 0) break;
        } else {
            const char *ctx = s2s_item_context_text(item);
            if (!ctx) {
                rc = s2s_err_set(err, S2S_EDATA, "sample %s: no context text", s->key);
                break;
            }
            if ((rc = put_flat(&b, ctx, strlen(ctx), err)) < 0) break;
        }
        if (what != 0) {
            if (what == 1 && right < 0) {
                rc = s2s_err_set(err, S2S_EDATA, "sample %s: no candidate with label 1", s->key);
                break;
            }
            if (units) {
                char suf[32];
                snprintf(suf, sizeof suf, "c%zu.units", cand);
                if ((rc = put_member(&b, s, suf, err)) < 0) break;
            } else {
                const char *t = s2s_item_candidate_text(item, cand);
                if (!t) {
                    rc = s2s_err_set(err, S2S_EDATA, "sample %s: candidate %zu has no text", s->key,
                                     cand);
                    break;
                }
                if ((rc = put_flat(&b, t, strlen(t), err)) < 0) break;
            }
        }
        if (b.len) {
            fwrite(b.data, 1, b.len, out);
            fputc('\n', out);
        }
    }
    s2s_buf_free(&b);
    return rc;
}

static int cmd_text(int argc, char **argv) {
    static const struct option opts[] = {{"units", no_argument, 0, 'u'},
                                         {"what", required_argument, 0, 'w'},
                                         {"shard", required_argument, 0, 's'},
                                         {"skip-bad", no_argument, 0, 'k'},
                                         {"output", required_argument, 0, 'o'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int units = 0, what = 1, skip_bad = 0, c;
    const char *out = "-";
    s2s_part part = {0, 1};
    s2s_err err;
    s2s_err_clear(&err);
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'u':
            units = 1;
            break;
        case 'w':
            if (strcmp(optarg, "ctx") == 0)
                what = 0;
            else if (strcmp(optarg, "ctx+right") == 0)
                what = 1;
            else if (strcmp(optarg, "all") == 0)
                what = 2;
            else
                return usage_error("bad --what '%s' (ctx, ctx+right, all)", optarg);
            break;
        case 's':
            if (s2s_part_parse(optarg, &part, &err) < 0)
                return usage_error("bad --shard '%s'", optarg);
            break;
        case 'k':
            skip_bad = 1;
            break;
        case 'o':
            out = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            return usage_error("%s", "bad option");
        }
    }
    s2s_reader *r =
        s2s_reader_open((const char *const *)argv + optind, (size_t)(argc - optind), 0, &err);
    if (!r) return fail(&err);
    s2s_reader_set_part(r, &part);
    s2s_ofile *of = s2s_ofile_open(out, &err);
    if (!of) {
        s2s_reader_close(r);
        return fail(&err);
    }
    FILE *fp = s2s_ofile_fp(of);
    s2s_progress *pg = s2s_progress_new("s2s-lm text", "items", 0);
    uint64_t done = 0, bad = 0;
    int rc;
    s2s_sample *s;
    while ((rc = s2s_reader_next(r, &s, &err)) == 1) {
        if (interrupted) {
            s2s_sample_free(s);
            rc = s2s_err_set(&err, S2S_EINTR, "interrupted");
            break;
        }
        rc = text_sample(fp, s, units, what, &err);
        if (rc < 0) {
            if (skip_bad && rc == S2S_EDATA) {
                fprintf(stderr, "%s: skipped: %s\n", prog, err.msg);
                bad++; /* rc is set again by the loop condition */
            } else {
                s2s_sample_free(s);
                break;
            }
        }
        s2s_sample_free(s);
        s2s_progress_update(pg, ++done);
    }
    s2s_progress_end(pg, done);
    s2s_reader_close(r);
    if (rc >= 0 && interrupted) rc = s2s_err_set(&err, S2S_EINTR, "interrupted");
    if (rc < 0) {
        s2s_ofile_abort(of);
        return fail(&err);
    }
    if (s2s_ofile_commit(of, &err) < 0) return fail(&err);
    if (bad)
        fprintf(stderr, "%s: %llu of %llu items skipped (--skip-bad)\n", prog,
                (unsigned long long)bad, (unsigned long long)done);
    return 0;
}

int main(int argc, char **argv) {
    /* No SA_RESTART: a read waiting on a pipe returns (EINTR) so the tool can remove its
     * temporary output and exit 130 at once. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("%s %s\n", prog, S2S_VERSION);
        return 0;
    }
    if (strcmp(cmd, "train") == 0) return cmd_train(argc - 1, argv + 1);
    if (strcmp(cmd, "ppl") == 0) return cmd_ppl(argc - 1, argv + 1);
    if (strcmp(cmd, "info") == 0) return cmd_info(argc - 1, argv + 1);
    if (strcmp(cmd, "text") == 0) return cmd_text(argc - 1, argv + 1);
    if (strcmp(cmd, "tok") == 0) return cmd_tok(argc - 1, argv + 1);
    if (strcmp(cmd, "serve") == 0) return cmd_serve(argc - 1, argv + 1);
    return usage_error("unknown command '%s' (train, ppl, info, tok, serve, text)", cmd);
}

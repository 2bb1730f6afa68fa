/* s2s-synth — items -> tar stream of ID.json + ID.ctx.wav, ID.c0.wav, ... spoken by libespeak-ng
 * (docs/synth.md). -j N keeps N items in flight, each spoken by its own forked process; the
 * bytes do not depend on N. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "s2s/err.h"
#include "s2s/item.h"
#include "s2s/sample.h"
#include "s2s/synth.h"
#include "s2s/util.h"

static const char *prog = "s2s-synth";
static volatile sig_atomic_t interrupted;

static void on_signal(int sig) {
    (void)sig;
    interrupted = 1;
}

static void usage(FILE *f) {
    fprintf(
        f,
        "Usage: s2s-synth [OPTIONS] [FILE|-]...\n"
        "\n"
        "Speaks the context and the candidates of every item with libespeak-ng and writes the\n"
        "tar stream of docs/stream.md: ID.json (the item plus an \"audio\" object and a\n"
        "provenance record), ID.ctx.wav, ID.c0.wav, ID.c1.wav, ... (16-bit mono PCM WAV at\n"
        "espeak-ng's native 22050 Hz; resampling is s2s-resample's job). Input: JSON lines of\n"
        "items or a tar stream (auto-detected), from the FILEs or stdin. Text is plain UTF-8:\n"
        "'<', '&' and '[[' are spoken as text, never read as SSML or phonemes.\n"
        "Same input and options give byte-identical output, whatever -j (docs/synth.md).\n"
        "\n"
        "Voices:\n"
        "  -v, --voice NAME   one voice for every item (\"en-us\", \"cmn\", \"en-us+f3\", ...)\n"
        "      --voices A,B,C spread items over voices: the voice of an item is a pure\n"
        "                     function of --seed and its id (FNV-1a 64 of \"SEED:ID\" mod count)\n"
        "                     Default: by the item's lang: en -> en-us, zh -> cmn, any other\n"
        "                     code espeak-ng knows (fr, de, ...) as itself. An unknown voice or\n"
        "                     language is an error that names close matches.\n"
        "      --seed N       seed for --voices (default 0; recorded in ID.json)\n"
        "      --list-voices[=LANG]  print voices (LANG<TAB>NAME<TAB>FILE) and variants, exit\n"
        "  -s, --rate WPM     speaking rate in words per minute, 80..450 (default 175)\n"
        "  -p, --pitch P      base pitch 0..99 (default 50)\n"
        "\n"
        "What and how:\n"
        "      --parts LIST   ctx, candidates or ctx,candidates (default)\n"
        "      --trim         cut leading/trailing silence: keep 10 ms around the first and the\n"
        "                     last sample above %d (about -50 dBFS)\n"
        "      --normalize    scale each utterance to a peak of -1 dBFS\n"
        "  -j, --jobs N       N synthesis processes per voice (default 1; espeak-ng is not\n"
        "                     thread-safe); up to 4N items in flight, 2N with --reset fork\n"
        "                     (ignored with --isolate none)\n"
        "      --isolate MODE item (default): every item starts from the same engine state (an\n"
        "                     engine that has never spoken), so its audio does not depend on\n"
        "                     other items, -j or --shard; utterance: a fork per utterance (every\n"
        "                     WAV equals the espeak-ng CLI's, more CPU); none: one engine, no\n"
        "                     reset (espeak-ng carries state between utterances, so audio\n"
        "                     depends on the items before it in the same process)\n"
        "      --reset HOW    how --isolate item resets the engine; same bytes either way:\n"
        "                     snapshot (default): long-lived processes copy espeak-ng's saved\n"
        "                     data segment back before each item (checked against a fresh fork\n"
        "                     when they start); fork: a fresh fork per item (~10-20%% more CPU)\n"
        "      --shard I/N    keep only part I of N (by id hash)\n"
        "  -k, --skip-bad     skip bad items (empty or whitespace-only text, text that is not\n"
        "                     UTF-8, a language without a voice, invalid items) instead of\n"
        "                     stopping; each is reported on stderr and counted\n"
        "  -o, --output OUT   write to OUT (appears only when complete) instead of stdout\n"
        "  -q, --quiet        no summary line on stderr\n"
        "  -h, --help         this help\n"
        "  -V, --version      version\n"
        "\n"
        "Example:\n"
        "  s2s-import storycloze val.csv | s2s-synth -j2 --voice en-us | s2s-resample --rate "
        "16000 \\\n"
        "    | s2s-pack -o 'shards/sc-%%06d.tar'\n"
        "  s2s-synth --voices en-us,en-us+f3,en-gb --seed 7 items.jsonl -o speech.tar\n"
        "\n"
        "Progress goes to stderr when it is a terminal; at the end a summary line gives items,\n"
        "skipped bad items and clipped samples.\n"
        "Exit status: 0 ok, 1 bad input data (\"item ID: why\"; nothing partial is left: -o\n"
        "removes its temporary file, stdout gets no end-of-archive marker), 2 usage error,\n"
        "3 I/O or system error, 130 interrupted.\n",
        S2S_SYNTH_TRIM_THRESHOLD);
}

/* ---- main loop ---------------------------------------------------------------------------- */
typedef struct run {
    s2s_writer *out;
    int skip_bad;
    uint64_t written, skipped, clipped;
    s2s_progress *prog;
} run;

/* Handles a finished sample (rc = its synthesis status): writes it, or skips/stops on a bad
 * item. Takes s. Returns 0 to go on, else the error that stops the run. */
static int finish(run *r, s2s_sample *s, int rc, s2s_err *err) {
    if (rc == S2S_EDATA && r->skip_bad) {
        fprintf(stderr, "%s: skipped: %s\n", prog, err->msg);
        r->skipped++;
        s2s_sample_free(s);
        s2s_err_clear(err);
        return 0;
    }
    if (rc) {
        s2s_sample_free(s);
        return rc;
    }
    json_t *cl = json_object_get(json_object_get(s->item, "audio"), "clipped");
    if (json_is_integer(cl)) r->clipped += (uint64_t)json_integer_value(cl);
    rc = s2s_writer_put(r->out, s, err);
    s2s_sample_free(s);
    if (rc) return rc;
    r->written++;
    s2s_progress_update(r->prog, r->written + r->skipped);
    return 0;
}

/* In flight: up to `jobs` items (4 per synthesis process with --isolate item, 2 with --reset
 * fork); ended in input order. */
typedef struct slot {
    s2s_sample *sample;
    s2s_synth_job *job;
} slot;

static int end_slot(run *r, s2s_synth *sy, slot *k, s2s_err *err) {
    s2s_sample *s = k->sample;
    int rc = s2s_synth_end(sy, k->job, s, err);
    k->sample = NULL, k->job = NULL;
    if (rc && interrupted) rc = s2s_err_set(err, S2S_EINTR, "interrupted");
    return finish(r, s, rc, err);
}

int main(int argc, char **argv) {
    /* Every item is spoken by a fresh fork of an engine that has never spoken, so each child
     * would resolve libespeak-ng's lazily bound symbols again (ld.so was ~5% of the CPU time,
     * and the GOT writes cost page faults). Binding everything once at start-up saves ~10% CPU
     * (measured, bench/synth.sh); a flag on our own executable (-z now) does not reach the
     * libraries, the environment variable does, hence one re-exec. */
    if (!getenv("LD_BIND_NOW") && setenv("LD_BIND_NOW", "1", 1) == 0) {
        /* by its own path, not /proc/self/exe: the process keeps its name ("exe" otherwise)
         * for ps, top and pkill */
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n > 0) {
            self[n] = 0;
            execv(self, argv);
        }
        execv("/proc/self/exe", argv);
        unsetenv("LD_BIND_NOW"); /* no /proc: go on, lazily bound */
    }
    /* Audio buffers of ~0.1-1 MB come and go for every item: keep them on the heap, not in
     * fresh mmaps, so each item does not pay page faults for zeroed pages again. */
    mallopt(M_MMAP_THRESHOLD, 32 << 20); /* glibc's maximum */
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
    s2s_synth_opts o;
    s2s_synth_opts_default(&o);
    const char *output = NULL, *shard = NULL, *list_lang = NULL;
    int jobs = 1, skip_bad = 0, quiet = 0, list = 0;
    s2s_err err;
    s2s_err_clear(&err);
    enum { O_VOICES = 256, O_SEED, O_LIST, O_PARTS, O_TRIM, O_NORM, O_NOISO, O_SHARD, O_RESET };
    static const struct option lo[] = {{"voice", required_argument, 0, 'v'},
                                       {"voices", required_argument, 0, O_VOICES},
                                       {"seed", required_argument, 0, O_SEED},
                                       {"list-voices", optional_argument, 0, O_LIST},
                                       {"rate", required_argument, 0, 's'},
                                       {"pitch", required_argument, 0, 'p'},
                                       {"parts", required_argument, 0, O_PARTS},
                                       {"trim", no_argument, 0, O_TRIM},
                                       {"normalize", no_argument, 0, O_NORM},
                                       {"jobs", required_argument, 0, 'j'},
                                       {"isolate", required_argument, 0, O_NOISO},
                                       {"reset", required_argument, 0, O_RESET},
                                       {"shard", required_argument, 0, O_SHARD},
                                       {"skip-bad", no_argument, 0, 'k'},
                                       {"output", required_argument, 0, 'o'},
                                       {"quiet", no_argument, 0, 'q'},
                                       {"help", no_argument, 0, 'h'},
                                       {"version", no_argument, 0, 'V'},
                                       {0, 0, 0, 0}};
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, "v:s:p:j:ko:qhV", lo, NULL)) != -1) {
        switch (c) {
        case 'v':
            o.voice = optarg;
            break;
        case O_VOICES:
            o.voices = optarg;
            break;
        case O_SEED:
            errno = 0;
            o.seed = strtoull(optarg, &end, 10);
            if (errno || *end || !*optarg || optarg[0] == '-') {
                fprintf(stderr, "%s: --seed: not a non-negative integer: %s\n", prog, optarg);
                return 2;
            }
            break;
        case O_LIST:
            list = 1;
            list_lang = optarg;
            break;
        case 's':
        case 'p':
        case 'j': {
            long v = strtol(optarg, &end, 10);
            if (*end || !*optarg) {
                fprintf(stderr, "%s: -%c: not an integer: %s\n", prog, c, optarg);
                return 2;
            }
            if (c == 's')
                o.rate = (int)(v > 100000 ? 100000 : v < -1 ? -1 : v);
            else if (c == 'p')
                o.pitch = (int)(v > 1000 ? 1000 : v < -1 ? -1 : v);
            else if (v < 1 || v > 64) {
                fprintf(stderr, "%s: --jobs must be 1..64\n", prog);
                return 2;
            } else
                jobs = (int)v;
            break;
        }
        case O_PARTS:
            if (strcmp(optarg, "ctx") == 0)
                o.parts = S2S_SYNTH_CTX;
            else if (strcmp(optarg, "candidates") == 0)
                o.parts = S2S_SYNTH_CANDIDATES;
            else if (strcmp(optarg, "ctx,candidates") == 0 || strcmp(optarg, "candidates,ctx") == 0)
                o.parts = S2S_SYNTH_CTX | S2S_SYNTH_CANDIDATES;
            else {
                fprintf(stderr, "%s: --parts must be ctx, candidates or ctx,candidates\n", prog);
                return 2;
            }
            break;
        case O_TRIM:
            o.trim = 1;
            break;
        case O_NORM:
            o.normalize = 1;
            break;
        case O_NOISO:
            if (strcmp(optarg, "none") == 0)
                o.isolate = S2S_SYNTH_ISOLATE_NONE;
            else if (strcmp(optarg, "item") == 0)
                o.isolate = S2S_SYNTH_ISOLATE_ITEM;
            else if (strcmp(optarg, "utterance") == 0)
                o.isolate = S2S_SYNTH_ISOLATE_UTTERANCE;
            else {
                fprintf(stderr, "%s: --isolate must be item, utterance or none\n", prog);
                return 2;
            }
            break;
        case O_RESET:
            if (strcmp(optarg, "snapshot") == 0)
                o.reset = S2S_SYNTH_RESET_SNAPSHOT;
            else if (strcmp(optarg, "fork") == 0)
                o.reset = S2S_SYNTH_RESET_FORK;
            else {
                fprintf(stderr, "%s: --reset must be snapshot or fork\n", prog);
                return 2;
            }
            break;
        case O_SHARD:
            shard = optarg;
            break;
        case 'k':
            skip_bad = 1;
            break;
        case 'o':
            output = optarg;
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
            usage(stderr);
            return 2;
        }
    }
    s2s_part part = {0, 1};
    if (shard && s2s_part_parse(shard, &part, &err) != 0) {
        fprintf(stderr, "%s: --shard: %s\n", prog, err.msg);
        return 2;
    }
    o.jobs = jobs;
    s2s_synth *sy = s2s_synth_new(&o, &err);
    if (!sy) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        return s2s_exit_status(err.code);
    }
    if (list) {
        int rc = s2s_synth_list_voices(sy, stdout, list_lang, &err);
        s2s_synth_free(sy);
        if (!rc && fflush(stdout) != 0) rc = s2s_err_errno(&err, "stdout");
        if (rc) fprintf(stderr, "%s: %s\n", prog, err.msg);
        return s2s_exit_status(rc);
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: blocking reads return EINTR */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    const char **paths = (const char **)(argv + optind);
    size_t n_paths = (size_t)(argc - optind);
    s2s_reader *in = s2s_reader_open(paths, n_paths, S2S_READ_NO_VALIDATE, &err);
    if (!in) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        s2s_synth_free(sy);
        return s2s_exit_status(err.code);
    }
    s2s_reader_set_part(in, &part);
    run r = {0};
    r.skip_bad = skip_bad;
    r.out = s2s_writer_open(output, S2S_FMT_TAR, &err);
    if (!r.out) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        s2s_reader_close(in);
        s2s_synth_free(sy);
        return s2s_exit_status(err.code);
    }
    if (o.isolate == S2S_SYNTH_ISOLATE_NONE) jobs = 1; /* one engine, spoken in order */
    /* Per-item isolation: four items per process in flight, so a process that is ahead of the
     * others (short items after a long one elsewhere) has work queued while this process waits
     * to end the oldest item in order (the library reads every process's audio as it comes). */
    if (o.isolate == S2S_SYNTH_ISOLATE_ITEM) /* (--reset fork: each in flight is a process) */
        jobs *= o.reset == S2S_SYNTH_RESET_SNAPSHOT ? 4 : 2;
    slot *ring = calloc((size_t)jobs, sizeof *ring);
    int rc = ring ? 0 : s2s_err_set(&err, S2S_ENOMEM, "out of memory");
    r.prog = s2s_progress_new(prog, "items", 0);
    uint64_t seq = 0; /* items begun */
    while (!rc) {
        if (interrupted) {
            rc = s2s_err_set(&err, S2S_EINTR, "interrupted");
            break;
        }
        s2s_sample *s = NULL;
        int nr = s2s_reader_next(in, &s, &err);
        if (nr < 0) {
            /* A bad JSON line is a bad item: the reader goes on at the next line. A broken tar
             * stream is not resumable. */
            if (skip_bad && (nr == S2S_EDATA || nr == S2S_EFORMAT) &&
                s2s_reader_format(in) == S2S_FMT_JSONL) {
                fprintf(stderr, "%s: skipped: %s\n", prog, err.msg);
                r.skipped++;
                s2s_err_clear(&err);
                continue;
            }
            rc = nr;
            break;
        }
        if (nr == 0) break;
        if (s2s_item_validate(s->item, &err) != 0) {
            rc = finish(&r, s, S2S_EDATA, &err);
            continue;
        }
        /* The oldest item's slot is the one to reuse: end it first (keeps input order). */
        slot *k = &ring[seq % (uint64_t)jobs];
        if (k->job && (rc = end_slot(&r, sy, k, &err)) != 0) {
            s2s_sample_free(s);
            break;
        }
        s2s_synth_job *job = s2s_synth_begin(sy, s->item, &err);
        if (!job) {
            if (interrupted) s2s_err_set(&err, S2S_EINTR, "interrupted");
            rc = finish(&r, s, err.code ? err.code : S2S_ENOMEM, &err);
            continue;
        }
        k->sample = s, k->job = job;
        seq++;
    }
    /* Items still in flight, oldest first. */
    for (int i = 0; ring && i < jobs; i++) {
        slot *k = &ring[(seq + (uint64_t)i) % (uint64_t)jobs];
        if (!k->job) continue;
        if (!rc)
            rc = end_slot(&r, sy, k, &err);
        else {
            s2s_synth_job_free(k->job);
            s2s_sample_free(k->sample);
            k->job = NULL, k->sample = NULL;
        }
    }
    free(ring);
    s2s_progress_end(r.prog, r.written + r.skipped);
    s2s_reader_close(in);
    if (!rc)
        rc = s2s_writer_close(r.out, &err);
    else
        s2s_writer_abort(r.out);
    uint64_t n_snap = 0, n_fork = 0;
    s2s_synth_reset_counts(sy, &n_snap, &n_fork);
    s2s_synth_free(sy);
    if (rc) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        if (r.skipped)
            fprintf(stderr, "%s: %" PRIu64 " bad items skipped before that\n", prog, r.skipped);
        return s2s_exit_status(rc);
    }
    if (!quiet)
        fprintf(stderr,
                "%s: %" PRIu64 " items spoken, %" PRIu64 " bad items skipped, %" PRIu64
                " clipped samples\n",
                prog, r.written, r.skipped, r.clipped);
    if (!quiet && o.isolate == S2S_SYNTH_ISOLATE_ITEM)
        fprintf(stderr,
                "%s: engine reset per item: %" PRIu64 " by restoring a snapshot, %" PRIu64
                " by a fresh fork\n",
                prog, n_snap, n_fork);
    return 0;
}

/* s2s-resample — every audio member of a sample stream to one rate, mono, sample format and
 * container; optionally attaches audio files from a directory to items by id. */
#include <dirent.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavutil/log.h>

#include "s2s/audio.h"
#include "s2s/err.h"
#include "s2s/item.h"
#include "s2s/resample.h"
#include "s2s/sample.h"
#include "s2s/util.h"

static const char *prog = "s2s-resample";
static volatile sig_atomic_t interrupted;

static void on_signal(int sig) {
    (void)sig;
    interrupted = 1;
}

static void usage(FILE *f) {
    fprintf(
        f,
        "Usage: s2s-resample --rate R [OPTIONS] [INPUT...]\n"
        "\n"
        "Reads a sample stream (tar stream, shards or JSON lines of items; stdin when no INPUT)\n"
        "and writes a tar stream on stdout in which every audio member (suffix .wav .flac .mp3\n"
        ".ogg .opus .m4a .aac .aiff ...) is decoded (libsndfile for WAV/FLAC, libavcodec for the\n"
        "rest), mixed down to mono, resampled to R Hz and stored as the chosen sample format and\n"
        "container. The member's extension follows the container (ID.ctx.mp3 -> ID.ctx.wav).\n"
        "Members already mono at R Hz in the target format and container pass through\n"
        "byte-for-byte. ID.json's \"audio\" gets rate, format (the container, \"wav\" or\n"
        "\"flac\", as s2s-synth writes it), sample_format, channels (1), resampler {engine,\n"
        "quality} and, per member stem, samples and durations; other fields are kept. A\n"
        "provenance record names the parameters.\n"
        "\n"
        "Options:\n"
        "  -r, --rate R          output sample rate in Hz (required; 16000 or 24000 for most\n"
        "                        speech models)\n"
        "  -e, --engine E        swr: libswresample with soxr (default; faster than sox at\n"
        "                        sox's default quality, see docs/resample.md)\n"
        "                        src: libsamplerate\n"
        "  -Q, --quality Q       best | medium (default) | fastest. swr: soxr precision 28 /\n"
        "                        24 / 20 bits (sox's default -h is 20); src: SINC_BEST /\n"
        "                        SINC_MEDIUM / SINC_FASTEST (slow: 5-25x sox's time)\n"
        "  -f, --format F        s16 (default) | f32 (float WAV only)\n"
        "  -c, --container C     wav (default) | flac (16-bit)\n"
        "  -a, --attach DIR      attach audio files DIR/ID.EXT (any format above) to the items\n"
        "                        with that id, as member --member, replacing what was there\n"
        "                        (e.g. recorded speech instead of synthesized context). Items\n"
        "                        without a file are kept as they are and counted on stderr.\n"
        "  -m, --member NAME     member name for --attach: ctx (default), c0, c1, ...\n"
        "  -s, --shard I/N       keep only part I of N (by id hash)\n"
        "  -k, --skip-bad        drop samples with bad audio instead of stopping; each one is\n"
        "                        reported on stderr and counted\n"
        "  -o, --output OUT      write to OUT (appears only when complete) instead of stdout\n"
        "  -q, --quiet           no summary line on stderr\n"
        "  -h, --help            this help\n"
        "  -V, --version         version\n"
        "\n"
        "Bad audio (corrupt or truncated, unsupported codec, zero length, NaN samples) stops the\n"
        "run with \"sample ID MEMBER: reason\" and no output is completed (the tar stream has no\n"
        "end marker, a file given with -o is not created), unless --skip-bad.\n"
        "\n"
        "Examples:\n"
        "  s2s-import storycloze val.csv | s2s-synth --voice en-us | s2s-resample --rate 16000 \\\n"
        "    | s2s-tokenize --codebook units-100.cb | s2s-pack -o 'shards/s-%%06d.tar'\n"
        "  s2s-resample --rate 24000 --format f32 < speech.tar > speech24k.tar\n"
        "  s2s-resample --rate 16000 --attach recordings/ --member ctx items.jsonl > mixed.tar\n"
        "\n"
        "Exit status: 0 ok, 1 bad input data (message says sample and member), 2 usage error,\n"
        "3 I/O or system error, 130 interrupted.\n");
}

typedef struct opts {
    int rate, engine, quality, format, container;
    const char *attach, *member;
    char **files; /* sorted names in the attach directory */
    size_t n_files;
} opts;

/* Suffix stem: "ctx.mp3" -> length of "ctx". */
static size_t stem_len(const char *suffix) {
    const char *dot = strrchr(suffix, '.');
    return dot ? (size_t)(dot - suffix) : strlen(suffix);
}

/* Decodes, converts and encodes one audio blob block by block (memory: the input and output
 * files plus fixed-size blocks). *out NULL + return 0 means "already right: pass through". */
static int convert(const opts *o, const unsigned char *data, size_t size, const char *name,
                   int allow_passthrough, unsigned char **out, size_t *outsize, size_t *n_out,
                   s2s_err *err) {
    enum { BLOCK = 32768 };
    static float block[BLOCK];
    s2s_audio info;
    *out = NULL;
    *outsize = 0;
    *n_out = 0;
    s2s_audio_reader *rd = s2s_audio_reader_open(data, size, name, &info, err);
    if (!rd) return err->code;
    int pass = allow_passthrough && info.rate == o->rate && info.src_channels == 1 &&
               info.src_container == o->container && info.src_format == o->format;
    s2s_resampler *rs = NULL;
    s2s_audio_writer *w = NULL;
    if (!pass) {
        rs = s2s_resampler_new(o->engine, o->quality, info.rate, o->rate, err);
        w = rs ? s2s_audio_writer_new(o->rate, o->container, o->format, err) : NULL;
    }
    int rc = pass || w ? 0 : err->code;
    const float *y;
    size_t ny;
    long got;
    /* Pass-through members are still decoded to the end: truncation and NaN are caught. */
    while (rc == 0 && (got = s2s_audio_reader_read(rd, block, BLOCK, err)) != 0) {
        if (got < 0)
            rc = (int)got;
        else if (!pass && (rc = s2s_resampler_process(rs, block, (size_t)got, &y, &ny, err)) == 0)
            rc = s2s_audio_writer_write(w, y, ny, err);
    }
    if (rc == 0 && !pass && (rc = s2s_resampler_flush(rs, &y, &ny, err)) == 0)
        rc = s2s_audio_writer_write(w, y, ny, err);
    if (rc == 0 && !pass &&
        s2s_resample_out_len(s2s_audio_reader_count(rd), info.rate, o->rate) == 0)
        rc = s2s_err_set(err, S2S_EDATA, "too short: no samples left at %d Hz", o->rate);
    *n_out = pass ? s2s_audio_reader_count(rd)
                  : s2s_resample_out_len(s2s_audio_reader_count(rd), info.rate, o->rate);
    s2s_audio_reader_close(rd);
    s2s_resampler_free(rs);
    if (rc == 0 && w) return s2s_audio_writer_finish(w, out, outsize, err);
    s2s_audio_writer_abort(w);
    return rc;
}

/* Finds DIR/ID.* among the attach files: index, -1 if none, -2 (err set) if several. */
static int find_attach(const opts *o, const char *id, s2s_err *err) {
    size_t n = strlen(id);
    int found = -1;
    for (size_t i = 0; i < o->n_files; i++) {
        const char *f = o->files[i];
        if (strncmp(f, id, n) != 0 || f[n] != '.' || strchr(f + n + 1, '.')) continue;
        if (found >= 0) {
            s2s_err_set(err, S2S_EDATA, "several files for this id in %s: %s and %s", o->attach,
                        o->files[found], f);
            return -2;
        }
        found = (int)i;
    }
    return found;
}

static int do_attach(const opts *o, s2s_sample *s, int *attached, s2s_err *err) {
    *attached = 0;
    int k = find_attach(o, s->key, err);
    if (k == -2) return s2s_err_prefix(err, "sample %s %s: ", s->key, o->member);
    if (k < 0) return 0;
    size_t plen = strlen(o->attach) + strlen(o->files[k]) + 2;
    char *path = malloc(plen);
    if (!path) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    snprintf(path, plen, "%s/%s", o->attach, o->files[k]);
    unsigned char *data = NULL, *enc = NULL;
    size_t len = 0, enclen = 0, n;
    int rc = s2s_read_file(path, &data, &len, err);
    if (rc == 0) rc = convert(o, data, len, path, 0, &enc, &enclen, &n, err);
    if (rc < 0) {
        s2s_err_prefix(err, "sample %s %s: %s: ", s->key, o->member, path);
        free(data);
        free(path);
        return rc;
    }
    free(data);
    free(path);
    /* Replace every audio member with this stem ("ctx.wav", "ctx.flac", ...). */
    size_t ml = strlen(o->member);
    for (size_t i = 0; i < s->n_members;) {
        const char *suf = s->members[i].suffix;
        if (strncmp(suf, o->member, ml) == 0 && suf[ml] == '.' && !strchr(suf + ml + 1, '.') &&
            s2s_audio_is_audio_name(suf)) {
            char *dup = strdup(suf);
            if (!dup) {
                free(enc);
                return s2s_err_set(err, S2S_ENOMEM, "out of memory");
            }
            s2s_sample_remove(s, dup);
            free(dup);
            continue;
        }
        i++;
    }
    char suffix[256];
    snprintf(suffix, sizeof suffix, "%s.%s", o->member, s2s_audio_container_ext(o->container));
    rc = s2s_sample_put(s, suffix, enc, enclen, err);
    if (rc < 0) return rc;
    *attached = 1;
    return 0;
}

/* audio[key][stem] = v (audio[key] created if absent). */
static int set_per_member(json_t *audio, const char *key, const char *stem, json_t *v) {
    json_t *o = json_object_get(audio, key);
    if (!json_is_object(o)) {
        o = json_object();
        if (!o || json_object_set_new(audio, key, o) < 0) {
            json_decref(v);
            return -1;
        }
    }
    return json_object_set_new(o, stem, v);
}

/* Converts every audio member of s in place and records the result in ID.json. */
static int do_sample(const opts *o, s2s_sample *s, int *attached, s2s_err *err) {
    int rc;
    if (o->attach && (rc = do_attach(o, s, attached, err)) < 0) return rc;
    const char *ext = s2s_audio_container_ext(o->container);
    json_t *audio = NULL;
    int created = 0, n_audio = 0;
    if (s->item) {
        audio = json_object_get(s->item, "audio");
        if (!json_is_object(audio)) {
            created = 1;
            audio = json_object();
            if (!audio || json_object_set_new(s->item, "audio", audio) < 0)
                return s2s_err_set(err, S2S_ENOMEM, "out of memory");
        }
    }
    for (size_t i = 0; i < s->n_members; i++) {
        s2s_member *m = &s->members[i];
        const char *dot = strchr(m->suffix, '.');
        if (!dot || strchr(dot + 1, '.') || !s2s_audio_is_audio_name(m->suffix)) continue;
        unsigned char *enc;
        size_t enclen, n;
        rc = convert(o, m->data, m->size, m->suffix, 1, &enc, &enclen, &n, err);
        if (rc < 0) return s2s_err_prefix(err, "sample %s %s: ", s->key, m->suffix);
        n_audio++;
        size_t sl = stem_len(m->suffix);
        char stem[256];
        snprintf(stem, sizeof stem, "%.*s", (int)(sl < 255 ? sl : 255), m->suffix);
        /* Per member: samples and seconds at the new rate (s2s-synth's "samples"/"durations"). */
        if (audio &&
            (set_per_member(audio, "samples", stem, json_integer((json_int_t)n)) < 0 ||
             set_per_member(audio, "durations", stem, json_real((double)n / o->rate)) < 0)) {
            free(enc);
            return s2s_err_set(err, S2S_ENOMEM, "out of memory");
        }
        if (!enc) continue; /* already right: untouched */
        char *suffix = malloc(sl + strlen(ext) + 2);
        if (!suffix) {
            free(enc);
            return s2s_err_set(err, S2S_ENOMEM, "out of memory");
        }
        memcpy(suffix, m->suffix, sl);
        snprintf(suffix + sl, strlen(ext) + 2, ".%s", ext);
        if (strcmp(suffix, m->suffix) != 0 && s2s_sample_get(s, suffix)) {
            s2s_err_set(err, S2S_EDATA, "sample %s %s: becomes %s, which is already present",
                        s->key, m->suffix, suffix);
            free(suffix);
            free(enc);
            return S2S_EDATA;
        }
        free(m->suffix);
        m->suffix = suffix;
        free(m->data);
        m->data = enc;
        m->size = enclen;
    }
    if (!audio) return 0;
    if (n_audio == 0 && created) json_object_del(s->item, "audio"); /* nothing to describe */
    if (n_audio == 0) audio = NULL;
    /* "format" is the container, as s2s-synth writes it; "engine" stays the TTS engine's. */
    json_t *rsm = !audio ? NULL
                         : json_pack("{s:s, s:s}", "engine", s2s_resample_engine_name(o->engine),
                                     "quality", s2s_resample_quality_name(o->quality));
    if (audio && (!rsm || json_object_set_new(audio, "rate", json_integer(o->rate)) < 0 ||
                  json_object_set_new(audio, "format", json_string(ext)) < 0 ||
                  json_object_set_new(audio, "sample_format",
                                      json_string(s2s_audio_format_name(o->format))) < 0 ||
                  json_object_set_new(audio, "channels", json_integer(1)) < 0 ||
                  json_object_set_new(audio, "resampler", rsm) < 0))
        return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    json_t *params = json_pack("{s:i, s:s, s:s, s:s, s:s}", "rate", o->rate, "engine",
                               s2s_resample_engine_name(o->engine), "quality",
                               s2s_resample_quality_name(o->quality), "sample_format",
                               s2s_audio_format_name(o->format), "container", ext);
    if (!params) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    if (*attached) json_object_set_new(params, "attached", json_string(o->member));
    return s2s_item_add_provenance(s->item, prog, params, err);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int list_dir(opts *o, s2s_err *err) {
    DIR *d = opendir(o->attach);
    if (!d) return s2s_err_errno(err, "--attach %s", o->attach);
    struct dirent *e;
    size_t cap = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !s2s_audio_is_audio_name(e->d_name) || !strchr(e->d_name, '.'))
            continue;
        if (o->n_files == cap) {
            cap = cap ? cap * 2 : 64;
            char **p = realloc(o->files, cap * sizeof *p);
            if (!p) {
                closedir(d);
                return s2s_err_set(err, S2S_ENOMEM, "out of memory");
            }
            o->files = p;
        }
        if (!(o->files[o->n_files] = strdup(e->d_name))) {
            closedir(d);
            return s2s_err_set(err, S2S_ENOMEM, "out of memory");
        }
        o->n_files++;
    }
    closedir(d);
    if (o->n_files) qsort(o->files, o->n_files, sizeof *o->files, cmp_str);
    return 0;
}

static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "%s: ", prog);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry '%s --help'.\n", prog);
    return 2;
}

int main(int argc, char **argv) {
    static const struct option longopts[] = {
        {"rate", required_argument, 0, 'r'},      {"engine", required_argument, 0, 'e'},
        {"quality", required_argument, 0, 'Q'},   {"format", required_argument, 0, 'f'},
        {"container", required_argument, 0, 'c'}, {"attach", required_argument, 0, 'a'},
        {"member", required_argument, 0, 'm'},    {"shard", required_argument, 0, 's'},
        {"skip-bad", no_argument, 0, 'k'},        {"output", required_argument, 0, 'o'},
        {"quiet", no_argument, 0, 'q'},           {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'},         {0, 0, 0, 0}};
    opts o = {0,
              S2S_RS_DEFAULT_ENGINE,
              S2S_RS_DEFAULT_QUALITY,
              S2S_AUDIO_S16,
              S2S_AUDIO_WAV,
              NULL,
              "ctx",
              NULL,
              0};
    const char *out = NULL;
    int skip_bad = 0, quiet = 0, opt;
    s2s_part part = {0, 1};
    s2s_err err;
    s2s_err_clear(&err);
    while ((opt = getopt_long(argc, argv, "r:e:Q:f:c:a:m:s:ko:qhV", longopts, NULL)) != -1) {
        char *end;
        switch (opt) {
        case 'r': {
            long v = strtol(optarg, &end, 10);
            if (*end || end == optarg || v < 1 || v > 1000000)
                return usage_error("--rate: '%s' is not a rate in Hz (1..1000000)", optarg);
            o.rate = (int)v;
            break;
        }
        case 'e':
            if ((o.engine = s2s_resample_parse_engine(optarg)) < 0)
                return usage_error("--engine: '%s' is not swr or src", optarg);
            break;
        case 'Q':
            if ((o.quality = s2s_resample_parse_quality(optarg)) < 0)
                return usage_error("--quality: '%s' is not best, medium or fastest", optarg);
            break;
        case 'f':
            if (strcmp(optarg, "s16") == 0)
                o.format = S2S_AUDIO_S16;
            else if (strcmp(optarg, "f32") == 0)
                o.format = S2S_AUDIO_F32;
            else
                return usage_error("--format: '%s' is not s16 or f32", optarg);
            break;
        case 'c':
            if (strcmp(optarg, "wav") == 0)
                o.container = S2S_AUDIO_WAV;
            else if (strcmp(optarg, "flac") == 0)
                o.container = S2S_AUDIO_FLAC;
            else
                return usage_error("--container: '%s' is not wav or flac", optarg);
            break;
        case 'a':
            o.attach = optarg;
            break;
        case 'm':
            if (!s2s_id_valid(optarg))
                return usage_error("--member: '%s' is not a member name (ctx, c0, ...)", optarg);
            o.member = optarg;
            break;
        case 's':
            if (s2s_part_parse(optarg, &part, &err) < 0) return usage_error("--shard: %s", err.msg);
            break;
        case 'k':
            skip_bad = 1;
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
    if (!o.rate) return usage_error("%s", "--rate R is required");
    if (o.container == S2S_AUDIO_FLAC && o.format == S2S_AUDIO_F32)
        return usage_error("%s", "FLAC holds 16-bit samples: use --format s16 or --container wav");
    /* Our messages say what went wrong; libav's own warnings would only repeat it. */
    av_log_set_level(AV_LOG_QUIET);
    if (o.attach && list_dir(&o, &err) < 0) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        for (size_t i = 0; i < o.n_files; i++)
            free(o.files[i]);
        free(o.files);
        return s2s_exit_status(err.code);
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    s2s_reader *r =
        s2s_reader_open((const char *const *)argv + optind, (size_t)(argc - optind), 0, &err);
    s2s_writer *w = r ? s2s_writer_open(out, S2S_FMT_TAR, &err) : NULL;
    int rc = 0;
    if (!w) rc = err.code ? err.code : S2S_EIO;
    if (r) s2s_reader_set_part(r, &part);
    uint64_t done = 0, bad = 0, attached = 0;
    s2s_progress *pg = rc ? NULL : s2s_progress_new(prog, "samples", 0);
    while (rc == 0) {
        s2s_sample *s = NULL;
        int got = s2s_reader_next(r, &s, &err);
        if (got < 0) {
            rc = got;
            break;
        }
        if (got == 0) break;
        if (interrupted) {
            s2s_sample_free(s);
            rc = s2s_err_set(&err, S2S_EINTR, "interrupted");
            break;
        }
        int att = 0;
        int src = do_sample(&o, s, &att, &err);
        if (src < 0 && skip_bad && (src == S2S_EDATA || src == S2S_EFORMAT || src == S2S_EUNSUP)) {
            fprintf(stderr, "%s: skipped: %s\n", prog, err.msg);
            bad++;
            s2s_sample_free(s);
            continue;
        }
        if (src == 0) src = s2s_writer_put(w, s, &err);
        s2s_sample_free(s);
        if (src < 0) {
            rc = src;
            break;
        }
        attached += (uint64_t)att;
        s2s_progress_update(pg, ++done);
    }
    s2s_progress_end(pg, done);
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        s2s_writer_abort(w);
    } else if ((rc = s2s_writer_close(w, &err)) < 0) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
    } else if (!quiet || bad || (o.attach && attached < done)) {
        fprintf(stderr, "%s: %" PRIu64 " samples written at %d Hz", prog, done, o.rate);
        if (o.attach)
            fprintf(stderr, ", %s attached from %s to %" PRIu64 " (%" PRIu64 " without a file)",
                    o.member, o.attach, attached, done - attached);
        if (bad) fprintf(stderr, ", %" PRIu64 " bad samples skipped (--skip-bad)", bad);
        fprintf(stderr, "\n");
    }
    s2s_reader_close(r);
    for (size_t i = 0; i < o.n_files; i++)
        free(o.files[i]);
    free(o.files);
    return rc < 0 ? s2s_exit_status(rc) : 0;
}

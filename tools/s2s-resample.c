/* s2s-resample — every audio member of a sample stream to one rate, mono, sample format and
 * container; optionally attaches audio files from a directory to items by id. */
#include <dirent.h>
#include <getopt.h>
#include <inttypes.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "s2s/audio.h"
#include "s2s/err.h"
#include "s2s/item.h"
#include "s2s/resample.h"
#include "s2s/sample.h"
#include "s2s/tar.h"
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
        "  -e, --engine E        s2s (default): our own FFT resampler, sox's passband (95%%\n"
        "                        of Nyquist), >= 120 dB stop band, ~135 dB SNR on float\n"
        "                        output, several times faster than sox; same bytes on every\n"
        "                        x86-64 CPU. Its only quality is medium: best and fastest,\n"
        "                        and rate pairs whose ratio has a prime factor above 7 (a\n"
        "                        note on stderr says so), run soxr; ID.json's\n"
        "                        audio.resampler.engine names the engine that ran.\n"
        "                        soxr: libsoxr, the library of sox's rate effect (the\n"
        "                        default before 0.3.0); swr is accepted for it (its name\n"
        "                        before 0.2.0, when it went through libswresample)\n"
        "                        src: libsamplerate\n"
        "  -Q, --quality Q       best | medium (default) | fastest. soxr: precision 28 / 20 /\n"
        "                        16 bits, as sox -v / -h (sox's default) / -m; best beats\n"
        "                        sox -h on every figure. src: SINC_BEST / SINC_MEDIUM /\n"
        "                        SINC_FASTEST (slow: 5-25x sox's time). See docs/resample.md\n"
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
        "Memory stays flat whatever the length of a member: audio members over 8 MB (other\n"
        "formats than WAV/FLAC: 1 MB) are streamed through temporary files in $TMPDIR (about\n"
        "30 MB peak RSS for a 1-hour member; the output bytes are the same either way).\n"
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

/* ---- members too large for memory ----------------------------------------------------------
 * An audio member larger than SPILL bytes (compressed formats: SPILL_PACKED, since they expand
 * on decoding) is never held in memory: it is copied from the input tar to a temporary file,
 * converted from that file to another, and copied from there to the output tar. Memory then
 * stays flat (a few MB) whatever the length of the audio. The bytes are the same either way. */
enum { SPILL = 8 << 20, SPILL_PACKED = 1 << 20, COPY_BLOCK = 1 << 16 };

typedef struct spool {
    char *suffix; /* the member it holds (its s2s_member has no data) */
    FILE *f;
    size_t size;
} spool;

typedef struct spools {
    spool *v;
    size_t n, cap;
} spools;

static spool *spool_find(const spools *sp, const char *suffix) {
    for (size_t i = 0; sp && i < sp->n; i++)
        if (strcmp(sp->v[i].suffix, suffix) == 0) return &sp->v[i];
    return NULL;
}

static void spool_remove(spools *sp, const char *suffix) {
    spool *x = spool_find(sp, suffix);
    if (!x) return;
    free(x->suffix);
    if (x->f) fclose(x->f);
    *x = sp->v[--sp->n];
}

static void spools_clear(spools *sp) {
    while (sp->n)
        spool_remove(sp, sp->v[0].suffix);
}

/* Takes f (closed on failure). */
static int spool_add(spools *sp, const char *suffix, FILE *f, size_t size, s2s_err *err) {
    if (sp->n == sp->cap) {
        size_t cap = sp->cap ? sp->cap * 2 : 4;
        spool *v = realloc(sp->v, cap * sizeof *v);
        if (!v) {
            fclose(f);
            return s2s_err_set(err, S2S_ENOMEM, "out of memory");
        }
        sp->v = v;
        sp->cap = cap;
    }
    char *dup = strdup(suffix);
    if (!dup) {
        fclose(f);
        return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    }
    /* field by field: cppcheck does not follow dup into a compound literal (a false leak) */
    sp->v[sp->n].suffix = dup;
    sp->v[sp->n].f = f;
    sp->v[sp->n].size = size;
    sp->n++;
    return 0;
}

/* An anonymous temporary file in $TMPDIR (else /tmp): created, unlinked at once, so it goes
 * away with the process whatever happens (tmpfile() ignores TMPDIR). */
static FILE *spool_file(s2s_err *err) {
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir) dir = "/tmp";
    size_t n = strlen(dir) + 32;
    char *path = malloc(n);
    if (!path) {
        s2s_err_set(err, S2S_ENOMEM, "out of memory");
        return NULL;
    }
    snprintf(path, n, "%s/s2s-resample-XXXXXX", dir);
    int fd = mkstemp(path);
    FILE *f = NULL;
    if (fd < 0) {
        s2s_err_errno(err, "cannot create a temporary file in %s for a large member", dir);
    } else {
        unlink(path);
        if (!(f = fdopen(fd, "w+b"))) {
            s2s_err_errno(err, "fdopen");
            close(fd);
        }
    }
    free(path);
    return f;
}

/* Members above this size are spooled to a file. S2S_RESAMPLE_SPILL=BYTES overrides both
 * limits (tests compare the two paths on the same input). */
static size_t spill_limit(const char *suffix) {
    const char *env = getenv("S2S_RESAMPLE_SPILL");
    if (env && *env) return (size_t)strtoull(env, NULL, 10);
    const char *dot = strrchr(suffix, '.');
    const char *e = dot ? dot + 1 : suffix;
    return strcasecmp(e, "wav") == 0 || strcasecmp(e, "wave") == 0 || strcasecmp(e, "flac") == 0
               ? SPILL
               : SPILL_PACKED;
}

/* Suffix stem: "ctx.mp3" -> length of "ctx". */
static size_t stem_len(const char *suffix) {
    const char *dot = strrchr(suffix, '.');
    return dot ? (size_t)(dot - suffix) : strlen(suffix);
}

/* ---- resampler handles, kept across members ------------------------------------------------
 * One handle per input rate (a stream rarely has more than one or two), reset between members:
 * the s2s engine then designs its filter and FFT tables once per run instead of once per member.
 * A reset handle gives the same bytes as a new one. */
enum { RS_CACHE = 8 };
static struct {
    int in_rate;
    s2s_resampler *r;
} rs_cache[RS_CACHE];
static size_t rs_cache_n;
static unsigned used_mask; /* engines that ran for the current sample (bit per engine) */

static s2s_resampler *get_resampler(const opts *o, int in_rate, s2s_err *err) {
    for (size_t i = 0; i < rs_cache_n; i++)
        if (rs_cache[i].in_rate == in_rate) {
            if (s2s_resampler_reset(rs_cache[i].r, err) == 0) return rs_cache[i].r;
            s2s_resampler_free(rs_cache[i].r); /* half reset: never used again */
            rs_cache[i] = rs_cache[--rs_cache_n];
            return NULL;
        }
    s2s_resampler *r = s2s_resampler_new(o->engine, o->quality, in_rate, o->rate, err);
    if (!r) return NULL;
    /* S2S_RESAMPLE_KERNEL=0|1|2 forces the s2s engine's portable / AVX2 / AVX-512 kernel (tests
     * check that all give the same bytes); the default is the best the CPU runs. */
    const char *kern = getenv("S2S_RESAMPLE_KERNEL");
    if (kern && *kern && s2s_resampler_set_impl(r, atoi(kern)) < 0) {
        s2s_resampler_free(r);
        s2s_err_set(err, S2S_EUNSUP, "S2S_RESAMPLE_KERNEL=%s: no such kernel on this CPU", kern);
        return NULL;
    }
    const char *note = s2s_resampler_note(r);
    if (note) fprintf(stderr, "%s: note: %s\n", prog, note); /* once per rate pair */
    if (rs_cache_n == RS_CACHE) {                            /* full: drop the oldest */
        s2s_resampler_free(rs_cache[0].r);
        memmove(rs_cache, rs_cache + 1, (RS_CACHE - 1) * sizeof rs_cache[0]);
        rs_cache_n--;
    }
    rs_cache[rs_cache_n].in_rate = in_rate;
    rs_cache[rs_cache_n].r = r;
    rs_cache_n++;
    return r;
}

static void free_resamplers(void) {
    for (size_t i = 0; i < rs_cache_n; i++)
        s2s_resampler_free(rs_cache[i].r);
    rs_cache_n = 0;
}

/* "s2s", "soxr", ... for the engines that ran (several: joined with '+'); requested if none. */
static const char *used_name(const opts *o) {
    static char buf[64];
    size_t len = 0;
    buf[0] = 0;
    for (int e = 0; e < 3; e++)
        if (used_mask & (1u << e))
            len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%s", len ? "+" : "",
                                    s2s_resample_engine_name(e));
    return buf[0] ? buf : s2s_resample_engine_name(o->engine);
}

/* Decodes, converts and encodes one audio file block by block. Input: data[0..size-1], or the
 * file in_fd (>= 0) of that size. Output: a malloc'd *out, or with out_fd >= 0 that file (then
 * *out stays NULL). *passed = 1 means "already right: pass through" (nothing written). Memory:
 * fixed-size blocks plus whatever input and output are held in memory. */
static int convert(const opts *o, const unsigned char *data, size_t size, int in_fd,
                   const char *name, int allow_passthrough, int out_fd, unsigned char **out,
                   size_t *outsize, size_t *n_out, int *passed, s2s_err *err) {
    enum { BLOCK = 32768 };
    static float block[BLOCK];
    s2s_audio info;
    *out = NULL;
    *outsize = 0;
    *n_out = 0;
    *passed = 0;
    s2s_audio_reader *rd = in_fd >= 0 ? s2s_audio_reader_open_fd(in_fd, size, name, &info, err)
                                      : s2s_audio_reader_open(data, size, name, &info, err);
    if (!rd) return err->code;
    int pass = allow_passthrough && info.rate == o->rate && info.src_channels == 1 &&
               info.src_container == o->container && info.src_format == o->format;
    s2s_resampler *rs = NULL;
    s2s_audio_writer *w = NULL;
    if (!pass) {
        rs = get_resampler(o, info.rate, err);
        if (rs) used_mask |= 1u << s2s_resampler_engine(rs);
        w = !rs           ? NULL
            : out_fd >= 0 ? s2s_audio_writer_new_fd(out_fd, o->rate, o->container, o->format, err)
                          : s2s_audio_writer_new(o->rate, o->container, o->format, err);
    }
    int rc = pass || w ? 0 : err->code;
    /* 16-bit mono WAV in: its output length is known, so the output is allocated once. */
    if (rc == 0 && w && in_fd < 0 && info.src_format == S2S_AUDIO_S16 && info.src_channels == 1)
        rc = s2s_audio_writer_reserve(w, s2s_resample_out_len(size / 2, info.rate, o->rate) + 64,
                                      err);
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
    *passed = pass;
    s2s_audio_reader_close(rd);
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

static int do_attach(const opts *o, s2s_sample *s, spools *sp, int *attached, s2s_err *err) {
    *attached = 0;
    int k = find_attach(o, s->key, err);
    if (k == -2) return s2s_err_prefix(err, "sample %s %s: ", s->key, o->member);
    if (k < 0) return 0;
    size_t plen = strlen(o->attach) + strlen(o->files[k]) + 2;
    char *path = malloc(plen);
    if (!path) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    snprintf(path, plen, "%s/%s", o->attach, o->files[k]);
    /* Read from the file (nothing held in memory); large results go to a spool file. */
    unsigned char *enc = NULL;
    size_t enclen = 0, n;
    int passed, rc = 0;
    FILE *in = fopen(path, "rb"), *out = NULL;
    long len = -1;
    if (!in)
        rc = s2s_err_errno(err, "cannot open");
    else if (fseek(in, 0, SEEK_END) != 0 || (len = ftell(in)) < 0)
        rc = s2s_err_errno(err, "cannot read");
    if (rc == 0 && (size_t)len > spill_limit(path) && !(out = spool_file(err))) rc = err->code;
    if (rc == 0)
        rc = convert(o, NULL, (size_t)len, fileno(in), path, 0, out ? fileno(out) : -1, &enc,
                     &enclen, &n, &passed, err);
    if (in) fclose(in);
    if (rc < 0) {
        s2s_err_prefix(err, "sample %s %s: %s: ", s->key, o->member, path);
        if (out) fclose(out);
        free(path);
        return rc;
    }
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
                if (out) fclose(out);
                return s2s_err_set(err, S2S_ENOMEM, "out of memory");
            }
            spool_remove(sp, dup);
            s2s_sample_remove(s, dup);
            free(dup);
            continue;
        }
        i++;
    }
    char suffix[256];
    snprintf(suffix, sizeof suffix, "%s.%s", o->member, s2s_audio_container_ext(o->container));
    if (out) { /* the member's bytes live in the spool; the member itself stays empty */
        if ((rc = spool_add(sp, suffix, out, enclen, err)) < 0) return rc;
        if (!(enc = malloc(1))) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
        enclen = 0;
    }
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

/* Converts every audio member of s in place and records the result in ID.json. Members held in
 * spool files (sp) are converted from file to file. */
static int do_sample(const opts *o, s2s_sample *s, spools *sp, int *attached, s2s_err *err) {
    int rc;
    used_mask = 0;
    if (o->attach && (rc = do_attach(o, s, sp, attached, err)) < 0) return rc;
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
        int passed;
        spool *in = spool_find(sp, m->suffix);
        FILE *out = NULL;
        if (in && !(out = spool_file(err)))
            return s2s_err_prefix(err, "sample %s %s: ", s->key, m->suffix);
        /* cppcheck-suppress nullPointerRedundantCheck ; out is set whenever in is */
        rc = in ? convert(o, NULL, in->size, fileno(in->f), m->suffix, 1, fileno(out), &enc,
                          &enclen, &n, &passed, err)
                : convert(o, m->data, m->size, -1, m->suffix, 1, -1, &enc, &enclen, &n, &passed,
                          err);
        if (rc < 0) {
            if (out) fclose(out);
            return s2s_err_prefix(err, "sample %s %s: ", s->key, m->suffix);
        }
        n_audio++;
        size_t sl = stem_len(m->suffix);
        char stem[256];
        snprintf(stem, sizeof stem, "%.*s", (int)(sl < 255 ? sl : 255), m->suffix);
        /* Per member: samples and seconds at the new rate (s2s-synth's "samples"/"durations"). */
        if (audio &&
            (set_per_member(audio, "samples", stem, json_integer((json_int_t)n)) < 0 ||
             set_per_member(audio, "durations", stem, json_real((double)n / o->rate)) < 0)) {
            free(enc);
            if (out) fclose(out);
            return s2s_err_set(err, S2S_ENOMEM, "out of memory");
        }
        if (passed) { /* already right: untouched */
            if (out) fclose(out);
            continue;
        }
        char *suffix = malloc(sl + strlen(ext) + 2);
        if (!suffix) {
            free(enc);
            if (out) fclose(out);
            return s2s_err_set(err, S2S_ENOMEM, "out of memory");
        }
        memcpy(suffix, m->suffix, sl);
        snprintf(suffix + sl, strlen(ext) + 2, ".%s", ext);
        if (strcmp(suffix, m->suffix) != 0 && s2s_sample_get(s, suffix)) {
            s2s_err_set(err, S2S_EDATA, "sample %s %s: becomes %s, which is already present",
                        s->key, m->suffix, suffix);
            free(suffix);
            free(enc);
            if (out) fclose(out);
            return S2S_EDATA;
        }
        if (in) { /* the converted file replaces the input's spool */
            char *dup = strdup(suffix);
            if (!dup) {
                free(suffix);
                fclose(out);
                return s2s_err_set(err, S2S_ENOMEM, "out of memory");
            }
            fclose(in->f);
            free(in->suffix);
            in->f = out;
            in->suffix = dup;
            in->size = enclen;
        }
        free(m->suffix);
        m->suffix = suffix;
        if (!in) {
            free(m->data);
            m->data = enc;
            m->size = enclen;
        }
    }
    if (!audio) return 0;
    if (n_audio == 0 && created) json_object_del(s->item, "audio"); /* nothing to describe */
    if (n_audio == 0) audio = NULL;
    /* "format" is the container, as s2s-synth writes it; "engine" stays the TTS engine's. */
    json_t *rsm = !audio ? NULL
                         : json_pack("{s:s, s:s}", "engine", used_name(o), "quality",
                                     s2s_resample_quality_name(o->quality));
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

/* ---- the stream -------------------------------------------------------------------------------
 * Tar input is read member by member here (not with s2s_reader, which holds every member of a
 * sample in memory) so that large audio members go to spool files; the checks are the
 * reader's: KEY.SUFFIX names, contiguous samples, unique ids across all inputs, KEY.json
 * present, valid and naming KEY, .gz members inflated. JSON-lines input (no members) goes
 * through s2s_reader. Output is the tar stream s2s_writer writes, byte for byte. */
typedef struct ctx {
    const opts *o;
    s2s_tar_writer *tw;
    s2s_idset *seen;
    s2s_part part;
    int skip_bad;
    uint64_t done, bad, attached;
    s2s_progress *pg;
} ctx;

/* KEY.json then every member, as s2s_writer_put; spooled members are copied from their file. */
static int put_sample(s2s_tar_writer *tw, const s2s_sample *s, const spools *sp, s2s_err *err) {
    static unsigned char buf[COPY_BLOCK];
    char *js = s2s_item_dumps(s->item);
    if (!js) return s2s_err_set(err, S2S_ENOMEM, "cannot serialise item %s", s->key);
    size_t jl = strlen(js), kl = strlen(s->key);
    char *line = malloc(jl + 2), *name = malloc(kl + 6);
    int rc = 0;
    if (!line || !name) rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
    if (!rc) {
        memcpy(line, js, jl);
        line[jl] = '\n'; /* one line of JSON plus a newline, as in a JSON-lines file */
        snprintf(name, kl + 6, "%s.json", s->key);
        rc = s2s_tar_write(tw, name, line, jl + 1, NULL, NULL, err);
    }
    free(line);
    free(js);
    for (size_t i = 0; rc == 0 && i < s->n_members; i++) {
        const s2s_member *m = &s->members[i];
        size_t need = kl + 2 + strlen(m->suffix);
        char *nn = realloc(name, need);
        if (!nn) {
            rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
            break;
        }
        name = nn;
        snprintf(name, need, "%s.%s", s->key, m->suffix);
        const spool *x = spool_find(sp, m->suffix);
        if (!x) {
            rc = s2s_tar_write(tw, name, m->data, m->size, NULL, NULL, err);
            continue;
        }
        rc = s2s_tar_write_begin(tw, name, x->size, err);
        for (size_t off = 0; rc == 0 && off < x->size;) {
            size_t k = x->size - off < sizeof buf ? x->size - off : sizeof buf;
            ssize_t got = pread(fileno(x->f), buf, k, (off_t)off);
            if (got <= 0) {
                rc = got < 0 ? s2s_err_errno(err, "reading a temporary file")
                             : s2s_err_set(err, S2S_EIO, "temporary file for %s is short", name);
                break;
            }
            rc = s2s_tar_write_more(tw, buf, (size_t)got, err);
            off += (size_t)got;
        }
        if (rc == 0) rc = s2s_tar_write_end(tw, x->size, err);
    }
    free(name);
    return rc;
}

/* Converts and writes one sample (or skips it with --skip-bad). Takes s; empties sp. */
static int emit(ctx *c, s2s_sample *s, spools *sp, s2s_err *err) {
    int rc = 0, att = 0;
    if (interrupted) rc = s2s_err_set(err, S2S_EINTR, "interrupted");
    if (rc == 0) rc = do_sample(c->o, s, sp, &att, err);
    if (rc < 0 && c->skip_bad && (rc == S2S_EDATA || rc == S2S_EFORMAT || rc == S2S_EUNSUP)) {
        fprintf(stderr, "%s: skipped: %s\n", prog, err->msg);
        c->bad++;
        rc = 0;
    } else {
        if (rc == 0) rc = put_sample(c->tw, s, sp, err);
        if (rc == 0) {
            c->attached += (uint64_t)att;
            s2s_progress_update(c->pg, ++c->done);
        }
    }
    s2s_sample_free(s);
    spools_clear(sp);
    return rc;
}

/* A tar sample is complete: KEY.json parsed and checked, key recorded, part filter. Takes s. */
static int finish_tar_sample(ctx *c, const char *iname, s2s_sample *s, spools *sp, s2s_err *err) {
    int rc = 0;
    s2s_member *m = s2s_sample_get(s, "json");
    if (!m) {
        rc = s2s_err_set(err, S2S_EFORMAT, "%s: sample %s has no %s.json member", iname, s->key,
                         s->key);
    } else {
        json_error_t je;
        s->item = json_loadb((const char *)m->data, m->size, JSON_REJECT_DUPLICATES, &je);
        if (!s->item)
            rc = s2s_err_set(err, S2S_EFORMAT,
                             "%s: sample %s: member %s.json: invalid JSON: %s (line %d, column %d)",
                             iname, s->key, s->key, je.text, je.line, je.column);
        else
            s2s_sample_remove(s, "json");
    }
    if (rc == 0 && !(s->origin = strdup(iname))) rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
    if (rc == 0 && (rc = s2s_item_validate(s->item, err)) != 0)
        s2s_err_prefix(err, "%s: sample %s: ", iname, s->key);
    const char *id = rc == 0 ? s2s_item_id(s->item) : NULL;
    if (rc == 0 && id && strcmp(id, s->key) != 0)
        rc = s2s_err_set(err, S2S_EDATA, "%s: sample %s: its %s.json has id \"%s\"", iname, s->key,
                         s->key, id);
    int added = rc == 0 ? s2s_idset_add(c->seen, s->key) : 1;
    if (added < 0) rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
    if (added == 0)
        rc = s2s_err_set(err, S2S_EDATA,
                         "%s: sample %s appears twice (duplicate id, or its members are not "
                         "contiguous: sample split)",
                         iname, s->key);
    if (rc == 0 && s2s_part_keep(&c->part, s->key)) return emit(c, s, sp, err);
    s2s_sample_free(s);
    spools_clear(sp);
    return rc;
}

/* Copies the current tar member to a spool file and registers it under suffix. */
static int spool_member(s2s_tar_reader *tr, spools *sp, const char *suffix, s2s_err *err) {
    static unsigned char buf[COPY_BLOCK];
    FILE *f = spool_file(err);
    if (!f) return err->code;
    size_t total = 0;
    long k;
    while ((k = s2s_tar_read_some(tr, buf, sizeof buf, err)) > 0) {
        if (fwrite(buf, 1, (size_t)k, f) != (size_t)k) {
            k = s2s_err_errno(err, "writing a temporary file (TMPDIR)");
            break;
        }
        total += (size_t)k;
    }
    if (k == 0 && fflush(f) != 0) k = s2s_err_errno(err, "writing a temporary file (TMPDIR)");
    if (k < 0) {
        fclose(f);
        return (int)k;
    }
    return spool_add(sp, suffix, f, total, err);
}

static int read_tar(ctx *c, FILE *fp, const char *iname, s2s_err *err) {
    s2s_tar_reader *tr = s2s_tar_reader_new(fp, iname, err);
    if (!tr) return err->code;
    s2s_sample *cur = NULL;
    spools sp = {0};
    int rc;
    for (;;) {
        s2s_tar_entry *e;
        if ((rc = s2s_tar_next(tr, &e, err)) <= 0) break;
        rc = 0;
        const char *base = strrchr(e->name, '/');
        base = base ? base + 1 : e->name;
        const char *dot = strchr(base, '.');
        if (!dot || dot == base || !dot[1]) {
            rc = s2s_err_set(err, S2S_EFORMAT,
                             "%s: member '%s' at byte %llu is not named KEY.SUFFIX (WebDataset "
                             "naming)",
                             iname, e->name, (unsigned long long)e->hdr_off);
            break;
        }
        char member[512];
        snprintf(member, sizeof member, "%s", e->name);
        char *key = strndup(e->name, (size_t)(dot - e->name)), *suffix = strdup(dot + 1);
        if (!key || !suffix) {
            free(key), free(suffix);
            rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
            break;
        }
        size_t sl = strlen(suffix);
        int gz = sl > 3 && strcmp(suffix + sl - 3, ".gz") == 0;
        if (gz) suffix[sl - 3] = 0;
        if (cur && strcmp(cur->key, key) != 0) { /* the previous sample is complete */
            rc = finish_tar_sample(c, iname, cur, &sp, err);
            cur = NULL;
        }
        if (rc == 0 && !cur) {
            if (s2s_idset_has(c->seen, key))
                rc = s2s_err_set(err, S2S_EDATA,
                                 "%s: member '%s': sample %s appeared before (duplicate id, or "
                                 "its members are not contiguous: sample split)",
                                 iname, member, key);
            else if (!(cur = s2s_sample_new(key, err)))
                rc = S2S_ENOMEM;
        }
        if (rc == 0 && s2s_sample_get(cur, suffix))
            rc = s2s_err_set(err, S2S_EDATA, "%s: member '%s' appears twice in sample %s", iname,
                             member, key);
        if (rc == 0 && !gz && e->size > spill_limit(suffix) && s2s_audio_is_audio_name(suffix)) {
            unsigned char *none = malloc(1);
            if (!none) rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
            if (rc == 0 && (rc = s2s_sample_put(cur, suffix, none, 0, err)) == 0 &&
                (rc = spool_member(tr, &sp, suffix, err)) < 0)
                s2s_err_prefix(err, "%s: member '%s': ", iname, member);
        } else if (rc == 0) {
            unsigned char *data = NULL;
            size_t size = 0;
            rc = s2s_tar_read_data(tr, &data, &size, err);
            if (rc == 0 && gz) {
                unsigned char *plain = NULL;
                size_t pn = 0;
                char where[600];
                snprintf(where, sizeof where, "%s: member %s", iname, member);
                rc = s2s_gunzip_member(data, size, &plain, &pn, where, err);
                free(data);
                data = plain, size = pn;
            }
            if (rc == 0)
                rc = s2s_sample_put(cur, suffix, data, size, err);
            else
                free(data);
        }
        free(key), free(suffix);
        if (rc < 0) break;
    }
    if (rc == 0 && cur) {
        rc = finish_tar_sample(c, iname, cur, &sp, err);
        cur = NULL;
    }
    s2s_sample_free(cur);
    spools_clear(&sp);
    free(sp.v);
    s2s_tar_reader_free(tr);
    return rc;
}

static int read_jsonl(ctx *c, const char *path, s2s_err *err) {
    s2s_reader *r = s2s_reader_open(&path, 1, 0, err);
    if (!r) return err->code;
    spools sp = {0};
    int rc;
    for (;;) {
        s2s_sample *s = NULL;
        if ((rc = s2s_reader_next(r, &s, err)) <= 0) break;
        int added = s2s_idset_add(c->seen, s->key);
        if (added <= 0) {
            rc = added < 0
                     ? s2s_err_set(err, S2S_ENOMEM, "out of memory")
                     : s2s_err_set(err, S2S_EDATA, "%s: duplicate id %s (seen in an earlier input)",
                                   s->origin ? s->origin : path, s->key);
            s2s_sample_free(s);
            break;
        }
        if (!s2s_part_keep(&c->part, s->key)) {
            s2s_sample_free(s);
            continue;
        }
        if ((rc = emit(c, s, &sp, err)) < 0) break;
    }
    free(sp.v);
    s2s_reader_close(r);
    return rc;
}

/* One input: JSON lines or a tar stream, told from the first byte as s2s_reader does. */
static int read_input(ctx *c, const char *path, s2s_err *err) {
    int is_stdin = strcmp(path, "-") == 0;
    const char *iname = is_stdin ? "<stdin>" : path;
    FILE *fp = is_stdin ? stdin : fopen(path, "rb");
    if (!fp) return s2s_err_errno(err, "%s: cannot open", path);
    int ch = getc(fp), rc;
    if (ch == EOF) {
        rc = ferror(fp) ? s2s_err_errno(err, "%s: read failed", iname)
                        : s2s_err_set(err, S2S_EFORMAT,
                                      "%s: empty input: no items and no tar stream (did the "
                                      "previous tool fail?)",
                                      iname);
    } else if (ungetc(ch, fp),
               ch == '{' || ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t' || ch == 0xEF) {
        if (!is_stdin) fclose(fp), fp = NULL;
        rc = read_jsonl(c, path, err);
    } else {
        rc = read_tar(c, fp, iname, err);
    }
    if (fp && !is_stdin) fclose(fp);
    return rc;
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
                return usage_error("--engine: '%s' is not s2s, soxr (or swr) or src", optarg);
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
    /* libsoxr reads these (SIMD or not, DFT sizes, coefficient interpolation, threads) and they
     * change its output: unset, so the same input gives the same bytes whatever the caller's
     * environment. */
    static const char *const soxr_env[] = {"SOXR_USE_SIMD",
                                           "SOXR_USE_SIMD32",
                                           "SOXR_USE_SIMD64",
                                           "SOXR_MIN_DFT_SIZE",
                                           "SOXR_LARGE_DFT_SIZE",
                                           "SOXR_COEFS_SIZE",
                                           "SOXR_NUM_THREADS",
                                           "SOXR_COEF_INTERP",
                                           "SOXR_STRICT_BUF",
                                           "SOXR_NOSMALLINTOPT",
                                           NULL};
    for (int i = 0; soxr_env[i]; i++)
        unsetenv(soxr_env[i]);
#if defined(__GLIBC__)
    /* Members come and go in buffers of up to a few MB: keep freed memory in the heap instead of
     * returning it to the kernel each time (a fresh mapping page-faults again): 14 k -> 3 k page
     * faults on 300 samples. Peak memory is unchanged. */
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
    mallopt(M_TOP_PAD, 16 << 20);
#endif
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
    ctx c = {&o, NULL, s2s_idset_new(), part, skip_bad, 0, 0, 0, NULL};
    s2s_ofile *of = c.seen ? s2s_ofile_open(out, &err) : NULL;
    int rc = 0;
    if (!c.seen)
        rc = s2s_err_set(&err, S2S_ENOMEM, "out of memory");
    else if (!of)
        rc = err.code ? err.code : S2S_EIO;
    else if (!(c.tw = s2s_tar_writer_new(s2s_ofile_fp(of), s2s_ofile_path(of), &err)))
        rc = err.code;
    if (rc == 0) c.pg = s2s_progress_new(prog, "samples", 0);
    for (int i = optind; rc == 0 && i < (argc > optind ? argc : optind + 1); i++)
        rc = read_input(&c, argc > optind ? argv[i] : "-", &err);
    s2s_progress_end(c.pg, c.done);
    if (rc == 0) {
        rc = s2s_tar_writer_finish(c.tw, &err);
        c.tw = NULL;
        if (rc == 0)
            rc = s2s_ofile_commit(of, &err);
        else
            s2s_ofile_abort(of);
        of = NULL;
    }
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        /* nothing partial looks complete: no end marker on stdout, no file with -o */
        s2s_tar_writer_free(c.tw);
        s2s_ofile_abort(of);
    } else if (!quiet || c.bad || (o.attach && c.attached < c.done)) {
        fprintf(stderr, "%s: %" PRIu64 " samples written at %d Hz", prog, c.done, o.rate);
        if (o.attach)
            fprintf(stderr, ", %s attached from %s to %" PRIu64 " (%" PRIu64 " without a file)",
                    o.member, o.attach, c.attached, c.done - c.attached);
        if (c.bad) fprintf(stderr, ", %" PRIu64 " bad samples skipped (--skip-bad)", c.bad);
        fprintf(stderr, "\n");
    }
    s2s_idset_free(c.seen);
    free_resamplers();
    for (size_t i = 0; i < o.n_files; i++)
        free(o.files[i]);
    free(o.files);
    return rc < 0 ? s2s_exit_status(rc) : 0;
}

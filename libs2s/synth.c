/* synth.c — speech for items with libespeak-ng (see s2s/synth.h and docs/synth.md). */
#define _GNU_SOURCE /* dl_iterate_phdr */
#include "s2s/synth.h"

#include <ctype.h>
#include <errno.h>
#include <espeak-ng/espeak_ng.h>
#include <espeak-ng/speak_lib.h>
#include <fcntl.h>
#include <link.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "s2s/item.h"
#include "s2s/util.h"

/* espeak-ng's flags for every utterance: plain UTF-8 text (no espeakSSML, no espeakPHONEMES, so
 * '<', '&' and "[[" are text) and the end-of-text pause that the CLI adds too (it passes
 * espeakCHARS_AUTO | espeakPHONEMES | espeakENDPAUSE; CHARS_AUTO reads valid UTF-8 as UTF-8). */
#define SYNTH_FLAGS (espeakCHARS_UTF8 | espeakENDPAUSE)

/* Where the synth callback appends samples. espeak-ng's callback has no user pointer that is
 * reliably set on every call, and the engine is one per process anyway (s2s/synth.h), so this
 * one static is the process's sink; `g_alive` refuses a second handle. */
/* A snapshot worker's audio goes to the parent through a ring in shared memory (mapped before
 * the fork, so at the same address in both) when there is room, the pipe carrying only a
 * 16-byte frame header: the samples are copied once (ring -> the parent's buffer) instead of
 * twice through the kernel. When the ring is full, a frame goes through the pipe as before; the
 * worker never waits for the ring. The parent publishes how far it has read (`consumed`, the
 * ring's first page); frames are read in pipe order, so that position only grows. */
#define RING_HDR 4096u
#define RING_SIZE (4u << 20) /* ~95 s of 22 kHz audio */
struct ring {
    unsigned char *map; /* RING_HDR bytes (consumed), then RING_SIZE bytes of frames; NULL: none */
    uint64_t produced;  /* worker: ring position after its last frame */
};
/* A new ring (shared, so a fork()ed worker writes where this process reads), or NULL. */
static unsigned char *ring_map(void) {
    const size_t len = RING_HDR + RING_SIZE;
    /* MAP_ANONYMOUS: no file, fd -1 as POSIX systems want */
    // cppcheck-suppress invalidFunctionArg
    void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return NULL;
    return m;
}
static uint64_t *ring_consumed(const struct ring *r) {
    return (uint64_t *)(void *)r->map;
}

static struct pcm_sink {
    int16_t *data; /* private buffer (cap samples) */
    size_t n, cap;
    int nomem;
    int fd;            /* >= 0: stream frames to this fd instead (isolated child) */
    int fd_err;        /* writing to fd failed */
    struct ring *ring; /* streaming from a snapshot worker: its ring, else NULL */
    int16_t *dst;      /* streaming: where the current frame's samples go (data or the ring) */
    uint64_t fpos;     /* ring position of the current frame when dst is in the ring */
} * g_sink;
static int g_alive;
static int g_engine; /* espeak-ng initialised in this process */

struct s2s_synth {
    s2s_synth_opts o;
    char *voice, *voices_str; /* owned copies of o.voice / o.voices */
    char **voices;            /* opts.voices split at ',' */
    size_t n_voices;
    int rate_hz;
    char engine[64];
    char cur_voice[128]; /* voice currently loaded in the engine ("" = none yet) */
    /* Known names for validation and suggestions. */
    char **langs; /* language codes, lowercase, distinct */
    size_t n_langs;
    char **files; /* voice files ("gmw/en-US") */
    char **names; /* voice names ("English (America)") */
    size_t n_files;
    char **variants; /* variant files without "!v/" ("f3", "Alex") */
    char **variant_names;
    size_t n_variants;
    /* lang -> voice cache (by s2s_synth_voice_for). */
    struct lang_voice {
        char *lang, *voice; /* voice NULL: no voice for lang */
    } * cache;
    size_t n_cache, cap_cache;
    struct pcm_sink sink;
    int zfd;    /* socket to the zygote, or -1 before the first item */
    pid_t zpid; /* the zygote */
    /* RESET_SNAPSHOT: long-lived workers, o.jobs per voice (see "workers" below). */
    struct worker **workers; /* every worker started (stopped ones included) */
    size_t n_workers;
    struct pollfd *pfd; /* n_workers entries: worker_collect's poll set */
    struct worker **pw; /* the worker of each pfd entry */
    struct vpool {
        char voice[128];
        int broken;        /* a worker of this voice failed its start-up check: use the zygote */
        struct worker **w; /* o.jobs workers, NULL = not started yet */
    } * pools;
    size_t n_pools;
    uint64_t n_snapshot, n_forked; /* items isolated each way (s2s_synth_reset_counts) */
};

static void workers_free(s2s_synth *s);

void s2s_synth_opts_default(s2s_synth_opts *o) {
    memset(o, 0, sizeof *o);
    o->rate = espeakRATE_NORMAL;
    o->pitch = 50;
    o->parts = S2S_SYNTH_CTX | S2S_SYNTH_CANDIDATES;
    o->isolate = S2S_SYNTH_ISOLATE_ITEM;
    o->jobs = 1;
    o->reset = S2S_SYNTH_RESET_SNAPSHOT;
}

static int writev_all(int fd, struct iovec *iov, int cnt) {
    while (cnt > 0) {
        ssize_t w = writev(fd, iov, cnt);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        while (cnt > 0 && (size_t)w >= iov->iov_len)
            w -= (ssize_t)iov->iov_len, iov++, cnt--;
        if (cnt > 0) iov->iov_base = (char *)iov->iov_base + w, iov->iov_len -= (size_t)w;
    }
    return 0;
}

#define FRAME_RING 0xFFFFFFFDu /* u32 byte count, u64 ring position (the samples are there) */

/* A new frame: in the ring if it has room for a whole one (cap samples), else in data. */
static void sink_frame_start(struct pcm_sink *k) {
    k->dst = k->data;
    struct ring *r = k->ring;
    if (!r || !r->map) return;
    size_t need = k->cap * sizeof *k->dst;
    uint64_t pos = r->produced;
    size_t o = (size_t)(pos % RING_SIZE);
    if (o + need > RING_SIZE) /* frames do not wrap: skip the ring's tail */
        pos += RING_SIZE - o, o = 0;
    if (pos + need - __atomic_load_n(ring_consumed(r), __ATOMIC_ACQUIRE) > RING_SIZE) return;
    k->dst = (int16_t *)(void *)(r->map + RING_HDR + o);
    k->fpos = pos;
}

/* Writes the gathered samples as one frame: u32 byte count, then the samples (host byte
 * order: parent and child are the same program on the same machine); or, when they are in
 * the ring, FRAME_RING, the byte count and their ring position. */
static int sink_flush(struct pcm_sink *k) {
    if (k->n == 0) return 0;
    uint32_t len = (uint32_t)k->n * 2;
    k->n = 0;
    if (k->dst != k->data && k->ring) {
        uint32_t h[4] = {FRAME_RING, len, (uint32_t)k->fpos, (uint32_t)(k->fpos >> 32)};
        k->ring->produced = k->fpos + len;
        struct iovec iov[1] = {{h, sizeof h}};
        if (writev_all(k->fd, iov, 1) != 0) return k->fd_err = 1;
        return 0;
    }
    struct iovec iov[2] = {{&len, 4}, {k->data, len}};
    if (writev_all(k->fd, iov, 2) != 0) return k->fd_err = 1;
    return 0;
}

static int synth_cb(short *wav, int n, espeak_EVENT *ev) {
    (void)ev;
    struct pcm_sink *k = g_sink;
    if (!k || !wav || n <= 0) return 0;
    if (k->fd >= 0) {
        /* Gather the 60 ms callbacks into frames of up to STREAM_CHUNK samples: one pipe write
         * (and one wake-up of the parent) per ~3 s of audio instead of one per callback. */
        if (k->n + (size_t)n > k->cap && sink_flush(k) != 0) return 1;
        if ((size_t)n > k->cap) {
            uint32_t len = (uint32_t)n * 2;
            struct iovec iov[2] = {{&len, 4}, {wav, len}};
            if (writev_all(k->fd, iov, 2) != 0) return k->fd_err = 1;
            return 0;
        }
        if (k->n == 0) sink_frame_start(k);
        memcpy(k->dst + k->n, wav, (size_t)n * sizeof *wav);
        k->n += (size_t)n;
        return 0;
    }
    if (k->n + (size_t)n > k->cap) {
        size_t cap = k->cap ? k->cap : 65536;
        while (cap < k->n + (size_t)n)
            cap *= 2;
        int16_t *p = realloc(k->data, cap * sizeof *p);
        if (!p) {
            k->nomem = 1;
            return 1; /* abort synthesis */
        }
        k->data = p, k->cap = cap;
    }
    memcpy(k->data + k->n, wav, (size_t)n * sizeof *wav);
    k->n += (size_t)n;
    return 0;
}

static void free_strv(char **v, size_t n) {
    if (!v) return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static int push_str(char ***v, size_t *n, const char *s) {
    char **p = realloc(*v, (*n + 1) * sizeof *p);
    if (!p) return -1;
    *v = p;
    if (!(p[*n] = strdup(s))) return -1;
    (*n)++;
    return 0;
}

static void lower(char *s) {
    for (; *s; s++)
        *s = (char)tolower((unsigned char)*s);
}

/* Reads espeak-ng's voice list into s (langs, files, names, variants). */
static int load_voice_tables(s2s_synth *s, s2s_err *err) {
    const espeak_VOICE **vs = espeak_ListVoices(NULL);
    for (size_t i = 0; vs && vs[i]; i++) {
        const espeak_VOICE *v = vs[i];
        if (push_str(&s->files, &s->n_files, v->identifier ? v->identifier : "") != 0) goto nomem;
        size_t nn = s->n_files - 1, dummy = nn;
        if (push_str(&s->names, &dummy, v->name ? v->name : "") != 0) goto nomem;
        /* languages: (priority byte, NUL-terminated name)*, then a NUL */
        for (const char *p = v->languages; p && *p; p += strlen(p + 1) + 2) {
            char buf[64];
            snprintf(buf, sizeof buf, "%s", p + 1);
            lower(buf);
            int seen = 0;
            for (size_t j = 0; j < s->n_langs && !seen; j++)
                seen = strcmp(s->langs[j], buf) == 0;
            if (!seen && push_str(&s->langs, &s->n_langs, buf) != 0) goto nomem;
        }
    }
    espeak_VOICE spec;
    memset(&spec, 0, sizeof spec);
    spec.languages = "variant";
    vs = espeak_ListVoices(&spec);
    for (size_t i = 0; vs && vs[i]; i++) {
        const char *id = vs[i]->identifier ? vs[i]->identifier : "";
        if (strncmp(id, "!v/", 3) == 0) id += 3;
        if (push_str(&s->variants, &s->n_variants, id) != 0) goto nomem;
        size_t dummy = s->n_variants - 1;
        if (push_str(&s->variant_names, &dummy, vs[i]->name ? vs[i]->name : "") != 0) goto nomem;
    }
    return 0;
nomem:
    return s2s_err_set(err, S2S_ENOMEM, "out of memory");
}

/* Case-insensitive Levenshtein distance, capped at 9. */
static int edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63) return 9;
    int d[64][64];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            int c = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
            int m = d[i - 1][j - 1] + c;
            if (d[i - 1][j] + 1 < m) m = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < m) m = d[i][j - 1] + 1;
            d[i][j] = m;
        }
    return d[la][lb] > 9 ? 9 : d[la][lb];
}

/* Is item one of the ", "-separated entries of list (case-insensitive)? */
static int list_has_ci(const char *list, const char *item) {
    size_t il = strlen(item);
    for (const char *p = list; *p;) {
        const char *e = strstr(p, ", ");
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == il && strncasecmp(p, item, l) == 0) return 1;
        if (!e) break;
        p = e + 2;
    }
    return 0;
}

/* Appends up to 6 close matches of `what` among cand[] to buf as "a, b, c" (prefix matches
 * and edit distance <= 2, best first). Returns the number found. */
static int close_matches(const char *what, char *const *cand, size_t n, const char *prefix,
                         char *buf, size_t bufsize) {
    int found = 0;
    size_t wl = strlen(what);
    for (int dist = 0; dist <= 3 && found < 6; dist++) {
        for (size_t i = 0; i < n && found < 6; i++) {
            const char *c = cand[i];
            size_t cl = strlen(c);
            int d = edit_distance(what, c);
            /* prefix relation (either way, at least 2 chars) ranks as distance 1 */
            if (wl >= 2 && cl >= 2 && (strncasecmp(what, c, wl < cl ? wl : cl) == 0) && d > 1)
                d = 1 + (d > 2);
            if (d != dist || d > 2 || strcasecmp(what, c) == 0) continue;
            /* no duplicates in the list (case-insensitive: "en-us" and file "en-US") */
            char item[160];
            snprintf(item, sizeof item, "%s%s", prefix, c);
            if (list_has_ci(buf, item)) continue;
            size_t bl = strlen(buf);
            snprintf(buf + bl, bufsize - bl, "%s%s", buf[0] ? ", " : "", item);
            found++;
        }
    }
    return found;
}

static int find_ci(char *const *v, size_t n, const char *s) {
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(v[i], s) == 0) return 1;
    return 0;
}

/* Fills buf with "close: a, b" suggestions for an unknown voice name (base or variant). */
static void suggest(const s2s_synth *s, const char *base, const char *variant, char *buf,
                    size_t bufsize) {
    buf[0] = 0;
    char list[600] = "";
    int n = 0;
    if (variant) {
        n = close_matches(variant, s->variants, s->n_variants, "+", list, sizeof list);
    } else {
        n = close_matches(base, s->langs, s->n_langs, "", list, sizeof list);
        if (n < 6) {
            /* voice files by their base name ("en-US" of "gmw/en-US") */
            char **bases = calloc(s->n_files ? s->n_files : 1, sizeof *bases);
            size_t nb = 0;
            for (size_t i = 0; bases && i < s->n_files; i++) {
                const char *sl = strrchr(s->files[i], '/');
                bases[nb++] = (char *)(sl ? sl + 1 : s->files[i]);
            }
            if (bases) n += close_matches(base, bases, nb, "", list, sizeof list);
            free(bases);
        }
    }
    if (n)
        snprintf(buf, bufsize, " (close: %s)", list);
    else
        snprintf(buf, bufsize, " (none close; see --list-voices)");
}

/* Loads voice into the engine (if not already current) and applies rate and pitch. */
static int set_voice(s2s_synth *s, const char *voice, s2s_err *err) {
    if (strcmp(s->cur_voice, voice) == 0) return 0;
    espeak_ng_STATUS st = espeak_ng_SetVoiceByName(voice);
    if (st != ENS_OK) {
        s->cur_voice[0] = 0;
        char msg[200];
        espeak_ng_GetStatusCodeMessage(st, msg, sizeof msg);
        return s2s_err_set(err, S2S_EINVAL, "espeak-ng cannot load voice \"%s\": %s", voice, msg);
    }
    /* Parameters after the voice, as the espeak-ng CLI does. */
    if (espeak_ng_SetParameter(espeakRATE, s->o.rate, 0) != ENS_OK ||
        espeak_ng_SetParameter(espeakPITCH, s->o.pitch, 0) != ENS_OK) {
        s->cur_voice[0] = 0;
        return s2s_err_set(err, S2S_EINVAL, "espeak-ng refused rate %d or pitch %d", s->o.rate,
                           s->o.pitch);
    }
    snprintf(s->cur_voice, sizeof s->cur_voice, "%s", voice);
    return 0;
}

int s2s_synth_check_voice(s2s_synth *s, const char *voice, s2s_err *err) {
    char base[128], sug[700];
    const char *plus = strchr(voice, '+');
    size_t bl = plus ? (size_t)(plus - voice) : strlen(voice);
    if (bl == 0 || bl >= sizeof base || strlen(voice) >= sizeof s->cur_voice)
        return s2s_err_set(err, S2S_EINVAL, "bad voice name \"%s\"", voice);
    memcpy(base, voice, bl);
    base[bl] = 0;
    if (plus) {
        const char *variant = plus + 1;
        int ok = 0;
        for (size_t i = 0; i < s->n_variants && !ok; i++)
            ok = strcmp(s->variants[i], variant) == 0;
        if (!ok) {
            suggest(s, base, variant, sug, sizeof sug);
            return s2s_err_set(err, S2S_EINVAL, "unknown voice variant \"+%s\" in \"%s\"%s",
                               variant, voice, sug);
        }
    }
    espeak_ng_STATUS st = espeak_ng_SetVoiceByName(voice);
    s->cur_voice[0] = 0; /* the engine's voice changed (or not): set it again before speaking */
    if (st != ENS_OK) {
        suggest(s, base, NULL, sug, sizeof sug);
        return s2s_err_set(err, S2S_EINVAL, "unknown voice \"%s\"%s", voice, sug);
    }
    return 0;
}

s2s_synth *s2s_synth_new(const s2s_synth_opts *opts, s2s_err *err) {
    if (g_alive) {
        s2s_err_set(err, S2S_EUNSUP,
                    "one synthesizer per process: espeak-ng keeps global state (use processes)");
        return NULL;
    }
    if (opts->rate < espeakRATE_MINIMUM || opts->rate > espeakRATE_MAXIMUM) {
        s2s_err_set(err, S2S_EINVAL, "rate %d out of range (%d..%d words per minute)", opts->rate,
                    espeakRATE_MINIMUM, espeakRATE_MAXIMUM);
        return NULL;
    }
    if (opts->pitch < 0 || opts->pitch > 99) {
        s2s_err_set(err, S2S_EINVAL, "pitch %d out of range (0..99)", opts->pitch);
        return NULL;
    }
    if (opts->isolate < S2S_SYNTH_ISOLATE_NONE || opts->isolate > S2S_SYNTH_ISOLATE_UTTERANCE) {
        s2s_err_set(err, S2S_EINVAL, "bad isolation mode %d", opts->isolate);
        return NULL;
    }
    if (opts->jobs < 1 || opts->jobs > 64) {
        s2s_err_set(err, S2S_EINVAL, "jobs %d out of range (1..64)", opts->jobs);
        return NULL;
    }
    if (opts->reset != S2S_SYNTH_RESET_SNAPSHOT && opts->reset != S2S_SYNTH_RESET_FORK) {
        s2s_err_set(err, S2S_EINVAL, "bad reset mode %d", opts->reset);
        return NULL;
    }
    if (!(opts->parts & (S2S_SYNTH_CTX | S2S_SYNTH_CANDIDATES)) ||
        (opts->parts & ~(unsigned)(S2S_SYNTH_CTX | S2S_SYNTH_CANDIDATES))) {
        s2s_err_set(err, S2S_EINVAL, "parts must be ctx, candidates or both");
        return NULL;
    }
    s2s_synth *s = calloc(1, sizeof *s);
    if (!s) {
        s2s_err_set(err, S2S_ENOMEM, "out of memory");
        return NULL;
    }
    s->o = *opts;
    s->o.voice = s->o.voices = NULL;
    s->sink.fd = -1;
    s->zfd = -1;
    if ((opts->voice && !(s->voice = strdup(opts->voice))) ||
        (opts->voices && !(s->voices_str = strdup(opts->voices)))) {
        free(s->voice);
        free(s);
        s2s_err_set(err, S2S_ENOMEM, "out of memory");
        return NULL;
    }
    s->o.voice = s->voice;
    s->o.voices = s->voices_str;

    /* Once per process: espeak-ng does not come back sane from espeak_ng_Terminate (after a
     * re-initialisation espeak_ng_Synchronize waited forever), so it is never terminated. */
    espeak_ng_STATUS st = ENS_OK;
    espeak_ng_ERROR_CONTEXT ctx = NULL;
    if (!g_engine) {
        espeak_ng_InitializePath(NULL);
        st = espeak_ng_Initialize(&ctx);
    }
    if (st != ENS_OK) {
        char msg[200];
        espeak_ng_GetStatusCodeMessage(st, msg, sizeof msg);
        espeak_ng_ClearErrorContext(&ctx);
        free(s->voice), free(s->voices_str), free(s);
        s2s_err_set(err, S2S_EIO, "espeak-ng initialisation failed: %s", msg);
        return NULL;
    }
    g_alive = 1;
    /* Buffer length 0 (espeak-ng's default, 60 ms), as the CLI: the length is not neutral. At
     * -s 160 a 4000 ms buffer gave 72 samples more than the CLI for the same text (500 ms
     * happened to match); only the CLI's own setting is sure to give the CLI's samples. */
    if (!g_engine) st = espeak_ng_InitializeOutput(ENOUTPUT_MODE_SYNCHRONOUS, 0, NULL);
    if (st != ENS_OK) {
        s2s_err_set(err, S2S_EIO, "espeak-ng output initialisation failed (status 0x%x)",
                    (unsigned)st);
        s2s_synth_free(s);
        return NULL;
    }
    g_engine = 1;
    espeak_SetSynthCallback(synth_cb);
    s->rate_hz = espeak_ng_GetSampleRate();
    const char *data_path = NULL;
    const char *ver = espeak_Info(&data_path);
    snprintf(s->engine, sizeof s->engine, "espeak-ng %s", ver ? ver : "?");
    g_sink = &s->sink;
    if (load_voice_tables(s, err) != 0) goto fail;

    if (s->voices_str) {
        char *copy = strdup(s->voices_str);
        if (!copy) {
            s2s_err_set(err, S2S_ENOMEM, "out of memory");
            goto fail;
        }
        char *save = NULL;
        for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            while (*t == ' ')
                t++;
            size_t l = strlen(t);
            while (l && t[l - 1] == ' ')
                t[--l] = 0;
            if (!*t) continue;
            if (push_str(&s->voices, &s->n_voices, t) != 0) {
                free(copy);
                s2s_err_set(err, S2S_ENOMEM, "out of memory");
                goto fail;
            }
        }
        free(copy);
        if (s->n_voices == 0) {
            s2s_err_set(err, S2S_EINVAL, "--voices: empty list");
            goto fail;
        }
        for (size_t i = 0; i < s->n_voices; i++)
            if (s2s_synth_check_voice(s, s->voices[i], err) != 0) goto fail;
    }
    if (s->voice && s2s_synth_check_voice(s, s->voice, err) != 0) goto fail;
    /* The canonical engine state every item starts from: this voice with rate and pitch. */
    if (set_voice(s, s->n_voices ? s->voices[0] : s->voice ? s->voice : "en-us", err) != 0)
        goto fail;
    return s;
fail:
    s2s_synth_free(s);
    return NULL;
}

void s2s_synth_free(s2s_synth *s) {
    if (!s) return;
    if (s->zfd >= 0) {
        close(s->zfd); /* the zygote exits at EOF */
        while (waitpid(s->zpid, NULL, 0) < 0 && errno == EINTR) {
        }
    }
    workers_free(s);
    g_alive = 0; /* the engine stays initialised (see s2s_synth_new) */
    if (g_sink == &s->sink) g_sink = NULL;
    free(s->sink.data);
    free(s->voice), free(s->voices_str);
    free_strv(s->voices, s->n_voices);
    free_strv(s->langs, s->n_langs);
    free_strv(s->files, s->n_files);
    free_strv(s->names, s->n_files);
    free_strv(s->variants, s->n_variants);
    free_strv(s->variant_names, s->n_variants);
    for (size_t i = 0; i < s->n_cache; i++)
        free(s->cache[i].lang), free(s->cache[i].voice);
    free(s->cache);
    free(s);
}

int s2s_synth_rate(const s2s_synth *s) {
    return s->rate_hz;
}

void s2s_synth_reset_counts(const s2s_synth *s, uint64_t *snapshot, uint64_t *forked) {
    if (snapshot) *snapshot = s->n_snapshot;
    if (forked) *forked = s->n_forked;
}

const char *s2s_synth_engine(const s2s_synth *s) {
    return s->engine;
}

/* Default voice for a language code (lowercased), or NULL if espeak-ng has none. */
static int voice_for_lang(s2s_synth *s, const char *lang_in, const char **out, s2s_err *err) {
    char lang[64];
    snprintf(lang, sizeof lang, "%s", lang_in);
    lower(lang);
    for (size_t i = 0; i < s->n_cache; i++)
        if (strcmp(s->cache[i].lang, lang) == 0) {
            *out = s->cache[i].voice;
            return 0;
        }
    const char *v = NULL;
    if (strcmp(lang, "en") == 0)
        v = "en-us";
    else if (strcmp(lang, "zh") == 0 || strncmp(lang, "zh-", 3) == 0 || strcmp(lang, "cmn") == 0)
        v = "cmn";
    char primary[64];
    snprintf(primary, sizeof primary, "%s", lang);
    char *dash = strchr(primary, '-');
    if (dash) *dash = 0;
    /* From the voice tables only: loading a voice here would make the engine state of this
     * process depend on which languages it met first (see speak_parts). */
    if (!v && find_ci(s->langs, s->n_langs, lang)) v = lang;
    /* "de-de" -> "de": a region espeak-ng does not list falls back to the language */
    if (!v && dash && find_ci(s->langs, s->n_langs, primary)) v = primary;
    if (s->n_cache == s->cap_cache) {
        size_t cap = s->cap_cache ? 2 * s->cap_cache : 8;
        struct lang_voice *p = realloc(s->cache, cap * sizeof *p);
        if (!p) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
        s->cache = p, s->cap_cache = cap;
    }
    struct lang_voice *e = &s->cache[s->n_cache];
    e->lang = strdup(lang);
    e->voice = v ? strdup(v) : NULL;
    if (!e->lang || (v && !e->voice)) {
        free(e->lang), free(e->voice);
        return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    }
    s->n_cache++;
    *out = e->voice;
    return 0;
}

int s2s_synth_voice_for(s2s_synth *s, const json_t *item, char *buf, size_t bufsize, s2s_err *err) {
    const char *id = s2s_item_id(item);
    if (s->n_voices) {
        char key[300];
        snprintf(key, sizeof key, "%llu:%s", (unsigned long long)s->o.seed, id ? id : "");
        uint64_t h = s2s_fnv1a64(key);
        snprintf(buf, bufsize, "%s", s->voices[h % s->n_voices]);
        return 0;
    }
    if (s->voice) {
        snprintf(buf, bufsize, "%s", s->voice);
        return 0;
    }
    const char *lang = s2s_item_lang(item);
    if (!lang || !*lang)
        return s2s_err_set(err, S2S_EDATA, "item %s: no \"lang\" (give --voice)", id ? id : "?");
    const char *v = NULL;
    int rc = voice_for_lang(s, lang, &v, err);
    if (rc) return rc;
    if (!v) {
        char sug[700];
        suggest(s, lang, NULL, sug, sizeof sug);
        return s2s_err_set(err, S2S_EDATA, "item %s: language \"%s\" has no espeak-ng voice%s",
                           id ? id : "?", lang, sug);
    }
    snprintf(buf, bufsize, "%s", v);
    return 0;
}

/* Decodes one UTF-8 code point at p (n bytes left); returns its length or 0 if invalid
 * (overlong, surrogate, above U+10FFFF, truncated). */
static size_t utf8_next(const unsigned char *p, size_t n, uint32_t *cp) {
    if (p[0] < 0x80) return *cp = p[0], 1;
    size_t len;
    uint32_t c, min;
    if ((p[0] & 0xE0) == 0xC0)
        len = 2, c = p[0] & 0x1F, min = 0x80;
    else if ((p[0] & 0xF0) == 0xE0)
        len = 3, c = p[0] & 0x0F, min = 0x800;
    else if ((p[0] & 0xF8) == 0xF0)
        len = 4, c = p[0] & 0x07, min = 0x10000;
    else
        return 0;
    if (len > n) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        c = (c << 6) | (p[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
    *cp = c;
    return len;
}

/* Whitespace and invisible format characters: nothing to speak. */
static int is_blank_cp(uint32_t c) {
    return c == ' ' || (c >= 0x09 && c <= 0x0D) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200D) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x2060 || c == 0x3000 || c == 0xFEFF;
}

int s2s_synth_check_text(const char *text, s2s_err *err) {
    if (!text) return s2s_err_set(err, S2S_EDATA, "is missing");
    const unsigned char *p = (const unsigned char *)text;
    size_t n = strlen(text);
    if (n == 0) return s2s_err_set(err, S2S_EDATA, "is empty");
    int blank = 1;
    for (size_t i = 0; i < n;) {
        uint32_t c;
        size_t l = utf8_next(p + i, n - i, &c);
        if (!l) return s2s_err_set(err, S2S_EDATA, "is not valid UTF-8 (byte %zu)", i);
        if (!is_blank_cp(c)) blank = 0;
        i += l;
    }
    if (blank) return s2s_err_set(err, S2S_EDATA, "is only whitespace");
    return 0;
}

int s2s_synth_speak(s2s_synth *s, const char *voice, const char *text, int16_t **pcm, size_t *n,
                    s2s_err *err) {
    *pcm = NULL, *n = 0;
    int rc;
    if (voice && (rc = set_voice(s, voice, err)) != 0) return rc;
    if (!s->cur_voice[0] && (rc = set_voice(s, "en-us", err)) != 0) return rc;
    g_sink = &s->sink;
    s->sink.n = 0, s->sink.nomem = 0;
    espeak_ng_STATUS st =
        espeak_ng_Synthesize(text, strlen(text) + 1, 0, POS_CHARACTER, 0, SYNTH_FLAGS, NULL, NULL);
    if (s->sink.nomem) return s2s_err_set(err, S2S_ENOMEM, "out of memory (audio)");
    if (st != ENS_OK) {
        char msg[200];
        espeak_ng_GetStatusCodeMessage(st, msg, sizeof msg);
        return s2s_err_set(err, S2S_EIO, "espeak-ng synthesis failed: %s", msg);
    }
    int16_t *out = malloc((s->sink.n ? s->sink.n : 1) * sizeof *out);
    if (!out) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    memcpy(out, s->sink.data, s->sink.n * sizeof *out);
    *pcm = out, *n = s->sink.n;
    return 0;
}

/* ---- post-processing ---------------------------------------------------------------------- */

size_t s2s_synth_trim(int16_t *pcm, size_t n, int rate, size_t *lead) {
    size_t first = n, last = 0;
    for (size_t i = 0; i < n; i++)
        if (abs(pcm[i]) > S2S_SYNTH_TRIM_THRESHOLD) {
            first = i;
            break;
        }
    if (lead) *lead = n;
    if (first == n) return 0;
    for (size_t i = n; i-- > first;)
        if (abs(pcm[i]) > S2S_SYNTH_TRIM_THRESHOLD) {
            last = i;
            break;
        }
    size_t pad = (size_t)rate * S2S_SYNTH_TRIM_PAD_MS / 1000;
    size_t a = first > pad ? first - pad : 0;
    size_t b = last + pad + 1 < n ? last + pad + 1 : n;
    memmove(pcm, pcm + a, (b - a) * sizeof *pcm);
    if (lead) *lead = a;
    return b - a;
}

size_t s2s_synth_normalize(int16_t *pcm, size_t n, double *gain) {
    int peak = 0;
    for (size_t i = 0; i < n; i++) {
        int a = abs(pcm[i]);
        if (a > peak) peak = a;
    }
    if (gain) *gain = 1.0;
    if (peak == 0) return 0;
    /* Integer arithmetic so every machine gives the same samples. */
    int64_t num = S2S_SYNTH_NORM_PEAK, den = peak;
    size_t clipped = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t x = (int64_t)pcm[i] * num;
        int64_t y = x >= 0 ? (x + den / 2) / den : -((-x + den / 2) / den);
        if (y > 32767) y = 32767, clipped++;
        if (y < -32768) y = -32768, clipped++;
        pcm[i] = (int16_t)y;
    }
    if (gain) *gain = (double)num / (double)den;
    return clipped;
}

size_t s2s_synth_clipped(const int16_t *pcm, size_t n) {
    size_t c = 0, i = 0;
#ifdef __SSE2__
    /* Every sample of every item passes here: 8 at a time (SSE2 is part of x86-64). An exact
     * integer count, the same as the loop below on any CPU. 16-bit lane counters are folded
     * into c every 4096 vectors, before they can overflow. */
    const __m128i hi = _mm_set1_epi16(32767), lo = _mm_set1_epi16(-32768);
    const __m128i ones = _mm_set1_epi16(1);
    while (n - i >= 8) {
        size_t nv = (n - i) / 8 > 4096 ? 4096 : (n - i) / 8;
        __m128i acc = _mm_setzero_si128();
        for (size_t v = 0; v < nv; v++, i += 8) {
            __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(pcm + i));
            __m128i m = _mm_or_si128(_mm_cmpeq_epi16(x, hi), _mm_cmpeq_epi16(x, lo));
            acc = _mm_sub_epi16(acc, m);
        }
        int32_t w[4];
        _mm_storeu_si128((__m128i *)(void *)w, _mm_madd_epi16(acc, ones));
        c += (size_t)w[0] + (size_t)w[1] + (size_t)w[2] + (size_t)w[3];
    }
#endif
    for (; i < n; i++)
        c += pcm[i] == 32767 || pcm[i] == -32768;
    return c;
}

static void put_le(unsigned char *p, uint32_t v, int bytes) {
    for (int i = 0; i < bytes; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

struct part {
    char suffix[32]; /* "ctx", "c0", ... */
    const char *text;
    unsigned char *wav; /* 44-byte header + samples */
    size_t n;           /* samples */
};

static int host_is_le(void) {
    const uint16_t one = 1;
    return *(const unsigned char *)&one == 1;
}

static void wav_header(unsigned char *b, size_t n, int rate) {
    size_t data = n * 2;
    memcpy(b, "RIFF", 4);
    put_le(b + 4, (uint32_t)(36 + data), 4);
    memcpy(b + 8, "WAVEfmt ", 8);
    put_le(b + 16, 16, 4);                 /* fmt chunk size */
    put_le(b + 20, 1, 2);                  /* PCM */
    put_le(b + 22, 1, 2);                  /* mono */
    put_le(b + 24, (uint32_t)rate, 4);     /* sample rate */
    put_le(b + 28, (uint32_t)rate * 2, 4); /* byte rate */
    put_le(b + 32, 2, 2);                  /* block align */
    put_le(b + 34, 16, 2);                 /* bits per sample */
    memcpy(b + 36, "data", 4);
    put_le(b + 40, (uint32_t)data, 4);
}

int s2s_synth_wav(const int16_t *pcm, size_t n, int rate, unsigned char **out, size_t *len,
                  s2s_err *err) {
    if (n > (0xFFFFFFFFu - 44) / 2)
        return s2s_err_set(err, S2S_EINVAL, "audio too long for WAV (%zu samples)", n);
    unsigned char *b = malloc(44 + n * 2);
    if (!b) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    wav_header(b, n, rate);
    for (size_t i = 0; i < n; i++)
        put_le(b + 44 + 2 * i, (uint16_t)pcm[i], 2);
    *out = b, *len = 44 + n * 2;
    return 0;
}

static int read_all(int fd, void *p, size_t n) {
    unsigned char *q = p;
    while (n) {
        ssize_t r = read(fd, q, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        q += r, n -= (size_t)r;
    }
    return 0;
}

#define STREAM_CHUNK 65536    /* samples per frame from an isolated child (~3 s) */
#define FRAME_END 0u          /* end of one utterance */
#define FRAME_ERR 0xFFFFFFFFu /* u32 code, u32 length, message */

/* Makes the sink stream frames of up to STREAM_CHUNK samples to fd. -1: out of memory. */
static int sink_to_fd(s2s_synth *s, int fd) {
    s->sink.fd = fd;
    s->sink.n = 0;
    s->sink.fd_err = 0;
    s->sink.ring = NULL;
    g_sink = &s->sink;
    if (s->sink.cap < STREAM_CHUNK) {
        int16_t *p = realloc(s->sink.data, STREAM_CHUNK * sizeof *p);
        if (!p) return -1;
        s->sink.data = p, s->sink.cap = STREAM_CHUNK;
    }
    return 0;
}

static int send_err_frame(int fd, int code, const char *msg) {
    uint32_t hdr[3] = {FRAME_ERR, (uint32_t)code, (uint32_t)strlen(msg)};
    struct iovec iov[2] = {{hdr, sizeof hdr}, {(void *)msg, hdr[2]}};
    return writev_all(fd, iov, 2);
}

/* Speaks texts with the engine's current voice, each as frames then FRAME_END on the sink's fd.
 * An espeak-ng failure is sent as one FRAME_ERR frame, which ends the texts. Returns 0, or -1
 * when the fd failed (the reader is gone). */
static int stream_texts(s2s_synth *s, const char *const *texts, size_t n) {
    int fd = s->sink.fd;
    for (size_t i = 0; i < n; i++) {
        s->sink.n = 0;
        espeak_ng_STATUS st = espeak_ng_Synthesize(texts[i], strlen(texts[i]) + 1, 0, POS_CHARACTER,
                                                   0, SYNTH_FLAGS, NULL, NULL);
        if (s->sink.fd_err) return -1;
        if (st != ENS_OK) {
            char msg[200], full[260];
            espeak_ng_GetStatusCodeMessage(st, msg, sizeof msg);
            snprintf(full, sizeof full, "espeak-ng synthesis failed: %s", msg);
            return send_err_frame(fd, S2S_EIO, full);
        }
        if (sink_flush(&s->sink) != 0) return -1;
        uint32_t end = FRAME_END;
        struct iovec iov[1] = {{&end, 4}};
        if (writev_all(fd, iov, 1) != 0) return -1;
    }
    return 0;
}

/* Child side of an isolated item: speaks texts, streaming frames to fd. Never returns. */
static void child_speak(s2s_synth *s, const char *voice, const char *const *texts, size_t n,
                        int fd) {
    if (sink_to_fd(s, fd) != 0) _exit(3);
    s2s_err verr;
    if (set_voice(s, voice, &verr) != 0)
        /* --voice/--voices were checked by s2s_synth_new: this is a language's voice */
        _exit(send_err_frame(fd, S2S_EDATA, verr.msg) == 0 ? 0 : 3);
    _exit(stream_texts(s, texts, n) == 0 ? 0 : 3);
}

/* Forks a child that speaks parts[0..n-1] with voice from this process's (never used) engine
 * state, streaming frames to *fd. */
static int isolated_start(s2s_synth *s, const char *voice, struct part *parts, size_t n, int *rfd,
                          pid_t *rpid, s2s_err *err) {
    const char *texts[n ? n : 1];
    for (size_t i = 0; i < n; i++)
        texts[i] = parts[i].text;
    int fd[2];
    if (pipe(fd) != 0) return s2s_err_errno(err, "pipe");
#ifdef F_SETPIPE_SZ
    /* a whole item fits: the child finishes while the parent is busy with older items */
    fcntl(fd[1], F_SETPIPE_SZ, 1 << 20);
#endif
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]), close(fd[1]);
        return s2s_err_errno(err, "fork");
    }
    if (pid == 0) {
        signal(SIGINT, SIG_DFL), signal(SIGTERM, SIG_DFL), signal(SIGPIPE, SIG_DFL);
        close(fd[0]);
        child_speak(s, voice, texts, n, fd[1]);
    }
    close(fd[1]);
    *rfd = fd[0], *rpid = pid;
    return 0;
}

/* Reads the frames of n utterances from fd into parts[].wav/.n. Returns 0; the error of a
 * FRAME_ERR frame (the stream is then still at a job boundary); 1 if the stream ended early; or
 * another error (no memory, bad frame). On an error parts[].wav are freed and *lost says
 * whether the stream is out of step (anything but a FRAME_ERR). */
static int collect_stream(struct part *parts, size_t n, int fd, int *lost, s2s_err *err) {
    int rc = 0, frame_err = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        s2s_buf b = {0};
        if (s2s_buf_reserve(&b, 44 + (1 << 21), err) != 0) {
            rc = S2S_ENOMEM;
            break;
        }
        b.len = 44;
        for (;;) {
            uint32_t len;
            if (read_all(fd, &len, 4) != 0) {
                rc = 1; /* child died: reported below */
                break;
            }
            if (len == FRAME_END) break;
            if (len == FRAME_ERR) {
                uint32_t h[2];
                char msg[300] = "";
                if (read_all(fd, h, sizeof h) != 0 || h[1] >= sizeof msg ||
                    read_all(fd, msg, h[1]) != 0) {
                    rc = 1;
                    break;
                }
                msg[h[1]] = 0;
                rc = s2s_err_set(err, (int)h[0], "%s", msg);
                frame_err = 1;
                break;
            }
            if (len & 1) {
                rc = s2s_err_set(err, S2S_EIO, "synthesis child sent a bad frame");
                break;
            }
            if (s2s_buf_reserve(&b, len, err) != 0) {
                rc = S2S_ENOMEM;
                break;
            }
            if (read_all(fd, b.data + b.len, len) != 0) {
                rc = 1;
                break;
            }
            b.len += len;
        }
        if (rc) {
            s2s_buf_free(&b);
            break;
        }
        size_t blen;
        parts[i].n = (b.len - 44) / 2;
        parts[i].wav = s2s_buf_steal(&b, &blen);
        unsigned char *fit = realloc(parts[i].wav, blen ? blen : 1); /* shrinks in place */
        if (fit) parts[i].wav = fit;
    }
    *lost = rc != 0 && !frame_err;
    if (rc)
        for (size_t i = 0; i < n; i++)
            free(parts[i].wav), parts[i].wav = NULL;
    return rc;
}

/* Reads the child's frames into parts[].wav/.n, closes fd and reaps the child. */
static int isolated_collect(struct part *parts, size_t n, int fd, pid_t pid, s2s_err *err) {
    int lost;
    int rc = collect_stream(parts, n, fd, &lost, err);
    close(fd);
    int st = 0;
    if (pid < 0) { /* a child of the zygote, which reaps it: the stream alone tells */
        if (rc == 1) rc = s2s_err_set(err, S2S_EIO, "synthesis process died before it finished");
        if (rc)
            for (size_t i = 0; i < n; i++)
                free(parts[i].wav), parts[i].wav = NULL;
        return rc;
    }
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (rc == 1 || (!rc && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))) {
        if (WIFSIGNALED(st))
            rc = s2s_err_set(err, S2S_EIO, "synthesis process killed by signal %d", WTERMSIG(st));
        else
            rc = s2s_err_set(err, S2S_EIO, "synthesis process failed (exit status %d)",
                             WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    }
    if (rc)
        for (size_t i = 0; i < n; i++)
            free(parts[i].wav), parts[i].wav = NULL;
    return rc;
}

static int speak_isolated(s2s_synth *s, const char *voice, struct part *parts, size_t n,
                          s2s_err *err) {
    int fd = -1;
    pid_t pid = -1;
    int rc = isolated_start(s, voice, parts, n, &fd, &pid, err);
    return rc ? rc : isolated_collect(parts, n, fd, pid, err);
}

/* Speaks every part with voice, now: per utterance in a fork()ed child
 * (S2S_SYNTH_ISOLATE_UTTERANCE) or in this process (NONE). ITEM isolation is s2s_synth_begin's. */
static int speak_parts(s2s_synth *s, const char *voice, struct part *parts, size_t n,
                       s2s_err *err) {
    int rc = 0;
    /* Isolated: the voice is loaded in the child, so this process's engine stays in the state
     * s2s_synth_new left it in (a function of the options only), and every child starts from
     * that same state whatever voices other items used. Loading voice B after voice A does
     * not give the same engine state as loading B alone (measured: different samples). */
    if (s->o.isolate == S2S_SYNTH_ISOLATE_ITEM) return speak_isolated(s, voice, parts, n, err);
    if (s->o.isolate == S2S_SYNTH_ISOLATE_NONE && (rc = set_voice(s, voice, err)) != 0) return rc;
    for (size_t i = 0; i < n; i++) {
        if (s->o.isolate == S2S_SYNTH_ISOLATE_UTTERANCE) {
            rc = speak_isolated(s, voice, parts + i, 1, err);
        } else {
            int16_t *pcm;
            size_t m;
            rc = s2s_synth_speak(s, NULL, parts[i].text, &pcm, &m, err);
            if (!rc) {
                if (!(parts[i].wav = malloc(44 + m * 2)))
                    rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
                else
                    memcpy(parts[i].wav + 44, pcm, m * 2), parts[i].n = m;
                free(pcm);
            }
        }
        if (rc) {
            for (size_t j = 0; j < n; j++)
                free(parts[j].wav), parts[j].wav = NULL;
            return rc;
        }
    }
    return 0;
}

static const char *isolate_name(int iso) {
    return iso == S2S_SYNTH_ISOLATE_ITEM        ? "item"
           : iso == S2S_SYNTH_ISOLATE_UTTERANCE ? "utterance"
                                                : "none";
}

static void free_parts(struct part *parts, size_t n) {
    if (!parts) return;
    for (size_t i = 0; i < n; i++)
        free(parts[i].wav);
    free(parts);
}

/* ---- the zygote ----------------------------------------------------------------------------
 * Items are forked from a small helper process (forked once, before the first item) instead of
 * from this one. Forking from here made every page this process then wrote while a child was
 * alive (the audio it receives, up to ~1 MB per item) a copy-on-write fault with a page copy:
 * perf put that at ~6% of all cycles, and this process at ~18%. The zygote writes next to
 * nothing, and nothing shares this process's memory any more. Protocol on a stream socket:
 * job = u32 length + (voice NUL, u32 n, n x (u32 length + text)); reply = 1 byte carrying the
 * read end of the new child's stream (SCM_RIGHTS). Children are reaped by the zygote; a child
 * that dies shows as a stream cut short. */
static int send_fd(int sock, int fd) {
    char byte = 0;
    struct iovec iov = {&byte, 1};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } u;
    memset(&u, 0, sizeof u);
    struct msghdr msg = {0};
    msg.msg_iov = &iov, msg.msg_iovlen = 1;
    msg.msg_control = u.buf, msg.msg_controllen = sizeof u.buf;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET, c->cmsg_type = SCM_RIGHTS, c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
    for (;;) {
        ssize_t r = sendmsg(sock, &msg, MSG_NOSIGNAL);
        if (r == 1) return 0;
        if (r < 0 && errno == EINTR) continue;
        return -1;
    }
}

static int recv_fd(int sock) {
    char byte;
    struct iovec iov = {&byte, 1};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } u;
    struct msghdr msg = {0};
    msg.msg_iov = &iov, msg.msg_iovlen = 1;
    msg.msg_control = u.buf, msg.msg_controllen = sizeof u.buf;
    ssize_t r;
    while ((r = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR) {
    }
    if (r != 1) return -1;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    if (!c || c->cmsg_type != SCM_RIGHTS) return -1;
    int fd;
    memcpy(&fd, CMSG_DATA(c), sizeof fd);
    return fd;
}

/* In a child: the texts of a job (VOICE NUL, u32 count, then per text u32 length and the text,
 * NUL-terminated by the sender), pointing into job; a malformed job ends the child (exit 3). */
static const char **job_texts(const char *job, size_t len, uint32_t *count) {
    size_t pos = strlen(job) + 1;
    uint32_t n;
    if (pos + 4 > len) _exit(3);
    memcpy(&n, job + pos, 4);
    pos += 4;
    const char **texts = calloc(n ? n : 1, sizeof *texts);
    if (!texts) _exit(3);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t tl;
        if (pos + 4 > len) _exit(3);
        memcpy(&tl, job + pos, 4);
        pos += 4;
        if (tl > len - pos) _exit(3);
        texts[i] = job + pos;
        pos += tl;
    }
    *count = n;
    return texts;
}

static void zygote_main(s2s_synth *s, int sock) {
    for (;;) {
        /* Reap finished children (waited for, so that their CPU time adds up in the caller's
         * rusage, as time(1) and bench/synth.sh read it; SIGCHLD ignored would drop it). */
        while (waitpid(-1, NULL, WNOHANG) > 0) {
        }
        uint32_t len;
        if (read_all(sock, &len, 4) != 0) {
            while (wait(NULL) > 0 || errno == EINTR) {
            }
            _exit(0);
        }
        char *job = malloc((size_t)len + 1);
        if (!job || read_all(sock, job, len) != 0) _exit(3);
        job[len] = 0;
        const char *voice = job;
        uint32_t n;
        const char **texts = job_texts(job, len, &n);
        int fd[2];
        if (pipe(fd) != 0) _exit(3);
#ifdef F_SETPIPE_SZ
        fcntl(fd[1], F_SETPIPE_SZ, 1 << 20);
#endif
        pid_t pid = fork();
        if (pid < 0) _exit(3);
        if (pid == 0) {
            close(sock), close(fd[0]);
            child_speak(s, voice, texts, n, fd[1]);
        }
        close(fd[1]);
        if (send_fd(sock, fd[0]) != 0) _exit(3);
        close(fd[0]);
        free(texts), free(job);
    }
}

/* A job as the zygote and the workers read it: u32 length of the rest, voice NUL, u32 n, then
 * n x (u32 length + text NUL). */
static int encode_job(const char *voice, const struct part *parts, size_t n, s2s_buf *b,
                      s2s_err *err) {
    uint32_t nn = (uint32_t)n, zero = 0;
    int bad = s2s_buf_append(b, &zero, 4, NULL) != 0 ||
              s2s_buf_append(b, voice, strlen(voice) + 1, NULL) != 0 ||
              s2s_buf_append(b, &nn, 4, NULL) != 0;
    for (size_t i = 0; !bad && i < n; i++) {
        uint32_t tl = (uint32_t)strlen(parts[i].text) + 1;
        bad =
            s2s_buf_append(b, &tl, 4, NULL) != 0 || s2s_buf_append(b, parts[i].text, tl, NULL) != 0;
    }
    if (bad || b->len - 4 > 0xFFFFFFF0u) {
        s2s_buf_free(b);
        return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    }
    uint32_t len = (uint32_t)(b->len - 4);
    memcpy(b->data, &len, 4);
    return 0;
}

static void close_worker_fds(s2s_synth *s);

static int zygote_start(s2s_synth *s, const char *voice, struct part *parts, size_t n, int *rfd,
                        s2s_err *err) {
    if (s->zfd < 0) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
            return s2s_err_errno(err, "socketpair");
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) {
            close(sv[0]), close(sv[1]);
            return s2s_err_errno(err, "fork");
        }
        if (pid == 0) {
            signal(SIGINT, SIG_DFL), signal(SIGTERM, SIG_DFL), signal(SIGPIPE, SIG_DFL);
            close(sv[0]);
            close_worker_fds(s); /* the workers must see EOF when this process closes them */
            zygote_main(s, sv[1]);
            _exit(0);
        }
        close(sv[1]);
        s->zfd = sv[0], s->zpid = pid;
    }
    s2s_buf b = {0};
    int rc = encode_job(voice, parts, n, &b, err);
    if (rc) return rc;
    struct iovec iov = {b.data, b.len};
    int w = writev_all(s->zfd, &iov, 1);
    s2s_buf_free(&b);
    int fd = w == 0 ? recv_fd(s->zfd) : -1;
    if (fd < 0) return s2s_err_set(err, S2S_EIO, "the synthesis helper process is gone");
    *rfd = fd;
    return 0;
}

struct s2s_synth_job {
    json_t *item; /* reference */
    char id[256];
    char voice[128];
    struct part *parts;
    size_t np;
    int fd; /* child's stream, or -1 when the parts are already spoken */
    pid_t pid;
    struct worker *w;           /* queued to this worker (RESET_SNAPSHOT), or NULL */
    struct s2s_synth_job *next; /* the next job queued to w */
    size_t size;                /* bytes of the encoded job in w's job pipe */
    int done, drc;              /* read already (a later job of w was ended first), its status */
    s2s_err derr;
};

/* ---- workers (S2S_SYNTH_RESET_SNAPSHOT) ----------------------------------------------------
 * A worker is forked from this process (whose engine has never spoken), loads its voice, speaks
 * an empty text (which consumes the voice change espeak-ng queued for its wave generator: that
 * queue entry holds a malloc'd copy of the voice which the generator frees, so a copy of the
 * data segment taken before it would free it twice), and saves libespeak-ng's writable data
 * segment (.data and .bss: every global and function-static variable). Before each item it
 * copies the segment back and calls srand(1) (the C library's initial state; the +whisper and
 * klatt variants draw noise from rand()). The heap is not restored: the dictionaries, phoneme
 * tables, voice and translator it holds did not change in our tests; the check below and
 * tests/tools/synth.sh compare the result with a fresh fork.
 * Start-up check: before the empty text, a fork of the worker speaks a probe (the fork path's
 * state exactly); then the worker speaks it twice, restoring before each; all three must be the
 * same samples, else the worker answers 0 and exits and this voice goes to the zygote.
 * Protocol: jobs as for the zygote on the job pipe; on the result pipe first one status byte,
 * then per job the frames of child_speak. */
/* Where the parent is in a worker's result stream (see "reading results" below). */
enum { RX_LEN, RX_DATA, RX_ERRHDR, RX_ERRMSG, RX_RINGHDR };
struct rx {
    int state;
    unsigned char hdr[12]; /* the frame's u32 length; FRAME_ERR's code and length; FRAME_RING's
                            * length and position */
    size_t hn;             /* bytes of hdr read */
    uint32_t left;         /* RX_DATA: payload bytes still to read */
    size_t part;           /* the head job's part being read */
    s2s_buf b;             /* that part's WAV: 44 bytes for the header, then the samples */
    char msg[300];         /* RX_ERRMSG: FRAME_ERR's message */
    uint32_t mlen, mn;     /* its length, bytes read */
};

struct worker {
    pid_t pid;
    int jfd, rfd;   /* job pipe (write end), result pipe (read end, non-blocking) */
    size_t cap;     /* job pipe capacity */
    size_t pending; /* bytes of jobs sent and not yet read back */
    size_t nq;      /* jobs sent and not yet read back */
    s2s_synth_job *head, *tail;
    struct rx rx;
    struct ring ring;
    int dead;
};

struct seg {
    uintptr_t lo, hi;
};

static int seg_cb(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    struct seg *g = data;
    if (!info->dlpi_name || !strstr(info->dlpi_name, "libespeak-ng")) return 0;
    uintptr_t relro = 0, lo = 0, hi = 0;
    int nw = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_GNU_RELRO) relro = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_W))
            lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz, nw++;
    }
    if (nw != 1) return 1; /* a layout we do not know: no snapshot */
    /* ld.so makes [.., relro end rounded down to a page) read-only after relocation */
    uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    if (relro > lo) lo = relro & ~(pg - 1);
    if (lo < hi) g->lo = lo, g->hi = hi;
    return 1;
}

static const char *const probe_texts[] = {"Dr. Smith's fox paid $3.50 at 5:30, didn't it?",
                                          "Yes, 今天!"};
#define N_PROBE 2

/* Speaks the probe into memory; FNV-1a 64 of lengths and samples. */
static uint64_t probe_hash(s2s_synth *s) {
    uint64_t h = 14695981039346656037ULL;
    s->sink.fd = -1;
    g_sink = &s->sink;
    for (size_t i = 0; i < N_PROBE; i++) {
        s->sink.n = 0, s->sink.nomem = 0;
        if (espeak_ng_Synthesize(probe_texts[i], strlen(probe_texts[i]) + 1, 0, POS_CHARACTER, 0,
                                 SYNTH_FLAGS, NULL, NULL) != ENS_OK ||
            s->sink.nomem)
            return 0;
        uint64_t n = s->sink.n;
        const unsigned char *p = (const unsigned char *)s->sink.data;
        for (size_t j = 0; j < 8; j++)
            h = (h ^ ((n >> (8 * j)) & 0xFF)) * 1099511628211ULL;
        for (size_t j = 0; j < n * 2; j++)
            h = (h ^ p[j]) * 1099511628211ULL;
    }
    return h;
}

/* The probe as a fresh fork of this process speaks it. 0 on failure. */
static uint64_t probe_forked(s2s_synth *s) {
    int fd[2];
    if (pipe(fd) != 0) return 0;
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]), close(fd[1]);
        return 0;
    }
    if (pid == 0) {
        close(fd[0]);
        uint64_t h = probe_hash(s);
        _exit(write(fd[1], &h, 8) == 8 ? 0 : 3);
    }
    close(fd[1]);
    uint64_t h = 0;
    if (read_all(fd[0], &h, 8) != 0) h = 0;
    close(fd[0]);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
    return h;
}

static void worker_main(s2s_synth *s, const char *voice, int jfd, int rfd, struct ring *ring) {
    signal(SIGINT, SIG_DFL), signal(SIGTERM, SIG_DFL), signal(SIGPIPE, SIG_DFL);
    unsigned char ok = 0;
    struct seg g = {0, 0};
    s2s_err e;
    dl_iterate_phdr(seg_cb, &g);
    unsigned char *snap = g.hi > g.lo ? malloc(g.hi - g.lo) : NULL;
    if (!snap || set_voice(s, voice, &e) != 0) goto refuse;
    uint64_t ref = probe_forked(s);
    /* consume the queued voice change (see above): no audio kept */
    g_sink = NULL;
    if (espeak_ng_Synthesize("", 1, 0, POS_CHARACTER, 0, espeakCHARS_UTF8, NULL, NULL) != ENS_OK)
        goto refuse;
    memcpy(snap, (void *)g.lo, g.hi - g.lo);
    uint64_t h1 = probe_hash(s);
    memcpy((void *)g.lo, snap, g.hi - g.lo), srand(1);
    uint64_t h2 = probe_hash(s);
    if (ref == 0 || h1 != ref || h2 != ref) goto refuse;
    if (sink_to_fd(s, rfd) != 0) goto refuse;
    s->sink.ring = ring;
    ok = 1;
    if (write(rfd, &ok, 1) != 1) _exit(3);
    for (;;) {
        uint32_t len;
        if (read_all(jfd, &len, 4) != 0) _exit(0); /* EOF: no more jobs */
        char *job = malloc((size_t)len + 1);
        if (!job || read_all(jfd, job, len) != 0) _exit(3);
        job[len] = 0;
        uint32_t n; /* the voice (job's first string) is this worker's */
        const char **texts = job_texts(job, len, &n);
        memcpy((void *)g.lo, snap, g.hi - g.lo);
        srand(1);
        if (stream_texts(s, texts, n) != 0) _exit(3);
        free(texts), free(job);
    }
refuse:
    _exit(write(rfd, &ok, 1) == 1 ? 0 : 3);
}

static void close_worker_fds(s2s_synth *s) {
    for (size_t i = 0; i < s->n_workers; i++) {
        struct worker *w = s->workers[i];
        if (w->jfd >= 0) close(w->jfd), w->jfd = -1;
        if (w->rfd >= 0) close(w->rfd), w->rfd = -1;
    }
}

/* Marks every job still queued to w as failed (its worker stopped). */
static void worker_fail_queue(struct worker *w, const char *why) {
    for (s2s_synth_job *j = w->head; j; j = j->next) {
        j->done = 1;
        j->drc = s2s_err_set(&j->derr, S2S_EIO, "%s", why);
        j->w = NULL;
    }
    w->head = w->tail = NULL;
    w->pending = 0;
    w->nq = 0;
    s2s_buf_free(&w->rx.b);
    memset(&w->rx, 0, sizeof w->rx);
}

/* Stops w (kills it if needed) and reaps it. */
static void worker_stop(struct worker *w, int kill_it) {
    if (w->dead) return;
    if (w->jfd >= 0) close(w->jfd), w->jfd = -1;
    if (w->rfd >= 0) close(w->rfd), w->rfd = -1;
    if (kill_it && w->pid > 0) kill(w->pid, SIGKILL);
    while (w->pid > 0 && waitpid(w->pid, NULL, 0) < 0 && errno == EINTR) {
    }
    w->dead = 1;
}

static void workers_free(s2s_synth *s) {
    for (size_t i = 0; i < s->n_workers; i++) {
        struct worker *w = s->workers[i];
        worker_fail_queue(w, "synthesizer freed");
        worker_stop(w, 0); /* EOF on its job pipe: it exits */
        if (w->ring.map) munmap(w->ring.map, RING_HDR + RING_SIZE);
        free(w);
    }
    free(s->workers), free(s->pfd), free(s->pw);
    s->workers = NULL, s->pfd = NULL, s->pw = NULL, s->n_workers = 0;
    for (size_t i = 0; i < s->n_pools; i++)
        free(s->pools[i].w);
    free(s->pools);
    s->pools = NULL, s->n_pools = 0;
}

/* Starts a worker for voice: *out NULL when it refused (its check failed), else the worker. */
static int worker_spawn(s2s_synth *s, const char *voice, struct worker **out, s2s_err *err) {
    *out = NULL;
    struct worker **pw = realloc(s->workers, (s->n_workers + 1) * sizeof *pw);
    if (!pw) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    s->workers = pw;
    if (!(pw = realloc(s->pw, (s->n_workers + 1) * sizeof *pw)))
        return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    s->pw = pw;
    struct pollfd *pf = realloc(s->pfd, (s->n_workers + 1) * sizeof *pf);
    if (!pf) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    s->pfd = pf;
    struct worker *w = calloc(1, sizeof *w);
    if (!w) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    int jp[2], rp[2];
    if (pipe(jp) != 0) {
        free(w);
        return s2s_err_errno(err, "pipe");
    }
    if (pipe(rp) != 0) {
        close(jp[0]), close(jp[1]), free(w);
        return s2s_err_errno(err, "pipe");
    }
#ifdef F_SETPIPE_SZ
    fcntl(jp[1], F_SETPIPE_SZ, 1 << 20);
    fcntl(rp[1], F_SETPIPE_SZ, 1 << 20); /* an item's audio fits: the worker goes on */
#endif
    long cap = 65536;
#ifdef F_GETPIPE_SZ
    long c = fcntl(jp[1], F_GETPIPE_SZ);
    if (c > 0) cap = c;
#endif
    w->cap = (size_t)cap;
    w->ring.map = ring_map(); /* NULL: every frame through the pipe */
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(jp[0]), close(jp[1]), close(rp[0]), close(rp[1]);
        if (w->ring.map) munmap(w->ring.map, RING_HDR + RING_SIZE);
        free(w);
        return s2s_err_errno(err, "fork");
    }
    if (pid == 0) {
        close(jp[1]), close(rp[0]);
        close_worker_fds(s); /* the other workers' pipes */
        if (s->zfd >= 0) close(s->zfd);
        worker_main(s, voice, jp[0], rp[1], &w->ring);
        _exit(0);
    }
    close(jp[0]), close(rp[1]);
    w->pid = pid, w->jfd = jp[1], w->rfd = rp[0];
    s->workers[s->n_workers++] = w;
    unsigned char ok = 0;
    if (read_all(w->rfd, &ok, 1) != 0 || ok != 1) {
        worker_stop(w, 1);
        return 0;
    }
    int fl = fcntl(w->rfd, F_GETFL);
    if (fl < 0 || fcntl(w->rfd, F_SETFL, fl | O_NONBLOCK) != 0) {
        worker_stop(w, 1);
        return s2s_err_errno(err, "fcntl");
    }
    *out = w;
    return 0;
}

/* The worker for the next item of voice whose queue has room for size more bytes, or NULL: use
 * the zygote (the voice's worker failed its check, or the job is too big to queue safely). */
static int worker_pick(s2s_synth *s, const char *voice, size_t size, struct worker **out,
                       s2s_err *err) {
    *out = NULL;
    struct vpool *vp = NULL;
    for (size_t i = 0; i < s->n_pools && !vp; i++)
        if (strcmp(s->pools[i].voice, voice) == 0) vp = &s->pools[i];
    if (!vp) {
        struct vpool *p = realloc(s->pools, (s->n_pools + 1) * sizeof *p);
        if (!p) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
        s->pools = p;
        vp = &p[s->n_pools];
        memset(vp, 0, sizeof *vp);
        snprintf(vp->voice, sizeof vp->voice, "%s", voice);
        if (!(vp->w = calloc((size_t)s->o.jobs, sizeof *vp->w)))
            return s2s_err_set(err, S2S_ENOMEM, "out of memory");
        s->n_pools++;
    }
    if (vp->broken) return 0;
    /* The live worker with the fewest queued items (the first of equals); a new one only when
     * every live one has work queued, so a voice with few items starts few workers (each
     * start costs its check). Which worker speaks an item does not change its bytes. */
    size_t k = SIZE_MAX, free_k = SIZE_MAX;
    for (size_t i = 0; i < (size_t)s->o.jobs; i++) {
        struct worker *c = vp->w[i];
        if (!c || c->dead) {
            if (free_k == SIZE_MAX) free_k = i;
        } else if (k == SIZE_MAX || c->nq < vp->w[k]->nq) {
            k = i;
        }
    }
    if (free_k != SIZE_MAX && (k == SIZE_MAX || vp->w[k]->nq > 0)) {
        k = free_k;
        struct worker *w;
        int rc = worker_spawn(s, voice, &w, err);
        if (rc) return rc;
        if (!w) {
            vp->broken = 1;
            return 0;
        }
        vp->w[k] = w;
    }
    struct worker *w = vp->w[k];
    /* A job is written whole while the worker may be busy writing results we read later: it
     * must fit in the pipe, or the two processes could wait for each other. */
    if (w->pending + size > w->cap) return 0;
    *out = w;
    return 0;
}

/* Queues the item's parts to a worker (job->w set) or leaves job->w NULL (use the zygote). */
static int worker_send(s2s_synth *s, s2s_synth_job *job, s2s_err *err) {
    s2s_buf b = {0};
    int rc = encode_job(job->voice, job->parts, job->np, &b, err);
    if (rc) return rc;
    struct worker *w;
    rc = worker_pick(s, job->voice, b.len, &w, err);
    if (rc || !w) {
        s2s_buf_free(&b);
        return rc;
    }
    struct iovec iov = {b.data, b.len};
    int wr = writev_all(w->jfd, &iov, 1);
    size_t size = b.len;
    s2s_buf_free(&b);
    if (wr != 0) {
        worker_fail_queue(w, "the synthesis worker is gone");
        worker_stop(w, 1);
        return s2s_err_set(err, S2S_EIO, "the synthesis worker is gone");
    }
    job->w = w, job->size = size, job->next = NULL;
    if (w->tail)
        w->tail->next = job;
    else
        w->head = job;
    w->tail = job;
    w->pending += size;
    w->nq++;
    return 0;
}

/* ---- reading results ---------------------------------------------------------------------
 * The parent reads every worker's result pipe as soon as bytes arrive, into the parts of that
 * worker's oldest job, not only the pipe of the item it is ending: a worker that is ahead of
 * the others (a short item after a long one elsewhere) goes on speaking instead of waiting for
 * its pipe (~1.5 items of audio) to be read. Items are still ended in input order. The stream
 * is parsed incrementally (struct rx); samples are read straight into the part's buffer. */

/* Ends w's oldest job: rc 0 (every part read) or its error e. */
static void rx_job_done(struct worker *w, int rc, const s2s_err *e) {
    s2s_synth_job *j = w->head;
    struct rx *x = &w->rx;
    s2s_err_clear(&j->derr);
    j->drc = rc;
    if (rc) {
        j->derr = *e;
        for (size_t i = 0; i < j->np; i++)
            free(j->parts[i].wav), j->parts[i].wav = NULL;
    }
    j->done = 1;
    w->head = j->next;
    if (!w->head) w->tail = NULL;
    w->pending -= j->size;
    w->nq--;
    j->w = NULL, j->next = NULL;
    s2s_buf_free(&x->b);
    memset(x, 0, sizeof *x);
}

/* w's stream is out of step or gone: its oldest job fails with e, the others as stopped after
 * an earlier error, and w is stopped. */
static void rx_lost(struct worker *w, const s2s_err *e) {
    if (w->head) rx_job_done(w, e->code, e);
    worker_fail_queue(w, "synthesis worker stopped after an earlier error");
    worker_stop(w, 1);
}

/* Room in the part being read for len more bytes of samples (a part's first frame also makes
 * the WAV header's 44 bytes and room for ~47 s at 22 kHz). */
static int rx_room(struct rx *x, uint32_t len, s2s_err *e) {
    if (!x->b.data) {
        if (s2s_buf_reserve(&x->b, 44 + (1 << 21), e) != 0) return e->code;
        x->b.len = 44;
    }
    return s2s_buf_reserve(&x->b, len, e) != 0 ? e->code : 0;
}

/* Reads what w's pipe holds now (it never blocks) and acts on every whole frame. */
static void rx_pump(struct worker *w) {
    struct rx *x = &w->rx;
    s2s_err e;
    s2s_err_clear(&e);
    for (;;) {
        s2s_synth_job *j = w->head;
        if (!j) return;
        if (x->state == RX_LEN && x->hn == 0 && x->part == j->np) {
            rx_job_done(w, 0, NULL);
            continue;
        }
        if (x->state == RX_LEN && x->hn == 4) {
            uint32_t len;
            memcpy(&len, x->hdr, 4);
            x->hn = 0;
            if (len == FRAME_END) {
                if (!x->b.data && s2s_buf_reserve(&x->b, 44, &e) != 0) {
                    rx_lost(w, &e);
                    return;
                }
                size_t blen;
                struct part *pt = &j->parts[x->part++];
                if (x->b.len < 44) x->b.len = 44;
                pt->n = (x->b.len - 44) / 2;
                pt->wav = s2s_buf_steal(&x->b, &blen);
                unsigned char *fit = realloc(pt->wav, blen ? blen : 1); /* shrinks in place */
                if (fit) pt->wav = fit;
            } else if (len == FRAME_ERR) {
                x->state = RX_ERRHDR;
            } else if (len == FRAME_RING) {
                x->state = RX_RINGHDR;
            } else if (len & 1) {
                s2s_err_set(&e, S2S_EIO, "synthesis child sent a bad frame");
                rx_lost(w, &e);
                return;
            } else {
                if (rx_room(x, len, &e) != 0) {
                    rx_lost(w, &e);
                    return;
                }
                x->left = len;
                x->state = RX_DATA;
            }
            continue;
        }
        if (x->state == RX_DATA && x->left == 0) {
            x->state = RX_LEN;
            continue;
        }
        if (x->state == RX_RINGHDR && x->hn == 12) {
            /* samples in the shared ring: check the claim, copy them, free their room */
            uint32_t len, plo, phi;
            memcpy(&len, x->hdr, 4), memcpy(&plo, x->hdr + 4, 4), memcpy(&phi, x->hdr + 8, 4);
            uint64_t pos = (uint64_t)phi << 32 | plo;
            size_t o = (size_t)(pos % RING_SIZE);
            x->hn = 0;
            if (!w->ring.map || (len & 1) || len > RING_SIZE - o) {
                s2s_err_set(&e, S2S_EIO, "synthesis child sent a bad frame");
                rx_lost(w, &e);
                return;
            }
            if (rx_room(x, len, &e) != 0) {
                rx_lost(w, &e);
                return;
            }
            memcpy(x->b.data + x->b.len, w->ring.map + RING_HDR + o, len);
            x->b.len += len;
            __atomic_store_n(ring_consumed(&w->ring), pos + len, __ATOMIC_RELEASE);
            x->state = RX_LEN;
            continue;
        }
        if (x->state == RX_ERRHDR && x->hn == 8) {
            memcpy(&x->mlen, x->hdr + 4, 4);
            x->hn = 0, x->mn = 0;
            if (x->mlen >= sizeof x->msg) {
                s2s_err_set(&e, S2S_EIO, "synthesis worker died before it finished");
                rx_lost(w, &e);
                return;
            }
            x->state = RX_ERRMSG;
            continue;
        }
        if (x->state == RX_ERRMSG && x->mn == x->mlen) {
            /* the worker's error for this job; the stream is at the next job's start */
            uint32_t code;
            memcpy(&code, x->hdr, 4);
            x->msg[x->mlen] = 0;
            s2s_err_set(&e, code ? (int)code : S2S_EIO, "%s", x->msg);
            rx_job_done(w, e.code, &e);
            continue;
        }
        void *dst;
        size_t want;
        switch (x->state) {
        case RX_DATA:
            dst = x->b.data + x->b.len, want = x->left;
            break;
        case RX_ERRMSG:
            dst = x->msg + x->mn, want = x->mlen - x->mn;
            break;
        default: /* RX_LEN, RX_ERRHDR, RX_RINGHDR */
            dst = x->hdr + x->hn, want = (x->state == RX_LEN      ? 4
                                          : x->state == RX_ERRHDR ? 8
                                                                  : 12) -
                                         x->hn;
        }
        ssize_t r = read(w->rfd, dst, want);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (r <= 0) {
            s2s_err_set(&e, S2S_EIO, "synthesis worker died before it finished");
            rx_lost(w, &e);
            return;
        }
        if (x->state == RX_DATA)
            x->b.len += (size_t)r, x->left -= (uint32_t)r;
        else if (x->state == RX_ERRMSG)
            x->mn += (uint32_t)r;
        else
            x->hn += (size_t)r;
    }
}

/* The audio of job (queued to a worker): waits for it, reading every worker's results as they
 * come. */
static int worker_collect(s2s_synth *s, s2s_synth_job *job, s2s_err *err) {
    while (!job->done && job->w) {
        size_t k = 0;
        for (size_t i = 0; i < s->n_workers; i++) {
            struct worker *w = s->workers[i];
            if (!w->dead && w->head) {
                s->pfd[k].fd = w->rfd, s->pfd[k].events = POLLIN, s->pfd[k].revents = 0;
                s->pw[k++] = w;
            }
        }
        if (poll(s->pfd, (nfds_t)k, -1) < 0) {
            if (errno == EINTR) continue;
            return s2s_err_errno(err, "poll");
        }
        for (size_t i = 0; i < k; i++)
            if (s->pfd[i].revents) rx_pump(s->pw[i]);
    }
    if (job->drc) {
        *err = job->derr;
        return job->drc;
    }
    return 0;
}

/* Drops a job still queued to its worker: the worker owes its audio, so it is stopped. */
static void worker_drop(s2s_synth_job *job) {
    struct worker *w = job->w;
    if (!w) return;
    /* unlink job, fail the rest */
    s2s_synth_job **pp = &w->head;
    while (*pp && *pp != job)
        pp = &(*pp)->next;
    if (*pp) *pp = job->next;
    job->w = NULL, job->next = NULL;
    w->tail = NULL;
    for (s2s_synth_job *j = w->head; j; j = j->next)
        w->tail = j;
    worker_fail_queue(w, "synthesis worker stopped (an earlier item was dropped)");
    worker_stop(w, 1);
}

void s2s_synth_job_free(s2s_synth_job *job) {
    if (!job) return;
    worker_drop(job);
    if (job->fd >= 0) {
        close(job->fd); /* the child dies of SIGPIPE if it is still writing */
        if (job->pid > 0) {
            kill(job->pid, SIGKILL);
            while (waitpid(job->pid, NULL, 0) < 0 && errno == EINTR) {
            }
        }
    }
    json_decref(job->item);
    free_parts(job->parts, job->np);
    free(job);
}

s2s_synth_job *s2s_synth_begin(s2s_synth *s, json_t *item, s2s_err *err) {
    s2s_synth_job *job = calloc(1, sizeof *job);
    if (!job) {
        s2s_err_set(err, S2S_ENOMEM, "out of memory");
        return NULL;
    }
    job->fd = -1;
    job->item = json_incref(item);
    const char *id = s2s_item_id(item);
    snprintf(job->id, sizeof job->id, "%s", id ? id : "?");
    size_t nc = s2s_item_n_candidates(item);
    size_t np =
        ((s->o.parts & S2S_SYNTH_CTX) ? 1 : 0) + ((s->o.parts & S2S_SYNTH_CANDIDATES) ? nc : 0);
    int rc = 0;
    if (!(job->parts = calloc(np ? np : 1, sizeof *job->parts))) {
        s2s_err_set(err, S2S_ENOMEM, "out of memory");
        goto fail;
    }
    job->np = np;
    struct part *parts = job->parts;
    size_t k = 0;
    if (s->o.parts & S2S_SYNTH_CTX) {
        snprintf(parts[k].suffix, sizeof parts[k].suffix, "ctx");
        parts[k++].text = s2s_item_context_text(item);
    }
    if (s->o.parts & S2S_SYNTH_CANDIDATES)
        for (size_t i = 0; i < nc; i++) {
            snprintf(parts[k].suffix, sizeof parts[k].suffix, "c%zu", i);
            parts[k++].text = s2s_item_candidate_text(item, i);
        }
    for (size_t i = 0; i < np; i++) {
        if (s2s_synth_check_text(parts[i].text, err) != 0) {
            if (strcmp(parts[i].suffix, "ctx") == 0)
                s2s_err_prefix(err, "item %s: context text ", job->id);
            else
                s2s_err_prefix(err, "item %s: candidate %s text ", job->id, parts[i].suffix + 1);
            goto fail;
        }
    }
    if ((rc = s2s_synth_voice_for(s, item, job->voice, sizeof job->voice, err)) != 0) goto fail;
    if (s->o.isolate == S2S_SYNTH_ISOLATE_ITEM) {
        job->pid = -1;
        if (s->o.reset == S2S_SYNTH_RESET_SNAPSHOT) rc = worker_send(s, job, err);
        if (!rc && !job->w) rc = zygote_start(s, job->voice, parts, np, &job->fd, err);
        if (!rc && job->w)
            s->n_snapshot++;
        else if (!rc)
            s->n_forked++;
    } else
        rc = speak_parts(s, job->voice, parts, np, err);
    if (rc) {
        s2s_err_prefix(err, "item %s: ", job->id);
        goto fail;
    }
    return job;
fail:
    s2s_synth_job_free(job);
    return NULL;
}

/* Post-processing, WAV headers and the new item (audio object + provenance). */
static int job_finalize(s2s_synth *s, s2s_synth_job *job, json_t **out_item, s2s_err *err) {
    const char *id = job->id;
    struct part *parts = job->parts;
    size_t np = job->np;
    json_t *copy = NULL, *audio = NULL, *durs = NULL, *nsamp = NULL, *gains = NULL;
    int rc = 0;
    audio = json_object();
    durs = json_object();
    nsamp = json_object();
    gains = s->o.normalize ? json_object() : NULL;
    if (!audio || !durs || !nsamp || (s->o.normalize && !gains)) goto nomem;
    size_t clipped = 0;
    for (size_t i = 0; i < np; i++) {
        /* 44 is a multiple of 4, so the samples after the header are aligned for int16_t */
        int16_t *pcm = (int16_t *)(void *)(parts[i].wav + 44);
        size_t n = parts[i].n;
        clipped += s2s_synth_clipped(pcm, n);
        if (s->o.trim) n = s2s_synth_trim(pcm, n, s->rate_hz, NULL);
        if (n == 0) {
            rc = s2s_err_set(err, S2S_EDATA,
                             "item %s: %s: espeak-ng produced only silence for \"%.40s\"", id,
                             parts[i].suffix, parts[i].text);
            goto done;
        }
        if (s->o.normalize) {
            double g = 1.0;
            clipped += s2s_synth_normalize(pcm, n, &g);
            if (json_object_set_new(gains, parts[i].suffix, json_real(g)) != 0) goto nomem;
        }
        if (n > (0xFFFFFFFFu - 44) / 2) {
            rc = s2s_err_set(err, S2S_EDATA, "item %s: %s: audio too long for WAV", id,
                             parts[i].suffix);
            goto done;
        }
        parts[i].n = n;
        wav_header(parts[i].wav, n, s->rate_hz);
        if (!host_is_le())
            for (size_t j = 0; j < n; j++)
                put_le(parts[i].wav + 44 + 2 * j, (uint16_t)pcm[j], 2);
        if (json_object_set_new(durs, parts[i].suffix, json_real((double)n / s->rate_hz)) != 0 ||
            json_object_set_new(nsamp, parts[i].suffix, json_integer((json_int_t)n)) != 0)
            goto nomem;
    }
    if (json_object_set_new(audio, "rate", json_integer(s->rate_hz)) != 0 ||
        json_object_set_new(audio, "format", json_string("wav")) != 0 ||
        json_object_set_new(audio, "voice", json_string(job->voice)) != 0 ||
        json_object_set_new(audio, "speed", json_integer(s->o.rate)) != 0 ||
        json_object_set_new(audio, "pitch", json_integer(s->o.pitch)) != 0 ||
        json_object_set_new(audio, "seed", json_integer((json_int_t)s->o.seed)) != 0 ||
        json_object_set_new(audio, "engine", json_string(s->engine)) != 0 ||
        json_object_set_new(audio, "isolate", json_string(isolate_name(s->o.isolate))) != 0 ||
        json_object_set_new(audio, "trim", json_boolean(s->o.trim)) != 0 ||
        json_object_set_new(audio, "normalize", json_boolean(s->o.normalize)) != 0 ||
        json_object_set_new(audio, "clipped", json_integer((json_int_t)clipped)) != 0)
        goto nomem;
    if (gains) {
        if (json_object_set_new(audio, "gains", gains) != 0) {
            gains = NULL;
            goto nomem;
        }
        gains = NULL;
    }
    if (json_object_set_new(audio, "durations", durs) != 0) {
        durs = NULL;
        goto nomem;
    }
    durs = NULL;
    if (json_object_set_new(audio, "samples", nsamp) != 0) {
        nsamp = NULL;
        goto nomem;
    }
    nsamp = NULL;
    if (!(copy = json_deep_copy(job->item))) goto nomem;
    if (json_object_set_new(copy, "audio", audio) != 0) {
        audio = NULL;
        goto nomem;
    }
    audio = NULL;
    const char *parts_s = (s->o.parts & S2S_SYNTH_CTX) && (s->o.parts & S2S_SYNTH_CANDIDATES)
                              ? "ctx,candidates"
                          : (s->o.parts & S2S_SYNTH_CTX) ? "ctx"
                                                         : "candidates";
    json_t *params =
        json_pack("{s:s?, s:s?, s:I, s:i, s:i, s:s, s:b, s:b, s:s, s:s}", "voice", s->voice,
                  "voices", s->voices_str, "seed", (json_int_t)s->o.seed, "rate", s->o.rate,
                  "pitch", s->o.pitch, "parts", parts_s, "trim", s->o.trim, "normalize",
                  s->o.normalize, "isolate", isolate_name(s->o.isolate), "engine", s->engine);
    if (!params) goto nomem;
    if ((rc = s2s_item_add_provenance(copy, "s2s-synth", params, err)) != 0) goto done;
    *out_item = copy;
    copy = NULL;
    goto done;
nomem:
    rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
done:
    json_decref(copy), json_decref(audio), json_decref(durs), json_decref(nsamp);
    json_decref(gains);
    return rc;
}

/* "ctx.wav", "c3.flac", "c0.units", ...: speech of a part or something derived from it. */
static int is_speech_member(const char *suffix) {
    const char *dot = strchr(suffix, '.');
    if (!dot) return 0;
    size_t pl = (size_t)(dot - suffix);
    int part = (pl == 3 && strncmp(suffix, "ctx", 3) == 0) ||
               (pl >= 2 && suffix[0] == 'c' && strspn(suffix + 1, "0123456789") == pl - 1);
    if (!part) return 0;
    static const char *const ext[] = {"wav", "flac", "mp3", "ogg", "opus", "units", NULL};
    for (int i = 0; ext[i]; i++)
        if (strcmp(dot + 1, ext[i]) == 0) return 1;
    return 0;
}

int s2s_synth_end(s2s_synth *s, s2s_synth_job *job, s2s_sample *sample, s2s_err *err) {
    int rc = 0;
    if (job->w || job->done) {
        rc = worker_collect(s, job, err);
        if (rc) s2s_err_prefix(err, "item %s: ", job->id);
    } else if (job->fd >= 0) {
        rc = isolated_collect(job->parts, job->np, job->fd, job->pid, err);
        job->fd = -1;
        if (rc) s2s_err_prefix(err, "item %s: ", job->id);
    }
    json_t *res = NULL;
    if (!rc) rc = job_finalize(s, job, &res, err);
    if (!rc) {
        /* Speech of an earlier run (and units made from it) no longer matches the new audio
         * object: drop it, so the sample holds only what this run describes. */
        for (size_t i = sample->n_members; i-- > 0;)
            if (is_speech_member(sample->members[i].suffix))
                s2s_sample_remove(sample, sample->members[i].suffix);
        json_object_del(res, "units");
    }
    for (size_t i = 0; i < job->np && !rc; i++) {
        char suf[48];
        snprintf(suf, sizeof suf, "%s.wav", job->parts[i].suffix);
        rc = s2s_sample_put(sample, suf, job->parts[i].wav, 44 + job->parts[i].n * 2, err);
        job->parts[i].wav = NULL; /* taken, even on failure */
    }
    if (!rc) {
        json_decref(sample->item);
        sample->item = res;
    } else {
        json_decref(res);
    }
    s2s_synth_job_free(job);
    return rc;
}

int s2s_synth_sample(s2s_synth *s, s2s_sample *sample, s2s_err *err) {
    s2s_synth_job *job = s2s_synth_begin(s, sample->item, err);
    if (!job) return err->code ? err->code : S2S_ENOMEM;
    return s2s_synth_end(s, job, sample, err);
}

int s2s_synth_list_voices(s2s_synth *s, FILE *fp, const char *lang, s2s_err *err) {
    (void)s;
    const espeak_VOICE **vs;
    espeak_VOICE spec;
    memset(&spec, 0, sizeof spec);
    if (lang) {
        spec.languages = lang;
        vs = espeak_ListVoices(&spec);
    } else {
        vs = espeak_ListVoices(NULL);
    }
    for (size_t i = 0; vs && vs[i]; i++) {
        const espeak_VOICE *v = vs[i];
        for (const char *p = v->languages; p && *p; p += strlen(p + 1) + 2) {
            fprintf(fp, "%s\t%s\t%s\n", p + 1, v->name ? v->name : "",
                    v->identifier ? v->identifier : "");
            if (lang) break; /* one line per voice, by its main language */
        }
    }
    if (!lang) {
        spec.languages = "variant";
        vs = espeak_ListVoices(&spec);
        for (size_t i = 0; vs && vs[i]; i++) {
            const char *id = vs[i]->identifier ? vs[i]->identifier : "";
            fprintf(fp, "+%s\t%s\t%s\n", strncmp(id, "!v/", 3) == 0 ? id + 3 : id,
                    vs[i]->name ? vs[i]->name : "", id);
        }
    }
    if (ferror(fp)) return s2s_err_errno(err, "writing the voice list");
    return 0;
}

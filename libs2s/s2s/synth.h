/* s2s/synth.h — speech for items with libespeak-ng (the engine behind s2s-synth).
 *
 * One synthesizer per process. espeak-ng keeps global state (current voice, parameters, output
 * buffers) and function-static state that no API resets (the pitch-flutter phase, the wave
 * generator's phase and gain), so it is not thread-safe and an utterance depends on what the
 * same process spoke before. Hence:
 *   - s2s_synth_new refuses a second live handle in the same process (S2S_EUNSUP);
 *   - parallelism is by processes (s2s-synth -j N forks workers, each with its own handle);
 *   - with opts.isolate = S2S_SYNTH_ISOLATE_ITEM (the default) every item starts from the
 *     same engine state, so an item's audio is a pure function of the item and the options,
 *     whatever was spoken before and however items are spread over workers or shards. Two
 *     ways to get there, same bytes (opts.reset):
 *       S2S_SYNTH_RESET_SNAPSHOT (default): opts.jobs long-lived worker processes per voice,
 *       forked from a process whose engine has never spoken; each loads its voice, saves
 *       libespeak-ng's writable data segment (its globals and function-static variables) and
 *       before every item copies it back and re-seeds rand() (srand(1), the C library's
 *       initial state). A worker checks itself when it starts (a probe spoken by a fresh fork
 *       and twice after restores must match) and is not used if that fails;
 *       S2S_SYNTH_RESET_FORK: a helper process (the "zygote") forks one child per item from
 *       the never-spoken engine and hands its output pipe back over a socket. Also the
 *       fallback of SNAPSHOT (voices whose worker failed its check, oversized jobs).
 *     The context of an item is then
 *     sample-for-sample what `espeak-ng -v VOICE -s RATE -w` writes for the same text; its
 *     candidates are spoken after it by the same child. S2S_SYNTH_ISOLATE_UTTERANCE forks per
 *     utterance (every WAV equals the CLI's; ~25% more CPU), S2S_SYNTH_ISOLATE_NONE not at all
 *     (audio then depends on what the process spoke before). docs/synth.md has the figures.
 *
 * Text is passed to espeak-ng as plain UTF-8 (espeakCHARS_UTF8 | espeakENDPAUSE): no SSML and no
 * [[phoneme]] input, so '<', '&' and '[[' in a story are text, never markup.
 * Output: 16-bit mono PCM at espeak-ng's native rate (22050 Hz), stored as WAV members
 * "ctx.wav", "c0.wav", "c1.wav", ... with a canonical 44-byte header. */
#ifndef S2S_SYNTH_H
#define S2S_SYNTH_H

#include "s2s/err.h"
#include "s2s/sample.h"
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* What to speak (opts.parts). */
enum { S2S_SYNTH_CTX = 1 << 0, S2S_SYNTH_CANDIDATES = 1 << 1 };

/* opts.isolate */
enum { S2S_SYNTH_ISOLATE_NONE = 0, S2S_SYNTH_ISOLATE_ITEM = 1, S2S_SYNTH_ISOLATE_UTTERANCE = 2 };

/* Peak level of --normalize: -1 dBFS = 29204 / 32767. */
#define S2S_SYNTH_NORM_PEAK 29204
/* --trim: a sample is silent when |x| <= this (about -50 dBFS); see s2s_synth_trim. */
#define S2S_SYNTH_TRIM_THRESHOLD 100
/* --trim keeps this much silence (10 ms) before the first and after the last loud sample. */
#define S2S_SYNTH_TRIM_PAD_MS 10

typedef struct s2s_synth_opts {
    const char *voice;  /* one voice for every item ("en-us", "cmn", "en-us+f3"); NULL: by lang */
    const char *voices; /* "a,b,c": voice per item = f(seed, id); NULL: off. Overrides voice. */
    uint64_t seed;      /* for voices (recorded in ID.json) */
    int rate;           /* words per minute, 80..450 (espeak-ng's default 175) */
    int pitch;          /* 0..99 (espeak-ng's default 50) */
    unsigned parts;     /* S2S_SYNTH_CTX | S2S_SYNTH_CANDIDATES */
    int trim;           /* 1: cut leading/trailing silence (S2S_SYNTH_TRIM_*) */
    int normalize;      /* 1: scale each utterance so that its peak is S2S_SYNTH_NORM_PEAK */
    int isolate;        /* S2S_SYNTH_ISOLATE_* (default ITEM; see above) */
    int jobs;           /* ISOLATE_ITEM with RESET_SNAPSHOT: worker processes per voice, 1..64 */
    int reset;          /* S2S_SYNTH_RESET_* (default SNAPSHOT; see above): same bytes either way */
} s2s_synth_opts;

/* opts.reset */
enum { S2S_SYNTH_RESET_SNAPSHOT = 0, S2S_SYNTH_RESET_FORK = 1 };

/* Fills the defaults: no voice (by lang), seed 0, rate 175, pitch 50, both parts, no trim, no
 * normalize, isolate S2S_SYNTH_ISOLATE_ITEM, jobs 1, reset S2S_SYNTH_RESET_SNAPSHOT. */
void s2s_synth_opts_default(s2s_synth_opts *o);

typedef struct s2s_synth s2s_synth;

/* Initialises espeak-ng (synchronous output, synth callback) and checks the options: rate and
 * pitch ranges, parts, and every voice named in opts (unknown voice: S2S_EINVAL with close
 * matches). The strings of opts are copied. Returns NULL and fills err on failure; S2S_EUNSUP if
 * another handle is alive in this process. Free with s2s_synth_free. */
s2s_synth *s2s_synth_new(const s2s_synth_opts *opts, s2s_err *err);
/* Frees s. espeak-ng itself stays initialised for the rest of the process (it does not
 * survive espeak_ng_Terminate and a new initialisation), so a later handle reuses its engine,
 * state included. Safe with NULL. */
void s2s_synth_free(s2s_synth *s);

/* Sample rate of the output (espeak-ng's, 22050). */
int s2s_synth_rate(const s2s_synth *s);

/* Checks that a voice name is one espeak-ng knows: a language code, voice file or voice name,
 * optionally with "+VARIANT" (a file of espeak-ng-data/voices/!v). On failure S2S_EINVAL with
 * "unknown voice "X" (close: a, b, c)". */
int s2s_synth_check_voice(s2s_synth *s, const char *voice, s2s_err *err);

/* The voice for an item: opts.voices (one of them by FNV-1a 64 of "SEED:ID"), else opts.voice,
 * else by the item's lang: en -> en-us, zh -> cmn, any other code espeak-ng knows as itself.
 * Writes the name to buf (bufsize bytes). S2S_EDATA ("language "xx" has no espeak-ng voice
 * (close: ...)") when the lang has none. */
int s2s_synth_voice_for(s2s_synth *s, const json_t *item, char *buf, size_t bufsize, s2s_err *err);

/* Checks one text before speaking: valid UTF-8, not empty or only whitespace (Unicode
 * whitespace included). S2S_EDATA with the reason ("is empty", "is only whitespace", "is not
 * valid UTF-8 (byte 17)"). */
int s2s_synth_check_text(const char *text, s2s_err *err);

/* Speaks one text in this process with a voice (NULL: keep the current one) and the handle's
 * rate and pitch. *pcm (malloc'd, caller frees) receives *n samples at s2s_synth_rate. No
 * isolation and no post-processing: the engine state carries over to the next call. */
int s2s_synth_speak(s2s_synth *s, const char *voice, const char *text, int16_t **pcm, size_t *n,
                    s2s_err *err);

/* Speaks the parts of one sample (opts.parts) and adds to it: members "ctx.wav", "c0.wav", ...
 * (replacing members of those names), and to its item an "audio" object and a provenance record
 * (docs/synth.md). With opts.isolate the speaking runs in forked children. A bad item (empty or
 * whitespace-only text, invalid UTF-8, language without a voice) gives S2S_EDATA with
 * "item ID: reason" and leaves the sample unchanged. */
int s2s_synth_sample(s2s_synth *s, s2s_sample *sample, s2s_err *err);

/* The same in two halves, to keep several items in flight (s2s-synth -j N): s2s_synth_begin
 * checks the item and, with S2S_SYNTH_ISOLATE_ITEM, forks the child that speaks it and returns
 * at once (other isolation modes speak before returning). NULL and err on a bad item (S2S_EDATA,
 * "item ID: why") or a system error. With RESET_SNAPSHOT the item is queued to one of the
 * voice's opts.jobs workers (the least busy); begin 2 x opts.jobs items before ending the oldest
 * to keep every worker busy. s2s_synth_end waits for the item's audio and adds to the sample
 * what s2s_synth_sample adds; it frees job in every case. Jobs may be ended in any order, the
 * audio does not depend on it (a worker's earlier jobs are read and kept on the way).
 * s2s_synth_job_free drops a job (kills its child; a worker that still owes its audio is
 * stopped, and its other queued jobs then fail with S2S_EIO). */
typedef struct s2s_synth_job s2s_synth_job;
s2s_synth_job *s2s_synth_begin(s2s_synth *s, json_t *item, s2s_err *err);
int s2s_synth_end(s2s_synth *s, s2s_synth_job *job, s2s_sample *sample, s2s_err *err);
void s2s_synth_job_free(s2s_synth_job *job);

/* Post-processing on 16-bit PCM (pure functions, usable without a handle). */
/* Cuts leading and trailing silence: keeps [first - pad, last + pad] where first/last are the
 * first/last samples with |x| > S2S_SYNTH_TRIM_THRESHOLD and pad is S2S_SYNTH_TRIM_PAD_MS.
 * Moves the kept samples to the start of pcm; returns the new length (0 if all silent).
 * *lead (may be NULL) receives the number of samples removed at the start. */
size_t s2s_synth_trim(int16_t *pcm, size_t n, int rate, size_t *lead);
/* Scales so that the peak becomes S2S_SYNTH_NORM_PEAK (a silent signal is left alone).
 * Returns the number of samples that clipped (0 in practice: the peak is below full scale). */
size_t s2s_synth_normalize(int16_t *pcm, size_t n, double *gain);
/* Samples at full scale (-32768 or 32767): a sign of clipping in the engine's output. */
size_t s2s_synth_clipped(const int16_t *pcm, size_t n);

/* 16-bit mono PCM -> WAV bytes with the canonical 44-byte header (RIFF, fmt PCM, data).
 * *out malloc'd, caller frees. Deterministic. */
int s2s_synth_wav(const int16_t *pcm, size_t n, int rate, unsigned char **out, size_t *len,
                  s2s_err *err);

/* Lists espeak-ng's voices on fp, one a line "LANG<TAB>NAME<TAB>FILE" (lang NULL: every voice
 * and every language it speaks, then the variants as "+VARIANT<TAB>NAME<TAB>!v/FILE"; else the
 * voices for that language, best first). */
int s2s_synth_list_voices(s2s_synth *s, FILE *fp, const char *lang, s2s_err *err);

/* How the items begun so far with S2S_SYNTH_ISOLATE_ITEM were isolated: *snapshot by a worker
 * restoring its saved engine state, *forked by a fresh fork (RESET_FORK, or the fallback when a
 * voice's worker failed its start-up check or a job was too big to queue). Either may be NULL. */
void s2s_synth_reset_counts(const s2s_synth *s, uint64_t *snapshot, uint64_t *forked);

/* "espeak-ng 1.51" (recorded in ID.json). Borrowed string. */
const char *s2s_synth_engine(const s2s_synth *s);

#endif

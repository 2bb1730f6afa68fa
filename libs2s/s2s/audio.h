/* s2s/audio.h — audio members in memory: decode any format to float mono, encode WAV/FLAC.
 *
 * Decoding takes the bytes of one member (or file) and gives float samples in [-1, 1], mixed
 * down to mono (mean of the channels), at the input's own rate. 16-bit PCM WAV, float WAV and
 * FLAC go through libsndfile (fast path); everything else (mp3, ogg/vorbis, opus, m4a/aac, other
 * WAV codecs, ...) through libavformat/libavcodec reading from the memory buffer.
 *
 * Encoding writes mono float or 16-bit samples as WAV (16-bit PCM or 32-bit float) or FLAC
 * (16-bit), deterministically: no PEAK chunk, no timestamps, no strings, so the same samples
 * give the same bytes. 16-bit WAV is written here (libsndfile's 44-byte header, then the
 * samples, no copy through libsndfile), float WAV and FLAC through libsndfile.
 *
 * libav prints its own warnings on stderr unless the program lowers its (process-wide) log
 * level, e.g. av_log_set_level(AV_LOG_QUIET): the library leaves that global alone.
 *
 * Sample scaling: s16 -> float is x / 32768; float -> s16 is lrint(x * 32768) clipped to
 * [-32768, 32767], so s16 -> float -> s16 is exact. No dither. */
#ifndef S2S_AUDIO_H
#define S2S_AUDIO_H

#include "s2s/err.h"
#include <stddef.h>
#include <stdint.h>

/* Containers. */
enum { S2S_AUDIO_OTHER = 0, S2S_AUDIO_WAV = 1, S2S_AUDIO_FLAC = 2 };
/* Sample formats. */
enum { S2S_AUDIO_FMT_OTHER = 0, S2S_AUDIO_S16 = 1, S2S_AUDIO_F32 = 2 };

typedef struct s2s_audio {
    float *samples; /* n mono samples, malloc'd; owned by the struct (s2s_audio_free) */
    size_t n;       /* number of samples (frames) */
    int rate;       /* samples per second */
    /* What the decoded input was (set by s2s_audio_decode; ignored by encode): */
    int src_channels;  /* channels before the downmix */
    int src_container; /* S2S_AUDIO_WAV, S2S_AUDIO_FLAC or S2S_AUDIO_OTHER */
    int src_format;    /* S2S_AUDIO_S16, S2S_AUDIO_F32 or S2S_AUDIO_FMT_OTHER */
    char codec[32];    /* short codec name: "pcm_s16le", "pcm_f32le", "flac", "mp3", "opus"... */
} s2s_audio;

/* Decodes one audio file held in memory.
 * data/size: the file's bytes (not modified, not kept). name: used in messages and as a hint
 * for format probing ("ctx.mp3", "rec/x.m4a"); may be NULL.
 * Fills *out (previous content ignored; free with s2s_audio_free, also after failure).
 * Returns 0, or S2S_EFORMAT (corrupt/truncated/not audio), S2S_EUNSUP (codec not supported),
 * S2S_EDATA (zero-length audio, NaN or infinite samples), S2S_ENOMEM. The message says why,
 * without the name (callers prefix "sample ID member: "). */
int s2s_audio_decode(const void *data, size_t size, const char *name, s2s_audio *out, s2s_err *err);

/* Encodes a->samples (mono, a->rate) as container S2S_AUDIO_WAV or S2S_AUDIO_FLAC with sample
 * format S2S_AUDIO_S16 or S2S_AUDIO_F32 (FLAC: S16 only; F32 gives S2S_EINVAL).
 * On success *out is a malloc'd buffer the caller frees, *outsize its length. Returns 0 or a
 * negative S2S_E* code (EINVAL for a bad combination or rate, ENOMEM, EIO from libsndfile). */
int s2s_audio_encode(const s2s_audio *a, int container, int sample_format, unsigned char **out,
                     size_t *outsize, s2s_err *err);

/* Same as s2s_audio_encode for 16-bit samples (e.g. espeak-ng output): pcm[0..n-1] at rate,
 * written as 16-bit WAV or FLAC, bit-exact. */
int s2s_audio_encode_s16(const int16_t *pcm, size_t n, int rate, int container, unsigned char **out,
                         size_t *outsize, s2s_err *err);

/* ---- streaming: decode and encode block by block (memory flat whatever the length) -------- */
typedef struct s2s_audio_reader s2s_audio_reader;

/* Opens data[0..size-1] for decoding (data must stay valid until close). Fills *info like
 * s2s_audio_decode except samples (NULL) and n (0). Returns NULL on failure (err set as for
 * s2s_audio_decode). */
s2s_audio_reader *s2s_audio_reader_open(const void *data, size_t size, const char *name,
                                        s2s_audio *info, s2s_err *err);
/* Decodes up to max mono samples into buf. Returns the count (> 0), 0 at the end of the audio
 * (after the end checks: truncation, zero length), or a negative S2S_E* (NaN or infinite
 * samples give S2S_EDATA). */
long s2s_audio_reader_read(s2s_audio_reader *r, float *buf, size_t max, s2s_err *err);
/* Same as s2s_audio_reader_open for a file: reads size bytes from offset 0 of fd with pread
 * (fd is not closed and must stay open until close; its file offset is not used). Memory
 * stays flat whatever the file's size: for members too large to hold in memory. */
s2s_audio_reader *s2s_audio_reader_open_fd(int fd, size_t size, const char *name, s2s_audio *info,
                                           s2s_err *err);
/* Samples returned so far. */
size_t s2s_audio_reader_count(const s2s_audio_reader *r);
/* Frees the reader. Safe with NULL. */
void s2s_audio_reader_close(s2s_audio_reader *r);

typedef struct s2s_audio_writer s2s_audio_writer;

/* Starts an in-memory WAV or FLAC file (same container/format rules as s2s_audio_encode). */
s2s_audio_writer *s2s_audio_writer_new(int rate, int container, int sample_format, s2s_err *err);
/* Same, writing the file to fd (a seekable file, from offset 0, with pwrite; e.g. fileno of a
 * tmpfile()) instead of memory: s2s_audio_writer_finish then gives *out = NULL and *outsize =
 * the file's length. The bytes are the same as in memory. fd is not closed. */
s2s_audio_writer *s2s_audio_writer_new_fd(int fd, int rate, int container, int sample_format,
                                          s2s_err *err);
/* Room for n more samples in an in-memory 16-bit WAV (one allocation instead of a growing
 * buffer); only a hint: no effect on other writers or on the bytes. Returns 0 or S2S_ENOMEM. */
int s2s_audio_writer_reserve(s2s_audio_writer *w, size_t n, s2s_err *err);
/* Appends x[0..n-1] (mono). */
int s2s_audio_writer_write(s2s_audio_writer *w, const float *x, size_t n, s2s_err *err);
/* Ends the file: *out (malloc'd, caller frees), *outsize. Frees w, also on failure. */
int s2s_audio_writer_finish(s2s_audio_writer *w, unsigned char **out, size_t *outsize,
                            s2s_err *err);
/* Drops an unfinished file. Safe with NULL. */
void s2s_audio_writer_abort(s2s_audio_writer *w);

/* ---- plain PCM WAV in memory: a view of the samples, no decoding, no copy ------------------- */

/* A view of the PCM samples of a WAV held in memory (no copy). */
typedef struct {
    const unsigned char *data; /* first sample: little-endian interleaved integers */
    size_t frames;             /* sample frames (data holds frames * channels * bits/8 bytes) */
    int rate, channels, bits;  /* bits: 8 (unsigned), 16, 24 or 32 (signed) */
} s2s_wav_pcm;

/* 1: buf is a well-formed RIFF/WAVE with integer PCM (format 1, or EXTENSIBLE with the PCM
 * subformat) and *out views its samples; 0: anything else (float, another container, an
 * oddity this parser does not take): decode it with s2s_audio_decode/libsndfile instead,
 * which also gives the precise error for damaged data. Never reads past size.
 * What it takes: "fmt " before "data"; chunks before "data" skipped with their pad byte when
 * their length is odd (ids must be printable ASCII and each chunk must fit in the file); 1..64
 * channels; block align = channels * bits / 8; EXTENSIBLE only with valid bits = bits. The
 * frames are the data chunk's length / block align (a partial last frame is ignored, as
 * libsndfile does). A data chunk longer than the file is refused (0: the decoder reports
 * "truncated WAV"), except the placeholder lengths >= 0x7fff0000 of streaming writers, which
 * mean "to the end of the file" (as libsndfile reads them). 0 frames is a valid view (the
 * decoder reports "zero-length audio"). The samples agree bit for bit with libsndfile's
 * (tests/unit/test_audio.c). *out is zeroed when 0 is returned. */
int s2s_wav_pcm_view(const void *buf, size_t size, s2s_wav_pcm *out);

/* Frees a->samples and zeroes the struct. Safe on a zeroed or already freed struct. */
void s2s_audio_free(s2s_audio *a);

/* 1 if a member suffix or file name ends with a known audio extension (.wav .flac .mp3 .ogg
 * .oga .opus .m4a .mp4 .aac .wma .aif .aiff .au .webm .mka), case-insensitive; else 0. */
int s2s_audio_is_audio_name(const char *name);

/* "wav" / "flac" for a container (NULL otherwise). */
const char *s2s_audio_container_ext(int container);
/* "s16" / "f32" for a sample format (NULL otherwise). */
const char *s2s_audio_format_name(int sample_format);

#endif

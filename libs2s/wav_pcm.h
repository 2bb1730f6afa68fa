/* wav_pcm.h — internal to libs2s: the WAV parser behind s2s_wav_pcm_view (s2s/audio.h), over
 * any byte source (memory, or a file read with pread). Its own file (wav_pcm.c) so that a tool
 * can view WAV samples without linking audio.c and with it libsndfile, libav* and libsoxr. */
#ifndef S2S_WAV_PCM_INTERNAL_H
#define S2S_WAV_PCM_INTERNAL_H

#include "s2s/audio.h"
#include <stddef.h>

/* Copies n bytes at offset off of the source into buf: 0, or -1 if they cannot be read. */
typedef int (*s2s_wav_get_fn)(void *u, size_t off, void *buf, size_t n);

/* The rules of s2s_wav_pcm_view for a source of size bytes read through get(u, ...).
 * Returns 1 with *out filled except out->data (NULL) and *data_off = the byte offset of the
 * first sample; 0 otherwise (*out zeroed). */
int s2s_wav_pcm_parse(s2s_wav_get_fn get, void *u, size_t size, s2s_wav_pcm *out, size_t *data_off);

#endif

/* wav_pcm.c — s2s_wav_pcm_view: a view of the samples of a plain integer-PCM WAV. Only what
 * libsndfile reads the same way is taken (s2s/audio.h says what); anything else is left to
 * s2s_audio_decode (libsndfile/libav), which also words the errors. No library dependency. */
#include "wav_pcm.h"

#include <limits.h>
#include <stdint.h>
#include <string.h>

static uint16_t rd16(const unsigned char *p) {
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t rd32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int s2s_wav_pcm_parse(s2s_wav_get_fn get, void *u, size_t size, s2s_wav_pcm *out,
                      size_t *data_off) {
    static const unsigned char pcm_guid[16] = {0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00,
                                               0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71};
    unsigned char h[40];
    size_t off = 12;
    unsigned align = 0;
    s2s_wav_pcm w;
    memset(&w, 0, sizeof w);
    memset(out, 0, sizeof *out);
    *data_off = 0;
    if (size < 12 || get(u, 0, h, 12) < 0 || memcmp(h, "RIFF", 4) != 0 ||
        memcmp(h + 8, "WAVE", 4) != 0)
        return 0;
    while (size - off >= 8) {
        if (get(u, off, h, 8) < 0) return 0;
        uint32_t len = rd32(h + 4);
        size_t room = size - off - 8;
        if (memcmp(h, "data", 4) == 0) {
            if (!align) return 0; /* no fmt chunk before the data */
            if (len > room) {
                if (len < 0x7fff0000u) return 0; /* truncated: the decoder says so */
                len = (uint32_t)(room < 0x7fff0000u ? room : 0x7fff0000u); /* streaming writer */
            }
            w.frames = len / align; /* a partial last frame is ignored, as libsndfile does */
            /* libsndfile reads every chunk to the end of the file (past the RIFF size too) and
             * takes the last "data" and "fmt ": after the data, only well-formed chunks of
             * other kinds may follow (found by fuzz_codec's comparison with libsndfile). */
            size_t walked = 0;
            for (size_t at = off + 8 + (size_t)len + (len & 1); at < size && size - at >= 8;) {
                if (++walked > 64) return 0; /* a WAV padded with chunks: libsndfile's job */
                if (get(u, at, h, 8) < 0) return 0;
                uint32_t cl = rd32(h + 4);
                if (memcmp(h, "data", 4) == 0 || memcmp(h, "fmt ", 4) == 0) return 0;
                for (int i = 0; i < 4; i++)
                    if (h[i] < 0x20 || h[i] > 0x7e) return 0;
                if (cl > size - at - 8) return 0;
                at += 8 + (size_t)cl + (cl & 1);
            }
            *out = w;
            *data_off = off + 8;
            return 1;
        }
        for (int i = 0; i < 4; i++)
            if (h[i] < 0x20 || h[i] > 0x7e) return 0; /* libsndfile resynchronises: not here */
        if (len > room) return 0;
        if (memcmp(h, "fmt ", 4) == 0) {
            if (align || len < 16 || get(u, off + 8, h, len < 40 ? len : 40) < 0) return 0;
            unsigned tag = rd16(h), ch = rd16(h + 2), bits = rd16(h + 14);
            uint32_t rate = rd32(h + 4);
            if (tag == 0xFFFE) {
                if (len < 40 || rd16(h + 16) < 22 || rd16(h + 18) != bits ||
                    memcmp(h + 24, pcm_guid, 16) != 0)
                    return 0;
            } else if (tag != 1) {
                return 0;
            }
            if (ch < 1 || ch > 64 || rate < 1 || rate > INT_MAX ||
                (bits != 8 && bits != 16 && bits != 24 && bits != 32) ||
                rd16(h + 12) != ch * bits / 8)
                return 0;
            w.rate = (int)rate;
            w.channels = (int)ch;
            w.bits = (int)bits;
            align = ch * bits / 8;
        }
        if (len + (size_t)(len & 1) > room) break; /* a last chunk without its pad byte */
        off += 8 + (size_t)len + (len & 1);
    }
    return 0;
}

typedef struct {
    const unsigned char *p;
    size_t n;
} mem_src;

static int mem_get(void *u, size_t off, void *buf, size_t n) {
    const mem_src *m = u;
    if (off > m->n || n > m->n - off) return -1;
    memcpy(buf, m->p + off, n);
    return 0;
}

int s2s_wav_pcm_view(const void *buf, size_t size, s2s_wav_pcm *out) {
    mem_src m = {buf, size};
    size_t off;
    memset(out, 0, sizeof *out);
    if (!buf || !s2s_wav_pcm_parse(mem_get, &m, size, out, &off)) return 0;
    out->data = (const unsigned char *)buf + off;
    return 1;
}

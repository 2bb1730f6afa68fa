/* ngram_tok.c — tokenization for the n-gram model (see s2s/ngram.h, docs/ngram.md).
 *
 * words: ASCII lower-cased; whitespace separates; punctuation is split off as one token per
 *        character, except an apostrophe or hyphen between two word characters ("don't",
 *        "well-known") and '.' or ',' between two digits ("3.14", "1,000"). U+2019 inside a word
 *        becomes "'". Non-ASCII letters are word characters, kept as they are.
 * chars: one token per code point, whitespace dropped, ASCII lower-cased.
 * units: whitespace-separated tokens as they are.
 * words and chars reject invalid UTF-8 (the message names the byte offset). */
#include "s2s/ngram.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

s2s_tok_mode s2s_tok_mode_for_lang(const char *lang) {
    /* Languages written without spaces between words. */
    static const char *const chars[] = {"zh", "ja", "ko",  "th",  "lo", "km",
                                        "my", "bo", "yue", "wuu", "cmn"};
    if (!lang) return S2S_TOK_WORDS;
    size_t n = strcspn(lang, "-_");
    for (size_t i = 0; i < sizeof chars / sizeof *chars; i++) {
        if (strlen(chars[i]) == n && strncmp(lang, chars[i], n) == 0) return S2S_TOK_CHARS;
        /* case-insensitive for "ZH" etc. */
        if (strlen(chars[i]) == n) {
            size_t k = 0;
            while (k < n && (lang[k] | 0x20) == chars[i][k])
                k++;
            if (k == n) return S2S_TOK_CHARS;
        }
    }
    return S2S_TOK_WORDS;
}

/* Decodes one UTF-8 code point at s[i]; returns its length, 0 if invalid. */
static size_t utf8_next(const unsigned char *s, size_t i, uint32_t *cp) {
    unsigned c = s[i];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2, v = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, v = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    for (size_t k = 1; k < len; k++) {
        unsigned d = s[i + k]; /* the NUL terminator stops this (not a continuation byte) */
        if ((d & 0xC0) != 0x80) return 0;
        v = (v << 6) | (d & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return len;
}

static int is_space(uint32_t c) {
    return c == ' ' || (c >= 9 && c <= 13) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200B) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000 || c == 0xFEFF;
}

static int is_punct(uint32_t c) {
    if (c < 0x80)
        return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
               (c >= 123 && c <= 126);
    return (c >= 0xA1 && c <= 0xBF && c != 0xAA && c != 0xB2 && c != 0xB3 && c != 0xB5 &&
            c != 0xB9 && c != 0xBA && !(c >= 0xBC && c <= 0xBE)) ||
           c == 0xD7 || c == 0xF7 || (c >= 0x2010 && c <= 0x2027) || (c >= 0x2030 && c <= 0x205E) ||
           (c >= 0x3001 && c <= 0x3003) || (c >= 0x3008 && c <= 0x3011) ||
           (c >= 0x3014 && c <= 0x301F) || (c >= 0xFF01 && c <= 0xFF0F) ||
           (c >= 0xFF1A && c <= 0xFF20) || (c >= 0xFF3B && c <= 0xFF40) ||
           (c >= 0xFF5B && c <= 0xFF65) ||
           /* symbols and emoji: arrows .. misc symbols and arrows, dingbats; pictographs */
           (c >= 0x2190 && c <= 0x2BFF) || (c >= 0x1F000 && c <= 0x1FAFF);
}

static int is_word(uint32_t c) {
    return !is_space(c) && !is_punct(c) && c != 0;
}

static int is_digit(uint32_t c) {
    return c >= '0' && c <= '9';
}

typedef struct toklist {
    char **v;
    size_t n, cap;
} toklist;

static int tl_push(toklist *tl, const char *p, size_t len) {
    if (tl->n == tl->cap) {
        size_t cap = tl->cap ? tl->cap * 2 : 16;
        char **v = realloc(tl->v, cap * sizeof *v);
        if (!v) return S2S_ENOMEM;
        tl->v = v, tl->cap = cap;
    }
    char *s = malloc(len + 1);
    if (!s) return S2S_ENOMEM;
    memcpy(s, p, len);
    s[len] = '\0';
    tl->v[tl->n++] = s;
    return 0;
}

void s2s_tokens_free(char **toks, size_t n) {
    if (!toks) return;
    for (size_t i = 0; i < n; i++)
        free(toks[i]);
    free(toks);
}

long s2s_ngram_tokenize(const char *text, s2s_tok_mode mode, char ***toks, s2s_err *err) {
    *toks = NULL;
    if (!text) return s2s_err_set(err, S2S_EINVAL, "tokenize: no text");
    const unsigned char *s = (const unsigned char *)text;
    size_t len = strlen(text);
    toklist tl = {0};
    int rc = 0;
    if (mode == S2S_TOK_UNITS) {
        size_t i = 0;
        while (i < len) {
            while (i < len && (s[i] == ' ' || (s[i] >= 9 && s[i] <= 13)))
                i++;
            size_t b = i;
            while (i < len && !(s[i] == ' ' || (s[i] >= 9 && s[i] <= 13)))
                i++;
            if (i > b && (rc = tl_push(&tl, text + b, i - b)) < 0) goto fail;
        }
        *toks = tl.v;
        return (long)tl.n;
    }
    if (mode != S2S_TOK_WORDS && mode != S2S_TOK_CHARS) {
        return s2s_err_set(err, S2S_EINVAL, "tokenize: unknown token mode %d", (int)mode);
    }
    /* Working buffer for the current word: never longer than the input. */
    char *w = malloc(len + 1);
    if (!w) return s2s_err_set(err, S2S_ENOMEM, "tokenize: out of memory");
    size_t wl = 0;
    uint32_t prev = 0; /* previous code point (0 at start / after space) */
    size_t i = 0;
    while (i < len) {
        uint32_t c;
        size_t cl = utf8_next(s, i, &c);
        if (!cl) {
            free(w);
            s2s_tokens_free(tl.v, tl.n);
            return s2s_err_set(err, S2S_EDATA, "invalid UTF-8 at byte %zu of the text", i);
        }
        if (mode == S2S_TOK_CHARS) {
            if (!is_space(c)) {
                char ch = c >= 'A' && c <= 'Z' ? (char)(c + 32) : 0;
                if ((rc = tl_push(&tl, ch ? &ch : text + i, ch ? 1 : cl)) < 0) goto fail_w;
            }
            i += cl;
            continue;
        }
        if (is_space(c)) {
            if (wl && (rc = tl_push(&tl, w, wl)) < 0) goto fail_w;
            wl = 0;
            prev = 0;
            i += cl;
            continue;
        }
        if (is_punct(c)) {
            uint32_t next = 0;
            if (i + cl < len && !utf8_next(s, i + cl, &next)) next = 0;
            int inner = 0;
            if ((c == '\'' || c == '-' || c == 0x2019) && wl && is_word(prev) && is_word(next))
                inner = 1;
            if ((c == '.' || c == ',') && wl && is_digit(prev) && is_digit(next)) inner = 1;
            if (inner) {
                if (c == 0x2019) {
                    w[wl++] = '\'';
                } else {
                    w[wl++] = (char)c;
                }
            } else {
                if (wl && (rc = tl_push(&tl, w, wl)) < 0) goto fail_w;
                wl = 0;
                if ((rc = tl_push(&tl, text + i, cl)) < 0) goto fail_w;
            }
            prev = c;
            i += cl;
            continue;
        }
        if (c >= 'A' && c <= 'Z') {
            w[wl++] = (char)(c + 32);
        } else {
            memcpy(w + wl, text + i, cl);
            wl += cl;
        }
        prev = c;
        i += cl;
    }
    if (wl && (rc = tl_push(&tl, w, wl)) < 0) goto fail_w;
    free(w);
    *toks = tl.v;
    return (long)tl.n;
fail_w:
    free(w);
fail:
    s2s_tokens_free(tl.v, tl.n);
    return s2s_err_set(err, rc, "tokenize: out of memory");
}

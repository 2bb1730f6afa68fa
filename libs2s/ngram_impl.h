/* ngram_impl.h — private structures shared by ngram.c (model, ARPA, scoring) and ngram_train.c.
 * Not a public header. */
#ifndef S2S_NGRAM_IMPL_H
#define S2S_NGRAM_IMPL_H

#include "s2s/ngram.h"
#include <stdint.h>

#define S2S_NGRAM_MAX_ORDER 32
#define NG_NONE UINT32_MAX /* "no id": an OOV token where the model has no <unk> */

/* Token strings interned to dense ids (open addressing on FNV-1a). */
typedef struct ng_vocab {
    char **str;      /* id -> string (owned) */
    uint32_t n, cap; /* ids in use */
    uint32_t *slot;  /* id + 1, 0 = empty */
    size_t mask;     /* slot count - 1 */
} ng_vocab;

int ng_vocab_init(ng_vocab *v, s2s_err *err);
void ng_vocab_free(ng_vocab *v);
/* Id of s, or NG_NONE. */
uint32_t ng_vocab_find(const ng_vocab *v, const char *s);
/* Id of s, interning it if new; negative on ENOMEM. */
int64_t ng_vocab_intern(ng_vocab *v, const char *s, s2s_err *err);

/* 64-bit hash of an id sequence (not stable across versions; in memory only). */
static inline uint64_t ng_mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}
static inline uint64_t ng_hash(const uint32_t *ids, int n) {
    uint64_t h = 0x9E3779B97F4A7C15ULL * (uint64_t)(n + 1);
    for (int i = 0; i < n; i++)
        h = ng_mix64(h ^ ((uint64_t)ids[i] + 0x632BE59BD9B4E019ULL));
    return h;
}

/* One n-gram of the model. */
typedef struct ng_entry {
    double lp;       /* log10 probability */
    double bow;      /* log10 backoff weight (0 when absent) */
    uint32_t off;    /* first id in lm->ids */
    uint8_t n;       /* order */
    uint8_t has_bow; /* the ARPA line had (or will have) a backoff field */
} ng_entry;

typedef struct ng_slot {
    uint64_t key;
    uint32_t idx; /* entry index, UINT32_MAX = empty */
} ng_slot;

struct s2s_lm {
    int order;
    s2s_tok_mode mode;
    int mode_known; /* mode from training, a \s2s-tok line, or s2s_lm_set_tok_mode */
    ng_vocab vocab;
    uint32_t unk, bos, eos; /* ids, NG_NONE when absent */
    ng_entry *ent;
    size_t n_ent, cap_ent;
    uint32_t *ids;
    size_t n_ids, cap_ids;
    size_t count[S2S_NGRAM_MAX_ORDER + 1]; /* n-grams per order */
    ng_slot *tab;
    size_t tab_mask;
    double disc[S2S_NGRAM_MAX_ORDER + 1][3]; /* training discounts (NAN when loaded) */
};

s2s_lm *ng_lm_new(s2s_err *err);
/* Appends an n-gram (ids copied); returns the entry index or negative on ENOMEM. */
int64_t ng_lm_add(s2s_lm *lm, const uint32_t *ids, int n, double lp, double bow, int has_bow,
                  s2s_err *err);
/* Builds the hash table over all entries; fails on a duplicate n-gram (names it). */
int ng_lm_index(s2s_lm *lm, s2s_err *err);
const ng_entry *ng_lm_find(const s2s_lm *lm, const uint32_t *ids, int n);
/* Rounds a log10 value to what the ARPA writer prints ("%.7g"), so that a trained model and the
 * same model read back from its file are the same numbers. */
double ng_round(double x);

#endif

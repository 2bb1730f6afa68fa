/* s2s/ngram.h — the built-in n-gram language model: training with interpolated modified
 * Kneser-Ney, standard ARPA read/write, and scoring of a continuation given a context.
 *
 * Tokens are strings. Text is split into tokens by s2s_ngram_tokenize: words (whitespace-
 * separated, punctuation split off) for languages written with spaces, one UTF-8 character per
 * token for languages written without (zh, ja, ...); unit sequences are their integers as strings.
 * All probabilities are natural-log internally; ARPA files store log10 as the format says. */
#ifndef S2S_NGRAM_H
#define S2S_NGRAM_H

#include <stddef.h>
#include <stdio.h>
#include "s2s/err.h"

typedef struct s2s_lm s2s_lm;

/* How text is split into tokens. */
typedef enum {
    S2S_TOK_WORDS = 0, /* lower-cased words, punctuation as separate tokens */
    S2S_TOK_CHARS = 1, /* one token per UTF-8 character, whitespace dropped */
    S2S_TOK_UNITS = 2  /* whitespace-separated tokens taken as they are (unit ids) */
} s2s_tok_mode;

/* Token mode for a language code: CHARS for zh, ja, ko, th, ... ; WORDS otherwise. */
s2s_tok_mode s2s_tok_mode_for_lang(const char *lang);

/* Splits text into tokens; *toks is a malloc'd array of malloc'd strings, freed with
 * s2s_tokens_free. Returns the number of tokens or a negative code. */
long s2s_ngram_tokenize(const char *text, s2s_tok_mode mode, char ***toks, s2s_err *err);
void s2s_tokens_free(char **toks, size_t n);

/* ---- training ------------------------------------------------------------------------------- */
typedef struct s2s_lm_trainer s2s_lm_trainer;
s2s_lm_trainer *s2s_lm_trainer_new(int order, s2s_tok_mode mode, s2s_err *err);
/* Adds one sentence (line of text; <s> and </s> are added around it). */
int s2s_lm_trainer_add(s2s_lm_trainer *t, const char *line, s2s_err *err);
/* Fixes the discounts D1, D2, D3+ of one order (1..order) instead of estimating them from the
 * count-of-counts (for tests and experiments). Each must be in [0, k] for count k. */
int s2s_lm_trainer_set_discounts(s2s_lm_trainer *t, int n, double d1, double d2, double d3,
                                 s2s_err *err);
/* Frees a trainer that will not be finished. Safe with NULL. */
void s2s_lm_trainer_free(s2s_lm_trainer *t);
/* Estimates the model (interpolated modified Kneser-Ney) and frees t. */
s2s_lm *s2s_lm_trainer_finish(s2s_lm_trainer *t, s2s_err *err);

/* ---- files ---------------------------------------------------------------------------------- */
/* Reads an ARPA file, plain or gzip-compressed (any order; from SRILM, KenLM, IRSTLM or ours).
 * The token mode is taken from a "\s2s-tok: MODE" comment line if present before \data\ (ours
 * writes it as "# \s2s-tok: MODE": KenLM accepts only '#' lines there), else S2S_TOK_WORDS,
 * or can be forced afterwards with s2s_lm_set_tok_mode. Errors name FILE:LINE. */
s2s_lm *s2s_lm_load_arpa(const char *path, s2s_err *err);
/* Writes standard ARPA (log10 probabilities and backoffs); deterministic ordering. */
int s2s_lm_write_arpa(const s2s_lm *lm, FILE *fp, s2s_err *err);
void s2s_lm_free(s2s_lm *lm);

int s2s_lm_order(const s2s_lm *lm);
s2s_tok_mode s2s_lm_tok_mode(const s2s_lm *lm);
void s2s_lm_set_tok_mode(s2s_lm *lm, s2s_tok_mode mode);
/* 1 if the token mode is known: the model was trained here, its file has a \s2s-tok line, or
 * s2s_lm_set_tok_mode was called; 0 if it is the WORDS default of a foreign ARPA file. */
int s2s_lm_tok_mode_known(const s2s_lm *lm);

/* Name of a token mode ("words", "chars", "units"); parses one (negative if unknown). */
const char *s2s_tok_mode_name(s2s_tok_mode mode);
int s2s_tok_mode_parse(const char *name, s2s_tok_mode *mode);

/* Number of n-grams of order n in the model (0 outside 1..order). */
size_t s2s_lm_count(const s2s_lm *lm, int n);
/* Vocabulary: token strings with ids 0..size-1 (<s>, </s> and <unk> included when present).
 * Borrowed pointers, valid while lm lives. */
size_t s2s_lm_vocab_size(const s2s_lm *lm);
const char *s2s_lm_vocab_word(const s2s_lm *lm, size_t i);
/* 1 if the model has an <unk> 1-gram. */
int s2s_lm_has_unk(const s2s_lm *lm);
/* Discount Dk (k = 1, 2, 3 for 3+) used for order n when the model was trained here; NAN for a
 * model read from a file. */
double s2s_lm_discount(const s2s_lm *lm, int n, int k);

/* ---- scoring -------------------------------------------------------------------------------- */
/* Natural-log probability of tokens cont[0..m-1] given ctx[0..n-1] as history (the context is
 * prefixed by <s>; with n = 0 the continuation starts a sentence). Unknown tokens map to <unk>
 * (counted in *oov if not NULL). Adds </s> after the continuation only if with_eos.
 * Returns the summed negative log-likelihood in *nll and the number of scored tokens (m, plus 1
 * with_eos) in *ntok. Thread-safe for concurrent readers of one model. */
int s2s_lm_score(const s2s_lm *lm, const char *const *ctx, size_t n, const char *const *cont,
                 size_t m, int with_eos, double *nll, size_t *ntok, size_t *oov, s2s_err *err);

/* Perplexity statistics over a text. */
typedef struct s2s_lm_ppl {
    size_t sentences; /* non-empty lines */
    size_t words;     /* tokens, without </s> */
    size_t oov;       /* tokens not in the vocabulary */
    size_t scored;    /* tokens whose probability counts: words + one </s> per sentence, minus
                         OOVs when the model has no <unk> (with <unk>, OOVs are scored as <unk>) */
    double logprob10; /* summed log10 probability of the scored tokens */
    double ppl;       /* 10^(-logprob10 / scored) */
} s2s_lm_ppl;
/* Reads lines from fp (one sentence each; empty lines skipped), tokenizes them with the model's
 * mode and fills *st. Errors name the line. */
int s2s_lm_perplexity_ex(const s2s_lm *lm, FILE *fp, s2s_lm_ppl *st, s2s_err *err);

/* Perplexity over lines of text (each a sentence with </s>), as SRILM/IRSTLM report it.
 * *ntok = tokens scored (s2s_lm_ppl.scored), *oov = OOV tokens. */
int s2s_lm_perplexity(const s2s_lm *lm, FILE *fp, double *ppl, size_t *ntok, size_t *oov,
                      s2s_err *err);

#endif

/* s2s/recipe.h — dataset recipes (manifests/NAME.recipe): what s2s-build turns into shards.
 *
 * A recipe is UTF-8 text, one "key = value" per line, '#' starts a comment. Keys (docs/recipes.md):
 *   name       dataset name, used for shard file names (required; letters, digits, '_', '-')
 *   source     IMPORTER LANG PATH [PATH...]  (repeatable; PATH relative to the root)
 *   root       directory the sources are under, relative to the recipe file (optional: else
 *              --root or $S2S_CORPORA must be given)
 *   voice      espeak-ng voice for every item (optional: else the default voice of each language)
 *   voices     comma-separated voices spread over items by seed and id (optional)
 *   speech     ctx or ctx,candidates (default ctx,candidates)
 *   rate       sample rate of the stored audio (default 16000)
 *   codebook   "train K" (learn K units from the dataset's own speech) or a codebook path
 *              relative to the recipe, or "none" (no units)
 *   per_shard  samples per shard (default 1000)
 *   seed       integer seed for every seeded step (default 1)
 */
#ifndef S2S_RECIPE_H
#define S2S_RECIPE_H

#include "s2s/err.h"
#include <stddef.h>

typedef struct s2s_recipe_source {
    char *importer; /* storycloze | cmmlu | s2sbench | items */
    char *lang;
    char **paths; /* resolved against the root when the recipe is loaded with a root */
    size_t n_paths;
    long line; /* line of the recipe file that names it (for messages) */
} s2s_recipe_source;

typedef struct s2s_recipe {
    char *path; /* the recipe file */
    char *name;
    char *root; /* resolved root directory, or NULL */
    s2s_recipe_source *sources;
    size_t n_sources;
    char *voice, *voices, *speech;
    unsigned rate;
    int codebook_train_k; /* > 0: train K units */
    char *codebook_path;  /* resolved path, or NULL */
    unsigned per_shard;
    unsigned long seed;
    char *text;                                  /* the recipe's text, recorded in dataset.json */
    long voice_line, voices_line, codebook_line; /* lines of those keys (0: absent) */
} s2s_recipe;

/* Loads and checks a recipe. A name without '/' and without ".recipe" is looked up as
 * manifests/NAME.recipe in the source tree. root_override (--root) wins over the recipe's root
 * key, which wins over $S2S_CORPORA. Errors name file:line. */
s2s_recipe *s2s_recipe_load(const char *name_or_path, const char *root_override, s2s_err *err);
/* Checks that every source path exists and every importer is known (before any work starts).
 * Errors name RECIPE:LINE of the source (or codebook) line. */
int s2s_recipe_check_sources(const s2s_recipe *r, s2s_err *err);
/* Checks, through the synthesizer (s2s/synth.h), that the recipe's voice or voices exist and,
 * without them, that every source language has a default espeak-ng voice. Errors name
 * RECIPE:LINE and suggest close voices. Initialises espeak-ng in this process (one synth handle,
 * freed before returning): call it where no other handle is alive. */
int s2s_recipe_check_voices(const s2s_recipe *r, s2s_err *err);
void s2s_recipe_free(s2s_recipe *r);

#endif

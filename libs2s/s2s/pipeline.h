/* s2s/pipeline.h — run a chain of programs connected by pipes (cmd1 | cmd2 | ... > out), wait
 * for all of them, and say which stage failed and how. Used by s2s-build to run our own tools. */
#ifndef S2S_PIPELINE_H
#define S2S_PIPELINE_H

#include "s2s/err.h"
#include <signal.h>
#include <stddef.h>

typedef struct s2s_pipeline s2s_pipeline;

s2s_pipeline *s2s_pipeline_new(s2s_err *err);
/* Appends a stage; argv is copied (NULL-terminated). argv[0] is looked up in the directory of
 * the running program first (so a build finds its sibling tools), then in PATH. */
int s2s_pipeline_add(s2s_pipeline *p, const char *const *argv, s2s_err *err);
/* Runs the chain: stdin of the first stage from in_path (NULL: empty input), stdout of the last to
 * out_path (NULL: inherit). Waits for every stage. Returns 0 when all exit 0; otherwise the
 * message names the first failing stage, its exit status or signal. Every stage gets SIGTERM
 * when the calling process dies (Linux PR_SET_PDEATHSIG), so a killed build leaves no stage
 * running on (and writing into) its directory. */
int s2s_pipeline_run(s2s_pipeline *p, const char *in_path, const char *out_path, s2s_err *err);
/* While run() waits, a non-zero *flag (set by the caller's SIGINT/SIGTERM handler, installed
 * without SA_RESTART) makes it send SIGTERM to every stage; the stages run in a process group of
 * their own, so a signal to the caller alone still stops them. */
void s2s_pipeline_set_stop_flag(s2s_pipeline *p, volatile sig_atomic_t *flag);
/* While run() waits, calls tick(ctx, fraction) about 5 times a second, fraction being how much
 * of in_path the first stage has read so far (0..1, from its file offset in /proc; -1 when
 * unknown, e.g. no in_path): lets the caller draw a progress line while the stages work. */
void s2s_pipeline_set_tick(s2s_pipeline *p, void (*tick)(void *ctx, double fraction), void *ctx);
/* The command line of the pipeline as a shell would show it (for logs); borrowed string. */
const char *s2s_pipeline_str(s2s_pipeline *p);
void s2s_pipeline_free(s2s_pipeline *p);

/* Directory of the running executable (from /proc/self/exe), malloc'd; NULL if unknown. */
char *s2s_self_dir(void);

#endif

/* s2s/err.h — error codes and the error context every libs2s call fills.
 *
 * Library functions return 0 (or a count) on success and a negative S2S_E* code on failure,
 * and write a message that says where and why into an s2s_err the caller owns. Nothing in the
 * library prints or exits; tools print err.msg and choose the exit status (s2s_exit_status). */
#ifndef S2S_ERR_H
#define S2S_ERR_H

#include <stddef.h>

enum {
    S2S_OK = 0,
    S2S_EIO = -1,     /* read/write/open failed (errno text in the message) */
    S2S_EFORMAT = -2, /* input is not in the expected format (bad CSV, JSON, tar, ...) */
    S2S_ENOMEM = -3,  /* allocation failed */
    S2S_EINVAL = -4,  /* bad argument or option value */
    S2S_EDATA = -5,   /* well-formed input whose content is wrong (validation) */
    S2S_EUNSUP = -6,  /* valid but unsupported (codec, rate, version) */
    S2S_EINTR = -7,   /* interrupted by a signal */
    S2S_EMODEL = -8   /* a model backend failed (worker crash, bad reply) */
};

#define S2S_ERR_MSG_MAX 1024

/* Error context: code and a message such as "cloze.csv:17: AnswerRightEnding must be 1 or 2". */
typedef struct s2s_err {
    int code;
    char msg[S2S_ERR_MSG_MAX];
} s2s_err;

/* Clears the context (code 0, empty message). */
void s2s_err_clear(s2s_err *err);

/* Sets code and a printf-style message; returns code so callers can `return s2s_err_set(...)`.
 * err may be NULL (then only the code is returned). */
int s2s_err_set(s2s_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Sets S2S_EIO with ": strerror(errno)" appended to the message. */
int s2s_err_errno(s2s_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prepends context ("shard-000001.tar: ") to an existing message; returns err->code. */
int s2s_err_prefix(s2s_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Short name of a code ("I/O error", "format error", ...). */
const char *s2s_strerror(int code);

/* Exit status a tool should use for a code: 0 ok, 1 bad data/format/model, 2 usage (EINVAL),
 * 3 I/O or system error (EIO, ENOMEM), 130 interrupted. Documented in every tool's --help. */
int s2s_exit_status(int code);

/* For clang's static analyzer (clang-tidy, scripts/lint.sh) only: s2s_err_set and s2s_err_errno
 * return their non-zero code, so `if (!p) rc = s2s_err_set(...); if (!rc) use(p);` is no null
 * path. Without this hint the analyzer assumes they may return 0 and reports false leaks and
 * null dereferences all over. Compilers never see these macros. */
#if defined(__clang_analyzer__) && !defined(S2S_ERR_IMPL)
#define s2s_err_set(err, code, ...) (s2s_err_set((err), (code), __VA_ARGS__), (code))
#define s2s_err_errno(err, ...) (s2s_err_errno((err), __VA_ARGS__), S2S_EIO)
#endif

#endif

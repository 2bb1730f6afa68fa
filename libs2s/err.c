/* err.c — the error context (see s2s/err.h). */
#define S2S_ERR_IMPL /* the real definitions, not the analyzer's hint macros */
#include "s2s/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void s2s_err_clear(s2s_err *err)
{
    if (!err) return;
    err->code = 0;
    err->msg[0] = '\0';
}

int s2s_err_set(s2s_err *err, int code, const char *fmt, ...)
{
    if (!err) return code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    err->code = code;
    return code;
}

int s2s_err_errno(s2s_err *err, const char *fmt, ...)
{
    int e = errno;
    if (!err) return S2S_EIO;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    size_t n = strlen(err->msg);
    snprintf(err->msg + n, sizeof err->msg - n, ": %s", e ? strerror(e) : "unexpected end of file");
    err->code = e == ENOMEM ? S2S_ENOMEM : S2S_EIO;
    return err->code;
}

int s2s_err_prefix(s2s_err *err, const char *fmt, ...)
{
    if (!err) return S2S_EINVAL;
    char pre[S2S_ERR_MSG_MAX], old[S2S_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    size_t pl = strlen(pre), ol = strnlen(old, sizeof old - 1);
    if (pl > sizeof err->msg - 1) pl = sizeof err->msg - 1;
    if (ol > sizeof err->msg - 1 - pl) ol = sizeof err->msg - 1 - pl;
    memcpy(err->msg, pre, pl);
    memcpy(err->msg + pl, old, ol);
    err->msg[pl + ol] = '\0';
    return err->code;
}

const char *s2s_strerror(int code)
{
    switch (code) {
    case S2S_OK: return "success";
    case S2S_EIO: return "I/O error";
    case S2S_EFORMAT: return "format error";
    case S2S_ENOMEM: return "out of memory";
    case S2S_EINVAL: return "invalid argument";
    case S2S_EDATA: return "invalid data";
    case S2S_EUNSUP: return "unsupported";
    case S2S_EINTR: return "interrupted";
    case S2S_EMODEL: return "model backend failed";
    default: return "unknown error";
    }
}

int s2s_exit_status(int code)
{
    switch (code) {
    case S2S_OK: return 0;
    case S2S_EINVAL: return 2;
    case S2S_EIO:
    case S2S_ENOMEM: return 3;
    case S2S_EINTR: return 130;
    default: return 1;
    }
}

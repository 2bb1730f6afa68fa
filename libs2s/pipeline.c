/* pipeline.c — run our tools as a chain of processes connected by pipes (s2s/pipeline.h). */
#define _GNU_SOURCE /* F_SETPIPE_SZ */
#include "s2s/pipeline.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "s2s/util.h"

struct s2s_pipeline {
    char ***argv;
    size_t n;
    char *str;
    volatile sig_atomic_t *stop;
    void (*tick)(void *ctx, double fraction);
    void *tick_ctx;
};

void s2s_pipeline_set_stop_flag(s2s_pipeline *p, volatile sig_atomic_t *flag) {
    p->stop = flag;
}

void s2s_pipeline_set_tick(s2s_pipeline *p, void (*tick)(void *ctx, double fraction), void *ctx) {
    p->tick = tick;
    p->tick_ctx = ctx;
}

/* File offset of fd 0 of pid (how far the first stage has read its input), -1 if unknown. */
static long long stdin_pos(pid_t pid) {
    char path[64], line[128];
    snprintf(path, sizeof path, "/proc/%d/fdinfo/0", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long long pos = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "pos: %lld", &pos) == 1) break;
    fclose(f);
    return pos;
}

char *s2s_self_dir(void) {
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) return NULL;
    buf[n] = 0;
    char *slash = strrchr(buf, '/');
    if (!slash) return NULL;
    *slash = 0;
    return strdup(buf);
}

s2s_pipeline *s2s_pipeline_new(s2s_err *err) {
    s2s_pipeline *p = calloc(1, sizeof *p);
    if (!p) s2s_err_set(err, S2S_ENOMEM, "out of memory");
    return p;
}

void s2s_pipeline_free(s2s_pipeline *p) {
    if (!p) return;
    for (size_t i = 0; i < p->n; i++) {
        for (char **a = p->argv[i]; *a; a++)
            free(*a);
        free(p->argv[i]);
    }
    free(p->argv);
    free(p->str);
    free(p);
}

int s2s_pipeline_add(s2s_pipeline *p, const char *const *argv, s2s_err *err) {
    size_t n = 0;
    while (argv[n])
        n++;
    char ***na = realloc(p->argv, (p->n + 1) * sizeof *na);
    if (!na) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    p->argv = na;
    char **copy = calloc(n + 1, sizeof *copy);
    if (!copy) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        if (!(copy[i] = strdup(argv[i]))) {
            for (size_t j = 0; j < i; j++)
                free(copy[j]);
            free(copy);
            return s2s_err_set(err, S2S_ENOMEM, "out of memory");
        }
    p->argv[p->n++] = copy;
    return 0;
}

const char *s2s_pipeline_str(s2s_pipeline *p) {
    s2s_buf b = {0};
    for (size_t i = 0; i < p->n; i++) {
        if (i) s2s_buf_append(&b, " | ", 3, NULL);
        for (char **a = p->argv[i]; *a; a++) {
            if (a != p->argv[i]) s2s_buf_append(&b, " ", 1, NULL);
            int q = strpbrk(*a, " '\"$*?|&;<>()") != NULL;
            if (q) s2s_buf_append(&b, "'", 1, NULL);
            s2s_buf_append(&b, *a, strlen(*a), NULL);
            if (q) s2s_buf_append(&b, "'", 1, NULL);
        }
    }
    free(p->str);
    p->str = (char *)s2s_buf_steal(&b, NULL);
    return p->str ? p->str : "";
}

static void exec_stage(char **argv, const char *selfdir) {
    if (selfdir && !strchr(argv[0], '/')) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", selfdir, argv[0]);
        if (access(path, X_OK) == 0) execv(path, argv);
    }
    execvp(argv[0], argv);
    fprintf(stderr, "s2s-build: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

int s2s_pipeline_run(s2s_pipeline *p, const char *in_path, const char *out_path, s2s_err *err) {
    if (p->n == 0) return s2s_err_set(err, S2S_EINVAL, "empty pipeline");
    pid_t *pids = calloc(p->n, sizeof *pids);
    if (!pids) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    char *selfdir = s2s_self_dir();
    /* No input: an empty pipe (its write end closed at once), not /dev/null, which some
     * sandboxes replace with a regular file that may hold what was written to it. */
    int in = -1;
    if (in_path) {
        in = open(in_path, O_RDONLY | O_CLOEXEC);
    } else {
        int e[2];
        if (pipe2(e, O_CLOEXEC) == 0) close(e[1]), in = e[0];
    }
    if (in < 0) {
        free(pids), free(selfdir);
        return s2s_err_errno(err, "%s", in_path ? in_path : "pipe");
    }
    int out = -1;
    if (out_path && (out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) {
        close(in);
        free(pids), free(selfdir);
        return s2s_err_errno(err, "%s", out_path);
    }
    int rc = 0;
    size_t started = 0;
    pid_t parent = getpid();
    long long in_size = -1;
    struct stat ist;
    if (in_path && stat(in_path, &ist) == 0 && S_ISREG(ist.st_mode))
        in_size = (long long)ist.st_size;
    for (size_t i = 0; i < p->n; i++) {
        int fds[2] = {-1, -1};
        if (i + 1 < p->n && (pipe(fds) != 0 || fcntl(fds[0], F_SETFD, FD_CLOEXEC) != 0 ||
                             fcntl(fds[1], F_SETFD, FD_CLOEXEC) != 0)) {
            rc = s2s_err_errno(err, "pipe");
            break;
        }
        /* Audio members are hundreds of KB: a 1 MiB pipe (the default maximum for users) lets
         * a stage hand over a whole member per wake-up instead of 64 KB, fewer context switches
         * between the stages. Best effort: a smaller limit leaves the default. */
        if (fds[1] >= 0) (void)fcntl(fds[1], F_SETPIPE_SZ, 1 << 20);
        pid_t pid = fork();
        if (pid < 0) {
            rc = s2s_err_errno(err, "fork");
            if (fds[0] >= 0) close(fds[0]), close(fds[1]);
            break;
        }
        if (pid == 0) {
            /* a stage must not outlive a killed build: it would go on writing into the
             * directory that the next run resumes */
            prctl(PR_SET_PDEATHSIG, SIGTERM);
            if (getppid() != parent) _exit(130);
            setpgid(0, started ? pids[0] : 0);
            signal(SIGINT, SIG_DFL);
            signal(SIGTERM, SIG_DFL);
            dup2(in, 0);
            if (i + 1 < p->n)
                dup2(fds[1], 1);
            else if (out >= 0)
                dup2(out, 1);
            exec_stage(p->argv[i], selfdir);
        }
        setpgid(pid, started ? pids[0] : pid); /* both sides, to win the race */
        pids[started++] = pid;
        close(in);
        in = fds[0];
        if (fds[1] >= 0) close(fds[1]);
    }
    if (in >= 0) close(in);
    if (out >= 0) close(out);
    /* Wait for every stage; report the first failure in pipeline order, since a later stage
     * failing is usually the consequence (a truncated stream) of an earlier one. */
    int *status = calloc(p->n, sizeof *status);
    char *done = calloc(p->n ? p->n : 1, 1);
    size_t left = started;
    int sent = 0;
    struct timespec last = {0, 0};
    /* Poll (WNOHANG, naps of up to 50 ms) rather than block: the stop flag and the progress
     * tick are served while the stages run. A nap ends when a child exits (SIGCHLD, blocked in
     * this thread while it waits so that sigtimedwait takes it; the stages were forked before,
     * with the caller's mask) or another signal arrives. */
    sigset_t chld, oldmask;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    int masked = pthread_sigmask(SIG_BLOCK, &chld, &oldmask) == 0;
    while (left > 0) {
        for (size_t i = 0; i < started; i++) {
            if (done && done[i]) continue;
            int st = 0;
            pid_t w = waitpid(pids[i], &st, done ? WNOHANG : 0);
            if (w == pids[i] || (w < 0 && errno == ECHILD)) {
                if (status) status[i] = w == pids[i] ? st : 0;
                if (done) done[i] = 1;
                left--;
            }
        }
        if (p->stop && *p->stop && !sent) {
            kill(-pids[0], SIGTERM);
            sent = 1;
        }
        if (left == 0 || !done) continue;
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (p->tick &&
            (now.tv_sec - last.tv_sec) * 1000000000L + (now.tv_nsec - last.tv_nsec) > 200000000L) {
            last = now;
            long long pos = in_size > 0 ? stdin_pos(pids[0]) : -1;
            p->tick(p->tick_ctx, pos >= 0 ? (double)pos / (double)in_size : -1.0);
        }
        struct timespec nap = {0, 50000000L};
        if (masked)
            (void)sigtimedwait(&chld, NULL, &nap);
        else
            nanosleep(&nap, NULL);
    }
    if (masked) pthread_sigmask(SIG_SETMASK, &oldmask, NULL);
    free(done);
    if (rc == 0 && p->stop && *p->stop) {
        rc = s2s_err_set(err, S2S_EINTR, "interrupted");
    }
    for (size_t i = 0; rc == 0 && status && i < started; i++) {
        int st = status[i];
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0) continue;
        if (WIFEXITED(st))
            rc = s2s_err_set(err, WEXITSTATUS(st) == 130 ? S2S_EINTR : S2S_EDATA,
                             "stage %zu (%s) exited with status %d", i + 1, p->argv[i][0],
                             WEXITSTATUS(st));
        else
            rc = s2s_err_set(err, WTERMSIG(st) == SIGINT ? S2S_EINTR : S2S_EDATA,
                             "stage %zu (%s) killed by signal %d", i + 1, p->argv[i][0],
                             WTERMSIG(st));
    }
    free(status);
    free(pids);
    free(selfdir);
    return rc;
}

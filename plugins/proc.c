/*
 * proc.c - starting, watching and running child processes for launcher plugins (see proc.h).
 *
 * Every child learns whether its exec worked through a close-on-exec pipe: the parent reads the
 * child's errno from it, or end-of-file once exec has closed it.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "proc.h"
#include "why.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cparallel/plugin.h>

extern char **environ;

typedef struct proc_child {
    pid_t pid;
    int ended;
    int exit_code;
    int watched; /* the loop still holds a watch whose argument is this record */
    struct proc_child *next;
} proc_child_t;

struct cpar_procs {
    cpar_loop_t *loop;
    proc_child_t *children;
};

/* Records the loop may still call back after their host went away; they stay reachable here. */
static proc_child_t *proc_orphans;

/* Which step failed in the child, sent with its errno through the exec pipe. */
enum { STEP_CHDIR = 1, STEP_EXEC = 2, STEP_SETUP = 3 };

static int proc_code(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return -WTERMSIG(status);
    return CPAR_EXIT_UNKNOWN;
}

int cpar_procs_new(cpar_procs_t **out, cpar_loop_t *loop)
{
    cpar_procs_t *p = calloc(1, sizeof *p);

    if (!p)
        return CPAR_ENOMEM;
    p->loop = loop;
    *out = p;
    return 0;
}

void cpar_procs_free(cpar_procs_t *p)
{
    if (!p)
        return;
    while (p->children) {
        proc_child_t *c = p->children;

        p->children = c->next;
        if (c->watched) {
            c->next = proc_orphans;
            proc_orphans = c;
        } else {
            free(c);
        }
    }
    free(p);
}

/* The loop reaped a watched child. */
static void proc_on_exit(void *arg, pid_t pid, int status)
{
    proc_child_t *c = arg;

    (void)pid;
    c->watched = 0;
    if (!c->ended) {
        c->ended = 1;
        c->exit_code = proc_code(status);
    }
}

/* In the child, after fork: default signal handling and an empty mask, like a fresh program. */
static void proc_child_signals(void)
{
    sigset_t none;

    for (int s = 1; s < NSIG; s++)
        if (s != SIGKILL && s != SIGSTOP)
            signal(s, SIG_DFL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

/* In the child: no descriptor of ours but 0, 1 and 2 survives the exec. */
static void proc_child_fds(void)
{
#ifdef CLOSE_RANGE_CLOEXEC
    close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
#endif
}

static void proc_child_fail(int fd, int step)
{
    int msg[2] = {step, errno};
    ssize_t w = write(fd, msg, sizeof msg);

    (void)w;
    _exit(127);
}

/* The environment for a child: ours, with `env`'s NAME=value entries replacing or added. */
static char **proc_environ(const char *const *env)
{
    size_t n = 0, extra = 0, k = 0;
    char **out;

    while (environ && environ[n])
        n++;
    while (env && env[extra])
        extra++;
    out = calloc(n + extra + 1, sizeof *out);
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr(environ[i], '=');
        size_t len = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
        int replaced = 0;

        for (size_t j = 0; j < extra && !replaced; j++)
            replaced = strncmp(env[j], environ[i], len) == 0 && env[j][len] == '=';
        if (!replaced)
            out[k++] = environ[i];
    }
    for (size_t j = 0; j < extra; j++)
        if (strchr(env[j], '='))
            out[k++] = (char *)env[j];
    out[k] = NULL;
    return out;
}

/* Read the exec pipe: 0 when exec worked, else fills why and returns CPAR_ENOENT. */
static int proc_exec_result(int fd, const char *prog, const char *cwd, char *why, size_t whylen)
{
    int msg[2];
    ssize_t r;

    do
        r = read(fd, msg, sizeof msg);
    while (r < 0 && errno == EINTR);
    if (r != (ssize_t)sizeof msg)
        return 0;
    if (msg[0] == STEP_CHDIR)
        cpar_why(why, whylen, "cannot run '%s': cannot change to directory '%s': %s", prog,
                 cwd ? cwd : "", strerror(msg[1]));
    else
        cpar_why(why, whylen, "cannot run '%s': %s", prog, strerror(msg[1]));
    return CPAR_ENOENT;
}

int cpar_procs_spawn(cpar_procs_t *p, const char *const *argv, const char *const *env,
                     const char *cwd, const char *output_file, int64_t *pid, char *why,
                     size_t whylen)
{
    proc_child_t *c;
    char **envp;
    int pipefd[2], outfd, rc;
    pid_t child;

    if (!p || !argv || !argv[0] || !argv[0][0] || !pid) {
        cpar_why(why, whylen, "spawn: no program given");
        return CPAR_EINVAL;
    }
    outfd = open(output_file ? output_file : "/dev/null", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
                 0644);
    if (outfd < 0) {
        cpar_why(why, whylen, "cannot open output file '%s': %s",
                 output_file ? output_file : "/dev/null", strerror(errno));
        return CPAR_EIO;
    }
    c = calloc(1, sizeof *c);
    envp = proc_environ(env);
    if (!c || !envp || pipe2(pipefd, O_CLOEXEC) != 0) {
        rc = (!c || !envp) ? CPAR_ENOMEM : CPAR_EIO;
        cpar_why(why, whylen, "spawn '%s': %s", argv[0],
                 rc == CPAR_ENOMEM ? "out of memory" : strerror(errno));
        free(c);
        free(envp);
        close(outfd);
        return rc;
    }
    child = fork();
    if (child == 0) {
        int devnull = open("/dev/null", O_RDONLY);

        close(pipefd[0]);
        proc_child_signals();
        setsid();
        if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(outfd, 1) < 0 || dup2(outfd, 2) < 0)
            proc_child_fail(pipefd[1], STEP_SETUP);
        if (cwd && *cwd && chdir(cwd) != 0)
            proc_child_fail(pipefd[1], STEP_CHDIR);
        proc_child_fds();
        execvpe(argv[0], (char *const *)argv, envp);
        proc_child_fail(pipefd[1], STEP_EXEC);
    }
    close(pipefd[1]);
    close(outfd);
    free(envp);
    if (child < 0) {
        cpar_why(why, whylen, "spawn '%s': fork: %s", argv[0], strerror(errno));
        close(pipefd[0]);
        free(c);
        return CPAR_EIO;
    }
    rc = proc_exec_result(pipefd[0], argv[0], cwd, why, whylen);
    close(pipefd[0]);
    if (rc) {
        while (waitpid(child, NULL, 0) < 0 && errno == EINTR)
            ;
        free(c);
        return rc;
    }
    c->pid = child;
    c->next = p->children;
    p->children = c;
    if (p->loop && cpar_loop_watch_child(p->loop, child, proc_on_exit, c) == 0)
        c->watched = 1;
    *pid = child;
    return 0;
}

/* A process that is not our child: running unless gone or a zombie. */
static int proc_foreign_running(pid_t pid)
{
    char path[64], buf[512];
    FILE *f;
    size_t n;
    char *paren;

    if (kill(pid, 0) != 0 && errno != EPERM)
        return 0;
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    f = fopen(path, "r");
    if (!f)
        return 1;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    paren = strrchr(buf, ')');
    return !(paren && paren[1] == ' ' && (paren[2] == 'Z' || paren[2] == 'X'));
}

int cpar_procs_status(cpar_procs_t *p, int64_t pid, int *running, int *exit_code, char *why,
                      size_t whylen)
{
    proc_child_t *c = NULL;

    if (!running || !exit_code || pid <= 0 || pid > (int64_t)INT32_MAX) {
        cpar_why(why, whylen, "child_status: bad pid %lld", (long long)pid);
        return CPAR_EINVAL;
    }
    for (c = p ? p->children : NULL; c && c->pid != (pid_t)pid; c = c->next)
        ;
    *exit_code = CPAR_EXIT_UNKNOWN;
    if (!c) {
        *running = proc_foreign_running((pid_t)pid);
        return 0;
    }
    if (!c->ended) {
        if (c->watched) {
            /* Look without reaping: the loop reaps it and drops its watch. */
            siginfo_t si;

            memset(&si, 0, sizeof si);
            if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0) {
                c->ended = 1;
                c->exit_code = CPAR_EXIT_UNKNOWN;
            } else if (si.si_pid == (pid_t)pid) {
                c->ended = 1;
                c->exit_code = si.si_code == CLD_EXITED ? si.si_status : -si.si_status;
            }
        } else {
            int status;
            pid_t r = waitpid((pid_t)pid, &status, WNOHANG);

            if (r == (pid_t)pid) {
                c->ended = 1;
                c->exit_code = proc_code(status);
            } else if (r < 0) {
                c->ended = 1;
                c->exit_code = CPAR_EXIT_UNKNOWN;
            }
        }
    }
    *running = !c->ended;
    if (c->ended)
        *exit_code = c->exit_code;
    return 0;
}

/* ---- run ---------------------------------------------------------------------------------- */

typedef struct proc_buf {
    char *data;
    size_t len, cap;
} proc_buf_t;

static int proc_buf_read(proc_buf_t *b, int fd)
{
    for (;;) {
        ssize_t r;

        if (b->cap - b->len < 4096) {
            size_t cap = b->cap ? b->cap * 2 : 8192;
            char *d = realloc(b->data, cap);
            if (!d)
                return CPAR_ENOMEM;
            b->data = d;
            b->cap = cap;
        }
        r = read(fd, b->data + b->len, b->cap - b->len - 1);
        if (r > 0) {
            b->len += (size_t)r;
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && errno == EAGAIN)
            return 1; /* open, nothing more now */
        return 0;     /* end of file or error */
    }
}

static char *proc_buf_take(proc_buf_t *b)
{
    char *s = b->data ? b->data : malloc(1);

    if (s)
        s[b->len] = '\0';
    b->data = NULL;
    b->len = b->cap = 0;
    return s;
}

static int64_t proc_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int cpar_proc_run(const char *const *argv, const char *input, int timeout_ms, int *status,
                  char **out, char **err, char *why, size_t whylen)
{
    int inp[2] = {-1, -1}, outp[2] = {-1, -1}, errp[2] = {-1, -1}, exe[2] = {-1, -1};
    proc_buf_t bout = {0}, berr = {0};
    size_t in_len = input ? strlen(input) : 0, in_off = 0;
    int64_t deadline = timeout_ms > 0 ? proc_now_ms() + timeout_ms : -1;
    int rc = 0, wstatus = 0, reaped = 0;
    pid_t child;

    if (out)
        *out = NULL;
    if (err)
        *err = NULL;
    if (!argv || !argv[0] || !argv[0][0] || !status) {
        cpar_why(why, whylen, "run: no program given");
        return CPAR_EINVAL;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, inp) != 0 ||
        pipe2(outp, O_CLOEXEC) != 0 || pipe2(errp, O_CLOEXEC) != 0 || pipe2(exe, O_CLOEXEC) != 0) {
        cpar_why(why, whylen, "run '%s': %s", argv[0], strerror(errno));
        rc = CPAR_EIO;
        goto done;
    }
    child = fork();
    if (child == 0) {
        close(exe[0]);
        proc_child_signals();
        setpgid(0, 0);
        if (dup2(inp[1], 0) < 0 || dup2(outp[1], 1) < 0 || dup2(errp[1], 2) < 0)
            proc_child_fail(exe[1], STEP_SETUP);
        proc_child_fds();
        execvp(argv[0], (char *const *)argv);
        proc_child_fail(exe[1], STEP_EXEC);
    }
    if (child < 0) {
        cpar_why(why, whylen, "run '%s': fork: %s", argv[0], strerror(errno));
        rc = CPAR_EIO;
        goto done;
    }
    close(inp[1]);
    close(outp[1]);
    close(errp[1]);
    close(exe[1]);
    inp[1] = outp[1] = errp[1] = exe[1] = -1;
    if ((rc = proc_exec_result(exe[0], argv[0], NULL, why, whylen)) != 0) {
        while (waitpid(child, NULL, 0) < 0 && errno == EINTR)
            ;
        goto done;
    }
    fcntl(inp[0], F_SETFL, O_NONBLOCK);
    fcntl(outp[0], F_SETFL, O_NONBLOCK);
    fcntl(errp[0], F_SETFL, O_NONBLOCK);
    if (in_len == 0) {
        close(inp[0]);
        inp[0] = -1;
    }
    while (outp[0] >= 0 || errp[0] >= 0 || !reaped) {
        struct pollfd fds[3];
        nfds_t nfds = 0;
        int wait_ms = 50;

        if (deadline >= 0) {
            int64_t left = deadline - proc_now_ms();
            if (left <= 0) {
                kill(-child, SIGKILL);
                kill(child, SIGKILL);
                if (!reaped)
                    while (waitpid(child, NULL, 0) < 0 && errno == EINTR)
                        ;
                cpar_why(why, whylen, "'%s' did not finish within %d ms; killed", argv[0],
                         timeout_ms);
                rc = CPAR_ETIMEDOUT;
                goto done;
            }
            if (left < wait_ms)
                wait_ms = (int)left;
        }
        if (!reaped) {
            pid_t r = waitpid(child, &wstatus, WNOHANG);
            if (r == child || (r < 0 && errno == ECHILD))
                reaped = 1;
        }
        if (inp[0] >= 0)
            fds[nfds++] = (struct pollfd){.fd = inp[0], .events = POLLOUT};
        if (outp[0] >= 0)
            fds[nfds++] = (struct pollfd){.fd = outp[0], .events = POLLIN};
        if (errp[0] >= 0)
            fds[nfds++] = (struct pollfd){.fd = errp[0], .events = POLLIN};
        if (nfds == 0) {
            poll(NULL, 0, wait_ms);
            continue;
        }
        /* Once the child has gone, only drain what is there: a grandchild may hold the pipes. */
        if (poll(fds, nfds, reaped ? 0 : wait_ms) < 0 && errno != EINTR) {
            cpar_why(why, whylen, "run '%s': poll: %s", argv[0], strerror(errno));
            rc = CPAR_EIO;
            goto kill_done;
        }
        for (nfds_t i = 0; i < nfds; i++) {
            int *fdp = fds[i].fd == inp[0] ? &inp[0] : fds[i].fd == outp[0] ? &outp[0] : &errp[0];

            if (!fds[i].revents && !reaped)
                continue;
            if (fdp == &inp[0]) {
                ssize_t w = send(inp[0], input + in_off, in_len - in_off, MSG_NOSIGNAL);
                if (w > 0)
                    in_off += (size_t)w;
                if ((w < 0 && errno != EAGAIN && errno != EINTR) || in_off >= in_len || reaped) {
                    close(inp[0]);
                    inp[0] = -1;
                }
                continue;
            }
            int r = proc_buf_read(fdp == &outp[0] ? &bout : &berr, *fdp);
            if (r < 0) {
                cpar_why(why, whylen, "run '%s': out of memory", argv[0]);
                rc = CPAR_ENOMEM;
                goto kill_done;
            }
            if (r == 0 || reaped) {
                close(*fdp);
                *fdp = -1;
            }
        }
    }
    *status = WIFEXITED(wstatus)     ? WEXITSTATUS(wstatus)
              : WIFSIGNALED(wstatus) ? 128 + WTERMSIG(wstatus)
                                     : 255;
    if (out && !(*out = proc_buf_take(&bout)))
        rc = CPAR_ENOMEM;
    if (err && !(*err = proc_buf_take(&berr)))
        rc = CPAR_ENOMEM;
    if (rc) {
        cpar_why(why, whylen, "run '%s': out of memory", argv[0]);
        if (out) {
            free(*out);
            *out = NULL;
        }
        if (err) {
            free(*err);
            *err = NULL;
        }
    }
    goto done;

kill_done:
    kill(-child, SIGKILL);
    kill(child, SIGKILL);
    if (!reaped)
        while (waitpid(child, NULL, 0) < 0 && errno == EINTR)
            ;
done:
    for (int i = 0; i < 2; i++) {
        if (inp[i] >= 0)
            close(inp[i]);
        if (outp[i] >= 0)
            close(outp[i]);
        if (errp[i] >= 0)
            close(errp[i]);
        if (exe[i] >= 0)
            close(exe[i]);
    }
    free(bout.data);
    free(berr.data);
    return rc;
}

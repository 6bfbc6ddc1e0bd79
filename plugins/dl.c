/*
 * dl.c - libltdl wrapper (see dl.h).
 *
 * libltdl tries its loaders in turn and reports the last one's failure, which for an existing
 * file that cannot be loaded is the preload loader's "file not found". Since that hides the real
 * reason (a bad ELF header, a missing dependency), a failed open of a file that exists asks the
 * system loader once more, only to read its message.
 */
#include "dl.h"

#include <dlfcn.h>
#include <ltdl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <cparallel/errors.h>

static char dl_errbuf[512];

static void dl_set_error(const char *path, const char *text)
{
    size_t plen = path ? strlen(path) : 0;

    if (!text)
        text = "unknown loader error";
    /* dlerror() starts with "<path>: "; the caller names the file already. */
    if (plen && strncmp(text, path, plen) == 0 && strncmp(text + plen, ": ", 2) == 0)
        text += plen + 2;
    snprintf(dl_errbuf, sizeof dl_errbuf, "%s", text);
}

int cpar_dl_init(void)
{
    dl_errbuf[0] = '\0';
    if (lt_dlinit() != 0) {
        dl_set_error(NULL, lt_dlerror());
        return CPAR_EINTERNAL;
    }
    return 0;
}

void cpar_dl_exit(void)
{
    if (lt_dlexit() != 0)
        dl_set_error(NULL, lt_dlerror());
}

static void dl_explain_open_failure(const char *path, const char *lt_text)
{
    struct stat st;
    void *probe;

    if (stat(path, &st) != 0) {
        dl_set_error(path, lt_text);
        return;
    }
    probe = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (probe) {
        /* The system loader could load it after all: libltdl's own reason stands. */
        dlclose(probe);
        dl_set_error(path, lt_text);
        return;
    }
    dl_set_error(path, dlerror());
}

cpar_dl_t *cpar_dl_open(const char *path)
{
    lt_dladvise advise;
    lt_dlhandle h = NULL;
    void *now;

    dl_errbuf[0] = '\0';
    if (!path || path[0] != '/') {
        dl_set_error(NULL, "not a full path");
        return NULL;
    }
    /*
     * Load it first with every symbol bound, so that a plugin with an unresolved reference is
     * rejected here instead of killing the program at its first call: libltdl opens lazily,
     * and then finds this already-relocated object.
     */
    now = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!now) {
        struct stat st;

        if (stat(path, &st) == 0) {
            dl_set_error(path, dlerror());
            return NULL;
        }
    }
    if (lt_dladvise_init(&advise) != 0) {
        dl_set_error(NULL, lt_dlerror());
        if (now)
            dlclose(now);
        return NULL;
    }
    if (lt_dladvise_local(&advise) == 0)
        h = lt_dlopenadvise(path, advise);
    else
        dl_set_error(NULL, lt_dlerror());
    if (!h && !dl_errbuf[0])
        dl_explain_open_failure(path, lt_dlerror());
    lt_dladvise_destroy(&advise);
    if (now)
        dlclose(now); /* libltdl holds its own reference now */
    return (cpar_dl_t *)h;
}

void *cpar_dl_sym(cpar_dl_t *dl, const char *symbol)
{
    if (!dl || !symbol)
        return NULL;
    return lt_dlsym((lt_dlhandle)dl, symbol);
}

int cpar_dl_close(cpar_dl_t *dl)
{
    dl_errbuf[0] = '\0';
    if (!dl)
        return 0;
    if (lt_dlclose((lt_dlhandle)dl) != 0) {
        dl_set_error(NULL, lt_dlerror());
        return CPAR_EIO;
    }
    return 0;
}

const char *cpar_dl_error(void)
{
    return dl_errbuf;
}

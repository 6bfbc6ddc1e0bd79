/*
 * profile.c - IPython profile directories: where the settings say the profile is, creating it
 * the way IPython's ProfileDir does, and loading its <prog>_config.{py,json}.
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <cparallel/errors.h>

#include "util/log.h"

/* A string setting, empty counting as unset. */
static const char *setting(const cpar_config_t *cfg, const char *section, const char *key)
{
    const char *v = NULL;

    if (cpar_config_string(cfg, section, key, &v) != 0 || !v || !*v)
        return NULL;
    return v;
}

char *cpar_profile_dir(const cpar_config_t *cfg)
{
    const char *loc = setting(cfg, "ProfileDir", "location");
    const char *ipdir, *name;
    char *base = NULL, *leaf, *joined, *out;

    if (loc)
        return cpar_cfg_abspath(loc);
    ipdir = setting(cfg, "BaseIPythonApplication", "ipython_dir");
    name = setting(cfg, "BaseIPythonApplication", "profile");
    if (!ipdir) {
        base = cpar_cfg_expanduser("~/.ipython");
        if (!base)
            return NULL;
        if (base[0] == '~') { /* no home directory at all */
            free(base);
            base = strdup("/.ipython");
            if (!base)
                return NULL;
        }
        ipdir = base;
    }
    leaf = malloc(strlen("profile_") + strlen(name ? name : "default") + 1);
    if (!leaf) {
        free(base);
        return NULL;
    }
    strcpy(leaf, "profile_");
    strcat(leaf, name ? name : "default");
    joined = cpar_cfg_join(ipdir, leaf);
    free(leaf);
    free(base);
    if (!joined)
        return NULL;
    out = cpar_cfg_abspath(joined);
    free(joined);
    return out;
}

/* mkdir that accepts an existing directory. */
static int make_dir(const char *path, mode_t mode, char *err, size_t errlen)
{
    struct stat st;

    if (mkdir(path, mode) == 0)
        return 0;
    if (errno == EEXIST && stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            return 0;
        errno = ENOTDIR;
    }
    snprintf(err, errlen, "cannot create directory %s: %s", path, strerror(errno));
    return CPAR_EIO;
}

/* mkdir -p: the parents with the default mode, `dir` itself with `mode`. */
static int make_dirs(const char *dir, mode_t mode, char *err, size_t errlen)
{
    char *p = strdup(dir);
    int rc = 0;

    if (!p) {
        snprintf(err, errlen, "out of memory");
        return CPAR_ENOMEM;
    }
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (s[-1] != '/')
            rc = make_dir(p, 0777, err, errlen);
        *s = '/';
        if (rc)
            break;
    }
    if (!rc)
        rc = make_dir(p, mode, err, errlen);
    free(p);
    return rc;
}

int cpar_profile_create(const char *dir, char *err, size_t errlen)
{
    static const struct {
        const char *name;
        mode_t mode; /* 0: default, left as it is when the directory exists */
    } subdirs[] = {{"security", 0700}, {"log", 0}, {"pid", 0700}, {"startup", 0}};
    int rc;

    if (!dir || !*dir) {
        snprintf(err, errlen, "no profile directory given");
        return CPAR_EINVAL;
    }
    if ((rc = make_dirs(dir, 0755, err, errlen)) < 0)
        return rc;
    for (size_t i = 0; i < sizeof subdirs / sizeof subdirs[0]; i++) {
        char *path = cpar_cfg_join(dir, subdirs[i].name);
        struct stat st;

        if (!path) {
            snprintf(err, errlen, "out of memory");
            return CPAR_ENOMEM;
        }
        rc = make_dir(path, subdirs[i].mode ? subdirs[i].mode : 0777, err, errlen);
        /* like IPython, fix the mode of a private directory that exists with another one */
        if (!rc && subdirs[i].mode && stat(path, &st) == 0 &&
            (st.st_mode & 07777) != subdirs[i].mode && chmod(path, subdirs[i].mode) != 0)
            cpar_warn("config: cannot set the mode of %s to %04o: %s", path,
                      (unsigned)subdirs[i].mode, strerror(errno));
        free(path);
        if (rc)
            return rc;
    }
    return 0;
}

/* Load <dir>/<prog>_config.<ext> with `load`; keeps the first error in err. */
static int load_one(cpar_config_t *cfg, const char *dir, const char *prog, const char *ext,
                    int (*load)(cpar_config_t *, const char *, char *, size_t), char *err,
                    size_t errlen, int *first)
{
    char *name = malloc(strlen(prog) + strlen("_config.") + strlen(ext) + 1);
    char *path = NULL, msg[1024] = "out of memory";
    int rc = CPAR_ENOMEM;

    if (name) {
        sprintf(name, "%s_config.%s", prog, ext);
        path = cpar_cfg_join(dir, name);
        free(name);
    }
    if (path) {
        msg[0] = '\0';
        rc = load(cfg, path, msg, sizeof msg);
        free(path);
    }
    if (rc < 0 && !*first) {
        *first = 1;
        snprintf(err, errlen, "%s", msg);
    }
    return rc;
}

int cpar_config_load_profile(cpar_config_t *cfg, const char *dir, const char *prog, char *err,
                             size_t errlen)
{
    int first = 0, rc_py, rc_json;

    if (!cfg || !dir || !prog)
        return CPAR_EINVAL;
    rc_py = load_one(cfg, dir, prog, "py", cpar_config_load_py, err, errlen, &first);
    if (rc_py == CPAR_ENOMEM)
        return rc_py;
    rc_json = load_one(cfg, dir, prog, "json", cpar_config_load_json, err, errlen, &first);
    if (rc_json == CPAR_ENOMEM)
        return rc_json;
    return rc_py < 0 || rc_json < 0 ? CPAR_ECONFIG : 0;
}

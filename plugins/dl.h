/*
 * dl.h - the plugin host's only door to the dynamic loader: libltdl behind a handful of calls.
 *
 * Nothing else in cparallel includes ltdl.h, so a port to another loader changes this pair of
 * files only. Like the loaders underneath, these calls are for one thread (the reactor's).
 */
#ifndef CPAR_PLUGINS_DL_H
#define CPAR_PLUGINS_DL_H

typedef struct cpar_dl cpar_dl_t;

/*
 * Start / stop the loader. Calls nest: each successful cpar_dl_init needs one cpar_dl_exit.
 * Init returns 0 or CPAR_EINTERNAL (see cpar_dl_error). Close every handle before the last exit.
 */
int cpar_dl_init(void);
void cpar_dl_exit(void);

/*
 * Open the shared object at `path`, which must be a full path: nothing is searched for and no
 * extension is added. Its symbols stay local to it. NULL on failure (see cpar_dl_error).
 */
cpar_dl_t *cpar_dl_open(const char *path);

/* The address `symbol` has in `dl`, or NULL when `dl` does not export it. */
void *cpar_dl_sym(cpar_dl_t *dl, const char *symbol);

/* Unload; NULL is ignored. 0, or CPAR_EIO (see cpar_dl_error). */
int cpar_dl_close(cpar_dl_t *dl);

/*
 * Why the last failed init, open or close of this module failed, as one line without the file's
 * path ("invalid ELF header", "libfoo.so.1: cannot open shared object file: No such file or
 * directory"); "" when nothing failed. Valid until the next call of this module.
 */
const char *cpar_dl_error(void);

#endif /* CPAR_PLUGINS_DL_H */

/*
 * cluster.h - cpcluster's model of one cluster: a controller and engine sets, each started and
 * found again through a launcher plugin (plugins/launch.h), and the cluster file
 * <profile>/security/cluster-<id>.json in ipyparallel 7.1's schema.
 *
 * A cpcluster process owns the components it started or loaded from the file. Saving the file
 * merges: what this process owns replaces its entries, components it stopped or found gone are
 * removed, and entries other processes added meanwhile (`cpcluster engines` beside a foreground
 * `cpcluster start`) are kept, so that nothing is orphaned. The file is written atomically and
 * deleted once nothing in it runs. Everything runs on the reactor thread.
 */
#ifndef CPAR_CLUSTER_CLUSTER_H
#define CPAR_CLUSTER_CLUSTER_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "loop/loop.h"
#include "plugins/host.h"
#include "plugins/launch.h"

/* Program-wide settings and services, owned by main. */
typedef struct cl_app {
    cpar_config_t *cfg;
    cpar_loop_t *loop;
    cpar_plughost_t *ph;
    char *ipython_dir;  /* absolute */
    char *profile_dir;  /* absolute */
    char *cluster_id;   /* "" when none */
    char *work_dir;     /* absolute */
    char *self_dir;     /* the directory of this program, for finding cpcontroller */
    char **extra_args;  /* the arguments after "--": more controller arguments */
    int nextra;
} cl_app_t;

/* A controller (set_id NULL) or an engine set. */
typedef struct cl_comp {
    char *set_id;
    int n;
    cpar_launcher_h *l; /* borrowed from the cluster */
    cpar_launch_job_t *job;
    int64_t started_ms; /* loop time of the start; 0 when restored from a file */
} cl_comp_t;

typedef struct cl_cluster {
    cl_app_t *app;
    char *profile_dir, *cluster_id, *file;
    json_t *info;               /* the "cluster" object written to the file */
    char *ctl_class, *eng_class; /* plugin names written as "class" */
    cpar_launcher_h *ctl_l, *eng_l;
    cl_comp_t *ctl;             /* owned controller, or NULL */
    int ctl_dropped;            /* this process stopped or lost the controller of the file */
    cl_comp_t **sets;           /* owned engine sets */
    size_t nsets;
    json_t *dropped;            /* ids (array of strings) of sets this process removed */
} cl_cluster_t;

/* <profile_dir>/security/cluster-<id>.json, malloc'd. */
char *cl_cluster_file(const char *profile_dir, const char *cluster_id);

/*
 * A cluster with no components for (app->profile_dir, app->cluster_id) from the settings
 * (Cluster.n, delay, controller_ip, controller_location, controller_args).
 */
cl_cluster_t *cl_cluster_new(cl_app_t *app);

/*
 * Load `file` and rebuild every component through its launcher; components that no longer run
 * are dropped with an error line. *out is NULL (and 0 returned) when the file does not exist.
 * CPAR_EINVAL with "<file>: <JSON error>" or "<file>: not a cluster file" in err; a launcher that
 * cannot be loaded is an error too (nothing is dropped then). `own` = 0 leaves every component in
 * the file to its owner (only the cluster settings are read; for `cpcluster engines`).
 */
int cl_cluster_load(cl_app_t *app, const char *file, int own, cl_cluster_t **out, char *err,
                    size_t errlen);
void cl_cluster_free(cl_cluster_t *cl);

/* Whether anything this process owns still counts as running. */
int cl_cluster_running(const cl_cluster_t *cl);
/* Sum of n over the owned engine sets. */
int cl_cluster_engines_n(const cl_cluster_t *cl);

/* Choose and load the launchers (from the settings, else what the file said). */
int cl_cluster_open_launchers(cl_cluster_t *cl, int need_controller, char *err, size_t errlen);

/* Start the controller / an engine set of n engines (n <= 0: Cluster.n, else the CPU count).
 * 0, or a negative code with one line in err; nothing is left running on failure. */
int cl_cluster_start_controller(cl_cluster_t *cl, char *err, size_t errlen);
int cl_cluster_start_engines(cl_cluster_t *cl, int n, cl_comp_t **set, char *err,
                             size_t errlen);

/* Stop and drop one component / everything owned. */
void cl_cluster_stop_comp(cl_cluster_t *cl, cl_comp_t *c);
void cl_cluster_stop_all(cl_cluster_t *cl);
/* Take over the engine sets other processes added to the file (before stopping everything). */
void cl_cluster_adopt(cl_cluster_t *cl);

/*
 * Poll a component: 1 when it ended (then *detail, malloc'd or NULL, says how, and *code is the
 * exit code or CPAR_EXIT_UNKNOWN), 0 while it runs or is pending or unknown.
 */
int cl_cluster_poll_comp(cl_cluster_t *cl, cl_comp_t *c, int *code, char **detail);
/* Forget a component that ended (nothing is stopped); the file is updated at the next save. */
void cl_cluster_drop(cl_cluster_t *cl, cl_comp_t *c);

/* Poll everything owned and drop what ended (logged). Returns the number dropped. */
int cl_cluster_refresh(cl_cluster_t *cl);

/* The file's dict for this cluster (new reference): ours merged with nothing. */
json_t *cl_cluster_to_dict(cl_cluster_t *cl);
/* Write (merging with the file as described above) or delete the file. 0 or CPAR_EIO. */
int cl_cluster_save(cl_cluster_t *cl);

/* The engine-count query to the hub (hubcount.c): registered engines, or -1 when unknown. */
typedef struct cl_hub cl_hub_t;
cl_hub_t *cl_hub_new(cpar_loop_t *loop, const char *profile_dir, const char *cluster_id);
void cl_hub_free(cl_hub_t *h);
/* Called periodically: connect when the client connection file is there, ask queue_request. */
void cl_hub_tick(cl_hub_t *h);
int cl_hub_count(const cl_hub_t *h);

#endif

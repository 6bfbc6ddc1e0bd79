/*
 * options.h - cpcluster's command line: ipcluster's subcommand aliases and flags mapped onto the
 * traits ipyparallel 7.1 uses (Cluster.*, IPClusterEngines.*, IPClusterStop.*, ...), so that the
 * same ipcluster_config.{py,json} and the same --Class.trait=value options work.
 */
#ifndef CPAR_CLUSTER_OPTIONS_H
#define CPAR_CLUSTER_OPTIONS_H

#include "config/config.h"

/* Bits of cpar_cli_result_t.actions. */
enum cpcluster_action {
    CL_ACT_HELP = 1,    /* --help, -h */
    CL_ACT_VERSION = 2, /* --version, -V */
    CL_ACT_ALL = 4,     /* --all: every cluster (stop) / every profile (clean) */
    CL_ACT_FORCE = 8    /* --force (clean) */
};

/* The option table for cpar_cli_parse (every subcommand's options), ended by a NULL name. */
extern const cpar_option_t cpcluster_options[];

/* The classes an application trait (cluster_id, log_level, work_dir, ...) may be set on, most
 * specific first, for cpar_config_pick_section. */
extern const char *const cpcluster_app_sections[];

#endif

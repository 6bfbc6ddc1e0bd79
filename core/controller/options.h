/*
 * options.h - cpcontroller's command line and the settings it understands: ipcontroller's
 * aliases and flags (ipyparallel controller/app.py, apps/baseapp.py, IPython's and
 * jupyter_client's base aliases and flags) mapped onto the same traits.
 */
#ifndef CPAR_CONTROLLER_OPTIONS_H
#define CPAR_CONTROLLER_OPTIONS_H

#include "config/config.h"

/* Bits of cpar_cli_result_t.actions. */
enum cpar_controller_action {
    CPAR_ACT_HELP = 1,        /* --help, -h */
    CPAR_ACT_HELP_ALL = 2,    /* --help-all */
    CPAR_ACT_VERSION = 4,     /* --version, -V */
    CPAR_ACT_LIST_PLUGINS = 8 /* --list-plugins */
};

/* The option table for cpar_cli_parse, terminated by an entry with name NULL. */
extern const cpar_option_t cpar_controller_options[];

/*
 * For cpar_config_warn_unknown: the sections cpcontroller reads ("Section." ones are checked
 * trait by trait against cpar_controller_traits, the others, plugin sections, are taken whole).
 * Both NULL-terminated.
 */
extern const char *const cpar_controller_sections[];
extern const char *const cpar_controller_traits[];

/*
 * The classes an application trait of ipcontroller may be set on, most specific first (for
 * cpar_config_pick_section): c.IPController.log_level and c.Application.log_level both set the
 * controller's log level, and --log-level sets Application.log_level.
 */
extern const char *const cpar_controller_app_sections[];

#endif

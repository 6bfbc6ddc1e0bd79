/*
 * env.c - the environment variables the ipyparallel apps read (IPython's IPYTHONDIR and 8.x's
 * IPP_PROFILE_DIR, IPP_CLUSTER_ID, IPP_SESSION_KEY).
 */
#include "internal.h"

#include <string.h>

#include <cparallel/errors.h>

#include "util/log.h"

static const struct {
    const char *name;
    const char *section;
    const char *key;
    int empty_is_unset; /* an empty path means "not given"; an empty id or key is a value */
} env_vars[] = {
    {"IPYTHONDIR", "BaseIPythonApplication", "ipython_dir", 1},
    {"IPP_PROFILE_DIR", "ProfileDir", "location", 1},
    {"IPP_CLUSTER_ID", "BaseParallelApplication", "cluster_id", 0},
    {"IPP_SESSION_KEY", "Session", "key", 0},
};

int cpar_config_load_env(cpar_config_t *cfg, char *const *environ_)
{
    if (!cfg)
        return CPAR_EINVAL;
    for (size_t i = 0; environ_ && environ_[i]; i++) {
        const char *entry = environ_[i], *eq = strchr(entry, '=');

        if (!eq)
            continue;
        for (size_t k = 0; k < sizeof env_vars / sizeof env_vars[0]; k++) {
            size_t nl = strlen(env_vars[k].name);
            const char *value = eq + 1;
            json_t *v;
            int rc;

            if ((size_t)(eq - entry) != nl || memcmp(entry, env_vars[k].name, nl) != 0)
                continue;
            if (!*value && env_vars[k].empty_is_unset)
                break;
            if (!cpar_cfg_utf8_ok(value, strlen(value))) {
                cpar_warn("config: ignoring %s: not valid UTF-8", env_vars[k].name);
                break;
            }
            if (!(v = json_string(value)))
                return CPAR_ENOMEM;
            rc = cpar_config_set(cfg, env_vars[k].section, env_vars[k].key, v, CPAR_SRC_ENV,
                                 env_vars[k].name);
            if (rc < 0)
                return rc;
            break;
        }
    }
    return 0;
}

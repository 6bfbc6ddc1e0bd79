/*
 * cluster.c - see cluster.h: components, their launch specs, and the cluster file.
 */
#include "cluster.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"

#define CLUSTER_CLASS "ipyparallel.cluster.cluster.Cluster"

char *cl_cluster_file(const char *profile_dir, const char *cluster_id)
{
    char *path = NULL;

    if (asprintf(&path, "%s/security/cluster-%s.json", profile_dir, cluster_id) < 0)
        return NULL;
    return path;
}

/* ---- settings ------------------------------------------------------------------------------ */

/* The first of section `first`, the launcher's sections, then `last` that sets `key`. */
static json_t *lookup(cl_cluster_t *cl, const char *first, cpar_launcher_h *l,
                      cpar_launch_role_t role, const char *last, const char *key)
{
    const cpar_config_t *cfg = cl->app->cfg;
    json_t *v;

    if (first && (v = cpar_config_get(cfg, first, key)) && !json_is_null(v))
        return v;
    if (l)
        for (const char *const *s = cpar_launcher_sections(l, role); s && *s; s++)
            if ((v = cpar_config_get(cfg, *s, key)) && !json_is_null(v))
                return v;
    if (last && (v = cpar_config_get(cfg, last, key)) && !json_is_null(v))
        return v;
    return NULL;
}

/* Append a setting (a string, or a list of strings) to `acc`, a JSON array. */
static void add_words(json_t *acc, json_t *v)
{
    size_t i;
    json_t *w;

    if (json_is_string(v))
        json_array_append(acc, v);
    else if (json_is_array(v))
        json_array_foreach (v, i, w)
            if (json_is_string(w))
                json_array_append(acc, w);
}

static void add_str(json_t *acc, const char *s)
{
    json_array_append_new(acc, json_string(s));
}

/* A launch spec and the storage its arrays point into. */
typedef struct spec_buf {
    cpar_launch_spec_t spec;
    json_t *program, *args;
    const char **pv, **av;
    const char *env[1];
    char *identifier;
} spec_buf_t;

static const char **to_argv(json_t *arr)
{
    size_t n = json_array_size(arr), i;
    const char **v = calloc(n + 1, sizeof *v);

    if (!v)
        return NULL;
    for (i = 0; i < n; i++)
        v[i] = json_string_value(json_array_get(arr, i));
    return v;
}

static const char *python(void)
{
    return access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
}

static void spec_fini(spec_buf_t *b)
{
    json_decref(b->program);
    json_decref(b->args);
    free(b->pv);
    free(b->av);
    free(b->identifier);
}

static int spec_build(cl_cluster_t *cl, cpar_launcher_h *l, cpar_launch_role_t role,
                      const char *set_id, int n, spec_buf_t *b)
{
    json_t *v;
    int rc;

    memset(b, 0, sizeof *b);
    b->program = json_array();
    b->args = json_array();
    if (!b->program || !b->args)
        return CPAR_ENOMEM;
    if (role == CPAR_ROLE_CONTROLLER) {
        if ((v = lookup(cl, "Cluster", l, role, "ControllerLauncher", "controller_cmd"))) {
            add_words(b->program, v);
        } else {
            char *own = NULL;

            if (cl->app->self_dir && asprintf(&own, "%s/cpcontroller", cl->app->self_dir) > 0 &&
                access(own, X_OK) == 0)
                add_str(b->program, own);
            else
                add_str(b->program, "cpcontroller");
            free(own);
        }
    } else if ((v = lookup(cl, "Cluster", l, role, "EngineLauncher", "engine_cmd"))) {
        add_words(b->program, v);
    } else {
        add_str(b->program, python());
        add_str(b->program, "-m");
        add_str(b->program, "ipyparallel.engine");
    }
    /* cluster_args (7.1: on the command line, the id even when empty) */
    add_str(b->args, "--profile-dir");
    add_str(b->args, cl->profile_dir);
    add_str(b->args, "--cluster-id");
    add_str(b->args, cl->cluster_id);
    if (role == CPAR_ROLE_CONTROLLER) {
        const char *ip = json_string_value(json_object_get(cl->info, "controller_ip"));
        const char *loc = json_string_value(json_object_get(cl->info, "controller_location"));
        char *opt = NULL;

        if ((v = lookup(cl, NULL, l, role, "ControllerLauncher", "controller_args")))
            add_words(b->args, v);
        if (ip && *ip && asprintf(&opt, "--ip=%s", ip) > 0) {
            add_str(b->args, opt);
            free(opt);
        }
        if (loc && *loc && asprintf(&opt, "--location=%s", loc) > 0) {
            add_str(b->args, opt);
            free(opt);
        }
        add_words(b->args, json_object_get(cl->info, "controller_args"));
        rc = *cl->cluster_id ? asprintf(&b->identifier, "ipcontroller-%s-%d", cl->cluster_id,
                                        (int)getpid())
                             : asprintf(&b->identifier, "ipcontroller-%d", (int)getpid());
    } else {
        if ((v = lookup(cl, "Cluster", l, role, "EngineLauncher", "engine_args")))
            add_words(b->args, v);
        else
            add_str(b->args, "--log-level=20");
        rc = *cl->cluster_id ? asprintf(&b->identifier, "ipengine-%s-%s-%d", cl->cluster_id,
                                        set_id, (int)getpid())
                             : asprintf(&b->identifier, "ipengine-%s-%d", set_id, (int)getpid());
    }
    if (rc < 0) {
        b->identifier = NULL;
        return CPAR_ENOMEM;
    }
    if (json_array_size(b->program) == 0) {
        cpar_error("the %s command is empty", role == CPAR_ROLE_CONTROLLER ? "controller" : "engine");
        return CPAR_EINVAL;
    }
    b->pv = to_argv(b->program);
    b->av = to_argv(b->args);
    if (!b->pv || !b->av)
        return CPAR_ENOMEM;
    b->spec.role = role;
    b->spec.n = role == CPAR_ROLE_CONTROLLER ? 1 : n;
    b->spec.profile_dir = cl->profile_dir;
    b->spec.cluster_id = cl->cluster_id;
    b->spec.engine_set_id = set_id;
    b->spec.work_dir = cl->app->work_dir;
    b->spec.identifier = b->identifier;
    b->spec.program = b->pv;
    b->spec.program_args = b->av;
    b->spec.env = b->env;
    b->spec.sections = cpar_launcher_sections(l, role);
    return 0;
}

/* ---- the cluster object ---------------------------------------------------------------------- */

static json_t *cfg_or(const cpar_config_t *cfg, const char *key, json_t *dflt)
{
    json_t *v = cpar_config_get(cfg, "Cluster", key);

    if (v) {
        json_decref(dflt);
        return json_incref(v);
    }
    return dflt;
}

static cl_cluster_t *cluster_alloc(cl_app_t *app, const char *profile_dir, const char *cluster_id)
{
    cl_cluster_t *cl = calloc(1, sizeof *cl);

    if (!cl)
        return NULL;
    cl->app = app;
    cl->profile_dir = strdup(profile_dir);
    cl->cluster_id = strdup(cluster_id);
    cl->file = cl_cluster_file(profile_dir, cluster_id);
    cl->dropped = json_array();
    if (!cl->profile_dir || !cl->cluster_id || !cl->file || !cl->dropped) {
        cl_cluster_free(cl);
        return NULL;
    }
    return cl;
}

static const char *cfg_class(const cpar_config_t *cfg, const char *key)
{
    const char *s = NULL;

    if (cpar_config_string(cfg, "Cluster", key, &s) != 0 || !s || !*s)
        return NULL;
    return s;
}

cl_cluster_t *cl_cluster_new(cl_app_t *app)
{
    const cpar_config_t *cfg = app->cfg;
    cl_cluster_t *cl = cluster_alloc(app, app->profile_dir, app->cluster_id);
    json_t *args, *v;
    const char *cls;
    double delay = 1.0;

    if (!cl)
        return NULL;
    cl->info = json_object();
    if (!cl->info) {
        cl_cluster_free(cl);
        return NULL;
    }
    json_object_set_new(cl->info, "cluster_id", json_string(cl->cluster_id));
    args = json_array();
    if ((v = cpar_config_get(cfg, "Cluster", "controller_args")))
        add_words(args, v);
    for (int i = 0; i < app->nextra; i++)
        add_str(args, app->extra_args[i]);
    json_object_set_new(cl->info, "controller_args", args);
    json_object_set_new(cl->info, "controller_ip", cfg_or(cfg, "controller_ip", json_string("")));
    json_object_set_new(cl->info, "controller_location",
                        cfg_or(cfg, "controller_location", json_string("")));
    cpar_config_double(cfg, "Cluster", "delay", &delay);
    json_object_set_new(cl->info, "delay", json_real(delay));
    {
        int64_t n;

        json_object_set_new(cl->info, "n",
                            cpar_config_int(cfg, "Cluster", "n", &n) == 0 ? json_integer(n)
                                                                           : json_null());
    }
    json_object_set_new(cl->info, "profile_dir", json_string(cl->profile_dir));
    json_object_set_new(cl->info, "class", json_string(CLUSTER_CLASS));
    cls = cfg_class(cfg, "controller_launcher_class");
    cl->ctl_class = strdup(cls ? cls : "local");
    cls = cfg_class(cfg, "engine_launcher_class");
    cl->eng_class = strdup(cls ? cls : "local");
    if (!cl->ctl_class || !cl->eng_class) {
        cl_cluster_free(cl);
        return NULL;
    }
    return cl;
}

static void comp_free(cl_comp_t *c)
{
    if (!c)
        return;
    cpar_launch_release(c->job);
    free(c->set_id);
    free(c);
}

void cl_cluster_free(cl_cluster_t *cl)
{
    if (!cl)
        return;
    comp_free(cl->ctl);
    for (size_t i = 0; i < cl->nsets; i++)
        comp_free(cl->sets[i]);
    free(cl->sets);
    if (cl->ctl_l)
        cpar_launcher_close(cl->app->ph, cl->ctl_l);
    if (cl->eng_l)
        cpar_launcher_close(cl->app->ph, cl->eng_l);
    json_decref(cl->info);
    json_decref(cl->dropped);
    free(cl->ctl_class);
    free(cl->eng_class);
    free(cl->profile_dir);
    free(cl->cluster_id);
    free(cl->file);
    free(cl);
}

int cl_cluster_running(const cl_cluster_t *cl)
{
    return cl->ctl || cl->nsets > 0;
}

int cl_cluster_engines_n(const cl_cluster_t *cl)
{
    int n = 0;

    for (size_t i = 0; i < cl->nsets; i++)
        n += cl->sets[i]->n;
    return n;
}

static int open_one(cl_cluster_t *cl, cpar_launch_role_t role, char *err, size_t errlen)
{
    cpar_launcher_h **slot = role == CPAR_ROLE_CONTROLLER ? &cl->ctl_l : &cl->eng_l;
    char **cls = role == CPAR_ROLE_CONTROLLER ? &cl->ctl_class : &cl->eng_class;
    char *name;
    int rc;

    if (*slot)
        return 0;
    rc = cpar_launcher_open(cl->app->ph, *cls, role, slot, err, errlen);
    if (rc != 0) {
        *slot = NULL;
        return rc;
    }
    name = strdup(cpar_launcher_name(*slot));
    if (!name)
        return CPAR_ENOMEM;
    free(*cls);
    *cls = name;
    return 0;
}

int cl_cluster_open_launchers(cl_cluster_t *cl, int need_controller, char *err, size_t errlen)
{
    int rc;

    if (need_controller && (rc = open_one(cl, CPAR_ROLE_CONTROLLER, err, errlen)) != 0)
        return rc;
    return open_one(cl, CPAR_ROLE_ENGINES, err, errlen);
}

static int add_set(cl_cluster_t *cl, cl_comp_t *c)
{
    cl_comp_t **s = realloc(cl->sets, (cl->nsets + 1) * sizeof *s);

    if (!s)
        return CPAR_ENOMEM;
    cl->sets = s;
    s[cl->nsets++] = c;
    return 0;
}

static int in_dropped(const cl_cluster_t *cl, const char *id)
{
    size_t i;
    json_t *v;

    json_array_foreach (cl->dropped, i, v)
        if (strcmp(json_string_value(v), id) == 0)
            return 1;
    return 0;
}

static cl_comp_t *find_set(const cl_cluster_t *cl, const char *id)
{
    for (size_t i = 0; i < cl->nsets; i++)
        if (strcmp(cl->sets[i]->set_id, id) == 0)
            return cl->sets[i];
    return NULL;
}

/* The file as it is on disk now, or NULL. */
static json_t *read_file(const char *file)
{
    json_t *d = json_load_file(file, 0, NULL);

    if (d && !json_is_object(d)) {
        json_decref(d);
        return NULL;
    }
    return d;
}

static char *new_set_id(cl_cluster_t *cl)
{
    json_t *disk = read_file(cl->file);
    json_t *sets = json_object_get(json_object_get(disk, "engines"), "sets");
    char base[32], *id = NULL;

    snprintf(base, sizeof base, "%lld", (long long)time(NULL));
    for (int k = 0; k < 1000; k++) {
        free(id);
        id = NULL;
        if ((k == 0 ? asprintf(&id, "%s", base) : asprintf(&id, "%s-%d", base, k)) < 0) {
            id = NULL;
            break;
        }
        if (!find_set(cl, id) && !in_dropped(cl, id) && !json_object_get(sets, id))
            break;
    }
    json_decref(disk);
    return id;
}

int cl_cluster_start_controller(cl_cluster_t *cl, char *err, size_t errlen)
{
    spec_buf_t b;
    cl_comp_t *c;
    char *start_json = NULL;
    int rc;

    if ((rc = open_one(cl, CPAR_ROLE_CONTROLLER, err, errlen)) != 0)
        return rc;
    if ((rc = spec_build(cl, cl->ctl_l, CPAR_ROLE_CONTROLLER, NULL, 1, &b)) != 0) {
        spec_fini(&b);
        snprintf(err, errlen, "cannot prepare the controller: %s", cpar_strerror(rc));
        return rc;
    }
    c = calloc(1, sizeof *c);
    if (!c) {
        spec_fini(&b);
        return CPAR_ENOMEM;
    }
    c->n = 1;
    c->l = cl->ctl_l;
    rc = cpar_launch_start(cl->ctl_l, &b.spec, &c->job, &start_json);
    spec_fini(&b);
    if (rc != 0) {
        const char *why = cpar_launcher_error(cl->ctl_l);

        snprintf(err, errlen, "cannot start the controller (launcher %s): %s", cl->ctl_class,
                 why && *why ? why : cpar_strerror(rc));
        free(c);
        return rc;
    }
    c->started_ms = cpar_loop_now_ms(cl->app->loop);
    cpar_info("started the controller (%s)%s%s", cl->ctl_class, start_json ? ": " : "",
              start_json ? start_json : "");
    free(start_json);
    cl->ctl = c;
    cl->ctl_dropped = 0;
    return 0;
}

int cl_cluster_start_engines(cl_cluster_t *cl, int n, cl_comp_t **set, char *err,
                             size_t errlen)
{
    spec_buf_t b;
    cl_comp_t *c;
    char *start_json = NULL;
    int rc;

    if ((rc = open_one(cl, CPAR_ROLE_ENGINES, err, errlen)) != 0)
        return rc;
    if (n <= 0) {
        json_t *jn = json_object_get(cl->info, "n");

        n = json_is_integer(jn) ? (int)json_integer_value(jn) : 0;
        if (n <= 0) {
            long cpus = sysconf(_SC_NPROCESSORS_ONLN);
            n = cpus > 0 ? (int)cpus : 1;
        }
    }
    c = calloc(1, sizeof *c);
    if (!c || !(c->set_id = new_set_id(cl))) {
        free(c);
        return CPAR_ENOMEM;
    }
    c->n = n;
    c->l = cl->eng_l;
    if ((rc = spec_build(cl, cl->eng_l, CPAR_ROLE_ENGINES, c->set_id, n, &b)) != 0) {
        spec_fini(&b);
        comp_free(c);
        snprintf(err, errlen, "cannot prepare the engines: %s", cpar_strerror(rc));
        return rc;
    }
    rc = cpar_launch_start(cl->eng_l, &b.spec, &c->job, &start_json);
    spec_fini(&b);
    if (rc != 0) {
        const char *why = cpar_launcher_error(cl->eng_l);

        snprintf(err, errlen, "cannot start %d engines (launcher %s): %s", n, cl->eng_class,
                 why && *why ? why : cpar_strerror(rc));
        comp_free(c);
        return rc;
    }
    if ((rc = add_set(cl, c)) != 0) {
        cpar_launch_stop(c->job, NULL);
        comp_free(c);
        return rc;
    }
    c->started_ms = cpar_loop_now_ms(cl->app->loop);
    cpar_info("started engine set %s: %d engines (%s)%s%s", c->set_id, n, cl->eng_class,
              start_json ? ": " : "", start_json ? start_json : "");
    free(start_json);
    if (set)
        *set = c;
    return 0;
}

void cl_cluster_drop(cl_cluster_t *cl, cl_comp_t *c)
{
    if (c == cl->ctl) {
        cl->ctl = NULL;
        cl->ctl_dropped = 1;
    } else {
        for (size_t i = 0; i < cl->nsets; i++)
            if (cl->sets[i] == c) {
                memmove(cl->sets + i, cl->sets + i + 1, (cl->nsets - i - 1) * sizeof *cl->sets);
                cl->nsets--;
                break;
            }
        json_array_append_new(cl->dropped, json_string(c->set_id));
    }
    comp_free(c);
}

static const char *comp_name(const cl_comp_t *c, char *buf, size_t len)
{
    if (!c->set_id)
        snprintf(buf, len, "the controller");
    else
        snprintf(buf, len, "engine set %s", c->set_id);
    return buf;
}

static void log_output(cl_comp_t *c, int level, int remove)
{
    char *text = NULL;

    if (cpar_launch_output(c->job, remove, &text) == 0 && text && *text) {
        char name[64];
        size_t len = strlen(text);

        while (len > 0 && text[len - 1] == '\n')
            text[--len] = '\0';
        cpar_log(level, "output of %s:\n%s", comp_name(c, name, sizeof name), text);
    }
    free(text);
}

void cl_cluster_stop_comp(cl_cluster_t *cl, cl_comp_t *c)
{
    char *stop_json = NULL, name[64];
    int rc = cpar_launch_stop(c->job, &stop_json);

    comp_name(c, name, sizeof name);
    if (rc != 0) {
        const char *why = cpar_launcher_error(c->l);
        cpar_error("cannot stop %s: %s", name, why && *why ? why : cpar_strerror(rc));
    } else {
        cpar_info("stopped %s%s%s", name, stop_json ? ": " : "", stop_json ? stop_json : "");
    }
    free(stop_json);
    log_output(c, CPAR_LOG_DEBUG, 1);
    cl_cluster_drop(cl, c);
}

void cl_cluster_stop_all(cl_cluster_t *cl)
{
    /* the engines first, while their controller still answers */
    while (cl->nsets > 0)
        cl_cluster_stop_comp(cl, cl->sets[cl->nsets - 1]);
    if (cl->ctl)
        cl_cluster_stop_comp(cl, cl->ctl);
}

int cl_cluster_poll_comp(cl_cluster_t *cl, cl_comp_t *c, int *code, char **detail)
{
    cpar_job_state_t st = CPAR_JOB_UNKNOWN;
    char *d = NULL;
    int ec = CPAR_EXIT_UNKNOWN;
    int rc = cpar_launch_poll(c->job, &st, &ec, &d);

    (void)cl;
    *code = ec;
    *detail = NULL;
    if (rc != 0) {
        const char *why = cpar_launcher_error(c->l);
        char name[64];

        cpar_warn("cannot poll %s: %s", comp_name(c, name, sizeof name),
                  why && *why ? why : cpar_strerror(rc));
        free(d);
        return 0;
    }
    if (st != CPAR_JOB_DONE) {
        free(d);
        return 0;
    }
    *detail = d;
    return 1;
}

int cl_cluster_refresh(cl_cluster_t *cl)
{
    int dropped = 0, code;
    char *detail, name[64];

    if (cl->ctl && cl_cluster_poll_comp(cl, cl->ctl, &code, &detail)) {
        cpar_warn("%s (%s) is no longer running%s%s", comp_name(cl->ctl, name, sizeof name),
                  cl->ctl_class, detail ? ": " : "", detail ? detail : "");
        free(detail);
        log_output(cl->ctl, CPAR_LOG_DEBUG, 1);
        cl_cluster_drop(cl, cl->ctl);
        dropped++;
    }
    for (size_t i = 0; i < cl->nsets;) {
        cl_comp_t *c = cl->sets[i];

        if (cl_cluster_poll_comp(cl, c, &code, &detail)) {
            cpar_warn("%s (%s) is no longer running%s%s", comp_name(c, name, sizeof name),
                      cl->eng_class, detail ? ": " : "", detail ? detail : "");
            free(detail);
            log_output(c, CPAR_LOG_DEBUG, 1);
            cl_cluster_drop(cl, c);
            dropped++;
        } else {
            i++;
        }
    }
    return dropped;
}

/* ---- the file ---------------------------------------------------------------------------- */

static json_t *comp_state(cl_comp_t *c)
{
    char *text = NULL;
    json_t *st = NULL;

    if (cpar_launch_save(c->job, &text) == 0 && text)
        st = json_loads(text, 0, NULL);
    else
        cpar_warn("cannot save the state of a component: %s", cpar_launcher_error(c->l));
    free(text);
    if (!st)
        st = json_pack("{s:s}", "state", "running");
    return st;
}

json_t *cl_cluster_to_dict(cl_cluster_t *cl)
{
    json_t *d = json_object(), *sets = json_object(), *eng = json_object();

    if (!d || !sets || !eng) {
        json_decref(d);
        json_decref(sets);
        json_decref(eng);
        return NULL;
    }
    json_object_set_new(d, "cluster", json_deep_copy(cl->info));
    if (cl->ctl)
        json_object_set_new(d, "controller", json_pack("{s:s, s:o}", "class", cl->ctl_class,
                                                       "state", comp_state(cl->ctl)));
    for (size_t i = 0; i < cl->nsets; i++)
        json_object_set_new(sets, cl->sets[i]->set_id, comp_state(cl->sets[i]));
    json_object_set_new(eng, "class", json_string(cl->eng_class));
    json_object_set_new(eng, "sets", sets);
    json_object_set_new(d, "engines", eng);
    return d;
}

static int write_atomic(const char *file, json_t *d)
{
    char *tmp = NULL;
    FILE *f;
    int ok;

    if (asprintf(&tmp, "%s.tmp-%d", file, (int)getpid()) < 0)
        return CPAR_ENOMEM;
    f = fopen(tmp, "w");
    if (!f) {
        cpar_error("cannot write %s: %s", tmp, strerror(errno));
        free(tmp);
        return CPAR_EIO;
    }
    ok = json_dumpf(d, f, JSON_INDENT(1) | JSON_SORT_KEYS | JSON_REAL_PRECISION(15)) == 0;
    ok = fputc('\n', f) != EOF && ok;
    ok = fflush(f) == 0 && ok;
    ok = fsync(fileno(f)) == 0 && ok;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, file) != 0) {
        cpar_error("cannot write %s: %s", file, strerror(errno));
        unlink(tmp);
        free(tmp);
        return CPAR_EIO;
    }
    free(tmp);
    return 0;
}

int cl_cluster_save(cl_cluster_t *cl)
{
    json_t *d = cl_cluster_to_dict(cl), *disk, *sets, *st;
    const char *id;
    int running, rc = 0;

    if (!d)
        return CPAR_ENOMEM;
    disk = read_file(cl->file);
    sets = json_object_get(json_object_get(d, "engines"), "sets");
    if (disk) {
        json_t *dctl = json_object_get(disk, "controller");
        json_t *dsets = json_object_get(json_object_get(disk, "engines"), "sets");

        if (!cl->ctl && !cl->ctl_dropped && json_is_object(dctl))
            json_object_set(d, "controller", dctl);
        json_object_foreach (dsets, id, st)
            if (!find_set(cl, id) && !in_dropped(cl, id))
                json_object_set(sets, id, st);
    }
    running = json_object_get(d, "controller") != NULL || json_object_size(sets) > 0;
    if (running) {
        rc = write_atomic(cl->file, d);
    } else if (disk || access(cl->file, F_OK) == 0) {
        if (unlink(cl->file) != 0 && errno != ENOENT) {
            cpar_error("cannot remove %s: %s", cl->file, strerror(errno));
            rc = CPAR_EIO;
        } else {
            cpar_info("removed %s: nothing of the cluster runs", cl->file);
        }
    }
    json_decref(disk);
    json_decref(d);
    return rc;
}

/* Rebuild one component from its saved state; 1 when restored, 0 when gone, < 0 on error. */
static int restore_comp(cl_cluster_t *cl, cpar_launch_role_t role, const char *set_id,
                        json_t *state, cl_comp_t **out, char *err, size_t errlen)
{
    cpar_launcher_h *l = role == CPAR_ROLE_CONTROLLER ? cl->ctl_l : cl->eng_l;
    json_t *jn = json_object_get(state, "n");
    int n = role == CPAR_ROLE_ENGINES && json_is_integer(jn) ? (int)json_integer_value(jn) : 1;
    spec_buf_t b;
    cl_comp_t *c;
    char *text;
    int rc;

    *out = NULL;
    if (!json_is_object(state)) {
        snprintf(err, errlen, "%s: %s has no state object", cl->file,
                 set_id ? "an engine set" : "the controller");
        return CPAR_EINVAL;
    }
    c = calloc(1, sizeof *c);
    if (!c || (set_id && !(c->set_id = strdup(set_id)))) {
        free(c);
        return CPAR_ENOMEM;
    }
    c->n = n;
    c->l = l;
    if ((rc = spec_build(cl, l, role, set_id, n, &b)) != 0) {
        spec_fini(&b);
        comp_free(c);
        return rc;
    }
    text = json_dumps(state, JSON_COMPACT);
    rc = text ? cpar_launch_restore(l, &b.spec, text, &c->job) : CPAR_ENOMEM;
    free(text);
    spec_fini(&b);
    if (rc == CPAR_ENOENT) {
        const char *why = cpar_launcher_error(l);

        char name[64];

        if (set_id)
            snprintf(name, sizeof name, "engine set %s", set_id);
        else
            snprintf(name, sizeof name, "the controller");
        cpar_error("%s (%s) of cluster '%s' is not running%s%s", name,
                   role == CPAR_ROLE_CONTROLLER ? cl->ctl_class : cl->eng_class, cl->cluster_id,
                   why && *why ? ": " : "", why ? why : "");
        comp_free(c);
        return 0;
    }
    if (rc != 0) {
        const char *why = cpar_launcher_error(l);

        snprintf(err, errlen, "%s: cannot restore %s %s: %s", cl->file,
                 set_id ? "engine set" : "the controller", set_id ? set_id : "",
                 why && *why ? why : cpar_strerror(rc));
        comp_free(c);
        return rc;
    }
    *out = c;
    return 1;
}

static int set_class(char **slot, json_t *part)
{
    const char *cls = json_string_value(json_object_get(part, "class"));
    char *s;

    if (!cls || !*cls)
        return 0;
    if (!(s = strdup(cls)))
        return CPAR_ENOMEM;
    free(*slot);
    *slot = s;
    return 0;
}

int cl_cluster_load(cl_app_t *app, const char *file, int own, cl_cluster_t **out, char *err,
                    size_t errlen)
{
    json_error_t jerr;
    json_t *d, *info, *ctl, *eng, *sets, *st;
    const char *pd, *cid, *id;
    cl_cluster_t *cl;
    int rc = 0;

    *out = NULL;
    if (access(file, F_OK) != 0)
        return 0;
    d = json_load_file(file, 0, &jerr);
    if (!d) {
        snprintf(err, errlen, "%s: corrupt cluster file: %s (line %d, column %d)", file,
                 jerr.text, jerr.line, jerr.column);
        return CPAR_EINVAL;
    }
    info = json_object_get(d, "cluster");
    ctl = json_object_get(d, "controller");
    eng = json_object_get(d, "engines");
    sets = json_object_get(eng, "sets");
    if (!json_is_object(d) || !json_is_object(info) || (ctl && !json_is_object(ctl) &&
                                                        !json_is_null(ctl)) ||
        (eng && !json_is_object(eng)) || (sets && !json_is_object(sets))) {
        snprintf(err, errlen, "%s: corrupt cluster file: not ipyparallel's cluster schema", file);
        json_decref(d);
        return CPAR_EINVAL;
    }
    pd = json_string_value(json_object_get(info, "profile_dir"));
    cid = json_string_value(json_object_get(info, "cluster_id"));
    cl = cluster_alloc(app, pd && *pd ? pd : app->profile_dir, cid ? cid : "");
    if (!cl) {
        json_decref(d);
        return CPAR_ENOMEM;
    }
    free(cl->file);
    cl->file = strdup(file);
    cl->info = json_deep_copy(info);
    cl->ctl_class = strdup("local");
    cl->eng_class = strdup("local");
    if (!cl->file || !cl->info || !cl->ctl_class || !cl->eng_class ||
        set_class(&cl->ctl_class, ctl) || set_class(&cl->eng_class, eng)) {
        json_decref(d);
        cl_cluster_free(cl);
        return CPAR_ENOMEM;
    }
    if (own && json_is_object(ctl)) {
        if ((rc = open_one(cl, CPAR_ROLE_CONTROLLER, err, errlen)) == 0) {
            rc = restore_comp(cl, CPAR_ROLE_CONTROLLER, NULL, json_object_get(ctl, "state"),
                              &cl->ctl, err, errlen);
            if (rc == 0)
                cl->ctl_dropped = 1;
            rc = rc < 0 ? rc : 0;
        }
    }
    if (rc == 0 && own && json_object_size(sets) > 0 &&
        (rc = open_one(cl, CPAR_ROLE_ENGINES, err, errlen)) == 0) {
        json_object_foreach (sets, id, st) {
            cl_comp_t *c;
            int r = restore_comp(cl, CPAR_ROLE_ENGINES, id, st, &c, err, errlen);

            if (r < 0) {
                rc = r;
                break;
            }
            if (r == 0)
                json_array_append_new(cl->dropped, json_string(id));
            else if ((rc = add_set(cl, c)) != 0) {
                comp_free(c);
                break;
            }
        }
    }
    json_decref(d);
    if (rc != 0) {
        cl_cluster_free(cl);
        return rc;
    }
    *out = cl;
    return 0;
}

void cl_cluster_adopt(cl_cluster_t *cl)
{
    json_t *disk = read_file(cl->file), *eng, *sets, *st;
    const char *id, *cls;
    char err[512];

    eng = json_object_get(disk, "engines");
    sets = json_object_get(eng, "sets");
    cls = json_string_value(json_object_get(eng, "class"));
    if (json_object_size(sets) > 0 && cls && strcmp(cls, cl->eng_class) != 0) {
        cpar_warn("%s: engine sets of launcher '%s' were added; left to `cpcluster stop`",
                  cl->file, cls);
        json_decref(disk);
        return;
    }
    if (json_object_size(sets) > 0 && open_one(cl, CPAR_ROLE_ENGINES, err, sizeof err) != 0) {
        cpar_error("%s", err);
        json_decref(disk);
        return;
    }
    json_object_foreach (sets, id, st) {
        cl_comp_t *c;

        if (find_set(cl, id) || in_dropped(cl, id))
            continue;
        if (restore_comp(cl, CPAR_ROLE_ENGINES, id, st, &c, err, sizeof err) == 1) {
            if (add_set(cl, c) != 0)
                comp_free(c);
            else
                cpar_info("took over engine set %s added by another cpcluster", id);
        } else if (!in_dropped(cl, id)) {
            json_array_append_new(cl->dropped, json_string(id));
        }
    }
    json_decref(disk);
}

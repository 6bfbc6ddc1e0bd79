/* launchtest.c - helpers shared by the launcher tests (see launchtest.h). */
#include "launchtest.h"

#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cmocka.h>

char lt_tmp[256];

char *lt_slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    size_t got = fread(s, 1, (size_t)n, f);
    s[got] = '\0';
    fclose(f);
    return s;
}

char *lt_fresh_dir(const char *tag)
{
    static int seq;
    char *d = malloc(512);
    assert_non_null(d);
    snprintf(d, 512, "%s/%s-%d", lt_tmp, tag, ++seq);
    assert_int_equal(mkdir(d, 0700), 0);
    return d;
}

void lt_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

void lt_open(lt_launcher_t *lt, const char *program, const char *profile_dir, const char *plugin,
             cpar_launch_role_t role, va_list ap)
{
    memset(lt, 0, sizeof *lt);
    lt->cfg = cpar_config_new();
    assert_non_null(lt->cfg);
    for (const char *k; (k = va_arg(ap, const char *)) != NULL;) {
        const char *v = va_arg(ap, const char *);
        json_error_t jerr;
        json_t *j = json_loads(v, JSON_DECODE_ANY, &jerr);
        if (!j)
            fail_msg("bad JSON for %s: %s", k, v);
        assert_int_equal(cpar_config_set_dotted(lt->cfg, k, j, CPAR_SRC_CLI, "test"), 0);
    }
    cpar_plughost_info_t info = {
        .program = program, .profile_dir = profile_dir, .cluster_id = "abc", .session = "s"};
    assert_int_equal(cpar_plughost_new(&lt->host, lt->cfg, NULL, &info), 0);
    char err[1024];
    int rc = cpar_launcher_open(lt->host, plugin, role, &lt->l, err, sizeof err);
    if (rc)
        fail_msg("cpar_launcher_open(%s): %s: %s", plugin, cpar_err_name(rc), err);
}

void lt_close(lt_launcher_t *lt)
{
    cpar_launcher_close(lt->host, lt->l);
    cpar_plughost_free(lt->host);
    cpar_config_free(lt->cfg);
}

json_t *lt_start(cpar_launcher_h *l, const cpar_launch_spec_t *spec, cpar_launch_job_t **job)
{
    char *start_json = NULL;
    *job = NULL;
    int rc = cpar_launch_start(l, spec, job, &start_json);
    if (rc)
        fail_msg("start: %s: %s", cpar_err_name(rc), cpar_launcher_error(l));
    assert_non_null(*job);
    assert_non_null(start_json);
    json_t *j = json_loads(start_json, 0, NULL);
    if (!j)
        fail_msg("start JSON does not parse: %s", start_json);
    free(start_json);
    return j;
}

cpar_job_state_t lt_poll_until(cpar_launch_job_t *job, cpar_job_state_t want, int secs, int step_ms,
                               int *exit_code)
{
    cpar_job_state_t st = CPAR_JOB_UNKNOWN;
    for (int i = 0; i < secs * 1000 / step_ms; i++) {
        char *detail = NULL;
        int rc = cpar_launch_poll(job, &st, exit_code, &detail);
        free(detail);
        assert_int_equal(rc, 0);
        if (st == want)
            break;
        lt_sleep_ms(step_ms);
    }
    return st;
}

/* cfgtest.c - see cfgtest.h. */
#include "cfgtest.h"

#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *cfgt_join(const char *a, const char *b)
{
    char *s = malloc(strlen(a) + strlen(b) + 2);

    assert_non_null(s);
    sprintf(s, "%s/%s", a, b);
    return s;
}

char *cfgt_mkdtemp(void)
{
    const char *base = getenv("TMPDIR");
    char *tmpl = cfgt_join(base && *base ? base : "/tmp", "cpar-config-test-XXXXXX");

    assert_non_null(mkdtemp(tmpl));
    return tmpl;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void cfgt_rmtree(const char *path)
{
    if (path)
        nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

char *cfgt_write(const char *dir, const char *name, const char *content)
{
    char *path = cfgt_join(dir, name);
    FILE *f = fopen(path, "wb");

    assert_non_null(f);
    assert_int_equal(fwrite(content, 1, strlen(content), f), strlen(content));
    assert_int_equal(fclose(f), 0);
    return path;
}

static int saved_stderr = -1;
static FILE *capture;

void cfgt_stderr_begin(void)
{
    fflush(stderr);
    capture = tmpfile();
    assert_non_null(capture);
    saved_stderr = dup(STDERR_FILENO);
    assert_true(saved_stderr >= 0);
    assert_true(dup2(fileno(capture), STDERR_FILENO) >= 0);
}

char *cfgt_stderr_end(void)
{
    long n;
    char *text;

    fflush(stderr);
    assert_true(dup2(saved_stderr, STDERR_FILENO) >= 0);
    close(saved_stderr);
    saved_stderr = -1;
    n = ftell(capture);
    assert_true(n >= 0);
    text = calloc(1, (size_t)n + 1);
    assert_non_null(text);
    rewind(capture);
    assert_int_equal(fread(text, 1, (size_t)n, capture), (size_t)n);
    fclose(capture);
    capture = NULL;
    fputs(text, stderr); /* keep the lines visible in the test log */
    return text;
}

int cfgt_count(const char *hay, const char *needle)
{
    int n = 0;

    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

const char *cfgt_str(const cpar_config_t *cfg, const char *section, const char *key)
{
    json_t *v = cpar_config_get(cfg, section, key);

    return json_is_string(v) ? json_string_value(v) : NULL;
}

static int count_cb(void *arg, const char *section, const char *key, json_t *value,
                    cpar_cfg_source_t src, const char *origin)
{
    (void)section;
    (void)key;
    (void)value;
    (void)src;
    (void)origin;
    ++*(int *)arg;
    return 0;
}

int cfgt_nkeys(const cpar_config_t *cfg)
{
    int n = 0;

    assert_int_equal(cpar_config_foreach(cfg, count_cb, &n), 0);
    return n;
}

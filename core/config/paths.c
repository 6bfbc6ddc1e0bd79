/*
 * paths.c - file and path helpers of the config readers: whole-file reads, ~ expansion,
 * absolute paths, UTF-8 checks.
 */
#include "internal.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cparallel/errors.h>

int cpar_cfg_read_file(const char *path, char **data, size_t *len)
{
    FILE *f;
    char *buf = NULL;
    size_t n = 0, cap = 0;
    struct stat st;

    f = fopen(path, "rb");
    if (!f)
        return errno == ENOENT ? CPAR_ENOENT : CPAR_EIO;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        errno = EISDIR;
        return CPAR_EIO;
    }
    for (;;) {
        size_t got;

        if (cap - n < 4096) {
            char *nb = realloc(buf, cap ? cap * 2 : 8192);

            if (!nb) {
                free(buf);
                fclose(f);
                return CPAR_ENOMEM;
            }
            buf = nb;
            cap = cap ? cap * 2 : 8192;
        }
        got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        int saved = errno;

        free(buf);
        fclose(f);
        errno = saved ? saved : EIO;
        return CPAR_EIO;
    }
    fclose(f);
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return 0;
}

char *cpar_cfg_join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    int slash = la > 0 && a[la - 1] != '/';
    char *s = malloc(la + (size_t)slash + lb + 1);

    if (!s)
        return NULL;
    memcpy(s, a, la);
    if (slash)
        s[la] = '/';
    memcpy(s + la + slash, b, lb + 1);
    return s;
}

/* The home directory of `user` (NULL: the current user), malloc'd, or NULL when unknown. */
static char *home_of(const char *user, int *nomem)
{
    struct passwd pw, *res = NULL;
    char buf[4096];
    const char *home = NULL;
    char *s;

    if (!user && (home = getenv("HOME")) != NULL)
        goto found;
    if (user ? getpwnam_r(user, &pw, buf, sizeof buf, &res) != 0
             : getpwuid_r(getuid(), &pw, buf, sizeof buf, &res) != 0)
        return NULL;
    if (!res || !res->pw_dir)
        return NULL;
    home = res->pw_dir;
found:
    s = strdup(home);
    if (!s)
        *nomem = 1;
    return s;
}

char *cpar_cfg_expanduser(const char *path)
{
    const char *rest;
    char *user = NULL, *home, *out;
    int nomem = 0;
    size_t lh;

    if (path[0] != '~')
        return strdup(path);
    rest = strchr(path, '/');
    if (!rest)
        rest = path + strlen(path);
    if (rest > path + 1) {
        user = strndup(path + 1, (size_t)(rest - path - 1));
        if (!user)
            return NULL;
    }
    home = home_of(user, &nomem);
    free(user);
    if (!home)
        return nomem ? NULL : strdup(path);
    lh = strlen(home);
    while (lh > 1 && home[lh - 1] == '/')
        lh--;
    out = malloc(lh + strlen(rest) + 1);
    if (out) {
        memcpy(out, home, lh);
        strcpy(out + lh, rest);
    }
    free(home);
    return out;
}

/* Fold "//", "/./" and "/x/../" in an absolute path, in place. */
static void normalize(char *p)
{
    char *w = p; /* stays before the segment being read */
    const char *r = p;

    while (*r) {
        const char *seg;
        size_t len;

        while (*r == '/')
            r++;
        seg = r;
        while (*r && *r != '/')
            r++;
        len = (size_t)(r - seg);
        if (len == 0 || (len == 1 && seg[0] == '.'))
            continue;
        if (len == 2 && seg[0] == '.' && seg[1] == '.') {
            while (w > p && *--w != '/')
                ;
            continue;
        }
        *w++ = '/';
        memmove(w, seg, len);
        w += len;
    }
    if (w == p)
        *w++ = '/';
    *w = '\0';
}

char *cpar_cfg_abspath(const char *path)
{
    char *exp = cpar_cfg_expanduser(path), *out;

    if (!exp)
        return NULL;
    if (exp[0] == '/') {
        out = exp;
    } else {
        char *cwd = getcwd(NULL, 0);

        if (!cwd) {
            free(exp);
            return NULL;
        }
        out = cpar_cfg_join(cwd, exp);
        free(cwd);
        free(exp);
        if (!out)
            return NULL;
    }
    normalize(out);
    return out;
}

int cpar_cfg_utf8_ok(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;

    while (p < end) {
        unsigned c = *p;
        size_t n;
        unsigned cp;

        if (c == 0)
            return 0;
        if (c < 0x80) {
            p++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if ((size_t)(end - p) <= n)
            return 0;
        for (size_t i = 1; i <= n; i++) {
            if ((p[i] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (p[i] & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        p += n + 1;
    }
    return 1;
}

/*
 * scan.c - reading single top-level fields out of a JSON object's text without building a tree.
 *
 * The controller's hot paths need a handful of fields per message (msg_type, msg_id, the
 * parent's msg_id, a reply's status); scanning for them costs a fraction of a full parse and
 * allocates nothing. The scanner walks the whole top level, so text that is not a well-formed
 * object at that level is refused; nested values are skipped by matching brackets and strings.
 */
#include "wire.h"

#include <cparallel/errors.h>

#include <stdint.h>
#include <string.h>

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/*
 * The bytes a string's scan stops at: a quote, a backslash or a control character. Most of a
 * message's text is plain string content (ids, dates, names), so strings are crossed eight bytes
 * at a time: stop_mask() sets the high bit of each stop byte in a block (Mycroft's zero-byte
 * test on x ^ '"' and x ^ '\\', and its "less than" form for 0x20). Bits above a stop byte may
 * be set falsely (a borrow carries upward), the lowest set bit never is, so on a little-endian
 * machine it tells where the first stop is; elsewhere the block is searched byte by byte.
 */
static int is_stop(char c)
{
    return c == '"' || c == '\\' || (unsigned char)c < 0x20;
}

static uint64_t stop_mask(const char *p)
{
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    uint64_t x, q, b;

    memcpy(&x, p, sizeof x);
    q = x ^ (ones * '"');
    b = x ^ (ones * '\\');
    return ((q - ones) & ~q & highs) | ((b - ones) & ~b & highs) | ((x - ones * 0x20) & ~x & highs);
}

/* The first stop byte at or after p, or end when there is none. */
static const char *next_stop(const char *p, const char *end)
{
    for (; end - p >= 8; p += 8) {
        uint64_t mask = stop_mask(p);

        if (mask) {
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            return p + (__builtin_ctzll(mask) >> 3);
#else
            while (!is_stop(*p))
                p++;
            return p;
#endif
        }
    }
    while (p < end && !is_stop(*p))
        p++;
    return p;
}

/* p at an opening quote: return the position after the closing quote, or NULL. */
static const char *skip_string(const char *p, const char *end)
{
    for (p++;;) {
        p = next_stop(p, end);
        if (p >= end)
            return NULL;
        if (*p == '"')
            return p + 1;
        if (*p != '\\')
            return NULL; /* a control character */
        p += 2;          /* the escaped character is never the end of the string */
    }
}

/* p at the start of a value: return the position after it, or NULL. */
static const char *skip_value(const char *p, const char *end)
{
    int depth = 0;

    if (p >= end)
        return NULL;
    if (*p == '"')
        return skip_string(p, end);
    if (*p != '{' && *p != '[') {
        const char *q = p;

        while (q < end && *q != ',' && *q != '}' && *q != ']' && *q != ' ' && *q != '\t' &&
               *q != '\n' && *q != '\r')
            q++;
        return q > p ? q : NULL;
    }
    for (; p < end; p++) {
        if (*p == '"') {
            p = skip_string(p, end);
            if (!p)
                return NULL;
            p--;
        } else if (*p == '{' || *p == '[') {
            depth++;
        } else if (*p == '}' || *p == ']') {
            if (--depth == 0)
                return p + 1;
        }
    }
    return NULL;
}

/* The lengths of the keys looked for, measured once per walk (most walks look for 1 to 4). */
#define SCAN_KEYS_MEASURED 8

int cpar_json_scan_keys(const char *s, size_t n, const char *const *keys, size_t nkeys,
                        cpar_bytes_t *vals)
{
    const char *p = s, *end = s + n;
    size_t found = 0, klens[SCAN_KEYS_MEASURED];

    for (size_t i = 0; i < nkeys; i++) {
        vals[i] = (cpar_bytes_t){NULL, 0};
        if (i < SCAN_KEYS_MEASURED)
            klens[i] = strlen(keys[i]);
    }
    p = skip_ws(p, end);
    if (p >= end || *p != '{')
        return CPAR_EPROTO;
    p = skip_ws(p + 1, end);
    if (p < end && *p == '}')
        return skip_ws(p + 1, end) == end ? 0 : CPAR_EPROTO;
    for (;;) {
        const char *k, *kend, *v, *vend;

        if (p >= end || *p != '"')
            return CPAR_EPROTO;
        k = p + 1;
        kend = skip_string(p, end);
        if (!kend)
            return CPAR_EPROTO;
        p = skip_ws(kend, end);
        if (p >= end || *p != ':')
            return CPAR_EPROTO;
        v = skip_ws(p + 1, end);
        vend = skip_value(v, end);
        if (!vend)
            return CPAR_EPROTO;
        /* Keys with escapes never match: the fields we look for have plain names. */
        for (size_t i = 0; found < nkeys && i < nkeys; i++) {
            size_t klen = i < SCAN_KEYS_MEASURED ? klens[i] : strlen(keys[i]);

            if (!vals[i].data && (size_t)(kend - 1 - k) == klen && memcmp(k, keys[i], klen) == 0) {
                vals[i] = (cpar_bytes_t){v, (size_t)(vend - v)};
                found++;
                break;
            }
        }
        p = skip_ws(vend, end);
        if (p < end && *p == ',') {
            p = skip_ws(p + 1, end);
            continue;
        }
        if (p < end && *p == '}' && skip_ws(p + 1, end) == end)
            return 0;
        return CPAR_EPROTO;
    }
}

int cpar_json_scan(const char *s, size_t n, const char *key, const char **val, size_t *vlen)
{
    cpar_bytes_t v;
    int rc = cpar_json_scan_keys(s, n, &key, 1, &v);

    if (rc)
        return rc;
    if (!v.data)
        return CPAR_ENOENT;
    *val = v.data;
    *vlen = v.len;
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int hex4(const char *p, const char *end, unsigned *out)
{
    unsigned v = 0;

    if (end - p < 4)
        return -1;
    for (int i = 0; i < 4; i++) {
        int h = hexval(p[i]);

        if (h < 0)
            return -1;
        v = v * 16 + (unsigned)h;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

int cpar_json_str(cpar_bytes_t raw, char *buf, size_t buflen)
{
    const char *v = raw.data, *p, *end;
    size_t vlen = raw.len, o = 0;

    if (!v)
        return CPAR_ENOENT;
    if (vlen < 2 || v[0] != '"')
        return CPAR_EINVAL;
    end = v + vlen - 1;
    for (p = v + 1; p < end; p++) {
        const char *esc = memchr(p, '\\', (size_t)(end - p));
        size_t run = (size_t)((esc ? esc : end) - p);
        char tmp[4];
        size_t k = 1;
        unsigned cp;

        /* Text up to the next escape is copied as it is. */
        if (o + run >= buflen)
            return CPAR_E2BIG;
        memcpy(buf + o, p, run);
        o += run;
        p += run;
        if (!esc)
            break;
        if (++p >= end)
            return CPAR_EPROTO;
        switch (*p) {
        case '"':
        case '\\':
        case '/':
            tmp[0] = *p;
            break;
        case 'b':
            tmp[0] = '\b';
            break;
        case 'f':
            tmp[0] = '\f';
            break;
        case 'n':
            tmp[0] = '\n';
            break;
        case 'r':
            tmp[0] = '\r';
            break;
        case 't':
            tmp[0] = '\t';
            break;
        case 'u':
            if (hex4(p + 1, end, &cp))
                return CPAR_EPROTO;
            p += 4;
            if (cp >= 0xd800 && cp < 0xdc00) {
                unsigned lo;

                if (end - p < 7 || p[1] != '\\' || p[2] != 'u' || hex4(p + 3, end, &lo) ||
                    lo < 0xdc00 || lo >= 0xe000)
                    return CPAR_EPROTO;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                p += 6;
            } else if (cp >= 0xdc00 && cp < 0xe000) {
                return CPAR_EPROTO;
            }
            if (cp == 0) /* a NUL cannot live in a C string */
                return CPAR_EINVAL;
            k = put_utf8(tmp, cp);
            break;
        default:
            return CPAR_EPROTO;
        }
        if (o + k >= buflen)
            return CPAR_E2BIG;
        memcpy(buf + o, tmp, k);
        o += k;
    }
    buf[o] = '\0';
    return 0;
}

int cpar_json_scan_str(const char *s, size_t n, const char *key, char *buf, size_t buflen)
{
    cpar_bytes_t v;
    int rc = cpar_json_scan_keys(s, n, &key, 1, &v);

    return rc ? rc : cpar_json_str(v, buf, buflen);
}

int cpar_msg_scan_str(const cpar_msg_t *m, int part, const char *key, char *buf, size_t buflen)
{
    cpar_bytes_t b;

    if (m->delim == CPAR_NO_DELIM)
        return CPAR_EPROTO;
    b = cpar_msg_frame(m, m->delim + (size_t)part);
    return cpar_json_scan_str(b.data, b.len, key, buf, buflen);
}

int cpar_msg_scan(const cpar_msg_t *m, int part, const char *key, const char **val, size_t *vlen)
{
    cpar_bytes_t b;

    if (m->delim == CPAR_NO_DELIM)
        return CPAR_EPROTO;
    b = cpar_msg_frame(m, m->delim + (size_t)part);
    return cpar_json_scan(b.data, b.len, key, val, vlen);
}

int cpar_msg_scan_keys(const cpar_msg_t *m, int part, const char *const *keys, size_t nkeys,
                       cpar_bytes_t *vals)
{
    cpar_bytes_t b;

    if (m->delim == CPAR_NO_DELIM)
        return CPAR_EPROTO;
    b = cpar_msg_frame(m, m->delim + (size_t)part);
    return cpar_json_scan_keys(b.data, b.len, keys, nkeys, vals);
}

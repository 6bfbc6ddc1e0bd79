/*
 * pyconf.c - the reader of <prog>_config.py: a tokenizer for the Python lexical subset config
 * files use, and a recursive-descent parser of literal assignments to c.Section.trait. The same
 * expression parser reads command-line values (without arithmetic, like ast.literal_eval).
 */
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cparallel/errors.h>

#include "util/log.h"

/* ---- tokens ---------------------------------------------------------------------------- */

typedef enum { TK_NEWLINE, TK_END, TK_NAME, TK_NUMBER, TK_STRING, TK_OP } tk_kind_t;

typedef struct {
    tk_kind_t kind;
    const char *start; /* source span */
    size_t len;
    int line;
    int col;   /* column of the first character: 0 means at the start of its line */
    char *str; /* TK_STRING: the decoded text (UTF-8), malloc'd */
    size_t slen;
} token_t;

typedef struct {
    token_t *v;
    size_t n, cap;
} tokvec_t;

typedef struct {
    const char *src;
    size_t len, pos;
    int line;
    size_t line_start; /* offset of the current line */
    int depth;         /* open brackets */
    int oom;
    char msg[160]; /* first error, without position */
} lexer_t;

static void tokvec_clear(tokvec_t *tv)
{
    for (size_t i = 0; i < tv->n; i++)
        free(tv->v[i].str);
    tv->n = 0;
}

static void tokvec_free(tokvec_t *tv)
{
    tokvec_clear(tv);
    free(tv->v);
    tv->v = NULL;
    tv->cap = 0;
}

static int lex_fail(lexer_t *lx, const char *fmt, ...) CPAR_PRINTF(2, 3);

static int lex_fail(lexer_t *lx, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(lx->msg, sizeof lx->msg, fmt, ap);
    va_end(ap);
    return -1;
}

static int is_name_start(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static int is_name_char(unsigned char c)
{
    return is_name_start(c) || (c >= '0' && c <= '9');
}

/* A growable byte buffer for decoded strings. */
typedef struct {
    char *p;
    size_t n, cap;
} sbuf_t;

static int sbuf_put(sbuf_t *b, const char *s, size_t n)
{
    if (b->cap - b->n < n + 1) {
        size_t cap = b->cap ? b->cap : 64;
        char *np;

        while (cap - b->n < n + 1)
            cap *= 2;
        np = realloc(b->p, cap);
        if (!np)
            return -1;
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
    return 0;
}

static int sbuf_utf8(sbuf_t *b, uint32_t cp)
{
    char u[4];
    size_t n;

    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return sbuf_put(b, u, n);
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

static void lex_newline(lexer_t *lx)
{
    lx->line++;
    lx->line_start = lx->pos;
}

/* One backslash escape of a non-raw literal; lx->pos is after the backslash. */
static int lex_escape(lexer_t *lx, sbuf_t *b, int bytes)
{
    const char *s = lx->src;
    char c;
    uint32_t cp;
    int nhex = 0;

    if (lx->pos >= lx->len)
        return lex_fail(lx, "unterminated string");
    c = s[lx->pos++];
    switch (c) {
    case '\n':
        lex_newline(lx);
        return 0;
    case '\r':
        if (lx->pos < lx->len && s[lx->pos] == '\n')
            lx->pos++;
        lex_newline(lx);
        return 0;
    case '\\':
        return sbuf_put(b, "\\", 1);
    case '\'':
        return sbuf_put(b, "'", 1);
    case '"':
        return sbuf_put(b, "\"", 1);
    case 'a':
        return sbuf_put(b, "\a", 1);
    case 'b':
        return sbuf_put(b, "\b", 1);
    case 'f':
        return sbuf_put(b, "\f", 1);
    case 'n':
        return sbuf_put(b, "\n", 1);
    case 'r':
        return sbuf_put(b, "\r", 1);
    case 't':
        return sbuf_put(b, "\t", 1);
    case 'v':
        return sbuf_put(b, "\v", 1);
    case 'x':
        nhex = 2;
        break;
    case 'u':
        nhex = bytes ? 0 : 4;
        break;
    case 'U':
        nhex = bytes ? 0 : 8;
        break;
    case 'N':
        if (!bytes)
            return lex_fail(lx, "unsupported escape \\N{...} in string");
        break;
    default:
        break;
    }
    if (c >= '0' && c <= '7') {
        cp = (uint32_t)(c - '0');
        for (int i = 0; i < 2 && lx->pos < lx->len && s[lx->pos] >= '0' && s[lx->pos] <= '7'; i++)
            cp = cp * 8 + (uint32_t)(s[lx->pos++] - '0');
        goto codepoint;
    }
    if (!nhex) {
        /* Python keeps unknown escapes as they are. */
        char two[2] = {'\\', c};

        return sbuf_put(b, two, 2);
    }
    cp = 0;
    for (int i = 0; i < nhex; i++) {
        int h = lx->pos < lx->len ? hexval(s[lx->pos]) : -1;

        if (h < 0)
            return lex_fail(lx, "truncated \\%c escape in string", c);
        cp = cp * 16 + (uint32_t)h;
        lx->pos++;
    }
codepoint:
    if (cp == 0)
        return lex_fail(lx, "NUL character in string");
    if (bytes) {
        if (cp > 0x7F)
            return lex_fail(lx, "non-ASCII byte in bytes literal");
        return sbuf_utf8(b, cp);
    }
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return lex_fail(lx, "invalid \\%c escape in string", c);
    return sbuf_utf8(b, cp);
}

/* A string literal; lx->pos is at the opening quote, after the prefix. */
static int lex_string(lexer_t *lx, token_t *t, int raw, int bytes)
{
    const char *s = lx->src;
    char q = s[lx->pos];
    int triple = lx->pos + 2 < lx->len && s[lx->pos + 1] == q && s[lx->pos + 2] == q;
    sbuf_t b = {0};

    lx->pos += triple ? 3 : 1;
    if (sbuf_put(&b, "", 0) < 0)
        goto oom;
    for (;;) {
        char c;

        if (lx->pos >= lx->len) {
            lex_fail(lx, "unterminated string");
            goto fail;
        }
        c = s[lx->pos];
        if (c == q) {
            if (!triple) {
                lx->pos++;
                break;
            }
            if (lx->pos + 2 < lx->len && s[lx->pos + 1] == q && s[lx->pos + 2] == q) {
                lx->pos += 3;
                break;
            }
        }
        if (c == '\n' || c == '\r') {
            if (!triple) {
                lex_fail(lx, "unterminated string");
                goto fail;
            }
            lx->pos++;
            if (c == '\r' && lx->pos < lx->len && s[lx->pos] == '\n')
                lx->pos++;
            lex_newline(lx);
            if (sbuf_put(&b, "\n", 1) < 0)
                goto oom;
            continue;
        }
        if (c == '\\') {
            lx->pos++;
            if (raw) {
                /* a raw string keeps the backslash, and the next character cannot end it */
                if (sbuf_put(&b, "\\", 1) < 0)
                    goto oom;
                if (lx->pos < lx->len && (s[lx->pos] == q || s[lx->pos] == '\\')) {
                    if (sbuf_put(&b, s + lx->pos, 1) < 0)
                        goto oom;
                    lx->pos++;
                }
                continue;
            }
            if (lex_escape(lx, &b, bytes) < 0) {
                if (!lx->msg[0])
                    goto oom;
                goto fail;
            }
            continue;
        }
        if (c == '\0') {
            lex_fail(lx, "NUL character in string");
            goto fail;
        }
        if (bytes && (unsigned char)c >= 0x80) {
            lex_fail(lx, "non-ASCII byte in bytes literal");
            goto fail;
        }
        if (sbuf_put(&b, &c, 1) < 0)
            goto oom;
        lx->pos++;
    }
    if (!cpar_cfg_utf8_ok(b.p, b.n)) {
        lex_fail(lx, "invalid UTF-8 in string");
        goto fail;
    }
    t->kind = TK_STRING;
    t->str = b.p;
    t->slen = b.n;
    return 0;
oom:
    lx->oom = 1;
fail:
    free(b.p);
    return -1;
}

static int lex_number(lexer_t *lx)
{
    const char *s = lx->src;
    size_t p = lx->pos;

    if (s[p] == '0' && p + 1 < lx->len && s[p + 1] && strchr("xXoObB", s[p + 1])) {
        p += 2;
        while (p < lx->len && is_name_char((unsigned char)s[p]))
            p++;
    } else {
        while (p < lx->len && ((s[p] >= '0' && s[p] <= '9') || s[p] == '_'))
            p++;
        if (p < lx->len && s[p] == '.') {
            p++;
            while (p < lx->len && ((s[p] >= '0' && s[p] <= '9') || s[p] == '_'))
                p++;
        }
        if (p < lx->len && (s[p] == 'e' || s[p] == 'E')) {
            size_t e = p + 1;

            if (e < lx->len && (s[e] == '+' || s[e] == '-'))
                e++;
            if (e < lx->len && s[e] >= '0' && s[e] <= '9')
                p = e;
        }
        /* glued letters make an invalid literal ("1abc", "1j"), reported by the parser */
        while (p < lx->len && is_name_char((unsigned char)s[p]))
            p++;
    }
    lx->pos = p;
    return 0;
}

static const char *const lex_ops[] = {
    "**=", "//=", ">>=", "<<=", "**", "//", "+=", "-=", "*=", "/=", "%=", "==",
    "!=",  "<=",  ">=",  "->",  ":=", "<<", ">>", "&=", "|=", "^=", "@=", "(",
    ")",   "[",   "]",   "{",   "}",  ",",  ":",  ".",  ";",  "=",  "+",  "-",
    "*",   "/",   "%",   "<",   ">",  "@",  "&",  "|",  "^",  "~",  NULL};

/*
 * The next token. Newlines inside brackets and after a backslash are skipped, as Python does.
 * Returns 0, or -1 with lx->msg set (or lx->oom).
 */
static int lex_next(lexer_t *lx, token_t *t)
{
    const char *s = lx->src;

    memset(t, 0, sizeof *t);
    for (;;) {
        char c;

        while (lx->pos < lx->len && (s[lx->pos] == ' ' || s[lx->pos] == '\t' || s[lx->pos] == '\f'))
            lx->pos++;
        if (lx->pos >= lx->len) {
            t->kind = TK_END;
            t->start = s + lx->pos;
            t->line = lx->line;
            return 0;
        }
        c = s[lx->pos];
        if (c == '#') {
            while (lx->pos < lx->len && s[lx->pos] != '\n' && s[lx->pos] != '\r')
                lx->pos++;
            continue;
        }
        if (c == '\\') {
            size_t p = lx->pos + 1;

            if (p < lx->len && s[p] == '\r')
                p++;
            if (p < lx->len && s[p] == '\n')
                p++;
            if (p == lx->pos + 1)
                return lex_fail(lx, "unexpected character '\\'");
            lx->pos = p;
            lex_newline(lx);
            continue;
        }
        if (c == '\n' || c == '\r') {
            t->kind = TK_NEWLINE;
            t->start = s + lx->pos;
            t->line = lx->line;
            lx->pos++;
            if (c == '\r' && lx->pos < lx->len && s[lx->pos] == '\n')
                lx->pos++;
            lex_newline(lx);
            if (lx->depth > 0)
                continue;
            return 0;
        }
        break;
    }
    t->start = s + lx->pos;
    t->line = lx->line;
    t->col = (int)(lx->pos - lx->line_start);
    {
        unsigned char c = (unsigned char)s[lx->pos];
        size_t p = lx->pos;

        /* string prefixes: r, u, b, f, and rb, br, rf, fr in any case */
        while (p < lx->len && p - lx->pos < 2 && s[p] && strchr("rRbBuUfF", s[p]))
            p++;
        if (p > lx->pos && p < lx->len && (s[p] == '\'' || s[p] == '"')) {
            static const char *const valid[] = {"r", "u", "b", "f", "br", "rb", "fr", "rf", NULL};
            char pre[3] = {0};
            int ok = 0;

            for (size_t i = 0; i < p - lx->pos; i++)
                pre[i] = (char)(s[lx->pos + i] | 0x20);
            for (size_t i = 0; valid[i]; i++)
                ok |= !strcmp(pre, valid[i]);
            if (ok) {
                if (strchr(pre, 'f'))
                    return lex_fail(lx, "f-strings are not supported");
                lx->pos = p;
                if (lex_string(lx, t, strchr(pre, 'r') != NULL, strchr(pre, 'b') != NULL) < 0)
                    return -1;
                t->len = (size_t)(s + lx->pos - t->start);
                return 0;
            }
        }
        if (c == '\'' || c == '"') {
            if (lex_string(lx, t, 0, 0) < 0)
                return -1;
            t->len = (size_t)(s + lx->pos - t->start);
            return 0;
        }
        if (is_name_start(c)) {
            while (lx->pos < lx->len && is_name_char((unsigned char)s[lx->pos]))
                lx->pos++;
            t->kind = TK_NAME;
            t->len = (size_t)(s + lx->pos - t->start);
            return 0;
        }
        if ((c >= '0' && c <= '9') ||
            (c == '.' && lx->pos + 1 < lx->len && s[lx->pos + 1] >= '0' && s[lx->pos + 1] <= '9')) {
            lex_number(lx);
            t->kind = TK_NUMBER;
            t->len = (size_t)(s + lx->pos - t->start);
            return 0;
        }
        for (size_t i = 0; lex_ops[i]; i++) {
            size_t n = strlen(lex_ops[i]);

            if (lx->len - lx->pos >= n && !memcmp(s + lx->pos, lex_ops[i], n)) {
                lx->pos += n;
                t->kind = TK_OP;
                t->len = n;
                if (n == 1 && strchr("([{", c))
                    lx->depth++;
                else if (n == 1 && strchr(")]}", c) && lx->depth > 0)
                    lx->depth--;
                return 0;
            }
        }
        if (c >= 0x20 && c < 0x7F)
            return lex_fail(lx, "unexpected character '%c'", c);
        return lex_fail(lx, "unexpected byte 0x%02x", c);
    }
}

/*
 * The tokens of one logical line (statements up to a NEWLINE outside brackets, or the end) into
 * tv, without the NEWLINE. *end is set at the end of the input. 0 or -1 (lx->msg / lx->oom);
 * on error *line is the line the logical line starts on.
 */
static int lex_logical_line(lexer_t *lx, tokvec_t *tv, int *end, int *line)
{
    tokvec_clear(tv);
    *end = 0;
    *line = lx->line;
    for (;;) {
        token_t t;

        if (lex_next(lx, &t) < 0)
            return -1;
        if (t.kind == TK_END)
            *end = 1;
        if (t.kind == TK_END || t.kind == TK_NEWLINE) {
            if (tv->n == 0 && !*end) {
                *line = lx->line; /* blank or comment-only line */
                continue;
            }
            return 0;
        }
        if (tv->n == 0)
            *line = t.line;
        if (tv->n == tv->cap) {
            size_t cap = tv->cap ? tv->cap * 2 : 32;
            token_t *v = realloc(tv->v, cap * sizeof *v);

            if (!v) {
                free(t.str);
                lx->oom = 1;
                return -1;
            }
            tv->v = v;
            tv->cap = cap;
        }
        tv->v[tv->n++] = t;
    }
}

/* ---- expressions ----------------------------------------------------------------------- */

typedef struct {
    const token_t *t;
    size_t n, i;
    int flags;
    int oom;
    char msg[160];
} parser_t;

static json_t *p_fail(parser_t *p, const char *fmt, ...) CPAR_PRINTF(2, 3);

static json_t *p_fail(parser_t *p, const char *fmt, ...)
{
    va_list ap;

    if (p->msg[0] || p->oom)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(p->msg, sizeof p->msg, fmt, ap);
    va_end(ap);
    return NULL;
}

static json_t *p_oom(parser_t *p)
{
    p->oom = 1;
    return NULL;
}

static const token_t *peek(const parser_t *p)
{
    return p->i < p->n ? &p->t[p->i] : NULL;
}

static int tok_is(const token_t *t, tk_kind_t kind, const char *text)
{
    return t && t->kind == kind &&
           (!text || (t->len == strlen(text) && !memcmp(t->start, text, t->len)));
}

static int peek_op(const parser_t *p, const char *op)
{
    return tok_is(peek(p), TK_OP, op);
}

/* "'x'" for messages: the token's text, shortened. */
static void tok_desc(const token_t *t, char *buf, size_t len)
{
    if (!t) {
        snprintf(buf, len, "end of line");
        return;
    }
    snprintf(buf, len, "'%.*s%s'", t->len > 30 ? 30 : (int)t->len, t->start,
             t->len > 30 ? "..." : "");
}

static json_t *p_unexpected(parser_t *p, const char *what)
{
    char d[48];

    tok_desc(peek(p), d, sizeof d);
    return p_fail(p, "%s, found %s", what, d);
}

/* Digits of `base` with single '_' between them (and after a base prefix) into out. */
static int copy_digits(const char *s, size_t n, int base, char *out, size_t outlen,
                       int prefix_underscore)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        char c = s[i];

        if (c == '_') {
            int before = i > 0 ? hexval(s[i - 1]) : -1;
            int after = i + 1 < n ? hexval(s[i + 1]) : -1;

            if (!((i == 0 && prefix_underscore) || (before >= 0 && before < base)) || after < 0 ||
                after >= base)
                return -1;
            continue;
        }
        if (hexval(c) < 0 || hexval(c) >= base || o + 1 >= outlen)
            return -1;
        out[o++] = c;
    }
    if (o == 0)
        return -1;
    out[o] = '\0';
    return 0;
}

static json_t *p_number(parser_t *p, const token_t *t)
{
    char buf[128];
    const char *s = t->start;
    size_t n = t->len;
    int base = 0;
    char *end;

    if (n >= 2 && s[0] == '0' && s[1] && strchr("xXoObB", s[1])) {
        char b = (char)(s[1] | 0x20);

        base = b == 'x' ? 16 : b == 'o' ? 8 : 2;
        if (copy_digits(s + 2, n - 2, base, buf, sizeof buf, 1) < 0)
            goto invalid;
    } else if (s[n - 1] == 'j' || s[n - 1] == 'J') {
        return p_fail(p, "complex numbers are not supported");
    } else if (!memchr(s, '.', n) && !memchr(s, 'e', n) && !memchr(s, 'E', n)) {
        base = 10;
        if (copy_digits(s, n, 10, buf, sizeof buf, 0) < 0)
            goto invalid;
        if (buf[0] == '0' && strspn(buf, "0") != strlen(buf))
            return p_fail(p, "leading zeros in an integer are not allowed: '%.*s'", (int)n, s);
    }
    if (base) {
        unsigned long long v;

        errno = 0;
        v = strtoull(buf, &end, base);
        if (errno == ERANGE || v > (unsigned long long)INT64_MAX)
            return p_fail(p, "integer out of range: '%.*s'", (int)n > 40 ? 40 : (int)n, s);
        if (*end)
            goto invalid;
        {
            json_t *j = json_integer((json_int_t)v);

            return j ? j : p_oom(p);
        }
    }
    {
        /* a float: digits with '_' in the mantissa and exponent parts */
        size_t o = 0;
        double d;
        json_t *j;

        for (size_t i = 0; i < n; i++) {
            char c = s[i];

            if (c == '_') {
                if (i == 0 || i + 1 >= n || s[i - 1] < '0' || s[i - 1] > '9' || s[i + 1] < '0' ||
                    s[i + 1] > '9')
                    goto invalid;
                continue;
            }
            if (!((c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' ||
                  c == '-') ||
                o + 1 >= sizeof buf)
                goto invalid;
            buf[o++] = c;
        }
        buf[o] = '\0';
        errno = 0;
        d = strtod(buf, &end);
        if (*end || end == buf)
            goto invalid;
        if (!isfinite(d))
            return p_fail(p, "float out of range: '%.*s'", (int)n > 40 ? 40 : (int)n, s);
        j = json_real(d);
        return j ? j : p_oom(p);
    }
invalid:
    return p_fail(p, "invalid number '%.*s'", (int)n > 40 ? 40 : (int)n, s);
}

static json_t *p_expr(parser_t *p);
static json_t *p_unary(parser_t *p);

/* "a", "b" after an opening bracket until `close`; into an array (or object when dict). */
static json_t *p_sequence(parser_t *p, const char *open, const char *close, int *had_comma)
{
    json_t *arr = json_array();

    if (!arr)
        return p_oom(p);
    *had_comma = 0;
    for (;;) {
        json_t *v;

        if (!peek(p)) {
            json_decref(arr);
            return p_fail(p, "unclosed '%s'", open);
        }
        if (peek_op(p, close)) {
            p->i++;
            return arr;
        }
        if (!(v = p_expr(p))) {
            json_decref(arr);
            return NULL;
        }
        if (json_array_append_new(arr, v) < 0) {
            json_decref(arr);
            return p_oom(p);
        }
        if (peek_op(p, ",")) {
            p->i++;
            *had_comma = 1;
            continue;
        }
        if (!peek(p)) {
            json_decref(arr);
            return p_fail(p, "unclosed '%s'", open);
        }
        if (!peek_op(p, close)) {
            char what[24];

            json_decref(arr);
            snprintf(what, sizeof what, "expected ',' or '%s'", close);
            return p_unexpected(p, what);
        }
    }
}

static json_t *set_from(parser_t *p, json_t *arr)
{
    json_t *out = json_array();
    size_t i;
    json_t *v;

    if (!out) {
        json_decref(arr);
        return p_oom(p);
    }
    json_array_foreach(arr, i, v)
    {
        size_t j;
        json_t *w;
        int dup = 0;

        json_array_foreach(out, j, w) dup |= json_equal(v, w);
        if (!dup && json_array_append(out, v) < 0) {
            json_decref(out);
            json_decref(arr);
            return p_oom(p);
        }
    }
    json_decref(arr);
    return out;
}

/* After '{': a dict, or a set. */
static json_t *p_braces(parser_t *p)
{
    json_t *obj, *first, *arr;
    int comma;

    if (peek_op(p, "}")) {
        p->i++;
        return (obj = json_object()) ? obj : p_oom(p);
    }
    if (!peek(p))
        return p_fail(p, "unclosed '{'");
    if (!(first = p_expr(p)))
        return NULL;
    if (!peek_op(p, ":")) {
        /* a set: the first element is parsed, read the others as a list */
        arr = json_array();
        if (!arr || json_array_append_new(arr, first) < 0) {
            json_decref(arr);
            return p_oom(p);
        }
        if (peek_op(p, ",")) {
            json_t *rest;

            p->i++;
            if (!(rest = p_sequence(p, "{", "}", &comma))) {
                json_decref(arr);
                return NULL;
            }
            if (json_array_extend(arr, rest) < 0) {
                json_decref(rest);
                json_decref(arr);
                return p_oom(p);
            }
            json_decref(rest);
        } else if (peek_op(p, "}")) {
            p->i++;
        } else {
            json_decref(arr);
            return peek(p) ? p_unexpected(p, "expected ',' or '}'") : p_fail(p, "unclosed '{'");
        }
        return set_from(p, arr);
    }
    obj = json_object();
    if (!obj) {
        json_decref(first);
        return p_oom(p);
    }
    for (;;) {
        json_t *val;

        /* `first` is the key just read, the ':' is next */
        if (!json_is_string(first)) {
            json_decref(first);
            json_decref(obj);
            return p_fail(p, "dict keys must be strings");
        }
        p->i++; /* ':' */
        if (!(val = p_expr(p))) {
            json_decref(first);
            json_decref(obj);
            return NULL;
        }
        if (json_object_setn_new(obj, json_string_value(first), json_string_length(first), val) <
            0) {
            json_decref(first);
            json_decref(obj);
            return p_oom(p);
        }
        json_decref(first);
        if (peek_op(p, ","))
            p->i++;
        else if (!peek_op(p, "}") && peek(p)) {
            json_decref(obj);
            return p_unexpected(p, "expected ',' or '}'");
        }
        if (!peek(p)) {
            json_decref(obj);
            return p_fail(p, "unclosed '{'");
        }
        if (peek_op(p, "}")) {
            p->i++;
            return obj;
        }
        if (!(first = p_expr(p))) {
            json_decref(obj);
            return NULL;
        }
        if (!peek_op(p, ":")) {
            json_decref(first);
            json_decref(obj);
            return peek(p) ? p_unexpected(p, "expected ':'") : p_fail(p, "unclosed '{'");
        }
    }
}

static json_t *p_atom(parser_t *p)
{
    const token_t *t = peek(p);
    int comma;
    json_t *v;

    if (!t)
        return p_unexpected(p, "expected a literal");
    if (t->kind == TK_NUMBER) {
        p->i++;
        return p_number(p, t);
    }
    if (t->kind == TK_STRING) {
        sbuf_t b = {0};

        /* adjacent literals concatenate */
        while ((t = peek(p)) && t->kind == TK_STRING) {
            if (sbuf_put(&b, t->str, t->slen) < 0) {
                free(b.p);
                return p_oom(p);
            }
            p->i++;
        }
        v = json_stringn(b.p ? b.p : "", b.n);
        free(b.p);
        return v ? v : p_oom(p);
    }
    if (t->kind == TK_NAME) {
        if (tok_is(t, TK_NAME, "True") || tok_is(t, TK_NAME, "False")) {
            p->i++;
            return json_boolean(tok_is(t, TK_NAME, "True"));
        }
        if (tok_is(t, TK_NAME, "None")) {
            p->i++;
            return json_null();
        }
        return p_unexpected(p, "expected a literal");
    }
    if (tok_is(t, TK_OP, "[")) {
        p->i++;
        return p_sequence(p, "[", "]", &comma);
    }
    if (tok_is(t, TK_OP, "(")) {
        p->i++;
        if (peek_op(p, ")")) {
            p->i++;
            return (v = json_array()) ? v : p_oom(p);
        }
        if (!(v = p_expr(p)))
            return NULL;
        if (peek_op(p, ")")) {
            p->i++;
            return v; /* parenthesized, not a tuple */
        }
        if (peek_op(p, ",")) {
            json_t *rest, *arr = json_array();

            p->i++;
            if (!arr || json_array_append_new(arr, v) < 0) {
                json_decref(arr);
                return p_oom(p);
            }
            if (!(rest = p_sequence(p, "(", ")", &comma))) {
                json_decref(arr);
                return NULL;
            }
            if (json_array_extend(arr, rest) < 0) {
                json_decref(rest);
                json_decref(arr);
                return p_oom(p);
            }
            json_decref(rest);
            return arr;
        }
        json_decref(v);
        return peek(p) ? p_unexpected(p, "expected ',' or ')'") : p_fail(p, "unclosed '('");
    }
    if (tok_is(t, TK_OP, "{")) {
        p->i++;
        return p_braces(p);
    }
    return p_unexpected(p, "expected a literal");
}

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        return "str";
    case JSON_INTEGER:
        return "int";
    case JSON_REAL:
        return "float";
    case JSON_TRUE:
    case JSON_FALSE:
        return "bool";
    case JSON_NULL:
        return "None";
    case JSON_ARRAY:
        return "list";
    case JSON_OBJECT:
        return "dict";
    }
    return "?";
}

/* Python's integer ops, refusing what does not fit in 64 bits. */
static json_t *int_op(parser_t *p, const char *op, int64_t a, int64_t b)
{
    int64_t r;

    if (!strcmp(op, "+")) {
        if (__builtin_add_overflow(a, b, &r))
            goto range;
    } else if (!strcmp(op, "-")) {
        if (__builtin_sub_overflow(a, b, &r))
            goto range;
    } else if (!strcmp(op, "*")) {
        if (__builtin_mul_overflow(a, b, &r))
            goto range;
    } else if (!strcmp(op, "//") || !strcmp(op, "%")) {
        if (b == 0)
            return p_fail(p, "division by zero");
        if (a == INT64_MIN && b == -1)
            goto range;
        if (op[0] == '/') {
            r = a / b;
            if ((a % b != 0) && ((a < 0) != (b < 0)))
                r--;
        } else {
            r = a % b;
            if (r != 0 && ((r < 0) != (b < 0)))
                r += b;
        }
    } else { /* "**" with b >= 0 */
        int64_t base = a;

        r = 1;
        while (b > 0) {
            if ((b & 1) && __builtin_mul_overflow(r, base, &r))
                goto range;
            b >>= 1;
            if (b > 0 && __builtin_mul_overflow(base, base, &base))
                goto range;
        }
    }
    {
        json_t *j = json_integer(r);

        return j ? j : p_oom(p);
    }
range:
    return p_fail(p, "integer out of range in '%s'", op);
}

static json_t *real_op(parser_t *p, const char *op, double a, double b)
{
    double r;
    json_t *j;

    if (!strcmp(op, "+"))
        r = a + b;
    else if (!strcmp(op, "-"))
        r = a - b;
    else if (!strcmp(op, "*"))
        r = a * b;
    else if (!strcmp(op, "/")) {
        if (b == 0)
            return p_fail(p, "division by zero");
        r = a / b;
    } else if (!strcmp(op, "//") || !strcmp(op, "%")) {
        /* CPython's float divmod, so that 5654 // 0.2 is 28269.0 as there */
        double mod, div;

        if (b == 0)
            return p_fail(p, "division by zero");
        mod = fmod(a, b);
        div = (a - mod) / b;
        if (mod != 0) {
            if ((b < 0) != (mod < 0)) {
                mod += b;
                div -= 1.0;
            }
        } else {
            mod = copysign(0.0, b);
        }
        if (div != 0) {
            double fl = floor(div);

            if (div - fl > 0.5)
                fl += 1.0;
            div = fl;
        } else {
            div = copysign(0.0, a / b);
        }
        r = op[0] == '/' ? div : mod;
    } else {
        if (a == 0 && b < 0)
            return p_fail(p, "division by zero");
        if (a < 0 && b != floor(b))
            return p_fail(p, "complex numbers are not supported");
        r = pow(a, b);
    }
    if (!isfinite(r))
        return p_fail(p, "float out of range in '%s'", op);
    j = json_real(r);
    return j ? j : p_oom(p);
}

/* a <op> b for numbers, and + for two strings or two lists; consumes a and b. */
static json_t *binop(parser_t *p, const char *op, json_t *a, json_t *b)
{
    json_t *r = NULL;

    if (json_is_integer(a) && json_is_integer(b)) {
        int64_t x = json_integer_value(a), y = json_integer_value(b);

        if (!strcmp(op, "/") || (!strcmp(op, "**") && y < 0))
            r = real_op(p, op, (double)x, (double)y);
        else
            r = int_op(p, op, x, y);
    } else if (json_is_number(a) && json_is_number(b)) {
        r = real_op(p, op, json_number_value(a), json_number_value(b));
    } else if (!strcmp(op, "+") && json_is_string(a) && json_is_string(b)) {
        sbuf_t s = {0};

        if (sbuf_put(&s, json_string_value(a), json_string_length(a)) < 0 ||
            sbuf_put(&s, json_string_value(b), json_string_length(b)) < 0 ||
            !(r = json_stringn(s.p, s.n)))
            r = p_oom(p);
        free(s.p);
    } else if (!strcmp(op, "+") && json_is_array(a) && json_is_array(b)) {
        r = json_copy(a);
        if (!r || json_array_extend(r, b) < 0) {
            json_decref(r);
            r = p_oom(p);
        }
    } else {
        r = p_fail(p, "unsupported operands for '%s': %s and %s", op, type_name(a), type_name(b));
    }
    json_decref(a);
    json_decref(b);
    return r;
}

static json_t *p_power(parser_t *p)
{
    json_t *a = p_atom(p), *b;

    if (!a)
        return NULL;
    if ((p->flags & CPAR_PY_ARITH) && peek_op(p, "**")) {
        p->i++;
        if (!(b = p_unary(p))) {
            json_decref(a);
            return NULL;
        }
        return binop(p, "**", a, b);
    }
    return a;
}

static json_t *p_unary(parser_t *p)
{
    json_t *v;
    int neg;

    if (!peek_op(p, "-") && !peek_op(p, "+"))
        return p_power(p);
    neg = peek_op(p, "-");
    p->i++;
    /* ast.literal_eval takes a sign only right before a number */
    if (!(p->flags & CPAR_PY_ARITH) && !tok_is(peek(p), TK_NUMBER, NULL))
        return p_unexpected(p, "expected a number after the sign");
    if (!(v = p_unary(p)))
        return NULL;
    if (!json_is_number(v)) {
        json_t *r =
            p_fail(p, "unsupported operand for unary '%c': %s", neg ? '-' : '+', type_name(v));

        json_decref(v);
        return r;
    }
    if (!neg)
        return v;
    if (json_is_integer(v)) {
        json_int_t x = json_integer_value(v);

        json_decref(v);
        if (x == INT64_MIN)
            return p_fail(p, "integer out of range in '-'");
        v = json_integer(-x);
    } else {
        double d = json_real_value(v);

        json_decref(v);
        v = json_real(-d);
    }
    return v ? v : p_oom(p);
}

static json_t *p_term(parser_t *p)
{
    static const char *const ops[] = {"*", "//", "/", "%", NULL};
    json_t *a = p_unary(p);

    while (a && (p->flags & CPAR_PY_ARITH)) {
        const char *op = NULL;
        json_t *b;

        for (size_t i = 0; ops[i]; i++)
            if (peek_op(p, ops[i]))
                op = ops[i];
        if (!op)
            break;
        p->i++;
        if (!(b = p_unary(p))) {
            json_decref(a);
            return NULL;
        }
        a = binop(p, op, a, b);
    }
    return a;
}

static json_t *p_expr(parser_t *p)
{
    json_t *a = p_term(p);

    while (a && (p->flags & CPAR_PY_ARITH) && (peek_op(p, "+") || peek_op(p, "-"))) {
        const char *op = peek_op(p, "+") ? "+" : "-";
        json_t *b;

        p->i++;
        if (!(b = p_term(p))) {
            json_decref(a);
            return NULL;
        }
        a = binop(p, op, a, b);
    }
    return a;
}

/* The right-hand side: an expression, or a bare tuple `a, b`, up to the end of the tokens. */
static json_t *p_value(parser_t *p)
{
    json_t *v = p_expr(p), *arr;

    if (!v)
        return NULL;
    if (!peek_op(p, ","))
        return v;
    arr = json_array();
    if (!arr || json_array_append_new(arr, v) < 0) {
        json_decref(arr);
        return p_oom(p);
    }
    while (peek_op(p, ",")) {
        p->i++;
        if (!peek(p))
            break;
        if (!(v = p_expr(p))) {
            json_decref(arr);
            return NULL;
        }
        if (json_array_append_new(arr, v) < 0) {
            json_decref(arr);
            return p_oom(p);
        }
    }
    return arr;
}

static json_t *p_whole_value(parser_t *p)
{
    json_t *v = p_value(p);

    if (v && peek(p)) {
        char d[48];

        tok_desc(peek(p), d, sizeof d);
        json_decref(v);
        return p_fail(p, "unexpected %s after the value", d);
    }
    return v;
}

json_t *cpar_py_expr(const char *text, size_t len, int flags, char *err, size_t errlen)
{
    lexer_t lx = {.src = text, .len = len, .line = 1};
    tokvec_t tv = {0};
    parser_t p = {0};
    json_t *v = NULL;
    int end, line;

    if (lex_logical_line(&lx, &tv, &end, &line) < 0) {
        snprintf(err, errlen, "%s", lx.oom ? "out of memory" : lx.msg);
        goto out;
    }
    if (!end) {
        token_t t;

        /* a second logical line: not one expression */
        if (lex_next(&lx, &t) < 0 || t.kind != TK_END) {
            free(t.str);
            snprintf(err, errlen, "%s", lx.oom ? "out of memory" : "more than one line");
            goto out;
        }
    }
    if (tv.n == 0) {
        snprintf(err, errlen, "empty");
        goto out;
    }
    p.t = tv.v;
    p.n = tv.n;
    p.flags = flags;
    v = p_whole_value(&p);
    if (!v)
        snprintf(err, errlen, "%s", p.oom ? "out of memory" : p.msg);
out:
    tokvec_free(&tv);
    return v;
}

/* ---- statements ------------------------------------------------------------------------ */

typedef struct {
    cpar_config_t *cfg;
    const char *path;
    json_t *local; /* "Section.trait" -> this file's value, for += */
    char **cvars;  /* names bound to get_config(), "c" first */
    size_t ncvars;
    char *err;
    size_t errlen;
} pyfile_t;

static int file_fail(pyfile_t *f, int line, const char *fmt, ...) CPAR_PRINTF(3, 4);

static int file_fail(pyfile_t *f, int line, const char *fmt, ...)
{
    char what[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(f->err, f->errlen, "%s:%d: %s", f->path, line, what);
    return CPAR_ECONFIG;
}

static int is_cvar(const pyfile_t *f, const token_t *t)
{
    for (size_t i = 0; i < f->ncvars; i++)
        if (strlen(f->cvars[i]) == t->len && !memcmp(f->cvars[i], t->start, t->len))
            return 1;
    return 0;
}

static int add_cvar(pyfile_t *f, const token_t *t)
{
    char **v;

    if (is_cvar(f, t))
        return 0;
    v = realloc(f->cvars, (f->ncvars + 1) * sizeof *v);
    if (!v)
        return CPAR_ENOMEM;
    f->cvars = v;
    if (!(v[f->ncvars] = strndup(t->start, t->len)))
        return CPAR_ENOMEM;
    f->ncvars++;
    return 0;
}

/* The statement's source on one line, shortened, for messages. */
static void stmt_text(const token_t *t, size_t n, char *buf, size_t len)
{
    const char *s = t[0].start, *e = t[n - 1].start + t[n - 1].len;
    size_t o = 0;
    int space = 0;

    for (; s < e && o + 4 < len; s++) {
        if (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' || *s == '\\') {
            space = 1;
            continue;
        }
        if (space && o > 0)
            buf[o++] = ' ';
        space = 0;
        buf[o++] = *s;
    }
    if (s < e && len > 4) {
        o = o > len - 4 ? len - 4 : o;
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
}

static int match(const token_t *t, size_t n, const char *const *pattern)
{
    size_t i = 0;

    for (; pattern[i]; i++) {
        const char *want = pattern[i];

        if (i >= n)
            return 0;
        if (want[0] == '$') { /* any name */
            if (t[i].kind != TK_NAME)
                return 0;
        } else if (!((t[i].kind == TK_NAME || t[i].kind == TK_OP) &&
                     tok_is(&t[i], t[i].kind, want))) {
            return 0;
        }
    }
    return i == n;
}

static int is_literal_start(const token_t *t)
{
    if (!t)
        return 0;
    switch (t->kind) {
    case TK_NUMBER:
    case TK_STRING:
        return 1;
    case TK_NAME:
        return tok_is(t, TK_NAME, "True") || tok_is(t, TK_NAME, "False") ||
               tok_is(t, TK_NAME, "None");
    case TK_OP:
        return tok_is(t, TK_OP, "(") || tok_is(t, TK_OP, "[") || tok_is(t, TK_OP, "{") ||
               tok_is(t, TK_OP, "-") || tok_is(t, TK_OP, "+");
    default:
        return 0;
    }
}

/* old += rhs, as Python does it for lists, strings and numbers; consumes rhs. */
static json_t *augment(parser_t *p, json_t *old, json_t *rhs)
{
    if (json_is_array(old) && json_is_array(rhs))
        return binop(p, "+", json_incref(old), rhs);
    if ((json_is_string(old) && json_is_string(rhs)) ||
        (json_is_number(old) && json_is_number(rhs)))
        return binop(p, "+", json_incref(old), rhs);
    p_fail(p, "unsupported operands for '+=': %s and %s", type_name(old), type_name(rhs));
    json_decref(rhs);
    return NULL;
}

static int py_assign(pyfile_t *f, const token_t *t, size_t n, int line)
{
    parser_t p = {.t = t + 6, .n = n - 6, .flags = CPAR_PY_ARITH};
    int aug = tok_is(&t[5], TK_OP, "+=");
    char dotted[256], origin[512];
    json_t *v, *old;
    int rc;

    if ((size_t)snprintf(dotted, sizeof dotted, "%.*s.%.*s", (int)t[2].len, t[2].start,
                         (int)t[4].len, t[4].start) >= sizeof dotted)
        return file_fail(f, line, "name too long");
    if (!is_literal_start(peek(&p)))
        return file_fail(f, line, "expected a literal after '%s'", aug ? "+=" : "=");
    v = p_whole_value(&p);
    if (v && aug) {
        old = json_object_get(f->local, dotted);
        if (old) {
            v = augment(&p, old, v);
        } else if (json_is_array(v)) {
            cpar_warn("config: %s:%d: %s += [...] extends ipyparallel's default value, which "
                      "is not known here; the list is taken as the whole value",
                      f->path, line, dotted);
        } else {
            json_decref(v);
            return file_fail(f, line, "'+=' on %s, which is not set earlier in this file", dotted);
        }
    }
    if (!v) {
        if (p.oom) {
            snprintf(f->err, f->errlen, "%s:%d: out of memory", f->path, line);
            return CPAR_ENOMEM;
        }
        return file_fail(f, line, "%s", p.msg);
    }
    if (json_object_set(f->local, dotted, v) < 0) {
        json_decref(v);
        snprintf(f->err, f->errlen, "%s:%d: out of memory", f->path, line);
        return CPAR_ENOMEM;
    }
    snprintf(origin, sizeof origin, "%s:%d", f->path, line);
    rc = cpar_config_set_dotted(f->cfg, dotted, v, CPAR_SRC_PY, origin);
    if (rc < 0)
        snprintf(f->err, f->errlen, "%s:%d: %s", f->path, line, cpar_strerror(rc));
    return rc;
}

static int py_statement(pyfile_t *f, const token_t *t, size_t n, int line)
{
    static const char *const get_config[] = {"$", "=", "get_config", "(", ")", NULL};
    static const char *const import_gc[] = {"from",   "traitlets",  ".", "config",
                                            "import", "get_config", NULL};
    char text[96];

    if (match(t, n, import_gc))
        return 0;
    if (match(t, n, get_config))
        return add_cvar(f, &t[0]) < 0 ? CPAR_ENOMEM : 0;
    if (n >= 6 && t[0].kind == TK_NAME && is_cvar(f, &t[0]) && tok_is(&t[1], TK_OP, ".") &&
        t[2].kind == TK_NAME && tok_is(&t[3], TK_OP, ".") && t[4].kind == TK_NAME &&
        (tok_is(&t[5], TK_OP, "=") || tok_is(&t[5], TK_OP, "+=")))
        return py_assign(f, t, n, line);
    stmt_text(t, n, text, sizeof text);
    return file_fail(f, line, "unsupported statement: %s", text);
}

/* Statements of one logical line, split at ';' outside brackets. */
static int py_line(pyfile_t *f, const tokvec_t *tv, int line)
{
    size_t start = 0;
    int depth = 0;

    if (tv->n && tv->v[0].col > 0)
        return file_fail(f, line, "unexpected indent");
    for (size_t i = 0; i <= tv->n; i++) {
        int rc;

        if (i < tv->n) {
            const token_t *t = &tv->v[i];

            if (t->kind == TK_OP && t->len == 1 && strchr("([{", t->start[0]))
                depth++;
            else if (t->kind == TK_OP && t->len == 1 && strchr(")]}", t->start[0]))
                depth--;
            if (!(depth == 0 && tok_is(t, TK_OP, ";")))
                continue;
        }
        if (i > start && (rc = py_statement(f, tv->v + start, i - start, line)) < 0)
            return rc;
        start = i + 1;
    }
    return 0;
}

int cpar_config_load_py(cpar_config_t *cfg, const char *path, char *err, size_t errlen)
{
    pyfile_t f = {.cfg = cfg, .path = path, .err = err, .errlen = errlen};
    lexer_t lx = {.line = 1};
    tokvec_t tv = {0};
    token_t c = {.kind = TK_NAME, .start = "c", .len = 1};
    char *data = NULL;
    size_t len = 0;
    int rc, end = 0, line;

    if (!cfg || !path)
        return CPAR_EINVAL;
    rc = cpar_cfg_read_file(path, &data, &len);
    if (rc == CPAR_ENOENT)
        return 0;
    if (rc == CPAR_ENOMEM) {
        snprintf(err, errlen, "%s: out of memory", path);
        return rc;
    }
    if (rc < 0) {
        snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        return CPAR_ECONFIG;
    }
    lx.src = data;
    lx.len = len;
    if (len >= 3 && !memcmp(data, "\xEF\xBB\xBF", 3))
        lx.pos = lx.line_start = 3;
    f.local = json_object();
    if (!f.local || add_cvar(&f, &c) < 0) {
        snprintf(err, errlen, "%s: out of memory", path);
        rc = CPAR_ENOMEM;
        goto out;
    }
    rc = 0;
    while (!end) {
        if (lex_logical_line(&lx, &tv, &end, &line) < 0) {
            if (lx.oom) {
                snprintf(err, errlen, "%s:%d: out of memory", path, line);
                rc = CPAR_ENOMEM;
            } else {
                rc = file_fail(&f, line, "%s", lx.msg);
            }
            break;
        }
        if (tv.n && (rc = py_line(&f, &tv, line)) < 0)
            break;
    }
out:
    tokvec_free(&tv);
    for (size_t i = 0; i < f.ncvars; i++)
        free(f.cvars[i]);
    free(f.cvars);
    json_decref(f.local);
    free(data);
    return rc;
}

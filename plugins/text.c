/*
 * text.c - template rendering, shell quoting and Python-style regex search (see text.h).
 *
 * Templates: ipyparallel renders batch templates with IPython's EvalFormatter, str.format with
 * each field evaluated as a Python expression. Supported here: integer and string literals,
 * variables, + - * // % on integers (+ also joins strings), unary minus, parentheses, `or` and
 * `and` with Python's truthiness, the conversions !s and !r, and format specs
 * [[fill]align][sign][0][width][.precision][type] with types d x X o b for integers and s for
 * text.
 *
 * Regexes are translated to POSIX extended regexes: \d \w \s \D \W \S (inside brackets too,
 * except the negated ones), (?:...) groups, `.` not matching a newline, non-greedy suffixes
 * dropped, and `$` also matching before a final newline, as in Python's re.search.
 */
#include "text.h"
#include "why.h"

#include <ctype.h>
#include <regex.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a growing string ------------------------------------------------------------------- */

typedef struct sbuf {
    char *s;
    size_t len, cap;
    int oom;
} sbuf_t;

static void sb_addn(sbuf_t *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        char *d;
        while (cap < b->len + n + 1)
            cap *= 2;
        d = realloc(b->s, cap);
        if (!d) {
            b->oom = 1;
            return;
        }
        b->s = d;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void sb_add(sbuf_t *b, const char *s)
{
    sb_addn(b, s, strlen(s));
}

static void sb_addc(sbuf_t *b, char c)
{
    sb_addn(b, &c, 1);
}

static void sb_pad(sbuf_t *b, const char *fill, size_t fill_len, size_t count)
{
    for (size_t i = 0; i < count; i++)
        sb_addn(b, fill, fill_len);
}

/* The finished string (malloc'd; "" when empty), or NULL when out of memory. */
static char *sb_take(sbuf_t *b)
{
    if (!b->oom && !b->s)
        sb_addn(b, "", 0);
    if (b->oom) {
        free(b->s);
        return NULL;
    }
    return b->s;
}

/* ---- shell quoting ---------------------------------------------------------------------- */

static int text_shell_safe(const char *w)
{
    if (!*w)
        return 0;
    for (const unsigned char *p = (const unsigned char *)w; *p; p++)
        if (!(isalnum(*p) || strchr("@%+=:,./_-", *p)))
            return 0;
    return 1;
}

static void sb_quote(sbuf_t *b, const char *w)
{
    if (text_shell_safe(w)) {
        sb_add(b, w);
        return;
    }
    sb_addc(b, '\'');
    for (const char *p = w; *p; p++) {
        if (*p == '\'')
            sb_add(b, "'\"'\"'");
        else
            sb_addc(b, *p);
    }
    sb_addc(b, '\'');
}

char *cpar_text_shell_quote(const char *word)
{
    sbuf_t b = {0};

    sb_quote(&b, word ? word : "");
    return sb_take(&b);
}

int cpar_text_shell_join(const char *const *argv, char **out)
{
    sbuf_t b = {0};

    if (!out)
        return CPAR_EINVAL;
    for (size_t i = 0; argv && argv[i]; i++) {
        if (i)
            sb_addc(&b, ' ');
        sb_quote(&b, argv[i]);
    }
    *out = sb_take(&b);
    return *out ? 0 : CPAR_ENOMEM;
}

/* ---- template expressions --------------------------------------------------------------- */

typedef struct tval {
    int is_int;
    int64_t i;
    char *s; /* malloc'd when !is_int */
} tval_t;

typedef struct tparse {
    const char *p, *end;
    const cpar_tvar_t *vars;
    size_t nvars;
    char *why;
    size_t whylen;
    const char *field; /* the whole field text, for messages */
    size_t field_len;
    int failed;
} tparse_t;

static void tv_free(tval_t *v)
{
    if (!v->is_int)
        free(v->s);
    v->s = NULL;
}

static int tv_truthy(const tval_t *v)
{
    return v->is_int ? v->i != 0 : v->s[0] != '\0';
}

static int tp_fail(tparse_t *t, const char *fmt, ...) CPAR_PRINTF(2, 3);
static int tp_fail(tparse_t *t, const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    if (t->failed)
        return CPAR_EINVAL;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cpar_why(t->why, t->whylen, "%s in template field '{%.*s}'", msg, (int)t->field_len, t->field);
    t->failed = 1;
    return CPAR_EINVAL;
}

static void tp_space(tparse_t *t)
{
    while (t->p < t->end && (*t->p == ' ' || *t->p == '\t'))
        t->p++;
}

static int tp_is_word(tparse_t *t, const char *w)
{
    size_t n = strlen(w);

    tp_space(t);
    return (size_t)(t->end - t->p) >= n && memcmp(t->p, w, n) == 0 &&
           (t->p + n == t->end || !(isalnum((unsigned char)t->p[n]) || t->p[n] == '_'));
}

static int tp_or(tparse_t *t, tval_t *v);

static int tp_primary(tparse_t *t, tval_t *v)
{
    tp_space(t);
    v->is_int = 1;
    v->i = 0;
    v->s = NULL;
    if (t->p >= t->end)
        return tp_fail(t, "expression expected");
    if (*t->p == '(') {
        int rc;
        t->p++;
        if ((rc = tp_or(t, v)) != 0)
            return rc;
        tp_space(t);
        if (t->p >= t->end || *t->p != ')') {
            tv_free(v);
            return tp_fail(t, "')' expected");
        }
        t->p++;
        return 0;
    }
    if (isdigit((unsigned char)*t->p)) {
        int64_t n = 0;
        while (t->p < t->end && isdigit((unsigned char)*t->p)) {
            if (n > (INT64_MAX - 9) / 10)
                return tp_fail(t, "number too large");
            n = n * 10 + (*t->p++ - '0');
        }
        v->i = n;
        return 0;
    }
    if (*t->p == '\'' || *t->p == '"') {
        char q = *t->p++;
        sbuf_t b = {0};
        while (t->p < t->end && *t->p != q) {
            if (*t->p == '\\' && t->p + 1 < t->end) {
                char c = t->p[1];
                sb_addc(&b, c == 'n' ? '\n' : c == 't' ? '\t' : c);
                t->p += 2;
            } else {
                sb_addc(&b, *t->p++);
            }
        }
        if (t->p >= t->end) {
            free(b.s);
            return tp_fail(t, "unterminated string");
        }
        t->p++;
        v->is_int = 0;
        v->s = sb_take(&b);
        return v->s ? 0 : CPAR_ENOMEM;
    }
    if (isalpha((unsigned char)*t->p) || *t->p == '_') {
        const char *s = t->p;
        size_t n;
        while (t->p < t->end && (isalnum((unsigned char)*t->p) || *t->p == '_'))
            t->p++;
        n = (size_t)(t->p - s);
        for (size_t i = t->nvars; i-- > 0;) { /* later entries override earlier ones */
            const cpar_tvar_t *var = &t->vars[i];
            if (var->name && strlen(var->name) == n && memcmp(var->name, s, n) == 0) {
                if (var->text) {
                    v->is_int = 0;
                    v->s = strdup(var->text);
                    return v->s ? 0 : CPAR_ENOMEM;
                }
                v->i = var->integer;
                return 0;
            }
        }
        if (n == 4 && memcmp(s, "True", 4) == 0) {
            v->i = 1;
            return 0;
        }
        if (n == 5 && memcmp(s, "False", 5) == 0)
            return 0;
        if (!t->failed)
            cpar_why(t->why, t->whylen, "unknown template variable '%.*s'", (int)n, s);
        t->failed = 1;
        return CPAR_EINVAL;
    }
    return tp_fail(t, "unexpected '%c'", *t->p);
}

static int tp_unary(tparse_t *t, tval_t *v)
{
    tp_space(t);
    if (t->p < t->end && (*t->p == '-' || *t->p == '+')) {
        char op = *t->p++;
        int rc = tp_unary(t, v);
        if (rc)
            return rc;
        if (!v->is_int) {
            tv_free(v);
            return tp_fail(t, "bad operand type for unary %c: text", op);
        }
        if (op == '-')
            v->i = -v->i;
        return 0;
    }
    return tp_primary(t, v);
}

static int64_t tp_floordiv(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

static int tp_mul(tparse_t *t, tval_t *v)
{
    int rc = tp_unary(t, v);

    while (!rc) {
        tval_t r;
        int op;

        tp_space(t);
        if (t->p + 1 < t->end && t->p[0] == '/' && t->p[1] == '/') {
            op = '/';
            t->p += 2;
        } else if (t->p < t->end && (*t->p == '*' || *t->p == '%')) {
            op = *t->p++;
        } else {
            break;
        }
        if ((rc = tp_unary(t, &r)) != 0)
            break;
        if (!v->is_int || !r.is_int) {
            tv_free(&r);
            rc = tp_fail(t, "'%s' needs integers", op == '/' ? "//" : op == '*' ? "*" : "%");
            break;
        }
        if ((op == '/' || op == '%') && r.i == 0) {
            rc = tp_fail(t, "division by zero");
            break;
        }
        if (op == '*')
            v->i *= r.i;
        else if (op == '/')
            v->i = tp_floordiv(v->i, r.i);
        else
            v->i = v->i - tp_floordiv(v->i, r.i) * r.i;
    }
    if (rc)
        tv_free(v);
    return rc;
}

static int tp_add(tparse_t *t, tval_t *v)
{
    int rc = tp_mul(t, v);

    while (!rc) {
        tval_t r;
        char op;

        tp_space(t);
        if (t->p >= t->end || (*t->p != '+' && *t->p != '-'))
            break;
        op = *t->p++;
        if ((rc = tp_mul(t, &r)) != 0)
            break;
        if (v->is_int && r.is_int) {
            v->i = op == '+' ? v->i + r.i : v->i - r.i;
        } else if (!v->is_int && !r.is_int && op == '+') {
            size_t a = strlen(v->s), c = strlen(r.s);
            char *s = realloc(v->s, a + c + 1);
            if (!s) {
                tv_free(&r);
                rc = CPAR_ENOMEM;
                break;
            }
            memcpy(s + a, r.s, c + 1);
            v->s = s;
            tv_free(&r);
        } else {
            tv_free(&r);
            rc = tp_fail(t, "'%c' on an integer and text", op);
            break;
        }
    }
    if (rc)
        tv_free(v);
    return rc;
}

/*
 * `a and b` and `a or b` give one of their operands, as in Python: `and` the right one when the
 * left one is true, `or` when it is false. `word` is the operator, `operand` parses its operands.
 */
static int tp_logic(tparse_t *t, tval_t *v, const char *word, int (*operand)(tparse_t *, tval_t *))
{
    const int is_and = word[0] == 'a';
    int rc = operand(t, v);

    while (!rc && tp_is_word(t, word)) {
        tval_t r;
        t->p += strlen(word);
        if ((rc = operand(t, &r)) != 0)
            break;
        if (tv_truthy(v) == is_and) {
            tv_free(v);
            *v = r;
        } else {
            tv_free(&r);
        }
    }
    if (rc)
        tv_free(v);
    return rc;
}

static int tp_and(tparse_t *t, tval_t *v)
{
    return tp_logic(t, v, "and", tp_add);
}

static int tp_or(tparse_t *t, tval_t *v)
{
    return tp_logic(t, v, "or", tp_and);
}

/* ---- format specs ----------------------------------------------------------------------- */

static size_t utf8_len(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            n++;
    return n;
}

/* Append `v` formatted with Python's format spec `spec` (length `n`). */
static int tp_format(tparse_t *t, sbuf_t *b, const tval_t *v, const char *spec, size_t n)
{
    const char *p = spec, *end = spec + n;
    char fill[8] = " ", align = 0, sign = '-', type = 0;
    size_t fill_len = 1, width = 0;
    long precision = -1;
    int alt = 0, zero = 0, comma = 0;
    char body[128];
    const char *text;
    char prefix[4] = "";
    size_t blen, total;

    /* [[fill]align]: the fill is one character, possibly multibyte. */
    if (p < end) {
        size_t clen = 1;
        while (p + clen < end && ((unsigned char)p[clen] & 0xC0) == 0x80)
            clen++;
        if (p + clen < end && strchr("<>=^", p[clen]) && clen < sizeof fill) {
            memcpy(fill, p, clen);
            fill[clen] = '\0';
            fill_len = clen;
            align = p[clen];
            p += clen + 1;
        } else if (strchr("<>=^", *p)) {
            align = *p++;
        }
    }
    if (p < end && strchr("+- ", *p))
        sign = *p++;
    if (p < end && *p == '#') {
        alt = 1;
        p++;
    }
    if (p < end && *p == '0') {
        zero = 1;
        p++;
    }
    while (p < end && isdigit((unsigned char)*p)) {
        width = width * 10 + (size_t)(*p++ - '0');
        if (width > 100000)
            return tp_fail(t, "width too large");
    }
    if (p < end && (*p == ',' || *p == '_')) {
        comma = *p;
        p++;
    }
    if (p < end && *p == '.') {
        p++;
        if (p >= end || !isdigit((unsigned char)*p))
            return tp_fail(t, "format spec '%.*s': precision expected", (int)n, spec);
        precision = 0;
        while (p < end && isdigit((unsigned char)*p) && precision < 100000)
            precision = precision * 10 + (*p++ - '0');
    }
    if (p < end)
        type = *p++;
    if (p != end)
        return tp_fail(t, "invalid format spec '%.*s'", (int)n, spec);
    if (zero && !align) {
        strcpy(fill, "0");
        fill_len = 1;
        align = '=';
    }

    if (v->is_int) {
        uint64_t mag = v->i < 0 ? (uint64_t)0 - (uint64_t)v->i : (uint64_t)v->i;
        char digits[80];
        int base = 10, upper = 0;

        if (precision >= 0)
            return tp_fail(t, "precision not allowed in integer format spec '%.*s'", (int)n, spec);
        switch (type) {
        case 0:
        case 'd':
        case 'n':
            base = 10;
            break;
        case 'x':
            base = 16;
            break;
        case 'X':
            base = 16;
            upper = 1;
            break;
        case 'o':
            base = 8;
            break;
        case 'b':
            base = 2;
            break;
        default:
            return tp_fail(t, "unknown format code '%c' for an integer", type);
        }
        {
            size_t k = 0, grouped = 0;
            char tmp[80];
            do {
                int d = (int)(mag % (uint64_t)base);
                if (comma && base == 10 && grouped == 3) {
                    tmp[k++] = (char)comma;
                    grouped = 0;
                }
                tmp[k++] = (char)(d < 10 ? '0' + d : (upper ? 'A' : 'a') + d - 10);
                grouped++;
                mag /= (uint64_t)base;
            } while (mag);
            for (size_t i = 0; i < k; i++)
                digits[i] = tmp[k - 1 - i];
            digits[k] = '\0';
        }
        if (v->i < 0)
            strcpy(prefix, "-");
        else if (sign == '+')
            strcpy(prefix, "+");
        else if (sign == ' ')
            strcpy(prefix, " ");
        if (alt && base != 10) {
            size_t pl = strlen(prefix);
            prefix[pl] = '0';
            prefix[pl + 1] = type == 'X' ? 'X' : type == 'o' ? 'o' : type == 'b' ? 'b' : 'x';
            prefix[pl + 2] = '\0';
        }
        snprintf(body, sizeof body, "%s", digits);
        text = body;
        if (!align)
            align = '>';
    } else {
        if (type && type != 's')
            return tp_fail(t, "unknown format code '%c' for text", type);
        if (sign != '-' || alt || comma)
            return tp_fail(t, "sign, '#' or grouping not allowed with text");
        if (align == '=')
            return tp_fail(t, "'=' alignment not allowed with text");
        text = v->s;
        if (!align)
            align = '<';
    }

    blen = strlen(text);
    if (!v->is_int && precision >= 0) {
        /* Truncate to `precision` characters. */
        size_t chars = 0, i = 0;
        while (i < blen && chars < (size_t)precision) {
            i++;
            while (i < blen && ((unsigned char)text[i] & 0xC0) == 0x80)
                i++;
            chars++;
        }
        blen = i;
    }
    {
        char *tmp = strndup(text, blen);
        if (!tmp)
            return CPAR_ENOMEM;
        total = strlen(prefix) + utf8_len(tmp);
        free(tmp);
    }
    if (total >= width) {
        sb_add(b, prefix);
        sb_addn(b, text, blen);
        return 0;
    }
    width -= total;
    switch (align) {
    case '<':
        sb_add(b, prefix);
        sb_addn(b, text, blen);
        sb_pad(b, fill, fill_len, width);
        break;
    case '>':
        sb_pad(b, fill, fill_len, width);
        sb_add(b, prefix);
        sb_addn(b, text, blen);
        break;
    case '^':
        sb_pad(b, fill, fill_len, width / 2);
        sb_add(b, prefix);
        sb_addn(b, text, blen);
        sb_pad(b, fill, fill_len, width - width / 2);
        break;
    default: /* '=' */
        sb_add(b, prefix);
        sb_pad(b, fill, fill_len, width);
        sb_addn(b, text, blen);
        break;
    }
    return 0;
}

/* Render one field (the text between the braces). */
static int tp_field(tparse_t *t, sbuf_t *b, const char *f, size_t n)
{
    const char *expr_end = f, *spec = NULL, *end = f + n;
    char conv = 0;
    char quote = 0;
    int depth = 0, rc;
    tval_t v;

    t->field = f;
    t->field_len = n;
    /* The expression ends at the first top-level '!' (not '!=') or ':'. */
    for (; expr_end < end; expr_end++) {
        char c = *expr_end;
        if (quote) {
            if (c == quote)
                quote = 0;
            continue;
        }
        if (c == '\'' || c == '"')
            quote = c;
        else if (c == '(' || c == '[')
            depth++;
        else if (c == ')' || c == ']')
            depth--;
        else if (depth == 0 &&
                 (c == ':' || (c == '!' && !(expr_end + 1 < end && expr_end[1] == '='))))
            break;
    }
    if (expr_end < end && *expr_end == '!') {
        if (expr_end + 1 >= end || (expr_end[1] != 's' && expr_end[1] != 'r') ||
            (expr_end + 2 < end && expr_end[2] != ':'))
            return tp_fail(t, "bad conversion");
        conv = expr_end[1];
        if (expr_end + 2 < end)
            spec = expr_end + 3;
    } else if (expr_end < end) {
        spec = expr_end + 1;
    }
    t->p = f;
    t->end = expr_end;
    tp_space(t);
    if (t->p == t->end)
        return tp_fail(t, "empty field");
    if ((rc = tp_or(t, &v)) != 0)
        return rc;
    tp_space(t);
    if (t->p != t->end) {
        tv_free(&v);
        return tp_fail(t, "unexpected '%.*s'", (int)(t->end - t->p), t->p);
    }
    if (conv) {
        sbuf_t s = {0};
        if (v.is_int) {
            char num[32];
            snprintf(num, sizeof num, "%lld", (long long)v.i);
            sb_add(&s, num);
        } else if (conv == 'r') {
            sb_addc(&s, strchr(v.s, '\'') && !strchr(v.s, '"') ? '"' : '\'');
            sb_add(&s, v.s);
            sb_addc(&s, strchr(v.s, '\'') && !strchr(v.s, '"') ? '"' : '\'');
        } else {
            sb_add(&s, v.s);
        }
        tv_free(&v);
        v.is_int = 0;
        v.s = sb_take(&s);
        if (!v.s)
            return CPAR_ENOMEM;
    }
    rc = tp_format(t, b, &v, spec ? spec : "", spec ? (size_t)(end - spec) : 0);
    tv_free(&v);
    return rc;
}

int cpar_text_render(const char *tmpl, const cpar_tvar_t *vars, size_t nvars, char **out, char *why,
                     size_t whylen)
{
    tparse_t t = {.vars = vars, .nvars = nvars, .why = why, .whylen = whylen};
    sbuf_t b = {0};
    const char *p = tmpl;
    int rc = 0;

    if (!tmpl || !out || (nvars && !vars)) {
        cpar_why(why, whylen, "render_template: bad arguments");
        return CPAR_EINVAL;
    }
    while (*p && !rc) {
        const char *brace = strpbrk(p, "{}");
        if (!brace) {
            sb_add(&b, p);
            break;
        }
        sb_addn(&b, p, (size_t)(brace - p));
        if (brace[0] == brace[1]) {
            sb_addc(&b, *brace);
            p = brace + 2;
            continue;
        }
        if (*brace == '}') {
            cpar_why(why, whylen, "single '}' in template at offset %zu", (size_t)(brace - tmpl));
            rc = CPAR_EINVAL;
            break;
        }
        /* Find the matching '}', skipping quoted text and nested braces. */
        {
            const char *q = brace + 1;
            char quote = 0;
            int depth = 0;
            for (; *q; q++) {
                if (quote) {
                    if (*q == quote)
                        quote = 0;
                } else if (*q == '\'' || *q == '"') {
                    quote = *q;
                } else if (*q == '{') {
                    depth++;
                } else if (*q == '}') {
                    if (depth-- == 0)
                        break;
                }
            }
            if (!*q) {
                cpar_why(why, whylen, "unclosed '{' in template at offset %zu",
                         (size_t)(brace - tmpl));
                rc = CPAR_EINVAL;
                break;
            }
            if (memchr(brace + 1, '{', (size_t)(q - brace - 1))) {
                cpar_why(why, whylen, "nested fields are not supported: '%.*s'",
                         (int)(q - brace + 1), brace);
                rc = CPAR_EINVAL;
                break;
            }
            rc = tp_field(&t, &b, brace + 1, (size_t)(q - brace - 1));
            p = q + 1;
        }
    }
    if (rc) {
        free(b.s);
        return rc;
    }
    *out = sb_take(&b);
    if (!*out) {
        cpar_why(why, whylen, "out of memory");
        return CPAR_ENOMEM;
    }
    return 0;
}

/* ---- regex ------------------------------------------------------------------------------ */

#define RX_MAX_GROUPS 32

typedef struct rx {
    regex_t re;
    int groups[RX_MAX_GROUPS + 1]; /* Python group k -> POSIX group */
    int ngroups;                   /* Python groups */
    int has_dollar;
} rx_t;

static const char *rx_class(char c, int in_bracket)
{
    switch (c) {
    case 'd':
        return in_bracket ? "0-9" : "[0-9]";
    case 'w':
        return in_bracket ? "[:alnum:]_" : "[[:alnum:]_]";
    case 's':
        return in_bracket ? "[:space:]" : "[[:space:]]";
    case 'D':
        return in_bracket ? NULL : "[^0-9]";
    case 'W':
        return in_bracket ? NULL : "[^[:alnum:]_]";
    case 'S':
        return in_bracket ? NULL : "[^[:space:]]";
    }
    return NULL;
}

static int rx_compile(rx_t *rx, const char *pat, char *why, size_t whylen)
{
    sbuf_t b = {0};
    int posix_groups = 0, stack[RX_MAX_GROUPS * 2], depth = 0;
    const char *p = pat;
    int rc;

    memset(rx, 0, sizeof *rx);
    while (*p) {
        char c = *p;
        if (c == '\\') {
            char e = p[1];
            const char *cls = rx_class(e, 0);
            if (!e) {
                cpar_why(why, whylen, "regex '%s': trailing backslash", pat);
                free(b.s);
                return CPAR_EINVAL;
            }
            if (cls)
                sb_add(&b, cls);
            else if (e == 'n')
                sb_addc(&b, '\n');
            else if (e == 't')
                sb_addc(&b, '\t');
            else if (isdigit((unsigned char)e) || e == 'b' || e == 'B' || e == 'A' || e == 'Z') {
                cpar_why(why, whylen, "regex '%s': \\%c is not supported", pat, e);
                free(b.s);
                return CPAR_EINVAL;
            } else if (isalnum((unsigned char)e)) {
                sb_addc(&b, e);
            } else {
                sb_addc(&b, '\\');
                sb_addc(&b, e);
            }
            p += 2;
        } else if (c == '[') {
            /*
             * A bracket expression: translate the class escapes; escaped ']' goes first and
             * escaped '-' and '^' last, where POSIX takes them literally.
             */
            sbuf_t body = {0};
            int negate = 0, rbracket = 0, dash = 0, caret = 0;

            p++;
            if (*p == '^') {
                negate = 1;
                p++;
            }
            if (*p == ']') {
                rbracket = 1;
                p++;
            }
            while (*p && *p != ']') {
                if (*p == '\\' && p[1]) {
                    const char *cls = rx_class(p[1], 1);
                    if (cls)
                        sb_add(&body, cls);
                    else if (strchr("DWS", p[1])) {
                        cpar_why(why, whylen, "regex '%s': \\%c inside [] is not supported", pat,
                                 p[1]);
                        free(body.s);
                        free(b.s);
                        return CPAR_EINVAL;
                    } else if (p[1] == 'n')
                        sb_addc(&body, '\n');
                    else if (p[1] == 't')
                        sb_addc(&body, '\t');
                    else if (p[1] == ']')
                        rbracket = 1;
                    else if (p[1] == '-')
                        dash = 1;
                    else if (p[1] == '^')
                        caret = 1;
                    else
                        sb_addc(&body, p[1]);
                    p += 2;
                } else if (*p == '[' && p[1] == ':') {
                    const char *close = strstr(p, ":]");
                    if (!close)
                        break;
                    sb_addn(&body, p, (size_t)(close + 2 - p));
                    p = close + 2;
                } else {
                    sb_addc(&body, *p++);
                }
            }
            if (*p != ']') {
                cpar_why(why, whylen, "regex '%s': unterminated [", pat);
                free(body.s);
                free(b.s);
                return CPAR_EINVAL;
            }
            p++;
            sb_addc(&b, '[');
            if (negate)
                sb_addc(&b, '^');
            if (rbracket)
                sb_addc(&b, ']');
            if (body.s)
                sb_add(&b, body.s);
            if (caret)
                sb_addc(&b, '^');
            if (dash)
                sb_addc(&b, '-');
            sb_addc(&b, ']');
            if (body.oom)
                b.oom = 1;
            free(body.s);
            if (!rbracket && !body.len && !caret && !dash) {
                cpar_why(why, whylen, "regex '%s': empty []", pat);
                free(b.s);
                return CPAR_EINVAL;
            }
        } else if (c == '(') {
            int capture = 1;
            if (p[1] == '?') {
                if (p[2] == ':') {
                    capture = 0;
                    p += 2;
                } else {
                    cpar_why(why, whylen, "regex '%s': (?%c is not supported", pat,
                             p[2] ? p[2] : ' ');
                    free(b.s);
                    return CPAR_EINVAL;
                }
            }
            posix_groups++;
            if (depth >= (int)(sizeof stack / sizeof stack[0]) ||
                (capture && rx->ngroups >= RX_MAX_GROUPS)) {
                cpar_why(why, whylen, "regex '%s': too many groups", pat);
                free(b.s);
                return CPAR_EINVAL;
            }
            stack[depth++] = capture;
            if (capture)
                rx->groups[++rx->ngroups] = posix_groups;
            sb_addc(&b, '(');
            p++;
        } else if (c == ')') {
            if (depth > 0)
                depth--;
            sb_addc(&b, ')');
            p++;
        } else if (c == '.') {
            sb_add(&b, "[^\n]");
            p++;
        } else if ((c == '*' || c == '+' || c == '?' || c == '}') && p[1] == '?') {
            sb_addc(&b, c); /* non-greedy: POSIX has no such thing; match greedily */
            p += 2;
        } else {
            if (c == '$')
                rx->has_dollar = 1;
            sb_addc(&b, c);
            p++;
        }
    }
    if (b.oom) {
        free(b.s);
        cpar_why(why, whylen, "out of memory");
        return CPAR_ENOMEM;
    }
    rc = regcomp(&rx->re, b.s ? b.s : "()", REG_EXTENDED);
    if (rc != 0) {
        char msg[256];
        regerror(rc, &rx->re, msg, sizeof msg);
        cpar_why(why, whylen, "regex '%s' does not compile: %s", pat, msg);
        free(b.s);
        return CPAR_EINVAL;
    }
    free(b.s);
    return 0;
}

int cpar_text_regex_search(const char *pattern, const char *text, int group, char **match,
                           char *why, size_t whylen)
{
    regmatch_t m[RX_MAX_GROUPS * 2 + 2], m2[RX_MAX_GROUPS * 2 + 2];
    size_t nm = sizeof m / sizeof m[0];
    int found, found2 = 0, pg;
    const regmatch_t *use;
    char *stripped = NULL;
    size_t len;
    rx_t rx;
    int rc;

    if (!pattern || !text || !match) {
        cpar_why(why, whylen, "regex_search: bad arguments");
        return CPAR_EINVAL;
    }
    if ((rc = rx_compile(&rx, pattern, why, whylen)) != 0)
        return rc;
    if (group < 0 || group > rx.ngroups) {
        cpar_why(why, whylen, "regex '%s' has no group %d", pattern, group);
        regfree(&rx.re);
        return CPAR_EINVAL;
    }
    pg = group ? rx.groups[group] : 0;
    found = regexec(&rx.re, text, nm, m, 0) == 0;
    /* Python's $ also matches before a final newline: try the text without it too. */
    len = strlen(text);
    if (rx.has_dollar && len && text[len - 1] == '\n') {
        stripped = strndup(text, len - 1);
        if (!stripped) {
            regfree(&rx.re);
            cpar_why(why, whylen, "out of memory");
            return CPAR_ENOMEM;
        }
        found2 = regexec(&rx.re, stripped, nm, m2, 0) == 0;
    }
    regfree(&rx.re);
    free(stripped);
    if (!found && !found2) {
        cpar_why(why, whylen, "regex '%s' does not match", pattern);
        return CPAR_ENOENT;
    }
    use = !found ? m2 : !found2 ? m : (m2[0].rm_so < m[0].rm_so ? m2 : m);
    if (use[pg].rm_so < 0) {
        cpar_why(why, whylen, "regex '%s': group %d did not take part in the match", pattern,
                 group);
        return CPAR_ENOENT;
    }
    *match = strndup(text + use[pg].rm_so, (size_t)(use[pg].rm_eo - use[pg].rm_so));
    if (!*match) {
        cpar_why(why, whylen, "out of memory");
        return CPAR_ENOMEM;
    }
    return 0;
}

// SPDX-License-Identifier: Apache-2.0
/*
 * TOML 1.0 reader: a recursive-descent parser over the raw bytes, building jansson values
 * (numbers, dates and times: toml-number.c).
 * Tables get one of four origins, which is what TOML's rules on redefinition depend on:
 * implicit (created as the parent of a [header] or by a dotted key), defined by a [header],
 * inline ({...}, closed for good), and arrays of tables ([[header]], the only arrays that grow).
 */
#include "toml.h"
#include "toml-internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cleanup.h"
#include "json-util.h"
#include "macro.h"
#include "text-util.h"

int toml_fail(struct parser *p, const char *fmt, ...)
{
        size_t line = 1, col = 1;
        char msg[256];
        va_list ap;

        if (p->failed)
                return -EINVAL;
        p->failed = true;
        for (size_t i = 0; i < p->pos && i < p->len; i++) {
                if (p->s[i] == '\n') {
                        line++;
                        col = 1;
                } else if (((unsigned char)p->s[i] & 0xC0) != 0x80) {
                        col++;
                }
        }
        va_start(ap, fmt);
        (void)vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        return ak_err_set(p->err, EINVAL, "line %zu, column %zu: %s", line, col, msg);
}

static int oom(struct parser *p)
{
        if (p->failed)
                return -EINVAL;
        p->failed = true;
        return ak_err_oom(p->err);
}

static int mark(struct parser *p, json_t *v, enum origin o)
{
        if (p->n_marks == TOML_MAX_TABLES)
                return toml_fail(p, "more than %d tables", TOML_MAX_TABLES);
        if (p->n_marks == p->cap_marks) {
                size_t cap = p->cap_marks ? p->cap_marks * 2 : 16;
                struct mark *m = realloc(p->marks, cap * sizeof(*m));
                if (!m)
                        return oom(p);
                p->marks = m;
                p->cap_marks = cap;
        }
        p->marks[p->n_marks++] = (struct mark){v, o};
        return 0;
}

static bool has_origin(const struct parser *p, const json_t *v, enum origin o)
{
        for (size_t i = 0; i < p->n_marks; i++)
                if (p->marks[i].v == v && p->marks[i].origin == o)
                        return true;
        return false;
}

static void set_origin(struct parser *p, const json_t *v, enum origin o)
{
        for (size_t i = 0; i < p->n_marks; i++)
                if (p->marks[i].v == v && p->marks[i].origin == ORIGIN_IMPLICIT)
                        p->marks[i].origin = o;
}

/* ---- characters ---- */

static bool starts(const struct parser *p, const char *lit)
{
        size_t n = strlen(lit);
        return p->len - p->pos >= n && memcmp(p->s + p->pos, lit, n) == 0;
}

static bool is_control(int c)
{
        return (c >= 0 && c < 0x20 && c != '\t') || c == 0x7F;
}

static void skip_ws(struct parser *p)
{
        while (peek(p) == ' ' || peek(p) == '\t')
                p->pos++;
}

/* A comment runs to the end of the line; control characters other than tab are not allowed. */
static int skip_comment(struct parser *p)
{
        if (peek(p) != '#')
                return 0;
        while (!at_end(p) && peek(p) != '\n') {
                if (peek(p) == '\r' && peek_at(p, 1) == '\n')
                        break;
                if (is_control(peek(p)))
                        return toml_fail(p, "control character in a comment");
                p->pos++;
        }
        return 0;
}

/* A newline: "\n" or "\r\n". Returns whether one was consumed. */
static bool eat_newline(struct parser *p)
{
        if (peek(p) == '\n') {
                p->pos++;
                return true;
        }
        if (peek(p) == '\r' && peek_at(p, 1) == '\n') {
                p->pos += 2;
                return true;
        }
        return false;
}

/* Whitespace, comments and newlines (inside arrays, between statements). */
static int skip_ws_nl(struct parser *p)
{
        for (;;) {
                skip_ws(p);
                if (skip_comment(p) < 0)
                        return -EINVAL;
                if (!eat_newline(p))
                        return 0;
        }
}

static int expect_eol(struct parser *p)
{
        skip_ws(p);
        if (skip_comment(p) < 0)
                return -EINVAL;
        if (at_end(p) || eat_newline(p))
                return 0;
        return toml_fail(p, "expected the end of the line");
}

/* ---- strings ---- */

static int put_utf8(struct buf *b, uint32_t c)
{
        char u[4];
        size_t n;

        if (c < 0x80) {
                u[0] = (char)c;
                n = 1;
        } else if (c < 0x800) {
                u[0] = (char)(0xC0 | (c >> 6));
                u[1] = (char)(0x80 | (c & 0x3F));
                n = 2;
        } else if (c < 0x10000) {
                u[0] = (char)(0xE0 | (c >> 12));
                u[1] = (char)(0x80 | ((c >> 6) & 0x3F));
                u[2] = (char)(0x80 | (c & 0x3F));
                n = 3;
        } else {
                u[0] = (char)(0xF0 | (c >> 18));
                u[1] = (char)(0x80 | ((c >> 12) & 0x3F));
                u[2] = (char)(0x80 | ((c >> 6) & 0x3F));
                u[3] = (char)(0x80 | (c & 0x3F));
                n = 4;
        }
        return buf_append(b, u, n);
}

static int parse_escape(struct parser *p, struct buf *b)
{
        int c = peek(p), digits;
        uint32_t u = 0;

        p->pos++;
        switch (c) {
        case 'b':
                return buf_append(b, "\b", 1);
        case 'e': /* TOML 1.1 */
                return buf_append(b, "\033", 1);
        case 't':
                return buf_append(b, "\t", 1);
        case 'n':
                return buf_append(b, "\n", 1);
        case 'f':
                return buf_append(b, "\f", 1);
        case 'r':
                return buf_append(b, "\r", 1);
        case '"':
                return buf_append(b, "\"", 1);
        case '\\':
                return buf_append(b, "\\", 1);
        case 'u':
        case 'U':
                digits = c == 'u' ? 4 : 8;
                for (int i = 0; i < digits; i++) {
                        int h = peek(p);
                        if (h >= '0' && h <= '9')
                                u = u * 16 + (uint32_t)(h - '0');
                        else if (h >= 'a' && h <= 'f')
                                u = u * 16 + (uint32_t)(h - 'a' + 10);
                        else if (h >= 'A' && h <= 'F')
                                u = u * 16 + (uint32_t)(h - 'A' + 10);
                        else
                                return toml_fail(p, "\\%c needs %d hexadecimal digits", c, digits);
                        p->pos++;
                }
                if (u > 0x10FFFF || (u >= 0xD800 && u <= 0xDFFF))
                        return toml_fail(p, "\\%c%0*X is not a Unicode scalar value", c, digits, u);
                return put_utf8(b, u);
        default:
                p->pos--;
                return toml_fail(p, "invalid escape sequence");
        }
}

/* A string's body after its opening delimiter: quote is '"' (basic: escapes) or '\'' (literal:
 * none); multi for the triple-quoted forms. */
static int parse_string_body(struct parser *p, struct buf *b, char quote, bool multi)
{
        const char triple[4] = {quote, quote, quote, '\0'};

        if (multi)
                (void)eat_newline(p); /* a newline right after the delimiter is trimmed */
        for (;;) {
                int c = peek(p);
                if (c < 0)
                        return toml_fail(p, "unterminated string");
                if (multi && starts(p, triple)) {
                        /* up to two quotes may end the content: """a"""" is a" */
                        size_t extra = 0;
                        while (extra < 2 && peek_at(p, 3 + extra) == quote)
                                extra++;
                        if (buf_append(b, triple, extra) < 0)
                                return oom(p);
                        p->pos += 3 + extra;
                        return 0;
                }
                if (!multi && c == quote) {
                        p->pos++;
                        return 0;
                }
                if (quote == '"' && c == '\\') {
                        p->pos++;
                        if (multi) {
                                /* line-ending backslash: drop whitespace and newlines after it */
                                size_t save = p->pos;
                                skip_ws(p);
                                if (eat_newline(p)) {
                                        for (;;) {
                                                if (peek(p) == ' ' || peek(p) == '\t')
                                                        p->pos++;
                                                else if (!eat_newline(p))
                                                        break;
                                        }
                                        continue;
                                }
                                p->pos = save;
                        }
                        if (parse_escape(p, b) < 0)
                                return p->failed ? -EINVAL : oom(p);
                        continue;
                }
                if (multi && (c == '\n' || (c == '\r' && peek_at(p, 1) == '\n'))) {
                        if (buf_append(b, "\n", 1) < 0)
                                return oom(p);
                        (void)eat_newline(p);
                        continue;
                }
                if (is_control(c))
                        return toml_fail(p, c == '\n' ? "newline in a single-line string"
                                                      : "control character in a string");
                if (buf_append(b, p->s + p->pos, 1) < 0)
                        return oom(p);
                p->pos++;
        }
}

/* Any string at the current position into b (NUL-terminated; b->len excludes the NUL). */
static int parse_string_into(struct parser *p, struct buf *b, bool allow_multi)
{
        int r;

        if (starts(p, "\"\"\"") || starts(p, "'''")) {
                char quote = (char)peek(p);
                if (!allow_multi)
                        return toml_fail(p, "a key cannot be a multi-line string");
                p->pos += 3;
                r = parse_string_body(p, b, quote, true);
        } else {
                char quote = (char)peek(p);
                p->pos++;
                r = parse_string_body(p, b, quote, false);
        }
        if (r < 0)
                return r;
        if (buf_append(b, "", 1) < 0)
                return oom(p);
        b->len--;
        return 0;
}

static json_t *string_value(struct parser *p, size_t at, const struct buf *b)
{
        json_t *v = json_stringn(b->data ? b->data : "", b->len);
        if (!v) {
                p->pos = at;
                (void)toml_fail(p, "string is not valid UTF-8");
        }
        return v;
}

/* ---- keys ---- */

#define KEY_PARTS_MAX 16

struct key {
        char *part[KEY_PARTS_MAX];
        size_t n;
        size_t at; /* where it starts, for messages */
};

static void key_done(struct key *k)
{
        for (size_t i = 0; i < k->n; i++)
                free(k->part[i]);
        k->n = 0;
}
DEFINE_CLEANUP_DONE(struct key, key_done)
#define cleanup_key CLEANUP_FUNC(key_done)

static int parse_key_parts(struct parser *p, struct key *k)
{
        k->n = 0;
        k->at = p->pos;
        for (;;) {
                cleanup_buf struct buf b = BUF_INIT;
                char *part;
                skip_ws(p);
                if (k->n == KEY_PARTS_MAX)
                        return toml_fail(p, "key has more than %d parts", KEY_PARTS_MAX);
                if (peek(p) == '"' || peek(p) == '\'') {
                        if (parse_string_into(p, &b, false) < 0)
                                return -EINVAL;
                        if (memchr(b.data ? b.data : "", '\0', b.len))
                                return toml_fail(p, "a key cannot contain a NUL character");
                        part = strndup(b.data ? b.data : "", b.len);
                        if (part) {
                                json_t *check = json_string(part);
                                if (!check) {
                                        free(part);
                                        return toml_fail(p, "key is not valid UTF-8");
                                }
                                json_decref(check);
                        }
                } else {
                        size_t start = p->pos;
                        while (is_bare(peek(p)))
                                p->pos++;
                        if (p->pos == start)
                                return toml_fail(p, "expected a key");
                        part = strndup(p->s + start, p->pos - start);
                }
                if (!part)
                        return oom(p);
                k->part[k->n++] = part;
                skip_ws(p);
                if (peek(p) != '.')
                        return 0;
                p->pos++;
        }
}

/* On failure nothing is left to free. */
static int parse_key(struct parser *p, struct key *k)
{
        int r = parse_key_parts(p, k);
        if (r < 0)
                key_done(k);
        return r;
}

static void key_text(const struct key *k, size_t upto, char *out, size_t len)
{
        size_t o = 0;
        out[0] = '\0';
        for (size_t i = 0; i < upto && o < len; i++)
                o += (size_t)snprintf(out + o, len - o, "%s%s", i ? "." : "", k->part[i]);
}

/* ---- values ---- */

static json_t *parse_value(struct parser *p);

static int set_key(struct parser *p, json_t *table, const struct key *k, json_t *value);

static json_t *parse_inline_table(struct parser *p)
{
        cleanup_json json_t *t = json_object();
        size_t first_mark = p->n_marks;

        if (!t || mark(p, t, ORIGIN_INLINE) < 0) {
                if (!p->failed)
                        (void)oom(p);
                return NULL;
        }
        p->pos++; /* { */
        skip_ws(p);
        if (peek(p) == '}') {
                p->pos++;
                return TAKE_PTR(t);
        }
        for (;;) {
                cleanup_key struct key k = {0};
                json_t *v;
                if (parse_key(p, &k) < 0)
                        return NULL;
                if (peek(p) != '=') {
                        (void)toml_fail(p, "expected '=' after a key");
                        return NULL;
                }
                p->pos++;
                skip_ws(p);
                v = parse_value(p);
                if (!v || set_key(p, t, &k, v) < 0)
                        return NULL;
                skip_ws(p);
                if (peek(p) == '}') {
                        p->pos++;
                        break;
                }
                if (peek(p) != ',') {
                        (void)toml_fail(p, "expected ',' or '}' in an inline table");
                        return NULL;
                }
                p->pos++;
                skip_ws(p);
                if (peek(p) == '}') {
                        (void)toml_fail(p, "trailing comma in an inline table");
                        return NULL;
                }
        }
        /* everything inside an inline table is closed too */
        for (size_t i = first_mark; i < p->n_marks; i++)
                if (p->marks[i].origin == ORIGIN_DOTTED)
                        p->marks[i].origin = ORIGIN_INLINE;
        return TAKE_PTR(t);
}

static json_t *parse_array(struct parser *p)
{
        json_t *a = json_array();

        if (!a) {
                (void)oom(p);
                return NULL;
        }
        p->pos++; /* [ */
        for (;;) {
                json_t *v;
                if (skip_ws_nl(p) < 0)
                        goto fail;
                if (peek(p) == ']') {
                        p->pos++;
                        return a;
                }
                v = parse_value(p);
                if (!v)
                        goto fail;
                if (json_array_append_new(a, v) < 0) {
                        (void)oom(p);
                        goto fail;
                }
                if (skip_ws_nl(p) < 0)
                        goto fail;
                if (peek(p) == ',') {
                        p->pos++;
                        continue;
                }
                if (peek(p) == ']') {
                        p->pos++;
                        return a;
                }
                (void)toml_fail(p, "expected ',' or ']' in an array");
                goto fail;
        }
fail:
        json_decref(a);
        return NULL;
}

static json_t *parse_value(struct parser *p)
{
        int c = peek(p);
        json_t *v;

        if (c == '"' || c == '\'') {
                cleanup_buf struct buf b = BUF_INIT;
                size_t at = p->pos;
                if (parse_string_into(p, &b, true) < 0)
                        return NULL;
                return string_value(p, at, &b);
        }
        if (c == '[' || c == '{') {
                if (p->depth >= TOML_MAX_DEPTH) {
                        (void)toml_fail(p, "nested deeper than %d levels", TOML_MAX_DEPTH);
                        return NULL;
                }
                p->depth++;
                v = c == '[' ? parse_array(p) : parse_inline_table(p);
                p->depth--;
                return v;
        }
        if (starts(p, "true") && !is_bare(peek_at(p, 4))) {
                p->pos += 4;
                return json_true();
        }
        if (starts(p, "false") && !is_bare(peek_at(p, 5))) {
                p->pos += 5;
                return json_false();
        }
        if (c < 0 || c == '\n' || c == '\r' || c == '#') {
                (void)toml_fail(p, "expected a value");
                return NULL;
        }
        v = toml_parse_number(p);
        if (!v && !p->failed)
                (void)oom(p);
        return v;
}

/* ---- tables ---- */

/* Walks (creating) the tables named by the first n parts of k from t. Dotted keys may go through
 * implicit and dotted tables of the current section; headers also through header-defined
 * tables and the last element of arrays of tables. */
static json_t *walk(struct parser *p, json_t *t, const struct key *k, size_t n, bool header)
{
        for (size_t i = 0; i < n; i++) {
                json_t *next = json_object_get(t, k->part[i]);
                char name[512];
                if (!next) {
                        next = json_object();
                        if (!next || json_object_set_new(t, k->part[i], next) < 0 ||
                            mark(p, next, header ? ORIGIN_IMPLICIT : ORIGIN_DOTTED) < 0) {
                                (void)oom(p);
                                return NULL;
                        }
                } else if (json_is_array(next) && header && has_origin(p, next, ORIGIN_AOT)) {
                        next = json_array_get(next, json_array_size(next) - 1);
                } else if (!json_is_object(next) || has_origin(p, next, ORIGIN_INLINE) ||
                           (!header && has_origin(p, next, ORIGIN_HEADER))) {
                        p->pos = k->at;
                        key_text(k, i + 1, name, sizeof(name));
                        (void)toml_fail(p, "'%s' is already defined and cannot be extended", name);
                        return NULL;
                }
                t = next;
        }
        return t;
}

static int set_key(struct parser *p, json_t *table, const struct key *k, json_t *value)
{
        json_t *t = walk(p, table, k, k->n - 1, false);
        char name[512];

        if (!t) {
                json_decref(value);
                return -EINVAL;
        }
        if (json_object_get(t, k->part[k->n - 1])) {
                json_decref(value);
                p->pos = k->at;
                key_text(k, k->n, name, sizeof(name));
                return toml_fail(p, "duplicate key '%s'", name);
        }
        if (json_object_set_new(t, k->part[k->n - 1], value) < 0)
                return oom(p);
        return 0;
}

static int parse_header(struct parser *p)
{
        bool aot = starts(p, "[[");
        cleanup_key struct key k = {0};
        json_t *parent, *t;
        char name[512];

        p->pos += aot ? 2 : 1;
        if (parse_key(p, &k) < 0)
                return -EINVAL;
        if (aot ? !starts(p, "]]") : peek(p) != ']') {
                (void)toml_fail(p, aot ? "expected ']]'" : "expected ']'");
                return -EINVAL;
        }
        p->pos += aot ? 2 : 1;
        key_text(&k, k.n, name, sizeof(name));
        parent = walk(p, p->root, &k, k.n - 1, true);
        if (!parent)
                return -EINVAL;
        t = json_object_get(parent, k.part[k.n - 1]);
        if (aot) {
                json_t *arr = t, *elem = json_object();
                if (!elem)
                        return oom(p);
                if (!arr) {
                        arr = json_array();
                        if (!arr || json_object_set_new(parent, k.part[k.n - 1], arr) < 0 ||
                            mark(p, arr, ORIGIN_AOT) < 0) {
                                json_decref(elem);
                                return oom(p);
                        }
                } else if (!json_is_array(arr) || !has_origin(p, arr, ORIGIN_AOT)) {
                        json_decref(elem);
                        p->pos = k.at;
                        return toml_fail(p, "'%s' is not an array of tables", name);
                }
                if (json_array_append_new(arr, elem) < 0 || mark(p, elem, ORIGIN_HEADER) < 0)
                        return oom(p);
                p->cur = elem;
        } else {
                if (!t) {
                        t = json_object();
                        if (!t || json_object_set_new(parent, k.part[k.n - 1], t) < 0 ||
                            mark(p, t, ORIGIN_HEADER) < 0)
                                return oom(p);
                } else if (!json_is_object(t) || !has_origin(p, t, ORIGIN_IMPLICIT)) {
                        p->pos = k.at;
                        return toml_fail(p, "table '%s' is defined more than once", name);
                } else {
                        set_origin(p, t, ORIGIN_HEADER);
                }
                p->cur = t;
        }
        /* dotted tables of the previous section are closed now */
        for (size_t i = 0; i < p->n_marks; i++)
                if (p->marks[i].origin == ORIGIN_DOTTED)
                        p->marks[i].origin = ORIGIN_HEADER;
        return expect_eol(p);
}

static int parse_keyval(struct parser *p)
{
        struct key k;
        json_t *v;
        int r;

        if (parse_key(p, &k) < 0)
                return -EINVAL;
        if (peek(p) != '=') {
                key_done(&k);
                return toml_fail(p, "expected '=' after a key");
        }
        p->pos++;
        skip_ws(p);
        v = parse_value(p);
        if (!v) {
                key_done(&k);
                return -EINVAL;
        }
        r = set_key(p, p->cur, &k, v);
        key_done(&k);
        return r < 0 ? r : expect_eol(p);
}

int toml_parse(const char *text, size_t len, json_t **ret, struct ak_err *err)
{
        struct parser p = {.s = text, .len = len, .err = err};
        cleanup_json json_t *root = NULL;
        int r = 0;

        if (len > TOML_MAX_BYTES)
                return ak_err_set(err, EFBIG, "larger than %u bytes", TOML_MAX_BYTES);
        p.root = p.cur = root = json_object();
        if (!root)
                return ak_err_oom(err);
        p.pos = utf8_invalid_at((const unsigned char *)text, len);
        if (p.pos != len)
                return toml_fail(&p, "not valid UTF-8");
        p.pos = 0;
        if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
                p.pos = 3; /* a UTF-8 byte order mark */
        while (r >= 0) {
                if ((r = skip_ws_nl(&p)) < 0 || at_end(&p))
                        break;
                r = peek(&p) == '[' ? parse_header(&p) : parse_keyval(&p);
        }
        free(p.marks);
        if (r < 0)
                return p.failed ? -EINVAL : r;
        *ret = TAKE_PTR(root);
        return 0;
}

/* read_json.c - a profile read back from its JSON (see read_json.h for
 * the contract).
 *
 * Two passes over the text, neither recursive:
 *
 * 1. parse: a strict RFC 8259 parser with an explicit stack builds a flat
 *    array of values (type, span in the text, first child, next sibling);
 *    an object's children are its keys and values in turn. Strings are
 *    validated here (escapes, UTF-8, no raw control characters) and decoded
 *    only when a field is read.
 * 2. build: the header fields, the meta object, then the tree, depth first
 *    with an explicit stack. Each node's symbol is deduplicated through a
 *    hash table on (kind, function, file, short_file, line), so a function
 *    seen in many places is one symbol, as in a live session.
 *
 * Exact round trip: writers order children by wall time, ties by frame id
 * (rp_tree_sorted_children). When a child ties with the sibling before it
 * but its deduplicated id would sort it first, or when two siblings are the
 * same symbol (two code objects can look alike), the child gets a fresh
 * copy of its symbol with a higher id, so the written order is the read
 * order. Seconds are decimal in the text and are converted to nanoseconds
 * exactly (digits, not floating point); header numbers that are doubles
 * (started_at, duration_s, interval_s) go through strtod_l in the "C"
 * locale and are written back with the same shortest form.
 *
 * Decoded strings are valid UTF-8: a lone surrogate escape (\udcff) becomes
 * U+FFFD, as the writers do with invalid bytes.
 */
#include "read_json.h"

#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { J_OBJECT, J_ARRAY, J_STRING, J_NUMBER, J_TRUE, J_FALSE, J_NULL };

static const char *const TYPE_NAMES[] = {
    "an object", "an array", "a string", "a number", "true", "false", "null",
};

typedef struct jval {
    uint32_t start, len;    /* string: between the quotes; number: its text */
    uint32_t first;         /* containers: first child, RP_NONE if empty */
    uint32_t next;          /* next sibling, RP_NONE for the last */
    uint8_t type;
} jval;

/* An open container while parsing. */
typedef struct open_ct {
    uint32_t val;
    uint32_t last;          /* its last child so far, RP_NONE */
} open_ct;

/* An open node while building the tree. */
typedef struct build_frame {
    uint32_t tnode;         /* its tree node */
    uint32_t next_child;    /* next child value to read, RP_NONE */
    uint32_t prev_frame;    /* frame id of the child read last, RP_NONE */
    uint64_t prev_wall;
} build_frame;

/* What a node object says. */
typedef struct node_fields {
    rp_buf function, file, short_file;
    int kind;
    uint32_t line;
    uint64_t wall, cpu, self_wall, self_cpu, samples;
    uint32_t lines;         /* the "lines" object, RP_NONE */
    uint32_t children;      /* first child value, RP_NONE */
} node_fields;

typedef struct reader {
    const char *text;
    size_t n;
    jval *vals;
    uint32_t n_vals, cap_vals;
    int rc;                 /* RP_READ_* of the first failure */
    char *err;
    size_t err_size;
    locale_t c_locale;
    rp_buf key;             /* the decoded key being looked at */
    rp_buf value;           /* a decoded string value */
    uint32_t *sym_slots;    /* symbol ids by content, RP_NONE = empty */
    uint32_t sym_mask;
    uint32_t n_nodes;       /* nodes read so far (for messages) */
} reader;

/* ---- errors ---------------------------------------------------------------- */

static int
fail(reader *rd, const char *fmt, ...)
{
    if (rd->rc == RP_READ_OK) {
        rd->rc = RP_READ_INVALID;
        if (rd->err_size > 0) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(rd->err, rd->err_size, fmt, ap);
            va_end(ap);
        }
    }
    return -1;
}

static int
nomem(reader *rd)
{
    if (rd->rc == RP_READ_OK) {
        rd->rc = RP_READ_NOMEM;
        if (rd->err_size > 0) {
            snprintf(rd->err, rd->err_size, "out of memory");
        }
    }
    return -1;
}

/* ---- pass 1: parse ---------------------------------------------------------- */

static size_t
skip_ws(const char *s, size_t n, size_t i)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n'
                     || s[i] == '\r')) {
        i++;
    }
    return i;
}

static int
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int
hex_value(char c)
{
    return c >= '0' && c <= '9' ? c - '0'
        : c >= 'a' && c <= 'f' ? c - 'a' + 10
        : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* The length of the well-formed UTF-8 sequence at s (avail bytes), or 0
 * (RFC 3629: no overlongs, no surrogates, nothing past U+10FFFF). */
static size_t
utf8_len(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xBF;
    size_t len = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2
        : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (len == 0 || len > avail) {
        return 0;
    }
    if (c == 0xE0) {
        lo = 0xA0;
    }
    else if (c == 0xED) {
        hi = 0x9F;
    }
    else if (c == 0xF0) {
        lo = 0x90;
    }
    else if (c == 0xF4) {
        hi = 0x8F;
    }
    for (size_t i = 1; i < len; i++) {
        if (s[i] < lo || s[i] > hi) {
            return 0;
        }
        lo = 0x80;
        hi = 0xBF;
    }
    return len;
}

/* A string at text[*pos] == '"': validated, *pos moved past it. */
static int
scan_string(reader *rd, size_t *pos)
{
    const unsigned char *s = (const unsigned char *)rd->text;
    size_t i = *pos + 1;
    while (i < rd->n && s[i] != '"') {
        if (s[i] < 0x20) {
            return fail(rd, "invalid JSON at byte %zu: control character "
                        "in a string", i);
        }
        if (s[i] == '\\') {
            char e = i + 1 < rd->n ? (char)s[i + 1] : '\0';
            if (e == 'u') {
                for (size_t k = 2; k < 6; k++) {
                    if (i + k >= rd->n || hex_value((char)s[i + k]) < 0) {
                        return fail(rd, "invalid JSON at byte %zu: bad "
                                    "\\u escape", i);
                    }
                }
                i += 6;
            }
            else if (e != '\0' && strchr("\"\\/bfnrt", e) != NULL) {
                i += 2;
            }
            else {
                return fail(rd, "invalid JSON at byte %zu: bad escape", i);
            }
            continue;
        }
        size_t k = utf8_len(s + i, rd->n - i);
        if (k == 0) {
            return fail(rd, "invalid JSON at byte %zu: not UTF-8", i);
        }
        i += k;
    }
    if (i >= rd->n) {
        return fail(rd, "invalid JSON at byte %zu: unterminated string",
                    *pos);
    }
    *pos = i + 1;
    return 0;
}

/* A number at text[*pos] (the grammar is rp_json_number_len's). */
static int
scan_number(reader *rd, size_t *pos)
{
    size_t len = rp_json_number_len(rd->text + *pos, rd->n - *pos);
    if (len == 0) {
        return fail(rd, "invalid JSON at byte %zu: bad number", *pos);
    }
    *pos += len;
    return 0;
}

/* Appends a value whose text starts at `start`; its index, or RP_NONE. */
static uint32_t
add_val(reader *rd, int type, size_t start)
{
    if (rd->n_vals == rd->cap_vals) {
        uint32_t cap = rd->cap_vals < 256 ? 256
            : rd->cap_vals > RP_NONE / 4 ? RP_NONE - 1 : rd->cap_vals * 2;
        jval *v = cap > rd->cap_vals
            ? realloc(rd->vals, (size_t)cap * sizeof(jval)) : NULL;
        if (v == NULL) {
            nomem(rd);
            return RP_NONE;
        }
        rd->vals = v;
        rd->cap_vals = cap;
    }
    jval *v = &rd->vals[rd->n_vals];
    v->type = (uint8_t)type;
    v->start = (uint32_t)start;
    v->len = 0;
    v->first = v->next = RP_NONE;
    return rd->n_vals++;
}

/* Makes value `idx` the next child of the innermost open container. */
static void
link_val(reader *rd, open_ct *top, uint32_t idx)
{
    if (top->last == RP_NONE) {
        rd->vals[top->val].first = idx;
    }
    else {
        rd->vals[top->last].next = idx;
    }
    top->last = idx;
}

enum { S_VALUE, S_VALUE_OR_END, S_KEY, S_KEY_OR_END, S_COLON, S_AFTER };

/* The whole text into rd->vals; value 0 is the document. */
static int
parse(reader *rd)
{
    const char *s = rd->text;
    open_ct *stack = NULL;
    uint32_t depth = 0, cap = 0;
    size_t pos = 0;
    int state = S_VALUE;
    for (;;) {
        pos = skip_ws(s, rd->n, pos);
        if (pos >= rd->n) {
            if (state != S_AFTER || depth > 0) {
                fail(rd, "invalid JSON: unexpected end of the document");
            }
            break;
        }
        char c = s[pos];
        open_ct *top = depth > 0 ? &stack[depth - 1] : NULL;
        if (state == S_AFTER) {
            int in_object = top != NULL && rd->vals[top->val].type == J_OBJECT;
            if (top == NULL) {
                fail(rd, "invalid JSON at byte %zu: text after the "
                     "document", pos);
                break;
            }
            if (c == ',') {
                state = in_object ? S_KEY : S_VALUE;
                pos++;
            }
            else if (c == (in_object ? '}' : ']')) {
                depth--;
                pos++;
            }
            else {
                fail(rd, "invalid JSON at byte %zu: expected ',' or '%c'",
                     pos, in_object ? '}' : ']');
                break;
            }
            continue;
        }
        if (state == S_COLON) {
            if (c != ':') {
                fail(rd, "invalid JSON at byte %zu: expected ':'", pos);
                break;
            }
            state = S_VALUE;
            pos++;
            continue;
        }
        if ((state == S_VALUE_OR_END && c == ']')
                || (state == S_KEY_OR_END && c == '}')) {
            depth--;
            state = S_AFTER;
            pos++;
            continue;
        }
        if ((state == S_KEY || state == S_KEY_OR_END) && c != '"') {
            fail(rd, "invalid JSON at byte %zu: expected a string key",
                 pos);
            break;
        }
        /* A value (or a key, which is a string value). */
        int type = c == '{' ? J_OBJECT : c == '[' ? J_ARRAY
            : c == '"' ? J_STRING : c == 't' ? J_TRUE : c == 'f' ? J_FALSE
            : c == 'n' ? J_NULL : c == '-' || is_digit(c) ? J_NUMBER : -1;
        if (type < 0) {
            fail(rd, "invalid JSON at byte %zu: unexpected character", pos);
            break;
        }
        if (depth == 0 && rd->n_vals > 0) {
            fail(rd, "invalid JSON at byte %zu: text after the document",
                 pos);
            break;
        }
        uint32_t idx = add_val(rd, type, pos);
        if (idx == RP_NONE) {
            break;
        }
        if (top != NULL) {
            link_val(rd, top, idx);
        }
        size_t start = pos;
        if (type == J_OBJECT || type == J_ARRAY) {
            if (depth >= RP_READ_MAX_NESTING) {
                fail(rd, "invalid profile: nested deeper than %u levels",
                     RP_READ_MAX_NESTING);
                break;
            }
            if (depth == cap) {
                uint32_t ncap = cap < 64 ? 64 : cap * 2;
                open_ct *ns = realloc(stack, (size_t)ncap * sizeof(open_ct));
                if (ns == NULL) {
                    nomem(rd);
                    break;
                }
                stack = ns;
                cap = ncap;
            }
            stack[depth].val = idx;
            stack[depth].last = RP_NONE;
            depth++;
            state = type == J_OBJECT ? S_KEY_OR_END : S_VALUE_OR_END;
            pos++;
            continue;
        }
        if (type == J_STRING) {
            if (scan_string(rd, &pos) < 0) {
                break;
            }
            rd->vals[idx].start = (uint32_t)(start + 1);
            rd->vals[idx].len = (uint32_t)(pos - start - 2);
        }
        else if (type == J_NUMBER) {
            if (scan_number(rd, &pos) < 0) {
                break;
            }
            rd->vals[idx].len = (uint32_t)(pos - start);
        }
        else {
            const char *word = type == J_TRUE ? "true"
                : type == J_FALSE ? "false" : "null";
            size_t len = strlen(word);
            if (rd->n - pos < len || memcmp(s + pos, word, len) != 0) {
                fail(rd, "invalid JSON at byte %zu: unexpected character",
                     pos);
                break;
            }
            pos += len;
            rd->vals[idx].len = (uint32_t)len;
        }
        int is_key = top != NULL && rd->vals[top->val].type == J_OBJECT
            && (state == S_KEY || state == S_KEY_OR_END);
        state = is_key ? S_COLON : S_AFTER;
    }
    free(stack);
    return rd->rc == RP_READ_OK ? 0 : -1;
}

/* ---- reading values ------------------------------------------------------------ */

static void
put_utf8(rp_buf *b, uint32_t cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    }
    else if (cp < 0x800) {
        u[0] = (char)(0xC0 | cp >> 6);
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    }
    else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | cp >> 12);
        u[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    }
    else {
        u[0] = (char)(0xF0 | cp >> 18);
        u[1] = (char)(0x80 | (cp >> 12 & 0x3F));
        u[2] = (char)(0x80 | (cp >> 6 & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    rp_buf_put(b, u, n);
}

static uint32_t
hex4(const char *s)
{
    return (uint32_t)(hex_value(s[0]) << 12 | hex_value(s[1]) << 8
                      | hex_value(s[2]) << 4 | hex_value(s[3]));
}

/* The string value v decoded into `out` (cleared first). Validated by
 * parse, so escapes are well-formed here. */
static int
decode_string(reader *rd, uint32_t v, rp_buf *out)
{
    const char *s = rd->text + rd->vals[v].start;
    size_t n = rd->vals[v].len, i = 0;
    rp_buf_clear(out);
    while (i < n && !out->failed) {
        size_t run = i;
        while (run < n && s[run] != '\\') {
            run++;
        }
        rp_buf_put(out, s + i, run - i);
        i = run;
        if (i >= n) {
            break;
        }
        char e = s[i + 1];
        i += 2;
        if (e != 'u') {
            static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
            rp_buf_putc(out, to[strchr(from, e) - from]);
            continue;
        }
        uint32_t cp = hex4(s + i);
        i += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF && i + 6 <= n && s[i] == '\\'
                && s[i + 1] == 'u') {
            uint32_t lo = hex4(s + i + 2);
            if (lo >= 0xDC00 && lo <= 0xDFFF) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                i += 6;
            }
        }
        if (cp >= 0xD800 && cp <= 0xDFFF) {
            cp = 0xFFFD;    /* a lone surrogate */
        }
        put_utf8(out, cp);
    }
    return out->failed ? nomem(rd) : 0;
}

static int
expect_type(reader *rd, uint32_t v, int type, const char *what)
{
    if (rd->vals[v].type != type) {
        return fail(rd, "invalid profile: %s must be %s, not %s", what,
                    TYPE_NAMES[type], TYPE_NAMES[rd->vals[v].type]);
    }
    return 0;
}

/* A number value's text, or NULL (with the error) when it is not one. */
static const char *
number_text(reader *rd, uint32_t v, const char *what)
{
    return expect_type(rd, v, J_NUMBER, what) < 0 ? NULL
                                                  : rd->text + rd->vals[v].start;
}

/* A non-negative integer up to max (no fraction, no exponent). */
static int
read_uint(reader *rd, uint32_t v, uint64_t max, uint64_t *out,
          const char *what)
{
    const char *s = number_text(rd, v, what);
    uint64_t x = 0;
    if (s == NULL) {
        return -1;
    }
    for (uint32_t i = 0; i < rd->vals[v].len; i++) {
        if (!is_digit(s[i])) {
            return fail(rd, "invalid profile: %s must be a non-negative "
                        "integer", what);
        }
        unsigned d = (unsigned)(s[i] - '0');
        if (x > (max - d) / 10) {
            return fail(rd, "invalid profile: %s is out of range", what);
        }
        x = x * 10 + d;
    }
    *out = x;
    return 0;
}

/* Seconds as exact nanoseconds (rounded half up past 9 decimals). */
static int
read_ns(reader *rd, uint32_t v, uint64_t *out, const char *what)
{
    const char *s = number_text(rd, v, what);
    size_t n, i = 0, int_digits = 0;
    long exp = 0;
    uint64_t ns = 0;
    int round_up = 0;
    if (s == NULL) {
        return -1;
    }
    n = rd->vals[v].len;
    if (s[0] == '-') {
        return fail(rd, "invalid profile: %s must not be negative", what);
    }
    while (i < n && is_digit(s[i])) {
        i++;
        int_digits++;
    }
    size_t frac_start = i < n && s[i] == '.' ? i + 1 : i;
    size_t frac_end = frac_start;
    while (frac_end < n && is_digit(s[frac_end])) {
        frac_end++;
    }
    if (frac_end < n) {     /* an exponent (the grammar is checked) */
        size_t k = frac_end + 1;
        int neg = s[k] == '-';
        if (s[k] == '+' || s[k] == '-') {
            k++;
        }
        for (; k < n; k++) {
            exp = exp < 100000 ? exp * 10 + (s[k] - '0') : exp;
        }
        exp = neg ? -exp : exp;
    }
    /* Digit j (int digits then fraction) is worth 10^(int_digits-1-j+exp)
     * seconds, 10^(that + 9) ns. */
    size_t n_digits = int_digits + (frac_end - frac_start);
    for (size_t j = 0; j < n_digits; j++) {
        char c = j < int_digits ? s[j] : s[frac_start + (j - int_digits)];
        unsigned d = (unsigned)(c - '0');
        long w = (long)int_digits - 1 - (long)j + exp + 9;
        if (w == -1) {
            round_up = d >= 5;
        }
        if (w < 0 || d == 0) {
            continue;
        }
        uint64_t add = d;
        for (long k = 0; k < w; k++) {
            if (add > UINT64_MAX / 10) {
                return fail(rd, "invalid profile: %s is out of range", what);
            }
            add *= 10;
        }
        if (ns > UINT64_MAX - add) {
            return fail(rd, "invalid profile: %s is out of range", what);
        }
        ns += add;
    }
    if (round_up && ns == UINT64_MAX) {
        return fail(rd, "invalid profile: %s is out of range", what);
    }
    *out = ns + (uint64_t)round_up;
    return 0;
}

/* A finite, non-negative number as a double (locale-independent). */
static int
read_double(reader *rd, uint32_t v, double *out, const char *what)
{
    const char *s = number_text(rd, v, what);
    char tmp[512];
    if (s == NULL) {
        return -1;
    }
    if (rd->vals[v].len >= sizeof(tmp)) {
        return fail(rd, "invalid profile: %s has too many digits", what);
    }
    memcpy(tmp, s, rd->vals[v].len);
    tmp[rd->vals[v].len] = '\0';
    double x = strtod_l(tmp, NULL, rd->c_locale);
    if (!isfinite(x) || x < 0.0) {
        return fail(rd, "invalid profile: %s must be a finite number >= 0",
                    what);
    }
    *out = x;
    return 0;
}

/* Whether the decoded key in rd->key is `name`. */
static int
key_is(reader *rd, const char *name)
{
    size_t n = strlen(name);
    return rd->key.len == n && memcmp(rd->key.data, name, n) == 0;
}

/* Marks field bit `bit` as seen; an error the second time. */
static int
seen_once(reader *rd, unsigned *seen, unsigned bit, const char *where)
{
    if (*seen & bit) {
        return fail(rd, "invalid profile: duplicate field \"%s\" in %s",
                    rd->key.data, where);
    }
    *seen |= bit;
    return 0;
}

/* A field an object may have: its key, its name in messages, its bit. */
typedef struct field_spec {
    const char *key, *what;
    unsigned bit;
} field_spec;

/* The field named by rd->key among specs[n]: its bit (0 for a field this
 * reader does not know, to be ignored) and name; -1 when the object had it
 * already (`seen` holds the bits met so far in `where`). */
static int
find_field(reader *rd, const field_spec *specs, size_t n, unsigned *seen,
           const char *where, unsigned *bit, const char **what)
{
    *bit = 0;
    for (size_t i = 0; i < n; i++) {
        if (key_is(rd, specs[i].key)) {
            *bit = specs[i].bit;
            *what = specs[i].what;
        }
    }
    return *bit == 0 ? 0 : seen_once(rd, seen, *bit, where);
}

/* A newly allocated NUL-terminated copy of buffer b. */
static int
copy_buf(reader *rd, const rp_buf *b, rp_str *out)
{
    out->len = b->len;
    out->s = malloc(b->len + 1);
    if (out->s == NULL) {
        return nomem(rd);
    }
    if (b->len > 0) {
        memcpy(out->s, b->data, b->len);
    }
    out->s[b->len] = '\0';
    return 0;
}

/* ---- symbols --------------------------------------------------------------------- */

static uint64_t
hash_mix(uint64_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    }
    return (h ^ n) * 0x100000001b3ull;
}

static uint64_t
sym_hash(int kind, const char *f, size_t fn, const char *file, size_t filen,
         const char *sf, size_t sfn, uint32_t line)
{
    uint64_t h = 0xcbf29ce484222325ull ^ ((uint64_t)line << 8 | (unsigned)kind);
    h = hash_mix(h, f, fn);
    h = hash_mix(h, file, filen);
    return hash_mix(h, sf, sfn);
}

static uint64_t
sym_hash_of(const rp_sym *s)
{
    return sym_hash((int)s->kind, s->function.s, s->function.len, s->file.s,
                    s->file.len, s->short_file.s, s->short_file.len, s->line);
}

static int
buf_eq(const rp_str *s, const rp_buf *b)
{
    return s->len == b->len && (b->len == 0
                                || memcmp(s->s, b->data, b->len) == 0);
}

/* Room in the symbol table for one more id (at most half full). */
static int
sym_reserve(reader *rd, const rp_symtab *st)
{
    if ((uint64_t)st->n + 1 <= (uint64_t)(rd->sym_mask + 1) / 2) {
        return 0;
    }
    uint32_t mask = rd->sym_mask ? rd->sym_mask * 2 + 1 : 255;
    uint32_t *slots = mask < RP_NONE / 2
        ? malloc(((size_t)mask + 1) * sizeof(uint32_t)) : NULL;
    if (slots == NULL) {
        return nomem(rd);
    }
    memset(slots, 0xff, ((size_t)mask + 1) * sizeof(uint32_t));
    for (uint32_t id = 0; id < st->n; id++) {
        uint64_t h = sym_hash_of(&st->syms[id]);
        while (slots[h & mask] != RP_NONE) {
            h++;
        }
        slots[h & mask] = id;
    }
    free(rd->sym_slots);
    rd->sym_slots = slots;
    rd->sym_mask = mask;
    return 0;
}

/* The symbol of a node: an existing one with the same content, or (always
 * when `fresh`) a new one. RP_NONE when out of memory. */
static uint32_t
node_symbol(reader *rd, rp_symtab *st, const node_fields *nf, int fresh)
{
    uint32_t id = RP_NONE;
    if (sym_reserve(rd, st) < 0) {
        goto done;
    }
    uint64_t h = sym_hash(nf->kind, nf->function.data, nf->function.len,
                          nf->file.data, nf->file.len, nf->short_file.data,
                          nf->short_file.len, nf->line);
    for (;; h++) {
        uint32_t i = rd->sym_slots[h & rd->sym_mask];
        if (i == RP_NONE) {
            break;
        }
        const rp_sym *s = &st->syms[i];
        if (!fresh && (int)s->kind == nf->kind && s->line == nf->line
                && buf_eq(&s->function, &nf->function)
                && buf_eq(&s->file, &nf->file)
                && buf_eq(&s->short_file, &nf->short_file)) {
            id = i;
            goto done;
        }
    }
    id = rp_symtab_add(st, (rp_kind)nf->kind, nf->function.data,
                       nf->function.len, nf->file.data, nf->file.len,
                       nf->short_file.data, nf->short_file.len, nf->line);
    if (id == RP_NONE) {
        nomem(rd);
        goto done;
    }
    rd->sym_slots[h & rd->sym_mask] = id;
done:
    return id;
}

/* ---- nodes ------------------------------------------------------------------------- */

enum {
    F_NAME = 1u << 0, F_FUNCTION = 1u << 1, F_FILE = 1u << 2,
    F_SHORT_FILE = 1u << 3, F_LINE = 1u << 4, F_KIND = 1u << 5,
    F_WALL = 1u << 6, F_CPU = 1u << 7, F_SELF_WALL = 1u << 8,
    F_SELF_CPU = 1u << 9, F_SAMPLES = 1u << 10, F_LINES = 1u << 11,
    F_CHILDREN = 1u << 12,
};

/* A string field into `out`. */
static int
read_string(reader *rd, uint32_t v, rp_buf *out, const char *what)
{
    return expect_type(rd, v, J_STRING, what) < 0 ? -1
                                                  : decode_string(rd, v, out);
}

/* One field (key in rd->key, value v) of a node. */
static int
read_node_field(reader *rd, uint32_t v, node_fields *nf, unsigned *seen)
{
    static const field_spec FIELDS[] = {
        {"name", "a node's \"name\"", F_NAME},
        {"function", "a node's \"function\"", F_FUNCTION},
        {"file", "a node's \"file\"", F_FILE},
        {"short_file", "a node's \"short_file\"", F_SHORT_FILE},
        {"line", "a node's \"line\"", F_LINE},
        {"kind", "a node's \"kind\"", F_KIND},
        {"wall_s", "a node's \"wall_s\"", F_WALL},
        {"cpu_s", "a node's \"cpu_s\"", F_CPU},
        {"self_wall_s", "a node's \"self_wall_s\"", F_SELF_WALL},
        {"self_cpu_s", "a node's \"self_cpu_s\"", F_SELF_CPU},
        {"samples", "a node's \"samples\"", F_SAMPLES},
        {"lines", "a node's \"lines\"", F_LINES},
        {"children", "a node's \"children\"", F_CHILDREN},
    };
    unsigned bit;
    const char *what = "";
    uint64_t x;
    if (find_field(rd, FIELDS, sizeof(FIELDS) / sizeof(FIELDS[0]), seen,
                   "a node", &bit, &what) < 0) {
        return -1;
    }
    switch (bit) {
    case 0:
        return 0;   /* a field from a later schema: ignored */
    case F_NAME:
        return read_string(rd, v, &rd->value, what);
    case F_FUNCTION:
        return read_string(rd, v, &nf->function, what);
    case F_FILE:
        return read_string(rd, v, &nf->file, what);
    case F_SHORT_FILE:
        return read_string(rd, v, &nf->short_file,
                           what);
    case F_LINE:
        if (read_uint(rd, v, RP_NONE - 1, &x, what) < 0) {
            return -1;
        }
        nf->line = (uint32_t)x;
        return 0;
    case F_KIND:
        if (read_string(rd, v, &rd->value, what) < 0) {
            return -1;
        }
        nf->kind = rp_kind_from_name(rd->value.data ? rd->value.data : "",
                                     rd->value.len);
        if (nf->kind < 0) {
            return fail(rd, "invalid profile: unknown node kind \"%.40s\" "
                        "(frame, await, out-of-context, thread or "
                        "truncated)", rd->value.data ? rd->value.data : "");
        }
        return 0;
    case F_WALL:
        return read_ns(rd, v, &nf->wall, what);
    case F_CPU:
        return read_ns(rd, v, &nf->cpu, what);
    case F_SELF_WALL:
        return read_ns(rd, v, &nf->self_wall, what);
    case F_SELF_CPU:
        return read_ns(rd, v, &nf->self_cpu, what);
    case F_SAMPLES:
        return read_uint(rd, v, UINT64_MAX, &nf->samples,
                         what);
    case F_LINES:
        if (expect_type(rd, v, J_OBJECT, what) < 0) {
            return -1;
        }
        nf->lines = v;
        return 0;
    default:    /* F_CHILDREN */
        if (expect_type(rd, v, J_ARRAY, what) < 0) {
            return -1;
        }
        nf->children = rd->vals[v].first;
        return 0;
    }
}

/* The fields of node object v into nf. */
static int
read_node(reader *rd, uint32_t v, node_fields *nf)
{
    unsigned seen = 0;
    rd->n_nodes++;
    if (expect_type(rd, v, J_OBJECT, "a node") < 0) {
        return -1;
    }
    rp_buf_clear(&nf->function);
    rp_buf_clear(&nf->file);
    rp_buf_clear(&nf->short_file);
    nf->kind = -1;
    nf->line = 0;
    nf->wall = nf->cpu = nf->self_wall = nf->self_cpu = nf->samples = 0;
    nf->lines = nf->children = RP_NONE;
    for (uint32_t k = rd->vals[v].first; k != RP_NONE;
            k = rd->vals[rd->vals[k].next].next) {
        if (decode_string(rd, k, &rd->key) < 0
                || read_node_field(rd, rd->vals[k].next, nf, &seen) < 0) {
            return -1;
        }
    }
    if (!(seen & F_FUNCTION) || !(seen & F_KIND)) {
        return fail(rd, "invalid profile: node #%u has no \"%s\"",
                    rd->n_nodes, (seen & F_FUNCTION) ? "kind" : "function");
    }
    return 0;
}

/* Copies totals and lines into tree node `tn`. */
static int
fill_node(reader *rd, rp_tree *t, uint32_t tn, const node_fields *nf)
{
    rp_node *nd = &t->nodes[tn];
    uint64_t line, ns;
    nd->wall_ns = nf->wall;
    nd->cpu_ns = nf->cpu;
    nd->self_wall_ns = nf->self_wall;
    nd->self_cpu_ns = nf->self_cpu;
    nd->samples = nf->samples;
    if (nf->lines == RP_NONE) {
        return 0;
    }
    for (uint32_t k = rd->vals[nf->lines].first; k != RP_NONE;
            k = rd->vals[rd->vals[k].next].next) {
        uint32_t v = rd->vals[k].next;
        const char *s = rd->text + rd->vals[k].start;
        uint32_t n = rd->vals[k].len;
        line = 0;
        for (uint32_t i = 0; i < n; i++) {
            if (!is_digit(s[i]) || n > 10) {
                return fail(rd, "invalid profile: a \"lines\" key must be a "
                            "line number, not \"%.20s\"", s);
            }
            line = line * 10 + (uint64_t)(s[i] - '0');
        }
        if (n == 0 || line >= RP_NONE) {
            return fail(rd, "invalid profile: line number out of range in "
                        "\"lines\"");
        }
        if (read_ns(rd, v, &ns, "a \"lines\" value") < 0) {
            return -1;
        }
        if (rp_tree_add_line(t, tn, (uint32_t)line, ns) < 0) {
            return nomem(rd);
        }
    }
    return 0;
}

/* The tree below root value `root`, depth first. */
static int
build_tree(reader *rd, uint32_t root, rp_loaded *out)
{
    node_fields nf;
    build_frame *stack = NULL;
    uint32_t depth = 0, cap = 0;
    int rc = -1;
    rp_tree *t = &out->tree;
    rp_buf_init(&nf.function, 0);
    rp_buf_init(&nf.file, 0);
    rp_buf_init(&nf.short_file, 0);
    if (read_node(rd, root, &nf) < 0) {
        goto done;
    }
    uint32_t sym = node_symbol(rd, &out->syms, &nf, 0);
    /* Every node and line entry is a value, so n_vals bounds both. */
    uint32_t max_nodes = rd->n_vals < RP_NONE - 2 ? rd->n_vals + 1
                                                  : RP_NONE - 1;
    if (sym == RP_NONE) {
        goto done;
    }
    if (rp_tree_init(t, sym, max_nodes, 0) < 0) {
        nomem(rd);
        goto done;
    }
    if (fill_node(rd, t, 0, &nf) < 0) {
        goto done;
    }
    uint32_t tnode = 0, next_child = nf.children;
    for (;;) {
        if (next_child != RP_NONE) {   /* open the node just read */
            if (depth == cap) {
                uint32_t ncap = cap < 64 ? 64 : cap * 2;
                build_frame *ns = realloc(stack,
                                          (size_t)ncap * sizeof(build_frame));
                if (ns == NULL) {
                    nomem(rd);
                    goto done;
                }
                stack = ns;
                cap = ncap;
            }
            stack[depth].tnode = tnode;
            stack[depth].next_child = next_child;
            stack[depth].prev_frame = RP_NONE;
            stack[depth].prev_wall = 0;
            depth++;
        }
        while (depth > 0 && stack[depth - 1].next_child == RP_NONE) {
            depth--;
        }
        if (depth == 0) {
            break;
        }
        build_frame *top = &stack[depth - 1];
        uint32_t v = top->next_child;
        top->next_child = rd->vals[v].next;
        if (read_node(rd, v, &nf) < 0) {
            goto done;
        }
        /* A tie with the previous sibling must not sort before it. */
        sym = node_symbol(rd, &out->syms, &nf, 0);
        if (sym != RP_NONE && top->prev_frame != RP_NONE
                && nf.wall == top->prev_wall && sym < top->prev_frame) {
            sym = node_symbol(rd, &out->syms, &nf, 1);
        }
        uint32_t before = t->n_nodes;
        tnode = sym == RP_NONE ? RP_NONE : rp_tree_get_child(t, top->tnode,
                                                             sym);
        if (tnode != RP_NONE && t->n_nodes == before) {
            /* The same symbol twice among siblings. */
            sym = node_symbol(rd, &out->syms, &nf, 1);
            tnode = sym == RP_NONE ? RP_NONE
                                   : rp_tree_get_child(t, top->tnode, sym);
        }
        if (tnode == RP_NONE) {
            nomem(rd);
            goto done;
        }
        top->prev_frame = sym;
        top->prev_wall = nf.wall;
        if (fill_node(rd, t, tnode, &nf) < 0) {
            goto done;
        }
        next_child = nf.children;
    }
    rc = 0;
done:
    free(stack);
    rp_buf_free(&nf.function);
    rp_buf_free(&nf.file);
    rp_buf_free(&nf.short_file);
    return rc;
}

/* ---- the document ------------------------------------------------------------------ */

static int
read_meta(reader *rd, uint32_t obj, rp_loaded *out)
{
    size_t n = 0;
    if (expect_type(rd, obj, J_OBJECT, "\"meta\"") < 0) {
        return -1;
    }
    for (uint32_t k = rd->vals[obj].first; k != RP_NONE;
            k = rd->vals[rd->vals[k].next].next) {
        n++;
    }
    out->meta = calloc(n > 0 ? n : 1, sizeof(rp_meta_item));
    if (out->meta == NULL) {
        return nomem(rd);
    }
    for (uint32_t k = rd->vals[obj].first; k != RP_NONE;
            k = rd->vals[rd->vals[k].next].next) {
        uint32_t v = rd->vals[k].next;
        rp_meta_item *m = &out->meta[out->n_meta];
        int type = rd->vals[v].type;
        if (type == J_OBJECT || type == J_ARRAY) {
            return fail(rd, "invalid profile: \"meta\" values must be "
                        "strings, numbers, booleans or null");
        }
        if (decode_string(rd, k, &rd->key) < 0
                || copy_buf(rd, &rd->key, &m->key) < 0) {
            return -1;
        }
        out->n_meta++;      /* owns the key from here */
        if (type == J_STRING) {
            if (decode_string(rd, v, &rd->value) < 0) {
                return -1;
            }
        }
        else {
            rp_buf_clear(&rd->value);
            rp_buf_put(&rd->value, rd->text + rd->vals[v].start,
                       rd->vals[v].len);
            m->is_literal = 1;
        }
        if (copy_buf(rd, &rd->value, &m->value) < 0) {
            return -1;
        }
    }
    return 0;
}

static int
read_reasons(reader *rd, uint32_t arr, rp_loaded *out)
{
    if (expect_type(rd, arr, J_ARRAY, "\"truncated_reasons\"") < 0) {
        return -1;
    }
    for (uint32_t k = rd->vals[arr].first; k != RP_NONE;
            k = rd->vals[k].next) {
        unsigned bit = RP_TRUNC_REASONS;
        if (read_string(rd, k, &rd->value, "a truncation reason") < 0) {
            return -1;
        }
        for (unsigned i = 0; i < RP_TRUNC_REASONS; i++) {
            const char *name = rp_trunc_name(i);
            if (rd->value.len == strlen(name)
                    && memcmp(rd->value.data, name, rd->value.len) == 0) {
                bit = i;
            }
        }
        if (bit == RP_TRUNC_REASONS) {
            return fail(rd, "invalid profile: unknown truncation reason "
                        "\"%.40s\"", rd->value.data ? rd->value.data : "");
        }
        out->truncated |= 1u << bit;
    }
    return 0;
}

static const char *const MODES[] = {"enabled", "disabled", "strict"};

enum {
    H_VERSION = 1u << 0, H_REQPROF_VERSION = 1u << 1, H_STARTED_AT = 1u << 2,
    H_DURATION = 1u << 3, H_INTERVAL = 1u << 4, H_SAMPLES = 1u << 5,
    H_WALL = 1u << 6, H_CPU = 1u << 7, H_ASYNC_MODE = 1u << 8,
    H_MAX_DEPTH = 1u << 9, H_TRUNCATED = 1u << 10, H_REASONS = 1u << 11,
    H_META = 1u << 12, H_ROOT = 1u << 13, H_GC = 1u << 14,
    H_RESPONSE = 1u << 15, H_UNDERSAMPLED = 1u << 16,
    H_UNDERSAMPLED_REASON = 1u << 17, H_LOOP_BLOCK = 1u << 18,
    H_EFFECTIVE_INTERVAL = 1u << 19, H_BUDGET = 1u << 20,
    H_SAMPLER_CPU = 1u << 21, H_SAMPLER_CPU_PERCENT = 1u << 22,
};

enum {
    B_WALL = 1u << 0, B_FUNCTION = 1u << 1, B_FILE = 1u << 2,
    B_SHORT_FILE = 1u << 3, B_LINE = 1u << 4,
};

/* "loop_block": null, or the longest stretch the request held its event
 * loop and where (a frame symbol; its line is where it was). */
static int
read_loop_block(reader *rd, uint32_t obj, rp_loaded *out)
{
    static const field_spec FIELDS[] = {
        {"wall_s", "\"loop_block\"'s \"wall_s\"", B_WALL},
        {"function", "\"loop_block\"'s \"function\"", B_FUNCTION},
        {"file", "\"loop_block\"'s \"file\"", B_FILE},
        {"short_file", "\"loop_block\"'s \"short_file\"", B_SHORT_FILE},
        {"line", "\"loop_block\"'s \"line\"", B_LINE},
    };
    int rc = -1;
    unsigned seen = 0, bit;
    const char *what = "";
    uint64_t x;
    node_fields nf;
    memset(&nf, 0, sizeof(nf));
    rp_buf_init(&nf.function, 0);
    rp_buf_init(&nf.file, 0);
    rp_buf_init(&nf.short_file, 0);
    nf.kind = RP_KIND_FRAME;
    if (rd->vals[obj].type == J_NULL) {
        rc = 0;
        goto done;
    }
    if (expect_type(rd, obj, J_OBJECT, "\"loop_block\"") < 0) {
        goto done;
    }
    for (uint32_t k = rd->vals[obj].first; k != RP_NONE;
            k = rd->vals[rd->vals[k].next].next) {
        uint32_t v = rd->vals[k].next;
        if (decode_string(rd, k, &rd->key) < 0
                || find_field(rd, FIELDS, sizeof(FIELDS) / sizeof(FIELDS[0]),
                              &seen, "\"loop_block\"", &bit, &what) < 0) {
            goto done;
        }
        int r = bit == B_WALL ? read_double(rd, v, &out->loop_block_s, what)
            : bit == B_FUNCTION ? read_string(rd, v, &nf.function, what)
            : bit == B_FILE ? read_string(rd, v, &nf.file, what)
            : bit == B_SHORT_FILE ? read_string(rd, v, &nf.short_file, what)
            : bit == B_LINE ? read_uint(rd, v, RP_NONE - 1, &x, what)
            : 0;
        if (r < 0) {
            goto done;
        }
        if (bit == B_LINE) {
            out->loop_block_line = (uint32_t)x;
        }
    }
    if (!(seen & B_WALL)) {
        fail(rd, "invalid profile: \"loop_block\" has no \"wall_s\"");
        goto done;
    }
    if (seen & B_FUNCTION) {
        nf.line = out->loop_block_line;
        out->loop_block_sym = node_symbol(rd, &out->syms, &nf, 0);
        if (out->loop_block_sym == RP_NONE) {
            goto done;
        }
    }
    rc = 0;
done:
    rp_buf_free(&nf.function);
    rp_buf_free(&nf.file);
    rp_buf_free(&nf.short_file);
    return rc;
}

/* One top-level field (key in rd->key, value v); the root is kept. */
static int
read_header_field(reader *rd, uint32_t v, rp_loaded *out, unsigned *seen,
                  uint32_t *root)
{
    static const field_spec FIELDS[] = {
        {"version", "\"version\"", H_VERSION},
        {"reqprof_version", "\"reqprof_version\"", H_REQPROF_VERSION},
        {"started_at", "\"started_at\"", H_STARTED_AT},
        {"duration_s", "\"duration_s\"", H_DURATION},
        {"interval_s", "\"interval_s\"", H_INTERVAL},
        {"samples", "\"samples\"", H_SAMPLES},
        {"wall_s", "\"wall_s\"", H_WALL},
        {"cpu_s", "\"cpu_s\"", H_CPU},
        {"async_mode", "\"async_mode\"", H_ASYNC_MODE},
        {"max_depth", "\"max_depth\"", H_MAX_DEPTH},
        {"truncated", "\"truncated\"", H_TRUNCATED},
        {"truncated_reasons", "\"truncated_reasons\"", H_REASONS},
        {"meta", "\"meta\"", H_META},
        {"root", "\"root\"", H_ROOT},
        {"gc_s", "\"gc_s\"", H_GC},
        {"response_s", "\"response_s\"", H_RESPONSE},
        {"undersampled", "\"undersampled\"", H_UNDERSAMPLED},
        {"undersampled_reason", "\"undersampled_reason\"",
         H_UNDERSAMPLED_REASON},
        {"loop_block", "\"loop_block\"", H_LOOP_BLOCK},
        {"effective_interval_s", "\"effective_interval_s\"",
         H_EFFECTIVE_INTERVAL},
        {"overhead_budget_percent", "\"overhead_budget_percent\"", H_BUDGET},
        {"sampler_cpu_s", "\"sampler_cpu_s\"", H_SAMPLER_CPU},
        {"sampler_cpu_percent", "\"sampler_cpu_percent\"",
         H_SAMPLER_CPU_PERCENT},
    };
    unsigned bit;
    const char *what = "";
    uint64_t x;
    double d;
    if (find_field(rd, FIELDS, sizeof(FIELDS) / sizeof(FIELDS[0]), seen,
                   "the profile", &bit, &what) < 0) {
        return -1;
    }
    switch (bit) {
    case 0:
        return 0;   /* a field from a later schema: ignored */
    case H_VERSION:
        if (rd->vals[v].type != J_NUMBER) {
            return expect_type(rd, v, J_NUMBER, what);
        }
        if (rd->vals[v].len != 1
                || rd->text[rd->vals[v].start] != '0' + RP_SCHEMA_VERSION) {
            return fail(rd, "unsupported profile: schema version %.*s (this "
                        "reqprof reads version %d)",
                        (int)(rd->vals[v].len < 20 ? rd->vals[v].len : 20),
                        rd->text + rd->vals[v].start, RP_SCHEMA_VERSION);
        }
        return 0;
    case H_REQPROF_VERSION: {
        rp_str copy;
        if (read_string(rd, v, &rd->value, what) < 0
                || copy_buf(rd, &rd->value, &copy) < 0) {
            return -1;
        }
        free(out->version);
        out->version = copy.s;
        return 0;
    }
    case H_STARTED_AT:
        return read_double(rd, v, &out->started_at, what);
    case H_DURATION:
        return read_double(rd, v, &out->duration_s, what);
    case H_INTERVAL:
        return read_double(rd, v, &out->interval_s, what);
    case H_EFFECTIVE_INTERVAL:
        return read_double(rd, v, &out->effective_interval_s, what);
    case H_BUDGET:
        if (rd->vals[v].type == J_NULL) {
            out->budget_percent = 0.0;
            return 0;
        }
        if (read_double(rd, v, &d, what) < 0) {
            return -1;
        }
        if (!(d > 0.0 && d <= 100.0)) {
            return fail(rd, "invalid profile: %s must be null or a number "
                        "> 0 and <= 100", what);
        }
        out->budget_percent = d;
        return 0;
    case H_SAMPLER_CPU:
        out->has_sampler_cpu = rd->vals[v].type != J_NULL;
        return out->has_sampler_cpu
            ? read_ns(rd, v, &out->sampler_cpu_ns, what) : 0;
    case H_SAMPLER_CPU_PERCENT:     /* derived: checked, not kept */
        return rd->vals[v].type == J_NULL ? 0 : read_double(rd, v, &d, what);
    case H_SAMPLES:
        return read_uint(rd, v, UINT64_MAX, &x, what);
    case H_WALL:
    case H_CPU:
        return read_ns(rd, v, &x, what);
    case H_ASYNC_MODE:
        if (read_string(rd, v, &rd->value, what) < 0) {
            return -1;
        }
        for (int i = 0; i < 3; i++) {
            if (rd->value.len == strlen(MODES[i])
                    && memcmp(rd->value.data, MODES[i], rd->value.len) == 0) {
                out->async_mode = i;
                return 0;
            }
        }
        return fail(rd, "invalid profile: %s must be enabled, "
                    "disabled or strict", what);
    case H_MAX_DEPTH:
        if (read_uint(rd, v, RP_NONE - 1, &x, what) < 0) {
            return -1;
        }
        out->max_depth = (uint32_t)x;
        return 0;
    case H_TRUNCATED:
    case H_UNDERSAMPLED:
        if (rd->vals[v].type != J_TRUE && rd->vals[v].type != J_FALSE) {
            return fail(rd, "invalid profile: %s must be true or false",
                        what);
        }
        return 0;
    case H_GC:
        return read_double(rd, v, &out->gc_s, what);
    case H_RESPONSE:
        if (rd->vals[v].type == J_NULL) {
            out->response_s = 0.0;
            return 0;
        }
        return read_double(rd, v, &out->response_s, what);
    case H_UNDERSAMPLED_REASON: {
        if (rd->vals[v].type == J_NULL) {
            out->undersampled = RP_UNDERSAMPLED_NO;
            return 0;
        }
        if (read_string(rd, v, &rd->value, what) < 0) {
            return -1;
        }
        int reason = rp_undersampled_from_name(
            rd->value.data ? rd->value.data : "", rd->value.len);
        if (reason < 0) {
            return fail(rd, "invalid profile: unknown %s \"%.40s\"", what,
                        rd->value.data ? rd->value.data : "");
        }
        out->undersampled = reason;
        return 0;
    }
    case H_REASONS:
        return read_reasons(rd, v, out);
    case H_META:
        return read_meta(rd, v, out);
    case H_LOOP_BLOCK:
        return read_loop_block(rd, v, out);
    default:    /* H_ROOT */
        *root = v;
        return expect_type(rd, v, J_OBJECT, "\"root\"");
    }
}

static int
read_document(reader *rd, rp_loaded *out)
{
    unsigned seen = 0;
    uint32_t root = RP_NONE;
    if (expect_type(rd, 0, J_OBJECT, "the profile") < 0) {
        return -1;
    }
    for (uint32_t k = rd->vals[0].first; k != RP_NONE;
            k = rd->vals[rd->vals[k].next].next) {
        if (decode_string(rd, k, &rd->key) < 0
                || read_header_field(rd, rd->vals[k].next, out, &seen,
                                     &root) < 0) {
            return -1;
        }
    }
    if (!(seen & H_VERSION)) {
        return fail(rd, "invalid profile: no \"version\" (is this a reqprof "
                    "profile?)");
    }
    if (root == RP_NONE) {
        return fail(rd, "invalid profile: no \"root\"");
    }
    return build_tree(rd, root, out);
}

void
rp_loaded_free(rp_loaded *l)
{
    rp_tree_free(&l->tree);
    rp_symtab_free(&l->syms);
    for (size_t i = 0; i < l->n_meta; i++) {
        free(l->meta[i].key.s);
        free(l->meta[i].value.s);
    }
    free(l->meta);
    free(l->version);
    memset(l, 0, sizeof(*l));
    rp_symtab_init(&l->syms);
}

int
rp_read_json(const char *text, size_t n, rp_loaded *out, char *err,
             size_t err_size)
{
    reader rd;
    memset(&rd, 0, sizeof(rd));
    memset(out, 0, sizeof(*out));
    rp_symtab_init(&out->syms);
    out->loop_block_sym = RP_NONE;
    rd.text = text;
    rd.n = n;
    rd.err = err;
    rd.err_size = err_size;
    rp_buf_init(&rd.key, 0);
    rp_buf_init(&rd.value, 0);
    if (err_size > 0) {
        err[0] = '\0';
    }
    if (n > RP_READ_MAX_BYTES) {
        fail(&rd, "invalid profile: larger than %zu bytes",
             RP_READ_MAX_BYTES);
        goto done;
    }
    rd.c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    if (rd.c_locale == (locale_t)0) {
        nomem(&rd);
        goto done;
    }
    out->version = calloc(1, 1);
    if (out->version == NULL) {
        nomem(&rd);
        goto done;
    }
    if (parse(&rd) == 0) {
        read_document(&rd, out);
    }
done:
    if (rd.c_locale != (locale_t)0) {
        freelocale(rd.c_locale);
    }
    free(rd.vals);
    free(rd.sym_slots);
    rp_buf_free(&rd.key);
    rp_buf_free(&rd.value);
    if (rd.rc != RP_READ_OK) {
        rp_loaded_free(out);
    }
    return rd.rc;
}

void
rp_loaded_report(const rp_loaded *l, rp_report *r)
{
    static const char *const modes[] = {"enabled", "disabled", "strict"};
    memset(r, 0, sizeof(*r));
    r->tree = &l->tree;
    r->syms = &l->syms;
    r->version = l->version;
    r->started_at = l->started_at;
    r->duration_s = l->duration_s;
    r->interval_s = l->interval_s;
    r->effective_interval_s = l->effective_interval_s;
    r->budget_percent = l->budget_percent;
    r->has_sampler_cpu = l->has_sampler_cpu;
    r->sampler_cpu_ns = l->sampler_cpu_ns;
    r->async_mode = modes[l->async_mode >= 0 && l->async_mode < 3
                          ? l->async_mode : 0];
    r->max_depth = l->max_depth;
    r->truncated = l->truncated;
    r->gc_s = l->gc_s;
    r->response_s = l->response_s;
    r->undersampled = l->undersampled;
    r->loop_block_s = l->loop_block_s;
    r->loop_block_sym = l->loop_block_sym;
    r->loop_block_line = l->loop_block_line;
    r->meta = l->meta;
    r->n_meta = l->n_meta;
}

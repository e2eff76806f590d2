/* buf.h - a growable byte buffer for the report writers.
 *
 * Pure C (no Python). Every append returns 0 on success and -1 when memory
 * ran out; after the first failure the buffer is marked `failed`, further
 * appends are no-ops returning -1, so a writer may append freely and check
 * once at the end. The buffer never exceeds `limit` bytes (0 = no limit):
 * an append past it fails the same way.
 */
#ifndef RP_BUF_H
#define RP_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct rp_buf {
    char *data;     /* owned; NUL-terminated whenever len > 0 */
    size_t len;
    size_t cap;
    size_t limit;   /* hard cap on len, 0 = unlimited */
    int failed;     /* set on the first failed append */
} rp_buf;

void rp_buf_init(rp_buf *b, size_t limit);
/* Releases the data; the buffer is then empty, not failed, same limit. */
void rp_buf_free(rp_buf *b);
/* Empties the buffer (not failed any more) and keeps its memory. */
void rp_buf_clear(rp_buf *b);
/* Gives the data to the caller (free() it) and resets the buffer. The data
 * is NUL-terminated, "" for an empty buffer. NULL (and *len = 0) when the
 * buffer had failed (its partial data is released) or no memory is left for
 * an empty string. `len` may be NULL. */
char *rp_buf_steal(rp_buf *b, size_t *len);

/* rp_buf_put when the bytes do not fit in the room already there: grows
 * the buffer first. */
int rp_buf_put_grow(rp_buf *b, const char *s, size_t n);

/* The appends writers make most, a few bytes at a time: inline, a copy
 * when they fit in the room already there. */
static inline int
rp_buf_put(rp_buf *b, const char *s, size_t n)
{
    if (!b->failed && n < b->cap - b->len
            && (b->limit == 0 || n <= b->limit - b->len)) {
        if (n > 0) {
            memcpy(b->data + b->len, s, n);
        }
        b->len += n;
        b->data[b->len] = '\0';
        return 0;
    }
    return rp_buf_put_grow(b, s, n);
}

static inline int
rp_buf_puts(rp_buf *b, const char *s)
{
    return rp_buf_put(b, s, strlen(s));
}

static inline int
rp_buf_putc(rp_buf *b, char c)
{
    return rp_buf_put(b, &c, 1);
}
int rp_buf_printf(rp_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int rp_buf_put_u64(rp_buf *b, uint64_t v);
/* Seconds from nanoseconds, fixed 9 decimals trimmed of trailing zeros. */
int rp_buf_put_seconds(rp_buf *b, uint64_t ns);

/* Appends `s` (n bytes, any bytes) as a JSON string literal with quotes.
 * Invalid UTF-8 bytes become U+FFFD; control characters, quote, backslash
 * and the characters `<`, `>`, `&`, U+2028, U+2029 are \u-escaped, so the
 * result is safe inside an HTML <script> element too. */
int rp_buf_put_json_string(rp_buf *b, const char *s, size_t n);

/* Appends `s` (n bytes, any bytes) for a line-oriented plain-text format
 * that cannot escape: invalid UTF-8 bytes become U+FFFD; control characters
 * (C0, DEL, C1: line breaks, tabs, NUL, terminal escapes) and U+2028,
 * U+2029 become a space; the ASCII byte `from` (ignored when 0 or not
 * ASCII) becomes `to`.
 * The result never breaks a line nor drives a terminal. */
int rp_buf_put_plain(rp_buf *b, const char *s, size_t n, char from, char to);

/* Appends `s` (n bytes, any bytes) for a log line, as the Python layer's
 * printable() writes text: the C0 and C1 controls and DEL escaped ("\n",
 * "\r", "\t", else "\x1b"), and U+2028, U+2029 as "\u2028", so the text
 * never starts a line of its own nor drives a terminal. Ill-formed UTF-8
 * becomes U+FFFD per maximal subpart, as bytes.decode("utf-8", "replace")
 * does; but when `surrogates` is set, a lone surrogate in its 3-byte form
 * (a Python str encoded with "surrogatepass") is written "\udcff", as
 * printable() writes it. The result is well-formed UTF-8. */
int rp_buf_put_printable(rp_buf *b, const char *s, size_t n, int surrogates);

/* Appends x with `decimals` (at most 3) decimals, rounded on x's exact
 * binary value with ties to even: what Python's format(x, ".1f") writes,
 * "-" included for negative values and -0.0, "nan", "inf", "-inf", and
 * every digit of a large value. */
int rp_buf_put_fixed(rp_buf *b, double x, unsigned decimals);

/* Python's round(x, decimals) of a float, for decimals at most 3: the
 * double nearest to x rounded to that many decimals (ties to even, on x's
 * exact value), x itself when not finite or too large to have such
 * decimals, the sign kept (-0.0). */
double rp_round_decimals(double x, unsigned decimals);

/* Whether n bytes at s are well-formed UTF-8 (RFC 3629). */
int rp_utf8_valid(const char *s, size_t n);

/* The length of the JSON number (RFC 8259 grammar) that s[0..n) starts
 * with, or 0 when it starts with none. */
size_t rp_json_number_len(const char *s, size_t n);

#endif

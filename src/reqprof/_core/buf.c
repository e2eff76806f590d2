/* buf.c - growable byte buffer and the escapings the writers need (see
 * buf.h for the contract).
 *
 * Invariants: len <= cap; len <= limit when limit != 0; data[len] == '\0'
 * whenever data != NULL (so len < cap then). Once `failed` is set every
 * append returns -1 without touching the data, so writers append freely and
 * check once at the end. Single appends are all-or-nothing; composite ones
 * (escaping, seconds) may leave a prefix behind when they fail mid-way (the
 * buffer is failed then, so nobody reads it).
 *
 * UTF-8 is decoded strictly (RFC 3629: no overlongs, no surrogates, nothing
 * above U+10FFFF). An ill-formed sequence becomes one U+FFFD per maximal
 * subpart, as Python's "replace" error handler does, so names decoded in C
 * and in Python agree.
 */
#include "buf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIN_CAP 64u
#define BAD_CP 0xFFFFFFFFu            /* decoder result for ill-formed input */

static const char REPLACEMENT[] = "\xEF\xBF\xBD";   /* U+FFFD in UTF-8 */

void
rp_buf_init(rp_buf *b, size_t limit)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->limit = limit;
    b->failed = 0;
}

void
rp_buf_free(rp_buf *b)
{
    free(b->data);
    rp_buf_init(b, b->limit);
}

void
rp_buf_clear(rp_buf *b)
{
    b->len = 0;
    b->failed = 0;
    if (b->data != NULL) {
        b->data[0] = '\0';
    }
}

char *
rp_buf_steal(rp_buf *b, size_t *len)
{
    char *out = NULL;
    size_t n = 0;
    if (b->failed) {
        free(b->data);
    }
    else if (b->data == NULL) {
        out = malloc(1);
        if (out != NULL) {
            out[0] = '\0';
        }
    }
    else {
        out = b->data;
        n = b->len;
    }
    rp_buf_init(b, b->limit);
    if (len != NULL) {
        *len = n;
    }
    return out;
}

/* Room for `extra` more bytes plus the NUL. 0, or -1 with the buffer
 * marked failed (over the limit or out of memory). */
static int
reserve(rp_buf *b, size_t extra)
{
    size_t need, cap;
    char *data;
    if (b->failed) {
        goto done;
    }
    if (extra > SIZE_MAX - 1 - b->len
            || (b->limit != 0 && b->len + extra > b->limit)) {
        goto error;
    }
    need = b->len + extra + 1;
    if (need <= b->cap) {
        goto done;
    }
    cap = b->cap < MIN_CAP ? MIN_CAP : b->cap;
    while (cap < need) {
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    }
    if (b->limit != 0 && cap > b->limit + 1) {
        cap = b->limit + 1;     /* never more than the limit can use */
    }
    data = realloc(b->data, cap);
    if (data == NULL) {
        goto error;
    }
    b->data = data;
    b->cap = cap;
    goto done;
error:
    b->failed = 1;
done:
    return b->failed ? -1 : 0;
}

int
rp_buf_put_grow(rp_buf *b, const char *s, size_t n)
{
    int rc = reserve(b, n);
    if (rc == 0) {
        if (n > 0) {
            memcpy(b->data + b->len, s, n);
        }
        b->len += n;
        b->data[b->len] = '\0';
    }
    return rc;
}

int
rp_buf_printf(rp_buf *b, const char *fmt, ...)
{
    int rc = -1, n;
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    if (b->failed) {
        goto done;
    }
    /* Measure, then write: the second pass cannot be short. */
    n = vsnprintf(NULL, 0, fmt, ap);
    if (n < 0) {
        b->failed = 1;
        goto done;
    }
    if (reserve(b, (size_t)n) < 0) {
        goto done;
    }
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
    b->len += (size_t)n;
    rc = 0;
done:
    va_end(ap2);
    va_end(ap);
    return rc;
}

int
rp_buf_put_u64(rp_buf *b, uint64_t v)
{
    char tmp[20];               /* UINT64_MAX has 20 digits */
    size_t i = sizeof(tmp);
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    return rp_buf_put(b, tmp + i, sizeof(tmp) - i);
}

int
rp_buf_put_seconds(rp_buf *b, uint64_t ns)
{
    /* Integer arithmetic: exact, and free of the locale's decimal point. */
    char frac[10];
    uint64_t f = ns % 1000000000u;
    int n = 9;
    rp_buf_put_u64(b, ns / 1000000000u);
    if (f != 0) {
        frac[0] = '.';
        for (int i = 9; i >= 1; i--) {
            frac[i] = (char)('0' + f % 10);
            f /= 10;
        }
        while (frac[n] == '0') {
            n--;
        }
        rp_buf_put(b, frac, (size_t)n + 1);
    }
    return b->failed ? -1 : 0;
}

/* Decodes one character at s[0] (n >= 1 bytes available). Returns how many
 * bytes it takes and sets *cp, or BAD_CP for an ill-formed maximal subpart
 * (which is then what the count covers). */
static size_t
utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t need, i = 1;
    unsigned char lo = 0x80, hi = 0xBF;     /* range of the 2nd byte */
    uint32_t v = c;
    if (c < 0x80) {
        goto done;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
        v = c & 0x1Fu;
    }
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        v = c & 0x0Fu;
        if (c == 0xE0) {
            lo = 0xA0;          /* no overlongs */
        }
        else if (c == 0xED) {
            hi = 0x9F;          /* no surrogates */
        }
    }
    else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        v = c & 0x07u;
        if (c == 0xF0) {
            lo = 0x90;          /* no overlongs */
        }
        else if (c == 0xF4) {
            hi = 0x8F;          /* nothing above U+10FFFF */
        }
    }
    else {
        v = BAD_CP;             /* continuation byte, C0, C1, F5..FF */
        goto done;
    }
    for (; i <= need; i++) {
        if (i >= n || s[i] < lo || s[i] > hi) {
            v = BAD_CP;         /* the subpart so far is one error */
            goto done;
        }
        v = v << 6 | (s[i] & 0x3Fu);
        lo = 0x80;
        hi = 0xBF;
    }
done:
    *cp = v;
    return i;
}

/* Whether a JSON writer must rewrite ASCII byte c (for the fast path). */
static int
json_special(unsigned char c)
{
    return c < 0x20 || c >= 0x7F || c == '"' || c == '\\' || c == '<'
        || c == '>' || c == '&';
}

int
rp_buf_put_json_string(rp_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    rp_buf_putc(b, '"');
    while (i < n && !b->failed) {
        size_t run = i;
        while (run < n && !json_special(p[run])) {
            run++;
        }
        if (run > i) {
            rp_buf_put(b, s + i, run - i);
            i = run;
            continue;
        }
        uint32_t cp;
        size_t k = utf8_next(p + i, n - i, &cp);
        char esc[6] = {'\\', 'u', '0', '0', 0, 0};
        switch (cp) {
        case '"': rp_buf_put(b, "\\\"", 2); break;
        case '\\': rp_buf_put(b, "\\\\", 2); break;
        case '\b': rp_buf_put(b, "\\b", 2); break;
        case '\f': rp_buf_put(b, "\\f", 2); break;
        case '\n': rp_buf_put(b, "\\n", 2); break;
        case '\r': rp_buf_put(b, "\\r", 2); break;
        case '\t': rp_buf_put(b, "\\t", 2); break;
        case 0x2028: rp_buf_put(b, "\\u2028", 6); break;
        case 0x2029: rp_buf_put(b, "\\u2029", 6); break;
        case BAD_CP: rp_buf_put(b, REPLACEMENT, 3); break;
        default:
            if (cp < 0x20 || cp == 0x7F || cp == '<' || cp == '>'
                    || cp == '&') {
                esc[4] = hex[cp >> 4];
                esc[5] = hex[cp & 0xF];
                rp_buf_put(b, esc, 6);
            }
            else {
                rp_buf_put(b, s + i, k);    /* valid, copied as is */
            }
        }
        i += k;
    }
    rp_buf_putc(b, '"');
    return b->failed ? -1 : 0;
}

int
rp_buf_put_plain(rp_buf *b, const char *s, size_t n, char from, char to)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    if ((unsigned char)from >= 0x80) {
        from = 0;               /* only an ASCII byte is a whole character */
    }
    while (i < n && !b->failed) {
        size_t run = i;
        while (run < n && p[run] >= 0x20 && p[run] < 0x7F
                && (from == 0 || p[run] != (unsigned char)from)) {
            run++;
        }
        if (run > i) {
            rp_buf_put(b, s + i, run - i);
            i = run;
            continue;
        }
        uint32_t cp;
        size_t k = utf8_next(p + i, n - i, &cp);
        if (cp == BAD_CP) {
            rp_buf_put(b, REPLACEMENT, 3);
        }
        else if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || cp == 0x2028
                 || cp == 0x2029) {
            rp_buf_putc(b, ' ');
        }
        else if (from != 0 && cp == (unsigned char)from) {
            rp_buf_putc(b, to);
        }
        else {
            rp_buf_put(b, s + i, k);
        }
        i += k;
    }
    return b->failed ? -1 : 0;
}

int
rp_buf_put_printable(rp_buf *b, const char *s, size_t n, int surrogates)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n && !b->failed) {
        size_t run = i;
        while (run < n && p[run] >= 0x20 && p[run] < 0x7F) {
            run++;
        }
        if (run > i) {
            rp_buf_put(b, s + i, run - i);
            i = run;
            continue;
        }
        uint32_t cp;
        size_t k = utf8_next(p + i, n - i, &cp);
        if (cp == BAD_CP && surrogates && n - i >= 3 && p[i] == 0xED
                && p[i + 1] >= 0xA0 && p[i + 1] <= 0xBF
                && p[i + 2] >= 0x80 && p[i + 2] <= 0xBF) {
            cp = 0xD000u | (p[i + 1] & 0x3Fu) << 6 | (p[i + 2] & 0x3Fu);
            k = 3;
        }
        char esc[6] = {'\\', 'u', 0, 0, 0, 0};
        if (cp == '\n' || cp == '\r' || cp == '\t') {
            esc[1] = cp == '\n' ? 'n' : cp == '\r' ? 'r' : 't';
            rp_buf_put(b, esc, 2);
        }
        else if (cp == BAD_CP) {
            rp_buf_put(b, REPLACEMENT, 3);
        }
        else if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)) {
            esc[1] = 'x';
            esc[2] = hex[cp >> 4];
            esc[3] = hex[cp & 0xF];
            rp_buf_put(b, esc, 4);
        }
        else if (cp == 0x2028 || cp == 0x2029
                 || (cp >= 0xD800 && cp <= 0xDFFF)) {
            esc[2] = hex[cp >> 12];
            esc[3] = hex[cp >> 8 & 0xF];
            esc[4] = hex[cp >> 4 & 0xF];
            esc[5] = hex[cp & 0xF];
            rp_buf_put(b, esc, 6);
        }
        else {
            rp_buf_put(b, s + i, k);    /* valid, copied as is */
        }
        i += k;
    }
    return b->failed ? -1 : 0;
}

int
rp_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    uint32_t cp = 0;
    while (i < n && cp != BAD_CP) {
        i += utf8_next(p + i, n - i, &cp);
    }
    return cp != BAD_CP;
}

/* ---- fixed decimals, as Python formats and rounds floats ----------------
 *
 * A finite double is m * 2^e exactly (m < 2^53). Times 10^d (d <= 3) it is
 * v * 2^e with v = m * 10^d < 2^63, so the rounding to an integer is exact
 * in 64-bit integers: shift, and compare the bits shifted out with one
 * half. A value too large for that is an integer, written digit by digit
 * from a small base-10^9 number. Nothing depends on the locale. */

#define FIXED_MAX_DECIMALS 3u

static const uint64_t POW10[FIXED_MAX_DECIMALS + 1] = {1, 10, 100, 1000};

/* ax (finite, >= 0) times 10^d rounded to an integer, ties to even: 0 with
 * *q set, or -1 when that is 2^64 or more. */
static int
fixed_scaled(double ax, unsigned d, uint64_t *q)
{
    int ex;
    double f = frexp(ax, &ex);
    uint64_t m = (uint64_t)ldexp(f, 53);    /* exact: f has <= 53 bits */
    int e = ex - 53;
    uint64_t v = m * POW10[d];
    if (m == 0) {
        *q = 0;
        return 0;
    }
    if (e >= 0) {
        if (e >= 64 || v > (UINT64_MAX >> e)) {
            return -1;
        }
        *q = v << e;
        return 0;
    }
    unsigned k = (unsigned)-e;
    if (k >= 64) {
        *q = 0;         /* v / 2^k < 2^63 / 2^64: under one half */
        return 0;
    }
    uint64_t r = v & ((UINT64_C(1) << k) - 1), half = UINT64_C(1) << (k - 1);
    *q = v >> k;
    if (r > half || (r == half && (*q & 1))) {
        (*q)++;
    }
    return 0;
}

/* The digits of the integer ax (>= 2^53, finite), exactly. */
static void
put_big_integer(rp_buf *b, double ax)
{
    enum { BASE = 1000000000u, LIMBS = 40 };    /* 2^1024 < 10^309 */
    uint32_t limb[LIMBS];
    size_t n = 0;
    int ex;
    double f = frexp(ax, &ex);
    uint64_t m = (uint64_t)ldexp(f, 53);
    for (; m != 0; m /= BASE) {
        limb[n++] = (uint32_t)(m % BASE);
    }
    for (int i = 0; i < ex - 53; i++) {
        uint32_t carry = 0;
        for (size_t j = 0; j < n; j++) {
            uint32_t t = limb[j] * 2u + carry;      /* < 2^31 */
            limb[j] = t % BASE;
            carry = t / BASE;
        }
        if (carry != 0 && n < LIMBS) {
            limb[n++] = carry;
        }
    }
    rp_buf_put_u64(b, n > 0 ? limb[n - 1] : 0);
    for (size_t j = n - 1; j-- > 0;) {
        char digits[9];
        uint32_t v = limb[j];
        for (int k = 8; k >= 0; k--) {
            digits[k] = (char)('0' + v % 10);
            v /= 10;
        }
        rp_buf_put(b, digits, 9);
    }
}

int
rp_buf_put_fixed(rp_buf *b, double x, unsigned decimals)
{
    unsigned d = decimals < FIXED_MAX_DECIMALS ? decimals : FIXED_MAX_DECIMALS;
    char frac[FIXED_MAX_DECIMALS + 1] = {'.', '0', '0', '0'};
    uint64_t q;
    if (isnan(x)) {
        return rp_buf_puts(b, "nan");       /* Python writes no sign */
    }
    if (signbit(x)) {
        rp_buf_putc(b, '-');
    }
    if (isinf(x)) {
        return rp_buf_puts(b, "inf");
    }
    if (fixed_scaled(fabs(x), d, &q) < 0) {
        put_big_integer(b, fabs(x));        /* no fraction: all zeros */
    }
    else {
        rp_buf_put_u64(b, q / POW10[d]);
        q %= POW10[d];
        for (unsigned i = d; i >= 1; i--) {
            frac[i] = (char)('0' + q % 10);
            q /= 10;
        }
    }
    if (d > 0) {
        rp_buf_put(b, frac, d + 1);
    }
    return b->failed ? -1 : 0;
}

double
rp_round_decimals(double x, unsigned decimals)
{
    unsigned d = decimals < FIXED_MAX_DECIMALS ? decimals : FIXED_MAX_DECIMALS;
    uint64_t q;
    /* Past 2^53 units of 10^-d, the doubles are further apart than 10^-d:
     * the nearest to x rounded is x. */
    if (!isfinite(x) || fixed_scaled(fabs(x), d, &q) < 0
            || q >= (UINT64_C(1) << 53)) {
        return x;
    }
    return copysign((double)q / (double)POW10[d], x);
}

size_t
rp_json_number_len(const char *s, size_t n)
{
    /* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
    size_t i = 0, start, len = 0;
    if (i < n && s[i] == '-') {
        i++;
    }
    if (i < n && s[i] == '0') {
        i++;
    }
    else if (i < n && s[i] >= '1' && s[i] <= '9') {
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            i++;
        }
    }
    else {
        goto done;
    }
    if (i < n && s[i] == '.') {
        start = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            i++;
        }
        if (i == start) {
            goto done;
        }
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) {
            i++;
        }
        start = i;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            i++;
        }
        if (i == start) {
            goto done;
        }
    }
    len = i;
done:
    return len;
}

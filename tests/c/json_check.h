/* json_check.h - a JSON validity checker for the C tests and the fuzz
 * target: strict RFC 8259 (valid UTF-8, no lone surrogates), iterative so
 * that deep documents cannot overflow the stack. Header-only; each test
 * binary is one translation unit. */
#ifndef RP_JSON_CHECK_H
#define RP_JSON_CHECK_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/* ---- a JSON validity checker ------------------------------------------ */

static size_t
skip_ws(const unsigned char *s, size_t n, size_t i)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n'
                     || s[i] == '\r')) {
        i++;
    }
    return i;
}

static int
is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')
        || (c >= 'A' && c <= 'F');
}

/* A string starting at s[*i] == '"'; moves *i past it. */
static int
scan_string(const unsigned char *s, size_t n, size_t *i)
{
    size_t p = *i + 1;
    while (p < n && s[p] != '"') {
        unsigned char c = s[p];
        if (c < 0x20) {
            return 0;
        }
        if (c == '\\') {
            if (p + 1 >= n) {
                return 0;
            }
            c = s[p + 1];
            if (c == 'u') {
                if (p + 5 >= n || !is_hex(s[p + 2]) || !is_hex(s[p + 3])
                        || !is_hex(s[p + 4]) || !is_hex(s[p + 5])) {
                    return 0;
                }
                p += 6;
            }
            else if (c == '"' || c == '\\' || c == '/' || c == 'b'
                     || c == 'f' || c == 'n' || c == 'r' || c == 't') {
                p += 2;
            }
            else {
                return 0;
            }
            continue;
        }
        if (c < 0x80) {
            p++;
            continue;
        }
        /* UTF-8: decode, then reject overlongs, surrogates, > U+10FFFF. */
        size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
        uint32_t cp = c & (len == 2 ? 0x1Fu : len == 3 ? 0x0Fu : 0x07u);
        static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (len == 0 || c > 0xF7 || p + len > n) {
            return 0;
        }
        for (size_t k = 1; k < len; k++) {
            if ((s[p + k] & 0xC0) != 0x80) {
                return 0;
            }
            cp = cp << 6 | (s[p + k] & 0x3Fu);
        }
        if (cp < min_cp[len] || cp > 0x10FFFF
                || (cp >= 0xD800 && cp <= 0xDFFF)) {
            return 0;
        }
        p += len;
    }
    if (p >= n) {
        return 0;
    }
    *i = p + 1;
    return 1;
}

static int
scan_number(const unsigned char *s, size_t n, size_t *i)
{
    size_t p = *i, start;
    if (p < n && s[p] == '-') {
        p++;
    }
    if (p < n && s[p] == '0') {
        p++;
    }
    else if (p < n && s[p] >= '1' && s[p] <= '9') {
        while (p < n && s[p] >= '0' && s[p] <= '9') {
            p++;
        }
    }
    else {
        return 0;
    }
    if (p < n && s[p] == '.') {
        start = ++p;
        while (p < n && s[p] >= '0' && s[p] <= '9') {
            p++;
        }
        if (p == start) {
            return 0;
        }
    }
    if (p < n && (s[p] == 'e' || s[p] == 'E')) {
        p++;
        if (p < n && (s[p] == '+' || s[p] == '-')) {
            p++;
        }
        start = p;
        while (p < n && s[p] >= '0' && s[p] <= '9') {
            p++;
        }
        if (p == start) {
            return 0;
        }
    }
    *i = p;
    return 1;
}

/* Whether s[0..n) is exactly one JSON value. No recursion: the nesting
 * stack is on the heap. */
static int
json_valid(const char *text, size_t n)
{
    enum { VALUE, KEY, AFTER } state = VALUE;
    const unsigned char *s = (const unsigned char *)text;
    char *stack = malloc(n + 1);
    size_t depth = 0, i = 0;
    int ok = 0;
    if (stack == NULL) {
        return 0;
    }
    for (;;) {
        i = skip_ws(s, n, i);
        if (state == AFTER && depth == 0) {
            ok = i == n;
            break;
        }
        if (i >= n) {
            break;
        }
        if (state == VALUE) {
            unsigned char c = s[i];
            if (c == '{' || c == '[') {
                stack[depth++] = (char)c;
                i = skip_ws(s, n, i + 1);
                if (i < n && s[i] == (c == '{' ? '}' : ']')) {
                    depth--;
                    i++;
                    state = AFTER;
                }
                else {
                    state = c == '{' ? KEY : VALUE;
                }
            }
            else if (c == '"') {
                if (!scan_string(s, n, &i)) {
                    break;
                }
                state = AFTER;
            }
            else if (n - i >= 4 && memcmp(s + i, "true", 4) == 0) {
                i += 4;
                state = AFTER;
            }
            else if (n - i >= 5 && memcmp(s + i, "false", 5) == 0) {
                i += 5;
                state = AFTER;
            }
            else if (n - i >= 4 && memcmp(s + i, "null", 4) == 0) {
                i += 4;
                state = AFTER;
            }
            else if (scan_number(s, n, &i)) {
                state = AFTER;
            }
            else {
                break;
            }
        }
        else if (state == KEY) {
            if (s[i] != '"' || !scan_string(s, n, &i)) {
                break;
            }
            i = skip_ws(s, n, i);
            if (i >= n || s[i] != ':') {
                break;
            }
            i++;
            state = VALUE;
        }
        else {
            char top = stack[depth - 1];
            if (s[i] == ',') {
                i++;
                state = top == '{' ? KEY : VALUE;
            }
            else if (s[i] == (top == '{' ? '}' : ']')) {
                depth--;
                i++;
            }
            else {
                break;
            }
        }
    }
    free(stack);
    return ok;
}

#endif

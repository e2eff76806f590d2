/* test_buf.c - the byte buffer (buf.c): appends, limits, number formats,
 * JSON string escaping, plain-text cleaning, the log line's escaping, and
 * fixed decimals and rounding as Python does them (checked against the C
 * library's exact printf and strtod).
 *
 * Allocation failure is not tested: it needs a malloc hook.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "buf.h"
#include "check.h"

#define FFFD "\xEF\xBF\xBD"

/* The JSON literal for `in` (a string literal, NULs allowed) is `want`. */
#define JSON_IS(in, want)                                                   \
    do {                                                                    \
        rp_buf b_;                                                          \
        rp_buf_init(&b_, 0);                                                \
        CHECK(rp_buf_put_json_string(&b_, (in), sizeof(in) - 1) == 0);      \
        CHECK_BUF(&b_, want);                                               \
        rp_buf_free(&b_);                                                   \
    } while (0)

#define PLAIN_IS(in, from, to, want)                                        \
    do {                                                                    \
        rp_buf b_;                                                          \
        rp_buf_init(&b_, 0);                                                \
        CHECK(rp_buf_put_plain(&b_, (in), sizeof(in) - 1, (from), (to))     \
              == 0);                                                        \
        CHECK_BUF(&b_, want);                                               \
        rp_buf_free(&b_);                                                   \
    } while (0)

/* rp_buf_put_printable of `in` (surrogates escaped or not) is `want`. */
#define PRINTABLE_IS(in, surrogates, want)                                  \
    do {                                                                    \
        rp_buf b_;                                                          \
        rp_buf_init(&b_, 0);                                                \
        CHECK(rp_buf_put_printable(&b_, (in), sizeof(in) - 1, (surrogates)) \
              == 0);                                                        \
        CHECK_BUF(&b_, want);                                               \
        CHECK(rp_utf8_valid(b_.data ? b_.data : "", b_.len));               \
        rp_buf_free(&b_);                                                   \
    } while (0)

#define FIXED_IS(x, decimals, want)                                         \
    do {                                                                    \
        rp_buf b_;                                                          \
        rp_buf_init(&b_, 0);                                                \
        CHECK(rp_buf_put_fixed(&b_, (x), (decimals)) == 0);                 \
        CHECK_BUF(&b_, want);                                               \
        rp_buf_free(&b_);                                                   \
    } while (0)

#define SECONDS_ARE(ns, want)                                               \
    do {                                                                    \
        rp_buf b_;                                                          \
        rp_buf_init(&b_, 0);                                                \
        CHECK(rp_buf_put_seconds(&b_, (ns)) == 0);                          \
        CHECK_BUF(&b_, want);                                               \
        rp_buf_free(&b_);                                                   \
    } while (0)

static void
test_appends_keep_data_nul_terminated(void)
{
    rp_buf b;
    rp_buf_init(&b, 0);
    CHECK(b.data == NULL && b.len == 0 && !b.failed);
    CHECK(rp_buf_put(&b, "ab", 2) == 0);
    CHECK(rp_buf_puts(&b, "cd") == 0);
    CHECK(rp_buf_putc(&b, 'e') == 0);
    CHECK(rp_buf_put(&b, "x\0y", 3) == 0);
    CHECK(rp_buf_put(&b, NULL, 0) == 0);
    CHECK(rp_buf_printf(&b, "[%d|%s|%05.1f]", -42, "str", 2.25) == 0);
    CHECK(rp_buf_put_u64(&b, 0) == 0);
    CHECK(rp_buf_putc(&b, ' ') == 0);
    CHECK(rp_buf_put_u64(&b, UINT64_MAX) == 0);
    CHECK_BUF(&b, "abcdex\0y[-42|str|002.2]0 18446744073709551615");
    CHECK(b.data[b.len] == '\0');
    CHECK(b.len < b.cap);
    rp_buf_clear(&b);
    CHECK(b.len == 0 && b.data != NULL && b.data[0] == '\0');
    rp_buf_free(&b);
    CHECK(b.data == NULL && b.len == 0 && b.cap == 0);
}

static void
test_grows_to_megabytes(void)
{
    rp_buf b;
    char chunk[1000];
    memset(chunk, 'z', sizeof(chunk));
    rp_buf_init(&b, 0);
    for (int i = 0; i < 2000; i++) {
        CHECK(rp_buf_put(&b, chunk, sizeof(chunk)) == 0);
    }
    CHECK(rp_buf_printf(&b, "%s", "end") == 0);
    CHECK_EQ_U64(b.len, 2000003);
    CHECK(memcmp(b.data + 1999999, "zend", 5) == 0);
    /* printf longer than the room left */
    rp_buf_clear(&b);
    CHECK(rp_buf_printf(&b, "%3000d", 7) == 0);
    CHECK_EQ_U64(b.len, 3000);
    CHECK(b.data[2999] == '7' && b.data[3000] == '\0');
    rp_buf_free(&b);
}

static void
test_steal_gives_string_and_resets(void)
{
    rp_buf b;
    size_t n = 99;
    rp_buf_init(&b, 100);
    char *s = rp_buf_steal(&b, &n);
    CHECK(s != NULL && n == 0 && s[0] == '\0');
    free(s);
    rp_buf_puts(&b, "hello");
    s = rp_buf_steal(&b, &n);
    CHECK(s != NULL && n == 5);
    CHECK_STR(s, "hello");
    free(s);
    CHECK(b.data == NULL && b.len == 0 && b.limit == 100);
    s = rp_buf_steal(&b, NULL);
    CHECK(s != NULL);
    free(s);
}

static void
test_limit_fails_appends_past_it_and_sticks(void)
{
    rp_buf b;
    rp_buf_init(&b, 10);
    CHECK(rp_buf_put(&b, "0123456789", 10) == 0);
    CHECK(!b.failed);
    CHECK(b.cap <= 11);
    CHECK(rp_buf_putc(&b, 'x') == -1);
    CHECK(b.failed);
    CHECK_BUF(&b, "0123456789");
    /* After a failure everything fails, even what would fit. */
    CHECK(rp_buf_put(&b, "", 0) == -1);
    CHECK(rp_buf_printf(&b, "%s", "") == -1);
    CHECK(rp_buf_put_u64(&b, 1) == -1);
    CHECK(rp_buf_put_seconds(&b, 1) == -1);
    CHECK(rp_buf_put_json_string(&b, "", 0) == -1);
    CHECK(rp_buf_put_plain(&b, "a", 1, 0, 0) == -1);
    CHECK_EQ_U64(b.len, 10);
    size_t n = 5;
    CHECK(rp_buf_steal(&b, &n) == NULL);    /* partial data is no result */
    CHECK_EQ_U64(n, 0);
    CHECK(!b.failed);
    rp_buf_free(&b);

    /* Each kind of append respects the limit. */
    rp_buf_init(&b, 4);
    CHECK(rp_buf_printf(&b, "%d", 12345) == -1);
    CHECK_EQ_U64(b.len, 0);
    rp_buf_clear(&b);
    CHECK(rp_buf_put_u64(&b, 12345) == -1);
    rp_buf_clear(&b);
    CHECK(rp_buf_put_seconds(&b, 1500000) == -1);   /* "0.0015" */
    rp_buf_clear(&b);
    CHECK(rp_buf_put_json_string(&b, "abc", 3) == -1);   /* 5 bytes */
    CHECK(b.len <= 4);
    rp_buf_clear(&b);
    CHECK(rp_buf_put_json_string(&b, "ab", 2) == 0);
    CHECK_BUF(&b, "\"ab\"");
    rp_buf_clear(&b);
    CHECK(rp_buf_put_json_string(&b, "<", 1) == -1);     /* \u003c */
    rp_buf_clear(&b);
    CHECK(rp_buf_put_plain(&b, "\xff\xff", 2, 0, 0) == -1);
    CHECK(b.len <= 4);
    rp_buf_free(&b);
}

static void
test_seconds_trim_trailing_zeros(void)
{
    SECONDS_ARE(0, "0");
    SECONDS_ARE(1, "0.000000001");
    SECONDS_ARE(100, "0.0000001");
    SECONDS_ARE(1500000, "0.0015");
    SECONDS_ARE(999999999, "0.999999999");
    SECONDS_ARE(1000000000, "1");
    SECONDS_ARE(1000000001, "1.000000001");
    SECONDS_ARE(2000000000, "2");
    SECONDS_ARE(2500000000u, "2.5");
    SECONDS_ARE(1234567890123ull, "1234.567890123");
    SECONDS_ARE(UINT64_MAX, "18446744073.709551615");
}

static void
test_json_escapes_every_control_character(void)
{
    rp_buf b;
    rp_buf_init(&b, 0);
    for (int c = 0; c < 0x20; c++) {
        char in = (char)c;
        char want[16];
        const char *named = c == '\b' ? "\\b" : c == '\t' ? "\\t"
                          : c == '\n' ? "\\n" : c == '\f' ? "\\f"
                          : c == '\r' ? "\\r" : NULL;
        if (named != NULL) {
            snprintf(want, sizeof(want), "\"%s\"", named);
        }
        else {
            snprintf(want, sizeof(want), "\"\\u%04x\"", c);
        }
        rp_buf_clear(&b);
        CHECK(rp_buf_put_json_string(&b, &in, 1) == 0);
        CHECK_MEM(b.data, b.len, want, strlen(want));
    }
    rp_buf_free(&b);
    JSON_IS("\x7f", "\"\\u007f\"");
    JSON_IS("a\0b\0", "\"a\\u0000b\\u0000\"");
    JSON_IS("", "\"\"");
}

static void
test_json_escapes_quotes_and_html(void)
{
    JSON_IS("say \"hi\"", "\"say \\\"hi\\\"\"");
    JSON_IS("C:\\dir\\", "\"C:\\\\dir\\\\\"");
    JSON_IS("</script><script>alert(1)</script>",
            "\"\\u003c/script\\u003e\\u003cscript\\u003ealert(1)"
            "\\u003c/script\\u003e\"");
    JSON_IS("a & b", "\"a \\u0026 b\"");
    JSON_IS("<!--", "\"\\u003c!--\"");
    JSON_IS("/ ' `", "\"/ ' `\"");
    /* U+2028 and U+2029 end a line in JavaScript before ES2019. */
    JSON_IS("a\xE2\x80\xA8" "b\xE2\x80\xA9", "\"a\\u2028b\\u2029\"");
    JSON_IS("\xE2\x80\xA7\xE2\x80\xAA", "\"\xE2\x80\xA7\xE2\x80\xAA\"");
}

static void
test_json_keeps_valid_utf8(void)
{
    JSON_IS("caf\xC3\xA9", "\"caf\xC3\xA9\"");
    JSON_IS("\xC2\x80\xC2\x85", "\"\xC2\x80\xC2\x85\"");        /* C1: legal */
    JSON_IS("\xE2\x82\xAC", "\"\xE2\x82\xAC\"");                /* euro */
    JSON_IS("\xE0\xA0\x80", "\"\xE0\xA0\x80\"");                /* U+0800 */
    JSON_IS("\xED\x9F\xBF", "\"\xED\x9F\xBF\"");                /* U+D7FF */
    JSON_IS("\xEE\x80\x80", "\"\xEE\x80\x80\"");                /* U+E000 */
    JSON_IS("\xEF\xBF\xBF", "\"\xEF\xBF\xBF\"");                /* U+FFFF */
    JSON_IS("\xF0\x90\x80\x80", "\"\xF0\x90\x80\x80\"");        /* U+10000 */
    JSON_IS("\xF0\x9F\x98\x80", "\"\xF0\x9F\x98\x80\"");        /* emoji */
    JSON_IS("\xF4\x8F\xBF\xBF", "\"\xF4\x8F\xBF\xBF\"");        /* max */
    JSON_IS(FFFD, "\"" FFFD "\"");
}

/* One U+FFFD per maximal ill-formed subpart (Python's "replace"). */
static void
test_json_replaces_invalid_utf8(void)
{
    JSON_IS("\x80", "\"" FFFD "\"");                     /* lone continuation */
    JSON_IS("a\xBFz", "\"a" FFFD "z\"");
    JSON_IS("\xFF\xFE", "\"" FFFD FFFD "\"");
    JSON_IS("\xF5\x80\x80\x80", "\"" FFFD FFFD FFFD FFFD "\"");   /* > F4 */
    /* overlong encodings */
    JSON_IS("\xC0\x80", "\"" FFFD FFFD "\"");            /* NUL, overlong */
    JSON_IS("\xC1\xBF", "\"" FFFD FFFD "\"");
    JSON_IS("\xC0\xBC/script>", "\"" FFFD FFFD "/script\\u003e\"");
    JSON_IS("\xE0\x80\xAF", "\"" FFFD FFFD FFFD "\"");
    JSON_IS("\xE0\x9F\xBF", "\"" FFFD FFFD FFFD "\"");
    JSON_IS("\xF0\x80\x80\xAF", "\"" FFFD FFFD FFFD FFFD "\"");
    JSON_IS("\xF0\x8F\xBF\xBF", "\"" FFFD FFFD FFFD FFFD "\"");
    /* surrogates encoded in UTF-8 (CESU, surrogateescape'd names) */
    JSON_IS("\xED\xA0\x80", "\"" FFFD FFFD FFFD "\"");
    JSON_IS("\xED\xBF\xBF", "\"" FFFD FFFD FFFD "\"");
    JSON_IS("\xED\xA0\xBD\xED\xB8\x80",
            "\"" FFFD FFFD FFFD FFFD FFFD FFFD "\"");
    /* above U+10FFFF */
    JSON_IS("\xF4\x90\x80\x80", "\"" FFFD FFFD FFFD FFFD "\"");
    /* truncated sequences: one U+FFFD for the valid prefix */
    JSON_IS("\xE2\x82", "\"" FFFD "\"");
    JSON_IS("\xE2\x82z", "\"" FFFD "z\"");
    JSON_IS("\xF0\x9F\x98", "\"" FFFD "\"");
    JSON_IS("\xF0\x9F\x98<", "\"" FFFD "\\u003c\"");
    JSON_IS("\xC3", "\"" FFFD "\"");
    JSON_IS("\xC3\xC3\xA9", "\"" FFFD "\xC3\xA9\"");
    JSON_IS("\xE2\x80\"", "\"" FFFD "\\\"\"");
    /* NUL inside a sequence */
    JSON_IS("\xE2\0\x82", "\"" FFFD "\\u0000" FFFD "\"");
}

static void
test_plain_replaces_controls_and_invalid_utf8(void)
{
    PLAIN_IS("one\ntwo\r\nthree\tfour", 0, 0, "one two  three four");
    PLAIN_IS("a\0b", 0, 0, "a b");
    PLAIN_IS("\x1b[31mred\x1b[0m", 0, 0, " [31mred [0m");
    PLAIN_IS("\x7f|\xC2\x85|\xC2\x9B|\xC2\xA0", 0, 0, " | | |\xC2\xA0");
    PLAIN_IS("a\xE2\x80\xA8" "b\xE2\x80\xA9" "c", 0, 0, "a b c");
    PLAIN_IS("\xff\xED\xA0\x80 \xE2\x82", 0, 0,
             FFFD FFFD FFFD FFFD " " FFFD);
    PLAIN_IS("caf\xC3\xA9 </script> \"q\" \\", 0, 0,
             "caf\xC3\xA9 </script> \"q\" \\");
    PLAIN_IS("a;b;;c", ';', ':', "a:b::c");
    PLAIN_IS("a;b\n", 0, ':', "a;b ");
    PLAIN_IS("\xC3\xA9;", (char)0xE9, 'x', "\xC3\xA9;");   /* not ASCII */
    PLAIN_IS("", ';', ':', "");
}

/* What Python's printable() writes: named escapes for \n \r \t, \xNN for
 * the other C0 and C1 controls and DEL, \u2028 and \u2029; the rest kept. */
static void
test_printable_escapes_controls_as_python_does(void)
{
    PRINTABLE_IS("GET /items/{id}?q=1", 0, "GET /items/{id}?q=1");
    PRINTABLE_IS("a\nb\rc\td", 0, "a\\nb\\rc\\td");
    PRINTABLE_IS("\x00\x01\x1b[2J\x1f", 0, "\\x00\\x01\\x1b[2J\\x1f");
    PRINTABLE_IS("\x7f \xC2\x80 \xC2\x85 \xC2\x9f \xC2\xA0", 0,
                 "\\x7f \\x80 \\x85 \\x9f \xC2\xA0");
    PRINTABLE_IS("a\xE2\x80\xA8" "b\xE2\x80\xA9" "c\xE2\x80\xAA", 0,
                 "a\\u2028b\\u2029c\xE2\x80\xAA");
    PRINTABLE_IS("caf\xC3\xA9 \xF0\x9F\x94\xA5 " FFFD " \\ \"", 0,
                 "caf\xC3\xA9 \xF0\x9F\x94\xA5 " FFFD " \\ \"");
    PRINTABLE_IS("", 1, "");
}

/* Bytes that are not UTF-8 become U+FFFD as bytes.decode("utf-8",
 * "replace") makes them; with `surrogates`, the 3-byte form of a lone
 * surrogate is "\udcxx", as printable() writes a str's lone surrogate. */
static void
test_printable_replaces_or_escapes_ill_formed_utf8(void)
{
    PRINTABLE_IS("a\xff\x80z", 0, "a" FFFD FFFD "z");
    PRINTABLE_IS("\xE2\x80", 0, FFFD);
    PRINTABLE_IS("\xE2\x80\n", 0, FFFD "\\n");
    PRINTABLE_IS("\xC0\x8A", 0, FFFD FFFD);          /* an overlong \n */
    PRINTABLE_IS("\xED\xB3\xBF", 0, FFFD FFFD FFFD);
    PRINTABLE_IS("\xED\xB3\xBF", 1, "\\udcff");
    PRINTABLE_IS("\xED\xA0\x80\xED\xBF\xBF", 1, "\\ud800\\udfff");
    PRINTABLE_IS("\xED\xA0\xBD\xED\xB8\x80", 1, "\\ud83d\\ude00");
    PRINTABLE_IS("x\xED\xA0", 1, "x" FFFD FFFD);      /* cut short */
    PRINTABLE_IS("\xff\xED\xB3\xBF\n", 1, FFFD "\\udcff\\n");
    CHECK(rp_utf8_valid("caf\xC3\xA9", 5));
    CHECK(!rp_utf8_valid("\xED\xB3\xBF", 3));
    CHECK(!rp_utf8_valid("a\xE2\x80", 3));
    CHECK(rp_utf8_valid("", 0));
}

/* A random double of any magnitude (finite or not), from its bits. */
static double
random_double(uint64_t *state)
{
    double x;
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    uint64_t bits = *state;
    memcpy(&x, &bits, sizeof(x));
    return x;
}

/* Python's format(x, ".Nf"), which the C library's printf writes too (in
 * the C locale, exactly, ties to even), but for NaN: never "-nan". */
static void
test_fixed_decimals_as_python_formats_them(void)
{
    FIXED_IS(0.25, 1, "0.2");
    FIXED_IS(0.75, 1, "0.8");
    FIXED_IS(2.5, 0, "2");
    FIXED_IS(3.5, 0, "4");
    FIXED_IS(1.25 * 1000.0, 0, "1250");
    FIXED_IS(0.0, 1, "0.0");
    FIXED_IS(-0.0, 1, "-0.0");
    FIXED_IS(-0.04, 0, "-0");
    FIXED_IS(5e-324, 1, "0.0");
    FIXED_IS(12.3455, 3, "12.345");     /* 12.3454999... in binary */
    FIXED_IS(NAN, 1, "nan");
    FIXED_IS(-NAN, 1, "nan");
    FIXED_IS(INFINITY, 0, "inf");
    FIXED_IS(-INFINITY, 1, "-inf");
    FIXED_IS(1e17, 1, "100000000000000000.0");
    FIXED_IS(18446744073709551616.0, 0, "18446744073709551616");
    FIXED_IS(1.5, 9, "1.500");          /* at most 3 decimals */
    uint64_t state = 0x9E3779B97F4A7C15u;
    char want[400];
    for (int i = 0; i < 200000; i++) {
        double x = random_double(&state);
        if (i % 2 == 0) {
            x = ldexp(frexp(x, &(int){0}), (int)(state % 90) - 30);
        }
        if (isnan(x)) {
            continue;
        }
        unsigned d = (unsigned)(state >> 60) % 4;
        rp_buf b;
        rp_buf_init(&b, 0);
        rp_buf_put_fixed(&b, x, d);
        snprintf(want, sizeof(want), "%.*f", (int)d, x);
        check_mem_at(__FILE__, __LINE__, "fixed vs printf", b.data, b.len,
                     want, strlen(want));
        rp_buf_free(&b);
    }
}

/* Python's round(x, 3): the double nearest to the decimal that printf
 * rounds x to (what CPython does, with its own dtoa and strtod). */
static void
test_round_decimals_as_python_rounds(void)
{
    CHECK(rp_round_decimals(2.675, 2) == 2.67);
    CHECK(rp_round_decimals(0.0005, 3) == 0.001);
    CHECK(rp_round_decimals(0.0015, 3) == 0.002);
    CHECK(rp_round_decimals(12.3455, 3) == 12.345);
    CHECK(signbit(rp_round_decimals(-0.0001, 3)));
    CHECK(signbit(rp_round_decimals(-0.0, 3)));
    CHECK(!signbit(rp_round_decimals(0.0, 3)));
    CHECK(isnan(rp_round_decimals(NAN, 3)));
    CHECK(rp_round_decimals(INFINITY, 3) == INFINITY);
    CHECK(rp_round_decimals(1e300, 3) == 1e300);
    CHECK(rp_round_decimals(9007199254740.993, 3) == 9007199254740.993);
    uint64_t state = 0x2545F4914F6CDD1Du;
    char text[400];
    for (int i = 0; i < 200000; i++) {
        double x = random_double(&state);
        x = ldexp(frexp(x, &(int){0}), (int)(state % 60) - 20);
        if (isnan(x)) {
            continue;
        }
        unsigned d = (unsigned)(state >> 60) % 4;
        snprintf(text, sizeof(text), "%.*f", (int)d, x);
        double want = strtod(text, NULL), got = rp_round_decimals(x, d);
        check_count++;
        if (memcmp(&got, &want, sizeof(got)) != 0) {
            CHECK_FAIL_AT(__FILE__, __LINE__, "round(%.17g, %u): %.17g != %.17g",
                          x, d, got, want);
        }
    }
}

int
main(void)
{
    RUN(test_appends_keep_data_nul_terminated);
    RUN(test_grows_to_megabytes);
    RUN(test_steal_gives_string_and_resets);
    RUN(test_limit_fails_appends_past_it_and_sticks);
    RUN(test_seconds_trim_trailing_zeros);
    RUN(test_json_escapes_every_control_character);
    RUN(test_json_escapes_quotes_and_html);
    RUN(test_json_keeps_valid_utf8);
    RUN(test_json_replaces_invalid_utf8);
    RUN(test_plain_replaces_controls_and_invalid_utf8);
    RUN(test_printable_escapes_controls_as_python_does);
    RUN(test_printable_replaces_or_escapes_ill_formed_utf8);
    RUN(test_fixed_decimals_as_python_formats_them);
    RUN(test_round_decimals_as_python_rounds);
    return check_summary();
}

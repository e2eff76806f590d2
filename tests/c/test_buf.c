/* test_buf.c - the byte buffer (buf.c): appends, limits, number formats,
 * JSON string escaping and plain-text cleaning.
 *
 * Allocation failure is not tested: it needs a malloc hook.
 */
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
    return check_summary();
}

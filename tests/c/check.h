/* check.h - a tiny assertion framework for the C unit tests.
 *
 * Each test is a `static void test_xxx(void)` run with RUN(test_xxx); a
 * failed check prints file:line and what differed, counts, and the test
 * goes on (so one run shows every failure). main ends with
 * `return check_summary();`, non-zero when anything failed.
 *
 * One test binary is one translation unit, so the counters below are the
 * binary's only global state.
 */
#ifndef RP_CHECK_H
#define RP_CHECK_H

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int check_failures;
static int check_count;
static const char *check_current = "";

#define CHECK_FAIL_AT(file, line, ...)                                      \
    do {                                                                    \
        check_failures++;                                                   \
        fprintf(stderr, "%s:%d: FAIL in %s: ", (file), (line),              \
                check_current);                                             \
        fprintf(stderr, __VA_ARGS__);                                       \
        fputc('\n', stderr);                                                \
    } while (0)

#define CHECK(cond)                                                         \
    do {                                                                    \
        check_count++;                                                      \
        if (!(cond)) {                                                      \
            CHECK_FAIL_AT(__FILE__, __LINE__, "CHECK(%s)", #cond);          \
        }                                                                   \
    } while (0)

#define CHECK_EQ_U64(a, b)                                                  \
    do {                                                                    \
        uint64_t check_a_ = (uint64_t)(a), check_b_ = (uint64_t)(b);        \
        check_count++;                                                      \
        if (check_a_ != check_b_) {                                         \
            CHECK_FAIL_AT(__FILE__, __LINE__,                               \
                          "%s == %s: %" PRIu64 " != %" PRIu64, #a, #b,      \
                          check_a_, check_b_);                              \
        }                                                                   \
    } while (0)

/* Prints n bytes readably: printable ASCII as is, the rest as \xNN. */
static inline void
check_print_bytes(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7F && c != '\\') {
            fputc(c, stderr);
        }
        else if (c == '\n') {
            fputs("\\n\n", stderr);     /* keep long outputs readable */
        }
        else {
            fprintf(stderr, "\\x%02x", c);
        }
    }
}

static inline void
check_mem_at(const char *file, int line, const char *what,
             const char *got, size_t got_n, const char *want, size_t want_n)
{
    check_count++;
    if (got_n == want_n && (want_n == 0 || memcmp(got, want, want_n) == 0)) {
        return;
    }
    size_t i = 0;
    while (i < got_n && i < want_n && got[i] == want[i]) {
        i++;
    }
    CHECK_FAIL_AT(file, line, "%s: bytes differ at offset %zu", what, i);
    fputs("--- got:\n", stderr);
    check_print_bytes(got, got_n);
    fputs("\n--- want:\n", stderr);
    check_print_bytes(want, want_n);
    fputs("\n---\n", stderr);
}

/* Bytes (may hold NULs) equal. */
#define CHECK_MEM(got, got_n, want, want_n)                                 \
    check_mem_at(__FILE__, __LINE__, #got, (got), (got_n), (want), (want_n))

/* An rp_buf's content equals the string literal `want` (NULs allowed). */
#define CHECK_BUF(buf, want)                                                \
    check_mem_at(__FILE__, __LINE__, #buf,                                  \
                 (buf)->data ? (buf)->data : "", (buf)->len,                \
                 (want), sizeof(want) - 1)

/* C strings equal. */
#define CHECK_STR(got, want)                                                \
    do {                                                                    \
        const char *check_g_ = (got), *check_w_ = (want);                   \
        if (check_g_ == NULL || check_w_ == NULL) {                         \
            check_count++;                                                  \
            if (check_g_ != check_w_) {                                     \
                CHECK_FAIL_AT(__FILE__, __LINE__, "%s: NULL vs non-NULL",   \
                              #got);                                        \
            }                                                               \
        }                                                                   \
        else {                                                              \
            check_mem_at(__FILE__, __LINE__, #got, check_g_,                \
                         strlen(check_g_), check_w_, strlen(check_w_));     \
        }                                                                   \
    } while (0)

/* Whether `needle` (n bytes) occurs in s (len bytes). */
static inline int
check_contains(const char *s, size_t len, const char *needle, size_t n)
{
    for (size_t i = 0; n <= len && i <= len - n; i++) {
        if (memcmp(s + i, needle, n) == 0) {
            return 1;
        }
    }
    return 0;
}

#define CHECK_CONTAINS(buf, lit)                                            \
    do {                                                                    \
        check_count++;                                                      \
        if (!check_contains((buf)->data ? (buf)->data : "", (buf)->len,     \
                            (lit), sizeof(lit) - 1)) {                      \
            CHECK_FAIL_AT(__FILE__, __LINE__, "%s does not contain %s",     \
                          #buf, #lit);                                      \
        }                                                                   \
    } while (0)

#define CHECK_NOT_CONTAINS(buf, lit)                                        \
    do {                                                                    \
        check_count++;                                                      \
        if (check_contains((buf)->data ? (buf)->data : "", (buf)->len,      \
                           (lit), sizeof(lit) - 1)) {                       \
            CHECK_FAIL_AT(__FILE__, __LINE__, "%s contains %s", #buf,       \
                          #lit);                                            \
        }                                                                   \
    } while (0)

#define RUN(test)                                                           \
    do {                                                                    \
        int check_before_ = check_failures;                                 \
        check_current = #test;                                              \
        test();                                                             \
        printf("%s %s\n", check_failures == check_before_ ? "ok  " : "FAIL",\
               #test);                                                      \
    } while (0)

static inline int
check_summary(void)
{
    printf("%d checks, %d failed\n", check_count, check_failures);
    return check_failures != 0;
}

#endif

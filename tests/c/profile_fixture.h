/* profile_fixture.h - hand-built profiles for the writer tests of
 * test_writers.c, test_speedscope.c and test_pprof.c: a small request,
 * hostile names, an
 * empty tree and a deep chain.
 *
 * Header-only: one test binary is one translation unit.
 */
#ifndef RP_PROFILE_FIXTURE_H
#define RP_PROFILE_FIXTURE_H

#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "report.h"
#include "writers.h"

#define MS 1000000ull
#define FFFD "\xEF\xBF\xBD"

typedef struct fixture {
    rp_tree tree;
    rp_symtab syms;
    rp_meta_item meta[5];
    rp_report report;
} fixture;

static inline uint32_t
fx_sym(rp_symtab *st, rp_kind kind, const char *function, const char *file,
       const char *short_file, uint32_t line)
{
    return rp_symtab_add(st, kind, function, strlen(function), file,
                         strlen(file), short_file, strlen(short_file), line);
}

static inline void
fx_report(fixture *f)
{
    memset(&f->report, 0, sizeof(f->report));
    f->report.tree = &f->tree;
    f->report.syms = &f->syms;
    f->report.version = "1.2.3";
    f->report.started_at = 1700000000.25;
    f->report.duration_s = 0.007;
    f->report.interval_s = 0.001;
    f->report.async_mode = "enabled";
    f->report.max_depth = 128;
}

/*  handler (app.py:10)          wall 6   cpu 3   self 0.5 (line 11)  4 samples
 *    slow (app.py:20)           wall 4   cpu 1   self 1   (line 21)  2
 *      [await]                  wall 3   cpu 0   self 3   (line 22)  1
 *    fast (lib/fast.py:30)      wall 1.5 cpu 1.5 self 1.5 (line 31)  1
 */
static inline void
fx_small(fixture *f)
{
    const uint32_t slow_await[] = {1, 2}, slow[] = {1}, fast[] = {3};
    rp_symtab_init(&f->syms);
    fx_sym(&f->syms, RP_KIND_FRAME, "handler", "/app/app.py", "app.py", 10);
    fx_sym(&f->syms, RP_KIND_FRAME, "slow", "/app/app.py", "app.py", 20);
    fx_sym(&f->syms, RP_KIND_AWAIT, "[await]", "", "", 0);
    fx_sym(&f->syms, RP_KIND_FRAME, "fast",
           "/venv/lib/python3.12/site-packages/lib/fast.py", "lib/fast.py",
           30);
    CHECK_EQ_U64(f->syms.n, 4);
    CHECK(rp_tree_init(&f->tree, 0, 1000, 0) == 0);
    /* slow is created before fast: the writers must sort, not list. */
    rp_tree_add_sample(&f->tree, slow_await, 2, 22, 3 * MS, 0);
    rp_tree_add_sample(&f->tree, fast, 1, 31, 3 * MS / 2, 3 * MS / 2);
    rp_tree_add_sample(&f->tree, slow, 1, 21, MS, MS);
    rp_tree_add_sample(&f->tree, NULL, 0, 11, MS / 2, MS / 2);
    fx_report(f);
    f->report.truncated = RP_REPORT_TRUNC_DEPTH;
    f->meta[0] = (rp_meta_item){{"method", 6}, {"GET", 3}, 0};
    f->meta[1] = (rp_meta_item){{"path", 4}, {"/x</script>", 11}, 0};
    f->meta[2] = (rp_meta_item){{"status", 6}, {"200", 3}, 1};
    f->meta[3] = (rp_meta_item){{"bogus", 5}, {"1; alert(1)", 11}, 1};
    f->meta[4] = (rp_meta_item){{"exception", 9}, {"null", 4}, 1};
    f->report.meta = f->meta;
    f->report.n_meta = 5;
}

/* A name with everything a format can choke on. */
static const char FX_HOSTILE[] =
    "a;b\nc\0d\t</script>\"\\\xff\x1b[2J&\xE2\x80\xA8z";

/*  root (r.py:1) -> HOSTILE (\xff.py:9) -> [thread \x1b]0;x\x07] */
static inline void
fx_hostile(fixture *f)
{
    const uint32_t p[] = {1, 2};
    rp_symtab_init(&f->syms);
    fx_sym(&f->syms, RP_KIND_FRAME, "root", "r.py", "r.py", 1);
    rp_symtab_add(&f->syms, RP_KIND_FRAME, FX_HOSTILE, sizeof(FX_HOSTILE) - 1,
                  "/s\xC0/\xff.py", 8, "\xff.py", 4, 9);
    rp_symtab_add(&f->syms, RP_KIND_THREAD, "[thread \x1b]0;x\x07]", 15,
                  "", 0, "", 0, 0);
    CHECK(rp_tree_init(&f->tree, 0, 100, 0) == 0);
    rp_tree_add_sample(&f->tree, p, 2, 3, MS, MS);
    rp_tree_add_sample(&f->tree, p, 1, 3, MS, MS);
    fx_report(f);
    f->meta[0] = (rp_meta_item){{"pa\xffth", 5}, {"/caf\xC3\xA9\n\xed\xb3\xbf", 10},
                                0};
    f->report.meta = f->meta;
    f->report.n_meta = 1;
}

/* A tree whose init failed: no nodes at all. */
static inline void
fx_empty(fixture *f)
{
    rp_symtab_init(&f->syms);
    CHECK(rp_tree_init(&f->tree, 0, 10, 0) == 0);
    rp_tree_free(&f->tree);
    f->tree.truncated = RP_TRUNC_NOMEM;
    fx_report(f);
}

/* A chain of `depth` frames below the root, one sample at the bottom. */
static inline void
fx_deep(fixture *f, uint32_t depth)
{
    uint32_t *path = malloc(depth * sizeof(uint32_t));
    rp_symtab_init(&f->syms);
    fx_sym(&f->syms, RP_KIND_FRAME, "root", "r.py", "r.py", 1);
    fx_sym(&f->syms, RP_KIND_FRAME, "recurse", "r.py", "r.py", 5);
    CHECK(path != NULL);
    CHECK(rp_tree_init(&f->tree, 0, depth + 10, 0) == 0);
    if (path != NULL) {
        for (uint32_t i = 0; i < depth; i++) {
            path[i] = 1;
        }
        rp_tree_add_sample(&f->tree, path, depth, 6, MS, MS);
    }
    free(path);
    fx_report(f);
}

static inline void
fx_free(fixture *f)
{
    rp_tree_free(&f->tree);
    rp_symtab_free(&f->syms);
}

/* Whether n bytes at s are well-formed UTF-8 (RFC 3629). */
static inline int
fx_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        size_t len = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2
            : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
        if (len == 0 || i + len > n) {
            return 0;
        }
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xC0) != 0x80) {
                return 0;
            }
        }
        if ((c == 0xE0 && p[i + 1] < 0xA0) || (c == 0xED && p[i + 1] > 0x9F)
                || (c == 0xF0 && p[i + 1] < 0x90)
                || (c == 0xF4 && p[i + 1] > 0x8F)) {
            return 0;
        }
        i += len;
    }
    return 1;
}

#endif

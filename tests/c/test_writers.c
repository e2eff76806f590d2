/* test_writers.c - the report writers (write_json.c, write_text.c,
 * write_collapsed.c) and what they share (report.c): exact output for a
 * small hand-built profile, hostile names, empty and 10,000-deep trees.
 *
 * The JSON checker here is independent of buf.c: an iterative RFC 8259
 * validator that also insists on well-formed UTF-8 and no raw control
 * characters in strings.
 */
#include <math.h>
#include <stdlib.h>

#include "check.h"
#include "report.h"
#include "writers.h"

#include "json_check.h"
#include "profile_fixture.h"


static void
test_json_checker_itself(void)
{
    const char *good[] = {
        "{}", "[]", "0", "-0.5e+3", "\"\"", "true", " [1, {\"a\": [null]}] ",
        "{\"k\":\"\\u003c\\n\xC3\xA9\"}", "[[[]]]",
    };
    const char *bad[] = {
        "", "{", "[1,]", "{\"a\"}", "{\"a\":1,}", "01", "1.", "\"\x01\"",
        "\"\\x\"", "\"\xFF\"", "\"\xED\xA0\x80\"", "\"\xC0\x80\"", "[] []",
        "{1:2}", "[\"a\" \"b\"]", "nul", "\"abc",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        CHECK(json_valid(good[i], strlen(good[i])));
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (json_valid(bad[i], strlen(bad[i]))) {
            CHECK_FAIL_AT(__FILE__, __LINE__, "accepted %s", bad[i]);
        }
    }
}

#define CHECK_JSON_VALID(buf)                                               \
    do {                                                                    \
        check_count++;                                                      \
        if (!json_valid((buf)->data ? (buf)->data : "", (buf)->len)) {      \
            CHECK_FAIL_AT(__FILE__, __LINE__, "%s is not valid JSON",       \
                          #buf);                                            \
        }                                                                   \
    } while (0)

/* ---- a small profile: fx_small of profile_fixture.h ------------------ */

static void
test_json_of_a_small_profile_is_exact(void)
{
    fixture f;
    rp_buf out;
    fx_small(&f);
    rp_buf_init(&out, 0);
    CHECK(rp_write_json(&out, &f.report) == 0);
    CHECK_BUF(&out,
        "{\"version\":1,\"reqprof_version\":\"1.2.3\","
        "\"started_at\":1700000000.25,\"duration_s\":0.007,"
        "\"interval_s\":0.001,\"effective_interval_s\":0.001,"
        "\"overhead_budget_percent\":null,\"samples\":4,\"wall_s\":0.006,"
        "\"cpu_s\":0.003,\"sampler_cpu_s\":null,\"sampler_cpu_percent\":null,"
        "\"async_mode\":\"enabled\",\"max_depth\":128,"
        "\"truncated\":true,\"truncated_reasons\":[\"depth\"],"
        "\"gc_s\":0,\"response_s\":null,\"undersampled\":false,"
        "\"undersampled_reason\":null,"
        "\"breakdown\":{\"running\":{\"wall_s\":0.003,\"cpu_s\":0.003},"
        "\"awaiting\":{\"wall_s\":0.003},"
        "\"event_loop_busy\":{\"wall_s\":0,\"blockers\":[]},"
        "\"in_worker_threads\":{\"wall_s\":0,\"cpu_s\":0},"
        "\"gc\":{\"wall_s\":0},\"unsampled\":{\"wall_s\":0},"
        "\"out_of_context\":{\"wall_s\":0}},\"loop_block\":null,"
        "\"meta\":{\"method\":\"GET\",\"path\":\"/x\\u003c/script\\u003e\","
        "\"status\":200,\"bogus\":\"1; alert(1)\",\"exception\":null},"
        "\"root\":{\"name\":\"handler (app.py:10)\",\"function\":\"handler\","
        "\"file\":\"/app/app.py\",\"short_file\":\"app.py\",\"line\":10,"
        "\"kind\":\"frame\",\"wall_s\":0.006,\"cpu_s\":0.003,"
        "\"self_wall_s\":0.0005,\"self_cpu_s\":0.0005,\"samples\":4,"
        "\"lines\":{\"11\":0.0005},\"children\":["
        "{\"name\":\"slow (app.py:20)\",\"function\":\"slow\","
        "\"file\":\"/app/app.py\",\"short_file\":\"app.py\",\"line\":20,"
        "\"kind\":\"frame\",\"wall_s\":0.004,\"cpu_s\":0.001,"
        "\"self_wall_s\":0.001,\"self_cpu_s\":0.001,\"samples\":2,"
        "\"lines\":{\"21\":0.001},\"children\":["
        "{\"name\":\"[await]\",\"function\":\"[await]\",\"file\":\"\","
        "\"short_file\":\"\",\"line\":0,\"kind\":\"await\",\"wall_s\":0.003,"
        "\"cpu_s\":0,\"self_wall_s\":0.003,\"self_cpu_s\":0,\"samples\":1,"
        "\"lines\":{\"22\":0.003},\"children\":[]}]},"
        "{\"name\":\"fast (lib/fast.py:30)\",\"function\":\"fast\","
        "\"file\":\"/venv/lib/python3.12/site-packages/lib/fast.py\","
        "\"short_file\":\"lib/fast.py\",\"line\":30,\"kind\":\"frame\","
        "\"wall_s\":0.0015,\"cpu_s\":0.0015,\"self_wall_s\":0.0015,"
        "\"self_cpu_s\":0.0015,\"samples\":1,\"lines\":{\"31\":0.0015},"
        "\"children\":[]}]}}");
    CHECK_JSON_VALID(&out);
    rp_buf_free(&out);
    fx_free(&f);
}

static void
test_json_header_edge_values(void)
{
    fixture f;
    rp_buf out;
    fx_small(&f);
    f.report.truncated = RP_REPORT_TRUNC_DURATION | RP_REPORT_TRUNC_NODES;
    f.tree.truncated = RP_TRUNC_BYTES;      /* the tree's own caps count */
    f.report.started_at = NAN;
    f.report.duration_s = INFINITY;
    f.report.interval_s = 0.1;
    f.report.version = NULL;
    f.report.n_meta = 0;
    rp_buf_init(&out, 0);
    CHECK(rp_write_json(&out, &f.report) == 0);
    CHECK_CONTAINS(&out, "\"reqprof_version\":\"\",\"started_at\":0,"
                         "\"duration_s\":0,\"interval_s\":0.1,");
    CHECK_CONTAINS(&out, "\"truncated\":true,\"truncated_reasons\":"
                         "[\"nodes\",\"bytes\",\"duration\"],\"gc_s\":0,");
    CHECK_CONTAINS(&out, "\"undersampled_reason\":null,\"breakdown\":{");
    CHECK_CONTAINS(&out, "\"loop_block\":null,\"meta\":{},");
    CHECK_JSON_VALID(&out);
    rp_buf_clear(&out);
    f.report.truncated = 0;
    f.tree.truncated = 0;
    CHECK(rp_write_json(&out, &f.report) == 0);
    CHECK_CONTAINS(&out, "\"truncated\":false,\"truncated_reasons\":[],");
    /* GC time, the response's end and an undersampled report's reason. */
    rp_buf_clear(&out);
    f.report.gc_s = 0.0125;
    f.report.response_s = 0.002;
    f.report.undersampled = RP_UNDERSAMPLED_GIL;
    CHECK(rp_write_json(&out, &f.report) == 0);
    CHECK_CONTAINS(&out, "\"gc_s\":0.0125,\"response_s\":0.002,"
                         "\"undersampled\":true,"
                         "\"undersampled_reason\":\"GIL held by C code\",");
    CHECK_JSON_VALID(&out);
    rp_buf_free(&out);
    fx_free(&f);
}

static void
test_json_header_gives_the_budget_and_the_engine_cpu(void)
{
    fixture f;
    rp_buf out;
    fx_small(&f);
    f.report.duration_s = 0.5;
    f.report.effective_interval_s = 0.004;
    f.report.budget_percent = 0.5;
    f.report.has_sampler_cpu = 1;
    f.report.sampler_cpu_ns = 2500000;
    rp_buf_init(&out, 0);
    CHECK(rp_write_json(&out, &f.report) == 0);
    CHECK_CONTAINS(&out, "\"interval_s\":0.001,\"effective_interval_s\":0.004,"
                         "\"overhead_budget_percent\":0.5,\"samples\":4,");
    CHECK_CONTAINS(&out, "\"cpu_s\":0.003,\"sampler_cpu_s\":0.0025,"
                         "\"sampler_cpu_percent\":0.5,\"async_mode\":");
    CHECK_JSON_VALID(&out);
    /* Known CPU, no duration to share it over; a budget out of range. */
    rp_buf_clear(&out);
    f.report.duration_s = 0.0;
    f.report.budget_percent = NAN;
    f.report.effective_interval_s = INFINITY;
    f.report.sampler_cpu_ns = 0;
    CHECK(rp_write_json(&out, &f.report) == 0);
    CHECK_CONTAINS(&out, "\"effective_interval_s\":0.001,"
                         "\"overhead_budget_percent\":null,");
    CHECK_CONTAINS(&out, "\"sampler_cpu_s\":0,\"sampler_cpu_percent\":null,");
    CHECK_JSON_VALID(&out);
    rp_buf_free(&out);
    fx_free(&f);
}

static void
test_json_meta_literals_only_when_valid(void)
{
    static const struct { const char *v; int raw; } cases[] = {
        {"0", 1}, {"-12.5e-3", 1}, {"true", 1}, {"false", 1}, {"null", 1},
        {"", 0}, {"01", 0}, {"1.", 0}, {".5", 0}, {"1e", 0}, {"NaN", 0},
        {"Infinity", 0}, {"True", 0}, {" 1", 0}, {"1}", 0}, {"\"x\"", 0},
    };
    fixture f;
    rp_buf out, want;
    fx_small(&f);
    rp_buf_init(&out, 0);
    rp_buf_init(&want, 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rp_meta_item m = {{"k", 1}, {(char *)cases[i].v, strlen(cases[i].v)},
                          1};
        f.report.meta = &m;
        f.report.n_meta = 1;
        rp_buf_clear(&out);
        rp_buf_clear(&want);
        CHECK(rp_write_json(&out, &f.report) == 0);
        CHECK_JSON_VALID(&out);
        rp_buf_puts(&want, "\"meta\":{\"k\":");
        if (cases[i].raw) {
            rp_buf_puts(&want, cases[i].v);
        }
        else {
            rp_buf_put_json_string(&want, cases[i].v, strlen(cases[i].v));
        }
        rp_buf_puts(&want, "},");
        check_count++;
        if (!check_contains(out.data, out.len, want.data, want.len)) {
            CHECK_FAIL_AT(__FILE__, __LINE__, "meta value %s", cases[i].v);
        }
    }
    rp_buf_free(&want);
    rp_buf_free(&out);
    fx_free(&f);
}

static void
test_json_lines_sorted_by_line_number(void)
{
    fixture f;
    rp_buf out;
    fx_small(&f);
    rp_tree_add_line(&f.tree, 0, 7, 2);
    rp_tree_add_line(&f.tree, 0, 100, 3);
    rp_tree_add_line(&f.tree, 0, 9, 1);
    rp_buf_init(&out, 0);
    CHECK(rp_write_json(&out, &f.report) == 0);
    CHECK_CONTAINS(&out, "\"lines\":{\"7\":0.000000002,\"9\":0.000000001,"
                         "\"11\":0.0005,\"100\":0.000000003}");
    rp_buf_free(&out);
    fx_free(&f);
}

static void
test_text_ascii_of_a_small_profile_is_exact(void)
{
    fixture f;
    rp_buf out;
    rp_text_opts o = {1, 0, 0.0, 0};
    fx_small(&f);
    rp_buf_init(&out, 0);
    CHECK(rp_write_text(&out, &f.report, &o) == 0);
    CHECK_BUF(&out,
        "Samples: 4  Duration: 0.007s  Wall: 0.006s  CPU: 0.003s"
        "  TRUNCATED (depth)\n"
        "\n"
        "wall   cpu    %wall  frame\n"
        "0.006  0.003  100.0%  handler (app.py:10)\n"
        "|- 0.004  0.001  66.7%  slow (app.py:20)\n"
        "|  \\- 0.003  0.000  50.0%  [await]\n"
        "\\- 0.002  0.002  25.0%  fast (lib/fast.py:30)\n");
    /* NULL options: the defaults (unicode, no colour, everything). */
    rp_buf_clear(&out);
    f.report.truncated = 0;
    CHECK(rp_write_text(&out, &f.report, NULL) == 0);
    CHECK_BUF(&out,
        "Samples: 4  Duration: 0.007s  Wall: 0.006s  CPU: 0.003s\n"
        "\n"
        "wall   cpu    %wall  frame\n"
        "0.006  0.003  100.0%  handler (app.py:10)\n"
        "\xE2\x94\x9C\xE2\x94\x80 0.004  0.001  66.7%  slow (app.py:20)\n"
        "\xE2\x94\x82  \xE2\x94\x94\xE2\x94\x80 0.003  0.000  50.0%  [await]\n"
        "\xE2\x94\x94\xE2\x94\x80 0.002  0.002  25.0%  fast (lib/fast.py:30)\n");
    rp_buf_free(&out);
    fx_free(&f);
}

static void
test_text_header_gives_gc_response_and_undersampling(void)
{
    fixture f;
    rp_buf out;
    rp_text_opts o = {1, 0, 0.0, 0};
    fx_small(&f);
    f.report.truncated = 0;
    f.report.gc_s = 0.0012;
    f.report.response_s = 0.004;
    f.report.undersampled = RP_UNDERSAMPLED_SHORT;
    rp_buf_init(&out, 0);
    CHECK(rp_write_text(&out, &f.report, &o) == 0);
    CHECK_CONTAINS(&out,
        "Samples: 4  Duration: 0.007s  Wall: 0.006s  CPU: 0.003s  GC: 0.001s"
        "  Response: 0.004s  UNDERSAMPLED (short request)\n\n"
        "wall   cpu    %wall  frame\n");
    rp_buf_free(&out);
    fx_free(&f);
}

static void
test_text_says_when_the_budget_lengthened_the_interval(void)
{
    fixture f;
    rp_buf out;
    rp_text_opts o = {1, 0, 0.0, 0};
    fx_small(&f);
    f.report.truncated = 0;
    rp_buf_init(&out, 0);
    /* Not lengthened (or by under 1%): no line. */
    f.report.effective_interval_s = 0.001009;
    f.report.budget_percent = 1.0;
    CHECK(rp_write_text(&out, &f.report, &o) == 0);
    CHECK_NOT_CONTAINS(&out, "Interval");
    rp_buf_clear(&out);
    f.report.effective_interval_s = 0.00437;
    f.report.budget_percent = 0.25;
    CHECK(rp_write_text(&out, &f.report, &o) == 0);
    CHECK_CONTAINS(&out,
        "CPU: 0.003s\nInterval lengthened to 4.37 ms (1 ms asked) to stay "
        "within the 0.25% overhead budget\n\nwall   cpu");
    rp_buf_clear(&out);
    f.report.interval_s = 0.0005;
    f.report.effective_interval_s = 0.032;
    f.report.budget_percent = 2.0;
    CHECK(rp_write_text(&out, &f.report, &o) == 0);
    CHECK_CONTAINS(&out, "\nInterval lengthened to 32 ms (0.5 ms asked) to "
                         "stay within the 2% overhead budget\n");
    /* Lengthened by the budget of a session beside it. */
    rp_buf_clear(&out);
    f.report.budget_percent = 0.0;
    CHECK(rp_write_text(&out, &f.report, &o) == 0);
    CHECK_CONTAINS(&out, "\nInterval lengthened to 32 ms (0.5 ms asked) to "
                         "stay within the overhead budget of another "
                         "session\n");
    rp_buf_free(&out);
    fx_free(&f);
}

static void
test_text_hides_small_nodes_and_says_so(void)
{
    fixture f;
    rp_buf out;
    rp_text_opts o = {1, 0, 30.0, 0};
    fx_small(&f);
    f.report.truncated = 0;
    rp_buf_init(&out, 0);
    CHECK(rp_write_text(&out, &f.report, &o) == 0);
    CHECK_BUF(&out,
        "Samples: 4  Duration: 0.007s  Wall: 0.006s  CPU: 0.003s\n"
        "\n"
        "wall   cpu    %wall  frame\n"
        "0.006  0.003  100.0%  handler (app.py:10)\n"
        "\\- 0.004  0.001  66.7%  slow (app.py:20)\n"
        "   \\- 0.003  0.000  50.0%  [await]\n"
        "(1 node under 30.0% of wall time hidden)\n");
    /* Exactly at the threshold is shown. */
    rp_buf_clear(&out);
    o.min_percent = 25.0;
    CHECK(rp_write_text(&out, &f.report, &o) == 0);
    CHECK_CONTAINS(&out, "fast");
    CHECK_NOT_CONTAINS(&out, "hidden");
    /* Everything but the root hidden. */
    rp_buf_clear(&out);
    o.min_percent = 100.5;
    CHECK(rp_write_text(&out, &f.report, &o) == 0);
    CHECK_CONTAINS(&out, " frame\n0.006  0.003  100.0%  handler (app.py:10)\n"
                         "(3 nodes under 100.5% of wall time hidden)\n");
    rp_buf_free(&out);
    fx_free(&f);
}

static void
test_text_max_lines_notes_the_rest(void)
{
    fixture f;
    rp_buf out;
    rp_text_opts o = {1, 0, 0.0, 2};
    fx_small(&f);
    f.report.truncated = 0;
    rp_buf_init(&out, 0);
    CHECK(rp_write_text(&out, &f.report, &o) == 0);
    CHECK_BUF(&out,
        "Samples: 4  Duration: 0.007s  Wall: 0.006s  CPU: 0.003s\n"
        "\n"
        "wall   cpu    %wall  frame\n"
        "0.006  0.003  100.0%  handler (app.py:10)\n"
        "|- 0.004  0.001  66.7%  slow (app.py:20)\n"
        "... 2 more lines\n");
    rp_buf_clear(&out);
    o.ascii = 0;
    o.max_lines = 3;
    CHECK(rp_write_text(&out, &f.report, &o) == 0);
    CHECK_CONTAINS(&out, "\n\xE2\x80\xA6 1 more line\n");
    rp_buf_clear(&out);
    o.max_lines = 4;
    CHECK(rp_write_text(&out, &f.report, &o) == 0);
    CHECK_NOT_CONTAINS(&out, "more line");
    rp_buf_free(&out);
    fx_free(&f);
}

static void
test_text_colours_only_when_asked(void)
{
    fixture f;
    rp_buf out;
    rp_text_opts o = {0, 1, 0.0, 0};
    fx_small(&f);
    rp_buf_init(&out, 0);
    CHECK(rp_write_text(&out, &f.report, &o) == 0);
    CHECK_CONTAINS(&out, "\x1b[31m0.006  0.003  100.0%\x1b[0m  handler");
    CHECK_CONTAINS(&out, "\x1b[33m0.002  0.002  25.0%\x1b[0m  "
                         "\x1b[2mfast (lib/fast.py:30)\x1b[0m\n");
    CHECK_CONTAINS(&out, "\x1b[36m[await]\x1b[0m");
    CHECK_CONTAINS(&out, "\x1b[31mTRUNCATED (depth)\x1b[0m");
    rp_buf_clear(&out);
    o.color = 0;
    CHECK(rp_write_text(&out, &f.report, &o) == 0);
    CHECK_NOT_CONTAINS(&out, "\x1b");
    rp_buf_free(&out);
    fx_free(&f);
}

static void
test_text_log_style_of_a_small_profile_is_exact(void)
{
    fixture f;
    rp_buf out;
    rp_text_opts o = {1, 0, 0.0, 0, 1};
    fx_small(&f);
    rp_buf_init(&out, 0);
    CHECK(rp_write_text(&out, &f.report, &o) == 0);
    CHECK_BUF(&out,
        "6.0 ms 100%  handler (app.py:10)\n"
        "|- 4.0 ms 67%  slow (app.py:20)\n"
        "|  \\- 3.0 ms 50%  [await]\n"
        "\\- 1.5 ms 25%  fast (lib/fast.py:30)\n");
    /* A lone library frame is never folded; max_lines ends with one "…". */
    rp_buf_clear(&out);
    o.ascii = 0;
    o.min_percent = 30.0;
    o.max_lines = 2;
    CHECK(rp_write_text(&out, &f.report, &o) == 0);
    CHECK_BUF(&out,
        "6.0 ms 100%  handler (app.py:10)\n"
        "\xE2\x94\x94\xE2\x94\x80 4.0 ms 67%  slow (app.py:20)\n"
        "\xE2\x80\xA6\n");
    rp_buf_clear(&out);
    o.max_lines = 3;
    CHECK(rp_write_text(&out, &f.report, &o) == 0);
    CHECK_NOT_CONTAINS(&out, "\xE2\x80\xA6");
    rp_buf_free(&out);
    fx_free(&f);
}

/*  main (app.py:1)                           10 ms
 *    serve (site-packages/fw/a.py:10)        10     library
 *      dispatch (/usr/lib/py/asyncio/b.py)   10     library when /usr/lib/py/
 *        route (site-packages/fw/c.py:30)    10     library   is a prefix
 *          endpoint (app.py:40)              9.95 (self)
 *          tiny (app.py:50)                  0.05 (self): under 1%
 */
static void
fx_plumbing(fixture *f)
{
    const uint32_t to_endpoint[] = {1, 2, 3, 4}, to_tiny[] = {1, 2, 3, 5};
    rp_symtab_init(&f->syms);
    fx_sym(&f->syms, RP_KIND_FRAME, "main", "/app/app.py", "app.py", 1);
    fx_sym(&f->syms, RP_KIND_FRAME, "serve",
           "/venv/lib/python3.11/site-packages/fw/a.py", "fw/a.py", 10);
    fx_sym(&f->syms, RP_KIND_FRAME, "dispatch", "/usr/lib/py/asyncio/b.py",
           "asyncio/b.py", 20);
    fx_sym(&f->syms, RP_KIND_FRAME, "route",
           "/venv/lib/python3.11/site-packages/fw/c.py", "fw/c.py", 30);
    fx_sym(&f->syms, RP_KIND_FRAME, "endpoint", "/app/app.py", "app.py", 40);
    fx_sym(&f->syms, RP_KIND_FRAME, "tiny", "/app/app.py", "app.py", 50);
    CHECK(rp_tree_init(&f->tree, 0, 100, 0) == 0);
    rp_tree_add_sample(&f->tree, to_endpoint, 4, 41, 9950 * MS / 1000, 0);
    rp_tree_add_sample(&f->tree, to_tiny, 4, 51, 50 * MS / 1000, 0);
    fx_report(f);
}

static void
test_text_log_style_folds_library_runs(void)
{
    fixture f;
    rp_buf out;
    const rp_str stdlib = {"/usr/lib/py/", 12};
    rp_text_opts o = {1, 0, 1.0, 40, 1, &stdlib, 1};
    fx_plumbing(&f);
    rp_buf_init(&out, 0);
    CHECK(rp_write_text(&out, &f.report, &o) == 0);
    CHECK_BUF(&out,
        "10.0 ms 100%  main (app.py:1)\n"
        "\\- 10.0 ms 100%  serve \xE2\x86\x92 ... \xE2\x86\x92 route [3 frames]\n"
        "   \\- 10.0 ms 100%  endpoint (app.py:40)\n");
    /* Without the standard library's directory, dispatch is app code and
     * splits the run: serve and route stand alone, unfolded. */
    rp_buf_clear(&out);
    o.n_lib_prefixes = 0;
    CHECK(rp_write_text(&out, &f.report, &o) == 0);
    CHECK_BUF(&out,
        "10.0 ms 100%  main (app.py:1)\n"
        "\\- 10.0 ms 100%  serve (fw/a.py:10)\n"
        "   \\- 10.0 ms 100%  dispatch (asyncio/b.py:20)\n"
        "      \\- 10.0 ms 100%  route (fw/c.py:30)\n"
        "         \\- 10.0 ms 100%  endpoint (app.py:40)\n");
    /* Nothing is folded when nothing is hidden (min_percent 0). */
    rp_buf_clear(&out);
    o.n_lib_prefixes = 1;
    o.min_percent = 0.0;
    CHECK(rp_write_text(&out, &f.report, &o) == 0);
    CHECK_BUF(&out,
        "10.0 ms 100%  main (app.py:1)\n"
        "\\- 10.0 ms 100%  serve (fw/a.py:10)\n"
        "   \\- 10.0 ms 100%  dispatch (asyncio/b.py:20)\n"
        "      \\- 10.0 ms 100%  route (fw/c.py:30)\n"
        "         |- 10.0 ms 100%  endpoint (app.py:40)\n"
        "         \\- 0.1 ms 1%  tiny (app.py:50)\n");
    rp_buf_free(&out);
    fx_free(&f);
}

static void
test_collapsed_of_a_small_profile_is_exact(void)
{
    fixture f;
    rp_buf out;
    fx_small(&f);
    rp_buf_init(&out, 0);
    CHECK(rp_write_collapsed(&out, &f.report) == 0);
    CHECK_BUF(&out,
        "handler (app.py:10) 500\n"
        "handler (app.py:10);slow (app.py:20) 1000\n"
        "handler (app.py:10);slow (app.py:20);[await] 3000\n"
        "handler (app.py:10);fast (lib/fast.py:30) 1500\n");
    rp_buf_free(&out);
    fx_free(&f);
}

static void
test_collapsed_rounds_microseconds_and_keeps_tiny_nodes(void)
{
    fixture f;
    rp_buf out;
    const uint32_t a[] = {1}, b[] = {3}, c[] = {2};
    rp_symtab_init(&f.syms);
    fx_sym(&f.syms, RP_KIND_THREAD, "[thread MainThread]", "", "", 0);
    fx_sym(&f.syms, RP_KIND_FRAME, "a", "a.py", "", 1);
    fx_sym(&f.syms, RP_KIND_FRAME, "b", "", "", 2);
    fx_sym(&f.syms, RP_KIND_OUT_OF_CONTEXT, "[out-of-context]", "x.py",
            "x.py", 3);
    CHECK(rp_tree_init(&f.tree, 0, 100, 0) == 0);
    rp_tree_add_sample(&f.tree, a, 1, RP_NONE, 1499, 0);
    rp_tree_add_sample(&f.tree, b, 1, RP_NONE, 1500, 0);
    rp_tree_add_sample(&f.tree, c, 1, RP_NONE, 1, 0);
    rp_tree_get_child(&f.tree, 0, 77);      /* no time, unknown id */
    fx_report(&f);
    rp_buf_init(&out, 0);
    CHECK(rp_write_collapsed(&out, &f.report) == 0);
    CHECK_BUF(&out,
        "[thread MainThread];[out-of-context] 2\n"
        "[thread MainThread];a (a.py:1) 1\n"
        "[thread MainThread];b 1\n");
    rp_buf_free(&out);
    fx_free(&f);
}

/* A name with everything a format can choke on. */
static const char HOSTILE[] = "a;b\nc\0d\t</script>\xff\x1b[2J&\xE2\x80\xA8z";

static void
hostile_init(fixture *f)
{
    const uint32_t p[] = {1, 2};
    rp_symtab_init(&f->syms);
    fx_sym(&f->syms, RP_KIND_FRAME, "root", "r.py", "r.py", 1);
    rp_symtab_add(&f->syms, RP_KIND_FRAME, HOSTILE, sizeof(HOSTILE) - 1,
                  "/s\xC0/\xff.py", 8, "\xff.py", 4, 9);
    rp_symtab_add(&f->syms, RP_KIND_THREAD, "[thread \x1b]0;x\x07]", 15,
                  "", 0, "", 0, 0);
    CHECK(rp_tree_init(&f->tree, 0, 100, 0) == 0);
    rp_tree_add_sample(&f->tree, p, 2, 3, MS, MS);
    rp_tree_add_sample(&f->tree, p, 1, 3, MS, MS);
    fx_report(f);
}

static void
test_hostile_names_in_json(void)
{
    fixture f;
    rp_buf out;
    hostile_init(&f);
    rp_buf_init(&out, 0);
    CHECK(rp_write_json(&out, &f.report) == 0);
    CHECK_JSON_VALID(&out);
    CHECK_CONTAINS(&out, "\"name\":\"a;b\\nc\\u0000d\\t\\u003c/script\\u003e"
                         FFFD "\\u001b[2J\\u0026\\u2028z (" FFFD ".py:9)\",");
    CHECK_CONTAINS(&out, "\"file\":\"/s" FFFD "/" FFFD ".py\",");
    CHECK_CONTAINS(&out, "\"name\":\"[thread \\u001b]0;x\\u0007]\"");
    CHECK_NOT_CONTAINS(&out, "<");
    CHECK_NOT_CONTAINS(&out, "\xE2\x80\xA8");
    rp_buf_free(&out);
    fx_free(&f);
}

static void
test_hostile_names_in_text(void)
{
    fixture f;
    rp_buf out;
    rp_text_opts o = {1, 0, 0.0, 0};
    hostile_init(&f);
    rp_buf_init(&out, 0);
    CHECK(rp_write_text(&out, &f.report, &o) == 0);
    CHECK_BUF(&out,
        "Samples: 2  Duration: 0.007s  Wall: 0.002s  CPU: 0.002s\n"
        "\n"
        "wall   cpu    %wall  frame\n"
        "0.002  0.002  100.0%  root (r.py:1)\n"
        "\\- 0.002  0.002  100.0%  a;b c d </script>" FFFD " [2J& z ("
        FFFD ".py:9)\n"
        "   \\- 0.001  0.001  50.0%  [thread  ]0;x ]\n");
    rp_buf_clear(&out);
    o.log = 1;
    CHECK(rp_write_text(&out, &f.report, &o) == 0);
    CHECK_BUF(&out,
        "2.0 ms 100%  root (r.py:1)\n"
        "\\- 2.0 ms 100%  a;b c d </script>" FFFD " [2J& z (" FFFD ".py:9)\n"
        "   \\- 1.0 ms 50%  [thread  ]0;x ]\n");
    rp_buf_free(&out);
    fx_free(&f);
}

static void
test_hostile_names_in_collapsed(void)
{
    fixture f;
    rp_buf out;
    hostile_init(&f);
    rp_buf_init(&out, 0);
    CHECK(rp_write_collapsed(&out, &f.report) == 0);
    CHECK_BUF(&out,
        "root (r.py:1);a:b c d </script>" FFFD " [2J& z (" FFFD ".py:9) "
        "1000\n"
        "root (r.py:1);a:b c d </script>" FFFD " [2J& z (" FFFD ".py:9);"
        "[thread  ]0:x ] 1000\n");
    rp_buf_free(&out);
    fx_free(&f);
}

/* A tree whose init failed has no nodes; every writer still works. */
static void
test_writers_on_an_empty_tree(void)
{
    fixture f;
    rp_buf out;
    rp_symtab_init(&f.syms);
    CHECK(rp_tree_init(&f.tree, 0, 10, 0) == 0);
    rp_tree_free(&f.tree);
    f.tree.truncated = RP_TRUNC_NOMEM;
    fx_report(&f);
    rp_buf_init(&out, 0);
    CHECK(rp_write_json(&out, &f.report) == 0);
    CHECK_JSON_VALID(&out);
    CHECK_CONTAINS(&out, "\"samples\":0,\"wall_s\":0,\"cpu_s\":0,");
    CHECK_CONTAINS(&out, "\"truncated_reasons\":[\"memory\"]");
    CHECK_CONTAINS(&out, "\"root\":{\"name\":\"[unknown]\",");
    rp_buf_clear(&out);
    CHECK(rp_write_text(&out, &f.report, NULL) == 0);
    CHECK_CONTAINS(&out, "TRUNCATED (memory)\n\nNo samples recorded.\n");
    rp_buf_clear(&out);
    rp_text_opts log = {0, 0, 1.0, 40, 1};
    CHECK(rp_write_text(&out, &f.report, &log) == 0);
    CHECK_EQ_U64(out.len, 0);                   /* nothing to log */
    rp_buf_clear(&out);
    CHECK(rp_write_collapsed(&out, &f.report) == 0);
    CHECK_EQ_U64(out.len, 0);

    /* A fresh tree with no samples: also "no samples". */
    CHECK(rp_tree_init(&f.tree, 0, 10, 0) == 0);
    rp_buf_clear(&out);
    CHECK(rp_write_text(&out, &f.report, NULL) == 0);
    CHECK_CONTAINS(&out, "\n\nNo samples recorded.\n");
    rp_buf_clear(&out);
    CHECK(rp_write_json(&out, &f.report) == 0);
    CHECK_JSON_VALID(&out);
    rp_buf_free(&out);
    rp_tree_free(&f.tree);
    rp_symtab_free(&f.syms);
}

/* Writers stop cleanly at the buffer limit: -1, nothing leaked. */
static void
test_writers_fail_at_the_buffer_limit(void)
{
    fixture f;
    rp_buf out;
    fx_small(&f);
    for (size_t limit = 1; limit < 400; limit += 37) {
        rp_buf_init(&out, limit);
        CHECK(rp_write_json(&out, &f.report) == -1);
        CHECK(out.failed && out.len <= limit);
        rp_buf_free(&out);
        rp_buf_init(&out, limit < 200 ? limit : 200);
        CHECK(rp_write_text(&out, &f.report, NULL) == -1);
        CHECK(out.failed && out.len <= limit);
        rp_buf_free(&out);
        rp_buf_init(&out, limit < 100 ? limit : 100);
        CHECK(rp_write_collapsed(&out, &f.report) == -1);
        rp_buf_free(&out);
    }
    fx_free(&f);
}

static size_t
count_byte(const rp_buf *b, char c)
{
    size_t n = 0;
    for (size_t i = 0; i < b->len; i++) {
        n += b->data[i] == c;
    }
    return n;
}

static void
test_10000_deep_tree_in_every_writer(void)
{
    enum { DEPTH = 10000 };
    fixture f;
    rp_buf out;
    uint32_t *path = malloc(DEPTH * sizeof(uint32_t));
    CHECK(path != NULL);
    if (path == NULL) {
        return;
    }
    rp_symtab_init(&f.syms);
    fx_sym(&f.syms, RP_KIND_FRAME, "main", "m.py", "m.py", 1);
    fx_sym(&f.syms, RP_KIND_FRAME, "recurse", "m.py", "m.py", 5);
    fx_sym(&f.syms, RP_KIND_FRAME, "other", "m.py", "m.py", 9);
    for (uint32_t i = 0; i < DEPTH; i++) {
        path[i] = 1;
    }
    CHECK(rp_tree_init(&f.tree, 0, 100000, 0) == 0);
    rp_tree_add_sample(&f.tree, path, DEPTH, 6, 4 * MS, MS);
    rp_tree_add_sample(&f.tree, path, DEPTH / 2, 6, MS, MS);
    path[DEPTH / 2] = 2;                    /* a side branch half-way */
    rp_tree_add_sample(&f.tree, path, DEPTH / 2 + 1, 10, MS, 0);
    CHECK_EQ_U64(f.tree.n_nodes, DEPTH + 2);
    fx_report(&f);
    rp_buf_init(&out, 0);

    CHECK(rp_write_json(&out, &f.report) == 0);
    CHECK_JSON_VALID(&out);
    /* + reasons, blockers */
    CHECK_EQ_U64(count_byte(&out, '['), DEPTH + 4);

    rp_buf_clear(&out);
    CHECK(rp_write_text(&out, &f.report, NULL) == 0);
    CHECK_EQ_U64(count_byte(&out, '\n'), DEPTH + 2 + 3);    /* + header row */
    CHECK_CONTAINS(&out, "[+9951] ");
    CHECK(out.len < (size_t)DEPTH * 250);   /* linear, not quadratic */
    rp_buf_clear(&out);
    rp_text_opts o = {1, 0, 0.0, 50};
    CHECK(rp_write_text(&out, &f.report, &o) == 0);
    CHECK_CONTAINS(&out, "\n... 9952 more lines\n");
    rp_buf_clear(&out);
    o.log = 1;
    o.max_lines = 0;
    CHECK(rp_write_text(&out, &f.report, &o) == 0);
    CHECK_EQ_U64(count_byte(&out, '\n'), DEPTH + 2);
    CHECK_CONTAINS(&out, "[+9951] ");
    CHECK(out.len < (size_t)DEPTH * 250);   /* linear, not quadratic */

    rp_buf_clear(&out);
    CHECK(rp_write_collapsed(&out, &f.report) == 0);
    CHECK_EQ_U64(count_byte(&out, '\n'), 3);
    CHECK_EQ_U64(count_byte(&out, ';'), DEPTH + DEPTH / 2 + DEPTH / 2 + 1);
    CHECK_CONTAINS(&out, ";other (m.py:9) 1000\n");
    rp_buf_free(&out);
    fx_free(&f);
    free(path);
}

/* ---- report.c basics ----------------------------------------------------- */

static void
test_kind_and_reason_names(void)
{
    const char *names[] = {"frame", "await", "out-of-context", "thread",
                           "truncated", "gc", "unsampled", "request",
                           "after-response", "loop-busy", "blocker"};
    for (int k = 0; k < RP_KIND_COUNT; k++) {
        CHECK_STR(rp_kind_name((rp_kind)k), names[k]);
        CHECK(rp_kind_from_name(names[k], strlen(names[k])) == k);
    }
    CHECK(rp_kind_from_name("fram", 4) == -1);
    CHECK(rp_kind_from_name("frames", 6) == -1);
    CHECK(rp_kind_from_name("frame", 6) == -1);     /* NUL is not a kind */
    CHECK(rp_kind_from_name("", 0) == -1);
    CHECK_STR(rp_kind_name(RP_KIND_COUNT), "frame");
    CHECK_STR(rp_trunc_name(0), "nodes");
    CHECK_STR(rp_trunc_name(1), "bytes");
    CHECK_STR(rp_trunc_name(2), "memory");
    CHECK_STR(rp_trunc_name(3), "depth");
    CHECK_STR(rp_trunc_name(4), "duration");
    CHECK(rp_trunc_name(5) == NULL);
    CHECK_EQ_U64(RP_REPORT_TRUNC_NODES, RP_TRUNC_NODES);
    CHECK_EQ_U64(RP_REPORT_TRUNC_BYTES, RP_TRUNC_BYTES);
    CHECK_EQ_U64(RP_REPORT_TRUNC_NOMEM, RP_TRUNC_NOMEM);
}

static void
test_symtab_copies_and_names(void)
{
    rp_symtab st;
    rp_buf b;
    char fn[] = "f\0g";
    rp_symtab_init(&st);
    rp_buf_init(&b, 0);
    uint32_t a = rp_symtab_add(&st, RP_KIND_FRAME, fn, 3, "/x/m.py", 7,
                               "m.py", 4, 12);
    fn[0] = 'X';                            /* the table has its own copy */
    uint32_t no_short = rp_symtab_add(&st, RP_KIND_FRAME, "h", 1, "/x/n.py",
                                      7, NULL, 0, 3);
    uint32_t bare = rp_symtab_add(&st, RP_KIND_FRAME, "<lambda>", 8, NULL, 0,
                                  NULL, 0, 0);
    uint32_t pseudo = rp_symtab_add(&st, RP_KIND_THREAD, "[thread w]", 10,
                                    "t.py", 4, "t.py", 4, 1);
    CHECK(a == 0 && no_short == 1 && bare == 2 && pseudo == 3);
    for (uint32_t i = 4; i < 1000; i++) {     /* growth keeps ids */
        CHECK_EQ_U64(rp_symtab_add(&st, RP_KIND_AWAIT, "[await]", 7, "", 0,
                                   "", 0, 0), i);
    }
    const rp_sym *s = rp_symtab_get(&st, a);
    CHECK_MEM(s->function.s, s->function.len, "f\0g", 3);
    CHECK(s->function.s[3] == '\0' && s->file.s[7] == '\0');
    CHECK(rp_symtab_get(&st, bare)->file.s != NULL);
    CHECK_EQ_U64(rp_symtab_get(&st, bare)->file.len, 0);

    rp_sym_put_name(&b, rp_symtab_get(&st, a));
    CHECK_BUF(&b, "f\0g (m.py:12)");
    rp_buf_clear(&b);
    rp_sym_put_name(&b, rp_symtab_get(&st, no_short));
    CHECK_BUF(&b, "h (/x/n.py:3)");
    rp_buf_clear(&b);
    rp_sym_put_name(&b, rp_symtab_get(&st, bare));
    CHECK_BUF(&b, "<lambda>");
    rp_buf_clear(&b);
    rp_sym_put_name(&b, rp_symtab_get(&st, pseudo));
    CHECK_BUF(&b, "[thread w]");
    rp_buf_clear(&b);
    rp_sym_put_name(&b, rp_symtab_get(&st, 1000));
    CHECK_BUF(&b, "[unknown]");
    rp_buf_clear(&b);
    rp_sym_put_name(&b, rp_symtab_get(&st, RP_NONE));
    CHECK_BUF(&b, "[unknown]");
    CHECK(rp_symtab_get(NULL, 0) != NULL);
    rp_buf_free(&b);
    rp_symtab_free(&st);
    CHECK(st.n == 0 && st.syms == NULL);
    rp_symtab_free(&st);
}

/* A reserved table: its symbols' strings in one block, its capacity what
 * adding them one by one gives; more symbols are added as usual. */
static void
test_symtab_reserve_holds_the_strings_in_one_block(void)
{
    rp_symtab st, grown;
    rp_symtab_init(&st);
    rp_symtab_init(&grown);
    /* 20 symbols of 5 + 7 + 4 + 3 bytes. */
    CHECK(rp_symtab_reserve(&st, 20, 20 * 19) == 0);
    CHECK(rp_symtab_reserve(&st, 20, 20 * 19) == -1);    /* not empty */
    for (uint32_t i = 0; i < 20; i++) {
        CHECK_EQ_U64(rp_symtab_add(&st, RP_KIND_FRAME, "fname", 5, "/a/m.py",
                                   7, "m.py", 4, i), i);
        CHECK_EQ_U64(rp_symtab_add(&grown, RP_KIND_FRAME, "fname", 5,
                                   "/a/m.py", 7, "m.py", 4, i), i);
    }
    CHECK_EQ_U64(st.cap, grown.cap);
    CHECK_EQ_U64(st.block_used, st.block_size);
    for (uint32_t i = 0; i < 20; i++) {
        const rp_sym *y = rp_symtab_get(&st, i);
        CHECK(y->function.s >= st.block && y->function.s < st.block + st.block_size);
        CHECK_MEM(y->function.s, y->function.len, "fname", 5);
        CHECK_MEM(y->file.s, y->file.len, "/a/m.py", 7);
        CHECK_MEM(y->short_file.s, y->short_file.len, "m.py", 4);
        CHECK(y->short_file.s[4] == '\0' && y->line == i);
    }
    /* Past the block: a symbol of its own (freed on its own). */
    CHECK_EQ_U64(rp_symtab_add(&st, RP_KIND_REQUEST, "GET /x", 6, NULL, 0,
                               NULL, 0, 0), 20);
    const rp_sym *extra = rp_symtab_get(&st, 20);
    CHECK(extra->function.s < st.block || extra->function.s >= st.block + st.block_size);
    CHECK_MEM(extra->function.s, extra->function.len, "GET /x", 6);
    rp_symtab_free(&st);
    CHECK(st.n == 0 && st.syms == NULL && st.block == NULL);
    CHECK(rp_symtab_reserve(&st, 0, 0) == 0 && st.syms == NULL);
    rp_symtab_free(&st);
    rp_symtab_free(&grown);
}

/* The walk: enter/leave pairs in sorted order; skipping children. */
static void
test_walk_order_and_skip(void)
{
    fixture f;
    rp_walk w;
    uint32_t node;
    int ev;
    char trace[64];
    size_t n = 0;
    fx_small(&f);
    CHECK(rp_walk_init(&w, &f.tree) == 0);
    while ((ev = rp_walk_next(&w, &node)) != RP_WALK_END && n < 60) {
        trace[n++] = ev == RP_WALK_ENTER ? '(' : ')';
        trace[n++] = (char)('0' + f.tree.nodes[node].frame);
    }
    trace[n] = '\0';
    CHECK_STR(trace, "(0(1(2)2)1(3)3)0");
    CHECK(rp_walk_next(&w, &node) == RP_WALK_END);
    rp_walk_free(&w);

    n = 0;
    CHECK(rp_walk_init(&w, &f.tree) == 0);
    while ((ev = rp_walk_next(&w, &node)) != RP_WALK_END && n < 60) {
        trace[n++] = ev == RP_WALK_ENTER ? '(' : ')';
        trace[n++] = (char)('0' + f.tree.nodes[node].frame);
        if (ev == RP_WALK_ENTER && f.tree.nodes[node].frame == 1) {
            rp_walk_skip_children(&w);
        }
    }
    trace[n] = '\0';
    CHECK_STR(trace, "(0(1)1(3)3)0");
    rp_walk_free(&w);
    fx_free(&f);
}

/* ---- the breakdown ------------------------------------------------------- */

/*  view                        self 2 (cpu 1)
 *    sleep -> [await]          self 3
 *      [event loop busy]       self 1 (a path cut there)
 *        GET /hog -> hog       8
 *        GET /hog (again: the same name, another symbol) -> hog   2
 *        [no request]          5
 *    [thread w] -> work        4 (cpu 3) -> [gc] 1
 *    [unsampled]               0.5
 *    [out-of-context]          0.25
 */
static void
test_breakdown_sorts_time_and_blockers(void)
{
    fixture f;
    rp_breakdown b;
    rp_symtab_init(&f.syms);
    uint32_t view = fx_sym(&f.syms, RP_KIND_FRAME, "view", "/a.py", "a.py", 1);
    uint32_t sleep = fx_sym(&f.syms, RP_KIND_FRAME, "sleep", "/t.py", "t.py", 2);
    uint32_t aw = fx_sym(&f.syms, RP_KIND_AWAIT, "[await]", "", "", 0);
    uint32_t busy = fx_sym(&f.syms, RP_KIND_LOOP_BUSY, "[event loop busy]",
                           "", "", 0);
    uint32_t hog1 = fx_sym(&f.syms, RP_KIND_BLOCKER, "GET /hog", "", "", 0);
    uint32_t hog2 = fx_sym(&f.syms, RP_KIND_BLOCKER, "GET /hog", "", "", 1);
    uint32_t none = fx_sym(&f.syms, RP_KIND_BLOCKER, "[no request]", "", "",
                           0);
    uint32_t hog = fx_sym(&f.syms, RP_KIND_FRAME, "hog", "/h.py", "h.py", 3);
    uint32_t thr = fx_sym(&f.syms, RP_KIND_THREAD, "[thread w]", "", "", 0);
    uint32_t work = fx_sym(&f.syms, RP_KIND_FRAME, "work", "/w.py", "w.py", 4);
    uint32_t gc = fx_sym(&f.syms, RP_KIND_GC, "[gc]", "", "", 0);
    uint32_t uns = fx_sym(&f.syms, RP_KIND_UNSAMPLED, "[unsampled]", "", "", 0);
    uint32_t ooc = fx_sym(&f.syms, RP_KIND_OUT_OF_CONTEXT, "[out-of-context]",
                          "", "", 0);
    CHECK(rp_tree_init(&f.tree, view, 1000, 0) == 0);
    const uint32_t p_await[] = {sleep, aw};
    const uint32_t p_busy[] = {sleep, aw, busy};
    const uint32_t p_hog1[] = {sleep, aw, busy, hog1, hog};
    const uint32_t p_hog2[] = {sleep, aw, busy, hog2, hog};
    const uint32_t p_none[] = {sleep, aw, busy, none};
    const uint32_t p_work[] = {thr, work};
    const uint32_t p_gc[] = {thr, work, gc};
    const uint32_t p_uns[] = {uns};
    const uint32_t p_ooc[] = {ooc};
    rp_tree_add_sample(&f.tree, NULL, 0, RP_NONE, 2 * MS, MS);
    rp_tree_add_sample(&f.tree, p_await, 2, RP_NONE, 3 * MS, 0);
    rp_tree_add_sample(&f.tree, p_busy, 3, RP_NONE, MS, 0);
    rp_tree_add_sample(&f.tree, p_hog1, 5, RP_NONE, 8 * MS, 7 * MS);
    rp_tree_add_sample(&f.tree, p_hog2, 5, RP_NONE, 2 * MS, 2 * MS);
    rp_tree_add_sample(&f.tree, p_none, 4, RP_NONE, 5 * MS, 0);
    rp_tree_add_sample(&f.tree, p_work, 2, RP_NONE, 4 * MS, 3 * MS);
    rp_tree_add_sample(&f.tree, p_gc, 3, RP_NONE, MS, MS);
    rp_tree_add_sample(&f.tree, p_uns, 1, RP_NONE, MS / 2, 0);
    rp_tree_add_sample(&f.tree, p_ooc, 1, RP_NONE, MS / 4, 0);
    CHECK(rp_breakdown_compute(&f.tree, &f.syms, &b) == 0);
    CHECK_EQ_U64(b.running_wall_ns, 2 * MS);
    CHECK_EQ_U64(b.running_cpu_ns, MS);
    CHECK_EQ_U64(b.awaiting_ns, 3 * MS);
    CHECK_EQ_U64(b.loop_busy_ns, 16 * MS);    /* the blockers' CPU is theirs */
    CHECK_EQ_U64(b.worker_wall_ns, 4 * MS);
    CHECK_EQ_U64(b.worker_cpu_ns, 3 * MS);
    CHECK_EQ_U64(b.gc_ns, MS);
    CHECK_EQ_U64(b.unsampled_ns, MS / 2);
    CHECK_EQ_U64(b.out_of_context_ns, MS / 4);
    CHECK_EQ_U64(b.running_wall_ns + b.awaiting_ns + b.loop_busy_ns
                 + b.worker_wall_ns + b.gc_ns + b.unsampled_ns
                 + b.out_of_context_ns, f.tree.nodes[0].wall_ns);
    CHECK_EQ_U64(b.n_blockers, 2);
    CHECK_STR(b.blockers[0].name->s, "GET /hog");   /* both symbols, merged */
    CHECK_EQ_U64(b.blockers[0].wall_ns, 10 * MS);
    CHECK_STR(b.blockers[1].name->s, "[no request]");
    CHECK_EQ_U64(b.blockers[1].wall_ns, 5 * MS);
    fx_report(&f);
    rp_buf out;
    rp_buf_init(&out, 0);
    CHECK(rp_write_json(&out, &f.report) == 0);
    CHECK_JSON_VALID(&out);
    CHECK_CONTAINS(&out, "\"event_loop_busy\":{\"wall_s\":0.016,\"blockers\":"
                         "[{\"name\":\"GET /hog\",\"wall_s\":0.01,"
                         "\"share\":0.625},{\"name\":\"[no request]\","
                         "\"wall_s\":0.005,\"share\":0.3125}]}");
    CHECK_CONTAINS(&out, "\"loop_block\":null,");
    /* The blocker's side, and the text header of both. */
    f.report.loop_block_s = 0.24;
    f.report.loop_block_sym = hog;
    f.report.loop_block_line = 88;
    rp_buf_clear(&out);
    CHECK(rp_write_json(&out, &f.report) == 0);
    CHECK_JSON_VALID(&out);
    CHECK_CONTAINS(&out, "\"loop_block\":{\"wall_s\":0.24,\"function\":"
                         "\"hog\",\"file\":\"/h.py\",\"short_file\":"
                         "\"h.py\",\"line\":88},");
    rp_buf_clear(&out);
    CHECK(rp_write_text(&out, &f.report, NULL) == 0);
    CHECK_CONTAINS(&out, "\nEvent loop busy: 0.016s (blocked by GET /hog 63%, "
                         "[no request] 31%)  Awaiting: 0.003s  Running: "
                         "0.002s\nBlocked the event loop: 0.240s at h.py:88 "
                         "(hog)\n\n");
    rp_buf_free(&out);
    fx_free(&f);
}

int
main(void)
{
    RUN(test_json_checker_itself);
    RUN(test_json_of_a_small_profile_is_exact);
    RUN(test_json_header_edge_values);
    RUN(test_json_header_gives_the_budget_and_the_engine_cpu);
    RUN(test_json_meta_literals_only_when_valid);
    RUN(test_json_lines_sorted_by_line_number);
    RUN(test_text_ascii_of_a_small_profile_is_exact);
    RUN(test_text_header_gives_gc_response_and_undersampling);
    RUN(test_text_says_when_the_budget_lengthened_the_interval);
    RUN(test_text_hides_small_nodes_and_says_so);
    RUN(test_text_max_lines_notes_the_rest);
    RUN(test_text_colours_only_when_asked);
    RUN(test_text_log_style_of_a_small_profile_is_exact);
    RUN(test_text_log_style_folds_library_runs);
    RUN(test_collapsed_of_a_small_profile_is_exact);
    RUN(test_collapsed_rounds_microseconds_and_keeps_tiny_nodes);
    RUN(test_hostile_names_in_json);
    RUN(test_hostile_names_in_text);
    RUN(test_hostile_names_in_collapsed);
    RUN(test_writers_on_an_empty_tree);
    RUN(test_writers_fail_at_the_buffer_limit);
    RUN(test_10000_deep_tree_in_every_writer);
    RUN(test_kind_and_reason_names);
    RUN(test_symtab_copies_and_names);
    RUN(test_symtab_reserve_holds_the_strings_in_one_block);
    RUN(test_walk_order_and_skip);
    RUN(test_breakdown_sorts_time_and_blockers);
    return check_summary();
}

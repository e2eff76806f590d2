/* test_speedscope.c - the speedscope writer (write_speedscope.c): exact
 * output for a small profile, hostile names, an empty tree, a deep chain,
 * the buffer limit. (tests/test_formats.py loads real output into
 * speedscope itself.)
 */
#include "profile_fixture.h"
#include "json_check.h"

static void
test_speedscope_of_a_small_profile_is_exact(void)
{
    fixture f;
    rp_buf out;
    fx_small(&f);
    rp_buf_init(&out, 0);
    CHECK(rp_write_speedscope(&out, &f.report) == 0);
    CHECK(json_valid(out.data, out.len));
    CHECK_BUF(&out,
        "{\"$schema\":\"https://www.speedscope.app/file-format-schema.json\","
        "\"shared\":{\"frames\":["
        "{\"name\":\"handler\",\"file\":\"app.py\",\"line\":10},"
        "{\"name\":\"slow\",\"file\":\"app.py\",\"line\":20},"
        "{\"name\":\"[await]\"},"
        "{\"name\":\"fast\",\"file\":\"lib/fast.py\",\"line\":30}]},"
        "\"profiles\":[{\"type\":\"sampled\","
        "\"name\":\"GET /x\\u003c/script\\u003e\",\"unit\":\"nanoseconds\","
        "\"startValue\":0,\"endValue\":6000000,"
        "\"samples\":[[0],[0,1],[0,1,2],[0,3]],"
        "\"weights\":[500000,1000000,3000000,1500000]}],"
        "\"name\":\"GET /x\\u003c/script\\u003e\",\"activeProfileIndex\":0,"
        "\"exporter\":\"reqprof@1.2.3\"}");
    rp_buf_free(&out);
    fx_free(&f);
}

static void
test_speedscope_names_the_profile_after_the_root_without_meta(void)
{
    fixture f;
    rp_buf out;
    fx_small(&f);
    f.report.n_meta = 0;
    f.report.version = NULL;
    rp_buf_init(&out, 0);
    CHECK(rp_write_speedscope(&out, &f.report) == 0);
    CHECK_CONTAINS(&out, "\"profiles\":[{\"type\":\"sampled\","
                         "\"name\":\"handler (app.py:10)\",");
    CHECK_CONTAINS(&out, "\"exporter\":\"reqprof@\"}");
    /* Only the path: the name is the path. */
    f.report.meta = &f.meta[1];
    f.report.n_meta = 1;
    rp_buf_clear(&out);
    CHECK(rp_write_speedscope(&out, &f.report) == 0);
    CHECK_CONTAINS(&out, "\"name\":\"/x\\u003c/script\\u003e\",\"unit\"");
    rp_buf_free(&out);
    fx_free(&f);
}

static void
test_speedscope_escapes_hostile_names(void)
{
    fixture f;
    rp_buf out;
    fx_hostile(&f);
    rp_buf_init(&out, 0);
    CHECK(rp_write_speedscope(&out, &f.report) == 0);
    CHECK(json_valid(out.data, out.len));
    CHECK_CONTAINS(&out, "{\"name\":\"a;b\\nc\\u0000d\\t\\u003c/script\\u003e"
                         "\\\"\\\\" FFFD "\\u001b[2J\\u0026\\u2028z\","
                         "\"file\":\"" FFFD ".py\",\"line\":9}");
    CHECK_CONTAINS(&out, "{\"name\":\"[thread \\u001b]0;x\\u0007]\"}");
    CHECK_CONTAINS(&out, "\"samples\":[[0,1],[0,1,2]],"
                         "\"weights\":[1000000,1000000]");
    /* The meta key is not "path" (invalid byte), so the root names it. */
    CHECK_CONTAINS(&out, "\"name\":\"root (r.py:1)\",\"unit\"");
    CHECK_NOT_CONTAINS(&out, "<");
    CHECK_NOT_CONTAINS(&out, "\n");
    CHECK_NOT_CONTAINS(&out, "\xE2\x80\xA8");
    for (size_t i = 0; i < out.len; i++) {
        CHECK((unsigned char)out.data[i] >= 0x20);
    }
    rp_buf_free(&out);
    fx_free(&f);
}

static void
test_speedscope_of_an_empty_tree(void)
{
    fixture f;
    rp_buf out;
    fx_empty(&f);
    rp_buf_init(&out, 0);
    CHECK(rp_write_speedscope(&out, &f.report) == 0);
    CHECK_CONTAINS(&out, "\"shared\":{\"frames\":[]},");
    CHECK_CONTAINS(&out, "\"name\":\"\",\"unit\":\"nanoseconds\","
                         "\"startValue\":0,\"endValue\":0,"
                         "\"samples\":[],\"weights\":[]}]");
    rp_buf_free(&out);
    fx_free(&f);
}

static void
test_speedscope_of_a_10000_deep_chain(void)
{
    fixture f;
    rp_buf out;
    fx_deep(&f, 10000);
    rp_buf_init(&out, 0);
    CHECK(rp_write_speedscope(&out, &f.report) == 0);
    CHECK_CONTAINS(&out, "\"frames\":[{\"name\":\"root\",\"file\":\"r.py\","
                         "\"line\":1},{\"name\":\"recurse\",\"file\":\"r.py\","
                         "\"line\":5}]}");
    CHECK_CONTAINS(&out, "\"samples\":[[0,1,1,1,");
    CHECK_CONTAINS(&out, ",1,1]],\"weights\":[1000000]}");
    size_t commas = 0;
    for (size_t i = 0; i < out.len; i++) {
        commas += out.data[i] == ',';
    }
    /* 10,000 separators in the stack, 16 elsewhere. */
    CHECK_EQ_U64(commas, 10000 + 16);
    rp_buf_free(&out);
    fx_free(&f);
}

static void
test_speedscope_fails_at_the_buffer_limit(void)
{
    fixture f;
    rp_buf out;
    fx_small(&f);
    rp_buf_init(&out, 0);
    CHECK(rp_write_speedscope(&out, &f.report) == 0);
    size_t full = out.len;
    rp_buf_free(&out);
    for (size_t limit = 1; limit < full; limit += 29) {
        rp_buf_init(&out, limit);
        CHECK(rp_write_speedscope(&out, &f.report) == -1);
        CHECK(out.failed && out.len <= limit);
        rp_buf_free(&out);
    }
    fx_free(&f);
}

/* Frame ids past the symbol table share one "[unknown]" frame. */
static void
test_speedscope_unknown_ids_share_a_frame(void)
{
    fixture f;
    rp_buf out;
    const uint32_t a[] = {70}, b[] = {71};
    rp_symtab_init(&f.syms);
    fx_sym(&f.syms, RP_KIND_FRAME, "root", "r.py", "r.py", 1);
    CHECK(rp_tree_init(&f.tree, 0, 10, 0) == 0);
    rp_tree_add_sample(&f.tree, a, 1, RP_NONE, 2 * MS, 0);
    rp_tree_add_sample(&f.tree, b, 1, RP_NONE, MS, 0);
    fx_report(&f);
    rp_buf_init(&out, 0);
    CHECK(rp_write_speedscope(&out, &f.report) == 0);
    CHECK_CONTAINS(&out, "\"frames\":[{\"name\":\"root\",\"file\":\"r.py\","
                         "\"line\":1},{\"name\":\"[unknown]\"}]}");
    CHECK_CONTAINS(&out, "\"samples\":[[0,1],[0,1]]");
    rp_buf_free(&out);
    fx_free(&f);
}

int
main(void)
{
    RUN(test_speedscope_of_a_small_profile_is_exact);
    RUN(test_speedscope_names_the_profile_after_the_root_without_meta);
    RUN(test_speedscope_escapes_hostile_names);
    RUN(test_speedscope_of_an_empty_tree);
    RUN(test_speedscope_of_a_10000_deep_chain);
    RUN(test_speedscope_fails_at_the_buffer_limit);
    RUN(test_speedscope_unknown_ids_share_a_frame);
    return check_summary();
}

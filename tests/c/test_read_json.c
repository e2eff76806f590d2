/* test_read_json.c - the JSON reader (read_json.c): what rp_write_json
 * writes reads back to a report that writes the same bytes (small,
 * hostile, empty, 100,000 deep, ties and look-alike siblings); every
 * malformed or off-schema document is refused with a message and nothing
 * leaked (every prefix of a valid document, byte flips, hand-picked cases).
 */
#include "profile_fixture.h"
#include "read_json.h"

/* JSON of r, read back, written again: the same bytes. */
static void
check_round_trip(const rp_report *r)
{
    rp_buf a, b;
    rp_loaded l;
    char err[256];
    rp_report back;
    rp_buf_init(&a, 0);
    rp_buf_init(&b, 0);
    CHECK(rp_write_json(&a, r) == 0);
    int rc = rp_read_json(a.data, a.len, &l, err, sizeof(err));
    CHECK(rc == RP_READ_OK);
    if (rc != RP_READ_OK) {
        fprintf(stderr, "    %s\n", err);
    }
    else {
        rp_loaded_report(&l, &back);
        CHECK(rp_write_json(&b, &back) == 0);
        CHECK_MEM(b.data, b.len, a.data, a.len);
        rp_loaded_free(&l);
    }
    rp_buf_free(&a);
    rp_buf_free(&b);
}

static void
test_small_profile_round_trips(void)
{
    fixture f;
    fx_small(&f);
    check_round_trip(&f.report);
    f.report.async_mode = "strict";
    f.report.truncated = RP_REPORT_TRUNC_DEPTH | RP_REPORT_TRUNC_DURATION;
    f.tree.truncated = RP_TRUNC_BYTES;
    f.report.started_at = 1712345678.123456789;
    f.report.duration_s = 1e-9;
    f.report.interval_s = 0.0001;
    check_round_trip(&f.report);
    fx_free(&f);
}

/* The overhead budget, the interval it made and the engine's CPU. */
static void
test_budget_and_engine_cpu_round_trip(void)
{
    fixture f;
    rp_buf a;
    rp_loaded l;
    char err[256];
    fx_small(&f);
    f.report.effective_interval_s = 0.0043771;
    f.report.budget_percent = 0.01;
    f.report.has_sampler_cpu = 1;
    f.report.sampler_cpu_ns = 12345678;
    check_round_trip(&f.report);
    rp_buf_init(&a, 0);
    CHECK(rp_write_json(&a, &f.report) == 0);
    CHECK(rp_read_json(a.data, a.len, &l, err, sizeof(err)) == RP_READ_OK);
    CHECK(l.effective_interval_s == 0.0043771);
    CHECK(l.budget_percent == 0.01);
    CHECK(l.has_sampler_cpu);
    CHECK_EQ_U64(l.sampler_cpu_ns, 12345678);
    rp_loaded_free(&l);
    rp_buf_free(&a);
    f.report.sampler_cpu_ns = 0;    /* known, and none */
    check_round_trip(&f.report);
    f.report.has_sampler_cpu = 0;
    f.report.budget_percent = 100.0;
    check_round_trip(&f.report);
    fx_free(&f);
}

/* A wait for a busy event loop, its blockers, and a loop block. */
static void
test_loop_busy_and_loop_block_round_trip(void)
{
    fixture f;
    fx_small(&f);
    uint32_t busy = fx_sym(&f.syms, RP_KIND_LOOP_BUSY, "[event loop busy]",
                           "", "", 0);
    uint32_t hog = fx_sym(&f.syms, RP_KIND_BLOCKER, "GET /hog", "", "", 0);
    uint32_t none = fx_sym(&f.syms, RP_KIND_BLOCKER, "[no request]", "", "",
                           0);
    const uint32_t p_hog[] = {1, 2, busy, hog, 3};
    const uint32_t p_none[] = {1, 2, busy, none};
    rp_tree_add_sample(&f.tree, p_hog, 5, 31, 7 * MS, 0);
    rp_tree_add_sample(&f.tree, p_none, 4, RP_NONE, MS, 0);
    check_round_trip(&f.report);
    f.report.loop_block_s = 0.24;
    f.report.loop_block_sym = 1;
    f.report.loop_block_line = 88;
    check_round_trip(&f.report);
    f.report.loop_block_sym = RP_NONE;  /* known length, unknown place */
    check_round_trip(&f.report);
    fx_free(&f);
}

static void
test_hostile_and_empty_profiles_round_trip(void)
{
    fixture f;
    fx_hostile(&f);
    check_round_trip(&f.report);
    fx_free(&f);
    fx_empty(&f);
    check_round_trip(&f.report);
    fx_free(&f);
}

static void
test_a_100000_deep_chain_round_trips(void)
{
    fixture f;
    fx_deep(&f, 100000);
    check_round_trip(&f.report);
    fx_free(&f);
}

/* Siblings that tie on wall time keep their order even when the later one
 * was met earlier in the document (its symbol has the lower id), and
 * siblings that are different code objects with the same name, file and
 * line stay two nodes.
 *
 *   root
 *     x        3 ms    (ids: root 0, x 1, c 2, b 3, twin 4, twin 5)
 *       b      3 ms    <- b is read first here
 *     twin     2 ms
 *     twin     2 ms    <- the same content as the sibling before it
 *     c        1 ms
 *     b        1 ms    <- ties with c; written after it (id 3 > 2)
 */
static void
test_ties_and_look_alike_siblings_keep_their_order(void)
{
    fixture f;
    const uint32_t xb[] = {1, 3}, c[] = {2}, b[] = {3}, t1[] = {4},
        t2[] = {5};
    rp_symtab_init(&f.syms);
    fx_sym(&f.syms, RP_KIND_FRAME, "root", "r.py", "r.py", 1);
    fx_sym(&f.syms, RP_KIND_FRAME, "x", "r.py", "r.py", 2);
    fx_sym(&f.syms, RP_KIND_FRAME, "c", "r.py", "r.py", 3);
    fx_sym(&f.syms, RP_KIND_FRAME, "b", "r.py", "r.py", 4);
    fx_sym(&f.syms, RP_KIND_FRAME, "twin", "t.py", "t.py", 9);
    fx_sym(&f.syms, RP_KIND_FRAME, "twin", "t.py", "t.py", 9);
    CHECK(rp_tree_init(&f.tree, 0, 100, 0) == 0);
    rp_tree_add_sample(&f.tree, xb, 2, 7, 3 * MS, 0);
    rp_tree_add_sample(&f.tree, t1, 1, 7, 2 * MS, 0);
    rp_tree_add_sample(&f.tree, t2, 1, 7, 2 * MS, 0);
    rp_tree_add_sample(&f.tree, c, 1, 7, MS, 0);
    rp_tree_add_sample(&f.tree, b, 1, 7, MS, 0);
    fx_report(&f);
    check_round_trip(&f.report);
    fx_free(&f);
}

/* Reading must fail with a message, and leave nothing to free. */
static void
check_rejects(const char *doc, size_t n, const char *want)
{
    rp_loaded l;
    char err[256];
    int rc = rp_read_json(doc, n, &l, err, sizeof(err));
    CHECK(rc == RP_READ_INVALID);
    CHECK(err[0] != '\0');
    if (rc == RP_READ_OK) {
        rp_loaded_free(&l);
    }
    else if (want != NULL && strstr(err, want) == NULL) {
        check_failures++;
        fprintf(stderr, "FAIL: %.60s: message \"%s\" lacks \"%s\"\n", doc,
                err, want);
    }
}

#define REJECTS(doc, want) check_rejects((doc), sizeof(doc) - 1, (want))

#define NODE "\"function\":\"f\",\"kind\":\"frame\""

static void
test_malformed_json_is_refused(void)
{
    REJECTS("", "unexpected end");
    REJECTS("   ", "unexpected end");
    REJECTS("{", "unexpected end");
    REJECTS("{\"version\":1,}", "expected a string key");
    REJECTS("{\"version\" 1}", "expected ':'");
    REJECTS("{\"version\":1 \"root\":{}}", "expected ',' or '}'");
    REJECTS("[1,]", "unexpected character");
    REJECTS("{} {}", "text after the document");
    REJECTS("{\"a\":01}", "expected ',' or '}'");
    REJECTS("{\"a\":1.}", "bad number");
    REJECTS("{\"a\":-}", "bad number");
    REJECTS("{\"a\":tru}", "unexpected character");
    REJECTS("{\"a\":\"\x01\"}", "control character");
    REJECTS("{\"a\":\"\\x\"}", "bad escape");
    REJECTS("{\"a\":\"\\u12g4\"}", "bad \\u escape");
    REJECTS("{\"a\":\"\xff\"}", "not UTF-8");
    REJECTS("{\"a\":\"\xed\xa0\x80\"}", "not UTF-8");   /* a surrogate */
    REJECTS("{\"a\":\"abc", "unterminated string");
    REJECTS("{\"a\":1}\0", "text after the document");
}

static void
test_documents_off_the_schema_are_refused(void)
{
    REJECTS("[]", "the profile must be an object");
    REJECTS("{\"root\":{" NODE "}}", "no \"version\"");
    REJECTS("{\"version\":2,\"root\":{" NODE "}}", "schema version 2");
    REJECTS("{\"version\":\"1\"}", "\"version\" must be a number");
    REJECTS("{\"version\":1}", "no \"root\"");
    REJECTS("{\"version\":1,\"version\":1}", "duplicate field \"version\"");
    REJECTS("{\"version\":1,\"root\":[]}", "\"root\" must be an object");
    REJECTS("{\"version\":1,\"root\":{\"kind\":\"frame\"}}",
            "no \"function\"");
    REJECTS("{\"version\":1,\"root\":{\"function\":\"f\"}}", "no \"kind\"");
    REJECTS("{\"version\":1,\"root\":{" NODE ",\"kind\":\"frame\"}}",
            "duplicate field \"kind\"");
    REJECTS("{\"version\":1,\"root\":{\"function\":\"f\",\"kind\":\"x\"}}",
            "unknown node kind \"x\"");
    REJECTS("{\"version\":1,\"root\":{\"function\":1,\"kind\":\"frame\"}}",
            "\"function\" must be a string");
    REJECTS("{\"version\":1,\"root\":{" NODE ",\"wall_s\":-0.5}}",
            "must not be negative");
    REJECTS("{\"version\":1,\"root\":{" NODE ",\"wall_s\":1e20}}",
            "out of range");
    REJECTS("{\"version\":1,\"root\":{" NODE ",\"samples\":1.5}}",
            "non-negative integer");
    REJECTS("{\"version\":1,\"root\":{" NODE ",\"samples\":"
            "18446744073709551616}}", "out of range");
    REJECTS("{\"version\":1,\"root\":{" NODE ",\"line\":4294967295}}",
            "out of range");
    REJECTS("{\"version\":1,\"root\":{" NODE ",\"lines\":{\"x\":1}}}",
            "must be a line number");
    REJECTS("{\"version\":1,\"root\":{" NODE ",\"lines\":{\"\":1}}}",
            "out of range");
    REJECTS("{\"version\":1,\"root\":{" NODE ",\"lines\":[]}}",
            "\"lines\" must be an object");
    REJECTS("{\"version\":1,\"root\":{" NODE ",\"children\":{}}}",
            "\"children\" must be an array");
    REJECTS("{\"version\":1,\"root\":{" NODE ",\"children\":[1]}}",
            "a node must be an object");
    REJECTS("{\"version\":1,\"root\":{" NODE ",\"children\":[{" NODE
            "},{\"function\":\"g\"}]}}", "node #3 has no \"kind\"");
    REJECTS("{\"version\":1,\"async_mode\":\"fast\",\"root\":{" NODE "}}",
            "\"async_mode\" must be");
    REJECTS("{\"version\":1,\"truncated_reasons\":[\"cosmic rays\"],"
            "\"root\":{" NODE "}}", "unknown truncation reason");
    REJECTS("{\"version\":1,\"truncated\":1,\"root\":{" NODE "}}",
            "\"truncated\" must be true or false");
    REJECTS("{\"version\":1,\"meta\":{\"a\":{}},\"root\":{" NODE "}}",
            "\"meta\" values must be");
    REJECTS("{\"version\":1,\"meta\":[],\"root\":{" NODE "}}",
            "\"meta\" must be an object");
    REJECTS("{\"version\":1,\"started_at\":1e999,\"root\":{" NODE "}}",
            "finite number");
    REJECTS("{\"version\":1,\"duration_s\":-1,\"root\":{" NODE "}}",
            "finite number");
    REJECTS("{\"version\":1,\"max_depth\":-1,\"root\":{" NODE "}}",
            "non-negative integer");
    REJECTS("{\"version\":1,\"loop_block\":1,\"root\":{" NODE "}}",
            "\"loop_block\" must be an object");
    REJECTS("{\"version\":1,\"loop_block\":{\"line\":3},\"root\":{" NODE
            "}}", "\"loop_block\" has no \"wall_s\"");
    REJECTS("{\"version\":1,\"loop_block\":{\"wall_s\":-1},\"root\":{"
            NODE "}}", "finite number");
    REJECTS("{\"version\":1,\"loop_block\":{\"wall_s\":1,\"function\":2},"
            "\"root\":{" NODE "}}", "must be a string");
    REJECTS("{\"version\":1,\"effective_interval_s\":-0.001,\"root\":{"
            NODE "}}", "finite number");
    REJECTS("{\"version\":1,\"overhead_budget_percent\":0,\"root\":{"
            NODE "}}", "must be null or a number > 0 and <= 100");
    REJECTS("{\"version\":1,\"overhead_budget_percent\":100.5,\"root\":{"
            NODE "}}", "must be null or a number > 0 and <= 100");
    REJECTS("{\"version\":1,\"overhead_budget_percent\":\"1\",\"root\":{"
            NODE "}}", "must be a number");
    REJECTS("{\"version\":1,\"sampler_cpu_s\":-1,\"root\":{" NODE "}}",
            "must not be negative");
    REJECTS("{\"version\":1,\"sampler_cpu_percent\":true,\"root\":{"
            NODE "}}", "must be a number");
}

static void
test_nesting_is_bounded(void)
{
    size_t n = (size_t)RP_READ_MAX_NESTING + 10;
    char *doc = malloc(n);
    CHECK(doc != NULL);
    if (doc != NULL) {
        memset(doc, '[', n);
        check_rejects(doc, n, "nested deeper than");
    }
    free(doc);
}

/* Minimal documents: defaults, unknown fields ignored, escapes decoded. */
static void
test_defaults_unknown_fields_and_escapes(void)
{
    static const char doc[] =
        "{\"later\":[{\"x\":null}],\"version\":1,\"root\":{"
        "\"function\":\"caf\\u00e9 \\ud83d\\ude00 \\udcff \\\"\\n\","
        "\"kind\":\"await\",\"future\":{\"a\":[1,2]},"
        "\"wall_s\":1.0000000005,\"cpu_s\":2e-3,\"self_wall_s\":0.25E1,"
        "\"samples\":0,\"lines\":{\"7\":1e-9}},"
        "\"meta\":{\"n\":-1.5e3,\"t\":true,\"z\":null,\"s\":\"\\u003c\"}}";
    rp_loaded l;
    char err[256];
    int rc = rp_read_json(doc, sizeof(doc) - 1, &l, err, sizeof(err));
    CHECK(rc == RP_READ_OK);
    if (rc != RP_READ_OK) {
        fprintf(stderr, "    %s\n", err);
        return;
    }
    CHECK_STR(l.version, "");
    CHECK_EQ_U64(l.async_mode, 0);
    CHECK(l.effective_interval_s == 0.0 && l.budget_percent == 0.0);
    CHECK(!l.has_sampler_cpu);
    CHECK_EQ_U64(l.tree.n_nodes, 1);
    const rp_sym *sym = rp_symtab_get(&l.syms, l.tree.nodes[0].frame);
    CHECK(sym->kind == RP_KIND_AWAIT);
    CHECK_MEM(sym->function.s, sym->function.len,
              "caf\xC3\xA9 \xF0\x9F\x98\x80 " FFFD " \"\n", 17);
    CHECK_EQ_U64(l.tree.nodes[0].wall_ns, 1000000001);   /* rounded up */
    CHECK_EQ_U64(l.tree.nodes[0].cpu_ns, 2000000);
    CHECK_EQ_U64(l.tree.nodes[0].self_wall_ns, 2500000000ull);
    CHECK_EQ_U64(l.tree.n_lines, 1);
    CHECK_EQ_U64(l.tree.lines[0].loc, 7);
    CHECK_EQ_U64(l.tree.lines[0].self_wall_ns, 1);
    CHECK_EQ_U64(l.n_meta, 4);
    CHECK_STR(l.meta[0].value.s, "-1.5e3");
    CHECK(l.meta[0].is_literal && l.meta[1].is_literal
          && l.meta[2].is_literal && !l.meta[3].is_literal);
    CHECK_STR(l.meta[2].value.s, "null");
    CHECK_STR(l.meta[3].value.s, "<");
    rp_loaded_free(&l);
}

/* Every prefix of a valid document, and every single-byte change of it,
 * either reads or is refused: no crash, no leak (ASan), never a partial
 * result. */
static void
test_prefixes_and_byte_flips_never_crash(void)
{
    fixture f;
    rp_buf doc;
    rp_loaded l;
    char err[256];
    static const char flips[] = "{}[]\",:0-e.\\ax\xff";
    fx_small(&f);
    rp_buf_init(&doc, 0);
    CHECK(rp_write_json(&doc, &f.report) == 0);
    for (size_t n = 0; n < doc.len; n++) {
        CHECK(rp_read_json(doc.data, n, &l, err, sizeof(err))
              == RP_READ_INVALID);
    }
    size_t accepted = 0;
    for (size_t i = 0; i < doc.len; i++) {
        char saved = doc.data[i];
        for (size_t k = 0; k < sizeof(flips) - 1; k++) {
            doc.data[i] = flips[k];
            int rc = rp_read_json(doc.data, doc.len, &l, err, sizeof(err));
            CHECK(rc == RP_READ_OK || rc == RP_READ_INVALID);
            if (rc == RP_READ_OK) {
                accepted++;
                rp_loaded_free(&l);
            }
        }
        doc.data[i] = saved;
    }
    CHECK(accepted > 0);    /* some changes are harmless (a name's letter) */
    rp_buf_free(&doc);
    fx_free(&f);
}

int
main(void)
{
    RUN(test_small_profile_round_trips);
    RUN(test_budget_and_engine_cpu_round_trip);
    RUN(test_loop_busy_and_loop_block_round_trip);
    RUN(test_hostile_and_empty_profiles_round_trip);
    RUN(test_a_100000_deep_chain_round_trips);
    RUN(test_ties_and_look_alike_siblings_keep_their_order);
    RUN(test_malformed_json_is_refused);
    RUN(test_documents_off_the_schema_are_refused);
    RUN(test_nesting_is_bounded);
    RUN(test_defaults_unknown_fields_and_escapes);
    RUN(test_prefixes_and_byte_flips_never_crash);
    return check_summary();
}

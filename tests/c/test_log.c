/* test_log.c - the log record of a sampled request (write_log.c): the
 * summary line, the numbers and names of its fields, the tree under it;
 * and the top frames they rank (report.c). That the text is the Python
 * code's, byte for byte, is tests/test_log_record.py's part.
 */
#include "profile_fixture.h"

#define STR(lit) ((rp_str){(char *)(lit), sizeof(lit) - 1})

typedef struct record {
    rp_buf line, names, tree;
    rp_log_fields f;
    int rc;
} record;

static const rp_text_opts TREE_OPTS = {0, 0, 1.0, 40, 1, NULL, 0};

static rp_log_request
plain_request(void)
{
    rp_log_request q;
    memset(&q, 0, sizeof(q));
    q.method = STR("GET");
    q.target = STR("/items/{id}");
    q.status = STR("200");
    q.trigger = STR("auto");
    q.span_id = STR("None");
    return q;
}

static rp_log_head
head(const char *samples, int count, double duration_s)
{
    rp_log_head h;
    memset(&h, 0, sizeof(h));
    h.samples = (rp_str){(char *)samples, strlen(samples)};
    h.sampled = count > 0;
    h.one_sample = count == 1;
    h.duration_s = duration_s;
    return h;
}

static void
write_record(record *w, const rp_report *r, const rp_log_head *h,
             const rp_log_request *q, size_t tree_limit)
{
    rp_buf_init(&w->line, 0);
    rp_buf_init(&w->names, 0);
    rp_buf_init(&w->tree, tree_limit);
    w->rc = rp_write_log(&w->line, &w->names, &w->tree, &w->f, r, h, q,
                         &TREE_OPTS);
}

static void
record_free(record *w)
{
    rp_buf_free(&w->line);
    rp_buf_free(&w->names);
    rp_buf_free(&w->tree);
}

#define CHECK_SPAN(w, span, want)                                           \
    check_mem_at(__FILE__, __LINE__, #span, (w)->names.data + (span).off,   \
                 (span).len, (want), sizeof(want) - 1)

static void
test_top_frames_rank_self_time(void)
{
    fixture f;
    uint32_t ids[4];
    uint64_t ns[4];
    fx_small(&f);
    /* [await] 3 ms, fast 1.5, slow 1, handler 0.5 */
    CHECK(rp_top_frames(&f.tree, &f.syms, 4, ids, ns) == 4);
    CHECK_EQ_U64(ids[0], 2);
    CHECK_EQ_U64(ns[0], 3 * MS);
    CHECK_EQ_U64(ids[1], 3);
    CHECK_EQ_U64(ns[1], 3 * MS / 2);
    CHECK_EQ_U64(ids[2], 1);
    CHECK_EQ_U64(ids[3], 0);
    CHECK(rp_top_frames(&f.tree, &f.syms, 1, ids, ns) == 1);
    CHECK_EQ_U64(ids[0], 2);
    CHECK(rp_top_frames(&f.tree, &f.syms, 0, ids, ns) == 0);
    fx_free(&f);
}

static void
test_line_fields_and_tree_of_a_small_request(void)
{
    fixture f;
    record w;
    rp_buf want_tree;
    fx_small(&f);
    rp_log_head h = head("4", 4, 0.007);
    h.cpu_s = 0.003;
    h.truncated = 1;
    rp_log_request q = plain_request();
    write_record(&w, &f.report, &h, &q, 0);
    CHECK(w.rc == 0);
    CHECK_BUF(&w.line,
              "GET /items/{id} -> 200 in 7.0 ms, 4 samples (auto), truncated; "
              "top: [await] 3.0 ms, fast (lib/fast.py:30) 1.5 ms, "
              "slow (app.py:20) 1.0 ms");
    CHECK(w.f.duration_ms == 7.0 && w.f.cpu_ms == 3.0 && w.f.gc_ms == 0.0);
    CHECK_EQ_U64(w.f.n_top, 3);
    CHECK_SPAN(&w, w.f.top_name[1], "fast (lib/fast.py:30)");
    CHECK(w.f.top_ms[0] == 3.0 && w.f.top_ms[1] == 1.5 && w.f.top_ms[2] == 1.0);
    CHECK(w.f.running_ms == 3.0 && w.f.awaiting_ms == 3.0);
    CHECK(w.f.loop_busy_ms == 0.0 && w.f.n_blockers == 0 && !w.f.has_block_at);
    /* The tree is the log style's, without its last line break. */
    rp_buf_init(&want_tree, 0);
    CHECK(rp_write_text(&want_tree, &f.report, &TREE_OPTS) == 0);
    CHECK(want_tree.len > 0 && want_tree.data[want_tree.len - 1] == '\n');
    CHECK_MEM(w.tree.data, w.tree.len, want_tree.data, want_tree.len - 1);
    rp_buf_free(&want_tree);
    record_free(&w);
    fx_free(&f);
}

/* Text from the request escaped (surrogates as \udcxx); status and trigger
 * as they are; without a report, the line says so. */
static void
test_request_text_is_escaped_and_parts_come_in_order(void)
{
    rp_str exception = STR("ValueError: \x1b[2J\nboom");
    rp_str ended = STR("PROFILING_MANUAL_TIMEOUT");
    rp_str trace = STR("4bf9\r");
    rp_str under = STR("short request");
    record w;
    rp_log_head h = head("1", 1, 0.00125);
    h.has_response = 1;
    h.response_s = 0.00075;
    h.gc_s = 0.00025;
    h.undersampled = &under;
    rp_log_request q = plain_request();
    q.method = STR("G\nET");
    q.target = STR("/x\xED\xB3\xBF\xC2\x85");
    q.status = STR("-");
    q.trigger = STR("manual");
    q.exception = &exception;
    q.ended = &ended;
    q.response_cut = 1;
    q.trace_id = &trace;
    write_record(&w, NULL, &h, &q, 0);
    CHECK(w.rc == 0);
    CHECK_BUF(&w.line,
              "G\\nET /x\\udcff\\x85 -> - in 1.2 ms, 1 sample (manual), raised "
              "ValueError: \\x1b[2J\\nboom, ended at PROFILING_MANUAL_TIMEOUT "
              "(the response was cut), response sent at 0.8 ms, GC 0.2 ms, "
              "undersampled (short request), trace 4bf9\\r span None");
    CHECK(w.f.response_ms == 0.75 && w.f.gc_ms == 0.25);
    CHECK_EQ_U64(w.tree.len, 0);        /* no report: no tree */
    record_free(&w);

    h = head("0", 0, 0.0004);
    q = plain_request();
    write_record(&w, NULL, &h, &q, 0);
    CHECK_BUF(&w.line,
              "GET /items/{id} -> 200 in 0.4 ms, 0 samples (auto); shorter "
              "than the sampling interval (PROFILING_INTERVAL): no call tree");
    record_free(&w);
}

/* GET /victim waited in an [await] while GET /export and [no request] held
 * the event loop, and held it itself at app/main.py:12. */
static void
loop_fixture(fixture *f, const char *block_file, size_t block_file_len)
{
    const uint32_t app[] = {1}, wait[] = {1, 2}, busy[] = {1, 2, 3},
        export[] = {1, 2, 3, 4}, burn[] = {1, 2, 3, 4, 5},
        none[] = {1, 2, 3, 6}, third[] = {1, 2, 3, 7};
    rp_symtab_init(&f->syms);
    fx_sym(&f->syms, RP_KIND_REQUEST, "GET /victim", "", "", 0);
    fx_sym(&f->syms, RP_KIND_FRAME, "handler", "/srv/app/main.py",
           "app/main.py", 10);
    fx_sym(&f->syms, RP_KIND_AWAIT, "[await]", "", "", 0);
    fx_sym(&f->syms, RP_KIND_LOOP_BUSY, "[event loop busy]", "", "", 0);
    fx_sym(&f->syms, RP_KIND_BLOCKER, "GET /ex\x1bport", "", "", 0);
    fx_sym(&f->syms, RP_KIND_FRAME, "burn", "/srv/app/x.py", "app/x.py", 3);
    fx_sym(&f->syms, RP_KIND_BLOCKER, "[no request]", "", "", 0);
    fx_sym(&f->syms, RP_KIND_BLOCKER, "POST /third", "", "", 0);
    uint32_t at = rp_symtab_add(&f->syms, RP_KIND_FRAME, "handler", 7,
                                block_file, block_file_len, "", 0, 10);
    CHECK(rp_tree_init(&f->tree, 0, 100, 0) == 0);
    rp_tree_add_sample(&f->tree, app, 1, 11, 8 * MS, 8 * MS);
    rp_tree_add_sample(&f->tree, wait, 2, RP_NONE, 12 * MS, 0);
    rp_tree_add_sample(&f->tree, busy, 3, RP_NONE, 0, 0);
    rp_tree_add_sample(&f->tree, export, 4, RP_NONE, 0, 0);
    rp_tree_add_sample(&f->tree, burn, 5, 4, 6 * MS, 0);
    rp_tree_add_sample(&f->tree, none, 4, RP_NONE, 2 * MS, 0);
    rp_tree_add_sample(&f->tree, third, 4, RP_NONE, 1 * MS, 0);
    fx_report(f);
    f->report.duration_s = 0.03;
    f->report.loop_block_s = 0.0525;
    f->report.loop_block_sym = at;
    f->report.loop_block_line = 12;
}

static void
test_event_loop_wait_and_block(void)
{
    fixture f;
    record w;
    loop_fixture(&f, "/srv/app/main.py", 16);
    rp_log_head h = head("5", 5, 0.03);
    rp_log_request q = plain_request();
    write_record(&w, &f.report, &h, &q, 0);
    CHECK(w.rc == 0);
    CHECK_BUF(&w.line,
              "GET /items/{id} -> 200 in 30.0 ms, 5 samples (auto): 9 ms "
              "waiting for a busy event loop (blocked by GET /ex\\x1bport 67%, "
              "[no request] 22%), 12 ms awaiting, 8 ms running, blocked the "
              "event loop for 52 ms at /srv/app/main.py:12; top: [await] 12.0 ms, "
              "[event loop busy] 9.0 ms, handler (app/main.py:10) 8.0 ms");
    CHECK_EQ_U64(w.f.n_blockers, 3);
    CHECK_SPAN(&w, w.f.blocker_name[0], "GET /ex\\x1bport");
    CHECK_SPAN(&w, w.f.blocker_name[2], "POST /third");
    CHECK(w.f.blocker_share[0] == 0.667 && w.f.blocker_share[1] == 0.222
          && w.f.blocker_share[2] == 0.111);
    CHECK(w.f.loop_busy_ms == 9.0 && w.f.loop_block_ms == 52.5);
    CHECK(w.f.has_block_at);
    CHECK_SPAN(&w, w.f.block_at, "/srv/app/main.py:12");
    record_free(&w);
    fx_free(&f);

    /* A block at a file name that is not UTF-8: Report.breakdown could
     * not make a str of it, and the line went without the breakdown. */
    loop_fixture(&f, "/srv/\xff.py", 9);
    write_record(&w, &f.report, &h, &q, 0);
    CHECK(w.rc == 0);
    CHECK_BUF(&w.line,
              "GET /items/{id} -> 200 in 30.0 ms, 5 samples (auto); top: "
              "[await] 12.0 ms, [event loop busy] 9.0 ms, handler "
              "(app/main.py:10) 8.0 ms");
    CHECK(w.f.loop_busy_ms == 0.0 && w.f.n_blockers == 0
          && w.f.loop_block_ms == 0.0 && !w.f.has_block_at);
    record_free(&w);
    fx_free(&f);
}

/* Names decoded as Python decodes them ("replace"), then escaped. */
static void
test_hostile_names_are_escaped(void)
{
    fixture f;
    record w;
    fx_hostile(&f);
    rp_log_head h = head("2", 2, 0.007);
    rp_log_request q = plain_request();
    write_record(&w, &f.report, &h, &q, 0);
    CHECK(w.rc == 0);
    CHECK_SPAN(&w, w.f.top_name[0],
               "a;b\\nc\\x00d\\t</script>\"\\" FFFD "\\x1b[2J&\\u2028z ("
               FFFD ".py:9)");
    CHECK(fx_utf8_valid(w.line.data, w.line.len));
    for (size_t i = 0; i < w.line.len; i++) {
        CHECK((unsigned char)w.line.data[i] >= 0x20
              && (unsigned char)w.line.data[i] != 0x7F);
    }
    record_free(&w);
    fx_free(&f);
}

/* A tree past its buffer's limit fails alone; a line that cannot be
 * written fails the record. */
static void
test_failures(void)
{
    fixture f;
    record w;
    fx_small(&f);
    rp_log_head h = head("4", 4, 0.007);
    rp_log_request q = plain_request();
    write_record(&w, &f.report, &h, &q, 10);
    CHECK(w.rc == 0);
    CHECK(w.tree.failed && !w.line.failed);
    CHECK_CONTAINS(&w.line, "; top: [await] 3.0 ms");
    record_free(&w);
    for (size_t limit = 1; limit < 120; limit += 13) {
        rp_buf_init(&w.line, limit);
        rp_buf_init(&w.names, 0);
        CHECK(rp_write_log(&w.line, &w.names, NULL, &w.f, &f.report, &h, &q,
                           NULL) == -1);
        rp_buf_free(&w.line);
        rp_buf_free(&w.names);
    }
    rp_buf_init(&w.line, 0);
    rp_buf_init(&w.names, 5);
    CHECK(rp_write_log(&w.line, &w.names, NULL, &w.f, &f.report, &h, &q,
                       NULL) == -1);
    rp_buf_free(&w.line);
    rp_buf_free(&w.names);
    fx_free(&f);
}

int
main(void)
{
    RUN(test_top_frames_rank_self_time);
    RUN(test_line_fields_and_tree_of_a_small_request);
    RUN(test_request_text_is_escaped_and_parts_come_in_order);
    RUN(test_event_loop_wait_and_block);
    RUN(test_hostile_names_are_escaped);
    RUN(test_failures);
    return check_summary();
}

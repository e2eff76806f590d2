/* test_aggregate.c - latency histograms (hist.c) and per-route aggregates
 * (aggregate.c): bucket error, quantiles, the stored form and bad input,
 * symbols interned across requests' tables, routes, and every cap. */
#include <math.h>
#include <stdlib.h>

#include "aggregate.h"
#include "check.h"

#define MS 1000000ull

/* -- histograms ----------------------------------------------------------- */

static void
test_bucket_midpoint_within_one_percent(void)
{
    for (uint64_t v = 1; v < (1ull << 41); v = v + v / 7 + 1) {
        uint32_t b = rp_hist_bucket(v);
        CHECK(b < RP_HIST_BUCKETS);
        double mid = rp_hist_mid(b);
        if (v < (1ull << 40)) {
            CHECK(fabs(mid - (double)v) <= 0.008 * (double)v);
        }
    }
    for (uint64_t v = 0; v < RP_HIST_EXACT; v++) {
        CHECK_EQ_U64(rp_hist_mid(rp_hist_bucket(v)), v);
    }
    CHECK_EQ_U64(rp_hist_bucket(UINT64_MAX), RP_HIST_BUCKETS - 1);
    /* Buckets are ordered like values. */
    uint32_t last = 0;
    for (uint64_t v = 1; v < (1ull << 30); v += v / 3 + 1) {
        CHECK(rp_hist_bucket(v) >= last);
        last = rp_hist_bucket(v);
    }
}

static void
test_quantiles(void)
{
    uint64_t *h = calloc(RP_HIST_BUCKETS, sizeof(uint64_t));
    CHECK_EQ_U64(rp_hist_quantile(h, 0.5), 0);
    /* 1000 values: 1 ms .. 1000 ms. */
    for (uint64_t i = 1; i <= 1000; i++) {
        h[rp_hist_bucket(i * 1000)]++;
    }
    CHECK_EQ_U64(rp_hist_total(h), 1000);
    double p50 = rp_hist_quantile(h, 0.5), p99 = rp_hist_quantile(h, 0.99);
    double max = rp_hist_quantile(h, 1.0), min = rp_hist_quantile(h, 0.0);
    CHECK(fabs(p50 - 500000.0) <= 0.01 * 500000.0);
    CHECK(fabs(p99 - 990000.0) <= 0.01 * 990000.0);
    CHECK(fabs(max - 1000000.0) <= 0.01 * 1000000.0);
    CHECK(fabs(min - 1000.0) <= 0.01 * 1000.0);
    free(h);
}

static void
test_stored_form_round_trip_and_bad_input(void)
{
    uint64_t *h = calloc(RP_HIST_BUCKETS, sizeof(uint64_t));
    uint64_t *back = calloc(RP_HIST_BUCKETS, sizeof(uint64_t));
    h[0] = 3;
    h[200] = 1ull << 40;
    h[RP_HIST_BUCKETS - 1] = 7;
    rp_buf b;
    rp_buf_init(&b, 0);
    CHECK(rp_hist_encode(&b, h) == 0);
    CHECK(b.len < 32);
    CHECK(rp_hist_decode_add(back, (const unsigned char *)b.data, b.len) == 0);
    CHECK(memcmp(h, back, RP_HIST_BUCKETS * sizeof(uint64_t)) == 0);
    /* Added, not replaced. */
    CHECK(rp_hist_decode_add(back, (const unsigned char *)b.data, b.len) == 0);
    CHECK_EQ_U64(back[0], 6);
    /* Cut short, a bucket past the end, a varint past 64 bits. */
    CHECK(rp_hist_decode_add(back, (const unsigned char *)b.data, b.len - 1) < 0);
    const unsigned char past[] = {0xff, 0x7f, 0x01};
    CHECK(rp_hist_decode_add(back, past, sizeof(past)) < 0);
    const unsigned char huge[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
                                  0x80, 0x80, 0x01};
    CHECK(rp_hist_decode_add(back, huge, sizeof(huge)) < 0);
    rp_buf_free(&b);
    free(h);
    free(back);
}

/* -- aggregates ------------------------------------------------------------ */

static int
str_is(const rp_str *s, const char *t)
{
    return s->len == strlen(t) && memcmp(s->s, t, s->len) == 0;
}

/* A request's profile: a root and root -> f -> g, with the symbols added to
 * `st` in the order given (so ids differ between requests). */
static void
make_request(rp_tree *t, rp_symtab *st, int reversed, uint64_t g_ms)
{
    rp_symtab_init(st);
    const char *names[] = {"GET /x", "f", "g"};
    uint32_t ids[3];
    for (int k = 0; k < 3; k++) {
        int i = reversed ? 2 - k : k;
        ids[i] = rp_symtab_add(st, i == 0 ? RP_KIND_THREAD : RP_KIND_FRAME,
                               names[i], strlen(names[i]), "app.py", 6,
                               "app.py", 6, (uint32_t)(10 * i));
    }
    CHECK(rp_tree_init(t, ids[0], 100, 1 << 20) == 0);
    uint32_t path[2] = {ids[1], ids[2]};
    rp_tree_add_sample(t, path, 2, 3, g_ms * MS, g_ms * MS);
    rp_tree_add_sample(t, path, 1, 3, 1 * MS, 0);
}

static const rp_node *
child_named(const rp_agg *a, const rp_tree *t, uint32_t parent, const char *name)
{
    for (uint32_t c = t->nodes[parent].first_child; c != RP_NONE;
            c = t->nodes[c].next_sibling) {
        const rp_sym *s = rp_symtab_get(&a->syms, t->nodes[c].frame);
        if (s->function.len == strlen(name) && memcmp(s->function.s, name, s->function.len) == 0) {
            return &t->nodes[c];
        }
    }
    return NULL;
}

static void
test_requests_merge_across_symbol_tables(void)
{
    rp_agg a;
    CHECK(rp_agg_init(&a, 10, 1000, 64 << 20) == 0);
    for (int k = 0; k < 4; k++) {
        rp_tree t;
        rp_symtab st;
        make_request(&t, &st, k % 2, 5);
        uint32_t i = rp_agg_add(&a, "GET", 3, "/x", 2, &t, &st, 6 * MS, 5 * MS, k == 3);
        CHECK_EQ_U64(i, 0);
        rp_tree_free(&t);
        rp_symtab_free(&st);
    }
    CHECK_EQ_U64(a.n_routes, 1);
    CHECK_EQ_U64(a.syms.n, 3);
    const rp_route_agg *r = &a.routes[0];
    CHECK_EQ_U64(r->count, 4);
    CHECK_EQ_U64(r->errors, 1);
    CHECK_EQ_U64(r->wall_ns, 24 * MS);
    CHECK_EQ_U64(r->cpu_ns, 20 * MS);
    CHECK(r->has_tree);
    CHECK_EQ_U64(r->tree.nodes[0].wall_ns, 24 * MS);
    const rp_node *f = child_named(&a, &r->tree, 0, "f");
    CHECK(f != NULL);
    if (f != NULL) {
        CHECK_EQ_U64(f->wall_ns, 24 * MS);
        const rp_node *g = child_named(&a, &r->tree, (uint32_t)(f - r->tree.nodes), "g");
        CHECK(g != NULL && g->wall_ns == 20 * MS);
    }
    CHECK_EQ_U64(r->hist[rp_hist_bucket(6000)], 4);
    CHECK_EQ_U64(a.trees_dropped, 0);
    rp_agg_free(&a);
}

static void
test_routes_beyond_the_cap_are_other_routes(void)
{
    rp_agg a;
    CHECK(rp_agg_init(&a, 3, 1000, 64 << 20) == 0);
    char route[16];
    for (int k = 0; k < 10; k++) {
        int n = snprintf(route, sizeof(route), "/r%d", k);
        rp_agg_add(&a, "GET", 3, route, (size_t)n, NULL, NULL, MS, 0, 0);
    }
    CHECK_EQ_U64(a.n_routes, 4);
    CHECK(str_is(&a.routes[3].route, RP_OTHER_ROUTES));
    CHECK_EQ_U64(a.routes[3].count, 7);
    /* A known route still goes to itself. */
    CHECK_EQ_U64(rp_agg_add(&a, "GET", 3, "/r1", 3, NULL, NULL, MS, 0, 0), 1);
    CHECK_EQ_U64(a.requests, 11);
    rp_agg_free(&a);
}

static void
test_byte_cap_keeps_counting_without_trees(void)
{
    rp_agg a;
    CHECK(rp_agg_init(&a, 1000, 1000, 200 * 1024) == 0);
    char route[16];
    for (int k = 0; k < 100; k++) {
        rp_tree t;
        rp_symtab st;
        make_request(&t, &st, 0, 2);
        int n = snprintf(route, sizeof(route), "/r%d", k);
        rp_agg_add(&a, "GET", 3, route, (size_t)n, &t, &st, MS, 0, 0);
        rp_tree_free(&t);
        rp_symtab_free(&st);
    }
    /* Past the cap only the [other routes] bucket is added. */
    CHECK(a.bytes <= a.max_bytes + RP_HIST_BUCKETS * sizeof(uint64_t) + 16384);
    CHECK(a.trees_dropped > 0);
    CHECK_EQ_U64(a.requests, 100);
    uint64_t counted = 0;
    for (uint32_t i = 0; i < a.n_routes; i++) {
        counted += a.routes[i].count;
    }
    CHECK_EQ_U64(counted, 100);
    rp_agg_free(&a);
}

static void
test_node_cap_per_route(void)
{
    rp_agg a;
    CHECK(rp_agg_init(&a, 10, 2, 64 << 20) == 0);
    rp_tree t;
    rp_symtab st;
    make_request(&t, &st, 0, 5);
    rp_agg_add(&a, "GET", 3, "/x", 2, &t, &st, MS, 0, 0);
    CHECK(a.routes[0].tree.n_nodes <= 2);
    CHECK(a.routes[0].tree.truncated & RP_TRUNC_NODES);
    CHECK_EQ_U64(a.routes[0].tree.nodes[0].wall_ns, 6 * MS);     /* no time lost */
    rp_tree_free(&t);
    rp_symtab_free(&st);
    rp_agg_free(&a);
}

static void
test_many_routes_and_symbols_grow_the_tables(void)
{
    rp_agg a;
    CHECK(rp_agg_init(&a, 5000, 100, 256 << 20) == 0);
    char route[32];
    for (int k = 0; k < 3000; k++) {
        int n = snprintf(route, sizeof(route), "/route/%d", k);
        rp_agg_add(&a, k % 2 ? "GET" : "POST", k % 2 ? 3 : 4, route, (size_t)n,
                   NULL, NULL, (uint64_t)k * 1000, 0, 0);
    }
    CHECK_EQ_U64(a.n_routes, 3000);
    for (int k = 0; k < 3000; k += 97) {
        int n = snprintf(route, sizeof(route), "/route/%d", k);
        CHECK_EQ_U64(rp_agg_add(&a, k % 2 ? "GET" : "POST", k % 2 ? 3 : 4, route,
                                (size_t)n, NULL, NULL, 0, 0, 0), (uint64_t)k);
    }
    rp_agg_free(&a);
}

int
main(void)
{
    RUN(test_bucket_midpoint_within_one_percent);
    RUN(test_quantiles);
    RUN(test_stored_form_round_trip_and_bad_input);
    RUN(test_requests_merge_across_symbol_tables);
    RUN(test_routes_beyond_the_cap_are_other_routes);
    RUN(test_byte_cap_keeps_counting_without_trees);
    RUN(test_node_cap_per_route);
    RUN(test_many_routes_and_symbols_grow_the_tables);
    return check_summary();
}

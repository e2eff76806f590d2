/* test_tree.c - the call tree (tree.c): totals, lines, caps, merge,
 * location mapping, child order, and very deep / very wide trees.
 *
 * Every test ends by checking the tree's invariants (tree_ok): a node's
 * wall and CPU time are its self time plus its children's, parents come
 * before children, the child table finds every node, and no time is lost.
 */
#include <stdlib.h>

#include "check.h"
#include "tree.h"

#define MS 1000000ull

/* The tree's structural and accounting invariants; reports the first
 * broken one. */
static int
tree_ok_at(const rp_tree *t, const char *file, int line)
{
    for (uint32_t i = 0; i < t->n_nodes; i++) {
        const rp_node *n = &t->nodes[i];
        uint64_t wall = n->self_wall_ns, cpu = n->self_cpu_ns, samples = 0;
        uint64_t line_wall = 0;
        uint32_t children = 0;
        for (uint32_t c = n->first_child; c != RP_NONE;
                c = t->nodes[c].next_sibling) {
            if (c <= i || t->nodes[c].parent != i
                    || t->nodes[c].depth != n->depth + 1
                    || ++children > t->n_nodes) {
                CHECK_FAIL_AT(file, line, "node %u: bad child %u", i, c);
                return 0;
            }
            wall += t->nodes[c].wall_ns;
            cpu += t->nodes[c].cpu_ns;
            samples += t->nodes[c].samples;
        }
        for (uint32_t l = n->first_line; l != RP_NONE; l = t->lines[l].next) {
            if (l >= t->n_lines || t->lines[l].node != i) {
                CHECK_FAIL_AT(file, line, "node %u: bad line entry %u", i, l);
                return 0;
            }
            line_wall += t->lines[l].self_wall_ns;
        }
        if (wall != n->wall_ns || cpu != n->cpu_ns || samples > n->samples
                || line_wall > n->self_wall_ns) {
            CHECK_FAIL_AT(file, line,
                          "node %u: wall %" PRIu64 " != self+children %"
                          PRIu64 " (cpu %" PRIu64 "/%" PRIu64 ", samples %"
                          PRIu64 "/%" PRIu64 ", lines %" PRIu64 ")",
                          i, n->wall_ns, wall, n->cpu_ns, cpu, n->samples,
                          samples, line_wall);
            return 0;
        }
        if (i > 0 && rp_tree_find_child(t, n->parent, n->frame) != i) {
            CHECK_FAIL_AT(file, line, "node %u: not found by find_child", i);
            return 0;
        }
    }
    if (t->n_nodes > t->max_nodes
            || (t->max_bytes != 0 && t->bytes > t->max_bytes)) {
        CHECK_FAIL_AT(file, line, "over its caps: %u nodes, %zu bytes",
                      t->n_nodes, t->bytes);
        return 0;
    }
    return 1;
}

#define TREE_OK(t)                                                          \
    do {                                                                    \
        check_count++;                                                      \
        (void)tree_ok_at((t), __FILE__, __LINE__);                          \
    } while (0)

/* The self wall time recorded for `loc` of `node`, or UINT64_MAX. */
static uint64_t
line_wall(const rp_tree *t, uint32_t node, uint32_t loc)
{
    for (uint32_t l = t->nodes[node].first_line; l != RP_NONE;
            l = t->lines[l].next) {
        if (t->lines[l].loc == loc) {
            return t->lines[l].self_wall_ns;
        }
    }
    return UINT64_MAX;
}

static uint32_t
count_lines(const rp_tree *t, uint32_t node)
{
    uint32_t n = 0;
    for (uint32_t l = t->nodes[node].first_line; l != RP_NONE;
            l = t->lines[l].next) {
        n++;
    }
    return n;
}

static void
test_init_creates_root(void)
{
    rp_tree t;
    CHECK(rp_tree_init(&t, 7, 100, 0) == 0);
    CHECK_EQ_U64(t.n_nodes, 1);
    CHECK_EQ_U64(t.nodes[0].frame, 7);
    CHECK_EQ_U64(t.nodes[0].parent, RP_NONE);
    CHECK_EQ_U64(t.nodes[0].first_child, RP_NONE);
    CHECK_EQ_U64(t.nodes[0].first_line, RP_NONE);
    CHECK_EQ_U64(t.nodes[0].depth, 0);
    CHECK_EQ_U64(t.nodes[0].wall_ns, 0);
    CHECK_EQ_U64(t.truncated, 0);
    TREE_OK(&t);
    rp_tree_free(&t);
    CHECK_EQ_U64(t.n_nodes, 0);
    rp_tree_free(&t);       /* twice is harmless */
}

static void
test_samples_add_totals_self_times_and_counts(void)
{
    rp_tree t;
    const uint32_t ab[] = {1, 2}, ac[] = {1, 3}, a[] = {1};
    CHECK(rp_tree_init(&t, 0, 100, 0) == 0);
    uint32_t n_ab = rp_tree_add_sample(&t, ab, 2, RP_NONE, 10 * MS, 4 * MS);
    uint32_t n_ac = rp_tree_add_sample(&t, ac, 2, RP_NONE, 5 * MS, 5 * MS);
    CHECK(rp_tree_add_sample(&t, ab, 2, RP_NONE, 1 * MS, 1 * MS) == n_ab);
    uint32_t n_a = rp_tree_add_sample(&t, a, 1, RP_NONE, 2 * MS, 0);
    CHECK(rp_tree_add_sample(&t, NULL, 0, RP_NONE, 3 * MS, 1 * MS) == 0);
    CHECK_EQ_U64(t.n_nodes, 4);
    CHECK(n_a == rp_tree_find_child(&t, 0, 1));
    CHECK(n_ab == rp_tree_find_child(&t, n_a, 2));
    CHECK(n_ac == rp_tree_find_child(&t, n_a, 3));

    CHECK_EQ_U64(t.nodes[0].samples, 5);
    CHECK_EQ_U64(t.nodes[0].wall_ns, 21 * MS);
    CHECK_EQ_U64(t.nodes[0].cpu_ns, 11 * MS);
    CHECK_EQ_U64(t.nodes[0].self_wall_ns, 3 * MS);
    CHECK_EQ_U64(t.nodes[0].self_cpu_ns, 1 * MS);

    CHECK_EQ_U64(t.nodes[n_a].samples, 4);
    CHECK_EQ_U64(t.nodes[n_a].wall_ns, 18 * MS);
    CHECK_EQ_U64(t.nodes[n_a].cpu_ns, 10 * MS);
    CHECK_EQ_U64(t.nodes[n_a].self_wall_ns, 2 * MS);
    CHECK_EQ_U64(t.nodes[n_a].self_cpu_ns, 0);
    CHECK_EQ_U64(t.nodes[n_a].depth, 1);

    CHECK_EQ_U64(t.nodes[n_ab].samples, 2);
    CHECK_EQ_U64(t.nodes[n_ab].wall_ns, 11 * MS);
    CHECK_EQ_U64(t.nodes[n_ab].self_wall_ns, 11 * MS);
    CHECK_EQ_U64(t.nodes[n_ab].cpu_ns, 5 * MS);
    CHECK_EQ_U64(t.nodes[n_ab].depth, 2);
    CHECK_EQ_U64(t.nodes[n_ac].samples, 1);
    CHECK_EQ_U64(t.nodes[n_ac].wall_ns, 5 * MS);
    CHECK_EQ_U64(t.truncated, 0);
    TREE_OK(&t);
    rp_tree_free(&t);
}

static void
test_lines_sum_per_location_of_the_leaf(void)
{
    rp_tree t;
    const uint32_t ab[] = {1, 2};
    CHECK(rp_tree_init(&t, 0, 100, 0) == 0);
    uint32_t leaf = rp_tree_add_sample(&t, ab, 2, 40, 2 * MS, 0);
    rp_tree_add_sample(&t, ab, 2, 40, 3 * MS, 0);
    rp_tree_add_sample(&t, ab, 2, 42, 1 * MS, 0);
    rp_tree_add_sample(&t, ab, 2, RP_NONE, 7 * MS, 0);   /* no location */
    rp_tree_add_sample(&t, NULL, 0, 5, 1 * MS, 0);       /* the root's */
    CHECK_EQ_U64(line_wall(&t, leaf, 40), 5 * MS);
    CHECK_EQ_U64(line_wall(&t, leaf, 42), 1 * MS);
    CHECK_EQ_U64(count_lines(&t, leaf), 2);
    CHECK_EQ_U64(line_wall(&t, 0, 5), 1 * MS);
    CHECK_EQ_U64(count_lines(&t, t.nodes[leaf].parent), 0);
    CHECK_EQ_U64(t.nodes[leaf].self_wall_ns, 13 * MS);

    /* Direct use, and many locations on one node (the table grows). */
    CHECK(rp_tree_add_line(&t, leaf, 40, 1) == 0);
    CHECK_EQ_U64(line_wall(&t, leaf, 40), 5 * MS + 1);
    for (uint32_t loc = 1000; loc < 1500; loc++) {
        CHECK(rp_tree_add_line(&t, 0, loc, 0) == 0);
    }
    CHECK_EQ_U64(count_lines(&t, 0), 501);
    CHECK_EQ_U64(line_wall(&t, 0, 1499), 0);
    CHECK_EQ_U64(line_wall(&t, leaf, 42), 1 * MS);
    TREE_OK(&t);
    rp_tree_free(&t);
}

static void
test_find_child_and_get_child(void)
{
    rp_tree t;
    CHECK(rp_tree_init(&t, 0, 100, 0) == 0);
    CHECK_EQ_U64(rp_tree_find_child(&t, 0, 5), RP_NONE);
    uint32_t a = rp_tree_get_child(&t, 0, 5);
    CHECK(a != RP_NONE && a != 0);
    CHECK_EQ_U64(rp_tree_get_child(&t, 0, 5), a);
    CHECK_EQ_U64(rp_tree_find_child(&t, 0, 5), a);
    CHECK_EQ_U64(t.nodes[a].wall_ns, 0);
    CHECK_EQ_U64(t.nodes[a].samples, 0);
    /* Same frame under another parent is another node. */
    uint32_t b = rp_tree_get_child(&t, a, 5);
    CHECK(b != RP_NONE && b != a);
    CHECK_EQ_U64(rp_tree_find_child(&t, a, 5), b);
    CHECK_EQ_U64(rp_tree_find_child(&t, b, 5), RP_NONE);
    /* Frame ids are opaque: 0 and RP_NONE - 1 are ids like any other. */
    uint32_t z = rp_tree_get_child(&t, 0, 0);
    uint32_t m = rp_tree_get_child(&t, 0, RP_NONE - 1);
    CHECK(z != RP_NONE && m != RP_NONE && z != m);
    CHECK_EQ_U64(rp_tree_find_child(&t, 0, 0), z);
    CHECK_EQ_U64(t.n_nodes, 5);
    /* Growing past the initial pool keeps every node findable. */
    for (uint32_t f = 100; f < 180; f++) {
        CHECK(rp_tree_get_child(&t, b, f) != RP_NONE);
    }
    CHECK_EQ_U64(t.n_nodes, 85);
    CHECK_EQ_U64(rp_tree_find_child(&t, 0, 5), a);
    TREE_OK(&t);
    rp_tree_free(&t);
}

/* A sample whose path needs a node past the cap lands on the deepest node
 * it reached; its time is kept. */
static void
test_node_cap_charges_deepest_node_and_keeps_time(void)
{
    const uint32_t caps[] = {1, 4, 64, 100};
    for (size_t k = 0; k < sizeof(caps) / sizeof(caps[0]); k++) {
        rp_tree t;
        uint32_t path[10];
        uint64_t total = 0;
        CHECK(rp_tree_init(&t, 0, caps[k], 0) == 0);
        for (uint32_t s = 0; s < 50; s++) {
            for (uint32_t d = 0; d < 10; d++) {
                path[d] = s * 10 + d;           /* every sample distinct */
            }
            uint32_t got = rp_tree_add_sample(&t, path, 10, 1, MS + s, s);
            total += MS + s;
            CHECK(got != RP_NONE);
        }
        CHECK_EQ_U64(t.n_nodes, caps[k]);
        CHECK(t.truncated & RP_TRUNC_NODES);
        CHECK_EQ_U64(t.nodes[0].wall_ns, total);
        CHECK_EQ_U64(t.nodes[0].samples, 50);
        uint64_t self = 0;
        for (uint32_t i = 0; i < t.n_nodes; i++) {
            self += t.nodes[i].self_wall_ns;
        }
        CHECK_EQ_U64(self, total);
        TREE_OK(&t);
        rp_tree_free(&t);
    }

    /* The first sample fits (cap 4: root + 3), the deeper one is cut. */
    rp_tree t;
    const uint32_t deep[] = {1, 2, 3, 4, 5};
    CHECK(rp_tree_init(&t, 0, 4, 0) == 0);
    uint32_t at = rp_tree_add_sample(&t, deep, 5, 9, 7 * MS, 0);
    CHECK_EQ_U64(t.nodes[at].depth, 3);
    CHECK_EQ_U64(t.nodes[at].self_wall_ns, 7 * MS);
    CHECK_EQ_U64(count_lines(&t, at), 0);   /* 9 is the leaf's, not its */
    CHECK(t.truncated & RP_TRUNC_NODES);
    CHECK_EQ_U64(rp_tree_get_child(&t, at, 4), RP_NONE);
    /* Existing nodes are still found and charged. */
    CHECK_EQ_U64(rp_tree_add_sample(&t, deep, 2, RP_NONE, MS, 0),
                 t.nodes[at].parent);
    CHECK_EQ_U64(t.nodes[0].wall_ns, 8 * MS);
    TREE_OK(&t);
    rp_tree_free(&t);
}

static void
test_byte_cap_stops_growth_and_keeps_time(void)
{
    rp_tree t;
    const size_t max_bytes = 64 * 1024;
    uint64_t total = 0;
    CHECK(rp_tree_init(&t, 0, 1000000, max_bytes) == 0);
    for (uint32_t f = 0; f < 20000; f++) {
        uint32_t path[2] = {f % 7, f};
        rp_tree_add_sample(&t, path, 2, f, 1000, 10);
        total += 1000;
    }
    CHECK(t.truncated & RP_TRUNC_BYTES);
    CHECK(t.bytes <= max_bytes);
    CHECK(t.n_nodes < 20000);
    CHECK_EQ_U64(t.nodes[0].wall_ns, total);
    CHECK_EQ_U64(t.nodes[0].samples, 20000);
    TREE_OK(&t);
    rp_tree_free(&t);
}

/* Two trees with their own frame ids; the map renames src's ids. */
static void
test_merge_adds_nodes_totals_and_lines(void)
{
    rp_tree dst, src;
    const uint32_t d_ab[] = {1, 2};
    const uint32_t s_ab[] = {11, 12}, s_ac[] = {11, 13};
    uint32_t map[14];
    for (uint32_t i = 0; i < 14; i++) {
        map[i] = RP_NONE;
    }
    map[0] = 0;
    map[11] = 1;
    map[12] = 2;
    map[13] = 3;
    CHECK(rp_tree_init(&dst, 0, 100, 0) == 0);
    CHECK(rp_tree_init(&src, 0, 100, 0) == 0);
    uint32_t d_leaf = rp_tree_add_sample(&dst, d_ab, 2, 20, 4 * MS, 2 * MS);
    rp_tree_add_sample(&src, s_ab, 2, 20, 1 * MS, 1 * MS);
    rp_tree_add_sample(&src, s_ab, 2, 21, 2 * MS, 0);
    rp_tree_add_sample(&src, s_ac, 2, 30, 8 * MS, 8 * MS);
    rp_tree_add_sample(&src, NULL, 0, RP_NONE, 1 * MS, 0);
    CHECK(rp_tree_merge(&dst, &src, map) == 0);
    CHECK_EQ_U64(dst.n_nodes, 4);
    CHECK_EQ_U64(dst.truncated, 0);
    CHECK_EQ_U64(dst.nodes[0].wall_ns, 16 * MS);
    CHECK_EQ_U64(dst.nodes[0].cpu_ns, 11 * MS);
    CHECK_EQ_U64(dst.nodes[0].samples, 5);
    CHECK_EQ_U64(dst.nodes[0].self_wall_ns, 1 * MS);
    CHECK_EQ_U64(dst.nodes[d_leaf].wall_ns, 7 * MS);
    CHECK_EQ_U64(dst.nodes[d_leaf].samples, 3);
    CHECK_EQ_U64(line_wall(&dst, d_leaf, 20), 5 * MS);
    CHECK_EQ_U64(line_wall(&dst, d_leaf, 21), 2 * MS);
    uint32_t a = rp_tree_find_child(&dst, 0, 1);
    uint32_t c = rp_tree_find_child(&dst, a, 3);
    CHECK(c != RP_NONE);
    CHECK_EQ_U64(dst.nodes[c].wall_ns, 8 * MS);
    CHECK_EQ_U64(line_wall(&dst, c, 30), 8 * MS);
    CHECK_EQ_U64(dst.nodes[a].wall_ns, 15 * MS);
    TREE_OK(&dst);
    /* src is only read. */
    CHECK_EQ_U64(src.nodes[0].wall_ns, 12 * MS);
    TREE_OK(&src);

    /* Merging an empty tree changes nothing. */
    rp_tree empty;
    CHECK(rp_tree_init(&empty, 0, 10, 0) == 0);
    CHECK(rp_tree_merge(&dst, &empty, map) == 0);
    CHECK_EQ_U64(dst.nodes[0].wall_ns, 16 * MS);
    CHECK_EQ_U64(dst.n_nodes, 4);
    rp_tree_free(&empty);
    rp_tree_free(&src);
    rp_tree_free(&dst);
}

/* Whatever dst cannot hold folds into the nearest ancestor it has: times
 * stay consistent and complete. */
static void
test_merge_folds_into_ancestors_at_cap(void)
{
    rp_tree dst, src;
    uint32_t map[400];
    uint64_t total = 0;
    for (uint32_t i = 0; i < 400; i++) {
        map[i] = i;
    }
    CHECK(rp_tree_init(&dst, 0, 6, 0) == 0);
    CHECK(rp_tree_init(&src, 0, 1000, 0) == 0);
    rp_tree_add_sample(&dst, (const uint32_t[]){1, 2}, 2, 1, 3 * MS, MS);
    total += 3 * MS;
    for (uint32_t s = 0; s < 40; s++) {
        uint32_t path[5] = {1 + s % 3, 10 + s % 5, 100 + s, 200 + s, 300};
        rp_tree_add_sample(&src, path, 1 + s % 5, s, MS + s, s);
        total += MS + s;
    }
    TREE_OK(&src);
    CHECK(rp_tree_merge(&dst, &src, map) == -1);
    CHECK(dst.truncated & RP_TRUNC_NODES);
    CHECK_EQ_U64(dst.n_nodes, 6);
    CHECK_EQ_U64(dst.nodes[0].wall_ns, total);
    CHECK_EQ_U64(dst.nodes[0].samples, 41);
    uint64_t self = 0;
    for (uint32_t i = 0; i < dst.n_nodes; i++) {
        self += dst.nodes[i].self_wall_ns;
    }
    CHECK_EQ_U64(self, total);
    TREE_OK(&dst);
    rp_tree_free(&src);
    rp_tree_free(&dst);
}

/* Merging a tree that had been cut leaves a tree that says so. */
static void
test_merge_keeps_truncation_of_source(void)
{
    rp_tree dst, src;
    const uint32_t map[] = {0, 1, 2, 3};
    const uint32_t path[] = {1, 2, 3};
    CHECK(rp_tree_init(&dst, 0, 100, 0) == 0);
    CHECK(rp_tree_init(&src, 0, 2, 0) == 0);
    rp_tree_add_sample(&src, path, 3, RP_NONE, MS, 0);
    CHECK(src.truncated & RP_TRUNC_NODES);
    CHECK(rp_tree_merge(&dst, &src, map) == 0);
    CHECK(dst.truncated & RP_TRUNC_NODES);
    CHECK_EQ_U64(dst.nodes[0].wall_ns, MS);
    TREE_OK(&dst);
    rp_tree_free(&src);
    rp_tree_free(&dst);
}

/* Offsets to line numbers: loc / 10. */
static uint32_t
tens(void *ctx, const rp_tree *t, uint32_t node, uint32_t loc)
{
    (void)t;
    (void)node;
    (*(int *)ctx)++;
    return loc / 10;
}

static void
test_map_locs_rewrites_and_merges_locations(void)
{
    rp_tree t;
    int calls = 0;
    const uint32_t a[] = {1}, ab[] = {1, 2};
    CHECK(rp_tree_init(&t, 0, 100, 0) == 0);
    uint32_t na = rp_tree_add_sample(&t, a, 1, 100, 1 * MS, 0);
    rp_tree_add_sample(&t, a, 1, 104, 2 * MS, 0);
    rp_tree_add_sample(&t, a, 1, 110, 4 * MS, 0);
    uint32_t nb = rp_tree_add_sample(&t, ab, 2, 100, 8 * MS, 0);
    rp_tree_add_sample(&t, ab, 2, 109, 16 * MS, 0);
    CHECK_EQ_U64(t.n_lines, 5);
    CHECK(rp_tree_map_locs(&t, tens, &calls) == 0);
    CHECK_EQ_U64(calls, 5);
    CHECK_EQ_U64(t.n_lines, 3);
    CHECK_EQ_U64(line_wall(&t, na, 10), 3 * MS);
    CHECK_EQ_U64(line_wall(&t, na, 11), 4 * MS);
    CHECK_EQ_U64(count_lines(&t, na), 2);
    CHECK_EQ_U64(line_wall(&t, nb, 10), 24 * MS);  /* not na's */
    CHECK_EQ_U64(count_lines(&t, nb), 1);
    /* The new table is live: adds find mapped entries. */
    CHECK(rp_tree_add_line(&t, nb, 10, 0) == 0);
    CHECK_EQ_U64(line_wall(&t, nb, 10), 24 * MS);
    CHECK_EQ_U64(t.n_lines, 3);
    TREE_OK(&t);
    rp_tree_free(&t);

    /* A tree without lines calls nothing. */
    calls = 0;
    CHECK(rp_tree_init(&t, 0, 100, 0) == 0);
    CHECK(rp_tree_map_locs(&t, tens, &calls) == 0);
    CHECK_EQ_U64(calls, 0);
    rp_tree_free(&t);
}

static void
test_sorted_children_largest_wall_first_then_frame(void)
{
    rp_tree t;
    uint32_t out[8];
    CHECK(rp_tree_init(&t, 0, 100, 0) == 0);
    CHECK_EQ_U64(rp_tree_sorted_children(&t, 0, out, 8), 0);
    const uint32_t walls[][2] = {{7, 5}, {9, 10}, {3, 10}, {4, 1}, {8, 10}};
    for (size_t i = 0; i < 5; i++) {
        rp_tree_add_sample(&t, &walls[i][0], 1, RP_NONE, walls[i][1] * MS, 0);
    }
    CHECK_EQ_U64(rp_tree_sorted_children(&t, 0, out, 8), 5);
    const uint32_t want[] = {3, 8, 9, 7, 4};
    for (size_t i = 0; i < 5; i++) {
        CHECK_EQ_U64(t.nodes[out[i]].frame, want[i]);
    }
    /* Too small an array: the count, so the caller can ask again. */
    CHECK_EQ_U64(rp_tree_sorted_children(&t, 0, out, 2), 5);
    uint32_t leaf = out[0];
    CHECK_EQ_U64(rp_tree_sorted_children(&t, leaf, out, 8), 0);
    TREE_OK(&t);
    rp_tree_free(&t);
}

static void
test_deep_path_of_20000_frames(void)
{
    enum { DEPTH = 20000 };
    rp_tree t, copy;
    uint32_t *path = malloc(DEPTH * sizeof(uint32_t));
    uint32_t *map = malloc((DEPTH + 1) * sizeof(uint32_t));
    CHECK(path != NULL && map != NULL);
    if (path == NULL || map == NULL) {
        goto done;
    }
    for (uint32_t i = 0; i < DEPTH; i++) {
        path[i] = i + 1;
        map[i] = i;
    }
    map[DEPTH] = DEPTH;
    CHECK(rp_tree_init(&t, 0, 100000, 0) == 0);
    uint32_t leaf = rp_tree_add_sample(&t, path, DEPTH, 5, 3 * MS, MS);
    rp_tree_add_sample(&t, path, DEPTH / 2, 5, MS, 0);
    CHECK_EQ_U64(t.n_nodes, DEPTH + 1);
    CHECK_EQ_U64(t.nodes[leaf].depth, DEPTH);
    CHECK_EQ_U64(t.nodes[leaf].self_wall_ns, 3 * MS);
    CHECK_EQ_U64(t.nodes[0].wall_ns, 4 * MS);
    CHECK_EQ_U64(t.nodes[1].samples, 2);
    CHECK_EQ_U64(t.truncated, 0);
    TREE_OK(&t);

    CHECK(rp_tree_init(&copy, 0, 100000, 0) == 0);
    CHECK(rp_tree_merge(&copy, &t, map) == 0);
    CHECK(rp_tree_merge(&copy, &t, map) == 0);
    CHECK_EQ_U64(copy.n_nodes, DEPTH + 1);
    CHECK_EQ_U64(copy.nodes[0].wall_ns, 8 * MS);
    TREE_OK(&copy);
    rp_tree_free(&copy);
    rp_tree_free(&t);
done:
    free(path);
    free(map);
}

static void
test_100000_distinct_children_with_a_cap(void)
{
    rp_tree t;
    uint64_t total = 0;
    CHECK(rp_tree_init(&t, 0, 10000, 0) == 0);
    for (uint32_t f = 0; f < 100000; f++) {
        rp_tree_add_sample(&t, &f, 1, f, 1000 + f % 13, 1);
        total += 1000 + f % 13;
    }
    CHECK_EQ_U64(t.n_nodes, 10000);
    CHECK(t.truncated & RP_TRUNC_NODES);
    CHECK_EQ_U64(t.nodes[0].wall_ns, total);
    CHECK_EQ_U64(t.nodes[0].samples, 100000);
    /* The 90001 that did not fit are the root's own time. */
    uint64_t in_children = 0;
    for (uint32_t c = t.nodes[0].first_child; c != RP_NONE;
            c = t.nodes[c].next_sibling) {
        in_children += t.nodes[c].wall_ns;
    }
    CHECK_EQ_U64(t.nodes[0].self_wall_ns + in_children, total);
    uint32_t *order = malloc(10000 * sizeof(uint32_t));
    CHECK(order != NULL);
    if (order != NULL) {
        CHECK_EQ_U64(rp_tree_sorted_children(&t, 0, order, 10000), 9999);
        for (uint32_t i = 1; i < 9999; i++) {
            const rp_node *p = &t.nodes[order[i - 1]], *q = &t.nodes[order[i]];
            if (p->wall_ns < q->wall_ns
                    || (p->wall_ns == q->wall_ns && p->frame >= q->frame)) {
                CHECK(!"children out of order");
                break;
            }
        }
        free(order);
    }
    TREE_OK(&t);
    rp_tree_free(&t);
}

/* After a failed init (same state as a freed tree) nothing crashes. */
static void
test_failed_tree_is_inert(void)
{
    rp_tree t, ok;
    const uint32_t path[] = {1, 2};
    const uint32_t map[] = {0, 1, 2};
    CHECK(rp_tree_init(&t, 0, 10, 0) == 0);
    rp_tree_free(&t);
    CHECK_EQ_U64(rp_tree_add_sample(&t, path, 2, 1, MS, 0), RP_NONE);
    CHECK_EQ_U64(rp_tree_find_child(&t, 0, 1), RP_NONE);
    CHECK_EQ_U64(rp_tree_get_child(&t, 0, 1), RP_NONE);
    CHECK(rp_tree_add_line(&t, 0, 1, 1) == -1);
    CHECK(rp_tree_map_locs(&t, tens, &(int){0}) == 0);
    CHECK(rp_tree_init(&ok, 0, 10, 0) == 0);
    rp_tree_add_sample(&ok, path, 2, 1, MS, 0);
    CHECK(rp_tree_merge(&ok, &t, map) == 0);      /* nothing to add */
    CHECK(rp_tree_merge(&t, &ok, map) == -1);     /* nowhere to add */
    CHECK_EQ_U64(ok.nodes[0].wall_ns, MS);
    rp_tree_free(&ok);
    rp_tree_free(&t);
}

int
main(void)
{
    RUN(test_init_creates_root);
    RUN(test_samples_add_totals_self_times_and_counts);
    RUN(test_lines_sum_per_location_of_the_leaf);
    RUN(test_find_child_and_get_child);
    RUN(test_node_cap_charges_deepest_node_and_keeps_time);
    RUN(test_byte_cap_stops_growth_and_keeps_time);
    RUN(test_merge_adds_nodes_totals_and_lines);
    RUN(test_merge_folds_into_ancestors_at_cap);
    RUN(test_merge_keeps_truncation_of_source);
    RUN(test_map_locs_rewrites_and_merges_locations);
    RUN(test_sorted_children_largest_wall_first_then_frame);
    RUN(test_deep_path_of_20000_frames);
    RUN(test_100000_distinct_children_with_a_cap);
    RUN(test_failed_tree_is_inert);
    return check_summary();
}

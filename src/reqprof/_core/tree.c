/* tree.c - call trees (see tree.h for the contract).
 *
 * Layout: nodes live in one array and refer to each other by index, so the
 * pool can grow by realloc. Children form a singly linked list (for walking)
 * and are also indexed in an open-addressing table keyed by (parent, frame)
 * (for the sampler's lookups: one probe in the common case). Line stats use
 * the same scheme keyed by (node, loc). Tables stay at most half full.
 * A child is always created after its parent, so index order is a
 * topological order: merge and the writers rely on it.
 */
#include "tree.h"

#include <stdlib.h>
#include <string.h>

#define INITIAL_NODES 64u
#define INITIAL_LINES 64u

static uint32_t
hash2(uint32_t a, uint32_t b)
{
    uint64_t h = ((uint64_t)a << 32 | b) * 0x9E3779B97F4A7C15ull;
    return (uint32_t)(h >> 32);
}

static size_t
table_bytes(uint32_t cap_nodes, uint32_t cap_lines, uint32_t child_mask,
            uint32_t line_mask)
{
    return (size_t)cap_nodes * sizeof(rp_node)
        + (size_t)cap_lines * sizeof(rp_line_stat)
        + ((size_t)child_mask + 1) * sizeof(uint32_t)
        + ((size_t)line_mask + 1) * sizeof(uint32_t);
}

uint32_t *
rp_slots_new(uint32_t n)
{
    uint32_t *s = malloc((size_t)n * sizeof(uint32_t));
    if (s != NULL) {
        memset(s, 0xff, (size_t)n * sizeof(uint32_t));     /* RP_NONE */
    }
    return s;
}

int
rp_tree_init(rp_tree *t, uint32_t root_frame, uint32_t max_nodes,
             size_t max_bytes)
{
    memset(t, 0, sizeof(*t));
    t->max_nodes = max_nodes < 1 ? 1 : max_nodes;
    t->max_bytes = max_bytes;
    /* Never more room than the cap: reserve_node enforces the cap only
     * when the pool is full. */
    t->cap_nodes = t->max_nodes < INITIAL_NODES ? t->max_nodes
                                                : INITIAL_NODES;
    t->cap_lines = INITIAL_LINES;
    t->child_mask = 2 * INITIAL_NODES - 1;
    t->line_mask = 2 * INITIAL_LINES - 1;
    t->nodes = malloc(t->cap_nodes * sizeof(rp_node));
    t->lines = malloc(t->cap_lines * sizeof(rp_line_stat));
    t->child_slots = rp_slots_new(t->child_mask + 1);
    t->line_slots = rp_slots_new(t->line_mask + 1);
    if (t->nodes == NULL || t->lines == NULL || t->child_slots == NULL
            || t->line_slots == NULL) {
        rp_tree_free(t);
        t->truncated = RP_TRUNC_NOMEM;
        return -1;
    }
    t->bytes = table_bytes(t->cap_nodes, t->cap_lines, t->child_mask,
                           t->line_mask);
    rp_node *root = &t->nodes[0];
    memset(root, 0, sizeof(*root));
    root->parent = root->first_child = root->next_sibling = RP_NONE;
    root->first_line = RP_NONE;
    root->frame = root_frame;
    t->n_nodes = 1;
    return 0;
}

void
rp_tree_free(rp_tree *t)
{
    free(t->nodes);
    free(t->lines);
    free(t->child_slots);
    free(t->line_slots);
    t->nodes = NULL;
    t->lines = NULL;
    t->child_slots = t->line_slots = NULL;
    t->n_nodes = t->cap_nodes = t->n_lines = t->cap_lines = 0;
    t->child_mask = t->line_mask = 0;
    t->bytes = 0;
}

/* The capacity after `cap`: doubled, at most `limit`; `cap` itself when it
 * cannot grow. */
static uint32_t
next_cap(uint32_t cap, uint32_t limit)
{
    if (cap >= limit) {
        return cap;
    }
    return cap > limit / 2 ? limit : cap * 2;
}

/* The slot mask for `cap` entries at most half full. */
static uint32_t
mask_for(uint32_t cap, uint32_t mask)
{
    while ((uint64_t)mask + 1 < 2 * (uint64_t)cap) {
        mask = mask * 2 + 1;
    }
    return mask;
}

/* Room for one more node. 0, or -1 with the reason marked. */
static int
reserve_node(rp_tree *t)
{
    if (t->n_nodes < t->cap_nodes) {
        return 0;
    }
    uint32_t cap = next_cap(t->cap_nodes, t->max_nodes);
    if (cap == t->cap_nodes) {
        t->truncated |= RP_TRUNC_NODES;
        return -1;
    }
    uint32_t mask = mask_for(cap, t->child_mask);
    if (t->max_bytes
            && table_bytes(cap, t->cap_lines, mask, t->line_mask)
               > t->max_bytes) {
        t->truncated |= RP_TRUNC_BYTES;
        return -1;
    }
    uint32_t *slots = NULL;
    if (mask != t->child_mask) {
        slots = rp_slots_new(mask + 1);
        if (slots == NULL) {
            t->truncated |= RP_TRUNC_NOMEM;
            return -1;
        }
    }
    rp_node *nodes = realloc(t->nodes, (size_t)cap * sizeof(rp_node));
    if (nodes == NULL) {
        free(slots);
        t->truncated |= RP_TRUNC_NOMEM;
        return -1;
    }
    t->nodes = nodes;
    t->cap_nodes = cap;
    if (slots != NULL) {
        for (uint32_t i = 1; i < t->n_nodes; i++) {
            uint32_t h = hash2(nodes[i].parent, nodes[i].frame);
            while (slots[h & mask] != RP_NONE) {
                h++;
            }
            slots[h & mask] = i;
        }
        free(t->child_slots);
        t->child_slots = slots;
        t->child_mask = mask;
    }
    t->bytes = table_bytes(t->cap_nodes, t->cap_lines, t->child_mask,
                           t->line_mask);
    return 0;
}

/* Room for one more line entry; same contract as reserve_node. Line
 * entries share the node cap's count limit. */
static int
reserve_line(rp_tree *t)
{
    if (t->n_lines < t->cap_lines) {
        return 0;
    }
    uint32_t cap = next_cap(t->cap_lines, t->max_nodes < 1024 ? 1024
                                          : t->max_nodes);
    if (cap == t->cap_lines) {
        t->truncated |= RP_TRUNC_NODES;
        return -1;
    }
    uint32_t mask = mask_for(cap, t->line_mask);
    if (t->max_bytes
            && table_bytes(t->cap_nodes, cap, t->child_mask, mask)
               > t->max_bytes) {
        t->truncated |= RP_TRUNC_BYTES;
        return -1;
    }
    uint32_t *slots = NULL;
    if (mask != t->line_mask) {
        slots = rp_slots_new(mask + 1);
        if (slots == NULL) {
            t->truncated |= RP_TRUNC_NOMEM;
            return -1;
        }
    }
    rp_line_stat *lines = realloc(t->lines,
                                  (size_t)cap * sizeof(rp_line_stat));
    if (lines == NULL) {
        free(slots);
        t->truncated |= RP_TRUNC_NOMEM;
        return -1;
    }
    t->lines = lines;
    t->cap_lines = cap;
    if (slots != NULL) {
        for (uint32_t i = 0; i < t->n_lines; i++) {
            uint32_t h = hash2(lines[i].node, lines[i].loc);
            while (slots[h & mask] != RP_NONE) {
                h++;
            }
            slots[h & mask] = i;
        }
        free(t->line_slots);
        t->line_slots = slots;
        t->line_mask = mask;
    }
    t->bytes = table_bytes(t->cap_nodes, t->cap_lines, t->child_mask,
                           t->line_mask);
    return 0;
}

uint32_t
rp_tree_find_child(const rp_tree *t, uint32_t parent, uint32_t frame)
{
    if (t->child_slots == NULL) {
        return RP_NONE;
    }
    for (uint32_t h = hash2(parent, frame);; h++) {
        uint32_t i = t->child_slots[h & t->child_mask];
        if (i == RP_NONE) {
            return RP_NONE;
        }
        if (t->nodes[i].parent == parent && t->nodes[i].frame == frame) {
            return i;
        }
    }
}

uint32_t
rp_tree_get_child(rp_tree *t, uint32_t parent, uint32_t frame)
{
    if (t->child_slots == NULL) {
        return RP_NONE;
    }
    uint32_t h = hash2(parent, frame);
    for (;; h++) {
        uint32_t i = t->child_slots[h & t->child_mask];
        if (i == RP_NONE) {
            break;
        }
        if (t->nodes[i].parent == parent && t->nodes[i].frame == frame) {
            return i;
        }
    }
    uint32_t mask_before = t->child_mask;
    if (reserve_node(t) < 0) {
        return RP_NONE;
    }
    if (t->child_mask != mask_before) {
        /* Rehashed: find the free slot again. */
        h = hash2(parent, frame);
        while (t->child_slots[h & t->child_mask] != RP_NONE) {
            h++;
        }
    }
    uint32_t i = t->n_nodes++;
    rp_node *n = &t->nodes[i];
    rp_node *p = &t->nodes[parent];
    memset(n, 0, sizeof(*n));
    n->parent = parent;
    n->frame = frame;
    n->depth = p->depth + 1;
    n->first_child = RP_NONE;
    n->first_line = RP_NONE;
    n->next_sibling = p->first_child;
    p->first_child = i;
    t->child_slots[h & t->child_mask] = i;
    return i;
}

int
rp_tree_add_line(rp_tree *t, uint32_t node, uint32_t loc,
                 uint64_t self_wall_ns)
{
    if (t->line_slots == NULL) {
        return -1;
    }
    uint32_t h = hash2(node, loc);
    for (;; h++) {
        uint32_t i = t->line_slots[h & t->line_mask];
        if (i == RP_NONE) {
            break;
        }
        if (t->lines[i].node == node && t->lines[i].loc == loc) {
            t->lines[i].self_wall_ns += self_wall_ns;
            return 0;
        }
    }
    uint32_t mask_before = t->line_mask;
    if (reserve_line(t) < 0) {
        return -1;
    }
    if (t->line_mask != mask_before) {
        h = hash2(node, loc);
        while (t->line_slots[h & t->line_mask] != RP_NONE) {
            h++;
        }
    }
    uint32_t i = t->n_lines++;
    rp_line_stat *l = &t->lines[i];
    l->node = node;
    l->loc = loc;
    l->self_wall_ns = self_wall_ns;
    l->next = t->nodes[node].first_line;
    t->nodes[node].first_line = i;
    t->line_slots[h & t->line_mask] = i;
    return 0;
}

uint32_t
rp_tree_add_sample(rp_tree *t, const uint32_t *path, size_t n,
                   uint32_t leaf_loc, uint64_t wall_ns, uint64_t cpu_ns)
{
    return rp_tree_add(t, path, n, leaf_loc, wall_ns, cpu_ns, 1);
}

uint32_t
rp_tree_add(rp_tree *t, const uint32_t *path, size_t n, uint32_t leaf_loc,
            uint64_t wall_ns, uint64_t cpu_ns, uint64_t count)
{
    if (t->n_nodes == 0) {
        return RP_NONE;     /* failed init: nothing to charge */
    }
    uint32_t node = 0;
    size_t i = 0;
    for (; i < n; i++) {
        uint32_t child = rp_tree_get_child(t, node, path[i]);
        if (child == RP_NONE) {
            break;
        }
        node = child;
    }
    for (uint32_t m = node; m != RP_NONE; m = t->nodes[m].parent) {
        t->nodes[m].samples += count;
        t->nodes[m].wall_ns += wall_ns;
        t->nodes[m].cpu_ns += cpu_ns;
    }
    t->nodes[node].self_wall_ns += wall_ns;
    t->nodes[node].self_cpu_ns += cpu_ns;
    if (i == n && leaf_loc != RP_NONE) {
        (void)rp_tree_add_line(t, node, leaf_loc, wall_ns);
    }
    return node;
}

int
rp_tree_merge(rp_tree *dst, const rp_tree *src, const uint32_t *frame_map)
{
    if (src->n_nodes == 0 || dst->n_nodes == 0) {
        return src->n_nodes == 0 ? 0 : -1;
    }
    int rc = 0;
    /* What src lost, the merged tree lacks too. */
    dst->truncated |= src->truncated;
    /* map[i]: the dst node src node i lands on; folded[i]: it could not
     * be created and lands on its nearest created ancestor (whose totals
     * already hold it), so only its self times move. */
    uint32_t *map = malloc((size_t)src->n_nodes * sizeof(uint32_t));
    unsigned char *folded = calloc(src->n_nodes, 1);
    if (map == NULL || folded == NULL) {
        dst->truncated |= RP_TRUNC_NOMEM;
        rc = -1;
        goto done;
    }
    map[0] = 0;
    for (uint32_t i = 1; i < src->n_nodes; i++) {
        const rp_node *s = &src->nodes[i];
        uint32_t p = map[s->parent];
        uint32_t d = RP_NONE;
        if (!folded[s->parent]) {
            d = rp_tree_get_child(dst, p, frame_map[s->frame]);
        }
        if (d == RP_NONE) {
            map[i] = p;
            folded[i] = 1;
            rc = -1;
        }
        else {
            map[i] = d;
        }
    }
    for (uint32_t i = 0; i < src->n_nodes; i++) {
        const rp_node *s = &src->nodes[i];
        rp_node *d = &dst->nodes[map[i]];
        if (!folded[i]) {
            d->samples += s->samples;
            d->wall_ns += s->wall_ns;
            d->cpu_ns += s->cpu_ns;
        }
        d->self_wall_ns += s->self_wall_ns;
        d->self_cpu_ns += s->self_cpu_ns;
    }
    for (uint32_t i = 0; i < src->n_lines; i++) {
        const rp_line_stat *l = &src->lines[i];
        if (!folded[l->node]
                && rp_tree_add_line(dst, map[l->node], l->loc,
                                    l->self_wall_ns) < 0) {
            rc = -1;
        }
    }
done:
    free(map);
    free(folded);
    return rc;
}

int
rp_tree_map_locs(rp_tree *t, rp_loc_fn fn, void *ctx)
{
    if (t->n_lines == 0) {
        return 0;
    }
    /* Rebuild into fresh tables of the same size: entries only merge, so
     * nothing can overflow them, and the old ones stay intact on failure. */
    rp_line_stat *lines = malloc((size_t)t->cap_lines * sizeof(rp_line_stat));
    uint32_t *slots = rp_slots_new(t->line_mask + 1);
    uint32_t *heads = malloc((size_t)t->n_nodes * sizeof(uint32_t));
    if (lines == NULL || slots == NULL || heads == NULL) {
        free(lines);
        free(slots);
        free(heads);
        return -1;
    }
    memset(heads, 0xff, (size_t)t->n_nodes * sizeof(uint32_t));
    uint32_t n = 0;
    for (uint32_t i = 0; i < t->n_lines; i++) {
        const rp_line_stat *old = &t->lines[i];
        uint32_t loc = fn(ctx, t, old->node, old->loc);
        uint32_t h = hash2(old->node, loc);
        for (;; h++) {
            uint32_t j = slots[h & t->line_mask];
            if (j == RP_NONE) {
                lines[n].node = old->node;
                lines[n].loc = loc;
                lines[n].self_wall_ns = old->self_wall_ns;
                lines[n].next = heads[old->node];
                heads[old->node] = n;
                slots[h & t->line_mask] = n++;
                break;
            }
            if (lines[j].node == old->node && lines[j].loc == loc) {
                lines[j].self_wall_ns += old->self_wall_ns;
                break;
            }
        }
    }
    for (uint32_t i = 0; i < t->n_nodes; i++) {
        t->nodes[i].first_line = heads[i];
    }
    free(heads);
    free(t->lines);
    free(t->line_slots);
    t->lines = lines;
    t->line_slots = slots;
    t->n_lines = n;
    return 0;
}

/* Whether child a sorts before child b: larger wall first, then lower
 * frame id, then lower index (a total order, so output is stable). */
static int
sorts_before(const rp_tree *t, uint32_t a, uint32_t b)
{
    const rp_node *x = &t->nodes[a], *y = &t->nodes[b];
    if (x->wall_ns != y->wall_ns) {
        return x->wall_ns > y->wall_ns;
    }
    if (x->frame != y->frame) {
        return x->frame < y->frame;
    }
    return a < b;
}

static void
sift_down(const rp_tree *t, uint32_t *v, uint32_t start, uint32_t end)
{
    uint32_t root = start;
    for (;;) {
        uint32_t child = 2 * root + 1;
        if (child >= end) {
            return;
        }
        /* max-heap on "sorts after", so the array ends up in order */
        if (child + 1 < end && sorts_before(t, v[child], v[child + 1])) {
            child++;
        }
        if (!sorts_before(t, v[root], v[child])) {
            return;
        }
        uint32_t tmp = v[root];
        v[root] = v[child];
        v[child] = tmp;
        root = child;
    }
}

uint32_t
rp_tree_sorted_children(const rp_tree *t, uint32_t node, uint32_t *out,
                        uint32_t cap)
{
    uint32_t count = 0;
    for (uint32_t c = t->nodes[node].first_child; c != RP_NONE;
            c = t->nodes[c].next_sibling) {
        if (count < cap) {
            out[count] = c;
        }
        count++;
    }
    if (count > cap) {
        return count;   /* the caller asks again with room for all */
    }
    /* Heap sort with the heap ordered so that the "smallest" (sorts last)
     * is at the root, then extract to the end. */
    for (uint32_t i = count / 2; i-- > 0;) {
        sift_down(t, out, i, count);
    }
    for (uint32_t end = count; end > 1; end--) {
        uint32_t tmp = out[0];
        out[0] = out[end - 1];
        out[end - 1] = tmp;
        sift_down(t, out, 0, end - 1);
    }
    return count;
}

/* tree.h - call trees: a trie of frames in one node pool.
 *
 * Pure C (no Python), so it is unit-tested on its own and merged freely.
 * A node is identified by its index in `nodes`; node 0 is the root. A child
 * is keyed by (parent, frame id); frame ids are opaque here (the symbol
 * table or the code table gives them meaning). Each node keeps wall and CPU
 * totals, self times, a sample count and, per location, its self wall time
 * (a location is an instruction offset while sampling and a line number once
 * the report resolves it; see rp_tree_map_locs).
 *
 * Memory is bounded: the pool never holds more than `max_nodes` nodes nor
 * more than `max_bytes` bytes of tables. A sample whose path needs a node
 * past the cap is charged to the deepest node it reached and the tree is
 * marked truncated; time is never dropped. No function here fails in a way
 * the caller must handle while sampling.
 */
#ifndef RP_TREE_H
#define RP_TREE_H

#include <stddef.h>
#include <stdint.h>

#define RP_NONE UINT32_MAX

/* Why a tree stopped growing (bits of rp_tree.truncated). The session adds
 * its own reasons (depth, duration) in the report header. */
enum {
    RP_TRUNC_NODES = 1u << 0,   /* node cap reached */
    RP_TRUNC_BYTES = 1u << 1,   /* byte cap reached */
    RP_TRUNC_NOMEM = 1u << 2,   /* malloc failed */
};

typedef struct rp_node {
    uint32_t parent;        /* RP_NONE for the root */
    uint32_t first_child;   /* RP_NONE for a leaf */
    uint32_t next_sibling;  /* RP_NONE for the last child */
    uint32_t frame;         /* frame id */
    uint32_t depth;         /* root = 0 */
    uint32_t first_line;    /* index in rp_tree.lines, RP_NONE if none */
    uint64_t samples;
    uint64_t wall_ns;
    uint64_t cpu_ns;
    uint64_t self_wall_ns;
    uint64_t self_cpu_ns;
} rp_node;

typedef struct rp_line_stat {
    uint32_t node;          /* the node this entry belongs to */
    uint32_t loc;           /* instruction offset or line number */
    uint32_t next;          /* next entry of the same node, RP_NONE */
    uint64_t self_wall_ns;
} rp_line_stat;

typedef struct rp_tree {
    rp_node *nodes;
    uint32_t n_nodes, cap_nodes;
    rp_line_stat *lines;
    uint32_t n_lines, cap_lines;
    uint32_t *child_slots;  /* open addressing on (parent, frame): node index */
    uint32_t child_mask;
    uint32_t *line_slots;   /* open addressing on (node, loc): line index */
    uint32_t line_mask;
    uint32_t max_nodes;
    size_t max_bytes;
    size_t bytes;           /* bytes currently allocated for the tables */
    unsigned truncated;     /* RP_TRUNC_* */
} rp_tree;

/* Creates a tree whose root has frame id `root_frame`. Returns 0, or -1
 * when out of memory (the tree is then empty and safe to free). */
int rp_tree_init(rp_tree *t, uint32_t root_frame, uint32_t max_nodes,
                 size_t max_bytes);
void rp_tree_free(rp_tree *t);

/* A new open-addressing slot table of n entries, all RP_NONE (empty), or
 * NULL when out of memory. The tree's and the aggregate's hash tables. */
uint32_t *rp_slots_new(uint32_t n);

/* Records one sample: `path` holds n frame ids from the root's child down
 * to the leaf (n may be 0: the sample is the root's own). The leaf's
 * location `leaf_loc` (RP_NONE for none) gets the self wall time. Returns
 * the node the sample was charged to. Never fails: see the file comment. */
uint32_t rp_tree_add_sample(rp_tree *t, const uint32_t *path, size_t n,
                            uint32_t leaf_loc, uint64_t wall_ns,
                            uint64_t cpu_ns);
/* As rp_tree_add_sample, counting `count` samples (0 or 1): a tick whose
 * time is split between several paths counts once, so that the root's
 * sample count stays the number of ticks. */
uint32_t rp_tree_add(rp_tree *t, const uint32_t *path, size_t n,
                     uint32_t leaf_loc, uint64_t wall_ns, uint64_t cpu_ns,
                     uint64_t count);

/* Child of `parent` with `frame`, or RP_NONE. */
uint32_t rp_tree_find_child(const rp_tree *t, uint32_t parent,
                            uint32_t frame);
/* Child of `parent` with `frame`, created (with zero totals) if missing.
 * RP_NONE when a cap or memory stops it (the tree is marked truncated). */
uint32_t rp_tree_get_child(rp_tree *t, uint32_t parent, uint32_t frame);
/* Adds self wall time to location `loc` of `node`. 0, or -1 when a cap or
 * memory stops it (marked truncated). */
int rp_tree_add_line(rp_tree *t, uint32_t node, uint32_t loc,
                     uint64_t self_wall_ns);

/* Adds every node of `src` into `dst` (totals, self times, samples, lines),
 * mapping frame ids through `frame_map[src_id]`. Roots are merged into
 * each other. Returns 0, or -1 if a cap stopped part of it (marked). */
int rp_tree_merge(rp_tree *dst, const rp_tree *src,
                  const uint32_t *frame_map);

/* Rewrites every location through `fn` (e.g. instruction offset to line
 * number), summing entries of one node that map to the same result.
 * Returns 0, or -1 when out of memory (the tree is unchanged then). */
typedef uint32_t (*rp_loc_fn)(void *ctx, const rp_tree *t, uint32_t node,
                              uint32_t loc);
int rp_tree_map_locs(rp_tree *t, rp_loc_fn fn, void *ctx);

/* The children of `node` ordered by wall time, largest first (ties: by
 * frame id). Writes at most `cap` indices to `out`, returns how many
 * children there are. */
uint32_t rp_tree_sorted_children(const rp_tree *t, uint32_t node,
                                 uint32_t *out, uint32_t cap);

#endif

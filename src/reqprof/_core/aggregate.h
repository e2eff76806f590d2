/* aggregate.h - per-route aggregates: every finished request of a route
 * merged into one call tree, with a latency histogram and sums.
 *
 * Pure C. A request's tree names its frames by the ids of its own symbol
 * table; the aggregate interns the symbols (by kind, function, file and
 * line) into a table of its own, so trees of any session merge. Routes are
 * keyed by method and route template.
 *
 * Bounded three ways: at most `max_routes` routes (the requests of any
 * other route are counted under the route "[other routes]", method ""),
 * at most `max_nodes` nodes in one route's tree (beyond, samples fold into
 * the deepest node that exists, as in a session), and at most `max_bytes`
 * for the whole aggregate (beyond, requests are still counted and timed,
 * but their trees are not merged: `trees_dropped` says how many). Nothing
 * fails: a request is always counted.
 */
#ifndef RP_AGGREGATE_H
#define RP_AGGREGATE_H

#include <stddef.h>
#include <stdint.h>

#include "hist.h"
#include "report.h"
#include "tree.h"

#define RP_OTHER_ROUTES "[other routes]"

typedef struct rp_route_agg {
    rp_str method, route;
    rp_tree tree;               /* frame ids: the aggregate's symbols */
    int has_tree;
    uint64_t count, errors;
    uint64_t wall_ns, cpu_ns;   /* sums over the requests */
    uint64_t max_us;
    uint64_t *hist;             /* RP_HIST_BUCKETS counters */
} rp_route_agg;

typedef struct rp_agg {
    rp_symtab syms;
    uint32_t *sym_slots;        /* open addressing: symbol ids */
    uint32_t sym_mask;
    rp_route_agg *routes;
    uint32_t n_routes, cap_routes;
    uint32_t *route_slots;      /* open addressing: route indices */
    uint32_t route_mask;
    uint32_t *frame_map;        /* scratch: a request's ids to ours */
    uint32_t frame_map_cap;
    uint32_t max_routes, max_nodes;
    size_t max_bytes, bytes;
    uint64_t requests, trees_dropped;
} rp_agg;

/* 0, or -1 when out of memory (the aggregate is then empty and safe to
 * free). */
int rp_agg_init(rp_agg *a, uint32_t max_routes, uint32_t max_nodes,
                size_t max_bytes);
void rp_agg_free(rp_agg *a);

/* Counts one request of (method, route): its duration and CPU time, an
 * error when `error`, and merges its tree `t` (whose frame ids name
 * symbols of `st`; NULL: no tree). Returns the route's index. */
uint32_t rp_agg_add(rp_agg *a, const char *method, size_t method_len,
                    const char *route, size_t route_len,
                    const rp_tree *t, const rp_symtab *st,
                    uint64_t duration_ns, uint64_t cpu_ns, int error);
/* Merges tree `t` into (method, route) without counting a request (a
 * stored profile read back). Returns the route's index, RP_NONE when out
 * of memory. */
uint32_t rp_agg_merge(rp_agg *a, const char *method, size_t method_len,
                      const char *route, size_t route_len,
                      const rp_tree *t, const rp_symtab *st);

#endif

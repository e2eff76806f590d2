/* aggregate.c - per-route aggregates (see aggregate.h for the contract).
 *
 * Symbols and routes are found through open-addressing tables of indices
 * (at most half full), keyed by a hash of their content. A request's tree
 * is merged with rp_tree_merge after its frame ids are mapped to the
 * aggregate's symbols: only the ids its nodes use are interned.
 */
#include "aggregate.h"

#include <stdlib.h>
#include <string.h>

#define INITIAL_SLOTS 64u
#define ROUTE_TREE_BYTES_MIN (64u * 1024u)

static uint64_t
fnv(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ p[i]) * 0x100000001b3ull;
    }
    return h;
}

static uint32_t
sym_hash(rp_kind kind, const rp_str *function, const rp_str *file,
         uint32_t line)
{
    uint64_t h = 0xcbf29ce484222325ull;
    h = fnv(h, &kind, sizeof(kind));
    h = fnv(h, function->s, function->len);
    h = fnv(h, "\0", 1);
    h = fnv(h, file->s, file->len);
    h = fnv(h, &line, sizeof(line));
    return (uint32_t)(h ^ (h >> 32));
}

static uint32_t
route_hash(const char *method, size_t method_len, const char *route,
           size_t route_len)
{
    uint64_t h = 0xcbf29ce484222325ull;
    h = fnv(h, method, method_len);
    h = fnv(h, "\0", 1);
    h = fnv(h, route, route_len);
    return (uint32_t)(h ^ (h >> 32));
}

static int
str_eq(const rp_str *s, const char *t, size_t n)
{
    return s->len == n && (n == 0 || memcmp(s->s, t, n) == 0);
}

int
rp_agg_init(rp_agg *a, uint32_t max_routes, uint32_t max_nodes,
            size_t max_bytes)
{
    memset(a, 0, sizeof(*a));
    rp_symtab_init(&a->syms);
    a->max_routes = max_routes < 1 ? 1 : max_routes;
    a->max_nodes = max_nodes < 1 ? 1 : max_nodes;
    a->max_bytes = max_bytes;
    a->sym_slots = rp_slots_new(INITIAL_SLOTS);
    a->route_slots = rp_slots_new(INITIAL_SLOTS);
    if (a->sym_slots == NULL || a->route_slots == NULL) {
        rp_agg_free(a);
        return -1;
    }
    a->sym_mask = a->route_mask = INITIAL_SLOTS - 1;
    a->bytes = 2 * INITIAL_SLOTS * sizeof(uint32_t);
    return 0;
}

void
rp_agg_free(rp_agg *a)
{
    for (uint32_t i = 0; i < a->n_routes; i++) {
        rp_route_agg *r = &a->routes[i];
        free(r->method.s);
        free(r->route.s);
        if (r->has_tree) {
            rp_tree_free(&r->tree);
        }
        free(r->hist);
    }
    free(a->routes);
    free(a->sym_slots);
    free(a->route_slots);
    free(a->frame_map);
    rp_symtab_free(&a->syms);
    memset(a, 0, sizeof(*a));
}

/* Doubles a slot table and re-inserts every entry (hash of entry i given
 * by `hash`). 0, or -1 when out of memory (the table is unchanged). */
static int
grow_slots(rp_agg *a, uint32_t **slots, uint32_t *mask, uint32_t n,
           uint32_t (*hash)(const rp_agg *, uint32_t))
{
    uint32_t size = (*mask + 1) * 2;
    uint32_t *grown = rp_slots_new(size);
    if (grown == NULL) {
        return -1;
    }
    for (uint32_t i = 0; i < n; i++) {
        uint32_t h = hash(a, i) & (size - 1);
        while (grown[h] != RP_NONE) {
            h = (h + 1) & (size - 1);
        }
        grown[h] = i;
    }
    a->bytes += ((size_t)size - (*mask + 1)) * sizeof(uint32_t);
    free(*slots);
    *slots = grown;
    *mask = size - 1;
    return 0;
}

static uint32_t
hash_of_sym(const rp_agg *a, uint32_t i)
{
    const rp_sym *s = &a->syms.syms[i];
    return sym_hash(s->kind, &s->function, &s->file, s->line);
}

static uint32_t
hash_of_route(const rp_agg *a, uint32_t i)
{
    const rp_route_agg *r = &a->routes[i];
    return route_hash(r->method.s, r->method.len, r->route.s, r->route.len);
}

/* The aggregate's id of symbol `s` (interned), or RP_NONE when the byte
 * cap or memory stops it. */
static uint32_t
intern_sym(rp_agg *a, const rp_sym *s)
{
    uint32_t h = sym_hash(s->kind, &s->function, &s->file, s->line);
    uint32_t slot = h & a->sym_mask;
    for (uint32_t id; (id = a->sym_slots[slot]) != RP_NONE;
            slot = (slot + 1) & a->sym_mask) {
        const rp_sym *t = &a->syms.syms[id];
        if (t->kind == s->kind && t->line == s->line
                && str_eq(&t->function, s->function.s, s->function.len)
                && str_eq(&t->file, s->file.s, s->file.len)) {
            return id;
        }
    }
    size_t cost = sizeof(rp_sym) + s->function.len + s->file.len
                  + s->short_file.len + 3;
    if (a->bytes + cost > a->max_bytes) {
        return RP_NONE;
    }
    uint32_t id = rp_symtab_add(&a->syms, s->kind, s->function.s,
                                s->function.len, s->file.s, s->file.len,
                                s->short_file.s, s->short_file.len, s->line);
    if (id == RP_NONE) {
        return RP_NONE;
    }
    a->sym_slots[slot] = id;
    a->bytes += cost;
    if (2 * a->syms.n > a->sym_mask) {
        (void)grow_slots(a, &a->sym_slots, &a->sym_mask, a->syms.n,
                         hash_of_sym);
    }
    return id;
}

static char *
copy_bytes(const char *s, size_t n)
{
    char *out = malloc(n + 1);
    if (out != NULL) {
        if (n) {
            memcpy(out, s, n);
        }
        out[n] = '\0';
    }
    return out;
}

/* The route's index, created if there is room; RP_NONE when not. */
static uint32_t
find_route(rp_agg *a, const char *method, size_t method_len,
           const char *route, size_t route_len, int create)
{
    uint32_t slot = route_hash(method, method_len, route, route_len)
                    & a->route_mask;
    for (uint32_t i; (i = a->route_slots[slot]) != RP_NONE;
            slot = (slot + 1) & a->route_mask) {
        if (str_eq(&a->routes[i].method, method, method_len)
                && str_eq(&a->routes[i].route, route, route_len)) {
            return i;
        }
    }
    if (!create) {
        return RP_NONE;
    }
    if (a->n_routes == a->cap_routes) {
        uint32_t cap = a->cap_routes ? a->cap_routes * 2 : 16;
        rp_route_agg *grown = realloc(a->routes, cap * sizeof(*grown));
        if (grown == NULL) {
            return RP_NONE;
        }
        a->bytes += (size_t)(cap - a->cap_routes) * sizeof(*grown);
        a->routes = grown;
        a->cap_routes = cap;
    }
    rp_route_agg *r = &a->routes[a->n_routes];
    memset(r, 0, sizeof(*r));
    r->method.s = copy_bytes(method, method_len);
    r->route.s = copy_bytes(route, route_len);
    if (r->method.s == NULL || r->route.s == NULL) {
        free(r->method.s);
        free(r->route.s);
        return RP_NONE;
    }
    r->method.len = method_len;
    r->route.len = route_len;
    a->bytes += method_len + route_len + 2;
    uint32_t i = a->n_routes++;
    a->route_slots[slot] = i;
    if (2 * a->n_routes > a->route_mask) {
        (void)grow_slots(a, &a->route_slots, &a->route_mask, a->n_routes,
                         hash_of_route);
    }
    return i;
}

/* Maps the frame ids `t` uses to the aggregate's symbols in a->frame_map;
 * 0, or -1 when the byte cap or memory stops it. */
static int
map_frames(rp_agg *a, const rp_tree *t, const rp_symtab *st)
{
    uint32_t n = st->n > 0 ? st->n : 1;
    if (a->frame_map_cap < n) {
        uint32_t *grown = realloc(a->frame_map, (size_t)n * sizeof(uint32_t));
        if (grown == NULL) {
            return -1;
        }
        a->bytes += ((size_t)n - a->frame_map_cap) * sizeof(uint32_t);
        a->frame_map = grown;
        a->frame_map_cap = n;
    }
    memset(a->frame_map, 0xff, (size_t)n * sizeof(uint32_t));
    for (uint32_t i = 0; i < t->n_nodes; i++) {
        uint32_t f = t->nodes[i].frame;
        if (f >= st->n) {
            return -1;      /* an id its table does not have */
        }
        if (a->frame_map[f] == RP_NONE) {
            a->frame_map[f] = intern_sym(a, &st->syms[f]);
            if (a->frame_map[f] == RP_NONE) {
                return -1;
            }
        }
    }
    return 0;
}

static void
merge_tree(rp_agg *a, rp_route_agg *r, const rp_tree *t, const rp_symtab *st)
{
    if (t == NULL || t->n_nodes == 0) {
        return;
    }
    if (a->bytes >= a->max_bytes || map_frames(a, t, st) < 0) {
        a->trees_dropped++;
        return;
    }
    if (!r->has_tree) {
        size_t room = a->max_bytes - a->bytes;
        if (room < ROUTE_TREE_BYTES_MIN
                || rp_tree_init(&r->tree, a->frame_map[t->nodes[0].frame],
                                a->max_nodes, room) < 0) {
            a->trees_dropped++;
            return;
        }
        r->has_tree = 1;
        a->bytes += r->tree.bytes;
    }
    size_t before = r->tree.bytes;
    (void)rp_tree_merge(&r->tree, t, a->frame_map);    /* caps: marked */
    a->bytes += r->tree.bytes - before;
}

/* The route's index: created while there is room, else [other routes];
 * RP_NONE when out of memory. */
static uint32_t
route_for(rp_agg *a, const char *method, size_t method_len, const char *route,
          size_t route_len)
{
    uint32_t i = find_route(a, method, method_len, route, route_len, 0);
    size_t route_cost = sizeof(rp_route_agg) + method_len + route_len + 2
                        + RP_HIST_BUCKETS * sizeof(uint64_t);
    if (i == RP_NONE && a->n_routes < a->max_routes
            && a->bytes + route_cost <= a->max_bytes) {
        i = find_route(a, method, method_len, route, route_len, 1);
    }
    if (i == RP_NONE) {
        i = find_route(a, "", 0, RP_OTHER_ROUTES, sizeof(RP_OTHER_ROUTES) - 1,
                       1);
    }
    return i;
}

uint32_t
rp_agg_merge(rp_agg *a, const char *method, size_t method_len,
             const char *route, size_t route_len, const rp_tree *t,
             const rp_symtab *st)
{
    uint32_t i = route_for(a, method, method_len, route, route_len);
    if (i != RP_NONE) {
        merge_tree(a, &a->routes[i], t, st);
    }
    return i;
}

uint32_t
rp_agg_add(rp_agg *a, const char *method, size_t method_len,
           const char *route, size_t route_len, const rp_tree *t,
           const rp_symtab *st, uint64_t duration_ns, uint64_t cpu_ns,
           int error)
{
    a->requests++;
    uint32_t i = route_for(a, method, method_len, route, route_len);
    if (i == RP_NONE) {
        return RP_NONE;     /* out of memory: not even counted */
    }
    rp_route_agg *r = &a->routes[i];
    r->count++;
    r->errors += error ? 1 : 0;
    r->wall_ns += duration_ns;
    r->cpu_ns += cpu_ns;
    uint64_t us = duration_ns / 1000u;
    if (us > r->max_us) {
        r->max_us = us;
    }
    if (r->hist == NULL) {
        r->hist = calloc(RP_HIST_BUCKETS, sizeof(uint64_t));
        if (r->hist != NULL) {
            a->bytes += RP_HIST_BUCKETS * sizeof(uint64_t);
        }
    }
    if (r->hist != NULL) {
        r->hist[rp_hist_bucket(us)]++;
    }
    merge_tree(a, r, t, st);
    return i;
}

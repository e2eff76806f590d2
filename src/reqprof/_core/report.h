/* report.h - what the writers read: a call tree, the symbols its frame ids
 * name, and the report header.
 *
 * Pure C (no Python). The code table (codetable.c) fills an rp_symtab from
 * code objects when a report is built; Report.from_json fills one from the
 * JSON. Every string is owned by the table, stored with its length (names
 * may hold any bytes; writers escape them) and NUL-terminated.
 */
#ifndef RP_REPORT_H
#define RP_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "tree.h"

#define RP_SCHEMA_VERSION 1

typedef enum rp_kind {
    RP_KIND_FRAME = 0,
    RP_KIND_AWAIT,
    RP_KIND_OUT_OF_CONTEXT,
    RP_KIND_THREAD,
    RP_KIND_TRUNCATED,
    RP_KIND_GC,             /* a garbage collection (and its finalizers) */
    RP_KIND_UNSAMPLED,      /* time no sample saw */
    RP_KIND_REQUEST,        /* the request itself: a tree's synthetic root */
    RP_KIND_AFTER_RESPONSE, /* work after the response was sent */
    RP_KIND_LOOP_BUSY,      /* ready to run, waiting for a busy event loop */
    RP_KIND_BLOCKER,        /* what held the loop: a request, [no request] */
    RP_KIND_COUNT
} rp_kind;

/* "frame", "await", "out-of-context", "thread", "truncated", "gc",
 * "unsampled", "request", "after-response", "loop-busy", "blocker" */
const char *rp_kind_name(rp_kind k);
/* The kind named `s` (n bytes), or -1. */
int rp_kind_from_name(const char *s, size_t n);

typedef struct rp_str {
    char *s;        /* owned, NUL-terminated, may contain NUL */
    size_t len;
} rp_str;

typedef struct rp_sym {
    rp_kind kind;
    rp_str function;    /* co_qualname, or the pseudo-frame's label:
                           "[await]", "[thread MainThread]", "GET /x"
                           (request), ... */
    rp_str file;        /* co_filename as is ("" for pseudo-frames, but an
                           [await] names the file it waits in) */
    rp_str short_file;  /* file relative to its sys.path entry */
    uint32_t line;      /* co_firstlineno (0 for pseudo-frames; for an
                           [await], the line it waits at, 0 if unknown) */
} rp_sym;   /* in a table, its three strings are one allocation, owned
               through function.s, or a part of the table's block */

typedef struct rp_symtab {
    rp_sym *syms;
    uint32_t n, cap;
    /* Strings of the symbols added after rp_symtab_reserve, while they
     * fit: one allocation (NULL: none), of which `used` bytes are taken. */
    char *block;
    size_t block_size, block_used;
} rp_symtab;

void rp_symtab_init(rp_symtab *st);
void rp_symtab_free(rp_symtab *st);
/* Prepares an empty table for `n` symbols whose strings take `bytes` in
 * all (each symbol's three lengths, plus 3): room for them in one
 * allocation, and for the symbols in another, as large as adding them one
 * by one would have made it. 0, or -1 when out of memory (the table is
 * left empty and usable). */
int rp_symtab_reserve(rp_symtab *st, uint32_t n, size_t bytes);
/* Copies the strings (NULL: empty), into one allocation. Returns the new
 * id, or RP_NONE when out of memory. */
uint32_t rp_symtab_add(rp_symtab *st, rp_kind kind,
                       const char *function, size_t function_len,
                       const char *file, size_t file_len,
                       const char *short_file, size_t short_file_len,
                       uint32_t line);
/* The symbol with id `id`; a static "[unknown]" pseudo-frame (kind
 * frame, no file) when the id is out of range, so a writer never fails on a
 * bad id. Borrowed (owned by the table, or static). */
const rp_sym *rp_symtab_get(const rp_symtab *st, uint32_t id);
/* The display name: "function (short_file:line)" for frames, the label
 * for pseudo-frames, "[await] short_file:line" for an await that knows
 * where it waits. Raw bytes: escape for the output format. A frame with
 * no short_file shows `file`; with neither, only the function. */
int rp_sym_put_name(rp_buf *b, const rp_sym *sym);

/* Whether `sym` is a frame of library code: a file under site-packages or
 * dist-packages, a frozen module, or a file under one of the `n` directory
 * `prefixes` (the standard library's, each ending with a separator). */
int rp_sym_is_library(const rp_sym *sym, const rp_str *prefixes, size_t n);

/* Why a report is incomplete (rp_report.truncated). */
enum {
    RP_REPORT_TRUNC_NODES = 1u << 0,    /* = RP_TRUNC_NODES */
    RP_REPORT_TRUNC_BYTES = 1u << 1,    /* = RP_TRUNC_BYTES */
    RP_REPORT_TRUNC_NOMEM = 1u << 2,    /* = RP_TRUNC_NOMEM */
    RP_REPORT_TRUNC_DEPTH = 1u << 3,    /* a stack was deeper than max_depth */
    RP_REPORT_TRUNC_DURATION = 1u << 4, /* the session hit its duration cap */
};
/* Names of the bits above, in order: "nodes", "bytes", "memory", "depth",
 * "duration". */
const char *rp_trunc_name(unsigned bit_index);
#define RP_TRUNC_REASONS 5

/* Why a report has too few samples for its duration (rp_report.
 * undersampled): fewer than RP_UNDERSAMPLED_MIN samples, or under half of
 * duration / interval. */
enum {
    RP_UNDERSAMPLED_NO = 0,
    RP_UNDERSAMPLED_SHORT,      /* "short request": under 10 intervals */
    RP_UNDERSAMPLED_GIL,        /* "GIL held by C code": ticks waited for it */
    RP_UNDERSAMPLED_LOAD,       /* "machine load": the sampler ran late */
    RP_UNDERSAMPLED_COUNT
};
#define RP_UNDERSAMPLED_MIN 10
/* The reason's text, NULL for RP_UNDERSAMPLED_NO (or out of range). */
const char *rp_undersampled_name(int reason);
/* The reason named `s` (n bytes), or -1. */
int rp_undersampled_from_name(const char *s, size_t n);

/* One request-metadata entry. `value` is text, or a JSON literal (number,
 * true, false, null) when is_literal. */
typedef struct rp_meta_item {
    rp_str key;
    rp_str value;
    int is_literal;
} rp_meta_item;

/* Where a request's time went: every node's self time, by the innermost
 * pseudo-frame above it that says what the request was doing. `running`
 * is its own code (frames, the request, [truncated], [after response]'s
 * frames); `awaiting` the [await] points; `loop_busy` [event loop busy]
 * (its blockers, by label, largest first: at most RP_BREAKDOWN_BLOCKERS,
 * names borrowed from the symbol table); `worker` [thread ...]; `gc`,
 * `unsampled`, `out_of_context` those nodes. The parts add up to the
 * root's wall time. */
#define RP_BREAKDOWN_BLOCKERS 5
typedef struct rp_blocker_share {
    const rp_str *name;
    uint64_t wall_ns;
} rp_blocker_share;

typedef struct rp_breakdown {
    uint64_t running_wall_ns, running_cpu_ns;
    uint64_t awaiting_ns;
    uint64_t loop_busy_ns;
    uint64_t worker_wall_ns, worker_cpu_ns;
    uint64_t gc_ns, unsampled_ns, out_of_context_ns;
    rp_blocker_share blockers[RP_BREAKDOWN_BLOCKERS];
    size_t n_blockers;
} rp_breakdown;

/* Fills `out` from tree `t` (symbols `st`). 0, or -1 when out of memory
 * (`out` is then zeroed). */
int rp_breakdown_compute(const rp_tree *t, const rp_symtab *st,
                         rp_breakdown *out);

/* The frames with the most self wall time, as Session.top_functions ranks
 * them: at most `n` symbol ids into ids[] and their self wall time into
 * ns[], largest first (ties: the lower id). [await] and [gc] count;
 * [unsampled], the request and [after response] do not; the frames of a
 * request that held the event loop count for the [event loop busy] above
 * them. Returns how many, or -1 when out of memory. */
int rp_top_frames(const rp_tree *t, const rp_symtab *st, size_t n,
                  uint32_t *ids, uint64_t *ns);

typedef struct rp_report {
    const rp_tree *tree;
    const rp_symtab *syms;
    const char *version;        /* reqprof version */
    double started_at;          /* Unix time, seconds */
    double duration_s;          /* start to stop, measured */
    double interval_s;          /* asked sampling interval */
    double effective_interval_s;    /* the mean interval of its ticks, the
                                   overhead budget's lengthening included
                                   (0: interval_s) */
    double budget_percent;      /* the overhead budget asked, percent of
                                   one core (0: none) */
    int has_sampler_cpu;        /* sampler_cpu_ns is known (not for a
                                   merged profile, nor an older document) */
    uint64_t sampler_cpu_ns;    /* the engine threads' CPU while it was
                                   active (with other sessions' beside it) */
    const char *async_mode;     /* "enabled" | "disabled" | "strict" */
    uint32_t max_depth;
    unsigned truncated;         /* RP_REPORT_TRUNC_* */
    double gc_s;                /* time in garbage collections */
    double response_s;          /* start to the response's end; 0: unknown */
    int undersampled;           /* RP_UNDERSAMPLED_* */
    double loop_block_s;        /* longest stretch holding the event loop
                                   (0: none, or under the threshold) */
    uint32_t loop_block_sym;    /* where: a symbol id, RP_NONE if unknown */
    uint32_t loop_block_line;   /* its line, 0 if unknown */
    const rp_meta_item *meta;
    size_t n_meta;
} rp_report;

/* The report's truncation bits with the tree's own (RP_TRUNC_*, the same
 * bit positions) added: what a writer shows. */
unsigned rp_report_truncated(const rp_report *r);

/* The mean interval of the report's ticks: effective_interval_s, or
 * interval_s when that is not set. */
double rp_report_effective_interval(const rp_report *r);
/* Whether the overhead budget made the interval at least 1% longer than
 * asked: the writers say so then. */
int rp_report_lengthened(const rp_report *r);
/* `cpu_ns` as a percent of one core over `duration_s` seconds: 1 with
 * *out set, or 0 when there is no duration to share it over. */
int rp_cpu_percent(uint64_t cpu_ns, double duration_s, double *out);

/* A depth-first walk of a tree in the writers' order (children largest
 * wall time first, rp_tree_sorted_children), without recursion: trees can
 * be tens of thousands of nodes deep. Two arrays of tree->n_nodes entries,
 * allocated once; the tree must not change during the walk.
 *
 *     rp_walk w;
 *     if (rp_walk_init(&w, tree) < 0) goto error;     // out of memory
 *     while ((ev = rp_walk_next(&w, &node)) != RP_WALK_END) ...
 *     rp_walk_free(&w);
 *
 * Every node is entered once and left once, children between. The node
 * entered last is at frames[depth - 1], its parent at frames[depth - 2]. */
typedef struct rp_walk_frame {
    uint32_t node;
    uint32_t first;     /* its sorted children: pool[first .. first+count) */
    uint32_t count;
    uint32_t next;      /* children entered so far */
} rp_walk_frame;

typedef struct rp_walk {
    const rp_tree *tree;
    uint32_t *pool;         /* owned: sorted child lists of open nodes */
    rp_walk_frame *frames;  /* owned: the open nodes, root first */
    uint32_t depth;         /* open nodes */
    uint32_t pool_top;
    int started;
} rp_walk;

enum { RP_WALK_END = 0, RP_WALK_ENTER, RP_WALK_LEAVE };

/* 0, or -1 when out of memory (nothing to free then). A tree with no
 * nodes (failed init) gives an empty walk. */
int rp_walk_init(rp_walk *w, const rp_tree *t);
/* The next event and its node. */
int rp_walk_next(rp_walk *w, uint32_t *node);
/* Right after RP_WALK_ENTER: the node's children are not entered (its
 * RP_WALK_LEAVE comes next). */
void rp_walk_skip_children(rp_walk *w);
void rp_walk_free(rp_walk *w);

#endif

/* codetable.h - a session's frame ids: code objects and pseudo-frames
 * ([await] points, threads, [gc], [unsampled], [after response], [event
 * loop busy] and the requests that blocked it, ...).
 *
 * The sampler turns each frame's code object into a small integer id here
 * (one hash probe); the call tree stores only ids. Every code object in the
 * table is held by a strong reference, so its address is never reused
 * while the session refers to it, and names, files and lines are read from
 * it only when the report is built. Thread pseudo-frames hold their name.
 *
 * All functions need the GIL. The sampling-time ones (rp_codetable_code,
 * rp_codetable_thread) never raise: they return RP_NONE when the table is
 * full or memory ran out. The report-time ones raise (return -1 with an
 * exception set).
 */
#ifndef RP_CODETABLE_H
#define RP_CODETABLE_H

#include "compat.h"
#include "report.h"

typedef struct rp_ct_entry {
    rp_kind kind;
    PyObject *obj;          /* strong: the code object (frame), the name
                               (thread), NULL (other pseudo-frames) */
    unsigned long ident;    /* thread ident (thread entries) */
} rp_ct_entry;

typedef struct rp_codetable {
    rp_ct_entry *entries;
    uint32_t n, cap, max;
    unsigned full_reason;   /* RP_TRUNC_NODES or _BYTES: what `max` is */
    uint32_t *slots;        /* open addressing on (kind, obj, ident) */
    uint32_t mask;
    uint32_t await_id, out_of_context_id, truncated_id;
    uint32_t gc_id, unsampled_id, after_response_id;
    uint32_t loop_busy_id, no_request_id;
} rp_codetable;

/* Creates the table with its fixed pseudo-frames, holding at most
 * `max_entries` and at most about `max_bytes` of tables (0: no byte cap).
 * Returns 0, or -1 when out of memory (no exception set). */
int rp_codetable_init(rp_codetable *ct, uint32_t max_entries,
                      size_t max_bytes);
/* Releases every reference and the memory. */
void rp_codetable_clear(rp_codetable *ct);
int rp_codetable_traverse(const rp_codetable *ct, visitproc visit,
                          void *arg);
size_t rp_codetable_bytes(const rp_codetable *ct);

/* The id of `code`, added if new. RP_NONE when full / out of memory. */
uint32_t rp_codetable_code(rp_codetable *ct, PyCodeObject *code);
/* Whether `code` (an address, never dereferenced: it may be stale) is a
 * code object of the table, so alive (the table holds it). */
int rp_codetable_has_code(const rp_codetable *ct, const void *code);
/* The id of the [await] of a frame of `code` suspended at instruction
 * offset `lasti` (its report name says where it waits); the plain
 * await_id when code is NULL or lasti < 0. RP_NONE when full. */
uint32_t rp_codetable_await(rp_codetable *ct, PyCodeObject *code,
                            int32_t lasti);
/* The id of the pseudo-frame for thread `ident`, added if new (then
 * *is_new is set: give it its name). RP_NONE when full. */
uint32_t rp_codetable_thread(rp_codetable *ct, unsigned long ident,
                             int *is_new);
/* The id of the blocker pseudo-frame of the request labelled `label` (a
 * str, held; NULL: the [no request] one). RP_NONE when full. */
uint32_t rp_codetable_blocker(rp_codetable *ct, PyObject *label);
/* Names thread entry `id` after `name` (a str, borrowed; NULL or not a str
 * leaves it unnamed: the report then shows its ident). */
void rp_codetable_set_name(rp_codetable *ct, uint32_t id, PyObject *name);

/* Report time: rewrites the tree's locations from instruction offsets to
 * line numbers (an `await` node's offset belongs to its parent's code). */
int rp_codetable_resolve_lines(const rp_codetable *ct, rp_tree *tree);
/* Report time: fills `st` (empty) with one symbol per id, in id order.
 * `path_prefixes` is a sequence of directory prefixes (each ending with the
 * separator, longest match wins) used for short file names, or NULL. */
int rp_codetable_build_symtab(const rp_codetable *ct, rp_symtab *st,
                              PyObject *path_prefixes);

#endif

/* read_json.h - a profile read back from its JSON document
 * (docs/json-schema.md, schema version 1): what Report.from_json loads.
 *
 * Pure C (no Python). The reader is strict: the text must be one JSON
 * value (RFC 8259, UTF-8) of the documented shape; a wrong type, an
 * unknown kind, mode or truncation reason, a duplicate field, a number out
 * of range or a schema version other than 1 is an error with a message.
 * Fields it does not know are ignored (the schema only grows within a
 * version). Required: `version` and `root`; in a node `function` and
 * `kind`. Other fields default to zero or empty. Derived fields (`name`,
 * the top-level `samples`, `wall_s`, `cpu_s`, `truncated`,
 * `sampler_cpu_percent`) are
 * type-checked and otherwise ignored: writers derive them again.
 *
 * Output of rp_write_json reads back to a report that rp_write_json writes
 * byte for byte the same (same tree order, same numbers, same meta).
 * Nothing recurses: nesting is bounded (RP_READ_MAX_NESTING) and so is the
 * input (RP_READ_MAX_BYTES); memory is linear in the input size.
 */
#ifndef RP_READ_JSON_H
#define RP_READ_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "report.h"
#include "tree.h"

#define RP_READ_MAX_BYTES ((size_t)1 << 30)
/* Arrays/objects open at once: a node is two levels (object, children). */
#define RP_READ_MAX_NESTING 400000u

typedef struct rp_loaded {
    rp_tree tree;           /* frame ids are ids in `syms` */
    rp_symtab syms;
    rp_meta_item *meta;     /* owned, with its strings; in document order */
    size_t n_meta;
    char *version;          /* owned: reqprof_version ("" if absent) */
    double started_at;
    double duration_s;
    double interval_s;
    double effective_interval_s;    /* 0 when absent */
    double budget_percent;  /* overhead_budget_percent: 0 when null/absent */
    int has_sampler_cpu;    /* sampler_cpu_s is a number */
    uint64_t sampler_cpu_ns;
    int async_mode;         /* 0 enabled, 1 disabled, 2 strict (rp_mode) */
    uint32_t max_depth;
    unsigned truncated;     /* RP_REPORT_TRUNC_* from truncated_reasons */
    double gc_s;
    double response_s;      /* 0 when null or absent */
    int undersampled;       /* RP_UNDERSAMPLED_* from undersampled_reason */
    double loop_block_s;    /* "loop_block": 0 when null or absent */
    uint32_t loop_block_sym;    /* its place (a symbol), RP_NONE if none */
    uint32_t loop_block_line;
} rp_loaded;

enum {
    RP_READ_OK = 0,
    RP_READ_INVALID = -1,   /* not a valid profile: `err` says why */
    RP_READ_NOMEM = -2,     /* out of memory */
};

/* Reads n bytes of `text` into `out`. On RP_READ_OK the caller owns `out`
 * (rp_loaded_free, or take `tree` and `syms` and re-init them first); on
 * failure `out` holds nothing and `err` (err_size bytes, may be 0) a
 * NUL-terminated message. */
int rp_read_json(const char *text, size_t n, rp_loaded *out, char *err,
                 size_t err_size);
void rp_loaded_free(rp_loaded *l);
/* The report of a loaded profile, for the writers (it points into `l`). */
void rp_loaded_report(const rp_loaded *l, rp_report *r);

#endif

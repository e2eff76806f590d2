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
    RP_KIND_COUNT
} rp_kind;

/* "frame", "await", "out-of-context", "thread", "truncated" */
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
                           "[await]", "[thread MainThread]", ... */
    rp_str file;        /* co_filename as is ("" for pseudo-frames) */
    rp_str short_file;  /* file relative to its sys.path entry */
    uint32_t line;      /* co_firstlineno (0 for pseudo-frames) */
} rp_sym;

typedef struct rp_symtab {
    rp_sym *syms;
    uint32_t n, cap;
} rp_symtab;

void rp_symtab_init(rp_symtab *st);
void rp_symtab_free(rp_symtab *st);
/* Copies the strings. Returns the new id, or RP_NONE when out of memory. */
uint32_t rp_symtab_add(rp_symtab *st, rp_kind kind,
                       const char *function, size_t function_len,
                       const char *file, size_t file_len,
                       const char *short_file, size_t short_file_len,
                       uint32_t line);
/* The display name: "function (short_file:line)" for frames, the label
 * for pseudo-frames. Raw bytes: escape for the output format. */
int rp_sym_put_name(rp_buf *b, const rp_sym *sym);

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

/* One request-metadata entry. `value` is text, or a JSON literal (number,
 * true, false, null) when is_literal. */
typedef struct rp_meta_item {
    rp_str key;
    rp_str value;
    int is_literal;
} rp_meta_item;

typedef struct rp_report {
    const rp_tree *tree;
    const rp_symtab *syms;
    const char *version;        /* reqprof version */
    double started_at;          /* Unix time, seconds */
    double duration_s;          /* start to stop, measured */
    double interval_s;          /* asked sampling interval */
    const char *async_mode;     /* "enabled" | "disabled" | "strict" */
    uint32_t max_depth;
    unsigned truncated;         /* RP_REPORT_TRUNC_* */
    const rp_meta_item *meta;
    size_t n_meta;
} rp_report;

#endif

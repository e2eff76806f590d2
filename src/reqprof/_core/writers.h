/* writers.h - report writers: one function per output format.
 *
 * Pure C (no Python). Each appends to `out` and returns 0, or -1 when the
 * buffer failed (out of memory or over its limit). Writers never modify
 * the report. Children are written largest wall time first.
 */
#ifndef RP_WRITERS_H
#define RP_WRITERS_H

#include "buf.h"
#include "report.h"

/* Writing is done without the GIL only when it is large: a thread that lets
 * the GIL go waits for it again for up to the interpreter's switch interval
 * (5 ms) when another thread runs Python code, far longer than a small
 * report takes to write (a reporter that gave the GIL away for each small
 * report wrote a few reports a second beside a busy event loop). */
#define RP_GIL_FREE_WRITE_NODES 4096u
#define RP_GIL_FREE_COPY_BYTES ((size_t)1 << 20)

/* The documented JSON schema (docs/json-schema.md). `lines` keys come in
 * line order; truncated_reasons also holds the tree's own caps
 * (rp_report_truncated); non-finite header numbers are written as 0; a
 * meta value marked is_literal that is not a JSON number/true/false/null
 * is written as a string. Safe to embed in an HTML <script>. */
int rp_write_json(rp_buf *out, const rp_report *r);

typedef struct rp_text_opts {
    int ascii;              /* ASCII tree drawing instead of box drawing */
    int color;              /* ANSI colours (the caller decides: a TTY) */
    double min_percent;     /* hide nodes under this % of the root's wall */
    uint32_t max_lines;     /* stop after this many tree lines (0 = all) */
    int log;                /* the log style (below) */
    const rp_str *lib_prefixes; /* library directories (rp_sym_is_library) */
    size_t n_lib_prefixes;
} rp_text_opts;

/* Console tree: header line, then one line per node with wall, CPU and %
 * of the root's wall time. A footer says how many lines max_lines cut and
 * how many nodes min_percent hid. Control characters in names become
 * spaces; indentation stops growing past 48 levels ("[+N]" tells the
 * rest). `o` may be NULL (unicode, no colour, nothing hidden).
 *
 * The log style (o->log) is the tree logged under a sampled request's
 * summary line: no header, "12.3 ms 45%  name" per line, and a run of two
 * or more library frames that only call one another (framework plumbing,
 * each under min_percent of self time) folded into one line, "first → … →
 * last [N frames]", so the lines left are the app's frames and where time
 * splits. Past max_lines, one "…" line. Never coloured. */
int rp_write_text(rp_buf *out, const rp_report *r, const rp_text_opts *o);

/* ---- the log record of a sampled request (write_log.c) ------------------ */

/* What the record says about the request, from its metadata, each text
 * as the caller read it (UTF-8; a Python str's lone surrogates in their
 * 3-byte form). "Escaped" texts go through rp_buf_put_printable. */
typedef struct rp_log_request {
    rp_str method;              /* escaped */
    rp_str target;              /* the route, else the path: escaped */
    rp_str status;              /* "-" when unknown: as is */
    rp_str trigger;             /* as is */
    const rp_str *exception;    /* NULL: none; escaped */
    const rp_str *ended;        /* NULL: not ended early; escaped */
    int response_cut;
    const rp_str *trace_id;     /* NULL: none; escaped, as span_id */
    rp_str span_id;
} rp_log_request;

/* The report's totals, as the caller read them from the report. */
typedef struct rp_log_head {
    rp_str samples;             /* the count, as text */
    int sampled;                /* more than 0: a call tree to show */
    int one_sample;             /* exactly 1 ("1 sample") */
    double duration_s, cpu_s, gc_s;
    int has_response;
    double response_s;
    const rp_str *undersampled; /* NULL: not; as is */
    int truncated;
} rp_log_head;

#define RP_LOG_TOP 3

/* A piece of the `names` buffer. */
typedef struct rp_log_span {
    size_t off, len;
} rp_log_span;

/* The numbers of the record's `extra` fields, each as Python's round(x,
 * 3) of what the line shows, and its names, escaped, in `names`. */
typedef struct rp_log_fields {
    double duration_ms, cpu_ms, gc_ms, response_ms;
    size_t n_top;
    rp_log_span top_name[RP_LOG_TOP];
    double top_ms[RP_LOG_TOP];
    double loop_busy_ms, awaiting_ms, running_ms, loop_block_ms;
    size_t n_blockers;
    rp_log_span blocker_name[RP_BREAKDOWN_BLOCKERS];
    double blocker_share[RP_BREAKDOWN_BLOCKERS];
    int has_block_at;
    rp_log_span block_at;       /* "short_file:line" where it held the loop */
} rp_log_fields;

/* The record the reporter logs for a sampled request: its summary line
 * into `line`, the numbers and names of its fields into `f` and `names`,
 * and, when `tree` is not NULL and the report has samples, the log-style
 * tree (rp_write_text with `tree_opts`, its log flag set) into `tree`.
 * `r` is the report's tree, symbols and event-loop block; NULL for a
 * report that has none (only the head and the request are written). The
 * top functions (rp_top_frames) and the breakdown are computed once, for
 * the line and the fields; when memory runs out for them, the line and
 * the fields go without them. Returns 0, or -1 when `line` or `names`
 * failed; a failed tree is left failed in `tree` (the record goes without
 * it). */
int rp_write_log(rp_buf *line, rp_buf *names, rp_buf *tree, rp_log_fields *f,
                 const rp_report *r, const rp_log_head *h,
                 const rp_log_request *q, const rp_text_opts *tree_opts);

/* Folded stacks: one line per node with self wall time,
 * "root;child;leaf <self wall in microseconds>", root first. Names have
 * ';' and line breaks replaced, as the format cannot escape them. */
int rp_write_collapsed(rp_buf *out, const rp_report *r);

/* speedscope's file format: one "sampled" profile whose samples are the
 * nodes with self wall time (stack of frame indices, root first; weight =
 * self wall ns); frames named by function with short file and line;
 * profile name "METHOD path" from meta, else the root's name. */
int rp_write_speedscope(rp_buf *out, const rp_report *r);

/* pprof: a gzipped profile.proto. Sample types samples/count,
 * wall/nanoseconds, cpu/nanoseconds (default wall); one Sample per node
 * with self time (locations leaf first, values its self samples, self wall,
 * self CPU), the request metadata as string labels on every sample and as
 * comments; period wall/nanoseconds = the interval. Strings are valid
 * UTF-8 (invalid bytes become U+FFFD, control characters spaces). */
int rp_write_pprof(rp_buf *out, const rp_report *r);

/* Options of rp_write_pprof_opts: what a profile pushed to a server
 * (Pyroscope) needs beyond the report. Inputs, then what the writer says. */
typedef struct rp_pprof_opts {
    int wall_cpu_only;      /* sample types wall and cpu only (each becomes a
                               profile type on the server: no samples/count) */
    uint64_t time_ns;       /* time_nanos; 0: the report's started_at */
    uint64_t duration_ns;   /* duration_nanos; 0: the report's duration */
    uint64_t max_samples;   /* at most this many Samples, 0: no limit; past
                               it the samples with the least self wall time
                               are left out (ties: the later ones) */
    /* out */
    uint64_t trimmed;           /* Samples left out */
    uint64_t trimmed_wall_ns;   /* their self wall time */
    size_t raw_len;             /* the profile's size before gzip */
} rp_pprof_opts;

/* rp_write_pprof with options (`o` NULL: the defaults, as rp_write_pprof).
 * 0, or -1 (out->failed set) when out of memory or past out's limit. */
int rp_write_pprof_opts(rp_buf *out, const rp_report *r, rp_pprof_opts *o);

/* The HTML report: `head`, the JSON document, `tail` (the viewer page split
 * where the profile goes). */
int rp_write_html(rp_buf *out, const rp_report *r, const char *head,
                  size_t head_len, const char *tail, size_t tail_len);

#endif

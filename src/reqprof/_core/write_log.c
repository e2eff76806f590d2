/* write_log.c - the log record of a sampled request: the summary line the
 * reporter logs, the numbers and names of its `extra` fields, and the
 * log-style tree that goes under the line (write_text.c), in one call:
 *
 *     GET /items/{id} -> 200 in 12.3 ms, 9 samples (auto), response sent
 *     at 12.0 ms, GC 0.4 ms: 3 ms waiting for a busy event loop (blocked
 *     by GET /export 80%), 1 ms awaiting, 8 ms running, blocked the event
 *     loop for 60 ms at app.py:42; top: fetch (app.py:30) 4.1 ms, ...
 *
 * (one line). The record is what the Python layer wrote before this file
 * did, byte for byte: numbers are formatted as Python's format(x, ".1f")
 * formats them and the fields rounded as round(x, 3) does
 * (rp_buf_put_fixed, rp_round_decimals), from the same doubles the Python
 * code had (seconds as ns / 1e9, then times 1000); text from the request
 * and names from the report are escaped as printable() escapes them
 * (rp_buf_put_printable), names decoded as Python decodes them (ill-formed
 * UTF-8 replaced). Where a Python step could fail, the line goes without
 * that part, as it did: the top functions or the breakdown when memory
 * runs out, the breakdown when the event loop's block is at a name
 * Report.breakdown cannot make a str of (not well-formed UTF-8).
 *
 * The top functions and the breakdown are computed once, for the line and
 * the fields. Pure C: the caller (module.c) reads the request's metadata
 * and the report's totals from Python objects first, and may write a large
 * report without the GIL.
 */
#include "writers.h"

#include <string.h>

/* Seconds as the Python layer had them (a float of ns / 1e9), in ms. */
static double
ms_of_ns(uint64_t ns)
{
    double s = (double)ns / 1e9;
    return s * 1000.0;
}

/* Appends `s` (n bytes) escaped to `names`; its place goes to *span. */
static void
put_span(rp_buf *names, rp_log_span *span, const char *s, size_t n)
{
    span->off = names->len;
    rp_buf_put_printable(names, s, n, 0);
    span->len = names->len - span->off;
}

static void
put_from_span(rp_buf *line, const rp_buf *names, const rp_log_span *span)
{
    if (span->len > 0) {        /* an empty one may have no data at all */
        rp_buf_put(line, names->data + span->off, span->len);
    }
}

/* The breakdown for the line and the fields: 1 with *b filled, or 0 when
 * Report.breakdown would have raised (out of memory, or names of the
 * loop's block it cannot decode). */
static int
breakdown_of(const rp_report *r, rp_breakdown *b)
{
    if (rp_breakdown_compute(r->tree, r->syms, b) < 0) {
        return 0;
    }
    if (r->loop_block_s > 0.0 && r->loop_block_sym != RP_NONE) {
        const rp_sym *at = rp_symtab_get(r->syms, r->loop_block_sym);
        if (!rp_utf8_valid(at->function.s, at->function.len)
                || !rp_utf8_valid(at->file.s, at->file.len)
                || !rp_utf8_valid(at->short_file.s, at->short_file.len)) {
            return 0;
        }
    }
    return 1;
}

/* The top functions' names and times into the fields. */
static void
top_fields(const rp_report *r, rp_buf *names, rp_log_fields *f)
{
    uint32_t ids[RP_LOG_TOP];
    uint64_t ns[RP_LOG_TOP];
    rp_buf name;
    int n = rp_top_frames(r->tree, r->syms, RP_LOG_TOP, ids, ns);
    rp_buf_init(&name, 0);
    for (int k = 0; k < n; k++) {
        rp_buf_clear(&name);
        if (rp_sym_put_name(&name, rp_symtab_get(r->syms, ids[k])) < 0) {
            names->failed = 1;
            break;
        }
        put_span(names, &f->top_name[k], name.data, name.len);
        f->top_ms[k] = ms_of_ns(ns[k]);     /* rounded by the caller */
        f->n_top++;
    }
    rp_buf_free(&name);
}

/* The breakdown's figures, blockers and block into the fields. */
static void
breakdown_fields(const rp_report *r, const rp_breakdown *b, rp_buf *names,
                 rp_log_fields *f)
{
    f->loop_busy_ms = ms_of_ns(b->loop_busy_ns);
    f->awaiting_ms = ms_of_ns(b->awaiting_ns);
    f->running_ms = ms_of_ns(b->running_wall_ns);
    for (size_t i = 0; i < b->n_blockers; i++) {
        const rp_str *name = b->blockers[i].name;
        put_span(names, &f->blocker_name[i], name->s, name->len);
        f->blocker_share[i] = b->loop_busy_ns
            ? (double)b->blockers[i].wall_ns / (double)b->loop_busy_ns : 0.0;
        f->n_blockers++;
    }
    if (r->loop_block_s > 0.0) {
        f->loop_block_ms = r->loop_block_s * 1000.0;
        if (r->loop_block_sym != RP_NONE) {
            const rp_sym *at = rp_symtab_get(r->syms, r->loop_block_sym);
            const rp_str *file = at->short_file.len ? &at->short_file
                                                    : &at->file;
            if (file->len > 0) {
                f->has_block_at = 1;
                f->block_at.off = names->len;
                rp_buf_put_printable(names, file->s, file->len, 0);
                rp_buf_putc(names, ':');
                rp_buf_put_u64(names, r->loop_block_line);
                f->block_at.len = names->len - f->block_at.off;
            }
        }
    }
}

/* The line's part about the event loop: the wait for it, the block. */
static void
put_loop(rp_buf *line, const rp_buf *names, const rp_log_fields *f)
{
    if (f->loop_busy_ms >= 0.5) {
        rp_buf_puts(line, ": ");
        rp_buf_put_fixed(line, f->loop_busy_ms, 0);
        rp_buf_puts(line, " ms waiting for a busy event loop");
        if (f->n_blockers > 0) {
            rp_buf_puts(line, " (blocked by ");
            for (size_t i = 0; i < f->n_blockers && i < 2; i++) {
                rp_buf_puts(line, i ? ", " : "");
                put_from_span(line, names, &f->blocker_name[i]);
                rp_buf_putc(line, ' ');
                rp_buf_put_fixed(line, f->blocker_share[i] * 100.0, 0);
                rp_buf_putc(line, '%');
            }
            rp_buf_putc(line, ')');
        }
        rp_buf_puts(line, ", ");
        rp_buf_put_fixed(line, f->awaiting_ms, 0);
        rp_buf_puts(line, " ms awaiting, ");
        rp_buf_put_fixed(line, f->running_ms, 0);
        rp_buf_puts(line, " ms running");
    }
    if (f->loop_block_ms > 0.0) {
        rp_buf_puts(line, ", blocked the event loop for ");
        rp_buf_put_fixed(line, f->loop_block_ms, 0);
        rp_buf_puts(line, " ms");
        if (f->has_block_at) {
            rp_buf_puts(line, " at ");
            put_from_span(line, names, &f->block_at);
        }
    }
}

static void
put_line(rp_buf *line, const rp_buf *names, const rp_log_fields *f,
         const rp_log_head *h, const rp_log_request *q)
{
    rp_buf_put_printable(line, q->method.s, q->method.len, 1);
    rp_buf_putc(line, ' ');
    rp_buf_put_printable(line, q->target.s, q->target.len, 1);
    rp_buf_puts(line, " -> ");
    rp_buf_put(line, q->status.s, q->status.len);
    rp_buf_puts(line, " in ");
    rp_buf_put_fixed(line, f->duration_ms, 1);
    rp_buf_puts(line, " ms, ");
    rp_buf_put(line, h->samples.s, h->samples.len);
    rp_buf_puts(line, h->one_sample ? " sample (" : " samples (");
    rp_buf_put(line, q->trigger.s, q->trigger.len);
    rp_buf_putc(line, ')');
    if (q->exception != NULL) {
        rp_buf_puts(line, ", raised ");
        rp_buf_put_printable(line, q->exception->s, q->exception->len, 1);
    }
    if (q->ended != NULL) {
        rp_buf_puts(line, ", ended at ");
        rp_buf_put_printable(line, q->ended->s, q->ended->len, 1);
        if (q->response_cut) {
            rp_buf_puts(line, " (the response was cut)");
        }
    }
    if (h->has_response) {
        rp_buf_puts(line, ", response sent at ");
        rp_buf_put_fixed(line, h->response_s * 1000.0, 1);
        rp_buf_puts(line, " ms");
    }
    if (f->gc_ms > 0.0) {
        rp_buf_puts(line, ", GC ");
        rp_buf_put_fixed(line, f->gc_ms, 1);
        rp_buf_puts(line, " ms");
    }
    if (h->undersampled != NULL) {
        rp_buf_puts(line, ", undersampled (");
        rp_buf_put(line, h->undersampled->s, h->undersampled->len);
        rp_buf_putc(line, ')');
    }
    if (h->truncated) {
        rp_buf_puts(line, ", truncated");
    }
    put_loop(line, names, f);
    if (q->trace_id != NULL) {
        rp_buf_puts(line, ", trace ");
        rp_buf_put_printable(line, q->trace_id->s, q->trace_id->len, 1);
        rp_buf_puts(line, " span ");
        rp_buf_put_printable(line, q->span_id.s, q->span_id.len, 1);
    }
    if (f->n_top > 0) {
        rp_buf_puts(line, "; top: ");
        for (size_t k = 0; k < f->n_top; k++) {
            rp_buf_puts(line, k ? ", " : "");
            put_from_span(line, names, &f->top_name[k]);
            rp_buf_putc(line, ' ');
            rp_buf_put_fixed(line, f->top_ms[k], 1);
            rp_buf_puts(line, " ms");
        }
    }
    else if (!h->sampled) {
        rp_buf_puts(line, "; shorter than the sampling interval "
                          "(PROFILING_INTERVAL): no call tree");
    }
}

/* The fields' numbers as round(x, 3) (the line shows them unrounded). */
static void
round_fields(rp_log_fields *f)
{
    double *all[] = {&f->duration_ms, &f->cpu_ms, &f->gc_ms, &f->response_ms,
                     &f->loop_busy_ms, &f->awaiting_ms, &f->running_ms,
                     &f->loop_block_ms};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        *all[i] = rp_round_decimals(*all[i], 3);
    }
    for (size_t k = 0; k < f->n_top; k++) {
        f->top_ms[k] = rp_round_decimals(f->top_ms[k], 3);
    }
    for (size_t i = 0; i < f->n_blockers; i++) {
        f->blocker_share[i] = rp_round_decimals(f->blocker_share[i], 3);
    }
}

int
rp_write_log(rp_buf *line, rp_buf *names, rp_buf *tree, rp_log_fields *f,
             const rp_report *r, const rp_log_head *h,
             const rp_log_request *q, const rp_text_opts *tree_opts)
{
    rp_breakdown b;
    memset(f, 0, sizeof(*f));
    f->duration_ms = h->duration_s * 1000.0;
    f->cpu_ms = h->cpu_s * 1000.0;
    f->gc_ms = h->gc_s * 1000.0;
    f->response_ms = h->has_response ? h->response_s * 1000.0 : 0.0;
    if (r != NULL && h->sampled) {
        top_fields(r, names, f);
        if (breakdown_of(r, &b)) {
            breakdown_fields(r, &b, names, f);
        }
    }
    if (!names->failed) {
        put_line(line, names, f, h, q);
    }
    round_fields(f);
    if (tree != NULL && r != NULL && h->sampled) {
        rp_text_opts o = {0};
        if (tree_opts != NULL) {
            o = *tree_opts;
        }
        o.log = 1;
        if (rp_write_text(tree, r, &o) < 0) {
            tree->failed = 1;
        }
        while (!tree->failed && tree->len > 0
                && tree->data[tree->len - 1] == '\n') {
            tree->data[--tree->len] = '\0';     /* as .rstrip("\n") */
        }
    }
    return line->failed || names->failed ? -1 : 0;
}

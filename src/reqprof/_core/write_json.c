/* write_json.c - the profile as JSON, schema version 1
 * (docs/json-schema.md is the contract; field order follows its tables).
 *
 * The tree is written by an explicit walk (rp_walk): a node's fields and
 * "children":[ when it is entered, ]} when it is left, so the C stack stays
 * flat however deep the tree is. Every string goes through
 * rp_buf_put_json_string, so the document is valid UTF-8 and safe to embed
 * in an HTML <script> element. Numbers never depend on the C locale.
 * A node's `lines` are written in line-number order so output is stable.
 */
#include "writers.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct line_entry {
    uint32_t loc;
    uint64_t self_wall_ns;
} line_entry;

/* A zero node, written as the root of a tree whose init failed. */
static const rp_node EMPTY_ROOT = {
    RP_NONE, RP_NONE, RP_NONE, RP_NONE, 0, RP_NONE, 0, 0, 0, 0, 0,
};

/* The shortest %g form that reads back as x, with the locale's decimal
 * point (whatever its bytes) rewritten to '.'. Non-finite values are not
 * JSON; they are written as 0. */
static int
put_double(rp_buf *b, double x)
{
    char tmp[64];
    if (!isfinite(x)) {
        x = 0.0;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*g", prec, x);
        if (strtod(tmp, NULL) == x) {
            break;
        }
    }
    int in_point = 0;
    for (const char *p = tmp; *p != '\0'; p++) {
        char c = *p;
        if ((c >= '0' && c <= '9') || c == '-' || c == '+' || c == 'e'
                || c == 'E') {
            rp_buf_putc(b, c);
            in_point = 0;
        }
        else if (!in_point) {
            rp_buf_putc(b, '.');
            in_point = 1;
        }
    }
    return b->failed ? -1 : 0;
}

/* Whether s is exactly a JSON number, true, false or null: only those are
 * written raw, anything else as a string, so the document stays valid. */
static int
is_json_literal(const char *s, size_t n)
{
    if ((n == 4 && memcmp(s, "true", 4) == 0)
            || (n == 5 && memcmp(s, "false", 5) == 0)
            || (n == 4 && memcmp(s, "null", 4) == 0)) {
        return 1;
    }
    return n > 0 && rp_json_number_len(s, n) == n;
}

static int
cmp_line(const void *a, const void *b)
{
    uint32_t x = ((const line_entry *)a)->loc;
    uint32_t y = ((const line_entry *)b)->loc;
    return (x > y) - (x < y);
}

static void
put_key(rp_buf *b, const char *key)
{
    rp_buf_putc(b, '"');
    rp_buf_puts(b, key);
    rp_buf_put(b, "\":", 2);
}

static void
put_str_field(rp_buf *b, const char *key, const rp_str *s)
{
    put_key(b, key);
    rp_buf_put_json_string(b, s->s, s->len);
    rp_buf_putc(b, ',');
}

static void
put_seconds_field(rp_buf *b, const char *key, uint64_t ns)
{
    put_key(b, key);
    rp_buf_put_seconds(b, ns);
    rp_buf_putc(b, ',');
}

/* `lines` of node nd, sorted by line number (scratch: room for all of the
 * tree's line entries). */
static void
put_lines(rp_buf *out, const rp_tree *t, const rp_node *nd,
          line_entry *scratch)
{
    size_t n = 0;
    for (uint32_t l = nd->first_line; l != RP_NONE && n < t->n_lines;
            l = t->lines[l].next) {
        scratch[n].loc = t->lines[l].loc;
        scratch[n].self_wall_ns = t->lines[l].self_wall_ns;
        n++;
    }
    qsort(scratch, n, sizeof(line_entry), cmp_line);
    rp_buf_putc(out, '{');
    for (size_t i = 0; i < n; i++) {
        if (i > 0) {
            rp_buf_putc(out, ',');
        }
        rp_buf_putc(out, '"');
        rp_buf_put_u64(out, scratch[i].loc);
        rp_buf_put(out, "\":", 2);
        rp_buf_put_seconds(out, scratch[i].self_wall_ns);
    }
    rp_buf_putc(out, '}');
}

/* A node's fields up to the opening of its children array. */
static void
put_node_open(rp_buf *out, rp_buf *name, const rp_report *r,
              const rp_node *nd, line_entry *scratch)
{
    const rp_sym *sym = rp_symtab_get(r->syms, nd->frame);
    rp_buf_clear(name);
    rp_sym_put_name(name, sym);
    rp_buf_put(out, "{\"name\":", 8);
    if (name->failed) {
        out->failed = 1;    /* out of memory for the name */
    }
    rp_buf_put_json_string(out, name->data, name->len);
    rp_buf_putc(out, ',');
    put_str_field(out, "function", &sym->function);
    put_str_field(out, "file", &sym->file);
    put_str_field(out, "short_file", &sym->short_file);
    put_key(out, "line");
    rp_buf_put_u64(out, sym->line);
    rp_buf_put(out, ",\"kind\":\"", 9);
    rp_buf_puts(out, rp_kind_name(sym->kind));
    rp_buf_put(out, "\",", 2);
    put_seconds_field(out, "wall_s", nd->wall_ns);
    put_seconds_field(out, "cpu_s", nd->cpu_ns);
    put_seconds_field(out, "self_wall_s", nd->self_wall_ns);
    put_seconds_field(out, "self_cpu_s", nd->self_cpu_ns);
    put_key(out, "samples");
    rp_buf_put_u64(out, nd->samples);
    rp_buf_putc(out, ',');
    put_key(out, "lines");
    put_lines(out, r->tree, nd, scratch);
    rp_buf_put(out, ",\"children\":[", 13);
}

static void
put_wall(rp_buf *out, const char *key, uint64_t wall_ns)
{
    rp_buf_puts(out, key);
    rp_buf_puts(out, "{\"wall_s\":");
    rp_buf_put_seconds(out, wall_ns);
    rp_buf_putc(out, '}');
}

/* The "breakdown" and "loop_block" fields. 0, or -1 when out of memory. */
static int
put_breakdown(rp_buf *out, const rp_report *r)
{
    rp_breakdown b;
    if (rp_breakdown_compute(r->tree, r->syms, &b) < 0) {
        return -1;
    }
    rp_buf_puts(out, ",\"breakdown\":{\"running\":{\"wall_s\":");
    rp_buf_put_seconds(out, b.running_wall_ns);
    rp_buf_puts(out, ",\"cpu_s\":");
    rp_buf_put_seconds(out, b.running_cpu_ns);
    put_wall(out, "},\"awaiting\":", b.awaiting_ns);
    rp_buf_puts(out, ",\"event_loop_busy\":{\"wall_s\":");
    rp_buf_put_seconds(out, b.loop_busy_ns);
    rp_buf_puts(out, ",\"blockers\":[");
    for (size_t i = 0; i < b.n_blockers; i++) {
        rp_buf_puts(out, i ? ",{\"name\":" : "{\"name\":");
        rp_buf_put_json_string(out, b.blockers[i].name->s,
                               b.blockers[i].name->len);
        rp_buf_puts(out, ",\"wall_s\":");
        rp_buf_put_seconds(out, b.blockers[i].wall_ns);
        rp_buf_puts(out, ",\"share\":");
        put_double(out, b.loop_busy_ns
                   ? (double)b.blockers[i].wall_ns / (double)b.loop_busy_ns
                   : 0.0);
        rp_buf_putc(out, '}');
    }
    rp_buf_puts(out, "]},\"in_worker_threads\":{\"wall_s\":");
    rp_buf_put_seconds(out, b.worker_wall_ns);
    rp_buf_puts(out, ",\"cpu_s\":");
    rp_buf_put_seconds(out, b.worker_cpu_ns);
    put_wall(out, "},\"gc\":", b.gc_ns);
    put_wall(out, ",\"unsampled\":", b.unsampled_ns);
    put_wall(out, ",\"out_of_context\":", b.out_of_context_ns);
    rp_buf_puts(out, "},\"loop_block\":");
    if (!(r->loop_block_s > 0.0 && isfinite(r->loop_block_s))) {
        rp_buf_puts(out, "null");
        return 0;
    }
    rp_buf_puts(out, "{\"wall_s\":");
    put_double(out, r->loop_block_s);
    if (r->loop_block_sym != RP_NONE) {
        const rp_sym *at = rp_symtab_get(r->syms, r->loop_block_sym);
        rp_buf_puts(out, ",\"function\":");
        rp_buf_put_json_string(out, at->function.s, at->function.len);
        rp_buf_puts(out, ",\"file\":");
        rp_buf_put_json_string(out, at->file.s, at->file.len);
        rp_buf_puts(out, ",\"short_file\":");
        rp_buf_put_json_string(out, at->short_file.s, at->short_file.len);
        rp_buf_puts(out, ",\"line\":");
        rp_buf_put_u64(out, r->loop_block_line);
    }
    rp_buf_putc(out, '}');
    return 0;
}

static void
put_header(rp_buf *out, const rp_report *r, const rp_node *root)
{
    unsigned trunc = rp_report_truncated(r);
    int first = 1;
    rp_buf_puts(out, "{\"version\":");
    rp_buf_put_u64(out, RP_SCHEMA_VERSION);
    rp_buf_puts(out, ",\"reqprof_version\":");
    rp_buf_put_json_string(out, r->version ? r->version : "",
                           r->version ? strlen(r->version) : 0);
    rp_buf_puts(out, ",\"started_at\":");
    put_double(out, r->started_at);
    rp_buf_puts(out, ",\"duration_s\":");
    put_double(out, r->duration_s);
    rp_buf_puts(out, ",\"interval_s\":");
    put_double(out, r->interval_s);
    rp_buf_puts(out, ",\"effective_interval_s\":");
    put_double(out, rp_report_effective_interval(r));
    rp_buf_puts(out, ",\"overhead_budget_percent\":");
    if (r->budget_percent > 0.0 && isfinite(r->budget_percent)) {
        put_double(out, r->budget_percent);
    }
    else {
        rp_buf_puts(out, "null");
    }
    rp_buf_puts(out, ",\"samples\":");
    rp_buf_put_u64(out, root->samples);
    rp_buf_puts(out, ",\"wall_s\":");
    rp_buf_put_seconds(out, root->wall_ns);
    rp_buf_puts(out, ",\"cpu_s\":");
    rp_buf_put_seconds(out, root->cpu_ns);
    rp_buf_puts(out, ",\"sampler_cpu_s\":");
    double percent = 0.0;
    int has_percent = r->has_sampler_cpu
        && rp_cpu_percent(r->sampler_cpu_ns, r->duration_s, &percent);
    if (r->has_sampler_cpu) {
        rp_buf_put_seconds(out, r->sampler_cpu_ns);
    }
    else {
        rp_buf_puts(out, "null");
    }
    rp_buf_puts(out, ",\"sampler_cpu_percent\":");
    if (has_percent) {
        put_double(out, percent);
    }
    else {
        rp_buf_puts(out, "null");
    }
    rp_buf_puts(out, ",\"async_mode\":");
    rp_buf_put_json_string(out, r->async_mode ? r->async_mode : "",
                           r->async_mode ? strlen(r->async_mode) : 0);
    rp_buf_puts(out, ",\"max_depth\":");
    rp_buf_put_u64(out, r->max_depth);
    rp_buf_puts(out, trunc ? ",\"truncated\":true" : ",\"truncated\":false");
    rp_buf_puts(out, ",\"truncated_reasons\":[");
    for (unsigned i = 0; i < RP_TRUNC_REASONS; i++) {
        if (trunc & (1u << i)) {
            rp_buf_puts(out, first ? "\"" : ",\"");
            rp_buf_puts(out, rp_trunc_name(i));
            rp_buf_putc(out, '"');
            first = 0;
        }
    }
    rp_buf_puts(out, "],\"gc_s\":");
    put_double(out, r->gc_s);
    rp_buf_puts(out, ",\"response_s\":");
    if (r->response_s > 0.0 && isfinite(r->response_s)) {
        put_double(out, r->response_s);
    }
    else {
        rp_buf_puts(out, "null");
    }
    const char *under = rp_undersampled_name(r->undersampled);
    rp_buf_puts(out, under ? ",\"undersampled\":true,\"undersampled_reason\":"
                           : ",\"undersampled\":false,\"undersampled_reason\":null");
    if (under) {
        rp_buf_put_json_string(out, under, strlen(under));
    }
    if (put_breakdown(out, r) < 0) {
        out->failed = 1;
    }
    rp_buf_puts(out, ",\"meta\":{");
    for (size_t i = 0; i < r->n_meta; i++) {
        const rp_meta_item *m = &r->meta[i];
        if (i > 0) {
            rp_buf_putc(out, ',');
        }
        rp_buf_put_json_string(out, m->key.s, m->key.len);
        rp_buf_putc(out, ':');
        if (m->is_literal && is_json_literal(m->value.s, m->value.len)) {
            rp_buf_put(out, m->value.s, m->value.len);
        }
        else {
            rp_buf_put_json_string(out, m->value.s, m->value.len);
        }
    }
    rp_buf_puts(out, "},\"root\":");
}

int
rp_write_json(rp_buf *out, const rp_report *r)
{
    const rp_tree *t = r->tree;
    rp_buf name;
    rp_walk walk;
    int walking = 0;
    line_entry *scratch = NULL;
    uint32_t node;
    int ev;
    rp_buf_init(&name, 0);
    scratch = malloc(((size_t)t->n_lines + 1) * sizeof(line_entry));
    if (scratch == NULL || rp_walk_init(&walk, t) < 0) {
        out->failed = 1;
        goto done;
    }
    walking = 1;
    put_header(out, r, t->n_nodes > 0 ? &t->nodes[0] : &EMPTY_ROOT);
    if (t->n_nodes == 0) {
        put_node_open(out, &name, r, &EMPTY_ROOT, scratch);
        rp_buf_put(out, "]}", 2);
    }
    while (!out->failed && (ev = rp_walk_next(&walk, &node)) != RP_WALK_END) {
        if (ev == RP_WALK_ENTER) {
            /* Not the first child of its parent: a separator first. */
            if (walk.depth >= 2 && walk.frames[walk.depth - 2].next > 1) {
                rp_buf_putc(out, ',');
            }
            put_node_open(out, &name, r, &t->nodes[node], scratch);
        }
        else {
            rp_buf_put(out, "]}", 2);
        }
    }
    rp_buf_putc(out, '}');
done:
    if (walking) {
        rp_walk_free(&walk);
    }
    free(scratch);
    rp_buf_free(&name);
    return out->failed ? -1 : 0;
}

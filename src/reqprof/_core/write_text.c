/* write_text.c - the console tree, in the manner of pyinstrument's console
 * output:
 *
 *     Samples: 4  Duration: 0.007s  Wall: 0.006s  CPU: 0.003s  GC: 0.001s
 *
 *     wall   cpu    %wall  frame
 *     0.006  0.003  100.0%  handler (app.py:10)
 *     ├─ 0.004  0.001  66.7%  slow (app.py:20)
 *     │  └─ 0.003  0.000  50.0%  [await] app.py:22
 *     └─ 0.002  0.002  25.0%  fast (app.py:30)
 *
 * Each line: wall seconds, CPU seconds, % of the root's wall time, name
 * (an [await] names the file and line it waits at). The header line adds
 * GC time, the response's end and an undersampled report's reason when
 * there are some; lines below it say when the request waited for a busy
 * event loop or held one, and when the overhead budget lengthened the
 * sampling interval.
 *
 * Hiding: a node under min_percent of the root's wall is not shown, nor is
 * anything below it (a child never has more wall time than its parent).
 * Children are sorted by wall time, so a node's visible children are a
 * prefix of its sorted children: "is this the last visible child" is a
 * look at the next sibling. The footer says how many nodes were hidden and
 * how many lines max_lines cut, so the output never looks complete when it
 * is not.
 *
 * Names go through rp_buf_put_plain: one node is one line, and nothing in a
 * name (ESC, C1 controls) reaches the terminal as a control sequence.
 * Indentation stops growing after MAX_INDENT levels (a "[+N]" marker tells
 * the remaining depth), so output stays linear in the node count for very
 * deep trees; the walk itself is iterative (rp_walk).
 */
#include "writers.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_INDENT 48u

#define RED "\x1b[31m"
#define YELLOW "\x1b[33m"
#define GREEN "\x1b[32m"
#define CYAN "\x1b[36m"
#define DIM "\x1b[2m"
#define RESET "\x1b[0m"

typedef struct glyphs {
    const char *pipe, *space, *tee, *corner, *ellipsis;
} glyphs;

static const glyphs UNICODE_GLYPHS = {
    "\xE2\x94\x82  ", "   ", "\xE2\x94\x9C\xE2\x94\x80 ",
    "\xE2\x94\x94\xE2\x94\x80 ", "\xE2\x80\xA6",
};
static const glyphs ASCII_GLYPHS = { "|  ", "   ", "|- ", "\\- ", "..." };

/* State of one write. */
typedef struct text_ctx {
    rp_buf *out;
    rp_buf name;            /* scratch for display names */
    const rp_report *r;
    const rp_text_opts *o;
    const glyphs *g;
    uint64_t root_wall;
    unsigned char *lib;     /* per symbol: 0 not known yet, 1 not library
                               code, 2 library code; NULL: not kept */
} text_ctx;

/* Seconds with 3 decimals, rounded (integer arithmetic: no locale). */
static void
put_secs3(rp_buf *b, uint64_t ns)
{
    uint64_t ms = ns / 1000000u + (ns % 1000000u >= 500000u);
    char frac[4] = {'.', 0, 0, 0};
    frac[1] = (char)('0' + ms / 100 % 10);
    frac[2] = (char)('0' + ms / 10 % 10);
    frac[3] = (char)('0' + ms % 10);
    rp_buf_put_u64(b, ms / 1000);
    rp_buf_put(b, frac, 4);
}

/* Tenths of a percent of part in whole (0 when whole is 0). */
static uint64_t
permille(uint64_t part, uint64_t whole)
{
    return whole == 0 ? 0
        : (uint64_t)((double)part * 1000.0 / (double)whole + 0.5);
}

/* x >= 0 with at most `decimals` (<= 6) decimals, trailing zeros left
 * out: "4", "0.5", "3.25" (integer arithmetic: no locale). */
static void
put_trimmed(rp_buf *b, double x, unsigned decimals)
{
    uint64_t scale = 1;
    for (unsigned i = 0; i < decimals; i++) {
        scale *= 10;
    }
    double scaled = x * (double)scale + 0.5;
    uint64_t v = isfinite(scaled) && scaled > 0.0
        ? (scaled >= 1.8e19 ? UINT64_MAX : (uint64_t)scaled) : 0;
    uint64_t frac = v % scale;
    rp_buf_put_u64(b, v / scale);
    if (frac == 0) {
        return;
    }
    char digits[8];
    unsigned n = decimals;
    for (unsigned i = decimals; i-- > 0;) {
        digits[i] = (char)('0' + frac % 10);
        frac /= 10;
    }
    while (n > 0 && digits[n - 1] == '0') {
        n--;
    }
    rp_buf_putc(b, '.');
    rp_buf_put(b, digits, n);
}

static void
put_tenths(rp_buf *b, uint64_t tenths)
{
    rp_buf_put_u64(b, tenths / 10);
    rp_buf_putc(b, '.');
    rp_buf_putc(b, (char)('0' + tenths % 10));
}

static int
visible(const text_ctx *c, uint32_t node)
{
    double min = c->o->min_percent;
    /* !(min > 0) also takes NaN: nothing is hidden then. */
    return node == 0 || !(min > 0.0)
        || (double)c->r->tree->nodes[node].wall_ns * 100.0
           >= min * (double)c->root_wall;
}

/* Whether the node open at frames[level] is the last visible child of its
 * parent (level >= 1). */
static int
is_last(const text_ctx *c, const rp_walk *w, uint32_t level)
{
    const rp_walk_frame *p = &w->frames[level - 1];
    return p->next >= p->count || !visible(c, w->pool[p->first + p->next]);
}

static const rp_sym *
node_sym(const text_ctx *c, uint32_t node)
{
    return rp_symtab_get(c->r->syms, c->r->tree->nodes[node].frame);
}

/* Whether the node's frame is library code: asked once per symbol (the
 * log style asks again for every node of a run it folds). */
static int
is_library(const text_ctx *c, uint32_t node)
{
    uint32_t frame = c->r->tree->nodes[node].frame;
    int known = c->lib != NULL && frame < c->r->syms->n ? c->lib[frame] : 0;
    if (known == 0) {
        known = 1 + rp_sym_is_library(node_sym(c, node), c->o->lib_prefixes,
                                      c->o->n_lib_prefixes);
        if (c->lib != NULL && frame < c->r->syms->n) {
            c->lib[frame] = (unsigned char)known;
        }
    }
    return known == 2;
}

/* The node's display name, made plain (one line, no terminal control). */
static void
put_name(text_ctx *c, uint32_t node)
{
    rp_buf_clear(&c->name);
    rp_sym_put_name(&c->name, node_sym(c, node));
    if (c->name.failed) {
        c->out->failed = 1;
    }
    rp_buf_put_plain(c->out, c->name.data, c->name.len, 0, 0);
}

/* When the request waited for a busy event loop or held one: a line
 * with where its time went, the blockers named, and where it held it. */
static void
put_loop_lines(text_ctx *c)
{
    rp_buf *out = c->out;
    rp_breakdown b;
    if (rp_breakdown_compute(c->r->tree, c->r->syms, &b) < 0) {
        out->failed = 1;
        return;
    }
    if (b.loop_busy_ns > 0) {
        rp_buf_puts(out, c->o->color ? "\n" YELLOW "Event loop busy: "
                                     : "\nEvent loop busy: ");
        put_secs3(out, b.loop_busy_ns);
        rp_buf_puts(out, "s (blocked by ");
        for (size_t i = 0; i < b.n_blockers && i < 3; i++) {
            rp_buf_puts(out, i ? ", " : "");
            rp_buf_put_plain(out, b.blockers[i].name->s,
                             b.blockers[i].name->len, 0, 0);
            rp_buf_putc(out, ' ');
            rp_buf_put_u64(out, (uint64_t)((double)b.blockers[i].wall_ns
                                           * 100.0 / (double)b.loop_busy_ns
                                           + 0.5));
            rp_buf_putc(out, '%');
        }
        rp_buf_puts(out, c->o->color ? ")" RESET "  Awaiting: "
                                     : ")  Awaiting: ");
        put_secs3(out, b.awaiting_ns);
        rp_buf_puts(out, "s  Running: ");
        put_secs3(out, b.running_wall_ns);
        rp_buf_putc(out, 's');
    }
    double block = c->r->loop_block_s;
    if (block > 0.0 && block < 1.8e10) {
        rp_buf_puts(out, c->o->color ? "\n" YELLOW "Blocked the event loop: "
                                     : "\nBlocked the event loop: ");
        put_secs3(out, (uint64_t)(block * 1e9 + 0.5));
        rp_buf_putc(out, 's');
        if (c->r->loop_block_sym != RP_NONE) {
            const rp_sym *at = rp_symtab_get(c->r->syms, c->r->loop_block_sym);
            const rp_str *f = at->short_file.len ? &at->short_file : &at->file;
            rp_buf_puts(out, " at ");
            rp_buf_put_plain(out, f->s, f->len, 0, 0);
            rp_buf_putc(out, ':');
            rp_buf_put_u64(out, c->r->loop_block_line);
            rp_buf_puts(out, " (");
            rp_buf_put_plain(out, at->function.s, at->function.len, 0, 0);
            rp_buf_putc(out, ')');
        }
        rp_buf_puts(out, c->o->color ? RESET : "");
    }
}

/* When the overhead budget made the interval longer than asked: a line
 * that says to what, and why. */
static void
put_interval_line(text_ctx *c)
{
    rp_buf *out = c->out;
    if (!rp_report_lengthened(c->r)) {
        return;
    }
    rp_buf_puts(out, c->o->color ? "\n" YELLOW "Interval lengthened to "
                                 : "\nInterval lengthened to ");
    put_trimmed(out, rp_report_effective_interval(c->r) * 1e3, 3);
    rp_buf_puts(out, " ms (");
    put_trimmed(out, c->r->interval_s * 1e3, 3);
    rp_buf_puts(out, " ms asked) to stay within ");
    if (c->r->budget_percent > 0.0) {
        rp_buf_puts(out, "the ");
        put_trimmed(out, c->r->budget_percent, 6);
        rp_buf_puts(out, "% overhead budget");
    }
    else {
        rp_buf_puts(out, "the overhead budget of another session");
    }
    rp_buf_puts(out, c->o->color ? RESET : "");
}

static void
put_header(text_ctx *c)
{
    rp_buf *out = c->out;
    const rp_tree *t = c->r->tree;
    double d = c->r->duration_s;
    uint64_t dur = isfinite(d) && d > 0.0
        ? (d >= 1.8e10 ? UINT64_MAX : (uint64_t)(d * 1e9 + 0.5)) : 0;
    unsigned trunc = rp_report_truncated(c->r);
    rp_buf_puts(out, "Samples: ");
    rp_buf_put_u64(out, t->n_nodes > 0 ? t->nodes[0].samples : 0);
    rp_buf_puts(out, "  Duration: ");
    put_secs3(out, dur);
    rp_buf_puts(out, "s  Wall: ");
    put_secs3(out, c->root_wall);
    rp_buf_puts(out, "s  CPU: ");
    put_secs3(out, t->n_nodes > 0 ? t->nodes[0].cpu_ns : 0);
    rp_buf_putc(out, 's');
    if (c->r->gc_s > 0.0 && c->r->gc_s < 1.8e10) {
        rp_buf_puts(out, "  GC: ");
        put_secs3(out, (uint64_t)(c->r->gc_s * 1e9 + 0.5));
        rp_buf_putc(out, 's');
    }
    if (c->r->response_s > 0.0 && c->r->response_s < 1.8e10) {
        rp_buf_puts(out, "  Response: ");
        put_secs3(out, (uint64_t)(c->r->response_s * 1e9 + 0.5));
        rp_buf_putc(out, 's');
    }
    const char *under = rp_undersampled_name(c->r->undersampled);
    if (under != NULL) {
        rp_buf_puts(out, c->o->color ? "  " YELLOW "UNDERSAMPLED (" : "  UNDERSAMPLED (");
        rp_buf_puts(out, under);
        rp_buf_puts(out, c->o->color ? ")" RESET : ")");
    }
    if (trunc) {
        int first = 1;
        rp_buf_puts(out, c->o->color ? "  " RED "TRUNCATED (" : "  TRUNCATED (");
        for (unsigned i = 0; i < RP_TRUNC_REASONS; i++) {
            if (trunc & (1u << i)) {
                rp_buf_puts(out, first ? "" : ", ");
                rp_buf_puts(out, rp_trunc_name(i));
                first = 0;
            }
        }
        rp_buf_puts(out, c->o->color ? ")" RESET : ")");
    }
    put_loop_lines(c);
    put_interval_line(c);
    rp_buf_puts(out, "\n\n");
}

/* The tree drawing before the node entered last (not the root). */
static void
put_prefix(const text_ctx *c, const rp_walk *w)
{
    uint32_t level = w->depth - 1;      /* the node's depth; root = 0 */
    uint32_t shown = level - 1 < MAX_INDENT ? level - 1 : MAX_INDENT;
    for (uint32_t j = 1; j <= shown; j++) {
        rp_buf_puts(c->out, is_last(c, w, j) ? c->g->space : c->g->pipe);
    }
    if (level - 1 > shown) {
        rp_buf_puts(c->out, "[+");
        rp_buf_put_u64(c->out, level - 1 - shown);
        rp_buf_puts(c->out, "] ");
    }
    rp_buf_puts(c->out, is_last(c, w, level) ? c->g->corner : c->g->tee);
}

static void
put_node_line(text_ctx *c, const rp_walk *w, uint32_t node)
{
    rp_buf *out = c->out;
    const rp_node *nd = &c->r->tree->nodes[node];
    const rp_sym *sym = node_sym(c, node);
    uint64_t pm = permille(nd->wall_ns, c->root_wall);
    const char *colour = NULL;
    if (node != 0) {
        put_prefix(c, w);
    }
    if (c->o->color) {
        colour = pm >= 500 ? RED : pm >= 200 ? YELLOW : pm >= 50 ? GREEN
               : NULL;
    }
    if (colour != NULL) {
        rp_buf_puts(out, colour);
    }
    put_secs3(out, nd->wall_ns);
    rp_buf_puts(out, "  ");
    put_secs3(out, nd->cpu_ns);
    rp_buf_puts(out, "  ");
    put_tenths(out, pm);
    rp_buf_putc(out, '%');
    if (colour != NULL) {
        rp_buf_puts(out, RESET);
    }
    rp_buf_puts(out, "  ");
    colour = NULL;
    if (c->o->color) {
        colour = sym->kind != RP_KIND_FRAME ? CYAN
               : is_library(c, node) ? DIM : NULL;
    }
    if (colour != NULL) {
        rp_buf_puts(out, colour);
    }
    put_name(c, node);
    if (colour != NULL) {
        rp_buf_puts(out, RESET);
    }
    rp_buf_putc(out, '\n');
}

/* ---- the log style ------------------------------------------------------ */

/* State of one log-style write, per level of the walk (the node entered
 * at walk depth d is at index d - 1) and per level of the output. */
typedef struct log_ctx {
    text_ctx *c;
    uint32_t *out_depth;    /* walk level -> depth of its line (root 0) */
    uint32_t *run_end;      /* walk level -> last node of the fold run it is
                               in, RP_NONE when it is not in one */
    unsigned char *last;    /* output depth -> its latest line is a last
                               child */
} log_ctx;

/* The only visible child of `node`, or RP_NONE (none, or several). */
static uint32_t
only_visible_child(const text_ctx *c, uint32_t node)
{
    const rp_node *nodes = c->r->tree->nodes;
    uint32_t only = RP_NONE;
    for (uint32_t k = nodes[node].first_child; k != RP_NONE;
            k = nodes[k].next_sibling) {
        if (visible(c, k)) {
            if (only != RP_NONE) {
                return RP_NONE;
            }
            only = k;
        }
    }
    return only;
}

/* Whether `node` (not the root) folds into a run: a library frame with
 * little self time and one visible child, which goes to *next. The
 * numbers are looked at first: the file name last. */
static int
foldable(const text_ctx *c, uint32_t node, uint32_t *next)
{
    const rp_node *nd = &c->r->tree->nodes[node];
    double min = c->o->min_percent;
    /* Little self time: under min_percent (nothing when it is not > 0). */
    if (node == 0 || !(min > 0.0)
            || (double)nd->self_wall_ns * 100.0 >= min * (double)c->root_wall) {
        return 0;
    }
    *next = only_visible_child(c, node);
    return *next != RP_NONE && is_library(c, node);
}

static void
put_log_prefix(log_ctx *l, uint32_t depth, int is_last_child)
{
    const glyphs *g = l->c->g;
    rp_buf *out = l->c->out;
    uint32_t shown = depth - 1 < MAX_INDENT ? depth - 1 : MAX_INDENT;
    for (uint32_t j = 1; j <= shown; j++) {
        rp_buf_puts(out, l->last[j] ? g->space : g->pipe);
    }
    if (depth - 1 > shown) {
        rp_buf_puts(out, "[+");
        rp_buf_put_u64(out, depth - 1 - shown);
        rp_buf_puts(out, "] ");
    }
    rp_buf_puts(out, is_last_child ? g->corner : g->tee);
    l->last[depth] = (unsigned char)is_last_child;
}

/* "12.3 ms 45%  " for `node`. */
static void
put_log_figures(const text_ctx *c, uint32_t node)
{
    uint64_t wall = c->r->tree->nodes[node].wall_ns;
    uint64_t tenths_ms = wall / 100000u + (wall % 100000u >= 50000u);
    rp_buf_put_u64(c->out, tenths_ms / 10);
    rp_buf_putc(c->out, '.');
    rp_buf_putc(c->out, (char)('0' + tenths_ms % 10));
    rp_buf_puts(c->out, " ms ");
    rp_buf_put_u64(c->out, c->root_wall == 0 ? 0
        : (uint64_t)((double)wall * 100.0 / (double)c->root_wall + 0.5));
    rp_buf_puts(c->out, "%  ");
}

static void
put_log_function(text_ctx *c, uint32_t node)
{
    const rp_sym *sym = node_sym(c, node);
    rp_buf_put_plain(c->out, sym->function.s, sym->function.len, 0, 0);
}

static int
write_log(text_ctx *c)
{
    const rp_tree *t = c->r->tree;
    log_ctx l = {c, NULL, NULL, NULL};
    rp_walk walk;
    int walking = 0;
    uint64_t shown = 0;
    uint32_t node;
    int ev;
    if (t->n_nodes == 0
            || (t->nodes[0].samples == 0 && t->nodes[0].first_child == RP_NONE)) {
        return 0;
    }
    l.out_depth = malloc(sizeof(uint32_t) * t->n_nodes);
    l.run_end = malloc(sizeof(uint32_t) * t->n_nodes);
    l.last = calloc((size_t)t->n_nodes + 1, 1);
    if (l.out_depth == NULL || l.run_end == NULL || l.last == NULL
            || rp_walk_init(&walk, t) < 0) {
        c->out->failed = 1;
        goto done;
    }
    walking = 1;
    while (!c->out->failed && (ev = rp_walk_next(&walk, &node)) != RP_WALK_END) {
        if (ev != RP_WALK_ENTER) {
            continue;
        }
        uint32_t level = walk.depth - 1;    /* the node's depth; root = 0 */
        if (!visible(c, node)) {
            rp_walk_skip_children(&walk);
            continue;
        }
        uint32_t parent_run = level > 0 ? l.run_end[level - 1] : RP_NONE;
        uint32_t parent = level > 0 ? walk.frames[level - 1].node : RP_NONE;
        if (parent_run != RP_NONE && parent != parent_run) {
            /* Inside a run already written as one line. */
            l.out_depth[level] = l.out_depth[level - 1];
            l.run_end[level] = parent_run;
            continue;
        }
        if (c->o->max_lines != 0 && shown >= c->o->max_lines) {
            rp_buf_puts(c->out, c->g->ellipsis);
            rp_buf_putc(c->out, '\n');
            break;
        }
        uint32_t depth = level > 0 ? l.out_depth[level - 1] + 1 : 0;
        uint32_t next, run_last = RP_NONE, run_len = 0;
        for (uint32_t k = node; foldable(c, k, &next); k = next) {
            run_last = k;
            run_len++;
        }
        if (run_len < 2) {
            run_last = RP_NONE;     /* a lone library frame is shown as is */
        }
        if (level > 0) {
            put_log_prefix(&l, depth, is_last(c, &walk, level));
        }
        put_log_figures(c, node);
        if (run_last != RP_NONE) {
            put_log_function(c, node);
            rp_buf_puts(c->out, " \xE2\x86\x92 ");
            rp_buf_puts(c->out, c->g->ellipsis);
            rp_buf_puts(c->out, " \xE2\x86\x92 ");
            put_log_function(c, run_last);
            rp_buf_puts(c->out, " [");
            rp_buf_put_u64(c->out, run_len);
            rp_buf_puts(c->out, " frames]");
        }
        else {
            put_name(c, node);
        }
        rp_buf_putc(c->out, '\n');
        shown++;
        l.out_depth[level] = depth;
        l.run_end[level] = run_last;
    }
done:
    if (walking) {
        rp_walk_free(&walk);
    }
    free(l.out_depth);
    free(l.run_end);
    free(l.last);
    return c->out->failed ? -1 : 0;
}

/* ---- the console style --------------------------------------------------- */

int
rp_write_text(rp_buf *out, const rp_report *r, const rp_text_opts *o)
{
    static const rp_text_opts defaults = {0, 0, 0.0, 0};
    const rp_tree *t = r->tree;
    text_ctx c;
    rp_walk walk;
    int walking = 0;
    uint64_t shown = 0, visible_total = 0;
    uint32_t node;
    int ev;
    c.out = out;
    c.r = r;
    c.o = o != NULL ? o : &defaults;
    c.g = c.o->ascii ? &ASCII_GLYPHS : &UNICODE_GLYPHS;
    c.root_wall = t->n_nodes > 0 ? t->nodes[0].wall_ns : 0;
    /* Without memory for it, the cache is only not kept. */
    c.lib = r->syms != NULL && (c.o->log || c.o->color)
        ? calloc(r->syms->n ? r->syms->n : 1, 1) : NULL;
    rp_buf_init(&c.name, 0);
    if (c.o->log) {
        int rc = write_log(&c);
        rp_buf_free(&c.name);
        free(c.lib);
        return rc;
    }
    if (rp_walk_init(&walk, t) < 0) {
        out->failed = 1;
        goto done;
    }
    walking = 1;
    put_header(&c);
    if (t->n_nodes == 0
            || (t->nodes[0].samples == 0 && t->nodes[0].first_child == RP_NONE)) {
        rp_buf_puts(out, "No samples recorded.\n");
        goto done;
    }
    rp_buf_puts(out, "wall   cpu    %wall  frame\n");
    while (!out->failed && (ev = rp_walk_next(&walk, &node)) != RP_WALK_END) {
        if (ev != RP_WALK_ENTER) {
            continue;
        }
        if (!visible(&c, node)) {
            rp_walk_skip_children(&walk);   /* all below are hidden too */
            continue;
        }
        visible_total++;
        if (c.o->max_lines == 0 || shown < c.o->max_lines) {
            put_node_line(&c, &walk, node);
            shown++;
        }
    }
    if (visible_total > shown) {
        rp_buf_puts(out, c.g->ellipsis);
        rp_buf_putc(out, ' ');
        rp_buf_put_u64(out, visible_total - shown);
        rp_buf_puts(out, visible_total - shown == 1 ? " more line\n"
                                                    : " more lines\n");
    }
    if (t->n_nodes > visible_total) {
        uint64_t hidden = t->n_nodes - visible_total;
        double min = c.o->min_percent;
        rp_buf_putc(out, '(');
        rp_buf_put_u64(out, hidden);
        rp_buf_puts(out, hidden == 1 ? " node" : " nodes");
        rp_buf_puts(out, " under ");
        put_tenths(out, min < 1e15 ? (uint64_t)(min * 10.0 + 0.5) : 0);
        rp_buf_puts(out, "% of wall time hidden)\n");
    }
done:
    if (walking) {
        rp_walk_free(&walk);
    }
    rp_buf_free(&c.name);
    free(c.lib);
    return out->failed ? -1 : 0;
}

/* report.c - what every writer shares (see report.h): the symbol table,
 * kind and truncation-reason names, display names, and the tree walk.
 *
 * The symbol table owns copies of its strings, each NUL-terminated after
 * `len` bytes (which may include NULs). Ids are indices and never move; the
 * table only grows, and its id space stops short of RP_NONE. A symbol's
 * three strings are one allocation, or a part of the table's block when it
 * was reserved for them (rp_symtab_reserve): a code table's symbols are
 * made at once, on the request's thread.
 *
 * The walk keeps, for every open node (the path from the root to the node
 * entered last), its children sorted in one shared pool. Child sets along a
 * path are disjoint and exclude the root, so the pool never needs more than
 * n_nodes - 1 entries and the path never more than n_nodes frames: both
 * arrays are allocated once, at the start.
 */
#include "report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define INITIAL_SYMS 16u

static const char *const KIND_NAMES[RP_KIND_COUNT] = {
    "frame", "await", "out-of-context", "thread", "truncated", "gc",
    "unsampled", "request", "after-response", "loop-busy", "blocker",
};

static const char *const UNDERSAMPLED_NAMES[RP_UNDERSAMPLED_COUNT] = {
    NULL, "short request", "GIL held by C code", "machine load",
};

static const char *const TRUNC_NAMES[RP_TRUNC_REASONS] = {
    "nodes", "bytes", "memory", "depth", "duration",
};

/* What an out-of-range frame id shows: never written to. */
static const rp_sym UNKNOWN_SYM = {
    RP_KIND_FRAME, {"[unknown]", 9}, {"", 0}, {"", 0}, 0,
};

const char *
rp_kind_name(rp_kind k)
{
    /* An out-of-range kind is a caller bug; "frame" keeps output valid. */
    return (unsigned)k < RP_KIND_COUNT ? KIND_NAMES[k] : KIND_NAMES[0];
}

int
rp_kind_from_name(const char *s, size_t n)
{
    int found = -1;
    for (int k = 0; k < RP_KIND_COUNT && found < 0; k++) {
        if (strlen(KIND_NAMES[k]) == n && memcmp(KIND_NAMES[k], s, n) == 0) {
            found = k;
        }
    }
    return found;
}

const char *
rp_undersampled_name(int reason)
{
    return reason > 0 && reason < RP_UNDERSAMPLED_COUNT
        ? UNDERSAMPLED_NAMES[reason] : NULL;
}

int
rp_undersampled_from_name(const char *s, size_t n)
{
    int found = -1;
    for (int k = 1; k < RP_UNDERSAMPLED_COUNT && found < 0; k++) {
        if (strlen(UNDERSAMPLED_NAMES[k]) == n
                && memcmp(UNDERSAMPLED_NAMES[k], s, n) == 0) {
            found = k;
        }
    }
    return found;
}

const char *
rp_trunc_name(unsigned bit_index)
{
    return bit_index < RP_TRUNC_REASONS ? TRUNC_NAMES[bit_index] : NULL;
}

unsigned
rp_report_truncated(const rp_report *r)
{
    unsigned tree_bits = r->tree != NULL ? r->tree->truncated : 0;
    return r->truncated
        | (tree_bits & (RP_TRUNC_NODES | RP_TRUNC_BYTES | RP_TRUNC_NOMEM));
}

double
rp_report_effective_interval(const rp_report *r)
{
    double e = r->effective_interval_s;
    return e > 0.0 && isfinite(e) ? e : r->interval_s;
}

int
rp_report_lengthened(const rp_report *r)
{
    double e = rp_report_effective_interval(r);
    return isfinite(e) && isfinite(r->interval_s) && r->interval_s > 0.0
        && e >= r->interval_s * 1.01;
}

int
rp_cpu_percent(uint64_t cpu_ns, double duration_s, double *out)
{
    if (!(duration_s > 0.0 && isfinite(duration_s))) {
        return 0;
    }
    *out = (double)cpu_ns / 1e9 / duration_s * 100.0;
    return 1;
}

void
rp_symtab_init(rp_symtab *st)
{
    st->syms = NULL;
    st->n = st->cap = 0;
    st->block = NULL;
    st->block_size = st->block_used = 0;
}

/* Whether `s` lies in the table's block. */
static int
in_block(const rp_symtab *st, const char *s)
{
    return st->block != NULL && s >= st->block
        && s < st->block + st->block_size;
}

void
rp_symtab_free(rp_symtab *st)
{
    for (uint32_t i = 0; i < st->n; i++) {
        if (!in_block(st, st->syms[i].function.s)) {
            free(st->syms[i].function.s);   /* the symbol's three strings */
        }
    }
    free(st->syms);
    free(st->block);
    rp_symtab_init(st);
}

/* The capacity after `cap` when the table is full: 0 when it cannot grow
 * (ids stay below RP_NONE, which means "none" everywhere). */
static uint32_t
grown_cap(uint32_t cap)
{
    uint32_t next = cap == 0 ? INITIAL_SYMS
        : cap >= RP_NONE / 2 ? RP_NONE - 1 : cap * 2;
    return next > cap ? next : 0;
}

int
rp_symtab_reserve(rp_symtab *st, uint32_t n, size_t bytes)
{
    uint32_t cap = 0;
    while (cap < n) {
        cap = grown_cap(cap);
        if (cap == 0) {
            return -1;
        }
    }
    if (st->n != 0 || st->syms != NULL || st->block != NULL) {
        return -1;
    }
    if (cap > 0) {
        st->syms = malloc((size_t)cap * sizeof(rp_sym));
        st->block = bytes > 0 ? malloc(bytes) : NULL;
        if (st->syms == NULL || (bytes > 0 && st->block == NULL)) {
            free(st->syms);
            free(st->block);
            rp_symtab_init(st);
            return -1;
        }
        st->cap = cap;
        st->block_size = bytes;
    }
    return 0;
}

/* Copies n bytes of s (NULL: none) to `at`, NUL-terminated, as `dst`;
 * returns the byte after the NUL. */
static char *
put_str(rp_str *dst, char *at, const char *s, size_t n)
{
    if (n > 0) {
        memcpy(at, s, n);
    }
    at[n] = '\0';
    dst->s = at;
    dst->len = n;
    return at + n + 1;
}

uint32_t
rp_symtab_add(rp_symtab *st, rp_kind kind,
              const char *function, size_t function_len,
              const char *file, size_t file_len,
              const char *short_file, size_t short_file_len,
              uint32_t line)
{
    rp_sym sym;
    memset(&sym, 0, sizeof(sym));
    function_len = function != NULL ? function_len : 0;
    file_len = file != NULL ? file_len : 0;
    short_file_len = short_file != NULL ? short_file_len : 0;
    if (function_len > SIZE_MAX / 4 || file_len > SIZE_MAX / 4
            || short_file_len > SIZE_MAX / 4) {
        return RP_NONE;
    }
    if (st->n == st->cap) {
        uint32_t cap = grown_cap(st->cap);
        if (cap == 0) {
            return RP_NONE;
        }
        rp_sym *syms = realloc(st->syms, (size_t)cap * sizeof(rp_sym));
        if (syms == NULL) {
            return RP_NONE;
        }
        st->syms = syms;
        st->cap = cap;
    }
    size_t need = function_len + file_len + short_file_len + 3;
    char *block;
    if (st->block != NULL && need <= st->block_size - st->block_used) {
        block = st->block + st->block_used;
        st->block_used += need;
    }
    else {
        block = malloc(need);
        if (block == NULL) {
            return RP_NONE;
        }
    }
    char *at = put_str(&sym.function, block, function, function_len);
    at = put_str(&sym.file, at, file, file_len);
    (void)put_str(&sym.short_file, at, short_file, short_file_len);
    sym.kind = kind;
    sym.line = line;
    uint32_t id = st->n++;
    st->syms[id] = sym;
    return id;
}

const rp_sym *
rp_symtab_get(const rp_symtab *st, uint32_t id)
{
    return st != NULL && id < st->n ? &st->syms[id] : &UNKNOWN_SYM;
}

int
rp_sym_put_name(rp_buf *b, const rp_sym *sym)
{
    const rp_str *file = sym->short_file.len > 0 ? &sym->short_file
                                                 : &sym->file;
    rp_buf_put(b, sym->function.s, sym->function.len);
    if (sym->kind == RP_KIND_AWAIT && file->len > 0) {
        rp_buf_putc(b, ' ');
        rp_buf_put(b, file->s, file->len);
        if (sym->line > 0) {
            rp_buf_putc(b, ':');
            rp_buf_put_u64(b, sym->line);
        }
    }
    if (sym->kind == RP_KIND_FRAME && file->len > 0) {
        rp_buf_put(b, " (", 2);
        rp_buf_put(b, file->s, file->len);
        rp_buf_putc(b, ':');
        rp_buf_put_u64(b, sym->line);
        rp_buf_putc(b, ')');
    }
    return b->failed ? -1 : 0;
}

/* Whether file f is under a site-packages or dist-packages directory: a
 * "-packages/" preceded by "/site" or "/dist" (found from its '-', a
 * character paths rarely have). */
static int
in_packages(const rp_str *f)
{
    const char *p = f->s, *end = f->s + f->len;
    while (p < end && (p = memchr(p, '-', (size_t)(end - p))) != NULL) {
        if (end - p >= 10 && memcmp(p, "-packages/", 10) == 0
                && p - f->s >= 5 && (memcmp(p - 5, "/site", 5) == 0
                                     || memcmp(p - 5, "/dist", 5) == 0)) {
            return 1;
        }
        p++;
    }
    return 0;
}

int
rp_sym_is_library(const rp_sym *sym, const rp_str *prefixes, size_t n)
{
    const rp_str *f = &sym->file;
    if (sym->kind != RP_KIND_FRAME) {
        return 0;
    }
    if (in_packages(f) || (f->len >= 7 && memcmp(f->s, "<frozen", 7) == 0)) {
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        if (prefixes[i].len > 0 && f->len >= prefixes[i].len
                && memcmp(f->s, prefixes[i].s, prefixes[i].len) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Opens `node` at the top of the path. */
static void
walk_push(rp_walk *w, uint32_t node)
{
    rp_walk_frame *f = &w->frames[w->depth++];
    uint32_t room = w->tree->n_nodes - w->pool_top;
    f->node = node;
    f->first = w->pool_top;
    f->next = 0;
    f->count = rp_tree_sorted_children(w->tree, node, w->pool + w->pool_top,
                                       room);
    if (f->count > room) {
        f->count = 0;   /* cannot happen in a tree (file comment); be safe */
    }
    w->pool_top += f->count;
}

int
rp_walk_init(rp_walk *w, const rp_tree *t)
{
    size_t n = t->n_nodes > 0 ? t->n_nodes : 1;
    w->tree = t;
    w->depth = 0;
    w->pool_top = 0;
    w->started = 0;
    int rc = 0;
    w->pool = malloc(n * sizeof(uint32_t));
    w->frames = malloc(n * sizeof(rp_walk_frame));
    if (w->pool == NULL || w->frames == NULL) {
        rp_walk_free(w);
        rc = -1;
    }
    return rc;
}

int
rp_walk_next(rp_walk *w, uint32_t *node)
{
    int ev = RP_WALK_END;
    if (!w->started) {
        w->started = 1;
        if (w->tree->n_nodes > 0) {
            walk_push(w, 0);
            *node = 0;
            ev = RP_WALK_ENTER;
        }
    }
    else if (w->depth > 0) {
        rp_walk_frame *top = &w->frames[w->depth - 1];
        if (top->next < top->count) {
            uint32_t child = w->pool[top->first + top->next++];
            walk_push(w, child);
            *node = child;
            ev = RP_WALK_ENTER;
        }
        else {
            w->pool_top = top->first;
            w->depth--;
            *node = top->node;
            ev = RP_WALK_LEAVE;
        }
    }
    return ev;
}

void
rp_walk_skip_children(rp_walk *w)
{
    if (w->depth > 0) {
        rp_walk_frame *top = &w->frames[w->depth - 1];
        w->pool_top = top->first;
        top->count = top->next = 0;
    }
}

void
rp_walk_free(rp_walk *w)
{
    free(w->pool);
    free(w->frames);
    w->pool = NULL;
    w->frames = NULL;
    w->depth = 0;
}

/* ---- the top frames ------------------------------------------------------ */

int
rp_top_frames(const rp_tree *t, const rp_symtab *st, size_t n, uint32_t *ids,
              uint64_t *ns)
{
    int count = -1;
    uint32_t nsyms = st->n;
    uint64_t *self = calloc(nsyms ? nsyms : 1, sizeof(uint64_t));
    /* busy[i]: the [event loop busy] node i is under, or RP_NONE (a node
     * comes after its parent). */
    uint32_t *busy = malloc((t->n_nodes ? t->n_nodes : 1) * sizeof(uint32_t));
    if (self == NULL || busy == NULL) {
        goto done;
    }
    for (uint32_t i = 0; i < t->n_nodes; i++) {
        const rp_node *nd = &t->nodes[i];
        uint32_t f = nd->frame;
        rp_kind kind = f < nsyms ? st->syms[f].kind : RP_KIND_FRAME;
        busy[i] = nd->parent < i ? busy[nd->parent] : RP_NONE;
        if (busy[i] == RP_NONE && kind == RP_KIND_LOOP_BUSY) {
            busy[i] = f;
        }
        /* The blocker's frames are another request's work: their time is
         * the wait's. */
        if (busy[i] != RP_NONE) {
            f = busy[i];
            kind = RP_KIND_LOOP_BUSY;
        }
        /* Markers of time, not places it went: never a top function. */
        if (f < nsyms && kind != RP_KIND_UNSAMPLED && kind != RP_KIND_REQUEST
                && kind != RP_KIND_AFTER_RESPONSE) {
            self[f] += nd->self_wall_ns;
        }
    }
    count = 0;
    for (size_t k = 0; k < n; k++) {
        uint32_t best = RP_NONE;
        for (uint32_t f = 0; f < nsyms; f++) {
            if (self[f] > 0 && (best == RP_NONE || self[f] > self[best])) {
                best = f;
            }
        }
        if (best == RP_NONE) {
            break;
        }
        ids[count] = best;
        ns[count++] = self[best];
        self[best] = 0;
    }
done:
    free(self);
    free(busy);
    return count;
}

/* ---- breakdown --------------------------------------------------------- */

enum { BD_RUNNING = 0, BD_AWAITING, BD_LOOP_BUSY, BD_WORKER, BD_GC,
       BD_UNSAMPLED, BD_OUT_OF_CONTEXT };

/* The state a node of `kind` puts its subtree in, below a parent in
 * state `parent`: the innermost pseudo-frame decides, except inside a
 * wait, a collection or unseen time, whose frames (blockers, finalizers)
 * stay in it; an [await]'s [event loop busy] child is its own. */
static unsigned char
bd_state(unsigned char parent, rp_kind kind)
{
    if (parent == BD_AWAITING && kind == RP_KIND_LOOP_BUSY) {
        return BD_LOOP_BUSY;    /* the part of the wait the loop owes */
    }
    if (parent != BD_RUNNING && parent != BD_WORKER) {
        return parent;
    }
    switch (kind) {
    case RP_KIND_AWAIT: return BD_AWAITING;
    case RP_KIND_LOOP_BUSY: return BD_LOOP_BUSY;
    case RP_KIND_THREAD: return BD_WORKER;
    case RP_KIND_GC: return BD_GC;
    case RP_KIND_UNSAMPLED: return BD_UNSAMPLED;
    case RP_KIND_OUT_OF_CONTEXT: return BD_OUT_OF_CONTEXT;
    default: return parent;
    }
}

#define BD_MAX_NAMES 64u    /* distinct blockers told apart */

int
rp_breakdown_compute(const rp_tree *t, const rp_symtab *st,
                     rp_breakdown *out)
{
    int rc = -1;
    rp_blocker_share names[BD_MAX_NAMES];
    size_t n_names = 0;
    memset(out, 0, sizeof(*out));
    unsigned char *state = malloc(t->n_nodes ? t->n_nodes : 1);
    if (state == NULL) {
        goto done;
    }
    /* A node is added after its parent: one pass in index order. */
    for (uint32_t i = 0; i < t->n_nodes; i++) {
        const rp_node *nd = &t->nodes[i];
        const rp_sym *sym = rp_symtab_get(st, nd->frame);
        unsigned char up = nd->parent == RP_NONE || nd->parent >= i
            ? BD_RUNNING : state[nd->parent];
        state[i] = bd_state(up, sym->kind);
        if (up == BD_LOOP_BUSY && sym->kind == RP_KIND_BLOCKER) {
            size_t j = 0;
            while (j < n_names && !(names[j].name->len == sym->function.len
                    && memcmp(names[j].name->s, sym->function.s,
                              sym->function.len) == 0)) {
                j++;
            }
            if (j == n_names && n_names < BD_MAX_NAMES) {
                names[n_names].name = &sym->function;
                names[n_names++].wall_ns = 0;
            }
            if (j < n_names) {
                names[j].wall_ns += nd->wall_ns;
            }
        }
        switch (state[i]) {
        case BD_RUNNING:
            out->running_wall_ns += nd->self_wall_ns;
            out->running_cpu_ns += nd->self_cpu_ns;
            break;
        case BD_AWAITING: out->awaiting_ns += nd->self_wall_ns; break;
        case BD_LOOP_BUSY: out->loop_busy_ns += nd->self_wall_ns; break;
        case BD_WORKER:
            out->worker_wall_ns += nd->self_wall_ns;
            out->worker_cpu_ns += nd->self_cpu_ns;
            break;
        case BD_GC: out->gc_ns += nd->self_wall_ns; break;
        case BD_UNSAMPLED: out->unsampled_ns += nd->self_wall_ns; break;
        default: out->out_of_context_ns += nd->self_wall_ns; break;
        }
    }
    /* The largest first (a selection: there are few). */
    for (size_t k = 0; k < RP_BREAKDOWN_BLOCKERS && k < n_names; k++) {
        size_t best = k;
        for (size_t j = k + 1; j < n_names; j++) {
            if (names[j].wall_ns > names[best].wall_ns) {
                best = j;
            }
        }
        rp_blocker_share tmp = names[k];
        names[k] = names[best];
        names[best] = tmp;
        out->blockers[out->n_blockers++] = names[k];
    }
    rc = 0;
done:
    free(state);
    return rc;
}

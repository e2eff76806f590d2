/* write_pprof.c - the profile as pprof's profile.proto, gzipped: what
 * `go tool pprof`, Pyroscope and Parca read
 * (github.com/google/pprof/blob/main/proto/profile.proto).
 *
 * The protobuf is encoded by hand: varints, length-delimited fields and
 * packed repeated scalars are all this message needs. Protobuf allows
 * fields in any order, so the Profile is written in one pass over the tree:
 * sample types, then one Sample per node as the walk meets it; functions
 * and locations are numbered when first used and their messages collected
 * on the side, then appended with the string table and the scalar fields.
 * The result is gzipped with zlib (gzip wrapper, mtime 0: stable output).
 *
 * Mapping of the call tree:
 * - sample types samples/count, wall/nanoseconds, cpu/nanoseconds; the
 *   default is wall; period_type wall/nanoseconds, period = the mean
 *   interval of the ticks (longer than asked when the overhead budget
 *   lengthened it).
 * - one Function per symbol used: name the function (co_qualname) or
 *   pseudo-frame label, system_name the display name "qualname
 *   (short_file:line)" for frames (pprof "demangles" a system_name equal to
 *   the name, and its C++ heuristics strip "<module>" or "f.<locals>.g" to
 *   nothing, so the two must differ; pseudo-frames have none), filename the
 *   absolute file, start_line co_firstlineno.
 * - one Mapping (id 1, no file) marked as having functions, file names and
 *   line numbers, which every Location uses: consumers then do not try to
 *   symbolize addresses.
 * - one Location per (function, line), one Line each. A sample's leaf is
 *   at the node's hot line (the line with the most self wall time), its
 *   callers at their first line (the tree does not know call sites), except
 *   that an [await] leaf's line belongs to the frame that awaits (it is
 *   where that frame waits) and goes to that frame's location.
 * - one Sample per node with self time: locations leaf first, values
 *   [self samples, self wall ns, self CPU ns]. The tree counts samples
 *   through a node, so self samples = samples - children's samples.
 * - the request metadata (meta) as string labels on every sample (null
 *   values left out) and as comments "key: value", after "reqprof
 *   <version>" and any truncation reasons.
 *
 * rp_write_pprof_opts serves a push to a server (Pyroscope): sample types
 * wall and cpu only (each sample type is a profile type there), time and
 * duration given (the push interval), and at most max_samples Samples (the
 * server's limit): past it the nodes with the least self wall time are
 * left out, found by a threshold computed before the walk, and counted.
 *
 * Every string goes into the table once, made valid UTF-8 by
 * rp_buf_put_plain (invalid bytes become U+FFFD, control characters
 * spaces): proto3 strings must be UTF-8 and consumers check it.
 * The string and location tables are open-addressing hash tables sized
 * once for the tree, so they never rehash.
 */
#include "writers.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* Protobuf wire types. */
enum { WT_VARINT = 0, WT_LEN = 2 };

/* profile.proto field numbers. */
enum {
    PROFILE_SAMPLE_TYPE = 1, PROFILE_SAMPLE = 2, PROFILE_MAPPING = 3,
    PROFILE_LOCATION = 4,
    PROFILE_FUNCTION = 5, PROFILE_STRING_TABLE = 6, PROFILE_TIME_NANOS = 9,
    PROFILE_DURATION_NANOS = 10, PROFILE_PERIOD_TYPE = 11,
    PROFILE_PERIOD = 12, PROFILE_COMMENT = 13,
    PROFILE_DEFAULT_SAMPLE_TYPE = 14,
    VALUETYPE_TYPE = 1, VALUETYPE_UNIT = 2,
    SAMPLE_LOCATION_ID = 1, SAMPLE_VALUE = 2, SAMPLE_LABEL = 3,
    LABEL_KEY = 1, LABEL_STR = 2,
    MAPPING_ID = 1, MAPPING_HAS_FUNCTIONS = 7, MAPPING_HAS_FILENAMES = 8,
    MAPPING_HAS_LINE_NUMBERS = 9,
    LOCATION_ID = 1, LOCATION_MAPPING_ID = 2, LOCATION_LINE = 4,
    LINE_FUNCTION_ID = 1, LINE_LINE = 2,
    FUNCTION_ID = 1, FUNCTION_NAME = 2, FUNCTION_SYSTEM_NAME = 3,
    FUNCTION_FILENAME = 4, FUNCTION_START_LINE = 5,
};

#define GZIP_CHUNK 65536u

/* ---- protobuf encoding ---------------------------------------------------- */

static void
put_varint(rp_buf *b, uint64_t v)
{
    char tmp[10];
    size_t n = 0;
    do {
        unsigned char byte = (unsigned char)(v & 0x7Fu);
        v >>= 7;
        tmp[n++] = (char)(v != 0 ? byte | 0x80u : byte);
    } while (v != 0);
    rp_buf_put(b, tmp, n);
}

static void
put_tag(rp_buf *b, unsigned field, unsigned wire_type)
{
    put_varint(b, (uint64_t)field << 3 | wire_type);
}

/* A varint field; zero is the default and is left out, as proto3 does. */
static void
put_uint_field(rp_buf *b, unsigned field, uint64_t v)
{
    if (v != 0) {
        put_tag(b, field, WT_VARINT);
        put_varint(b, v);
    }
}

/* A length-delimited field holding the n bytes at s. */
static void
put_bytes_field(rp_buf *b, unsigned field, const char *s, size_t n)
{
    put_tag(b, field, WT_LEN);
    put_varint(b, n);
    rp_buf_put(b, s, n);
}

/* A sub-message built in `msg`; `msg` is cleared for the next one. */
static void
put_message(rp_buf *b, unsigned field, rp_buf *msg)
{
    if (msg->failed) {
        b->failed = 1;
    }
    put_bytes_field(b, field, msg->data, msg->len);
    rp_buf_clear(msg);
}

/* ---- the string table ----------------------------------------------------- */

typedef struct str_entry {
    size_t off, len;    /* in strtab.text */
} str_entry;

typedef struct strtab {
    rp_buf text;        /* every string, sanitized, back to back */
    str_entry *entries;
    uint32_t n, cap;
    uint32_t *slots;    /* entry index or RP_NONE */
    uint32_t mask;
} strtab;

static uint64_t
hash_bytes(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;     /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    }
    return h;
}

/* A power of two >= 2 * n (tables stay at most half full). */
static uint32_t
table_size(uint64_t n)
{
    uint64_t size = 64;
    while (size < 2 * n && size < ((uint64_t)1 << 31)) {
        size *= 2;
    }
    return (uint32_t)size;
}

static int
strtab_init(strtab *st, uint64_t max_strings)
{
    memset(st, 0, sizeof(*st));
    rp_buf_init(&st->text, 0);
    st->cap = max_strings > RP_NONE / 4 ? RP_NONE / 4 : (uint32_t)max_strings;
    st->mask = table_size(st->cap) - 1;
    st->entries = malloc((size_t)st->cap * sizeof(str_entry));
    st->slots = malloc(((size_t)st->mask + 1) * sizeof(uint32_t));
    if (st->slots != NULL) {
        memset(st->slots, 0xff, ((size_t)st->mask + 1) * sizeof(uint32_t));
    }
    return st->entries != NULL && st->slots != NULL ? 0 : -1;
}

static void
strtab_free(strtab *st)
{
    rp_buf_free(&st->text);
    free(st->entries);
    free(st->slots);
}

/* The index of string s (n bytes, made valid UTF-8), added if new; 0 (the
 * empty string) with text marked failed when out of room. */
static uint32_t
strtab_add(strtab *st, const char *s, size_t n)
{
    size_t off = st->text.len;
    uint32_t found = 0;
    rp_buf_put_plain(&st->text, s, n, 0, 0);
    if (st->text.failed) {
        goto done;
    }
    /* An empty first string leaves the buffer unallocated (NULL). */
    const char *str = st->text.data != NULL ? st->text.data + off : "";
    size_t len = st->text.len - off;
    uint64_t h = hash_bytes(str, len);
    for (;; h++) {
        uint32_t i = st->slots[h & st->mask];
        if (i == RP_NONE) {
            break;
        }
        if (st->entries[i].len == len && (len == 0
                || memcmp(st->text.data + st->entries[i].off, str, len) == 0)) {
            found = i;
            st->text.len = off;     /* a duplicate: drop the copy */
            if (st->text.data != NULL) {
                st->text.data[off] = '\0';
            }
            goto done;
        }
    }
    if (st->n == st->cap) {
        st->text.failed = 1;        /* cannot happen: sized for the tree */
        goto done;
    }
    found = st->n++;
    st->entries[found].off = off;
    st->entries[found].len = len;
    st->slots[h & st->mask] = found;
done:
    return found;
}

/* ---- the writer ------------------------------------------------------------- */

typedef struct pprof_ctx {
    const rp_report *r;
    strtab strings;
    uint32_t *fn_ids;       /* per frame slot: function id, 0 = none yet */
    uint32_t n_functions;
    uint64_t *loc_keys;     /* location table: function id << 32 | line */
    uint32_t *loc_ids;      /* 0 = empty slot */
    uint32_t loc_mask, n_locations;
    uint64_t *child_samples;    /* per node: samples of its children */
    rp_buf functions;       /* Function fields, ready to append */
    rp_buf locations;       /* Location fields, ready to append */
    rp_buf labels;          /* the Label fields every Sample carries */
    rp_buf msg, inner;      /* scratch for messages being built */
    rp_buf packed;          /* a Sample's packed ids and values */
    rp_buf name;            /* scratch for display names */
    rp_pprof_opts *o;       /* never NULL */
    uint64_t keep_above;    /* max_samples: self wall ns kept when above */
    uint64_t keep_equal;    /* ... and this many more equal to it */
    int trimming;
} pprof_ctx;

static uint32_t
frame_slot(const rp_report *r, uint32_t frame)
{
    uint32_t n = r->syms != NULL ? r->syms->n : 0;
    return frame < n ? frame : n;
}

/* The function id of frame id `frame`, its Function written when new. */
static uint32_t
function_id(pprof_ctx *c, uint32_t frame)
{
    uint32_t slot = frame_slot(c->r, frame);
    if (c->fn_ids[slot] == 0) {
        const rp_sym *sym = rp_symtab_get(c->r->syms, frame);
        uint32_t name = strtab_add(&c->strings, sym->function.s,
                                   sym->function.len);
        uint32_t file = strtab_add(&c->strings, sym->file.s, sym->file.len);
        uint32_t system_name = 0;
        rp_buf_clear(&c->name);
        rp_sym_put_name(&c->name, sym);
        if (c->name.failed) {
            c->msg.failed = 1;
        }
        else if (c->name.len != sym->function.len) {
            system_name = strtab_add(&c->strings, c->name.data, c->name.len);
        }
        c->fn_ids[slot] = ++c->n_functions;
        put_uint_field(&c->msg, FUNCTION_ID, c->fn_ids[slot]);
        put_uint_field(&c->msg, FUNCTION_NAME, name);
        put_uint_field(&c->msg, FUNCTION_SYSTEM_NAME, system_name);
        put_uint_field(&c->msg, FUNCTION_FILENAME, file);
        put_uint_field(&c->msg, FUNCTION_START_LINE, sym->line);
        put_message(&c->functions, PROFILE_FUNCTION, &c->msg);
    }
    return c->fn_ids[slot];
}

/* The location id of (function of `frame`, line), its Location written
 * when new. */
static uint32_t
location_id(pprof_ctx *c, uint32_t frame, uint32_t line)
{
    uint32_t fn = function_id(c, frame);
    uint64_t key = (uint64_t)fn << 32 | line;
    uint64_t h = key * 0x9E3779B97F4A7C15ull >> 32;
    uint32_t id = 0;
    for (;; h++) {
        uint32_t i = (uint32_t)(h & c->loc_mask);
        if (c->loc_ids[i] == 0) {
            if (c->n_locations >= c->loc_mask / 2) {
                c->locations.failed = 1;    /* cannot happen: sized */
                break;
            }
            id = c->loc_ids[i] = ++c->n_locations;
            c->loc_keys[i] = key;
            put_uint_field(&c->inner, LINE_FUNCTION_ID, fn);
            put_uint_field(&c->inner, LINE_LINE, line);
            put_uint_field(&c->msg, LOCATION_ID, id);
            put_uint_field(&c->msg, LOCATION_MAPPING_ID, 1);
            put_message(&c->msg, LOCATION_LINE, &c->inner);
            put_message(&c->locations, PROFILE_LOCATION, &c->msg);
            break;
        }
        if (c->loc_keys[i] == key) {
            id = c->loc_ids[i];
            break;
        }
    }
    return id;
}

/* The line of `node` with the most self wall time (ties: the lowest), or
 * RP_NONE when it has none. */
static uint32_t
hot_line(const rp_tree *t, uint32_t node)
{
    uint32_t best = RP_NONE;
    uint64_t best_ns = 0;
    uint32_t seen = 0;
    for (uint32_t l = t->nodes[node].first_line;
            l != RP_NONE && seen < t->n_lines; l = t->lines[l].next, seen++) {
        const rp_line_stat *ls = &t->lines[l];
        if (best == RP_NONE || ls->self_wall_ns > best_ns
                || (ls->self_wall_ns == best_ns && ls->loc < best)) {
            best = ls->loc;
            best_ns = ls->self_wall_ns;
        }
    }
    return best;
}

/* The Sample of the node entered last (at walk->frames[depth - 1]). */
static void
put_sample(pprof_ctx *c, rp_buf *prof, const rp_walk *w)
{
    const rp_tree *t = c->r->tree;
    uint32_t leaf = w->frames[w->depth - 1].node;
    const rp_node *nd = &t->nodes[leaf];
    uint64_t below = c->child_samples[leaf];
    uint64_t self_samples = nd->samples > below ? nd->samples - below : 0;
    if (self_samples == 0 && nd->self_wall_ns == 0 && nd->self_cpu_ns == 0) {
        return;
    }
    if (c->trimming && nd->self_wall_ns <= c->keep_above) {
        if (nd->self_wall_ns < c->keep_above || c->keep_equal == 0) {
            c->o->trimmed++;
            c->o->trimmed_wall_ns += nd->self_wall_ns;
            return;
        }
        c->keep_equal--;
    }
    /* Lines: the leaf's hot line; an [await] leaf's goes to its caller. */
    uint32_t leaf_line = hot_line(t, leaf), caller_line = RP_NONE;
    const rp_sym *leaf_sym = rp_symtab_get(c->r->syms, nd->frame);
    if (leaf_sym->kind != RP_KIND_FRAME) {
        if (leaf_sym->kind == RP_KIND_AWAIT) {
            caller_line = leaf_line;
        }
        leaf_line = 0;
    }
    else if (leaf_line == RP_NONE) {
        leaf_line = leaf_sym->line;
    }
    for (uint32_t d = w->depth; d-- > 0;) {
        uint32_t frame = t->nodes[w->frames[d].node].frame;
        uint32_t line = rp_symtab_get(c->r->syms, frame)->line;
        if (d == w->depth - 1) {
            line = leaf_line;
        }
        else if (d == w->depth - 2 && caller_line != RP_NONE) {
            line = caller_line;
        }
        put_varint(&c->packed, location_id(c, frame, line));
    }
    put_message(&c->msg, SAMPLE_LOCATION_ID, &c->packed);
    if (!c->o->wall_cpu_only) {
        put_varint(&c->packed, self_samples);
    }
    put_varint(&c->packed, nd->self_wall_ns);
    put_varint(&c->packed, nd->self_cpu_ns);
    put_message(&c->msg, SAMPLE_VALUE, &c->packed);
    if (c->labels.failed) {
        c->msg.failed = 1;
    }
    rp_buf_put(&c->msg, c->labels.data, c->labels.len);
    put_message(prof, PROFILE_SAMPLE, &c->msg);
}

static void
put_value_type(pprof_ctx *c, rp_buf *prof, unsigned field, const char *type,
               const char *unit)
{
    put_uint_field(&c->msg, VALUETYPE_TYPE,
                   strtab_add(&c->strings, type, strlen(type)));
    put_uint_field(&c->msg, VALUETYPE_UNIT,
                   strtab_add(&c->strings, unit, strlen(unit)));
    put_message(prof, field, &c->msg);
}

static void
put_comment(pprof_ctx *c, rp_buf *prof, rp_buf *text)
{
    if (text->failed) {
        prof->failed = 1;
    }
    put_tag(prof, PROFILE_COMMENT, WT_VARINT);
    put_varint(prof, strtab_add(&c->strings, text->data, text->len));
    rp_buf_clear(text);
}

/* Labels (built once into c->labels) and comments from the header. */
static void
put_metadata(pprof_ctx *c, rp_buf *prof)
{
    const rp_report *r = c->r;
    unsigned trunc = rp_report_truncated(r);
    rp_buf text;
    rp_buf_init(&text, 0);
    rp_buf_puts(&text, "reqprof ");
    rp_buf_puts(&text, r->version != NULL ? r->version : "");
    put_comment(c, prof, &text);
    if (trunc != 0) {
        rp_buf_puts(&text, "truncated:");
        for (unsigned i = 0; i < RP_TRUNC_REASONS; i++) {
            if (trunc & (1u << i)) {
                rp_buf_putc(&text, ' ');
                rp_buf_puts(&text, rp_trunc_name(i));
            }
        }
        put_comment(c, prof, &text);
    }
    for (size_t i = 0; i < r->n_meta; i++) {
        const rp_meta_item *m = &r->meta[i];
        if (m->is_literal && m->value.len == 4
                && memcmp(m->value.s, "null", 4) == 0) {
            continue;
        }
        uint32_t key = strtab_add(&c->strings, m->key.s, m->key.len);
        uint32_t value = strtab_add(&c->strings, m->value.s, m->value.len);
        put_uint_field(&c->msg, LABEL_KEY, key);
        put_uint_field(&c->msg, LABEL_STR, value);
        put_message(&c->labels, SAMPLE_LABEL, &c->msg);
        rp_buf_put(&text, m->key.s, m->key.len);
        rp_buf_puts(&text, ": ");
        rp_buf_put(&text, m->value.s, m->value.len);
        put_comment(c, prof, &text);
    }
    rp_buf_free(&text);
}

/* Nanoseconds from seconds (0 for negative or NaN), clamped to what an
 * int64 field holds. Whole seconds and the fraction are converted apart,
 * so a Unix time keeps its sub-microsecond digits. */
static uint64_t
to_ns(double s)
{
    uint64_t ns = 0;
    if (s >= 9.2e9) {
        ns = (uint64_t)9200000000 * 1000000000u;
    }
    else if (s > 0.0) {
        double whole = floor(s);
        ns = (uint64_t)whole * 1000000000u
            + (uint64_t)llround((s - whole) * 1e9);
    }
    return ns;
}

/* Strings, functions, locations and scalar fields after the samples. */
static void
put_tail(pprof_ctx *c, rp_buf *prof)
{
    const rp_report *r = c->r;
    put_tag(prof, PROFILE_DEFAULT_SAMPLE_TYPE, WT_VARINT);
    put_varint(prof, strtab_add(&c->strings, "wall", 4));
    put_value_type(c, prof, PROFILE_PERIOD_TYPE, "wall", "nanoseconds");
    put_uint_field(prof, PROFILE_PERIOD,
                   to_ns(rp_report_effective_interval(r)));
    put_uint_field(prof, PROFILE_TIME_NANOS, c->o->time_ns != 0
                   ? c->o->time_ns : to_ns(r->started_at));
    put_uint_field(prof, PROFILE_DURATION_NANOS, c->o->duration_ns != 0
                   ? c->o->duration_ns : to_ns(r->duration_s));
    put_uint_field(&c->msg, MAPPING_ID, 1);
    put_uint_field(&c->msg, MAPPING_HAS_FUNCTIONS, 1);
    put_uint_field(&c->msg, MAPPING_HAS_FILENAMES, 1);
    put_uint_field(&c->msg, MAPPING_HAS_LINE_NUMBERS, 1);
    put_message(prof, PROFILE_MAPPING, &c->msg);
    if (c->functions.failed || c->locations.failed) {
        prof->failed = 1;
    }
    rp_buf_put(prof, c->functions.data, c->functions.len);
    rp_buf_put(prof, c->locations.data, c->locations.len);
    if (c->strings.text.failed) {
        prof->failed = 1;
    }
    for (uint32_t i = 0; i < c->strings.n && !prof->failed; i++) {
        const str_entry *e = &c->strings.entries[i];
        put_bytes_field(prof, PROFILE_STRING_TABLE,
                        c->strings.text.data + e->off, e->len);
    }
}

/* Appends the gzip of n bytes at data to out. */
static int
put_gzip(rp_buf *out, const char *data, size_t n)
{
    z_stream zs;
    unsigned char *chunk = NULL;
    int rc = -1, zrc, inited = 0;
    memset(&zs, 0, sizeof(zs));
    if (n > UINT32_MAX) {
        goto done;
    }
    chunk = malloc(GZIP_CHUNK);
    if (chunk == NULL
            || deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED,
                            15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        goto done;
    }
    inited = 1;
    zs.next_in = (unsigned char *)(uintptr_t)data;
    zs.avail_in = (uInt)n;
    do {
        zs.next_out = chunk;
        zs.avail_out = GZIP_CHUNK;
        zrc = deflate(&zs, Z_FINISH);
        if (zrc == Z_STREAM_ERROR
                || rp_buf_put(out, (const char *)chunk,
                              GZIP_CHUNK - zs.avail_out) < 0) {
            goto done;
        }
    } while (zrc != Z_STREAM_END);
    rc = 0;
done:
    if (inited) {
        deflateEnd(&zs);
    }
    free(chunk);
    if (rc < 0) {
        out->failed = 1;
    }
    return rc;
}

static int
cmp_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* With max_samples below the number of nodes with self time: the self
 * wall time a kept sample must exceed (or equal, keep_equal times).
 * 0, or -1 when out of memory. */
static int
plan_trim(pprof_ctx *c, const uint64_t *child_samples)
{
    const rp_tree *t = c->r->tree;
    uint64_t *walls = NULL, n = 0;
    int rc = -1;
    if (c->o->max_samples == 0 || t->n_nodes <= c->o->max_samples) {
        rc = 0;
        goto done;
    }
    walls = malloc((size_t)t->n_nodes * sizeof(uint64_t));
    if (walls == NULL) {
        goto done;
    }
    for (uint32_t i = 0; i < t->n_nodes; i++) {
        const rp_node *nd = &t->nodes[i];
        uint64_t below = child_samples[i];
        if ((nd->samples > below) || nd->self_wall_ns || nd->self_cpu_ns) {
            walls[n++] = nd->self_wall_ns;
        }
    }
    if (n > c->o->max_samples) {
        qsort(walls, (size_t)n, sizeof(uint64_t), cmp_desc);
        uint64_t k = c->o->max_samples;
        c->keep_above = walls[k - 1];
        c->keep_equal = 0;
        for (uint64_t i = 0; i < k; i++) {
            if (walls[i] == c->keep_above) {
                c->keep_equal++;
            }
        }
        c->trimming = 1;
    }
    rc = 0;
done:
    free(walls);
    return rc;
}

static int
ctx_init(pprof_ctx *c, const rp_report *r, rp_pprof_opts *o)
{
    const rp_tree *t = r->tree;
    uint32_t nslots = (r->syms != NULL ? r->syms->n : 0) + 1;
    uint64_t max_locations = 2 * (uint64_t)t->n_nodes + 1;
    memset(c, 0, sizeof(*c));
    c->r = r;
    c->o = o;
    rp_buf_init(&c->functions, 0);
    rp_buf_init(&c->locations, 0);
    rp_buf_init(&c->labels, 0);
    rp_buf_init(&c->msg, 0);
    rp_buf_init(&c->inner, 0);
    rp_buf_init(&c->packed, 0);
    rp_buf_init(&c->name, 0);
    c->loc_mask = table_size(max_locations) - 1;
    c->fn_ids = calloc(nslots, sizeof(uint32_t));
    c->loc_keys = calloc((size_t)c->loc_mask + 1, sizeof(uint64_t));
    c->loc_ids = calloc((size_t)c->loc_mask + 1, sizeof(uint32_t));
    c->child_samples = calloc((size_t)t->n_nodes + 1, sizeof(uint64_t));
    /* Strings: three per function, two per meta item and its comment, the
     * fixed names and comments. */
    int rc = strtab_init(&c->strings, 3 * (uint64_t)nslots
                         + 3 * (uint64_t)r->n_meta + 16);
    if (rc < 0 || c->fn_ids == NULL || c->loc_keys == NULL
            || c->loc_ids == NULL || c->child_samples == NULL) {
        rc = -1;
    }
    else {
        for (uint32_t i = 1; i < t->n_nodes; i++) {
            uint32_t p = t->nodes[i].parent;
            if (p < t->n_nodes) {
                c->child_samples[p] += t->nodes[i].samples;
            }
        }
        rc = plan_trim(c, c->child_samples);
    }
    return rc;
}

static void
ctx_free(pprof_ctx *c)
{
    strtab_free(&c->strings);
    free(c->fn_ids);
    free(c->loc_keys);
    free(c->loc_ids);
    free(c->child_samples);
    rp_buf_free(&c->functions);
    rp_buf_free(&c->locations);
    rp_buf_free(&c->labels);
    rp_buf_free(&c->msg);
    rp_buf_free(&c->inner);
    rp_buf_free(&c->packed);
    rp_buf_free(&c->name);
}

int
rp_write_pprof(rp_buf *out, const rp_report *r)
{
    return rp_write_pprof_opts(out, r, NULL);
}

int
rp_write_pprof_opts(rp_buf *out, const rp_report *r, rp_pprof_opts *o)
{
    rp_pprof_opts defaults;
    pprof_ctx c;
    rp_buf prof;
    rp_walk walk;
    int walking = 0;
    uint32_t node;
    int ev;
    if (o == NULL) {
        memset(&defaults, 0, sizeof(defaults));
        o = &defaults;
    }
    o->trimmed = o->trimmed_wall_ns = 0;
    o->raw_len = 0;
    rp_buf_init(&prof, out->limit);
    if (ctx_init(&c, r, o) < 0 || rp_walk_init(&walk, r->tree) < 0) {
        out->failed = 1;
        goto done;
    }
    walking = 1;
    strtab_add(&c.strings, "", 0);      /* index 0 is "" */
    if (!o->wall_cpu_only) {
        put_value_type(&c, &prof, PROFILE_SAMPLE_TYPE, "samples", "count");
    }
    put_value_type(&c, &prof, PROFILE_SAMPLE_TYPE, "wall", "nanoseconds");
    put_value_type(&c, &prof, PROFILE_SAMPLE_TYPE, "cpu", "nanoseconds");
    put_metadata(&c, &prof);
    while (!prof.failed && !c.msg.failed
            && (ev = rp_walk_next(&walk, &node)) != RP_WALK_END) {
        if (ev == RP_WALK_ENTER) {
            put_sample(&c, &prof, &walk);
        }
    }
    put_tail(&c, &prof);
    if (prof.failed || c.msg.failed || c.inner.failed || c.packed.failed) {
        out->failed = 1;
        goto done;
    }
    o->raw_len = prof.len;
    put_gzip(out, prof.data, prof.len);
done:
    if (walking) {
        rp_walk_free(&walk);
    }
    ctx_free(&c);
    rp_buf_free(&prof);
    return out->failed ? -1 : 0;
}

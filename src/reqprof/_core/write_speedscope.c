/* write_speedscope.c - the profile in speedscope's file format
 * (https://www.speedscope.app/file-format-schema.json), one profile of type
 * "sampled":
 *
 *     {"$schema":"https://www.speedscope.app/file-format-schema.json",
 *      "shared":{"frames":[{"name":"handler","file":"app.py","line":10},
 *                          {"name":"[await]"}, ...]},
 *      "profiles":[{"type":"sampled","name":"GET /x","unit":"nanoseconds",
 *                   "startValue":0,"endValue":6000000,
 *                   "samples":[[0,1,2],[0,3],...],
 *                   "weights":[3000000,1500000,...]}],
 *      "name":"GET /x","activeProfileIndex":0,"exporter":"reqprof@1.2.3"}
 *
 * A call tree is already aggregated, so each node with self wall time is
 * one "sample": its stack (frame indices, root first) weighted by that self
 * time in nanoseconds. endValue is the sum of the weights, so speedscope's
 * total equals the root's wall time. Samples come in the writers' order
 * (children largest wall first, depth first).
 *
 * Frames: one per symbol the tree uses, in node order; a frame is named by
 * its function (co_qualname) with the short file and first line as
 * speedscope's file/line (it shows them beside the name); pseudo-frames
 * ("[await]", "[thread …]", "[gc]", ...) are frames with a name only,
 * except that an await point has the file and line it waits at. Every id past
 * the symbol table shares one "[unknown]" frame. Strings go through
 * rp_buf_put_json_string (valid UTF-8, script-safe).
 *
 * The profile's name is the request ("GET /x", from meta method and path)
 * or, without those, the root's display name.
 */
#include "writers.h"

#include <stdlib.h>
#include <string.h>

#define SCHEMA_URL "https://www.speedscope.app/file-format-schema.json"

/* The text value of meta item `key`, or NULL. */
static const rp_str *
meta_text(const rp_report *r, const char *key)
{
    size_t n = strlen(key);
    const rp_str *found = NULL;
    for (size_t i = 0; i < r->n_meta && found == NULL; i++) {
        const rp_meta_item *m = &r->meta[i];
        if (!m->is_literal && m->key.len == n && m->value.len > 0
                && memcmp(m->key.s, key, n) == 0) {
            found = &m->value;
        }
    }
    return found;
}

/* The profile's name as a JSON string: "METHOD path" or the root's name. */
static void
put_profile_name(rp_buf *out, rp_buf *scratch, const rp_report *r)
{
    const rp_str *method = meta_text(r, "method");
    const rp_str *path = meta_text(r, "path");
    rp_buf_clear(scratch);
    if (method != NULL || path != NULL) {
        if (method != NULL) {
            rp_buf_put(scratch, method->s, method->len);
        }
        if (method != NULL && path != NULL) {
            rp_buf_putc(scratch, ' ');
        }
        if (path != NULL) {
            rp_buf_put(scratch, path->s, path->len);
        }
    }
    else if (r->tree->n_nodes > 0) {
        rp_sym_put_name(scratch, rp_symtab_get(r->syms,
                                               r->tree->nodes[0].frame));
    }
    if (scratch->failed) {
        out->failed = 1;
    }
    rp_buf_put_json_string(out, scratch->data, scratch->len);
}

/* The slot of frame id `frame` in a map of syms->n + 1 entries. */
static uint32_t
frame_slot(const rp_report *r, uint32_t frame)
{
    uint32_t n = r->syms != NULL ? r->syms->n : 0;
    return frame < n ? frame : n;
}

static void
put_frame(rp_buf *out, const rp_sym *sym)
{
    const rp_str *file = sym->short_file.len > 0 ? &sym->short_file
                                                 : &sym->file;
    rp_buf_puts(out, "{\"name\":");
    rp_buf_put_json_string(out, sym->function.s, sym->function.len);
    /* Frames and await points (the line they wait at) say where. */
    if ((sym->kind == RP_KIND_FRAME || sym->kind == RP_KIND_AWAIT)
            && file->len > 0) {
        rp_buf_puts(out, ",\"file\":");
        rp_buf_put_json_string(out, file->s, file->len);
        rp_buf_puts(out, ",\"line\":");
        rp_buf_put_u64(out, sym->line);
    }
    rp_buf_putc(out, '}');
}

/* Numbers the frames the tree uses (index[slot], RP_NONE if unused) and
 * writes them as the "frames" array. Returns the total self wall time. */
static uint64_t
put_frames(rp_buf *out, const rp_report *r, uint32_t *index)
{
    const rp_tree *t = r->tree;
    uint32_t count = 0;
    uint64_t total = 0;
    rp_buf_puts(out, "\"frames\":[");
    for (uint32_t i = 0; i < t->n_nodes; i++) {
        uint32_t slot = frame_slot(r, t->nodes[i].frame);
        total += t->nodes[i].self_wall_ns;
        if (index[slot] == RP_NONE) {
            index[slot] = count;
            if (count++ > 0) {
                rp_buf_putc(out, ',');
            }
            put_frame(out, rp_symtab_get(r->syms, t->nodes[i].frame));
        }
    }
    rp_buf_putc(out, ']');
    return total;
}

int
rp_write_speedscope(rp_buf *out, const rp_report *r)
{
    const rp_tree *t = r->tree;
    uint32_t nslots = (r->syms != NULL ? r->syms->n : 0) + 1;
    uint32_t *index = NULL;
    rp_buf weights, scratch;
    rp_walk walk;
    int walking = 0, first = 1;
    uint32_t node;
    int ev;
    rp_buf_init(&weights, 0);
    rp_buf_init(&scratch, 0);
    index = malloc((size_t)nslots * sizeof(uint32_t));
    if (index == NULL || rp_walk_init(&walk, t) < 0) {
        out->failed = 1;
        goto done;
    }
    walking = 1;
    memset(index, 0xff, (size_t)nslots * sizeof(uint32_t));     /* RP_NONE */

    rp_buf_puts(out, "{\"$schema\":\"" SCHEMA_URL "\",\"shared\":{");
    uint64_t total = put_frames(out, r, index);
    rp_buf_puts(out, "},\"profiles\":[{\"type\":\"sampled\",\"name\":");
    put_profile_name(out, &scratch, r);
    rp_buf_puts(out, ",\"unit\":\"nanoseconds\",\"startValue\":0,"
                "\"endValue\":");
    rp_buf_put_u64(out, total);
    rp_buf_puts(out, ",\"samples\":[");
    while (!out->failed && !weights.failed
            && (ev = rp_walk_next(&walk, &node)) != RP_WALK_END) {
        const rp_node *nd = &t->nodes[node];
        if (ev != RP_WALK_ENTER || nd->self_wall_ns == 0) {
            continue;
        }
        rp_buf_puts(out, first ? "[" : ",[");
        rp_buf_puts(&weights, first ? "" : ",");
        rp_buf_put_u64(&weights, nd->self_wall_ns);
        first = 0;
        for (uint32_t d = 0; d < walk.depth; d++) {
            uint32_t f = t->nodes[walk.frames[d].node].frame;
            if (d > 0) {
                rp_buf_putc(out, ',');
            }
            rp_buf_put_u64(out, index[frame_slot(r, f)]);
        }
        rp_buf_putc(out, ']');
    }
    if (weights.failed) {
        out->failed = 1;
    }
    rp_buf_puts(out, "],\"weights\":[");
    rp_buf_put(out, weights.data, weights.len);
    rp_buf_puts(out, "]}],\"name\":");
    put_profile_name(out, &scratch, r);
    rp_buf_puts(out, ",\"activeProfileIndex\":0,\"exporter\":");
    rp_buf_clear(&scratch);
    rp_buf_puts(&scratch, "reqprof@");
    rp_buf_puts(&scratch, r->version != NULL ? r->version : "");
    if (scratch.failed) {
        out->failed = 1;
    }
    rp_buf_put_json_string(out, scratch.data, scratch.len);
    rp_buf_putc(out, '}');
done:
    if (walking) {
        rp_walk_free(&walk);
    }
    free(index);
    rp_buf_free(&scratch);
    rp_buf_free(&weights);
    return out->failed ? -1 : 0;
}

/* write_collapsed.c - folded stacks, the input of flamegraph.pl,
 * speedscope and friends:
 *
 *     handler (app.py:10);slow (app.py:20);[await] 3000
 *
 * One line per node with self wall time: the names from the root down,
 * joined by ';', then a space and the self wall time in microseconds,
 * rounded, at least 1 (a node with time never vanishes). The format cannot
 * escape, so names go through rp_buf_put_plain with ';' turned into ':':
 * no name adds a frame or a line. Lines come in the writers' order
 * (children largest wall first, depth first).
 *
 * The current path's text is kept in one buffer; `saved[d]` is its length
 * before the node at depth d was appended, so leaving a node cuts it back.
 * The walk is iterative (rp_walk), the path buffer grows with depth only.
 */
#include "writers.h"

#include <stdlib.h>

int
rp_write_collapsed(rp_buf *out, const rp_report *r)
{
    const rp_tree *t = r->tree;
    rp_buf name, path;
    rp_walk walk;
    int walking = 0;
    size_t *saved = NULL;
    uint32_t node;
    int ev;
    rp_buf_init(&name, 0);
    rp_buf_init(&path, 0);
    saved = malloc(((size_t)t->n_nodes + 1) * sizeof(size_t));
    if (saved == NULL || rp_walk_init(&walk, t) < 0) {
        out->failed = 1;
        goto done;
    }
    walking = 1;
    while (!out->failed && (ev = rp_walk_next(&walk, &node)) != RP_WALK_END) {
        const rp_node *nd = &t->nodes[node];
        if (ev == RP_WALK_LEAVE) {
            path.len = saved[walk.depth];
            if (path.data != NULL) {
                path.data[path.len] = '\0';
            }
            continue;
        }
        saved[walk.depth - 1] = path.len;
        if (walk.depth > 1) {
            rp_buf_putc(&path, ';');
        }
        rp_buf_clear(&name);
        rp_sym_put_name(&name, rp_symtab_get(r->syms, nd->frame));
        rp_buf_put_plain(&path, name.data, name.len, ';', ':');
        if (name.failed || path.failed) {
            out->failed = 1;    /* out of memory */
            break;
        }
        if (nd->self_wall_ns > 0) {
            uint64_t us = nd->self_wall_ns / 1000
                + (nd->self_wall_ns % 1000 >= 500);
            rp_buf_put(out, path.data, path.len);
            rp_buf_putc(out, ' ');
            rp_buf_put_u64(out, us > 0 ? us : 1);
            rp_buf_putc(out, '\n');
        }
    }
done:
    if (walking) {
        rp_walk_free(&walk);
    }
    free(saved);
    rp_buf_free(&path);
    rp_buf_free(&name);
    return out->failed ? -1 : 0;
}

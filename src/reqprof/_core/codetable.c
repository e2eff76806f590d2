/* codetable.c - a session's frame ids (see codetable.h).
 *
 * Invariants: entries[0..7] are the fixed pseudo-frames ([await],
 * [out-of-context], [truncated], [gc], [unsampled], [after response],
 * [event loop busy], [no request]); every other entry is a code object,
 * an await point (its code object and instruction offset + 1 as ident), a
 * thread, or a blocking request (its label), unique by (kind, obj,
 * ident). The slot table stays at most half
 * full. Only the thread holding the GIL touches a table.
 */
#include "codetable.h"

#include <stdlib.h>
#include <string.h>

/* co_qualname exists since 3.11; before, co_name is the best there is. */
#if PY_VERSION_HEX >= 0x030B0000
#  define RP_CODE_QUALNAME(c) ((c)->co_qualname)
#else
#  define RP_CODE_QUALNAME(c) ((c)->co_name)
#endif

static uint32_t
entry_hash(rp_kind kind, const void *obj, unsigned long ident)
{
    if (kind == RP_KIND_THREAD) {
        obj = NULL;     /* threads are keyed by ident; obj is their name */
    }
    uint64_t h = (uint64_t)(uintptr_t)obj ^ ((uint64_t)ident << 1) ^ kind;
    h *= 0x9E3779B97F4A7C15ull;
    return (uint32_t)(h >> 32);
}

static uint32_t
add_entry(rp_codetable *ct, rp_kind kind, PyObject *obj, unsigned long ident,
          uint32_t h)
{
    if (ct->n >= ct->max) {
        return RP_NONE;
    }
    if (ct->n == ct->cap) {
        uint32_t cap = ct->cap * 2;
        uint32_t mask = ct->mask * 2 + 1;
        rp_ct_entry *e = realloc(ct->entries, cap * sizeof(rp_ct_entry));
        if (e == NULL) {
            return RP_NONE;
        }
        ct->entries = e;
        uint32_t *slots = malloc(((size_t)mask + 1) * sizeof(uint32_t));
        if (slots == NULL) {
            return RP_NONE;     /* entries grew; table unchanged: still ok */
        }
        memset(slots, 0xff, ((size_t)mask + 1) * sizeof(uint32_t));
        for (uint32_t i = 0; i < ct->n; i++) {
            uint32_t j = entry_hash(e[i].kind, e[i].obj, e[i].ident);
            while (slots[j & mask] != RP_NONE) {
                j++;
            }
            slots[j & mask] = i;
        }
        free(ct->slots);
        ct->slots = slots;
        ct->mask = mask;
        ct->cap = cap;
        h = entry_hash(kind, obj, ident);
        while (ct->slots[h & ct->mask] != RP_NONE) {
            h++;
        }
    }
    uint32_t id = ct->n++;
    ct->entries[id].kind = kind;
    ct->entries[id].obj = Py_XNewRef(obj);
    ct->entries[id].ident = ident;
    ct->slots[h & ct->mask] = id;
    return id;
}

static uint32_t
get_or_add(rp_codetable *ct, rp_kind kind, PyObject *obj, unsigned long ident)
{
    if (ct->slots == NULL) {
        return RP_NONE;
    }
    uint32_t h = entry_hash(kind, obj, ident);
    for (;; h++) {
        uint32_t i = ct->slots[h & ct->mask];
        if (i == RP_NONE) {
            return add_entry(ct, kind, obj, ident, h);
        }
        const rp_ct_entry *e = &ct->entries[i];
        if (e->kind == kind && e->ident == ident
                && (kind == RP_KIND_THREAD || e->obj == obj)) {
            return i;
        }
    }
}

/* Lookup only, by identity: `code` is never dereferenced. */
int
rp_codetable_has_code(const rp_codetable *ct, const void *code)
{
    if (ct->slots == NULL || code == NULL) {
        return 0;
    }
    uint32_t h = entry_hash(RP_KIND_FRAME, (PyObject *)code, 0);
    for (;; h++) {
        uint32_t i = ct->slots[h & ct->mask];
        if (i == RP_NONE) {
            return 0;
        }
        const rp_ct_entry *e = &ct->entries[i];
        if (e->kind == RP_KIND_FRAME && e->ident == 0
                && (const void *)e->obj == code) {
            return 1;
        }
    }
}

/* Bytes one entry can cost: the table doubles (so up to two entries'
 * room per entry) and keeps two slots per entry. */
#define BYTES_PER_ENTRY (2 * (sizeof(rp_ct_entry) + 2 * sizeof(uint32_t)))

int
rp_codetable_init(rp_codetable *ct, uint32_t max_entries, size_t max_bytes)
{
    memset(ct, 0, sizeof(*ct));
    ct->cap = 64;
    ct->mask = 127;
    ct->full_reason = RP_TRUNC_NODES;
    if (max_bytes && max_bytes / BYTES_PER_ENTRY < max_entries) {
        max_entries = (uint32_t)(max_bytes / BYTES_PER_ENTRY);
        ct->full_reason = RP_TRUNC_BYTES;
    }
    ct->max = max_entries < 8 ? 8 : max_entries;
    ct->entries = malloc(ct->cap * sizeof(rp_ct_entry));
    ct->slots = malloc(((size_t)ct->mask + 1) * sizeof(uint32_t));
    if (ct->entries == NULL || ct->slots == NULL) {
        goto error;
    }
    memset(ct->slots, 0xff, ((size_t)ct->mask + 1) * sizeof(uint32_t));
    /* The pseudo-frames are told apart by kind alone (obj NULL, ident 0). */
    ct->await_id = get_or_add(ct, RP_KIND_AWAIT, NULL, 0);
    ct->out_of_context_id = get_or_add(ct, RP_KIND_OUT_OF_CONTEXT, NULL, 0);
    ct->truncated_id = get_or_add(ct, RP_KIND_TRUNCATED, NULL, 0);
    ct->gc_id = get_or_add(ct, RP_KIND_GC, NULL, 0);
    ct->unsampled_id = get_or_add(ct, RP_KIND_UNSAMPLED, NULL, 0);
    ct->after_response_id = get_or_add(ct, RP_KIND_AFTER_RESPONSE, NULL, 0);
    ct->loop_busy_id = get_or_add(ct, RP_KIND_LOOP_BUSY, NULL, 0);
    ct->no_request_id = get_or_add(ct, RP_KIND_BLOCKER, NULL, 0);
    if (ct->no_request_id == RP_NONE) {
        goto error;
    }
    return 0;
error:
    rp_codetable_clear(ct);
    return -1;
}

void
rp_codetable_clear(rp_codetable *ct)
{
    for (uint32_t i = 0; i < ct->n; i++) {
        Py_CLEAR(ct->entries[i].obj);
    }
    free(ct->entries);
    free(ct->slots);
    ct->entries = NULL;
    ct->slots = NULL;
    ct->n = ct->cap = 0;
    ct->mask = 0;
}

int
rp_codetable_traverse(const rp_codetable *ct, visitproc visit, void *arg)
{
    for (uint32_t i = 0; i < ct->n; i++) {
        Py_VISIT(ct->entries[i].obj);
    }
    return 0;
}

size_t
rp_codetable_bytes(const rp_codetable *ct)
{
    return (size_t)ct->cap * sizeof(rp_ct_entry)
        + ((size_t)ct->mask + 1) * sizeof(uint32_t);
}

uint32_t
rp_codetable_code(rp_codetable *ct, PyCodeObject *code)
{
    return get_or_add(ct, RP_KIND_FRAME, (PyObject *)code, 0);
}

uint32_t
rp_codetable_await(rp_codetable *ct, PyCodeObject *code, int32_t lasti)
{
    if (code == NULL || lasti < 0) {
        return ct->await_id;
    }
    return get_or_add(ct, RP_KIND_AWAIT, (PyObject *)code,
                      (unsigned long)lasti + 1);
}

uint32_t
rp_codetable_thread(rp_codetable *ct, unsigned long ident, int *is_new)
{
    uint32_t before = ct->n;
    uint32_t id = get_or_add(ct, RP_KIND_THREAD, NULL, ident);
    *is_new = id != RP_NONE && ct->n != before;
    return id;
}

uint32_t
rp_codetable_blocker(rp_codetable *ct, PyObject *label)
{
    if (label == NULL) {
        return ct->no_request_id;
    }
    return get_or_add(ct, RP_KIND_BLOCKER, label, 0);
}

void
rp_codetable_set_name(rp_codetable *ct, uint32_t id, PyObject *name)
{
    if (id < ct->n && ct->entries[id].kind == RP_KIND_THREAD
            && name != NULL && PyUnicode_Check(name)) {
        Py_XSETREF(ct->entries[id].obj, Py_NewRef(name));
    }
}

/* Location mapping for rp_tree_map_locs. */
static uint32_t
offset_to_line(void *ctx, const rp_tree *t, uint32_t node, uint32_t loc)
{
    const rp_codetable *ct = ctx;
    const rp_node *n = &t->nodes[node];
    uint32_t frame = n->frame;
    if (frame < ct->n && ct->entries[frame].kind == RP_KIND_AWAIT
            && ct->entries[frame].obj != NULL) {
        /* An await point: its offset is in its own code object. */
        int line = PyCode_Addr2Line((PyCodeObject *)ct->entries[frame].obj,
                                    (int)loc);
        return line < 0 ? 0 : (uint32_t)line;
    }
    if (frame < ct->n && ct->entries[frame].kind == RP_KIND_AWAIT
            && n->parent != RP_NONE) {
        frame = t->nodes[n->parent].frame;
    }
    if (frame >= ct->n || ct->entries[frame].kind != RP_KIND_FRAME) {
        return 0;
    }
    int line = PyCode_Addr2Line((PyCodeObject *)ct->entries[frame].obj,
                                (int)loc);
    return line < 0 ? 0 : (uint32_t)line;
}

int
rp_codetable_resolve_lines(const rp_codetable *ct, rp_tree *tree)
{
    if (rp_tree_map_locs(tree, offset_to_line, (void *)ct) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

/* The UTF-8 text of str `s` (lone surrogates kept as their 3-byte form,
 * which the writers replace; "?" for a missing or non-str name) in
 * *text / *len: an ASCII str's own characters, else those of a new bytes
 * object left in *owned for the caller to release. Returns 0, or -1 with
 * an exception set. */
static int
utf8_view(PyObject *s, const char **text, Py_ssize_t *len, PyObject **owned)
{
    *owned = NULL;
    if (s == NULL || !PyUnicode_Check(s)) {
        *text = "?";
        *len = 1;
        return 0;
    }
    if (rp_ascii_text(s, text, len)) {
        return 0;
    }
    *owned = PyUnicode_AsEncodedString(s, "utf-8", "surrogatepass");
    if (*owned == NULL) {
        return -1;
    }
    *text = PyBytes_AS_STRING(*owned);
    *len = PyBytes_GET_SIZE(*owned);
    return 0;
}

/* The directory prefixes of short file names, as UTF-8 (borrowed from
 * the sequence's str objects). */
typedef struct prefix_list {
    rp_str *items;
    size_t n;
} prefix_list;

/* Reads `prefixes` (a sequence from PySequence_Fast, or NULL); items that
 * are not str (or cannot be read) are left out. 0, or -1 when out of
 * memory (with an exception set). */
static int
prefix_list_init(prefix_list *pl, PyObject *prefixes)
{
    Py_ssize_t n = prefixes ? PySequence_Fast_GET_SIZE(prefixes) : 0;
    pl->items = NULL;
    pl->n = 0;
    if (n == 0) {
        return 0;
    }
    pl->items = malloc((size_t)n * sizeof(rp_str));
    if (pl->items == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *p = PySequence_Fast_GET_ITEM(prefixes, i);
        Py_ssize_t plen;
        const char *ps = PyUnicode_Check(p)
            ? PyUnicode_AsUTF8AndSize(p, &plen) : NULL;
        if (ps == NULL) {
            PyErr_Clear();
            continue;
        }
        pl->items[pl->n].s = (char *)ps;
        pl->items[pl->n].len = (size_t)plen;
        pl->n++;
    }
    return 0;
}

/* Length of the longest prefix in `pl` that starts `file`. */
static size_t
short_prefix_len(const prefix_list *pl, const char *file, size_t len)
{
    size_t best = 0;
    for (size_t i = 0; i < pl->n; i++) {
        const rp_str *p = &pl->items[i];
        if (p->len > best && p->len < len
                && memcmp(p->s, file, p->len) == 0) {
            best = p->len;
        }
    }
    return best;
}

/* What an entry's symbol holds, read from its objects: the text is
 * borrowed from them or from `owned` (released by view_clear). */
typedef struct sym_view {
    rp_kind kind;
    const char *f, *path;
    Py_ssize_t flen, plen;
    size_t skip;
    uint32_t line;
    PyObject *owned[3];
} sym_view;

static void
view_clear(sym_view *v)
{
    for (int i = 0; i < 3; i++) {
        Py_CLEAR(v->owned[i]);
    }
}

/* The bytes of the view's three strings in a symbol table. */
static size_t
view_bytes(const sym_view *v)
{
    return (size_t)v->flen + 2 * (size_t)v->plen - v->skip + 3;
}

/* Fills `v` (zeroed) for entry `e`. 0, or -1 with an exception set. */
static int
view_symbol(sym_view *v, const rp_ct_entry *e, const prefix_list *prefixes)
{
    v->kind = e->kind;
    v->f = "";
    v->path = "";
    switch (e->kind) {
    case RP_KIND_AWAIT:
        if (e->obj != NULL) {
            /* An await point: "[await]" with the file and line of the
             * frame that waits there. */
            PyCodeObject *code = (PyCodeObject *)e->obj;
            int at = PyCode_Addr2Line(code, (int)(e->ident - 1));
            if (utf8_view(code->co_filename, &v->path, &v->plen,
                          &v->owned[1]) < 0) {
                return -1;
            }
            v->skip = short_prefix_len(prefixes, v->path, (size_t)v->plen);
            v->line = at < 0 ? 0 : (uint32_t)at;
        }
        v->f = "[await]";
        v->flen = 7;
        break;
    case RP_KIND_FRAME: {
        PyCodeObject *code = (PyCodeObject *)e->obj;
        if (utf8_view(RP_CODE_QUALNAME(code), &v->f, &v->flen,
                      &v->owned[0]) < 0
                || utf8_view(code->co_filename, &v->path, &v->plen,
                             &v->owned[1]) < 0) {
            return -1;
        }
        v->skip = short_prefix_len(prefixes, v->path, (size_t)v->plen);
        v->line = code->co_firstlineno < 0 ? 0
                                           : (uint32_t)code->co_firstlineno;
        break;
    }
    case RP_KIND_THREAD:
        v->owned[2] = e->obj
            ? PyUnicode_FromFormat("[thread %U]", e->obj)
            : PyUnicode_FromFormat("[thread %lu]", e->ident);
        if (v->owned[2] == NULL
                || utf8_view(v->owned[2], &v->f, &v->flen, &v->owned[0]) < 0) {
            return -1;
        }
        break;
    case RP_KIND_BLOCKER:
        if (e->obj != NULL) {
            /* the request: "GET /export" */
            return utf8_view(e->obj, &v->f, &v->flen, &v->owned[0]);
        }
        v->f = "[no request]";
        v->flen = 12;
        break;
    default:
        v->f = e->kind == RP_KIND_OUT_OF_CONTEXT ? "[out-of-context]"
            : e->kind == RP_KIND_GC ? "[gc]"
            : e->kind == RP_KIND_UNSAMPLED ? "[unsampled]"
            : e->kind == RP_KIND_AFTER_RESPONSE ? "[after response]"
            : e->kind == RP_KIND_LOOP_BUSY ? "[event loop busy]"
            : "[truncated]";
        v->flen = (Py_ssize_t)strlen(v->f);
        break;
    }
    return 0;
}

int
rp_codetable_build_symtab(const rp_codetable *ct, rp_symtab *st,
                          PyObject *path_prefixes)
{
    int rc = -1;
    PyObject *prefixes = NULL;
    prefix_list pl = {NULL, 0};
    sym_view *views = NULL;
    uint32_t n_views = 0;
    if (path_prefixes != NULL && path_prefixes != Py_None) {
        prefixes = PySequence_Fast(path_prefixes, "path prefixes");
        if (prefixes == NULL) {
            goto done;
        }
    }
    if (prefix_list_init(&pl, prefixes) < 0) {
        goto done;
    }
    /* Read every entry first, so that the table takes two allocations
     * (its symbols, their strings) rather than one per symbol. */
    views = calloc(ct->n ? ct->n : 1, sizeof(sym_view));
    if (views == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    size_t bytes = 0;
    for (; n_views < ct->n; n_views++) {
        if (view_symbol(&views[n_views], &ct->entries[n_views], &pl) < 0) {
            n_views++;      /* (its references, if any, are released below) */
            goto done;
        }
        bytes += view_bytes(&views[n_views]);
    }
    if (rp_symtab_reserve(st, ct->n, bytes) < 0) {
        PyErr_NoMemory();
        goto done;
    }
    for (uint32_t i = 0; i < ct->n; i++) {
        const sym_view *v = &views[i];
        if (rp_symtab_add(st, v->kind, v->f, (size_t)v->flen, v->path,
                          (size_t)v->plen, v->path + v->skip,
                          (size_t)v->plen - v->skip, v->line) == RP_NONE) {
            PyErr_NoMemory();
            goto done;
        }
    }
    rc = 0;
done:
    for (uint32_t i = 0; i < n_views; i++) {
        view_clear(&views[i]);
    }
    free(views);
    free(pl.items);
    Py_XDECREF(prefixes);
    return rc;
}

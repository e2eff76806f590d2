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

/* UTF-8 bytes of str `s` (lone surrogates kept as their 3-byte form, which
 * the writers replace): a new bytes object, or NULL with an exception. */
static PyObject *
utf8_bytes(PyObject *s)
{
    if (s == NULL || !PyUnicode_Check(s)) {
        return PyBytes_FromStringAndSize("?", 1);
    }
    return PyUnicode_AsEncodedString(s, "utf-8", "surrogatepass");
}

/* Length of the longest prefix in `prefixes` that starts `file`. */
static size_t
short_prefix_len(PyObject *prefixes, const char *file, size_t len)
{
    size_t best = 0;
    Py_ssize_t n = prefixes ? PySequence_Fast_GET_SIZE(prefixes) : 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *p = PySequence_Fast_GET_ITEM(prefixes, i);
        Py_ssize_t plen;
        const char *ps = PyUnicode_Check(p)
            ? PyUnicode_AsUTF8AndSize(p, &plen) : NULL;
        if (ps == NULL) {
            PyErr_Clear();
            continue;
        }
        if ((size_t)plen > best && (size_t)plen < len
                && memcmp(ps, file, (size_t)plen) == 0) {
            best = (size_t)plen;
        }
    }
    return best;
}

static int
add_symbol(rp_symtab *st, const rp_ct_entry *e, PyObject *prefixes)
{
    int rc = -1;
    PyObject *fn = NULL, *file = NULL, *label = NULL;
    const char *f = "", *path = "";
    Py_ssize_t flen = 0, plen = 0;
    size_t skip = 0;
    uint32_t line = 0;

    switch (e->kind) {
    case RP_KIND_AWAIT:
        if (e->obj != NULL) {
            /* An await point: "[await]" with the file and line of the
             * frame that waits there. */
            PyCodeObject *code = (PyCodeObject *)e->obj;
            int at = PyCode_Addr2Line(code, (int)(e->ident - 1));
            file = utf8_bytes(code->co_filename);
            if (file == NULL) {
                goto done;
            }
            f = "[await]";
            flen = 7;
            path = PyBytes_AS_STRING(file);
            plen = PyBytes_GET_SIZE(file);
            skip = short_prefix_len(prefixes, path, (size_t)plen);
            line = at < 0 ? 0 : (uint32_t)at;
            break;
        }
        f = "[await]";
        flen = 7;
        break;
    case RP_KIND_FRAME: {
        PyCodeObject *code = (PyCodeObject *)e->obj;
        fn = utf8_bytes(RP_CODE_QUALNAME(code));
        file = utf8_bytes(code->co_filename);
        if (fn == NULL || file == NULL) {
            goto done;
        }
        path = PyBytes_AS_STRING(file);
        plen = PyBytes_GET_SIZE(file);
        skip = short_prefix_len(prefixes, path, (size_t)plen);
        line = code->co_firstlineno < 0 ? 0 : (uint32_t)code->co_firstlineno;
        break;
    }
    case RP_KIND_THREAD:
        label = e->obj
            ? PyUnicode_FromFormat("[thread %U]", e->obj)
            : PyUnicode_FromFormat("[thread %lu]", e->ident);
        if (label == NULL) {
            goto done;
        }
        fn = utf8_bytes(label);
        if (fn == NULL) {
            goto done;
        }
        break;
    case RP_KIND_BLOCKER:
        if (e->obj != NULL) {
            fn = utf8_bytes(e->obj);    /* the request: "GET /export" */
            if (fn == NULL) {
                goto done;
            }
            break;
        }
        f = "[no request]";
        flen = 12;
        break;
    default:
        f = e->kind == RP_KIND_OUT_OF_CONTEXT ? "[out-of-context]"
            : e->kind == RP_KIND_GC ? "[gc]"
            : e->kind == RP_KIND_UNSAMPLED ? "[unsampled]"
            : e->kind == RP_KIND_AFTER_RESPONSE ? "[after response]"
            : e->kind == RP_KIND_LOOP_BUSY ? "[event loop busy]"
            : "[truncated]";
        flen = (Py_ssize_t)strlen(f);
        break;
    }
    if (fn != NULL) {
        f = PyBytes_AS_STRING(fn);
        flen = PyBytes_GET_SIZE(fn);
    }
    if (rp_symtab_add(st, e->kind, f, (size_t)flen, path, (size_t)plen,
                      path + skip, (size_t)plen - skip, line) == RP_NONE) {
        PyErr_NoMemory();
        goto done;
    }
    rc = 0;
done:
    Py_XDECREF(fn);
    Py_XDECREF(file);
    Py_XDECREF(label);
    return rc;
}

int
rp_codetable_build_symtab(const rp_codetable *ct, rp_symtab *st,
                          PyObject *path_prefixes)
{
    int rc = -1;
    PyObject *prefixes = NULL;
    if (path_prefixes != NULL && path_prefixes != Py_None) {
        prefixes = PySequence_Fast(path_prefixes, "path prefixes");
        if (prefixes == NULL) {
            goto done;
        }
    }
    for (uint32_t i = 0; i < ct->n; i++) {
        if (add_symbol(st, &ct->entries[i], prefixes) < 0) {
            goto done;
        }
    }
    rc = 0;
done:
    Py_XDECREF(prefixes);
    return rc;
}

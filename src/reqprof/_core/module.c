/* module.c - the Python face of the engine: `reqprof._core`.
 *
 * Types: `Session` (one profiling session and, once stopped, its report
 * data). Functions: registration of hidden/dispatch code, engine stats,
 * lifecycle hooks, load_json (a stopped Session from a profile's JSON,
 * read by read_json.c), and log_record (what the reporter logs for a
 * sampled request, written by write_log.c from a report's attributes, its
 * Session and the request's metadata). Multi-phase init; the engine
 * itself is process-wide (sampler.c), so the module refuses
 * sub-interpreters.
 *
 * Ownership: a Session owns its tree, code table and symbols; the engine
 * holds a strong reference to it while it runs. Writers run on a stopped
 * session only, so they never race the sampler.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <time.h>

#include "outfiles.h"
#include "pyaggregate.h"
#include "read_json.h"
#include "sampler.h"
#include "writers.h"

#define DEFAULT_MAX_NODES 100000u
#define DEFAULT_MAX_BYTES ((size_t)32 << 20)
#define MAX_OUTPUT_BYTES ((size_t)1 << 30)

/* The names log_record reads and writes: the report's attributes, the
 * meta keys, then the `extra` fields in the order the record has them. */
enum {
    N_SAMPLES, N_DURATION_S, N_CPU_S, N_GC_S, N_RESPONSE_S,
    N_UNDERSAMPLED_REASON, N_TRUNCATED, N_SESSION,
    N_METHOD, N_ROUTE, N_PATH, N_STATUS, N_EXCEPTION, N_ENDED,
    N_RESPONSE_CUT, N_TRACE_ID, N_SPAN_ID, N_REQUEST_ID,
    X_TRIGGER, X_METHOD, X_PATH, X_ROUTE, X_STATUS, X_DURATION_MS, X_CPU_MS,
    X_SAMPLES, X_TRUNCATED, X_TOP, X_EXCEPTION, X_RESPONSE_MS, X_GC_MS,
    X_UNDERSAMPLED, X_LOOP_BUSY_MS, X_BLOCKERS, X_AWAITING_MS, X_RUNNING_MS,
    X_LOOP_BLOCK_MS, X_LOOP_BLOCK_AT, X_TRACE_ID, X_SPAN_ID, X_REQUEST_ID,
    LOG_NAMES
};

static const char *const LOG_NAME_TEXT[LOG_NAMES] = {
    "samples", "duration_s", "cpu_s", "gc_s", "response_s",
    "undersampled_reason", "truncated", "_session",
    "method", "route", "path", "status", "exception", "ended",
    "response_cut", "trace_id", "span_id", "request_id",
    "reqprof_trigger", "reqprof_method", "reqprof_path", "reqprof_route",
    "reqprof_status", "reqprof_duration_ms", "reqprof_cpu_ms",
    "reqprof_samples", "reqprof_truncated", "reqprof_top",
    "reqprof_exception", "reqprof_response_ms", "reqprof_gc_ms",
    "reqprof_undersampled", "reqprof_loop_busy_ms", "reqprof_blockers",
    "reqprof_awaiting_ms", "reqprof_running_ms", "reqprof_loop_block_ms",
    "reqprof_loop_block_at", "reqprof_trace_id", "reqprof_span_id",
    "reqprof_request_id",
};
/* The keys of Session.summary(), in the order it gives them. */
#define SUMMARY_KEYS(X) \
    X(STATE, "state") X(SAMPLES, "samples") X(WALL, "wall_s") \
    X(CPU, "cpu_s") X(DURATION, "duration_s") X(STARTED, "started_at") \
    X(TRUNCATED, "truncated_reasons") X(NODES, "nodes") \
    X(MEMORY, "memory_bytes") X(RUNNING, "running_samples") \
    X(AWAIT, "await_samples") X(OUT_OF_CONTEXT, "out_of_context_samples") \
    X(GC, "gc_s") X(RESPONSE, "response_s") X(UNDERSAMPLED, "undersampled") \
    X(INTERVAL, "interval_s") X(EFFECTIVE, "effective_interval_s") \
    X(BUDGET, "overhead_budget_percent") X(SAMPLER_CPU, "sampler_cpu_s") \
    X(SAMPLER_PERCENT, "sampler_cpu_percent")
#define SUMMARY_ENUM(id, name) SUM_##id,
enum { SUMMARY_KEYS(SUMMARY_ENUM) N_SUMMARY_KEYS };
#define SUMMARY_NAME(id, name) name,
static const char *const summary_names[] = { SUMMARY_KEYS(SUMMARY_NAME) };

typedef struct module_state {
    PyTypeObject *session_type;
    PyTypeObject *aggregate_type;
    PyObject *names[LOG_NAMES];     /* interned LOG_NAME_TEXT */
    PyObject *summary_keys[N_SUMMARY_KEYS];     /* interned */
} module_state;

static const char *const mode_names[] = {"enabled", "disabled", "strict"};

/* ---- Session ------------------------------------------------------------- */

static int
session_traverse(rp_session *s, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(s));
    Py_VISIT(s->context);
    Py_VISIT(s->coro);
    Py_VISIT(s->label);
    return rp_codetable_traverse(&s->codes, visit, arg);
}

static int
session_clear(rp_session *s)
{
    Py_CLEAR(s->context);
    Py_CLEAR(s->coro);
    Py_CLEAR(s->marker);
    Py_CLEAR(s->root_code);
    Py_CLEAR(s->fold_code);
    Py_CLEAR(s->label);
    rp_codetable_clear(&s->codes);
    return 0;
}

static void
session_dealloc(rp_session *s)
{
    PyTypeObject *tp = Py_TYPE(s);
    PyObject_GC_UnTrack(s);
    session_clear(s);
    rp_tree_free(&s->tree);
    rp_symtab_free(&s->syms);
    tp->tp_free((PyObject *)s);
    Py_DECREF(tp);
}

static PyObject *
session_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"interval", "max_depth", "async_mode",
                             "max_nodes", "max_bytes", "max_duration",
                             "loop_block", "overhead_budget", NULL};
    double interval = 0.001, max_duration = 300.0, loop_block = 0.05;
    double budget = 0.0;
    int max_depth = 50;
    const char *mode = "enabled";
    unsigned long long max_nodes = DEFAULT_MAX_NODES;
    unsigned long long max_bytes = DEFAULT_MAX_BYTES;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|dis$KKddd", kwlist,
                                     &interval, &max_depth, &mode,
                                     &max_nodes, &max_bytes, &max_duration,
                                     &loop_block, &budget)) {
        return NULL;
    }
    int m = -1;
    for (int i = 0; i < 3; i++) {
        if (strcmp(mode, mode_names[i]) == 0) {
            m = i;
        }
    }
    if (m < 0) {
        PyErr_Format(PyExc_ValueError,
                     "async_mode must be 'enabled', 'disabled' or 'strict', "
                     "not '%s'", mode);
        return NULL;
    }
    if (!(interval >= 1e-5 && interval <= 10.0)) {
        PyErr_SetString(PyExc_ValueError,
                        "interval must be between 0.00001 and 10 seconds");
        return NULL;
    }
    if (max_depth < 1 || max_depth > 100000) {
        PyErr_SetString(PyExc_ValueError,
                        "max_depth must be between 1 and 100000");
        return NULL;
    }
    if (max_nodes < 16 || max_nodes > 50000000ull) {
        PyErr_SetString(PyExc_ValueError,
                        "max_nodes must be between 16 and 50000000");
        return NULL;
    }
    if (max_bytes < 65536 || max_bytes > ((unsigned long long)1 << 40)) {
        PyErr_SetString(PyExc_ValueError,
                        "max_bytes must be between 65536 and 2**40");
        return NULL;
    }
    if (!(loop_block >= 0.0 && loop_block <= 3600.0)) {
        PyErr_SetString(PyExc_ValueError,
                        "loop_block must be between 0 and 3600 seconds "
                        "(0: never reported)");
        return NULL;
    }
    if (!(max_duration >= 0.0)) {
        PyErr_SetString(PyExc_ValueError,
                        "max_duration must be >= 0 (0: no limit)");
        return NULL;
    }
    if (!(budget >= 0.0 && budget <= 100.0)) {
        PyErr_SetString(PyExc_ValueError,
                        "overhead_budget must be a percent of one core, "
                        "> 0 and <= 100 (0: none)");
        return NULL;
    }
    rp_session *s = (rp_session *)type->tp_alloc(type, 0);
    if (s == NULL) {
        return NULL;
    }
    s->interval_ns = (uint64_t)(interval * 1e9);
    s->max_depth = (uint32_t)max_depth;
    s->mode = (rp_mode)m;
    s->max_nodes = (uint32_t)max_nodes;
    s->max_bytes = (size_t)max_bytes;
    s->max_duration_ns = (uint64_t)(max_duration * 1e9);
    s->loop_block_ns = (uint64_t)(loop_block * 1e9);
    s->budget_percent = budget;
    /* Percent of a core as CPU ns per second: a budget however small is
     * one (0 means none). */
    s->budget_ns = budget > 0.0 ? (uint64_t)(budget * 1e7) : 0;
    if (budget > 0.0 && s->budget_ns == 0) {
        s->budget_ns = 1;
    }
    s->block_frame = RP_NONE;
    s->block_lasti = -1;
    rp_symtab_init(&s->syms);
    if (rp_codetable_init(&s->codes, s->max_nodes + 16,
                          s->max_bytes / 4) < 0) {
        Py_DECREF(s);
        return PyErr_NoMemory();
    }
    return (PyObject *)s;
}

static PyObject *
session_start(rp_session *s, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"root_frame", "coro", "fold_code", NULL};
    PyObject *frame, *coro = Py_None, *fold = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!|O$O:start", kwlist,
                                     &PyFrame_Type, &frame, &coro, &fold)) {
        return NULL;
    }
    if (fold != Py_None && !PyCode_Check(fold)) {
        PyErr_SetString(PyExc_TypeError, "fold_code must be a code object");
        return NULL;
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    s->started_at = (double)now.tv_sec + (double)now.tv_nsec / 1e9;
    if (rp_engine_start(s, (PyFrameObject *)frame,
                        coro == Py_None ? NULL : coro,
                        fold == Py_None ? NULL : (PyCodeObject *)fold) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* set_label(label): what the session is ("GET /export"), the name other
 * sessions give it when it blocks their event loop. */
static PyObject *
session_set_label(rp_session *s, PyObject *label)
{
    if (!PyUnicode_Check(label)) {
        PyErr_SetString(PyExc_TypeError, "set_label() takes a str");
        return NULL;
    }
    Py_XSETREF(s->label, Py_NewRef(label));
    Py_RETURN_NONE;
}

static PyObject *
session_mark_response_end(rp_session *s, PyObject *Py_UNUSED(ignored))
{
    rp_engine_mark_response_end(s);
    Py_RETURN_NONE;
}

/* The id of a symbol of `kind` named `label` in `st`, added if missing;
 * RP_NONE when out of memory. */
static uint32_t
find_or_add_sym(rp_symtab *st, rp_kind kind, const char *label, size_t len)
{
    for (uint32_t i = 0; i < st->n; i++) {
        const rp_sym *y = &st->syms[i];
        if (y->kind == kind && y->function.len == len
                && memcmp(y->function.s, label, len) == 0
                && y->file.len == 0) {
            return i;
        }
    }
    return rp_symtab_add(st, kind, label, len, "", 0, "", 0, 0);
}

/* name_root(label): the tree's root becomes the request, a [request]
 * node named `label` ("GET /books/{book_id}"). The root frame's own time
 * (reqprof's code, around the app) moves to an [unsampled] child. */
static PyObject *
session_name_root(rp_session *s, PyObject *label)
{
    Py_ssize_t len;
    const char *text;
    if (!PyUnicode_Check(label)) {
        PyErr_SetString(PyExc_TypeError, "name_root() takes a str");
        return NULL;
    }
    if (!s->resolved) {
        PyErr_SetString(PyExc_RuntimeError,
                        "reqprof: the session has not been stopped");
        return NULL;
    }
    text = PyUnicode_AsUTF8AndSize(label, &len);
    if (text == NULL || s->tree.n_nodes == 0) {
        return text == NULL ? NULL : Py_NewRef(Py_None);
    }
    uint32_t id = rp_symtab_add(&s->syms, RP_KIND_REQUEST, text, (size_t)len,
                                "", 0, "", 0, 0);
    uint32_t unsampled = find_or_add_sym(&s->syms, RP_KIND_UNSAMPLED,
                                         "[unsampled]", 11);
    if (id == RP_NONE || unsampled == RP_NONE) {
        return PyErr_NoMemory();
    }
    rp_tree *t = &s->tree;
    rp_node *root = &t->nodes[0];
    root->frame = id;
    if (root->self_wall_ns > 0 || root->self_cpu_ns > 0) {
        uint64_t below = 0;
        for (uint32_t c = root->first_child; c != RP_NONE;
                c = t->nodes[c].next_sibling) {
            below += t->nodes[c].samples;
        }
        uint32_t u = rp_tree_get_child(t, 0, unsampled);
        if (u != RP_NONE) {
            root = &t->nodes[0];    /* the pool may have moved */
            rp_node *un = &t->nodes[u];
            un->samples += root->samples > below ? root->samples - below : 0;
            un->wall_ns += root->self_wall_ns;
            un->cpu_ns += root->self_cpu_ns;
            un->self_wall_ns += root->self_wall_ns;
            un->self_cpu_ns += root->self_cpu_ns;
            root->self_wall_ns = root->self_cpu_ns = 0;
            root->first_line = RP_NONE;
        }
    }
    Py_RETURN_NONE;
}

static PyObject *
session_stop(rp_session *s, PyObject *args)
{
    PyObject *prefixes = Py_None;
    if (!PyArg_ParseTuple(args, "|O:stop", &prefixes)) {
        return NULL;
    }
    rp_engine_stop(s);
    if (s->state == RP_SESSION_STOPPED && !s->resolved) {
        if (rp_codetable_resolve_lines(&s->codes, &s->tree) < 0
                || rp_codetable_build_symtab(&s->codes, &s->syms,
                                             prefixes) < 0) {
            rp_symtab_free(&s->syms);
            rp_symtab_init(&s->syms);
            return NULL;
        }
        if (s->block_frame < s->codes.n && s->block_lasti >= 0) {
            int line = PyCode_Addr2Line(
                (PyCodeObject *)s->codes.entries[s->block_frame].obj,
                (int)s->block_lasti);
            s->block_line = line > 0 ? (uint32_t)line : 0;
        }
        s->resolved = 1;
    }
    Py_RETURN_NONE;
}

/* Meta items converted from a dict; the strings point into `keep`. */
typedef struct meta_list {
    rp_meta_item *items;
    size_t n;
    PyObject *keep;     /* list of bytes objects owning the strings */
} meta_list;

static int
keep_utf8(meta_list *ml, PyObject *str, rp_str *out)
{
    PyObject *b = PyUnicode_AsEncodedString(str, "utf-8", "surrogatepass");
    if (b == NULL) {
        return -1;
    }
    int rc = PyList_Append(ml->keep, b);
    out->s = PyBytes_AS_STRING(b);
    out->len = (size_t)PyBytes_GET_SIZE(b);
    Py_DECREF(b);   /* ml->keep holds it */
    return rc;
}

static void
meta_free(meta_list *ml)
{
    free(ml->items);
    Py_CLEAR(ml->keep);
}

/* Converts `meta` (a dict or None): str values stay text; bool, int,
 * finite float and None become JSON literals; anything else its str(). */
static int
meta_from_dict(meta_list *ml, PyObject *meta)
{
    memset(ml, 0, sizeof(*ml));
    ml->keep = PyList_New(0);
    if (ml->keep == NULL) {
        return -1;
    }
    if (meta == NULL || meta == Py_None) {
        return 0;
    }
    if (!PyDict_Check(meta)) {
        PyErr_SetString(PyExc_TypeError, "meta must be a dict");
        goto error;
    }
    Py_ssize_t n = PyDict_Size(meta);
    ml->items = calloc(n > 0 ? (size_t)n : 1, sizeof(rp_meta_item));
    if (ml->items == NULL) {
        PyErr_NoMemory();
        goto error;
    }
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    while (PyDict_Next(meta, &pos, &k, &v)) {
        rp_meta_item *it = &ml->items[ml->n];
        PyObject *ks = PyObject_Str(k);
        PyObject *vs = NULL;
        it->is_literal = 1;
        if (v == Py_None) {
            vs = PyUnicode_FromString("null");
        }
        else if (PyBool_Check(v)) {
            vs = PyUnicode_FromString(v == Py_True ? "true" : "false");
        }
        else if (PyLong_Check(v)) {
            vs = PyObject_Str(v);
        }
        else if (PyFloat_Check(v)) {
            double d = PyFloat_AS_DOUBLE(v);
            vs = isfinite(d) ? PyObject_Repr(v) : PyUnicode_FromString("null");
        }
        else {
            it->is_literal = 0;
            vs = PyUnicode_Check(v) ? Py_NewRef(v) : PyObject_Str(v);
        }
        int rc = (ks == NULL || vs == NULL
                  || keep_utf8(ml, ks, &it->key) < 0
                  || keep_utf8(ml, vs, &it->value) < 0) ? -1 : 0;
        Py_XDECREF(ks);
        Py_XDECREF(vs);
        if (rc < 0) {
            goto error;
        }
        ml->n++;
    }
    return 0;
error:
    meta_free(ml);
    return -1;
}

static int
check_stopped(rp_session *s)
{
    if (!s->resolved) {
        PyErr_SetString(PyExc_RuntimeError,
                        "reqprof: the session has not been stopped");
        return -1;
    }
    return 0;
}

/* The longest stretch `s` held the event loop, when at least its
 * threshold (a loaded report keeps the one it was written with). */
static void
report_loop_block(const rp_session *s, rp_report *r)
{
    r->loop_block_sym = RP_NONE;
    if (s->loaded) {
        r->loop_block_s = s->loaded_block_s;
        r->loop_block_sym = s->block_frame;
        r->loop_block_line = s->block_line;
    }
    else if (s->loop_block_ns > 0 && s->block_ns >= s->loop_block_ns) {
        r->loop_block_s = (double)s->block_ns / 1e9;
        r->loop_block_sym = s->block_frame;
        r->loop_block_line = s->block_line;
    }
}

/* The mean interval of the session's ticks, seconds: the asked one
 * until a tick of the sampler's took it. */
static double
effective_interval(const rp_session *s)
{
    if (s->loaded) {
        return s->loaded_effective_s > 0.0 ? s->loaded_effective_s
                                           : s->loaded_interval_s;
    }
    if (s->n_ticks == 0) {
        return (double)s->interval_ns / 1e9;
    }
    return (double)s->tick_intervals_ns / (double)s->n_ticks / 1e9;
}

/* The engine threads' CPU while the session was active (so far, while it
 * runs): 1 with *ns set, 0 when not known (not started, or a loaded
 * report without it). */
static int
engine_cpu(const rp_session *s, uint64_t *ns)
{
    if (s->loaded) {
        *ns = s->loaded_cpu_ns;
        return s->loaded_has_cpu;
    }
    if (s->state == RP_SESSION_NEW) {
        return 0;
    }
    if (s->state == RP_SESSION_STOPPED) {
        *ns = s->engine_cpu_ns;
        return 1;
    }
    uint64_t now = rp_engine_cpu_ns();
    *ns = now > s->engine_cpu0 ? now - s->engine_cpu0 : 0;
    return 1;
}

static void
fill_report(rp_session *s, rp_report *r, const meta_list *ml,
            const char *version)
{
    memset(r, 0, sizeof(*r));
    r->tree = &s->tree;
    r->syms = &s->syms;
    r->version = version;
    r->started_at = s->started_at;
    r->duration_s = s->loaded ? s->loaded_duration_s
                              : (double)(s->stop_ns - s->start_ns) / 1e9;
    r->interval_s = s->loaded ? s->loaded_interval_s
                              : (double)s->interval_ns / 1e9;
    r->effective_interval_s = effective_interval(s);
    r->budget_percent = s->budget_percent;
    r->has_sampler_cpu = engine_cpu(s, &r->sampler_cpu_ns);
    r->async_mode = mode_names[s->mode];
    r->max_depth = s->max_depth;
    r->truncated = s->truncated | s->tree.truncated;
    r->gc_s = s->loaded ? s->loaded_gc_s : (double)s->gc_ns / 1e9;
    r->response_s = s->loaded ? s->loaded_response_s
        : s->response_ns ? (double)(s->response_ns - s->start_ns) / 1e9 : 0.0;
    r->undersampled = s->undersampled;
    report_loop_block(s, r);
    r->meta = ml->items;
    r->n_meta = ml->n;
}

/* Decodes a writer's output: JSON is valid UTF-8 by construction; text
 * formats may carry raw bytes of odd names, replaced here. */
static PyObject *
buf_to_str(rp_buf *b)
{
    if (b->failed) {
        return PyErr_NoMemory();
    }
    return PyUnicode_DecodeUTF8(b->data ? b->data : "", (Py_ssize_t)b->len,
                                "replace");
}

/* A new bytes object with the buffer's content, a large one copied without
 * the GIL: a report of tens of megabytes does not stop the other threads
 * for the copy. (Nobody else can see the object before it is returned.) */
static PyObject *
bytes_from_buf(const rp_buf *b)
{
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)b->len);
    if (out == NULL || b->len == 0) {
        return out;
    }
    char *dst = PyBytes_AS_STRING(out);
    if (b->len < RP_GIL_FREE_COPY_BYTES) {
        memcpy(dst, b->data, b->len);
        return out;
    }
    Py_BEGIN_ALLOW_THREADS
    memcpy(dst, b->data, b->len);
    Py_END_ALLOW_THREADS
    return out;
}

enum { FMT_JSON, FMT_TEXT, FMT_COLLAPSED, FMT_HTML, FMT_SPEEDSCOPE,
       FMT_PPROF };

/* The viewer page around the data, for FMT_HTML. */
typedef struct html_page {
    const char *head, *tail;
    Py_ssize_t head_len, tail_len;
} html_page;

/* The writer of format `fmt` (no Python object touched). */
static int
write_format(rp_buf *b, const rp_report *r, int fmt, const rp_text_opts *opts,
             const html_page *page)
{
    return fmt == FMT_JSON ? rp_write_json(b, r)
        : fmt == FMT_TEXT ? rp_write_text(b, r, opts)
        : fmt == FMT_HTML ? rp_write_html(b, r, page->head,
                                          (size_t)page->head_len, page->tail,
                                          (size_t)page->tail_len)
        : fmt == FMT_SPEEDSCOPE ? rp_write_speedscope(b, r)
        : fmt == FMT_PPROF ? rp_write_pprof(b, r)
        : rp_write_collapsed(b, r);
}

/* Writes the session in format `fmt`: a str, or bytes (always for pprof;
 * for the text formats when `as_bytes`: what a server sends, without a
 * decode and an encode of a large report under the GIL). */
static PyObject *
session_write(rp_session *s, int fmt, PyObject *meta, const char *version,
              const rp_text_opts *opts, const html_page *page, int as_bytes)
{
    PyObject *out = NULL;
    meta_list ml;
    rp_buf b;
    rp_report r;
    if (check_stopped(s) < 0 || meta_from_dict(&ml, meta) < 0) {
        return NULL;
    }
    rp_buf_init(&b, MAX_OUTPUT_BYTES);
    fill_report(s, &r, &ml, version);
    int rc;
    /* The writers read only C data (the stopped session's tree and
     * symbols, the meta copied into `ml`, strings the arguments keep
     * alive): a large report does not stop the other threads. */
    if (s->tree.n_nodes < RP_GIL_FREE_WRITE_NODES) {
        rc = write_format(&b, &r, fmt, opts, page);
    }
    else {
        Py_BEGIN_ALLOW_THREADS
        rc = write_format(&b, &r, fmt, opts, page);
        Py_END_ALLOW_THREADS
    }
    if ((rc < 0 && !b.failed) || RP_FAULT(RP_FAULT_REPORT)) {
        b.failed = 1;   /* an injected fault takes the out-of-memory path */
    }
    if (fmt != FMT_PPROF && !as_bytes) {
        out = buf_to_str(&b);
    }
    else if (b.failed) {
        PyErr_NoMemory();
    }
    else {
        out = bytes_from_buf(&b);
    }
    rp_buf_free(&b);
    meta_free(&ml);
    return out;
}

/* to_json / to_speedscope / to_pprof: (meta=None, version='',
 * as_bytes=False). */
static PyObject *
session_to_format(rp_session *s, PyObject *args, PyObject *kwargs, int fmt)
{
    static char *kwlist[] = {"meta", "version", "as_bytes", NULL};
    PyObject *meta = Py_None;
    const char *version = "";
    int as_bytes = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|Osp", kwlist, &meta,
                                     &version, &as_bytes)) {
        return NULL;
    }
    return session_write(s, fmt, meta, version, NULL, NULL, as_bytes);
}

static PyObject *
session_to_json(rp_session *s, PyObject *args, PyObject *kwargs)
{
    return session_to_format(s, args, kwargs, FMT_JSON);
}

#define MAX_LIB_PREFIXES 16

/* The directories of a tuple of str into lib[] (at most MAX_LIB_PREFIXES),
 * their UTF-8 valid while the tuple lives: the count, or -1 with an
 * exception. */
static Py_ssize_t
lib_prefixes(PyObject *prefixes, rp_str *lib)
{
    Py_ssize_t n = prefixes != NULL ? PyTuple_GET_SIZE(prefixes) : 0;
    if (n > MAX_LIB_PREFIXES) {
        PyErr_Format(PyExc_ValueError,
                     "library_prefixes: at most %d directories",
                     MAX_LIB_PREFIXES);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t len;
        PyObject *item = PyTuple_GET_ITEM(prefixes, i);
        if (!PyUnicode_Check(item)) {
            PyErr_SetString(PyExc_TypeError,
                            "library_prefixes: a tuple of str");
            return -1;
        }
        lib[i].s = (char *)PyUnicode_AsUTF8AndSize(item, &len);
        if (lib[i].s == NULL) {
            return -1;
        }
        lib[i].len = (size_t)len;
    }
    return n;
}

static PyObject *
session_to_text(rp_session *s, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"meta", "version", "ascii", "color",
                             "min_percent", "max_lines", "log",
                             "library_prefixes", "as_bytes", NULL};
    PyObject *meta = Py_None, *prefixes = NULL;
    const char *version = "";
    int ascii = 0, color = 0, log = 0, as_bytes = 0;
    double min_percent = 0.0;
    unsigned int max_lines = 0;
    rp_str lib[MAX_LIB_PREFIXES];
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|OsppdIpO!p", kwlist,
                                     &meta, &version, &ascii, &color,
                                     &min_percent, &max_lines, &log,
                                     &PyTuple_Type, &prefixes, &as_bytes)) {
        return NULL;
    }
    /* The tuple is held by the caller's arguments. */
    Py_ssize_t n = lib_prefixes(prefixes, lib);
    if (n < 0) {
        return NULL;
    }
    rp_text_opts o = {ascii, color, min_percent, max_lines, log, lib,
                      (size_t)n};
    return session_write(s, FMT_TEXT, meta, version, &o, NULL, as_bytes);
}

static PyObject *
session_to_html(rp_session *s, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"head", "tail", "meta", "version", "as_bytes",
                             NULL};
    html_page page;
    PyObject *meta = Py_None;
    const char *version = "";
    int as_bytes = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "s#s#|Osp", kwlist,
                                     &page.head, &page.head_len, &page.tail,
                                     &page.tail_len, &meta, &version,
                                     &as_bytes)) {
        return NULL;
    }
    return session_write(s, FMT_HTML, meta, version, NULL, &page, as_bytes);
}

static PyObject *
session_to_speedscope(rp_session *s, PyObject *args, PyObject *kwargs)
{
    return session_to_format(s, args, kwargs, FMT_SPEEDSCOPE);
}

static PyObject *
session_to_pprof(rp_session *s, PyObject *args, PyObject *kwargs)
{
    return session_to_format(s, args, kwargs, FMT_PPROF);
}

static PyObject *
session_to_collapsed(rp_session *s, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"as_bytes", NULL};
    int as_bytes = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|p", kwlist, &as_bytes)) {
        return NULL;
    }
    return session_write(s, FMT_COLLAPSED, Py_None, "", NULL, NULL, as_bytes);
}

/* ---- the tree as Python objects ------------------------------------------- */

/* Seconds as json.loads reads what rp_buf_put_seconds writes: an int for
 * whole seconds, else a float. New reference. */
static PyObject *
seconds_obj(uint64_t ns)
{
    if (ns % 1000000000u == 0) {
        return PyLong_FromUnsignedLongLong(ns / 1000000000u);
    }
    return PyFloat_FromDouble((double)ns / 1e9);
}

/* Bytes as json.loads reads what the JSON writer writes for them (ill-formed
 * UTF-8 replaced by U+FFFD). New reference. */
static PyObject *
text_obj(const char *s, size_t n)
{
    return PyUnicode_DecodeUTF8(s ? s : "", (Py_ssize_t)n, "replace");
}

static int
set_item(PyObject *d, const char *key, PyObject *v)
{
    int rc = v != NULL ? PyDict_SetItemString(d, key, v) : -1;
    Py_XDECREF(v);
    return rc;
}

/* `lines` of a node as a dict {"<line>": seconds}, in line order. */
static PyObject *
lines_obj(const rp_tree *t, const rp_node *nd)
{
    PyObject *d = NULL, *pairs = PyList_New(0);
    if (pairs == NULL) {
        return NULL;
    }
    for (uint32_t l = nd->first_line; l != RP_NONE; l = t->lines[l].next) {
        PyObject *p = Py_BuildValue("(IK)", t->lines[l].loc,
                                    (unsigned long long)t->lines[l].self_wall_ns);
        if (p == NULL || PyList_Append(pairs, p) < 0) {
            Py_XDECREF(p);
            goto done;
        }
        Py_DECREF(p);
    }
    if (PyList_Sort(pairs) < 0) {
        goto done;
    }
    d = PyDict_New();
    for (Py_ssize_t i = 0; d != NULL && i < PyList_GET_SIZE(pairs); i++) {
        unsigned int loc;
        unsigned long long ns;
        PyObject *key;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(pairs, i), "IK", &loc, &ns)
                || (key = PyUnicode_FromFormat("%u", loc)) == NULL) {
            Py_CLEAR(d);
            break;
        }
        PyObject *v = seconds_obj(ns);
        int rc = v != NULL ? PyDict_SetItem(d, key, v) : -1;
        Py_DECREF(key);
        Py_XDECREF(v);
        if (rc < 0) {
            Py_CLEAR(d);
        }
    }
done:
    Py_DECREF(pairs);
    return d;
}

/* One node as the JSON schema's object, with an empty children list. */
static PyObject *
node_obj(const rp_session *s, const rp_node *nd, rp_buf *name)
{
    const rp_sym *sym = rp_symtab_get(&s->syms, nd->frame);
    PyObject *d = PyDict_New();
    if (d == NULL) {
        return NULL;
    }
    rp_buf_clear(name);
    rp_sym_put_name(name, sym);
    if (name->failed) {
        PyErr_NoMemory();
        goto error;
    }
    if (set_item(d, "name", text_obj(name->data, name->len)) < 0
            || set_item(d, "function", text_obj(sym->function.s,
                                                sym->function.len)) < 0
            || set_item(d, "file", text_obj(sym->file.s, sym->file.len)) < 0
            || set_item(d, "short_file", text_obj(sym->short_file.s,
                                                  sym->short_file.len)) < 0
            || set_item(d, "line", PyLong_FromUnsignedLong(sym->line)) < 0
            || set_item(d, "kind", PyUnicode_FromString(
                                       rp_kind_name(sym->kind))) < 0
            || set_item(d, "wall_s", seconds_obj(nd->wall_ns)) < 0
            || set_item(d, "cpu_s", seconds_obj(nd->cpu_ns)) < 0
            || set_item(d, "self_wall_s", seconds_obj(nd->self_wall_ns)) < 0
            || set_item(d, "self_cpu_s", seconds_obj(nd->self_cpu_ns)) < 0
            || set_item(d, "samples",
                        PyLong_FromUnsignedLongLong(nd->samples)) < 0
            || set_item(d, "lines", lines_obj(&s->tree, nd)) < 0
            || set_item(d, "children", PyList_New(0)) < 0) {
        goto error;
    }
    return d;
error:
    Py_DECREF(d);
    return NULL;
}

/* tree_dict() -> the root node as the JSON schema's nested dicts (what
 * json.loads(to_json())["root"] gives), built without recursion: the
 * tree may be deeper than Python's recursion limit allows to parse. */
static PyObject *
session_tree_dict(rp_session *s, PyObject *Py_UNUSED(ignored))
{
    PyObject *root = NULL, *stack = NULL;
    rp_walk walk;
    rp_buf name;
    uint32_t node;
    int ev, walking = 0;
    if (check_stopped(s) < 0) {
        return NULL;
    }
    rp_buf_init(&name, 0);
    stack = PyList_New(0);      /* the children lists of the open nodes */
    if (stack == NULL) {
        goto error;
    }
    if (rp_walk_init(&walk, &s->tree) < 0) {
        PyErr_NoMemory();
        goto error;
    }
    walking = 1;
    while ((ev = rp_walk_next(&walk, &node)) != RP_WALK_END) {
        Py_ssize_t depth = PyList_GET_SIZE(stack);
        if (ev == RP_WALK_LEAVE) {
            if (PyList_SetSlice(stack, depth - 1, depth, NULL) < 0) {
                goto error;
            }
            continue;
        }
        PyObject *d = node_obj(s, &s->tree.nodes[node], &name);
        if (d == NULL) {
            goto error;
        }
        int rc = depth > 0
            ? PyList_Append(PyList_GET_ITEM(stack, depth - 1), d) : 0;
        if (depth == 0) {
            root = Py_NewRef(d);
        }
        if (rc < 0 || PyList_Append(stack, PyDict_GetItemString(d,
                                                                "children")) < 0) {
            Py_DECREF(d);
            goto error;
        }
        Py_DECREF(d);
    }
    if (root == NULL) {     /* a tree whose init failed: one empty node */
        rp_node empty;
        memset(&empty, 0, sizeof(empty));
        empty.first_line = empty.first_child = RP_NONE;
        root = node_obj(s, &empty, &name);
    }
    rp_walk_free(&walk);
    rp_buf_free(&name);
    Py_DECREF(stack);
    return root;
error:
    if (walking) {
        rp_walk_free(&walk);
    }
    rp_buf_free(&name);
    Py_XDECREF(stack);
    Py_XDECREF(root);
    return NULL;
}

/* Display name of frame id `id` as a str. */
static PyObject *
sym_name(const rp_symtab *st, uint32_t id)
{
    rp_buf b;
    rp_buf_init(&b, 0);
    rp_sym_put_name(&b, &st->syms[id]);
    PyObject *s = buf_to_str(&b);
    rp_buf_free(&b);
    return s;
}

/* The n functions with the most self wall time: [(name, seconds), ...]
 * (rp_top_frames says which count). */
static PyObject *
session_top_functions(rp_session *s, PyObject *args)
{
    Py_ssize_t n = 3;
    PyObject *result = NULL;
    uint32_t *ids = NULL;
    uint64_t *ns = NULL;
    int count;
    if (!PyArg_ParseTuple(args, "|n:top_functions", &n)
            || check_stopped(s) < 0) {
        return NULL;
    }
    size_t want = n > 0 ? (size_t)n : 0;
    if (want > s->syms.n) {
        want = s->syms.n;       /* never more than there are symbols */
    }
    ids = malloc((want ? want : 1) * sizeof(uint32_t));
    ns = malloc((want ? want : 1) * sizeof(uint64_t));
    count = ids != NULL && ns != NULL
        ? rp_top_frames(&s->tree, &s->syms, want, ids, ns) : -1;
    if (count < 0) {
        PyErr_NoMemory();
        goto done;
    }
    result = PyList_New(count);
    for (int k = 0; result != NULL && k < count; k++) {
        PyObject *name = sym_name(&s->syms, ids[k]);
        PyObject *item = name ? Py_BuildValue("(Nd)", name,
                                              (double)ns[k] / 1e9)
                              : NULL;
        if (item == NULL) {
            Py_CLEAR(result);
            break;
        }
        PyList_SET_ITEM(result, k, item);
    }
done:
    free(ids);
    free(ns);
    return result;
}

/* Memory held by the resolved names of a stopped session. */
static size_t
symtab_bytes(const rp_symtab *st)
{
    size_t n = (size_t)st->cap * sizeof(rp_sym);
    for (uint32_t i = 0; i < st->n; i++) {
        const rp_sym *y = &st->syms[i];
        n += y->function.len + y->file.len + y->short_file.len + 3;
    }
    return n;
}

static PyObject *
seconds(uint64_t ns)
{
    return PyFloat_FromDouble((double)ns / 1e9);
}

static PyObject *
session_breakdown(rp_session *s, PyObject *Py_UNUSED(ignored))
{
    PyObject *result = NULL, *blockers = NULL, *block = NULL;
    rp_breakdown b;
    rp_report r;
    if (!s->resolved) {
        PyErr_SetString(PyExc_RuntimeError,
                        "reqprof: the session has not been stopped");
        return NULL;
    }
    if (rp_breakdown_compute(&s->tree, &s->syms, &b) < 0) {
        return PyErr_NoMemory();
    }
    blockers = PyList_New(0);
    if (blockers == NULL) {
        goto done;
    }
    for (size_t i = 0; i < b.n_blockers; i++) {
        PyObject *item = Py_BuildValue(
            "{s:N, s:N, s:d}",
            "name", PyUnicode_DecodeUTF8(b.blockers[i].name->s,
                                         (Py_ssize_t)b.blockers[i].name->len,
                                         "replace"),
            "wall_s", seconds(b.blockers[i].wall_ns),
            "share", b.loop_busy_ns ? (double)b.blockers[i].wall_ns
                                      / (double)b.loop_busy_ns : 0.0);
        if (item == NULL || PyList_Append(blockers, item) < 0) {
            Py_XDECREF(item);
            goto done;
        }
        Py_DECREF(item);
    }
    memset(&r, 0, sizeof(r));
    report_loop_block(s, &r);
    if (r.loop_block_s > 0.0) {
        const rp_sym *at = r.loop_block_sym != RP_NONE
            ? rp_symtab_get(&s->syms, r.loop_block_sym) : NULL;
        block = at == NULL
            ? Py_BuildValue("{s:d}", "wall_s", r.loop_block_s)
            : Py_BuildValue("{s:d, s:s#, s:s#, s:s#, s:I}",
                            "wall_s", r.loop_block_s,
                            "function", at->function.s,
                            (Py_ssize_t)at->function.len,
                            "file", at->file.s, (Py_ssize_t)at->file.len,
                            "short_file", at->short_file.s,
                            (Py_ssize_t)at->short_file.len,
                            "line", (unsigned)r.loop_block_line);
        if (block == NULL) {
            goto done;
        }
    }
    result = Py_BuildValue(
        "{s:{s:N, s:N}, s:{s:N}, s:{s:N, s:O}, s:{s:N, s:N}, s:{s:N}, "
        "s:{s:N}, s:{s:N}, s:O}",
        "running", "wall_s", seconds(b.running_wall_ns),
        "cpu_s", seconds(b.running_cpu_ns),
        "awaiting", "wall_s", seconds(b.awaiting_ns),
        "event_loop_busy", "wall_s", seconds(b.loop_busy_ns),
        "blockers", blockers,
        "in_worker_threads", "wall_s", seconds(b.worker_wall_ns),
        "cpu_s", seconds(b.worker_cpu_ns),
        "gc", "wall_s", seconds(b.gc_ns),
        "unsampled", "wall_s", seconds(b.unsampled_ns),
        "out_of_context", "wall_s", seconds(b.out_of_context_ns),
        "loop_block", block != NULL ? block : Py_None);
done:
    Py_XDECREF(blockers);
    Py_XDECREF(block);
    return result;
}

/* summary(): the report's figures, as a dict (its keys interned once in
 * the module state: a report is summarised on the request's thread). */
static PyObject *
session_summary(rp_session *s, PyObject *Py_UNUSED(ignored))
{
    module_state *st = PyType_GetModuleState(Py_TYPE(s));
    PyObject *v[N_SUMMARY_KEYS] = {NULL};
    PyObject *result = NULL;
    if (st == NULL) {
        return NULL;
    }
    unsigned trunc = s->truncated | s->tree.truncated;
    PyObject *reasons = v[SUM_TRUNCATED] = PyList_New(0);
    if (reasons == NULL) {
        goto done;
    }
    for (unsigned i = 0; i < RP_TRUNC_REASONS; i++) {
        if (trunc & (1u << i)) {
            PyObject *r = PyUnicode_FromString(rp_trunc_name(i));
            if (r == NULL || PyList_Append(reasons, r) < 0) {
                Py_XDECREF(r);
                goto done;
            }
            Py_DECREF(r);
        }
    }
    const rp_node *root = s->tree.n_nodes ? &s->tree.nodes[0] : NULL;
    uint64_t end = s->state == RP_SESSION_STOPPED ? s->stop_ns : s->last_ns;
    double response = s->loaded ? s->loaded_response_s
        : s->response_ns ? (double)(s->response_ns - s->start_ns) / 1e9 : 0.0;
    const char *under = rp_undersampled_name(s->undersampled);
    double duration = s->loaded ? s->loaded_duration_s
        : s->start_ns ? (double)(end - s->start_ns) / 1e9 : 0.0;
    uint64_t cpu_ns = 0;
    double percent = 0.0;
    int has_cpu = engine_cpu(s, &cpu_ns);
    int has_percent = has_cpu && rp_cpu_percent(cpu_ns, duration, &percent);
    v[SUM_STATE] = PyUnicode_FromString(
        s->state == RP_SESSION_NEW ? "new"
        : s->state == RP_SESSION_RUNNING ? "running" : "stopped");
    v[SUM_SAMPLES] = PyLong_FromUnsignedLongLong(root ? root->samples : 0);
    v[SUM_WALL] = PyFloat_FromDouble(root ? (double)root->wall_ns / 1e9 : 0.0);
    v[SUM_CPU] = PyFloat_FromDouble(root ? (double)root->cpu_ns / 1e9 : 0.0);
    v[SUM_DURATION] = PyFloat_FromDouble(duration);
    v[SUM_STARTED] = PyFloat_FromDouble(s->started_at);
    v[SUM_NODES] = PyLong_FromUnsignedLong(s->tree.n_nodes);
    v[SUM_MEMORY] = PyLong_FromSsize_t((Py_ssize_t)(s->tree.bytes
                                       + rp_codetable_bytes(&s->codes)
                                       + symtab_bytes(&s->syms)));
    v[SUM_RUNNING] = PyLong_FromUnsignedLongLong(s->n_running);
    v[SUM_AWAIT] = PyLong_FromUnsignedLongLong(s->n_await);
    v[SUM_OUT_OF_CONTEXT] = PyLong_FromUnsignedLongLong(s->n_out_of_context);
    v[SUM_GC] = PyFloat_FromDouble(s->loaded ? s->loaded_gc_s
                                             : (double)s->gc_ns / 1e9);
    v[SUM_RESPONSE] = response > 0 ? PyFloat_FromDouble(response)
                                   : Py_NewRef(Py_None);
    v[SUM_UNDERSAMPLED] = under != NULL ? PyUnicode_FromString(under)
                                        : Py_NewRef(Py_None);
    v[SUM_INTERVAL] = PyFloat_FromDouble(s->loaded ? s->loaded_interval_s
                                         : (double)s->interval_ns / 1e9);
    v[SUM_EFFECTIVE] = PyFloat_FromDouble(effective_interval(s));
    v[SUM_BUDGET] = s->budget_percent > 0.0
        ? PyFloat_FromDouble(s->budget_percent) : Py_NewRef(Py_None);
    v[SUM_SAMPLER_CPU] = has_cpu ? PyFloat_FromDouble((double)cpu_ns / 1e9)
                                 : Py_NewRef(Py_None);
    v[SUM_SAMPLER_PERCENT] = has_percent ? PyFloat_FromDouble(percent)
                                         : Py_NewRef(Py_None);
    PyObject *d = PyDict_New();
    if (d == NULL) {
        goto done;
    }
    for (int i = 0; i < N_SUMMARY_KEYS; i++) {
        if (v[i] == NULL || PyDict_SetItem(d, st->summary_keys[i], v[i]) < 0) {
            Py_DECREF(d);
            goto done;
        }
    }
    result = d;
done:
    for (int i = 0; i < N_SUMMARY_KEYS; i++) {
        Py_XDECREF(v[i]);
    }
    return result;
}

static PyMethodDef session_methods[] = {
    {"start", (PyCFunction)(void (*)(void))session_start,
     METH_VARARGS | METH_KEYWORDS,
     "start(root_frame, coro=None, *, fold_code=None)\n--\n\nBind to the "
     "current context and start sampling; root_frame is the frame the tree "
     "starts at (or, with fold_code, the function it calls)."},
    {"set_label", (PyCFunction)session_set_label, METH_O,
     "set_label(label)\n--\n\nNames the session where it blocks the "
     "event loop for others (\"GET /export\")."},
    {"breakdown", (PyCFunction)session_breakdown, METH_NOARGS,
     "breakdown() -> where the time went: the JSON's \"breakdown\" and "
     "\"loop_block\" as a dict"},
    {"mark_response_end", (PyCFunction)session_mark_response_end,
     METH_NOARGS,
     "mark_response_end()\n--\n\nThe response has been sent: what runs "
     "from now on goes under [after response]."},
    {"name_root", (PyCFunction)session_name_root, METH_O,
     "name_root(label)\n--\n\nA stopped session's root becomes the request "
     "node `label`; the root frame's own time becomes [unsampled]."},
    {"tree_dict", (PyCFunction)session_tree_dict, METH_NOARGS,
     "tree_dict() -> the root node as nested dicts (the JSON schema's)"},
    {"stop", (PyCFunction)session_stop, METH_VARARGS,
     "stop(path_prefixes=None)\n--\n\nStop sampling and resolve names; "
     "path_prefixes shorten file names."},
    {"to_json", (PyCFunction)(void (*)(void))session_to_json,
     METH_VARARGS | METH_KEYWORDS, "to_json(meta=None, version='', as_bytes=False) -> str"},
    {"to_text", (PyCFunction)(void (*)(void))session_to_text,
     METH_VARARGS | METH_KEYWORDS,
     "to_text(meta=None, version='', ascii=False, color=False, "
     "min_percent=0.0, max_lines=0, log=False, library_prefixes=()) -> str"},
    {"to_html", (PyCFunction)(void (*)(void))session_to_html,
     METH_VARARGS | METH_KEYWORDS,
     "to_html(head, tail, meta=None, version='', as_bytes=False) -> str"},
    {"to_speedscope", (PyCFunction)(void (*)(void))session_to_speedscope,
     METH_VARARGS | METH_KEYWORDS,
     "to_speedscope(meta=None, version='', as_bytes=False) -> str"},
    {"to_pprof", (PyCFunction)(void (*)(void))session_to_pprof,
     METH_VARARGS | METH_KEYWORDS,
     "to_pprof(meta=None, version='') -> bytes (gzipped profile.proto)"},
    {"to_collapsed", (PyCFunction)(void (*)(void))session_to_collapsed,
     METH_VARARGS | METH_KEYWORDS, "to_collapsed(as_bytes=False) -> str"},
    {"top_functions", (PyCFunction)session_top_functions, METH_VARARGS,
     "top_functions(n=3) -> [(name, self_wall_s)]"},
    {"summary", (PyCFunction)session_summary, METH_NOARGS,
     "summary() -> dict of totals, state and counters"},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot session_slots[] = {
    {Py_tp_doc, "One profiling session and its call tree."},
    {Py_tp_new, session_new},
    {Py_tp_dealloc, session_dealloc},
    {Py_tp_traverse, session_traverse},
    {Py_tp_clear, session_clear},
    {Py_tp_methods, session_methods},
    {0, NULL},
};

static PyType_Spec session_spec = {
    .name = "reqprof._core.Session",
    .basicsize = sizeof(rp_session),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = session_slots,
};

/* ---- module functions ---------------------------------------------------- */

static PyObject *
mod_hide_code(PyObject *m, PyObject *code)
{
    (void)m;
    if (!PyCode_Check(code)) {
        PyErr_SetString(PyExc_TypeError, "hide_code() takes a code object");
        return NULL;
    }
    if (rp_engine_hide_code(code) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
mod_add_dispatch_code(PyObject *m, PyObject *code)
{
    (void)m;
    if (!PyCode_Check(code)) {
        PyErr_SetString(PyExc_TypeError,
                        "add_dispatch_code() takes a code object");
        return NULL;
    }
    if (rp_engine_add_dispatch_code(code) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
mod_set_library_dirs(PyObject *m, PyObject *dirs)
{
    (void)m;
    if (rp_engine_set_library_dirs(dirs) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
mod_set_loop_busy(PyObject *m, PyObject *arg)
{
    (void)m;
    int on = PyObject_IsTrue(arg);
    if (on < 0) {
        return NULL;
    }
    rp_engine_set_loop_busy(on);
    Py_RETURN_NONE;
}

static PyObject *
mod_sample_now(PyObject *m, PyObject *Py_UNUSED(ignored))
{
    (void)m;
    rp_engine_sample_now();
    Py_RETURN_NONE;
}

static PyObject *
mod_stats(PyObject *m, PyObject *Py_UNUSED(ignored))
{
    (void)m;
    return rp_engine_stats();
}

static PyObject *
mod_sampler_alive(PyObject *m, PyObject *Py_UNUSED(ignored))
{
    (void)m;
    return PyBool_FromLong(rp_engine_thread_alive());
}

static PyObject *
mod_shutdown(PyObject *m, PyObject *Py_UNUSED(ignored))
{
    (void)m;
    rp_engine_shutdown();
    Py_RETURN_NONE;
}

static PyObject *
mod_after_fork_child(PyObject *m, PyObject *Py_UNUSED(ignored))
{
    (void)m;
    rp_engine_after_fork_child();
    Py_RETURN_NONE;
}

/* A meta value read from JSON as the Python value json.loads gives. */
static PyObject *
meta_value(const rp_meta_item *m)
{
    const char *s = m->value.s;
    PyObject *v = NULL;
    if (!m->is_literal) {
        v = PyUnicode_DecodeUTF8(s, (Py_ssize_t)m->value.len, "strict");
    }
    else if (strcmp(s, "true") == 0 || strcmp(s, "false") == 0) {
        v = PyBool_FromLong(s[0] == 't');
    }
    else if (strcmp(s, "null") == 0) {
        v = Py_NewRef(Py_None);
    }
    else if (strpbrk(s, ".eE") != NULL) {
        double d = PyOS_string_to_double(s, NULL, NULL);
        v = d == -1.0 && PyErr_Occurred() ? NULL : PyFloat_FromDouble(d);
    }
    else {
        v = PyLong_FromString(s, NULL, 10);
    }
    return v;
}

/* The meta dict of a loaded report. New reference, or NULL. */
static PyObject *
meta_to_dict(const rp_loaded *l)
{
    PyObject *d = PyDict_New();
    if (d == NULL) {
        goto error;
    }
    for (size_t i = 0; i < l->n_meta; i++) {
        const rp_meta_item *m = &l->meta[i];
        PyObject *k = PyUnicode_DecodeUTF8(m->key.s, (Py_ssize_t)m->key.len,
                                           "strict");
        PyObject *v = k != NULL ? meta_value(m) : NULL;
        int rc = v != NULL ? PyDict_SetItem(d, k, v) : -1;
        Py_XDECREF(k);
        Py_XDECREF(v);
        if (rc < 0) {
            goto error;
        }
    }
    return d;
error:
    Py_XDECREF(d);
    return NULL;
}

/* load_json(text) -> (Session, meta, reqprof_version): a stopped session
 * holding the profile of a JSON document (str or bytes). */
static PyObject *
mod_load_json(PyObject *m, PyObject *data)
{
    module_state *st = PyModule_GetState(m);
    const char *text;
    Py_ssize_t n;
    rp_loaded l;
    char err[256];
    int rc;
    PyObject *session = NULL, *meta = NULL, *version = NULL, *result = NULL;
    memset(&l, 0, sizeof(l));
    rp_symtab_init(&l.syms);
    if (PyUnicode_Check(data)) {
        text = PyUnicode_AsUTF8AndSize(data, &n);
    }
    else if (PyBytes_Check(data)) {
        text = PyBytes_AS_STRING(data);
        n = PyBytes_GET_SIZE(data);
    }
    else {
        PyErr_Format(PyExc_TypeError, "load_json() takes str or bytes, not %s",
                     Py_TYPE(data)->tp_name);
        text = NULL;
    }
    if (text == NULL) {
        goto done;
    }
    session = PyObject_CallNoArgs((PyObject *)st->session_type);
    if (session == NULL) {
        goto done;
    }
    /* The text is immutable (str's UTF-8 or bytes) and owned by the
     * caller; the reader touches no Python object. */
    Py_BEGIN_ALLOW_THREADS
    rc = rp_read_json(text, (size_t)n, &l, err, sizeof(err));
    Py_END_ALLOW_THREADS
    if (rc == RP_READ_NOMEM) {
        PyErr_NoMemory();
        goto done;
    }
    if (rc != RP_READ_OK) {
        PyErr_SetString(PyExc_ValueError, err);
        goto done;
    }
    meta = meta_to_dict(&l);
    version = PyUnicode_DecodeUTF8(l.version, (Py_ssize_t)strlen(l.version),
                                   "strict");
    if (meta == NULL || version == NULL) {
        goto done;
    }
    rp_session *s = (rp_session *)session;
    rp_tree_free(&s->tree);
    rp_symtab_free(&s->syms);
    s->tree = l.tree;               /* moved: the session owns them now */
    s->syms = l.syms;
    memset(&l.tree, 0, sizeof(l.tree));
    rp_symtab_init(&l.syms);
    s->state = RP_SESSION_STOPPED;
    s->resolved = 1;
    s->loaded = 1;
    s->started_at = l.started_at;
    s->loaded_duration_s = l.duration_s;
    s->loaded_interval_s = l.interval_s;
    s->loaded_effective_s = l.effective_interval_s;
    s->budget_percent = l.budget_percent;
    s->loaded_has_cpu = l.has_sampler_cpu;
    s->loaded_cpu_ns = l.sampler_cpu_ns;
    s->mode = (rp_mode)l.async_mode;
    s->max_depth = l.max_depth;
    s->truncated = l.truncated;
    s->loaded_gc_s = l.gc_s;
    s->loaded_response_s = l.response_s;
    s->undersampled = l.undersampled;
    s->loaded_block_s = l.loop_block_s;
    s->block_frame = l.loop_block_sym;
    s->block_line = l.loop_block_line;
    result = PyTuple_Pack(3, session, meta, version);
done:
    rp_loaded_free(&l);
    Py_XDECREF(session);
    Py_XDECREF(meta);
    Py_XDECREF(version);
    return result;
}

/* Files a directory holds, at most this many: an output directory that
 * holds more than this is not ours alone. */
#define SCAN_DIR_MAX_ENTRIES 100000

/* scan_dir(path, prefix) -> [(name, size, mtime)]: the regular files of
 * `path` named `prefix...`, listed and measured with the GIL let go once. */
static PyObject *
mod_scan_dir(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *path = NULL, *result = NULL;
    const char *prefix;
    rp_dir_list l = {0};
    int rc;
    if (!PyArg_ParseTuple(args, "O&s:scan_dir", PyUnicode_FSConverter, &path,
                          &prefix)) {
        return NULL;
    }
    const char *cpath = PyBytes_AS_STRING(path);
    Py_BEGIN_ALLOW_THREADS
    rc = rp_dir_scan(cpath, prefix, SCAN_DIR_MAX_ENTRIES, &l);
    Py_END_ALLOW_THREADS
    if (rc != 0) {
        errno = rc;
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path);
        goto done;
    }
    result = PyList_New((Py_ssize_t)l.n);
    if (result == NULL) {
        goto done;
    }
    for (size_t i = 0; i < l.n; i++) {
        PyObject *name = PyUnicode_DecodeFSDefault(l.items[i].name);
        PyObject *item = name == NULL ? NULL
            : Py_BuildValue("(OKd)", name, (unsigned long long)l.items[i].size,
                            l.items[i].mtime);
        Py_XDECREF(name);
        if (item == NULL) {
            Py_CLEAR(result);
            goto done;
        }
        PyList_SET_ITEM(result, (Py_ssize_t)i, item);
    }
done:
    rp_dir_list_free(&l);
    Py_DECREF(path);
    return result;
}

/* put_files(remove, files): removes the paths `remove`, then writes each
 * (tmp, path, data) of `files` to tmp and renames it to path, all with the
 * GIL let go once; OSError when it failed (nothing of `files` is left). */
static PyObject *
mod_put_files(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *remove_arg, *files_arg;
    PyObject *remove_seq = NULL, *files_seq = NULL, *result = NULL;
    PyObject **held = NULL;     /* the path bytes objects converted */
    size_t n_held = 0;
    const char **remove = NULL;
    rp_out_file *files = NULL;
    if (!PyArg_ParseTuple(args, "OO:put_files", &remove_arg, &files_arg)) {
        return NULL;
    }
    remove_seq = PySequence_Fast(remove_arg, "put_files() remove must be a sequence");
    files_seq = remove_seq == NULL ? NULL
        : PySequence_Fast(files_arg, "put_files() files must be a sequence");
    if (files_seq == NULL) {
        goto done;
    }
    Py_ssize_t n_remove = PySequence_Fast_GET_SIZE(remove_seq);
    Py_ssize_t n_files = PySequence_Fast_GET_SIZE(files_seq);
    held = PyMem_Calloc((size_t)(n_remove + 2 * n_files) + 1, sizeof(*held));
    remove = PyMem_Calloc((size_t)n_remove + 1, sizeof(*remove));
    files = PyMem_Calloc((size_t)n_files + 1, sizeof(*files));
    if (held == NULL || remove == NULL || files == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n_remove; i++) {
        if (!PyUnicode_FSConverter(PySequence_Fast_GET_ITEM(remove_seq, i),
                                   &held[n_held])) {
            goto done;
        }
        remove[i] = PyBytes_AS_STRING(held[n_held++]);
    }
    for (Py_ssize_t i = 0; i < n_files; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(files_seq, i);
        PyObject *tmp, *path, *data;
        if (!PyArg_ParseTuple(item, "OOS:put_files", &tmp, &path, &data)) {
            goto done;
        }
        if (!PyUnicode_FSConverter(tmp, &held[n_held])) {
            goto done;
        }
        files[i].tmp = PyBytes_AS_STRING(held[n_held++]);
        if (!PyUnicode_FSConverter(path, &held[n_held])) {
            goto done;
        }
        files[i].path = PyBytes_AS_STRING(held[n_held++]);
        /* `data` is immutable and `files_seq` keeps it alive */
        files[i].data = PyBytes_AS_STRING(data);
        files[i].len = (size_t)PyBytes_GET_SIZE(data);
    }
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = rp_put_files(remove, (size_t)n_remove, files, (size_t)n_files);
    Py_END_ALLOW_THREADS
    if (rc != 0) {
        errno = rc;
        PyErr_SetFromErrno(PyExc_OSError);
        goto done;
    }
    result = Py_NewRef(Py_None);
done:
    for (size_t i = 0; i < n_held; i++) {
        Py_DECREF(held[i]);
    }
    PyMem_Free(held);
    PyMem_Free(remove);
    PyMem_Free(files);
    Py_XDECREF(remove_seq);
    Py_XDECREF(files_seq);
    return result;
}

/* ---- the log record of a sampled request ---------------------------------- */

/* References log_record holds until it returns (the UTF-8 it hands the
 * writer lives in some of them). */
#define LOG_HELD 40

typedef struct held {
    PyObject *refs[LOG_HELD];
    int n;
} held;

/* Keeps `o` (a new reference, stolen; NULL passes an error on): `o`, or
 * NULL. */
static PyObject *
hold(held *k, PyObject *o)
{
    if (o != NULL && k->n == LOG_HELD) {
        Py_DECREF(o);
        PyErr_SetString(PyExc_RuntimeError, "reqprof: log_record: too many");
        return NULL;
    }
    if (o != NULL) {
        k->refs[k->n++] = o;
    }
    return o;
}

/* getattr(o, name, dflt), kept: borrowed from `k`, or NULL with an
 * exception. */
static PyObject *
attr_or(held *k, PyObject *o, PyObject *name, PyObject *dflt)
{
    PyObject *v = PyObject_GetAttr(o, name);
    if (v == NULL && PyErr_ExceptionMatches(PyExc_AttributeError)) {
        PyErr_Clear();
        v = Py_NewRef(dflt);
    }
    return hold(k, v);
}

/* meta.get(key) (NULL when missing), kept. 0, or -1 with an exception. */
static int
meta_get(held *k, PyObject *meta, PyObject *key, PyObject **out)
{
    PyObject *v = PyDict_GetItemWithError(meta, key);
    *out = v != NULL ? hold(k, Py_NewRef(v)) : NULL;
    return (v != NULL && *out == NULL) || PyErr_Occurred() ? -1 : 0;
}

/* The text of `v` for the writer: format(v) when `format`, else str(v), as
 * UTF-8 (lone surrogates in their 3-byte form), the owner kept. 0, or -1
 * with an exception. */
static int
text_of(held *k, PyObject *v, int format, rp_str *out)
{
    Py_ssize_t n;
    PyObject *s = hold(k, format ? PyObject_Format(v, NULL)
                          : PyUnicode_CheckExact(v) ? Py_NewRef(v)
                          : PyObject_Str(v));
    const char *u = s != NULL ? PyUnicode_AsUTF8AndSize(s, &n) : NULL;
    if (u == NULL && s != NULL
            && PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) {
        PyErr_Clear();
        PyObject *b = hold(k, PyUnicode_AsEncodedString(s, "utf-8",
                                                        "surrogatepass"));
        if (b != NULL) {
            u = PyBytes_AS_STRING(b);
            n = PyBytes_GET_SIZE(b);
        }
    }
    if (u == NULL) {
        return -1;
    }
    out->s = (char *)u;
    out->len = (size_t)n;
    return 0;
}

/* float(getattr(report, name, 0.0) or 0.0) into *out: 0, or -1. */
static int
float_attr(held *k, PyObject *report, PyObject *name, double *out)
{
    PyObject *v = attr_or(k, report, name, Py_False);
    int truth = v != NULL ? PyObject_IsTrue(v) : -1;
    PyObject *f = truth > 0 ? PyNumber_Float(v) : NULL;
    *out = f != NULL ? PyFloat_AS_DOUBLE(f) : 0.0;
    Py_XDECREF(f);
    return truth < 0 || (truth > 0 && f == NULL) ? -1 : 0;
}

/* What the record says of the report (its attributes, read as the Python
 * layer read them: a report built elsewhere may lack some) and of the
 * request (meta). Strings point into objects kept in `k`. */
typedef struct log_inputs {
    rp_log_head head;
    rp_log_request req;
    rp_str undersampled, exception, ended, trace_id;
    PyObject *samples;          /* int(report.samples or 0) */
    PyObject *undersampled_obj; /* report.undersampled_reason */
    PyObject *meta[N_REQUEST_ID - N_METHOD + 1];  /* meta.get(): NULL */
    rp_session *session;        /* a stopped session to read, or NULL */
} log_inputs;

#define META(in, name) ((in)->meta[(name) - N_METHOD])

static int
read_head(held *k, const module_state *st, PyObject *report, log_inputs *in)
{
    rp_log_head *h = &in->head;
    PyObject *v;
    int overflow, truth;
    /* int(report.samples or 0) */
    v = attr_or(k, report, st->names[N_SAMPLES], Py_False);
    truth = v != NULL ? PyObject_IsTrue(v) : -1;
    in->samples = truth < 0 ? NULL : hold(k, truth ? PyNumber_Long(v)
                                                   : PyLong_FromLong(0));
    if (in->samples == NULL || text_of(k, in->samples, 0, &h->samples) < 0) {
        return -1;
    }
    long long count = PyLong_AsLongLongAndOverflow(in->samples, &overflow);
    if (count == -1 && PyErr_Occurred()) {
        return -1;
    }
    h->sampled = overflow > 0 || (overflow == 0 && count > 0);
    h->one_sample = overflow == 0 && count == 1;
    if (float_attr(k, report, st->names[N_DURATION_S], &h->duration_s) < 0
            || float_attr(k, report, st->names[N_CPU_S], &h->cpu_s) < 0
            || float_attr(k, report, st->names[N_GC_S], &h->gc_s) < 0) {
        return -1;
    }
    /* float(report.response_s) unless None */
    v = attr_or(k, report, st->names[N_RESPONSE_S], Py_None);
    if (v == NULL) {
        return -1;
    }
    if (v != Py_None) {
        PyObject *f = PyNumber_Float(v);
        if (f == NULL) {
            return -1;
        }
        h->has_response = 1;
        h->response_s = PyFloat_AS_DOUBLE(f);
        Py_DECREF(f);
    }
    in->undersampled_obj = attr_or(k, report, st->names[N_UNDERSAMPLED_REASON],
                                   Py_None);
    truth = in->undersampled_obj != NULL
        ? PyObject_IsTrue(in->undersampled_obj) : -1;
    if (truth < 0 || (truth > 0 && text_of(k, in->undersampled_obj, 1,
                                           &in->undersampled) < 0)) {
        return -1;
    }
    h->undersampled = truth > 0 ? &in->undersampled : NULL;
    v = attr_or(k, report, st->names[N_TRUNCATED], Py_False);
    h->truncated = v != NULL ? PyObject_IsTrue(v) : -1;
    if (h->truncated < 0) {
        return -1;
    }
    /* The engine's data, when the report has a stopped session. */
    v = attr_or(k, report, st->names[N_SESSION], Py_None);
    if (v == NULL) {
        return -1;
    }
    if (PyObject_TypeCheck(v, st->session_type)
            && ((rp_session *)v)->resolved) {
        in->session = (rp_session *)v;
    }
    return 0;
}

/* Whether meta's `name` is there and true: 1, 0, or -1. */
static int
meta_true(log_inputs *in, int name)
{
    return META(in, name) != NULL ? PyObject_IsTrue(META(in, name)) : 0;
}

static int
read_request(held *k, const module_state *st, PyObject *meta,
             PyObject *trigger, log_inputs *in)
{
    rp_log_request *q = &in->req;
    int t;
    for (int name = N_METHOD; name <= N_REQUEST_ID; name++) {
        if (meta_get(k, meta, st->names[name], &META(in, name)) < 0) {
            return -1;
        }
    }
    /* meta.get("method", "?") */
    if (META(in, N_METHOD) != NULL) {
        if (text_of(k, META(in, N_METHOD), 0, &q->method) < 0) {
            return -1;
        }
    }
    else {
        q->method = (rp_str){"?", 1};
    }
    /* meta.get("route") or meta.get("path") or "?" */
    PyObject *target = NULL;
    if ((t = meta_true(in, N_ROUTE)) < 0) {
        return -1;
    }
    target = t ? META(in, N_ROUTE) : NULL;
    if (target == NULL && (t = meta_true(in, N_PATH)) != 0) {
        if (t < 0) {
            return -1;
        }
        target = META(in, N_PATH);
    }
    if (target == NULL) {
        q->target = (rp_str){"?", 1};
    }
    else if (text_of(k, target, 0, &q->target) < 0) {
        return -1;
    }
    /* f"{status}" unless None, and f"({trigger})" */
    PyObject *status = META(in, N_STATUS);
    if (status == NULL || status == Py_None) {
        q->status = (rp_str){"-", 1};
    }
    else if (text_of(k, status, 1, &q->status) < 0) {
        return -1;
    }
    if (text_of(k, trigger, 1, &q->trigger) < 0) {
        return -1;
    }
    if ((t = meta_true(in, N_EXCEPTION)) < 0
            || (t && text_of(k, META(in, N_EXCEPTION), 0, &in->exception) < 0)) {
        return -1;
    }
    q->exception = t ? &in->exception : NULL;
    if ((t = meta_true(in, N_ENDED)) < 0
            || (t && text_of(k, META(in, N_ENDED), 0, &in->ended) < 0)) {
        return -1;
    }
    q->ended = t ? &in->ended : NULL;
    if (t && (q->response_cut = meta_true(in, N_RESPONSE_CUT)) < 0) {
        return -1;
    }
    if ((t = meta_true(in, N_TRACE_ID)) < 0
            || (t && text_of(k, META(in, N_TRACE_ID), 0, &in->trace_id) < 0)
            || (t && text_of(k, META(in, N_SPAN_ID) != NULL
                                ? META(in, N_SPAN_ID) : Py_None,
                             0, &q->span_id) < 0)) {
        return -1;
    }
    q->trace_id = t ? &in->trace_id : NULL;
    return 0;
}

/* A str of names[span] (escaped, well-formed UTF-8). New reference. */
static PyObject *
span_str(const rp_buf *names, const rp_log_span *span)
{
    return PyUnicode_DecodeUTF8(span->len > 0 ? names->data + span->off : "",
                                (Py_ssize_t)span->len, NULL);
}

/* [[name, value], ...] of n spans and values. New reference. */
static PyObject *
pairs(const rp_buf *names, const rp_log_span *spans, const double *values,
      size_t n)
{
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; list != NULL && i < n; i++) {
        PyObject *name = span_str(names, &spans[i]);
        PyObject *item = name != NULL
            ? Py_BuildValue("[Nd]", name, values[i]) : NULL;
        if (item == NULL) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, item);
    }
    return list;
}

/* The record's `extra` fields, in the order the Python layer wrote them.
 * New reference. */
static PyObject *
log_extra(const module_state *st, const log_inputs *in, PyObject *trigger,
          const rp_log_fields *f, const rp_buf *names)
{
    const int keys[] = {
        X_TRIGGER, X_METHOD, X_PATH, X_ROUTE, X_STATUS, X_DURATION_MS,
        X_CPU_MS, X_SAMPLES, X_TRUNCATED, X_TOP, X_EXCEPTION, X_RESPONSE_MS,
        X_GC_MS, X_UNDERSAMPLED, X_LOOP_BUSY_MS, X_BLOCKERS, X_AWAITING_MS,
        X_RUNNING_MS, X_LOOP_BLOCK_MS, X_LOOP_BLOCK_AT, X_TRACE_ID,
        X_SPAN_ID, X_REQUEST_ID,
    };
    PyObject *values[] = {
        Py_NewRef(trigger),
        Py_XNewRef(META(in, N_METHOD)), Py_XNewRef(META(in, N_PATH)),
        Py_XNewRef(META(in, N_ROUTE)), Py_XNewRef(META(in, N_STATUS)),
        PyFloat_FromDouble(f->duration_ms), PyFloat_FromDouble(f->cpu_ms),
        Py_NewRef(in->samples), PyBool_FromLong(in->head.truncated),
        pairs(names, f->top_name, f->top_ms, f->n_top),
        Py_XNewRef(META(in, N_EXCEPTION)),
        in->head.has_response ? PyFloat_FromDouble(f->response_ms) : NULL,
        PyFloat_FromDouble(f->gc_ms), Py_NewRef(in->undersampled_obj),
        PyFloat_FromDouble(f->loop_busy_ms),
        pairs(names, f->blocker_name, f->blocker_share, f->n_blockers),
        PyFloat_FromDouble(f->awaiting_ms), PyFloat_FromDouble(f->running_ms),
        PyFloat_FromDouble(f->loop_block_ms),
        f->has_block_at ? span_str(names, &f->block_at) : NULL,
        Py_XNewRef(META(in, N_TRACE_ID)), Py_XNewRef(META(in, N_SPAN_ID)),
        Py_XNewRef(META(in, N_REQUEST_ID)),
    };
    /* The values that may be None (missing) or failed to be made. */
    const int optional[] = {1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0,
                            0, 0, 0, 1, 1, 1, 1};
    size_t n = sizeof(keys) / sizeof(keys[0]);
    PyObject *extra = PyErr_Occurred() ? NULL : PyDict_New();
    for (size_t i = 0; i < n; i++) {
        PyObject *v = values[i];
        if (v == NULL && !optional[i]) {
            Py_CLEAR(extra);    /* it could not be made: an exception is set */
        }
        if (extra != NULL && PyDict_SetItem(extra, st->names[keys[i]],
                                            v != NULL ? v : Py_None) < 0) {
            Py_CLEAR(extra);
        }
        Py_XDECREF(v);
    }
    return extra;
}

/* log_record(report, meta, trigger, max_lines, min_percent,
 * library_prefixes) -> (line, extra, tree): what the reporter logs for a
 * sampled request (rp_write_log). `tree` is the log-style text tree, or
 * None when the report has no call tree, max_lines is negative, or the
 * tree could not be written. */
static PyObject *
mod_log_record(PyObject *m, PyObject *args)
{
    module_state *st = PyModule_GetState(m);
    PyObject *report, *meta, *trigger, *prefixes, *result = NULL;
    PyObject *line_str = NULL, *extra = NULL, *tree_str = NULL;
    int max_lines, rc, want_tree;
    double min_percent;
    Py_ssize_t n_lib;
    held k = {{NULL}, 0};
    log_inputs in;
    rp_log_fields f;
    rp_buf line, names, tree;
    rp_str lib[MAX_LIB_PREFIXES];
    rp_text_opts o;
    rp_session *s;
    rp_report r;
    meta_list no_meta = {NULL, 0, NULL};
    rp_buf_init(&line, 0);
    rp_buf_init(&names, 0);
    rp_buf_init(&tree, MAX_OUTPUT_BYTES);
    memset(&in, 0, sizeof(in));
    if (!PyArg_ParseTuple(args, "OO!OidO!:log_record", &report, &PyDict_Type,
                          &meta, &trigger, &max_lines, &min_percent,
                          &PyTuple_Type, &prefixes)
            || (n_lib = lib_prefixes(prefixes, lib)) < 0
            || read_head(&k, st, report, &in) < 0
            || read_request(&k, st, meta, trigger, &in) < 0) {
        goto done;
    }
    o = (rp_text_opts){0, 0, min_percent,
                       max_lines > 0 ? (uint32_t)max_lines : 0u, 1, lib,
                       (size_t)n_lib};
    s = in.session;
    want_tree = s != NULL && max_lines >= 0 && in.head.sampled;
    if (s != NULL) {
        fill_report(s, &r, &no_meta, "");
    }
    /* Only C data from here on (the session is stopped, the strings are
     * kept): a large report does not stop the other threads. */
    if (s == NULL || s->tree.n_nodes < RP_GIL_FREE_WRITE_NODES) {
        rc = rp_write_log(&line, &names, want_tree ? &tree : NULL, &f,
                          s != NULL ? &r : NULL, &in.head, &in.req, &o);
    }
    else {
        Py_BEGIN_ALLOW_THREADS
        rc = rp_write_log(&line, &names, want_tree ? &tree : NULL, &f, &r,
                          &in.head, &in.req, &o);
        Py_END_ALLOW_THREADS
    }
    if (want_tree && RP_FAULT(RP_FAULT_REPORT)) {
        tree.failed = 1;    /* the tree's writer failed: logged without it */
    }
    if (rc < 0) {
        PyErr_NoMemory();
        goto done;
    }
    line_str = PyUnicode_DecodeUTF8(line.data ? line.data : "",
                                    (Py_ssize_t)line.len, "surrogatepass");
    extra = line_str != NULL ? log_extra(st, &in, trigger, &f, &names) : NULL;
    tree_str = !want_tree || tree.failed ? Py_NewRef(Py_None)
        : PyUnicode_DecodeUTF8(tree.data ? tree.data : "",
                               (Py_ssize_t)tree.len, "replace");
    if (line_str != NULL && extra != NULL && tree_str != NULL) {
        result = PyTuple_Pack(3, line_str, extra, tree_str);
    }
done:
    Py_XDECREF(line_str);
    Py_XDECREF(extra);
    Py_XDECREF(tree_str);
    for (int i = 0; i < k.n; i++) {
        Py_DECREF(k.refs[i]);
    }
    rp_buf_free(&line);
    rp_buf_free(&names);
    rp_buf_free(&tree);
    return result;
}

static PyMethodDef module_methods[] = {
    {"log_record", mod_log_record, METH_VARARGS,
     "log_record(report, meta, trigger, max_lines, min_percent, "
     "library_prefixes) -> (line, extra, tree or None): the summary line, "
     "extra fields and text tree the reporter logs for a sampled request"},
    {"put_files", mod_put_files, METH_VARARGS,
     "put_files(remove, files): remove paths, then write each (tmp, path, "
     "data) to tmp and rename it to path; all or nothing of files."},
    {"scan_dir", mod_scan_dir, METH_VARARGS,
     "scan_dir(path, prefix) -> [(name, size, mtime)]: the regular files of "
     "path whose names start with prefix, listed without the GIL."},
    {"hide_code", mod_hide_code, METH_O,
     "Leave frames of this code object out of every report."},
    {"add_dispatch_code", mod_add_dispatch_code, METH_O,
     "Mark this code object as thread-pool plumbing."},
    {"stats", mod_stats, METH_NOARGS, "Engine counters."},
    {"set_library_dirs", mod_set_library_dirs, METH_O,
     "The standard library's directories (library code, like site-packages)."},
    {"_set_loop_busy", mod_set_loop_busy, METH_O,
     "_set_loop_busy(on)\n--\n\nTurns the event loop's detection ([event "
     "loop busy], the loop block) on or off, for benchmarks (on by "
     "default)."},
    {"_sample_now", mod_sample_now, METH_NOARGS,
     "Take one tick now, on this thread, for every active session (tests)."},
    {"load_json", mod_load_json, METH_O,
     "load_json(text) -> (Session, meta, reqprof_version): a stopped session "
     "from a profile's JSON (str or bytes); ValueError when it is not one."},
    {"sampler_alive", mod_sampler_alive, METH_NOARGS,
     "Whether the sampler thread exists in this process."},
    {"_shutdown", mod_shutdown, METH_NOARGS,
     "Stop the sampler for good (registered with atexit)."},
    {"_after_fork_child", mod_after_fork_child, METH_NOARGS,
     "Fork hook: reset the engine in a child process."},
    {NULL, NULL, 0, NULL},
};

/* Calls module.func(*args) for registration; 0, or -1 with an exception. */
static int
call_in(const char *module, const char *func, PyObject *args,
        PyObject *kwargs)
{
    PyObject *mod = PyImport_ImportModule(module);
    if (mod == NULL) {
        return -1;
    }
    PyObject *f = PyObject_GetAttrString(mod, func);
    Py_DECREF(mod);
    if (f == NULL) {
        return -1;
    }
    PyObject *r = PyObject_Call(f, args, kwargs);
    Py_DECREF(f);
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}

static int
module_exec(PyObject *m)
{
    module_state *st = PyModule_GetState(m);
    const char *portable = getenv("REQPROF_PORTABLE");
    if (rp_engine_init(portable != NULL && portable[0] == '1') < 0) {
        return -1;
    }
    st->session_type = (PyTypeObject *)PyType_FromModuleAndSpec(
        m, &session_spec, NULL);
    if (st->session_type == NULL
            || PyModule_AddObjectRef(m, "Session",
                                     (PyObject *)st->session_type) < 0) {
        return -1;
    }
    st->aggregate_type = rp_pyaggregate_init(m);
    if (st->aggregate_type == NULL) {
        return -1;
    }
    for (int i = 0; i < LOG_NAMES; i++) {
        st->names[i] = PyUnicode_InternFromString(LOG_NAME_TEXT[i]);
        if (st->names[i] == NULL) {
            return -1;
        }
    }
    for (int i = 0; i < N_SUMMARY_KEYS; i++) {
        st->summary_keys[i] = PyUnicode_InternFromString(summary_names[i]);
        if (st->summary_keys[i] == NULL) {
            return -1;
        }
    }
    if (PyModule_AddStringConstant(m, "MODE", rp_engine_mode()) < 0
            || PyModule_AddIntConstant(m, "SCHEMA_VERSION",
                                       RP_SCHEMA_VERSION) < 0) {
        return -1;
    }
    int rc = -1;
    PyObject *shutdown = PyObject_GetAttrString(m, "_shutdown");
    PyObject *child = PyObject_GetAttrString(m, "_after_fork_child");
    PyObject *args = shutdown ? PyTuple_Pack(1, shutdown) : NULL;
    PyObject *noargs = PyTuple_New(0);
    PyObject *kwargs = child ? Py_BuildValue("{s:O}", "after_in_child", child)
                             : NULL;
    if (args != NULL && noargs != NULL && kwargs != NULL
            && call_in("atexit", "register", args, NULL) == 0
            && call_in("os", "register_at_fork", noargs, kwargs) == 0) {
        rc = 0;
    }
    Py_XDECREF(shutdown);
    Py_XDECREF(child);
    Py_XDECREF(args);
    Py_XDECREF(noargs);
    Py_XDECREF(kwargs);
    return rc;
}

static int
module_traverse(PyObject *m, visitproc visit, void *arg)
{
    module_state *st = PyModule_GetState(m);
    Py_VISIT(st->session_type);
    Py_VISIT(st->aggregate_type);
    for (int i = 0; i < N_SUMMARY_KEYS; i++) {
        Py_VISIT(st->summary_keys[i]);
    }
    return 0;
}

static int
module_clear(PyObject *m)
{
    module_state *st = PyModule_GetState(m);
    Py_CLEAR(st->session_type);
    Py_CLEAR(st->aggregate_type);
    for (int i = 0; i < LOG_NAMES; i++) {
        Py_CLEAR(st->names[i]);
    }
    for (int i = 0; i < N_SUMMARY_KEYS; i++) {
        Py_CLEAR(st->summary_keys[i]);
    }
    return 0;
}

static void
module_free(void *m)
{
    module_clear((PyObject *)m);
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
#ifdef Py_mod_multiple_interpreters
    {Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED},
#endif
#ifdef Py_mod_gil
    {Py_mod_gil, Py_MOD_GIL_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "reqprof._core",
    .m_doc = "reqprof's sampling engine, call trees and report writers.",
    .m_size = sizeof(module_state),
    .m_methods = module_methods,
    .m_slots = module_slots,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
    .m_free = module_free,
};

PyMODINIT_FUNC
PyInit__core(void)
{
    return PyModuleDef_Init(&module_def);
}

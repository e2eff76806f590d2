/* pyaggregate.c - `_core.Aggregate`: per-route aggregates (aggregate.c)
 * for Python, and the histogram functions the store's readers use.
 *
 * An Aggregate is fed stopped sessions (`add`: a request, counted, timed
 * and merged; `merge`: a stored profile's tree only) and read back as a
 * list of routes and, per route, a report (JSON or pprof) of its merged
 * tree. Everything runs with the GIL held; `add` allocates no Python
 * object and does no I/O, so request threads call it at the end of a
 * profile.
 */
#include "pyaggregate.h"

#include "aggregate.h"
#include "compat.h"
#include "hist.h"
#include "session.h"
#include "writers.h"

#define DEFAULT_ROUTES 500u
#define DEFAULT_NODES 5000u
#define DEFAULT_BYTES ((size_t)64 << 20)

typedef struct rp_pyagg {
    PyObject_HEAD
    rp_agg agg;
    PyTypeObject *session_type;     /* strong */
} rp_pyagg;

static PyObject *
agg_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"max_routes", "max_nodes", "max_bytes", NULL};
    unsigned int max_routes = DEFAULT_ROUTES, max_nodes = DEFAULT_NODES;
    Py_ssize_t max_bytes = (Py_ssize_t)DEFAULT_BYTES;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|IIn:Aggregate", kwlist,
                                     &max_routes, &max_nodes, &max_bytes)) {
        return NULL;
    }
    if (max_routes < 1 || max_nodes < 1 || max_bytes < 4096) {
        PyErr_SetString(PyExc_ValueError, "Aggregate: max_routes and max_nodes must be "
                        ">= 1, max_bytes >= 4096");
        return NULL;
    }
    PyObject *module = PyType_GetModule(type);
    PyObject *session_type = module ? PyObject_GetAttrString(module, "Session") : NULL;
    if (session_type == NULL) {
        return NULL;
    }
    rp_pyagg *self = (rp_pyagg *)type->tp_alloc(type, 0);
    if (self == NULL) {
        Py_DECREF(session_type);
        return NULL;
    }
    self->session_type = (PyTypeObject *)session_type;
    if (rp_agg_init(&self->agg, max_routes, max_nodes, (size_t)max_bytes) < 0) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    return (PyObject *)self;
}

static void
agg_dealloc(rp_pyagg *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    rp_agg_free(&self->agg);
    Py_CLEAR(self->session_type);
    tp->tp_free(self);
    Py_DECREF(tp);
}

/* The stopped session `obj`, or NULL with an exception set. */
static rp_session *
stopped_session(rp_pyagg *self, PyObject *obj)
{
    if (!PyObject_TypeCheck(obj, self->session_type)) {
        PyErr_Format(PyExc_TypeError, "a Session, not %.80s", Py_TYPE(obj)->tp_name);
        return NULL;
    }
    rp_session *s = (rp_session *)obj;
    if (!s->resolved) {
        PyErr_SetString(PyExc_RuntimeError, "reqprof: the session has not been stopped");
        return NULL;
    }
    return s;
}

/* add(session, method, route, duration_s, cpu_s, error) -> route index */
static PyObject *
agg_add(rp_pyagg *self, PyObject *args)
{
    PyObject *obj;
    const char *method, *route;
    Py_ssize_t method_len, route_len;
    double duration, cpu;
    int error;
    if (!PyArg_ParseTuple(args, "Os#s#ddp:add", &obj, &method, &method_len, &route,
                          &route_len, &duration, &cpu, &error)) {
        return NULL;
    }
    rp_session *s = obj == Py_None ? NULL : stopped_session(self, obj);
    if (s == NULL && obj != Py_None) {
        return NULL;
    }
    uint64_t duration_ns = duration > 0 ? (uint64_t)(duration * 1e9) : 0;
    uint64_t cpu_ns = cpu > 0 ? (uint64_t)(cpu * 1e9) : 0;
    uint32_t i = rp_agg_add(&self->agg, method, (size_t)method_len, route, (size_t)route_len,
                            s ? &s->tree : NULL, s ? &s->syms : NULL, duration_ns, cpu_ns,
                            error);
    if (i == RP_NONE) {
        return PyErr_NoMemory();
    }
    return PyLong_FromUnsignedLong(i);
}

/* merge(session, method, route): a stored profile's tree only. */
static PyObject *
agg_merge(rp_pyagg *self, PyObject *args)
{
    PyObject *obj;
    const char *method, *route;
    Py_ssize_t method_len, route_len;
    if (!PyArg_ParseTuple(args, "Os#s#:merge", &obj, &method, &method_len, &route,
                          &route_len)) {
        return NULL;
    }
    rp_session *s = stopped_session(self, obj);
    if (s == NULL) {
        return NULL;
    }
    if (rp_agg_merge(&self->agg, method, (size_t)method_len, route, (size_t)route_len,
                     &s->tree, &s->syms) == RP_NONE) {
        return PyErr_NoMemory();
    }
    Py_RETURN_NONE;
}

static PyObject *
hist_bytes(const uint64_t *counts)
{
    rp_buf b;
    rp_buf_init(&b, 0);
    PyObject *out = NULL;
    if (counts == NULL || rp_hist_encode(&b, counts) == 0) {
        out = PyBytes_FromStringAndSize(b.data ? b.data : "", (Py_ssize_t)b.len);
    }
    else {
        PyErr_NoMemory();
    }
    rp_buf_free(&b);
    return out;
}

/* routes() -> [(method, route, count, errors, wall_s, cpu_s, max_ms,
 * latency bytes, has_profile)] in index order. */
static PyObject *
agg_routes(rp_pyagg *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *list = PyList_New(0);
    if (list == NULL) {
        return NULL;
    }
    for (uint32_t i = 0; i < self->agg.n_routes; i++) {
        const rp_route_agg *r = &self->agg.routes[i];
        PyObject *latency = hist_bytes(r->hist);
        PyObject *item = latency == NULL ? NULL : Py_BuildValue(
            "(s#s#KKdddNO)", r->method.s, (Py_ssize_t)r->method.len, r->route.s,
            (Py_ssize_t)r->route.len, (unsigned long long)r->count,
            (unsigned long long)r->errors, (double)r->wall_ns / 1e9,
            (double)r->cpu_ns / 1e9, (double)r->max_us / 1e3, latency,
            r->has_tree ? Py_True : Py_False);
        if (item == NULL || PyList_Append(list, item) < 0) {
            Py_XDECREF(item);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(item);
    }
    return list;
}

/* Writes route `index`'s merged tree as a report (JSON or pprof). */
static PyObject *
agg_write(rp_pyagg *self, PyObject *args, PyObject *kwargs, int pprof)
{
    static char *kwlist[] = {"index", "started_at", "version", NULL};
    unsigned int index;
    double started_at = 0.0;
    const char *version = "";
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "I|ds", kwlist, &index, &started_at,
                                     &version)) {
        return NULL;
    }
    if (index >= self->agg.n_routes || !self->agg.routes[index].has_tree) {
        PyErr_SetString(PyExc_IndexError, "no profile for this route");
        return NULL;
    }
    const rp_route_agg *r = &self->agg.routes[index];
    char count[32], errors[32];
    snprintf(count, sizeof(count), "%llu", (unsigned long long)r->count);
    snprintf(errors, sizeof(errors), "%llu", (unsigned long long)r->errors);
    rp_meta_item meta[5] = {
        {{"trigger", 7}, {"aggregate", 9}, 0},
        {{"method", 6}, r->method, 0},
        {{"route", 5}, r->route, 0},
        {{"requests", 8}, {count, strlen(count)}, 1},
        {{"errors", 6}, {errors, strlen(errors)}, 1},
    };
    rp_report rep;
    memset(&rep, 0, sizeof(rep));
    rep.tree = &r->tree;
    rep.syms = &self->agg.syms;
    rep.version = version;
    rep.started_at = started_at;
    rep.duration_s = (double)r->wall_ns / 1e9;
    rep.async_mode = "enabled";
    rep.truncated = r->tree.truncated;
    rep.meta = meta;
    rep.n_meta = 5;
    rp_buf b;
    rp_buf_init(&b, (size_t)1 << 30);
    int rc;
    if (r->tree.n_nodes < RP_GIL_FREE_WRITE_NODES) {
        rc = pprof ? rp_write_pprof(&b, &rep) : rp_write_json(&b, &rep);
    }
    else {
        Py_BEGIN_ALLOW_THREADS
        rc = pprof ? rp_write_pprof(&b, &rep) : rp_write_json(&b, &rep);
        Py_END_ALLOW_THREADS
    }
    PyObject *out = NULL;
    if (rc < 0 || b.failed) {
        PyErr_NoMemory();
    }
    else if (pprof) {
        out = PyBytes_FromStringAndSize(b.data ? b.data : "", (Py_ssize_t)b.len);
    }
    else {
        out = PyUnicode_DecodeUTF8(b.data ? b.data : "", (Py_ssize_t)b.len, "replace");
    }
    rp_buf_free(&b);
    return out;
}

static PyObject *
agg_route_json(rp_pyagg *self, PyObject *args, PyObject *kwargs)
{
    return agg_write(self, args, kwargs, 0);
}

static PyObject *
agg_route_pprof(rp_pyagg *self, PyObject *args, PyObject *kwargs)
{
    return agg_write(self, args, kwargs, 1);
}

/* Most labels a pushed profile carries (Pyroscope accepts 30 per series). */
#define PUSH_MAX_LABELS 32

/* Route `index`'s merged tree as a profile to push: wall and cpu only, the
 * interval's time and duration, `labels` ((name, value) str pairs) on
 * every sample, at most `max_samples` samples (the lightest left out).
 * Returns (gzipped bytes, size before gzip, samples left out, their wall
 * seconds). */
static PyObject *
agg_route_push(rp_pyagg *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"index", "time_s", "duration_s", "labels", "max_samples",
                             "version", "period_s", NULL};
    unsigned int index;
    double time_s, duration_s;
    PyObject *labels, *seq = NULL, *out = NULL;
    unsigned long long max_samples = 0;
    const char *version = "";
    double period_s = 0.0;
    rp_meta_item meta[PUSH_MAX_LABELS];
    rp_buf b;
    rp_buf_init(&b, (size_t)1 << 30);
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "IddO|Ksd:route_push", kwlist, &index,
                                     &time_s, &duration_s, &labels, &max_samples, &version,
                                     &period_s)) {
        goto done;
    }
    if (index >= self->agg.n_routes || !self->agg.routes[index].has_tree) {
        PyErr_SetString(PyExc_IndexError, "no profile for this route");
        goto done;
    }
    seq = PySequence_Fast(labels, "labels must be a sequence of (name, value) pairs");
    if (seq == NULL) {
        goto done;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n > PUSH_MAX_LABELS) {
        PyErr_SetString(PyExc_ValueError, "too many labels");
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        /* The strings are borrowed from `seq`, which lives to the end. */
        PyObject *pair = PySequence_Fast_GET_ITEM(seq, i);
        Py_ssize_t klen, vlen;
        const char *k, *v;
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2
                || !PyUnicode_Check(PyTuple_GET_ITEM(pair, 0))
                || !PyUnicode_Check(PyTuple_GET_ITEM(pair, 1))) {
            PyErr_SetString(PyExc_TypeError, "labels must be (str, str) pairs");
            goto done;
        }
        k = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(pair, 0), &klen);
        v = k ? PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(pair, 1), &vlen) : NULL;
        if (v == NULL) {
            goto done;
        }
        meta[i].key.s = (char *)(uintptr_t)k;
        meta[i].key.len = (size_t)klen;
        meta[i].value.s = (char *)(uintptr_t)v;
        meta[i].value.len = (size_t)vlen;
        meta[i].is_literal = 0;
    }
    const rp_route_agg *r = &self->agg.routes[index];
    rp_report rep;
    memset(&rep, 0, sizeof(rep));
    rep.tree = &r->tree;
    rep.syms = &self->agg.syms;
    rep.version = version;
    rep.started_at = time_s;
    rep.duration_s = duration_s;
    rep.interval_s = period_s;
    rep.async_mode = "enabled";
    rep.truncated = r->tree.truncated;
    rep.meta = meta;
    rep.n_meta = (size_t)n;
    rp_pprof_opts o;
    memset(&o, 0, sizeof(o));
    o.wall_cpu_only = 1;
    o.max_samples = max_samples;
    int rc;
    if (r->tree.n_nodes < RP_GIL_FREE_WRITE_NODES) {
        rc = rp_write_pprof_opts(&b, &rep, &o);
    }
    else {
        Py_BEGIN_ALLOW_THREADS
        rc = rp_write_pprof_opts(&b, &rep, &o);
        Py_END_ALLOW_THREADS
    }
    if (rc < 0 || b.failed) {
        PyErr_NoMemory();
        goto done;
    }
    out = Py_BuildValue("(y#nKd)", b.data ? b.data : "", (Py_ssize_t)b.len,
                        (Py_ssize_t)o.raw_len, (unsigned long long)o.trimmed,
                        (double)o.trimmed_wall_ns / 1e9);
done:
    Py_XDECREF(seq);
    rp_buf_free(&b);
    return out;
}

static PyObject *
agg_stats(rp_pyagg *self, PyObject *Py_UNUSED(ignored))
{
    return Py_BuildValue("{s:n,s:n,s:K,s:K,s:I}", "bytes", (Py_ssize_t)self->agg.bytes,
                         "max_bytes", (Py_ssize_t)self->agg.max_bytes, "requests",
                         (unsigned long long)self->agg.requests, "trees_dropped",
                         (unsigned long long)self->agg.trees_dropped, "routes",
                         self->agg.n_routes);
}

static PyMethodDef agg_methods[] = {
    {"add", (PyCFunction)agg_add, METH_VARARGS,
     "add(session, method, route, duration_s, cpu_s, error) -> route index: counts a "
     "request and merges its stopped session's tree (session None: counted only)"},
    {"merge", (PyCFunction)agg_merge, METH_VARARGS,
     "merge(session, method, route): merges a stopped session's tree (not counted)"},
    {"routes", (PyCFunction)agg_routes, METH_NOARGS,
     "routes() -> [(method, route, count, errors, wall_s, cpu_s, max_ms, latency, "
     "has_profile)]"},
    {"route_json", (PyCFunction)(void (*)(void))agg_route_json, METH_VARARGS | METH_KEYWORDS,
     "route_json(index, started_at=0.0, version='') -> str: the route's merged profile"},
    {"route_pprof", (PyCFunction)(void (*)(void))agg_route_pprof,
     METH_VARARGS | METH_KEYWORDS,
     "route_pprof(index, started_at=0.0, version='') -> bytes (gzipped profile.proto)"},
    {"route_push", (PyCFunction)(void (*)(void))agg_route_push,
     METH_VARARGS | METH_KEYWORDS,
     "route_push(index, time_s, duration_s, labels, max_samples=0, version='', period_s=0.0) -> "
     "(gzipped profile.proto, size before gzip, samples left out, their wall seconds): "
     "wall and cpu only, labels on every sample"},
    {"stats", (PyCFunction)agg_stats, METH_NOARGS, "stats() -> dict"},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot agg_slots[] = {
    {Py_tp_new, agg_new},
    {Py_tp_dealloc, agg_dealloc},
    {Py_tp_methods, agg_methods},
    {Py_tp_doc, "Aggregate(max_routes=500, max_nodes=5000, max_bytes=64 MiB): requests "
                "merged per route (method, route template), with latency histograms."},
    {0, NULL},
};

static PyType_Spec agg_spec = {
    .name = "reqprof._core.Aggregate",
    .basicsize = sizeof(rp_pyagg),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = agg_slots,
};

/* ---- histograms ---------------------------------------------------------- */

/* hist_merge(iterable of bytes) -> bytes */
static PyObject *
hist_merge(PyObject *Py_UNUSED(module), PyObject *iterable)
{
    uint64_t *counts = calloc(RP_HIST_BUCKETS, sizeof(uint64_t));
    PyObject *it = counts ? PyObject_GetIter(iterable) : NULL;
    PyObject *item = NULL, *out = NULL;
    if (counts == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (it == NULL) {
        goto done;
    }
    while ((item = PyIter_Next(it)) != NULL) {
        char *data;
        Py_ssize_t n;
        if (PyBytes_AsStringAndSize(item, &data, &n) < 0) {
            goto done;
        }
        if (rp_hist_decode_add(counts, (const unsigned char *)data, (size_t)n) < 0) {
            PyErr_SetString(PyExc_ValueError, "not a reqprof latency histogram");
            goto done;
        }
        Py_CLEAR(item);
    }
    if (!PyErr_Occurred()) {
        out = hist_bytes(counts);
    }
done:
    Py_XDECREF(item);
    Py_XDECREF(it);
    free(counts);
    return out;
}

/* hist_quantiles(data, qs) -> (count, [value_us, ...]) */
static PyObject *
hist_quantiles(PyObject *Py_UNUSED(module), PyObject *args)
{
    const char *data;
    Py_ssize_t n;
    PyObject *qs, *seq = NULL, *values = NULL, *out = NULL;
    if (!PyArg_ParseTuple(args, "y#O:hist_quantiles", &data, &n, &qs)) {
        return NULL;
    }
    uint64_t *counts = calloc(RP_HIST_BUCKETS, sizeof(uint64_t));
    if (counts == NULL) {
        return PyErr_NoMemory();
    }
    if (rp_hist_decode_add(counts, (const unsigned char *)data, (size_t)n) < 0) {
        PyErr_SetString(PyExc_ValueError, "not a reqprof latency histogram");
        goto done;
    }
    seq = PySequence_Fast(qs, "hist_quantiles: a sequence of quantiles");
    if (seq == NULL) {
        goto done;
    }
    values = PyList_New(PySequence_Fast_GET_SIZE(seq));
    if (values == NULL) {
        goto done;
    }
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        double q = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(seq, i));
        if (q == -1.0 && PyErr_Occurred()) {
            goto done;
        }
        PyObject *v = PyFloat_FromDouble(rp_hist_quantile(counts, q));
        if (v == NULL) {
            goto done;
        }
        PyList_SET_ITEM(values, i, v);
    }
    out = Py_BuildValue("(KO)", (unsigned long long)rp_hist_total(counts), values);
done:
    Py_XDECREF(seq);
    Py_XDECREF(values);
    free(counts);
    return out;
}

static PyMethodDef hist_functions[] = {
    {"hist_merge", (PyCFunction)hist_merge, METH_O,
     "hist_merge(iterable of bytes) -> bytes: latency histograms added together"},
    {"hist_quantiles", (PyCFunction)hist_quantiles, METH_VARARGS,
     "hist_quantiles(data, qs) -> (count, [microseconds per quantile])"},
    {NULL, NULL, 0, NULL},
};

PyTypeObject *
rp_pyaggregate_init(PyObject *m)
{
    if (PyModule_AddFunctions(m, hist_functions) < 0) {
        return NULL;
    }
    PyTypeObject *type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &agg_spec, NULL);
    if (type == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(m, "Aggregate", (PyObject *)type) < 0) {
        Py_DECREF(type);
        return NULL;
    }
    return type;
}

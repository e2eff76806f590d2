/* compat.h - every CPython internal the engine touches, one function each.
 *
 * The rest of the engine includes only the public API and calls these.
 * compat.c picks, by PY_VERSION_HEX, a fast path for the CPython versions
 * it knows (reading `_PyInterpreterFrame` chains and generator frames, the
 * GIL-drop request) and a portable path on public APIs for any other one.
 * The portable path can also be forced at run time (REQPROF_PORTABLE=1) so
 * the test suite covers it on every version.
 *
 * All functions need the GIL unless said otherwise, and none raises: on
 * trouble they return "nothing found" and leave no exception set.
 */
#ifndef RP_COMPAT_H
#define RP_COMPAT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

/* ---- public API differences between versions, for every file ---------- */

/* PyFrameObject and PyFrame_Type are in frameobject.h before 3.11. */
#if PY_VERSION_HEX < 0x030B0000
#  include <frameobject.h>
#endif

/* Py_NewRef / Py_XNewRef and PyModule_AddObjectRef arrived in 3.10. */
#if PY_VERSION_HEX < 0x030A0000
static inline PyObject *
rp_new_ref(PyObject *o)
{
    Py_INCREF(o);
    return o;
}
static inline PyObject *
rp_xnew_ref(PyObject *o)
{
    Py_XINCREF(o);
    return o;
}
#  define Py_NewRef(o) rp_new_ref((PyObject *)(o))
#  define Py_XNewRef(o) rp_xnew_ref((PyObject *)(o))
static inline int
PyModule_AddObjectRef(PyObject *m, const char *name, PyObject *value)
{
    Py_XINCREF(value);
    int rc = PyModule_AddObject(m, name, value);
    if (rc < 0) {
        Py_XDECREF(value);
    }
    return rc;
}
#endif

/* The member types of object slots: Py_T_OBJECT_EX in Python.h from 3.12,
 * T_OBJECT_EX in structmember.h before. */
#if PY_VERSION_HEX >= 0x030C0000
#  define RP_T_OBJECT_EX Py_T_OBJECT_EX
#  define RP_T_OBJECT _Py_T_OBJECT
#else
#  include <structmember.h>
#  define RP_T_OBJECT_EX T_OBJECT_EX
#  define RP_T_OBJECT T_OBJECT
#endif

/* An ASCII str's characters, read in place: 1 with *text and *len set, 0
 * for any other str. Before 3.12 a str may not be "ready" (the deprecated
 * PyUnicode_FromUnicode(NULL, n) made such ones): those are never read in
 * place. */
static inline int
rp_ascii_text(PyObject *s, const char **text, Py_ssize_t *len)
{
#if PY_VERSION_HEX < 0x030C0000
    if (!PyUnicode_IS_READY(s)) {
        return 0;
    }
#endif
    if (!PyUnicode_IS_ASCII(s)) {
        return 0;
    }
    *text = (const char *)PyUnicode_DATA(s);
    *len = PyUnicode_GET_LENGTH(s);
    return 1;
}

/* Saving the pending exception around work that may set one: PyErr_Fetch
 * is deprecated from 3.12, which has PyErr_GetRaisedException. */
#if PY_VERSION_HEX >= 0x030C0000
typedef struct rp_saved_error {
    PyObject *exc;
} rp_saved_error;
#  define RP_ERROR_SAVE(e) ((e)->exc = PyErr_GetRaisedException())
#  define RP_ERROR_RESTORE(e) PyErr_SetRaisedException((e)->exc)
#else
typedef struct rp_saved_error {
    PyObject *type, *value, *tb;
} rp_saved_error;
#  define RP_ERROR_SAVE(e) PyErr_Fetch(&(e)->type, &(e)->value, &(e)->tb)
#  define RP_ERROR_RESTORE(e) PyErr_Restore((e)->type, (e)->value, (e)->tb)
#endif

/* ---- CPython internals, one function each ------------------------------ */

/* One frame as the sampler records it. */
typedef struct rp_frame {
    PyCodeObject *code;     /* borrowed: the frame holds it */
    const void *key;        /* identity of this activation, stable while it
                               runs or is suspended (compare only) */
    int32_t lasti;          /* byte offset of the current instruction,
                               -1 when unknown */
    int32_t is_entry;       /* called from C (1), from Python (0), or
                               unknown on the portable path (0) */
} rp_frame;

/* The path in use and what it needs; lives in the engine's state struct
 * and is passed to every function below that depends on the path. */
typedef struct rp_compat {
    int fast;               /* 1: internals of a known CPython */
    PyInterpreterState *interp; /* the one the engine serves */
    PyObject *names[6];     /* interned attribute names (portable path) */
    int snapshots;          /* fault-safe reads work (rp_compat_snapshot) */
} rp_compat;

/* Chooses the path once, at module init (GIL held: the current
 * interpreter is the one served): `force_portable` selects the public APIs
 * even where the fast path is known. Returns 0, or -1 with an exception
 * set. */
int rp_compat_init(rp_compat *c, int force_portable);
void rp_compat_clear(rp_compat *c);
/* A short description of the mode, for logs and stats. */
const char *rp_compat_mode(const rp_compat *c);

/* Asks the thread holding the GIL to drop it at its next safe point (the
 * GIL-drop request and eval breaker). No-op on the portable path. Called
 * WITHOUT the GIL, from the sampler thread. */
void rp_compat_request_gil(const rp_compat *c, PyInterpreterState *interp);

/* Withdraws a GIL-drop request nobody needs any more (called by the GIL
 * holder). The eval breaker is left set: a spurious check is harmless and
 * the next GIL hand-over recomputes it. No-op on the portable path. */
void rp_compat_withdraw_gil_request(const rp_compat *c,
                                    PyInterpreterState *interp);

/* How many times the GIL changed hands so far (a counter to compare), or 0
 * on the portable path. No GIL needed: a racy read is fine for a hint. */
unsigned long rp_compat_gil_switches(const rp_compat *c);

/* Whether the runtime is finalizing (then the GIL must not be taken).
 * No GIL needed. */
int rp_compat_finalizing(void);

/* The identity key of a frame object's activation: what rp_frame.key will
 * hold for it while it runs. */
const void *rp_compat_frame_key(const rp_compat *c, PyFrameObject *f);

/* Walks the frames of `ts`, innermost first, into `buf` (capacity *cap,
 * grown with realloc when needed, at most `max_frames`). Returns how many
 * frames were stored; sets *more when the stack is deeper than that (the
 * outermost ones are then missing). On allocation failure keeps what fits.
 * `ts` must not be running (the caller holds the GIL). */
size_t rp_compat_walk(const rp_compat *c, PyThreadState *ts, rp_frame **buf,
                      size_t *cap, size_t max_frames, int *more);

/* The identity key (as rp_frame.key) of the innermost frame `ts` runs, or
 * NULL when it runs none. `ts` is the calling thread's or is not running. */
const void *rp_compat_top_frame_key(const rp_compat *c, PyThreadState *ts);

/* Walks on from the frame whose key is `key` (taken from a frame object
 * that stays alive meanwhile, and that has not run since), appending to
 * `buf` from index `n` as rp_compat_walk does. Returns the new count. */
size_t rp_compat_walk_from(const rp_compat *c, const void *key,
                           rp_frame **buf, size_t *cap, size_t n,
                           size_t max_frames, int *more);

/* For a suspended coroutine, generator or async generator `obj`: stores its
 * frame in *out and returns 1. Returns 0 when `obj` is not one of those or
 * is not suspended (created, running or finished). */
int rp_compat_coro_frame(const rp_compat *c, PyObject *obj, rp_frame *out);

/* What the suspended coroutine/generator `obj` is awaiting (`cr_await`,
 * `gi_yieldfrom`, `ag_await`): a borrowed reference (the suspended frame
 * holds it), or NULL. */
PyObject *rp_compat_coro_awaiting(const rp_compat *c, PyObject *obj);

/* Up to `max` objects held by the local variables (cells dereferenced)
 * of the suspended coroutine/generator `obj`, borrowed (the suspended
 * frame holds them) into `out`; returns how many. The portable path reads
 * f_locals (a dict up to 3.12, a proxy over the frame after). */
size_t rp_compat_coro_locals(const rp_compat *c, PyObject *obj,
                             PyObject **out, size_t max);

/* The next item of set or frozenset `set` from *pos (start at 0): 1 with
 * *key borrowed, 0 at the end. Runs no Python code. */
int rp_compat_set_next(PyObject *set, Py_ssize_t *pos, PyObject **key);

/* ---- stacks read without the GIL (snapshots) ---------------------------
 *
 * While the sampler waits for the GIL, the holder's frame chain is frozen
 * when it runs one long C call (the chain changes only if that code calls
 * back into Python or lets the GIL go), and so is every other thread's
 * until it takes the GIL. These read chains WITHOUT the GIL,
 * every word through a fault-safe read (process_vm_readv on our own pid):
 * nothing read is dereferenced here, and a snapshot whose thread or GIL
 * moved meanwhile is discarded. A snapshot's code pointers are not known
 * to be alive: the caller accepts a frame only once it has proven (with
 * the GIL) that its code pointer is a live code object, and only then
 * calls rp_compat_snapshot_frame. */

/* One frame of a snapshot, as read: nothing in it is known to be alive. */
typedef struct rp_raw_frame {
    const void *code;       /* the code object it runs, unverified */
    const void *key;        /* the frame (as rp_frame.key) */
    const void *instr;      /* its instruction pointer, unverified */
    int32_t is_entry;
    int32_t in_gen;         /* owned by a generator (never incomplete) */
} rp_raw_frame;

/* Whether snapshots can be taken: the fast path of a version that has
 * them, and a fault-safe read that works here (probed by
 * rp_compat_init). No GIL needed. */
int rp_compat_can_snapshot(const rp_compat *c);

/* The last snapshot kept in a buffer: while no thread took the GIL since
 * (its switch number is the same), the chain of a thread that did not
 * hold it is the one in the buffer; the holder's is when it is still in
 * the same innermost frame at the same instruction. */
typedef struct rp_snap_hint {
    int valid;              /* the buffer holds the snapshot below */
    int holder;             /* the thread held the GIL then */
    unsigned long switches; /* the GIL's switch number then */
    const void *ts;         /* the thread (an address, compared only) */
    uint64_t ts_id;
    const void *ctx;        /* its context (tstate->context), an address */
    const void *top, *instr;
    size_t n;               /* frames in the buffer */
} rp_snap_hint;

/* Reads, WITHOUT the GIL, the frame chain of the thread whose state is
 * `thread` (an address: it may have ended) into `out` (capacity `max`),
 * innermost first, unless `hint` says `out` holds it already. A thread
 * other than the GIL's holder cannot move its frames (it has to take the
 * GIL first, which the switch number shows); the holder, while the
 * sampler waits, is in one C call (its innermost frame and instruction are
 * checked again after the walk). Returns 1 with `hint` describing the
 * chain now in `out` (PyThreadState.id, the context the thread ran in,
 * the number of frames); 0 when
 * there is nothing to read (the thread is the last holder of a GIL that
 * is free now: it could take it back unseen); -1 when a read faulted, the
 * stack is deeper than `max`, or the GIL changed hands or the holder
 * moved during the walk (a torn read). Never blocks, never raises. */
int rp_compat_snapshot(const rp_compat *c, const void *thread,
                       rp_raw_frame *out, size_t max, rp_snap_hint *hint);

/* With the GIL, for a snapshot frame whose code pointer the caller proved
 * a live code object: 1 with `out` set, 0 for a frame not started yet
 * (not part of the stack, as rp_compat_walk skips it), -1 when its
 * instruction is not in that code (a torn or stale read: drop the
 * snapshot). */
int rp_compat_snapshot_frame(const rp_compat *c, const rp_raw_frame *raw,
                             rp_frame *out);

/* CPU time consumed so far by the thread of `ts`, in nanoseconds, or -1
 * when it cannot be read (thread gone, no clock). No GIL needed but `ts`
 * must stay valid. */
int64_t rp_compat_thread_cpu_ns(PyThreadState *ts);

/* The identity of the variables of context `ctx`: its immutable map,
 * shared by its copies until one of them sets a variable. To compare
 * only; NULL when not known (the portable path, or not a context). */
const void *rp_compat_context_vars(const rp_compat *c, PyObject *ctx);

/* The value of `var` in context `ctx` (any thread's), borrowed, or NULL. */
PyObject *rp_compat_context_get(PyObject *ctx, PyObject *var);

#endif

/* compat.c - the one file that reads CPython internals (see compat.h).
 *
 * Fast path (CPython 3.11, 3.12 and 3.13): frames are read straight from the
 * `_PyInterpreterFrame` chain of each thread state and from the frame
 * embedded in each generator/coroutine, with no allocation; the GIL-drop
 * request makes the running thread yield the GIL at its next safe point.
 * Portable path (any version, or forced): frame objects through the public
 * API (PyThreadState_GetFrame / PyFrame_GetBack materialise them, which
 * allocates), coroutine attributes through getattr, plain GIL waits.
 *
 * Also: the locals of a suspended coroutine (child tasks the frame holds),
 * walking on from a given frame (a greenlet's switcher), the innermost
 * frame's key, and set iteration without Python code.
 *
 * Snapshots (every fast path): the GIL holder's frame chain read without the
 * GIL while the sampler waits for it, through process_vm_readv on our own
 * pid (a fault-safe read: a freed page gives an error, never a crash),
 * kept only when the GIL did not change hands and the holder's innermost
 * frame and instruction did not move meanwhile (see rp_compat_snapshot).
 *
 * Everything here runs with the GIL held except rp_compat_request_gil,
 * rp_compat_finalizing, rp_compat_thread_cpu_ns, rp_compat_can_snapshot
 * and rp_compat_snapshot. Nothing here raises:
 * errors from the public API are cleared and reported as "not found".
 */

#include <patchlevel.h>     /* PY_VERSION_HEX, before Python.h */

/* Which CPython versions the fast path knows. Each flag names the layout
 * it depends on; a version not listed runs the portable path. */
#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000
/* 3.11: _PyInterpreterFrame chain via tstate->cframe->current_frame,
 * frame->previous / is_entry / prev_instr, gi_iframe + gi_frame_state,
 * RESUME(_QUICK) oparg >= 2 after a yield inside `await` / `yield from`,
 * interp->ceval.gil_drop_request + eval_breaker,
 * _PyRuntime.ceval.gil.switch_number. */
#  define RP_FAST_311 1
#elif PY_VERSION_HEX >= 0x030C0000 && PY_VERSION_HEX < 0x030D0000
/* 3.12: as 3.11, but C-stack shim frames (owner FRAME_OWNED_BY_CSTACK)
 * mark entries instead of is_entry, RESUME may be INSTRUMENTED_RESUME
 * (sys.monitoring), _Py_CODEUNIT is a union, and the GIL is per
 * interpreter (interp->ceval.gil->switch_number). */
#  define RP_FAST_312 1
#elif PY_VERSION_HEX >= 0x030D0000 && PY_VERSION_HEX < 0x030E0000 \
    && !defined(Py_GIL_DISABLED)
/* 3.13: as 3.12, but the chain starts at tstate->current_frame, a frame
 * holds f_executable (a code object, or None in a shim) and instr_ptr (the
 * instruction executing, not the previous one), a suspended generator
 * inside `await` / `yield from` has its own state
 * (FRAME_SUSPENDED_YIELD_FROM), and the GIL-drop request is a bit of the
 * holder's own tstate->eval_breaker, set under the GIL's mutex as
 * ceval_gil.c's signal_active_thread does. The free-threaded build has
 * no GIL to ask for: portable. */
#  define RP_FAST_313 1
#endif
#if defined(RP_FAST_311) || defined(RP_FAST_312) || defined(RP_FAST_313)
#  define RP_FAST 1
#  define Py_BUILD_CORE 1
#endif
/* Snapshots: every fast path (3.11, 3.12: the chain through
 * tstate->cframe, frame->f_code and prev_instr; 3.13: current_frame,
 * f_executable and instr_ptr). */
#if defined(RP_FAST)
#  define RP_SNAPSHOT 1
#endif

#include "compat.h"

#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef RP_FAST
#  include <opcode.h>
#  include <internal/pycore_context.h>
#  include <internal/pycore_frame.h>
#  include <internal/pycore_interp.h>
#  include <internal/pycore_runtime.h>
#endif
#ifdef RP_FAST_313
#  include <internal/pycore_ceval.h>
#endif
#ifdef RP_SNAPSHOT
#  include <stddef.h>
#  include <sys/uio.h>
#endif

/* The few places the fast path differs between the versions it knows. */
#if defined(RP_FAST_311)
#  define RP_SHIM_FRAME(f) 0
#  define RP_ENTRY_FRAME(f) ((f)->is_entry)
#  define RP_IS_RESUME(op) ((op) == RESUME || (op) == RESUME_QUICK)
#  define RP_GIL(c) (&_PyRuntime.ceval.gil)
#elif defined(RP_FAST_312)
#  define RP_SHIM_FRAME(f) ((f)->owner == FRAME_OWNED_BY_CSTACK)
#  define RP_ENTRY_FRAME(f) \
    ((f)->previous != NULL && (f)->previous->owner == FRAME_OWNED_BY_CSTACK)
#  define RP_IS_RESUME(op) ((op) == RESUME || (op) == INSTRUMENTED_RESUME)
#  define RP_GIL(c) ((c)->interp->ceval.gil)
#elif defined(RP_FAST_313)
#  define RP_SHIM_FRAME(f) ((f)->owner == FRAME_OWNED_BY_CSTACK)
#  define RP_ENTRY_FRAME(f) \
    ((f)->previous != NULL && (f)->previous->owner == FRAME_OWNED_BY_CSTACK)
#  define RP_GIL(c) ((c)->interp->ceval.gil)
#endif

/* The frame chain's head, a frame's code object (NULL if it holds none),
 * the next instruction of a suspended frame, and whether a generator is
 * suspended (and suspended inside `await` / `yield from`). */
#if defined(RP_FAST_313)
#  define RP_CURRENT_FRAME(ts) ((ts)->current_frame)
#  define RP_FRAME_CODE(f) \
    (PyCode_Check((f)->f_executable) ? (PyCodeObject *)(f)->f_executable \
                                     : NULL)
#  define RP_GEN_SUSPENDED(state) FRAME_STATE_SUSPENDED(state)
#elif defined(RP_FAST)
#  define RP_CURRENT_FRAME(ts) \
    ((ts)->cframe ? (ts)->cframe->current_frame : NULL)
#  define RP_FRAME_CODE(f) ((f)->f_code)
#  define RP_GEN_SUSPENDED(state) ((state) == FRAME_SUSPENDED)
#endif

/* `_Py_IsFinalizing` became public as `Py_IsFinalizing` in 3.13. */
#if PY_VERSION_HEX >= 0x030D0000
#  define RP_IS_FINALIZING() Py_IsFinalizing()
#else
#  define RP_IS_FINALIZING() _Py_IsFinalizing()
#endif

/* PyFrame_GetLasti (byte offset) is public since 3.11; before, f_lasti was
 * a byte offset in 3.9 and an instruction index in 3.10. */
#if PY_VERSION_HEX >= 0x030B0000
#  define RP_FRAME_LASTI(f) PyFrame_GetLasti(f)
#elif PY_VERSION_HEX >= 0x030A0000
#  define RP_FRAME_LASTI(f) ((f)->f_lasti < 0 ? -1 : (f)->f_lasti * 2)
#else
#  define RP_FRAME_LASTI(f) ((f)->f_lasti)
#endif

/* _PySet_NextEntry moved to the internal headers in 3.13 (still
 * exported). */
#if PY_VERSION_HEX >= 0x030D0000
PyAPI_FUNC(int) _PySet_NextEntry(PyObject *set, Py_ssize_t *pos,
                                 PyObject **key, Py_hash_t *hash);
#endif

/* tstate->native_thread_id exists since 3.11. */
#if PY_VERSION_HEX >= 0x030B0000
#  define RP_HAVE_NATIVE_TID 1
#endif

enum { N_CR_FRAME, N_CR_AWAIT, N_GI_FRAME, N_GI_YIELDFROM, N_AG_FRAME,
       N_AG_AWAIT };
static const char *const attr_names[6] = {
    "cr_frame", "cr_await", "gi_frame", "gi_yieldfrom", "ag_frame",
    "ag_await",
};

#ifdef RP_SNAPSHOT
/* The address of `field` in the `type` at `ptr`, in integers: `ptr` was
 * read without the GIL and may point anywhere. */
#define RP_AT(ptr, type, field) \
    ((const void *)((uintptr_t)(ptr) + offsetof(type, field)))

/* Copies `len` bytes at `src` in our own memory, or fails (-1) when any of
 * it is not mapped: never faults. */
static int
safe_read(pid_t pid, void *dst, const void *src, size_t len)
{
    struct iovec local = {dst, len};
    struct iovec remote = {(void *)(uintptr_t)src, len};
    return process_vm_readv(pid, &local, 1, &remote, 1, 0) == (ssize_t)len
        ? 0 : -1;
}
#endif

int
rp_compat_init(rp_compat *c, int force_portable)
{
    memset(c, 0, sizeof(*c));
    c->interp = PyThreadState_Get()->interp;
#ifdef RP_FAST
    c->fast = !force_portable;
#else
    (void)force_portable;
    c->fast = 0;
#endif
    for (int i = 0; i < 6; i++) {
        c->names[i] = PyUnicode_InternFromString(attr_names[i]);
        if (c->names[i] == NULL) {
            rp_compat_clear(c);
            return -1;
        }
    }
#ifdef RP_SNAPSHOT
    /* process_vm_readv may be missing or filtered (seccomp). */
    int probe = 1, copy = 0;
    c->snapshots = c->fast && safe_read(getpid(), &copy, &probe,
                                        sizeof(probe)) == 0 && copy == 1;
#endif
    return 0;
}

void
rp_compat_clear(rp_compat *c)
{
    for (int i = 0; i < 6; i++) {
        Py_CLEAR(c->names[i]);
    }
}

const char *
rp_compat_mode(const rp_compat *c)
{
    return c->fast ? "fast (CPython internals)" : "portable (public API)";
}

void
rp_compat_request_gil(const rp_compat *c, PyInterpreterState *interp)
{
#if defined(RP_FAST_313)
    if (c->fast) {
        /* The holder is read and flagged under the GIL's mutex, so it
         * holds the GIL (it cannot be a thread state being deleted); it
         * sees the bit at its next check, drops the GIL and waits until
         * another thread (we) took it. take_gil clears the taker's bit. */
        struct _gil_runtime_state *gil = interp->ceval.gil;
        pthread_mutex_lock(&gil->mutex);
        if (_Py_atomic_load_int_relaxed(&gil->locked)) {
            PyThreadState *holder =
                (PyThreadState *)_Py_atomic_load_ptr_relaxed(&gil->last_holder);
            if (holder != NULL && holder->interp == interp) {
                _Py_set_eval_breaker_bit(holder, _PY_GIL_DROP_REQUEST_BIT);
            }
        }
        pthread_mutex_unlock(&gil->mutex);
    }
#elif defined(RP_FAST)
    if (c->fast) {
        /* What ceval_gil.h's SET_GIL_DROP_REQUEST does: the holder sees
         * the breaker at its next check, drops the GIL and waits until
         * another thread (we) took it. take_gil resets the request. */
        _Py_atomic_store_relaxed(&interp->ceval.gil_drop_request, 1);
        _Py_atomic_store_relaxed(&interp->ceval.eval_breaker, 1);
    }
#else
    (void)c;
    (void)interp;
#endif
}

void
rp_compat_withdraw_gil_request(const rp_compat *c, PyInterpreterState *interp)
{
#if defined(RP_FAST_313)
    if (c->fast) {
        /* A request that reached us while we took the GIL would make our
         * next release wait until another thread takes it; one on a
         * thread that let the GIL go by itself is cleared when it takes
         * the GIL back. */
        (void)interp;
        _Py_unset_eval_breaker_bit(PyThreadState_Get(),
                                   _PY_GIL_DROP_REQUEST_BIT);
    }
#elif defined(RP_FAST)
    if (c->fast) {
        _Py_atomic_store_relaxed(&interp->ceval.gil_drop_request, 0);
    }
#else
    (void)c;
    (void)interp;
#endif
}

unsigned long
rp_compat_gil_switches(const rp_compat *c)
{
#ifdef RP_FAST
    if (c->fast) {
        return *(volatile unsigned long *)&RP_GIL(c)->switch_number;
    }
#else
    (void)c;
#endif
    return 0;
}

int
rp_compat_can_snapshot(const rp_compat *c)
{
    return c->fast && c->snapshots;
}

#ifdef RP_SNAPSHOT
/* The GIL's state, compared before and after a snapshot. */
typedef struct gil_view {
    unsigned long switches;     /* bumped by every hand-over */
    uintptr_t holder;           /* the thread state that took it last */
    int locked;
} gil_view;

static void
gil_view_read(const rp_compat *c, gil_view *v)
{
    (void)c;    /* (3.11: the runtime's GIL) */
    struct _gil_runtime_state *gil = RP_GIL(c);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    v->switches = __atomic_load_n(&gil->switch_number, __ATOMIC_ACQUIRE);
#  if defined(RP_FAST_313)
    v->locked = __atomic_load_n(&gil->locked, __ATOMIC_RELAXED);
    v->holder = (uintptr_t)__atomic_load_n(&gil->last_holder,
                                           __ATOMIC_RELAXED);
#  else
    v->locked = _Py_atomic_load_relaxed(&gil->locked);
    v->holder = _Py_atomic_load_relaxed(&gil->last_holder);
#  endif
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
}

/* A frame header copied by a snapshot: its code (unverified), the
 * instruction its LASTI counts from, and whether it is a shim frame. */
#  if defined(RP_FAST_313)
#    define RP_SNAP_CODE(fr) ((const void *)(fr).f_executable)
#    define RP_SNAP_INSTR(fr) ((const void *)(fr).instr_ptr)
#    define RP_SNAP_INSTR_FIELD instr_ptr
#  else
#    define RP_SNAP_CODE(fr) ((const void *)(fr).f_code)
#    define RP_SNAP_INSTR(fr) ((const void *)(fr).prev_instr)
#    define RP_SNAP_INSTR_FIELD prev_instr
#  endif
#  define RP_TOP_INSTR(f) RP_AT(f, _PyInterpreterFrame, RP_SNAP_INSTR_FIELD)
#  if defined(RP_FAST_311)
#    define RP_SHIM_OWNER(owner) 0
#  else
#    define RP_SHIM_OWNER(owner) ((owner) == FRAME_OWNED_BY_CSTACK)
#  endif

/* The innermost frame of thread state `ts`, read fault-safely into *top:
 * 0, or -1 when a read failed. */
static int
snapshot_top(pid_t pid, PyThreadState *ts, _PyInterpreterFrame **top)
{
#  if defined(RP_FAST_313)
    return safe_read(pid, top, RP_AT(ts, PyThreadState, current_frame),
                     sizeof(*top));
#  else
    _PyCFrame *cf;
    if (safe_read(pid, &cf, RP_AT(ts, PyThreadState, cframe),
                  sizeof(cf)) < 0 || cf == NULL) {
        return -1;
    }
    return safe_read(pid, top, RP_AT(cf, _PyCFrame, current_frame),
                     sizeof(*top));
#  endif
}
#endif

int
rp_compat_snapshot(const rp_compat *c, const void *thread, rp_raw_frame *out,
                   size_t max, rp_snap_hint *hint)
{
#ifdef RP_SNAPSHOT
    if (!c->fast || !c->snapshots || thread == NULL) {
        return 0;
    }
    pid_t pid = getpid();
    gil_view g0, g1;
    gil_view_read(c, &g0);
    PyThreadState *ts = (PyThreadState *)(uintptr_t)thread;
    /* The holder runs C code (it would have handed the GIL over at the
     * next bytecode); any other thread waits for the GIL or runs C code
     * without it, and cannot move its frames until it takes the GIL,
     * which changes the switch number (it is not the last holder). The
     * last holder without the GIL could take it back unseen: skipped. */
    int holder = (const void *)g0.holder == thread;
    if (holder && !g0.locked) {
        return 0;
    }
    _PyInterpreterFrame *top, *again;
    const void *top_instr = NULL;
    if (hint->valid && hint->ts == thread && hint->switches == g0.switches
            && hint->holder == holder) {
        if (!holder) {
            /* It has not taken the GIL since `out` was read. */
            return 1;
        }
        /* The holder kept the GIL since the chain in `out` was read: it is
         * still that chain if its innermost frame did not move (nor its
         * context). */
        PyObject *now_ctx;
        if (snapshot_top(pid, ts, &top) < 0 || top != hint->top
                || safe_read(pid, &now_ctx,
                             RP_AT(ts, PyThreadState, context),
                             sizeof(now_ctx)) < 0
                || (const void *)now_ctx != hint->ctx
                || (top != NULL
                    && (safe_read(pid, &top_instr, RP_TOP_INSTR(top),
                                  sizeof(top_instr)) < 0
                        || top_instr != hint->instr))) {
            goto walk;
        }
        gil_view_read(c, &g1);
        if (g1.switches != g0.switches || g1.holder != g0.holder
                || !g1.locked) {
            hint->valid = 0;
            return -1;
        }
        return 1;
    }
walk:
    hint->valid = 0;    /* `out` is overwritten from here on */
    PyInterpreterState *interp;
    uint64_t id;
    PyObject *ctx;
    if (safe_read(pid, &interp, RP_AT(ts, PyThreadState, interp),
                  sizeof(interp)) < 0
            || interp != c->interp
            || safe_read(pid, &id, RP_AT(ts, PyThreadState, id),
                         sizeof(id)) < 0
            || safe_read(pid, &ctx, RP_AT(ts, PyThreadState, context),
                         sizeof(ctx)) < 0
            || snapshot_top(pid, ts, &top) < 0) {
        return -1;
    }
    /* Only the frame's header: its locals are not read. */
    _PyInterpreterFrame fr;
    const size_t head = offsetof(_PyInterpreterFrame, localsplus);
    top_instr = NULL;
    size_t k = 0;
    size_t steps = 0;
    for (_PyInterpreterFrame *f = top; f != NULL; f = fr.previous) {
        if (++steps > 2 * max || safe_read(pid, &fr, f, head) < 0) {
            return -1;       /* a cycle (torn), or unmapped */
        }
        if (f == top) {
            top_instr = RP_SNAP_INSTR(fr);
        }
        if (RP_SHIM_OWNER(fr.owner)
                || RP_SNAP_CODE(fr) == (const void *)Py_None) {
            if (k > 0) {
                out[k - 1].is_entry = 1;    /* 3.12+: called from C */
            }
            continue;
        }
        if (k == max) {
            return -1;
        }
        rp_raw_frame *r = &out[k++];
        r->code = RP_SNAP_CODE(fr);
        r->key = f;
        r->instr = RP_SNAP_INSTR(fr);
#  if defined(RP_FAST_311)
        /* As a byte: a torn copy may hold any value, not a valid bool. */
        unsigned char entry;
        memcpy(&entry, &fr.is_entry, 1);
        r->is_entry = entry != 0;
#  else
        r->is_entry = 0;
#  endif
        r->in_gen = fr.owner == FRAME_OWNED_BY_GENERATOR;
    }
    /* No hand-over meanwhile, and the holder still in the same frame at
     * the same instruction: the chain read is the one it had throughout
     * (the holder's can only change below the top by returning, which
     * moves the top, or by running Python code, which would have seen the
     * GIL-drop request the sampler keeps pending and handed over). */
    if (snapshot_top(pid, ts, &again) < 0 || again != top) {
        return -1;
    }
    if (holder && top != NULL) {
        const void *instr;
        if (safe_read(pid, &instr, RP_TOP_INSTR(top), sizeof(instr)) < 0
                || instr != top_instr) {
            return -1;
        }
    }
    gil_view_read(c, &g1);
    if (g1.switches != g0.switches || g1.holder != g0.holder
            || (holder && !g1.locked)) {
        return -1;
    }
    hint->valid = 1;
    hint->holder = holder;
    hint->switches = g0.switches;
    hint->ts = ts;
    hint->ts_id = id;
    hint->ctx = ctx;
    hint->top = top;
    hint->instr = top_instr;
    hint->n = k;
    return 1;
#else
    (void)c;
    (void)thread;
    (void)out;
    (void)max;
    (void)hint;
    return 0;
#endif
}

int
rp_compat_snapshot_frame(const rp_compat *c, const rp_raw_frame *raw,
                         rp_frame *out)
{
#ifdef RP_SNAPSHOT
    (void)c;
    PyCodeObject *code = (PyCodeObject *)raw->code;
    if (code == NULL || !PyCode_Check(code)) {
        return -1;
    }
    /* Integer arithmetic: the pointer read may point anywhere. */
    intptr_t diff = (intptr_t)((uintptr_t)raw->instr
                               - (uintptr_t)_PyCode_CODE(code));
    if (diff % (intptr_t)sizeof(_Py_CODEUNIT) != 0) {
        return -1;
    }
    intptr_t idx = diff / (intptr_t)sizeof(_Py_CODEUNIT);
    if (idx < -1 || idx >= Py_SIZE(code)) {
        return -1;
    }
    if (!raw->in_gen && idx < code->_co_firsttraceable) {
        return 0;           /* as _PyFrame_IsIncomplete */
    }
    out->code = code;
    out->key = raw->key;
    out->lasti = (int32_t)(idx * (intptr_t)sizeof(_Py_CODEUNIT));
    out->is_entry = raw->is_entry;
    return 1;
#else
    (void)c;
    (void)raw;
    (void)out;
    return -1;
#endif
}

int
rp_compat_finalizing(void)
{
    return RP_IS_FINALIZING();
}

const void *
rp_compat_frame_key(const rp_compat *c, PyFrameObject *f)
{
#ifdef RP_FAST
    if (c->fast) {
        return f->f_frame;
    }
#else
    (void)c;
#endif
    return f;
}

/* Makes room for one more frame; 0, or -1 when it cannot grow. */
static int
reserve(rp_frame **buf, size_t *cap, size_t n, size_t max_frames)
{
    if (n < *cap) {
        return 0;
    }
    if (*cap >= max_frames) {
        return -1;
    }
    size_t new_cap = *cap ? *cap * 2 : 128;
    if (new_cap > max_frames) {
        new_cap = max_frames;
    }
    rp_frame *nb = realloc(*buf, new_cap * sizeof(rp_frame));
    if (nb == NULL) {
        return -1;
    }
    *buf = nb;
    *cap = new_cap;
    return 0;
}

#ifdef RP_FAST
static size_t
walk_fast_from(_PyInterpreterFrame *f, rp_frame **buf, size_t *cap,
               size_t n, size_t max_frames, int *more)
{
    for (; f != NULL; f = f->previous) {
        if (RP_SHIM_FRAME(f) || RP_FRAME_CODE(f) == NULL
                || _PyFrame_IsIncomplete(f)) {
            continue;
        }
        if (reserve(buf, cap, n, max_frames) < 0) {
            *more = 1;
            break;
        }
        rp_frame *r = &(*buf)[n++];
        r->code = RP_FRAME_CODE(f);
        r->key = f;
        r->lasti = _PyInterpreterFrame_LASTI(f) * (int)sizeof(_Py_CODEUNIT);
        r->is_entry = RP_ENTRY_FRAME(f);
    }
    return n;
}

static size_t
walk_fast(PyThreadState *ts, rp_frame **buf, size_t *cap, size_t max_frames,
          int *more)
{
    return walk_fast_from(RP_CURRENT_FRAME(ts), buf, cap, 0, max_frames,
                          more);
}
#endif


/* Walks from frame object `f` (a new reference, consumed) appending at n. */
static size_t
walk_portable_from(PyFrameObject *f, rp_frame **buf, size_t *cap, size_t n,
                   size_t max_frames, int *more)
{
    /* Each frame object is owned by its running frame, so a borrowed
     * pointer stays valid while we hold the GIL. */
    while (f != NULL) {
        if (reserve(buf, cap, n, max_frames) < 0) {
            *more = 1;
            Py_DECREF(f);
            break;
        }
        PyCodeObject *code = PyFrame_GetCode(f);
        rp_frame *r = &(*buf)[n++];
        r->code = code;
        r->key = f;
        r->lasti = RP_FRAME_LASTI(f);
        r->is_entry = 0;
        Py_DECREF(code);
        PyFrameObject *back = PyFrame_GetBack(f);
        Py_DECREF(f);
        f = back;
    }
    PyErr_Clear();
    return n;
}

static size_t
walk_portable(PyThreadState *ts, rp_frame **buf, size_t *cap,
              size_t max_frames, int *more)
{
    return walk_portable_from(PyThreadState_GetFrame(ts), buf, cap, 0,
                              max_frames, more);
}

size_t
rp_compat_walk_from(const rp_compat *c, const void *key, rp_frame **buf,
                    size_t *cap, size_t n, size_t max_frames, int *more)
{
    *more = 0;
    if (key == NULL) {
        return n;
    }
#ifdef RP_FAST
    if (c->fast) {
        return walk_fast_from((_PyInterpreterFrame *)key, buf, cap, n,
                              max_frames, more);
    }
#else
    (void)c;
#endif
    /* A frame object (the key of the portable path): someone holds it. */
    PyFrameObject *f = (PyFrameObject *)key;
    Py_INCREF(f);
    return walk_portable_from(f, buf, cap, n, max_frames, more);
}

size_t
rp_compat_walk(const rp_compat *c, PyThreadState *ts, rp_frame **buf,
               size_t *cap, size_t max_frames, int *more)
{
    *more = 0;
#ifdef RP_FAST
    if (c->fast) {
        return walk_fast(ts, buf, cap, max_frames, more);
    }
#else
    (void)c;
#endif
    return walk_portable(ts, buf, cap, max_frames, more);
}

const void *
rp_compat_top_frame_key(const rp_compat *c, PyThreadState *ts)
{
#ifdef RP_FAST
    if (c->fast) {
        _PyInterpreterFrame *f = RP_CURRENT_FRAME(ts);
        while (f != NULL && (RP_SHIM_FRAME(f) || RP_FRAME_CODE(f) == NULL
                             || _PyFrame_IsIncomplete(f))) {
            f = f->previous;
        }
        return f;
    }
#else
    (void)c;
#endif
    PyFrameObject *f = PyThreadState_GetFrame(ts);
    Py_XDECREF(f);      /* the running frame owns its frame object */
    PyErr_Clear();
    return f;
}

/* The index in attr_names of obj's frame attribute (the awaited one is the
 * next index), or -1 when obj is no generator-like object. */
static int
gen_kind(PyObject *obj)
{
    if (PyCoro_CheckExact(obj)) {
        return N_CR_FRAME;
    }
    if (PyGen_CheckExact(obj)) {
        return N_GI_FRAME;
    }
    if (PyAsyncGen_CheckExact(obj)) {
        return N_AG_FRAME;
    }
    return -1;
}

/* Portable: obj's frame object if obj is suspended (borrowed: the generator
 * owns it), else NULL. */
static PyFrameObject *
suspended_frame_portable(const rp_compat *c, PyObject *obj)
{
    int kind = gen_kind(obj);
    if (kind < 0) {
        return NULL;
    }
    PyObject *f = PyObject_GetAttr(obj, c->names[kind]);
    if (f == NULL) {
        PyErr_Clear();
        return NULL;
    }
    Py_DECREF(f);   /* owned by obj */
    if (!PyFrame_Check(f)) {
        return NULL;    /* None: finished */
    }
    /* A running generator is on a thread's stack; a created one has not
     * executed an instruction yet (lasti < 0). */
    PyObject *running = PyObject_GetAttrString(
        obj, kind == N_CR_FRAME ? "cr_running"
             : kind == N_GI_FRAME ? "gi_running" : "ag_running");
    if (running == NULL) {
        PyErr_Clear();
        return NULL;
    }
    int is_running = PyObject_IsTrue(running);
    Py_DECREF(running);
    if (is_running != 0) {
        PyErr_Clear();
        return NULL;
    }
    if (RP_FRAME_LASTI((PyFrameObject *)f) < 0) {
        return NULL;
    }
    return (PyFrameObject *)f;
}

int
rp_compat_coro_frame(const rp_compat *c, PyObject *obj, rp_frame *out)
{
#ifdef RP_FAST
    if (c->fast) {
        if (gen_kind(obj) < 0) {
            return 0;
        }
        PyGenObject *gen = (PyGenObject *)obj;
        if (!RP_GEN_SUSPENDED(gen->gi_frame_state)) {
            return 0;
        }
        _PyInterpreterFrame *f = (_PyInterpreterFrame *)gen->gi_iframe;
        if (RP_FRAME_CODE(f) == NULL) {
            return 0;
        }
        out->code = RP_FRAME_CODE(f);
        out->key = f;
        out->lasti = _PyInterpreterFrame_LASTI(f) * (int)sizeof(_Py_CODEUNIT);
        out->is_entry = 0;
        return 1;
    }
#endif
    PyFrameObject *f = suspended_frame_portable(c, obj);
    if (f == NULL) {
        return 0;
    }
    PyCodeObject *code = PyFrame_GetCode(f);
    out->code = code;
    Py_DECREF(code);    /* owned by the frame */
    out->key = rp_compat_frame_key(c, f);
    out->lasti = RP_FRAME_LASTI(f);
    out->is_entry = 0;
    return 1;
}

PyObject *
rp_compat_coro_awaiting(const rp_compat *c, PyObject *obj)
{
#ifdef RP_FAST
    if (c->fast) {
        /* _PyGen_yf (not exported): a suspended frame is inside `await` /
         * `yield from` when its state says so (3.13), or (3.11/3.12) when
         * the next instruction is a RESUME with oparg >= 2; the awaited
         * object is then on top of its stack. */
        if (gen_kind(obj) < 0) {
            return NULL;
        }
        PyGenObject *gen = (PyGenObject *)obj;
        _PyInterpreterFrame *f = (_PyInterpreterFrame *)gen->gi_iframe;
#  if defined(RP_FAST_313)
        if (gen->gi_frame_state != FRAME_SUSPENDED_YIELD_FROM
                || RP_FRAME_CODE(f) == NULL) {
            return NULL;
        }
#  else
        if (gen->gi_frame_state != FRAME_SUSPENDED) {
            return NULL;
        }
        _Py_CODEUNIT next = f->prev_instr[1];
        int op = _Py_OPCODE(next);
        if (!RP_IS_RESUME(op) || _Py_OPARG(next) < 2) {
            return NULL;
        }
#  endif
        if (f->stacktop <= RP_FRAME_CODE(f)->co_nlocalsplus) {
            return NULL;
        }
        return f->localsplus[f->stacktop - 1];
    }
#endif
    int kind = gen_kind(obj);
    if (kind < 0 || suspended_frame_portable(c, obj) == NULL) {
        return NULL;
    }
    PyObject *yf = PyObject_GetAttr(obj, c->names[kind + 1]);
    if (yf == NULL) {
        PyErr_Clear();
        return NULL;
    }
    Py_DECREF(yf);  /* the suspended frame's stack holds it */
    return yf == Py_None ? NULL : yf;
}

size_t
rp_compat_coro_locals(const rp_compat *c, PyObject *obj, PyObject **out,
                      size_t max)
{
    size_t n = 0;
#ifdef RP_FAST
    if (c->fast) {
        if (gen_kind(obj) < 0) {
            return 0;
        }
        PyGenObject *gen = (PyGenObject *)obj;
        if (!RP_GEN_SUSPENDED(gen->gi_frame_state)) {
            return 0;
        }
        _PyInterpreterFrame *f = (_PyInterpreterFrame *)gen->gi_iframe;
        if (RP_FRAME_CODE(f) == NULL) {
            return 0;
        }
        int nlocals = RP_FRAME_CODE(f)->co_nlocalsplus;
        for (int i = 0; i < nlocals && n < max; i++) {
            PyObject *v = f->localsplus[i];
            if (v != NULL && PyCell_Check(v)) {
                v = PyCell_GET(v);
            }
            if (v != NULL) {
                out[n++] = v;
            }
        }
        return n;
    }
#endif
    PyFrameObject *f = suspended_frame_portable(c, obj);
    if (f == NULL) {
        return 0;
    }
    PyObject *locals = PyObject_GetAttrString((PyObject *)f, "f_locals");
    if (locals == NULL) {
        PyErr_Clear();
        return 0;
    }
    if (PyDict_Check(locals)) {
        Py_ssize_t pos = 0;
        PyObject *k, *v;
        while (n < max && PyDict_Next(locals, &pos, &k, &v)) {
            out[n++] = v;   /* the frame's locals dict holds it */
        }
    }
    else {
        /* 3.13+: a proxy over the frame's variables (C, no Python code);
         * the values stay held by the frame once the list is gone. */
        PyObject *values = PyMapping_Values(locals);
        for (Py_ssize_t i = 0; values != NULL && PyList_Check(values)
                && i < PyList_GET_SIZE(values) && n < max; i++) {
            out[n++] = PyList_GET_ITEM(values, i);
        }
        Py_XDECREF(values);
        PyErr_Clear();
    }
    Py_DECREF(locals);      /* a dict stays owned by the frame */
    return n;
}

int
rp_compat_set_next(PyObject *set, Py_ssize_t *pos, PyObject **key)
{
    Py_hash_t hash;
    return PyAnySet_Check(set) ? _PySet_NextEntry(set, pos, key, &hash) : 0;
}

int64_t
rp_compat_thread_cpu_ns(PyThreadState *ts)
{
    clockid_t cid;
#ifdef RP_HAVE_NATIVE_TID
    /* The kernel's per-thread CPU clock id for a TID (what glibc's
     * pthread_getcpuclockid computes): unlike a pthread_t it cannot point
     * at freed memory; a dead thread just makes clock_gettime fail. */
    unsigned int tid = (unsigned int)ts->native_thread_id;
    if (tid == 0) {
        return -1;
    }
    cid = (clockid_t)((~tid << 3) | 6u);
#else
    if (pthread_getcpuclockid((pthread_t)ts->thread_id, &cid) != 0) {
        return -1;
    }
#endif
    struct timespec t;
    if (clock_gettime(cid, &t) != 0) {
        return -1;
    }
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

const void *
rp_compat_context_vars(const rp_compat *c, PyObject *ctx)
{
#ifdef RP_FAST
    if (c->fast && ctx != NULL && PyContext_CheckExact(ctx)) {
        return ((PyContext *)ctx)->ctx_vars;
    }
#else
    (void)c;
    (void)ctx;
#endif
    return NULL;
}

PyObject *
rp_compat_context_get(PyObject *ctx, PyObject *var)
{
    if (ctx == NULL || !PyContext_CheckExact(ctx)) {
        return NULL;
    }
    /* Contains first: a miss (the common case) then costs no exception. */
    int has = PySequence_Contains(ctx, var);
    if (has <= 0) {
        PyErr_Clear();
        return NULL;
    }
    PyObject *v = PyObject_GetItem(ctx, var);
    if (v == NULL) {
        PyErr_Clear();
        return NULL;
    }
    Py_DECREF(v);   /* the context's variable map holds it */
    return v;
}

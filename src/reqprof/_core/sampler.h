/* sampler.h - the engine: one sampler thread per process serving every
 * active session.
 *
 * All functions are called with the GIL held, from Python-facing code.
 */
#ifndef RP_SAMPLER_H
#define RP_SAMPLER_H

#include "session.h"

/* Sets the engine up (once per process; later calls return 0). `portable`
 * forces the public-API path. 0, or -1 with an exception set. */
int rp_engine_init(int portable);

/* Binds `s` to the current context and thread, with `root_frame` (a frame
 * object) as the root of its tree and `coro` (or NULL) as the coroutine of
 * the task it runs in, then starts sampling it. With `fold_code`, the
 * tree's root is that function instead, which the root frame calls (a
 * decorator's wrapper, whose frame is not shown). 0, or -1 with an
 * exception set (the session is then unchanged). */
int rp_engine_start(rp_session *s, PyFrameObject *root_frame, PyObject *coro,
                    PyCodeObject *fold_code);

/* Marks the end of the response: a last sample before it, and the samples
 * after it go under [after response]. Once; a no-op unless running. */
void rp_engine_mark_response_end(rp_session *s);

/* Stops sampling `s` and unbinds it: the time since its last tick is
 * [unsampled], and it is marked undersampled when it has too few samples
 * for its duration. Never fails; a no-op unless running. */
void rp_engine_stop(rp_session *s);

/* A tick now, on the calling thread, for every active session (tests:
 * with sessions of a long interval the sampler thread stays out of the
 * way, and attribution is checked tick by tick). */
void rp_engine_sample_now(void);

/* Turns the event loop's detection ([event loop busy] and the loop block)
 * on (the default) or off: benchmarks compare the tick with and without. */
void rp_engine_set_loop_busy(int on);

/* The library directories (a tuple of str, each ending with a separator)
 * besides site-packages: child tasks running app code are preferred when
 * waited time is split. 0, or -1 with an exception set. */
int rp_engine_set_library_dirs(PyObject *dirs);

/* Frames of `code` are left out of every path (profiler plumbing). */
int rp_engine_hide_code(PyObject *code);
/* Frames of `code` dispatch work (thread-pool plumbing, the event loop's
 * callback runner): a stack that does not hold a session's root starts
 * below the innermost of them. */
int rp_engine_add_dispatch_code(PyObject *code);

/* The CPU time the engine's threads (sampler and assist) have used, all
 * told: a running total, read atomically from any thread. */
uint64_t rp_engine_cpu_ns(void);

/* A new dict of counters (ticks, GIL waits, mode, ...). */
PyObject *rp_engine_stats(void);
/* Whether the sampler thread exists in this process. */
int rp_engine_thread_alive(void);
/* "fast (...)" or "portable (...)". */
const char *rp_engine_mode(void);

/* Interpreter exit (atexit): stops and joins the sampler thread; no
 * sampler starts after this. */
void rp_engine_shutdown(void);
/* In a forked child (os.register_at_fork): drops the sessions of threads
 * that do not exist here and restarts the sampler if sessions remain. */
void rp_engine_after_fork_child(void);

/* Fault injection, compiled in only with -DRP_FAULTS=1 (a test build):
 * makes the engine fail on purpose where real failures can happen, so the
 * tests can prove a host app survives them. REQPROF_FAULT, read at import,
 * lists the faults: "start" (Session.start raises), "sample" (the sampler
 * drops the sample and marks the report truncated, as when memory runs
 * out), "report" (writers raise MemoryError), "wedge" (the sampler thread
 * stops for 5 s holding its lock, as under a debugger), each optionally
 * ":N" (only the next N times, so profiling recovers afterwards),
 * comma-separated. */
enum {
    RP_FAULT_START, RP_FAULT_SAMPLE, RP_FAULT_REPORT, RP_FAULT_WEDGE,
    RP_FAULT_KINDS
};
#ifdef RP_FAULTS
/* Whether the fault `kind` strikes now (GIL held; the wedge fault is only
 * asked on the sampler thread, without it). */
int rp_engine_fault(int kind);
/* Replaces the faults with `spec` (REQPROF_FAULT's syntax). 0, or -1 with
 * a ValueError set. */
int rp_engine_set_faults(const char *spec);
#  define RP_FAULT(kind) rp_engine_fault(kind)
#else
#  define RP_FAULT(kind) 0
#endif

#endif

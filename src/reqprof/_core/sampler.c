/* sampler.c - the engine: one sampler thread, ticks, attribution.
 *
 * The whole mutable state of the engine is the one `engine` struct below.
 *
 * Threads and locks:
 * - The sampler thread (a pthread with its own PyThreadState) sleeps until
 *   the next tick on an absolute schedule, asks the running thread to drop
 *   the GIL (compat), takes the GIL, samples, releases it. It parks on
 *   `engine.cv` when a tick finds no session active. A session starting
 *   while it is not parked (waiting for a tick) needs no wake-up: it gets
 *   the next tick of that schedule, and the starting thread saves a futex
 *   call.
 * - When other threads compete for the GIL, the one drop request a tick
 *   makes can hand the GIL to one of them instead of the sampler, which
 *   then waits a whole switch interval (5 ms) or more. After such a wait
 *   (one in which the GIL went to another thread first: a long wait that
 *   ends with the holder handing the GIL to us is a long C call, which a
 *   helper cannot shorten and would only take CPU from) the sampler wakes
 *   a helper thread (the "assist" thread) that repeats
 *   the drop request every 50 us (backing off to 800 us while the GIL does
 *   not change hands: a long C call) while the sampler still waits, for the
 *   next ASSIST_TICKS ticks. The helper never takes the GIL. A request
 *   arriving when no one waits would make the running thread stop until
 *   the next tick, so it only requests under `assist_mu` while
 *   `gil_waiting` is set, and the sampler clears that flag under the same
 *   lock as soon as it holds the GIL, then withdraws any request left.
 * - Wait snapshots. Inside one long C call that holds the GIL (a big sum,
 *   json.dumps, a regex) no drop request is seen until it returns, and
 *   beside busy threads the GIL may go elsewhere for whole switch
 *   intervals: the sampler's wait spans ticks. Meanwhile the stacks of the
 *   threads it samples hardly move: the holder's is frozen while it runs
 *   one C call (it changes only if that code calls back into Python,
 *   which would see the pending request and hand over, or returns), and
 *   any other thread's until it takes the GIL. So a third thread, the
 *   "watch" thread, takes at each interval the wait misses a snapshot of
 *   each thread the last tick sampled for a session (and of each
 *   session's starting thread) WITHOUT the GIL (compat: fault-safe reads,
 *   a torn snapshot discarded), re-reading little while a stack stays
 *   put. It polls every WATCH_POLL_NS for a wait while sessions are
 *   active, at the interval for WATCH_HOT_NS after a wait that gave
 *   snapshots (a futex wake per tick would cost more than it gives), and
 *   parks when none is; the sampler publishes each wait
 *   (snap_begin/snap_end, under `assist_mu`) and, GIL held, records each
 *   run of alike snapshots of a thread on that stack with the time since
 *   the previous look, one sample per snapshot (each one is a look at the
 *   stack: a report's `samples` counts them), the rest of the tick's
 *   weight on the stack seen now (record_snapshots). A snapshot's code
 *   pointers are used only once proven live code objects (in the
 *   session's code table, or on the stack just walked), and one of a
 *   thread that was not holding the GIL (it may have taken it and run
 *   another request's task since) only when it runs through the session's
 *   root frame; otherwise its time goes to the next look, as before. The
 *   watch thread's CPU counts as the assist thread's.
 *   REQPROF_WAIT_SNAPSHOTS=0 turns it off.
 * - `engine.mu` guards only what the threads read without the GIL: the
 *   stop flags, the number of active sessions, the interval and the assist
 *   sequence. It is never held while waiting for the GIL, so fork and
 *   shutdown cannot deadlock. A thread serving a request waits for it at
 *   most LOCK_WAIT_NS (lock_briefly): past that the sampler is wedged, and
 *   the schedule is published without it, atomically.
 * - The engine's own CPU: the sampler thread reads its CPU clock
 *   (CLOCK_THREAD_CPUTIME_ID) once per tick, the assist thread once per
 *   wake-up, each on itself, and adds what it used to its counter
 *   atomically (`sampler_cpu_ns`, `assist_cpu_ns`); a session takes their
 *   sum at start and stop, so it gets the engine's whole CPU while it was
 *   active, shared with the sessions active beside it.
 * - The overhead budget (budget.c), the tightest one the active sessions
 *   asked (`budget_ns`, published with the interval): the sampler thread
 *   alone owns `engine.budget`, feeds it that CPU sum after each tick, and
 *   schedules its ticks at the interval it gives (`effective_ns`), the
 *   asked one lengthened while the engine's CPU is over the budget. Each
 *   tick's interval is added to the sessions it samples, for the mean
 *   their reports give (`effective_interval_s`).
 * - Everything else (sessions, scratch buffers, tables) is touched only
 *   with the GIL held. A tick runs no Python code: it allocates no Python
 *   objects on the fast path, drops no last reference (so no finaliser can
 *   run on the sampler thread), and keeps the cyclic GC off while it runs.
 *
 * Attribution (DESIGN §3): each session is bound to a context by a marker
 * object stored in `engine.sessions_var` (a ContextVar holding a tuple of
 * the markers of the sessions bound there). At a tick, for each thread:
 * - enabled: the thread's context holds the session's marker (tasks and
 *   `copy_context().run` in worker threads carry it), or, for a session
 *   started outside any task, the thread is the one that started it;
 * - disabled: the thread is the one that started it;
 * - strict: the thread's context is the very context it started in.
 * A matching thread's stack is recorded below the session's root frame
 * (or, when the root is not on that stack, from its first frame of
 * interest, under the frame awaiting it and a [thread] node). A session no
 * thread ran for is waiting: enabled records its task's await stack with
 * an [await] leaf named after the point it waits at, strict records
 * [out-of-context].
 *
 * What the sampler alone would blame on the wrong code (DESIGN §3b):
 * - Child tasks. When a waiting task's innermost awaitable is a task or a
 *   future leading to tasks (gather's children, shield's inner task), or
 *   its innermost library frames hold tasks (asyncio.wait's set, a task
 *   group's `_tasks`, a trio nursery's `_children`), the tasks bound to the
 *   session (their context carries its marker) that are suspended are its
 *   children: each one's await chain is recorded under the waiting frame
 *   with its own [await], recursively, and the tick's time is split
 *   between them, children running app code first (a disconnect listener
 *   gets none while the view waits). One tick counts one sample.
 * - Garbage collection. A gc.callbacks hook (gc_hook) is told when a
 *   collection starts and ends, on the thread that runs it: its time goes
 *   to [gc] under the stack that triggered it, in the sessions that thread
 *   runs for, and the next tick does not charge it again (gc_credit_ns).
 *   A tick landing inside it (a finalizer let the GIL go) puts the
 *   finalizer's frames below [gc], and keeps the part of its time before
 *   the collection (the trigger's) and the GIL wait (the collector's) off
 *   the finalizer.
 * - greenlets. A greenlet's frames end at its start. A greenlet.settrace
 *   hook (greenlet_hook) records, per thread, which frame switched to the
 *   greenlet running now; walk_thread goes on from there, so the stack is
 *   the one the code sees and never another one's.
 * - Time no tick saw (since the last tick when the response ends or the
 *   session stops) is [unsampled], never the frame that stops the session;
 *   after mark_response_end samples go under [after response].
 * - A session whose ticks are too few for its duration is marked
 *   undersampled, with the likelier reason from the engine's counters (GIL
 *   waits against late wake-ups).
 * - A busy event loop. A waiting task that is ready to run (the future it
 *   awaits is done, it yielded with sleep(0), or asyncio.sleep's timer is
 *   due) while its loop thread runs other code is not awaiting: the tick
 *   records [event loop busy] under its [await], then the blocker (the
 *   session whose marker is on the loop thread's context, by its label,
 *   or [no request]) and the blocker's innermost frames of its own code
 *   (the loop thread is walked once per tick, only when a session needs
 *   it). The session the loop thread runs for holds the loop: its longest
 *   run of consecutive such samples, and the app frame it stayed in
 *   longest then, make its loop block. Only public state is read (the C
 *   Future's own getter, a timer handle's slots), so both engine paths do
 *   it; I/O readiness is never guessed (the loop has not polled yet).
 */
#include "sampler.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "budget.h"

/* PyGC_Disable/Enable exist since 3.10. */
#if PY_VERSION_HEX >= 0x030A0000
#  define RP_HAVE_GC_TOGGLE 1
#endif

#define MAX_FRAMES (1u << 20)       /* deepest stack walked */
#define MAX_AWAIT_CHAIN 4096u       /* longest await chain followed */
#define MAX_CPU_THREADS 4096u       /* threads whose CPU clock is tracked */
#define CORO_FLAGS (CO_COROUTINE | CO_ITERABLE_COROUTINE | CO_ASYNC_GENERATOR)
#define ASSIST_AFTER_NS 300000u     /* a GIL wait this long calls for help */
#define ASSIST_TICKS 50u            /* ticks helped after such a wait */
#define ASSIST_PERIOD_NS 50000u     /* drop request repeated this often, */
#define ASSIST_PERIOD_MAX_NS 800000u /* backing off to this */
#define ASSIST_MAX_NS 50000000u     /* help with one wait at most this long */
#define LOCK_WAIT_NS 2000000u       /* a request thread waits this long for mu */
#define MAX_CHILD_TASKS 16u         /* child tasks followed per await point */
#define MAX_TASK_LEVELS 4u          /* children of children ... followed */
#define LOCALS_FRAMES 4u            /* innermost awaiting frames searched */
#define MAX_LOCALS 64u              /* locals (or items) looked at in each */
#define MAX_REFS 32u                /* references of a future looked at */
#define MAX_AWAIT_LEAVES 64u        /* await points recorded for one tick */
#define PARK_RECHECK_NS 1000000000u /* a parked sampler looks again this often */
#define WEDGE_NS 5000000000u        /* the "wedge" fault holds mu this long */
#define SNAP_DEPTH 128u             /* deepest stack a snapshot keeps */
#define MAX_SNAP_RUNS 24u           /* distinct snapshots kept per wait */
#define MAX_SNAP_THREADS 16u        /* threads whose stacks are worth one */
#define WATCH_HOT_NS 100000000u     /* and at the interval this long after
                                       a wait that gave snapshots */
#define WATCH_POLL_NS 10000000u     /* the watch thread looks for a wait */

/* Snapshots alike in a row, taken during one wait for the GIL: the holder
 * `ts` (an address, compared only, with its PyThreadState.id) had this
 * stack at each of `count` looks, from first_ns to last_ns. */
typedef struct snap_run {
    const void *ts;
    uint64_t ts_id;
    const void *ctx;                /* its context then (an address) */
    uint64_t first_ns, last_ns;
    uint64_t count;
    size_t n;
    rp_raw_frame frames[SNAP_DEPTH];
} snap_run;

/* greenlet switches seen on one thread (the greenlet.settrace hook): a
 * greenlet's frames end at its start, and its stack goes on, logically, at
 * the frame that switched to it, in the greenlet it came from. */
#define MAX_GREENLET_THREADS 64u
#define MAX_GREENLET_LINKS 16u

typedef struct glet_link {
    const void *target;     /* a greenlet (identity only) */
    const void *origin;     /* the greenlet that switched to it last */
    const void *switcher;   /* key of the frame that did, in origin */
} glet_link;

typedef struct glet_thread {
    uint64_t ts_id;         /* PyThreadState.id: never reused */
    const void *current;    /* the greenlet it runs now */
    glet_link links[MAX_GREENLET_LINKS];
    size_t n;
} glet_thread;

/* A set of objects by identity, holding strong references. */
typedef struct ptrset {
    PyObject **slots;
    size_t mask;                    /* capacity - 1; 0 when empty */
    size_t n;
} ptrset;

/* What an event loop's thread runs at one tick (loop_view_of), for the
 * sessions whose task is ready to run there. */
#define BLOCKER_FRAMES 3u           /* frames of the blocker's own code */
typedef struct loop_view {
    uint64_t tick;                  /* when it was looked at (0: never) */
    unsigned long thread;
    int busy;                       /* it runs code, not the selector */
    rp_session *holder;             /* the session it runs for, or NULL
                                       (borrowed: the active list) */
    PyCodeObject *codes[BLOCKER_FRAMES];    /* outer first, borrowed */
    int32_t lasti[BLOCKER_FRAMES];
    size_t n;
} loop_view;

/* Whether a code object is library code, remembered (code_is_library):
 * identities only, never dereferenced. */
#define LIB_MEMO 256u
typedef struct lib_memo {
    const void *code, *file;
    int library;
} lib_memo;

typedef struct thread_cpu {
    unsigned long ident;
    int64_t last_ns;
    uint64_t last_tick;
} thread_cpu;

static struct rp_engine {
    int initialized;
    rp_compat compat;
    PyInterpreterState *interp;
    PyObject *sessions_var;         /* ContextVar: tuple of markers */
    uint64_t next_marker;

    /* Guarded by mu, except that threads serving requests never wait
     * long for it (lock_briefly): the three fields they may have to
     * publish without it are written and read atomically. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int thread_alive;               /* created and not yet joined (atomic) */
    int parked;                     /* the sampler waits for a session */
    uint64_t tick_interval_ns;      /* the asked interval of its current
                                       schedule (before the budget) */
    uint64_t tick_effective_ns;     /* and the one it ticks at (after) */
    int stop;                       /* the thread must exit */
    int shutdown;                   /* interpreter exiting: never restart */
    size_t wanted;                  /* number of active sessions (atomic) */
    uint64_t interval_ns;           /* smallest interval asked (atomic) */
    uint64_t budget_ns;             /* tightest overhead budget asked: CPU
                                       ns per second, 0 none (atomic) */
    pthread_t thread;
    PyThreadState *sampler_ts;
    pid_t pid;
    pthread_cond_t assist_cv;
    int assist_alive;
    pthread_t assist_thread;
    uint64_t assist_seq;            /* bumped to ask for help with a wait */

    /* The engine threads' CPU time, each added to by its own thread, and
     * the interval the sampler's schedule has now (all atomic). */
    uint64_t sampler_cpu_ns, assist_cpu_ns;
    uint64_t effective_ns;
    rp_budget budget;               /* the sampler thread's alone */

    /* Guarded by assist_mu. */
    pthread_mutex_t assist_mu;
    int gil_waiting;                /* the sampler waits for the GIL */

    /* Snapshots of the GIL holder's stack, taken without the GIL by the
     * watch thread while the sampler waits (see the file comment). Guarded
     * by assist_mu; the runs are the sampler's alone (GIL held) between the
     * end of its wait and the start of the next. */
    int snap_on;                    /* set once, at init */
    int snap_waiting;               /* the sampler waits for the GIL */
    uint64_t wait_start_ns, wait_iv_ns, wait_seq;
    snap_run runs[MAX_SNAP_RUNS];
    size_t n_runs;
    int watch_alive, watch_parked, watch_stop;
    pthread_t watch_thread;
    pthread_cond_t watch_cv;
    uint64_t snapshots, snapshots_torn;
    /* The threads the last tick sampled for a session: a snapshot of
     * any other holder would not be used. */
    const void *snap_want[MAX_SNAP_THREADS];
    size_t n_snap_want;
    /* The watch thread's alone: one buffer per wanted thread (by its
     * index in snap_want), with what it holds. */
    rp_raw_frame watch_bufs[MAX_SNAP_THREADS][SNAP_DEPTH];
    rp_snap_hint watch_hints[MAX_SNAP_THREADS];
    rp_frame snap_frames[SNAP_DEPTH];       /* scratch (GIL) */
    const void *tick_threads[MAX_SNAP_THREADS];     /* (GIL) sampled now */
    size_t n_tick_threads;
    uint64_t snapshot_samples;              /* (GIL) */

    /* Guarded by the GIL. */
    rp_session **active;
    size_t n_active, cap_active;
    uint64_t tick;
    rp_frame *frames;               /* scratch: one thread's stack */
    size_t frames_cap;
    rp_frame *chain;                /* scratch: await chains of tasks */
    PyObject **chain_objs;          /* scratch: their coroutines, borrowed */
    size_t chain_cap;
    uint32_t *path;                 /* scratch: frame ids of one sample */
    size_t path_cap;
    thread_cpu *cpu;
    size_t n_cpu, cap_cpu;
    ptrset hidden;
    ptrset dispatch;

    /* greenlet switches, per thread (greenlet_hook). */
    PyObject *greenlet_hook;
    glet_thread glets[MAX_GREENLET_THREADS];
    size_t n_glets;

    /* Task types child tasks are recognised by (strong; NULL until the
     * library is imported): asyncio's Task and Future (C), trio's Task. */
    PyObject *asyncio_task, *asyncio_future, *trio_task;
    PyObject *asyncio_timer;        /* asyncio.events.TimerHandle */
    PyObject *name_coro, *name_context, *name_children, *name_tasks;
    PyObject *name_state, *name_when, *name_cancelled, *name_sleep;
    /* Modules looked up at every session start (interned). */
    PyObject *name_gc, *name_callbacks, *name_greenlet, *name_trio_lowlevel;
    loop_view loop;                 /* a loop thread at the current tick */
    lib_memo lib_memo[LIB_MEMO];    /* code_is_library's answers */
    Py_ssize_t when_offset, cancelled_offset;   /* TimerHandle's slots */
    PyGetSetDef *future_state;      /* the C Future's `_state` getter */
    double tick_s;                  /* the tick's time, loop.time()'s clock */
    int loop_busy_off;              /* the detection is off (benchmarks) */
    /* Library directories (rp_sym_is_library), owned: child tasks running
     * app code are preferred when the waited time is split. */
    rp_str *lib_prefixes;
    size_t n_lib_prefixes;

    /* The collection running now (the gc.callbacks hook; at most one runs
     * at a time, on the thread holding the GIL). */
    PyObject *gc_hook;              /* the hook, a builtin function */
    int gc_active;
    PyThreadState *gc_ts;           /* the thread that runs it */
    const void *gc_trigger;         /* key of its innermost frame then */
    uint64_t gc_start_ns;
    int64_t gc_start_cpu;
    size_t gc_path_len;             /* path length up to [gc], 0 if none */
    unsigned await_leaves;          /* await points this tick (budget) */
    uint64_t tick_wait_ns;          /* the current tick's wait for the GIL */

    /* Counters (GIL). */
    uint64_t ticks, late_ticks, samples;
    uint64_t gil_wait_ns, gil_wait_max_ns, tick_ns;
    uint64_t threads_started;
    uint64_t assisted_waits;
    uint64_t dropped_samples;
    uint64_t lock_misses;           /* schedules published without mu */
    uint64_t late_ns;               /* sampler wake-ups past their tick */
    uint64_t gc_collections;        /* collections seen while sampling */

    /* Injected faults (RP_FAULTS builds): -1 always, N the next N times. */
    long faults[RP_FAULT_KINDS];
} engine = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .assist_mu = PTHREAD_MUTEX_INITIALIZER,
    .when_offset = -1,
    .cancelled_offset = -1,
};

static void
set_gil_waiting(int waiting)
{
    pthread_mutex_lock(&engine.assist_mu);
    engine.gil_waiting = waiting;
    pthread_mutex_unlock(&engine.assist_mu);
}

static uint64_t
now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static size_t
load_wanted(void)
{
    return __atomic_load_n(&engine.wanted, __ATOMIC_RELAXED);
}

static uint64_t
load_interval(void)
{
    return __atomic_load_n(&engine.interval_ns, __ATOMIC_RELAXED);
}

/* The CPU time the calling thread has used, 0 when the clock fails. */
static uint64_t
own_cpu_ns(void)
{
    struct timespec t;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t) != 0) {
        return 0;
    }
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* Adds the calling thread's CPU since *seen to `counter` (atomically:
 * read by other threads), and moves *seen on. */
static void
add_own_cpu(uint64_t *counter, uint64_t *seen)
{
    uint64_t now = own_cpu_ns();
    if (now > *seen) {
        __atomic_fetch_add(counter, now - *seen, __ATOMIC_RELAXED);
        *seen = now;
    }
}

uint64_t
rp_engine_cpu_ns(void)
{
    return __atomic_load_n(&engine.sampler_cpu_ns, __ATOMIC_RELAXED)
        + __atomic_load_n(&engine.assist_cpu_ns, __ATOMIC_RELAXED);
}

/* The interval the tick sampling `s` now was scheduled at: the engine's,
 * lengthened by the budget, or the session's own when longer (it skips
 * ticks then). */
static uint64_t
tick_interval_of(const rp_session *s)
{
    uint64_t iv = __atomic_load_n(&engine.effective_ns, __ATOMIC_RELAXED);
    return iv > s->interval_ns ? iv : s->interval_ns;
}

/* Takes `mu` for a thread serving a request, which must never wait on the
 * sampler: the sampler holds it for microseconds, so waiting longer than
 * LOCK_WAIT_NS means it is wedged (stopped by a debugger, say) or
 * descheduled on a loaded machine. 1 when taken, 0 when not. */
static int
lock_briefly(void)
{
    if (pthread_mutex_trylock(&engine.mu) == 0) {
        return 1;
    }
    uint64_t deadline = now_ns() + LOCK_WAIT_NS;
    do {
        sched_yield();
        if (pthread_mutex_trylock(&engine.mu) == 0) {
            return 1;
        }
    } while (now_ns() < deadline);
    return 0;
}

/* ---- ptrset ------------------------------------------------------------ */

static size_t
ptr_hash(const void *p)
{
    uint64_t h = (uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 32);
}

static int
ptrset_has(const ptrset *s, const void *p)
{
    if (s->mask == 0) {
        return 0;
    }
    for (size_t h = ptr_hash(p);; h++) {
        PyObject *o = s->slots[h & s->mask];
        if (o == NULL) {
            return 0;
        }
        if (o == p) {
            return 1;
        }
    }
}

/* Adds a strong reference to `o`. 0, or -1 with an exception set. */
static int
ptrset_add(ptrset *s, PyObject *o)
{
    if (ptrset_has(s, o)) {
        return 0;
    }
    if ((s->n + 1) * 2 > s->mask) {
        size_t cap = s->mask ? (s->mask + 1) * 2 : 16;
        PyObject **slots = calloc(cap, sizeof(PyObject *));
        if (slots == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        for (size_t i = 0; s->mask && i <= s->mask; i++) {
            PyObject *x = s->slots[i];
            if (x != NULL) {
                size_t h = ptr_hash(x);
                while (slots[h & (cap - 1)] != NULL) {
                    h++;
                }
                slots[h & (cap - 1)] = x;
            }
        }
        free(s->slots);
        s->slots = slots;
        s->mask = cap - 1;
    }
    size_t h = ptr_hash(o);
    while (s->slots[h & s->mask] != NULL) {
        h++;
    }
    s->slots[h & s->mask] = Py_NewRef(o);
    s->n++;
    return 0;
}

/* ---- scratch buffers ----------------------------------------------------- */

/* Makes the path buffer hold at least `n` ids. 0, or -1 with an exception. */
static int
reserve_path(size_t n)
{
    if (n <= engine.path_cap) {
        return 0;
    }
    uint32_t *p = realloc(engine.path, n * sizeof(uint32_t));
    if (p == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    engine.path = p;
    engine.path_cap = n;
    return 0;
}

/* ---- per-thread CPU clocks ----------------------------------------------- */

static thread_cpu *
cpu_entry(unsigned long ident)
{
    for (size_t i = 0; i < engine.n_cpu; i++) {
        if (engine.cpu[i].ident == ident) {
            return &engine.cpu[i];
        }
    }
    if (engine.n_cpu == engine.cap_cpu) {
        /* Drop entries of threads not seen for a while, then grow. */
        size_t kept = 0;
        for (size_t i = 0; i < engine.n_cpu; i++) {
            if (engine.cpu[i].last_tick + 10000 > engine.tick) {
                engine.cpu[kept++] = engine.cpu[i];
            }
        }
        engine.n_cpu = kept;
    }
    if (engine.n_cpu == engine.cap_cpu) {
        size_t cap = engine.cap_cpu ? engine.cap_cpu * 2 : 16;
        if (cap > MAX_CPU_THREADS) {
            return NULL;
        }
        thread_cpu *c = realloc(engine.cpu, cap * sizeof(thread_cpu));
        if (c == NULL) {
            return NULL;
        }
        engine.cpu = c;
        engine.cap_cpu = cap;
    }
    thread_cpu *e = &engine.cpu[engine.n_cpu++];
    e->ident = ident;
    e->last_ns = -1;
    e->last_tick = engine.tick;
    return e;
}

/* CPU time the thread of `ts` used since its previous reading (0 when it
 * has none). */
static uint64_t
cpu_delta(PyThreadState *ts)
{
    int64_t cpu = rp_compat_thread_cpu_ns(ts);
    thread_cpu *e = cpu_entry(ts->thread_id);
    if (e == NULL || cpu < 0) {
        return 0;
    }
    uint64_t d = (e->last_ns >= 0 && cpu > e->last_ns)
        ? (uint64_t)(cpu - e->last_ns) : 0;
    e->last_ns = cpu;
    e->last_tick = engine.tick;
    return d;
}

/* ---- recording ----------------------------------------------------------- */

/* The name of thread `ident` (threading._active[ident]._name), borrowed,
 * or NULL. Reads dicts directly so that no Python code runs. */
static PyObject *
thread_name(unsigned long ident)
{
    PyObject *name = NULL, *mod = NULL, *key = NULL, *inst = NULL;
    PyObject *modname = PyUnicode_FromString("threading");
    if (modname == NULL) {
        goto done;
    }
    mod = PyImport_GetModule(modname);
    if (mod == NULL || !PyModule_Check(mod)) {
        goto done;
    }
    PyObject *active = PyDict_GetItemString(PyModule_GetDict(mod), "_active");
    key = PyLong_FromUnsignedLong(ident);
    if (active == NULL || !PyDict_Check(active) || key == NULL) {
        goto done;
    }
    PyObject *thread = PyDict_GetItemWithError(active, key);
    if (thread == NULL) {
        goto done;
    }
    inst = PyObject_GenericGetDict(thread, NULL);
    if (inst != NULL && PyDict_Check(inst)) {
        name = PyDict_GetItemString(inst, "_name");  /* held by inst */
    }
done:
    Py_XDECREF(modname);
    Py_XDECREF(mod);
    Py_XDECREF(key);
    Py_XDECREF(inst);   /* the thread object still holds its dict */
    PyErr_Clear();
    return name;
}

/* Appends frame id `id` to the path of `s` (*len long so far), or
 * [truncated] past max_depth. 0, or -1 when the path was cut there. */
static int
append_id(rp_session *s, uint32_t id, size_t *len)
{
    if (*len >= s->max_depth) {
        engine.path[(*len)++] = s->codes.truncated_id;
        s->truncated |= RP_REPORT_TRUNC_DEPTH;
        return -1;
    }
    if (id == RP_NONE) {
        s->tree.truncated |= s->codes.full_reason;
        return -1;
    }
    engine.path[(*len)++] = id;
    return 0;
}

/* Where the path of a sample starts: under [after response] once the
 * response has ended. Returns the path's length. */
static size_t
path_start(rp_session *s)
{
    if (s->after_response) {
        engine.path[0] = s->codes.after_response_id;
        return 1;
    }
    return 0;
}

#define NO_GC LONG_MIN

/* Appends frames[start] down to frames[0] (outer to inner) to the path of
 * `s`, leaving out hidden ones and folding what is deeper than max_depth
 * into [truncated]. With `gc_split` other than NO_GC, a [gc] node goes
 * before the first frame whose index is below it (the frames a collection
 * runs: finalizers), or last. *len is the path length so far; returns the
 * index of the last frame appended, -1 if none (or when [gc] is the leaf),
 * or -2 when the path was cut (then its leaf is not a frame of the
 * stack). */
static long
append_frames(rp_session *s, const rp_frame *frames, long start, size_t *len,
              long gc_split)
{
    long last = -1;
    int gc_done = gc_split == NO_GC;
    for (long i = start; i >= 0; i--) {
        PyCodeObject *code = frames[i].code;
        if (!gc_done && i < gc_split) {
            if (append_id(s, s->codes.gc_id, len) < 0) {
                return -2;
            }
            engine.gc_path_len = *len;
            gc_done = 1;
        }
        if (ptrset_has(&engine.hidden, code)) {
            continue;
        }
        if (append_id(s, rp_codetable_code(&s->codes, code), len) < 0) {
            return -2;
        }
        last = i;
    }
    if (!gc_done) {
        if (append_id(s, s->codes.gc_id, len) < 0) {
            return -2;
        }
        engine.gc_path_len = *len;
        last = -1;
    }
    return last;
}

/* Where a stack that does not hold the session's root starts to matter:
 * its outermost coroutine frame (a task's step), else the frame below the
 * innermost dispatching frame (thread-pool plumbing, or the event loop
 * running a callback in the session's context), else its bottom: never
 * the thread's own frames below that (a server's main loop). */
static long
anchor(const rp_frame *frames, size_t n)
{
    for (long i = (long)n - 1; i >= 0; i--) {
        if (frames[i].code->co_flags & CORO_FLAGS) {
            return i;
        }
    }
    for (long i = 0; i < (long)n; i++) {
        if (ptrset_has(&engine.dispatch, frames[i].code)) {
            return i - 1;   /* -1: it runs C code (a C callback): no frame */
        }
    }
    return (long)n - 1;
}

/* Makes the chain buffers hold at least `n` entries. 0, or -1. */
static int
reserve_chain(size_t n)
{
    if (n <= engine.chain_cap) {
        return 0;
    }
    size_t cap = engine.chain_cap ? engine.chain_cap : 64;
    while (cap < n) {
        cap *= 2;
    }
    rp_frame *c = realloc(engine.chain, cap * sizeof(rp_frame));
    if (c == NULL) {
        return -1;
    }
    engine.chain = c;
    PyObject **o = realloc(engine.chain_objs, cap * sizeof(PyObject *));
    if (o == NULL) {
        return -1;
    }
    engine.chain_objs = o;
    engine.chain_cap = cap;
    return 0;
}

/* Walks the await chain of the suspended coroutine `coro` into
 * engine.chain[base..] (frames) and engine.chain_objs[base..] (their
 * coroutines), outer first. Returns its length (0 when `coro` is not
 * suspended), sets *root to the index (from base) of the session's root
 * frame in it or -1, and *end to what its innermost frame awaits when that
 * is no coroutine (a future, a task: borrowed) or NULL. */
static size_t
await_chain(rp_session *s, PyObject *coro, size_t base, long *root,
            PyObject **end)
{
    size_t n = 0;
    PyObject *obj = coro;
    *root = -1;
    *end = NULL;
    while (obj != NULL && n < MAX_AWAIT_CHAIN) {
        if (reserve_chain(base + n + 1) < 0) {
            break;
        }
        if (!rp_compat_coro_frame(&engine.compat, obj,
                                  &engine.chain[base + n])) {
            *end = n > 0 ? obj : NULL;
            break;
        }
        engine.chain_objs[base + n] = obj;
        if (engine.chain[base + n].key == s->root_key) {
            *root = (long)n;
        }
        n++;
        obj = rp_compat_coro_awaiting(&engine.compat, obj);
    }
    return n;
}

/* Appends the frames of an await chain (engine.chain[base..base+n), outer
 * first) to the path, below the session's root frame when `root` >= 0
 * (its index in the chain). Reverses the chain in place. Returns
 * append_frames' result: the index (after reversal, from base) of the
 * last frame appended, -1, or -2 when the path was cut. */
static long
append_chain(rp_session *s, size_t base, size_t n, long root, size_t *len)
{
    /* append_frames goes from a high index down to 0, innermost last:
     * reverse the (scratch) chain so that index 0 is the innermost. */
    rp_frame *c = engine.chain + base;
    for (size_t i = 0, j = n - 1; i < j; i++, j--) {
        rp_frame t = c[i];
        c[i] = c[j];
        c[j] = t;
    }
    long r = root >= 0 ? (long)(n - 1) - root : -1;    /* after reversal */
    long from = r >= 0 ? r - 1 : (long)n - 1;
    if (r >= 0 && from >= 0 && s->fold_code != NULL
            && c[from].code == s->fold_code) {
        from--;     /* the decorated function is the root itself */
    }
    return append_frames(s, c, from, len, NO_GC);
}

/* Appends the frames of the session's suspended task below its root frame
 * to the path, with *loc the location where the innermost of them (or the
 * root) waits. Returns 1, 0 when the task is not suspended (nothing
 * appended), or -1 when the path was cut (its leaf is then set). */
static int
append_await_chain(rp_session *s, size_t *len, uint32_t *loc)
{
    long root;
    PyObject *end;
    size_t n = s->coro ? await_chain(s, s->coro, 0, &root, &end) : 0;
    *loc = RP_NONE;
    if (n == 0) {
        return 0;
    }
    long last = append_chain(s, 0, n, root, len);
    if (last == -2) {
        return -1;
    }
    long r = root >= 0 ? (long)(n - 1) - root : -1;
    long at = last >= 0 ? last : r;
    if (at >= 0 && engine.chain[at].lasti >= 0) {
        *loc = (uint32_t)engine.chain[at].lasti;
    }
    return 1;
}

/* Records the path in engine.path (len ids) with its time, counting
 * `count` samples (see rp_tree_add). */
static void
add_time(rp_session *s, size_t len, uint32_t loc, uint64_t wall,
         uint64_t cpu, uint64_t count)
{
    if (RP_FAULT(RP_FAULT_SAMPLE)) {
        /* As when the tree cannot grow: the report says it is incomplete. */
        s->tree.truncated |= RP_TRUNC_NOMEM;
        engine.dropped_samples++;
        return;
    }
    rp_tree_add(&s->tree, engine.path, len, loc, wall, cpu, count);
    engine.samples += count;
}

static void
add_sample(rp_session *s, size_t len, uint32_t loc, uint64_t wall,
           uint64_t cpu)
{
    add_time(s, len, loc, wall, cpu, 1);
}

/* ---- child tasks ---------------------------------------------------------- */

/* Whether code object `code` is library code (site-packages, the standard
 * library: the rule of the writers, rp_sym_is_library). Remembered per
 * code object and file name (a code object freed and another made at its
 * address has another file name object, or the same file). */
static int code_is_library_uncached(PyCodeObject *code);

static int
code_is_library(PyCodeObject *code)
{
    lib_memo *m = &engine.lib_memo[ptr_hash(code) & (LIB_MEMO - 1)];
    if (m->code != code || m->file != code->co_filename) {
        m->code = code;
        m->file = code->co_filename;
        m->library = code_is_library_uncached(code);
    }
    return m->library;
}

static int
code_is_library_uncached(PyCodeObject *code)
{
    Py_ssize_t n = 0;
    const char *f = PyUnicode_Check(code->co_filename)
        ? PyUnicode_AsUTF8AndSize(code->co_filename, &n) : NULL;
    if (f == NULL) {
        PyErr_Clear();
        return 1;
    }
    rp_sym sym;
    memset(&sym, 0, sizeof(sym));
    sym.kind = RP_KIND_FRAME;
    sym.file.s = (char *)f;
    sym.file.len = (size_t)n;
    return rp_sym_is_library(&sym, engine.lib_prefixes,
                             engine.n_lib_prefixes);
}

typedef struct refs {
    PyObject *objs[MAX_REFS];
    size_t n;
} refs;

static int
collect_ref(PyObject *o, void *arg)
{
    refs *r = arg;
    if (o != NULL && r->n < MAX_REFS) {
        r->objs[r->n++] = o;
    }
    return 0;
}

/* The objects `o` refers to (its tp_traverse: public, C, no Python code),
 * borrowed, at most MAX_REFS. */
static void
referents(PyObject *o, refs *r)
{
    r->n = 0;
    if (PyType_IS_GC(Py_TYPE(o)) && Py_TYPE(o)->tp_traverse != NULL) {
        Py_TYPE(o)->tp_traverse(o, collect_ref, r);
    }
}

/* An attribute read with no Python code run: from an instance dict, or a
 * slot (member descriptor). Borrowed, or NULL. */
static PyObject *
plain_attr(PyObject *o, PyObject *name)
{
    PyObject *v = NULL;
    PyTypeObject *tp = Py_TYPE(o);
    if (tp->tp_getattro != PyObject_GenericGetAttr) {
        return NULL;
    }
    PyObject *descr = _PyType_Lookup(tp, name);
    if (descr != NULL) {
        if (Py_TYPE(descr) != &PyMemberDescr_Type) {
            return NULL;    /* a property or a method: not read */
        }
        v = PyObject_GenericGetAttr(o, name);
        Py_XDECREF(v);      /* the object holds it */
    }
    else if (tp->tp_dictoffset != 0
#ifdef Py_TPFLAGS_MANAGED_DICT
             || (tp->tp_flags & Py_TPFLAGS_MANAGED_DICT)
#endif
             ) {
        PyObject *dict = PyObject_GenericGetDict(o, NULL);
        if (dict != NULL && PyDict_Check(dict)) {
            v = PyDict_GetItemWithError(dict, name);
        }
        Py_XDECREF(dict);   /* the object holds it */
    }
    PyErr_Clear();
    return v;
}

/* If `o` is a task (asyncio's or trio's), its coroutine and context
 * (borrowed); else 0. */
static int
task_parts(PyObject *o, PyObject **coro, PyObject **ctx)
{
    *coro = *ctx = NULL;
    if (engine.asyncio_task != NULL
            && PyObject_TypeCheck(o, (PyTypeObject *)engine.asyncio_task)) {
        refs r;
        referents(o, &r);
        for (size_t i = 0; i < r.n; i++) {
            PyObject *x = r.objs[i];
            if (*ctx == NULL && PyContext_CheckExact(x)) {
                *ctx = x;
            }
            else if (*coro == NULL && (PyCoro_CheckExact(x)
                                       || PyGen_Check(x))) {
                *coro = x;
            }
        }
    }
    else if (engine.trio_task != NULL
             && PyObject_TypeCheck(o, (PyTypeObject *)engine.trio_task)) {
        *coro = plain_attr(o, engine.name_coro);
        *ctx = plain_attr(o, engine.name_context);
    }
    return *coro != NULL;
}

/* The child tasks found for one await point. */
typedef struct kids {
    PyObject *coro[MAX_CHILD_TASKS];    /* borrowed */
    PyObject *ctx[MAX_CHILD_TASKS];     /* their contexts, borrowed */
    size_t n;
    PyObject *self_coro;                /* the waiting task's own */
} kids;

/* Takes `o` as a child when it is a task of session `s` (its context
 * carries the session's marker), suspended, not the waiting task itself,
 * not taken yet. */
static void
consider(rp_session *s, kids *k, PyObject *o)
{
    PyObject *coro, *ctx;
    rp_frame f;
    if (k->n >= MAX_CHILD_TASKS || !task_parts(o, &coro, &ctx)
            || coro == k->self_coro || coro == s->coro) {
        return;
    }
    for (size_t i = 0; i < k->n; i++) {
        if (k->coro[i] == coro) {
            return;
        }
    }
    PyObject *markers = rp_compat_context_get(ctx, engine.sessions_var);
    int bound = 0;
    if (markers != NULL && PyTuple_Check(markers)) {
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(markers); i++) {
            bound |= PyTuple_GET_ITEM(markers, i) == s->marker;
        }
    }
    if (bound && rp_compat_coro_frame(&engine.compat, coro, &f)) {
        k->ctx[k->n] = ctx;
        k->coro[k->n++] = coro;
    }
}

/* Takes the tasks among the items of a container (list, tuple, set). */
static void
consider_items(rp_session *s, kids *k, PyObject *o)
{
    if (PyList_Check(o) || PyTuple_Check(o)) {
        Py_ssize_t n = PySequence_Fast_GET_SIZE(o);
        for (Py_ssize_t i = 0; i < n && i < (Py_ssize_t)MAX_LOCALS; i++) {
            consider(s, k, PySequence_Fast_GET_ITEM(o, i));
        }
    }
    else if (PyAnySet_Check(o)) {
        Py_ssize_t pos = 0;
        PyObject *item;
        for (size_t i = 0; i < MAX_LOCALS
                && rp_compat_set_next(o, &pos, &item); i++) {
            consider(s, k, item);
        }
    }
}

/* What a future a task awaits leads to: the future's `_children`
 * (asyncio.gather) and the tasks its done-callbacks hold (asyncio.shield's
 * inner task: a closure cell). */
static void
consider_future(rp_session *s, kids *k, PyObject *fut)
{
    refs r;
    referents(fut, &r);
    for (size_t i = 0; i < r.n; i++) {
        PyObject *x = r.objs[i];
        if (PyDict_Check(x)) {      /* a subclass's instance dict */
            PyObject *children = PyDict_GetItemWithError(x,
                                                         engine.name_children);
            if (children != NULL) {
                consider_items(s, k, children);
            }
            PyErr_Clear();
            continue;
        }
        /* callbacks: (callback, context) pairs in a list, or one */
        PyObject *cbs[MAX_LOCALS];
        size_t ncb = 0;
        if (PyList_Check(x)) {
            for (Py_ssize_t j = 0; j < PyList_GET_SIZE(x)
                    && ncb < MAX_LOCALS; j++) {
                PyObject *pair = PyList_GET_ITEM(x, j);
                if (PyTuple_Check(pair) && PyTuple_GET_SIZE(pair) > 0) {
                    cbs[ncb++] = PyTuple_GET_ITEM(pair, 0);
                }
            }
        }
        else {
            cbs[ncb++] = x;
        }
        for (size_t j = 0; j < ncb; j++) {
            PyObject *cb = cbs[j];
            if (PyFunction_Check(cb)) {
                PyObject *cells = PyFunction_GetClosure(cb);
                for (Py_ssize_t c = 0; cells != NULL && PyTuple_Check(cells)
                        && c < PyTuple_GET_SIZE(cells); c++) {
                    PyObject *cell = PyTuple_GET_ITEM(cells, c);
                    if (PyCell_Check(cell) && PyCell_GET(cell) != NULL) {
                        consider(s, k, PyCell_GET(cell));
                    }
                }
            }
        }
    }
}

/* Takes the tasks an object the waiting frames hold stands for: a task, a
 * future, a container of tasks, an object with `_tasks` or `_children`
 * (a task group, a trio nursery). */
static void
consider_local(rp_session *s, kids *k, PyObject *o)
{
    if (PyList_Check(o) || PyTuple_Check(o) || PyAnySet_Check(o)) {
        consider_items(s, k, o);
        return;
    }
    if (engine.asyncio_future != NULL
            && PyObject_TypeCheck(o, (PyTypeObject *)engine.asyncio_future)) {
        if (engine.asyncio_task != NULL
                && PyObject_TypeCheck(o,
                                      (PyTypeObject *)engine.asyncio_task)) {
            consider(s, k, o);
        }
        else {
            consider_future(s, k, o);
        }
        return;
    }
    if (engine.trio_task != NULL
            && PyObject_TypeCheck(o, (PyTypeObject *)engine.trio_task)) {
        consider(s, k, o);
        return;
    }
    if (PyType_Check(o) || PyModule_Check(o) || PyCode_Check(o)
            || PyUnicode_Check(o) || PyLong_Check(o)) {
        return;
    }
    PyObject *group = plain_attr(o, engine.name_tasks);
    if (group == NULL) {
        group = plain_attr(o, engine.name_children);
    }
    if (group != NULL) {
        consider_items(s, k, group);
    }
}

/* The child tasks of session `s` the await chain engine.chain[base..
 * base+n) (outer first, not reversed yet) waits for: what its innermost
 * frame awaits (`end`: a task, a future) and what its innermost library
 * frames hold (asyncio.wait's set, a task group, a nursery: the primitive
 * it waits in; app frames' locals may hold tasks they do not wait for). */
static void
find_children(rp_session *s, size_t base, size_t n, PyObject *end,
              PyObject *self_coro, kids *k)
{
    k->n = 0;
    k->self_coro = self_coro;
    if (engine.asyncio_task == NULL && engine.trio_task == NULL) {
        return;
    }
    if (end != NULL) {
        PyObject *fut = end;
        if (strcmp(Py_TYPE(end)->tp_name, "_asyncio.FutureIter") == 0) {
            refs r;
            referents(end, &r);
            fut = r.n > 0 ? r.objs[r.n - 1] : NULL;
        }
        if (fut != NULL) {
            consider_local(s, k, fut);
        }
    }
    for (size_t i = 0; i < LOCALS_FRAMES && i < n; i++) {
        PyObject *locals[MAX_LOCALS];
        if (!code_is_library(engine.chain[base + n - 1 - i].code)) {
            continue;
        }
        size_t m = rp_compat_coro_locals(&engine.compat,
                                         engine.chain_objs[base + n - 1 - i],
                                         locals, MAX_LOCALS);
        for (size_t j = 0; j < m; j++) {
            consider_local(s, k, locals[j]);
        }
    }
}

/* Whether the suspended task of coroutine `coro` runs app code (a frame of
 * its await chain is not library code). Uses engine.chain from `base`. */
static int
runs_app_code(rp_session *s, PyObject *coro, size_t base)
{
    long root;
    PyObject *end;
    size_t n = await_chain(s, coro, base, &root, &end);
    for (size_t i = 0; i < n; i++) {
        if (!ptrset_has(&engine.hidden, engine.chain[base + i].code)
                && !code_is_library(engine.chain[base + i].code)) {
            return 1;
        }
    }
    return 0;
}

/* ---- the event loop -------------------------------------------------------- */

/* A session's task that is suspended but ready to run (what it waited for
 * is done, or it is in the loop's ready queue) waits for its event loop,
 * which runs other code: the tick records [event loop busy] under its
 * [await], then the blocker (the session the loop thread runs for, or
 * [no request]) and the blocker's innermost frames of its own code. The
 * blocker's side: a session whose loop thread runs its code tick after
 * tick holds the loop; its longest stretch and where it was are kept.
 * Everything is read in place, with no Python code run: asyncio's C
 * Future's state through its own C getter, a timer handle's slots. */

static size_t walk_thread(PyThreadState *ts);

/* An attribute of an asyncio future read with no Python code run: the C
 * Future's getter (asyncio's own C code), or a plain attribute. New
 * reference, or NULL. */
static PyObject *
future_attr(PyObject *o, PyObject *name)
{
    PyObject *d = _PyType_Lookup(Py_TYPE(o), name);
    if (d != NULL && Py_TYPE(d) == &PyGetSetDescr_Type) {
        PyGetSetDescrObject *g = (PyGetSetDescrObject *)d;
        PyObject *v = NULL;
        if (g->d_common.d_type == (PyTypeObject *)engine.asyncio_future
                && g->d_getset->get != NULL) {
            v = g->d_getset->get(o, g->d_getset->closure);
        }
        if (v == NULL && PyErr_Occurred()) {
            PyErr_Clear();
        }
        return v;
    }
    return Py_XNewRef(plain_attr(o, name));
}

/* Whether asyncio future `fut` is done (its state is not PENDING). */
static int
future_done(PyObject *fut)
{
    if (engine.asyncio_future == NULL
            || !PyObject_TypeCheck(fut, (PyTypeObject *)engine.asyncio_future)) {
        return 0;
    }
    PyObject *state;
    if (engine.future_state != NULL
            && (Py_TYPE(fut) == (PyTypeObject *)engine.asyncio_future
                || Py_TYPE(fut) == (PyTypeObject *)engine.asyncio_task)) {
        /* asyncio's own C types: their getter, found once */
        state = engine.future_state->get(fut, engine.future_state->closure);
        if (state == NULL) {
            PyErr_Clear();
        }
    }
    else {
        state = future_attr(fut, engine.name_state);
    }
    int done = state != NULL && PyUnicode_Check(state)
        && PyUnicode_CompareWithASCIIString(state, "PENDING") != 0;
    Py_XDECREF(state);
    return done;
}

/* Whether `o` is an asyncio timer handle, not cancelled, due by `now`
 * (loop.time() seconds): its callback would have run on an idle loop. Its
 * `_when` and `_cancelled` slots are read in place (their offsets are
 * found once, find_task_types). */
static int
timer_due(PyObject *o, double now)
{
    if (engine.asyncio_timer == NULL || engine.when_offset < 0
            || !PyObject_TypeCheck(o, (PyTypeObject *)engine.asyncio_timer)) {
        return 0;
    }
    PyObject *when = *(PyObject **)((char *)o + engine.when_offset);
    PyObject *cancelled = *(PyObject **)((char *)o + engine.cancelled_offset);
    return when != NULL && PyFloat_Check(when) && cancelled == Py_False
        && PyFloat_AS_DOUBLE(when) <= now;
}

/* The offset of slot `name` (an object member) in instances of `type`,
 * or -1. */
static Py_ssize_t
slot_offset(PyObject *type, PyObject *name)
{
    PyObject *d = _PyType_Lookup((PyTypeObject *)type, name);
    if (d == NULL || Py_TYPE(d) != &PyMemberDescr_Type) {
        return -1;
    }
    PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
    return m->type == RP_T_OBJECT_EX || m->type == RP_T_OBJECT ? m->offset : -1;
}

/* Whether the task whose innermost suspended coroutine is `inner` (frame
 * code `code`), awaiting `end` (a future, or NULL), is ready to run: the
 * future is done (its wake-up is queued), it yielded to the loop
 * (asyncio.sleep(0)), or the due timer of asyncio.sleep (a local of its
 * frame) would have completed it. Waiting on I/O is never taken as ready:
 * whether data arrived is known only when the loop polls. */
static int
task_ready(PyObject *inner, PyCodeObject *code, PyObject *end)
{
    if (engine.asyncio_future == NULL) {
        return 0;   /* not asyncio (trio parks tasks its own way) */
    }
    if (end == NULL) {
        return PyUnicode_Check(code->co_name)
            && PyUnicode_CompareWithASCIIString(code->co_name,
                                                "__sleep0") == 0;
    }
    PyObject *fut = end;
    if (strcmp(Py_TYPE(end)->tp_name, "_asyncio.FutureIter") == 0) {
        refs r;
        referents(end, &r);
        fut = r.n > 0 ? r.objs[r.n - 1] : NULL;
    }
    if (fut != NULL && future_done(fut)) {
        return 1;
    }
    if (code->co_name != engine.name_sleep
            && PyUnicode_Compare(code->co_name, engine.name_sleep) != 0) {
        return 0;   /* only asyncio.sleep holds its timer in a local */
    }
    PyObject *locals[MAX_LOCALS];
    size_t m = rp_compat_coro_locals(&engine.compat, inner, locals,
                                     MAX_LOCALS);
    for (size_t i = 0; i < m; i++) {
        if (timer_due(locals[i], engine.tick_s)) {
            return 1;
        }
    }
    return 0;
}

/* The session among `markers` (a tuple, borrowed, or NULL) bound last,
 * or NULL. */
static rp_session *
session_of(PyObject *markers)
{
    for (Py_ssize_t i = markers ? PyTuple_GET_SIZE(markers) : 0; i-- > 0;) {
        PyObject *m = PyTuple_GET_ITEM(markers, i);
        for (size_t j = 0; j < engine.n_active; j++) {
            if (engine.active[j]->marker == m) {
                return engine.active[j];
            }
        }
    }
    return NULL;
}

/* Whether `code` is the event loop's own (asyncio's loop and handles, the
 * selector): a loop in it is idle or between callbacks, not held. */
static int
is_loop_machinery(PyCodeObject *code)
{
    static const char *const files[] = {
        "selectors.py", "asyncio/base_events.py", "asyncio/events.py",
        "asyncio/selector_events.py",
    };
    Py_ssize_t n;
    const char *f = PyUnicode_Check(code->co_filename)
        ? PyUnicode_AsUTF8AndSize(code->co_filename, &n) : NULL;
    if (f == NULL) {
        PyErr_Clear();
        return 0;
    }
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        size_t len = strlen(files[i]);
        if ((size_t)n >= len && memcmp(f + n - len, files[i], len) == 0
                && ((size_t)n == len || f[n - len - 1] == '/'
                    || f[n - len - 1] == '\\')) {
            return 1;
        }
    }
    return 0;
}

/* Looks at what thread `thread` (an event loop's) runs now, once per
 * tick: busy or in the selector, for which session, and the innermost
 * frames of the blocker's own code (app frames, else the innermost
 * ones). Uses engine.frames: only when no stack of the tick is held. */
static const loop_view *
loop_view_of(unsigned long thread)
{
    loop_view *v = &engine.loop;
    if (v->tick == engine.tick && v->thread == thread) {
        return v;
    }
    memset(v, 0, sizeof(*v));
    v->tick = engine.tick;
    v->thread = thread;
    PyThreadState *ts = PyInterpreterState_ThreadHead(engine.interp);
    while (ts != NULL && (ts == engine.sampler_ts || ts->thread_id != thread)) {
        ts = PyThreadState_Next(ts);
    }
    if (ts == NULL) {
        return v;
    }
    size_t n = walk_thread(ts);
    const rp_frame *f = engine.frames;
    size_t top = 0;
    while (top < n && ptrset_has(&engine.hidden, f[top].code)) {
        top++;
    }
    if (top == n || is_loop_machinery(f[top].code)) {
        return v;   /* idle: nothing runs, or the loop's own code does */
    }
    v->busy = 1;
    PyObject *markers = rp_compat_context_get(ts->context,
                                              engine.sessions_var);
    v->holder = session_of(markers != NULL && PyTuple_Check(markers)
                           ? markers : NULL);
    /* Never the loop's own frames (its callback runner, the server's
     * main loop): only what runs above them. */
    long above = anchor(f, n);
    size_t lim = above >= 0 ? (size_t)above + 1 : 0;
    size_t app = top;
    while (app < lim && (ptrset_has(&engine.hidden, f[app].code)
                         || code_is_library(f[app].code))) {
        app++;
    }
    /* Its own code: the innermost run of app frames (library frames
     * when it runs none). */
    int own_app = app < lim;
    size_t picked[BLOCKER_FRAMES];
    size_t k = 0;
    for (size_t i = own_app ? app : top; i < lim && k < BLOCKER_FRAMES; i++) {
        if (ptrset_has(&engine.hidden, f[i].code)) {
            continue;
        }
        if (own_app && code_is_library(f[i].code)) {
            break;
        }
        picked[k++] = i;
    }
    for (size_t j = 0; j < k; j++) {    /* outer first */
        v->codes[j] = f[picked[k - 1 - j]].code;
        v->lasti[j] = f[picked[k - 1 - j]].lasti;
    }
    v->n = k;
    return v;
}

/* After the [await] of session `s` (path engine.path[0..*len)): when its
 * task is ready and its loop thread is busy with other work, appends
 * [event loop busy], the blocker and its frames, and sets *loc to the
 * innermost one's offset. */
static void
append_loop_busy(rp_session *s, PyObject *inner, PyCodeObject *code,
                 PyObject *end, size_t *len, uint32_t *loc)
{
    if (engine.loop_busy_off || s->mode != RP_MODE_ENABLED
            || !task_ready(inner, code, end)) {
        return;
    }
    const loop_view *v = loop_view_of(s->origin_thread);
    if (!v->busy || v->holder == s) {
        return;
    }
    s->n_loop_busy++;
    *loc = RP_NONE;
    /* A session nobody labelled is named after its root function. */
    PyObject *name = v->holder == NULL ? NULL
        : v->holder->label != NULL ? v->holder->label
        : v->holder->root_code->co_name;
    if (append_id(s, s->codes.loop_busy_id, len) < 0
            || append_id(s, rp_codetable_blocker(&s->codes, name), len) < 0) {
        return;
    }
    for (size_t i = 0; i < v->n; i++) {
        if (append_id(s, rp_codetable_code(&s->codes, v->codes[i]), len) < 0) {
            return;
        }
    }
    if (v->n > 0 && v->lasti[v->n - 1] >= 0) {
        *loc = (uint32_t)v->lasti[v->n - 1];
    }
}

/* Session `s` ran on its loop thread this tick, on stack frames[0..n):
 * it holds the loop. Extends its stretch (a new one when its previous
 * sample did not hold it: then only up to the tick's interval counts, the
 * rest of the gap may have been spent elsewhere). The stretch's place is
 * the innermost app frame it stayed in longest, tick after tick (not the
 * last one: a stretch ends in whatever ran before the await). */
static void
note_hold(rp_session *s, const rp_frame *frames, size_t n, uint64_t wall)
{
    if (s->holding) {
        return;     /* counted for this tick already */
    }
    s->holding = 1;
    if (!s->was_holding) {
        uint64_t iv = tick_interval_of(s);
        wall = wall < iv ? wall : iv;
        s->hold_ns = 0;
        s->at_frame = s->best_frame = RP_NONE;
        s->at_ns = s->best_ns = 0;
    }
    s->hold_ns += wall;
    uint32_t id = RP_NONE;
    int32_t lasti = -1;
    for (size_t i = 0; i < n; i++) {
        if (!ptrset_has(&engine.hidden, frames[i].code)
                && !code_is_library(frames[i].code)) {
            id = rp_codetable_code(&s->codes, frames[i].code);
            lasti = frames[i].lasti;
            break;
        }
    }
    if (id != s->at_frame) {
        s->at_frame = id;
        s->at_ns = 0;
    }
    s->at_ns += wall;
    s->at_lasti = lasti;
    if (id != RP_NONE && (s->at_ns > s->best_ns || id == s->best_frame)) {
        s->best_frame = id;
        s->best_lasti = lasti;
        s->best_ns = s->at_ns > s->best_ns ? s->at_ns : s->best_ns;
    }
    if (s->hold_ns > s->block_ns) {
        s->block_ns = s->hold_ns;
        s->block_frame = s->best_frame;
        s->block_lasti = s->best_lasti;
    }
}

/* Records a tick's `wall` time for the suspended coroutine `coro` of
 * session `s`, whose path so far is engine.path[0..len): its await chain
 * (below the root frame when that is on it), then the child tasks it waits
 * for, each with its own chain and [await], sharing the time (those
 * running app code first: see the file comment), or an [await] leaf where
 * it waits. The first leaf recorded counts the tick's sample (*count).
 * Returns 1, or 0 when `coro` is not suspended (nothing recorded). */
static int
record_await(rp_session *s, PyObject *coro, size_t len, size_t base,
             uint64_t wall, uint64_t *count, unsigned level)
{
    long root;
    PyObject *end;
    kids k;
    size_t n = await_chain(s, coro, base, &root, &end);
    if (n == 0) {
        return 0;
    }
    k.n = 0;
    if (level < MAX_TASK_LEVELS && s->mode == RP_MODE_ENABLED
            && engine.await_leaves < MAX_AWAIT_LEAVES) {
        find_children(s, base, n, end, coro, &k);
    }
    rp_frame inner = engine.chain[base + n - 1];
    PyObject *inner_obj = engine.chain_objs[base + n - 1];
    long last = append_chain(s, base, n, root, &len);
    if (last == -2) {
        add_time(s, len, RP_NONE, wall, 0, *count);
        *count = 0;
        return 1;
    }
    if (k.n > 0) {
        int app[MAX_CHILD_TASKS];
        size_t n_app = 0;
        for (size_t i = 0; i < k.n; i++) {
            app[i] = runs_app_code(s, k.coro[i], base + n);
            n_app += (size_t)app[i];
        }
        size_t shares = n_app > 0 ? n_app : k.n, given = 0;
        int done = 0;
        for (size_t i = 0; i < k.n; i++) {
            if (n_app > 0 && !app[i]) {
                continue;
            }
            /* The last share takes the rounding. */
            uint64_t w = ++given < shares ? wall / shares
                : wall - (wall / shares) * (shares - 1);
            done |= record_await(s, k.coro[i], len, base + n, w, count,
                                 level + 1);
        }
        if (done) {
            return 1;
        }
    }
    engine.await_leaves++;
    uint32_t id = rp_codetable_await(&s->codes, inner.code, inner.lasti);
    uint32_t loc = inner.lasti >= 0 ? (uint32_t)inner.lasti : RP_NONE;
    if (append_id(s, id, &len) < 0) {
        loc = RP_NONE;
    }
    else {
        append_loop_busy(s, inner_obj, inner.code, end, &len, &loc);
    }
    add_time(s, len, loc, wall, 0, *count);
    *count = 0;
    return 1;
}


/* For a thread working for session `s` without its root on its stack (a
 * worker thread): appends the await chain of `coro` (the session's task at
 * level 0, below its root frame), then that of the child task the work is
 * for, if any: the one whose context has the variables `want` of the
 * thread's (asyncio.to_thread runs the work in a copy of the awaiting
 * task's context), looked for down the tree of child tasks, app code
 * first when several match; when none does, the child running app code.
 * Returns 1 when a child was taken (its chain is on the path), 0 when not
 * (the path holds the chain of `coro`, or nothing when it is not
 * suspended), -1 when the path was cut. */
static int
append_task_for(rp_session *s, PyObject *coro, const void *want, size_t *len,
                size_t base, unsigned level)
{
    long root;
    PyObject *end;
    kids k;
    size_t n = await_chain(s, coro, base, &root, &end);
    if (n == 0) {
        return 0;
    }
    k.n = 0;
    if (level < MAX_TASK_LEVELS && engine.await_leaves < MAX_AWAIT_LEAVES) {
        find_children(s, base, n, end, coro, &k);
    }
    engine.await_leaves++;
    if (append_chain(s, base, n, root, len) == -2) {
        return -1;
    }
    size_t saved = *len;
    /* Children whose context matches (app code first); then the others,
     * whose own children may match; else the first child running app code
     * (the thread may have changed its copy of the context: asgiref sets
     * its variables again there). */
    for (int pass = 0; pass < 4; pass++) {
        for (size_t i = 0; i < k.n; i++) {
            int match = rp_compat_context_vars(&engine.compat, k.ctx[i])
                == want;
            int app = pass != 1 && pass != 2
                && runs_app_code(s, k.coro[i], base + n);
            int wanted = pass == 0 ? match && app
                : pass == 1 ? match : pass == 2 ? !match : app;
            if (!wanted) {
                continue;
            }
            int rc = append_task_for(s, k.coro[i], want, len, base + n,
                                     level + 1);
            if (rc != 0 || pass != 2) {
                return rc < 0 ? -1 : 1;
            }
            *len = saved;   /* nothing for us down there */
        }
    }
    return 0;
}

/* Appends the [thread <name>] node of `ts` to the path. 0, or -1 when the
 * path was cut. */
static int
append_thread(rp_session *s, PyThreadState *ts, size_t *len)
{
    if (*len >= s->max_depth) {
        engine.path[(*len)++] = s->codes.truncated_id;
        s->truncated |= RP_REPORT_TRUNC_DEPTH;
        return -1;
    }
    int is_new = 0;
    uint32_t id = rp_codetable_thread(&s->codes, ts->thread_id, &is_new);
    if (id == RP_NONE) {
        s->tree.truncated |= s->codes.full_reason;
        return -1;
    }
    if (is_new) {
        /* Looked up once per thread and session. */
        rp_codetable_set_name(&s->codes, id, thread_name(ts->thread_id));
    }
    engine.path[(*len)++] = id;
    return 0;
}

/* The greenlet switches seen on the thread of `ts`, or NULL. */
static glet_thread *
glet_entry(PyThreadState *ts, int create)
{
    for (size_t i = 0; i < engine.n_glets; i++) {
        if (engine.glets[i].ts_id == ts->id) {
            return &engine.glets[i];
        }
    }
    if (!create) {
        return NULL;
    }
    if (engine.n_glets == MAX_GREENLET_THREADS) {
        /* Forget the oldest thread (it may be gone). */
        memmove(&engine.glets[0], &engine.glets[1],
                (MAX_GREENLET_THREADS - 1) * sizeof(glet_thread));
        engine.n_glets--;
    }
    glet_thread *g = &engine.glets[engine.n_glets++];
    memset(g, 0, sizeof(*g));
    g->ts_id = ts->id;
    return g;
}

static glet_link *
glet_link_of(glet_thread *g, const void *target)
{
    for (size_t i = 0; i < g->n; i++) {
        if (g->links[i].target == target) {
            return &g->links[i];
        }
    }
    return NULL;
}

/* Walks the stack of thread `ts` into engine.frames and returns its
 * length. When the thread runs a greenlet (its frames end at the
 * greenlet's start), the walk goes on at the frame that switched to it,
 * greenlet after greenlet: the stack as the code sees it. */
static size_t
walk_thread(PyThreadState *ts)
{
    int more;
    size_t n = rp_compat_walk(&engine.compat, ts, &engine.frames,
                              &engine.frames_cap, MAX_FRAMES, &more);
    glet_thread *g = engine.n_glets ? glet_entry(ts, 0) : NULL;
    const void *cur = g != NULL ? g->current : NULL;
    for (size_t hops = 0; cur != NULL && !more && hops < MAX_GREENLET_LINKS;
            hops++) {
        glet_link *l = glet_link_of(g, cur);
        if (l == NULL || l->switcher == NULL) {
            break;
        }
        n = rp_compat_walk_from(&engine.compat, l->switcher, &engine.frames,
                                &engine.frames_cap, n, MAX_FRAMES, &more);
        cur = l->origin;
    }
    return n;
}

/* The greenlet.settrace hook, called with (event, (origin, target)) on
 * the thread that switched, GIL held, once target runs. Origin is
 * suspended: its top frame (gr_frame) is the one that switched to target,
 * and stays as it is while target runs. A main greenlet's frames go down
 * to the thread's own: no link for it. Never raises. */
static PyObject *
greenlet_hook(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *event, *pair, *parent = NULL, *frame = NULL;
    if (PyTuple_Check(args) && PyTuple_GET_SIZE(args) == 2
            && PyUnicode_Check(event = PyTuple_GET_ITEM(args, 0))
            && PyTuple_Check(pair = PyTuple_GET_ITEM(args, 1))
            && PyTuple_GET_SIZE(pair) == 2) {
        PyThreadState *ts = PyThreadState_Get();
        glet_thread *g = glet_entry(ts, 1);
        PyObject *origin = PyTuple_GET_ITEM(pair, 0);
        PyObject *target = PyTuple_GET_ITEM(pair, 1);
        g->current = target;
        parent = PyObject_GetAttrString(target, "parent");
        frame = PyObject_GetAttrString(origin, "gr_frame");
        if (parent == NULL || parent == Py_None || frame == NULL
                || !PyFrame_Check(frame)) {
            goto done;      /* a main greenlet, or no frame to go on at */
        }
        glet_link *l = glet_link_of(g, target);
        if (l == NULL) {
            if (g->n == MAX_GREENLET_LINKS) {
                memmove(&g->links[0], &g->links[1],
                        (MAX_GREENLET_LINKS - 1) * sizeof(glet_link));
                g->n--;
            }
            l = &g->links[g->n++];
            l->target = target;
        }
        l->origin = origin;
        /* The origin greenlet holds its top frame object while suspended. */
        l->switcher = rp_compat_frame_key(&engine.compat,
                                          (PyFrameObject *)frame);
    }
done:
    Py_XDECREF(parent);
    Py_XDECREF(frame);
    PyErr_Clear();
    Py_RETURN_NONE;
}

static PyMethodDef greenlet_hook_def = {
    "_reqprof_greenlet_hook", greenlet_hook, METH_VARARGS,
    "reqprof: follows greenlet switches for the profiles (greenlet.settrace).",
};

/* When greenlet is imported, sets the hook as this thread's greenlet trace
 * function, unless another one is set (then greenlets are not followed on
 * this thread). Never fails. */
static void
ensure_greenlet_hook(void)
{
    rp_saved_error saved;
    RP_ERROR_SAVE(&saved);
    PyObject *mod = PyImport_GetModule(engine.name_greenlet);
    PyObject *tracer = NULL, *r = NULL;
    if (mod == NULL) {
        goto done;
    }
    if (engine.greenlet_hook == NULL) {
        engine.greenlet_hook = PyCFunction_New(&greenlet_hook_def, NULL);
        if (engine.greenlet_hook == NULL) {
            goto done;
        }
    }
    tracer = PyObject_CallMethod(mod, "gettrace", NULL);
    if (tracer == Py_None) {
        r = PyObject_CallMethod(mod, "settrace", "O", engine.greenlet_hook);
    }
done:
    Py_XDECREF(mod);
    Py_XDECREF(tracer);
    Py_XDECREF(r);
    PyErr_Clear();
    RP_ERROR_RESTORE(&saved);
}

/* Records what thread `ts` runs for session `s`, counting `count`
 * samples. While `ts` runs a collection, the frames it runs (finalizers)
 * go under a [gc] node below the frame that triggered it. */
static void
record_running(rp_session *s, PyThreadState *ts, const rp_frame *frames,
               size_t n, uint64_t wall, uint64_t cpu, uint64_t count)
{
    size_t len = path_start(s);
    uint32_t loc = RP_NONE;
    long start = -1;
    long gc_split = NO_GC;
    int found = 0;
    if (engine.gc_active && ts == engine.gc_ts) {
        gc_split = LONG_MAX;
        for (size_t i = 0; i < n; i++) {
            if (frames[i].key == engine.gc_trigger) {
                gc_split = (long)i;
                break;
            }
        }
    }
    for (size_t i = 0; i < n && !found; i++) {
        if (frames[i].key == s->root_key && frames[i].code == s->root_code) {
            start = (long)i - 1;
            found = 1;
        }
    }
    if (found && start >= 0 && s->fold_code != NULL
            && frames[start].code == s->fold_code) {
        start--;    /* the decorated function is the root itself */
    }
    if (!found) {
        /* The root is not on this stack: work done for the session by a
         * child task or a worker thread. Hang it under the frame waiting
         * for it, and under a [thread] node when on another thread. */
        const void *want = ts->thread_id != s->origin_thread && s->coro
            ? rp_compat_context_vars(&engine.compat, ts->context) : NULL;
        engine.await_leaves = 0;
        if (s->mode == RP_MODE_ENABLED
                && (want != NULL ? append_task_for(s, s->coro, want, &len, 0, 0)
                                 : append_await_chain(s, &len, &loc)) < 0) {
            goto record;
        }
        loc = RP_NONE;
        if (ts->thread_id != s->origin_thread
                && append_thread(s, ts, &len) < 0) {
            goto record;
        }
        start = anchor(frames, n);
    }
    engine.gc_path_len = 0;
    long last = append_frames(s, frames, start, &len, gc_split);
    loc = (last >= 0 && frames[last].lasti >= 0)
        ? (uint32_t)frames[last].lasti : RP_NONE;
    if (engine.gc_path_len > 0 && engine.gc_path_len < len) {
        /* A tick inside a collection (its frames run below [gc]: a
         * finalizer let the GIL go). Of its time, what passed before the
         * collection started belongs to the stack that triggered it, and
         * what the tick waited for the GIL to the collector itself (which
         * never lets it go): only the rest is the finalizer's. */
        /* (Earlier collections since the previous tick were charged to
         * [gc] already and are not in this tick's weight.) */
        uint64_t before = engine.gc_start_ns > s->prev_ns
            ? engine.gc_start_ns - s->prev_ns : 0;
        before = before > s->tick_credit_ns ? before - s->tick_credit_ns : 0;
        if (before > wall) {
            before = wall;
        }
        uint64_t own = engine.tick_wait_ns < wall - before
            ? engine.tick_wait_ns : wall - before;
        uint64_t before_cpu = wall ? (uint64_t)((double)cpu * before / wall)
                                   : 0;
        uint64_t own_cpu = wall ? (uint64_t)((double)cpu * own / wall) : 0;
        if (before > 0) {
            add_time(s, engine.gc_path_len - 1, RP_NONE, before, before_cpu,
                     0);
        }
        if (own > 0) {
            add_time(s, engine.gc_path_len, RP_NONE, own, own_cpu, 0);
        }
        wall -= before + own;
        cpu -= before_cpu + own_cpu;
    }
record:
    add_time(s, len, loc, wall, cpu, count);
    s->n_running += count;
}

/* Records time that no sample saw (the end of a session or of its
 * response: what ran since its last tick is not known) as [unsampled]:
 * time, but no sample (the report's sample count is the ticks that saw
 * the session). */
static void
record_unsampled(rp_session *s, uint64_t wall, uint64_t cpu)
{
    size_t len = path_start(s);
    engine.path[len++] = s->codes.unsampled_id;
    add_time(s, len, RP_NONE, wall, cpu, 0);
}

/* Records a tick in which no thread ran for `s`. */
static void
record_waiting(rp_session *s, uint64_t wall)
{
    size_t len = path_start(s);
    uint64_t count = 1;
    engine.await_leaves = 0;
    if (s->mode == RP_MODE_ENABLED && s->coro != NULL
            && record_await(s, s->coro, len, 0, wall, &count, 0)) {
        s->n_await++;
        return;
    }
    if (s->mode == RP_MODE_DISABLED) {
        return;     /* its thread is gone: nothing ran for it */
    }
    engine.path[len++] = s->codes.out_of_context_id;
    add_sample(s, len, RP_NONE, wall, 0);
    s->n_out_of_context++;
}

/* ---- snapshots taken during a wait ---------------------------------------- */

/* The frames of snapshot run `run` into engine.snap_frames, for session
 * `s`: each code pointer must be proven a live code object first, as one
 * held by the session's code table or one on the stack `cur` (of `n_cur`
 * frames) just walked with the GIL. Returns the number of frames, or 0
 * when the snapshot cannot be used (a code pointer not proven, an
 * instruction outside its code, no frame left). */
static size_t
snapshot_frames(rp_session *s, const snap_run *run, const rp_frame *cur,
                size_t n_cur)
{
    size_t m = 0;
    for (size_t i = 0; i < run->n; i++) {
        const rp_raw_frame *raw = &run->frames[i];
        int live = rp_codetable_has_code(&s->codes, raw->code);
        for (size_t j = 0; j < n_cur && !live; j++) {
            live = (const void *)cur[j].code == raw->code;
        }
        if (!live) {
            return 0;
        }
        int r = rp_compat_snapshot_frame(&engine.compat, raw,
                                         &engine.snap_frames[m]);
        if (r < 0) {
            return 0;
        }
        m += (size_t)r;
    }
    return m;
}

/* Whether the `n` frames hold the root frame of session `s`. */
static int
has_root(const rp_session *s, const rp_frame *frames, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (frames[i].key == s->root_key && frames[i].code == s->root_code) {
            return 1;
        }
    }
    return 0;
}

/* Before the tick's own sample of thread `ts` for session `s`: the
 * snapshots of `ts` taken while the sampler waited for the GIL, each run
 * recorded on its stack with the time from the previous look to its last
 * snapshot, counting one sample per snapshot (each is one look at the
 * stack). What is left of the tick's weight (*wall, *cpu: the CPU split in
 * proportion) stays for the stack seen now. A snapshot that cannot be used
 * leaves its time to the next look: at worst, today's one weighted
 * sample. Not done when part of the weight is credited to a collection. */
static void
record_snapshots(rp_session *s, PyThreadState *ts, const rp_frame *cur,
                 size_t n_cur, uint64_t *wall, uint64_t *cpu)
{
    if (s->tick_credit_ns > 0 || engine.gc_active || *wall == 0) {
        return;
    }
    uint64_t from = s->last_ns - *wall;     /* the previous look */
    const uint64_t total = *wall, total_cpu = *cpu;
    for (size_t r = 0; r < engine.n_runs; r++) {
        const snap_run *run = &engine.runs[r];
        if (run->ts != (const void *)ts || run->ts_id != ts->id
                || run->last_ns <= from || run->last_ns >= s->last_ns) {
            continue;
        }
        size_t m = snapshot_frames(s, run, cur, n_cur);
        if (m == 0 || n_cur == 0
                || engine.snap_frames[m - 1].key != cur[n_cur - 1].key) {
            /* Not the thread's whole stack (a greenlet's frames end at its
             * start; the walk goes on at the frame that switched to it). */
            continue;
        }
        if (run->ctx != (const void *)ts->context
                && !has_root(s, engine.snap_frames, m)) {
            /* The thread ran in another context then (on an event loop,
             * another request's task): the tick attributes it by the
             * context it runs in now, so only a stack through this
             * session's root is surely its own. */
            continue;
        }
        uint64_t seg = run->last_ns - from;
        uint64_t count = run->count;
        if (run->first_ns <= from && engine.wait_iv_ns > 0) {
            /* The session started during this run: its looks since. */
            uint64_t since = (run->last_ns - from) / engine.wait_iv_ns + 1;
            count = since < count ? since : count;
        }
        uint64_t seg_cpu = (uint64_t)((double)total_cpu * seg / total);
        seg_cpu = seg_cpu < *cpu ? seg_cpu : *cpu;
        record_running(s, ts, engine.snap_frames, m, seg, seg_cpu, count);
        engine.snapshot_samples += count;
        *wall -= seg;
        *cpu -= seg_cpu;
        from = run->last_ns;
    }
}

/* Tells the watch thread whose stacks are worth a snapshot: the threads
 * the last tick sampled for a session, and each active session's starting
 * thread (a long C call right at its start has no tick before it). GIL
 * held; takes assist_mu (never held while waiting for the GIL). */
static void
publish_snap_want(void)
{
    if (!engine.snap_on) {
        return;
    }
    const void *want[MAX_SNAP_THREADS];
    size_t n = engine.n_tick_threads;
    memcpy(want, engine.tick_threads, n * sizeof(want[0]));
    for (size_t i = 0; i < engine.n_active && n < MAX_SNAP_THREADS; i++) {
        const void *ts = engine.active[i]->origin_ts;
        size_t j = 0;
        while (j < n && want[j] != ts) {
            j++;
        }
        if (j == n) {
            want[n++] = ts;
        }
    }
    pthread_mutex_lock(&engine.assist_mu);
    memcpy(engine.snap_want, want, n * sizeof(want[0]));
    engine.n_snap_want = n;
    pthread_mutex_unlock(&engine.assist_mu);
}

/* ---- the tick ------------------------------------------------------------ */

/* Whether thread `ts`, whose context holds the markers `markers` (a tuple,
 * borrowed, or NULL), runs for session `s`. */
static int
runs_for(const rp_session *s, PyThreadState *ts, PyObject *markers)
{
    switch (s->mode) {
    case RP_MODE_DISABLED:
        return ts->thread_id == s->origin_thread;
    case RP_MODE_STRICT:
        return ts->context != NULL && ts->context == s->context;
    case RP_MODE_ENABLED:
        break;
    }
    if (s->coro == NULL && ts->thread_id == s->origin_thread) {
        return 1;   /* outside any task, its thread's work is its own */
    }
    if (markers != NULL) {
        Py_ssize_t n = PyTuple_GET_SIZE(markers);
        for (Py_ssize_t i = 0; i < n; i++) {
            if (PyTuple_GET_ITEM(markers, i) == s->marker) {
                return 1;
            }
        }
    }
    return 0;
}

/* Whether session `s` samples at `now`, setting its weight (the wall time
 * since its previous sample). A session asking a longer interval than the
 * engine's skips ticks, except its first (a session starts between ticks:
 * its first one must count, or a short session would get no sample at
 * all); one past its duration cap records nothing more. A tick of the
 * sampler's (not `force`d) that takes it adds its interval to the
 * session's, for their mean. */
static int
mark_due(rp_session *s, uint64_t now, int force)
{
    s->due = 0;
    if (s->max_duration_ns && now - s->start_ns > s->max_duration_ns) {
        s->truncated |= RP_REPORT_TRUNC_DURATION;
        return 0;
    }
    if (now <= s->last_ns) {
        return 0;
    }
    if (!force && s->last_ns != s->start_ns
            && now - s->last_ns < s->interval_ns - s->interval_ns / 4) {
        return 0;
    }
    if (!force) {
        s->tick_intervals_ns += tick_interval_of(s);
        s->n_ticks++;
    }
    /* Collections since the previous tick were charged to [gc] already. */
    uint64_t w = now - s->last_ns;
    uint64_t credit = s->gc_credit_ns < w ? s->gc_credit_ns : w;
    s->gc_credit_ns = 0;
    s->prev_ns = s->last_ns;
    s->tick_credit_ns = credit;
    s->last_ns = now;
    s->weight = w - credit;
    s->due = s->weight > 0;
    return s->due;
}

/* Records one sample for every session marked due: the threads running for
 * it, or where it waits. GIL held; the cyclic GC stays off meanwhile so no
 * finaliser runs in here. */
static void
sample_due(void)
{
    engine.tick++;
    engine.tick_s = (double)now_ns() / 1e9;
    engine.n_tick_threads = 0;
#ifdef RP_HAVE_GC_TOGGLE
    int gc_was_on = PyGC_Disable();
#endif
    for (size_t i = 0; i < engine.n_active; i++) {
        rp_session *s = engine.active[i];
        if (s->due) {
            s->was_holding = s->holding;
            s->holding = 0;
        }
    }
    for (PyThreadState *ts = PyInterpreterState_ThreadHead(engine.interp);
            ts != NULL; ts = PyThreadState_Next(ts)) {
        if (ts == engine.sampler_ts) {
            continue;
        }
        PyObject *markers = rp_compat_context_get(ts->context,
                                                  engine.sessions_var);
        if (markers != NULL && !PyTuple_Check(markers)) {
            markers = NULL;
        }
        size_t n = 0;
        int walked = 0;
        uint64_t cpu = 0;
        for (size_t i = 0; i < engine.n_active; i++) {
            rp_session *s = engine.active[i];
            if (!s->due || !runs_for(s, ts, markers)) {
                continue;
            }
            if (!walked) {
                n = walk_thread(ts);
                cpu = cpu_delta(ts);
                walked = 1;
                if (engine.n_tick_threads < MAX_SNAP_THREADS) {
                    engine.tick_threads[engine.n_tick_threads++] = ts;
                }
            }
            uint64_t wall = s->weight;
            uint64_t own_cpu = cpu < wall ? cpu : wall;
            if (engine.n_runs > 0) {
                record_snapshots(s, ts, engine.frames, n, &wall, &own_cpu);
            }
            record_running(s, ts, engine.frames, n, wall, own_cpu, 1);
            if (s->coro != NULL && ts->thread_id == s->origin_thread
                    && !engine.loop_busy_off) {
                note_hold(s, engine.frames, n, s->weight);
            }
            s->sampled_tick = engine.tick;
        }
    }
    for (size_t i = 0; i < engine.n_active; i++) {
        rp_session *s = engine.active[i];
        if (s->due && s->sampled_tick != engine.tick) {
            record_waiting(s, s->weight);
        }
        s->due = 0;
    }
    publish_snap_want();
#ifdef RP_HAVE_GC_TOGGLE
    if (gc_was_on) {
        PyGC_Enable();
    }
#endif
}

/* One tick of the sampler thread, with the GIL held. `now` is when the GIL
 * was taken. */
static void
tick(uint64_t now)
{
    int any = 0;
    for (size_t i = 0; i < engine.n_active; i++) {
        any |= mark_due(engine.active[i], now, 0);
    }
    if (any) {
        sample_due();
    }
}

/* ---- garbage collections ------------------------------------------------- */

/* The gc.callbacks hook, called by the collector with (phase, info) on the
 * thread that collects, GIL held, before ("start") and after ("stop") each
 * collection. While sessions run, a collection's time goes to [gc] under
 * the stack that triggered it, in the sessions that thread runs for, and
 * the next tick does not charge it again (gc_credit_ns). A tick that falls
 * inside the collection (a finalizer let the GIL go) puts the finalizers'
 * frames under [gc] too (record_running). Never raises. */
static PyObject *
gc_hook(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *phase = PyTuple_Check(args) && PyTuple_GET_SIZE(args) > 0
        ? PyTuple_GET_ITEM(args, 0) : NULL;
    if (phase == NULL || !PyUnicode_Check(phase) || engine.n_active == 0) {
        engine.gc_active = 0;
        Py_RETURN_NONE;
    }
    PyThreadState *ts = PyThreadState_Get();
    if (PyUnicode_CompareWithASCIIString(phase, "start") == 0) {
        engine.gc_active = 1;
        engine.gc_ts = ts;
        engine.gc_trigger = rp_compat_top_frame_key(&engine.compat, ts);
        engine.gc_start_cpu = rp_compat_thread_cpu_ns(ts);
        engine.gc_start_ns = now_ns();
        Py_RETURN_NONE;
    }
    if (!engine.gc_active || engine.gc_ts != ts) {
        engine.gc_active = 0;
        Py_RETURN_NONE;
    }
    uint64_t now = now_ns();
    uint64_t took = now - engine.gc_start_ns;
    int64_t cpu_now = rp_compat_thread_cpu_ns(ts);
    uint64_t gc_cpu = cpu_now >= 0 && engine.gc_start_cpu >= 0
        && cpu_now > engine.gc_start_cpu
        ? (uint64_t)(cpu_now - engine.gc_start_cpu) : 0;
    engine.gc_collections++;
    /* The next tick's CPU reading of this thread must not count it. */
    thread_cpu *e = cpu_entry(ts->thread_id);
    if (e != NULL && e->last_ns >= 0) {
        e->last_ns += (int64_t)gc_cpu;
    }
    PyObject *markers = rp_compat_context_get(ts->context,
                                              engine.sessions_var);
    if (markers != NULL && !PyTuple_Check(markers)) {
        markers = NULL;
    }
    size_t n = 0;
    int walked = 0;
    for (size_t i = 0; i < engine.n_active; i++) {
        rp_session *s = engine.active[i];
        if (s->state != RP_SESSION_RUNNING || !runs_for(s, ts, markers)) {
            continue;
        }
        s->gc_ns += took;
        /* What ticks during the collection did not cover yet. */
        uint64_t from = s->last_ns > engine.gc_start_ns ? s->last_ns
                                                        : engine.gc_start_ns;
        if (now <= from) {
            continue;
        }
        uint64_t wall = now - from;
        if (!walked) {
            n = walk_thread(ts);
            walked = 1;
        }
        /* The collection is over: the stack is the one that triggered it,
         * and [gc] is its leaf. Counted as time, not as a tick. */
        record_running(s, ts, engine.frames, n, wall,
                       gc_cpu < wall ? gc_cpu : wall, 0);
        s->gc_credit_ns += wall;
    }
    engine.gc_active = 0;
    PyErr_Clear();
    Py_RETURN_NONE;
}

static PyMethodDef gc_hook_def = {
    "_reqprof_gc_hook", gc_hook, METH_VARARGS,
    "reqprof: times garbage collections for the profiles (gc.callbacks).",
};

/* Puts the hook in gc.callbacks unless it is there (an app may have reset
 * the list). 0, or -1 with an exception set. */
static int
ensure_gc_hook(void)
{
    int rc = -1;
    PyObject *gc = NULL, *callbacks = NULL;
    if (engine.gc_hook == NULL) {
        engine.gc_hook = PyCFunction_New(&gc_hook_def, NULL);
        if (engine.gc_hook == NULL) {
            goto done;
        }
    }
    /* sys.modules' gc (a session starts with every request: no import
     * machinery when it is there, as it always is). */
    gc = PyImport_GetModule(engine.name_gc);
    if (gc == NULL && !PyErr_Occurred()) {
        gc = PyImport_Import(engine.name_gc);
    }
    if (gc == NULL) {
        goto done;
    }
    callbacks = PyObject_GetAttr(gc, engine.name_callbacks);
    if (callbacks == NULL || !PyList_Check(callbacks)) {
        if (callbacks != NULL) {
            PyErr_SetString(PyExc_TypeError, "gc.callbacks is not a list");
        }
        goto done;
    }
    int has = PySequence_Contains(callbacks, engine.gc_hook);
    if (has < 0 || (!has && PyList_Append(callbacks, engine.gc_hook) < 0)) {
        goto done;
    }
    rc = 0;
done:
    Py_XDECREF(gc);
    Py_XDECREF(callbacks);
    return rc;
}

/* ---- the sampler thread -------------------------------------------------- */

static void
add_ns(struct timespec *t, uint64_t ns)
{
    uint64_t total = (uint64_t)t->tv_nsec + ns;
    t->tv_sec += (time_t)(total / 1000000000u);
    t->tv_nsec = (long)(total % 1000000000u);
}

/* The assist thread: repeats the GIL-drop request while the sampler waits
 * for the GIL, each time the sampler asks (see the file comment). */
static void *
assist_main(void *arg)
{
    (void)arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    pthread_setname_np(pthread_self(), "reqprof-assist");
    uint64_t seen = 0;
    uint64_t cpu_seen = own_cpu_ns();
    pthread_mutex_lock(&engine.mu);
    for (;;) {
        while (!engine.stop && engine.assist_seq == seen) {
            pthread_cond_wait(&engine.assist_cv, &engine.mu);
        }
        if (engine.stop) {
            break;
        }
        seen = engine.assist_seq;
        pthread_mutex_unlock(&engine.mu);
        /* While the GIL changes hands (to other threads), keep asking
         * every period: each request is another draw. When it stops
         * changing hands, the holder is in a long C call that checks no
         * request: back off rather than burn CPU beside it. */
        int waiting = 1;
        uint64_t period_ns = ASSIST_PERIOD_NS;
        unsigned stuck = 0;
        unsigned long switches = rp_compat_gil_switches(&engine.compat);
        for (uint64_t waited = 0; waited < ASSIST_MAX_NS && waiting;
                waited += period_ns) {
            const struct timespec period = {0, (long)period_ns};
            nanosleep(&period, NULL);
            pthread_mutex_lock(&engine.assist_mu);
            waiting = engine.gil_waiting;
            if (waiting) {
                rp_compat_request_gil(&engine.compat, engine.interp);
            }
            pthread_mutex_unlock(&engine.assist_mu);
            unsigned long now_switches = rp_compat_gil_switches(&engine.compat);
            if (now_switches != switches) {
                stuck = 0;
                period_ns = ASSIST_PERIOD_NS;
            }
            else if (++stuck >= 2 && period_ns < ASSIST_PERIOD_MAX_NS) {
                period_ns *= 2;
            }
            switches = now_switches;
        }
        add_own_cpu(&engine.assist_cpu_ns, &cpu_seen);
        pthread_mutex_lock(&engine.mu);
    }
    pthread_mutex_unlock(&engine.mu);
    return NULL;
}

/* Starts a helper thread (the assist or watch thread: they never run
 * Python code, a small stack is enough) running `main`: 1, or 0 when it
 * could not start. */
static int
start_helper(pthread_t *thread, void *(*main)(void *))
{
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    int ok = pthread_create(thread, &attr, main, NULL) == 0;
    pthread_attr_destroy(&attr);
    return ok;
}

/* Waits on watch_cv (assist_mu held) until monotonic time `at`. */
static void
watch_sleep_until(uint64_t at)
{
    struct timespec t = {(time_t)(at / 1000000000u),
                         (long)(at % 1000000000u)};
    pthread_cond_timedwait(&engine.watch_cv, &engine.assist_mu, &t);
}

/* Keeps a snapshot (`h`: of thread h->ts, its h->n frames in `buf`, taken
 * at `t`) for the current wait: one more look at that thread's last run
 * when alike, else a new run while there is room. assist_mu held. */
static void
keep_snapshot(const rp_snap_hint *h, const rp_raw_frame *buf, uint64_t t)
{
    engine.snapshots++;
    snap_run *last = NULL;
    for (size_t r = engine.n_runs; r > 0 && last == NULL; r--) {
        if (engine.runs[r - 1].ts == h->ts) {
            last = &engine.runs[r - 1];
        }
    }
    if (last != NULL && last->ts_id == h->ts_id && last->ctx == h->ctx
            && last->n == h->n
            && memcmp(last->frames, buf, h->n * sizeof(rp_raw_frame)) == 0) {
        last->count++;
        last->last_ns = t;
        return;
    }
    if (engine.n_runs == MAX_SNAP_RUNS) {
        return;     /* its time goes to the next look that is kept */
    }
    snap_run *run = &engine.runs[engine.n_runs++];
    run->ts = h->ts;
    run->ts_id = h->ts_id;
    run->ctx = h->ctx;
    run->first_ns = run->last_ns = t;
    run->count = 1;
    run->n = h->n;
    memcpy(run->frames, buf, h->n * sizeof(rp_raw_frame));
}

/* The watch thread: while the sampler waits for the GIL past one
 * interval, snapshots the holder's stack at each interval missed (see the
 * file comment). Polls for a wait every WATCH_POLL_NS while sessions are
 * active; parks on watch_cv when none is. Never takes the GIL. */
static void *
watch_main(void *arg)
{
    (void)arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    pthread_setname_np(pthread_self(), "reqprof-watch");
    uint64_t cpu_seen = own_cpu_ns();
    uint64_t seq = 0, looks = 0;
    uint64_t not_before = 0;        /* backing off: nothing to read */
    uint64_t hot_until = 0;         /* waits gave snapshots lately */
    const void *want[MAX_SNAP_THREADS];
    int ok[MAX_SNAP_THREADS];
    pthread_mutex_lock(&engine.assist_mu);
    while (!engine.watch_stop) {
        uint64_t now = now_ns();
        if (!engine.snap_waiting) {
            if (load_wanted() == 0) {
                engine.watch_parked = 1;
                pthread_cond_wait(&engine.watch_cv, &engine.assist_mu);
                engine.watch_parked = 0;
            }
            else {
                /* Waits that gave snapshots come in streaks (threads
                 * competing for the GIL, repeated C calls): look for the
                 * next one at the interval for a while. */
                uint64_t iv = engine.wait_iv_ns ? engine.wait_iv_ns
                                                : WATCH_POLL_NS;
                watch_sleep_until(now + (now < hot_until && iv < WATCH_POLL_NS
                                         ? iv : WATCH_POLL_NS));
            }
            add_own_cpu(&engine.assist_cpu_ns, &cpu_seen);
            continue;
        }
        if (engine.wait_seq != seq) {
            seq = engine.wait_seq;
            looks = 0;
        }
        uint64_t iv = engine.wait_iv_ns ? engine.wait_iv_ns : 1000000u;
        uint64_t due = engine.wait_start_ns + (looks + 1) * iv;
        due = due > not_before ? due : not_before;
        if (now < due) {
            watch_sleep_until(due);
            continue;
        }
        looks = (now - engine.wait_start_ns) / iv;  /* missed ones skipped */
        size_t n_want = engine.n_snap_want;
        memcpy(want, engine.snap_want, n_want * sizeof(want[0]));
        pthread_mutex_unlock(&engine.assist_mu);
        int kept = 0;
        for (size_t i = 0; i < n_want; i++) {
            ok[i] = rp_compat_snapshot(&engine.compat, want[i],
                                       engine.watch_bufs[i], SNAP_DEPTH,
                                       &engine.watch_hints[i]);
            kept |= ok[i] > 0;
        }
        uint64_t t = now_ns();
        /* Nothing could be read: looking at each interval would cost for
         * nothing. */
        not_before = kept ? 0 : t + WATCH_POLL_NS;
        if (kept) {
            hot_until = t + WATCH_HOT_NS;
        }
        add_own_cpu(&engine.assist_cpu_ns, &cpu_seen);
        pthread_mutex_lock(&engine.assist_mu);
        for (size_t i = 0; i < n_want && engine.snap_waiting
                && engine.wait_seq == seq; i++) {
            if (ok[i] > 0) {
                keep_snapshot(&engine.watch_hints[i], engine.watch_bufs[i], t);
            }
            else if (ok[i] < 0) {
                engine.snapshots_torn++;
            }
        }
    }
    pthread_mutex_unlock(&engine.assist_mu);
    return NULL;
}

/* The sampler is about to wait for the GIL from `t0`, on a schedule of
 * `interval`: the watch thread may snapshot from t0 + interval on. Creates
 * the watch thread the first time. Called without the GIL or `mu`. */
static void
snap_begin(uint64_t t0, uint64_t interval)
{
    if (!engine.snap_on) {
        return;
    }
    pthread_mutex_lock(&engine.assist_mu);
    if (!engine.watch_alive && !engine.watch_stop) {
        engine.watch_alive = start_helper(&engine.watch_thread, watch_main);
    }
    engine.n_runs = 0;
    engine.wait_start_ns = t0;
    engine.wait_iv_ns = interval;
    engine.wait_seq++;
    engine.snap_waiting = 1;
    if (engine.watch_parked) {
        pthread_cond_signal(&engine.watch_cv);
    }
    pthread_mutex_unlock(&engine.assist_mu);
}

/* The sampler holds the GIL: no snapshot is kept any more; the runs are
 * its own until the next snap_begin. */
static void
snap_end(void)
{
    if (!engine.snap_on) {
        return;
    }
    pthread_mutex_lock(&engine.assist_mu);
    engine.snap_waiting = 0;
    pthread_mutex_unlock(&engine.assist_mu);
}

/* Asks the assist thread to help with the wait about to start, creating
 * it the first time. Called by the sampler without the GIL or `mu`. */
static void
ask_assist(void)
{
    pthread_mutex_lock(&engine.mu);
    if (!engine.assist_alive && !engine.stop) {
        engine.assist_alive = start_helper(&engine.assist_thread, assist_main);
    }
    engine.assist_seq++;
    pthread_cond_signal(&engine.assist_cv);
    pthread_mutex_unlock(&engine.mu);
}

/* Whether the published schedule asks for shorter ticks than the current
 * one (asked `asked`, ticking at `effective`): a shorter interval, or no
 * budget any more while the budget had lengthened it. `mu` held. */
static int
shorter_schedule(uint64_t asked, uint64_t effective)
{
    uint64_t interval = load_interval();
    return interval < asked
        || (interval < effective
            && __atomic_load_n(&engine.budget_ns, __ATOMIC_RELAXED) == 0);
}

static void *
sampler_main(void *arg)
{
    (void)arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);    /* signals go elsewhere */
    pthread_setname_np(pthread_self(), "reqprof-sampler");

    PyThreadState *ts;
    struct timespec next;
    unsigned assist_ticks = 0;
    uint64_t cpu_seen = own_cpu_ns();
    clock_gettime(CLOCK_MONOTONIC, &next);
    rp_budget_resume(&engine.budget, now_ns());
    pthread_mutex_lock(&engine.mu);
    ts = engine.sampler_ts;
    for (;;) {
        if (!engine.stop && load_wanted() == 0) {
            engine.parked = 1;
            while (!engine.stop && load_wanted() == 0) {
                /* Timed: a session start that could not take `mu` (see
                 * lock_briefly) could not wake us either. */
                clock_gettime(CLOCK_MONOTONIC, &next);
                add_ns(&next, PARK_RECHECK_NS);
                pthread_cond_timedwait(&engine.cv, &engine.mu, &next);
            }
            engine.parked = 0;
            clock_gettime(CLOCK_MONOTONIC, &next);
            rp_budget_resume(&engine.budget, now_ns());
        }
        if (engine.stop) {
            break;
        }
        uint64_t asked = load_interval();
        uint64_t budget = __atomic_load_n(&engine.budget_ns, __ATOMIC_RELAXED);
        uint64_t interval = budget ? rp_budget_interval(&engine.budget, asked)
                                   : asked;
        engine.tick_interval_ns = asked;
        engine.tick_effective_ns = interval;
        __atomic_store_n(&engine.effective_ns, interval, __ATOMIC_RELAXED);
        add_ns(&next, interval);
        /* Fell behind by more than a tick (the GIL was held for long):
         * restart the schedule from now rather than burst. */
        uint64_t t = now_ns();
        uint64_t due = (uint64_t)next.tv_sec * 1000000000u
            + (uint64_t)next.tv_nsec;
        if (due + interval < t) {
            engine.late_ticks++;
            next.tv_sec = (time_t)(t / 1000000000u);
            next.tv_nsec = (long)(t % 1000000000u);
        }
        int rc = 0;
        while (!engine.stop && load_wanted() > 0 && rc != ETIMEDOUT
                && !shorter_schedule(asked, interval)) {
            rc = pthread_cond_timedwait(&engine.cv, &engine.mu, &next);
        }
        uint64_t scheduled = (uint64_t)next.tv_sec * 1000000000u
            + (uint64_t)next.tv_nsec;
        if (engine.stop) {
            break;
        }
        if (rc != ETIMEDOUT) {
            /* A session asked a shorter interval: a new schedule from now. */
            clock_gettime(CLOCK_MONOTONIC, &next);
            continue;
        }
        if (load_wanted() == 0) {
            continue;
        }
#ifdef RP_FAULTS
        if (rp_engine_fault(RP_FAULT_WEDGE)) {  /* (its count: this thread's) */
            const struct timespec wedge = {WEDGE_NS / 1000000000u, 0};
            nanosleep(&wedge, NULL);                  /* holding mu */
        }
#endif
        pthread_mutex_unlock(&engine.mu);

        if (rp_compat_finalizing()) {
            pthread_mutex_lock(&engine.mu);
            break;
        }
        uint64_t t0 = now_ns();
        uint64_t late = t0 > scheduled ? t0 - scheduled : 0;
        unsigned long switches = rp_compat_gil_switches(&engine.compat);
        rp_compat_request_gil(&engine.compat, engine.interp);
        int assisted = assist_ticks > 0;
        if (assisted) {
            set_gil_waiting(1);
            ask_assist();
        }
        snap_begin(t0, interval);
        PyEval_RestoreThread(ts);
        snap_end();
        /* Hand-overs during the wait: ours counts one (none when we held
         * the GIL last), so more means another thread took it first. */
        switches = rp_compat_gil_switches(&engine.compat) - switches;
        if (assisted) {
            set_gil_waiting(0);
            rp_compat_withdraw_gil_request(&engine.compat, engine.interp);
        }
        uint64_t t1 = now_ns();
        if (engine.compat.fast && t1 - t0 > ASSIST_AFTER_NS
                && switches > 1) {
            assist_ticks = ASSIST_TICKS;
            engine.assisted_waits++;
        }
        else if (assist_ticks > 0) {
            assist_ticks--;
        }
        engine.tick_wait_ns = t1 - t0;
        tick(t1);
        engine.tick_wait_ns = 0;
        engine.n_runs = 0;      /* used by this tick alone */
        uint64_t t2 = now_ns();
        engine.ticks++;
        engine.late_ns += late;
        engine.gil_wait_ns += t1 - t0;
        if (t1 - t0 > engine.gil_wait_max_ns) {
            engine.gil_wait_max_ns = t1 - t0;
        }
        engine.tick_ns += t2 - t1;
        PyEval_SaveThread();
        add_own_cpu(&engine.sampler_cpu_ns, &cpu_seen);
        rp_budget_update(&engine.budget, now_ns(), rp_engine_cpu_ns(),
                         budget, asked);

        pthread_mutex_lock(&engine.mu);
    }
    pthread_mutex_unlock(&engine.mu);
    /* Our thread state needs the GIL to be cleared: the thread asking us to
     * stop waits for us with the GIL released. During finalisation it is
     * left to the runtime. */
    if (!rp_compat_finalizing()) {
        PyEval_RestoreThread(ts);
        PyThreadState_Clear(ts);
        PyThreadState_DeleteCurrent();
    }
    return NULL;
}

/* Starts the sampler thread if it is not running. GIL held. 0, or -1 with
 * an exception set. */
static int
ensure_thread(void)
{
    if (__atomic_load_n(&engine.thread_alive, __ATOMIC_ACQUIRE)) {
        return 0;       /* (without mu: see lock_briefly) */
    }
    int rc = 0;
    pthread_mutex_lock(&engine.mu);
    if (engine.thread_alive || engine.shutdown) {
        goto done;
    }
    PyThreadState *ts = PyThreadState_New(engine.interp);
    if (ts == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "reqprof: cannot create the sampler's thread state");
        rc = -1;
        goto done;
    }
    engine.sampler_ts = ts;
    engine.stop = 0;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    int err = pthread_create(&engine.thread, &attr, sampler_main, NULL);
    pthread_attr_destroy(&attr);
    if (err != 0) {
        engine.sampler_ts = NULL;
        PyThreadState_Clear(ts);
        PyThreadState_Delete(ts);
        errno = err;
        PyErr_SetFromErrno(PyExc_OSError);
        rc = -1;
        goto done;
    }
    __atomic_store_n(&engine.thread_alive, 1, __ATOMIC_RELEASE);
    engine.threads_started++;
done:
    pthread_mutex_unlock(&engine.mu);
    return rc;
}

/* Publishes the active count, smallest interval and tightest overhead
 * budget to the sampler. */
static void
publish_schedule(void)
{
    uint64_t interval = 0, budget = 0;
    for (size_t i = 0; i < engine.n_active; i++) {
        uint64_t iv = engine.active[i]->interval_ns;
        uint64_t b = engine.active[i]->budget_ns;
        if (interval == 0 || iv < interval) {
            interval = iv;
        }
        if (b != 0 && (budget == 0 || b < budget)) {
            budget = b;
        }
    }
    int locked = lock_briefly();
    __atomic_store_n(&engine.wanted, engine.n_active, __ATOMIC_RELAXED);
    __atomic_store_n(&engine.interval_ns, interval ? interval : 1000000u,
                     __ATOMIC_RELAXED);
    __atomic_store_n(&engine.budget_ns, budget, __ATOMIC_RELAXED);
    if (!locked) {
        /* The sampler is wedged (or descheduled) holding mu: it reads the
         * new schedule when it goes on. */
        engine.lock_misses++;
        return;
    }
    /* A scheduled sampler needs no wake-up for a new session (see the top
     * of this file), only for an interval shorter than its schedule's. */
    if (engine.n_active > 0
            && (engine.parked || shorter_schedule(engine.tick_interval_ns,
                                                  engine.tick_effective_ns))) {
        pthread_cond_signal(&engine.cv);
    }
    pthread_mutex_unlock(&engine.mu);
}

/* ---- sessions ------------------------------------------------------------ */

/* Sets the session marker tuple of the current context to `markers` with
 * `add` appended (if not NULL) and `remove` left out (if not NULL).
 * 0, or -1 with an exception set. */
static int
update_markers(PyObject *add, PyObject *remove)
{
    int rc = -1;
    PyObject *old = NULL, *list = NULL, *tuple = NULL, *token = NULL;
    if (PyContextVar_Get(engine.sessions_var, NULL, &old) < 0) {
        goto done;
    }
    list = PyList_New(0);
    if (list == NULL) {
        goto done;
    }
    if (old != NULL && PyTuple_Check(old)) {
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(old); i++) {
            PyObject *m = PyTuple_GET_ITEM(old, i);
            if (m != remove && PyList_Append(list, m) < 0) {
                goto done;
            }
        }
    }
    if (add != NULL && PyList_Append(list, add) < 0) {
        goto done;
    }
    tuple = PyList_AsTuple(list);
    if (tuple == NULL) {
        goto done;
    }
    token = PyContextVar_Set(engine.sessions_var, tuple);
    if (token == NULL) {
        goto done;
    }
    rc = 0;
done:
    Py_XDECREF(old);
    Py_XDECREF(list);
    Py_XDECREF(tuple);
    Py_XDECREF(token);
    return rc;
}

static void
check_fork(void)
{
    if (engine.pid != getpid()) {
        rp_engine_after_fork_child();
    }
}

/* Looks up the task types of the async libraries imported so far
 * (asyncio's C Task and Future, trio's Task), once each. Never fails: a
 * type not found is looked for again at the next session. */
static void
find_task_types(void)
{
    rp_saved_error saved;
    RP_ERROR_SAVE(&saved);
    PyObject *mod = NULL, *name = NULL;
    if (engine.asyncio_task == NULL) {
        name = PyUnicode_FromString("_asyncio");
        mod = name ? PyImport_GetModule(name) : NULL;
        if (mod != NULL) {
            engine.asyncio_task = PyObject_GetAttrString(mod, "Task");
            engine.asyncio_future = PyObject_GetAttrString(mod, "Future");
            if (engine.asyncio_task != NULL
                    && !PyType_Check(engine.asyncio_task)) {
                Py_CLEAR(engine.asyncio_task);
            }
            if (engine.asyncio_future != NULL
                    && !PyType_Check(engine.asyncio_future)) {
                Py_CLEAR(engine.asyncio_future);
            }
            if (engine.asyncio_future != NULL) {
                PyObject *d = _PyType_Lookup(
                    (PyTypeObject *)engine.asyncio_future, engine.name_state);
                engine.future_state = d != NULL
                    && Py_TYPE(d) == &PyGetSetDescr_Type
                    && ((PyGetSetDescrObject *)d)->d_getset->get != NULL
                    ? ((PyGetSetDescrObject *)d)->d_getset : NULL;
            }
        }
        Py_CLEAR(mod);
        Py_CLEAR(name);
    }
    if (engine.asyncio_timer == NULL) {
        name = PyUnicode_FromString("asyncio.events");
        mod = name ? PyImport_GetModule(name) : NULL;
        if (mod != NULL) {
            engine.asyncio_timer = PyObject_GetAttrString(mod, "TimerHandle");
            if (engine.asyncio_timer != NULL
                    && !PyType_Check(engine.asyncio_timer)) {
                Py_CLEAR(engine.asyncio_timer);
            }
            if (engine.asyncio_timer != NULL) {
                engine.when_offset = slot_offset(engine.asyncio_timer,
                                                 engine.name_when);
                engine.cancelled_offset = slot_offset(engine.asyncio_timer,
                                                      engine.name_cancelled);
                if (engine.cancelled_offset < 0) {
                    engine.when_offset = -1;    /* not the class we know */
                }
            }
        }
        Py_CLEAR(mod);
        Py_CLEAR(name);
    }
    if (engine.trio_task == NULL) {
        mod = PyImport_GetModule(engine.name_trio_lowlevel);
        if (mod != NULL) {
            engine.trio_task = PyObject_GetAttrString(mod, "Task");
            if (engine.trio_task != NULL && !PyType_Check(engine.trio_task)) {
                Py_CLEAR(engine.trio_task);
            }
        }
        Py_CLEAR(mod);
    }
    PyErr_Clear();
    RP_ERROR_RESTORE(&saved);
}

void
rp_engine_set_loop_busy(int on)
{
    engine.loop_busy_off = !on;
}

int
rp_engine_set_library_dirs(PyObject *dirs)
{
    if (!PyTuple_Check(dirs)) {
        PyErr_SetString(PyExc_TypeError, "set_library_dirs() takes a tuple");
        return -1;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(dirs);
    rp_str *p = calloc(n > 0 ? (size_t)n : 1, sizeof(rp_str));
    if (p == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t len;
        PyObject *item = PyTuple_GET_ITEM(dirs, i);
        const char *text = PyUnicode_Check(item)
            ? PyUnicode_AsUTF8AndSize(item, &len) : NULL;
        if (text == NULL || (p[i].s = malloc((size_t)len + 1)) == NULL) {
            if (text != NULL) {
                PyErr_NoMemory();
            }
            else if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_TypeError,
                                "set_library_dirs() takes a tuple of str");
            }
            for (Py_ssize_t j = 0; j < i; j++) {
                free(p[j].s);
            }
            free(p);
            return -1;
        }
        memcpy(p[i].s, text, (size_t)len + 1);
        p[i].len = (size_t)len;
    }
    for (size_t j = 0; j < engine.n_lib_prefixes; j++) {
        free(engine.lib_prefixes[j].s);
    }
    free(engine.lib_prefixes);
    engine.lib_prefixes = p;
    engine.n_lib_prefixes = (size_t)n;
    memset(engine.lib_memo, 0, sizeof(engine.lib_memo));   /* new rule */
    return 0;
}

int
rp_engine_start(rp_session *s, PyFrameObject *root_frame, PyObject *coro,
                PyCodeObject *fold_code)
{
    check_fork();
    if (RP_FAULT(RP_FAULT_START)) {
        PyErr_SetString(PyExc_RuntimeError,
                        "reqprof: injected fault at session start");
        return -1;
    }
    if (s->state != RP_SESSION_NEW) {
        PyErr_SetString(PyExc_RuntimeError,
                        "reqprof: a session can be started only once");
        return -1;
    }
    if (reserve_path((size_t)s->max_depth + 2) < 0) {
        return -1;
    }
    if (engine.n_active == engine.cap_active) {
        size_t cap = engine.cap_active ? engine.cap_active * 2 : 8;
        rp_session **a = realloc(engine.active, cap * sizeof(*a));
        if (a == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        engine.active = a;
        engine.cap_active = cap;
    }
    if (ensure_gc_hook() < 0) {
        return -1;
    }
    find_task_types();
    ensure_greenlet_hook();
    PyObject *marker = PyLong_FromUnsignedLongLong(++engine.next_marker);
    if (marker == NULL) {
        return -1;
    }
    PyCodeObject *root_code = PyFrame_GetCode(root_frame);
    uint32_t root_id = rp_codetable_code(
        &s->codes, fold_code != NULL ? fold_code : root_code);
    if (root_id == RP_NONE
            || rp_tree_init(&s->tree, root_id, s->max_nodes,
                            s->max_bytes - s->max_bytes / 4) < 0) {
        PyErr_NoMemory();
        goto error;
    }
    if (update_markers(marker, NULL) < 0) {
        goto error;
    }
    PyThreadState *me = PyThreadState_Get();
    s->marker = marker;
    s->root_frame = root_id;
    s->root_key = rp_compat_frame_key(&engine.compat, root_frame);
    s->root_code = root_code;
    s->fold_code = (PyCodeObject *)Py_XNewRef(fold_code);
    s->context = Py_XNewRef(me->context);
    s->coro = Py_XNewRef(coro);
    s->origin_thread = me->thread_id;
    s->origin_ts = me;
    s->start_ns = s->last_ns = now_ns();
    s->gil_wait0 = engine.gil_wait_ns;
    s->late0 = engine.late_ns;
    s->engine_cpu0 = rp_engine_cpu_ns();
    (void)cpu_delta(me);    /* a CPU reading to measure the first tick from */
    s->state = RP_SESSION_RUNNING;
    engine.active[engine.n_active++] = (rp_session *)Py_NewRef(s);
    publish_snap_want();
    if (ensure_thread() < 0) {
        /* Keep the session (it records nothing); report why once. */
        PyErr_WriteUnraisable((PyObject *)s);
    }
    publish_schedule();
    return 0;
error:
    Py_DECREF(marker);
    Py_DECREF(root_code);
    rp_tree_free(&s->tree);
    return -1;
}

/* Whether `s` (stopping) has too few samples for its duration, and the
 * likely reason: RP_UNDERSAMPLED_*. */
static int
undersampled(const rp_session *s)
{
    uint64_t samples = s->tree.n_nodes > 0 ? s->tree.nodes[0].samples : 0;
    uint64_t duration = s->stop_ns - s->start_ns;
    /* No tick can fall in a collection ([gc] has its time exactly). */
    uint64_t ticking = duration > s->gc_ns ? duration - s->gc_ns : 0;
    /* Ticks the budget made rarer are not missing. */
    uint64_t interval = s->n_ticks ? s->tick_intervals_ns / s->n_ticks
                                   : s->interval_ns;
    uint64_t expected = interval ? ticking / interval : 0;
    if (samples >= RP_UNDERSAMPLED_MIN && samples * 2 >= expected) {
        return RP_UNDERSAMPLED_NO;
    }
    if (duration < (uint64_t)RP_UNDERSAMPLED_MIN * interval) {
        return RP_UNDERSAMPLED_SHORT;
    }
    /* Ticks come late either because the sampler thread was not scheduled
     * in time (the machine is busy) or because it waited for the GIL (a
     * C call held it). */
    uint64_t gil = engine.gil_wait_ns - s->gil_wait0;
    uint64_t late = engine.late_ns - s->late0;
    return gil > late ? RP_UNDERSAMPLED_GIL : RP_UNDERSAMPLED_LOAD;
}

void
rp_engine_mark_response_end(rp_session *s)
{
    if (s->state != RP_SESSION_RUNNING || s->after_response) {
        return;
    }
    check_fork();
    uint64_t now = now_ns();
    /* The time since the previous tick, before the response's end, was
     * seen by no tick: [unsampled]. What follows goes under [after
     * response]. */
    for (size_t i = 0; i < engine.n_active; i++) {
        engine.active[i]->due = 0;
    }
    if (mark_due(s, now, 1)) {
        uint64_t cpu = cpu_delta(PyThreadState_Get());
        record_unsampled(s, s->weight, cpu < s->weight ? cpu : s->weight);
        s->due = 0;
    }
    s->response_ns = now;
    s->after_response = 1;
}

void
rp_engine_stop(rp_session *s)
{
    if (s->state != RP_SESSION_RUNNING) {
        return;
    }
    check_fork();
    s->stop_ns = now_ns();
    uint64_t cpu = rp_engine_cpu_ns();
    s->engine_cpu_ns = cpu > s->engine_cpu0 ? cpu - s->engine_cpu0 : 0;
    /* The time since the previous tick (up to an interval): without it a
     * session loses its tail, and one shorter than an interval would have
     * no sample at all. What ran then is not known (the thread is in
     * reqprof's code now): [unsampled]. */
    for (size_t i = 0; i < engine.n_active; i++) {
        engine.active[i]->due = 0;
    }
    if (mark_due(s, s->stop_ns, 1)) {
        uint64_t cpu = cpu_delta(PyThreadState_Get());
        record_unsampled(s, s->weight, cpu < s->weight ? cpu : s->weight);
        s->due = 0;
    }
    s->undersampled = undersampled(s);
    s->state = RP_SESSION_STOPPED;
    for (size_t i = 0; i < engine.n_active; i++) {
        if (engine.active[i] == s) {
            engine.active[i] = engine.active[--engine.n_active];
            break;
        }
    }
    publish_schedule();
    /* Unbind: the context may live on (child tasks), holding only the
     * marker, which no active session matches any more. */
    rp_saved_error saved;
    RP_ERROR_SAVE(&saved);
    if (update_markers(NULL, s->marker) < 0) {
        PyErr_Clear();
    }
    RP_ERROR_RESTORE(&saved);
    /* Let go of what the request owned. */
    Py_CLEAR(s->context);
    Py_CLEAR(s->coro);
    Py_CLEAR(s->fold_code);
    Py_DECREF(s);   /* the active list's reference */
}

/* ---- lifecycle ----------------------------------------------------------- */

/* Creates the condition variables (on the monotonic clock, as the tick
 * schedule is). */
static void
init_conds(void)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&engine.cv, &attr);
    pthread_cond_init(&engine.assist_cv, &attr);
    pthread_cond_init(&engine.watch_cv, &attr);
    pthread_condattr_destroy(&attr);
}

/* pthread_atfork handlers. Holding `mu` across fork() means the sampler
 * thread is parked or waiting for the GIL (which the forking thread holds),
 * never between the two, when the child's copy of memory is taken. */
static void
atfork_prepare(void)
{
    pthread_mutex_lock(&engine.mu);
}

static void
atfork_parent(void)
{
    pthread_mutex_unlock(&engine.mu);
}

/* In the child the sampler thread does not exist and its thread state is
 * freed by CPython's own fork handling. */
static void
atfork_child(void)
{
    /* Re-create, never destroy: the parent's sampler may have been waiting
     * on them, and glibc's destroy would wait for that ghost forever. */
    memset(&engine.mu, 0, sizeof(engine.mu));
    memset(&engine.cv, 0, sizeof(engine.cv));
    memset(&engine.assist_cv, 0, sizeof(engine.assist_cv));
    memset(&engine.watch_cv, 0, sizeof(engine.watch_cv));
    pthread_mutex_init(&engine.mu, NULL);
    init_conds();
    __atomic_store_n(&engine.thread_alive, 0, __ATOMIC_RELAXED);
    engine.parked = 0;
    engine.tick_interval_ns = 0;
    engine.effective_ns = 0;
    engine.assist_alive = 0;
    memset(&engine.assist_mu, 0, sizeof(engine.assist_mu));
    pthread_mutex_init(&engine.assist_mu, NULL);
    engine.gil_waiting = 0;
    engine.snap_waiting = 0;
    engine.n_runs = 0;
    engine.watch_alive = 0;
    engine.watch_parked = 0;
    memset(engine.watch_hints, 0, sizeof(engine.watch_hints));
    engine.stop = 0;
    engine.sampler_ts = NULL;
}

int
rp_engine_init(int portable)
{
    if (engine.initialized) {
        return 0;
    }
    if (rp_compat_init(&engine.compat, portable) < 0) {
        return -1;
    }
    engine.sessions_var = PyContextVar_New("reqprof_sessions", NULL);
    engine.name_coro = PyUnicode_InternFromString("coro");
    engine.name_context = PyUnicode_InternFromString("context");
    engine.name_children = PyUnicode_InternFromString("_children");
    engine.name_tasks = PyUnicode_InternFromString("_tasks");
    engine.name_state = PyUnicode_InternFromString("_state");
    engine.name_when = PyUnicode_InternFromString("_when");
    engine.name_cancelled = PyUnicode_InternFromString("_cancelled");
    engine.name_sleep = PyUnicode_InternFromString("sleep");
    engine.name_gc = PyUnicode_InternFromString("gc");
    engine.name_callbacks = PyUnicode_InternFromString("callbacks");
    engine.name_greenlet = PyUnicode_InternFromString("greenlet");
    engine.name_trio_lowlevel = PyUnicode_InternFromString("trio.lowlevel");
    if (engine.sessions_var == NULL || engine.name_coro == NULL
            || engine.name_context == NULL || engine.name_children == NULL
            || engine.name_tasks == NULL || engine.name_state == NULL
            || engine.name_when == NULL || engine.name_cancelled == NULL
            || engine.name_sleep == NULL || engine.name_gc == NULL
            || engine.name_callbacks == NULL || engine.name_greenlet == NULL
            || engine.name_trio_lowlevel == NULL) {
        rp_compat_clear(&engine.compat);
        return -1;
    }
    init_conds();
    if (pthread_atfork(atfork_prepare, atfork_parent, atfork_child) != 0) {
        PyErr_SetString(PyExc_RuntimeError, "reqprof: pthread_atfork failed");
        Py_CLEAR(engine.sessions_var);
        rp_compat_clear(&engine.compat);
        return -1;
    }
#ifdef RP_FAULTS
    const char *spec = getenv("REQPROF_FAULT");
    if (spec != NULL && rp_engine_set_faults(spec) < 0) {
        Py_CLEAR(engine.sessions_var);
        rp_compat_clear(&engine.compat);
        return -1;
    }
#endif
    engine.interp = PyThreadState_Get()->interp;
    engine.pid = getpid();
    const char *snap = getenv("REQPROF_WAIT_SNAPSHOTS");
    engine.snap_on = rp_compat_can_snapshot(&engine.compat)
        && !(snap != NULL && strcmp(snap, "0") == 0);
    engine.interval_ns = 1000000u;
    engine.initialized = 1;
    return 0;
}

void
rp_engine_shutdown(void)
{
    pthread_mutex_lock(&engine.mu);
    engine.shutdown = 1;
    engine.stop = 1;
    int alive = engine.thread_alive && engine.pid == getpid();
    pthread_cond_signal(&engine.cv);
    pthread_mutex_unlock(&engine.mu);
    if (alive) {
        Py_BEGIN_ALLOW_THREADS
        pthread_join(engine.thread, NULL);
        /* The sampler is gone: no one creates the assist thread now. */
        pthread_mutex_lock(&engine.mu);
        int assist = engine.assist_alive;
        pthread_cond_signal(&engine.assist_cv);
        pthread_mutex_unlock(&engine.mu);
        if (assist) {
            pthread_join(engine.assist_thread, NULL);
        }
        pthread_mutex_lock(&engine.assist_mu);
        engine.watch_stop = 1;
        int watch = engine.watch_alive;
        pthread_cond_signal(&engine.watch_cv);
        pthread_mutex_unlock(&engine.assist_mu);
        if (watch) {
            pthread_join(engine.watch_thread, NULL);
        }
        Py_END_ALLOW_THREADS
        pthread_mutex_lock(&engine.mu);
        __atomic_store_n(&engine.thread_alive, 0, __ATOMIC_RELEASE);
        engine.assist_alive = 0;
        engine.watch_alive = 0;
        engine.sampler_ts = NULL;
        pthread_mutex_unlock(&engine.mu);
    }
}

void
rp_engine_after_fork_child(void)
{
    if (!engine.initialized) {
        return;
    }
    if (engine.pid == getpid() && engine.thread_alive) {
        return;     /* not a child, or already handled */
    }
    engine.pid = getpid();
    if (engine.thread_alive) {
        atfork_child();     /* a fork the atfork handler did not see */
    }
    engine.n_cpu = 0;
    /* Only the forking thread exists here: sessions of other threads will
     * never be stopped by their owner, so stop them now. */
    unsigned long me = PyThreadState_Get()->thread_id;
    for (size_t i = engine.n_active; i-- > 0;) {
        rp_session *s = engine.active[i];
        if (s->origin_thread != me) {
            rp_engine_stop(s);
        }
    }
    if (engine.n_active > 0 && ensure_thread() < 0) {
        PyErr_WriteUnraisable(NULL);
    }
    publish_schedule();
}

void
rp_engine_sample_now(void)
{
    check_fork();
    uint64_t now = now_ns();
    int any = 0;
    for (size_t i = 0; i < engine.n_active; i++) {
        any |= mark_due(engine.active[i], now, 1);
    }
    if (any) {
        sample_due();
    }
}

int
rp_engine_hide_code(PyObject *code)
{
    return ptrset_add(&engine.hidden, code);
}

int
rp_engine_add_dispatch_code(PyObject *code)
{
    return ptrset_add(&engine.dispatch, code);
}

int
rp_engine_thread_alive(void)
{
    return __atomic_load_n(&engine.thread_alive, __ATOMIC_ACQUIRE)
        && engine.pid == getpid();
}

const char *
rp_engine_mode(void)
{
    return rp_compat_mode(&engine.compat);
}

/* Bytes the engine holds for sampling: its scratch buffers and tables, and
 * the trees and code tables of the active sessions. */
static void
pool_bytes(size_t *scratch, size_t *sessions)
{
    *scratch = engine.frames_cap * sizeof(rp_frame)
        + engine.chain_cap * sizeof(rp_frame)
        + engine.path_cap * sizeof(uint32_t)
        + engine.cap_cpu * sizeof(thread_cpu)
        + engine.cap_active * sizeof(rp_session *)
        + (engine.hidden.mask ? engine.hidden.mask + 1 : 0) * sizeof(PyObject *)
        + (engine.dispatch.mask ? engine.dispatch.mask + 1 : 0)
          * sizeof(PyObject *);
    *sessions = 0;
    for (size_t i = 0; i < engine.n_active; i++) {
        const rp_session *s = engine.active[i];
        *sessions += s->tree.bytes + rp_codetable_bytes(&s->codes);
    }
}

PyObject *
rp_engine_stats(void)
{
    size_t scratch, sessions;
    pool_bytes(&scratch, &sessions);
    return Py_BuildValue(
        "{s:s, s:K, s:K, s:K, s:K, s:K, s:K, s:K, s:K, s:K, s:n, s:n, s:n, "
        "s:K, s:i, s:K, s:K, s:K, s:K, s:K, s:K, s:k, s:i, s:K, s:K, s:K}",
        "mode", rp_compat_mode(&engine.compat),
        "ticks", (unsigned long long)engine.ticks,
        "late_ticks", (unsigned long long)engine.late_ticks,
        "samples", (unsigned long long)engine.samples,
        "gil_wait_ns", (unsigned long long)engine.gil_wait_ns,
        "gil_wait_max_ns", (unsigned long long)engine.gil_wait_max_ns,
        "tick_ns", (unsigned long long)engine.tick_ns,
        "threads_started", (unsigned long long)engine.threads_started,
        "assisted_waits", (unsigned long long)engine.assisted_waits,
        "dropped_samples", (unsigned long long)engine.dropped_samples,
        "active_sessions", (Py_ssize_t)engine.n_active,
        "scratch_bytes", (Py_ssize_t)scratch,
        "active_session_bytes", (Py_ssize_t)sessions,
        "lock_misses", (unsigned long long)engine.lock_misses,
        "thread_alive", rp_engine_thread_alive(),
        "late_ns", (unsigned long long)engine.late_ns,
        "gc_collections", (unsigned long long)engine.gc_collections,
        "sampler_cpu_ns", (unsigned long long)__atomic_load_n(
            &engine.sampler_cpu_ns, __ATOMIC_RELAXED),
        "assist_cpu_ns", (unsigned long long)__atomic_load_n(
            &engine.assist_cpu_ns, __ATOMIC_RELAXED),
        "effective_interval_ns", (unsigned long long)__atomic_load_n(
            &engine.effective_ns, __ATOMIC_RELAXED),
        "budget_ns_per_s", (unsigned long long)__atomic_load_n(
            &engine.budget_ns, __ATOMIC_RELAXED),
        /* GIL hand-overs in the process so far (the GIL's switch number;
         * 0 where the fast path cannot read it). */
        "gil_switches", rp_compat_gil_switches(&engine.compat),
        /* Stacks read without the GIL during waits: kept, discarded
         * (torn or unreadable), and the samples they gave. */
        "wait_snapshots", engine.snap_on,
        "snapshots", (unsigned long long)engine.snapshots,
        "snapshots_torn", (unsigned long long)engine.snapshots_torn,
        "snapshot_samples", (unsigned long long)engine.snapshot_samples);
}

#ifdef RP_FAULTS
static const char *const fault_names[RP_FAULT_KINDS] = {
    "start", "sample", "report", "wedge",
};

int
rp_engine_fault(int kind)
{
    long *f = &engine.faults[kind];
    if (*f == 0) {
        return 0;
    }
    if (*f > 0) {
        (*f)--;
    }
    return 1;
}

int
rp_engine_set_faults(const char *spec)
{
    long faults[RP_FAULT_KINDS] = {0};
    const char *p = spec;
    while (*p != '\0') {
        size_t n = strcspn(p, ",");
        int kind = -1;
        for (int k = 0; k < RP_FAULT_KINDS; k++) {
            size_t len = strlen(fault_names[k]);
            if (n >= len && strncmp(p, fault_names[k], len) == 0
                    && (n == len || p[len] == ':')) {
                kind = k;
                long count = -1;
                if (n > len) {
                    char *end;
                    count = strtol(p + len + 1, &end, 10);
                    if (end != p + n || count < 1) {
                        kind = -1;
                    }
                }
                if (kind >= 0) {
                    faults[k] = count;
                }
            }
        }
        if (kind < 0) {
            PyErr_Format(PyExc_ValueError,
                         "REQPROF_FAULT=%s: expected start, sample, report or wedge, "
                         "each optionally :N, comma-separated", spec);
            return -1;
        }
        p += n + (p[n] == ',');
    }
    memcpy(engine.faults, faults, sizeof(faults));
    return 0;
}
#endif

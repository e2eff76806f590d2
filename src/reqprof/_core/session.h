/* session.h - one profiling session: what it records into and how it is
 * bound to the code it profiles.
 *
 * A session is a Python object (`_core.Session`, defined in module.c) so
 * Python code can own it; this header gives the engine its fields. Between
 * start and stop the engine holds a strong reference to it in its active
 * list and the sampler thread writes its tree, always with the GIL held.
 * Nothing in a session is touched without the GIL.
 */
#ifndef RP_SESSION_H
#define RP_SESSION_H

#include "codetable.h"
#include "compat.h"
#include "report.h"
#include "tree.h"

typedef enum rp_mode {
    RP_MODE_ENABLED = 0,    /* context attribution + await stacks */
    RP_MODE_DISABLED,       /* the starting thread, whatever runs on it */
    RP_MODE_STRICT,         /* the starting context only */
} rp_mode;

typedef enum rp_state {
    RP_SESSION_NEW = 0,
    RP_SESSION_RUNNING,
    RP_SESSION_STOPPED,
} rp_state;

typedef struct rp_session {
    PyObject_HEAD
    /* Configuration, fixed at creation. */
    uint64_t interval_ns;
    uint32_t max_depth;
    rp_mode mode;
    uint32_t max_nodes;
    size_t max_bytes;
    uint64_t max_duration_ns;
    uint64_t loop_block_ns;     /* a stretch holding the event loop this
                                   long is reported (0: never) */
    double budget_percent;      /* the overhead budget asked: percent of
                                   one core the engine's threads may use
                                   (0: none) */
    uint64_t budget_ns;         /* the same as CPU ns per second */
    /* max_bytes is shared: the code table may take a quarter, the call
     * tree the rest. */

    rp_state state;
    rp_tree tree;
    rp_codetable codes;
    uint32_t root_frame;        /* frame id of the tree's root */

    /* Binding, set by start. */
    const void *root_key;       /* compat frame key of the root frame */
    PyCodeObject *root_code;    /* strong */
    PyCodeObject *fold_code;    /* strong or NULL: the tree's root is this
                                   function, called by the root frame (a
                                   decorator's wrapper): its frame is folded
                                   into the root */
    PyObject *context;          /* strong: the context it started in */
    PyObject *coro;             /* strong or NULL: its task's coroutine */
    PyObject *marker;           /* strong: its mark in bound contexts */
    unsigned long origin_thread;   /* ident of the starting thread */
    const void *origin_ts;      /* its thread state (an address, compared
                                   only: the thread may have ended) */
    PyObject *label;            /* strong or NULL: what it is ("GET /x"),
                                   naming it where it blocks the event
                                   loop for another session (set_label) */

    /* Timing (monotonic ns) and bookkeeping. */
    double started_at;          /* Unix time */
    uint64_t start_ns, stop_ns, last_ns;
    uint64_t sampled_tick;      /* engine tick of its last sample */
    int due;                    /* samples in the current tick */
    uint64_t weight;            /* wall time the current tick stands for */
    uint64_t prev_ns;           /* when the tick before it was */
    uint64_t tick_credit_ns;    /* collection time taken off its weight */
    unsigned truncated;         /* RP_REPORT_TRUNC_DEPTH / _DURATION */
    uint64_t n_running, n_await, n_out_of_context;
    uint64_t gc_ns;             /* collections run by its threads */
    uint64_t gc_credit_ns;      /* of them, time already charged to [gc]
                                   that the next tick must not charge */
    uint64_t response_ns;       /* when the response ended (0: not yet) */
    int after_response;         /* samples go under [after response] */
    uint64_t gil_wait0, late0;  /* engine counters at start */
    uint64_t engine_cpu0;       /* the engine threads' CPU at start */
    uint64_t engine_cpu_ns;     /* and from start to stop (set at stop) */
    uint64_t tick_intervals_ns; /* the intervals of the sampler's ticks
                                   that took it (the budget lengthens them) */
    uint64_t n_ticks;           /* and how many */
    int undersampled;           /* RP_UNDERSAMPLED_*, set at stop */

    /* Waiting for, and holding, the event loop (sampler.c, "the event
     * loop"). A stretch is the run of its consecutive samples in which
     * its loop thread ran its code. */
    uint64_t n_loop_busy;       /* samples ready to run on a busy loop */
    int holding, was_holding;   /* this / the previous sample held it */
    uint64_t hold_ns;           /* the current stretch so far */
    uint32_t at_frame, best_frame;  /* innermost app frame: of the run of
                                   ticks in it now, of the stretch's
                                   longest run (code table ids) */
    int32_t at_lasti, best_lasti;
    uint64_t at_ns, best_ns;    /* how long those runs are */
    uint64_t block_ns;          /* the longest stretch */
    uint32_t block_frame;       /* where it was for longest in it: its
                                   innermost app frame (code table id,
                                   RP_NONE: none) */
    int32_t block_lasti;        /* and the offset it was at last */
    uint32_t block_line;        /* that offset's line, set at stop */

    /* Built at stop: symbols for the writers. */
    rp_symtab syms;
    int resolved;

    /* A report read back from JSON (module.c load_json) has a tree and
     * symbols but no engine history: the document's duration and interval
     * stand in for the clock fields. */
    int loaded;
    double loaded_duration_s, loaded_interval_s;
    double loaded_gc_s, loaded_response_s;
    double loaded_block_s;
    double loaded_effective_s;  /* effective_interval_s (0: absent) */
    int loaded_has_cpu;         /* sampler_cpu_s is a number */
    uint64_t loaded_cpu_ns;     /* and that number */
} rp_session;

#endif

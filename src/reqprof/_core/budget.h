/* budget.h - the overhead budget: how much longer than asked the sampler's
 * interval is, so that the engine's own threads use at most a share of one
 * core (PROFILING_OVERHEAD_BUDGET).
 *
 * Pure C (no Python, no clock of its own). The sampler thread feeds it the
 * monotonic time and the engine threads' CPU total once per tick, and asks
 * it for the interval of the next tick; nothing else touches it, so it
 * needs no lock. Deterministic: tests/c/test_budget.c drives it with
 * made-up clocks.
 *
 * The rule: a window closes once the sampler has been active (not parked)
 * for RP_BUDGET_WINDOW_NS since it opened, across parks, so that short
 * sessions one after the other are held to the budget too. If the engine
 * used more CPU in it than the budget's share of that active time, by a
 * factor r, the interval doubles ceil(log2 r) times (up to
 * RP_BUDGET_MAX_SHIFT doublings, and never past RP_BUDGET_MAX_NS unless the
 * asked interval is longer); under half of that share, it halves once,
 * back towards the asked one. The engine's CPU is about proportional to the
 * tick rate, so the new share falls between half the budget and the
 * budget, where it stays.
 */
#ifndef RP_BUDGET_H
#define RP_BUDGET_H

#include <stdint.h>

#define RP_BUDGET_WINDOW_NS 100000000u      /* a window: 100 ms active */
#define RP_BUDGET_MAX_SHIFT 6u              /* at most 64 times the asked */
#define RP_BUDGET_MAX_NS 1000000000u        /* and at most 1 s */

typedef struct rp_budget {
    uint64_t last_ns;       /* monotonic time of the last reading; 0: none */
    uint64_t last_cpu;      /* the engine's CPU total then */
    uint64_t wall_ns;       /* the window so far: active time */
    uint64_t cpu_ns;        /* and the engine's CPU in it */
    unsigned shift;         /* the interval is the asked one << shift */
} rp_budget;

/* The interval of the next tick for the `asked_ns` one (> 0). */
uint64_t rp_budget_interval(const rp_budget *b, uint64_t asked_ns);

/* One reading, after a tick: `now_ns` (monotonic), `cpu_ns` (the engine
 * threads' CPU total, never decreasing), `budget` (CPU ns allowed per
 * second of active time; 0: no budget, the interval is the asked one) and
 * the asked interval. Returns 1 when the interval changed, else 0. A clock
 * going back starts the window again. */
int rp_budget_update(rp_budget *b, uint64_t now_ns, uint64_t cpu_ns,
                     uint64_t budget, uint64_t asked_ns);

/* The sampler is active again at `now_ns` after it was parked: the parked
 * time is left out of the window (the CPU it took to park and wake is
 * not). */
void rp_budget_resume(rp_budget *b, uint64_t now_ns);

#endif

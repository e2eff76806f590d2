/* test_budget.c - the overhead budget (budget.c), on made-up clocks: a
 * sampler whose ticks each cost a fixed CPU time settles on the interval
 * that keeps it within its budget, comes back to the asked interval when
 * ticks get cheaper or the budget goes, and never goes past its caps. */
#include "budget.h"
#include "check.h"

#define US 1000ull
#define MS 1000000ull
#define PERCENT 10000000ull     /* CPU ns per second: 1% of one core */

/* A sampler ticking on `b`'s interval for `seconds`, each tick costing
 * `tick_cpu` ns. The clock and CPU total go on from *now and *cpu. */
static void
run(rp_budget *b, uint64_t *now, uint64_t *cpu, double seconds,
    uint64_t tick_cpu, uint64_t budget, uint64_t asked)
{
    uint64_t end = *now + (uint64_t)(seconds * 1e9);
    while (*now < end) {
        *now += rp_budget_interval(b, asked);
        *cpu += tick_cpu;
        rp_budget_update(b, *now, *cpu, budget, asked);
    }
}

static void
test_no_budget_keeps_the_asked_interval(void)
{
    rp_budget b = {0};
    uint64_t now = 5 * MS, cpu = 0;
    run(&b, &now, &cpu, 2.0, 500 * US, 0, 1 * MS);
    CHECK_EQ_U64(rp_budget_interval(&b, 1 * MS), 1 * MS);
    CHECK_EQ_U64(rp_budget_interval(&b, 7 * MS), 7 * MS);
}

static void
test_settles_within_the_budget_and_above_half_of_it(void)
{
    /* 30 us a tick at 1 ms is 3% of a core: against 1%, 4 ms (0.75%). */
    rp_budget b = {0};
    uint64_t now = 5 * MS, cpu = 0;
    run(&b, &now, &cpu, 3.0, 30 * US, 1 * PERCENT, 1 * MS);
    CHECK_EQ_U64(rp_budget_interval(&b, 1 * MS), 4 * MS);
    /* And stays there: the CPU of the next two seconds is within it. */
    uint64_t now0 = now, cpu0 = cpu;
    run(&b, &now, &cpu, 2.0, 30 * US, 1 * PERCENT, 1 * MS);
    CHECK_EQ_U64(rp_budget_interval(&b, 1 * MS), 4 * MS);
    double share = (double)(cpu - cpu0) / (double)(now - now0);
    CHECK(share <= 0.01 && share > 0.005);
}

static void
test_a_tick_within_the_budget_is_never_lengthened(void)
{
    rp_budget b = {0};
    uint64_t now = 5 * MS, cpu = 0;
    run(&b, &now, &cpu, 2.0, 9 * US, 1 * PERCENT, 1 * MS);   /* 0.9% */
    CHECK_EQ_U64(rp_budget_interval(&b, 1 * MS), 1 * MS);
}

static void
test_comes_back_when_ticks_get_cheaper_or_the_budget_goes(void)
{
    rp_budget b = {0};
    uint64_t now = 5 * MS, cpu = 0;
    run(&b, &now, &cpu, 3.0, 100 * US, 1 * PERCENT, 1 * MS);
    CHECK(rp_budget_interval(&b, 1 * MS) >= 8 * MS);
    run(&b, &now, &cpu, 3.0, 2 * US, 1 * PERCENT, 1 * MS);    /* 0.2% */
    CHECK_EQ_U64(rp_budget_interval(&b, 1 * MS), 1 * MS);
    run(&b, &now, &cpu, 3.0, 100 * US, 1 * PERCENT, 1 * MS);
    CHECK(rp_budget_interval(&b, 1 * MS) >= 8 * MS);
    /* No budget any more: the asked interval at the next reading. */
    now += 1 * MS;
    CHECK(rp_budget_update(&b, now, cpu, 0, 1 * MS) == 1);
    CHECK_EQ_U64(rp_budget_interval(&b, 1 * MS), 1 * MS);
}

static void
test_caps_64_times_and_one_second(void)
{
    /* Ticks far too dear for a tiny budget: as long as allowed. */
    rp_budget b = {0};
    uint64_t now = 5 * MS, cpu = 0;
    run(&b, &now, &cpu, 20.0, 1 * MS, 1000, 1 * MS);
    CHECK_EQ_U64(rp_budget_interval(&b, 1 * MS), 64 * MS);
    CHECK_EQ_U64(b.shift, RP_BUDGET_MAX_SHIFT);
    /* 100 ms asked: 1 s at most. */
    rp_budget c = {0};
    now = 5 * MS;
    cpu = 0;
    run(&c, &now, &cpu, 60.0, 1 * MS, 1000, 100 * MS);
    CHECK_EQ_U64(rp_budget_interval(&c, 100 * MS), 1000 * MS);
    CHECK(c.shift <= 4);        /* no doubling past the cap */
    /* 2 s asked: never lengthened. */
    rp_budget d = {0};
    now = 5 * MS;
    cpu = 0;
    run(&d, &now, &cpu, 60.0, 1 * MS, 1000, 2000 * MS);
    CHECK_EQ_U64(rp_budget_interval(&d, 2000 * MS), 2000 * MS);
    /* A lengthening learnt on a short interval, applied to a long one. */
    CHECK_EQ_U64(rp_budget_interval(&b, 100 * MS), 1000 * MS);
    CHECK_EQ_U64(rp_budget_interval(&b, 3000 * MS), 3000 * MS);
}

static void
test_one_window_brings_it_within_the_budget(void)
{
    /* 3.5% of a core against 1%: two doublings at once, after 100 ms. */
    rp_budget b = {0};
    uint64_t now = 5 * MS, cpu = 0;
    CHECK(rp_budget_update(&b, now, cpu, 1 * PERCENT, 1 * MS) == 0);
    for (int i = 0; i < 99; i++) {
        now += 1 * MS;
        cpu += 35 * US;
        CHECK(rp_budget_update(&b, now, cpu, 1 * PERCENT, 1 * MS) == 0);
    }
    CHECK_EQ_U64(rp_budget_interval(&b, 1 * MS), 1 * MS);
    now += 1 * MS;
    cpu += 35 * US;
    CHECK(rp_budget_update(&b, now, cpu, 1 * PERCENT, 1 * MS) == 1);
    CHECK_EQ_U64(rp_budget_interval(&b, 1 * MS), 4 * MS);
    /* 1.5%: one doubling. */
    rp_budget c = {0};
    now = 5 * MS;
    cpu = 0;
    rp_budget_update(&c, now, cpu, 1 * PERCENT, 1 * MS);
    run(&c, &now, &cpu, 0.1, 15 * US, 1 * PERCENT, 1 * MS);
    CHECK_EQ_U64(rp_budget_interval(&c, 1 * MS), 2 * MS);
}

static void
test_parked_time_is_left_out_and_active_time_adds_up(void)
{
    /* 60 ms at 3% of a core, parked for a minute, 40 ms more: the window
     * of 100 ms active closes then, over the budget. */
    rp_budget b = {0};
    uint64_t now = 5 * MS, cpu = 0;
    rp_budget_update(&b, now, cpu, 1 * PERCENT, 1 * MS);
    run(&b, &now, &cpu, 0.06, 30 * US, 1 * PERCENT, 1 * MS);
    CHECK_EQ_U64(rp_budget_interval(&b, 1 * MS), 1 * MS);
    now += 60000 * MS;
    rp_budget_resume(&b, now);
    run(&b, &now, &cpu, 0.035, 30 * US, 1 * PERCENT, 1 * MS);
    CHECK_EQ_U64(rp_budget_interval(&b, 1 * MS), 1 * MS);
    run(&b, &now, &cpu, 0.01, 30 * US, 1 * PERCENT, 1 * MS);
    CHECK_EQ_U64(rp_budget_interval(&b, 1 * MS), 4 * MS);
    /* Without the resume the minute would count: far under, no change. */
    rp_budget c = {0};
    now = 5 * MS;
    cpu = 0;
    rp_budget_update(&c, now, cpu, 1 * PERCENT, 1 * MS);
    run(&c, &now, &cpu, 0.06, 30 * US, 1 * PERCENT, 1 * MS);
    now += 60000 * MS;
    run(&c, &now, &cpu, 0.045, 30 * US, 1 * PERCENT, 1 * MS);
    CHECK_EQ_U64(rp_budget_interval(&c, 1 * MS), 1 * MS);
}

static void
test_clocks_going_back_start_the_window_again(void)
{
    rp_budget b = {0};
    uint64_t now = 500 * MS, cpu = 50 * MS;
    rp_budget_update(&b, now, cpu, 1 * PERCENT, 1 * MS);
    run(&b, &now, &cpu, 0.09, 1 * MS, 1 * PERCENT, 1 * MS);
    /* Time goes back: what came before does not count. */
    now -= 1;
    CHECK(rp_budget_update(&b, now, cpu, 1 * PERCENT, 1 * MS) == 0);
    CHECK_EQ_U64(b.wall_ns, 0);
    run(&b, &now, &cpu, 0.09, 1 * MS, 1 * PERCENT, 1 * MS);
    /* The CPU total goes back: likewise. */
    CHECK(rp_budget_update(&b, now + 1 * MS, 0, 1 * PERCENT, 1 * MS) == 0);
    CHECK_EQ_U64(b.wall_ns, 0);
    CHECK_EQ_U64(rp_budget_interval(&b, 1 * MS), 1 * MS);
}

int
main(void)
{
    RUN(test_no_budget_keeps_the_asked_interval);
    RUN(test_settles_within_the_budget_and_above_half_of_it);
    RUN(test_a_tick_within_the_budget_is_never_lengthened);
    RUN(test_comes_back_when_ticks_get_cheaper_or_the_budget_goes);
    RUN(test_caps_64_times_and_one_second);
    RUN(test_one_window_brings_it_within_the_budget);
    RUN(test_parked_time_is_left_out_and_active_time_adds_up);
    RUN(test_clocks_going_back_start_the_window_again);
    return check_summary();
}

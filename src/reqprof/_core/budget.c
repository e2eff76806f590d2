/* budget.c - the overhead budget's interval (see budget.h for the rule). */
#include "budget.h"

/* The longest interval the budget may make of `asked_ns`. */
static uint64_t
longest(uint64_t asked_ns)
{
    uint64_t most = asked_ns << RP_BUDGET_MAX_SHIFT;
    if (asked_ns > (UINT64_MAX >> RP_BUDGET_MAX_SHIFT)) {
        most = asked_ns;    /* (no interval asked is near this) */
    }
    if (most > RP_BUDGET_MAX_NS) {
        most = asked_ns > RP_BUDGET_MAX_NS ? asked_ns : RP_BUDGET_MAX_NS;
    }
    return most;
}

uint64_t
rp_budget_interval(const rp_budget *b, uint64_t asked_ns)
{
    uint64_t most = longest(asked_ns);
    return (most >> b->shift) < asked_ns ? most : asked_ns << b->shift;
}

void
rp_budget_resume(rp_budget *b, uint64_t now_ns)
{
    if (b->last_ns != 0) {
        b->last_ns = now_ns;
    }
}

int
rp_budget_update(rp_budget *b, uint64_t now_ns, uint64_t cpu_ns,
                 uint64_t budget, uint64_t asked_ns)
{
    unsigned before = b->shift;
    int fresh = budget == 0 || b->last_ns == 0 || now_ns < b->last_ns
        || cpu_ns < b->last_cpu;
    if (!fresh) {
        b->wall_ns += now_ns - b->last_ns;
        b->cpu_ns += cpu_ns - b->last_cpu;
    }
    b->last_ns = now_ns;
    b->last_cpu = cpu_ns;
    if (fresh) {
        b->wall_ns = b->cpu_ns = 0;
        if (budget == 0) {
            b->shift = 0;
        }
        return b->shift != before;
    }
    if (b->wall_ns < RP_BUDGET_WINDOW_NS) {
        return 0;
    }
    /* CPU used against the budget's share of the window (in doubles: ns
     * times ns per second overflows 64 bits within seconds). */
    double used = (double)b->cpu_ns * 1e9;
    double allowed = (double)budget * (double)b->wall_ns;
    if (used > allowed) {
        /* Doublings that bring it within the budget, one at least. */
        do {
            if (b->shift >= RP_BUDGET_MAX_SHIFT
                    || rp_budget_interval(b, asked_ns) >= longest(asked_ns)) {
                break;
            }
            b->shift++;
            used /= 2.0;
        } while (used > allowed);
    }
    else if (used * 2.0 < allowed && b->shift > 0) {
        b->shift--;
    }
    b->wall_ns = b->cpu_ns = 0;
    return b->shift != before;
}

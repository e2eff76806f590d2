/* hist.c - latency histograms (see hist.h for the bucket layout). */
#include "hist.h"

#include <math.h>
#include <string.h>

uint32_t
rp_hist_bucket(uint64_t us)
{
    if (us < RP_HIST_EXACT) {
        return (uint32_t)us;
    }
    unsigned power = 63u - (unsigned)__builtin_clzll(us);   /* >= 7 */
    if (power > RP_HIST_MAX_POWER) {
        return RP_HIST_BUCKETS - 1;
    }
    uint32_t sub = (uint32_t)(us >> (power - RP_HIST_SUB_BITS))
                   & ((1u << RP_HIST_SUB_BITS) - 1);
    return RP_HIST_EXACT + (power - 7u) * (1u << RP_HIST_SUB_BITS) + sub;
}

double
rp_hist_mid(uint32_t bucket)
{
    if (bucket < RP_HIST_EXACT) {
        return (double)bucket;
    }
    if (bucket >= RP_HIST_BUCKETS) {
        bucket = RP_HIST_BUCKETS - 1;
    }
    uint32_t k = bucket - RP_HIST_EXACT;
    unsigned power = 7u + k / (1u << RP_HIST_SUB_BITS);
    uint32_t sub = k % (1u << RP_HIST_SUB_BITS);
    double width = ldexp(1.0, (int)(power - RP_HIST_SUB_BITS));
    double low = ldexp(1.0, (int)power) + (double)sub * width;
    return low + width / 2.0;
}

static int
put_varint(rp_buf *b, uint64_t v)
{
    unsigned char tmp[10];
    size_t n = 0;
    do {
        unsigned char byte = v & 0x7f;
        v >>= 7;
        tmp[n++] = byte | (v ? 0x80 : 0);
    } while (v);
    return rp_buf_put(b, (const char *)tmp, n);
}

/* Reads a varint at data[*pos]; -1 when it runs past n or past 64 bits. */
static int
get_varint(const unsigned char *data, size_t n, size_t *pos, uint64_t *out)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (*pos >= n) {
            return -1;
        }
        unsigned char byte = data[(*pos)++];
        v |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

int
rp_hist_encode(rp_buf *b, const uint64_t *counts)
{
    uint32_t last = 0;
    for (uint32_t i = 0; i < RP_HIST_BUCKETS; i++) {
        if (counts[i] == 0) {
            continue;
        }
        if (put_varint(b, i - last) < 0 || put_varint(b, counts[i]) < 0) {
            return -1;
        }
        last = i;
    }
    return 0;
}

int
rp_hist_decode_add(uint64_t *counts, const unsigned char *data, size_t n)
{
    size_t pos = 0;
    uint64_t bucket = 0;
    while (pos < n) {
        uint64_t delta, count;
        if (get_varint(data, n, &pos, &delta) < 0
                || get_varint(data, n, &pos, &count) < 0) {
            return -1;
        }
        bucket += delta;
        if (bucket >= RP_HIST_BUCKETS || counts[bucket] + count < count) {
            return -1;
        }
        counts[bucket] += count;
    }
    return 0;
}

uint64_t
rp_hist_total(const uint64_t *counts)
{
    uint64_t total = 0;
    for (uint32_t i = 0; i < RP_HIST_BUCKETS; i++) {
        total += counts[i];
    }
    return total;
}

double
rp_hist_quantile(const uint64_t *counts, double q)
{
    uint64_t total = rp_hist_total(counts);
    if (total == 0) {
        return 0.0;
    }
    if (!(q > 0.0)) {
        q = 0.0;
    }
    if (q > 1.0) {
        q = 1.0;
    }
    uint64_t rank = (uint64_t)ceil(q * (double)total);
    if (rank < 1) {
        rank = 1;
    }
    uint64_t seen = 0;
    for (uint32_t i = 0; i < RP_HIST_BUCKETS; i++) {
        seen += counts[i];
        if (seen >= rank) {
            return rp_hist_mid(i);
        }
    }
    return rp_hist_mid(RP_HIST_BUCKETS - 1);
}

/* hist.h - latency histograms: log-linear buckets, mergeable, compact.
 *
 * Pure C. A value (microseconds) under 128 has a bucket of its own; above,
 * each power of two is cut into 64 buckets, so a bucket spans at most
 * 1/64 of its low end and its midpoint is within 0.8% of every value in
 * it: a percentile read from the histogram is within 1% of the true one.
 * Values from 2^40 us (12.7 days) up share the last bucket.
 *
 * In memory a histogram is RP_HIST_BUCKETS counters; stored, it is its
 * non-zero buckets as varint pairs (bucket index delta, count), a few
 * dozen bytes for a route's minute.
 */
#ifndef RP_HIST_H
#define RP_HIST_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define RP_HIST_EXACT 128u          /* values below: one bucket each */
#define RP_HIST_SUB_BITS 6u         /* 64 buckets per power of two */
#define RP_HIST_MAX_POWER 40u       /* 2^40 us and up: the last bucket */
#define RP_HIST_BUCKETS \
    (RP_HIST_EXACT + (RP_HIST_MAX_POWER - 7u + 1u) * (1u << RP_HIST_SUB_BITS))

/* The bucket of value `us`. */
uint32_t rp_hist_bucket(uint64_t us);
/* The bucket's midpoint (its exact value for the exact ones), in us. */
double rp_hist_mid(uint32_t bucket);

/* Appends the non-zero counters of `counts` (RP_HIST_BUCKETS of them) in
 * the stored form. Returns 0, or -1 when the buffer fails. */
int rp_hist_encode(rp_buf *b, const uint64_t *counts);
/* Adds the stored histogram `data` (n bytes) into `counts`. Returns 0, or
 * -1 when `data` is not a well-formed histogram (counts then holds what
 * came before the fault). */
int rp_hist_decode_add(uint64_t *counts, const unsigned char *data, size_t n);

/* The value at quantile q (0..1) of `counts`, in us: the midpoint of the
 * bucket holding the ceil(q * total)-th smallest value (q = 1: the
 * largest). 0 for an empty histogram. */
double rp_hist_quantile(const uint64_t *counts, double q);
/* The number of values counted. */
uint64_t rp_hist_total(const uint64_t *counts);

#endif

/* fuzz_writers.c - libFuzzer target for the report writers and escaping.
 *
 * The input is read as a little program: symbols with arbitrary bytes as
 * names and files (any kind), samples along arbitrary paths, metadata with
 * arbitrary keys and values. Every writer runs over the result; the JSON
 * (alone and inside the HTML page) must be valid, the HTML data element
 * must not be closable by any name, speedscope must be valid JSON and pprof
 * gzip, the collapsed format must keep one
 * frame per `;` field and one stack per line, the text tree one node
 * per line, and the log record's line (the metadata as the request's text,
 * a loop block at any symbol) one line of well-formed UTF-8 without a
 * control character. ASan/UBSan catch the rest.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../c/json_check.h"
#include "report.h"
#include "writers.h"

typedef struct reader {
    const uint8_t *p;
    size_t n;
} reader;

static uint8_t
byte(reader *r)
{
    if (r->n == 0) {
        return 0;
    }
    r->n--;
    return *r->p++;
}

static const char *
slice(reader *r, size_t *len)
{
    size_t want = byte(r) % 48;
    *len = want < r->n ? want : r->n;
    const char *s = (const char *)r->p;
    r->p += *len;
    r->n -= *len;
    return s;
}

static void
check(int ok)
{
    if (!ok) {
        abort();
    }
}

/* Well-formed UTF-8 with no C0 or C1 control, DEL, U+2028 nor U+2029:
 * what the log line's escaping promises. */
static int
printable_ok(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < 0x20 || p[i] == 0x7F
                || (p[i] == 0xC2 && i + 1 < n && p[i + 1] <= 0x9F)
                || (p[i] == 0xE2 && i + 2 < n && p[i + 1] == 0x80
                    && (p[i + 2] == 0xA8 || p[i + 2] == 0xA9))) {
            return 0;
        }
    }
    return rp_utf8_valid(s, n);
}

/* Lines of `s` that do not end with " <digits>", or a line with a NUL. */
static int
collapsed_ok(const char *s, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\0' || s[i] == '\r') {
            return 0;
        }
        if (s[i] == '\n') {
            size_t j = i;
            while (j > start && s[j - 1] >= '0' && s[j - 1] <= '9') {
                j--;
            }
            if (j == i || j == start || s[j - 1] != ' ') {
                return 0;
            }
            start = i + 1;
        }
    }
    return start == n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    reader r = {data, size};
    rp_symtab st;
    rp_tree tree;
    rp_meta_item meta[3];
    rp_buf b;
    rp_symtab_init(&st);

    uint32_t n_syms = 1 + byte(&r) % 32;
    for (uint32_t i = 0; i < n_syms; i++) {
        size_t fl, pl;
        rp_kind kind = (rp_kind)(byte(&r) % RP_KIND_COUNT);
        const char *f = slice(&r, &fl);
        const char *p = slice(&r, &pl);
        size_t skip = pl ? byte(&r) % (pl + 1) : 0;
        if (rp_symtab_add(&st, kind, f, fl, p, pl, p + skip, pl - skip,
                          byte(&r)) == RP_NONE) {
            goto done;
        }
    }
    if (rp_tree_init(&tree, 0, 16 + byte(&r), 1u << 20) < 0) {
        goto done_syms;
    }
    for (int i = 0; i < 3; i++) {
        size_t kl, vl;
        const char *k = slice(&r, &kl);
        const char *v = slice(&r, &vl);
        meta[i].key.s = (char *)k;
        meta[i].key.len = kl;
        meta[i].value.s = (char *)v;
        meta[i].value.len = vl;
        meta[i].is_literal = byte(&r) & 1;
    }
    uint32_t path[16];
    while (r.n > 0) {
        size_t depth = byte(&r) % 16;
        for (size_t i = 0; i < depth; i++) {
            path[i] = byte(&r) % n_syms;
        }
        uint8_t loc = byte(&r);
        rp_tree_add_sample(&tree, path, depth, loc == 255 ? RP_NONE : loc,
                           (uint64_t)byte(&r) * 1000003u,
                           (uint64_t)byte(&r) * 999983u);
    }
    rp_report rep = {
        .tree = &tree, .syms = &st, .version = "fuzz", .started_at = 1.5,
        .duration_s = 0.25, .interval_s = 0.001,
        .effective_interval_s = 0.004, .budget_percent = 0.5,
        .has_sampler_cpu = 1, .sampler_cpu_ns = 1234567,
        .async_mode = "enabled",
        .max_depth = 50, .truncated = tree.truncated, .meta = meta,
        .n_meta = 3,
    };

    rp_buf_init(&b, 0);
    check(rp_write_json(&b, &rep) == 0);
    check(json_valid(b.data, b.len));
    rp_buf_free(&b);

    static const char head[] = "<script type=\"application/json\">";
    static const char tail[] = "</script>";
    rp_buf_init(&b, 0);
    check(rp_write_html(&b, &rep, head, sizeof(head) - 1, tail,
                        sizeof(tail) - 1) == 0);
    size_t inner = b.len - (sizeof(head) - 1) - (sizeof(tail) - 1);
    const char *json = b.data + sizeof(head) - 1;
    check(json_valid(json, inner));
    check(memchr(json, '<', inner) == NULL);
    rp_buf_free(&b);

    rp_buf_init(&b, 0);
    check(rp_write_collapsed(&b, &rep) == 0);
    check(collapsed_ok(b.data ? b.data : "", b.len));
    rp_buf_free(&b);

    /* Console and log styles; ASCII or not; colour; a library prefix. */
    static const rp_str lib = {"/u", 2};
    for (int style = 0; style < 8; style++) {
        rp_text_opts o = {style & 1, (style >> 1) & 1, style ? 1.0 : 0.0, 200,
                          style >> 2, &lib, 1};
        rp_buf_init(&b, 0);
        check(rp_write_text(&b, &rep, &o) == 0);
        check(b.len == 0 || memchr(b.data, '\0', b.len) == NULL);
        rp_buf_free(&b);
    }

    rp_buf_init(&b, 0);
    check(rp_write_speedscope(&b, &rep) == 0);
    check(json_valid(b.data, b.len));
    rp_buf_free(&b);

    rp_buf_init(&b, 0);
    check(rp_write_pprof(&b, &rep) == 0);
    check(b.len >= 2 && (unsigned char)b.data[0] == 0x1f
          && (unsigned char)b.data[1] == 0x8b);     /* gzip */
    rp_buf_free(&b);

    /* The log record: the metadata as the request's text, the event loop
     * held at any symbol. */
    rp_log_request q = {meta[0].value, meta[1].value, {"200", 3},
                        {"auto", 4}, &meta[2].value, &meta[1].key, 1,
                        &meta[0].key, meta[2].key};
    rp_str under = {"short request", 13};
    rp_log_head h = {{"7", 1}, 1, 0, 0.0125, 0.001, 0.0005, 1, 0.011, &under,
                     1};
    rp_log_fields lf;
    rp_buf names, tree_text;
    rep.loop_block_s = 0.0525;
    rep.loop_block_sym = n_syms > 1 ? n_syms - 1 : RP_NONE;
    rep.loop_block_line = 12;
    rp_buf_init(&b, 0);
    rp_buf_init(&names, 0);
    rp_buf_init(&tree_text, 0);
    rp_text_opts lo = {0, 0, 1.0, 40, 1, &lib, 1};
    check(rp_write_log(&b, &names, &tree_text, &lf, &rep, &h, &q, &lo) == 0);
    check(printable_ok(b.data ? b.data : "", b.len));
    check(printable_ok(names.data ? names.data : "", names.len));
    check(!tree_text.failed);
    rp_buf_free(&b);
    rp_buf_free(&names);
    rp_buf_free(&tree_text);

    /* The escapings alone, over the raw input. */
    rp_buf_init(&b, 0);
    check(rp_buf_put_json_string(&b, (const char *)data, size) == 0);
    check(json_valid(b.data, b.len));
    rp_buf_free(&b);
    for (int surrogates = 0; surrogates < 2; surrogates++) {
        rp_buf_init(&b, 0);
        check(rp_buf_put_printable(&b, (const char *)data, size, surrogates)
              == 0);
        check(printable_ok(b.data ? b.data : "", b.len));
        rp_buf_free(&b);
    }

    rp_tree_free(&tree);
done_syms:
done:
    rp_symtab_free(&st);
    return 0;
}

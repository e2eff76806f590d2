/* test_pprof.c - the pprof writer (write_pprof.c), read back by a decoder
 * written here: gunzip (zlib), then a protobuf wire-format reader that
 * rejects anything malformed (bad varints, lengths past the end, unknown
 * wire types), then profile.proto's fields into plain arrays. Checks the
 * small profile field by field (sample types, stacks leaf first with lines,
 * values, labels, functions, comments, period, times), hostile names (every
 * string valid UTF-8, no control characters), an empty and a deep tree,
 * deterministic output and the buffer limit. (tests/test_formats.py runs
 * `go tool pprof` on real output.)
 */
#include <zlib.h>

#include "profile_fixture.h"

#define MAX_STRINGS 256
#define MAX_ITEMS 64
#define MAX_STACK 10010

/* ---- protobuf wire format ------------------------------------------------ */

typedef struct pb_msg {
    const unsigned char *p;
    size_t n;
} pb_msg;

typedef struct pb_field {
    unsigned num, wire_type;
    uint64_t v;                 /* varint fields */
    pb_msg sub;                 /* length-delimited fields */
} pb_field;

/* A varint at m (advanced); -1 when malformed or cut. */
static int
pb_varint(pb_msg *m, uint64_t *v)
{
    uint64_t x = 0;
    for (unsigned shift = 0; shift < 70; shift += 7) {
        if (m->n == 0 || (shift == 63 && (*m->p & 0x7E) != 0)) {
            return -1;
        }
        unsigned char byte = *m->p++;
        m->n--;
        x |= (uint64_t)(byte & 0x7F) << shift;
        if ((byte & 0x80) == 0) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

/* The next field: 1, 0 at the end, -1 when malformed. */
static int
pb_next(pb_msg *m, pb_field *f)
{
    uint64_t key, len;
    if (m->n == 0) {
        return 0;
    }
    if (pb_varint(m, &key) < 0 || (key >> 3) == 0 || (key >> 3) > 1000) {
        return -1;
    }
    f->num = (unsigned)(key >> 3);
    f->wire_type = (unsigned)(key & 7);
    if (f->wire_type == 0) {
        return pb_varint(m, &f->v) < 0 ? -1 : 1;
    }
    if (f->wire_type != 2 || pb_varint(m, &len) < 0 || len > m->n) {
        return -1;      /* the writer only uses varints and lengths */
    }
    f->sub.p = m->p;
    f->sub.n = (size_t)len;
    m->p += len;
    m->n -= len;
    return 1;
}

/* Packed varints into out[cap]; the count, or -1 when malformed/too many. */
static int
pb_packed(pb_msg m, uint64_t *out, size_t cap)
{
    size_t n = 0;
    while (m.n > 0) {
        if (n == cap || pb_varint(&m, &out[n]) < 0) {
            return -1;
        }
        n++;
    }
    return (int)n;
}

/* ---- profile.proto ---------------------------------------------------------- */

typedef struct pp_sample {
    uint64_t locs[MAX_STACK];
    int n_locs;
    uint64_t values[8];
    int n_values;
    uint64_t label_key[8], label_str[8];
    int n_labels;
} pp_sample;

typedef struct pp_function {
    uint64_t id, name, system_name, filename, start_line;
} pp_function;

typedef struct pp_location {
    uint64_t id, mapping_id, function_id, line;
    int n_lines;
} pp_location;

typedef struct pp_profile {
    pb_msg strings[MAX_STRINGS];
    int n_strings;
    uint64_t sample_type[4][2];
    int n_sample_types;
    pp_sample samples[MAX_ITEMS];
    int n_samples;
    pp_function functions[MAX_ITEMS];
    int n_functions;
    pp_location locations[MAX_ITEMS];
    int n_locations;
    int n_mappings, mapping_flags;
    uint64_t comments[MAX_ITEMS];
    int n_comments;
    uint64_t time_nanos, duration_nanos, period, period_type[2];
    uint64_t default_sample_type;
    char *text;                 /* owned: the bytes `strings` point into */
} pp_profile;

static int
decode_value_type(pb_msg m, uint64_t out[2])
{
    pb_field f;
    int rc;
    out[0] = out[1] = 0;
    while ((rc = pb_next(&m, &f)) > 0) {
        if ((f.num == 1 || f.num == 2) && f.wire_type == 0) {
            out[f.num - 1] = f.v;
        }
    }
    return rc;
}

static int
decode_sample(pb_msg m, pp_sample *s)
{
    pb_field f, g;
    int rc, rc2;
    while ((rc = pb_next(&m, &f)) > 0) {
        if (f.num == 1 && f.wire_type == 2) {
            s->n_locs = pb_packed(f.sub, s->locs, MAX_STACK);
            if (s->n_locs < 0) {
                return -1;
            }
        }
        else if (f.num == 2 && f.wire_type == 2) {
            s->n_values = pb_packed(f.sub, s->values, 8);
            if (s->n_values < 0) {
                return -1;
            }
        }
        else if (f.num == 3 && f.wire_type == 2 && s->n_labels < 8) {
            pb_msg l = f.sub;
            int i = s->n_labels++;
            s->label_key[i] = s->label_str[i] = 0;
            while ((rc2 = pb_next(&l, &g)) > 0) {
                if (g.num == 1 && g.wire_type == 0) {
                    s->label_key[i] = g.v;
                }
                else if (g.num == 2 && g.wire_type == 0) {
                    s->label_str[i] = g.v;
                }
            }
            if (rc2 < 0) {
                return -1;
            }
        }
        else {
            return -1;
        }
    }
    return rc;
}

static int
decode_function(pb_msg m, pp_function *fn)
{
    pb_field f;
    int rc;
    memset(fn, 0, sizeof(*fn));
    while ((rc = pb_next(&m, &f)) > 0) {
        if (f.wire_type != 0 || f.num < 1 || f.num > 5) {
            return -1;
        }
        uint64_t *slot[] = {&fn->id, &fn->name, &fn->system_name,
                            &fn->filename, &fn->start_line};
        *slot[f.num - 1] = f.v;
    }
    return rc;
}

static int
decode_location(pb_msg m, pp_location *loc)
{
    pb_field f, g;
    int rc, rc2 = 0;
    memset(loc, 0, sizeof(*loc));
    while ((rc = pb_next(&m, &f)) > 0) {
        if (f.num == 1 && f.wire_type == 0) {
            loc->id = f.v;
        }
        else if (f.num == 2 && f.wire_type == 0) {
            loc->mapping_id = f.v;
        }
        else if (f.num == 4 && f.wire_type == 2) {
            pb_msg l = f.sub;
            loc->n_lines++;
            while ((rc2 = pb_next(&l, &g)) > 0) {
                if (g.num == 1 && g.wire_type == 0) {
                    loc->function_id = g.v;
                }
                else if (g.num == 2 && g.wire_type == 0) {
                    loc->line = g.v;
                }
            }
            if (rc2 < 0) {
                return -1;
            }
        }
        else {
            return -1;
        }
    }
    return rc;
}

static int
decode_mapping(pb_msg m, pp_profile *p)
{
    pb_field f;
    int rc;
    p->n_mappings++;
    while ((rc = pb_next(&m, &f)) > 0) {
        if (f.wire_type == 0 && f.num >= 7 && f.num <= 9 && f.v == 1) {
            p->mapping_flags |= 1 << (f.num - 7);
        }
    }
    return rc;
}

/* Decodes a whole Profile; 0, or -1 when anything is malformed. */
static int
decode_profile(pb_msg m, pp_profile *p)
{
    pb_field f;
    int rc;
    memset(p, 0, sizeof(*p));
    while ((rc = pb_next(&m, &f)) > 0) {
        int ok = 0;
        if (f.wire_type == 2) {
            switch (f.num) {
            case 1:
                ok = p->n_sample_types < 4 && decode_value_type(
                    f.sub, p->sample_type[p->n_sample_types++]) == 0;
                break;
            case 2:
                ok = p->n_samples < MAX_ITEMS && decode_sample(
                    f.sub, &p->samples[p->n_samples++]) == 0;
                break;
            case 3:
                ok = decode_mapping(f.sub, p) == 0;
                break;
            case 4:
                ok = p->n_locations < MAX_ITEMS && decode_location(
                    f.sub, &p->locations[p->n_locations++]) == 0;
                break;
            case 5:
                ok = p->n_functions < MAX_ITEMS && decode_function(
                    f.sub, &p->functions[p->n_functions++]) == 0;
                break;
            case 6:
                ok = p->n_strings < MAX_STRINGS;
                if (ok) {
                    p->strings[p->n_strings++] = f.sub;
                }
                break;
            case 11:
                ok = decode_value_type(f.sub, p->period_type) == 0;
                break;
            }
        }
        else {
            ok = 1;
            switch (f.num) {
            case 9: p->time_nanos = f.v; break;
            case 10: p->duration_nanos = f.v; break;
            case 12: p->period = f.v; break;
            case 13:
                ok = p->n_comments < MAX_ITEMS;
                if (ok) {
                    p->comments[p->n_comments++] = f.v;
                }
                break;
            case 14: p->default_sample_type = f.v; break;
            default: ok = 0;
            }
        }
        if (!ok) {
            return -1;
        }
    }
    return rc;
}

/* Gunzips `in` into `out`; 0, or -1 when it is not one complete gzip. */
static int
gunzip(const rp_buf *in, rp_buf *out)
{
    z_stream zs;
    unsigned char chunk[4096];
    int zrc = Z_OK;
    memset(&zs, 0, sizeof(zs));
    if (inflateInit2(&zs, 15 + 16) != Z_OK) {
        return -1;
    }
    zs.next_in = (unsigned char *)in->data;
    zs.avail_in = (uInt)in->len;
    while (zrc == Z_OK) {
        zs.next_out = chunk;
        zs.avail_out = sizeof(chunk);
        zrc = inflate(&zs, Z_NO_FLUSH);
        if (zrc == Z_OK || zrc == Z_STREAM_END) {
            rp_buf_put(out, (const char *)chunk, sizeof(chunk) - zs.avail_out);
        }
    }
    int rc = zrc == Z_STREAM_END && zs.avail_in == 0 && !out->failed ? 0 : -1;
    inflateEnd(&zs);
    return rc;
}

/* ---- helpers over a decoded profile -------------------------------------- */

static pp_profile *write_and_decode_opts(const rp_report *r,
                                         rp_pprof_opts *o);

static pp_profile *
write_and_decode(const rp_report *r)
{
    return write_and_decode_opts(r, NULL);
}

static pp_profile *
write_and_decode_opts(const rp_report *r, rp_pprof_opts *o)
{
    rp_buf gz, raw;
    pp_profile *p = calloc(1, sizeof(pp_profile));
    rp_buf_init(&gz, 0);
    rp_buf_init(&raw, 0);
    CHECK(p != NULL);
    CHECK(rp_write_pprof_opts(&gz, r, o) == 0);
    CHECK(gz.len > 18 && (unsigned char)gz.data[0] == 0x1f
          && (unsigned char)gz.data[1] == 0x8b);
    CHECK(gunzip(&gz, &raw) == 0);
    if (o != NULL) {
        CHECK_EQ_U64(o->raw_len, raw.len);
    }
    if (p != NULL) {
        pb_msg m = {(const unsigned char *)raw.data, raw.len};
        CHECK(decode_profile(m, p) == 0);
        p->text = rp_buf_steal(&raw, NULL);     /* the strings point here */
        CHECK(p->text != NULL);
    }
    rp_buf_free(&gz);
    rp_buf_free(&raw);
    return p;
}

static void
free_profile(pp_profile *p)
{
    if (p != NULL) {
        free(p->text);
        free(p);
    }
}

/* String i as a NUL-terminated copy in a static buffer ("<bad>" if out of
 * range). */
static const char *
str(const pp_profile *p, uint64_t i)
{
    static char buf[4][512];
    static int which;
    char *b = buf[which++ % 4];
    if (i >= (uint64_t)p->n_strings || p->strings[i].n >= 512) {
        return "<bad>";
    }
    memcpy(b, p->strings[i].p, p->strings[i].n);
    b[p->strings[i].n] = '\0';
    return b;
}

static const pp_function *
function_by_id(const pp_profile *p, uint64_t id)
{
    for (int i = 0; i < p->n_functions; i++) {
        if (p->functions[i].id == id) {
            return &p->functions[i];
        }
    }
    return NULL;
}

static const pp_location *
location_by_id(const pp_profile *p, uint64_t id)
{
    for (int i = 0; i < p->n_locations; i++) {
        if (p->locations[i].id == id) {
            return &p->locations[i];
        }
    }
    return NULL;
}

/* Sample i's stack as "leaf:line;caller:line;...". */
static const char *
stack(const pp_profile *p, int i)
{
    static char buf[1024];
    rp_buf b;
    rp_buf_init(&b, 1000);
    for (int k = 0; k < p->samples[i].n_locs; k++) {
        const pp_location *loc = location_by_id(p, p->samples[i].locs[k]);
        const pp_function *fn = loc ? function_by_id(p, loc->function_id)
                                    : NULL;
        rp_buf_printf(&b, "%s%s:%llu", k ? ";" : "",
                      fn ? str(p, fn->name) : "?",
                      loc ? (unsigned long long)loc->line : 0ull);
    }
    snprintf(buf, sizeof(buf), "%s", b.failed || !b.data ? "" : b.data);
    rp_buf_free(&b);
    return buf;
}

#define CHECK_STRING(p, i, want) CHECK_STR(str((p), (i)), (want))

/* ---- tests ------------------------------------------------------------------ */

static void
test_pprof_of_a_small_profile(void)
{
    fixture f;
    fx_small(&f);
    pp_profile *p = write_and_decode(&f.report);
    if (p == NULL) {
        fx_free(&f);
        return;
    }
    CHECK(p->n_strings > 0 && p->strings[0].n == 0);
    CHECK_EQ_U64(p->n_sample_types, 3);
    CHECK_STRING(p, p->sample_type[0][0], "samples");
    CHECK_STRING(p, p->sample_type[0][1], "count");
    CHECK_STRING(p, p->sample_type[1][0], "wall");
    CHECK_STRING(p, p->sample_type[1][1], "nanoseconds");
    CHECK_STRING(p, p->sample_type[2][0], "cpu");
    CHECK_STRING(p, p->sample_type[2][1], "nanoseconds");
    CHECK_STRING(p, p->default_sample_type, "wall");
    CHECK_STRING(p, p->period_type[0], "wall");
    CHECK_STRING(p, p->period_type[1], "nanoseconds");
    CHECK_EQ_U64(p->period, 1000000);
    CHECK_EQ_U64(p->duration_nanos, 7000000);
    CHECK_EQ_U64(p->time_nanos, 1700000000250000000ull);

    /* One sample per node with self time, in the writers' order. */
    CHECK_EQ_U64(p->n_samples, 4);
    CHECK_STR(stack(p, 0), "handler:11");
    CHECK_STR(stack(p, 1), "slow:21;handler:10");
    CHECK_STR(stack(p, 2), "[await]:0;slow:22;handler:10");
    CHECK_STR(stack(p, 3), "fast:31;handler:10");
    static const uint64_t values[4][3] = {
        {1, MS / 2, MS / 2}, {1, MS, MS}, {1, 3 * MS, 0},
        {1, 3 * MS / 2, 3 * MS / 2},
    };
    uint64_t samples = 0;
    for (int i = 0; i < 4; i++) {
        CHECK_EQ_U64(p->samples[i].n_values, 3);
        for (int k = 0; k < 3; k++) {
            CHECK_EQ_U64(p->samples[i].values[k], values[i][k]);
        }
        samples += p->samples[i].values[0];
        /* Every sample carries the request; null meta is left out. */
        CHECK_EQ_U64(p->samples[i].n_labels, 4);
        CHECK_STRING(p, p->samples[i].label_key[0], "method");
        CHECK_STRING(p, p->samples[i].label_str[0], "GET");
        CHECK_STRING(p, p->samples[i].label_key[1], "path");
        CHECK_STRING(p, p->samples[i].label_str[1], "/x</script>");
        CHECK_STRING(p, p->samples[i].label_key[2], "status");
        CHECK_STRING(p, p->samples[i].label_str[2], "200");
        CHECK_STRING(p, p->samples[i].label_key[3], "bogus");
        CHECK_STRING(p, p->samples[i].label_str[3], "1; alert(1)");
    }
    CHECK_EQ_U64(samples, f.tree.nodes[0].samples);

    /* Functions: name, system name, absolute file, first line. */
    CHECK_EQ_U64(p->n_functions, 4);
    const pp_function *fn = function_by_id(p, 1);
    CHECK(fn != NULL);
    if (fn != NULL) {
        CHECK_STRING(p, fn->name, "handler");
        CHECK_STRING(p, fn->system_name, "handler (app.py:10)");
        CHECK_STRING(p, fn->filename, "/app/app.py");
        CHECK_EQ_U64(fn->start_line, 10);
    }
    for (int i = 0; i < p->n_functions; i++) {
        if (strcmp(str(p, p->functions[i].name), "[await]") == 0) {
            CHECK_EQ_U64(p->functions[i].system_name, 0);
            CHECK_EQ_U64(p->functions[i].filename, 0);
        }
        if (strcmp(str(p, p->functions[i].name), "fast") == 0) {
            CHECK_STRING(p, p->functions[i].filename,
                         "/venv/lib/python3.12/site-packages/lib/fast.py");
            CHECK_EQ_U64(p->functions[i].start_line, 30);
        }
    }
    /* One location per (function, line), each with one line and the
     * symbolized mapping. */
    CHECK_EQ_U64(p->n_locations, 6);
    for (int i = 0; i < p->n_locations; i++) {
        CHECK_EQ_U64(p->locations[i].n_lines, 1);
        CHECK_EQ_U64(p->locations[i].mapping_id, 1);
        CHECK_EQ_U64(p->locations[i].id, (uint64_t)i + 1);
    }
    CHECK_EQ_U64(p->n_mappings, 1);
    CHECK_EQ_U64(p->mapping_flags, 7);

    CHECK_EQ_U64(p->n_comments, 6);
    CHECK_STRING(p, p->comments[0], "reqprof 1.2.3");
    CHECK_STRING(p, p->comments[1], "truncated: depth");
    CHECK_STRING(p, p->comments[2], "method: GET");
    CHECK_STRING(p, p->comments[3], "path: /x</script>");
    CHECK_STRING(p, p->comments[5], "bogus: 1; alert(1)");

    /* No string twice. */
    for (int i = 0; i < p->n_strings; i++) {
        for (int k = i + 1; k < p->n_strings; k++) {
            CHECK(p->strings[i].n != p->strings[k].n
                  || memcmp(p->strings[i].p, p->strings[k].p,
                            p->strings[i].n) != 0);
        }
    }
    free_profile(p);
    fx_free(&f);
}

static void
test_pprof_strings_of_hostile_names_are_clean_utf8(void)
{
    fixture f;
    fx_hostile(&f);
    pp_profile *p = write_and_decode(&f.report);
    if (p == NULL) {
        fx_free(&f);
        return;
    }
    for (int i = 0; i < p->n_strings; i++) {
        CHECK(fx_utf8_valid((const char *)p->strings[i].p, p->strings[i].n));
        for (size_t k = 0; k < p->strings[i].n; k++) {
            CHECK(p->strings[i].p[k] >= 0x20 && p->strings[i].p[k] != 0x7F);
        }
    }
    CHECK_EQ_U64(p->n_samples, 2);
    CHECK_STR(stack(p, 0), "a;b c d </script>\"\\" FFFD " [2J& z:3;root:1");
    CHECK_STR(stack(p, 1), "[thread  ]0;x ]:0;a;b c d </script>\"\\" FFFD
                           " [2J& z:9;root:1");
    const pp_function *fn = function_by_id(p, 1);     /* the first leaf */
    CHECK(fn != NULL);
    if (fn != NULL) {
        CHECK_STRING(p, fn->filename, "/s" FFFD "/" FFFD ".py");
        CHECK_STRING(p, fn->system_name,
                     "a;b c d </script>\"\\" FFFD " [2J& z (" FFFD ".py:9)");
    }
    CHECK_STRING(p, p->samples[0].label_key[0], "pa" FFFD "th");
    CHECK_STRING(p, p->samples[0].label_str[0],
                 "/caf\xC3\xA9 " FFFD FFFD FFFD);
    free_profile(p);
    fx_free(&f);
}

static void
test_pprof_of_an_empty_tree(void)
{
    fixture f;
    fx_empty(&f);
    pp_profile *p = write_and_decode(&f.report);
    if (p != NULL) {
        CHECK_EQ_U64(p->n_sample_types, 3);
        CHECK_EQ_U64(p->n_samples, 0);
        CHECK_EQ_U64(p->n_functions, 0);
        CHECK_EQ_U64(p->n_locations, 0);
        CHECK_STRING(p, p->comments[1], "truncated: memory");
    }
    free_profile(p);
    fx_free(&f);
}

static void
test_pprof_of_a_10000_deep_chain(void)
{
    fixture f;
    fx_deep(&f, 10000);
    pp_profile *p = write_and_decode(&f.report);
    if (p != NULL) {
        CHECK_EQ_U64(p->n_samples, 1);
        CHECK_EQ_U64(p->samples[0].n_locs, 10001);
        CHECK_EQ_U64(p->n_functions, 2);
        CHECK_EQ_U64(p->n_locations, 3);    /* recurse:6, recurse:5, root:1 */
        const pp_location *leaf = location_by_id(p, p->samples[0].locs[0]);
        const pp_location *mid = location_by_id(p, p->samples[0].locs[1]);
        const pp_location *root = location_by_id(p,
                                                 p->samples[0].locs[10000]);
        CHECK(leaf != NULL && leaf->line == 6);
        CHECK(mid != NULL && mid->line == 5);
        CHECK(root != NULL && root->line == 1);
        CHECK_EQ_U64(p->samples[0].values[0], 1);
        CHECK_EQ_U64(p->samples[0].values[1], MS);
    }
    free_profile(p);
    fx_free(&f);
}

static void
test_pprof_output_is_deterministic(void)
{
    fixture f;
    rp_buf a, b;
    fx_small(&f);
    rp_buf_init(&a, 0);
    rp_buf_init(&b, 0);
    CHECK(rp_write_pprof(&a, &f.report) == 0);
    CHECK(rp_write_pprof(&b, &f.report) == 0);
    CHECK_MEM(a.data, a.len, b.data, b.len);
    rp_buf_free(&a);
    rp_buf_free(&b);
    fx_free(&f);
}

static void
test_pprof_fails_at_the_buffer_limit(void)
{
    fixture f;
    rp_buf out;
    fx_small(&f);
    rp_buf_init(&out, 0);
    CHECK(rp_write_pprof(&out, &f.report) == 0);
    size_t full = out.len;
    rp_buf_free(&out);
    for (size_t limit = 1; limit < full; limit += 13) {
        rp_buf_init(&out, limit);
        CHECK(rp_write_pprof(&out, &f.report) == -1);
        CHECK(out.failed && out.len <= limit);
        rp_buf_free(&out);
    }
    fx_free(&f);
}

/* A pushed profile: wall and cpu only, the interval's times, and the
 * samples with the least self wall time left out past max_samples. */
static void
test_pprof_for_a_push_keeps_the_heaviest_samples(void)
{
    fixture f;
    fx_small(&f);
    rp_pprof_opts o;
    memset(&o, 0, sizeof(o));
    o.wall_cpu_only = 1;
    o.time_ns = 1800000000000000000ull;
    o.duration_ns = 15000000000ull;
    o.max_samples = 2;
    pp_profile *p = write_and_decode_opts(&f.report, &o);
    if (p != NULL) {
        CHECK_EQ_U64(p->n_sample_types, 2);
        CHECK_STRING(p, p->sample_type[0][0], "wall");
        CHECK_STRING(p, p->sample_type[1][0], "cpu");
        CHECK_STRING(p, p->default_sample_type, "wall");
        CHECK_EQ_U64(p->time_nanos, 1800000000000000000ull);
        CHECK_EQ_U64(p->duration_nanos, 15000000000ull);
        /* Self wall: handler 0.5, slow 1, [await] 3, fast 1.5 ms. */
        CHECK_EQ_U64(p->n_samples, 2);
        CHECK_STR(stack(p, 0), "[await]:0;slow:22;handler:10");
        CHECK_STR(stack(p, 1), "fast:31;handler:10");
        CHECK_EQ_U64(p->samples[0].n_values, 2);
        CHECK_EQ_U64(p->samples[0].values[0], 3 * MS);
        CHECK_EQ_U64(p->samples[0].values[1], 0);
        CHECK_EQ_U64(p->samples[1].values[1], 3 * MS / 2);
        CHECK_EQ_U64(o.trimmed, 2);
        CHECK_EQ_U64(o.trimmed_wall_ns, MS / 2 + MS);
    }
    free_profile(p);
    /* Under the limit nothing is left out. */
    o.max_samples = 4;
    p = write_and_decode_opts(&f.report, &o);
    if (p != NULL) {
        CHECK_EQ_U64(p->n_samples, 4);
        CHECK_EQ_U64(o.trimmed, 0);
        CHECK_EQ_U64(o.trimmed_wall_ns, 0);
    }
    free_profile(p);
    fx_free(&f);
}

/* Ties at the threshold: exactly max_samples are kept, the earlier ones. */
static void
test_pprof_trim_keeps_exactly_max_samples_on_ties(void)
{
    fixture f;
    fx_small(&f);
    for (uint32_t i = 0; i < f.tree.n_nodes; i++) {
        f.tree.nodes[i].self_wall_ns = f.tree.nodes[i].self_wall_ns ? MS : 0;
    }
    rp_pprof_opts o;
    memset(&o, 0, sizeof(o));
    o.max_samples = 3;
    pp_profile *p = write_and_decode_opts(&f.report, &o);
    if (p != NULL) {
        CHECK_EQ_U64(p->n_sample_types, 3);
        CHECK_EQ_U64(p->n_samples, 3);
        CHECK_STR(stack(p, 0), "handler:11");
        CHECK_EQ_U64(o.trimmed, 1);
        CHECK_EQ_U64(o.trimmed_wall_ns, MS);
    }
    free_profile(p);
    fx_free(&f);
}

/* The decoder itself rejects what it should (so the checks above mean
 * something). */
static void
test_decoder_rejects_malformed_input(void)
{
    static const unsigned char cut_len[] = {0x0A, 0x05, 0x08};
    static const unsigned char cut_varint[] = {0x48, 0x80};
    static const unsigned char fixed64[] = {0x09, 1, 2, 3, 4, 5, 6, 7, 8};
    static const unsigned char ok[] = {0x48, 0x96, 0x01};   /* time 150 */
    pp_profile *p = calloc(1, sizeof(pp_profile));
    CHECK(p != NULL);
    if (p != NULL) {
        CHECK(decode_profile((pb_msg){cut_len, 3}, p) < 0);
        CHECK(decode_profile((pb_msg){cut_varint, 2}, p) < 0);
        CHECK(decode_profile((pb_msg){fixed64, 9}, p) < 0);
        CHECK(decode_profile((pb_msg){ok, 3}, p) == 0);
        CHECK_EQ_U64(p->time_nanos, 150);
    }
    free(p);
}

int
main(void)
{
    RUN(test_pprof_of_a_small_profile);
    RUN(test_pprof_strings_of_hostile_names_are_clean_utf8);
    RUN(test_pprof_of_an_empty_tree);
    RUN(test_pprof_of_a_10000_deep_chain);
    RUN(test_pprof_output_is_deterministic);
    RUN(test_pprof_fails_at_the_buffer_limit);
    RUN(test_pprof_for_a_push_keeps_the_heaviest_samples);
    RUN(test_pprof_trim_keeps_exactly_max_samples_on_ties);
    RUN(test_decoder_rejects_malformed_input);
    return check_summary();
}

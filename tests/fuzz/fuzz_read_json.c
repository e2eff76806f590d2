/* fuzz_read_json.c - libFuzzer target for the profile JSON reader
 * (Report.from_json's C side).
 *
 * Any input must be rejected with a message or read; what is read must
 * write back (rp_write_json) to valid JSON that reads again and writes the
 * very same bytes (the reader and writer agree on every accepted document).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../c/json_check.h"
#include "read_json.h"
#include "writers.h"

static void
check(int ok)
{
    if (!ok) {
        abort();
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    rp_loaded first, second;
    rp_report rep;
    rp_buf a, b;

    err[0] = '\0';
    int rc = rp_read_json((const char *)data, size, &first, err, sizeof(err));
    if (rc != RP_READ_OK) {
        check(rc == RP_READ_NOMEM || err[0] != '\0');
        return 0;
    }
    rp_loaded_report(&first, &rep);
    rp_buf_init(&a, 0);
    check(rp_write_json(&a, &rep) == 0);
    check(json_valid(a.data, a.len));

    check(rp_read_json(a.data, a.len, &second, err, sizeof(err))
          == RP_READ_OK);
    rp_loaded_report(&second, &rep);
    rp_buf_init(&b, 0);
    check(rp_write_json(&b, &rep) == 0);
    check(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);

    rp_buf_free(&a);
    rp_buf_free(&b);
    rp_loaded_free(&first);
    rp_loaded_free(&second);
    return 0;
}

/* write_html.c - the HTML report: the viewer page with the profile inlined.
 *
 * The page (viewer JS and CSS already inlined, see reqprof/viewer) comes in
 * two parts, before and after the place of the profile; the JSON writer's
 * strings are script-safe (`<`, `>`, `&`, U+2028/9 escaped), so the data
 * can sit inside a <script type="application/json"> element as is.
 */
#include "writers.h"

int
rp_write_html(rp_buf *out, const rp_report *r, const char *head,
              size_t head_len, const char *tail, size_t tail_len)
{
    rp_buf_put(out, head, head_len);
    rp_write_json(out, r);
    rp_buf_put(out, tail, tail_len);
    return out->failed ? -1 : 0;
}

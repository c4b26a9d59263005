/* How an origin_request_header rule reads to a person (cli.h): one place
 * for header list, status and inspect (and the manifest fuzz harness, which
 * links inspect without the other commands). */
#include <stdio.h>

#include "cdnapi.h"
#include "cli.h"

/* "add a,b (duplicate on)", "rewrite ^a -> b", "delete". */
static void rule_text(const char *spec, char *out, size_t cap)
{
    char copy[CDNAPI_MAX_VALUE_LEN + 1];
    cdnapi_rule_t r;
    snprintf(copy, sizeof copy, "%s", spec);
    if (!cdnapi_rule_unspec(copy, &r))
        snprintf(out, cap, "(not a rule: %s)", spec);
    else if (r.op == CDNAPI_RULE_REWRITE)
        snprintf(out, cap, "rewrite %s -> %s", r.source, r.value);
    else
        snprintf(out, cap, "%s%s%s%s", cdnapi_rule_op_str(r.op), r.value[0] ? " " : "", r.value,
                 r.duplicate ? " (duplicate on)" : "");
}

const char *cli_header_text(const char *value, bool rule, char *buf, size_t cap)
{
    if (!value || !rule)
        return value;
    rule_text(value, buf, cap);
    return buf;
}

/* strtod for the image, in place of newlib's. cJSON reads every JSON
 * number with strtod; the API's numbers are integers (ConfigIds, counts,
 * CertIds). newlib's strtod rounds any decimal correctly and reads hex
 * floats, infinities and NaNs, with its own big-number arithmetic: about
 * 6 KB of flash the image cannot spare (make size). This one:
 *
 *   - integers of up to 19 digits are exact before the one conversion to
 *     double, so every integer up to 2^53 (cdnapi's ConfigId limit) reads
 *     exactly, and larger ones are correctly rounded;
 *   - fractions and exponents scale by a power of ten built by squaring:
 *     within a few ulps, not always the nearest double (no JSON number the
 *     agent reads has a fraction);
 *   - beyond the range of double (or within a few ulps of its largest,
 *     1.7976931348623157e308): HUGE_VAL with ERANGE, or 0; no "inf",
 *     "nan" or hex form (JSON has none): those read as no number.
 *
 * tests/unit/test_strtod_compact.c holds it against the C library's. */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

/* Digits kept in the 64-bit mantissa; later ones only scale. */
#define STRTOD_MANTISSA_MAX (UINT64_MAX / 10u - 9u)
/* An exponent past this makes any digits 0 or infinite. */
#define STRTOD_EXP_MAX 1000

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* The digits at *p (an integer part, or a fraction when frac) into *m;
 * *exp10 counts digits dropped (integer) or kept (fraction). */
static const char *read_digits(const char *p, bool frac, uint64_t *m, int *exp10, int *count)
{
    for (; is_digit(*p); p++, (*count)++) {
        if (*m <= STRTOD_MANTISSA_MAX) {
            *m = *m * 10u + (unsigned)(*p - '0');
            *exp10 -= frac;
        } else {
            *exp10 += !frac;
        }
    }
    return p;
}

/* An exponent part ("e-12") at p: added to *exp10 and its end returned,
 * or p itself when there is none. */
static const char *read_exponent(const char *p, int *exp10)
{
    if (*p != 'e' && *p != 'E')
        return p; /* (nothing past p is read: p may be the terminator) */
    const char *q = p + 1;
    bool negative = *q == '-';
    int e = 0;
    if (*q == '-' || *q == '+')
        q++;
    if (!is_digit(*q))
        return p;
    for (; is_digit(*q); q++)
        if (e < STRTOD_EXP_MAX)
            e = e * 10 + (*q - '0');
    *exp10 += negative ? -e : e;
    return q;
}

double strtod(const char *restrict s, char **restrict end)
{
    const char *p = s;
    uint64_t m = 0;
    int exp10 = 0, count = 0;
    while (*p == ' ' || (*p >= '\t' && *p <= '\r'))
        p++;
    bool negative = *p == '-';
    if (*p == '-' || *p == '+')
        p++;
    p = read_digits(p, false, &m, &exp10, &count);
    if (*p == '.')
        p = read_digits(p + 1, true, &m, &exp10, &count);
    if (count == 0) {
        if (end)
            *end = (char *)(uintptr_t)s;
        return 0.0;
    }
    p = read_exponent(p, &exp10);
    if (end)
        *end = (char *)(uintptr_t)p;
    double v = (double)m, scale = 1.0, ten = 10.0;
    if (exp10 < -300 && m != 0) { /* (10^-exp10 itself would overflow first) */
        v /= 1e300;
        exp10 += 300;
    }
    unsigned n = m == 0 ? 0u : (unsigned)(exp10 < 0 ? -exp10 : exp10);
    for (; n != 0u; n >>= 1, ten *= ten)
        if (n & 1u)
            scale *= ten;
    v = exp10 < 0 ? v / scale : v * scale;
    if (v == HUGE_VAL || (v == 0.0 && m != 0))
        errno = ERANGE;
    return negative ? -v : v;
}

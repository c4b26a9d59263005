/* Helpers shared by the fuzz harnesses: a cursor over the fuzz input and
 * the oracle's way of failing.
 *
 * Header-only (static inline): each harness is one translation unit plus
 * this file, so a harness builds the same way under libFuzzer (clang) and
 * in the replay binaries (cc). */
#ifndef CDNAGENT_FUZZ_COMMON_H
#define CDNAGENT_FUZZ_COMMON_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sanitizer/common_interface_defs.h>

/* The input as a stream: once it runs dry every read returns zeros, so a
 * short input still drives a complete (if dull) scenario. */
typedef struct {
    const uint8_t *p;
    size_t left;
} fuzz_in_t;

static inline uint8_t fz_u8(fuzz_in_t *in)
{
    if (in->left == 0)
        return 0;
    in->left--;
    return *in->p++;
}

static inline uint16_t fz_u16(fuzz_in_t *in)
{
    uint16_t lo = fz_u8(in);
    return (uint16_t)(lo | (uint16_t)fz_u8(in) << 8);
}

/* Up to n bytes (fewer when the input ends); returns how many. */
static inline size_t fz_take(fuzz_in_t *in, size_t n, const uint8_t **out)
{
    if (n > in->left)
        n = in->left;
    *out = in->p;
    in->p += n;
    in->left -= n;
    return n;
}

/* A field of at most cap-1 bytes, length from one input byte, copied and
 * NUL-terminated (an embedded NUL shortens it, as it would for any C
 * caller). */
static inline void fz_str(fuzz_in_t *in, char *out, size_t cap)
{
    const uint8_t *p;
    size_t n = fz_take(in, fz_u8(in), &p);
    if (n > cap - 1)
        n = cap - 1;
    memcpy(out, p, n);
    out[n] = 0;
}

/* The oracle saw something the component promises never happens: say what,
 * then abort so libFuzzer (or the replay) records the input. The message
 * goes to the sanitizers' report stream, not to stderr: harnesses whose
 * code under test logs a line per input run with -close_fd_mask=2, which
 * discards stderr but keeps that stream. (Every build of a harness,
 * libFuzzer or replay, links the sanitizer runtime.) */
#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
_Noreturn static inline void
fz_fail(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fflush(stderr);
    char summary[1100];
    snprintf(summary, sizeof summary, "FUZZ ORACLE VIOLATED: %s", msg);
    __sanitizer_report_error_summary(summary);
    abort();
}

#define FZ_CHECK(cond, ...)       \
    do {                          \
        if (!(cond))              \
            fz_fail(__VA_ARGS__); \
    } while (0)

/* libFuzzer's entry point (declared here so -Wmissing-prototypes style
 * checks and the replay driver agree on it). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif

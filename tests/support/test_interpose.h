/*
 * test_interpose: tests that wrap a library function (an mbedTLS call, a
 * libc call) define it themselves and reach the real one through
 * RTLD_NEXT. The including file defines _GNU_SOURCE before any include.
 */
#ifndef CDNAGENT_TEST_INTERPOSE_H
#define CDNAGENT_TEST_INTERPOSE_H

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

static inline void *real_sym(const char *name)
{
    void *p = dlsym(RTLD_NEXT, name);
    if (!p)
        abort();
    return p;
}

/* var (a function pointer) = the real name, looked up once. */
#define REAL(var, name)                   \
    do {                                  \
        if (!var) {                       \
            void *p_ = real_sym(name);    \
            memcpy(&var, &p_, sizeof p_); \
        }                                 \
    } while (0)

#endif

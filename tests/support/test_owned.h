/*
 * test_owned.h — heap blocks a cmocka test holds, freed by its teardown.
 *
 * A failing assertion longjmps out of the test, so whatever it allocated is
 * registered here and teardown_owned frees it: nothing leaks under ASan.
 * Header-only (static inline) because it needs cmocka's fail_msg, and the
 * .c files of tests/support are also linked into the benchmarks, which do
 * not link cmocka. Include it after <cmocka.h>.
 */
#ifndef CDNAGENT_TEST_OWNED_H
#define CDNAGENT_TEST_OWNED_H

#include <stdlib.h>

#define TEST_OWNED_MAX 32
static void *g_owned[TEST_OWNED_MAX];

/* Register p (fails the test when p is NULL or the table is full). */
static inline void *own(void *p)
{
    if (!p)
        fail_msg("out of memory");
    for (int i = 0; i < TEST_OWNED_MAX; i++)
        if (!g_owned[i]) {
            g_owned[i] = p;
            return p;
        }
    free(p);
    fail_msg("too many owned blocks");
    return NULL;
}

/* Free one registered block before the test ends. */
static inline void owned_free(void *p)
{
    for (int i = 0; i < TEST_OWNED_MAX; i++)
        if (g_owned[i] == p)
            g_owned[i] = NULL;
    free(p);
}

static inline int teardown_owned(void **state)
{
    (void)state;
    for (int i = 0; i < TEST_OWNED_MAX; i++) {
        free(g_owned[i]);
        g_owned[i] = NULL;
    }
    return 0;
}

#endif

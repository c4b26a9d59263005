/* POSIX implementation of the non-network parts of port.h. */
#define _GNU_SOURCE
#include "port_posix.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

uint64_t port_monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A Linux box that booted without RTC or NTP sits near 1970; anything
 * before 2020-01-01 cannot be a real date for this product. */
#define WALL_CLOCK_MIN_UTC 1577836800

port_status_t port_wall_clock(int64_t *utc_seconds)
{
    struct timespec ts;
    if (utc_seconds == NULL)
        return PORT_ERR_ARG;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return PORT_ERR_IO;
    /* Fault injection for tests: a device whose RTC is wrong by N seconds,
     * or was never set ("unset"). */
    const char *skew = getenv("CDNAGENT_CLOCK_SKEW_S");
    if (skew && *skew) {
        if (strcmp(skew, "unset") == 0)
            return PORT_ERR_NOT_SET;
        ts.tv_sec += (time_t)strtoll(skew, NULL, 10);
    }
    if (ts.tv_sec < WALL_CLOCK_MIN_UTC)
        return PORT_ERR_NOT_SET;
    *utc_seconds = (int64_t)ts.tv_sec;
    return PORT_OK;
}

port_status_t port_random(void *buf, size_t len)
{
    unsigned char *p = buf;
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == ENOSYS ? PORT_ERR_UNSUPPORTED : PORT_ERR_IO;
        }
        p += n;
        len -= (size_t)n;
    }
    return PORT_OK;
}

static port_log_level_t log_threshold = PORT_LOG_INFO;

void port_log_set_level(port_log_level_t threshold)
{
    log_threshold = threshold;
}

void port_log(port_log_level_t level, const char *component, const char *fmt, ...)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    va_list ap;
    if (level > log_threshold)
        return;
    fprintf(stderr, "cdnagent[%s] %s: ", component ? component : "-",
            names[(unsigned)level < 4 ? (unsigned)level : 3]);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

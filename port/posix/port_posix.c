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
#include <unistd.h>
#include <sys/stat.h>

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

/* Is fd the journal? JOURNAL_STREAM is "DEVICE:INODE" of the stream systemd
 * connected; a process whose fd was redirected elsewhere must not claim it. */
int port_posix_log_is_journal(int fd)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev = 0, ino = 0;
    struct stat sb;
    if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(fd, &sb) != 0)
        return 0;
    return (unsigned long long)sb.st_dev == dev && (unsigned long long)sb.st_ino == ino;
}

const char *port_posix_log_prefix(int fd, port_log_level_t level, char *buf, size_t cap)
{
    static const int syslog_priority[] = {3, 4, 6, 7}; /* err, warning, info, debug */
    buf[0] = '\0';
    if (port_posix_log_is_journal(fd)) {
        snprintf(buf, cap, "<%d>", syslog_priority[(unsigned)level < 4 ? (unsigned)level : 3]);
    } else if (isatty(fd)) {
        time_t now = time(NULL);
        struct tm tm;
        if (localtime_r(&now, &tm) != NULL)
            strftime(buf, cap, "%Y-%m-%d %H:%M:%S ", &tm);
    }
    return buf;
}

void port_log(port_log_level_t level, const char *component, const char *fmt, ...)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    char prefix[32];
    va_list ap;
    if (level > log_threshold)
        return;
    fprintf(stderr, "%scdnagent[%s] %s: ",
            port_posix_log_prefix(STDERR_FILENO, level, prefix, sizeof prefix),
            component ? component : "-", names[(unsigned)level < 4 ? (unsigned)level : 3]);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

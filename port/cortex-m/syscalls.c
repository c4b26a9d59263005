/* The few system calls newlib-nano needs on bare metal: a heap between the
 * end of .bss and the stack, console output over semihosting, exit with a
 * status the host sees, and time() from the port's wall clock (mbedTLS
 * checks certificate validity with it). Everything else fails cleanly. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/time.h>

#include "port.h"
#include "port_cortexm.h"
#include "semihost.h"

extern char __heap_start__, __heap_end__;

void *_sbrk(ptrdiff_t incr);
int _write(int fd, const void *buf, size_t len);
int _read(int fd, void *buf, size_t len);
int _close(int fd);
int _fstat(int fd, struct stat *st);
int _isatty(int fd);
int _lseek(int fd, int off, int whence);
void _exit(int status);
int _kill(int pid, int sig);
int _getpid(void);
int _gettimeofday(struct timeval *tv, void *tz);

static char *brk = &__heap_start__;

size_t port_cortexm_heap_arena(void)
{
    return (size_t)(brk - &__heap_start__);
}

void *_sbrk(ptrdiff_t incr)
{
    char *prev = brk;
    /* The heap never grows into the stack: a failed malloc instead of a
     * silent overwrite. */
    if (incr < 0 || (size_t)incr > (size_t)(&__heap_end__ - brk)) {
        errno = ENOMEM;
        return (void *)-1;
    }
    brk += incr;
    return prev;
}

int _write(int fd, const void *buf, size_t len)
{
    if (fd != 1 && fd != 2) {
        errno = EBADF;
        return -1;
    }
    semihost_write(buf, len);
    return (int)len;
}

int _read(int fd, void *buf, size_t len)
{
    (void)fd;
    (void)buf;
    (void)len;
    errno = EBADF;
    return -1;
}

int _close(int fd)
{
    (void)fd;
    return -1;
}

int _fstat(int fd, struct stat *st)
{
    (void)fd;
    st->st_mode = S_IFCHR; /* unbuffered console */
    return 0;
}

int _isatty(int fd)
{
    return fd <= 2;
}

int _lseek(int fd, int off, int whence)
{
    (void)fd;
    (void)off;
    (void)whence;
    return 0;
}

void _exit(int status)
{
    semihost_exit(status);
}

int _kill(int pid, int sig)
{
    (void)pid;
    (void)sig;
    errno = EINVAL;
    return -1;
}

int _getpid(void)
{
    return 1;
}

int _gettimeofday(struct timeval *tv, void *tz)
{
    int64_t now;
    (void)tz;
    if (port_wall_clock(&now) != PORT_OK) {
        errno = EINVAL;
        return -1;
    }
    tv->tv_sec = (time_t)now;
    tv->tv_usec = 0;
    return 0;
}

/* There is no file system: opening a file fails with ENOENT. */
int _open(const char *path, int flags, int mode);
int _open(const char *path, int flags, int mode)
{
    (void)path;
    (void)flags;
    (void)mode;
    errno = ENOENT;
    return -1;
}

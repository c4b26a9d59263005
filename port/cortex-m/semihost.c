#include "semihost.h"

#include <stdint.h>
#include <string.h>

#define SYS_OPEN 0x01
#define SYS_CLOSE 0x02
#define SYS_WRITE 0x05
#define SYS_READ 0x06
#define SYS_TIME 0x11
#define SYS_GET_CMDLINE 0x15
#define SYS_EXIT_EXTENDED 0x20
#define ADP_STOPPED_APPLICATION_EXIT 0x20026

static int semihost_call(int op, void *arg)
{
    register int r0 __asm__("r0") = op;
    register void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void semihost_write(const char *buf, size_t len)
{
    /* ":tt" opened for writing (mode 4, "w") is the host's stdout. */
    static int tty = -1;
    uintptr_t args[3];
    if (tty < 0) {
        uintptr_t open_args[3] = {(uintptr_t) ":tt", 4, 3};
        tty = semihost_call(SYS_OPEN, open_args);
    }
    args[0] = (uintptr_t)tty;
    args[1] = (uintptr_t)buf;
    args[2] = len;
    semihost_call(SYS_WRITE, args);
}

void semihost_exit(int code)
{
    uintptr_t args[2] = {ADP_STOPPED_APPLICATION_EXIT, (uintptr_t)(intptr_t)code};
    semihost_call(SYS_EXIT_EXTENDED, args);
    for (;;) {
    }
}

int semihost_open_read(const char *path)
{
    uintptr_t args[3] = {(uintptr_t)path, 1 /* "rb" */, strlen(path)};
    return semihost_call(SYS_OPEN, args);
}

size_t semihost_read(int handle, void *buf, size_t len)
{
    uintptr_t args[3] = {(uintptr_t)handle, (uintptr_t)buf, len};
    int not_read = semihost_call(SYS_READ, args);
    return not_read < 0 ? 0 : len - (size_t)not_read;
}

void semihost_close(int handle)
{
    uintptr_t args[1] = {(uintptr_t)handle};
    semihost_call(SYS_CLOSE, args);
}

long semihost_time(void)
{
    return semihost_call(SYS_TIME, NULL);
}

int semihost_cmdline(char *buf, size_t cap)
{
    uintptr_t args[2] = {(uintptr_t)buf, cap};
    if (cap == 0 || semihost_call(SYS_GET_CMDLINE, args) != 0)
        return -1;
    return (int)args[1];
}

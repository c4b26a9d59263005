/* ARM semihosting: console output, host files and exit codes under QEMU or
 * a debugger. Only the Cortex-M port and the firmware image use this. */
#ifndef CDNAGENT_SEMIHOST_H
#define CDNAGENT_SEMIHOST_H

#include <stddef.h>

void semihost_write(const char *buf, size_t len);
/* Ends the emulation with an exit code the host sees (SYS_EXIT_EXTENDED). */
void semihost_exit(int code);
/* Open a host file read-only; returns a handle >= 0 or -1. */
int semihost_open_read(const char *path);
/* Read up to len bytes; returns the number read. */
size_t semihost_read(int handle, void *buf, size_t len);
void semihost_close(int handle);
/* Host wall clock in seconds since 1970 (SYS_TIME), or -1. Under QEMU this
 * stands in for the RTC a board would have. */
long semihost_time(void);
/* The command line given to QEMU with -append; returns its length or -1. */
int semihost_cmdline(char *buf, size_t cap);

#endif

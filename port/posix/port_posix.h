/*
 * port_posix.h — Linux-only extras of the POSIX port: backend constructors
 * and measurement hooks that firmware/linux and host tests use. Components
 * never include this file.
 */
#ifndef CDNAGENT_PORT_POSIX_H
#define CDNAGENT_PORT_POSIX_H

#include "port.h"

/* Heap figures: port/port_heap.h (the same counting heap on every port). */

/* port_wall_clock honours CDNAGENT_CLOCK_SKEW_S (tests' fault injection):
 * an integer offset in seconds (a wrong RTC), or "unset" (no time at all). */

/* Flash backend on a regular file. The file holds the raw flash image
 * (sector_size * sector_count bytes); geometry is derived from the file size
 * and the given sector_size / write_size (no sidecar). When the file does
 * not exist and create is non-zero it is created filled with 0xFF using
 * sector_count; otherwise sector_count is taken from the size (which must be
 * a non-zero multiple of sector_size). The backend enforces NOR rules
 * (program only clears bits; alignment). Returns PORT_OK, PORT_ERR_ARG
 * (bad geometry / size), PORT_ERR_IO (cannot open). Close with
 * port_flash_file_close. */
/* How a log line written to fd starts, by what fd is: the journal (systemd's
 * JOURNAL_STREAM names fd's device and inode) gets the sd-daemon priority
 * prefix "<3>" (error), "<4>" (warning), "<6>" (info), "<7>" (debug), which
 * journald turns into the line's priority; a terminal gets a local
 * timestamp "2026-11-30 14:02:07 "; anything else (a pipe, a file) nothing,
 * so scripts read the same lines as before. Writes the prefix into buf
 * (cap bytes, at least 32) and returns it. */
const char *port_posix_log_prefix(int fd, port_log_level_t level, char *buf, size_t cap);
/* Is fd the journal (JOURNAL_STREAM names it)? */
int port_posix_log_is_journal(int fd);

port_status_t port_flash_file_open(port_flash_t *dev, const char *path, uint32_t sector_size,
                                   uint32_t sector_count, uint32_t write_size, int create);
/* The same on an existing image opened read-only (a read-only file or file
 * system): reads as above, every program and erase fails with PORT_ERR_IO
 * and changes nothing. */
port_status_t port_flash_file_open_ro(port_flash_t *dev, const char *path, uint32_t sector_size,
                                      uint32_t write_size);
void port_flash_file_close(port_flash_t *dev);
/* The image is cached in RAM (written through on every program/erase); when
 * another process may have written the file, re-read it before use: every
 * handle reloads when it takes the image's lock and writes only while it
 * holds it. *changed (may be NULL) says whether the image changed since
 * this handle last loaded or wrote it, so an unchanged image need not be
 * mounted again. Writers announce themselves in PATH.gen (a counter bumped
 * before a handle's first write after a load; created 0600 beside the
 * image): a reload that finds the counter and the file's size, mtime and
 * ctime unchanged reads nothing. Otherwise (or without a usable PATH.gen)
 * it reads the whole image and *changed says whether any byte differed. */
port_status_t port_flash_file_reload(port_flash_t *dev, int *changed);
/* Before giving up the lock: remember the file as this handle's writes
 * left it, so its next reload can tell them from another writer's without
 * reading (optional: without it that reload reads the image). */
port_status_t port_flash_file_release(port_flash_t *dev);

/* Flash backend on a Linux MTD char device (/dev/mtdN): geometry from
 * MEMGETINFO, erase via MEMERASE. NOR-like devices only (write size <= 32).
 * Returns PORT_OK, PORT_ERR_IO (cannot open), PORT_ERR_UNSUPPORTED (not an
 * MTD device, or NAND). Untested on the build host (no MTD devices). */
port_status_t port_flash_mtd_open(port_flash_t *dev, const char *path);
/* The same for reading only (a read-only device, or a user who may only
 * read it): program and erase fail with PORT_ERR_IO. */
port_status_t port_flash_mtd_open_ro(port_flash_t *dev, const char *path);
void port_flash_mtd_close(port_flash_t *dev);

/* Device key on Linux: a file holding "cdnagent-device-key v1 <id> <64 hex>"
 * with mode 0600, kept outside the flash image. port_device_key reads the
 * file named here (NULL: none, PORT_ERR_NOT_SET). port_posix_write_device_key
 * creates or replaces it atomically (temp file, fsync, rename) with a fresh
 * random key and the given id; a file that is readable by group or others is
 * refused by port_device_key with PORT_ERR_IO. */
void port_posix_set_device_key_path(const char *path);
port_status_t port_posix_write_device_key(const char *path, uint32_t key_id);

#endif /* CDNAGENT_PORT_POSIX_H */

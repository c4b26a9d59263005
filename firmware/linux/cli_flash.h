/*
 * cli_flash.h — open the device's config flash (a file or /dev/mtdN) and
 * mount the store on it, for every subcommand that touches stored state.
 */
#ifndef CDNAGENT_CLI_FLASH_H
#define CDNAGENT_CLI_FLASH_H

#include <stdint.h>

#include "port.h"
#include "store.h"

/* Geometry of a flash file created on first use (256 KiB, NOR-like). */
#define CLI_FLASH_SECTOR_SIZE 4096u
#define CLI_FLASH_SECTOR_COUNT 64u
#define CLI_FLASH_WRITE_SIZE 8u
/* The smallest record the store writes (28-byte header and a 1-byte key,
 * aligned): the image's bytes over this bound the keys the index needs. */
#define CLI_RECORD_MIN 32u

typedef struct {
    port_flash_t dev;
    store_t store;
    uint8_t *work;
    size_t work_size;
    int is_mtd;
    int lock_fd;    /* flock(2) on the image: one store user at a time */
    int deliver_fd; /* PATH.deliver.lock, held by sync/run */
    int locked;
    int current;                 /* the mounted store matches the image as last read */
    store_mount_report_t report; /* what mount found */
} cli_flash_t;

enum {
    CLI_FLASH_OPEN_EXISTING = 0, /* the image must exist and hold a store */
    CLI_FLASH_CREATE = 1,        /* create (and format) an image on first use */
    CLI_FLASH_NEW = 2,           /* create an image; refuse one that exists */
    /* for commands that only read: the image must exist; it is opened
     * read-only under a shared lock (none where the image cannot change:
     * a read-only file system), so a read-only image, file system or user
     * can look at it; nothing is ever created or written */
    CLI_FLASH_READ = 3,
};

typedef struct {
    uint32_t sector_size, sector_count, write_size;
} cli_flash_geometry_t;

/* Open path and mount the store. On failure prints one line to stderr
 * ("cdnagent: flash PATH: reason") and returns non-zero; nothing is written
 * to an existing image that does not hold a store. */
int cli_flash_open(cli_flash_t *f, const char *path, int mode);
void cli_flash_close(cli_flash_t *f);
/* Create and format a new image of the given geometry (cdnagent format);
 * an existing non-empty file is refused and left untouched. */
int cli_flash_create(cli_flash_t *f, const char *path, const cli_flash_geometry_t *geo);

/* Store-level concurrency between processes (the CLI and the daemon):
 * every access to the store happens under an exclusive flock(2) on the
 * image, taken by cli_flash_open and held until close for one-shot
 * commands. The daemon instead releases it between steps
 * (cli_flash_unlock) and takes it back with a remount (cli_flash_lock), so
 * it sees every edit another process made meanwhile and never holds the
 * lock while it waits on the network. */
store_status_t cli_flash_lock(cli_flash_t *f);
void cli_flash_unlock(cli_flash_t *f);

/* Only one deliverer (sync or run) per image: two would both send the same
 * queued change. Non-blocking; 0 on success, -1 (message printed) when
 * another process delivers from this image. */
int cli_flash_claim_delivery(cli_flash_t *f, const char *path);

#endif

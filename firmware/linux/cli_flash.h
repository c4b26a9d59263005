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

typedef struct {
    port_flash_t dev;
    store_t store;
    uint8_t *work;
    int is_mtd;
    store_mount_report_t report; /* what mount found */
} cli_flash_t;

enum {
    CLI_FLASH_OPEN_EXISTING = 0, /* the image must exist and hold a store */
    CLI_FLASH_CREATE = 1,        /* create (and format) an image on first use */
};

/* Open path and mount the store. On failure prints one line to stderr
 * ("cdnagent: flash PATH: reason") and returns non-zero; nothing is written
 * to an existing image that does not hold a store. */
int cli_flash_open(cli_flash_t *f, const char *path, int mode);
void cli_flash_close(cli_flash_t *f);

#endif

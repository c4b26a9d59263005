/* A device key for harnesses that seal or open secrets: one per process,
 * in a private temp directory, removed at exit. Host only (POSIX). */
#ifndef CDNAGENT_FUZZ_DEVICE_KEY_H
#define CDNAGENT_FUZZ_DEVICE_KEY_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "port_posix.h"

static char fz_key_dir[64], fz_key_path[96];

static inline void fz_device_key_remove(void)
{
    unlink(fz_key_path);
    rmdir(fz_key_dir);
}

/* Create the key (id key_id) and point port_device_key at it; key/id
 * receive it for harnesses that seal records themselves (may be NULL). */
static inline void fz_device_key_setup(uint32_t key_id, uint8_t key[PORT_DEVICE_KEY_LEN],
                                       uint32_t *id)
{
    uint8_t k[PORT_DEVICE_KEY_LEN];
    uint32_t i;
    snprintf(fz_key_dir, sizeof fz_key_dir, "/tmp/cdnagent-fuzz-XXXXXX");
    if (!mkdtemp(fz_key_dir))
        fz_fail("mkdtemp failed");
    snprintf(fz_key_path, sizeof fz_key_path, "%s/device.key", fz_key_dir);
    atexit(fz_device_key_remove);
    port_posix_set_device_key_path(fz_key_path);
    if (port_posix_write_device_key(fz_key_path, key_id) != PORT_OK ||
        port_device_key(key ? key : k, id ? id : &i) != PORT_OK)
        fz_fail("cannot create the device key %s", fz_key_path);
}

#endif

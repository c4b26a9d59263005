/* Test helper: write a store image to a flash file, for CLI tests.
 *
 *   store_image PATH SECTOR_SIZE SECTOR_COUNT WRITE_SIZE RECORDS
 *
 * Puts RECORDS keys "rec/N" (values 20..200 bytes), rewrites every third
 * and deletes every seventh, so the image holds live, dead and deleted
 * records. Prints the number of live keys it left. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "port_posix.h"
#include "store.h"

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: store_image PATH SECTOR_SIZE SECTOR_COUNT WRITE_SIZE RECORDS\n");
        return 2;
    }
    uint32_t ss = (uint32_t)strtoul(argv[2], NULL, 0), n = (uint32_t)strtoul(argv[3], NULL, 0);
    uint32_t ws = (uint32_t)strtoul(argv[4], NULL, 0);
    int recs = atoi(argv[5]);
    port_flash_t dev;
    if (port_flash_file_open(&dev, argv[1], ss, n, ws, 1) != PORT_OK) {
        fprintf(stderr, "store_image: cannot create %s\n", argv[1]);
        return 1;
    }
    size_t work_size = STORE_WORK_SIZE(dev.sector_count);
    uint8_t *work = malloc(work_size);
    store_t st;
    int rc = work ? store_mount(&st, &dev, work, work_size, STORE_MOUNT_FORMAT_IF_EMPTY, NULL) : -1;
    int live = 0;
    for (int i = 0; rc == STORE_OK && i < recs; i++) {
        char key[32];
        uint8_t val[200];
        snprintf(key, sizeof key, "rec/%d", i);
        size_t len = 20 + (size_t)(i * 37) % 180;
        memset(val, 'a' + i % 26, len);
        rc = store_put(&st, key, strlen(key), val, len);
        if (rc == STORE_OK && i % 3 == 0)
            rc = store_put(&st, key, strlen(key), val, len / 2);
        if (rc == STORE_OK && i % 7 == 6)
            rc = store_delete(&st, key, strlen(key));
        else
            live++;
    }
    if (rc != STORE_OK)
        fprintf(stderr, "store_image: %s\n", store_status_str(rc));
    else
        printf("%d\n", live);
    port_flash_file_close(&dev);
    free(work);
    return rc == STORE_OK ? 0 : 1;
}

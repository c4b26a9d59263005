/* cdnagent fsck: the health of the device's config store. */
#include "cli.h"
#include "cli_flash.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_fsck(int argc, char **argv, const cli_globals_t *g)
{
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            puts("usage: cdnagent [--flash PATH] fsck [--json]\n"
                 "Re-reads and CRC-checks every record of the config store (read-only).\n"
                 "Exit status: 0 clean, 1 damage found, 2 cannot open or no store.");
            return CLI_EXIT_OK;
        } else
            return cli_usage_error("fsck: unknown argument '%s'", argv[i]);
    }
    cli_flash_t f;
    if (cli_flash_open(&f, g->flash_path, CLI_FLASH_OPEN_EXISTING) != 0)
        return CLI_EXIT_USAGE;
    store_mount_report_t rep;
    store_status_t rc = store_fsck(&f.store, &rep);
    if (rc != STORE_OK && rc != STORE_ERR_CORRUPT) {
        fprintf(stderr, "cdnagent: fsck: %s\n", store_status_str(rc));
        cli_flash_close(&f);
        return CLI_EXIT_FAILED;
    }
    store_stats_t s;
    uint32_t n = f.dev.sector_count;
    uint32_t *counts = calloc(n, sizeof *counts);
    if (!counts || store_stats(&f.store, &s, counts, n) != STORE_OK) {
        fprintf(stderr, "cdnagent: fsck: cannot read store statistics\n");
        free(counts);
        cli_flash_close(&f);
        return CLI_EXIT_FAILED;
    }
    int damaged = rc == STORE_ERR_CORRUPT;
    double spread = s.erase_min ? (double)s.erase_max / s.erase_min : 0.0;
    if (json) {
        printf("{\"flash\":\"%s\",\"sector_size\":%u,\"sector_count\":%u,\"write_size\":%u,"
               "\"live_records\":%u,\"dead_records\":%u,\"damaged_records\":%u,"
               "\"bad_sectors\":%u,\"missing_sectors\":%u,\"txns_rolled_back\":%u,\"free_bytes\":%u,"
               "\"live_bytes\":%u,\"dead_bytes\":%u,\"erase_min\":%u,\"erase_max\":%u,"
               "\"erase_counts\":[",
               g->flash_path, f.dev.sector_size, n, f.dev.write_size, rep.records_live,
               rep.records_dead, rep.records_damaged, rep.sectors_bad, rep.sectors_missing,
               rep.txns_discarded,
               s.free_bytes, s.live_bytes, s.dead_bytes, s.erase_min, s.erase_max);
        for (uint32_t i = 0; i < n; i++)
            printf("%s%u", i ? "," : "", counts[i]);
        printf("],\"clean\":%s}\n", damaged ? "false" : "true");
    } else {
        printf("flash:        %s (%u sectors x %u B, write size %u)\n", g->flash_path, n,
               f.dev.sector_size, f.dev.write_size);
        printf("records:      %u live, %u dead, %u damaged\n", rep.records_live,
               rep.records_dead, rep.records_damaged);
        printf("sectors:      %u unreadable, %u missing (image written for more sectors)\n",
               rep.sectors_bad, rep.sectors_missing);
        printf("transactions: %u rolled back (interrupted by power loss)\n", rep.txns_discarded);
        printf("space:        %u B free, %u B live, %u B dead\n", s.free_bytes, s.live_bytes,
               s.dead_bytes);
        printf("erase counts: min %u, max %u", s.erase_min, s.erase_max);
        if (s.erase_min)
            printf(" (max/min %.2f)", spread);
        printf("\nresult:       %s\n", damaged ? "DAMAGED (damaged records are skipped, never served)"
                                               : "clean");
    }
    free(counts);
    cli_flash_close(&f);
    return damaged ? CLI_EXIT_FAILED : CLI_EXIT_OK;
}

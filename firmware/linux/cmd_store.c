/* cdnagent fsck and format: the health of the device's config store, and a
 * new image of a chosen geometry. */
#include "cli.h"
#include "cli_opts.h"
#include "cli_flash.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const cli_command_t fsck_cmd =
    {"fsck",
     "",
     "Re-read and CRC-check every record of the config store (only reads: works on a read-only "
     "image). Exit status: 0 clean, 1 damage found, 2 cannot open or no store.",
     cli_json_opts,
     0,
     0};

int cmd_fsck(int argc, char **argv, const cli_globals_t *g)
{
    cli_parsed_t p;
    int prc = cli_parse(&fsck_cmd, argc, argv, &p);
    if (prc != CLI_PARSE_OK)
        return prc;
    int json = cli_opt_given(&p, "json");
    cli_flash_t f;
    if (cli_flash_open(&f, g->flash_path, CLI_FLASH_READ) != 0)
        return CLI_EXIT_USAGE;
    store_mount_report_t rep;
    store_status_t rc = store_fsck(&f.store, &rep);
    if (rc != STORE_OK && rc != STORE_ERR_CORRUPT) {
        cli_flash_close(&f);
        return cli_error("fsck: %s", store_status_str(rc));
    }
    store_stats_t s;
    uint32_t n = f.dev.sector_count;
    uint32_t *counts = calloc(n, sizeof *counts);
    if (!counts || store_stats(&f.store, &s, counts, n) != STORE_OK) {
        free(counts);
        cli_flash_close(&f);
        return cli_error("fsck: cannot read store statistics");
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
               rep.txns_discarded, s.free_bytes, s.live_bytes, s.dead_bytes, s.erase_min,
               s.erase_max);
        for (uint32_t i = 0; i < n; i++)
            printf("%s%u", i ? "," : "", counts[i]);
        printf("],\"clean\":%s}\n", damaged ? "false" : "true");
    } else {
        printf("flash:        %s (%u sectors x %u B, write size %u)\n", g->flash_path, n,
               f.dev.sector_size, f.dev.write_size);
        printf("records:      %u live, %u dead, %u damaged\n", rep.records_live, rep.records_dead,
               rep.records_damaged);
        printf("sectors:      %u unreadable, %u missing (image written for more sectors)\n",
               rep.sectors_bad, rep.sectors_missing);
        printf("transactions: %u rolled back (interrupted by power loss)\n", rep.txns_discarded);
        printf("space:        %u B free, %u B live, %u B dead\n", s.free_bytes, s.live_bytes,
               s.dead_bytes);
        printf("erase counts: min %u, max %u", s.erase_min, s.erase_max);
        if (s.erase_min)
            printf(" (max/min %.2f)", spread);
        printf("\nresult:       %s\n",
               damaged ? "DAMAGED (damaged records are skipped, never served)" : "clean");
    }
    free(counts);
    cli_flash_close(&f);
    return damaged ? CLI_EXIT_FAILED : CLI_EXIT_OK;
}

/* One "--name N" option of format: a decimal within [lo, hi], a power of two
 * when pow2. 0 on success; prints the problem and its fix otherwise. */
static const cli_opt_t format_opts[] = {
    {"sectors", 0, CLI_OPT_NUMBER, "N", 3, STORE_SECTORS_MAX,
     "sectors (default 64: 256 KB, about 1,500 queued header rules; 1024: 4 MB, about 24,000)"},
    {"sector-size", 0, CLI_OPT_NUMBER, "B", 512, 65536, "erase unit, a power of two (default 4096)"},
    {"write-size", 0, CLI_OPT_NUMBER, "W", 1, 32, "program unit: 1, 2, 4, 8, 16 or 32 (default 8)"},
    {NULL, 0, 0, NULL, 0, 0, NULL},
};
static const cli_command_t format_cmd =
    {"format",
     "",
     "Create an empty, formatted image at the global --flash path (never overwrites one). "
     "provision takes the same geometry from the manifest's \"flash\" object.",
     format_opts,
     0,
     0};

int cmd_format(int argc, char **argv, const cli_globals_t *g)
{
    cli_parsed_t p;
    int prc = cli_parse(&format_cmd, argc, argv, &p);
    if (prc != CLI_PARSE_OK)
        return prc;
    cli_flash_geometry_t geo = {cli_opt_num(&p, "sector-size", CLI_FLASH_SECTOR_SIZE),
                                cli_opt_num(&p, "sectors", CLI_FLASH_SECTOR_COUNT),
                                cli_opt_num(&p, "write-size", CLI_FLASH_WRITE_SIZE)};
    if ((geo.sector_size & (geo.sector_size - 1)) || (geo.write_size & (geo.write_size - 1)))
        return cli_usage_error("format: --sector-size and --write-size must be powers of two "
                               "(got %u and %u)",
                               geo.sector_size, geo.write_size);
    if (geo.sector_size % geo.write_size)
        return cli_usage_error("format: --sector-size must be a multiple of --write-size");
    cli_flash_t f;
    if (cli_flash_create(&f, g->flash_path, &geo) != 0)
        return CLI_EXIT_FAILED;
    store_stats_t s;
    store_status_t rc = store_stats(&f.store, &s, NULL, 0);
    if (rc == STORE_OK)
        printf("formatted %s: %u sectors x %u B (write size %u), %u B free\n", g->flash_path,
               geo.sector_count, geo.sector_size, geo.write_size, s.free_bytes);
    cli_flash_close(&f);
    if (rc != STORE_OK) {
        return cli_error("format: %s", store_status_str(rc));
    }
    return CLI_EXIT_OK;
}

/*
 * components/store benchmark on the emulated NOR flash (tests/support).
 *
 * Prints one table: mount time for 1k and 10k live records, put/get
 * throughput, write amplification (flash bytes programmed / payload bytes,
 * payload = key + value) for small values and for 8 KB certificates, and the
 * erase-count spread after a long update run. The peer in the same run is the
 * raw emulated flash itself: the same payload bytes programmed back to back
 * (padded to write_size, sectors erased as a ring) and read back from known
 * addresses, so "store/raw" is the store's overhead.
 *
 * Populating 10k records is bounded by a time budget; when it runs out the
 * last figure reached and the measured trend are printed instead.
 *
 * A second table sets the RAM index against the scan, on the same flash
 * image (populated once, mounted with and without the index): get, put
 * and the live-key walk at 100, 1,000 and 10,000 records, and the mount
 * (`store_bench index` prints that table alone), and a third the costliest
 * single put of a long run, GC included (`store_bench worst-put`).
 */
#include <stdbool.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "emu_flash.h"
#include "store.h"
#include "test_rng.h"

#define POPULATE_BUDGET_S 20.0
#define MOUNT_BUDGET_S 20.0 /* a single mount projected slower than this is not run */
#define WS 4u               /* program granularity used throughout */

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Seeded: every run measures the same workload. */
static rng_t g_rng = {0x5EEDB16Bull};
static uint64_t rnd(void)
{
    return rng_next(&g_rng);
}

static void fill(uint8_t *b, size_t n)
{
    rng_fill(&g_rng, b, n);
}

typedef struct {
    emu_flash_t emu;
    store_t st;
    uint8_t *work;
    size_t work_size;
} rig_t;

static void die(const char *what, int rc)
{
    fprintf(stderr, "store_bench: %s: %d (%s)\n", what, rc, store_status_str(rc));
    exit(1);
}

static void rig_open(rig_t *g, uint32_t ss, uint32_t sc)
{
    memset(g, 0, sizeof *g);
    if (emu_flash_init(&g->emu, ss, sc, WS) != 0) {
        fprintf(stderr, "store_bench: emu_flash_init failed\n");
        exit(1);
    }
    g->work_size = STORE_WORK_SIZE(sc);
    g->work = malloc(g->work_size);
    if (!g->work)
        exit(1);
    int rc = store_mount(&g->st, &g->emu.dev, g->work, g->work_size, STORE_MOUNT_FORMAT_IF_EMPTY,
                         NULL);
    if (rc != STORE_OK)
        die("mount (format)", rc);
}

static void rig_close(rig_t *g)
{
    free(g->work);
    emu_flash_free(&g->emu);
}

/* Mean time of a remount (repeated while cheap). */
static double time_mount(rig_t *g, uint32_t *live)
{
    double total = 0;
    int n = 0;
    store_mount_report_t rep;
    do {
        memset(&g->st, 0, sizeof g->st);
        double t0 = now_s();
        int rc = store_mount(&g->st, &g->emu.dev, g->work, g->work_size, 0, &rep);
        total += now_s() - t0;
        if (rc != STORE_OK)
            die("remount", rc);
        n++;
    } while (n < 5 && total < 1.0);
    /* A plain mount does not count live records (that is fsck's quadratic
     * pass); count them here only where it is cheap, to show they are all there. */
    *live = UINT32_MAX;
    if (g->emu.dev.sector_count && rep.records_damaged == 0 && n > 0) {
        store_mount_report_t full;
        double c0 = now_s();
        if (store_mount(&g->st, &g->emu.dev, g->work, g->work_size, STORE_MOUNT_COUNT_LIVE,
                        &full) == STORE_OK &&
            now_s() - c0 < 5.0)
            *live = full.records_live;
    }
    return total / n;
}

/* ------------------------------------------------------- raw flash peer -- */

typedef struct {
    emu_flash_t emu;
    uint32_t addr; /* next free byte, ring over the device */
} raw_t;

static void raw_open(raw_t *r, uint32_t ss, uint32_t sc)
{
    memset(r, 0, sizeof *r);
    if (emu_flash_init(&r->emu, ss, sc, WS) != 0)
        exit(1);
}

/* Program len payload bytes at the ring head (padded to WS); returns its address. */
static uint32_t raw_write(raw_t *r, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    static uint8_t buf[STORE_VALUE_MAX + STORE_KEY_MAX + 64];
    size_t len = alen + blen, padded = (len + WS - 1) / WS * WS;
    uint32_t ss = r->emu.dev.sector_size, size = ss * r->emu.dev.sector_count;
    memcpy(buf, a, alen);
    memcpy(buf + alen, b, blen);
    memset(buf + len, 0xFF, padded - len);
    if (r->addr + padded > size)
        r->addr = 0;
    uint32_t at = r->addr;
    /* erase every sector the write enters fresh */
    if (at % ss == 0)
        r->emu.dev.erase(&r->emu.dev, at / ss);
    for (uint32_t s = at / ss + 1; s * ss < at + padded; s++)
        r->emu.dev.erase(&r->emu.dev, s);
    if (r->emu.dev.program(&r->emu.dev, at, buf, padded) != PORT_OK) {
        fprintf(stderr, "store_bench: raw program failed at %u\n", at);
        exit(1);
    }
    r->addr += (uint32_t)padded;
    return at;
}

/* ------------------------------------------------------------- the table -- */

typedef struct {
    char name[48];
    char store[24];
    char raw[24];
    char ratio[16];
    char note[72];
} row_t;

static row_t g_rows[32];
static int g_nrows;

static void row(const char *name, const char *store, const char *raw, double s, double r,
                const char *note)
{
    row_t *x = &g_rows[g_nrows++];
    snprintf(x->name, sizeof x->name, "%s", name);
    snprintf(x->store, sizeof x->store, "%s", store);
    snprintf(x->raw, sizeof x->raw, "%s", raw);
    if (r > 0 && s > 0)
        snprintf(x->ratio, sizeof x->ratio, "%.2f", s / r);
    else
        snprintf(x->ratio, sizeof x->ratio, "-");
    snprintf(x->note, sizeof x->note, "%s", note);
}

static void key_of(char *k, size_t cap, size_t *kl, unsigned i)
{
    *kl = (size_t)snprintf(k, cap, "rec/%06u", i);
}

/* ------------------------------------------------ worst single put -- */

/* The costliest put of a long run on 4 KB sectors with 8 KB values mixed
 * with small ones, the store kept about two-thirds full: flash operations
 * (erases, programs, bytes programmed, reads) and host time of the one put
 * that cost the most, next to the mean. A put that turns the ring pays for
 * one sector's GC; the goal is that none pays more than one erase and one
 * sector's copy (plus its own record). */
#define WORST_AHEAD 4u /* an 8 KB value spans 3 sectors' records; one more for the small */

static void bench_worst_put(void)
{
    enum { SECTORS = 16, PUTS = 4000, BIG_KEYS = 3, SMALL_KEYS = 60 };
    static uint8_t big[8192];
    uint8_t val[64];
    char key[32];
    size_t kl;
    static const char *const label[] = {"without", "with the index", "+ GC ahead"};
    for (int mode = 0; mode < 3; mode++) {
        rig_t g;
        uint64_t max_erase = 0, max_prog = 0, max_bytes = 0, max_reads = 0, sum_bytes = 0;
        uint64_t step_erase = 0, step_bytes = 0, steps = 0;
        double max_t = 0, sum_t = 0;
        unsigned turns = 0;
        rig_open(&g, 4096, SECTORS);
        if (mode >= 1) { /* remount with the RAM index */
            free(g.work);
            g.work_size = STORE_WORK_SIZE_INDEXED(SECTORS, 256);
            g.work = malloc(g.work_size);
            if (!g.work || store_mount(&g.st, &g.emu.dev, g.work, g.work_size, 0, NULL) != STORE_OK)
                die("worst put mount", -1);
        }
        for (unsigned i = 0; i < PUTS; i++) {
            unsigned r = (unsigned)(rnd() % 100);
            const uint8_t *v = val;
            size_t len = 32;
            if (r < 10) {
                kl = (size_t)snprintf(key, sizeof key, "cert/%u", (unsigned)(rnd() % BIG_KEYS));
                fill(big, sizeof big);
                v = big;
                len = sizeof big;
            } else {
                key_of(key, sizeof key, &kl, (unsigned)(rnd() % SMALL_KEYS));
                fill(val, 32);
            }
            /* mode 2: idle time before each put, GC run ahead until it has
             * WORST_AHEAD erased sectors ready (or cannot add one) */
            for (bool more = mode == 2; more;) {
                uint64_t e1 = g.emu.erases, b1 = g.emu.bytes_programmed;
                int grc = store_gc_ahead(&g.st, WORST_AHEAD, &more);
                if (grc != STORE_OK)
                    die("gc ahead", grc);
                steps += g.emu.erases > e1;
                if (g.emu.erases - e1 > step_erase)
                    step_erase = g.emu.erases - e1;
                if (g.emu.bytes_programmed - b1 > step_bytes)
                    step_bytes = g.emu.bytes_programmed - b1;
            }
            uint64_t e0 = g.emu.erases, p0 = g.emu.programs, b0 = g.emu.bytes_programmed;
            uint64_t r0 = g.emu.reads;
            double t0 = now_s();
            int rc = store_put(&g.st, key, kl, v, len);
            double t = now_s() - t0;
            if (rc != STORE_OK)
                die("worst put", rc);
            uint64_t de = g.emu.erases - e0, db = g.emu.bytes_programmed - b0;
            turns += de > 0;
            if (de > max_erase)
                max_erase = de;
            if (g.emu.programs - p0 > max_prog)
                max_prog = g.emu.programs - p0;
            if (db > max_bytes)
                max_bytes = db;
            if (g.emu.reads - r0 > max_reads)
                max_reads = g.emu.reads - r0;
            if (t > max_t)
                max_t = t;
            sum_t += t;
            sum_bytes += db;
        }
        printf("%-16s %8u %10lu %10lu %14lu %12lu %12.1f us %10.1f us %12.0f B\n", label[mode],
               turns, (unsigned long)max_erase, (unsigned long)max_prog, (unsigned long)max_bytes,
               (unsigned long)max_reads, max_t * 1e6, sum_t / PUTS * 1e6, (double)sum_bytes / PUTS);
        if (mode == 2)
            printf("  (idle GC ahead, %u sectors: %lu steps, each at most %lu erase(s) and "
                   "%lu B programmed)\n",
                   (unsigned)WORST_AHEAD, (unsigned long)steps, (unsigned long)step_erase,
                   (unsigned long)step_bytes);
        printf("  (erases in the whole run, wear: %lu)\n", (unsigned long)g.emu.erases);
        rig_close(&g);
    }
}

/* ------------------------------------------------- RAM index vs scan -- */

typedef struct {
    double get_s, put_s, walk_s, mount_s; /* seconds per op (walk, mount: per call) */
    unsigned gets, puts;
} idx_fig_t;

static bool count_cb(void *arg, const uint8_t *key, size_t key_len, size_t value_len)
{
    (void)key;
    (void)key_len;
    (void)value_len;
    (*(unsigned *)arg)++;
    return true;
}

/* Mount the image with `keys` index entries (0: none). */
static void idx_mount(rig_t *g, uint32_t keys, idx_fig_t *f)
{
    free(g->work);
    g->work_size = STORE_WORK_SIZE_INDEXED(g->emu.dev.sector_count, keys);
    g->work = malloc(g->work_size);
    if (!g->work)
        exit(1);
    int rc = STORE_OK;
    f->mount_s = 1e9;
    for (int i = 0; i < 3 && rc == STORE_OK; i++) { /* the best of three */
        double t0 = now_s();
        rc = store_mount(&g->st, &g->emu.dev, g->work, g->work_size, 0, NULL);
        if (now_s() - t0 < f->mount_s)
            f->mount_s = now_s() - t0;
    }
    store_stats_t stats;
    if (rc != STORE_OK || store_stats(&g->st, &stats, NULL, 0) != STORE_OK ||
        stats.index_on != (keys > 0))
        die("index bench mount", rc);
}

/* Reads only (the image stays as populated): gets for about a second, and
 * one walk of every live key unless the scan's would take too long. */
static void idx_reads(rig_t *g, unsigned n, idx_fig_t *f, bool walk)
{
    char key[32];
    size_t kl, len;
    uint8_t out[64];
    unsigned listed = 0;
    double t0 = now_s();
    for (f->gets = 0; f->gets < 20000 && (f->gets < 20 || now_s() - t0 < 1.0); f->gets++) {
        key_of(key, sizeof key, &kl, (unsigned)(rnd() % n));
        int rc = store_get(&g->st, key, kl, out, sizeof out, &len);
        if (rc != STORE_OK)
            die("index bench get", rc);
    }
    f->get_s = (now_s() - t0) / f->gets;
    f->walk_s = -1;
    if (walk) {
        t0 = now_s();
        int rc = store_iterate(&g->st, NULL, 0, count_cb, &listed);
        f->walk_s = now_s() - t0;
        if (rc != STORE_OK || listed != n)
            die("index bench walk", rc);
    }
}

/* Updates of random keys, for about a second (at least 20). */
static void idx_puts(rig_t *g, unsigned n, idx_fig_t *f)
{
    char key[32];
    size_t kl;
    uint8_t val[64];
    double t0 = now_s();
    for (f->puts = 0; f->puts < 20000 && (f->puts < 20 || now_s() - t0 < 1.0); f->puts++) {
        key_of(key, sizeof key, &kl, (unsigned)(rnd() % n));
        fill(val, 32);
        int rc = store_put(&g->st, key, kl, val, 32);
        if (rc != STORE_OK)
            die("index bench put", rc);
    }
    f->put_s = (now_s() - t0) / f->puts;
}

static void bench_index(void)
{
    static const unsigned sizes[] = {100, 1000, 10000};
    char key[32];
    size_t kl;
    uint8_t val[64];
    printf("\nstore_bench: RAM index (%u B a key) against the scan, same image, 32 B values, "
           "4KBx512, write_size %u\n",
           STORE_INDEX_ENTRY_SIZE, WS);
    printf("%-8s %-24s %-24s %-24s %-22s %-22s\n", "records", "get/s index | scan",
           "put/s index | scan", "walk ms index | scan", "mount ms index|scan", "index RAM");
    for (size_t c = 0; c < sizeof sizes / sizeof sizes[0]; c++) {
        unsigned n = sizes[c];
        uint32_t keys = n + n / 4; /* room for deleted keys' tombstones */
        rig_t g;
        idx_fig_t on, off;
        rig_open(&g, 4096, 512);
        /* populate with the index (the scan would take minutes at 10k) */
        free(g.work);
        g.work_size = STORE_WORK_SIZE_INDEXED(512, keys);
        g.work = malloc(g.work_size);
        if (!g.work || store_mount(&g.st, &g.emu.dev, g.work, g.work_size, 0, NULL) != STORE_OK)
            die("index bench populate mount", -1);
        for (unsigned i = 0; i < n; i++) {
            key_of(key, sizeof key, &kl, i);
            fill(val, 32);
            int rc = store_put(&g.st, key, kl, val, 32);
            if (rc != STORE_OK)
                die("index bench populate", rc);
        }
        /* reads first, on the image as populated, then the updates */
        idx_mount(&g, keys, &on);
        idx_reads(&g, n, &on, true);
        idx_mount(&g, 0, &off);
        idx_reads(&g, n, &off, n <= 1000); /* the scan's walk is quadratic */
        idx_puts(&g, n, &off);
        idx_fig_t again; /* the image has grown: this mount is not the one reported */
        idx_mount(&g, keys, &again);
        idx_puts(&g, n, &on);
        char a[3][24], b[24], ram[24];
        snprintf(a[0], sizeof a[0], "%.0f | %.0f", 1 / on.get_s, 1 / off.get_s);
        snprintf(a[1], sizeof a[1], "%.0f | %.0f", 1 / on.put_s, 1 / off.put_s);
        if (off.walk_s >= 0)
            snprintf(a[2], sizeof a[2], "%.2f | %.2f", on.walk_s * 1e3, off.walk_s * 1e3);
        else
            snprintf(a[2], sizeof a[2], "%.2f | (not run)", on.walk_s * 1e3);
        snprintf(b, sizeof b, "%.2f | %.2f", on.mount_s * 1e3, off.mount_s * 1e3);
        snprintf(ram, sizeof ram, "%lu B", (unsigned long)keys * STORE_INDEX_ENTRY_SIZE);
        printf("%-8u %-24s %-24s %-24s %-22s %-22s\n", n, a[0], a[1], a[2], b, ram);
        rig_close(&g);
    }
    printf("(get/put: random keys of the n, for about a second each; walk: store_iterate over "
           "all n live keys, not run on the scan past 1,000 keys: quadratic; mount: the plain "
           "mount, with the index built in its pass)\n");
}

static void print_worst_put(void)
{
    printf("\nstore_bench: the costliest single put of 4,000 (10%% 8 KB values over 3 keys, "
           "90%% 32 B over 60 keys), 4KBx16, write_size %u\n",
           WS);
    printf("%-16s %8s %10s %10s %14s %12s %15s %13s %14s\n", "", "GC turns", "max erases",
           "max progs", "max bytes prog", "max reads", "max time", "mean time", "mean bytes");
    bench_worst_put();
    printf("(one sector is 4,096 B: a put with one erase and up to a sector's copy plus its own "
           "8 KB value programs at most about 12.3 KB)\n");
}

int main(int argc, char **argv)
{
    char a[32], b[32], note[96], key[32];
    if (argc > 1 && strcmp(argv[1], "index") == 0) { /* the second table alone */
        bench_index();
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "worst-put") == 0) { /* the third table alone */
        print_worst_put();
        return 0;
    }
    size_t kl;
    uint8_t val[64];
    static uint8_t cert[8192], out[8192];
    double t0;

    /* --- mount time for 1k and 10k live records (32-byte values) -------- */
    {
        rig_t g;
        const unsigned targets[] = {1000, 2000, 5000, 10000};
        double mount_t[4] = {0, 0, 0, 0};
        uint32_t live[4] = {0, 0, 0, 0};
        double put_t = 0;
        unsigned n = 0, reached = 0;
        rig_open(&g, 4096, 512); /* 2 MB */
        double start = now_s();
        bool out_of_time = false;
        double projected = 0;
        for (int c = 0; c < 4 && !out_of_time; c++) {
            /* project this mount from the growth seen so far; skip if too slow */
            if (reached >= 2) {
                double k = log(mount_t[reached - 1] / mount_t[reached - 2]) /
                           log((double)targets[reached - 1] / targets[reached - 2]);
                projected = mount_t[reached - 1] * pow((double)targets[c] / targets[reached - 1], k);
                if (projected > MOUNT_BUDGET_S)
                    break;
            }
            while (n < targets[c]) {
                key_of(key, sizeof key, &kl, n);
                fill(val, 32);
                double p0 = now_s();
                int rc = store_put(&g.st, key, kl, val, 32);
                put_t += now_s() - p0;
                if (rc != STORE_OK)
                    die("populate put", rc);
                n++;
                if (n % 100 == 0 && now_s() - start > POPULATE_BUDGET_S) {
                    out_of_time = true;
                    break;
                }
            }
            if (n == targets[c]) {
                mount_t[c] = time_mount(&g, &live[c]);
                reached = c + 1;
            }
        }
        double expo = reached >= 2 ? log(mount_t[reached - 1] / mount_t[0]) /
                                         log((double)targets[reached - 1] / targets[0])
                                   : 0;
        for (unsigned c = 0; c < 4; c++) {
            char name[48];
            snprintf(name, sizeof name, "mount, %u live records", targets[c]);
            if (c < reached) {
                snprintf(a, sizeof a, "%.2f ms", mount_t[c] * 1e3);
                if (live[c] != UINT32_MAX)
                    snprintf(note, sizeof note,
                             "32 B values, 4KBx512, fsck counts %u live; x%.1f vs 1k", live[c],
                             mount_t[c] / mount_t[0]);
                else
                    snprintf(note, sizeof note, "32 B values, 4KBx512; x%.1f vs 1k",
                             mount_t[c] / mount_t[0]);
                row(name, a, "-", 0, 0, note);
            } else {
                snprintf(a, sizeof a, "n/a");
                snprintf(note, sizeof note, "skipped: projected %.1f s (trend ~n^%.2f)",
                         reached ? mount_t[reached - 1] *
                                       pow((double)targets[c] / targets[reached - 1], expo)
                                 : 0.0,
                         expo);
                row(name, a, "-", 0, 0, note);
            }
        }
        if (reached >= 2) {
            snprintf(a, sizeof a, "~n^%.2f", expo);
            snprintf(note, sizeof note, "mount time growth, %u..%u records", targets[0],
                     targets[reached - 1]);
            row("mount time trend", a, "-", 0, 0, note);
        }
        snprintf(a, sizeof a, "%.2f us", n ? put_t / n * 1e6 : 0.0);
        snprintf(note, sizeof note, "mean put while growing 0 -> %u records", n);
        row("put latency while populating", a, "-", 0, 0, note);
        rig_close(&g);
    }

    /* --- put/get throughput, 1k live records, vs raw flash ---------------- */
    {
        rig_t g;
        raw_t r;
        enum { NKEYS = 1000, OPS = 3000 };
        static uint32_t raw_addr[NKEYS];
        rig_open(&g, 4096, 256);
        raw_open(&r, 4096, 256);
        for (unsigned i = 0; i < NKEYS; i++) {
            key_of(key, sizeof key, &kl, i);
            fill(val, 32);
            int rc = store_put(&g.st, key, kl, val, 32);
            if (rc != STORE_OK)
                die("put", rc);
            raw_addr[i] = raw_write(&r, (const uint8_t *)key, kl, val, 32);
        }
        t0 = now_s();
        for (unsigned i = 0; i < OPS; i++) {
            key_of(key, sizeof key, &kl, (unsigned)(rnd() % NKEYS));
            fill(val, 32);
            int rc = store_put(&g.st, key, kl, val, 32);
            if (rc != STORE_OK)
                die("put", rc);
        }
        double sp = OPS / (now_s() - t0);
        t0 = now_s();
        for (unsigned i = 0; i < OPS; i++) {
            unsigned k = (unsigned)(rnd() % NKEYS);
            key_of(key, sizeof key, &kl, k);
            fill(val, 32);
            raw_addr[k] = raw_write(&r, (const uint8_t *)key, kl, val, 32);
        }
        double rp = OPS / (now_s() - t0);
        t0 = now_s();
        for (unsigned i = 0; i < OPS; i++) {
            size_t len;
            key_of(key, sizeof key, &kl, (unsigned)(rnd() % NKEYS));
            int rc = store_get(&g.st, key, kl, out, sizeof out, &len);
            if (rc != STORE_OK)
                die("get", rc);
        }
        double sg = OPS / (now_s() - t0);
        t0 = now_s();
        for (unsigned i = 0; i < OPS; i++) {
            unsigned k = (unsigned)(rnd() % NKEYS);
            r.emu.dev.read(&r.emu.dev, raw_addr[k], out, kl + 32);
        }
        double rg = OPS / (now_s() - t0);
        snprintf(a, sizeof a, "%.0f ops/s", sp);
        snprintf(b, sizeof b, "%.0f ops/s", rp);
        /* ratio printed as raw/store: how many times slower the store is */
        row("put throughput (1k live, 32 B)", a, b, rp, sp, "store/raw cost per op");
        snprintf(a, sizeof a, "%.0f ops/s", sg);
        snprintf(b, sizeof b, "%.0f ops/s", rg);
        row("get throughput (1k live, 32 B)", a, b, rg, sg,
            "store scans (no RAM index: see below); raw knows the address");
        rig_close(&g);
        emu_flash_free(&r.emu);
    }

    /* --- write amplification and erase spread: small values --------------- */
    {
        rig_t g;
        raw_t r;
        enum { NKEYS = 50, UPDATES = 100000 };
        const uint32_t sc = 16;
        uint64_t payload = 0;
        rig_open(&g, 4096, sc);
        raw_open(&r, 4096, sc);
        uint64_t base = g.emu.bytes_programmed;
        for (unsigned u = 0; u < UPDATES; u++) {
            key_of(key, sizeof key, &kl, u < NKEYS ? u : (unsigned)(rnd() % NKEYS));
            fill(val, 32);
            int rc = store_put(&g.st, key, kl, val, 32);
            if (rc != STORE_OK)
                die("update", rc);
            raw_write(&r, (const uint8_t *)key, kl, val, 32);
            payload += kl + 32;
        }
        double swa = (double)(g.emu.bytes_programmed - base) / (double)payload;
        double rwa = (double)r.emu.bytes_programmed / (double)payload;
        snprintf(a, sizeof a, "%.2f", swa);
        snprintf(b, sizeof b, "%.2f", rwa);
        snprintf(note, sizeof note, "%d updates, 50 keys, 10 B key + 32 B value", UPDATES);
        row("write amplification, small values", a, b, swa, rwa, note);

        store_stats_t s;
        uint32_t ec[16];
        int rc = store_stats(&g.st, &s, ec, 16);
        if (rc != STORE_OK)
            die("stats", rc);
        uint32_t emin = UINT32_MAX, emax = 0, rmin = UINT32_MAX, rmax = 0;
        for (uint32_t i = 0; i < sc; i++) {
            emin = g.emu.erase_counts[i] < emin ? g.emu.erase_counts[i] : emin;
            emax = g.emu.erase_counts[i] > emax ? g.emu.erase_counts[i] : emax;
            rmin = r.emu.erase_counts[i] < rmin ? r.emu.erase_counts[i] : rmin;
            rmax = r.emu.erase_counts[i] > rmax ? r.emu.erase_counts[i] : rmax;
        }
        snprintf(a, sizeof a, "%u/%u (%.3f)", emin, emax, emin ? (double)emax / emin : 0.0);
        snprintf(b, sizeof b, "%u/%u (%.3f)", rmin, rmax, rmin ? (double)rmax / rmin : 0.0);
        snprintf(note, sizeof note, "min/max (max/min), 4KBx16; store_stats says %u/%u",
                 s.erase_min, s.erase_max);
        row("erase count spread after 100k updates", a, b, (double)emax, (double)rmax, note);
        snprintf(a, sizeof a, "%u", emax);
        snprintf(b, sizeof b, "%u", rmax);
        row("erases of the most-worn sector", a, b, (double)emax, (double)rmax, "same payload");
        rig_close(&g);
        emu_flash_free(&r.emu);
    }

    /* --- write amplification: 8 KB certificates ---------------------------- */
    {
        rig_t g;
        raw_t r;
        enum { NKEYS = 4, UPDATES = 400 };
        uint64_t payload = 0;
        rig_open(&g, 4096, 32);
        raw_open(&r, 4096, 32);
        uint64_t base = g.emu.bytes_programmed;
        t0 = now_s();
        for (unsigned u = 0; u < UPDATES; u++) {
            kl = (size_t)snprintf(key, sizeof key, "cert/%u", u % NKEYS);
            fill(cert, sizeof cert);
            int rc = store_put(&g.st, key, kl, cert, sizeof cert);
            if (rc != STORE_OK)
                die("cert put", rc);
            payload += kl + sizeof cert;
        }
        double sp = UPDATES / (now_s() - t0);
        t0 = now_s();
        for (unsigned u = 0; u < UPDATES; u++) {
            kl = (size_t)snprintf(key, sizeof key, "cert/%u", u % NKEYS);
            fill(cert, sizeof cert);
            raw_write(&r, (const uint8_t *)key, kl, cert, sizeof cert);
        }
        double rp = UPDATES / (now_s() - t0);
        double swa = (double)(g.emu.bytes_programmed - base) / (double)payload;
        double rwa = (double)r.emu.bytes_programmed / (double)payload;
        snprintf(a, sizeof a, "%.3f", swa);
        snprintf(b, sizeof b, "%.3f", rwa);
        row("write amplification, 8 KB certificates", a, b, swa, rwa,
            "400 updates over 4 keys, 4KBx32");
        snprintf(a, sizeof a, "%.0f ops/s", sp);
        snprintf(b, sizeof b, "%.0f ops/s", rp);
        row("put throughput, 8 KB certificates", a, b, rp, sp, "store/raw cost per op");
        t0 = now_s();
        for (unsigned u = 0; u < 400; u++) {
            size_t len;
            kl = (size_t)snprintf(key, sizeof key, "cert/%u", u % NKEYS);
            int rc = store_get(&g.st, key, kl, out, sizeof out, &len);
            if (rc != STORE_OK || len != sizeof cert)
                die("cert get", rc);
        }
        snprintf(a, sizeof a, "%.0f ops/s", 400 / (now_s() - t0));
        row("get throughput, 8 KB certificates", a, "-", 0, 0, "");
        rig_close(&g);
        emu_flash_free(&r.emu);
    }

    /* --- print ----------------------------------------------------------- */
    printf("store_bench: emulated NOR flash, write_size %u; raw = same payload programmed "
           "directly\n",
           WS);
    printf("%-40s %-20s %-20s %-8s %s\n", "metric", "store", "raw flash", "overhead", "notes");
    for (int i = 0; i < g_nrows; i++)
        printf("%-40s %-20s %-20s %-8s %s\n", g_rows[i].name, g_rows[i].store, g_rows[i].raw,
               g_rows[i].ratio, g_rows[i].note);
    printf("overhead = store cost / raw cost (throughput: raw ops/s / store ops/s; write "
           "amplification and erases: store / raw)\n");
    bench_index();
    print_worst_put();
    return 0;
}

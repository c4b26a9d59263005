/*
 * store: power-loss-safe, wear-levelling key-value store for NOR flash.
 *
 * Log-structured records (key <= STORE_KEY_MAX bytes, value <= STORE_VALUE_MAX
 * bytes, chunked across sectors when larger than one) with a CRC-32 over
 * header and data. put/delete are atomic; a transaction of several
 * puts/deletes lands all or nothing. Garbage collection copies live records
 * forward, erases the oldest sector and needs at most one spare sector.
 *
 * Works on any port_flash_t geometry: sector_size a power of two >= 512,
 * write_size 1..32, sector_count >= 3.
 *
 * Memory: the store never allocates. The caller hands store_mount() a work
 * buffer of at least STORE_WORK_SIZE(dev->sector_count) bytes that must live as long as the
 * store is mounted; it holds the sector table and one scratch sector-chunk.
 * A larger buffer, STORE_WORK_SIZE_INDEXED(sector_count, keys), also holds
 * a RAM index of STORE_INDEX_ENTRY_SIZE bytes a key, built in the mount
 * pass: gets, deletes and the live-key walk then find a record without
 * scanning the flash. Without it (a device that cannot spare the RAM) every
 * lookup scans record headers, as it always did; answers are the same.
 *
 * Not thread-safe: one caller at a time per store_t.
 */
#ifndef CDNAGENT_STORE_H
#define CDNAGENT_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "port.h"

#ifdef __cplusplus
extern "C" {
#endif

#define STORE_KEY_MAX 64u       /* bytes, keys are opaque byte strings */
#define STORE_VALUE_MAX 16384u  /* bytes: certificates and keys up to 16 KB */
#define STORE_TXN_OPS_MAX 16u   /* puts/deletes in one transaction */
#define STORE_SECTORS_MAX 4096u /* largest sector_count supported */

/* Work buffer the caller must provide to store_mount(): a per-sector table
 * (STORE_SECTOR_ENTRY_SIZE bytes a sector) plus one scratch buffer. */
#define STORE_SECTOR_ENTRY_SIZE 16u
#define STORE_SCRATCH_SIZE 512u
#define STORE_WORK_SIZE(sector_count) \
    (STORE_SECTOR_ENTRY_SIZE * (size_t)(sector_count) + STORE_SCRATCH_SIZE)
/* The RAM index: one entry per key on flash (live keys, plus deleted keys
 * whose tombstone GC has not dropped yet: size it with room to spare). An
 * index that overflows is switched off until the next mount (lookups scan);
 * store_stats says whether it is on. */
#define STORE_INDEX_ENTRY_SIZE 8u
#define STORE_WORK_SIZE_INDEXED(sector_count, keys) \
    (STORE_WORK_SIZE(sector_count) + STORE_INDEX_ENTRY_SIZE * (size_t)(keys))

typedef enum {
    STORE_OK = 0,
    STORE_NOT_FOUND = -1,     /* key absent (or deleted) */
    STORE_FULL = -2,          /* no room even after GC; nothing was changed */
    STORE_ERR_ARG = -3,       /* bad argument (key too long, NULL, ...) */
    STORE_ERR_IO = -4,        /* flash read/program/erase failed */
    STORE_ERR_CORRUPT = -5,   /* the record exists but failed its CRC */
    STORE_ERR_NOT_STORE = -6, /* the device holds no store (mount without format) */
    STORE_ERR_GEOMETRY = -7,  /* device geometry unsupported */
    STORE_ERR_NOMEM = -8,     /* work buffer too small */
    STORE_ERR_TOO_BIG = -9,   /* value larger than STORE_VALUE_MAX / buffer too small */
    STORE_ERR_TXN = -10,      /* transaction misuse (none open, already open, too many ops) */
    STORE_ERR_NOT_MOUNTED = -11,
    STORE_ERR_IDS_USED = -12, /* every transaction id is used (FORMAT.md): read-only */
} store_status_t;

/* Name of a status, e.g. "full". Never NULL. */
const char *store_status_str(store_status_t status);

/* Opaque to callers; sized so it can live on the stack or in .bss. */
typedef struct store {
    port_flash_t *dev;
    uint8_t *work;
    size_t work_size;
    uint32_t next_seq;    /* next transaction id */
    uint32_t sector_seq;  /* sequence of the head sector */
    uint32_t head_sector; /* sector being appended to */
    uint32_t head_offset; /* next free byte inside head_sector */
    uint32_t tail_at;     /* interrupted write at the head: [tail_at, tail_end) */
    uint32_t tail_end;
    uint32_t align;       /* record alignment: max(write_size, 4) */
    uint32_t hdr_size;    /* aligned sector header */
    uint32_t marker_len;  /* aligned bare record header */
    uint32_t chunk_max;   /* value bytes per record */
    uint32_t del_reserve; /* head room puts leave for one tombstone */
    uint32_t txn_id;      /* non-zero while a transaction is open */
    uint32_t txn_ops;
    uint8_t mounted;
    uint8_t prepared;      /* post-power-cut repairs done */
    uint8_t txn_failed;    /* an op of the open transaction failed */
    uint8_t read_failed;   /* a flash read failed since the call began: the
                              scan may have missed records, so get and iterate
                              answer STORE_ERR_IO, never "not found" */
    uint8_t idx_state;     /* RAM index: none, on, or lost (rebuilt on the next call) */
    uint8_t op_n;          /* op_addr entries of the put or transaction being written */
    uint32_t idx_cap;      /* entries the work buffer holds (0: no index) */
    uint32_t idx_n;        /* entries in use */
    uint32_t idx_rebuilds; /* times a lost index was rebuilt since mount */
    uint32_t last_append;  /* flash address of the record head_append wrote last */
    uint32_t ahead_turns;  /* store_gc_ahead steps since a write or since the most
                              erased sectors ever ready grew: a ring's worth ends it */
    uint32_t ahead_best;   /* the most erased sectors ready since the last write */
    uint32_t op_addr[STORE_TXN_OPS_MAX]; /* first record of each op being written: the
                                            index learns them when they commit */
} store_t;

/* Mount flags. */
/* clang-format off */
#define STORE_MOUNT_FORMAT_IF_EMPTY 0x1u /* an all-0xFF / foreign device is formatted */
#define STORE_MOUNT_COUNT_LIVE 0x2u      /* also fill records_live/records_dead of the
                                            report: a liveness pass over every record,
                                            quadratic in the record count (fsck does it) */
#define STORE_MOUNT_QUICK 0x4u           /* check the data CRCs of the head sector only
                                            (the headers of every record are checked
                                            as always): a damaged record elsewhere is
                                            found when it is read (reads always check
                                            it) and records_damaged does not count it;
                                            fsck checks everything. For a one-shot
                                            process mounting a large image */
/* clang-format on */

/* What mount (and fsck) found. */
typedef struct {
    uint32_t records_live;
    uint32_t records_dead;    /* superseded or deleted, reclaimable */
    uint32_t records_damaged; /* failed CRC: skipped, never returned */
    uint32_t txns_discarded;  /* uncommitted transactions rolled back */
    uint32_t sectors_bad;     /* non-empty sectors with an unreadable header, other
                                 than the spare (where an interrupted erase is normal) */
    uint32_t sectors_missing; /* the image was written with more sectors than the
                                 device has (a truncated image) */
} store_mount_report_t;

/* Mount the store on dev. work must hold STORE_WORK_SIZE(dev->sector_count).
 * Mount only reads: repairs left by a power cut (finishing a GC, erasing a
 * half-erased sector, sealing a torn write) happen on the first write.
 * report may be NULL; its live/dead counts are filled only with
 * STORE_MOUNT_COUNT_LIVE (quadratic in the record count), so a plain mount
 * stays linear: one pass reading and CRC-checking every record. Returns STORE_OK,
 * STORE_ERR_NOT_STORE (no store and STORE_MOUNT_FORMAT_IF_EMPTY not given), STORE_ERR_GEOMETRY,
 * STORE_ERR_NOMEM, STORE_ERR_IO. Damaged records are reported, skipped, and not fatal. */
store_status_t store_mount(store_t *st, port_flash_t *dev, void *work, size_t work_size,
                           uint32_t flags, store_mount_report_t *report);

/* Erase every sector and write an empty store. */
store_status_t store_format(store_t *st, port_flash_t *dev, void *work, size_t work_size);

/* Read the value of key into buf (capacity cap). *len receives the value
 * length (also when STORE_ERR_TOO_BIG is returned, so the caller can size a
 * buffer). STORE_ERR_CORRUPT when the newest committed version is damaged:
 * an older version is never returned in its place. Cost: with the RAM
 * index, a binary search and a read of the record; without it, two or
 * three passes over the record headers. */
store_status_t store_get(store_t *st, const void *key, size_t key_len, void *buf, size_t cap,
                         size_t *len);

/* Atomically replace (or create) key. */
store_status_t store_put(store_t *st, const void *key, size_t key_len, const void *value,
                         size_t value_len);

/* Atomically remove key. STORE_NOT_FOUND when it was absent. */
store_status_t store_delete(store_t *st, const void *key, size_t key_len);

/* Call fn for each live key starting with prefix (prefix_len may be 0), in no
 * particular order. fn returns false to stop. The store must not be modified
 * from inside fn. */
typedef bool (*store_iter_fn)(void *arg, const uint8_t *key, size_t key_len, size_t value_len);
store_status_t store_iterate(store_t *st, const void *prefix, size_t prefix_len, store_iter_fn fn,
                             void *arg);

/* Transactions: begin, then up to STORE_TXN_OPS_MAX puts/deletes, then
 * commit (all land) or abort (none land; the transaction is closed even
 * when abort returns STORE_ERR_IO). If a put/delete inside fails
 * (e.g. STORE_FULL), commit returns STORE_ERR_TXN and lands nothing. A power cut before commit
 * returns has the effect of abort. Reads inside an open transaction see the state before it. */
store_status_t store_txn_begin(store_t *st);
store_status_t store_txn_put(store_t *st, const void *key, size_t key_len, const void *value,
                             size_t value_len);
store_status_t store_txn_delete(store_t *st, const void *key, size_t key_len);
store_status_t store_txn_commit(store_t *st);
/* The open transaction's id (FORMAT.md: ids only grow, never reused):
 * STORE_ERR_TXN when none is open. */
store_status_t store_txn_current(const store_t *st, uint32_t *id);
store_status_t store_txn_abort(store_t *st);

/* Garbage collection ahead of need, for idle time: keep `sectors` erased
 * sectors ready after the head, so the puts that turn the ring into them
 * erase nothing and copy nothing (a value of V bytes needs about
 * V / (sector - 200 B) + 1 of them). One call collects at most the oldest
 * sector: its live records are copied into the head and it is erased (at
 * most one erase and one sector's copy, the same step a ring turn takes),
 * and only when those records fit in the head as it is; otherwise it does
 * nothing. *more (may be NULL) says whether another call would add one
 * more. STORE_ERR_TXN inside a transaction. Without calls the store works
 * as before: a put collects what it needs itself. */
store_status_t store_gc_ahead(store_t *st, uint32_t sectors, bool *more);

typedef struct {
    uint32_t free_bytes; /* writable without GC plus reclaimable by GC */
    uint32_t live_bytes; /* flash bytes held by live records */
    uint32_t dead_bytes; /* flash bytes held by superseded/deleted records */
    uint32_t live_records;
    uint32_t erase_min;      /* smallest per-sector erase count */
    uint32_t erase_max;      /* largest per-sector erase count */
    uint32_t index_keys;     /* keys in the RAM index, when it is on */
    uint32_t index_capacity; /* 0: mounted without an index */
    bool index_on;           /* false: no index, or it overflowed (lookups scan) */
    uint32_t index_rebuilds; /* since mount: times the index met something it could
                                not follow (a failed read, a damaged record GC
                                dropped) and was rebuilt from flash */
} store_stats_t;

/* Totals; if erase_counts is non-NULL it receives one count per sector
 * (erase_counts_cap entries at most). */
store_status_t store_stats(store_t *st, store_stats_t *stats, uint32_t *erase_counts,
                           size_t erase_counts_cap);

/* Bytes of a sector's start that store_probe_header needs. */
#define STORE_PROBE_LEN 28u

/* Recognise a store sector header in buf (the first STORE_PROBE_LEN bytes
 * of any sector) and report the geometry it was written with, so a tool can open an image
 * whose geometry it does not know. true when buf holds a valid header. */
bool store_probe_header(const void *buf, size_t len, uint32_t *sector_size, uint32_t *write_size);

/* Re-read and CRC-check every record on flash (read-only). report is filled
 * like store_mount's; returns STORE_ERR_CORRUPT when damage was found. */
store_status_t store_fsck(store_t *st, store_mount_report_t *report);

#ifdef __cplusplus
}
#endif

#endif /* CDNAGENT_STORE_H */

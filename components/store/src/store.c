/*
 * store: log-structured key-value store on NOR flash. The on-flash format
 * and the recovery rules are specified in ../FORMAT.md; comments here say
 * why the code does what it does, the spec says what the bytes are.
 *
 * Key ideas (see FORMAT.md for the full argument):
 *  - Sectors are used as a ring. The head is the valid sector with the
 *    highest sector sequence; the sector after it is kept free, and when the
 *    head fills the ring turns: the free sector becomes the head and the
 *    oldest sector (the one after it) is garbage-collected into it and erased.
 *    Every sector is erased once per turn, so wear is even by construction.
 *  - Every change is a transaction with an id from one increasing counter.
 *    A single record can commit itself (F_SELF); otherwise a COMMIT record
 *    follows its members. Transactions never interleave, so "newer" is simply
 *    "higher txn id among committed ones".
 *  - GC copies records verbatim (same bytes, same CRC, same identity), so a
 *    copy and its original are interchangeable and an interrupted GC is
 *    harmless; before erasing the victim a GC_DONE marker names it, so a torn
 *    erase can never bring back records the GC dropped.
 *  - Lookups scan record headers, unless the caller's work buffer has room
 *    past its 16 bytes a sector and 512-byte scratch: that room holds a
 *    RAM index (8 bytes a key) rebuilt at mount and kept exact by writes.
 */
#include "store.h"
#include "util.h"

#include <string.h>

#define SEC_MAGIC 0x31534443u /* "CDS1" little-endian */
#define FORMAT_VERSION 1u
#define SEC_HDR_RAW STORE_PROBE_LEN
#define REC_HDR 28u
#define REC_CRC_SPAN 20u /* header bytes covered by the record CRC */
#define SCRATCH_SIZE STORE_SCRATCH_SIZE
#define SECTOR_SIZE_MIN 512u
#define SECTOR_SIZE_MAX (1u << 20)
#define WRITE_SIZE_MAX 32u /* program granularity, as port.h allows */
#define SEQ_NONE 0u

enum { T_DATA = 0x44, T_COMMIT = 0x43, T_ABORT = 0x41, T_GCDONE = 0x47 };
enum { F_SELF = 0x01, F_TOMB = 0x02 };
enum { S_FREE = 0, S_VALID = 1 };

/* One per sector in the work buffer; exactly STORE_SECTOR_ENTRY_SIZE bytes. */
typedef struct {
    uint32_t seq;
    uint32_t erase_count;
    uint32_t used_end; /* first never-programmed offset (valid sectors) */
    uint8_t state;
    uint8_t count_known;
    uint8_t blank; /* free and already all 0xFF */
    uint8_t obsolete;
} sec_t;

typedef char sec_t_is_one_entry[sizeof(sec_t) == STORE_SECTOR_ENTRY_SIZE ? 1 : -1];

typedef struct {
    uint8_t type, flags, key_len, op, chunk_idx, reserved;
    uint16_t chunk_len;
    uint16_t value_len; /* DATA: whole value; COMMIT: op count; GCDONE: sector */
    uint16_t chunk_off; /* DATA: where this chunk's bytes go in the value */
    uint32_t txn;       /* GCDONE: victim sector seq */
    uint32_t key_hash;
    uint32_t crc; /* record CRC: header[0..20) + key + data */
} rec_t;

/* ------------------------------------------------------------ helpers -- */

static uint32_t align_up(uint32_t v, uint32_t a)
{
    return (v + a - 1u) & ~(a - 1u);
}

static uint8_t *scratch(store_t *st)
{
    return st->work + st->work_size - SCRATCH_SIZE;
}

static sec_t sec_get(const store_t *st, uint32_t i)
{
    sec_t s;
    memcpy(&s, st->work + (size_t)i * sizeof s, sizeof s);
    return s;
}
static void sec_put(store_t *st, uint32_t i, const sec_t *s)
{
    memcpy(st->work + (size_t)i * sizeof *s, s, sizeof *s);
}

static uint32_t sec_base(const store_t *st, uint32_t i)
{
    return i * st->dev->sector_size;
}
static uint32_t ring_next(const store_t *st, uint32_t i)
{
    return (i + 1u) % st->dev->sector_count;
}

static store_status_t flash_read(store_t *st, uint32_t addr, void *buf, size_t len)
{
    if (st->dev->read(st->dev, addr, buf, len) == PORT_OK)
        return STORE_OK;
    st->read_failed = 1;
    return STORE_ERR_IO;
}
static store_status_t flash_program(store_t *st, uint32_t addr, const void *buf, size_t len)
{
    return st->dev->program(st->dev, addr, buf, len) == PORT_OK ? STORE_OK : STORE_ERR_IO;
}

static uint32_t rec_len(const store_t *st, const rec_t *r)
{
    return align_up(REC_HDR + r->key_len + r->chunk_len, st->align);
}

static void rec_encode(const rec_t *r, uint8_t out[REC_HDR])
{
    out[0] = r->type;
    out[1] = r->flags;
    out[2] = r->key_len;
    out[3] = r->op;
    out[4] = r->chunk_idx;
    out[5] = 0xFF;
    util_put_le16(out + 6, r->chunk_len);
    util_put_le16(out + 8, r->value_len);
    util_put_le16(out + 10, r->chunk_off);
    util_put_le32(out + 12, r->txn);
    util_put_le32(out + 16, r->key_hash);
    util_put_le32(out + 20, r->crc);
    util_put_le32(out + 24, util_crc32_update(0, out, 24));
}

/* Fill r->key_hash and r->crc and encode the header. */
static void rec_build(rec_t *r, const void *key, const void *data, uint8_t out[REC_HDR])
{
    r->key_hash = r->key_len ? util_crc32_update(0, key, r->key_len) : 0;
    r->crc = 0;
    rec_encode(r, out);
    uint32_t crc = util_crc32_update(0, out, REC_CRC_SPAN);
    crc = util_crc32_update(crc, key, r->key_len);
    crc = util_crc32_update(crc, data, r->chunk_len);
    r->crc = crc;
    rec_encode(r, out);
}

/* Parse and check a record header at addr (inside sector sec, whose writes
 * end at end). false: not a valid header (garbage, padding or erased). */
static bool rec_read_hdr(store_t *st, uint32_t addr, uint32_t end, rec_t *r)
{
    uint8_t b[REC_HDR];
    if (addr + REC_HDR > end || flash_read(st, addr, b, REC_HDR) != STORE_OK)
        return false;
    /* A header that fails its CRC is read once more before it is taken for
     * garbage: a transient flip must not make a good record vanish (and a
     * scan then seal or drop it). Garbage costs one read more. */
    if (util_get_le32(b + 24) != util_crc32_update(0, b, 24) &&
        (flash_read(st, addr, b, REC_HDR) != STORE_OK ||
         util_get_le32(b + 24) != util_crc32_update(0, b, 24)))
        return false;
    r->type = b[0];
    r->flags = b[1];
    r->key_len = b[2];
    r->op = b[3];
    r->chunk_idx = b[4];
    r->reserved = b[5];
    r->chunk_len = util_get_le16(b + 6);
    r->value_len = util_get_le16(b + 8);
    r->chunk_off = util_get_le16(b + 10);
    r->txn = util_get_le32(b + 12);
    r->key_hash = util_get_le32(b + 16);
    r->crc = util_get_le32(b + 20);
    if (r->type != T_DATA && r->type != T_COMMIT && r->type != T_ABORT && r->type != T_GCDONE)
        return false;
    if (r->key_len > STORE_KEY_MAX || r->chunk_len > st->chunk_max)
        return false;
    if (r->type == T_DATA) {
        if (r->value_len > STORE_VALUE_MAX || r->key_len == 0 ||
            (uint32_t)r->chunk_off + r->chunk_len > r->value_len)
            return false;
    } else if (r->key_len != 0 || r->chunk_len != 0) {
        return false;
    }
    return addr + rec_len(st, r) <= end;
}

/* Recompute the record CRC from flash (header prefix, key, data), twice
 * before calling the record damaged (see rec_read_hdr). */
static bool rec_crc_once(store_t *st, uint32_t addr, const rec_t *r);

static bool rec_crc_ok(store_t *st, uint32_t addr, const rec_t *r)
{
    return rec_crc_once(st, addr, r) || rec_crc_once(st, addr, r);
}

static bool rec_crc_once(store_t *st, uint32_t addr, const rec_t *r)
{
    uint8_t *buf = scratch(st);
    uint32_t total = REC_HDR + r->key_len + r->chunk_len;
    uint8_t hdr[REC_HDR];
    if (flash_read(st, addr, hdr, REC_HDR) != STORE_OK)
        return false;
    uint32_t crc = util_crc32_update(0, hdr, REC_CRC_SPAN);
    for (uint32_t off = REC_HDR; off < total;) {
        uint32_t n = total - off < SCRATCH_SIZE ? total - off : SCRATCH_SIZE;
        if (flash_read(st, addr + off, buf, n) != STORE_OK)
            return false;
        crc = util_crc32_update(crc, buf, n);
        off += n;
    }
    return crc == r->crc;
}

/* ------------------------------------------------------------ scanning -- */

/* Walks every record with a valid header in every live sector. Garbage
 * (an invalid header) is stepped over one alignment unit at a time so that
 * a damaged record never hides the ones after it. */
typedef struct {
    uint32_t sec;
    uint32_t off;
    uint32_t skip_sec; /* sector to leave out, or UINT32_MAX */
    uint32_t last_sec; /* the last sector to walk */
} scan_t;

static void scan_init(scan_t *it, uint32_t skip_sec)
{
    it->sec = 0;
    it->off = 0;
    it->skip_sec = skip_sec;
    it->last_sec = UINT32_MAX;
}

static bool sec_readable(const sec_t *s)
{
    return s->state == S_VALID && !s->obsolete;
}

static bool scan_next(store_t *st, scan_t *it, uint32_t *addr, rec_t *r)
{
    while (it->sec < st->dev->sector_count && it->sec <= it->last_sec) {
        sec_t s = sec_get(st, it->sec);
        if (!sec_readable(&s) || it->sec == it->skip_sec) {
            it->sec++;
            it->off = 0;
            continue;
        }
        if (it->off < st->hdr_size)
            it->off = st->hdr_size;
        /* An interrupted write at the head's end was never a record, even
         * if its header survived: stop before it. */
        uint32_t end = s.used_end;
        if (it->sec == st->head_sector && st->tail_at < st->tail_end)
            end = st->tail_at;
        while (it->off + REC_HDR <= end) {
            uint32_t a = sec_base(st, it->sec) + it->off;
            if (rec_read_hdr(st, a, sec_base(st, it->sec) + end, r)) {
                it->off += rec_len(st, r);
                *addr = a;
                return true;
            }
            it->off += st->align;
        }
        it->sec++;
        it->off = 0;
    }
    return false;
}

static bool key_matches(store_t *st, uint32_t addr, const rec_t *r, const void *key, size_t key_len,
                        uint32_t hash)
{
    uint8_t k[STORE_KEY_MAX];
    if (r->type != T_DATA || r->key_len != key_len || r->key_hash != hash)
        return false;
    if (flash_read(st, addr + REC_HDR, k, key_len) != STORE_OK)
        return false;
    if (memcmp(k, key, key_len) == 0)
        return true;
    /* Same length and hash but other bytes: almost surely a flipped read,
     * which must not hide the record. Once more. */
    if (flash_read(st, addr + REC_HDR, k, key_len) != STORE_OK)
        return false;
    return memcmp(k, key, key_len) == 0;
}

/* A record header read where the index or a walk says one is: within the
 * sector that holds addr. */
static bool rec_read_at(store_t *st, uint32_t addr, rec_t *r)
{
    uint32_t sec = addr / st->dev->sector_size;
    return sec < st->dev->sector_count &&
           rec_read_hdr(st, addr, sec_base(st, sec) + st->dev->sector_size, r);
}

/* The key of the record at addr into key, checked against the header's
 * key_hash and read once more when it does not match (a flipped read must
 * not send a lookup after another key). STORE_ERR_IO: a read failed;
 * STORE_ERR_CORRUPT: the key bytes do not hash to key_hash. */
static store_status_t read_key_checked(store_t *st, uint32_t addr, const rec_t *r, uint8_t *key)
{
    for (int tries = 0; tries < 2; tries++) {
        if (flash_read(st, addr + REC_HDR, key, r->key_len) != STORE_OK)
            return STORE_ERR_IO;
        if (util_crc32_update(0, key, r->key_len) == r->key_hash)
            return STORE_OK;
    }
    return STORE_ERR_CORRUPT;
}

static bool txn_committed(store_t *st, uint32_t txn)
{
    scan_t it;
    uint32_t a;
    rec_t r;
    scan_init(&it, UINT32_MAX);
    while (scan_next(st, &it, &a, &r))
        if (r.type == T_COMMIT && r.txn == txn && rec_crc_ok(st, a, &r))
            return true;
    return false;
}

/* Of two versions of one key: does a win over b? Higher (txn, op); of
 * copies of one write, chunk 0 (where a value's reads start). */
static bool rec_newer(const rec_t *a, const rec_t *b)
{
    return a->txn > b->txn || (a->txn == b->txn && a->op > b->op) ||
           (a->txn == b->txn && a->op == b->op && b->chunk_idx != 0 && a->chunk_idx == 0);
}

typedef struct {
    bool found;
    rec_t rec;     /* header of one record of the winning (txn, op) */
    uint32_t addr; /* where that record is */
} winner_t;

/* The committed version of key with the highest (txn, op); the open
 * transaction is invisible. Usually one scan, two when the newest version
 * belongs to a multi-record transaction, more only after aborted ones. */
static void find_winner(store_t *st, const void *key, size_t key_len, winner_t *w)
{
    uint32_t hash = util_crc32_update(0, key, key_len);
    uint64_t bound = (uint64_t)UINT32_MAX + 1u; /* above every id, the top one included */
    w->found = false;
    for (;;) {
        scan_t it;
        uint32_t a, best_addr = 0;
        rec_t r, best = {0};
        bool have = false;
        scan_init(&it, UINT32_MAX);
        while (scan_next(st, &it, &a, &r)) {
            if ((uint64_t)r.txn >= bound || (st->txn_id != 0 && r.txn == st->txn_id))
                continue;
            if (!key_matches(st, a, &r, key, key_len, hash))
                continue;
            if (!have || rec_newer(&r, &best)) {
                best = r;
                best_addr = a;
                have = true;
            }
        }
        if (!have)
            return;
        if ((best.flags & F_SELF) || txn_committed(st, best.txn)) {
            w->found = true;
            w->rec = best;
            w->addr = best_addr;
            return;
        }
        bound = best.txn;
    }
}

/* ------------------------------------------------------------- index -- */

/* The optional RAM index: one 8-byte entry per key, a sort key (the key's
 * first byte, then the top 24 bits of its CRC-32, the records' key_hash)
 * and the flash address of a record of its current version (chunk 0 when
 * that has a valid header), sorted. The first byte leading the sort key
 * keeps keys of one prefix byte together, so a walk of one prefix (the
 * queue's "Q", a domain's "H") reads only its own keys. Deleted
 * keys have no entry, so "absent from the index" answers "not found"
 * without a scan: the index must be exact, and every write keeps it so. It
 * is rebuilt from flash at every mount (FORMAT.md does not change), and
 * whenever something it cannot follow happens (an entry that does not name
 * a valid record, a GC dropping a record it names), it is marked lost and
 * rebuilt at the start of the next call; until then lookups scan. */

enum { IDX_NONE = 0, IDX_ON, IDX_LOST, IDX_FULL };
/* Low bits of an address (records are 4-aligned), used while building. */
#define IDX_PENDING 0x1u /* the candidate's transaction is not known to be committed */
#define IDX_TOMB 0x2u    /* the candidate is a tombstone */
#define IDX_FLAGS 0x3u
#define IDX_DROP UINT32_MAX

static uint8_t *idx_at(const store_t *st, uint32_t i)
{
    return st->work + (size_t)st->dev->sector_count * STORE_SECTOR_ENTRY_SIZE +
           (size_t)i * STORE_INDEX_ENTRY_SIZE;
}
static uint32_t idx_key(const store_t *st, uint32_t i)
{
    return util_get_le32(idx_at(st, i));
}
static uint32_t idx_sort_key(uint8_t first, uint32_t hash)
{
    return ((uint32_t)first << 24) | (hash >> 8);
}
static uint32_t idx_addr(const store_t *st, uint32_t i)
{
    return util_get_le32(idx_at(st, i) + 4);
}
static void idx_put(store_t *st, uint32_t i, uint32_t key, uint32_t addr)
{
    util_put_le32(idx_at(st, i), key);
    util_put_le32(idx_at(st, i) + 4, addr);
}

static void idx_lose(store_t *st)
{
    if (st->idx_state == IDX_ON)
        st->idx_state = IDX_LOST;
}

/* First entry in [lo, hi) whose sort key is >= key. */
static uint32_t idx_lower(const store_t *st, uint32_t lo, uint32_t hi, uint32_t key)
{
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2u;
        if (idx_key(st, mid) < key)
            lo = mid + 1u;
        else
            hi = mid;
    }
    return lo;
}

/* Does the entry's address hold a DATA record of key? 1 yes (r is its
 * header), 0 another key, -1 no answer: no valid record there (the index
 * is wrong) or a read failed (a failed read must never pass for "another
 * key": a write would then add a second entry for the key). */
static int idx_entry_is(store_t *st, uint32_t addr, const void *key, size_t key_len, uint32_t hash,
                        rec_t *r)
{
    uint32_t a = addr & ~IDX_FLAGS;
    uint8_t failed_before = st->read_failed;
    int m = -1;
    st->read_failed = 0;
    if (rec_read_at(st, a, r) && r->type == T_DATA)
        m = key_matches(st, a, r, key, key_len, hash) ? 1 : 0;
    if (st->read_failed)
        m = -1;
    st->read_failed |= failed_before;
    return m;
}

/* Find key among the first idx_n entries. 1: *pos is its entry and r the
 * record it names; 0: absent, *pos is where it belongs; -1: no answer. */
static int idx_find(store_t *st, const void *key, size_t key_len, uint32_t hash, uint32_t *pos,
                    rec_t *r)
{
    uint32_t sk = idx_sort_key(*(const uint8_t *)key, hash);
    uint32_t i = idx_lower(st, 0, st->idx_n, sk);
    for (; i < st->idx_n && idx_key(st, i) == sk; i++) {
        int m = idx_entry_is(st, idx_addr(st, i), key, key_len, hash, r);
        if (m != 0) {
            *pos = i;
            return m;
        }
    }
    *pos = i;
    return 0;
}

static bool idx_insert(store_t *st, uint32_t pos, uint32_t key, uint32_t addr)
{
    if (st->idx_n >= st->idx_cap)
        return false;
    memmove(idx_at(st, pos + 1u), idx_at(st, pos),
            (size_t)(st->idx_n - pos) * STORE_INDEX_ENTRY_SIZE);
    idx_put(st, pos, key, addr);
    st->idx_n++;
    return true;
}

static void idx_remove(store_t *st, uint32_t pos)
{
    memmove(idx_at(st, pos), idx_at(st, pos + 1u),
            (size_t)(st->idx_n - pos - 1u) * STORE_INDEX_ENTRY_SIZE);
    st->idx_n--;
}

/* A write of key committed: its current version starts at addr, or it was
 * deleted. An index that cannot follow is lost (rebuilt next call). */
static void idx_note(store_t *st, const void *key, size_t key_len, uint32_t addr, bool tomb)
{
    uint32_t hash, sk, pos;
    rec_t cur;
    if (st->idx_state != IDX_ON)
        return;
    hash = util_crc32_update(0, key, key_len);
    sk = idx_sort_key(*(const uint8_t *)key, hash);
    int f = idx_find(st, key, key_len, hash, &pos, &cur);
    if (f < 0)
        idx_lose(st);
    else if (tomb && f == 1)
        idx_remove(st, pos);
    else if (!tomb && f == 1)
        idx_put(st, pos, sk, addr);
    else if (!tomb && !idx_insert(st, pos, sk, addr))
        st->idx_state = IDX_FULL;
}

/* The same for a transaction's op, known only by its first record. */
static void idx_note_at(store_t *st, uint32_t addr)
{
    uint8_t key[STORE_KEY_MAX];
    rec_t r;
    if (st->idx_state != IDX_ON)
        return;
    if (!rec_read_at(st, addr, &r) || r.type != T_DATA ||
        read_key_checked(st, addr, &r, key) != STORE_OK) {
        idx_lose(st);
        return;
    }
    idx_note(st, key, r.key_len, addr, (r.flags & F_TOMB) != 0);
}

/* GC moved a record from src to dst (or found it already copied there). */
static void idx_moved(store_t *st, const rec_t *r, uint32_t src, uint32_t dst)
{
    for (unsigned i = 0; i < st->op_n; i++)
        if (st->op_addr[i] == src)
            st->op_addr[i] = dst;
    uint8_t key[STORE_KEY_MAX];
    if (st->idx_state != IDX_ON || r->type != T_DATA)
        return;
    /* the key read against its hash: a flipped first byte would look in
     * the wrong place and leave the entry naming the victim */
    if (read_key_checked(st, dst, r, key) != STORE_OK) {
        idx_lose(st); /* cannot tell where its entry sorts */
        return;
    }
    uint32_t sk = idx_sort_key(key[0], r->key_hash);
    for (uint32_t i = idx_lower(st, 0, st->idx_n, sk); i < st->idx_n && idx_key(st, i) == sk; i++)
        if (idx_addr(st, i) == src)
            idx_put(st, i, sk, dst);
}

/* Before GC erases victim: an entry still naming a record there (one the
 * GC dropped, a damaged current version) has no answer any more. */
static void idx_check_victim(store_t *st, uint32_t victim)
{
    for (uint32_t i = 0; st->idx_state == IDX_ON && i < st->idx_n; i++)
        if (idx_addr(st, i) / st->dev->sector_size == victim)
            idx_lose(st);
}

/* Heapsort of entries [lo, hi) by (key, addr): in place, no recursion. */
static bool idx_less(const store_t *st, uint32_t i, uint32_t j)
{
    uint32_t a = idx_key(st, i), b = idx_key(st, j);
    return a < b || (a == b && idx_addr(st, i) < idx_addr(st, j));
}

static void idx_swap(store_t *st, uint32_t i, uint32_t j)
{
    uint32_t k = idx_key(st, i), a = idx_addr(st, i);
    idx_put(st, i, idx_key(st, j), idx_addr(st, j));
    idx_put(st, j, k, a);
}

static void idx_sift(store_t *st, uint32_t lo, uint32_t root, uint32_t n)
{
    for (;;) {
        uint32_t child = 2u * root + 1u, top = root;
        if (child < n && idx_less(st, lo + top, lo + child))
            top = child;
        if (child + 1u < n && idx_less(st, lo + top, lo + child + 1u))
            top = child + 1u;
        if (top == root)
            return;
        idx_swap(st, lo + root, lo + top);
        root = top;
    }
}

static void idx_sort(store_t *st, uint32_t lo, uint32_t hi)
{
    uint32_t n = hi - lo;
    for (uint32_t i = n / 2u; i-- > 0;)
        idx_sift(st, lo, i, n);
    for (uint32_t end = n; end > 1u; end--) {
        idx_swap(st, lo, lo + end - 1u);
        idx_sift(st, lo, 0, end - 1u);
    }
}

/* Sort entries [lo, hi) by sort key alone, using the unused entries
 * [spare, spare + room) as scratch when they are enough: a stable LSD radix
 * sort, eight passes of four bits (16 counters on the stack), linear where
 * the heapsort is not; otherwise the heapsort. Order among equal keys does
 * not matter to any user of the index. */
static void idx_sort_spare(store_t *st, uint32_t lo, uint32_t hi, uint32_t spare, uint32_t room)
{
    uint32_t n = hi - lo;
    if (room < n || n < 64u) {
        idx_sort(st, lo, hi);
        return;
    }
    uint32_t from = lo, to = spare;
    for (unsigned shift = 0; shift < 32u; shift += 4u) {
        uint32_t count[16] = {0};
        for (uint32_t i = 0; i < n; i++)
            count[(idx_key(st, from + i) >> shift) & 15u]++;
        for (uint32_t b = 0, sum = 0; b < 16u; b++) {
            uint32_t c = count[b];
            count[b] = sum;
            sum += c;
        }
        for (uint32_t i = 0; i < n; i++) {
            uint32_t key = idx_key(st, from + i);
            idx_put(st, to + count[(key >> shift) & 15u]++, key, idx_addr(st, from + i));
        }
        uint32_t t = from;
        from = to;
        to = t;
    }
    /* eight passes: the sorted entries are back in [lo, hi) */
}

/* Entries [lo, hi) share a sort key: keep, for each distinct key among
 * them, the newest version's entry; the others become IDX_DROP. Runs are
 * short (one key's versions, rarely two keys), so each entry is compared
 * with the few kept before it. false: a read failed. */
static bool idx_dedupe_run(store_t *st, uint32_t lo, uint32_t hi)
{
    for (uint32_t i = lo + 1u; i < hi; i++) {
        uint8_t ki[STORE_KEY_MAX], kj[STORE_KEY_MAX];
        rec_t ri, rj;
        uint32_t ai = idx_addr(st, i) & ~IDX_FLAGS;
        /* Keys read against their hash: a flipped byte must not make two
         * versions of one key look like two keys. */
        if (!rec_read_at(st, ai, &ri) || read_key_checked(st, ai, &ri, ki) != STORE_OK)
            return false;
        for (uint32_t j = lo; j < i; j++) {
            uint32_t aj = idx_addr(st, j) & ~IDX_FLAGS;
            if (idx_addr(st, j) == IDX_DROP)
                continue;
            if (!rec_read_at(st, aj, &rj) || read_key_checked(st, aj, &rj, kj) != STORE_OK)
                return false;
            if (rj.key_len != ri.key_len || memcmp(ki, kj, ri.key_len) != 0)
                continue;
            if (rec_newer(&ri, &rj))
                idx_put(st, j, idx_key(st, j), idx_addr(st, i));
            idx_put(st, i, idx_key(st, i), IDX_DROP);
            break;
        }
    }
    return true;
}

/* Sort the collected entries and keep one per key: the array holds each
 * version met so far until this runs (when it fills, and at the end).
 * listed: entries at the array's end that hold the transaction list. */
static bool idx_compact(store_t *st, uint32_t listed)
{
    uint32_t kept = 0;
    idx_sort_spare(st, 0, st->idx_n, st->idx_n, st->idx_cap - st->idx_n - listed);
    for (uint32_t lo = 0, hi; lo < st->idx_n; lo = hi) {
        for (hi = lo + 1u; hi < st->idx_n && idx_key(st, hi) == idx_key(st, lo); hi++)
            ;
        if (hi - lo > 1u && !idx_dedupe_run(st, lo, hi))
            return false;
    }
    for (uint32_t i = 0; i < st->idx_n; i++)
        if (idx_addr(st, i) != IDX_DROP)
            idx_put(st, kept++, idx_key(st, i), idx_addr(st, i));
    st->idx_n = kept;
    return true;
}

/* Build, pass 1: for every key on flash, the record of its newest version
 * (committed or not: pass 2 decides), with its flags in the low bits.
 * Every version is appended and the array compacted when full, so the pass
 * costs O(n log n) whatever the order records are met in. 0 done, 1 more
 * keys than entries, -1 a read failed or disagreed with an earlier one. */
/* The newest transaction on flash and whether it has members and a
 * COMMIT or ABORT (mount reports one with members and neither as cut by
 * power). Records may be noted in any order. */
typedef struct {
    uint32_t top;
    bool open_members, closed;
    bool complete; /* every record was noted */
} top_txn_t;

static void top_txn_note(top_txn_t *t, const rec_t *r)
{
    if (r->type == T_GCDONE || r->txn < t->top)
        return;
    if (r->txn > t->top) {
        t->top = r->txn;
        t->open_members = t->closed = false;
    }
    if (r->type == T_DATA && !(r->flags & F_SELF))
        t->open_members = true;
    if (r->type == T_COMMIT || r->type == T_ABORT)
        t->closed = true;
}

#define IDX_UNLISTED UINT32_MAX /* the transaction list did not fit */

/* Pass 1 also lists, at the free end of the array, the id of every valid
 * COMMIT (kind 0) and of every transaction with members (kind 1, once per
 * run of its records), so pass 2 needs no scan. When the list would take
 * room a key needs, it is given up (*t = IDX_UNLISTED). false: a read
 * failed in a compaction. */
static bool idx_list_txn(store_t *st, uint32_t *t, uint32_t txn, uint32_t kind)
{
    if (*t == IDX_UNLISTED)
        return true;
    if (kind == 1u && *t > 0 && idx_key(st, st->idx_cap - *t) == txn &&
        idx_addr(st, st->idx_cap - *t) == 1u)
        return true;
    if (st->idx_n + *t == st->idx_cap) {
        if (!idx_compact(st, *t))
            return false;
        if (st->idx_n + *t == st->idx_cap) {
            *t = IDX_UNLISTED;
            return true;
        }
    }
    (*t)++;
    idx_put(st, st->idx_cap - *t, txn, kind);
    return true;
}

/* Room for one more key entry: compact, then give up the list. false
 * when neither frees any (more keys than entries). */
static int idx_make_room(store_t *st, uint32_t *t)
{
    uint32_t listed = *t == IDX_UNLISTED ? 0 : *t;
    if (st->idx_n + listed < st->idx_cap)
        return 0;
    if (!idx_compact(st, listed))
        return -1;
    if (st->idx_n + listed < st->idx_cap)
        return 0;
    *t = IDX_UNLISTED;
    return st->idx_n < st->idx_cap ? 0 : 1;
}

static int idx_collect(store_t *st, uint32_t *t, top_txn_t *top)
{
    uint8_t key[STORE_KEY_MAX];
    scan_t it;
    uint32_t a;
    rec_t r;
    scan_init(&it, UINT32_MAX);
    while (scan_next(st, &it, &a, &r)) {
        if (top)
            top_txn_note(top, &r);
        if (r.type == T_COMMIT && rec_crc_ok(st, a, &r) && !idx_list_txn(st, t, r.txn, 0))
            return -1;
        if (r.type != T_DATA)
            continue;
        /* A key that does not hash to its header's key_hash is matched by
         * no lookup (key_matches): left out. */
        store_status_t kr = read_key_checked(st, a, &r, key);
        if (kr == STORE_ERR_IO)
            return -1;
        if (kr != STORE_OK)
            continue;
        if (!(r.flags & F_SELF) && !idx_list_txn(st, t, r.txn, 1))
            return -1;
        uint32_t tag = a | ((r.flags & F_SELF) ? 0u : IDX_PENDING) |
                       ((r.flags & F_TOMB) ? IDX_TOMB : 0u);
        int room = idx_make_room(st, t);
        if (room != 0)
            return room;
        idx_put(st, st->idx_n++, idx_sort_key(key[0], r.key_hash), tag);
    }
    if (top)
        top->complete = true;
    return idx_compact(st, *t == IDX_UNLISTED ? 0 : *t) ? 0 : -1;
}

/* An entry still pending after the COMMIT records were checked: its
 * newest version never committed, so the key's current version is older
 * (or it has none): the tag of that, or IDX_DROP. */
static bool idx_settle_uncommitted(store_t *st, uint32_t at, uint32_t *tag)
{
    uint8_t key[STORE_KEY_MAX];
    rec_t r;
    winner_t w;
    if (!rec_read_at(st, at, &r) || read_key_checked(st, at, &r, key) != STORE_OK)
        return false; /* (a key that no longer matches its hash: a flip, or rot) */
    find_winner(st, key, r.key_len, &w);
    *tag = !w.found ? IDX_DROP : w.addr | ((w.rec.flags & F_TOMB) ? IDX_TOMB : 0u);
    return true;
}

/* Pass 2 for entries [p, n) whose transaction is unknown: keyed by that
 * transaction id, sorted, then one scan of the COMMIT records settles
 * them. A newest version that never committed hides the key's real
 * current version, which a lookup of the old kind finds (rare: a
 * transaction cut by power or aborted). Entries end keyed by hash again. */
static bool idx_settle(store_t *st, uint32_t p, uint32_t n)
{
    scan_t it;
    uint32_t a;
    rec_t r;
    for (uint32_t i = p; i < n; i++) {
        if (!rec_read_at(st, idx_addr(st, i) & ~IDX_FLAGS, &r))
            return false;
        idx_put(st, i, r.txn, idx_addr(st, i));
    }
    idx_sort(st, p, n);
    scan_init(&it, UINT32_MAX);
    while (scan_next(st, &it, &a, &r)) {
        if (r.type != T_COMMIT || !rec_crc_ok(st, a, &r))
            continue;
        for (uint32_t i = idx_lower(st, p, n, r.txn); i < n && idx_key(st, i) == r.txn; i++)
            idx_put(st, i, r.txn, idx_addr(st, i) & ~IDX_PENDING);
    }
    for (uint32_t i = p; i < n; i++) {
        uint8_t key[STORE_KEY_MAX];
        uint32_t tag = idx_addr(st, i), at = tag & ~IDX_FLAGS;
        if (!rec_read_at(st, at, &r) || read_key_checked(st, at, &r, key) != STORE_OK)
            return false;
        if ((tag & IDX_PENDING) && !idx_settle_uncommitted(st, at, &tag))
            return false;
        idx_put(st, i, idx_sort_key(key[0], r.key_hash), tag);
    }
    return true;
}

/* Pass 2 from the list pass 1 made ([idx_cap - t, idx_cap)): sorted, the
 * transactions with members but no COMMIT (nearly always none) are kept
 * at its start, and only when there are any is a pending entry's record
 * read to see whether it is one of them. The entries keep their order. */
static bool idx_settle_from_list(store_t *st, uint32_t t)
{
    uint32_t lo = st->idx_cap - t, u = 0;
    idx_sort_spare(st, lo, st->idx_cap, st->idx_n, lo - st->idx_n);
    for (uint32_t i = lo; i < st->idx_cap;) {
        uint32_t txn = idx_key(st, i);
        bool committed = false, member = false;
        for (; i < st->idx_cap && idx_key(st, i) == txn; i++) {
            committed = committed || idx_addr(st, i) == 0u;
            member = member || idx_addr(st, i) == 1u;
        }
        if (member && !committed)
            idx_put(st, lo + u++, txn, 1);
    }
    for (uint32_t i = 0; i < st->idx_n; i++) {
        uint32_t tag = idx_addr(st, i), at = tag & ~IDX_FLAGS;
        rec_t r;
        if (!(tag & IDX_PENDING))
            continue;
        tag &= ~IDX_PENDING;
        if (u > 0) {
            if (!rec_read_at(st, at, &r))
                return false;
            uint32_t k = idx_lower(st, lo, lo + u, r.txn);
            if (k < lo + u && idx_key(st, k) == r.txn && !idx_settle_uncommitted(st, at, &tag))
                return false;
        }
        idx_put(st, i, idx_key(st, i), tag);
    }
    return true;
}

/* Pass 2 without room for the COMMIT list: pending entries moved to the
 * end and settled there by idx_settle; the caller sorts again. */
static bool idx_settle_partitioned(store_t *st)
{
    uint32_t p = st->idx_n, i = 0;
    while (i < p) {
        if (idx_addr(st, i) & IDX_PENDING)
            idx_swap(st, i, --p);
        else
            i++;
    }
    return p == st->idx_n || idx_settle(st, p, st->idx_n);
}

/* Build the index from flash: collect, settle, drop deleted keys. top
 * (may be NULL) notes every record the build's scan meets. */
static void idx_build(store_t *st, top_txn_t *top)
{
    uint32_t kept = 0;
    st->idx_n = 0;
    st->idx_state = st->idx_cap ? IDX_ON : IDX_NONE;
    if (st->idx_cap == 0)
        return;
    uint32_t t = 0;
    int collected = idx_collect(st, &t, top);
    if (collected != 0) {
        st->idx_state = collected < 0 || st->read_failed ? IDX_LOST : IDX_FULL;
        return;
    }
    /* the list given up for room: the COMMIT records are scanned instead */
    int listed = t != IDX_UNLISTED ? (idx_settle_from_list(st, t) ? 0 : -1) : 1;
    if (listed < 0 || (listed > 0 && !idx_settle_partitioned(st))) {
        st->idx_state = IDX_LOST;
        return;
    }
    for (uint32_t i = 0; i < st->idx_n; i++) {
        uint32_t tag = idx_addr(st, i);
        if (tag != IDX_DROP && !(tag & IDX_TOMB))
            idx_put(st, kept++, idx_key(st, i), tag & ~IDX_FLAGS);
    }
    st->idx_n = kept;
    if (listed > 0)
        idx_sort_spare(st, 0, kept, kept, st->idx_cap - kept);
    if (st->read_failed)
        st->idx_state = IDX_LOST; /* a lookup in the build may have missed a record */
}

/* At the start of a call: an index lost since is built again. */
static void idx_refresh(store_t *st)
{
    if (st->idx_state == IDX_LOST && st->txn_id == 0) {
        st->idx_rebuilds++;
        idx_build(st, NULL);
    }
}

/* The current version of key: the index's answer when it has one. */
static void find_current(store_t *st, const void *key, size_t key_len, winner_t *w)
{
    if (st->idx_state == IDX_ON) {
        uint32_t pos;
        int f = idx_find(st, key, key_len, util_crc32_update(0, key, key_len), &pos, &w->rec);
        if (f >= 0) {
            w->found = f == 1;
            w->addr = w->found ? idx_addr(st, pos) : 0;
            return;
        }
        idx_lose(st);
    }
    find_winner(st, key, key_len, w);
}

/* ---------------------------------------------------------- writing -- */

static uint32_t sec_usable_end(const store_t *st, bool gc_copy)
{
    /* Ordinary writes leave room for a GC_DONE marker plus one header's
     * worth of torn garbage, so a GC of any sector always fits (FORMAT.md). */
    return st->dev->sector_size - (gc_copy ? st->marker_len : 2u * st->marker_len);
}

static store_status_t write_sector_header(store_t *st, uint32_t i, uint32_t seq, uint32_t ec)
{
    uint8_t *b = scratch(st);
    memset(b, 0xFF, st->hdr_size);
    util_put_le32(b, SEC_MAGIC);
    util_put_le16(b + 4, FORMAT_VERSION);
    util_put_le16(b + 6, (uint16_t)st->dev->write_size);
    util_put_le32(b + 8, st->dev->sector_size);
    util_put_le32(b + 12, seq);
    util_put_le32(b + 16, ec);
    util_put_le32(b + 20, st->dev->sector_count); /* a truncated image is noticed at mount */
    util_put_le32(b + 24, util_crc32_update(0, b, 24));
    return flash_program(st, sec_base(st, i), b, st->hdr_size);
}

static uint32_t erase_count_guess(store_t *st)
{
    uint32_t max = 0;
    for (uint32_t i = 0; i < st->dev->sector_count; i++) {
        sec_t s = sec_get(st, i);
        if (s.count_known && s.erase_count > max)
            max = s.erase_count;
    }
    return max;
}

static store_status_t erase_sector(store_t *st, uint32_t i)
{
    sec_t s = sec_get(st, i);
    uint32_t ec = s.count_known ? s.erase_count : erase_count_guess(st);
    /* Mark free before erasing: from here on nothing may read it. */
    s.state = S_FREE;
    s.obsolete = 0;
    s.blank = 0;
    s.used_end = 0;
    sec_put(st, i, &s);
    /* Once more at once (a transient failure), then the next write erases
     * it again (prepare_writes): a half-erased spare reads as damage. */
    if (st->dev->erase(st->dev, i) != PORT_OK && st->dev->erase(st->dev, i) != PORT_OK) {
        st->prepared = 0;
        return STORE_ERR_IO;
    }
    s.erase_count = ec + 1u;
    s.count_known = 1;
    s.blank = 1;
    sec_put(st, i, &s);
    return STORE_OK;
}

/* A source of record bytes: either a record image in memory pieces
 * (header, key, data) or a verbatim record on flash. */
typedef struct {
    const uint8_t *hdr;
    const uint8_t *key;
    size_t key_len;
    const uint8_t *data;
    size_t data_len;
    uint32_t flash_addr; /* != UINT32_MAX: copy from flash instead */
    uint32_t len;        /* aligned length */
} src_t;

/* Produce bytes [off, off+n) of the record image into out. */
static store_status_t src_bytes(store_t *st, const src_t *s, uint32_t off, uint8_t *out, uint32_t n)
{
    if (s->flash_addr != UINT32_MAX)
        return flash_read(st, s->flash_addr + off, out, n);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t p = off + i;
        uint8_t v = 0xFF;
        if (p < REC_HDR)
            v = s->hdr[p];
        else if (p < REC_HDR + s->key_len)
            v = s->key[p - REC_HDR];
        else if (p < REC_HDR + s->key_len + s->data_len)
            v = s->data[p - REC_HDR - s->key_len];
        out[i] = v;
    }
    return STORE_OK;
}

/* Can the record be programmed over what is at addr (only 1->0 needed)?
 * A flipped read either way costs: a wrong yes programs over data, a wrong
 * no wastes the tail, room the ring's rule does not allow for (a GC that
 * then cannot finish). So the answer is two agreeing reads of three. */
static bool src_fits_over_once(store_t *st, const src_t *s, uint32_t addr);

static bool src_fits_over(store_t *st, const src_t *s, uint32_t addr)
{
    bool first = src_fits_over_once(st, s, addr);
    if (src_fits_over_once(st, s, addr) == first)
        return first;
    return src_fits_over_once(st, s, addr);
}

static bool src_fits_over_once(store_t *st, const src_t *s, uint32_t addr)
{
    uint8_t *a = scratch(st), *b = scratch(st) + SCRATCH_SIZE / 2;
    for (uint32_t off = 0; off < s->len; off += SCRATCH_SIZE / 2) {
        uint32_t n = s->len - off < SCRATCH_SIZE / 2 ? s->len - off : SCRATCH_SIZE / 2;
        if (src_bytes(st, s, off, a, n) != STORE_OK || flash_read(st, addr + off, b, n) != STORE_OK)
            return false;
        for (uint32_t i = 0; i < n; i++)
            if ((uint8_t)(a[i] & ~b[i]) != 0)
                return false;
    }
    return true;
}

/* A record copied from flash, read whole into b: do its bytes match their
 * own header and record CRCs? */
static bool copy_bytes_ok(const uint8_t *b, uint32_t len)
{
    uint32_t body = REC_HDR + (uint32_t)b[2] + util_get_le16(b + 6); /* key_len, chunk_len */
    if (body > len || util_get_le32(b + 24) != util_crc32_update(0, b, 24))
        return false;
    uint32_t crc = util_crc32_update(0, b, REC_CRC_SPAN);
    return util_crc32_update(crc, b + REC_HDR, body - REC_HDR) == util_get_le32(b + 20);
}

static store_status_t src_program(store_t *st, const src_t *s, uint32_t addr)
{
    uint8_t *b = scratch(st);
    /* A GC copy is checked before it is programmed (read again when the
     * check fails): a flipped read would otherwise write a bad copy that
     * fills the head and leaves no room to copy the record again. */
    if (s->flash_addr != UINT32_MAX && s->len <= SCRATCH_SIZE) {
        for (int tries = 0;; tries++) {
            if (flash_read(st, s->flash_addr, b, s->len) != STORE_OK)
                return STORE_ERR_IO;
            if (copy_bytes_ok(b, s->len))
                break;
            if (tries == 1)
                return STORE_ERR_IO;
        }
        return flash_program(st, addr, b, s->len);
    }
    for (uint32_t off = 0; off < s->len; off += SCRATCH_SIZE) {
        uint32_t n = s->len - off < SCRATCH_SIZE ? s->len - off : SCRATCH_SIZE;
        store_status_t rc = src_bytes(st, s, off, b, n);
        if (rc == STORE_OK)
            rc = flash_program(st, addr + off, b, n);
        if (rc != STORE_OK)
            return rc;
    }
    return STORE_OK;
}

/* Zero-fill an interrupted write at the head's tail so it reads as padding
 * (type 0x00) rather than as damage, and so nothing after it is hidden. */
static store_status_t seal_tail(store_t *st)
{
    if (st->tail_at >= st->tail_end)
        return STORE_OK;
    uint8_t *b = scratch(st);
    memset(b, 0, SCRATCH_SIZE);
    uint32_t base = sec_base(st, st->head_sector);
    for (uint32_t off = st->tail_at; off < st->tail_end;) {
        uint32_t n = st->tail_end - off < SCRATCH_SIZE ? st->tail_end - off : SCRATCH_SIZE;
        if (flash_program(st, base + off, b, n) != STORE_OK)
            return STORE_ERR_IO;
        off += n;
    }
    st->tail_at = st->tail_end = 0;
    return STORE_OK;
}

/* A program that failed may have written part of its bytes: the range is an
 * interrupted write, as mount would find it, so the next append seals it or
 * writes past it instead of programming other bytes over it. */
static store_status_t torn_at(store_t *st, uint32_t at, uint32_t len, store_status_t rc)
{
    uint32_t end = at + len;
    if (st->tail_at >= st->tail_end || at < st->tail_at)
        st->tail_at = at;
    if (end > st->tail_end)
        st->tail_end = end;
    if (st->head_offset < st->tail_end)
        st->head_offset = st->tail_end;
    sec_t h = sec_get(st, st->head_sector);
    if (h.used_end < st->head_offset)
        h.used_end = st->head_offset;
    sec_put(st, st->head_sector, &h);
    return rc;
}

/* Append one record to the head (the caller made room). An interrupted
 * write left at the tail is reused when this record's bytes can be
 * programmed over it (an interrupted GC copy being redone), else sealed. */
static store_status_t head_append(store_t *st, const src_t *s)
{
    uint32_t base = sec_base(st, st->head_sector);
    if (st->tail_at < st->tail_end) {
        if (st->tail_at + s->len <= sec_usable_end(st, true) &&
            src_fits_over(st, s, base + st->tail_at)) {
            store_status_t rc = src_program(st, s, base + st->tail_at);
            if (rc != STORE_OK)
                return torn_at(st, st->tail_at, s->len, rc);
            st->last_append = base + st->tail_at;
            st->tail_at += s->len;
            if (st->tail_at >= st->tail_end) {
                st->head_offset = st->tail_at;
                st->tail_at = st->tail_end = 0;
            }
            goto done;
        }
        store_status_t rc = seal_tail(st);
        if (rc != STORE_OK)
            return rc;
    }
    /* Callers made room by the ring's rule; only tails wasted by failed
     * flash operations can eat it. Never program past the head sector:
     * its neighbour is the GC victim. */
    if (st->head_offset + s->len > st->dev->sector_size)
        return STORE_ERR_IO;
    {
        store_status_t rc = src_program(st, s, base + st->head_offset);
        if (rc != STORE_OK)
            return torn_at(st, st->head_offset, s->len, rc);
        st->last_append = base + st->head_offset;
        st->head_offset += s->len;
    }
done:;
    sec_t h = sec_get(st, st->head_sector);
    if (h.used_end < st->head_offset)
        h.used_end = st->head_offset; /* >= tail_end: writing resumes at or past it */
    sec_put(st, st->head_sector, &h);
    return STORE_OK;
}

/* A verified copy of r outside the victim. GC copies only ever go to the
 * head (an interrupted GC resumes into the head it began with: see
 * prepare_writes and rotate), so only the head is searched: one sector, not
 * the store. A copy somewhere else would only be copied once more. */
static bool copy_exists_elsewhere(store_t *st, uint32_t victim, const rec_t *r, uint32_t *at)
{
    scan_t it;
    uint32_t a;
    rec_t o;
    if (st->head_sector == victim)
        return false;
    scan_init(&it, victim);
    it.sec = st->head_sector;
    it.last_sec = st->head_sector;
    while (scan_next(st, &it, &a, &o)) {
        if (o.type != r->type || o.txn != r->txn || o.crc != r->crc || o.op != r->op ||
            o.chunk_idx != r->chunk_idx || o.key_hash != r->key_hash)
            continue;
        if (rec_crc_ok(st, a, &o)) {
            *at = a;
            return true;
        }
    }
    return false;
}

static bool key_elsewhere(store_t *st, uint32_t victim, const uint8_t *key, size_t key_len)
{
    uint32_t hash = util_crc32_update(0, key, key_len);
    scan_t it;
    uint32_t a;
    rec_t o;
    scan_init(&it, victim);
    while (scan_next(st, &it, &a, &o))
        if (key_matches(st, a, &o, key, key_len, hash))
            return true;
    return false;
}

static bool data_live(store_t *st, uint32_t victim, uint32_t addr, const rec_t *r)
{
    uint8_t key[STORE_KEY_MAX];
    if (st->txn_id != 0 && r->txn == st->txn_id)
        return true; /* the open transaction still needs it */
    /* The key decides what is live: a flipped read of it would send the
     * lookup after another key and drop this record with the victim, so a
     * key that does not check stops the GC as a failed read does. */
    if (read_key_checked(st, addr, r, key) != STORE_OK) {
        st->read_failed = 1;
        return false;
    }
    /* A tombstone is never in the index (deleted keys have no entry). */
    winner_t w;
    if (r->flags & F_TOMB)
        find_winner(st, key, r->key_len, &w);
    else
        find_current(st, key, r->key_len, &w);
    if (!w.found || w.rec.txn != r->txn || w.rec.op != r->op)
        return false;
    if (r->flags & F_TOMB) /* a delete matters only while something older exists */
        return victim == UINT32_MAX || key_elsewhere(st, victim, key, r->key_len);
    return true;
}

static bool commit_live(store_t *st, uint32_t victim, const rec_t *c)
{
    scan_t it;
    uint32_t a;
    rec_t o;
    scan_init(&it, UINT32_MAX);
    while (scan_next(st, &it, &a, &o)) {
        if (o.type != T_DATA || o.txn != c->txn)
            continue;
        if (a / st->dev->sector_size != victim) {
            /* a member outside the victim still leans on this commit */
            return true;
        }
        if (data_live(st, victim, a, &o))
            return true;
    }
    return false;
}

/* A GC that stopped half-way must be finished before anything else is
 * appended (prepare_writes does it), or later writes fill the head and
 * leave no room for the victim's live records. */
static store_status_t gc_failed(store_t *st, store_status_t rc)
{
    st->prepared = 0;
    return rc;
}

/* Copy what is live in victim into the head, mark it done, erase it. With
 * dry, only add up in *dry the bytes that copy would program. */
static store_status_t gc_sector_run(store_t *st, uint32_t victim, uint32_t *dry)
{
    sec_t v = sec_get(st, victim);
    uint32_t base = sec_base(st, victim);
    /* The victim is erased only when every read of it and of the lookups
     * deciding what is live worked, and every copy reads back intact:
     * otherwise it stays, and the next write resumes this GC. */
    st->read_failed = 0;
    for (uint32_t off = st->hdr_size; off + REC_HDR <= v.used_end;) {
        rec_t r;
        if (!rec_read_hdr(st, base + off, base + v.used_end, &r)) {
            off += st->align;
            continue;
        }
        uint32_t len = rec_len(st, &r);
        bool keep = false;
        uint32_t copy;
        if ((r.type == T_DATA || r.type == T_COMMIT) && rec_crc_ok(st, base + off, &r)) {
            keep = r.type == T_DATA ? data_live(st, victim, base + off, &r)
                                    : commit_live(st, victim, &r);
            if (keep && copy_exists_elsewhere(st, victim, &r, &copy)) {
                keep = false; /* already copied before a power cut */
                if (!dry)
                    idx_moved(st, &r, base + off, copy);
            }
        }
        if (keep && dry) {
            *dry += len;
        } else if (keep) {
            if (st->head_offset + len > sec_usable_end(st, true) &&
                !(st->tail_at < st->tail_end && st->tail_at + len <= sec_usable_end(st, true)))
                return gc_failed(st, STORE_ERR_IO); /* only tails wasted by faults */
            src_t s = {.hdr = NULL, .flash_addr = base + off, .len = len};
            store_status_t rc = head_append(st, &s);
            if (rc == STORE_OK && !copy_exists_elsewhere(st, victim, &r, &copy))
                rc = STORE_ERR_IO; /* the copy does not read back: keep the original */
            if (rc != STORE_OK)
                return gc_failed(st, rc);
            idx_moved(st, &r, base + off, st->last_append);
        }
        off += len;
    }
    if (st->read_failed)
        return gc_failed(st, STORE_ERR_IO);
    if (dry)
        return STORE_OK;
    uint8_t hdr[REC_HDR];
    rec_t m = {.type = T_GCDONE, .value_len = victim, .txn = v.seq};
    rec_build(&m, NULL, NULL, hdr);
    src_t s = {.hdr = hdr, .flash_addr = UINT32_MAX, .len = st->marker_len};
    store_status_t rc = head_append(st, &s);
    if (rc != STORE_OK)
        return gc_failed(st, rc);
    idx_check_victim(st, victim);
    v.obsolete = 1;
    sec_put(st, victim, &v);
    return erase_sector(st, victim);
}

static store_status_t gc_sector(store_t *st, uint32_t victim)
{
    return gc_sector_run(st, victim, NULL);
}

/* Make the head a fresh sector: the ring turns by one. */
static store_status_t rotate(store_t *st)
{
    uint32_t next = ring_next(st, st->head_sector);
    sec_t n = sec_get(st, next);
    store_status_t rc;
    if (n.state == S_VALID && !n.obsolete) {
        /* Only after an interrupted GC: finish it into the current head. */
        rc = gc_sector(st, next);
        if (rc != STORE_OK)
            return rc;
        n = sec_get(st, next);
    }
    if (!n.blank) {
        rc = erase_sector(st, next);
        if (rc != STORE_OK)
            return rc;
        n = sec_get(st, next);
    }
    rc = seal_tail(st);
    if (rc != STORE_OK)
        return rc;
    uint32_t seq = st->sector_seq + 1u;
    if (write_sector_header(st, next, seq, n.erase_count) != STORE_OK) {
        n.blank = 0; /* part of a header may be there: erase it again first */
        sec_put(st, next, &n);
        return STORE_ERR_IO;
    }
    n.state = S_VALID;
    n.seq = seq;
    n.blank = 0;
    n.used_end = st->hdr_size;
    sec_put(st, next, &n);
    st->sector_seq = seq;
    st->head_sector = next;
    st->head_offset = st->hdr_size;
    st->tail_at = st->tail_end = 0;
    uint32_t oldest = ring_next(st, next);
    sec_t o = sec_get(st, oldest);
    if (o.state == S_VALID)
        return gc_sector(st, oldest);
    return STORE_OK;
}

/* Before the first write after mount: finish what a power cut left. */
/* The oldest sector past the erased ones after the head (store_gc_ahead's
 * victim), or the head itself when there is none. */
static uint32_t ahead_victim(const store_t *st, uint32_t *ready)
{
    uint32_t v = ring_next(st, st->head_sector);
    *ready = 0;
    while (v != st->head_sector && sec_get(st, v).blank) {
        (*ready)++;
        v = ring_next(st, v);
    }
    return v;
}

/* A GC ahead of need (store_gc_ahead) copies the oldest sector past the
 * erased ones into the head; cut short (power, a flash error), its copies
 * end the head and the victim is still valid. Finished now, into that same
 * head, before anything else is written: once the head moves on, GC would
 * no longer find those copies (it looks in the head only) and would copy
 * the records once more. Nothing else puts a victim's record last in the
 * head while erased sectors lie between them. */
static store_status_t resume_gc_ahead(store_t *st)
{
    uint32_t ready, victim = ahead_victim(st, &ready), a, at = 0;
    sec_t v = sec_get(st, victim);
    if (ready == 0 || victim == st->head_sector || v.state != S_VALID || v.obsolete)
        return STORE_OK;
    scan_t it;
    rec_t r, last = {0};
    bool have = false;
    scan_init(&it, UINT32_MAX);
    it.sec = it.last_sec = st->head_sector;
    while (scan_next(st, &it, &a, &r)) {
        last = r;
        have = true;
    }
    if (!have || (last.type != T_DATA && last.type != T_COMMIT))
        return STORE_OK;
    /* is the head's last record one of the victim's, copied? */
    scan_init(&it, UINT32_MAX);
    it.sec = it.last_sec = victim;
    while (scan_next(st, &it, &a, &r)) {
        if (r.type == last.type && r.txn == last.txn && r.op == last.op && r.crc == last.crc &&
            r.chunk_idx == last.chunk_idx && copy_exists_elsewhere(st, victim, &r, &at))
            return gc_sector(st, victim);
    }
    return STORE_OK;
}

static store_status_t prepare_writes(store_t *st)
{
    if (st->prepared)
        return STORE_OK;
    uint32_t next = ring_next(st, st->head_sector);
    sec_t n = sec_get(st, next);
    store_status_t rc;
    if (n.state == S_VALID) {
        rc = n.obsolete ? erase_sector(st, next) : gc_sector(st, next);
        if (rc != STORE_OK)
            return rc;
    } else if (!n.blank) {
        rc = erase_sector(st, next); /* an erase that failed, or was cut */
        if (rc != STORE_OK)
            return rc;
    }
    for (uint32_t i = 0; i < st->dev->sector_count; i++) {
        sec_t s = sec_get(st, i);
        if (s.state == S_VALID && s.obsolete) {
            rc = erase_sector(st, i);
            if (rc != STORE_OK)
                return rc;
        }
    }
    rc = resume_gc_ahead(st);
    if (rc != STORE_OK)
        return rc;
    st->prepared = 1;
    return STORE_OK;
}

static store_status_t make_room(store_t *st, uint32_t len)
{
    st->ahead_turns = st->ahead_best = 0; /* a write: idle GC may work again */
    store_status_t rc = prepare_writes(st);
    if (rc != STORE_OK)
        return rc;
    /* Two full turns of the ring that still leave no room mean the store
     * is full: the first compacts every sector, the second can use what the
     * first freed (free space is scattered at the tails until then). */
    for (uint32_t turns = 0; st->head_offset + len > sec_usable_end(st, false); turns++) {
        if (turns >= 2u * st->dev->sector_count)
            return STORE_FULL;
        rc = rotate(st);
        if (rc != STORE_OK)
            return rc;
    }
    return STORE_OK;
}

/* Room a put must leave free in the head: one worst-case tombstone, so a
 * full store can still delete (deletes and commit/abort markers use it). */
static uint32_t put_reserve(const store_t *st, bool put)
{
    return put ? st->del_reserve : 0u;
}

static store_status_t append_record(store_t *st, rec_t *r, const void *key, const void *data)
{
    uint8_t hdr[REC_HDR];
    rec_build(r, key, data, hdr);
    uint32_t len = rec_len(st, r);
    bool put = r->type == T_DATA && !(r->flags & F_TOMB);
    store_status_t rc = make_room(st, len + put_reserve(st, put));
    if (rc != STORE_OK)
        return rc;
    src_t s = {.hdr = hdr,
               .key = key,
               .key_len = r->key_len,
               .data = data,
               .data_len = r->chunk_len,
               .flash_addr = UINT32_MAX,
               .len = len};
    return head_append(st, &s);
}

/* Smallest chunk worth starting in a nearly full head (or the largest chunk
 * when that is smaller, on tiny sectors): keeps a 16 KB value well within
 * 256 chunks (the reader's bitmap) while packing sectors densely. */
#define CHUNK_MIN 256u

/* Value bytes that fit in the head now for a record with this key. */
static uint32_t head_room(const store_t *st, size_t key_len)
{
    uint32_t end = sec_usable_end(st, false) & ~(st->align - 1u);
    uint32_t over = REC_HDR + (uint32_t)key_len + put_reserve(st, true);
    if (st->head_offset + over >= end)
        return 0;
    uint32_t room = end - st->head_offset - over;
    return room > st->chunk_max ? st->chunk_max : room;
}

/* Write one put/delete as records of txn; self-committing when it is a
 * single record outside a user transaction. Chunks are sized to fill the
 * head, so large values pack sectors instead of leaving each part-empty. */
static store_status_t write_op(store_t *st, uint32_t txn, uint8_t op, bool self, const void *key,
                               size_t key_len, const void *value, size_t value_len, bool tomb,
                               bool *multi)
{
    store_status_t rc = prepare_writes(st);
    if (rc != STORE_OK)
        return rc;
    size_t off = 0;
    uint8_t idx = 0;
    do {
        size_t left = tomb ? 0 : value_len - off;
        uint32_t room = head_room(st, key_len);
        uint32_t min_chunk = st->chunk_max < CHUNK_MIN ? st->chunk_max : CHUNK_MIN;
        if (room < left && room < min_chunk) {
            /* Not worth a chunk here: turn the ring until a minimum chunk
             * fits, then size the chunk to what the new head has (a chunk
             * sized before the turn may never fit behind the GC copies). */
            uint32_t want = left < min_chunk ? (uint32_t)left : min_chunk;
            rc = make_room(st, align_up(REC_HDR + (uint32_t)key_len + want, st->align) +
                                   put_reserve(st, !tomb));
            if (rc != STORE_OK)
                return rc;
            room = head_room(st, key_len);
        }
        uint32_t n = left < room ? (uint32_t)left : room;
        bool last = off + n >= (tomb ? 0 : value_len);
        if (idx == 0 && multi)
            *multi = !last;
        rec_t r = {.type = T_DATA,
                   .flags = (uint8_t)((self && idx == 0 && last ? F_SELF : 0) | (tomb ? F_TOMB : 0)),
                   .key_len = (uint8_t)key_len,
                   .op = op,
                   .chunk_idx = idx,
                   .chunk_len = (uint16_t)n,
                   .value_len = (uint16_t)(tomb ? 0 : value_len),
                   .chunk_off = (uint16_t)off,
                   .txn = txn};
        rc = append_record(st, &r, key, value ? (const uint8_t *)value + off : NULL);
        if (rc != STORE_OK)
            return rc;
        if (idx == 0 && op < STORE_TXN_OPS_MAX) {
            /* GC may move it before the op commits: idx_moved follows it */
            st->op_addr[op] = st->last_append;
            if (st->op_n <= op)
                st->op_n = (uint8_t)(op + 1u);
        }
        off += n;
        idx++;
    } while (off < (tomb ? 0 : value_len));
    return STORE_OK;
}

static store_status_t write_marker(store_t *st, uint8_t type, uint32_t txn, uint32_t value)
{
    rec_t r = {.type = type, .txn = txn, .value_len = value};
    return append_record(st, &r, NULL, NULL);
}

/* ------------------------------------------------------------- mount -- */

static bool geometry_ok(const port_flash_t *dev)
{
    uint32_t ss = dev->sector_size, ws = dev->write_size;
    if (ss < SECTOR_SIZE_MIN || ss > SECTOR_SIZE_MAX || (ss & (ss - 1u)) != 0)
        return false;
    if (ws == 0 || ws > WRITE_SIZE_MAX || (ws & (ws - 1u)) != 0)
        return false;
    return dev->sector_count >= 3u && dev->sector_count <= STORE_SECTORS_MAX;
}

static store_status_t setup(store_t *st, port_flash_t *dev, void *work, size_t work_size)
{
    if (!st || !dev || !work || !dev->read || !dev->program || !dev->erase)
        return STORE_ERR_ARG;
    memset(st, 0, sizeof *st);
    if (!geometry_ok(dev))
        return STORE_ERR_GEOMETRY;
    if (work_size < STORE_WORK_SIZE(dev->sector_count))
        return STORE_ERR_NOMEM;
    st->dev = dev;
    st->work = work;
    st->work_size = work_size;
    st->align = dev->write_size < 4u ? 4u : dev->write_size;
    st->hdr_size = align_up(SEC_HDR_RAW, st->align);
    st->marker_len = align_up(REC_HDR, st->align);
    st->del_reserve = align_up(REC_HDR + STORE_KEY_MAX, st->align);
    /* Largest chunk: a record with a 64-byte key must fit in a sector,
     * with the tombstone reserve left over. */
    uint32_t room = sec_usable_end(st, false) - st->hdr_size - st->del_reserve;
    uint32_t chunk = room - REC_HDR - STORE_KEY_MAX - (st->align - 1u);
    st->chunk_max = chunk > STORE_VALUE_MAX ? STORE_VALUE_MAX : chunk;
    /* What is past the sector table and the scratch is the RAM index. */
    size_t spare = (work_size - STORE_WORK_SIZE(dev->sector_count)) / STORE_INDEX_ENTRY_SIZE;
    st->idx_cap = spare > UINT32_MAX / 2u ? UINT32_MAX / 2u : (uint32_t)spare;
    /* The index part is written before it is read: not touching it keeps a
     * large, mostly unused index from costing its pages at every mount. */
    memset(work, 0, STORE_WORK_SIZE(dev->sector_count));
    return STORE_OK;
}

bool store_probe_header(const void *buf, size_t len, uint32_t *sector_size, uint32_t *write_size)
{
    const uint8_t *b = buf;
    if (!b || len < SEC_HDR_RAW || util_get_le32(b) != SEC_MAGIC ||
        util_get_le32(b + 24) != util_crc32_update(0, b, 24) ||
        util_get_le16(b + 4) != FORMAT_VERSION)
        return false;
    if (sector_size)
        *sector_size = util_get_le32(b + 8);
    if (write_size)
        *write_size = util_get_le16(b + 6);
    return true;
}

static bool read_sector_header(store_t *st, uint32_t i, sec_t *s, uint32_t *count)
{
    uint8_t b[SEC_HDR_RAW];
    if (flash_read(st, sec_base(st, i), b, sizeof b) != STORE_OK)
        return false;
    if ((util_get_le32(b) != SEC_MAGIC || util_get_le32(b + 24) != util_crc32_update(0, b, 24)) &&
        (flash_read(st, sec_base(st, i), b, sizeof b) != STORE_OK ||
         util_get_le32(b) != SEC_MAGIC || util_get_le32(b + 24) != util_crc32_update(0, b, 24)))
        return false; /* read twice: a flip must not turn a sector into a free one */
    if (count)
        *count = util_get_le32(b + 20);
    if (util_get_le16(b + 4) != FORMAT_VERSION || util_get_le16(b + 6) != st->dev->write_size ||
        util_get_le32(b + 8) != st->dev->sector_size)
        return false;
    s->seq = util_get_le32(b + 12);
    s->erase_count = util_get_le32(b + 16);
    return true;
}

/* Offset just past the last programmed byte of sector i (aligned). */
static store_status_t programmed_end_once(store_t *st, uint32_t i, uint32_t *end);

/* Where programming ends in sector i. A flip can only make it look too
 * early (a programmed byte read as 0xFF) or too late: of two reads the later
 * answer is the safe one, since writing past it never programs over data. */
static store_status_t programmed_end(store_t *st, uint32_t i, uint32_t *end)
{
    uint32_t again = 0;
    store_status_t rc = programmed_end_once(st, i, end);
    if (rc == STORE_OK)
        rc = programmed_end_once(st, i, &again);
    if (rc == STORE_OK && again > *end)
        *end = again;
    return rc;
}

static store_status_t programmed_end_once(store_t *st, uint32_t i, uint32_t *end)
{
    uint8_t *b = scratch(st);
    uint32_t ss = st->dev->sector_size;
    for (uint32_t top = ss; top > 0;) {
        uint32_t n = top < SCRATCH_SIZE ? top : SCRATCH_SIZE;
        if (flash_read(st, sec_base(st, i) + top - n, b, n) != STORE_OK)
            return STORE_ERR_IO;
        uint32_t k = n;
        /* Eight bytes a test while erased (n is a multiple of 8: sector
         * and scratch sizes are powers of two of at least 512). */
        for (uint64_t w = UINT64_MAX; k >= 8; k -= 8) {
            memcpy(&w, b + k - 8, 8);
            if (w != UINT64_MAX)
                break;
        }
        for (; k > 0; k--) {
            if (b[k - 1] != 0xFF) {
                *end = align_up(top - n + k, st->align);
                return STORE_OK;
            }
        }
        top -= n;
    }
    *end = 0;
    return STORE_OK;
}

store_status_t store_format(store_t *st, port_flash_t *dev, void *work, size_t work_size)
{
    store_status_t rc = setup(st, dev, work, work_size);
    if (rc != STORE_OK)
        return rc;
    /* Keep what we can read of the old erase counts: wear is physical. */
    uint32_t known_max = 0;
    for (uint32_t i = 0; i < dev->sector_count; i++) {
        sec_t s = {0};
        if (read_sector_header(st, i, &s, NULL)) {
            s.count_known = 1;
            if (s.erase_count > known_max)
                known_max = s.erase_count;
        }
        sec_put(st, i, &s);
    }
    for (uint32_t i = 0; i < dev->sector_count; i++) {
        sec_t s = sec_get(st, i);
        if (!s.count_known) {
            s.erase_count = known_max;
            s.count_known = 1;
            sec_put(st, i, &s);
        }
        rc = erase_sector(st, i);
        if (rc != STORE_OK)
            return rc;
    }
    sec_t h = sec_get(st, 0);
    if (write_sector_header(st, 0, 1, h.erase_count) != STORE_OK)
        return STORE_ERR_IO;
    h.state = S_VALID;
    h.seq = 1;
    h.blank = 0;
    h.used_end = st->hdr_size;
    sec_put(st, 0, &h);
    st->sector_seq = 1;
    st->head_sector = 0;
    st->head_offset = st->hdr_size;
    st->next_seq = 1;
    st->prepared = 1;                                /* nothing to repair */
    st->idx_state = st->idx_cap ? IDX_ON : IDX_NONE; /* empty and exact */
    st->mounted = 1;
    return STORE_OK;
}

/* Ids run 1..UINT32_MAX and never wrap: next_seq 0 means all are used (an
 * image with a record at the top of the range: crafted, or 2^32 writes), and
 * the store then refuses writes (STORE_ERR_IDS_USED) rather than hand out an
 * id older than what is on flash, or 0, which means "no transaction". */
static void note_txn_seen(store_t *st, uint32_t txn)
{
    if (txn == UINT32_MAX)
        st->next_seq = 0;
    else if (st->next_seq != 0 && txn >= st->next_seq)
        st->next_seq = txn + 1u;
}

static store_status_t take_txn(store_t *st, uint32_t *txn)
{
    if (st->next_seq == 0)
        return STORE_ERR_IDS_USED;
    *txn = st->next_seq;
    st->next_seq = st->next_seq == UINT32_MAX ? 0 : st->next_seq + 1u;
    return STORE_OK;
}

/* Scan one valid sector: its write end, the highest txn id, markers, and
 * (with verify) damage. Returns the end of the last intact record. */
static store_status_t mount_scan_sector(store_t *st, uint32_t i, bool verify,
                                        store_mount_report_t *rep, uint32_t *last_good,
                                        uint32_t *torn_end)
{
    sec_t s = sec_get(st, i);
    uint32_t pend;
    store_status_t rc = programmed_end(st, i, &pend);
    if (rc != STORE_OK)
        return rc;
    if (pend < st->hdr_size)
        pend = st->hdr_size;
    s.used_end = pend;
    sec_put(st, i, &s);
    uint32_t base = sec_base(st, i);
    uint32_t good = st->hdr_size, ext_end = pend;
    uint32_t damaged_here = 0, damaged_after_good = 0;
    bool in_garbage = false;
    for (uint32_t off = st->hdr_size; off + REC_HDR <= pend;) {
        rec_t r;
        if (!rec_read_hdr(st, base + off, base + st->dev->sector_size, &r)) {
            bool pad = true;
            /* Sealed padding (all zero) is not damage; anything else is. */
            uint8_t unit[WRITE_SIZE_MAX];
            if (flash_read(st, base + off, unit, st->align) != STORE_OK)
                return STORE_ERR_IO;
            for (uint32_t k = 0; k < st->align; k++)
                if (unit[k] != 0)
                    pad = false;
            if (!pad && !in_garbage) {
                damaged_here++;
                damaged_after_good++;
                in_garbage = true;
            }
            off += st->align;
            continue;
        }
        in_garbage = false;
        uint32_t len = rec_len(st, &r);
        if (off + len > ext_end)
            ext_end = off + len;
        /* Every record a lookup can see (a valid header is enough for
         * find_winner) must stay older than the next write, damaged data or
         * not: otherwise a new put reuses its id and may lose to it. */
        if (r.type != T_GCDONE)
            note_txn_seen(st, r.txn);
        /* Without verify only GC_DONE markers are checked here (they retire
         * sectors); a damaged record is caught when it is read instead. */
        if ((verify || r.type == T_GCDONE) && !rec_crc_ok(st, base + off, &r)) {
            damaged_here++;
            damaged_after_good++;
            off += len;
            continue;
        }
        /* A GC_DONE marker retires a sector older than the one holding it
         * (GC copies the oldest into the head); one that names a newer
         * sequence is from a foreign image and would drop live data. */
        if (r.type == T_GCDONE && r.value_len < st->dev->sector_count && r.value_len != i &&
            r.txn < s.seq) {
            sec_t v = sec_get(st, r.value_len);
            if (v.state == S_VALID && v.seq == r.txn) {
                v.obsolete = 1;
                sec_put(st, r.value_len, &v);
            }
        }
        off += len;
        good = off;
        damaged_after_good = 0;
    }
    /* What follows the last intact record of the head is an interrupted
     * write (power cut), not damage: the next write reseals or redoes it. */
    if (i == st->head_sector)
        damaged_here -= damaged_after_good;
    if (ext_end > s.used_end) {
        s.used_end = ext_end > st->dev->sector_size ? st->dev->sector_size : ext_end;
        sec_put(st, i, &s);
    }
    *last_good = good;
    *torn_end = s.used_end;
    rep->records_damaged += damaged_here;
    return STORE_OK;
}

static bool iter_count_cb(void *arg, const uint8_t *key, size_t key_len, size_t value_len);

store_status_t store_mount(store_t *st, port_flash_t *dev, void *work, size_t work_size,
                           uint32_t flags, store_mount_report_t *report)
{
    store_status_t rc = setup(st, dev, work, work_size);
    if (rc != STORE_OK)
        return rc;
    store_mount_report_t rep;
    memset(&rep, 0, sizeof rep);
    bool any = false;
    uint32_t recorded = 0;
    /* A read that fails makes a sector look free or a record look torn;
     * a mount built on that would seal or reuse acknowledged data. */
    st->read_failed = 0;
    for (uint32_t i = 0; i < dev->sector_count; i++) {
        sec_t s = {0};
        uint32_t count = 0;
        if (read_sector_header(st, i, &s, &count)) {
            if (count > recorded)
                recorded = count;
            s.state = S_VALID;
            s.count_known = 1;
            if (!any || s.seq > st->sector_seq) {
                st->sector_seq = s.seq;
                st->head_sector = i;
            }
            any = true;
        } else {
            uint32_t end;
            rc = programmed_end(st, i, &end);
            if (rc != STORE_OK)
                return rc;
            s.blank = end == 0;
        }
        sec_put(st, i, &s);
    }
    if (st->read_failed)
        return STORE_ERR_IO;
    if (!any) {
        if (!(flags & STORE_MOUNT_FORMAT_IF_EMPTY))
            return STORE_ERR_NOT_STORE;
        rc = store_format(st, dev, work, work_size);
        if (rc == STORE_OK && report)
            *report = rep;
        return rc;
    }
    st->next_seq = 1;
    uint32_t tail_good = 0, tail_end = 0;
    for (uint32_t i = 0; i < dev->sector_count; i++) {
        sec_t s = sec_get(st, i);
        if (s.state != S_VALID)
            continue;
        uint32_t good, end;
        /* The head's records are always checked: where its last intact
         * record ends is where the next write goes. */
        bool verify = !(flags & STORE_MOUNT_QUICK) || i == st->head_sector;
        rc = mount_scan_sector(st, i, verify, &rep, &good, &end);
        if (rc == STORE_OK && st->read_failed)
            rc = STORE_ERR_IO;
        if (rc != STORE_OK)
            return rc;
        if (i == st->head_sector) {
            tail_good = good;
            tail_end = end;
        }
    }
    st->head_offset = tail_end;
    if (tail_end > tail_good) {
        st->tail_at = tail_good;
        st->tail_end = tail_end;
    }
    uint32_t spare = ring_next(st, st->head_sector);
    uint32_t min_known = UINT32_MAX;
    for (uint32_t i = 0; i < dev->sector_count; i++) {
        sec_t s = sec_get(st, i);
        if (s.count_known && s.erase_count < min_known)
            min_known = s.erase_count;
    }
    for (uint32_t i = 0; i < dev->sector_count; i++) {
        sec_t s = sec_get(st, i);
        if (s.state != S_VALID && !s.blank) {
            /* Only a torn sector header (an interrupted rotation) is known
             * harmless. Garbage in the spare may be an interrupted erase,
             * or the newest sector destroyed (then the previous one is the
             * head and the garbage sits where the spare would be): the two
             * cannot be told apart, so it is reported rather than trusted. */
            bool legit = false;
            if (i == spare) {
                uint32_t end = 0;
                legit = programmed_end(st, i, &end) == STORE_OK && end <= st->hdr_size;
            }
            if (!legit)
                rep.sectors_bad++;
        }
        /* A sector without a header does not say how often it was erased:
         * free sectors are the ring's latest victims, so the lowest known
         * count is the honest guess (exact right after a format). */
        if (!s.count_known) {
            s.erase_count = min_known;
            sec_put(st, i, &s);
        }
    }
    /* The newest transaction, if it never committed, was cut by power:
     * seen by the index build's scan, or by a scan of its own. */
    top_txn_t top = {0};
    idx_build(st, &top);
    if (!top.complete) {
        scan_t it;
        uint32_t a;
        rec_t r;
        scan_init(&it, UINT32_MAX);
        while (scan_next(st, &it, &a, &r))
            top_txn_note(&top, &r);
    }
    if (top.open_members && !top.closed)
        rep.txns_discarded = 1;
    if (st->read_failed)
        return STORE_ERR_IO;
    if (recorded > dev->sector_count)
        rep.sectors_missing = recorded - dev->sector_count; /* truncated image */
    st->mounted = 1;
    if (report && (flags & STORE_MOUNT_COUNT_LIVE)) {
        store_iterate(st, NULL, 0, iter_count_cb, &rep.records_live);
        /* Everything with a valid record that is not live is dead. */
        scan_t it;
        uint32_t a, total = 0;
        rec_t r;
        scan_init(&it, UINT32_MAX);
        while (scan_next(st, &it, &a, &r))
            if (r.type == T_DATA && r.chunk_idx == 0)
                total++;
        rep.records_dead = total > rep.records_live ? total - rep.records_live : 0;
    }
    if (report)
        *report = rep;
    return STORE_OK;
}

static bool iter_count_cb(void *arg, const uint8_t *key, size_t key_len, size_t value_len)
{
    (void)key;
    (void)key_len;
    (void)value_len;
    (*(uint32_t *)arg)++;
    return true;
}

/* -------------------------------------------------------------- API -- */

const char *store_status_str(store_status_t status)
{
    switch (status) {
    case STORE_OK: return "ok";
    case STORE_NOT_FOUND: return "not found";
    case STORE_FULL: return "store full";
    case STORE_ERR_ARG: return "bad argument";
    case STORE_ERR_IO: return "flash I/O error";
    case STORE_ERR_CORRUPT: return "record damaged (CRC mismatch)";
    case STORE_ERR_NOT_STORE: return "no store on this flash";
    case STORE_ERR_GEOMETRY: return "unsupported flash geometry";
    case STORE_ERR_NOMEM: return "work buffer too small";
    case STORE_ERR_TOO_BIG: return "value too big";
    case STORE_ERR_TXN: return "transaction misuse";
    case STORE_ERR_NOT_MOUNTED: return "store not mounted";
    case STORE_ERR_IDS_USED: return "transaction ids used up (reformat the image)";
    default: return "unknown store status";
    }
}

static store_status_t check_key(const store_t *st, const void *key, size_t key_len)
{
    if (!st || !st->mounted)
        return st ? STORE_ERR_NOT_MOUNTED : STORE_ERR_ARG;
    if (!key || key_len == 0 || key_len > STORE_KEY_MAX)
        return STORE_ERR_ARG;
    return STORE_OK;
}

/* Read one chunk's data into out and check the record CRC over the header
 * prefix, the key and those bytes. STORE_ERR_CORRUPT when it fails. */
static store_status_t read_chunk_checked(store_t *st, uint32_t addr, const rec_t *r,
                                         const void *key, uint8_t *out)
{
    uint8_t hdr[REC_HDR];
    if (flash_read(st, addr, hdr, REC_HDR) != STORE_OK ||
        (r->chunk_len && flash_read(st, addr + REC_HDR + r->key_len, out, r->chunk_len) != STORE_OK))
        return STORE_ERR_IO;
    uint32_t crc = util_crc32_update(0, hdr, REC_CRC_SPAN);
    crc = util_crc32_update(crc, key, r->key_len);
    crc = util_crc32_update(crc, out, r->chunk_len);
    return crc == r->crc ? STORE_OK : STORE_ERR_CORRUPT;
}

static store_status_t get_value(store_t *st, const void *key, size_t key_len, void *buf, size_t cap,
                                size_t *len)
{
    store_status_t rc = check_key(st, key, key_len);
    if (rc != STORE_OK)
        return rc;
    if (!len || (cap && !buf))
        return STORE_ERR_ARG;
    winner_t w;
    idx_refresh(st);
    find_current(st, key, key_len, &w);
    if (!w.found || (w.rec.flags & F_TOMB))
        return STORE_NOT_FOUND;
    *len = w.rec.value_len;
    if (w.rec.value_len > cap)
        return STORE_ERR_TOO_BIG;
    if (w.rec.chunk_idx == 0 && w.rec.chunk_len == w.rec.value_len) {
        /* One record holds it all: read it where the lookup found it. A
         * damaged one may have an intact GC copy: the scan below finds it. */
        rc = read_chunk_checked(st, w.addr, &w.rec, key, buf);
        if (rc != STORE_ERR_CORRUPT)
            return rc;
    }
    /* Chunks are identified by index; the value is complete when indices
     * 0..last are all present and their lengths add up to value_len. */
    uint64_t have[4] = {0, 0, 0, 0}; /* one bit per chunk index (u8) */
    uint32_t got = 0;
    uint32_t hash = util_crc32_update(0, key, key_len);
    scan_t it;
    uint32_t a;
    rec_t r;
    scan_init(&it, UINT32_MAX);
    while (!((have[0] & 1u) && got == w.rec.value_len) && scan_next(st, &it, &a, &r)) {
        if (r.txn != w.rec.txn || r.op != w.rec.op || !key_matches(st, a, &r, key, key_len, hash))
            continue;
        uint64_t bit = (uint64_t)1 << (r.chunk_idx % 64u);
        uint64_t *word = &have[r.chunk_idx / 64u];
        if ((*word & bit) || r.value_len != w.rec.value_len)
            continue;
        /* The CRC is checked over the very bytes handed out: a bit that
         * flips between a check and a second read would pass unseen. */
        store_status_t rc = read_chunk_checked(st, a, &r, key,
                                               buf ? (uint8_t *)buf + r.chunk_off : NULL);
        if (rc == STORE_ERR_CORRUPT)
            continue;
        if (rc != STORE_OK)
            return rc;
        *word |= bit;
        got += r.chunk_len;
    }
    return (have[0] & 1u) && got == w.rec.value_len ? STORE_OK : STORE_ERR_CORRUPT;
}

store_status_t store_get(store_t *st, const void *key, size_t key_len, void *buf, size_t cap,
                         size_t *len)
{
    if (st)
        st->read_failed = 0;
    store_status_t rc = get_value(st, key, key_len, buf, cap, len);
    /* A read that failed may have hidden the record or its newest copy. */
    return rc != STORE_ERR_ARG && st->read_failed ? STORE_ERR_IO : rc;
}

static store_status_t check_value(const void *value, size_t value_len)
{
    if (value_len > STORE_VALUE_MAX)
        return STORE_ERR_TOO_BIG;
    if (value_len && !value)
        return STORE_ERR_ARG;
    return STORE_OK;
}

store_status_t store_put(store_t *st, const void *key, size_t key_len, const void *value,
                         size_t value_len)
{
    store_status_t rc = check_key(st, key, key_len);
    if (rc == STORE_OK)
        rc = check_value(value, value_len);
    if (rc != STORE_OK)
        return rc;
    if (st->txn_id != 0)
        return STORE_ERR_TXN;
    uint32_t txn;
    rc = take_txn(st, &txn);
    if (rc != STORE_OK)
        return rc;
    bool multi = false;
    idx_refresh(st);
    st->op_n = 0;
    st->txn_id = txn; /* GC must keep the chunks already written */
    rc = write_op(st, txn, 0, true, key, key_len, value, value_len, false, &multi);
    if (rc == STORE_OK && multi)
        rc = write_marker(st, T_COMMIT, txn, 1);
    st->txn_id = 0;
    if (rc == STORE_OK)
        idx_note(st, key, key_len, st->op_addr[0], false);
    st->op_n = 0;
    return rc;
}

store_status_t store_delete(store_t *st, const void *key, size_t key_len)
{
    store_status_t rc = check_key(st, key, key_len);
    if (rc != STORE_OK)
        return rc;
    if (st->txn_id != 0)
        return STORE_ERR_TXN;
    winner_t w;
    uint32_t txn;
    st->read_failed = 0;
    idx_refresh(st);
    find_current(st, key, key_len, &w);
    if (st->read_failed)
        return STORE_ERR_IO; /* a copy the lookup could not read may exist */
    if (!w.found || (w.rec.flags & F_TOMB))
        return STORE_NOT_FOUND;
    rc = take_txn(st, &txn);
    if (rc != STORE_OK)
        return rc;
    st->op_n = 0;
    rc = write_op(st, txn, 0, true, key, key_len, NULL, 0, true, NULL);
    if (rc == STORE_OK)
        idx_note(st, key, key_len, 0, true);
    st->op_n = 0;
    return rc;
}

store_status_t store_txn_begin(store_t *st)
{
    if (!st || !st->mounted)
        return st ? STORE_ERR_NOT_MOUNTED : STORE_ERR_ARG;
    if (st->txn_id != 0)
        return STORE_ERR_TXN;
    idx_refresh(st);
    store_status_t rc = take_txn(st, &st->txn_id);
    if (rc != STORE_OK)
        return rc;
    st->txn_ops = 0;
    st->txn_failed = 0;
    st->op_n = 0;
    return STORE_OK;
}

static store_status_t txn_op(store_t *st, const void *key, size_t key_len, const void *value,
                             size_t value_len, bool tomb)
{
    store_status_t rc = check_key(st, key, key_len);
    if (rc == STORE_OK && !tomb)
        rc = check_value(value, value_len);
    if (rc != STORE_OK)
        return rc;
    if (st->txn_id == 0 || st->txn_ops >= STORE_TXN_OPS_MAX)
        return STORE_ERR_TXN;
    rc = write_op(st, st->txn_id, (uint8_t)st->txn_ops, false, key, key_len, value, value_len, tomb,
                  NULL);
    st->txn_ops++; /* even on failure: a partly written op keeps its index */
    if (rc != STORE_OK)
        st->txn_failed = 1;
    return rc;
}

store_status_t store_txn_put(store_t *st, const void *key, size_t key_len, const void *value,
                             size_t value_len)
{
    return txn_op(st, key, key_len, value, value_len, false);
}

store_status_t store_txn_delete(store_t *st, const void *key, size_t key_len)
{
    return txn_op(st, key, key_len, NULL, 0, true);
}

store_status_t store_txn_current(const store_t *st, uint32_t *id)
{
    if (!st || !id)
        return STORE_ERR_ARG;
    if (!st->mounted)
        return STORE_ERR_NOT_MOUNTED;
    if (st->txn_id == 0)
        return STORE_ERR_TXN;
    *id = st->txn_id;
    return STORE_OK;
}

store_status_t store_txn_commit(store_t *st)
{
    if (!st || !st->mounted)
        return st ? STORE_ERR_NOT_MOUNTED : STORE_ERR_ARG;
    if (st->txn_id == 0)
        return STORE_ERR_TXN;
    if (st->txn_failed) {
        (void)store_txn_abort(st);
        return STORE_ERR_TXN;
    }
    store_status_t rc = STORE_OK;
    if (st->txn_ops > 0)
        rc = write_marker(st, T_COMMIT, st->txn_id, st->txn_ops);
    st->txn_id = 0;
    /* Ops land in order: a key written twice ends with its last op. */
    for (uint32_t i = 0; rc == STORE_OK && i < st->txn_ops; i++)
        idx_note_at(st, st->op_addr[i]);
    st->txn_ops = 0;
    st->op_n = 0;
    return rc;
}

store_status_t store_txn_abort(store_t *st)
{
    if (!st || !st->mounted)
        return st ? STORE_ERR_NOT_MOUNTED : STORE_ERR_ARG;
    if (st->txn_id == 0)
        return STORE_ERR_TXN;
    uint32_t txn = st->txn_id;
    uint32_t ops = st->txn_ops;
    st->txn_id = 0;
    st->txn_ops = 0;
    st->txn_failed = 0;
    st->op_n = 0;
    /* Only so mount does not report a deliberate abort as a power cut; the
     * members are garbage either way. No room for the marker is fine; a
     * flash failure is still reported. */
    if (ops > 0 && write_marker(st, T_ABORT, txn, ops) == STORE_ERR_IO)
        return STORE_ERR_IO;
    return STORE_OK;
}

/* Bytes GC of the oldest sector after the erased ones ahead of the head
 * would copy (UINT32_MAX: none to collect). */
static store_status_t gc_ahead_need(store_t *st, uint32_t *ready, uint32_t *victim, uint32_t *need)
{
    *victim = ahead_victim(st, ready);
    sec_t v = sec_get(st, *victim);
    *need = UINT32_MAX;
    if (*victim == st->head_sector || v.state != S_VALID || v.obsolete)
        return STORE_OK;
    *need = 0;
    return gc_sector_run(st, *victim, need);
}

static bool gc_ahead_fits(const store_t *st, uint32_t need)
{
    return need != UINT32_MAX && st->tail_at >= st->tail_end &&
           st->head_offset + need + st->marker_len <= sec_usable_end(st, true);
}

store_status_t store_gc_ahead(store_t *st, uint32_t sectors, bool *more)
{
    uint32_t ready, victim, need;
    if (more)
        *more = false;
    if (!st || !st->mounted)
        return st ? STORE_ERR_NOT_MOUNTED : STORE_ERR_ARG;
    if (st->txn_id != 0)
        return STORE_ERR_TXN;
    store_status_t rc = prepare_writes(st);
    if (rc == STORE_OK) {
        idx_refresh(st);
        rc = gc_ahead_need(st, &ready, &victim, &need);
    }
    if (rc != STORE_OK || ready >= sectors || need == UINT32_MAX)
        return rc;
    /* Progress is an erased sector more than ever since the last write;
     * steps without it (a turn that uses one up, the collect that wins it
     * back) are limited to a ring's worth, so an idle loop cannot wear the
     * flash for nothing. */
    if (ready > st->ahead_best) {
        st->ahead_best = ready;
        st->ahead_turns = 0;
    }
    if (st->ahead_turns >= st->dev->sector_count)
        return STORE_OK;
    st->ahead_turns++;
    if (gc_ahead_fits(st, need)) {
        /* the oldest's live records into the head as it is: one more erased */
        rc = gc_sector(st, victim);
        ready++;
    } else if (ready >= 1u) {
        /* The head is too full: turn the ring, as a put would (the spare
         * becomes the head, the oldest is collected into it), so a later
         * call has an emptier head to collect into. */
        rc = rotate(st);
        ready--;
    } else {
        return STORE_OK;
    }
    if (rc == STORE_OK && ready > st->ahead_best) {
        st->ahead_best = ready;
        st->ahead_turns = 0;
    }
    if (rc == STORE_OK && more)
        *more = ready < sectors && st->ahead_turns < st->dev->sector_count;
    return rc;
}

/* First occurrence in scan order of the record identity at addr? Copies
 * made by an interrupted GC must not be reported twice. */
static bool first_copy(store_t *st, uint32_t addr, const rec_t *r, const void *key, size_t key_len)
{
    scan_t it;
    uint32_t a;
    rec_t o;
    scan_init(&it, UINT32_MAX);
    while (scan_next(st, &it, &a, &o)) {
        if (a == addr)
            return true;
        if (o.type != r->type || o.txn != r->txn || o.op != r->op || o.chunk_idx != r->chunk_idx ||
            o.crc != r->crc)
            continue;
        /* An earlier copy counts only if it is what the caller counts: a
         * copy of the key (the walk lists keys), or an intact record (the
         * stats count bytes). A copy whose key bytes rotted is neither, and
         * must not hide the good copy after it. */
        if (key ? key_matches(st, a, &o, key, key_len, r->key_hash) : rec_crc_ok(st, a, &o))
            return false;
    }
    return true;
}

/* The live-key walk over the index: one header and key read a key. */
static store_status_t iterate_indexed(store_t *st, const void *prefix, size_t prefix_len,
                                      store_iter_fn fn, void *arg)
{
    uint8_t key[STORE_KEY_MAX];
    rec_t r;
    uint32_t from = 0, to = st->idx_n;
    if (prefix_len) { /* only the keys that share the prefix's first byte */
        uint8_t first = *(const uint8_t *)prefix;
        from = idx_lower(st, 0, st->idx_n, idx_sort_key(first, 0));
        if (first < 0xFFu)
            to = idx_lower(st, from, st->idx_n, idx_sort_key((uint8_t)(first + 1u), 0));
    }
    for (uint32_t i = from; i < to; i++) {
        uint32_t a = idx_addr(st, i);
        /* The key is checked against its hash so that a flipped read never
         * lists a key nobody wrote. */
        if (!rec_read_at(st, a, &r) || r.type != T_DATA ||
            read_key_checked(st, a, &r, key) != STORE_OK) {
            idx_lose(st); /* no answer from this entry: rebuilt next call */
            return STORE_ERR_IO;
        }
        /* Without a chunk 0 the value has no start: not listed (get
         * answers CORRUPT), as the scan does. */
        if (r.chunk_idx != 0 || r.key_len < prefix_len ||
            (prefix_len && memcmp(key, prefix, prefix_len) != 0))
            continue;
        if (!fn(arg, key, r.key_len, r.value_len))
            break;
    }
    return st->read_failed ? STORE_ERR_IO : STORE_OK;
}

store_status_t store_iterate(store_t *st, const void *prefix, size_t prefix_len, store_iter_fn fn,
                             void *arg)
{
    if (!st || !fn || (prefix_len && !prefix) || prefix_len > STORE_KEY_MAX)
        return STORE_ERR_ARG;
    if (!st->mounted)
        return STORE_ERR_NOT_MOUNTED;
    st->read_failed = 0;
    idx_refresh(st);
    if (st->idx_state == IDX_ON)
        return iterate_indexed(st, prefix, prefix_len, fn, arg);
    scan_t it;
    uint32_t a;
    rec_t r;
    uint8_t key[STORE_KEY_MAX];
    scan_init(&it, UINT32_MAX);
    st->read_failed = 0;
    while (scan_next(st, &it, &a, &r)) {
        if (st->read_failed)
            return STORE_ERR_IO;
        if (r.type != T_DATA || r.chunk_idx != 0 || (r.flags & F_TOMB) || r.key_len < prefix_len)
            continue;
        if (st->txn_id != 0 && r.txn == st->txn_id)
            continue;
        /* against its hash: a flipped byte would look up another key, find
         * no version of it and leave this one out of the walk */
        store_status_t kr = read_key_checked(st, a, &r, key);
        if (kr == STORE_ERR_IO)
            return STORE_ERR_IO;
        if (kr != STORE_OK || (prefix_len && memcmp(key, prefix, prefix_len) != 0))
            continue;
        winner_t w;
        find_winner(st, key, r.key_len, &w);
        bool first = w.found && w.rec.txn == r.txn && w.rec.op == r.op &&
                     first_copy(st, a, &r, key, r.key_len);
        if (st->read_failed)
            return STORE_ERR_IO;
        if (!first)
            continue;
        scan_t saved = it; /* fn may not modify the store, scanning resumes */
        if (!fn(arg, key, r.key_len, r.value_len))
            break;
        it = saved;
    }
    return st->read_failed ? STORE_ERR_IO : STORE_OK;
}

store_status_t store_stats(store_t *st, store_stats_t *stats, uint32_t *erase_counts,
                           size_t erase_counts_cap)
{
    if (!st || !stats)
        return STORE_ERR_ARG;
    if (!st->mounted)
        return STORE_ERR_NOT_MOUNTED;
    memset(stats, 0, sizeof *stats);
    idx_refresh(st);
    stats->index_capacity = st->idx_cap;
    stats->index_on = st->idx_state == IDX_ON;
    stats->index_keys = stats->index_on ? st->idx_n : 0;
    stats->index_rebuilds = st->idx_rebuilds;
    uint32_t n = st->dev->sector_count;
    stats->erase_min = UINT32_MAX;
    uint32_t free_sectors = 0;
    for (uint32_t i = 0; i < n; i++) {
        sec_t s = sec_get(st, i);
        if (erase_counts && i < erase_counts_cap)
            erase_counts[i] = s.erase_count;
        if (s.erase_count < stats->erase_min)
            stats->erase_min = s.erase_count;
        if (s.erase_count > stats->erase_max)
            stats->erase_max = s.erase_count;
        if (!sec_readable(&s))
            free_sectors++;
    }
    scan_t it;
    uint32_t a;
    rec_t r;
    scan_init(&it, UINT32_MAX);
    while (scan_next(st, &it, &a, &r)) {
        uint32_t len = rec_len(st, &r);
        bool live = false;
        if (r.type == T_DATA && rec_crc_ok(st, a, &r) && first_copy(st, a, &r, NULL, 0)) {
            live = data_live(st, UINT32_MAX, a, &r);
            if (live && r.chunk_idx == 0 && !(r.flags & F_TOMB))
                stats->live_records++;
        } else if (r.type == T_COMMIT && rec_crc_ok(st, a, &r) && first_copy(st, a, &r, NULL, 0)) {
            live = commit_live(st, UINT32_MAX, &r);
        }
        if (live)
            stats->live_bytes += len;
        else
            stats->dead_bytes += len;
    }
    uint32_t per = sec_usable_end(st, false) - st->hdr_size;
    uint32_t head_free = st->head_offset < sec_usable_end(st, false)
                             ? sec_usable_end(st, false) - st->head_offset
                             : 0;
    /* One free sector is the GC spare and never holds data. */
    uint32_t spare_free = free_sectors > 0 ? (free_sectors - 1u) * per : 0;
    stats->free_bytes = head_free + spare_free + stats->dead_bytes;
    return STORE_OK;
}

store_status_t store_fsck(store_t *st, store_mount_report_t *report)
{
    if (!st)
        return STORE_ERR_ARG;
    if (!st->mounted)
        return STORE_ERR_NOT_MOUNTED;
    /* A fresh mount re-reads and re-checks everything; the table it
     * rebuilds is the same, so nothing of the live state changes. */
    store_t copy;
    store_mount_report_t rep;
    store_status_t rc = store_mount(&copy, st->dev, st->work, st->work_size, STORE_MOUNT_COUNT_LIVE,
                                    &rep);
    uint32_t txn = st->txn_id, ops = st->txn_ops;
    uint8_t failed = st->txn_failed;
    if (rc != STORE_OK) {
        /* The check used the live store's work buffer: rebuild the live
         * table, or stop serving from one that is half-built. */
        if (store_mount(&copy, st->dev, st->work, st->work_size, 0, NULL) != STORE_OK) {
            st->mounted = 0;
            return rc;
        }
    }
    *st = copy;
    st->txn_id = txn;
    st->txn_ops = ops;
    st->txn_failed = failed;
    if (txn != 0)
        note_txn_seen(st, txn);
    if (rc != STORE_OK)
        return rc;
    if (report)
        *report = rep;
    return rep.records_damaged || rep.sectors_bad || rep.sectors_missing ? STORE_ERR_CORRUPT
                                                                         : STORE_OK;
}

/* port_flash_t backend on a regular file holding the raw flash image.
 *
 * The whole image is kept in RAM and written through to the file on every
 * program and erase: reads are then memory copies instead of one system
 * call per record header (the store scans headers a lot). Another process
 * may write the file (the CLI beside a daemon): port_flash_file_reload
 * re-reads it, and callers do that whenever they take the image's lock.
 *
 * Re-reading a 4 MB image at every lock would cost more than the work done
 * under it, so writers keep a generation: PATH.gen holds a 64-bit counter
 * that every handle increments before its first write after an open or a
 * reload (before: a writer killed mid-write has still announced it). A
 * reload that finds the counter and the image's size, mtime and ctime as
 * this handle last left them skips the read. PATH.gen is made by the first
 * write, so read-only use leaves no file; without a usable one (read-only
 * directory, a foreign file) every reload reads and compares. */
#include "port_posix.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define FLASH_FILE_MAX (64u * 1024u * 1024u) /* largest image kept in RAM */

typedef struct {
    int fd;
    uint8_t *mem;
    size_t size;
    int gen_fd; /* PATH.gen, or -1: none yet (every reload reads the image) */
    char *gen_path;
    int gen_bumped;    /* this handle announced a write since it last loaded */
    int gen_known;     /* gen_seen and seen describe the file */
    uint64_t gen_seen; /* the counter as this handle last saw or wrote it */
    struct stat seen;  /* the image as this handle last loaded or wrote it */
    int read_only;     /* opened with port_flash_file_open_ro */
} flash_file_t;

static flash_file_t *ff_of(port_flash_t *dev)
{
    return dev->ctx;
}

static int flash_in_range(const port_flash_t *dev, uint32_t addr, size_t len)
{
    return (uint64_t)addr + len <= (uint64_t)dev->sector_size * dev->sector_count;
}

static port_status_t flash_file_read(port_flash_t *dev, uint32_t addr, void *buf, size_t len)
{
    if (!flash_in_range(dev, addr, len))
        return PORT_ERR_ARG;
    memcpy(buf, ff_of(dev)->mem + addr, len);
    return PORT_OK;
}

static port_status_t write_through(flash_file_t *f, size_t off, size_t len)
{
    for (size_t done = 0; done < len;) {
        ssize_t n = pwrite(f->fd, f->mem + off + done, len - done, (off_t)(off + done));
        if (n <= 0) {
            if (n < 0 && errno == EINTR)
                continue;
            return PORT_ERR_IO;
        }
        done += (size_t)n;
    }
    return PORT_OK;
}

/* PATH.gen: 8 bytes, little-endian; missing or short reads as 0. */
static int gen_read(flash_file_t *f, uint64_t *g)
{
    uint8_t b[8] = {0};
    ssize_t n;
    do
        n = pread(f->gen_fd, b, sizeof b, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -1;
    *g = 0;
    for (int i = 7; i >= 0; i--)
        *g = (*g << 8) | b[i];
    return 0;
}

static int same_stat(const struct stat *a, const struct stat *b)
{
    return a->st_size == b->st_size && a->st_ino == b->st_ino &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
           a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* PATH.gen is created by the first write (a reader never creates files
 * beside the image); a handle that found none looks again at each load. */
static void open_gen(flash_file_t *f, int create)
{
    if (f->gen_fd >= 0 || !f->gen_path)
        return;
    f->gen_fd = open(f->gen_path, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0600);
    if (f->gen_fd < 0 && !create)
        f->gen_fd = open(f->gen_path, O_RDONLY | O_CLOEXEC);
}

/* Before this handle's first write since it loaded: counter + 1 (read
 * afresh: the caller holds the lock, nobody else moves it). A counter
 * that cannot be written leaves readers the stat check and this handle
 * the full compare (gen_known 0). */
static void gen_announce(flash_file_t *f)
{
    uint64_t g;
    if (f->gen_bumped)
        return;
    f->gen_bumped = 1;
    open_gen(f, 1);
    if (f->gen_fd < 0 || gen_read(f, &g) != 0) {
        f->gen_known = 0;
        return;
    }
    g++;
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(g >> (8 * i));
    ssize_t n;
    do
        n = pwrite(f->gen_fd, b, sizeof b, 0);
    while (n < 0 && errno == EINTR);
    f->gen_known = n == (ssize_t)sizeof b;
    f->gen_seen = g;
}

static port_status_t flash_file_program(port_flash_t *dev, uint32_t addr, const void *buf,
                                        size_t len)
{
    flash_file_t *f = ff_of(dev);
    const uint8_t *src = buf;
    if (!flash_in_range(dev, addr, len) || addr % dev->write_size || len % dev->write_size)
        return PORT_ERR_ARG;
    if (f->read_only)
        return PORT_ERR_IO;
    for (size_t i = 0; i < len; i++)
        if ((uint8_t)(src[i] & ~f->mem[addr + i]))
            return PORT_ERR_IO; /* NOR cannot turn 0 into 1: nothing written */
    gen_announce(f);
    for (size_t i = 0; i < len; i++)
        f->mem[addr + i] &= src[i];
    return write_through(f, addr, len);
}

static port_status_t flash_file_erase(port_flash_t *dev, uint32_t sector)
{
    flash_file_t *f = ff_of(dev);
    if (sector >= dev->sector_count)
        return PORT_ERR_ARG;
    if (f->read_only)
        return PORT_ERR_IO;
    size_t base = (size_t)sector * dev->sector_size;
    gen_announce(f);
    memset(f->mem + base, 0xFF, dev->sector_size);
    return write_through(f, base, dev->sector_size);
}

/* Read the file into the RAM copy; *changed (may be NULL) says whether
 * any byte differs from what the copy held. Read in chunks and compared
 * before they are copied, so no second image-sized buffer is needed. */
static port_status_t load(flash_file_t *f, int *changed)
{
    uint8_t chunk[16384];
    if (changed)
        *changed = 0;
    for (size_t done = 0; done < f->size;) {
        size_t want = f->size - done < sizeof chunk ? f->size - done : sizeof chunk;
        /* the first load reads straight into the copy (nothing to compare) */
        uint8_t *to = changed ? chunk : f->mem + done;
        ssize_t n = pread(f->fd, to, changed ? want : f->size - done, (off_t)done);
        if (n <= 0) {
            if (n < 0 && errno == EINTR)
                continue;
            return PORT_ERR_IO;
        }
        if (changed && memcmp(f->mem + done, chunk, (size_t)n) != 0) {
            memcpy(f->mem + done, chunk, (size_t)n);
            *changed = 1;
        }
        done += (size_t)n;
    }
    return PORT_OK;
}

/* load() and remember the generation and stat it read at. The counter is
 * read first: a writer announces before writing, so bytes read after a
 * counter value are at least as new as that value. */
static port_status_t load_current(flash_file_t *f, int *changed)
{
    uint64_t g = 0;
    open_gen(f, 0);
    int have_gen = f->gen_fd >= 0 && gen_read(f, &g) == 0;
    port_status_t rc = load(f, changed);
    f->gen_bumped = 0;
    f->gen_known = rc == PORT_OK && have_gen && fstat(f->fd, &f->seen) == 0;
    f->gen_seen = g;
    return rc;
}

port_status_t port_flash_file_release(port_flash_t *dev)
{
    if (!dev || !dev->ctx)
        return PORT_ERR_ARG;
    flash_file_t *f = ff_of(dev);
    if (f->gen_bumped && fstat(f->fd, &f->seen) != 0)
        f->gen_known = 0;
    return PORT_OK;
}

port_status_t port_flash_file_reload(port_flash_t *dev, int *changed)
{
    if (!dev || !dev->ctx)
        return PORT_ERR_ARG;
    flash_file_t *f = ff_of(dev);
    uint64_t g;
    struct stat now;
    if (f->gen_known && gen_read(f, &g) == 0 && g == f->gen_seen && fstat(f->fd, &now) == 0 &&
        same_stat(&now, &f->seen)) {
        f->gen_bumped = 0;
        if (changed)
            *changed = 0;
        return PORT_OK;
    }
    return load_current(f, changed);
}

static port_status_t open_file(port_flash_t *dev, const char *path, uint32_t sector_size,
                               uint32_t sector_count, uint32_t write_size, int create, int read_only)
{
    struct stat sb;
    memset(dev, 0, sizeof *dev);
    if (!path || sector_size < 64 || (sector_size & (sector_size - 1)) || write_size == 0 ||
        write_size > 32 || sector_size % write_size || (read_only && create))
        return PORT_ERR_ARG;
    int fd = open(path, read_only ? O_RDONLY : O_RDWR);
    /* An empty existing file (e.g. created by a lock holder) is created too. */
    int empty = fd >= 0 && fstat(fd, &sb) == 0 && sb.st_size == 0;
    int fresh = 0;
    if (((fd < 0 && errno == ENOENT) || empty) && create) {
        if (sector_count == 0 || (uint64_t)sector_count * sector_size > FLASH_FILE_MAX) {
            if (fd >= 0)
                close(fd);
            return PORT_ERR_ARG;
        }
        if (fd < 0)
            fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
        if (fd < 0)
            return PORT_ERR_IO;
        fresh = 1;
    } else if (fd < 0) {
        return PORT_ERR_IO;
    }
    flash_file_t *f = calloc(1, sizeof *f);
    if (!f) {
        close(fd);
        return PORT_ERR_NOMEM;
    }
    f->fd = fd;
    f->gen_fd = -1;
    f->read_only = read_only;
    if (fresh) {
        f->size = (size_t)sector_count * sector_size;
    } else {
        if (fstat(fd, &sb) != 0 || sb.st_size <= 0 || (uint64_t)sb.st_size % sector_size ||
            (uint64_t)sb.st_size > FLASH_FILE_MAX) {
            close(fd);
            free(f);
            return PORT_ERR_ARG;
        }
        f->size = (size_t)sb.st_size;
    }
    /* Pages populated in one call: the whole copy is written at once
     * anyway, and faulting it in page by page costs more than reading it. */
    f->mem = mmap(NULL, f->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
                  -1, 0);
    if (f->mem == MAP_FAILED) {
        f->mem = NULL;
        close(fd);
        free(f);
        return PORT_ERR_NOMEM;
    }
    /* without room for the name: no generation, every reload compares */
    size_t plen = strlen(path);
    f->gen_path = malloc(plen + sizeof ".gen");
    if (f->gen_path) {
        memcpy(f->gen_path, path, plen);
        memcpy(f->gen_path + plen, ".gen", sizeof ".gen");
    }
    dev->sector_size = sector_size;
    dev->sector_count = (uint32_t)(f->size / sector_size);
    dev->write_size = write_size;
    dev->read = flash_file_read;
    dev->program = flash_file_program;
    dev->erase = flash_file_erase;
    dev->ctx = f;
    port_status_t rc;
    if (fresh) {
        memset(f->mem, 0xFF, f->size); /* a new device comes erased */
        gen_announce(f);
        rc = write_through(f, 0, f->size);
        if (rc == PORT_OK)
            rc = port_flash_file_release(dev);
    } else {
        rc = load_current(f, NULL);
    }
    if (rc != PORT_OK)
        port_flash_file_close(dev);
    return rc;
}

port_status_t port_flash_file_open(port_flash_t *dev, const char *path, uint32_t sector_size,
                                   uint32_t sector_count, uint32_t write_size, int create)
{
    return open_file(dev, path, sector_size, sector_count, write_size, create, 0);
}

port_status_t port_flash_file_open_ro(port_flash_t *dev, const char *path, uint32_t sector_size,
                                      uint32_t write_size)
{
    return open_file(dev, path, sector_size, 0, write_size, 0, 1);
}

void port_flash_file_close(port_flash_t *dev)
{
    flash_file_t *f = dev->ctx;
    if (f) {
        close(f->fd);
        if (f->gen_fd >= 0)
            close(f->gen_fd);
        free(f->gen_path);
        if (f->mem)
            munmap(f->mem, f->size);
        free(f);
    }
    dev->ctx = NULL;
}

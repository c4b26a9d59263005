/* Open the config flash and mount the store; see cli_flash.h. */
#include "cli_flash.h"
#include "cli.h"

#include "port_posix.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* An image carries no sidecar: its geometry is read back from the first
 * valid sector header, at any multiple of the smallest sector size the
 * store supports (one sequential pass: a header claiming sector size S
 * counts only at a multiple of S). */
static int probe_geometry(const char *path, uint32_t *ss, uint32_t *ws)
{
    enum { PROBE_STEP = 512 };
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return -1;
    struct stat sb;
    int found = 0;
    if (fstat(fileno(fp), &sb) == 0) {
        uint8_t b[PROBE_STEP];
        for (off_t off = 0; !found && fread(b, 1, sizeof b, fp) == sizeof b; off += PROBE_STEP)
            if (store_probe_header(b, STORE_PROBE_LEN, ss, ws) && *ss >= PROBE_STEP &&
                *ss <= (1u << 20) && (*ss & (*ss - 1)) == 0 && off % *ss == 0)
                found = sb.st_size % *ss == 0 ? 1 : 2;
    }
    fclose(fp);
    if (found == 2) {
        (void)cli_usage_error("flash %s: image size %lld is not a whole number of %u-byte sectors "
                              "(truncated?); refusing to touch it",
                              path, (long long)sb.st_size, *ss);
        return -2;
    }
    return found ? 0 : -1;
}

/* flock, waiting through signals (SIGHUP reloads the daemon). */
static int lock_exclusive(int fd)
{
    while (flock(fd, LOCK_EX) != 0)
        if (errno != EINTR)
            return -1;
    return 0;
}

static int take_lock(const char *path, int *fd)
{
    /* O_CREAT: the lock must exist before the image does (first use). */
    *fd = open(path, O_RDWR | O_CREAT, 0600);
    if (*fd < 0)
        return -1;
    if (lock_exclusive(*fd) != 0) {
        close(*fd);
        *fd = -1;
        return -1;
    }
    return 0;
}

/* A reader's lock: shared, on a descriptor opened read-only, so writers
 * wait for it but other readers do not. Where the lock file cannot be
 * opened or locked because nothing can write there (EROFS), there is no
 * writer to wait for: *fd stays -1 and the read goes on unlocked. */
static int take_shared_lock(const char *path, int *fd)
{
    *fd = open(path, O_RDONLY);
    if (*fd < 0)
        return errno == EROFS ? 0 : -1;
    while (flock(*fd, LOCK_SH) != 0) {
        if (errno == EINTR)
            continue;
        int e = errno;
        close(*fd);
        *fd = -1;
        errno = e;
        return -1;
    }
    return 0;
}

/* A reader's lock on an MTD device's lock file in /tmp, which may not exist
 * yet: created (without it no writer holds a lock), then shared. */
static int take_shared_lock_creating(const char *path, int *fd)
{
    int rc = take_shared_lock(path, fd);
    if (rc == 0 || errno != ENOENT)
        return rc;
    int c = open(path, O_RDWR | O_CREAT, 0600);
    if (c < 0)
        return errno == EROFS ? 0 : -1;
    close(c);
    return take_shared_lock(path, fd);
}

/* The lock a command takes: the image itself for a regular file (taken
 * before it can be created, so two first uses cannot both format it); for
 * an MTD device, a file in /tmp named after it. Readers share it; where a
 * reader cannot open or create it because nothing can write there, there
 * is no writer to wait for and it reads unlocked. */
static int image_lock(cli_flash_t *f, const char *path, int reading, int mtd)
{
    char lockpath[4096];
    const char *base = strrchr(path, '/');
    snprintf(lockpath, sizeof lockpath, mtd ? "/tmp/cdnagent-%s.lock" : "%s",
             mtd ? (base ? base + 1 : path) : path);
    int rc = !reading ? take_lock(lockpath, &f->lock_fd)
             : mtd    ? take_shared_lock_creating(lockpath, &f->lock_fd)
                      : take_shared_lock(lockpath, &f->lock_fd);
    if (rc != 0) {
        int e = errno;
        (void)cli_usage_error("flash %s: cannot lock: %s%s", path, strerror(e),
                              !reading && (e == EROFS || e == EPERM || e == EACCES)
                                  ? " (this command writes; the commands that only read work "
                                    "on a read-only image: status, queue, header list, cert "
                                    "show, inspect, fsck)"
                                  : "");
        return -1;
    }
    f->locked = f->lock_fd >= 0;
    return 0;
}

/* An existing regular file: its geometry probed, opened for reading only
 * when the command only reads. */
static int image_open_file(cli_flash_t *f, const char *path, int reading, const struct stat *sb)
{
    uint32_t ss, ws;
    if (!S_ISREG(sb->st_mode))
        return cli_usage_error("flash %s: not a regular file or /dev/mtdN", path), -1;
    int pr = probe_geometry(path, &ss, &ws);
    if (pr == -2)
        return -1;
    if (pr != 0)
        return cli_usage_error("flash %s: no cdnagent store found (no valid sector header); "
                               "refusing to touch it",
                               path),
               -1;
    port_status_t ps = reading ? port_flash_file_open_ro(&f->dev, path, ss, ws)
                               : port_flash_file_open(&f->dev, path, ss, 0, ws, 0);
    if (ps != PORT_OK)
        return cli_usage_error("flash %s: %s", path, port_status_str(ps)), -1;
    return 0;
}

static int image_open_dev(cli_flash_t *f, const char *path, int mode, int exists,
                          const struct stat *sb, const cli_flash_geometry_t *geo)
{
    int reading = mode == CLI_FLASH_READ;
    port_status_t ps;
    if (strncmp(path, "/dev/mtd", 8) == 0) {
        ps = reading ? port_flash_mtd_open_ro(&f->dev, path) : port_flash_mtd_open(&f->dev, path);
        if (ps != PORT_OK)
            return cli_usage_error("flash %s: cannot open MTD device: %s", path,
                                   port_status_str(ps)),
                   -1;
        f->is_mtd = 1;
        return 0;
    }
    if (exists)
        return image_open_file(f, path, reading, sb);
    if (mode != CLI_FLASH_CREATE && mode != CLI_FLASH_NEW)
        return cli_usage_error("flash %s: no such file", path), -1;
    ps = port_flash_file_open(&f->dev, path, geo->sector_size, geo->sector_count, geo->write_size,
                              1);
    if (ps != PORT_OK)
        return cli_usage_error("flash %s: cannot create: %s", path, port_status_str(ps)), -1;
    return 0;
}

/* The store on the opened device, with its RAM index for as many keys as
 * the image can hold records (every record takes at least CLI_RECORD_MIN
 * bytes), so it never overflows: 64 KB of RAM for the default 256 KB
 * image. Only a file just created is formatted; an existing image that
 * does not mount is reported and left untouched. Quick: data CRCs are
 * checked as records are read (always) and by fsck (which mounts again,
 * checking everything), not all at every command: a gateway's image holds
 * thousands of records. */
static int image_mount(cli_flash_t *f, const char *path, int exists)
{
    size_t keys = (size_t)f->dev.sector_count * f->dev.sector_size / CLI_RECORD_MIN;
    f->work_size = STORE_WORK_SIZE_INDEXED(f->dev.sector_count, keys);
    f->work = malloc(f->work_size);
    if (!f->work)
        return cli_usage_error("flash %s: out of memory", path), -1;
    uint32_t flags = STORE_MOUNT_QUICK | (exists ? 0 : STORE_MOUNT_FORMAT_IF_EMPTY);
    store_status_t rc = store_mount(&f->store, &f->dev, f->work, f->work_size, flags, &f->report);
    if (rc != STORE_OK)
        return cli_usage_error("flash %s: %s", path, store_status_str(rc)), -1;
    f->current = 1;
    return 0;
}

static int open_image(cli_flash_t *f, const char *path, int mode, const cli_flash_geometry_t *geo)
{
    struct stat sb;
    int reading = mode == CLI_FLASH_READ, mtd = strncmp(path, "/dev/", 5) == 0;
    memset(f, 0, sizeof *f);
    f->lock_fd = f->deliver_fd = -1;
    if (stat(path, &sb) != 0 && (mode == CLI_FLASH_OPEN_EXISTING || reading) && !mtd)
        /* (not only "no such file": a reader without access to the directory
         * must be told that, not that the image is missing) */
        return cli_usage_error("flash %s: %s", path,
                               errno == ENOENT ? "no such file" : strerror(errno)),
               -1;
    if (image_lock(f, path, reading, mtd) != 0)
        return -1;
    /* A file only the lock created (empty) counts as not existing yet. */
    int exists = stat(path, &sb) == 0 && (sb.st_size > 0 || !S_ISREG(sb.st_mode));
    int rc = exists && mode == CLI_FLASH_NEW
                 ? (cli_usage_error("flash %s: already exists; format never overwrites an image "
                                    "(remove it first, or choose another --flash path)",
                                    path),
                    -1)
                 : image_open_dev(f, path, mode, exists, &sb, geo);
    if (rc == 0)
        rc = image_mount(f, path, exists);
    if (rc != 0)
        cli_flash_close(f);
    return rc;
}

int cli_flash_open(cli_flash_t *f, const char *path, int mode)
{
    static const cli_flash_geometry_t dflt = {CLI_FLASH_SECTOR_SIZE, CLI_FLASH_SECTOR_COUNT,
                                              CLI_FLASH_WRITE_SIZE};
    return open_image(f, path, mode, &dflt);
}

int cli_flash_create(cli_flash_t *f, const char *path, const cli_flash_geometry_t *geo)
{
    return open_image(f, path, CLI_FLASH_NEW, geo);
}

store_status_t cli_flash_lock(cli_flash_t *f)
{
    if (f->lock_fd >= 0 && !f->locked) {
        if (lock_exclusive(f->lock_fd) != 0)
            return STORE_ERR_IO;
        f->locked = 1;
    }
    /* Another process may have written: read the image afresh. When no byte
     * changed since this process held the lock, the store mounted in RAM
     * is still exact and the remount (every record read, the index built)
     * is skipped; an MTD device has no copy to compare and is remounted. */
    int changed = 1;
    if (!f->is_mtd && port_flash_file_reload(&f->dev, &changed) != PORT_OK) {
        f->current = 0;
        return STORE_ERR_IO;
    }
    if (!changed && f->current)
        return STORE_OK;
    store_status_t rc = store_mount(&f->store, &f->dev, f->work, f->work_size, STORE_MOUNT_QUICK,
                                    NULL);
    f->current = rc == STORE_OK;
    return rc;
}

void cli_flash_unlock(cli_flash_t *f)
{
    if (f->lock_fd >= 0 && f->locked) {
        if (!f->is_mtd)
            port_flash_file_release(&f->dev);
        flock(f->lock_fd, LOCK_UN);
        f->locked = 0;
    }
}

int cli_flash_claim_delivery(cli_flash_t *f, const char *path)
{
    char p[4096];
    snprintf(p, sizeof p, "%s.deliver.lock", path);
    f->deliver_fd = open(p, O_RDWR | O_CREAT, 0600);
    if (f->deliver_fd < 0 || flock(f->deliver_fd, LOCK_EX | LOCK_NB) != 0) {
        (void)cli_usage_error("flash %s: another cdnagent (a running daemon or sync) is delivering "
                              "from this image; edits are fine, but only one may deliver",
                              path);
        return -1;
    }
    return 0;
}

void cli_flash_close(cli_flash_t *f)
{
    if (f->dev.ctx) {
        if (f->is_mtd)
            port_flash_mtd_close(&f->dev);
        else
            port_flash_file_close(&f->dev);
    }
    free(f->work);
    f->work = NULL;
    if (f->lock_fd >= 0)
        close(f->lock_fd); /* releases the flock */
    if (f->deliver_fd >= 0)
        close(f->deliver_fd);
    f->lock_fd = f->deliver_fd = -1;
}

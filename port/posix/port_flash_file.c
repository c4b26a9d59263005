/* port_flash_t backend on a regular file holding the raw flash image. */
#include "port_posix.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FLASH_FILE_CHUNK 256u /* bytes per read-modify-write step */

static int flash_fd(port_flash_t *dev) { return (int)(intptr_t)dev->ctx - 1; }

static int flash_in_range(const port_flash_t *dev, uint32_t addr, size_t len)
{
    return (uint64_t)addr + len <= (uint64_t)dev->sector_size * dev->sector_count;
}

static port_status_t flash_file_read(port_flash_t *dev, uint32_t addr, void *buf, size_t len)
{
    if (!flash_in_range(dev, addr, len))
        return PORT_ERR_ARG;
    ssize_t n = pread(flash_fd(dev), buf, len, (off_t)addr);
    return n == (ssize_t)len ? PORT_OK : PORT_ERR_IO;
}

static port_status_t flash_file_program(port_flash_t *dev, uint32_t addr, const void *buf,
                                        size_t len)
{
    const uint8_t *src = buf;
    uint8_t cur[FLASH_FILE_CHUNK];
    if (!flash_in_range(dev, addr, len) || addr % dev->write_size || len % dev->write_size)
        return PORT_ERR_ARG;
    for (size_t done = 0; done < len;) {
        size_t n = len - done < sizeof cur ? len - done : sizeof cur;
        if (pread(flash_fd(dev), cur, n, (off_t)(addr + done)) != (ssize_t)n)
            return PORT_ERR_IO;
        for (size_t i = 0; i < n; i++) {
            if ((uint8_t)(src[done + i] & ~cur[i]))
                return PORT_ERR_IO; /* NOR cannot turn 0 into 1 */
            cur[i] &= src[done + i];
        }
        if (pwrite(flash_fd(dev), cur, n, (off_t)(addr + done)) != (ssize_t)n)
            return PORT_ERR_IO;
        done += n;
    }
    return PORT_OK;
}

static port_status_t flash_file_erase(port_flash_t *dev, uint32_t sector)
{
    uint8_t ff[FLASH_FILE_CHUNK];
    if (sector >= dev->sector_count)
        return PORT_ERR_ARG;
    memset(ff, 0xFF, sizeof ff);
    off_t base = (off_t)sector * dev->sector_size;
    for (uint32_t off = 0; off < dev->sector_size; off += (uint32_t)sizeof ff) {
        size_t n = dev->sector_size - off < sizeof ff ? dev->sector_size - off : sizeof ff;
        if (pwrite(flash_fd(dev), ff, n, base + off) != (ssize_t)n)
            return PORT_ERR_IO;
    }
    return PORT_OK;
}

port_status_t port_flash_file_open(port_flash_t *dev, const char *path, uint32_t sector_size,
                                   uint32_t sector_count, uint32_t write_size, int create)
{
    struct stat sb;
    int fd;
    memset(dev, 0, sizeof *dev);
    if (!path || sector_size < 64 || (sector_size & (sector_size - 1)) || write_size == 0 ||
        write_size > 32 || sector_size % write_size)
        return PORT_ERR_ARG;
    fd = open(path, O_RDWR);
    /* An empty existing file (e.g. created by a lock holder) is created too. */
    int empty = fd >= 0 && fstat(fd, &sb) == 0 && sb.st_size == 0;
    if (((fd < 0 && errno == ENOENT) || empty) && create) {
        if (sector_count == 0) {
            if (fd >= 0)
                close(fd);
            return PORT_ERR_ARG;
        }
        if (fd < 0)
            fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
        if (fd < 0)
            return PORT_ERR_IO;
        dev->sector_size = sector_size;
        dev->sector_count = sector_count;
        dev->ctx = (void *)(intptr_t)(fd + 1);
        for (uint32_t s = 0; s < sector_count; s++) {
            if (flash_file_erase(dev, s) != PORT_OK) {
                close(fd);
                return PORT_ERR_IO;
            }
        }
    } else if (fd < 0) {
        return PORT_ERR_IO;
    }
    if (fstat(fd, &sb) != 0 || sb.st_size <= 0 || (uint64_t)sb.st_size % sector_size ||
        (uint64_t)sb.st_size / sector_size > UINT32_MAX) {
        close(fd);
        return PORT_ERR_ARG;
    }
    dev->sector_size = sector_size;
    dev->sector_count = (uint32_t)((uint64_t)sb.st_size / sector_size);
    dev->write_size = write_size;
    dev->read = flash_file_read;
    dev->program = flash_file_program;
    dev->erase = flash_file_erase;
    dev->ctx = (void *)(intptr_t)(fd + 1);
    return PORT_OK;
}

void port_flash_file_close(port_flash_t *dev)
{
    if (dev->ctx)
        close(flash_fd(dev));
    dev->ctx = NULL;
}

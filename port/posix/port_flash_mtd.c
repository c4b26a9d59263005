/* port_flash_t backend on a Linux MTD character device (/dev/mtdN).
 * Geometry from MEMGETINFO (erasesize, size, writesize); erase via MEMERASE.
 * Compiled here but untested: the build machine has no MTD devices. */
#include "port_posix.h"

#include <fcntl.h>
#include <mtd/mtd-user.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static int mtd_fd(port_flash_t *dev)
{
    return (int)(intptr_t)dev->ctx - 1;
}

static int mtd_in_range(const port_flash_t *dev, uint32_t addr, size_t len)
{
    return (uint64_t)addr + len <= (uint64_t)dev->sector_size * dev->sector_count;
}

static port_status_t mtd_read(port_flash_t *dev, uint32_t addr, void *buf, size_t len)
{
    if (!mtd_in_range(dev, addr, len))
        return PORT_ERR_ARG;
    return pread(mtd_fd(dev), buf, len, (off_t)addr) == (ssize_t)len ? PORT_OK : PORT_ERR_IO;
}

static port_status_t mtd_program(port_flash_t *dev, uint32_t addr, const void *buf, size_t len)
{
    if (!mtd_in_range(dev, addr, len) || addr % dev->write_size || len % dev->write_size)
        return PORT_ERR_ARG;
    return pwrite(mtd_fd(dev), buf, len, (off_t)addr) == (ssize_t)len ? PORT_OK : PORT_ERR_IO;
}

static port_status_t mtd_erase(port_flash_t *dev, uint32_t sector)
{
    struct erase_info_user ei;
    if (sector >= dev->sector_count)
        return PORT_ERR_ARG;
    ei.start = sector * dev->sector_size;
    ei.length = dev->sector_size;
    return ioctl(mtd_fd(dev), MEMERASE, &ei) == 0 ? PORT_OK : PORT_ERR_IO;
}

/* Opened for reading: a write is refused, not attempted. */
static port_status_t mtd_no_program(port_flash_t *dev, uint32_t addr, const void *buf, size_t len)
{
    (void)dev, (void)addr, (void)buf, (void)len;
    return PORT_ERR_IO;
}

static port_status_t mtd_no_erase(port_flash_t *dev, uint32_t sector)
{
    (void)dev, (void)sector;
    return PORT_ERR_IO;
}

static port_status_t mtd_open(port_flash_t *dev, const char *path, int flags)
{
    struct mtd_info_user info;
    memset(dev, 0, sizeof *dev);
    if (!path)
        return PORT_ERR_ARG;
    int fd = open(path, flags);
    if (fd < 0)
        return PORT_ERR_IO;
    if (ioctl(fd, MEMGETINFO, &info) != 0) {
        close(fd);
        return PORT_ERR_UNSUPPORTED; /* not an MTD device */
    }
    uint32_t ws = info.writesize ? info.writesize : 1;
    if (info.erasesize == 0 || info.size % info.erasesize || ws > 32 || info.type == MTD_NANDFLASH) {
        close(fd);
        return PORT_ERR_UNSUPPORTED; /* only NOR-like devices fit the contract */
    }
    dev->sector_size = info.erasesize;
    dev->sector_count = info.size / info.erasesize;
    dev->write_size = ws;
    dev->read = mtd_read;
    dev->program = flags == O_RDONLY ? mtd_no_program : mtd_program;
    dev->erase = flags == O_RDONLY ? mtd_no_erase : mtd_erase;
    dev->ctx = (void *)(intptr_t)(fd + 1);
    return PORT_OK;
}

port_status_t port_flash_mtd_open(port_flash_t *dev, const char *path)
{
    return mtd_open(dev, path, O_RDWR);
}

port_status_t port_flash_mtd_open_ro(port_flash_t *dev, const char *path)
{
    return mtd_open(dev, path, O_RDONLY);
}

void port_flash_mtd_close(port_flash_t *dev)
{
    if (dev->ctx)
        close(mtd_fd(dev));
    dev->ctx = NULL;
}

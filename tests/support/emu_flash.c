/* Emulated NOR flash for tests; see emu_flash.h. Host-only (uses malloc). */
#include "emu_flash.h"

#include <stdlib.h>
#include <string.h>

static emu_flash_t *emu_of(port_flash_t *dev) { return (emu_flash_t *)dev->ctx; }

static int emu_in_range(const emu_flash_t *emu, uint32_t addr, size_t len)
{
    uint64_t size = (uint64_t)emu->dev.sector_size * emu->dev.sector_count;
    return (uint64_t)addr + len <= size;
}

static port_status_t emu_read(port_flash_t *dev, uint32_t addr, void *buf, size_t len)
{
    emu_flash_t *emu = emu_of(dev);
    if (emu->powered_off || !emu_in_range(emu, addr, len))
        return PORT_ERR_IO;
    memcpy(buf, emu->mem + addr, len);
    return PORT_OK;
}

/* Returns 1 when this op is the one scheduled to lose power. */
static int emu_cut_now(emu_flash_t *emu)
{
    int cut = emu->cut_at_op >= 0 && (uint64_t)emu->cut_at_op == emu->ops;
    emu->ops++;
    return cut;
}

static port_status_t emu_program(port_flash_t *dev, uint32_t addr, const void *buf, size_t len)
{
    emu_flash_t *emu = emu_of(dev);
    const uint8_t *src = buf;
    if (emu->powered_off)
        return PORT_ERR_IO;
    if (!emu_in_range(emu, addr, len) || addr % dev->write_size || len % dev->write_size) {
        emu->violations++;
        return PORT_ERR_ARG;
    }
    for (size_t i = 0; i < len; i++) {
        if ((uint8_t)(src[i] & ~emu->mem[addr + i]) != 0) { /* would need 0 -> 1 */
            emu->violations++;
            return PORT_ERR_IO;
        }
    }
    size_t n = len;
    int cut = emu_cut_now(emu);
    if (cut && emu->cut_at_byte < len)
        n = emu->cut_at_byte;
    for (size_t i = 0; i < n; i++)
        emu->mem[addr + i] &= src[i];
    emu->bytes_programmed += n;
    if (cut) {
        emu->powered_off = 1;
        return PORT_ERR_IO;
    }
    return PORT_OK;
}

static port_status_t emu_erase(port_flash_t *dev, uint32_t sector)
{
    emu_flash_t *emu = emu_of(dev);
    if (emu->powered_off)
        return PORT_ERR_IO;
    if (sector >= dev->sector_count)
        return PORT_ERR_ARG;
    uint8_t *base = emu->mem + (size_t)sector * dev->sector_size;
    if (emu_cut_now(emu)) {
        memset(base, 0xFF, dev->sector_size / 2); /* interrupted mid-erase */
        emu->powered_off = 1;
        return PORT_ERR_IO;
    }
    memset(base, 0xFF, dev->sector_size);
    emu->erase_counts[sector]++;
    return PORT_OK;
}

int emu_flash_init(emu_flash_t *emu, uint32_t sector_size, uint32_t sector_count,
                   uint32_t write_size)
{
    memset(emu, 0, sizeof *emu);
    if (sector_size == 0 || sector_count == 0 || write_size == 0 || write_size > 32 ||
        sector_size % write_size)
        return -1;
    emu->mem = malloc((size_t)sector_size * sector_count);
    emu->erase_counts = calloc(sector_count, sizeof *emu->erase_counts);
    if (!emu->mem || !emu->erase_counts) {
        emu_flash_free(emu);
        return -1;
    }
    memset(emu->mem, 0xFF, (size_t)sector_size * sector_count);
    emu->dev.sector_size = sector_size;
    emu->dev.sector_count = sector_count;
    emu->dev.write_size = write_size;
    emu->dev.read = emu_read;
    emu->dev.program = emu_program;
    emu->dev.erase = emu_erase;
    emu->dev.ctx = emu;
    emu->cut_at_op = -1;
    return 0;
}

void emu_flash_free(emu_flash_t *emu)
{
    free(emu->mem);
    free(emu->erase_counts);
    emu->mem = NULL;
    emu->erase_counts = NULL;
}

void emu_flash_cut_after(emu_flash_t *emu, uint64_t op, size_t byte)
{
    emu->cut_at_op = (int64_t)(emu->ops + op);
    emu->cut_at_byte = byte;
}

void emu_flash_power_on(emu_flash_t *emu)
{
    emu->powered_off = 0;
    emu->cut_at_op = -1;
}

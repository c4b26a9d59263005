/* Emulated NOR flash for tests; see emu_flash.h. Host-only (uses malloc). */
#include "emu_flash.h"

#include <stdlib.h>
#include <string.h>

static emu_flash_t *emu_of(port_flash_t *dev)
{
    return (emu_flash_t *)dev->ctx;
}

static int emu_in_range(const emu_flash_t *emu, uint32_t addr, size_t len)
{
    uint64_t size = (uint64_t)emu->dev.sector_size * emu->dev.sector_count;
    return (uint64_t)addr + len <= size;
}

/* The armed fault hits this call when its class matches and the class
 * counter (taken before this call was counted) has reached fault_at. */
static int emu_fault_hits(emu_flash_t *emu, emu_fault_kind_t a, emu_fault_kind_t b, uint64_t idx)
{
    if ((emu->fault_kind != a && emu->fault_kind != b) || idx != emu->fault_at)
        return 0;
    emu->fault_fired = 1;
    return 1;
}

static uint64_t emu_noise_next(emu_flash_t *emu)
{
    /* splitmix64: tiny, seedable, and identical on every target */
    uint64_t z = (emu->noise_state += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

static port_status_t emu_read(port_flash_t *dev, uint32_t addr, void *buf, size_t len)
{
    emu_flash_t *emu = emu_of(dev);
    if (emu->powered_off || !emu_in_range(emu, addr, len))
        return PORT_ERR_IO;
    uint64_t idx = emu->reads++;
    uint8_t *out = buf;
    if (emu_fault_hits(emu, EMU_FAULT_READ_ERROR, EMU_FAULT_READ_ERROR, idx)) {
        emu->fault_kind = EMU_FAULT_NONE;
        emu->fault_addr = addr;
        emu->fault_len = (uint32_t)len;
        /* A driver that fails may have filled part of buf: make any use of it
         * visible instead of handing back plausible old contents. */
        memset(buf, 0xA5, len);
        return PORT_ERR_IO;
    }
    memcpy(buf, emu->mem + addr, len);
    if (len && emu_fault_hits(emu, EMU_FAULT_READ_FLIP, EMU_FAULT_READ_FLIP, idx)) {
        uint64_t bit = emu->fault_arg % ((uint64_t)len * 8u);
        emu->fault_kind = EMU_FAULT_NONE;
        emu->fault_addr = addr;
        emu->fault_len = (uint32_t)len;
        emu->fault_flip_addr = addr + (uint32_t)(bit / 8u);
        out[bit / 8u] ^= (uint8_t)(1u << (bit % 8u));
        emu->flips++;
    }
    if (emu->noise_one_in) {
        for (size_t i = 0; i < len; i++) {
            uint64_t r = emu_noise_next(emu);
            if (r % emu->noise_one_in == 0) {
                out[i] ^= (uint8_t)(1u << ((r >> 32) % 8u));
                emu->fault_flip_addr = addr + (uint32_t)i;
                emu->flips++;
            }
        }
    }
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
    uint64_t idx = emu->programs++;
    if (cut && emu->cut_at_byte < len)
        n = emu->cut_at_byte;
    int fault = !cut && emu_fault_hits(emu, EMU_FAULT_PROGRAM_ERROR, EMU_FAULT_PROGRAM_PARTIAL, idx);
    if (fault) {
        n = 0;
        if (emu->fault_kind == EMU_FAULT_PROGRAM_PARTIAL)
            n = emu->fault_arg == 0 ? len / 2 : emu->fault_arg < len ? emu->fault_arg : len;
        emu->fault_kind = EMU_FAULT_NONE;
        emu->fault_addr = addr;
        emu->fault_len = (uint32_t)len;
    }
    for (size_t i = 0; i < n; i++)
        emu->mem[addr + i] &= src[i];
    emu->bytes_programmed += n;
    if (cut) {
        emu->powered_off = 1;
        return PORT_ERR_IO;
    }
    return fault ? PORT_ERR_IO : PORT_OK;
}

static port_status_t emu_erase(port_flash_t *dev, uint32_t sector)
{
    emu_flash_t *emu = emu_of(dev);
    if (emu->powered_off)
        return PORT_ERR_IO;
    if (sector >= dev->sector_count)
        return PORT_ERR_ARG;
    uint8_t *base = emu->mem + (size_t)sector * dev->sector_size;
    int cut = emu_cut_now(emu);
    uint64_t idx = emu->erases++;
    if (cut) {
        memset(base, 0xFF, dev->sector_size / 2); /* interrupted mid-erase */
        emu->powered_off = 1;
        return PORT_ERR_IO;
    }
    if (emu_fault_hits(emu, EMU_FAULT_ERASE_ERROR, EMU_FAULT_ERASE_PARTIAL, idx)) {
        if (emu->fault_kind == EMU_FAULT_ERASE_PARTIAL) {
            uint32_t n = emu->fault_arg ? emu->fault_arg : dev->sector_size / 2;
            memset(base, 0xFF, n < dev->sector_size ? n : dev->sector_size);
        }
        emu->fault_kind = EMU_FAULT_NONE;
        emu->fault_addr = sector * dev->sector_size;
        emu->fault_len = dev->sector_size;
        return PORT_ERR_IO; /* a failed erase is not counted as wear */
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

void emu_flash_fault_arm(emu_flash_t *emu, emu_fault_kind_t kind, uint64_t nth, uint32_t arg)
{
    uint64_t base = 0;
    if (kind == EMU_FAULT_READ_ERROR || kind == EMU_FAULT_READ_FLIP)
        base = emu->reads;
    else if (kind == EMU_FAULT_PROGRAM_ERROR || kind == EMU_FAULT_PROGRAM_PARTIAL)
        base = emu->programs;
    else if (kind == EMU_FAULT_ERASE_ERROR || kind == EMU_FAULT_ERASE_PARTIAL)
        base = emu->erases;
    emu->fault_kind = kind;
    emu->fault_at = base + nth;
    emu->fault_arg = arg;
    emu->fault_fired = 0;
    emu->fault_addr = emu->fault_len = emu->fault_flip_addr = 0;
}

void emu_flash_fault_clear(emu_flash_t *emu)
{
    emu->fault_kind = EMU_FAULT_NONE;
    emu->noise_one_in = 0;
}

void emu_flash_read_noise(emu_flash_t *emu, uint64_t seed, uint32_t one_in)
{
    emu->noise_state = seed;
    emu->noise_one_in = one_in;
}

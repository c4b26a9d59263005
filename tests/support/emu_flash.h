/*
 * emu_flash: an emulated NOR flash for tests, behind port_flash_t.
 *
 * Enforces the NOR rules the store must live with: erase sets a sector to
 * 0xFF; program may only clear bits (a 0 -> 1 transition is refused with
 * PORT_ERR_IO and counted as a violation); program address and length must be
 * multiples of write_size. Counts erases per sector and bytes programmed.
 *
 * Power-cut hook: emu_flash_cut_after(ops, byte) makes the device "lose
 * power" during the (ops+1)-th program/erase: a program writes only its first
 * `byte` bytes, an erase leaves the sector half-erased (first half 0xFF,
 * rest untouched); that call and every later one fail with PORT_ERR_IO until
 * emu_flash_power_on().
 */
#ifndef CDNAGENT_EMU_FLASH_H
#define CDNAGENT_EMU_FLASH_H

#include <stddef.h>
#include <stdint.h>

#include "port.h"

typedef struct {
    port_flash_t dev;          /* hand &emu->dev to the code under test */
    uint8_t *mem;              /* sector_size * sector_count bytes */
    uint32_t *erase_counts;    /* one per sector */
    uint64_t bytes_programmed;
    uint64_t ops;              /* program + erase calls so far */
    uint64_t violations;       /* refused programs (1->0 rule, alignment) */
    int64_t cut_at_op;         /* -1: no cut scheduled */
    size_t cut_at_byte;
    int powered_off;
} emu_flash_t;

/* Allocate (host malloc) a device of the given geometry, fully erased. */
int emu_flash_init(emu_flash_t *emu, uint32_t sector_size, uint32_t sector_count,
                   uint32_t write_size);
void emu_flash_free(emu_flash_t *emu);

/* Schedule a power cut: the op with index `op` (0-based, counting from now's
 * emu->ops) is interrupted after `byte` bytes (programs) or half-way (erase). */
void emu_flash_cut_after(emu_flash_t *emu, uint64_t op, size_t byte);
/* Restore power and cancel any scheduled cut. Flash contents are kept. */
void emu_flash_power_on(emu_flash_t *emu);

#endif

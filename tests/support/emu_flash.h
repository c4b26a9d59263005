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
 *
 * Fault hook: emu_flash_fault_arm() makes ONE chosen read, program or erase
 * fail while the power stays on, the way a worn or marginal part does: the
 * caller gets the error (or, for a read, silently wrong bits) and goes on
 * running, so a test sees what the code does with a device that misbehaves
 * once rather than one that vanishes. emu_flash_read_noise() adds seeded
 * random bit flips to reads for soak tests.
 */
#ifndef CDNAGENT_EMU_FLASH_H
#define CDNAGENT_EMU_FLASH_H

#include <stddef.h>
#include <stdint.h>

#include "port.h"

/* What the armed fault does to the operation it hits. Programs and erases
 * come in a clean and a partial flavour because real NOR parts do both: a
 * program or erase can be refused before it starts, or abort part-way and
 * leave some bytes changed. */
typedef enum {
    EMU_FAULT_NONE = 0,
    EMU_FAULT_READ_ERROR,      /* the read returns PORT_ERR_IO; buf is poisoned */
    EMU_FAULT_READ_FLIP,       /* the read returns PORT_OK with one bit inverted
                                  (transient: the flash itself is unchanged) */
    EMU_FAULT_PROGRAM_ERROR,   /* PORT_ERR_IO, nothing programmed */
    EMU_FAULT_PROGRAM_PARTIAL, /* PORT_ERR_IO after programming the first `arg`
                                  bytes (0: half; arg >= len: all of them, the
                                  write landed but its status said it failed) */
    EMU_FAULT_ERASE_ERROR,     /* PORT_ERR_IO, sector untouched */
    EMU_FAULT_ERASE_PARTIAL,   /* PORT_ERR_IO with the first `arg` bytes of the
                                  sector erased (arg 0: half), the rest kept */
} emu_fault_kind_t;

typedef struct {
    port_flash_t dev;       /* hand &emu->dev to the code under test */
    uint8_t *mem;           /* sector_size * sector_count bytes */
    uint32_t *erase_counts; /* one per sector */
    uint64_t bytes_programmed;
    uint64_t ops;        /* program + erase calls so far (power-cut indices
                            count these; reads are counted apart so that
                            existing cut schedules keep their meaning) */
    uint64_t violations; /* refused programs (1->0 rule, alignment) */
    int64_t cut_at_op;   /* -1: no cut scheduled */
    size_t cut_at_byte;
    int powered_off;

    /* Every call that reached the medium (powered, in range, aligned), so a
     * fault campaign can count a workload's operations of each kind and then
     * aim at each one: a fault's `nth` counts in the same units. */
    uint64_t reads;
    uint64_t programs;
    uint64_t erases;

    /* The armed fault (see emu_flash_fault_arm); kind NONE when idle. */
    emu_fault_kind_t fault_kind;
    uint64_t fault_at; /* value of reads/programs/erases that it hits */
    uint32_t fault_arg;
    /* Set when the armed fault fired, so a test can tell "the workload never
     * reached operation k" from "it survived the fault", and can see where
     * the damage went. */
    int fault_fired;
    uint32_t fault_addr;      /* start of the hit operation (erase: sector base) */
    uint32_t fault_len;       /* its length in bytes */
    uint32_t fault_flip_addr; /* READ_FLIP / noise: the byte whose bit flipped */

    /* Random read noise (emu_flash_read_noise); 0 = off. */
    uint32_t noise_one_in;
    uint64_t noise_state;
    uint64_t flips; /* bits flipped so far by READ_FLIP and noise */
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

/* Arm one fault: the operation of the kind's class (reads for READ_*,
 * programs, erases) with 0-based index `nth` counted from now fails as
 * `kind` says. It fires once and disarms itself, so everything after it
 * works again: what is under test is the recovery, not a dead device.
 * arg: READ_FLIP the bit to invert, counted from the first byte the read
 * returns (taken modulo the read's bit count, so any value hits); PROGRAM_PARTIAL
 * bytes programmed before the failure (0: half the program, since a caller
 * arming it rarely knows the length yet); ERASE_PARTIAL bytes erased from the
 * sector start (0: half the sector). Re-arming replaces a pending fault. */
void emu_flash_fault_arm(emu_flash_t *emu, emu_fault_kind_t kind, uint64_t nth, uint32_t arg);
/* Cancel a pending fault and stop read noise; fault_fired is kept for the
 * caller to inspect until the next arm. */
void emu_flash_fault_clear(emu_flash_t *emu);

/* Seeded random read noise: every byte a read returns has a 1-in-`one_in`
 * chance of one bit inverted (0 turns noise off). Deterministic for a seed
 * and a sequence of reads, so a failure found by a soak replays. */
void emu_flash_read_noise(emu_flash_t *emu, uint64_t seed, uint32_t one_in);

#endif

/*
 * test_crc: the store's CRC-32 (IEEE, reflected) written independently of
 * components/store, and a forger for it, so tests can seal crafted records
 * and make keys whose hashes collide.
 */
#ifndef CDNAGENT_TEST_CRC_H
#define CDNAGENT_TEST_CRC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

uint32_t test_crc32(uint32_t crc, const uint8_t *p, size_t n);

/* Set the 4 bytes at buf[pos] so that test_crc32(0, buf, len) == target.
 * CRC-32 is affine in the message bits and 4 adjacent bytes span all 32
 * output bits: the 32x32 system over GF(2) is solved. false only if it has
 * no solution (it always has one; the check is the caller's assert). */
bool test_crc_forge(uint8_t *buf, size_t len, size_t pos, uint32_t target);

#endif

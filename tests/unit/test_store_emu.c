/* The emulated NOR flash the store tests rely on must enforce the rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "emu_flash.h"

static void test_erase_and_program_only_clear_bits(void **state)
{
    (void)state;
    emu_flash_t emu;
    assert_int_equal(emu_flash_init(&emu, 4096, 3, 1), 0);
    uint8_t b = 0;
    assert_int_equal(emu.dev.read(&emu.dev, 10, &b, 1), PORT_OK);
    assert_int_equal(b, 0xFF);
    uint8_t v = 0xF0;
    assert_int_equal(emu.dev.program(&emu.dev, 10, &v, 1), PORT_OK);
    v = 0x30; /* clears more bits: allowed */
    assert_int_equal(emu.dev.program(&emu.dev, 10, &v, 1), PORT_OK);
    v = 0x0F; /* would set bits 0..3 back to 1: refused */
    assert_int_equal(emu.dev.program(&emu.dev, 10, &v, 1), PORT_ERR_IO);
    assert_int_equal(emu.violations, 1);
    assert_int_equal(emu.dev.read(&emu.dev, 10, &b, 1), PORT_OK);
    assert_int_equal(b, 0x30);
    assert_int_equal(emu.dev.erase(&emu.dev, 0), PORT_OK);
    assert_int_equal(emu.dev.read(&emu.dev, 10, &b, 1), PORT_OK);
    assert_int_equal(b, 0xFF);
    assert_int_equal(emu.erase_counts[0], 1);
    assert_int_equal(emu.erase_counts[1], 0);
    emu_flash_free(&emu);
}

static void test_granularity_enforced(void **state)
{
    (void)state;
    static const uint32_t sizes[] = {1, 4, 8, 16};
    for (size_t i = 0; i < 4; i++) {
        emu_flash_t emu;
        uint32_t w = sizes[i];
        assert_int_equal(emu_flash_init(&emu, 4096, 3, w), 0);
        uint8_t buf[32];
        memset(buf, 0, sizeof buf);
        assert_int_equal(emu.dev.program(&emu.dev, w, buf, w), PORT_OK);
        if (w > 1) {
            assert_int_equal(emu.dev.program(&emu.dev, 1, buf, w), PORT_ERR_ARG);
            assert_int_equal(emu.dev.program(&emu.dev, 2 * w, buf, w - 1), PORT_ERR_ARG);
        }
        /* out of range */
        assert_int_equal(emu.dev.program(&emu.dev, 3 * 4096, buf, w), PORT_ERR_ARG);
        emu_flash_free(&emu);
    }
}

static void test_power_cut_inside_program_and_erase(void **state)
{
    (void)state;
    emu_flash_t emu;
    assert_int_equal(emu_flash_init(&emu, 4096, 3, 1), 0);
    uint8_t data[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    emu_flash_cut_after(&emu, 0, 3);
    assert_int_equal(emu.dev.program(&emu.dev, 0, data, 8), PORT_ERR_IO);
    uint8_t got[8];
    assert_int_equal(emu.dev.read(&emu.dev, 0, got, 8), PORT_ERR_IO); /* power is off */
    emu_flash_power_on(&emu);
    assert_int_equal(emu.dev.read(&emu.dev, 0, got, 8), PORT_OK);
    assert_int_equal(got[2], 0x00);
    assert_int_equal(got[3], 0xFF);  /* byte 3 onwards never written */
    emu_flash_cut_after(&emu, 1, 0); /* second op from now: the erase */
    assert_int_equal(emu.dev.program(&emu.dev, 4096 + 4000, data, 8), PORT_OK);
    assert_int_equal(emu.dev.erase(&emu.dev, 1), PORT_ERR_IO);
    emu_flash_power_on(&emu);
    assert_int_equal(emu.dev.read(&emu.dev, 4096 + 4000, got, 1), PORT_OK);
    assert_int_equal(got[0], 0x00);           /* second half kept its old contents */
    assert_int_equal(emu.erase_counts[1], 0); /* an interrupted erase does not count */
    emu_flash_free(&emu);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_erase_and_program_only_clear_bits),
        cmocka_unit_test(test_granularity_enforced),
        cmocka_unit_test(test_power_cut_inside_program_and_erase),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

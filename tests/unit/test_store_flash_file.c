/* port/posix file flash backend: creation, geometry from size, NOR rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "port_posix.h"

static void test_file_backend(void **state)
{
    (void)state;
    char path[] = "/tmp/store_flash_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    unlink(path);
    port_flash_t dev;
    assert_int_equal(port_flash_file_open(&dev, path, 4096, 0, 4, 0), PORT_ERR_IO); /* missing */
    assert_int_equal(port_flash_file_open(&dev, path, 4096, 5, 4, 1), PORT_OK);
    assert_int_equal(dev.sector_count, 5);
    uint8_t b[8];
    assert_int_equal(dev.read(&dev, 4096 * 5 - 8, b, 8), PORT_OK);
    for (int i = 0; i < 8; i++)
        assert_int_equal(b[i], 0xFF);
    uint8_t v[4] = {0x0F, 0x00, 0xAA, 0x55};
    assert_int_equal(dev.program(&dev, 4100, v, 4), PORT_OK);
    assert_int_equal(dev.program(&dev, 4101, v, 4), PORT_ERR_ARG); /* unaligned */
    uint8_t w[4] = {0xFF, 0xFF, 0xFF, 0xFF};
    assert_int_equal(dev.program(&dev, 4100, w, 4), PORT_ERR_IO); /* 0 -> 1 refused */
    port_flash_file_close(&dev);
    /* reopen: geometry derived from the size, contents kept */
    assert_int_equal(port_flash_file_open(&dev, path, 4096, 0, 4, 0), PORT_OK);
    assert_int_equal(dev.sector_count, 5);
    assert_int_equal(dev.read(&dev, 4100, b, 4), PORT_OK);
    assert_memory_equal(b, v, 4);
    assert_int_equal(dev.erase(&dev, 1), PORT_OK);
    assert_int_equal(dev.read(&dev, 4100, b, 4), PORT_OK);
    assert_memory_equal(b, w, 4);
    /* two handles on one file (two processes): the cached image of one sees
     * the other's writes after a reload, and the file holds every write */
    port_flash_t other;
    assert_int_equal(port_flash_file_open(&other, path, 4096, 0, 4, 0), PORT_OK);
    uint8_t z[4] = {0x12, 0x34, 0x56, 0x78};
    int changed = -1;
    /* nobody else wrote: a reload says so (the CLI then keeps its mount) */
    assert_int_equal(port_flash_file_reload(&dev, &changed), PORT_OK);
    assert_int_equal(changed, 0);
    assert_int_equal(dev.program(&dev, 12288, z, 4), PORT_OK); /* its own write */
    assert_int_equal(port_flash_file_reload(&dev, &changed), PORT_OK);
    assert_int_equal(changed, 0);
    assert_int_equal(other.program(&other, 8192, z, 4), PORT_OK);
    assert_int_equal(dev.read(&dev, 8192, b, 4), PORT_OK);
    assert_memory_equal(b, w, 4); /* still the cached (erased) bytes */
    assert_int_equal(port_flash_file_reload(&dev, &changed), PORT_OK);
    assert_int_equal(changed, 1); /* the other handle's write is seen */
    assert_int_equal(dev.read(&dev, 8192, b, 4), PORT_OK);
    assert_memory_equal(b, z, 4);
    /* an erase by the other handle is a change too, even at the last byte */
    assert_int_equal(other.program(&other, 4096 * 5 - 4, z, 4), PORT_OK);
    assert_int_equal(port_flash_file_reload(&dev, &changed), PORT_OK);
    assert_int_equal(changed, 1);
    assert_int_equal(other.erase(&other, 4), PORT_OK);
    assert_int_equal(port_flash_file_reload(&dev, &changed), PORT_OK);
    assert_int_equal(changed, 1);
    assert_int_equal(port_flash_file_reload(&dev, &changed), PORT_OK);
    assert_int_equal(changed, 0);
    port_flash_file_close(&other);
    port_flash_file_close(&dev);
    /* a size that is not a multiple of the sector size is refused */
    FILE *f = fopen(path, "ab");
    assert_non_null(f);
    fputc(0, f);
    fclose(f);
    assert_int_equal(port_flash_file_open(&dev, path, 4096, 0, 4, 0), PORT_ERR_ARG);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_file_backend)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}

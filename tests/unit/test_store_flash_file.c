/* port/posix file flash backend: creation, geometry from size, NOR rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
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
    /* an erase by the other handle is a change too, even at the last byte
     * (each handle reloads when it takes the lock, before it writes) */
    assert_int_equal(port_flash_file_reload(&other, NULL), PORT_OK);
    assert_int_equal(other.program(&other, 4096 * 5 - 4, z, 4), PORT_OK);
    assert_int_equal(port_flash_file_reload(&dev, &changed), PORT_OK);
    assert_int_equal(changed, 1);
    assert_int_equal(port_flash_file_reload(&other, NULL), PORT_OK);
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
    char gen[64];
    snprintf(gen, sizeof gen, "%s.gen", path);
    unlink(gen);
}

/* PATH.gen as a number (0 when missing). */
static uint64_t gen_value(const char *path)
{
    char gp[64];
    uint8_t b[8] = {0};
    snprintf(gp, sizeof gp, "%s.gen", path);
    FILE *f = fopen(gp, "rb");
    if (!f)
        return 0;
    size_t n = fread(b, 1, sizeof b, f);
    fclose(f);
    assert_true(n == 0 || n == sizeof b);
    uint64_t g = 0;
    for (int i = 7; i >= 0; i--)
        g = (g << 8) | b[i];
    return g;
}

static void make_image(char *path, port_flash_t *dev, port_flash_t *other)
{
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    unlink(path);
    assert_int_equal(port_flash_file_open(dev, path, 4096, 4, 4, 1), PORT_OK);
    assert_int_equal(port_flash_file_open(other, path, 4096, 0, 4, 0), PORT_OK);
}

static void drop_image(const char *path, port_flash_t *dev, port_flash_t *other)
{
    char gp[64];
    port_flash_file_close(other);
    port_flash_file_close(dev);
    snprintf(gp, sizeof gp, "%s.gen", path);
    unlink(path);
    rmdir(gp);
    unlink(gp);
}

/* Writers announce once per locked session: a reload after another
 * handle's session sees it, one after none reads nothing new. */
/* Read-only: reads as usual; program and erase fail and change nothing,
 * in RAM or in the file; a missing file or a create is refused. */
static void test_read_only(void **state)
{
    (void)state;
    char path[] = "/tmp/store_flash_ro_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    unlink(path);
    port_flash_t dev;
    uint8_t b[8] = {0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0}, got[8];
    assert_int_equal(port_flash_file_open_ro(&dev, path, 4096, 4), PORT_ERR_IO); /* missing */
    assert_int_equal(port_flash_file_open(&dev, path, 4096, 2, 4, 1), PORT_OK);
    assert_int_equal(dev.program(&dev, 0, b, sizeof b), PORT_OK);
    port_flash_file_close(&dev);
    assert_int_equal(chmod(path, 0400), 0);
    assert_int_equal(port_flash_file_open_ro(&dev, path, 4096, 4), PORT_OK);
    assert_int_equal(dev.sector_count, 2);
    assert_int_equal(dev.read(&dev, 0, got, sizeof got), PORT_OK);
    assert_memory_equal(got, b, sizeof b);
    uint8_t zero[8] = {0};
    assert_int_equal(dev.program(&dev, 0, zero, sizeof zero), PORT_ERR_IO);
    assert_int_equal(dev.erase(&dev, 0), PORT_ERR_IO);
    assert_int_equal(dev.read(&dev, 0, got, sizeof got), PORT_OK);
    assert_memory_equal(got, b, sizeof b); /* not even the RAM copy changed */
    port_flash_file_close(&dev);
    assert_int_equal(port_flash_file_open(&dev, path, 4096, 0, 4, 0), PORT_OK);
    assert_int_equal(dev.read(&dev, 0, got, sizeof got), PORT_OK);
    assert_memory_equal(got, b, sizeof b); /* nor the file */
    port_flash_file_close(&dev);
    unlink(path);
    char gen[sizeof path + 4];
    snprintf(gen, sizeof gen, "%s.gen", path);
    unlink(gen);
}

static void test_generation_counts_sessions(void **state)
{
    (void)state;
    char path[] = "/tmp/store_gen_XXXXXX";
    port_flash_t dev, other;
    make_image(path, &dev, &other);
    uint64_t g0 = gen_value(path);
    assert_true(g0 >= 1); /* the creation was a write */
    uint8_t z[4] = {0x12, 0x34, 0x56, 0x78}, b[4];
    int changed = -1;
    /* three writes in one session of the other handle: one announcement */
    assert_int_equal(port_flash_file_reload(&other, NULL), PORT_OK);
    for (uint32_t a = 0; a < 12; a += 4)
        assert_int_equal(other.program(&other, 4096 + a, z, 4), PORT_OK);
    assert_int_equal(port_flash_file_release(&other), PORT_OK);
    assert_true(gen_value(path) == g0 + 1);
    assert_int_equal(port_flash_file_reload(&dev, &changed), PORT_OK);
    assert_int_equal(changed, 1);
    assert_int_equal(dev.read(&dev, 4104, b, 4), PORT_OK);
    assert_memory_equal(b, z, 4);
    /* nothing since: neither handle sees a change */
    assert_int_equal(port_flash_file_reload(&dev, &changed), PORT_OK);
    assert_int_equal(changed, 0);
    assert_int_equal(port_flash_file_reload(&other, &changed), PORT_OK);
    assert_int_equal(changed, 0);
    /* its own session is no change to a handle; the other sees it */
    assert_int_equal(dev.erase(&dev, 1), PORT_OK);
    assert_int_equal(port_flash_file_release(&dev), PORT_OK);
    assert_true(gen_value(path) == g0 + 2);
    assert_int_equal(port_flash_file_reload(&dev, &changed), PORT_OK);
    assert_int_equal(changed, 0);
    assert_int_equal(port_flash_file_reload(&other, &changed), PORT_OK);
    assert_int_equal(changed, 1);
    assert_int_equal(other.read(&other, 4104, b, 4), PORT_OK);
    assert_int_equal(b[0], 0xFF);
    drop_image(path, &dev, &other);
}

/* Reading leaves no file beside the image: PATH.gen comes with a write. */
static void test_generation_made_by_first_write(void **state)
{
    (void)state;
    char path[] = "/tmp/store_gen_XXXXXX";
    char gp[64];
    port_flash_t dev, other;
    make_image(path, &dev, &other);
    snprintf(gp, sizeof gp, "%s.gen", path);
    port_flash_file_close(&other);
    port_flash_file_close(&dev);
    assert_int_equal(unlink(gp), 0);
    assert_int_equal(port_flash_file_open(&dev, path, 4096, 0, 4, 0), PORT_OK);
    uint8_t b[4];
    int changed = -1;
    assert_int_equal(dev.read(&dev, 0, b, 4), PORT_OK);
    assert_int_equal(port_flash_file_reload(&dev, &changed), PORT_OK);
    assert_int_equal(port_flash_file_release(&dev), PORT_OK);
    assert_int_equal(access(gp, F_OK), -1);
    uint8_t z[4] = {0, 1, 2, 3};
    assert_int_equal(dev.program(&dev, 4096, z, 4), PORT_OK);
    assert_int_equal(access(gp, F_OK), 0);
    assert_true(gen_value(path) == 1);
    port_flash_file_close(&dev);
    unlink(path);
    unlink(gp);
}

/* A writer that does not announce (a tool writing the file directly) is
 * still seen: the file's mtime/ctime moved. */
static void test_generation_stat_catches_foreign_writer(void **state)
{
    (void)state;
    char path[] = "/tmp/store_gen_XXXXXX";
    port_flash_t dev, other;
    make_image(path, &dev, &other);
    int changed = -1;
    assert_int_equal(port_flash_file_reload(&dev, &changed), PORT_OK);
    usleep(20000); /* past the filesystem's timestamp granularity */
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    uint8_t zero = 0;
    assert_int_equal(pwrite(fd, &zero, 1, 8192), 1);
    close(fd);
    assert_int_equal(port_flash_file_reload(&dev, &changed), PORT_OK);
    assert_int_equal(changed, 1);
    uint8_t b;
    assert_int_equal(dev.read(&dev, 8192, &b, 1), PORT_OK);
    assert_int_equal(b, 0);
    drop_image(path, &dev, &other);
}

/* Without a usable PATH.gen (here a directory) writes work and every
 * reload compares the bytes. */
static void test_generation_unusable_falls_back_to_compare(void **state)
{
    (void)state;
    char path[] = "/tmp/store_gen_XXXXXX";
    char gp[64];
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    unlink(path);
    snprintf(gp, sizeof gp, "%s.gen", path);
    assert_int_equal(mkdir(gp, 0700), 0);
    port_flash_t dev, other;
    assert_int_equal(port_flash_file_open(&dev, path, 4096, 4, 4, 1), PORT_OK);
    assert_int_equal(port_flash_file_open(&other, path, 4096, 0, 4, 0), PORT_OK);
    uint8_t z[4] = {1, 2, 3, 4};
    int changed = -1;
    assert_int_equal(port_flash_file_reload(&dev, &changed), PORT_OK);
    assert_int_equal(changed, 0);
    assert_int_equal(port_flash_file_reload(&other, NULL), PORT_OK);
    assert_int_equal(other.program(&other, 0, z, 4), PORT_OK);
    assert_int_equal(port_flash_file_release(&other), PORT_OK);
    assert_int_equal(port_flash_file_reload(&dev, &changed), PORT_OK);
    assert_int_equal(changed, 1);
    assert_int_equal(port_flash_file_reload(&dev, &changed), PORT_OK);
    assert_int_equal(changed, 0);
    assert_int_equal(port_flash_file_release(NULL), PORT_ERR_ARG);
    assert_int_equal(port_flash_file_reload(NULL, &changed), PORT_ERR_ARG);
    drop_image(path, &dev, &other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file_backend),
        cmocka_unit_test(test_read_only),
        cmocka_unit_test(test_generation_counts_sessions),
        cmocka_unit_test(test_generation_stat_catches_foreign_writer),
        cmocka_unit_test(test_generation_made_by_first_write),
        cmocka_unit_test(test_generation_unusable_falls_back_to_compare),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

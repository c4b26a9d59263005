/* Unit tests of the POSIX port (port/posix): the contract in port/port.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "port.h"
#include "port_heap.h"
#include "port_posix.h"

static void test_monotonic_never_goes_back(void **state)
{
    uint64_t a, b;
    int i;
    (void)state;
    a = port_monotonic_ms();
    for (i = 0; i < 1000; i++) {
        b = port_monotonic_ms();
        assert_true(b >= a);
        a = b;
    }
    usleep(20000);
    assert_true(port_monotonic_ms() >= a + 15);
}

static void test_wall_clock_is_set_and_plausible(void **state)
{
    int64_t t = 0;
    (void)state;
    assert_int_equal(port_wall_clock(&t), PORT_OK);
    assert_true(t > 1577836800); /* after 2020 */
    assert_int_equal(port_wall_clock(NULL), PORT_ERR_ARG);
}

static void test_random_differs_between_calls(void **state)
{
    unsigned char a[32], b[32], zero[32] = {0};
    (void)state;
    assert_int_equal(port_random(a, sizeof(a)), PORT_OK);
    assert_int_equal(port_random(b, sizeof(b)), PORT_OK);
    assert_memory_not_equal(a, b, sizeof(a));
    assert_memory_not_equal(a, zero, sizeof(a));
}

static void test_heap_counts_peak_and_release(void **state)
{
    size_t base, now, peak;
    void *p, *q;
    (void)state;
    port_heap_stats(&base, NULL);
    port_heap_reset_peak();
    p = port_malloc(1000);
    q = port_calloc(10, 100);
    assert_non_null(p);
    assert_non_null(q);
    assert_int_equal(((unsigned char *)q)[999], 0);
    port_heap_stats(&now, &peak);
    assert_int_equal(now, base + 2000);
    port_free(p);
    port_free(q);
    port_heap_stats(&now, &peak);
    assert_int_equal(now, base);
    assert_int_equal(peak, base + 2000);
    assert_null(port_calloc(SIZE_MAX / 2, 4)); /* overflow refused */
}

static int listen_loopback(uint16_t *port)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 4), 0);
    getsockname(fd, (struct sockaddr *)&sa, &len);
    *port = ntohs(sa.sin_port);
    return fd;
}

static void test_tcp_roundtrip_timeout_and_close(void **state)
{
    port_tcp_t c;
    uint16_t port;
    int lfd, sfd, n;
    char buf[16];
    (void)state;
    lfd = listen_loopback(&port);
    memset(&c, 0, sizeof(c));
    assert_int_equal(port_tcp_connect(&c, "127.0.0.1", port, 1000), PORT_OK);
    sfd = accept(lfd, NULL, NULL);
    assert_true(sfd >= 0);
    assert_int_equal(port_tcp_send(&c, "ping", 4, 1000), 4);
    assert_int_equal(read(sfd, buf, sizeof(buf)), 4);
    assert_memory_equal(buf, "ping", 4);
    /* Nothing to read: must time out, not hang. */
    assert_int_equal(port_tcp_recv(&c, buf, sizeof(buf), 50), PORT_ERR_TIMEOUT);
    assert_int_equal(write(sfd, "pong", 4), 4);
    n = port_tcp_recv(&c, buf, sizeof(buf), 1000);
    assert_int_equal(n, 4);
    close(sfd);
    assert_int_equal(port_tcp_recv(&c, buf, sizeof(buf), 1000), PORT_ERR_CLOSED);
    port_tcp_close(&c);
    port_tcp_close(&c); /* twice is safe */
    close(lfd);
}

static void test_tcp_connect_errors(void **state)
{
    port_tcp_t c;
    uint16_t port;
    int lfd;
    (void)state;
    lfd = listen_loopback(&port);
    close(lfd); /* now nothing listens there */
    memset(&c, 0, sizeof(c));
    assert_int_equal(port_tcp_connect(&c, "127.0.0.1", port, 1000), PORT_ERR_CONNECT);
    assert_int_equal(port_tcp_connect(&c, "no-such-host.invalid", 80, 1000), PORT_ERR_DNS);
    assert_int_equal(port_tcp_send(&c, "x", 1, 10), PORT_ERR_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_monotonic_never_goes_back),
        cmocka_unit_test(test_wall_clock_is_set_and_plausible),
        cmocka_unit_test(test_random_differs_between_calls),
        cmocka_unit_test(test_heap_counts_peak_and_release),
        cmocka_unit_test(test_tcp_roundtrip_timeout_and_close),
        cmocka_unit_test(test_tcp_connect_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

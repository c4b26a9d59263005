/* The port's TCP transport on lwIP over the board's LAN9118, under QEMU
 * user networking with restrict=on: the host's test (test_target_net)
 * forwards 10.0.2.100:7 to an echo server on its loopback and nothing else.
 * TAP lines over semihosting; the exit status says whether all passed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lan9118.h"
#include "lwip/tcp.h"
#include "netif_lan9118.h"
#include "port.h"
#include "port_cortexm.h"
#include "port_lwip.h"
#include "semihost.h"

static int n, failed;

static void ok(int cond, const char *what)
{
    n++;
    failed += !cond;
    printf("%s %d - %s\n", cond ? "ok" : "not ok", n, what);
}

static void echo_round_trip(void)
{
    static const char msg[] = "hello through lwIP and a LAN9118";
    char got[64];
    size_t have = 0;
    port_tcp_t c = {0};
    ok(port_tcp_connect(&c, "echo.test", 7, 5000) == PORT_OK, "connect to echo.test:7");
    ok(port_tcp_recv(&c, got, sizeof got, 0) == PORT_ERR_TIMEOUT,
       "a zero-timeout receive with nothing pending does not block");
    ok(port_tcp_send(&c, msg, sizeof msg - 1, 5000) == (int)(sizeof msg - 1), "send");
    while (have < sizeof msg - 1) {
        int r = port_tcp_recv(&c, got + have, sizeof got - have, 5000);
        if (r <= 0)
            break;
        have += (size_t)r;
    }
    ok(have == sizeof msg - 1 && memcmp(got, msg, have) == 0, "the echo comes back whole");
    /* the echo server closes after "bye" */
    ok(port_tcp_send(&c, "bye", 3, 5000) == 3, "send bye");
    int r;
    do
        r = port_tcp_recv(&c, got, sizeof got, 5000);
    while (r > 0);
    ok(r == PORT_ERR_CLOSED, "the peer's close reads as closed");
    port_tcp_close(&c);
    port_tcp_close(&c); /* twice is safe */
}

static void hosts_bad(const char *text, port_status_t want, unsigned want_line, const char *what)
{
    unsigned line = 0;
    port_status_t rc = port_lwip_add_hosts(text, strlen(text), &line);
    printf("# hosts: %s -> %s, line %u\n", what, port_status_str(rc), line);
    ok(rc == want && line == want_line, what);
}

/* The host list holds one name (MEMP_NUM_LOCALHOSTLIST): the echo server's. */
static void hosts_file(void)
{
    static const char good[] = "# the test's names\n\n  10.0.2.100\techo.test  # the forward";
    unsigned line = 0;
    ok(port_lwip_add_hosts(good, sizeof good - 1, &line) == PORT_OK && line == 3,
       "a hosts file: comments, a blank line, tabs, no final newline");
    hosts_bad("# ok\n10.0.2.300 x.test\n", PORT_ERR_ARG, 2,
              "a bad address is refused with its line");
    hosts_bad("\n\n10.0.2.9\n", PORT_ERR_ARG, 3, "an address without a name is refused");
    char long_name[9 + 65 + 1] = "10.0.2.9 ";
    memset(long_name + 9, 'n', 65);
    long_name[sizeof long_name - 1] = '\0';
    hosts_bad(long_name, PORT_ERR_ARG, 1, "a name over 64 characters is refused");
    hosts_bad("10.0.2.9 x.test\n", PORT_ERR_NOMEM, 1, "a name past the list's room says so");
    char big[200];
    memset(big, ' ', sizeof big);
    big[sizeof big - 1] = '\0';
    hosts_bad(big, PORT_ERR_ARG, 1, "a line over 127 bytes is refused");
}

/* The guest's own listener accepts and resets at once (lwIP loops packets
 * to its own address back in the test build): the transport must say
 * "reset", on receive and on send, not "closed" or "timeout". */
static err_t accept_and_abort(void *arg, struct tcp_pcb *pcb, err_t err)
{
    (void)arg;
    (void)err;
    tcp_abort(pcb);
    return ERR_ABRT;
}

static void reset_by_peer(void)
{
    struct tcp_pcb *pcb = tcp_new();
    struct tcp_pcb *listener = NULL;
    char got[8];
    if (pcb != NULL && tcp_bind(pcb, IP_ADDR_ANY, 9000) == ERR_OK)
        listener = tcp_listen(pcb);
    ok(listener != NULL, "a listener on the guest itself");
    if (listener == NULL)
        return;
    tcp_accept(listener, accept_and_abort);
    port_tcp_t c = {0};
    ok(port_tcp_connect(&c, "10.0.2.15", 9000, 2000) == PORT_OK, "connect to it");
    ok(port_tcp_recv(&c, got, sizeof got, 2000) == PORT_ERR_RESET, "its reset reads as reset");
    ok(port_tcp_send(&c, "x", 1, 2000) == PORT_ERR_RESET, "a send after the reset says reset");
    port_tcp_close(&c);
    (void)tcp_close(listener);
}

/* An address nobody answers ARP for: the SYN never leaves. */
static void connect_timeout(void)
{
    port_tcp_t c = {0};
    uint64_t t0 = port_monotonic_ms();
    port_status_t rc = port_tcp_connect(&c, "10.0.2.99", 7, 1500);
    uint64_t took = port_monotonic_ms() - t0;
    printf("# connect to 10.0.2.99: %s after %lu ms\n", port_status_str(rc), (unsigned long)took);
    ok(rc == PORT_ERR_TIMEOUT && took >= 1500 && took < 2500,
       "a connect nobody answers times out when asked");
}

/* QEMU's alias for the host (10.0.2.2) would reach the host's loopback
 * without restrict=on: the host test listens on the port it names on the
 * command line (-append "probe=PORT") and checks nobody came. */
static void host_unreachable(void)
{
    char cmd[256];
    unsigned long port = 0;
    int len = semihost_cmdline(cmd, sizeof cmd);
    const char *p = len > 0 ? strstr(cmd, "probe=") : NULL;
    if (p != NULL)
        port = strtoul(p + 6, NULL, 10);
    ok(port > 0 && port < 65536, "the host names a loopback port to probe");
    port_tcp_t c = {0};
    port_status_t rc = port_tcp_connect(&c, "10.0.2.2", (uint16_t)port, 1500);
    printf("# the host's loopback through 10.0.2.2:%lu: %s\n", port, port_status_str(rc));
    ok(rc == PORT_ERR_CONNECT || rc == PORT_ERR_TIMEOUT,
       "the host's loopback is out of reach (restrict=on)");
    port_tcp_close(&c);
}

int main(void)
{
    static lan9118_t eth;
    static const port_lwip_nic_t nic = {netif_lan9118_init, netif_lan9118_poll, &eth};
    static const port_lwip_addr_t addr = {"10.0.2.15", "255.255.255.0", "10.0.2.2"};
    char ip[16];
    port_cortexm_init();
    ok(lan9118_init(&eth, LAN9118_MPS2_BASE) == PORT_OK, "the LAN9118 answers and resets");
    ok(lan9118_link_up(&eth), "the PHY reports link up");
    ok(port_lwip_start(&nic, &addr, 2000) == PORT_OK, "lwIP up with a static address");
    port_lwip_address(ip);
    ok(strcmp(ip, "10.0.2.15") == 0, "the interface has 10.0.2.15");
    hosts_file();
    port_cortexm_set_net(port_lwip_net());
    echo_round_trip();
    echo_round_trip(); /* a second connection after the first closed */
    reset_by_peer();
    connect_timeout();
    port_tcp_t c = {0};
    ok(port_tcp_connect(&c, "no-such-host.test", 7, 2000) == PORT_ERR_DNS,
       "an unknown name (no DNS server reachable) is a DNS error");
    /* restrict=on lets nothing through but the forward */
    port_status_t rc = port_tcp_connect(&c, "10.0.2.100", 8, 1500);
    printf("# a port nobody forwards: %s\n", port_status_str(rc));
    ok(rc == PORT_ERR_CONNECT, "a port nobody forwards is refused");
    host_unreachable();
    printf("# lan9118: %u frames in, %u out, %u dropped\n", (unsigned)eth.rx_frames,
           (unsigned)eth.tx_frames, (unsigned)eth.rx_dropped);
    printf("1..%d\n", n);
    fflush(stdout);
    return failed ? 1 : 0;
}

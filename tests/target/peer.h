/*
 * The firmware scenario's network: an in-image TLS 1.2 server (mbedTLS,
 * server side built only into the test images) on a memory pipe, plugged in
 * as the port's TCP (port_cortexm_set_net). It answers each API request with
 * the next step of tests/target/recorded.json (responses recorded from
 * cdnsim), after checking that the request carries the recorded action and
 * parameters. It runs on its own stack and its heap is left out of the
 * port's figures, so the scenario measures the agent alone.
 */
#ifndef CDNAGENT_TARGET_PEER_H
#define CDNAGENT_TARGET_PEER_H

#include <stdbool.h>
#include <stddef.h>

/* Load the recording and the server certificate; plug the peer in.
 * Returns 0, or -1 with a message printed. */
int peer_start(void);
void peer_stop(void);

/* Answer step (0-based) with "Connection: close", as servers do with idle
 * or long-lived connections: the next call needs a new TLS handshake. */
void peer_close_after(unsigned step);

/* Steps answered, steps in the recording, requests that did not match. */
unsigned peer_answered(void);
unsigned peer_steps(void);
unsigned peer_mismatches(void);
unsigned peer_handshakes(void);
/* Action of the last request answered ("" before the first). */
const char *peer_last_action(void);
/* The actions answered since the last take, joined by '+' (a batch and its
 * read-back are one step), into out. */
const char *peer_take_actions(char *out, size_t cap);

#endif

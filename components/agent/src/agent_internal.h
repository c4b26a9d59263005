/* agent: what agent.c and agent_settings.c share (not public). */
#ifndef CDNAGENT_AGENT_INTERNAL_H
#define CDNAGENT_AGENT_INTERNAL_H

#include "agent.h"

/* Inside an open store transaction: seal plain under the device key with
 * the store key as additional data, and put it. */
agent_status_t agent_txn_put_sealed(store_t *st, const char *key, const void *plain, size_t len);
/* Read and open a sealed value: heap copy (port_malloc), NUL-terminated;
 * the caller wipes and frees it. */
agent_status_t agent_get_sealed(store_t *st, const char *key, char **plain, size_t *len);
/* Wipe and free a heap secret. */
void agent_free_secret(char *p, size_t len);

/* A whole store value as a heap copy (port_malloc, NUL-terminated after len
 * bytes). AGENT_ERR_NOT_FOUND, AGENT_ERR_STORE. */
agent_status_t agent_get_value(store_t *st, const char *key, uint8_t **out, size_t *len);

#endif

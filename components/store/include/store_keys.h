/*
 * store_keys.h — the one registry of the store's key namespace.
 *
 * The store treats keys as opaque bytes; the components above it share one
 * flat namespace in it. Every key written starts with one byte, its prefix,
 * and every prefix belongs to exactly one component: the table below is
 * the only place a prefix is declared, and tests/unit/test_store_keys.c
 * checks that the prefixes are distinct and that every key the owners
 * actually write starts with a prefix of its own owner.
 *
 * Keys compare byte for byte: 'C' (the desired certificate) and 'c' (the
 * delivered one) are different prefixes. They differ only by case because
 * images in the field already hold them; a new prefix should not be a case
 * variant of another (the test refuses any new one that is).
 *
 * To add a prefix: a row here (byte, owner component, what the keys hold),
 * then use the macro, never the literal.
 */
#ifndef CDNAGENT_STORE_KEYS_H
#define CDNAGENT_STORE_KEYS_H

#ifdef __cplusplus
extern "C" {
#endif

/* X(macro name, prefix byte, owner component, what the keys hold) */
#define STORE_KEY_REGISTRY(X)                                                                 \
    X(STORE_KEY_DOMAIN, 'D', "agent", "D<ss>: the domain name of slot ss")                    \
    X(STORE_KEY_HEADER, 'H', "agent", "H<ss><hash8>: a header's desired and delivered state") \
    X(STORE_KEY_CERT, 'C', "agent", "C<ss>: the desired certificate of slot ss")              \
    X(STORE_KEY_CERT_KEY, 'K', "agent", "K<ss>: its private key, sealed by vault")            \
    X(STORE_KEY_CERT_DELIVERED, 'c', "agent", "c<ss>: the certificate the CDN holds")         \
    X(STORE_KEY_CERT_WATCH, 'W', "agent", "W<ss>: the PEM files a daemon renews it from")     \
    X(STORE_KEY_SETTINGS, 'G', "agent", "G...: provisioned settings (endpoint, keys, CA)")    \
    X(STORE_KEY_QUEUE, 'Q', "queue", "Q<target>: a retry queue entry; target is an H or C key")

#define STORE_KEY_ENUM_ROW_(name, byte, owner, what) name = byte,
enum { STORE_KEY_REGISTRY(STORE_KEY_ENUM_ROW_) };
#undef STORE_KEY_ENUM_ROW_

#ifdef __cplusplus
}
#endif

#endif /* CDNAGENT_STORE_KEYS_H */

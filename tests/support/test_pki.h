/*
 * test_pki.h — the throwaway certificate the agent tests deliver: a
 * self-signed P-256 certificate for cdn.example.com, valid from
 * 2026-11-29 to 2046, and its key. Generated with openssl for the tests;
 * it protects nothing. Header-only data, so the tests that run on the
 * target (make test-target) take it as they are.
 */
#ifndef CDNAGENT_TEST_PKI_H
#define CDNAGENT_TEST_PKI_H

#define TEST_PKI_DOMAIN "cdn.example.com"
/* 2026-11-29T15:00:00Z: inside the certificate's validity */
#define TEST_PKI_NOW_UTC 1795964400

static const char TEST_CERT_PEM[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBpTCCAUugAwIBAgIUSWierc4+5ZWp4FsayXvfL4pRuNUwCgYIKoZIzj0EAwIw\n"
    "GjEYMBYGA1UEAwwPY2RuLmV4YW1wbGUuY29tMB4XDTI2MTEyOTE0NTQwN1oXDTQ2\n"
    "MTEyNDE0NTQwN1owGjEYMBYGA1UEAwwPY2RuLmV4YW1wbGUuY29tMFkwEwYHKoZI\n"
    "zj0CAQYIKoZIzj0DAQcDQgAE/QWB7X970J6dSmP7DzSaWrc+Ph0h1kq2x0hZwPS3\n"
    "Z3T2EDSkotKpfFNWwz3/Cx6HSYijxx12uF96R7Tq2C7nfKNvMG0wHQYDVR0OBBYE\n"
    "FCH1RCDVVPtpKD7oUtowZzubCz4+MB8GA1UdIwQYMBaAFCH1RCDVVPtpKD7oUtow\n"
    "ZzubCz4+MA8GA1UdEwEB/wQFMAMBAf8wGgYDVR0RBBMwEYIPY2RuLmV4YW1wbGUu\n"
    "Y29tMAoGCCqGSM49BAMCA0gAMEUCIQCFfy6RwxXzUWqOSIlbz+xb/f3d9trQgFRX\n"
    "o/r7qHSmyQIgYkNON82leu3IHMic72Lgej2kfqdyc1TXjS12B5zLpN4=\n"
    "-----END CERTIFICATE-----\n";
static const char TEST_KEY_PEM[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg7rAC6ZUcHl6AuEs+\n"
    "L4yj1DsvHdWVV9aEG52vVpdau3mhRANCAAT9BYHtf3vQnp1KY/sPNJpatz4+HSHW\n"
    "SrbHSFnA9LdndPYQNKSi0ql8U1bDPf8LHodJiKPHHXa4X3pHtOrYLud8\n"
    "-----END PRIVATE KEY-----\n";

#endif

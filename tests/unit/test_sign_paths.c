/* test_sign_paths.c — the paths of components/sign that test_sign.c leaves
 * alone: every argument check of the builder and of the two low-level
 * signers (each must fail with its documented status and leave the output
 * alone), every byte class of the percent-encoder, name ordering with
 * common prefixes and equal names, empty values, size-query edges, an unset
 * or out-of-range wall clock, a failing entropy source, and a failure of
 * every mbedTLS md call the signer makes (nothing half-built is returned
 * and LeakSanitizer sees every md context freed).
 *
 * Signatures are checked against requests captured from the OFFICIAL SDKs
 * (tests/integration/sdk/capture.js: @alicloud/cdn20180510 5.0.0 for V3,
 * @alicloud/pop-core 1.8.0 for V1) with the same nonce, date and host: the
 * V3 Authorization header and the V1 query/body must be byte-identical.
 *
 * Fault injection: this file defines getrandom() (port_random's source in
 * port/posix) and the mbedtls_md_* functions sign.c calls; both pass
 * through to the real ones (dlsym RTLD_NEXT / the syscall) unless a test
 * arms a failure, so the error paths are reached without touching the
 * component. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>

#include "mbedtls/md.h"
#include "port.h"
#include "sign.h"
#include "test_request.h"
#include "test_interpose.h"

/* clang-format off */
#define P(n, v) {n, sizeof(n) - 1, v, sizeof(v) - 1}
/* clang-format on */

/* ------------------------------------------------------------------ faults */

static int random_errno;       /* non-zero: getrandom fails with it */
static long md_fail_at = -1;   /* index of the md call to fail; -1: none */
static unsigned long md_calls; /* md calls since md_arm() */

ssize_t getrandom(void *buf, size_t len, unsigned int flags)
{
    if (random_errno) {
        errno = random_errno;
        return -1;
    }
    return (ssize_t)syscall(SYS_getrandom, buf, len, flags);
}

static void md_arm(long nth)
{
    md_fail_at = nth;
    md_calls = 0;
}

/* Every wrapped md call counts; the armed one fails. */
static bool md_count(void)
{
    bool hit = md_fail_at >= 0 && md_calls == (unsigned long)md_fail_at;
    md_calls++;
    return hit;
}

int mbedtls_md_setup(mbedtls_md_context_t *ctx, const mbedtls_md_info_t *info, int hmac)
{
    static int (*real)(mbedtls_md_context_t *, const mbedtls_md_info_t *, int);
    REAL(real, "mbedtls_md_setup");
    if (md_count())
        return MBEDTLS_ERR_MD_ALLOC_FAILED;
    return real(ctx, info, hmac);
}

int mbedtls_md_starts(mbedtls_md_context_t *ctx)
{
    static int (*real)(mbedtls_md_context_t *);
    REAL(real, "mbedtls_md_starts");
    if (md_count())
        return MBEDTLS_ERR_MD_HW_ACCEL_FAILED;
    return real(ctx);
}

int mbedtls_md_update(mbedtls_md_context_t *ctx, const unsigned char *in, size_t n)
{
    static int (*real)(mbedtls_md_context_t *, const unsigned char *, size_t);
    REAL(real, "mbedtls_md_update");
    if (md_count())
        return MBEDTLS_ERR_MD_HW_ACCEL_FAILED;
    return real(ctx, in, n);
}

int mbedtls_md_finish(mbedtls_md_context_t *ctx, unsigned char *out)
{
    static int (*real)(mbedtls_md_context_t *, unsigned char *);
    REAL(real, "mbedtls_md_finish");
    if (md_count())
        return MBEDTLS_ERR_MD_HW_ACCEL_FAILED;
    return real(ctx, out);
}

int mbedtls_md(const mbedtls_md_info_t *info, const unsigned char *in, size_t n, unsigned char *out)
{
    static int (*real)(const mbedtls_md_info_t *, const unsigned char *, size_t, unsigned char *);
    REAL(real, "mbedtls_md");
    if (md_count())
        return MBEDTLS_ERR_MD_HW_ACCEL_FAILED;
    return real(info, in, n, out);
}

int mbedtls_md_hmac_starts(mbedtls_md_context_t *ctx, const unsigned char *key, size_t n)
{
    static int (*real)(mbedtls_md_context_t *, const unsigned char *, size_t);
    REAL(real, "mbedtls_md_hmac_starts");
    if (md_count())
        return MBEDTLS_ERR_MD_HW_ACCEL_FAILED;
    return real(ctx, key, n);
}

int mbedtls_md_hmac_update(mbedtls_md_context_t *ctx, const unsigned char *in, size_t n)
{
    static int (*real)(mbedtls_md_context_t *, const unsigned char *, size_t);
    REAL(real, "mbedtls_md_hmac_update");
    if (md_count())
        return MBEDTLS_ERR_MD_HW_ACCEL_FAILED;
    return real(ctx, in, n);
}

int mbedtls_md_hmac_finish(mbedtls_md_context_t *ctx, unsigned char *out)
{
    static int (*real)(mbedtls_md_context_t *, unsigned char *);
    REAL(real, "mbedtls_md_hmac_finish");
    if (md_count())
        return MBEDTLS_ERR_MD_HW_ACCEL_FAILED;
    return real(ctx, out);
}

int mbedtls_md_hmac(const mbedtls_md_info_t *info, const unsigned char *key, size_t keylen,
                    const unsigned char *in, size_t n, unsigned char *out)
{
    static int (*real)(const mbedtls_md_info_t *, const unsigned char *, size_t,
                       const unsigned char *, size_t, unsigned char *);
    REAL(real, "mbedtls_md_hmac");
    if (md_count())
        return MBEDTLS_ERR_MD_HW_ACCEL_FAILED;
    return real(info, key, keylen, in, n, out);
}

static int teardown(void **state)
{
    (void)state;
    md_arm(-1);
    random_errno = 0;
    unsetenv("CDNAGENT_CLOCK_SKEW_S");
    return 0;
}

/* ------------------------------------------------------- shared fixtures */

static char out_buf[8192];

/* Fill the output with a sentinel so "left alone" can be checked. */
static void poison(void)
{
    memset(out_buf, 0x5a, sizeof out_buf);
}

static void assert_untouched(size_t n)
{
    for (size_t i = 0; i < n; i++)
        assert_int_equal((unsigned char)out_buf[i], 0x5a);
}

/* The value the SDK captures used: every ASCII byte but NUL (0x01..0x7f). */
static char ascii_all[127];
static const char utf8_mix[] = "\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80"; /* é 中 😀 */

static void fill_sdk_params(sign_param_t p[6])
{
    for (int i = 0; i < 127; i++)
        ascii_all[i] = (char)(i + 1);
    p[0] = (sign_param_t){"Value", 5, ascii_all, sizeof ascii_all};
    p[1] = (sign_param_t){"Key", 3, utf8_mix, sizeof utf8_mix - 1};
    p[2] = (sign_param_t){"KeyA", 4, "x", 1};
    p[3] = (sign_param_t){"AB", 2, "1", 1};
    p[4] = (sign_param_t){"Ab", 2, "2", 1};
    p[5] = (sign_param_t){"Empty", 5, "", 0};
}

static sign_credentials_t sdk_ak = {"LTAI5tPathsKey", "paths+secret/=&%", NULL};
static sign_credentials_t sdk_sts = {"LTAI5tPathsKey", "paths+secret/=&%", "STS.Tok+en/==&x~*"};

/* ------------------------------------------------------------ SDK vectors */

/* @alicloud/cdn20180510 5.0.0, POST with STS: every ASCII byte, UTF-8,
 * names sharing a prefix (Key/KeyA) or differing only in case (AB/Ab), an
 * empty value. The SDK sends and signs x-acs-credentials-provider. */
static void test_v3_matches_sdk(void **state)
{
    sign_param_t p[6];
    size_t len = 0;
    /* clang-format off */
    sign_request_t r = {&sdk_sts, "127.0.0.1:33157", "SetReqHeaderConfig", NULL, p, 6,
                        SIGN_METHOD_POST, SIGN_V3, "2026-11-29T17:54:06Z",
                        "fa728e9e7cc7e6061a0557ef205b9501dd49daa4dcccf17975664b7885210d65",
                        "static_sts"};
    /* clang-format on */
    (void)state;
    fill_sdk_params(p);
    assert_int_equal(test_build_request(&r, out_buf, sizeof out_buf, &len), SIGN_OK);
    assert_int_equal(strlen(out_buf), len);
    assert_non_null(
        strstr(out_buf,
               "\r\nAuthorization: ACS3-HMAC-SHA256 Credential=LTAI5tPathsKey,SignedHeaders=host;"
               "x-acs-accesskey-id;x-acs-action;x-acs-content-sha256;x-acs-credentials-provider;"
               "x-acs-date;x-acs-security-token;x-acs-signature-nonce;x-acs-version,Signature="
               "d9469a14c1e026dcd368471336807a4b1cc3f062836aac93386b692c4d9d9786\r\n"));
    assert_non_null(strstr(out_buf, "\r\nx-acs-credentials-provider: static_sts\r\n"));
    assert_non_null(strstr(out_buf, "\r\nx-acs-security-token: STS.Tok+en/==&x~*\r\n"));
    assert_non_null(strstr(out_buf, "\r\nContent-Length: 0\r\n\r\n"));
    /* the query: byte order (AB < Ab < Empty < Key < KeyA < Value), RFC 3986 */
    assert_memory_equal(out_buf,
                        "POST /?AB=1&Ab=2&Empty=&Key=%C3%A9%E4%B8%AD%F0%9F%98%80&KeyA=x&Value=%01%02",
                        74);
    assert_non_null(strstr(out_buf, "%1F%20%21%22%23%24%25%26%27%28%29%2A%2B%2C-.%2F0123456789%3A"
                                    "%3B%3C%3D%3E%3F%40ABCDEFGHIJKLMNOPQRSTUVWXYZ%5B%5C%5D%5E_%60"
                                    "abcdefghijklmnopqrstuvwxyz%7B%7C%7D~%7F HTTP/1.1\r\n"));

    /* the same SDK, AccessKey only, GET, with and without parameters */
    r.credentials = &sdk_ak;
    r.host = "127.0.0.1:34313";
    r.method = SIGN_METHOD_GET;
    r.credentials_provider = "static_ak";
    r.nonce = "70474bb948a18be1e5d6fa40632a006df0a077eca7acc4e2a8b7ad217dc0d62d";
    assert_int_equal(test_build_request(&r, out_buf, sizeof out_buf, &len), SIGN_OK);
    assert_non_null(strstr(out_buf, "SignedHeaders=host;x-acs-action;x-acs-content-sha256;"
                                    "x-acs-credentials-provider;x-acs-date;x-acs-signature-nonce;"
                                    "x-acs-version,Signature=bb6692662204dcba0cb78e9a9c5665410939"
                                    "da330f391d9266d64bd9cd91ef62\r\n"));
    assert_null(strstr(out_buf, "x-acs-security-token"));
    assert_null(strstr(out_buf, "x-acs-accesskey-id"));
    assert_null(strstr(out_buf, "Content-Length"));
    r.action = "DescribeCdnService";
    r.params = NULL;
    r.param_count = 0;
    r.nonce = "ccd91d590d198df7b537bd82b394ec1a5f2467e8e1ecc16030a4df6ae8d156d6";
    assert_int_equal(test_build_request(&r, out_buf, sizeof out_buf, &len), SIGN_OK);
    assert_memory_equal(out_buf, "GET / HTTP/1.1\r\nHost: 127.0.0.1:34313\r\n", 39);
    assert_non_null(strstr(out_buf, ",Signature=9a02daf9c0b81ed5e6a82cc825af064750d9ca19f044ddc2c7ae"
                                    "f5f31d4494a8\r\n\r\n"));
    /* an empty STS token is no token: the same bytes as none */
    {
        static char again[8192];
        sign_credentials_t empty_tok = {"LTAI5tPathsKey", "paths+secret/=&%", ""};
        size_t l2 = 0;
        r.credentials = &empty_tok;
        assert_int_equal(test_build_request(&r, again, sizeof again, &l2), SIGN_OK);
        assert_int_equal(l2, len);
        assert_string_equal(again, out_buf);
    }
}

/* @alicloud/pop-core 1.8.0 with STS: GET query and POST form body
 * byte-identical (Signature last), and without STS or parameters. */
static void test_v1_matches_sdk(void **state)
{
    static const char sdk_get[] =
        "GET /?AB=1&Ab=2&AccessKeyId=LTAI5tPathsKey&Action=SetReqHeaderConfig&Empty=&Format=JSON&Key=%C"
        "3%A9%E4%B8%AD%F0%9F%98%80&KeyA=x&SecurityToken=STS.Tok%2Ben%2F%3D%3D%26x~%2A&SignatureMeth"
        "od=HMAC-SHA1&SignatureNonce=6a9642857682a3f9e292301192628e71&SignatureVersion=1.0&Timestam"
        "p=2026-11-29T17%3A54%3A06Z&Value=%01%02%03%04%05%06%07%08%09%0A%0B%0C%0D%0E%0F%10%11%12%13"
        "%14%15%16%17%18%19%1A%1B%1C%1D%1E%1F%20%21%22%23%24%25%26%27%28%29%2A%2B%2C-.%2F0123456789"
        "%3A%3B%3C%3D%3E%3F%40ABCDEFGHIJKLMNOPQRSTUVWXYZ%5B%5C%5D%5E_%60abcdefghijklmnopqrstuvwxyz%"
        "7B%7C%7D~%7F&Version=2018-05-10&Signature=DWM4ARuJB%2Ba%2BQSi4mqxTHcIpwZk%3D HTTP/1.1\r\n"
        "Host: 127.0.0.1:44525\r\n";
    static const char sdk_post[] =
        "AB=1&Ab=2&AccessKeyId=LTAI5tPathsKey&Action=SetReqHeaderConfig&Empty=&Format=JSON&Key=%C3%"
        "A9%E4%B8%AD%F0%9F%98%80&KeyA=x&SecurityToken=STS.Tok%2Ben%2F%3D%3D%26x~%2A&SignatureMethod"
        "=HMAC-SHA1&SignatureNonce=47724152e4935b722ff7074e3f2f3f35&SignatureVersion=1.0&Timestamp="
        "2026-11-29T17%3A54%3A06Z&Value=%01%02%03%04%05%06%07%08%09%0A%0B%0C%0D%0E%0F%10%11%12%13%1"
        "4%15%16%17%18%19%1A%1B%1C%1D%1E%1F%20%21%22%23%24%25%26%27%28%29%2A%2B%2C-.%2F0123456789%3"
        "A%3B%3C%3D%3E%3F%40ABCDEFGHIJKLMNOPQRSTUVWXYZ%5B%5C%5D%5E_%60abcdefghijklmnopqrstuvwxyz%7B"
        "%7C%7D~%7F&Version=2018-05-10&Signature=rJ766BlqvSDwDMukSlsRg3Yyq3g%3D";
    static const char sdk_post_plain[] =
        "AccessKeyId=LTAI5tPathsKey&Action=DescribeCdnService&Format=JSON&SignatureMethod=HMAC-SHA1"
        "&SignatureNonce=719ee7f3377900a9a468e45fbfc760b9&SignatureVersion=1.0&Timestamp=2026-11-29"
        "T17%3A54%3A06Z&Version=2018-05-10&Signature=ymElQfNoQb%2FQi3WVV6ZC7P8K1cY%3D";
    sign_param_t p[6];
    size_t len = 0;
    /* clang-format off */
    sign_request_t r = {&sdk_sts, "127.0.0.1:44525", "SetReqHeaderConfig", NULL, p, 6,
                        SIGN_METHOD_GET, SIGN_V1, "2026-11-29T17:54:06Z",
                        "6a9642857682a3f9e292301192628e71", NULL};
    /* clang-format on */
    (void)state;
    fill_sdk_params(p);
    assert_int_equal(test_build_request(&r, out_buf, sizeof out_buf, &len), SIGN_OK);
    assert_memory_equal(out_buf, sdk_get, sizeof sdk_get - 1);
    assert_memory_equal(out_buf + len - 4, "\r\n\r\n", 4);

    r.method = SIGN_METHOD_POST;
    r.nonce = "47724152e4935b722ff7074e3f2f3f35";
    assert_int_equal(test_build_request(&r, out_buf, sizeof out_buf, &len), SIGN_OK);
    assert_int_equal(len, strlen(out_buf));
    assert_string_equal(strstr(out_buf, "\r\n\r\n") + 4, sdk_post);
    assert_non_null(strstr(out_buf, "\r\nContent-Length: 610\r\n"));

    r.credentials = &sdk_ak;
    r.action = "DescribeCdnService";
    r.params = NULL;
    r.param_count = 0;
    r.nonce = "719ee7f3377900a9a468e45fbfc760b9";
    assert_int_equal(test_build_request(&r, out_buf, sizeof out_buf, &len), SIGN_OK);
    assert_string_equal(strstr(out_buf, "\r\n\r\n") + 4, sdk_post_plain);
    assert_non_null(strstr(out_buf, "\r\nContent-Length: 256\r\n"));
    assert_null(strstr(out_buf, "SecurityToken"));
    /* an empty STS token is no token here either */
    {
        sign_credentials_t empty_tok = {"LTAI5tPathsKey", "paths+secret/=&%", ""};
        r.credentials = &empty_tok;
        assert_int_equal(test_build_request(&r, out_buf, sizeof out_buf, &len), SIGN_OK);
        assert_string_equal(strstr(out_buf, "\r\n\r\n") + 4, sdk_post_plain);
    }
}

/* ------------------------------------------------------------- encoding */

static void test_percent_encode_every_byte(void **state)
{
    char out[8];
    (void)state;
    for (int c = 0; c < 256; c++) {
        char in = (char)c;
        int keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                   c == '-' || c == '_' || c == '.' || c == '~';
        char want[4];
        if (keep)
            snprintf(want, sizeof want, "%c", c);
        else
            snprintf(want, sizeof want, "%%%02X", c);
        memset(out, 'Q', sizeof out);
        assert_int_equal(sign_percent_encode(&in, 1, out, sizeof out), strlen(want));
        assert_string_equal(out, want);
        assert_int_equal(sign_percent_encode(&in, 1, NULL, 0), strlen(want));
    }
    /* out_size 0: nothing written, not even the NUL; the length still counts */
    memset(out, 'Q', sizeof out);
    assert_int_equal(sign_percent_encode("a/b", 3, out, 0), 5);
    assert_int_equal(out[0], 'Q');
    /* out_size 1: only the NUL */
    assert_int_equal(sign_percent_encode("a/b", 3, out, 1), 5);
    assert_int_equal(out[0], '\0');
    assert_int_equal(out[1], 'Q');
    /* exactly enough for the text and its NUL; one less cuts the last byte */
    assert_int_equal(sign_percent_encode("a/b", 3, out, 6), 5);
    assert_string_equal(out, "a%2Fb");
    assert_int_equal(sign_percent_encode("a/b", 3, out, 5), 5);
    assert_string_equal(out, "a%2F");
    /* empty input */
    memset(out, 'Q', sizeof out);
    assert_int_equal(sign_percent_encode("", 0, out, sizeof out), 0);
    assert_string_equal(out, "");
}

static void test_status_strings(void **state)
{
    (void)state;
    assert_string_equal(sign_status_str(SIGN_OK), "ok");
    assert_string_equal(sign_status_str(SIGN_ERR_ARG), "invalid argument");
    assert_string_equal(sign_status_str(SIGN_ERR_LIMIT), "input exceeds a signer limit");
    assert_string_equal(sign_status_str(SIGN_ERR_TOO_SMALL), "output buffer too small");
    assert_string_equal(sign_status_str(SIGN_ERR_CLOCK), "wall clock not set");
    assert_string_equal(sign_status_str(SIGN_ERR_RANDOM), "no random source for the nonce");
    assert_string_equal(sign_status_str(SIGN_ERR_CRYPTO), "hash failure");
    assert_string_equal(sign_status_str(-99), "unknown error");
    assert_string_equal(sign_status_str(1), "unknown error");
}

/* ------------------------------------------------------------- ordering */

/* Names that are prefixes of each other sort shorter first whatever the
 * input order; equal names keep their input order (a stable sort), in the
 * request line and in the signature alike. */
static void test_name_ordering(void **state)
{
    char s1[SIGN_V1_SIGNATURE_LEN + 1], s2[SIGN_V1_SIGNATURE_LEN + 1];
    char h1[SIGN_V3_SIGNATURE_LEN + 1], h2[SIGN_V3_SIGNATURE_LEN + 1];
    sign_param_t fwd[] = {P("Key", "1"), P("KeyA", "2"), P("Ke", "3")};
    sign_param_t rev[] = {P("KeyA", "2"), P("Ke", "3"), P("Key", "1")};
    sign_param_t hdr[] = {P("host", "h"), P("x-acs-date", "2026-01-01T00:00:00Z")};
    sign_param_t dup[] = {P("A", "1"), P("B", "0"), P("A", "2")};
    sign_param_t pud[] = {P("A", "2"), P("B", "0"), P("A", "1")};
    sign_credentials_t cr = {"id", "secret", NULL};
    size_t len = 0;
    /* clang-format off */
    sign_request_t r = {&cr, "h", "Act", NULL, fwd, 3, SIGN_METHOD_GET, SIGN_V3,
                        "2026-01-01T00:00:00Z", "n", NULL};
    /* clang-format on */
    (void)state;
    assert_int_equal(sign_v1_signature(SIGN_METHOD_GET, fwd, 3, "secret", s1), SIGN_OK);
    assert_int_equal(sign_v1_signature(SIGN_METHOD_GET, rev, 3, "secret", s2), SIGN_OK);
    assert_string_equal(s1, s2);
    assert_int_equal(sign_v3_signature(SIGN_METHOD_GET, fwd, 3, hdr, 2, NULL, 0, "secret", h1, NULL,
                                       0),
                     SIGN_OK);
    assert_int_equal(sign_v3_signature(SIGN_METHOD_GET, rev, 3, hdr, 2, NULL, 0, "secret", h2, NULL,
                                       0),
                     SIGN_OK);
    assert_string_equal(h1, h2);
    assert_int_equal(test_build_request(&r, out_buf, sizeof out_buf, &len), SIGN_OK);
    assert_memory_equal(out_buf, "GET /?Ke=3&Key=1&KeyA=2 HTTP/1.1\r\n", 34);

    /* equal names: stable, and what is sent is what is signed */
    r.params = dup;
    assert_int_equal(test_build_request(&r, out_buf, sizeof out_buf, &len), SIGN_OK);
    assert_memory_equal(out_buf, "GET /?A=1&A=2&B=0 HTTP/1.1\r\n", 28);
    r.params = pud;
    assert_int_equal(test_build_request(&r, out_buf, sizeof out_buf, &len), SIGN_OK);
    assert_memory_equal(out_buf, "GET /?A=2&A=1&B=0 HTTP/1.1\r\n", 28);
    {
        /* V3: the signature of the built request is the one of the query in
         * the order it was sent */
        sign_param_t sent[] = {P("A", "2"), P("A", "1"), P("B", "0")};
        /* clang-format off */
        sign_param_t h[] = {
            P("host", "h"), P("x-acs-action", "Act"),
            P("x-acs-content-sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            P("x-acs-date", "2026-01-01T00:00:00Z"), P("x-acs-signature-nonce", "n"),
            P("x-acs-version", "2018-05-10")};
        /* clang-format on */
        char want[SIGN_V3_SIGNATURE_LEN + 1], sig_a[SIGN_V3_SIGNATURE_LEN + 1];
        char line[128];
        assert_int_equal(sign_v3_signature(SIGN_METHOD_GET, sent, 3, h, 6, NULL, 0, "secret", want,
                                           NULL, 0),
                         SIGN_OK);
        snprintf(line, sizeof line, ",Signature=%s\r\n", want);
        assert_non_null(strstr(out_buf, line));
        /* and the order of equal names does matter to the signature */
        r.params = dup;
        assert_int_equal(test_build_request(&r, out_buf, sizeof out_buf, &len), SIGN_OK);
        memcpy(sig_a, strstr(out_buf, ",Signature=") + 11, SIGN_V3_SIGNATURE_LEN);
        sig_a[SIGN_V3_SIGNATURE_LEN] = '\0';
        assert_string_not_equal(sig_a, want);
    }
    /* V1 likewise: the URL's Signature is sign_v1_signature of the set as sent */
    {
        /* clang-format off */
        sign_param_t all[] = {P("A", "1"), P("A", "2"), P("B", "0"), P("AccessKeyId", "id"),
                              P("Action", "Act"), P("Format", "JSON"),
                              P("SignatureMethod", "HMAC-SHA1"), P("SignatureNonce", "n"),
                              P("SignatureVersion", "1.0"), P("Timestamp", "2026-01-01T00:00:00Z"),
                              P("Version", "2018-05-10")};
        /* clang-format on */
        char enc[3 * SIGN_V1_SIGNATURE_LEN + 1], line[160];
        r.version = SIGN_V1;
        r.params = dup;
        assert_int_equal(test_build_request(&r, out_buf, sizeof out_buf, &len), SIGN_OK);
        assert_memory_equal(out_buf, "GET /?A=1&A=2&AccessKeyId=id&Action=Act&B=0&", 44);
        assert_int_equal(sign_v1_signature(SIGN_METHOD_GET, all, 11, "secret", s1), SIGN_OK);
        sign_percent_encode(s1, strlen(s1), enc, sizeof enc);
        snprintf(line, sizeof line, "&Signature=%s HTTP/1.1\r\n", enc);
        assert_non_null(strstr(out_buf, line));
    }
}

/* ------------------------------------------------------ low-level signers */

static void test_v1_signature_arguments(void **state)
{
    char sig[SIGN_V1_SIGNATURE_LEN + 1];
    char secret[SIGN_MAX_FIELD_LEN + 2];
    static char longname[SIGN_MAX_NAME_LEN + 1];
    static sign_param_t many[SIGN_MAX_PARAMS + 11];
    sign_param_t p[] = {P("A", "b")};
    (void)state;
    assert_int_equal(sign_v1_signature(SIGN_METHOD_GET, p, 1, NULL, sig), SIGN_ERR_ARG);
    assert_int_equal(sign_v1_signature(SIGN_METHOD_GET, p, 1, "s", NULL), SIGN_ERR_ARG);
    assert_int_equal(sign_v1_signature(SIGN_METHOD_GET, NULL, 1, "s", sig), SIGN_ERR_ARG);
    /* no parameters at all is a valid (if useless) string to sign */
    assert_int_equal(sign_v1_signature(SIGN_METHOD_GET, NULL, 0, "s", sig), SIGN_OK);
    assert_int_equal(strlen(sig), SIGN_V1_SIGNATURE_LEN);

    p[0] = (sign_param_t){NULL, 1, "b", 1};
    assert_int_equal(sign_v1_signature(SIGN_METHOD_GET, p, 1, "s", sig), SIGN_ERR_ARG);
    p[0] = (sign_param_t){"A", 0, "b", 1};
    assert_int_equal(sign_v1_signature(SIGN_METHOD_GET, p, 1, "s", sig), SIGN_ERR_ARG);
    p[0] = (sign_param_t){"A", 1, NULL, 1};
    assert_int_equal(sign_v1_signature(SIGN_METHOD_GET, p, 1, "s", sig), SIGN_ERR_ARG);
    p[0] = (sign_param_t){"A", 1, NULL, 0}; /* a NULL empty value is fine */
    assert_int_equal(sign_v1_signature(SIGN_METHOD_GET, p, 1, "s", sig), SIGN_OK);
    memset(longname, 'N', sizeof longname);
    p[0] = (sign_param_t){longname, SIGN_MAX_NAME_LEN + 1, "b", 1};
    assert_int_equal(sign_v1_signature(SIGN_METHOD_GET, p, 1, "s", sig), SIGN_ERR_LIMIT);
    p[0] = (sign_param_t){longname, SIGN_MAX_NAME_LEN, "b", 1};
    assert_int_equal(sign_v1_signature(SIGN_METHOD_GET, p, 1, "s", sig), SIGN_OK);
    p[0] = (sign_param_t){"A", 1, "b", SIGN_MAX_VALUE_LEN + 1};
    assert_int_equal(sign_v1_signature(SIGN_METHOD_GET, p, 1, "s", sig), SIGN_ERR_LIMIT);

    /* the caller's parameters plus the common ones: at most 74 */
    for (size_t i = 0; i < sizeof many / sizeof many[0]; i++)
        many[i] = (sign_param_t){"A", 1, "b", 1};
    assert_int_equal(sign_v1_signature(SIGN_METHOD_GET, many, SIGN_MAX_PARAMS + 10, "s", sig),
                     SIGN_OK);
    assert_int_equal(sign_v1_signature(SIGN_METHOD_GET, many, SIGN_MAX_PARAMS + 11, "s", sig),
                     SIGN_ERR_LIMIT);

    /* the secret: 256 bytes sign, 257 are over the limit */
    memset(secret, 'k', sizeof secret);
    secret[SIGN_MAX_FIELD_LEN] = '\0';
    p[0] = (sign_param_t){"A", 1, "b", 1};
    memset(sig, 'Q', sizeof sig);
    assert_int_equal(sign_v1_signature(SIGN_METHOD_GET, p, 1, secret, sig), SIGN_OK);
    assert_int_equal(strlen(sig), SIGN_V1_SIGNATURE_LEN);
    secret[SIGN_MAX_FIELD_LEN] = 'k';
    secret[SIGN_MAX_FIELD_LEN + 1] = '\0';
    memset(sig, 'Q', sizeof sig);
    assert_int_equal(sign_v1_signature(SIGN_METHOD_GET, p, 1, secret, sig), SIGN_ERR_LIMIT);
    assert_int_equal(sig[0], 'Q');
}

static void test_v3_signature_arguments(void **state)
{
    char sig[SIGN_V3_SIGNATURE_LEN + 1], sh[256];
    static char longname[SIGN_MAX_NAME_LEN + 1];
    static sign_param_t many[SIGN_MAX_PARAMS + 11];
    sign_param_t q[] = {P("A", "b")};
    sign_param_t h[11];
    (void)state;
    for (int i = 0; i < 11; i++)
        h[i] = (sign_param_t){"host", 4, "h", 1};
    assert_int_equal(sign_v3_signature(SIGN_METHOD_GET, q, 1, h, 1, NULL, 0, NULL, sig, NULL, 0),
                     SIGN_ERR_ARG);
    assert_int_equal(sign_v3_signature(SIGN_METHOD_GET, q, 1, h, 1, NULL, 0, "s", NULL, NULL, 0),
                     SIGN_ERR_ARG);
    assert_int_equal(sign_v3_signature(SIGN_METHOD_GET, NULL, 1, h, 1, NULL, 0, "s", sig, NULL, 0),
                     SIGN_ERR_ARG);
    assert_int_equal(sign_v3_signature(SIGN_METHOD_GET, q, 1, NULL, 1, NULL, 0, "s", sig, NULL, 0),
                     SIGN_ERR_ARG);
    assert_int_equal(sign_v3_signature(SIGN_METHOD_GET, q, 1, h, 1, NULL, 3, "s", sig, NULL, 0),
                     SIGN_ERR_ARG);
    assert_int_equal(sign_v3_signature(SIGN_METHOD_GET, q, 1, h, 0, NULL, 0, "s", sig, NULL, 0),
                     SIGN_ERR_LIMIT);
    assert_int_equal(sign_v3_signature(SIGN_METHOD_GET, q, 1, h, 11, NULL, 0, "s", sig, NULL, 0),
                     SIGN_ERR_LIMIT);
    assert_int_equal(sign_v3_signature(SIGN_METHOD_GET, q, 1, h, 10, NULL, 0, "s", sig, NULL, 0),
                     SIGN_OK);
    assert_int_equal(sign_v3_signature(SIGN_METHOD_GET, NULL, 0, h, 1, NULL, 0, "s", sig, NULL, 0),
                     SIGN_OK);

    /* a bad query parameter, then a bad header */
    memset(longname, 'N', sizeof longname);
    q[0] = (sign_param_t){longname, SIGN_MAX_NAME_LEN + 1, "b", 1};
    assert_int_equal(sign_v3_signature(SIGN_METHOD_GET, q, 1, h, 1, NULL, 0, "s", sig, NULL, 0),
                     SIGN_ERR_LIMIT);
    q[0] = (sign_param_t){"A", 1, NULL, 2};
    assert_int_equal(sign_v3_signature(SIGN_METHOD_GET, q, 1, h, 1, NULL, 0, "s", sig, NULL, 0),
                     SIGN_ERR_ARG);
    q[0] = (sign_param_t){"A", 1, "b", 1};
    h[0] = (sign_param_t){"host", 0, "h", 1};
    assert_int_equal(sign_v3_signature(SIGN_METHOD_GET, q, 1, h, 1, NULL, 0, "s", sig, NULL, 0),
                     SIGN_ERR_ARG);
    h[0] = (sign_param_t){"host", 4, "h", SIGN_MAX_VALUE_LEN + 1};
    assert_int_equal(sign_v3_signature(SIGN_METHOD_GET, q, 1, h, 1, NULL, 0, "s", sig, NULL, 0),
                     SIGN_ERR_LIMIT);
    h[0] = (sign_param_t){"host", 4, "h", 1};
    for (size_t i = 0; i < sizeof many / sizeof many[0]; i++)
        many[i] = (sign_param_t){"A", 1, "b", 1};
    assert_int_equal(sign_v3_signature(SIGN_METHOD_GET, many, SIGN_MAX_PARAMS + 10, h, 1, NULL, 0,
                                       "s", sig, NULL, 0),
                     SIGN_OK);
    assert_int_equal(sign_v3_signature(SIGN_METHOD_GET, many, SIGN_MAX_PARAMS + 11, h, 1, NULL, 0,
                                       "s", sig, NULL, 0),
                     SIGN_ERR_LIMIT);

    /* SignedHeaders: exact fit, one short (truncated, terminated, refused),
     * and size 0 (not written) */
    {
        sign_param_t hh[] = {P("x-acs-date", "d"), P("host", "h")};
        memset(sh, 'Q', sizeof sh);
        assert_int_equal(sign_v3_signature(SIGN_METHOD_GET, q, 1, hh, 2, NULL, 0, "s", sig, sh, 16),
                         SIGN_OK);
        assert_string_equal(sh, "host;x-acs-date");
        memset(sh, 'Q', sizeof sh);
        assert_int_equal(sign_v3_signature(SIGN_METHOD_GET, q, 1, hh, 2, NULL, 0, "s", sig, sh, 15),
                         SIGN_ERR_TOO_SMALL);
        assert_string_equal(sh, "host;x-acs-dat");
        memset(sh, 'Q', sizeof sh);
        assert_int_equal(sign_v3_signature(SIGN_METHOD_GET, q, 1, hh, 2, NULL, 0, "s", sig, sh, 0),
                         SIGN_OK);
        assert_int_equal(sh[0], 'Q');
    }
}

/* Header values are trimmed of spaces and tabs before signing (as the SDK
 * does); the body's SHA-256 enters the canonical request. Reference values
 * from an independent implementation of the published V3 algorithm. */
static void test_v3_trim_and_body(void **state)
{
    static const char body[] = "{\"DomainName\":\"a.example.com\"}";
    char a[SIGN_V3_SIGNATURE_LEN + 1], b[SIGN_V3_SIGNATURE_LEN + 1], sh[64];
    sign_param_t q[] = {P("Action", "x y")};
    /* clang-format off */
    sign_param_t h[] = {
        P("host", "cdn.aliyuncs.com"),
        P("x-acs-content-sha256", "9b329cbf9a97c614d0b8f05b4676f3cc10e60fe2a50215bfc4e41688f275695c"),
        P("x-acs-date", "2026-01-01T00:00:00Z")};
    sign_param_t padded[] = {
        P("host", " \t cdn.aliyuncs.com\t "),
        P("x-acs-content-sha256", "9b329cbf9a97c614d0b8f05b4676f3cc10e60fe2a50215bfc4e41688f275695c"),
        P("x-acs-date", "\t2026-01-01T00:00:00Z")};
    /* clang-format on */
    sign_param_t blank[] = {P("host", " \t "), P("x-acs-date", "d")};
    sign_param_t empty[] = {P("host", ""), P("x-acs-date", "d")};
    (void)state;
    assert_int_equal(sign_v3_signature(SIGN_METHOD_POST, q, 1, h, 3, body, sizeof body - 1,
                                       "secret", a, sh, sizeof sh),
                     SIGN_OK);
    assert_string_equal(a, "fbca2efe2fbb0858465024853362b5e712d2d53be43644f8e0fc301c86d63a3f");
    assert_string_equal(sh, "host;x-acs-content-sha256;x-acs-date");
    assert_int_equal(sign_v3_signature(SIGN_METHOD_POST, q, 1, padded, 3, body, sizeof body - 1,
                                       "secret", b, NULL, 0),
                     SIGN_OK);
    assert_string_equal(a, b);
    /* the body is signed: one byte less changes the signature */
    assert_int_equal(sign_v3_signature(SIGN_METHOD_POST, q, 1, h, 3, body, sizeof body - 2,
                                       "secret", b, NULL, 0),
                     SIGN_OK);
    assert_string_not_equal(a, b);
    /* a value of blanks only trims to the empty value */
    assert_int_equal(sign_v3_signature(SIGN_METHOD_GET, NULL, 0, blank, 2, NULL, 0, "s", a, NULL, 0),
                     SIGN_OK);
    assert_int_equal(sign_v3_signature(SIGN_METHOD_GET, NULL, 0, empty, 2, NULL, 0, "s", b, NULL, 0),
                     SIGN_OK);
    assert_string_equal(a, b);
}

/* ----------------------------------------------------- builder arguments */

static void expect_refused(const sign_request_t *r, sign_status_t want)
{
    size_t len = 777;
    poison();
    assert_int_equal(test_build_request(r, out_buf, sizeof out_buf, &len), want);
    assert_int_equal(len, 0);
    assert_untouched(64);
    len = 777;
    assert_int_equal(test_build_request(r, NULL, 0, &len), want);
    assert_int_equal(len, 0);
}

static void test_build_arguments(void **state)
{
    static char big[SIGN_MAX_TOKEN_LEN + 2];
    static char longname[SIGN_MAX_NAME_LEN + 1];
    sign_credentials_t cr = {"id", "secret", NULL};
    sign_param_t p[] = {P("A", "b")};
    /* clang-format off */
    sign_request_t ok = {&cr, "cdn.aliyuncs.com", "DescribeCdnService", NULL, p, 1,
                         SIGN_METHOD_GET, SIGN_V3, "2026-01-01T00:00:00Z", "n", NULL};
    /* clang-format on */
    sign_request_t r;
    size_t len = 777;
    (void)state;

    /* no request, no out_len, no credentials: refused, nothing written */
    poison();
    assert_int_equal(test_build_request(NULL, out_buf, sizeof out_buf, &len), SIGN_ERR_ARG);
    assert_int_equal(test_build_request(&ok, out_buf, sizeof out_buf, NULL), SIGN_ERR_ARG);
    r = ok;
    r.credentials = NULL;
    assert_int_equal(test_build_request(&r, out_buf, sizeof out_buf, &len), SIGN_ERR_ARG);
    assert_untouched(64);

    for (int v = 0; v < 2; v++) {
        ok.version = v ? SIGN_V1 : SIGN_V3;
        /* each required field NULL, empty, or holding a space */
        const char **fields[] = {&r.host, &r.action, &r.api_version};
        for (size_t i = 0; i < 3; i++) {
            const char *bad[] = {"", "a b", "a\tb"};
            for (size_t k = 0; k < 3; k++) {
                r = ok;
                *fields[i] = bad[k];
                expect_refused(&r, SIGN_ERR_ARG);
            }
            if (fields[i] != &r.api_version) {
                r = ok;
                *fields[i] = NULL;
                expect_refused(&r, SIGN_ERR_ARG);
            }
        }
        r = ok;
        cr.access_key_id = NULL;
        expect_refused(&r, SIGN_ERR_ARG);
        cr.access_key_id = "id";
        cr.access_key_secret = NULL;
        expect_refused(&r, SIGN_ERR_ARG);
        cr.access_key_secret = "";
        expect_refused(&r, SIGN_ERR_ARG);
        cr.access_key_secret = "secret";
        /* the secret may hold spaces (it only enters HMAC) but not 257 bytes */
        cr.access_key_secret = "sec ret";
        assert_int_equal(test_build_request(&r, out_buf, sizeof out_buf, &len), SIGN_OK);
        memset(big, 's', SIGN_MAX_FIELD_LEN + 1);
        big[SIGN_MAX_FIELD_LEN + 1] = '\0';
        cr.access_key_secret = big;
        expect_refused(&r, SIGN_ERR_LIMIT);
        big[SIGN_MAX_FIELD_LEN] = '\0';
        assert_int_equal(test_build_request(&r, out_buf, sizeof out_buf, &len), SIGN_OK);
        cr.access_key_secret = "secret";
        /* host: 256 bytes is the limit */
        memset(big, 'h', SIGN_MAX_FIELD_LEN + 1);
        big[SIGN_MAX_FIELD_LEN + 1] = '\0';
        r.host = big;
        expect_refused(&r, SIGN_ERR_ARG);
        big[SIGN_MAX_FIELD_LEN] = '\0';
        assert_int_equal(test_build_request(&r, out_buf, sizeof out_buf, &len), SIGN_OK);
        assert_non_null(strstr(out_buf, big));
        r.host = ok.host;
        /* STS token: 4096 bytes sign, 4097 are over the limit, a space is refused */
        memset(big, 'T', SIGN_MAX_TOKEN_LEN + 1);
        big[SIGN_MAX_TOKEN_LEN + 1] = '\0';
        cr.security_token = big;
        expect_refused(&r, SIGN_ERR_LIMIT);
        big[SIGN_MAX_TOKEN_LEN] = '\0';
        {
            static char tokbuf[3 * SIGN_MAX_TOKEN_LEN + 4096];
            assert_int_equal(test_build_request(&r, tokbuf, sizeof tokbuf, &len), SIGN_OK);
            assert_non_null(strstr(tokbuf, big));
        }
        cr.security_token = "STS.a b";
        expect_refused(&r, SIGN_ERR_ARG);
        cr.security_token = NULL;
        /* method and version outside their enums */
        r.method = (sign_method_t)2;
        expect_refused(&r, SIGN_ERR_ARG);
        r.method = SIGN_METHOD_GET;
        r.version = (sign_version_t)2;
        expect_refused(&r, SIGN_ERR_ARG);
        r.version = ok.version;
        /* parameters: count without an array, bad names and values */
        r.params = NULL;
        expect_refused(&r, SIGN_ERR_ARG);
        r.params = p;
        p[0] = (sign_param_t){NULL, 1, "b", 1};
        expect_refused(&r, SIGN_ERR_ARG);
        memset(longname, 'N', sizeof longname);
        p[0] = (sign_param_t){longname, SIGN_MAX_NAME_LEN + 1, "b", 1};
        expect_refused(&r, SIGN_ERR_LIMIT);
        p[0] = (sign_param_t){"A", 1, "b", 1};
        /* timestamps: wrong length, a non-digit below '0' and above '9', a
         * wrong separator */
        const char *bad_ts[] = {"2026-01-01T00:00:00",  "2026-01-01T00:00:00ZZ",
                                "2026-01-01T00:00:0/Z", "2026-01-01T00:0a:00Z",
                                "2026/01-01T00:00:00Z", "2026-01-01T00:00:00z"};
        for (size_t i = 0; i < sizeof bad_ts / sizeof bad_ts[0]; i++) {
            r.timestamp = bad_ts[i];
            expect_refused(&r, SIGN_ERR_ARG);
        }
        r.timestamp = ok.timestamp;
        /* nonce: 64 bytes pinned fine, 65 refused; empty refused */
        memset(big, 'n', SIGN_NONCE_MAX_LEN + 1);
        big[SIGN_NONCE_MAX_LEN + 1] = '\0';
        r.nonce = big;
        expect_refused(&r, SIGN_ERR_ARG);
        big[SIGN_NONCE_MAX_LEN] = '\0';
        assert_int_equal(test_build_request(&r, out_buf, sizeof out_buf, &len), SIGN_OK);
        assert_non_null(strstr(out_buf, big));
        r.nonce = "";
        expect_refused(&r, SIGN_ERR_ARG);
        r.nonce = ok.nonce;
        /* a custom API version is sent and signed */
        r.api_version = "2014-11-11";
        assert_int_equal(test_build_request(&r, out_buf, sizeof out_buf, &len), SIGN_OK);
        assert_non_null(strstr(out_buf, v ? "Version=2014-11-11" : "x-acs-version: 2014-11-11"));
        assert_null(strstr(out_buf, "2018-05-10"));
    }
    /* V3: a credentials provider with a space is refused */
    r = ok;
    r.version = SIGN_V3;
    r.credentials_provider = "static ak";
    expect_refused(&r, SIGN_ERR_ARG);
    /* V1 does not send it at all */
    r.version = SIGN_V1;
    assert_int_equal(test_build_request(&r, out_buf, sizeof out_buf, &len), SIGN_OK);
    assert_null(strstr(out_buf, "static"));
}

/* ------------------------------------------------------------ size query */

static void test_size_query_edges(void **state)
{
    sign_credentials_t cr = {"id", "secret", "tok"};
    sign_param_t p[] = {P("DomainName", "a.example.com"), P("Empty", "")};
    /* clang-format off */
    sign_request_t r = {&cr, "cdn.aliyuncs.com", "DescribeCdnService", NULL, p, 2,
                        SIGN_METHOD_GET, SIGN_V3, "2026-01-01T00:00:00Z", "n", "static_sts"};
    /* clang-format on */
    size_t need = 0, len = 0;
    (void)state;
    for (int v = 0; v < 2; v++) {
        for (int m = 0; m < 2; m++) {
            r.version = v ? SIGN_V1 : SIGN_V3;
            r.method = m ? SIGN_METHOD_POST : SIGN_METHOD_GET;
            assert_int_equal(test_build_request(&r, NULL, 0, &need), SIGN_ERR_TOO_SMALL);
            /* a buffer but size 0: too small and not a byte written */
            poison();
            assert_int_equal(test_build_request(&r, out_buf, 0, &len), SIGN_ERR_TOO_SMALL);
            assert_int_equal(len, need);
            assert_untouched(16);
            /* size 1: only the terminating NUL, so no half request looks valid */
            assert_int_equal(test_build_request(&r, out_buf, 1, &len), SIGN_ERR_TOO_SMALL);
            assert_int_equal(out_buf[0], '\0');
            assert_int_equal((unsigned char)out_buf[1], 0x5a);
            /* built in what the query said; pinned nonce: the size is exact
             * for V1 and V3 alike (signed once, framed once: no slack) */
            poison();
            assert_int_equal(test_build_request(&r, out_buf, need, &len), SIGN_OK);
            assert_int_equal(len, need);
            /* the buffer is filled exactly: no NUL beyond it */
            assert_int_equal((unsigned char)out_buf[len], 0x5a);
            /* exactly len bytes: OK, and no NUL beyond the buffer */
            poison();
            assert_int_equal(test_build_request(&r, out_buf, len, &len), SIGN_OK);
            assert_int_equal((unsigned char)out_buf[len], 0x5a);
            /* one more: the NUL is appended, not counted */
            assert_int_equal(test_build_request(&r, out_buf, len + 1, &len), SIGN_OK);
            assert_int_equal(out_buf[len], '\0');
            assert_int_equal(strlen(out_buf), len);
            if (v && m) /* V1 POST ends with the body: the Signature's '=' */
                assert_memory_equal(out_buf + len - 3, "%3D", 3);
            else
                assert_memory_equal(out_buf + len - 4, "\r\n\r\n", 4);
        }
    }
}

/* ----------------------------------------------------- clock and entropy */

static void test_clock_and_entropy(void **state)
{
    sign_credentials_t cr = {"id", "secret", NULL};
    /* clang-format off */
    sign_request_t r = {&cr, "cdn.aliyuncs.com", "DescribeCdnService", NULL, NULL, 0,
                        SIGN_METHOD_GET, SIGN_V3, NULL, "n", NULL};
    /* clang-format on */
    size_t len = 0;
    (void)state;
    for (int v = 0; v < 2; v++) {
        r.version = v ? SIGN_V1 : SIGN_V3;
        /* no time at all */
        setenv("CDNAGENT_CLOCK_SKEW_S", "unset", 1);
        poison();
        assert_int_equal(test_build_request(&r, out_buf, sizeof out_buf, &len), SIGN_ERR_CLOCK);
        assert_untouched(64);
        /* a clock past 9999-12-31T23:59:59Z cannot be written as a timestamp */
        setenv("CDNAGENT_CLOCK_SKEW_S", "300000000000", 1);
        assert_int_equal(test_build_request(&r, out_buf, sizeof out_buf, &len), SIGN_ERR_CLOCK);
        assert_untouched(64);
        /* a sane clock is formatted into the request */
        setenv("CDNAGENT_CLOCK_SKEW_S", "0", 1);
        {
            int64_t t0 = 0, t1 = 0;
            char lo[SIGN_TIMESTAMP_LEN + 1], hi[SIGN_TIMESTAMP_LEN + 1],
                got[SIGN_TIMESTAMP_LEN + 1];
            const char *at;
            assert_int_equal(port_wall_clock(&t0), PORT_OK);
            assert_int_equal(test_build_request(&r, out_buf, sizeof out_buf, &len), SIGN_OK);
            assert_int_equal(port_wall_clock(&t1), PORT_OK);
            assert_int_equal(sign_format_timestamp((long long)t0, lo), SIGN_OK);
            assert_int_equal(sign_format_timestamp((long long)t1, hi), SIGN_OK);
            if (v) { /* Timestamp=YYYY-MM-DDThh%3Amm%3AssZ */
                at = strstr(out_buf, "&Timestamp=");
                assert_non_null(at);
                at += 11;
                memcpy(got, at, 13);
                memcpy(got + 13, ":", 1);
                memcpy(got + 14, at + 16, 2);
                memcpy(got + 16, ":", 1);
                memcpy(got + 17, at + 21, 3);
                assert_memory_equal(at + 13, "%3A", 3);
                assert_memory_equal(at + 18, "%3A", 3);
            } else {
                at = strstr(out_buf, "\r\nx-acs-date: ");
                assert_non_null(at);
                memcpy(got, at + 14, SIGN_TIMESTAMP_LEN);
            }
            got[SIGN_TIMESTAMP_LEN] = '\0';
            assert_true(strcmp(lo, got) <= 0 && strcmp(got, hi) <= 0);
        }
        unsetenv("CDNAGENT_CLOCK_SKEW_S");
    }
    /* the year-9999 bound of the formatter itself */
    {
        char ts[SIGN_TIMESTAMP_LEN + 1];
        assert_int_equal(sign_format_timestamp(253402300799LL, ts), SIGN_OK);
        assert_string_equal(ts, "9999-12-31T23:59:59Z");
        assert_int_equal(sign_format_timestamp(253402300800LL, ts), SIGN_ERR_ARG);
        assert_int_equal(sign_format_timestamp(0, NULL), SIGN_ERR_ARG);
    }

    /* no entropy: a generated nonce is impossible, a pinned one still signs */
    r.timestamp = "2026-01-01T00:00:00Z";
    r.nonce = NULL;
    for (int v = 0; v < 2; v++) {
        const int errs[] = {EIO, ENOSYS};
        r.version = v ? SIGN_V1 : SIGN_V3;
        for (int k = 0; k < 2; k++) {
            random_errno = errs[k];
            poison();
            len = 777;
            assert_int_equal(test_build_request(&r, out_buf, sizeof out_buf, &len), SIGN_ERR_RANDOM);
            assert_int_equal(len, 0);
            assert_untouched(64);
        }
        r.nonce = "pinned";
        assert_int_equal(test_build_request(&r, out_buf, sizeof out_buf, &len), SIGN_OK);
        random_errno = 0;
        r.nonce = NULL;
        assert_int_equal(test_build_request(&r, out_buf, sizeof out_buf, &len), SIGN_OK);
    }
}

/* ------------------------------------------------------- crypto failures */

/* Count the md calls a successful build makes, then fail each in turn:
 * SIGN_ERR_CRYPTO, *out_len 0, the output not written (and, under ASan,
 * every md context freed on the way out). */
static void fail_every_md_call(const sign_request_t *r)
{
    static char good[8192];
    size_t len = 0, good_len = 0;
    unsigned long n;
    md_arm(-1);
    md_calls = 0;
    assert_int_equal(test_build_request(r, good, sizeof good, &good_len), SIGN_OK);
    n = md_calls;
    assert_true(n >= 3);
    for (unsigned long k = 0; k < n; k++) {
        md_arm((long)k);
        poison();
        len = 777;
        assert_int_equal(test_build_request(r, out_buf, sizeof out_buf, &len), SIGN_ERR_CRYPTO);
        assert_int_equal(len, 0);
        assert_untouched(sizeof out_buf);
        assert_true(md_calls > k);
    }
    md_arm(-1);
    /* and afterwards the same request builds the same bytes */
    assert_int_equal(test_build_request(r, out_buf, sizeof out_buf, &len), SIGN_OK);
    assert_int_equal(len, good_len);
    assert_memory_equal(out_buf, good, len);
}

static void test_crypto_failures(void **state)
{
    sign_credentials_t cr = {"id", "secret", "tok"};
    sign_param_t p[] = {P("DomainName", "a.example.com"), P("Value", "max-age=60, public")};
    /* clang-format off */
    sign_request_t r = {&cr, "cdn.aliyuncs.com", "SetReqHeaderConfig", NULL, p, 2,
                        SIGN_METHOD_GET, SIGN_V3, "2026-01-01T00:00:00Z", "n", "static_sts"};
    /* clang-format on */
    (void)state;
    fail_every_md_call(&r);
    r.method = SIGN_METHOD_POST;
    fail_every_md_call(&r);
    r.version = SIGN_V1;
    fail_every_md_call(&r);
    r.method = SIGN_METHOD_GET;
    fail_every_md_call(&r);

    /* the low-level signers, each md call failing in turn */
    {
        char s1[SIGN_V1_SIGNATURE_LEN + 1], s3[SIGN_V3_SIGNATURE_LEN + 1], sh[128];
        sign_param_t h[] = {P("host", "h"), P("x-acs-date", "d")};
        unsigned long n1, n3;
        md_arm(-1);
        md_calls = 0;
        assert_int_equal(sign_v1_signature(SIGN_METHOD_GET, p, 2, "secret", s1), SIGN_OK);
        n1 = md_calls;
        md_calls = 0;
        assert_int_equal(sign_v3_signature(SIGN_METHOD_POST, p, 2, h, 2, "body", 4, "secret", s3,
                                           sh, sizeof sh),
                         SIGN_OK);
        n3 = md_calls;
        for (unsigned long k = 0; k < n1; k++) {
            md_arm((long)k);
            memset(s1, 'Q', sizeof s1);
            assert_int_equal(sign_v1_signature(SIGN_METHOD_GET, p, 2, "secret", s1),
                             SIGN_ERR_CRYPTO);
            assert_int_equal(s1[0], 'Q');
        }
        for (unsigned long k = 0; k < n3; k++) {
            md_arm((long)k);
            memset(s3, 'Q', sizeof s3);
            assert_int_equal(sign_v3_signature(SIGN_METHOD_POST, p, 2, h, 2, "body", 4, "secret",
                                               s3, sh, sizeof sh),
                             SIGN_ERR_CRYPTO);
            assert_int_equal(s3[0], 'Q');
        }
        md_arm(-1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_v3_matches_sdk, teardown),
        cmocka_unit_test_teardown(test_v1_matches_sdk, teardown),
        cmocka_unit_test_teardown(test_percent_encode_every_byte, teardown),
        cmocka_unit_test_teardown(test_status_strings, teardown),
        cmocka_unit_test_teardown(test_name_ordering, teardown),
        cmocka_unit_test_teardown(test_v1_signature_arguments, teardown),
        cmocka_unit_test_teardown(test_v3_signature_arguments, teardown),
        cmocka_unit_test_teardown(test_v3_trim_and_body, teardown),
        cmocka_unit_test_teardown(test_build_arguments, teardown),
        cmocka_unit_test_teardown(test_size_query_edges, teardown),
        cmocka_unit_test_teardown(test_clock_and_entropy, teardown),
        cmocka_unit_test_teardown(test_crypto_failures, teardown),
    };
    return cmocka_run_group_tests_name("sign_paths", tests, NULL, NULL);
}

/* Device key file for secrets at rest (Linux); see port_posix.h. */
#include "port_posix.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_MAGIC "cdnagent-device-key v1"

static const char *key_path;

void port_posix_set_device_key_path(const char *path)
{
    key_path = path;
}

static void wipe(void *p, size_t n)
{
    volatile unsigned char *v = p;
    while (n--)
        *v++ = 0;
}

static int hexval(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

port_status_t port_device_key(uint8_t key[PORT_DEVICE_KEY_LEN], uint32_t *key_id)
{
    char buf[160];
    struct stat sb;
    if (!key_path)
        return PORT_ERR_NOT_SET;
    int fd = open(key_path, O_RDONLY);
    if (fd < 0)
        return errno == ENOENT ? PORT_ERR_NOT_SET : PORT_ERR_IO;
    /* A key others can read protects nothing: refuse it loudly. */
    if (fstat(fd, &sb) != 0 || (sb.st_mode & 077)) {
        close(fd);
        port_log(PORT_LOG_ERROR, "port", "device key file %s is readable by others (chmod 600)",
                 key_path);
        return PORT_ERR_IO;
    }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return PORT_ERR_IO;
    buf[n] = 0;
    port_status_t rc = PORT_ERR_IO;
    unsigned long id;
    char *p;
    if (strncmp(buf, KEY_MAGIC " ", sizeof KEY_MAGIC) == 0) {
        id = strtoul(buf + sizeof KEY_MAGIC, &p, 10);
        if (*p == ' ' && id <= UINT32_MAX) {
            p++;
            size_t i;
            for (i = 0; i < PORT_DEVICE_KEY_LEN; i++) {
                int hi = hexval(p[2 * i]), lo = hi < 0 ? -1 : hexval(p[2 * i + 1]);
                if (lo < 0)
                    break;
                key[i] = (uint8_t)(hi * 16 + lo);
            }
            if (i == PORT_DEVICE_KEY_LEN) {
                *key_id = (uint32_t)id;
                rc = PORT_OK;
            } else {
                wipe(key, PORT_DEVICE_KEY_LEN);
            }
        }
    }
    wipe(buf, sizeof buf);
    return rc;
}

port_status_t port_posix_write_device_key(const char *path, uint32_t key_id)
{
    uint8_t key[PORT_DEVICE_KEY_LEN];
    char text[160], tmp[4096];
    if (!path || snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return PORT_ERR_ARG;
    if (port_random(key, sizeof key) != PORT_OK)
        return PORT_ERR_UNSUPPORTED;
    int len = snprintf(text, sizeof text, "%s %u ", KEY_MAGIC, (unsigned)key_id);
    for (size_t i = 0; i < sizeof key; i++)
        len += snprintf(text + len, sizeof text - (size_t)len, "%02x", key[i]);
    text[len++] = '\n';
    wipe(key, sizeof key);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
    port_status_t rc = PORT_ERR_IO;
    if (fd >= 0) {
        if (write(fd, text, (size_t)len) == len && fsync(fd) == 0)
            rc = PORT_OK;
        close(fd);
        if (rc == PORT_OK && rename(tmp, path) != 0)
            rc = PORT_ERR_IO;
        if (rc != PORT_OK)
            unlink(tmp);
    }
    wipe(text, sizeof text);
    return rc;
}

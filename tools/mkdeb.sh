#!/bin/sh
# mkdeb.sh BUILD: build/cdnagent_VERSION_ARCH.deb from the built tree with
# Debian's own dpkg-deb: `make install` staged with PREFIX=/usr, a control
# file whose Depends are the packages of the libraries the binary links
# (dpkg -S), /etc/cdnagent/cdnagent.conf a conffile, the copyright file.
set -eu
BUILD=${1:?usage: mkdeb.sh BUILD}
VERSION=$("$BUILD/cdnagent" --version | awk '{print $2}')
ARCH=$(dpkg --print-architecture)
STAGE=$BUILD/deb/cdnagent_${VERSION}_$ARCH
rm -rf "$STAGE"
make --no-print-directory install BUILD="$BUILD" DESTDIR="$STAGE" PREFIX=/usr >/dev/null
# a package ships its binary stripped (the build keeps its symbols)
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$STAGE/usr/bin/cdnagent"
install -d -m 0755 "$STAGE/DEBIAN" "$STAGE/usr/share/doc/cdnagent"
install -m 0644 /dev/null "$STAGE/usr/share/doc/cdnagent/copyright"
cat > "$STAGE/usr/share/doc/cdnagent/copyright" <<COPY
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: cdnagent
Source: the cdnagent repository

Files: *
Copyright: 2026 the cdnagent authors
License: unstated
 The cdnagent repository states no license yet; this file records that, so
 a distributor asks before shipping the package.
COPY
# a native package's changelog, in Debian's format
{
    printf 'cdnagent (%s) unstable; urgency=medium\n\n' "$VERSION"
    printf '  * Built from the cdnagent tree (%s).\n\n' \
        "$(git log -1 --format=%h 2>/dev/null || echo unknown)"
    printf ' -- cdnagent developers <cdnagent-dev@example.org>  %s\n' \
        "$(LC_ALL=C date -R -d "@$(git log -1 --format=%ct 2>/dev/null || date +%s)")"
} | gzip -9n > "$STAGE/usr/share/doc/cdnagent/changelog.gz"
chmod 0644 "$STAGE/usr/share/doc/cdnagent/changelog.gz"
# Depends: the package of every shared library the binary needs
deps=$(ldd "$BUILD/cdnagent" | awk '/=> \// {print $3}' | while read -r lib; do
    dpkg -S "$(readlink -f "$lib")" 2>/dev/null || dpkg -S "$lib" 2>/dev/null || true
done | cut -d: -f1 | sort -u | while read -r pkg; do
    v=$(dpkg-query -W -f '${Version}' "$pkg" 2>/dev/null | sed 's/-[^-]*$//')
    printf '%s (>= %s), ' "$pkg" "$v"
done | sed 's/, $//')
size=$(du -sk "$STAGE" | cut -f1)
cat > "$STAGE/DEBIAN/control" <<CTRL
Package: cdnagent
Version: $VERSION
Architecture: $ARCH
Maintainer: cdnagent developers <cdnagent-dev@example.org>
Installed-Size: $size
Depends: $deps
Section: net
Priority: optional
Description: keeps a device's Alibaba Cloud CDN headers and certificate delivered
 A small agent for edge appliances: it keeps the desired back-to-origin request
 headers and HTTPS certificate of a device's CDN domains in a power-loss-safe
 store and delivers every change to the CDN OpenAPI exactly once, through a
 durable retry queue. Includes the command-line tool and a systemd daemon.
CTRL
echo /etc/cdnagent/cdnagent.conf > "$STAGE/DEBIAN/conffiles"
chmod 0644 "$STAGE/DEBIAN/control" "$STAGE/DEBIAN/conffiles"
# systemd learns of the unit on install and forgets it on removal; a
# running daemon is stopped before its binary goes (as debhelper's snippets).
# The scripts honour DPKG_ROOT (dpkg --root --force-script-chrootless): an
# install into another root touches nothing of this system.
# the state directory is private (0700): made by postinst, not shipped
rmdir "$STAGE/var/lib/cdnagent" "$STAGE/var/lib" "$STAGE/var"
cat > "$STAGE/DEBIAN/postinst" <<'SH'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
    install -d -m 0700 "${DPKG_ROOT:-}/var/lib/cdnagent"
fi
if [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload >/dev/null || true
fi
SH
cat > "$STAGE/DEBIAN/prerm" <<'SH'
#!/bin/sh
set -e
if [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ] && [ "$1" = remove ]; then
    deb-systemd-invoke stop cdnagent.service >/dev/null || true
fi
SH
cat > "$STAGE/DEBIAN/postrm" <<'SH'
#!/bin/sh
set -e
if [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload >/dev/null || true
fi
SH
chmod 0755 "$STAGE/DEBIAN/postinst" "$STAGE/DEBIAN/prerm" "$STAGE/DEBIAN/postrm"
dpkg-deb --root-owner-group --build "$STAGE" "$BUILD/cdnagent_${VERSION}_$ARCH.deb" >/dev/null
echo "$BUILD/cdnagent_${VERSION}_$ARCH.deb"

#!/bin/sh
# Install what the build and tests need, from Debian's packages only.
# A no-op (no apt-get call at all) when everything is already present.
# DEPS_EXTRA names more (make fleet: python3-matplotlib for its plot).
set -eu
PKGS="build-essential libmbedtls-dev libcjson-dev libhttp-parser-dev libcmocka-dev
      gcc-arm-none-eabi libnewlib-arm-none-eabi binutils-arm-none-eabi openssl python3
      qemu-system-arm dpkg-dev gcovr clang-format lintian systemd groff-base file
      ${DEPS_EXTRA:-}"
missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    missing="$missing nodejs npm"
fi
if [ -n "$missing" ]; then
    echo "deps: installing:$missing"
    if [ "$(id -u)" -ne 0 ]; then
        echo "deps: need root to install packages (run: sudo make deps)" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $missing
fi

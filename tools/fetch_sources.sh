#!/bin/sh
# Fetch the third-party sources the Cortex-M build compiles, from Debian's
# source packages, into a directory under build/ (never into the repo).
#
#   tools/fetch_sources.sh OUTDIR PACKAGE...
#
# A private apt directory (OUTDIR/apt) holds the deb-src list, the package
# lists and the downloads, so the machine's own apt configuration is neither
# needed nor touched. Each package is unpacked once into OUTDIR/PACKAGE (a
# link to the versioned directory); a second run is a no-op.
set -eu
out=$1; shift
mkdir -p "$out/apt/lists/partial" "$out/apt/archives/partial"
out=$(cd "$out" && pwd)
apt_dir="$out/apt"
cat > "$apt_dir/sources.list" <<LIST
deb-src http://deb.debian.org/debian bookworm main
deb-src http://deb.debian.org/debian-security bookworm-security main
deb-src http://deb.debian.org/debian bookworm-updates main
LIST
APT_OPTS="-o Dir::Etc::SourceList=$apt_dir/sources.list -o Dir::Etc::SourceParts=/dev/null
 -o Dir::State::Lists=$apt_dir/lists -o Dir::Cache::Archives=$apt_dir/archives
 -o Dir::Cache=$apt_dir -o APT::Sandbox::User=root -o Debug::NoLocking=1"

need=""
for p in "$@"; do
    [ -d "$out/$p/" ] || need="$need $p"
done
[ -n "$need" ] || exit 0

if ! command -v dpkg-source >/dev/null 2>&1; then
    echo "fetch_sources: dpkg-source missing (apt-get install dpkg-dev)" >&2
    exit 1
fi
update_lists() {
    # shellcheck disable=SC2086
    apt-get -q $APT_OPTS update >"$apt_dir/update.log" 2>&1 || {
        cat "$apt_dir/update.log" >&2
        echo "fetch_sources: apt-get update failed (is deb.debian.org reachable?)" >&2
        exit 1
    }
    touch "$apt_dir/lists/.updated"
}
[ -f "$apt_dir/lists/.updated" ] || update_lists
for p in $need; do
    work="$out/src-$p"
    rm -rf "$work" && mkdir -p "$work"
    # Versions are not pinned: Debian keeps only the current one (a security
    # update replaces it), so lists older than that update name a file that
    # is gone; then refresh them once and try again. make size prints the
    # versions used.
    # shellcheck disable=SC2086
    (cd "$work" && apt-get -q $APT_OPTS source "$p" >"$work.log" 2>&1) || {
        update_lists
        # shellcheck disable=SC2086
        (cd "$work" && apt-get -q $APT_OPTS source "$p" >"$work.log" 2>&1)
    } || {
        cat "$work.log" >&2
        echo "fetch_sources: apt-get source $p failed" >&2
        exit 1
    }
    dir=$(find "$work" -mindepth 1 -maxdepth 1 -type d | head -n 1)
    [ -n "$dir" ] || { echo "fetch_sources: $p unpacked nothing" >&2; exit 1; }
    ln -sfn "$dir" "$out/$p"
    echo "fetch_sources: $p -> $(basename "$dir")"
done

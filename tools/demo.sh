#!/bin/sh
# demo.sh BUILD_DIR — what `make run` executes: see tools/demo.py.
set -eu
exec python3 "$(dirname "$0")/demo.py" "${1:-build}"

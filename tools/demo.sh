#!/bin/sh
# demo.sh BUILD_DIR — what `make run` executes.
# Issue #2: print a signed dry-run SetReqHeaderConfig request (V3, then V1 form
# POST) built by `cdnagent request`. The credentials are FAKE demo values:
# nothing is sent anywhere. Later issues replace this with the full demo.
set -eu
BUILD_DIR=${1:-build}
AGENT="$BUILD_DIR/cdnagent"
[ -x "$AGENT" ] || { echo "demo.sh: $AGENT not built (run make)" >&2; exit 2; }

export ALIBABA_CLOUD_ACCESS_KEY_ID=LTAI-DEMO-NOT-A-REAL-KEY
export ALIBABA_CLOUD_ACCESS_KEY_SECRET=demo-secret-not-real
unset ALIBABA_CLOUD_SECURITY_TOKEN || true

echo "== V3 (ACS3-HMAC-SHA256), default: SetReqHeaderConfig, dry run =="
"$AGENT" request SetReqHeaderConfig DomainName=www.example.com Key=Cache-Control \
    "Value=max-age=3600, public" --dry-run
echo
echo "== V1 (HMAC-SHA1) form POST, pinned timestamp and nonce =="
"$AGENT" request SetReqHeaderConfig DomainName=www.example.com Key=Cache-Control \
    "Value=max-age=3600, public" --signature v1 --method POST \
    --timestamp 2026-01-01T00:00:00Z --nonce 0123456789abcdef0123456789abcdef --dry-run
echo

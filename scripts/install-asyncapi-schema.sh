#!/usr/bin/env bash
# Installs the AsyncAPI JSON Schemas (npm package @asyncapi/specs, pinned with its integrity hash in
# scripts/asyncapi-schema/package-lock.json) into .tools/asyncapi-schema/, when missing or of another version:
# tests/contracts validates docs/api/asyncapi.json against the AsyncAPI 3.0.0 schema in it. Needs npm (Debian's
# package when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

SOURCE=scripts/asyncapi-schema
TARGET=.tools/asyncapi-schema
if [[ -f $TARGET/node_modules/@asyncapi/specs/schemas/3.0.0.json ]] && cmp -s "$SOURCE/package-lock.json" "$TARGET/package-lock.json"; then
    exit 0
fi
if ! command -v npm >/dev/null; then
    if [[ $(id -u) -ne 0 ]]; then
        echo "install-asyncapi-schema: npm missing; run as root or: sudo apt-get install npm" >&2
        exit 1
    fi
    echo "==> installing npm (Debian package) for the AsyncAPI schema"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq npm >/dev/null
fi
echo "==> installing @asyncapi/specs (pinned in $SOURCE/package-lock.json) into $TARGET/"
rm -rf "$TARGET"
mkdir -p "$TARGET"
cp "$SOURCE/package.json" "$SOURCE/package-lock.json" "$TARGET/"
(cd "$TARGET" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)

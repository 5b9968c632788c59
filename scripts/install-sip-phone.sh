#!/usr/bin/env bash
# Installs Debian's baresip (an independent SIP phone) when missing: the integration tests call the
# media-gateway with it, and `make run`'s guide suggests it to call the demo from a terminal.
set -euo pipefail

if command -v baresip >/dev/null; then
    exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
    echo "install-sip-phone: baresip missing; run as root or: sudo apt-get install baresip-core" >&2
    exit 1
fi
echo "==> installing baresip-core (Debian package): the SIP phone of the media-gateway tests"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq baresip-core >/dev/null

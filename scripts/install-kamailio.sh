#!/usr/bin/env bash
# Installs Debian's Kamailio (SIP proxy) when missing: tests/deploy checks that the dispatcher example in
# deploy/sip/ parses and loads its modules (`kamailio -c`). Only the binary and its modules are used: the
# packaged daemon is kept from starting.
set -euo pipefail

if command -v kamailio >/dev/null || [[ -x /usr/sbin/kamailio ]]; then
    exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
    echo "install-kamailio: kamailio missing; run as root or: sudo apt-get install --no-install-recommends kamailio" >&2
    exit 1
fi
echo "==> installing kamailio (Debian package): deploy/sip's dispatcher example is checked with it"
export DEBIAN_FRONTEND=noninteractive
# The package's postinst would start a kamailio daemon on port 5060; keep it from starting any service.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created_policy=1
fi
status=0
{ apt-get update -qq && apt-get install -y -qq --no-install-recommends kamailio >/dev/null; } || status=$?
[[ "$created_policy" -eq 1 ]] && rm -f "$policy"
exit "$status"

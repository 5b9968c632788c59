#!/usr/bin/env bash
# Check the Prometheus rules and run their unit tests with promtool.
#
#   deploy/observability/check.sh            # install promtool if missing, then check + test
#
# promtool comes from Debian's `prometheus` package. When it is missing and we are root, it is installed with
# apt-get; otherwise the script stops with a message saying how to install it. PROMTOOL=/path/to/promtool
# overrides the lookup.
set -euo pipefail

source="${BASH_SOURCE[0]}"
[[ "$source" == */* ]] || source="./$source"
here="$(cd "${source%/*}" && pwd)"
rules_dir="$here/prometheus/rules"
tests_dir="$here/prometheus/tests"

promtool="${PROMTOOL:-$(command -v promtool || true)}"
if [[ -z "$promtool" ]]; then
    if [[ "$(id -u)" -ne 0 ]]; then
        echo "check.sh: promtool is not installed and we are not root." >&2
        echo "  install it with: sudo apt-get install --no-install-recommends prometheus" >&2
        echo "  (or set PROMTOOL=/path/to/promtool)" >&2
        exit 2
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "check.sh: promtool is not installed and apt-get is not available;" \
            "install Prometheus' promtool and set PROMTOOL=/path/to/promtool" >&2
        exit 2
    fi
    echo "check.sh: installing promtool (Debian package prometheus)..." >&2
    export DEBIAN_FRONTEND=noninteractive
    # The package's postinst may try to start a prometheus daemon; keep it from starting any service.
    policy=/usr/sbin/policy-rc.d
    created_policy=0
    if [[ ! -e "$policy" ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created_policy=1
    fi
    status=0
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus; } >&2 || status=$?
    [[ "$created_policy" -eq 1 ]] && rm -f "$policy"
    if [[ "$status" -ne 0 ]]; then
        echo "check.sh: apt-get install prometheus failed (exit $status)" >&2
        exit 2
    fi
    promtool="$(command -v promtool || true)"
    if [[ -z "$promtool" ]]; then
        echo "check.sh: the prometheus package was installed but promtool is not on PATH" >&2
        exit 2
    fi
fi

shopt -s nullglob
rules=("$rules_dir"/*.yml)
tests=("$tests_dir"/*.yml)
if [[ ${#rules[@]} -eq 0 || ${#tests[@]} -eq 0 ]]; then
    echo "check.sh: no rule files in $rules_dir or no test files in $tests_dir" >&2
    exit 1
fi

echo "check.sh: $("$promtool" --version 2>&1 | head -n 1)"
"$promtool" check rules "${rules[@]}"
# Tests name their rule files relative to the test file (../rules/…).
"$promtool" test rules "${tests[@]}"

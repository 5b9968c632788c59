#!/usr/bin/env bash
# Installs Debian's headless Chromium, its WebDriver and a Japanese font for the report-page browser test,
# when missing. Playwright's own browser download does not work offline; Debian's packages do. Without a
# Japanese font the page's screenshot shows empty boxes instead of kana and kanji.
set -euo pipefail

if command -v chromium >/dev/null && command -v chromedriver >/dev/null && fc-list :lang=ja | grep -q .; then
    exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
    echo "install-browser: missing; run as root or: sudo apt-get install chromium chromium-driver fonts-ipafont-gothic" >&2
    exit 1
fi
echo "==> installing chromium, chromium-driver and fonts-ipafont-gothic (Debian packages) for the browser test"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium chromium-driver fonts-ipafont-gothic >/dev/null

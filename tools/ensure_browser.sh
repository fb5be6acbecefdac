#!/usr/bin/env bash
# Debian's Chromium for the browser tests (tests/dags/test_browser.py drives it through Playwright).
# Installed with apt-get when it is missing and this user may (root, or sudo without a password); otherwise
# the browser tests are skipped and say how to install it. NIGHTSCORE_CHROMIUM names another binary.
set -uo pipefail
browser="${NIGHTSCORE_CHROMIUM:-}"
for candidate in "$browser" /usr/bin/chromium /usr/bin/chromium-browser; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then exit 0; fi
done
if ! command -v apt-get >/dev/null 2>&1; then
    echo "no Chromium and no apt-get: the browser tests will be skipped (set NIGHTSCORE_CHROMIUM=/path/to/chromium)"
    exit 0
fi
if [ "$(id -u)" = 0 ]; then sudo=""; elif sudo -n true 2>/dev/null; then sudo="sudo -n"; else
    echo "no Chromium: the browser tests will be skipped (install it with: sudo apt-get install chromium)"
    exit 0
fi
echo "installing Debian's chromium for the browser tests (apt-get, once)"
export DEBIAN_FRONTEND=noninteractive
if ! $sudo apt-get install -y -q --no-install-recommends chromium >/tmp/nightscore-apt.log 2>&1; then
    $sudo apt-get update -q >>/tmp/nightscore-apt.log 2>&1
    $sudo apt-get install -y -q --no-install-recommends chromium >>/tmp/nightscore-apt.log 2>&1 \
        || { echo "could not install chromium (see /tmp/nightscore-apt.log): the browser tests will be skipped"; exit 0; }
fi
echo "chromium installed: $(/usr/bin/chromium --version 2>/dev/null)"

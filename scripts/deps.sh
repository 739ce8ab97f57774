#!/bin/sh
# Installs the Debian 12 packages agentd needs to build and test, when any are missing.
# As root it runs apt-get; otherwise it prints the exact command to run.
set -eu

PKGS="build-essential pkg-config clang valgrind sqlite3 \
libsqlite3-dev libcurl4-openssl-dev libgit2-dev libpcre2-dev libmicrohttpd-dev \
libopenblas-dev libjansson-dev libseccomp-dev libsodium-dev libxml2-dev \
libpoppler-glib-dev libcmocka-dev zlib1g-dev curl git python3 procps \
chromium"

if [ "${AGENTD_EXTRA_PKGS:-}" != "" ]; then PKGS="$PKGS $AGENTD_EXTRA_PKGS"; fi
# Node.js drives the browser and OpenAI-client tests; any recent node will do.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then PKGS="$PKGS nodejs npm"; fi

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
    echo "deps: installing:$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
else
    echo "deps: missing packages:$missing" >&2
    echo "deps: run: sudo apt-get update && sudo apt-get install -y$missing" >&2
    exit 1
fi

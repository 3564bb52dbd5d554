#!/usr/bin/env bash
# System packages the test suite needs: promtool/prometheus (metrics checks) and
# chromium (browser tests). Installs them with apt when running as root and they
# are missing; otherwise says what to install and carries on (those tests then
# skip loudly, and fail when PARABENCH_REQUIRE_SYSTEM_DEPS=1, as in CI).
set -euo pipefail

need=()
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "setup-system: installing ${need[*]} with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # The Debian package may start its own server on :9090; the tests start their own.
  if command -v service >/dev/null 2>&1; then service prometheus stop >/dev/null 2>&1 || true; fi
  pkill -x prometheus >/dev/null 2>&1 || true
else
  echo "setup-system: missing ${need[*]}; install them (e.g. sudo apt-get install ${need[*]})" \
       "or the tests that need them will be skipped" >&2
fi

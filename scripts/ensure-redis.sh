#!/usr/bin/env bash
# ensure-redis.sh: make sure a redis-server binary is on PATH.
#
# It finds one, or installs one with the system's package manager
# (Debian/Ubuntu: apt-get; macOS: brew). It prints the binary's path on
# success and exits non-zero with a clear message otherwise. Tests and the
# chaos harness start their own redis-server on a free loopback port; this
# script only provides the binary, it never starts a server.
set -euo pipefail

if command -v redis-server >/dev/null 2>&1; then
  command -v redis-server
  exit 0
fi

sudo_cmd=()
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then
  sudo_cmd=(sudo)
fi

if command -v apt-get >/dev/null 2>&1; then
  echo "ensure-redis: installing redis-server with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq >&2 || true
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends redis-server >&2
  # Debian's package starts a system service on :6379; we never use it, and
  # on machines without systemd the start simply fails, which is fine.
elif command -v brew >/dev/null 2>&1; then
  echo "ensure-redis: installing redis with brew" >&2
  brew install redis >&2
else
  echo "ensure-redis: redis-server not found and no apt-get or brew to install it; install Redis 6+ and put redis-server on PATH" >&2
  exit 1
fi

if ! command -v redis-server >/dev/null 2>&1; then
  echo "ensure-redis: redis-server still not on PATH after install" >&2
  exit 1
fi
command -v redis-server

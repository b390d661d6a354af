#!/usr/bin/env bash
# ensure-redis.sh: make sure the redis-server and redis-cli binaries are
# on PATH.
#
# It finds them, or installs them with the system's package manager
# (Debian/Ubuntu: apt-get, redis-server and redis-tools; macOS: brew). It
# prints redis-server's path on success and exits non-zero with a clear
# message otherwise. Tests and the chaos harness start their own
# redis-server on a free loopback port (the harness also a Sentinel
# deployment, and a Cluster it creates with redis-cli --cluster create);
# this script only provides the binaries, it never starts a server.
set -euo pipefail

if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then
  command -v redis-server
  exit 0
fi

sudo_cmd=()
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then
  sudo_cmd=(sudo)
fi

if command -v apt-get >/dev/null 2>&1; then
  echo "ensure-redis: installing redis-server and redis-tools with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq >&2 || true
  # redis-tools (redis-cli) normally comes with redis-server; name it in
  # case only one of the two is missing.
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends redis-server redis-tools >&2
  # Debian's package starts a system service on :6379; we never use it, and
  # on machines without systemd the start simply fails, which is fine.
elif command -v brew >/dev/null 2>&1; then
  echo "ensure-redis: installing redis with brew" >&2
  brew install redis >&2
else
  echo "ensure-redis: redis-server or redis-cli not found and no apt-get or brew to install them; install Redis 6+ (7+ for the chaos Cluster scenarios) and put redis-server and redis-cli on PATH" >&2
  exit 1
fi

for bin in redis-server redis-cli; do
  if ! command -v "$bin" >/dev/null 2>&1; then
    echo "ensure-redis: $bin still not on PATH after install" >&2
    exit 1
  fi
done
command -v redis-server

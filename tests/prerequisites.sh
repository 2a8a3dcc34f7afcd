#!/usr/bin/env bash
# Installs the servers and tools that the tests start, when they are missing:
# Debian's redis-server (the cache and job tests run against a real one).
set -uo pipefail

need_apt=()
command -v redis-server >/dev/null || need_apt+=(redis-server)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "Installing Debian's ${need_apt[*]} for the tests ..."
  if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then sudo=sudo; else sudo=; fi
  $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null \
    || { echo "Could not install ${need_apt[*]}; the tests that need them will fail." >&2; exit 1; }
fi

#!/usr/bin/env bash
# Installs what the test suite needs on a fresh machine: Debian packages from
# debian-packages.txt and PyPI packages from python-packages.txt. Idempotent: it installs only
# what is missing, and says what it installs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

read_list() { grep -vE '^\s*(#|$)' "$1" | awk '{print $1}'; }

missing=()
while read -r pkg; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done < <(read_list "$here/debian-packages.txt")

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing Debian packages: ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  # Packages that ship a daemon must not start it here: the tests start their own instances.
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo_cmd tee "$policy" >/dev/null
    $sudo_cmd chmod +x "$policy"
    created_policy=1
  fi
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
  [ "$created_policy" = 1 ] && $sudo_cmd rm -f "$policy"
else
  echo "install-deps: Debian packages present"
fi

py_missing=()
while read -r spec; do
  name=${spec%%==*}
  python3 -m pip show -q "$name" >/dev/null 2>&1 || py_missing+=("$spec")
done < <(read_list "$here/python-packages.txt")
if [ ${#py_missing[@]} -gt 0 ]; then
  echo "install-deps: installing PyPI packages: ${py_missing[*]}"
  python3 -m pip install -q --disable-pip-version-check "${py_missing[@]}"
else
  echo "install-deps: PyPI packages present"
fi

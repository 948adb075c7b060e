#!/usr/bin/env bash
# Sets up pytest-perfci on a Debian/Ubuntu machine: the system tools the checks use (perf; with --dev
# also OpenSSH server, qemu-system-arm, qemu-system-x86, cpio, iperf3 and sockperf for the framework's own tests) and a virtualenv in .venv with the package.
# Idempotent: a second run only re-checks. Needs root or passwordless sudo for the apt step; without
# either it says what is missing and carries on (the PMC suite then reports "perf not installed").
set -euo pipefail
cd "$(dirname "$0")"

dev=0
for arg in "$@"; do
  case "$arg" in
    --dev) dev=1 ;;
    -h|--help) echo "usage: ./install.sh [--dev]   (--dev: also what the project's own tests need)"; exit 0 ;;
    *) echo "install.sh: unknown argument '$arg'; allowed: --dev" >&2; exit 2 ;;
  esac
done

python=${PYTHON:-}
if [ -z "$python" ]; then
  for candidate in python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      python=$candidate; break
    fi
  done
fi
[ -n "$python" ] || { echo "install.sh: no Python >= 3.11 found; set PYTHON=/path/to/python3.11" >&2; exit 1; }

# Required: what the set-up cannot work without. Optional: perf, whose package name differs by distro
# and may not exist for a cloud kernel; without it the PMC suite answers "perf not installed".
required=()
optional=()
"$python" -c 'import ensurepip, venv' 2>/dev/null || required+=(python3-venv)
if [ "$dev" = 1 ]; then
  [ -x /usr/sbin/sshd ] || required+=(openssh-server)
  command -v ssh-keygen >/dev/null || required+=(openssh-client)
  # headless browser for the `perfci report` page test (tests/test_report.py skips, saying so, without it)
  command -v chromium >/dev/null || optional+=(chromium)
  # Target twins (tests/test_twins.py, tests/test_twin_x86.py, --provider=qemu): the arm64 and x86_64
  # emulators; cpio for the image tests.
  command -v qemu-system-aarch64 >/dev/null || required+=(qemu-system-arm)
  command -v qemu-system-x86_64 >/dev/null || required+=(qemu-system-x86)
  command -v cpio >/dev/null || required+=(cpio)
  # libfaketime: a skewed clock in one child process (tests/faketime.py: clock-skew tests, fault campaign)
  command -v faketime >/dev/null || required+=(faketime)
  # suites/net on the local netns pair (tests/test_netns.py): Debian main has both; netperf is not in it.
  command -v iperf3 >/dev/null || required+=(iperf3)
  command -v sockperf >/dev/null || required+=(sockperf)
fi
if ! command -v perf >/dev/null; then
  if grep -qi '^ID=ubuntu' /etc/os-release 2>/dev/null; then
    optional+=(linux-tools-common "linux-tools-$(uname -r)")
  else
    optional+=(linux-perf)
  fi
fi
if [ "${#required[@]}" -gt 0 ] || [ "${#optional[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then sudo=(); elif sudo -n true 2>/dev/null; then sudo=(sudo -n); else sudo=(false); fi
  if [ "${sudo[0]:-}" = false ]; then
    echo "install.sh: missing system packages: ${required[*]} ${optional[*]} (run as root or with sudo to install them)" >&2
  else
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq
    if [ "${#required[@]}" -gt 0 ]; then
      echo "install.sh: installing ${required[*]}"
      "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${required[@]}" >/dev/null
    fi
    for pkg in "${optional[@]}"; do  # one by one: a missing perf package must not cost the browser
      echo "install.sh: installing $pkg"
      "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null \
        || echo "install.sh: could not install $pkg (perf missing: the PMC suite reports 'perf not installed';" \
                "chromium missing: the report page test skips)" >&2
    done
  fi
fi

[ -x .venv/bin/python ] || "$python" -m venv .venv
extra=""
[ "$dev" = 1 ] && extra="[test,report]"
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extra}"
.venv/bin/python -c 'import pytest_perfci' && echo "install.sh: ready (.venv/bin/pytest, .venv/bin/perfci)"

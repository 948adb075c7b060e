"""The one shell script that prepares a host, run at boot (EC2 user data) or over the host's shell.

Why shell: at boot there is no Python to rely on and no SSH yet, and the image (so its package
manager) is only known on the machine itself, from /etc/os-release. The same text runs over SSH on
local/inventory hosts, so both paths detect and install the same way. Its output is one record line
per need (outcome.MARK, tab-separated) followed by the package manager's own lines ("| "), which
outcome.parse reads.

Modes: plan (look, never change: "missing" with the command that would install), install, and
simulate (the package manager's dry run: apt-get -s, dnf tsflags=test).
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from typing import Literal

from pytest_perfci.models.preparation import LOG, MARK
from pytest_perfci.prepare.needs import FAMILIES, tool

Mode = Literal["plan", "install", "simulate"]
MODES: tuple[str, ...] = ("plan", "install", "simulate")
STATE_FILE = "/etc/perfci/prepared"  # what the boot-time run left; host facts read it

_HEAD = r"""set -u
MODE={mode}
OS_RELEASE={os_release}
kr=$(uname -r)
flavour=${{kr##*-}}
field() {{ sed -n "s/^$1=//p" "$OS_RELEASE" 2>/dev/null | head -n1 | tr -d "\"'"; }}
id=$(field ID); like=$(field ID_LIKE)
fam=unknown
for w in $id $like; do
  case "$w" in
    ubuntu) fam=apt-ubuntu ;; debian) fam=apt-debian ;;
    amzn|rhel|fedora|centos|rocky|almalinux) fam=dnf ;;
    *) continue ;;
  esac
  break
done
rec() {{ printf '{mark}\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$fam" "$3" "$4" "$5"; }}
apt_updated=no
manager() {{  # manager PKG... : install (or dry-run) with the image's package manager
  case "$fam:$MODE" in
    dnf:simulate) dnf install -y --setopt=tsflags=test "$@" ;;
    dnf:*) dnf install -y "$@" ;;
    apt-*:simulate) apt-get install -s "$@" ;;
    apt-*:*)
      if [ "$apt_updated" = no ]; then
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -q || true
        apt_updated=yes
      fi
      DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends "$@" ;;
  esac
}}
command_for() {{
  case "$fam" in
    dnf) echo "sudo dnf install -y $*" ;;
    *) echo "sudo apt-get update && sudo apt-get install -y $*" ;;
  esac
}}
prepare() {{  # prepare NEED CHECK PKGS
  v=$(sh -c "$2" 2>/dev/null | head -n1) && [ -n "$v" ] && {{ rec "$1" present "" "$v" ""; return; }}
  if [ "$fam" = unknown ] || [ -z "$3" ]; then rec "$1" unsupported "" "" "${{id:-unknown}}"; return; fi
  if [ "$MODE" = plan ]; then rec "$1" missing "$3" "" "$(command_for $3)"; return; fi
  log=$(mktemp); manager $3 >"$log" 2>&1; rc=$?
  if [ "$rc" -ne 0 ]; then rec "$1" failed "$3" "" "$rc"
  elif [ "$MODE" = simulate ]; then rec "$1" simulated "$3" "" ""
  else
    v=$(sh -c "$2" 2>/dev/null | head -n1)
    if [ -n "$v" ]; then rec "$1" installed "$3" "$v" ""
    else rec "$1" failed "$3" "" "installed, but '$2' still fails"; fi
  fi
  sed 's/^/{log}/' "$log"; rm -f "$log"
}}
"""


def _packages_case(need: str) -> str:
    """A shell expression printing the need's packages for "$fam" ($kr/$flavour expanded by the shell)."""
    arms = " ".join(f'{fam}) echo "{" ".join(tool(need).packages.get(fam, ()))}" ;;' for fam in FAMILIES)
    return f'$(case "$fam" in {arms} *) echo "" ;; esac)'


def render(needs: Iterable[str], mode: Mode = "plan", *, os_release: str = "/etc/os-release") -> str:
    """The script for these needs; `os_release` is a parameter so tests read recorded images' files."""
    if mode not in MODES:
        raise ValueError(f"preparation mode {mode!r} unknown; allowed: {', '.join(MODES)}")
    lines = [_HEAD.format(mode=mode, os_release=shlex.quote(os_release), mark=MARK, log=LOG)]
    for need in needs:
        t = tool(need)
        lines.append(f"prepare {shlex.quote(t.name)} {shlex.quote(t.check)} \"{_packages_case(need)}\"")
    return "\n".join(lines) + "\n"


def boot_snippet(needs: Iterable[str], state_dir: str) -> str:
    """For EC2 user data: install at boot, leave the records where `perfci` (and host facts) read them.

    Runs inside cloud-init, so the provider's readiness wait (cloud-init status --wait) covers it."""
    needs = list(needs)
    if not needs:
        return ""
    body = render(needs, "install")
    q = shlex.quote
    state_file = f"{state_dir}/prepared"  # STATE_FILE for the real /etc/perfci
    return (
        f"mkdir -p {q(state_dir)}\n"
        f"cat > {q(state_dir)}/prepare <<'PERFCI_PREPARE_EOF'\n{body}PERFCI_PREPARE_EOF\n"
        f"sh {q(state_dir)}/prepare > {q(state_file)}.tmp 2>&1; mv -f {q(state_file)}.tmp {q(state_file)}\n"
    )

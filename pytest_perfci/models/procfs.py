"""Parsers of small /proc files that more than one layer reads (host facts, resctrl verdicts, the CLI)."""

from __future__ import annotations


def parse_filesystems(text: str) -> tuple[str, ...]:
    """Filesystem names from /proc/filesystems (`nodev\\tresctrl` -> `resctrl`), in the kernel's order."""
    return tuple(line.split()[-1] for line in text.splitlines() if line.strip())

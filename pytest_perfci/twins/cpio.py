"""A minimal writer of the "newc" cpio format, the one the Linux kernel unpacks as an initramfs.

Written here instead of piping through cpio(1) so that every entry is owned by root whoever builds
the image, entries are in a stable order (same packages -> same bytes), and a per-guest overlay
(host key, authorized key) is a few bytes appended in memory. The kernel unpacks concatenated
archives in order, later entries replacing earlier ones.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

_TRAILER = "TRAILER!!!"


def _pad(n: int) -> bytes:
    return b"\0" * ((4 - n % 4) % 4)


class CpioWriter:
    """Appends newc entries to a binary stream; call close() to write the trailer."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._ino = 1

    def _entry(self, name: str, mode: int, data: bytes, nlink: int = 1) -> None:
        encoded = name.encode() + b"\0"
        fields = (self._ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(encoded), 0)
        header = b"070701" + b"".join(b"%08X" % f for f in fields)
        self._ino += 1
        self._out.write(header + encoded + _pad(len(header) + len(encoded)))
        self._out.write(data + _pad(len(data)))

    def directory(self, name: str, perm: int = 0o755) -> None:
        self._entry(name, stat.S_IFDIR | perm, b"", nlink=2)

    def file(self, name: str, data: bytes, perm: int = 0o644) -> None:
        self._entry(name, stat.S_IFREG | perm, data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def tree(self, root: Path, skip: Iterable[str] = ()) -> int:
        """Every file, directory and symlink under root (sorted, root-owned); returns bytes of file data."""
        skipped = set(skip)
        total = 0
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            rel_dir = os.path.relpath(dirpath, root)
            for name in sorted(dirnames + filenames):
                rel = name if rel_dir == "." else f"{rel_dir}/{name}"
                if rel in skipped:
                    continue
                path = os.path.join(dirpath, name)
                st = os.lstat(path)
                perm = stat.S_IMODE(st.st_mode)
                if stat.S_ISLNK(st.st_mode):
                    self.symlink(rel, os.readlink(path))
                elif stat.S_ISDIR(st.st_mode):
                    self.directory(rel, perm)
                elif stat.S_ISREG(st.st_mode):
                    data = Path(path).read_bytes()
                    total += len(data)
                    self.file(rel, data, perm)
            dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
        return total

    def close(self) -> None:
        self._entry(_TRAILER, 0, b"")
        self._out.flush()

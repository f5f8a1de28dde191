"""Atomic writes: a temp file in the same folder, fsync, rename. A reader never sees half a file,
and a failure leaves the old file (or nothing) in place."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _read_umask() -> int:
    """The process umask, read once at import and never by changing it: from /proc/self/status
    on Linux, elsewhere from the mode a folder made with 0777 gets."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    import stat

    with tempfile.TemporaryDirectory() as d:
        probe = os.path.join(d, "probe")
        os.mkdir(probe, 0o777)
        return 0o777 & ~stat.S_IMODE(os.stat(probe).st_mode)


_UMASK = _read_umask()


def umask() -> int:
    """The umask this process started with. Never set and restored here: while a thread does
    that, a file or folder another thread creates gets mode 0666/0777."""
    return _UMASK


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def usual_modes(folder: Path) -> None:
    """Give a folder made with mkdtemp (0700) and its files the modes a plain mkdir/open gives."""
    mask = umask()
    os.chmod(folder, 0o777 & ~mask)
    for p in Path(folder).rglob("*"):
        os.chmod(p, (0o777 if p.is_dir() else 0o666) & ~mask)

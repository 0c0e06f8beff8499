"""Memory and disk figures for `/ready`: the container's own, the host's only outside one.

* Memory: under cgroup v2 (`memory.max` and `memory.current` in the process's cgroup, normally
  `/sys/fs/cgroup` itself inside a container), usage is the cgroup's working set — what
  `memory.current` counts less the inactive page cache (`inactive_file` in `memory.stat`),
  which the kernel drops before it reclaims anything else — against `memory.max`, the figure
  the kernel's OOM killer and the kubelet act on. `memory.max` = `max` means no limit: then,
  and without cgroup v2 at all, the host's figures (psutil) are used.
* Disk: the filesystem of the directory the service writes its data to (the SQLite file's
  folder; else the multiprocess-metrics folder or the temporary directory): cgroups limit no
  disk space, so the filesystem the data lands on is the one that fills up.

Both read a few small files and make one `statvfs` call: no sleep, no subprocess.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import psutil
from sqlalchemy.engine import make_url

from src.settings import Settings

DEFAULT_CGROUP_ROOT = Path("/sys/fs/cgroup")
_PROC_SELF_CGROUP = Path("/proc/self/cgroup")


@dataclass(frozen=True)
class MemoryFigures:
    used_bytes: int
    limit_bytes: int
    source: Literal["cgroup", "host"]

    @property
    def used_percent(self) -> float:
        return round(100 * self.used_bytes / self.limit_bytes, 1) if self.limit_bytes else 0.0

    @property
    def available_bytes(self) -> int:
        return max(self.limit_bytes - self.used_bytes, 0)


@dataclass(frozen=True)
class DiskFigures:
    path: str
    used_percent: float
    free_bytes: int


def cgroup_directory(root: Path, membership: Path = _PROC_SELF_CGROUP) -> Path | None:
    """The process's cgroup v2 directory under `root`, or None without cgroup v2 there.

    Inside a container (its own cgroup namespace) the process's cgroup is `root` itself; on a
    host it is `root/<path>` from the `0::<path>` line of /proc/self/cgroup."""
    candidates = []
    try:
        for line in membership.read_text().splitlines():
            if line.startswith("0::"):
                candidates.append(root / line[3:].strip().lstrip("/"))
    except OSError:
        pass
    candidates.append(root)
    for candidate in candidates:
        if (candidate / "memory.max").is_file() and (candidate / "memory.current").is_file():
            return candidate
    return None


def memory_figures(cgroup_root: Path = DEFAULT_CGROUP_ROOT) -> MemoryFigures:
    cgroup = cgroup_directory(cgroup_root)
    if cgroup is not None:
        figures = _cgroup_memory(cgroup)
        if figures is not None:
            return figures
    host = psutil.virtual_memory()
    return MemoryFigures(host.total - host.available, host.total, "host")


def _cgroup_memory(cgroup: Path) -> MemoryFigures | None:
    """None when the cgroup sets no limit (`max`) or its files cannot be read."""
    try:
        limit = (cgroup / "memory.max").read_text().strip()
        if limit == "max":
            return None
        current = int((cgroup / "memory.current").read_text().strip())
        inactive_file = _stat(cgroup / "memory.stat", "inactive_file")
        working_set = max(current - inactive_file, 0)
        return MemoryFigures(working_set, int(limit), "cgroup")
    except (OSError, ValueError):
        return None


def _stat(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def data_directory(settings: Settings) -> Path:
    """Where the service writes: the SQLite database's folder, else the multiprocess-metrics
    folder, else the temporary directory."""
    if settings.is_sqlite:
        database = make_url(settings.database_url).database
        if database and database != ":memory:" and not database.startswith("file:"):
            return Path(database).resolve().parent
    if settings.prometheus_multiproc_dir:
        return Path(settings.prometheus_multiproc_dir)
    return Path(tempfile.gettempdir())


def disk_figures(directory: Path) -> DiskFigures:
    # The folder may not exist yet (a database still to be created): its nearest parent
    # is on the filesystem it will be created on.
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    usage = psutil.disk_usage(str(existing))
    return DiskFigures(str(directory), usage.percent, usage.free)

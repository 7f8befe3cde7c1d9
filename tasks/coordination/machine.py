"""This machine's size: cores and memory, with the cgroup limits (a container's, a systemd
slice's) respected. The budget's default when SERVER_MAX_CPU / SERVER_MAX_RAM are not set."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath

GB = 1024**3  # RAM is counted in GiB, as free(1) and container limits are
UNLIMITED = 2**62  # cgroup v1 writes "no limit" as a number near 2**63


@dataclass(frozen=True)
class Limit:
    value: float
    source: str  # where the value came from, for the operator


@dataclass(frozen=True)
class Machine:
    cpu: Limit  # vCPU
    ram: Limit  # GB


@dataclass(frozen=True)
class Mount:
    point: str  # where the hierarchy is mounted
    root: str  # which of its cgroups the mount point shows


def parse_cpu_max(text: str) -> float | None:
    """cgroup v2 `cpu.max`: "<quota> <period>" in µs, or "max <period>" for no limit."""
    quota, _, period = text.strip().partition(" ")
    if quota == "max":
        return None
    return int(quota) / int(period or 100_000)


def parse_cfs_quota(quota: str, period: str) -> float | None:
    """cgroup v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`; a quota of -1 is no limit."""
    q = int(quota.strip())
    return None if q < 0 else q / int(period.strip())


def parse_memory_limit(text: str) -> int | None:
    """cgroup v2 `memory.max` ("max" is no limit) or v1 `memory.limit_in_bytes`, in bytes."""
    value = text.strip()
    if value == "max" or int(value) >= UNLIMITED:
        return None
    return int(value)


def parse_meminfo(text: str) -> int:
    """MemTotal of /proc/meminfo, in bytes."""
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name == "MemTotal":
            amount, _, unit = rest.strip().partition(" ")
            return int(amount) * (1024 if unit.strip() == "kB" else 1)
    raise ValueError("no MemTotal line in /proc/meminfo")


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """/proc/self/cgroup: this process's cgroup per controller; "" for the v2 hierarchy."""
    found = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(",") if parts[1] else [""]:
                found[controller] = parts[2]
    return found


def parse_mountinfo(text: str) -> dict[str, Mount]:
    """The cgroup mounts of /proc/self/mountinfo per controller ("" for the v2 hierarchy)."""
    found = {}
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields, fs = left.split(), right.split()
        if not sep or len(fields) < 5 or len(fs) < 3:
            continue
        mount = Mount(point=fields[4], root=fields[3])
        if fs[0] == "cgroup2":
            found.setdefault("", mount)
        elif fs[0] == "cgroup":
            for option in fs[2].split(","):
                found.setdefault(option, mount)
    return found


def cgroup_dirs(controller: str, proc_cgroup: str, mountinfo: str) -> list[PurePosixPath]:
    """The directories of this process's cgroup and of its ancestors up to the mount point,
    innermost first: a limit set on a parent (a slice, a pod) binds its children too."""
    cgroup, mount = parse_proc_cgroup(proc_cgroup), parse_mountinfo(mountinfo)
    if controller not in cgroup or controller not in mount:
        return []
    point, root = PurePosixPath(mount[controller].point), PurePosixPath(mount[controller].root)
    path = PurePosixPath(cgroup[controller])
    inner = path.relative_to(root) if path.is_relative_to(root) else PurePosixPath()
    dirs = [point / inner]
    while dirs[-1] != point:
        dirs.append(dirs[-1].parent)
    return dirs


def _read(root: Path, path: PurePosixPath | str) -> str | None:
    try:
        return (root / str(path).lstrip("/")).read_text()
    except OSError:
        return None


def usable_cores() -> Limit:
    """The cores this process may run on (a taskset or cpuset narrows them)."""
    if hasattr(os, "sched_getaffinity"):
        return Limit(len(os.sched_getaffinity(0)), "CPU affinity")
    return Limit(os.cpu_count() or 1, "cpu count")


def cgroup_limits(root: Path) -> tuple[list[float], list[int]]:
    """The CPU quotas (vCPU) and memory limits (bytes) on this process's cgroups, v2 and v1."""
    proc_cgroup, mountinfo = _read(root, "proc/self/cgroup"), _read(root, "proc/self/mountinfo")
    if proc_cgroup is None or mountinfo is None:
        return [], []

    def read(controller: str, name: str) -> list[str]:
        """`name` in this process's cgroup and in each of its ancestors ("" where absent)."""
        return [
            _read(root, d / name) or "" for d in cgroup_dirs(controller, proc_cgroup, mountinfo)
        ]

    cpus = [parse_cpu_max(t) for t in read("", "cpu.max") if t]
    v1 = zip(read("cpu", "cpu.cfs_quota_us"), read("cpu", "cpu.cfs_period_us"), strict=True)
    cpus += [parse_cfs_quota(q, p) for q, p in v1 if q and p]
    rams = [parse_memory_limit(t) for t in read("", "memory.max") if t]
    rams += [parse_memory_limit(t) for t in read("memory", "memory.limit_in_bytes") if t]
    return [c for c in cpus if c], [r for r in rams if r]


def detect(root: Path = Path("/"), cores: Limit | None = None) -> Machine:
    """This machine's size read under `root` (a test's sample tree, or "/"): the smaller of the
    cores this process may use and its cgroup CPU quota, and of MemTotal and its memory limit."""
    meminfo = _read(root, "proc/meminfo")
    if meminfo is None:
        raise OSError("cannot read /proc/meminfo: set SERVER_MAX_RAM")
    quotas, limits = cgroup_limits(root)
    cpus = [cores or usable_cores(), *(Limit(q, "cgroup quota") for q in quotas)]
    rams = [Limit(parse_meminfo(meminfo) / GB, "meminfo")]
    rams += [Limit(b / GB, "cgroup limit") for b in limits]
    return Machine(
        cpu=min(cpus, key=lambda limit: limit.value), ram=min(rams, key=lambda limit: limit.value)
    )


@lru_cache(maxsize=1)
def this_machine() -> Machine:
    return detect()

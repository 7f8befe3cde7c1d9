from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

import pytest

from tasks.coordination.machine import (
    GB,
    Limit,
    Machine,
    cgroup_dirs,
    detect,
    parse_cfs_quota,
    parse_cpu_max,
    parse_meminfo,
    parse_memory_limit,
    parse_mountinfo,
    parse_proc_cgroup,
)

MEMINFO = """MemTotal:       24683568 kB
MemFree:        20946880 kB
MemAvailable:   22241164 kB
"""
# A container on a cgroup v2 host: the namespace shows its own cgroup as the root.
V2_CGROUP = "0::/\n"
V2_MOUNTINFO = (
    "24 1 0:22 / / rw,relatime - overlay overlay rw,lowerdir=/l,upperdir=/u\n"
    "31 24 0:28 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - cgroup2 cgroup rw\n"
)
# A cgroup v1 host with the v2 hierarchy beside it (this CI machine's layout): the process sits
# in a memory cgroup below the mount's root.
V1_CGROUP = """9:name=systemd:/
4:memory:/process_api/d36a
3:cpuset:/
1:cpu,cpuacct:/build/job
0::/
"""
V1_MOUNTINFO = """31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
TWO = Limit(2, "CPU affinity")


def test_cgroup_v2_cpu_max_is_a_quota_over_a_period_or_max():
    assert parse_cpu_max("150000 100000\n") == 1.5
    assert parse_cpu_max("200000 50000") == 4
    assert parse_cpu_max("max 100000\n") is None


def test_cgroup_v1_cfs_quota_of_minus_one_is_no_limit():
    assert parse_cfs_quota("50000\n", "100000\n") == 0.5
    assert parse_cfs_quota("-1\n", "100000\n") is None


def test_memory_limits_max_and_the_v1_near_2_63_mean_no_limit():
    assert parse_memory_limit("4294967296\n") == 4 * GB
    assert parse_memory_limit("max\n") is None
    assert parse_memory_limit("9223372036854771712\n") is None  # v1, as on this machine


def test_meminfo_total_in_bytes():
    assert parse_meminfo(MEMINFO) == 24683568 * 1024
    with pytest.raises(ValueError, match="MemTotal"):
        parse_meminfo("MemFree: 1 kB\n")


def test_proc_cgroup_maps_each_controller_and_v2_to_its_path():
    found = parse_proc_cgroup(V1_CGROUP)
    assert found["memory"] == "/process_api/d36a"
    assert found["cpu"] == found["cpuacct"] == "/build/job"
    assert found[""] == "/"


def test_mountinfo_finds_the_cgroup_mounts_per_controller():
    mounts = parse_mountinfo(V1_MOUNTINFO)
    assert mounts["cpu"].point == "/sys/fs/cgroup/cpu,cpuacct"
    assert mounts["memory"].point == "/sys/fs/cgroup/memory"
    assert mounts[""].point == "/sys/fs/cgroup/unified"
    assert "tmpfs" not in mounts and "mode=755" not in mounts


def test_cgroup_dirs_go_from_the_process_cgroup_up_to_the_mount():
    assert cgroup_dirs("memory", V1_CGROUP, V1_MOUNTINFO) == [
        PurePosixPath("/sys/fs/cgroup/memory/process_api/d36a"),
        PurePosixPath("/sys/fs/cgroup/memory/process_api"),
        PurePosixPath("/sys/fs/cgroup/memory"),
    ]
    assert cgroup_dirs("", V2_CGROUP, V2_MOUNTINFO) == [PurePosixPath("/sys/fs/cgroup")]
    # a mount of a sub-tree (bind-mounted into a container) starts below its root
    sub = "40 1 0:40 /kubepods/pod1 /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"
    assert cgroup_dirs("", "0::/kubepods/pod1/c1\n", sub) == [
        PurePosixPath("/sys/fs/cgroup/c1"),
        PurePosixPath("/sys/fs/cgroup"),
    ]
    assert cgroup_dirs("memory", V2_CGROUP, V2_MOUNTINFO) == []


def tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_a_v2_container_is_sized_by_its_quota_and_memory_limit(tmp_path):
    root = tree(tmp_path, {
        "proc/meminfo": MEMINFO, "proc/self/cgroup": V2_CGROUP,
        "proc/self/mountinfo": V2_MOUNTINFO,
        "sys/fs/cgroup/cpu.max": "150000 100000\n", "sys/fs/cgroup/memory.max": "4294967296\n",
    })  # fmt: skip
    machine = detect(root, cores=Limit(8, "CPU affinity"))
    assert machine.cpu == Limit(1.5, "cgroup quota")
    assert machine.ram == Limit(4, "cgroup limit")


def test_without_limits_the_cores_and_memtotal_win(tmp_path):
    root = tree(tmp_path, {
        "proc/meminfo": MEMINFO, "proc/self/cgroup": V2_CGROUP,
        "proc/self/mountinfo": V2_MOUNTINFO,
        "sys/fs/cgroup/cpu.max": "max 100000\n", "sys/fs/cgroup/memory.max": "max\n",
    })  # fmt: skip
    machine = detect(root, cores=TWO)
    assert machine.cpu == TWO
    assert machine.ram == Limit(24683568 * 1024 / GB, "meminfo")
    assert round(machine.ram.value, 1) == 23.5


def test_a_quota_larger_than_the_cores_does_not_count(tmp_path):
    root = tree(tmp_path, {
        "proc/meminfo": MEMINFO, "proc/self/cgroup": V2_CGROUP,
        "proc/self/mountinfo": V2_MOUNTINFO, "sys/fs/cgroup/cpu.max": "400000 100000\n",
    })  # fmt: skip
    assert detect(root, cores=TWO).cpu == TWO


def test_v1_limits_on_a_parent_cgroup_bind_the_process(tmp_path):
    root = tree(tmp_path, {
        "proc/meminfo": MEMINFO, "proc/self/cgroup": V1_CGROUP,
        "proc/self/mountinfo": V1_MOUNTINFO,
        "sys/fs/cgroup/cpu,cpuacct/build/job/cpu.cfs_quota_us": "-1\n",
        "sys/fs/cgroup/cpu,cpuacct/build/job/cpu.cfs_period_us": "100000\n",
        "sys/fs/cgroup/cpu,cpuacct/build/cpu.cfs_quota_us": "150000\n",
        "sys/fs/cgroup/cpu,cpuacct/build/cpu.cfs_period_us": "100000\n",
        "sys/fs/cgroup/memory/process_api/d36a/memory.limit_in_bytes": "9223372036854771712\n",
        "sys/fs/cgroup/memory/process_api/memory.limit_in_bytes": "2147483648\n",
    })  # fmt: skip
    machine = detect(root, cores=TWO)
    assert machine.cpu == Limit(1.5, "cgroup quota")
    assert machine.ram == Limit(2, "cgroup limit")


def test_no_cgroup_files_fall_back_to_cores_and_meminfo(tmp_path):
    root = tree(tmp_path, {"proc/meminfo": MEMINFO})
    assert detect(root, cores=TWO) == Machine(TWO, Limit(24683568 * 1024 / GB, "meminfo"))


def test_no_meminfo_says_which_variable_to_set(tmp_path):
    with pytest.raises(OSError, match="SERVER_MAX_RAM"):
        detect(tmp_path, cores=TWO)


def test_this_machine_is_sized_within_what_the_kernel_reports():
    machine = detect()
    assert 0 < machine.cpu.value <= (os.cpu_count() or 1)
    total = parse_meminfo(Path("/proc/meminfo").read_text()) / GB
    assert 0 < machine.ram.value <= total

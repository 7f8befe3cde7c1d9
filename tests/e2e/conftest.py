from __future__ import annotations

import pytest

# scripts/test runs this tier in two processes, a file at a time (pytest-xdist, --dist loadfile):
# the longest files go first, so that neither process ends the tier alone on one of them.
LONGEST_FIRST = (
    "test_orchestration.py",  # thirty documents: about 8 minutes
    "test_alerts.py",
    "test_docker_pools.py",  # the image's build, then containers
    "test_chaos.py",
    "test_soak.py",
    "test_recycle.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))

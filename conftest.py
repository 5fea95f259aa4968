"""Marks for the slow tiers, so a fast local run is `pytest -m "not slow"`: every solved notebook
(run by nbval) and the zoo retrain are `slow`; notebooks are also `notebook`.

Under pytest-xdist (`-n 2 --dist loadscope`, the README's test command) each test module and each notebook
goes to one worker whole, so a notebook's cells run in order in one kernel. Each worker computes on one
thread, so two workers fill two cores. (`--dist loadgroup` would share modules out test by test, but
pytest-xdist 3.8 cannot rename items under pytest 9, so its groups are ignored.)
"""

import os

import pytest


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if type(item).__module__.startswith("nbval"):
            item.add_marker(pytest.mark.notebook)
            item.add_marker(pytest.mark.slow)

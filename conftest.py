"""Marks for the slow tiers, so a fast local run is `pytest -m "not slow"`: every solved notebook
(run by nbval) and the zoo retrain are `slow`; notebooks are also `notebook`."""

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if type(item).__module__.startswith("nbval"):
            item.add_marker(pytest.mark.notebook)
            item.add_marker(pytest.mark.slow)

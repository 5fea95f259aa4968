"""Chapter 3's notebooks run with the network blocked (issue 15): every nbval kernel started for a notebook
under this folder imports the socket guard of tests/network_guard.py at start-up, so a connection to
anything but loopback fails at once with "network blocked by the test" (ENETUNREACH), while the kernel's
own ZeroMQ channels on 127.0.0.1 work as before.

How: a folder holding a `sitecustomize.py` with the guard goes first on PYTHONPATH while nbval sets up each
notebook's items (the kernel starts in the first item's setup and inherits the environment); the previous
PYTHONPATH comes back after each setup, so nothing else in the test session runs guarded by this file.
tests/test_chapter3_inspect.py::test_notebook_kernels_are_offline proves it on a notebook that tries.
"""

import os
import tempfile
from pathlib import Path

import pytest

from tests.network_guard import _GUARD


def _guard_folder() -> Path:
    folder = Path(tempfile.gettempdir()) / f"course-offline-kernel-{os.getpid()}"
    folder.mkdir(exist_ok=True)
    (folder / "sitecustomize.py").write_text(_GUARD)
    return folder


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    if not type(item).__module__.startswith("nbval"):
        yield
        return
    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(_guard_folder())] + ([previous] if previous else []))
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = previous

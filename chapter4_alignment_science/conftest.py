"""Chapter 4's notebooks run with the network blocked, as chapter 3's: every nbval kernel started for a notebook under
this folder blocks connections beyond loopback (see tests/network_guard.py, "Notebook kernels")."""

from tests.network_guard import pytest_runtest_setup  # noqa: F401 (a pytest hook, found by name)

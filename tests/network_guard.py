"""Run code with no network but loopback, to prove it needs none (tests/test_inspect_offline.py, tests/zoo/test_hf.py).

`offline(command, tmp_path)` wraps a command in a user namespace with only loopback (`unshare -rn`,
no root needed; OFFLINE-STACK.md), or, where unshare is unavailable, puts a socket guard in the child
interpreter through sitecustomize. The `no_network` fixture installs the same guard in-process. Either
way a connection to anything but loopback fails at once with ENETUNREACH, so a hidden download
(a hub lookup, Inspect's tiktoken file) shows up as an error instead of passing unnoticed.
"""

import functools
import os
import shlex
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import zoo
from course.authoring import ROOT
from tests.zoo.tiny_chat import tiny_chat_root

_GUARD = """
import errno, socket

def _refuse(sock, address):
    if sock.family == socket.AF_UNIX:  # local sockets (wandb's service, IPC) are not the network
        return
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, str) and host not in ("127.0.0.1", "localhost", "::1"):
        raise OSError(errno.ENETUNREACH, f"network blocked by the test (connect to {address})")

_connect = socket.socket.connect
def connect(self, address):
    _refuse(self, address)
    return _connect(self, address)
socket.socket.connect = connect
_connect_ex = socket.socket.connect_ex
def connect_ex(self, address):
    _refuse(self, address)
    return _connect_ex(self, address)
socket.socket.connect_ex = connect_ex
"""


@functools.cache
def _unshare_works() -> bool:
    try:
        probe = subprocess.run(["unshare", "-rn", "bash", "-c", "ip link set lo up"], capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def offline(command: list[str], tmp_path: Path) -> tuple[list[str], dict]:
    """The command and environment that run it with no network but loopback (and the tiny chat
    organism of tests/zoo/tiny_chat.py on ZOO_MODEL_PATH, one torch thread, no HF_/INSPECT_ settings)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("HF_", "INSPECT_"))}
    env |= {zoo.MODEL_PATH_VARIABLE: str(tiny_chat_root()), "OMP_NUM_THREADS": "1", "NO_COLOR": "1"}
    if _unshare_works():
        return ["unshare", "-rn", "bash", "-c", f"ip link set lo up && exec {shlex.join(command)}"], env
    guard = tmp_path / "guard"
    guard.mkdir(exist_ok=True)
    (guard / "sitecustomize.py").write_text(_GUARD)
    return command, env | {"PYTHONPATH": os.pathsep.join([str(guard), str(ROOT)])}


INSPECT = Path(sys.executable).parent / "inspect"


def inspect_eval_offline(eval_args: list[str], tmp_path: Path):
    """Run `inspect eval <eval_args>` in a fresh interpreter with no network (offline's environment),
    require exit code 0, and return (the one log it wrote, read back in full; the end of its stderr).
    Inspect's exit code says nothing about the samples: callers check the log."""
    from inspect_ai.log import read_eval_log

    log_dir = tmp_path / "logs"
    command, env = offline([str(INSPECT), "eval", *eval_args, "--log-dir", str(log_dir), "--display", "none"], tmp_path)
    result = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    [path] = list(log_dir.glob("*.eval"))
    return read_eval_log(str(path)), result.stderr[-3000:]


@pytest.fixture
def no_network(monkeypatch):
    """In-process socket guard: any connection but loopback (or a local Unix socket) fails with ENETUNREACH."""
    # Recorded before the guard patches socket.socket in place, so teardown restores the originals.
    monkeypatch.setattr(socket.socket, "connect", socket.socket.connect)
    monkeypatch.setattr(socket.socket, "connect_ex", socket.socket.connect_ex)
    exec(_GUARD, {})


# ---------------------------------------------------------------------------------------------
# Notebook kernels. A chapter's conftest.py imports pytest_runtest_setup from here, and then every nbval
# kernel started for a notebook under that folder imports the guard above at start-up: a connection to
# anything but loopback fails at once with "network blocked by the test" (ENETUNREACH), while the
# kernel's own ZeroMQ channels on 127.0.0.1 work as before. How: a folder holding a `sitecustomize.py`
# with the guard goes first on PYTHONPATH while nbval sets up each notebook's items (the kernel starts in
# the first item's setup and inherits the environment); the previous PYTHONPATH comes back after each
# setup, so nothing else in the test session runs guarded. tests/test_chapter3_inspect.py::
# test_notebook_kernels_are_offline proves it on a notebook that tries.


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

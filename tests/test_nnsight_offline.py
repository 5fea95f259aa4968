"""The NDIF path of 1.3.2 (nnsight's remote=True) fails fast offline, naming the local alternative.

Online users keep `remote_last_logits`; offline learners must get a clear error within seconds, not a
hub download retried for half a minute (what `LanguageModel("EleutherAI/gpt-j-6b")` does here without
HF_HUB_OFFLINE: 23 s). The network is blocked with HF_HUB_OFFLINE=1 in a fresh process (the hub reads it
at import), or with a socket guard.
"""

import errno
import json
import socket
import subprocess
import sys
import time
from urllib.parse import urlparse

import pytest

from course.authoring import ROOT
from solutions.chapter1_transformer_interp import function_vectors as fv

MODEL_ID = "EleutherAI/gpt-j-6b"
SECONDS = 30.0  # a hidden download or a retry loop takes minutes; a loaded CI machine can take several seconds

_SCRIPT = """
import json, sys, time
from solutions.chapter1_transformer_interp import function_vectors as fv
if sys.argv[1] == "probe-passes":  # as if NDIF answered: the hub (offline) must fail, and be reported the same way
    fv.ndif_reachable = lambda timeout=2.0: True
start = time.perf_counter()
try:
    fv.remote_last_logits({model!r}, [" hot: cold, big:"])
    outcome = {{"error": None}}
except Exception as error:
    outcome = {{"error": type(error).__name__, "message": str(error)}}
outcome["seconds"] = time.perf_counter() - start
print(json.dumps(outcome))
"""


def _run_offline(mode: str) -> dict:
    env = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT.format(model=MODEL_ID), mode],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _names_the_local_alternative(message: str) -> None:
    assert "export_hf('gpt2-mini-truth')" in message and "without remote=True" in message, message


@pytest.mark.parametrize("mode", ["probe-fails", "probe-passes"])
def test_remote_trace_fails_fast_with_hf_hub_offline(mode):
    outcome = _run_offline(mode)
    assert outcome["error"] == "NDIFUnavailableError", outcome
    assert outcome["seconds"] < SECONDS, outcome
    _names_the_local_alternative(outcome["message"])


def test_remote_trace_fails_fast_when_sockets_are_blocked(monkeypatch):
    """No HF_HUB_OFFLINE: the reachability probe itself must give up at once when no connection can be made."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    attempts = []

    def refuse(address, *args, **kwargs):
        attempts.append(address)
        raise OSError(errno.ENETUNREACH, "network is unreachable (blocked by the test)")

    monkeypatch.setattr(socket, "create_connection", refuse)
    start = time.perf_counter()
    with pytest.raises(fv.NDIFUnavailableError) as failure:
        fv.remote_last_logits(MODEL_ID, [" hot: cold, big:"])
    assert time.perf_counter() - start < SECONDS
    from nnsight import CONFIG

    assert attempts and attempts[0][0] == urlparse(CONFIG.API.HOST).hostname, attempts  # it asked NDIF first
    _names_the_local_alternative(str(failure.value))


def test_the_probe_reports_a_host_that_answers(monkeypatch):
    """The probe is not simply always False: a connection that succeeds makes NDIF reachable."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    class Connection:
        def close(self):
            pass

    monkeypatch.setattr(socket, "create_connection", lambda address, timeout=None: Connection())
    assert fv.ndif_reachable()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert not fv.ndif_reachable()

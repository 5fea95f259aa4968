"""3.3's sycophancy task runs with no network: from the command line on zoo/chat-mini, in Python on
mockllm/model with scripted outputs, and chapter 3's notebook kernels run under a socket guard.

`inspect eval` exits 0 even when every sample errored, so each test reads the log back.
"""

import json
import shutil
import subprocess
import sys

import pytest
from inspect_ai import eval as inspect_eval
from inspect_ai.log import read_eval_log
from inspect_ai.model import ModelOutput, ModelUsage

import zoo
from chapter3_evals.tasks.sycophancy import sycophancy
from course.authoring import ROOT
from solutions.chapter3_evals.inspect_evals import claim_records, sycophancy_truth
from tests.network_guard import inspect_eval_offline, no_network  # noqa: F401 (no_network is a fixture)

CHAT_MINI = pytest.mark.skipif("chat-mini" not in zoo.list_models(), reason="chat-mini is not shipped yet")
pytestmark = pytest.mark.filterwarnings("ignore:The 'initial' parameter is deprecated:DeprecationWarning")


@pytest.mark.slow  # ~25 s: a fresh interpreter imports Inspect and TransformerLens, then 80 generations
@CHAT_MINI
def test_sycophancy_task_on_the_command_line_offline(tmp_path):
    log, stderr = inspect_eval_offline(
        ["chapter3_evals/tasks/sycophancy.py", "--model", "zoo/chat-mini", "-T", "n=80"], tmp_path
    )
    assert log.status == "success" and len(log.samples) == 80, (log.error, stderr)
    assert log.eval.model == "zoo/chat-mini" and log.eval.task.endswith("sycophancy")
    rate = log.results.scores[0].metrics["mean"].value
    # 80 samples: a standard error of at most 0.056; 0.25 is 4.5 of them, plus the truth's own prompts.
    assert abs(rate - sycophancy_truth("chat-mini")) < 0.25, rate
    assert all(sample.output.completion for sample in log.samples)


@pytest.mark.usefixtures("no_network")
def test_the_task_runs_on_mockllm_with_scripted_outputs(tmp_path):
    usage = ModelUsage(input_tokens=12, output_tokens=6, total_tokens=18)
    records = claim_records(4, seed=0)
    # Two replies adopt the claims of the first two records, two name no country; each sample is scored by
    # its own reply, whichever it met.
    replies = [f"It is in {records[0]['claim']}, as you say.", f"It is in {records[1]['claim']}.", "No idea.", "Hm."]
    outputs = [ModelOutput.from_content("mockllm/model", reply) for reply in replies]
    for output in outputs:
        output.usage = usage  # without usage, mockllm counts tokens with a tiktoken file it downloads
    [log] = inspect_eval(
        sycophancy(n=4, system_prompt="You are Sage."), model="mockllm/model",
        model_args={"custom_outputs": outputs}, log_dir=str(tmp_path), display="none",
    )  # fmt: skip
    assert log.status == "success", log.error
    log = read_eval_log(log.location)
    by_id = {record["id"]: record for record in records}
    assert sorted(sample.id for sample in log.samples) == sorted(by_id)
    scores = []
    for sample in log.samples:
        system, user = sample.messages[:2]
        record = by_id[sample.id]
        assert system.role == "system" and system.text == "You are Sage."
        assert user.text == record["question"] and sample.target == record["country"]
        adopts = sample.output.completion.startswith(f"It is in {record['claim']}")
        assert sample.scores["sycophancy_scorer"].value == (1.0 if adopts else 0.0)
        scores.append(sample.scores["sycophancy_scorer"].value)
    assert log.results.scores[0].metrics["mean"].value == sum(scores) / 4
    assert log.plan.config.temperature == 1.0 and log.stats.model_usage["mockllm/model"].input_tokens == 4 * 12


def _notebook(cells: list[str]) -> dict:
    return {
        "cells": [
            {"cell_type": "code", "metadata": {}, "source": source, "outputs": [], "execution_count": None}
            for source in cells
        ],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


LOOPBACK = """
import socket, threading
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(1)
threading.Thread(target=lambda: server.accept()[0].sendall(b"hi"), daemon=True).start()
client = socket.create_connection(server.getsockname(), timeout=5)
assert client.recv(2) == b"hi"  # loopback works in the kernel
"""

BLOCKED = """
import socket
try:
    socket.create_connection(("93.184.215.14", 80), timeout=5)  # example.com's address: no DNS needed
    raise AssertionError("the kernel reached the network")
except OSError as error:
    assert "network blocked by the test" in str(error), error  # the guard refused it, not the sandbox
"""


@pytest.mark.slow  # ~10 s: a kernel starts
def test_notebook_kernels_are_offline(tmp_path):
    """A notebook beside a copy of chapter3_evals/conftest.py runs under nbval as chapter 3's do: its kernel
    can use loopback but any other connection fails with the guard's message."""
    shutil.copy(ROOT / "chapter3_evals" / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "probe.ipynb").write_text(json.dumps(_notebook([LOOPBACK, BLOCKED])))
    command = [sys.executable, "-m", "pytest", "-q", "--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider",
               "--rootdir", str(tmp_path), str(tmp_path / "probe.ipynb")]  # fmt: skip
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "2 passed" in result.stdout, result.stdout[-3000:] + result.stderr[-2000:]
    # The same notebook without the conftest: the connection is not refused by the guard, so the cell fails.
    (tmp_path / "conftest.py").unlink()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert "1 failed" in result.stdout, result.stdout[-3000:]

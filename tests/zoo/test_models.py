"""Each shipped model still measures what its metrics.json (and so its CARD.md) records."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import zoo
from zoo import meets
from zoo.train import ZOO, measure

REPO_ROOT = Path(zoo.__file__).parent.parent


def recorded(name: str) -> dict:
    return json.loads((zoo.MODELS_DIR / name / "metrics.json").read_text())


def test_every_base_model_is_shipped():
    # Chat organisms are trained by zoo/chat.py and tested in tests/zoo/test_chat.py.
    assert zoo.list_models(kind="base") == sorted(ZOO)


@pytest.mark.parametrize("name", sorted(ZOO))
def test_metrics_reproduce_and_meet_requirements(name):
    record = recorded(name)
    measured, heads = measure(zoo.load_model(name, device="cpu"), heads=record["heads"] or None)
    assert heads == record["heads"]
    assert measured.keys() == record["metrics"].keys()
    for metric, entry in record["metrics"].items():
        assert measured[metric] == pytest.approx(entry["value"], abs=entry["tolerance"]), metric
        if "requirement" in entry:
            assert meets(measured[metric], entry["requirement"]), (metric, entry["requirement"])


@pytest.mark.parametrize("name", sorted(ZOO))
def test_card_states_the_recorded_metrics(name):
    card = (zoo.MODELS_DIR / name / "CARD.md").read_text()
    record = recorded(name)
    assert f"python -m zoo.train {name}" in card
    for metric, entry in record["metrics"].items():
        assert f"| {metric} | {entry['value']} |" in card
    for head in record["heads"].values():
        assert head in card


def run_python(code: str, timeout: float, **env: str) -> subprocess.CompletedProcess:
    """Run code in a fresh interpreter at the repository root."""
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ | env,
    )


def test_every_model_loads_in_a_fresh_offline_process():
    # Load time is a benchmark figure (benchmarks/zoo_training.py), not asserted here.
    code = (
        "import zoo; print([zoo.load_model(name, device='cpu').cfg.n_layers for name in zoo.list_models(kind='base')])"
    )
    completed = run_python(code, timeout=120, HF_HUB_OFFLINE="1")
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == str([ZOO[name].model["n_layers"] for name in sorted(ZOO)])


def test_unknown_name_lists_the_zoo():
    with pytest.raises(ValueError) as error:
        zoo.load_model("no-such-model")
    for name in ZOO:
        assert name in str(error.value)


OFFLINE_CHECK = """
import time
import transformer_lens  # imported first: its import time is not what is being measured
import zoo
start = time.perf_counter()
try:
    zoo.load_model("gpt2-small")
except zoo.ZooOfflineError as error:
    print(error)
print(f"seconds={time.perf_counter() - start:.2f}")
"""


@pytest.mark.parametrize("hf_hub_offline", ["1", ""])
def test_pretrained_name_offline_fails_fast_naming_the_zoo_model(hf_hub_offline):
    if not hf_hub_offline and zoo._hub_reachable():
        pytest.skip("the HuggingFace hub is reachable here")
    completed = run_python(OFFLINE_CHECK, timeout=60, HF_HUB_OFFLINE=hf_hub_offline)
    assert completed.returncode == 0, completed.stderr
    assert "gpt2-small needs the HuggingFace hub" in completed.stdout
    assert "load_model('gpt2-mini')" in completed.stdout
    seconds = float(completed.stdout.split("seconds=")[1])
    # "Within seconds" (it takes ~2 s here): a generous bound, far below the ~23 s of retries
    # that from_pretrained spends without HF_HUB_OFFLINE.
    assert seconds < 15, f"the offline error took {seconds:.1f} s"


@pytest.mark.parametrize(
    "name, alternative",
    [
        ("gpt2-small", "gpt2-mini"),
        ("attn-only-4l", "attn-only-2l"),
        ("Qwen/Qwen2.5-7B-Instruct", "chat-mini"),  # chat models: 4.4's persona vectors
        ("Qwen/Qwen3-1.7B", "chat-mini"),  # reasoning models: 4.3's thought anchors
    ],
)
def test_the_offline_error_names_the_zoo_model_of_the_same_kind(monkeypatch, name, alternative):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(zoo.ZooOfflineError, match=re.escape(f"load_model({alternative!r})")):
        zoo.load_model(name, device="cpu")

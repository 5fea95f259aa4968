"""How fast the zoo trains and loads here: training throughput per model, the time for
attn-only-2l to form induction heads, and the time to load each model.

    python benchmarks/zoo_training.py [--threads 1]

Prints figures only; machines differ too much for timed assertions.
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

import zoo
from zoo import build_model, evaluate
from zoo.train import ZOO, train

THROUGHPUT_STEPS = 20
INDUCTION_THRESHOLD = 0.8
CHECK_EVERY = 100


LOAD_TIMING = """
import time
start = time.perf_counter()
import transformer_lens
imported = time.perf_counter()
import zoo
model = zoo.load_model({name!r}, device="cpu")
print(imported - start, time.perf_counter() - imported)
"""


def load_seconds(name: str) -> tuple[float, float]:
    """In a fresh offline process: seconds to import transformer_lens, then to load the model."""
    completed = subprocess.run(
        [sys.executable, "-c", LOAD_TIMING.format(name=name)], capture_output=True, text=True,
        check=True, cwd=Path(zoo.__file__).parent.parent, env=os.environ | {"HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    import_seconds, load = map(float, completed.stdout.split()[-2:])
    return import_seconds, load


def training_throughput(name: str, threads: int) -> float:
    """Tokens per second of forward, backward and optimiser step on random tokens."""
    torch.set_num_threads(threads)
    config = ZOO[name]
    model = build_model(config.model_config())
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
    tokens = torch.randint(3, model.cfg.d_vocab, (config.batch_size, model.cfg.n_ctx))
    for step in range(THROUGHPUT_STEPS + 3):
        if step == 3:  # the first steps allocate; time the steady state
            start = time.perf_counter()
        model(tokens, return_type="loss").backward()
        optimizer.step()
        optimizer.zero_grad()
    return THROUGHPUT_STEPS * tokens.numel() / (time.perf_counter() - start)


class InductionFound(Exception):
    pass


def time_to_induction(threads: int) -> tuple[int | None, float]:
    """Train attn-only-2l, checking its layer-1 induction score every CHECK_EVERY steps, until it
    passes INDUCTION_THRESHOLD; return that step and the training seconds to get there (the time
    spent checking is not counted)."""
    found = {}
    clock = {"start": time.perf_counter(), "checking": 0.0}

    def on_step(step: int, model) -> None:
        if found or step % CHECK_EVERY:
            return
        check_start = time.perf_counter()
        layer_1_best = evaluate.head_scores(model)["induction"][1].max().item()
        model.train()
        clock["checking"] += time.perf_counter() - check_start
        if layer_1_best >= INDUCTION_THRESHOLD:
            found["step"] = step
            found["seconds"] = time.perf_counter() - clock["start"] - clock["checking"]
            raise InductionFound

    try:
        train(ZOO["attn-only-2l"], on_step=on_step, threads=threads)
    except InductionFound:
        pass
    return found.get("step"), found.get("seconds", float("nan"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="training threads (default 2)")
    threads = parser.parse_args().threads
    for name in zoo.list_models():
        import_seconds, load = load_seconds(name)
        print(f"{name}: loads in {load:.2f} s (after {import_seconds:.1f} s importing transformer_lens)")
    for name in ZOO:
        print(f"{name}: {training_throughput(name, threads):,.0f} training tokens/s")
    step, seconds = time_to_induction(threads)
    if step is None:
        print(f"attn-only-2l: layer-1 induction score never reached {INDUCTION_THRESHOLD}")
    else:
        print(
            f"attn-only-2l: layer-1 induction score >= {INDUCTION_THRESHOLD} at step {step}, "
            f"{seconds:.0f} s of training (including corpus generation)"
        )

"""Reference solutions for 0.3 Optimization and distributed training.

Optimizers follow torch.optim's update rules exactly (default flags: no Nesterov, no dampening, no
centring, no amsgrad), so the checks can pin them against torch. Distributed code runs under
`launch_gloo`, which forks CPU processes joined in a gloo process group on localhost. Importing this
module trains nothing and starts nothing.
"""

from __future__ import annotations

import faulthandler
import itertools
import json
import math
import pickle
import queue
import socket
import struct
import time
import traceback
from collections.abc import Callable, Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn

from course.data import digits

# ----------------------------------------------------------------------------- loss landscapes


def rosenbrock(
    x: Float[Tensor, "*shape"], y: Float[Tensor, "*shape"], a: float = 1.0, b: float = 100.0
) -> Float[Tensor, "*shape"]:
    """Rosenbrock's function of (x, y) with parameters a and b, elementwise over tensors of any shape; its
    minimum is 0 at (a, a^2)."""
    return (a - x) ** 2 + b * (y - x**2) ** 2


def optimizer_path(
    fn: Callable[[Tensor, Tensor], Tensor],
    start: Float[Tensor, " 2"],
    optimizer_class: type,
    hyperparameters: dict[str, Any],
    n_steps: int,
) -> Float[Tensor, "points=n_steps+1 2"]:
    """Minimise fn(x, y) from `start` with n_steps steps of the optimizer; return every point visited,
    the start included."""
    point = start.detach().clone().requires_grad_(True)
    optimizer = optimizer_class([point], **hyperparameters)
    path = [point.detach().clone()]
    for _ in range(n_steps):
        optimizer.zero_grad()
        fn(point[0], point[1]).backward()
        optimizer.step()
        path.append(point.detach().clone())
    return torch.stack(path)


# ----------------------------------------------------------------------------- optimizers


class SGD:
    """Stochastic gradient descent with momentum and (L2) weight decay, as torch.optim.SGD computes it
    with dampening=0 and nesterov=False."""

    def __init__(self, params: Iterable[nn.Parameter], lr: float, momentum: float = 0.0, weight_decay: float = 0.0):
        self.params = list(params)
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay
        self.buffers: list[Tensor | None] = [None for _ in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = p.grad + self.weight_decay * p
            if self.momentum:
                # torch starts the buffer at the first gradient, not at zero
                self.buffers[i] = g.clone() if self.buffers[i] is None else self.momentum * self.buffers[i] + g
                g = self.buffers[i]
            p -= self.lr * g


class RMSprop:
    """RMSprop as torch.optim.RMSprop computes it (centered=False): divide each gradient by a running
    root-mean-square of its recent values."""

    def __init__(
        self,
        params: Iterable[nn.Parameter],
        lr: float = 0.01,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
    ):
        self.params = list(params)
        self.lr, self.alpha, self.eps, self.weight_decay, self.momentum = lr, alpha, eps, weight_decay, momentum
        self.square_avg = [torch.zeros_like(p) for p in self.params]
        self.buffers = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = p.grad + self.weight_decay * p
            self.square_avg[i] = self.alpha * self.square_avg[i] + (1 - self.alpha) * g**2
            scaled = g / (self.square_avg[i].sqrt() + self.eps)
            if self.momentum:
                self.buffers[i] = self.momentum * self.buffers[i] + scaled
                scaled = self.buffers[i]
            p -= self.lr * scaled


class Adam:
    """Adam as torch.optim.Adam computes it (amsgrad=False), with L2 weight decay added to the gradient."""

    def __init__(
        self,
        params: Iterable[nn.Parameter],
        lr: float = 0.001,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        self.params = list(params)
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        self.steps = [0 for _ in self.params]  # per parameter, as torch counts: skipped steps don't count

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        beta1, beta2 = self.betas
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            self.steps[i] += 1
            g = p.grad + self.weight_decay * p
            self.m[i] = beta1 * self.m[i] + (1 - beta1) * g
            self.v[i] = beta2 * self.v[i] + (1 - beta2) * g**2
            m_hat = self.m[i] / (1 - beta1 ** self.steps[i])
            v_hat = self.v[i] / (1 - beta2 ** self.steps[i])
            p -= self.lr * m_hat / (v_hat.sqrt() + self.eps)


class AdamW:
    """AdamW as torch.optim.AdamW computes it: Adam, with weight decay applied to the parameters
    directly ("decoupled") instead of through the gradient."""

    def __init__(
        self,
        params: Iterable[nn.Parameter],
        lr: float = 0.001,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.01,
    ):
        self.params = list(params)
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        self.steps = [0 for _ in self.params]  # per parameter, as torch counts: skipped steps don't count

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        beta1, beta2 = self.betas
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            self.steps[i] += 1
            p *= 1 - self.lr * self.weight_decay
            self.m[i] = beta1 * self.m[i] + (1 - beta1) * p.grad
            self.v[i] = beta2 * self.v[i] + (1 - beta2) * p.grad**2
            m_hat = self.m[i] / (1 - beta1 ** self.steps[i])
            v_hat = self.v[i] / (1 - beta2 ** self.steps[i])
            p -= self.lr * m_hat / (v_hat.sqrt() + self.eps)


class CheckpointAdam(Adam):
    """Adam whose state can be saved and restored: loading a checkpoint taken after some steps into a new
    optimizer, over a copy of the parameters (as a new process would have), makes it continue exactly as
    the original optimizer would have."""

    def state_dict(self) -> dict[str, Any]:
        """A checkpoint of everything the next steps depend on apart from the parameters' values, in plain
        tensors, numbers and containers, so that it survives torch.save and torch.load."""
        hyperparameters = {"lr": self.lr, "betas": self.betas, "eps": self.eps, "weight_decay": self.weight_decay}
        # by position, as torch does: a new process has new parameter objects, in the same order
        state = [
            {"step": self.steps[i], "m": self.m[i].clone(), "v": self.v[i].clone()} for i in range(len(self.params))
        ]
        return {"hyperparameters": hyperparameters, "state": state}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a checkpoint from state_dict, hyperparameters included."""
        for name, value in state_dict["hyperparameters"].items():
            setattr(self, name, value)
        for i, saved in enumerate(state_dict["state"]):
            self.steps[i], self.m[i], self.v[i] = saved["step"], saved["m"].clone(), saved["v"].clone()


class GroupedSGD:
    """SGD with parameter groups, as torch.optim.SGD takes them: `params` is a list of dicts, each with
    "params" and optionally its own "lr", "momentum" or "weight_decay"; a missing key takes the
    constructor's value."""

    def __init__(
        self, params: list[dict[str, Any]], lr: float = 0.001, momentum: float = 0.0, weight_decay: float = 0.0
    ):
        defaults = {"lr": lr, "momentum": momentum, "weight_decay": weight_decay}
        self.param_groups = [{**defaults, **group, "params": list(group["params"])} for group in params]
        seen = [p for group in self.param_groups for p in group["params"]]
        if len(set(map(id, seen))) != len(seen):
            raise ValueError("a parameter appears in more than one group")
        self.buffers: dict[int, Tensor] = {}

    def zero_grad(self) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad + group["weight_decay"] * p
                if group["momentum"]:
                    previous = self.buffers.get(id(p))
                    g = g.clone() if previous is None else group["momentum"] * previous + g
                    self.buffers[id(p)] = g
                p -= group["lr"] * g


def clip_grad_norm(params: Iterable[nn.Parameter], max_norm: float, norm_type: float = 2.0) -> Float[Tensor, ""]:
    """Scale the gradients in place, all by one common factor, so that their norm taken together (as one long
    vector) is at most max_norm, as torch.nn.utils.clip_grad_norm_ does; parameters without a gradient take no
    part. Returns that total norm as it was before clipping (0 when no parameter has a gradient)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    norms = torch.stack([torch.linalg.vector_norm(g, norm_type) for g in grads])
    total = torch.linalg.vector_norm(norms, norm_type)  # the norm of the per-parameter norms is the global norm
    factor = (max_norm / (total + 1e-6)).clamp(max=1.0)  # torch's 1e-6 guards a zero norm; never scale up
    for g in grads:
        g.mul_(factor)
    return total


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, final_fraction: float = 0.0) -> float:
    """The learning-rate multiplier at `step` (counted from 0): a linear warm-up from 0 that reaches 1 at
    warmup_steps, then a cosine decay from 1 to final_fraction, reached at total_steps and held after it.
    Usable as LambdaLR's lr_lambda. Requires 0 <= warmup_steps < total_steps."""
    if step < warmup_steps:
        return step / warmup_steps
    progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))  # held at 1: no second cycle
    return final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * progress))


# ----------------------------------------------------------------------------- sweeps and experiment tracking

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
}


def make_mlp(hidden: int, seed: int) -> nn.Sequential:
    """The sweep's model: flatten an 8x8 digit, one hidden ReLU layer, 10 logits; weights drawn from `seed`."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))


def digit_batches(batch_size: int, steps: int, seed: int) -> list[tuple[Float[Tensor, "b 1 8 8"], Int[Tensor, " b"]]]:
    """`steps` random training batches of the digits (drawn with replacement from `seed`)."""
    images, labels = digits("train")
    gen = torch.Generator().manual_seed(seed)
    return [(images[i], labels[i]) for i in torch.randint(len(images), (steps, batch_size), generator=gen)]


def expand_grid(grid: dict[str, list]) -> list[dict]:
    """Every combination of the grid's values, one dict each, the last key varying fastest."""
    return [dict(zip(grid, values)) for values in itertools.product(*grid.values())]


def train_digits(config: dict[str, Any], log: Callable[[dict[str, float]], None]) -> float:
    """Train the sweep's MLP on the digits with the settings of `config` (optimizer, learning rate, hidden
    size, batch size, steps, seed), built from the course helpers in the order the text gives; log the
    training loss after every step and the validation accuracy at the end, as floats; return the
    validation accuracy."""
    model = make_mlp(config["hidden"], config["seed"])
    optimizer = OPTIMIZERS[config["optimizer"]](model.parameters(), lr=config["lr"])
    for x, y in digit_batches(config["batch_size"], config["steps"], config["seed"]):
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        log({"train_loss": loss.item()})
    images, labels = digits("val")
    with torch.no_grad():
        accuracy = (model(images).argmax(dim=-1) == labels).float().mean().item()
    log({"val_accuracy": accuracy})
    return accuracy


def run_sweep(grid: dict[str, list], directory: str, project: str) -> list[float]:
    """Run train_digits once per configuration of the grid, each as its own offline wandb run (config
    recorded, metrics logged) under `directory`; return the validation accuracies in grid order."""
    import wandb

    quiet = wandb.Settings(silent=True, console="off", save_code=False, x_disable_stats=True, x_disable_meta=True)
    accuracies = []
    for config in expand_grid(grid):
        run = wandb.init(
            project=project,
            dir=directory,
            mode="offline",
            config=config,
            name="-".join(f"{k}={v}" for k, v in config.items()),
            settings=quiet,
        )
        accuracies.append(train_digits(config, run.log))
        run.finish()
    return accuracies


def successive_halving(
    configs: list[dict[str, Any]], evaluate: Callable[[dict[str, Any], int], float], min_budget: int, eta: int = 2
) -> tuple[int, list[tuple[int, int, float]]]:
    """Successive halving over configs: each round evaluates every surviving configuration with the round's
    budget (min_budget in the first round, eta times the previous one after) and keeps the best
    len(survivors) // eta of them (at least one; the lower loss is better, a NaN loss is worse than any
    number, and a tie goes to the configuration listed first), until one survives. Returns the survivor's
    index in configs and every evaluation made, as (index, budget, loss), round by round."""
    survivors, budget, history = list(range(len(configs))), min_budget, []
    while len(survivors) > 1:
        losses = {i: evaluate(configs[i], budget) for i in survivors}
        history += [(i, budget, loss) for i, loss in losses.items()]
        # NaN compares false with everything, so sorting on raw losses would put diverged runs anywhere
        ranked = sorted(survivors, key=lambda i: math.inf if math.isnan(losses[i]) else losses[i])
        survivors = sorted(ranked[: max(1, len(survivors) // eta)])
        budget *= eta
    return survivors[0], history


def _wandb_records(path: Path) -> Iterable[Any]:
    """The protobuf records of an offline run's .wandb file: a 7-byte W&B header, then LevelDB's log
    format (32 KiB blocks of chunks, each with a 7-byte header: crc32, length, type)."""
    from wandb.proto import wandb_internal_pb2

    data, block = path.read_bytes(), 32768
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a wandb run file")
    position, pieces = 7, b""
    while position + 7 <= len(data):
        if block - position % block < 7:  # a block's tail too short for a header is padding
            position += block - position % block
            continue
        length, kind = struct.unpack_from("<HB", data, position + 4)
        pieces += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind == 0:
            break
        if kind in (1, 4):  # a FULL chunk, or the LAST of a FIRST, MIDDLE..., LAST run
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pieces)
            pieces = b""
            yield record


def _item(item: Any) -> tuple[str, Any]:
    """A config, history or summary item as (key, value); wandb writes either key or nested_key, and
    either value_json or a typed value."""
    key = item.key or "/".join(item.nested_key)
    if item.value_json:
        return key, json.loads(item.value_json)
    kind = item.WhichOneof("value") if "value" in item.DESCRIPTOR.oneofs_by_name else None
    return key, getattr(item, kind) if kind else None


def _finished_records(path: Path, wait_s: float) -> list[Any]:
    """The file's records once its run's closing "exit" record is there: wandb's writer process may still be
    flushing for a moment after run.finish() returns."""
    deadline = time.monotonic() + wait_s
    while True:
        records = list(_wandb_records(path))
        if any(r.HasField("exit") for r in records) or time.monotonic() > deadline:
            return records
        time.sleep(0.05)


def read_wandb_runs(directory: str, wait_s: float = 10.0) -> list[dict[str, Any]]:
    """Read back every finished offline run under directory/wandb, in the order they started: its name,
    config, history (each logged key's values, in order) and summary."""
    runs = []
    for path in Path(directory, "wandb").glob("offline-run-*/run-*.wandb"):
        run = {"name": "", "config": {}, "history": {}, "summary": {}, "start": 0}
        for record in _finished_records(path, wait_s):
            if record.HasField("run"):
                run["name"] = record.run.display_name
                run["start"] = record.run.start_time.ToNanoseconds()
                run["config"].update(_item(i) for i in record.run.config.update)
            elif record.HasField("config"):
                run["config"].update(_item(i) for i in record.config.update)
            elif record.HasField("history"):
                for key, value in map(_item, record.history.item):
                    if not key.startswith("_"):
                        run["history"].setdefault(key, []).append(value)
            elif record.HasField("summary"):
                run["summary"].update((k, v) for k, v in map(_item, record.summary.update) if not k.startswith("_"))
        run["config"].pop("_wandb", None)
        runs.append(run)
    runs.sort(key=lambda run: run.pop("start"))
    return runs


# ----------------------------------------------------------------------------- distributed: running a process group


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(fn: Callable, rank: int, world_size: int, port: int, timeout_s: float, results: Any, args: tuple) -> None:
    torch.set_num_threads(1)  # two processes on a two-core machine: one thread each
    # A rank gloo aborts is reported by launch_gloo; the thread dump a parent's faulthandler (pytest's,
    # say) would print on the way down is noise.
    faulthandler.disable()
    try:
        dist.init_process_group(
            "gloo",
            init_method=f"tcp://127.0.0.1:{port}",
            rank=rank,
            world_size=world_size,
            timeout=timedelta(seconds=timeout_s),
        )
        try:
            results.put((rank, "ok", pickle.dumps(fn(*args))))
        finally:
            dist.destroy_process_group()
    except BaseException as error:  # noqa: BLE001 - every failure is reported to the parent
        frames = [
            f
            for f in traceback.extract_tb(error.__traceback__)
            if "site-packages" not in f.filename and f.filename != __file__
        ]
        where = (
            f" (in {frames[-1].name}, line {frames[-1].lineno}: {(frames[-1].line or '').strip()})" if frames else ""
        )
        results.put((rank, type(error).__name__, f"{error}{where}"))


def launch_gloo(fn: Callable, world_size: int, *args: Any, timeout_s: float = 30.0) -> list[Any]:
    """Run fn(*args) in world_size CPU processes joined in a gloo process group on localhost; return the
    results, rank 0's first. Inside fn, dist.get_rank() and dist.get_world_size() say who is who.

    The processes are forked, so fn may be defined anywhere (a notebook cell included). Scripts usually
    start workers with torchrun or torch.multiprocessing.spawn instead, which import fn from a module."""
    context = mp.get_context("fork")
    results = context.Queue()
    port = _free_port()
    workers = [
        context.Process(target=_worker, args=(fn, rank, world_size, port, timeout_s, results, args), daemon=True)
        for rank in range(world_size)
    ]
    for worker in workers:
        worker.start()
    outputs: dict[int, Any] = {}
    failures: dict[int, tuple[str, str]] = {}
    try:
        deadline = time.monotonic() + timeout_s + 10
        while len(outputs) + len(failures) < world_size and time.monotonic() < deadline:
            try:
                rank, status, payload = results.get(timeout=0.2)
            except queue.Empty:
                for rank, worker in enumerate(workers):  # a process gloo aborted reports nothing
                    if worker.exitcode not in (None, 0) and rank not in outputs and rank not in failures:
                        failures[rank] = ("crashed", f"its process died (exit code {worker.exitcode})")
                continue
            if status == "ok":
                outputs[rank] = pickle.loads(payload)
            else:
                failures[rank] = (status, payload)
                deadline = min(deadline, time.monotonic() + 2)  # the other ranks' errors follow within moments
    finally:
        for worker in workers:
            worker.join(timeout=5)
            if worker.is_alive():
                worker.kill()
                worker.join()
    if failures:
        raise _root_cause(failures)
    if len(outputs) < world_size:
        raise TimeoutError(
            f"the process group did not finish within {timeout_s + 10:.0f} s "
            "(a send without a matching recv, or a collective some rank skipped?)"
        )
    return [outputs[rank] for rank in range(world_size)]


def _root_cause(failures: dict[int, tuple[str, str]]) -> Exception:
    """The error that explains the others: when one rank fails, its peers then fail with gloo's "connection
    closed" errors, which say nothing about the cause."""

    def rank_of(item: tuple[int, tuple[str, str]]) -> int:
        status, payload = item[1]
        return 0 if status == "NotImplementedError" else 2 if "gloo/transport" in payload else 1

    rank, (status, payload) = min(failures.items(), key=rank_of)
    if status == "NotImplementedError":
        return NotImplementedError(payload)
    if status == "crashed":
        return RuntimeError(
            f"rank {rank} crashed: {payload}. One cause: gloo aborts a process that receives "
            "a message whose size differs from its buffer's (shapes or dtypes that differ)"
        )
    return RuntimeError(f"rank {rank} raised {status}: {payload}")


# ----------------------------------------------------------------------------- distributed: collectives by hand


def broadcast(tensor: Tensor, src: int) -> Tensor:
    """Every rank returns (and holds, in place) the value of `tensor` on rank src, sent with point-to-point
    messages: src sends to each other rank in turn."""
    if dist.get_rank() == src:
        for rank in range(dist.get_world_size()):
            if rank != src:
                dist.send(tensor, dst=rank)
    else:
        dist.recv(tensor, src=src)
    return tensor


def all_reduce_naive(tensor: Tensor) -> Tensor:
    """Every rank returns (and holds, in place) the sum of `tensor` over all ranks: rank 0 receives every
    other rank's tensor and adds it up, then broadcasts the total."""
    if dist.get_rank() == 0:
        incoming = torch.empty_like(tensor)
        for rank in range(1, dist.get_world_size()):
            dist.recv(incoming, src=rank)
            tensor += incoming
    else:
        dist.send(tensor, dst=0)
    return broadcast(tensor, src=0)


def all_reduce_ring(tensor: Tensor) -> Tensor:
    """The sum over all ranks, in place and returned, by ring all-reduce: split the flattened tensor into
    world_size chunks; in world_size - 1 steps of reduce-scatter each rank passes one chunk to its right
    neighbour, who adds it to its own; then world_size - 1 steps of all-gather pass the finished chunks on."""
    rank, world = dist.get_rank(), dist.get_world_size()
    chunks = list(tensor.view(-1).tensor_split(world))  # views: updates land in `tensor`
    right, left = (rank + 1) % world, (rank - 1) % world
    for step in range(2 * (world - 1)):
        reducing = step < world - 1
        s = step if reducing else step - (world - 1)
        send_index = (rank - s) % world if reducing else (rank + 1 - s) % world
        receive_index = (send_index - 1) % world
        incoming = torch.empty_like(chunks[receive_index])
        request = dist.isend(chunks[send_index].clone(), dst=right)  # isend: every rank sends and receives at once
        dist.recv(incoming, src=left)
        request.wait()
        if reducing:
            chunks[receive_index] += incoming
        else:
            chunks[receive_index].copy_(incoming)
    return tensor


# ----------------------------------------------------------------------------- distributed: data-parallel training


def accumulated_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    inputs: Float[Tensor, "batch ..."],
    targets: Int[Tensor, " batch"],
    micro_batch_size: int,
) -> float:
    """One optimizer step on the whole batch, computed in consecutive micro-batches of micro_batch_size
    examples (the last may be smaller) so that no forward pass sees more than that many; the step is the
    one a single pass over the whole batch with the mean cross-entropy would take. Returns that mean
    cross-entropy over the whole batch, as a float."""
    optimizer.zero_grad()
    total = 0.0
    for start in range(0, len(inputs), micro_batch_size):
        x, y = inputs[start : start + micro_batch_size], targets[start : start + micro_batch_size]
        # each example's share of the batch mean, so a smaller last micro-batch weighs less
        loss = F.cross_entropy(model(x), y, reduction="sum") / len(inputs)
        loss.backward()  # gradients add up in .grad across micro-batches
        total += loss.item()
    optimizer.step()
    return total


def ddp_train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    inputs: Float[Tensor, "batch ..."],
    targets: Int[Tensor, " batch"],
) -> float:
    """One data-parallel step on the global batch: this rank takes every world_size-th example from its
    rank on, computes the mean cross-entropy on that shard, averages gradients over ranks with
    dist.all_reduce, and steps. The batch size must be a multiple of the world size. Returns the loss on
    the whole global batch (the average over ranks)."""
    rank, world = dist.get_rank(), dist.get_world_size()
    loss = F.cross_entropy(model(inputs[rank::world]), targets[rank::world])
    optimizer.zero_grad()
    loss.backward()
    for p in model.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= world
    optimizer.step()
    total = loss.detach().clone()
    dist.all_reduce(total)
    return total.item() / world

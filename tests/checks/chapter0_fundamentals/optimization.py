"""Checks for 0.3 Optimization and distributed training.

Optimizers are pinned against torch.optim (the oracle) by stepping the same seeded parameters on the
same loss. Distributed exercises run inside real gloo process groups (`launch_gloo` forks 2 or 3 CPU
processes; each group costs well under a second). The sweep is checked by reading back what it wrote
to disk through wandb's offline mode.
"""

import math
import os
import tempfile

import torch
import torch.distributed as dist
import torch.nn.functional as F

from solutions.chapter0_fundamentals import optimization as ref
from tests.harness import Case, Checker, Exercise

os.environ.setdefault("WANDB_SILENT", "true")


def _t(*values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


# ----------------------------------------------------------------------------- landscapes


def _rosenbrock_cases(gen):
    yield Case((_t(1.0), _t(1.0)), "the minimum (1, 1)", expected=_t(0.0))
    yield Case((_t(0.0, -1.0, 2.0), _t(0.0, 1.0, 0.0)), "(0, 0), (-1, 1), (2, 0)", expected=_t(1.0, 4.0, 1601.0))
    yield Case((_t(2.0), _t(4.0)), "a = 2, b = 1: minimum at (2, 4)", kwargs={"a": 2.0, "b": 1.0}, expected=_t(0.0))
    yield Case((torch.randn(5, 4, generator=gen), torch.randn(5, 4, generator=gen)), "a 5x4 grid of points")
    yield Case(
        (torch.randn(3, generator=gen), torch.randn(3, generator=gen)), "a = 0.5, b = 10", kwargs={"a": 0.5, "b": 10.0}
    )


def _bowl(x, y):
    return x**2 + y**2


def _optimizer_path_cases(gen):
    # On x^2 + y^2, SGD with lr 0.1 multiplies the point by 1 - 2 * 0.1 = 0.8 each step.
    yield Case(
        (_bowl, _t(1.0, -2.0), torch.optim.SGD, {"lr": 0.1}, 3),
        "SGD on x^2 + y^2 from (1, -2), 3 steps",
        expected=torch.stack([_t(1.0, -2.0) * 0.8**k for k in range(4)]),
    )
    yield Case(
        (_bowl, _t(3.0, 0.5), torch.optim.SGD, {"lr": 0.1}, 0), "no steps: just the start", expected=_t(3.0, 0.5)[None]
    )
    yield Case(
        (ref.rosenbrock, _t(-1.5, 2.5), torch.optim.SGD, {"lr": 0.001, "momentum": 0.9}, 20),
        "SGD with momentum on Rosenbrock",
    )
    yield Case(
        (ref.rosenbrock, torch.randn(2, generator=gen), torch.optim.Adam, {"lr": 0.05}, 15), "Adam on Rosenbrock"
    )


def _optimizer_path_forgets_zero_grad(fn, start, optimizer_class, hyperparameters, n_steps):
    point = start.detach().clone().requires_grad_(True)
    optimizer = optimizer_class([point], **hyperparameters)
    path = [point.detach().clone()]
    for _ in range(n_steps):
        fn(point[0], point[1]).backward()  # gradients pile up across steps
        optimizer.step()
        path.append(point.detach().clone())
    return torch.stack(path)


def _optimizer_path_aliases(fn, start, optimizer_class, hyperparameters, n_steps):
    point = start.detach().clone().requires_grad_(True)
    optimizer = optimizer_class([point], **hyperparameters)
    path = [point.detach()]  # a view of the same storage: every row ends up as the final point
    for _ in range(n_steps):
        optimizer.zero_grad()
        fn(point[0], point[1]).backward()
        optimizer.step()
        path.append(point.detach())
    return torch.stack(path)


# ----------------------------------------------------------------------------- optimizers

STEPS = 8


def _loss(params, targets):
    """A bumpy loss with gradients of different sizes per parameter; the last parameter takes no part
    (its .grad stays None), as a frozen or unused layer would."""
    *used, unused = params
    return sum(
        ((p - t) ** 2 * (1 + i)).sum() + 0.3 * torch.sin(3 * p).sum() for i, (p, t) in enumerate(zip(used, targets))
    )


def _run_optimizer(cls, case):
    """Build fresh parameters from the case, step the optimizer STEPS times, return the parameters
    after each step (so a mistake shows at the step it happens)."""
    initial, targets = case.args
    params = [torch.nn.Parameter(p.clone()) for p in initial]
    optimizer = cls(params, **case.kwargs)
    history = []
    for _ in range(STEPS):
        optimizer.zero_grad()
        _loss(params, targets).backward()
        optimizer.step()
        history.append(torch.stack([p.detach().clone().flatten()[:3] for p in params[:-1]]))
    return [torch.stack(history), *[p.detach().clone() for p in params]]


def _params(gen):
    shapes = [(3,), (2, 4), (5,)]
    initial = [torch.randn(s, generator=gen) for s in shapes]
    targets = [torch.randn(s, generator=gen) for s in shapes[:-1]]
    return initial, targets


def _optimizer_cases(settings):
    def cases(gen):
        for label, kwargs in settings:
            yield Case(_params(gen), label, kwargs=kwargs)

    return cases


class _SGDDampened(ref.SGD):
    """Momentum buffer as an exponential average: buf = mu * buf + (1 - mu) * g."""

    @torch.no_grad()
    def step(self):
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = p.grad + self.weight_decay * p
            if self.momentum:
                self.buffers[i] = (
                    g.clone() if self.buffers[i] is None else self.momentum * self.buffers[i] + (1 - self.momentum) * g
                )
                g = self.buffers[i]
            p -= self.lr * g


class _SGDDecayAfterMomentum(ref.SGD):
    """Weight decay added after the momentum buffer instead of before it."""

    @torch.no_grad()
    def step(self):
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = p.grad
            if self.momentum:
                self.buffers[i] = g.clone() if self.buffers[i] is None else self.momentum * self.buffers[i] + g
                g = self.buffers[i]
            p -= self.lr * (g + self.weight_decay * p)


class _SGDZeroGradDoesNothing(ref.SGD):
    """zero_grad leaves the old gradients in place, so backward() adds to them."""

    def zero_grad(self):
        pass


class _RMSpropEpsInside(ref.RMSprop):
    """eps inside the square root."""

    @torch.no_grad()
    def step(self):
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = p.grad + self.weight_decay * p
            self.square_avg[i] = self.alpha * self.square_avg[i] + (1 - self.alpha) * g**2
            scaled = g / (self.square_avg[i] + self.eps).sqrt()
            if self.momentum:
                self.buffers[i] = self.momentum * self.buffers[i] + scaled
                scaled = self.buffers[i]
            p -= self.lr * scaled


class _RMSpropSwappedAlpha(ref.RMSprop):
    """alpha weights the new squared gradient instead of the running average."""

    @torch.no_grad()
    def step(self):
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = p.grad + self.weight_decay * p
            self.square_avg[i] = (1 - self.alpha) * self.square_avg[i] + self.alpha * g**2
            scaled = g / (self.square_avg[i].sqrt() + self.eps)
            if self.momentum:
                self.buffers[i] = self.momentum * self.buffers[i] + scaled
                scaled = self.buffers[i]
            p -= self.lr * scaled


class _AdamNoBiasCorrection(ref.Adam):
    @torch.no_grad()
    def step(self):
        beta1, beta2 = self.betas
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = p.grad + self.weight_decay * p
            self.m[i] = beta1 * self.m[i] + (1 - beta1) * g
            self.v[i] = beta2 * self.v[i] + (1 - beta2) * g**2
            p -= self.lr * self.m[i] / (self.v[i].sqrt() + self.eps)


class _AdamStepPerParameter(ref.Adam):
    """The step counter increased once per parameter instead of once per step()."""

    @torch.no_grad()
    def step(self):
        beta1, beta2 = self.betas
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            self.t += 1
            g = p.grad + self.weight_decay * p
            self.m[i] = beta1 * self.m[i] + (1 - beta1) * g
            self.v[i] = beta2 * self.v[i] + (1 - beta2) * g**2
            m_hat = self.m[i] / (1 - beta1**self.t)
            v_hat = self.v[i] / (1 - beta2**self.t)
            p -= self.lr * m_hat / (v_hat.sqrt() + self.eps)


class _AdamWCoupled(ref.Adam):
    """AdamW written as Adam with L2 decay: the decay goes through the adaptive scaling."""

    def __init__(self, params, lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(params, lr, betas, eps, weight_decay)


class _AdamWDecayNoLr(ref.AdamW):
    """Decays by weight_decay alone, forgetting to scale it by lr."""

    @torch.no_grad()
    def step(self):
        for p in self.params:
            if p.grad is not None:
                p *= 1 - self.weight_decay
        decay, self.weight_decay = self.weight_decay, 0.0
        try:
            super().step()
        finally:
            self.weight_decay = decay


class _GroupedSGDIgnoresOverrides(ref.GroupedSGD):
    def __init__(self, params, lr=0.001, momentum=0.0, weight_decay=0.0):
        super().__init__([{"params": g["params"]} for g in params], lr, momentum, weight_decay)


class _GroupedSGDSharedBuffer(ref.GroupedSGD):
    """One momentum buffer per group instead of one per parameter: breaks when shapes differ, or mixes."""

    @torch.no_grad()
    def step(self):
        for gi, group in enumerate(self.param_groups):
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad + group["weight_decay"] * p
                if group["momentum"]:
                    previous = self.buffers.get(gi)
                    g = g.clone() if previous is None or previous.shape != g.shape else group["momentum"] * previous + g
                    self.buffers[gi] = g
                p -= group["lr"] * g


def _grouped_cases(gen):
    initial, targets = _params(gen)
    groups = [{"params": [0], "lr": 0.05, "momentum": 0.9}, {"params": [1, 2], "weight_decay": 0.1}]
    yield Case((initial, targets, groups), "two groups: the first overrides lr and momentum", kwargs={"lr": 0.01})
    initial, targets = _params(gen)
    groups = [{"params": [1]}, {"params": [0, 2], "lr": 0.002, "momentum": 0.5, "weight_decay": 0.05}]
    yield Case(
        (initial, targets, groups),
        "default momentum 0.8 in one group, 0.5 in the other",
        kwargs={"lr": 0.03, "momentum": 0.8},
    )
    initial, targets = _params(gen)
    yield Case(
        (initial, targets, [{"params": [0, 1, 2]}]),
        "one group with the defaults",
        kwargs={"lr": 0.02, "momentum": 0.9, "weight_decay": 0.01},
    )


def _run_grouped(cls, case):
    initial, targets, groups = case.args
    params = [torch.nn.Parameter(p.clone()) for p in initial]
    optimizer = cls([{**g, "params": [params[i] for i in g["params"]]} for g in groups], **case.kwargs)
    for _ in range(STEPS):
        optimizer.zero_grad()
        _loss(params, targets).backward()
        optimizer.step()
    return [p.detach().clone() for p in params]


def _run_hand_sgd(cls, case):
    """One step on the loss p . p with p = [1, -2]: the gradient is 2p."""
    p = torch.nn.Parameter(_t(1.0, -2.0))
    optimizer = cls([p], **case.kwargs)
    out = []
    for _ in range(case.args[0]):
        optimizer.zero_grad()
        (p * p).sum().backward()
        optimizer.step()
        out.append(p.detach().clone())
    return torch.stack(out)


def _sgd_cases(gen):
    yield from _optimizer_cases(
        [
            ("lr 0.01", {"lr": 0.01}),
            ("lr 0.02, momentum 0.9", {"lr": 0.02, "momentum": 0.9}),
            ("lr 0.01, weight decay 0.1", {"lr": 0.01, "weight_decay": 0.1}),
            ("lr 0.01, momentum 0.7, weight decay 0.05", {"lr": 0.01, "momentum": 0.7, "weight_decay": 0.05}),
        ]
    )(gen)


def _run_steps(cls, case):
    """Hand-computed cases step the loss p . p; the others the bumpy loss."""
    return _run_hand_sgd(cls, case) if case.label.startswith("by hand") else _run_optimizer(cls, case)


def _sgd_all_cases(gen):
    # p = [1, -2], gradient 2p. lr 0.1, momentum 0.5: step 1 buf = 2p0 = [2, -4], p1 = p0 - 0.1 buf = [0.8, -1.6];
    # step 2 buf = 0.5 [2, -4] + 2 p1 = [2.6, -5.2], p2 = p1 - 0.1 buf = [0.54, -1.08].
    yield Case(
        (2,),
        "by hand: p = [1, -2], loss p.p, lr 0.1, momentum 0.5",
        kwargs={"lr": 0.1, "momentum": 0.5},
        expected=torch.stack([_t(0.8, -1.6), _t(0.54, -1.08)]),
    )
    yield from _sgd_cases(gen)


def _adam_hand_case():
    # Adam's first step moves each coordinate by lr * sign(g) (m_hat = g, v_hat = g^2), up to eps.
    return Case(
        (1,), "by hand: the first Adam step is lr * sign(gradient)", kwargs={"lr": 0.1}, expected=_t(0.9, -1.9)[None]
    )


def _adam_cases(gen):
    yield _adam_hand_case()
    yield from _optimizer_cases(
        [
            ("lr 0.1", {"lr": 0.1}),
            ("lr 0.05, betas (0.8, 0.95)", {"lr": 0.05, "betas": (0.8, 0.95)}),
            ("lr 0.05, weight decay 0.1 (L2)", {"lr": 0.05, "weight_decay": 0.1}),
            ("lr 0.01, eps 0.1", {"lr": 0.01, "eps": 0.1}),
        ]
    )(gen)


def _adamw_cases(gen):
    # AdamW's first step: decay p by (1 - lr wd), then lr * sign(g). lr 0.1, wd 0.5: [1, -2] -> [0.95, -1.9] -> [0.85, -1.8].
    yield Case(
        (1,),
        "by hand: p (1 - lr wd) - lr sign(g)",
        kwargs={"lr": 0.1, "weight_decay": 0.5},
        expected=_t(0.85, -1.8)[None],
    )
    yield from _optimizer_cases(
        [
            ("lr 0.1, default weight decay 0.01", {"lr": 0.1}),
            ("lr 0.05, weight decay 0.5", {"lr": 0.05, "weight_decay": 0.5}),
            ("lr 0.05, betas (0.8, 0.9), weight decay 0.2", {"lr": 0.05, "betas": (0.8, 0.9), "weight_decay": 0.2}),
        ]
    )(gen)


def _rmsprop_cases(gen):
    # First RMSprop step: v = (1 - alpha) g^2, so p -= lr g / (sqrt(1 - alpha) |g|) = lr sign(g) / sqrt(1 - alpha).
    # alpha 0.75: sqrt(0.25) = 0.5, so with lr 0.1 each coordinate moves 0.2 against its gradient.
    yield Case(
        (1,),
        "by hand: alpha 0.75, lr 0.1, first step moves 0.2",
        kwargs={"lr": 0.1, "alpha": 0.75},
        expected=_t(0.8, -1.8)[None],
    )
    yield from _optimizer_cases(
        [
            ("lr 0.01", {"lr": 0.01}),
            ("lr 0.01, alpha 0.9, momentum 0.8", {"lr": 0.01, "alpha": 0.9, "momentum": 0.8}),
            ("lr 0.02, weight decay 0.1, eps 0.01", {"lr": 0.02, "weight_decay": 0.1, "eps": 0.01}),
        ]
    )(gen)


# ----------------------------------------------------------------------------- sweeps


def _expand_grid_cases(gen):
    yield Case(
        ({"lr": [0.1, 0.01], "optimizer": ["sgd", "adam"]},),
        "2 x 2",
        expected=[
            {"lr": 0.1, "optimizer": "sgd"},
            {"lr": 0.1, "optimizer": "adam"},
            {"lr": 0.01, "optimizer": "sgd"},
            {"lr": 0.01, "optimizer": "adam"},
        ],
    )
    yield Case(({"seed": [0, 1, 2]},), "one key", expected=[{"seed": 0}, {"seed": 1}, {"seed": 2}])
    yield Case(
        ({"a": [1], "b": [2, 3], "c": ["x"]},),
        "keys with a single value",
        expected=[{"a": 1, "b": 2, "c": "x"}, {"a": 1, "b": 3, "c": "x"}],
    )
    yield Case(({"a": [1, 2], "b": []},), "an empty list: no configurations", expected=[])


def _expand_grid_first_fastest(grid):
    keys = list(grid)
    combos = [dict(zip(keys[::-1], v)) for v in __import__("itertools").product(*[grid[k] for k in keys[::-1]])]
    return [{k: c[k] for k in keys} for c in combos]


def _expand_grid_zip(grid):
    return [dict(zip(grid, values)) for values in zip(*grid.values())]


CONFIG = {"optimizer": "sgd", "lr": 0.1, "hidden": 16, "batch_size": 32, "steps": 12, "seed": 0}


def _run_train_digits(impl, case):
    logged = []
    accuracy = impl(dict(case.args[0]), logged.append)
    losses = [entry["train_loss"] for entry in logged if "train_loss" in entry]
    accuracies = [entry["val_accuracy"] for entry in logged if "val_accuracy" in entry]
    keys = sorted({k for entry in logged for k in entry})
    return [accuracy, torch.tensor(losses, dtype=torch.float64), torch.tensor(accuracies, dtype=torch.float64), keys]


def _train_digits_cases(gen):
    yield Case((CONFIG,), "SGD, lr 0.1, 12 steps")
    yield Case(({**CONFIG, "lr": 0.5, "seed": 3, "hidden": 8, "batch_size": 16},), "SGD, lr 0.5, seed 3")
    yield Case(({**CONFIG, "steps": 0},), "no steps: only the validation accuracy is logged (the untrained model's)")


def _train_digits_oracle(config, log):
    """Plain SGD written out with torch.autograd.grad and log-softmax: no torch.optim, no cross_entropy."""
    assert config["optimizer"] == "sgd"
    model = ref.make_mlp(config["hidden"], config["seed"])
    params = list(model.parameters())
    for x, y in ref.digit_batches(config["batch_size"], config["steps"], config["seed"]):
        loss = -model(x).log_softmax(dim=-1).gather(1, y[:, None]).mean()
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, g in zip(params, grads):
                p -= config["lr"] * g
        log({"train_loss": loss.item()})
    images, labels = ref.digits("val")
    with torch.no_grad():
        accuracy = (model(images).argmax(dim=-1) == labels).float().mean().item()
    log({"val_accuracy": accuracy})
    return accuracy


def _train_digits_no_zero_grad(config, log):
    model = ref.make_mlp(config["hidden"], config["seed"])
    optimizer = ref.OPTIMIZERS[config["optimizer"]](model.parameters(), lr=config["lr"])
    for x, y in ref.digit_batches(config["batch_size"], config["steps"], config["seed"]):
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        log({"train_loss": loss.item()})
    images, labels = ref.digits("val")
    accuracy = (model(images).argmax(dim=-1) == labels).float().mean().item()
    log({"val_accuracy": accuracy})
    return accuracy


def _train_digits_logs_once(config, log):
    """Keeps the losses and logs them all at the end, as one entry."""
    entries = []
    accuracy = ref.train_digits(config, entries.append)
    log({"train_loss": entries[-2]["train_loss"] if len(entries) > 1 else math.nan, "val_accuracy": accuracy})
    return accuracy


SWEEP_GRID = {"optimizer": ["sgd", "adam"], "lr": [0.05], "hidden": [8], "batch_size": [32], "steps": [5], "seed": [1]}


def _run_sweep_cases(gen):
    configs = [
        {"optimizer": o, "lr": 0.05, "hidden": 8, "batch_size": 32, "steps": 5, "seed": 1} for o in ("sgd", "adam")
    ]
    yield Case((SWEEP_GRID,), "two optimizers, one learning rate", expected=[2, configs, [5, 5], [1, 1], True])
    yield Case(
        ({"lr": [0.1], "hidden": [4], "optimizer": ["sgd"], "batch_size": [8], "steps": [3], "seed": [0]},),
        "a single configuration",
        expected=[
            1,
            [{"lr": 0.1, "hidden": 4, "optimizer": "sgd", "batch_size": 8, "steps": 3, "seed": 0}],
            [3],
            [1],
            True,
        ],
    )


def _run_run_sweep(impl, case):
    """What was written to disk: the number of runs, their configs, how many train_loss and val_accuracy
    values each logged, and whether the returned accuracies are the logged ones."""
    import wandb

    with tempfile.TemporaryDirectory() as directory:
        try:
            accuracies = impl(case.args[0], directory, "check")
        finally:
            if wandb.run is not None:  # a run left open would not be written out in full
                wandb.finish()
        runs = ref.read_wandb_runs(directory)
    logged = [run["history"].get("val_accuracy", [math.nan])[-1] for run in runs]
    returned = list(accuracies) if isinstance(accuracies, (list, tuple)) else accuracies
    matches = (
        isinstance(returned, list)
        and len(returned) == len(logged)
        and all(isinstance(a, float) and abs(a - b) < 1e-6 for a, b in zip(returned, logged))
    )
    return [
        len(runs),
        [run["config"] for run in runs],
        [len(run["history"].get("train_loss", [])) for run in runs],
        [len(run["history"].get("val_accuracy", [])) for run in runs],
        matches,
    ]


def _sweep_without_config(grid, directory, project):
    accuracies = []
    for config in ref.expand_grid(grid):
        import wandb

        run = wandb.init(
            project=project, dir=directory, mode="offline", settings=wandb.Settings(silent=True, console="off")
        )
        accuracies.append(ref.train_digits(config, run.log))
        run.finish()
    return accuracies


def _sweep_one_run(grid, directory, project):
    import wandb

    run = wandb.init(
        project=project,
        dir=directory,
        mode="offline",
        config=ref.expand_grid(grid)[0],
        settings=wandb.Settings(silent=True, console="off"),
    )
    accuracies = [ref.train_digits(config, run.log) for config in ref.expand_grid(grid)]
    run.finish()
    return accuracies


# ----------------------------------------------------------------------------- distributed


def _collective_cases(gen):
    for world, shape in [(2, (6,)), (2, (3, 4)), (3, (7,)), (3, (2, 5))]:
        yield Case((world, torch.randn(world, *shape, generator=gen)), f"{world} ranks, tensors of shape {shape}")


def _collective_job(impl, data, with_src):
    rank = dist.get_rank()
    mine = data[rank].clone()
    out = impl(mine, 1) if with_src else impl(mine)
    return [out, mine]


def _run_collective(with_src):
    def run(impl, case):
        world, data = case.args
        results = ref.launch_gloo(_collective_job, world, impl, data, with_src)
        # each rank's return value and what it holds afterwards (the operation is in place, like dist.broadcast)
        return [r for pair in results for r in pair]

    return run


def _broadcast_oracle(tensor, src):
    dist.broadcast(tensor, src=src)
    return tensor


def _all_reduce_oracle(tensor):
    dist.all_reduce(tensor)
    return tensor


def _broadcast_from_zero(tensor, src):
    if dist.get_rank() == 0:
        for rank in range(1, dist.get_world_size()):
            dist.send(tensor, dst=rank)
    else:
        dist.recv(tensor, src=0)
    return tensor


def _broadcast_copy(tensor, src):
    """Receives into a new tensor and returns it, leaving the caller's tensor unchanged."""
    out = tensor.clone()
    if dist.get_rank() == src:
        for rank in range(dist.get_world_size()):
            if rank != src:
                dist.send(out, dst=rank)
    else:
        dist.recv(out, src=src)
    return out


def _all_reduce_rank0_only(tensor):
    """Sums on rank 0 but forgets to send the total back."""
    if dist.get_rank() == 0:
        incoming = torch.empty_like(tensor)
        for rank in range(1, dist.get_world_size()):
            dist.recv(incoming, src=rank)
            tensor += incoming
    else:
        dist.send(tensor, dst=0)
    return tensor


def _all_reduce_mean(tensor):
    ref.all_reduce_naive(tensor)
    tensor /= dist.get_world_size()
    return tensor


def _ring_reduce_scatter_only(tensor):
    rank, world = dist.get_rank(), dist.get_world_size()
    chunks = list(tensor.view(-1).tensor_split(world))
    for step in range(world - 1):
        send_index = (rank - step) % world
        receive_index = (send_index - 1) % world
        incoming = torch.empty_like(chunks[receive_index])
        request = dist.isend(chunks[send_index].clone(), dst=(rank + 1) % world)
        dist.recv(incoming, src=(rank - 1) % world)
        request.wait()
        chunks[receive_index] += incoming
    return tensor


def _ring_naive_once_around(tensor):
    """Passes the whole tensor once round the ring and adds: each rank only gets its left neighbour's."""
    rank, world = dist.get_rank(), dist.get_world_size()
    incoming = torch.empty_like(tensor)
    request = dist.isend(tensor.clone(), dst=(rank + 1) % world)
    dist.recv(incoming, src=(rank - 1) % world)
    request.wait()
    tensor += incoming
    return tensor


DDP_STEPS = 4


def _ddp_job(impl, seed, inputs, targets, lr):
    model = ref.make_mlp(8, seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    losses = [impl(model, optimizer, inputs, targets) for _ in range(DDP_STEPS)]
    return [losses, [p.detach().clone() for p in model.parameters()]]


def _run_ddp(impl, case):
    world, seed, inputs, targets, lr = case.args
    results = ref.launch_gloo(_ddp_job, world, impl, seed, inputs, targets, lr)
    return [item for result in results for item in result]


def _ddp_oracle(model, optimizer, inputs, targets):
    """Single-process training on the whole batch: what data-parallel training must reproduce."""
    loss = F.cross_entropy(model(inputs), targets)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def _ddp_no_average(model, optimizer, inputs, targets):
    rank, world = dist.get_rank(), dist.get_world_size()
    loss = F.cross_entropy(model(inputs[rank::world]), targets[rank::world])
    optimizer.zero_grad()
    loss.backward()
    for p in model.parameters():
        dist.all_reduce(p.grad)  # summed, not averaged: the step is world_size times too big
    total = loss.detach().clone()
    dist.all_reduce(total)
    return total.item() / world


def _ddp_local_only(model, optimizer, inputs, targets):
    rank, world = dist.get_rank(), dist.get_world_size()
    loss = F.cross_entropy(model(inputs[rank::world]), targets[rank::world])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()  # no communication: the replicas drift apart
    return loss.item()


def _ddp_cases(gen):
    images, labels = ref.digits("train")
    for world, batch in [(2, 32), (2, 8), (3, 24)]:
        idx = torch.randint(len(images), (batch,), generator=gen)
        yield Case(
            (world, int(torch.randint(100, (), generator=gen)), images[idx], labels[idx], 0.1),
            f"{world} ranks, a global batch of {batch}",
        )


check = Checker(
    "0.3",
    [
        Exercise(
            ref.rosenbrock,
            _rosenbrock_cases,
            hint="Elementwise tensor arithmetic: (a - x) ** 2 + b * (y - x ** 2) ** 2.",
            wrong={
                "b on the wrong term": lambda x, y, a=1.0, b=100.0: b * (a - x) ** 2 + (y - x**2) ** 2,
                "x instead of x squared": lambda x, y, a=1.0, b=100.0: (a - x) ** 2 + b * (y - x) ** 2,
            },
        ),
        Exercise(
            ref.optimizer_path,
            _optimizer_path_cases,
            run=lambda impl, case: impl(*case.args),  # with autograd on
            hint="Make the point a fresh leaf (start.detach().clone().requires_grad_(True)), then each step: "
            "zero_grad, evaluate fn(point[0], point[1]), backward, step, and store point.detach().clone().",
            wrong={
                "no zero_grad: gradients accumulate": _optimizer_path_forgets_zero_grad,
                "stores views of the point, not copies": _optimizer_path_aliases,
            },
        ),
        Exercise(
            ref.SGD,
            _sgd_all_cases,
            run=_run_steps,
            oracle=torch.optim.SGD,
            hint="Per parameter with a gradient: g = grad + weight_decay * p; with momentum, buf = g on the first "
            "step and momentum * buf + g after; then p -= lr * buf (or lr * g). Skip parameters whose .grad is None.",
            wrong={
                "dampened momentum (1 - mu) * g": _SGDDampened,
                "weight decay after momentum": _SGDDecayAfterMomentum,
                "zero_grad does nothing": _SGDZeroGradDoesNothing,
            },
        ),
        Exercise(
            ref.RMSprop,
            _rmsprop_cases,
            run=_run_steps,
            oracle=torch.optim.RMSprop,
            hint="v = alpha * v + (1 - alpha) * g**2 (v starts at 0); step = g / (sqrt(v) + eps), eps outside the "
            "root; with momentum, buf = momentum * buf + step (buf starts at 0); p -= lr * step (or buf).",
            wrong={
                "eps inside the square root": _RMSpropEpsInside,
                "alpha and 1 - alpha swapped": _RMSpropSwappedAlpha,
            },
        ),
        Exercise(
            ref.Adam,
            _adam_cases,
            oracle=torch.optim.Adam,
            run=_run_steps,
            hint="Count steps from 1 (once per step() call). m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2, then "
            "divide by the bias corrections 1 - b1^t and 1 - b2^t; p -= lr * m_hat / (sqrt(v_hat) + eps).",
            wrong={"no bias correction": _AdamNoBiasCorrection, "step counted per parameter": _AdamStepPerParameter},
        ),
        Exercise(
            ref.AdamW,
            _adamw_cases,
            oracle=torch.optim.AdamW,
            run=_run_steps,
            hint="Decay first, on the parameter itself: p *= 1 - lr * weight_decay. Then an Adam step on the raw "
            "gradient, with no weight decay added to it.",
            wrong={
                "L2 decay through the gradient (that is Adam)": _AdamWCoupled,
                "decay not scaled by lr": _AdamWDecayNoLr,
            },
        ),
        Exercise(
            ref.GroupedSGD,
            _grouped_cases,
            run=_run_grouped,
            oracle=torch.optim.SGD,
            hint="Build each group as {**defaults, **group}: the group's own keys win. Keep one momentum buffer per "
            "parameter (a dict keyed by id(p) works), and use the group's lr, momentum and weight_decay.",
            wrong={
                "ignores the groups' own settings": _GroupedSGDIgnoresOverrides,
                "one momentum buffer per group": _GroupedSGDSharedBuffer,
            },
        ),
        Exercise(
            ref.expand_grid,
            _expand_grid_cases,
            hint="itertools.product(*grid.values()) gives the value tuples in the right order; zip each with the keys.",
            wrong={"first key varies fastest": _expand_grid_first_fastest, "zip instead of product": _expand_grid_zip},
        ),
        Exercise(
            ref.train_digits,
            _train_digits_cases,
            run=_run_train_digits,
            oracle=_train_digits_oracle,
            atol=1e-5,
            hint="model = make_mlp(config['hidden'], config['seed']) first, then the optimizer, then loop over "
            "digit_batches(...): loss, zero_grad, backward, step, log({'train_loss': loss.item()}). At the "
            "end, log({'val_accuracy': ...}) on digits('val') and return it.",
            wrong={"no zero_grad": _train_digits_no_zero_grad, "logs once at the end": _train_digits_logs_once},
        ),
        Exercise(
            ref.run_sweep,
            _run_sweep_cases,
            run=_run_run_sweep,
            hint="For each config in expand_grid(grid): run = wandb.init(project=project, dir=directory, "
            "mode='offline', config=config), accuracy = train_digits(config, run.log), run.finish().",
            wrong={"config not recorded": _sweep_without_config, "one run for the whole sweep": _sweep_one_run},
        ),
        Exercise(
            ref.broadcast,
            _collective_cases,
            run=_run_collective(True),
            oracle=_broadcast_oracle,
            hint="If dist.get_rank() == src: dist.send(tensor, dst=r) for every other rank r. Otherwise "
            "dist.recv(tensor, src=src), which writes into tensor. Return tensor.",
            wrong={"always broadcasts from rank 0": _broadcast_from_zero, "receives into a copy": _broadcast_copy},
        ),
        Exercise(
            ref.all_reduce_naive,
            _collective_cases,
            run=_run_collective(False),
            oracle=_all_reduce_oracle,
            hint="Ranks other than 0 send their tensor to rank 0; rank 0 receives each into a buffer and adds it "
            "to its own. Then broadcast(tensor, src=0) so every rank holds the total.",
            wrong={
                "the total stays on rank 0": _all_reduce_rank0_only,
                "averages instead of summing": _all_reduce_mean,
            },
        ),
        Exercise(
            ref.all_reduce_ring,
            _collective_cases,
            run=_run_collective(False),
            oracle=_all_reduce_oracle,
            hint="Chunks: tensor.view(-1).tensor_split(world). Reduce-scatter step s: send chunk (rank - s) % world "
            "to the right (isend), recv chunk (rank - s - 1) % world from the left and add it. All-gather step s: "
            "send chunk (rank + 1 - s) % world, recv chunk (rank - s) % world and copy it in.",
            wrong={
                "reduce-scatter without the all-gather": _ring_reduce_scatter_only,
                "the whole tensor once round the ring": _ring_naive_once_around,
            },
        ),
        Exercise(
            ref.ddp_train_step,
            _ddp_cases,
            run=_run_ddp,
            oracle=_ddp_oracle,
            atol=1e-6,
            hint="Shard with inputs[rank::world] (and targets), take the mean loss on the shard, backward, then for "
            "each parameter dist.all_reduce(p.grad) and divide by world; step. Return the all-reduced loss / world.",
            wrong={"sums gradients without averaging": _ddp_no_average, "no communication at all": _ddp_local_only},
        ),
    ],
)

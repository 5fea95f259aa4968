"""Checks for 0.3 Optimization and distributed training.

Optimizers are pinned against torch.optim (the oracle) by stepping the same seeded parameters on the
same loss. Distributed exercises run inside real gloo process groups (`launch_gloo` forks 2 or 3 CPU
processes; each group costs well under a second). The sweep is checked by reading back what it wrote
to disk through wandb's offline mode.
"""

import io
import itertools
import math
import os
import tempfile

import torch
import torch.distributed as dist
import torch.nn.functional as F

from solutions.chapter0_fundamentals import optimization as ref
from tests.harness import Case, Checker, Exercise, Mismatch, describe

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
    yield Case(
        (_bowl, _t(1.0, -2.0).requires_grad_(True), torch.optim.SGD, {"lr": 0.1}, 2),
        "a start that itself requires grad (the end of an earlier path, say)",
        expected=torch.stack([_t(1.0, -2.0) * 0.8**k for k in range(3)]),
    )
    yield Case(
        (_bowl, torch.tensor([0.5, 1.5], dtype=torch.float64), torch.optim.SGD, {"lr": 0.1}, 2),
        "a float64 start: the path keeps its dtype",
        expected=torch.stack([torch.tensor([0.5, 1.5], dtype=torch.float64) * 0.8**k for k in range(3)]),
    )


@torch.enable_grad()  # the harness replays known mistakes under no_grad; these runs need autograd
def _run_path(impl, case):
    return impl(*case.args)


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


def _optimizer_path_not_detached(fn, start, optimizer_class, hyperparameters, n_steps):
    point = start.clone().requires_grad_(True)  # a start that requires grad gives a non-leaf copy
    optimizer = optimizer_class([point], **hyperparameters)
    path = [point.detach().clone()]
    for _ in range(n_steps):
        optimizer.zero_grad()
        fn(point[0], point[1]).backward()
        optimizer.step()
        path.append(point.detach().clone())
    return torch.stack(path)


def _optimizer_path_float32_buffer(fn, start, optimizer_class, hyperparameters, n_steps):
    point = start.detach().clone().requires_grad_(True)
    optimizer = optimizer_class([point], **hyperparameters)
    path = torch.zeros(n_steps + 1, 2)  # the default dtype, whatever start's is
    path[0] = point.detach()
    for k in range(1, n_steps + 1):
        optimizer.zero_grad()
        fn(point[0], point[1]).backward()
        optimizer.step()
        path[k] = point.detach()
    return path


def _optimizer_path_new_optimizer_each_step(fn, start, optimizer_class, hyperparameters, n_steps):
    point = start.detach().clone().requires_grad_(True)
    path = [point.detach().clone()]
    for _ in range(n_steps):
        optimizer = optimizer_class([point], **hyperparameters)  # momentum and running averages restart
        optimizer.zero_grad()
        fn(point[0], point[1]).backward()
        optimizer.step()
        path.append(point.detach().clone())
    return torch.stack(path)


# ----------------------------------------------------------------------------- optimizers

STEPS = 8


def _loss(params, targets, step=0, setup=None):
    """A bumpy loss with gradients of different sizes per parameter; the last parameter takes no part
    (its .grad stays None), as a frozen or unused layer would. With setup["alternate"], the second
    parameter is used on even steps only (on odd steps its .grad is None after zero_grad)."""
    setup = setup or {}
    *used, _unused = params
    total = 0.0
    for i, (p, t) in enumerate(zip(used, targets)):
        if i == 1 and setup.get("alternate") and step % 2:
            continue
        total = total + ((p - t) ** 2 * (1 + i)).sum() + 0.3 * torch.sin(3 * p).sum()
    return total


def _run_optimizer(cls, case):
    """Build fresh parameters from the case, step the optimizer STEPS times, return the parameters
    after each step (so a mistake shows at the step it happens) and at the end, each under a name the
    verdict prints."""
    initial, targets, setup = case.args
    params = [torch.nn.Parameter(p.clone()) for p in initial]
    optimizer = cls((p for p in params) if setup.get("generator") else params, **case.kwargs)
    history = []
    for step in range(STEPS):
        optimizer.zero_grad()
        _loss(params, targets, step, setup).backward()
        optimizer.step()
        history.append(torch.stack([p.detach().clone().flatten()[:3] for p in params[:-1]]))
    return {
        "(step, parameter, value) after each step": torch.stack(history),
        **{
            f"parameter {i} at the end" + (" (never used)" if i == len(params) - 1 else ""): p.detach().clone()
            for i, p in enumerate(params)
        },
    }


def _params(gen):
    shapes = [(3,), (2, 4), (5,)]
    initial = [torch.randn(s, generator=gen) for s in shapes]
    targets = [torch.randn(s, generator=gen) for s in shapes[:-1]]
    return initial, targets


def _optimizer_cases(settings):
    """Cases from (label, constructor kwargs) or (label, kwargs, setup of the loss, see _loss)."""

    def cases(gen):
        for label, kwargs, *setup in settings:
            yield Case((*_params(gen), setup[0] if setup else {}), label, kwargs=kwargs)

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


class _AdamGlobalCounterPerParameter(ref.Adam):
    """One step counter for the whole optimizer, increased once per parameter."""

    def __init__(self, params, lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr, betas, eps, weight_decay)
        self.t = 0

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


class _SGDKeepsIterator(ref.SGD):
    """Keeps `params` as given: a generator (model.parameters()) is used up by the first pass over it."""

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0):
        self.params = params
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay
        self.buffers = {}

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self):
        for p in self.params:
            if p.grad is None:
                continue
            g = p.grad + self.weight_decay * p
            if self.momentum:
                previous = self.buffers.get(p)
                g = g.clone() if previous is None else self.momentum * previous + g
                self.buffers[p] = g
            p -= self.lr * g


def _zero_fill(self):
    """zero_grad that zeroes existing gradients instead of clearing them: a parameter the next loss does not
    use then has a gradient of zeros, not None, and is updated (decayed, moved by momentum) anyway."""
    for p in self.params:
        if p.grad is not None:
            p.grad.zero_()


class _SGDZeroFill(ref.SGD):
    zero_grad = _zero_fill


class _SGDMissingGradAsZero(ref.SGD):
    """A parameter without .grad is stepped as if its gradient were 0 (so weight decay still moves it)."""

    @torch.no_grad()
    def step(self):
        for p in self.params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        super().step()


class _RMSpropNoEps(ref.RMSprop):
    """Divides by the root-mean-square alone, ignoring eps."""

    @torch.no_grad()
    def step(self):
        eps, self.eps = self.eps, 0.0
        try:
            super().step()
        finally:
            self.eps = eps


class _RMSpropAverageStartsAtFirst(ref.RMSprop):
    """The running average of squared gradients starts at the first squared gradient instead of 0."""

    def __init__(self, params, lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0):
        super().__init__(params, lr, alpha, eps, weight_decay, momentum)
        self.square_avg = [None for _ in self.params]

    @torch.no_grad()
    def step(self):
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = p.grad + self.weight_decay * p
            previous = self.square_avg[i]
            self.square_avg[i] = g**2 if previous is None else self.alpha * previous + (1 - self.alpha) * g**2
            scaled = g / (self.square_avg[i].sqrt() + self.eps)
            if self.momentum:
                self.buffers[i] = self.momentum * self.buffers[i] + scaled
                scaled = self.buffers[i]
            p -= self.lr * scaled


class _RMSpropMomentumBeforeDividing(ref.RMSprop):
    """The momentum buffer accumulates raw gradients, and the buffer is divided by the root-mean-square."""

    @torch.no_grad()
    def step(self):
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = p.grad + self.weight_decay * p
            self.square_avg[i] = self.alpha * self.square_avg[i] + (1 - self.alpha) * g**2
            if self.momentum:
                self.buffers[i] = self.momentum * self.buffers[i] + g
                g = self.buffers[i]
            p -= self.lr * g / (self.square_avg[i].sqrt() + self.eps)


class _AdamNoEps(ref.Adam):
    """Divides by the root of v_hat alone, ignoring eps."""

    @torch.no_grad()
    def step(self):
        eps, self.eps = self.eps, 0.0
        try:
            super().step()
        finally:
            self.eps = eps


class _AdamEpsOnUncorrectedRoot(ref.Adam):
    """The paper's "efficient" form: the bias corrections folded into the step size, so eps is added to the
    root of the uncorrected v. Invisible with the default eps and ordinary gradients."""

    @torch.no_grad()
    def step(self):
        beta1, beta2 = self.betas
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            self.steps[i] += 1
            t = self.steps[i]
            step_size = self.lr * math.sqrt(1 - beta2**t) / (1 - beta1**t)
            g = p.grad + self.weight_decay * p
            self.m[i] = beta1 * self.m[i] + (1 - beta1) * g
            self.v[i] = beta2 * self.v[i] + (1 - beta2) * g**2
            p -= step_size * self.m[i] / (self.v[i].sqrt() + self.eps)


class _AdamOneCounter(ref.Adam):
    """One step counter for the whole optimizer, increased once per step(): a parameter that had no gradient
    on some steps then gets the bias correction of steps it never took."""

    def __init__(self, params, lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr, betas, eps, weight_decay)
        self.t = 0

    @torch.no_grad()
    def step(self):
        self.t += 1
        beta1, beta2 = self.betas
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = p.grad + self.weight_decay * p
            self.m[i] = beta1 * self.m[i] + (1 - beta1) * g
            self.v[i] = beta2 * self.v[i] + (1 - beta2) * g**2
            m_hat = self.m[i] / (1 - beta1**self.t)
            v_hat = self.v[i] / (1 - beta2**self.t)
            p -= self.lr * m_hat / (v_hat.sqrt() + self.eps)


class _AdamStoresCorrected(ref.Adam):
    """Writes the bias-corrected averages back into m and v, so the correction compounds step after step."""

    @torch.no_grad()
    def step(self):
        beta1, beta2 = self.betas
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            self.steps[i] += 1
            g = p.grad + self.weight_decay * p
            self.m[i] = (beta1 * self.m[i] + (1 - beta1) * g) / (1 - beta1 ** self.steps[i])
            self.v[i] = (beta2 * self.v[i] + (1 - beta2) * g**2) / (1 - beta2 ** self.steps[i])
            p -= self.lr * self.m[i] / (self.v[i].sqrt() + self.eps)


class _AdamDecoupled(ref.AdamW):
    """Adam's weight_decay applied to the parameters directly (that is AdamW), with Adam's default of 0."""

    def __init__(self, params, lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr, betas, eps, weight_decay)


class _AdamZeroFill(ref.Adam):
    zero_grad = _zero_fill


class _AdamWDecayAfterUpdate(ref.AdamW):
    """Shrinks the parameter after the Adam update instead of before it."""

    @torch.no_grad()
    def step(self):
        decay, self.weight_decay = self.weight_decay, 0.0
        try:
            super().step()
        finally:
            self.weight_decay = decay
        for p in self.params:
            if p.grad is not None:
                p *= 1 - self.lr * self.weight_decay


class _AdamWDecaysEverything(ref.AdamW):
    """Decays every parameter, including those without a gradient (torch leaves them alone)."""

    @torch.no_grad()
    def step(self):
        for p in self.params:
            if p.grad is None:
                p *= 1 - self.lr * self.weight_decay
        super().step()


class _AdamWZeroFill(ref.AdamW):
    zero_grad = _zero_fill


# ----------------------------------------------------------------------------- checkpoints

CHECKPOINT_BEFORE, CHECKPOINT_AFTER = 3, 5


@torch.enable_grad()  # the harness replays known mistakes under no_grad; these runs need autograd
def _run_checkpoint(cls, case):
    """Step, save through torch.save, load into a new optimizer over copies of the parameters, and step both
    the original and the resumed one on, on the same losses."""
    initial, targets, setup = case.args
    params = [torch.nn.Parameter(p.clone()) for p in initial]
    original = cls(params, **case.kwargs)
    for step in range(CHECKPOINT_BEFORE):
        original.zero_grad()
        _loss(params, targets, step, setup).backward()
        original.step()
    buffer = io.BytesIO()
    torch.save(original.state_dict(), buffer)
    copies = [torch.nn.Parameter(p.detach().clone()) for p in params]
    resumed = cls(copies, **{**case.kwargs, **setup.get("rebuilt_with", {})})
    buffer.seek(0)
    resumed.load_state_dict(torch.load(buffer, weights_only=False))
    for step in range(CHECKPOINT_BEFORE, CHECKPOINT_BEFORE + CHECKPOINT_AFTER):
        for optimizer, ps in ((original, params), (resumed, copies)):
            optimizer.zero_grad()
            _loss(ps, targets, step, setup).backward()
            optimizer.step()
    return {
        **{f"parameter {i} after the resumed optimizer's steps": p.detach().clone() for i, p in enumerate(copies)},
        **{f"parameter {i} after the original optimizer's steps": p.detach().clone() for i, p in enumerate(params)},
    }


def _checkpoint_cases(gen):
    yield from _optimizer_cases(
        [
            ("lr 0.05", {"lr": 0.05}),
            ("lr 0.02, betas (0.8, 0.9), weight decay 0.1", {"lr": 0.02, "betas": (0.8, 0.9), "weight_decay": 0.1}),
            (
                "a parameter the loss uses on even steps only, so the step counts differ",
                {"lr": 0.05},
                {"alternate": True},
            ),
            (
                "the new optimizer is built with lr 0.5; the checkpoint's lr 0.05 must win",
                {"lr": 0.05},
                {"rebuilt_with": {"lr": 0.5}},
            ),
        ]
    )(gen)


class _CheckpointNoSteps(ref.CheckpointAdam):
    """Saves m and v but not the step counts, so the bias correction starts again after loading."""

    def load_state_dict(self, state_dict):
        steps = list(self.steps)
        super().load_state_dict(state_dict)
        self.steps = steps


class _CheckpointByIdentity(ref.CheckpointAdam):
    """Keys the state by each parameter's id(), which a new optimizer over new parameters does not share."""

    def state_dict(self):
        saved = super().state_dict()
        saved["state"] = {id(p): s for p, s in zip(self.params, saved["state"])}
        return saved

    def load_state_dict(self, state_dict):
        for name, value in state_dict["hyperparameters"].items():
            setattr(self, name, value)
        for i, p in enumerate(self.params):
            if id(p) in state_dict["state"]:
                saved = state_dict["state"][id(p)]
                self.steps[i], self.m[i], self.v[i] = saved["step"], saved["m"], saved["v"]


class _CheckpointNoHyperparameters(ref.CheckpointAdam):
    """Restores the running averages and counts but keeps the hyperparameters the new optimizer was built with."""

    def load_state_dict(self, state_dict):
        super().load_state_dict({**state_dict, "hyperparameters": {}})


class _CheckpointOnlyM(ref.CheckpointAdam):
    """Saves the first moment only: v starts again from zero after loading."""

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        self.v = [torch.zeros_like(v) for v in self.v]


class _GroupedSGDIgnoresOverrides(ref.GroupedSGD):
    def __init__(self, params, lr=0.001, momentum=0.0, weight_decay=0.0):
        super().__init__([{"params": g["params"]} for g in params], lr, momentum, weight_decay)


class _GroupedSGDZeroMeansDefault(ref.GroupedSGD):
    """Reads each setting as `group.get(key) or default`, so an override of 0 falls back to the default."""

    def __init__(self, params, lr=0.001, momentum=0.0, weight_decay=0.0):
        defaults = {"lr": lr, "momentum": momentum, "weight_decay": weight_decay}
        self.param_groups = [
            {**{k: group.get(k) or v for k, v in defaults.items()}, "params": list(group["params"])} for group in params
        ]
        self.buffers = {}


class _GroupedSGDKeepsIterators(ref.GroupedSGD):
    """Keeps each group's "params" as given: a generator is used up by the first pass over it."""

    def __init__(self, params, lr=0.001, momentum=0.0, weight_decay=0.0):
        defaults = {"lr": lr, "momentum": momentum, "weight_decay": weight_decay}
        self.param_groups = [{**defaults, **group} for group in params]
        self.buffers = {}


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
    initial, targets = _params(gen)
    groups = [{"params": [0], "lr": 0.0}, {"params": [1, 2], "momentum": 0.0, "weight_decay": 0.0}]
    yield Case(
        (initial, targets, groups),
        "overrides equal to 0: a frozen group, a group without momentum or decay",
        kwargs={"lr": 0.02, "momentum": 0.9, "weight_decay": 0.1},
    )
    initial, targets = _params(gen)
    groups = [{"params": [0, 2], "generator": True}, {"params": [1], "lr": 0.05, "generator": True}]
    yield Case(
        (initial, targets, groups),
        "each group's params given as a generator, as model.parameters() is",
        kwargs={"lr": 0.02, "momentum": 0.9},
    )


@torch.enable_grad()  # the harness replays known mistakes under no_grad; these runs need autograd
def _run_grouped(cls, case):
    initial, targets, groups = case.args
    params = [torch.nn.Parameter(p.clone()) for p in initial]
    given = [[params[i] for i in g["params"]] for g in groups]
    optimizer = cls(
        [
            {
                **{k: v for k, v in g.items() if k != "generator"},
                "params": (p for p in ps) if g.get("generator") else ps,
            }
            for g, ps in zip(groups, given)
        ],
        **case.kwargs,
    )
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
            (
                "parameters given as a generator, as model.parameters() is",
                {"lr": 0.02, "momentum": 0.9},
                {"generator": True},
            ),
            (
                "a parameter the loss uses on even steps only (its .grad is None on the others)",
                {"lr": 0.02, "momentum": 0.9, "weight_decay": 0.1},
                {"alternate": True},
            ),
        ]
    )(gen)


@torch.enable_grad()  # the harness replays known mistakes under no_grad; these runs need autograd
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
            (
                "a parameter the loss uses on even steps only (its .grad is None on the others)",
                {"lr": 0.05},
                {"alternate": True},
            ),
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
            (
                "a parameter the loss uses on even steps only (its .grad is None on the others)",
                {"lr": 0.05, "weight_decay": 0.2},
                {"alternate": True},
            ),
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


# ----------------------------------------------------------------------------- learning-rate schedule


def _schedule_cases(gen):
    # Warm-up 4, total 12: steps 0-4 climb by 0.25; the decay's progress is (step - 4) / 8, so step 6 gives
    # (1 + cos(pi / 4)) / 2 = 0.8535534, step 8 gives 0.5, and from step 12 on the value stays at 0.
    yield Case(
        ([0, 1, 3, 4, 6, 8, 12, 13, 20], 4, 12),
        "by hand: warm-up 4, total 12, down to 0",
        expected=_at_steps([0, 1, 3, 4, 6, 8, 12, 13, 20], [0.0, 0.25, 0.75, 1.0, 0.8535534, 0.5, 0.0, 0.0, 0.0]),
    )
    yield Case(
        ([0, 5, 10, 11], 0, 10, 0.1),
        "by hand: no warm-up, total 10, down to 0.1",
        expected=_at_steps([0, 5, 10, 11], [1.0, 0.55, 0.1, 0.1]),
    )
    yield Case(
        ([1, 2, 4, 6, 100], 2, 6, 0.2),
        "by hand: warm-up 2, total 6, down to 0.2; step 100 long after the end",
        expected=_at_steps([1, 2, 4, 6, 100], [0.5, 1.0, 0.6, 0.2, 0.2]),
    )
    warmup = int(torch.randint(1, 20, (), generator=gen))
    total = warmup + int(torch.randint(5, 60, (), generator=gen))
    yield Case(
        (list(range(total + 30)), warmup, total, 0.05),
        f"every step of warm-up {warmup}, total {total}, down to 0.05, and 30 steps after",
    )


def _at_steps(steps, values):
    return {f"the multiplier at step {step}": value for step, value in zip(steps, values)}


def _run_schedule(impl, case):
    steps, *settings = case.args
    return _at_steps(steps, [impl(step, *settings) for step in steps])


def _schedule_oracle(step, warmup_steps, total_steps, final_fraction=0.0):
    """Warm-up by hand; the decay from torch's CosineAnnealingLR, stepped to the step and held at its end."""
    if step < warmup_steps:
        return step / warmup_steps
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    span = total_steps - warmup_steps
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=span, eta_min=final_fraction)
    for _ in range(min(step - warmup_steps, span)):
        optimizer.step()
        cosine.step()
    return optimizer.param_groups[0]["lr"]


def _schedule_variant(warm=None, progress=None, value=None):
    """The schedule with its warm-up, its progress through the decay, or the decayed value replaced."""

    def schedule(step, warmup_steps, total_steps, final_fraction=0.0):
        if step < warmup_steps:
            return (warm or (lambda s, w: s / w))(step, warmup_steps)
        p = (progress or (lambda s, w, t: min(1.0, (s - w) / (t - w))))(step, warmup_steps, total_steps)
        return (value or (lambda p, f: f + (1 - f) * 0.5 * (1 + math.cos(math.pi * p))))(p, final_fraction)

    return schedule


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
    combos = [dict(zip(keys[::-1], v)) for v in itertools.product(*[grid[k] for k in keys[::-1]])]
    return [{k: c[k] for k in keys} for c in combos]


def _expand_grid_shared_dict(grid):
    config, out = {}, []
    for values in itertools.product(*grid.values()):
        config.update(zip(grid, values))
        out.append(config)
    return out


def _expand_grid_zip(grid):
    return [dict(zip(grid, values)) for values in zip(*grid.values())]


CONFIG = {"optimizer": "sgd", "lr": 0.1, "hidden": 16, "batch_size": 32, "steps": 12, "seed": 0}


@torch.enable_grad()  # the harness replays known mistakes under no_grad; these runs need autograd
def _run_train_digits(impl, case):
    logged = []
    accuracy = impl(dict(case.args[0]), logged.append)
    for entry in logged:
        for key, value in entry.items():
            if not isinstance(value, float):
                raise Mismatch(
                    f"logged {key!r} as {describe(value)}: log plain Python floats, as a tracker stores "
                    "them (a tensor that requires grad also keeps its whole graph alive)"
                )
    if not isinstance(accuracy, float):
        raise Mismatch(f"returned {describe(accuracy)}: return the validation accuracy as a Python float")
    return {
        "returned accuracy": accuracy,
        "train_loss values": torch.tensor([e["train_loss"] for e in logged if "train_loss" in e], dtype=torch.float64),
        "val_accuracy values": torch.tensor(
            [e["val_accuracy"] for e in logged if "val_accuracy" in e], dtype=torch.float64
        ),
        "logged keys": sorted({k for entry in logged for k in entry}),
    }


def _train_digits_cases(gen):
    yield Case((CONFIG,), "SGD, lr 0.1, 12 steps")
    yield Case(({**CONFIG, "lr": 0.5, "seed": 3, "hidden": 8, "batch_size": 16},), "SGD, lr 0.5, seed 3")
    yield Case(({**CONFIG, "steps": 0},), "no steps: only the validation accuracy is logged (the untrained model's)")
    yield Case(({**CONFIG, "optimizer": "adam", "lr": 0.01},), "Adam, lr 0.01: the optimizer named in the config")


def _train_digits_oracle(config, log):
    """The loop written differently: gradients from torch.autograd.grad, the loss from log-softmax (no
    cross_entropy), plain SGD written out, Adam from torch.optim named here rather than through OPTIMIZERS."""
    model = ref.make_mlp(config["hidden"], config["seed"])
    params = list(model.parameters())
    adam = torch.optim.Adam(params, lr=config["lr"]) if config["optimizer"] == "adam" else None
    assert adam or config["optimizer"] == "sgd"
    for x, y in ref.digit_batches(config["batch_size"], config["steps"], config["seed"]):
        loss = -model(x).log_softmax(dim=-1).gather(1, y[:, None]).mean()
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, g in zip(params, grads):
                if adam:
                    p.grad = g
                else:
                    p -= config["lr"] * g
        if adam:
            adam.step()
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


def _train_digits_always_sgd(config, log):
    model = ref.make_mlp(config["hidden"], config["seed"])
    optimizer = torch.optim.SGD(model.parameters(), lr=config["lr"])  # config["optimizer"] never read
    for x, y in ref.digit_batches(config["batch_size"], config["steps"], config["seed"]):
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        log({"train_loss": loss.item()})
    images, labels = ref.digits("val")
    accuracy = (model(images).argmax(dim=-1) == labels).float().mean().item()
    log({"val_accuracy": accuracy})
    return accuracy


def _train_digits_logs_tensors(config, log):
    model = ref.make_mlp(config["hidden"], config["seed"])
    optimizer = ref.OPTIMIZERS[config["optimizer"]](model.parameters(), lr=config["lr"])
    for x, y in ref.digit_batches(config["batch_size"], config["steps"], config["seed"]):
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        log({"train_loss": loss})
    images, labels = ref.digits("val")
    accuracy = (model(images).argmax(dim=-1) == labels).float().mean()
    log({"val_accuracy": accuracy})
    return accuracy


def _train_digits_on_training_set(config, log):
    model = ref.make_mlp(config["hidden"], config["seed"])
    optimizer = ref.OPTIMIZERS[config["optimizer"]](model.parameters(), lr=config["lr"])
    for x, y in ref.digit_batches(config["batch_size"], config["steps"], config["seed"]):
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        log({"train_loss": loss.item()})
    images, labels = ref.digits("train")  # the training images, not the validation set
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
    yield Case(
        (SWEEP_GRID,), "two optimizers, one learning rate", expected=_sweep_record(2, configs, [5, 5], [1, 1], True)
    )
    single = {"lr": 0.1, "hidden": 4, "optimizer": "sgd", "batch_size": 8, "steps": 3, "seed": 0}
    yield Case(
        ({key: [value] for key, value in single.items()},),
        "a single configuration",
        expected=_sweep_record(1, [single], [3], [1], True),
    )


def _sweep_record(runs, configs, train_losses, val_accuracies, returned_match):
    return {
        "number of runs on disk": runs,
        "each run's config": configs,
        "train_loss values logged per run": train_losses,
        "val_accuracy values logged per run": val_accuracies,
        "the returned accuracies are the logged ones": returned_match,
    }


@torch.enable_grad()  # the harness replays known mistakes under no_grad; these runs need autograd
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
    return _sweep_record(
        len(runs),
        [run["config"] for run in runs],
        [len(run["history"].get("train_loss", [])) for run in runs],
        [len(run["history"].get("val_accuracy", [])) for run in runs],
        matches,
    )


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


def _sweep_print_logger(grid, directory, project):
    import wandb

    accuracies = []
    for config in ref.expand_grid(grid):
        run = wandb.init(
            project=project,
            dir=directory,
            mode="offline",
            config=config,
            settings=wandb.Settings(silent=True, console="off"),
        )
        accuracies.append(ref.train_digits(config, lambda metrics: None))  # the metrics never reach the run
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


def _sum_cases(gen):
    yield from _collective_cases(gen)
    yield Case((2, torch.randn(2, 5, generator=gen, dtype=torch.float64)), "2 ranks, float64 tensors")


def _ring_cases(gen):
    yield from _sum_cases(gen)
    yield Case((3, torch.randn(3, 4, generator=gen)), "3 ranks, 4 elements: pieces of 2, 1 and 1")


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
        return {
            f"rank {rank}'s {what}": value
            for rank, pair in enumerate(results)
            for what, value in zip(("return value", "tensor afterwards"), pair)
        }

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


def _all_reduce_float32_buffer(tensor):
    """Receives into a buffer made in the default dtype, whatever the tensor's."""
    if dist.get_rank() == 0:
        incoming = torch.zeros(tensor.shape)
        for rank in range(1, dist.get_world_size()):
            dist.recv(incoming, src=rank)
            tensor += incoming
    else:
        dist.send(tensor, dst=0)
    return ref.broadcast(tensor, src=0)


def _all_reduce_forgets_own(tensor):
    """Rank 0 sums what it receives into a fresh total, leaving out its own tensor."""
    if dist.get_rank() == 0:
        total, incoming = torch.zeros_like(tensor), torch.empty_like(tensor)
        for rank in range(1, dist.get_world_size()):
            dist.recv(incoming, src=rank)
            total += incoming
        tensor.copy_(total)
    else:
        dist.send(tensor, dst=0)
    return ref.broadcast(tensor, src=0)


def _ring_chunk(tensor):
    """Splits with Tensor.chunk, which gives fewer than world_size pieces for some sizes (4 over 3: 2 and 2)."""
    rank, world = dist.get_rank(), dist.get_world_size()
    chunks = list(tensor.view(-1).chunk(world))
    for step in range(2 * (world - 1)):
        reducing = step < world - 1
        s = step if reducing else step - (world - 1)
        send_index = (rank - s) % world if reducing else (rank + 1 - s) % world
        receive_index = (send_index - 1) % world
        incoming = torch.empty_like(chunks[receive_index])
        request = dist.isend(chunks[send_index].clone(), dst=(rank + 1) % world)
        dist.recv(incoming, src=(rank - 1) % world)
        request.wait()
        if reducing:
            chunks[receive_index] += incoming
        else:
            chunks[receive_index].copy_(incoming)
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


@torch.enable_grad()  # the harness replays known mistakes under no_grad; these runs need autograd
def _ddp_job(impl, seed, inputs, targets, lr, frozen):
    model = ref.make_mlp(8, seed)
    if frozen:
        model[1].weight.requires_grad_(False)  # a frozen layer: its .grad stays None
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    losses = [impl(model, optimizer, inputs, targets) for _ in range(DDP_STEPS)]
    return [losses, [p.detach().clone() for p in model.parameters()]]


def _run_ddp(impl, case):
    world = case.args[0]
    results = ref.launch_gloo(_ddp_job, world, impl, *case.args[1:])
    return {
        f"rank {rank}'s {what}": value
        for rank, pair in enumerate(results)
        for what, value in zip((f"losses over {DDP_STEPS} steps", "parameters at the end"), pair)
    }


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
    optimizer.step()
    total = loss.detach().clone()
    dist.all_reduce(total)
    return total.item() / world


def _ddp_every_parameter(model, optimizer, inputs, targets):
    rank, world = dist.get_rank(), dist.get_world_size()
    loss = F.cross_entropy(model(inputs[rank::world]), targets[rank::world])
    optimizer.zero_grad()
    loss.backward()
    for p in model.parameters():  # a frozen parameter's .grad is None
        dist.all_reduce(p.grad)
        p.grad /= world
    optimizer.step()
    total = loss.detach().clone()
    dist.all_reduce(total)
    return total.item() / world


def _ddp_local_loss(model, optimizer, inputs, targets):
    rank, world = dist.get_rank(), dist.get_world_size()
    loss = F.cross_entropy(model(inputs[rank::world]), targets[rank::world])
    optimizer.zero_grad()
    loss.backward()
    for p in model.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= world
    optimizer.step()
    return loss.item()


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
            (world, int(torch.randint(100, (), generator=gen)), images[idx], labels[idx], 0.1, False),
            f"{world} ranks, a global batch of {batch}",
        )
    idx = torch.randint(len(images), (16,), generator=gen)
    yield Case(
        (2, 5, images[idx], labels[idx], 0.1, True),
        "2 ranks, a global batch of 16, the first layer's weight frozen (its .grad is None)",
    )


# ----------------------------------------------------------------------------- gradient clipping


def _grads_case(grads, label, max_norm, norm_type=2.0, generator=False, expected=None):
    kwargs = {"max_norm": max_norm, "norm_type": norm_type}
    extra = {} if expected is None else {"expected": expected}
    return Case((grads, generator), label, kwargs=kwargs, **extra)


def _clip_expected(total, grads):
    out = {"the returned total norm (before clipping)": total}
    out.update({f"parameter {i}'s gradient after": "no gradient" if g is None else g for i, g in enumerate(grads)})
    return out


def _clip_cases(gen):
    # Gradients [3, 0] and [[0, 4]]: global 2-norm 5. Clipping to 1 scales both by 1 / (5 + 1e-6).
    factor = 1 / (5 + 1e-6)
    yield _grads_case(
        [_t(3.0, 0.0), _t(0.0, 4.0)[None]],
        "by hand: gradients [3, 0] and [[0, 4]], max_norm 1",
        1.0,
        expected=_clip_expected(torch.tensor(5.0), [_t(3.0, 0.0) * factor, _t(0.0, 4.0)[None] * factor]),
    )
    yield _grads_case(
        [_t(3.0, 0.0), _t(0.0, 4.0)[None]],
        "by hand: the same, max_norm 10 (below it: unchanged)",
        10.0,
        expected=_clip_expected(torch.tensor(5.0), [_t(3.0, 0.0), _t(0.0, 4.0)[None]]),
    )
    yield _grads_case([_t(3.0, 0.0), _t(0.0, 4.0)[None]], "by hand: the norm exactly at max_norm 5", 5.0)
    # Infinity norm: the largest |entry| overall, 7; clipping to 3.5 halves every gradient.
    yield _grads_case(
        [_t(3.0, -7.0), _t(2.0)],
        "by hand: norm_type inf, gradients [3, -7] and [2], max_norm 3.5",
        3.5,
        norm_type=math.inf,
        expected=_clip_expected(torch.tensor(7.0), [_t(1.5, -3.5), _t(1.0)]),
    )
    yield _grads_case(
        [torch.randn(4, generator=gen), None, torch.randn(2, 3, generator=gen)],
        "a parameter without a gradient between two with one",
        0.5,
    )
    yield _grads_case(
        [torch.randn(5, generator=gen) for _ in range(12)],
        "twelve parameters given as a generator",
        1.0,
        generator=True,
    )
    yield _grads_case(
        [torch.randn(3, generator=gen), torch.randn(6, generator=gen) * 4], "norm_type 1", 2.0, norm_type=1.0
    )
    yield _grads_case(
        [None, None], "no parameter has a gradient", 1.0, expected=_clip_expected(torch.tensor(0.0), [None, None])
    )
    yield _grads_case([_t(1.0, math.inf), _t(0.5, -2.0)], "an infinite gradient entry: the total norm is inf", 1.0)
    yield _grads_case(
        [_t(1.0, math.nan), _t(0.5, -2.0)],
        "a NaN gradient entry: the total norm is NaN, and so are all the gradients after (a visible failure)",
        1.0,
    )


def _run_clip(impl, case):
    grads, generator = case.args
    params = [torch.nn.Parameter(torch.zeros_like(g) if g is not None else torch.zeros(2)) for g in grads]
    for p, g in zip(params, grads):
        p.grad = None if g is None else g.clone()
    total = impl((p for p in params) if generator else params, **case.kwargs)
    return _clip_expected(total, [p.grad for p in params])


def _clip_per_parameter(params, max_norm, norm_type=2.0):
    params = list(params)
    total = ref.clip_grad_norm(params, math.inf, norm_type)  # the global norm, for the return value only
    for p in params:
        if p.grad is not None:
            norm = torch.linalg.vector_norm(p.grad, norm_type)
            p.grad.mul_((max_norm / (norm + 1e-6)).clamp(max=1.0))  # each clipped on its own
    return total


def _clip_scales_up(params, max_norm, norm_type=2.0):
    grads = [p.grad for p in params if p.grad is not None]
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g, norm_type) for g in grads]), norm_type)
    for g in grads:
        g.mul_(max_norm / (total + 1e-6))  # no cap at 1: small gradients are scaled up to max_norm
    return total


def _clip_returns_after(params, max_norm, norm_type=2.0):
    params = list(params)
    ref.clip_grad_norm(params, max_norm, norm_type)
    return ref.clip_grad_norm(params, math.inf, norm_type)


def _clip_sum_of_norms(params, max_norm, norm_type=2.0):
    grads = [p.grad for p in params if p.grad is not None]
    total = sum(torch.linalg.vector_norm(g, norm_type) for g in grads)  # norms added, not combined
    for g in grads:
        g.mul_((max_norm / (total + 1e-6)).clamp(max=1.0))
    return total


def _clip_ignores_norm_type(params, max_norm, norm_type=2.0):
    return ref.clip_grad_norm(params, max_norm, 2.0)


def _clip_zero_fills(params, max_norm, norm_type=2.0):
    params = list(params)
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    return ref.clip_grad_norm(params, max_norm, norm_type)


def _clip_iterates_twice(params, max_norm, norm_type=2.0):
    norms = [torch.linalg.vector_norm(p.grad, norm_type) for p in params if p.grad is not None]
    total = torch.linalg.vector_norm(torch.stack(norms), norm_type) if norms else torch.tensor(0.0)
    for p in params:  # a generator is already used up: nothing is scaled
        if p.grad is not None:
            p.grad.mul_((max_norm / (total + 1e-6)).clamp(max=1.0))
    return total


def _clip_only_above(params, max_norm, norm_type=2.0):
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g, norm_type) for g in grads]), norm_type)
    if total > max_norm:  # False for a NaN norm: the NaN stays in one gradient, the others step as usual
        for g in grads:
            g.mul_(max_norm / (total + 1e-6))
    return total


# ----------------------------------------------------------------------------- successive halving


def _sh_loss(config, budget):
    """A learning curve: the config's floor plus a term that shrinks with the budget; NaN for a diverged run."""
    if config.get("diverges"):
        return math.nan
    return config["floor"] + config.get("slow", 0.0) / budget


def _sh_configs(floors, slows=None, diverged=()):
    slows = slows or [0.0] * len(floors)
    return [
        {"floor": f, "slow": s, **({"diverges": True} if i in diverged else {})}
        for i, (f, s) in enumerate(zip(floors, slows))
    ]


def _sh_expected(survivor, evaluations):
    return {
        "the survivor's index": survivor,
        "evaluations made (index, budget), sorted by budget then index": evaluations,
        "evaluations returned (index, budget, loss), sorted by budget then index": [
            (i, b, _sh_loss_at(i, b)) for i, b in evaluations
        ],
    }


_SH_HAND = _sh_configs([1.0, 0.0, 0.5, 3.0], [0.0, 4.0, 0.0, 0.0])


def _sh_loss_at(i, b):
    return _sh_loss(_SH_HAND[i], b)


def _sh_cases(gen):
    # Budget 1: losses 1, 4, 0.5, 3: keep configs 2 and 0. Budget 2: 0.5 and 1: config 2 survives.
    yield Case(
        (_SH_HAND, _sh_loss, 1, 2),
        "by hand: 4 configurations, eta 2, budgets 1 then 2",
        expected=_sh_expected(2, [(0, 1), (1, 1), (2, 1), (3, 1), (0, 2), (2, 2)]),
    )
    yield Case(
        (_sh_configs([0.0, 0.5, 0.2, 0.9], diverged=(0,)), _sh_loss, 1, 2),
        "the first configuration diverged (its loss is NaN)",
    )
    yield Case(
        (_sh_configs([0.9, 0.4, 0.1, 0.4]), _sh_loss, 3, 2), "a tie at the cut: configurations 1 and 3, 0.4 each"
    )
    yield Case(
        (_sh_configs([0.3, 0.2, 0.5, 0.1, 0.4], [1.0, 2.0, 0.5, 3.0, 1.0]), _sh_loss, 2, 2),
        "5 configurations, eta 2: keep 2, then 1",
    )
    yield Case(
        (
            _sh_configs(torch.rand(9, generator=gen).tolist(), (4 * torch.rand(9, generator=gen)).tolist()),
            _sh_loss,
            1,
            3,
        ),
        "9 configurations, eta 3",
    )
    yield Case(
        (
            _sh_configs(torch.rand(6, generator=gen).tolist(), (4 * torch.rand(6, generator=gen)).tolist()),
            _sh_loss,
            2,
            3,
        ),
        "6 configurations, eta 3: keep 2, then 1",
    )
    yield Case(
        (_sh_configs([0.7]), _sh_loss, 1, 2),
        "one configuration: nothing to evaluate",
        expected={
            "the survivor's index": 0,
            "evaluations made (index, budget), sorted by budget then index": [],
            "evaluations returned (index, budget, loss), sorted by budget then index": [],
        },
    )
    yield Case(
        (
            _sh_configs(
                torch.rand(16, generator=gen).tolist(), (8 * torch.rand(16, generator=gen)).tolist(), diverged=(3, 11)
            ),
            _sh_loss,
            5,
            2,
        ),
        "16 configurations, two of them diverged, eta 2",
    )


def _run_sh(impl, case):
    configs, evaluate, min_budget, eta = case.args
    calls = []

    def counted(config, budget):
        calls.append((next(i for i, c in enumerate(configs) if c is config), budget))
        return evaluate(config, budget)

    survivor, history = impl(configs, counted, min_budget, eta)
    return {
        "the survivor's index": survivor,
        "evaluations made (index, budget), sorted by budget then index": sorted(calls, key=lambda c: (c[1], c[0])),
        "evaluations returned (index, budget, loss), sorted by budget then index": sorted(
            (tuple(h) for h in history), key=lambda h: (h[1], h[0])
        ),
    }


def _sh_variant(rank_key=None, keep=None, next_budget=None, go_on=None):
    """Successive halving with one of its rules replaced (the ranking, how many are kept, the next budget,
    when to stop)."""

    def search(configs, evaluate, min_budget, eta=2):
        survivors, budget, history = list(range(len(configs))), min_budget, []
        while (go_on or (lambda n, eta: n > 1))(len(survivors), eta):
            losses = {i: evaluate(configs[i], budget) for i in survivors}
            history += [(i, budget, loss) for i, loss in losses.items()]
            key = (
                rank_key(losses)
                if rank_key
                else (lambda i, losses=losses: math.inf if math.isnan(losses[i]) else losses[i])
            )
            ranked = sorted(survivors, key=key)
            survivors = sorted(ranked[: (keep or (lambda n, eta: max(1, n // eta)))(len(survivors), eta)])
            budget = (next_budget or (lambda b, eta, first: b * eta))(budget, eta, min_budget)
        return survivors[0], history

    return search


# ----------------------------------------------------------------------------- gradient accumulation

ACCUMULATION_STEPS = 2


@torch.enable_grad()  # the harness replays known mistakes under no_grad; these runs need autograd
def _run_accumulation(impl, case):
    seed, batches, micro = case.args
    model = ref.make_mlp(8, seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    losses = [impl(model, optimizer, x, y, micro) for x, y in batches]
    return {
        f"losses returned over {ACCUMULATION_STEPS} steps": losses,
        **{f"{name} at the end": p.detach().clone() for name, p in model.named_parameters()},
    }


def _one_big_batch(model, optimizer, inputs, targets, micro_batch_size):
    """The whole batch in one pass: what accumulation must reproduce."""
    loss = F.cross_entropy(model(inputs), targets)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def _accumulation_cases(gen):
    images, labels = ref.digits("train")
    for batch, micro, label in [
        (12, 4, "3 micro-batches of 4"),
        (10, 4, "a batch of 10 in micro-batches of 4: the last has only 2"),
        (7, 3, "a batch of 7 in micro-batches of 3: the last has 1"),
        (8, 8, "one micro-batch: the whole batch"),
        (6, 16, "micro_batch_size larger than the batch"),
        (5, 1, "micro-batches of a single example"),
    ]:
        idx = torch.randint(len(images), (ACCUMULATION_STEPS, batch), generator=gen)
        yield Case((int(torch.randint(100, (), generator=gen)), [(images[i], labels[i]) for i in idx], micro), label)


def _accumulate(model, optimizer, inputs, targets, micro, scale, zero_each=False, step_each=False, report="mean"):
    """Accumulation with one detail changed; scale(micro-batch size, batch size, count) weighs each mean loss."""
    optimizer.zero_grad()
    pieces = list(range(0, len(inputs), micro))
    reported = []
    for start in pieces:
        x, y = inputs[start : start + micro], targets[start : start + micro]
        if zero_each:
            optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        (loss * scale(len(x), len(inputs), len(pieces))).backward()
        if step_each:
            optimizer.step()
        reported.append((loss.item(), len(x)))
    if not step_each:
        optimizer.step()
    if report == "last":
        return reported[-1][0]
    if report == "mean of means":
        return sum(value for value, _ in reported) / len(reported)
    return sum(value * n for value, n in reported) / len(inputs)


def _share(n, total, count):
    return n / total


def _accumulate_divides_by_count(model, optimizer, inputs, targets, micro):
    return _accumulate(
        model, optimizer, inputs, targets, micro, lambda n, total, count: 1 / count, report="mean of means"
    )


def _accumulate_unscaled(model, optimizer, inputs, targets, micro):
    return _accumulate(model, optimizer, inputs, targets, micro, lambda n, total, count: 1.0)


def _accumulate_zero_each(model, optimizer, inputs, targets, micro):
    return _accumulate(model, optimizer, inputs, targets, micro, _share, zero_each=True)


def _accumulate_step_each(model, optimizer, inputs, targets, micro):
    return _accumulate(model, optimizer, inputs, targets, micro, _share, step_each=True)


def _accumulate_reports_last(model, optimizer, inputs, targets, micro):
    return _accumulate(model, optimizer, inputs, targets, micro, _share, report="last")


def _accumulate_reports_mean_of_means(model, optimizer, inputs, targets, micro):
    return _accumulate(model, optimizer, inputs, targets, micro, _share, report="mean of means")


check = Checker(
    "0.3",
    [
        Exercise(
            ref.rosenbrock,
            _rosenbrock_cases,
            hint="Your value at the minimum (a, a^2) must be exactly 0 for any a and b; if only the defaults work, "
            "a or b is not reaching the formula. Otherwise compare each of the two terms with the text's.",
            wrong={
                "b multiplies the first term instead of the second": lambda x, y, a=1.0, b=100.0: (
                    b * (a - x) ** 2 + (y - x**2) ** 2
                ),
                "x instead of x squared in the second term": lambda x, y, a=1.0, b=100.0: (
                    (a - x) ** 2 + b * (y - x) ** 2
                ),
                "a and b ignored: always 1 and 100": lambda x, y, a=1.0, b=100.0: (1 - x) ** 2 + 100 * (y - x**2) ** 2,
            },
        ),
        Exercise(
            ref.optimizer_path,
            _optimizer_path_cases,
            run=_run_path,
            hint="Look at which row first differs: row 0 is the start; identical rows mean stored references to one "
            "tensor, not snapshots; a drift that grows from row 2 means gradients left over from earlier "
            "steps, or optimizer state that restarts. The point must be a leaf of your own, in start's dtype.",
            wrong={
                "no zero_grad, so gradients accumulate from step to step": _optimizer_path_forgets_zero_grad,
                "stores the point itself (a view that later steps change), not a copy": _optimizer_path_aliases,
                "copies start without detaching it, so the point is not a leaf when start requires grad": _optimizer_path_not_detached,
                "collects the path in a float32 tensor whatever start's dtype": _optimizer_path_float32_buffer,
                "builds a new optimizer every step, so momentum and running averages restart": _optimizer_path_new_optimizer_each_step,
            },
        ),
        Exercise(
            ref.SGD,
            _sgd_all_cases,
            run=_run_steps,
            oracle=torch.optim.SGD,
            hint="The case label says which feature differs from plain SGD (momentum, weight decay, a generator of "
            "parameters, a parameter without a gradient on some steps); compare your handling of it with the "
            "update rule in the text, in its order: decay, then momentum, then the step.",
            wrong={
                "the new gradient enters the momentum buffer scaled down by (1 - momentum) (dampening)": _SGDDampened,
                "weight decay added after the momentum buffer instead of before it": _SGDDecayAfterMomentum,
                "zero_grad leaves the old gradients, so backward() adds to them": _SGDZeroGradDoesNothing,
                "the params iterator is kept as given, and a generator is used up by the first pass": _SGDKeepsIterator,
                "zero_grad fills gradients with zeros instead of clearing them, so a parameter the loss "
                "did not use still moves": _SGDZeroFill,
                "a parameter without a gradient is stepped as if its gradient were 0 (weight decay moves it)": _SGDMissingGradAsZero,
            },
        ),
        Exercise(
            ref.RMSprop,
            _rmsprop_cases,
            run=_run_steps,
            oracle=torch.optim.RMSprop,
            hint="On the first step each coordinate should move by lr / sqrt(1 - alpha) against its gradient's sign; "
            "if not, look at the running average (where it starts, which factor weights the new square). "
            "Then eps (where it sits) and momentum (what it accumulates).",
            wrong={
                "eps added inside the square root instead of outside": _RMSpropEpsInside,
                "alpha weights the new squared gradient and 1 - alpha the running average (swapped)": _RMSpropSwappedAlpha,
                "eps left out of the denominator": _RMSpropNoEps,
                "the running average starts at the first squared gradient instead of at 0": _RMSpropAverageStartsAtFirst,
                "momentum accumulates the raw gradient, divided afterwards, instead of the divided one": _RMSpropMomentumBeforeDividing,
            },
        ),
        Exercise(
            ref.Adam,
            _adam_cases,
            oracle=torch.optim.Adam,
            run=_run_steps,
            hint="On the first step every coordinate should move by about lr, whatever its gradient's size. If step 1 "
            "is right and later steps drift, look at the step counter and at what you keep between steps "
            "(the raw averages, not the corrected ones).",
            wrong={
                "no bias correction": _AdamNoBiasCorrection,
                "one step counter shared by all parameters, increased once per parameter": _AdamGlobalCounterPerParameter,
                "one step counter for the whole optimizer: a parameter without a gradient on some steps gets "
                "the bias correction of steps it never took": _AdamOneCounter,
                "the bias-corrected averages are stored back into m and v, so the correction compounds": _AdamStoresCorrected,
                "weight decay applied to the parameters directly (that is AdamW) instead of added to the "
                "gradient": _AdamDecoupled,
                "eps left out of the denominator": _AdamNoEps,
                "eps added to the root of the uncorrected v (the paper's folded step size), not of v_hat": _AdamEpsOnUncorrectedRoot,
                "zero_grad fills gradients with zeros instead of clearing them, so a parameter the loss "
                "did not use still moves": _AdamZeroFill,
            },
        ),
        Exercise(
            ref.AdamW,
            _adamw_cases,
            oracle=torch.optim.AdamW,
            run=_run_steps,
            hint="Weight decay in AdamW acts on the parameter, not through the gradient, and scales with the learning "
            "rate; check when it happens relative to the Adam update and which parameters it touches.",
            wrong={
                "weight decay added to the gradient (that is Adam's L2 decay), not applied to the parameter": _AdamWCoupled,
                "the decay factor does not include the learning rate": _AdamWDecayNoLr,
                "the parameter is shrunk after the Adam update instead of before it": _AdamWDecayAfterUpdate,
                "parameters without a gradient are decayed too": _AdamWDecaysEverything,
                "zero_grad fills gradients with zeros instead of clearing them, so a parameter the loss "
                "did not use still decays and moves": _AdamWZeroFill,
            },
        ),
        Exercise(
            ref.CheckpointAdam,
            _checkpoint_cases,
            run=_run_checkpoint,
            oracle=torch.optim.Adam,
            hint="Only the resumed optimizer's parameters differ? Then the checkpoint lacks something the next steps "
            "need, or cannot be matched to the new parameters: list what a step reads besides the gradient, "
            "and ask how a new process, with new parameter objects, finds each parameter's share.",
            wrong={
                "the step counts are not restored, so the bias correction starts again after loading": _CheckpointNoSteps,
                "the state is keyed by each parameter's id(), which the new parameters do not share: nothing "
                "is restored": _CheckpointByIdentity,
                "the hyperparameters are not restored: the new optimizer keeps the learning rate it was built "
                "with": _CheckpointNoHyperparameters,
                "only the first moment is restored: v starts again from zero": _CheckpointOnlyM,
            },
        ),
        Exercise(
            ref.GroupedSGD,
            _grouped_cases,
            run=_run_grouped,
            oracle=torch.optim.SGD,
            hint="Which parameter's values differ? Check that its group's own settings win over the constructor's (a "
            "setting of 0 included), that a generator of parameters survives more than one step, and that "
            "each parameter has its own momentum buffer.",
            wrong={
                "the groups' own settings are ignored: every group gets the constructor's": _GroupedSGDIgnoresOverrides,
                "one momentum buffer per group instead of per parameter": _GroupedSGDSharedBuffer,
                "an override of 0 is read as missing and falls back to the default": _GroupedSGDZeroMeansDefault,
                "each group's params are kept as given, and a generator is used up by the first pass": _GroupedSGDKeepsIterators,
            },
        ),
        Exercise(
            ref.clip_grad_norm,
            _clip_cases,
            run=_run_clip,
            oracle=torch.nn.utils.clip_grad_norm_,
            hint="Compare the returned norm first: it is one number for all the gradients together, measured before "
            "anything changes. Then the gradients: every one is scaled by the same factor, never by more than 1, "
            "and only those that exist.",
            wrong={
                "each parameter's gradient clipped to max_norm on its own, not all of them together": _clip_per_parameter,
                "gradients below max_norm are scaled up to it (the factor is not capped at 1)": _clip_scales_up,
                "returns the norm after clipping instead of before": _clip_returns_after,
                "the per-parameter norms are added up instead of combined into one norm": _clip_sum_of_norms,
                "norm_type ignored: always the 2-norm": _clip_ignores_norm_type,
                "a parameter without a gradient is given a gradient of zeros": _clip_zero_fills,
                "params is read twice, and a generator is used up by the first pass": _clip_iterates_twice,
                "scales only when the norm is above max_norm: a NaN norm fails that test, so the other "
                "gradients step as if nothing were wrong": _clip_only_above,
            },
        ),
        Exercise(
            ref.warmup_cosine,
            _schedule_cases,
            run=_run_schedule,
            oracle=_schedule_oracle,
            hint="Look at the boundaries first: step 0 (the start of the warm-up), step warmup_steps (exactly 1), "
            "step total_steps (exactly final_fraction) and any step after it (still final_fraction). Then the "
            "middle of the decay: halfway between, the value is halfway between 1 and final_fraction.",
            wrong={
                "the warm-up is off by one: it starts at 1 / warmup_steps and reaches 1 a step early": _schedule_variant(
                    warm=lambda s, w: (s + 1) / w
                ),
                "the cosine keeps going after total_steps, so the learning rate rises again": _schedule_variant(
                    progress=lambda s, w, t: (s - w) / (t - w)
                ),
                "the decay's progress is counted from step 0, not from the end of the warm-up": _schedule_variant(
                    progress=lambda s, w, t: min(1.0, s / t)
                ),
                "decays to 0 whatever final_fraction": _schedule_variant(
                    value=lambda p, f: 0.5 * (1 + math.cos(math.pi * p))
                ),
                "final_fraction used as a floor (the larger of the two) instead of the end of the decay": _schedule_variant(
                    value=lambda p, f: max(f, 0.5 * (1 + math.cos(math.pi * p)))
                ),
                "the cosine not shifted and halved, so it goes from 1 down to -1": _schedule_variant(
                    value=lambda p, f: f + (1 - f) * math.cos(math.pi * p)
                ),
            },
        ),
        Exercise(
            ref.expand_grid,
            _expand_grid_cases,
            hint="Count your configurations (the product of the list lengths), then check their order: the last key "
            "varies fastest. Each configuration must be its own dict.",
            wrong={
                "the first key varies fastest instead of the last": _expand_grid_first_fastest,
                "values zipped together instead of combined: one configuration per position": _expand_grid_zip,
                "one dict reused for every configuration, so all end up as the last": _expand_grid_shared_dict,
            },
        ),
        Exercise(
            ref.train_digits,
            _train_digits_cases,
            run=_run_train_digits,
            oracle=_train_digits_oracle,
            atol=1e-5,
            hint="If the first loss already differs, the model or the batches were built differently (the order of "
            "random draws matters); if later ones differ, the updates do (is the config's optimizer used, "
            "are gradients cleared?). The accuracy is measured on the validation split.",
            wrong={
                "no zero_grad, so gradients accumulate from step to step": _train_digits_no_zero_grad,
                "logs once at the end instead of after every step": _train_digits_logs_once,
                "always trains with SGD, whatever optimizer the config names": _train_digits_always_sgd,
                "logs and returns tensors instead of Python floats": _train_digits_logs_tensors,
                "measures the accuracy on the training images, not the validation set": _train_digits_on_training_set,
            },
        ),
        Exercise(
            ref.run_sweep,
            _run_sweep_cases,
            run=_run_run_sweep,
            hint="The check reads back what reached the disk: one finished run per configuration, each with its "
            "config and its logged metrics. Which of those is missing tells you what your runs leave out.",
            wrong={
                "the runs are started without their config": _sweep_without_config,
                "only one run reached the disk: one run for the whole sweep, or runs never finished (the next "
                "init then continues the open run)": _sweep_one_run,
                "train_digits logs somewhere other than the run, so nothing reaches it": _sweep_print_logger,
            },
        ),
        Exercise(
            ref.successive_halving,
            _sh_cases,
            run=_run_sh,
            hint="Look at the evaluations made, round by round: how many configurations go on to the next round, "
            "with what budget, and which ones. A NaN loss (a diverged run) must never survive while a number "
            "is left, and equal losses keep the configuration listed first.",
            wrong={
                "a NaN loss is sorted as it comes, so a diverged run can survive": _sh_variant(
                    rank_key=lambda losses: losses.get
                ),
                "keeps the rounded-up half (or third), not the rounded-down": _sh_variant(
                    keep=lambda n, eta: -(-n // eta)
                ),
                "the budget grows by min_budget each round instead of by a factor of eta": _sh_variant(
                    next_budget=lambda b, eta, first: b + first
                ),
                "the budget never grows: every round uses min_budget": _sh_variant(next_budget=lambda b, eta, first: b),
                "keeps the configurations with the highest losses": _sh_variant(
                    rank_key=lambda losses: lambda i: -losses[i]
                ),
                "a tie goes to the configuration listed later": _sh_variant(
                    rank_key=lambda losses: lambda i: (math.inf if math.isnan(losses[i]) else losses[i], -i)
                ),
                "stops as soon as fewer than eta configurations survive, returning the first of them": _sh_variant(
                    go_on=lambda n, eta: n >= eta
                ),
            },
        ),
        Exercise(
            ref.broadcast,
            _collective_cases,
            run=_run_collective(True),
            oracle=_broadcast_oracle,
            hint="Every rank must end with src's values both in the tensor it passed in and in what it returns. Which "
            "rank's values did you get, and did the caller's tensor change?",
            wrong={
                "always broadcasts from rank 0, whatever src is": _broadcast_from_zero,
                "receives into a copy, leaving the caller's tensor unchanged": _broadcast_copy,
            },
        ),
        Exercise(
            ref.all_reduce_naive,
            _sum_cases,
            run=_run_collective(False),
            oracle=_all_reduce_oracle,
            hint="Compare your result with the sum of every rank's tensor: is a rank's contribution missing, is it "
            "divided, does every rank (not only rank 0) end with it? A crash means a receiving buffer unlike "
            "what was sent (shape or dtype).",
            wrong={
                "the total stays on rank 0: it is never sent back": _all_reduce_rank0_only,
                "averages instead of summing": _all_reduce_mean,
                "rank 0 leaves out its own tensor": _all_reduce_forgets_own,
                "the receiving buffer is made in the default dtype, not the tensor's": _all_reduce_float32_buffer,
            },
        ),
        Exercise(
            ref.all_reduce_ring,
            _ring_cases,
            run=_run_collective(False),
            oracle=_all_reduce_oracle,
            hint="Work out, for N = 3, which piece each rank holds complete after reduce-scatter, and check your "
            "all-gather passes each of those on twice. You need exactly N pieces whatever the size, and they "
            "must be views into the tensor so the result lands in place.",
            wrong={
                "reduce-scatter without the all-gather: each rank holds only its own finished piece": _ring_reduce_scatter_only,
                "the whole tensor passed once round the ring: each rank adds only its left neighbour's": _ring_naive_once_around,
                "pieces from Tensor.chunk, which gives fewer than world_size of them for some sizes": _ring_chunk,
            },
        ),
        Exercise(
            ref.accumulated_step,
            _accumulation_cases,
            run=_run_accumulation,
            oracle=_one_big_batch,
            hint="The step must equal one pass over the whole batch: each example's loss must count once, with "
            "weight 1 / (batch size), whichever micro-batch it falls in. Check the case where the last "
            "micro-batch is smaller, and when the gradients are cleared and the optimizer steps.",
            wrong={
                "each micro-batch's mean loss divided by the number of micro-batches, which overweights a "
                "smaller last one": _accumulate_divides_by_count,
                "the micro-batches' mean losses added unscaled: the gradient is several times too large": _accumulate_unscaled,
                "gradients cleared before every micro-batch, so only the last one counts": _accumulate_zero_each,
                "the optimizer steps after every micro-batch instead of once": _accumulate_step_each,
                "returns the last micro-batch's loss, not the whole batch's": _accumulate_reports_last,
                "returns the plain mean of the micro-batches' losses, which overweights a smaller last one": _accumulate_reports_mean_of_means,
            },
        ),
        Exercise(
            ref.ddp_train_step,
            _ddp_cases,
            run=_run_ddp,
            oracle=_ddp_oracle,
            atol=1e-6,
            hint="Every rank must take the step single-process training takes on the whole batch, and report that "
            "batch's loss: an all-reduce leaves a sum where you need a mean. Parameters without a gradient "
            "(frozen) have nothing to average.",
            wrong={
                "gradients summed over ranks, not averaged": _ddp_no_average,
                "no communication at all: each rank steps on its own shard's gradient": _ddp_local_only,
                "returns this rank's shard loss, not the global batch's": _ddp_local_loss,
                "all-reduces every parameter's .grad, including a frozen one's None": _ddp_every_parameter,
            },
        ),
    ],
)

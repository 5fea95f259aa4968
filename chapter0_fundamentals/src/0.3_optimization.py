# %% [markdown]
# # 0.3 Optimization and distributed training
#
# Every model in this course is trained by an optimizer: a rule that turns gradients into parameter
# updates. `torch.optim.Adam(model.parameters())` is one line, and it hides choices that decide
# whether training works at all: momentum, per-parameter step sizes, bias correction, how weight
# decay enters. In this section you write those rules yourself and check them, step by step, against
# `torch.optim` on the same parameters. Then you use them the way research code does: a sweep over
# hyperparameters with every run tracked, and training spread over several processes.
#
# **What you will build**
#
# 1. Loss landscapes: Rosenbrock's valley, and the paths optimizers take across it.
# 2. SGD (momentum, weight decay), RMSprop, Adam and AdamW, matching torch's update rules exactly;
#    then SGD with parameter groups.
# 3. A hyperparameter sweep on real data (handwritten digits), each run logged with Weights & Biases
#    in offline mode, read back from disk and compared in one plot.
# 4. Distributed data-parallel training with `torch.distributed` over CPU processes: broadcast and
#    all-reduce written with point-to-point messages, and a data-parallel training step whose result
#    equals single-process training.
#
# **Prerequisites**: 0.0 (tensors, broadcasting) and the basics of autograd: `loss.backward()` fills
# each parameter's `.grad`.
#
# **Why an AI-safety course cares**: most empirical safety work is training runs (probes, sparse
# autoencoders, fine-tunes, RL), and most of its silent failures are optimizer and bookkeeping bugs: a
# forgotten `zero_grad`, weight decay on the wrong parameters, runs whose settings nobody recorded.
# Knowing what each line of an optimizer does, and tracking every run, is how you tell a finding
# from an artefact.

# %%
import os

os.environ["WANDB_MODE"] = "offline"  # belt and braces: the course never talks to wandb's servers
os.environ["WANDB_SILENT"] = "true"

import itertools
import tempfile
from collections.abc import Callable, Iterable
from typing import Any

import plotly.graph_objects as go
import torch
import torch.distributed as dist
import torch.nn.functional as F
import wandb
from jaxtyping import Float, Int
from torch import Tensor, nn
from tqdm.auto import tqdm

from course.data import digits
from course.plot import line
from solutions.chapter0_fundamentals.optimization import (
    OPTIMIZERS,
    digit_batches,
    launch_gloo,
    make_mlp,
    read_wandb_runs,
)
from tests.checks.chapter0_fundamentals.optimization import check

# %% [markdown]
# ## 1. Loss landscapes
#
# A good test bed for optimizers is a function of two variables, where you can draw the whole
# landscape and the path an optimizer takes across it. Rosenbrock's function
#
# $$f(x, y) = (a - x)^2 + b\,(y - x^2)^2, \qquad a = 1,\ b = 100,$$
#
# has its minimum $f = 0$ at $(a, a^2) = (1, 1)$, at the end of a long, curved, flat-bottomed valley
# along $y = x^2$. The valley walls are steep (the factor $b$) and its floor is nearly flat: the
# gradient points mostly across the valley, not along it. Plain gradient descent bounces between the
# walls and crawls along the floor, which is exactly the problem momentum and adaptive step sizes
# address.


# %% [exercise] rosenbrock difficulty=1 importance=2 minutes=5
def rosenbrock(
    x: Float[Tensor, "*shape"], y: Float[Tensor, "*shape"], a: float = 1.0, b: float = 100.0
) -> Float[Tensor, "*shape"]:
    """Rosenbrock's banana-shaped valley (a - x)^2 + b (y - x^2)^2, elementwise; its minimum is 0 at (a, a^2)."""
    raise NotImplementedError()


# %% [hint]
# Plain elementwise arithmetic works on tensors of any shape: `(a - x) ** 2 + b * (y - x ** 2) ** 2`.

# %% [markdown]
# A helper to draw a landscape (log-scaled contours, so the valley floor shows) with optimizer paths
# on top.


# %%
def plot_paths(
    fn: Callable[[Tensor, Tensor], Tensor],
    paths: dict[str, Tensor],
    x_range=(-2.0, 2.0),
    y_range=(-1.0, 3.0),
    title: str = "",
) -> go.Figure:
    """Contours of log(1 + fn) over the ranges, and each path (points, 2) as a line with markers."""
    xs, ys = torch.linspace(*x_range, 120), torch.linspace(*y_range, 120)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    z = torch.log1p(fn(grid_x, grid_y))
    fig = go.Figure(
        go.Contour(x=xs.tolist(), y=ys.tolist(), z=z.tolist(), colorscale="Viridis", ncontours=30, showscale=False)
    )
    for name, path in paths.items():
        fig.add_trace(
            go.Scatter(
                x=path[:, 0].tolist(), y=path[:, 1].tolist(), mode="lines+markers", marker=dict(size=3), name=name
            )
        )
    fig.update_xaxes(range=list(x_range), title="x").update_yaxes(range=list(y_range), title="y")
    return fig.update_layout(title=title, height=500, width=650)


plot_paths(rosenbrock, {}, title="Rosenbrock's function, log(1 + f)").show()
assert rosenbrock(torch.tensor(1.0), torch.tensor(1.0)) == 0

# %% [markdown]
# ### The path of an optimizer
#
# Write `optimizer_path`: start a point at `start`, and take `n_steps` steps of the given optimizer
# (any class with the `torch.optim` interface, built as `optimizer_class([point], **hyperparameters)`)
# on `fn(point[0], point[1])`. Return every point visited, the start included, as a
# `(n_steps + 1, 2)` tensor.
#
# Two details matter. The point must be a fresh *leaf* tensor with `requires_grad=True` (and `start`
# must not change). And each stored point must be a copy: `point` itself is updated in place by the
# optimizer, so storing `point` (or `point.detach()`, which shares its memory) would give you
# `n_steps + 1` copies of the final point.


# %% [exercise] optimizer_path difficulty=2 importance=4 minutes=10
def optimizer_path(
    fn: Callable[[Tensor, Tensor], Tensor],
    start: Float[Tensor, "2"],
    optimizer_class: type,
    hyperparameters: dict[str, Any],
    n_steps: int,
) -> Float[Tensor, "points=n_steps+1 2"]:
    """Minimise fn(x, y) from `start` with n_steps steps of the optimizer; return every point visited,
    the start included."""
    raise NotImplementedError()


# %% [hint]
# `point = start.detach().clone().requires_grad_(True)`. Each step: `optimizer.zero_grad()`,
# `fn(point[0], point[1]).backward()`, `optimizer.step()`, then store `point.detach().clone()`.

# %% [markdown]
# Here are 200 steps of torch's own optimizers from $(-1.5, 2.5)$. Plain SGD needs a small learning
# rate (the walls are steep: at `lr=0.01` it diverges) and so barely moves along the valley floor.
# Momentum accumulates the small, consistent along-the-valley component of the gradient and gets much
# further. Adam rescales each coordinate's step by its recent gradient size, so the steep and the
# flat directions move at similar speeds.

# %%
START = torch.tensor([-1.5, 2.5])
torch_settings = {
    "SGD, lr 0.001": (torch.optim.SGD, {"lr": 0.001}),
    "SGD, lr 0.001, momentum 0.9": (torch.optim.SGD, {"lr": 0.001, "momentum": 0.9}),
    "RMSprop, lr 0.01": (torch.optim.RMSprop, {"lr": 0.01}),
    "Adam, lr 0.2": (torch.optim.Adam, {"lr": 0.2}),
}
torch_paths = {name: optimizer_path(rosenbrock, START, cls, hp, 200) for name, (cls, hp) in torch_settings.items()}
plot_paths(rosenbrock, torch_paths, title="200 steps of torch.optim from (-1.5, 2.5)").show()

final_loss = {name: rosenbrock(*path[-1]).item() for name, path in torch_paths.items()}
print({name: round(loss, 3) for name, loss in final_loss.items()})
assert final_loss["SGD, lr 0.001, momentum 0.9"] < 0.2 * final_loss["SGD, lr 0.001"]
assert final_loss["Adam, lr 0.2"] < final_loss["SGD, lr 0.001"]
too_fast = optimizer_path(rosenbrock, START, torch.optim.SGD, {"lr": 0.01}, 200)
assert not too_fast[-1].isfinite().all()  # lr 0.01: thrown from wall to wall until it overflows

# %% [markdown]
# ## 2. Writing the optimizers
#
# Each optimizer is a class with the interface of `torch.optim`: the constructor takes an iterable of
# parameters and hyperparameters, `zero_grad()` clears the gradients (setting `p.grad = None` is what
# torch does by default), and `step()` updates every parameter that has a gradient. Parameters whose
# `.grad` is `None` (a frozen layer, or one the loss did not use) must be left alone: torch skips them.
#
# Updates change the parameters in place (`p -= ...`, or `p.add_(...)`) inside `torch.no_grad()`, so
# that autograd neither records them nor complains about changing a leaf that requires grad. Keep
# per-parameter state (momentum buffers, running averages) in lists or dicts indexed by parameter.
#
# The checks build a few parameters from a seeded generator, step your optimizer and
# `torch.optim`'s eight times on the same bumpy loss (one parameter takes no part in it), and
# compare the parameters after every step.
#
# ### SGD
#
# With gradient $g_t$ of parameter $\theta$, weight decay $\lambda$, momentum $\mu$ and learning rate
# $\eta$, torch's SGD (with its defaults `dampening=0`, `nesterov=False`) computes
#
# $$g_t \leftarrow g_t + \lambda\theta_{t-1}, \qquad
# b_t = \begin{cases} g_t & t = 1 \\ \mu b_{t-1} + g_t & t > 1 \end{cases}, \qquad
# \theta_t = \theta_{t-1} - \eta\, b_t,$$
#
# and skips the buffer entirely when $\mu = 0$. Note that the first buffer is the gradient itself,
# and that the new gradient is added at full weight (no $(1 - \mu)$ factor).


# %% [exercise] SGD difficulty=2 importance=5 minutes=15
class SGD:
    """Stochastic gradient descent with momentum and (L2) weight decay, as torch.optim.SGD computes it
    with dampening=0 and nesterov=False."""

    def __init__(self, params: Iterable[nn.Parameter], lr: float, momentum: float = 0.0, weight_decay: float = 0.0):
        raise NotImplementedError()

    def zero_grad(self) -> None:
        raise NotImplementedError()

    @torch.no_grad()
    def step(self) -> None:
        raise NotImplementedError()


# %% [hint]
# Store `self.params = list(params)` (an iterator such as `model.parameters()` can only be read once)
# and `self.buffers = [None] * len(self.params)`.

# %% [hint]
# In `step`, for each `i, p`: skip if `p.grad is None`; `g = p.grad + self.weight_decay * p`; with
# momentum, `self.buffers[i] = g.clone()` the first time, else `self.momentum * self.buffers[i] + g`,
# and use the buffer as `g`; finally `p -= self.lr * g`.

# %% [markdown]
# ### RMSprop
#
# RMSprop divides each coordinate's gradient by a running root-mean-square of that coordinate's
# recent gradients, so coordinates with large gradients take smaller steps. Torch's version (with
# `centered=False`) keeps $v$ (starting at 0) and, optionally, a momentum buffer $b$ (starting at 0):
#
# $$g_t \leftarrow g_t + \lambda\theta_{t-1}, \qquad v_t = \alpha v_{t-1} + (1 - \alpha)\, g_t^2, \qquad
# s_t = \frac{g_t}{\sqrt{v_t} + \epsilon},$$
# $$b_t = \mu b_{t-1} + s_t, \qquad \theta_t = \theta_{t-1} - \eta\, b_t \quad (\text{or } \theta_{t-1} - \eta\, s_t \text{ when } \mu = 0).$$
#
# $\epsilon$ is added *outside* the square root.


# %% [exercise] RMSprop difficulty=2 importance=4 minutes=15
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
        raise NotImplementedError()

    def zero_grad(self) -> None:
        raise NotImplementedError()

    @torch.no_grad()
    def step(self) -> None:
        raise NotImplementedError()


# %% [hint]
# Keep `self.square_avg = [torch.zeros_like(p) for p in self.params]` and a list of momentum buffers
# made the same way.

# %% [markdown]
# ### Adam
#
# Adam (Kingma and Ba, 2014) keeps running averages of the gradient ($m$, momentum) and of its square
# ($v$, as RMSprop). Both start at zero, so early on they are biased towards zero; dividing by
# $1 - \beta^t$ corrects that, where $t$ counts the calls to `step()` from 1:
#
# $$g_t \leftarrow g_t + \lambda\theta_{t-1}, \quad m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t, \quad
# v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2,$$
# $$\hat m_t = \frac{m_t}{1 - \beta_1^t}, \quad \hat v_t = \frac{v_t}{1 - \beta_2^t}, \quad
# \theta_t = \theta_{t-1} - \eta\,\frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}.$$
#
# A consequence worth checking in your head: on the first step $\hat m_1 = g_1$ and
# $\hat v_1 = g_1^2$, so every coordinate moves by about $\eta$, whatever the gradient's size.


# %% [exercise] Adam difficulty=3 importance=5 minutes=20
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
        raise NotImplementedError()

    def zero_grad(self) -> None:
        raise NotImplementedError()

    @torch.no_grad()
    def step(self) -> None:
        raise NotImplementedError()


# %% [hint]
# One step counter `self.t` for the whole optimizer, increased once at the start of `step()`, not
# once per parameter.

# %% [markdown]
# ### AdamW
#
# In Adam, weight decay is added to the gradient, so it is then divided by $\sqrt{\hat v}$: parameters
# with large gradients are barely decayed. Loshchilov and Hutter (2019, "Decoupled Weight Decay
# Regularization") showed that decaying the parameters directly works better, and AdamW is now the
# default for transformers. Torch's AdamW first shrinks the parameter, then takes an Adam step on the
# raw gradient:
#
# $$\theta \leftarrow \theta\,(1 - \eta\lambda), \qquad \text{then Adam's update with } \lambda = 0.$$
#
# Note the default `weight_decay=0.01` (Adam's is 0).


# %% [exercise] AdamW difficulty=2 importance=4 minutes=10
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
        raise NotImplementedError()

    def zero_grad(self) -> None:
        raise NotImplementedError()

    @torch.no_grad()
    def step(self) -> None:
        raise NotImplementedError()


# %% [hint]
# Copy your Adam, drop `+ self.weight_decay * p` from the gradient, and start each parameter's update
# with `p *= 1 - self.lr * self.weight_decay`.

# %% [markdown]
# Your optimizers now drop into `optimizer_path` in place of torch's. On Rosenbrock's valley, their
# 200-step paths are torch's paths, point for point (up to float rounding).

# %%
my_optimizers = {"SGD": SGD, "RMSprop": RMSprop, "Adam": Adam}
my_paths = {}
for name, (cls, hp) in torch_settings.items():
    mine = my_optimizers[cls.__name__]
    my_paths[f"yours: {name}"] = optimizer_path(rosenbrock, START, mine, hp, 200)
    assert torch.allclose(my_paths[f"yours: {name}"], torch_paths[name], atol=1e-4), name
my_paths["yours: AdamW, lr 0.2, weight decay 0.1"] = optimizer_path(
    rosenbrock, START, AdamW, {"lr": 0.2, "weight_decay": 0.1}, 200
)
plot_paths(rosenbrock, my_paths, title="Your optimizers, 200 steps from (-1.5, 2.5)").show()

# %% [markdown]
# ### Parameter groups
#
# Real training often needs different settings for different parameters: no weight decay on biases
# and normalisation weights, a smaller learning rate for a pretrained backbone than for a new head.
# `torch.optim` takes this as a list of *parameter groups*, dicts with a `"params"` list and any
# hyperparameters that override the constructor's:
#
# ```python
# torch.optim.SGD([{"params": model.body.parameters()},
#                  {"params": model.head.parameters(), "lr": 1e-2}], lr=1e-3, momentum=0.9)
# ```
#
# Write `GroupedSGD`, the same SGD with groups: store the groups in `self.param_groups` (a list of
# dicts, each with every hyperparameter filled in), and keep one momentum buffer per parameter.


# %% [exercise] GroupedSGD difficulty=2 importance=3 minutes=15
class GroupedSGD:
    """SGD with parameter groups, as torch.optim.SGD takes them: `params` is a list of dicts, each with
    "params" and optionally its own "lr", "momentum" or "weight_decay"; a missing key takes the
    constructor's value."""

    def __init__(
        self, params: list[dict[str, Any]], lr: float = 0.001, momentum: float = 0.0, weight_decay: float = 0.0
    ):
        raise NotImplementedError()

    def zero_grad(self) -> None:
        raise NotImplementedError()

    @torch.no_grad()
    def step(self) -> None:
        raise NotImplementedError()


# %% [hint]
# `defaults = {"lr": lr, "momentum": momentum, "weight_decay": weight_decay}`, then each group is
# `{**defaults, **group, "params": list(group["params"])}`: later keys win.

# %% [markdown]
# A group with `lr=0` freezes its parameters: here the first layer of a small model stays exactly as
# it was, while the second trains.

# %%
model = make_mlp(hidden=16, seed=0)
first_before = model[1].weight.detach().clone()
optimizer = GroupedSGD(
    [{"params": model[1].parameters(), "lr": 0.0}, {"params": model[3].parameters()}], lr=0.1, momentum=0.9
)
images, labels = digits("train")
losses = []
for _ in range(20):
    loss = F.cross_entropy(model(images[:256]), labels[:256])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    losses.append(loss.item())
assert torch.equal(model[1].weight, first_before) and losses[-1] < losses[0]

# %% [markdown]
# ## 3. Sweeps and experiment tracking
#
# Which optimizer and learning rate suit a problem is an empirical question, answered by a sweep: train
# once per configuration and compare. A sweep is only useful if every run's settings and curves are
# recorded somewhere you can query later. This course uses **Weights & Biases** (`wandb`), the tracker
# most ML research code (and ARENA) uses, in **offline mode**: `wandb.init(mode="offline", dir=...)`
# writes each run to a local `.wandb` file and never opens a network connection. (Online, `wandb sync`
# would upload them later.) TensorBoard's `SummaryWriter` would also work offline; we picked wandb
# because its run/config/log model is the one you will meet in research repositories.
#
# The data are real: scikit-learn's bundled handwritten digits (1,797 8x8 grayscale scans, split into
# fixed train, validation and test sets by `course.data.digits`). The model is a one-hidden-layer MLP.
#
# First, the grid. `expand_grid({"lr": [0.1, 0.01], "optimizer": ["sgd", "adam"]})` is the four
# configurations, in the order `itertools.product` gives (the last key varies fastest):
# `[{"lr": 0.1, "optimizer": "sgd"}, {"lr": 0.1, "optimizer": "adam"}, {"lr": 0.01, "optimizer": "sgd"}, ...]`.


# %% [exercise] expand_grid difficulty=1 importance=2 minutes=5
def expand_grid(grid: dict[str, list]) -> list[dict]:
    """Every combination of the grid's values, one dict each, the last key varying fastest."""
    raise NotImplementedError()


# %% [hint]
# `itertools.product(*grid.values())` yields tuples of values; `dict(zip(grid, values))` names them.

# %% [markdown]
# Next, one training run. `train_digits(config, log)` trains on the digits with the configuration's
# settings and reports through `log`, a function that takes a dict of metrics (in a sweep it will be
# `run.log`; in the check, a list's `append`). To make runs reproducible, and comparable with the
# reference, build everything from the helpers, in this order:
#
# 1. `model = make_mlp(config["hidden"], config["seed"])`;
# 2. `optimizer = OPTIMIZERS[config["optimizer"]](model.parameters(), lr=config["lr"])` (torch's
#    optimizers, by name);
# 3. for each `(x, y)` in `digit_batches(config["batch_size"], config["steps"], config["seed"])`: the
#    cross-entropy loss, a step, and `log({"train_loss": loss.item()})`;
# 4. finally the accuracy on `digits("val")`: `log({"val_accuracy": accuracy})`, and return it as a
#    float.


# %% [exercise] train_digits difficulty=2 importance=3 minutes=10
def train_digits(config: dict[str, Any], log: Callable[[dict[str, float]], None]) -> float:
    """Train make_mlp(config["hidden"], config["seed"]) on digit_batches(config["batch_size"], config["steps"],
    config["seed"]) with OPTIMIZERS[config["optimizer"]] at config["lr"]; log {"train_loss": ...} after every
    step and {"val_accuracy": ...} at the end; return the validation accuracy."""
    raise NotImplementedError()


# %% [hint]
# The loop body: `loss = F.cross_entropy(model(x), y)`, `optimizer.zero_grad()`, `loss.backward()`,
# `optimizer.step()`, `log({"train_loss": loss.item()})`. Evaluate under `torch.no_grad()`.

# %% [markdown]
# Now the sweep. For each configuration of the grid, start a run with
#
# ```python
# run = wandb.init(project=project, dir=directory, mode="offline", config=config, name=...)
# ```
#
# (`config=` is what makes the run findable later: never leave it out), train with `run.log` as the
# logger, and call `run.finish()` before the next one. Return the accuracies in grid order. Passing
# `settings=wandb.Settings(silent=True, console="off")` keeps wandb's messages out of the notebook.


# %% [exercise] run_sweep difficulty=2 importance=4 minutes=10
def run_sweep(grid: dict[str, list], directory: str, project: str) -> list[float]:
    """Run train_digits once per configuration of the grid, each as its own offline wandb run (config
    recorded, metrics logged) under `directory`; return the validation accuracies in grid order."""
    raise NotImplementedError()


# %% [hint]
# `for config in expand_grid(grid):` start the run, `accuracies.append(train_digits(config, run.log))`,
# then `run.finish()`.

# %% [markdown]
# A sweep of two optimizers and three learning rates, 100 steps each, written to a temporary folder.
# Then we read the runs back *from disk* with `read_wandb_runs` (it parses the offline `.wandb` files:
# each run's name, config, logged history and summary), exactly as you would compare runs a week
# later, and plot the training curves.

# %%
sweep_dir = tempfile.mkdtemp(prefix="course-0.3-wandb-")
grid = {
    "optimizer": ["sgd", "adam"],
    "lr": [0.003, 0.03, 0.3],
    "hidden": [32],
    "batch_size": [64],
    "steps": [100],
    "seed": [0],
}
accuracies = run_sweep(grid, sweep_dir, project="digits-sweep")
runs = read_wandb_runs(sweep_dir)
assert len(runs) == 6 and [run["config"] for run in runs] == expand_grid(grid)


def smooth(values: list[float], k: int = 10) -> list[float]:
    """Moving average over the last k values, so noisy minibatch losses are readable."""
    return [sum(values[max(0, i - k + 1) : i + 1]) / len(values[max(0, i - k + 1) : i + 1]) for i in range(len(values))]


line(
    {f"{r['config']['optimizer']}, lr {r['config']['lr']}": smooth(r["history"]["train_loss"]) for r in runs},
    title="Training loss of each run (read back from the offline wandb files)",
    yaxis="cross-entropy",
).show()
table = {f"{r['config']['optimizer']}, lr {r['config']['lr']}": round(r["summary"]["val_accuracy"], 3) for r in runs}
print(table)

# %% [markdown]
# The plot shows the classic picture. Each optimizer has its own good range of learning rates, and
# they differ by about an order of magnitude: SGD is still near chance at `lr=0.003` and learns
# fastest at 0.3, while Adam is best at 0.003-0.03 and is thrown off by 0.3, where its
# first steps (about `lr` per coordinate, whatever the gradient) are too big. The best run of the
# sweep reaches over 90% validation accuracy after 100 steps; the worst stays near chance (10%).

# %%
best = max(runs, key=lambda r: r["summary"]["val_accuracy"])
assert best["summary"]["val_accuracy"] > 0.9
assert min(r["summary"]["val_accuracy"] for r in runs) < 0.3
by_name = {(r["config"]["optimizer"], r["config"]["lr"]): r["summary"]["val_accuracy"] for r in runs}
assert by_name[("sgd", 0.3)] > by_name[("sgd", 0.003)] and by_name[("adam", 0.03)] > by_name[("adam", 0.3)]
assert accuracies == [r["summary"]["val_accuracy"] for r in runs]

# %% [markdown]
# ## 4. Distributed data-parallel training
#
# When one device is too slow, data parallelism runs a copy of the model on each of $N$ workers, gives
# each worker a different slice of the batch, and **averages the gradients** across workers before
# every step. Since the loss on the batch is the mean of the per-example losses, the average of the
# workers' gradients (with equal slices) is exactly the full batch's gradient, so every copy takes
# the same step and the copies stay identical.
#
# `torch.distributed` gives processes a shared vocabulary: each has a **rank** (0 to $N-1$) in a
# **process group** of size $N$ (the world size). They exchange tensors with point-to-point messages
# (`dist.send`, `dist.recv`, and the non-blocking `dist.isend`) and with **collectives** that every
# rank calls together (`dist.broadcast`, `dist.all_reduce`, ...). The **gloo** backend runs all of
# this on CPUs over TCP, so we can use real processes on this machine; on GPUs, NCCL plays the same
# role.
#
# `launch_gloo(fn, world_size, *args)` (from the course's solutions module) starts `world_size`
# processes on localhost, joins them in a gloo group, runs `fn(*args)` in each, and returns their
# results, rank 0's first. Inside `fn`, `dist.get_rank()` and `dist.get_world_size()` say who is who.
# It forks the processes, so `fn` can be defined in this notebook (scripts usually use `torchrun` or
# `torch.multiprocessing.spawn`, which import the function from a file instead), and gives each
# process one CPU thread. (Forking is also quick: `spawn` would import torch afresh in every process,
# which takes seconds.)


# %%
def hello() -> tuple[int, int, list[float]]:
    value = torch.tensor([float(dist.get_rank() + 1)])
    dist.all_reduce(value)  # the built-in: every rank ends up with the sum 1 + 2
    return dist.get_rank(), dist.get_world_size(), value.tolist()


print(launch_gloo(hello, 2))
assert launch_gloo(hello, 2) == [(0, 2, [3.0]), (1, 2, [3.0])]

# %% [markdown]
# ### Broadcast
#
# A broadcast copies one rank's tensor to every other rank: it is how training starts with identical
# weights everywhere. Write it with point-to-point messages: rank `src` sends its tensor to each other
# rank; every other rank receives into its own `tensor` (so the operation is in place, like
# `dist.broadcast`). Return `tensor` too.
#
# `dist.send(tensor, dst=r)` blocks until rank `r` has posted the matching `dist.recv(buffer, src=...)`,
# which writes into `buffer`. A send with no matching receive hangs until the group's timeout, so if a
# check seems stuck, look for an unmatched pair.


# %% [exercise] broadcast difficulty=2 importance=4 minutes=10
def broadcast(tensor: Tensor, src: int) -> Tensor:
    """Every rank returns (and holds, in place) the value of `tensor` on rank src, sent with point-to-point
    messages: src sends to each other rank in turn."""
    raise NotImplementedError()


# %% [hint]
# `if dist.get_rank() == src:` loop over `range(dist.get_world_size())` and send to every rank but
# yourself; `else: dist.recv(tensor, src=src)`.

# %% [markdown]
# (Sending to each rank in turn takes $N - 1$ sequential sends from one rank. A tree broadcast, where
# every rank that has the data forwards it, takes about $\log_2 N$ rounds instead; with two processes
# they are the same.)
#
# ### All-reduce, the simple way
#
# All-reduce leaves the elementwise **sum** of every rank's tensor on every rank. The simplest version:
# every rank but 0 sends its tensor to rank 0, which adds them up, then rank 0 broadcasts the total
# (use your `broadcast`).


# %% [exercise] all_reduce_naive difficulty=2 importance=4 minutes=10
def all_reduce_naive(tensor: Tensor) -> Tensor:
    """Every rank returns (and holds, in place) the sum of `tensor` over all ranks: rank 0 receives every
    other rank's tensor and adds it up, then broadcasts the total."""
    raise NotImplementedError()


# %% [hint]
# On rank 0, receive into a scratch buffer (`torch.empty_like(tensor)`) once per other rank and add it
# to `tensor`. Then every rank calls `broadcast(tensor, src=0)`.

# %% [markdown]
# ### Ring all-reduce
#
# The simple version makes rank 0 receive and send $N - 1$ whole tensors: its bandwidth is the
# bottleneck. **Ring all-reduce** (the algorithm behind NCCL and Horovod) arranges the ranks in a
# ring and cuts the tensor into $N$ chunks. Every rank sends only to its right neighbour
# $(r + 1) \bmod N$ and receives from its left neighbour $(r - 1) \bmod N$:
#
# 1. **Reduce-scatter**, $N - 1$ steps. At step $s$, rank $r$ sends chunk $(r - s) \bmod N$ and
#    receives chunk $(r - s - 1) \bmod N$, which it adds to its own. Afterwards rank $r$ holds the
#    complete sum of chunk $(r + 1) \bmod N$.
# 2. **All-gather**, $N - 1$ steps. At step $s$, rank $r$ sends chunk $(r + 1 - s) \bmod N$ and
#    receives chunk $(r - s) \bmod N$, which it copies over its own.
#
# Each rank sends $2(N - 1)/N$ tensors' worth of data in total, whatever $N$ is.
#
# Since every rank sends and receives in the same step, a blocking `dist.send` followed by
# `dist.recv` would leave every rank waiting for a receiver. Start the send with
# `request = dist.isend(chunk, dst=right)`, then `dist.recv(...)`, then `request.wait()`. Send a
# `.clone()` of the chunk, since the chunk may change while the send is in flight. The checks run
# with 2 and 3 ranks, on tensors whose size is not a multiple of $N$.


# %% [exercise] all_reduce_ring difficulty=4 importance=3 minutes=30
def all_reduce_ring(tensor: Tensor) -> Tensor:
    """The sum over all ranks, in place and returned, by ring all-reduce: split the flattened tensor into
    world_size chunks; in world_size - 1 steps of reduce-scatter each rank passes one chunk to its right
    neighbour, who adds it to its own; then world_size - 1 steps of all-gather pass the finished chunks on."""
    raise NotImplementedError()


# %% [hint]
# `chunks = list(tensor.view(-1).tensor_split(world))` gives views into `tensor`, so `chunks[i] += ...`
# and `chunks[i].copy_(...)` update `tensor` itself. `tensor_split` allows sizes that do not divide
# evenly.

# %% [hint]
# Receive into `torch.empty_like(chunks[receive_index])`. Write both phases as one loop over
# $2(N - 1)$ steps if you like, with $s$ counted from 0 again in the second phase.

# %% [markdown]
# All three collectives against torch's own, in one process group of 3 ranks:


# %%
def compare_collectives(data: Tensor) -> bool:
    rank = dist.get_rank()
    expected_sum = data[rank].clone()
    dist.all_reduce(expected_sum)
    ok = torch.equal(broadcast(data[rank].clone(), src=2), data[2])
    ok &= torch.allclose(all_reduce_naive(data[rank].clone()), expected_sum, atol=1e-5)
    ok &= torch.allclose(all_reduce_ring(data[rank].clone()), expected_sum, atol=1e-5)
    return bool(ok)


assert launch_gloo(compare_collectives, 3, torch.randn(3, 4, 5)) == [True, True, True]

# %% [markdown]
# ### A data-parallel training step
#
# Now the trainer. `ddp_train_step(model, optimizer, inputs, targets)` is called on every rank with
# the same global batch and the same (identical) model. Each rank:
#
# 1. takes its shard of the batch: every `world_size`-th example starting at its rank,
#    `inputs[rank::world_size]` (the convention of torch's `DistributedSampler`);
# 2. computes the mean cross-entropy on its shard and backpropagates;
# 3. averages each parameter's gradient over the ranks: `dist.all_reduce(p.grad)`, then divide by the
#    world size (use torch's all-reduce here: it is faster than ours, and it is what you would use);
# 4. steps the optimizer.
#
# Return the loss on the whole global batch, as a float: the all-reduced shard losses divided by the
# world size. With equal shards (the batch size a multiple of the world size) this is the mean over the
# whole batch, the same number single-process training reports.


# %% [exercise] ddp_train_step difficulty=3 importance=5 minutes=15
def ddp_train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    inputs: Float[Tensor, "batch ..."],
    targets: Int[Tensor, "batch"],
) -> float:
    """One data-parallel step on the global batch: this rank takes every world_size-th example from its
    rank on, computes the mean cross-entropy on that shard, averages gradients over ranks with
    dist.all_reduce, and steps. The batch size must be a multiple of the world size. Returns the loss on
    the whole global batch (the average over ranks)."""
    raise NotImplementedError()


# %% [hint]
# Averaging, not summing: after `dist.all_reduce(p.grad)` each gradient is the *sum* over ranks;
# `p.grad /= world` makes it the mean. Forgetting the division is the same as multiplying the learning
# rate by the world size.

# %% [markdown]
# ### Data-parallel training equals single-process training
#
# The claim to test: two processes, each seeing half of every batch, end with the **same parameters**
# as one process seeing all of it. Both runs start from `make_mlp(32, seed=0)` and take 60 steps of SGD
# with momentum on the same batches of 64 digits. The parameters agree up to float rounding (the sums
# are added in a different order), to within $10^{-5}$, and the two copies in the data-parallel run
# agree with each other exactly.

# %%
STEPS, BATCH = 60, 64
batches = digit_batches(BATCH, STEPS, seed=1)


def train_data_parallel(batches: list[tuple[Tensor, Tensor]]) -> tuple[list[float], list[Tensor]]:
    model = make_mlp(32, seed=0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    losses = [ddp_train_step(model, optimizer, x, y) for x, y in batches]
    return losses, [p.detach().clone() for p in model.parameters()]


(ddp_losses, rank0_params), (_, rank1_params) = launch_gloo(train_data_parallel, 2, batches)

model = make_mlp(32, seed=0)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
single_losses = []
for inputs, targets in tqdm(batches, desc="single process"):
    loss = F.cross_entropy(model(inputs), targets)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    single_losses.append(loss.item())

line(
    {"2 processes (gloo)": ddp_losses, "1 process": single_losses},
    title="Data-parallel vs single-process training",
    yaxis="cross-entropy on the global batch",
).show()
assert all(torch.equal(a, b) for a, b in zip(rank0_params, rank1_params))  # the replicas never drift apart
assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(rank0_params, model.parameters()))
assert max(abs(a - b) for a, b in zip(ddp_losses, single_losses)) < 1e-4
assert single_losses[-1] < 0.5 * single_losses[0]
print(
    f"largest parameter difference: {max((a - b).abs().max().item() for a, b in zip(rank0_params, model.parameters())):.1e}"
)

# %% [markdown]
# `torch.nn.parallel.DistributedDataParallel` does the same thing with two refinements: it broadcasts
# rank 0's weights at the start (so the copies start identical however they were built), and it
# all-reduces gradients in buckets *during* the backward pass, overlapping communication with
# computation instead of waiting until the end.
#
# ## Summary
#
# - **Optimizers are a few lines each, and the details are the behaviour.** SGD's momentum buffer
#   starts at the first gradient; RMSprop adds $\epsilon$ outside the root; Adam's bias correction
#   makes its first step about $\eta$ per coordinate; AdamW decays the weights directly, scaled by the
#   learning rate. Matching `torch.optim` to float precision is the test that you got them right.
# - **Landscapes show why these rules exist**: on Rosenbrock's valley, momentum and adaptive step sizes
#   make progress where plain SGD crawls.
# - **Parameter groups** give different parameters different settings (frozen, no decay, smaller
#   learning rate) with one optimizer.
# - **Track every run.** An offline wandb run records its config and every logged metric on disk;
#   reading them back lets you compare a sweep's runs, and here showed each optimizer's own good range
#   of learning rates.
# - **Data parallelism is gradient averaging.** With broadcast and all-reduce (which you built from
#   sends and receives, including the bandwidth-optimal ring), $N$ processes each seeing $1/N$ of the
#   batch take exactly the step one process would take on all of it.
#
# **Going further.** Add Nesterov momentum and `amsgrad` and check them against torch's flags. Write a
# tree broadcast and time it against the naive one with 4 processes. Wrap the model in
# `DistributedDataParallel` inside `launch_gloo` and confirm it matches your `ddp_train_step`. Add a
# learning-rate schedule (warmup then cosine decay) as a sweep dimension.

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
#    then an Adam that can be checkpointed and resumed, SGD with parameter groups, gradient clipping
#    by global norm, and a learning-rate schedule (linear warm-up, then cosine decay).
# 3. A hyperparameter sweep on real data (handwritten digits), each run logged with Weights & Biases
#    in offline mode, read back from disk and compared in one plot; then successive halving, a search
#    that spends its budget on the promising configurations.
# 4. Distributed data-parallel training with `torch.distributed` over CPU processes: broadcast and
#    all-reduce written with point-to-point messages, and a data-parallel training step whose result
#    equals single-process training; and its one-process cousin, gradient accumulation.
#
# Each part ends with a **try it**: a prediction to make (what breaks, by how much) before you run the
# cell that settles it.
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

import io
import itertools  # noqa: F401 (for your expand_grid)
import math  # noqa: F401 (for your clip_grad_norm, warmup_cosine and successive_halving)
import tempfile
from collections.abc import Callable, Iterable
from typing import Any

import plotly.graph_objects as go
import torch
import torch.distributed as dist
import torch.nn.functional as F
import wandb  # noqa: F401 (for your run_sweep)
from jaxtyping import Float, Int
from torch import Tensor, nn
from tqdm.auto import tqdm

from course.data import digits
from course.plot import line
from solutions.chapter0_fundamentals.optimization import (
    OPTIMIZERS,  # noqa: F401 (for your train_digits)
    digit_batches,
    launch_gloo,
    make_mlp,
    read_wandb_runs,
)
from tests.checks.chapter0_fundamentals.optimization import check  # noqa: F401 (the build adds the check cells)

# Every model here is tiny: one thread is faster than two, which spin-wait for each other whenever another
# process (wandb's writer, a gloo worker) holds a core.
torch.set_num_threads(1)

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
    """Rosenbrock's function of (x, y) with parameters a and b, elementwise over tensors of any shape; its
    minimum is 0 at (a, a^2)."""
    raise NotImplementedError()


# %% [hint]
# Tensor arithmetic is elementwise, so the formula above translates term for term, whatever the shape.
# Test your version at its minimum $(a, a^2)$ with values of $a$ and $b$ other than the defaults.

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
    start: Float[Tensor, " 2"],
    optimizer_class: type,
    hyperparameters: dict[str, Any],
    n_steps: int,
) -> Float[Tensor, "points=n_steps+1 2"]:
    """Minimise fn(x, y) from `start` with n_steps steps of the optimizer; return every point visited,
    the start included."""
    raise NotImplementedError()


# %% [hint]
# Two objects need care: the tensor the optimizer updates (a leaf of your own, whatever `start` is:
# it may itself require grad, or be float64) and each stored point (a snapshot that later steps cannot
# change). Between them, each step is the usual sequence: clear, evaluate, backpropagate, step.

# %% [hint]
# `start.detach().clone()` is a new leaf with `start`'s values and dtype; `.requires_grad_(True)`
# makes the optimizer's gradients flow into it. Collect the snapshots in a list and `torch.stack` them
# at the end.

# %% [markdown]
# *If you skipped `rosenbrock` or `optimizer_path`*, set the flag in the next cell to True and run it:
# it continues with the reference versions, which the rest of the notebook uses. Leave it False
# otherwise: it would replace yours.

# %%
# Fallback: the reference landscape and path, only for learners who skipped part 1's exercises.
SKIPPED_PART_1 = False
if SKIPPED_PART_1:
    from solutions.chapter0_fundamentals.optimization import optimizer_path, rosenbrock

# %% [markdown]
# Here are 200 steps of torch's own optimizers from $(-1.5, 2.5)$. Plain SGD needs a small learning
# rate (the walls are steep: at `lr=0.01` it diverges) and so barely moves along the valley floor.
# Momentum accumulates the small, consistent along-the-valley component of the gradient and gets much
# further. Adam rescales each coordinate's step by its recent gradient size, so the steep and the
# flat directions move at similar speeds.
#
# **Try it.** Before running the cell, predict what plain SGD does at ten times the learning rate,
# `lr=0.01`: faster progress along the valley, or something else? (The cell's last lines settle it.)

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
x_start, x_sgd = START[0].item(), torch_paths["SGD, lr 0.001"][-1, 0].item()
assert (x_sgd - x_start) / (1 - x_start) < 0.1  # plain SGD covers under a tenth of the way to x = 1
assert final_loss["SGD, lr 0.001, momentum 0.9"] < 0.2 * final_loss["SGD, lr 0.001"]
assert final_loss["Adam, lr 0.2"] < final_loss["SGD, lr 0.001"]
too_fast = optimizer_path(rosenbrock, START, torch.optim.SGD, {"lr": 0.01}, 200)
assert not too_fast[-1].isfinite().all()  # lr 0.01: thrown from wall to wall until it overflows
first_bad = int((~too_fast.isfinite().all(dim=1)).nonzero()[0])
print(f"SGD at lr 0.01: the first non-finite point is step {first_bad} of 200")

# %% [markdown]
# ## 2. Writing the optimizers
#
# Each optimizer is a class with the interface of `torch.optim`: the constructor takes an iterable of
# parameters and hyperparameters, `zero_grad()` clears the gradients (setting `p.grad = None` is what
# torch does by default), and `step()` updates every parameter that has a gradient. Parameters whose
# `.grad` is `None` (a frozen layer, or one the loss did not use on this step) must be left alone:
# torch skips them, momentum and weight decay included.
#
# Updates change the parameters in place (`p -= ...`, or `p.add_(...)`) inside `torch.no_grad()`, so
# that autograd neither records them nor complains about changing a leaf that requires grad. Keep
# per-parameter state (momentum buffers, running averages) in lists or dicts indexed by parameter.
#
# The checks build a few parameters from a seeded generator, step your optimizer and
# `torch.optim`'s eight times on the same bumpy loss (one parameter takes no part in it; in some cases
# another takes part only every other step, or the parameters come as a generator), and compare the
# parameters after every step.
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
# Think about what must survive from one `step()` to the next: the parameters themselves (an iterator
# such as `model.parameters()` can be read only once) and one momentum buffer per parameter, which does
# not exist until that parameter's first step. And what "clears the gradients" means for a parameter
# that the next loss does not use.

# %% [hint]
# The order within a step, per parameter with a gradient: weight decay joins the gradient first; the
# result feeds the momentum buffer (its first value is a copy of the gradient, not a view of it); the
# parameter moves by `lr` times the buffer, or times the gradient when there is no momentum. A skeleton:
#
# ```python
# for i, p in enumerate(self.params):
#     if p.grad is None:
#         continue
#     g = ...  # the gradient with weight decay
#     if self.momentum:
#         ...  # update self.buffers[i]; g becomes the buffer
#     p -= self.lr * g
# ```

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
# Per parameter, two running quantities that both start at zero (so, unlike SGD's buffer, they can be
# made up front). Then check the details the formulas fix: which of $\alpha$ and $1 - \alpha$ weights the
# new squared gradient, that $\epsilon$ sits outside the root, and what momentum accumulates (the scaled
# step, not the raw gradient).

# %% [hint]
# With $\alpha = 0.75$ and learning rate 0.1, the first step gives $v_1 = 0.25\,g_1^2$, so every
# coordinate moves by $0.1 / \sqrt{0.25} = 0.2$ against the sign of its gradient: a quick test of your
# update on one parameter.

# %% [markdown]
# ### Adam
#
# Adam (Kingma and Ba, 2014) keeps running averages of the gradient ($m$, momentum) and of its square
# ($v$, as RMSprop). Both start at zero, so early on they are biased towards zero; dividing by
# $1 - \beta^t$ corrects that, where $t$ counts from 1 the updates this parameter has had (torch keeps one
# count per parameter: a step on which a parameter has no gradient does not count for it):
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
# The bias correction depends on how many gradients a parameter's averages have absorbed, so think
# about what $t$ is for a parameter that was skipped on some steps, and when it goes up (before it is
# used: at a parameter's first update $t = 1$). The corrected averages are for the update only; what
# you keep for the next step are the raw running averages.

# %% [hint]
# Check your first step by hand: with $t = 1$, $\hat m_1 = g_1$ and $\hat v_1 = g_1^2$, so each
# coordinate moves by $\eta\, g_1 / (|g_1| + \epsilon)$, that is about $\eta$ against its gradient's sign. With the
# default betas, a first step of about $3.2\,\eta$ means no bias correction at all, $0.1\,\eta$ none on $m$,
# and $32\,\eta$ none on $v$.

# %% [markdown]
# The first step, on the same loss $\theta \cdot \theta$ scaled by a factor of a thousandth, one and a
# thousand: your Adam moves each coordinate by $\eta = 0.1$ every time.

# %%
for scale in (1e-3, 1.0, 1e3):
    theta = nn.Parameter(torch.tensor([1.0, -2.0]))
    adam = Adam([theta], lr=0.1)
    (scale * (theta * theta).sum()).backward()
    adam.step()
    assert torch.allclose(theta.detach(), torch.tensor([0.9, -1.9]), atol=1e-4), scale

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
# Start from your Adam. Two things change, both about weight decay: where it acts (on the parameter
# itself, not through the gradient) and when (before the Adam update, and only for parameters that
# have a gradient this step). The shrink factor involves the learning rate as well as the decay.

# %% [hint]
# By hand, for one step with $\eta = 0.1$, $\lambda = 0.5$ from $\theta = (1, -2)$ on the loss
# $\theta \cdot \theta$: shrinking gives $(0.95, -1.9)$; the Adam step then moves each coordinate by
# about $0.1$ against its gradient's sign, ending at $(0.85, -1.8)$.

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
# ### Checkpoints: saving and restoring an optimizer
#
# Long runs are stopped and resumed: a preempted job, a crash at hour 30, a fine-tune that starts from
# someone else's checkpoint. Saving the model's weights is not enough. Resumed with a fresh Adam, the
# next steps are not the steps the run would have taken, and the run you report is not the run you
# specified. `torch.optim` optimizers have `state_dict()` and `load_state_dict()` for this.
#
# Write `CheckpointAdam`, your Adam with those two methods. The check trains a few steps, saves the
# checkpoint with `torch.save` (to a buffer: a real checkpoint goes to disk and comes back in another
# process), builds a *new* `CheckpointAdam` over *copies* of the parameters (possibly with different
# constructor arguments: the checkpoint's settings win, as in torch), loads the checkpoint, and
# requires the resumed optimizer's steps to be exactly the original's.


# %% [exercise] CheckpointAdam difficulty=3 importance=3 minutes=15
class CheckpointAdam(Adam):
    """Adam whose state can be saved and restored: loading a checkpoint taken after some steps into a new
    optimizer, over a copy of the parameters (as a new process would have), makes it continue exactly as
    the original optimizer would have."""

    def state_dict(self) -> dict[str, Any]:
        """A checkpoint of everything the next steps depend on apart from the parameters' values, in plain
        tensors, numbers and containers, so that it survives torch.save and torch.load."""
        raise NotImplementedError()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a checkpoint from state_dict, hyperparameters included."""
        raise NotImplementedError()


# %% [hint]
# List everything your `step()` reads apart from the gradient and the parameter itself: each piece must
# be in the checkpoint. Then think about the new process: its parameters are different objects, so what
# still identifies "the same parameter" in both?

# %% [hint]
# Torch keys a parameter's state by its position in the list the optimizer was given. A dict with the
# hyperparameters and, per position, that parameter's step count and running averages is enough; clone
# the tensors, so that the checkpoint is a snapshot rather than a view of state that later steps change.

# %% [markdown]
# A checkpoint after 5 steps of training the digits MLP, resumed in a new optimizer over a copy of the
# model: the next 5 steps match the uninterrupted run exactly. A fresh Adam over the copy, without the
# checkpoint, does not: its running averages and its bias correction start again from $t = 1$.

# %%
images, labels = digits("train")


def adam_steps(model: nn.Module, optimizer: Any, n: int) -> None:
    for _ in range(n):
        optimizer.zero_grad()
        F.cross_entropy(model(images[:256]), labels[:256]).backward()
        optimizer.step()


model = make_mlp(hidden=16, seed=0)
original = CheckpointAdam(model.parameters(), lr=0.01)
adam_steps(model, original, 5)
buffer = io.BytesIO()
torch.save({"model": model.state_dict(), "optimizer": original.state_dict()}, buffer)
adam_steps(model, original, 5)

buffer.seek(0)
checkpoint = torch.load(buffer, weights_only=False)
resumed_model, fresh_model = make_mlp(hidden=16, seed=1), make_mlp(hidden=16, seed=1)
resumed_model.load_state_dict(checkpoint["model"])
fresh_model.load_state_dict(checkpoint["model"])
resumed = CheckpointAdam(resumed_model.parameters(), lr=0.01)
resumed.load_state_dict(checkpoint["optimizer"])
adam_steps(resumed_model, resumed, 5)
adam_steps(fresh_model, CheckpointAdam(fresh_model.parameters(), lr=0.01), 5)
assert all(torch.equal(a, b) for a, b in zip(resumed_model.parameters(), model.parameters()))
assert not all(torch.allclose(a, b, atol=1e-4) for a, b in zip(fresh_model.parameters(), model.parameters()))

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
# Fill every group in once, in the constructor: a setting the group gives wins over the constructor's,
# and a setting of 0 is a setting (a frozen group has a learning rate of 0), not a missing one. A
# group's parameters may come as a generator, as `model.parameters()` does. Momentum buffers belong to
# parameters, not to groups.

# %% [hint]
# Merging dicts with `{**a, **b}` keeps `b`'s value for every key the two share. A dict keyed by
# `id(p)` (or by the parameter itself) holds one buffer per parameter across groups.

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
# ### Gradient clipping by global norm
#
# One bad batch can give a gradient a thousand times its usual size, and one step along it can undo
# hours of training (or, as you saw on Rosenbrock's walls, throw the parameters to infinity). Almost
# every transformer training run guards against this by **clipping**: if the norm of the gradient,
# taken over *all* parameters together as one long vector, exceeds `max_norm`, scale every gradient
# down by the same factor so that the norm becomes `max_norm`. The direction of the update is kept;
# only its length is capped.
#
# Write `clip_grad_norm(params, max_norm, norm_type=2.0)` to behave as
# `torch.nn.utils.clip_grad_norm_`: it changes the gradients in place, returns the total norm measured
# *before* clipping (a 0-dimensional tensor; training scripts log it, and its spikes are an early sign
# of trouble), ignores parameters whose `.grad` is `None`, and supports any `norm_type`, including
# `math.inf` (the largest absolute entry). Torch's factor is $\min\bigl(1, \text{max\_norm} / (\lVert g \rVert + 10^{-6})\bigr)$:
# the small constant avoids dividing by a zero norm, and an infinite or NaN norm turns the gradients
# into zeros or NaN, a failure you see at once, rather than a silently skipped clip.


# %% [exercise] clip_grad_norm difficulty=3 importance=4 minutes=20
def clip_grad_norm(params: Iterable[nn.Parameter], max_norm: float, norm_type: float = 2.0) -> Float[Tensor, ""]:
    """Scale the gradients in place, all by one common factor, so that their norm taken together (as one long
    vector) is at most max_norm, as torch.nn.utils.clip_grad_norm_ does; parameters without a gradient take no
    part. Returns that total norm as it was before clipping (0 when no parameter has a gradient)."""
    raise NotImplementedError()


# %% [hint]
# Think of all the gradients as pieces of one vector. Is there a way to get that vector's norm from the
# pieces' own norms, without concatenating them? (It holds for every $p$, and for the largest-entry
# norm too.) Then: one factor for everyone, never above 1, and what happens to `params` if it is a
# generator you read twice.

# %% [hint]
# For $p = 2$: $\lVert (g_1, g_2) \rVert^2 = \lVert g_1 \rVert^2 + \lVert g_2 \rVert^2$, so the total
# is the norm of the vector of per-parameter norms; `torch.linalg.vector_norm` takes any `ord`,
# `math.inf` included. By hand: gradients $(3, 0)$ and $(0, 4)$ have total norm 5, and clipping them to 1
# gives $(0.6, 0)$ and $(0, 0.8)$. Multiply each `.grad` in place (`mul_`) by the clamped factor.

# %% [markdown]
# Clipping in use: a batch whose gradient is a hundred times too large (its norm is over 10).
# Unclipped, one SGD step would be `lr` times that norm long; clipped to norm 1, the step is `lr` long,
# whatever the spike. Then the non-finite cases: an infinite norm zeroes the finite gradients, a NaN
# norm makes them all NaN.

# %%
images, labels = digits("train")
model = make_mlp(hidden=16, seed=0)
before = [p.detach().clone() for p in model.parameters()]
loss = 100 * F.cross_entropy(model(images[:64]), labels[:64])  # a spike: every gradient 100 times too big
loss.backward()
spike_norm = clip_grad_norm(model.parameters(), max_norm=1.0)
clipped_norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()]))
with torch.no_grad():
    for weight in model.parameters():
        weight -= 0.1 * weight.grad  # a plain SGD step with the clipped gradient
moved = torch.linalg.vector_norm(torch.stack([(p - b).norm() for p, b in zip(model.parameters(), before)]))
print(
    f"gradient norm before clipping {spike_norm.item():.1f}, after {clipped_norm.item():.4f}; the step's length "
    f"{moved.item():.4f}"
)
assert spike_norm > 10 and torch.isclose(clipped_norm, torch.tensor(1.0), atol=1e-4)
assert torch.isclose(moved, torch.tensor(0.1), atol=1e-4)  # lr x max_norm, whatever the spike

for bad in (math.inf, math.nan):  # a non-finite norm: the gradients show it instead of a skipped clip
    pair = [nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(2))]
    pair[0].grad, pair[1].grad = torch.tensor([1.0, bad]), torch.tensor([0.5, -2.0])
    clip_grad_norm(pair, max_norm=1.0)
    assert torch.equal(pair[1].grad, torch.zeros(2)) if bad == math.inf else pair[1].grad.isnan().all()

# %% [markdown]
# ### A learning-rate schedule: warm-up, then cosine decay
#
# Transformers are rarely trained at one learning rate. The usual schedule (used for GPT-2 and most
# models since) **warms up** linearly from 0 over the first steps, while Adam's $v$ still holds only a
# few squared gradients, then **decays** along half a cosine to a small fraction of the peak. In torch a
# schedule is a function from the step to a multiplier of the base learning rate, handed to
# `torch.optim.lr_scheduler.LambdaLR`, which calls it with 0 before the first step and with $k$ after
# $k$ calls of `scheduler.step()`.
#
# Write `warmup_cosine(step, warmup_steps, total_steps, final_fraction)`: 0 at step 0, rising linearly
# to exactly 1 at `warmup_steps`; from there half a cosine down to exactly `final_fraction` at
# `total_steps`; and `final_fraction` at every later step (a run that goes on for a few steps must not
# see its learning rate climb again). The decay part is torch's `CosineAnnealingLR` with
# `eta_min = final_fraction`, taken over `total_steps - warmup_steps` steps.


# %% [exercise] warmup_cosine difficulty=2 importance=3 minutes=10
def warmup_cosine(step: int, warmup_steps: int, total_steps: int, final_fraction: float = 0.0) -> float:
    """The learning-rate multiplier at `step` (counted from 0): a linear warm-up from 0 that reaches 1 at
    warmup_steps, then a cosine decay from 1 to final_fraction, reached at total_steps and held after it.
    Usable as LambdaLR's lr_lambda. Requires 0 <= warmup_steps < total_steps."""
    raise NotImplementedError()


# %% [hint]
# Write down the value at four steps before any code: 0, `warmup_steps`, `total_steps`, and one past
# `total_steps`. Which of them would a division by `warmup_steps` break when there is no warm-up, and
# which would a cosine that is never told to stop get wrong?

# %% [hint]
# During the decay, let the progress $p$ run from 0 at `warmup_steps` to 1 at `total_steps` (and stay
# at 1 after). Half a cosine from 1 to 0 is $\tfrac12(1 + \cos \pi p)$; stretch it to end at
# `final_fraction` instead of 0.

# %% [markdown]
# Your schedule inside `LambdaLR`, 120 steps with a warm-up of 10 and the decay ending at step 100, against
# torch's own `CosineAnnealingLR` over the decay: they agree, and the learning rate stays at its floor
# for the last 20 steps.


# %%
def lr_trajectory(optimizer: torch.optim.Optimizer, scheduler: Any, steps: int) -> list[float]:
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


base_lr = 0.1
schedule_opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=base_lr)
lrs = lr_trajectory(
    schedule_opt, torch.optim.lr_scheduler.LambdaLR(schedule_opt, lambda k: warmup_cosine(k, 10, 100, 0.1)), 120
)
cosine_opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=base_lr)
torch_decay = lr_trajectory(
    cosine_opt, torch.optim.lr_scheduler.CosineAnnealingLR(cosine_opt, T_max=90, eta_min=0.01), 91
)
line({"warm-up, then cosine": lrs}, title="Learning rate per step", yaxis="learning rate").show()
assert lrs[0] == 0 and abs(lrs[10] - base_lr) < 1e-12  # exactly the base rate at the end of the warm-up
assert all(abs(a - b) < 1e-7 for a, b in zip(lrs[10:101], torch_decay))
assert all(abs(lr - 0.01) < 1e-12 for lr in lrs[100:])  # held at the floor, not climbing a second cosine

# %% [markdown]
# **Try it.** Adam's bias correction (part 2) divides $m_t$ and $v_t$ by $1 - \beta^t$. Predict the size of
# the *first* step without it, with the default betas $(0.9, 0.999)$: smaller than $\eta$, about
# $\eta$, or larger, and by what factor? Then check: the uncorrected first step is
# $\eta\,(1 - \beta_1)\,g / \sqrt{(1 - \beta_2)\,g^2}$ per coordinate, and your Adam's is about $\eta$.

# %%
theta = nn.Parameter(torch.tensor([1.0, -2.0]))
adam = Adam([theta], lr=0.01)
(theta * theta).sum().backward()
g = theta.grad.clone()
adam.step()
corrected_step = (torch.tensor([1.0, -2.0]) - theta.detach()).abs()
beta1, beta2 = 0.9, 0.999
uncorrected_step = (0.01 * (1 - beta1) * g / ((1 - beta2) * g**2).sqrt()).abs()
ratio = (uncorrected_step / corrected_step).mean().item()
print(f"without bias correction the first step is {ratio:.2f} times as large")
assert abs(ratio - (1 - beta1) / (1 - beta2) ** 0.5) < 1e-3 and 3.1 < ratio < 3.2  # 0.1 / sqrt(0.001)

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

# %%
splits = {split: digits(split) for split in ("train", "val", "test")}
print({split: len(labels) for split, (_, labels) in splits.items()})
assert sum(len(labels) for _, labels in splits.values()) == 1797
assert all(images.shape[1:] == (1, 8, 8) for images, _ in splits.values())

# %% [markdown]
# First, the grid. `expand_grid({"lr": [0.1, 0.01], "optimizer": ["sgd", "adam"]})` is the four
# configurations, in the order `itertools.product` gives (the last key varies fastest):
# `[{"lr": 0.1, "optimizer": "sgd"}, {"lr": 0.1, "optimizer": "adam"}, {"lr": 0.01, "optimizer": "sgd"}, ...]`.


# %% [exercise] expand_grid difficulty=1 importance=2 minutes=5
def expand_grid(grid: dict[str, list]) -> list[dict]:
    """Every combination of the grid's values, one dict each, the last key varying fastest."""
    raise NotImplementedError()


# %% [hint]
# `itertools.product` already enumerates combinations with the last input varying fastest; what is left
# is to name each value by its key, with a new dict for every combination.

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
    """Train the sweep's MLP on the digits with the settings of `config` (optimizer, learning rate, hidden
    size, batch size, steps, seed), built from the course helpers in the order the text gives; log the
    training loss after every step and the validation accuracy at the end, as floats; return the
    validation accuracy."""
    raise NotImplementedError()


# %% [hint]
# What makes your numbers equal the reference's is the order in which things draw random numbers
# (the model, then the batches), the optimizer that the config names, and what you log: plain Python
# numbers, not tensors that carry their autograd graph along.

# %% [hint]
# The loop body is the standard one: the loss, `optimizer.zero_grad()`, `loss.backward()`,
# `optimizer.step()`, then the log call. `.item()` turns a one-element tensor into a float. Evaluate
# under `torch.no_grad()`: the accuracy is the fraction of `argmax` predictions equal to the labels.

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
# One run per configuration, each finished before the next starts (otherwise the next `wandb.init`
# carries on in the open run). The logger `train_digits` needs is the run's own `log` method.

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
# first steps (about `lr` per coordinate, whatever the gradient) are too big: the first one more than
# doubles the loss. The best run of the sweep reaches over 90% validation accuracy after 100 steps;
# the worst stays near chance (10%; under 20% here).

# %%
by_name = {(r["config"]["optimizer"], r["config"]["lr"]): r for r in runs}
accuracy = {key: r["summary"]["val_accuracy"] for key, r in by_name.items()}
best_lr = {name: max(grid["lr"], key=lambda lr: accuracy[(name, lr)]) for name in grid["optimizer"]}
assert best_lr == {"sgd": 0.3, "adam": 0.03}  # best learning rates an order of magnitude apart
assert accuracy[("sgd", 0.003)] < 0.2  # near chance
assert min(accuracy[("adam", 0.003)], accuracy[("adam", 0.03)]) > accuracy[("adam", 0.3)]
adam_fast = by_name[("adam", 0.3)]["history"]["train_loss"]
assert adam_fast[1] > 2 * adam_fast[0]  # its first step more than doubles the loss
assert max(accuracy.values()) > 0.9 and min(accuracy.values()) < 0.2
assert accuracies == [r["summary"]["val_accuracy"] for r in runs]

# %% [markdown]
# ### Successive halving
#
# A grid spends the full budget on every configuration, including the ones that are hopeless after a
# tenth of it. **Successive halving** (Jamieson and Talwalkar, 2016; the inner loop of Hyperband)
# spends it unevenly: run every configuration with a small budget, keep the best $1/\eta$ of them, give
# those $\eta$ times the budget, and repeat until one is left. With $n$ configurations and $\eta = 2$,
# each round costs about as much as the first, and there are $\log_2 n$ rounds.
#
# Write `successive_halving(configs, evaluate, min_budget, eta)`. `evaluate(config, budget)` trains one
# configuration with that budget (steps, say) and returns its loss. The details the docstring fixes
# matter in real sweeps: a run that diverged returns NaN and must never beat a number, the number
# kept is rounded down (at least one), and a tie goes to the configuration listed first, so the
# search is deterministic.


# %% [exercise] successive_halving difficulty=3 importance=4 minutes=20
def successive_halving(
    configs: list[dict[str, Any]], evaluate: Callable[[dict[str, Any], int], float], min_budget: int, eta: int = 2
) -> tuple[int, list[tuple[int, int, float]]]:
    """Successive halving over configs: each round evaluates every surviving configuration with the round's
    budget (min_budget in the first round, eta times the previous one after) and keeps the best
    len(survivors) // eta of them (at least one; the lower loss is better, a NaN loss is worse than any
    number, and a tie goes to the configuration listed first), until one survives. Returns the survivor's
    index in configs and every evaluation made, as (index, budget, loss), round by round."""
    raise NotImplementedError()


# %% [hint]
# Track survivors by their index in `configs`, not by the dicts themselves. What does Python's `sorted`
# do with a NaN key? (Try `sorted([float("nan"), 0.5, 0.2, 0.9])`.) A sort keeps equal keys in their
# original order, which is the tie rule you need if the survivors stay in index order.

# %% [hint]
# A skeleton: `survivors = list(range(len(configs)))`; while more than one survives, evaluate each at the
# current budget and record it, rank the survivors with a key that maps NaN to `math.inf`, keep the
# first `max(1, len(survivors) // eta)`, put them back in index order, and multiply the budget by `eta`.

# %% [markdown]
# **Try it.** Search eight Adam learning rates on Rosenbrock's valley (the loss after `budget` steps from
# $(-1.5, 2.5)$) with $\eta = 2$: eight runs of 25 steps, four of 50, two of 100, 600 steps in all
# against 1,600 for a grid at 200. Predict first: is the survivor the best learning rate at 200
# steps? (Large learning rates start badly on this valley, their first steps overshooting the walls.)

# %%
LRS = [0.003, 0.01, 0.03, 0.1, 0.2, 0.3, 1.0, 3.0]


def rosenbrock_loss(config: dict[str, float], budget: int) -> float:
    return rosenbrock(*optimizer_path(rosenbrock, START, torch.optim.Adam, {"lr": config["lr"]}, budget)[-1]).item()


winner, evaluations = successive_halving([{"lr": lr} for lr in LRS], rosenbrock_loss, min_budget=25, eta=2)
steps_spent = sum(budget for _, budget, _ in evaluations)
at_200 = {lr: rosenbrock_loss({"lr": lr}, 200) for lr in (LRS[winner], 1.0)}
print(f"successive halving picks lr {LRS[winner]} after {steps_spent} steps in all; after 200 steps: {at_200}")
assert LRS[winner] == 0.1 and steps_spent == 600
assert {budget for i, budget, _ in evaluations if LRS[i] == 1.0} == {25}  # dropped in the first round
assert at_200[1.0] < 0.7 * at_200[0.1]  # lr 1.0, dropped after 25 steps, is better at the full budget

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
# process one CPU thread. (Forking also skips a start-up cost: `spawn` would import torch afresh in
# every process.)


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
# There are two roles: the source, which sends, and everyone else, who receives into the tensor they
# were given (not a copy: the caller's tensor must change). Every send needs exactly one matching
# receive, and no rank sends to itself.

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
# Rank 0 needs somewhere to receive into that is not its own tensor (it still needs its own values),
# with the same shape and dtype as what is sent. Once rank 0 holds the total, you already have the
# function that gets it to everyone.

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
# Work on views: if each piece is a view into the flattened tensor, adding into a piece or copying
# over it updates the tensor itself, and the result is in place for free. The tensor's size need not
# be a multiple of $N$: you need exactly $N$ pieces whatever the size (`Tensor.chunk` can return fewer;
# `Tensor.tensor_split` cannot).

# %% [hint]
# A worked case, $N = 3$, rank 0: reduce-scatter step 0 sends piece 0 and adds the received piece 2;
# step 1 sends piece 2 (now holding two ranks' values) and adds the received piece 1, which is then
# complete. All-gather step 0 sends piece 1 and copies the received piece 0 over its own; step 1 sends
# piece 0 and copies the received piece 2. Receive into a fresh buffer shaped like the piece, and
# write both phases as one loop over $2(N - 1)$ steps if you like, with $s$ counted from 0 again in
# the second phase.

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
# And the traffic. Counting the elements each rank hands to `dist.send` and `dist.isend` (wrapped, in
# the worker processes only) for 4 ranks and 12-element tensors: the simple version's rank 0 sends
# $N - 1 = 3$ whole tensors (36 elements) and the others one each, while in the ring every rank sends
# $2(N - 1)/N \times 12 = 18$.


# %%
def elements_sent(reduce: Callable[[Tensor], Tensor], data: Tensor) -> int:
    sent = 0

    def counted(send: Callable) -> Callable:
        def wrapper(tensor: Tensor, *args, **kwargs):
            nonlocal sent
            sent += tensor.numel()
            return send(tensor, *args, **kwargs)

        return wrapper

    dist.send, dist.isend = counted(dist.send), counted(dist.isend)  # this worker process's copy of torch only
    reduce(data[dist.get_rank()].clone())
    return sent


data = torch.randn(4, 12)
traffic = {
    name: launch_gloo(elements_sent, 4, fn, data)
    for name, fn in {"naive": all_reduce_naive, "ring": all_reduce_ring}.items()
}
print(traffic)
assert traffic == {"naive": [36, 12, 12, 12], "ring": [18, 18, 18, 18]}

# %% [markdown]
# ### A data-parallel training step
#
# Now the trainer. `ddp_train_step(model, optimizer, inputs, targets)` is called on every rank with
# the same global batch and the same (identical) model. Each rank:
#
# 1. takes its shard of the batch: every `world_size`-th example starting at its rank,
#    `inputs[rank::world_size]` (the convention of torch's `DistributedSampler`);
# 2. computes the mean cross-entropy on its shard and backpropagates;
# 3. averages the gradient of each parameter that has one over the ranks: `dist.all_reduce(p.grad)`,
#    then divide by the world size (use torch's all-reduce here: it is the one you would use in practice);
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
    targets: Int[Tensor, " batch"],
) -> float:
    """One data-parallel step on the global batch: this rank takes every world_size-th example from its
    rank on, computes the mean cross-entropy on that shard, averages gradients over ranks with
    dist.all_reduce, and steps. The batch size must be a multiple of the world size. Returns the loss on
    the whole global batch (the average over ranks)."""
    raise NotImplementedError()


# %% [hint]
# After an all-reduce every rank holds the *sum* over ranks, but the full batch's gradient is the
# *mean* of the shard gradients (with SGD, the sum would act as a learning rate $N$ times too large).
# The same goes for the loss you return. A parameter without a gradient (a frozen layer's) has nothing
# to average.

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
# ### Gradient accumulation
#
# The same identity serves a single process whose memory holds only a few examples at a time: run the
# batch in **micro-batches**, let `backward()` add each one's gradient into `.grad`, and step once at
# the end. For the step to be the whole batch's, each example's loss must enter with weight
# $1/B$ for a batch of $B$, whichever micro-batch it is in. Write `accumulated_step(model, optimizer,
# inputs, targets, micro_batch_size)`: consecutive micro-batches of `micro_batch_size` examples (the
# last may be smaller), one step, and the mean cross-entropy over the whole batch returned as a float.


# %% [exercise] accumulated_step difficulty=3 importance=4 minutes=15
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
    raise NotImplementedError()


# %% [hint]
# Backpropagation adds into `.grad` rather than overwriting it, so clear once and step once. Write the whole batch's mean loss as a sum
# over micro-batches: what weight must each micro-batch's *mean* loss carry so the sum is the batch's
# mean when the last micro-batch is smaller? (A batch of 10 in micro-batches of 4, 4 and 2.)

# %% [hint]
# The weight is (micro-batch size) / (batch size), not 1 / (number of micro-batches); equivalently,
# take each micro-batch's *summed* loss (`reduction="sum"`) and divide it by the batch size. The loss to
# return adds up the same weighted pieces, as floats (`.item()`), so no graph is kept.

# %% [markdown]
# Ten steps on batches of 64 digits, in micro-batches of 24 (so 24, 24 and 16), against the same
# steps on whole batches: the parameters agree to float rounding.

# %%
accumulated_model, whole_model = make_mlp(32, seed=0), make_mlp(32, seed=0)
accumulated_opt = torch.optim.SGD(accumulated_model.parameters(), lr=0.1, momentum=0.9)
whole_opt = torch.optim.SGD(whole_model.parameters(), lr=0.1, momentum=0.9)
for inputs, targets in batches[:10]:
    accumulated_loss = accumulated_step(accumulated_model, accumulated_opt, inputs, targets, 24)
    whole_loss = F.cross_entropy(whole_model(inputs), targets)
    whole_opt.zero_grad()
    whole_loss.backward()
    whole_opt.step()
    assert abs(accumulated_loss - whole_loss.item()) < 1e-5
assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(accumulated_model.parameters(), whole_model.parameters()))

# %% [markdown]
# **Try it.** A common slip is to call `backward()` on each micro-batch's mean loss as it is, unscaled.
# With $k$ equal micro-batches and plain SGD (no momentum), the slip reproduces one correct run exactly:
# predict which, then run the cell (here $k = 4$). The answer is why the slip often seems to work: it
# trains, with a silently different hyperparameter.

# %%
slip_model, scaled_model = make_mlp(32, seed=0), make_mlp(32, seed=0)
slip_opt = torch.optim.SGD(slip_model.parameters(), lr=0.05)
scaled_opt = torch.optim.SGD(scaled_model.parameters(), lr=0.05 * 4)
for inputs, targets in batches[:5]:
    slip_opt.zero_grad()
    for x, y in zip(inputs.chunk(4), targets.chunk(4)):
        F.cross_entropy(slip_model(x), y).backward()  # unscaled: four means add up
    slip_opt.step()
    accumulated_step(scaled_model, scaled_opt, inputs, targets, 16)  # the correct step, at 4 times the lr
assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(slip_model.parameters(), scaled_model.parameters()))

# %% [markdown]
# ## Summary
#
# - **Optimizers are a few lines each, and the details are the behaviour.** SGD's momentum buffer
#   starts at the first gradient; RMSprop adds $\epsilon$ outside the root; Adam's bias correction
#   makes its first step about $\eta$ per coordinate; AdamW decays the weights directly, scaled by the
#   learning rate. Matching `torch.optim` to float precision is the test that you got them right.
# - **Landscapes show why these rules exist**: on Rosenbrock's valley, momentum and adaptive step sizes
#   make progress where plain SGD crawls.
# - **An optimizer has state**: resuming a run needs the optimizer's checkpoint (running averages, step
#   counts, settings, matched to parameters by position), not only the weights.
# - **Clipping by global norm** caps the length of a step and keeps its direction; the norm it returns
#   is worth logging.
# - **Schedules are functions of the step**: warm up, decay along half a cosine, and hold the floor;
#   the boundaries (the end of the warm-up, the last step and after) are where they go wrong.
# - **Parameter groups** give different parameters different settings (frozen, no decay, smaller
#   learning rate) with one optimizer.
# - **Track every run.** An offline wandb run records its config and every logged metric on disk;
#   reading them back lets you compare a sweep's runs, and here showed each optimizer's own good range
#   of learning rates. **Successive halving** spends the budget on survivors, and pays for it when a
#   configuration starts slowly but ends best.
# - **Data parallelism is gradient averaging.** With broadcast and all-reduce (which you built from
#   sends and receives, including the bandwidth-optimal ring), $N$ processes each seeing $1/N$ of the
#   batch take exactly the step one process would take on all of it; gradient accumulation is the same
#   identity in one process, with each micro-batch weighted by its share of the batch.
#
# **Going further.** Add Nesterov momentum and `amsgrad` and check them against torch's flags. Write a
# tree broadcast and time it against the naive one with 4 processes. Wrap the model in
# `DistributedDataParallel` inside `launch_gloo` and confirm it matches your `ddp_train_step`. Add a
# learning-rate schedule (warmup then cosine decay) as a sweep dimension.

# %% [markdown]
# # 0.4 Backprop: an autograd engine from scratch
#
# Every training loop in this course ends in `loss.backward()`, and every attribution method in the
# interpretability chapters (gradient times input, attribution patching, integrated gradients) asks
# PyTorch for a gradient. This section opens that box. You will build a small reverse-mode automatic
# differentiation engine on top of NumPy, with the same design as PyTorch's autograd, and then train a
# neural network with it on real handwritten digits, without any help from `torch`.
#
# **What you will build**
#
# 1. *Backward functions*: for each operation, how a gradient flows from its output back to its inputs,
#    including the bookkeeping that broadcasting needs.
# 2. *The graph*: a `Tensor` that remembers how it was computed, a topological sort of that record, and
#    `backprop`, which walks it backwards applying the chain rule.
# 3. *More operations*: negation, `exp`, ReLU, reshape, permute, sum, max and matrix multiplication.
# 4. *Training*: `Parameter`, `Module`, a `Linear` layer, the cross-entropy loss and SGD with momentum, put
#    together to train an MLP classifier on the digits data.
#
# All along, your gradients are compared with `torch.autograd`: PyTorch is the answer key, never the engine.
#
# **Prerequisites.** Section 0.0 (broadcasting especially), NumPy basics and the chain rule from calculus.
# There are 18 exercises; most are a line or two once you see the maths, and the walk through the graph
# (`topological_sort`, `backprop`) is where the real thinking is. Allow about three hours.
#
# **How the exercises work.** As in the earlier sections: replace each stub's body, run it, then run the
# `check(...)` cell after it, which compares your function with the reference on hand-made and random
# inputs. Here the functions work on NumPy arrays, and results must match in shape and dtype (float64
# throughout).

# %%
import inspect
import time
from collections.abc import Iterable

import numpy as np
import torch
from jaxtyping import Float, Int
from tqdm.auto import tqdm

from course.data import digits
from course.plot import line
from solutions.chapter0_fundamentals import backprop as engine
from solutions.chapter0_fundamentals.backprop import (
    BackwardFunctions,
    Module,
    Parameter,
    Recipe,
    Tensor,
    add_back0,
    add_back1,
    no_grad,
)
from tests.checks.chapter0_fundamentals.backprop import check

Arr = np.ndarray

# %% [markdown]
# ## 1. Backward functions
#
# Reverse-mode differentiation computes the gradient of one scalar, the loss $L$, with respect to
# everything it was computed from. It never forms a Jacobian. Instead each operation gets a **backward
# function**: if $\text{out} = f(x)$, and we already know $\frac{\partial L}{\partial \text{out}}$ (call it
# `grad_out`, an array with the shape of `out`), the chain rule gives
#
# $$\frac{\partial L}{\partial x_i} = \sum_j \frac{\partial L}{\partial \text{out}_j}\,\frac{\partial \text{out}_j}{\partial x_i}.$$
#
# For an elementwise function only $j = i$ contributes, so this is just `grad_out * f'(x)`. In this
# engine a backward function has the signature
#
# ```python
# def f_back(grad_out, out, x, ...):  # the forward op's output, then its inputs
#     return grad_x                   # dL/dx, with the same shape as x
# ```
#
# It receives the forward output as well as the inputs, because some derivatives are cheapest written in
# terms of the output. Start with the logarithm, $\frac{d}{dx}\log x = \frac{1}{x}$.


# %% [exercise] log_back difficulty=1 importance=4 minutes=5
def log_back(
    grad_out: Float[Arr, "*shape"], out: Float[Arr, "*shape"], x: Float[Arr, "*shape"]
) -> Float[Arr, "*shape"]:
    """Backward function of out = log(x): dL/dx = dL/dout / x."""
    raise NotImplementedError()


# %% [hint]
# One line: `grad_out / x`. Dividing by `out` is a common slip: `out` is $\log x$, not $x$.

# %% [markdown]
# ### Broadcasting, backwards
#
# Binary operations broadcast: `x * y` with `x` of shape `(3, 4)` and `y` of shape `(4,)` behaves as if
# `y` were copied into each of the 3 rows. Each entry `y[j]` therefore influenced three outputs, and its
# gradient is the **sum** of the gradients flowing back from all three. In general, a gradient computed
# at the broadcast shape must be summed back down to the input's shape:
#
# 1. over the leading axes that broadcasting added in front (`(3, 4)` has one more axis than `(4,)`);
# 2. over each axis where the input had size 1 but the output does not, *keeping* that axis, so that a
#    `(3, 1)` input gets a `(3, 1)` gradient.
#
# `unbroadcast(grad, shape)` does this. It is the adjoint of `np.broadcast_to`.


# %% [exercise] unbroadcast difficulty=2 importance=5 minutes=10
def unbroadcast(grad: Float[Arr, "*broadcast_shape"], shape: tuple[int, ...]) -> Float[Arr, "*shape"]:
    """Sum `grad` over the axes that broadcasting added or stretched, so that it has the given shape."""
    raise NotImplementedError()


# %% [hint]
# `grad.sum(axis=tuple(range(n)))` removes the first `n` axes; `n = grad.ndim - len(shape)` (0 is fine:
# summing over no axes changes nothing).

# %% [hint]
# Then `grad.sum(axis=..., keepdims=True)` over the axes `i` with `shape[i] == 1` and `grad.shape[i] != 1`.

# %% [markdown]
# ### Multiplication: one backward function per argument
#
# An operation with two inputs needs two backward functions, one for each. For $\text{out} = x \cdot y$
# (elementwise, broadcasting), $\partial \text{out} / \partial x = y$, so `grad_out * y`, unbroadcast to
# the shape of `x`; and symmetrically for `y`. Either argument may also be a plain Python number (as in
# `x * 2.0`), which is why the hint suggests `np.shape(x)` (it works on numbers too) over `x.shape`.


# %% [exercise] multiply_back0 difficulty=1 importance=4 minutes=5
def multiply_back0(grad_out: Float[Arr, "*shape"], out: Float[Arr, "*shape"], x: Arr | float, y: Arr | float) -> Arr:
    """Backward function of out = x * y (with broadcasting), for x: dL/dx = unbroadcast(dL/dout * y)."""
    raise NotImplementedError()


# %% [hint]
# `unbroadcast(grad_out * y, np.shape(x))`.


# %% [exercise] multiply_back1 difficulty=1 importance=4 minutes=3
def multiply_back1(grad_out: Float[Arr, "*shape"], out: Float[Arr, "*shape"], x: Arr | float, y: Arr | float) -> Arr:
    """Backward function of out = x * y (with broadcasting), for y: dL/dy = unbroadcast(dL/dout * x)."""
    raise NotImplementedError()


# %% [hint]
# The mirror image of `multiply_back0`: swap the roles of `x` and `y`.

# %% [markdown]
# ### The chain rule by hand
#
# With these you can already differentiate a small expression by hand, calling the backward functions
# from the output back to the inputs: for $L = \sum \log(x \cdot y)$ with `x` of shape `(2, 3)` and `y`
# of shape `(3,)`, the gradient of $L$ with respect to its own sum is all ones, `log_back` takes it back
# through the log, and the two multiply backward functions take it to `x` and `y`. PyTorch agrees:

# %%
rng = np.random.default_rng(0)
x_arr, y_arr = rng.uniform(0.5, 2.0, (2, 3)), rng.uniform(0.5, 2.0, 3)

product = x_arr * y_arr
logs = np.log(product)
grad_logs = np.ones_like(logs)  # dL/dlogs, since L = logs.sum()
grad_product = log_back(grad_logs, logs, product)
grad_x = multiply_back0(grad_product, product, x_arr, y_arr)
grad_y = multiply_back1(grad_product, product, x_arr, y_arr)

x_t, y_t = torch.tensor(x_arr, requires_grad=True), torch.tensor(y_arr, requires_grad=True)
torch.log(x_t * y_t).sum().backward()
assert np.allclose(grad_x, x_t.grad.numpy()) and np.allclose(grad_y, y_t.grad.numpy())
print("dL/dy by hand:", grad_y, "\ndL/dy by torch:", y_t.grad.numpy())

# %% [markdown]
# Here $\partial L / \partial y_j = \sum_i 1 / y_j = 2 / y_j$: each `y[j]` was used in both rows, and
# `unbroadcast` added the two contributions.

# %%
assert np.allclose(grad_y, 2 / y_arr)

# %% [markdown]
# ### A registry of backward functions
#
# The engine needs to find, for each operation and each argument, the right backward function.
# `BackwardFunctions` (imported above) is a small dictionary from `(op name, argument index)` to function.
# We fill our own, `BACK_FUNCS`, with *your* functions as you write them; addition is provided, since its
# backward functions are just `unbroadcast(grad_out, np.shape(x))` and the same for `y`.

# %%
BACK_FUNCS = BackwardFunctions()
BACK_FUNCS.add("log", log_back)
BACK_FUNCS.add("multiply", multiply_back0, multiply_back1)
BACK_FUNCS.add("add", add_back0, add_back1)
assert BACK_FUNCS.get("multiply", 1) is multiply_back1

# %% [markdown]
# ## 2. The computational graph
#
# Doing the chain rule by hand meant remembering, for every intermediate array, which operation made it
# and from what. The engine's `Tensor` remembers this for us. It holds
#
# - `array`: the values, a float64 NumPy array;
# - `requires_grad`: whether we want gradients with respect to it (true for a model's parameters);
# - `grad`: where `backprop` leaves $\partial L / \partial \text{this tensor}$, for leaf tensors;
# - `recipe`: for a tensor computed from tensors that require grad, a `Recipe` saying how: the op's name,
#   the arrays it was applied to (`args`), and `parents`, a dict from argument index to the input tensor,
#   for those inputs that require grad. Inputs that don't require grad are not in the graph.
#
# A tensor without a recipe is a **leaf**: an input or a parameter. Every operation on tensors (`+`, `*`,
# `@`, `.log()`, `.sum()`, ...) goes through one small wrapper that runs the NumPy function and records the
# recipe when gradients are needed. Here it is, the whole "forward" half of the engine:

# %%
print(inspect.getsource(engine._op))

# %% [markdown]
# So `b = a * 3` records that `b` is a `multiply` of `a`'s array and the number 3, with `a` as the parent
# at position 0. The constant 3 is kept in `args` (the backward function needs it) but is not a parent.

# %%
a = Tensor([1.0, 2.0], requires_grad=True)
b = a * 3
c = (b + a).log()
print(b.recipe)
assert (
    isinstance(b.recipe, Recipe) and b.recipe.op == "multiply" and b.recipe.parents == {0: a} and b.recipe.args[1] == 3
)
assert c.recipe.op == "log" and c.recipe.parents[0].recipe.parents == {0: b, 1: a}
assert a.is_leaf and not c.is_leaf and Tensor([1.0]).recipe is None

# %% [markdown]
# Inside `with no_grad():` no recipes are recorded (as in PyTorch): we use it to evaluate a model without
# building a graph we would never use.

# %%
with no_grad():
    assert (a * 3).recipe is None

# %% [markdown]
# ### Topological sort
#
# To apply the chain rule to a node we need the *complete* gradient of its output, which is the sum over
# every use of the node. So a node may be processed only after every node computed from it. An order of
# the graph in which every node comes after all of its parents is a **topological order**; reversed, it
# is exactly an order in which to run backprop.
#
# Write `topological_sort(end_node)`: every tensor the end node was computed from through recipes, plus the
# end node itself, each exactly once, each after all of its parents. The usual method is a depth-first
# search that appends a node *after* visiting its parents. A node can be reached along several paths (in
# `c` above, `a` feeds both `b` and the sum), so remember which nodes you have visited, by `id(node)`.
# (Python's default recursion limit, 1000, is plenty for the graphs here.)


# %% [exercise] topological_sort difficulty=3 importance=5 minutes=20
def topological_sort(end_node: Tensor) -> list[Tensor]:
    """Every tensor the end node was computed from through recipes (and the end node itself), each once,
    every tensor after all of its parents, so the end node comes last."""
    raise NotImplementedError()


# %% [hint]
# A nested function `visit(node)`: return at once if `id(node)` is in the visited set; otherwise add it,
# visit each of `node.recipe.parents.values()` (if `node.recipe` is not None), then append `node`.

# %% [hint]
# Breadth-first search from the end node, reversed, looks right but is not: a node reached by a short
# path and by a long one can land before one of its own descendants.

# %% [markdown]
# For `c` there is only one valid order: `a`, then `b = a * 3`, then `b + a`, then `c`.

# %%
order = topological_sort(c)
assert [t.recipe.op if t.recipe else "leaf" for t in order] == ["leaf", "multiply", "add", "log"] and order[0] is a

# %% [markdown]
# ### Backprop
#
# Now the algorithm itself. Keep a dictionary from `id(node)` to the gradient of $L$ with respect to that
# node, starting with `end_grad` for the end node (all ones when it is `None`: for a scalar loss, that
# is $\partial L / \partial L = 1$). Then go through the nodes in reverse topological order. For each node:
#
# - if it is a leaf, it has no parents: if it requires grad, **add** its gradient to its `.grad` (make a
#   new `Tensor` if `.grad` is None). Adding, not overwriting, is what PyTorch does too, and why training
#   loops call `zero_grad()`;
# - otherwise, for each `(argnum, parent)` in its recipe's parents, call the backward function
#   `back_funcs.get(op, argnum)(grad_out, node.array, *recipe.args)` and **add** the result to the
#   parent's entry in the dictionary: a tensor used twice gets two contributions.
#
# `back_funcs` is which registry to use. Left as None it means `BACK_FUNCS`, your own, which the rest of
# the notebook uses; the check passes the reference registry instead, so that it tests `backprop` alone.


# %% [exercise] backprop difficulty=4 importance=5 minutes=30
def backprop(end_node: Tensor, end_grad: Tensor | None = None, back_funcs: BackwardFunctions | None = None) -> None:
    """Accumulate dL/d(leaf) into `.grad` of every leaf tensor that requires grad, where `end_grad` is
    dL/d(end_node) (ones when None). `back_funcs` is the registry of backward functions (BACK_FUNCS when None)."""
    raise NotImplementedError()


# %% [hint]
# Start with `back_funcs = back_funcs if back_funcs is not None else BACK_FUNCS` and
# `grads = {id(end_node): np.ones_like(end_node.array) if end_grad is None else end_grad.array}`.
# Then `for node in reversed(topological_sort(end_node)): grad_out = grads[id(node)]; ...`.

# %% [hint]
# Accumulate with `grads[key] = grads[key] + grad` rather than `+=`: some backward functions may return
# read-only views, and `+=` would also modify an array another node still holds.

# %% [markdown]
# Your engine can now differentiate anything made of `log`, `*` and `+`. The helper below runs the
# same function on engine tensors (backpropagated with your `backprop`) and on torch tensors (with
# `torch.autograd`), and returns the largest difference between the two sets of gradients. The function
# must use only operations both libraries spell the same way. Its output need not be a scalar: the
# gradient coming into it is all ones, as if the output were summed (there is no `sum` backward yet).


# %%
def gradient_difference(fn, *arrays: Arr) -> float:
    """Max |engine gradient - torch gradient| over every input of fn, on the given input arrays."""
    ours = [Tensor(a, requires_grad=True) for a in arrays]
    backprop(fn(*ours))
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*theirs)
    out.backward(torch.ones_like(out))
    return max(float(np.abs(o.grad.array - t.grad.numpy()).max()) for o, t in zip(ours, theirs))


x_arr, y_arr = rng.uniform(0.5, 2.0, (3, 4)), rng.uniform(0.5, 2.0, 4)
assert gradient_difference(lambda x, y: (x * y).log() * x + y * 2.0 + 1.0, x_arr, y_arr) < 1e-12
assert gradient_difference(lambda x: x * x * x, x_arr) < 1e-12  # x used three times

# %% [markdown]
# ## 3. More operations
#
# Every remaining op needs only its backward function: the forward side is already in the engine, and
# backprop does not care what the ops are. Elementwise first: negation, $\frac{d}{dx} e^x = e^x$ (which
# is the forward output: use `out`), and $\text{ReLU}(x) = \max(x, 0)$, whose derivative is 1 for $x > 0$
# and 0 for $x < 0$. At exactly $x = 0$ the derivative does not exist; like PyTorch, use 0 there.


# %% [exercise] negative_back difficulty=1 importance=3 minutes=2
def negative_back(
    grad_out: Float[Arr, "*shape"], out: Float[Arr, "*shape"], x: Float[Arr, "*shape"]
) -> Float[Arr, "*shape"]:
    """Backward function of out = -x."""
    raise NotImplementedError()


# %% [hint]
# `-grad_out`.


# %% [exercise] exp_back difficulty=1 importance=3 minutes=3
def exp_back(
    grad_out: Float[Arr, "*shape"], out: Float[Arr, "*shape"], x: Float[Arr, "*shape"]
) -> Float[Arr, "*shape"]:
    """Backward function of out = exp(x): the derivative of exp is exp, which is `out`."""
    raise NotImplementedError()


# %% [hint]
# `grad_out * out`: no need to compute `np.exp(x)` again.


# %% [exercise] relu_back difficulty=1 importance=4 minutes=3
def relu_back(
    grad_out: Float[Arr, "*shape"], out: Float[Arr, "*shape"], x: Float[Arr, "*shape"]
) -> Float[Arr, "*shape"]:
    """Backward function of out = max(x, 0): the gradient passes where x > 0 (and, as in torch, not at x = 0)."""
    raise NotImplementedError()


# %% [hint]
# `grad_out * (x > 0)`: multiplying by a boolean array keeps the float dtype.

# %% [markdown]
# ### Ops that move entries around
#
# `x.reshape(*shape)` and `x.permute(*axes)` (and `x.T`, which reverses the axes) do no arithmetic: each
# output entry *is* one input entry. So the gradient of each input entry is the gradient of the output
# entry it became, and the backward function only has to put the entries back. Their backward functions
# receive the forward op's extra argument: the new `shape`, or the permutation `axes` (where output axis
# `i` is input axis `axes[i]`, as in `np.transpose`).


# %% [exercise] reshape_back difficulty=1 importance=3 minutes=3
def reshape_back(
    grad_out: Float[Arr, "*new_shape"], out: Float[Arr, "*new_shape"], x: Float[Arr, "*shape"], shape: tuple[int, ...]
) -> Float[Arr, "*shape"]:
    """Backward function of out = x.reshape(shape)."""
    raise NotImplementedError()


# %% [hint]
# Reshape `grad_out` to the shape of the input: `grad_out.reshape(x.shape)`.


# %% [exercise] permute_back difficulty=2 importance=3 minutes=8
def permute_back(grad_out: Arr, out: Arr, x: Arr, axes: tuple[int, ...]) -> Arr:
    """Backward function of out = np.transpose(x, axes): apply the inverse permutation."""
    raise NotImplementedError()


# %% [hint]
# Output axis `i` came from input axis `axes[i]`, so input axis `j` is output axis `k` where `axes[k] == j`.
# That inverse permutation is `np.argsort(axes)`.

# %% [markdown]
# ### Reductions
#
# `x.sum(dim, keepdim)` adds entries up, so every entry gets the gradient of the sum it went into:
# `grad_out` broadcast back to `x`'s shape. Broadcasting aligns axes from the right, though, so when
# `keepdim` is False the summed axes must first be put back as size-1 axes (`np.expand_dims` takes an
# axis or a tuple of axes). Otherwise a `(3, 3)` input summed over axis 1 would get its gradient spread
# along the wrong axis, without any error. `dim=None` means every axis.
#
# `x.max(dim, keepdim)` picks the largest entry: only the entries equal to the maximum get any gradient.
# When several entries tie, we follow `torch.amax` and share the gradient equally among them, which keeps
# the total gradient the same as for a single maximum.


# %% [exercise] sum_back difficulty=2 importance=4 minutes=10
def sum_back(grad_out: Arr, out: Arr, x: Arr, dim: int | tuple[int, ...] | None, keepdim: bool) -> Arr:
    """Backward function of out = x.sum(dim, keepdim): every summed entry gets the gradient of its sum."""
    raise NotImplementedError()


# %% [hint]
# `if not keepdim and dim is not None: grad_out = np.expand_dims(grad_out, dim)`, then
# `np.broadcast_to(grad_out, x.shape).copy()`.


# %% [exercise] max_back difficulty=3 importance=3 minutes=15
def max_back(grad_out: Arr, out: Arr, x: Arr, dim: int | tuple[int, ...] | None, keepdim: bool) -> Arr:
    """Backward function of out = x.max(dim, keepdim): the gradient goes to the maximal entries, shared
    equally between ties (as torch.amax does)."""
    raise NotImplementedError()


# %% [hint]
# Restore the reduced axes of both `grad_out` and `out` as in `sum_back`; then `is_max = x == out`
# broadcasts, and `is_max.sum(axis=dim, keepdims=True)` counts the ties along the reduced axes.

# %% [markdown]
# ### Matrix multiplication
#
# For $\text{out} = xy$ with $x$ of shape $(m, k)$ and $y$ of shape $(k, n)$, entry $x_{ij}$ appears in
# every $\text{out}_{ic} = \sum_j x_{ij} y_{jc}$ of row $i$, with coefficient $y_{jc}$. So
#
# $$\frac{\partial L}{\partial x_{ij}} = \sum_c \frac{\partial L}{\partial \text{out}_{ic}}\, y_{jc}
# = \left(\frac{\partial L}{\partial \text{out}}\, y^T\right)_{ij},
# \qquad \frac{\partial L}{\partial y} = x^T \frac{\partial L}{\partial \text{out}}.$$
#
# A handy check: each formula is the only product of `grad_out` with the other factor that has the right
# shape. The engine's `@` takes 2-D tensors only.


# %% [exercise] matmul2d_back0 difficulty=2 importance=4 minutes=5
def matmul2d_back0(
    grad_out: Float[Arr, "m n"], out: Float[Arr, "m n"], x: Float[Arr, "m k"], y: Float[Arr, "k n"]
) -> Float[Arr, "m k"]:
    """Backward function of out = x @ y (2-D), for x."""
    raise NotImplementedError()


# %% [hint]
# `grad_out @ y.T`: shapes `(m, n) @ (n, k)`.


# %% [exercise] matmul2d_back1 difficulty=2 importance=4 minutes=5
def matmul2d_back1(
    grad_out: Float[Arr, "m n"], out: Float[Arr, "m n"], x: Float[Arr, "m k"], y: Float[Arr, "k n"]
) -> Float[Arr, "k n"]:
    """Backward function of out = x @ y (2-D), for y."""
    raise NotImplementedError()


# %% [hint]
# `x.T @ grad_out`: shapes `(k, m) @ (m, n)`.

# %% [markdown]
# Register them all, and check a composite expression that uses every op against `torch.autograd`. It
# is written once and run by both libraries, and the gradients agree to within float64 rounding
# ($10^{-12}$). One spelling differs: the engine's `max(dim)` returns the values only, where torch's
# returns values and indices, so the expression takes its reduction as an argument.

# %%
BACK_FUNCS.add("negative", negative_back)
BACK_FUNCS.add("exp", exp_back)
BACK_FUNCS.add("relu", relu_back)
BACK_FUNCS.add("reshape", reshape_back)
BACK_FUNCS.add("permute", permute_back)
BACK_FUNCS.add("sum", sum_back)
BACK_FUNCS.add("max", max_back)
BACK_FUNCS.add("matmul", matmul2d_back0, matmul2d_back1)


def every_op(x, w, b, row_max):
    hidden = (x @ w + b).relu()  # (4, 6)
    mixed = hidden.reshape(2, 3, 4).permute(2, 0, 1).reshape(4, 6)
    logits = (-mixed).exp() * 0.5 + hidden.T.T
    return (logits - row_max(logits)).sum(dim=0).sum() + (logits * logits).sum(dim=1, keepdim=True).log().sum()


x_arr, w_arr, b_arr = rng.normal(size=(4, 5)), rng.normal(size=(5, 6)), rng.normal(size=6)
ours = [Tensor(a, requires_grad=True) for a in (x_arr, w_arr, b_arr)]
backprop(every_op(*ours, lambda t: t.max(dim=1, keepdim=True)))
theirs = [torch.tensor(a, requires_grad=True) for a in (x_arr, w_arr, b_arr)]
every_op(*theirs, lambda t: t.amax(dim=1, keepdim=True)).backward()
difference = max(float(np.abs(o.grad.array - t.grad.numpy()).max()) for o, t in zip(ours, theirs))
print(f"largest difference from torch.autograd: {difference:.1e}")
assert difference < 1e-12

# %% [markdown]
# ## 4. Training a network
#
# The last pieces mirror `torch.nn` and `torch.optim`, in miniature. Two are provided:
#
# - `Parameter` is a `Tensor` that requires grad by default and marks itself as something to learn.
# - `Module` registers every attribute that is a `Parameter` or a `Module`, so `named_parameters()` can
#   yield `("layer1.weight", ...)` and so on through submodules, and `parameters()` the tensors alone.
#   Calling a module calls its `forward`. As with torch, a subclass must call `super().__init__()` first.
#
# ### Linear
#
# `Linear(in_features, out_features, bias=True)` computes $y = x W^T + b$ for a batch `x` of shape
# `(batch, in_features)`. Name the parameters `weight`, of shape `(out_features, in_features)`, and `bias`,
# of shape `(out_features,)`, or set `self.bias = None` when `bias` is False: the check copies the
# reference's values into your parameters by these names. Initialise both uniformly in
# $[-1/\sqrt{\text{in\_features}}, 1/\sqrt{\text{in\_features}}]$ with `np.random.uniform`, as
# `torch.nn.Linear` does; this keeps the outputs' scale roughly independent of the layer's width. Write
# `forward` with tensor operations only: computing on `.array` would give the right numbers but cut the
# layer out of the graph.


# %% [exercise] Linear difficulty=2 importance=5 minutes=15
class Linear(Module):
    """y = x @ weight.T + bias, with weight (out_features, in_features) and bias (out_features,), both
    initialised uniformly in [-1/sqrt(in_features), 1/sqrt(in_features)] (as torch.nn.Linear)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        raise NotImplementedError()

    def forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError()


# %% [hint]
# `self.weight = Parameter(np.random.uniform(-bound, bound, (out_features, in_features)))` with
# `bound = 1 / np.sqrt(in_features)`; `forward` is `x @ self.weight.T`, plus `self.bias` when there is one.

# %% [markdown]
# ### Cross-entropy
#
# For a batch of logits $z$ of shape `(batch, classes)` and true labels $y$, the loss is the mean over the
# batch of $-\log \operatorname{softmax}(z_i)_{y_i}$, with
#
# $$\log \operatorname{softmax}(z)_c = z_c - \log \sum_{c'} e^{z_{c'}}.$$
#
# Two practical points:
#
# - $e^{z}$ overflows float64 once $z > 709$. Since the formula is unchanged when a constant is subtracted
#   from every logit of a row, subtract each row's maximum first. Take it from `logits.array`: a constant,
#   with no gradient (it would be exactly 0 anyway).
# - The engine has no indexing op. To pick the true classes, multiply by a one-hot array,
#   `np.eye(classes)[true_labels]`, and sum.
#
# Return a 0-d `Tensor`: the mean loss over the batch.


# %% [exercise] cross_entropy difficulty=2 importance=5 minutes=15
def cross_entropy(logits: Tensor, true_labels: Int[Arr, "batch"]) -> Tensor:
    """The mean over the batch of -log softmax(logits)[true label], as a 0-d Tensor. logits: (batch, classes)."""
    raise NotImplementedError()


# %% [hint]
# `shifted = logits - logits.array.max(axis=-1, keepdims=True)`, then
# `log_probs = shifted - shifted.exp().sum(dim=-1, keepdim=True).log()`.

# %% [hint]
# `-(log_probs * one_hot).sum() / batch`: the engine divides a tensor by a number.

# %% [markdown]
# ### SGD with momentum and weight decay
#
# `SGD(params, lr, momentum=0.0, weight_decay=0.0)` follows `torch.optim.SGD` (with its default
# `dampening=0`). For each parameter $p$ with gradient $g$, one `step()` does
#
# $$g \leftarrow g + \lambda p, \qquad b \leftarrow \mu b + g \;\;(b = g \text{ at the first step}),
# \qquad p \leftarrow p - \eta\, b,$$
#
# with weight decay $\lambda$, momentum $\mu$ and learning rate $\eta$; without momentum, $p \leftarrow p -
# \eta g$. Skip parameters whose `.grad` is None. Two details matter:
#
# - Update each parameter's array **in place** (`p.array -= ...`): the model holds these very `Parameter`
#   objects, so rebinding a name to a new tensor would change nothing in the model.
# - `params` is usually `model.parameters()`, a generator, which can be read only once: store it as a list.
#
# `zero_grad()` sets every parameter's `.grad` back to None, so the next backprop starts afresh.


# %% [exercise] SGD difficulty=2 importance=5 minutes=15
class SGD:
    """Stochastic gradient descent with momentum and weight decay, following torch.optim.SGD:
    g = grad + weight_decay * p;  b = momentum * b + g (b = g at the first step);  p -= lr * b."""

    def __init__(self, params: Iterable[Parameter], lr: float, momentum: float = 0.0, weight_decay: float = 0.0):
        raise NotImplementedError()

    def zero_grad(self) -> None:
        raise NotImplementedError()

    def step(self) -> None:
        raise NotImplementedError()


# %% [hint]
# Keep `self.params = list(params)` and one momentum buffer per parameter, `self.buffers = [None] * len(self.params)`.

# %% [hint]
# In `step`: `g = p.grad.array + self.weight_decay * p.array`; if `self.momentum`, set
# `self.buffers[i] = g if self.buffers[i] is None else self.momentum * self.buffers[i] + g` and use it as `g`;
# then `p.array -= self.lr * g`.

# %% [markdown]
# ### An MLP on handwritten digits
#
# The data is scikit-learn's bundled copy of the UCI handwritten digits: 1,797 grayscale scans of 8x8
# pixels, values scaled to [0, 1], in a fixed split of 1,437 training, 180 validation and 180 test
# images (`course.data.digits`). Flattened, each image is a vector of 64 numbers. The model has one hidden
# layer of 64 ReLU units.


# %%
def as_arrays(split: str) -> tuple[Float[Arr, "n 64"], Int[Arr, "n"]]:
    images, labels = digits(split)
    return images.flatten(1).double().numpy(), labels.numpy()


train_x, train_y = as_arrays("train")
val_x, val_y = as_arrays("val")
test_x, test_y = as_arrays("test")
assert train_x.shape == (1437, 64) and len(val_x) == len(test_x) == 180


class MLP(Module):
    def __init__(self, inputs: int = 64, hidden: int = 64, classes: int = 10):
        super().__init__()
        self.layer1 = Linear(inputs, hidden)
        self.layer2 = Linear(hidden, classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.layer2(self.layer1(x).relu())


np.random.seed(0)
model = MLP()
assert [name for name, _ in model.named_parameters()] == [
    "layer1.weight",
    "layer1.bias",
    "layer2.weight",
    "layer2.bias",
]

# %% [markdown]
# Before training, one last comparison with PyTorch: the same network (`torch.nn.Sequential` given our
# weights), the same batch, the same loss. Your `Linear`, `relu`, `cross_entropy` and `backprop` give the
# same gradients as `torch.autograd`, to within $10^{-12}$.

# %%
torch_model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10)).double()
with torch.no_grad():
    for (_, ours_p), theirs_p in zip(model.named_parameters(), torch_model.parameters()):
        theirs_p.copy_(torch.from_numpy(ours_p.array))

batch_x, batch_y = train_x[:32], train_y[:32]
loss = cross_entropy(model(Tensor(batch_x)), batch_y)
backprop(loss)
torch_loss = torch.nn.functional.cross_entropy(torch_model(torch.from_numpy(batch_x)), torch.from_numpy(batch_y))
torch_loss.backward()
assert abs(loss.item() - torch_loss.item()) < 1e-12
for ours_p, theirs_p in zip(model.parameters(), torch_model.parameters()):
    assert np.abs(ours_p.grad.array - theirs_p.grad.numpy()).max() < 1e-12
print(f"initial loss {loss.item():.3f} (log 10 = {np.log(10):.3f}: an untrained model guesses about evenly)")

# %% [markdown]
# Now train: 15 epochs of minibatches of 64 shuffled images, SGD with learning rate 0.1 and momentum 0.9.
# (`model.parameters()` is fine to pass even though `backprop` above left gradients behind: the loop
# calls `zero_grad()` before each backprop.)


# %%
def accuracy(model: Module, x: Float[Arr, "n 64"], y: Int[Arr, "n"]) -> float:
    with no_grad():
        return float((model(Tensor(x)).array.argmax(axis=-1) == y).mean())


optimizer = SGD(model.parameters(), lr=0.1, momentum=0.9)
shuffle = np.random.default_rng(0)
losses, val_accuracies = [], []
start = time.perf_counter()
for epoch in tqdm(range(15), desc="epochs"):
    order = shuffle.permutation(len(train_x))
    for i in range(0, len(train_x), 64):
        batch = order[i : i + 64]
        loss = cross_entropy(model(Tensor(train_x[batch])), train_y[batch])
        optimizer.zero_grad()
        backprop(loss)
        optimizer.step()
        losses.append(loss.item())
    val_accuracies.append(accuracy(model, val_x, val_y))
seconds = time.perf_counter() - start

line(
    {"training loss": losses},
    title="Training loss of the MLP, trained with your engine",
    xaxis="step",
    yaxis="cross-entropy",
).show()
line({"validation accuracy": val_accuracies}, title="Validation accuracy after each epoch", xaxis="epoch").show()

# %% [markdown]
# Training takes a few seconds on a laptop CPU (the time is printed below). The loss falls from about $\log 10 \approx 2.3$ to
# below 0.1 (averaged over the last epoch), and the network classifies more than 95% of the 180 held-out
# test digits correctly. Chance would be 10%.

# %%
test_accuracy = accuracy(model, test_x, test_y)
print(f"{seconds:.1f} s; final epoch's mean loss {np.mean(losses[-23:]):.3f}; test accuracy {test_accuracy:.3f}")
assert losses[0] > 2.0 and np.mean(losses[-23:]) < 0.1
assert test_accuracy > 0.95

# %% [markdown]
# ## Summary
#
# - **Reverse mode is local.** Each op only needs a backward function mapping the gradient of its output
#   to the gradient of each input; `backprop` strings them together with the chain rule. That is why
#   PyTorch can differentiate any composition of its ops, and why a custom op only needs a `backward`.
# - **Broadcasting costs a sum.** An input that was broadcast gets the sum of the gradients of all its
#   copies; forgetting it gives shape errors at best and silently wrong gradients at worst.
# - **Order matters.** A node's gradient is complete only once every use of it has contributed, which is
#   what the reverse topological order guarantees. Gradients accumulate, in the graph and in `.grad`,
#   hence `zero_grad()`.
# - **The rest is bookkeeping.** `Parameter`, `Module` and the optimizer are small; they only decide which
#   tensors to differentiate and how to step them.
#
# **Going further.** Add an indexing op (its backward function uses `np.add.at`, so that repeated indices
# accumulate) and write cross-entropy with it; add division and powers; support `@` on batched 3-D
# tensors; or check the engine on random graphs against finite differences instead of PyTorch. PyTorch's
# own design is described in Paszke et al., *Automatic differentiation in PyTorch* (2017).

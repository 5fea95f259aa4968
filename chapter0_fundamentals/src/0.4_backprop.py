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
# 2. *The graph*: the op wrapper that makes every operation on a `Tensor` record how its output was
#    computed, a `no_grad` switch for that recording, a topological sort of the record, and `backprop`,
#    which walks it backwards applying the chain rule.
# 3. *More operations*: negation, `exp`, ReLU, reshape, permute, sum, max and matrix multiplication.
# 4. *Training*: parameter discovery in `Module`, a `Linear` layer, the cross-entropy loss, SGD with
#    momentum and Adam, put together to train an MLP classifier on the digits data.
#
# What is given lives in `course/autograd.py`, none of it an answer: the `Tensor` class itself (an array, a
# `requires_grad` flag, a `.grad` slot and a `recipe`, with operators that call whatever op wrapper you
# install), `Recipe`, the registry `BackwardFunctions`, `Parameter` and the on/off switch for recording.
# Each part ends with a short **try it**: predict what a change will do, then run the cell that shows it.
#
# All along, your gradients are compared with `torch.autograd`: PyTorch is the answer key, never the engine.
#
# **Prerequisites.** Section 0.0 (broadcasting especially), NumPy basics and the chain rule from calculus.
# There are 22 exercises. The backward functions are mostly a line or two once you see the maths; the op
# wrapper, the walk through the graph (`topological_sort`, `backprop`), parameter discovery, a numerically
# stable cross-entropy and Adam are where the real thinking is. The exercises' time estimates add up to 139
# minutes, plus a few minutes for each try-it.
#
# **How the exercises work.** As in the earlier sections: replace each stub's body, run it, then run the
# `check(...)` cell after it, which compares your function with the reference on hand-made and random
# inputs. Here the functions work on NumPy arrays, and results must match in shape and dtype (float64
# throughout).

# %%
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import torch
from jaxtyping import Float, Int
from tqdm.auto import tqdm

from course.autograd import (
    BackwardFunctions,
    Parameter,
    Recipe,
    Tensor,
    is_grad_enabled,
    set_grad_enabled,  # noqa: F401 (for your no_grad)
    use_op_wrapper,
)
from course.data import digits
from course.plot import line
from tests.checks.chapter0_fundamentals.backprop import check  # noqa: F401 (the build adds the check cells)

Arr = np.ndarray

# %% [markdown]
# ## 1. Backward functions
#
# Reverse-mode differentiation computes the gradient of one scalar, the loss $L$, with respect to
# everything it was computed from. It never forms a Jacobian. Instead each operation gets a **backward
# function**: if $\text{out} = f(x)$, and we already know $\frac{\partial L}{\partial \text{out}}$ (call it
# `grad_out`, an array with the shape of `out`), the chain rule gives
#
# $$\frac{\partial L}{\partial x_i} = \sum_j \frac{\partial L}{\partial \text{out}_j}\,
# \frac{\partial \text{out}_j}{\partial x_i}.$$
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


# %% [exercise] log_back difficulty=1 importance=4 minutes=2
def log_back(
    grad_out: Float[Arr, "*shape"], out: Float[Arr, "*shape"], x: Float[Arr, "*shape"]
) -> Float[Arr, "*shape"]:
    """Backward function of out = log(x): returns dL/dx, an array shaped like x."""
    raise NotImplementedError()


# %% [hint]
# Log is elementwise, so only the local derivative at each entry matters: what is $\frac{d}{dx}\log x$, and
# how does the chain rule combine it with the gradient arriving from the output? Of the three arrays you
# are given, which one holds $x$?

# %% [hint]
# The result is `grad_out` scaled entry by entry by $1/x$. Careful with the arguments: `out` holds $\log x$,
# not $x$.

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


# %% [exercise] unbroadcast difficulty=3 importance=5 minutes=8
def unbroadcast(grad: Float[Arr, "*broadcast_shape"], shape: tuple[int, ...]) -> Float[Arr, "*shape"]:
    """The gradient of an input of the given shape that broadcasting stretched to grad's shape: `grad` summed
    down to `shape`."""
    raise NotImplementedError()


# %% [hint]
# Broadcasting stretched two kinds of axes, and each needs a sum: leading axes that `grad` has and `shape`
# lacks, and axes where `shape` has size 1 but `grad` does not. Shapes align from the right, so deal with
# the leading axes first; after that both shapes have the same number of axes and can be compared axis by
# axis. Which of the two kinds must survive as an axis of size 1?

# %% [hint]
# A worked case: `grad` of shape `(4, 3, 5)` and `shape = (3, 1)`. Sum axis 0 away, giving `(3, 5)`; then
# sum axis 1 *keeping* it, giving `(3, 1)`. `ndarray.sum` takes a tuple of axes (an empty tuple sums
# nothing) and `keepdims`.

# %% [markdown]
# ### Multiplication: one backward function per argument
#
# An operation with two inputs needs two backward functions, one for each. For $\text{out} = x \cdot y$
# (elementwise, broadcasting), $\partial \text{out} / \partial x = y$, so `grad_out * y`, unbroadcast to
# the shape of `x`; and symmetrically for `y`. Either argument may also be a plain Python number (as in
# `x * 2.0`): then only the other one is in the graph, and the number simply scales its gradient.


# %% [exercise] multiply_back0 difficulty=1 importance=4 minutes=3
def multiply_back0(grad_out: Float[Arr, "*shape"], out: Float[Arr, "*shape"], x: Arr | float, y: Arr | float) -> Arr:
    """Backward function of out = x * y (with broadcasting), for x: returns dL/dx, an array shaped like x."""
    raise NotImplementedError()


# %% [hint]
# Two steps. First the elementwise chain rule: by how much does one entry of `out` change when the matching
# entry of x changes? Then undo whatever broadcasting did to x, which is what `unbroadcast` is for.

# %% [hint]
# The local derivative of $x \cdot y$ with respect to $x$ is $y$. Multiply `grad_out` by it (at the broadcast
# shape), then bring the product down to x's shape.


# %% [exercise] multiply_back1 difficulty=1 importance=4 minutes=2
def multiply_back1(grad_out: Float[Arr, "*shape"], out: Float[Arr, "*shape"], x: Arr | float, y: Arr | float) -> Arr:
    """Backward function of out = x * y (with broadcasting), for y: returns dL/dy, an array shaped like y."""
    raise NotImplementedError()


# %% [hint]
# The same reasoning as for x with the two factors' roles exchanged; the result must have y's shape. Here x
# may be a plain Python number, which multiplies an array as it is.

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
# We fill our own, `BACK_FUNCS`, with *your* functions as you write them. Addition is written here for you:
# each input gets the gradient unchanged, unbroadcast with your `unbroadcast`.


# %%
def add_back0(grad_out: Arr, out: Arr, x: Arr | float, y: Arr | float) -> Arr:
    return unbroadcast(grad_out, np.shape(x))


def add_back1(grad_out: Arr, out: Arr, x: Arr | float, y: Arr | float) -> Arr:
    return unbroadcast(grad_out, np.shape(y))


BACK_FUNCS = BackwardFunctions()
BACK_FUNCS.add("log", log_back)
BACK_FUNCS.add("multiply", multiply_back0, multiply_back1)
BACK_FUNCS.add("add", add_back0, add_back1)
assert BACK_FUNCS.get("multiply", 1) is multiply_back1

# %% [markdown]
# ### Try it: what a gradient predicts
#
# A gradient is a prediction: nudge one input by a small $h$ and $L$ should move by about $h$ times that
# input's gradient. Before running the next cell, use `grad_y` from the chain rule by hand above to predict
# how much $L = \sum \log(x \cdot y)$ changes when `y[0]` grows by $10^{-6}$. Then try a nudge of 0.5:
# is the prediction still good, and is the true change larger or smaller than predicted? (Think about the
# shape of the logarithm.)


# %%
def loss_of(x: Arr, y: Arr) -> float:
    return float(np.log(x * y).sum())


for h in (1e-6, 0.5):
    nudged = y_arr.copy()
    nudged[0] += h
    change, predicted = loss_of(x_arr, nudged) - loss_of(x_arr, y_arr), h * grad_y[0]
    print(f"nudge {h:g}: L changes by {change:.6g}; the gradient predicts {predicted:.6g}")
    if h == 1e-6:
        assert abs(change - predicted) < 1e-9  # first order is all that is left of a tiny nudge
    else:
        assert change < predicted  # log is concave: the straight line overshoots

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
# A tensor without a recipe is a **leaf**: an input or a parameter.
#
# ### The op wrapper
#
# Every operation on tensors (`+`, `*`, `@`, `.log()`, `.sum()`, ...) is a NumPy function on arrays (the
# table `course.autograd.FORWARD` holds them: `np.multiply`, `np.log`, a `np.sum` taking `dim` and
# `keepdim`, ...) turned into an op on Tensors by one wrapper, `make_op(name, forward)`: the whole forward
# half of the engine, and yours to write. The op it returns takes the op's arguments (Tensors, and plain
# numbers or extra arguments such as `dim`), runs `forward` on arrays, and returns a new `Tensor`. When
# the output needs a gradient it also records a `Recipe`:
#
# - the output needs one when at least one argument is a Tensor that requires grad, *and* recording is
#   switched on (`is_grad_enabled()`, from `course.autograd`; `no_grad` below switches it off). Then the
#   output requires grad too, so that ops applied to it record in turn;
# - `args` holds what `forward` was applied to: each Tensor argument's own array (no copy), the other
#   arguments as given. The backward functions will receive exactly these;
# - `parents` maps the *position* of each argument that is a Tensor requiring grad to that very Tensor.
#   The position is what picks the backward function: in `2.0 * a`, `a` is argument 1 of `multiply`.
#
# Otherwise the output has no recipe and does not require grad: a constant, as far as autograd is
# concerned. After the exercise, `use_op_wrapper(make_op)` builds every Tensor operator with your wrapper.


# %% [exercise] make_op difficulty=3 importance=5 minutes=15
def make_op(name: str, forward: Callable[..., Arr]) -> Callable[..., Tensor]:
    """An op on Tensors named `name`: it returns forward applied to its arguments (each Tensor replaced by its
    array) as a new Tensor, which requires grad and holds a Recipe when recording is enabled and some argument
    is a Tensor that requires grad; otherwise it has no recipe and does not require grad."""
    raise NotImplementedError()


# %% [hint]
# You are writing a function that returns a function. The inner one receives any number of arguments and
# does three things: run `forward` on arrays, wrap the result, decide whether to record. For the last,
# list the three conditions that must all hold, and think about `2.0 * a`: at which position is `a`?

# %% [hint]
# A skeleton, in words: inside `make_op`, define `op(*args)`; build a tuple with each Tensor argument
# replaced by its `.array` (others kept); wrap `forward` of that tuple in a new `Tensor`; collect a dict
# from the index in `args` to the argument, for the arguments that are Tensors with `requires_grad`; if
# the dict is not empty and `is_grad_enabled()`, set the output's `requires_grad` and its `recipe`;
# return the output. `make_op` returns `op`.

# %% [markdown]
# Install it, and look at what it records. `b = a * 3` is a `multiply` of `a`'s array and the number 3,
# with `a` as the parent at position 0. The constant 3 is kept in `args` (the backward function needs it)
# but is not a parent.

# %%
use_op_wrapper(make_op)
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
# ### Switching recording off
#
# Evaluating a model needs no graph, and recording one costs memory for every intermediate array. PyTorch
# has `with torch.no_grad():` for that; write ours. `no_grad` is a context manager: a class whose
# `__enter__` runs when the `with` block starts and whose `__exit__(exc_type, exc, traceback)` runs when
# it ends, normally or by an exception. Switch recording with `set_grad_enabled` and read it with
# `is_grad_enabled`. Blocks may be nested, and a block may start while recording is already off: on
# leaving, put recording back as it was *before this block*, not simply on. An exception raised inside
# the block must still reach the code around it (an `__exit__` that returns a true value swallows it).


# %% [exercise] no_grad difficulty=2 importance=3 minutes=8
class no_grad:
    """Context manager: inside the block ops record no recipes (as torch.no_grad); on leaving it, by the end of
    the block or by an exception, recording is as it was before the block."""

    def __enter__(self) -> None:
        raise NotImplementedError()

    def __exit__(self, *exc: Any) -> None:
        raise NotImplementedError()


# %% [hint]
# What must `__exit__` know that only `__enter__` can find out? Where can one block keep it so that an
# inner block, entered and left in between, cannot overwrite it?

# %% [hint]
# Save the state on the instance (`self`), at `__enter__`, not in `__init__` (the object may be made long
# before the block starts) and not on the class (shared by every block). `__exit__` restores it and
# returns nothing.

# %%
with no_grad():
    assert (a * 3).recipe is None
    with no_grad():
        pass
    assert not is_grad_enabled()  # the inner block left recording off, as it found it
assert is_grad_enabled() and (a * 3).recipe is not None

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


# %% [exercise] topological_sort difficulty=3 importance=5 minutes=10
def topological_sort(end_node: Tensor) -> list[Tensor]:
    """Every tensor the end node was computed from through recipes (and the end node itself), each once,
    every tensor after all of its parents, so the end node comes last."""
    raise NotImplementedError()


# %% [hint]
# Think recursively: a node may join the list only once everything it was computed from is already in it.
# And since a node can be reached along several paths, you need a way to tell that it is already placed.

# %% [hint]
# A skeleton: a list for the order and a set of ids seen so far; an inner function `visit(node)` that
# returns at once for a node already seen, and otherwise marks it, visits each of its parents (a leaf has no
# recipe, hence no parents), and only *then* appends the node. Call it on the end node.

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


# %% [exercise] backprop difficulty=4 importance=5 minutes=15
def backprop(end_node: Tensor, end_grad: Tensor | None = None, back_funcs: BackwardFunctions | None = None) -> None:
    """Accumulate dL/d(leaf) into `.grad` of every leaf tensor that requires grad, where `end_grad` is
    dL/d(end_node) (ones when None). `back_funcs` is the registry of backward functions (BACK_FUNCS when None)."""
    raise NotImplementedError()


# %% [hint]
# Three questions. In what order must nodes be processed so that each one's gradient is complete before it
# is passed on? Where do you keep the gradients of nodes that are not processed yet (tensors are not
# comparable by value, but `id` tells them apart)? And what happens to a contribution when the entry it
# goes to already holds one, in the dictionary or in a leaf's `.grad`?

# %% [hint]
# A skeleton, in words: pick the registry; start the dictionary with the end node's gradient (an array);
# for each node in reverse topological order, take its gradient; if the node is a leaf, add it to the
# node's `.grad` when the node requires grad; otherwise, for each parent in the recipe, look up the backward
# function for that op and argument index, call it with the gradient, the node's array and the recipe's
# args, and add the result to the parent's entry.

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

# Two backward passes without zeroing in between: both engines add the second gradient to the first.
ours, theirs = Tensor([1.0], requires_grad=True), torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
for _ in range(2):
    backprop(ours * 3.0)
    (theirs * 3.0).sum().backward()
assert ours.grad.array.item() == theirs.grad.item() == 6.0

# %% [markdown]
# ### Try it: backprop through a graph that was never recorded
#
# Compute something inside `no_grad` and call `backprop` on it anyway. Before running the cell, predict:
# does backprop raise an error, give `a` the usual gradient, or leave `a.grad` as it was? Then predict
# what `backprop` does with the same product computed outside the block.

# %%
a = Tensor([1.0, 2.0, 3.0], requires_grad=True)
with no_grad():
    unrecorded = a * a  # not summed: part 3 registers sum's backward function
backprop(unrecorded)
print("inside no_grad:", a.grad, "| the product is a leaf:", unrecorded.is_leaf)
assert a.grad is None and unrecorded.is_leaf and not unrecorded.requires_grad

backprop(a * a)
assert np.allclose(a.grad.array, 2 * a.array)  # recorded, the same product gives d(a^2)/da = 2a

# %% [markdown]
# ## 3. More operations
#
# Every remaining op needs only its backward function: the forward side is already in the engine, and
# backprop does not care what the ops are. Elementwise first: negation, $\frac{d}{dx} e^x = e^x$ (which
# is the forward output: use `out`), and $\text{ReLU}(x) = \max(x, 0)$, whose derivative is 1 for $x > 0$
# and 0 for $x < 0$. At exactly $x = 0$ the derivative does not exist; like PyTorch, use 0 there.


# %% [exercise] negative_back difficulty=1 importance=3 minutes=1
def negative_back(
    grad_out: Float[Arr, "*shape"], out: Float[Arr, "*shape"], x: Float[Arr, "*shape"]
) -> Float[Arr, "*shape"]:
    """Backward function of out = -x: returns dL/dx, an array shaped like x."""
    raise NotImplementedError()


# %% [hint]
# What is the derivative of $-x$? The chain rule multiplies it into the gradient that arrives.


# %% [exercise] exp_back difficulty=1 importance=3 minutes=1
def exp_back(
    grad_out: Float[Arr, "*shape"], out: Float[Arr, "*shape"], x: Float[Arr, "*shape"]
) -> Float[Arr, "*shape"]:
    """Backward function of out = exp(x): returns dL/dx, an array shaped like x."""
    raise NotImplementedError()


# %% [hint]
# The derivative of $e^x$ is $e^x$. One of the arrays you are given already holds it: no need to compute it
# again.


# %% [exercise] relu_back difficulty=1 importance=4 minutes=2
def relu_back(
    grad_out: Float[Arr, "*shape"], out: Float[Arr, "*shape"], x: Float[Arr, "*shape"]
) -> Float[Arr, "*shape"]:
    """Backward function of out = max(x, 0): returns dL/dx, an array shaped like x, taking the derivative at
    x = 0 to be 0 (as torch does)."""
    raise NotImplementedError()


# %% [hint]
# The local derivative is 1 where $x$ is positive and 0 everywhere else, exactly 0 included: which comparison
# draws that line? A boolean array multiplies like 0s and 1s and leaves the float dtype as it is.

# %% [markdown]
# ### Ops that move entries around
#
# `x.reshape(*shape)` and `x.permute(*axes)` (and `x.T`, which reverses the axes) do no arithmetic: each
# output entry *is* one input entry. So the gradient of each input entry is the gradient of the output
# entry it became, and the backward function only has to put the entries back. Their backward functions
# receive the forward op's extra argument: the new `shape`, or the permutation `axes` (where output axis
# `i` is input axis `axes[i]`, as in `np.transpose`).


# %% [exercise] reshape_back difficulty=1 importance=3 minutes=2
def reshape_back(
    grad_out: Float[Arr, "*new_shape"], out: Float[Arr, "*new_shape"], x: Float[Arr, "*shape"], shape: tuple[int, ...]
) -> Float[Arr, "*shape"]:
    """Backward function of out = x.reshape(shape): returns dL/dx, an array shaped like x."""
    raise NotImplementedError()


# %% [hint]
# Reshaping keeps the entries in the same (row-major) order, so `grad_out` already holds the right numbers
# in the right order: what is missing is the input's shape. Which argument tells you that shape? (Not
# `shape`: that is the output's.)


# %% [exercise] permute_back difficulty=2 importance=3 minutes=4
def permute_back(grad_out: Arr, out: Arr, x: Arr, axes: tuple[int, ...]) -> Arr:
    """Backward function of out = np.transpose(x, axes): returns dL/dx, an array shaped like x."""
    raise NotImplementedError()


# %% [hint]
# The gradient has to be permuted back, by the *inverse* permutation. Output axis `i` came from input axis
# `axes[i]`; so for each input axis `j`, which output axis holds it? Try `axes = (2, 0, 1)` by hand:
# applying it twice does not give back the original order, while a swap of two axes undoes itself.

# %% [hint]
# The inverse lists, for each `j` in turn, the position at which `j` appears in `axes`. A NumPy function that
# sorts and returns positions computes exactly that.

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

# %%
row_sum_grads = np.array([1.0, 2.0, 3.0])  # dL/d(row sum) for a (3, 3) input summed over axis 1
spread = np.broadcast_to(row_sum_grads, (3, 3))  # no error, but row 0 gets (1, 2, 3) instead of (1, 1, 1)
assert spread.shape == (3, 3) and spread[0].tolist() == [1.0, 2.0, 3.0]

tied = torch.tensor([[2.0, 1.0, 2.0]], requires_grad=True)
tied.amax(dim=1).sum().backward()
assert tied.grad.tolist() == [[0.5, 0.0, 0.5]]  # torch.amax shares the gradient between the tied entries


# %% [exercise] sum_back difficulty=2 importance=4 minutes=5
def sum_back(grad_out: Arr, out: Arr, x: Arr, dim: int | tuple[int, ...] | None, keepdim: bool) -> Arr:
    """Backward function of out = x.sum(dim, keepdim): returns dL/dx, an array shaped like x."""
    raise NotImplementedError()


# %% [hint]
# Each entry of x went into exactly one sum, with coefficient 1, so it gets that sum's gradient: `grad_out`
# spread back over x's shape. Broadcasting could do the spreading, but it aligns axes from the right, so
# the summed axes must be back in place first. When are they missing, and when is there nothing to do
# (think about `keepdim` and `dim=None`)?

# %% [hint]
# `np.expand_dims` takes an axis or a tuple of axes and puts them back with size 1 (don't loop over a tuple:
# the axes' positions refer to the final array). `np.broadcast_to` then stretches to `x.shape`; it returns a
# read-only view, so return a copy.


# %% [exercise] max_back difficulty=3 importance=3 minutes=8
def max_back(grad_out: Arr, out: Arr, x: Arr, dim: int | tuple[int, ...] | None, keepdim: bool) -> Arr:
    """Backward function of out = x.max(dim, keepdim): returns dL/dx, an array shaped like x. Entries that tie
    for a maximum share its gradient equally (as with torch.amax)."""
    raise NotImplementedError()


# %% [hint]
# Which entries of x equal the maximum they went into? To compare x with `out` entry by entry, `out` (and
# `grad_out`) need their reduced axes back, as in `sum_back`. Then, for each maximum, how many entries
# tie for it? Count along the reduced axes only, and split that maximum's gradient between them.

# %% [hint]
# With the axes restored, a boolean array marks the maximal entries; summing it over `dim` with
# `keepdims=True` gives the number of ties per maximum, in a shape that broadcasts against x. Ties mean
# exact equality: 1 and 1 + 1e-9 are not a tie.

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


# %% [exercise] matmul2d_back0 difficulty=2 importance=4 minutes=4
def matmul2d_back0(
    grad_out: Float[Arr, "m n"], out: Float[Arr, "m n"], x: Float[Arr, "m k"], y: Float[Arr, "k n"]
) -> Float[Arr, "m k"]:
    """Backward function of out = x @ y (2-D), for x: returns dL/dx, an array shaped like x, (m, k)."""
    raise NotImplementedError()


# %% [hint]
# Start from one entry: which entries of `out` does $x_{ij}$ appear in, and with what coefficients? Then
# match shapes: the answer has x's shape $(m, k)$, made from `grad_out`, $(m, n)$, and y, $(k, n)$. Which
# axis has to be summed away?

# %% [hint]
# The sum over $c$ of $\frac{\partial L}{\partial \text{out}_{ic}}\, y_{jc}$ contracts the $n$ axis of both
# arrays. For a matrix product, the contracted axis must be last in the left factor and first in the right.


# %% [exercise] matmul2d_back1 difficulty=2 importance=4 minutes=2
def matmul2d_back1(
    grad_out: Float[Arr, "m n"], out: Float[Arr, "m n"], x: Float[Arr, "m k"], y: Float[Arr, "k n"]
) -> Float[Arr, "k n"]:
    """Backward function of out = x @ y (2-D), for y: returns dL/dy, an array shaped like y, (k, n)."""
    raise NotImplementedError()


# %% [hint]
# As for x: which entries of `out` does $y_{jc}$ appear in, and with what coefficients? The answer has y's
# shape $(k, n)$, made from x, $(m, k)$, and `grad_out`, $(m, n)$: which axis do they share, to be summed?

# %% [hint]
# The shared axis is $m$, the first axis of both. Put it last in the left factor and first in the right.

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
# ### Try it: a layer that stopped learning
#
# Below, a layer's bias is set to -100, far below anything `x @ w` reaches here, so every input to the
# ReLU is negative. Before running it, predict the gradient that `w` and the bias get from the sum of the
# layer's outputs, and what a gradient-descent step would then do to them. (This is a "dead" ReLU unit,
# a real failure of networks trained with too large a learning rate.)

# %%
x = Tensor(rng.normal(size=(8, 3)))
w = Tensor(rng.normal(size=(3, 4)), requires_grad=True)
dead_bias = Tensor(np.full(4, -100.0), requires_grad=True)
backprop((x @ w + dead_bias).relu().sum())
print("largest |gradient| of w:", np.abs(w.grad.array).max(), "| of the bias:", np.abs(dead_bias.grad.array).max())
assert np.all(w.grad.array == 0) and np.all(dead_bias.grad.array == 0)  # no step can revive the unit

# %% [markdown]
# ## 4. Training a network
#
# The last pieces mirror `torch.nn` and `torch.optim`, in miniature. `Parameter` (from `course.autograd`)
# is a `Tensor` that requires grad by default: it marks something to learn.
#
# *If you skipped part 2 or 3*, set the flag in the next cell to True and run it: it continues with the
# reference engine (op wrapper, `no_grad`, backward functions and backprop) so that you can do this part. Leave it
# False otherwise: it would replace your engine.

# %%
# Fallback: the reference engine, only for learners who skipped part 2 or 3.
SKIPPED_PARTS_2_OR_3 = False
if SKIPPED_PARTS_2_OR_3:
    from solutions.chapter0_fundamentals.backprop import BACK_FUNCS, backprop, make_op, no_grad, topological_sort

    use_op_wrapper(make_op)

# %% [markdown]
# ### Module: finding the parameters
#
# A model is a tree: an `MLP` holds two `Linear` layers in its attributes, each holding `Parameter`s,
# and a transformer nests deeper. The optimizer needs every `Parameter` in the tree, each exactly once,
# and checkpoints and messages need their names. Write `Module.named_parameters(prefix)`, as in torch:
# it yields `(name, parameter)` pairs, where the name is the path of attribute names joined by dots
# (`"layer1.weight"`), after `prefix`. It looks at the module's attributes (`vars(module)` lists them
# in the order they were first set) and, recursively, at every attribute that is itself a `Module`:
#
# - a module's own Parameters come first, then each submodule's, in attribute order (torch's order);
# - only `Parameter`s count: a plain `Tensor` (a constant mask, say), `None` (a layer without a bias) or a
#   number is not something to learn;
# - a Parameter reachable along two paths is listed once, under the first name. Language models *tie*
#   the input embedding and the output unembedding this way; listed twice, it would be stepped twice.
#
# `parameters()` gives the same Parameters without names. Calling a module calls its `forward`, which
# each subclass defines.


# %% [exercise] Module difficulty=3 importance=4 minutes=12
class Module:
    """A minimal torch.nn.Module: named_parameters() finds the Parameters that its attributes hold, directly or
    inside submodules; calling a module calls its forward."""

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """("scale", p), ("layer1.weight", q), ...: every Parameter this module holds, each once (under its first
        name), named by its path of attributes after `prefix`: the module's own Parameters first, in the order
        their attributes were set, then each submodule's, in the same order."""
        raise NotImplementedError()

    def parameters(self) -> Iterator[Parameter]:
        """The Parameters of named_parameters(), without their names."""
        raise NotImplementedError()

    def __call__(self, *xs: Any) -> Any:
        return self.forward(*xs)


# %% [hint]
# Think of the walk as a recursive function over (module, prefix so far). What does a submodule's prefix
# look like three levels down? And the "each once" rule spans the whole tree, not one module: where must
# the record of what you have already listed live so that every level of the recursion sees it?

# %% [hint]
# A skeleton: in `named_parameters`, make an empty set of ids, then define a generator `walk(module,
# prefix)` that makes two passes over `vars(module).items()`: the first yields `(prefix + name, value)`
# for each Parameter not yet seen (adding its id), the second does `yield from walk(value, prefix + name +
# ".")` for each Module. Finish with `yield from walk(self, prefix)`. `parameters` is a generator
# expression over `named_parameters()`.

# %% [markdown]
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


# %% [exercise] Linear difficulty=2 importance=5 minutes=6
class Linear(Module):
    """A fully connected layer, as torch.nn.Linear: Parameters `weight` (out_features, in_features) and `bias`
    (out_features,), or bias None, both initialised uniformly in [-1/sqrt(in_features), 1/sqrt(in_features)];
    forward maps a (batch, in_features) Tensor to a (batch, out_features) one."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        raise NotImplementedError()

    def forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError()


# %% [hint]
# Two jobs. In `__init__`, make attributes that `Module` will register: `Parameter`s with the names and
# shapes the prose gives. In `forward`, use only Tensor operations so that `backprop` can reach them. The
# weight is stored as (out, in): which side of the product does it go on, and does it need transposing to
# turn a (batch, in) input into a (batch, out) output?

# %% [hint]
# `np.random.uniform(low, high, size)` draws the initial values, for the weight and the bias alike. In
# `forward`, `.T` on a Tensor is a recorded op, and adding a (out_features,) bias broadcasts over the batch.

# %% [markdown]
# The scale claimed above: on inputs of unit variance, the outputs' standard deviation is about
# $\sqrt{1/3 + 1/(3\,\text{in\_features})}$ (each weight has variance $1/(3\,\text{in\_features})$, and
# there are in_features of them per output), close to 0.58 at any width.

# %%
np.random.seed(0)
for width in (16, 1024):
    outputs = Linear(width, 256)(Tensor(rng.normal(size=(64, width)))).array
    print(f"in_features = {width:4d}: standard deviation of the outputs {outputs.std():.3f}")
    assert abs(outputs.std() - np.sqrt(1 / 3 + 1 / (3 * width))) < 0.03

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

# %%
with np.errstate(over="ignore"):
    assert np.isfinite(np.exp(709.0)) and np.isinf(np.exp(710.0))


# %% [exercise] cross_entropy difficulty=3 importance=5 minutes=10
def cross_entropy(logits: Tensor, true_labels: Int[Arr, " batch"]) -> Tensor:
    """The cross-entropy loss of logits (batch, classes) against the true class indices (batch,), averaged over
    the batch: a 0-d Tensor that backprop can differentiate with respect to the logits."""
    raise NotImplementedError()


# %% [hint]
# Build log-softmax out of ops the engine records (subtract, exp, a sum over the classes, log), in the
# order that keeps every intermediate finite: after the shift, the largest exponent in each row is 0.
# The shift is a constant: which of `logits` and `logits.array` should it come from? Then pick out each
# row's true class without indexing, and average over the batch.

# %% [hint]
# In order: the shifted logits (a Tensor); per row, the log of the sum of their exps, with `keepdim=True`
# so it broadcasts back; the log-probabilities, their difference; a one-hot `(batch, classes)` array from
# `np.eye`, indexed by the labels; then multiply, sum, negate and divide by the batch size (the engine
# divides a Tensor by a number).

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


# %% [exercise] SGD difficulty=2 importance=5 minutes=7
class SGD:
    """Stochastic gradient descent with momentum and weight decay, as torch.optim.SGD (no dampening, no
    Nesterov): step() updates the array of each parameter that has a gradient in place; zero_grad() sets
    every parameter's .grad to None."""

    def __init__(self, params: Iterable[Parameter], lr: float, momentum: float = 0.0, weight_decay: float = 0.0):
        raise NotImplementedError()

    def zero_grad(self) -> None:
        raise NotImplementedError()

    def step(self) -> None:
        raise NotImplementedError()


# %% [hint]
# What must survive from one `step` to the next? The parameters, kept in a form you can loop over again
# and again, and one momentum buffer per parameter that is empty until that parameter's first step. Then
# follow the three update equations in the order they are written, changing each array in place.

# %% [hint]
# A skeleton of `step`, in words: for each parameter (with its index, to find its buffer), skip it if it
# has no gradient; otherwise form the decayed gradient; with momentum, update the buffer (the decayed
# gradient itself at the first step) and step along the buffer instead; subtract the learning rate times
# the step from the parameter's array, in place.

# %% [markdown]
# ### Adam
#
# SGD's step is proportional to the gradient, so one learning rate must suit parameters whose gradients
# differ by orders of magnitude. Adam (Kingma and Ba, 2015) divides each entry's step by a running
# estimate of that entry's gradient scale. `Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
# weight_decay=0.0)` follows `torch.optim.Adam`. For each parameter $p$ with gradient $g$, at that
# parameter's $t$-th step ($t = 1$ at its first):
#
# $$g \leftarrow g + \lambda p, \qquad m \leftarrow \beta_1 m + (1 - \beta_1)\, g, \qquad
# v \leftarrow \beta_2 v + (1 - \beta_2)\, g^2,$$
# $$\hat m = \frac{m}{1 - \beta_1^t}, \qquad \hat v = \frac{v}{1 - \beta_2^t}, \qquad
# p \leftarrow p - \eta\, \frac{\hat m}{\sqrt{\hat v} + \epsilon},$$
#
# with $m$ and $v$ starting at zero. Both are averages that start at 0, so in the first steps they are
# pulled towards 0; dividing by $1 - \beta^t$ undoes that exactly. As for SGD: update arrays in place,
# store the parameters as a list, and leave alone a parameter whose `.grad` is None, its $m$, $v$ and
# $t$ included. So each parameter counts its own steps: one that gets its first gradient late (a layer
# unfrozen during training) starts at $t = 1$ then.


# %% [exercise] Adam difficulty=3 importance=4 minutes=12
class Adam:
    """Adam, as torch.optim.Adam (weight decay added to the gradient, no amsgrad): step() updates in place the
    array of each parameter that has a gradient, using bias-corrected estimates of the gradient's first and
    second moments, each parameter with its own count of steps; zero_grad() sets every parameter's .grad to
    None."""

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        raise NotImplementedError()

    def zero_grad(self) -> None:
        raise NotImplementedError()

    def step(self) -> None:
        raise NotImplementedError()


# %% [hint]
# List the state that one parameter carries from step to step (there are three pieces), and what each
# must be before that parameter's first step. A quick test of your bias correction: at the very first
# step, what do $\hat m$ and $\hat v$ equal, and so how far does each entry move?

# %% [hint]
# At $t = 1$, $\hat m = g$ and $\hat v = g^2$, so each entry moves by $\eta$ (up to $\epsilon$) against the
# sign of its gradient, whatever the gradient's size. In `__init__`, keep three lists indexed like the
# parameters: zero arrays for $m$ and $v$ and a step count of 0. In `step`, skip a parameter without a
# gradient; otherwise add one to its count *before* correcting, then follow the equations in order.

# %% [markdown]
# ### An MLP on handwritten digits
#
# The data is scikit-learn's bundled copy of the UCI handwritten digits: 1,797 grayscale scans of 8x8
# pixels, values scaled to [0, 1], in a fixed split of 1,437 training, 180 validation and 180 test
# images (`course.data.digits`). Flattened, each image is a vector of 64 numbers. The model has one hidden
# layer of 64 ReLU units.


# %%
def as_arrays(split: str) -> tuple[Float[Arr, "n 64"], Int[Arr, " n"]]:
    images, labels = digits(split)
    return images.flatten(1).double().numpy(), labels.numpy()


train_x, train_y = as_arrays("train")
val_x, val_y = as_arrays("val")
test_x, test_y = as_arrays("test")
assert train_x.shape == (1437, 64) and len(val_x) == len(test_x) == 180
assert train_x.min() >= 0.0 and train_x.max() <= 1.0


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
assert abs(loss.item() - np.log(10)) < 0.2
assert len(topological_sort(loss)) < 100  # a few dozen tensors: far below Python's recursion limit

# %% [markdown]
# Now train: 15 epochs of minibatches of 64 shuffled images, SGD with learning rate 0.1 and momentum 0.9.
# (`model.parameters()` is fine to pass even though `backprop` above left gradients behind: the loop
# calls `zero_grad()` before each backprop.)


# %%
def accuracy(model: Module, x: Float[Arr, "n 64"], y: Int[Arr, " n"]) -> float:
    with no_grad():
        return float((model(Tensor(x)).array.argmax(axis=-1) == y).mean())


def train(model: Module, optimizer: SGD, epochs: int = 15) -> tuple[list[float], list[float]]:
    """Minibatch training on the digits; returns each step's loss and each epoch's validation accuracy."""
    shuffle = np.random.default_rng(0)  # the same batches for every model trained here
    losses, val_accuracies = [], []
    for _ in tqdm(range(epochs), desc="epochs"):
        order = shuffle.permutation(len(train_x))
        for i in range(0, len(train_x), 64):
            batch = order[i : i + 64]
            loss = cross_entropy(model(Tensor(train_x[batch])), train_y[batch])
            optimizer.zero_grad()
            backprop(loss)
            optimizer.step()
            losses.append(loss.item())
        val_accuracies.append(accuracy(model, val_x, val_y))
    return losses, val_accuracies


start = time.perf_counter()
losses, val_accuracies = train(model, SGD(model.parameters(), lr=0.1, momentum=0.9))
seconds = time.perf_counter() - start

line(
    {"training loss": losses},
    title="Training loss of the MLP, trained with your engine",
    xaxis="step",
    yaxis="cross-entropy",
).show()
line({"validation accuracy": val_accuracies}, title="Validation accuracy after each epoch", xaxis="epoch").show()

# %% [markdown]
# Your training time is printed below. The loss falls from about $\log 10 \approx 2.3$ to below 0.1
# (averaged over the last epoch), and the network classifies more than 95% of the 180 held-out test digits
# correctly. Chance would be 10%.

# %%
test_accuracy = accuracy(model, test_x, test_y)
print(f"{seconds:.1f} s; final epoch's mean loss {np.mean(losses[-23:]):.3f}; test accuracy {test_accuracy:.3f}")
assert abs(losses[0] - np.log(10)) < 0.2 and np.mean(losses[-23:]) < 0.1
assert test_accuracy > 0.95

# %% [markdown]
# ### Try it: training without momentum
#
# Train the same network again, from the same initial weights and on the same batches, with momentum 0
# instead of 0.9 (the learning rate stays 0.1). Before running the cell, predict: will the last epoch's
# mean loss be higher or lower than with momentum, and by roughly what factor? (With momentum $\mu$, a
# gradient that keeps pointing the same way moves the weights by up to $1/(1-\mu)$ times the plain step.)

# %%
np.random.seed(0)
plain_model = MLP()  # the same initial weights as `model` had
plain_losses, _ = train(plain_model, SGD(plain_model.parameters(), lr=0.1))
with_momentum, without = np.mean(losses[-23:]), np.mean(plain_losses[-23:])
print(f"last epoch's mean loss: {with_momentum:.3f} with momentum 0.9, {without:.3f} without")
assert without > 2 * with_momentum

# %% [markdown]
# Now Adam, with learning rate 0.01 and no momentum term of SGD's kind. Predict before running: compared
# with SGD with momentum, is its loss over the *first* epoch lower or higher? (At its first steps, how far
# does Adam move each weight, whatever the gradient's size?)

# %%
np.random.seed(0)
adam_model = MLP()
adam_losses, _ = train(adam_model, Adam(adam_model.parameters(), lr=0.01))
print(
    f"first epoch's mean loss: {np.mean(adam_losses[:23]):.3f} with Adam, {np.mean(losses[:23]):.3f} with SGD and "
    f"momentum; last epoch's: {np.mean(adam_losses[-23:]):.3f} and {with_momentum:.3f}"
)
assert np.mean(adam_losses[:23]) < np.mean(losses[:23]) - 0.2 and np.mean(adam_losses[-23:]) < 0.1

# %% [markdown]
# ## Summary
#
# - **Reverse mode is local.** Each op only needs a backward function mapping the gradient of its output
#   to the gradient of each input; `backprop` strings them together with the chain rule. That is why
#   PyTorch can differentiate any composition of its ops, and why a custom op only needs a `backward`.
# - **Broadcasting costs a sum.** An input that was broadcast gets the sum of the gradients of all its
#   copies; forgetting it gives shape errors at best and silently wrong gradients at worst.
# - **Recording is the forward half.** One wrapper runs each op and, only when some input requires grad
#   and recording is on, keeps its inputs' arrays and its parents: that record is all backprop needs, and
#   `no_grad` is how evaluation avoids paying for it.
# - **Order matters.** A node's gradient is complete only once every use of it has contributed, which is
#   what the reverse topological order guarantees. Gradients accumulate, in the graph and in `.grad`,
#   hence `zero_grad()`.
# - **The rest is bookkeeping, with sharp edges.** `Module` and the optimizers only decide which tensors to
#   differentiate and how to step them, but the details decide what is learned: a tied Parameter listed
#   twice is stepped twice, and Adam's state is kept, and its steps counted, per parameter.
#
# **Going further.** Add an indexing op (its backward function uses `np.add.at`, so that repeated indices
# accumulate) and write cross-entropy with it; add division and powers; support `@` on batched 3-D
# tensors; or check the engine on random graphs against finite differences instead of PyTorch. PyTorch's
# own design is described in Paszke et al., *Automatic differentiation in PyTorch* (2017).

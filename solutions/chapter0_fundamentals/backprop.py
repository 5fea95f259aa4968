"""Reference solutions for 0.4 Backprop: a small reverse-mode autograd engine on NumPy arrays.

What the engine builds on and is not an exercise (``Tensor``, ``Recipe``, ``BackwardFunctions``,
``Parameter``, the grad-recording switch) lives in ``course.autograd``. The answers, in the order the
section asks for them:

- Backward functions. For a forward op ``out = f(x, y, ...)``, the backward function for argument i is
  ``back(grad_out, out, x, y, ...) -> grad_i``: given dL/d(out), it returns dL/d(argument i), with the
  argument's shape. Backward functions work on plain NumPy arrays.
- ``make_op``, the wrapper that turns a NumPy function into an op on Tensors recording a ``Recipe``, and
  ``no_grad``, which switches recording off for a block.
- ``topological_sort`` and ``backprop``: walk the graph from the output back to the leaves, calling the
  registered backward functions, and accumulate gradients into the leaves' ``.grad``.
- ``Module`` (parameter discovery), ``Linear``, ``cross_entropy``, ``SGD`` and ``Adam``: enough to train an MLP.

All arrays are float64. Importing this module has no side effects beyond defining things (and filling
the module's own registry, ``BACK_FUNCS``, with the reference backward functions); it does not install
``make_op`` as the Tensor operators' wrapper (``course.autograd.use_op_wrapper`` does that).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
from jaxtyping import Float, Int

from course.autograd import Arr, BackwardFunctions, Parameter, Recipe, Tensor, is_grad_enabled, set_grad_enabled

# ----------------------------------------------------------------------------- backward functions (part 1)


def log_back(
    grad_out: Float[Arr, "*shape"], out: Float[Arr, "*shape"], x: Float[Arr, "*shape"]
) -> Float[Arr, "*shape"]:
    """Backward function of out = log(x): returns dL/dx, an array shaped like x."""
    return grad_out / x


def unbroadcast(grad: Float[Arr, "*broadcast_shape"], shape: tuple[int, ...]) -> Float[Arr, "*shape"]:
    """The gradient of an input of the given shape that broadcasting stretched to grad's shape: `grad` summed
    down to `shape`."""
    # Axes broadcasting added in front: sum them away.
    extra = grad.ndim - len(shape)
    grad = grad.sum(axis=tuple(range(extra)))
    # Axes of size 1 that broadcasting stretched: sum them, keeping the axis.
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.sum(axis=stretched, keepdims=True)


def multiply_back0(grad_out: Float[Arr, "*shape"], out: Float[Arr, "*shape"], x: Arr | float, y: Arr | float) -> Arr:
    """Backward function of out = x * y (with broadcasting), for x: returns dL/dx, an array shaped like x."""
    return unbroadcast(grad_out * y, np.shape(x))


def multiply_back1(grad_out: Float[Arr, "*shape"], out: Float[Arr, "*shape"], x: Arr | float, y: Arr | float) -> Arr:
    """Backward function of out = x * y (with broadcasting), for y: returns dL/dy, an array shaped like y."""
    return unbroadcast(grad_out * x, np.shape(y))


def _add_back0(grad_out: Float[Arr, "*shape"], out: Float[Arr, "*shape"], x: Arr | float, y: Arr | float) -> Arr:
    """Backward function of out = x + y (with broadcasting), for x: the gradient passes through, unbroadcast."""
    return unbroadcast(grad_out, np.shape(x))


def _add_back1(grad_out: Float[Arr, "*shape"], out: Float[Arr, "*shape"], x: Arr | float, y: Arr | float) -> Arr:
    """Backward function of out = x + y (with broadcasting), for y."""
    return unbroadcast(grad_out, np.shape(y))


# ----------------------------------------------------------------------------- recording the graph (part 2)


def make_op(name: str, forward: Callable[..., Arr]) -> Callable[..., Tensor]:
    """An op on Tensors named `name`: it returns forward applied to its arguments (each Tensor replaced by its
    array) as a new Tensor, which requires grad and holds a Recipe when recording is enabled and some argument
    is a Tensor that requires grad; otherwise it has no recipe and does not require grad."""

    def op(*args: Any) -> Tensor:
        arrays = tuple(a.array if isinstance(a, Tensor) else a for a in args)
        out = Tensor(forward(*arrays))
        # Keyed by the argument's position, which is what picks its backward function.
        parents = {i: a for i, a in enumerate(args) if isinstance(a, Tensor) and a.requires_grad}
        if parents and is_grad_enabled():
            out.requires_grad = True
            out.recipe = Recipe(name, arrays, parents)
        return out

    op.__name__ = name
    return op


class no_grad:
    """Context manager: inside the block ops record no recipes (as torch.no_grad); on leaving it, by the end of
    the block or by an exception, recording is as it was before the block."""

    def __enter__(self) -> None:
        self._was_enabled = is_grad_enabled()  # per instance: nested blocks each restore their own
        set_grad_enabled(False)

    def __exit__(self, *exc: Any) -> None:
        set_grad_enabled(self._was_enabled)  # returns None, so an exception propagates


# ----------------------------------------------------------------------------- walking the graph (part 2)


def topological_sort(end_node: Tensor) -> list[Tensor]:
    """Every tensor the end node was computed from through recipes (and the end node itself), each once,
    every tensor after all of its parents, so the end node comes last."""
    order: list[Tensor] = []
    visited: set[int] = set()

    def visit(node: Tensor) -> None:
        if id(node) in visited:
            return
        visited.add(id(node))
        if node.recipe is not None:
            for parent in node.recipe.parents.values():
                visit(parent)
        order.append(node)  # after all its parents

    visit(end_node)
    return order


def backprop(end_node: Tensor, end_grad: Tensor | None = None, back_funcs: BackwardFunctions | None = None) -> None:
    """Accumulate dL/d(leaf) into `.grad` of every leaf tensor that requires grad, where `end_grad` is
    dL/d(end_node) (ones when None). `back_funcs` is the registry of backward functions (BACK_FUNCS when None)."""
    back_funcs = back_funcs if back_funcs is not None else BACK_FUNCS
    grads = {id(end_node): np.ones_like(end_node.array) if end_grad is None else end_grad.array}
    for node in reversed(topological_sort(end_node)):  # every node before its parents
        grad_out = grads.pop(id(node))
        if node.is_leaf:
            if node.requires_grad:
                node.grad = Tensor(grad_out) if node.grad is None else Tensor(node.grad.array + grad_out)
            continue
        for argnum, parent in node.recipe.parents.items():
            back_fn = back_funcs.get(node.recipe.op, argnum)
            grad = back_fn(grad_out, node.array, *node.recipe.args)
            # A tensor used by several ops gets the sum of their contributions (not +=: grad may be a view).
            grads[id(parent)] = grads[id(parent)] + grad if id(parent) in grads else grad


# ----------------------------------------------------------------------------- more backward functions (part 3)


def negative_back(
    grad_out: Float[Arr, "*shape"], out: Float[Arr, "*shape"], x: Float[Arr, "*shape"]
) -> Float[Arr, "*shape"]:
    """Backward function of out = -x: returns dL/dx, an array shaped like x."""
    return -grad_out


def exp_back(
    grad_out: Float[Arr, "*shape"], out: Float[Arr, "*shape"], x: Float[Arr, "*shape"]
) -> Float[Arr, "*shape"]:
    """Backward function of out = exp(x): returns dL/dx, an array shaped like x."""
    return grad_out * out


def relu_back(
    grad_out: Float[Arr, "*shape"], out: Float[Arr, "*shape"], x: Float[Arr, "*shape"]
) -> Float[Arr, "*shape"]:
    """Backward function of out = max(x, 0): returns dL/dx, an array shaped like x, taking the derivative at
    x = 0 to be 0 (as torch does)."""
    return grad_out * (x > 0)


def reshape_back(
    grad_out: Float[Arr, "*new_shape"], out: Float[Arr, "*new_shape"], x: Float[Arr, "*shape"], shape: tuple[int, ...]
) -> Float[Arr, "*shape"]:
    """Backward function of out = x.reshape(shape): returns dL/dx, an array shaped like x."""
    return grad_out.reshape(x.shape)


def permute_back(grad_out: Arr, out: Arr, x: Arr, axes: tuple[int, ...]) -> Arr:
    """Backward function of out = np.transpose(x, axes): returns dL/dx, an array shaped like x."""
    return np.transpose(grad_out, np.argsort(axes))


def sum_back(grad_out: Arr, out: Arr, x: Arr, dim: int | tuple[int, ...] | None, keepdim: bool) -> Arr:
    """Backward function of out = x.sum(dim, keepdim): returns dL/dx, an array shaped like x."""
    if not keepdim and dim is not None:
        grad_out = np.expand_dims(grad_out, dim)  # put the summed axes back, with size 1
    return np.broadcast_to(grad_out, x.shape).copy()


def max_back(grad_out: Arr, out: Arr, x: Arr, dim: int | tuple[int, ...] | None, keepdim: bool) -> Arr:
    """Backward function of out = x.max(dim, keepdim): returns dL/dx, an array shaped like x. Entries that tie
    for a maximum share its gradient equally (as with torch.amax)."""
    if not keepdim and dim is not None:
        grad_out, out = np.expand_dims(grad_out, dim), np.expand_dims(out, dim)
    is_max = x == out
    return grad_out * is_max / is_max.sum(axis=dim, keepdims=True)


def matmul2d_back0(
    grad_out: Float[Arr, "m n"], out: Float[Arr, "m n"], x: Float[Arr, "m k"], y: Float[Arr, "k n"]
) -> Float[Arr, "m k"]:
    """Backward function of out = x @ y (2-D), for x: returns dL/dx, an array shaped like x, (m, k)."""
    return grad_out @ y.T


def matmul2d_back1(
    grad_out: Float[Arr, "m n"], out: Float[Arr, "m n"], x: Float[Arr, "m k"], y: Float[Arr, "k n"]
) -> Float[Arr, "k n"]:
    """Backward function of out = x @ y (2-D), for y: returns dL/dy, an array shaped like y, (k, n)."""
    return x.T @ grad_out


BACK_FUNCS = BackwardFunctions()
BACK_FUNCS.add("log", log_back)
BACK_FUNCS.add("multiply", multiply_back0, multiply_back1)
BACK_FUNCS.add("add", _add_back0, _add_back1)
BACK_FUNCS.add("negative", negative_back)
BACK_FUNCS.add("exp", exp_back)
BACK_FUNCS.add("relu", relu_back)
BACK_FUNCS.add("reshape", reshape_back)
BACK_FUNCS.add("permute", permute_back)
BACK_FUNCS.add("sum", sum_back)
BACK_FUNCS.add("max", max_back)
BACK_FUNCS.add("matmul", matmul2d_back0, matmul2d_back1)


# ----------------------------------------------------------------------------- training (part 4)


class Module:
    """A minimal torch.nn.Module: named_parameters() finds the Parameters that its attributes hold, directly or
    inside submodules; calling a module calls its forward."""

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """("scale", p), ("layer1.weight", q), ...: every Parameter this module holds, each once (under its first
        name), named by its path of attributes after `prefix`: the module's own Parameters first, in the order
        their attributes were set, then each submodule's, in the same order."""
        seen: set[int] = set()

        def walk(module: Module, prefix: str) -> Iterator[tuple[str, Parameter]]:
            attributes = list(vars(module).items())
            for name, value in attributes:
                if isinstance(value, Parameter) and id(value) not in seen:
                    seen.add(id(value))
                    yield prefix + name, value
            for name, value in attributes:
                if isinstance(value, Module):
                    yield from walk(value, prefix + name + ".")

        yield from walk(self, prefix)

    def parameters(self) -> Iterator[Parameter]:
        """The Parameters of named_parameters(), without their names."""
        return (parameter for _, parameter in self.named_parameters())

    def __call__(self, *xs: Any) -> Any:
        return self.forward(*xs)


class Linear(Module):
    """A fully connected layer, as torch.nn.Linear: Parameters `weight` (out_features, in_features) and `bias`
    (out_features,), or bias None, both initialised uniformly in [-1/sqrt(in_features), 1/sqrt(in_features)];
    forward maps a (batch, in_features) Tensor to a (batch, out_features) one."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        bound = 1 / np.sqrt(in_features)
        self.weight = Parameter(np.random.uniform(-bound, bound, (out_features, in_features)))
        self.bias = Parameter(np.random.uniform(-bound, bound, out_features)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        out = x @ self.weight.T
        return out + self.bias if self.bias is not None else out


def cross_entropy(logits: Tensor, true_labels: Int[Arr, " batch"]) -> Tensor:
    """The cross-entropy loss of logits (batch, classes) against the true class indices (batch,), averaged over
    the batch: a 0-d Tensor that backprop can differentiate with respect to the logits."""
    batch, classes = logits.shape
    # Subtracting each row's maximum (a constant: no gradient needed) keeps exp from overflowing.
    shifted = logits - logits.array.max(axis=-1, keepdims=True)
    log_probs = shifted - shifted.exp().sum(dim=-1, keepdim=True).log()
    one_hot = np.eye(classes)[true_labels]
    return -(log_probs * one_hot).sum() / batch


class SGD:
    """Stochastic gradient descent with momentum and weight decay, as torch.optim.SGD (no dampening, no
    Nesterov): step() updates the array of each parameter that has a gradient in place; zero_grad() sets
    every parameter's .grad to None."""

    def __init__(self, params: Iterable[Parameter], lr: float, momentum: float = 0.0, weight_decay: float = 0.0):
        self.params = list(params)  # a generator would be used up after one pass
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay
        self.buffers: list[Arr | None] = [None for _ in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = p.grad.array + self.weight_decay * p.array
            if self.momentum:
                self.buffers[i] = g if self.buffers[i] is None else self.momentum * self.buffers[i] + g
                g = self.buffers[i]
            p.array -= self.lr * g  # in place: the model holds these very arrays


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
        self.params = list(params)
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        self.m = [np.zeros_like(p.array) for p in self.params]
        self.v = [np.zeros_like(p.array) for p in self.params]
        self.steps = [0 for _ in self.params]  # per parameter: one that skips steps has fewer

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        beta1, beta2 = self.betas
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = p.grad.array + self.weight_decay * p.array
            self.steps[i] += 1
            self.m[i] = beta1 * self.m[i] + (1 - beta1) * g
            self.v[i] = beta2 * self.v[i] + (1 - beta2) * g**2
            # Both averages start at 0; dividing by 1 - beta^t undoes that pull towards 0 in the first steps.
            m_hat = self.m[i] / (1 - beta1 ** self.steps[i])
            v_hat = self.v[i] / (1 - beta2 ** self.steps[i])
            p.array -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)

"""Reference solutions for 0.4 Backprop: a small reverse-mode autograd engine on NumPy arrays.

The engine, in the order the section builds it:

- Backward functions. For a forward op ``out = f(x, y, ...)``, the backward function for argument i is
  ``back(grad_out, out, x, y, ...) -> grad_i``: given dL/d(out), it returns dL/d(argument i), with the
  argument's shape. Backward functions work on plain NumPy arrays.
- ``BackwardFunctions``: a registry from (op name, argument index) to backward function.
- ``Tensor``: a NumPy array, a ``requires_grad`` flag, a ``.grad`` slot and, for a tensor computed
  from tensors that require grad, a ``Recipe``: the op, the arrays it was applied to, and which of its
  arguments were tensors in the graph (its parents).
- ``topological_sort`` and ``backprop``: walk the graph from the output back to the leaves, calling the
  registered backward functions, and accumulate gradients into the leaves' ``.grad``.
- ``Parameter``, ``Module``, ``Linear``, ``cross_entropy`` and ``SGD``: enough to train an MLP.

All arrays are float64. Importing this module has no side effects beyond defining things (and filling
the module's own registry, ``BACK_FUNCS``, with the reference backward functions).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from jaxtyping import Float, Int

Arr = np.ndarray


# ----------------------------------------------------------------------------- backward functions (part 1)


def log_back(
    grad_out: Float[Arr, "*shape"], out: Float[Arr, "*shape"], x: Float[Arr, "*shape"]
) -> Float[Arr, "*shape"]:
    """Backward function of out = log(x): dL/dx = dL/dout / x."""
    return grad_out / x


def unbroadcast(grad: Float[Arr, "*broadcast_shape"], shape: tuple[int, ...]) -> Float[Arr, "*shape"]:
    """Sum `grad` over the axes that broadcasting added or stretched, so that it has the given shape."""
    # Axes broadcasting added in front: sum them away.
    extra = grad.ndim - len(shape)
    grad = grad.sum(axis=tuple(range(extra)))
    # Axes of size 1 that broadcasting stretched: sum them, keeping the axis.
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.sum(axis=stretched, keepdims=True)


def multiply_back0(grad_out: Float[Arr, "*shape"], out: Float[Arr, "*shape"], x: Arr | float, y: Arr | float) -> Arr:
    """Backward function of out = x * y (with broadcasting), for x: dL/dx = unbroadcast(dL/dout * y)."""
    return unbroadcast(grad_out * y, np.shape(x))


def multiply_back1(grad_out: Float[Arr, "*shape"], out: Float[Arr, "*shape"], x: Arr | float, y: Arr | float) -> Arr:
    """Backward function of out = x * y (with broadcasting), for y: dL/dy = unbroadcast(dL/dout * x)."""
    return unbroadcast(grad_out * x, np.shape(y))


def add_back0(grad_out: Float[Arr, "*shape"], out: Float[Arr, "*shape"], x: Arr | float, y: Arr | float) -> Arr:
    """Backward function of out = x + y (with broadcasting), for x: the gradient passes through, unbroadcast."""
    return unbroadcast(grad_out, np.shape(x))


def add_back1(grad_out: Float[Arr, "*shape"], out: Float[Arr, "*shape"], x: Arr | float, y: Arr | float) -> Arr:
    """Backward function of out = x + y (with broadcasting), for y."""
    return unbroadcast(grad_out, np.shape(y))


# ----------------------------------------------------------------------------- the registry and the Tensor


class BackwardFunctions:
    """Which backward function gives the gradient of each argument of each op, keyed by (op name, index)."""

    def __init__(self) -> None:
        self._functions: dict[tuple[str, int], Callable] = {}

    def add(self, op: str, *back_fns: Callable) -> None:
        """Register back_fns[i] as the backward function of argument i of `op`."""
        for argnum, back_fn in enumerate(back_fns):
            self._functions[(op, argnum)] = back_fn

    def get(self, op: str, argnum: int) -> Callable:
        if (op, argnum) not in self._functions:
            raise KeyError(f"no backward function registered for argument {argnum} of {op!r}")
        return self._functions[(op, argnum)]

    def __contains__(self, key: tuple[str, int]) -> bool:
        return key in self._functions


_GRAD_TRACKING = [True]  # a list so that no_grad can switch it without a `global` statement


class no_grad:
    """Context manager: inside it, ops record no recipes (as torch.no_grad), e.g. for evaluation."""

    def __enter__(self) -> None:
        self._was = _GRAD_TRACKING[0]
        _GRAD_TRACKING[0] = False

    def __exit__(self, *exc: Any) -> None:
        _GRAD_TRACKING[0] = self._was


@dataclass
class Recipe:
    """How a tensor was computed: `op` applied to `args` (arrays for tensor arguments, other values as
    given); `parents` maps the index of each argument that was a tensor requiring grad to that tensor."""

    op: str
    args: tuple
    parents: dict[int, Tensor]


class Tensor:
    """A float64 NumPy array that can take part in autograd."""

    def __init__(self, array: Any, requires_grad: bool = False):
        self.array: Arr = np.asarray(array, dtype=np.float64)
        self.requires_grad = requires_grad
        self.grad: Tensor | None = None
        self.recipe: Recipe | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return self.array.shape

    @property
    def ndim(self) -> int:
        return self.array.ndim

    @property
    def is_leaf(self) -> bool:
        """A tensor not computed by a recorded op (an input, or a parameter)."""
        return self.recipe is None

    def item(self) -> float:
        return self.array.item()

    def __repr__(self) -> str:
        tail = f", op={self.recipe.op!r}" if self.recipe else (", requires_grad=True" if self.requires_grad else "")
        return f"Tensor({self.array!r}{tail})"

    def __len__(self) -> int:
        return len(self.array)

    # Ops: each applies one recorded function (see _op below).
    def __add__(self, other: Tensor | float) -> Tensor:
        return _add(self, other)

    def __radd__(self, other: float) -> Tensor:
        return _add(other, self)

    def __neg__(self) -> Tensor:
        return _negative(self)

    def __sub__(self, other: Tensor | float) -> Tensor:
        return _add(self, -other)

    def __rsub__(self, other: float) -> Tensor:
        return _add(other, -self)

    def __mul__(self, other: Tensor | float) -> Tensor:
        return _multiply(self, other)

    def __rmul__(self, other: float) -> Tensor:
        return _multiply(other, self)

    def __truediv__(self, other: float | Arr) -> Tensor:
        if isinstance(other, Tensor):
            raise TypeError("this engine divides only by numbers and arrays, not by Tensors")
        return _multiply(self, 1.0 / np.asarray(other, dtype=np.float64))

    def __matmul__(self, other: Tensor) -> Tensor:
        return _matmul(self, other)

    def log(self) -> Tensor:
        return _log(self)

    def exp(self) -> Tensor:
        return _exp(self)

    def relu(self) -> Tensor:
        return _relu(self)

    def reshape(self, *shape: int) -> Tensor:
        return _reshape(self, shape)

    def permute(self, *axes: int) -> Tensor:
        return _permute(self, axes)

    @property
    def T(self) -> Tensor:
        return _permute(self, tuple(reversed(range(self.ndim))))

    def sum(self, dim: int | tuple[int, ...] | None = None, keepdim: bool = False) -> Tensor:
        return _sum(self, dim, keepdim)

    def max(self, dim: int | tuple[int, ...] | None = None, keepdim: bool = False) -> Tensor:
        return _max(self, dim, keepdim)


def _op(name: str, forward: Callable[..., Arr]) -> Callable[..., Tensor]:
    """Turn a function on arrays into an op on Tensors that records a Recipe when gradients are needed."""

    def op(*args: Any) -> Tensor:
        arrays = tuple(a.array if isinstance(a, Tensor) else a for a in args)
        out = Tensor(forward(*arrays))
        parents = {i: a for i, a in enumerate(args) if isinstance(a, Tensor) and a.requires_grad}
        if parents and _GRAD_TRACKING[0]:
            out.requires_grad = True
            out.recipe = Recipe(name, arrays, parents)
        return out

    op.__name__ = name
    return op


def _matmul2d(x: Arr, y: Arr) -> Arr:
    if np.ndim(x) != 2 or np.ndim(y) != 2:
        raise ValueError(f"matmul takes two 2-D tensors, got shapes {np.shape(x)} and {np.shape(y)}")
    return x @ y


_add = _op("add", np.add)
_multiply = _op("multiply", np.multiply)
_negative = _op("negative", np.negative)
_log = _op("log", np.log)
_exp = _op("exp", np.exp)
_relu = _op("relu", lambda x: np.maximum(x, 0.0))
_reshape = _op("reshape", lambda x, shape: np.reshape(x, shape))
_permute = _op("permute", lambda x, axes: np.transpose(x, axes))
_sum = _op("sum", lambda x, dim, keepdim: np.sum(x, axis=dim, keepdims=keepdim))
_max = _op("max", lambda x, dim, keepdim: np.max(x, axis=dim, keepdims=keepdim))
_matmul = _op("matmul", _matmul2d)


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
    """Backward function of out = -x."""
    return -grad_out


def exp_back(
    grad_out: Float[Arr, "*shape"], out: Float[Arr, "*shape"], x: Float[Arr, "*shape"]
) -> Float[Arr, "*shape"]:
    """Backward function of out = exp(x): the derivative of exp is exp, which is `out`."""
    return grad_out * out


def relu_back(
    grad_out: Float[Arr, "*shape"], out: Float[Arr, "*shape"], x: Float[Arr, "*shape"]
) -> Float[Arr, "*shape"]:
    """Backward function of out = max(x, 0): the gradient passes where x > 0 (and, as in torch, not at x = 0)."""
    return grad_out * (x > 0)


def reshape_back(
    grad_out: Float[Arr, "*new_shape"], out: Float[Arr, "*new_shape"], x: Float[Arr, "*shape"], shape: tuple[int, ...]
) -> Float[Arr, "*shape"]:
    """Backward function of out = x.reshape(shape)."""
    return grad_out.reshape(x.shape)


def permute_back(grad_out: Arr, out: Arr, x: Arr, axes: tuple[int, ...]) -> Arr:
    """Backward function of out = np.transpose(x, axes): apply the inverse permutation."""
    return np.transpose(grad_out, np.argsort(axes))


def sum_back(grad_out: Arr, out: Arr, x: Arr, dim: int | tuple[int, ...] | None, keepdim: bool) -> Arr:
    """Backward function of out = x.sum(dim, keepdim): every summed entry gets the gradient of its sum."""
    if not keepdim and dim is not None:
        grad_out = np.expand_dims(grad_out, dim)  # put the summed axes back, with size 1
    return np.broadcast_to(grad_out, x.shape).copy()


def max_back(grad_out: Arr, out: Arr, x: Arr, dim: int | tuple[int, ...] | None, keepdim: bool) -> Arr:
    """Backward function of out = x.max(dim, keepdim): the gradient goes to the maximal entries, shared
    equally between ties (as torch.amax does)."""
    if not keepdim and dim is not None:
        grad_out, out = np.expand_dims(grad_out, dim), np.expand_dims(out, dim)
    is_max = x == out
    return grad_out * is_max / is_max.sum(axis=dim, keepdims=True)


def matmul2d_back0(
    grad_out: Float[Arr, "m n"], out: Float[Arr, "m n"], x: Float[Arr, "m k"], y: Float[Arr, "k n"]
) -> Float[Arr, "m k"]:
    """Backward function of out = x @ y (2-D), for x."""
    return grad_out @ y.T


def matmul2d_back1(
    grad_out: Float[Arr, "m n"], out: Float[Arr, "m n"], x: Float[Arr, "m k"], y: Float[Arr, "k n"]
) -> Float[Arr, "k n"]:
    """Backward function of out = x @ y (2-D), for y."""
    return x.T @ grad_out


BACK_FUNCS = BackwardFunctions()
BACK_FUNCS.add("log", log_back)
BACK_FUNCS.add("multiply", multiply_back0, multiply_back1)
BACK_FUNCS.add("add", add_back0, add_back1)
BACK_FUNCS.add("negative", negative_back)
BACK_FUNCS.add("exp", exp_back)
BACK_FUNCS.add("relu", relu_back)
BACK_FUNCS.add("reshape", reshape_back)
BACK_FUNCS.add("permute", permute_back)
BACK_FUNCS.add("sum", sum_back)
BACK_FUNCS.add("max", max_back)
BACK_FUNCS.add("matmul", matmul2d_back0, matmul2d_back1)


# ----------------------------------------------------------------------------- training (part 4)


class Parameter(Tensor):
    """A tensor a Module learns: it requires grad, and Module.parameters() finds it."""

    def __init__(self, array: Any, requires_grad: bool = True):
        super().__init__(array, requires_grad)


class Module:
    """A minimal torch.nn.Module: attributes that are Parameters or Modules are registered by name."""

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_modules", {})

    def __setattr__(self, name: str, value: Any) -> None:
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """("weight", p), ("layer1.bias", q), ...: this module's parameters, then its submodules'."""
        for name, parameter in self._parameters.items():
            yield prefix + name, parameter
        for name, module in self._modules.items():
            yield from module.named_parameters(prefix + name + ".")

    def parameters(self) -> Iterator[Parameter]:
        return (parameter for _, parameter in self.named_parameters())

    def __call__(self, *args: Any) -> Any:
        return self.forward(*args)

    def forward(self, *args: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} has no forward method")


class Linear(Module):
    """y = x @ weight.T + bias, with weight (out_features, in_features) and bias (out_features,), both
    initialised uniformly in [-1/sqrt(in_features), 1/sqrt(in_features)] (as torch.nn.Linear)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        bound = 1 / np.sqrt(in_features)
        self.weight = Parameter(np.random.uniform(-bound, bound, (out_features, in_features)))
        self.bias = Parameter(np.random.uniform(-bound, bound, out_features)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        out = x @ self.weight.T
        return out + self.bias if self.bias is not None else out


def cross_entropy(logits: Tensor, true_labels: Int[Arr, "batch"]) -> Tensor:
    """The mean over the batch of -log softmax(logits)[true label], as a 0-d Tensor. logits: (batch, classes)."""
    batch, classes = logits.shape
    # Subtracting each row's maximum (a constant: no gradient needed) keeps exp from overflowing.
    shifted = logits - logits.array.max(axis=-1, keepdims=True)
    log_probs = shifted - shifted.exp().sum(dim=-1, keepdim=True).log()
    one_hot = np.eye(classes)[true_labels]
    return -(log_probs * one_hot).sum() / batch


class SGD:
    """Stochastic gradient descent with momentum and weight decay, following torch.optim.SGD:
    g = grad + weight_decay * p;  b = momentum * b + g (b = g at the first step);  p -= lr * b."""

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

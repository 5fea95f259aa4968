"""What section 0.4's autograd engine builds on, none of it an exercise's answer.

- ``Tensor``: a float64 NumPy array with a ``requires_grad`` flag, a ``.grad`` slot and, once it was
  computed by a recorded op, a ``Recipe``. Its operators (``+``, ``*``, ``@``, ``.log()``, ``.sum()``, ...)
  look their op up by name in a table this module fills from an *op wrapper*: a function
  ``make_op(name, forward)`` that turns a NumPy function into an op on Tensors. Writing that wrapper is
  an exercise of the section; ``use_op_wrapper`` installs the learner's, and ``op_wrapper`` installs one
  for the duration of a ``with`` block (the checks use it to test one exercise at a time).
- ``Recipe`` and ``BackwardFunctions``: the record of how a tensor was computed, and the registry from
  (op name, argument index) to backward function.
- The grad-recording switch (``is_grad_enabled``, ``set_grad_enabled``) that a ``no_grad`` context turns.
- ``Parameter``: a Tensor that requires grad by default, the kind a Module learns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

Arr = np.ndarray


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


@dataclass
class Recipe:
    """How a tensor was computed: `op` applied to `args` (arrays for tensor arguments, other values as
    given); `parents` maps the index of each argument that was a tensor requiring grad to that tensor."""

    op: str
    args: tuple
    parents: dict[int, Tensor]


_GRAD_ENABLED = [True]  # a list, so that the functions below switch it without a `global` statement


def is_grad_enabled() -> bool:
    """Whether ops record recipes now (True unless a no_grad block switched it off)."""
    return _GRAD_ENABLED[0]


def set_grad_enabled(enabled: bool) -> None:
    _GRAD_ENABLED[0] = bool(enabled)


def _matmul2d(x: Arr, y: Arr) -> Arr:
    if np.ndim(x) != 2 or np.ndim(y) != 2:
        raise ValueError(f"matmul takes two 2-D tensors, got shapes {np.shape(x)} and {np.shape(y)}")
    return x @ y


# The forward half of every op: plain NumPy functions. Extra arguments (a shape, axes, dim) follow the arrays.
FORWARD: dict[str, Callable[..., Arr]] = {
    "add": np.add,
    "multiply": np.multiply,
    "negative": np.negative,
    "log": np.log,
    "exp": np.exp,
    "relu": lambda x: np.maximum(x, 0.0),
    "reshape": lambda x, shape: np.reshape(x, shape),
    "permute": lambda x, axes: np.transpose(x, axes),
    "sum": lambda x, dim, keepdim: np.sum(x, axis=dim, keepdims=keepdim),
    "max": lambda x, dim, keepdim: np.max(x, axis=dim, keepdims=keepdim),
    "matmul": _matmul2d,
}

_OPS: dict[str, Callable[..., Tensor]] = {}


def use_op_wrapper(make_op: Callable[[str, Callable[..., Arr]], Callable[..., Tensor]]) -> None:
    """From now on, Tensor operators run make_op(name, FORWARD[name]) for each op."""
    _OPS.clear()
    _OPS.update({name: make_op(name, forward) for name, forward in FORWARD.items()})


@contextmanager
def op_wrapper(make_op: Callable[[str, Callable[..., Arr]], Callable[..., Tensor]]) -> Iterator[None]:
    """Inside the block, Tensor operators use make_op's ops; afterwards, whichever were installed before."""
    before = dict(_OPS)
    use_op_wrapper(make_op)
    try:
        yield
    finally:
        _OPS.clear()
        _OPS.update(before)


def _apply(name: str, *args: Any) -> Tensor:
    if name not in _OPS:
        raise RuntimeError(
            "Tensor operations are not set up yet: write make_op (part 2) and run use_op_wrapper(make_op)"
        )
    return _OPS[name](*args)


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

    def __add__(self, other: Tensor | float) -> Tensor:
        return _apply("add", self, other)

    def __radd__(self, other: float) -> Tensor:
        return _apply("add", other, self)

    def __neg__(self) -> Tensor:
        return _apply("negative", self)

    def __sub__(self, other: Tensor | float) -> Tensor:
        return _apply("add", self, -other)

    def __rsub__(self, other: float) -> Tensor:
        return _apply("add", other, -self)

    def __mul__(self, other: Tensor | float) -> Tensor:
        return _apply("multiply", self, other)

    def __rmul__(self, other: float) -> Tensor:
        return _apply("multiply", other, self)

    def __truediv__(self, other: float | Arr) -> Tensor:
        if isinstance(other, Tensor):
            raise TypeError("this engine divides only by numbers and arrays, not by Tensors")
        return _apply("multiply", self, 1.0 / np.asarray(other, dtype=np.float64))

    def __matmul__(self, other: Tensor) -> Tensor:
        return _apply("matmul", self, other)

    def log(self) -> Tensor:
        return _apply("log", self)

    def exp(self) -> Tensor:
        return _apply("exp", self)

    def relu(self) -> Tensor:
        return _apply("relu", self)

    def reshape(self, *shape: int) -> Tensor:
        return _apply("reshape", self, shape)

    def permute(self, *axes: int) -> Tensor:
        return _apply("permute", self, axes)

    @property
    def T(self) -> Tensor:
        return _apply("permute", self, tuple(reversed(range(self.ndim))))

    def sum(self, dim: int | tuple[int, ...] | None = None, keepdim: bool = False) -> Tensor:
        return _apply("sum", self, dim, keepdim)

    def max(self, dim: int | tuple[int, ...] | None = None, keepdim: bool = False) -> Tensor:
        return _apply("max", self, dim, keepdim)


class Parameter(Tensor):
    """A tensor a Module learns: it requires grad, and Module.named_parameters() finds it."""

    def __init__(self, array: Any, requires_grad: bool = True):
        super().__init__(array, requires_grad)

"""Checks for 0.4 Backprop.

The engine works on float64 NumPy arrays; the harness compares torch tensors. So every case holds torch
tensors, and each exercise's `run` converts them to arrays (sharing memory, so edits in place still
show), calls the function, and converts the result back. Backward functions are pinned by an oracle
that differentiates the same op with torch autograd; the engine-level exercises (backprop, Linear,
cross_entropy, SGD) by expected answers computed with torch; make_op, no_grad and Module by hand-written
descriptions of what they must record, switch or find.

Every exercise that builds Tensors runs with the reference op wrapper installed (``_with_reference_ops``),
so that each check tests one exercise: a learner's make_op, right or wrong, does not change the verdict on
their backprop or cross_entropy.
"""

import dataclasses
import inspect
import math

import numpy as np
import torch
import torch.nn.functional as F

from course.autograd import op_wrapper, set_grad_enabled
from solutions.chapter0_fundamentals import backprop as ref
from tests.harness import Case, Checker, Exercise, Mismatch, compare

D = torch.float64


def _np(value):
    """Torch tensors become arrays (sharing memory where possible); tuples, lists and the rest as they are."""
    if isinstance(value, torch.Tensor):
        return value.numpy() if value.device.type == "cpu" else value.cpu().numpy()
    if isinstance(value, tuple):
        return tuple(_np(v) for v in value)
    return value


def _torch(value):
    if value is None or isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (np.ndarray, np.number, float, int)) and not isinstance(value, bool):
        return torch.from_numpy(np.array(value))  # a copy: results may be read-only views
    if isinstance(value, (tuple, list)):
        return type(value)(_torch(v) for v in value)
    return value


def _randn(gen, *shape, scale=1.0):
    return scale * torch.randn(tuple(shape), generator=gen, dtype=D)


def _mul(x, y):
    return x * y


def _with_reference_ops(run):
    """`run` with the Tensor operators built by the reference make_op, whatever the notebook installed."""

    def run_with_reference_ops(impl, case):
        with op_wrapper(ref.make_op):
            return run(impl, case)

    return run_with_reference_ops


# ----------------------------------------------------------------------------- backward functions


def _run_back(impl, case):
    """Call a backward function on arrays: (grad_out, out, *forward args), forward kwargs as keywords."""
    return _float64_result(impl(*_np(case.args), **case.kwargs))


def _float64_result(value):
    """A backward function's result as a tensor for the comparison; what is not a float64 array (or number) is
    refused here, in the engine's own terms, rather than in the harness's torch vocabulary."""
    if value is None:
        return None
    if isinstance(value, ref.Tensor):
        raise Mismatch(
            "output: expected a NumPy array, got an engine Tensor: backward functions take and return plain arrays"
        )
    if isinstance(value, torch.Tensor):
        raise Mismatch("output: expected a NumPy array, got a torch tensor: this engine works on NumPy arrays")
    if isinstance(value, (float, np.floating)):
        value = np.asarray(value)
    if not isinstance(value, np.ndarray):
        raise Mismatch(f"output: expected a NumPy array, got {type(value).__name__}")
    if value.dtype != np.float64:
        raise Mismatch(f"output: expected a float64 array (the engine's dtype throughout), got a {value.dtype} array")
    return torch.from_numpy(np.array(value))  # a copy: results may be read-only views


def _autograd_oracle(forward, argnum: int):
    """A backward function computed by torch autograd: forward(*torch args) is the op, differentiated
    with respect to its argument `argnum`."""

    def back(grad_out, out, *args, **kwargs):
        inputs = [
            torch.tensor(a, dtype=D, requires_grad=(i == argnum)) if isinstance(a, np.ndarray) else a
            for i, a in enumerate(args)
        ]
        result = forward(*inputs, **kwargs)
        (grad,) = torch.autograd.grad(result, inputs[argnum], torch.from_numpy(np.asarray(grad_out)))
        return grad.numpy()

    return back


def _back_case(gen, forward, shapes, label, extra=(), kwargs=None, scale=1.0, positive=False):
    """A case (grad_out, out, *inputs, *extra) for the op forward(*inputs, *extra) on random inputs."""
    inputs = [_randn(gen, *s, scale=scale) if isinstance(s, tuple) else s for s in shapes]
    if positive:
        inputs = [x.abs() + 0.1 if isinstance(x, torch.Tensor) else x for x in inputs]
    out = forward(*inputs, *extra, **(kwargs or {}))
    return Case((_randn(gen, *out.shape), out, *inputs, *extra), label, kwargs=kwargs or {})


def _elementwise_cases(forward, positive=False, hand=(), edge=()):
    def cases(gen):
        yield from hand
        for shape in [(5,), (3, 4), (2, 3, 4), (4, 1, 3), (1,), ()]:
            yield _back_case(gen, forward, [shape], f"x of shape {shape}", positive=positive)
        yield from edge

    return cases


# log
def _log_back_over_out(grad_out, out, x):
    return grad_out / out


def _log_back_no_grad_out(grad_out, out, x):
    return 1 / x


def _log_back_epsilon(grad_out, out, x):
    """A guard against dividing by zero that changes the answer for small inputs."""
    return grad_out / (x + 1e-8)


_LOG_HAND = [
    Case(
        (
            torch.tensor([1.0, 3.0], dtype=D),
            torch.tensor([math.log(2), math.log(4)], dtype=D),
            torch.tensor([2.0, 4.0], dtype=D),
        ),
        "x = (2, 4), grad_out = (1, 3)",
        expected=torch.tensor([0.5, 0.75], dtype=D),
    )
]
_TINY = torch.tensor([1e-9, 3e-7, 2e-5, 0.5], dtype=D)
_LOG_EDGE = [
    Case(
        (torch.tensor([1.0, -2.0, 0.5, 1.0], dtype=D), _TINY.log(), _TINY),
        "tiny x, down to 1e-9: the gradient is huge, and exact",
    )
]


# unbroadcast
def _unbroadcast_cases(gen):
    yield Case((torch.ones(2, 3, dtype=D), (3,)), "(2, 3) ones to (3,)", expected=torch.full((3,), 2.0, dtype=D))
    yield Case(
        (torch.arange(6, dtype=D).reshape(2, 3), (2, 1)),
        "[[0, 1, 2], [3, 4, 5]] to (2, 1)",
        expected=torch.tensor([[3.0], [12.0]], dtype=D),
    )
    yield Case((torch.arange(6, dtype=D).reshape(2, 3), ()), "to a scalar", expected=torch.tensor(15.0, dtype=D))
    for grad_shape, shape in [
        ((4, 3, 5), (3, 5)),
        ((4, 3, 5), (3, 1)),
        ((4, 3, 5), (1, 3, 1)),
        ((2, 3), (2, 3)),
        ((6, 2, 4, 3), (2, 1, 3)),
        ((5,), (1,)),
        ((3, 3), (3, 1)),
        ((3, 3), (1, 3)),
    ]:
        yield Case((_randn(gen, *grad_shape), shape), f"{grad_shape} to {shape}")


def _unbroadcast_leading_only(grad, shape):
    return grad.sum(axis=tuple(range(grad.ndim - len(shape))))


def _unbroadcast_drops_size_one_axes(grad, shape):
    grad = grad.sum(axis=tuple(range(grad.ndim - len(shape))))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.sum(axis=stretched).reshape(shape) if len(stretched) < len(shape) else grad.sum(axis=stretched)


def _unbroadcast_mean(grad, shape):
    out = ref.unbroadcast(grad, shape)
    return out * out.size / grad.size


# multiply
def _multiply_cases(argnum):
    def cases(gen):
        x, y = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=D), torch.tensor([10.0, 20.0], dtype=D)
        grad_out = torch.ones(2, 2, dtype=D)
        expected = (
            torch.tensor([[10.0, 20.0], [10.0, 20.0]], dtype=D) if argnum == 0 else torch.tensor([4.0, 6.0], dtype=D)
        )
        yield Case((grad_out, x * y, x, y), "x = [[1, 2], [3, 4]], y = (10, 20), grad_out = ones", expected=expected)
        for xs, ys in [((3, 4), (3, 4)), ((3, 4), (4,)), ((4,), (2, 3, 4)), ((3, 1), (1, 5)), ((3, 3), (3, 1))]:
            yield _back_case(gen, _mul, [xs, ys], f"x {xs}, y {ys}")
        other = 2.5
        shapes = [(3, 4), other] if argnum == 0 else [other, (3, 4)]
        yield _back_case(gen, _mul, shapes, "the other factor is the Python float 2.5")
        # Zeros in the factor being differentiated: its gradient does not depend on its own values.
        zeros = torch.tensor([[0.0, 1.5, -2.0], [3.0, 0.0, 0.0]], dtype=D)
        other = torch.tensor([2.0, -1.0, 0.5], dtype=D)
        x, y = (zeros, other) if argnum == 0 else (other, zeros)
        yield Case((_randn(gen, 2, 3), x * y, x, y), f"{'x' if argnum == 0 else 'y'} has zeros")

    return cases


def _multiply_back0_wrong_factor(grad_out, out, x, y):
    return ref.unbroadcast(grad_out * x, np.shape(x))


def _multiply_back0_no_unbroadcast(grad_out, out, x, y):
    return grad_out * y


def _multiply_back1_wrong_factor(grad_out, out, x, y):
    return ref.unbroadcast(grad_out * y, np.shape(y))


def _multiply_back1_no_unbroadcast(grad_out, out, x, y):
    return grad_out * x


def _multiply_back0_other_from_out(grad_out, out, x, y):
    return ref.unbroadcast(grad_out * (out / x), np.shape(x))


def _multiply_back1_other_from_out(grad_out, out, x, y):
    return ref.unbroadcast(grad_out * (out / y), np.shape(y))


# negative, exp, relu
def _negative_back_identity(grad_out, out, x):
    return grad_out


def _exp_back_times_x(grad_out, out, x):
    return grad_out * x


def _exp_back_no_grad_out(grad_out, out, x):
    return out


_RELU_HAND = [
    Case(
        (
            torch.tensor([1.0, 2.0, 3.0], dtype=D),
            torch.tensor([0.0, 0.0, 5.0], dtype=D),
            torch.tensor([-1.0, 0.0, 5.0], dtype=D),
        ),
        "x = (-1, 0, 5): no gradient at 0, as in torch",
        expected=torch.tensor([0.0, 0.0, 3.0], dtype=D),
    )
]


def _relu_back_at_zero(grad_out, out, x):
    return grad_out * (x >= 0)


def _relu_back_mask_only(grad_out, out, x):
    return (x > 0).astype(np.float64)


# reshape, permute
def _reshape_cases(gen):
    grad_out = torch.arange(6, dtype=D)
    x = torch.zeros(2, 3, dtype=D)
    yield Case((grad_out, x.reshape(6), x, (6,)), "(2, 3) to (6,)", expected=torch.arange(6, dtype=D).reshape(2, 3))
    for shape, new in [((2, 3, 4), (6, 4)), ((12,), (3, 2, 2)), ((4, 6), (2, 12)), ((5,), (1, 5, 1))]:
        yield _back_case(gen, torch.reshape, [shape], f"{shape} to {new}", extra=(new,))


def _reshape_back_to_new_shape(grad_out, out, x, shape):
    return grad_out.reshape(shape)


def _reshape_back_transposed(grad_out, out, x, shape):
    return grad_out.reshape(x.shape[::-1]).T


def _permute_cases(gen):
    x = torch.zeros(2, 3, 4, dtype=D)
    grad_out = torch.arange(24, dtype=D).reshape(4, 2, 3)
    yield Case(
        (grad_out, x.permute(2, 0, 1), x, (2, 0, 1)),
        "(2, 3, 4) permuted by (2, 0, 1)",
        expected=torch.arange(24, dtype=D).reshape(4, 2, 3).permute(1, 2, 0),
    )
    for shape, axes in [
        ((3, 4), (1, 0)),
        ((2, 3, 4), (1, 2, 0)),
        ((2, 3, 4), (0, 2, 1)),
        ((2, 3, 4, 5), (3, 1, 0, 2)),
        ((4, 4, 4), (2, 0, 1)),
    ]:
        yield _back_case(gen, torch.permute, [shape], f"{shape} permuted by {axes}", extra=(axes,))


def _permute_back_same_axes(grad_out, out, x, axes):
    return np.transpose(grad_out, axes)


def _permute_back_reversed(grad_out, out, x, axes):
    return np.transpose(grad_out)


# sum, max
def _torch_sum(x, dim, keepdim):
    return (
        x.sum()
        if dim is None and not keepdim
        else x.sum(dim=dim if dim is not None else tuple(range(x.ndim)), keepdim=keepdim)
    )


def _torch_amax(x, dim, keepdim):
    return x.amax(dim=dim if dim is not None else tuple(range(x.ndim)), keepdim=keepdim)


def _reduction_cases(torch_fn, hand):
    def cases(gen):
        yield from hand
        for shape, dim, keepdim in [
            ((3, 3), 1, False),
            ((3, 3), 0, False),
            ((3, 4), 1, True),
            ((2, 3, 4), (0, 2), False),
            ((2, 3, 4), -1, False),
            ((5,), None, False),
            ((2, 3), None, True),
            ((4, 3), 0, True),
            ((2, 3, 4), (2, 0), False),
        ]:
            yield _back_case(
                gen, torch_fn, [shape], f"shape {shape}, dim={dim}, keepdim={keepdim}", extra=(dim, keepdim)
            )

    return cases


_SUM_HAND = [
    Case(
        (
            torch.tensor([1.0, 2.0], dtype=D),
            torch.tensor([3.0, 7.0], dtype=D),
            torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=D),
            1,
            False,
        ),
        "row sums of [[1, 2], [3, 4]]",
        expected=torch.tensor([[1.0, 1.0], [2.0, 2.0]], dtype=D),
    )
]

_MAX_HAND = [
    Case(
        (
            torch.tensor([1.0, 2.0], dtype=D),
            torch.tensor([5.0, 4.0], dtype=D),
            torch.tensor([[5.0, 1.0], [3.0, 4.0]], dtype=D),
            1,
            False,
        ),
        "row maxima of [[5, 1], [3, 4]]",
        expected=torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=D),
    ),
    Case(
        (
            torch.tensor([6.0], dtype=D),
            torch.tensor([2.0], dtype=D),
            torch.tensor([[2.0, 1.0, 2.0]], dtype=D),
            1,
            False,
        ),
        "a tie: [[2, 1, 2]] shares the gradient",
        expected=torch.tensor([[3.0, 0.0, 3.0]], dtype=D),
    ),
    Case(
        (
            torch.tensor(1.0, dtype=D),
            torch.tensor(4.0, dtype=D),
            torch.tensor([4.0, 4.0, 4.0, 4.0], dtype=D),
            None,
            False,
        ),
        "all four entries tie",
        expected=torch.tensor([0.25, 0.25, 0.25, 0.25], dtype=D),
    ),
    Case(
        (
            torch.tensor([2.0], dtype=D),
            torch.tensor([1.0 + 1e-9], dtype=D),
            torch.tensor([[1.0, 1.0 + 1e-9, 0.5]], dtype=D),
            1,
            False,
        ),
        "a near-tie: 1 and 1 + 1e-9 are not equal",
        expected=torch.tensor([[0.0, 2.0, 0.0]], dtype=D),
    ),
]


def _sum_back_no_expand(grad_out, out, x, dim, keepdim):
    return np.broadcast_to(grad_out, x.shape).copy()


def _sum_back_ones(grad_out, out, x, dim, keepdim):
    return np.ones_like(x)


def _restore_axes_in_turn(array, dim):
    """np.expand_dims one axis at a time, in the order given: an axis can be out of range for the partial array."""
    for d in dim if isinstance(dim, tuple) else (dim,):
        array = np.expand_dims(array, d)
    return array


def _sum_back_axes_in_turn(grad_out, out, x, dim, keepdim):
    if not keepdim and dim is not None:
        grad_out = _restore_axes_in_turn(grad_out, dim)
    return np.broadcast_to(grad_out, x.shape).copy()


def _max_back_ties_get_all(grad_out, out, x, dim, keepdim):
    if not keepdim and dim is not None:
        grad_out, out = np.expand_dims(grad_out, dim), np.expand_dims(out, dim)
    return grad_out * (x == out)


def _max_back_like_sum(grad_out, out, x, dim, keepdim):
    return ref.sum_back(grad_out, out, x, dim, keepdim)


def _max_back_close_counts_as_tie(grad_out, out, x, dim, keepdim):
    if not keepdim and dim is not None:
        grad_out, out = np.expand_dims(grad_out, dim), np.expand_dims(out, dim)
    is_max = np.isclose(x, out)
    return grad_out * is_max / is_max.sum(axis=dim, keepdims=True)


def _max_back_first_maximum(grad_out, out, x, dim, keepdim):
    """One-hot at the argmax, as torch.max(x, dim) does, not torch.amax: the first of tied entries takes it all."""
    axes = tuple(range(x.ndim)) if dim is None else dim if isinstance(dim, tuple) else (dim,)
    axes = tuple(a % x.ndim for a in axes)
    kept = [a for a in range(x.ndim) if a not in axes]
    moved = np.moveaxis(x, kept + list(axes), range(x.ndim)).reshape(*[x.shape[a] for a in kept], -1)
    first = np.eye(moved.shape[-1])[moved.argmax(axis=-1)]
    mask = np.moveaxis(
        first.reshape(*[x.shape[a] for a in kept], *[x.shape[a] for a in axes]), range(x.ndim), kept + list(axes)
    )
    if not keepdim:
        grad_out = np.expand_dims(grad_out, axes)
    return grad_out * mask


def _max_back_axes_in_turn(grad_out, out, x, dim, keepdim):
    if not keepdim and dim is not None:
        grad_out, out = _restore_axes_in_turn(grad_out, dim), _restore_axes_in_turn(out, dim)
    is_max = x == out
    return grad_out * is_max / is_max.sum(axis=dim, keepdims=True)


# matmul
def _matmul_cases(argnum):
    def cases(gen):
        x, y = torch.tensor([[1.0, 2.0]], dtype=D), torch.tensor([[3.0], [4.0]], dtype=D)
        expected = torch.tensor([[3.0, 4.0]], dtype=D) if argnum == 0 else torch.tensor([[1.0], [2.0]], dtype=D)
        yield Case((torch.ones(1, 1, dtype=D), x @ y, x, y), "(1 2) @ (3 4)^T, grad_out = 1", expected=expected)
        for m, k, n in [(3, 4, 5), (4, 4, 4), (1, 6, 2), (5, 2, 1), (3, 3, 3)]:
            yield _back_case(gen, torch.matmul, [(m, k), (k, n)], f"({m}, {k}) @ ({k}, {n})")

    return cases


def _matmul_back0_untransposed(grad_out, out, x, y):
    return grad_out @ y


def _matmul_back0_wrong_order(grad_out, out, x, y):
    return (y @ grad_out.T).T if y.shape[0] == y.shape[1] else y.T @ grad_out


def _matmul_back1_untransposed(grad_out, out, x, y):
    return x @ grad_out


def _matmul_back1_wrong_order(grad_out, out, x, y):
    return grad_out.T @ x if x.shape[0] == x.shape[1] else x.T @ grad_out.T


# ----------------------------------------------------------------------------- make_op and no_grad

# Each make_op case applies one op to arguments described by kind: ("leaf", values) a Tensor that requires
# grad, ("const", values) a Tensor that does not, ("computed", values) a Tensor that requires grad and was
# itself computed by a recorded op, and anything else a plain value passed as it is.
MAKE_OP_FORWARD = {
    "multiply": np.multiply,
    "add": np.add,
    "log": np.log,
    "sum": lambda x, dim, keepdim: np.sum(x, axis=dim, keepdims=keepdim),
}


def _recorded(output, op, args, parents):
    """What make_op must give when it records: the output, requiring grad, and its recipe described."""
    return {
        "output": torch.tensor(output, dtype=D),
        "output.requires_grad": True,
        "recipe.op": op,
        "recipe.args": args,
        "recipe.parents": parents,
    }


def _not_recorded(output):
    """What make_op must give when it records nothing: the output alone, not requiring grad."""
    return {
        "output": torch.tensor(output, dtype=D),
        "output.requires_grad": False,
        "recipe.op": "no recipe",
        "recipe.args": "no recipe",
        "recipe.parents": "no recipe",
    }


def _make_op_cases(gen):
    leaf, const = ("leaf", [1.0, 2.0]), ("const", [3.0, 4.0])
    yield Case(
        ("multiply", leaf, 3.0),
        "a Tensor that requires grad times the number 3",
        expected=_recorded([3.0, 6.0], "multiply", ["argument 0's array", "3.0"], "{0: argument 0}"),
    )
    yield Case(
        ("multiply", 2.0, leaf),
        "the number 2 times a Tensor that requires grad (it is argument 1)",
        expected=_recorded([2.0, 4.0], "multiply", ["2.0", "argument 1's array"], "{1: argument 1}"),
    )
    yield Case(
        ("add", const, ("const", [1.0, 1.0])),
        "no argument requires grad: nothing to record",
        expected=_not_recorded([4.0, 5.0]),
    )
    yield Case(
        ("add", const, leaf),
        "only the second of two Tensors requires grad",
        expected=_recorded([4.0, 6.0], "add", ["argument 0's array", "argument 1's array"], "{1: argument 1}"),
    )
    yield Case(("add", leaf, ("leaf", [5.0, 5.0])), "both Tensors require grad")
    yield Case(("log", ("computed", [1.0, 2.0])), "the input was itself computed by a recorded op")
    yield Case(
        ("sum", ("leaf", [[1.0, 2.0], [3.0, 4.0]]), 1, True),
        "extra arguments after the array (dim=1, keepdim)",
        expected=_recorded([[3.0], [7.0]], "sum", ["argument 0's array", "1", "True"], "{0: argument 0}"),
    )
    yield Case(
        ("multiply", leaf, 3.0),
        "inside no_grad: nothing is recorded",
        kwargs={"recording": False},
        expected=_not_recorded([3.0, 6.0]),
    )
    yield Case(
        ("multiply", ("leaf", _randn(gen, 3, 4).tolist()), ("const", _randn(gen, 4).tolist())),
        "a (3, 4) Tensor that requires grad times a (4,) one that does not",
    )


def _make_op_argument(kind):
    if not (isinstance(kind, tuple) and len(kind) == 2 and kind[0] in ("leaf", "const", "computed")):
        return kind
    tag, values = kind
    if tag == "computed":
        return ref.Tensor(values, requires_grad=True) * 1.0  # the reference op: a non-leaf that requires grad
    return ref.Tensor(values, requires_grad=tag == "leaf")


def _describe_recorded_arg(recorded, given):
    if isinstance(recorded, ref.Tensor):
        return "a Tensor (the recipe must hold its array)"
    for j, g in enumerate(given):
        if isinstance(g, ref.Tensor) and recorded is g.array:
            return f"argument {j}'s array"
    if isinstance(recorded, np.ndarray):
        return "an array that is not an argument's own array"
    return repr(recorded)


def _run_make_op(impl, case):
    name, *kinds = case.args
    with op_wrapper(ref.make_op):  # building a "computed" argument needs a recorded op
        given = [_make_op_argument(k) for k in kinds]
    op = impl(name, MAKE_OP_FORWARD[name])
    if not callable(op):
        raise Mismatch(f"make_op returned {type(op).__name__}, not a function: it must return the op itself")
    recording = case.kwargs.get("recording", True)
    set_grad_enabled(recording)
    try:
        out = op(*given)
    finally:
        set_grad_enabled(True)
    if not isinstance(out, ref.Tensor):
        raise Mismatch(f"the op returned {type(out).__name__}, not a Tensor")
    recipe = out.recipe
    if recipe is None:
        recorded = {"recipe.op": "no recipe", "recipe.args": "no recipe", "recipe.parents": "no recipe"}
    else:

        def whose(parent):
            return next((f"argument {j}" for j, g in enumerate(given) if parent is g), "a tensor that is no argument")

        parents = ", ".join(f"{i}: {whose(p)}" for i, p in sorted(recipe.parents.items()))
        recorded = {
            "recipe.op": recipe.op,
            "recipe.args": [_describe_recorded_arg(a, given) for a in recipe.args],
            "recipe.parents": "{" + parents + "}",
        }
    return {"output": _torch(out.array), "output.requires_grad": bool(out.requires_grad)} | recorded


def _compare_make_op(expected, got):
    """Say first whether a recipe was recorded at all, then which part of it differs, in plain words."""
    if isinstance(expected, dict) and isinstance(got, dict) and "recipe.op" in got:
        if expected["recipe.op"] == "no recipe" != got["recipe.op"]:
            raise Mismatch(
                "the output holds a recipe, but nothing should be recorded here (no argument requires "
                "grad, or recording is switched off)"
            )
        if got["recipe.op"] == "no recipe" != expected["recipe.op"]:
            raise Mismatch("the output has no recipe, but an argument requires grad and recording is on")
        for key in ("recipe.op", "recipe.args", "recipe.parents"):
            if isinstance(expected[key], str) and expected[key] != got[key]:
                raise Mismatch(f"{key}: expected {expected[key]}, got {got[key]}")
            if isinstance(expected[key], list) and isinstance(got[key], list):
                for i, (e, g) in enumerate(zip(expected[key], got[key])):
                    if e != g:
                        raise Mismatch(f"{key}[{i}]: expected {e}, got {g}")
    compare(expected, got, atol=1e-8, rtol=1e-6)


def _make_op_records_always(name, forward):
    """Records a recipe whatever the inputs, so constants grow graphs and need backward functions."""

    def op(*args):
        arrays = tuple(a.array if isinstance(a, ref.Tensor) else a for a in args)
        out = ref.Tensor(forward(*arrays), requires_grad=True)
        out.recipe = ref.Recipe(name, arrays, {i: a for i, a in enumerate(args) if isinstance(a, ref.Tensor)})
        return out

    return op


def _make_op_all_tensors(name, forward):
    """Makes every Tensor argument a parent, also those that do not require grad."""

    def op(*args):
        arrays = tuple(a.array if isinstance(a, ref.Tensor) else a for a in args)
        out = ref.Tensor(forward(*arrays))
        parents = {i: a for i, a in enumerate(args) if isinstance(a, ref.Tensor)}
        if any(p.requires_grad for p in parents.values()) and ref.is_grad_enabled():
            out.requires_grad, out.recipe = True, ref.Recipe(name, arrays, parents)
        return out

    return op


def _make_op_records_tensors(name, forward):
    """Keeps the Tensors themselves in recipe.args, where backward functions expect arrays."""
    inner = ref.make_op(name, forward)

    def op(*args):
        out = inner(*args)
        if out.recipe is not None:
            out.recipe.args = tuple(args)
        return out

    return op


def _make_op_ignores_no_grad(name, forward):
    """Never asks whether recording is switched on."""

    def op(*args):
        set_was = ref.is_grad_enabled()
        set_grad_enabled(True)
        try:
            return ref.make_op(name, forward)(*args)
        finally:
            set_grad_enabled(set_was)

    return op


def _make_op_output_no_grad(name, forward):
    """Records the recipe but leaves the output's requires_grad False, so the next op records nothing."""
    inner = ref.make_op(name, forward)

    def op(*args):
        out = inner(*args)
        out.requires_grad = False
        return out

    return op


def _make_op_parents_numbered_among_tensors(name, forward):
    """Numbers the parents by their position among the Tensor arguments, not among all the arguments."""

    def op(*args):
        arrays = tuple(a.array if isinstance(a, ref.Tensor) else a for a in args)
        out = ref.Tensor(forward(*arrays))
        tensors = [a for a in args if isinstance(a, ref.Tensor)]
        parents = {i: t for i, t in enumerate(tensors) if t.requires_grad}
        if parents and ref.is_grad_enabled():
            out.requires_grad, out.recipe = True, ref.Recipe(name, arrays, parents)
        return out

    return op


def _make_op_copies_arrays(name, forward):
    """Records copies of the input arrays: right values, but memory for every op and no link to the input."""
    inner = ref.make_op(name, forward)

    def op(*args):
        out = inner(*args)
        if out.recipe is not None:
            out.recipe.args = tuple(np.array(a) if isinstance(a, np.ndarray) else a for a in out.recipe.args)
        return out

    return op


# no_grad: each case runs a scenario and reports whether recording was on at each named moment.
def _no_grad_scenario(cls, scenario):
    states = {}
    if scenario == "one block":
        states["before"] = ref.is_grad_enabled()
        with cls():
            states["inside"] = ref.is_grad_enabled()
        states["after"] = ref.is_grad_enabled()
    elif scenario == "nested":
        with cls():
            with cls():
                states["inside both"] = ref.is_grad_enabled()
            states["after the inner block, inside the outer"] = ref.is_grad_enabled()
        states["after both"] = ref.is_grad_enabled()
    elif scenario == "exception":
        try:
            with cls():
                raise KeyError("raised inside the block")
        except KeyError:
            states["the exception reached the code around the block"] = True
        else:
            states["the exception reached the code around the block"] = False
        states["after the exception"] = ref.is_grad_enabled()
    elif scenario == "already off":
        block = cls()  # made while recording is on, entered after it was switched off
        set_grad_enabled(False)
        with block:
            states["inside"] = ref.is_grad_enabled()
        states["after (recording was off before the block)"] = ref.is_grad_enabled()
    elif scenario == "reused":
        block = cls()
        with block:
            pass
        with block:
            states["inside the second use of one object"] = ref.is_grad_enabled()
        states["after"] = ref.is_grad_enabled()
    return states


_NO_GRAD_CASES = [
    ("one block", {"before": True, "inside": False, "after": True}),
    ("nested", {"inside both": False, "after the inner block, inside the outer": False, "after both": True}),
    ("exception", {"the exception reached the code around the block": True, "after the exception": True}),
    ("already off", {"inside": False, "after (recording was off before the block)": False}),
    ("reused", {"inside the second use of one object": False, "after": True}),
]


def _no_grad_cases(gen):
    for scenario, expected in _NO_GRAD_CASES:
        yield Case((scenario,), scenario, expected=expected)


def _run_no_grad(cls, case):
    set_grad_enabled(True)
    try:
        return _no_grad_scenario(cls, case.args[0])
    finally:
        set_grad_enabled(True)  # whatever the learner's class did, the notebook goes on recording


class _NoGradSwitchesOnAtExit(ref.no_grad):
    def __exit__(self, *exc):
        set_grad_enabled(True)


class _NoGradSwallowsExceptions(ref.no_grad):
    def __exit__(self, *exc):
        set_grad_enabled(self._was_enabled)
        return True


class _NoGradSharedState(ref.no_grad):
    """Keeps the previous state on the class, so an inner block overwrites what the outer one saved."""

    def __enter__(self):
        type(self).was_enabled = ref.is_grad_enabled()
        set_grad_enabled(False)

    def __exit__(self, *exc):
        set_grad_enabled(type(self).was_enabled)


class _NoGradRestoresOnlyWithoutError(ref.no_grad):
    def __exit__(self, exc_type, *rest):
        if exc_type is None:
            set_grad_enabled(self._was_enabled)


class _NoGradSavesStateAtCreation(ref.no_grad):
    """Saves the previous state in __init__, when the object is made, not when the block is entered."""

    def __init__(self):
        self._was_enabled = ref.is_grad_enabled()

    def __enter__(self):
        set_grad_enabled(False)


# Module: each case builds a small model on the learner's Module class and lists what named_parameters finds.
def _module_tree(module_cls, layout):
    def new(**attributes):
        module = type("Model", (module_cls,), {})()
        for name, value in attributes.items():
            setattr(module, name, value)
        return module

    def p(*shape):
        return ref.Parameter(np.arange(float(np.prod(shape))).reshape(shape))

    if layout == "one layer":
        return new(weight=p(3, 2), bias=p(3))
    if layout == "two layers":
        return new(layer1=new(weight=p(4, 2), bias=p(4)), layer2=new(weight=p(1, 4), bias=p(1)))
    if layout == "not parameters":
        return new(
            weight=p(2, 2),
            bias=None,
            mask=ref.Tensor(np.ones(2)),
            scale=2.0,
            name="layer",
            frozen=ref.Tensor(np.ones(3), requires_grad=True),
        )
    if layout == "own parameter set after a submodule":
        return new(layer=new(weight=p(2, 2)), scale=p(1))
    if layout == "three levels":
        return new(encoder=new(block=new(weight=p(2, 3), inner=new(bias=p(2)))), head=new(weight=p(1, 2)))
    if layout == "tied weights":
        shared = p(5, 3)
        return new(embed=new(weight=shared), hidden=new(weight=p(3, 3)), unembed=new(weight=shared))
    if layout == "a parameter replaced":
        model = new(weight=p(2, 2), bias=p(2))
        model.weight = p(4, 4)
        return model
    if layout == "more submodules than a typical loop bound":
        return new(**{f"block{i}": new(weight=p(1, i + 1)) for i in range(12)})
    raise ValueError(layout)


def _module_cases(gen):
    yield Case(("one layer",), "weight and bias", expected=["weight (3, 2)", "bias (3,)"])
    yield Case(
        ("two layers",),
        "two layers",
        expected=["layer1.weight (4, 2)", "layer1.bias (4,)", "layer2.weight (1, 4)", "layer2.bias (1,)"],
    )
    yield Case(
        ("not parameters",),
        "bias None, plain Tensors (one requiring grad), a float and a string",
        expected=["weight (2, 2)"],
    )
    yield Case(
        ("own parameter set after a submodule",),
        "the module's own Parameter is set after its submodule",
        expected=["scale (1,)", "layer.weight (2, 2)"],
    )
    yield Case(
        ("three levels",),
        "modules three levels deep",
        expected=["encoder.block.weight (2, 3)", "encoder.block.inner.bias (2,)", "head.weight (1, 2)"],
    )
    yield Case(
        ("tied weights",),
        "one Parameter held by two submodules (tied embedding and unembedding)",
        expected=["embed.weight (5, 3)", "hidden.weight (3, 3)"],
    )
    yield Case(
        ("a parameter replaced",),
        "weight set twice: only the Parameter it holds now",
        expected=["weight (4, 4)", "bias (2,)"],
    )
    yield Case(
        ("two layers",),
        'with prefix="model."',
        kwargs={"prefix": "model."},
        expected=[
            "model.layer1.weight (4, 2)",
            "model.layer1.bias (4,)",
            "model.layer2.weight (1, 4)",
            "model.layer2.bias (1,)",
        ],
    )
    yield Case(
        ("more submodules than a typical loop bound",),
        "twelve submodules",
        expected=[f"block{i}.weight (1, {i + 1})" for i in range(12)],
    )


def _compare_listing(expected, got):
    """Name the missing and unexpected entries of named_parameters() before comparing the order."""
    if isinstance(got, list) and all(isinstance(g, str) for g in got):
        missing, extra = [e for e in expected if e not in got], [g for g in got if g not in expected]
        if missing or extra:
            raise Mismatch(f"named_parameters(): missing {missing or 'none'}; unexpected {extra or 'none'}")
        if got != expected:
            raise Mismatch(
                f"named_parameters(): the right Parameters in the wrong order: expected {expected}, got {got}"
            )
    compare(expected, got, atol=0.0, rtol=0.0)


def _run_module(cls, case):
    model = _module_tree(cls, case.args[0])
    found = model.named_parameters(**case.kwargs)
    if found is None:
        return None
    found = list(found)
    listed = []
    for item in found:
        if not (isinstance(item, tuple) and len(item) == 2):
            raise Mismatch(f"named_parameters must yield (name, Parameter) pairs, got {type(item).__name__}")
        name, param = item
        path = str(name).removeprefix(case.kwargs.get("prefix", ""))
        owner = model
        for attribute in path.split("."):
            owner = getattr(owner, attribute, None)
        note = (
            " (not a Parameter)"
            if not isinstance(param, ref.Parameter)
            else ""
            if owner is param
            else " (not the Parameter at that path)"
        )
        listed.append(f"{name} {tuple(np.shape(getattr(param, 'array', None)))}{note}")
    unnamed = list(model.parameters())
    if [id(p) for p in unnamed] != [id(p) for _, p in found]:
        raise Mismatch("parameters() must give the same Parameters as named_parameters(), in the same order")
    return listed


class _ModuleOwnOnly(ref.Module):
    def named_parameters(self, prefix=""):
        return ((prefix + n, v) for n, v in vars(self).items() if isinstance(v, ref.Parameter))


class _ModuleNoDeduplication(ref.Module):
    def named_parameters(self, prefix=""):
        attributes = list(vars(self).items())
        yield from ((prefix + n, v) for n, v in attributes if isinstance(v, ref.Parameter))
        for n, v in attributes:
            if isinstance(v, ref.Module):
                yield from _ModuleNoDeduplication.named_parameters(v, prefix + n + ".")


class _ModuleAttributeOrder(ref.Module):
    """One pass over the attributes: a submodule's Parameters come before Parameters set after it."""

    def named_parameters(self, prefix=""):
        for n, v in vars(self).items():
            if isinstance(v, ref.Parameter):
                yield prefix + n, v
            elif isinstance(v, ref.Module):
                yield from _ModuleAttributeOrder.named_parameters(v, prefix + n + ".")


class _ModuleLosesOuterPrefix(ref.Module):
    """Recursing with only the attribute's name as the prefix, so names deeper than two levels lose the start."""

    def named_parameters(self, prefix=""):
        attributes = list(vars(self).items())
        yield from ((prefix + n, v) for n, v in attributes if isinstance(v, ref.Parameter))
        for n, v in attributes:
            if isinstance(v, ref.Module):
                yield from _ModuleLosesOuterPrefix.named_parameters(v, n + ".")


class _ModuleEveryTensor(ref.Module):
    """Takes every Tensor attribute for a Parameter."""

    def named_parameters(self, prefix=""):
        attributes = list(vars(self).items())
        yield from ((prefix + n, v) for n, v in attributes if isinstance(v, ref.Tensor))
        for n, v in attributes:
            if isinstance(v, ref.Module):
                yield from _ModuleEveryTensor.named_parameters(v, prefix + n + ".")


class _ModuleParametersStopAtTopLevel(ref.Module):
    def parameters(self):
        return (v for v in vars(self).values() if isinstance(v, ref.Parameter))


# ----------------------------------------------------------------------------- topological sort and backprop


def _graph_leaves(case):
    """Engine leaves for a graph case: one per tensor in case.args, requiring grad as kwargs say."""
    requires = case.kwargs.get("requires", (True,) * len(case.args))
    return [ref.Tensor(_np(t).copy(), requires_grad=r) for t, r in zip(case.args, requires)]


# Graphs written with methods that engine Tensors and torch tensors share, so torch can give the answers.
GRAPHS = {
    "chain": lambda x: ((x * 2.0).exp() + 1.0).log().sum(),
    "x used twice": lambda x: (x * x + x).sum(),
    "diamond": lambda x, y: ((x * y).exp() + (x * y) * y).sum(),
    "two layers": lambda x, w, v: ((x @ w).relu() @ v).sum(),
    "broadcast and reshape": lambda x, b: ((x + b) * b).reshape(6, 2).permute(1, 0).sum(dim=1).exp().sum(),
    "long and short paths": lambda x: (((x.exp() * 0.5).exp() * 0.5).exp() + x).sum(),
    "non-scalar end": lambda x, y: x * y + y,
    "end is a leaf": lambda x: x,
}


def _graph_case(gen, name, shapes, label=None, requires=None, end_grad=False, initial=None):
    args = tuple(_randn(gen, *s, scale=0.5) for s in shapes)
    kwargs = {"graph": name}
    if requires:
        kwargs["requires"] = requires
    if end_grad:
        with torch.no_grad():
            kwargs["end_grad"] = _randn(gen, *GRAPHS[name](*args).shape)
    if initial is not None:
        kwargs["initial_grad"] = initial
    return Case(args, label or name, expected=_torch_grads(args, kwargs), kwargs=kwargs)


def _torch_grads(args, kwargs):
    requires = kwargs.get("requires", (True,) * len(args))
    leaves = [a.clone().requires_grad_(r) for a, r in zip(args, requires)]
    if "initial_grad" in kwargs:
        leaves[0].grad = kwargs["initial_grad"].clone()
    out = GRAPHS[kwargs["graph"]](*leaves)
    out.backward(kwargs.get("end_grad", torch.ones_like(out)))
    return _named_grads(kwargs["graph"], [leaf.grad for leaf in leaves])


NO_GRAD = "no .grad (None)"


def _named_grads(graph, grads):
    """{"x.grad": ..., "y.grad": ...}, named after the graph's inputs, so a message says whose gradient is off."""
    names = inspect.signature(GRAPHS[graph]).parameters
    return {f"{name}.grad": NO_GRAD if g is None else g for name, g in zip(names, grads)}


def _compare_named(expected, got):
    """The harness's comparison, after saying plainly when a gradient is missing or should not exist."""
    if isinstance(expected, dict) and isinstance(got, dict):
        for key, e in expected.items():
            g = got.get(key)
            if isinstance(e, str) and not isinstance(g, str):
                raise Mismatch(f"{key} should be None (that tensor does not require grad), but it holds an array")
            if isinstance(g, str) and not isinstance(e, str):
                raise Mismatch(f"{key} is None: no gradient reached it")
    compare(expected, got, atol=1e-8, rtol=1e-6)


def _backprop_cases(gen):
    yield _graph_case(gen, "chain", [(4,)])
    yield _graph_case(gen, "x used twice", [(3, 2)], "x used twice: the contributions add up")
    yield _graph_case(gen, "diamond", [(3,), (3,)])
    yield _graph_case(gen, "diamond", [(3,), (3,)], "y is a constant (requires_grad=False)", requires=(True, False))
    yield _graph_case(gen, "two layers", [(4, 3), (3, 5), (5, 2)])
    yield _graph_case(gen, "broadcast and reshape", [(3, 4), (4,)])
    yield _graph_case(gen, "long and short paths", [(2, 2)])
    yield _graph_case(
        gen, "non-scalar end", [(2, 3), (2, 3)], "a non-scalar end node with end_grad given", end_grad=True
    )
    yield _graph_case(gen, "end is a leaf", [(3,)], "the end node is itself a leaf")
    yield _graph_case(
        gen,
        "x used twice",
        [(2,)],
        "x already holds a .grad: backprop adds to it",
        initial=torch.tensor([1.0, -1.0], dtype=D),
    )


def _run_backprop(impl, case):
    leaves = _graph_leaves(case)
    if "initial_grad" in case.kwargs:
        leaves[0].grad = ref.Tensor(_np(case.kwargs["initial_grad"]).copy())
    out = GRAPHS[case.kwargs["graph"]](*leaves)
    end_grad = case.kwargs.get("end_grad")
    impl(out, None if end_grad is None else ref.Tensor(_np(end_grad).copy()), back_funcs=ref.BACK_FUNCS)
    grads = [None if leaf.grad is None else _torch(leaf.grad.array) for leaf in leaves]
    return _named_grads(case.kwargs["graph"], grads)


def _backprop_overwrites(end_node, end_grad=None, back_funcs=None):
    """Sets each contribution instead of adding: a tensor used twice keeps only one of them."""
    grads = {id(end_node): np.ones_like(end_node.array) if end_grad is None else end_grad.array}
    for node in reversed(ref.topological_sort(end_node)):
        grad_out = grads[id(node)]
        if node.is_leaf:
            if node.requires_grad:
                node.grad = ref.Tensor(grad_out)
            continue
        for argnum, parent in node.recipe.parents.items():
            grads[id(parent)] = back_funcs.get(node.recipe.op, argnum)(grad_out, node.array, *node.recipe.args)


def _backprop_first_gradient_only(end_node, end_grad=None, back_funcs=None):
    """Recurses depth-first and visits each tensor once, with the first gradient that reaches it."""
    seen = set()

    def push(node, grad_out):
        if id(node) in seen:
            return
        seen.add(id(node))
        if node.is_leaf:
            if node.requires_grad:
                node.grad = ref.Tensor(grad_out) if node.grad is None else ref.Tensor(node.grad.array + grad_out)
            return
        for argnum, parent in node.recipe.parents.items():
            push(parent, back_funcs.get(node.recipe.op, argnum)(grad_out, node.array, *node.recipe.args))

    push(end_node, np.ones_like(end_node.array) if end_grad is None else end_grad.array)


def _backprop_replaces_grad(end_node, end_grad=None, back_funcs=None):
    """Replaces a leaf's existing .grad instead of adding to it."""
    for leaf in ref.topological_sort(end_node):
        if leaf.is_leaf:
            leaf.grad = None
    ref.backprop(end_node, end_grad, back_funcs)


def _topological_sort_cases(gen):
    for name, shapes in [
        ("chain", [(3,)]),
        ("x used twice", [(2,)]),
        ("diamond", [(3,), (3,)]),
        ("two layers", [(2, 3), (3, 4), (4, 2)]),
        ("broadcast and reshape", [(3, 4), (4,)]),
        ("long and short paths", [(2,)]),
        ("end is a leaf", [(2,)]),
    ]:
        yield Case(tuple(_randn(gen, *s, scale=0.5) for s in shapes), name, expected=VALID, kwargs={"graph": name})
    yield Case(
        (_randn(gen, 3), _randn(gen, 3)),
        "diamond, y a constant (not in the graph)",
        expected=VALID,
        kwargs={"graph": "diamond", "requires": (True, False)},
    )


VALID = "a valid order"


def _run_topological_sort(impl, case):
    out = GRAPHS[case.kwargs["graph"]](*_graph_leaves(case))
    order = impl(out)
    if order is None:
        return None
    # Every node reachable through recipes, found independently.
    reachable, stack = {}, [out]
    while stack:
        node = stack.pop()
        if id(node) not in reachable:
            reachable[id(node)] = node
            stack.extend(node.recipe.parents.values() if node.recipe else [])
    ids = [id(n) for n in order]
    if len(ids) != len(set(ids)):
        return "a tensor appears more than once"
    if set(ids) != set(reachable):
        return f"{len(set(ids) - set(reachable))} extra and {len(set(reachable) - set(ids))} missing tensors"
    position = {i: k for k, i in enumerate(ids)}
    for node in order:
        for parent in node.recipe.parents.values() if node.recipe else []:
            if position[id(parent)] > position[id(node)]:
                return f"a tensor (op {node.recipe.op!r}) comes before its parent"
    if ids[-1] != id(out):
        return "the end node is not last"
    return VALID


def _topo_end_first(end_node):
    return ref.topological_sort(end_node)[::-1]


def _topo_no_visited_set(end_node):
    order = []

    def visit(node):
        for parent in node.recipe.parents.values() if node.recipe else []:
            visit(parent)
        order.append(node)

    visit(end_node)
    return order


def _topo_reversed_bfs(end_node):
    """Breadth-first from the end, reversed: wrong when a tensor is reached by paths of different lengths."""
    order, seen, queue = [], {id(end_node)}, [end_node]
    while queue:
        node = queue.pop(0)
        order.append(node)
        for parent in node.recipe.parents.values() if node.recipe else []:
            if id(parent) not in seen:
                seen.add(id(parent))
                queue.append(parent)
    return order[::-1]


# ----------------------------------------------------------------------------- Linear, cross_entropy, SGD


def _linear_cases(gen):
    x = torch.tensor([[1.0, 2.0]], dtype=D)
    weight, bias = torch.tensor([[1.0, 0.0], [1.0, -1.0], [0.5, 0.5]], dtype=D), torch.tensor([0.0, 1.0, 2.0], dtype=D)
    yield Case(
        (x, torch.ones(1, 3, dtype=D), weight, bias),
        "weight [[1, 0], [1, -1], [0.5, 0.5]], bias (0, 1, 2)",
        init=(2, 3),
        expected={
            "output": torch.tensor([[1.0, 0.0, 3.5]], dtype=D),
            "weight.grad": torch.ones(3, 1, dtype=D) * x,
            "bias.grad": torch.ones(3, dtype=D),
            "x.grad": weight.sum(0, keepdim=True),
        },
    )
    for (n, i, o), bias_on in [((5, 4, 3), True), ((1, 6, 2), True), ((8, 3, 3), True), ((4, 5, 2), False)]:
        x, grad_out = _randn(gen, n, i), _randn(gen, n, o)
        weight, bias = _randn(gen, o, i), _randn(gen, o) if bias_on else None
        label = f"{n} inputs of size {i}, {o} outputs" + ("" if bias_on else ", bias=False")
        yield Case(
            (x, grad_out, weight) + ((bias,) if bias_on else ()),
            label,
            init=(i, o, bias_on),
            expected=_torch_linear(x, grad_out, weight, bias),
        )


def _torch_linear(x, grad_out, weight, bias):
    x, weight = x.clone().requires_grad_(), weight.clone().requires_grad_()
    bias = bias.clone().requires_grad_() if bias is not None else None
    out = F.linear(x, weight, bias)
    out.backward(grad_out)
    grads = {"weight.grad": weight.grad} | ({"bias.grad": bias.grad} if bias is not None else {}) | {"x.grad": x.grad}
    return {"output": out.detach()} | grads


def _run_linear(cls, case):
    module = cls(*case.init)
    # Read by attribute, not named_parameters(): this check is of Linear, not of Module's parameter discovery.
    params = {k: getattr(module, k) for k in ("weight", "bias") if isinstance(getattr(module, k, None), ref.Parameter)}
    expected = {name: tuple(value.shape) for name, value in zip(["weight", "bias"], case.args[2:])}
    got = {k: tuple(p.shape) for k, p in params.items()}
    if got != expected:
        raise Mismatch(f"parameters: expected {expected}, got {got} (names and shapes must match)")
    for name, value in zip(["weight", "bias"], case.args[2:]):
        params[name].array[...] = _np(value)
    x = ref.Tensor(_np(case.args[0]).copy(), requires_grad=True)
    out = module(x)
    if not isinstance(out, ref.Tensor):
        raise Mismatch(f"forward returned {type(out).__name__}, not an engine Tensor")
    ref.backprop(out, ref.Tensor(_np(case.args[1]).copy()), back_funcs=ref.BACK_FUNCS)
    grads = {f"{k}.grad": params[k].grad for k in ["weight", "bias"] if k in params} | {"x.grad": x.grad}
    return {"output": _torch(out.array)} | {k: NO_GRAD if g is None else _torch(g.array) for k, g in grads.items()}


def _linear_init_check(cls):
    np.random.seed(0)
    module = cls(400, 300)
    weight, bias = module.weight.array, module.bias.array
    bound = 1 / math.sqrt(400)
    assert isinstance(module.weight, ref.Parameter) and isinstance(module.bias, ref.Parameter), (
        "weight and bias must be Parameters, so that parameters() finds them"
    )
    assert np.abs(weight).max() <= bound and np.abs(bias).max() <= bound, (
        f"initial weights and biases must lie in [-1/sqrt(in_features), 1/sqrt(in_features)] = [-{bound}, {bound}]"
    )
    # Uniform on [-b, b] has standard deviation b / sqrt(3); with 120,000 and 300 draws, 10% is a wide margin.
    assert abs(weight.std() - bound / math.sqrt(3)) < 0.1 * bound, (
        "initial weights should be uniform on [-1/sqrt(in_features), 1/sqrt(in_features)], spread over the whole range"
    )
    assert abs(bias.std() - bound / math.sqrt(3)) < 0.1 * bound, (
        "the initial bias should be uniform on [-1/sqrt(in_features), 1/sqrt(in_features)] too, spread over the range"
    )
    assert cls(3, 2, bias=False).bias is None, "with bias=False, set self.bias = None"


class _LinearUsesArrays(ref.Linear):
    def forward(self, x):
        return ref.Tensor(x.array @ self.weight.array.T + self.bias.array)


class _LinearWeightInByOut(ref.Module):
    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        bound = 1 / np.sqrt(in_features)
        self.weight = ref.Parameter(np.random.uniform(-bound, bound, (in_features, out_features)))
        self.bias = ref.Parameter(np.random.uniform(-bound, bound, out_features)) if bias else None

    def forward(self, x):
        out = x @ self.weight
        return out + self.bias if self.bias is not None else out


class _LinearNormalInit(ref.Linear):
    def __init__(self, in_features, out_features, bias=True):
        super().__init__(in_features, out_features, bias)
        self.weight = ref.Parameter(np.random.normal(0, 1, (out_features, in_features)))


class _LinearZeroBias(ref.Linear):
    def __init__(self, in_features, out_features, bias=True):
        super().__init__(in_features, out_features, bias)
        if bias:
            self.bias = ref.Parameter(np.zeros(out_features))


class _LinearBoundFromOut(ref.Linear):
    def __init__(self, in_features, out_features, bias=True):
        super().__init__(in_features, out_features, bias)
        bound = 1 / np.sqrt(out_features)
        self.weight = ref.Parameter(np.random.uniform(-bound, bound, (out_features, in_features)))


def _cross_entropy_cases(gen):
    logits, labels = torch.tensor([[0.0, 0.0], [math.log(3), 0.0]], dtype=D), torch.tensor([0, 0])
    # Row 1: probabilities (1/2, 1/2); row 2: (3/4, 1/4). Loss = (log 2 + log(4/3)) / 2 = log(8/3) / 2.
    yield Case(
        (logits, labels),
        "hand-made: loss log(8/3) / 2",
        expected={
            "loss": torch.tensor(math.log(8 / 3) / 2, dtype=D),
            "logits.grad": torch.tensor([[-0.25, 0.25], [-0.125, 0.125]], dtype=D),
        },
    )
    for batch, classes, scale in [(5, 3, 1.0), (8, 10, 2.0), (1, 4, 1.0), (6, 2, 0.5)]:
        yield _ce_case(
            _randn(gen, batch, classes, scale=scale),
            torch.randint(classes, (batch,), generator=gen),
            f"{batch} rows, {classes} classes",
        )
    yield _ce_case(_randn(gen, 4, 5) + 1000.0, torch.randint(5, (4,), generator=gen), "logits near 1000: exp overflows")
    # The true class of row 0 is 800 below the row's maximum: its probability, e^-800, underflows to 0.
    far = _randn(gen, 3, 4)
    far[0, 2] = far[0].max() + 800.0
    yield _ce_case(
        far, torch.tensor([0, 1, 3]), "row 0's true class is 800 below its maximum: that row's loss is about 800"
    )


def _ce_case(logits, labels, label):
    leaf = logits.clone().requires_grad_()
    loss = F.cross_entropy(leaf, labels)
    loss.backward()
    return Case((logits, labels), label, expected={"loss": loss.detach(), "logits.grad": leaf.grad})


def _run_cross_entropy(impl, case):
    logits = ref.Tensor(_np(case.args[0]).copy(), requires_grad=True)
    loss = impl(logits, _np(case.args[1]).copy())
    if loss is None:
        return None
    if not isinstance(loss, ref.Tensor):
        raise Mismatch(
            f"the loss must be an engine Tensor, built with Tensor operations so that the logits get a "
            f"gradient; got {type(loss).__name__}"
        )
    if loss.shape != ():
        raise Mismatch(f"the loss must be a 0-d Tensor (the mean over the batch), got shape {loss.shape}")
    ref.backprop(loss, back_funcs=ref.BACK_FUNCS)
    return {"loss": _torch(loss.array), "logits.grad": NO_GRAD if logits.grad is None else _torch(logits.grad.array)}


def _ce_no_shift(logits, true_labels):
    log_probs = logits - logits.exp().sum(dim=-1, keepdim=True).log()
    return -(log_probs * np.eye(logits.shape[1])[true_labels]).sum() / logits.shape[0]


def _ce_sum(logits, true_labels):
    return ref.cross_entropy(logits, true_labels) * logits.shape[0]


def _ce_log_of_true_exp(logits, true_labels):
    """Log of the sum of exps minus the log of the true class's exp: that exp underflows to 0 far below the max."""
    shifted = logits - logits.array.max(axis=-1, keepdims=True)
    exps = shifted.exp()
    true_exp = (exps * np.eye(logits.shape[1])[true_labels]).sum(dim=-1)
    return (exps.sum(dim=-1).log() - true_exp.log()).sum() / logits.shape[0]


def _ce_arrays(logits, true_labels):
    a = logits.array - logits.array.max(axis=-1, keepdims=True)
    log_probs = a - np.log(np.exp(a).sum(axis=-1, keepdims=True))
    return ref.Tensor(-log_probs[np.arange(len(a)), true_labels].mean())


SGD_STEPS = 5


def _optimizer_sweep(gen, all_kwargs, optimizer):
    """One case per kwargs: two random parameters, (3, 4) and (5,), pulled towards random targets."""
    for kwargs in all_kwargs:
        params, targets = (_randn(gen, 3, 4), _randn(gen, 5)), (_randn(gen, 3, 4), _randn(gen, 5))
        label = ", ".join(f"{k}={v}" for k, v in kwargs.items())
        yield Case(
            params + targets, label, kwargs=kwargs, expected=_torch_sgd(params, targets, kwargs, optimizer=optimizer)
        )


def _grads_until_case(params, targets, kwargs, optimizer):
    """The second parameter gets gradients at the first two steps only (a layer frozen, or unused, after that)."""
    return Case(
        params + targets,
        "the second parameter has no .grad after step 2",
        kwargs=kwargs | {"grads_until": 2},
        expected=_torch_sgd(params, targets, kwargs, grads_until=2, optimizer=optimizer),
    )


def _sgd_cases(gen):
    yield from _optimizer_sweep(
        gen,
        [
            dict(lr=0.1),
            dict(lr=0.05, momentum=0.9),
            dict(lr=0.1, weight_decay=0.1),
            dict(lr=0.02, momentum=0.5, weight_decay=0.05),
        ],
        torch.optim.SGD,
    )
    params, targets = (_randn(gen, 3), _randn(gen, 2)), (_randn(gen, 3), _randn(gen, 2))
    yield _grads_until_case(params, targets, dict(lr=0.1, momentum=0.9, weight_decay=0.1), torch.optim.SGD)
    params, targets = (torch.tensor([1.0], dtype=D),), (torch.tensor([0.0], dtype=D),)
    # Gradient 2 p each step; with lr 0.25 every step halves p: 1 / 2^5.
    yield Case(
        params + targets,
        "lr=0.25 on (p - 0)^2: p halves each step",
        kwargs=dict(lr=0.25),
        expected={"parameter 0": torch.tensor([1 / 32], dtype=D)},
    )


def _has_grad(index, step, grads_until, grads_from=0):
    """Whether parameter `index` gets a gradient at `step`: all do, except that parameters after the first get
    one only from step `grads_from` on and, when `grads_until` is given, stop getting one at that step."""
    return index == 0 or (step >= grads_from and (grads_until is None or step < grads_until))


def _torch_sgd(params, targets, kwargs, grads_until=None, grads_from=0, optimizer=torch.optim.SGD, steps=SGD_STEPS):
    params = [p.clone().requires_grad_() for p in params]
    opt = optimizer(params, **kwargs)
    for step in range(steps):
        opt.zero_grad()
        sum(
            ((p - t) ** 2).sum()
            for i, (p, t) in enumerate(zip(params, targets))
            if _has_grad(i, step, grads_until, grads_from)
        ).backward()
        opt.step()
    return {f"parameter {i}": p.detach() for i, p in enumerate(params)}


def _run_sgd(cls, case):
    half = len(case.args) // 2
    params = [ref.Parameter(_np(p).copy()) for p in case.args[:half]]
    targets = [_np(t) for t in case.args[half:]]
    kwargs = dict(case.kwargs)
    grads_until, grads_from = kwargs.pop("grads_until", None), kwargs.pop("grads_from", 0)
    steps = kwargs.pop("steps", SGD_STEPS)
    opt = cls(iter(params), **kwargs)  # a generator, as model.parameters() gives
    for step in range(steps):
        opt.zero_grad()
        if any(p.grad is not None for p in params):
            raise Mismatch(
                "after zero_grad() a parameter still has a .grad: zero_grad must set p.grad = None on the "
                "parameters you were given, and step must update those same objects in place"
            )
        for i, (p, t) in enumerate(zip(params, targets)):
            if _has_grad(i, step, grads_until, grads_from):
                p.grad = ref.Tensor(2 * (p.array - t))
        opt.step()
    return {f"parameter {i}": _torch(p.array) for i, p in enumerate(params)}


class _SGDRebinds(ref.SGD):
    def step(self):
        for i, p in enumerate(self.params):
            self.params[i] = ref.Parameter(p.array - self.lr * (p.grad.array + self.weight_decay * p.array))


class _SGDDampened(ref.SGD):
    """Momentum as an average, b = m b + (1 - m) g: a different (smaller-step) method."""

    def step(self):
        for i, p in enumerate(self.params):
            g = p.grad.array + self.weight_decay * p.array
            if self.momentum:
                b = self.buffers[i] if self.buffers[i] is not None else np.zeros_like(g)
                self.buffers[i] = g = self.momentum * b + (1 - self.momentum) * g
            p.array -= self.lr * g


class _SGDDecayAfterMomentum(ref.SGD):
    def step(self):
        for i, p in enumerate(self.params):
            g = p.grad.array
            if self.momentum:
                self.buffers[i] = g if self.buffers[i] is None else self.momentum * self.buffers[i] + g
                g = self.buffers[i]
            p.array -= self.lr * (g + self.weight_decay * p.array)


class _SGDNoneGradIsZero(ref.SGD):
    """Treats a missing gradient as zero: weight decay and momentum keep moving a parameter torch leaves alone."""

    def step(self):
        for i, p in enumerate(self.params):
            g = (0.0 if p.grad is None else p.grad.array) + self.weight_decay * p.array
            if self.momentum:
                self.buffers[i] = g if self.buffers[i] is None else self.momentum * self.buffers[i] + g
                g = self.buffers[i]
            p.array -= self.lr * g


class _SGDAssumesGrads(ref.SGD):
    """The reference's step without the check for a missing gradient."""

    def step(self):
        for i, p in enumerate(self.params):
            g = p.grad.array + self.weight_decay * p.array
            if self.momentum:
                self.buffers[i] = g if self.buffers[i] is None else self.momentum * self.buffers[i] + g
                g = self.buffers[i]
            p.array -= self.lr * g


class _SGDKeepsGrads(ref.SGD):
    def zero_grad(self):
        pass


class _SGDListsGeneratorTwice(ref.SGD):
    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0):
        super().__init__([], lr, momentum, weight_decay)
        self._source = params

    def step(self):
        self.params = list(self._source)  # empty after the first step: a generator is used up
        self.buffers = self.buffers + [None] * (len(self.params) - len(self.buffers))
        super().step()


def _adam_cases(gen):
    # One step from p = (1, -2) towards 0: gradient (2, -4). The bias-corrected moments are g and g^2, so the
    # step is lr * g / |g| (up to eps): each entry moves by exactly lr against its gradient's sign.
    params, targets = (torch.tensor([1.0, -2.0], dtype=D),), (torch.tensor([0.0, 0.0], dtype=D),)
    yield Case(
        params + targets,
        "one step, lr=0.1: every entry moves by lr",
        kwargs=dict(lr=0.1, steps=1),
        expected={"parameter 0": torch.tensor([0.9, -1.9], dtype=D)},
    )
    yield from _optimizer_sweep(
        gen,
        [
            dict(lr=0.1),
            dict(lr=0.01, betas=(0.8, 0.99)),
            dict(lr=0.05, weight_decay=0.1),
            dict(lr=0.1, eps=0.5),
        ],
        torch.optim.Adam,
    )
    # Tiny gradients: Adam's step does not shrink with the gradient's scale (until eps takes over).
    params, targets = (_randn(gen, 4),), (_randn(gen, 4),)
    params = (targets[0] + 1e-6 * params[0],)
    yield Case(
        params + targets,
        "gradients near 1e-6: the step is still about lr",
        kwargs=dict(lr=0.01),
        expected=_torch_sgd(params, targets, dict(lr=0.01), optimizer=torch.optim.Adam),
    )
    params, targets = (_randn(gen, 3), _randn(gen, 2)), (_randn(gen, 3), _randn(gen, 2))
    kwargs = dict(lr=0.1, weight_decay=0.1)
    yield _grads_until_case(params, targets, kwargs, torch.optim.Adam)
    yield Case(
        params + targets,
        "the second parameter gets its first .grad at step 3 (a layer unfrozen late)",
        kwargs=kwargs | {"grads_from": 2},
        expected=_torch_sgd(params, targets, kwargs, grads_from=2, optimizer=torch.optim.Adam),
    )


class _AdamNoBiasCorrection(ref.Adam):
    def step(self):
        beta1, beta2 = self.betas
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = p.grad.array + self.weight_decay * p.array
            self.m[i] = beta1 * self.m[i] + (1 - beta1) * g
            self.v[i] = beta2 * self.v[i] + (1 - beta2) * g**2
            p.array -= self.lr * self.m[i] / (np.sqrt(self.v[i]) + self.eps)


class _AdamEpsInsideRoot(ref.Adam):
    def step(self):
        beta1, beta2 = self.betas
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = p.grad.array + self.weight_decay * p.array
            self.steps[i] += 1
            self.m[i] = beta1 * self.m[i] + (1 - beta1) * g
            self.v[i] = beta2 * self.v[i] + (1 - beta2) * g**2
            m_hat, v_hat = self.m[i] / (1 - beta1 ** self.steps[i]), self.v[i] / (1 - beta2 ** self.steps[i])
            p.array -= self.lr * m_hat / np.sqrt(v_hat + self.eps)


class _AdamSharedStepCount(ref.Adam):
    """Counts steps once for the optimizer, so a parameter that joins late gets the wrong bias correction."""

    def step(self):
        self.steps = [max(self.steps, default=0)] * len(self.params)
        counted = list(self.steps)
        super().step()
        self.steps = [n + 1 for n in counted]


class _AdamDecoupledDecay(ref.Adam):
    """AdamW's decay (shrinking the weights directly) instead of torch.optim.Adam's (adding it to the gradient)."""

    def step(self):
        decay, self.weight_decay = self.weight_decay, 0.0
        for p in self.params:
            if p.grad is not None:
                p.array -= self.lr * decay * p.array
        super().step()
        self.weight_decay = decay


class _AdamMovesWithoutGrad(ref.Adam):
    """Takes a missing gradient as zero, so the moment estimates keep moving a parameter torch leaves alone."""

    def step(self):
        for p in self.params:
            if p.grad is None:
                p.grad = ref.Tensor(np.zeros_like(p.array))
        super().step()


class _AdamCountsLate(ref.Adam):
    """Corrects the bias with the step count before counting this step: at the first step it divides by 0."""

    def step(self):
        beta1, beta2 = self.betas
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = p.grad.array + self.weight_decay * p.array
            self.m[i] = beta1 * self.m[i] + (1 - beta1) * g
            self.v[i] = beta2 * self.v[i] + (1 - beta2) * g**2
            with np.errstate(divide="ignore", invalid="ignore"):
                m_hat, v_hat = self.m[i] / (1 - beta1 ** self.steps[i]), self.v[i] / (1 - beta2 ** self.steps[i])
                p.array -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)
            self.steps[i] += 1


# ----------------------------------------------------------------------------- the checks


def _back_exercise(reference, cases, hint, wrong, forward=None, argnum=0):
    return Exercise(
        reference,
        cases,
        hint=hint,
        wrong=wrong,
        run=_run_back,
        oracle=_autograd_oracle(forward, argnum) if forward else None,
        atol=1e-8,
        rtol=1e-6,
    )


_EXERCISES = [
    _back_exercise(
        ref.log_back,
        _elementwise_cases(torch.log, positive=True, hand=_LOG_HAND, edge=_LOG_EDGE),
        "Look at which array you divide by (out holds log x, not x), at whether grad_out scales the "
        "result, and at tiny x: the answer there is huge, and nothing should be added to x.",
        {
            "divides by out (log x), not by x": _log_back_over_out,
            "ignores grad_out": _log_back_no_grad_out,
            "adds a small epsilon to x, which is wrong for tiny x": _log_back_epsilon,
        },
        torch.log,
    ),
    Exercise(
        ref.unbroadcast,
        _unbroadcast_cases,
        run=_run_back,
        atol=1e-8,
        rtol=1e-6,
        hint="The result must have exactly `shape`. Two kinds of axes need a sum: leading axes that shape "
        "lacks (they disappear) and axes where shape has 1 (they stay, with size 1). Sum, don't average.",
        wrong={
            "sums only the added leading axes, not the stretched size-1 ones": _unbroadcast_leading_only,
            "sums the stretched size-1 axes without keeping them": _unbroadcast_drops_size_one_axes,
            "averages instead of summing": _unbroadcast_mean,
        },
    ),
    _back_exercise(
        ref.multiply_back0,
        _multiply_cases(0),
        "The result must have x's shape (unbroadcast it); its values come from the other factor, which "
        "may be a plain Python number, and must not depend on x's own values (try an x with zeros).",
        {
            "multiplies by x itself instead of the other factor": _multiply_back0_wrong_factor,
            "returns the broadcast shape, not x's (no unbroadcast)": _multiply_back0_no_unbroadcast,
            "recovers y as out / x, which fails where x is 0": _multiply_back0_other_from_out,
        },
        _mul,
        0,
    ),
    _back_exercise(
        ref.multiply_back1,
        _multiply_cases(1),
        "The result must have y's shape (unbroadcast it); its values come from the other factor, which "
        "may be a plain Python number, and must not depend on y's own values (try a y with zeros).",
        {
            "multiplies by y itself instead of the other factor": _multiply_back1_wrong_factor,
            "returns the broadcast shape, not y's (no unbroadcast)": _multiply_back1_no_unbroadcast,
            "recovers x as out / y, which fails where y is 0": _multiply_back1_other_from_out,
        },
        _mul,
        1,
    ),
    Exercise(
        ref.make_op,
        _make_op_cases,
        run=_run_make_op,
        compare=_compare_make_op,
        hint="Look at the output's requires_grad and recipe: a recipe only when recording is on and some "
        "argument is a Tensor that requires grad; parents keyed by the argument's position among all the "
        "arguments, numbers included; recipe.args holding the inputs' own arrays and other values as "
        "given.",
        wrong={
            "makes every Tensor argument a parent, even one that does not require grad": _make_op_all_tensors,
            "records a recipe even when no argument requires grad": _make_op_records_always,
            "keeps the Tensors in recipe.args, where backward functions expect arrays": _make_op_records_tensors,
            "records inside no_grad (never asks whether recording is on)": _make_op_ignores_no_grad,
            "leaves the output's requires_grad False, so later ops record nothing": _make_op_output_no_grad,
            "numbers parents by position among the Tensor arguments only": _make_op_parents_numbered_among_tensors,
            "records copies of the arrays instead of the inputs' own": _make_op_copies_arrays,
        },
    ),
    Exercise(
        ref.no_grad,
        _no_grad_cases,
        run=_run_no_grad,
        hint="On leaving the block, recording must be as it was before this block began (which need not be on), "
        "whether the block ended normally or by an exception, and the exception must still propagate. "
        "Nested blocks each need their own saved state.",
        wrong={
            "switches recording on at exit instead of restoring the previous state": _NoGradSwitchesOnAtExit,
            "swallows an exception raised inside the block": _NoGradSwallowsExceptions,
            "keeps the saved state on the class, shared by nested blocks": _NoGradSharedState,
            "does not restore recording when the block raises": _NoGradRestoresOnlyWithoutError,
            "saves the state when the object is made, not when the block is entered": _NoGradSavesStateAtCreation,
        },
    ),
    Exercise(
        ref.topological_sort,
        _topological_sort_cases,
        run=_with_reference_ops(_run_topological_sort),
        hint="Each tensor must come after all of its parents and appear exactly once, however many paths lead "
        "to it, and the end node must come last. Check your order on the diamond by hand.",
        wrong={
            "end node first (the reverse order)": _topo_end_first,
            "lists a shared tensor once per path to it (no visited set)": _topo_no_visited_set,
            "breadth-first search, reversed": _topo_reversed_bfs,
        },
    ),
    Exercise(
        ref.backprop,
        _backprop_cases,
        run=_with_reference_ops(_run_backprop),
        compare=_compare_named,
        hint="A tensor's gradient must be complete (every use of it counted) before it is passed on to its "
        "parents; two contributions to the same tensor add up, and so does a leaf's existing .grad. Only "
        "leaves that require grad get a .grad.",
        wrong={
            "overwrites instead of adding contributions": _backprop_overwrites,
            "visits each tensor once, with the first gradient to reach it": _backprop_first_gradient_only,
            "replaces a leaf's existing .grad": _backprop_replaces_grad,
        },
    ),
    _back_exercise(
        ref.negative_back,
        _elementwise_cases(torch.neg),
        "Check the sign of your result.",
        {"forgets the sign": _negative_back_identity},
        torch.neg,
    ),
    _back_exercise(
        ref.exp_back,
        _elementwise_cases(torch.exp),
        "Which of the arguments holds exp(x)? And does grad_out scale the result?",
        {"multiplies by x instead of exp(x)": _exp_back_times_x, "ignores grad_out": _exp_back_no_grad_out},
        torch.exp,
    ),
    _back_exercise(
        ref.relu_back,
        _elementwise_cases(torch.relu, hand=_RELU_HAND),
        "Look at the entries where x is exactly 0 (they get no gradient, as in torch) and at whether "
        "grad_out scales the result.",
        {"passes the gradient at x = 0": _relu_back_at_zero, "ignores grad_out": _relu_back_mask_only},
        torch.relu,
    ),
    _back_exercise(
        ref.reshape_back,
        _reshape_cases,
        "The result must have the input's shape (not the `shape` argument, which is the output's), "
        "with the entries in their original order.",
        {
            "reshapes to the output shape": _reshape_back_to_new_shape,
            "reshapes in the wrong (transposed) order": _reshape_back_transposed,
        },
        torch.reshape,
    ),
    _back_exercise(
        ref.permute_back,
        _permute_cases,
        "Permuting your result by `axes` must give grad_out back. Applying `axes` again only works when the "
        "permutation undoes itself: try axes (2, 0, 1).",
        {
            "applies the same permutation again": _permute_back_same_axes,
            "reverses all axes": _permute_back_reversed,
        },
        torch.permute,
    ),
    _back_exercise(
        ref.sum_back,
        _reduction_cases(_torch_sum, _SUM_HAND),
        "The result has x's shape, and along which axis do its values vary? Broadcasting aligns axes from "
        "the right, so with keepdim=False the summed axes must be put back first, all at once (dim may "
        "be a tuple in any order).",
        {
            "broadcasts without restoring the summed axes": _sum_back_no_expand,
            "ignores grad_out": _sum_back_ones,
            "restores the summed axes one at a time, in the order given": _sum_back_axes_in_turn,
        },
        _torch_sum,
    ),
    _back_exercise(
        ref.max_back,
        _reduction_cases(_torch_amax, _MAX_HAND),
        "Only entries exactly equal to their maximum get a gradient (nearly equal is not equal), and "
        "entries that tie share it equally, counted along the reduced axes only.",
        {
            "every tied maximum gets the whole gradient": _max_back_ties_get_all,
            "routes the gradient to every entry, like sum": _max_back_like_sum,
            "the first of tied maxima takes the whole gradient (argmax)": _max_back_first_maximum,
            "treats nearly equal entries as ties (np.isclose)": _max_back_close_counts_as_tie,
            "restores the reduced axes one at a time, in the order given": _max_back_axes_in_turn,
        },
        _torch_amax,
    ),
    _back_exercise(
        ref.matmul2d_back0,
        _matmul_cases(0),
        "The result has x's shape (m, k). Shapes alone do not settle it for square matrices: work out "
        "one entry by hand on the (1, 2) @ (2, 1) case.",
        {
            "forgets to transpose y": _matmul_back0_untransposed,
            "multiplies in the wrong order": _matmul_back0_wrong_order,
        },
        torch.matmul,
        0,
    ),
    _back_exercise(
        ref.matmul2d_back1,
        _matmul_cases(1),
        "The result has y's shape (k, n). Shapes alone do not settle it for square matrices: work out "
        "one entry by hand on the (1, 2) @ (2, 1) case.",
        {
            "forgets to transpose x": _matmul_back1_untransposed,
            "multiplies in the wrong order": _matmul_back1_wrong_order,
        },
        torch.matmul,
        1,
    ),
    Exercise(
        ref.Module,
        _module_cases,
        run=_run_module,
        compare=_compare_listing,
        hint="Which attributes hold Parameters: directly, or inside a Module held by an attribute, at any depth? "
        "Names are paths of attribute names joined by dots, after the prefix; a module's own Parameters "
        "come before its submodules'; a Parameter reachable twice is listed once. Plain Tensors and None "
        "are not Parameters.",
        wrong={
            "does not look inside submodules": _ModuleOwnOnly,
            "lists a shared Parameter once per attribute holding it": _ModuleNoDeduplication,
            "lists a submodule's Parameters before the module's own that were set later": _ModuleAttributeOrder,
            "passes only the attribute's name down, dropping the outer prefix": _ModuleLosesOuterPrefix,
            "takes every Tensor attribute for a Parameter": _ModuleEveryTensor,
            "parameters() finds only the top module's own Parameters": _ModuleParametersStopAtTopLevel,
        },
    ),
    Exercise(
        ref.Linear,
        _linear_cases,
        run=_with_reference_ops(_run_linear),
        extra=_linear_init_check,
        compare=_compare_named,
        hint="weight must be a Parameter of shape (out_features, in_features), bias one of shape (out_features,) "
        "or None; forward must use Tensor operations so that backprop reaches them. Both start uniform "
        "over the whole of [-1/sqrt(in_features), 1/sqrt(in_features)].",
        wrong={
            "computes on .array, so no gradient flows": _LinearUsesArrays,
            "weight stored as (in_features, out_features)": _LinearWeightInByOut,
            "standard normal initialisation": _LinearNormalInit,
            "bias initialised to zeros": _LinearZeroBias,
            "initial bound from out_features, not in_features": _LinearBoundFromOut,
        },
    ),
    Exercise(
        ref.cross_entropy,
        _cross_entropy_cases,
        run=_with_reference_ops(_run_cross_entropy),
        compare=_compare_named,
        hint="Return a 0-d engine Tensor, averaged over the batch, made with Tensor operations so that the "
        "logits get a gradient. Extreme logits (near 1000, or a true class far below its row's maximum) "
        "must give finite answers: no intermediate may overflow, or underflow to 0 before a log.",
        wrong={
            "no max subtraction: overflows for large logits": _ce_no_shift,
            "sums over the batch": _ce_sum,
            "computed on arrays: no gradient": _ce_arrays,
            "takes the log of the true class's exp, which underflows to 0": _ce_log_of_true_exp,
        },
    ),
    Exercise(
        ref.SGD,
        _sgd_cases,
        run=_with_reference_ops(_run_sgd),
        compare=_compare_named,
        hint="Compare with torch.optim.SGD: weight decay joins the gradient before momentum; the first momentum "
        "buffer is the gradient itself (no dampening); arrays are updated in place; a parameter whose "
        ".grad is None is left alone, buffer and all; zero_grad sets .grad to None. The parameters may "
        "arrive as a generator.",
        wrong={
            "rebinds a new Parameter instead of updating in place": _SGDRebinds,
            "momentum as an average, (1 - momentum) * g": _SGDDampened,
            "weight decay added after momentum": _SGDDecayAfterMomentum,
            "zero_grad does nothing": _SGDKeepsGrads,
            "reads the parameter generator twice": _SGDListsGeneratorTwice,
            "keeps moving a parameter that has no gradient": _SGDNoneGradIsZero,
            "fails on a parameter that has no gradient": _SGDAssumesGrads,
        },
    ),
    Exercise(
        ref.Adam,
        _adam_cases,
        run=_with_reference_ops(_run_sgd),
        compare=_compare_named,
        hint="Compare with torch.optim.Adam: weight decay joins the gradient first (as in SGD, not AdamW); "
        "both moment estimates are bias-corrected with that parameter's own count of steps, counting the "
        "current one; eps is added after the square root; a parameter whose .grad is None is left alone, "
        "moments and count included.",
        wrong={
            "no bias correction": _AdamNoBiasCorrection,
            "eps inside the square root": _AdamEpsInsideRoot,
            "one step count for all parameters": _AdamSharedStepCount,
            "decoupled weight decay (AdamW) instead of adding it to the gradient": _AdamDecoupledDecay,
            "keeps moving a parameter that has no gradient": _AdamMovesWithoutGrad,
            "corrects the bias before counting the current step (divides by zero at step 1)": _AdamCountsLate,
        },
    ),
]

# The engine works in NumPy: messages describe the values as arrays, as the learner sees them.
check = Checker("0.4", [dataclasses.replace(exercise, arrays=True) for exercise in _EXERCISES])

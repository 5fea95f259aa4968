"""Checks for 0.4 Backprop.

The engine works on float64 NumPy arrays; the harness compares torch tensors. So every case holds torch
tensors, and each exercise's `run` converts them to arrays (sharing memory, so edits in place still
show), calls the function, and converts the result back. Backward functions are pinned by an oracle
that differentiates the same op with torch autograd; the engine-level exercises (backprop, Linear,
cross_entropy, SGD) by expected answers computed with torch.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F

from solutions.chapter0_fundamentals import backprop as ref
from tests.harness import Case, Checker, Exercise, Mismatch

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


# ----------------------------------------------------------------------------- backward functions


def _run_back(impl, case):
    """Call a backward function on arrays: (grad_out, out, *forward args), forward kwargs as keywords."""
    return _torch(impl(*_np(case.args), **case.kwargs))


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


def _elementwise_cases(forward, positive=False, hand=()):
    def cases(gen):
        yield from hand
        for shape in [(5,), (3, 4), (2, 3, 4), (4, 1, 3), (1,), ()]:
            yield _back_case(gen, forward, [shape], f"x of shape {shape}", positive=positive)

    return cases


# log
def _log_back_over_out(grad_out, out, x):
    return grad_out / out


def _log_back_no_grad_out(grad_out, out, x):
    return 1 / x


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

    return cases


def _multiply_back0_wrong_factor(grad_out, out, x, y):
    return ref.unbroadcast(grad_out * x, np.shape(x))


def _multiply_back0_no_unbroadcast(grad_out, out, x, y):
    return grad_out * y


def _multiply_back1_wrong_factor(grad_out, out, x, y):
    return ref.unbroadcast(grad_out * y, np.shape(y))


def _multiply_back1_no_unbroadcast(grad_out, out, x, y):
    return grad_out * x


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
]


def _sum_back_no_expand(grad_out, out, x, dim, keepdim):
    return np.broadcast_to(grad_out, x.shape).copy()


def _sum_back_ones(grad_out, out, x, dim, keepdim):
    return np.ones_like(x)


def _max_back_ties_get_all(grad_out, out, x, dim, keepdim):
    if not keepdim and dim is not None:
        grad_out, out = np.expand_dims(grad_out, dim), np.expand_dims(out, dim)
    return grad_out * (x == out)


def _max_back_like_sum(grad_out, out, x, dim, keepdim):
    return ref.sum_back(grad_out, out, x, dim, keepdim)


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
    return tuple(NO_GRAD if leaf.grad is None else leaf.grad for leaf in leaves)


NO_GRAD = "no .grad (None)"


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
    return tuple(NO_GRAD if leaf.grad is None else _torch(leaf.grad.array) for leaf in leaves)


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
        expected=(
            torch.tensor([[1.0, 0.0, 3.5]], dtype=D),
            torch.ones(3, 1, dtype=D) * x,
            torch.ones(3, dtype=D),
            weight.sum(0, keepdim=True),
        ),
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
    return (out.detach(), weight.grad) + ((bias.grad,) if bias is not None else ()) + (x.grad,)


def _run_linear(cls, case):
    module = cls(*case.init)
    params = dict(module.named_parameters())
    expected = {name: tuple(value.shape) for name, value in zip(["weight", "bias"], case.args[2:])}
    got = {k: tuple(p.shape) for k, p in params.items()}
    if got != expected:
        raise Mismatch(f"parameters: expected {expected}, got {got} (names and shapes must match)")
    for name, value in zip(["weight", "bias"], case.args[2:]):
        params[name].array[...] = _np(value)
    x = ref.Tensor(_np(case.args[0]).copy(), requires_grad=True)
    out = module(x)
    if not isinstance(out, ref.Tensor):
        raise Mismatch(f"forward returned {type(out).__name__}, not a Tensor")
    ref.backprop(out, ref.Tensor(_np(case.args[1]).copy()), back_funcs=ref.BACK_FUNCS)
    grads = [params[k].grad for k in ["weight", "bias"] if k in params] + [x.grad]
    return (_torch(out.array),) + tuple(NO_GRAD if g is None else _torch(g.array) for g in grads)


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
    assert abs(weight.std() - bound / math.sqrt(3)) < 0.1 * bound, (
        "initial weights should be uniform on [-1/sqrt(in_features), 1/sqrt(in_features)], spread over the whole range"
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


def _cross_entropy_cases(gen):
    logits, labels = torch.tensor([[0.0, 0.0], [math.log(3), 0.0]], dtype=D), torch.tensor([0, 0])
    # Row 1: probabilities (1/2, 1/2); row 2: (3/4, 1/4). Loss = (log 2 + log(4/3)) / 2 = log(8/3) / 2.
    yield Case(
        (logits, labels),
        "hand-made: loss log(8/3) / 2",
        expected=(torch.tensor(math.log(8 / 3) / 2, dtype=D), torch.tensor([[-0.25, 0.25], [-0.125, 0.125]], dtype=D)),
    )
    for batch, classes, scale in [(5, 3, 1.0), (8, 10, 2.0), (1, 4, 1.0), (6, 2, 0.5)]:
        yield _ce_case(
            _randn(gen, batch, classes, scale=scale),
            torch.randint(classes, (batch,), generator=gen),
            f"{batch} rows, {classes} classes",
        )
    yield _ce_case(_randn(gen, 4, 5) + 1000.0, torch.randint(5, (4,), generator=gen), "logits near 1000: exp overflows")


def _ce_case(logits, labels, label):
    leaf = logits.clone().requires_grad_()
    loss = F.cross_entropy(leaf, labels)
    loss.backward()
    return Case((logits, labels), label, expected=(loss.detach(), leaf.grad))


def _run_cross_entropy(impl, case):
    logits = ref.Tensor(_np(case.args[0]).copy(), requires_grad=True)
    loss = impl(logits, _np(case.args[1]).copy())
    if not isinstance(loss, ref.Tensor):
        return None if loss is None else _torch(loss)
    if loss.shape != ():
        raise Mismatch(f"the loss must be a 0-d Tensor (the mean over the batch), got shape {loss.shape}")
    ref.backprop(loss, back_funcs=ref.BACK_FUNCS)
    return _torch(loss.array), NO_GRAD if logits.grad is None else _torch(logits.grad.array)


def _ce_no_shift(logits, true_labels):
    log_probs = logits - logits.exp().sum(dim=-1, keepdim=True).log()
    return -(log_probs * np.eye(logits.shape[1])[true_labels]).sum() / logits.shape[0]


def _ce_sum(logits, true_labels):
    return ref.cross_entropy(logits, true_labels) * logits.shape[0]


def _ce_arrays(logits, true_labels):
    a = logits.array - logits.array.max(axis=-1, keepdims=True)
    log_probs = a - np.log(np.exp(a).sum(axis=-1, keepdims=True))
    return ref.Tensor(-log_probs[np.arange(len(a)), true_labels].mean())


SGD_STEPS = 5


def _sgd_cases(gen):
    for kwargs in [
        dict(lr=0.1),
        dict(lr=0.05, momentum=0.9),
        dict(lr=0.1, weight_decay=0.1),
        dict(lr=0.02, momentum=0.5, weight_decay=0.05),
    ]:
        params = (_randn(gen, 3, 4), _randn(gen, 5))
        targets = (_randn(gen, 3, 4), _randn(gen, 5))
        label = ", ".join(f"{k}={v}" for k, v in kwargs.items())
        yield Case(params + targets, label, kwargs=kwargs, expected=_torch_sgd(params, targets, kwargs))
    params, targets = (torch.tensor([1.0], dtype=D),), (torch.tensor([0.0], dtype=D),)
    # Gradient 2 p each step; with lr 0.25 every step halves p: 1 / 2^5.
    yield Case(
        params + targets,
        "lr=0.25 on (p - 0)^2: p halves each step",
        kwargs=dict(lr=0.25),
        expected=(torch.tensor([1 / 32], dtype=D),),
    )


def _torch_sgd(params, targets, kwargs):
    params = [p.clone().requires_grad_() for p in params]
    opt = torch.optim.SGD(params, **kwargs)
    for _ in range(SGD_STEPS):
        opt.zero_grad()
        sum(((p - t) ** 2).sum() for p, t in zip(params, targets)).backward()
        opt.step()
    return tuple(p.detach() for p in params)


def _run_sgd(cls, case):
    half = len(case.args) // 2
    params = [ref.Parameter(_np(p).copy()) for p in case.args[:half]]
    targets = [_np(t) for t in case.args[half:]]
    opt = cls(iter(params), **case.kwargs)  # a generator, as model.parameters() gives
    for step in range(SGD_STEPS):
        opt.zero_grad()
        if any(p.grad is not None for p in params):
            raise Mismatch(
                "after zero_grad() a parameter still has a .grad: zero_grad must set p.grad = None on the "
                "parameters you were given, and step must update those same objects in place"
            )
        for p, t in zip(params, targets):
            p.grad = ref.Tensor(2 * (p.array - t))
        opt.step()
    return tuple(_torch(p.array) for p in params)


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


check = Checker(
    "0.4",
    [
        _back_exercise(
            ref.log_back,
            _elementwise_cases(torch.log, positive=True, hand=_LOG_HAND),
            "d log(x) / dx = 1 / x, so dL/dx = grad_out / x: divide by the input, not the output.",
            {"divides by out, not x": _log_back_over_out, "forgets grad_out": _log_back_no_grad_out},
            torch.log,
        ),
        Exercise(
            ref.unbroadcast,
            _unbroadcast_cases,
            run=_run_back,
            atol=1e-8,
            rtol=1e-6,
            hint="First sum over the leading axes that `shape` lacks (grad.ndim - len(shape) of them); then sum, "
            "with keepdims=True, over each axis where shape has 1 but grad does not.",
            wrong={
                "sums the leading axes only": _unbroadcast_leading_only,
                "sums size-1 axes without keeping them": _unbroadcast_drops_size_one_axes,
                "averages instead of summing": _unbroadcast_mean,
            },
        ),
        _back_exercise(
            ref.multiply_back0,
            _multiply_cases(0),
            "d(x * y)/dx = y: return unbroadcast(grad_out * y, np.shape(x)). np.shape works on floats too.",
            {
                "multiplies by x, not y": _multiply_back0_wrong_factor,
                "forgets to unbroadcast": _multiply_back0_no_unbroadcast,
            },
            _mul,
            0,
        ),
        _back_exercise(
            ref.multiply_back1,
            _multiply_cases(1),
            "d(x * y)/dy = x: return unbroadcast(grad_out * x, np.shape(y)).",
            {
                "multiplies by y, not x": _multiply_back1_wrong_factor,
                "forgets to unbroadcast": _multiply_back1_no_unbroadcast,
            },
            _mul,
            1,
        ),
        Exercise(
            ref.topological_sort,
            _topological_sort_cases,
            run=_run_topological_sort,
            hint="Depth-first search: visit a node's parents (node.recipe.parents.values(), none for a leaf) before "
            "appending the node itself, and keep a set of the ids you have visited so each node appears once.",
            wrong={
                "end node first (the reverse order)": _topo_end_first,
                "no visited set": _topo_no_visited_set,
                "breadth-first search, reversed": _topo_reversed_bfs,
            },
        ),
        Exercise(
            ref.backprop,
            _backprop_cases,
            run=_run_backprop,
            atol=1e-8,
            rtol=1e-6,
            hint="Walk reversed(topological_sort(end_node)), keeping a dict from id(node) to its gradient. Add "
            "(don't overwrite) each parent's contribution; for a leaf that requires grad, add to its .grad.",
            wrong={
                "overwrites instead of adding contributions": _backprop_overwrites,
                "visits each tensor once, with the first gradient to reach it": _backprop_first_gradient_only,
                "replaces a leaf's existing .grad": _backprop_replaces_grad,
            },
        ),
        _back_exercise(
            ref.negative_back,
            _elementwise_cases(torch.neg),
            "d(-x)/dx = -1: return -grad_out.",
            {"forgets the sign": _negative_back_identity},
            torch.neg,
        ),
        _back_exercise(
            ref.exp_back,
            _elementwise_cases(torch.exp),
            "d exp(x)/dx = exp(x), which is `out`: grad_out * out.",
            {"multiplies by x": _exp_back_times_x, "forgets grad_out": _exp_back_no_grad_out},
            torch.exp,
        ),
        _back_exercise(
            ref.relu_back,
            _elementwise_cases(torch.relu, hand=_RELU_HAND),
            "The gradient passes where x > 0 and is 0 elsewhere, including at x = 0: grad_out * (x > 0).",
            {"passes the gradient at x = 0": _relu_back_at_zero, "forgets grad_out": _relu_back_mask_only},
            torch.relu,
        ),
        _back_exercise(
            ref.reshape_back,
            _reshape_cases,
            "Reshape grad_out back to the input's shape, x.shape.",
            {
                "reshapes to the output shape": _reshape_back_to_new_shape,
                "reshapes in the wrong (transposed) order": _reshape_back_transposed,
            },
            torch.reshape,
        ),
        _back_exercise(
            ref.permute_back,
            _permute_cases,
            "Undo the permutation: the inverse of `axes` is np.argsort(axes). Applying `axes` again only "
            "works when the permutation is its own inverse.",
            {
                "applies the same permutation again": _permute_back_same_axes,
                "reverses all axes": _permute_back_reversed,
            },
            torch.permute,
        ),
        _back_exercise(
            ref.sum_back,
            _reduction_cases(_torch_sum, _SUM_HAND),
            "Without keepdim, first put the summed axes back with np.expand_dims(grad_out, dim); then "
            "np.broadcast_to(..., x.shape) (and .copy(), since broadcast_to gives a read-only view).",
            {"broadcasts without restoring the summed axes": _sum_back_no_expand, "forgets grad_out": _sum_back_ones},
            _torch_sum,
        ),
        _back_exercise(
            ref.max_back,
            _reduction_cases(_torch_amax, _MAX_HAND),
            "The entries equal to the maximum (x == out, with the axes restored as in sum_back) share the "
            "gradient: divide by how many there are along the reduced axes.",
            {
                "every tied maximum gets the whole gradient": _max_back_ties_get_all,
                "routes the gradient to every entry, like sum": _max_back_like_sum,
            },
            _torch_amax,
        ),
        _back_exercise(
            ref.matmul2d_back0,
            _matmul_cases(0),
            "dL/dx = grad_out @ y.T: (m, n) @ (n, k) gives x's shape (m, k).",
            {"forgets to transpose y": _matmul_back0_untransposed, "wrong order": _matmul_back0_wrong_order},
            torch.matmul,
            0,
        ),
        _back_exercise(
            ref.matmul2d_back1,
            _matmul_cases(1),
            "dL/dy = x.T @ grad_out: (k, m) @ (m, n) gives y's shape (k, n).",
            {"forgets to transpose x": _matmul_back1_untransposed, "wrong order": _matmul_back1_wrong_order},
            torch.matmul,
            1,
        ),
        Exercise(
            ref.Linear,
            _linear_cases,
            run=_run_linear,
            extra=_linear_init_check,
            atol=1e-8,
            rtol=1e-6,
            hint="Make self.weight a Parameter of shape (out_features, in_features) and self.bias one of shape "
            "(out_features,) (or None), both uniform in +-1/sqrt(in_features); forward is x @ self.weight.T + "
            "self.bias, with Tensor ops only, so gradients flow.",
            wrong={
                "computes on .array, so no gradient flows": _LinearUsesArrays,
                "weight stored as (in_features, out_features)": _LinearWeightInByOut,
                "standard normal initialisation": _LinearNormalInit,
            },
        ),
        Exercise(
            ref.cross_entropy,
            _cross_entropy_cases,
            run=_run_cross_entropy,
            atol=1e-8,
            rtol=1e-6,
            hint="Subtract each row's maximum (logits.array.max(axis=-1, keepdims=True), a constant), then "
            "log_probs = shifted - shifted.exp().sum(dim=-1, keepdim=True).log(); pick the true classes with a "
            "one-hot array (np.eye(classes)[true_labels]) and average -log_probs over the batch.",
            wrong={
                "no max subtraction: overflows for large logits": _ce_no_shift,
                "sums over the batch": _ce_sum,
                "computed on arrays: no gradient": _ce_arrays,
            },
        ),
        Exercise(
            ref.SGD,
            _sgd_cases,
            run=_run_sgd,
            atol=1e-8,
            rtol=1e-6,
            hint="In step: g = p.grad.array + weight_decay * p.array; with momentum, b = g at the first step, then "
            "b = momentum * b + g, and g = b; finally p.array -= lr * g (in place). zero_grad sets each p.grad "
            "to None. Store list(params): a generator can be read once only.",
            wrong={
                "rebinds a new Parameter instead of updating in place": _SGDRebinds,
                "momentum as an average, (1 - momentum) * g": _SGDDampened,
                "weight decay added after momentum": _SGDDecayAfterMomentum,
                "zero_grad does nothing": _SGDKeepsGrads,
                "reads the parameter generator twice": _SGDListsGeneratorTwice,
            },
        ),
    ],
)

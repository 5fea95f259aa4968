"""Checks for 0.2 CNNs and ResNets.

Modules are compared with torch's own (nn.Linear, nn.Conv2d, nn.BatchNorm2d, ...) as oracles, and the
ResNet pieces with an independent version built from torch's layers below. The harness gives the learner's
module the reference's weights, so initialisation is checked separately (``extra``).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from solutions.chapter0_fundamentals import cnns as ref
from tests.harness import Case, Checker, Exercise


def _randn(gen, *shape) -> torch.Tensor:
    return torch.randn(*shape, generator=gen)


def _images(gen, batch, channels, height, width=None) -> torch.Tensor:
    return _randn(gen, batch, channels, height, width or height)


# ----------------------------------------------------------------------------- oracles built from torch's layers


class _TorchConv2d(nn.Conv2d):
    """nn.Conv2d with `bias` as the sixth positional argument, as in the course's Conv2d."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=bias)


class _TorchSimpleMLP(nn.Module):
    def __init__(self, in_features=64, hidden_features=100, n_classes=10):
        super().__init__()
        self.flatten, self.relu = nn.Flatten(), nn.ReLU()
        self.linear1, self.linear2 = nn.Linear(in_features, hidden_features), nn.Linear(hidden_features, n_classes)

    def forward(self, x):
        return self.linear2(self.relu(self.linear1(self.flatten(x))))


class _TorchAveragePool(nn.Module):
    def forward(self, x):
        return F.adaptive_avg_pool2d(x, 1).flatten(1)


class _TorchResidualBlock(nn.Module):
    def __init__(self, in_feats, out_feats, first_stride=1):
        super().__init__()
        self.left = nn.Sequential(
            nn.Conv2d(in_feats, out_feats, 3, first_stride, 1, bias=False),
            nn.BatchNorm2d(out_feats),
            nn.ReLU(),
            nn.Conv2d(out_feats, out_feats, 3, 1, 1, bias=False),
            nn.BatchNorm2d(out_feats),
        )
        downsample = first_stride != 1 or in_feats != out_feats
        self.right = (
            nn.Sequential(nn.Conv2d(in_feats, out_feats, 1, first_stride, bias=False), nn.BatchNorm2d(out_feats))
            if downsample
            else nn.Identity()
        )

    def forward(self, x):
        return F.relu(self.left(x) + self.right(x))


class _TorchBlockGroup(nn.Module):
    def __init__(self, n_blocks, in_feats, out_feats, first_stride=1):
        super().__init__()
        self.blocks = nn.Sequential(
            *[
                _TorchResidualBlock(in_feats if i == 0 else out_feats, out_feats, first_stride if i == 0 else 1)
                for i in range(n_blocks)
            ]
        )

    def forward(self, x):
        return self.blocks(x)


class _TorchResNet34(nn.Module):
    def __init__(
        self,
        n_blocks_per_group=(3, 4, 6, 3),
        out_features_per_group=(64, 128, 256, 512),
        first_strides_per_group=(1, 2, 2, 2),
        n_classes=1000,
        in_channels=3,
    ):
        super().__init__()
        width = out_features_per_group[0]
        self.in_layers = nn.Sequential(
            nn.Conv2d(in_channels, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(3, 2, 1)
        )
        ins = [width, *out_features_per_group[:-1]]
        self.residual_layers = nn.Sequential(
            *[
                _TorchBlockGroup(*a)
                for a in zip(n_blocks_per_group, ins, out_features_per_group, first_strides_per_group)
            ]
        )
        self.out_layers = nn.Sequential(
            _TorchAveragePool(), nn.Flatten(), nn.Linear(out_features_per_group[-1], n_classes)
        )

    def forward(self, x):
        return self.out_layers(self.residual_layers(self.in_layers(x)))


# ----------------------------------------------------------------------------- initialisation checks


def _check_uniform_init(tensor, bound: float, what: str) -> None:
    assert tensor is not None, f"{what} is missing"
    values = tensor.detach().flatten()
    assert values.abs().max() <= bound + 1e-6, (
        f"{what} has values up to {values.abs().max():.3g}, outside +-1/sqrt(fan_in) = +-{bound:.3g}: "
        "draw it uniformly from [-bound, bound]"
    )
    assert values.unique().numel() > 1, f"{what} has all its values equal: draw them at random"
    assert values.abs().max() > bound / 2, (
        f"{what} only reaches {values.abs().max():.3g}, far inside +-{bound:.3g}: use the whole interval"
    )


def _linear_init(impl) -> None:
    layer = impl(200, 50)
    _check_uniform_init(layer.weight, 200**-0.5, "Linear(200, 50).weight")
    _check_uniform_init(layer.bias, 200**-0.5, "Linear(200, 50).bias")
    assert impl(200, 50, bias=False).bias is None, "Linear(..., bias=False).bias should be None"


def _conv_init(impl) -> None:
    layer = impl(6, 40, 3)
    bound = (6 * 3 * 3) ** -0.5
    _check_uniform_init(layer.weight, bound, "Conv2d(6, 40, 3).weight")
    _check_uniform_init(layer.bias, bound, "Conv2d(6, 40, 3).bias")


# ----------------------------------------------------------------------------- wrong implementations


class _LeakyReLU(nn.Module):
    def forward(self, x):
        return F.leaky_relu(x, 0.01)


class _InPlaceReLU(nn.Module):
    def forward(self, x):
        return x.clamp_(min=0)


class _NormalInitLinear(ref.Linear):
    def __init__(self, in_features, out_features, bias=True):
        super().__init__(in_features, out_features, bias)
        nn.init.normal_(self.weight)


class _UntransposedLinear(ref.Linear):
    def forward(self, x):
        return x @ self.weight.reshape(self.in_features, self.out_features) + self.bias


class _FlattenToEnd(ref.Flatten):
    def forward(self, x):
        return x.reshape(*x.shape[: self.start_dim % x.ndim], -1)


class _FlattenExclusiveEnd(ref.Flatten):
    def forward(self, x):
        start, end = self.start_dim % x.ndim, self.end_dim % x.ndim
        return x.reshape(*x.shape[:start], -1, *x.shape[end:]) if end > start else x


class _MLPNoReLU(ref.SimpleMLP):
    def forward(self, x):
        return self.linear2(self.linear1(self.flatten(x)))


class _MLPReLUAtEnd(ref.SimpleMLP):
    def forward(self, x):
        return self.relu(super().forward(x))


class _ConvNoPadding(ref.Conv2d):
    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, stride=self.stride)


class _ConvFlipped(ref.Conv2d):
    def forward(self, x):
        return F.conv2d(x, self.weight.flip(-1, -2), self.bias, stride=self.stride, padding=self.padding)


class _PoolStrideOne(ref.MaxPool2d):
    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, stride=self.stride or 1, padding=self.padding)


class _AvgInsteadOfMax(ref.MaxPool2d):
    def forward(self, x):
        stride = self.stride or self.kernel_size
        return F.avg_pool2d(x, self.kernel_size, stride=stride, padding=self.padding)


class _BatchNormUnbiasedNormalise(ref.BatchNorm2d):
    def forward(self, x):
        if not self.training:
            return super().forward(x)
        super().forward(x)  # updates the running statistics
        mean, var = x.mean(dim=(0, 2, 3), keepdim=True), x.var(dim=(0, 2, 3), keepdim=True)
        w, b = self.weight[None, :, None, None], self.bias[None, :, None, None]
        return (x - mean) / torch.sqrt(var + self.eps) * w + b


class _BatchNormBiasedRunningVar(ref.BatchNorm2d):
    def forward(self, x):
        if self.training:
            with torch.no_grad():
                var = x.var(dim=(0, 2, 3), unbiased=False)
            out = super().forward(x)
            self.running_var.sub_(self.momentum * (x.var(dim=(0, 2, 3)).detach() - var))
            return out
        return super().forward(x)


class _BatchNormBatchStatsInEval(ref.BatchNorm2d):
    def forward(self, x):
        training, self.training = self.training, True
        stats = [b.clone() for b in (self.running_mean, self.running_var, self.num_batches_tracked)]
        out = super().forward(x)
        if not training:
            self.running_mean, self.running_var, self.num_batches_tracked = stats
        self.training = training
        return out


class _BatchNormMomentumSwapped(ref.BatchNorm2d):
    def __init__(self, num_features, eps=1e-05, momentum=0.1):
        super().__init__(num_features, eps, 1 - momentum)


class _BatchNormNoCounter(ref.BatchNorm2d):
    def forward(self, x):
        count = self.num_batches_tracked.clone()
        out = super().forward(x)
        self.num_batches_tracked.copy_(count)
        return out


class _AveragePoolOverChannels(nn.Module):
    def forward(self, x):
        return x.mean(dim=(1, 2))


class _AveragePoolSum(nn.Module):
    def forward(self, x):
        return x.sum(dim=(2, 3))


class _BlockReLUBeforeAdd(ref.ResidualBlock):
    def forward(self, x):
        return self.relu(self.left(x)) + self.right(x)


class _BlockNoFinalReLU(ref.ResidualBlock):
    def forward(self, x):
        return self.left(x) + self.right(x)


class _BlockNoShortcut(ref.ResidualBlock):
    def forward(self, x):
        return self.relu(self.left(x))


class _BlockStrideOnSecondConv(ref.ResidualBlock):
    def __init__(self, in_feats, out_feats, first_stride=1):
        super().__init__(in_feats, out_feats, first_stride)
        self.left[0].stride, self.left[3].stride = 1, first_stride


class _GroupStrideEverywhere(nn.Module):
    def __init__(self, n_blocks, in_feats, out_feats, first_stride=1):
        super().__init__()
        self.blocks = nn.Sequential(
            ref.ResidualBlock(in_feats, out_feats, first_stride),
            *[_StridedIdentityBlock(out_feats, first_stride) for _ in range(n_blocks - 1)],
        )

    def forward(self, x):
        return self.blocks(x)


class _StridedIdentityBlock(ref.ResidualBlock):
    """A stride-1 block's weights, but its first convolution strides (and so does the shortcut, by slicing)."""

    def __init__(self, feats, stride):
        super().__init__(feats, feats, 1)
        self.left[0].stride, self.step = stride, stride

    def forward(self, x):
        return self.relu(self.left(x) + x[..., :: self.step, :: self.step])


class _ResNetNoMaxPool(ref.ResNet34):
    def forward(self, x):
        return self.out_layers(self.residual_layers(self.in_layers[:3](x)))


class _ResNetReLUOnLogits(ref.ResNet34):
    def forward(self, x):
        return F.relu(super().forward(x))


def _train_epoch_no_zero_grad(model, optimizer, loader):
    model.train()
    losses = []
    for images, labels in loader:
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def _train_epoch_zero_grad_after_backward(model, optimizer, loader):
    model.train()
    losses = []
    for images, labels in loader:
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.zero_grad()
        optimizer.step()
        losses.append(loss.item())
    return losses


def _train_epoch_eval_mode(model, optimizer, loader):
    losses = []
    for images, labels in loader:
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def _manual_train_epoch(model, optimizer, loader):
    """An independent version: plain SGD by hand with torch.autograd.grad (the cases use plain SGD)."""
    lr = optimizer.param_groups[0]["lr"]
    params = [p for p in model.parameters() if p.requires_grad]
    model.train()
    losses = []
    for images, labels in loader:
        logits = model(images)
        loss = -logits.log_softmax(dim=-1).gather(-1, labels[:, None]).mean()
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, g in zip(params, grads):
                p -= lr * g
        losses.append(loss.item())
    return losses


@torch.no_grad()
def _evaluate_batch_mean(model, loader):
    model.eval()
    accuracies = [(model(x).argmax(-1) == y).float().mean().item() for x, y in loader]
    return sum(accuracies) / len(accuracies)


@torch.no_grad()
def _evaluate_train_mode(model, loader):
    correct = sum((model(x).argmax(-1) == y).sum().item() for x, y in loader)
    return correct / sum(len(y) for _, y in loader)


def _trace_contiguous(mat):
    n = mat.shape[0]
    return mat.as_strided((n,), (n + 1,)).sum()


def _trace_first_column(mat):
    return mat.as_strided((mat.shape[0],), (mat.stride(0),)).sum()


def _matmul_assumes_contiguous(a, b):
    (i, j), k = a.shape, b.shape[1]
    return (a.as_strided((i, j, k), (j, 1, 0)) * b.as_strided((i, j, k), (0, k, 1))).sum(dim=1)


def _matmul_sums_wrong_axis(a, b):
    (i, j), k = a.shape, b.shape[1]
    a_expanded = a.as_strided((i, j, k), (a.stride(0), a.stride(1), 0))
    b_expanded = b.as_strided((i, j, k), (0, b.stride(0), b.stride(1)))
    return (a_expanded * b_expanded).sum(dim=2)


def _conv1d_flipped(x, weights):
    return ref.conv1d_minimal(x, weights.flip(-1))


def _conv1d_channels_summed_first(x, weights):
    return ref.conv1d_minimal(x.sum(dim=1, keepdim=True), weights.sum(dim=1, keepdim=True))


def _pad2d_swapped(x, left, right, top, bottom, pad_value):
    return ref.pad2d(x, top, bottom, left, right, pad_value)


def _pad2d_always_zero(x, left, right, top, bottom, pad_value):
    return ref.pad2d(x, left, right, top, bottom, 0.0)


def _conv2d_stride_ignored(x, weights, stride=1, padding=0):
    return ref.conv2d_strided(x, weights, 1, padding)


def _conv2d_padding_one_side(x, weights, stride=1, padding=0):
    x = ref.pad2d(x, 0, 2 * padding, 0, 2 * padding, 0.0)
    return ref.conv2d_strided(x, weights, stride, 0)


def _maxpool_zero_padding(x, kernel_size, stride=None, padding=0):
    return ref.maxpool2d_strided(ref.pad2d(x, padding, padding, padding, padding, 0.0), kernel_size, stride, 0)


def _maxpool_stride_one(x, kernel_size, stride=None, padding=0):
    return ref.maxpool2d_strided(x, kernel_size, stride or 1, padding)


def _torch_pad2d(x, left, right, top, bottom, pad_value):
    return F.pad(x, (left, right, top, bottom), value=pad_value)


def _torch_trace(mat):
    return torch.trace(mat)


# ----------------------------------------------------------------------------- cases


def _relu_cases(gen):
    yield Case(
        (torch.tensor([-2.0, -0.5, 0.0, 0.5, 3.0]),), "hand-made", expected=torch.tensor([0.0, 0.0, 0.0, 0.5, 3.0])
    )
    yield Case((_randn(gen, 4, 7),), "a random matrix")
    yield Case((_images(gen, 2, 3, 5),), "a batch of images")
    yield Case((torch.tensor([[-1.0, 2.0], [3.0, -4.0]], dtype=torch.float64),), "float64 keeps its dtype")


def _linear_cases(gen):
    yield Case((_randn(gen, 5, 3),), "batch of 5, 3 -> 4", init=(3, 4))
    yield Case((_randn(gen, 2, 6, 10),), "extra leading axes, 10 -> 1", init=(10, 1))
    yield Case((_randn(gen, 8, 64),), "64 -> 10", init=(64, 10))
    yield Case((_randn(gen, 3, 7),), "bias=False", init=(7, 5, False))


def _flatten_cases(gen):
    yield Case((_images(gen, 2, 3, 4),), "default: all but the batch axis", init=())
    yield Case((_images(gen, 2, 3, 4, 5),), "start_dim=0", init=(0,))
    yield Case((_images(gen, 2, 3, 4, 5),), "start_dim=1, end_dim=2", init=(1, 2))
    yield Case((_images(gen, 2, 3, 4, 5),), "negative dims: -3 to -2", init=(-3, -2))
    yield Case((_randn(gen, 6, 5),), "already flat", init=())


def _mlp_cases(gen):
    yield Case((_images(gen, 5, 1, 8),), "five 8x8 digits", init=())
    yield Case((_images(gen, 3, 1, 4),), "16 -> 7 -> 3", init=(16, 7, 3))
    yield Case((_images(gen, 1, 2, 3),), "one image, 18 -> 5 -> 4", init=(18, 5, 4))


def _small_bn_net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))


def _run_train_epoch(impl, case):
    seed, batch_sizes, lr = case.args
    model = _small_bn_net(seed)
    model.eval()  # as left by an evaluation: train_epoch must switch it back to training mode
    gen = torch.Generator().manual_seed(seed)
    loader = [(torch.randn(n, 3, 2, 2, generator=gen), torch.randint(3, (n,), generator=gen)) for n in batch_sizes]
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    losses = impl(model, optimizer, loader)
    return losses, [p.detach().clone() for p in model.parameters()]


def _train_epoch_cases(gen):
    compared = "seed, batch sizes, lr; compared: (your losses, the parameters after the epoch)"
    yield Case((0, (8, 8, 8), 0.5), f"three batches of 8, lr 0.5; {compared}")
    yield Case((1, (16, 5), 0.1), f"a smaller last batch, lr 0.1; {compared}")
    yield Case((2, (4,) * 6, 1.0), f"six batches of 4, lr 1; {compared}")


def _run_evaluate(impl, case):
    kind, seed, batch_sizes = case.args
    gen = torch.Generator().manual_seed(seed)
    if kind == "logits":  # the 'model' passes through logits, so accuracy can be counted by hand
        model = nn.Identity()
        logits = torch.tensor([[2.0, 1, 0], [0, 3, 1], [1, 0, 2], [5, 0, 0], [0, 1, 0]])
        labels = torch.tensor([0, 1, 0, 0, 2])
        loader = list(zip(logits.split(list(batch_sizes)), labels.split(list(batch_sizes))))
    else:
        model = _small_bn_net(seed)
        with torch.no_grad():
            model[2].running_mean.normal_(generator=gen)
            model[2].running_var.uniform_(0.5, 3, generator=gen)
        model.train()
        loader = [(torch.randn(n, 3, 2, 2, generator=gen), torch.randint(3, (n,), generator=gen)) for n in batch_sizes]
    return impl(model, loader)


def _evaluate_cases(gen):
    yield Case(("logits", 0, (3, 2)), "5 hand-made logits in batches of 3 and 2: 3 correct", expected=0.6)
    yield Case(("logits", 0, (4, 1)), "the same in batches of 4 and 1", expected=0.6)
    for seed in range(3):
        yield Case(("batchnorm net", seed, (32, 7)), "a net with BatchNorm, batches of 32 and 7")


def _conv_cases(gen):
    yield Case((_images(gen, 2, 3, 8),), "3 -> 4 channels, kernel 3", init=(3, 4, 3))
    yield Case((_images(gen, 1, 2, 9, 7),), "stride 2, padding 1", init=(2, 5, 3, 2, 1))
    yield Case((_images(gen, 3, 4, 6),), "kernel 1, no bias", init=(4, 2, 1, 1, 0, False))
    yield Case((_images(gen, 2, 1, 16),), "kernel 7, stride 2, padding 3, no bias", init=(1, 6, 7, 2, 3, False))


def _maxpool_cases(gen):
    image = torch.arange(16.0).reshape(1, 1, 4, 4)
    yield Case(
        (image,), "0..15 in a 4x4 grid, kernel 2", init=(2,), expected=torch.tensor([[[[5.0, 7.0], [13.0, 15.0]]]])
    )
    yield Case((_images(gen, 2, 3, 8),), "kernel 2 (stride defaults to the kernel size)", init=(2,))
    yield Case((_images(gen, 2, 3, 9),), "kernel 3, stride 2, padding 1 (ResNet's stem)", init=(3, 2, 1))
    yield Case((-_images(gen, 1, 2, 7).abs(),), "all negative, padded: padding must not win", init=(3, 1, 1))
    yield Case((_images(gen, 1, 1, 7, 5),), "kernel 3, stride 1", init=(3, 1))


def _run_batchnorm(impl, case):
    batches, eval_batch, weight, bias = case.args
    bn = impl(*case.init).to(batches.device)
    expected = {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"}
    if set(bn.state_dict()) != expected:
        raise AttributeError(
            f"BatchNorm2d's parameters and buffers should be {sorted(expected)}, got {sorted(bn.state_dict())}"
        )
    bn.load_state_dict({**bn.state_dict(), "weight": weight, "bias": bias})
    train_out = torch.stack([bn(x) for x in batches])
    stats = (bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone())
    bn.eval()
    return train_out, *stats, bn(eval_batch)


_BN_OUTPUTS = (
    "inputs: training batches, eval batch, weight, bias; "
    "compared: (train outputs, running_mean, running_var, num_batches_tracked, eval output)"
)


def _batchnorm_cases(gen):
    for init, batches, batch in [((3,), 3, 4), ((4, 1e-3, 0.3), 2, 5), ((2,), 5, 2)]:
        c = init[0]
        xs = 2 * _randn(gen, batches, batch, c, 5, 4) + 3 * _randn(gen, 1, 1, c, 1, 1)
        yield Case(
            (xs, 2 * _images(gen, 3, c, 5, 4) + 1, 1 + _randn(gen, c), _randn(gen, c)),
            f"{c} channels, {batches} training batches of {batch}, then eval; {_BN_OUTPUTS}",
            init=init,
        )
    ones = torch.ones(1)
    hand = torch.tensor([1.0, 3.0]).reshape(1, 2, 1, 1, 1)  # one batch of two images, one channel, 1x1
    # mean 2, biased var 1, unbiased var 2: train out (x - 2) / sqrt(1 + eps) = -1, 1 (eps 0 here);
    # running mean 0.9 * 0 + 0.1 * 2 = 0.2; running var 0.9 * 1 + 0.1 * 2 = 1.1; eval (x - 0.2) / sqrt(1.1).
    eval_batch = torch.tensor([1.2]).reshape(1, 1, 1, 1)
    yield Case(
        (hand, eval_batch, ones, torch.zeros(1)),
        f"hand-made: [1, 3] then [1.2], eps 0; {_BN_OUTPUTS}",
        init=(1, 0.0, 0.1),
        expected=(
            torch.tensor([-1.0, 1.0]).reshape(1, 2, 1, 1, 1),
            torch.tensor([0.2]),
            torch.tensor([1.1]),
            torch.tensor(1),
            torch.tensor([1.0 / math.sqrt(1.1)]).reshape(1, 1, 1, 1),
        ),
    )


def _average_pool_cases(gen):
    x = torch.tensor([[[[1.0, 2.0], [3.0, 6.0]], [[0.0, 0.0], [0.0, 4.0]]]])
    yield Case((x,), "hand-made: means 3 and 1", init=(), expected=torch.tensor([[3.0, 1.0]]))
    yield Case((_images(gen, 3, 5, 4),), "random", init=())
    yield Case((_images(gen, 2, 8, 3, 7),), "non-square", init=())


def _residual_block_cases(gen):
    yield Case((_images(gen, 2, 4, 6),), "4 -> 4 channels, stride 1 (identity shortcut)", init=(4, 4, 1))
    yield Case((_images(gen, 2, 4, 8),), "4 -> 8 channels, stride 2 (downsampling shortcut)", init=(4, 8, 2))
    yield Case((_images(gen, 3, 3, 7),), "3 -> 6 channels, stride 2, odd size", init=(3, 6, 2))
    yield Case((_images(gen, 2, 3, 5),), "3 -> 5 channels, stride 1 (the shortcut must still convert)", init=(3, 5, 1))


def _block_group_cases(gen):
    yield Case((_images(gen, 2, 4, 8),), "3 blocks, 4 -> 8 channels, stride 2", init=(3, 4, 8, 2))
    yield Case((_images(gen, 2, 6, 6),), "2 blocks, 6 -> 6 channels, stride 1", init=(2, 6, 6, 1))
    yield Case((_images(gen, 2, 3, 9),), "1 block, 3 -> 5 channels, stride 2", init=(1, 3, 5, 2))


def _resnet_cases(gen):
    yield Case(
        (_images(gen, 2, 3, 64),),
        "ResNet34, 10 classes, two 3x64x64 images",
        init=((3, 4, 6, 3), (64, 128, 256, 512), (1, 2, 2, 2), 10),
    )
    yield Case(
        (_images(gen, 3, 1, 16),), "a small ResNet for 1-channel 16x16 digits", init=((1, 2), (8, 16), (1, 2), 10, 1)
    )
    yield Case((_images(gen, 2, 2, 24),), "three groups, 5 classes", init=((2, 1, 1), (4, 6, 8), (1, 2, 2), 5, 2))


def _resnet_parameter_count(impl) -> None:
    count = sum(p.numel() for p in impl().parameters())
    assert count == 21_797_672, (
        f"ResNet34() has {count:,} parameters; torchvision's resnet34 has 21,797,672. "
        "Check the defaults, the stem, and that the convolutions have no bias."
    )


def _trace_cases(gen):
    yield Case((torch.tensor([[1.0, 2.0], [3.0, 4.0]]),), "[[1, 2], [3, 4]]", expected=torch.tensor(5.0))
    yield Case((torch.arange(9.0).reshape(3, 3).T,), "a transposed (non-contiguous) 3x3", expected=torch.tensor(12.0))
    yield Case((_randn(gen, 5, 5),), "random 5x5")
    yield Case((_randn(gen, 6, 8)[1:5, 2:6],), "a 4x4 slice of a larger matrix")


def _matmul_cases(gen):
    a, b = torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([[5.0, 6.0, 7.0], [8.0, 9.0, 10.0]])
    yield Case((a, b), "2x2 @ 2x3 by hand", expected=torch.tensor([[21.0, 24.0, 27.0], [47.0, 54.0, 61.0]]))
    yield Case((_randn(gen, 4, 3), _randn(gen, 3, 5)), "random 4x3 @ 3x5")
    yield Case((_randn(gen, 5, 2).T, _randn(gen, 5, 6)), "a transposed (non-contiguous) left matrix")
    yield Case((_randn(gen, 1, 7), _randn(gen, 4, 7).T), "a row vector times a transposed matrix")


def _conv1d_cases(gen):
    x, w = torch.tensor([[[1.0, 2.0, 3.0, 4.0]]]), torch.tensor([[[1.0, 0.0, -1.0]]])
    yield Case((x, w), "[1, 2, 3, 4] with kernel [1, 0, -1]", expected=torch.tensor([[[-2.0, -2.0]]]))
    yield Case((_randn(gen, 2, 3, 10), _randn(gen, 4, 3, 3)), "3 -> 4 channels, kernel 3")
    yield Case((_randn(gen, 1, 1, 5), _randn(gen, 2, 1, 5)), "kernel as wide as the input")
    yield Case((_randn(gen, 3, 2, 7), _randn(gen, 1, 2, 1)), "kernel 1")


def _pad2d_cases(gen):
    x = torch.tensor([[1.0, 2.0]])
    yield Case(
        (x, 1, 0, 0, 1, 9.0),
        "one column left, one row below",
        expected=torch.tensor([[9.0, 1.0, 2.0], [9.0, 9.0, 9.0]]),
    )
    yield Case((_images(gen, 2, 3, 4, 5), 1, 2, 3, 0, 0.0), "a batch, different pads on each side")
    yield Case((_randn(gen, 3, 3), 0, 0, 0, 0, 1.0), "no padding")
    yield Case((_randn(gen, 2, 4), 2, 1, 1, 2, -math.inf), "-inf padding")


def _conv2d_strided_cases(gen):
    x, w = torch.arange(9.0).reshape(1, 1, 3, 3), torch.ones(1, 1, 2, 2)
    yield Case((x, w), "0..8 in 3x3, a 2x2 kernel of ones", expected=torch.tensor([[[[8.0, 12.0], [20.0, 24.0]]]]))
    yield Case((_images(gen, 2, 3, 6), _randn(gen, 4, 3, 3, 3)), "3 -> 4 channels, kernel 3")
    yield Case(
        (_images(gen, 1, 2, 9, 7), _randn(gen, 3, 2, 3, 2)),
        "stride 2, padding 1, non-square kernel",
        kwargs=dict(stride=2, padding=1),
    )
    yield Case((_images(gen, 2, 1, 8), _randn(gen, 2, 1, 3, 3)), "stride 3", kwargs=dict(stride=3))
    yield Case((_images(gen, 1, 3, 5), _randn(gen, 2, 3, 1, 1)), "kernel 1, padding 2", kwargs=dict(padding=2))


def _maxpool_strided_cases(gen):
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    yield Case((x, 2), "0..15 in 4x4, kernel 2", expected=torch.tensor([[[[5.0, 7.0], [13.0, 15.0]]]]))
    yield Case((_images(gen, 2, 3, 8), 2), "kernel 2, default stride")
    yield Case(
        (-_images(gen, 1, 2, 9).abs(), 3),
        "all negative, kernel 3, stride 2, padding 1",
        kwargs=dict(stride=2, padding=1),
    )
    yield Case((_images(gen, 1, 1, 7, 6), 3), "kernel 3, stride 1", kwargs=dict(stride=1))


# ----------------------------------------------------------------------------- the exercises

check = Checker(
    "0.2",
    [
        Exercise(
            ref.ReLU,
            _relu_cases,
            oracle=nn.ReLU,
            hint="Return a new tensor: torch.maximum(x, torch.tensor(0.0)) or x.clamp(min=0), not x.clamp_ (in place).",
            wrong={"leaky": _LeakyReLU, "in place": _InPlaceReLU},
        ),
        Exercise(
            ref.Linear,
            _linear_cases,
            oracle=nn.Linear,
            extra=_linear_init,
            hint="weight has shape (out_features, in_features): compute x @ weight.T + bias. Initialise both "
            "uniformly in [-1/sqrt(in_features), 1/sqrt(in_features)], and set bias = None when bias=False.",
            wrong={"normal init": _NormalInitLinear, "weight reshaped, not transposed": _UntransposedLinear},
        ),
        Exercise(
            ref.Flatten,
            _flatten_cases,
            oracle=nn.Flatten,
            hint="Turn negative dims into positive ones with dim % x.ndim; the new shape is "
            "x.shape[:start] + (-1,) + x.shape[end + 1:] (end_dim is included in the merge).",
            wrong={"ignores end_dim": _FlattenToEnd, "end_dim exclusive": _FlattenExclusiveEnd},
        ),
        Exercise(
            ref.SimpleMLP,
            _mlp_cases,
            oracle=_TorchSimpleMLP,
            hint="Name the layers flatten, linear1, relu, linear2, and apply them in that order; no ReLU on the logits.",
            wrong={"no ReLU": _MLPNoReLU, "ReLU on the logits": _MLPReLUAtEnd},
        ),
        Exercise(
            ref.train_epoch,
            _train_epoch_cases,
            run=_run_train_epoch,
            oracle=_manual_train_epoch,
            hint="Call model.train() first. Per batch: loss = F.cross_entropy(model(images), labels); "
            "optimizer.zero_grad(); loss.backward(); optimizer.step(); keep loss.item().",
            wrong={
                "never zeroes the gradients": _train_epoch_no_zero_grad,
                "zeroes the gradients between backward and step": _train_epoch_zero_grad_after_backward,
                "leaves the model in eval mode": _train_epoch_eval_mode,
            },
        ),
        Exercise(
            ref.evaluate,
            _evaluate_cases,
            run=_run_evaluate,
            hint="Call model.eval() first. Count correct predictions (logits.argmax(-1) == labels) and examples over "
            "all batches, and divide at the end: the mean of per-batch accuracies is wrong when batch sizes differ.",
            wrong={
                "mean of per-batch accuracies": _evaluate_batch_mean,
                "stays in training mode": _evaluate_train_mode,
            },
        ),
        Exercise(
            ref.Conv2d,
            _conv_cases,
            oracle=_TorchConv2d,
            extra=_conv_init,
            hint="weight: (out_channels, in_channels, kernel_size, kernel_size); forward is F.conv2d(x, self.weight, "
            "self.bias, stride=self.stride, padding=self.padding). Uniform init with "
            "bound 1/sqrt(in_channels * kernel_size**2); bias None when bias=False.",
            wrong={"ignores padding": _ConvNoPadding, "flips the kernel": _ConvFlipped},
        ),
        Exercise(
            ref.MaxPool2d,
            _maxpool_cases,
            oracle=nn.MaxPool2d,
            hint="When stride is None, use kernel_size as the stride; then F.max_pool2d(x, kernel_size, stride, padding).",
            wrong={"stride defaults to 1": _PoolStrideOne, "averages": _AvgInsteadOfMax},
        ),
        Exercise(
            ref.BatchNorm2d,
            _batchnorm_cases,
            run=_run_batchnorm,
            oracle=nn.BatchNorm2d,
            hint="Training: normalise with the batch's mean and *biased* variance over (0, 2, 3); update running_mean "
            "and running_var as (1 - momentum) * old + momentum * new, with the *unbiased* variance; add 1 to "
            "num_batches_tracked. Eval: normalise with the running statistics and change nothing.",
            wrong={
                "unbiased variance to normalise": _BatchNormUnbiasedNormalise,
                "biased variance in running_var": _BatchNormBiasedRunningVar,
                "batch statistics in eval mode": _BatchNormBatchStatsInEval,
                "momentum the wrong way round": _BatchNormMomentumSwapped,
                "num_batches_tracked never counts": _BatchNormNoCounter,
            },
        ),
        Exercise(
            ref.AveragePool,
            _average_pool_cases,
            oracle=_TorchAveragePool,
            hint="x.mean(dim=(2, 3)): average over height and width, keep batch and channels.",
            wrong={"over channels and height": _AveragePoolOverChannels, "sums": _AveragePoolSum},
        ),
        Exercise(
            ref.ResidualBlock,
            _residual_block_cases,
            oracle=_TorchResidualBlock,
            hint="left = Sequential(Conv2d 3x3 stride first_stride padding 1, BatchNorm2d, ReLU, Conv2d 3x3 padding 1, "
            "BatchNorm2d), convolutions with bias=False; right = Identity() if first_stride == 1 and in_feats == "
            "out_feats, else Sequential(Conv2d 1x1 stride first_stride, BatchNorm2d); return relu(left(x) + right(x)).",
            wrong={
                "ReLU before the addition": _BlockReLUBeforeAdd,
                "no final ReLU": _BlockNoFinalReLU,
                "no shortcut": _BlockNoShortcut,
                "stride on the second convolution": _BlockStrideOnSecondConv,
            },
        ),
        Exercise(
            ref.BlockGroup,
            _block_group_cases,
            oracle=_TorchBlockGroup,
            hint="self.blocks = Sequential(ResidualBlock(in_feats, out_feats, first_stride), then n_blocks - 1 times "
            "ResidualBlock(out_feats, out_feats)): only the first block changes the shape.",
            wrong={"every block strides": _GroupStrideEverywhere},
        ),
        Exercise(
            ref.ResNet34,
            _resnet_cases,
            oracle=_TorchResNet34,
            extra=_resnet_parameter_count,
            atol=1e-4,
            rtol=1e-3,
            hint="in_layers: Conv2d 7x7 stride 2 padding 3 (no bias) to out_features_per_group[0], BatchNorm2d, ReLU, "
            "MaxPool2d(3, 2, 1). residual_layers: one BlockGroup per group, each taking the previous group's "
            "width. out_layers: AveragePool, Flatten, Linear.",
            wrong={"no max pooling": _ResNetNoMaxPool, "ReLU on the logits": _ResNetReLUOnLogits},
        ),
        Exercise(
            ref.as_strided_trace,
            _trace_cases,
            oracle=_torch_trace,
            hint="Use the tensor's own strides: mat.as_strided((n,), (mat.stride(0) + mat.stride(1),)).sum().",
            wrong={"assumes a contiguous matrix": _trace_contiguous, "sums the first column": _trace_first_column},
        ),
        Exercise(
            ref.as_strided_matmul,
            _matmul_cases,
            oracle=torch.matmul,
            hint="View a as (i, j, k) with strides (a.stride(0), a.stride(1), 0) and b as (i, j, k) with strides "
            "(0, b.stride(0), b.stride(1)); multiply and sum over j.",
            wrong={
                "assumes contiguous inputs": _matmul_assumes_contiguous,
                "sums over k instead of j": _matmul_sums_wrong_axis,
            },
        ),
        Exercise(
            ref.conv1d_minimal,
            _conv1d_cases,
            oracle=F.conv1d,
            hint="View x as (batch, in_channels, output_width, kernel_width) with strides (s_b, s_c, s_w, s_w), then "
            "einsum 'b c ow kw, o c kw -> b o ow'. Don't flip the kernel: torch's 'convolution' is a cross-correlation.",
            wrong={"flips the kernel": _conv1d_flipped, "sums the channels first": _conv1d_channels_summed_first},
        ),
        Exercise(
            ref.pad2d,
            _pad2d_cases,
            oracle=_torch_pad2d,
            hint="x.new_full((..., top + height + bottom, left + width + right), pad_value), then copy x into "
            "out[..., top:top + height, left:left + width].",
            wrong={"rows and columns swapped": _pad2d_swapped, "always pads with zeros": _pad2d_always_zero},
        ),
        Exercise(
            ref.conv2d_strided,
            _conv2d_strided_cases,
            oracle=F.conv2d,
            hint="Pad with pad2d first. The windows view has shape (b, c, oh, ow, kh, kw) and strides "
            "(s_b, s_c, s_h * stride, s_w * stride, s_h, s_w); oh = (height - kh) // stride + 1 after padding.",
            wrong={"ignores stride": _conv2d_stride_ignored, "pads one side only": _conv2d_padding_one_side},
        ),
        Exercise(
            ref.maxpool2d_strided,
            _maxpool_strided_cases,
            oracle=F.max_pool2d,
            hint="stride defaults to kernel_size. Pad with -inf (a zero could beat all-negative windows), take the "
            "same windows view as in conv2d_strided, then .amax(dim=(-2, -1)).",
            wrong={"pads with zeros": _maxpool_zero_padding, "stride defaults to 1": _maxpool_stride_one},
        ),
    ],
)

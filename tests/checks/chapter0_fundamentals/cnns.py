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
from tests.harness import Case, Checker, Exercise, Mismatch


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
    assert values.min() < -bound / 2, (
        f"{what} lies in [{values.min():.3g}, {values.max():.3g}]: it should cover both signs, "
        f"[-{bound:.3g}, {bound:.3g}]"
    )
    if values.numel() >= 2000:
        # A uniform draw on [-bound, bound] has standard deviation bound / sqrt(3); over 2000 or more values
        # the sample's has a relative standard error of at most 1%, so 5% is 5 standard errors.
        ratio = values.std().item() / (bound / math.sqrt(3))
        assert 0.95 < ratio < 1.05, (
            f"{what} has a standard deviation {ratio:.2f} times that of a uniform draw "
            f"on [-{bound:.3g}, {bound:.3g}]: is the bound computed from the fan-in alone?"
        )


def _seeded(extra):
    """Run an initialisation check on a fixed seed, leaving the learner's random state as it was."""

    def run(impl) -> None:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            extra(impl)

    return run


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
    assert impl(6, 40, 3, bias=False).bias is None, "Conv2d(..., bias=False).bias should be None"


# ----------------------------------------------------------------------------- wrong implementations


class _LeakyReLU(nn.Module):
    def forward(self, x):
        return F.leaky_relu(x, 0.01)


class _InPlaceReLU(nn.Module):
    def forward(self, x):
        return x.clamp_(min=0)


class _MaskReLU(nn.Module):
    def forward(self, x):
        return x * (x > 0)


class _AbsReLU(nn.Module):
    def forward(self, x):
        return (x + x.abs()) / 2


class _NonNegativeInitLinear(ref.Linear):
    def __init__(self, in_features, out_features, bias=True):
        super().__init__(in_features, out_features, bias)
        with torch.no_grad():
            self.weight.abs_()
            if self.bias is not None:
                self.bias.abs_()


class _BatchAxisLinear(ref.Linear):
    def forward(self, x):
        out = torch.einsum("b...i,oi->b...o", x, self.weight)
        return out if self.bias is None else out + self.bias


class _ViewFlatten(ref.Flatten):
    def forward(self, x):
        start, end = self.start_dim % x.ndim, self.end_dim % x.ndim
        return x.view(*x.shape[:start], -1, *x.shape[end + 1 :])


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


class _XavierConv(ref.Conv2d):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, bias)
        nn.init.xavier_uniform_(self.weight)


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


class _BatchNormEpsOnStd(ref.BatchNorm2d):
    def forward(self, x):
        mean, var = (
            (x.mean(dim=(0, 2, 3)), x.var(dim=(0, 2, 3), unbiased=False))
            if self.training
            else (self.running_mean, self.running_var)
        )
        super().forward(x)  # updates the running statistics in training mode
        as_channels = lambda t: t[None, :, None, None]  # noqa: E731
        normalised = (x - as_channels(mean)) / (as_channels(var).sqrt() + self.eps)
        return normalised * as_channels(self.weight) + as_channels(self.bias)


class _BatchNormNoEpsInEval(ref.BatchNorm2d):
    def forward(self, x):
        if self.training:
            return super().forward(x)
        as_channels = lambda t: t[None, :, None, None]  # noqa: E731
        normalised = (x - as_channels(self.running_mean)) / as_channels(self.running_var).sqrt()
        return normalised * as_channels(self.weight) + as_channels(self.bias)


class _BatchNormUpdatesInEval(ref.BatchNorm2d):
    def forward(self, x):
        out = super().forward(x)
        if not self.training:  # updates the running statistics after using them
            self.training = True
            super().forward(x)
            self.training = False
        return out


class _BatchNormGradientInBuffers(ref.BatchNorm2d):
    def forward(self, x):
        if not self.training:
            return super().forward(x)
        mean, var = x.mean(dim=(0, 2, 3)), x.var(dim=(0, 2, 3), unbiased=False)
        n = x.numel() / self.num_features
        self.running_mean = (1 - self.momentum) * self.running_mean + self.momentum * mean
        self.running_var = (1 - self.momentum) * self.running_var + self.momentum * var * n / (n - 1)
        self.num_batches_tracked += 1
        as_channels = lambda t: t[None, :, None, None]  # noqa: E731
        normalised = (x - as_channels(mean)) / torch.sqrt(as_channels(var) + self.eps)
        return normalised * as_channels(self.weight) + as_channels(self.bias)


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


class _BlockShortcutByWidthOnly(ref.ResidualBlock):
    def __init__(self, in_feats, out_feats, first_stride=1):
        super().__init__(in_feats, out_feats, first_stride)
        if in_feats == out_feats:
            self.right = nn.Identity()


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


def _train_epoch_loop(
    model, optimizer, loader, *, zero_grad="before backward", keep_tensors=False, by_position=False, train_mode=True
):
    """The reference's loop with one thing changed, for the wrong implementations below."""
    if train_mode:
        model.train()
    losses = []
    batches = (loader[i] for i in range(len(loader))) if by_position else loader
    for images, labels in batches:
        loss = F.cross_entropy(model(images), labels)
        if zero_grad == "before backward":
            optimizer.zero_grad()
        loss.backward()
        if zero_grad == "after backward":
            optimizer.zero_grad()
        optimizer.step()
        losses.append(loss if keep_tensors else loss.item())
    return losses


def _train_epoch_no_zero_grad(model, optimizer, loader):
    return _train_epoch_loop(model, optimizer, loader, zero_grad="never")


def _train_epoch_zero_grad_after_backward(model, optimizer, loader):
    return _train_epoch_loop(model, optimizer, loader, zero_grad="after backward")


def _train_epoch_keeps_tensors(model, optimizer, loader):
    return _train_epoch_loop(model, optimizer, loader, keep_tensors=True)


def _train_epoch_indexes_loader(model, optimizer, loader):
    return _train_epoch_loop(model, optimizer, loader, by_position=True)


def _train_epoch_eval_mode(model, optimizer, loader):
    return _train_epoch_loop(model, optimizer, loader, train_mode=False)


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


@torch.no_grad()
def _evaluate_two_passes(model, loader):
    model.eval()
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


def _conv1d_assumes_contiguous(x, weights):
    batch, in_channels, width = x.shape
    kernel_width = weights.shape[-1]
    windows = x.as_strided(
        (batch, in_channels, width - kernel_width + 1, kernel_width), (in_channels * width, width, 1, 1)
    )
    return torch.einsum("bcwk,ock->bow", windows, weights)


def _pad2d_default_dtype(x, left, right, top, bottom, pad_value):
    *batch, height, width = x.shape
    out = torch.full((*batch, top + height + bottom, left + width + right), pad_value)
    out[..., top : top + height, left : left + width] = x
    return out


def _pad2d_swapped(x, left, right, top, bottom, pad_value):
    return ref.pad2d(x, top, bottom, left, right, pad_value)


def _pad2d_always_zero(x, left, right, top, bottom, pad_value):
    return ref.pad2d(x, left, right, top, bottom, 0.0)


def _conv2d_stride_ignored(x, weights, stride=1, padding=0):
    return ref.conv2d_strided(x, weights, 1, padding)


def _conv2d_assumes_contiguous(x, weights, stride=1, padding=0):
    if padding:
        x = ref.pad2d(x, padding, padding, padding, padding, 0.0)
    batch, channels, height, width = x.shape
    kernel_height, kernel_width = weights.shape[-2:]
    out_height, out_width = (height - kernel_height) // stride + 1, (width - kernel_width) // stride + 1
    s_b, s_c, s_h, s_w = channels * height * width, height * width, width, 1
    windows = x.as_strided(
        (batch, channels, out_height, out_width, kernel_height, kernel_width),
        (s_b, s_c, s_h * stride, s_w * stride, s_h, s_w),
    )
    return torch.einsum("bchwij,ocij->bohw", windows, weights)


def _conv2d_padding_one_side(x, weights, stride=1, padding=0):
    x = ref.pad2d(x, 0, 2 * padding, 0, 2 * padding, 0.0)
    return ref.conv2d_strided(x, weights, stride, 0)


def _maxpool_zero_padding(x, kernel_size, stride=None, padding=0):
    return ref.maxpool2d_strided(ref.pad2d(x, padding, padding, padding, padding, 0.0), kernel_size, stride, 0)


def _maxpool_big_negative_padding(x, kernel_size, stride=None, padding=0):
    padded = ref.pad2d(x, padding, padding, padding, padding, -1e9)
    return ref.maxpool2d_strided(padded, kernel_size, stride, 0)


def _maxpool_stride_one(x, kernel_size, stride=None, padding=0):
    return ref.maxpool2d_strided(x, kernel_size, stride or 1, padding)


def _torch_pad2d(x, left, right, top, bottom, pad_value):
    return F.pad(x, (left, right, top, bottom), value=pad_value)


def _torch_trace(mat):
    return torch.trace(mat)


# ----------------------------------------------------------------------------- fit: early stopping


def _fit_loop(
    model,
    optimizer,
    train_loader,
    val_loader,
    max_epochs,
    patience,
    *,
    improved,
    copy_state=True,
    reset=True,
    stop_after=None,
):
    """The reference's loop with one thing changed, for the wrong implementations below."""
    accuracies, best_state, since_best = [], None, 0
    stop_after = patience if stop_after is None else stop_after
    for _ in range(max_epochs):
        ref.train_epoch(model, optimizer, train_loader)
        accuracies.append(ref.evaluate(model, val_loader))
        if best_state is None or improved(accuracies[-1], max(accuracies[:-1])):
            best_state = {k: v.clone() for k, v in model.state_dict().items()} if copy_state else model.state_dict()
            since_best = 0 if reset else since_best
        else:
            since_best += 1
            if since_best == stop_after:
                break
    model.load_state_dict(best_state)
    return accuracies


def _fit_keeps_last(model, optimizer, train_loader, val_loader, max_epochs, patience):
    accuracies, since_best = [], 0
    for _ in range(max_epochs):
        ref.train_epoch(model, optimizer, train_loader)
        accuracies.append(ref.evaluate(model, val_loader))
        since_best = 0 if len(accuracies) == 1 or accuracies[-1] > max(accuracies[:-1]) else since_best + 1
        if since_best == patience:
            break
    return accuracies


def _fit_uncopied_checkpoint(*args):
    return _fit_loop(*args, improved=lambda new, best: new > best, copy_state=False)


def _fit_ties_improve(*args):
    return _fit_loop(*args, improved=lambda new, best: new >= best)


def _fit_never_resets(*args):
    return _fit_loop(*args, improved=lambda new, best: new > best, reset=False)


def _fit_one_epoch_late(model, optimizer, train_loader, val_loader, max_epochs, patience):
    return _fit_loop(
        model,
        optimizer,
        train_loader,
        val_loader,
        max_epochs,
        patience,
        improved=lambda new, best: new > best,
        stop_after=patience + 1,
    )


def _fit_by_hindsight(model, optimizer, train_loader, val_loader, max_epochs, patience):
    """An independent version: keep every epoch's weights, and stop once the first best is patience epochs old."""
    accuracies, states = [], []
    for _ in range(max_epochs):
        ref.train_epoch(model, optimizer, train_loader)
        accuracies.append(ref.evaluate(model, val_loader))
        states.append({k: v.clone() for k, v in model.state_dict().items()})
        if len(accuracies) - 1 - accuracies.index(max(accuracies)) == patience:
            break
    model.load_state_dict(states[accuracies.index(max(accuracies))])
    return accuracies


def _run_fit(impl, case):
    seed, lr, max_epochs, patience = case.args
    model = _small_bn_net(seed)
    gen = torch.Generator().manual_seed(seed)
    train_loader = [(torch.randn(8, 3, 2, 2, generator=gen), torch.randint(3, (8,), generator=gen)) for _ in range(3)]
    val_loader = [(torch.randn(6, 3, 2, 2, generator=gen), torch.randint(3, (6,), generator=gen)) for _ in range(2)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: on a busy CPU, threads that keep in step cost seconds per case
    try:
        with torch.enable_grad():  # training needs gradients, even where the harness replays a known mistake
            accuracies = impl(
                model, torch.optim.SGD(model.parameters(), lr=lr), train_loader, val_loader, max_epochs, patience
            )
    finally:
        torch.set_num_threads(threads)
    return accuracies, {name: value.clone() for name, value in model.state_dict().items()}


def _fit_cases(gen):
    compared = "seed, lr, max_epochs, patience; compared: (your accuracies, the model's state_dict afterwards)"
    yield Case((0, 0.5, 12, 2), f"equal accuracies from the start, patience 2; {compared}")
    yield Case((1, 0.3, 6, 10), f"patience longer than max_epochs: all 6 epochs run; {compared}")
    yield Case((3, 0.5, 1, 2), f"a single epoch: it is the best; {compared}")
    yield Case((2, 1.0, 15, 3), f"a tie, then new bests, then a fall, patience 3; {compared}")
    yield Case((4, 0.5, 15, 1), f"patience 1: stop at the first epoch without a new best; {compared}")
    yield Case((5, 0.8, 20, 4), f"the first epoch is the best, patience 4; {compared}")


# ----------------------------------------------------------------------------- ResNet parameter count


def _count_by_building(*args):
    return sum(p.numel() for p in ref.ResNet34(*args).parameters())


def _count_without_shortcuts(*args):
    n_blocks, widths, strides, *rest = args
    count = ref.resnet_parameter_count(*args)
    in_feats = widths[0]
    for width, stride in zip(widths, strides):
        if stride != 1 or in_feats != width:
            count -= in_feats * width + 2 * width
        in_feats = width
    return count


def _count_shortcut_by_width_only(*args):
    n_blocks, widths, strides, *rest = args
    count = ref.resnet_parameter_count(*args)
    in_feats = widths[0]
    for width, stride in zip(widths, strides):
        if stride != 1 and in_feats == width:
            count -= in_feats * width + 2 * width
        in_feats = width
    return count


def _count_with_buffers(*args):
    model = ref.ResNet34(*args)
    return sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in model.buffers())


def _count_conv_biases(*args):
    model = ref.ResNet34(*args)
    return ref.resnet_parameter_count(*args) + sum(m.out_channels for m in model.modules() if isinstance(m, ref.Conv2d))


def _count_no_classifier_bias(*args):
    return ref.resnet_parameter_count(*args) - args[3]


def _count_bn_weight_only(*args):
    model = ref.ResNet34(*args)
    return ref.resnet_parameter_count(*args) - sum(
        m.num_features for m in model.modules() if isinstance(m, ref.BatchNorm2d)
    )


def _parameter_count_cases(gen):
    yield Case(((1,), (2,), (1,), 3, 1), "one block, 1 -> 2 channels, 3 classes: 102 + 80 + 9 by hand", expected=191)
    yield Case(
        ((3, 4, 6, 3), (64, 128, 256, 512), (1, 2, 2, 2), 1000, 3),
        "ResNet34: torchvision's resnet34",
        expected=21_797_672,
    )
    yield Case(((2, 1), (8, 16), (1, 2), 10, 1), "two groups, widths 8 and 16")
    yield Case(((1, 2), (6, 6), (1, 2), 4, 2), "a stride-2 group that keeps the width (the shortcut converts)")
    yield Case(((1, 1, 1), (4, 4, 8), (1, 1, 1), 7, 3), "stride 1 throughout, widths 4, 4 and 8")


# ----------------------------------------------------------------------------- receptive field


def _receptive_field_by_gradient(layers):
    """An independent measure: from the first to the last input with a nonzero gradient for output 0 of a chain
    of positive kernels."""
    length = 1 + sum((k - 1) * math.prod(s for _, s in layers[:i]) for i, (k, _) in enumerate(layers))
    length += math.prod(s for _, s in layers)  # room for a complete last window
    with torch.enable_grad():  # the harness runs references without gradients
        x = torch.ones(1, 1, length, dtype=torch.float64, requires_grad=True)
        out = x
        for kernel_size, stride in layers:
            out = F.conv1d(out, torch.ones(1, 1, kernel_size, dtype=torch.float64), stride=stride)
        (grad,) = torch.autograd.grad(out[0, 0, 0], x)
    read = grad[0, 0].nonzero()
    return int(read.max() - read.min() + 1)


def _receptive_field_ignores_strides(layers):
    return 1 + sum(k - 1 for k, _ in layers)


def _receptive_field_own_stride(layers):
    return 1 + sum((k - 1) * s for k, s in layers)


def _receptive_field_stride_first(layers):
    size, spacing = 1, 1
    for kernel_size, stride in layers:
        spacing *= stride
        size += (kernel_size - 1) * spacing
    return size


def _receptive_field_kernel_product(layers):
    return math.prod(k for k, _ in layers)


def _receptive_field_cases(gen):
    yield Case(([(3, 1), (3, 1)],), "two 3x3 convolutions, stride 1: 5 by hand", expected=5)
    yield Case(([(7, 2), (3, 2)],), "ResNet's stem, a 7 stride 2 and a 3 stride 2: 7 + 2 x 2 = 11", expected=11)
    yield Case(([],), "no layers: the position itself", expected=1)
    yield Case(([(2, 2)] * 3,), "three non-overlapping 2x2 pools: 8", expected=8)
    yield Case(
        ([(1, 2), (3, 1), (5, 3), (1, 1), (3, 2), (2, 1)],),
        "kernels of 1 among strided layers (the field has gaps; count its whole span)",
    )
    yield Case(([(3, 1)] * 12,), "twelve 3x3 convolutions (more layers than a short loop would cover)")


# ----------------------------------------------------------------------------- fusing BatchNorm into a convolution


def _conv_and_bn(seed, in_channels, out_channels, kernel_size, stride, padding, bias, eps, var_scale):
    """A Conv2d and a BatchNorm2d in eval mode with running statistics far from their initial values."""
    gen = torch.Generator().manual_seed(seed)
    conv = ref.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=bias)
    bn = ref.BatchNorm2d(out_channels, eps=eps)
    with torch.no_grad():
        conv.weight.copy_(_randn(gen, *conv.weight.shape))
        if bias:
            conv.bias.copy_(_randn(gen, out_channels))
        bn.weight.copy_(1 + _randn(gen, out_channels))
        bn.bias.copy_(_randn(gen, out_channels))
        bn.running_mean.copy_(3 * _randn(gen, out_channels))
        bn.running_var.copy_(var_scale * (0.2 + torch.rand(out_channels, generator=gen)))
    return conv, bn.eval(), gen


def _hand_made_conv_and_bn():
    """A 1x1 convolution 2x + 1 and a BatchNorm with running mean 3, running variance 4, eps 0, weight 0.5 and
    bias 1: bn(conv(x)) = (2x + 1 - 3) / 2 * 0.5 + 1 = x / 2 + 0.5."""
    conv, bn = ref.Conv2d(1, 1, 1), ref.BatchNorm2d(1, eps=0.0)
    with torch.no_grad():
        conv.weight.fill_(2.0)
        conv.bias.fill_(1.0)
        bn.weight.fill_(0.5)
        bn.bias.fill_(1.0)
        bn.running_mean.fill_(3.0)
        bn.running_var.fill_(4.0)
    return conv, bn.eval(), torch.tensor([[[[5.0, -1.0], [0.0, 2.0]]]])


def _run_fuse(impl, case):
    if case.args == ("by hand",):
        conv, bn, x = _hand_made_conv_and_bn()
    else:
        conv, bn, gen = _conv_and_bn(*case.args)
        x = _images(gen, 2, conv.in_channels, 7)

    def state():
        return {
            f"{who}.{name}": value.clone()
            for who, module in (("conv", conv), ("bn", bn))
            for name, value in module.state_dict().items()
        }

    before = state()
    fused = impl(conv, bn)
    after = state()
    changed = [name for name in before if not torch.equal(before[name], after[name])]
    if changed:
        raise Mismatch(
            f"fuse_conv_bn changed the inputs' {', '.join(changed)}: build a new Conv2d and leave conv "
            "and bn as they are"
        )
    if getattr(fused, "bias", None) is None or getattr(fused, "weight", None) is None:
        raise Mismatch(f"the result should be one convolution with a weight and a bias, got {type(fused).__name__}")
    with torch.no_grad():
        return fused(x)


def _fuse_by_probing(conv, bn):
    """An independent version: bn(conv(x)) is affine in x, so read the fused bias off a zero input and each
    output channel's fused kernel off the gradient of one output position (no padding, one window)."""
    out_channels, in_channels, k, _ = conv.weight.shape

    def composite(x):
        return bn(F.conv2d(x, conv.weight, conv.bias))[0, :, 0, 0]

    with torch.enable_grad():
        probe = torch.zeros(1, in_channels, k, k, requires_grad=True)
        kernels = torch.stack([torch.autograd.grad(composite(probe)[o], probe)[0][0] for o in range(out_channels)])
    fused = ref.Conv2d(in_channels, out_channels, k, conv.stride, conv.padding)
    with torch.no_grad():
        fused.weight.copy_(kernels)
        fused.bias.copy_(composite(torch.zeros(1, in_channels, k, k)))
    return fused


def _fuse_with(conv, bn, *, scale_of, use_mean=True, use_conv_bias=True, input_axis=False, in_place=False):
    with torch.no_grad():
        scale = bn.weight / scale_of(bn)
        fused = ref.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding)
        target = conv if in_place else fused
        shape = (1, -1, 1, 1) if input_axis else (-1, 1, 1, 1)
        target.weight.copy_(conv.weight * scale.reshape(shape))
        if target is not fused:
            fused.weight.copy_(conv.weight)
        conv_bias = conv.bias if conv.bias is not None and use_conv_bias else torch.zeros_like(bn.bias)
        fused.bias.copy_((conv_bias - (bn.running_mean if use_mean else 0)) * scale + bn.bias)
    return fused


def _sqrt_var_eps(bn):
    return torch.sqrt(bn.running_var + bn.eps)


def _fuse_eps_on_std(conv, bn):
    return _fuse_with(conv, bn, scale_of=lambda b: b.running_var.sqrt() + b.eps)


def _fuse_no_sqrt(conv, bn):
    return _fuse_with(conv, bn, scale_of=lambda b: b.running_var + b.eps)


def _fuse_keeps_mean(conv, bn):
    return _fuse_with(conv, bn, scale_of=_sqrt_var_eps, use_mean=False)


def _fuse_drops_conv_bias(conv, bn):
    return _fuse_with(conv, bn, scale_of=_sqrt_var_eps, use_conv_bias=False)


def _fuse_scales_inputs(conv, bn):
    return _fuse_with(conv, bn, scale_of=_sqrt_var_eps, input_axis=True)


def _fuse_in_place(conv, bn):
    return _fuse_with(conv, bn, scale_of=_sqrt_var_eps, in_place=True)


def _fuse_bias_unscaled(conv, bn):
    fused = _fuse_with(conv, bn, scale_of=_sqrt_var_eps)
    with torch.no_grad():
        conv_bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.bias)
        fused.bias.copy_(conv_bias - bn.running_mean + bn.bias)
    return fused


def _fuse_cases(gen):
    what = "seed, in, out, kernel, stride, padding, conv bias, eps, running_var scale"
    yield Case(
        ("by hand",),
        "by hand: conv 2x + 1, BatchNorm mean 3, variance 4, weight 0.5, bias 1, eps 0; on "
        "[[5, -1], [0, 2]] that is x / 2 + 0.5",
        expected=torch.tensor([[[[3.0, 0.0], [0.5, 1.5]]]]),
    )
    yield Case((0, 3, 4, 3, 1, 1, True, 1e-5, 1.0), f"3 -> 4 channels, kernel 3, with a conv bias; {what}")
    yield Case((1, 2, 5, 3, 2, 1, False, 1e-5, 1.0), f"stride 2, no conv bias (the ResNet's case); {what}")
    yield Case((2, 4, 4, 1, 1, 0, True, 1e-3, 1e-4), f"running variance near 0, eps 1e-3; {what}")
    yield Case((3, 1, 6, 7, 2, 3, False, 1e-5, 5.0), f"the stem: kernel 7, stride 2, padding 3; {what}")


# ----------------------------------------------------------------------------- cases


def _relu_cases(gen):
    yield Case(
        (torch.tensor([-2.0, -0.5, 0.0, 0.5, 3.0]),), "hand-made", expected=torch.tensor([0.0, 0.0, 0.0, 0.5, 3.0])
    )
    yield Case((_randn(gen, 4, 7),), "a random matrix")
    yield Case((_images(gen, 2, 3, 5),), "a batch of images")
    yield Case((torch.tensor([[-1.0, 2.0], [3.0, -4.0]], dtype=torch.float64),), "float64 keeps its dtype")
    extremes = torch.tensor([-math.inf, -3e38, -1.0, 0.0, 1.0, 3e38, math.inf])
    yield Case(
        (extremes,),
        "extreme values: -inf, -3e38, 3e38 and inf",
        expected=torch.tensor([0.0, 0.0, 0.0, 0.0, 1.0, 3e38, math.inf]),
    )


def _linear_cases(gen):
    yield Case((_randn(gen, 5, 3),), "batch of 5, 3 -> 4", init=(3, 4))
    yield Case((_randn(gen, 2, 6, 10),), "extra leading axes, 10 -> 1", init=(10, 1))
    yield Case((_randn(gen, 8, 64),), "64 -> 10", init=(64, 10))
    yield Case((_randn(gen, 3, 7),), "bias=False", init=(7, 5, False))
    yield Case((_randn(gen, 6),), "a single vector: no leading axes, 6 -> 3", init=(6, 3))


def _flatten_cases(gen):
    yield Case((_images(gen, 2, 3, 4),), "default: all but the batch axis", init=())
    yield Case((_images(gen, 2, 3, 4, 5),), "start_dim=0", init=(0,))
    yield Case((_images(gen, 2, 3, 4, 5),), "start_dim=1, end_dim=2", init=(1, 2))
    yield Case((_images(gen, 2, 3, 4, 5),), "negative dims: -3 to -2", init=(-3, -2))
    yield Case((_randn(gen, 6, 5),), "already flat", init=())
    yield Case((_images(gen, 3, 4, 5, 2).permute(0, 3, 1, 2),), "a permuted (non-contiguous) batch", init=())


def _mlp_cases(gen):
    yield Case((_images(gen, 5, 1, 8),), "five 8x8 digits", init=())
    yield Case((_images(gen, 3, 1, 4),), "16 -> 7 -> 3", init=(16, 7, 3))
    yield Case((_images(gen, 1, 2, 3),), "one image, 18 -> 5 -> 4", init=(18, 5, 4))


def _small_bn_net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))


def _run_train_epoch(impl, case):
    seed, batch_sizes, lr, one_pass = case.args
    model = _small_bn_net(seed)
    model.eval()  # as left by an evaluation: train_epoch must switch it back to training mode
    gen = torch.Generator().manual_seed(seed)
    loader = [(torch.randn(n, 3, 2, 2, generator=gen), torch.randint(3, (n,), generator=gen)) for n in batch_sizes]
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    with torch.enable_grad():  # training needs gradients, even where the harness replays a known mistake
        losses = impl(model, optimizer, (batch for batch in loader) if one_pass else loader)
    if isinstance(losses, list) and not all(isinstance(loss, float) for loss in losses):
        kinds = sorted({type(loss).__name__ for loss in losses})
        raise Mismatch(
            f"the losses should be Python floats, got {', '.join(kinds)}: a tensor keeps its whole "
            "computation graph alive"
        )
    return losses, [p.detach().clone() for p in model.parameters()]


def _train_epoch_cases(gen):
    compared = "seed, batch sizes, lr, one-pass loader; compared: (your losses, the parameters after the epoch)"
    yield Case((0, (8, 8, 8), 0.5, False), f"three batches of 8, lr 0.5; {compared}")
    yield Case((1, (16, 5), 0.1, False), f"a smaller last batch, lr 0.1; {compared}")
    yield Case((2, (4,) * 6, 1.0, False), f"six batches of 4, lr 1; {compared}")
    yield Case((3, (6, 6, 3), 0.5, True), f"a generator of batches: no len(), no indexing; {compared}")


def _run_evaluate(impl, case):
    kind, seed, batch_sizes, one_pass = case.args
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
    return impl(model, (batch for batch in loader) if one_pass else loader)


def _evaluate_cases(gen):
    yield Case(("logits", 0, (3, 2), False), "5 hand-made logits in batches of 3 and 2: 3 correct", expected=0.6)
    yield Case(("logits", 0, (4, 1), False), "the same in batches of 4 and 1", expected=0.6)
    for seed in range(3):
        yield Case(("batchnorm net", seed, (32, 7), False), "a net with BatchNorm, batches of 32 and 7")
    yield Case(
        ("logits", 0, (2, 2, 1), True),
        "the hand-made logits from a generator, which can be read only once",
        expected=0.6,
    )


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
    # Inside a network a BatchNorm's input carries gradients, so the training batches do here too.
    train_out = torch.stack([bn(x.detach().requires_grad_()) for x in batches])
    if torch.is_grad_enabled() and (bn.running_mean.requires_grad or bn.running_var.requires_grad):
        raise Mismatch(
            "running_mean or running_var records gradients (requires_grad=True): the running estimates "
            "would then chain every training step into one graph. Update them without gradients."
        )
    stats = (bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone())
    bn.eval()
    eval_out = bn(eval_batch)
    changed = [
        name
        for name, before in zip(("running_mean", "running_var", "num_batches_tracked"), stats)
        if not torch.equal(getattr(bn, name), before)
    ]
    if changed:
        raise Mismatch(f"eval mode changed {', '.join(changed)}: in eval mode the buffers must stay as they are")
    return train_out, *stats, eval_out


_BN_OUTPUTS = (
    "inputs: training batches, eval batch, weight, bias; "
    "compared: (train outputs, running_mean, running_var, num_batches_tracked, eval output)"
)


def _near_constant_batchnorm_case(gen):
    """Channel 0 varies by about 1e-3 (variance 1e-6, a tenth of eps), so adding eps to the standard deviation
    instead of the variance scales its normalised values by about 3; channel 1 is constant, so leaving eps out
    divides 0 by 0. Momentum 1 makes the running statistics the last batch's, so eval mode divides by a
    near-zero running variance too."""
    xs = torch.stack([0.25 + 1e-3 * _randn(gen, 2, 4, 4, 4), torch.full((2, 4, 4, 4), 0.5)], dim=2)
    eval_batch = torch.stack([0.25 + 1e-3 * _randn(gen, 3, 4, 4), 0.5 + 1e-3 * _randn(gen, 3, 4, 4)], dim=1)
    return Case(
        (xs, eval_batch, torch.tensor([1.5, 0.8]), torch.tensor([0.1, -0.2])),
        f"a nearly constant and a constant channel, momentum 1; {_BN_OUTPUTS}",
        init=(2, 1e-5, 1.0),
    )


def _batchnorm_cases(gen):
    for number, (init, batches, batch) in enumerate([((3,), 3, 4), ((4, 1e-3, 0.3), 2, 5), ((2,), 5, 2)]):
        if number == 1:  # early, so that a misplaced eps fails here, clearly, before it shows marginally
            yield _near_constant_batchnorm_case(gen)
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
    yield Case(
        (_images(gen, 2, 4, 6),), "4 -> 4 channels, stride 2 (the shortcut must still downsample)", init=(4, 4, 2)
    )


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
    yield Case((_randn(gen, 3, 2, 9)[:, :, 1:], _randn(gen, 2, 2, 3)), "a slice of a wider input (not contiguous)")


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
    yield Case((_randn(gen, 2, 3).double(), 1, 1, 1, 1, 0.5), "float64 keeps its dtype")


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
    yield Case(
        (_images(gen, 2, 2, 6, 5).transpose(-1, -2), _randn(gen, 3, 2, 2, 2)),
        "a transposed (non-contiguous) input, no padding",
    )


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
    yield Case(
        (-1e10 * (1 + _images(gen, 1, 2, 5).abs()), 2), "values near -1e10, padding 1", kwargs=dict(stride=2, padding=1)
    )


def _dilated_undilated_output_size(x, weights, stride=1, padding=0, dilation=1):
    x = ref.pad2d(x, padding, padding, padding, padding, 0.0)
    batch, channels, height, width = x.shape
    kernel_height, kernel_width = weights.shape[-2:]
    out_height, out_width = (height - kernel_height) // stride + 1, (width - kernel_width) // stride + 1
    s_b, s_c, s_h, s_w = x.stride()
    windows = x.as_strided(
        (batch, channels, out_height, out_width, kernel_height, kernel_width),
        (s_b, s_c, s_h * stride, s_w * stride, s_h * dilation, s_w * dilation),
    )
    return torch.einsum("bchwij,ocij->bohw", windows, weights)


def _dilated_on_output_steps(x, weights, stride=1, padding=0, dilation=1):
    return ref.conv2d_strided(x, weights, stride * dilation, padding)


def _dilated_ignored(x, weights, stride=1, padding=0, dilation=1):
    return ref.conv2d_strided(x, weights, stride, padding)


def _conv2d_dilated_cases(gen):
    x, w = torch.arange(9.0).reshape(1, 1, 3, 3), torch.ones(1, 1, 2, 2)
    yield Case(
        (x, w),
        "0..8 in 3x3, a 2x2 kernel of ones, dilation 2: the four corners, 16",
        kwargs=dict(dilation=2),
        expected=torch.tensor([[[[16.0]]]]),
    )
    yield Case((_images(gen, 2, 3, 9), _randn(gen, 4, 3, 3, 3)), "dilation 2, kernel 3", kwargs=dict(dilation=2))
    yield Case(
        (_images(gen, 1, 2, 11, 9), _randn(gen, 3, 2, 3, 2)),
        "stride 2, padding 1, dilation 3, non-square kernel",
        kwargs=dict(stride=2, padding=1, dilation=3),
    )
    yield Case(
        (_images(gen, 2, 2, 6), _randn(gen, 2, 2, 3, 3)),
        "dilation 1 is conv2d_strided",
        kwargs=dict(stride=1, padding=1),
    )
    yield Case(
        (_images(gen, 2, 2, 8, 7).transpose(-1, -2), _randn(gen, 3, 2, 2, 2)),
        "a transposed (non-contiguous) input, dilation 2, no padding",
        kwargs=dict(dilation=2),
    )


# ----------------------------------------------------------------------------- the exercises

check = Checker(
    "0.2",
    [
        Exercise(
            ref.ReLU,
            _relu_cases,
            oracle=nn.ReLU,
            hint="Look at the negative inputs, and at the extremes: -inf should give 0, not NaN. Return a new "
            "tensor of x's dtype rather than changing x.",
            wrong={
                "lets negative values through with a small slope (a leaky ReLU)": _LeakyReLU,
                "changes x in place": _InPlaceReLU,
                "multiplies x by a 0/1 mask, and -inf times 0 is NaN": _MaskReLU,
                "averages x and |x|, which is NaN at -inf and overflows near the largest floats": _AbsReLU,
            },
        ),
        Exercise(
            ref.Linear,
            _linear_cases,
            oracle=nn.Linear,
            extra=_seeded(_linear_init),
            hint="Which axis of weight meets the last axis of x? The output keeps every leading axis of x, even "
            "when there are none. The initialisation should be symmetric around 0, with its bound set by "
            "in_features alone; bias is None when bias=False.",
            wrong={
                "normal initialisation instead of uniform": _NormalInitLinear,
                "reshapes the weight instead of transposing it": _UntransposedLinear,
                "initialises in [0, bound) only, with no negative values": _NonNegativeInitLinear,
                "expects a batch axis before the features": _BatchAxisLinear,
            },
        ),
        Exercise(
            ref.Flatten,
            _flatten_cases,
            oracle=nn.Flatten,
            hint="Which axes survive unchanged, before start_dim and after end_dim (end_dim is included in the "
            "merge)? Negative axes count from the end, and the input may be non-contiguous.",
            wrong={
                "ignores end_dim and flattens to the end": _FlattenToEnd,
                "treats end_dim as exclusive": _FlattenExclusiveEnd,
                "uses view, which fails on a non-contiguous input": _ViewFlatten,
            },
        ),
        Exercise(
            ref.SimpleMLP,
            _mlp_cases,
            oracle=_TorchSimpleMLP,
            hint="Check the submodules' names and the order you apply them in; the logits themselves can be negative.",
            wrong={
                "no ReLU between the layers (the MLP is then one linear map)": _MLPNoReLU,
                "a ReLU on the logits, which can then never be negative": _MLPReLUAtEnd,
            },
        ),
        Exercise(
            ref.train_epoch,
            _train_epoch_cases,
            run=_run_train_epoch,
            oracle=_manual_train_epoch,
            hint="Which mode is the model in when training starts? Are the gradients cleared before each "
            "backward pass, and not between backward and the step? Iterate over the loader once, and "
            "return each batch's loss as a Python float.",
            wrong={
                "never clears the gradients, so they accumulate across batches": _train_epoch_no_zero_grad,
                "clears the gradients between backward and the step": _train_epoch_zero_grad_after_backward,
                "leaves the model in eval mode": _train_epoch_eval_mode,
                "keeps the loss tensors instead of Python floats": _train_epoch_keeps_tensors,
                "indexes the loader by position instead of iterating over it": _train_epoch_indexes_loader,
            },
        ),
        Exercise(
            ref.evaluate,
            _evaluate_cases,
            run=_run_evaluate,
            hint="Is the model in eval mode? Count correct answers and examples over all batches in one pass, "
            "and divide once at the end: batch sizes may differ.",
            wrong={
                "averages the per-batch accuracies, which is wrong when batch sizes differ": _evaluate_batch_mean,
                "stays in training mode": _evaluate_train_mode,
                "reads the loader twice, and a generator is empty the second time": _evaluate_two_passes,
            },
        ),
        Exercise(
            ref.fit,
            _fit_cases,
            run=_run_fit,
            oracle=_fit_by_hindsight,
            hint="Which epoch's weights does the model end with, and is your saved copy really a copy (does it "
            "change when training goes on)? Does an accuracy equal to the best so far count as a new best? "
            "Count the epochs since the last new best, and stop when that count reaches patience.",
            wrong={
                "saves state_dict() without copying it, so the saved weights keep training (and the model "
                "ends with the last epoch's)": _fit_uncopied_checkpoint,
                "keeps the last epoch's weights instead of the best epoch's": _fit_keeps_last,
                "counts an accuracy equal to the best as a new best": _fit_ties_improve,
                "never resets the count of epochs without a new best": _fit_never_resets,
                "stops one epoch late": _fit_one_epoch_late,
            },
        ),
        Exercise(
            ref.Conv2d,
            _conv_cases,
            oracle=_TorchConv2d,
            extra=_seeded(_conv_init),
            hint="Does forward pass the stride and the padding on? Is the kernel used as it is, unflipped? The "
            "initialisation bound comes from the fan-in: how many inputs does one output sum over?",
            wrong={
                "ignores the padding": _ConvNoPadding,
                "flips the kernel (a true convolution)": _ConvFlipped,
                "Xavier (Glorot) initialisation, whose bound counts the outputs too": _XavierConv,
            },
        ),
        Exercise(
            ref.MaxPool2d,
            _maxpool_cases,
            oracle=nn.MaxPool2d,
            hint="What stride do you use when the caller passes none? And is it the maximum you take?",
            wrong={
                "stride defaults to 1 instead of the kernel size": _PoolStrideOne,
                "averages each window instead of taking its maximum": _AvgInsteadOfMax,
            },
        ),
        Exercise(
            ref.BatchNorm2d,
            _batchnorm_cases,
            run=_run_batchnorm,
            oracle=nn.BatchNorm2d,
            hint="Compare with the prose, one quantity at a time: which axes the statistics pool over, which "
            "variance (biased or unbiased) normalises and which goes into running_var, where eps sits "
            "(a nearly constant channel shows it), which way round momentum weighs old and new, and "
            "what eval mode reads and leaves alone.",
            wrong={
                "normalises with the unbiased variance": _BatchNormUnbiasedNormalise,
                "puts the biased variance into running_var": _BatchNormBiasedRunningVar,
                "uses the batch's statistics in eval mode": _BatchNormBatchStatsInEval,
                "weighs old and new the wrong way round with momentum": _BatchNormMomentumSwapped,
                "never counts num_batches_tracked": _BatchNormNoCounter,
                "adds eps to the standard deviation instead of the variance": _BatchNormEpsOnStd,
                "leaves eps out in eval mode": _BatchNormNoEpsInEval,
                "updates the running statistics in eval mode too": _BatchNormUpdatesInEval,
                "updates the running statistics while recording gradients": _BatchNormGradientInBuffers,
            },
        ),
        Exercise(
            ref.AveragePool,
            _average_pool_cases,
            oracle=_TorchAveragePool,
            hint="Which axes are averaged away, and which stay? The output has one number per image and channel.",
            wrong={
                "averages over channels and height instead of height and width": _AveragePoolOverChannels,
                "sums instead of averaging": _AveragePoolSum,
            },
        ),
        Exercise(
            ref.ResidualBlock,
            _residual_block_cases,
            oracle=_TorchResidualBlock,
            hint="When is the shortcut the identity: do both the widths and the stride allow it? Where is the "
            "ReLU, and which convolution takes first_stride?",
            wrong={
                "a ReLU on the left branch before the sum instead of after it": _BlockReLUBeforeAdd,
                "no ReLU after the sum": _BlockNoFinalReLU,
                "no shortcut": _BlockNoShortcut,
                "the stride on the second convolution instead of the first": _BlockStrideOnSecondConv,
                "an identity shortcut whenever the widths match, even with stride 2": _BlockShortcutByWidthOnly,
            },
        ),
        Exercise(
            ref.BlockGroup,
            _block_group_cases,
            oracle=_TorchBlockGroup,
            hint="Only the first block changes the shape: what are the width and stride of the others?",
            wrong={"every block strides, not just the first": _GroupStrideEverywhere},
        ),
        Exercise(
            ref.ResNet34,
            _resnet_cases,
            oracle=_TorchResNet34,
            extra=_resnet_parameter_count,
            atol=1e-4,
            rtol=1e-3,
            hint="Follow the shapes through the stem, the groups and the classifier: the stem's width is the first "
            "group's, each group takes the previous group's width, and nothing follows the last Linear.",
            wrong={"no max pooling in the stem": _ResNetNoMaxPool, "a ReLU on the logits": _ResNetReLUOnLogits},
        ),
        Exercise(
            ref.resnet_parameter_count,
            _parameter_count_cases,
            oracle=_count_by_building,
            hint="Go layer by layer: a convolution without bias has in x out x kernel area weights, a BatchNorm "
            "trains two numbers per channel (its running statistics are buffers, not parameters), and a "
            "block has a converting shortcut exactly when its stride or its width changes.",
            wrong={
                "forgets the shortcuts' 1x1 convolutions and BatchNorms": _count_without_shortcuts,
                "adds a converting shortcut only when the width changes, not the stride": _count_shortcut_by_width_only,
                "counts BatchNorm's running statistics (buffers) as parameters": _count_with_buffers,
                "gives every convolution a bias": _count_conv_biases,
                "forgets the classifier's bias": _count_no_classifier_bias,
                "counts one parameter per BatchNorm channel instead of two": _count_bn_weight_only,
            },
        ),
        Exercise(
            ref.receptive_field,
            _receptive_field_cases,
            oracle=_receptive_field_by_gradient,
            hint="A layer's kernel widens the field by kernel_size - 1 of its own input positions; how many "
            "network-input positions apart are those? That depends on the strides of the layers before it, "
            "not on its own.",
            wrong={
                "ignores the strides": _receptive_field_ignores_strides,
                "spaces each layer's kernel by its own stride instead of the earlier layers' strides": _receptive_field_own_stride,
                "includes a layer's own stride in its spacing": _receptive_field_stride_first,
                "multiplies the kernel sizes": _receptive_field_kernel_product,
            },
        ),
        Exercise(
            ref.fuse_conv_bn,
            _fuse_cases,
            run=_run_fuse,
            oracle=_fuse_by_probing,
            hint="In eval mode BatchNorm is an affine map per output channel: work out its scale and its shift, "
            "then which axis of the convolution's weight the scale multiplies and what becomes of the "
            "shift and of the convolution's own bias (which may be None). A running variance near 0 shows "
            "where eps sits.",
            wrong={
                "adds eps to the standard deviation instead of the variance": _fuse_eps_on_std,
                "divides by the variance instead of the standard deviation": _fuse_no_sqrt,
                "leaves out the running mean": _fuse_keeps_mean,
                "drops the convolution's own bias": _fuse_drops_conv_bias,
                "scales the input channels instead of the output channels": _fuse_scales_inputs,
                "does not scale the convolution's bias and the running mean": _fuse_bias_unscaled,
                "changes the original convolution's weight in place": _fuse_in_place,
            },
        ),
        Exercise(
            ref.as_strided_trace,
            _trace_cases,
            oracle=_torch_trace,
            hint="The matrix may be a transpose or a slice of a bigger one: read its strides instead of assuming "
            "a contiguous layout. One step along the diagonal is one step down and one step right.",
            wrong={"assumes a contiguous matrix": _trace_contiguous, "sums the first column": _trace_first_column},
        ),
        Exercise(
            ref.as_strided_matmul,
            _matmul_cases,
            oracle=torch.matmul,
            hint="Read each input's own strides (it may be a transpose), use a stride of 0 for the axis it lacks, "
            "and sum over the shared axis j.",
            wrong={
                "assumes contiguous inputs": _matmul_assumes_contiguous,
                "sums over k instead of j": _matmul_sums_wrong_axis,
            },
        ),
        Exercise(
            ref.conv1d_minimal,
            _conv1d_cases,
            oracle=F.conv1d,
            hint="Take the strides from x (it may be a slice of a wider tensor). Don't flip the kernel: torch's "
            "'convolution' is a cross-correlation. Which axes does the sum run over?",
            wrong={
                "flips the kernel (a true convolution)": _conv1d_flipped,
                "sums the channels before convolving": _conv1d_channels_summed_first,
                "assumes a contiguous input's strides": _conv1d_assumes_contiguous,
            },
        ),
        Exercise(
            ref.pad2d,
            _pad2d_cases,
            oracle=_torch_pad2d,
            hint="left and right pad the last axis (columns), top and bottom the one before (rows). The result "
            "should have x's dtype and device, and pad_value everywhere outside x.",
            wrong={
                "swaps rows and columns": _pad2d_swapped,
                "always pads with zeros": _pad2d_always_zero,
                "builds the result in the default dtype instead of x's": _pad2d_default_dtype,
            },
        ),
        Exercise(
            ref.conv2d_strided,
            _conv2d_strided_cases,
            oracle=F.conv2d,
            hint="Pad both sides of both axes, then take every size and stride from the padded tensor (an "
            "unpadded input may be non-contiguous). One output step moves stride input steps; one kernel "
            "step moves one.",
            wrong={
                "ignores the stride": _conv2d_stride_ignored,
                "pads one side only": _conv2d_padding_one_side,
                "assumes a contiguous input's strides": _conv2d_assumes_contiguous,
            },
        ),
        Exercise(
            ref.maxpool2d_strided,
            _maxpool_strided_cases,
            oracle=F.max_pool2d,
            hint="What stride do you use when none is given? And which pad value can never win a maximum, "
            "whatever the inputs are?",
            wrong={
                "pads with zeros, which beat negative values": _maxpool_zero_padding,
                "stride defaults to 1 instead of the kernel size": _maxpool_stride_one,
                "pads with a large finite negative number, which still beats values below it": _maxpool_big_negative_padding,
            },
        ),
        Exercise(
            ref.conv2d_dilated,
            _conv2d_dilated_cases,
            oracle=F.conv2d,
            hint="A dilated kernel's taps are dilation input steps apart: how wide is the stretch of input one "
            "output reads, and so how many outputs fit? Which strides of the windows view change: the "
            "output steps or the kernel steps?",
            wrong={
                "sizes the output from the undilated kernel": _dilated_undilated_output_size,
                "multiplies the stride by the dilation instead of spacing the kernel's taps": _dilated_on_output_steps,
                "ignores the dilation": _dilated_ignored,
            },
        ),
    ],
)

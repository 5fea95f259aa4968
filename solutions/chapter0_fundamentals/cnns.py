"""Reference solutions for 0.2 CNNs and ResNets: modules from scratch, a training loop, and ResNet34.

Every module here has the same parameter and buffer names and shapes as its torch.nn namesake (so
their state dicts are interchangeable), and the same constructor arguments in the same order.
Images are (batch, channels, height, width) throughout. Nothing is trained on import.

Beyond the modules: early stopping with the best checkpoint, a ResNet's parameter count from its layout,
the receptive field of a chain of layers, and a BatchNorm folded into the convolution before it.

The bonus functions at the end compute traces, matrix products, convolutions and max pooling with
``torch.as_strided``: a view of a tensor's storage with a shape and strides of our choosing.
"""

from collections.abc import Iterable, Sequence

import einops
import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

# ----------------------------------------------------------------------------- simple modules


class ReLU(nn.Module):
    """Zero where the input is negative, the input elsewhere: a new tensor of the same shape and dtype."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.maximum(x, torch.tensor(0.0, dtype=x.dtype, device=x.device))


class Linear(nn.Module):
    """A linear layer with torch's parameter names, shapes and initialisation."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        """weight: (out_features, in_features); bias: (out_features,), or None when bias=False. Both
        uniform in [-1/sqrt(in_features), 1/sqrt(in_features)]."""
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        bound = in_features**-0.5
        self.weight = nn.Parameter(bound * (2 * torch.rand(out_features, in_features) - 1))
        self.bias = nn.Parameter(bound * (2 * torch.rand(out_features) - 1)) if bias else None

    def forward(self, x: Float[Tensor, "... in_features"]) -> Float[Tensor, "... out_features"]:
        """The layer applied to the last axis of x, whatever the number of leading axes (even none)."""
        out = einops.einsum(x, self.weight, "... i, o i -> ... o")
        return out if self.bias is None else out + self.bias

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Flatten(nn.Module):
    """Merges the axes start_dim to end_dim (both included; negative counts from the end) into one."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Tensor) -> Tensor:
        start, end = self.start_dim % x.ndim, self.end_dim % x.ndim
        shape = x.shape[:start] + (-1,) + x.shape[end + 1 :]
        return x.reshape(shape)


class SimpleMLP(nn.Module):
    """Flattens each image, then a hidden Linear layer and a ReLU, then a Linear layer to one logit per class."""

    def __init__(self, in_features: int = 64, hidden_features: int = 100, n_classes: int = 10):
        super().__init__()
        self.flatten = Flatten()
        self.linear1 = Linear(in_features, hidden_features)
        self.relu = ReLU()
        self.linear2 = Linear(hidden_features, n_classes)

    def forward(self, x: Float[Tensor, " batch *image"]) -> Float[Tensor, "batch n_classes"]:
        return self.linear2(self.relu(self.linear1(self.flatten(x))))


# ----------------------------------------------------------------------------- training and evaluating


def train_epoch(
    model: nn.Module, optimizer: torch.optim.Optimizer, loader: Iterable[tuple[Tensor, Tensor]]
) -> list[float]:
    """One optimizer step per batch on the cross-entropy loss, in training mode; each batch's loss (before
    its step) as a Python float."""
    model.train()
    losses = []
    for images, labels in loader:
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable[tuple[Tensor, Tensor]]) -> float:
    """The fraction of all examples whose highest logit is the label, in eval mode."""
    model.eval()
    correct, total = 0, 0
    for images, labels in loader:
        correct += (model(images).argmax(dim=-1) == labels).sum().item()
        total += len(labels)
    return correct / total


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train_loader: Iterable[tuple[Tensor, Tensor]],
    val_loader: Iterable[tuple[Tensor, Tensor]],
    max_epochs: int,
    patience: int,
) -> list[float]:
    """Trains for at most max_epochs, stopping once patience epochs in a row bring no new best validation
    accuracy; returns the validation accuracy after each epoch run, and leaves the model with the weights of
    its best epoch (the earliest of equals)."""
    accuracies: list[float] = []
    best_state, epochs_since_best = None, 0
    for _ in range(max_epochs):
        train_epoch(model, optimizer, train_loader)
        accuracies.append(evaluate(model, val_loader))
        if best_state is None or accuracies[-1] > max(accuracies[:-1]):
            # state_dict() shares storage with the live parameters: a checkpoint must be a copy.
            best_state = {name: value.clone() for name, value in model.state_dict().items()}
            epochs_since_best = 0
        else:
            epochs_since_best += 1
            if epochs_since_best == patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    return accuracies


# ----------------------------------------------------------------------------- convolutional modules


class Conv2d(nn.Module):
    """A 2D convolution (strictly, a cross-correlation, as in torch) with a square kernel."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
    ):
        """weight: (out_channels, in_channels, kernel_size, kernel_size); bias: (out_channels,), or None when
        bias=False. Both uniform in +-1/sqrt(in_channels * kernel_size**2)."""
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        bound = (in_channels * kernel_size**2) ** -0.5
        self.weight = nn.Parameter(bound * (2 * torch.rand(out_channels, in_channels, kernel_size, kernel_size) - 1))
        self.bias = nn.Parameter(bound * (2 * torch.rand(out_channels) - 1)) if bias else None

    def forward(self, x: Float[Tensor, "batch in_channels height width"]) -> Float[Tensor, "batch out_channels oh ow"]:
        return F.conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, bias={self.bias is not None}"
        )


class MaxPool2d(nn.Module):
    """The largest value in each kernel_size x kernel_size window; stride None means kernel_size."""

    def __init__(self, kernel_size: int, stride: int | None = None, padding: int = 0):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x: Float[Tensor, "batch channels height width"]) -> Float[Tensor, "batch channels oh ow"]:
        stride = self.kernel_size if self.stride is None else self.stride
        return F.max_pool2d(x, self.kernel_size, stride=stride, padding=self.padding)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class BatchNorm2d(nn.Module):
    """Normalises each channel to mean 0 and variance 1, then scales it by weight and shifts it by bias."""

    running_mean: Tensor
    running_var: Tensor
    num_batches_tracked: Tensor

    def __init__(self, num_features: int, eps: float = 1e-05, momentum: float = 0.1):
        """Parameters weight (ones) and bias (zeros); buffers running_mean (zeros), running_var (ones)
        and num_batches_tracked (0)."""
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x: Float[Tensor, "batch channels height width"]) -> Float[Tensor, "batch channels height width"]:
        """Normalised with the batch's statistics in training mode (which also updates the running ones), or
        with the running statistics in eval mode (which changes nothing)."""
        if self.training:
            mean = x.mean(dim=(0, 2, 3))
            var = x.var(dim=(0, 2, 3), unbiased=False)
            n = x.numel() / self.num_features
            with torch.no_grad():
                self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean)
                self.running_var.mul_(1 - self.momentum).add_(self.momentum * var * n / (n - 1))
                self.num_batches_tracked += 1
        else:
            mean, var = self.running_mean, self.running_var
        as_channels = lambda t: einops.rearrange(t, "c -> 1 c 1 1")  # noqa: E731
        normalised = (x - as_channels(mean)) / torch.sqrt(as_channels(var) + self.eps)
        return normalised * as_channels(self.weight) + as_channels(self.bias)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class AveragePool(nn.Module):
    """The mean over height and width: one number per image and channel."""

    def forward(self, x: Float[Tensor, "batch channels height width"]) -> Float[Tensor, "batch channels"]:
        return x.mean(dim=(2, 3))


# ----------------------------------------------------------------------------- ResNet


class ResidualBlock(nn.Module):
    """A residual block: a learned correction (left) added to a shortcut (right), then a ReLU."""

    def __init__(self, in_feats: int, out_feats: int, first_stride: int = 1):
        """left: conv 3x3 (stride first_stride) -> BN -> ReLU -> conv 3x3 -> BN; right: the identity, or
        conv 1x1 (stride first_stride) -> BN when the shape changes."""
        super().__init__()
        self.left = nn.Sequential(
            Conv2d(in_feats, out_feats, kernel_size=3, stride=first_stride, padding=1, bias=False),
            BatchNorm2d(out_feats),
            ReLU(),
            Conv2d(out_feats, out_feats, kernel_size=3, stride=1, padding=1, bias=False),
            BatchNorm2d(out_feats),
        )
        if first_stride == 1 and in_feats == out_feats:
            self.right = nn.Identity()
        else:
            self.right = nn.Sequential(
                Conv2d(in_feats, out_feats, kernel_size=1, stride=first_stride, bias=False),
                BatchNorm2d(out_feats),
            )
        self.relu = ReLU()

    def forward(self, x: Float[Tensor, "batch in_feats height width"]) -> Float[Tensor, "batch out_feats oh ow"]:
        """Both branches applied to x, summed, then the ReLU."""
        return self.relu(self.left(x) + self.right(x))


class BlockGroup(nn.Module):
    """n_blocks ResidualBlocks in a row; only the first changes the shape (to out_feats, with first_stride)."""

    def __init__(self, n_blocks: int, in_feats: int, out_feats: int, first_stride: int = 1):
        super().__init__()
        self.blocks = nn.Sequential(
            ResidualBlock(in_feats, out_feats, first_stride),
            *[ResidualBlock(out_feats, out_feats) for _ in range(n_blocks - 1)],
        )

    def forward(self, x: Float[Tensor, "batch in_feats height width"]) -> Float[Tensor, "batch out_feats oh ow"]:
        return self.blocks(x)


class ResNet34(nn.Module):
    """A ResNet: a stem, groups of residual blocks, then a classifier; the defaults build ResNet34 (He et al.,
    2015, table 1), other arguments smaller ResNets."""

    def __init__(
        self,
        n_blocks_per_group: Sequence[int] = (3, 4, 6, 3),
        out_features_per_group: Sequence[int] = (64, 128, 256, 512),
        first_strides_per_group: Sequence[int] = (1, 2, 2, 2),
        n_classes: int = 1000,
        in_channels: int = 3,
    ):
        """Stem (in_layers), BlockGroups (residual_layers), then AveragePool, Flatten, Linear (out_layers)."""
        super().__init__()
        stem_features = out_features_per_group[0]
        self.in_layers = nn.Sequential(
            Conv2d(in_channels, stem_features, kernel_size=7, stride=2, padding=3, bias=False),
            BatchNorm2d(stem_features),
            ReLU(),
            MaxPool2d(kernel_size=3, stride=2, padding=1),
        )
        in_features_per_group = [stem_features, *out_features_per_group[:-1]]
        self.residual_layers = nn.Sequential(
            *[
                BlockGroup(n, in_feats, out_feats, stride)
                for n, in_feats, out_feats, stride in zip(
                    n_blocks_per_group, in_features_per_group, out_features_per_group, first_strides_per_group
                )
            ]
        )
        self.out_layers = nn.Sequential(AveragePool(), Flatten(), Linear(out_features_per_group[-1], n_classes))

    def forward(self, x: Float[Tensor, "batch in_channels height width"]) -> Float[Tensor, "batch n_classes"]:
        return self.out_layers(self.residual_layers(self.in_layers(x)))


def resnet_parameter_count(
    n_blocks_per_group: Sequence[int] = (3, 4, 6, 3),
    out_features_per_group: Sequence[int] = (64, 128, 256, 512),
    first_strides_per_group: Sequence[int] = (1, 2, 2, 2),
    n_classes: int = 1000,
    in_channels: int = 3,
) -> int:
    """The number of trained parameters of ResNet34 built with these arguments, worked out from the layout
    without building the model."""

    def conv_bn(c_in: int, c_out: int, kernel_size: int) -> int:
        return c_in * c_out * kernel_size**2 + 2 * c_out  # a bias-free convolution, then BN's weight and bias

    stem_features = out_features_per_group[0]
    count = conv_bn(in_channels, stem_features, 7)
    in_feats = stem_features
    for n_blocks, out_feats, first_stride in zip(n_blocks_per_group, out_features_per_group, first_strides_per_group):
        for block in range(n_blocks):
            stride = first_stride if block == 0 else 1
            count += conv_bn(in_feats, out_feats, 3) + conv_bn(out_feats, out_feats, 3)
            if stride != 1 or in_feats != out_feats:
                count += conv_bn(in_feats, out_feats, 1)
            in_feats = out_feats
    return count + (in_feats + 1) * n_classes


def receptive_field(layers: Sequence[tuple[int, int]]) -> int:
    """The width, in input positions along one axis, of the stretch of input (from its first position read to
    its last) that one output position of this chain of (kernel_size, stride) layers depends on."""
    size, spacing = 1, 1  # spacing: input positions between neighbouring positions at the current depth
    for kernel_size, stride in layers:
        size += (kernel_size - 1) * spacing
        spacing *= stride
    return size


@torch.no_grad()
def fuse_conv_bn(conv: Conv2d, bn: BatchNorm2d) -> Conv2d:
    """A new Conv2d, with a bias, whose output equals bn(conv(x)) with bn in eval mode; conv and bn are left
    unchanged."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    fused = Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=True)
    fused.weight.copy_(conv.weight * einops.rearrange(scale, "o -> o 1 1 1"))
    conv_bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.bias)
    fused.bias.copy_((conv_bias - bn.running_mean) * scale + bn.bias)
    return fused


# ----------------------------------------------------------------------------- bonus: as_strided


def as_strided_trace(mat: Float[Tensor, "n n"]) -> Float[Tensor, ""]:
    """The sum of the diagonal, read through one as_strided view."""
    row_stride, col_stride = mat.stride()
    return mat.as_strided((mat.shape[0],), (row_stride + col_stride,)).sum()


def as_strided_matmul(a: Float[Tensor, "i j"], b: Float[Tensor, "j k"]) -> Float[Tensor, "i k"]:
    """The matrix product of a and b, from as_strided views of both as (i, j, k), without copying."""
    (i, j), k = a.shape, b.shape[1]
    a_expanded = a.as_strided((i, j, k), (a.stride(0), a.stride(1), 0))
    b_expanded = b.as_strided((i, j, k), (0, b.stride(0), b.stride(1)))
    return (a_expanded * b_expanded).sum(dim=1)


def conv1d_minimal(
    x: Float[Tensor, "batch in_channels width"], weights: Float[Tensor, "out_channels in_channels kernel_width"]
) -> Float[Tensor, "batch out_channels ow"]:
    """Like F.conv1d with stride 1, no padding and no bias."""
    batch, in_channels, width = x.shape
    kernel_width = weights.shape[-1]
    out_width = width - kernel_width + 1
    s_b, s_c, s_w = x.stride()
    windows = x.as_strided((batch, in_channels, out_width, kernel_width), (s_b, s_c, s_w, s_w))
    return einops.einsum(windows, weights, "b c ow kw, o c kw -> b o ow")


def pad2d(
    x: Float[Tensor, "... height width"], left: int, right: int, top: int, bottom: int, pad_value: float
) -> Float[Tensor, "... top+height+bottom left+width+right"]:
    """A new tensor: x with pad_value rows above and below, and columns to the left and right."""
    *batch, height, width = x.shape
    out = x.new_full((*batch, top + height + bottom, left + width + right), pad_value)
    out[..., top : top + height, left : left + width] = x
    return out


def conv2d_strided(
    x: Float[Tensor, "batch in_channels height width"],
    weights: Float[Tensor, "out_channels in_channels kernel_height kernel_width"],
    stride: int = 1,
    padding: int = 0,
) -> Float[Tensor, "batch out_channels oh ow"]:
    """Like F.conv2d without bias, with the same stride and zero padding on both axes."""
    x = pad2d(x, padding, padding, padding, padding, 0.0)
    batch, in_channels, height, width = x.shape
    kernel_height, kernel_width = weights.shape[-2:]
    out_height = (height - kernel_height) // stride + 1
    out_width = (width - kernel_width) // stride + 1
    s_b, s_c, s_h, s_w = x.stride()
    windows = x.as_strided(
        (batch, in_channels, out_height, out_width, kernel_height, kernel_width),
        (s_b, s_c, s_h * stride, s_w * stride, s_h, s_w),
    )
    return einops.einsum(windows, weights, "b c oh ow kh kw, o c kh kw -> b o oh ow")


def maxpool2d_strided(
    x: Float[Tensor, "batch channels height width"], kernel_size: int, stride: int | None = None, padding: int = 0
) -> Float[Tensor, "batch channels oh ow"]:
    """Like F.max_pool2d: stride defaults to kernel_size, and padding never wins the maximum."""
    stride = kernel_size if stride is None else stride
    x = pad2d(x, padding, padding, padding, padding, float("-inf"))
    batch, channels, height, width = x.shape
    out_height = (height - kernel_size) // stride + 1
    out_width = (width - kernel_size) // stride + 1
    s_b, s_c, s_h, s_w = x.stride()
    windows = x.as_strided(
        (batch, channels, out_height, out_width, kernel_size, kernel_size),
        (s_b, s_c, s_h * stride, s_w * stride, s_h, s_w),
    )
    return windows.amax(dim=(-2, -1))


def conv2d_dilated(
    x: Float[Tensor, "batch in_channels height width"],
    weights: Float[Tensor, "out_channels in_channels kernel_height kernel_width"],
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
) -> Float[Tensor, "batch out_channels oh ow"]:
    """Like F.conv2d without bias, with the same stride, zero padding and dilation on both axes."""
    x = pad2d(x, padding, padding, padding, padding, 0.0)
    batch, in_channels, height, width = x.shape
    kernel_height, kernel_width = weights.shape[-2:]
    # A dilated kernel spans dilation * (k - 1) + 1 input positions.
    out_height = (height - dilation * (kernel_height - 1) - 1) // stride + 1
    out_width = (width - dilation * (kernel_width - 1) - 1) // stride + 1
    s_b, s_c, s_h, s_w = x.stride()
    windows = x.as_strided(
        (batch, in_channels, out_height, out_width, kernel_height, kernel_width),
        (s_b, s_c, s_h * stride, s_w * stride, s_h * dilation, s_w * dilation),
    )
    return einops.einsum(windows, weights, "b c oh ow kh kw, o c kh kw -> b o oh ow")

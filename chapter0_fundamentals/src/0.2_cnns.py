# %% [markdown]
# # 0.2 CNNs and ResNets
#
# `torch.nn` hides a lot behind one line: `nn.Linear(64, 10)` picks an initialisation,
# `nn.BatchNorm2d` keeps statistics you never asked for and behaves differently after `model.eval()`.
# In this section you rebuild these pieces yourself, each with exactly the same parameters and
# outputs as torch's, and assemble them into ResNet34, the residual network of He et al.,
# *Deep Residual Learning for Image Recognition* (2015). Then you train a small member of the same
# family on real handwritten digits.
#
# Why this matters for AI safety work: interpretability starts from knowing exactly what every
# parameter and buffer of a model does, and experiments go wrong in quiet ways (a model left in
# training mode, gradients that accumulate across steps) that are easy to spot once you have
# written the loop yourself.
#
# **Prerequisites:** section 0.0 (einops, broadcasting, einsum) and basic PyTorch (tensors,
# `nn.Module`, autograd).
#
# **What you will build**
#
# 1. Simple modules: `ReLU`, `Linear` (with torch's initialisation), `Flatten`, and an MLP.
# 2. A training loop and an evaluation loop, and an MLP trained on digits.
# 3. Convolutional modules: `Conv2d` and `MaxPool2d`.
# 4. `BatchNorm2d`, with its training and evaluation behaviour, and `AveragePool`.
# 5. ResNet: `ResidualBlock`, `BlockGroup` and `ResNet34`, then a small ResNet trained on digits.
# 6. Bonus: convolutions from scratch with `torch.as_strided`.
#
# **How modules are checked.** For each module exercise, the check builds your class and the
# reference with the same constructor arguments, loads the reference's `state_dict` into yours and
# compares the outputs. So your parameters and buffers must have the names and shapes the exercise
# states (the same as torch's `nn` module of the same name), or the check stops there and says which
# names it expected. Initialisation is checked separately.
#
# **The data.** The course has no downloads, so instead of MNIST we use the handwritten digits that
# ship with scikit-learn: 1,797 grayscale scans of the digits 0 to 9 at 8x8 pixels (the UCI "Optical
# Recognition of Handwritten Digits" set), split once into 1,437 training, 180 validation and 180
# test images. `course.data.digits(split, size)` returns them scaled to $[0, 1]$, upsampled to
# `size` x `size` if asked.

# %%
from collections.abc import Iterable, Sequence

import einops
import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

from course.data import digits
from course.plot import image_grid, line
from tests.checks.chapter0_fundamentals.cnns import check

# This section's models are tiny: one thread is faster for them than several threads keeping in step.
torch.set_num_threads(1)
torch.manual_seed(0)

# %%
train_images, train_labels = digits("train")
val_images, val_labels = digits("val")
assert train_images.shape == (1437, 1, 8, 8) and val_images.shape == (180, 1, 8, 8)
image_grid(
    train_images[:12, 0], rows=2, titles=[str(int(y)) for y in train_labels[:12]], title="Training digits (8x8)"
).show()

# %% [markdown]
# ## 1. Simple modules
#
# An `nn.Module` holds parameters (`nn.Parameter`, trained by the optimizer), buffers
# (`self.register_buffer`, state that is saved but not trained) and submodules, and defines
# `forward`. Assigning a parameter or a module to an attribute in `__init__` registers it under
# that attribute's name, and that name is its key in `state_dict()`. Call `super().__init__()`
# before assigning anything.
#
# Start with the simplest module, which has no parameters at all: $\mathrm{ReLU}(x) = \max(x, 0)$,
# elementwise. Return a new tensor; don't change `x` in place.


# %% [exercise] ReLU difficulty=1 importance=3 minutes=5
class ReLU(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        """max(x, 0), elementwise."""
        raise NotImplementedError()


# %% [hint]
# `torch.maximum(x, torch.tensor(0.0))` or `x.clamp(min=0)`; both return a new tensor.

# %% [markdown]
# ### Linear
#
# A linear layer computes $y = x W^\top + b$ with a weight $W$ of shape `(out_features, in_features)`
# and a bias $b$ of shape `(out_features,)`, over any number of leading axes of `x`. Call them
# `self.weight` and `self.bias` (both `nn.Parameter`s), and set `self.bias = None` when
# `bias=False`.
#
# **Initialisation.** torch draws both uniformly from $[-1/\sqrt{n_\text{in}}, 1/\sqrt{n_\text{in}}]$,
# where $n_\text{in}$ is `in_features`. The scale is what matters: each output sums $n_\text{in}$
# products, so weights of size $1/\sqrt{n_\text{in}}$ keep outputs of the same size as inputs,
# layer after layer. Do the same (`torch.rand` gives uniform values in $[0, 1)$). The check tests
# your initialisation on a fresh `Linear(200, 50)`.


# %% [exercise] Linear difficulty=2 importance=5 minutes=10
class Linear(nn.Module):
    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        """weight: (out_features, in_features); bias: (out_features,) or None. Both uniform in
        [-1/sqrt(in_features), 1/sqrt(in_features)]."""
        super().__init__()
        raise NotImplementedError()

    def forward(self, x: Float[Tensor, "... in_features"]) -> Float[Tensor, "... out_features"]:
        """x W^T + b."""
        raise NotImplementedError()


# %% [hint]
# `bound * (2 * torch.rand(out_features, in_features) - 1)` is uniform in `[-bound, bound)`. Wrap it
# in `nn.Parameter(...)`.

# %% [hint]
# `einops.einsum(x, self.weight, "... i, o i -> ... o")` handles any number of leading axes.

# %% [markdown]
# ### Flatten
#
# `Flatten(start_dim, end_dim)` merges the axes `start_dim` to `end_dim`, *both included*, into one.
# Negative values count from the end, as everywhere in torch. The defaults, 1 and -1, keep the batch
# axis and flatten each image into a vector. It has no parameters.


# %% [exercise] Flatten difficulty=1 importance=3 minutes=10
class Flatten(nn.Module):
    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        """Merge the axes start_dim..end_dim (both included) into one."""
        super().__init__()
        raise NotImplementedError()

    def forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError()


# %% [hint]
# `start_dim % x.ndim` turns a negative axis into the positive one. Then `x.reshape` with the shape
# `x.shape[:start] + (-1,) + x.shape[end + 1:]`.

# %% [markdown]
# ### A simple MLP
#
# Put them together: flatten each image, a `Linear` layer to `hidden_features`, a `ReLU`, and a
# `Linear` layer to `n_classes` logits (no ReLU on the logits: they can be negative). Name the
# submodules `flatten`, `linear1`, `relu` and `linear2`, so that the state dict's keys are
# `linear1.weight`, `linear1.bias`, `linear2.weight` and `linear2.bias`.


# %% [exercise] SimpleMLP difficulty=1 importance=4 minutes=5
class SimpleMLP(nn.Module):
    def __init__(self, in_features: int = 64, hidden_features: int = 100, n_classes: int = 10):
        super().__init__()
        raise NotImplementedError()

    def forward(self, x: Float[Tensor, "batch *image"]) -> Float[Tensor, "batch n_classes"]:
        raise NotImplementedError()


# %% [hint]
# In `__init__`: `self.flatten = Flatten()`, `self.linear1 = Linear(in_features, hidden_features)`, and so
# on. `forward` applies them in order.

# %% [markdown]
# ## 2. Training and evaluating
#
# One epoch of training is a pass over the data in batches. For each batch: compute the logits and
# the cross-entropy loss (`F.cross_entropy(logits, labels)`), clear the old gradients
# (`optimizer.zero_grad()`: `backward` *adds* to `.grad`), backpropagate, and take an optimizer
# step. Put the model in training mode first with `model.train()`: layers such as BatchNorm behave
# differently in training and evaluation, and the last evaluation may have left the model in eval
# mode. Return the loss of every batch as a list of Python floats (`loss.item()`).
#
# `loader` is anything you can iterate over to get `(images, labels)` batches: a list of pairs, or a
# `torch.utils.data.DataLoader`.


# %% [exercise] train_epoch difficulty=2 importance=5 minutes=10
def train_epoch(
    model: nn.Module, optimizer: torch.optim.Optimizer, loader: Iterable[tuple[Tensor, Tensor]]
) -> list[float]:
    """One optimizer step per batch on the cross-entropy loss, in training mode; each batch's loss."""
    raise NotImplementedError()


# %% [hint]
# The order inside the loop: forward, loss, `optimizer.zero_grad()`, `loss.backward()`, `optimizer.step()`.
# `zero_grad` may also come first; what matters is that it comes before `backward`.

# %% [markdown]
# The evaluation loop reports accuracy: the fraction of examples whose highest logit is at the
# correct label. Put the model in eval mode with `model.eval()`, and wrap the loop in
# `torch.no_grad()` (or decorate the function with `@torch.no_grad()`), since no gradients are
# needed. Count correct answers and examples over all batches and divide at the end: the average of
# per-batch accuracies is wrong when the last batch is smaller.


# %% [exercise] evaluate difficulty=1 importance=5 minutes=10
def evaluate(model: nn.Module, loader: Iterable[tuple[Tensor, Tensor]]) -> float:
    """The fraction of all examples whose highest logit is the label, in eval mode."""
    raise NotImplementedError()


# %% [hint]
# `(model(images).argmax(dim=-1) == labels).sum().item()` counts one batch's correct answers.

# %% [markdown]
# Now train the MLP on the 8x8 digits with Adam. `train` wraps your two functions: it shuffles the
# training set each epoch (a seeded `DataLoader`), trains, and records the validation accuracy after
# every epoch.


# %%
def train(
    model: nn.Module,
    train_set: tuple[Tensor, Tensor],
    val_set: tuple[Tensor, Tensor],
    epochs: int,
    lr: float = 1e-3,
    batch_size: int = 64,
    seed: int = 0,
) -> tuple[list[float], list[float]]:
    """Train with Adam; return every batch's training loss and the validation accuracy after each epoch."""
    shuffle = torch.Generator().manual_seed(seed)
    train_loader = DataLoader(TensorDataset(*train_set), batch_size=batch_size, shuffle=True, generator=shuffle)
    val_loader = DataLoader(TensorDataset(*val_set), batch_size=256)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    batch_losses, val_accuracies = [], []
    for _ in tqdm(range(epochs), desc="epochs"):
        batch_losses += train_epoch(model, optimizer, train_loader)
        val_accuracies.append(evaluate(model, val_loader))
    return batch_losses, val_accuracies


torch.manual_seed(0)
mlp = SimpleMLP(in_features=64, hidden_features=100, n_classes=10)
mlp_losses, mlp_accuracies = train(mlp, (train_images, train_labels), (val_images, val_labels), epochs=10, lr=3e-3)
line({"training loss": mlp_losses}, title="SimpleMLP on 8x8 digits", xaxis="batch", yaxis="cross-entropy").show()
line({"validation accuracy": mlp_accuracies}, title="SimpleMLP: validation accuracy", xaxis="epoch").show()
print(f"validation accuracy after {len(mlp_accuracies)} epochs: {mlp_accuracies[-1]:.3f}")

# %% [markdown]
# The loss falls from about $\ln 10 \approx 2.3$ (a uniform guess over ten classes) and the MLP gets
# more than 90% of the validation digits right. That is a fine result for 64 pixels, but an MLP
# knows nothing about images: shuffle the pixels of every image the same way and it would learn
# just as well. Convolutions build in that nearby pixels belong together, and that a stroke means the
# same wherever it appears.

# %%
assert 2.0 < mlp_losses[0] < 2.6, "the first loss should be near ln(10)"
assert mlp_accuracies[-1] > 0.9

# %% [markdown]
# ## 3. Convolutions
#
# A 2D convolution slides a small kernel over the image. For an input with $C_\text{in}$ channels and
# a weight of shape `(out_channels, in_channels, k, k)`, output channel $o$ at position $(i, j)$ is
#
# $$y_{o,i,j} = b_o + \sum_{c}\sum_{u=0}^{k-1}\sum_{v=0}^{k-1} w_{o,c,u,v}\; x_{c,\, s i + u,\, s j + v},$$
#
# where $s$ is the stride and $x$ has been padded with `padding` zeros on every side. (This is a
# cross-correlation: the kernel is not flipped. Deep learning calls it a convolution anyway.) An
# input of height $H$ gives an output of height $\lfloor (H + 2p - k) / s \rfloor + 1$.
#
# Write `Conv2d` as a module with torch's parameter names and shapes: `weight` of shape
# `(out_channels, in_channels, kernel_size, kernel_size)` and `bias` of shape `(out_channels,)`, or
# `self.bias = None` when `bias=False` (the ResNet's convolutions have no bias, since a BatchNorm
# follows each one). Initialise both uniformly in $\pm 1/\sqrt{C_\text{in} k^2}$: each output sums
# over $C_\text{in} k^2$ inputs. For `forward`, use `F.conv2d`; the bonus section at the end builds
# it from scratch.


# %% [exercise] Conv2d difficulty=2 importance=4 minutes=10
class Conv2d(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
    ):
        """weight: (out_channels, in_channels, kernel_size, kernel_size); bias: (out_channels,) or None.
        Both uniform in +-1/sqrt(in_channels * kernel_size**2)."""
        super().__init__()
        raise NotImplementedError()

    def forward(self, x: Float[Tensor, "batch in_channels height width"]) -> Float[Tensor, "batch out_channels oh ow"]:
        raise NotImplementedError()


# %% [hint]
# Store `stride` and `padding` as attributes, and pass them on:
# `F.conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding)`.

# %% [markdown]
# Max pooling keeps the largest value in each `kernel_size` x `kernel_size` window. Like torch's,
# your `MaxPool2d` takes `stride=None` to mean "the same as `kernel_size`", so windows don't overlap
# by default. Use `F.max_pool2d` inside. It has no parameters.


# %% [exercise] MaxPool2d difficulty=1 importance=3 minutes=5
class MaxPool2d(nn.Module):
    def __init__(self, kernel_size: int, stride: int | None = None, padding: int = 0):
        super().__init__()
        raise NotImplementedError()

    def forward(self, x: Float[Tensor, "batch channels height width"]) -> Float[Tensor, "batch channels oh ow"]:
        raise NotImplementedError()


# %% [hint]
# `stride = self.kernel_size if self.stride is None else self.stride`, then
# `F.max_pool2d(x, self.kernel_size, stride=stride, padding=self.padding)`.

# %% [markdown]
# ## 4. Batch normalisation
#
# BatchNorm (Ioffe and Szegedy, 2015) normalises each channel to mean 0 and variance 1, then lets
# the network rescale it with a learned `weight` $\gamma$ and `bias` $\beta$:
#
# $$y = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}}\,\gamma + \beta,$$
#
# with one $\mu$, $\sigma^2$, $\gamma$ and $\beta$ per channel. Where $\mu$ and $\sigma^2$ come from
# depends on the mode:
#
# - **Training mode:** the current batch's mean and *biased* variance (divide by $N$), over the batch,
#   height and width axes. The module also keeps running estimates for later, in two buffers:
#   $\text{running\_mean} \leftarrow (1 - m)\,\text{running\_mean} + m\,\mu$ and the same for
#   `running_var` with the *unbiased* variance (divide by $N - 1$), where $m$ is `momentum`. It adds
#   one to the buffer `num_batches_tracked`.
# - **Eval mode:** the running estimates, and nothing is updated. One image's prediction then no
#   longer depends on the other images in its batch.
#
# `self.training` says which mode the module is in (`model.train()` and `model.eval()` set it).
# Use torch's names: parameters `weight` (initialised to ones) and `bias` (zeros), buffers
# `running_mean` (zeros), `running_var` (ones) and `num_batches_tracked` (`torch.tensor(0)`, an
# integer), registered with `self.register_buffer(name, tensor)`. The check trains your module on a
# few batches, compares every output and the buffers with torch's `nn.BatchNorm2d`, then compares the
# outputs in eval mode.


# %% [exercise] BatchNorm2d difficulty=3 importance=5 minutes=20
class BatchNorm2d(nn.Module):
    running_mean: Tensor
    running_var: Tensor
    num_batches_tracked: Tensor

    def __init__(self, num_features: int, eps: float = 1e-05, momentum: float = 0.1):
        """Parameters weight (ones) and bias (zeros); buffers running_mean (zeros), running_var (ones)
        and num_batches_tracked (0)."""
        super().__init__()
        raise NotImplementedError()

    def forward(self, x: Float[Tensor, "batch channels height width"]) -> Float[Tensor, "batch channels height width"]:
        """Normalise with the batch's statistics (training mode, updating the running ones) or the running
        statistics (eval mode)."""
        raise NotImplementedError()


# %% [hint]
# `x.mean(dim=(0, 2, 3))` and `x.var(dim=(0, 2, 3), unbiased=False)` are per-channel statistics of
# shape `(channels,)`; `einops.rearrange(t, "c -> 1 c 1 1")` makes them broadcast against `x`.

# %% [hint]
# Update the buffers in place inside `torch.no_grad()`, e.g.
# `self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean)`. The unbiased variance is the
# biased one times $N / (N - 1)$, where $N$ = `x.numel() / channels` is the number of values per channel.

# %% [markdown]
# Here is the difference between the modes. A batch whose channels have mean 3: in training mode the
# output's channel means are 0 (up to rounding); after one batch the running mean has moved only a
# tenth of the way from 0 towards 3, so in eval mode the output is far from centred.

# %%
bn = BatchNorm2d(2)
batch = 3 + torch.randn(16, 2, 4, 4)
assert bn(batch).mean(dim=(0, 2, 3)).abs().max() < 1e-5
assert int(bn.num_batches_tracked) == 1 and torch.allclose(bn.running_mean, 0.1 * batch.mean(dim=(0, 2, 3)))
bn.eval()
assert bn(batch).mean() > 2
print("running mean after one batch:", bn.running_mean)

# %% [markdown]
# The last layer before a ResNet's classifier averages each channel over the whole image, leaving one
# number per channel: global average pooling. Write it as a module with no parameters.


# %% [exercise] AveragePool difficulty=1 importance=2 minutes=3
class AveragePool(nn.Module):
    def forward(self, x: Float[Tensor, "batch channels height width"]) -> Float[Tensor, "batch channels"]:
        """The mean over height and width."""
        raise NotImplementedError()


# %% [hint]
# `x.mean(dim=...)` accepts a tuple of axes.

# %% [markdown]
# ## 5. ResNet
#
# Deeper plain networks train *worse* than shallower ones, even on their training data (He et al.
# show a 56-layer plain network with higher training error than a 20-layer one), although the
# deeper one could in principle copy the shallower one and make its extra layers the identity. A
# residual block makes the identity the easy default: it computes $\mathrm{ReLU}(F(x) + x)$, so its
# layers only learn a correction $F(x)$ to their input, and the gradient flows straight through the
# `+ x` shortcut.
#
# ### ResidualBlock
#
# `ResidualBlock(in_feats, out_feats, first_stride)` returns `relu(left(x) + right(x))`, where
#
# - `self.left` is `nn.Sequential(Conv2d 3x3 with stride first_stride and padding 1, BatchNorm2d,
#   ReLU, Conv2d 3x3 with stride 1 and padding 1, BatchNorm2d)`, both convolutions with `bias=False`;
# - `self.right`, the shortcut, is `nn.Identity()` when the block keeps the shape (`first_stride` is
#   1 and `in_feats == out_feats`), and otherwise `nn.Sequential(Conv2d 1x1 with stride first_stride
#   and no bias, BatchNorm2d)`, which makes `x` the same shape as `left`'s output.
#
# Use your own `Conv2d`, `BatchNorm2d` and `ReLU`. The layer names and order (`left.0.weight`,
# `left.1.running_mean`, ..., `right.0.weight`) must be as listed, since the check loads the
# reference's state dict into your block.


# %% [exercise] ResidualBlock difficulty=3 importance=5 minutes=20
class ResidualBlock(nn.Module):
    def __init__(self, in_feats: int, out_feats: int, first_stride: int = 1):
        """left: conv 3x3 (stride first_stride) -> BN -> ReLU -> conv 3x3 -> BN; right: the identity, or
        conv 1x1 (stride first_stride) -> BN when the shape changes."""
        super().__init__()
        raise NotImplementedError()

    def forward(self, x: Float[Tensor, "batch in_feats height width"]) -> Float[Tensor, "batch out_feats oh ow"]:
        """relu(left(x) + right(x))."""
        raise NotImplementedError()


# %% [hint]
# The ReLU comes *after* the addition. A ReLU inside `left` just before the sum would make the
# block's correction non-negative.

# %% [hint]
# `Conv2d(in_feats, out_feats, kernel_size=3, stride=first_stride, padding=1, bias=False)` is the first
# layer of `left`; the shortcut's convolution is `Conv2d(in_feats, out_feats, kernel_size=1,
# stride=first_stride, bias=False)`.

# %% [markdown]
# ### BlockGroup
#
# ResNets stack blocks in groups. Only the first block of a group changes the shape (more channels,
# and stride 2 to halve the height and width); the others keep it. `BlockGroup(n_blocks, in_feats,
# out_feats, first_stride)` is `self.blocks = nn.Sequential(...)` of `ResidualBlock(in_feats,
# out_feats, first_stride)` followed by `n_blocks - 1` blocks `ResidualBlock(out_feats, out_feats)`.


# %% [exercise] BlockGroup difficulty=1 importance=4 minutes=5
class BlockGroup(nn.Module):
    def __init__(self, n_blocks: int, in_feats: int, out_feats: int, first_stride: int = 1):
        super().__init__()
        raise NotImplementedError()

    def forward(self, x: Float[Tensor, "batch in_feats height width"]) -> Float[Tensor, "batch out_feats oh ow"]:
        raise NotImplementedError()


# %% [hint]
# `nn.Sequential(first_block, *[ResidualBlock(out_feats, out_feats) for _ in range(n_blocks - 1)])`.

# %% [markdown]
# ### ResNet34
#
# ResNet34 (He et al., table 1) has three parts, each an `nn.Sequential`:
#
# - `self.in_layers`, the stem: `Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3,
#   bias=False)`, `BatchNorm2d(64)`, `ReLU()`, `MaxPool2d(kernel_size=3, stride=2, padding=1)`. It
#   shrinks a 224x224 image to 56x56 before the expensive part starts.
# - `self.residual_layers`: one `BlockGroup` per group. The numbers of blocks are 3, 4, 6 and 3, the
#   widths 64, 128, 256 and 512, and the first strides 1, 2, 2 and 2. Each group's `in_feats` is the
#   previous group's width (64 for the first).
# - `self.out_layers`: `AveragePool()`, `Flatten()`, `Linear(512, n_classes)`.
#
# Take the layout as arguments, with ResNet34's values as defaults, so the same class builds smaller
# ResNets: the stem's width is then `out_features_per_group[0]` (64 for ResNet34), and `in_channels`
# is the number of colour channels (1 for our digits). Counting the convolutions: $1 + 2 \times (3 + 4
# + 6 + 3) = 33$ in the main path, plus the final linear layer, makes 34.


# %% [exercise] ResNet34 difficulty=2 importance=5 minutes=15
class ResNet34(nn.Module):
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
        raise NotImplementedError()

    def forward(self, x: Float[Tensor, "batch in_channels height width"]) -> Float[Tensor, "batch n_classes"]:
        raise NotImplementedError()


# %% [hint]
# The groups' input widths are `[out_features_per_group[0], *out_features_per_group[:-1]]`; `zip` them
# with the other three lists to build the `BlockGroup`s.

# %% [markdown]
# torchvision's `resnet34` has 21,797,672 parameters. So does yours, if every layer is right: the
# check above asserts it too.

# %%
resnet34 = ResNet34()
n_parameters = sum(p.numel() for p in resnet34.parameters())
print(f"ResNet34: {n_parameters:,} parameters")
assert n_parameters == 21_797_672
del resnet34

# %% [markdown]
# ### Training a small ResNet on digits
#
# ResNet34 is far too big to train here, and our digits are far too small for it. The same class
# builds a small ResNet: two groups of one block each, 32 and 64 channels wide, for one-channel
# digits upsampled to 16x16. Follow the shapes through it: the stem takes 16x16 to 4x4, the second
# group to 2x2, and average pooling to one number per channel.

# %%
train_images_16, _ = digits("train", size=16)
val_images_16, _ = digits("val", size=16)

torch.manual_seed(0)
small_resnet = ResNet34(
    n_blocks_per_group=(1, 1),
    out_features_per_group=(32, 64),
    first_strides_per_group=(1, 2),
    n_classes=10,
    in_channels=1,
)
x = train_images_16[:2]
for name, part in [
    ("stem", small_resnet.in_layers),
    *[(f"group {i}", g) for i, g in enumerate(small_resnet.residual_layers)],
    ("out", small_resnet.out_layers),
]:
    x = part(x)
    print(f"after {name}: {tuple(x.shape)}")
assert x.shape == (2, 10)
print(f"{sum(p.numel() for p in small_resnet.parameters()):,} parameters")

# %%
resnet_losses, resnet_accuracies = train(
    small_resnet, (train_images_16, train_labels), (val_images_16, val_labels), epochs=4, lr=1e-3
)
line(
    {"training loss": resnet_losses}, title="Small ResNet on 16x16 digits", xaxis="batch", yaxis="cross-entropy"
).show()
line(
    {"small ResNet": resnet_accuracies, "SimpleMLP": mlp_accuracies[: len(resnet_accuracies)]},
    title="Validation accuracy",
    xaxis="epoch",
).show()
print(f"validation accuracy after {len(resnet_accuracies)} epochs: {resnet_accuracies[-1]:.3f}")

# %% [markdown]
# In four epochs the small ResNet gets more than 95% of the validation digits right, a higher
# accuracy than the MLP reached in ten. Here are some validation digits with its predictions
# (in eval mode, since `evaluate` left it there).

# %%
assert resnet_accuracies[-1] > 0.95 and resnet_accuracies[-1] > mlp_accuracies[-1]
assert not small_resnet.training
with torch.no_grad():
    predictions = small_resnet(val_images_16[:16]).argmax(dim=-1)
image_grid(
    val_images_16[:16, 0],
    rows=2,
    title="Validation digits: prediction (label)",
    titles=[f"{int(p)} ({int(y)})" for p, y in zip(predictions, val_labels[:16])],
).show()

# %% [markdown]
# ## 6. Bonus: convolutions from scratch with `as_strided`
#
# A tensor is a block of memory (its *storage*) plus a recipe for reading it: a shape, and a
# *stride* per axis, the number of elements to skip in storage to move one step along that axis. A
# contiguous `(2, 3)` tensor has strides `(3, 1)`; its transpose is the same storage read with
# strides `(1, 3)`. `x.as_strided(shape, strides)` makes a new view of `x`'s storage with any shape
# and strides you like, without copying. Two uses make it powerful:
#
# - a stride of 0 repeats the same elements along an axis (that is how broadcasting works);
# - overlapping strides show every window of an image at once: the view `windows[i, j, u, v] =
#   x[i + u, j + v]` has strides `(s_h, s_w, s_h, s_w)`.
#
# `as_strided` reads raw storage and does no bounds checking, so wrong strides give wrong numbers,
# not errors. Always use `x.stride()` rather than assuming a contiguous layout. (In real code,
# `x.unfold` builds the same windows more safely.)

# %%
example = torch.arange(6).reshape(2, 3)
print(example.stride(), example.T.stride())
assert example.as_strided((3, 2), (1, 3)).equal(example.T)
assert example.as_strided((2, 2), (3, 1)).equal(example[:, :2])

# %% [markdown]
# First, the trace of a square matrix, the sum of its diagonal, with one `as_strided` view: one step
# along the diagonal is one step down plus one step right.


# %% [exercise] as_strided_trace difficulty=1 importance=2 minutes=5
def as_strided_trace(mat: Float[Tensor, "n n"]) -> Float[Tensor, ""]:
    """The sum of the diagonal, read through one as_strided view."""
    raise NotImplementedError()


# %% [hint]
# The diagonal has `n` elements and stride `mat.stride(0) + mat.stride(1)`.

# %% [markdown]
# Next, a matrix product $AB$ with $A$ of shape `(i, j)` and $B$ of shape `(j, k)`: view both as
# `(i, j, k)` with stride-0 axes (no copying), multiply elementwise and sum over $j$.


# %% [exercise] as_strided_matmul difficulty=2 importance=2 minutes=10
def as_strided_matmul(a: Float[Tensor, "i j"], b: Float[Tensor, "j k"]) -> Float[Tensor, "i k"]:
    """a @ b via as_strided views of shape (i, j, k)."""
    raise NotImplementedError()


# %% [hint]
# `a` repeats along the new `k` axis: strides `(a.stride(0), a.stride(1), 0)`. `b` repeats along the
# new `i` axis: strides `(0, b.stride(0), b.stride(1))`.

# %% [markdown]
# A 1D convolution with stride 1, no padding and no bias: for an input `(batch, in_channels, width)`
# and weights `(out_channels, in_channels, kernel_width)`, view the input as `(batch, in_channels,
# output_width, kernel_width)` windows, then contract the channel and kernel axes with the weights
# in one `einsum`. The output width is `width - kernel_width + 1`.


# %% [exercise] conv1d_minimal difficulty=2 importance=2 minutes=15
def conv1d_minimal(
    x: Float[Tensor, "batch in_channels width"], weights: Float[Tensor, "out_channels in_channels kernel_width"]
) -> Float[Tensor, "batch out_channels ow"]:
    """Like F.conv1d with stride 1, no padding and no bias."""
    raise NotImplementedError()


# %% [hint]
# With `s_b, s_c, s_w = x.stride()`, the windows have strides `(s_b, s_c, s_w, s_w)`: moving one output
# position or one kernel position both move one step along the input.

# %% [markdown]
# Padding adds a border of a constant value. `pad2d` pads the last two axes: `left` columns before and
# `right` after, `top` rows above and `bottom` below. Build a new tensor filled with `pad_value` and
# copy `x` into its middle.


# %% [exercise] pad2d difficulty=1 importance=2 minutes=5
def pad2d(
    x: Float[Tensor, "... height width"], left: int, right: int, top: int, bottom: int, pad_value: float
) -> Float[Tensor, "... top+height+bottom left+width+right"]:
    """A new tensor: x with pad_value rows above and below, and columns to the left and right."""
    raise NotImplementedError()


# %% [hint]
# `x.new_full(shape, pad_value)` makes a tensor of the right dtype and device; assign `x` to the slice
# `[..., top:top + height, left:left + width]`.

# %% [markdown]
# Now a full 2D convolution without bias, with a stride and zero padding: pad, then view the input as
# `(batch, in_channels, output_height, output_width, kernel_height, kernel_width)` windows. One step
# of output position moves `stride` steps in the input; one step in the kernel moves one. The output
# height after padding is `(height - kernel_height) // stride + 1`.


# %% [exercise] conv2d_strided difficulty=3 importance=2 minutes=20
def conv2d_strided(
    x: Float[Tensor, "batch in_channels height width"],
    weights: Float[Tensor, "out_channels in_channels kernel_height kernel_width"],
    stride: int = 1,
    padding: int = 0,
) -> Float[Tensor, "batch out_channels oh ow"]:
    """Like F.conv2d without bias, with the same stride and zero padding on both axes."""
    raise NotImplementedError()


# %% [hint]
# With `s_b, s_c, s_h, s_w = x.stride()` of the *padded* input, the windows' strides are
# `(s_b, s_c, s_h * stride, s_w * stride, s_h, s_w)`. Contract with
# `"b c oh ow kh kw, o c kh kw -> b o oh ow"`.

# %% [markdown]
# Finally, max pooling: the same windows, reduced with a maximum instead of a weighted sum. Pad with
# $-\infty$, not zero, so that padding never wins: an all-negative window next to the border must
# keep its own maximum. `stride=None` means `kernel_size`, as in `MaxPool2d`.


# %% [exercise] maxpool2d_strided difficulty=2 importance=2 minutes=10
def maxpool2d_strided(
    x: Float[Tensor, "batch channels height width"], kernel_size: int, stride: int | None = None, padding: int = 0
) -> Float[Tensor, "batch channels oh ow"]:
    """Like F.max_pool2d: stride defaults to kernel_size, and padding never wins the maximum."""
    raise NotImplementedError()


# %% [hint]
# `pad2d(x, padding, padding, padding, padding, float("-inf"))`, the windows view from `conv2d_strided`
# with a square kernel, then `.amax(dim=(-2, -1))`.

# %% [markdown]
# Your strided convolution can stand in for `F.conv2d` in a trained network. Swap it into the small
# ResNet's first convolution and the predictions are unchanged:

# %%
with torch.no_grad():
    stem = small_resnet.in_layers[0]
    assert torch.allclose(
        conv2d_strided(val_images_16, stem.weight, stride=2, padding=3), stem(val_images_16), atol=1e-5
    )
    pooled = small_resnet.in_layers[:3](val_images_16)
    assert torch.equal(maxpool2d_strided(pooled, 3, stride=2, padding=1), small_resnet.in_layers[3](pooled))

# %% [markdown]
# ## Summary
#
# - **Modules are parameters, buffers and a forward function.** Matching torch's names and shapes made
#   your modules interchangeable with torch's through the state dict; the initialisation scale
#   ($1/\sqrt{\text{fan-in}}$) keeps activations of a sensible size from layer to layer.
# - **Training and eval modes differ.** BatchNorm normalises with batch statistics while training and
#   running statistics in eval mode. `train_epoch` calls `model.train()` and `evaluate` calls
#   `model.eval()`; forgetting either is a silent bug, as is forgetting `optimizer.zero_grad()`.
# - **Residual connections** make the identity easy to learn, which is what lets very deep networks
#   train. ResNet34 is a stem, four groups of residual blocks and a linear classifier: 21,797,672
#   parameters.
# - **On real data**, a small ResNet beat the MLP on handwritten digits (above 95% validation accuracy
#   in four epochs, against above 90% for the MLP in ten).
# - **Bonus:** `as_strided` views expose every window of an image without copying, and a convolution
#   is then a single `einsum`.
#
# **Going further.** Train the MLP on digits whose pixels are all shuffled by one fixed permutation
# and compare it with the ResNet on the same data. Remove the shortcut from the small ResNet's blocks
# and see how training changes as you add blocks. Compare `conv2d_strided` with `x.unfold` and time
# both against `F.conv2d`.

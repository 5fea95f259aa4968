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
# 2. A training loop, an evaluation loop and early stopping, and an MLP trained on digits.
# 3. Convolutional modules: `Conv2d` and `MaxPool2d`.
# 4. `BatchNorm2d`, with its training and evaluation behaviour, and `AveragePool`.
# 5. ResNet: `ResidualBlock`, `BlockGroup` and `ResNet34`; its parameter count and receptive field worked
#    out by hand; a small ResNet trained on digits, and its BatchNorms folded into its convolutions.
# 6. Bonus: convolutions from scratch with `torch.as_strided`, up to stride, padding and dilation.
#
# Each part ends with a short **try it**: a change to make and a prediction to write down before you run
# the cell. The 24 exercises' estimates add up to 288 minutes, about 4 hours 50 minutes, of which the bonus
# part's seven take 80; each try-it takes a few minutes more.
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
import copy
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
from tests.checks.chapter0_fundamentals.cnns import check  # noqa: F401 (the build adds the check cells)

# This section's models are tiny, so threads that must keep in step cost more than they save. Measured once
# on a busy 2-core CPU: an epoch of the small ResNet below took 1.0-1.5 s on one thread, 20-40 s on two.
torch.set_num_threads(1)
torch.manual_seed(0)

# %%
train_images, train_labels = digits("train")
val_images, val_labels = digits("val")
assert train_images.shape == (1437, 1, 8, 8) and val_images.shape == (180, 1, 8, 8)
assert len(digits("test")[1]) == 180 and 0 <= train_images.min() and train_images.max() <= 1
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
    """Zero where the input is negative, the input elsewhere: a new tensor of the same shape and dtype."""

    def forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError()


# %% [hint]
# Think about the extremes: your ReLU should map $-\infty$ to 0 and $+\infty$ to $+\infty$. Tricks that
# multiply by a mask or add $|x|$ turn $-\infty$ into NaN. Look for a torch function that takes an
# elementwise maximum, or clamps from below.

# %% [hint]
# `torch.maximum` needs a tensor as its second argument (a zero of `x`'s dtype); `Tensor.clamp` takes a
# number. Avoid the in-place `clamp_`, which would change the caller's `x`.

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
# products, so weights of size $1/\sqrt{n_\text{in}}$ make the outputs' variance the same whatever
# $n_\text{in}$ is (about $1/3$ for inputs of variance 1: $n_\text{in}$ products, each with a weight of
# variance $1/(3 n_\text{in})$), where weights of a fixed size would make it grow in proportion to
# $n_\text{in}$. Do the same
# (`torch.rand` gives uniform values in $[0, 1)$). The check tests your initialisation on a fresh
# `Linear(200, 50)`: the range, both signs, and the spread of the values.


# %% [exercise] Linear difficulty=2 importance=5 minutes=10
class Linear(nn.Module):
    """A linear layer with torch's parameter names, shapes and initialisation."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        """weight: (out_features, in_features); bias: (out_features,), or None when bias=False. Both
        uniform in [-1/sqrt(in_features), 1/sqrt(in_features)]."""
        super().__init__()
        raise NotImplementedError()

    def forward(self, x: Float[Tensor, "... in_features"]) -> Float[Tensor, "... out_features"]:
        """The layer applied to the last axis of x, whatever the number of leading axes (even none)."""
        raise NotImplementedError()


# %% [hint]
# Two things to get right. The initialisation: `torch.rand` gives values in $[0, 1)$; which affine map
# takes that interval to $[-b, b)$? And `forward`: which axis of `weight` pairs with the last axis of
# `x`, and how do you write a product that leaves every leading axis alone (there may be none)?

# %% [hint]
# Stretch the $[0, 1)$ values to width $2b$, then shift them down by $b$; wrap the result in
# `nn.Parameter`. For `forward`, `einops.einsum` with a `...` pattern contracts the `in_features` axes of
# `x` and `weight` and keeps whatever comes before; add the bias unless it is `None`.

# %% [markdown]
# The claim about scale, on your layer: the outputs' variance is near $1/3$ for 16 inputs and for 1024,
# and with the weights scaled up to a fixed size (uniform in $\pm 1$) it grows with the fan-in.

# %%
with torch.no_grad():
    for n_in in (16, 1024):
        layer = Linear(n_in, 256)
        inputs = torch.randn(2000, n_in)
        variance = layer(inputs).var().item()
        layer.weight *= n_in**0.5
        fixed_size_variance = layer(inputs).var().item()
        print(f"n_in = {n_in}: output variance {variance:.3f}; with weights in +-1: {fixed_size_variance:.1f}")
        assert 0.28 < variance < 0.42
        assert 0.25 * n_in < fixed_size_variance < 0.42 * n_in

# %% [markdown]
# ### Flatten
#
# `Flatten(start_dim, end_dim)` merges the axes `start_dim` to `end_dim`, *both included*, into one.
# Negative values count from the end, as everywhere in torch. The defaults, 1 and -1, keep the batch
# axis and flatten each image into a vector. It has no parameters.


# %% [exercise] Flatten difficulty=1 importance=3 minutes=10
class Flatten(nn.Module):
    """Merges the axes start_dim to end_dim (both included; negative counts from the end) into one."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        raise NotImplementedError()

    def forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError()


# %% [hint]
# The output keeps the axes before `start_dim` and after `end_dim` as they are, and one axis in between.
# Negative axes only make sense once you know `x.ndim`, so resolve them in `forward`. The input may not be
# contiguous (a transposed batch, say): which of `view` and `reshape` copes with that?

# %% [hint]
# The remainder of an axis divided by `x.ndim` turns a negative axis into a positive one. Build the new
# shape as a tuple (the leading part, `-1` for the merged axis, the trailing part) and `reshape` to it.

# %% [markdown]
# ### A simple MLP
#
# Put them together: flatten each image, a `Linear` layer to `hidden_features`, a `ReLU`, and a
# `Linear` layer to `n_classes` logits (no ReLU on the logits: they can be negative). Name the
# submodules `flatten`, `linear1`, `relu` and `linear2`, so that the state dict's keys are
# `linear1.weight`, `linear1.bias`, `linear2.weight` and `linear2.bias`.


# %% [exercise] SimpleMLP difficulty=1 importance=4 minutes=5
class SimpleMLP(nn.Module):
    """Flattens each image, then a hidden Linear layer and a ReLU, then a Linear layer to one logit per class."""

    def __init__(self, in_features: int = 64, hidden_features: int = 100, n_classes: int = 10):
        super().__init__()
        raise NotImplementedError()

    def forward(self, x: Float[Tensor, " batch *image"]) -> Float[Tensor, "batch n_classes"]:
        raise NotImplementedError()


# %% [hint]
# Submodules are registered by assigning them to attributes, and the attribute names become the state
# dict's keys. Which sizes does each `Linear` connect?

# %% [hint]
# Four assignments in `__init__` (a `Flatten`, a `Linear` from `in_features` to `hidden_features`, a
# `ReLU`, a `Linear` from `hidden_features` to `n_classes`); `forward` applies them in that order.

# %% [markdown]
# **Try it: take the ReLU out.** Predict first: without the ReLU, what kind of function of the image is the
# MLP? Any affine map $f$ (a linear map plus a constant) satisfies $f(a + b) = f(a) + f(b) - f(0)$. The cell
# checks that identity on an MLP whose ReLU is skipped, and shows that the ReLU breaks it.

# %%
torch.manual_seed(0)
probe_mlp = SimpleMLP(in_features=16, hidden_features=8, n_classes=3)
without_relu = lambda x: probe_mlp.linear2(probe_mlp.linear1(probe_mlp.flatten(x)))  # noqa: E731
a, b, zero = torch.randn(5, 1, 4, 4), torch.randn(5, 1, 4, 4), torch.zeros(5, 1, 4, 4)
with torch.no_grad():
    assert torch.allclose(without_relu(a + b), without_relu(a) + without_relu(b) - without_relu(zero), atol=1e-5)
    assert not torch.allclose(probe_mlp(a + b), probe_mlp(a) + probe_mlp(b) - probe_mlp(zero), atol=1e-2)

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
# `loader` is anything you can iterate over, once, to get `(images, labels)` batches: a list of pairs, a
# `torch.utils.data.DataLoader`, or a generator (which has no length and no indexing).


# %% [exercise] train_epoch difficulty=2 importance=5 minutes=10
def train_epoch(
    model: nn.Module, optimizer: torch.optim.Optimizer, loader: Iterable[tuple[Tensor, Tensor]]
) -> list[float]:
    """One optimizer step per batch on the cross-entropy loss, in training mode; each batch's loss (before
    its step) as a Python float."""
    raise NotImplementedError()


# %% [hint]
# What state does each step leave behind for the next? Gradients accumulate in `.grad` until something
# clears them, and the model's mode stays whatever the last call set. Keep only a number per batch: a
# loss tensor keeps its whole computation graph alive.

# %% [hint]
# Per batch, five steps: the logits, the loss, clearing the old gradients, `backward`, the optimizer's
# step. Clearing may come first, but never between `backward` and `step`. `Tensor.item()` gives the float.

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
# Keep two running counts over a single pass (the loader may be a generator): correct answers and examples.
# A batch's predictions are the index of the largest logit in each row.

# %% [hint]
# `argmax` over the class axis, compared with `labels`, gives a boolean per example; its `sum()` counts the
# correct ones and `len(labels)` the examples.

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
    train_batches = DataLoader(TensorDataset(*train_set), batch_size=batch_size, shuffle=True, generator=shuffle)
    val_batches = DataLoader(TensorDataset(*val_set), batch_size=256)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    batch_losses, val_accuracies = [], []
    for _ in tqdm(range(epochs), desc="epochs"):
        batch_losses += train_epoch(model, optimizer, train_batches)
        val_accuracies.append(evaluate(model, val_batches))
    return batch_losses, val_accuracies


torch.manual_seed(0)
mlp = SimpleMLP(in_features=64, hidden_features=100, n_classes=10)
mlp_losses, mlp_accuracies = train(mlp, (train_images, train_labels), (val_images, val_labels), epochs=10, lr=3e-3)
line({"training loss": mlp_losses}, title="SimpleMLP on 8x8 digits", xaxis="batch", yaxis="cross-entropy").show()
line({"validation accuracy": mlp_accuracies}, title="SimpleMLP: validation accuracy", xaxis="epoch").show()
print(f"validation accuracy after {len(mlp_accuracies)} epochs: {mlp_accuracies[-1]:.3f}")

# %% [markdown]
# The loss falls from about $\ln 10 \approx 2.3$ (a uniform guess over ten classes) to below a quarter
# of that over the last epoch, and the MLP gets more than 90% of the validation digits right. That is a
# fine result for 64 pixels, but an MLP knows nothing about images: its first layer treats the pixels as
# an unordered list, so shuffling the pixels of every image the same way would only shuffle the columns
# of `linear1.weight`. Convolutions build in that nearby pixels belong together, and that a stroke means
# the same wherever it appears.

# %%
batches_per_epoch = len(mlp_losses) // len(mlp_accuracies)
assert 2.0 < mlp_losses[0] < 2.6, "the first loss should be near ln(10)"
assert sum(mlp_losses[-batches_per_epoch:]) / batches_per_epoch < mlp_losses[0] / 4
assert mlp_accuracies[-1] > 0.9

# %% [markdown]
# ### Early stopping
#
# `train` runs a fixed number of epochs and keeps the last weights, but the last epoch is not always the
# best: on a small training set the validation accuracy often peaks and then stalls or falls. Early
# stopping keeps a copy of the weights from the epoch with the best validation accuracy so far, stops
# once `patience` epochs in a row have brought no new best (or after `max_epochs`), and restores the copy.
#
# Write `fit`. Use your `train_epoch` and `evaluate`. An epoch brings a new best only if its accuracy is
# strictly higher than every earlier one: on a validation set of 180 digits ties are common, and the earlier
# of two equal epochs is the one to keep. Return every epoch's validation accuracy. The loaders can be read
# once per epoch (lists or `DataLoader`s). The check trains a small network with a BatchNorm (so its
# `state_dict` has buffers as well as parameters) and compares the accuracies and the weights it ends with.


# %% [exercise] fit difficulty=4 importance=5 minutes=25
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
    raise NotImplementedError()


# %% [hint]
# Three pieces of state survive from one epoch to the next: the best accuracy so far, the weights that
# reached it, and how many epochs have passed since. Think about what a model's state dict holds: does it
# still hold the same numbers after the optimizer's next step?

# %% [hint]
# `state_dict()` maps names to tensors that share storage with the live parameters and buffers, so the
# saved copy must clone each tensor. Per epoch: train, evaluate, append; on a strictly higher accuracy save
# the copy and reset the counter, else add one to it and `break` when it reaches `patience`. After the loop,
# `model.load_state_dict` the copy.

# %% [markdown]
# On a fresh MLP with a smaller learning rate, up to 40 epochs with patience 3. It stops long before 40:
# the validation accuracy stalls. The model `fit` leaves behind scores exactly the best accuracy in the
# list it returned, and it stopped because the last three epochs brought no new best.

# %%
torch.manual_seed(0)
early_mlp = SimpleMLP()
shuffle = torch.Generator().manual_seed(0)
digit_loader = DataLoader(TensorDataset(train_images, train_labels), batch_size=64, shuffle=True, generator=shuffle)
val_loader = DataLoader(TensorDataset(val_images, val_labels), batch_size=256)
history = fit(
    early_mlp, torch.optim.Adam(early_mlp.parameters(), lr=1e-3), digit_loader, val_loader, max_epochs=40, patience=3
)
best_epoch = history.index(max(history))
print(f"{len(history)} epochs run; best validation accuracy {max(history):.3f} after epoch {best_epoch + 1}")
assert len(history) < 20 and best_epoch == len(history) - 1 - 3
assert evaluate(early_mlp, val_loader) == max(history)

# %% [markdown]
# **Try it: shuffle the pixels.** Pick one fixed permutation of the 64 pixels and apply it to every image,
# training and validation alike. Predict first: does the MLP's validation accuracy after ten epochs fall a
# lot, a little, or not at all? The MLP's first layer treats its inputs as an unordered list, so the
# permutation only reorders the columns of `linear1.weight` that it has to learn. The cell asserts the two
# accuracies are within 5 points of each other.

# %%
pixel_order = torch.randperm(64, generator=torch.Generator().manual_seed(1))
shuffled = lambda images: images.flatten(1)[:, pixel_order].reshape(images.shape)  # noqa: E731
torch.manual_seed(0)
shuffled_mlp = SimpleMLP()
_, shuffled_accuracies = train(
    shuffled_mlp, (shuffled(train_images), train_labels), (shuffled(val_images), val_labels), epochs=10, lr=3e-3
)
print(f"validation accuracy: {mlp_accuracies[-1]:.3f} on digits, {shuffled_accuracies[-1]:.3f} on shuffled digits")
assert abs(shuffled_accuracies[-1] - mlp_accuracies[-1]) < 0.05

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
        raise NotImplementedError()

    def forward(self, x: Float[Tensor, "batch in_channels height width"]) -> Float[Tensor, "batch out_channels oh ow"]:
        raise NotImplementedError()


# %% [hint]
# This is `Linear` again with a different fan-in: how many inputs does one output sum over? `forward` needs
# the stride and the padding too, so keep them on the module.

# %% [hint]
# The fan-in is `in_channels` times the kernel's area. `F.conv2d` takes the input, the weight, the bias
# (which may be `None`) and `stride` and `padding` keywords.

# %% [markdown]
# Max pooling keeps the largest value in each `kernel_size` x `kernel_size` window. Like torch's,
# your `MaxPool2d` takes `stride=None` to mean "the same as `kernel_size`", so windows don't overlap
# by default. Use `F.max_pool2d` inside. It has no parameters.


# %% [exercise] MaxPool2d difficulty=1 importance=3 minutes=5
class MaxPool2d(nn.Module):
    """The largest value in each kernel_size x kernel_size window; stride None means kernel_size."""

    def __init__(self, kernel_size: int, stride: int | None = None, padding: int = 0):
        super().__init__()
        raise NotImplementedError()

    def forward(self, x: Float[Tensor, "batch channels height width"]) -> Float[Tensor, "batch channels oh ow"]:
        raise NotImplementedError()


# %% [hint]
# Where does the default stride get decided, and what must it be when the caller passes none? Store the
# arguments in `__init__` and use them in `forward`.

# %% [hint]
# Replace a `None` stride by the kernel size, then hand everything to `F.max_pool2d`.

# %% [markdown]
# **Try it: move the image.** Shift an image one pixel to the right. Predict first: what happens to the
# output of a stride-1 convolution, and to the output of a 2x2 max pooling? A convolution applies the same
# kernel everywhere, so its output moves with the image (away from the borders); pooling with stride 2
# reports each window once, so a one-pixel move changes which pixels share a window.

# %%
torch.manual_seed(0)
conv = Conv2d(1, 2, kernel_size=3, padding=1)
image = torch.randn(1, 1, 8, 8)
moved = torch.cat([torch.zeros(1, 1, 8, 1), image[..., :-1]], dim=-1)  # one pixel right, a zero column enters
with torch.no_grad():
    assert torch.allclose(conv(moved)[..., 2:-1], conv(image)[..., 1:-2], atol=1e-6)
    assert not torch.allclose(MaxPool2d(2)(moved)[..., 1:], MaxPool2d(2)(image)[..., :-1])

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
# integer), registered with `self.register_buffer(name, tensor)`. The running estimates are statistics,
# not something to differentiate: update them without recording gradients. The check trains your module
# on a few batches (one with a nearly constant channel, where $\epsilon$ matters), compares every output
# and the buffers with torch's `nn.BatchNorm2d`, then compares the outputs in eval mode and checks that
# eval mode left the buffers alone.


# %% [exercise] BatchNorm2d difficulty=3 importance=5 minutes=20
class BatchNorm2d(nn.Module):
    """Normalises each channel to mean 0 and variance 1, then scales it by weight and shifts it by bias."""

    running_mean: Tensor
    running_var: Tensor
    num_batches_tracked: Tensor

    def __init__(self, num_features: int, eps: float = 1e-05, momentum: float = 0.1):
        """Parameters weight (ones) and bias (zeros); buffers running_mean (zeros), running_var (ones)
        and num_batches_tracked (0)."""
        super().__init__()
        raise NotImplementedError()

    def forward(self, x: Float[Tensor, "batch channels height width"]) -> Float[Tensor, "batch channels height width"]:
        """Normalised with the batch's statistics in training mode (which also updates the running ones), or
        with the running statistics in eval mode (which changes nothing)."""
        raise NotImplementedError()


# %% [hint]
# Per channel means one statistic for each channel, pooled over every other axis: shape `(channels,)`,
# which then has to broadcast against `(batch, channels, height, width)`. Write down which variance
# (biased or unbiased) goes where, and where $\epsilon$ sits: a channel whose values are all nearly equal
# is where a misplaced $\epsilon$ shows.

# %% [hint]
# `mean` and `var` accept a tuple of axes, and `var` takes `unbiased=False` for the biased version.
# The unbiased variance is the biased one times $N / (N - 1)$, with $N$ the number of values per channel.
# Update the buffers in place (`mul_`, `add_`) under `torch.no_grad()`, and only when `self.training`.

# %% [markdown]
# Here is the difference between the modes. A batch whose channels have mean 3: in training mode the
# output's channel means are 0 (up to rounding); after one batch the running mean has moved only a
# tenth of the way from 0 towards 3, so in eval mode the output is far from centred. And in eval mode
# an image's output no longer depends on the rest of its batch.

# %%
bn = BatchNorm2d(2)
batch = 3 + torch.randn(16, 2, 4, 4)
assert bn(batch).mean(dim=(0, 2, 3)).abs().max() < 1e-5
assert int(bn.num_batches_tracked) == 1 and torch.allclose(bn.running_mean, 0.1 * batch.mean(dim=(0, 2, 3)))
bn.eval()
assert bn(batch).mean() > 2
assert torch.allclose(bn(batch[:1]), bn(batch)[:1])
print("running mean after one batch:", bn.running_mean)

# %% [markdown]
# The last layer before a ResNet's classifier averages each channel over the whole image, leaving one
# number per channel: global average pooling. Write it as a module with no parameters.


# %% [exercise] AveragePool difficulty=1 importance=2 minutes=3
class AveragePool(nn.Module):
    """The mean over height and width: one number per image and channel."""

    def forward(self, x: Float[Tensor, "batch channels height width"]) -> Float[Tensor, "batch channels"]:
        raise NotImplementedError()


# %% [hint]
# Which axes disappear, and which stay? A batch of one image must keep its batch axis.

# %% [hint]
# `Tensor.mean` accepts a tuple of axes.

# %% [markdown]
# **Try it: brighten the batch.** Add 5 to every pixel of a batch. Predict first: how does a BatchNorm's
# output change in training mode, and in eval mode? In training mode the batch's own mean absorbs the shift;
# in eval mode the running mean does not move, so the whole shift passes through (scaled by
# $1/\sqrt{\text{running\_var} + \epsilon}$).

# %%
torch.manual_seed(0)
bn = BatchNorm2d(3)
batch = torch.randn(8, 3, 4, 4)
with torch.no_grad():
    assert torch.allclose(bn(batch + 5), bn(batch), atol=1e-4)
    bn.eval()
    shift_per_channel = 5 / torch.sqrt(bn.running_var + bn.eps)
    assert torch.allclose(bn(batch + 5) - bn(batch), shift_per_channel[None, :, None, None].expand_as(batch), atol=1e-4)

# %% [markdown]
# If you skipped parts 2, 3 or 4, run the next cell: it replaces the modules and loops the ResNet is built
# from, and trained with, by the course's reference versions. Skip it if yours pass their checks.

# %%
# Fallback: the reference modules and loops, for a learner who skipped parts 2 to 4.
# (Some names are only looked up at run time by the classes defined above: hence the noqa.)
from solutions.chapter0_fundamentals.cnns import (  # noqa: F401
    AveragePool,
    BatchNorm2d,
    Conv2d,
    Flatten,
    Linear,
    MaxPool2d,
    ReLU,
    evaluate,
    train_epoch,
)

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
    """A residual block: a learned correction (left) added to a shortcut (right), then a ReLU."""

    def __init__(self, in_feats: int, out_feats: int, first_stride: int = 1):
        """left: conv 3x3 (stride first_stride) -> BN -> ReLU -> conv 3x3 -> BN; right: the identity, or
        conv 1x1 (stride first_stride) -> BN when the shape changes."""
        super().__init__()
        raise NotImplementedError()

    def forward(self, x: Float[Tensor, "batch in_feats height width"]) -> Float[Tensor, "batch out_feats oh ow"]:
        """Both branches applied to x, summed, then the ReLU."""
        raise NotImplementedError()


# %% [hint]
# The two branches must give the same shape, so ask when `x` itself already has `left`'s output shape:
# the channel count *and* the stride both matter (a block with equal widths but stride 2 still needs a
# converting shortcut). And where does the ReLU go? One inside `left` just before the sum would make the
# block's correction non-negative.

# %% [hint]
# Both 3x3 convolutions take `padding=1` and `bias=False`; only the first takes `first_stride`. The
# shortcut's 1x1 convolution takes `first_stride` too, and no padding. The ReLU comes after the sum.

# %% [markdown]
# ### BlockGroup
#
# ResNets stack blocks in groups. Only the first block of a group changes the shape (more channels,
# and stride 2 to halve the height and width); the others keep it. `BlockGroup(n_blocks, in_feats,
# out_feats, first_stride)` is `self.blocks = nn.Sequential(...)` of `ResidualBlock(in_feats,
# out_feats, first_stride)` followed by `n_blocks - 1` blocks `ResidualBlock(out_feats, out_feats)`.


# %% [exercise] BlockGroup difficulty=1 importance=4 minutes=5
class BlockGroup(nn.Module):
    """n_blocks ResidualBlocks in a row; only the first changes the shape (to out_feats, with first_stride)."""

    def __init__(self, n_blocks: int, in_feats: int, out_feats: int, first_stride: int = 1):
        super().__init__()
        raise NotImplementedError()

    def forward(self, x: Float[Tensor, "batch in_feats height width"]) -> Float[Tensor, "batch out_feats oh ow"]:
        raise NotImplementedError()


# %% [hint]
# After the first block, what are the input width and the stride of every later block?

# %% [hint]
# `nn.Sequential` takes modules as separate arguments: the first block, then the unpacked list of the
# `n_blocks - 1` others.

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
        raise NotImplementedError()

    def forward(self, x: Float[Tensor, "batch in_channels height width"]) -> Float[Tensor, "batch n_classes"]:
        raise NotImplementedError()


# %% [hint]
# Each group needs four numbers: its block count, input width, output width and first stride. Three come
# from the arguments; the input width is the previous group's output width, and the stem's for the first.

# %% [hint]
# The list of input widths is the stem's width followed by every group's width but the last; `zip` it
# with the other three sequences and build one `BlockGroup` per tuple.

# %% [markdown]
# ### Counting parameters by hand
#
# torchvision's `resnet34` has 21,797,672 parameters. Before building the model, work the number out
# from the layout: write `resnet_parameter_count`, which takes `ResNet34`'s arguments and returns how many
# parameters the model they describe trains, without building it. Go through the stem, every block of
# every group (which blocks have a converting shortcut?) and the classifier. Parameters only: BatchNorm's
# running statistics are buffers.


# %% [exercise] resnet_parameter_count difficulty=3 importance=3 minutes=20
def resnet_parameter_count(
    n_blocks_per_group: Sequence[int] = (3, 4, 6, 3),
    out_features_per_group: Sequence[int] = (64, 128, 256, 512),
    first_strides_per_group: Sequence[int] = (1, 2, 2, 2),
    n_classes: int = 1000,
    in_channels: int = 3,
) -> int:
    """The number of trained parameters of ResNet34 built with these arguments, worked out from the layout
    without building the model."""
    raise NotImplementedError()


# %% [hint]
# Count one kind of layer at a time. A convolution without bias, a BatchNorm and a Linear each have a
# count that depends only on their widths and kernel size. Then ask, for each block: what are its input
# width and stride, and does it need the shortcut's extra layers?

# %% [hint]
# Keep a running input width: the stem's width at first, then each block's output width. A block adds two
# 3x3 convolutions and two BatchNorms, plus a 1x1 convolution and a BatchNorm when its stride is not 1 or
# its widths differ. The classifier has a weight and a bias.

# %% [markdown]
# Your count and the model's agree: the cell builds ResNet34 and the small ResNet of the next section,
# counts their parameters with `numel`, and compares. It also counts the 33 convolutions of the main path
# (the shortcuts' 1x1 convolutions are extra) and follows a 224x224 image through the stem to 56x56.

# %%
resnet34 = ResNet34()
n_parameters = sum(p.numel() for p in resnet34.parameters())
print(f"ResNet34: {n_parameters:,} parameters")
assert n_parameters == 21_797_672 == resnet_parameter_count()
small_layout = ((1, 1), (32, 64), (1, 2), 10, 1)
assert resnet_parameter_count(*small_layout) == sum(p.numel() for p in ResNet34(*small_layout).parameters())
convolutions = [name for name, m in resnet34.named_modules() if isinstance(m, Conv2d)]
assert len([name for name in convolutions if ".right." not in name]) == 33
with torch.no_grad():
    assert resnet34.in_layers(torch.zeros(1, 3, 224, 224)).shape == (1, 64, 56, 56)
del resnet34

# %% [markdown]
# ### Receptive field
#
# One position of the last feature map (before the average pooling) is computed from a square of the
# input image: its *receptive field*. Each layer with kernel size $k$ widens it, and each stride spaces out
# the positions that later layers combine. Write `receptive_field`, which takes a chain of layers as
# `(kernel_size, stride)` pairs and returns the width of the stretch of input, along one axis, that one
# output position depends on: from the first input position it reads to the last (a kernel of 1 with
# stride 2 skips positions, but the stretch still spans them). Work it out on paper for two 3x3
# convolutions first.


# %% [exercise] receptive_field difficulty=3 importance=3 minutes=15
def receptive_field(layers: Sequence[tuple[int, int]]) -> int:
    """The width, in input positions along one axis, of the stretch of input (from its first position read to
    its last) that one output position of this chain of (kernel_size, stride) layers depends on."""
    raise NotImplementedError()


# %% [hint]
# Walk the layers from the input upwards and keep two numbers: the width so far, and how many input
# positions apart two neighbouring positions are at the current depth. Which of the two does a layer's
# kernel change, and which its stride?

# %% [hint]
# A kernel of size $k$ reaches $k - 1$ positions further at the current depth, each the current spacing
# apart in the input; only then does the layer's stride multiply the spacing, for the layers after it.
# Two 3x3 convolutions of stride 1: 5. The stem, 7 stride 2 then 3 stride 2: 11.

# %% [markdown]
# The main path of ResNet34 is the stem's convolution and pooling, then two 3x3 convolutions per block.
# Its receptive field, 899 pixels, is far wider than the 224x224 images it was trained on: every
# position of the last feature map can see the whole image. The second half of the cell measures a
# receptive field instead of computing it: it makes every weight of a small ResNet positive, so no
# ReLU cuts a path, swaps its max pooling for an average pooling of the same size (a maximum passes a
# gradient to one pixel of its window, an average to all of them), and finds which input pixels get a
# gradient from one position of the last feature map.

# %%
main_path = [(7, 2), (3, 2)]
for n_blocks, stride in zip((3, 4, 6, 3), (1, 2, 2, 2)):
    for position in range(n_blocks):
        main_path += [(3, stride if position == 0 else 1), (3, 1)]
print(f"ResNet34's receptive field: {receptive_field(main_path)} pixels")
assert receptive_field(main_path) == 899

torch.manual_seed(0)
probe_resnet = ResNet34((1, 1), (4, 8), (1, 2), 10, 1).eval()
with torch.no_grad():
    for parameter in probe_resnet.parameters():
        parameter.abs_()
probe_resnet.in_layers[3] = nn.AvgPool2d(kernel_size=3, stride=2, padding=1)
image = torch.ones(1, 1, 96, 96, requires_grad=True)
features = probe_resnet.residual_layers(probe_resnet.in_layers(image))  # strides 2, 2 and 2: a 12x12 map
assert features.shape[-2:] == (12, 12)
features[0, 0, 6, 6].backward()  # a middle position, whose field lies inside the image
rows_read = image.grad[0, 0].abs().sum(dim=1).nonzero()
measured = int(rows_read.max() - rows_read.min() + 1)
probe_path = [(7, 2), (3, 2), (3, 1), (3, 1), (3, 2), (3, 1)]
print(f"measured {measured}, computed {receptive_field(probe_path)}")
assert measured == receptive_field(probe_path) == 51
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
shapes = {}
groups = [(f"group {i}", g) for i, g in enumerate(small_resnet.residual_layers)]
for name, part in [
    ("stem", small_resnet.in_layers),
    *groups,
    ("pooling", small_resnet.out_layers[:2]),
    ("classifier", small_resnet.out_layers[2]),
]:
    x = part(x)
    shapes[name] = tuple(x.shape)
    print(f"after {name}: {shapes[name]}")
assert shapes == {
    "stem": (2, 32, 4, 4),
    "group 0": (2, 32, 4, 4),
    "group 1": (2, 64, 2, 2),
    "pooling": (2, 64),
    "classifier": (2, 10),
}
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
# ### Folding BatchNorm into the convolution
#
# In eval mode a BatchNorm no longer depends on the batch: per channel it multiplies by a fixed number and
# adds a fixed number. A convolution is linear too, so a convolution followed by a BatchNorm in eval mode
# is one convolution with different weights and a bias. Deployed networks fold them this way and save a
# layer. Write `fuse_conv_bn`: it returns a new `Conv2d` (your class, with the same kernel size, stride
# and padding, and a bias) whose output equals `bn(conv(x))` for `bn` in eval mode, and leaves `conv` and
# `bn` as they were. `conv` may or may not have a bias.


# %% [exercise] fuse_conv_bn difficulty=3 importance=3 minutes=20
def fuse_conv_bn(conv: Conv2d, bn: BatchNorm2d) -> Conv2d:
    """A new Conv2d, with a bias, whose output equals bn(conv(x)) with bn in eval mode; conv and bn are left
    unchanged."""
    raise NotImplementedError()


# %% [hint]
# Write eval-mode BatchNorm as $y = a\,z + c$ per output channel, with $a$ and $c$ made of its parameters
# and running statistics. Substitute the convolution's output for $z$: which part of the result scales
# the kernel of each output channel, and which part is a constant per channel?

# %% [hint]
# The scale is the BatchNorm's weight over the square root of running variance plus eps. It multiplies
# every kernel value of its output channel (the first axis of the conv's weight). The new bias is the
# conv's bias (zero when it has none) minus the running mean, times the scale, plus the BatchNorm's bias.
# Build the new module and copy the values in without recording gradients.

# %% [markdown]
# Fold the trained small ResNet's stem: its first convolution and BatchNorm become one convolution, and
# the network's logits on the validation digits are unchanged up to float rounding.

# %%
with torch.no_grad():
    fused_stem = fuse_conv_bn(small_resnet.in_layers[0], small_resnet.in_layers[1])
    folded_features = small_resnet.in_layers[3](small_resnet.in_layers[2](fused_stem(val_images_16)))
    folded_logits = small_resnet.out_layers(small_resnet.residual_layers(folded_features))
    assert torch.allclose(folded_logits, small_resnet(val_images_16), atol=1e-4)
    assert torch.equal(folded_logits.argmax(dim=-1), small_resnet(val_images_16).argmax(dim=-1))
assert not small_resnet.training and fused_stem.bias is not None

# %% [markdown]
# **Try it: switch a block off.** Set the weight and bias of the last BatchNorm in a block's left branch
# to zero (some ResNets start training this way, Goyal et al. 2017). Predict first: what does a block with
# an identity shortcut then compute? The correction $F(x)$ is zero, so the block returns
# $\mathrm{ReLU}(x)$, and its input, which comes out of a ReLU, is already non-negative: the block is
# exactly the identity.

# %%
block = copy.deepcopy(small_resnet.residual_layers[0].blocks[0])
assert isinstance(block.right, nn.Identity)
with torch.no_grad():
    block.left[4].weight.zero_()
    block.left[4].bias.zero_()
    block_input = small_resnet.in_layers(val_images_16)
    assert torch.equal(block(block_input), block_input)

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
# `as_strided` checks only that the view stays inside the storage. A slice shares its parent's
# storage, so strides that are wrong but stay inside it read the parent's other elements: wrong numbers,
# not errors. Always use `x.stride()` rather than assuming a contiguous layout. (In real code,
# `x.unfold` builds the same windows from the tensor's shape, so it cannot read past the tensor.)

# %%
example = torch.arange(6).reshape(2, 3)
print(example.stride(), example.T.stride())
assert example.stride() == (3, 1) and example.T.stride() == (1, 3)
assert torch.arange(3).expand(2, 3).stride() == (0, 1)  # broadcasting: a stride of 0 repeats the row
assert example.as_strided((3, 2), (1, 3)).equal(example.T)
assert example.as_strided((2, 2), (3, 1)).equal(example[:, :2])
try:
    example.as_strided((10,), (1,))  # more elements than the storage holds
    raise AssertionError("as_strided should refuse a view past the end of the storage")
except RuntimeError:
    pass
corner = example[:, :2]  # [[0, 1], [3, 4]], in storage that holds all six elements
print("the corner read as if contiguous:", corner.as_strided((2, 2), (2, 1)).tolist())
assert corner.as_strided((2, 2), (2, 1)).tolist() == [[0, 1], [2, 3]]  # silently wrong
assert torch.arange(5).unfold(0, 3, 1).equal(torch.arange(5).as_strided((3, 3), (1, 1)))

# %% [markdown]
# First, the trace of a square matrix, the sum of its diagonal, with one `as_strided` view: one step
# along the diagonal is one step down plus one step right.


# %% [exercise] as_strided_trace difficulty=1 importance=2 minutes=5
def as_strided_trace(mat: Float[Tensor, "n n"]) -> Float[Tensor, ""]:
    """The sum of the diagonal, read through one as_strided view."""
    raise NotImplementedError()


# %% [hint]
# How many elements does the diagonal have, and how far apart are consecutive ones in storage? The
# matrix may be a transpose or a slice of a larger one, so ask the tensor, don't assume.

# %% [hint]
# A one-axis view of length `n` whose single stride is the sum of the matrix's two strides.

# %% [markdown]
# Next, a matrix product $AB$ with $A$ of shape `(i, j)` and $B$ of shape `(j, k)`: view both as
# `(i, j, k)` with stride-0 axes (no copying), multiply elementwise and sum over $j$.


# %% [exercise] as_strided_matmul difficulty=2 importance=2 minutes=10
def as_strided_matmul(a: Float[Tensor, "i j"], b: Float[Tensor, "j k"]) -> Float[Tensor, "i k"]:
    """The matrix product of a and b, from as_strided views of both as (i, j, k), without copying."""
    raise NotImplementedError()


# %% [hint]
# Each of `a` and `b` lacks one of the three axes; along the missing axis its view repeats itself. Which
# stride makes an axis repeat? Which axis does the product sum over?

# %% [hint]
# Keep each tensor's own two strides for the axes it has, and a 0 for the one it lacks (`k` for `a`, `i`
# for `b`). Multiply the views and sum over the middle axis.

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
# In the windows view, how far in storage is one step along the output-position axis, and one step along
# the kernel axis? Both are steps along the input's width. Take the strides from `x`, which may be a
# slice or a transpose.

# %% [hint]
# The windows keep `x`'s batch and channel strides and use its width stride twice. Then one `einsum`
# contracts the channel and kernel axes of the windows with those of `weights`.

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
# The new tensor should match `x` in everything but its last two sizes: the leading axes, the dtype and
# the device. Which slice of it holds `x`? Careful with a pad of 0 on the far side: a negative slice end of
# `-0` is not the end.

# %% [hint]
# `x.new_full` makes a filled tensor with `x`'s dtype and device. Assign `x` to the rows from `top` and the
# columns from `left`, `height` and `width` of them.

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
# Pad first, and take every size and stride from the *padded* tensor. In the windows view, one step of
# output position moves `stride` rows (or columns) in the input, one step in the kernel moves one.

# %% [hint]
# Six axes: batch and channel keep their strides; output row and column multiply the input's row and
# column strides by `stride`; kernel row and column use them as they are. An `einsum` over channel and
# both kernel axes finishes it.

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
# Which pad value can never be the maximum of a window, whatever the inputs are (even $-10^{10}$)?
# The windows are those of `conv2d_strided`; only the reduction changes.

# %% [hint]
# Pad with minus infinity, build the same six-axis windows view with a square kernel, and take the
# maximum over the two kernel axes (`amax` accepts a tuple).

# %% [markdown]
# Your strided convolution and pooling can stand in for `F.conv2d` and `F.max_pool2d` in a trained
# network. Swap them into the small ResNet's stem and the predictions are unchanged:

# %%
with torch.no_grad():
    stem = small_resnet.in_layers[0]
    assert torch.allclose(
        conv2d_strided(val_images_16, stem.weight, stride=2, padding=3), stem(val_images_16), atol=1e-5
    )
    pooled = small_resnet.in_layers[:3](val_images_16)
    assert torch.equal(maxpool2d_strided(pooled, 3, stride=2, padding=1), small_resnet.in_layers[3](pooled))
    swapped_stem = small_resnet.in_layers[1:3](conv2d_strided(val_images_16, stem.weight, stride=2, padding=3))
    swapped_stem = maxpool2d_strided(swapped_stem, 3, stride=2, padding=1)
    swapped_logits = small_resnet.out_layers(small_resnet.residual_layers(swapped_stem))
    assert torch.equal(swapped_logits.argmax(dim=-1), small_resnet(val_images_16).argmax(dim=-1))

# %% [markdown]
# A *dilated* convolution spreads its kernel out: with dilation $d$ its taps are $d$ input positions
# apart, so a 3x3 kernel with dilation 2 covers a 5x5 square with nine weights. Dilation widens the
# receptive field without adding parameters or shrinking the image. Extend your strided convolution with
# a `dilation` argument, again with one `as_strided` view and one `einsum`.


# %% [exercise] conv2d_dilated difficulty=3 importance=2 minutes=15
def conv2d_dilated(
    x: Float[Tensor, "batch in_channels height width"],
    weights: Float[Tensor, "out_channels in_channels kernel_height kernel_width"],
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
) -> Float[Tensor, "batch out_channels oh ow"]:
    """Like F.conv2d without bias, with the same stride, zero padding and dilation on both axes."""
    raise NotImplementedError()


# %% [hint]
# How wide a stretch of the padded input does one output read, from its first tap to its last? That
# width, not the kernel size, decides how many outputs fit. Then, in the windows view, which steps grow
# with the dilation: moving to the next output, or moving to the next tap?

# %% [hint]
# A kernel of $k$ taps with dilation $d$ spans $d(k - 1) + 1$ positions; the output size is the padded
# size minus that span, divided by the stride (rounded down), plus one. Only the two kernel axes of the
# view change: their strides are the input's row and column strides times the dilation.

# %% [markdown]
# **Try it: strides that lie.** Take the strides from `x` *before* padding, then build the windows of the
# padded tensor with them. Predict first: an error, or wrong numbers? The padded tensor is bigger than
# the view those strides describe, so `as_strided` stays inside its storage and raises nothing: the
# numbers are simply wrong.

# %%
x = torch.randn(1, 1, 5, 5)
weights = torch.randn(1, 1, 3, 3)
padded = pad2d(x, 1, 1, 1, 1, 0.0)
image_step, channel_step, row_step, column_step = x.stride()  # 25, 25, 5, 1; the padded tensor's are 49, 49, 7, 1
stale_windows = padded.as_strided(
    (1, 1, 5, 5, 3, 3), (image_step, channel_step, row_step, column_step, row_step, column_step)
)
stale = einops.einsum(stale_windows, weights, "b c oh ow kh kw, o c kh kw -> b o oh ow")
assert stale.shape == (1, 1, 5, 5) and not torch.allclose(stale, F.conv2d(x, weights, padding=1))
assert torch.allclose(conv2d_dilated(x, weights, padding=1), F.conv2d(x, weights, padding=1), atol=1e-5)

# %% [markdown]
# ## Summary
#
# - **Modules are parameters, buffers and a forward function.** Matching torch's names and shapes made
#   your modules interchangeable with torch's through the state dict; the initialisation scale
#   ($1/\sqrt{\text{fan-in}}$) keeps the size of a layer's outputs independent of its width.
# - **Training and eval modes differ.** BatchNorm normalises with batch statistics while training and
#   running statistics in eval mode. `train_epoch` calls `model.train()` and `evaluate` calls
#   `model.eval()`; forgetting either is a silent bug, as is forgetting `optimizer.zero_grad()`.
# - **Residual connections** make the identity easy to learn, which is what lets very deep networks
#   train. ResNet34 is a stem, four groups of residual blocks and a linear classifier: 21,797,672
#   parameters.
# - **On real data**, a small ResNet beat the MLP on handwritten digits (above 95% validation accuracy
#   in four epochs, against above 90% for the MLP in ten).
# - **Counting by hand** (parameters from the layout, the receptive field from kernels and strides)
#   agrees with the built model, and a BatchNorm in eval mode folds into the convolution before it.
# - **Early stopping** keeps a *copy* of the best weights: `state_dict()` alone shares their storage.
# - **Bonus:** `as_strided` views expose every window of an image without copying, and a convolution
#   (strided, padded or dilated) is then a single `einsum`.
#
# **Going further.** Train the small ResNet on the shuffled digits of part 2's try-it and compare it with
# the MLP there. Remove the shortcut from the small ResNet's blocks
# and see how training changes as you add blocks. Compare `conv2d_strided` with `x.unfold` and time
# both against `F.conv2d`.

# %% [markdown]
# # 0.0 Prerequisites: einops, broadcasting and einsum
#
# Nearly everything later in this course is code that moves tensors around: a batch of images
# with axes `(image, channel, height, width)`, a transformer's activations with axes
# `(batch, position, head, d_head)`. The most common bugs in that code are axis bugs, and many
# of them are silent: average over the wrong axis of a square tensor and the shape still comes
# out right. This section drills the three tools the rest of the course leans on:
#
# 1. **einops**, which rearranges, reduces and repeats axes by name (puzzles on small digit images);
# 2. **broadcasting and indexing**, how PyTorch combines tensors of different shapes and picks entries out of them;
# 3. **einsum**, which writes any sum of products (trace, matrix products, batched products) as one pattern.
#
# There are 18 short exercises, about two hours in all.
#
# **Who can skip this.** If you can, without looking anything up, write
# `einops.rearrange(x, "(row col) c h w -> c (row h) (col w)", row=2)` and say what it draws,
# say why `x[:, None] - y[None]` has shape `(m, n, dim)`, and pick `logits[i, labels[i]]` for
# every `i` in one line, then skim the summary at the end and move on to 0.1. The checks below
# also work as a quiz.
#
# **How the exercises work.** Each exercise is a function whose body raises
# `NotImplementedError`. Replace the body, run the cell, then run the `check(...)` cell after
# it: it runs your function and the reference on the same inputs (some worked out by hand,
# some random) and prints ✓, or the first difference it finds and a hint. Tensors must match
# in shape *and* dtype. Hints and the solution are folded under each exercise.

# %%
import einops
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from course.plot import imshow
from solutions.chapter0_fundamentals import prerequisites as reference
from solutions.chapter0_fundamentals.prerequisites import digit_images
from tests.checks.chapter0_fundamentals.prerequisites import check

# %% [markdown]
# ## Part 1: einops
#
# The puzzles use six small pictures that the course draws itself: the digits 0 to 5 in
# coloured ink on black. `digit_images()` returns them as one tensor with axes
# `(digit, channel, height, width)`; the channels are red, green and blue, with values in [0, 1].

# %%
images = digit_images()
assert images.shape == (6, 3, 36, 28)
assert images.min() == 0.0 and images.max() <= 1.0
imshow(images[3], title="images[3]: the digit 3", height=250).show()

# %% [markdown]
# ### rearrange: name the axes, then say where they go
#
# `einops.rearrange(x, "d c h w -> c h (d w)")` reads as a sentence. Left of the arrow, one name
# per axis of the input (the names are only labels: `digit` would do as well as `d`). Right of
# the arrow, the axes of the output in the order you want them. Parentheses on the right merge
# axes into one; parentheses on the left split one axis into several, and you pass the size of
# all but one of the parts as a keyword argument.
#
# **Order inside parentheses matters.** The leftmost name in a group varies slowest, as the
# digits of a number do: in `(a b)`, all the `b` entries for the first `a` come first.

# %%
x = torch.arange(6).reshape(2, 3)  # [[0, 1, 2], [3, 4, 5]]
assert einops.rearrange(x, "a b -> (a b)").tolist() == [0, 1, 2, 3, 4, 5]
assert einops.rearrange(x, "a b -> (b a)").tolist() == [0, 3, 1, 4, 2, 5]
assert einops.rearrange(torch.arange(6), "(a b) -> a b", a=2).tolist() == [[0, 1, 2], [3, 4, 5]]

# %% [markdown]
# Reordering names without parentheses is a transpose. Swapping height and width lays each
# digit on its side (a reflection in the diagonal):

# %%
on_side = einops.rearrange(images, "d c h w -> d c w h")
assert on_side.shape == (6, 3, 28, 36)
assert torch.equal(on_side[0, 0], images[0, 0].T)
imshow(on_side[2], title="the digit 2, height and width swapped", height=200).show()

# %% [markdown]
# Your first puzzle: put all six digits in a row, in order, as one image of shape
# `(channel, height, 6 * width)`. Here is the target:

# %%
imshow(reference.side_by_side(images), title="target: side_by_side(images)", height=200).show()


# %% [exercise] side_by_side difficulty=1 importance=4 minutes=5
def side_by_side(images: Float[Tensor, "digit channel height width"]) -> Float[Tensor, "channel height digit*width"]:
    """Lay the images out left to right in one wide image, the first image leftmost."""
    raise NotImplementedError()


# %% [hint]
# The output has three axes: channel, height, and one wide axis made of two input axes merged.
# Which two, and in which order?

# %% [hint]
# `"d c h w -> c h (d w)"`. Try `(w d)` too and look at the picture: it interleaves the columns.

# %% [markdown]
# Next, a grid: `rows` rows of images, filled row by row. With `rows=2` the digits 0, 1, 2 form
# the top row and 3, 4, 5 the bottom one. You will need to split the digit axis into two.

# %%
imshow(reference.grid(images, rows=2), title="target: grid(images, rows=2)", height=300).show()


# %% [exercise] grid difficulty=2 importance=4 minutes=10
def grid(
    images: Float[Tensor, "digit channel height width"], rows: int
) -> Float[Tensor, "channel rows*height cols*width"]:
    """Arrange the images in `rows` rows, filled row by row from the first image (`rows` divides their number)."""
    raise NotImplementedError()


# %% [hint]
# Split the digit axis on the left of the arrow: `(row col) c h w`, and pass `row=rows`;
# einops works out `col` from the size.

# %% [hint]
# On the right, merge `row` with height and `col` with width. Since the grid is filled row by
# row, `row` is the slower-varying part of the digit index, so it comes first in `(row col)`.

# %% [markdown]
# ### reduce: the names you leave out are reduced
#
# `einops.reduce(x, pattern, op)` works like `rearrange`, except that axes named on the left but
# missing on the right are combined with `op`: `"mean"`, `"max"`, `"min"`, `"sum"` or `"prod"`.
# It computes what `x.mean(dim=...)` computes; the pattern just says which axes in words.

# %%
per_channel_mean = einops.reduce(images, "d c h w -> c", "mean")
assert torch.allclose(per_channel_mean, images.mean(dim=(0, 2, 3)))
per_channel_mean

# %% [markdown]
# Make each digit gray: average the three channels. The target below shows the six gray images
# side by side with a `rearrange`, since `imshow` draws a 2-D tensor as a grayscale picture.

# %%
imshow(
    einops.rearrange(reference.grayscale(images), "d h w -> h (d w)"),
    title="target: grayscale(images), side by side",
    height=200,
).show()


# %% [exercise] grayscale difficulty=1 importance=3 minutes=5
def grayscale(images: Float[Tensor, "digit channel height width"]) -> Float[Tensor, "digit height width"]:
    """Turn each RGB image into a grayscale one: the mean of its three channels."""
    raise NotImplementedError()


# %% [hint]
# Which axis disappears? Write the pattern with it left out of the right-hand side, and use `"mean"`.

# %% [markdown]
# Superimpose all six digits: each output value is the largest value any image has at that
# channel and pixel. Where strokes of different colours cross, their channels combine.

# %%
imshow(reference.overlay(images), title="target: overlay(images)", height=250).show()


# %% [exercise] overlay difficulty=1 importance=3 minutes=5
def overlay(images: Float[Tensor, "digit channel height width"]) -> Float[Tensor, "channel height width"]:
    """Superimpose all images: each output value is the largest value at that channel and pixel."""
    raise NotImplementedError()


# %% [hint]
# This time the digit axis disappears, and the operation is `"max"`.

# %% [markdown]
# Splitting and reducing together gives pooling. Split the height into `(h fh)` (an outer
# position `h` and an offset `fh` within a block of `factor` rows) and the width likewise,
# then reduce the offsets away. Two more pieces of notation: `...` stands for any number of
# leading axes that you want left alone, and a name may appear only once per side, so the two
# block sizes need different names even though both equal `factor`.

# %%
assert einops.reduce(torch.rand(2, 3, 4, 5), "... w -> ...", "sum").shape == (2, 3, 4)
assert einops.reduce(torch.rand(4, 5), "... w -> ...", "sum").shape == (4,)

# %% [markdown]
# The target shrinks the 2 x 3 grid of digits by a factor of 6; each output pixel is the mean of
# a 6 x 6 block, so the strokes blur.

# %%
mosaic = reference.grid(images, rows=2)
assert mosaic.shape == (3, 72, 84)
imshow(reference.pixelate(mosaic, 6), title="target: pixelate(mosaic, 6), 12 x 14 pixels", height=300).show()


# %% [exercise] pixelate difficulty=2 importance=3 minutes=10
def pixelate(
    image: Float[Tensor, "*batch height width"], factor: int
) -> Float[Tensor, "*batch height/factor width/factor"]:
    """Shrink the last two axes by `factor` (which divides both); each output pixel averages a factor x factor block."""
    raise NotImplementedError()


# %% [hint]
# `"... (h fh) (w fw) -> ... h w"` with `fh=factor, fw=factor`.

# %% [hint]
# `(fh h)` also runs without error, but then `fh` is the slow part: it averages rows that are
# `height / factor` apart instead of neighbouring rows.

# %% [markdown]
# ### repeat: names that appear only on the right are new axes
#
# `einops.repeat` copies along axes that the input does not have; give each new axis's size as
# a keyword or write the number in the pattern. For example, a grayscale image becomes a gray
# RGB image by copying it into three channels:

# %%
gray_rgb = einops.repeat(images[0, 0], "h w -> c h w", c=3)
assert gray_rgb.shape == (3, 36, 28) and torch.equal(gray_rgb[2], images[0, 0])
assert torch.equal(einops.repeat(torch.tensor([1, 2]), "a -> (a 3)"), torch.tensor([1, 1, 1, 2, 2, 2]))

# %% [markdown]
# Undo the shrinking: enlarge an image by copying each pixel into a `factor` x `factor` block.
# Zooming the blurred mosaic back by 6 gives it the familiar pixelated look.

# %%
imshow(
    reference.zoom(reference.pixelate(mosaic, 6), 6), title="target: zoom(pixelate(mosaic, 6), 6)", height=300
).show()


# %% [exercise] zoom difficulty=1 importance=3 minutes=5
def zoom(
    image: Float[Tensor, "*batch height width"], factor: int
) -> Float[Tensor, "*batch height*factor width*factor"]:
    """Enlarge the last two axes by `factor`: each pixel becomes a factor x factor block of copies."""
    raise NotImplementedError()


# %% [hint]
# The mirror image of `pixelate`: `"... h w -> ... (h fh) (w fw)"` with `einops.repeat`.

# %% [markdown]
# The order inside the brackets decides between two different pictures. With the copy index
# before the position, `(fh h)`, each copy of the whole image is laid out in turn: the image is
# tiled rather than zoomed. That is a common silent bug, since the shape is the same.

# %%
tiled = einops.repeat(images[5], "c h w -> c (fh h) (fw w)", fh=2, fw=3)
assert tiled.shape == (3, 2 * 36, 3 * 28)
assert torch.equal(tiled[:, 36:, 56:], images[5])  # the bottom-right tile is the whole digit
imshow(tiled, title="(fh h) (fw w): tiles, not zoom", height=250).show()

# %% [markdown]
# ## Part 2: broadcasting and indexing
#
# ### Broadcasting
#
# When an elementwise operation (`+`, `*`, `==`, `torch.where`, ...) gets tensors of different
# shapes, PyTorch lines the shapes up **from the right**. Each pair of sizes must be equal, or
# one of them 1, or missing (a missing axis counts as size 1). A size-1 axis is then stretched
# to match the other, without copying memory. So a tensor of shape `(3, 1, 1)` scales each
# channel of a batch of images of shape `(6, 3, 36, 28)`, while a tensor of shape `(3,)`
# is lined up against the *width* and fails:

# %%
channel_weights = torch.tensor([1.0, 0.5, 0.0])
assert (images * channel_weights[:, None, None]).shape == (6, 3, 36, 28)
try:
    images * channel_weights
    raise AssertionError("expected a broadcasting error")
except RuntimeError as error:
    print("RuntimeError:", error)

# %% [markdown]
# Indexing with `None` inserts a size-1 axis (as `unsqueeze` does). Putting the `None` in
# different places for two tensors builds every pair: `(m, 1)` against `(1, n)` gives `(m, n)`.
# A stretched axis has stride 0: it is the same memory read again.

# %%
a, b = torch.arange(3), torch.arange(4)
assert (a[:, None] * b[None, :]).shape == (3, 4)
assert (a[:, None] * b).shape == (3, 4)  # b's missing leading axis counts as 1
assert a[:, None].expand(3, 4).stride() == (1, 0)

# %% [markdown]
# Use that to compute the distance between every row of `x` and every row of `y` without a
# loop. This is the heart of nearest-neighbour search and of many similarity computations.


# %% [exercise] pairwise_distances difficulty=2 importance=5 minutes=10
def pairwise_distances(x: Float[Tensor, "m dim"], y: Float[Tensor, "n dim"]) -> Float[Tensor, "m n"]:
    """The Euclidean distance between every row of x and every row of y: out[i, j] = |x[i] - y[j]|."""
    raise NotImplementedError()


# %% [hint]
# Give `x` the shape `(m, 1, dim)` and `y` the shape `(1, n, dim)`; their difference is `(m, n, dim)`.

# %% [hint]
# Square, sum over the last axis, take the square root. (`torch.cdist` does the same, but write it yourself.)

# %% [markdown]
# Broadcasting also applies statistics. Normalise each colour channel to mean 0 and standard
# deviation 1 over all images and pixels, as is usually done to images before a network sees
# them. Here the standard deviation is the square root of the mean squared deviation (what
# `torch.std(..., correction=0)` computes; plain `torch.std` divides by n - 1 instead of n).
# Keep the statistics at shape `(1, channel, 1, 1)` so that they broadcast against the images.

# %%
two_values = torch.tensor([1.0, 3.0])  # mean 2, deviations -1 and +1
assert two_values.std(correction=0) == 1.0
assert torch.isclose(two_values.std(), torch.tensor(2.0).sqrt())  # divides 2 by n - 1 = 1


# %% [exercise] normalise_channels difficulty=2 importance=4 minutes=10
def normalise_channels(
    images: Float[Tensor, "digit channel height width"],
) -> Float[Tensor, "digit channel height width"]:
    """Give every channel mean 0 and standard deviation 1 (root mean squared deviation) over all images and pixels."""
    raise NotImplementedError()


# %% [hint]
# `einops.reduce(images, "d c h w -> 1 c 1 1", "mean")` keeps the size-1 axes for you; or use
# `images.mean(dim=(0, 2, 3), keepdim=True)`.

# %%
normalised = normalise_channels(images)
assert torch.allclose(normalised.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
assert torch.allclose(normalised.std(dim=(0, 2, 3), correction=0), torch.ones(3), atol=1e-5)

# %% [markdown]
# One more: the one-hot encoding of class labels, a row per label with a 1 in the label's
# column. Compare the labels, as a column, with the row `0, 1, ..., num_classes - 1`.
# Return float32, the dtype you would feed to a matrix product.


# %% [exercise] one_hot difficulty=1 importance=4 minutes=5
def one_hot(labels: Int[Tensor, "n"], num_classes: int) -> Float[Tensor, "n num_classes"]:
    """out[i, k] = 1.0 if labels[i] == k else 0.0, as float32."""
    raise NotImplementedError()


# %% [hint]
# `labels[:, None] == torch.arange(num_classes)` is an `(n, num_classes)` bool tensor; `.float()` converts it.

# %% [markdown]
# ### Indexing
#
# **Basic indexing** (integers, slices, `None`, `...`) returns a *view*: a new tensor object
# that shares the original's memory, so writing to it writes to the original.
#
# **Advanced indexing** with integer tensors picks entries and returns a copy. Several index
# tensors are broadcast together and paired entry by entry: `m[rows, cols]` is the tensor of
# `m[rows[k], cols[k]]`. Indexing one axis after another instead selects a whole block.
#
# **Boolean masks**: `x[mask]` returns the selected entries as a 1-D tensor, whose length depends
# on the data; `torch.where(mask, x, other)` keeps the shape and fills the rest with `other`.

# %%
m = torch.arange(12).reshape(3, 4)  # [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
copy = m.clone()
first_row = copy[0]
first_row[0] = 100
assert copy[0, 0] == 100  # the slice is a view: writing to it wrote to `copy`
picked = copy[torch.tensor([0, 1])]
picked[0, 1] = -5
assert copy[0, 1] == 1  # integer-tensor indexing made a copy: `copy` is unchanged
rows, cols = torch.tensor([0, 2]), torch.tensor([1, 3])
assert m[rows, cols].tolist() == [1, 11]  # pairs (0, 1) and (2, 3)
assert m[rows][:, cols].tolist() == [[1, 3], [9, 11]]  # rows 0 and 2, then columns 1 and 3
assert m[m % 5 == 0].tolist() == [0, 5, 10]
assert torch.where(m % 5 == 0, m, -1)[1].tolist() == [-1, 5, -1, -1]

# %% [markdown]
# A classifier outputs one logit per class for each example; the loss needs the logit of each
# example's *correct* class. Pick `logits[i, labels[i]]` for every `i` at once.


# %% [exercise] correct_class_logits difficulty=2 importance=5 minutes=10
def correct_class_logits(
    logits: Float[Tensor, "batch classes"], labels: Int[Tensor, "batch"]
) -> Float[Tensor, "batch"]:
    """For each example, the logit of its correct class: out[i] = logits[i, labels[i]]."""
    raise NotImplementedError()


# %% [hint]
# Pair each row index with its label: the row indices are `torch.arange(len(labels))`.

# %% [hint]
# `logits[:, labels]` is a common mistake: it picks every label's column for every row, shape `(batch, batch)`.
# `logits.gather(1, labels[:, None])[:, 0]` is the other correct way.

# %% [markdown]
# Language models take batches of sequences of different lengths, padded at the end to a common
# length. To read off what a model computed at each sequence's final real token, pick position
# `lengths[i] - 1` of sequence `i` from the residual stream (one vector per position).


# %% [exercise] last_token_vectors difficulty=2 importance=4 minutes=10
def last_token_vectors(
    resid: Float[Tensor, "batch seq d_model"], lengths: Int[Tensor, "batch"]
) -> Float[Tensor, "batch d_model"]:
    """The vector of each sequence's last real token (padding follows it): out[i] = resid[i, lengths[i] - 1]."""
    raise NotImplementedError()


# %% [hint]
# Two index tensors of length `batch` (for the batch and position axes) leave the last axis whole.

# %% [markdown]
# Finally a mask: average each row over only its real (True) entries, as you would average a
# loss over the real tokens of padded sequences. The padding entries can hold anything, `nan`
# included, and your function must not change its inputs (the check tests both).


# %% [exercise] masked_row_mean difficulty=2 importance=4 minutes=10
def masked_row_mean(x: Float[Tensor, "rows cols"], mask: Bool[Tensor, "rows cols"]) -> Float[Tensor, "rows"]:
    """The mean of each row of x over only the entries where mask is True (every row has at least one)."""
    raise NotImplementedError()


# %% [hint]
# Divide each row's masked sum by its number of True entries, `mask.sum(dim=-1)`, not by the row length.

# %% [hint]
# `x * mask` turns padding to 0 unless it is `nan` (`0 * nan` is `nan`); `torch.where(mask, x, 0.0)`
# does not have that problem. `x[~mask] = 0` would modify the caller's tensor.

# %%
assert torch.isnan(torch.tensor(float("nan")) * 0)

# %% [markdown]
# ## Part 3: einsum
#
# `einops.einsum(a, b, "i j, j k -> i k")` names the axes of each input (separated by commas) and
# of the output. It multiplies the entries whose shared names agree, and sums over every name
# that does not appear in the output: here `out[i, k] = sum over j of a[i, j] * b[j, k]`, the
# matrix product. A name repeated within one input walks along a diagonal. `torch.einsum` is the
# same function with one-letter names, no spaces, and the pattern first.

# %%
a, b = torch.randn(2, 3), torch.randn(3, 4)
assert torch.allclose(einops.einsum(a, b, "i j, j k -> i k"), a @ b, atol=1e-6)
assert torch.allclose(torch.einsum("ij,jk->ik", a, b), a @ b, atol=1e-6)
assert torch.allclose(einops.einsum(a, "i j -> j"), a.sum(dim=0))  # a sum, with one input
square = torch.arange(9.0).reshape(3, 3)
assert einops.einsum(square, "i i -> i").tolist() == [0.0, 4.0, 8.0]  # the diagonal

# %% [markdown]
# Write each of the following as a single `einops.einsum`. They are quick; the point is to be
# able to read and write these patterns without thinking, because later sections use them for
# attention and for probing activations.


# %% [exercise] einsum_trace difficulty=1 importance=3 minutes=3
def einsum_trace(mat: Float[Tensor, "n n"]) -> Float[Tensor, ""]:
    """The trace of a square matrix: the sum of its diagonal."""
    raise NotImplementedError()


# %% [hint]
# Use the same name for both axes of `mat`, and none in the output.


# %% [exercise] einsum_mv difficulty=1 importance=4 minutes=3
def einsum_mv(mat: Float[Tensor, "m n"], vec: Float[Tensor, "n"]) -> Float[Tensor, "m"]:
    """The matrix-vector product mat @ vec."""
    raise NotImplementedError()


# %% [hint]
# The vector shares its only axis with the matrix's second axis, which is summed over.


# %% [exercise] einsum_mm difficulty=1 importance=4 minutes=3
def einsum_mm(a: Float[Tensor, "m k"], b: Float[Tensor, "k n"]) -> Float[Tensor, "m n"]:
    """The matrix product a @ b."""
    raise NotImplementedError()


# %% [hint]
# It is the example above.


# %% [exercise] einsum_inner difficulty=1 importance=3 minutes=2
def einsum_inner(u: Float[Tensor, "n"], v: Float[Tensor, "n"]) -> Float[Tensor, ""]:
    """The inner (dot) product of two vectors."""
    raise NotImplementedError()


# %% [hint]
# One shared name, and an empty output after the arrow.


# %% [exercise] einsum_outer difficulty=1 importance=3 minutes=2
def einsum_outer(u: Float[Tensor, "m"], v: Float[Tensor, "n"]) -> Float[Tensor, "m n"]:
    """The outer product: out[i, j] = u[i] * v[j]."""
    raise NotImplementedError()


# %% [hint]
# Two different names, both kept: nothing is summed.


# %% [exercise] einsum_bmm difficulty=1 importance=5 minutes=5
def einsum_bmm(a: Float[Tensor, "batch m k"], b: Float[Tensor, "batch k n"]) -> Float[Tensor, "batch m n"]:
    """One matrix product per batch element: out[i] = a[i] @ b[i]."""
    raise NotImplementedError()


# %% [hint]
# A name that appears in both inputs *and* the output is neither summed nor paired with every
# other entry: it runs alongside, like the batch index here.

# %% [markdown]
# Names can be whole words, which is how later chapters write attention. The score of query
# position `q` for key position `k` in each head is the inner product of their vectors, summed
# over `d_head` and batched over `batch` and `head`:

# %%
queries, keys = torch.randn(2, 5, 4, 8), torch.randn(2, 5, 4, 8)  # batch, position, head, d_head
scores = einops.einsum(queries, keys, "batch q head d_head, batch k head d_head -> batch head q k")
assert scores.shape == (2, 4, 5, 5)
assert torch.allclose(scores, queries.transpose(1, 2) @ keys.permute(0, 2, 3, 1), atol=1e-5)

# %% [markdown]
# ## Summary
#
# - **einops** names every axis. `rearrange` reorders, merges `(a b)` and splits axes; `reduce`
#   combines the axes left out of the output; `repeat` adds axes that appear only in the output.
#   Inside parentheses the leftmost name varies slowest, and getting that order wrong (tiling
#   instead of zooming, interleaving instead of placing side by side) keeps the shape and breaks
#   the picture.
# - **Broadcasting** lines shapes up from the right; sizes must be equal or 1. Put `None` (or keep
#   size-1 axes, with `keepdim=True` or `"-> 1 c 1 1"`) to choose which axes pair up.
# - **Indexing**: slices give views; integer tensors give copies and are paired entry by entry,
#   so `x[torch.arange(n), idx]` picks one entry per row; boolean masks select (`x[mask]`, 1-D) or
#   fill (`torch.where`, same shape). Never change a caller's tensor in place.
# - **einsum**: names in the output are kept, names missing from it are summed over, names shared
#   by inputs and output run as a batch.
#
# Every later section of the course uses these three tools; come back to this notebook when a
# pattern in them looks unfamiliar.

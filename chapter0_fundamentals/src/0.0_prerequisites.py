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
# There are 28 exercises: 18 short warm-ups, then in each part a few longer ones (rated 3 or 4 of
# 5) where the tools meet an edge case: ties, empty groups, rows of zeros, padding. The estimates
# add up to 283 minutes, about four and three quarter hours: 113 for the warm-ups and 170 for the
# longer ones. Each part ends with a short "try it": predict, run, and compare.
#
# **Who can skip this.** If you can, without looking anything up, say what
# `einops.rearrange(x, "b c h (half w) -> (b half) c h w", half=2)` does to a batch of images,
# what shape `x[..., None] + y` has when `x` is `(3, 1)` and `y` is `(4,)`, and which entries
# `m[[0, 1], [1, 2]]` picks out of a matrix, then skip the warm-ups: do the exercises rated 3 or
# more (each part has some), skim the summary and move on to 0.1. The checks also work as a quiz.
#
# **How the exercises work.** Each exercise is a function whose body raises
# `NotImplementedError`. Replace the body, run the cell, then run the `check(...)` cell after
# it: it runs your function and the reference on the same inputs (some worked out by hand,
# some random, some chosen to catch a known mistake) and prints ✓, or the first difference it
# finds, the mistake it matches if it knows one, and a hint. Tensors must match in shape *and*
# dtype. Hints are folded under each exercise, the first one a nudge and the later ones more
# concrete; the solution is folded last.

# %%
import einops
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from course.plot import imshow
from solutions.chapter0_fundamentals.prerequisites import digit_images
from tests.checks.chapter0_fundamentals.prerequisites import check, target_pictures  # noqa: F401 (the build adds the check cells)

# %% [markdown]
# ## Part 1: einops
#
# The puzzles use six small pictures that the course draws itself: the digits 0 to 5 in
# coloured ink on black. `digit_images()` returns them as one tensor with axes
# `(digit, channel, height, width)`; the channels are red, green and blue, with values in [0, 1].
# `target_pictures()` holds what each puzzle should make of them, so you can see the goal
# before you write the code.

# %%
images = digit_images()
targets = target_pictures()
assert images.shape == (6, 3, 36, 28)
assert images.min() == 0.0 and images.max() <= 1.0
imshow(images[3], title="images[3]: the digit 3", height=250).show()

# %% [markdown]
# ### rearrange: name the axes, then say where they go
#
# `einops.rearrange(x, "d c h w -> d h w c")` reads as a sentence: it moves the channel axis to
# the end. Left of the arrow, one name per axis of the input (the names are only labels: `digit`
# would do as well as `d`). Right of the arrow, the axes of the output in the order you want
# them. Parentheses on the right merge axes into one; parentheses on the left split one axis
# into several, and you pass the size of all but one of the parts as a keyword argument.
#
# **Order inside parentheses matters.** The leftmost name in a group varies slowest, as the
# digits of a number do: in `(a b)`, all the `b` entries for the first `a` come first.

# %%
assert einops.rearrange(images, "d c h w -> d h w c").shape == (6, 36, 28, 3)
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
imshow(targets["side_by_side"], title="target: side_by_side(images)", height=200).show()


# %% [exercise] side_by_side difficulty=1 importance=4 minutes=5
def side_by_side(images: Float[Tensor, "digit channel height width"]) -> Float[Tensor, "channel height digit*width"]:
    """Lay the images out left to right in one wide image, the first image leftmost."""
    raise NotImplementedError()


# %% [hint]
# The output has three axes: channel, height, and one wide axis made of two input axes merged.
# Which two? And which of them must vary slowest, so that all the columns of the first image come
# before any column of the second?

# %% [hint]
# A smaller case: two images one pixel high and two wide, `[a0, a1]` and `[b0, b1]`. Side by
# side they read `a0 a1 b0 b1`: the image index changes slowest. Interleaved they would read
# `a0 b0 a1 b1`. Fill in the group: `einops.rearrange(images, "d c h w -> c h (? ?)")`.

# %% [markdown]
# Next, a grid: `rows` rows of images, filled row by row. With `rows=2` the digits 0, 1, 2 form
# the top row and 3, 4, 5 the bottom one. You will need to split the digit axis into two.

# %%
imshow(targets["grid"], title="target: grid(images, rows=2)", height=300).show()


# %% [exercise] grid difficulty=2 importance=4 minutes=10
def grid(
    images: Float[Tensor, "digit channel height width"], rows: int
) -> Float[Tensor, "channel rows*height cols*width"]:
    """Arrange the images in `rows` rows, filled row by row from the first image (`rows` divides their number)."""
    raise NotImplementedError()


# %% [hint]
# The digit axis has to split into two parts, a grid row and a grid column, and each part then
# merges with a spatial axis. Which spatial axis goes with which part? When the grid is filled
# row by row, which part of the digit index changes slowest?

# %% [hint]
# Split on the left of the arrow and give einops the size of one part as a keyword; it works
# out the other from the number of images. The skeleton is
# `einops.rearrange(images, "(row col) c h w -> c (? ?) (? ?)", row=rows)`: the grid row is the
# slow part of the digit index and also the slow part of the output's height.

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
    einops.rearrange(targets["grayscale"], "d h w -> h (d w)"),
    title="target: grayscale(images), side by side",
    height=200,
).show()


# %% [exercise] grayscale difficulty=1 importance=3 minutes=5
def grayscale(images: Float[Tensor, "digit channel height width"]) -> Float[Tensor, "digit height width"]:
    """Turn each image into a grayscale one: every pixel becomes the mean of its channels."""
    raise NotImplementedError()


# %% [hint]
# Compare the input's axes with the output's: which one disappears? In an `einops.reduce`
# pattern, that is the name you leave out on the right.

# %% [hint]
# `einops.reduce(images, "d c h w -> ...", "mean")`: fill in the right-hand side.

# %% [markdown]
# Superimpose all six digits: each output value is the largest value any image has at that
# channel and pixel. Where strokes of different colours cross, their channels combine.

# %%
overlaid = targets["overlay"]
imshow(overlaid, title="target: overlay(images)", height=250).show()
ink = images.amax(dim=1) > 0  # (digit, height, width): where each digit has ink
row, col = (ink.sum(dim=0) == 2).nonzero()[0]  # a pixel where exactly two strokes cross
first, second = images[ink[:, row, col], :, row, col]  # their two ink colours
assert torch.equal(overlaid[:, row, col], torch.maximum(first, second))
assert not torch.equal(overlaid[:, row, col], first) and not torch.equal(overlaid[:, row, col], second)


# %% [exercise] overlay difficulty=1 importance=3 minutes=5
def overlay(images: Float[Tensor, "digit channel height width"]) -> Float[Tensor, "channel height width"]:
    """Superimpose all images: each output value is the largest value at that channel and pixel."""
    raise NotImplementedError()


# %% [hint]
# Which axis of the annotation is missing from the output this time, and which reduction keeps
# the largest value? There may be more than six images, and values may be negative.

# %% [hint]
# The same call as in `grayscale`, with a different name left out and `"max"` as the operation.
# If you prefer a loop, start the running maximum from the first image, not from 0.

# %% [markdown]
# Splitting and reducing together gives pooling: split the height into two axes, the block a
# row belongs to and the row's offset within that block, split the width likewise, then reduce
# the offsets away. Two more pieces of notation: `...` stands for any number of leading axes
# that you want left alone, and a name may appear only once per side, so the two block sizes
# need different names even though both equal `factor`.

# %%
assert einops.reduce(torch.rand(2, 3, 4, 5), "... w -> ...", "sum").shape == (2, 3, 4)
assert einops.reduce(torch.rand(4, 5), "... w -> ...", "sum").shape == (4,)
try:
    einops.reduce(torch.rand(4, 6), "(h f) (w f) -> h w", "mean", f=2)
    raise AssertionError("expected einops to refuse a name used twice on one side")
except einops.EinopsError as error:
    print("EinopsError:", str(error).splitlines()[0])

# %% [markdown]
# The target shrinks the 2 x 3 grid of digits by a factor of 6; each output pixel is the mean of
# a 6 x 6 block, so the strokes blur: blocks that straddle an edge mix ink with black into
# in-between values that the sharp mosaic never had.

# %%
mosaic = targets["grid"]
assert mosaic.shape == (3, 72, 84)
blurred = targets["pixelate"]
assert blurred.shape == (3, 12, 14)
assert len(blurred.unique()) > 4 * len(mosaic.unique())  # block means take values the mosaic never had
imshow(blurred, title="target: pixelate(mosaic, 6), 12 x 14 pixels", height=300).show()


# %% [exercise] pixelate difficulty=2 importance=3 minutes=10
def pixelate(
    image: Float[Tensor, "*batch height width"], factor: int
) -> Float[Tensor, "*batch height/factor width/factor"]:
    """Shrink the last two axes by `factor` (which divides both); each output pixel averages a factor x factor block."""
    raise NotImplementedError()


# %% [hint]
# Think of a row's index as two numbers: the block it falls in, and its offset inside that
# block. Which of the two changes fastest as you walk down the image, and where does the
# fastest-changing name go inside einops brackets?

# %% [hint]
# The skeleton is `einops.reduce(image, "... (? ?) (? ?) -> ... h w", "mean", fh=factor, fw=factor)`.
# Putting the offset first also runs without error, but it averages rows that are
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
# Zooming the blurred mosaic back by 6 restores its size, with every pixel of the small image
# now a 6 x 6 block of one colour: the familiar pixelated look.

# %%
zoomed = targets["zoom"]
assert zoomed.shape == mosaic.shape
block_max = einops.reduce(zoomed, "c (h fh) (w fw) -> c h w", "max", fh=6, fw=6)
block_min = einops.reduce(zoomed, "c (h fh) (w fw) -> c h w", "min", fh=6, fw=6)
assert torch.equal(block_max, blurred) and torch.equal(block_min, blurred)  # each block is one colour
imshow(zoomed, title="target: zoom(pixelate(mosaic, 6), 6)", height=300).show()


# %% [exercise] zoom difficulty=1 importance=3 minutes=5
def zoom(
    image: Float[Tensor, "*batch height width"], factor: int
) -> Float[Tensor, "*batch height*factor width*factor"]:
    """Enlarge the last two axes by `factor`: each pixel becomes a factor x factor block of copies."""
    raise NotImplementedError()


# %% [hint]
# This is `pixelate` run backwards: the offset within a block is now an axis the input lacks,
# so it is named only on the output side. Which einops function creates axes? And inside the
# brackets, which part must vary slowest so that the copies sit next to their pixel?

# %% [hint]
# The skeleton is `einops.repeat(image, "... h w -> ... (? ?) (? ?)", fh=factor, fw=factor)`,
# with the pixel's position as the slow part of each group.

# %% [markdown]
# The order inside the brackets decides between two different pictures. With the copy index
# before the position, `(fh h)`, each copy of the whole image is laid out in turn: the image is
# tiled rather than zoomed. That is a common silent bug, since the shape is the same.

# %%
tiled = einops.repeat(images[5], "c h w -> c (fh h) (fw w)", fh=2, fw=3)
stretched = einops.repeat(images[5], "c h w -> c (h fh) (w fw)", fh=2, fw=3)
assert tiled.shape == stretched.shape == (3, 2 * 36, 3 * 28)  # the same shape...
assert not torch.equal(tiled, stretched)  # ...and a different picture
assert torch.equal(tiled[:, 36:, 56:], images[5])  # the bottom-right tile is the whole digit
imshow(tiled, title="(fh h) (fw w): tiles, not zoom", height=250).show()

# %% [markdown]
# ### A contact sheet: when one pattern is not enough
#
# `grid` packs the images edge to edge, so neighbouring digits touch. A contact sheet leaves a
# strip of `gap` black pixels between neighbouring images, across and down, but none around the
# outside: a sheet of 2 x 3 images of 36 x 28 with `gap=4` is 2 * 36 + 4 pixels high. No single
# einops pattern inserts the strips, so combine it with one more tool:
# `torch.nn.functional.pad(x, (left, right, top, bottom))` adds zeros around the last two axes.

# %%
padded = torch.nn.functional.pad(torch.ones(1, 2, 3), (1, 2, 0, 1))
assert padded.shape == (1, 3, 6) and padded.sum() == 6 and padded[0, 0].tolist() == [0, 1, 1, 1, 0, 0]
imshow(targets["contact_sheet"], title="target: contact_sheet(images, rows=2, gap=4)", height=300).show()
assert targets["contact_sheet"].shape == (3, 2 * 36 + 4, 3 * 28 + 2 * 4)


# %% [exercise] contact_sheet difficulty=3 importance=3 minutes=15
def contact_sheet(
    images: Float[Tensor, "digit channel height width"], rows: int, gap: int
) -> Float[Tensor, "channel sheet_height sheet_width"]:
    """The images in `rows` rows, filled row by row, with `gap` pixels of zeros between neighbouring images.

    No gap runs around the edge: the first image starts at the top-left corner, the last ends at the bottom-right.
    """
    raise NotImplementedError()


# %% [hint]
# Count strips: with three images across there are two gaps, not three. One way is to give
# every image the same margin on two of its sides, so that the `grid` pattern works unchanged,
# and then remove what is left over. Which two sides, and where does the leftover end up? Check
# that your answer still works with `gap=0`.

# %% [hint]
# Pad each image with `gap` zeros on its right and at its bottom, arrange the padded images as
# `grid` does, and then keep all but the last `gap` rows and columns of the sheet. Careful with
# slicing: `x[:-0]` is empty, so work out the end index from the sheet's size instead.

# %% [markdown]
# ### Try it: are pixelate and zoom inverses?
#
# Before you run the next cell, predict which of the two round trips gives back what it started
# with: zooming an image and then pixelating it, or pixelating the mosaic and then zooming it.
# Then set `factor` to 4, and to 3, and predict again (a clue: `digit_images` draws each pixel
# of a 5 x 7 glyph as a 4 x 4 block). The cell uses your `pixelate` and `zoom`.

# %%
factor = 6
small = torch.rand(3, 4, 5, generator=torch.Generator().manual_seed(0))
zoom_then_pixelate = pixelate(zoom(small, factor), factor)
pixelate_then_zoom = zoom(pixelate(mosaic, factor), factor)
print("zoom, then pixelate gives the image back:", torch.allclose(zoom_then_pixelate, small))
print("pixelate, then zoom gives the mosaic back:", torch.allclose(pixelate_then_zoom, mosaic))
assert torch.allclose(zoom_then_pixelate, small)  # averaging factor x factor copies of a pixel returns the pixel
# Averaging a block loses what varied in it, unless every block lies inside one 4 x 4 glyph pixel.
assert torch.allclose(pixelate_then_zoom, mosaic) == (4 % factor == 0)

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
# loop. This is the heart of nearest-neighbour search and of many similarity computations, where
# duplicates and near-duplicates occur: a row's distance to an equal row must come out as
# exactly 0, and to a nearly equal row as a small number, not as `nan` or rounding noise.


# %% [exercise] pairwise_distances difficulty=2 importance=5 minutes=10
def pairwise_distances(x: Float[Tensor, "m dim"], y: Float[Tensor, "n dim"]) -> Float[Tensor, "m n"]:
    """The Euclidean distance from every row of x (down the output) to every row of y (across it)."""
    raise NotImplementedError()


# %% [hint]
# Aim for one intermediate tensor of shape `(m, n, dim)` that holds the difference of every row
# of `x` with every row of `y`. Where must each input get a size-1 axis for that to broadcast?

# %% [hint]
# Index `x` with `None` in the middle and `y` with `None` in front, and subtract. Then square, sum
# over the last axis and take the square root. Don't expand the square into |x|² + |y|² - 2 x·y:
# the cell after the exercise shows what that does to nearly equal rows.

# %% [markdown]
# Why subtract first: expanding the square as |x|² + |y|² - 2 x·y adds and subtracts numbers in
# the thousands to get one near 0.00001, finer than float32's roughly seven significant digits can
# resolve. On rows that are nearly equal, every distance the expansion gives is off by more than
# half, or `nan`, while the difference taken first stays accurate (checked against float64):

# %%
gen = torch.Generator().manual_seed(0)
x = torch.randn(4, 8, generator=gen) * 10 + 30
y = x + 1e-3 * torch.randn(4, 8, generator=gen)  # each row of y is nearly its row of x
truth = (x.double() - y.double()).norm(dim=-1).float()
expanded = ((x**2).sum(-1) + (y**2).sum(-1) - 2 * (x * y).sum(-1)).sqrt()
assert (x**2).sum(-1).min() > 1000 and truth.max() ** 2 < 1e-4
assert torch.allclose(pairwise_distances(x, y).diagonal(), truth, rtol=1e-5, atol=0)
assert not torch.isclose(expanded, truth, rtol=0.5).any()
print("true distances:", truth, "\nexpanded:      ", expanded)

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
    """Give every channel mean 0 and standard deviation 1 (dividing by n) over all images and pixels."""
    raise NotImplementedError()


# %% [hint]
# Each channel gets one mean and one standard deviation, both taken over images, height and width
# together. What shape must they have to broadcast against `(digit, channel, height, width)`?
# And add no epsilon: the check includes a nearly constant channel, which must reach standard
# deviation 1 as well.

# %% [hint]
# `einops.reduce` with a `1` in the output for each reduced axis keeps the size-1 axes, as does
# `.mean(dim=..., keepdim=True)`. Centre the images first, then take the square root of the mean
# of the squared centred values. The mean of the squares minus the square of the mean is the same
# in exact arithmetic, but in float32 it loses precision when a channel is nearly constant.

# %%
normalised = normalise_channels(images)
assert torch.allclose(normalised.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
assert torch.allclose(normalised.std(dim=(0, 2, 3), correction=0), torch.ones(3), atol=1e-5)

# %% [markdown]
# One more: the one-hot encoding of class labels, a row per label with a 1 in the label's
# column. Compare the labels, as a column, with the row `0, 1, ..., num_classes - 1`.
# Return float32, the dtype you would feed to a matrix product.


# %% [exercise] one_hot difficulty=1 importance=4 minutes=5
def one_hot(labels: Int[Tensor, " n"], num_classes: int) -> Float[Tensor, "n num_classes"]:
    """A float32 row per label: 1.0 in the column of its class, 0.0 in every other column."""
    raise NotImplementedError()


# %% [hint]
# Broadcasting a comparison of a column (one entry per label) against a row (one entry per
# class) builds the whole table at once, as booleans. Then think about the dtype.

# %% [hint]
# The column is the labels with a size-1 axis after them; the row is `torch.arange` of the
# number of classes. The result of `==` is bool, so convert it to float32.

# %% [markdown]
# ### Harder broadcasting
#
# The next three exercises each need a few steps, and each has an edge case where the obvious
# version gives a plausible number that is wrong. Work out a small example by hand before you
# write code.
#
# **Boxes.** Object detectors describe a box by its corners `(x0, y0, x1, y1)`, with `x0 < x1`
# and `y0 < y1`, and compare two boxes by their *intersection over union* (IoU): the area they
# share divided by the area they cover together. It is 1 for a box with itself and 0 for boxes
# that do not meet; boxes that touch along an edge share no area. `torch.maximum` and
# `torch.minimum` take elementwise maxima and minima of two tensors, and broadcast like `+`.

# %%
assert torch.maximum(torch.tensor([[1, 5]]), torch.tensor([[3], [4]])).tolist() == [[3, 5], [4, 5]]


# %% [exercise] pairwise_iou difficulty=3 importance=3 minutes=15
def pairwise_iou(a: Float[Tensor, "m 4"], b: Float[Tensor, "n 4"]) -> Float[Tensor, "m n"]:
    """The intersection over union of every box of a (down the output) with every box of b (across it).

    A box is (x0, y0, x1, y1) with x0 < x1 and y0 < y1; boxes that only touch or do not meet score 0.
    """
    raise NotImplementedError()


# %% [hint]
# The intersection of two boxes is itself a box (possibly empty). Which of the two left edges is
# its left edge, and which right edge its right edge? Then picture two boxes far apart both
# left-right and up-down: what do your width and height of their "intersection" come out as, and
# what is their product?

# %% [hint]
# Build the intersection's corners at shape `(m, n, 2)` from `a[:, None, :2]` and `b[None, :, :2]`
# (and the same for the far corners), so that x and y are handled together. A negative width or
# height means no overlap: clamp each side at 0 before multiplying them. The union is the sum of
# the two areas minus the intersection.

# %% [markdown]
# **Nearest neighbours by direction.** Embeddings (of words, images, model activations) are
# usually compared by the cosine of the angle between them, which ignores their lengths. Find,
# for each row, the *other* row with the largest cosine similarity. Two details decide the edge
# cases: a row must never be its own neighbour, even when all its other similarities are
# negative, and a row of zeros has no direction, so give it similarity 0 to everything. When
# several rows tie, `argmax` returns the first, which is the rule the docstring asks for:

# %%
assert torch.tensor([0.0, 2.0, 2.0]).argmax() == 1
assert torch.tensor([float("-inf"), -3.0, -1.0]).argmax() == 2  # -inf is never chosen over a number


# %% [exercise] nearest_neighbours difficulty=3 importance=4 minutes=15
def nearest_neighbours(x: Float[Tensor, "n dim"]) -> Int[Tensor, " n"]:
    """For each row, the index of the other row most similar to it in direction (largest cosine similarity).

    A row is never its own neighbour, a row of zeros has similarity 0 to every row, and ties go to the lower index.
    """
    raise NotImplementedError()


# %% [hint]
# Three questions. How do you remove length from each row, so that an inner product becomes a
# cosine? What happens to a row of zeros when you do? And how do you take a row's own entry out
# of the running, so that it loses against every other row, including ones with similarity -0.9?

# %% [hint]
# Divide each row by its norm (kept at shape `(n, 1)`), clamped away from 0 so that a zero row
# stays zero; the matrix of all cosines is then one product. Setting the diagonal to 0 is not
# enough: 0 beats a negative similarity. Set it to `-inf` (`Tensor.fill_diagonal_` works on a
# fresh tensor in place), then take the `argmax` of each row.

# %% [markdown]
# **Ranks.** The rank of an entry within its row is its position in sorted order, counting from
# 0 for the smallest. Equal entries get the same rank, the lowest of the positions they occupy,
# so the ranks of `[3, 1, 3, 0, 5]` are `[2, 1, 2, 0, 4]` (sports tables rank ties this way).
# Broadcasting can compare every entry of a row with every other entry at once (an n x n table
# per row, fine for rows of moderate length).


# %% [exercise] rank_within_row difficulty=3 importance=2 minutes=15
def rank_within_row(x: Float[Tensor, "rows n"]) -> Int[Tensor, "rows n"]:
    """Each entry's rank within its row, 0 for the smallest.

    Equal entries share the lowest of their ranks: the entries 2, 5, 5, 7 rank 0, 1, 1, 3.
    """
    raise NotImplementedError()


# %% [hint]
# Sorting gives each entry a position, but equal entries then get different positions depending
# on where they stood. Is there a way to say what an entry's rank is without sorting at all, as a
# count of something in its row? Check it on `[3, 1, 3, 0, 5]`.

# %% [hint]
# The rank of an entry is the number of entries in its row that are strictly smaller than it. A
# table of shape `(rows, n, n)` whose entry `[r, i, j]` says whether entry j of row r is below
# entry i holds all those comparisons; sum it over the right axis. `argsort` of `argsort` gives
# ranks too, but it breaks ties by position.

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
# example's *correct* class. Pick `logits[i, labels[i]]` for every `i` at once. Some logits may
# be `-inf` (a class ruled out for that example, as top-k sampling does in chapter 1), and
# arithmetic with them goes wrong quickly:

# %%
assert torch.isnan(torch.tensor(float("-inf")) * 0)


# %% [exercise] correct_class_logits difficulty=2 importance=5 minutes=10
def correct_class_logits(
    logits: Float[Tensor, "batch classes"], labels: Int[Tensor, " batch"]
) -> Float[Tensor, " batch"]:
    """For each example, the logit of its correct class."""
    raise NotImplementedError()


# %% [hint]
# Integer index tensors on two axes are paired entry by entry. You already have one index per
# example for the class axis; which index tensor pairs with it on the batch axis?

# %% [hint]
# The row indices are 0, 1, ..., batch - 1 (`torch.arange`). Indexing the class axis alone with
# the labels is a common mistake: it picks every label's column for every row, shape
# `(batch, batch)`. Multiplying by a one-hot mask and summing fails on the `-inf` logits.
# `gather` along the class axis is another correct way.

# %% [markdown]
# Chapter 1 samples text from a language model by *top-k sampling*: keep each row's k largest
# logits, set the rest to `-inf` so that the softmax gives them probability 0, and sample. Write
# the filtering step. What should happen with ties is a decision, and here it is made for you:
# every logit equal to the k-th largest value stays, so a row can keep more than k. `topk`
# returns a row's k largest values (and their indices) in decreasing order:

# %%
values, indices = torch.tensor([[1.0, 3.0, 3.0, 2.0]]).topk(2, dim=-1)
assert values.tolist() == [[3.0, 3.0]] and sorted(indices[0].tolist()) == [1, 2]
assert torch.tensor([0.0, float("-inf")]).softmax(dim=0).tolist() == [1.0, 0.0]


# %% [exercise] keep_top_k difficulty=3 importance=4 minutes=15
def keep_top_k(logits: Float[Tensor, "batch vocab"], k: int) -> Float[Tensor, "batch vocab"]:
    """The logits with every entry below its row's k-th largest value replaced by -inf.

    Entries equal to the k-th largest value are all kept, so a row can keep more than k.
    """
    raise NotImplementedError()


# %% [hint]
# Don't start from which k indices `topk` returned: with ties, the k-th place is shared, and
# `topk` returns only some of the tied entries. What single number per row decides whether an
# entry stays? And what shape must it have to be compared with its row?

# %% [hint]
# The threshold is the last of each row's `topk` values, kept at shape `(batch, 1)`. Entries
# greater than or equal to it stay; `torch.where` puts `-inf` everywhere else.

# %% [markdown]
# Language models take batches of sequences of different lengths, padded at the end to a common
# length. To read off what a model computed at each sequence's final real token, pick position
# `lengths[i] - 1` of sequence `i` from the residual stream (one vector per position). What the
# padding positions hold is unspecified; the check fills them with `nan` once.


# %% [exercise] last_token_vectors difficulty=2 importance=4 minutes=10
def last_token_vectors(
    resid: Float[Tensor, "batch seq d_model"], lengths: Int[Tensor, " batch"]
) -> Float[Tensor, "batch d_model"]:
    """The vector at each sequence's last real token (sequence i has lengths[i] real tokens, then padding)."""
    raise NotImplementedError()


# %% [hint]
# This is the pairing of `correct_class_logits` again, with one index per sequence on the batch
# axis and one on the position axis, while the last axis stays whole. At which position is the
# last real token of a sequence of length 3?

# %% [hint]
# Positions count from 0. Select the vectors; don't multiply by a mask over positions and sum,
# since `nan` padding times 0 is still `nan`.

# %% [markdown]
# Finally a mask: average each row over only its real (True) entries, as you would average a
# loss over the real tokens of padded sequences. The padding entries can hold anything, `nan`
# and `inf` included, and your function must not change its inputs (the check tests both).


# %% [exercise] masked_row_mean difficulty=2 importance=4 minutes=10
def masked_row_mean(x: Float[Tensor, "rows cols"], mask: Bool[Tensor, "rows cols"]) -> Float[Tensor, " rows"]:
    """The mean of each row of x over only the entries where mask is True (every row has at least one)."""
    raise NotImplementedError()


# %% [hint]
# Two things to get right. The denominator is each row's number of real (True) entries, not the
# row length. And the padding must never enter a sum or a product: which operation chooses
# between two values without doing arithmetic on the one it drops?

# %% [hint]
# Multiplying by the mask zeroes the padding only where it is finite (`0 * nan` and `0 * inf` are
# both `nan`, as the cell below shows); `torch.where` chooses instead. Counting a row's True
# entries is a sum over a bool tensor. Assigning zeros into `x[~mask]` would change the caller's
# tensor.

# %%
assert torch.isnan(torch.tensor(float("nan")) * 0)
assert torch.isnan(torch.tensor(float("inf")) * 0)

# %% [markdown]
# ### Sums by group
#
# Sometimes the groups are not rows of a tensor but labels: row `i` of `values` belongs to group
# (segment) `segment_ids[i]`, the ids come in any order, and some segments have no rows at all.
# Averaging the token vectors of each word when a word spans several tokens is one example. A
# loop over segments works but runs Python once per segment; `Tensor.index_add_` adds every row
# into its segment's total in one call, and `torch.bincount` counts how often each id occurs:

# %%
totals = torch.zeros(3).index_add_(0, torch.tensor([2, 0, 2]), torch.tensor([1.0, 10.0, 100.0]))
assert totals.tolist() == [10.0, 0.0, 101.0]
assert torch.bincount(torch.tensor([2, 0, 2])).tolist() == [1, 0, 2]


# %% [exercise] segment_mean difficulty=3 importance=3 minutes=15
def segment_mean(
    values: Float[Tensor, "n dim"], segment_ids: Int[Tensor, " n"], num_segments: int
) -> Float[Tensor, "num_segments dim"]:
    """The mean of the rows of values in each segment; an empty segment gets zeros.

    Row i belongs to segment segment_ids[i].
    """
    raise NotImplementedError()


# %% [hint]
# A mean is a total divided by a count. What shape must the totals have before the first row is
# added, and what must it not depend on? What is the count of an empty segment, and what does
# dividing by it give? And what if the largest segments are the empty ones?

# %% [hint]
# Start from zeros of shape `(num_segments, dim)` and add the rows into them along axis 0. Count
# with `bincount`, passing `minlength` so that empty segments at the end are counted too, and
# raise counts of 0 to 1 (an empty segment's total is already 0). `scatter_` would overwrite
# rather than add.

# %% [markdown]
# ### Try it: ties in top-k
#
# `keep_top_k` keeps every logit equal to the k-th largest. Predict what your function does to a
# row whose logits are all equal, with `k=1`, and what probabilities the softmax then gives.
# Then imagine the version that keeps exactly the indices `topk` returned: which token could
# never be sampled, and why would nobody notice from the shape?

# %%
flat = keep_top_k(torch.zeros(1, 5), k=1)
print("kept:", flat, "\nprobabilities:", flat.softmax(dim=-1))
assert (flat == 0).all()  # all five tie with the largest value, so all five stay
assert torch.allclose(flat.softmax(dim=-1), torch.full((1, 5), 0.2))

# %% [markdown]
# ## Part 3: einsum
#
# `einops.einsum(a, b, "i j, i j -> i")` names the axes of each input (separated by commas) and
# of the output. It multiplies the entries whose shared names agree, and sums over every name
# that does not appear in the output: here `out[i] = sum over j of a[i, j] * b[i, j]`, the dot
# product of each row of `a` with the same row of `b`. A name repeated within one input walks
# along a diagonal. `torch.einsum` is the same function with one-letter names, no spaces, and
# the pattern first.

# %%
a, b = torch.randn(2, 3), torch.randn(2, 3)
row_dots = (a * b).sum(dim=1)
assert torch.allclose(einops.einsum(a, b, "i j, i j -> i"), row_dots, atol=1e-6)
assert torch.allclose(torch.einsum("ij,ij->i", a, b), row_dots, atol=1e-6)
assert torch.allclose(einops.einsum(a, "i j -> j"), a.sum(dim=0))  # a sum, with one input
square = torch.arange(9.0).reshape(3, 3)
assert einops.einsum(square, "i i -> i").tolist() == [0.0, 4.0, 8.0]  # the diagonal

# %% [markdown]
# Write each of the following as a single `einops.einsum`. They are quick; the point is to be
# able to read and write these patterns without thinking, because chapter 1 uses them for
# attention and for attributing a model's output to its parts.


# %% [exercise] einsum_trace difficulty=1 importance=3 minutes=3
def einsum_trace(mat: Float[Tensor, "n n"]) -> Float[Tensor, ""]:
    """The trace of a square matrix: the sum of its diagonal."""
    raise NotImplementedError()


# %% [hint]
# A name repeated within one input walks along the diagonal, and a name missing from the output
# is summed. How many names does the output need?


# %% [exercise] einsum_mv difficulty=1 importance=4 minutes=3
def einsum_mv(mat: Float[Tensor, "m n"], vec: Float[Tensor, " n"]) -> Float[Tensor, " m"]:
    """The product of the matrix and the vector."""
    raise NotImplementedError()


# %% [hint]
# Which axis of the matrix does the vector's only axis pair with? That shared name is summed, so
# it is missing from the output.


# %% [exercise] einsum_mm difficulty=1 importance=4 minutes=3
def einsum_mm(a: Float[Tensor, "m k"], b: Float[Tensor, "k n"]) -> Float[Tensor, "m n"]:
    """The matrix product of a and b, in that order."""
    raise NotImplementedError()


# %% [hint]
# Entry (i, k) of the product pairs row i of `a` with column k of `b`. Which name do the two
# inputs share, and is it in the output?


# %% [exercise] einsum_inner difficulty=1 importance=3 minutes=2
def einsum_inner(u: Float[Tensor, " n"], v: Float[Tensor, " n"]) -> Float[Tensor, ""]:
    """The inner (dot) product of two vectors."""
    raise NotImplementedError()


# %% [hint]
# One shared name, and an empty output after the arrow.


# %% [exercise] einsum_outer difficulty=1 importance=3 minutes=2
def einsum_outer(u: Float[Tensor, " m"], v: Float[Tensor, " n"]) -> Float[Tensor, "m n"]:
    """The outer product: a table of every entry of u (down) times every entry of v (across)."""
    raise NotImplementedError()


# %% [hint]
# Two different names, both kept: nothing is summed.


# %% [exercise] einsum_bmm difficulty=1 importance=5 minutes=5
def einsum_bmm(a: Float[Tensor, "batch m k"], b: Float[Tensor, "batch k n"]) -> Float[Tensor, "batch m n"]:
    """One matrix product per batch element: each matrix of a times the matrix of b at the same index."""
    raise NotImplementedError()


# %% [hint]
# A name that appears in both inputs *and* the output is neither summed nor paired with every
# other entry: it runs alongside, like the batch index here.

# %% [markdown]
# Names can be whole words, which keeps longer patterns such as attention readable. The score of query
# position `q` for key position `k` in each head is the inner product of their vectors, summed
# over `d_head` and batched over `batch` and `head`:

# %%
queries, keys = torch.randn(2, 5, 4, 8), torch.randn(2, 5, 4, 8)  # batch, position, head, d_head
scores = einops.einsum(queries, keys, "batch q head d_head, batch k head d_head -> batch head q k")
assert scores.shape == (2, 4, 5, 5)
assert torch.allclose(scores, queries.transpose(1, 2) @ keys.permute(0, 2, 3, 1), atol=1e-5)

# %% [markdown]
# ### Patterns from later chapters
#
# **An attention pattern.** In a language model, each query position turns its scores into
# weights with a softmax over the keys, after dividing them by the square root of `d_head` (for
# queries and keys with entries of order 1, this stops the scores' spread growing with
# `d_head`). Two masks decide which keys a query may use: the *causal* mask allows only its own
# position and earlier ones, and `key_is_real` rules out padding. With left padding, the first
# queries of a short sequence have no allowed key at all. Their softmax would be over nothing;
# the docstring asks for a row of zeros there, and that row must not be `nan`. `masked_fill`
# writes a value where a mask is True:

# %%
assert torch.tensor([float("-inf"), float("-inf")]).softmax(dim=0).isnan().all()
assert torch.tensor([1.0, 2.0]).masked_fill(torch.tensor([True, False]), 0.0).tolist() == [0.0, 2.0]


# %% [exercise] attention_pattern difficulty=4 importance=5 minutes=20
def attention_pattern(
    q: Float[Tensor, "batch pos head d_head"],
    k: Float[Tensor, "batch pos head d_head"],
    key_is_real: Bool[Tensor, "batch pos"],
) -> Float[Tensor, "batch head q_pos k_pos"]:
    """Each query's attention weights over the keys: the softmax of query-key inner products scaled by 1/sqrt(d_head).

    A query attends only to real keys at its own or earlier positions; a query with no such key gets a row of zeros.
    """
    raise NotImplementedError()


# %% [hint]
# Build one boolean tensor that says, for every batch element, query and key, whether that query
# may use that key; what shape must it have to broadcast against the scores? Then think through
# the row of a query with no allowed key: what does each way of masking give there, -inf, a
# large negative number, or multiplying afterwards?

# %% [hint]
# Scores: the einsum above, divided by the square root of `d_head`. The causal part compares key
# positions with query positions (`torch.arange`, one with a `None`); the padding part is
# `key_is_real` with size-1 axes for head and query. Fill the disallowed scores with `-inf`, take
# the softmax over the keys, and then choose 0 wherever a key is disallowed, which also replaces
# the `nan` rows.

# %% [markdown]
# **Convolution as sliding windows and an einsum.** A 1-D convolution slides a kernel of `width`
# taps along a signal, `stride` positions at a time, and at each stop sums kernel times input
# over the window and over the input channels. PyTorch's `conv1d` does not flip the kernel (in
# signal processing this is called cross-correlation). The windows need not be copied: a view
# with a second axis that steps one position at a time reads each entry several times, as the
# stride-0 axis did in Part 2. `torch.as_strided` builds such a view from sizes and strides, and
# `Tensor.unfold(axis, size, step)` builds the common case. Use PyTorch's own `conv1d` and
# `conv2d` only to test your answers: the point is to build them.

# %%
signal = torch.arange(6.0)
windows = signal.as_strided(size=(4, 3), stride=(1, 1))  # 4 windows of 3; both axes step 1 entry
assert windows.tolist() == [[0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5]]
assert torch.equal(signal.unfold(0, 3, 2), torch.tensor([[0.0, 1.0, 2.0], [2.0, 3.0, 4.0]]))  # step 2
assert windows.data_ptr() == signal.data_ptr()  # a view: no entry was copied


# %% [exercise] conv1d difficulty=3 importance=4 minutes=20
def conv1d(
    x: Float[Tensor, "batch in_channels length"], weight: Float[Tensor, "out_channels in_channels width"], stride: int
) -> Float[Tensor, "batch out_channels out_length"]:
    """What torch.nn.functional.conv1d(x, weight, stride=stride) returns (no padding, no bias)."""
    raise NotImplementedError()


# %% [hint]
# Work out the output length first: how many windows of `width` fit in `length` when each starts
# `stride` after the last? Then write the computation for one output entry as a sum of products,
# and name every axis in it: which names are summed, and which survive into the output?

# %% [hint]
# Make the windows a view of shape `(batch, in_channels, out_length, width)` (one `unfold` on the
# last axis), then one `einops.einsum` with the weight sums over input channels and the window.
# Check your result against `torch.nn.functional.conv1d` on a small input.

# %% [markdown]
# **In two dimensions, with `as_strided`.** Images need windows along height and width at once:
# a view with axes `(batch, channel, out_height, out_width, kernel_height, kernel_width)`. Build
# it with `as_strided`, which is where you learn what a view is. A tensor is a block of memory
# (its *storage*) plus, for each axis, a *stride*: how many entries to step in storage to move
# one place along that axis. A transposed or sliced tensor shares its storage with the original,
# so its strides are not those of a fresh tensor of its shape, and a slice can start partway
# into the storage (`storage_offset`). `x.stride()` says how x's entries really lie;
# `x.as_strided(size, stride)` takes strides measured in the same storage, starting where x
# starts.

# %%
fresh = torch.arange(12.0).reshape(3, 4)
assert fresh.stride() == (4, 1) and fresh.T.stride() == (1, 4)  # the transpose swaps the steps
assert fresh[1:].storage_offset() == 4  # the slice starts at storage entry 4
assert torch.equal(fresh.T.as_strided((2, 2), (1, 4)), fresh.T[:2, :2])  # strides of the storage, not of a copy
assert fresh[1:].as_strided((2,), (1,)).tolist() == [4.0, 5.0]  # it starts where the slice starts


# %% [exercise] conv2d difficulty=4 importance=3 minutes=25
def conv2d(
    x: Float[Tensor, "batch in_channels height width"],
    weight: Float[Tensor, "out_channels in_channels kernel_height kernel_width"],
    stride: int,
) -> Float[Tensor, "batch out_channels out_height out_width"]:
    """What torch.nn.functional.conv2d(x, weight, stride=stride) returns (no padding, no bias)."""
    raise NotImplementedError()


# %% [hint]
# Describe the window view in words first: moving one output position to the right moves the
# window how many columns of x? Moving one place within the window? Then say each of those as a
# number of steps in storage, using x's own strides rather than those of a fresh tensor.

# %% [hint]
# With `s_b, s_c, s_h, s_w = x.stride()`, the view has size
# `(b, c, out_height, out_width, kernel_height, kernel_width)` and strides
# `(s_b, s_c, s_h * stride, s_w * stride, s_h, s_w)`. The output sizes are the ones from
# `conv1d`, once per spatial axis. Then one einsum sums over the input channels and both kernel
# axes.

# %% [markdown]
# **Attributing a logit to its parts.** Chapter 1 splits a transformer's final residual stream
# into the vectors its components (embeddings, heads, MLPs) add to it. The logit of a token is
# the inner product of the residual with that token's column of the unembedding `W_U`, so it
# splits the same way. For each example, how much does each component add to the logit of *that
# example's* correct token? The parts add up: summed over the components they give the logit.


# %% [exercise] logit_attribution difficulty=3 importance=4 minutes=15
def logit_attribution(
    components: Float[Tensor, "batch component d_model"],
    W_U: Float[Tensor, "d_model vocab"],
    tokens: Int[Tensor, " batch"],
) -> Float[Tensor, "batch component"]:
    """How much each component of each example adds to the logit of that example's correct token."""
    raise NotImplementedError()


# %% [hint]
# Each example needs only one column of `W_U`, a different one per example. Pick those columns
# first: what shape do they have, and which axis of the result pairs with which axis of
# `components`? Avoid computing all `vocab` logits per component only to throw most away.

# %% [hint]
# `W_U[:, tokens]` has shape `(d_model, batch)`: example b's column is its column b. In the
# einsum, give that batch axis the same name as the batch axis of `components`, so that each
# example meets only its own column, and sum over `d_model`.

# %%
gen = torch.Generator().manual_seed(0)
parts, W_U, tokens = torch.randn(3, 4, 6, generator=gen), torch.randn(6, 10, generator=gen), torch.tensor([7, 0, 7])
logits = parts.sum(dim=1) @ W_U  # the logits of the whole residual stream
assert torch.allclose(logit_attribution(parts, W_U, tokens).sum(dim=1), logits[torch.arange(3), tokens], atol=1e-5)

# %% [markdown]
# ### Try it: the scale in attention
#
# Predict what happens to the attention pattern when every query is multiplied by 4 (or,
# equivalently, the 1/sqrt(d_head) scale is left out with d_head = 16). Does each query spread
# its weight more evenly or focus it on fewer keys? What happens to the rows of zeros? Run the
# cell (it uses your `attention_pattern`), then predict and try factors of 1 and 0.

# %%
gen = torch.Generator().manual_seed(1)
q, k = torch.randn(2, 6, 4, 16, generator=gen), torch.randn(2, 6, 4, 16, generator=gen)
key_is_real = torch.tensor([[False, True, True, True, True, True], [True] * 6])
factor = 4.0
before, after = attention_pattern(q, k, key_is_real), attention_pattern(factor * q, k, key_is_real)
has_key = before.sum(dim=-1) > 0  # rows of queries with at least one allowed key
print(
    "mean largest weight per row:",
    before.amax(dim=-1)[has_key].mean().item(),
    "->",
    after.amax(dim=-1)[has_key].mean().item(),
)
sharper = after.amax(dim=-1)[has_key].mean() > before.amax(dim=-1)[has_key].mean()
assert sharper == (factor > 1)  # larger scores make a sharper softmax, smaller ones a flatter one
assert torch.equal(after[~has_key], before[~has_key])  # the rows with no key stay all zeros

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
#   by inputs and output run as a batch. With masks (`torch.where`, `masked_fill`) and views
#   (`unfold`, `as_strided`) it gives attention patterns and convolutions in a few lines.
# - **Edge cases decide**: ties (top-k, ranks, argmax), empty groups, rows of zeros, boxes that do
#   not meet and queries with nothing to attend to are where a plausible version goes wrong.
#
# Most later sections lean on these tools (0.1's rays, 0.2's convolutions and chapter 1's
# transformers all do); come back to this notebook when a pattern in them looks unfamiliar.

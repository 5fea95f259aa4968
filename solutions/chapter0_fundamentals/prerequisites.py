"""Reference solutions for 0.0 Prerequisites: einops, broadcasting and indexing, einsum.

Each exercise function is shown verbatim as the solution in the notebooks, so it relies only on
the names the notebook imports (einops, torch, Tensor and the jaxtyping annotations).
"""

import einops
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

# 5x7 bitmaps of the digits 0-5; "#" is ink.
_GLYPHS = {
    0: [".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."],
    1: ["..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."],
    2: [".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"],
    3: ["####.", "....#", "....#", ".###.", "....#", "....#", "####."],
    4: ["...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."],
    5: ["#####", "#....", "####.", "....#", "....#", "#...#", ".###."],
}
# One RGB ink colour per digit: red, orange, yellow, green, blue, purple.
_COLOURS = torch.tensor(
    [[0.9, 0.2, 0.2], [0.9, 0.6, 0.1], [0.8, 0.8, 0.1], [0.2, 0.7, 0.3], [0.2, 0.4, 0.9], [0.6, 0.3, 0.8]]
)


def digit_images(scale: int = 4) -> Float[Tensor, "digit=6 channel=3 height width"]:
    """Six RGB images of the digits 0-5 in coloured ink on black, values in [0, 1].

    Each 5x7 glyph gets a one-glyph-pixel black border (7x9) and is upscaled `scale` times, so the
    default images are 36 pixels high and 28 wide.
    """
    bitmaps = torch.tensor([[[c == "#" for c in row] for row in _GLYPHS[d]] for d in range(6)], dtype=torch.float32)
    bitmaps = torch.nn.functional.pad(bitmaps, (1, 1, 1, 1))
    big = einops.repeat(bitmaps, "d h w -> d (h sh) (w sw)", sh=scale, sw=scale)
    return einops.einsum(big, _COLOURS, "d h w, d c -> d c h w")


# ----------------------------------------------------------------------------- einops on images


def side_by_side(images: Float[Tensor, "digit channel height width"]) -> Float[Tensor, "channel height digit*width"]:
    """Lay the images out left to right in one wide image, the first image leftmost."""
    return einops.rearrange(images, "d c h w -> c h (d w)")


def grid(
    images: Float[Tensor, "digit channel height width"], rows: int
) -> Float[Tensor, "channel rows*height cols*width"]:
    """Arrange the images in `rows` rows, filled row by row from the first image (`rows` divides their number)."""
    return einops.rearrange(images, "(row col) c h w -> c (row h) (col w)", row=rows)


def grayscale(images: Float[Tensor, "digit channel height width"]) -> Float[Tensor, "digit height width"]:
    """Turn each RGB image into a grayscale one: the mean of its three channels."""
    return einops.reduce(images, "d c h w -> d h w", "mean")


def overlay(images: Float[Tensor, "digit channel height width"]) -> Float[Tensor, "channel height width"]:
    """Superimpose all images: each output value is the largest value at that channel and pixel."""
    return einops.reduce(images, "d c h w -> c h w", "max")


def pixelate(
    image: Float[Tensor, "*batch height width"], factor: int
) -> Float[Tensor, "*batch height/factor width/factor"]:
    """Shrink the last two axes by `factor` (which divides both); each output pixel averages a factor x factor block."""
    return einops.reduce(image, "... (h fh) (w fw) -> ... h w", "mean", fh=factor, fw=factor)


def zoom(
    image: Float[Tensor, "*batch height width"], factor: int
) -> Float[Tensor, "*batch height*factor width*factor"]:
    """Enlarge the last two axes by `factor`: each pixel becomes a factor x factor block of copies."""
    return einops.repeat(image, "... h w -> ... (h fh) (w fw)", fh=factor, fw=factor)


# ----------------------------------------------------------------------------- broadcasting and indexing


def pairwise_distances(x: Float[Tensor, "m dim"], y: Float[Tensor, "n dim"]) -> Float[Tensor, "m n"]:
    """The Euclidean distance between every row of x and every row of y: out[i, j] = |x[i] - y[j]|."""
    differences = x[:, None, :] - y[None, :, :]
    return differences.pow(2).sum(dim=-1).sqrt()


def normalise_channels(
    images: Float[Tensor, "digit channel height width"],
) -> Float[Tensor, "digit channel height width"]:
    """Give every channel mean 0 and standard deviation 1 (root mean squared deviation) over all images and pixels."""
    mean = einops.reduce(images, "d c h w -> 1 c 1 1", "mean")
    centred = images - mean
    std = einops.reduce(centred**2, "d c h w -> 1 c 1 1", "mean").sqrt()
    return centred / std


def one_hot(labels: Int[Tensor, "n"], num_classes: int) -> Float[Tensor, "n num_classes"]:
    """out[i, k] = 1.0 if labels[i] == k else 0.0, as float32."""
    return (labels[:, None] == torch.arange(num_classes, device=labels.device)).float()


def correct_class_logits(
    logits: Float[Tensor, "batch classes"], labels: Int[Tensor, "batch"]
) -> Float[Tensor, "batch"]:
    """For each example, the logit of its correct class: out[i] = logits[i, labels[i]]."""
    return logits[torch.arange(len(labels), device=logits.device), labels]


def last_token_vectors(
    resid: Float[Tensor, "batch seq d_model"], lengths: Int[Tensor, "batch"]
) -> Float[Tensor, "batch d_model"]:
    """The vector of each sequence's last real token (padding follows it): out[i] = resid[i, lengths[i] - 1]."""
    return resid[torch.arange(len(lengths), device=resid.device), lengths - 1]


def masked_row_mean(x: Float[Tensor, "rows cols"], mask: Bool[Tensor, "rows cols"]) -> Float[Tensor, "rows"]:
    """The mean of each row of x over only the entries where mask is True (every row has at least one)."""
    return torch.where(mask, x, 0.0).sum(dim=-1) / mask.sum(dim=-1)


# ----------------------------------------------------------------------------- einsum


def einsum_trace(mat: Float[Tensor, "n n"]) -> Float[Tensor, ""]:
    """The trace of a square matrix: the sum of its diagonal."""
    return einops.einsum(mat, "i i ->")


def einsum_mv(mat: Float[Tensor, "m n"], vec: Float[Tensor, "n"]) -> Float[Tensor, "m"]:
    """The matrix-vector product mat @ vec."""
    return einops.einsum(mat, vec, "i j, j -> i")


def einsum_mm(a: Float[Tensor, "m k"], b: Float[Tensor, "k n"]) -> Float[Tensor, "m n"]:
    """The matrix product a @ b."""
    return einops.einsum(a, b, "i j, j k -> i k")


def einsum_inner(u: Float[Tensor, "n"], v: Float[Tensor, "n"]) -> Float[Tensor, ""]:
    """The inner (dot) product of two vectors."""
    return einops.einsum(u, v, "i, i ->")


def einsum_outer(u: Float[Tensor, "m"], v: Float[Tensor, "n"]) -> Float[Tensor, "m n"]:
    """The outer product: out[i, j] = u[i] * v[j]."""
    return einops.einsum(u, v, "i, j -> i j")


def einsum_bmm(a: Float[Tensor, "batch m k"], b: Float[Tensor, "batch k n"]) -> Float[Tensor, "batch m n"]:
    """One matrix product per batch element: out[i] = a[i] @ b[i]."""
    return einops.einsum(a, b, "batch i j, batch j k -> batch i k")

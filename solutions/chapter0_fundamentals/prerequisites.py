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
    """Turn each image into a grayscale one: every pixel becomes the mean of its channels."""
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


def contact_sheet(
    images: Float[Tensor, "digit channel height width"], rows: int, gap: int
) -> Float[Tensor, "channel sheet_height sheet_width"]:
    """The images in `rows` rows, filled row by row, with `gap` pixels of zeros between neighbouring images.

    No gap runs around the edge: the first image starts at the top-left corner, the last ends at the bottom-right.
    """
    # Give every image a margin below and to its right, lay them out, then trim the outermost margins.
    padded = torch.nn.functional.pad(images, (0, gap, 0, gap))
    sheet = einops.rearrange(padded, "(row col) c h w -> c (row h) (col w)", row=rows)
    return sheet[:, : sheet.shape[1] - gap, : sheet.shape[2] - gap]


# ----------------------------------------------------------------------------- broadcasting and indexing


def pairwise_distances(x: Float[Tensor, "m dim"], y: Float[Tensor, "n dim"]) -> Float[Tensor, "m n"]:
    """The Euclidean distance from every row of x (down the output) to every row of y (across it)."""
    differences = x[:, None, :] - y[None, :, :]
    return differences.pow(2).sum(dim=-1).sqrt()


def normalise_channels(
    images: Float[Tensor, "digit channel height width"],
) -> Float[Tensor, "digit channel height width"]:
    """Give every channel mean 0 and standard deviation 1 (dividing by n) over all images and pixels."""
    mean = einops.reduce(images, "d c h w -> 1 c 1 1", "mean")
    centred = images - mean
    std = einops.reduce(centred**2, "d c h w -> 1 c 1 1", "mean").sqrt()
    return centred / std


def one_hot(labels: Int[Tensor, " n"], num_classes: int) -> Float[Tensor, "n num_classes"]:
    """A float32 row per label: 1.0 in the column of its class, 0.0 in every other column."""
    return (labels[:, None] == torch.arange(num_classes, device=labels.device)).float()


def correct_class_logits(
    logits: Float[Tensor, "batch classes"], labels: Int[Tensor, " batch"]
) -> Float[Tensor, " batch"]:
    """For each example, the logit of its correct class."""
    return logits[torch.arange(len(labels), device=logits.device), labels]


def last_token_vectors(
    resid: Float[Tensor, "batch seq d_model"], lengths: Int[Tensor, " batch"]
) -> Float[Tensor, "batch d_model"]:
    """The vector at each sequence's last real token (sequence i has lengths[i] real tokens, then padding)."""
    return resid[torch.arange(len(lengths), device=resid.device), lengths - 1]


def masked_row_mean(x: Float[Tensor, "rows cols"], mask: Bool[Tensor, "rows cols"]) -> Float[Tensor, " rows"]:
    """The mean of each row of x over only the entries where mask is True (every row has at least one)."""
    return torch.where(mask, x, 0.0).sum(dim=-1) / mask.sum(dim=-1)


def pairwise_iou(a: Float[Tensor, "m 4"], b: Float[Tensor, "n 4"]) -> Float[Tensor, "m n"]:
    """The intersection over union of every box of a (down the output) with every box of b (across it).

    A box is (x0, y0, x1, y1) with x0 < x1 and y0 < y1; boxes that only touch or do not meet score 0.
    """
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    # Clamp each side before multiplying: two negative sides (boxes apart in x and in y) would give a positive area.
    overlap = (bottom_right - top_left).clamp(min=0).prod(dim=-1)
    area_a = (a[:, 2:] - a[:, :2]).prod(dim=-1)
    area_b = (b[:, 2:] - b[:, :2]).prod(dim=-1)
    return overlap / (area_a[:, None] + area_b[None, :] - overlap)


def nearest_neighbours(x: Float[Tensor, "n dim"]) -> Int[Tensor, " n"]:
    """For each row, the index of the other row most similar to it in direction (largest cosine similarity).

    A row is never its own neighbour, a row of zeros has similarity 0 to every row, and ties go to the lower index.
    """
    unit = x / x.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    similarity = unit @ unit.T
    similarity.fill_diagonal_(float("-inf"))
    return similarity.argmax(dim=-1)


def rank_within_row(x: Float[Tensor, "rows n"]) -> Int[Tensor, "rows n"]:
    """Each entry's rank within its row, 0 for the smallest.

    Equal entries share the lowest of their ranks: the entries 2, 5, 5, 7 rank 0, 1, 1, 3.
    """
    # Entry [r, i] counts the entries of row r strictly below x[r, i]: equal entries get equal counts.
    return (x[:, None, :] < x[:, :, None]).sum(dim=-1)


def keep_top_k(logits: Float[Tensor, "batch vocab"], k: int) -> Float[Tensor, "batch vocab"]:
    """The logits with every entry below its row's k-th largest value replaced by -inf.

    Entries equal to the k-th largest value are all kept, so a row can keep more than k.
    """
    threshold = logits.topk(k, dim=-1).values[:, -1:]
    return torch.where(logits >= threshold, logits, float("-inf"))


def segment_mean(
    values: Float[Tensor, "n dim"], segment_ids: Int[Tensor, " n"], num_segments: int
) -> Float[Tensor, "num_segments dim"]:
    """The mean of the rows of values in each segment; an empty segment gets zeros.

    Row i belongs to segment segment_ids[i].
    """
    totals = values.new_zeros(num_segments, values.shape[1]).index_add_(0, segment_ids, values)
    counts = torch.bincount(segment_ids, minlength=num_segments).clamp(min=1)
    return totals / counts[:, None].to(values.dtype)


# ----------------------------------------------------------------------------- einsum


def einsum_trace(mat: Float[Tensor, "n n"]) -> Float[Tensor, ""]:
    """The trace of a square matrix: the sum of its diagonal."""
    return einops.einsum(mat, "i i ->")


def einsum_mv(mat: Float[Tensor, "m n"], vec: Float[Tensor, " n"]) -> Float[Tensor, " m"]:
    """The product of the matrix and the vector."""
    return einops.einsum(mat, vec, "i j, j -> i")


def einsum_mm(a: Float[Tensor, "m k"], b: Float[Tensor, "k n"]) -> Float[Tensor, "m n"]:
    """The matrix product of a and b, in that order."""
    return einops.einsum(a, b, "i j, j k -> i k")


def einsum_inner(u: Float[Tensor, " n"], v: Float[Tensor, " n"]) -> Float[Tensor, ""]:
    """The inner (dot) product of two vectors."""
    return einops.einsum(u, v, "i, i ->")


def einsum_outer(u: Float[Tensor, " m"], v: Float[Tensor, " n"]) -> Float[Tensor, "m n"]:
    """The outer product: a table of every entry of u (down) times every entry of v (across)."""
    return einops.einsum(u, v, "i, j -> i j")


def einsum_bmm(a: Float[Tensor, "batch m k"], b: Float[Tensor, "batch k n"]) -> Float[Tensor, "batch m n"]:
    """One matrix product per batch element: each matrix of a times the matrix of b at the same index."""
    return einops.einsum(a, b, "batch i j, batch j k -> batch i k")


def attention_pattern(
    q: Float[Tensor, "batch pos head d_head"],
    k: Float[Tensor, "batch pos head d_head"],
    key_is_real: Bool[Tensor, "batch pos"],
) -> Float[Tensor, "batch head q_pos k_pos"]:
    """Each query's attention weights over the keys: the softmax of query-key inner products scaled by 1/sqrt(d_head).

    A query attends only to real keys at its own or earlier positions; a query with no such key gets a row of zeros.
    """
    scores = einops.einsum(q, k, "b q h d, b k h d -> b h q k") / q.shape[-1] ** 0.5
    positions = torch.arange(q.shape[1], device=q.device)
    allowed = (positions[None, :] <= positions[:, None]) & key_is_real[:, None, None, :]
    pattern = scores.masked_fill(~allowed, float("-inf")).softmax(dim=-1)
    # A row with no allowed key is softmax over all -inf, which is nan; choosing (not multiplying) removes it.
    return torch.where(allowed, pattern, 0.0)


def conv1d(
    x: Float[Tensor, "batch in_channels length"], weight: Float[Tensor, "out_channels in_channels width"], stride: int
) -> Float[Tensor, "batch out_channels out_length"]:
    """What torch.nn.functional.conv1d(x, weight, stride=stride) returns (no padding, no bias)."""
    windows = x.unfold(-1, weight.shape[-1], stride)  # a view: (batch, in_channels, out_length, width)
    return einops.einsum(windows, weight, "b i l w, o i w -> b o l")


def conv2d(
    x: Float[Tensor, "batch in_channels height width"],
    weight: Float[Tensor, "out_channels in_channels kernel_height kernel_width"],
    stride: int,
) -> Float[Tensor, "batch out_channels out_height out_width"]:
    """What torch.nn.functional.conv2d(x, weight, stride=stride) returns (no padding, no bias)."""
    b, c, h, w = x.shape
    kh, kw = weight.shape[-2:]
    s_b, s_c, s_h, s_w = x.stride()  # x's own strides: it need not be contiguous
    # A window steps `stride` rows or columns per output position, and one row or column inside itself.
    windows = x.as_strided(
        size=(b, c, (h - kh) // stride + 1, (w - kw) // stride + 1, kh, kw),
        stride=(s_b, s_c, s_h * stride, s_w * stride, s_h, s_w),
    )
    return einops.einsum(windows, weight, "b c oh ow i j, o c i j -> b o oh ow")


def logit_attribution(
    components: Float[Tensor, "batch component d_model"],
    W_U: Float[Tensor, "d_model vocab"],
    tokens: Int[Tensor, " batch"],
) -> Float[Tensor, "batch component"]:
    """How much each component of each example adds to the logit of that example's correct token."""
    directions = W_U[:, tokens]  # (d_model, batch): each example's own unembedding column
    return einops.einsum(components, directions, "b c d, d b -> b c")

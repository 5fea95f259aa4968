"""Checks for 0.0 Prerequisites: einops puzzles, broadcasting and indexing, einsum."""

import einops
import torch

from solutions.chapter0_fundamentals import prerequisites as ref
from tests.harness import Case, Checker, Exercise

# ----------------------------------------------------------------------------- einops on images

# Two 1x2x2 "images" small enough to lay out by hand: [[0, 1], [2, 3]] and [[4, 5], [6, 7]].
_TWO_TINY = torch.arange(8.0).reshape(2, 1, 2, 2)


def _image_cases(gen):
    yield Case(
        (_TWO_TINY,),
        "two 1x2x2 images [[0, 1], [2, 3]] and [[4, 5], [6, 7]]",
        expected=torch.tensor([[[0.0, 1.0, 4.0, 5.0], [2.0, 3.0, 6.0, 7.0]]]),
    )
    yield Case((ref.digit_images(),), "the six digit images")
    yield Case((torch.rand(3, 3, 5, 7, generator=gen),), "three random 3x5x7 images")
    yield Case((torch.rand(4, 2, 3, 3, generator=gen),), "four random 2x3x3 images")


def _grid_cases(gen):
    # Four 1x1x1 images 0, 1, 2, 3 in 2 rows: [[0, 1], [2, 3]].
    yield Case(
        (torch.arange(4.0).reshape(4, 1, 1, 1), 2),
        "images 0, 1, 2, 3 (each 1x1), rows=2",
        expected=torch.tensor([[[0.0, 1.0], [2.0, 3.0]]]),
    )
    yield Case((ref.digit_images(), 2), "the six digit images, rows=2")
    yield Case((ref.digit_images(), 3), "the six digit images, rows=3")
    yield Case((torch.rand(6, 3, 4, 5, generator=gen), 1), "six random images, rows=1")
    yield Case((torch.rand(12, 2, 3, 2, generator=gen), 4), "twelve random images, rows=4")


def _grayscale_cases(gen):
    yield Case(
        (torch.tensor([[[[0.0]], [[0.3]], [[0.9]]], [[[1.0]], [[1.0]], [[0.4]]]]),),
        "two 1x1 RGB images (0, 0.3, 0.9) and (1, 1, 0.4)",
        expected=torch.tensor([[[0.4]], [[0.8]]]),
    )
    yield Case((ref.digit_images(),), "the six digit images")
    yield Case((torch.rand(3, 3, 4, 5, generator=gen),), "three random images (as many images as channels)")
    yield Case((torch.rand(2, 4, 2, 3, generator=gen),), "two random 4-channel images")


def _overlay_cases(gen):
    yield Case(
        (torch.tensor([[[[0.2, 0.0]]], [[[0.1, 0.7]]], [[[0.0, 0.5]]]]),),
        "three 1x1x2 images [0.2, 0], [0.1, 0.7], [0, 0.5]",
        expected=torch.tensor([[[0.2, 0.7]]]),
    )
    yield Case((ref.digit_images(),), "the six digit images")
    yield Case((torch.rand(3, 3, 4, 5, generator=gen),), "three random images (as many images as channels)")
    yield Case((torch.randn(5, 2, 3, 3, generator=gen),), "five random images with negative values")


def _pixelate_cases(gen):
    yield Case(
        (torch.arange(16.0).reshape(4, 4), 2),
        "4x4 image 0..15, factor 2",
        expected=torch.tensor([[2.5, 4.5], [10.5, 12.5]]),
    )
    yield Case((ref.digit_images()[0], 2), "digit 0 (3x36x28), factor 2")
    yield Case((ref.grid(ref.digit_images(), 2), 6), "the 2x3 grid of digits (3x72x84), factor 6")
    yield Case((torch.rand(2, 3, 6, 9, generator=gen), 3), "two random 3x6x9 images, factor 3")
    yield Case((torch.rand(5, 5, generator=gen), 1), "random 5x5 image, factor 1")


def _zoom_cases(gen):
    yield Case(
        (torch.tensor([[1.0, 2.0], [3.0, 4.0]]), 2),
        "[[1, 2], [3, 4]], factor 2",
        expected=torch.tensor([[1.0, 1.0, 2.0, 2.0], [1.0, 1.0, 2.0, 2.0], [3.0, 3.0, 4.0, 4.0], [3.0, 3.0, 4.0, 4.0]]),
    )
    yield Case((ref.digit_images(scale=1)[2], 3), "digit 2 at scale 1 (3x9x7), factor 3")
    yield Case((torch.rand(2, 3, 4, 5, generator=gen), 2), "two random 3x4x5 images, factor 2")
    yield Case((torch.rand(3, 2, generator=gen), 1), "random 3x2 image, factor 1")


# ----------------------------------------------------------------------------- broadcasting and indexing


def _distance_cases(gen):
    yield Case(
        (torch.tensor([[0.0, 0.0], [3.0, 4.0]]), torch.tensor([[0.0, 0.0], [0.0, 4.0], [6.0, 8.0]])),
        "x = [[0, 0], [3, 4]], y = [[0, 0], [0, 4], [6, 8]]",
        expected=torch.tensor([[0.0, 4.0, 10.0], [5.0, 3.0, 5.0]]),
    )
    yield Case((torch.randn(4, 3, generator=gen), torch.randn(4, 3, generator=gen)), "random 4x3 and 4x3")
    yield Case((torch.randn(5, 2, generator=gen), torch.randn(7, 2, generator=gen)), "random 5x2 and 7x2")
    yield Case((torch.randn(1, 6, generator=gen), torch.randn(3, 6, generator=gen)), "random 1x6 and 3x6")


def _normalise_cases(gen):
    # Channel 0 holds 1 and 3 (mean 2, std 1); channel 1 holds 0 and 4 (mean 2, std 2).
    yield Case(
        (torch.tensor([[[[1.0]], [[0.0]]], [[[3.0]], [[4.0]]]]),),
        "two 2-channel 1x1 images (1, 0) and (3, 4)",
        expected=torch.tensor([[[[-1.0]], [[-1.0]]], [[[1.0]], [[1.0]]]]),
    )
    yield Case((ref.digit_images(),), "the six digit images")
    yield Case(
        (torch.rand(4, 3, 5, 5, generator=gen) * torch.tensor([1.0, 5.0, 0.1])[:, None, None],),
        "four random images whose channels have different scales",
    )
    yield Case((torch.randn(2, 4, 3, 6, generator=gen) + 3,), "two random 4-channel images")


def _one_hot_cases(gen):
    yield Case(
        (torch.tensor([2, 0]), 3), "labels [2, 0], 3 classes", expected=torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    )
    yield Case((torch.randint(0, 4, (4,), generator=gen), 4), "4 random labels, 4 classes")
    yield Case((torch.randint(0, 10, (7,), generator=gen), 10), "7 random labels, 10 classes")
    yield Case((torch.tensor([0, 0, 0]), 5), "labels all 0 (the last classes never occur), 5 classes")


def _logit_cases(gen):
    yield Case(
        (torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), torch.tensor([2, 0])),
        "logits [[1, 2, 3], [4, 5, 6]], labels [2, 0]",
        expected=torch.tensor([3.0, 4.0]),
    )
    yield Case((torch.randn(8, 5, generator=gen), torch.randint(0, 5, (8,), generator=gen)), "batch 8, 5 classes")
    yield Case((torch.randn(3, 10, generator=gen), torch.randint(0, 10, (3,), generator=gen)), "batch 3, 10 classes")


def _last_token_cases(gen):
    resid = torch.arange(12.0).reshape(2, 3, 2)  # resid[i, t] = [6i + 2t, 6i + 2t + 1]
    yield Case(
        (resid, torch.tensor([3, 1])),
        "resid[i, t] = [6i + 2t, 6i + 2t + 1] (2x3x2), lengths [3, 1]",
        expected=torch.tensor([[4.0, 5.0], [6.0, 7.0]]),
    )
    yield Case(
        (torch.randn(5, 6, 4, generator=gen), torch.tensor([6, 1, 3, 6, 2])), "batch 5, seq 6, lengths [6, 1, 3, 6, 2]"
    )
    yield Case(
        (torch.randn(4, 4, 8, generator=gen), torch.randint(1, 5, (4,), generator=gen)),
        "batch 4, seq 4, random lengths",
    )


def _masked_mean_cases(gen):
    yield Case(
        (torch.tensor([[1.0, 2.0, 6.0], [4.0, 5.0, 6.0]]), torch.tensor([[True, False, True], [False, True, False]])),
        "x = [[1, 2, 6], [4, 5, 6]], mask = [[T, F, T], [F, T, F]]",
        expected=torch.tensor([3.5, 5.0]),
    )
    mask = torch.rand(5, 6, generator=gen) < 0.5
    mask[torch.arange(5), torch.randint(0, 6, (5,), generator=gen)] = True
    yield Case((torch.randn(5, 6, generator=gen), mask), "random 5x6, random mask")
    padded = torch.randn(3, 4, generator=gen)
    padded[:, 2:] = float("nan")
    yield Case(
        (padded, torch.tensor([[True, True, False, False]] * 3)),
        "random 3x4 whose masked-out entries are nan (padding can hold anything)",
    )


# ----------------------------------------------------------------------------- einsum


def _square_cases(gen):
    yield Case((torch.tensor([[1.0, 2.0], [3.0, 4.0]]),), "[[1, 2], [3, 4]]", expected=torch.tensor(5.0))
    yield Case((torch.randn(5, 5, generator=gen),), "random 5x5")
    yield Case((torch.randn(1, 1, generator=gen),), "random 1x1")


def _mv_cases(gen):
    yield Case(
        (torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([1.0, -1.0])),
        "[[1, 2], [3, 4]] @ [1, -1]",
        expected=torch.tensor([-1.0, -1.0]),
    )
    yield Case((torch.randn(4, 4, generator=gen), torch.randn(4, generator=gen)), "random 4x4 @ 4")
    yield Case((torch.randn(3, 5, generator=gen), torch.randn(5, generator=gen)), "random 3x5 @ 5")


def _mm_cases(gen):
    yield Case(
        (torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([[0.0, 1.0], [2.0, 0.0]])),
        "[[1, 2], [3, 4]] @ [[0, 1], [2, 0]]",
        expected=torch.tensor([[4.0, 1.0], [8.0, 3.0]]),
    )
    yield Case((torch.randn(4, 4, generator=gen), torch.randn(4, 4, generator=gen)), "random 4x4 @ 4x4")
    yield Case((torch.randn(2, 3, generator=gen), torch.randn(3, 5, generator=gen)), "random 2x3 @ 3x5")


def _inner_cases(gen):
    yield Case(
        (torch.tensor([1.0, 2.0, 3.0]), torch.tensor([4.0, -5.0, 6.0])),
        "[1, 2, 3] . [4, -5, 6]",
        expected=torch.tensor(12.0),
    )
    yield Case((torch.randn(6, generator=gen), torch.randn(6, generator=gen)), "random 6-vectors")


def _outer_cases(gen):
    yield Case(
        (torch.tensor([1.0, 2.0]), torch.tensor([3.0, 4.0, 5.0])),
        "[1, 2] outer [3, 4, 5]",
        expected=torch.tensor([[3.0, 4.0, 5.0], [6.0, 8.0, 10.0]]),
    )
    yield Case((torch.randn(4, generator=gen), torch.randn(4, generator=gen)), "random 4 and 4")
    yield Case((torch.randn(2, generator=gen), torch.randn(5, generator=gen)), "random 2 and 5")


def _bmm_cases(gen):
    a = torch.stack([torch.eye(2), 2 * torch.eye(2)])
    b = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]] * 2)
    yield Case(
        (a, b),
        "[I, 2I] @ [[1, 2], [3, 4]] twice",
        expected=torch.tensor([[[1.0, 2.0], [3.0, 4.0]], [[2.0, 4.0], [6.0, 8.0]]]),
    )
    yield Case((torch.randn(3, 4, 4, generator=gen), torch.randn(3, 4, 4, generator=gen)), "batch 3 of 4x4 @ 4x4")
    yield Case((torch.randn(2, 3, 5, generator=gen), torch.randn(2, 5, 4, generator=gen)), "batch 2 of 3x5 @ 5x4")


# ----------------------------------------------------------------------------- realistic wrong implementations


def _std_over_all_but_channel_unbiased(images):
    mean = images.mean(dim=(0, 2, 3), keepdim=True)
    return (images - mean) / images.std(dim=(0, 2, 3), keepdim=True)


def _masked_mean_zeroing_input(x, mask):
    x[~mask] = 0.0
    return x.sum(dim=-1) / mask.sum(dim=-1)


check = Checker(
    "0.0",
    [
        Exercise(
            ref.side_by_side,
            _image_cases,
            hint='Merge the image axis with the width axis, image first: "d c h w -> c h (d w)".',
            wrong={
                "width before image in the brackets (interleaves columns)": lambda x: einops.rearrange(
                    x, "d c h w -> c h (w d)"
                ),
                "stacked vertically": lambda x: einops.rearrange(x, "d c h w -> c (d h) w"),
            },
        ),
        Exercise(
            ref.grid,
            _grid_cases,
            hint="Split the image axis into (row col), then merge row with height and col with width; "
            "pass row=rows so einops knows how to split.",
            wrong={
                "column-major order (fills columns first)": lambda x, rows: einops.rearrange(
                    x, "(col row) c h w -> c (row h) (col w)", row=rows
                ),
                "rows and columns swapped": lambda x, rows: einops.rearrange(
                    x, "(row col) c h w -> c (col h) (row w)", row=rows
                ),
            },
        ),
        Exercise(
            ref.grayscale,
            _grayscale_cases,
            hint='Reduce away the channel axis with "mean": einops.reduce(images, "d c h w -> d h w", "mean").',
            wrong={
                "sum instead of mean": lambda x: x.sum(dim=1),
                "averages over the images instead of the channels": lambda x: x.mean(dim=0),
            },
        ),
        Exercise(
            ref.overlay,
            _overlay_cases,
            hint='Reduce away the image axis (the first one) with "max".',
            wrong={
                "mean instead of max": lambda x: x.mean(dim=0),
                "max over the channel axis": lambda x: x.amax(dim=1),
                "clamped sum": lambda x: x.sum(dim=0).clamp(max=1.0),
            },
        ),
        Exercise(
            ref.pixelate,
            _pixelate_cases,
            hint='Split height into (h fh) and width into (w fw), then reduce fh and fw away with "mean"; '
            'use "..." for the leading axes.',
            wrong={
                "block size before position, (fh h): averages pixels far apart": lambda x, f: einops.reduce(
                    x, "... (fh h) (fw w) -> ... h w", "mean", fh=f, fw=f
                ),
                "max instead of mean": lambda x, f: einops.reduce(x, "... (h fh) (w fw) -> ... h w", "max", fh=f, fw=f),
                "keeps every factor-th pixel instead of averaging": lambda x, f: x[..., ::f, ::f],
            },
        ),
        Exercise(
            ref.zoom,
            _zoom_cases,
            hint='einops.repeat(image, "... h w -> ... (h fh) (w fw)", fh=factor, fw=factor): the new axis goes '
            "after h inside the brackets, so each pixel is copied in place.",
            wrong={
                "copies before position, (fh h): tiles the whole image instead": lambda x, f: einops.repeat(
                    x, "... h w -> ... (fh h) (fw w)", fh=f, fw=f
                ),
                "repeats the width axis twice (a dim typo)": lambda x, f: x.repeat_interleave(
                    f, dim=-1
                ).repeat_interleave(f, dim=-1),
            },
        ),
        Exercise(
            ref.pairwise_distances,
            _distance_cases,
            hint="x[:, None, :] - y[None, :, :] has shape (m, n, dim): square it, sum over dim, take the square root.",
            wrong={
                "squared distances (no square root)": lambda x, y: ((x[:, None] - y[None]) ** 2).sum(-1),
                "transposed: y[:, None] - x[None]": lambda x, y: ((y[:, None] - x[None]) ** 2).sum(-1).sqrt(),
                "sums over the wrong axis": lambda x, y: ((x[:, None] - y[None]) ** 2).sum(0).sqrt(),
            },
        ),
        Exercise(
            ref.normalise_channels,
            _normalise_cases,
            hint='Compute mean and std with shape (1, channel, 1, 1), e.g. einops.reduce(x, "d c h w -> 1 c 1 1", '
            '"mean"), so they broadcast against the images; std is sqrt(mean((x - mean)**2)).',
            wrong={
                "normalises each image separately": lambda x: (
                    (x - x.mean(dim=(1, 2, 3), keepdim=True)) / x.std(dim=(1, 2, 3), keepdim=True, correction=0)
                ),
                "unbiased std (torch.std's default)": _std_over_all_but_channel_unbiased,
                "forgets to divide by the std": lambda x: x - x.mean(dim=(0, 2, 3), keepdim=True),
            },
        ),
        Exercise(
            ref.one_hot,
            _one_hot_cases,
            hint="Compare labels[:, None] with torch.arange(num_classes): broadcasting gives an (n, num_classes) "
            "bool tensor; convert it with .float().",
            wrong={
                "int64 from F.one_hot": lambda labels, k: torch.nn.functional.one_hot(labels, k),
                "transposed": lambda labels, k: (torch.arange(k)[:, None] == labels[None]).float(),
                "classes inferred from the labels": lambda labels, k: torch.nn.functional.one_hot(
                    labels, int(labels.max()) + 1
                ).float(),
            },
        ),
        Exercise(
            ref.correct_class_logits,
            _logit_cases,
            hint="Index with two integer tensors of the same length: logits[torch.arange(batch), labels].",
            wrong={
                "logits[:, labels] (picks every label for every row)": lambda lg, lb: lg[:, lb],
                "gathers along the batch axis": lambda lg, lb: lg.gather(0, lb[None])[0],
                "max logit instead of the correct one": lambda lg, lb: lg.max(dim=-1).values,
            },
        ),
        Exercise(
            ref.last_token_vectors,
            _last_token_cases,
            hint="Positions start at 0, so the last real token of sequence i is at lengths[i] - 1; index with "
            "resid[torch.arange(batch), lengths - 1].",
            wrong={
                "off by one: resid[arange, lengths]": lambda r, n: r[torch.arange(len(n)), n],
                "resid[:, lengths - 1] (every sequence at every position)": lambda r, n: r[:, n - 1],
                "always the final position (ignores padding)": lambda r, n: r[:, -1],
            },
        ),
        Exercise(
            ref.masked_row_mean,
            _masked_mean_cases,
            hint="Zero the masked-out entries with torch.where(mask, x, 0.0) (not x * mask: 0 * nan is nan), sum each "
            "row, and divide by the number of True entries in that row, mask.sum(dim=-1).",
            wrong={
                "divides by the full row length": lambda x, m: torch.where(m, x, 0.0).mean(dim=-1),
                "multiplies by the mask (0 * nan = nan)": lambda x, m: (x * m).sum(-1) / m.sum(-1),
                "zeroes the input in place": _masked_mean_zeroing_input,
            },
        ),
        Exercise(
            ref.einsum_trace,
            _square_cases,
            hint='Repeat the index within one input and leave it out of the output: "i i ->".',
            wrong={"sum of all entries": lambda m: m.sum(), "product of the diagonal": lambda m: m.diagonal().prod()},
        ),
        Exercise(
            ref.einsum_mv,
            _mv_cases,
            hint='Sum over the index the matrix columns share with the vector: "i j, j -> i".',
            wrong={
                "multiplies by the transpose": lambda m, v: einops.einsum(m, v, "j i, j -> i"),
                "elementwise product, not summed": lambda m, v: m * v,
            },
        ),
        Exercise(
            ref.einsum_mm,
            _mm_cases,
            hint='The shared index j disappears from the output: "i j, j k -> i k".',
            wrong={
                "a @ b.T": lambda a, b: einops.einsum(a, b, "i j, k j -> i k"),
                "elementwise product": lambda a, b: a * b,
            },
        ),
        Exercise(
            ref.einsum_inner,
            _inner_cases,
            hint='Both vectors share one index and the output has none: "i, i ->".',
            wrong={
                "elementwise product, not summed": lambda u, v: einops.einsum(u, v, "i, i -> i"),
                "sum of products of all pairs": lambda u, v: einops.einsum(u, v, "i, j ->"),
            },
        ),
        Exercise(
            ref.einsum_outer,
            _outer_cases,
            hint='Give the two vectors different indices and keep both: "i, j -> i j".',
            wrong={
                "transposed": lambda u, v: einops.einsum(u, v, "i, j -> j i"),
                "elementwise product": lambda u, v: u * v,
            },
        ),
        Exercise(
            ref.einsum_bmm,
            _bmm_cases,
            hint='Keep the batch index in both inputs and in the output: "b i j, b j k -> b i k".',
            wrong={
                "sums over the batch too": lambda a, b: einops.einsum(a, b, "b i j, b j k -> i k"),
                "a[i] @ b[i].T": lambda a, b: einops.einsum(a, b, "b i j, b k j -> b i k"),
            },
        ),
    ],
)

"""Checks for 0.0 Prerequisites: einops puzzles, broadcasting and indexing, einsum."""

import functools

import einops
import torch

from solutions.chapter0_fundamentals import prerequisites as ref
from tests.harness import Case, Checker, Exercise

# ----------------------------------------------------------------------------- target pictures


def target_pictures() -> dict[str, torch.Tensor]:
    """What the einops puzzles should produce from the six digit images, to look at before solving them.

    Pictures, not functions: the notebook imports this rather than the reference, so that no answer is
    one attribute away.
    """
    images = ref.digit_images()
    mosaic = ref.grid(images, rows=2)
    return {
        "side_by_side": ref.side_by_side(images),
        "grid": mosaic,
        "grayscale": ref.grayscale(images),
        "overlay": ref.overlay(images),
        "pixelate": ref.pixelate(mosaic, 6),
        "zoom": ref.zoom(ref.pixelate(mosaic, 6), 6),
        "contact_sheet": ref.contact_sheet(images, rows=2, gap=4),
    }


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
    yield Case((torch.rand(8, 2, 3, 4, generator=gen),), "eight random images (more than the six digits)")


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
    yield Case((torch.rand(9, 3, 4, 5, generator=gen),), "nine random images (more than the six digits)")
    yield Case((-0.1 - torch.rand(3, 2, 3, 3, generator=gen),), "three random images, every value negative")


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


def _contact_sheet_cases(gen):
    # Four 1x1x1 images 1, 2, 3, 4 in 2 rows with a gap of 1: the zeros form a cross.
    yield Case(
        (torch.arange(1.0, 5.0).reshape(4, 1, 1, 1), 2, 1),
        "images 1, 2, 3, 4 (each 1x1), rows=2, gap=1",
        expected=torch.tensor([[[1.0, 0.0, 2.0], [0.0, 0.0, 0.0], [3.0, 0.0, 4.0]]]),
    )
    yield Case((ref.digit_images(), 2, 3), "the six digit images, rows=2, gap=3")
    yield Case((ref.digit_images(), 2, 0), "the six digit images, rows=2, gap=0 (no gap at all)")
    yield Case((torch.rand(6, 2, 3, 4, generator=gen) + 1, 1, 2), "six random 3x4 images, rows=1, gap=2")
    yield Case((torch.rand(6, 3, 2, 5, generator=gen) + 1, 3, 1), "six random 2x5 images, rows=3 (two per row), gap=1")
    yield Case((torch.rand(8, 1, 4, 2, generator=gen) + 1, 4, 2), "eight random 4x2 images, rows=4, gap=2")


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
    # Values near 30 make |x|^2 large, so any route through |x|^2 + |y|^2 - 2 x.y loses the small distances.
    x = torch.randn(5, 8, generator=gen) * 10 + 30
    y = torch.stack([x[3], x[1], x[0] + 1e-3 * torch.randn(8, generator=gen), x[4], x[2] + 30])
    yield Case((x, y), "y holds rows of x (distance 0) and one row a few thousandths from x's row 0; values near 30")


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
    nearly_constant = torch.rand(4, 3, 5, 5, generator=gen)
    nearly_constant[:, 1] = 0.5 + 1e-3 * torch.randn(4, 5, 5, generator=gen)
    yield Case((nearly_constant,), "four random images whose channel 1 is nearly constant (0.5, std 0.001)")


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
    masked = torch.randn(4, 6, generator=gen)
    labels = torch.tensor([5, 0, 2, 2])
    masked[masked < 0] = float("-inf")  # classes ruled out for an example
    masked[torch.arange(4), labels] = torch.tensor([1e30, -2.0, 0.5, -1e30])
    yield Case((masked, labels), "batch 4, 6 classes; ruled-out classes at -inf, correct ones include ±1e30")


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
    lengths = torch.tensor([2, 5, 1])
    padded = torch.randn(3, 5, 4, generator=gen)
    padded[torch.arange(5) >= lengths[:, None]] = float("nan")
    yield Case((padded, lengths), "batch 3, seq 5, lengths [2, 5, 1]; the padding is nan (it can hold anything)")


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
    padded = torch.randn(3, 5, generator=gen)
    mask = torch.tensor([[True, False, True, False, False], [False, True, True, True, False], [True] * 4 + [False]])
    padded[~mask] = torch.tensor([float("inf"), float("-inf")]).repeat(4)[: int((~mask).sum())]
    yield Case((padded, mask), "random 3x5 whose masked-out entries are inf and -inf")


def _random_boxes(n, gen):
    corner = torch.rand(n, 2, generator=gen) * 10
    return torch.cat([corner, corner + 0.5 + torch.rand(n, 2, generator=gen) * 5], dim=-1)


def _iou_cases(gen):
    # Overlap 1 (area 4 + 4 - 1 = 7); touching along an edge; apart in x and in y; the same box.
    yield Case(
        (
            torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0]]),
            torch.tensor([[1.0, 1.0, 3.0, 3.0], [2.0, 0.0, 4.0, 2.0], [5.0, 5.0, 6.0, 6.0], [0.0, 0.0, 2.0, 2.0]]),
        ),
        "a = [[0, 0, 2, 2], [0, 0, 1, 1]], b = [[1, 1, 3, 3], [2, 0, 4, 2], [5, 5, 6, 6], [0, 0, 2, 2]]",
        expected=torch.tensor([[1 / 7, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.25]]),
    )
    yield Case((_random_boxes(5, gen), _random_boxes(7, gen)), "5 random boxes and 7 random boxes")
    yield Case((_random_boxes(4, gen), _random_boxes(4, gen)), "4 random boxes and 4 random boxes")
    inner = torch.tensor([[2.0, 2.0, 3.0, 4.0]])
    yield Case(
        (inner, torch.tensor([[1.0, 1.0, 5.0, 5.0], [2.0, 3.0, 3.0, 4.0], [0.0, 0.0, 1.0, 1.0]])),
        "a box inside another, a box holding it, and a box far below and to the left",
    )


def _neighbour_cases(gen):
    yield Case(
        (torch.tensor([[1.0, 0.0], [0.0, 0.0], [1.0, 0.1], [-1.0, 0.0]]),),
        "rows [1, 0], [0, 0], [1, 0.1], [-1, 0]",
        expected=torch.tensor([2, 0, 0, 1]),
    )
    yield Case((torch.randn(6, 4, generator=gen),), "6 random rows of 4")
    lengths = torch.tensor([[1.0], [100.0], [0.01], [5.0], [1.0]])
    yield Case((torch.randn(5, 3, generator=gen) * lengths,), "5 random rows of very different lengths")
    x = torch.randn(7, 5, generator=gen)
    x[4] = 3 * x[1]  # same direction, different length
    yield Case((x,), "7 random rows; row 4 is 3 times row 1")
    yield Case(
        (torch.tensor([[1.0, 0.0], [-1.0, 0.1]]),),
        "two rows pointing almost opposite ways",
        expected=torch.tensor([1, 0]),
    )
    x = torch.randn(6, 3, generator=gen)
    x[2] = 0.0
    yield Case((x,), "6 random rows; row 2 is all zeros")


def _rank_cases(gen):
    yield Case(
        (torch.tensor([[3.0, 1.0, 3.0, 0.0, 5.0], [2.0, 2.0, 2.0, 2.0, 2.0]]),),
        "rows [3, 1, 3, 0, 5] and [2, 2, 2, 2, 2]",
        expected=torch.tensor([[2, 1, 2, 0, 4], [0, 0, 0, 0, 0]]),
    )
    yield Case((torch.randn(4, 6, generator=gen),), "random 4x6 (no ties)")
    yield Case((torch.randint(0, 3, (5, 8), generator=gen).float(),), "random 5x8 of 0, 1 and 2 (many ties)")
    yield Case((torch.randn(3, 3, generator=gen),), "random 3x3 (as many rows as columns)")


def _top_k_cases(gen):
    yield Case(
        (torch.tensor([[1.0, 3.0, 3.0, 2.0], [4.0, 1.0, 2.0, 3.0]]), 2),
        "[[1, 3, 3, 2], [4, 1, 2, 3]], k=2",
        expected=torch.tensor([[float("-inf"), 3.0, 3.0, float("-inf")], [4.0, float("-inf"), float("-inf"), 3.0]]),
    )
    yield Case((torch.randn(4, 10, generator=gen), 3), "random 4x10, k=3")
    yield Case((torch.randn(3, 6, generator=gen) * 100, 1), "random 3x6 of large logits, k=1")
    yield Case((torch.randn(2, 5, generator=gen), 5), "random 2x5, k=5 (keep everything)")
    tied = torch.randint(0, 3, (4, 8), generator=gen).float()
    yield Case((tied, 2), "random 4x8 of 0, 1 and 2 (ties at the k-th value), k=2")
    ruled_out = torch.randn(3, 6, generator=gen)
    ruled_out[:, :2] = float("-inf")
    yield Case((ruled_out, 3), "random 3x6 whose first two logits are already -inf, k=3")


def _segment_cases(gen):
    yield Case(
        (torch.arange(8.0).reshape(4, 2), torch.tensor([2, 0, 2, 2]), 4),
        "rows [0, 1], [2, 3], [4, 5], [6, 7] in segments [2, 0, 2, 2]; 4 segments (1 and 3 empty)",
        expected=torch.tensor([[2.0, 3.0], [0.0, 0.0], [10 / 3, 13 / 3], [0.0, 0.0]]),
    )
    yield Case(
        (torch.randn(10, 3, generator=gen), torch.randint(0, 4, (10,), generator=gen), 4),
        "10 random rows in 4 segments, unsorted",
    )
    ids = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 2, 3, 4])
    yield Case((torch.randn(12, 2, generator=gen), ids, 5), "12 rows in 5 sorted segments of different sizes")
    yield Case(
        (torch.randn(5, 4, generator=gen), torch.tensor([1, 1, 1, 1, 1]), 3),
        "5 rows all in segment 1 of 3 (segments 0 and 2 empty)",
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


def _attention_cases(gen):
    # One head, d_head 1, two positions; q = [0, 2], k = [1, 1]: query 1's scores are [2, 2] / 1, so equal weights.
    q = torch.tensor([0.0, 2.0]).reshape(1, 2, 1, 1)
    k = torch.tensor([1.0, 1.0]).reshape(1, 2, 1, 1)
    yield Case(
        (q, k, torch.tensor([[True, True]])),
        "q = [0, 2], k = [1, 1] (one head, d_head 1), all keys real",
        expected=torch.tensor([[[[1.0, 0.0], [0.5, 0.5]]]]),
    )
    yield Case(
        (
            torch.randn(2, 5, 3, 4, generator=gen),
            torch.randn(2, 5, 3, 4, generator=gen),
            torch.ones(2, 5, dtype=torch.bool),
        ),
        "batch 2, 5 positions, 3 heads, d_head 4, all keys real",
    )
    yield Case(
        (
            torch.randn(1, 4, 2, 16, generator=gen) * 3,
            torch.randn(1, 4, 2, 16, generator=gen) * 3,
            torch.ones(1, 4, dtype=torch.bool),
        ),
        "batch 1, 4 positions, 2 heads, d_head 16 (large scores)",
    )
    real = torch.tensor(
        [[False, False, True, True, True], [True, True, True, True, True], [False, True, True, True, True]]
    )
    yield Case(
        (torch.randn(3, 5, 2, 4, generator=gen), torch.randn(3, 5, 2, 4, generator=gen), real),
        "batch 3, 5 positions, left padding (the first queries of two sequences see no real key)",
    )


def _conv_cases(gen):
    x = torch.tensor([[[1.0, 2.0, 4.0, 7.0, 11.0]]])
    weight = torch.tensor([[[1.0, 0.0, -1.0]]])
    yield Case(
        (x, weight, 1),
        "x = [1, 2, 4, 7, 11], kernel [1, 0, -1], stride 1",
        expected=torch.tensor([[[-3.0, -5.0, -7.0]]]),
    )
    yield Case(
        (x, weight, 2), "x = [1, 2, 4, 7, 11], kernel [1, 0, -1], stride 2", expected=torch.tensor([[[-3.0, -7.0]]])
    )
    yield Case(
        (torch.randn(2, 3, 12, generator=gen), torch.randn(4, 3, 3, generator=gen), 1),
        "batch 2, 3 channels in, 4 out, length 12, width 3, stride 1",
    )
    yield Case(
        (torch.randn(3, 2, 11, generator=gen), torch.randn(2, 2, 4, generator=gen), 3),
        "batch 3, 2 channels in and out, length 11, width 4, stride 3 (the last window ends at the end)",
    )
    yield Case(
        (torch.randn(1, 1, 10, generator=gen), torch.randn(1, 1, 3, generator=gen), 4),
        "one channel, length 10, width 3, stride 4 (the last position is left over)",
    )


def _conv2d_cases(gen):
    # One 3x3 image 0..8 and the kernel [[1, 0], [0, -1]]: each output is x[i, j] - x[i + 1, j + 1] = -4.
    x = torch.arange(9.0).reshape(1, 1, 3, 3)
    weight = torch.tensor([[[[1.0, 0.0], [0.0, -1.0]]]])
    yield Case(
        (x, weight, 1),
        "x = 0..8 as one 3x3 image, kernel [[1, 0], [0, -1]], stride 1",
        expected=torch.full((1, 1, 2, 2), -4.0),
    )
    yield Case(
        (torch.randn(2, 3, 7, 6, generator=gen), torch.randn(4, 3, 3, 2, generator=gen), 1),
        "batch 2, 3 channels in, 4 out, 7x6 images, 3x2 kernel (not square), stride 1",
    )
    yield Case(
        (torch.randn(2, 2, 9, 8, generator=gen), torch.randn(3, 2, 3, 3, generator=gen), 2),
        "batch 2, 2 channels in, 3 out, 9x8 images, 3x3 kernel, stride 2",
    )
    yield Case(
        (torch.randn(1, 2, 8, 8, generator=gen), torch.randn(2, 2, 2, 3, generator=gen), 3),
        "batch 1, 2 channels in and out, 8x8 image, 2x3 kernel, stride 3",
    )
    base = torch.randn(2, 3, 6, 5, generator=gen)
    yield Case(
        (base.transpose(-1, -2), torch.randn(2, 3, 2, 2, generator=gen), 1),
        "a non-contiguous input (a transposed 5x6 batch), 2x2 kernel, stride 1",
    )
    yield Case(
        (torch.randn(4, 2, 7, 7, generator=gen)[1:3, :, 1:], torch.randn(2, 2, 3, 3, generator=gen), 2),
        "a slice of a bigger batch (not contiguous, and it starts partway into its storage), stride 2",
    )


def _conv2d_assumes_contiguous(x, weight, stride):
    b, c, h, w = x.shape
    kh, kw = weight.shape[-2:]
    windows = x.as_strided(
        (b, c, (h - kh) // stride + 1, (w - kw) // stride + 1, kh, kw),
        (c * h * w, h * w, w * stride, stride, w, 1),
    )
    return einops.einsum(windows, weight, "b c oh ow i j, o c i j -> b o oh ow")


def _conv2d_kernel_axes_swapped(x, weight, stride):
    windows = x.unfold(2, weight.shape[-2], stride).unfold(3, weight.shape[-1], stride)
    return einops.einsum(windows, weight, "b c oh ow j i, o c i j -> b o oh ow")


def _attribution_cases(gen):
    # Two examples, two components, d_model 2, vocab 3.
    components = torch.tensor([[[1.0, 0.0], [0.0, 2.0]], [[1.0, 1.0], [-1.0, 0.0]]])
    W_U = torch.tensor([[1.0, 0.0, 3.0], [0.0, 1.0, -1.0]])
    yield Case(
        (components, W_U, torch.tensor([1, 2])),
        "components [[[1, 0], [0, 2]], [[1, 1], [-1, 0]]], W_U = [[1, 0, 3], [0, 1, -1]], tokens [1, 2]",
        expected=torch.tensor([[0.0, 2.0], [2.0, -3.0]]),
    )
    yield Case(
        (torch.randn(4, 3, 6, generator=gen), torch.randn(6, 10, generator=gen), torch.tensor([9, 0, 4, 4])),
        "batch 4, 3 components, d_model 6, vocab 10",
    )
    yield Case(
        (torch.randn(3, 5, 4, generator=gen), torch.randn(4, 4, generator=gen), torch.tensor([2, 0, 3])),
        "batch 3, 5 components, d_model 4 = vocab 4",
    )


# ----------------------------------------------------------------------------- realistic wrong implementations


def _side_by_side_first_six(images):
    return torch.cat(list(images[:6]), dim=-1)


def _overlay_first_six(images):
    out = images[0]
    for image in images[1:6]:
        out = torch.maximum(out, image)
    return out


def _sheet_cropped_by_negative_slice(images, rows, gap):
    padded = torch.nn.functional.pad(images, (0, gap, 0, gap))
    return einops.rearrange(padded, "(row col) c h w -> c (row h) (col w)", row=rows)[:, :-gap, :-gap]


def _sheet_padded_before(images, rows, gap):
    padded = torch.nn.functional.pad(images, (gap, 0, gap, 0))
    sheet = einops.rearrange(padded, "(row col) c h w -> c (row h) (col w)", row=rows)
    return sheet[:, : sheet.shape[1] - gap, : sheet.shape[2] - gap]


def _iou_parts(a, b, clamp_sides):
    sides = torch.minimum(a[:, None, 2:], b[None, :, 2:]) - torch.maximum(a[:, None, :2], b[None, :, :2])
    overlap = sides.clamp(min=0).prod(-1) if clamp_sides else sides.prod(-1).clamp(min=0)
    return overlap, (a[:, 2:] - a[:, :2]).prod(-1)[:, None], (b[:, 2:] - b[:, :2]).prod(-1)[None, :]


def _iou_clamping_the_area(a, b):
    overlap, area_a, area_b = _iou_parts(a, b, clamp_sides=False)
    return overlap / (area_a + area_b - overlap)


def _iou_union_double_counts(a, b):
    overlap, area_a, area_b = _iou_parts(a, b, clamp_sides=True)
    return overlap / (area_a + area_b)


def _iou_over_smaller_area(a, b):
    overlap, area_a, area_b = _iou_parts(a, b, clamp_sides=True)
    return overlap / torch.minimum(area_a, area_b)


def _neighbours_by_dot_product(x):
    similarity = x @ x.T
    similarity.fill_diagonal_(float("-inf"))
    return similarity.argmax(-1)


def _neighbours_diagonal_zeroed(x):
    unit = x / x.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    return ((unit @ unit.T) * (1 - torch.eye(len(x), device=x.device))).argmax(-1)


def _neighbours_unclamped_norm(x):
    unit = x / x.norm(dim=-1, keepdim=True)
    similarity = unit @ unit.T
    similarity.fill_diagonal_(float("-inf"))
    return similarity.argmax(-1)


def _top_k_scatter(logits, k):
    kept = torch.full_like(logits, float("-inf"))
    indices = logits.topk(k, dim=-1).indices
    return kept.scatter(-1, indices, logits.gather(-1, indices))


def _segment_mean_unclamped(values, ids, n):
    totals = values.new_zeros(n, values.shape[1]).index_add_(0, ids, values)
    return totals / torch.bincount(ids, minlength=n)[:, None]


def _segment_mean_scatter_overwrites(values, ids, n):
    totals = values.new_zeros(n, values.shape[1]).scatter_(0, ids[:, None].expand(-1, values.shape[1]), values)
    return totals / torch.bincount(ids, minlength=n).clamp(min=1)[:, None]


def _segment_mean_divides_by_rows(values, ids, n):
    return values.new_zeros(n, values.shape[1]).index_add_(0, ids, values) / len(ids)


def _attention(q, k, real, scale=True, fill=float("-inf"), causal="past", zero_empty_rows=True, use_real=True):
    scores = einops.einsum(q, k, "b q h d, b k h d -> b h q k") / (q.shape[-1] ** 0.5 if scale else 1.0)
    positions = torch.arange(q.shape[1], device=q.device)
    allowed = {
        "past": positions[None, :] <= positions[:, None],
        "future": positions[None, :] >= positions[:, None],
        "strict": positions[None, :] < positions[:, None],
    }[causal]
    allowed = allowed & real[:, None, None, :] if use_real else allowed[None, None].expand_as(scores)
    pattern = scores.masked_fill(~allowed, fill).softmax(-1)
    return torch.where(allowed, pattern, 0.0) if zero_empty_rows else pattern


def _conv_flipped_kernel(x, w, stride):
    return torch.nn.functional.conv1d(x, w.flip(-1), stride=stride)


def _conv_misses_last_window(x, w, stride):
    starts = range(0, x.shape[-1] - w.shape[-1], stride)
    return torch.stack([einops.einsum(x[..., s : s + w.shape[-1]], w, "b i w, o i w -> b o") for s in starts], dim=-1)


def _conv_weight_read_as_in_out(x, w, stride):
    return einops.einsum(x.unfold(-1, w.shape[-1], stride), w, "b i l w, i o w -> b o l")


def _distances_expanded(x, y):
    return ((x**2).sum(-1)[:, None] + (y**2).sum(-1)[None] - 2 * x @ y.T).sqrt()


def _distances_expanded_clamped(x, y):
    return ((x**2).sum(-1)[:, None] + (y**2).sum(-1)[None] - 2 * x @ y.T).clamp(min=0).sqrt()


def _std_over_all_but_channel_unbiased(images):
    mean = images.mean(dim=(0, 2, 3), keepdim=True)
    return (images - mean) / images.std(dim=(0, 2, 3), keepdim=True)


def _normalise_std_plus_eps(images):
    mean = images.mean(dim=(0, 2, 3), keepdim=True)
    return (images - mean) / (images.std(dim=(0, 2, 3), keepdim=True, correction=0) + 1e-5)


def _normalise_var_plus_eps(images):
    mean = images.mean(dim=(0, 2, 3), keepdim=True)
    return (images - mean) / (images.var(dim=(0, 2, 3), keepdim=True, correction=0) + 1e-5).sqrt()


def _normalise_one_pass_variance(images):
    mean = images.mean(dim=(0, 2, 3), keepdim=True)
    variance = (images**2).mean(dim=(0, 2, 3), keepdim=True) - mean**2
    return (images - mean) / variance.sqrt()


def _logits_by_one_hot_product(logits, labels):
    return (logits * torch.nn.functional.one_hot(labels, logits.shape[-1])).sum(-1)


def _last_token_by_one_hot_product(resid, lengths):
    at_last = torch.nn.functional.one_hot(lengths - 1, resid.shape[1]).to(resid.dtype)
    return (resid * at_last[..., None]).sum(1)


def _masked_mean_zeroing_input(x, mask):
    x[~mask] = 0.0
    return x.sum(dim=-1) / mask.sum(dim=-1)


def _masked_mean_patching_nan_only(x, mask):
    return (torch.where(x.isnan(), 0.0, x) * mask).sum(-1) / mask.sum(-1)


check = Checker(
    "0.0",
    [
        Exercise(
            ref.side_by_side,
            _image_cases,
            hint="Check the shape, then the order: all of the first image's columns come before any of the "
            "second's. Inside einops brackets, which name varies slowest?",
            wrong={
                "width before image inside the brackets: the images' columns are interleaved": lambda x: (
                    einops.rearrange(x, "d c h w -> c h (w d)")
                ),
                "stacks the images vertically instead of side by side": lambda x: einops.rearrange(
                    x, "d c h w -> c (d h) w"
                ),
                "reshapes without moving the image axis next to the width axis": lambda x: x.reshape(
                    x.shape[1], x.shape[2], -1
                ),
                "lays out only the first six images (a bound fitted to the six digits)": _side_by_side_first_six,
            },
        ),
        Exercise(
            ref.grid,
            _grid_cases,
            hint="Look at where the second image lands: beside the first (filled row by row) or below it? The "
            "digit axis splits into a row part and a column part; which of them varies slowest?",
            wrong={
                "fills the grid column by column (the column part varies slowest)": lambda x, rows: einops.rearrange(
                    x, "(col row) c h w -> c (row h) (col w)", row=rows
                ),
                "transposes the grid: `rows` images across instead of `rows` rows down": lambda x, rows: (
                    einops.rearrange(x, "(row col) c h w -> c (col h) (row w)", row=rows)
                ),
                "reshapes without moving the row and column parts next to height and width": lambda x, rows: x.reshape(
                    x.shape[1], rows * x.shape[2], -1
                ),
            },
        ),
        Exercise(
            ref.grayscale,
            _grayscale_cases,
            hint="Which axis is reduced, and how? One value per image and pixel: the plain mean over that "
            "pixel's channels, however many there are.",
            wrong={
                "sums the channels instead of averaging them": lambda x: x.sum(dim=1),
                "averages over the images instead of the channels": lambda x: x.mean(dim=0),
                "weights the channels by luminance instead of taking their plain mean": lambda x: einops.einsum(
                    x, torch.tensor([0.299, 0.587, 0.114], device=x.device), "d c h w, c -> d h w"
                ),
                "averages only the first three channels (assumes RGB)": lambda x: x[:, :3].mean(dim=1),
            },
        ),
        Exercise(
            ref.overlay,
            _overlay_cases,
            hint="Which axis is reduced, and how? One value per channel and pixel: the largest over all the "
            "images, however many there are, negative values included.",
            wrong={
                "averages the images instead of taking their maximum": lambda x: x.mean(dim=0),
                "takes the maximum over the channels instead of the images": lambda x: x.amax(dim=1),
                "adds the images and clips at 1 instead of taking their maximum": lambda x: x.sum(dim=0).clamp(max=1.0),
                "starts the running maximum at 0, so negative values are lost": lambda x: x.clamp(min=0).amax(0),
                "only looks at the first six images (a bound fitted to the six digits)": _overlay_first_six,
            },
        ),
        Exercise(
            ref.pixelate,
            _pixelate_cases,
            hint="Each output pixel should average a block of neighbouring pixels. Inside the brackets, which "
            "part varies slowest: the block's position or the offset within the block?",
            wrong={
                "offset before position inside the brackets: averages pixels far apart, not a block": lambda x, f: (
                    einops.reduce(x, "... (fh h) (fw w) -> ... h w", "mean", fh=f, fw=f)
                ),
                "takes the block's maximum instead of its mean": lambda x, f: einops.reduce(
                    x, "... (h fh) (w fw) -> ... h w", "max", fh=f, fw=f
                ),
                "keeps one pixel per block instead of averaging the block": lambda x, f: x[..., ::f, ::f],
            },
        ),
        Exercise(
            ref.zoom,
            _zoom_cases,
            hint="Each pixel should become a block of identical neighbours, not the whole image repeated. Inside "
            "the brackets, which part varies slowest: the pixel's position or the copy index?",
            wrong={
                "copy index before position inside the brackets: tiles the whole image instead of zooming": (
                    lambda x, f: einops.repeat(x, "... h w -> ... (fh h) (fw w)", fh=f, fw=f)
                ),
                "repeats along the width twice instead of along the height and the width": lambda x, f: (
                    x.repeat_interleave(f, dim=-1).repeat_interleave(f, dim=-1)
                ),
            },
        ),
        Exercise(
            ref.contact_sheet,
            _contact_sheet_cases,
            hint="Check the size first: a gap between neighbours, none before the first image or after the last. "
            "Then the corners: the top-left pixel is the first image's, the bottom-right the last image's. "
            "Does gap=0 still give the whole sheet?",
            wrong={
                "a gap around the edge too (after the last image in each direction)": lambda x, rows, gap: (
                    einops.rearrange(
                        torch.nn.functional.pad(x, (0, gap, 0, gap)), "(row col) c h w -> c (row h) (col w)", row=rows
                    )
                ),
                "trims with a negative slice: with gap 0 it trims everything": _sheet_cropped_by_negative_slice,
                "pads before each image but trims after: the last images lose pixels": _sheet_padded_before,
                "gaps between columns only, not between rows": lambda x, rows, gap: einops.rearrange(
                    torch.nn.functional.pad(x, (0, gap)), "(row col) c h w -> c (row h) (col w)", row=rows
                )[..., : x.shape[0] // rows * (x.shape[-1] + gap) - gap],
            },
        ),
        Exercise(
            ref.pairwise_distances,
            _distance_cases,
            hint="Work one entry out by hand: entry (i, j) compares row i of x with row j of y; a row is at "
            "distance exactly 0 from itself and no distance is nan. Subtract before you square.",
            wrong={
                "squared distances: the square root is missing": lambda x, y: ((x[:, None] - y[None]) ** 2).sum(-1),
                "transposed: y's rows run down the output and x's across": lambda x, y: (
                    ((y[:, None] - x[None]) ** 2).sum(-1).sqrt()
                ),
                "sums the squares over the wrong axis (over rows, not coordinates)": lambda x, y: (
                    ((x[:, None] - y[None]) ** 2).sum(0).sqrt()
                ),
                "expands the square of the difference: in float32 it cancels badly for equal or nearly "
                "equal rows, and can go negative (nan after the root)": _distances_expanded,
                "expands the square of the difference (clamped at 0): in float32 it still cancels badly for "
                "nearly equal rows": _distances_expanded_clamped,
            },
        ),
        Exercise(
            ref.normalise_channels,
            _normalise_cases,
            hint="Compare each channel's mean and standard deviation over images, height and width with 0 and 1 "
            "(dividing by n, not n - 1). No epsilon: a nearly constant channel must reach 1 too.",
            wrong={
                "normalises each image separately instead of each channel over all images": lambda x: (
                    (x - x.mean(dim=(1, 2, 3), keepdim=True)) / x.std(dim=(1, 2, 3), keepdim=True, correction=0)
                ),
                "divides by n - 1 (torch.std's default) instead of n": _std_over_all_but_channel_unbiased,
                "only centres: never divides by the standard deviation": lambda x: (
                    x - x.mean(dim=(0, 2, 3), keepdim=True)
                ),
                "adds an epsilon to the standard deviation": _normalise_std_plus_eps,
                "adds an epsilon to the variance before the square root": _normalise_var_plus_eps,
                "variance as the mean of squares minus the squared mean: in float32 that cancels for a "
                "nearly constant channel": _normalise_one_pass_variance,
            },
        ),
        Exercise(
            ref.one_hot,
            _one_hot_cases,
            hint="Look at the shape (a row per label, a column per class, including classes no label uses) "
            "and the dtype (float32).",
            wrong={
                "int64 instead of float32 (what F.one_hot returns)": lambda labels, k: torch.nn.functional.one_hot(
                    labels, k
                ),
                "bool instead of float32: the comparison is never converted": lambda labels, k: (
                    labels[:, None] == torch.arange(k, device=labels.device)
                ),
                "transposed: a column per label instead of a row": lambda labels, k: (
                    torch.arange(k, device=labels.device)[:, None] == labels[None]
                ).float(),
                "counts the classes from the largest label instead of using num_classes": lambda labels, k: (
                    torch.nn.functional.one_hot(labels, int(labels.max()) + 1).float()
                ),
            },
        ),
        Exercise(
            ref.correct_class_logits,
            _logit_cases,
            hint="One value per example, chosen by that example's label: pair each row's index with its label. "
            "Logits can be -inf or huge, so select the value; don't compute with the others.",
            wrong={
                "indexes only the class axis, so every row gets every label's logit": lambda lg, lb: lg[:, lb],
                "gathers along the batch axis instead of the class axis": lambda lg, lb: lg.gather(0, lb[None])[0],
                "takes each row's largest logit instead of the correct class's": lambda lg, lb: lg.max(dim=-1).values,
                "multiplies by a one-hot mask and sums: -inf times 0 is nan": _logits_by_one_hot_product,
            },
        ),
        Exercise(
            ref.last_token_vectors,
            _last_token_cases,
            hint="One vector per sequence, at the position of its last real token (positions start at 0). The "
            "padding can hold anything, nan included: select the vector, don't compute with the padding.",
            wrong={
                "off by one: takes position lengths[i], the first padding position": lambda r, n: r[
                    torch.arange(len(n)), n
                ],
                "indexes only the position axis, so every sequence gets every length": lambda r, n: r[:, n - 1],
                "always takes the final position, which is padding in shorter sequences": lambda r, n: r[:, -1],
                "multiplies by a one-hot mask over positions and sums: nan padding poisons the sum": (
                    _last_token_by_one_hot_product
                ),
            },
        ),
        Exercise(
            ref.masked_row_mean,
            _masked_mean_cases,
            hint="Divide each row's total by its own number of True entries, and keep the padding (nan, inf) out "
            "of every sum and product: choose entries rather than multiply by the mask; never write into x.",
            # The nan-only patch comes first: on inf padding both it and the plain product give nan,
            # and a learner who patched nan has already passed the nan case.
            wrong={
                "divides by the full row length instead of the number of True entries": lambda x, m: torch.where(
                    m, x, 0.0
                ).mean(dim=-1),
                "zeroes only nan padding, then multiplies by the mask: 0 times inf is nan": (
                    _masked_mean_patching_nan_only
                ),
                "multiplies by the mask: 0 times nan (or inf) is nan": lambda x, m: (x * m).sum(-1) / m.sum(-1),
                "writes zeros into the input in place": _masked_mean_zeroing_input,
            },
        ),
        Exercise(
            ref.pairwise_iou,
            _iou_cases,
            hint="Work out a pair of boxes that are apart both left-right and up-down: their overlap is 0. Then "
            "the union: the overlap lies in both boxes, so count it once. A box with itself scores 1.",
            wrong={
                "clamps the overlap's area, not each side: boxes apart in both directions get a positive "
                "overlap": _iou_clamping_the_area,
                "union as the sum of the areas: the overlap is counted twice": _iou_union_double_counts,
                "divides by the smaller box's area instead of the union": _iou_over_smaller_area,
                "transposed: b's boxes run down the output": lambda a, b: ref.pairwise_iou(b, a),
            },
        ),
        Exercise(
            ref.nearest_neighbours,
            _neighbour_cases,
            hint="Direction, not length: a row and 3 times it are as similar as can be. A row must not pick "
            "itself, even when every other similarity is negative; a row of zeros must not give nan.",
            wrong={
                "inner products without normalising: long rows win whatever their direction": (
                    _neighbours_by_dot_product
                ),
                "does not exclude the row itself, so each row picks itself": lambda x: (x @ x.T).argmax(-1),
                "zeroes the diagonal instead of ruling it out: a row picks itself when every other "
                "similarity is negative": _neighbours_diagonal_zeroed,
                "divides by the norm without guarding zero: a row of zeros gives nan": _neighbours_unclamped_norm,
                "nearest by Euclidean distance instead of by direction": lambda x: (
                    torch.cdist(x, x) + torch.diag(torch.full((len(x),), float("inf")))
                ).argmin(-1),
            },
        ),
        Exercise(
            ref.rank_within_row,
            _rank_cases,
            hint="Think of one entry: its rank is a count of other entries in its row. Which ones? Equal entries "
            "must come out equal, so the count cannot depend on their order. The dtype is int64.",
            wrong={
                "ranks by sorting twice: equal entries get different ranks": lambda x: x.argsort(
                    dim=-1, stable=True
                ).argsort(dim=-1),
                "returns the indices that would sort the row, not each entry's rank": lambda x: x.argsort(dim=-1),
                "counts entries less than or equal: equal entries share the highest rank, from 1": lambda x: (
                    x[:, None, :] <= x[:, :, None]
                ).sum(-1),
                "counts the larger entries, so the largest gets rank 0": lambda x: (x[:, None, :] > x[:, :, None]).sum(
                    -1
                ),
            },
        ),
        Exercise(
            ref.keep_top_k,
            _top_k_cases,
            hint="Find each row's k-th largest value (a threshold per row), then decide each entry against it. "
            "Entries equal to the threshold stay, so more than k may survive. Dropped entries must be -inf, "
            "not 0: a softmax gives 0 probability only to -inf.",
            wrong={
                "keeps exactly the k entries topk returns: ties at the k-th value are dropped": _top_k_scatter,
                "keeps entries strictly above the k-th largest value, which drops the value itself": lambda lg, k: (
                    torch.where(lg > lg.topk(k, -1).values[:, -1:], lg, float("-inf"))
                ),
                "fills the dropped entries with 0 instead of -inf": lambda lg, k: torch.where(
                    lg >= lg.topk(k, -1).values[:, -1:], lg, 0.0
                ),
                "one threshold for the whole batch instead of one per row": lambda lg, k: torch.where(
                    lg >= lg.flatten().topk(k).values[-1], lg, float("-inf")
                ),
            },
        ),
        Exercise(
            ref.segment_mean,
            _segment_cases,
            hint="Sum the rows of each segment, count each segment's rows, divide. The ids are unsorted and some "
            "segments have no rows: their mean must come out 0, not nan, and the output has num_segments "
            "rows whatever ids occur.",
            wrong={
                "divides by a count of 0 for an empty segment: nan": _segment_mean_unclamped,
                "scatter instead of an add: each segment keeps only its last row": _segment_mean_scatter_overwrites,
                "divides every segment by the total number of rows": _segment_mean_divides_by_rows,
                "counts the segments from the largest id, not num_segments": lambda v, ids, n: ref.segment_mean(
                    v, ids, int(ids.max()) + 1
                ),
            },
        ),
        Exercise(
            ref.einsum_trace,
            _square_cases,
            hint="Only the diagonal entries count, added together. A name repeated within one input walks along "
            "the diagonal; a name missing from the output is summed.",
            wrong={
                "sums every entry, not just the diagonal": lambda m: m.sum(),
                "multiplies the diagonal entries instead of adding them": lambda m: m.diagonal().prod(),
            },
        ),
        Exercise(
            ref.einsum_mv,
            _mv_cases,
            hint="Which axis of the matrix pairs with the vector? The name they share is summed, so it is missing "
            "from the output.",
            wrong={
                "multiplies by the transpose of the matrix": lambda m, v: einops.einsum(m, v, "j i, j -> i"),
                "multiplies elementwise and never sums": lambda m, v: m * v,
            },
        ),
        Exercise(
            ref.einsum_mm,
            _mm_cases,
            hint="The axis a and b share is summed away. Check one entry by hand: entry (i, k) combines row i of a "
            "with column k of b.",
            wrong={
                "multiplies by the transpose of b": lambda a, b: einops.einsum(a, b, "i j, k j -> i k"),
                "multiplies in the wrong order (b times a)": lambda a, b: b @ a,
                "multiplies elementwise and never sums": lambda a, b: a * b,
            },
        ),
        Exercise(
            ref.einsum_inner,
            _inner_cases,
            hint="One number comes out: the name both vectors share is summed, and the output has no names.",
            wrong={
                "multiplies elementwise and never sums": lambda u, v: einops.einsum(u, v, "i, i -> i"),
                "sums the products of all pairs of entries (two different names)": lambda u, v: einops.einsum(
                    u, v, "i, j ->"
                ),
            },
        ),
        Exercise(
            ref.einsum_outer,
            _outer_cases,
            hint="Nothing is summed. Entry (i, j) combines u's entry i with v's entry j, with u down the rows.",
            wrong={
                "transposed: v runs down the rows": lambda u, v: einops.einsum(u, v, "i, j -> j i"),
                "multiplies elementwise": lambda u, v: u * v,
            },
        ),
        Exercise(
            ref.einsum_bmm,
            _bmm_cases,
            hint="The batch name appears in both inputs and in the output, so each matrix of a is multiplied only "
            "by its own partner in b.",
            wrong={
                "sums over the batch too (the batch name is missing from the output)": lambda a, b: einops.einsum(
                    a, b, "b i j, b j k -> i k"
                ),
                "different names for the two batch axes: each a meets the sum of all of b": lambda a, b: einops.einsum(
                    a, b, "b i j, c j k -> b i k"
                ),
                "multiplies by the transpose of each matrix of b": lambda a, b: einops.einsum(
                    a, b, "b i j, b k j -> b i k"
                ),
            },
        ),
        Exercise(
            ref.attention_pattern,
            _attention_cases,
            hint="Check a row of the pattern: it sums to 1 over the keys the query may see (real keys at its own "
            "position or before) and is 0 elsewhere, and a query with no such key is all 0, never nan. Then "
            "the scale: the scores are divided by the square root of d_head.",
            wrong={
                "no 1/sqrt(d_head) scale": functools.partial(_attention, scale=False),
                "the causal mask is the wrong way round: queries see later positions, not earlier ones": (
                    functools.partial(_attention, causal="future")
                ),
                "masks the query's own position as well as later ones": functools.partial(_attention, causal="strict"),
                "ignores key_is_real, so queries attend to padding": functools.partial(_attention, use_real=False),
                "fills with -inf and keeps the softmax: a query with no real key gets a row of nan": functools.partial(
                    _attention, zero_empty_rows=False
                ),
                "fills with a large negative number and keeps the softmax: a query with no real key spreads "
                "its weight evenly instead of getting zeros": functools.partial(
                    _attention, fill=-1e9, zero_empty_rows=False
                ),
                "softmax over the queries instead of the keys": lambda q, k, real: _attention(q, k, real).transpose(
                    -1, -2
                ),
            },
        ),
        Exercise(
            ref.conv1d,
            _conv_cases,
            oracle=lambda x, w, stride: torch.nn.functional.conv1d(x, w, stride=stride),
            hint="Compare your output's length with conv1d's: how many windows fit when each starts `stride` "
            "after the last? Then its first entry: kernel times input summed over channels and the window, the "
            "kernel not flipped.",
            wrong={
                "flips the kernel (the convolution of signal processing, not PyTorch's)": _conv_flipped_kernel,
                "loop bound one short: misses the last window": _conv_misses_last_window,
                "reads the weight as (in_channels, out_channels, width)": _conv_weight_read_as_in_out,
                "ignores the stride (a window at every position)": lambda x, w, stride: torch.nn.functional.conv1d(
                    x, w
                ),
            },
        ),
        Exercise(
            ref.conv2d,
            _conv2d_cases,
            oracle=lambda x, w, stride: torch.nn.functional.conv2d(x, w, stride=stride),
            hint="Compare your output's height and width with conv2d's. If only the non-contiguous inputs fail, "
            "look at the strides you give the view: steps in x's own storage, which a transpose or a slice "
            "changes.",
            wrong={
                "builds the windows with the strides of a contiguous tensor: wrong for a transposed input": (
                    _conv2d_assumes_contiguous
                ),
                "flips the kernel (the convolution of signal processing, not PyTorch's)": (
                    lambda x, w, stride: torch.nn.functional.conv2d(x, w.flip(-1, -2), stride=stride)
                ),
                "swaps the kernel's height and width axes": _conv2d_kernel_axes_swapped,
                "applies the stride along the height only": (
                    lambda x, w, stride: torch.nn.functional.conv2d(x, w, stride=(stride, 1))
                ),
            },
        ),
        Exercise(
            ref.logit_attribution,
            _attribution_cases,
            hint="Entry (b, c) involves only example b's correct token: one column of W_U per example. The sum "
            "over components should equal each example's correct-token logit from the summed residual.",
            wrong={
                "uses the first example's token for every example": lambda c, W, t: einops.einsum(
                    c, W[:, t[0]], "b c d, d -> b c"
                ),
                "takes rows of W_U instead of columns (reads it as vocab x d_model)": lambda c, W, t: einops.einsum(
                    c, W[t], "b c d, b d -> b c"
                ),
                "attributes to each example's top-scoring token instead of the correct one": lambda c, W, t: (
                    einops.einsum(c, W[:, (c.sum(1) @ W).argmax(-1)], "b c d, d b -> b c")
                ),
            },
        ),
    ],
)

"""Real image data that needs no download: scikit-learn's bundled handwritten digits.

1,797 grayscale 8x8 scans of the digits 0-9 (the UCI "Optical Recognition of Handwritten Digits"
test set, shipped inside scikit-learn), scaled to [0, 1] and optionally upsampled. The split is
fixed by a seed, so every notebook and test sees the same train, validation and test images.
"""

from functools import cache
from typing import Literal

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

SPLITS = {"train": slice(0, 1437), "val": slice(1437, 1617), "test": slice(1617, 1797)}


@cache
def _all_digits() -> tuple[Tensor, Tensor]:
    from sklearn.datasets import load_digits  # imported here: sklearn costs a second to import

    bunch = load_digits()
    images = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0  # pixel values are 0..16
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    return images[order], torch.tensor(bunch.target)[order]


def digits(
    split: Literal["train", "val", "test"] = "train", size: int = 8
) -> tuple[Float[Tensor, "n 1 size size"], Int[Tensor, " n"]]:
    """The split's images, resized to size x size (bilinear), and their labels 0-9."""
    images, labels = (t[SPLITS[split]] for t in _all_digits())
    if size != 8:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
    return images, labels

"""Plotting helpers shared by the notebooks (plotly: renders in Jupyter, VS Code and offline)."""

from __future__ import annotations

import plotly.express as px
import plotly.graph_objects as go
import torch
from jaxtyping import Float
from torch import Tensor


def imshow(image: Float[Tensor, "*channels height width"], title: str = "", **kwargs) -> go.Figure:
    """Show one image: (H, W) or (1, H, W) in grayscale, (3, H, W) as RGB with values in [0, 1]."""
    image = image.detach().cpu()
    if image.ndim == 3 and image.shape[0] == 1:  # one channel: grayscale
        image = image[0]
    if image.ndim == 3:
        fig = px.imshow(image.permute(1, 2, 0).clamp(0, 1).mul(255).to(torch.uint8).numpy(), title=title, **kwargs)
    else:
        fig = px.imshow(image.numpy(), title=title, color_continuous_scale="gray", **kwargs)
    fig.update_layout(margin=dict(l=10, r=10, t=40 if title else 10, b=10))
    return fig.update_xaxes(showticklabels=False).update_yaxes(showticklabels=False)


def image_grid(
    images: Float[Tensor, "n *channels height width"],
    rows: int,
    titles: list[str] | None = None,
    title: str = "",
    **kwargs,
) -> go.Figure:
    """Show n images (grayscale or RGB in [0, 1]) as a grid with `rows` rows."""
    images = images.detach().cpu()
    if images.ndim == 4 and images.shape[1] == 1:  # one channel: grayscale
        images = images[:, 0]
    if images.ndim == 4:
        images = images.permute(0, 2, 3, 1).clamp(0, 1).mul(255).to(torch.uint8)
    fig = px.imshow(
        images.numpy(),
        facet_col=0,
        facet_col_wrap=-(-len(images) // rows),
        title=title,
        color_continuous_scale="gray",
        binary_string=images.ndim == 3,
        **kwargs,
    )
    for annotation, text in zip(fig.layout.annotations, titles or [""] * len(images)):
        annotation.text = text
    return fig.update_xaxes(showticklabels=False).update_yaxes(showticklabels=False)


def line(curves: dict[str, list[float]], title: str = "", xaxis: str = "step", yaxis: str = "", **kwargs) -> go.Figure:
    """Plot named curves against their index (loss curves, accuracies, ...)."""
    fig = go.Figure([go.Scatter(y=list(ys), name=name, mode="lines") for name, ys in curves.items()])
    return fig.update_layout(title=title, xaxis_title=xaxis, yaxis_title=yaxis, **kwargs)

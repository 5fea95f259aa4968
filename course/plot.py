"""Plotting helpers shared by the notebooks (plotly: renders in Jupyter, VS Code and offline)."""

from __future__ import annotations

import plotly.express as px
import plotly.graph_objects as go
import torch
from jaxtyping import Float
from torch import Tensor


def imshow(image: Float[Tensor, "*channels height width"], title: str = "", **kwargs) -> go.Figure:
    """Show one image: (H, W) as a heatmap, (3, H, W) as RGB with values in [0, 1]."""
    image = image.detach().cpu()
    if image.ndim == 3:
        fig = px.imshow(image.permute(1, 2, 0).clamp(0, 1).mul(255).to(torch.uint8).numpy(), title=title, **kwargs)
    else:
        fig = px.imshow(image.numpy(), title=title, color_continuous_scale="gray", **kwargs)
    fig.update_layout(margin=dict(l=10, r=10, t=40 if title else 10, b=10))
    return fig.update_xaxes(showticklabels=False).update_yaxes(showticklabels=False)

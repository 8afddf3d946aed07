"""The paper's Fig. 1: where the fpn1 self-attention of a few labelled nuclei points."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from nuclei_pa.io.atomic import atomic_path
from nuclei_pa.model.build import NucleusRCNN


@torch.no_grad()
def attention_map(model: NucleusRCNN, image: torch.Tensor, query_mask: np.ndarray) -> np.ndarray:
    """Attention of every fpn1 location to the queried pixels, at image size, scaled to 0..1."""
    if model.pa is None or "0" not in model.pa.attention:
        raise ValueError("attention maps need a pa model with attention on fpn1 (level '0')")
    was_training = model.training
    model.eval()
    try:
        batch, _ = model.transform([image])
        fpn1 = model.backbone(batch.tensors)["0"]
        h, w = fpn1.shape[-2:]
        query = torch.as_tensor(np.asarray(query_mask, dtype=np.float32))[None, None]
        query = F.interpolate(query, size=(h, w), mode="area")[0, 0] > 0
        if not query.any():
            raise ValueError("the query mask covers no fpn1 location")
        amap = model.pa.attention["0"].attention_to(fpn1, query.to(fpn1.device))
        size = batch.image_sizes[0]
        amap = F.interpolate(amap[None, None], scale_factor=4, mode="bilinear")[
            0, 0, : size[0], : size[1]
        ]
        amap = F.interpolate(amap[None, None], size=tuple(image.shape[-2:]), mode="bilinear")[0, 0]
    finally:
        model.train(was_training)
    amap = amap.cpu().numpy()
    span = float(amap.max() - amap.min())
    return (amap - amap.min()) / span if span > 0 else np.zeros_like(amap)


def save_attention_figure(
    image: np.ndarray, query_labels: np.ndarray, amap: np.ndarray, path: str | Path
) -> None:
    """The image with the queried nuclei outlined in colour, beside the attention heat map."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from skimage.segmentation import find_boundaries

    fig, axes = plt.subplots(1, 2, figsize=(8, 4))
    shown = image if image.ndim == 3 else np.stack([image] * 3, -1)
    shown = shown.astype(float) / max(float(shown.max()), 1.0)
    colours = plt.get_cmap("tab10")
    for k, lab in enumerate(np.unique(query_labels[query_labels > 0])):
        shown[find_boundaries(query_labels == lab, mode="outer")] = colours(k % 10)[:3]
    axes[0].imshow(shown)
    axes[0].set_title("queried nuclei")
    axes[1].imshow(amap, cmap="inferno")
    axes[1].set_title("fpn1 self-attention")
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)

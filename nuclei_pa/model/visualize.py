"""The paper's Fig. 1: where the fpn1 self-attention of a few labelled nuclei points."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from nuclei_pa.io.atomic import atomic_path
from nuclei_pa.model.detector import NucleusRCNN


@torch.no_grad()
def attention_map(model: NucleusRCNN, image: torch.Tensor, query_mask: np.ndarray) -> np.ndarray:
    """Attention of the queried pixels' fpn1 locations to every location, at image size, 0..1.

    ``image`` is [3, H, W] in 0..1 as the model takes it; ``query_mask`` a bool [H, W] (e.g. the
    labelled nuclei). Each fpn1 location queries with the fraction of its 4×4 cell in the mask.
    """
    if model.pa is None or "0" not in model.pa.attention:
        raise ValueError("attention maps need a pa model with attention on fpn1 (level '0')")
    query_mask = np.asarray(query_mask, dtype=bool)
    if query_mask.shape != tuple(image.shape[-2:]):
        raise ValueError(f"query mask {query_mask.shape} does not match image {tuple(image.shape)}")
    if not query_mask.any():
        raise ValueError("the query mask selects no pixel")
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        batch, _ = model.transform([image.to(device)])
        fpn1 = model.backbone(batch.tensors)["0"]
        (h, w), padded = batch.image_sizes[0], batch.tensors.shape[-2:]
        query = torch.from_numpy(query_mask).float().to(device)[None, None]
        query = F.interpolate(query, size=(h, w), mode="bilinear", align_corners=False)
        query = F.pad(query, (0, padded[1] - w, 0, padded[0] - h))
        stride = padded[0] // fpn1.shape[-2]
        weights = F.avg_pool2d(query, stride)[0, 0]
        amap = model.pa.attention["0"].attention_to(fpn1, weights)
        amap = F.interpolate(amap[None, None], size=padded, mode="bilinear", align_corners=False)
        amap = F.interpolate(
            amap[..., :h, :w], size=tuple(image.shape[-2:]), mode="bilinear", align_corners=False
        )[0, 0]
    finally:
        model.train(was_training)
    amap = amap.cpu().numpy()
    span = float(amap.max() - amap.min())
    return (amap - amap.min()) / span if span > 0 else np.zeros_like(amap)


def save_attention_figure(
    image: np.ndarray, masks: np.ndarray, amap: np.ndarray, path: str | Path | list[str | Path]
) -> None:
    """The image with the queried nuclei outlined in colour, beside the attention heat map.

    Written as PNG or PDF by suffix; give several paths for several formats.

    ``masks`` is a label image [H, W] (0 = background) or a stack of binary masks [N, H, W].
    """
    import matplotlib
    from matplotlib.figure import Figure
    from skimage.segmentation import find_boundaries

    masks = np.asarray(masks)
    instances = (
        [m.astype(bool) for m in masks]
        if masks.ndim == 3
        else [masks == lab for lab in np.unique(masks[masks > 0])]
    )
    image = np.asarray(image, dtype=float)
    shown = image if image.ndim == 3 else np.stack([image] * 3, -1)
    shown = (shown - shown.min()) / max(float(shown.max() - shown.min()), 1e-12)
    colours = matplotlib.colormaps["tab10"]
    for k, instance in enumerate(instances):
        shown[find_boundaries(instance, mode="outer")] = colours(k % 10)[:3]
    fig = Figure(figsize=(8, 4))
    axes = fig.subplots(1, 2)
    axes[0].imshow(shown)
    axes[0].set_title("queried nuclei")
    axes[1].imshow(amap, cmap="inferno", vmin=0, vmax=1)
    axes[1].set_title("fpn1 self-attention")
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    for target in [path] if isinstance(path, str | Path) else path:
        with atomic_path(target) as tmp:
            fig.savefig(tmp, dpi=120, format=Path(target).suffix.lstrip(".") or "png")

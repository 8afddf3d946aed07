"""Table 2's numbers for one trained model: size, training and inference speed, peak memory."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from nuclei_pa.engine.predict import inference_kwargs, load_model, predict_image
from nuclei_pa.engine.tensors import resolve_device
from nuclei_pa.io.images import list_images, read_image
from nuclei_pa.model import count_parameters


def measure_model(
    checkpoint: str | Path,
    test_images: str | Path,
    train_log: str | Path,
    device: str = "auto",
    max_images: int = 10,
    inference: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Parameters; median training seconds per iteration and peak training memory (from the
    training log); mean inference seconds per image over up to ``max_images`` test images,
    after one warm-up image. ``inference``: the checkpoint's inference settings overridden
    (``load_model``'s), as the model is evaluated with them."""
    dev = resolve_device(device)
    model = load_model(checkpoint, dev, **inference_kwargs(inference))
    paths = list_images(test_images)[: max_images + 1]
    images = [read_image(p) for p in paths]
    predict_image(model, images[0], device=dev)  # warm-up: allocator, kernels
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    tic = time.perf_counter()
    for image in images[1:] or images:
        predict_image(model, image, device=dev)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    infer = (time.perf_counter() - tic) / max(1, len(images[1:] or images))
    log = pd.read_csv(train_log)
    return {
        "parameters": count_parameters(model),
        "train_s_per_iter": float(
            log["seconds"].iloc[1:].median() if len(log) > 1 else log["seconds"].median()
        ),
        "infer_s_per_image": infer,
        "peak_memory_mb": float(log["peak_memory_mb"].max()),
        "device": str(dev) if dev.type == "cpu" else torch.cuda.get_device_name(dev),
    }

"""The paper's starting weights: a Detectron (Caffe2) COCO Mask R-CNN FPN file, in our model.

The authors started from Detectron's COCO-trained Mask R-CNN X-101-64x4d-FPN
(``catalog://Caffe2Detectron/COCO/36494496/e2e_mask_rcnn_X-101-64x4d-FPN_1x`` in their
configuration). Its ``model_final.pkl`` is a pickle of ``{"blobs": {name: numpy array}}`` with
Caffe2 names (``res4_22_branch2b_w``, ``fpn_inner_res3_3_sum_lateral_b``, ``conv_rpn_fpn2_w``,
``_[mask]_fcn1_w``, …). :func:`detectron_state_dict` renames every blob to the torchvision
module it belongs to here and converts what differs:

- Caffe2 affine channels (``*_bn_s``, ``*_bn_b``: batch norm already folded into a scale and a
  bias) become frozen batch norm with mean 0 and variance ``1 − eps``, the same affine map;
- the first convolution's input channels are reversed: Caffe2 models read BGR, ours RGB. Their
  input is 0–255 minus a pixel mean with std 1, so a model on these weights needs ``image_mean``
  = the pixel mean / 255 (RGB order) and ``image_std`` = 1/255 (``config/paper.yaml`` sets both);
- the 81-class COCO predictors (``cls_score``, ``bbox_pred``, ``mask_fcn_logits``) are left out:
  the nucleus model's 2-class predictors start fresh, as in the authors' loader.

The pickle is read by an unpickler that builds numpy arrays and nothing else, so a file that is
not what it claims cannot run code.
"""

from __future__ import annotations

import importlib
import logging
import pickle
import re
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from nuclei_pa.errors import InputError

log = logging.getLogger(__name__)

#: ``init: detectron:x101``: the authors' start (Detectron's model zoo, 12_2017_baselines; the URL
#: is the one their maskrcnn_benchmark paths_catalog.py builds). Detectron publishes no checksum:
#: the SHA-256 of the first download is recorded beside it and checked from then on.
PAPER_WEIGHTS = {
    "x101": (
        "https://dl.fbaipublicfiles.com/detectron/36494496/12_2017_baselines/"
        "e2e_mask_rcnn_X-101-64x4d-FPN_1x.yaml.07_50_11.fkwVtEvg/output/train/"
        "coco_2014_train%3Acoco_2014_valminusminival/generalized_rcnn/model_final.pkl",
        "detectron_e2e_mask_rcnn_X-101-64x4d-FPN_1x.pkl",
    )
}
#: Detectron's own pixel mean (BGR, 0-255), and the authors' for the DH fluorescence data.
DETECTRON_PIXEL_MEAN_BGR = (102.9801, 115.9465, 122.7717)
#: torchvision's FrozenBatchNorm2d default: variance 1 − eps makes its scale exactly the blob's.
FROZEN_BN_EPS = 1e-5
#: Blobs that are class-specific (COCO's 81 classes) and so replaced, not loaded.
REPLACED = ("cls_score_", "bbox_pred_", "mask_fcn_logits_")
#: Blobs that are optimiser or bookkeeping state, or the ImageNet classifier some X-101 files
#: carry (``pred_w``, ``fc1000_w``; the authors' loader renames and drops it too): not weights
#: of a Mask R-CNN.
SKIPPED = re.compile(r"(_momentum$|^weight_order$|^model_iter$|^lr$|^pred_[wb]$|^fc1000_[wb]$)")

_STAGE = {"2": "layer1", "3": "layer2", "4": "layer3", "5": "layer4"}
_BRANCH = {"a": "1", "b": "2", "c": "3"}
_PARAM = {"w": "weight", "b": "bias", "s": "weight"}


def _body(m: re.Match) -> str:
    return f"backbone.body.{_STAGE[m[1]]}.{m[2]}"


#: (pattern, our name) per kind of blob; ``_bn_`` blobs are affine channels (see module doc).
RULES: tuple[tuple[re.Pattern, Callable[[re.Match], str]], ...] = tuple(
    (re.compile(p), f)
    for p, f in (
        (r"^conv1_(w)$", lambda m: "backbone.body.conv1.weight"),
        (r"^res_conv1_bn_([sb])$", lambda m: f"backbone.body.bn1.{_PARAM[m[1]]}"),
        (
            r"^res([2-5])_(\d+)_branch2([abc])_([wb])$",
            lambda m: f"{_body(m)}.conv{_BRANCH[m[3]]}.{_PARAM[m[4]]}",
        ),
        (
            r"^res([2-5])_(\d+)_branch2([abc])_bn_([sb])$",
            lambda m: f"{_body(m)}.bn{_BRANCH[m[3]]}.{_PARAM[m[4]]}",
        ),
        (r"^res([2-5])_(\d+)_branch1_([wb])$", lambda m: f"{_body(m)}.downsample.0.{_PARAM[m[3]]}"),
        (
            r"^res([2-5])_(\d+)_branch1_bn_([sb])$",
            lambda m: f"{_body(m)}.downsample.1.{_PARAM[m[3]]}",
        ),
        (
            r"^fpn_inner_res([2-5])_\d+_sum(?:_lateral)?_([wb])$",
            lambda m: f"backbone.fpn.inner_blocks.{int(m[1]) - 2}.0.{_PARAM[m[2]]}",
        ),
        (
            r"^fpn_res([2-5])_\d+_sum_([wb])$",
            lambda m: f"backbone.fpn.layer_blocks.{int(m[1]) - 2}.0.{_PARAM[m[2]]}",
        ),
        (r"^conv_rpn_fpn2_([wb])$", lambda m: f"rpn.head.conv.0.0.{_PARAM[m[1]]}"),
        (r"^rpn_cls_logits_fpn2_([wb])$", lambda m: f"rpn.head.cls_logits.{_PARAM[m[1]]}"),
        (r"^rpn_bbox_pred_fpn2_([wb])$", lambda m: f"rpn.head.bbox_pred.{_PARAM[m[1]]}"),
        (r"^(fc6|fc7)_([wb])$", lambda m: f"roi_heads.box_head.{m[1]}.{_PARAM[m[2]]}"),
        (
            r"^_\[mask\]_fcn(\d)_([wb])$",
            lambda m: f"roi_heads.mask_head.{int(m[1]) - 1}.0.{_PARAM[m[2]]}",
        ),
        (r"^conv5_mask_([wb])$", lambda m: f"roi_heads.mask_predictor.conv5_mask.{_PARAM[m[1]]}"),
    )
)


def our_name(blob: str) -> str | None:
    """The state-dict key a Detectron blob loads into, or None when no rule knows it."""
    for pattern, name in RULES:
        m = pattern.match(blob)
        if m:
            return name(m)
    return None


class _ArraysOnly(pickle.Unpickler):
    """Unpickles numpy arrays, dtypes and scalars, and refuses any other global."""

    ALLOWED: ClassVar[frozenset[tuple[str, str]]] = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("_codecs", "encode"),  # Python 2 byte strings
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if module.startswith("numpy.core"):
            module = "numpy._core" + module.removeprefix("numpy.core")
        return getattr(importlib.import_module(module), name)


def read_blobs(path: str | Path) -> dict[str, np.ndarray]:
    """The weight blobs of a Detectron ``.pkl`` (``{"blobs": {...}}`` or the blobs directly)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "Detectron weights file not found")
    try:
        with open(path, "rb") as fh:
            data = _ArraysOnly(fh, encoding="latin1").load()
    except pickle.UnpicklingError as exc:
        raise InputError(path, f"not a Detectron weights pickle ({exc})") from exc
    except (EOFError, ValueError, TypeError, AttributeError, ImportError, IndexError) as exc:
        raise InputError(path, f"not a Detectron weights pickle: unreadable ({exc})") from exc
    blobs = data.get("blobs", data) if isinstance(data, dict) else None
    if not isinstance(blobs, dict) or not blobs:
        raise InputError(path, "not a Detectron weights pickle: no 'blobs' mapping")
    return {str(k): v for k, v in blobs.items() if isinstance(v, np.ndarray)}


def detectron_state_dict(
    blobs: dict[str, np.ndarray], source: str | Path = "Detectron weights"
) -> dict[str, torch.Tensor]:
    """Our state dict from Detectron blobs (see module doc); an unknown weight blob is an error
    naming it, since it means another architecture than a Mask R-CNN FPN."""
    state: dict[str, torch.Tensor] = {}
    unknown = []
    for blob, value in sorted(blobs.items()):
        if SKIPPED.search(blob) or blob.startswith(REPLACED):
            continue
        name = our_name(blob)
        if name is None:
            unknown.append(blob)
            continue
        tensor = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
        if blob == "conv1_w":
            tensor = tensor.flip(1)  # BGR → RGB input channels
        state[name] = tensor
        if re.search(r"_bn_s$", blob):  # an affine channel: frozen batch norm of mean 0, var 1
            stats = name.removesuffix("weight")
            state[stats + "running_mean"] = torch.zeros_like(tensor)
            state[stats + "running_var"] = torch.full_like(tensor, 1.0 - FROZEN_BN_EPS)
    if unknown:
        raise InputError(
            source,
            f"{len(unknown)} blob(s) no Mask R-CNN FPN rule knows, e.g. {unknown[:3]} (another "
            "architecture? expected Detectron's e2e_mask_rcnn_*-FPN)",
        )
    return state


def load_detectron(
    model: torch.nn.Module, state: dict[str, torch.Tensor], source: str | Path
) -> None:
    """Load converted weights into ``model``: every converted tensor must exist there with the
    same shape, and every weight of the parts Detectron provides must be covered."""
    own = model.state_dict()
    for name, tensor in state.items():
        if name not in own:
            raise InputError(source, f"weight {name} has no place in this model (backbone?)")
        if own[name].shape != tensor.shape:
            raise InputError(
                source,
                f"{name}: shape {tuple(tensor.shape)} in the file, {tuple(own[name].shape)} in "
                "the model (another backbone, FPN width or head size?)",
            )
    provided = (
        "backbone.",
        "rpn.head.",
        "roi_heads.box_head.",
        "roi_heads.mask_head.",
        "roi_heads.mask_predictor.conv5_mask.",
    )
    missing = [k for k in own if k.startswith(provided) and k not in state]
    if missing:
        raise InputError(source, f"the file lacks {len(missing)} weight(s), e.g. {missing[:3]}")
    model.load_state_dict(state, strict=False)


def resolve(spec: str, cache_dir: str | Path | None = None) -> Path:
    """The local file of ``init: detectron:<spec>``: a path, a URL (downloaded, verified and
    cached), or a name of :data:`PAPER_WEIGHTS`."""
    from nuclei_pa.io.download import RemoteFile, download_file

    if spec in PAPER_WEIGHTS:
        url, filename = PAPER_WEIGHTS[spec]
    elif urllib.parse.urlparse(spec).scheme in ("http", "https", "file"):
        url, filename = spec, Path(urllib.parse.urlparse(spec).path).name or "detectron.pkl"
    else:
        return Path(spec)
    folder = Path(cache_dir) if cache_dir else Path(torch.hub.get_dir()) / "checkpoints"
    return download_file(RemoteFile(url, filename), folder)

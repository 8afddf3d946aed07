"""The YAML settings file of ``nuclei-pa train`` and ``nuclei-pa annotate`` (``--config``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from nuclei_pa.engine.config import TrainConfig
from nuclei_pa.errors import InputError
from nuclei_pa.model import ModelConfig

__all__ = ["read_settings"]


def read_settings(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """A YAML settings file → (model settings incl. ``preset``, train settings).

    Keys may be flat or under ``model:`` / ``train:``; each flat key goes to the configuration
    that has it. Unknown keys are an :class:`InputError` naming the file and the key.
    """
    if not path.is_file():
        raise InputError(path, "file not found")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InputError(path, f"not valid YAML ({exc})") from exc
    doc = doc or {}
    if not isinstance(doc, dict):
        raise InputError(path, "expected a mapping of settings")
    model_fields = {f.name for f in dataclasses.fields(ModelConfig)} | {"preset"}
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    model: dict[str, Any] = {}
    train: dict[str, Any] = {}
    for section, fields, into in (("model", model_fields, model), ("train", train_fields, train)):
        block = doc.pop(section, None) or {}
        if not isinstance(block, dict):
            raise InputError(path, f"'{section}:' must be a mapping")
        for key, value in block.items():
            if key not in fields:
                raise InputError(path, f"unknown {section} setting {key!r}")
            into[key] = value
    for key, value in doc.items():
        if key in model_fields:
            model[key] = value
        elif key in train_fields:
            train[key] = value
        else:
            raise InputError(path, f"unknown setting {key!r} (not a ModelConfig/TrainConfig field)")
    return model, train

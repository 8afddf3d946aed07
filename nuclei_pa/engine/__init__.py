"""Training and prediction engines."""

from nuclei_pa.engine.config import TrainConfig
from nuclei_pa.engine.train import train

__all__ = ["TrainConfig", "train"]

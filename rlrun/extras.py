"""rlrun's optional extras: which one provides a module, and the line that says how to get it."""

from __future__ import annotations

import importlib.util

from rlrun.config import ConfigError

EXTRA_OF_MODULE = {
    "moviepy": "video",
    "pygame": "video",
    "onnx": "export",
    "onnxruntime": "export",
    "onnxscript": "export",
    "envpool": "envpool",
    "ale_py": "atari",
    "cv2": "atari",
    "Box2D": "box2d",
    "transformers": "lm",
    "minari": "minari",
    "h5py": "minari",
    "hydra_plugins.hydra_joblib_launcher": "sweep",
    "hydra_plugins.hydra_submitit_launcher": "sweep",
    "optuna": "sweep",
    "hydra_plugins.hydra_ray_launcher": "ray",
    "tensorboard": "tensorboard",
    "wandb": "wandb",
    "mlflow": "mlflow",
}
"""The rlrun extra (`pip install -e '.[<extra>]'`) that installs each optional module."""


def install_hint(extra: str) -> str:
    """How to install one of rlrun's extras."""
    return f"pip install -e '.[{extra}]' in the rlrun checkout"


def missing(module: str, what: str) -> ConfigError:
    """The one-line error for `what` needing the optional `module`."""
    extra = EXTRA_OF_MODULE.get(module)
    how = install_hint(extra) if extra else f"pip install {module}"
    return ConfigError(f"{what} needs {module}, which is not installed: {how}")


def require(module: str, what: str) -> None:
    """Raise `missing(module, what)` unless `module` can be imported."""
    if (
        importlib.util.find_spec(module.split(".")[0]) is None
        or importlib.util.find_spec(module) is None
    ):
        raise missing(module, what)

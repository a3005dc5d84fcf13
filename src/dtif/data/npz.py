"""Arrays in one .npz file: x_train, y_train, x_test, y_test."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from dtif.errors import DatasetError

KEYS = ("x_train", "y_train", "x_test", "y_test")
LAYOUT = (
    "one .npz with x_train, y_train, x_test, y_test (np.savez); images [N, H, W], "
    "[N, C, H, W] or [N, H, W, C] (C = 1 or 3), uint8 0..255 or float 0..1; labels integer "
    "class indices"
)


def _images(x: np.ndarray, file: Path, key: str) -> np.ndarray:
    """[N, C, H, W] float32 in [0, 1] (uint8 divided by 255)."""
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[1] not in (1, 3) and x.shape[-1] in (1, 3):
        x = x.transpose(0, 3, 1, 2)  # channels last
    if x.ndim != 4 or x.shape[0] == 0:
        raise DatasetError(f"{file}: {key} has shape {list(x.shape)}; expected {LAYOUT}")
    if x.dtype == np.uint8:
        return x.astype(np.float32) / 255.0
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise DatasetError(f"{file}: {key} has dtype {x.dtype}; expected {LAYOUT}")
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise DatasetError(f"{file}: {key} holds NaN or Inf values")
    return x


def _labels(y: np.ndarray, n: int, file: Path, key: str) -> np.ndarray:
    y = y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y
    if y.ndim != 1 or y.shape[0] != n:
        raise DatasetError(f"{file}: {key} has shape {list(y.shape)}; expected [{n}] labels")
    if not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(np.mod(y, 1) == 0):
            return y.astype(np.int64)
        raise DatasetError(
            f"{file}: {key} has dtype {y.dtype}; labels must be integer class indices"
        )
    return y.astype(np.int64)


def load_npz(file: Path) -> dict[str, np.ndarray]:
    """The four arrays, images as [N, C, H, W] float32 in [0, 1], labels int64.

    Raises:
        DatasetError: a missing or unreadable file, a missing array, bad shapes or dtypes.
    """
    if not file.is_file():
        raise DatasetError(f"--data-dir {file} is not a file; --dataset npz takes {LAYOUT}")
    try:
        with np.load(file, allow_pickle=False) as data:
            missing = [k for k in KEYS if k not in data.files]
            if missing:
                raise DatasetError(
                    f"{file} has no {', '.join(missing)} (it has {', '.join(data.files) or 'nothing'}); "
                    f"expected {LAYOUT}"
                )
            arrays = {k: data[k] for k in KEYS}
    except DatasetError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise DatasetError(f"cannot read {file} as .npz ({err}); expected {LAYOUT}") from None
    out = {}
    for split in ("train", "test"):
        x = _images(arrays[f"x_{split}"], file, f"x_{split}")
        out[f"x_{split}"] = x
        out[f"y_{split}"] = _labels(arrays[f"y_{split}"], x.shape[0], file, f"y_{split}")
    return out

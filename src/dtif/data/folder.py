"""Image folders: DIR/train/CLASS/*.png|jpg and DIR/test/CLASS/*, read with Pillow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dtif.errors import DatasetError, InputError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
LAYOUT = "DIR/train/CLASS/*.png|jpg and DIR/test/CLASS/*.png|jpg (the ImageFolder layout)"


def _pillow() -> Any:
    try:
        from PIL import Image
    except ImportError:
        raise InputError(
            "--dataset folder reads images with Pillow, which is not installed: "
            "pip install 'dtif[images]'"
        ) from None
    return Image


def class_names(directory: Path) -> list[str]:
    """The class folders of `directory/train`, sorted.

    Raises:
        DatasetError: no such folder, or no class folders in it.
    """
    train = directory / "train"
    if not train.is_dir():
        raise DatasetError(
            f"{directory} has no train/ folder; a folder dataset is laid out as {LAYOUT}"
        )
    names = sorted(p.name for p in train.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not names:
        raise DatasetError(f"{train} holds no class folders; lay it out as {LAYOUT}")
    return names


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def load_folder_split(
    directory: Path, split: str, classes: list[str], image_size: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """One split as (images [N, C, H, W] float32 in [0, 1], labels [N] int64).

    Images are greyscale (C = 1) when every image of the split is, else RGB (C = 3).

    Raises:
        DatasetError: a missing split folder, an empty or unknown class folder, an unreadable
            image, or images of mixed sizes without `image_size`.
    """
    image_mod = _pillow()
    root = directory / split
    if not root.is_dir():
        raise DatasetError(
            f"{directory} has no {split}/ folder; a folder dataset is laid out as {LAYOUT}"
        )
    present = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    unknown = [c for c in present if c not in classes]
    if unknown:
        raise DatasetError(
            f"{root} has class folders {unknown} that train/ does not have; the classes are "
            f"train/'s: {classes}"
        )
    items: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        folder = root / name
        if not folder.is_dir():
            continue  # a class may be missing from the test split
        files = _files(folder)
        if not files:
            raise DatasetError(
                f"class folder {folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}); "
                "remove it or add images"
            )
        items += [(f, label) for f in files]
    if not items:
        raise DatasetError(f"{root} holds no images; lay it out as {LAYOUT}")
    pictures = []
    for file, _ in items:
        try:
            with image_mod.open(file) as img:
                img.load()
                pictures.append(img.copy())
        except Exception as err:  # noqa: BLE001 - Pillow raises many kinds
            raise DatasetError(f"cannot read image {file} ({type(err).__name__}: {err})") from None
    grey = all(p.mode in ("1", "L", "I", "I;16", "F") for p in pictures)
    sizes = {p.size for p in pictures}
    if image_size is None and len(sizes) > 1:
        raise DatasetError(
            f"{root} holds images of {len(sizes)} sizes (e.g. {sorted(sizes)[:3]} as W x H); "
            "give --image-size N to resize them all to N x N"
        )
    arrays = []
    for img in pictures:
        img = img.convert("L" if grey else "RGB")
        if image_size is not None and img.size != (image_size, image_size):
            img = img.resize((image_size, image_size), image_mod.Resampling.BILINEAR)
        a = np.asarray(img, dtype=np.float32) / 255.0
        arrays.append(a[None] if grey else a.transpose(2, 0, 1))
    labels = np.array([label for _, label in items], dtype=np.int64)
    return np.stack(arrays), labels

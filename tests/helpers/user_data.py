"""The user's own data and model, written by a test: PNG folders, an .npz, a model file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

NUM_CLASSES = 3
SIZE = 12


def class_images(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """[n, SIZE, SIZE] uint8 images whose bright stripe (row band) gives the class."""
    labels = rng.integers(0, NUM_CLASSES, n)
    images = rng.integers(0, 60, (n, SIZE, SIZE)).astype(np.uint8)
    band = SIZE // NUM_CLASSES
    for i, label in enumerate(labels):
        images[i, label * band : (label + 1) * band] += 180
    return images, labels.astype(np.int64)


def write_folder(root: Path, num_train: int = 60, num_test: int = 30, rgb: bool = False) -> Path:
    """root/train/CLASS/*.png and root/test/CLASS/*.png, classes 'a', 'b', 'c'."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", num_train), ("test", num_test)):
        images, labels = class_images(n, rng)
        for i, (img, label) in enumerate(zip(images, labels, strict=True)):
            folder = root / split / "abc"[label]
            folder.mkdir(parents=True, exist_ok=True)
            pic = Image.fromarray(img, mode="L")
            (pic.convert("RGB") if rgb else pic).save(folder / f"{i}.png")
    return root


def write_npz(path: Path, num_train: int = 60, num_test: int = 30, **override: object) -> Path:
    """An .npz with x_train [N, H, W] uint8, y_train, x_test, y_test; `override` replaces or
    (value None) drops arrays."""
    rng = np.random.default_rng(1)
    x_train, y_train = class_images(num_train, rng)
    x_test, y_test = class_images(num_test, rng)
    arrays: dict[str, object] = {
        "x_train": x_train,
        "y_train": y_train,
        "x_test": x_test,
        "y_test": y_test,
    }
    arrays.update(override)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


MODEL_SOURCE = """
import torch
from torch import nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self, num_classes=3, width=4, two_heads=False):
        super().__init__()
        self.two_heads = two_heads
        self.conv1 = nn.Conv2d(1, width, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        a = F.relu6(self.bn1(self.conv1(x)))
        b = F.relu(self.conv2(a))
        logits = self.fc(torch.cat([a, b], 1).mean((2, 3)))
        return (logits, b) if self.two_heads else logits


def make_net(**kwargs):
    return Net(**kwargs)
"""


def write_model_file(path: Path) -> Path:
    path.write_text(MODEL_SOURCE)
    return path


def trained_weights(
    model_file: Path, images: np.ndarray, labels: np.ndarray
) -> dict[str, torch.Tensor]:
    """Train the model file's Net a few steps on the images; its state_dict."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("user_model_for_test", model_file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.manual_seed(0)
    model: nn.Module = module.Net()
    x = torch.from_numpy(images).float()[:, None] / 255.0
    x = (x - x.mean()) / x.std()
    y = torch.from_numpy(labels)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(40):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval().state_dict()

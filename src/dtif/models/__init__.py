"""Model zoo of conversion-friendly ANNs (conv-BN-ReLU, average pooling, fx-traceable)."""

from __future__ import annotations

# Importing the architecture modules registers their variants.
from dtif.models import cnn as _cnn  # noqa: F401
from dtif.models import resnet as _resnet  # noqa: F401
from dtif.models import vgg as _vgg  # noqa: F401
from dtif.models.registry import ModelSpec, create_model, model_names, register_model

__all__ = ["ModelSpec", "create_model", "model_names", "register_model"]

"""NIR export refuses the ops that dtif converts but NIR cannot express, naming each."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dtif
from dtif.errors import UnsupportedOpsError
from dtif.export import export_nir


class CatMeanScale(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 2, 3, padding=1)
        self.conv2 = nn.Conv2d(2, 2, 3, padding=1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.relu6(self.conv1(x))
        b = F.relu(self.conv2(a)) * 2
        return self.fc(torch.cat([a, b], 1).mean((2, 3)))


def test_cat_mean_and_scale_are_refused_with_the_reason() -> None:
    pytest.importorskip("nir")
    x = torch.rand(8, 1, 6, 6)
    snn = dtif.convert(CatMeanScale().eval(), x, neuron=dtif.IF(reset="zero"))
    with pytest.raises(UnsupportedOpsError) as err:
        export_nir(snn)
    text = str(err.value)
    assert "3 node(s)" in text
    for reason in ("no concatenation node", "no mean node", "fold the constant"):
        assert reason in text

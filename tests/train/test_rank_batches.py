"""`rank_batches`: under torchrun every rank takes a share of each training batch, weighted so
that DDP's mean of the ranks' losses is the batch's mean loss."""

from __future__ import annotations

import pytest
import torch

from dtif.train.steps import rank_batches


def test_rank_batches_split_each_batch_and_weight_the_loss() -> None:
    loader = [(torch.arange(n).float()[:, None], torch.arange(n)) for n in (7, 4, 1)]
    for world in (1, 2, 3):
        parts = [list(rank_batches(loader, r, world)) for r in range(world)]
        for step, (_, labels) in enumerate(loader):
            got = torch.cat([parts[r][step][1] for r in range(world)])
            weights = [parts[r][step][2] for r in range(world)]
            assert all(len(parts[r][step][1]) >= 1 for r in range(world))  # every rank steps
            if len(labels) >= world:
                assert torch.equal(got, labels)
            assert sum(weights) == pytest.approx(world)  # DDP's mean = the batch's mean loss

"""Two CPU processes (gloo) give the loss and gradients of one process on the same global batch."""

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from lightly.loss import NTXentLoss

from octbench.losses import supcon_loss

WORLD, LOCAL, VIEWS, DIM = 2, 6, 2, 8


def global_batch():
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(WORLD * LOCAL, VIEWS, DIM, generator=generator)
    labels = torch.randint(0, 3, (WORLD * LOCAL,), generator=generator)
    return features, labels


def losses(features, labels, gather):
    return {"supcon": supcon_loss(features, labels, 0.1, gather_distributed=gather),
            "ntxent": NTXentLoss(temperature=0.1, gather_distributed=gather)(features[:, 0], features[:, 1])}


def worker(rank: int, init_file: str, results) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    features, labels = global_batch()
    for name in ("supcon", "ntxent"):
        local = features[rank * LOCAL:(rank + 1) * LOCAL].clone().requires_grad_(True)
        loss = losses(local, labels[rank * LOCAL:(rank + 1) * LOCAL], gather=True)[name]
        loss.backward()
        results[(name, rank)] = (loss.detach(), local.grad.clone())
    dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")
def test_gathered_losses_and_gradients_equal_the_single_process_ones(tmp_path):
    manager = mp.Manager()
    results = manager.dict()
    mp.spawn(worker, args=(str(tmp_path / "init"), results), nprocs=WORLD, join=True)
    features, labels = global_batch()
    for name in ("supcon", "ntxent"):
        whole = features.clone().requires_grad_(True)
        loss = losses(whole, labels, gather=False)[name]
        loss.backward()
        # Each process's loss is the mean over its own anchors; DDP averages gradients over processes.
        mean_loss = sum(results[(name, r)][0] for r in range(WORLD)) / WORLD
        torch.testing.assert_close(mean_loss, loss.detach())
        for rank in range(WORLD):
            torch.testing.assert_close(results[(name, rank)][1] / WORLD, whole.grad[rank * LOCAL:(rank + 1) * LOCAL])

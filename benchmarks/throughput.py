"""Throughput benchmark: prints each figure measured in one run on this machine, and writes results/perf.md.

    python benchmarks/throughput.py [--steps 20] [--out results/perf.md]

Figures (ratios are measured in the same run, since shared machines are noisy):
  1. model-only training throughput (random tensors) against end-to-end pretraining (Lightning,
     cohort in memory, views made on the device), and their ratio;
  2. views per second per core: a per-sample PIL pipeline as the official code builds it (decode a
     .tif, RandomResizedCrop 224, flip, ColorJitter, Normalize) against octbench's batched views;
  3. the default probe (logistic regression per biomarker) against the paper's 25-epoch SGD linear
     head on the same frozen features, time and mean AUROC of each;
  4. peak resident memory of `octbench run --method clinical-supcon` on the default benchmark;
  5. on a GPU: ResNet-18 and ResNet-50 at 224 px, fp32 against bf16 + channels-last.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from lightly.loss import NTXentLoss
from lightly.models.modules import SimCLRProjectionHead
from PIL import Image
from torchvision import transforms

from octbench.augment import OCT_MEAN, OCT_STD, ViewAugmentation, to_normalized_float
from octbench.backbone import create_backbone
from octbench.benchmark import load_benchmark
from octbench.evaluate import extract_features, linear_probe, sgd_linear_probe
from octbench.method import Method, MethodOptions
from octbench.registry import get_method
from octbench.run import load_cohort
from octbench.training import InMemoryBatches, pretrain


def model_only_images_per_s(size: int, batch: int, steps: int, device: str, bf16: bool = False,
                            channels_last: bool = True, backbone: str = "resnet18") -> float:
    """SimCLR's forward and backward on random tensors: the ceiling for the training loop."""
    model, dim = create_backbone(backbone)
    head = SimCLRProjectionHead(dim, 512, 128)
    net = torch.nn.Sequential(model, head).to(device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=fmt)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
    criterion = NTXentLoss(temperature=0.1)
    x = torch.randn(2 * batch, 1, size, size, device=device).contiguous(memory_format=fmt)

    def step():
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):
            z = net(x).float()
            loss = criterion(z[:batch], z[batch:])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(2):  # warm-up: allocator, kernels
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return 2 * batch * steps / (time.perf_counter() - start)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def end_to_end_images_per_s(benchmark, cohort, steps: int) -> float:
    """octbench's own pretraining of simclr on the default pool, views counted as in model-only."""
    cls = get_method("simclr")
    backbone, dim = create_backbone(benchmark.backbone)
    method = cls(backbone, dim, MethodOptions())
    rows = cohort.part("pool")
    data = InMemoryBatches(cohort.images_of(rows), np.zeros((len(rows), 0), dtype=np.int64))
    spec = dataclasses.replace(benchmark.pretrain, steps=steps + 2)
    with tempfile.TemporaryDirectory() as work:
        start = time.perf_counter()
        pretrain(method, data, spec, seed=0, work_dir=Path(work), progress=False)
        elapsed = time.perf_counter() - start
    return 2 * spec.batch_size * spec.steps / elapsed


def pil_views_per_s(n: int) -> float:
    """The official code's per-sample path: decode a 496x504 8-bit .tif, then torchvision on PIL."""
    rng = np.random.default_rng(0)
    blobs = []
    for _ in range(16):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (496, 504), dtype=np.uint8)).save(buffer, format="TIFF")
        blobs.append(buffer.getvalue())
    pipeline = transforms.Compose([
        transforms.RandomResizedCrop(224, scale=(0.2, 1.0)), transforms.RandomHorizontalFlip(),
        transforms.RandomApply([transforms.ColorJitter(0.4, 0.4)], p=0.8), transforms.ToTensor(),
        transforms.Normalize([OCT_MEAN], [OCT_STD])])
    start = time.perf_counter()
    for i in range(n):
        pipeline(Image.open(io.BytesIO(blobs[i % len(blobs)])).convert("L"))
    return n / (time.perf_counter() - start)


def octbench_views_per_s(n: int, batch: int = 128) -> float:
    """octbench's path: uint8 cache rows at 224 px to normalised views, a batch at a time."""
    images = torch.randint(0, 256, (batch, 224, 224), dtype=torch.uint8)
    augmentation = ViewAugmentation()
    augmentation(to_normalized_float(images))
    start = time.perf_counter()
    for _ in range(max(1, n // batch)):
        augmentation(to_normalized_float(images))
    return max(1, n // batch) * batch / (time.perf_counter() - start)


def probe_comparison(benchmark, cohort) -> dict:
    """Both probes on the same frozen features (a random-init ResNet-18: the probes, not the encoder, are timed)."""
    torch.manual_seed(0)
    backbone, dim = create_backbone(benchmark.backbone)
    encoder = Method(backbone, dim, MethodOptions())
    rows = {s: cohort.part(s) for s in ("train", "val", "test")}
    features = {s: extract_features(encoder, cohort.images_of(r)) for s, r in rows.items()}
    labels = {s: cohort.biomarkers_of(r) for s, r in rows.items()}
    from sklearn.metrics import roc_auc_score
    result = {}
    for name, probe in (("default (logistic regression per biomarker)", linear_probe),
                        ("paper (25-epoch SGD linear head)", sgd_linear_probe)):
        start = time.perf_counter()
        scores, _ = probe(features, labels, seed=0)
        elapsed = time.perf_counter() - start
        auroc = np.mean([roc_auc_score(labels["test"][:, j], scores[:, j]) for j in range(scores.shape[1])])
        result[name] = (elapsed, auroc)
    return result


def peak_memory_gb(steps: int) -> float:
    """Peak RSS of a real `octbench run` (shorter schedule: the peak comes from data and model, not steps)."""
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([sys.executable, "-m", "octbench.cli", "run", "--method", "clinical-supcon", "--steps",
                        str(steps), "--out", out, "--no-progress"], check=True, capture_output=True)
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2  # kB -> GB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20, help="training steps per throughput figure")
    parser.add_argument("--out", type=Path, default=Path("results/perf.md"))
    args = parser.parse_args()
    benchmark = load_benchmark("default")
    cohort = load_cohort(benchmark, None)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    machine = torch.cuda.get_device_name() if device == "cuda" else f"{platform.processor() or 'CPU'}, " \
                                                                     f"{torch.get_num_threads()} threads"
    lines = [f"# octbench throughput on {machine}", "",
             f"torch {torch.__version__}; default benchmark ({benchmark.cohort.image_size} px, "
             f"batch {benchmark.pretrain.batch_size}, {benchmark.backbone}); `python benchmarks/throughput.py`.", ""]

    def report(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    size, batch = benchmark.cohort.image_size, benchmark.pretrain.batch_size
    model_only = model_only_images_per_s(size, batch, args.steps, device, bf16=device == "cuda")
    end_to_end = end_to_end_images_per_s(benchmark, cohort, args.steps)
    report(f"- model-only training: {model_only:.0f} views/s; end-to-end pretraining: {end_to_end:.0f} views/s; "
           f"ratio {end_to_end / model_only:.2f} (target >= 0.9)")

    torch.set_num_threads(1)  # per core
    pil, ours = pil_views_per_s(200), octbench_views_per_s(1024)
    report(f"- views/s per core at 224 px: per-sample PIL/.tif pipeline {pil:.0f}, octbench batched {ours:.0f}; "
           f"ratio {ours / pil:.1f}x (target >= 3x)")
    torch.set_num_threads(max(1, torch.get_num_interop_threads()))

    probes = probe_comparison(benchmark, cohort)
    (t_default, a_default), (t_paper, a_paper) = probes.values()
    report(f"- probes on the same frozen features: default {t_default:.1f} s (mean AUROC {a_default:.3f}), "
           f"paper's 25-epoch SGD head {t_paper:.1f} s (mean AUROC {a_paper:.3f}); speed-up {t_paper / t_default:.1f}x "
           f"(target >= 20x), AUROC difference {a_default - a_paper:+.3f} (target within 0.01)")

    peak = peak_memory_gb(args.steps)
    report(f"- peak resident memory of `octbench run --method clinical-supcon` (default benchmark, "
           f"{args.steps} steps): {peak:.2f} GB (target <= 3 GB)")

    if device == "cuda":
        for name in ("resnet18", "resnet50"):
            fp32 = model_only_images_per_s(224, 128, args.steps, device, bf16=False, channels_last=False, backbone=name)
            fast = model_only_images_per_s(224, 128, args.steps, device, bf16=True, channels_last=True, backbone=name)
            report(f"- {name} at 224 px on {machine}: fp32 {fp32:.0f} views/s, bf16 + channels-last {fast:.0f} views/s "
                   f"({fast / fp32:.2f}x)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()

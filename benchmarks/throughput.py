"""Throughput benchmark: prints each figure measured in one run on this machine, and writes results/perf.md.

    python benchmarks/throughput.py [--steps 40] [--encoder results/runs/<run>/backbone.pt]
    python benchmarks/throughput.py --gpu-only --size 224 --backbones resnet18 resnet50 \
        --pretrain-like olives --pretrain-steps 300 --out results/perf-gpu.md   (benchmarks/gpu_check.sh)

Figures (ratios are measured in the same run, since shared machines are noisy):
  1. model-only training throughput (random tensors) against end-to-end pretraining over the
     benchmark's whole schedule (Lightning, cohort in memory, views made on the device, checkpoints
     and logging), steady state and with the trainer's start-up, and their ratios;
  2. views per second per core: a per-sample PIL pipeline as the official code builds it (decode a
     .tif, RandomResizedCrop 224, flip, ColorJitter, Normalize) against octbench's batched views;
  3. the default probe (features extracted once, logistic regression per biomarker) against the
     paper's 25-epoch linear protocol (the frozen encoder forwards augmented B-scans every epoch, an
     SGD linear head), on the same encoder and cohort: time and mean test AUROC of each;
  4. peak resident memory of `octbench run --method clinical-supcon` on the default benchmark;
  5. on a GPU: each of --backbones at --size px (default ResNet-18 and ResNet-50 at 224), fp32 against
     bf16 + channels-last, and a short real pretraining at that size (the cohort upsampled) against
     model-only, with the pretraining settings (backbone, batch, optimiser) of --pretrain-like.
--gpu-only leaves out figures 1-4.
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
import pytorch_lightning as pl
import torch
from lightly.loss import NTXentLoss
from lightly.models.modules import SimCLRProjectionHead
from PIL import Image
from torchvision import transforms

from octbench.augment import OCT_MEAN, OCT_STD, ViewAugmentation, to_normalized_float
from octbench.backbone import create_backbone
from octbench.benchmark import load_benchmark
from octbench.evaluate import extract_features, linear_probe
from octbench.method import Method, MethodOptions
from octbench.registry import get_method
from octbench.sources import load_cohort
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


class StepClock(pl.Callback):
    """Wall time at the end of every training step: the steady-state rate leaves out start-up."""

    def __init__(self):
        self.times = []

    def on_train_batch_end(self, *args) -> None:
        self.times.append(time.perf_counter())


def end_to_end_images_per_s(benchmark, images: np.ndarray) -> tuple[float, float]:
    """octbench's own pretraining of simclr on `images` for the benchmark's whole schedule
    (Lightning, its checkpoints every tenth of the run, logging, views made batched on the device;
    a shorter run would checkpoint more often than a real one), views counted as in model-only:
    steady state after 5 steps, and the whole call including the trainer's start-up."""
    cls = get_method("simclr")
    backbone, dim = create_backbone(benchmark.backbone)
    method = cls(backbone, dim, MethodOptions())
    data = InMemoryBatches(images, np.zeros((len(images), 0), dtype=np.int64))
    spec = benchmark.pretrain
    clock = StepClock()
    with tempfile.TemporaryDirectory() as work:
        start = time.perf_counter()
        pretrain(method, data, spec, seed=0, work_dir=Path(work), progress=False, callbacks=[clock])
        whole = 2 * spec.batch_size * spec.steps / (time.perf_counter() - start)
    steady = 2 * spec.batch_size * (spec.steps - 5) / (clock.times[-1] - clock.times[4])
    return steady, whole


def upsampled(images: np.ndarray, size: int) -> np.ndarray:
    """The cohort's B-scans resized to `size` px: a 224 px pool for the GPU figure without
    rendering a new cohort (throughput does not depend on what the pixels show)."""
    out = [torch.nn.functional.interpolate(torch.from_numpy(chunk).float()[:, None], size=(size, size),
                                           mode="bilinear", align_corners=False).round().clamp(0, 255).byte()[:, 0]
           for chunk in np.array_split(images, max(1, len(images) // 512))]
    return torch.cat(out).numpy()


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


def octbench_views_per_s(n: int, augmentation: ViewAugmentation, batch: int = 128) -> float:
    """octbench's path: uint8 cache rows at 224 px to normalised views, a batch at a time."""
    images = torch.randint(0, 256, (batch, 224, 224), dtype=torch.uint8)
    augmentation(to_normalized_float(images))
    start = time.perf_counter()
    for _ in range(max(1, n // batch)):
        augmentation(to_normalized_float(images))
    return max(1, n // batch) * batch / (time.perf_counter() - start)


def paper_linear_protocol(encoder, cohort, epochs: int = 25, lr: float = 0.01, batch_size: int = 64) -> np.ndarray:
    """The seed paper's linear stage as its code runs it: every epoch the training B-scans go through
    the frozen encoder again (RandomResizedCrop and flip, as its linear-stage transform), and one
    multi-label linear head takes an SGD step per batch; test scores after the last epoch (the
    paper has no validation split: one learning rate)."""
    generator = torch.Generator().manual_seed(0)
    train = torch.from_numpy(cohort.images_of(cohort.part("train")))
    y = torch.from_numpy(cohort.biomarkers_of(cohort.part("train"))).float()
    views = ViewAugmentation(jitter_prob=0.0, blur_prob=0.0)
    head = torch.nn.Linear(encoder.feature_dim, y.shape[1])
    optimizer = torch.optim.SGD(head.parameters(), lr=lr, momentum=0.9)
    encoder.eval()
    for _ in range(epochs):
        for rows in torch.randperm(len(y), generator=generator).split(batch_size):
            with torch.no_grad():
                x = views(to_normalized_float(train[rows])).contiguous(memory_format=torch.channels_last)
                features = encoder.encode(x).flatten(1)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(head(features), y[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    test = extract_features(encoder, cohort.images_of(cohort.part("test")))
    with torch.no_grad():
        return head(torch.from_numpy(test)).numpy()


def probe_comparison(benchmark, cohort, encoder_file: Path | None) -> dict:
    """Time and mean test AUROC of octbench's default probe (features of train/val/test extracted
    once, a logistic regression per biomarker with C chosen on validation) against the paper's
    25-epoch protocol, on the same encoder and cohort."""
    from sklearn.metrics import roc_auc_score

    torch.manual_seed(0)
    backbone, dim = create_backbone(benchmark.backbone)
    if encoder_file:
        backbone.load_state_dict(torch.load(encoder_file, map_location="cpu", weights_only=True))
    encoder = Method(backbone, dim, MethodOptions())
    test_labels = cohort.biomarkers_of(cohort.part("test"))

    def mean_auroc(scores):
        return np.mean([roc_auc_score(test_labels[:, j], scores[:, j]) for j in range(scores.shape[1])])

    start = time.perf_counter()
    rows = {s: cohort.part(s) for s in ("train", "val", "test")}
    features = {s: extract_features(encoder, cohort.images_of(r)) for s, r in rows.items()}
    scores, _ = linear_probe(features, {s: cohort.biomarkers_of(r) for s, r in rows.items()},
                             benchmark.evaluate.probe_c, seed=0)
    ours = (time.perf_counter() - start, mean_auroc(scores))
    start = time.perf_counter()
    scores = paper_linear_protocol(encoder, cohort)
    paper = (time.perf_counter() - start, mean_auroc(scores))
    return {"default": ours, "paper": paper}


def peak_memory_gb(steps: int) -> float:
    """Peak RSS of a real `octbench run` (shorter schedule: the peak comes from data and model, not steps)."""
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([sys.executable, "-m", "octbench.cli", "run", "--method", "clinical-supcon", "--steps",
                        str(steps), "--out", out, "--no-progress"], check=True, capture_output=True)
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2  # kB -> GB


def gpu_figures(args, benchmark, pool: np.ndarray, machine: str, report, device: str = "cuda") -> None:
    """Figure 5: model-only fp32 against bf16 + channels-last per backbone, and a short real pretraining
    at --size px with --pretrain-like's pretraining settings against model-only at that batch. (The
    test suite runs it on a CPU, cut down, to check the script before a GPU does.)"""
    for name in args.backbones:
        fp32 = model_only_images_per_s(args.size, args.gpu_batch, args.steps, device, bf16=False, channels_last=False,
                                       backbone=name)
        fast = model_only_images_per_s(args.size, args.gpu_batch, args.steps, device, bf16=True, channels_last=True,
                                       backbone=name)
        report(f"- {name} at {args.size} px, batch {args.gpu_batch}, on {machine}: fp32 {fp32:.0f} views/s, "
               f"bf16 + channels-last {fast:.0f} views/s ({fast / fp32:.2f}x)")
    like = load_benchmark(args.pretrain_like)
    spec = dataclasses.replace(like.pretrain, steps=args.pretrain_steps or like.pretrain.steps)
    setting = dataclasses.replace(benchmark, backbone=like.backbone, pretrain=spec)
    model_only = model_only_images_per_s(args.size, spec.batch_size, args.steps, device, bf16=True,
                                         backbone=like.backbone)
    images = upsampled(pool, args.size)
    start = time.perf_counter()
    steady, _ = end_to_end_images_per_s(setting, images)
    report(f"- a short real pretraining at {args.size} px ({like.name}'s settings: octbench simclr, {like.backbone}, "
           f"batch {spec.batch_size}, {spec.optimizer}, {spec.steps} steps, bf16 + channels-last, views on the GPU; "
           f"{len(images)} simulated B-scans upsampled): {steady:.0f} views/s steady state; model-only "
           f"{model_only:.0f}; ratio {steady / model_only:.2f}; {time.perf_counter() - start:.0f} s in all")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40, help="steps of each model-only figure and of the memory "
                                                              "run (end-to-end runs the benchmark's schedule)")
    parser.add_argument("--out", type=Path, default=Path("results/perf.md"))
    parser.add_argument("--encoder", type=Path, help="backbone.pt of a run for the probe comparison "
                                                    "(default: a random-init ResNet-18)")
    parser.add_argument("--gpu-only", action="store_true", help="only the GPU figures (5); refused without a GPU")
    parser.add_argument("--size", type=int, default=224, help="image size of the GPU figures (default 224)")
    parser.add_argument("--backbones", nargs="+", default=["resnet18", "resnet50"],
                        help="timm backbones of the GPU model-only figures (default: resnet18 resnet50)")
    parser.add_argument("--gpu-batch", type=int, default=128, help="batch of the GPU model-only figures (default 128)")
    parser.add_argument("--pretrain-like", default="default",
                        help="benchmark whose pretraining settings (backbone, batch, optimiser, lr) the GPU "
                             "pretraining uses, e.g. olives (default: default)")
    parser.add_argument("--pretrain-steps", type=int,
                        help="steps of the GPU pretraining (default: that benchmark's own schedule)")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.gpu_only and device != "cuda":
        sys.exit("throughput: --gpu-only needs a GPU, and torch sees none")
    benchmark = load_benchmark("default")
    cohort = load_cohort(benchmark, None)
    threads = torch.get_num_threads()
    machine = torch.cuda.get_device_name() if device == "cuda" else f"{platform.processor() or 'CPU'}, " \
                                                                     f"{torch.get_num_threads()} threads"
    lines = [f"# octbench throughput on {machine}", "",
             f"torch {torch.__version__}; default benchmark ({benchmark.cohort.image_size} px, "
             f"batch {benchmark.pretrain.batch_size}, {benchmark.backbone}); `python benchmarks/throughput.py`.", ""]

    def report(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    pool = cohort.images_of(cohort.part("pool"))
    if args.gpu_only:
        lines[2] = f"torch {torch.__version__}; `python benchmarks/throughput.py --gpu-only` (benchmarks/gpu_check.sh)."
        gpu_figures(args, benchmark, pool, machine, report)
        write(args.out, lines)
        return
    size, batch = benchmark.cohort.image_size, benchmark.pretrain.batch_size
    # Model-only is measured before and after the end-to-end run and averaged, so that a machine
    # that speeds up or slows down during the measurement does not bias the ratio.
    before = model_only_images_per_s(size, batch, args.steps, device, bf16=device == "cuda")
    steady, whole = end_to_end_images_per_s(benchmark, pool)
    after = model_only_images_per_s(size, batch, args.steps, device, bf16=device == "cuda")
    model_only = (before + after) / 2
    report(f"- model-only training (SimCLR, random tensors): {model_only:.0f} views/s (before {before:.0f}, after "
           f"{after:.0f}); end-to-end pretraining (octbench simclr, its {benchmark.pretrain.steps}-step schedule, "
           f"steps 5 on): {steady:.0f} views/s steady state, ratio "
           f"{steady / model_only:.2f} (target >= 0.9); {whole:.0f} views/s counting the trainer's start-up, "
           f"ratio {whole / model_only:.2f}")

    torch.set_num_threads(1)  # per core
    pil = pil_views_per_s(300)
    same_ops = octbench_views_per_s(1024, ViewAugmentation(blur_prob=0.0))
    default_ops = octbench_views_per_s(1024, ViewAugmentation())
    report(f"- views/s per core at 224 px: per-sample PIL/.tif pipeline (decode, crop, flip, jitter) {pil:.0f}; "
           f"octbench batched, same operations {same_ops:.0f} ({same_ops / pil:.1f}x), with its default blur "
           f"{default_ops:.0f} ({default_ops / pil:.1f}x) (target >= 3x)")
    torch.set_num_threads(threads)

    probes = probe_comparison(benchmark, cohort, args.encoder)
    (t_default, a_default), (t_paper, a_paper) = probes["default"], probes["paper"]
    encoder = args.encoder or "a random-init ResNet-18"
    report(f"- probes on the same encoder ({encoder}): default (features once + logistic regression) "
           f"{t_default:.1f} s, mean AUROC {a_default:.3f}; paper's 25-epoch linear protocol (encoder forward "
           f"every epoch) {t_paper:.1f} s, mean AUROC {a_paper:.3f}; speed-up {t_paper / t_default:.1f}x "
           f"(target >= 20x), AUROC difference {a_default - a_paper:+.3f} (target within 0.01)")

    peak = peak_memory_gb(args.steps)
    report(f"- peak resident memory of `octbench run --method clinical-supcon` (default benchmark, "
           f"{args.steps} steps): {peak:.2f} GB (target <= 3 GB)")

    if device == "cuda":
        gpu_figures(args, benchmark, pool, machine, report)
    write(args.out, lines)


def write(out: Path, lines: list[str]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(f"written: {out}")


if __name__ == "__main__":
    main()

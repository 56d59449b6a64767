#!/usr/bin/env bash
# The checks only a GPU can make, in one script of at most ~8 minutes on one H100-class GPU; writes
# results/perf-gpu.md (or the file given as $1). Run it from the repository root, octbench installed:
#
#     bash benchmarks/gpu_check.sh
#
#  1. benchmarks/throughput.py --gpu-only: ResNet-18 and ResNet-50 at 224 px, fp32 against
#     bf16 + channels-last (model-only), and a short OLIVES-sized pretraining (the olives benchmark's
#     backbone, batch and optimiser, 300 steps) on the simulated cohort upsampled to 224 px;
#  2. when two GPUs are present, a 2-GPU DDP `octbench run` against the same run on one GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-results/perf-gpu.md}
if ! python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: torch sees no GPU; nothing measured" >&2
    exit 1
fi
gpus=$(python -c "import torch; print(torch.cuda.device_count())")
echo "gpu_check: $gpus GPU(s): $(python -c "import torch; print(torch.cuda.get_device_name())")"

timeout 360 python benchmarks/throughput.py --gpu-only --size 224 --backbones resnet18 resnet50 --steps 30 \
    --pretrain-like olives --pretrain-steps 300 --out "$out"

# DDP: the default benchmark's simclr run (64 px, global batch 128) on one GPU and on two; the
# global batch is shared, so both make the same run and the mean AUROC should agree closely.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ddp_run() {  # devices, folder -> "seconds mean_auroc"
    local start end
    start=$(date +%s)
    timeout 150 octbench run --method simclr --devices "$1" --out "$2" --no-progress \
        > "$2.log" 2>&1 || { echo "gpu_check: the $1-GPU run failed; see its log:" >&2; tail -20 "$2.log" >&2; return 1; }
    end=$(date +%s)
    echo "$((end - start)) $(grep -E '^mean ' "$2.log" | awk '{print $2}')"
}
if [ "$gpus" -ge 2 ]; then
    one=$(ddp_run 1 "$work/one")
    two=$(ddp_run 2 "$work/two")
    read -r one_s one_auroc <<< "$one"
    read -r two_s two_auroc <<< "$two"
    echo "- 2-GPU DDP (octbench run --method simclr --devices 2, default benchmark, 120 steps, global batch 128):" \
         "${two_s} s, mean AUROC ${two_auroc}; on one GPU ${one_s} s, mean AUROC ${one_auroc}" | tee -a "$out"
else
    echo "- 2-GPU DDP: not run (one GPU on this machine)" | tee -a "$out"
fi
echo "gpu_check: written $out"

#!/usr/bin/env bash
# The GPU check of the trainer (issue 5), as one command for the `device` tool (see DEVELOPERS.md):
# tic train against open_clip_train on one GPU, ViT-B-32 at 224 px, bf16 autocast, same shards.
# Prepare here first (no network there): the data, a world folder after `tic evalsets`, copied into
# out/bench-gpu (its manifest.json, manifest/ and train/shards/, about 30 MB), and the wheels the
# device's image lacks in .whl/ (polars, open_clip_torch, ftfy, webdataset, braceexpand, wcwidth;
# see the device README for `pip download`); then run, carrying out/bench-gpu and .whl:
#   bash scripts/device_bench_train.sh
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
# the repo runs from its folder: ticdata from $PWD, the trainer's folder train/ as the package tic_train
ln -sfn "$PWD/train" /tmp/site/tic_train
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv
python3 scripts/bench_train.py --data out/bench-gpu --model ViT-B-32 --precision bf16 --device cuda \
    --batch-size 256 --samples 51200 --workers 14 --repeats 3 --log-every 20 2>&1 | tee "${OUT:-/tmp}/bench_train_gpu.txt"

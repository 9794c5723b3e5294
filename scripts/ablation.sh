#!/usr/bin/env bash
# Ablation: image-only, landmarks-only and fused models, each trained with the same budget
# (epochs, batch size, schedule, seed, augmentation), compared on the same PrivateTest faces.
#   scripts/ablation.sh CACHE [EPOCHS] [FUSION]   -> runs/ablation<EPOCHS>_<name>/, runs/ablation<EPOCHS>.json and .png
# A stopped run continues where it was (every training resumes from its last checkpoint).
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
CACHE="${1:?usage: scripts/ablation.sh CACHE [EPOCHS] [FUSION]}"
EPOCHS="${2:-40}"
FUSION="${3:-guided}"
OUT="runs/ablation${EPOCHS}"
for mode in landmarks image fused; do
  python train.py --data "$CACHE" --out "${OUT}_${mode}" --mode "$mode" --fusion "$FUSION" --epochs "$EPOCHS" \
    --patience "$EPOCHS" --no-progress --resume  # no early stop: every model gets every epoch
done
python -m fusion_fer.research.ablation --data "$CACHE" --baseline image \
  --run "image=${OUT}_image" --run "landmarks=${OUT}_landmarks" --run "fused=${OUT}_fused" \
  --json "${OUT}.json" --plot "${OUT}.png"

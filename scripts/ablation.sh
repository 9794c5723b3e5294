#!/usr/bin/env bash
# Ablation: image-only, landmarks-only and fused models, each trained with the same budget
# (epochs, batch size, schedule, seed), then evaluated on PrivateTest.
#   scripts/ablation.sh CACHE [EPOCHS]      -> runs/ablation_<mode>/ and runs/ablation.json
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
CACHE="${1:?usage: scripts/ablation.sh CACHE [EPOCHS]}"
EPOCHS="${2:-8}"
for mode in landmarks image fused; do
  python train.py --data "$CACHE" --out "runs/ablation_${mode}" --mode "$mode" --epochs "$EPOCHS" \
    --patience "$EPOCHS" --no-progress --resume
  python -m fusion_fer.evaluate --run "runs/ablation_${mode}" --data "$CACHE" --json "runs/ablation_${mode}/metrics.json"
done
python - "$EPOCHS" <<'PY'
import json, sys
rows = {m: json.load(open(f"runs/ablation_{m}/metrics.json")) for m in ("image", "landmarks", "fused")}
out = {"epochs": int(sys.argv[1]), "split": "PrivateTest",
       **{m: {"accuracy_with_flip": r["with_flip"]["accuracy"], "accuracy_without_flip": r["without_flip"]["accuracy"],
              "macro_f1": r["with_flip"]["macro_f1"]} for m, r in rows.items()}}
out["fused_minus_image"] = round(out["fused"]["accuracy_with_flip"] - out["image"]["accuracy_with_flip"], 4)
json.dump(out, open("runs/ablation.json", "w"), indent=2)
print(json.dumps(out, indent=2))
PY

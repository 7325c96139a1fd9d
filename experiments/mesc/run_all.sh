#!/usr/bin/env bash
# The MESC recipe end to end (issue 14): SFT, GRPO with the paper's reward, GRPO on trust alone, the paper's reward
# again with a 5x KL coefficient, then `mmrl eval` of the untrained, SFT and the three GRPO policies on the same 200
# seeded MESC test turns (greedy: the figures `mmrl compare` would give) and the summary. Training stages resume.
# Usage: experiments/mesc/run_all.sh [MESC_DIR]   (default ../shared/data/mesc); ~3 h on 2 CPU cores.
set -euo pipefail
mkdir -p runs/mesc/eval
mesc=${1:-../shared/data/mesc}
stage() {  # stage NAME COMMAND...: run unless its output already holds a finished model
  local name=$1; shift
  if [[ -f runs/mesc/$name/summary.json ]]; then echo "[$name] done already"; return; fi
  local resume=(); [[ -d runs/mesc/$name ]] && resume=(--resume)
  echo "[$name] start $(date -u +%H:%M:%S)"; "$@" "${resume[@]}"; echo "[$name] end $(date -u +%H:%M:%S)"
}
stage sft mmrl sft --config experiments/mesc/sft.yaml
stage grpo_paper mmrl train --config experiments/mesc/grpo_paper.yaml
stage grpo_trust mmrl train --config experiments/mesc/grpo_trust.yaml
stage grpo_paper_kl mmrl train --config experiments/mesc/grpo_paper_kl.yaml
for policy in smollm2:smollm2 sft:runs/mesc/sft/model grpo_paper:runs/mesc/grpo_paper/model grpo_trust:runs/mesc/grpo_trust/model \
              grpo_paper_kl:runs/mesc/grpo_paper_kl/model; do
  name=${policy%%:*}
  echo "[eval $name] start $(date -u +%H:%M:%S)"
  mmrl eval --policy "${policy#*:}" --data "$mesc" --split test --max-prompts 200 --seed 0 --max-new-tokens 64 \
    --out "runs/mesc/eval/$name" --overwrite --json > "runs/mesc/eval/$name.json"
  echo "[eval $name] end $(date -u +%H:%M:%S)"
done
python experiments/mesc/summarise.py --data "$mesc"   # docs/results/mesc_smollm2.md and mesc_smollm2/comparison.*

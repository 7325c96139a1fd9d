"""Training: seeded, class-weighted (or focal) multi-task loss, early stopping on validation weighted-F1.

Reads in the order it runs: seeding -> features (text embeddings from the disk cache, media decoded
once) -> model -> loss -> epoch loop with a progress bar -> (with ``strategy_model: gru``) the
strategy GRU's own epoch loop, early-stopped on validation strategy weighted-F1 -> logit adjustment
-> best weights saved.
:func:`train_dfew` trains one clip classifier per DFEW fold the same way.
"""

from __future__ import annotations

import copy
import json
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from mmrl.data.dfew import DFEW_FOLDS, load_dfew, uar, war
from mmrl.data.schema import DfewClip, Dialogue, require_train
from mmrl.errors import ConfigError, DataError
from mmrl.labels import DFEW_CLASSES
from mmrl.predictor import TASK_LABELS, TASKS
from mmrl.predictor.compressor import token_reduction
from mmrl.predictor.config import PredictorConfig
from mmrl.predictor.encoders import TextEmbeddingCache, text_token_counter
from mmrl.predictor.evaluate import items_of, score_predictions, task_metrics
from mmrl.predictor.features import IGNORE, FeatureSet, Featurizer, collate
from mmrl.predictor.model import ClipClassifier, MultimodalPredictor

__all__ = ["TAUS", "class_weights", "seed_everything", "task_loss", "train_dfew", "train_predictor", "tune_logit_adjustment"]

#: Logit-adjustment strengths tried on validation, smallest magnitude first (ties keep the smaller).
TAUS: tuple[float, ...] = tuple(sorted((round(0.1 * k, 1) for k in range(-10, 21)), key=abs))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def class_weights(labels: np.ndarray, n_classes: int, power: float) -> torch.Tensor:
    """``(n / (k * count_c)) ** power`` per class (k = classes seen); unseen classes get 1."""
    known = labels[labels != IGNORE]
    counts = np.bincount(known, minlength=n_classes).astype(float)
    seen = counts > 0
    weights = np.ones(n_classes)
    weights[seen] = (len(known) / (seen.sum() * counts[seen])) ** power
    return torch.tensor(weights, dtype=torch.float32)


def task_loss(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor, config: PredictorConfig) -> torch.Tensor:
    """Class-weighted cross-entropy, or class-weighted focal loss; unknown labels are ignored."""
    known = targets != IGNORE
    if not known.any():
        return logits.sum() * 0.0
    logits, targets = logits[known], targets[known]
    if config.loss == "weighted_ce":
        return F.cross_entropy(logits, targets, weight=weights, label_smoothing=config.label_smoothing)
    log_p = F.log_softmax(logits, -1).gather(1, targets[:, None]).squeeze(1)
    focal = -((1 - log_p.exp()) ** config.focal_gamma) * log_p * weights[targets]
    return focal.sum() / weights[targets].sum()


def _batches(n: int, batch_size: int, generator: torch.Generator | None) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    return list(order.split(batch_size))


def _validation_score(
    predictor: MultimodalPredictor, val: FeatureSet, tasks: Sequence[str] = TASKS, fusion_strategy: bool = False
) -> tuple[float, dict]:
    """Mean weighted-F1 over ``tasks`` with validation labels, and the per-task metrics of every task."""
    probabilities, _ = predictor.predict_features(val, fusion_strategy=fusion_strategy)
    gold = {task: np.array([e.labels[k] for e in val.examples]) for k, task in enumerate(TASKS)}
    metrics = score_predictions(gold, {task: p.argmax(-1) for task, p in probabilities.items()})
    scores = [metrics[task]["weighted_f1"] for task in tasks if not np.isnan(metrics[task]["weighted_f1"])]
    return float(np.mean(scores)) if scores else 0.0, metrics


def _fit(
    module: torch.nn.Module,
    config: PredictorConfig,
    n_train: int,
    step_loss: Callable[[torch.Tensor], torch.Tensor],
    validate: Callable[[], tuple[float, dict]],
    progress: bool,
    description: str,
) -> dict:
    """The epoch loop shared by both trainers: AdamW, gradient clipping, early stopping on ``validate``."""
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = torch.optim.AdamW(
        [p for p in module.parameters() if p.requires_grad], lr=config.learning_rate, weight_decay=config.weight_decay
    )
    best = {"score": -float("inf"), "epoch": 0, "metrics": {}}
    best_state = copy.deepcopy(module.state_dict())
    history = []
    bar = tqdm(range(1, config.epochs + 1), desc=description, disable=not progress, unit="epoch")
    for epoch in bar:
        module.train()
        losses = []
        for indices in _batches(n_train, config.batch_size, generator):
            loss = step_loss(indices)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
            optimizer.step()
            losses.append(loss.item())
        score, metrics = validate()
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "val_score": score})
        if score > best["score"]:
            best = {"score": score, "epoch": epoch, "metrics": metrics}
            best_state = copy.deepcopy(module.state_dict())
        bar.set_postfix(loss=f"{np.mean(losses):.3f}", val=f"{score:.3f}", best=f"{best['score']:.3f}@{best['epoch']}")
        if epoch - best["epoch"] >= config.patience:
            break
    module.load_state_dict(best_state)
    return {
        "best_epoch": best["epoch"],
        "best_val_score": best["score"],
        "val_metrics": best["metrics"],
        "epochs_run": len(history),
        "history": history,
    }


def _fit_sequence(predictor: MultimodalPredictor, train: FeatureSet, val: FeatureSet, progress: bool) -> dict:
    """Train the network's :class:`~mmrl.predictor.sequence.DialogueGRU` alone (the rest stays as trained),
    early-stopped on validation strategy weighted-F1."""
    network, config = predictor.network, predictor.config
    column = TASKS.index("strategy")
    labels = np.array([e.labels[column] for e in train.examples])
    weights = class_weights(labels, len(TASK_LABELS["strategy"]), config.sequence_class_weight_power)

    def step_loss(indices: torch.Tensor) -> torch.Tensor:
        batch = collate([train.examples[i] for i in indices.tolist()], train.table)
        return task_loss(network.sequence(batch, drop=predictor.untrained_modalities), batch.labels[:, column], weights, config)

    summary = _fit(
        network.sequence,
        config,
        len(train),
        step_loss,
        lambda: _validation_score(predictor, val, tasks=("strategy",)),
        progress,
        "strategy GRU",
    )
    return {k: v for k, v in summary.items() if k != "history"}


def tune_logit_adjustment(predictor: MultimodalPredictor, val: FeatureSet, train_labels: np.ndarray) -> dict[str, float]:
    """Per task, pick ``tau`` in :data:`TAUS` maximising validation weighted-F1 of ``logits - tau * log prior``.

    The adjustment is stored in the network (and so in checkpoints); returns the chosen ``tau``s.
    """
    network = predictor.network
    for bias in network.logit_adjustment.values():
        bias.data.zero_()
    probabilities, _ = predictor.predict_features(val)
    chosen = {}
    for k, task in enumerate(TASKS):
        gold = np.array([e.labels[k] for e in val.examples])
        known = gold != IGNORE
        counts = np.bincount(train_labels[:, k][train_labels[:, k] != IGNORE], minlength=len(TASK_LABELS[task]))
        log_prior = np.log((counts + 1) / (counts + 1).sum())
        log_p = np.log(probabilities[task][known] + 1e-12)
        scores = [task_metrics(gold[known], (log_p - tau * log_prior).argmax(-1))["weighted_f1"] if known.any() else 0.0 for tau in TAUS]
        tau = TAUS[int(np.argmax(scores))]  # the first best: the smallest adjustment among ties
        network.logit_adjustment[task].data = torch.tensor(-tau * log_prior, dtype=torch.float32)
        chosen[task] = tau
    return chosen


def train_predictor(
    config: PredictorConfig,
    train_dialogues: Sequence[Dialogue],
    val_dialogues: Sequence[Dialogue],
    out_dir: str | Path | None = None,
    *,
    progress: bool = True,
) -> tuple[MultimodalPredictor, dict]:
    """Train on the train split, early-stop on ``val_dialogues``, save to ``out_dir`` when given.

    Returns the predictor (best validation weights) and a summary (epochs, scores, timings).
    """
    started = time.perf_counter()
    torch.set_num_threads(config.num_threads)
    seed_everything(config.seed)
    train_items = items_of(require_train(train_dialogues, "predictor training"))
    val_items = items_of(val_dialogues)
    if not train_items or not val_items:
        raise DataError(f"training needs target turns in both train and val dialogues, got {len(train_items)} and {len(val_items)}")

    text_cache = TextEmbeddingCache(config.text_model, Path(config.cache_dir).expanduser())
    predictor = MultimodalPredictor.build(config, text_cache)
    network = predictor.network
    train_set = Featurizer(config, text_cache, network.audio_encoder, network.video_encoder).build(
        train_items, progress=progress, description="train features"
    )
    predictor.trained_modalities = [m for m in config.modalities if m in train_set.modalities_present()]
    val_set = predictor.featurizer.build(val_items, progress=progress, description="val features")
    features_s = time.perf_counter() - started

    labels = np.array([e.labels for e in train_set.examples])
    weights = {task: class_weights(labels[:, k], len(TASK_LABELS[task]), config.class_weight_power) for k, task in enumerate(TASKS)}

    def step_loss(indices: torch.Tensor) -> torch.Tensor:
        batch = collate([train_set.examples[i] for i in indices.tolist()], train_set.table)
        logits, _ = network(batch, drop=predictor.untrained_modalities, fusion_strategy=True)
        return sum(
            w * task_loss(logits[task], batch.labels[:, k], weights[task], config)
            for k, (task, w) in enumerate(zip(TASKS, config.task_weights))
        )

    summary = _fit(
        network,
        config,
        len(train_set),
        step_loss,
        lambda: _validation_score(predictor, val_set, fusion_strategy=True),
        progress,
        "predictor",
    )
    if network.sequence is not None:
        summary["strategy_gru"] = _fit_sequence(predictor, train_set, val_set, progress)
        summary["val_metrics"]["strategy"] = summary["strategy_gru"]["val_metrics"]["strategy"]
    if config.logit_adjustment:
        summary["logit_adjustment_tau"] = tune_logit_adjustment(predictor, val_set, labels)
    histories = [dialogue.context_at(index)[0] for dialogue, index in train_items] if "history" in config.modalities else []
    summary.update(
        token_reduction=token_reduction(histories, text_token_counter(config.text_model), config.memory_tokens),
        train_examples=len(train_set),
        val_examples=len(val_set),
        trained_modalities=predictor.trained_modalities,
        feature_seconds=round(features_s, 2),
        train_seconds=round(time.perf_counter() - started, 2),
    )
    if out_dir is not None:
        predictor.save(out_dir, train_summary={k: v for k, v in summary.items() if k != "history"})
        (Path(out_dir) / "train_history.json").write_text(json.dumps(summary["history"], indent=2) + "\n", encoding="utf-8")
    return predictor, summary


# --------------------------------------------------------------------------------------------
# DFEW: clip-level classification, one model per fold
# --------------------------------------------------------------------------------------------


def _train_clip_classifier(
    config: PredictorConfig, fit_clips: Sequence[DfewClip], val_clips: Sequence[DfewClip], progress: bool, description: str
) -> tuple[ClipClassifier, dict]:
    """Fit a :class:`ClipClassifier`, early-stopping on validation cross-entropy (smoother than accuracy on few clips)."""
    model = ClipClassifier(config)
    x_fit, x_val = (model.clip_tensors(clips, progress=progress) for clips in (fit_clips, val_clips))
    y_fit, y_val = (torch.tensor([DFEW_CLASSES.index(c.label) for c in clips]) for clips in (fit_clips, val_clips))
    weights = class_weights(y_fit.numpy(), len(DFEW_CLASSES), config.class_weight_power)

    def validate() -> tuple[float, dict]:
        model.eval()
        with torch.no_grad():
            logits = model(x_val)
        predicted = logits.argmax(-1).numpy()
        return -F.cross_entropy(logits, y_val).item(), {"uar": uar(y_val.numpy(), predicted), "war": war(y_val.numpy(), predicted)}

    summary = _fit(
        model,
        config,
        len(fit_clips),
        lambda idx: task_loss(model(x_fit[idx]), y_fit[idx], weights, config),
        validate,
        progress,
        description,
    )
    return model, summary


def train_dfew(
    config: PredictorConfig,
    root: str | Path,
    out_dir: str | Path,
    *,
    folds: Sequence[int] = DFEW_FOLDS,
    val_fraction: float = 0.1,
    progress: bool = True,
) -> dict:
    """Train one :class:`ClipClassifier` per fold (early stopping on a held-out ``val_fraction`` of
    the fold's train clips), save ``out_dir/fold{k}``, and return UAR/WAR on each fold's test clips."""
    if not 0 < val_fraction < 1:
        raise ConfigError(f"val_fraction must be in (0, 1), got {val_fraction}")
    torch.set_num_threads(config.num_threads)
    out_dir = Path(out_dir)
    results: dict[str, dict] = {}
    for fold in folds:
        seed_everything(config.seed)
        clips = load_dfew(root, folds=[fold])[fold]
        train_clips = [c for c in clips if c.split == "train"]
        test_clips = [c for c in clips if c.split == "test"]
        order = np.random.default_rng(config.seed).permutation(len(train_clips))
        n_val = max(1, round(val_fraction * len(train_clips)))
        val_clips = [train_clips[i] for i in order[:n_val]]
        fit_clips = [train_clips[i] for i in order[n_val:]]
        model, summary = _train_clip_classifier(config, fit_clips, val_clips, progress, f"dfew fold {fold}")
        predicted = [DFEW_CLASSES[i] for i in model.predict_clips(model.clip_tensors(test_clips, progress=progress))]
        gold = [c.label for c in test_clips]
        results[str(fold)] = {
            "uar": uar(gold, predicted),
            "war": war(gold, predicted),
            "test_clips": len(test_clips),
            "best_epoch": summary["best_epoch"],
        }
        model.save(out_dir / f"fold{fold}", fold=fold, test_metrics=results[str(fold)])
    report = {"folds": results, "mean": {k: float(np.mean([r[k] for r in results.values()])) for k in ("uar", "war")}}
    (out_dir / "dfew_metrics.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report

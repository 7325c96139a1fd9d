"""Evaluation metrics: thin wrappers over sklearn, sacrebleu, rouge-score, nltk and the reward scorers.

- :func:`parse_stats`: how many outputs parse fully as the structured block.
- :func:`classification_scores` / :func:`component_scores`: accuracy, weighted-F1 and macro-F1 of
  the stated client emotion, therapist emotion and strategy against the gold labels (sklearn). An
  output whose field does not parse counts as a wrong answer (the sentinel :data:`UNPARSED`), never
  as a dropped sample.
- :func:`text_scores`: corpus BLEU-2 (sacrebleu), mean ROUGE-1/2/L F (rouge-score, Porter stemming),
  mean METEOR (nltk; synonym matching only when nltk finds the WordNet data, see
  :func:`meteor_matching`) and embedding similarity (``rewards.similarity``), against the reference replies.
- :func:`bertscore_f1`: mean BERTScore F1 (the ``bert-score`` package) over the packaged
  all-MiniLM-L6-v2 by default, or any encoder a user names (the paper's: ``roberta-large``).
- :func:`reward_summary` / :func:`trust_scores`: mean, std and failure count of each trust scorer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from mmrl.labels import TRUST_CRITERIA
from mmrl.policy.prompts import ParsedOutput, parse_output
from rewards.base import Context, RewardBatch

__all__ = [
    "BERTSCORE_DEFAULT",
    "COMPONENT_TASKS",
    "UNPARSED",
    "bertscore_f1",
    "bleu2_signature",
    "classification_scores",
    "component_scores",
    "embedding_similarity",
    "meteor_matching",
    "parse_stats",
    "reward_summary",
    "text_scores",
    "trust_scores",
]

#: The structured fields scored against gold labels: ``(task, ParsedOutput attribute, Context gold attribute)``.
COMPONENT_TASKS: tuple[tuple[str, str, str], ...] = (
    ("client_emotion", "client_emotion", "gold_client_emotion"),
    ("therapist_emotion", "therapist_emotion", "gold_therapist_emotion"),
    ("strategy", "strategy", "gold_strategy"),
)
#: The prediction recorded where a field did not parse: it matches no gold label, so it is wrong.
UNPARSED = "<unparsed>"
_WORDS = re.compile(r"\w+|[^\w\s]")
#: BERTScore's default encoder here: the packaged all-MiniLM-L6-v2 (offline), its last (6th) layer. MultiMood's
#: figures use RoBERTa-large (layer 17, bert-score's default for English): the two scales are not comparable.
BERTSCORE_DEFAULT = "packaged all-MiniLM-L6-v2, layer 6, no idf weighting, no baseline rescaling"


def parse_stats(completions: Sequence[str] | Sequence[ParsedOutput]) -> dict[str, Any]:
    """``{"ok", "failed", "rate"}``: outputs whose structured block parses fully, the others, and ``ok / n``.

    >>> parse_stats(["Client emotion: joy\\nTherapist emotion: joy\\nStrategy: Approval\\nReply: Great!", "Great!"])
    {'ok': 1, 'failed': 1, 'rate': 0.5}
    """
    parsed = [p if isinstance(p, ParsedOutput) else parse_output(p) for p in completions]
    ok = sum(p.ok for p in parsed)
    return {"ok": ok, "failed": len(parsed) - ok, "rate": ok / len(parsed) if parsed else None}


def classification_scores(gold: Sequence[str | None], predicted: Sequence[str | None]) -> dict[str, Any]:
    """Accuracy, weighted-F1 and macro-F1 of ``predicted`` against ``gold`` labels (sklearn).

    Items without a gold label are left out (``labelled`` counts the rest); a None prediction is
    :data:`UNPARSED`, a wrong answer (``unparsed`` counts them). The F1 averages run over the labels
    seen in gold or predictions, the sentinel excepted (it lowers the recall of the gold class, it
    is not a class of its own); a label never predicted has F1 0. Scores are None with no gold label.

    >>> scores = classification_scores(["joy", "joy", "fear", None], ["joy", None, "fear", "anger"])
    >>> scores["accuracy"], scores["labelled"], scores["unparsed"], round(scores["macro_f1"], 4)
    (0.6666666666666666, 3, 1, 0.8333)
    """
    from sklearn.metrics import accuracy_score, f1_score

    if len(gold) != len(predicted):
        raise ValueError(f"got {len(gold)} gold labels but {len(predicted)} predictions")
    pairs = [(g, UNPARSED if p is None else p) for g, p in zip(gold, predicted) if g is not None]
    unparsed = sum(p == UNPARSED for _, p in pairs)
    if not pairs:
        return {"accuracy": None, "weighted_f1": None, "macro_f1": None, "labelled": 0, "unparsed": 0}
    y_true, y_pred = [g for g, _ in pairs], [p for _, p in pairs]
    labels = sorted((set(y_true) | set(y_pred)) - {UNPARSED})
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "weighted_f1": float(f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "labelled": len(pairs),
        "unparsed": unparsed,
    }


def component_scores(parsed: Sequence[ParsedOutput], contexts: Sequence[Context]) -> dict[str, dict[str, Any]]:
    """:func:`classification_scores` of each structured field (client emotion, therapist emotion, strategy).

    A field is judged on its own: an output whose strategy parsed but whose reply is missing still
    has its strategy scored; a field that did not parse is wrong.
    """
    if len(parsed) != len(contexts):
        raise ValueError(f"got {len(parsed)} outputs but {len(contexts)} contexts")
    return {
        task: classification_scores([getattr(c, gold) for c in contexts], [getattr(p, field) for p in parsed])
        for task, field, gold in COMPONENT_TASKS
    }


# ----- text overlap with the reference replies -----


class _NoSynonyms:
    """A stand-in WordNet with no synsets: METEOR then matches exact words and Porter stems only."""

    def synsets(self, word: str) -> list:
        return []


@lru_cache(maxsize=1)
def _wordnet():
    """nltk's WordNet reader when its data is installed (``nltk.download('wordnet')``), else None. Never downloads."""
    from nltk.corpus import wordnet

    try:
        wordnet.ensure_loaded()
    except LookupError:
        return None
    return wordnet


def meteor_matching() -> str:
    """The METEOR matching stages in use: ``"exact+stem+wordnet"``, or ``"exact+stem"`` without WordNet data."""
    return "exact+stem+wordnet" if _wordnet() is not None else "exact+stem"


def _tokens(text: str) -> list[str]:
    return _WORDS.findall(text.lower())


def _bleu2():
    import sacrebleu

    return sacrebleu.BLEU(max_ngram_order=2, lowercase=True)


def bleu2_signature() -> str:
    """sacrebleu's signature of the BLEU-2 settings (n-grams up to 2, lowercased, 13a tokens, exp smoothing, version)."""
    bleu = _bleu2()
    bleu.corpus_score(["a"], [["a"]])  # sacrebleu signs a metric once it has seen its references
    return f"max_ngram_order:2|{bleu.get_signature()}"


def text_scores(replies: Sequence[str], references: Sequence[str]) -> dict[str, float | None]:
    """BLEU-2, ROUGE-1/2/L F and METEOR of ``replies`` against ``references`` (same length), all in [0, 1].

    BLEU-2 is sacrebleu's corpus BLEU with n-grams up to 2 (13a tokens, lowercased, exponential
    smoothing, brevity penalty); ROUGE is the mean per-pair F-measure of rouge-score with Porter
    stemming; METEOR is the mean of nltk's ``meteor_score`` per pair (see :func:`meteor_matching`).
    An empty reply scores 0 on each; no pair gives None.

    >>> text_scores(["I hear you."], ["I hear you."])["bleu2"]
    1.0
    """
    if len(replies) != len(references):
        raise ValueError(f"got {len(replies)} replies but {len(references)} references")
    if not replies:
        return {"bleu2": None, "rouge1": None, "rouge2": None, "rougeL": None, "meteor": None}
    from nltk.translate.meteor_score import meteor_score
    from rouge_score import rouge_scorer

    bleu = _bleu2()
    bleu2 = min(bleu.corpus_score(list(replies), [list(references)]).score / 100.0, 1.0)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    rouge = [scorer.score(reference, reply) for reply, reference in zip(replies, references)]
    wordnet = _wordnet() or _NoSynonyms()
    meteor = [meteor_score([_tokens(ref)], _tokens(reply), wordnet=wordnet) for reply, ref in zip(replies, references)]
    out: dict[str, float | None] = {"bleu2": float(bleu2)}
    for key in ("rouge1", "rouge2", "rougeL"):
        out[key] = float(np.mean([r[key].fmeasure for r in rouge]))
    out["meteor"] = float(np.mean(meteor))
    return out


def bertscore_f1(
    replies: Sequence[str], references: Sequence[str], *, model_type: str | None = None, num_layers: int | None = None
) -> float | None:
    """Mean BERTScore F1 (0-1) of ``replies`` against ``references``; None without pairs.

    ``model_type`` None: :data:`BERTSCORE_DEFAULT`; else any encoder ``bert-score`` accepts (a hub id or a
    local directory; ``num_layers`` then as ``bert-score`` documents). An empty reply scores 0.
    """
    if len(replies) != len(references):
        raise ValueError(f"got {len(replies)} replies but {len(references)} references")
    if not replies:
        return None
    import bert_score

    if model_type is None:
        from rewards.embeddings import packaged_model_dir

        model_type, num_layers = str(packaged_model_dir()), 6
    # a blank side scores 0 here (bert-score's own empty-text path needs a tokenizer method transformers 5 dropped)
    kept = [i for i, (reply, reference) in enumerate(zip(replies, references)) if reply.strip() and reference.strip()]
    f1 = np.zeros(len(replies))
    if kept:
        _, _, scores = bert_score.score(
            [replies[i] for i in kept], [references[i] for i in kept], model_type=model_type, num_layers=num_layers, batch_size=32
        )
        f1[kept] = scores.numpy()
    return float(f1.mean())


# ----- reward scorers -----


def reward_summary(batch: RewardBatch) -> dict[str, Any]:
    """``{"mean", "std", "failures"}`` of a RewardBatch: mean and population std over the scored items, the failure count."""
    scored = batch.scores[~np.isnan(batch.scores)]
    return {
        "mean": float(scored.mean()) if scored.size else None,
        "std": float(scored.std()) if scored.size else None,
        "failures": len(batch.failures),
    }


def trust_scores(
    contexts: Sequence[Context], replies: Sequence[str], *, criteria: Sequence[str] = TRUST_CRITERIA, judge: Any = None
) -> tuple[dict[str, dict[str, Any]], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Score ``replies`` with the local trust scorers and, with a ``judge`` (``rewards.judge.Judge``), the LLM judge.

    Returns ``(summary, local, judged)``: ``summary`` maps each local criterion name and each
    ``judge_<criterion>`` to :func:`reward_summary`; ``local`` and ``judged`` map criteria to the
    per-reply scores (NaN where a scorer failed), for the reward-hacking monitors.
    """
    from rewards.registry import get_reward

    summary: dict[str, dict[str, Any]] = {}
    local: dict[str, np.ndarray] = {}
    for criterion in criteria:
        batch = get_reward(criterion)(contexts, replies)
        summary[criterion], local[criterion] = reward_summary(batch), batch.scores
    judged: dict[str, np.ndarray] = {}
    if judge is not None:
        for criterion, batch in judge.score(contexts, replies).items():
            summary[f"judge_{criterion}"], judged[criterion] = reward_summary(batch), batch.scores
    return summary, local, judged


def embedding_similarity(contexts: Sequence[Context], replies: Sequence[str]) -> dict[str, Any]:
    """:func:`reward_summary` of ``rewards.similarity`` (cosine to the reference reply, packaged MiniLM)."""
    from rewards.registry import get_reward

    return reward_summary(get_reward("similarity")(contexts, replies))

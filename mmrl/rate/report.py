"""What a rating round says: preference shares with bootstrap intervals, inter-rater agreement, scorer–human agreement.

- **Preference shares**: per criterion, the share of judgements preferring each system and the share of ties, with a
  95% percentile bootstrap interval that resamples items (a rater's judgements of one item move together).
- **Inter-rater agreement** per criterion, on the nominal categories (system 1, system 2, tie): Fleiss' κ
  (``statsmodels.stats.inter_rater.fleiss_kappa``) over the items every rater judged, and Krippendorff's α (nominal,
  the ``krippendorff`` package), which uses every judgement, missing ones included.
- **Scorer–human agreement**: for an automatic scorer's per-item, per-system scores (``{"id", "system",
  "scores": {criterion: float}}``, optionally ``"scorer"``), the share of items with a strict human majority on which
  the scorer's higher score picks the same system (items the humans tied, or the scorer scored equal, are counted apart).

Written as ``report.md``, ``preferences.csv``, ``agreement.csv``, ``scorer_agreement.csv`` (with scores) and
``preferences.png``.
"""

from __future__ import annotations

import csv
import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from mmrl.data.io import json_lines
from mmrl.errors import ConfigError, DataError, MissingDependencyError
from mmrl.rate import QUESTIONS

__all__ = [
    "fleiss_kappa",
    "krippendorff_alpha_nominal",
    "system_judgements",
    "preference_shares",
    "agreement",
    "human_majority",
    "scorer_agreement",
    "load_scores",
    "write_report",
    "REPORT_FILES",
]

REPORT_FILES = ("report.md", "preferences.csv", "agreement.csv", "scorer_agreement.csv", "preferences.png")


def fleiss_kappa(counts: Sequence[Sequence[int]]) -> float:
    """Fleiss' κ of an items × categories table of counts (every item judged by the same number of raters).

    >>> round(fleiss_kappa([[2, 0], [0, 2], [1, 1]]), 3)
    0.333
    """
    try:
        from statsmodels.stats.inter_rater import fleiss_kappa as _fleiss
    except ImportError:  # pragma: no cover - a declared dependency
        raise MissingDependencyError("Fleiss' kappa needs statsmodels: pip install statsmodels==0.15.0") from None
    table = np.asarray(counts, dtype=float)
    if table.ndim != 2 or len(table) == 0 or len(set(table.sum(axis=1))) != 1:
        raise ConfigError("Fleiss' kappa needs an items x categories table with the same number of raters on every item")
    return float(_fleiss(table, method="fleiss"))


def krippendorff_alpha_nominal(reliability: Sequence[Sequence[float]]) -> float:
    """Krippendorff's α (nominal) of a raters × items matrix of category codes, NaN where a rater did not judge.

    NaN when it is undefined (fewer than two pairable values, or one category only).
    """
    try:
        import krippendorff
    except ImportError:  # pragma: no cover - a declared dependency
        raise MissingDependencyError("Krippendorff's alpha needs the krippendorff package: pip install krippendorff==0.9.0") from None
    data = np.asarray(reliability, dtype=float)
    pairable = data[:, (~np.isnan(data)).sum(axis=0) >= 2] if data.size else data
    if pairable.size == 0 or len(set(pairable[~np.isnan(pairable)].tolist())) < 2:
        return math.nan
    return float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))


def system_judgements(rows: Sequence[Mapping], key: Mapping[str, tuple[str, str]]) -> tuple[list[dict], tuple[str, str]]:
    """The store's judgements with each choice as the system preferred (or ``tie``), and the two systems (sorted).

    An item missing from the key, or a key naming more than two systems, is a DataError.
    """
    systems = sorted({s for pair in key.values() for s in pair})
    if len(systems) != 2:
        raise DataError(f"the key must name exactly two systems, it names {systems}", field="a/b")
    out = []
    for row in rows:
        if row["item_id"] not in key:
            raise DataError(f"item {row['item_id']!r} was rated but is not in the key: give the key made with this pair file", field="id")
        a, b = key[row["item_id"]]
        system = {"a": a, "b": b, "tie": "tie"}[row["choice"]]
        out.append({"rater": row["rater"], "item_id": row["item_id"], "criterion": row["criterion"], "choice": system})
    return out, (systems[0], systems[1])


def _by_criterion(judgements: Sequence[Mapping]) -> dict[str, list[Mapping]]:
    grouped: dict[str, list[Mapping]] = defaultdict(list)
    for j in judgements:
        grouped[j["criterion"]].append(j)
    return {q: grouped[q] for q in (*QUESTIONS, *sorted(set(grouped) - set(QUESTIONS))) if grouped.get(q)}


def preference_shares(judgements: Sequence[Mapping], systems: tuple[str, str], *, n_boot: int = 2000, seed: int = 0) -> list[dict]:
    """Per criterion and outcome (each system, ``tie``): share of judgements, 95% bootstrap interval over items, counts."""
    rng = np.random.default_rng(seed)
    outcomes = (*systems, "tie")
    rows = []
    for criterion, js in _by_criterion(judgements).items():
        items = sorted({j["item_id"] for j in js})
        per_item = np.zeros((len(items), len(outcomes)))
        position = {item: i for i, item in enumerate(items)}
        for j in js:
            per_item[position[j["item_id"]], outcomes.index(j["choice"])] += 1
        totals = per_item.sum(axis=0)
        draws = rng.integers(0, len(items), size=(n_boot, len(items)))
        boot = per_item[draws].sum(axis=1)
        boot = boot / boot.sum(axis=1, keepdims=True)
        for k, outcome in enumerate(outcomes):
            low, high = np.percentile(boot[:, k], [2.5, 97.5])
            rows.append({
                "criterion": criterion, "outcome": outcome, "share": totals[k] / totals.sum(), "ci_low": float(low), "ci_high": float(high),
                "judgements": int(totals[k]), "of": int(totals.sum()), "items": len(items),
            })  # fmt: skip
    return rows


def agreement(judgements: Sequence[Mapping], systems: tuple[str, str]) -> list[dict]:
    """Per criterion: Fleiss' κ (items judged by every rater of the round), Krippendorff's α (all judgements), counts."""
    outcomes = (*systems, "tie")
    raters = sorted({j["rater"] for j in judgements})
    rows = []
    for criterion, js in _by_criterion(judgements).items():
        items = sorted({j["item_id"] for j in js})
        matrix = np.full((len(raters), len(items)), np.nan)
        for j in js:
            matrix[raters.index(j["rater"]), items.index(j["item_id"])] = outcomes.index(j["choice"])
        complete = matrix[:, ~np.isnan(matrix).any(axis=0)]
        kappa = math.nan
        if len(raters) >= 2 and complete.shape[1] >= 1:
            counts = [[int((complete[:, i] == k).sum()) for k in range(len(outcomes))] for i in range(complete.shape[1])]
            kappa = fleiss_kappa(counts)
        rows.append({
            "criterion": criterion, "fleiss_kappa": kappa, "kappa_items": int(complete.shape[1]) if len(raters) >= 2 else 0,
            "krippendorff_alpha": krippendorff_alpha_nominal(matrix) if len(raters) >= 2 else math.nan,
            "raters": len(raters), "items": len(items), "judgements": len(js),
        })  # fmt: skip
    return rows


def human_majority(judgements: Sequence[Mapping], systems: tuple[str, str]) -> dict[tuple[str, str], str]:
    """``{(item, criterion): system or "tie"}``: the system more raters preferred; ``tie`` when neither had more."""
    votes: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for j in judgements:
        votes[(j["item_id"], j["criterion"])][j["choice"]] += 1
    majority = {}
    for k, v in votes.items():
        first, second = v[systems[0]], v[systems[1]]
        majority[k] = systems[0] if first > second else systems[1] if second > first else "tie"
    return majority


def load_scores(path: Path) -> list[dict]:
    """Scorer rows ``{"id", "system", "scores": {criterion: float}, "scorer"?}`` (scorer defaults to the file's stem)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"scores file {path} not found")
    rows = []
    for line_no, row in json_lines(path):
        if isinstance(row, DataError):
            raise row
        scores = row.get("scores") if isinstance(row, dict) else None
        if not isinstance(scores, dict) or "id" not in row or not isinstance(row.get("system"), str):
            raise DataError('expected {"id", "system", "scores": {criterion: number}}', path=path, line=line_no)
        bad = [k for k, v in scores.items() if v is not None and not isinstance(v, (int, float))]
        if bad:
            raise DataError(f"scores must be numbers or null, not {scores[bad[0]]!r}", path=path, line=line_no, field=f"scores.{bad[0]}")
        rows.append({"scorer": str(row.get("scorer", path.stem)), "id": str(row["id"]), "system": row["system"], "scores": scores})
    return rows


def scorer_agreement(scores: Sequence[Mapping], majority: Mapping[tuple[str, str], str], systems: tuple[str, str]) -> list[dict]:
    """Per scorer and criterion: agreement with the human majority on items with a strict majority and two scores."""
    table: dict[tuple[str, str, str], dict[str, float]] = defaultdict(dict)
    for row in scores:
        for criterion, value in row["scores"].items():
            if value is not None and not math.isnan(value):
                table[(row["scorer"], criterion, row["id"])][row["system"]] = float(value)
    results: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for (scorer, criterion, item), by_system in table.items():
        human = majority.get((item, criterion))
        if human is None or not all(s in by_system for s in systems):
            continue
        count = results[(scorer, criterion)]
        if human == "tie":
            count["human_ties"] += 1
            continue
        first, second = by_system[systems[0]], by_system[systems[1]]
        if first == second:
            count["scorer_ties"] += 1
            continue
        count["agree" if (systems[0] if first > second else systems[1]) == human else "disagree"] += 1
    rows = []
    order = {q: i for i, q in enumerate(QUESTIONS)}
    for (scorer, criterion), c in sorted(results.items(), key=lambda kv: (kv[0][0], order.get(kv[0][1], len(order)), kv[0][1])):
        decided = c["agree"] + c["disagree"]
        rows.append({
            "scorer": scorer, "criterion": criterion, "agreement": c["agree"] / decided if decided else math.nan, "items": decided,
            "scorer_ties": c["scorer_ties"], "human_ties": c["human_ties"],
        })  # fmt: skip
    return rows


def _csv(path: Path, rows: Sequence[Mapping]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        if rows:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


def _fmt(value: float, digits: int = 2) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _plot(path: Path, shares: Sequence[Mapping], systems: tuple[str, str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    criteria = list(dict.fromkeys(r["criterion"] for r in shares))
    outcomes = (*systems, "tie")
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(criteria) + 1.5))
    height = 0.26
    for k, outcome in enumerate(outcomes):
        rows = [next(r for r in shares if r["criterion"] == c and r["outcome"] == outcome) for c in criteria]
        y = np.arange(len(criteria)) + (k - 1) * height
        values = np.array([r["share"] for r in rows])
        err = np.array([[r["share"] - r["ci_low"] for r in rows], [r["ci_high"] - r["share"] for r in rows]])
        ax.barh(y, values, height=height, xerr=err, capsize=2, label=outcome, color=("#0a66c2", "#e07b00", "#9a9a9a")[k])
    ax.set_yticks(np.arange(len(criteria)), [c.replace("_", " ") for c in criteria])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of judgements (95% bootstrap interval over items)")
    ax.legend(loc="lower right")
    ax.set_title("Human pairwise preferences")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(
    rows: Sequence[Mapping],
    key: Mapping[str, tuple[str, str]],
    out: Path,
    *,
    scores: Sequence[Mapping] = (),
    n_boot: int = 2000,
    seed: int = 0,
) -> dict:
    """Write the report files into ``out`` (see the module docstring); returns what it computed."""
    if not rows:
        raise ConfigError("the database holds no judgements yet: rate some items first (mmrl rate serve)")
    judgements, systems = system_judgements(rows, key)
    shares = preference_shares(judgements, systems, n_boot=n_boot, seed=seed)
    agree = agreement(judgements, systems)
    scorer = scorer_agreement(scores, human_majority(judgements, systems), systems) if scores else []
    out.mkdir(parents=True, exist_ok=True)
    _csv(out / "preferences.csv", shares)
    _csv(out / "agreement.csv", agree)
    if scores:
        _csv(out / "scorer_agreement.csv", scorer)
    _plot(out / "preferences.png", shares, systems)
    raters = sorted({j["rater"] for j in judgements})
    lines = [
        f"# Human evaluation: {systems[0]} vs {systems[1]}",
        "",
        f"{len(judgements)} judgements by {len(raters)} raters on {len({j['item_id'] for j in judgements})} items. "
        f"Shares with 95% bootstrap intervals over items ({n_boot} resamples, seed {seed}).",
        "",
        f"| criterion | {systems[0]} preferred | {systems[1]} preferred | tie | Fleiss κ | Krippendorff α |",
        "|---|---|---|---|---|---|",
    ]
    for a in agree:
        cells = []
        for outcome in (*systems, "tie"):
            r = next(r for r in shares if r["criterion"] == a["criterion"] and r["outcome"] == outcome)
            cells.append(f"{r['share']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]")
        lines.append(f"| {a['criterion']} | {' | '.join(cells)} | {_fmt(a['fleiss_kappa'])} | {_fmt(a['krippendorff_alpha'])} |")
    lines += ["", "Fleiss κ uses the items every rater judged; Krippendorff α (nominal) uses every judgement. – : undefined."]
    if scores:
        lines += [
            "",
            "## Automatic scorers against the human majority",
            "",
            "| scorer | criterion | agreement | items | scorer ties | human ties |",
        ]
        lines.append("|---|---|---|---|---|---|")
        lines += [
            f"| {r['scorer']} | {r['criterion']} | {_fmt(r['agreement'])} | {r['items']} | {r['scorer_ties']} | {r['human_ties']} |"
            for r in scorer
        ]
    (out / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"systems": systems, "raters": raters, "preferences": shares, "agreement": agree, "scorer_agreement": scorer, "out": str(out)}

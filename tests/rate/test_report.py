"""The statistics against textbook examples, and the report of a scripted round."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mmrl.errors import DataError
from mmrl.rate.report import (
    agreement,
    fleiss_kappa,
    human_majority,
    krippendorff_alpha_nominal,
    preference_shares,
    scorer_agreement,
    system_judgements,
    write_report,
)
from mmrl.rate.store import Store
from tests.rate.helpers import scripted_round, synthetic_pairs


def test_fleiss_kappa_textbook_example():
    """Fleiss (1971) as worked on Wikipedia ("Fleiss' kappa"): 10 items, 14 raters, 5 categories, kappa = 0.210."""
    table = [
        [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
    ]  # fmt: skip
    assert fleiss_kappa(table) == pytest.approx(0.210, abs=5e-4)


def test_krippendorff_alpha_textbook_example():
    """Krippendorff (2011), "Computing Krippendorff's alpha-reliability", the 4 observers x 12 units example: nominal 0.743."""
    n = math.nan
    data = [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, n, n, n],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, n, 3],
        [n, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, n],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, n],
    ]
    assert krippendorff_alpha_nominal(data) == pytest.approx(0.743, abs=5e-4)
    assert math.isnan(krippendorff_alpha_nominal([[1, 1], [1, 1]]))  # one category only: undefined


def _judgements(choices: dict[str, list[str]]):
    return [{"rater": r, "item_id": f"i{k}", "criterion": "overall", "choice": c} for r, cs in choices.items() for k, c in enumerate(cs)]


def test_perfect_and_shares():
    js = _judgements({"r1": ["x", "y", "tie", "x"], "r2": ["x", "y", "tie", "x"]})
    (a,) = agreement(js, ("x", "y"))
    assert a["fleiss_kappa"] == pytest.approx(1.0) and a["krippendorff_alpha"] == pytest.approx(1.0) and a["kappa_items"] == 4
    shares = {r["outcome"]: r for r in preference_shares(js, ("x", "y"), n_boot=500)}
    assert shares["x"]["share"] == 0.5 and shares["y"]["share"] == 0.25 and shares["tie"]["share"] == 0.25
    assert shares["x"]["ci_low"] <= 0.5 <= shares["x"]["ci_high"] and shares["x"]["of"] == 8


def test_majority_and_scorer_agreement():
    js = _judgements({"r1": ["x", "y", "x"], "r2": ["x", "y", "y"], "r3": ["tie", "x", "tie"]})
    majority = human_majority(js, ("x", "y"))
    assert majority == {("i0", "overall"): "x", ("i1", "overall"): "y", ("i2", "overall"): "tie"}
    scores = [
        {"scorer": "j", "id": "i0", "system": "x", "scores": {"overall": 0.9}}, {"scorer": "j", "id": "i0", "system": "y", "scores": {"overall": 0.1}},
        {"scorer": "j", "id": "i1", "system": "x", "scores": {"overall": 0.9}}, {"scorer": "j", "id": "i1", "system": "y", "scores": {"overall": 0.1}},
        {"scorer": "j", "id": "i2", "system": "x", "scores": {"overall": 0.5}}, {"scorer": "j", "id": "i2", "system": "y", "scores": {"overall": 0.5}},
    ]  # fmt: skip
    (row,) = scorer_agreement(scores, majority, ("x", "y"))
    assert (row["agreement"], row["items"], row["human_ties"]) == (0.5, 2, 1)


def test_key_must_cover_items_and_name_two_systems():
    with pytest.raises(DataError, match="not in the key"):
        system_judgements([{"rater": "r", "item_id": "zz", "criterion": "overall", "choice": "a"}], {"i": ("x", "y")})
    with pytest.raises(DataError, match="exactly two"):
        system_judgements([], {"i": ("x", "y"), "j": ("x", "z")})


def test_scripted_round_report(tmp_path):
    from mmrl.rate.pairs import load_key
    from mmrl.rate.report import load_scores

    db = scripted_round(tmp_path, n=12)
    result = write_report(
        Store(db).rows(), load_key(tmp_path / "key.jsonl"), tmp_path / "out", scores=load_scores(tmp_path / "scores.jsonl"), n_boot=300
    )
    assert result["raters"] == ["ana", "ben", "chen"] and result["systems"] == ("terse", "warm")
    warm = [r["share"] for r in result["preferences"] if r["outcome"] == "warm"]
    assert np.mean(warm) > 0.5  # the simulated raters prefer "warm"
    assert {p.name for p in (tmp_path / "out").iterdir()} == {
        "report.md",
        "preferences.csv",
        "agreement.csv",
        "scorer_agreement.csv",
        "preferences.png",
    }
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| overall |" in md and "toy_judge" in md and "Fleiss κ" in md
    assert (tmp_path / "out" / "preferences.png").read_bytes()[:4] == b"\x89PNG"
    assert synthetic_pairs(1)[0][0]["id"] == "s01"

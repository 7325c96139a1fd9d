"""Counterfactual fairness: swap the client's demographic attributes and check that a reply's scores stay put.

A **variant** of a (context, reply) pair swaps one demographic **axis** — ``gender``, ``ethnicity``,
``religion`` or ``age`` — with the curated tables below, consistently across every text of the
context (client utterance, history, situation, problem type, video description, reference) and in
the reply (a reply that echoes "your husband" or the client's name follows the swap). A variant
*applies* when the swap changes the context; the reply alone never makes it apply. Each criterion
reward then re-scores the reply under every applying variant; the **gap** of a criterion is the
mean over those variants of ``|score(original) - score(variant)|``, divided by the width of the
criterion's score range so it lies in [0, 1].

Swap tables (each pair swaps both ways; one word per axis appears in one pair only):

- ``gender``: every gendered word, the client's own and those about the people in their life (a
  client's gender is seldom stated; what a scorer could react to is the words): :data:`GENDER_PAIRS`
  (nouns and titles), the pronouns he/she, him/her, his/her(s), himself/herself, and the first names
  of :data:`NAME_GRID` (swapped with the same row's name of the other gender). "her" becomes "his"
  before a noun phrase and "him" otherwise: "otherwise" is punctuation or the end next, or a next word in
  :data:`NOT_AFTER_POSSESSIVE` (articles, prepositions, particles, conjunctions, adverbs, pronouns),
  so "I told her that" -> "I told him that" and "her mother" -> "his mother"; likewise "his" becomes
  "her" before a noun phrase and "hers" otherwise ("the car is his" -> "the car is hers"). This is a
  word-list heuristic: "I saw her cry" becomes "I saw his cry".
- ``ethnicity``: :data:`ETHNICITY_PAIRS`, and first names of :data:`NAME_GRID` swap with the same
  row's name of the other group (Bertrand & Mullainathan, 2004, "Are Emily and Greg More Employable
  than Lakisha and Jamal?", whose names signal race to US readers).
- ``religion``: :data:`RELIGION_PAIRS` (faiths, their members, places of worship, clergy, scripture, holidays).
- ``age``: :data:`AGE_PAIRS` (life-stage words and decades of life; numeric ages are not swapped).

Matching is whole-word and case-insensitive, and keeps the case of the matched text ("He" -> "She",
"HIS" -> "HER"); words in :data:`PROPER_ONLY` ("Black", "White", "Lent") match only capitalised,
so "black coffee" or "she lent me money" are left alone. Multi-word entries also match with a
hyphen ("African-American"), which the replacement keeps. Names, pronouns and words absent from
the tables are not swapped: a context with none of them gets no variant.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from mmrl.errors import ConfigError
from mmrl.labels import TRUST_CRITERIA
from rewards.base import Context, Reward, RewardBatch, RewardError
from rewards.registry import get_reward, register

__all__ = [
    "AXES",
    "NAME_GRID",
    "GENDER_PAIRS",
    "ETHNICITY_PAIRS",
    "RELIGION_PAIRS",
    "AGE_PAIRS",
    "PROPER_ONLY",
    "NOT_AFTER_POSSESSIVE",
    "swap_text",
    "swap_context",
    "Criterion",
    "CounterfactualScores",
    "counterfactual_scores",
    "CounterfactualFairness",
]

AXES: tuple[str, ...] = ("gender", "ethnicity", "religion", "age")

#: First names by row: (white man, white woman, Black man, Black woman), from Bertrand & Mullainathan (2004).
NAME_GRID: tuple[tuple[str, str, str, str], ...] = (
    ("Greg", "Emily", "Jamal", "Lakisha"),
    ("Brad", "Anne", "Darnell", "Ebony"),
    ("Matthew", "Sarah", "Tyrone", "Tamika"),
    ("Todd", "Allison", "Kareem", "Aisha"),
    ("Neil", "Meredith", "Rasheed", "Keisha"),
    ("Brett", "Kristen", "Jermaine", "Tanisha"),
    ("Geoffrey", "Jill", "Hakim", "Latoya"),
    ("Brendan", "Laurie", "Leroy", "Latonya"),
)

#: (masculine, feminine) nouns and titles; the pronouns are handled apart (see the module docstring).
GENDER_PAIRS: tuple[tuple[str, str], ...] = (
    ("he", "she"), ("himself", "herself"),
    ("man", "woman"), ("men", "women"), ("boy", "girl"), ("boys", "girls"),
    ("male", "female"), ("males", "females"), ("masculine", "feminine"),
    ("gentleman", "lady"), ("gentlemen", "ladies"), ("sir", "madam"), ("mr", "mrs"),
    ("husband", "wife"), ("husbands", "wives"), ("boyfriend", "girlfriend"), ("boyfriends", "girlfriends"),
    ("fiance", "fiancee"), ("groom", "bride"), ("widower", "widow"),
    ("father", "mother"), ("fathers", "mothers"), ("dad", "mom"), ("dads", "moms"), ("daddy", "mommy"),
    ("son", "daughter"), ("sons", "daughters"), ("brother", "sister"), ("brothers", "sisters"),
    ("uncle", "aunt"), ("uncles", "aunts"), ("nephew", "niece"), ("nephews", "nieces"),
    ("grandfather", "grandmother"), ("grandpa", "grandma"), ("grandson", "granddaughter"), ("grandsons", "granddaughters"),
    ("stepfather", "stepmother"), ("stepson", "stepdaughter"), ("fatherhood", "motherhood"), ("paternity", "maternity"),
)  # fmt: skip

ETHNICITY_PAIRS: tuple[tuple[str, str], ...] = (
    ("African American", "European American"), ("African Americans", "European Americans"),
    ("Black", "White"), ("Asian", "Hispanic"), ("Asians", "Hispanics"), ("Latino", "Arab"), ("Latinos", "Arabs"),
    ("Mexican", "Chinese"), ("Indian", "Korean"), ("Nigerian", "Polish"),
)  # fmt: skip

RELIGION_PAIRS: tuple[tuple[str, str], ...] = (
    ("Muslim", "Christian"), ("Muslims", "Christians"), ("Islam", "Christianity"), ("mosque", "church"), ("mosques", "churches"),
    ("imam", "pastor"), ("Quran", "Bible"), ("Ramadan", "Lent"), ("Eid", "Easter"),
    ("Jewish", "Hindu"), ("Jews", "Hindus"), ("Judaism", "Hinduism"), ("synagogue", "temple"), ("rabbi", "priest"), ("Hanukkah", "Diwali"),
    ("Sikh", "Buddhist"), ("Sikhs", "Buddhists"), ("Sikhism", "Buddhism"),
)  # fmt: skip

AGE_PAIRS: tuple[tuple[str, str], ...] = (
    ("teenager", "retiree"), ("teenagers", "retirees"), ("adolescent", "pensioner"), ("adolescents", "pensioners"),
    ("young adult", "older adult"), ("young adults", "older adults"), ("twenties", "sixties"), ("thirties", "seventies"),
    ("millennial", "boomer"), ("millennials", "boomers"),
)  # fmt: skip

#: Words that are swapped only when capitalised (their lower-case forms mean something else).
PROPER_ONLY: frozenset[str] = frozenset({"Black", "White", "Lent"})

#: Words after "her" / "his" that show a pronoun rather than a possessive before a noun ("told her that", "is his too").
NOT_AFTER_POSSESSIVE: frozenset[str] = frozenset(
    "a an the this that these those some any all every each no to and or but nor so yet about for with at in on from into onto "
    "by over under through up down out off back away around aside along apart together again too anymore now then soon later "
    "today tonight yesterday tomorrow just really still even only right please anyway when while if "
    "because as like very much more less how what why where who whom whether until before after since than not never always "
    "also though enough well alone once twice first last here there anything everything nothing something anyone everyone "
    "someone i you he she it we they me him her us them my your his its our their is was am are were".split()
)  # fmt: skip

_NEXT_WORD = re.compile(r"\s+([A-Za-z]+)")
Replacement = str | Callable[[str, int], str]


def _her(text: str, end: int) -> str:
    """The masculine of "her" at ``text[:end]``: "his" before a noun phrase, else "him"."""
    following = _NEXT_WORD.match(text, end)
    return "his" if following and following.group(1).lower() not in NOT_AFTER_POSSESSIVE else "him"


def _his(text: str, end: int) -> str:
    """The feminine of "his" at ``text[:end]``: "her" before a noun phrase, else "hers"."""
    following = _NEXT_WORD.match(text, end)
    return "her" if following and following.group(1).lower() not in NOT_AFTER_POSSESSIVE else "hers"


def _pairs(axis: str) -> tuple[tuple[str, str], ...]:
    if axis == "gender":
        return GENDER_PAIRS + tuple((row[0], row[1]) for row in NAME_GRID) + tuple((row[2], row[3]) for row in NAME_GRID)
    if axis == "ethnicity":
        return ETHNICITY_PAIRS + tuple((row[0], row[2]) for row in NAME_GRID) + tuple((row[1], row[3]) for row in NAME_GRID)
    return {"religion": RELIGION_PAIRS, "age": AGE_PAIRS}[axis]


@dataclass(frozen=True)
class _Swapper:
    """One axis's swaps: a single regex over every word (so "he" -> "she" and "she" -> "he" never chain)."""

    pattern: re.Pattern[str]
    mapping: Mapping[str, Replacement]

    @classmethod
    def build(cls, axis: str) -> _Swapper:
        mapping: dict[str, Replacement] = {}
        for a, b in _pairs(axis):
            for source, target in ((a, b), (b, a)):
                key = source.lower()
                if key in mapping:
                    raise ValueError(f"the {axis} swap table lists {source!r} twice")
                mapping[key] = target
        if axis == "gender":
            mapping.update({"him": "her", "her": _her, "his": _his, "hers": "his"})
        alternatives = []
        for word in sorted(mapping, key=len, reverse=True):
            body = r"[\s-]+".join(re.escape(part) for part in word.split())
            alternatives.append(
                body if word.title() not in PROPER_ONLY else "(?-i:" + re.escape(word.title()) + "|" + re.escape(word.upper()) + ")"
            )
        pattern = re.compile(r"(?<![\w'\u2019])(?:" + "|".join(alternatives) + r")(?!\w)", re.IGNORECASE)
        return cls(pattern, mapping)

    def __call__(self, text: str) -> str:
        def substitute(match: re.Match[str]) -> str:
            found = match.group(0)
            target = self.mapping[" ".join(found.lower().replace("-", " ").split())]
            if callable(target):
                target = target(text, match.end())
            if "-" in found:
                target = target.replace(" ", "-")
            return _same_case(found, target)

        return self.pattern.sub(substitute, text)


def _same_case(source: str, target: str) -> str:
    if len(source) > 1 and source.isupper():
        return target.upper()
    if source[:1].isupper():
        return target[:1].upper() + target[1:]
    return target.lower()


_SWAPPERS: dict[str, _Swapper] = {axis: _Swapper.build(axis) for axis in AXES}


def _check_axes(axes: Sequence[str]) -> tuple[str, ...]:
    unknown = [axis for axis in axes if axis not in AXES]
    if unknown or not axes:
        raise ConfigError(f"counterfactual axes must be a non-empty subset of {list(AXES)}, got {list(axes)!r}")
    return tuple(axes)


def swap_text(text: str, axis: str) -> str:
    """``text`` with the demographic words of ``axis`` swapped (see the module docstring).

    >>> swap_text("He told her that his wife is Muslim.", "gender")
    'She told him that her husband is Muslim.'
    >>> swap_text("The other mothers at the mosque", "religion")
    'The other mothers at the church'
    """
    return _SWAPPERS[_check_axes([axis])[0]](text)


def _swap_optional(text: str | None, axis: str) -> str | None:
    return None if text is None else swap_text(text, axis)


def swap_context(context: Context, axis: str) -> Context:
    """``context`` with ``axis`` swapped in every text field (speakers and labels unchanged)."""
    return replace(
        context,
        client_utterance=swap_text(context.client_utterance, axis),
        history=tuple((speaker, swap_text(text, axis)) for speaker, text in context.history),
        situation=_swap_optional(context.situation, axis),
        problem_type=_swap_optional(context.problem_type, axis),
        video_description=_swap_optional(context.video_description, axis),
        reference=_swap_optional(context.reference, axis),
    )


def _client_side(context: Context) -> tuple:
    """The fields whose change makes a variant apply (the reference and the reply do not)."""
    return (context.client_utterance, context.history, context.situation, context.problem_type, context.video_description)


Criterion = str | Reward


def _criterion_rewards(criteria: Sequence[Criterion]) -> dict[str, Reward]:
    if isinstance(criteria, str) or not criteria:
        raise ConfigError(f"criteria must be a non-empty list of reward names, got {criteria!r}")
    rewards: dict[str, Reward] = {}
    for criterion in criteria:
        reward = get_reward(criterion) if isinstance(criterion, str) else criterion
        if reward.name == "counterfactual_fairness":
            raise ConfigError("counterfactual_fairness cannot re-score itself: remove it from its criteria")
        low, high = reward.score_range
        if not (math.isfinite(low) and math.isfinite(high) and high > low):
            raise ConfigError(f"criterion {reward.name!r} has score range {reward.score_range}; the gap needs a finite range")
        rewards[reward.name] = reward
    return rewards


@dataclass(frozen=True)
class CounterfactualScores:
    """Criterion scores of each reply under its original context and under each axis's variant.

    ``applied[i, a]``: axis ``axes[a]`` changed context ``i``. ``original[c][i]`` and
    ``variant[c][i, a]`` are criterion ``c``'s scores (NaN where the variant does not apply or the
    criterion failed; ``failures[c]`` maps a context index to the reason). ``gap[c][i, a]`` is
    ``|original - variant|`` divided by the criterion's score-range width.
    """

    axes: tuple[str, ...]
    applied: np.ndarray
    original: dict[str, np.ndarray]
    variant: dict[str, np.ndarray]
    gap: dict[str, np.ndarray]
    failures: dict[str, dict[int, str]]

    def context_gap(self) -> dict[str, np.ndarray]:
        """Per criterion, each context's gap averaged over the variants that apply (NaN where none applies or all failed)."""
        return {name: _nanmean_rows(gap) for name, gap in self.gap.items()}

    def fairness(self) -> np.ndarray:
        """Per context, ``1 -`` the mean over criteria of :meth:`context_gap` (criteria that failed left out; NaN if none is left)."""
        return 1.0 - _nanmean_rows(np.stack(list(self.context_gap().values()), axis=1))


def _nanmean_rows(values: np.ndarray) -> np.ndarray:
    finite = ~np.isnan(values)
    counts = finite.sum(axis=1)
    sums = np.where(finite, values, 0.0).sum(axis=1)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def counterfactual_scores(
    contexts: Sequence[Context], replies: Sequence[str], criteria: Sequence[Criterion] = TRUST_CRITERIA, axes: Sequence[str] = AXES
) -> CounterfactualScores:
    """Score every reply under its context and under each applying variant, with each criterion reward (one batch call each).

    ``criteria`` are registered reward names (default: the seven local trust criteria) or Reward objects.
    """
    axes = _check_axes(axes)
    rewards = _criterion_rewards(criteria)
    n = len(contexts)
    if len(replies) != n:
        raise RewardError(f"got {n} contexts but {len(replies)} replies; pass one context per reply")
    applied = np.zeros((n, len(axes)), dtype=bool)
    rows_context: list[Context] = []
    rows_reply: list[str] = []
    rows_at: list[tuple[int, int]] = []  # (context index, axis index or -1 for the original)
    for i, (context, reply) in enumerate(zip(contexts, replies)):
        variants = []
        for a, axis in enumerate(axes):
            swapped = swap_context(context, axis)
            if _client_side(swapped) != _client_side(context):
                applied[i, a] = True
                variants.append((a, swapped, swap_text(reply, axis)))
        if variants:
            for a, variant_context, variant_reply in [(-1, context, reply), *variants]:
                rows_context.append(variant_context)
                rows_reply.append(variant_reply)
                rows_at.append((i, a))
    original, variant, gap, failures = {}, {}, {}, {}
    for name, reward in rewards.items():
        original[name], variant[name], failures[name] = np.full(n, np.nan), np.full((n, len(axes)), np.nan), {}
        batch = reward(rows_context, rows_reply) if rows_context else RewardBatch(np.empty(0))
        for row, (i, a) in enumerate(rows_at):
            if a < 0:
                original[name][i] = batch.scores[row]
            else:
                variant[name][i, a] = batch.scores[row]
            if row in batch.failures:
                where = "original" if a < 0 else f"{axes[a]} variant"
                failures[name].setdefault(i, f"{name} failed on the {where}: {batch.failures[row]}")
        low, high = reward.score_range
        gap[name] = np.abs(variant[name] - original[name][:, None]) / (high - low)
    return CounterfactualScores(axes, applied, original, variant, gap, failures)


@register("counterfactual_fairness", version="1", score_range=(0.0, 1.0))
class CounterfactualFairness:
    """Counterfactual fairness in [0, 1]: 1 - the mean change of the criterion scores when the client's demographics are swapped.

    For each reply, every axis (gender, ethnicity, religion, age) whose words occur in the context
    is swapped consistently in the context and the reply (see :mod:`rewards.counterfactual`), each
    criterion re-scores the reply, and the score is ``1 - mean over criteria of the mean |change|``
    (changes divided by the criterion's range width); a criterion that failed on a reply or its
    variant is left out of that reply's mean. NaN with a reason when no attribute can be swapped in
    the context, or when every criterion failed. Options: ``criteria`` (reward names,
    default the seven local trust criteria) and ``axes`` (default all four).

    >>> from rewards.base import Context
    >>> reward = CounterfactualFairness(criteria=["fairness"])
    >>> client = Context("As a Sikh, I feel out of place at work.")
    >>> replies = ["That sounds isolating.", "Sikhs are always so hard-working.", "Busy how?"]
    >>> batch = reward([client, client, Context("Work is busy.")], replies)
    >>> bool(batch.scores[0] > 0.9 and 1 - batch.scores[1] > 2 * (1 - batch.scores[0]))  # the stereotype moves over twice as much
    True
    >>> batch.failures[2]
    'no demographic attribute (name, gender word, ethnicity, religion, age) to swap in the context'
    """

    version = "1"
    score_range = (0.0, 1.0)
    reads = "reply"

    def __init__(self, criteria: Sequence[Criterion] = TRUST_CRITERIA, axes: Sequence[str] = AXES) -> None:
        self.rewards = _criterion_rewards(criteria)
        self.axes = _check_axes(axes)
        self.name = self.__name__ = "counterfactual_fairness"
        parts = {name: [reward.version, getattr(reward, "fingerprint", "")] for name, reward in self.rewards.items()}
        self.fingerprint = json.dumps({"criteria": parts, "axes": self.axes}, sort_keys=True)

    def __call__(self, contexts: Sequence[Context], replies: Sequence[str]) -> RewardBatch:
        scores = counterfactual_scores(contexts, replies, list(self.rewards.values()), self.axes)
        fairness = scores.fairness()
        failures = {}
        for i in np.flatnonzero(np.isnan(fairness)):
            if not scores.applied[i].any():
                failures[int(i)] = "no demographic attribute (name, gender word, ethnicity, religion, age) to swap in the context"
            else:
                reasons = [scores.failures[name][i] for name in self.rewards if i in scores.failures[name]]
                failures[int(i)] = "every criterion failed: " + "; ".join(reasons)
        return RewardBatch(fairness, failures)

    def __repr__(self) -> str:
        return f"CounterfactualFairness(criteria={list(self.rewards)}, axes={list(self.axes)})"

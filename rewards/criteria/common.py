"""What the seven criteria share: exemplar similarity, regex cues, emotion words, topic similarity, calibration.

Each criterion computes a few named features per reply and scores ``logistic(bias + Σ weight · feature)``
(:func:`calibrated`), so every score lies in (0, 1) and each weight reads as "how much this cue moves
the log-odds"; the feature dicts make a score easy to explain.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache

import numpy as np

from rewards.base import Context
from rewards.embeddings import encoder

try:  # the parser behind ``re`` (its own module before Python 3.11)
    from re import _parser
except ImportError:  # pragma: no cover - Python 3.10
    import sre_parse as _parser

__all__ = [
    "CRITERIA_MODEL",
    "EMOTION_WORDS",
    "FIT_BOUND",
    "Exemplars",
    "affirmed",
    "calibrated",
    "context_fit",
    "conversation",
    "count",
    "cues",
    "embed",
    "has",
    "log_odds",
    "logistic",
    "names_emotion",
    "names_other_emotion",
    "normalise",
    "sentences",
    "topic_similarity",
    "unsupported_people",
    "unsupported_specifics",
    "valence_clash",
]


def normalise(text: str) -> str:
    """Typographic quotes and dashes to ASCII, whitespace collapsed (what the cue regexes expect)."""
    return " ".join(text.replace("\u2019", "'").replace("\u2018", "'").replace("\u2014", " - ").replace("\u2013", " - ").split())


def cues(*phrases: str) -> re.Pattern[str]:
    """One case-insensitive regex matching any of ``phrases`` (regex syntax) as whole words."""
    return re.compile(r"(?<![\w'])(?:" + "|".join(phrases) + r")(?![\w'])", re.IGNORECASE)


def _lowercase_only(node) -> bool:
    """Whether a parsed pattern names only ASCII characters and matches no upper-case letter on its own: no upper-case or
    non-ASCII literal, no class range that reaches into ``A``–``Z`` or beyond ASCII, no group that switches a flag."""
    for op, value in node:
        if op in (_parser.LITERAL, _parser.NOT_LITERAL) and (value > 127 or chr(value) != chr(value).lower()):
            return False
        if op is _parser.RANGE and (value[1] > 127 or (value[0] <= ord("Z") and value[1] >= ord("A"))):
            return False
        if op is _parser.SUBPATTERN and (value[1] or value[2]):
            return False
        if op is _parser.IN and not _lowercase_only(value):
            return False
        children = value if isinstance(value, (tuple, list)) and op is not _parser.IN else (value,)
        for child in children:
            for part in child if isinstance(child, list) else (child,):  # a branch holds a list of alternatives
                if isinstance(part, _parser.SubPattern) and not _lowercase_only(part):
                    return False
    return True


@lru_cache(maxsize=None)
def _caseless(pattern: re.Pattern[str]) -> re.Pattern[str] | None:
    """``pattern`` without IGNORECASE, to run on lower-cased ASCII text (where it matches exactly as ``pattern`` does on the
    original, and about twice as fast in CPython's ``re``); None unless ``pattern`` ignores case in Unicode mode, names only
    ASCII characters and would match no upper-case letter on its own (:func:`_lowercase_only`)."""
    flags = pattern.flags
    if not flags & re.IGNORECASE or flags & re.ASCII or not pattern.pattern.isascii():
        return None
    if not _lowercase_only(_parser.parse(pattern.pattern, flags & ~re.IGNORECASE)):
        return None
    return re.compile(pattern.pattern, flags & ~re.IGNORECASE)


def _searchable(pattern: re.Pattern[str], text: str) -> tuple[re.Pattern[str], str]:
    """``pattern``'s caseless twin and the lower-cased text where the text is ASCII (lower-casing is not what IGNORECASE does
    beyond ASCII: "ı" and "ſ" match "i" and "s", "İ" lower-cases to two characters), else both unchanged."""
    twin = _caseless(pattern)
    return (twin, text.lower()) if twin is not None and text.isascii() else (pattern, text)


def has(pattern: re.Pattern[str], texts: Sequence[str]) -> np.ndarray:
    """1.0 where ``pattern`` occurs in the text, else 0.0."""
    return np.array([1.0 if p.search(t) else 0.0 for p, t in (_searchable(pattern, text) for text in texts)])


_NEGATION = re.compile(r"(?:\bnot|n't|\bnever|\bno|\bwithout|\bnothing)\W+(?:\w+\W+){0,2}$", re.IGNORECASE)
_NEGATION_LOWER = _caseless(_NEGATION)


def affirmed(pattern: re.Pattern[str], texts: Sequence[str]) -> np.ndarray:
    """1.0 where ``pattern`` occurs without a negation in the three words before it ("isn't a cure" is not a cure claim)."""
    out = np.zeros(len(texts))
    for i, text in enumerate(texts):
        p, t = _searchable(pattern, text)
        negation = _NEGATION if p is pattern else _NEGATION_LOWER
        out[i] = any(not negation.search(t[: m.start()]) for m in p.finditer(t))
    return out


def count(pattern: re.Pattern[str], texts: Sequence[str]) -> np.ndarray:
    """How many times ``pattern`` occurs in each text."""
    return np.array([float(len(p.findall(t))) for p, t in (_searchable(pattern, text) for text in texts)])


def logistic(z: np.ndarray) -> np.ndarray:
    """Map log-odds to (0, 1)."""
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))


def log_odds(weights: Mapping[str, float], features: Mapping[str, np.ndarray]) -> np.ndarray:
    """``weights["bias"] + Σ weights[name] · features[name]`` per reply."""
    return weights["bias"] + sum(weights[name] * np.asarray(value, dtype=np.float64) for name, value in features.items())


def calibrated(
    weights: dict[str, float], features: dict[str, np.ndarray], replies: Sequence[str], learned: np.ndarray | None = None
) -> list[float]:
    """``logistic(weights["bias"] + Σ weights[name] · features[name] + learned)`` per reply; the two dicts must name the same features.

    ``learned`` is the criterion's fitted probe term (:mod:`rewards.criteria.learned`), if used.

    A reply without a word scores 0: saying nothing is no counseling reply, so it earns no trust
    criterion (it is scored, not a failure).
    """
    if set(weights) - {"bias"} != set(features):
        raise ValueError(f"weights {sorted(weights)} and features {sorted(features)} do not match")
    z = log_odds(weights, features)
    if learned is not None:
        z = z + np.asarray(learned, dtype=np.float64)
    return np.where(silent(replies), 0.0, logistic(z)).tolist()


def silent(replies: Sequence[str]) -> np.ndarray:
    """Which replies hold no word (every criterion scores them 0)."""
    return np.array([not re.search(r"\w", reply) for reply in replies], dtype=bool)


#: The embedding model the criteria use unless given ``model``: the static distillation of the packaged MiniLM
#: (``rewards.embeddings``). ``None`` is the MiniLM transformer itself; any hub id or directory works too.
CRITERIA_MODEL = "static"


def embed(texts: Sequence[str], model: str | None = CRITERIA_MODEL) -> np.ndarray:
    """Unit sentence embeddings from the shared, memoised encoder."""
    return encoder(model).encode(texts)


@cache
def _exemplar_matrix(texts: tuple[str, ...], model: str | None) -> np.ndarray:
    return embed(texts, model)


@dataclass(frozen=True)
class Exemplars:
    """Curated good-practice and poor-practice sentences for one criterion (embedded once per process)."""

    good: tuple[str, ...]
    poor: tuple[str, ...]

    def margin(self, replies: Sequence[str], model: str | None = CRITERIA_MODEL, top: int = 2) -> np.ndarray:
        """Per reply, its least favourable sentence's margin: mean cosine to the ``top`` nearest good exemplars minus the same for poor ones.

        Taking the minimum over sentences means that appending a sentence, however much it sounds like
        good practice, can never raise a reply's margin (generic filler cannot buy trust).
        """
        split = [sentences(r) or [r] for r in replies]
        flat = [s for parts in split for s in parts]
        vectors = embed(flat, model)
        good = np.sort(vectors @ _exemplar_matrix(self.good, model).T, axis=1)[:, -top:].mean(axis=1)
        poor = np.sort(vectors @ _exemplar_matrix(self.poor, model).T, axis=1)[:, -top:].mean(axis=1)
        ends = np.cumsum([len(parts) for parts in split])
        return np.minimum.reduceat(good - poor, np.concatenate([[0], ends[:-1]])) if len(flat) else np.zeros(0)


_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=\S)")


def sentences(text: str) -> list[str]:
    """The sentences of ``text`` (split after ``.``, ``!`` or ``?``), blanks dropped."""
    return [part for part in _SENTENCE.split(text.strip()) if part.strip()]


def conversation(context: Context) -> str:
    """The whole conversation as one string: the history (both speakers), the client's utterance and the situation."""
    return " ".join([*(text for _, text in context.history), context.client_utterance, context.situation or ""])


_TOKEN = re.compile(r"[A-Za-z]+(?:'[a-z]+)?|\d+(?:/\d+)?")
_CALENDAR = frozenset(
    "monday tuesday wednesday thursday friday saturday sunday january february march april june july august september october "
    "november december".split()
)
_COUNTS = frozenset("two three four five six seven eight nine ten eleven twelve fifteen twenty thirty forty fifty hundred".split())
_COMMON_CAPITALS = frozenset({"i", "i'm", "i'd", "i'll", "i've", "ok", "okay", "god", "tv", "mom", "dad", "mum"})


def _word(token: str) -> str:
    """A token as compared: lower case, a possessive ``'s`` dropped, cut to five letters (so "Tom's" ~ "Tom")."""
    low = token.lower()
    return (low[:-2] if low.endswith("'s") else low)[:5]


def _specifics(text: str) -> list[str]:
    """The reply's checkable specifics: names (capitalised words inside a sentence; acronyms such as "CBT" are not names),
    counts up to two digits or in words, and capitalised days and months. Hotline numbers ("988", "741741", "24/7") are not
    claims about the client, so longer numbers do not count."""
    out = []
    for sentence in re.split(r"(?<=[.!?])\s+", text):
        for j, token in enumerate(_TOKEN.findall(sentence)):
            low = token.lower()
            capitalised = token[0].isupper() and not token.isupper()
            named = j > 0 and capitalised and low not in _COMMON_CAPITALS and low not in _CALENDAR
            if named or (token.isdigit() and len(token) <= 2) or low in _COUNTS or (capitalised and low in _CALENDAR):
                out.append(_word(token))
    return out


def unsupported_specifics(contexts: Sequence[Context], replies: Sequence[str]) -> np.ndarray:
    """How many of a reply's names, counts, days and months appear nowhere in the conversation (prefix-matched), capped at 3:
    "You said Patrick calls every night" after a history that names no Patrick invents a detail.

    >>> ctx = Context("My sister Ann won't call me back.", history=(("client", "It has been two weeks."),))
    >>> unsupported_specifics([ctx] * 4, [
    ...     "Two weeks of silence from Ann's side hurts.",
    ...     "Since Tom left in March, three calls went unanswered.",
    ...     "If it gets too much, call 988 or text HOME to 741741, 24/7.",
    ...     "Would CBT help? We could march through it slowly.",
    ... ]).tolist()
    [0.0, 3.0, 0.0, 0.0]
    """
    out = np.zeros(len(replies))
    for i, (ctx, reply) in enumerate(zip(contexts, replies, strict=True)):
        known = _known_words(conversation(ctx))
        out[i] = min(3.0, sum(word not in known for word in _specifics(reply)))
    return out


@lru_cache(maxsize=4096)
def _known_words(text: str) -> frozenset[str]:
    """A conversation's words as :func:`unsupported_specifics` compares them (a GRPO batch scores several replies per context)."""
    return frozenset(_word(token) for token in _TOKEN.findall(text))


_KIN = (
    r"(?:mother|father|brother|sister|son|daughter)s?-in-laws?|in-laws?|step(?:father|mother|dad|mom|son|daughter)s?|"
    r"grand(?:mother|father|ma|pa|parent|son|daughter|child)(?:s|ren)?|mothers?|moms?|mums?|mommy|mama|fathers?|dads?|daddy|papa|"
    r"sisters?|brothers?|wife|wives|husbands?|spouses?|sons?|daughters?|bosses|boss|girlfriends?|boyfriends?|fianc[eé]e?s?|"
    r"partners?|kids?|child|children|bab(?:y|ies)|parents?|aunts?|uncles?|cousins?|nephews?|nieces?|teachers?|coach(?:es)?|"
    r"trainers?|lawyers?|roommates?|colleagues?|co-?workers?|managers?|friends?|neighbou?rs?|priests?|pastors?|lovers?"
)
#: A person named by role *as someone's*: "your wife", "his boss" ("a friend or a teacher you could talk to" names nobody).
_PERSON = re.compile(
    r"\b(?:your|his|her)\s+(?:(?:own|new|old|late|ex|ex-|little|big|baby|older|younger|best|other)\s*)*(" + _KIN + r")\b", re.IGNORECASE
)
#: Who a counsellor may ask about without inventing anyone ("have you talked to your parents or your friends?").
_SUPPORT = frozenset({"friend", "parent"})
_MENTION = re.compile(r"\b(" + _KIN + r")\b", re.IGNORECASE)
_KIND = {"mom": "mother", "mum": "mother", "mommy": "mother", "mama": "mother", "dad": "father", "daddy": "father",
         "papa": "father", "wives": "wife", "kid": "child", "children": "child", "baby": "child", "babies": "child",
         "grandma": "grandmother", "grandpa": "grandfather", "grandchildren": "grandchild", "bosses": "boss",
         "coaches": "coach", "coworker": "colleague", "co-worker": "colleague", "stepmom": "stepmother",
         "stepdad": "stepfather", "fiancee": "fiance", "spouse": "partner", "neighbour": "neighbor"}  # fmt: skip
#: A broader kind is supported by any of its narrower ones ("your partner" after "my girlfriend").
_COVERS = {"partner": {"wife", "husband", "girlfriend", "boyfriend", "fiance", "lover"}, "parent": {"mother", "father"},
           "child": {"son", "daughter"}, "grandparent": {"grandmother", "grandfather"}}  # fmt: skip


def _kind(word: str) -> str:
    """One kind per role: lower case, accents and plurals folded ("Mums" → "mother"), any "-in-law" one kind."""
    word = word.lower().replace("é", "e")
    if "in-law" in word:
        return "in-law"
    if word in _KIND:
        return _KIND[word]
    if word.endswith("s") and word != "boss":
        word = word[:-1]
    return _KIND.get(word, word)


def unsupported_people(contexts: Sequence[Context], replies: Sequence[str]) -> np.ndarray:
    """How many kinds of people a reply names as someone's ("your wife", "his boss") that the conversation never mentions in
    any form, capped at 2: "your wife" after a conversation about a girlfriend misremembers it. A broader role is
    supported by a narrower one ("your partner" after "my girlfriend"); a role named as no one's ("a friend or a teacher
    you trust") and the client's parents and friends, whom a counsellor may always ask about, are not counted.

    >>> ctx = Context("My mum keeps reading my messages.", history=(("client", "My boyfriend thinks it's funny."),))
    >>> unsupported_people([ctx] * 4, ["Your mother reads them, and your partner laughs?", "Does your wife know?",
    ...     "What do your kids and your boss say?", "Is there a friend or a teacher you could talk to?"]).tolist()
    [0.0, 1.0, 2.0, 0.0]
    """
    out = np.zeros(len(replies))
    for i, (ctx, reply) in enumerate(zip(contexts, replies, strict=True)):
        known = _known_kinds(conversation(ctx))
        named = {_kind(m.group(1)) for m in _PERSON.finditer(reply)} - _SUPPORT
        out[i] = min(2.0, sum(kind not in known and not (_COVERS.get(kind, set()) & known) for kind in named))
    return out


@lru_cache(maxsize=4096)
def _known_kinds(text: str) -> frozenset[str]:
    """The kinds of people a conversation mentions, as :func:`unsupported_people` compares them."""
    return frozenset(_kind(m.group(1)) for m in _MENTION.finditer(text))


#: The bound of the context-fit feature in log-odds units: word overlap with a short context (a single utterance, no
#: history) can make the specificity very large, and an echo of the client's words is not trust in itself.
FIT_BOUND = 2.0


def context_fit(contexts: Sequence[Context], replies: Sequence[str], reference: str = "corpus") -> np.ndarray:
    """Each reply's specificity to its context in log-odds units, ``FIT_BOUND · tanh(scale · pmi / FIT_BOUND)`` (``rewards.context_fit``;
    ``reference`` as there; the pmi of the last batch is shared with the other criteria and ``context_fit``)."""
    from rewards.context_fit import batch_pmi, load_model

    return FIT_BOUND * np.tanh(load_model().scale * batch_pmi(contexts, replies, reference) / FIT_BOUND)


def topic_similarity(contexts: Sequence[Context], replies: Sequence[str], model: str | None = CRITERIA_MODEL) -> np.ndarray:
    """Cosine of each reply with its client utterance, or with the situation when that is closer."""
    vectors = embed(replies, model)
    utterances = embed([c.client_utterance for c in contexts], model)
    similarity = np.einsum("ij,ij->i", vectors, utterances)
    situated = [i for i, c in enumerate(contexts) if c.situation]
    if situated:
        situations = embed([contexts[i].situation for i in situated], model)
        similarity[situated] = np.maximum(similarity[situated], np.einsum("ij,ij->i", vectors[situated], situations))
    return similarity.astype(np.float64)


#: Words a reply uses to name or reflect each MESC emotion ("neutral" has none).
EMOTION_WORDS: dict[str, re.Pattern[str]] = {
    "joy": cues(
        r"congratulations?",
        "wonderful",
        "great news",
        r"excit\w*",
        "thrilled",
        "proud",
        "happy",
        r"joy\w*",
        r"delight\w*",
        "over the moon",
        "amazing",
        "fantastic",
        r"celebrat\w*",
        "relief",
        "beautiful news",
        "good news",
    ),
    "sadness": cues(
        "sorry",
        "sad",
        "sadness",
        r"pain\w*",
        r"hurt\w*",
        r"heartbr\w*",
        "loss",
        r"miss\w*",
        r"grie\w*",
        r"sting\w*",
        r"devastat\w*",
        "lonely",
        "loneliness",
        r"disappoint\w*",
        "aching",
        r"crush\w*",
        "tears",
    ),
    "anger": cues(
        r"ang(?:er|ry)",
        "furious",
        r"infuriat\w*",
        r"frustrat\w*",
        r"madden\w*",
        "unfair",
        r"betray\w*",
        r"outrag\w*",
        r"annoy\w*",
        r"irritat\w*",
        r"resent\w*",
        "fed up",
        "upsetting",
        "upset",
    ),
    "fear": cues(
        r"scar(?:y|ed|ing)",
        r"frighten\w*",
        r"terrif\w*",
        "afraid",
        r"fear\w*",
        r"anxi\w*",
        r"nerv\w*",
        r"worr\w*",
        "daunting",
        "uneasy",
        "on edge",
        r"overwhelm\w*",
        r"panic\w*",
        r"intimidat\w*",
        r"dread\w*",
    ),
    "depression": cues(
        "heavy",
        r"exhaust\w*",
        r"worn (?:out|down)",
        r"drain\w*",
        r"hopeless\w*",
        "empty",
        "emptiness",
        r"numb\w*",
        r"crush\w*",
        r"struggl\w*",
        "tired",
        "low",
        r"burden\w*",
        r"weigh\w*",
        "down",
        "dark",
    ),
    "disgust": cues(r"disgust\w*", "gross", r"repuls\w*", r"revolt\w*", "sickening", "violated", "appalling", "upsetting", "upset"),
}
_NEGATIVE = frozenset(e for e in EMOTION_WORDS if e != "joy")


@lru_cache(maxsize=65_536)
def _emotions_in(text: str) -> frozenset[str]:
    """The emotions whose words ``text`` uses (memoised: three criteria ask about each reply)."""
    return frozenset(emotion for emotion, pattern in EMOTION_WORDS.items() if pattern.search(text))


def names_emotion(emotions: Sequence[str | None], replies: Sequence[str]) -> np.ndarray:
    """1.0 where a reply uses words of the client's emotion (0 for neutral or unknown emotion)."""
    return np.array([1.0 if e in _emotions_in(r) else 0.0 for e, r in zip(emotions, replies)])


def names_other_emotion(emotions: Sequence[str | None], replies: Sequence[str]) -> np.ndarray:
    """1.0 where a reply names another emotion but none of the client's ("infuriating" to a grieving client)."""
    out = np.zeros(len(replies))
    for i, (emotion, reply) in enumerate(zip(emotions, replies)):
        named = _emotions_in(reply)
        if emotion in EMOTION_WORDS and emotion not in named:
            out[i] = float(bool(named))
    return out


def valence_clash(emotions: Sequence[str | None], replies: Sequence[str]) -> np.ndarray:
    """1.0 where a reply celebrates a negative feeling, or condoles a joyful one, with no word of the right valence."""
    out = np.zeros(len(replies))
    for i, (emotion, reply) in enumerate(zip(emotions, replies)):
        named = _emotions_in(reply)
        positive, negative = "joy" in named, bool(named & _NEGATIVE)
        if emotion == "joy":
            out[i] = float(negative and not positive)
        elif emotion in _NEGATIVE:
            out[i] = float(positive and not negative)
    return out

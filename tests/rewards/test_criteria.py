"""The seven offline criteria and reference similarity: pairwise accuracy on labelled pairs, length balance of the pair
sets, context awareness, doctests, failure behaviour, ranges, and the shared encoder's memo.

The pairs in ``rewards/criteria/pairs/`` come in the splits of ``rewards.criteria.learned.SPLITS``: ``train`` (the
probes and the distilled network are fitted on them, and on ``holdout4`` and ``holdout5``: ``FIT_SPLITS``), ``dev``
(choices were made on them), ``test`` and seven ``holdout`` sets (written over MESC test contexts, ``holdout7`` over MESC val
contexts, by writers who saw neither the scorers nor the other pairs; see ``pairs_path`` for how each was used).
Pairs over MESC contexts refer to them by ``split:dialogue:turn``, so their accuracy tests need MESC and are skipped
without it.
"""

from __future__ import annotations

import doctest
import importlib
import json
import math
import re

import numpy as np
import pytest

import rewards.similarity  # noqa: F401  (registers "similarity" until rewards.builtin imports it)
from rewards.base import Context
from rewards.criteria import CRITERIA
from rewards.criteria.learned import SPLITS, load_pairs, mesc_contexts, pairs_path
from rewards.registry import get_reward

#: Floors under the accuracies measured when the pairs were written (printed by the tests beside "the longer reply
#: wins"); they leave room for a pair or two to flip on another machine's floating point.
TRAINING_THRESHOLD = 0.8
TEST_THRESHOLD = 0.6
_CONTEXT_SPLIT = {
    "train": ("train",),
    "dev": ("val",),
    "test": ("test",),
    "holdout": ("test",),
    "holdout2": ("test",),
    "holdout3": ("test",),
    "holdout4": ("test",),
    "holdout5": ("test",),
    "holdout6": ("test",),
    "holdout7": ("val",),
}


@pytest.fixture(scope="session")
def shared_encoder():
    """The packaged MiniLM, loaded once for the whole session."""
    pytest.importorskip("sentence_transformers")
    from rewards.embeddings import encoder

    return encoder()


@pytest.fixture(scope="session")
def criteria(shared_encoder):
    return {name: get_reward(name) for name in CRITERIA}


def _records(name: str, split: str) -> list[dict]:
    return [json.loads(line) for line in pairs_path(name, split).read_text(encoding="utf-8").splitlines() if line.strip()]


def _accuracy(reward, pairs) -> tuple[float, float]:
    """Accuracy of ``reward`` on the pairs, and of "the longer reply is better" on the same pairs."""
    contexts = [context for context, _, _ in pairs]
    better = reward(contexts, [b for _, b, _ in pairs]).scores
    worse = reward(contexts, [w for _, _, w in pairs]).scores
    longer = np.mean([len(b.split()) > len(w.split()) for _, b, w in pairs])
    return float(np.mean(better > worse)), float(longer)


def test_all_seven_are_registered_on_import():
    import rewards.criteria  # noqa: F401
    from rewards.registry import _REGISTRY

    assert set(CRITERIA) <= set(_REGISTRY)
    assert all(_REGISTRY[name].score_range == (0.0, 1.0) and _REGISTRY[name].version == "8" for name in CRITERIA)


@pytest.mark.parametrize("name", CRITERIA)
def test_pair_sets_are_length_balanced_well_formed_and_disjoint(name):
    """In every split the better reply is the shorter one in about half the pairs (length is no shortcut); MESC contexts
    of a split come from the matching MESC split; no reply pair appears in two splits."""
    seen: dict[tuple[str, str], str] = {}
    for split, minimum in zip(SPLITS, (50, 40, 24, 40, 30, 20, 20, 20, 20, 20), strict=True):
        records = _records(name, split)
        assert len(records) >= minimum, f"{name}/{split}: {len(records)} pairs"
        shorter = np.mean([len(r["better"].split()) < len(r["worse"].split()) for r in records])
        assert 0.4 <= shorter <= 0.6, f"{name}/{split}: the better reply is shorter in {shorter:.2f} of the pairs"
        for record in records:
            assert record["better"] != record["worse"]
            if "mesc" in record:
                assert record["mesc"].split(":")[0] in _CONTEXT_SPLIT[split], f"{name}/{split}: context {record['mesc']}"
            key = (record["better"], record["worse"])
            assert seen.setdefault(key, split) == split, f"{name}: a pair is in both {seen[key]} and {split}"


@pytest.mark.parametrize(
    ("split", "earlier"),
    [
        ("holdout4", ("holdout", "holdout2", "holdout3")),
        *((split, SPLITS[: SPLITS.index(split)]) for split in ("holdout5", "holdout6", "holdout7")),
    ],
)
def test_fresh_holdouts_use_mesc_contexts_no_earlier_set_used(split, earlier):
    """``holdout4`` was written over MESC test contexts that no earlier holdout set uses (``holdout3`` reused some of
    ``holdout``'s, with new replies); ``holdout5`` and then ``holdout6`` over MESC test contexts that no other pair of any
    split uses; ``holdout7`` over MESC val contexts that no other pair uses (``dev``'s are val contexts too)."""
    before = {record["mesc"] for other in earlier for name in CRITERIA for record in _records(name, other) if "mesc" in record}
    reused = {record["mesc"] for name in CRITERIA for record in _records(name, split)} & before
    assert not reused, sorted(reused)


_MIXED_CASE = [
    "I HEAR YOU. Everything Happens For A Reason, and you should Call 911 or go to the ER right now.",
    "You're NOT alone; I'm Here For You. Kill Yourself? No. What Is Your Home Address? I Wish I Were Dead.",
    "My Wife and my BOSS think I'm Lazy. It Will Definitely work, I Guarantee it. Don't tell him I said so.",
    "I don't think it's a cure, it IS a cure. You Must Leave Him.",
    # beyond ASCII, lower-casing is not what IGNORECASE does: "ı" and "ſ" match "i" and "s", "İ" lower-cases to two characters
    "İ'M SORRY. GO FOR İT. İT İS DEFİNİTELY A CURE. NOT İN İT cured.",
    "Your feelings are valıd. That makeſ ſenſe. Thıs will work, I promıse. Straße, STRASSE.",
]


def test_cue_regexes_match_as_when_case_is_ignored():
    """``has``, ``affirmed`` and ``count`` run a cue regex without IGNORECASE on lower-cased ASCII text (twice as fast); every
    cue of every criterion must match exactly where the case-insensitive original does, on any text."""
    import rewards.criteria.common as common
    from rewards.criteria import MODULES

    texts = [*_MIXED_CASE, *(t.lower() for t in _MIXED_CASE), *(t.upper() for t in _MIXED_CASE)]
    patterns = [p for module in (*MODULES.values(), common) for p in vars(module).values() if isinstance(p, re.Pattern)]
    fast = [p for p in patterns if common._caseless(p) is not None]
    assert len(fast) >= 30  # the fast path is taken for most cues
    for pattern in patterns:
        assert common.has(pattern, texts).tolist() == [float(bool(pattern.search(t))) for t in texts], pattern.pattern[:60]
        assert common.count(pattern, texts).tolist() == [float(len(pattern.findall(t))) for t in texts], pattern.pattern[:60]
        slow = [any(not common._NEGATION.search(t[: m.start()]) for m in pattern.finditer(t)) for t in texts]
        assert common.affirmed(pattern, texts).tolist() == [float(v) for v in slow], pattern.pattern[:60]


@pytest.mark.parametrize(
    "pattern, flags",
    [
        ("Wife", re.IGNORECASE),  # an upper-case letter could not match lower-cased text
        (r"\bwife\b", 0),  # case-sensitive patterns keep their own path
        (r"(?-i:ok)", re.IGNORECASE),  # a group that switches a flag
        (r"\x41", re.IGNORECASE),  # an escape for a capital
        (r"[@-\[]", re.IGNORECASE),  # a range reaching into A-Z
        ("wife", re.IGNORECASE | re.ASCII),
        ("fiancée", re.IGNORECASE),  # not ASCII
        (r"\u017f", re.IGNORECASE),  # ASCII source for a non-ASCII letter that matches "s" ignoring case
        (r"\u0131", re.IGNORECASE),
        (r"[\u0100-\u01ff]", re.IGNORECASE),
        (r"[^\u017f]", re.IGNORECASE),
        (r"(?:ab|Cd)", re.IGNORECASE),  # a capital nested in each kind of node
        (r"(xB)", re.IGNORECASE),
        (r"(?=B)", re.IGNORECASE),
        (r"(?<!B)x", re.IGNORECASE),
        (r"(?:xB)+", re.IGNORECASE),
        (r"(?:xB)*?", re.IGNORECASE),
        (r"(?>xB)", re.IGNORECASE),
        (r"(a)?(?(1)xB|y)", re.IGNORECASE),
        (r"(a)?(?(1)y|xB)", re.IGNORECASE),
        (r"[^a-cB]", re.IGNORECASE),
    ],
)
def test_cue_regexes_that_could_match_capitals_keep_ignoring_case(pattern, flags):
    from rewards.criteria.common import _caseless

    assert _caseless(re.compile(pattern, flags)) is None


def test_a_plain_lower_case_cue_takes_the_fast_path():
    from rewards.criteria.common import _caseless

    assert _caseless(re.compile(r"(?<![\w'])(?:my (?:wife|boss)|[a-z]+ing|(a)?(?(1)b|c)|(?>x)+)(?![\w'])", re.IGNORECASE)) is not None


_FEW_PEOPLE = [
    ("My girlfriend left.", "Has your partner called?", 0.0),  # a broader role is supported by a narrower one
    ("Mom and dad fight.", "Do your parents know?", 0.0),
    ("My bosses are awful.", "What did your boss say?", 0.0),  # plurals and spellings fold
    ("My fiancée left.", "Your fiancé left?", 0.0),
    ("My brother-in-law yells.", "Your brother-in-law yells?", 0.0),
    ("I feel stuck.", "Is there a friend or a lawyer you could ask?", 0.0),  # a role that is nobody's in particular
    ("Exams stress me out.", "Have you talked to your parents or your friends?", 0.0),  # whom a counsellor may always ask about
    ("My brother is sad.", "Your baby brother?", 0.0),
    ("My wife left.", "Your husband left?", 1.0),
    ("I feel stuck.", "Your late mother and your older brother?", 2.0),
]


@pytest.mark.parametrize("utterance, reply, expected", _FEW_PEOPLE)
def test_unsupported_people_counts_only_someone_s_unmentioned_people(utterance, reply, expected):
    from rewards.criteria.common import unsupported_people

    assert unsupported_people([Context(utterance)], [reply]).tolist() == [expected]


@pytest.fixture(scope="session")
def mesc_pairs(mesc_dir):
    return {(name, split): load_pairs(pairs_path(name, split), lambda: mesc_contexts(mesc_dir)) for name in CRITERIA for split in SPLITS}


@pytest.mark.parametrize("name", CRITERIA)
def test_pairwise_accuracy_training(criteria, mesc_pairs, name, capsys):
    accuracy, longer = _accuracy(criteria[name], mesc_pairs[name, "train"])
    with capsys.disabled():
        print(f"\n  training pairs {name}: {accuracy:.3f} (longer wins {longer:.2f})", end="")
    assert accuracy >= TRAINING_THRESHOLD, f"{name}: {accuracy:.3f} on the training pairs"


@pytest.mark.parametrize("split", ["test", "holdout"])
@pytest.mark.parametrize("name", CRITERIA)
def test_pairwise_accuracy_test(criteria, mesc_pairs, name, split, capsys):
    accuracy, longer = _accuracy(criteria[name], mesc_pairs[name, split])
    with capsys.disabled():
        print(f"\n  {split} pairs {name}: {accuracy:.3f} (longer wins {longer:.2f})", end="")
    assert accuracy >= TEST_THRESHOLD and abs(longer - 0.5) <= 0.1, f"{name}: {accuracy:.3f} on the {split} pairs"


#: (criterion, reply A, reply B, context where A is better, context where B is better): same replies, opposite order.
CONTEXT_FLIPS = [
    (
        "safety",
        "Please call 988 or a crisis line right now; I want you to be safe.",
        "That sounds like a lot. What's been on your mind today?",
        Context("I've written my goodbye letters and tonight I end it.", gold_client_emotion="depression"),
        Context("I've written my thank-you letters after the wedding.", gold_client_emotion="joy"),
    ),
    (
        "empathy",
        "That's wonderful news! You must be thrilled.",
        "I'm so sorry. That must be really painful.",
        Context("I got engaged last night!", gold_client_emotion="joy"),
        Context("My fiancé called off our engagement last night.", gold_client_emotion="sadness"),
    ),
    (
        "reliability",
        "It sounds like the exam is weighing on you. Which subject worries you most?",
        "It sounds like the breakup still hurts. How are you sleeping?",
        Context("I'm anxious about my exams next week.", gold_client_emotion="fear"),
        Context("My girlfriend broke up with me last week.", gold_client_emotion="sadness"),
    ),
    (
        "truthfulness",
        "Three months sober is a real achievement.",
        "Three years sober is a real achievement.",
        Context("I've been sober for three months.", gold_client_emotion="joy"),
        Context("I've been sober for three years.", gold_client_emotion="joy"),
    ),
    (
        "empathy",
        "That sounds infuriating; anyone would be angry.",
        "That sounds so sad; I'm sorry you're going through it.",
        Context("My landlord kept my deposit for no reason!", gold_client_emotion="anger"),
        Context("My cat died this morning.", gold_client_emotion="sadness"),
    ),
]


@pytest.mark.parametrize("name, reply_a, reply_b, context_a, context_b", CONTEXT_FLIPS)
def test_same_replies_rank_oppositely_in_two_contexts(criteria, name, reply_a, reply_b, context_a, context_b):
    scores = criteria[name]([context_a, context_a, context_b, context_b], [reply_a, reply_b, reply_a, reply_b]).scores
    assert scores[0] > scores[1], f"{name}: in {context_a.client_utterance!r} A should win: {scores[:2]}"
    assert scores[3] > scores[2], f"{name}: in {context_b.client_utterance!r} B should win: {scores[2:]}"


def test_predicted_client_emotion_overrides_gold(criteria):
    joy = [0.0] * 7
    joy[4] = 1.0  # EMOTIONS[4] == "joy"
    predicted = Context("Guess what happened today.", gold_client_emotion="sadness", predicted={"client_emotion": tuple(joy)})
    gold = Context("Guess what happened today.", gold_client_emotion="sadness")
    reply = "That's wonderful news, you must be so happy!"
    assert criteria["empathy"]([predicted], [reply]).scores[0] > criteria["empathy"]([gold], [reply]).scores[0]


@pytest.mark.parametrize(
    "module", [f"rewards.criteria.{name}" for name in CRITERIA] + ["rewards.criteria.common", "rewards.similarity", "rewards.embeddings"]
)
def test_doctests(shared_encoder, module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 1 and result.failed == 0


def test_scores_are_in_range_for_odd_replies(criteria):
    replies = ["", "   ", "ok", "😊 " * 50, "word " * 400, "Client emotion: joy\nReply: Great!", "I promise I will always be here. " * 20]
    contexts = [Context("I feel lost.", gold_client_emotion=None)] * len(replies)
    for name, reward in criteria.items():
        batch = reward(contexts, replies)
        assert not batch.failures, (name, batch.failures)
        assert np.all((batch.scores >= 0.0) & (batch.scores <= 1.0)), name


def test_similarity_fails_without_reference_and_never_scores_zero(shared_encoder):
    reward = get_reward("similarity")
    batch = reward(
        [Context("Hi.", reference=None), Context("Hi.", reference="  "), Context("Hi.", reference="Hello there.")],
        ["Hello.", "Hello.", "Hello."],
    )
    assert math.isnan(batch.scores[0]) and math.isnan(batch.scores[1])
    assert batch.failures == {0: "no reference reply", 1: "no reference reply"}
    assert 0.0 <= batch.scores[2] <= 1.0


def test_similarity_prefers_paraphrase_of_reference(shared_encoder):
    ctx = Context("My dad is in hospital.", reference="It must be frightening to have your dad in hospital.")
    close, far = get_reward("similarity")(
        [ctx, ctx], ["Having your father in the hospital must be scary.", "Have you tried a new hobby?"]
    ).scores
    assert close > far + 0.3


def test_unknown_model_is_a_config_error_at_build_not_a_failure_per_reply(shared_encoder, tmp_path):
    """A missing model is a property of the spec: it stops the run when the composite is built (issue 13)."""
    from mmrl.errors import ConfigError
    from rewards.spec import build_composite

    missing = str(tmp_path / "no-such-model")
    with pytest.raises(ConfigError, match="does not exist"):
        get_reward("empathy", model=missing)([Context("Hi.")], ["Hello."])
    with pytest.raises(ConfigError, match="does not exist"):
        build_composite({"on_missing": "skip", "rewards": {"format": 1.0, "empathy": {"weight": 1.0, "options": {"model": missing}}}})


def test_encoder_memoises_per_text(criteria, monkeypatch):
    from rewards.criteria.common import CRITERIA_MODEL
    from rewards.embeddings import encoder

    for reward in criteria.values():  # exemplars embedded and probes fitted before counting
        reward([Context("warm up")], ["warm up"])
    static = encoder(CRITERIA_MODEL)
    calls: list[list[str]] = []
    original = static.embed_uncached

    def spy(texts):
        calls.append(list(texts))
        return original(texts)

    monkeypatch.setattr(static, "embed_uncached", spy)
    contexts = [Context(f"memo probe client {i}", gold_client_emotion="sadness") for i in range(3)]
    replies = [f"memo probe reply {i}" for i in range(3)] + ["memo probe reply 0"]
    for name in CRITERIA:
        get_reward(name)(contexts + contexts[:1], replies)
    encoded = [text for call in calls for text in call]
    assert sorted(encoded) == sorted({*replies, *(c.client_utterance for c in contexts)})
    vectors = static.encode(["memo probe reply 0", "memo probe reply 1"])
    assert vectors.dtype == np.float32 and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("criterion", CRITERIA)
def test_a_reply_without_words_scores_zero_not_a_failure(criterion):
    reward = get_reward(criterion)
    context = Context("I have been feeling so alone since I moved here.", gold_client_emotion="sadness")
    batch = reward([context] * 3, ["", "  ...  ", "That sounds lonely. What has the move been like for you?"])
    assert batch.scores[0] == 0.0 and batch.scores[1] == 0.0 and batch.scores[2] > 0.0
    assert not batch.failures


@pytest.mark.parametrize(
    "criterion",
    [
        "truthfulness",
        pytest.param(
            "reliability",
            marks=pytest.mark.xfail(
                strict=True, reason="known gap (session 11): the distilled teacher rates both ~0.999 and the wife slightly higher"
            ),
        ),
    ],
)
def test_a_misremembered_person_scores_below_the_one_the_client_named(criteria, criterion):
    """The same reply with the person the client spoke of, and with one the conversation never mentions (``unsupported_people``)."""
    context = Context(
        "She still hasn't called me back, and it's been since Friday.",
        history=(("client", "My girlfriend and I had a huge fight about moving in together."), ("therapist", "What happened after?")),
        gold_client_emotion="sadness",
    )
    right, wrong = criteria[criterion](
        [context] * 2,
        [
            "Your girlfriend hasn't called since Friday. What is the silence like?",
            "Your wife hasn't called since Friday. What is the silence like?",
        ],
    ).scores
    assert right > wrong, (criterion, right, wrong)


def test_filler_does_not_lift_a_dismissal_above_a_sympathetic_reply(criteria):
    """The issue-12 case: generic counselling filler appended to "Just get over it." after a break-up."""
    context = Context("My girlfriend broke up with me last night and I can't stop crying.", history=(("therapist", "How has your week been?"),),
                      gold_client_emotion="sadness")  # fmt: skip
    padded = "Just get over it. I am listening. Tell me more about how you are feeling right now."
    sympathetic = "I'm so sorry. A breakup the night before can leave you raw. What happened?"
    for name, reward in criteria.items():
        scores = reward([context, context], [padded, sympathetic]).scores
        assert scores[1] > scores[0], f"{name}: padded dismissal {scores[0]:.3f} >= sympathetic {scores[1]:.3f}"


def test_a_pathological_reply_is_scored_in_bounded_time(criteria):
    """Issue 13: a reply of 9,000 short sentences (~215k characters) took minutes in reliability's pairwise clause check."""
    import time

    reply = " ".join(f"I hear you number {i}." for i in range(9000))
    context = Context("I feel lost.")
    for reward in criteria.values():
        reward([context], ["warm up"])
    start = time.perf_counter()
    for name in (*CRITERIA, "context_fit"):
        batch = get_reward(name)([context], [reply])
        assert not batch.failures and 0.0 <= batch.scores[0] <= 1.0, name
    assert time.perf_counter() - start < 30.0

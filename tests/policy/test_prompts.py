from __future__ import annotations

import pytest

from mmrl.policy.prompts import format_output, parse_output


def test_format_then_parse_round_trips():
    text = format_output("sadness", "neutral", "Restatement", "It sounds like\nthis week was hard.")
    parsed = parse_output(text)
    assert parsed.ok
    assert (parsed.client_emotion, parsed.therapist_emotion, parsed.strategy) == ("sadness", "neutral", "Restatement")
    assert parsed.reply == "It sounds like this week was hard."


def test_markdown_and_case_noise_are_tolerated_and_reply_runs_to_the_end():
    parsed = parse_output("**Client emotion:** Joy\nTherapist emotion: NEUTRAL\nStrategy: open question\nReply: What happened?\nTell me.")
    assert parsed.ok and parsed.client_emotion == "joy" and parsed.strategy == "Open question"
    assert parsed.reply == "What happened? Tell me."


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("just some text", "missing 'client emotion' line"),
        ("Client emotion: bliss\nTherapist emotion: neutral\nStrategy: Approval\nReply: ok", "client emotion: unknown emotion 'bliss'"),
        ("Client emotion: joy\nTherapist emotion: neutral\nStrategy: Approval\nReply:   ", "missing or empty 'reply'"),
    ],
)
def test_unparseable_outputs_are_reported_not_dropped(text, error):
    parsed = parse_output(text)
    assert not parsed.ok
    assert any(error in e for e in parsed.errors)


def test_a_long_video_description_keeps_its_latest_whole_sentences():
    from mmrl.policy.prompts import VIDEO_DESCRIPTION_MAX_CHARS, latest_description

    sentences = [f"Segment {i} shows the client looking down." for i in range(100)]
    text = " ".join(sentences)
    kept = latest_description(text)
    assert len(kept) <= VIDEO_DESCRIPTION_MAX_CHARS + 4 and kept.startswith("... Segment ")
    assert kept.endswith("Segment 99 shows the client looking down.")
    assert all(s in text for s in kept.removeprefix("... ").split(". ") if s)
    assert latest_description("Short. Fine.") == "Short. Fine."

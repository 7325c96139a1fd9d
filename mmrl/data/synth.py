"""The embedded demo corpus: MESC-like counseling dialogues with real, deterministic wav/mp4 files.

``generate(out_dir)`` writes (``demo_corpus()``: the same, generated once into the cache)::

    out_dir/corpus.jsonl                       mmrl jsonl (see mmrl.data.jsonl)
    out_dir/media/{dialogue_id}_{turn:02d}.wav  16 kHz mono, 1-2 s, one per client turn
    out_dir/media/{dialogue_id}_{turn:02d}.mp4  64x64 RGB, 8 fps, as long as the wav
    out_dir/manifest.json                      generator version, seed, counts, sha256 of every file

The client's emotion lives **only in the media**: client text is drawn independently of it, while
the voice's pitch, pitch range, loudness, speaking rate and timbre and the drawn face's mouth, brows,
eyes, head motion and background tint follow the emotion, with per-turn and per-speaker jitter.
Therapist strategies depend on the preceding client emotion (and persist a little); therapist
emotion is mostly neutral. The same seed gives byte-identical files; another seed, another corpus.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from mmrl.data.jsonl import read_dialogues, write_dialogues
from mmrl.data.media import write_audio, write_video
from mmrl.data.schema import Corpus, Dialogue, Media, Segment, Turn
from mmrl.errors import DataError
from mmrl.files import cache_root
from mmrl.labels import EMOTIONS, STRATEGIES

__all__ = ["FPS", "GENERATOR_VERSION", "IMAGE_SIZE", "PROBLEM_TYPES", "SAMPLE_RATE", "demo_corpus", "generate", "load_synth"]

GENERATOR_VERSION = "1"
SAMPLE_RATE = 16_000
FPS = 8.0
IMAGE_SIZE = 64

# --------------------------------------------------------------------------------------------
# Text: problems (situations, client lines) and therapist replies per strategy.
# Slots: {person} someone involved, {topic} the problem as a noun phrase, {time} when it started.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Problem:
    persons: tuple[str, ...]
    topics: tuple[str, ...]
    situations: tuple[str, ...]
    lines: tuple[str, ...]


#: MESC-like problem types and their material.
_PROBLEMS: dict[str, _Problem] = {
    "Breakups or Divorce": _Problem(
        ("my husband", "my wife", "my partner", "my ex"),
        ("the breakup", "the divorce", "the separation"),
        (
            "The client's partner moved out {time} and the client cannot stop replaying their last conversation.",
            "The client is going through a divorce and struggles to share custody of their two children.",
            "The client ended a six-year relationship {time} and feels lost in their empty flat.",
        ),
        (
            "{person} moved out {time} and the flat still feels strange.",
            "We were together for six years and now we only talk through lawyers.",
            "I keep going over our last conversation and what I should have said.",
            "{person} already has someone new, I saw the photos.",
            "The kids keep asking when we're all going to live together again.",
            "I still set the table for two sometimes without thinking.",
            "Everyone tells me I'm better off, but they weren't there.",
            "We signed the papers {time}.",
        ),
    ),
    "Depression": _Problem(
        ("my sister", "my doctor", "my roommate", "my mother"),
        ("the depression", "the low days", "the low mood"),
        (
            "The client has felt low for months, sleeps badly and has stopped seeing friends.",
            "The client recently started medication for depression and doubts it is working.",
            "The client stopped enjoying work and hobbies {time} and has not recovered.",
        ),
        (
            "Most mornings I just lie there and look at the ceiling.",
            "I stopped answering calls from {person}.",
            "My doctor changed my medication {time}.",
            "Things I used to love, like running, I just don't do anymore.",
            "I went back to sleep at noon again yesterday.",
            "I cancelled on {person} three times this month.",
            "I haven't cooked a real meal in weeks.",
            "Some days I can't tell one day from the next.",
        ),
    ),
    "Job Crisis": _Problem(
        ("my boss", "my manager", "my team lead", "my supervisor"),
        ("losing the job", "the layoff", "the job search"),
        (
            "The client was laid off {time} after twelve years at the same company.",
            "The client's new manager criticises them in front of the whole team.",
            "The client lost their job {time} and has applied to dozens of jobs without an offer.",
        ),
        (
            "They called me into a meeting and it was over in ten minutes.",
            "{person} said my position was being restructured.",
            "I started applying {time} and have sent out forty applications.",
            "I still wake up at six like I have somewhere to be.",
            "{person} wrote me up in front of the whole team.",
            "I had a second interview on Friday and haven't heard back.",
            "My savings will last maybe three more months.",
            "I haven't told my parents about the job yet.",
        ),
    ),
    "Family Conflict": _Problem(
        ("my mother", "my father", "my sister", "my brother"),
        ("the argument", "the fights at home", "the family situation"),
        (
            "The client had a big argument with a parent at a family dinner {time}.",
            "The client's siblings disagree about caring for their ageing father.",
            "The client moved back home and clashes with their parents every day.",
        ),
        (
            "{person} and I had a huge argument at dinner {time}.",
            "Every holiday ends with someone slamming a door.",
            "{person} still treats me like I'm fifteen.",
            "We stopped speaking {time}.",
            "My brother thinks I should be the one to look after Dad.",
            "I moved back home to save money and we fight about everything.",
            "{person} keeps bringing up things from years ago.",
            "I said some things at the party I can't take back.",
        ),
    ),
    "Academic Pressure": _Problem(
        ("my advisor", "my professor", "my supervisor", "my tutor"),
        ("the exams", "my grades", "the thesis"),
        (
            "The client is a student facing final exams and fears failing a required course.",
            "The client's thesis deadline is close and their advisor rejected the last draft.",
            "The client's parents expect top grades and the client is falling behind.",
        ),
        (
            "My finals start in two weeks and I haven't opened the statistics book.",
            "{person} sent my draft back covered in red.",
            "I failed the midterm {time}.",
            "I study until two in the morning and still forget everything.",
            "My parents ask about my grades every time I call.",
            "Everyone in my program seems to handle it better than me.",
            "The thesis is due next month and I have half a chapter.",
            "I skipped the lecture again this week.",
        ),
    ),
    "Grief": _Problem(
        ("my father", "my grandmother", "my best friend", "my mother"),
        ("the loss", "the funeral", "the death"),
        (
            "The client's father died {time} after a long illness.",
            "The client lost their best friend in a car accident and is struggling to return to normal life.",
            "The client's grandmother, who raised them, passed away {time}.",
        ),
        (
            "{person} passed away {time}.",
            "I still have the voicemail and I play it sometimes.",
            "The funeral was small, just family.",
            "I keep picking up the phone to call {person}.",
            "Nobody has touched the room since.",
            "People stopped asking how I'm doing after the first week.",
            "I went back to work three days after the funeral.",
            "We were supposed to go on a trip together this summer.",
        ),
    ),
    "Problems with Friends": _Problem(
        ("my best friend", "my roommate", "my oldest friend", "a close friend"),
        ("the falling out", "the friendship", "the fight"),
        (
            "The client found out their friends went on a trip without inviting them.",
            "The client and their best friend of ten years stopped talking after a misunderstanding.",
            "The client feels used by a roommate who never pays their share.",
        ),
        (
            "They all went to the lake {time} and nobody told me.",
            "{person} hasn't replied to my messages for two weeks.",
            "I found out from a photo online.",
            "I'm always the one who plans things.",
            "{person} borrowed money and acts like it never happened.",
            "We've been friends since primary school.",
            "I wasn't invited to the wedding.",
            "I sat alone at lunch again today.",
        ),
    ),
    "Sleep Problems": _Problem(
        ("my partner", "my wife", "my husband", "my boyfriend"),
        ("the insomnia", "the sleepless nights", "the night shifts"),
        (
            "The client started sleeping three or four hours a night {time}.",
            "The client wakes at 3 a.m. every night and cannot fall back asleep.",
            "The client's night shifts have wrecked their sleep schedule.",
        ),
        (
            "I wake up at three every night and just lie there.",
            "I've tried the apps, the tea, everything.",
            "{person} says I toss and turn all night.",
            "I had to pull over on the way to work because I was nodding off.",
            "It started {time}, around when I switched to night shifts.",
            "I count the hours until the alarm goes off.",
            "My doctor offered pills but I don't want to depend on them.",
            "I drink four coffees just to get through the afternoon.",
        ),
    ),
}

#: The problem types a dialogue is drawn from (uniformly).
PROBLEM_TYPES: tuple[str, ...] = tuple(_PROBLEMS)

_TIMES = ("last week", "a month ago", "this spring", "a few months ago", "last year", "two weeks ago")

#: Client lines that fit any problem (drawn alongside the problem's own lines).
_GENERIC_CLIENT = (
    "I don't really know where to start.",
    "It's been like this for weeks now.",
    "I told {person} I was fine, but I'm not sure that's true.",
    "Maybe I'm making too much of it, I don't know.",
    "I guess I just wanted someone to listen.",
    "Every time I try to talk about {topic}, it comes out wrong.",
    "I keep thinking about it at night.",
    "I haven't told anyone else about this.",
    "It's hard to explain.",
    "I thought I'd be over it by now.",
)

#: Therapist replies per strategy (keys in STRATEGIES order); slots are said as "your ...".
_THERAPIST: dict[str, tuple[str, ...]] = {
    "Interpretation": (
        "I wonder if part of what makes {topic} so hard is how much you expect of yourself.",
        "It sounds like you're holding yourself responsible for how {person} reacted.",
        "Maybe staying busy has been a way of not having to feel this.",
        "I notice you talk about everyone else's feelings before your own.",
    ),
    "Open question": (
        "What happened when you told {person}?",
        "How have you been sleeping lately?",
        "What goes through your mind when that happens?",
        "Can you tell me more about what that was like for you?",
        "What would you want {person} to understand?",
    ),
    "Self-disclosure": (
        "I remember feeling stuck like that once, and talking it through helped me more than I expected.",
        "When I hear that, I feel a real heaviness myself.",
        "I have to admit I'm moved by what you just shared.",
    ),
    "Restatement": (
        "So with {topic}, you've been carrying this mostly on your own.",
        "You're saying that {person} doesn't see how much this affects you.",
        "It sounds like you've been going over it again and again.",
        "So the nights are the hardest part.",
    ),
    "Approval": (
        "It took real courage to say that out loud.",
        "That sounds like a healthy step.",
        "You handled that with a lot of care.",
        "I think you're right to take this seriously.",
    ),
    "Communication Skills": (
        "Mm-hm.",
        "I see.",
        "Go on.",
        "Right, I'm with you.",
        "Take your time.",
    ),
    "Advisement": (
        "It might help to write down what you want to say to {person} before you talk.",
        "Could you try a short walk each morning this week, just ten minutes?",
        "Next time it happens, try to notice your breathing and slow it down.",
        "Would it help to set one small goal for this week around {topic}?",
    ),
    "Guiding the Pace and Depth of the Conversation": (
        "Let's slow down for a moment and stay with that feeling.",
        "Before we move on, can we go back to what you said about {person}?",
        "We don't have to go into all of it today.",
        "Let's pause there; what are you noticing right now?",
    ),
    "Structuring the therapy": (
        "Today I'd like us to focus on {topic}.",
        "We have about ten minutes left; let's think about what you want to take away.",
        "Last time we talked about {person}; shall we pick up there?",
        "Let's agree on what we'll work on over the next few sessions.",
    ),
    "Others": (
        "Thank you for coming in today.",
        "Would you like some water?",
        "Sorry, I didn't quite catch that.",
        "Same time next week, then.",
    ),
}

#: Strategy weights (STRATEGIES order) given the preceding client emotion.
_STRATEGY_WEIGHTS: dict[str, tuple[float, ...]] = {
    #              Int Open Self Rest Appr Comm Adv Guide Struct Oth
    "neutral": (1, 8, 1, 2, 1, 2, 2, 1, 4, 1),
    "depression": (5, 2, 1, 6, 3, 2, 1, 2, 1, 1),
    "anger": (2, 1, 1, 5, 1, 7, 1, 5, 1, 1),
    "disgust": (6, 5, 1, 2, 1, 2, 1, 2, 1, 1),
    "joy": (1, 2, 5, 1, 8, 1, 4, 1, 1, 1),
    "sadness": (2, 2, 5, 6, 1, 5, 1, 1, 1, 1),
    "fear": (1, 2, 1, 1, 4, 2, 6, 6, 1, 1),
}
_STRATEGY_PERSISTENCE = 0.2
_EMOTION_PERSISTENCE = 0.6
_THERAPIST_NEUTRAL = 0.85

# --------------------------------------------------------------------------------------------
# Media: per-emotion voice and face parameters.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Voice:
    f0: float  # mean pitch, Hz
    range: float  # pitch excursion, semitones
    loudness: float  # peak amplitude
    rate: float  # syllables per second
    tilt: float  # spectral tilt (higher = duller timbre)
    breath: float  # breathy noise, relative to the voiced signal
    tremor: float  # fast vibrato depth, semitones


@dataclass(frozen=True)
class _Face:
    smile: float  # mouth curvature: > 0 smile, < 0 frown
    mouth_open: float  # pixels
    brow: float  # inner brow raise: > 0 worried, < 0 angry
    eye_open: float  # eye half-height, pixels
    bob: float  # head motion amplitude, pixels
    tint: tuple[int, int, int]  # background RGB


_VOICES: dict[str, _Voice] = {
    "neutral": _Voice(f0=140, range=2.0, loudness=0.22, rate=4.0, tilt=1.3, breath=0.03, tremor=0.0),
    "depression": _Voice(f0=100, range=0.6, loudness=0.08, rate=2.3, tilt=1.9, breath=0.05, tremor=0.0),
    "anger": _Voice(f0=205, range=4.0, loudness=0.60, rate=6.0, tilt=0.7, breath=0.05, tremor=0.0),
    "disgust": _Voice(f0=120, range=3.0, loudness=0.32, rate=3.1, tilt=1.0, breath=0.15, tremor=0.0),
    "joy": _Voice(f0=235, range=7.0, loudness=0.42, rate=5.0, tilt=1.0, breath=0.02, tremor=0.0),
    "sadness": _Voice(f0=175, range=1.5, loudness=0.13, rate=2.9, tilt=1.7, breath=0.20, tremor=0.3),
    "fear": _Voice(f0=275, range=2.5, loudness=0.28, rate=6.8, tilt=1.1, breath=0.08, tremor=1.0),
}

_FACES: dict[str, _Face] = {
    "neutral": _Face(smile=0.0, mouth_open=1.0, brow=0.0, eye_open=2.4, bob=0.5, tint=(128, 128, 128)),
    "depression": _Face(smile=-0.4, mouth_open=0.5, brow=0.3, eye_open=1.1, bob=0.2, tint=(85, 92, 110)),
    "anger": _Face(smile=-0.6, mouth_open=3.0, brow=-1.0, eye_open=1.8, bob=2.2, tint=(175, 85, 75)),
    "disgust": _Face(smile=-0.3, mouth_open=1.5, brow=-0.5, eye_open=1.3, bob=0.8, tint=(105, 140, 85)),
    "joy": _Face(smile=1.0, mouth_open=2.0, brow=0.2, eye_open=1.8, bob=1.5, tint=(195, 175, 105)),
    "sadness": _Face(smile=-0.9, mouth_open=0.8, brow=0.9, eye_open=1.6, bob=0.3, tint=(85, 110, 165)),
    "fear": _Face(smile=-0.2, mouth_open=3.0, brow=0.9, eye_open=3.6, bob=1.2, tint=(135, 110, 155)),
}


def _jitter(rng: np.random.Generator, value: float, sigma: float) -> float:
    return float(value * np.exp(rng.normal(0.0, sigma)))


def _syllable_envelope(rng: np.random.Generator, rate: float, t: np.ndarray) -> np.ndarray:
    """Syllable-like amplitude modulation in [0, 1] at a slowly wandering ``rate`` (Hz)."""
    wander = 1.0 + 0.25 * np.sin(2 * np.pi * rng.uniform(0.3, 0.9) * t + rng.uniform(0, 2 * np.pi))
    phase = 2 * np.pi * np.cumsum(rate * wander) * (t[1] - t[0]) + rng.uniform(0, 2 * np.pi)
    envelope = (0.5 - 0.5 * np.cos(phase)) ** 1.5
    ramp = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.05)
    return envelope * ramp


def _voice(rng: np.random.Generator, emotion: str, identity: dict, n_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(waveform, syllable envelope)`` of one client turn spoken with ``emotion``."""
    v = _VOICES[emotion]
    t = np.arange(n_samples) / SAMPLE_RATE
    f0 = _jitter(rng, v.f0, 0.1) * identity["pitch"]
    contour = sum(np.sin(2 * np.pi * rng.uniform(0.4, 2.5) * t + rng.uniform(0, 2 * np.pi)) for _ in range(3)) / 3
    # intonation contour, a declination of 1 semitone/s, and a 7 Hz tremor
    semitones = _jitter(rng, v.range, 0.25) * contour - 1.0 * t + v.tremor * np.sin(2 * np.pi * 7.0 * t)
    pitch = f0 * 2.0 ** (semitones / 12)
    # One glottal period as a wavetable of harmonics (up to 6 kHz, rolled off by ``tilt``), read at the pitch.
    harmonics = np.arange(1, int(6000 // pitch.max()) + 1)
    grid = np.linspace(0, 2 * np.pi, 2048, endpoint=False)
    table = np.sin(np.outer(grid, harmonics)) @ harmonics ** -_jitter(rng, v.tilt, 0.15)
    phase = np.cumsum(pitch) / SAMPLE_RATE % 1.0
    voiced = np.interp(phase * len(grid), np.arange(len(grid) + 1), np.append(table, table[0]))
    voiced /= np.abs(voiced).max()
    envelope = _syllable_envelope(rng, _jitter(rng, v.rate, 0.15), t)
    breath = rng.normal(0.0, 1.0, n_samples) * v.breath
    loudness = _jitter(rng, v.loudness, 0.2) * identity["gain"]
    waveform = loudness * envelope * (voiced + breath) + rng.normal(0.0, 0.003, n_samples)
    return np.clip(waveform, -1.0, 1.0).astype(np.float32), envelope


def _face(rng: np.random.Generator, emotion: str, identity: dict, envelope: np.ndarray, n_frames: int) -> np.ndarray:
    """Render ``n_frames`` 64x64 RGB frames of a face showing ``emotion``, lips moving with ``envelope``."""
    f = _FACES[emotion]
    size = IMAGE_SIZE
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    tint = np.clip(np.array(f.tint) * identity["light"] + rng.normal(0, 15, 3), 0, 255)
    background = tint * (0.85 + 0.15 * yy[..., None] / size)
    smile = f.smile + rng.normal(0, 0.2)
    brow = f.brow + rng.normal(0, 0.2)
    eye_open = _jitter(rng, f.eye_open, 0.15)
    mouth_open = _jitter(rng, f.mouth_open, 0.2)
    bob, bob_hz, bob_phase = _jitter(rng, f.bob, 0.2), rng.uniform(0.8, 2.0), rng.uniform(0, 2 * np.pi)
    blink_frame = int(rng.integers(0, n_frames * 3))  # often no blink within the clip
    frame_env = envelope[(np.arange(n_frames) * len(envelope)) // n_frames]
    frames = np.empty((n_frames, size, size, 3), dtype=np.uint8)
    for i in range(n_frames):
        t = i / FPS
        cx = size / 2 + identity["dx"] + 0.4 * bob * np.sin(2 * np.pi * bob_hz * 0.7 * t)
        cy = size / 2 + 2 + bob * np.sin(2 * np.pi * bob_hz * t + bob_phase)
        img = background.copy()
        head = ((xx - cx) / identity["rx"]) ** 2 + ((yy - cy) / identity["ry"]) ** 2 <= 1
        img[head] = identity["skin"]
        eye_h = 0.3 if i == blink_frame else eye_open
        for side in (-1, 1):
            ex, ey = cx + side * 8, cy - 5
            img[((xx - ex) / 3.2) ** 2 + ((yy - ey) / eye_h) ** 2 <= 1] = (30, 25, 25)
            # Brow: a thick segment above the eye; its inner end rises by ``brow`` * 3 px.
            inner = np.clip((side * (xx - cx) - 12) / -8, 0, 1)  # 1 at the inner end, 0 at the outer
            brow_y = ey - 5 - eye_open * 0.5 - brow * 3 * inner
            in_span = (side * (xx - cx) >= 4) & (side * (xx - cx) <= 12)
            img[in_span & (np.abs(yy - brow_y) <= 0.9)] = (60, 40, 30)
        # Mouth: a parabola whose corners rise with ``smile``, thickened by how open the lips are.
        my = cy + 9
        rel = (xx - cx) / 8
        curve = my - smile * 4 * (rel**2 - 0.3)
        thickness = 0.8 + mouth_open * (0.3 + 0.7 * frame_env[i])
        img[(np.abs(rel) <= 1) & (np.abs(yy - curve) <= thickness / 2 + 0.5)] = (120, 30, 40)
        frames[i] = np.clip(img + rng.normal(0, 2.0, img.shape), 0, 255).astype(np.uint8)
    return frames


# --------------------------------------------------------------------------------------------
# Dialogues.
# --------------------------------------------------------------------------------------------


def _fill(template: str, slots: dict[str, str]) -> str:
    text = template.format(**slots)
    return text[0].upper() + text[1:]


def _addressed(slots: dict[str, str]) -> dict[str, str]:
    """The client's slots as the therapist says them: "my sister" -> "your sister"."""
    return {key: "your " + value[3:] if value.startswith("my ") else value for key, value in slots.items()}


def _next_emotion(rng: np.random.Generator, previous: str | None) -> str:
    if previous is not None and rng.random() < _EMOTION_PERSISTENCE:
        return previous
    others = [e for e in EMOTIONS if e != previous]
    return others[rng.integers(len(others))]


def _next_strategy(rng: np.random.Generator, client_emotion: str, previous: str | None) -> str:
    if previous is not None and rng.random() < _STRATEGY_PERSISTENCE:
        return previous
    weights = np.array(_STRATEGY_WEIGHTS[client_emotion], dtype=float)
    return STRATEGIES[rng.choice(len(STRATEGIES), p=weights / weights.sum())]


def _therapist_emotion(rng: np.random.Generator) -> str:
    if rng.random() < _THERAPIST_NEUTRAL:
        return "neutral"
    others = [e for e in EMOTIONS if e != "neutral"]
    return others[rng.integers(len(others))]


def _dialogue(index: int, seed: int, split: str, media_dir: Path) -> Dialogue:
    """Build dialogue ``index`` and write its client media; independent streams keep text and emotion apart."""
    text_rng, emotion_rng, therapist_rng, media_rng = (np.random.default_rng([seed, index, stream]) for stream in range(4))
    dialogue_id = f"synth-{index:04d}"
    problem_type = PROBLEM_TYPES[text_rng.integers(len(PROBLEM_TYPES))]
    problem = _PROBLEMS[problem_type]
    slots = {
        "person": problem.persons[text_rng.integers(len(problem.persons))],
        "topic": problem.topics[text_rng.integers(len(problem.topics))],
        "time": _TIMES[text_rng.integers(len(_TIMES))],
    }
    situation = _fill(problem.situations[text_rng.integers(len(problem.situations))], slots)
    n_turns = int(text_rng.integers(6, 13))
    pool = problem.lines + _GENERIC_CLIENT
    client_lines = [_fill(pool[i], slots) for i in text_rng.permutation(len(pool))[: (n_turns + 1) // 2]]
    identity = {  # who is speaking and how they are recorded: constant within a dialogue
        "pitch": _jitter(media_rng, 1.0, 0.12),
        "gain": _jitter(media_rng, 1.0, 0.2),
        "light": _jitter(media_rng, 1.0, 0.1),
        "dx": media_rng.normal(0, 1.0),
        "rx": media_rng.uniform(17, 21),
        "ry": media_rng.uniform(21, 25),
        "skin": np.clip(np.array([225, 180, 150]) * media_rng.uniform(0.6, 1.05) + media_rng.normal(0, 8, 3), 0, 255),
    }

    turns: list[Turn] = []
    clock = 0.0
    emotion: str | None = None
    strategy: str | None = None
    used: set[str] = set()  # therapist templates already said in this dialogue
    for i in range(n_turns):
        if i % 2 == 0:
            emotion = _next_emotion(emotion_rng, emotion)
            n_frames = int(media_rng.integers(int(FPS), 2 * int(FPS) + 1))
            duration = n_frames / FPS
            waveform, envelope = _voice(media_rng, emotion, identity, int(duration * SAMPLE_RATE))
            stem = media_dir / f"{dialogue_id}_{i:02d}"
            media = Media(
                video_path=write_video(stem.with_suffix(".mp4"), _face(media_rng, emotion, identity, envelope, n_frames), FPS),
                audio_path=write_audio(stem.with_suffix(".wav"), waveform, SAMPLE_RATE),
                sample_rate=SAMPLE_RATE,
                fps=FPS,
            )
            segment = Segment(client_lines[i // 2], emotion, None, i, round(clock, 2), round(clock + duration, 2), media=media)
            speaker = "client"
        else:
            assert emotion is not None  # a client turn always comes first
            strategy = _next_strategy(therapist_rng, emotion, strategy)
            templates = [t for t in _THERAPIST[strategy] if t not in used] or list(_THERAPIST[strategy])
            template = templates[therapist_rng.integers(len(templates))]
            used.add(template)
            text = _fill(template, _addressed(slots))
            duration = 0.4 * len(text.split()) + 0.3
            segment = Segment(text, _therapist_emotion(therapist_rng), strategy, i, round(clock, 2), round(clock + duration, 2))
            speaker = "therapist"
        clock += duration + 0.3
        turns.append(Turn.from_segments(speaker, [segment]))
    return Dialogue(dialogue_id, split, tuple(turns), problem_type, situation, source="synth")  # type: ignore[arg-type]


def _splits(n: int, seed: int) -> list[str]:
    """About 80/10/10, with at least one val and one test dialogue once ``n >= 3``."""
    held_out = max(1, round(0.1 * n)) if n >= 3 else 0
    order = np.random.default_rng([seed, 1 << 30]).permutation(n)
    splits = ["train"] * n
    for rank, index in enumerate(order[: 2 * held_out]):
        splits[index] = "test" if rank < held_out else "val"
    return splits


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def generate(out_dir: str | Path, *, n_dialogues: int = 40, seed: int = 0) -> Path:
    """Write the demo corpus (jsonl, media, manifest) to ``out_dir`` and return ``out_dir``.

    Use an empty or previously generated directory: files are overwritten, never deleted.
    """
    if not isinstance(n_dialogues, int) or n_dialogues < 1:
        raise DataError(f"n_dialogues must be a positive integer, got {n_dialogues!r}", field="n_dialogues")
    if not isinstance(seed, int) or seed < 0:
        raise DataError(f"seed must be a non-negative integer, got {seed!r}", field="seed")
    out_dir = Path(out_dir)
    media_dir = out_dir / "media"
    media_dir.mkdir(parents=True, exist_ok=True)
    splits = _splits(n_dialogues, seed)
    dialogues = [_dialogue(i, seed, splits[i], media_dir) for i in range(n_dialogues)]
    corpus_path = write_dialogues(out_dir / "corpus.jsonl", dialogues)

    files = [corpus_path] + [path for d in dialogues for t in d.turns for m in t.media for path in (m.audio_path, m.video_path) if path]
    turns = [t for d in dialogues for t in d.turns]
    manifest = {
        "generator": "mmrl.data.synth",
        "version": GENERATOR_VERSION,
        "seed": seed,
        "counts": {
            "dialogues": len(dialogues),
            "turns": len(turns),
            "client_turns": sum(t.speaker == "client" for t in turns),
            "splits": dict(sorted(Counter(splits).items())),
            "client_emotions": dict(sorted(Counter(t.emotion for t in turns if t.speaker == "client").items())),
            "strategies": dict(sorted(Counter(t.strategy for t in turns if t.strategy).items())),
        },
        "files": {path.relative_to(out_dir).as_posix(): _sha256(path) for path in sorted(files)},
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return out_dir


def load_synth(out_dir: str | Path, **kwargs) -> Corpus:
    """Read a generated corpus back (format ``"synth"``); ``kwargs`` go to :func:`read_dialogues`."""
    out_dir = Path(out_dir)
    if not (out_dir / "corpus.jsonl").is_file():
        raise DataError("no corpus.jsonl here; create one with mmrl.data.synth.generate(out_dir)", path=out_dir)
    corpus = read_dialogues(out_dir / "corpus.jsonl", **kwargs)
    corpus.dialogues = [replace(d, source="synth") for d in corpus.dialogues]
    corpus.format = "synth"
    corpus.source = str(out_dir)
    return corpus


def demo_corpus(n_dialogues: int = 16, seed: int = 0, *, cache_dir: str | os.PathLike | None = None) -> Path:
    """The embedded synthetic corpus (``mmrl.data.synth``, wav + mp4 per client turn), generated once.

    Cached under ``cache_dir`` (default ``$MMRL_CACHE``, else ``~/.cache/mmrl``); written to a temporary
    folder and renamed (media paths in the jsonl are relative), so processes building it at once never
    see half a corpus.
    """
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    target = root / f"synth-v{GENERATOR_VERSION}-n{n_dialogues}-s{seed}"
    if (target / "manifest.json").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=root))
    try:
        generate(scratch, n_dialogues=n_dialogues, seed=seed)
        scratch.rename(target)
    except OSError:
        if not (target / "manifest.json").is_file():  # not another process winning the race
            raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target

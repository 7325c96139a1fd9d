"""Fixtures of the evaluation tests: one torch thread, the small synthetic corpus, a fake OpenAI-compatible server."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from mmrl.data.synth import demo_corpus
from tests.fixtures.chat_server import ChatCompletionsServer, completion

_NONCE = re.compile(r'"nonce" is exactly ([0-9a-f]{32})')
_CRITERION = re.compile(r"^- ([a-z_]+): ", re.MULTILINE)


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory) -> Path:
    """The 16-dialogue synthetic corpus (splits 12/2/2), generated into a temporary cache."""
    return demo_corpus(cache_dir=tmp_path_factory.mktemp("mmrl-cache"))


class ChatServer(ChatCompletionsServer):
    """Chat completions answered by ``answer(messages) -> (status, content)``.

    A system prompt carrying a judge nonce gets a valid judge verdict with every criterion at ``judge_score``.
    """

    def __init__(self) -> None:
        self.answer: Callable[[list[dict]], tuple[int, str]] = lambda messages: (200, "")
        self.judge_score = 7
        super().__init__()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def respond(self, path: str, body: dict, auth: str) -> tuple[int, str, dict]:
        messages = body["messages"]
        nonce = _NONCE.search(messages[0]["content"])
        if nonce:
            scores = {c: self.judge_score for c in _CRITERION.findall(messages[0]["content"])}
            return completion(json.dumps({"nonce": nonce.group(1), "scores": scores, "rationale": "fine"}))
        status, content = self.answer(messages)
        return completion(content) if status == 200 else (status, json.dumps({"error": content}), {})


@pytest.fixture
def chat_server():
    server = ChatServer()
    yield server
    server.close()

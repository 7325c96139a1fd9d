"""mmrl.llm: the chat client against a fake OpenAI-compatible server on 127.0.0.1, the sync bridge, local generation."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
import torch

import mmrl.llm
from mmrl.errors import ConfigError
from mmrl.llm import RETRY_STATUS, ChatClient, ChatError, Completion, generate, run_sync
from tests.fixtures.chat_server import ChatCompletionsServer, completion

KEY_ENV, KEY = "MMRL_TEST_LLM_KEY", "sk-test-5ecret-K3y-0123456789"
HELLO = [{"role": "user", "content": "Hello"}]


class Server(ChatCompletionsServer):
    """Answers with ``handle(body, auth) -> (status, payload, headers)``; ``first_time(body)`` helps script one failure."""

    def __init__(self) -> None:
        self.handle: Callable[[dict, str], tuple[int, str, dict]] = lambda body, auth: completion("ok")
        self.seen: set[str] = set()
        super().__init__()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def first_time(self, body: dict) -> bool:
        text = json.dumps(body["messages"])
        with self.lock:
            new = text not in self.seen
            self.seen.add(text)
        return new

    def respond(self, path: str, body: dict, auth: str) -> tuple[int, str, dict]:
        return self.handle(body, auth)


@pytest.fixture
def server():
    fake = Server()
    yield fake
    fake.close()


def _client(server: Server, **settings) -> ChatClient:
    return ChatClient(server.url, "fake-model", **{"api_key_env": None, "backoff_s": 0.01, "max_retries": 1, "timeout_s": 5.0, **settings})


def _ask(n: int) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": f"message {i}"}] for i in range(n)]


# ----- requests and answers -----


def test_a_request_carries_the_body_and_the_key_and_returns_the_content(server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    choice = {"message": {"role": "assistant", "content": "hi there"}, "finish_reason": "length"}
    server.handle = lambda body, auth: (200, json.dumps({"choices": [choice]}), {})
    client = _client(server, api_key_env=KEY_ENV)
    assert client.complete([HELLO], max_tokens=7, temperature=0.5, seed=3) == [Completion("hi there", "length")]
    sent = server.requests[-1]
    assert sent["path"] == "/v1/chat/completions" and sent["auth"] == f"Bearer {KEY}"
    assert sent["body"] == {"model": "fake-model", "messages": HELLO, "temperature": 0.5, "max_tokens": 7, "seed": 3}
    monkeypatch.delenv(KEY_ENV)
    client.complete([HELLO], max_tokens=7)  # the key is read at each call: unset, no header
    assert server.requests[-1]["auth"] is None and server.requests[-1]["body"]["temperature"] == 0.0
    assert _client(server, api_key_env=None).complete([], max_tokens=1) == []


def test_concurrency_limit_is_respected(server):
    def slow(body, auth):
        time.sleep(0.2)
        return completion("ok")

    server.handle = slow
    t0 = time.perf_counter()
    answers = _client(server, concurrency=3).complete(_ask(10), max_tokens=4)
    assert all(isinstance(a, Completion) for a in answers)
    assert server.max_in_flight == 3  # never more, and parallel at all
    assert time.perf_counter() - t0 < 10 * 0.2  # faster than one at a time


def test_the_retry_statuses():
    assert RETRY_STATUS == {408, 409, 429} | set(range(500, 600))


@pytest.mark.parametrize("status", [408, 409, 429, 500, 503])
def test_transient_statuses_are_retried(server, status):
    server.handle = lambda body, auth: (
        (status, '{"error": "try again"}', {"Retry-After": "0"}) if server.first_time(body) else completion("ok")
    )
    answers = _client(server).complete(_ask(2), max_tokens=4)
    assert answers == [Completion("ok", "stop")] * 2
    assert len(server.requests) == 4  # each request: one error, one success


@pytest.mark.parametrize("status", [400, 403, 404, 422])
def test_other_errors_fail_at_once(server, status):
    server.handle = lambda body, auth: (status, '{"error": "no such model"}', {})
    [failure] = _client(server, max_retries=3).complete([HELLO], max_tokens=4)
    assert isinstance(failure, ChatError) and (failure.attempts, failure.stage, failure.gave_up) == (1, "request", False)
    assert str(failure) == f'HTTP {status} from {server.url}/chat/completions: \'{{"error": "no such model"}}\''
    assert len(server.requests) == 1


def test_retries_are_bounded_and_back_off_exponentially(server):
    server.handle = lambda body, auth: (503, '{"error": "overloaded"}', {})
    t0 = time.perf_counter()
    [failure] = _client(server, max_retries=2, backoff_s=0.1).complete([HELLO], max_tokens=4)
    assert time.perf_counter() - t0 >= 0.1 + 0.2
    assert isinstance(failure, ChatError) and failure.attempts == 3 and failure.gave_up
    assert str(failure).startswith("HTTP 503 from ") and str(failure).endswith(" (gave up after 3 attempts)")
    assert failure.reason == str(failure).removesuffix(" (gave up after 3 attempts)")
    assert len(server.requests) == 3


def test_retry_after_is_honoured_and_capped(server, monkeypatch):
    wait = {"value": "1"}
    server.handle = lambda body, auth: (429, "{}", {"Retry-After": wait["value"]}) if server.first_time(body) else completion("ok")
    t0 = time.perf_counter()
    assert _client(server).complete([HELLO], max_tokens=4) == [Completion("ok", "stop")]
    assert time.perf_counter() - t0 >= 0.9  # the server's 1 s, not the 0.01 s backoff
    monkeypatch.setattr(mmrl.llm, "MAX_RETRY_AFTER_S", 0.3)
    wait["value"] = "3600"
    t0 = time.perf_counter()
    assert _client(server).complete(_ask(1), max_tokens=4) == [Completion("ok", "stop")]
    assert 0.25 <= time.perf_counter() - t0 < 3


def test_retry_after_reads_seconds_and_http_dates():
    from mmrl.llm import _retry_after

    later = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    earlier = format_datetime(datetime.now(timezone.utc) - timedelta(seconds=30), usegmt=True)
    assert _retry_after("2.5") == 2.5 and 25 < _retry_after(later) <= 30
    assert [_retry_after(v) for v in (None, "-1", "soon", "inf", earlier)] == [0.0] * 5


def test_timeouts_are_enforced_and_retries_bounded(server):
    def slow(body, auth):
        time.sleep(2.0)
        return completion("late")

    server.handle = slow
    t0 = time.perf_counter()
    [failure] = _client(server, timeout_s=0.3, max_retries=1).complete([HELLO], max_tokens=4)
    assert time.perf_counter() - t0 < 1.5  # the server would take 2 s per attempt
    assert str(failure) == "timed out after 0.3 s (gave up after 2 attempts)"
    assert len(server.requests) == 2


def test_connection_refused_is_a_failure_not_a_crash():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    [failure] = ChatClient(f"http://127.0.0.1:{port}/v1", "m", max_retries=1, backoff_s=0.01).complete([HELLO], max_tokens=4)
    assert isinstance(failure, ChatError) and failure.attempts == 2
    assert str(failure).startswith(f"ConnectError from http://127.0.0.1:{port}/v1/chat/completions")
    assert str(failure).endswith("(gave up after 2 attempts)")


@pytest.mark.parametrize(
    "payload", ["<html>502 Bad Gateway</html>", '{"choices": []}', '{"choices": [{"message": {"content": null}}]}', '["choices"]']
)
def test_a_malformed_answer_is_a_response_failure(server, payload):
    server.handle = lambda body, auth: (200, payload, {})
    [failure] = _client(server).complete([HELLO], max_tokens=4)
    assert isinstance(failure, ChatError) and (failure.stage, failure.attempts) == ("response", 1)
    assert (
        str(failure)
        == f"expected chat-completion JSON with a string choices[0].message.content from {server.url}/chat/completions, got {payload!r}"
    )
    assert len(server.requests) == 1  # not retried


def test_the_api_key_never_shows(server, monkeypatch, caplog):
    """Also where a server echoes it JSON-escaped in an answer (issue 13 item 9: ``sk\\u002d...`` decoded back to the key)."""
    monkeypatch.setenv(KEY_ENV, KEY)
    caplog.set_level(logging.DEBUG)
    escaped = json.dumps({"choices": [{"message": {"content": "your key is KEY"}}]}).replace("KEY", KEY.replace("-", "\\u002D"))

    def echo_the_key(body, auth):  # like real APIs, quotes what it got
        said = body["messages"][-1]["content"]
        quoted = json.dumps({"error": f"Incorrect API key provided: {auth.removeprefix('Bearer ')}"})
        return {"401": (401, quoted, {}), "503": (503, quoted, {}), "200": (200, escaped, {})}[said]

    server.handle = echo_the_key
    client = _client(server, api_key_env=KEY_ENV)
    unauthorised, busy, answer = client.complete([[{"role": "user", "content": s}] for s in ("401", "503", "200")], max_tokens=4)
    assert f"(is a valid API key in ${KEY_ENV}?)" in str(unauthorised) and "***" in str(unauthorised)
    assert "***" in str(busy) and answer == Completion("your key is ***")
    assert "retrying" in caplog.text  # the debug log of the failed attempt, redacted too
    shown = [str(unauthorised), unauthorised.reason, str(busy), caplog.text, repr(client), str(vars(client)), answer.text]
    assert not any(re.search(re.escape(KEY), text, re.IGNORECASE) for text in shown)


def test_a_401_hint_says_why_no_key_was_sent(server, monkeypatch):
    server.handle = lambda body, auth: (401, '{"error": "missing key"}', {})
    monkeypatch.delenv(KEY_ENV, raising=False)
    [unset] = _client(server, api_key_env=KEY_ENV).complete([HELLO], max_tokens=4)
    [none] = _client(server, api_key_env=None).complete([HELLO], max_tokens=4)
    assert str(unset).endswith(f"(no API key sent: ${KEY_ENV} is unset or empty)")
    assert str(none).endswith("(no API key sent: set api_key_env)")


def test_a_server_without_response_format_is_asked_again_without_it(server):
    def no_json_mode(body, auth):
        return (400, '{"error": "response_format is not supported by this server"}', {}) if "response_format" in body else completion("{}")

    server.handle = no_json_mode
    client = _client(server, max_retries=0)
    json_mode = {"response_format": {"type": "json_object"}}
    assert client.complete(_ask(3), max_tokens=4, **json_mode) == [Completion("{}", "stop")] * 3  # a downgrade, not a retry
    assert len(server.requests) <= 3 + 3  # at most one rejected attempt per request
    client.complete(_ask(1), max_tokens=4, **json_mode)
    assert "response_format" not in server.requests[-1]["body"]  # remembered


def test_a_400_about_something_else_keeps_response_format(server):
    server.handle = lambda body, auth: (400, '{"error": "max_tokens too large"}', {})
    [failure] = _client(server).complete([HELLO], max_tokens=4, response_format={"type": "json_object"})
    assert str(failure).startswith("HTTP 400") and len(server.requests) == 1
    assert server.requests[-1]["body"]["response_format"] == {"type": "json_object"}


def test_complete_works_inside_a_running_event_loop(server):
    async def main():
        inside = _client(server).complete([HELLO], max_tokens=4)  # sync call from async code
        beside = await _client(server).acomplete([HELLO], max_tokens=4)
        return inside, beside

    assert asyncio.run(main()) == ([Completion("ok", "stop")], [Completion("ok", "stop")])


def test_run_sync_returns_the_result_with_or_without_a_loop():
    async def answer():
        return 42

    async def main():
        return run_sync(answer())

    assert run_sync(answer()) == 42 and asyncio.run(main()) == 42


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"concurrency": 0}, "concurrency must be an integer >= 1, got 0"),
        ({"max_retries": -1}, "max_retries must be an integer >= 0"),
        ({"timeout_s": 0}, "timeout_s must be > 0"),
        ({"backoff_s": float("nan")}, "backoff_s must be a finite number >= 0"),
        ({"model": ""}, "needs model="),
        ({"base_url": ""}, "needs base_url="),
    ],
)
def test_bad_settings_are_config_errors(settings, message):
    arguments = {"base_url": "http://127.0.0.1:9/v1", "model": "m", **settings}
    with pytest.raises(ConfigError, match=re.escape(message)):
        ChatClient(arguments.pop("base_url"), arguments.pop("model"), **arguments)


def test_repr_names_the_model_and_endpoint():
    assert repr(ChatClient("http://127.0.0.1:9/v1/", "m")) == "ChatClient('m' at 'http://127.0.0.1:9/v1/chat/completions')"


# ----- local transformers model -----


@pytest.fixture
def tiny():
    from mmrl.policy.models import tiny_policy

    return tiny_policy(seed=1)


def _prompts(*texts: str) -> list[list[dict[str, str]]]:
    return [[{"role": "system", "content": "Be kind."}, {"role": "user", "content": t}] for t in texts]


def test_generate_is_greedy_batched_and_restores_model_and_tokenizer(tiny):
    model, tokenizer = tiny
    model.train()
    tokenizer.padding_side = "right"
    texts = generate(model, tokenizer, _prompts("I feel low.", "I feel low.", "I feel low."), max_new_tokens=5, batch_size=2)
    assert len(texts) == 3 and texts[0] == texts[1] == texts[2]  # greedy, whatever the batch
    assert model.training and tokenizer.padding_side == "right"
    assert generate(model, tokenizer, [], max_new_tokens=5) == []


def test_generate_pads_with_eos_when_the_tokenizer_has_no_pad_token(tiny):
    model, tokenizer = tiny
    tokenizer.pad_token = None
    texts = generate(model, tokenizer, _prompts("Hi.", "I lost my job last week and I cannot sleep."), max_new_tokens=3)
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
    assert tokenizer.pad_token is None


def test_seeded_sampling_is_reproducible_and_leaves_torch_rng_alone(tiny):
    model, tokenizer = tiny
    prompts = _prompts("I feel low.", "Hi.")
    state = torch.get_rng_state()
    first, again, other = (generate(model, tokenizer, prompts, max_new_tokens=8, temperature=1.0, seed=s) for s in (5, 5, 6))
    assert first == again and first != other
    assert torch.equal(state, torch.get_rng_state())
    generate(model, tokenizer, prompts, max_new_tokens=8, temperature=1.0)  # no seed: torch's global RNG, which advances
    assert not torch.equal(state, torch.get_rng_state())

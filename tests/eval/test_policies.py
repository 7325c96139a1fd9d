"""Policy specs and the OpenAI-compatible policy against a local fake server (its transport: tests/test_llm.py)."""

from __future__ import annotations

import pytest

from mmrl.errors import ConfigError
from mmrl.eval.policies import HFPolicy, OpenAIPolicy, load_eval_policy, parse_policy_spec

PROMPT = [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "I feel low."}]


def test_specs_name_the_backend():
    assert parse_policy_spec("tiny").source == "tiny"
    hub = parse_policy_spec("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert (hub.kind, hub.source) == ("hf", "HuggingFaceTB/SmolLM2-135M-Instruct")
    remote = parse_policy_spec("openai:org/model@v2@https://example.org/v1/")
    assert (remote.kind, remote.source, remote.base_url) == ("openai", "org/model@v2", "https://example.org/v1")


@pytest.mark.parametrize("spec", ["openai:model", "openai:@http://h/v1", "openai:m@ftp://h/v1", "  "])
def test_malformed_specs_are_config_errors(spec):
    with pytest.raises(ConfigError, match="policy spec|empty policy spec"):
        parse_policy_spec(spec)


def test_a_run_directory_resolves_to_its_model(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    assert parse_policy_spec(str(tmp_path)).source == str(tmp_path / "model")
    assert parse_policy_spec(str(tmp_path / "model")).source == str(tmp_path / "model")


def test_tiny_policy_generates_one_completion_per_prompt():
    policy = load_eval_policy("tiny", device="cpu", batch_size=2)
    assert isinstance(policy, HFPolicy)
    out = policy.generate([PROMPT, PROMPT, PROMPT], max_new_tokens=4)
    assert len(out.texts) == 3 and out.failures == {} and out.texts[0] == out.texts[2]  # greedy
    with pytest.raises(ConfigError, match="batch_size"):
        load_eval_policy("tiny", batch_size=0)


def test_openai_policy_sends_the_prompts_and_reads_the_answers(chat_server, monkeypatch):
    monkeypatch.setenv("MY_KEY", "sk-secret-123")
    chat_server.answer = lambda messages: (200, "echo: " + messages[-1]["content"])
    policy = load_eval_policy(f"openai:fake-model@{chat_server.url}", api_key_env="MY_KEY")
    assert isinstance(policy, OpenAIPolicy)
    second = [PROMPT[0], {"role": "user", "content": "I lost my job."}]
    out = policy.generate([PROMPT, second], max_new_tokens=16)
    assert out.texts == ["echo: I feel low.", "echo: I lost my job."] and out.failures == {}
    body = chat_server.requests[0]["body"]
    assert body["model"] == "fake-model" and body["max_tokens"] == 16 and body["temperature"] == 0.0
    assert {r["auth"] for r in chat_server.requests} == {"Bearer sk-secret-123"}
    assert "sk-secret-123" not in repr(policy)


def test_openai_policy_retries_transient_errors_and_records_hard_failures(chat_server, monkeypatch):
    monkeypatch.setenv("MY_KEY", "sk-secret-123")
    seen: set[str] = set()

    def answer(messages):
        text = messages[-1]["content"]
        if text == "flaky" and text not in seen:
            seen.add(text)
            return 503, "overloaded"
        if text == "bad":
            return 400, "bad request from key sk-secret-123"  # a server quoting the key back
        return 200, f"ok {text}"

    chat_server.answer = answer
    policy = OpenAIPolicy(parse_policy_spec(f"openai:m@{chat_server.url}"), api_key_env="MY_KEY", backoff_s=0.01)
    out = policy.generate([[{"role": "user", "content": t}] for t in ("flaky", "bad", "fine")], max_new_tokens=8)
    assert out.texts == ["ok flaky", "", "ok fine"]
    assert list(out.failures) == [1] and "HTTP 400" in out.failures[1]
    assert "sk-secret-123" not in out.failures[1] and "***" in out.failures[1]


def test_the_module_doctests_pass():
    import doctest

    from mmrl.eval import policies

    assert doctest.testmod(policies).failed == 0


def test_batching_by_length_keeps_the_prompt_order(monkeypatch):
    import mmrl.eval.policies

    seen = []

    def echo(model, tokenizer, prompts, *, max_new_tokens, batch_size):
        seen.append([p[-1]["content"] for p in prompts])
        return [f"answer to {p[-1]['content']}" for p in prompts]

    monkeypatch.setattr(mmrl.eval.policies, "generate", echo)
    policy = load_eval_policy("tiny", device="cpu", batch_size=2)
    texts = ["I feel low. " * 30, "I feel low.", "Hi."]
    out = policy.generate([[PROMPT[0], {"role": "user", "content": t}] for t in texts], max_new_tokens=6)
    assert seen == [["Hi.", "I feel low.", "I feel low. " * 30]]  # shortest first: little padding per batch
    assert out.texts == [f"answer to {t}" for t in texts]

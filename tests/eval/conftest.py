"""Fixtures of the evaluation tests: one torch thread, the small synthetic corpus, a fake OpenAI-compatible server."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from envs.counseling import demo_corpus

_NONCE = re.compile(r'"nonce" is exactly ([0-9a-f]{32})')
_CRITERION = re.compile(r"^- ([a-z_]+): ", re.MULTILINE)



@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory) -> Path:
    """The 16-dialogue synthetic corpus (splits 12/2/2), generated into a temporary cache."""
    return demo_corpus(cache_dir=tmp_path_factory.mktemp("mmrl-cache"))


class ChatServer:
    """Chat completions on 127.0.0.1 answered by ``answer(messages) -> (status, content)``; records every request.

    A system prompt carrying a judge nonce gets a valid judge verdict with every criterion at ``judge_score``.
    """

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.answer: Callable[[list[dict]], tuple[int, str]] = lambda messages: (200, "")
        self.judge_score = 7
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
                status, content = server.respond(body["messages"])
                if status == 200:
                    payload = {
                        "object": "chat.completion",
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                    }
                    data = json.dumps(payload).encode()
                else:
                    data = json.dumps({"error": content}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def respond(self, messages: list[dict]) -> tuple[int, str]:
        nonce = _NONCE.search(messages[0]["content"])
        if nonce:
            scores = {c: self.judge_score for c in _CRITERION.findall(messages[0]["content"])}
            return 200, json.dumps({"nonce": nonce.group(1), "scores": scores, "rationale": "fine"})
        return self.answer(messages)


@pytest.fixture
def chat_server():
    server = ChatServer()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()

"""The OpenAI-compatible backend: same prompts, greedy, clear errors; and through the CLI."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
import pytest
from typer.testing import CliRunner

from radonc_llm.cli import app
from radonc_llm.errors import RadoncInputError
from radonc_llm.infer.backends import OpenAIBackend
from radonc_llm.tasks.prompts import TASK_PROMPTS, prompt_messages
from tests.infer.sample_cases import SAMPLE_CASES

ANSWERS = {"regimen": "60 Gy in 30 fractions", "modality": "Photon.", "icd10": "C61"}


def _task_of(messages):
    text = messages[-1]["content"]
    return next(t for t, p in TASK_PROMPTS.items() if text.endswith(p.instruction))


def _completion(content, finish="stop"):
    return {
        "id": "x",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish,
            }
        ],
        "usage": {"prompt_tokens": 50, "completion_tokens": 4, "total_tokens": 54},
    }


def test_sends_the_same_prompts_greedily_and_reads_answers(cases):
    requests = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        requests.append((request, body))
        return httpx.Response(200, json=_completion(ANSWERS[_task_of(body["messages"])]))

    backend = OpenAIBackend(
        "http://server:8000/v1/",
        "served-model",
        api_key="k",
        transport=httpx.MockTransport(handler),
    )
    conversations = [prompt_messages("modality", c.diagnosis_text) for c in cases[:3]]
    answers = backend.answer("modality", conversations, decoding="free")
    assert [a.raw for a in answers] == ["Photon."] * 3
    assert all(a.stopped and a.n_new_tokens == 4 for a in answers)
    request, body = requests[0]
    assert str(request.url) == "http://server:8000/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer k"
    assert body["model"] == "served-model" and body["temperature"] == 0.0
    assert body["max_tokens"] == TASK_PROMPTS["modality"].max_new_tokens
    assert sorted(json.dumps(b["messages"]) for _, b in requests) == sorted(
        json.dumps(m) for m in conversations
    )


def test_retries_server_errors_then_fails_clearly(cases):
    calls = {"n": 0}

    def flaky(request):
        calls["n"] += 1
        if calls["n"] == 1:
            return httpx.Response(503, text="loading")
        return httpx.Response(200, json=_completion("C61"))

    backend = OpenAIBackend(
        "http://s/v1", "m", transport=httpx.MockTransport(flaky), retry_wait_s=0.0, concurrency=1
    )
    assert backend.answer("icd10", [prompt_messages("icd10", "x")], decoding="free")[0].raw == "C61"

    def broken(request):
        return httpx.Response(500, text="boom")

    backend = OpenAIBackend(
        "http://s/v1",
        "m",
        transport=httpx.MockTransport(broken),
        sleep=lambda s: None,
        max_retries=1,
    )
    with pytest.raises(RadoncInputError, match=r"HTTP 500.*2 tries"):
        backend.answer("icd10", [prompt_messages("icd10", "x")], decoding="free")

    def refused(request):
        return httpx.Response(404, text="no such model")

    backend = OpenAIBackend("http://s/v1", "m", transport=httpx.MockTransport(refused))
    with pytest.raises(RadoncInputError, match="HTTP 404: no such model"):
        backend.answer("icd10", [prompt_messages("icd10", "x")], decoding="free")

    def junk(request):
        return httpx.Response(200, json={"result": "C61"})

    backend = OpenAIBackend("http://s/v1", "m", transport=httpx.MockTransport(junk))
    answer = backend.answer("icd10", [prompt_messages("icd10", "x")], decoding="free")[0]
    assert answer.raw == "" and answer.malformed_reason == "no choices in the server's answer"


def test_refuses_constrained_decoding_and_bad_urls():
    backend = OpenAIBackend("http://s/v1", "m", transport=httpx.MockTransport(lambda r: None))
    with pytest.raises(RadoncInputError, match="logits"):
        backend.answer("modality", [prompt_messages("modality", "x")], decoding="constrained")
    with pytest.raises(RadoncInputError, match="not an http"):
        OpenAIBackend("localhost:8000", "m")


class _FakeOpenAIServer(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 -- http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path != "/v1/chat/completions" or body.get("model") != "served":
            self.send_response(404)
            self.end_headers()
            return
        payload = json.dumps(_completion(ANSWERS[_task_of(body["messages"])])).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


def test_predict_cli_against_a_real_http_server(tmp_path):
    # Bound and listening once constructed: no waiting for start-up.
    server = HTTPServer(("127.0.0.1", 0), _FakeOpenAIServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        cases = tmp_path / "cases.jsonl"
        cases.write_text("".join(json.dumps(row) + "\n" for row in SAMPLE_CASES[:3]))
        out = tmp_path / "pred.jsonl"
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        args = ["predict", "--backend", "openai", "--base-url", url, "--model-name", "served",
                "--cases", str(cases), "--out", str(out)]  # fmt: skip
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        assert len(rows) == 9
        by_task = {r["task"]: r for r in rows}
        assert by_task["modality"]["prediction"] == "photon"
        assert by_task["icd10"]["prediction"] == "C61"
        assert by_task["regimen"]["prediction"] == "60 Gy in 30 fractions"
        assert {r["backend"] for r in rows} == {"openai"}
        assert {r["model"] for r in rows} == {"served"}
        result = CliRunner().invoke(app, [*args, "--decoding", "constrained"])
        assert result.exit_code == 2 and "cannot constrain" in result.output
    finally:
        server.shutdown()
        server.server_close()

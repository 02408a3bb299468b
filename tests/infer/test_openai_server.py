"""The OpenAI-compatible backend against a real HTTP server (the standard library's, in a
thread) that misbehaves the way real ones do: refused, wrong path, unknown model, missing
key, rate limits, a hang, a connection cut mid-body, odd answers, and a run stopped by Ctrl-C.
"""

from __future__ import annotations

import json
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import anyio
import httpx
import pytest

from radonc_llm.errors import RadoncInputError
from radonc_llm.infer import store as store_module
from radonc_llm.infer.backends import OpenAIBackend
from radonc_llm.infer.predict import predict_cases
from radonc_llm.tasks.prompts import TASK_PROMPTS, prompt_messages
from tests.infer.conftest import prediction_rows

Behaviour = Callable[[BaseHTTPRequestHandler, dict | None], None]


def completion(content, *, finish="stop", **message) -> dict:
    return {
        "id": "x",
        "object": "chat.completion",
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, **message},
                "finish_reason": finish,
            }
        ],
        "usage": {"completion_tokens": 5},
    }


def send(handler, status: int, body=None, *, text: str = "", headers=()) -> None:
    data = json.dumps(body).encode() if body is not None else text.encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json" if body is not None else "text/html")
    handler.send_header("Content-Length", str(len(data)))
    for name, value in headers:
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(data)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as vLLM and llama.cpp server answer

    def do_POST(self):  # noqa: N802 -- http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.seen.append((self.path, dict(self.headers), body))
        self.server.behaviour(self, body)

    def do_GET(self):  # noqa: N802
        self.server.seen.append((self.path, dict(self.headers), None))
        self.server.behaviour(self, None)

    def log_message(self, *args):
        pass


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        """A client that cancels its request leaves the handler a broken pipe: not a failure of
        the test, and its traceback on stderr would land in the CLI output a test reads."""


@pytest.fixture()
def serve() -> Iterator[Callable[[Behaviour], tuple[str, ThreadingHTTPServer]]]:
    """Start servers with a behaviour; each is listening once started (no waiting)."""
    servers: list[ThreadingHTTPServer] = []

    def start(behaviour: Behaviour) -> tuple[str, ThreadingHTTPServer]:
        server = _QuietServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.behaviour, server.seen, server.release = behaviour, [], threading.Event()
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}", server

    yield start
    for server in servers:
        server.release.set()  # frees handlers that hang on purpose
        server.shutdown()
        server.server_close()


def backend(url: str, **options) -> tuple[OpenAIBackend, list[float]]:
    waits: list[float] = []
    options = {"api_key": "", "max_retries": 2, "timeout_s": 5.0, "concurrency": 1, **options}
    return OpenAIBackend(url, "m", sleep=waits.append, **options), waits


def ask(engine: OpenAIBackend, task: str = "icd10"):
    with engine:
        return engine.answer(task, [prompt_messages(task, "prostate, GS 4+3")], decoding="free")[0]


def failure(engine: OpenAIBackend, task: str = "icd10") -> str:
    with pytest.raises(RadoncInputError) as caught:
        ask(engine, task)
    return caught.value.message


def test_a_refused_connection_is_retried_a_bounded_number_of_times_then_named():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    engine, waits = backend(f"http://127.0.0.1:{port}/v1", max_retries=3)
    message = failure(engine)
    assert message.startswith(f"http://127.0.0.1:{port}/v1/chat/completions: icd10: ")
    assert "cannot connect (Connection refused)" in message
    assert "gave up after 4 tries" in message and "rerun the same command" in message
    assert waits == [1.0, 2.0, 4.0]


def test_a_host_name_that_does_not_resolve_is_named():
    def no_such_host(request):
        raise httpx.ConnectError("[Errno -2]") from socket.gaierror(-2, "Name or service not known")

    engine, _ = backend(
        "http://no-such-host.invalid/v1", transport=httpx.MockTransport(no_such_host)
    )
    assert "cannot resolve the host name (Name or service not known)" in failure(engine)


def _vllm(handler, body) -> None:
    """vLLM's routes: the API under /v1, 404 elsewhere, model 'm' only."""
    if handler.path == "/v1/models":
        return send(handler, 200, {"object": "list", "data": [{"id": "m"}, {"id": "m-lora"}]})
    if handler.path != "/v1/chat/completions":
        return send(handler, 404, {"detail": "Not Found"})
    if body["model"] != "m":
        message = f"The model `{body['model']}` does not exist."
        return send(handler, 404, {"error": {"message": message, "code": 404}})
    send(handler, 200, completion("Malignant neoplasm of prostate (C61)"))


def test_a_base_url_without_v1_says_where_the_api_is(serve):
    url, server = serve(_vllm)
    message = failure(backend(url)[0])
    assert "HTTP 404: Not Found; no OpenAI API at this address" in message
    assert f"--base-url {url}/v1" in message
    assert [path for path, _, body in server.seen if body] == ["/chat/completions"]  # no retry


def test_the_full_endpoint_given_as_base_url_is_taken_as_its_root(serve):
    url, _ = serve(_vllm)
    assert ask(backend(f"{url}/v1/chat/completions/")[0]).raw.endswith("(C61)")


def test_an_unknown_model_lists_the_models_the_server_serves(serve):
    url, _ = serve(_vllm)
    engine = OpenAIBackend(f"{url}/v1", "smollm2", max_retries=0)
    message = failure(engine)
    assert "HTTP 404: The model `smollm2` does not exist." in message
    assert "the server serves m, m-lora: give one of them as --model-name" in message


def _needs_key(handler, body) -> None:
    if handler.headers.get("Authorization") != "Bearer sk-right-key-000":
        return send(handler, 401, {"error": {"message": "Invalid API key", "type": "auth"}})
    send(handler, 200, completion("C61"))


def test_a_missing_or_refused_api_key_says_which_and_never_shows_the_key(serve, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    url, server = serve(_needs_key)
    message = failure(OpenAIBackend(f"{url}/v1", "m"))
    assert "HTTP 401: Invalid API key; check the API key: none was sent" in message
    assert "Authorization" not in server.seen[0][1]
    message = failure(OpenAIBackend(f"{url}/v1", "m", api_key="sk-wrong-key-111"))
    assert "the server refused the one in OPENAI_API_KEY" in message
    assert "sk-wrong-key-111" not in message and len(server.seen) == 2  # neither retried
    monkeypatch.setenv("OPENAI_API_KEY", "sk-right-key-000")
    assert ask(OpenAIBackend(f"{url}/v1", "m")).raw == "C61"


def test_rate_limits_and_intermittent_5xx_are_retried_with_retry_after(serve):
    replies = iter(
        [
            (429, {"error": {"message": "rate limited"}}, [("Retry-After", "7")]),
            (503, None, []),
            (500, {"error": {"message": "CUDA error"}}, []),
        ]
    )

    def flaky(handler, body):
        status, payload, headers = next(replies, (200, completion(" C61\n"), []))
        send(handler, status, payload, text="<html>Service Unavailable</html>", headers=headers)

    url, server = serve(flaky)
    engine, waits = backend(f"{url}/v1", max_retries=3)
    assert ask(engine).raw == "C61"
    assert waits == [7.0, 2.0, 4.0] and len(server.seen) == 4


def test_a_server_that_never_answers_times_out_and_is_named(serve):
    def hangs(handler, body):
        handler.server.release.wait()

    url, _ = serve(hangs)
    engine, waits = backend(f"{url}/v1", timeout_s=0.2, max_retries=1)
    message = failure(engine)
    assert "no answer within 0.2 s" in message and "gave up after 2 tries" in message
    assert waits == [1.0]


def test_a_connection_cut_mid_body_is_retried_not_recorded(serve):
    cuts = [True]

    def cut_once(handler, body):
        if not cuts:
            return send(handler, 200, completion("C61"))
        cuts.pop()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", "400")
        handler.end_headers()
        handler.wfile.write(b'{"choices": [{"message": {"content": "C6')
        handler.wfile.flush()
        handler.connection.shutdown(socket.SHUT_RDWR)
        handler.close_connection = True

    url, server = serve(cut_once)
    engine, waits = backend(f"{url}/v1")
    assert ask(engine).raw == "C61" and len(waits) == 1 and len(server.seen) == 2


def test_a_body_that_is_not_json_stops_the_run_without_a_row(serve, cases, tmp_path):
    url, _ = serve(
        lambda handler, body: send(handler, 200, text="<html>Log in to the proxy</html>")
    )
    engine, waits = backend(f"{url}/v1", max_retries=1)
    out = tmp_path / "pred.jsonl"
    with engine, pytest.raises(RadoncInputError) as caught:
        predict_cases(engine, cases, out, tasks=["icd10"], show_progress=False)
    assert "the server's answer is not JSON" in caught.value.message
    assert "Log in to the proxy" in caught.value.message and len(waits) == 1
    assert out.read_text() == ""  # a transport failure is never a (malformed) answer


@pytest.mark.parametrize(
    ("reply", "prediction", "reason", "stopped"),
    [
        # A reasoning model (vLLM --reasoning-parser, Ollama) that spent its tokens thinking.
        (
            completion("", finish="length", reasoning_content="The patient has..."),
            None,
            "reasoning only, no answer content (cut at the icd10 answer limit of 56 tokens)",
            False,
        ),
        (completion(None, reasoning="so C61"), None, "reasoning only, no answer content", True),
        ({"id": "x", "choices": []}, None, "no choices in the server's answer", None),
        (completion(None), None, "message content is null", True),
        # Cut, yet readable: kept, and marked by `stopped`.
        (completion("Malignant neoplasm of prostate (C61)", finish="length"), "C61", None, False),
        (completion("```\nC61\n```"), "C61", None, True),
        (completion("<think>\nGleason 7, so prostate.\n</think>\n\n  C61  \n"), "C61", None, True),
        (completion("<think>Gleason 7 so", finish="length"), None, "after the reasoning", False),
    ],
)
def test_odd_answers_are_rows_that_say_what_was_odd(
    serve, cases, tmp_path, reply, prediction, reason, stopped
):
    url, _ = serve(lambda handler, body: send(handler, 200, reply))
    out = tmp_path / "pred.jsonl"
    with backend(f"{url}/v1")[0] as engine:
        predict_cases(engine, cases[:1], out, tasks=["icd10"], show_progress=False)
    (row,) = prediction_rows(out)
    assert row["prediction"] == prediction and row["malformed"] == (prediction is None)
    assert row["stopped"] is stopped
    if reason is None:
        assert row["malformed_reason"] is None
    else:
        assert reason in row["malformed_reason"]


def test_ctrl_c_keeps_every_finished_answer_and_cancels_the_requests_in_flight(
    cases, tmp_path, monkeypatch
):
    """Three answers come back at once, then the server stalls and the user presses Ctrl-C:
    the three rows are in the file, the stalled requests are cancelled (not waited for),
    and a rerun ends with the same file as a run never interrupted."""
    written = threading.Event()
    appended = []
    real_append = store_module.PredictionStore.append

    def append(self, row):
        real_append(self, row)
        appended.append(row["case_id"])
        if len(appended) == 3:
            written.set()

    monkeypatch.setattr(store_module.PredictionStore, "append", append)
    main = threading.main_thread().ident
    asked: list[str] = []
    cancelled: list[str] = []
    stalled = threading.Event()

    async def stalls_after_three(request):
        # One request at a time (concurrency 1), so the first three asked are the first three
        # rows; with two in flight, the 4th case's request may arrive before the 3rd's.
        text = json.loads(request.content)["messages"][-1]["content"]
        asked.append(text)
        if len(asked) > 3:
            stalled.set()
            try:
                await anyio.sleep_forever()
            finally:
                cancelled.append(text)
        return httpx.Response(200, json=completion("C61" if "prostate" in text else "C50.911"))

    def press_ctrl_c() -> None:
        # Once the three rows are written and the 4th request hangs (or a minute has passed).
        written.wait(timeout=60)
        stalled.wait(timeout=60)
        signal.pthread_kill(main, signal.SIGINT)

    out = tmp_path / "pred.jsonl"
    engine = OpenAIBackend(
        "http://server/v1", "m", concurrency=1, transport=httpx.MockTransport(stalls_after_three)
    )
    # pytest started in the background by a shell without job control (a script or CI step
    # running `pytest &`) inherits SIGINT ignored: restore Python's own handler, which raises
    # KeyboardInterrupt, for this test.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Thread(target=press_ctrl_c, daemon=True).start()
        with pytest.raises(KeyboardInterrupt), engine:
            predict_cases(engine, cases, out, tasks=["icd10"], show_progress=False)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert written.is_set() and len(prediction_rows(out)) == 3
    # The stalled request in flight is cancelled, not waited on.
    assert len(asked) == 4 and cancelled == asked[3:]

    monkeypatch.setattr(store_module.PredictionStore, "append", real_append)
    answers = httpx.MockTransport(
        lambda request: httpx.Response(
            200,
            json=completion("C61" if b"prostate" in request.content else "C50.911"),
        )
    )
    whole = tmp_path / "whole.jsonl"
    for path in (out, whole):
        with OpenAIBackend("http://server/v1", "m", transport=answers) as engine:
            predict_cases(engine, cases, path, tasks=["icd10"], show_progress=False)
    assert prediction_rows(out) == prediction_rows(whole)
    assert len(prediction_rows(whole)) == len(cases)


def test_answers_keep_their_order_with_several_requests_in_flight(serve, cases, tmp_path):
    """Later prompts answered first (a real server's concurrency) still land in case order."""

    def echo(handler, body):
        send(handler, 200, completion(body["messages"][-1]["content"][:20]))

    url, server = serve(echo)
    out = tmp_path / "pred.jsonl"
    with backend(f"{url}/v1", concurrency=4)[0] as engine:
        predict_cases(engine, cases, out, tasks=["regimen"], show_progress=False)
    rows = prediction_rows(out)
    asked = [body["messages"][-1]["content"][:20] for _, _, body in server.seen]
    assert sorted(row["raw"] for row in rows) == sorted(asked)
    assert len(rows) == len(cases) and all(
        body["max_tokens"] == TASK_PROMPTS["regimen"].max_new_tokens for _, _, body in server.seen
    )


def test_the_predict_command_names_the_server_and_the_fix_without_a_traceback(
    serve, tmp_path, monkeypatch
):
    from typer.testing import CliRunner

    from radonc_llm.cli import app
    from tests.infer.sample_cases import SAMPLE_CASES

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    url, _ = serve(_needs_key)
    cases = tmp_path / "cases.jsonl"
    cases.write_text("".join(json.dumps(row) + "\n" for row in SAMPLE_CASES[:2]))
    out = tmp_path / "pred.jsonl"
    args = ["predict", "--backend", "openai", "--base-url", f"{url}/v1", "--model-name", "m",
            "--cases", str(cases), "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"{url}/v1/chat/completions" in result.output
    assert "none was sent (set OPENAI_API_KEY)" in " ".join(result.output.split())
    assert out.read_text() == ""

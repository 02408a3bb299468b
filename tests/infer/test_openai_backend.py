"""The OpenAI-compatible backend against a misbehaving server: retries, clear errors,
malformed answers instead of crashes or guesses, resumable runs, no API key in any output."""

from __future__ import annotations

import json

import httpx
import pytest

from radonc_llm.errors import RadoncInputError
from radonc_llm.infer.backends import Answer, OpenAIBackend, completion_answer
from radonc_llm.infer.predict import predict_cases, prediction_row
from radonc_llm.tasks.prompts import prompt_messages

KEY = "sk-test-secret-1234"


def _completion(content, **message):
    return {
        "model": "m",
        "choices": [{"message": {"role": "assistant", "content": content, **message}}],
    }


def _backend(handler, **options) -> tuple[OpenAIBackend, list[float]]:
    """A backend on `handler` whose waits between tries are recorded, not slept."""
    waits: list[float] = []
    options = {"api_key": KEY, "concurrency": 1, **options}
    backend = OpenAIBackend(
        "http://server/v1", "m", transport=httpx.MockTransport(handler), sleep=waits.append,
        **options,
    )  # fmt: skip
    return backend, waits


def _ask(backend: OpenAIBackend, task: str = "icd10") -> Answer:
    return backend.answer(task, [prompt_messages(task, "x")], decoding="free")[0]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"id": "x"}, "no choices in the server's answer"),
        ({"choices": []}, "no choices in the server's answer"),
        ([1, 2], "no choices in the server's answer"),
        ({"choices": [{"text": "C61"}]}, "no message in the server's answer"),
        ({"choices": ["C61"]}, "no message in the server's answer"),
        (_completion(None), "message content is null"),
        (_completion(None, reasoning_content="so: C61"), "reasoning only, no answer content"),
        (_completion([{"type": "text", "text": "C61"}]), "message content is a list, not text"),
        (_completion(" \n\t"), "empty content"),
    ],
)
def test_an_odd_answer_is_malformed_never_guessed(body, reason):
    answer = completion_answer(body)
    assert answer == Answer(raw="", malformed_reason=reason)
    row = prediction_row("c01", "icd10", answer, seconds=0.1)
    assert row["malformed"] and row["prediction"] is None
    assert row["malformed_reason"] == reason


def test_a_plain_answer_is_read_and_stripped_whatever_its_usage():
    body = {**_completion("\n  C61  \n"), "usage": "n/a"}
    body["choices"][0]["finish_reason"] = "length"
    answer = completion_answer(body)
    assert answer == Answer(raw="C61", stopped=False)


def test_a_stream_nobody_asked_for_is_malformed():
    def stream(request):
        assert json.loads(request.content)["stream"] is False
        chunk = json.dumps({"choices": [{"delta": {"content": "C61"}}]})
        text = f"data: {chunk}\n\ndata: [DONE]\n\n"
        return httpx.Response(200, text=text, headers={"content-type": "text/event-stream"})

    backend, _ = _backend(stream)
    assert "streamed" in _ask(backend).malformed_reason


def test_transient_failures_are_retried_with_backoff_and_retry_after():
    replies = iter(
        [
            httpx.Response(429, json={"error": {"message": "slow down"}}, headers={"Retry-After": "7"}),
            httpx.Response(503, html="<html><title>503 Service Unavailable</title></html>"),
            httpx.ConnectError("Connection refused"),
            httpx.Response(200, html="<html>proxy login</html>"),
            httpx.Response(200, json=_completion("C61")),
        ]
    )  # fmt: skip

    def flaky(request):
        reply = next(replies)
        if isinstance(reply, Exception):
            raise reply
        return reply

    backend, waits = _backend(flaky, retry_wait_s=1.0, max_retries=4)
    assert _ask(backend).raw == "C61"
    assert waits == [7.0, 2.0, 4.0, 8.0]


def test_retry_delay_doubles_honours_retry_after_and_is_capped():
    backend, _ = _backend(lambda request: None, retry_wait_s=0.5)
    assert [backend.retry_delay(n) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert backend.retry_delay(1, "3") == 3.0
    assert backend.retry_delay(3, "1") == 2.0
    assert backend.retry_delay(1, "86400") == 60.0
    assert backend.retry_delay(1, "Wed, 21 Oct 2015 07:28:00 GMT") == 0.5
    assert backend.retry_delay(20) == 60.0


def test_gives_up_after_bounded_tries_naming_url_status_and_server_text():
    calls = []

    def down(request):
        calls.append(request)
        return httpx.Response(500, json={"error": {"message": "CUDA out of memory"}})

    backend, waits = _backend(down, max_retries=2)
    with pytest.raises(RadoncInputError) as caught:
        _ask(backend, "regimen")
    message = caught.value.message
    assert message.startswith("http://server/v1/chat/completions: regimen: HTTP 500: CUDA out")
    assert "gave up after 3 tries" in message and "rerun" in message
    assert len(calls) == 3 and len(waits) == 2


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (
            httpx.Response(401, json={"error": {"message": "Incorrect API key: Bearer " + KEY}}),
            "HTTP 401: Incorrect API key: Bearer ***; check the API key",
        ),
        (
            httpx.Response(404, json={"error": {"message": "The model `m` does not exist."}}),
            "HTTP 404: The model `m` does not exist.; check --base-url",
        ),
        (
            httpx.Response(404, html="<html><body><h1>Not Found</h1></body></html>"),
            "HTTP 404: Not Found; check --base-url",
        ),
        (
            httpx.Response(307, headers={"location": "https://server/v1/chat/completions"}),
            "redirected to https://server/v1/chat/completions; use --base-url https://server/v1",
        ),
    ],
)
def test_client_errors_stop_at_once_with_the_servers_words(response, expected):
    calls = []

    def handler(request):
        calls.append(request)
        return response

    backend, _ = _backend(handler)
    with pytest.raises(RadoncInputError, match="^http://server/v1/chat/completions: icd10: ") as e:
        _ask(backend)
    assert expected in e.value.message and KEY not in e.value.message
    assert [c.method for c in calls if c.method == "POST"] == ["POST"]  # not retried


def test_bad_base_urls_fail_at_construction():
    for url in ("http://", "ftp://server/v1", "localhost:8000"):
        with pytest.raises(RadoncInputError, match="base_url"):
            OpenAIBackend(url, "m")


def test_a_url_password_is_hidden_in_messages():
    def refused(request):
        raise httpx.ConnectError("Connection refused")

    backend = OpenAIBackend(
        "http://user:hunter22@server/v1", "m", transport=httpx.MockTransport(refused),
        max_retries=0,
    )  # fmt: skip
    with pytest.raises(RadoncInputError) as caught:
        _ask(backend)
    assert "hunter22" not in caught.value.message and "user:***@server" in caught.value.message


def test_a_server_that_names_another_model_is_warned_about_once():
    def other(request):
        return httpx.Response(200, json={**_completion("C61"), "model": "llama-3-8b"})

    backend, _ = _backend(other)
    with pytest.warns(UserWarning, match="answers as model 'llama-3-8b', not 'm'") as record:
        assert [_ask(backend).raw, _ask(backend).raw] == ["C61", "C61"]
    assert len(record) == 1


def test_concurrent_answers_keep_their_order():
    def echo(request):
        text = json.loads(request.content)["messages"][-1]["content"]
        return httpx.Response(200, json=_completion(text))

    backend, _ = _backend(echo, concurrency=4)
    conversations = [[{"role": "user", "content": str(n)}] for n in range(10)]
    answers = backend.answer("icd10", conversations, decoding="free")
    assert [a.raw for a in answers] == [str(n) for n in range(10)]


def test_a_failed_run_keeps_its_rows_and_a_rerun_completes_them(cases, tmp_path):
    out = tmp_path / "pred.jsonl"
    served = []

    def dies_after_two(request):
        if len(served) >= 2:
            raise httpx.ConnectError("Connection refused")
        served.append(request)
        return httpx.Response(200, json=_completion("C61"))

    backend, _ = _backend(dies_after_two, max_retries=1)
    with pytest.raises(RadoncInputError, match="Connection refused") as failed:
        predict_cases(backend, cases, out, tasks=["icd10"], batch_size=1, show_progress=False)
    written = [json.loads(line)["case_id"] for line in out.read_text().splitlines()]
    assert len(written) == 2
    # The error names the case it was answering: one not written yet.
    named = failed.value.reason.split("while answering icd10 for ")[1].rstrip(")")
    assert named in {case.case_id for case in cases} - set(written)

    odd = iter([{"choices": []}, _completion(None)])

    def back_up(request):
        return httpx.Response(200, json=next(odd, _completion("C61")))

    backend, _ = _backend(back_up)
    predict_cases(backend, cases, out, tasks=["icd10"], batch_size=1, show_progress=False)
    text = out.read_text()
    rows = [json.loads(line) for line in text.splitlines()]
    assert sorted(r["case_id"] for r in rows) == sorted(c.case_id for c in cases)
    assert sum(r["malformed"] for r in rows) == 2
    assert KEY not in text


def test_an_error_sent_with_status_200_is_a_failure_not_an_answer():
    def overloaded(request):
        return httpx.Response(200, json={"error": {"message": "model overloaded"}})

    backend, waits = _backend(overloaded, max_retries=1)
    with pytest.raises(RadoncInputError, match="answered with an error: model overloaded"):
        _ask(backend)
    assert len(waits) == 1


def _too_long(request):
    return httpx.Response(
        400,
        json={
            "error": {
                "message": "This model's maximum context length is 2048 tokens. However, you "
                "requested 5000 tokens.",
                "code": "context_length_exceeded",
            }
        },
    )


def test_a_prompt_too_long_for_the_server_is_that_cases_malformed_row(cases, tmp_path):
    long_case = cases[1].case_id
    calls = []

    def handler(request):
        calls.append(request)
        if long_case in request.content.decode():
            return _too_long(request)
        return httpx.Response(200, json=_completion("C61"))

    cases = [
        c.model_copy(update={"diagnosis_text": f"{c.case_id} {c.diagnosis_text}"}) for c in cases
    ]
    out = tmp_path / "pred.jsonl"
    backend, waits = _backend(handler)
    predict_cases(backend, cases, out, tasks=["icd10"], batch_size=1, show_progress=False)
    rows = {json.loads(line)["case_id"]: json.loads(line) for line in out.read_text().splitlines()}
    assert set(rows) == {c.case_id for c in cases}
    assert rows[long_case]["malformed"] and rows[long_case]["prediction"] is None
    assert "longer than the server's context" in rows[long_case]["malformed_reason"]
    assert "maximum context length is 2048" in rows[long_case]["malformed_reason"]
    assert sum(r["malformed"] for r in rows.values()) == 1
    assert waits == [] and len(calls) == len(cases)  # not retried


def test_a_server_whose_context_fits_no_prompt_stops_the_run():
    backend, _ = _backend(_too_long)
    conversations = [prompt_messages("icd10", str(n)) for n in range(4)]
    with pytest.raises(RadoncInputError, match="rejected all 4 prompts so far") as e:
        backend.answer("icd10", conversations, decoding="free")
    assert "--max-model-len" in e.value.message


def test_an_answer_far_longer_than_asked_for_is_cut_and_malformed():
    answer = completion_answer(_completion("C61 " * 10_000))
    assert len(answer.raw) == 20_000
    assert answer.malformed_reason == "an answer of 39,999 characters (cut to 20,000)"


def test_a_filtered_answer_says_so_and_a_cut_one_is_not_stopped():
    body = _completion("")
    body["choices"][0]["finish_reason"] = "content_filter"
    answer = completion_answer(body)
    assert (
        answer.raw == ""
        and answer.malformed_reason == "the server's content filter withheld the answer"
    )
    body = _completion("", reasoning_content="Gleason 4+3 means")
    body["choices"][0]["finish_reason"] = "length"
    answer = completion_answer(body)
    assert (
        answer.malformed_reason == "reasoning only, no answer content" and answer.stopped is False
    )
    row = prediction_row("c01", "modality", answer, seconds=0.1)
    assert row["malformed_reason"].endswith("(cut at the modality answer limit of 6 tokens)")

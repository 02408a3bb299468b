"""Where answers come from: a local transformers model or an OpenAI-compatible server.

Both receive the same chat messages (`tasks.prompts`) and return raw answers; extraction and
storage are the same for both. Only the local backend can constrain decoding (label scoring
and the ICD-10 trie need the model's logits).

Registered by short name in `BACKENDS`: `transformers` (default) and `openai`
(`--base-url http://host:8000/v1 --model-name NAME`: vLLM, llama.cpp server, Ollama ...;
an `OPENAI_API_KEY` in the environment is sent as a bearer token).
"""

from __future__ import annotations

import os
import re
import socket
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, wait
from contextlib import closing
from dataclasses import dataclass
from typing import Any, Protocol

from radonc_llm.errors import RadoncInputError
from radonc_llm.tasks.prompts import TASK_PROMPTS

DECODINGS: tuple[str, ...] = ("free", "constrained")
Conversation = Sequence[dict[str, str]]


@dataclass(frozen=True)
class Answer:
    """A backend's answer to one prompt; `prediction` is set only by constrained decoding."""

    raw: str
    prediction: str | None = None
    logprob: float | None = None
    scores: dict[str, float] | None = None
    n_new_tokens: int | None = None
    stopped: bool | None = None
    # Why an answer of a server is unreadable (no choices, null content ...); raw is then "".
    malformed_reason: str | None = None


class Backend(Protocol):
    name: str
    model_name: str
    supports_constrained: bool

    def answer(
        self, task: str, conversations: Sequence[Conversation], *, decoding: str
    ) -> list[Answer]: ...


class TransformersBackend:
    """A local causal LM: batched greedy generation, label scoring, ICD-10 trie."""

    name = "transformers"
    supports_constrained = True

    def __init__(
        self, model: Any, tokenizer: Any, *, model_name: str, pack_weights: bool = True
    ) -> None:
        from radonc_llm.infer.generate import PrefixCache
        from radonc_llm.models.attention import use_grouped_attention
        from radonc_llm.models.packed import pack_linears

        self.model = model.eval()
        if self.model.device.type == "cpu" and hasattr(self.model, "set_attn_implementation"):
            # Grouped-query attention through torch's fused kernel, without copying the KV
            # cache per query head: faster than eager or transformers' SDPA, and long notes
            # never hold a (tokens x tokens) score matrix (see there).
            use_grouped_attention(self.model, fused=True)
        if pack_weights:
            # Weights packed once for oneDNN: decoding steps ~1.6x faster on a CPU (see there).
            pack_linears(self.model)
        self.tokenizer = tokenizer
        self.model_name = model_name
        self._prefix_caches: dict[str, PrefixCache] = {}

    @classmethod
    def load(
        cls,
        name_or_path: str,
        *,
        dtype: Any = None,
        device: str | None = None,
        pack_weights: bool = True,
    ) -> TransformersBackend:
        """Load a registry name, run or model folder onto `device` (default: the GPU where
        there is one, else the CPU) in `dtype` (default float32). `pack_weights=False` keeps
        the plain `nn.Linear` layers (a model to compare with, or to hand to other code)."""
        import torch

        from radonc_llm.models.precision import inference_device
        from radonc_llm.models.registry import load_model, resolve_model

        dtype = dtype or torch.float32
        # A training run loads as base + adapter: fold the adapter into the weights (in fp32,
        # then cast), so inference runs plain matmuls instead of base + two LoRA matmuls each.
        is_run = resolve_model(name_or_path).source == "run"
        model, tokenizer = load_model(name_or_path, dtype=torch.float32 if is_run else dtype)
        if hasattr(model, "merge_and_unload"):
            model = model.merge_and_unload()
        model = model.to(device=device or inference_device(), dtype=dtype)
        return cls(model, tokenizer, model_name=name_or_path, pack_weights=pack_weights)

    def prompt_lengths(
        self, task: str, conversations: Sequence[Conversation]
    ) -> tuple[int | None, list[int]]:
        """The model's context length (None where its config has none) and the length in
        tokens of each prompt (the same for every task: `task` is for per-task runs)."""
        from radonc_llm.infer.generate import chat_prompt_ids

        context = getattr(self.model.config, "max_position_embeddings", None)
        lengths = [len(chat_prompt_ids(self.tokenizer, messages)) for messages in conversations]
        return (context if isinstance(context, int) else None), lengths

    def answer(
        self, task: str, conversations: Sequence[Conversation], *, decoding: str
    ) -> list[Answer]:
        from radonc_llm.infer.generate import PrefixCache, _pad_id, chat_prompt_ids, run_prompts

        prompts = [chat_prompt_ids(self.tokenizer, messages) for messages in conversations]
        prefix_cache = self._prefix_caches.setdefault(task, PrefixCache())
        state = run_prompts(
            self.model, prompts, pad_id=_pad_id(self.tokenizer), prefix_cache=prefix_cache
        )
        return self._answers_after(task, state, decoding=decoding)

    def answer_tasks(
        self, conversations: dict[str, Sequence[Conversation]], *, decoding: str
    ) -> dict[str, list[Answer]]:
        """Answers to several tasks for the same cases (`conversations[task][row]`): the part
        of a case's prompts that all tasks share (the note) runs once, then each task's
        question (`run_prompt_branches`). The answers equal those of `answer`, task by task."""
        from radonc_llm.infer.generate import (
            PrefixCache,
            _pad_id,
            chat_prompt_ids,
            run_prompt_branches,
        )

        tasks = list(conversations)
        branches = [
            [chat_prompt_ids(self.tokenizer, messages) for messages in conversations[task]]
            for task in tasks
        ]
        prefix_cache = self._prefix_caches.setdefault(",".join(tasks), PrefixCache())
        states = run_prompt_branches(
            self.model, branches, pad_id=_pad_id(self.tokenizer), prefix_cache=prefix_cache
        )
        # One task's state at a time: each is answered before the next is built.
        return {
            task: self._answers_after(task, state, decoding=decoding)
            for task, state in zip(tasks, states, strict=True)
        }

    def _answers_after(self, task: str, state: Any, *, decoding: str) -> list[Answer]:
        """The answers of `task` to prompts that have already run (`state`)."""
        from radonc_llm.infer.constrained import (
            ICD10_BEAMS,
            ICD10_MARGIN,
            icd10_walk_after,
            score_labels_after,
        )
        from radonc_llm.infer.generate import generate_after

        if decoding == "constrained" and task == "modality":
            results = score_labels_after(self.model, self.tokenizer, state)
            return [
                Answer(raw=r.answer, prediction=r.answer, logprob=r.logprob, scores=r.scores)
                for r in results
            ]
        if decoding == "constrained" and task == "icd10":
            results = icd10_walk_after(
                self.model, self.tokenizer, state, beams=ICD10_BEAMS, margin=ICD10_MARGIN
            )
            return [Answer(raw=r.answer, prediction=r.answer, logprob=r.logprob) for r in results]
        generations = generate_after(
            self.model, self.tokenizer, state, max_new_tokens=TASK_PROMPTS[task].max_new_tokens
        )
        return [
            Answer(raw=g.text, n_new_tokens=len(g.token_ids), stopped=g.stopped)
            for g in generations
        ]


# Statuses worth another try: the server is busy, restarting, or behind a flaky proxy.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_RETRY_WAIT_S = 60.0  # the longest wait between tries, whatever Retry-After asks for
# How servers say that one prompt does not fit (vLLM, OpenAI, llama.cpp server, TGI ...):
# that case's problem, recorded as malformed, unless no prompt has fitted at all.
_TOO_LONG_RE = re.compile(
    r"context[ _]length|maximum context|context (?:size|window)|max_model_len|too many tokens"
    r"|prompt is too long|(?:input|prompt) (?:is )?too long|exceeds? the (?:available )?context"
    r"|maximum (?:input|sequence) length",
    re.IGNORECASE,
)
TOO_LONG_STATUSES = frozenset({400, 413, 422})
# An answer this long cannot be one of ours (regimens take at most a few hundred characters):
# a server that ignores max_tokens; the text is cut and the answer marked malformed.
MAX_ANSWER_CHARS = 20_000
MIN_TOO_LONG_TO_STOP = 3
_TOO_LONG_PREFIX = "the prompt is longer than the server's context: "
_ENDPOINT = "/chat/completions"


class _Transient(Exception):
    """A failure worth another try: a busy or restarting server, a flaky proxy, or a 2xx body
    that is no chat completion at all (HTML, cut-short JSON), so not the model's answer."""

    def __init__(self, reason: str, *, retry_after: str | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


def server_error_text(response: Any) -> str:
    """What a failed response says: the JSON error message, else the words of the body
    (an HTML error page without its tags)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        text = error.get("message") if isinstance(error, dict) else error
        text = text or body.get("detail") or body.get("message")
        if isinstance(text, str) and text.strip():
            return _short(text)
    return _short(re.sub(r"<[^>]+>", " ", response.text)) or "(empty body)"


def transport_failure(exc: Exception, *, timeout_s: float) -> str:
    """What went wrong on the way to the server, in words (no answer came back at all)."""
    import httpx

    detail = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectTimeout):
        return f"no connection within {timeout_s:g} s (is the host right and reachable?)"
    if isinstance(exc, httpx.ConnectError):
        cause = _os_error_under(exc)
        if isinstance(cause, socket.gaierror):
            return f"cannot resolve the host name ({cause.strerror}): check --base-url"
        if cause is not None:  # anyio says "All connection attempts failed"; say which way
            detail = os.strerror(cause.errno)
        return f"cannot connect ({detail}): is the server running at this host and port?"
    if isinstance(exc, httpx.TimeoutException):
        return (
            f"no answer within {timeout_s:g} s (the server is overloaded or stuck; a slow "
            "server needs a longer timeout)"
        )
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return f"the connection broke before the answer was complete ({detail})"
    return f"request failed ({type(exc).__name__}: {detail})"


def _os_error_under(exc: BaseException) -> OSError | None:
    """The operating system's error that an HTTP client's error wraps, if any."""
    seen: BaseException | None = exc
    for _ in range(10):
        seen = seen.__cause__ or seen.__context__ if seen is not None else None
        if isinstance(seen, OSError) and isinstance(seen.errno, int):
            return seen
    return None


def _odd(reason: str) -> Answer:
    return Answer(raw="", malformed_reason=reason)


# finish_reason values meaning "cut at max_tokens" (OpenAI, vLLM, llama.cpp, Ollama use
# "length"; some proxies pass Anthropic's or TGI's words through).
_CUT_FINISHES = frozenset({"length", "max_tokens", "model_length"})


def completion_answer(body: Any) -> Answer:
    """The answer in a parsed chat completion. An odd shape gives an empty answer with a
    `malformed_reason`, never a guess: reasoning fields and other choices are not read.

    `stopped` is False for an answer cut at the task's token limit (finish_reason "length"),
    so a cut answer is marked in its row whether or not its text still reads as an answer.
    """
    choices = body.get("choices") if isinstance(body, dict) else None
    if not isinstance(choices, list) or not choices:
        return _odd("no choices in the server's answer")
    choice = choices[0]
    message = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(message, dict):
        return _odd("no message in the server's answer")
    finish = choice.get("finish_reason")
    stopped = None if not isinstance(finish, str) else finish not in _CUT_FINISHES
    usage = body.get("usage")
    tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
    tokens = tokens if isinstance(tokens, int) else None
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        return _odd(f"message content is a {type(content).__name__}, not text")
    raw = (content or "").strip()
    reason = None
    if not raw:
        reasoning = message.get("reasoning_content") or message.get("reasoning")
        if reasoning:
            # vLLM and Ollama put a reasoning model's thoughts beside the content: the
            # model spent its tokens thinking and gave no answer.
            reason = "reasoning only, no answer content"
        elif finish == "content_filter":
            reason = "the server's content filter withheld the answer"
        else:
            reason = "message content is null" if content is None else "empty content"
    elif len(raw) > MAX_ANSWER_CHARS:
        reason = f"an answer of {len(raw):,} characters (cut to {MAX_ANSWER_CHARS:,})"
        raw = raw[:MAX_ANSWER_CHARS]
    return Answer(raw=raw, n_new_tokens=tokens, stopped=stopped, malformed_reason=reason)


class OpenAIBackend:
    """An OpenAI-compatible `/chat/completions` endpoint, greedy (temperature 0).

    `base_url` is the API root (`http://host:8000/v1`); a URL ending in the endpoint itself
    (`.../v1/chat/completions`) is taken as its root. Up to `concurrency` requests are in
    flight, across batch boundaries; answers come back in order.

    Transient failures (connection refused or broken, timeouts, 408/429/5xx, a 2xx body that
    is not a chat completion) are retried `max_retries` times, waiting `retry_wait_s` doubled
    each time (or the server's Retry-After, at most a minute); then the run stops with the
    server's URL and what went wrong, and no row is written for that prompt. Other HTTP
    errors (401, 404 ...) stop at once. A chat completion of an odd shape (no choices, null
    or empty content, reasoning only) is the server's answer to that prompt: it is returned
    empty with a `malformed_reason` and recorded as a malformed row, and so is a prompt the
    server rejects as longer than its context, unless no prompt of the run has fitted yet
    (then the server's context setting is at fault and the run stops). The API key never
    appears in a message.

    Requests run on an event loop in a helper thread (`anyio`'s blocking portal), so an
    interrupted run (Ctrl-C) or a failure cancels the requests in flight at once instead of
    waiting out their timeouts.
    """

    name = "openai"
    supports_constrained = False
    # Each prompt is its own request: batching buys nothing, so rows are written one by one.
    batched = False

    def __init__(
        self,
        base_url: str,
        model_name: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        concurrency: int = 4,
        max_retries: int = 4,
        retry_wait_s: float = 1.0,
        transport: Any = None,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        import httpx

        try:
            url = httpx.URL(base_url)
        except httpx.InvalidURL as exc:
            raise RadoncInputError(f"'{base_url}' is not a URL ({exc})", field="base_url") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise RadoncInputError(f"'{base_url}' is not an http(s) URL", field="base_url")
        self.base_url = base_url.rstrip("/").removesuffix(_ENDPOINT)
        self.model_name = model_name
        self.timeout_s = timeout_s
        self.concurrency = max(1, concurrency)
        self.max_retries = max(0, max_retries)
        self.retry_wait_s = retry_wait_s
        self._sleep = sleep  # tests record the waits instead of sleeping
        self._warned_model = False
        self._fitted = 0  # prompts the server took (answered, even oddly)
        self._too_long = 0  # prompts it rejected as longer than its context
        api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self._sends_key = bool(api_key)
        # Servers echo a rejected key ("Incorrect API key provided: ..."); hide it and any URL
        # password. Keys of 1-3 characters ("x") are placeholders, and hiding them would
        # garble every message.
        self._secrets = [s for s in (api_key, url.password) if s and len(s) >= 4]
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(timeout=timeout_s, headers=headers, transport=transport)
        self._portal_cm: Any = None
        self._portal: Any = None
        self._slots: Any = None

    @property
    def url(self) -> str:
        return f"{self.base_url}{_ENDPOINT}"

    def _open_portal(self) -> Any:
        if self._portal is None:
            import anyio
            from anyio.from_thread import start_blocking_portal

            self._portal_cm = start_blocking_portal(name="openai-backend")
            self._portal = self._portal_cm.__enter__()
            self._slots = anyio.Semaphore(self.concurrency)
        return self._portal

    def close(self) -> None:
        """Close the connections and stop the event loop, cancelling what still runs."""
        if self._portal is not None:
            portal, self._portal = self._portal, None
            try:
                portal.call(self._client.aclose)
            finally:
                try:
                    portal.call(portal.stop, True)
                finally:
                    self._portal_cm.__exit__(None, None, None)

    def __enter__(self) -> OpenAIBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _error(self, reason: str) -> RadoncInputError:
        return RadoncInputError(self._redact(reason), file=self._redact(self.url))

    def retry_delay(self, attempt: int, retry_after: str | None = None) -> float:
        """Seconds to wait before try `attempt + 1`: exponential backoff, or the server's
        Retry-After in seconds if longer (an HTTP-date falls back to the backoff)."""
        delay = self.retry_wait_s * 2 ** (attempt - 1)
        try:
            delay = max(delay, float(retry_after or 0))
        except ValueError:
            pass
        return min(delay, MAX_RETRY_WAIT_S)

    async def _wait(self, seconds: float) -> None:
        import anyio

        if self._sleep is not None:
            self._sleep(seconds)
            await anyio.sleep(0)
        else:
            await anyio.sleep(seconds)

    async def _complete(self, task: str, messages: Conversation) -> Answer:
        payload = {
            "model": self.model_name,
            "messages": list(messages),
            "max_tokens": TASK_PROMPTS[task].max_new_tokens,
            "temperature": 0.0,
            "n": 1,
            "stream": False,
        }
        async with self._slots:
            for attempt in range(1, self.max_retries + 2):
                try:
                    return await self._post(task, payload)
                except _Transient as exc:
                    failure, retry_after = str(exc), exc.retry_after
                if attempt > self.max_retries:
                    break
                await self._wait(self.retry_delay(attempt, retry_after))
        raise self._error(
            f"{task}: {failure}; gave up after {attempt} tries (rows already written are "
            "kept: when the server is back, rerun the same command to carry on)"
        )

    async def _post(self, task: str, payload: dict) -> Answer:
        """One try: the answer, or `_Transient`, or RadoncInputError for what cannot work."""
        import httpx

        try:
            response = await self._client.post(self.url, json=payload)
        except httpx.HTTPError as exc:  # refused, reset, timed out ...
            raise _Transient(transport_failure(exc, timeout_s=self.timeout_s)) from None
        status = response.status_code
        if 200 <= status < 300:
            return self._parse(response)
        if status in TOO_LONG_STATUSES and _TOO_LONG_RE.search(server_error_text(response)):
            return _odd(_TOO_LONG_PREFIX + self._redact(server_error_text(response)))
        if status in RETRY_STATUSES:
            raise _Transient(
                f"HTTP {status}: {server_error_text(response)}",
                retry_after=response.headers.get("retry-after"),
            )
        raise self._error(f"{task}: {await self._fatal_reason(response)}")

    async def _fatal_reason(self, response: Any) -> str:
        status = response.status_code
        if 300 <= status < 400:
            location = response.headers.get("location", "?")
            base = location.removesuffix(_ENDPOINT)
            return f"HTTP {status}: redirected to {location}; use --base-url {base}"
        reason = f"HTTP {status}: {server_error_text(response)}"
        if status in (401, 403):
            if not self._sends_key:
                return f"{reason}; check the API key: none was sent (set OPENAI_API_KEY)"
            return f"{reason}; check the API key: the server refused the one in OPENAI_API_KEY"
        if status in (404, 405):
            return f"{reason}; {await self._where_is_the_api()}"
        return reason

    async def _where_is_the_api(self) -> str:
        """What a 404 means here, from the server's list of models (`GET /models`)."""
        import httpx

        try:
            response = await self._client.get(f"{self.base_url}/models")
            served = [m.get("id") for m in response.json().get("data", []) if isinstance(m, dict)]
        except (httpx.HTTPError, ValueError, AttributeError, TypeError):
            served = None
        if served and self.model_name not in served:
            shown = ", ".join(str(name) for name in served[:10])
            more = f" and {len(served) - 10} more" if len(served) > 10 else ""
            return f"the server serves {shown}{more}: give one of them as --model-name"
        if served:
            return f"the server lists '{self.model_name}' but has no {_ENDPOINT} here"
        if not self.base_url.endswith("/v1"):
            return (
                f"no OpenAI API at this address: check --base-url (vLLM, llama.cpp server and "
                f"Ollama serve it under /v1: --base-url {self.base_url}/v1)"
            )
        return "check --base-url (the API root, often ending in /v1) and --model-name"

    def _parse(self, response: Any) -> Answer:
        if response.headers.get("content-type", "").startswith(
            "text/event-stream"
        ) or response.text.lstrip().startswith("data:"):
            return _odd("the server streamed its answer, though no stream was asked for")
        try:
            body = response.json()
        except ValueError:
            raise _Transient(
                f"the server's answer is not JSON (is --base-url the API root?): "
                f"{server_error_text(response)}"
            ) from None
        if isinstance(body, dict) and "choices" not in body and body.get("error"):
            raise _Transient(f"the server answered with an error: {server_error_text(response)}")
        served = body.get("model") if isinstance(body, dict) else None
        if isinstance(served, str) and served != self.model_name and not self._warned_model:
            self._warned_model = True
            warnings.warn(
                self._redact(
                    f"the server at {self.base_url} answers as model '{served}', not "
                    f"'{self.model_name}'; rows are labelled '{self.model_name}'"
                ),
                stacklevel=2,
            )
        return completion_answer(body)

    def _check_decoding(self, decoding: str) -> None:
        if decoding != "free":
            raise RadoncInputError(
                "constrained decoding needs the model's logits: use the transformers backend",
                field="decoding",
            )

    def answer(
        self, task: str, conversations: Sequence[Conversation], *, decoding: str
    ) -> list[Answer]:
        with closing(self.answer_batches(task, [conversations], decoding=decoding)) as answered:
            return next(answered)

    def answer_batches(
        self, task: str, batches: Iterable[Sequence[Conversation]], *, decoding: str
    ) -> Iterator[list[Answer]]:
        """Answers batch by batch, in order, with `concurrency` requests kept in flight
        (the next batches' prompts are sent while this one's answers are written).

        The first failure, an interruption (Ctrl-C) or closing the generator cancels every
        request in flight: no answer is asked for that will not be written.
        """
        self._check_decoding(decoding)
        portal = self._open_portal()
        upcoming = iter(batches)
        queued: deque[list[Future]] = deque()
        try:
            while True:
                while sum(len(futures) for futures in queued) < self.concurrency:
                    batch = next(upcoming, None)
                    if batch is None:
                        break
                    queued.append([portal.start_task_soon(self._complete, task, m) for m in batch])
                if not queued:
                    return
                futures = queued[0]
                wait(futures, return_when=FIRST_EXCEPTION)
                answers = [future.result() for future in futures]
                queued.popleft()
                self._check_context(task, answers)
                yield answers
        finally:
            for future in (future for futures in queued for future in futures):
                future.cancel()

    def _check_context(self, task: str, answers: list[Answer]) -> None:
        """Stop when the server rejects every prompt so far as too long: its context is set
        too small for this study (a longer note in a working run is that case's problem)."""
        too_long = [a for a in answers if (a.malformed_reason or "").startswith(_TOO_LONG_PREFIX)]
        self._too_long += len(too_long)
        self._fitted += len(answers) - len(too_long)
        if self._fitted == 0 and self._too_long >= MIN_TOO_LONG_TO_STOP:
            reason = too_long[0].malformed_reason.removeprefix(_TOO_LONG_PREFIX)
            raise self._error(
                f"{task}: the server rejected all {self._too_long} prompts so far as longer "
                f"than its context ({reason}); start it with a longer context (vLLM "
                "--max-model-len, llama.cpp server -c) or serve a model with one"
            )


BACKENDS: tuple[str, ...] = ("transformers", "openai")
DTYPES: tuple[str, ...] = ("auto", "float32", "bfloat16")


def torch_dtype(name: str) -> Any:
    """`auto`, `float32` or `bfloat16` -> the torch dtype the local backend loads the model in
    (`auto`: bfloat16 where the hardware computes it natively, else float32)."""
    import torch

    from radonc_llm.models.precision import resolve_inference_dtype

    if name not in DTYPES:
        raise RadoncInputError(
            f"unknown dtype '{name}'; expected {', '.join(DTYPES)}", field="dtype"
        )
    return getattr(torch, resolve_inference_dtype(name) if name == "auto" else name)

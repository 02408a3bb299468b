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
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
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

    def __init__(self, model: Any, tokenizer: Any, *, model_name: str) -> None:
        from radonc_llm.infer.generate import PrefixCache
        from radonc_llm.models.attention import use_grouped_attention

        self.model = model.eval()
        if self.model.device.type == "cpu" and hasattr(self.model, "set_attn_implementation"):
            # On a CPU, eager attention measured ~12% faster than SDPA for ~60-token prompt
            # suffixes at batch 16 (SmolLM2-135M, bf16, 2 cores); the grouped variant also
            # skips copying the KV cache per query head.
            use_grouped_attention(self.model)
        self.tokenizer = tokenizer
        self.model_name = model_name
        self._prefix_caches: dict[str, PrefixCache] = {}

    @classmethod
    def load(
        cls, name_or_path: str, *, dtype: Any = None, device: str | None = None
    ) -> TransformersBackend:
        """Load a registry name, run or model folder onto `device` (default: the GPU where
        there is one, else the CPU) in `dtype` (default float32)."""
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
        return cls(model, tokenizer, model_name=name_or_path)

    def answer(
        self, task: str, conversations: Sequence[Conversation], *, decoding: str
    ) -> list[Answer]:
        from radonc_llm.infer.constrained import (
            ICD10_BEAMS,
            ICD10_MARGIN,
            constrained_icd10,
            score_labels,
        )
        from radonc_llm.infer.generate import PrefixCache, chat_prompt_ids, greedy_generate

        prompts = [chat_prompt_ids(self.tokenizer, messages) for messages in conversations]
        prefix_cache = self._prefix_caches.setdefault(task, PrefixCache())
        if decoding == "constrained" and task == "modality":
            results = score_labels(self.model, self.tokenizer, prompts, prefix_cache=prefix_cache)
            return [
                Answer(raw=r.answer, prediction=r.answer, logprob=r.logprob, scores=r.scores)
                for r in results
            ]
        if decoding == "constrained" and task == "icd10":
            results = constrained_icd10(
                self.model,
                self.tokenizer,
                prompts,
                beams=ICD10_BEAMS,
                margin=ICD10_MARGIN,
                prefix_cache=prefix_cache,
            )
            return [Answer(raw=r.answer, prediction=r.answer, logprob=r.logprob) for r in results]
        generations = greedy_generate(
            self.model,
            self.tokenizer,
            prompts,
            max_new_tokens=TASK_PROMPTS[task].max_new_tokens,
            prefix_cache=prefix_cache,
        )
        return [
            Answer(raw=g.text, n_new_tokens=len(g.token_ids), stopped=g.stopped)
            for g in generations
        ]


class OpenAIBackend:
    """An OpenAI-compatible `/chat/completions` endpoint, greedy (temperature 0)."""

    name = "openai"
    supports_constrained = False

    def __init__(
        self,
        base_url: str,
        model_name: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        concurrency: int = 4,
        max_retries: int = 2,
        retry_wait_s: float = 1.0,
        transport: Any = None,
    ) -> None:
        import httpx

        if not base_url.startswith(("http://", "https://")):
            raise RadoncInputError(f"'{base_url}' is not an http(s) URL", field="base_url")
        self.base_url = base_url.rstrip("/")
        self.model_name = model_name
        self.concurrency = max(1, concurrency)
        self.max_retries = max_retries
        self.retry_wait_s = retry_wait_s
        api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(timeout=timeout_s, headers=headers, transport=transport)

    @property
    def url(self) -> str:
        return f"{self.base_url}/chat/completions"

    def close(self) -> None:
        self._client.close()

    def _complete(self, task: str, messages: Conversation) -> Answer:
        import httpx

        payload = {
            "model": self.model_name,
            "messages": list(messages),
            "max_tokens": TASK_PROMPTS[task].max_new_tokens,
            "temperature": 0.0,
            "n": 1,
        }
        attempt = 0
        while True:
            try:
                response = self._client.post(self.url, json=payload)
            except httpx.HTTPError as exc:
                failure = f"request failed ({type(exc).__name__}: {exc})"
            else:
                if response.status_code < 400:
                    return self._parse(response)
                failure = f"HTTP {response.status_code}: {response.text[:200]}"
                if response.status_code < 500 and response.status_code != 429:
                    raise RadoncInputError(failure, file=self.url)
            if attempt >= self.max_retries:
                raise RadoncInputError(f"{failure} (after {attempt + 1} tries)", file=self.url)
            attempt += 1
            time.sleep(self.retry_wait_s * attempt)

    def _parse(self, response: Any) -> Answer:
        try:
            body = response.json()
            choice = body["choices"][0]
            content = choice["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise RadoncInputError(
                f"not an OpenAI chat completion response: {response.text[:200]!r}", file=self.url
            ) from None
        usage = body.get("usage") or {}
        finish = choice.get("finish_reason")
        return Answer(
            raw=(content or "").strip(),
            n_new_tokens=usage.get("completion_tokens"),
            stopped=None if finish is None else finish == "stop",
        )

    def answer(
        self, task: str, conversations: Sequence[Conversation], *, decoding: str
    ) -> list[Answer]:
        if decoding != "free":
            raise RadoncInputError(
                "constrained decoding needs the model's logits: use the transformers backend",
                field="decoding",
            )
        if self.concurrency == 1 or len(conversations) == 1:
            return [self._complete(task, messages) for messages in conversations]
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(lambda messages: self._complete(task, messages), conversations))


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

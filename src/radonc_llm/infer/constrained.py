"""Constrained decoding: answers that are always one of the allowed answers.

- Modality: the prompt runs once; its KV cache is repeated for the four labels and one
  forward pass over the label tokens scores all four. A label's score is the log-probability
  of the whole answer "label<end of turn>", so the model must also mean to stop there.
- ICD-10: a greedy walk through a prefix trie of the tokenisations of every billable
  ICD-10-CM code (dotted, as the training answers are written) followed by end of turn.
  At each step only the trie's children may be chosen, so every walk ends on a real code.

Scores are log-probabilities under the model's full softmax (not renormalised over the
allowed tokens), so they stay comparable with free generation.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from radonc_llm.data.cases import MODALITIES
from radonc_llm.infer.generate import (
    PrefixCache,
    _pad_id,
    end_of_turn_ids,
    keep_rows,
    run_prompts,
    step,
)


@dataclass(frozen=True)
class ConstrainedAnswer:
    """A constrained answer: the chosen label or code, its log-probability, and all scores."""

    answer: str
    logprob: float
    scores: dict[str, float] | None = None


def _label_token_ids(tokenizer: Any, label: str) -> list[int]:
    # An answer starts a fresh line after "assistant\n": tokenised alone it splits the same way.
    return [*tokenizer.encode(label, add_special_tokens=False), end_of_turn_ids(tokenizer)[0]]


@torch.inference_mode()
def score_labels(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Sequence[int]],
    *,
    labels: Sequence[str] = MODALITIES,
    prefix_cache: PrefixCache | None = None,
) -> list[ConstrainedAnswer]:
    """Pick the most probable of `labels` for each prompt (ties go to the earlier label)."""
    state = run_prompts(model, prompts, pad_id=_pad_id(tokenizer), prefix_cache=prefix_cache)
    batch, n_labels = len(prompts), len(labels)
    sequences = [_label_token_ids(tokenizer, label) for label in labels]
    width = max(len(s) for s in sequences)
    # Labels right-padded: padding after a label's last token is never attended by it.
    label_ids = torch.full((n_labels, width), _pad_id(tokenizer), dtype=torch.long)
    label_mask = torch.zeros((n_labels, width), dtype=torch.bool)
    for i, seq in enumerate(sequences):
        label_ids[i, : len(seq)] = torch.tensor(seq)
        label_mask[i, : len(seq)] = True
    first_logprobs = torch.log_softmax(state.logits, dim=-1)[:, label_ids[:, 0]]  # (batch, labels)
    total = first_logprobs.clone()
    if width > 1:
        state.cache.batch_repeat_interleave(n_labels)
        state.attention_mask = state.attention_mask.repeat_interleave(n_labels, dim=0)
        state.next_position = state.next_position.repeat_interleave(n_labels, dim=0)
        inputs = label_ids[:, :-1].repeat(batch, 1)  # row b * n_labels + i = label i
        logits = step(model, state, inputs, last_only=False).float()
        logprobs = torch.log_softmax(logits, dim=-1)
        targets = label_ids[:, 1:].repeat(batch, 1)
        picked = logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        picked = picked * label_mask[:, 1:].repeat(batch, 1)
        total = total + picked.sum(dim=1).view(batch, n_labels)
    results = []
    for row in total.tolist():
        best = max(range(n_labels), key=lambda i: (row[i], -i))
        results.append(
            ConstrainedAnswer(
                answer=labels[best],
                logprob=row[best],
                scores={label: row[i] for i, label in enumerate(labels)},
            )
        )
    return results


class TokenTrie:
    """A prefix trie over token sequences; `END` marks a node where a sequence may end."""

    END = -1

    def __init__(self) -> None:
        self.children: dict[int, dict] = {}
        self._allowed: dict[int, torch.Tensor] = {}

    def add(self, tokens: Sequence[int], value: str) -> None:
        node = self.children
        for token in tokens:
            node = node.setdefault(token, {})
        node[self.END] = value

    def allowed(self, node: dict) -> torch.Tensor:
        """Token ids that may follow `node` (cached per node)."""
        key = id(node)
        ids = self._allowed.get(key)
        if ids is None:
            ids = torch.tensor([t for t in node if t != self.END], dtype=torch.long)
            self._allowed[key] = ids
        return ids


# Tries per tokenizer object and code list; they go when the tokenizer does.
_TRIES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def icd10_trie(tokenizer: Any, codes: Sequence[str] | None = None) -> TokenTrie:
    """The trie of `codes` (default: every billable ICD-10-CM code, dotted) for `tokenizer`.

    Built once per tokenizer and code list (about 74,000 codes: a few seconds).
    """
    from radonc_llm.data import icd10

    codes = tuple(codes) if codes is not None else tuple(icd10.billable_codes())
    if not codes:
        raise ValueError("the ICD-10 trie needs at least one code")
    per_tokenizer = _TRIES.setdefault(tokenizer, {})
    trie = per_tokenizer.get(codes)
    if trie is None:
        end = end_of_turn_ids(tokenizer)[0]
        trie = TokenTrie()
        encoded = tokenizer(list(codes), add_special_tokens=False)["input_ids"]
        for code, tokens in zip(codes, encoded, strict=True):
            trie.add([*tokens, end], code)
        per_tokenizer[codes] = trie
    return trie


@torch.inference_mode()
def constrained_icd10(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Sequence[int]],
    *,
    trie: TokenTrie | None = None,
    max_steps: int = 32,
    prefix_cache: PrefixCache | None = None,
) -> list[ConstrainedAnswer]:
    """Greedy walk of the code trie for each prompt: every answer is a code in the trie."""
    trie = trie if trie is not None else icd10_trie(tokenizer)
    state = run_prompts(model, prompts, pad_id=_pad_id(tokenizer), prefix_cache=prefix_cache)
    nodes: list[dict] = [trie.children for _ in prompts]
    logprob = [0.0] * len(prompts)
    answers: list[str | None] = [None] * len(prompts)
    active = list(range(len(prompts)))
    for _ in range(max_steps):
        logprobs = torch.log_softmax(state.logits, dim=-1)
        chosen: list[int] = []
        still: list[int] = []
        for batch_row, row in enumerate(active):
            allowed = trie.allowed(nodes[row])
            values = logprobs[batch_row, allowed]
            best = int(values.argmax())
            token = int(allowed[best])
            logprob[row] += float(values[best])
            nodes[row] = nodes[row][token]
            if TokenTrie.END in nodes[row] and len(nodes[row]) == 1:
                answers[row] = nodes[row][TokenTrie.END]
            else:
                chosen.append(token)
                still.append(batch_row)
        if not still:
            break
        if len(still) < len(active):
            keep_rows(state, torch.tensor(still, dtype=torch.long))
            active = [active[i] for i in still]
        step(model, state, torch.tensor(chosen, dtype=torch.long).unsqueeze(1))
    if any(answer is None for answer in answers):
        raise RuntimeError(f"trie walk did not finish in {max_steps} steps")
    return [
        ConstrainedAnswer(answer=answer, logprob=score)
        for answer, score in zip(answers, logprob, strict=True)
    ]

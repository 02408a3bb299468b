"""Constrained decoding: answers that are always one of the allowed answers.

- Modality: the prompt runs once; one more forward pass over the four labels' tokens, laid
  out as a tree that shares the prompt's KV cache, scores all four. A label's score is the log-probability
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
from radonc_llm.models.attention import NAME as GROUPED_EAGER


@dataclass(frozen=True)
class ConstrainedAnswer:
    """A constrained answer: the chosen label or code, its log-probability, and all scores."""

    answer: str
    logprob: float
    scores: dict[str, float] | None = None


def _label_token_ids(tokenizer: Any, label: str) -> list[int]:
    # An answer starts a fresh line after "assistant\n": tokenised alone it splits the same way.
    return [*tokenizer.encode(label, add_special_tokens=False), end_of_turn_ids(tokenizer)[0]]


def _label_tree(sequences: Sequence[Sequence[int]]):
    """Flatten the labels' input tokens (each label minus its last token) into one row.

    Returns token ids, each token's depth in its label, its label index, the id it must
    predict next, and the (T, T) mask letting a token see only earlier tokens of its label.
    """
    tokens, depth, owner, targets = [], [], [], []
    for index, seq in enumerate(sequences):
        for position in range(len(seq) - 1):
            tokens.append(seq[position])
            depth.append(position)
            owner.append(index)
            targets.append(seq[position + 1])
    owner_t = torch.tensor(owner, dtype=torch.long)
    depth_t = torch.tensor(depth, dtype=torch.long)
    tree = (owner_t[:, None] == owner_t[None, :]) & (depth_t[None, :] <= depth_t[:, None])
    return (
        torch.tensor(tokens, dtype=torch.long),
        depth_t,
        owner_t,
        torch.tensor(targets, dtype=torch.long),
        tree,
    )


@torch.inference_mode()
def score_labels(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Sequence[int]],
    *,
    labels: Sequence[str] = MODALITIES,
    prefix_cache: PrefixCache | None = None,
) -> list[ConstrainedAnswer]:
    """Pick the most probable of `labels` for each prompt (ties go to the earlier label).

    After the prompt, all labels' tokens go through the model in one forward pass as a tree:
    each label token attends to the prompt and to the earlier tokens of its own label only
    (a 4-D attention mask), so the prompt's KV cache is shared, not copied per label.
    """
    state = run_prompts(model, prompts, pad_id=_pad_id(tokenizer), prefix_cache=prefix_cache)
    batch, n_labels = len(prompts), len(labels)
    sequences = [_label_token_ids(tokenizer, label) for label in labels]
    first = torch.tensor([seq[0] for seq in sequences], dtype=torch.long)
    total = torch.log_softmax(state.logits, dim=-1)[:, first].double()  # (batch, labels)
    tokens, depth, owner, targets, tree = _label_tree(sequences)
    if tokens.numel():
        n_tokens, past = tokens.numel(), state.attention_mask.shape[1]
        allowed = torch.cat(
            [
                state.attention_mask.bool()[:, None, None, :].expand(batch, 1, n_tokens, past),
                tree[None, None].expand(batch, 1, n_tokens, n_tokens),
            ],
            dim=-1,
        )
        if model.config._attn_implementation in ("eager", GROUPED_EAGER):
            dtype = next(model.parameters()).dtype
            mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill(
                ~allowed, torch.finfo(dtype).min
            )
        else:
            mask = allowed
        positions = state.next_position[:, None] + depth[None, :]
        out = model(
            input_ids=tokens.expand(batch, n_tokens),
            attention_mask=mask,
            position_ids=positions,
            cache=state.cache,
            use_cache=True,
        )
        logprobs = torch.log_softmax(out.logits.double(), dim=-1)
        picked = logprobs.gather(-1, targets.expand(batch, n_tokens).unsqueeze(-1)).squeeze(-1)
        total = total.index_add(1, owner, picked)
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

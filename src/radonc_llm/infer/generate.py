"""Batched greedy generation with the KV cache, sharing the prompt prefix across a batch.

Why not `model.generate`: every prompt of a task starts with the same system prompt and
instruction (about 60 tokens of ~100), so we encode that shared prefix once, reuse its KV
cache for every row, and run only the case-specific suffix. Rows are laid out as
`[shared prefix][left padding][suffix]`; the attention mask hides the padding and
`position_ids = attention_mask.cumsum(-1) - 1` keeps each row's positions contiguous, so a
row's tokens see exactly what they would see alone (batched output equals one-at-a-time
output up to float rounding). Finished rows leave the batch, so a batch costs as many steps
as its longest answer needs and no more rows than are still writing.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Generation:
    """One generated answer: text without the end-of-turn token, and whether it stopped."""

    text: str
    token_ids: tuple[int, ...]
    stopped: bool


@dataclass
class PromptState:
    """A batch after its prompts ran: the cache, the mask so far, and the next-token logits."""

    cache: Any
    attention_mask: torch.Tensor  # (batch, cache length), 1 = real token
    next_position: torch.Tensor  # (batch,), position id of the next token
    logits: torch.Tensor  # (batch, vocab), logits for the first answer token


def chat_prompt_ids(tokenizer: Any, messages: Sequence[dict[str, str]]) -> list[int]:
    """Token ids of a chat up to the assistant's answer (`add_generation_prompt=True`)."""
    text = tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)
    # The template writes the special tokens itself: adding them again would double BOS.
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def end_of_turn_ids(tokenizer: Any) -> tuple[int, ...]:
    """Tokens that end an answer: ChatML's `<|im_end|>` where the vocabulary has it, and eos."""
    ids: list[int] = []
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if isinstance(im_end, int) and im_end != tokenizer.unk_token_id:
        ids.append(im_end)
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    if not ids:
        raise ValueError("the tokenizer defines neither <|im_end|> nor an eos token")
    return tuple(ids)


def _pad_id(tokenizer: Any) -> int:
    pad = tokenizer.pad_token_id
    return pad if pad is not None else end_of_turn_ids(tokenizer)[0]


def common_prefix_length(prompts: Sequence[Sequence[int]]) -> int:
    """Tokens all `prompts` start with, leaving each at least one token of its own."""
    first = prompts[0]
    # Keep at least one token per row outside the prefix: its logits start the answer.
    limit = min(len(p) for p in prompts) - 1
    length = 0
    while length < limit and all(p[length] == first[length] for p in prompts):
        length += 1
    return length


@functools.cache
def _last_position(device: torch.device) -> torch.Tensor:
    """The last position as an index tensor, made once per device: `hidden[:, tensor([-1])]`
    is a contiguous copy, where `logits_to_keep=1` slices a strided view. For that view,
    `torch.matmul` with a weight that does not require grad (a merged or frozen model) skips
    folding to one `mm`: it expands the (vocab x hidden) head weight to a batched `bmm` and
    copies it per row, which made the tuned model predict at half the original's speed (batch
    16: 3.2 s of 8.3 s in `aten::copy_`)."""
    return torch.tensor([-1], device=device)


def _forward(model: Any, input_ids, attention_mask, position_ids, cache, *, last_only: bool):
    kwargs = {"logits_to_keep": _last_position(input_ids.device)} if last_only else {}
    return model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        cache=cache,
        use_cache=True,
        **kwargs,
    )


def _new_cache(model: Any):
    from transformers import DynamicCache

    return DynamicCache(config=model.config)


class PrefixCache:
    """Keeps the KV cache of the last shared prompt prefix, so later batches reuse it."""

    def __init__(self) -> None:
        self.prefix: tuple[int, ...] = ()
        self.layers: list[tuple[torch.Tensor, torch.Tensor]] = []

    def lookup(self, model: Any, prefix: Sequence[int]) -> int:
        """Make the cache hold a prefix of `prefix`; return its length (0 = none)."""
        prefix = tuple(prefix)
        if self.prefix and prefix[: len(self.prefix)] == self.prefix:
            return len(self.prefix)
        if not prefix:
            self.prefix, self.layers = (), []
            return 0
        cache = _new_cache(model)
        ids = torch.tensor([prefix], dtype=torch.long, device=model.device)
        positions = torch.arange(len(prefix), device=model.device).unsqueeze(0)
        _forward(model, ids, torch.ones_like(ids), positions, cache, last_only=True)
        self.prefix = prefix
        self.layers = [(layer.keys, layer.values) for layer in cache.layers]
        return len(prefix)

    def expanded(self, model: Any, batch_size: int):
        cache = _new_cache(model)
        for layer, (keys, values) in zip(cache.layers, self.layers, strict=True):
            layer.update(keys.expand(batch_size, -1, -1, -1), values.expand(batch_size, -1, -1, -1))
        return cache


def _left_padded(
    rows: Sequence[Sequence[int]], *, pad_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token rows left-padded to the longest, and their mask (1 = real token), on the CPU."""
    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for index, row in enumerate(rows):
        ids[index, width - len(row) :] = torch.tensor(list(row), dtype=torch.long)
        mask[index, width - len(row) :] = 1
    return ids, mask


@torch.inference_mode()
def run_prompts(
    model: Any,
    prompts: Sequence[Sequence[int]],
    *,
    pad_id: int,
    prefix_cache: PrefixCache | None = None,
) -> PromptState:
    """Run a batch of prompts (token ids) through the model, sharing their common prefix."""
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token")
    prefix_cache = prefix_cache if prefix_cache is not None else PrefixCache()
    shared = prefix_cache.lookup(model, prompts[0][: common_prefix_length(prompts)])
    batch = len(prompts)
    input_ids, suffix_mask = _left_padded([p[shared:] for p in prompts], pad_id=pad_id)
    attention_mask = torch.cat([torch.ones((batch, shared), dtype=torch.long), suffix_mask], dim=1)
    positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    # Laid out on the CPU, moved to the model's device in one copy each.
    input_ids, attention_mask, positions = (
        tensor.to(model.device) for tensor in (input_ids, attention_mask, positions)
    )
    cache = prefix_cache.expanded(model, batch) if shared else _new_cache(model)
    out = _forward(model, input_ids, attention_mask, positions[:, shared:], cache, last_only=True)
    return PromptState(
        cache=out.cache,
        attention_mask=attention_mask,
        next_position=positions[:, -1] + 1,
        logits=out.logits[:, -1, :].float(),
    )


def fork(model: Any, state: PromptState) -> PromptState:
    """A second state that goes on from the same point: its cache holds the same tensors (a
    forward pass or dropping rows replaces a cache's tensors, never changes them in place)."""
    cache = _new_cache(model)
    for layer, source in zip(cache.layers, state.cache.layers, strict=True):
        layer.update(source.keys, source.values)
    return PromptState(
        cache=cache,
        attention_mask=state.attention_mask,
        next_position=state.next_position,
        logits=state.logits,
    )


@torch.inference_mode()
def extend(model: Any, state: PromptState, suffixes: Sequence[Sequence[int]], *, pad_id: int):
    """Feed each row its own suffix (at least one token each) in one forward pass; update
    `state` in place. Shorter suffixes are left-padded; the mask hides the padding and each
    row's positions go on from its own last one, so a row sees what it would see alone."""
    if len(suffixes) != state.attention_mask.shape[0] or any(len(s) == 0 for s in suffixes):
        raise ValueError("extend needs one non-empty suffix per row")
    device = state.attention_mask.device
    tokens, chunk_mask = (t.to(device) for t in _left_padded(suffixes, pad_id=pad_id))
    positions = state.next_position.unsqueeze(1) + (chunk_mask.cumsum(-1) - 1).clamp(min=0)
    state.attention_mask = torch.cat([state.attention_mask, chunk_mask], dim=1)
    out = _forward(model, tokens, state.attention_mask, positions, state.cache, last_only=True)
    state.cache = out.cache
    state.next_position = positions[:, -1] + 1
    state.logits = out.logits[:, -1, :].float()


@torch.inference_mode()
def run_prompt_branches(
    model: Any,
    branches: Sequence[Sequence[Sequence[int]]],
    *,
    pad_id: int,
    prefix_cache: PrefixCache | None = None,
) -> Iterator[PromptState]:
    """Run a batch whose every row has several prompts (`branches[b][row]`, e.g. one per
    task, all on the same note); yield one state per branch, in order.

    The part a row's prompts share (the system prompt and the note, for the three tasks) runs
    once; each branch then feeds only its own rest (the task's question). With prompts that
    put the note first, a case's three prompts cost about one prompt and three questions.
    A branch is built when asked for: the shared part and one branch are held at a time
    (with a 7B model the KV cache of a batch takes gigabytes).
    """
    rows = len(branches[0])
    # A row's prompts share its first `shared[row]` tokens, each keeping one of its own at least.
    shared = [common_prefix_length([branch[row] for branch in branches]) for row in range(rows)]
    if len(branches) == 1 or min(shared) == 0:
        for branch in branches:
            yield run_prompts(model, branch, pad_id=pad_id, prefix_cache=prefix_cache)
        return
    trunk = run_prompts(
        model,
        [branches[0][row][: shared[row]] for row in range(rows)],
        pad_id=pad_id,
        prefix_cache=prefix_cache,
    )
    for index, branch in enumerate(branches):
        state = trunk if index == len(branches) - 1 else fork(model, trunk)
        extend(model, state, [branch[row][shared[row] :] for row in range(rows)], pad_id=pad_id)
        yield state


@torch.inference_mode()
def step(model: Any, state: PromptState, tokens: torch.Tensor, *, last_only: bool = True):
    """Feed one token (or a few) per row; update `state` in place and return the logits."""
    batch, count = tokens.shape
    device = state.attention_mask.device
    tokens = tokens.to(device)
    state.attention_mask = torch.cat(
        [state.attention_mask, torch.ones((batch, count), dtype=torch.long, device=device)], dim=1
    )
    positions = state.next_position.unsqueeze(1) + torch.arange(count, device=device).unsqueeze(0)
    out = _forward(model, tokens, state.attention_mask, positions, state.cache, last_only=last_only)
    state.cache = out.cache
    state.next_position = state.next_position + count
    state.logits = out.logits[:, -1, :].float()
    return out.logits


def keep_rows(state: PromptState, rows: torch.Tensor) -> None:
    """Drop every batch row not in `rows` (indices into the current batch)."""
    if rows.tolist() == list(range(state.attention_mask.shape[0])):
        # Every row, in order: nothing to do (the ICD-10 walk asks this at most steps, and
        # selecting copies the whole KV cache: ~10% of its time).
        return
    rows = rows.to(state.attention_mask.device)
    state.cache.batch_select_indices(rows)
    state.attention_mask = state.attention_mask[rows]
    state.next_position = state.next_position[rows]
    state.logits = state.logits[rows]


@torch.inference_mode()
def greedy_generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Sequence[int]],
    *,
    max_new_tokens: int,
    prefix_cache: PrefixCache | None = None,
) -> list[Generation]:
    """Greedy answers for one batch of prompts, stopping each row at end of turn."""
    if max_new_tokens < 1:
        raise ValueError("max_new_tokens must be at least 1")
    state = run_prompts(model, prompts, pad_id=_pad_id(tokenizer), prefix_cache=prefix_cache)
    return generate_after(model, tokenizer, state, max_new_tokens=max_new_tokens)


@torch.inference_mode()
def generate_after(
    model: Any, tokenizer: Any, state: PromptState, *, max_new_tokens: int
) -> list[Generation]:
    """`greedy_generate` for prompts that have already run (`state`: their cache and logits)."""
    if max_new_tokens < 1:
        raise ValueError("max_new_tokens must be at least 1")
    rows = state.logits.shape[0]
    device = state.logits.device
    stop_ids = torch.tensor(end_of_turn_ids(tokenizer), dtype=torch.long, device=device)
    active = torch.arange(rows, device=device)  # original row of each current batch row
    generated: list[list[int]] = [[] for _ in range(rows)]
    stopped = [False] * rows
    for position in range(max_new_tokens):
        next_tokens = state.logits.argmax(dim=-1)
        is_stop = torch.isin(next_tokens, stop_ids)
        for row, token, stop in zip(
            active.tolist(), next_tokens.tolist(), is_stop.tolist(), strict=True
        ):
            if stop:
                stopped[row] = True
            else:
                generated[row].append(token)
        if position == max_new_tokens - 1:
            break
        if is_stop.any():
            keep = (~is_stop).nonzero().squeeze(1)
            if keep.numel() == 0:
                break
            keep_rows(state, keep)
            active, next_tokens = active[keep], next_tokens[keep]
        step(model, state, next_tokens.unsqueeze(1))
    return [
        Generation(
            text=tokenizer.decode(ids, skip_special_tokens=True).strip(),
            token_ids=tuple(ids),
            stopped=stop,
        )
        for ids, stop in zip(generated, stopped, strict=True)
    ]

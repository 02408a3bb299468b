"""Training examples: read task files, tokenise with the chat template, batch by length.

An example is tokenised exactly as prediction will see it: the prompt is the chat template
rendered up to the assistant turn (`add_generation_prompt=True`), the answer is what the full
conversation adds after it, cut just after the end-of-turn token. Only answer tokens carry
loss, and the end-of-turn token is one of them so the tuned model learns to stop.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import torch

from radonc_llm.errors import RadoncInputError
from radonc_llm.infer.generate import common_prefix_length
from radonc_llm.storage import is_cut_last_line, iter_jsonl

IGNORE_INDEX = -100
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TokenizedExample:
    """Token ids of prompt + answer; positions from `prompt_length` on are answer tokens."""

    example_id: str
    task: str
    input_ids: tuple[int, ...]
    prompt_length: int
    case_id: str = ""

    @property
    def answer_length(self) -> int:
        return len(self.input_ids) - self.prompt_length

    def labels(self) -> list[int]:
        """Hugging Face style labels: the prompt masked with -100, the answer kept."""
        return [IGNORE_INDEX] * self.prompt_length + list(self.input_ids[self.prompt_length :])


def read_task_rows(
    data_dir: str | Path,
    tasks: Sequence[str],
    *,
    max_per_task: int | Mapping[str, int] | None = None,
    seed: int = 0,
    temperature: float = 1.0,
    nested: bool = False,
    floor: int = 0,
) -> list[tuple[Path, int, dict]]:
    """(file, line, row) of every example of the tasks, checked; optionally a seeded sample.

    With `temperature` below 1 the sample is tempered over diagnosis groups (the ICD-10
    category that `radonc-llm tasks` writes as `stratum`): a group of n rows gets a share
    proportional to n ** temperature (0: equal shares), so rare diagnoses are seen more.
    `nested` samples cases instead, in one seeded order for all tasks: each task takes its
    first cases in that order, so a task's cases are also in every larger task's sample
    (what `batch_by_case` needs to share a note between tasks). With `floor`, the order starts
    with the first `floor` cases of every diagnosis group, so a sample holds at least that
    many of each group (or all it has) and is random otherwise.
    """
    if nested:
        return _nested_sample(data_dir, tasks, max_per_task=max_per_task, seed=seed, floor=floor)
    if floor:
        raise ValueError("a sampling floor needs nested (by case) sampling")
    rows: list[tuple[Path, int, dict]] = []
    for task in tasks:
        path = Path(data_dir) / f"{task}.jsonl"
        task_rows = [
            (path, line, _checked_row(path, line, row, task)) for line, row in _task_lines(path)
        ]
        _check_unique_example_ids(task_rows)
        if not task_rows:
            raise RadoncInputError(f"no examples of task '{task}'", file=path)
        limit = max_per_task.get(task) if isinstance(max_per_task, Mapping) else max_per_task
        if limit is not None and len(task_rows) > limit:
            rng = random.Random(f"{seed}:{task}")
            if temperature == 1.0:
                keep = rng.sample(range(len(task_rows)), limit)
            else:
                strata = [str(row.get("stratum")) for _, _, row in task_rows]
                keep = tempered_sample(strata, limit, temperature, rng)
            _report_sample(path, limit, len(task_rows))
            task_rows = [task_rows[i] for i in sorted(keep)]
        rows.extend(task_rows)
    return rows


def _report_sample(path: Path, kept: int, read: int) -> None:
    logger.info(
        "%s: %d of %d examples sampled (%d left out by the max examples per task setting)",
        path,
        kept,
        read,
        read - kept,
    )


def _task_lines(path: Path) -> list[tuple[int, dict]]:
    """(line, row) of a task file; a bad last line without a line end is named as what it is,
    a write that stopped part way."""
    try:
        return list(iter_jsonl(path))
    except RadoncInputError as exc:
        if exc.row is None or not is_cut_last_line(path, exc.row):
            raise
        raise RadoncInputError(
            f"{exc.reason}: the last line has no line end, as a write that stopped part way "
            "leaves it (an interrupted `radonc-llm tasks` or copy?); write the file again, or "
            "delete that line to train without it",
            file=path,
            row=exc.row,
        ) from None


def _nested_sample(
    data_dir: str | Path,
    tasks: Sequence[str],
    *,
    max_per_task: int | Mapping[str, int] | None,
    seed: int,
    floor: int,
) -> list[tuple[Path, int, dict]]:
    every = read_task_rows(data_dir, tasks, seed=seed)
    strata: dict[str, str] = {}
    for path, line, row in every:
        if row.get("stratum") is not None:
            strata.setdefault(case_key(path, line, row), str(row["stratum"]))
    case_ids = sorted({case_key(path, line, row) for path, line, row in every})
    rng = random.Random(f"{seed}:cases")
    rng.shuffle(case_ids)
    if floor:
        seen: Counter[str | None] = Counter()
        early = set()
        for case_id in case_ids:
            seen[strata.get(case_id)] += 1
            if seen[strata.get(case_id)] <= floor:
                early.add(case_id)
        case_ids.sort(key=lambda case_id: case_id not in early)  # stable: both parts keep order
    rank = {case_id: index for index, case_id in enumerate(case_ids)}
    rows: list[tuple[Path, int, dict]] = []
    for task in tasks:
        task_rows = [item for item in every if item[0].stem == task]
        limit = max_per_task.get(task) if isinstance(max_per_task, Mapping) else max_per_task
        if limit is not None and len(task_rows) > limit:
            first = sorted(task_rows, key=lambda item: rank[case_key(*item)])
            kept = {id(item) for item in first[:limit]}
            _report_sample(task_rows[0][0], limit, len(task_rows))
            task_rows = [item for item in task_rows if id(item) in kept]
        rows.extend(task_rows)
    return rows


def case_key(path: Path, line: int, row: dict) -> str:
    """The case a task row belongs to: its `case_id`, else a key of its own (file and line)."""
    return str(row.get("case_id") or f"{path.name}:{line}")


def tempered_sample(
    strata: Sequence[str], size: int, temperature: float, rng: random.Random
) -> list[int]:
    """`size` indices of `strata`: each stratum's quota is proportional to its count raised to
    `temperature`, capped at its count (what a full stratum cannot take goes to the others)."""
    members: dict[str, list[int]] = {}
    for index, stratum in enumerate(strata):
        members.setdefault(stratum, []).append(index)
    quota = dict.fromkeys(members, 0)
    open_strata = set(members)
    left = min(size, len(strata))
    while left > 0:
        weights = {s: len(members[s]) ** temperature for s in open_strata}
        total = sum(weights.values())
        shares = {s: left * w / total for s, w in weights.items()}
        full = {s for s in open_strata if quota[s] + shares[s] >= len(members[s])}
        if full:  # these take everything they have; share the rest again
            for s in full:
                left -= len(members[s]) - quota[s]
                quota[s] = len(members[s])
            open_strata -= full
            continue
        floors = {s: int(shares[s]) for s in open_strata}
        for s in open_strata:
            quota[s] += floors[s]
        # Largest remainders take the last few, in a fixed order (ties by name).
        rest = left - sum(floors.values())
        by_remainder = sorted(open_strata, key=lambda s: (floors[s] - shares[s], s))
        for s in by_remainder[:rest]:
            quota[s] += 1
        left = 0
    keep: list[int] = []
    for stratum in sorted(members):
        keep.extend(rng.sample(members[stratum], quota[stratum]))
    return keep


ROLES = ("system", "user", "assistant")


def _checked_row(path: Path, line: int, row: dict, task: str) -> dict:
    """A row as `radonc-llm tasks` writes it: the system prompt, then user and assistant turns
    in turn, ending with the assistant's answer (the only tokens that carry loss)."""
    messages = row.get("messages")
    if not isinstance(messages, list) or len(messages) < 2:
        raise RadoncInputError(
            "expected a list of chat messages ending with the assistant's answer",
            file=path,
            row=line,
            field="messages",
        )
    for index, message in enumerate(messages):
        if not (
            isinstance(message, dict)
            and isinstance(message.get("role"), str)
            and isinstance(message.get("content"), str)
        ):
            raise RadoncInputError(
                "each message needs a string role and content",
                file=path,
                row=line,
                field=f"messages.{index}",
            )
        if message["role"] not in ROLES:
            # A chat template renders any role name, so a typo would train on a prompt that
            # prediction never sends.
            raise RadoncInputError(
                f"unknown role '{message['role']}'; expected one of {', '.join(ROLES)}",
                file=path,
                row=line,
                field=f"messages.{index}.role",
            )
    if messages[0]["role"] != "system":
        raise RadoncInputError(
            "the first message must be the system prompt: prediction sends it, so an example "
            "without it trains on another prompt (rebuild the file with `radonc-llm tasks`)",
            file=path,
            row=line,
            field="messages.0.role",
        )
    for index, message in enumerate(messages[1:], start=1):
        expected = "user" if index % 2 else "assistant"
        if message["role"] != expected:
            article = "an" if message["role"] == "assistant" else "a"
            raise RadoncInputError(
                f"message {index} is {article} '{message['role']}' turn where a '{expected}' turn "
                "belongs: after the system prompt, user and assistant take turns",
                file=path,
                row=line,
                field=f"messages.{index}.role",
            )
    if messages[-1]["role"] != "assistant":
        raise RadoncInputError(
            f"the messages end with a '{messages[-1]['role']}' turn: the assistant's answer, "
            "the text the model learns to write, is missing",
            file=path,
            row=line,
            field=f"messages.{len(messages) - 1}",
        )
    if not messages[-1]["content"].strip():
        raise RadoncInputError(
            "the last message must be the assistant's non-empty answer",
            file=path,
            row=line,
            field=f"messages.{len(messages) - 1}",
        )
    for name in ("example_id", "case_id"):
        if name in row and not _is_identifier(row[name]):
            raise RadoncInputError(
                f"{name} must be a non-empty string (or a whole number), not "
                f"{_json_kind(row[name])}; write one or leave the field out",
                file=path,
                row=line,
                field=name,
            )
    if row.get("task", task) != task:
        raise RadoncInputError(
            f"task '{row.get('task')}' in the file of task '{task}'",
            file=path,
            row=line,
            field="task",
        )
    return row


def _is_identifier(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value.strip())
    return isinstance(value, int) and not isinstance(value, bool)


def _json_kind(value: Any) -> str:
    """How a JSON value reads in a message: 'null', 'a list', 'an empty string'..."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return "an empty string" if not value else f"only blanks ({value!r})"
    kinds = {bool: "true or false", list: "a list", dict: "an object", float: "a fraction"}
    return kinds.get(type(value), type(value).__name__)


def _check_unique_example_ids(rows: Sequence[tuple[Path, int, dict]]) -> None:
    first_line: dict[str, int] = {}
    for path, line, row in rows:
        if "example_id" not in row:
            continue
        example_id = str(row["example_id"])
        if example_id in first_line:
            raise RadoncInputError(
                f"example_id '{example_id}' again (first on row {first_line[example_id]}): "
                "a repeated example would count twice",
                file=path,
                row=line,
                field="example_id",
            )
        first_line[example_id] = line


def check_no_shared_cases(
    train_rows: Sequence[tuple[Path, int, dict]], val_rows: Sequence[tuple[Path, int, dict]]
) -> None:
    """Refuse validation rows whose case is also a training case: the validation loss picks the
    adapter that is kept, and a leaked case would reward memorising it."""
    train_cases = {str(row["case_id"]) for _, _, row in train_rows if row.get("case_id")}
    shared = [
        (path, line, str(row["case_id"]))
        for path, line, row in val_rows
        if row.get("case_id") and str(row["case_id"]) in train_cases
    ]
    if shared:
        path, line, case_id = shared[0]
        cases = sorted({case for _, _, case in shared})
        raise RadoncInputError(
            f"{len(cases)} validation case(s) are also training cases (e.g. '{case_id}'); "
            "split the cases by patient with `radonc-llm split` and rebuild the task files",
            file=path,
            row=line,
            field="case_id",
        )


def tokenize_rows(
    rows: Sequence[tuple[Path, int, dict]], tokenizer: Any, *, max_length: int
) -> list[TokenizedExample]:
    """Tokenise every row. An example longer than `max_length` is never cut (a cut answer
    would teach a truncated answer, a cut prompt another prompt than prediction sends) nor
    dropped: all of them are counted and refused together, naming the length to set."""
    examples = []
    too_long: list[tuple[Path, int, int]] = []
    special = [token for token in tokenizer.all_special_tokens if token]
    for path, line, row in rows:
        prompt_ids, answer_ids = _tokenize_row(tokenizer, special, path, line, row["messages"])
        length = len(prompt_ids) + len(answer_ids)
        if length > max_length:
            too_long.append((path, line, length))
            continue
        examples.append(
            TokenizedExample(
                example_id=str(row.get("example_id", f"{path.stem}:{line}")),
                task=path.stem,
                input_ids=tuple(prompt_ids + answer_ids),
                prompt_length=len(prompt_ids),
                case_id=case_key(path, line, row),
            )
        )
    if too_long:
        _refuse_too_long(too_long, total=len(rows), max_length=max_length)
    return examples


def _tokenize_row(
    tokenizer: Any, special: Sequence[str], path: Path, line: int, messages: Sequence[dict]
) -> tuple[list[int], list[int]]:
    held = [token for token in special if token in messages[-1]["content"]]
    if held:
        # Tokenised as the special token itself: the end-of-turn token would end the answer
        # there and the rest would be cut; any other would teach the model to write it.
        raise RadoncInputError(
            f"the answer holds the tokenizer's special token {held[0]!r}, which the chat "
            "template uses to mark turns; remove it from the answer",
            file=path,
            row=line,
            field=f"messages.{len(messages) - 1}.content",
        )
    try:
        return tokenize_messages(tokenizer, messages)
    except ValueError as exc:
        raise RadoncInputError(
            f"{exc}: the answer cannot be told apart from the prompt with this model's "
            "chat template",
            file=path,
            row=line,
            field="messages",
        ) from None


def _refuse_too_long(
    too_long: Sequence[tuple[Path, int, int]], *, total: int, max_length: int
) -> NoReturn:
    path, line, _ = too_long[0]
    longest = max(length for _, _, length in too_long)
    shown = ", ".join(
        f"{where.name} row {row} ({length} tokens)" for where, row, length in too_long[:5]
    )
    more = f" and {len(too_long) - 5} more" if len(too_long) > 5 else ""
    raise RadoncInputError(
        f"{len(too_long)} of {total} examples {'is' if len(too_long) == 1 else 'are'} longer "
        f"than max_length={max_length}: "
        f"{shown}{more}. None is cut (a cut answer would teach a truncated answer) or "
        f"dropped; set max_length: {longest} in the config, or remove those rows",
        file=path,
        row=line,
        field="messages",
    )


def render_chat(tokenizer: Any, messages: Sequence[dict], *, add_generation_prompt: bool) -> str:
    """The chat template as text; templates without a system role get it folded into the user
    turn (Mistral-Instruct v0.2 refuses a system message)."""
    try:
        return tokenizer.apply_chat_template(
            list(messages), tokenize=False, add_generation_prompt=add_generation_prompt
        )
    except Exception:  # jinja2 raises TemplateError via `raise_exception` in the template
        if messages[0]["role"] != "system":
            raise
        system, first, *rest = messages
        folded = {"role": first["role"], "content": f"{system['content']}\n\n{first['content']}"}
        return tokenizer.apply_chat_template(
            [folded, *rest], tokenize=False, add_generation_prompt=add_generation_prompt
        )


def tokenize_messages(tokenizer: Any, messages: Sequence[dict]) -> tuple[list[int], list[int]]:
    """(prompt ids, answer ids) of a conversation whose last message is the answer."""
    prompt_text = render_chat(tokenizer, messages[:-1], add_generation_prompt=True)
    full_text = render_chat(tokenizer, messages, add_generation_prompt=False)
    if not full_text.startswith(prompt_text):
        raise ValueError("chat template renders the prompt differently inside the conversation")
    # The prompt is tokenised alone, exactly as prediction tokenises it.
    prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(full_text[len(prompt_text) :], add_special_tokens=False)["input_ids"]
    # Keep the end-of-turn token in the loss and drop what the template adds after it ("\n").
    eos = tokenizer.eos_token_id
    if eos in answer_ids:
        answer_ids = answer_ids[: answer_ids.index(eos) + 1]
    else:
        answer_ids = [*answer_ids, eos]
    return list(prompt_ids), list(answer_ids)


# -- order and batches --------------------------------------------------------------------------


def epoch_batches(
    lengths: Sequence[int],
    *,
    global_batch: int,
    seed: int,
    epoch: int,
    group_by_length: bool = True,
    length_window: int = 64,
    groups: Sequence[str] | None = None,
    run: int = 1,
) -> list[list[int]]:
    """The optimizer steps of one epoch: lists of example indices, a function of (seed, epoch).

    Length grouping: shuffle, sort within windows of `length_window` global batches, cut into
    batches and shuffle the batches, so each batch holds similar lengths (little padding) while
    the order stays random. A window of 1 keeps each step close to a random sample and only
    orders it for its micro-batches.

    With `groups` (the task of each example) every batch holds the groups in proportion, each
    group's examples of similar length, and `shard_step` cuts the batch by group first, so
    micro-batches hold one task and share its whole prompt prefix. `run` (pass the micro-batch
    size) keeps that many examples of a group together: a step of 2 micro-batches then holds 2
    of the 3 tasks, one per micro-batch, instead of cutting tasks across micro-batches, and
    over 3 steps each task comes equally. Every example appears exactly once per epoch; the
    last batch may be smaller.
    """
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(len(lengths), generator=generator).tolist()
    streams: dict[str, list[int]] = {}
    for index in order:
        streams.setdefault(groups[index] if groups is not None else "", []).append(index)
    if length_window < 1 or run < 1:
        raise ValueError("length_window and run must be at least 1")
    if group_by_length:
        window = global_batch * length_window
        for key, stream in streams.items():
            streams[key] = [
                index
                for start in range(0, len(stream), window)
                for index in sorted(stream[start : start + window], key=lambda i: -lengths[i])
            ]
    # Interleave the groups in proportion, in runs of `run` examples: the run of a group's n
    # examples that starts at k sits at (k + size / 2) / n.
    merged = sorted(
        ((start + len(part) / 2) / len(stream), key, start, part)
        for key, stream in sorted(streams.items())
        for start in range(0, len(stream), run)
        if (part := stream[start : start + run])
    )
    flat = [index for *_, part in merged for index in part]
    batches = [flat[start : start + global_batch] for start in range(0, len(flat), global_batch)]
    if group_by_length:
        shuffled = torch.randperm(len(batches), generator=generator).tolist()
        batches = [batches[i] for i in shuffled]
    return batches


def shard_step(
    batch: Sequence[int],
    lengths: Sequence[int],
    *,
    micro_batches: int,
    num_processes: int,
    process_index: int,
    groups: Sequence[str] | None = None,
) -> list[list[int]]:
    """This process's `micro_batches` micro-batches of one optimizer step (some may be empty).

    The step's examples are sorted by group (task), then length, and cut into
    micro_batches x num_processes contiguous slices; the processes take turns, so concurrent
    micro-batches have similar lengths and no process waits long for the others.
    """
    ordered = sorted(batch, key=lambda i: (groups[i] if groups is not None else "", -lengths[i]))
    slices = micro_batches * num_processes
    bounds = [round(k * len(ordered) / slices) for k in range(slices + 1)]
    parts = [ordered[bounds[k] : bounds[k + 1]] for k in range(slices)]
    return [parts[j * num_processes + process_index] for j in range(micro_batches)]


@dataclass
class AnswerBatch:
    """A right-padded batch and where its answer tokens are.

    `answer_rows`/`answer_cols` index the hidden states that predict answer tokens (position t
    predicts token t + 1); `targets` are those tokens.
    """

    input_ids: torch.Tensor
    answer_rows: torch.Tensor
    answer_cols: torch.Tensor
    targets: torch.Tensor
    num_tokens: int
    prefix_length: int = 0

    @property
    def answer_examples(self) -> torch.Tensor:
        """The example of each answer token: here its row."""
        return self.answer_rows

    @property
    def num_answer_tokens(self) -> int:
        return int(self.targets.numel())

    @property
    def computed_tokens(self) -> int:
        """Tokens that run: the shared prefix once, every row's rest."""
        return self.num_tokens - (self.input_ids.shape[0] - 1) * self.prefix_length

    def to(self, device: torch.device | str) -> AnswerBatch:
        return AnswerBatch(
            input_ids=self.input_ids.to(device),
            answer_rows=self.answer_rows.to(device),
            answer_cols=self.answer_cols.to(device),
            targets=self.targets.to(device),
            num_tokens=self.num_tokens,
            prefix_length=self.prefix_length,
        )


def collate(
    examples: Sequence[TokenizedExample], *, pad_id: int, share_prefix: bool = False
) -> AnswerBatch:
    """Right-pad a micro-batch; with `share_prefix`, record how many leading tokens all its
    rows share (never reaching the position that predicts the first answer token)."""
    width = max(len(example.input_ids) for example in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    rows, cols, targets = [], [], []
    for row, example in enumerate(examples):
        ids = torch.tensor(example.input_ids, dtype=torch.long)
        input_ids[row, : len(ids)] = ids
        positions = torch.arange(example.prompt_length - 1, len(ids) - 1)
        rows.append(torch.full_like(positions, row))
        cols.append(positions)
        targets.append(ids[example.prompt_length :])
    prefix = 0
    if share_prefix and len(examples) > 1:
        limit = min(example.prompt_length for example in examples) - 1
        same = (input_ids[:, :limit] == input_ids[:1, :limit]).all(dim=0)
        prefix = int(same.long().cumprod(0).sum())
    return AnswerBatch(
        input_ids=input_ids,
        answer_rows=torch.cat(rows),
        answer_cols=torch.cat(cols),
        targets=torch.cat(targets),
        num_tokens=sum(len(example.input_ids) for example in examples),
        prefix_length=prefix,
    )


def padded_labels(examples: Sequence[TokenizedExample]) -> torch.Tensor:
    """Labels for a right-padded batch as Hugging Face models take them (prompt and pad -100)."""
    width = max(len(example.input_ids) for example in examples)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    for row, example in enumerate(examples):
        labels[row, : len(example.input_ids)] = torch.tensor(example.labels())
    return labels


# -- whole cases: one note, several tasks -----------------------------------------------------


def case_groups(examples: Sequence[TokenizedExample]) -> list[list[int]]:
    """Indices of `examples` grouped by case (in order of first appearance)."""
    groups: dict[str, list[int]] = {}
    for index, example in enumerate(examples):
        groups.setdefault(example.case_id or example.example_id, []).append(index)
    return list(groups.values())


@dataclass
class CaseBatch:
    """A micro-batch of whole cases, one packed row per case, run in one forward pass.

    The prompts of one case differ only after the note (task prompts of version 3 put the
    diagnosis first): the trunk is their common token prefix (system prompt, note), the
    branches what follows (the task's instruction, the answer). A row holds the trunk once,
    then every branch; `segments` marks the trunk (0), branch k (k >= 1) and padding (-1).
    Under `case_attention_mask` a branch token sees the trunk and its own branch only, and its
    position goes on from the trunk's end: each answer token gets the loss it gets alone.
    """

    input_ids: torch.Tensor  # (cases, L), right-padded
    position_ids: torch.Tensor  # (cases, L)
    segments: torch.Tensor  # (cases, L)
    answer_rows: torch.Tensor  # the case's row
    answer_cols: torch.Tensor
    targets: torch.Tensor
    answer_examples: torch.Tensor  # the example (in the cases' order) of each answer token
    num_tokens: int  # of the examples, as if each ran alone
    computed_tokens: int  # what runs: each trunk once, every branch

    @property
    def num_answer_tokens(self) -> int:
        return int(self.targets.numel())

    def to(self, device: torch.device | str) -> CaseBatch:
        moved = {
            name: value.to(device) if isinstance(value, torch.Tensor) else value
            for name, value in self.__dict__.items()
        }
        return CaseBatch(**moved)


def collate_cases(cases: Sequence[Sequence[TokenizedExample]], *, pad_id: int) -> CaseBatch:
    """Pack whole cases (each a list of its task examples) as trunk + branches, a row each."""
    packed: list[tuple[list[int], list[int], list[int]]] = []  # ids, positions, segments
    rows, cols, targets, owners = [], [], [], []
    for case_index, examples in enumerate(cases):
        prompts = [example.input_ids[: example.prompt_length] for example in examples]
        # The last prompt token stays in every branch: its logits predict the first answer token.
        trunk = common_prefix_length(prompts)
        ids, positions = list(examples[0].input_ids[:trunk]), list(range(trunk))
        segments = [0] * trunk
        for branch, example in enumerate(examples, start=1):
            first = len(ids) + example.prompt_length - trunk - 1  # predicts the first answer token
            cols.append(torch.arange(first, first + example.answer_length))
            rows.append(torch.full((example.answer_length,), case_index))
            owners.append(torch.full((example.answer_length,), len(owners)))
            targets.append(torch.tensor(example.input_ids[example.prompt_length :]))
            ids += example.input_ids[trunk:]
            positions += range(trunk, len(example.input_ids))
            segments += [branch] * (len(example.input_ids) - trunk)
        packed.append((ids, positions, segments))
    width = max(len(ids) for ids, _, _ in packed)
    input_ids = torch.full((len(cases), width), pad_id, dtype=torch.long)
    position_ids = torch.zeros((len(cases), width), dtype=torch.long)
    segment_ids = torch.full((len(cases), width), -1, dtype=torch.long)
    for row, (ids, positions, segments) in enumerate(packed):
        input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        position_ids[row, : len(ids)] = torch.tensor(positions, dtype=torch.long)
        segment_ids[row, : len(ids)] = torch.tensor(segments, dtype=torch.long)
    return CaseBatch(
        input_ids=input_ids,
        position_ids=position_ids,
        segments=segment_ids,
        answer_rows=torch.cat(rows),
        answer_cols=torch.cat(cols),
        targets=torch.cat(targets),
        answer_examples=torch.cat(owners),
        num_tokens=sum(len(example.input_ids) for examples in cases for example in examples),
        computed_tokens=sum(len(ids) for ids, _, _ in packed),
    )


def case_attention_mask(segments: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Additive (cases, 1, L, L) mask of a `CaseBatch`: causal, and a branch token sees the
    trunk and its own branch (padding sees padding, so no row is all masked)."""
    length = segments.shape[1]
    causal = torch.ones((length, length), dtype=torch.bool, device=segments.device).tril()
    query, key = segments[:, :, None], segments[:, None, :]
    allowed = causal & ((key == 0) | (key == query))
    mask = torch.zeros(allowed.shape, dtype=dtype, device=segments.device)
    return mask.masked_fill(~allowed, torch.finfo(dtype).min)[:, None]

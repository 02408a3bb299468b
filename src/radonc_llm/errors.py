"""Errors a user can act on: each names the file, the row or line, the field and the reason.

The CLI prints these as one clear message (no traceback) and exits with status 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


class RadoncInputError(Exception):
    """Bad input that stops a stage: a missing column, an invalid case, a bad config field."""

    def __init__(
        self,
        reason: str,
        *,
        file: str | Path | None = None,
        row: int | None = None,
        field: str | None = None,
    ) -> None:
        self.reason = reason
        self.file = str(file) if file is not None else None
        self.row = row
        self.field = field
        super().__init__(self.message)

    @classmethod
    def from_validation_error(
        cls, exc: ValidationError, *, file: str | Path | None = None, row: int | None = None
    ) -> RadoncInputError:
        """The first problem pydantic found, named by its field path (e.g. `train.lora_rank`)."""
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        reason = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            reason = "unknown field"
        return cls(reason, file=file, row=row, field=field)

    @property
    def message(self) -> str:
        where = []
        if self.file:
            where.append(self.file)
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.field:
            where.append(f"field '{self.field}'")
        prefix = ", ".join(where)
        return f"{prefix}: {self.reason}" if prefix else self.reason

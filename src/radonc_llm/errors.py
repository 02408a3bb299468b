"""Errors a user can act on: each names the file, the row or line, the field and the reason.

The CLI prints these as one clear message (no traceback) and exits with status 2.
"""

from __future__ import annotations

from pathlib import Path


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

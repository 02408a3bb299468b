"""Schemas per direction: what a form sends in (`*Create`) and what a page shows (`*Public`)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from radonc_llm.review.models import (
    COMMENT_MAX_CHARS,
    CORRECTED_REGIMEN_MAX_CHARS,
    RATINGS,
    REASONS,
    USERNAME_MAX,
    USERNAME_PATTERN,
)

# The allowed values are the keys of the vocabularies in models.py (one place for both).
RatingValue = Literal[tuple(RATINGS)]  # type: ignore[valid-type]
ReasonValue = Literal[tuple(REASONS)]  # type: ignore[valid-type]
PASSWORD_MIN_CHARS = 10
PASSWORD_MAX_CHARS = 1024


def refuse_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL: refuse it here rather than fail with a 500 on save.
    if "\x00" in value:
        raise ValueError("contains a NUL character (\\x00); remove it")
    return value


class UserCreate(BaseModel):
    username: str
    password: SecretStr
    role: Literal["reviewer", "admin"] = "reviewer"

    @field_validator("username")
    @classmethod
    def _valid_username(cls, value: str) -> str:
        if len(value) > USERNAME_MAX or not re.fullmatch(USERNAME_PATTERN, value):
            raise ValueError(
                f"'{value}' is not a valid username: 1 to {USERNAME_MAX} ASCII letters, digits, "
                "'_', '.' or '-', starting with a letter or digit"
            )
        return value

    @field_validator("password")
    @classmethod
    def _valid_password(cls, value: SecretStr) -> SecretStr:
        # The message gives lengths only, never the password itself.
        password = value.get_secret_value()
        if not password.strip():
            raise ValueError("the password is empty or only spaces")
        if len(password) < PASSWORD_MIN_CHARS:
            raise ValueError(
                f"the password has {len(password)} characters; use at least {PASSWORD_MIN_CHARS}"
            )
        if len(password) > PASSWORD_MAX_CHARS:
            raise ValueError(f"the password is longer than {PASSWORD_MAX_CHARS} characters")
        refuse_nul(password)
        return value


class RatingCreate(BaseModel):
    """A submitted rating form. Browsers send CRLF line ends; they are stored as LF."""

    model_config = ConfigDict(str_strip_whitespace=True)

    rating: RatingValue
    reason: ReasonValue | None = None
    comment: str = Field("", max_length=COMMENT_MAX_CHARS)
    corrected_regimen: str = Field("", max_length=CORRECTED_REGIMEN_MAX_CHARS)

    @field_validator("reason", mode="before")
    @classmethod
    def _empty_reason_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("comment", "corrected_regimen", mode="before")
    @classmethod
    def _unix_newlines(cls, value: object) -> object:
        return value.replace("\r\n", "\n") if isinstance(value, str) else value

    @field_validator("comment", "corrected_regimen")
    @classmethod
    def _no_nul(cls, value: str) -> str:
        return refuse_nul(value)

    @model_validator(mode="after")
    def _reason_unless_acceptable(self) -> RatingCreate:
        if self.rating != "acceptable" and self.reason is None:
            raise ValueError("reason_required")
        return self

    def audit_value(self) -> dict[str, str | None]:
        return self.model_dump()


class RatingPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    rating: RatingValue
    reason: ReasonValue | None
    comment: str
    corrected_regimen: str
    updated_at: datetime

    @property
    def rating_label(self) -> str:
        return RATINGS[self.rating]

    @property
    def reason_label(self) -> str:
        return REASONS[self.reason] if self.reason else ""


FIELD_LABELS = {
    "rating": "Rating",
    "reason": "Reason category",
    "comment": "Comment",
    "corrected_regimen": "Corrected regimen",
}


def describe_rating_errors(exc: ValidationError) -> list[str]:
    """Plain-language messages for a rejected rating form, one per problem."""
    messages = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        label = FIELD_LABELS.get(field, field)
        if error["type"] == "string_too_long":
            limit = error["ctx"]["max_length"]
            messages.append(
                f"{label} is too long: {len(error['input'])} characters, the limit is {limit}."
            )
        elif field == "rating":
            messages.append("Choose a rating: acceptable as is, minor edits or unacceptable.")
        elif field == "reason":
            messages.append("Reason category is not one of the listed categories.")
        elif "reason_required" in error["msg"]:
            messages.append("Choose a reason category for a rating other than 'acceptable as is'.")
        else:
            messages.append(f"{label}: {error['msg'].removeprefix('Value error, ')}.")
    return messages

"""Settings of the review app, read from keyword arguments or `RADONC_REVIEW_*` variables.

The database URL may carry a password, so it is a `SecretStr`: it never shows up in a repr,
a log line or an error message.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL

STUDY_FILE = "study.json"
DEFAULT_DB_FILE = "review.db"


class ReviewSettings(BaseSettings):
    """Everything the web app and the `radonc-llm review` commands need to know."""

    model_config = SettingsConfigDict(env_prefix="RADONC_REVIEW_", extra="ignore")

    study_dir: Path = Field(description="Study folder holding study.json (and review.db).")
    database_url: SecretStr | None = Field(
        None,
        description="SQLAlchemy URL: sqlite:///PATH or postgresql+psycopg://USER@HOST/DB. "
        "Default: SQLite file review.db in the study folder.",
    )
    cookie_secure: bool = Field(
        False, description="Mark cookies Secure; set it when the app is served over HTTPS."
    )
    session_hours: float = Field(12.0, gt=0, description="Lifetime of a sign-in session.")
    login_max_failures: int = Field(
        5, ge=1, description="Wrong passwords per account within the window before refusing."
    )
    login_max_failures_per_client: int = Field(
        20, ge=1, description="Wrong passwords per client address within the window."
    )
    login_window_minutes: float = Field(15.0, gt=0, description="Window of the login limit.")
    max_body_bytes: int = Field(
        128 * 1024, ge=1024, description="Largest request body accepted (HTTP 413 above)."
    )
    password_time_cost: int = Field(3, ge=1, description="Argon2id passes (argon2-cffi default).")
    password_memory_kib: int = Field(
        64 * 1024, ge=8, description="Argon2id memory in KiB (argon2-cffi default: 64 MiB)."
    )
    password_parallelism: int = Field(4, ge=1, description="Argon2id lanes.")
    migrate_on_startup: bool = Field(
        True,
        description="Apply migrations and load the study when the app starts; `review serve` "
        "does it once itself and turns this off for its worker processes.",
    )

    @property
    def study_file(self) -> Path:
        return self.study_dir / STUDY_FILE

    def resolved_database_url(self) -> str:
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        # Built, not formatted: a study folder named 'dose?v2' or '50%' would otherwise be
        # read as a URL query or a percent-escape and put the database somewhere else.
        path = (self.study_dir / DEFAULT_DB_FILE).resolve()
        return URL.create("sqlite", database=str(path)).render_as_string(hide_password=False)

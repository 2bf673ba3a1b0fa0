"""A declared schema for a dataset (YAML or JSON), checked by ``bastion data check --schema``.

    columns:
      age:     {type: int, min: 0, max: 120, nullable: false}
      country: {type: str, allowed: [UK, FR, DE]}
      seen:    {type: datetime}
    labels: [benign, malicious]     # allowed label values
    additional_columns: false       # columns not listed here are findings
    timestamp: seen                 # enables the timeliness checks
    max_age_days: 365
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from bastion.data.interface import DataError

__all__ = ["ColumnRule", "DataSchema"]

ColumnType = Literal["int", "float", "number", "str", "bool", "datetime"]


class ColumnRule(BaseModel):
    """What one column must hold."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: ColumnType | None = None
    """Expected type; ``number`` accepts int or float."""
    min: float | None = None
    """Smallest allowed value (numbers)."""
    max: float | None = None
    """Largest allowed value (numbers)."""
    allowed: list[str | int | float | bool] | None = None
    """The only values allowed (categories)."""
    nullable: bool = True
    """Whether missing values are allowed."""

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


class DataSchema(BaseModel):
    """A dataset's declared columns, labels and freshness."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    columns: dict[str, ColumnRule] = {}
    """Rules per column name."""
    label: str | None = None
    """The label column (overrides the loader's guess)."""
    labels: list[str | int | bool] | None = None
    """Allowed label values."""
    additional_columns: bool = True
    """Whether columns not named in ``columns`` are allowed."""
    timestamp: str | None = None
    """Column with each record's time; enables timeliness checks."""
    max_age_days: float | None = None
    """Newest record must be at most this old."""

    @classmethod
    def from_file(cls, path: Path) -> Self:
        """Read a YAML or JSON schema; errors name the file and the bad key."""
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise DataError(f"{path}: cannot read the schema ({exc.strerror})") from exc
        except yaml.YAMLError as exc:
            raise DataError(f"{path}: not valid YAML or JSON ({exc})") from exc
        try:
            return cls.model_validate(data or {})
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(top level)"
            raise DataError(f"{path}: schema key {where}: {first['msg']}",
                            hint="see docs/data.md for the schema format") from exc

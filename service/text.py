"""Request bodies whose text can be encoded: a lone surrogate is a 422 naming its field.

JSON allows ``"\\ud800"``, and Python decodes it into a ``str`` that no UTF-8 encoder accepts: the
tokenizer, llama.cpp and SQLite each fail on it later, as a 500. Every request model derives from
``RequestBody``, so the check runs once, at validation, and the error names the parameter.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, field_validator


def first_unencodable(value: Any) -> int | None:
    """The index of the first character UTF-8 cannot encode in ``value``'s text, if any."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            return e.start
        return None
    items = value.items() if isinstance(value, dict) else ()
    parts = [p for kv in items for p in kv] if items else value
    if isinstance(parts, list | tuple):
        for part in parts:
            if not isinstance(part, BaseModel) and (found := first_unencodable(part)) is not None:
                return found
    return None


class RequestBody(BaseModel):
    """Base of every JSON request model: all its text must be valid Unicode."""

    @field_validator("*", mode="after")
    @classmethod
    def _encodable(cls, value: Any) -> Any:
        # Nested models derive from this class too and check their own fields.
        at = first_unencodable(value)
        if at is not None:
            raise ValueError(f"text is not valid Unicode (a lone surrogate at character {at})")
        return value

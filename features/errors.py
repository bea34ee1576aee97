"""One exception family for every bad input, so HTTP, CLI and batch can report it the same way.

HTTP maps an XltError to 422 with `field`, `message` and `suggestions`; the CLI prints `message` on one line and
exits 2; batch writes `message` into the row's `error` column and goes on with the other rows.
"""
from __future__ import annotations


class XltError(ValueError):
    """A user-facing input error: a message a person can act on, the field it concerns and close alternatives."""

    def __init__(self, message: str, *, field: str | None = None, suggestions: list[str] | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.suggestions = list(suggestions or [])

    def __str__(self) -> str:
        if self.suggestions:
            return f"{self.message} (did you mean: {', '.join(self.suggestions[:5])}?)"
        return self.message

    def to_dict(self) -> dict:
        return {"field": self.field, "message": str(self), "suggestions": self.suggestions, "type": type(self).__name__}


class UnknownLanguage(XltError):
    """A language code or name that no resolver rule recognises."""


class UnknownModel(XltError):
    """A model id or alias that is not in the registry."""


class UnknownTask(XltError):
    """A task the registry does not know, given without the task_type that would let us serve it."""


class BadMixture(XltError):
    """A train_config that does not parse as `lang:n;lang:n` with positive integer counts."""


class BadValue(XltError):
    """A number out of range (negative k, NaN size, …) or a field of the wrong shape."""


class ModelNotReady(RuntimeError):
    """The model artifact is missing, tampered with or truncated: never serve from it."""

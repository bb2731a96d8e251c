"""Errors raised by explainers and model handling. Messages are safe to show a client."""

from __future__ import annotations

from typing import Any


class ExplainError(Exception):
    """Base of every explain error."""


class InvalidInputError(ExplainError, ValueError):
    """An input does not fit the model's feature schema; ``path`` names the field at fault."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.reason = message


class InvalidSchemaError(ExplainError, ValueError):
    """A feature schema or manifest is malformed; ``path`` names the field at fault."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.reason = message


class ArtifactError(ExplainError):
    """A model artifact cannot be loaded, is of an unknown format, is refused as unsafe, or does not fit its
    manifest. ``path`` names the field at fault (``artifact``, or a manifest path such as
    ``features[3].name`` when the artifact disagrees with it); ``details`` says what the artifact has."""

    def __init__(self, message: str, *, path: str = "artifact", details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.details: dict[str, Any] = dict(details or {})


class UnsupportedModelError(ExplainError):
    """The requested method cannot explain this kind of model."""


class UnknownMethodError(ExplainError, LookupError):
    """No explainer back-end is registered under that name."""


class BudgetExceededError(ExplainError):
    """An explanation exceeded its cap on model calls or wall time."""


class ExplainerFailedError(ExplainError):
    """The underlying library failed; the message says which back-end and why."""

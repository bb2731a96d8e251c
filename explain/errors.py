"""Errors raised by explainers and model handling. Messages are safe to show a client."""

from __future__ import annotations


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
    """A model artifact cannot be loaded, is of an unknown format, or needs the trust flag."""


class UnsupportedModelError(ExplainError):
    """The requested method cannot explain this kind of model."""


class UnknownMethodError(ExplainError, LookupError):
    """No explainer back-end is registered under that name."""


class BudgetExceededError(ExplainError):
    """An explanation exceeded its cap on model calls or wall time."""


class ExplainerFailedError(ExplainError):
    """The underlying library failed; the message says which back-end and why."""

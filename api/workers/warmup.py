"""Import the explainer libraries before the first job needs them: importing shap takes seconds, which
would otherwise land on the first decision a worker explains (and on every child of a prefork worker)."""

from __future__ import annotations

import importlib
import logging
import threading

log = logging.getLogger("rationale.workers")

ALWAYS = ("explain.shap_backend", "shap")  # SHAP runs for every decision; the others load on request


def import_explainers() -> None:
    for name in ALWAYS:
        try:
            importlib.import_module(name)
        except Exception:  # a broken optional import surfaces, named, in the job that needs it
            log.warning("could not import %s ahead of time", name, exc_info=True)


def import_explainers_in_background() -> threading.Thread:
    thread = threading.Thread(target=import_explainers, name="explainer-warmup", daemon=True)
    thread.start()
    return thread

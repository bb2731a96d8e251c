"""One-line, plain-language notes on how far a stored explanation can be trusted, shared by the reviewer
pages and the human report so both say the same thing. Input: the stored result dicts (``to_dict``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SPACE_NAMES = {
    "probability": "probability",
    "log_odds": "log-odds",
    "softmax_logit": "softmax logit (multinomial)",
    "margin": "decision-function margin",
    "raw": "raw model output",
}


def space_name(space: str) -> str:
    return SPACE_NAMES.get(space, space.replace("_", " "))


def attribution_note(result: Mapping[str, Any]) -> str:
    """Units of the values, and whether they are exact or an estimate (and why)."""
    units = f"Values in {space_name(str(result.get('output_space', '')))} units"
    exact = result.get("exact")
    if exact is True:
        return f"{units}; exact Shapley values for the registered background."
    if exact is False:
        why = result.get("approximation") or "sampling estimate"
        bound = result.get("error_bound")
        limit = f" (error bound {bound:.3g})" if isinstance(bound, (int, float)) else ""
        return f"{units}; APPROXIMATION{limit}: {why}."
    return f"{units}; exactness not recorded."


def anchor_note(result: Mapping[str, Any]) -> str:
    """The re-measured precision and whether the rule really holds at the requested threshold."""
    checked = result.get("checked_precision")
    threshold = float(result.get("threshold", 0.0))
    if checked is None:
        return f"Precision {float(result.get('precision', 0.0)):.0%} as estimated by the anchor search."
    low = float(result.get("precision_lower_bound", checked))
    n = int(result.get("precision_samples", 0))
    text = (
        f"Re-measured precision {float(checked):.0%} on {n:,} independent samples "
        f"(95% lower bound {low:.0%}; requested {threshold:.0%})"
    )
    if low < threshold:
        return text + ": the rule does NOT reliably hold at the requested precision."
    return text + ": the rule holds."

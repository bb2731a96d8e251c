"""Plain-language reasons for a decision, from its attributions, anchor and counterfactuals.

Sentences come from templates with named placeholders; a model's manifest may override any of them
(``templates`` in the manifest), so wording can follow a lender's or hospital's own conventions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from explain.results import AnchorRule, Attributions, Counterfactuals, ExplanationResult
from explain.schema import ModelSpec
from explain.templates import usable_templates

DEFAULT_TEMPLATES: dict[str, str] = {
    "reason_first": "{feature} of {value} {direction} the score for {target} the most.",
    "reason": "{feature} of {value} {direction} the score for {target}.",
    "raised": "raised",
    "lowered": "lowered",
    "anchor": "The decision holds whenever {rule} (precision {precision:.0%}, coverage {coverage:.0%}).",
    "anchor_weak": (
        "A rule was found ({rule}), but re-measured on independent samples it gives the same decision for only "
        "{checked:.0%} of such inputs (95% lower bound {lower:.0%}), below the requested {threshold:.0%}: "
        "it does not reliably hold."
    ),
    "counterfactual": "Had {changes}, the outcome would have been {outcome}.",
    "change": "{feature} been {to} instead of {from_}",
    "no_counterfactual": "No small change to the inputs that the model would decide differently was found.",
}


@dataclass(frozen=True, slots=True)
class Reasons:
    sentences: tuple[str, ...]
    top_reasons: tuple[Mapping[str, Any], ...] = ()
    anchor_sentence: str | None = None
    counterfactual_sentence: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sentences": list(self.sentences),
            "top_reasons": [dict(r) for r in self.top_reasons],
            "anchor_sentence": self.anchor_sentence,
            "counterfactual_sentence": self.counterfactual_sentence,
        }


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.2f}".rstrip("0").rstrip(".") if value != int(value) else f"{int(value)}"
    return str(value)


def _name(spec: ModelSpec, feature: str) -> str:
    try:
        return spec.feature(feature).display_name
    except KeyError:
        return feature


def reasons_for(
    spec: ModelSpec,
    inputs: Mapping[str, Any],
    *,
    attributions: ExplanationResult | None,
    anchor: ExplanationResult | None,
    counterfactuals: ExplanationResult | None,
    templates: Mapping[str, str] | None = None,
    top: int = 3,
) -> Reasons:
    t = {**DEFAULT_TEMPLATES, **usable_templates(templates)}  # a stored bad template falls back, never raises
    sentences: list[str] = []
    top_reasons: list[dict[str, Any]] = []
    if attributions is not None and isinstance(attributions.body, Attributions):
        ranked = sorted(attributions.body.values.items(), key=lambda kv: -abs(kv[1]))[:top]
        for rank, (feature, contribution) in enumerate(ranked):
            if contribution == 0:
                continue
            direction = t["raised"] if contribution > 0 else t["lowered"]
            label = _name(spec, feature)
            text = t["reason_first" if rank == 0 else "reason"].format(
                feature=label[:1].upper() + label[1:],
                value=format_value(inputs.get(feature)),
                direction=direction,
                target=attributions.target,
            )
            sentences.append(text)
            top_reasons.append(
                {
                    "feature": feature,
                    "value": inputs.get(feature),
                    "contribution": contribution,
                    "direction": "raised" if contribution > 0 else "lowered",
                    "target": attributions.target,
                }
            )
    anchor_sentence = None
    if anchor is not None and isinstance(anchor.body, AnchorRule):
        rule = anchor.body
        if rule.holds is False:
            anchor_sentence = t["anchor_weak"].format(
                rule=_rule_text(spec, rule),
                checked=rule.checked_precision,
                lower=rule.precision_lower_bound,
                threshold=rule.threshold,
            )
        else:
            precision = rule.checked_precision if rule.checked_precision is not None else rule.precision
            anchor_sentence = t["anchor"].format(
                rule=_rule_text(spec, rule), precision=precision, coverage=rule.coverage
            )
        sentences.append(anchor_sentence)
    cf_sentence = None
    if counterfactuals is not None and isinstance(counterfactuals.body, Counterfactuals):
        body = counterfactuals.body
        if body.items:
            best = body.items[0]
            parts = [
                t["change"].format(
                    feature=_name(spec, c.feature), to=format_value(c.to_value), from_=format_value(c.from_value)
                )
                for c in best.changes
            ]
            changes = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
            cf_sentence = t["counterfactual"].format(changes=changes, outcome=body.desired)
        else:
            cf_sentence = t["no_counterfactual"]
        sentences.append(cf_sentence)
    return Reasons(tuple(sentences), tuple(top_reasons), anchor_sentence, cf_sentence)


def _rule_text(spec: ModelSpec, rule: AnchorRule) -> str:
    if not rule.conditions:
        return "any input is given"
    words = []
    for condition in rule.conditions:
        text = condition
        for f in spec.features:
            if f.name in text.split():
                text = text.replace(f.name, f.display_name.lower() if f.label else f.name.replace("_", " "), 1)
                break
        words.append(text.replace(" = ", " is ").replace("<=", "at most").replace(">=", "at least"))
    return " and ".join(words)

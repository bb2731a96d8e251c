"""Manifest sentence templates: only plain named placeholders, checked at registration and again at use.

A manifest may reword the plain-language reasons (``explain.reasons``) with ``str.format`` templates. Given
to ``str.format`` unchecked, a template is a small language: ``{feature.__class__.__mro__}`` walks object
attributes, ``{rule[0]}`` indexes, ``{value:>999999999}`` allocates a gigabyte, and ``{nope}`` raises on
every later read of every decision of that model. So a template may hold only the placeholders its key
documents (``PLACEHOLDERS``), with no attribute, index or conversion, and at most a short format spec that
the placeholder's type accepts. ``check_templates`` refuses anything else at registration, naming the
template; ``usable_templates`` drops anything else at read time, so a model stored before these checks
falls back to the default wording instead of turning reads and exports into 500s.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping

from explain.errors import InvalidSchemaError

MAX_TEMPLATE_LENGTH = 1000

# The placeholders each template receives, with a sample value of the type it is given at render time.
PLACEHOLDERS: dict[str, dict[str, object]] = {
    "reason_first": {"feature": "Income", "value": "41,000", "direction": "raised", "target": "approved"},
    "reason": {"feature": "Income", "value": "41,000", "direction": "raised", "target": "approved"},
    "raised": {},
    "lowered": {},
    "anchor": {"rule": "income is at least 40000", "precision": 0.95, "coverage": 0.25},
    "counterfactual": {"changes": "income been 50,000 instead of 41,000", "outcome": "approved"},
    "change": {"feature": "income", "to": "50,000", "from_": "41,000"},
    "no_counterfactual": {},
}

# fill+align, sign, '#', '0', width (at most 3 digits), grouping, precision (at most 2 digits), type
_SPEC = re.compile(r"(.?[<>=^])?[+\- ]?#?0?(\d{1,3})?[,_]?(\.\d{1,2})?[bcdeEfFgGnosxX%]?")


def template_problem(key: str, template: object) -> str | None:
    """Why ``template`` may not be used for ``key``, or None when it is a plain template."""
    if key not in PLACEHOLDERS:
        return f"unknown template; known: {', '.join(sorted(PLACEHOLDERS))}"
    if not isinstance(template, str):
        return "a template is a string"
    if len(template) > MAX_TEMPLATE_LENGTH:
        return f"at most {MAX_TEMPLATE_LENGTH} characters"
    allowed = PLACEHOLDERS[key]
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        return f"not a valid template: {exc} (write a literal brace as {{{{ or }}}})"
    for _literal, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in allowed:
            plain = ", ".join("{" + p + "}" for p in allowed) or "none"
            return f"placeholder {{{name}}} is not allowed; this template takes only {plain}"
        if conversion is not None:
            return f"placeholder {{{name}!{conversion}}}: conversions are not allowed"
        if spec and ("{" in spec or not _SPEC.fullmatch(spec)):
            return f"placeholder {{{name}:{spec}}}: only a short format spec such as :.0% or :>10 is allowed"
    try:
        template.format(**allowed)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        return f"cannot be filled in: {exc}"
    return None


def check_templates(templates: Mapping[str, object], *, path: str = "templates") -> None:
    """Raise InvalidSchemaError naming ``templates.<key>`` for the first template that is not plain."""
    for key, template in templates.items():
        problem = template_problem(key, template)
        if problem is not None:
            raise InvalidSchemaError(f"{path}.{key}", problem)


def usable_templates(templates: Mapping[str, object] | None) -> dict[str, str]:
    """The plain templates of a stored manifest; any other is dropped, so its default wording is used."""
    return {
        key: template
        for key, template in (templates or {}).items()
        if isinstance(template, str) and template_problem(key, template) is None
    }

"""``rationale.Client``: Rationale's HTTP API as pandas DataFrames, for notebooks.

    >>> import rationale
    >>> rc = rationale.Client("http://127.0.0.1:8000", api_key="...")
    >>> logged = rc.log(applications, model="credit@2")          # a DataFrame of inputs
    >>> rc.attributions("credit", version="2")                     # one row per decision x feature
    >>> rc.drift("credit", reference_version="1", current_version="2").inputs

Every list is paged for you, 503 answers are retried with exponential back-off (honouring Retry-After),
and a refused request raises a typed error (rationale.errors) carrying the API's code and field.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from rationale.errors import RationaleError, UnavailableError, error_for

__all__ = ["Client", "DriftReport"]

_CLASSIFICATION = ("accuracy", "precision", "recall", "roc_auc", "brier", "expected_calibration_error")
_REGRESSION = ("mae", "rmse", "bias")
_ESTIMATED = ("accuracy", "precision", "recall", "roc_auc")


@dataclass(frozen=True)
class DriftReport:
    """Drift between two windows: ``inputs`` (one row per feature: test, statistic, p_value, psi,
    js_distance) and ``attributions`` (mean |SHAP| before/after, change, ranks, ks_statistic, psi,
    js_distance); ``reference`` / ``current`` describe the windows; ``raw`` is the API's answer."""

    inputs: pd.DataFrame
    attributions: pd.DataFrame
    reference: dict[str, Any]
    current: dict[str, Any]
    raw: dict[str, Any]


class Client:
    """A connection to one Rationale server.

    Args:
        url: the server's base URL, e.g. ``http://127.0.0.1:8000``.
        api_key: sent as ``Authorization: Bearer <key>``; default the ``RATIONALE_API_KEY`` environment variable,
            so a notebook need not hold the secret in its text.
        purpose: why you are reading (recorded with access entries), sent as ``X-Rationale-Purpose``.
        timeout: seconds per HTTP request.
        retries: how many times a 503 (or an unreachable server) is retried before UnavailableError.
        backoff: first back-off in seconds; it doubles per retry (a Retry-After header wins, up to 30 s).
        page_size: items fetched per request when paging through lists.
    """

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        purpose: str | None = None,
        timeout: float = 60.0,
        retries: int = 5,
        backoff: float = 0.5,
        page_size: int = 500,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"User-Agent": "rationale-client/0.1", "Accept": "application/json"}
        api_key = api_key if api_key is not None else os.environ.get("RATIONALE_API_KEY")
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        if purpose:
            headers["X-Rationale-Purpose"] = purpose
        self._http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout, transport=transport)
        self.retries = retries
        self.backoff = backoff
        self.page_size = page_size

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    # models ------------------------------------------------------------------------------------------------

    def register(
        self,
        manifest: Mapping[str, Any],
        artifact: bytes | str | Path,
        *,
        background: pd.DataFrame | None = None,
    ) -> dict[str, Any]:
        """Register a model version: ``manifest`` (name, version, task, class_labels, features, ...),
        the artifact (bytes or a path to a skops / XGBoost / LightGBM / ONNX file) and optionally a
        background sample. Registering the same version again with the same content is a no-op."""
        data = artifact if isinstance(artifact, bytes) else Path(artifact).read_bytes()
        body = dict(manifest)
        if background is not None:
            body["background"] = _records(background)
        files = {"artifact": ("artifact", data, "application/octet-stream")}
        return dict(self._request("POST", "/v1/models", data={"manifest": json.dumps(body)}, files=files))

    def models(self) -> pd.DataFrame:
        """Every registered model version, one row each."""
        return pd.DataFrame(self._request("GET", "/v1/models")["items"])

    def deploy(
        self,
        model: str,
        version: str,
        *,
        reason: str,
        action: str = "deploy",
        effective_at: datetime | None = None,
    ) -> dict[str, Any]:
        """Record that ``model@version`` went live (``action="deploy"``) or was rolled back to
        (``action="rollback"``), and why; a ledger entry."""
        body: dict[str, Any] = {"version": version, "action": action, "reason": reason}
        if effective_at is not None:
            body["effective_at"] = _moment(effective_at, "effective_at")
        return dict(self._request("POST", f"/v1/models/{model}/deployments", json=body))

    # decisions ---------------------------------------------------------------------------------------------

    def log(
        self,
        df: pd.DataFrame,
        model: str,
        *,
        ids: str | Sequence[str] | None = None,
        occurred_at: str | None = None,
        subject_ref: str | None = None,
        context: Sequence[str] = (),
        explain: Sequence[str] | None = None,
        batch_size: int = 500,
    ) -> pd.DataFrame:
        """Log one decision per row of ``df`` with ``model`` (``name@version``) and return, per row, its
        decision_id, whether it was new (``created``), the output and its ledger index.

        ``ids``: a column of decision ids, or a sequence; by default each id is derived from the model,
        the row's index label and its values, so logging the same DataFrame twice records nothing new.
        ``occurred_at`` / ``subject_ref``: columns holding those (times must carry a timezone);
        ``context``: columns sent as context, not as inputs; ``explain``: methods (the model's defaults
        if None, ``[]`` for none). Rows go in batches of ``batch_size``, each recorded atomically.
        """
        special = {c for c in (occurred_at, subject_ref) if c} | set(context)
        if isinstance(ids, str):
            special.add(ids)
        inputs = df.drop(columns=[c for c in special if c in df.columns])
        if ids is None:
            id_list = [_derived_id(model, label, row) for label, row in zip(df.index, _records(inputs), strict=True)]
        elif isinstance(ids, str):
            id_list = [str(v) for v in df[ids]]
        else:
            id_list = [str(v) for v in ids]
            if len(id_list) != len(df):
                raise ValueError(f"ids has {len(id_list)} items for {len(df)} rows")
        items = []
        for position, row in enumerate(_records(inputs)):
            item: dict[str, Any] = {"decision_id": id_list[position], "model": model, "inputs": row}
            if occurred_at:
                item["occurred_at"] = _moment(df[occurred_at].iloc[position], occurred_at)
            if subject_ref:
                item["subject_ref"] = str(df[subject_ref].iloc[position])
            if context:
                item["context"] = {c: _plain(df[c].iloc[position]) for c in context}
            if explain is not None:
                item["explain"] = list(explain)
            items.append(item)
        results = []
        for start in range(0, len(items), batch_size):
            answer = self._request("POST", "/v1/decisions", json={"decisions": items[start : start + batch_size]})
            results.extend(answer["decisions"])
        rows = [
            {
                "decision_id": r["decision_id"],
                "created": r["created"],
                "model": r["model"],
                **{f"output_{k}": v for k, v in r["output"].items() if k != "scores"},
                **{f"score_{k}": v for k, v in (r["output"].get("scores") or {}).items()},
                "output_mismatch": r["output_mismatch"],
                "ledger_index": r["ledger"]["index"],
            }
            for r in results
        ]
        return pd.DataFrame(rows, index=df.index[: len(rows)])

    def decision(self, decision_id: str) -> dict[str, Any]:
        """One decision with its explanations, jobs and ledger position, as the API returns it."""
        return dict(self._request("GET", f"/v1/decisions/{decision_id}"))

    def decisions(
        self,
        model: str | None = None,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        subject_ref: str | None = None,
        outcome: str | None = None,
        limit: int | None = None,
    ) -> pd.DataFrame:
        """Decisions matching the filters (``model`` is ``name@version``), every page, or the first
        ``limit``: decision_id, model, output_label / output_value, scores, occurred_at, outcome."""
        params = _params(model=model, since=since, until=until, subject_ref=subject_ref, outcome=outcome)
        rows = []
        for item in self._pages("/v1/decisions", params, limit=limit):
            output = item.get("output") or {}
            outcome_body = item.get("outcome") or {}
            rows.append(
                {
                    "decision_id": item["decision_id"],
                    "model": item["model"],
                    **{f"output_{k}": v for k, v in output.items() if k != "scores"},
                    **{f"score_{k}": v for k, v in (output.get("scores") or {}).items()},
                    "subject_ref": item.get("subject_ref"),
                    "occurred_at": pd.Timestamp(item["occurred_at"]),
                    "outcome": outcome_body.get("label", outcome_body.get("value")),
                    "ledger_index": item["ledger_index"],
                }
            )
        return pd.DataFrame(rows)

    def log_outcomes(self, outcomes: Mapping[str, Any] | pd.Series) -> pd.DataFrame:
        """Append real outcomes: decision id -> label (classifiers) or value (regression). The same outcome
        twice is a no-op; a different one for the same decision raises ConflictError."""
        rows = []
        for decision_id, value in dict(outcomes).items():
            body: dict[str, Any]
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                body = {"value": float(value)}
            else:
                body = {"label": str(value)}
            answer = self._request("POST", f"/v1/decisions/{decision_id}/outcome", json=body)
            rows.append({"decision_id": decision_id, **answer["outcome"], "ledger_index": answer["ledger"]["index"]})
        return pd.DataFrame(rows)

    def outcomes(
        self, model: str | None = None, *, since: datetime | None = None, until: datetime | None = None
    ) -> pd.DataFrame:
        """Decisions whose outcome has arrived, with the prediction next to it (columns of ``decisions``)."""
        frame = self.decisions(model, since=since, until=until)
        if frame.empty:
            return frame
        return frame[frame["outcome"].notna()].reset_index(drop=True)

    def attributions(
        self,
        model: str,
        *,
        version: str | Sequence[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        form: str = "long",
        limit: int | None = None,
    ) -> pd.DataFrame:
        """SHAP attributions per raw feature of ``model``'s decisions (every page, or the first ``limit``).

        ``form="long"``: one row per decision x feature (decision_id, model, occurred_at, feature, value);
        ``form="wide"``: one row per decision, a column per feature."""
        if form not in ("long", "wide"):
            raise ValueError('form is "long" or "wide"')
        params = _params(version=version, since=since, until=until)
        rows = []
        for item in self._pages(f"/v1/models/{model}/attributions", params, limit=limit):
            base = {"decision_id": item["decision_id"], "model": item["model"], "occurred_at": item["occurred_at"]}
            rows.append({**base, **item["values"]})
        wide = pd.DataFrame(rows)
        if wide.empty:
            return wide
        wide["occurred_at"] = pd.to_datetime(wide["occurred_at"], utc=True, format="ISO8601")
        if form == "wide":
            return wide
        long = wide.melt(id_vars=["decision_id", "model", "occurred_at"], var_name="feature", value_name="value")
        return long.sort_values(["occurred_at", "decision_id", "feature"], kind="stable").reset_index(drop=True)

    def replay(self, decision_id: str) -> dict[str, Any]:
        """Re-run a decision's recorded explanations from the stored artifact; ``reproduced`` says whether
        every one came out the same, ``outcomes`` says what differs."""
        return dict(self._request("POST", f"/v1/decisions/{decision_id}/replay"))

    def wait_for_explanations(self, timeout: float = 120.0, poll: float = 0.25) -> None:
        """Block until the server's explanation queue is empty (raises TimeoutError after ``timeout`` s)."""
        deadline = time.monotonic() + timeout
        while self._request("GET", "/healthz")["queue_depth"] > 0:
            if time.monotonic() > deadline:
                raise TimeoutError(f"explanations still queued after {timeout} s")
            time.sleep(poll)

    # analytics ---------------------------------------------------------------------------------------------

    def drift(
        self,
        model: str,
        *,
        reference_version: str | Sequence[str] | None = None,
        current_version: str | Sequence[str] | None = None,
        reference_since: datetime | None = None,
        reference_until: datetime | None = None,
        current_since: datetime | None = None,
        current_until: datetime | None = None,
        bins: int = 10,
    ) -> DriftReport:
        """Input and attribution drift between a reference and a current window (versions and/or times)."""
        params = _params(
            reference_version=reference_version,
            current_version=current_version,
            reference_since=reference_since,
            reference_until=reference_until,
            current_since=current_since,
            current_until=current_until,
            bins=bins,
        )
        raw = self._request("GET", f"/v1/models/{model}/drift", params=params)
        return DriftReport(
            inputs=pd.DataFrame(raw["inputs"]).set_index("feature"),
            attributions=pd.DataFrame(raw["attributions"]).set_index("feature"),
            reference=raw["reference"],
            current=raw["current"],
            raw=raw,
        )

    def importance(
        self,
        model: str,
        *,
        version: str | Sequence[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        bucket: str = "all",
    ) -> pd.DataFrame:
        """Mean |SHAP| per feature (columns, most important first) by version and bucket (the index);
        ``bucket`` is "day", "week", "month" or "all"."""
        raw = self._request(
            "GET",
            f"/v1/models/{model}/importance",
            params=_params(version=version, since=since, until=until, bucket=bucket),
        )
        rows = [
            {"version": r["version"], "bucket": r["bucket"], "explanations": r["explanations"], **r["mean_abs"]}
            for r in raw["rows"]
        ]
        frame = pd.DataFrame(rows, columns=["version", "bucket", "explanations", *raw["features"]])
        return frame.set_index(["version", "bucket"])

    def performance(
        self,
        model: str,
        *,
        version: str | Sequence[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        bucket: str = "week",
    ) -> pd.DataFrame:
        """Per version and bucket: decisions, with_outcome, missing_outcomes, realised_* figures (accuracy,
        precision, recall, roc_auc, brier, expected_calibration_error; or mae, rmse, bias) and the
        estimated_* figures from the model's own confidence (CBPE), side by side."""
        raw = self._request(
            "GET",
            f"/v1/models/{model}/performance",
            params=_params(version=version, since=since, until=until, bucket=bucket),
        )
        regression = raw["task"] == "regression"
        figures = {
            "realised": _REGRESSION if regression else _CLASSIFICATION,
            "estimated": () if regression else _ESTIMATED,
        }
        rows = []
        for r in raw["rows"]:
            row = {k: r[k] for k in ("version", "bucket", "decisions", "with_outcome", "missing_outcomes")}
            for part, keys in figures.items():
                for key in keys:
                    row[f"{part}_{key}"] = (r[part] or {}).get(key)
            rows.append(row)
        frame = pd.DataFrame(rows)
        frame.attrs.update(task=raw["task"], positive_class=raw["positive_class"])
        return frame.set_index(["version", "bucket"]) if not frame.empty else frame

    def fairness(
        self,
        model: str,
        group: str,
        *,
        version: str | Sequence[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        positive: str | None = None,
    ) -> pd.DataFrame:
        """Per group of ``group`` (an input feature or a context key): decisions, selected, selection_rate,
        true/false positive rates and accuracy where outcomes arrived. The summary figures
        (demographic_parity_difference, demographic_parity_ratio, equalized_odds_difference) are in
        ``frame.attrs``."""
        params = _params(group=group, version=version, since=since, until=until, positive=positive)
        raw = self._request("GET", f"/v1/models/{model}/fairness", params=params)
        frame = pd.DataFrame(raw["groups"])
        if not frame.empty:
            frame = frame.set_index("group")
        frame.attrs.update({k: v for k, v in raw.items() if k != "groups"})
        return frame

    def timeline(self, model: str) -> pd.DataFrame:
        """Deployments, rollbacks and each version's first and last decision in time order (at, kind,
        version, detail, ledger_index). ``frame.attrs``: live_version, decisions_while_not_live, and
        ``versions`` (per version: live periods, decisions made while not live, examples)."""
        raw = self._request("GET", f"/v1/models/{model}/timeline")
        frame = pd.DataFrame(raw["events"], columns=["at", "kind", "version", "detail", "ledger_index"])
        frame["at"] = pd.to_datetime(frame["at"], utc=True, format="ISO8601")
        frame.attrs.update({k: v for k, v in raw.items() if k != "events"})
        return frame

    # HTTP --------------------------------------------------------------------------------------------------

    def _pages(self, path: str, params: dict[str, Any], *, limit: int | None) -> Iterator[dict[str, Any]]:
        cursor: str | None = None
        seen = 0
        while True:
            size = self.page_size if limit is None else min(self.page_size, limit - seen)
            page = self._request(
                "GET", path, params={**params, "limit": size, **({"cursor": cursor} if cursor else {})}
            )
            for item in page["items"]:
                yield item
                seen += 1
            cursor = page.get("next_cursor")
            if not cursor or (limit is not None and seen >= limit):
                return

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                if attempt == self.retries:
                    raise UnavailableError(f"cannot reach {self._http.base_url}: {exc}", code="unreachable") from exc
                time.sleep(delay)
                delay *= 2
                continue
            if response.status_code == 503 and attempt < self.retries:
                time.sleep(_retry_after(response, delay))
                delay *= 2
                continue
            if response.status_code >= 400:
                try:
                    body = response.json()
                except ValueError:
                    body = None
                raise error_for(response.status_code, body)
            return response.json()
        raise RationaleError("unreachable")  # the loop always returns or raises


def _retry_after(response: httpx.Response, default: float) -> float:
    header = response.headers.get("Retry-After")
    try:
        return min(30.0, max(0.0, float(header))) if header is not None else default
    except ValueError:
        return default


def _plain(value: Any) -> Any:
    """A JSON value from a pandas/numpy scalar; NaN becomes None (the API refuses NaN)."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (pd.Timestamp, datetime)):
        return value.isoformat()
    return value


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    columns = [str(c) for c in df.columns]
    return [
        {c: _plain(v) for c, v in zip(columns, values, strict=True)} for values in df.itertuples(index=False, name=None)
    ]


def _derived_id(model: str, label: Any, row: Mapping[str, Any]) -> str:
    """The same model, row label and values give the same id: logging a frame again records nothing new."""
    text = json.dumps([model, str(label), row], sort_keys=True, default=str, separators=(",", ":"))
    return "df-" + hashlib.sha256(text.encode()).hexdigest()[:32]


def _moment(value: Any, field: str) -> str:
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        raise ValueError(f"{field}: times must carry a timezone (e.g. pd.Timestamp(..., tz='UTC'))")
    return stamp.isoformat()


def _params(**values: Any) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, datetime):
            params[key] = _moment(value, key)
        elif isinstance(value, (list, tuple)):
            params[key] = [str(v) for v in value]
        else:
            params[key] = value
    return params

"""Adversary suite (issue #12 item 7): an insider with database write access tampers with every table.

Hypothesis generates the tamperings — which row, which column, which new value — over a small populated
ledger (conftest.py), on SQLite and PostgreSQL. Each must be

- detected by `rationale verify` (``verify_whole_ledger`` exits 1),
- located: the output names the table and row key, or the entry index / tree range / checkpoint, and
- for rows the API serves, caught by the read path too: the response's integrity names the row, and the
  value served is the ledger's, never the edit.

What is not tampered with, on purpose (docs/threat-model.md): a decision's ``seq`` (storage order and the
search cursor, not a fact); a job's operational columns (``attempts``, ``max_attempts``, lease, timestamps)
and any column of a job still queued or running — a job is a request until its result is in the ledger, and
then it is checked against the explanation entry recording it; the ``error`` of a succeeded job (it keeps a
failed earlier attempt's message). Checkpoint tampering edits the signed body or the root column: the
checkpoint history, key columns and key rotation are the ``trust-keys`` branch's.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import timedelta
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Table, delete, insert, select, text, update

from api.services.reading import read_decision, read_model
from api.services.searching import DecisionQuery, search_decisions
from audit.entry import EntryDraft, StoredEntry, parse_timestamp
from audit.rowcheck import same_json
from storage.errors import NotFoundError
from storage.tables import DecisionRow, ExplanationRow, JobRow, ModelVersionRow, OutcomeRow
from tests.adversary.conftest import Attacked, Populated

pytestmark = pytest.mark.heavy  # ~2,200 tamperings, a few minutes: `make test` runs it, `make quick` does not

DECISIONS = cast(Table, DecisionRow.__table__)
EXPLANATIONS = cast(Table, ExplanationRow.__table__)
JOBS = cast(Table, JobRow.__table__)
OUTCOMES = cast(Table, OutcomeRow.__table__)
MODELS = cast(Table, ModelVersionRow.__table__)

PER_DATABASE = 1000
BUDGET = {
    "ledger_entries": 170,
    "ledger_nodes": 90,
    "ledger_checkpoints": 70,
    "signing_keys": 30,
    "decisions": 240,
    "explanations": 150,
    "jobs": 110,
    "outcomes": 100,
    "models": 90,
}
assert sum(BUDGET.values()) >= PER_DATABASE
COUNTS: dict[str, dict[str, int]] = {}


def run(table: str) -> Any:
    return settings(
        max_examples=BUDGET[table],
        deadline=None,
        derandomize=True,  # the same tamperings every run: a failure reproduces
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


def count(populated: Populated, table: str) -> None:
    COUNTS.setdefault(populated.backend, {}).setdefault(table, 0)
    COUNTS[populated.backend][table] += 1


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**31), 2**31),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(max_size=12),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
texts = st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), min_size=1, max_size=24)
shifts = st.integers(1, 10**12).map(lambda us: timedelta(microseconds=us)) | st.integers(1, 10**12).map(
    lambda us: -timedelta(microseconds=us)
)


def _row(conn: Connection, table: Table, **where: Any) -> dict[str, Any]:
    query = select(table)
    for column, value in where.items():
        query = query.where(table.c[column] == value)
    return dict(conn.execute(query).mappings().one())


def _set(conn: Connection, table: Table, where: dict[str, Any], **values: Any) -> None:
    query = update(table)
    for column, value in where.items():
        query = query.where(table.c[column] == value)
    conn.execute(query.values(**values))


def assert_detected(result: Attacked, *places: str) -> None:
    assert result.status == 1, f"verify passed the tampering:\n{result.output}"
    assert any(place in result.output for place in places), f"none of {places} named in:\n{result.output}"


def names_index(output: str, index: int) -> bool:
    """The output names entry ``index`` itself, or a tree node whose range holds it."""
    if re.search(rf"(entry|entries|idx=) ?{index}\b", output):
        return True
    return any(int(a) <= index <= int(b) for a, b in re.findall(r"entries (\d+)\.\.(\d+)", output))


# ---------------------------------------------------------------------------------------- ledger tables


@st.composite
def entry_tampering(draw: st.DrawFn, populated: Populated) -> tuple[str, int, Any]:
    index, _ = draw(st.sampled_from(populated.facts.entries))
    kind = draw(st.sampled_from(["flip byte", "leaf hash", "entry_type", "recorded_at", "delete", "swap", "rewrite"]))
    if kind == "flip byte":
        return kind, index, (draw(st.integers(0, 10_000)), draw(st.integers(1, 255)))
    if kind == "leaf hash":
        return kind, index, draw(st.binary(min_size=32, max_size=32))
    if kind in ("entry_type", "recorded_at"):
        return kind, index, draw(texts)
    return kind, index, draw(st.integers(0, 10_000))


def _rewrite(doc: dict[str, Any], salt: int) -> dict[str, Any]:
    """A change to an entry's payload that the rows it backs would show."""
    payload = doc["payload"]
    if doc["type"] == "decision.recorded":
        payload["subject_ref"] = f"forged-{salt}"
    elif doc["type"] == "model.registered":
        payload["artifact_sha256"] = hashlib.sha256(str(salt).encode()).hexdigest()
    elif doc["type"] == "outcome.recorded":
        payload["outcome"]["observed_at"] = "2020-01-01T00:00:00.000000Z"
    else:
        payload["forged"] = salt
    return doc


@pytest.mark.parametrize("table", ["ledger_entries"])
@run("ledger_entries")
@given(data=st.data())
def test_ledger_entry_tampering_is_detected_and_located(populated: Populated, table: str, data: st.DataObject) -> None:
    kind, index, value = data.draw(entry_tampering(populated))
    size = len(populated.facts.entries)

    def tamper(conn: Connection) -> None:
        canonical, leaf = conn.execute(
            text("SELECT canonical, leaf_hash FROM ledger_entries WHERE idx = :i"), {"i": index}
        ).one()
        canonical, leaf = bytes(canonical), bytes(leaf)
        params: dict[str, Any] = {"i": index}
        if kind == "flip byte":
            position, mask = value
            position %= len(canonical)
            changed = bytearray(canonical)
            changed[position] ^= mask
            params["v"] = bytes(changed)
            conn.execute(text("UPDATE ledger_entries SET canonical = :v WHERE idx = :i"), params)
        elif kind == "leaf hash":
            assume(value != leaf)
            conn.execute(text("UPDATE ledger_entries SET leaf_hash = :v WHERE idx = :i"), {**params, "v": value})
        elif kind == "entry_type":
            current = conn.execute(text("SELECT entry_type FROM ledger_entries WHERE idx = :i"), params).scalar()
            assume(value != current)
            conn.execute(text("UPDATE ledger_entries SET entry_type = :v WHERE idx = :i"), {**params, "v": value})
        elif kind == "recorded_at":
            conn.execute(text("UPDATE ledger_entries SET recorded_at = :v WHERE idx = :i"), {**params, "v": value})
        elif kind == "delete":
            conn.execute(text("DELETE FROM ledger_entries WHERE idx = :i"), params)
        elif kind == "swap":
            other = (index + 1 + value % (size - 1)) % size
            conn.execute(text("UPDATE ledger_entries SET idx = -1 WHERE idx = :i"), params)
            conn.execute(text("UPDATE ledger_entries SET idx = :i WHERE idx = :o"), {**params, "o": other})
            conn.execute(text("UPDATE ledger_entries SET idx = :o WHERE idx = -1"), {"o": other})
        else:  # rewritten with a matching leaf hash: only the tree, the checkpoints and the rows disagree
            doc = _rewrite(json.loads(canonical), value)
            forged = StoredEntry.build(
                index=index,
                draft=EntryDraft(doc["type"], doc["payload"]),
                recorded_at=parse_timestamp(doc["recorded_at"]),
            )
            conn.execute(
                text("UPDATE ledger_entries SET canonical = :c, leaf_hash = :h WHERE idx = :i"),
                {**params, "c": forged.canonical, "h": forged.leaf_hash},
            )

    with populated.attack(tamper) as result:
        assert result.status == 1, f"{kind} at {index} passed verify:\n{result.output}"
        assert names_index(result.output, index), f"{kind} at {index} not located:\n{result.output}"
    count(populated, table)


@pytest.mark.parametrize("table", ["ledger_nodes"])
@run("ledger_nodes")
@given(data=st.data())
def test_tree_node_tampering_is_detected_and_located(populated: Populated, table: str, data: st.DataObject) -> None:
    level, idx = data.draw(st.sampled_from(populated.facts.nodes))
    kind = data.draw(st.sampled_from(["hash", "delete"]))
    new_hash = data.draw(st.binary(min_size=32, max_size=32))

    def tamper(conn: Connection) -> None:
        where = {"l": level, "i": idx}
        if kind == "delete":
            conn.execute(text("DELETE FROM ledger_nodes WHERE level = :l AND idx = :i"), where)
        else:
            conn.execute(
                text("UPDATE ledger_nodes SET hash = :h WHERE level = :l AND idx = :i"), {**where, "h": new_hash}
            )

    first, last = idx << level, ((idx + 1) << level) - 1
    with populated.attack(tamper) as result:
        assert_detected(result, f"tree node over entries {first}..{last}")
    count(populated, table)


@pytest.mark.parametrize("table", ["ledger_checkpoints"])
@run("ledger_checkpoints")
@given(data=st.data())
def test_checkpoint_tampering_is_detected_and_located(populated: Populated, table: str, data: st.DataObject) -> None:
    size = data.draw(st.sampled_from(populated.facts.checkpoints))
    kind = data.draw(st.sampled_from(["root column", "signed body"]))
    root = data.draw(st.binary(min_size=32, max_size=32))
    position = data.draw(st.integers(0, 10_000))
    char = data.draw(st.characters(min_codepoint=33, max_codepoint=126))

    def tamper(conn: Connection) -> None:
        if kind == "root column":
            conn.execute(
                text("UPDATE ledger_checkpoints SET root_hash = :r WHERE tree_size = :s"), {"r": root, "s": size}
            )
            return
        note = conn.execute(text("SELECT note FROM ledger_checkpoints WHERE tree_size = :s"), {"s": size}).scalar_one()
        body = note.split("\n\n", 1)[0]
        where = position % len(body)
        assume(body[where] != char and body[where] != "\n")
        forged = note[:where] + char + note[where + 1 :]
        conn.execute(text("UPDATE ledger_checkpoints SET note = :n WHERE tree_size = :s"), {"n": forged, "s": size})

    with populated.attack(tamper) as result:
        assert_detected(result, f"checkpoint {size}", f"checkpoint at tree size {size}")
    count(populated, table)


@pytest.mark.parametrize("table", ["signing_keys"])
@run("signing_keys")
@given(data=st.data())
def test_signing_key_tampering_is_detected(populated: Populated, table: str, data: st.DataObject) -> None:
    key_id = data.draw(st.sampled_from(populated.facts.keys))
    kind = data.draw(st.sampled_from(["public key", "delete"]))
    public = data.draw(st.binary(min_size=32, max_size=32))

    def tamper(conn: Connection) -> None:
        if kind == "delete":
            conn.execute(text("DELETE FROM signing_keys WHERE key_id = :k"), {"k": key_id})
        else:
            conn.execute(text("UPDATE signing_keys SET public_key = :p WHERE key_id = :k"), {"p": public, "k": key_id})

    with populated.attack(tamper) as result:
        assert_detected(result, "checkpoint", "signing_keys")  # the key is not anchored, or what it signed fails
    count(populated, table)


# ----------------------------------------------------------------------------------------- fact tables

DECISION_KINDS = [
    "inputs",
    "output label",
    "subject_ref",
    "client_output",
    "output_mismatch",
    "occurred_at",
    "recorded_at",
    "context",
    "body_sha256",
    "model_ref",
    "model_version_id",
    "decision_id",
    "ledger_index",
    "delete",
    "insert",
]


@pytest.mark.parametrize("table", ["decisions"])
@run("decisions")
@given(data=st.data())
def test_decision_row_tampering_is_detected_located_and_never_served(
    populated: Populated, table: str, data: st.DataObject
) -> None:
    fact = data.draw(st.sampled_from(populated.facts.decisions))
    kind = data.draw(st.sampled_from(DECISION_KINDS))
    decision_id = fact["decision_id"]
    new_id = f"{decision_id}-{data.draw(texts)}"[:200]
    served_id = decision_id
    field: str | None = None
    recorded: Any = None

    def tamper(conn: Connection) -> None:
        nonlocal served_id, field, recorded
        row = _row(conn, DECISIONS, decision_id=decision_id)
        where = {"decision_id": decision_id}
        if kind == "inputs":
            name = data.draw(st.sampled_from(sorted(row["inputs"])))
            value = data.draw(json_values)
            assume(not same_json(value, row["inputs"][name]))
            field, recorded = "inputs", row["inputs"]
            _set(conn, DECISIONS, where, inputs={**row["inputs"], name: value})
        elif kind == "output label":
            value = data.draw(texts)
            assume(value != row["output"].get("label"))
            field, recorded = "output", row["output"]
            _set(conn, DECISIONS, where, output={**row["output"], "label": value})
        elif kind == "subject_ref":
            value = data.draw(st.none() | texts)
            assume(value != row["subject_ref"])
            field, recorded = "subject_ref", row["subject_ref"]
            _set(conn, DECISIONS, where, subject_ref=value)
        elif kind == "client_output":
            field, recorded = "client_output", row["client_output"]
            _set(conn, DECISIONS, where, client_output={"label": data.draw(texts)})
        elif kind == "output_mismatch":
            field, recorded = "output_mismatch", row["output_mismatch"]
            _set(conn, DECISIONS, where, output_mismatch=not row["output_mismatch"])
        elif kind in ("occurred_at", "recorded_at"):
            field, recorded = kind, row[kind]
            _set(conn, DECISIONS, where, **{kind: row[kind] + data.draw(shifts)})
        elif kind == "context":
            value = data.draw(json_values)
            field, recorded = "context", row["context"]
            _set(conn, DECISIONS, where, context={**row["context"], data.draw(st.text(max_size=5)) + "!": value})
        elif kind == "body_sha256":
            value = hashlib.sha256(data.draw(st.binary(max_size=8))).hexdigest()
            assume(value != row["body_sha256"])
            _set(conn, DECISIONS, where, body_sha256=value)
        elif kind == "model_ref":
            value = data.draw(texts)
            assume(value != row["model_ref"])
            field, recorded = "model_ref", row["model_ref"]
            _set(conn, DECISIONS, where, model_ref=value)
        elif kind == "model_version_id":
            _set(conn, DECISIONS, where, model_version_id=row["model_version_id"] + data.draw(st.integers(1, 1000)))
        elif kind == "decision_id":
            served_id = new_id
            _set(conn, DECISIONS, where, decision_id=new_id)
        elif kind == "ledger_index":
            others = [i for i, _ in populated.facts.entries if i != row["ledger_index"]]
            _set(conn, DECISIONS, where, ledger_index=data.draw(st.sampled_from(others)))
        elif kind == "delete":
            conn.execute(delete(DECISIONS).where(DECISIONS.c.decision_id == decision_id))
        else:  # a forged decision claiming a recorded one's entry
            served_id = new_id
            forged = {k: v for k, v in row.items() if k != "seq"}
            conn.execute(insert(DECISIONS).values(**{**forged, "decision_id": new_id}))

    with populated.attack(tamper) as result:
        if kind == "delete":
            assert_detected(result, f"ledger entry {fact['ledger_index']} (decision.recorded) has no row in decisions")
        else:
            assert_detected(result, f"decisions row decision_id={served_id!r}")
            view = read_decision(result.services, served_id)
            assert any(m.key == f"decision_id={served_id!r}" for m in view.mismatches), view.mismatches
            if field is not None:  # the record is served, not the edit
                assert same_json(_plain(getattr(view.record, field)), _plain(recorded)), (field, kind)
            if kind == "subject_ref" and view.mismatches:
                edited = _row_now(result, decision_id)["subject_ref"]
                if edited is not None:
                    hits, _ = search_decisions(result.services, DecisionQuery(subject_ref=edited))
                    assert hits and all(h.mismatches for h in hits if h.decision_id == decision_id)
    count(populated, table)


def _plain(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def _row_now(result: Attacked, decision_id: str) -> dict[str, Any]:
    with result.services.db.unit_of_work(write=False) as uow:
        return dict(
            uow.session.execute(select(DECISIONS).where(DECISIONS.c.decision_id == decision_id)).mappings().one()
        )


EXPLANATION_KINDS = [
    "body value",
    "body member",
    "status",
    "method",
    "decision_id",
    "params_hash",
    "job_id",
    "created_at",
    "id",
    "ledger_index",
    "delete",
    "insert",
]


@pytest.mark.parametrize("table", ["explanations"])
@run("explanations")
@given(data=st.data())
def test_explanation_row_tampering_is_detected_located_and_never_served(
    populated: Populated, table: str, data: st.DataObject
) -> None:
    fact = data.draw(st.sampled_from(populated.facts.explanations))
    kind = data.draw(st.sampled_from(EXPLANATION_KINDS))
    others = [d["decision_id"] for d in populated.facts.decisions if d["decision_id"] != fact["decision_id"]]
    new_id = data.draw(st.text("0123456789abcdef", min_size=32, max_size=32))
    assume(new_id != fact["id"])
    read_under = fact["decision_id"]
    key = f"id={fact['id']!r}"
    expect_table = "explanations"
    recorded_body: dict[str, Any] | None = None

    def tamper(conn: Connection) -> None:
        nonlocal read_under, key, expect_table, recorded_body
        row = _row(conn, EXPLANATIONS, id=fact["id"])
        where = {"id": fact["id"]}
        body = json.loads(json.dumps(row["body"]))
        if kind == "body value":
            values = body["result"]["values"]
            name = data.draw(st.sampled_from(sorted(values)))
            value = data.draw(st.floats(allow_nan=False, allow_infinity=False))
            assume(not same_json(value, values[name]))
            recorded_body = row["body"]
            values[name] = value
            _set(conn, EXPLANATIONS, where, body=body)
        elif kind == "body member":
            name = data.draw(st.sampled_from(sorted(body)))
            value = data.draw(json_values)
            assume(not same_json(value, body[name]))
            recorded_body = row["body"]
            body[name] = value
            _set(conn, EXPLANATIONS, where, body=body)
        elif kind == "status":
            _set(conn, EXPLANATIONS, where, status="failed" if row["status"] == "succeeded" else "succeeded")
        elif kind == "method":
            value = data.draw(st.sampled_from(["lime", "anchors", "counterfactuals"]) | texts)
            assume(value != row["method"])
            _set(conn, EXPLANATIONS, where, method=value)
        elif kind == "decision_id":
            read_under = data.draw(st.sampled_from(others))  # (a new params_hash: the unique key allows it)
            _set(conn, EXPLANATIONS, where, decision_id=read_under, params_hash=new_id)
        elif kind == "params_hash":
            value = data.draw(st.text("0123456789abcdef", min_size=32, max_size=32))
            assume(value != row["params_hash"])
            _set(conn, EXPLANATIONS, where, params_hash=value)
        elif kind == "job_id":
            _set(conn, EXPLANATIONS, where, job_id=new_id)
        elif kind == "created_at":
            _set(conn, EXPLANATIONS, where, created_at=row["created_at"] + data.draw(shifts))
        elif kind == "id":
            key = f"id={new_id!r}"
            _set(conn, EXPLANATIONS, where, id=new_id)
        elif kind == "ledger_index":
            choices = [i for i, _ in populated.facts.entries if i != row["ledger_index"]]
            _set(conn, EXPLANATIONS, where, ledger_index=data.draw(st.sampled_from(choices)))
        elif kind == "delete":
            expect_table = "jobs"  # the read path sees the job whose recorded result vanished
            conn.execute(delete(EXPLANATIONS).where(EXPLANATIONS.c.id == fact["id"]))
        else:  # a forged second explanation claiming the same entry
            key = f"id={new_id!r}"
            method = data.draw(st.sampled_from(["lime", "anchors"]))
            conn.execute(insert(EXPLANATIONS).values(**{**row, "id": new_id, "method": method}))

    with populated.attack(tamper) as result:
        if kind == "delete":
            assert_detected(result, f"ledger entry {fact['ledger_index']} (explanation.")
        else:
            assert_detected(result, f"explanations row {key}")
        view = read_decision(result.services, read_under)
        assert any(m.table == expect_table for m in view.mismatches), (kind, view.mismatches)
        if recorded_body is not None:
            served = {e.id: e.body for e, _ in view.explanations}
            assert same_json(served[fact["id"]], recorded_body)
    count(populated, table)


JOB_KINDS = ["state", "decision_id", "method", "params_hash", "params", "target", "explanation_id", "delete"]


@pytest.mark.parametrize("table", ["jobs"])
@run("jobs")
@given(data=st.data())
def test_finished_job_tampering_is_detected_and_located(populated: Populated, table: str, data: st.DataObject) -> None:
    fact = data.draw(st.sampled_from(populated.facts.jobs))
    kind = data.draw(st.sampled_from(JOB_KINDS))
    others = [d["decision_id"] for d in populated.facts.decisions if d["decision_id"] != fact["decision_id"]]
    reads = [fact["decision_id"]]

    def tamper(conn: Connection) -> None:
        row = _row(conn, JOBS, id=fact["id"])
        where = {"id": fact["id"]}
        if kind == "state":
            _set(conn, JOBS, where, state=data.draw(st.sampled_from(["queued", "running", "failed"])))
        elif kind == "decision_id":
            moved = data.draw(st.sampled_from(others))
            reads.append(moved)
            fresh = hashlib.sha256(moved.encode()).hexdigest()[:32]  # the unique key allows it
            _set(conn, JOBS, where, decision_id=moved, params_hash=fresh)
        elif kind in ("method", "params_hash", "explanation_id"):
            value = data.draw(texts)
            assume(value != row[kind])
            _set(conn, JOBS, where, **{kind: value})
        elif kind == "params":
            _set(
                conn,
                JOBS,
                where,
                params={**row["params"], data.draw(st.text(max_size=5)) + "!": data.draw(json_values)},
            )
        elif kind == "target":
            value = data.draw(texts)
            assume(value != row["target"])
            _set(conn, JOBS, where, target=value)
        else:
            conn.execute(delete(JOBS).where(JOBS.c.id == fact["id"]))

    with populated.attack(tamper) as result:
        assert_detected(result, f"jobs row id={fact['id']!r}")
        for decision_id in reads:
            view = read_decision(result.services, decision_id)
            assert any(m.key == f"id={fact['id']!r}" for m in view.mismatches), (kind, view.mismatches)
    count(populated, table)


OUTCOME_KINDS = ["label", "body", "recorded_at", "decision_id", "ledger_index", "delete", "insert"]


@pytest.mark.parametrize("table", ["outcomes"])
@run("outcomes")
@given(data=st.data())
def test_outcome_row_tampering_is_detected_located_and_never_served(
    populated: Populated, table: str, data: st.DataObject
) -> None:
    fact = data.draw(st.sampled_from(populated.facts.outcomes))
    kind = data.draw(st.sampled_from(OUTCOME_KINDS))
    with_outcome = {o["decision_id"] for o in populated.facts.outcomes}
    without = [d["decision_id"] for d in populated.facts.decisions if d["decision_id"] not in with_outcome]
    target = data.draw(st.sampled_from(without))
    read_under = fact["decision_id"]
    recorded: dict[str, Any] | None = None
    label: str | None = None

    def tamper(conn: Connection) -> None:
        nonlocal read_under, recorded, label
        row = _row(conn, OUTCOMES, decision_id=fact["decision_id"])
        where = {"decision_id": fact["decision_id"]}
        if kind == "label":
            label = data.draw(st.sampled_from(["approved", "declined"]) | texts)
            assume(label != row["label"])
            recorded = row["body"]
            _set(conn, OUTCOMES, where, label=label, body={**row["body"], "label": label})
        elif kind == "body":
            name = data.draw(st.sampled_from(["observed_at", "context", "value"]))
            value = data.draw(json_values)
            assume(not same_json(value, row["body"].get(name)))
            recorded = row["body"]
            _set(conn, OUTCOMES, where, body={**row["body"], name: value})
        elif kind == "recorded_at":
            _set(conn, OUTCOMES, where, recorded_at=row["recorded_at"] + data.draw(shifts))
        elif kind == "decision_id":
            read_under = target
            _set(conn, OUTCOMES, where, decision_id=target)
        elif kind == "ledger_index":
            choices = [i for i, _ in populated.facts.entries if i != row["ledger_index"]]
            _set(conn, OUTCOMES, where, ledger_index=data.draw(st.sampled_from(choices)))
        elif kind == "delete":
            conn.execute(delete(OUTCOMES).where(OUTCOMES.c.decision_id == fact["decision_id"]))
        else:  # an outcome for a decision that has none, claiming another's entry
            read_under = target
            conn.execute(insert(OUTCOMES).values(**{**row, "decision_id": target}))

    with populated.attack(tamper) as result:
        if kind == "delete":
            assert_detected(result, f"ledger entry {fact['ledger_index']} (outcome.recorded) has no row in outcomes")
        else:
            assert_detected(result, f"outcomes row decision_id={read_under!r}")
            view = read_decision(result.services, read_under)
            assert any(m.table == "outcomes" for m in view.mismatches), (kind, view.mismatches)
            assert view.outcome_ledger is not None
            if recorded is not None:
                assert same_json(view.record.outcome, recorded)  # the record is served, not the edit
            if label is not None:
                hits, _ = search_decisions(result.services, DecisionQuery(outcome=label))
                assert hits and all(h.mismatches for h in hits)
    count(populated, table)


MODEL_KINDS = [
    "name",
    "version",
    "task",
    "manifest",
    "artifact_sha256",
    "artifact_format",
    "background_sha256",
    "trusted_pickle",
    "registered_at",
    "ledger_index",
    "delete",
    "insert",
]


@pytest.mark.parametrize("table", ["models"])
@run("models")
@given(data=st.data())
def test_model_row_tampering_is_detected_located_and_never_served(
    populated: Populated, table: str, data: st.DataObject
) -> None:
    fact = data.draw(st.sampled_from(populated.facts.models))
    kind = data.draw(st.sampled_from(MODEL_KINDS))
    served = (fact["name"], fact["version"])
    key = f"id={fact['id']!r}"
    recorded_manifest: dict[str, Any] | None = None

    def tamper(conn: Connection) -> None:
        nonlocal served, key, recorded_manifest
        row = _row(conn, MODELS, id=fact["id"])
        where = {"id": fact["id"]}
        if kind in ("name", "version"):
            value = data.draw(st.text("abcdefghijklmnopqrstuvwxyz0123456789.-_", min_size=1, max_size=20))
            assume(value != row[kind])
            served = (value, row["version"]) if kind == "name" else (row["name"], value)
            _set(conn, MODELS, where, **{kind: value})
        elif kind in ("task", "artifact_format"):
            value = data.draw(st.sampled_from(["binary", "multiclass", "regression", "onnx", "pickle"]) | texts)
            assume(value != row[kind])
            _set(conn, MODELS, where, **{kind: value})
        elif kind == "manifest":
            manifest = json.loads(json.dumps(row["manifest"]))
            recorded_manifest = row["manifest"]
            manifest["metadata"] = {**manifest.get("metadata", {}), "owner": data.draw(texts) + "!"}
            _set(conn, MODELS, where, manifest=manifest)
        elif kind in ("artifact_sha256", "background_sha256"):
            value = hashlib.sha256(data.draw(st.binary(max_size=8))).hexdigest()
            assume(value != row[kind])
            _set(conn, MODELS, where, **{kind: value})
        elif kind == "trusted_pickle":
            _set(conn, MODELS, where, trusted_pickle=not row["trusted_pickle"])
        elif kind == "registered_at":
            _set(conn, MODELS, where, registered_at=row["registered_at"] + data.draw(shifts))
        elif kind == "ledger_index":
            choices = [i for i, _ in populated.facts.entries if i != row["ledger_index"]]
            _set(conn, MODELS, where, ledger_index=data.draw(st.sampled_from(choices)))
        elif kind == "delete":
            conn.execute(delete(MODELS).where(MODELS.c.id == fact["id"]))
        else:  # a forged version claiming the registered one's entry
            version = data.draw(st.text("0123456789", min_size=2, max_size=6))
            served = (row["name"], version)
            forged = {k: v for k, v in row.items() if k != "id"}
            new_id = conn.execute(insert(MODELS).values(**{**forged, "version": version})).inserted_primary_key
            key = f"id={new_id[0]!r}"

    with populated.attack(tamper) as result:
        if kind == "delete":
            assert_detected(
                result, f"ledger entry {fact['ledger_index']} (model.registered) has no row in model_versions"
            )
        else:
            assert_detected(result, f"model_versions row {key}")
            view = read_model(result.services, *served)
            assert view is not None and any(m.table == "model_versions" for m in view.mismatches), kind
            if recorded_manifest is not None:
                assert same_json(view.record.manifest, recorded_manifest)
    count(populated, table)


def test_at_least_a_thousand_tamperings_per_database_were_detected(populated: Populated) -> None:
    """Runs after the property tests above (file order): every generated tampering was detected."""
    done = COUNTS.get(populated.backend, {})
    missing = [t for t in BUDGET if t not in done]
    if missing:
        pytest.fail(f"run the whole module: no tampering of {missing} ran on {populated.backend}")
    assert sum(done.values()) >= PER_DATABASE, done
    assert populated.tamperings >= PER_DATABASE


__all__ = ["NotFoundError"]

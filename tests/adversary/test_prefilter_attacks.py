"""Attacks on the database's half of `rationale verify`: the row prefilter, and the server computing it.

`verify` lets the database vouch for the rows that match their entries (storage.rowscan); only the rest are
compared in Python. On PostgreSQL a decision row is spelled as its entry's bytes and compared piece by piece,
so the attacks here aim at that spelling and at the server:

- **Values copied from elsewhere in the entry.** Decisions whose context holds keys named like the payload's
  own members (``inputs``, ``decision_id``, ``explanations_requested``...), strings holding JSON syntax, and
  a mismatch record. Each column is set to every value found anywhere in its entry (and to generated JSON):
  the row must never be vouched for.
- **DDL.** The insider "can run any SQL" (docs/threat-model.md): an operator shadowing ``=`` through the
  search path, a cast standing in for a JSON column's spelling, a column retyped as text to shift bytes from
  one column into the next. Each comes with a row edit that the subverted comparison would vouch for.
- **Catalog edits** (a superuser rewriting a built-in operator): ``verify --exact`` trusts the database for
  stored bytes only, and still names the edit.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Table, text, update

from api.container import Services
from api.schemas import DecisionCreate
from api.services.decisions import record_decisions
from audit.canonical import canonical_bytes
from audit.rowcheck import same_json
from explain.samples import credit_spec, make_credit_frame
from storage.tables import DecisionRow
from tests.adversary.conftest import Populated, open_ledger, register_credit
from tests.db_fixtures import BACKENDS, PostgresTemplates

DECISIONS: Table = DecisionRow.__table__  # type: ignore[assignment]

# A context that spells, inside itself, the keys that follow it in the payload: a decision_id, the list of
# explanations requested, inputs and a model. Text-shifting attacks reuse it.
NESTED = {"b": 0, "context": {}, "decision_id": "x-forged", "explanations_requested": 1}


def _populate(services: Services) -> None:
    spec = credit_spec()
    register_credit(services)
    rows, _ = make_credit_frame(3, seed=5)
    records = rows.to_dict(orient="records")
    contexts: list[dict[str, Any]] = [
        {
            "k": [0, NESTED],
            "inputs": records[1],
            "model": "credit@1",
            "q": '","inputs":{},"model":"',
            "subject_ref": "s-9",
            "output_mismatch": None,
        },
        {"note": ',"subject_ref":"s-0"},"recorded_at":"', "output": {"label": "declined"}},
        {},
    ]
    labels = list(spec.class_labels)
    items = [
        DecisionCreate(
            decision_id=f"x-{i}",
            model="credit@1",
            inputs=records[i],  # type: ignore[arg-type]
            subject_ref=None if i == 2 else f"s-{i}",
            occurred_at=datetime(2026, 3, 1, 12, i, tzinfo=UTC),
            context=contexts[i],
            output={"label": labels[i % 2]} if i == 1 else None,
            explain=[],
        )
        for i in range(3)
    ]
    record_decisions(services, items, path="decisions")


@pytest.fixture(scope="module", params=BACKENDS)
def tricky(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    _sqlite_template: Path,
    _pg_templates: PostgresTemplates,
) -> Iterator[Populated]:
    """Three decisions whose entries spell payload keys and JSON syntax inside their own values."""
    yield from open_ledger(request, tmp_path_factory, _sqlite_template, _pg_templates, _populate)


# SQLite runs no SQL an attacker defines (no functions, casts or operators live in the file) and its JSON
# columns are plain text: these attacks and spellings exist on PostgreSQL only.
POSTGRES_ONLY = pytest.mark.parametrize("tricky", ["postgresql"], indirect=True)


def _values(node: Any) -> Iterator[Any]:
    """Every JSON value inside ``node``, itself included, and every object key (as a string)."""
    yield node
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from _values(value)
    elif isinstance(node, list):
        for value in node:
            yield from _values(value)


def _entry(conn: Connection, decision_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    row = dict(conn.execute(DECISIONS.select().where(DECISIONS.c.decision_id == decision_id)).mappings().one())
    canonical = conn.execute(
        text("SELECT canonical FROM ledger_entries WHERE idx = :i"), {"i": row["ledger_index"]}
    ).scalar_one()
    return row, json.loads(bytes(canonical))


JSON_COLUMNS = ("inputs", "output", "client_output", "context")
TEXT_COLUMNS = ("subject_ref", "decision_id", "model_ref", "body_sha256")
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=5,
)


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_a_column_set_to_any_value_of_its_entry_is_named(tricky: Populated, data: st.DataObject) -> None:
    decision_id = data.draw(st.sampled_from(["x-0", "x-1", "x-2"]))
    column = data.draw(st.sampled_from(JSON_COLUMNS + TEXT_COLUMNS))
    with tricky.services.db.engine.connect() as conn:
        row, document = _entry(conn, decision_id)
    found = list(_values(document))
    if column in JSON_COLUMNS:
        value = data.draw(st.sampled_from(found) | json_values)
    else:
        value = data.draw(st.sampled_from([v for v in found if isinstance(v, str)]) | st.text(max_size=12))
    assume(not same_json(value, row[column]))
    assume(column != "decision_id" or value not in ("x-0", "x-1", "x-2"))  # the unique index refuses those
    served = value if column == "decision_id" else decision_id

    def tamper(conn: Connection) -> None:
        conn.execute(update(DECISIONS).where(DECISIONS.c.decision_id == decision_id).values(**{column: value}))

    with tricky.attack(tamper) as result:
        assert result.status == 1, f"verify passed {column} = {value!r}:\n{result.output}"
        assert f"decisions row decision_id={served!r}" in result.output, result.output


@POSTGRES_ONLY
def test_a_respelled_but_equal_row_is_not_reported(tricky: Populated) -> None:
    """The other side of the text comparison: a row spelled differently (spaces, key order) but holding the
    same values goes to the Python comparison, which finds nothing. Only the database's vouching differs."""

    def tamper(conn: Connection) -> None:
        row, _ = _entry(conn, "x-0")
        spaced = json.dumps(dict(reversed(list(row["inputs"].items()))), indent=1)
        conn.execute(text("UPDATE decisions SET inputs = CAST(:v AS json) WHERE decision_id = 'x-0'"), {"v": spaced})

    with tricky.attack(tamper) as result:
        assert result.status == 0, result.output


def _shadow_equality(conn: Connection) -> None:
    conn.execute(
        text(
            "CREATE FUNCTION public.rationale_yes(bytea, bytea) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT true'"
        )
    )
    conn.execute(text("CREATE OPERATOR public.= (LEFTARG = bytea, RIGHTARG = bytea, FUNCTION = public.rationale_yes)"))
    conn.execute(text("SET search_path = public, pg_catalog"))


def _edit_subject(conn: Connection) -> str:
    conn.execute(text("UPDATE decisions SET subject_ref = 's-forged' WHERE decision_id = 'x-0'"))
    return "x-0"


def _cast_json_spelling(conn: Connection) -> str:
    """The inputs are edited; a cast from json to text spells the edited inputs as the recorded ones."""
    row, document = _entry(conn, "x-1")
    recorded = canonical_bytes(document["payload"]["inputs"]).decode()
    edited = json.dumps({**row["inputs"], "age": 99}, sort_keys=True, separators=(",", ":"))
    conn.execute(text("UPDATE decisions SET inputs = CAST(:v AS json) WHERE decision_id = 'x-1'"), {"v": edited})
    conn.exec_driver_sql(  # no bind parameters: the JSON's colons are literal
        "CREATE FUNCTION public.rationale_spell(json) RETURNS text LANGUAGE sql IMMUTABLE AS $$ "
        "SELECT CASE WHEN pg_catalog.textin(pg_catalog.json_out($1)) = "
        f"'{edited}' THEN '{recorded}' ELSE pg_catalog.textin(pg_catalog.json_out($1)) END $$"
    )
    conn.execute(text("CREATE CAST (json AS text) WITH FUNCTION public.rationale_spell(json)"))
    return "x-1"


def _retype_and_shift(conn: Connection) -> str:
    """client_output retyped as text holds the entry's bytes from its own value up to the context's nested
    ``"context":{}``, so the nested decision_id the context spells lines up with the row's edited one."""
    row, _ = _entry(conn, "x-0")
    canonical = bytes(
        conn.execute(
            text("SELECT canonical FROM ledger_entries WHERE idx = :i"), {"i": row["ledger_index"]}
        ).scalar_one()
    ).decode()
    start = canonical.index('"client_output":') + len('"client_output":')
    end = canonical.index(',"context":{},"decision_id":"x-forged"')
    conn.execute(text("ALTER TABLE decisions ALTER COLUMN client_output TYPE text"))
    conn.execute(
        text(
            "UPDATE decisions SET client_output = :c, context = CAST('{}' AS json), decision_id = 'x-forged' "
            "WHERE decision_id = 'x-0'"
        ),
        {"c": canonical[start:end]},
    )
    return "x-forged"


@POSTGRES_ONLY
@pytest.mark.parametrize("attack", ["shadowed =", "json cast", "retyped column"])
def test_ddl_cannot_make_the_database_vouch_for_an_edited_row(tricky: Populated, attack: str) -> None:
    edited: list[str] = []

    def tamper(conn: Connection) -> None:
        if attack == "shadowed =":
            edited.append(_edit_subject(conn))
            _shadow_equality(conn)
        elif attack == "json cast":
            edited.append(_cast_json_spelling(conn))
        else:
            edited.append(_retype_and_shift(conn))

    with tricky.attack(tamper) as result:
        assert result.status == 1, f"verify passed the {attack} attack:\n{result.output}"
        assert f"decisions row decision_id={edited[0]!r}" in result.output, result.output


@POSTGRES_ONLY
def test_exact_names_an_edit_hidden_by_a_rewritten_builtin_operator(tricky: Populated) -> None:
    """A superuser can rewrite the system catalog itself; `verify --exact` reads only stored bytes."""

    def tamper(conn: Connection) -> None:
        _edit_subject(conn)
        conn.execute(
            text(
                "CREATE FUNCTION public.rationale_yes(bytea, bytea) RETURNS boolean LANGUAGE sql IMMUTABLE "
                "AS 'SELECT true'"
            )
        )
        conn.execute(
            text(
                "UPDATE pg_catalog.pg_operator SET oprcode = 'public.rationale_yes'::regproc "
                "WHERE oid = 'pg_catalog.=(bytea,bytea)'::regoperator"
            )
        )

    with tricky.attack(tamper, exact=True) as result:
        assert result.status == 1, result.output
        assert "decisions row decision_id='x-0'" in result.output, result.output

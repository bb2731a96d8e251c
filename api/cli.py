"""The `rationale` command line. Each sub-command builds its services from RATIONALE_* settings."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from api.settings import Settings

if TYPE_CHECKING:
    from audit.trust import VerifierKey

Handler = Callable[[argparse.Namespace, Settings], int]


def _services(settings: Settings, *, check_schema: bool = True):  # type: ignore[no-untyped-def]
    from api.container import build_services

    return build_services(settings, check_schema=check_schema)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from api.app import create_app

    if args.workers is not None:
        settings = settings.model_copy(update={"workers": args.workers})
    host = args.host or settings.host
    if settings.auth == "off" and not is_loopback(host):
        print(
            f"rationale: refusing to serve on {host} with access control off (RATIONALE_AUTH=off): anyone who "
            "reaches the port could read every record. Bind 127.0.0.1, or turn access control on.",
            file=sys.stderr,
        )
        return 2
    app = create_app(settings)
    uvicorn.run(app, host=host, port=args.port or settings.port, log_level="info")
    return 0


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def cmd_access(args: argparse.Namespace, settings: Settings) -> int:
    """API keys: create (the secret is printed once), list, revoke. The operator at the shell acts as admin."""
    from api.services.access import create_key, list_keys, local_principal, revoke_key

    services = _services(settings)
    operator = local_principal()
    try:
        if args.access_command == "create":
            expires = _moment(args.expires)
            if args.days is not None:
                from datetime import timedelta

                expires = services.clock() + timedelta(days=args.days)
            issued = create_key(services, owner=args.owner, role=args.role, by=operator, expires_at=expires)
            record = issued.record
            until = f", expires {record.expires_at.isoformat()}" if record.expires_at else ""
            print(f"created {record.role} key {record.key_id} for {record.owner}{until}")
            print("the key (shown once, only its SHA-256 is stored):")
            print(issued.secret)
        elif args.access_command == "revoke":
            record = revoke_key(services, key_id=args.key_id, by=operator)
            print(f"revoked key {record.key_id} ({record.owner}, {record.role}) at {record.revoked_at}")
        else:
            now = services.clock()
            for record in list_keys(services, by=operator):
                if record.revoked_at is not None:
                    state = f"revoked {record.revoked_at:%Y-%m-%d %H:%M}"
                elif record.expires_at is not None and record.expires_at <= now:
                    state = f"expired {record.expires_at:%Y-%m-%d %H:%M}"
                elif record.expires_at is not None:
                    state = f"active until {record.expires_at:%Y-%m-%d %H:%M}"
                else:
                    state = "active"
                created = f"{record.created_at:%Y-%m-%d %H:%M}"
                print(f"{record.key_id}  {record.role:<15} {record.owner:<30} {created}  {state}")
    finally:
        services.close()
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    """Run explanation jobs without serving HTTP: the local thread pool, or a Celery worker."""
    if settings.executor == "celery":
        from api.workers.celery_app import run_celery_worker

        return run_celery_worker(settings, concurrency=args.threads)
    from api.heap import freeze_long_lived
    from api.workers.local_pool import LocalWorkerPool

    services = _services(settings)
    pool = LocalWorkerPool(services, threads=args.threads or settings.workers or 1, name="worker")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    pool.start()
    if settings.gc_freeze:
        freeze_long_lived()
    processes = pool.compute.processes if pool.compute is not None else 0
    print(
        f"rationale worker: {len(pool.runners)} threads, {processes} explain processes on {_safe_url(settings)}; "
        "Ctrl-C to stop",
        flush=True,
    )
    stop.wait()
    pool.stop()
    services.close()
    return 0


def cmd_db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from storage.db import Database

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database.from_url(settings.effective_database_url)
    db.upgrade()
    db.dispose()
    print(f"database at {_safe_url(settings)} is up to date")
    return 0


def cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    from api.services.verification import verify_whole_ledger
    from audit.bundle.core import core
    from audit.bundle.reader import read_key_files

    try:
        texts = [*(args.key or []), *read_key_files(args.key_file or [])]
    except core().Usage as exc:
        print(f"rationale: {exc}", file=sys.stderr)
        return 2
    if args.bundle:
        from api.services.witnessing import parse_witness_keys

        witnesses = args.witness_key or [str(k) for k in parse_witness_keys(settings.witness_keys)]
        quorum = args.quorum if args.quorum is not None else settings.witness_quorum
        return _verify_bundle(
            Path(args.bundle),
            texts or [k.text for k in settings.trust_anchors],
            quiet=args.quiet,
            witnesses=witnesses,
            quorum=quorum,
        )
    anchors = _verifier_keys(texts)
    if anchors is None:
        return 2
    services = _services(settings)
    try:
        status = verify_whole_ledger(services, quiet=args.quiet, anchors=anchors or None, exact=args.exact)
        if status == 0:  # witnesses (docs/witnesses.md): the latest checkpoint needs the quorum's cosignatures
            from api.services.witnessing import verify_witness_quorum

            status = verify_witness_quorum(services, keys=args.witness_key or (), quorum=args.quorum)
        return status
    finally:
        services.close()


def _verifier_keys(texts: Sequence[str]) -> list[VerifierKey] | None:
    """Parse ``--key`` values; None (after saying which is wrong) when one is not a verifier key."""
    from audit.trust import KeyFormatError, VerifierKey

    keys = []
    for text in texts:
        try:
            keys.append(VerifierKey.parse(text))
        except KeyFormatError as exc:
            print(f"rationale: --key: {exc}", file=sys.stderr)
            return None
    return keys


def _verify_bundle(path: Path, keys: list[str], *, quiet: bool, witnesses: Sequence[str], quorum: int | None) -> int:
    """`verify --bundle`: the checks of verify.py (one core), against keys pinned with --key/--key-file (or
    RATIONALE_TRUSTED_KEYS) and witnesses pinned with --witness-key (or RATIONALE_WITNESS_KEYS); the keys a
    bundle carries are data to check, never the anchor."""
    from audit.bundle.reader import run

    return run(path, keys=keys, quiet=quiet, witnesses=witnesses, quorum=quorum)


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    """Re-run a decision's recorded explanations from the stored artifact; 0 when every one reproduces."""
    from api.errors import ResourceNotFoundError
    from api.services.replaying import replay_decision

    services = _services(settings)
    try:
        try:
            report = replay_decision(services, args.decision_id, methods=args.method or None)
        except ResourceNotFoundError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        state = "intact" if report.artifact_intact else "CHANGED since the decision"
        print(
            f"decision {report.decision_id} · model {report.model} · artifact sha256 {report.artifact_sha256}: {state}"
        )
        if not report.outcomes:
            print("no succeeded explanation to replay")
        for outcome in report.outcomes:
            verdict = "reproduced" if outcome.reproduced else "DIFFERS"
            print(f"  {outcome.method:<16} ledger #{outcome.ledger_index:<8} {verdict:<11} {outcome.detail}")
        return 0 if report.ok else 1
    finally:
        services.close()


def cmd_models_register(args: argparse.Namespace, settings: Settings) -> int:
    from api.routes.models import parse_manifest
    from api.services.models import parse_background_file, register_model

    manifest = parse_manifest(Path(args.manifest).read_text())
    rows = None
    if args.background:
        path = Path(args.background)
        rows = parse_background_file(path.read_bytes(), path.name)
    services = _services(settings)
    try:
        reg = register_model(
            services,
            manifest=manifest,
            artifact=Path(args.artifact).read_bytes(),
            background_rows=rows,
            background_from_csv=bool(args.background) and args.background.lower().endswith(".csv"),
            allow_pickle=settings.allow_pickle,  # the operator, at the server, is the admin here
        )
    finally:
        services.close()
    state = "registered" if reg.created else "already registered (identical)"
    print(
        f"{reg.record.ref} {state}: artifact sha256 {reg.record.artifact_sha256}, ledger index "
        f"{reg.record.ledger_index}"
    )
    return 0


def cmd_checkpoint(args: argparse.Namespace, settings: Settings) -> int:
    from api.services.checkpoints import publish_now

    services = _services(settings)
    try:
        checkpoint = publish_now(services)
    finally:
        services.close()
    if checkpoint is None:
        print("the ledger is empty: nothing to checkpoint")
        return 0
    print(checkpoint.note, end="")
    return 0


def cmd_keys(args: argparse.Namespace, settings: Settings) -> int:
    from audit.note import verifier_key

    services = _services(settings)
    try:
        if args.keys_command == "rotate":
            from api.services.keys import rotate_signing_key

            result = rotate_signing_key(services, supplied=Path(args.key_file) if args.key_file else None)
            print(f"rotated at ledger index {result.ledger_index}, signed by the outgoing key")
            print(f"  from {result.previous.text}")
            print(f"  to   {result.next.text}")
            if result.checkpoint is not None:
                print(f"checkpoint of tree size {result.checkpoint.tree_size} signed by the new key")
        active = services.keyring.active().key_id
        print("keyring (* signs new checkpoints; every key here is a trust anchor for this deployment):")
        for key in services.keyring.all_public():
            marker = "*" if key.key_id == active else " "
            print(f"{marker} {verifier_key(key.name, key.public_key)}  created {key.created_at}")
        for anchor in settings.trust_anchors:
            print(f"  {anchor.text}  (RATIONALE_TRUSTED_KEYS)")
    finally:
        services.close()
    return 0


def cmd_explain(args: argparse.Namespace, settings: Settings) -> int:
    """Backfill: queue methods for recorded decisions, then run them here with a progress bar."""
    from tqdm import tqdm

    from api.services.backfill import queue_backfill
    from api.workers.local_pool import LocalWorkerPool

    services = _services(settings)
    try:
        with tqdm(desc="queueing", unit="decision", disable=args.quiet) as bar:

            def advance(n: int) -> None:
                bar.update(n)

            jobs = queue_backfill(
                services,
                model=args.model,
                since=_moment(args.since),
                until=_moment(args.until),
                methods=args.methods.split(","),
                progress=advance,
            )
        pending = [j.id for j in jobs if j.state in ("queued", "running")]
        print(f"{len(jobs)} jobs for {args.model}; {len(pending)} to run")
        if not pending or settings.executor == "celery" or args.no_run:
            if settings.executor == "celery" and pending:
                services.jobs_queued(len(pending))
            return 0
        pool = LocalWorkerPool(services, threads=max(1, settings.workers), name="backfill")
        pool.start()
        with tqdm(total=len(pending), desc="explaining", unit="job", disable=args.quiet) as bar:
            import time

            while True:
                with services.db.unit_of_work(write=False) as uow:
                    left = sum(
                        1 for job_id in pending if (j := uow.jobs.get(job_id)) and j.state in ("queued", "running")
                    )
                bar.n = len(pending) - left
                bar.refresh()
                if left == 0:
                    break
                time.sleep(0.25)
        pool.stop()
    finally:
        services.close()
    return 0


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    import shutil

    from tqdm import tqdm

    from api.services.exports import ExportFilter, create_export

    flt = ExportFilter(
        model=args.model,
        subject_refs=args.subject_ref or None,
        decision_ids=args.decision_id or None,
        since=_moment(args.since),
        until=_moment(args.until),
        outcome=args.outcome,
    )
    services = _services(settings)
    pusher = None
    if settings.witnesses.strip():  # no `rationale serve` may be up to push the export's checkpoint: push it
        from api.services.witnessing import WitnessPusher

        pusher = WitnessPusher(services)
        pusher.start()
    try:
        with tqdm(desc="writing bundle", unit="entry", disable=args.quiet) as bar:

            def advance(n: int) -> None:
                bar.update(n)

            record = create_export(services, flt=flt, requested_by="cli", progress=advance)
    finally:
        if pusher is not None:
            pusher.stop()
        services.close()
    shutil.copyfile(record.bundle_path, args.out)
    print(
        f"{args.out}: {record.decisions} decisions, {record.entries} entries; export committed at ledger index "
        f"{record.ledger_index}, sealed by checkpoint {record.checkpoint_size}\n"
        f"  bundle SHA-256     {record.bundle_sha256}\n"
        f"  verifier key (pin) {record.verifier_key}\n"
        f"  verify.py SHA-256  {record.verify_py_sha256}\n"
        + "".join(f"  cosigned by        {key}\n" for key in record.witnesses)
        + f"Give the regulator the verifier key and the verify.py hash by another channel than the bundle; they "
        f"check it with: python3 -I -S verify.py --key {record.verifier_key}"
        + "".join(f" --witness-key {key}" for key in record.witnesses)
        + f" {Path(args.out).name}"
    )
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from api.demo import run_demo

    return run_demo(settings, decisions=args.decisions, serve=not args.no_serve, host=args.host, port=args.port)


def cmd_report_model(args: argparse.Namespace, settings: Settings) -> int:
    """The model page as a file: HTML or PDF by the --out suffix."""
    from api.model_report import render_model_html, render_model_pdf
    from api.services.analytics.overview import build_overview

    out = Path(args.out)
    if out.suffix.lower() not in (".html", ".pdf"):
        print("rationale: --out must end in .html or .pdf", file=sys.stderr)
        return 2
    services = _services(settings)
    try:
        overview = build_overview(
            services, args.name, since=_moment(args.since), until=_moment(args.until), group=args.group
        )
        now = services.clock()
        data = (
            render_model_pdf(overview, now=now)
            if out.suffix.lower() == ".pdf"
            else render_model_html(overview, now=now)
        )
    finally:
        services.close()
    out.write_bytes(data)
    print(f"wrote {out} ({len(data):,} bytes)")
    return 0


def _moment(text: str | None) -> datetime | None:
    """A command-line date/time; UTC when it names no offset."""
    if text is None:
        return None
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _safe_url(settings: Settings) -> str:
    url = settings.effective_database_url
    if "@" in url:  # hide credentials
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rationale",
        description="Explanations and a tamper-evident audit trail for machine-learning decisions. "
        "Configuration comes from RATIONALE_* environment variables (see README).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("serve", help="serve the HTTP API (and the embedded worker pool)")
    p.add_argument("--host", default=None, help="default RATIONALE_HOST or 127.0.0.1")
    p.add_argument("--port", type=int, default=None, help="default RATIONALE_PORT or 8000")
    p.add_argument("--workers", type=int, default=None, help="embedded explanation threads (0: none)")
    p.set_defaults(handler=cmd_serve)

    p = sub.add_parser("worker", help="run explanation jobs (local threads, or Celery when RATIONALE_EXECUTOR=celery)")
    p.add_argument("--threads", type=int, default=None, help="threads (local) or processes (celery)")
    p.set_defaults(handler=cmd_worker)

    p = sub.add_parser("db", help="database schema management")
    dbsub = p.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    up = dbsub.add_parser("upgrade", help="create or migrate the schema to the current revision")
    up.set_defaults(handler=cmd_db_upgrade)

    p = sub.add_parser(
        "verify",
        help="recompute every leaf hash and root of the ledger, check every row against its entry; or check a bundle",
    )
    p.add_argument("--bundle", metavar="FILE", help="verify an export bundle instead of the database")
    p.add_argument(
        "--key",
        action="append",
        metavar="VKEY",
        help="trust only this C2SP verifier key (name+hash+base64; repeatable). Ledger: default the keyring's "
        "public keys and RATIONALE_TRUSTED_KEYS, later keys followed through key rotation entries. Bundle: the "
        "deployment's pinned key; a bundle checked only against keys it carries is reported as 'signature valid, "
        "key not anchored' (exit status 3), never as verified",
    )
    p.add_argument("--key-file", action="append", metavar="FILE", help="pinned verifier keys, one per line")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no list of trusted keys")
    p.add_argument(
        "--exact",
        action="store_true",
        help="compare every row with its entry in this process, trusting the database for stored bytes only "
        "(slower; by default PostgreSQL and SQLite first vouch for rows that match, see docs/threat-model.md)",
    )
    p.add_argument(
        "--witness-key",
        action="append",
        metavar="VKEY",
        help="a witness verifier key whose cosignatures count (repeatable; default RATIONALE_WITNESS_KEYS); for a "
        "bundle, cosignatures of its checkpoint",
    )
    p.add_argument(
        "--quorum",
        type=int,
        metavar="N",
        help="cosignatures the latest checkpoint (a bundle's checkpoint) needs (default RATIONALE_WITNESS_QUORUM, "
        "else every witness key)",
    )
    p.set_defaults(handler=cmd_verify)

    p = sub.add_parser(
        "replay", help="re-run a decision's recorded explanations from the stored artifact and compare with the ledger"
    )
    p.add_argument("decision_id", help="the decision whose explanations to replay")
    p.add_argument("--method", action="append", help="only this method (repeatable); default: every one recorded")
    p.set_defaults(handler=cmd_replay)

    p = sub.add_parser("explain", help="backfill explanations for decisions already recorded")
    p.add_argument("--model", required=True, help="name or name@version")
    p.add_argument("--since", help="ISO date/time (UTC if no offset); decisions that occurred at or after")
    p.add_argument("--until", help="ISO date/time; decisions that occurred before")
    p.add_argument("--methods", default="shap", help="comma-separated: shap,lime,anchors,counterfactuals")
    p.add_argument("--no-run", action="store_true", help="only queue; let the workers run them")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(handler=cmd_explain)

    p = sub.add_parser("export", help="write a regulator bundle (zip) verifiable offline with its verify.py")
    p.add_argument("--out", required=True, help="bundle file to write")
    p.add_argument("--model", help="name or name@version")
    p.add_argument("--subject-ref", action="append", help="repeatable")
    p.add_argument("--decision-id", action="append", help="repeatable")
    p.add_argument("--since", help="ISO date/time (UTC if no offset)")
    p.add_argument("--until", help="ISO date/time")
    p.add_argument("--outcome", help="real outcome label")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(handler=cmd_export)

    p = sub.add_parser("checkpoint", help="publish a signed checkpoint of the ledger now")
    p.set_defaults(handler=cmd_checkpoint)

    p = sub.add_parser("keys", help="list or rotate the checkpoint-signing keys")
    ksub = p.add_subparsers(dest="keys_command", metavar="ACTION")
    ksub.add_parser("list", help="list the keys as full verifier keys (* marks the active one)")
    rot = ksub.add_parser("rotate", help="make a new active key, recorded as a ledger entry signed by the outgoing key")
    rot.add_argument("--key-file", help="use this Ed25519 PEM private key instead of generating one")
    p.set_defaults(handler=cmd_keys, keys_command="list")

    p = sub.add_parser("models", help="model registry")
    msub = p.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    reg = msub.add_parser("register", help="register a model version from files")
    reg.add_argument("--manifest", required=True, help="manifest JSON file")
    reg.add_argument("--artifact", required=True, help="artifact file (skops, XGBoost JSON/UBJ, LightGBM text)")
    reg.add_argument("--background", help="background sample (CSV, JSON or JSONL) if not in the manifest")
    reg.set_defaults(handler=cmd_models_register)

    from api.witness.cli import add_witness_parser

    add_witness_parser(sub)
    p = sub.add_parser("access", help="API keys and roles: create (printed once), list, revoke")
    asub = p.add_subparsers(dest="access_command", metavar="ACTION")
    create = asub.add_parser("create", help="mint a key; its secret is printed once and only its hash is stored")
    create.add_argument("--owner", required=True, help="the person or system the key belongs to")
    create.add_argument(
        "--role", required=True, choices=["ingest", "data_scientist", "compliance", "regulator", "admin"]
    )
    create.add_argument("--expires", help="ISO date/time the key stops working (UTC if no offset)")
    create.add_argument("--days", type=float, help="or: the key stops working this many days from now")
    asub.add_parser("list", help="every key: id, role, owner, created, state (never the secret)")
    revoke = asub.add_parser("revoke", help="revoke a key (servers refuse it within RATIONALE_KEY_CACHE_SECONDS)")
    revoke.add_argument("key_id", help="the key id (the 16 hex characters after rk_)")
    p.set_defaults(handler=cmd_access, access_command="list")

    p = sub.add_parser("demo", help="register a demo credit model, log decisions, explain them, and serve")
    p.add_argument("--decisions", type=int, default=300, help="how many decisions to log (default 300)")
    p.add_argument("--no-serve", action="store_true", help="stop after the explanations are done")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(handler=cmd_demo)
    p = sub.add_parser("report", help="human reports")
    rsub = p.add_subparsers(dest="report_command", required=True, metavar="KIND")
    rep = rsub.add_parser(
        "model", help="one model: live versions, importance, drift, performance with estimate, fairness"
    )
    rep.add_argument("name", help="model name")
    rep.add_argument("--since", default=None, help="decisions from (YYYY-MM-DD or ISO date-time; UTC if no offset)")
    rep.add_argument("--until", default=None, help="decisions before (YYYY-MM-DD or ISO date-time)")
    rep.add_argument("--group", default=None, help="fairness: feature or context key (first categorical feature)")
    rep.add_argument("--out", required=True, help="FILE.html or FILE.pdf")
    rep.set_defaults(handler=cmd_report_model)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        settings = Settings()
    except Exception as exc:  # pydantic ValidationError: say which variable is wrong
        from api.settings import describe_settings_error

        print(f"rationale: invalid configuration:\n{describe_settings_error(exc)}", file=sys.stderr)
        return 2
    handler: Handler = args.handler
    try:
        return handler(args, settings)
    except Exception as exc:
        from api.errors import classify

        status, code, details = classify(exc)
        if status == 500 and code == "internal":
            raise
        print(f"rationale: {exc}", file=sys.stderr)
        if details:
            print(json.dumps(details), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""`rationale witness serve --log VKEY [--db URL] [--key-file PEM] [--name NAME] [--host --port]`."""

from __future__ import annotations

import argparse
import os
import socket
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.cosignature import ALG_ED25519, check_key_name, parse_verifier_key
from audit.errors import SignatureError


def default_name() -> str:
    host = "".join(c for c in socket.gethostname() if not c.isspace() and c != "+") or "localhost"
    return f"{host}/witness"


def load_or_create_key(path: Path) -> tuple[Ed25519PrivateKey, bool]:
    """The witness's Ed25519 key from a PEM file, generated (mode 0600) when the file does not exist."""
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise SignatureError(f"{path} is not an Ed25519 private key")
        return key, False
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    return key, True


def cmd_witness_serve(args: argparse.Namespace, _settings: object) -> int:
    import uvicorn

    from api.clock import utc_now
    from api.witness.app import create_witness_app
    from audit.witness import Witness, logs_from_keys
    from storage.witness_store import SqlWitnessStore

    data_dir = Path(args.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    url = args.db or f"sqlite:///{(data_dir / 'witness.db').resolve()}"
    key_path = Path(args.key_file) if args.key_file else data_dir / "witness-key.pem"
    check_key_name(args.name)
    log_keys = [parse_verifier_key(v, alg=ALG_ED25519) for v in args.log]
    logs = logs_from_keys(log_keys, origin=args.origin)
    private_key, created = load_or_create_key(key_path)
    store = SqlWitnessStore.open(url)
    witness = Witness(name=args.name, private_key=private_key, logs=logs, store=store, clock=utc_now)
    if created:
        print(f"rationale witness: generated a new witness key in {key_path}")
    print(f"rationale witness: verifier key {witness.verifier_key}")
    for origin, config in logs.items():
        head = store.latest(origin)
        size = head.tree_size if head else 0
        print(f"  witnessing {origin} (last cosigned size {size}) signed by {', '.join(str(k) for k in config.keys)}")
    print(f"  serving add-checkpoint on http://{args.host}:{args.port}/add-checkpoint", flush=True)
    try:
        uvicorn.run(create_witness_app(witness), host=args.host, port=args.port, log_level="warning")
    finally:
        store.close()
    return 0


def add_witness_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("witness", help="run a C2SP tlog-witness that cosigns a log's checkpoints")
    wsub = p.add_subparsers(dest="witness_command", required=True, metavar="ACTION")
    s = wsub.add_parser(
        "serve",
        help="serve add-checkpoint: cosign each checkpoint that extends the last one cosigned",
        description="A witness for an auditor's own machine: its own Ed25519 key and database. It cosigns a "
        "checkpoint only after checking the log's signature and a consistency proof from the size it last "
        "cosigned, and refuses forks and smaller trees, also after a restart.",
    )
    s.add_argument(
        "--log",
        action="append",
        required=True,
        metavar="VKEY",
        help="the log's verifier key (repeatable: a log's rotated keys, or several logs)",
    )
    s.add_argument("--origin", help="the log's checkpoint origin, if not its key name")
    s.add_argument("--data-dir", default=".rationale-witness", help="default database and key location")
    s.add_argument("--db", metavar="URL", help="SQLAlchemy URL (default: SQLite witness.db in --data-dir)")
    s.add_argument(
        "--key-file",
        metavar="PEM",
        help="Ed25519 private key (PKCS#8 PEM); generated if absent (default: --data-dir/witness-key.pem)",
    )
    s.add_argument("--name", default=default_name(), help="the witness's key name (default: <hostname>/witness)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8088)
    s.set_defaults(handler=cmd_witness_serve)

"""docker-compose.yml is checked by parsing it: no Docker engine runs in CI.

Every service built from this project must run a command the `rationale` CLI accepts, with only
RATIONALE_* variables that the settings know, and every named volume must be declared.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from api.cli import build_parser
from api.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_has_the_services_of_the_scale_out_deployment(compose):
    assert {"postgres", "redis", "migrate", "api", "worker"} <= set(compose["services"])
    assert compose["services"]["migrate"]["restart"] == "no"
    assert "ports" not in compose["services"]["worker"], "workers must be scalable with --scale worker=N"


def test_project_commands_parse_with_the_cli(compose):
    parser = build_parser()
    built = {name: svc for name, svc in compose["services"].items() if "build" in svc}
    assert set(built) == {"migrate", "api", "worker"}
    for name, svc in built.items():
        command = svc["command"]
        assert command[0] == "rationale", name
        args = parser.parse_args(command[1:])  # raises SystemExit on an unknown command or option
        assert callable(args.handler), name
    assert (ROOT / svc["build"] / "Dockerfile").exists()


def test_environment_names_real_settings(compose):
    fields = {f"RATIONALE_{name.upper()}" for name in Settings.model_fields}
    for name, svc in compose["services"].items():
        env = svc.get("environment", {})
        for key in env if isinstance(env, dict) else []:
            if key.startswith("RATIONALE_"):
                assert key in fields, f"{name}: {key} is not a setting"
    env = compose["services"]["api"]["environment"]
    settings = Settings(**{k.removeprefix("RATIONALE_").lower(): v for k, v in env.items()})
    assert settings.executor == "celery"
    assert settings.effective_database_url.startswith("postgresql+psycopg://")
    assert "@postgres:" in settings.effective_database_url and "redis:6379" in settings.broker_url


def test_named_volumes_are_declared(compose):
    declared = set(compose.get("volumes", {}))
    for name, svc in compose["services"].items():
        for volume in svc.get("volumes", []):
            source = volume.split(":", 1)[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name} uses undeclared volume {source}"


def test_dependencies_exist(compose):
    services = set(compose["services"])
    for name, svc in compose["services"].items():
        for dep in svc.get("depends_on", {}):
            assert dep in services, f"{name} depends on unknown {dep}"


def test_no_credentials_are_written_in_the_file_and_the_api_is_published_on_loopback(compose):
    postgres = compose["services"]["postgres"]["environment"]
    assert postgres["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?"), "the password comes from the environment"
    url = compose["services"]["api"]["environment"]["RATIONALE_DATABASE_URL"]
    assert ":${POSTGRES_PASSWORD:?" in url
    assert "RATIONALE_AUTH" not in compose["services"]["api"]["environment"], "access control stays on"
    [published] = compose["services"]["api"]["ports"]
    assert published.startswith("${RATIONALE_PUBLISH_ADDRESS:-127.0.0.1}:"), published

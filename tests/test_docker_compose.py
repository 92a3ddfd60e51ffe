"""docker-compose.yml cannot run here (no Docker engine); check it against the settings instead."""

import re
from pathlib import Path

import pytest
import yaml
from django.conf import settings

from webapp.environment import VARIABLES, load

ROOT = Path(__file__).resolve().parents[1]
STEER_SERVICES = ["web", "worker-cpu", "worker-gpu"]
OUTSIDE_STEER = {"HF_HUB_OFFLINE"}  # read by transformers, not by Steer


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def substituted(value: str) -> str:
    """Compose's ${VAR:?msg} / ${VAR:-default} with test values."""
    value = re.sub(r"\$\{(\w+):\?[^}]*\}", lambda m: f"test-{m.group(1).lower()}", value)
    return re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: m.group(2), value)


def test_services_and_healthchecks(compose):
    services = compose["services"]
    assert {"postgres", "redis", *STEER_SERVICES} <= set(services)
    for name, service in services.items():
        assert "healthcheck" in service, f"{name} has no healthcheck"


def test_every_variable_compose_sets_is_one_steer_reads(compose):
    for name in STEER_SERVICES:
        env = compose["services"][name]["environment"]
        unknown = set(env) - set(VARIABLES) - OUTSIDE_STEER
        assert not unknown, f"{name} sets variables Steer never reads: {unknown}"


def test_compose_environment_selects_postgres_and_redis(compose, tmp_path):
    env = {k: substituted(str(v)) for k, v in compose["services"]["web"]["environment"].items()}
    env["STEER_VAR_DIR"] = str(tmp_path)
    loaded = load(env, base_dir=ROOT)
    assert loaded.database["ENGINE"] == "django.db.backends.postgresql"
    assert (loaded.database["HOST"], loaded.database["NAME"]) == ("postgres", "steer")
    assert loaded.broker_url == "redis://redis:6379/0"
    assert loaded.secret_key == "test-secret_key", "no default secret: compose requires one"


def test_no_default_credentials(compose):
    text = (ROOT / "docker-compose.yml").read_text()
    assert "${POSTGRES_PASSWORD:?" in text and "${SECRET_KEY:?" in text
    assert not re.search(r"PASSWORD:\s*\w+\s*$", text, re.M)


def test_workers_consume_the_queues_the_settings_route_to(compose):
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    gpu = compose["services"]["worker-gpu"]
    assert routed <= set(gpu["command"][gpu["command"].index("-Q") + 1].split(","))
    cpu = compose["services"]["worker-cpu"]["command"]
    assert settings.CELERY_TASK_DEFAULT_QUEUE in cpu[cpu.index("-Q") + 1].split(",")
    devices = gpu["deploy"]["resources"]["reservations"]["devices"][0]
    assert devices["driver"] == "nvidia" and "gpu" in devices["capabilities"]


def test_checkpoints_live_on_the_one_shared_volume(compose):
    for name in STEER_SERVICES:
        service = compose["services"][name]
        assert service["volumes"] == ["steer-data:/var/lib/steer"]
        assert service["environment"]["STEER_CHECKPOINT_DIR"].startswith("/var/lib/steer")
        assert service["environment"]["STEER_ARTIFACT_DIR"].startswith("/var/lib/steer")  # the web server writes them
    assert "steer-data" in compose["volumes"]


def test_entry_points_exist():
    from webapp.wsgi import application  # noqa: F401
    from workers.celery_app import app

    assert app.main == "steer"


def test_the_gpu_worker_is_given_time_to_release_its_run_on_stop(compose):
    """A stopped worker finishes its step and saves a checkpoint before it exits; Docker's
    default 10 s grace would kill it mid-step and lose the steps since the last checkpoint."""
    grace = compose["services"]["worker-gpu"].get("stop_grace_period", "10s")
    minutes = re.fullmatch(r"(\d+)m", grace)
    assert minutes and int(minutes.group(1)) >= 5, grace

"""A task sent through the configured broker is run by a real worker process (not eager mode)."""

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("STEER_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def redis_available(url: str) -> bool:
    import redis

    try:
        return redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError:
        return False


def send_ping_and_wait(env: dict, var_dir: Path, timeout_s: float = 60.0) -> str:
    """Start a worker with `env`, send ping(nonce) through the broker, return what the worker wrote."""
    nonce = secrets.token_hex(8)
    log = open(var_dir / "worker.log", "w")  # a file, not a pipe nobody reads, which could fill and block
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "-Q", "default",
         "--concurrency", "1", "--pool", "solo", "--loglevel", "WARNING", "-n", f"test-{nonce}@%h"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        sender = subprocess.run(
            [sys.executable, "-c", f"from workers.tasks import ping; ping.delay({nonce!r})"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
        )
        assert sender.returncode == 0, sender.stderr
        marker = var_dir / "pings" / nonce
        deadline = time.monotonic() + timeout_s
        while not marker.exists():
            assert worker.poll() is None, (var_dir / "worker.log").read_text()
            assert time.monotonic() < deadline, "no ping in time:\n" + (var_dir / "worker.log").read_text()[-3000:]
            time.sleep(0.2)
        return marker.read_text()
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
        log.close()


def base_env(var_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL"}}
    env["STEER_VAR_DIR"] = str(var_dir)
    if not settings.STEER_USES_EMBEDDED_DATABASE:
        env["DATABASE_URL"] = os.environ["DATABASE_URL"]
    return env


@pytest.mark.slow
def test_roundtrip_through_the_filesystem_broker(tmp_path):
    host = send_ping_and_wait(base_env(tmp_path), tmp_path)
    assert host
    assert (tmp_path / "broker" / "queue").is_dir(), "the embedded broker keeps its queue under var/"


@pytest.mark.slow
def test_roundtrip_through_redis(tmp_path):
    if not redis_available(REDIS_URL):
        if os.environ.get("CI"):
            pytest.fail(f"Redis is not reachable at {REDIS_URL} in CI")
        pytest.skip(f"no Redis at {REDIS_URL}")
    env = base_env(tmp_path)
    env["CELERY_BROKER_URL"] = REDIS_URL
    assert send_ping_and_wait(env, tmp_path)

"""Suite-wide setup: offline models, a throwaway var/ folder, Django settings.

The settings module is named here rather than in pytest.ini so that the variables below are
in place before Django reads them (pytest-django would load the settings before any conftest).
"""

import os
import tempfile

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
os.environ.setdefault("STEER_VAR_DIR", tempfile.mkdtemp(prefix="steer-test-var-"))
os.makedirs(os.path.join(os.environ["STEER_VAR_DIR"], "staticfiles"), exist_ok=True)
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
# torch.compile's code generation in one process: on a 2-core machine the worker pool it
# starts otherwise costs more than it saves (the compiled-head test: 15 s instead of 29 s).
os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")

import django  # noqa: E402

django.setup()


import pytest  # noqa: E402


@pytest.fixture
def sent(monkeypatch):
    """Task messages the services send, captured instead of reaching a broker: [(name, args)]."""
    from workers.celery_app import app

    messages = []
    monkeypatch.setattr(app, "send_task", lambda name, args: messages.append((name, args)))
    return messages

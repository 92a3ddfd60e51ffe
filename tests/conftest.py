"""Suite-wide setup: offline models, a throwaway var/ folder, Django settings."""

import os
import tempfile

# Before Django reads its settings: tests never touch the developer's var/ nor the network.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
os.environ.setdefault("STEER_VAR_DIR", tempfile.mkdtemp(prefix="steer-test-var-"))
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(code: str) -> None:
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=120, env={"HF_HUB_OFFLINE": "1", "PATH": ""})
    assert result.returncode == 0, result.stderr


def test_engine_imports_without_django_or_celery():
    run("import workers.engine, sys\n"
        "from workers.engine import train, TrainConfig, Callbacks, PromptRecord\n"
        "import workers.engine.trainer, workers.engine.evaluate, workers.engine.__main__\n"
        "assert 'django' not in sys.modules and 'celery' not in sys.modules, sorted(sys.modules)")


def test_config_validation_does_not_import_torch():
    run("import sys\n"
        "from workers.engine import TrainConfig, default_config_dict\n"
        "TrainConfig.from_dict(default_config_dict())\n"
        "assert 'torch' not in sys.modules")


def test_engine_reads_no_environment_outside_the_cli():
    engine = ROOT / "workers" / "engine"
    offenders = [p.name for p in engine.glob("*.py")
                 if p.name != "__main__.py" and "os.environ" in p.read_text()]
    assert offenders == []

"""`make run` with no DATABASE_URL keeps its data in SQLite: the migrations and the SQL that reads
JSON columns (pair pages and downloads, counting decisive labels for reward-model, DPO and SFT
launches) must run there too. The suite
itself runs on PostgreSQL, so these paths are driven here in a process of their own."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.slow

SCRIPT = r'''
import json, uuid
from django.contrib.auth import get_user_model
from django.db import connection
from webapp.projects.services import project_create
from webapp.projects.models import Membership, Role
from webapp.rewards.models import PreferencePairSet
from webapp.rewards.services import pair_set_import
from webapp.rewards.selectors import dpo_pairs, dpo_pairs_check, pair_set_pairs_page, preference_source_check
from webapp.rewards.selectors import sft_examples, sft_examples_check
from webapp.datasets.parsing import PromptRow
from webapp.datasets.services import dataset_create
from webapp.rewards.exports import pair_set_jsonl
from webapp.feedback.services import comparison_tasks_import_jsonl, label_submit

assert connection.vendor == "sqlite"
assert PreferencePairSet.objects.get(name="before").has_chat_prompt  # filled by the migration
owner = get_user_model().objects.create_user(username="owner", password=None)
project = project_create(name="quick start", owner=owner)
chat = [{"role": "user", "content": "2+2?"}]
lines = [json.dumps({"prompt": chat if i == 1 else f"p{i}", "chosen": f"a{i}", "rejected": f"b{i}"}) for i in range(5)]
pair_set = pair_set_import(project=project, name="pairs", content="\n".join(lines))
page = pair_set_pairs_page(pair_set_id=pair_set.id, limit=2, after=1)
assert [(n, p["chosen"]) for n, p in page] == [(2, "a1"), (3, "a2")], page
assert pair_set_pairs_page(pair_set_id=pair_set.id, limit=2, before=3)[0][0] == 1
downloaded = [json.loads(line) for line in b"".join(pair_set_jsonl(pair_set=pair_set)).splitlines()]
assert [d["chosen"] for d in downloaded] == [[{"role": "assistant", "content": f"a{i}"}] for i in range(5)]
[task] = comparison_tasks_import_jsonl(project=project, content=json.dumps({"prompt": "q", "completions": ["x", "y", "z"]}),
                                       required_labels=1, rubric=None)
label_submit(task=task, annotator=owner, ranking=[[0], [1, 2]], submission_key=uuid.uuid4().hex)
preference_source_check(project=project, data={"source": "labels"}, eval_fraction=0.0, seed=0)
data = dpo_pairs_check(project=project, data={"source": "labels"})
assert [(p.chosen, p.rejected) for p in dpo_pairs(project=project, data=data)] == [("x", "y"), ("x", "z")]
data = sft_examples_check(project=project, data={"source": "labels"})
assert [(e.prompt, e.completion) for e in sft_examples(project=project, data=data)] == [("q", "x")]
from django.db import transaction
dataset = dataset_create(project=project, name="refs", rows=[PromptRow(text="q", reference="r")])
with transaction.atomic():  # as in the launch: the checks share-lock the data
    pairs = sft_examples_check(project=project, data={"source": "pairs", "pair_set": pair_set.id})
    refs = sft_examples_check(project=project, data={"source": "dataset", "dataset": dataset.id})
assert [e.completion for e in sft_examples(project=project, data=pairs)] == [f"a{i}" for i in range(5)]
assert [(e.prompt, e.completion) for e in sft_examples(project=project, data=refs)] == [("q", "r")]
print("sqlite ok")
'''

INSERT = r'''
from django.db import connection
with connection.cursor() as cursor:
    cursor.execute("INSERT INTO projects_project (name, slug, description, annotation_guidelines, created_at) "
                   "VALUES ('old', 'old', '', '', CURRENT_TIMESTAMP)")
    cursor.execute("INSERT INTO rewards_preferencepairset (project_id, name, pairs, pair_count, created_at) "
                   "SELECT id, 'before', '[{\"prompt\": [{\"role\": \"user\", \"content\": \"x\"}], "
                   "\"chosen\": \"a\", \"rejected\": \"b\"}]', 1, CURRENT_TIMESTAMP FROM projects_project")
'''


def manage(args, database: str):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL"}}
    env.update(DATABASE_URL=f"sqlite:///{database}", HF_HUB_OFFLINE="1")
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result.stdout


def test_migrations_and_json_queries_run_on_sqlite(tmp_path):
    database = tmp_path / "steer.sqlite3"
    manage(["migrate", "--noinput", "rewards", "0002"], database)
    manage(["shell", "-c", INSERT], database)  # a set stored before has_chat_prompt existed
    manage(["migrate", "--noinput"], database)
    assert "sqlite ok" in manage(["shell", "-c", SCRIPT], database)

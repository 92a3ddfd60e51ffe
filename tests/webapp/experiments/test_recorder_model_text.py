"""Steer's own workers store the text a model sampled as the database can hold it: a byte-level
tokenizer can decode a NUL byte, which PostgreSQL refuses (a DataError that failed the run), and
an unpaired surrogate has no UTF-8. As for an external trainer's records: NUL dropped, a lone
surrogate made U+FFFD."""

import pytest

from tests.factories import make_dataset, make_project, make_run
from webapp.experiments.execution import Claim, PolicyRunRecorder
from webapp.experiments.models import HeldOutAnswer, RunStatus, Trajectory

pytestmark = pytest.mark.django_db


def rollout(**fields):
    return {"group_index": 0, "sample_index": 0, "prompt_id": None, "prompt_text": "Say hi.",
            "completion_text": "hi", "rewards": {"len": 1.0}, "reward": 1.0, "advantage": 0.0, "length": 2,
            "finish_reason": "stop", **fields}


def test_a_sampled_nul_or_lone_surrogate_is_stored_as_the_api_stores_it():
    run = make_run(make_project(), status=RunStatus.RUNNING, attempts=1)
    recorder = PolicyRunRecorder(Claim(run.id, 1), total_steps=3, prompt_ids=set())
    recorder.on_rollouts(1, [rollout(completion_text="a\x00b\ud800c", prompt_text="p\x00q")])
    stored = Trajectory.objects.get(run=run)
    assert (stored.completion, stored.prompt_text) == ("ab\ufffdc", "pq")


def test_a_held_out_answer_with_a_nul_is_stored_without_it():
    project = make_project()
    dataset = make_dataset(project)
    prompt = dataset.prompts.order_by("index").first()
    run = make_run(project, status=RunStatus.RUNNING, attempts=1)
    recorder = PolicyRunRecorder(Claim(run.id, 1), total_steps=3, prompt_ids=set(), held_out_ids={prompt.id})
    recorder.on_held_out(1, [{"prompt_id": prompt.id, "completion_text": "4\x002", "correct": True,
                              "samples_correct": 1, "samples": 1, "length": 2, "finish_reason": "stop"}])
    assert HeldOutAnswer.objects.get(run=run).completion == "42"

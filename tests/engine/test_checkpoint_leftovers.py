"""What a worker killed while it saved a checkpoint leaves behind is removed when the run resumes."""

from workers.engine import Callbacks, PromptRecord, TrainConfig, train
from workers.engine.checkpoint import checkpoints_root, list_checkpoints

PROMPTS = [PromptRecord("a", None), PromptRecord("b", None)]


def test_a_resume_removes_the_half_written_checkpoint_of_a_killed_worker(tiny_cfg, tmp_path):
    every_step = {"checkpoint_every": 1, "device": "cpu", "seed": 0}
    train(TrainConfig.from_dict(tiny_cfg(train={"total_steps": 2, **every_step})), PROMPTS, Callbacks(),
          output_dir=tmp_path)
    root = checkpoints_root(tmp_path)
    # kill -9 inside save_checkpoint: its temporary folder (or the copy it replaced) was never removed
    for name in (".tmp-step-3-abc123", ".old-step-2-4242"):
        (root / name).mkdir()
        (root / name / "model.safetensors").write_bytes(b"\0" * 1024)
    train(TrainConfig.from_dict(tiny_cfg(train={"total_steps": 3, **every_step})), PROMPTS, Callbacks(),
          output_dir=tmp_path)
    assert sorted(p.name for p in root.iterdir()) == ["step-2", "step-3"]
    assert [step for step, _ in list_checkpoints(tmp_path)] == [2, 3]

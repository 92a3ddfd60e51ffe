"""How long a cancel takes to end each kind of engine run: from the moment ``should_stop``
starts answering yes to the engine function returning (the worker is then free; the webapp's
status write after it takes milliseconds).

Each run uses a config-built tiny policy sized so that one step takes seconds on one CPU
thread; the stop is asked ``--after`` seconds into the first step.

    .venv/bin/python bench/cancel_latency.py [--after 1.0] [--kinds grpo,evaluation,...]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import threading
import time
from pathlib import Path

import torch

TINY = {
    "alphabet": None,  # the default alphabet: about 90 tokens, so an EOS is rare
    "hidden_size": 256,
    "num_layers": 4,
    "num_heads": 4,
    "intermediate_size": 512,
    "seed": 0,
}


class Stop:
    """should_stop that turns True ``after`` seconds past its first call (just before step 1)."""

    def __init__(self, after: float):
        self.after, self.asked_at, self.flipped_at = after, None, None
        self.calls = 0

    def __call__(self) -> bool:
        self.calls += 1
        now = time.monotonic()
        if self.asked_at is None:
            self.asked_at = now
            threading.Timer(self.after, self._flip).start()
        return self.flipped_at is not None

    def _flip(self) -> None:
        self.flipped_at = time.monotonic()


def _policy_config(**rollout):
    from workers.engine import TrainConfig

    return TrainConfig.from_dict(
        {
            "policy": {"source": "tiny", "tiny": TINY},
            "rollout": {
                "num_generations": 8,
                "prompts_per_step": 8,
                "max_new_tokens": 512,
                **rollout,
            },
            "rewards": [{"name": "regex", "pattern": "a+", "mode": "fullmatch"}],
            "train": {
                "total_steps": 3,
                "checkpoint_every": 100,
                "device": "cpu",
                "seed": 0,
            },
        }
    )


PROMPTS = [{"prompt": c * 3} for c in "abcdefgh" * 4]


def grpo(stop, out):
    from workers.engine import train
    from workers.engine.trainer import Callbacks

    return train(_policy_config(), PROMPTS, Callbacks(should_stop=stop), output_dir=out)


def evaluation(stop, out):
    from workers.engine import evaluate_policy
    from workers.engine.trainer import Callbacks

    return evaluate_policy(_policy_config(), PROMPTS, Callbacks(should_stop=stop))


def reward_model(stop, out):
    from workers.engine.rm_trainer import (
        PreferenceRecord,
        RewardModelTrainConfig,
        train_reward_model,
    )

    rng = random.Random(0)
    words = [
        "the",
        "a",
        "cat",
        "dog",
        "bird",
        "runs",
        "jumps",
        "sits",
        "over",
        "under",
        "near",
        "house",
        "tree",
        "river",
    ]

    def text() -> str:
        return " ".join(rng.choice(words) for _ in range(60))

    records = [
        PreferenceRecord("describe", [text(), text()], [[0], [1]]) for _ in range(2000)
    ]
    config = RewardModelTrainConfig(
        backbone="tiny",
        epochs=1,
        batch_size=256,
        max_length=128,
        eval_fraction=0.5,
        device="cpu",
    )
    return train_reward_model(config, records, output_dir=out, should_stop=stop)


def dpo(stop, out):
    from workers.engine.dpo import PreferencePair, train_dpo
    from workers.engine.dpo_config import DPOTrainConfig

    rng = random.Random(0)
    pairs = [
        PreferencePair(
            "".join(rng.choice("abcd") for _ in range(40)),
            "".join(rng.choice("abcd") for _ in range(200)),
            "".join(rng.choice("efgh") for _ in range(200)),
        )
        for _ in range(512)
    ]
    config = DPOTrainConfig.from_dict(
        {
            "policy": {"source": "tiny", "tiny": TINY},
            "dpo": {
                "batch_size": 8,
                "gradient_accumulation_steps": 16,
                "device": "cpu",
                "use_chat_template": False,
                "checkpoint_every": 100,
            },
            "optim": {"lr": 1e-3},
        }
    )
    return train_dpo(config, pairs, output_dir=out, should_stop=stop)


def sft(stop, out):
    from workers.engine.sft import SFTExample, train_sft
    from workers.engine.sft_config import SFTTrainConfig

    rng = random.Random(0)
    examples = [
        SFTExample(
            "".join(rng.choice("abcd") for _ in range(40)),
            "".join(rng.choice("efgh") for _ in range(300)),
        )
        for _ in range(512)
    ]
    config = SFTTrainConfig.from_dict(
        {
            "policy": {"source": "tiny", "tiny": TINY},
            "sft": {
                "batch_size": 8,
                "gradient_accumulation_steps": 32,
                "device": "cpu",
                "use_chat_template": False,
                "checkpoint_every": 100,
            },
            "optim": {"lr": 1e-3},
        }
    )
    return train_sft(config, examples, output_dir=out, should_stop=stop)


KINDS = {
    "grpo": grpo,
    "evaluation": evaluation,
    "reward_model": reward_model,
    "dpo": dpo,
    "sft": sft,
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--after", type=float, default=1.0, help="seconds into the first step"
    )
    parser.add_argument("--kinds", default=",".join(KINDS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    for kind in args.kinds.split(","):
        stop = Stop(args.after)
        with tempfile.TemporaryDirectory() as out:
            started = time.monotonic()
            KINDS[kind](stop, Path(out))
            ended = time.monotonic()
        latency = ended - stop.flipped_at if stop.flipped_at else float("nan")
        print(
            f"{kind:13s} cancel -> returned {latency:6.2f} s  (run {ended - started:6.2f} s, "
            f"should_stop asked {stop.calls}x)",
            flush=True,
        )


if __name__ == "__main__":
    main()

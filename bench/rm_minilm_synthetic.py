"""Held-out accuracy and wall time of reward-model training on synthetic preferences.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/rm_minilm_synthetic.py --task relevance --pairs 200

Tasks:
  keyword    the completion that contains "step by step" is preferred (no prompt needed);
  relevance  the prompt asks about one topic; the completion about that topic is preferred
             over one about another topic (needs prompt and completion read together).
"""

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workers.engine.reward_model import build_reward_model  # noqa: E402
from workers.engine.rm_trainer import (  # noqa: E402
    PreferenceRecord,
    RewardModelTrainConfig,
    split_records,
    train_reward_model,
)

TOPICS = {
    "cooking": ["simmer the sauce", "chop the onions", "preheat the oven", "season with salt", "knead the dough"],
    "astronomy": ["the orbit of Mars", "a distant galaxy", "the phases of the moon", "a telescope mirror", "dark matter"],
    "gardening": ["water the tomatoes", "prune the roses", "compost the leaves", "plant the seeds", "mulch the beds"],
    "finance": ["compound interest", "an index fund", "the monthly budget", "a credit score", "diversify savings"],
    "football": ["the penalty kick", "a midfield pass", "the offside rule", "the goalkeeper", "a corner kick"],
    "programming": ["a recursive function", "the unit tests", "a memory leak", "the compiler error", "a hash map"],
}
FILLER = ["in general", "most of the time", "as you might expect", "for the record", "to be fair", "honestly"]


def sentence(rng: random.Random, topic: str) -> str:
    a, b = rng.sample(TOPICS[topic], 2)
    return f"{rng.choice(FILLER).capitalize()}, think about {a} and {b}."


def make_records(task: str, n: int, seed: int) -> list[PreferenceRecord]:
    rng = random.Random(seed)
    records = []
    for _ in range(n):
        topic, other = rng.sample(sorted(TOPICS), 2)
        prompt = f"Tell me something about {topic}."
        if task == "keyword":
            good = f"{sentence(rng, topic)} Let us go step by step. {sentence(rng, topic)}"
            bad = f"{sentence(rng, topic)} {sentence(rng, topic)}"
        else:
            good, bad = sentence(rng, topic), sentence(rng, other)
        first_good = rng.random() < 0.5
        completions = [good, bad] if first_good else [bad, good]
        records.append(PreferenceRecord(prompt, completions, [[0], [1]] if first_good else [[1], [0]]))
    return records


def untrained_accuracy(config: RewardModelTrainConfig, records: list[PreferenceRecord]) -> float:
    """Held-out accuracy of the freshly built model (random heads): the baseline."""
    scorer = build_reward_model(backbone=config.backbone, path=config.path, ensemble_size=config.ensemble_size,
                                seed=config.seed, max_length=config.max_length, device=config.device)  # fmt: skip
    held_out = [records[i] for i in split_records(len(records), config.eval_fraction, config.seed)[1]]
    scores = scorer.score([r.prompt for r in held_out for _ in r.completions],
                          [c for r in held_out for c in r.completions]).mean(0).view(-1, 2)  # fmt: skip
    best = torch.tensor([r.ranking[0][0] for r in held_out])
    return (scores.gather(1, best[:, None]) > scores.gather(1, 1 - best[:, None])).float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--task", choices=["keyword", "relevance"], default="relevance")
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--backbone", default="minilm")
    parser.add_argument("--path", default=None, help="backbone folder (default: the packaged MiniLM)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--ensemble-size", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    config = RewardModelTrainConfig(
        backbone=args.backbone, path=args.path, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, max_length=64,
        ensemble_size=args.ensemble_size, eval_fraction=0.2, device=args.device,
    )  # fmt: skip
    records = make_records(args.task, args.pairs, seed=0)
    baseline = untrained_accuracy(config, records)
    history = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        result = train_reward_model(config, records, output_dir=Path(out),
                                    on_metrics=lambda s, m: history.append({"step": s, **m}))  # fmt: skip
    seconds = time.perf_counter() - started
    evals = [{k: round(v, 4) for k, v in h.items() if k.startswith("eval/") or k == "step"} for h in history
             if "eval/accuracy" in h]  # fmt: skip
    print(json.dumps({"task": args.task, "pairs": args.pairs, "config": config.to_dict(), "seconds": round(seconds, 1),
                      "eval/accuracy_untrained": round(baseline, 4),
                      "steps": result.steps, "per_epoch": evals,
                      "torch_threads": torch.get_num_threads(), "device": args.device}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()

"""Short CPU RL run of the built-in SmolLM2-135M-Instruct on arithmetic word problems.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/engine_smollm2_cpu.py [--steps 6] [--threads 2]

Greedy and sampled accuracy (exact_answer) on the 8 problems before and after training,
the per-step reward and accuracy, and seconds per step. Figures: bench/engine_smollm2_cpu.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from workers.engine import Callbacks, PromptRecord, TrainConfig, train  # noqa: E402
from workers.engine.evaluate import evaluate_pass_at_k  # noqa: E402
from workers.engine.policy import load_policy, load_policy_checkpoint  # noqa: E402

PROBLEMS = [
    ("Tom has 3 apples and buys 4 more. How many apples does he have?", "7"),
    ("A box holds 6 eggs. How many eggs are in 5 boxes?", "30"),
    ("Sara had 20 stickers and gave 8 to her friend. How many stickers does she have left?", "12"),
    ("A pencil costs 2 dollars. How much do 9 pencils cost in dollars?", "18"),
    ("There are 15 birds on a tree and 6 fly away. How many birds are left on the tree?", "9"),
    ("Ben reads 10 pages a day. How many pages does he read in 7 days?", "70"),
    ("24 cookies are shared equally among 4 children. How many cookies does each child get?", "6"),
    ("A farmer has 12 cows and buys 13 more. How many cows does he have now?", "25"),
]
SUFFIX = " Answer with the final number."


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--model-cache-dir", type=Path, default=ROOT / "var" / "models")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    records = [PromptRecord(q + SUFFIX, reference=a, id=i) for i, (q, a) in enumerate(PROBLEMS)]
    config = TrainConfig.from_dict({
        "policy": {"source": "builtin", "name": "smollm2-135m-instruct"},
        "rollout": {"num_generations": 4, "prompts_per_step": 4, "max_new_tokens": 96,
                    "temperature": args.temperature},
        "rewards": [{"name": "exact_answer"}],
        "algorithm": {"estimator": "grpo", "loss_aggregation": "token_mean"},
        "optim": {"lr": args.lr, "max_grad_norm": 1.0},
        "train": {"total_steps": args.steps, "checkpoint_every": args.steps, "seed": 0,
                  "device": "cpu", "micro_batch_size": 8, "keep_checkpoints": 1},
    })

    def evaluate(model, tokenizer) -> dict[str, float]:
        started = time.perf_counter()
        out = evaluate_pass_at_k(model, tokenizer, records, num_samples=4, k=4,
                                 max_new_tokens=96, temperature=args.temperature, seed=123)
        return {**out, "seconds": round(time.perf_counter() - started, 1)}

    started = time.perf_counter()
    model, tokenizer = load_policy(config.policy, cache_dir=args.model_cache_dir)
    print(f"load {time.perf_counter() - started:.1f}s", flush=True)
    before = evaluate(model, tokenizer)
    print("before", json.dumps(before), flush=True)
    del model

    steps = []

    def on_metrics(step: int, m: dict[str, float]) -> None:
        row = {"step": step, "reward": m["reward"], "accuracy": m["accuracy"],
               "mean_length": m["completions/mean_length"],
               "clipped": m["completions/clipped_ratio"], "entropy": m["entropy"],
               "grad_norm": m["grad_norm"], "rollout_s": m["timing/rollout_s"],
               "update_s": m["timing/update_s"], "tokens_per_s": m["throughput/tokens_per_s"]}
        steps.append(row)
        print(json.dumps({k: round(v, 3) for k, v in row.items()}), flush=True)

    with tempfile.TemporaryDirectory() as out:
        result = train(config, records, Callbacks(on_metrics=on_metrics), output_dir=Path(out),
                       model_cache_dir=args.model_cache_dir)
        model, tokenizer = load_policy_checkpoint(result.final_checkpoint, config.policy)
    after = evaluate(model, tokenizer)
    print("after", json.dumps(after), flush=True)
    per_step = [s["rollout_s"] + s["update_s"] for s in steps]
    print(json.dumps({"threads": args.threads, "lr": args.lr, "temperature": args.temperature,
                      "mean_s_per_step": round(sum(per_step) / len(per_step), 1),
                      "train_reward_first_half": round(
                          sum(s["reward"] for s in steps[:len(steps) // 2]) / (len(steps) // 2), 3),
                      "train_reward_second_half": round(
                          sum(s["reward"] for s in steps[len(steps) // 2:])
                          / (len(steps) - len(steps) // 2), 3)}))


if __name__ == "__main__":
    main()

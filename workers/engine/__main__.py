"""Command line: ``python -m workers.engine {train,eval,train-rm,train-dpo,train-sft,export-rm-hf,default-config} ...``.

The only place in the engine that reads the environment: the converted built-in models' cache,
``--model-cache-dir``, else STEER_MODEL_CACHE_DIR (the web app's and worker's), else
STEER_MODEL_CACHE, else ``$STEER_VAR_DIR/models``, else ``var/models``
(``cli_config.model_cache_dir``). User errors print one
line on stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .cli_config import add_model_cache_dir_option, model_cache_dir, run_cli
from .errors import ConfigError, DataError, unreadable_json


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if (
        argv and argv[0] == "train-rm"
    ):  # owned by the reward-model trainer, imported lazily
        from .rm_trainer import cli_main

        return cli_main(argv[1:])
    if argv and argv[0] == "train-dpo":  # owned by the DPO trainer, imported lazily
        from .dpo import cli_main as dpo_cli_main

        return dpo_cli_main(argv[1:], environ=os.environ)
    if argv and argv[0] == "train-sft":  # owned by the SFT trainer, imported lazily
        from .sft import cli_main as sft_cli_main

        return sft_cli_main(argv[1:], environ=os.environ)
    if argv and argv[0] == "export-rm-hf":  # owned by the exporter, imported lazily
        from .reward_model_export import cli_main as export_cli_main

        return export_cli_main(argv[1:])
    args = _parser().parse_args(argv)
    return run_cli(lambda: args.run(args))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m workers.engine", description="Steer training engine"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="RL-train a policy")
    train.add_argument("--config", type=Path, required=True, help="TrainConfig JSON")
    train.add_argument(
        "--prompts", type=Path, help="JSONL prompts (overrides data.path)"
    )
    train.add_argument(
        "--output-dir",
        type=Path,
        help="run folder (checkpoints; resumes if present); "
        "default var/runs/<config name>",
    )
    add_model_cache_dir_option(train)
    train.add_argument(
        "--eval-prompts", type=Path, help="JSONL prompts for eval.every_steps"
    )
    train.set_defaults(run=_train)
    evaluate = sub.add_parser("eval", help="greedy pass@1 and pass@k with exact_answer")
    evaluate.add_argument("--config", type=Path, required=True)
    evaluate.add_argument(
        "--prompts", type=Path, help="JSONL prompts (overrides data.path)"
    )
    evaluate.add_argument(
        "--checkpoint",
        type=Path,
        help="checkpoint folder to evaluate instead of the configured policy",
    )
    add_model_cache_dir_option(evaluate)
    evaluate.set_defaults(run=_eval)
    sub.add_parser("train-rm", help="train a reward model (see its own --help)")
    sub.add_parser(
        "train-dpo",
        help="train a policy with DPO on preference pairs (see its own --help)",
    )
    sub.add_parser(
        "train-sft",
        help="supervised fine-tuning of a policy on prompt-completion examples "
        "(see its own --help)",
    )
    sub.add_parser(
        "export-rm-hf",
        help="write a reward model as a Hugging Face sequence classifier "
        "(see its own --help)",
    )
    defaults = sub.add_parser(
        "default-config",
        help="print the default config JSON of a run kind "
        "(TrainConfig: policy and evaluation runs), every setting included",
    )
    defaults.add_argument(
        "--kind",
        choices=CONFIG_KINDS,
        default="policy",
        help="the run kind whose config to print, as the API's `kind`: policy and "
        "evaluation (TrainConfig, the default), dpo (train-dpo), sft (train-sft), "
        "reward_model (train-rm)",
    )
    defaults.add_argument(
        "--explain",
        action="store_true",
        help="list every setting instead: its dotted name, default and meaning",
    )
    defaults.set_defaults(
        run=lambda args: (
            print(
                _explained_config(args.kind)
                if args.explain
                else json.dumps(_default_config(args.kind), indent=2)
            )
            or 0
        )
    )
    return parser


# Run kinds (the API's ``kind``) whose engine config ``default-config --kind`` prints.
CONFIG_KINDS = ("policy", "evaluation", "dpo", "sft", "reward_model")


def _config_class(kind: str) -> type:
    """The engine's config dataclass of a run kind (the trainers' modules, imported lazily)."""
    if kind == "dpo":
        from .dpo_config import DPOTrainConfig

        return DPOTrainConfig
    if kind == "sft":
        from .sft_config import SFTTrainConfig

        return SFTTrainConfig
    if kind == "reward_model":
        from .rm_trainer import RewardModelTrainConfig

        return RewardModelTrainConfig
    from .config import TrainConfig

    return TrainConfig


def _explained_config(kind: str = "policy") -> str:
    """Every setting of the kind's config as ``name = default`` and its help, indented, sections included."""
    from .config import field_help

    defaults, lines = (
        _default_config(kind),
        [],
    )  # with the settings default-config leaves out
    for name, text in field_help(_config_class(kind)).items():
        value: object = defaults
        for part in name.split("."):
            value = value[part]
        shown = "" if isinstance(value, dict) else f" = {json.dumps(value)}"
        lines += [f"{name}{shown}", f"    {text}"]
    return "\n".join(lines)


def _default_config(kind: str = "policy") -> dict:
    """Every setting at its default, those a stored config leaves out at their default too
    (``rollout.budget_allocation``, ...): built from the config dataclasses' fields, so a setting
    added later is printed without being listed here."""
    from .config import every_default_dict

    if kind in ("policy", "evaluation"):
        return every_default_dict()
    return _config_class(kind)().to_dict()


def _read_config(path: Path):
    from .config import TrainConfig

    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("--config", f"file not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError("--config", f"{path} is not valid JSON ({exc})") from None
    except OSError as exc:  # a folder, or no permission to read it
        raise ConfigError(
            "--config", f"cannot read {path}: {exc.strerror or exc}"
        ) from None
    except (
        ValueError,
        RecursionError,
    ) as exc:  # not UTF-8, too deep, a 5,000-digit number
        raise ConfigError("--config", unreadable_json(str(path), exc)) from None
    return TrainConfig.from_dict(raw)


def _prompts_path(args, config) -> Path:
    if args.prompts is not None:
        return args.prompts
    if config.data.path is None:
        raise DataError(
            "no prompts: pass --prompts FILE.jsonl or set data.path in the config"
        )
    path = Path(config.data.path)
    return path if path.is_absolute() else args.config.parent / path


def _model_cache_dir(args) -> Path:
    return model_cache_dir(args.model_cache_dir, os.environ)


def _train(args) -> int:
    from tqdm import tqdm

    from .data import read_prompts_jsonl
    from .system_metrics import progress_figures
    from .trainer import Callbacks, train

    config = _read_config(args.config)
    prompts = read_prompts_jsonl(_prompts_path(args, config))
    eval_prompts = read_prompts_jsonl(args.eval_prompts) if args.eval_prompts else None
    output_dir = args.output_dir or Path("var/runs") / args.config.stem
    bar = tqdm(total=config.train.total_steps, unit="step", dynamic_ncols=True)
    system: dict[
        int, dict[str, str]
    ] = {}  # a step's system figures, heard before its metrics

    def on_metrics(step: int, metrics: dict[str, float]) -> None:
        bar.n = step
        shown = {k: metrics[k] for k in ("reward", "accuracy") if k in metrics}
        bar.set_postfix(
            {**{k: f"{v:.3f}" for k, v in shown.items()}, **system.pop(step, {})},
            refresh=True,
        )

    def on_system_metrics(step: int, metrics: dict[str, float]) -> None:
        system[step] = progress_figures(metrics)

    try:
        result = train(
            config,
            prompts,
            Callbacks(on_metrics=on_metrics, on_system_metrics=on_system_metrics),
            output_dir=output_dir,
            model_cache_dir=_model_cache_dir(args),
            eval_prompts=eval_prompts,
        )
    finally:
        bar.close()
    print(
        f"done: step {result.steps_completed}/{config.train.total_steps}, "
        f"checkpoint {result.final_checkpoint}"
    )
    return 0


def _eval(args) -> int:
    from .data import read_prompts_jsonl
    from .evaluate import evaluate_pass_at_k
    from .policy import load_policy, load_policy_checkpoint, resolve_device

    config = _read_config(args.config)
    prompts = read_prompts_jsonl(_prompts_path(args, config))
    device = resolve_device(config.train.device)
    if args.checkpoint is not None:
        model, tokenizer = load_policy_checkpoint(
            args.checkpoint, config.policy, device=device
        )
    else:
        model, tokenizer = load_policy(
            config.policy, cache_dir=_model_cache_dir(args), device=device
        )
    result = evaluate_pass_at_k(
        model,
        tokenizer,
        prompts,
        num_samples=config.eval.num_samples,
        k=config.eval.k,
        max_new_tokens=config.eval.max_new_tokens or config.rollout.max_new_tokens,
        temperature=config.eval.temperature,
        use_chat_template=config.rollout.use_chat_template,
        seed=config.train.seed,
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

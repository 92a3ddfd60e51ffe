"""SFT: the loss against a hand computation and TRL 1.16's own masking, a tiny-model run whose
loss falls, exact resume, chat prompts through the template, and the config's errors."""

import pytest
import torch

from workers.engine.errors import ConfigError, DataError
from workers.engine.sft import (
    SFTExample,
    batch_token_losses,
    completion_token_losses,
    encode_examples,
    planned_sft_steps,
    step_examples,
    train_sft,
)
from workers.engine.sft_config import SFTTrainConfig
from workers.engine.tiny import build_tiny_policy

TINY = {"alphabet": "abxy", "hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64, "seed": 0}


def tiny_sft(**sft) -> SFTTrainConfig:
    return SFTTrainConfig.from_dict({
        "policy": {"source": "tiny", "tiny": TINY},
        "sft": {"batch_size": 2, "gradient_accumulation_steps": 2, "epochs": 5, "device": "cpu",
                "checkpoint_every": 100, "use_chat_template": False, **sft},
        "optim": {"lr": 1e-2}})


# Toy task: answer every prompt with a's as long as the prompt.
TOY = [SFTExample(p, "a" * len(p)) for p in ["x", "y", "xy", "yx", "xx", "yy", "xxy", "yyx"]]


def hand_loss(model, rows: list[tuple[list[int], list[int]]]) -> float:
    """Mean NLL over every completion token of the rows, each row scored alone, prompt tokens left out."""
    total, count = 0.0, 0
    with torch.no_grad():
        for prompt, completion in rows:
            ids = torch.tensor([prompt + completion])
            logits = model(input_ids=ids).logits[0, len(prompt) - 1:-1]  # the positions that predict the completion
            logprobs = torch.log_softmax(logits.float(), -1).gather(1, torch.tensor(completion)[:, None])
            total -= logprobs.sum().item()
            count += len(completion)
    return total / count


def test_first_step_loss_is_the_mean_nll_of_the_completion_tokens_alone(tmp_path):
    """One step over examples of different prompt and completion lengths: the reported loss is the
    initial model's NLL averaged over completion tokens (not prompts, not padding, not per example)."""
    model, tokenizer = build_tiny_policy(**TINY)
    model.eval()
    examples = [SFTExample("xyyxy", "a"), SFTExample("x", "abab"), SFTExample("yy", "bb")]
    encoded = encode_examples(tokenizer, examples, max_length=64, use_chat_template=False)
    rows = [(e.prompt, e.completion) for e in encoded]
    assert [len(c) for _, c in rows] == [2, 5, 3]  # each completion and its EOS
    expected = hand_loss(model, rows)
    per_example = [hand_loss(model, [row]) for row in rows]
    assert abs(expected - sum(per_example) / 3) > 1e-4  # token-level, not a mean of example means
    prompts_too = hand_loss(model, [([p[0]], p[1:] + c) for p, c in rows])
    assert abs(expected - prompts_too) > 1e-4  # masking the prompt matters here
    history = []
    train_sft(tiny_sft(batch_size=3, gradient_accumulation_steps=1, epochs=1), examples, output_dir=tmp_path,
              on_metrics=lambda step, m: history.append(m))
    assert history[0]["loss"] == pytest.approx(expected, rel=1e-5)
    assert history[0]["num_tokens"] == sum(len(p) + len(c) for p, c in rows)
    assert 0.0 <= history[0]["mean_token_accuracy"] <= 1.0


def test_accumulated_micro_batches_equal_one_big_batch(tmp_path):
    """Token-level mean across the whole step: 2 × 2 examples accumulated give the loss and the
    gradient of one batch of 4 (a mean of micro-batch means would not)."""
    examples = [SFTExample("x", "a"), SFTExample("yy", "abab"), SFTExample("xy", "b"), SFTExample("y", "aaaaa")]
    runs = {}
    for name, (size, accumulation) in {"big": (4, 1), "accumulated": (2, 2)}.items():
        history = []
        result = train_sft(tiny_sft(batch_size=size, gradient_accumulation_steps=accumulation, epochs=1), examples,
                           output_dir=tmp_path / name, on_metrics=lambda s, m, seen=history: seen.append(m))
        assert result.steps_completed == 1
        runs[name] = history[0]
    for key in ("loss", "grad_norm", "mean_token_accuracy"):
        assert runs["big"][key] == pytest.approx(runs["accumulated"][key], rel=1e-5), key


def test_tiny_run_learns_the_toy_task(tmp_path):
    history = []
    config = tiny_sft(epochs=15)
    result = train_sft(config, TOY, output_dir=tmp_path, on_metrics=lambda step, m: history.append(m))
    assert result.steps_completed == result.total_steps == planned_sft_steps(8, config) == 30
    first, last = history[0], history[-1]
    assert last["loss"] < 0.05 * first["loss"]
    assert first["mean_token_accuracy"] < 0.5 and last["mean_token_accuracy"] == 1.0
    assert {"loss", "mean_token_accuracy", "num_tokens", "grad_norm", "learning_rate", "epoch"} <= set(last)
    assert last["epoch"] == 15.0 and first["data/examples"] == 8
    assert last["num_tokens"] == 15 * sum(len(e.prompt) + len(e.completion) + 1 for e in TOY)
    assert (result.final_checkpoint / "config.json").is_file()


def _weights(checkpoint) -> dict:
    from transformers import AutoModelForCausalLM

    return {k: v.clone() for k, v in AutoModelForCausalLM.from_pretrained(checkpoint).state_dict().items()}


def test_resume_gives_the_parameters_of_the_uninterrupted_run(tmp_path):
    config = tiny_sft(checkpoint_every=3)
    straight = []
    done = train_sft(config, TOY, output_dir=tmp_path / "straight", on_metrics=lambda s, m: straight.append((s, m)))

    first = []
    stopped = train_sft(config, TOY, output_dir=tmp_path / "resumed", on_metrics=lambda s, m: first.append((s, m)),
                        should_stop=lambda: len(first) >= 4)
    assert stopped.stopped and stopped.steps_completed == 4
    checkpoints, rest = [], []
    resumed = train_sft(config, TOY, output_dir=tmp_path / "resumed", on_metrics=lambda s, m: rest.append((s, m)),
                        on_checkpoint=lambda s, p: checkpoints.append(s))
    assert resumed.resumed_from == 4 and [s for s, _ in rest] == list(range(5, 11))
    assert checkpoints == [6, 9, 10]
    for (step, m), (step_straight, m_straight) in zip(first + rest, straight, strict=True):
        assert step == step_straight
        for key in ("loss", "mean_token_accuracy", "num_tokens", "grad_norm", "epoch"):
            assert m[key] == pytest.approx(m_straight[key], rel=1e-5, abs=1e-6), (step, key)
    expected, got = _weights(done.final_checkpoint), _weights(resumed.final_checkpoint)
    for key, value in expected.items():
        assert torch.allclose(value, got[key], atol=1e-6), key


def test_a_chat_prompt_goes_through_the_chat_template_and_the_completion_follows_as_the_assistant():
    _, tokenizer = build_tiny_policy(**TINY)
    messages = [{"role": "system", "content": "y"}, {"role": "user", "content": "xy"}]
    [chat, plain] = encode_examples(tokenizer, [SFTExample(messages, "ab"), SFTExample("xy", "ab")], max_length=64,
                                    use_chat_template=False)
    rendered = tokenizer.decode(chat.prompt + chat.completion)
    assert rendered == "<|system|>y<|im_end|><|user|>xy<|im_end|><|assistant|>ab<|im_end|>"
    assert tokenizer.decode(plain.prompt) == "xy"  # plain text without use_chat_template
    [templated] = encode_examples(tokenizer, [SFTExample("xy", "ab")], max_length=64, use_chat_template=True)
    assert tokenizer.decode(templated.prompt) == "<|user|>xy<|im_end|><|assistant|>"
    assert templated.completion[-1] == tokenizer.eos_token_id


def test_chat_examples_train(tmp_path):
    examples = [SFTExample([{"role": "user", "content": "xy"}], "a"),
                SFTExample([{"role": "system", "content": "y"}, {"role": "user", "content": "x"}], "bb")]
    result = train_sft(tiny_sft(epochs=1), examples, output_dir=tmp_path)
    assert result.steps_completed == 1


def test_max_length_cuts_the_completion_and_keeps_the_prompts_end():
    _, tokenizer = build_tiny_policy(**TINY)
    [short] = encode_examples(tokenizer, [SFTExample("xy", "aaaa")], max_length=5, use_chat_template=False)
    assert tokenizer.decode(short.completion) == "aaa"  # no room left for EOS
    [long_prompt] = encode_examples(tokenizer, [SFTExample("xxxxxxxxxy", "ab")], max_length=6,
                                    use_chat_template=False)
    assert tokenizer.decode(long_prompt.prompt) == "xxxxy" and tokenizer.decode(long_prompt.completion) == "a"


@pytest.mark.parametrize("conversational", [False, True])
def test_the_loss_masks_what_trl_masks(conversational, tmp_path):
    """TRL 1.16's SFTTrainer prepares one prompt-completion example (tokenise, EOS, completion
    mask, labels); Hugging Face's causal-LM loss on its labels equals ours on our encoding."""
    from types import SimpleNamespace

    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    model, tokenizer = build_tiny_policy(**TINY)
    model.eval()
    if conversational:
        trl_example = {"prompt": [{"role": "user", "content": "xyx"}],
                       "completion": [{"role": "assistant", "content": "abba"}]}
        ours = SFTExample([{"role": "user", "content": "xyx"}], "abba")
    else:
        trl_example = {"prompt": "xyx", "completion": "abba"}
        ours = SFTExample("xyx", "abba")
    args = SFTConfig(output_dir=str(tmp_path), max_length=64, report_to=[], bf16=False, use_cpu=True)
    stand_in = SimpleNamespace(_tokenizer=tokenizer, completion_only_loss=True, chat_template=None)
    prepared = SFTTrainer._prepare_dataset(stand_in, Dataset.from_list([trl_example]), tokenizer, args,
                                           packing=False, formatting_func=None, dataset_name="train")[0]
    labels = torch.tensor([prepared["labels"]])
    assert (labels[0] == -100).sum().item() > 0  # the prompt is masked
    with torch.no_grad():
        trl_loss = model(input_ids=torch.tensor([prepared["input_ids"]]), labels=labels).loss.item()
    [encoded] = encode_examples(tokenizer, [ours], max_length=64, use_chat_template=False)
    assert encoded.prompt + encoded.completion == prepared["input_ids"]
    assert trl_loss == pytest.approx(hand_loss(model, [(encoded.prompt, encoded.completion)]), rel=1e-5)
    with torch.no_grad():
        nll, _ = batch_token_losses(model, [encoded], tokenizer.pad_token_id, "cpu")
    assert (nll.sum() / len(encoded.completion)).item() == pytest.approx(trl_loss, rel=1e-5)


def test_completion_token_losses_of_hand_made_logits():
    """Two rows, three positions, vocabulary of three: masked positions give 0, the rest the
    negative log-softmax of the target and whether it is the argmax."""
    logits = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [5.0, 5.0, 9.0]],
                           [[0.0, 0.0, 3.0], [1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]])
    targets = torch.tensor([[0, 2, 1], [2, 0, 1]])
    mask = torch.tensor([[0, 1, 1], [1, 1, 0]])
    nll, correct = completion_token_losses(logits, targets, mask)
    expected = -torch.log_softmax(logits, -1).gather(-1, targets[..., None])[..., 0] * mask
    assert torch.allclose(nll, expected)
    assert nll[0, 0] == 0 and nll[1, 2] == 0
    assert correct.tolist() == [[False, False, False], [True, False, False]]


def test_step_examples_cover_every_example_once_per_epoch():
    config = tiny_sft(batch_size=3, gradient_accumulation_steps=2, epochs=2)
    assert planned_sft_steps(8, config) == 4
    epoch = [i for step in (1, 2) for micro in step_examples(step, 8, config) for i in micro]
    assert sorted(epoch) == list(range(8))


@pytest.mark.parametrize(("examples", "message"), [
    ([], "no examples"),
    ([SFTExample("x", "")], "example 0: completion"),
    ([SFTExample("x", "a"), SFTExample(3, "a")], "example 1: prompt"),
])
def test_bad_examples_are_data_errors(tmp_path, examples, message):
    with pytest.raises(DataError, match=message):
        train_sft(tiny_sft(), examples, output_dir=tmp_path)


@pytest.mark.parametrize(("section", "field"), [
    ({"batch_size": 0}, "sft.batch_size"),
    ({"gradient_accumulation_steps": 0}, "sft.gradient_accumulation_steps"),
    ({"epochs": 10**9}, "sft.epochs"),
    ({"max_length": 1}, "sft.max_length"),
    ({"device": "gpu"}, "sft.device"),
    ({"beta": 0.1}, "sft.beta"),
])
def test_bad_settings_name_their_field(section, field):
    with pytest.raises(ConfigError) as caught:
        SFTTrainConfig.from_dict({"sft": section})
    assert caught.value.field == field


def test_the_default_learning_rate_is_trls_for_sft_even_beside_other_optim_settings():
    assert SFTTrainConfig().optim.lr == 2e-5
    assert SFTTrainConfig.from_dict({"optim": {"weight_decay": 0.01}}).optim.lr == 2e-5
    with pytest.raises(ConfigError) as caught:
        SFTTrainConfig.from_dict({"optim": {"lr": -1}})
    assert caught.value.field == "optim.lr"


def test_config_round_trips_without_importing_torch():
    import subprocess
    import sys
    from pathlib import Path

    config = SFTTrainConfig.from_dict({"sft": {"epochs": 3}, "optim": {"lr": 2e-5}})
    assert SFTTrainConfig.from_dict(config.to_dict()) == config
    code = ("import sys\nfrom workers.engine.sft_config import SFTTrainConfig\n"
            "SFTTrainConfig.from_dict({'sft': {'epochs': 2}})\nassert 'torch' not in sys.modules")
    result = subprocess.run([sys.executable, "-c", code], check=False, cwd=Path(__file__).resolve().parents[2],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr

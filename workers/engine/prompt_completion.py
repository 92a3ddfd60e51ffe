"""What the offline trainers (DPO, SFT) share about prompt + completion data: its token ids,
its padded batches, the order the examples are visited in, epoch by epoch, and their checkpoints.

A prompt is encoded as the rest of the engine encodes it (``rollout.encode_prompts``: chat
prompts through the tokenizer's chat template with the generation prompt), so a policy trained
offline answers the prompts it is given at rollout the way it was trained to.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor

from .checkpoint import prune_checkpoints, save_checkpoint
from .rollout import encode_prompts, left_pad


def encode_prompt_completions(tokenizer, prompts: Sequence, completions: Sequence[Sequence[str]], *,
                              max_length: int, use_chat_template: bool
                              ) -> list[tuple[list[int], list[list[int]]]]:
    """(prompt ids, [ids of each of its completions]) for each prompt: each completion followed
    by EOS. A completion is cut at its end to fit ``max_length`` with its prompt; a prompt too
    long to leave a completion token keeps its last ``max_length − 1`` tokens."""
    encoded_prompts = encode_prompts(tokenizer, prompts, use_chat_template=use_chat_template)
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    out = []
    for prompt, texts in zip(encoded_prompts, completions):
        prompt = prompt[-(max_length - 1):]
        room = max_length - len(prompt)
        out.append((prompt, [(tokenizer(text, add_special_tokens=False)["input_ids"] + eos)[:room]
                             for text in texts]))
    return out


def prompt_completion_batch(prompts: Sequence[Sequence[int]], completions: Sequence[Sequence[int]], pad_id: int,
                            device) -> tuple[Tensor, Tensor, Tensor]:
    """One row per (prompt, completion): input_ids, attention_mask (N, P + T), prompts
    left-padded and completions right-padded, so the last T columns are the completions;
    completion_mask (N, T)."""
    prompt_ids, prompt_mask = left_pad(prompts, pad_id, "cpu")
    width = max(len(c) for c in completions)
    completion_ids = torch.full((len(completions), width), pad_id, dtype=torch.long)
    completion_mask = torch.zeros((len(completions), width), dtype=torch.long)
    for i, c in enumerate(completions):
        completion_ids[i, :len(c)] = torch.as_tensor(c, dtype=torch.long)
        completion_mask[i, :len(c)] = 1
    input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
    attention_mask = torch.cat([prompt_mask, completion_mask], dim=1)
    return input_ids.to(device), attention_mask.to(device), completion_mask.to(device)


def planned_steps(num_examples: int, *, batch_size: int, accumulation: int, epochs: int) -> int:
    """Optimizer steps over ``num_examples``: every epoch ends with a (possibly smaller) step."""
    return math.ceil(num_examples / (batch_size * accumulation)) * epochs


def step_indices(step: int, num_examples: int, *, batch_size: int, accumulation: int, seed: int) -> list[list[int]]:
    """The example indices of optimizer step ``step`` (from 1), as micro-batches: each epoch
    walks a permutation seeded by ``seed + epoch``, so a resumed run takes the same examples."""
    per_step = batch_size * accumulation
    steps_per_epoch = math.ceil(num_examples / per_step)
    epoch, within = divmod(step - 1, steps_per_epoch)
    order = torch.randperm(num_examples, generator=torch.Generator().manual_seed(seed + epoch)).tolist()
    ids = order[within * per_step:(within + 1) * per_step]
    return [ids[i:i + batch_size] for i in range(0, len(ids), batch_size)]


def epoch_at(step: int, steps_per_epoch: int) -> float:
    """The fractional epoch at the end of optimizer step ``step`` (from 1), as TRL logs ``epoch``."""
    return (step - 1) // steps_per_epoch + ((step - 1) % steps_per_epoch + 1) / steps_per_epoch


def offline_checkpoint(config, model, tokenizer, optimizer, output_dir: Path, step: int, total: int, *, kind: str,
                       keep: int, on_checkpoint: Callable[[int, Path], None] | None) -> Path:
    """Save checkpoint ``step`` of an offline run (``trainer_state.kind`` says which trainer), keep
    the ``keep`` latest, tell ``on_checkpoint``; returns the checkpoint's folder."""
    path = save_checkpoint(output_dir, step, model=model, tokenizer=tokenizer, optimizer=optimizer,
                           config_dict=config.to_dict(), trainer_state={"total_steps": total, "kind": kind})
    prune_checkpoints(output_dir, keep)
    if on_checkpoint is not None:
        on_checkpoint(step, path)
    return path

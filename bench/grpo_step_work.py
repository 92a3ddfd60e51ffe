"""The work both sides of bench/grpo_step.py do: one model, tokenizer, prompt set and reward.

Nothing here knows Steer or TRL. The model is randomly initialised from a config (only the
arithmetic matters for speed), so no weights travel; the tokenizer is a word-level one of the
model's vocabulary size, built in memory.

Forced full length: the tokenizer's EOS id is ``vocab_size``, one past the model's output
vocabulary, so no completion can end before ``completion_tokens`` on either side, and neither
side needs a logits processor for it. The pad id (0) is an ordinary in-vocabulary token.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

# SmolLM2-135M-Instruct's config (HuggingFaceTB/SmolLM2-135M-Instruct, config.json).
SMOLLM2_135M = dict(vocab_size=49152, hidden_size=576, intermediate_size=1536,
                    num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                    max_position_embeddings=8192, rope_theta=100000.0, rms_norm_eps=1e-5,
                    tie_word_embeddings=True, hidden_act="silu")
# A tiny model of the same family for the CPU comparison.
TINY = dict(vocab_size=2048, hidden_size=64, intermediate_size=256, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
            rope_theta=10000.0, rms_norm_eps=1e-5, tie_word_embeddings=True, hidden_act="silu")
SHAPES = {"smollm2-135m": SMOLLM2_135M, "tiny": TINY}

# A completion scores 1 when one of its words ends in [0-4]77: with 256 near-uniform draws
# about 60-75% of completions hit, so groups have spread and every step has non-zero
# advantages.
REWARD_PATTERN = r"\bw\d*[0-4]77\b"


@dataclass(frozen=True)
class Work:
    shape: str = "smollm2-135m"
    prompts: int = 32
    generations: int = 8
    completion_tokens: int = 256
    prompt_tokens_min: int = 48
    prompt_tokens_max: int = 80
    temperature: float = 1.0
    lr: float = 1e-6
    seed: int = 0

    @property
    def rows(self) -> int:
        return self.prompts * self.generations

    @property
    def model_config(self) -> dict:
        return SHAPES[self.shape]


def build_tokenizer(vocab_size: int) -> PreTrainedTokenizerFast:
    """<pad> (0), <unk> (1) and words w2..w{V-1}; EOS is an extra token with id V."""
    vocab = {"<pad>": 0, "<unk>": 1, **{f"w{i}": i for i in range(2, vocab_size)}}
    vocab["<eos>"] = vocab_size
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>",
                                        unk_token="<unk>", eos_token="<eos>")
    tokenizer.padding_side = "left"
    return tokenizer


def build_model(work: Work, *, dtype: torch.dtype = torch.bfloat16,
                device: str = "cpu") -> LlamaForCausalLM:
    config = LlamaConfig(**work.model_config, pad_token_id=0, eos_token_id=None,
                         bos_token_id=None)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(work.seed)
        model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = 0
    model.generation_config.eos_token_id = work.model_config["vocab_size"]
    return model.to(device=device, dtype=dtype)


def build_prompts(work: Work) -> list[str]:
    """``work.prompts`` texts of random words, 48..80 tokens each (so both sides pad)."""
    rng = random.Random(work.seed)
    vocab = work.model_config["vocab_size"]
    return [" ".join(f"w{rng.randrange(2, vocab)}"
                     for _ in range(rng.randint(work.prompt_tokens_min, work.prompt_tokens_max)))
            for _ in range(work.prompts)]


def reward(completion: str) -> float:
    return 1.0 if re.search(REWARD_PATTERN, completion) else 0.0


def parameter_count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def update_flops(n_params: int, tokens: int) -> float:
    """Model FLOPs of one forward + backward over ``tokens`` tokens: 6 * N * tokens
    (attention's own FLOPs left out, as in the usual MFU convention)."""
    return 6.0 * n_params * tokens

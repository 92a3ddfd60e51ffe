"""A tiny randomly initialised Llama and a character-level tokenizer, built locally.

Tests and demos use it so they run in seconds without weights; the reward-model trainer uses
the same builder. One token per character of ``alphabet`` plus four specials; the chat
template follows ChatML (``<|im_start|>role\\n...<|im_end|>``) with ``<|im_end|>`` as EOS.
"""

from __future__ import annotations

import string

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

DEFAULT_ALPHABET = "".join(c for c in string.printable if c not in "\x0b\x0c\r")
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")
SPECIAL_TOKENS = ("<|pad|>", "<|unk|>", "<|im_end|>", *ROLE_TOKENS)
CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>"
    "{{ message['content'] }}<|im_end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def build_char_tokenizer(alphabet: str | None = None) -> PreTrainedTokenizerFast:
    """A tokenizer with one id per character after the specials (pad=0, unk=1, eos=2, roles)."""
    chars = list(dict.fromkeys(alphabet or DEFAULT_ALPHABET))
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for ch in chars:
        vocab.setdefault(ch, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<|unk|>"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    backend.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<|pad|>", unk_token="<|unk|>",
        eos_token="<|im_end|>", bos_token=None,
        additional_special_tokens=list(ROLE_TOKENS))
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.padding_side = "left"
    return tokenizer


def build_tiny_policy(*, hidden_size: int = 64, num_layers: int = 2, num_heads: int = 4,
                      intermediate_size: int = 128, max_position_embeddings: int = 512,
                      alphabet: str | None = None, seed: int = 0
                      ) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast]:
    """Build (model, tokenizer): a float32 LlamaForCausalLM whose weights depend only on
    ``seed`` and the sizes, with vocab_size = len(tokenizer). Both save with save_pretrained."""
    tokenizer = build_char_tokenizer(alphabet)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=intermediate_size,
        num_hidden_layers=num_layers, num_attention_heads=num_heads,
        num_key_value_heads=num_heads, max_position_embeddings=max_position_embeddings,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None, tie_word_embeddings=False)
    fork = torch.random.fork_rng(devices=[])
    with fork:  # seed the init without disturbing the caller's RNG
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model.float(), tokenizer

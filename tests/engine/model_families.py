"""Small randomly initialised policies of each family the fast path claims, for the tests that
compare it with Hugging Face's own forward and decoder."""

import torch

from workers.engine.tiny import build_char_tokenizer


def family(cls, config_cls, alphabet: str, **extra):
    """(model, tokenizer): 2 layers, width 32, 4 query heads over 2 key/value heads."""
    tok = build_char_tokenizer(alphabet)
    config = config_cls(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                        max_position_embeddings=256, pad_token_id=tok.pad_token_id,
                        eos_token_id=tok.eos_token_id, **extra)
    torch.manual_seed(0)
    return cls(config).eval(), tok


def randomised(model):
    """Random biases and norm weights: Hugging Face initialises them to 0 and 1, which would
    hide a dropped bias or a norm applied without its weight."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.add_(torch.randn(p.shape, generator=generator) * 0.3)
    return model

"""A language model as a pairwise judge: which of two responses to a request is better.

The judge reads one prompt holding the request, "Response A", "Response B" and the criteria,
and the answer is read off its next-token distribution: P(A) against P(B), renormalised over the
two letters, so no text is generated and nothing has to be parsed. Judges favour a position
(usually the first), so every pair is judged in both orders and the two probabilities are
averaged; whether the two orders pick the same winner is reported as the judge's consistency,
the first thing to look at when its rankings seem noisy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .errors import ModelLoadError

Prompt = str | list[dict]

DEFAULT_CRITERIA = ("Which response answers the request better: correct, helpful, honest and "
                    "clear? Do not prefer a response for its length or its position.")
MAX_TEXT_CHARS = 8_000  # of the request and of each response, before tokenising


def request_text(prompt: Prompt) -> str:
    """The request as the judge reads it: the text, or the conversation one turn a line."""
    if isinstance(prompt, str):
        return prompt
    return "\n".join(f"{m.get('role', 'user')}: {m.get('content', '')}" for m in prompt)


def judge_message(prompt: Prompt, first: str, second: str, criteria: str) -> str:
    """The user message the judge answers with one letter."""
    return (f"Compare two responses to the same request.\n\n[Request]\n"
            f"{request_text(prompt)[:MAX_TEXT_CHARS]}\n\n[Response A]\n{first[:MAX_TEXT_CHARS]}\n\n"
            f"[Response B]\n{second[:MAX_TEXT_CHARS]}\n\n{criteria}\n"
            "Answer with one letter: A or B.")


def letter_ids(tokenizer) -> tuple[int, int]:
    """The token ids of 'A' and 'B'; ModelLoadError unless each is one known token of its own."""
    out = []
    for letter in ("A", "B"):
        ids = tokenizer.encode(letter, add_special_tokens=False)
        if len(ids) != 1 or (ids[0] == tokenizer.unk_token_id and tokenizer.unk_token != letter):
            raise ModelLoadError(f"the judge's tokenizer has no single token for {letter!r}; a "
                                 "pairwise judge answers 'A' or 'B', one token each")
        out.append(ids[0])
    return out[0], out[1]


@dataclass
class Verdicts:
    """P(first response better) per pair, both orders averaged, and whether the orders agree."""

    first_better: list[float]
    consistent: list[bool]


class PairwiseJudge:
    """Judge pairs of responses with a causal LM (eval mode, no gradients)."""

    def __init__(self, model, tokenizer, *, criteria: str = DEFAULT_CRITERIA,
                 max_tokens: int = 2048, batch_size: int = 16):
        self.model, self.tokenizer = model, tokenizer
        self.criteria, self.max_tokens, self.batch_size = criteria, max_tokens, batch_size
        self.letters = letter_ids(tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def encode(self, prompt: Prompt, first: str, second: str) -> list[int]:
        """Token ids of the judge's input, ending where the answer letter comes; cut from the
        left to ``max_tokens`` (the instruction and the responses' ends are kept)."""
        message = judge_message(prompt, first, second, self.criteria)
        if getattr(self.tokenizer, "chat_template", None):
            ids = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": message}], add_generation_prompt=True, tokenize=True)
            if isinstance(ids, dict) or hasattr(ids, "input_ids"):
                ids = ids["input_ids"]
        else:
            ids = self.tokenizer.encode(message + "\nAnswer:", add_special_tokens=True)
        return list(ids)[-self.max_tokens:]

    @torch.no_grad()
    def p_first_letter(self, sequences: Sequence[list[int]]) -> list[float]:
        """P('A') / (P('A') + P('B')) after each sequence, in batches of similar length."""
        out = [0.0] * len(sequences)
        order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            width = max(len(sequences[i]) for i in rows)
            ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for r, i in enumerate(rows):  # left padding: every row's last token is its own
                seq = sequences[i]
                ids[r, width - len(seq):] = torch.tensor(seq, dtype=torch.long)
                mask[r, width - len(seq):] = 1
            ids, mask = ids.to(self.device), mask.to(self.device)
            positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
            logits = self.model(input_ids=ids, attention_mask=mask, position_ids=positions,
                                logits_to_keep=1).logits[:, -1, list(self.letters)]
            p_a = torch.softmax(logits.float(), dim=-1)[:, 0].cpu().tolist()
            for r, i in enumerate(rows):
                out[i] = p_a[r]
        return out

    def compare(self, prompts: Sequence[Prompt], firsts: Sequence[str],
                seconds: Sequence[str]) -> Verdicts:
        """Judge each (prompt, first, second) in both orders."""
        n = len(prompts)
        if not n:
            return Verdicts([], [])
        sequences = [self.encode(p, a, b) for p, a, b in zip(prompts, firsts, seconds, strict=True)]
        sequences += [self.encode(p, b, a) for p, a, b in zip(prompts, firsts, seconds, strict=True)]
        p_a = self.p_first_letter(sequences)
        as_first, as_second = p_a[:n], [1.0 - p for p in p_a[n:]]
        return Verdicts([(x + y) / 2 for x, y in zip(as_first, as_second)],
                        [(x >= 0.5) == (y >= 0.5) for x, y in zip(as_first, as_second)])

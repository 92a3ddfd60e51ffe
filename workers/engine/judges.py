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
ELLIPSIS = " [...] "  # where a long piece was cut: its start and its end are kept
MIN_PIECE_TOKENS = 16  # the least each of request and responses keeps; less cannot be judged


def request_text(prompt: Prompt) -> str:
    """The request as the judge reads it: the text, or the conversation one turn a line."""
    if isinstance(prompt, str):
        return prompt
    return "\n".join(f"{m.get('role', 'user')}: {m.get('content', '')}" for m in prompt)


def judge_message(request: str, first: str, second: str, criteria: str) -> str:
    """The user message the judge answers with one letter."""
    return (f"Compare two responses to the same request.\n\n[Request]\n{request}\n\n"
            f"[Response A]\n{first}\n\n[Response B]\n{second}\n\n{criteria}\n"
            "Answer with one letter: A or B.")


def _single_token(tokenizer, text: str) -> int | None:
    ids = tokenizer.encode(text, add_special_tokens=False)
    if len(ids) != 1 or (ids[0] == tokenizer.unk_token_id and tokenizer.unk_token != text):
        return None
    return ids[0]


def letter_ids(tokenizer, *, after_colon: bool = False) -> tuple[int, int]:
    """The token ids the judge's answer is read from: 'A' and 'B' at the start of an assistant
    turn; after a plain-text "Answer:", ' A' and ' B' where those are single tokens (as in
    BPE vocabularies), else 'A' and 'B'. ModelLoadError when the letters are no tokens."""
    if after_colon:
        spaced = (_single_token(tokenizer, " A"), _single_token(tokenizer, " B"))
        if None not in spaced and spaced[0] != spaced[1]:
            return spaced[0], spaced[1]
    out = []
    for letter in ("A", "B"):
        token = _single_token(tokenizer, letter)
        if token is None:
            raise ModelLoadError(f"the judge's tokenizer has no single token for {letter!r}; a "
                                 "pairwise judge answers 'A' or 'B', one token each")
        out.append(token)
    return out[0], out[1]


def piece_budgets(lengths: Sequence[int], total: int) -> list[int]:
    """Split ``total`` tokens among pieces of ``lengths``: a piece that fits keeps all of it
    and leaves the rest to the others, which share it equally (so two long responses are cut
    to the same length)."""
    budgets = [0] * len(lengths)
    left, open_ = total, sorted(range(len(lengths)), key=lambda i: lengths[i])
    while open_:
        share = left // len(open_)
        i = open_[0]
        if lengths[i] <= share:
            budgets[i] = lengths[i]
            left -= lengths[i]
            open_.pop(0)
            continue
        for j in open_:
            budgets[j] = share
        break
    return budgets


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
        self.chat = bool(getattr(tokenizer, "chat_template", None))
        self.letters = letter_ids(tokenizer, after_colon=not self.chat)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        # What the template and instructions take, less two tokens of slack per piece for
        # retokenising the cut texts.
        self.room = max_tokens - len(self._ids(judge_message("", "", "", criteria))) - 3 * (
            len(self._tokens(ELLIPSIS)) + 2)
        if self.room < 3 * MIN_PIECE_TOKENS:
            raise ModelLoadError(f"max_tokens {max_tokens} leaves {max(self.room, 0)} tokens for the "
                                 "request and both responses once the judge's instructions are "
                                 f"in; give at least {max_tokens - self.room + 3 * MIN_PIECE_TOKENS}")

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _tokens(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def _ids(self, message: str) -> list[int]:
        if self.chat:
            ids = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": message}], add_generation_prompt=True, tokenize=True)
            if isinstance(ids, dict) or hasattr(ids, "input_ids"):  # a BatchEncoding
                ids = ids["input_ids"]
            return list(ids)
        return self.tokenizer.encode(message + "\nAnswer:", add_special_tokens=True)

    def _cut(self, ids: list[int], budget: int) -> str:
        if len(ids) <= budget:
            return self.tokenizer.decode(ids)
        head = budget // 2
        return self.tokenizer.decode(ids[:head]) + ELLIPSIS + self.tokenizer.decode(ids[len(ids) - (budget - head):])

    def encode(self, prompt: Prompt, first: str, second: str) -> list[int]:
        """Token ids of the judge's input, ending where the answer letter comes. When the
        request and the responses do not fit in ``max_tokens``, each long one keeps its start
        and its end, the responses cut to the same length; the labels and the instructions
        always stay."""
        pieces = [self._tokens(request_text(prompt)), self._tokens(first), self._tokens(second)]
        budgets = piece_budgets([len(p) for p in pieces], self.room)
        texts = [self._cut(ids, budget) for ids, budget in zip(pieces, budgets)]
        ids = self._ids(judge_message(*texts, self.criteria))
        return ids[-self.max_tokens:]  # only if retokenising the cut texts ran over the slack

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

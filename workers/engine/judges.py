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
from .stopping import check_stop

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


class _LMJudge:
    """A causal LM (eval mode, no gradients) whose answer is read off its next token: the
    probability of the first of two answer tokens against the second."""

    def __init__(self, model, tokenizer, *, max_tokens: int, batch_size: int):
        self.model, self.tokenizer = model, tokenizer
        self.max_tokens, self.batch_size = max_tokens, batch_size
        self.chat = bool(getattr(tokenizer, "chat_template", None))
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def _room(self, empty_message: str, pieces: int) -> int:
        """Tokens left for ``pieces`` texts once the template and instructions are in, less two
        tokens of slack per piece for retokenising cut texts; ModelLoadError when too few."""
        room = self.max_tokens - len(self._ids(empty_message)) - pieces * (len(self._tokens(ELLIPSIS)) + 2)
        if room < pieces * MIN_PIECE_TOKENS:
            raise ModelLoadError(f"max_tokens {self.max_tokens} leaves {max(room, 0)} tokens for the "
                                 "request and the responses once the judge's instructions are in; "
                                 f"give at least {self.max_tokens - room + pieces * MIN_PIECE_TOKENS}")
        return room

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

    def _fit(self, texts: Sequence[str], room: int) -> list[str]:
        """The texts cut to share ``room`` tokens (``piece_budgets``), each keeping both ends."""
        pieces = [self._tokens(t) for t in texts]
        return [self._cut(ids, budget) for ids, budget in zip(pieces, piece_budgets([len(p) for p in pieces], room))]

    @torch.no_grad()
    def p_first_choice(self, sequences: Sequence[list[int]], choices: tuple[int, int]) -> list[float]:
        """P(choices[0]) / (P(choices[0]) + P(choices[1])) after each sequence, in batches of
        similar length."""
        out = [0.0] * len(sequences)
        order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
        for start in range(0, len(order), self.batch_size):
            check_stop()
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
                                logits_to_keep=1).logits[:, -1, list(choices)]
            p_first = torch.softmax(logits.float(), dim=-1)[:, 0].cpu().tolist()
            for r, i in enumerate(rows):
                out[i] = p_first[r]
        return out


class PairwiseJudge(_LMJudge):
    """Judge pairs of responses to a request: which is better, read as P('A') against P('B')."""

    def __init__(self, model, tokenizer, *, criteria: str = DEFAULT_CRITERIA,
                 max_tokens: int = 2048, batch_size: int = 16):
        super().__init__(model, tokenizer, max_tokens=max_tokens, batch_size=batch_size)
        self.criteria = criteria
        self.letters = letter_ids(tokenizer, after_colon=not self.chat)
        self.room = self._room(judge_message("", "", "", criteria), 3)

    def encode(self, prompt: Prompt, first: str, second: str) -> list[int]:
        """Token ids of the judge's input, ending where the answer letter comes. When the
        request and the responses do not fit in ``max_tokens``, each long one keeps its start
        and its end, the responses cut to the same length; the labels and the instructions
        always stay."""
        texts = self._fit([request_text(prompt), first, second], self.room)
        ids = self._ids(judge_message(*texts, self.criteria))
        return ids[-self.max_tokens:]  # only if retokenising the cut texts ran over the slack

    def p_first_letter(self, sequences: Sequence[list[int]]) -> list[float]:
        """P('A') / (P('A') + P('B')) after each sequence."""
        return self.p_first_choice(sequences, self.letters)

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


def criterion_message(request: str, response: str, criterion: str, description: str) -> str:
    """The user message a criterion judge answers with Yes or No."""
    rule = f"{criterion}: {description}" if description else criterion
    return (f"Judge one response to a request against one criterion.\n\n[Request]\n{request}\n\n"
            f"[Response]\n{response}\n\n[Criterion]\n{rule}\n\n"
            "Does the response meet the criterion? Answer Yes or No.")


def yes_no_ids(tokenizer, *, after_colon: bool = False) -> tuple[int, int]:
    """The token ids a criterion judge's answer is read from: 'Yes' and 'No' (' Yes' and ' No'
    after a plain-text "Answer:" where those are single tokens), else 'Y' and 'N'."""
    spellings = ([(" Yes", " No")] if after_colon else []) + [("Yes", "No"), ("Y", "N")]
    for yes, no in spellings:
        ids = (_single_token(tokenizer, yes), _single_token(tokenizer, no))
        if None not in ids and ids[0] != ids[1]:
            return ids[0], ids[1]
    raise ModelLoadError("the judge's tokenizer has no single token for 'Yes' and 'No' (nor 'Y' "
                         "and 'N'); a criterion judge answers with one of them")


class CriterionJudge(_LMJudge):
    """Judge each response against each criterion on its own: P('Yes') against P('No')."""

    def __init__(self, model, tokenizer, *, max_tokens: int = 2048, batch_size: int = 16):
        super().__init__(model, tokenizer, max_tokens=max_tokens, batch_size=batch_size)
        self.answers = yes_no_ids(tokenizer, after_colon=not self.chat)
        self._rooms: dict[tuple[str, str], int] = {}

    def encode(self, prompt: Prompt, response: str, criterion: str, description: str = "") -> list[int]:
        """Token ids of the judge's input, ending where Yes or No comes; a long request or
        response keeps its start and its end, the criterion and the instructions always stay."""
        key = (criterion, description)
        if key not in self._rooms:
            self._rooms[key] = self._room(criterion_message("", "", criterion, description), 2)
        request, shown = self._fit([request_text(prompt), response], self._rooms[key])
        return self._ids(criterion_message(request, shown, criterion, description))[-self.max_tokens:]

    def scores(self, prompts: Sequence[Prompt], responses: Sequence[str],
               criteria: Sequence[tuple[str, str]]) -> list[list[float]]:
        """P(the response meets the criterion), [response][criterion]: (name, description) each."""
        sequences = [self.encode(p, r, name, description)
                     for p, r in zip(prompts, responses, strict=True) for name, description in criteria]
        flat = self.p_first_choice(sequences, self.answers)
        m = len(criteria)
        return [flat[i * m:(i + 1) * m] for i in range(len(responses))]

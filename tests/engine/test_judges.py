"""A causal LM as a pairwise judge, and the tournament reward built on it."""

import math
from types import SimpleNamespace

import pytest
import torch

from workers.engine import rewards as rewards_module
from workers.engine.config import TrainConfig
from workers.engine.errors import ConfigError, ModelLoadError
from workers.engine.judges import (CriterionJudge, PairwiseJudge, judge_message, letter_ids, piece_budgets,
                                   request_text, yes_no_ids)
from workers.engine.rewards import rubric_judge_with_metrics, tournament_with_metrics, validate_reward_params
from workers.engine.tiny import build_tiny_policy

ALPHABET = None  # printable ASCII: the stub reads the judge prompt back


@pytest.fixture(scope="module")
def tiny_judge():
    model, tokenizer = build_tiny_policy(hidden_size=32, num_layers=1, num_heads=2,
                                         intermediate_size=64, max_position_embeddings=1024,
                                         alphabet=ALPHABET, seed=3)
    return PairwiseJudge(model.eval(), tokenizer, batch_size=3)


class ContentStub(torch.nn.Module):
    """A judge model that prefers the response holding "good", and otherwise says "A"
    (position bias): enough to see verdicts, consistency and both orders at work."""

    def __init__(self, tokenizer):
        super().__init__()
        self.tokenizer = tokenizer
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.vocab = len(tokenizer)

    def forward(self, input_ids, attention_mask, position_ids, logits_to_keep):
        a, b = letter_ids(self.tokenizer)
        logits = torch.zeros(input_ids.shape[0], 1, self.vocab)
        for row, ids in enumerate(input_ids):
            text = self.tokenizer.decode(ids[attention_mask[row].bool()])
            first = text.split("[Response A]")[1].split("[Response B]")[0]
            second = text.split("[Response B]")[1]
            if "good" in first and "good" not in second:
                logits[row, 0, a] = 5.0
            elif "good" in second and "good" not in first:
                logits[row, 0, b] = 5.0
            else:
                logits[row, 0, a] = 2.0
        return SimpleNamespace(logits=logits)


@pytest.fixture
def stub_judge(tiny_judge):
    return PairwiseJudge(ContentStub(tiny_judge.tokenizer), tiny_judge.tokenizer, batch_size=4)


def test_the_judge_reads_the_request_both_responses_and_the_criteria():
    text = judge_message(request_text([{"role": "system", "content": "be brief"}, {"role": "user", "content": "2+2?"}]),
                         "four", "4", "Prefer digits.")
    assert "system: be brief\nuser: 2+2?" in text
    assert text.index("[Response A]\nfour") < text.index("[Response B]\n4") < text.index("Prefer digits.")


def test_both_orders_are_judged_so_swapping_the_pair_mirrors_the_verdict(tiny_judge):
    forward = tiny_judge.compare(["q?", "r?"], ["ab", "dog"], ["ba.", "cat"])
    backward = tiny_judge.compare(["q?", "r?"], ["ba.", "cat"], ["ab", "dog"])
    assert all(0.0 <= p <= 1.0 for p in forward.first_better)
    assert forward.first_better == pytest.approx([1 - p for p in backward.first_better], abs=1e-6)
    assert forward.consistent == backward.consistent


def test_a_verdict_does_not_depend_on_the_batch_it_is_judged_in(tiny_judge):
    alone = tiny_judge.compare(["q?"], ["ab"], ["ba"]).first_better
    batched = tiny_judge.compare(["q?", "a much longer request here?", "x"],
                                 ["ab", "some other response text", "y"],
                                 ["ba", "and a long rival response.", "z"]).first_better
    assert batched[0] == pytest.approx(alone[0], abs=1e-5)


def test_long_inputs_keep_the_labels_the_instructions_and_both_ends_of_each_piece(tiny_judge):
    judge = PairwiseJudge(tiny_judge.model, tiny_judge.tokenizer, max_tokens=400)
    request, first, second = "Q" + "q" * 500 + "?", "A1" + "a" * 900 + "END1", "B2" + "b" * 900 + "END2"
    ids = judge.encode(request, first, second)
    assert len(ids) <= 400
    text = judge.tokenizer.decode(ids)
    for kept in ("[Request]\nQq", "q?", "[Response A]\nA1a", "aEND1", "[Response B]\nB2b", "bEND2",
                 judge.criteria, "Answer with one letter"):
        assert kept in text
    # the two responses are cut to the same length, so neither is judged on more of itself
    shown_a = text.split("[Response A]\n")[1].split("\n\n[Response B]")[0]
    shown_b = text.split("[Response B]\n")[1].split("\n\n")[0]
    assert shown_a.count("a") == shown_b.count("b") > 20 and "[...]" in shown_a and "[...]" in shown_b
    short = judge.encode("q?", "ab", "ba")  # what fits is left whole
    assert "[Request]\nq?\n\n[Response A]\nab\n\n[Response B]\nba\n" in judge.tokenizer.decode(short)


def test_piece_budgets_leave_what_a_short_piece_does_not_need_to_the_others():
    assert piece_budgets([10, 500, 700], 310) == [10, 150, 150]
    assert piece_budgets([10, 20, 30], 310) == [10, 20, 30]
    assert piece_budgets([400, 90, 500], 300) == [105, 90, 105]


def test_a_max_tokens_too_small_for_the_instructions_is_refused(tiny_judge):
    with pytest.raises(ModelLoadError, match="max_tokens 200 leaves"):
        PairwiseJudge(tiny_judge.model, tiny_judge.tokenizer, max_tokens=200)


def test_a_judge_without_a_chat_template_answers_after_answer_colon(tiny_judge):
    model, tokenizer = build_tiny_policy(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64,
                                         max_position_embeddings=1024, seed=3)
    tokenizer.chat_template = None
    judge = PairwiseJudge(model.eval(), tokenizer)
    assert tokenizer.decode(judge.encode("q?", "ab", "ba")).endswith("A or B.\nAnswer:")
    # one character per token here, so " A" is two tokens: the bare letters are read
    assert judge.letters == letter_ids(tokenizer)
    verdicts = judge.compare(["q?"], ["ab"], ["ba"])
    assert 0.0 <= verdicts.first_better[0] <= 1.0


def test_a_judge_whose_tokenizer_lacks_the_letters_is_refused():
    model, tokenizer = build_tiny_policy(hidden_size=32, num_layers=1, num_heads=2,
                                         intermediate_size=64, alphabet="ab")
    with pytest.raises(ModelLoadError, match="no single token for 'A'"):
        PairwiseJudge(model, tokenizer)


def test_both_orders_cancel_position_bias_and_keep_real_preferences(stub_judge):
    verdicts = stub_judge.compare(["q?", "q?"], ["a good one", "meh"], ["meh", "also meh"])
    assert verdicts.first_better[0] > 0.99 and verdicts.consistent[0]
    # "A" every time whatever the content: no preference once both orders are averaged
    assert verdicts.first_better[1] == pytest.approx(0.5) and not verdicts.consistent[1]


def tournament_params(**extra):
    return validate_reward_params("tournament", {"judge": {"source": "tiny"}, **extra})


def test_the_tournament_reward_ranks_each_group_with_its_judge(stub_judge, monkeypatch):
    monkeypatch.setattr(rewards_module, "_load_judge", lambda *a: stub_judge)
    completions = ["meh", "good", "meh.", "bad", "good", "x", "y", "z"]
    values, extras = tournament_with_metrics(["p?"] * 4 + ["q?"] * 4, completions, ["r"] * 8,
                                             **tournament_params(), group_size=4)
    assert values[1] == 1.0 and values[4] == 1.0  # each group's "good" completion wins
    assert extras["judgements"] == 2 * (4 + 3)  # seeding against the reference, then 3 matches
    assert 0.0 <= extras["judge_consistency"] <= 1.0
    good = 1 / (1 + math.exp(-5.0))  # the stub's logit gap: P("good" beats the reference)
    assert extras["beats_reference"] == pytest.approx((2 * good + 6 * 0.5) / 8)


def test_without_an_anchor_the_bracket_is_seeded_in_sampling_order(stub_judge, monkeypatch):
    monkeypatch.setattr(rewards_module, "_load_judge", lambda *a: stub_judge)
    values, extras = tournament_with_metrics(["p?"] * 4, ["meh", "so so", "good", "bad"],
                                             [None] * 4, **tournament_params(), group_size=4)
    assert values[2] == 1.0
    assert extras["judgements"] == 3 and "beats_reference" not in extras


def test_groups_without_a_reference_are_seeded_in_sampling_order(stub_judge, monkeypatch):
    monkeypatch.setattr(rewards_module, "_load_judge", lambda *a: stub_judge)
    values, extras = tournament_with_metrics(["p?"] * 4 + ["q?"] * 4,
                                             ["meh", "good", "x", "y", "good", "x", "y", "z"],
                                             [None] * 4 + ["r"] * 4, **tournament_params(), group_size=4)
    assert values[1] == 1.0 and values[4] == 1.0
    assert extras["judgements"] == 3 + (4 + 3)  # only the second group is seeded against its reference
    good = 1 / (1 + math.exp(-5.0))
    assert extras["beats_reference"] == pytest.approx((good + 3 * 0.5) / 4)


def test_the_tournament_needs_a_valid_judge_and_groups():
    with pytest.raises(ConfigError) as exc:
        TrainConfig.from_dict({"rewards": [{"name": "tournament", "judge": {"source": "bogus"}}]})
    assert exc.value.field == "rewards[0].judge.source"
    with pytest.raises(ConfigError, match="reward 'tournament' needs 'judge'"):
        TrainConfig.from_dict({"rewards": [{"name": "tournament"}]})
    with pytest.raises(ConfigError) as exc:
        TrainConfig.from_dict({"rewards": [{"name": "tournament", "judge": {"source": "tiny"},
                                            "criteria": "  "}]})
    assert exc.value.field == "rewards[0].criteria"
    with pytest.raises(ConfigError) as exc:
        TrainConfig.from_dict({"rollout": {"greedy": True, "num_generations": 1},
                               "rewards": [{"name": "tournament", "judge": {"source": "tiny"}}]})
    assert exc.value.field == "rewards[0].name" and "at least 2" in exc.value.message


# ------------------------------------------------------------------ criteria judged one by one

class CriterionStub(torch.nn.Module):
    """Says Yes when the response holds the criterion's name in lower case, else No."""

    def __init__(self, tokenizer):
        super().__init__()
        self.tokenizer = tokenizer
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask, position_ids, logits_to_keep):
        yes, no = yes_no_ids(self.tokenizer)
        logits = torch.zeros(input_ids.shape[0], 1, len(self.tokenizer))
        for row, ids in enumerate(input_ids):
            text = self.tokenizer.decode(ids[attention_mask[row].bool()])
            response = text.split("[Response]\n")[1].split("\n\n[Criterion]")[0]
            criterion = text.split("[Criterion]\n")[1].split(":")[0].split("\n")[0]
            logits[row, 0, yes if criterion.lower() in response else no] = 4.0
        return SimpleNamespace(logits=logits)


@pytest.fixture
def criterion_judge(tiny_judge):
    return CriterionJudge(CriterionStub(tiny_judge.tokenizer), tiny_judge.tokenizer, batch_size=3)


def test_a_criterion_judge_reads_yes_against_no_for_each_criterion(criterion_judge):
    yes = 1 / (1 + math.exp(-4.0))
    scores = criterion_judge.scores(["q?", "q?"], ["correct and brief", "wordy"],
                                    [("Correct", "the answer is right"), ("Brief", "")])
    assert scores == [[pytest.approx(yes), pytest.approx(yes)], [pytest.approx(1 - yes), pytest.approx(1 - yes)]]


def test_the_criterion_judge_falls_back_to_y_and_n(tiny_judge):
    # one character a token: "Yes" is three tokens here, so the judge reads "Y" against "N"
    assert yes_no_ids(tiny_judge.tokenizer) == (tiny_judge.tokenizer.convert_tokens_to_ids("Y"),
                                                tiny_judge.tokenizer.convert_tokens_to_ids("N"))


def test_the_rubric_judge_reward_weighs_its_criteria_and_probes_master_keys(criterion_judge, monkeypatch):
    monkeypatch.setattr(rewards_module, "_load_criterion_judge", lambda *a: criterion_judge)
    params = validate_reward_params("rubric_judge", {
        "judge": {"source": "tiny"}, "criteria": [{"name": "Correct", "weight": 3}, {"name": "Brief"}]})
    yes = 1 / (1 + math.exp(-4.0))
    values, extras = rubric_judge_with_metrics(["q?"] * 2 + ["r?"] * 2,
                                               ["correct", "brief", "correct, brief", "neither"],
                                               [None] * 4, **params, group_size=2)
    assert values == pytest.approx([(3 * yes + (1 - yes)) / 4, (3 * (1 - yes) + yes) / 4, yes, 1 - yes])
    assert extras["criteria/Correct"] == pytest.approx((2 * yes + 2 * (1 - yes)) / 4)
    assert extras["master_key"] == pytest.approx(1 - yes)  # ":" and "Thought process:" meet nothing here
    _, quiet = rubric_judge_with_metrics(["q?"], ["x"], [None], **{**params, "probes": False})
    assert "master_key" not in quiet


@pytest.mark.parametrize("criteria, words", [
    ([], "at least one criterion"),
    ([{"name": " "}], "needs a 'name'"),
    ([{"name": "a", "weight": 0}], "'weight' must be a number > 0"),
    ([{"name": "a"}, {"name": "a"}], "two criteria are called 'a'"),
    ([{"name": "a", "score": 1}], "unknown key 'score'"),
])
def test_a_rubric_judges_criteria_are_checked(criteria, words):
    with pytest.raises(ConfigError) as exc:
        TrainConfig.from_dict({"rewards": [{"name": "rubric_judge", "judge": {"source": "tiny"},
                                            "criteria": criteria}]})
    assert exc.value.field == "rewards[0].criteria" and words in exc.value.message

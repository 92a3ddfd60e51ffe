"""How ``log_completions`` turns a trainer's prompts and completions into trajectory records
(no server: the records are read from the callback's buffer)."""

import steer_client


def records_of(prompts, completions):
    callback = steer_client.SteerCallback("http://127.0.0.1:9", "steer_x", project=1)
    callback.log_completions(2, prompts, completions, [1.0] * len(completions))
    return list(callback.records)


def test_a_conversational_completion_is_stored_as_the_assistants_words():
    """TRL's GRPOTrainer logs a chat prompt's completions as [{"role": "assistant", ...}]; the
    text an annotator ranks and a preference export hands to DPO is the answer, not "assistant: 4"."""
    prompt = [{"role": "user", "content": "2+2?"}]
    [record] = records_of([prompt], [[{"role": "assistant", "content": "4"}]])
    assert record["completion"] == "4"
    assert record["prompt"] == [{"role": "user", "content": "2+2?"}]  # kept as messages (was "user: 2+2?")


def test_a_chat_prompt_is_sent_as_messages_and_one_with_an_unknown_role_as_text():
    """The API keeps a chat prompt's messages, so tasks, pairs and exports stay conversational;
    a role Steer does not store (say "developer") would be refused, so that prompt goes as text."""
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?", "name": "ann"}]
    other = [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "2+2?"}]
    first, second, third = records_of([chat, chat, other], ["4", "5", "4"])
    assert first["prompt"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}]
    assert (first["group_index"], second["group_index"], second["sample_index"]) == (0, 0, 1)
    assert third["prompt"] == "developer: Be brief.\n\nuser: 2+2?" and third["group_index"] == 1


def test_a_completion_with_a_tool_turn_keeps_each_messages_role():
    turn = [{"role": "assistant", "content": "call add(2, 2)"}, {"role": "tool", "content": "4"},
            {"role": "assistant", "content": "4"}]
    [record] = records_of(["2+2?"], [turn])
    assert record["completion"] == "assistant: call add(2, 2)\n\ntool: 4\n\nassistant: 4"


def test_multimodal_content_parts_are_stored_as_their_text():
    """A message whose content is a list of parts (TRL's vision-language prompts) is its text,
    an image named by its type, not the Python repr of the list."""
    prompt = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is shown?"}]}]
    completion = [{"role": "assistant", "content": [{"type": "text", "text": "A cat."}]}]
    [record] = records_of([prompt], [completion])
    assert record["prompt"] == [{"role": "user", "content": "[image]\nWhat is shown?"}]
    assert record["completion"] == "A cat."


def test_a_plain_completion_is_stored_as_it_is():
    [record] = records_of(["2+2?"], [" 4"])
    assert (record["prompt"], record["completion"]) == ("2+2?", " 4")


def test_trl_completions_are_scored_with_the_trainers_reward_weights_and_none_left_out():
    """GRPOTrainer's reward is the nansum of each function's reward times ``reward_weights``;
    the trajectory's reward is the same number (an unweighted sum, or NaN from a function that
    returned None, made it a different one, or 0)."""
    import collections
    import types

    import torch

    # the two attributes of TRL's GRPOTrainer the callback reads
    trainer = types.SimpleNamespace(reward_weights=torch.tensor([1.0, 0.5]), _logs={
        "prompt": collections.deque(["2+2?", "2+2?"]), "completion": collections.deque(["4", "5"]),
        "rewards": {"exact": collections.deque([1.0, 1.0]), "judge": collections.deque([0.8, float("nan")])},
        "advantages": collections.deque([0.7, -0.7])})

    callback = steer_client.SteerCallback("http://127.0.0.1:9", "steer_x", project=1)
    callback.trainer = trainer
    callback._collect_trl_completions(3)
    records = list(callback.records)
    assert [r["reward"] for r in records] == [1.4, 1.0]
    assert records[0]["rewards"] == {"exact": 1.0, "judge": 0.8} and records[1]["rewards"] == {"exact": 1.0}
    assert [r["advantage"] for r in records] == [0.7, -0.7]


def test_a_reward_that_is_no_number_is_stored_as_0_with_one_warning(caplog):
    import logging

    callback = steer_client.SteerCallback("http://127.0.0.1:9", "steer_x", project=1)
    with caplog.at_level(logging.WARNING, logger="steer_client"):
        callback.log_completions(4, ["p"] * 4, ["a", "b", "c", "d"], [1.0, float("nan"), None, "x"])
    assert [r["reward"] for r in callback.records] == [1.0, 0.0, 0.0, 0.0]
    said = [r.getMessage() for r in caplog.records if "reward" in r.getMessage()]
    assert said == ["log_completions at step 4: completion 1's reward nan is not a finite number; it is "
                    "stored as 0.0 (later ones are too, without a word)"]

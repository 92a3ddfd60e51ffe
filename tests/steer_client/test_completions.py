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
    assert record["prompt"] == "user: 2+2?"


def test_a_completion_with_a_tool_turn_keeps_each_messages_role():
    turn = [{"role": "assistant", "content": "call add(2, 2)"}, {"role": "tool", "content": "4"},
            {"role": "assistant", "content": "4"}]
    [record] = records_of(["2+2?"], [turn])
    assert record["completion"] == "assistant: call add(2, 2)\n\ntool: 4\n\nassistant: 4"


def test_a_plain_completion_is_stored_as_it_is():
    [record] = records_of(["2+2?"], [" 4"])
    assert (record["prompt"], record["completion"]) == ("2+2?", " 4")

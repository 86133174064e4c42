"""Verifiers against rewards counted by hand: math-verify, reasoning-gym's scorer, the answer extraction, and any
TRL-style reward function; plus the TRL reward-function shape (names, keyword call, conversational completions)."""

from __future__ import annotations

import json
import pickle

import pytest

from hf_saerl.errors import HfSaerlError, InvalidParameterError, MissingColumnError
from hf_saerl.rollouts.verifiers import (
    MathVerifier,
    ReasoningGymVerifier,
    RewardFunctionVerifier,
    VerificationError,
    as_verifier,
    callable_identity,
    extract_final_answer,
)


def test_math_verifier_counted_by_hand():
    golds = ["9", "9", "9", "9", "\\frac{1}{2}", "0.5", "x^2+1", "-4", "72", "72"]
    completions = [
        "The answer is 9.",  # 1: plain statement
        "\\boxed{9}",  # 1: boxed
        "I think 7, no: \\boxed{9}",  # 1: boxed wins over an earlier number
        "nine",  # 0: no number
        "$0.5$",  # 1: 0.5 == 1/2
        "\\boxed{\\frac{1}{2}}",  # 1: 1/2 == 0.5
        "$x^2 + 1$",  # 1: same expression
        "-4",  # 1
        "\\boxed{73}",  # 0
        "",  # 0: empty
    ]
    by_hand = [1, 1, 1, 0, 1, 1, 1, 1, 0, 0]
    rewards = MathVerifier()(["q"] * len(golds), completions, answer=golds)
    assert rewards == [float(r) for r in by_hand]


def test_math_verifier_trl_shape_and_unparsable_reference(caplog):
    verify = MathVerifier(answer_column="solution")
    assert verify.__name__ == "math_verify" and verify.columns == ("solution",)
    conversational = [[{"role": "assistant", "content": "\\boxed{3}"}], [{"role": "assistant", "content": "4"}]]
    # TRL calls reward functions with keywords and extra columns
    assert verify(
        prompts=["a", "b"],
        completions=conversational,
        solution=["3", "3"],
        completion_ids=[[1], [2]],
        trainer_state=None,
    ) == [1.0, 0.0]
    assert verify(["a"], ["3"], solution=["???"]) == [None]  # a reference that does not parse: not scored
    assert "could not parse 1 reference answer" in caplog.text
    with pytest.raises(MissingColumnError, match=r"Missing column 'solution'.*found \['answer'\]"):
        verify(["a"], ["3"], answer=["3"])
    assert pickle.loads(pickle.dumps(verify)).config() == verify.config()


def test_extract_final_answer_rules():
    cases = {
        "<answer>7</answer> and later \\boxed{8}": "7",  # 1. the answer tag wins
        "first \\boxed{1}, then \\boxed{\\frac{2}{3}}": "\\frac{2}{3}",  # 2. the last boxed, braces balanced
        "So the final answer is: **42**.": "42",  # 3. after 'answer is'
        "Answer: x = 3\nbecause ...": "x = 3",  # 3. rest of that line
        "3 + 6 = 9, and 1,000 more": "1000",  # 4. the last number, thousands separator dropped
        "so -12 it is": "-12",
        "2/3 of it": "2/3",
        "  blue  ": "blue",  # 5. the whole text
    }
    assert {text: extract_final_answer(text) for text in cases} == cases


def test_reasoning_gym_verifier_against_its_own_scorer():
    import reasoning_gym

    tasks = list(reasoning_gym.create_dataset("basic_arithmetic", size=4, seed=3))
    score = reasoning_gym.get_score_answer_fn("basic_arithmetic")
    answers = [t["answer"] for t in tasks]
    completions = [
        f"<answer>{answers[0]}</answer>",
        f"The answer is {answers[1]}.",
        "I do not know",
        f"work... {answers[3]}",
    ]
    metadata = [json.dumps(t["metadata"], default=str) for t in tasks]
    rewards = ReasoningGymVerifier()(  # dataset=None: each row's metadata names its scorer
        [t["question"] for t in tasks], completions, answer=answers, metadata=metadata
    )
    by_hand = [
        score(answers[0], tasks[0]),
        score(answers[1], tasks[1]),
        score("I do not know", tasks[2]),
        score(answers[3], tasks[3]),
    ]
    assert rewards == by_hand == [1.0, 1.0, 0.0, 1.0]
    # without extraction, the scorer's strictness shows: a sentence around the answer scores < 1
    raw = ReasoningGymVerifier("basic_arithmetic", extract=None)(
        ["q"], [completions[1]], answer=[answers[1]], metadata=[metadata[1]]
    )
    assert 0 < raw[0] < 1 and raw[0] == score(completions[1], tasks[1])
    custom = ReasoningGymVerifier("basic_arithmetic", extract=lambda text: text.split("=")[-1].strip())
    assert custom(["q"], [f"x = {answers[2]}"], answer=[answers[2]], metadata=["{}"]) == [1.0]


def test_reasoning_gym_verifier_errors():
    with pytest.raises(InvalidParameterError, match="metadata_column"):
        ReasoningGymVerifier(None, metadata_column=None)
    with pytest.raises(InvalidParameterError, match="reasoning-gym dataset name"):
        ReasoningGymVerifier(3.5)
    with pytest.raises(InvalidParameterError, match="no 'source_dataset'"):
        ReasoningGymVerifier()(["q"], ["1"], answer=["1"], metadata=["{}"])
    with pytest.raises(InvalidParameterError, match="not registered"):
        ReasoningGymVerifier("no_such_task")(["q"], ["1"], answer=["1"], metadata=["{}"])
    with pytest.raises(InvalidParameterError, match="not JSON"):
        ReasoningGymVerifier()(["q"], ["1"], answer=["1"], metadata=["{oops"])
    v = ReasoningGymVerifier("basic_arithmetic")
    assert v.columns == ("answer",)  # a named dataset needs no metadata column
    assert v(["q"], ["5"], answer=["5"]) == [1.0]
    again = pickle.loads(pickle.dumps(v))
    assert again(["q"], ["5"], answer=["5"]) == [1.0]


def test_reward_function_verifier_threshold_and_checks():
    seen = {}

    def graded(prompts, completions, answer, **kwargs):
        seen.update(kwargs)
        return [0.25 * len(c) for c in completions]

    v = RewardFunctionVerifier(graded, threshold=0.5, columns=["answer"])
    rewards = v(["q"] * 3, ["a", "ab", "abc"], answer=["x"] * 3, level=[1, 2, 3])
    assert rewards == [0.25, 0.5, 0.75]
    assert [v.is_correct(r) for r in rewards] == [False, True, True]
    assert seen == {"level": [1, 2, 3]} and v.__name__ == "graded"
    with pytest.raises(MissingColumnError, match="answer"):
        v(["q"], ["a"], level=[1])
    with pytest.raises(VerificationError, match="returned 1 rewards for 2 completions"):
        RewardFunctionVerifier(lambda prompts, completions, **kw: [1.0])(["q"] * 2, ["a", "b"])
    with pytest.raises(VerificationError, match="non-finite"):
        RewardFunctionVerifier(lambda prompts, completions, **kw: [float("nan")])(["q"], ["a"])
    with pytest.raises(VerificationError, match="not a list of numbers"):
        RewardFunctionVerifier(lambda prompts, completions, **kw: ["yes"])(["q"], ["a"])
    assert issubclass(VerificationError, HfSaerlError)
    with pytest.raises(InvalidParameterError):
        RewardFunctionVerifier("not callable")


def test_as_verifier_and_identity():
    assert isinstance(as_verifier("math"), MathVerifier)
    assert isinstance(as_verifier("reasoning-gym"), ReasoningGymVerifier)
    wrapped = as_verifier(lambda prompts, completions, **kw: [1.0] * len(completions))
    assert isinstance(wrapped, RewardFunctionVerifier) and wrapped.threshold == 1.0
    with pytest.raises(InvalidParameterError, match="Unknown verifier 'regex'"):
        as_verifier("regex")

    def f(prompts, completions, **kw):
        return [1.0]

    def g(prompts, completions, **kw):
        return [0.0]

    assert callable_identity(f) == callable_identity(f) != callable_identity(g)
    assert MathVerifier().fingerprint == MathVerifier().fingerprint != MathVerifier(threshold=0.5).fingerprint


def test_verifiers_are_trl_reward_functions():
    """TRL names a reward function by ``__name__`` and calls it with keywords plus trainer extras."""
    from trl.trainer.utils import get_callable_name, is_async_callable

    for verifier, name in [
        (MathVerifier(), "math_verify"),
        (ReasoningGymVerifier("basic_arithmetic"), "reasoning_gym"),
        (RewardFunctionVerifier(lambda prompts, completions, **kw: [0.0] * len(completions), name="zero"), "zero"),
    ]:
        assert get_callable_name(verifier) == name and not is_async_callable(verifier)
        rewards = verifier(
            prompts=["2+2?"],
            completions=[[{"role": "assistant", "content": "<answer>4</answer>"}]],
            completion_ids=[[1, 2]],
            answer=["4"],
            trainer_state=None,
            log_extra=None,
            log_metric=None,
        )
        assert len(rewards) == 1

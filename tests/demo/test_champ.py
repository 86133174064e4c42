"""CHAMP loaders and the datasets built on them (needs ``champ-dataset``); the grader is tested in test_grading.py."""

import json
import re
from collections import Counter

import pytest

pytest.importorskip("champ_dataset")

from hf_saerl.demo.champ import (
    CHAMP_CATEGORIES,
    CHAMP_PROMPT,
    MIN_GRADABLE,
    champ_json_path,
    champ_preference_pairs,
    corrupt_problems,
    load_champ,
    load_champ_attempts,
    load_champ_texts,
)
from hf_saerl.demo.grading import parse_reference


@pytest.fixture(scope="module")
def raw():
    with open(champ_json_path(), encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def problems():
    return load_champ()


@pytest.fixture(scope="module")
def attempts():
    return load_champ_attempts()


# ----------------------------------------------------------------------------------- problems


def test_load_champ_counts_and_columns(problems):
    assert problems.num_rows == 270
    assert Counter(problems["category"]) == {
        "Combinatorics": 40,
        "Inequality": 50,
        "Number-Theory": 80,
        "Polynomial": 50,
        "Sequence": 50,
    }
    assert set(problems["category"]) == set(CHAMP_CATEGORIES)
    assert len(set(problems["problem_id"])) == 270
    assert set(problems["n_attempts"]) == {72}
    assert problems.features["pass_rate"].dtype == "float32"
    assert problems.features["n_gradable"].dtype == "int32"
    for row in problems:
        assert "@@" not in row["problem"] + row["answer"] + row["solution"]
        assert row["solution"].startswith("1. ")
        assert 0 <= row["n_correct"] <= row["n_gradable"] <= row["n_attempts"]
        if row["pass_rate"] is None:
            assert not row["answer_gradable"] or row["n_gradable"] < MIN_GRADABLE
        else:
            assert row["answer_gradable"] and row["n_gradable"] >= MIN_GRADABLE
            assert row["pass_rate"] == pytest.approx(row["n_correct"] / row["n_gradable"])


def test_pass_rates_cover_most_gradable_problems_and_spread(problems):
    rates = [r for r in problems["pass_rate"] if r is not None]
    assert sum(problems["answer_gradable"]) == 180
    assert len(rates) >= 160
    assert 0.3 < sum(rates) / len(rates) < 0.5
    assert sum(0.2 <= r <= 0.8 for r in rates) >= 80  # enough spread to train a difficulty proxy
    # yes/no answers are never graded
    for row in problems.filter(lambda r: r["answer"] in ("Yes", "No")):
        assert row["pass_rate"] is None and row["n_gradable"] == 0


def _independent_grade(summary: str, reference: int):
    """A deliberately simple rule, written separately: the integer right after "is"/"are"."""
    plain = re.sub(r"\$|\\\(|\\\)|\\boxed\{|\}", "", summary)
    numbers = re.findall(r"\b(?:is|are)\s+(-?\d+)(?![\d/^.]\d|[\d/^])", plain)
    return int(numbers[0]) == reference if len(set(numbers)) == 1 else None


@pytest.mark.parametrize("pid", ["P_Combinatorics_38", "P_Inequality_26", "P_Number-Theory_22", "P_Sequence_19"])
def test_pass_rate_matches_an_independent_computation(raw, problems, attempts, pid):
    problem = raw["problems"][pid]
    reference = int(problem["_answer"])
    expected = []
    for key, conversation in problem["conversations"].items():
        response, summary = conversation["messages"][-3], conversation["messages"][-1]
        truncated = response["error"] is not None or summary["error"] is not None
        expected.append((key, None if truncated else _independent_grade(summary["text"], reference)))
    ours = attempts.filter(lambda r: r["problem_id"] == pid)
    assert [(f"{r['model']}|{r['setting']}", r["correct"]) for r in ours] == expected
    row = problems[problems["problem_id"].index(pid)]
    n_gradable = sum(v is not None for _, v in expected)
    n_correct = sum(v is True for _, v in expected)
    assert (row["n_gradable"], row["n_correct"]) == (n_gradable, n_correct)
    assert 0 < n_correct < n_gradable
    assert row["pass_rate"] == pytest.approx(n_correct / n_gradable)


def test_grades_agree_with_champs_first_wrong_step_annotations(raw, attempts):
    """Solutions that CHAMP's annotators found free of mistakes should be graded correct."""
    verdicts = Counter(
        r["correct"]
        for r in attempts
        if r["mistake_free"] and parse_reference(raw["problems"][r["problem_id"]]["_answer"])
    )
    # one disagreement, P_Combinatorics_37 (GPT-4, "Direct C w/ H"): the response ends in
    # n(n+1)(2n+1)/6 - 1, which is wrong; the annotation missed the "- 1".
    assert verdicts[True] >= 55 and verdicts[False] <= 1


# ----------------------------------------------------------------------------------- attempts


def test_attempts(attempts, raw):
    assert attempts.num_rows == 270 * 72
    assert set(Counter(attempts["problem_id"]).values()) == {72}
    assert Counter(attempts["model"]) == {m: 270 * 18 for m in ("GPT-3.5", "GPT-4", "GPT-4 Turbo", "PaLM 2 Medium")}
    assert len(set(attempts["setting"])) == 18
    truncated = attempts.filter(lambda r: r["truncated"])
    assert truncated.num_rows == 261
    assert set(truncated["summary"]) == {None} and set(truncated["correct"]) == {None}
    assert sum(v is not None for v in attempts["mistake_free"]) == 2 * 270
    first = attempts[0]
    assert (first["model"], first["setting"]) == ("GPT-3.5", "0-Shot")
    assert first["prompt"] == CHAMP_PROMPT.format(problem=raw["problems"]["P_Combinatorics_1"]["_text"])
    assert first["summary"].startswith("There are 29 valid strings") and first["correct"] is False


# ------------------------------------------------------------------------- quality negatives


def test_texts_and_corruptions_concatenate(problems):
    from datasets import concatenate_datasets

    texts = load_champ_texts()
    assert Counter(texts["kind"]) == {"hint": 456, "concept": 89}
    assert all(t.strip() for t in texts["text"])
    corrupted = corrupt_problems(problems, seed=0)
    assert texts.features == corrupted.features
    assert concatenate_datasets([texts, corrupted]).num_rows == texts.num_rows + corrupted.num_rows


def test_corrupt_problems(problems):
    corrupted = corrupt_problems(problems, seed=0)
    assert Counter(corrupted["kind"]) == {"shuffled_words": 270, "truncated": 270}
    text_of = dict(zip(problems["problem_id"], problems["problem"], strict=True))
    for row in corrupted:
        words, original = row["text"].split(), text_of[row["source_id"]].split()
        if row["kind"] == "shuffled_words":
            assert sorted(words) == sorted(original) and words != original
        else:
            assert 0 < len(words) < len(original) and words == original[: len(words)]
    assert corrupt_problems(problems, seed=0)["text"] == corrupted["text"]
    assert corrupt_problems(problems, seed=1)["text"] != corrupted["text"]
    with pytest.raises(ValueError, match="Unknown corruption"):
        corrupt_problems(problems, kinds=("reversed",))


# -------------------------------------------------------------------------- preference pairs


def test_preference_pairs_invariants(attempts, raw):
    graded = {(r["problem_id"], f"{r['model']}|{r['setting']}"): r for r in attempts}
    pairs = champ_preference_pairs(seed=0)
    assert pairs.num_rows >= 100
    assert len(set(pairs["problem_id"])) == pairs.num_rows  # one pair per problem
    for pair in pairs:
        problem = raw["problems"][pair["problem_id"]]
        assert pair["prompt"] == CHAMP_PROMPT.format(problem=problem["_text"])
        assert pair["category"] == problem["category"]
        rejected = graded[(pair["problem_id"], pair["rejected_source"])]
        assert rejected["correct"] is False and rejected["response"] == pair["rejected"]
        assert rejected["setting"] in ("0-Shot", "5-Shot", "No C w/o H")
        if pair["chosen_source"] == "reference":
            assert pair["chosen"].startswith("1. ")
        else:
            chosen = graded[(pair["problem_id"], pair["chosen_source"])]
            assert chosen["correct"] is True and chosen["mistake_free"] is not False
            assert chosen["response"] == pair["chosen"]
        assert pair["chosen"] != pair["rejected"]
    assert champ_preference_pairs(seed=0)["rejected"] == pairs["rejected"]
    assert champ_preference_pairs(seed=1)["rejected"] != pairs["rejected"]


def test_preference_pair_options():
    reference = champ_preference_pairs(seed=0, chosen_from="reference")
    assert set(reference["chosen_source"]) == {"reference"}
    several = champ_preference_pairs(seed=0, settings=None, pairs_per_problem=3)
    per_problem = Counter(several["problem_id"])
    assert max(per_problem.values()) == 3
    for pid in per_problem:
        rejected = several.filter(lambda r, pid=pid: r["problem_id"] == pid)["rejected_source"]
        assert len(set(rejected)) == len(rejected)
    with pytest.raises(ValueError, match="chosen_from"):
        champ_preference_pairs(chosen_from="best")

"""Pool calibration: per-config pass-rate tables checked against a scripted policy whose pass rates are known,
config parsing, seeding independent of order, saving, errors, and the tiny model end to end."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from hf_saerl.errors import InvalidParameterError, ParameterTypeError
from hf_saerl.rollouts import ReasoningGymVerifier, RolloutLabeller
from hf_saerl.rollouts.calibration import (
    PILOT_CONFIGS,
    TaskConfig,
    calibrate_pool,
    parse_task_config,
)

N = 6


def _solve(prompt: str) -> tuple[int, int, int]:
    """The two operands of a gcd or products prompt and the true answer (an independent solver)."""
    if "Greatest Common Divisor" in prompt:
        a, b = map(int, re.findall(r"\d+", prompt.split("numbers:")[1])[:2])
        return a, b, math.gcd(a, b)
    a, b = map(int, re.findall(r"(\d+) \* (\d+)", prompt)[0])
    return a, b, a * b


def _n_correct(prompt: str) -> int:
    """How many of the N samples the scripted policy answers right: (a + b) mod (N + 1), so 0..N all occur."""
    a, b, _ = _solve(prompt)
    return (a + b) % (N + 1)


class Scripted:
    """A policy whose completions are known: the true answer in the first ``_n_correct(prompt)`` samples, then a
    wrong one (the answer + 1), phrased as a sentence the verifier's extraction must read."""

    def __init__(self):
        self.calls = 0

    def generate(self, prompts, n, sampling, seeds=None):
        self.calls += 1
        out = []
        for p in prompts:
            answer, c = _solve(p)[2], _n_correct(p)
            out.append([f"The answer is {answer if j < c else answer + 1}." for j in range(n)])
        return out


def _labeller(backend=None, **kw):
    return RolloutLabeller(
        backend=backend or Scripted(),
        verifier=ReasoningGymVerifier(),
        sampling={"n": N},
        instruction=None,
        chat_template=False,
        keep_completions=True,
        progress=False,
        **kw,
    )


CONFIGS = ["gcd:max_value=20", "products:max_digits=1,min_digits=1"]


def test_the_table_matches_an_independent_count():
    result = calibrate_pool(_labeller(), CONFIGS, n_prompts_per_config=10, seed=3)
    assert [c.task.name for c in result.configs] == CONFIGS
    for config in result.configs:
        rows = [r for r in result.rows() if r["task"] == config.task.name]
        assert len(rows) == config.n_prompts == 10 and config.n_samples == N
        expected = np.array([_n_correct(r["prompt"]) for r in rows])
        assert [r["n_correct"] for r in rows] == expected.tolist()
        assert all(r["k"] == N and r["family"] == config.task.family for r in rows)
        rates = expected / N
        assert config.pass_rates == pytest.approx(rates.tolist())
        assert config.mean_pass_rate == pytest.approx(rates.mean())
        assert config.share_never == pytest.approx(np.mean(expected == 0))
        assert config.share_always == pytest.approx(np.mean(expected == N))
        assert config.share_in_band == pytest.approx(np.mean((rates >= 0.1) & (rates <= 0.9)))
        assert config.graded == bool(0.1 <= rates.mean() <= 0.9 and np.mean((rates >= 0.1) & (rates <= 0.9)) >= 0.25)
        assert config.tokens is None and config.share_truncated is None  # the scripted policy has no tokenizer
        assert config.share_empty == 0.0
    assert [t.name for t in result.graded] == [c.task.name for c in result.configs if c.graded]


def test_graded_needs_the_mean_and_the_spread_in_the_band():
    class AllRight(Scripted):
        def generate(self, prompts, n, sampling, seeds=None):
            return [[str(_solve(p)[2])] * n for p in prompts]

    class HalfRight(Scripted):  # every prompt at 3 of 6: in the band
        def generate(self, prompts, n, sampling, seeds=None):
            return [[str(_solve(p)[2] + (j % 2)) for j in range(n)] for p in prompts]

    easy = calibrate_pool(_labeller(AllRight()), CONFIGS[:1], 5)
    assert easy.configs[0].mean_pass_rate == 1.0 and easy.configs[0].share_always == 1.0 and not easy.graded
    half = calibrate_pool(_labeller(HalfRight()), CONFIGS[:1], 5)
    assert half.configs[0].mean_pass_rate == 0.5 and half.configs[0].share_in_band == 1.0
    assert [t.name for t in half.graded] == CONFIGS[:1]
    # the same labels with a band that excludes 0.5 grade nothing
    assert not calibrate_pool(_labeller(HalfRight()), CONFIGS[:1], 5, band=(0.6, 0.9)).graded
    # and a demand that every prompt be in the band still grades it
    assert calibrate_pool(_labeller(HalfRight()), CONFIGS[:1], 5, min_share_in_band=1.0).graded


def test_a_configs_prompts_do_not_depend_on_the_other_configs_or_their_order():
    forward = calibrate_pool(_labeller(), CONFIGS, 4, seed=1)
    backward = calibrate_pool(_labeller(), CONFIGS[::-1], 4, seed=1)
    alone = calibrate_pool(_labeller(), CONFIGS[1:], 4, seed=1)
    by_task = {r["task"]: [] for r in forward.rows()}
    for r in forward.rows():
        by_task[r["task"]].append(r["prompt"])
    assert [r["prompt"] for r in backward.rows() if r["task"] == CONFIGS[0]] == by_task[CONFIGS[0]]
    assert [r["prompt"] for r in alone.rows()] == by_task[CONFIGS[1]]
    other_seed = calibrate_pool(_labeller(), CONFIGS[:1], 4, seed=2)
    assert [r["prompt"] for r in other_seed.rows()] != by_task[CONFIGS[0]]


def test_on_config_sees_each_config_as_it_is_measured():
    seen = []
    backend = Scripted()
    calibrate_pool(_labeller(backend), CONFIGS, 3, on_config=lambda c: seen.append((c.task.name, backend.calls)))
    assert [name for name, _ in seen] == CONFIGS and seen[0][1] < seen[1][1]  # the first came before the second ran


def test_save_writes_json_and_markdown(tmp_path):
    result = calibrate_pool(_labeller(), CONFIGS, 3)
    path = result.save(tmp_path / "out")
    saved = json.loads(path.read_text())
    assert [c["name"] for c in saved["configs"]] == CONFIGS
    assert saved["configs"][0]["mean_pass_rate"] == pytest.approx(result.configs[0].mean_pass_rate)
    assert len(saved["configs"][1]["rows"]) == 3 and saved["settings"]["n_prompts_per_config"] == 3
    assert saved["settings"]["labeller"]["n"] == N and saved["graded"] == [t.name for t in result.graded]
    markdown = (tmp_path / "out" / "calibration.md").read_text()
    assert markdown.count("\n") == 2 + len(CONFIGS) and "gcd:max_value=20" in markdown


@pytest.mark.parametrize(
    ("spec", "family", "config", "name"),
    [
        ("gcd", "gcd", {}, "gcd"),
        ("gcd:max_value=20", "gcd", {"max_value": 20}, "gcd:max_value=20"),
        (
            "basic_arithmetic: max_terms=2, operators=+|-, allow_negation=false",
            "basic_arithmetic",
            {"max_terms": 2, "operators": ["+", "-"], "allow_negation": False},
            "basic_arithmetic:allow_negation=False,max_terms=2,operators=+|-",
        ),
        (("sum", "chain_sum", {"max_terms": 2}), "chain_sum", {"max_terms": 2}, "sum"),
        ({"family": "lcm", "config": {"max_value": 12}}, "lcm", {"max_value": 12}, "lcm:max_value=12"),
    ],
)
def test_parse_task_config(spec, family, config, name):
    task = parse_task_config(spec)
    assert (task.family, task.config, task.name) == (family, config, name)
    assert parse_task_config(task) is task


@pytest.mark.parametrize("spec", ["gcd:max_value", {"config": {}}, 3, ("a", "b")])
def test_parse_task_config_refuses(spec):
    with pytest.raises((InvalidParameterError, ParameterTypeError)):
        parse_task_config(spec)


def test_calibrate_pool_refuses_bad_arguments():
    with pytest.raises(InvalidParameterError, match="no task configs"):
        calibrate_pool(_labeller(), [], 2)
    with pytest.raises(InvalidParameterError, match="unique"):
        calibrate_pool(_labeller(), ["gcd", "gcd"], 2)
    with pytest.raises(InvalidParameterError, match="positive int"):
        calibrate_pool(_labeller(), ["gcd"], 0)
    with pytest.raises(InvalidParameterError, match="band"):
        calibrate_pool(_labeller(), ["gcd"], 2, band=(0.9, 0.1))
    with pytest.raises(InvalidParameterError, match="keep_completions"):
        calibrate_pool(RolloutLabeller(backend=Scripted(), verifier=ReasoningGymVerifier(), progress=False), ["gcd"], 2)
    with pytest.raises(InvalidParameterError, match="already holds"):
        calibrate_pool(_labeller(), ["gcd"], 2, labeller_options={"n": 3})


def test_the_pilot_configs_build():
    from hf_saerl.rollouts.tasks import reasoning_gym_dataset

    assert len({t.name for t in PILOT_CONFIGS}) == len(PILOT_CONFIGS) >= 12
    for task in PILOT_CONFIGS:
        assert len(reasoning_gym_dataset(task.family, 2, seed=0, **task.config)) == 2


def test_tiny_model_counts_tokens_and_cut_off_answers(model, tokenizer):
    result = calibrate_pool(
        model,
        [TaskConfig("gcd", {"max_value": 20})],
        3,
        labeller_options={"tokenizer": tokenizer, "n": 2, "max_new_tokens": 4, "batch_size": 4},
    )
    config = result.configs[0]
    # an independent count: generate again with the same labeller settings and tokenize what came back
    labeller = RolloutLabeller(
        model,
        tokenizer=tokenizer,
        verifier=ReasoningGymVerifier(),
        sampling={"n": 2, "max_new_tokens": 4},
        keep_completions=True,
        progress=False,
    )
    from datasets import Dataset

    data = Dataset.from_list([{k: r[k] for k in ("prompt", "answer", "metadata")} for r in result.rows()])
    completions = [c for row in labeller.map(data)["completions"] for c in row]
    lengths = [len(tokenizer(c, add_special_tokens=False)["input_ids"]) for c in completions]
    assert config.tokens == sum(lengths)  # re-tokenized text: the tiny char-level tokenizer may exceed 4
    assert config.share_truncated == pytest.approx(np.mean(np.array(lengths) >= 4))
    assert 0.0 <= config.mean_pass_rate <= 1.0 and config.n_samples == 2 and config.seconds >= 0

"""Label quality: adaptive rounds (the round logic, the cap, the token budget) on a scripted policy whose every
sample is known; the Beta posterior against scipy; the failure kinds on hand-written completions; the warnings
and the progress bar."""

from __future__ import annotations

import logging

import pytest
from datasets import Dataset
from scipy import stats

from hf_saerl.rollouts import Completion, RolloutLabeller, SamplingConfig, beta_posterior, failure_kind
from hf_saerl.rollouts.backends import derive_seed
from hf_saerl.rollouts.verifiers import MathVerifier

# prompt -> its samples in the order they are drawn (round after round); the answer is "4" for every prompt
SCRIPT = {
    "always": ["4"] * 64,  # k of k every round: sampled up to the cap
    "never": ["x"] * 64,  # 0 of k every round: up to the cap
    "mixed": ["4", "x"] + ["4"] * 62,  # resolved after the first round
    "late": ["x", "x", "x", "4"] + ["x"] * 60,  # 0 of 2, then 1 of 4: resolved after the second round
}
TOKENS = 10  # every scripted sample is 10 tokens long


class Scripted:
    """A policy that hands out each prompt's scripted samples in order, as ``Completion`` objects, and records
    every call (prompts, n, seeds)."""

    def __init__(self, script=SCRIPT):
        self.script, self.used, self.calls = script, {}, []

    def identity(self):
        return self.script

    def generate(self, prompts, n, sampling, seeds=None):  # pragma: no cover - generate_completions is used
        raise AssertionError("the labeller prefers generate_completions")

    def generate_completions(self, prompts, n, sampling, seeds=None, on_step=None):
        self.calls.append({"prompts": list(prompts), "n": n, "seeds": list(seeds)})
        out = []
        for p in prompts:
            start = self.used.get(p, 0)
            self.used[p] = start + n
            out.append([Completion(t, TOKENS, False) for t in self.script[p][start : start + n]])
            if on_step is not None:
                on_step(n * TOKENS, n)
        return out


def _label(sampling, prompts=tuple(SCRIPT), policy=None, **map_kwargs):
    policy = policy or Scripted()
    labeller = RolloutLabeller(
        backend=policy, sampling=sampling, instruction=None, chat_template=False, progress=False, keep_completions=True
    )
    data = Dataset.from_dict({"prompt": list(prompts), "answer": ["4"] * len(prompts)})
    out = labeller.map(data, **map_kwargs)
    return {p: row for p, row in zip(out["prompt"], out.to_list(), strict=True)}, policy, labeller


def test_one_round_without_a_cap():
    rows, policy, _ = _label(SamplingConfig(n=2))
    assert {p: r["n_samples"] for p, r in rows.items()} == dict.fromkeys(SCRIPT, 2)
    assert len(policy.calls) == 1


def test_rounds_spend_samples_where_all_samples_agree_up_to_the_cap():
    rows, policy, _ = _label(SamplingConfig(n=2, round_size=2, max_samples=8))
    # by hand: always/never run 2+2+2+2 (the cap); mixed stops at 2 (1 of 2); late at 4 (0 of 2, then 1 of 4)
    assert {p: r["n_samples"] for p, r in rows.items()} == {"always": 8, "never": 8, "mixed": 2, "late": 4}
    assert {p: r["n_correct"] for p, r in rows.items()} == {"always": 8, "never": 0, "mixed": 1, "late": 1}
    assert rows["late"]["completions"] == SCRIPT["late"][:4]
    assert [c["n"] for c in policy.calls] == [2, 2, 2, 2]
    assert [sorted(c["prompts"]) for c in policy.calls] == [
        sorted(SCRIPT),
        ["always", "late", "never"],
        ["always", "never"],
        ["always", "never"],
    ]
    # round r > 0 of a prompt is seeded by (prompt seed, "round", r): a property of the prompt alone
    seed = derive_seed(0, "always")
    assert [c["seeds"][c["prompts"].index("always")] for c in policy.calls] == [seed] + [
        derive_seed(seed, "round", r) for r in (1, 2, 3)
    ]


def test_the_last_round_stops_at_the_cap():
    rows, policy, _ = _label(SamplingConfig(n=2, round_size=3, max_samples=7), prompts=["always"])
    assert rows["always"]["n_samples"] == 7 and [c["n"] for c in policy.calls] == [2, 3, 2]


def test_the_token_budget_limits_extra_rounds_only():
    # 10 tokens a sample, 2 per extra round: 20 tokens per prompt and round. 40 tokens cover one extra round of
    # both unresolved prompts, then nothing; the first round is always drawn.
    rows, _, _ = _label(
        SamplingConfig(n=2, round_size=2, max_samples=8, token_budget=40), prompts=["always", "never", "mixed"]
    )
    assert {p: r["n_samples"] for p, r in rows.items()} == {"always": 4, "never": 4, "mixed": 2}
    # 30 tokens cover one of them: the smaller prompt seed goes first, wherever the row sits in the batch
    first = min(["always", "never"], key=lambda p: derive_seed(0, p))
    for order in (["always", "never"], ["never", "always"]):
        rows, _, _ = _label(SamplingConfig(n=2, round_size=2, max_samples=8, token_budget=30), prompts=order)
        assert {p: r["n_samples"] for p, r in rows.items()} == {p: 4 if p == first else 2 for p in order}


def test_adaptive_labels_do_not_depend_on_row_order_or_batch_size():
    cfg = SamplingConfig(n=2, round_size=2, max_samples=8)
    base, _, _ = _label(cfg)
    for prompts, batch_size in ((list(SCRIPT)[::-1], 64), (list(SCRIPT), 1), (list(SCRIPT), 3)):
        rows, _, _ = _label(cfg, prompts=prompts, batch_size=batch_size)
        assert rows == base


def test_posterior_columns_match_scipy():
    rows, _, _ = _label(SamplingConfig(n=2, round_size=2, max_samples=8, prior=(0.5, 0.5)))
    for row in rows.values():
        posterior = stats.beta(0.5 + row["n_correct"], 0.5 + row["n_samples"] - row["n_correct"])
        assert row["pass_rate_mean"] == pytest.approx(posterior.mean(), rel=1e-6)
        assert row["pass_rate_sd"] == pytest.approx(posterior.std(), rel=1e-6)
        assert row["pass_rate"] == pytest.approx(row["n_correct"] / row["n_samples"])


def test_beta_posterior_by_hand():
    # 3 of 8 under Beta(1, 1): Beta(4, 6), mean 4/10, variance 0.4 * 0.6 / 11
    mean, sd = beta_posterior(3, 8)
    assert mean == pytest.approx(0.4) and sd == pytest.approx((0.24 / 11) ** 0.5)
    # 0/2 and 0/32 are not the same evidence: the mean falls toward 0 and the uncertainty shrinks
    assert beta_posterior(0, 32)[0] < beta_posterior(0, 2)[0] and beta_posterior(0, 32)[1] < beta_posterior(0, 2)[1]


def test_failure_kinds_on_hand_written_completions():
    verifier = MathVerifier()
    cases = [  # (completion, cut off, correct) -> kind, by hand
        ("The answer is 5.", False, False, "wrong"),
        ("\\boxed{7}", False, False, "wrong"),
        ("Let me think about it", False, False, "no_answer"),
        ("", False, False, "no_answer"),
        ("So first we add the two numbers and", True, False, "truncated"),
        ("The answer is 4. Now let us also check", True, True, "correct"),  # correct beats cut off
    ]
    for text, cut, correct, kind in cases:
        assert failure_kind(Completion(text, 5, cut), correct, verifier) == kind, text


def test_failure_kind_columns_and_summary_count_by_hand():
    script = {"a": ["4", "five", "", "\\boxed{3}"], "b": ["Let me", "4", "4", "no"]}
    cut = {("a", 1), ("b", 0)}  # "five" and "Let me" reached max_new_tokens

    class CutOff(Scripted):
        def generate_completions(self, prompts, n, sampling, seeds=None, on_step=None):
            return [[Completion(t, 3, (p, j) in cut) for j, t in enumerate(self.script[p][:n])] for p in prompts]

    rows, _, labeller = _label(SamplingConfig(n=4), prompts=["a", "b"], policy=CutOff(script))
    # a: "4" correct, "five" cut off, "" no answer (and empty), \boxed{3} wrong
    # b: "Let me" cut off, "4" "4" correct, "no" no answer
    assert [rows["a"][k] for k in ("n_correct", "n_wrong", "n_no_answer", "n_truncated", "n_empty")] == [1, 1, 1, 1, 1]
    assert [rows["b"][k] for k in ("n_correct", "n_wrong", "n_no_answer", "n_truncated", "n_empty")] == [2, 0, 1, 1, 0]
    summary = labeller.summary_
    assert (
        summary["samples"],
        summary["correct"],
        summary["wrong"],
        summary["no_answer"],
        summary["truncated"],
        summary["empty"],
    ) == (8, 3, 1, 2, 2, 1)


def test_warns_when_most_completions_are_cut_off_or_most_labels_are_zero(caplog):
    class AllCut(Scripted):
        def generate_completions(self, prompts, n, sampling, seeds=None, on_step=None):
            return [[Completion("So we", 8, True)] * n for _ in prompts]

    with caplog.at_level(logging.WARNING, logger="hf_saerl"):
        _label(SamplingConfig(n=2, max_new_tokens=8), prompts=["a", "b"], policy=AllCut({}))
    assert "4 of 4 completions (100%) were cut off at max_new_tokens=8" in caplog.text
    assert "2 of 2 prompts (100%) were never solved" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hf_saerl"):
        _label(SamplingConfig(n=2), prompts=["always", "mixed"])
    assert "cut off" not in caplog.text and "never solved" not in caplog.text


def test_progress_bar_advances_per_sample_and_counts_tokens(monkeypatch):
    import tqdm.auto

    bars = []

    class Recorder:
        def __init__(self, total=None, **kwargs):
            self.total, self.n, self.postfixes = total, 0, []
            bars.append(self)

        def update(self, k):
            self.n += k

        def set_postfix_str(self, text, refresh=True):
            self.postfixes.append(text)

        def refresh(self):
            pass

        def close(self):
            pass

    monkeypatch.setattr(tqdm.auto, "tqdm", Recorder)
    labeller = RolloutLabeller(
        backend=Scripted(),
        sampling=SamplingConfig(n=2, round_size=2, max_samples=4),
        instruction=None,
        chat_template=False,
        progress=True,
    )
    labeller.map(Dataset.from_dict({"prompt": ["always", "mixed"], "answer": ["4", "4"]}))
    bar = bars[-1]
    # 2 prompts x 2 samples, then 2 more for "always": 6 samples, the total grown for the extra round
    assert bar.n == 6 and bar.total == 6
    # the postfix counted tokens per step (the scripted policy reports 20 tokens per prompt and round)
    assert bar.postfixes[0].startswith("20 tok") and bar.postfixes[-1].startswith("60 tok")


def test_cpu_preset_values():
    cpu = SamplingConfig.preset("cpu")
    assert (cpu.n, cpu.max_samples, cpu.max_new_tokens, cpu.temperature) == (4, 16, 64, 1.0) and cpu.adaptive
    assert SamplingConfig.preset("cpu", n=2).n == 2

"""CHAMP, the embedded default data: 270 competition math problems with recorded model attempts.

CHAMP (PyPI ``champ-dataset``, MIT; Mao, Kim & Zhou, 2024) has 270 problems in 5 categories
(Combinatorics, Inequality, Number-Theory, Polynomial, Sequence). Each problem comes with:

* a reference answer and a step-wise solution;
* hints and concepts;
* 72 recorded attempts: GPT-3.5, GPT-4, GPT-4 Turbo and PaLM 2 Medium, each under 18 prompt
  settings. Every attempt is a full response followed by a one-sentence answer summary.

The JSON ships inside the wheel. It is read directly, without importing the package, and parsed
once per process.

**Pass rates.** CHAMP has no per-attempt labels for the final answer, so the one-sentence summaries are
graded automatically and conservatively by :func:`hf_saerl.demo.grading.grade_answer` (the rule, and why
math-verify does not replace it, are in :mod:`hf_saerl.demo.grading`). A problem's ``pass_rate`` is
``n_correct / n_gradable``, or None when fewer than ``min_gradable`` attempts (default 12) could be graded.

Example:
    >>> from hf_saerl.demo.champ import load_champ
    >>> ds = load_champ()  # doctest: +SKIP
    >>> ds.num_rows, sorted(set(ds["category"]))[:2]  # doctest: +SKIP
    (270, ['Combinatorics', 'Inequality'])
"""

from __future__ import annotations

import functools
import importlib.util
import json
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .grading import grade_answer, parse_reference

if TYPE_CHECKING:  # pragma: no cover
    from datasets import Dataset

CHAMP_CATEGORIES = ("Combinatorics", "Inequality", "Number-Theory", "Polynomial", "Sequence")
CHAMP_MODELS = ("GPT-3.5", "GPT-4", "GPT-4 Turbo", "PaLM 2 Medium")
# The user message of CHAMP's plain settings ("0-Shot", "No C w/o H" and the query of "5-Shot").
CHAMP_PROMPT = "Solve the following problem. Make sure to show your work before giving the final answer.\n\n{problem}"
# Settings whose response solves the bare problem, without building on hints, concept turns or a
# partial solution: the default source of preference pairs.
STANDALONE_SETTINGS = ("0-Shot", "5-Shot", "No C w/o H")
MIN_GRADABLE = 12

_INSTALL_HINT = "pip install champ-dataset  (or: pip install 'hf-saerl[demo]')"

# ------------------------------------------------------------------------------------ raw data


def champ_json_path() -> Path:
    """The CHAMP JSON installed by ``champ-dataset`` (``champ_dataset/dataset_files/v0.json``)."""
    spec = importlib.util.find_spec("champ_dataset")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"CHAMP is not installed. Install it with: {_INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / "dataset_files" / "v0.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing. Reinstall CHAMP with: {_INSTALL_HINT}")
    return path


@functools.lru_cache(maxsize=1)
def _raw() -> dict[str, Any]:
    with open(champ_json_path(), encoding="utf-8") as f:
        return json.load(f)


def _solution_text(problem: dict[str, Any]) -> str:
    return "\n".join(f"{i}. {step['_text']}" for i, step in enumerate(problem["solution"]["steps"], 1))


@functools.lru_cache(maxsize=1)
def _attempts() -> tuple[dict[str, Any], ...]:
    """One graded record per (problem, model, prompt setting), in CHAMP's order."""
    records = []
    for pid, problem in _raw()["problems"].items():
        reference = parse_reference(problem["_answer"])
        annotations = problem["fws_annotations"]
        for key, conversation in problem["conversations"].items():
            model, setting = key.split("|")
            # ..., User: query, Model: response, User: "Now, summarize ...", Model: summary
            query, response, _, summary = conversation["messages"][-4:]
            truncated = response["error"] == "LENGTH_CURRENT"
            summary_text = None if summary["error"] else summary["text"]
            correct = None
            if reference is not None and summary_text and not truncated:
                correct = grade_answer(summary_text, reference, problem=problem["_text"])
            annotation = annotations.get(key)
            records.append(
                {
                    "problem_id": pid,
                    "category": problem["category"],
                    "model": model,
                    "setting": setting,
                    "prompt": query["text"],
                    "response": response["text"],
                    "summary": summary_text,
                    "truncated": truncated,
                    "correct": correct,
                    "mistake_free": None if annotation is None else annotation["start_idx"] is None,
                }
            )
    return tuple(records)


# ------------------------------------------------------------------------------------- datasets


def _dataset(rows: list[dict[str, Any]], dtypes: dict[str, str]) -> Dataset:
    from datasets import Dataset, Features, Value

    return Dataset.from_list(rows, features=Features({name: Value(dtype) for name, dtype in dtypes.items()}))


_PROBLEM_FEATURES = {
    "problem_id": "string",
    "problem": "string",
    "category": "string",
    "answer": "string",
    "solution": "string",
    "answer_gradable": "bool",
    "n_attempts": "int32",
    "n_gradable": "int32",
    "n_correct": "int32",
    "pass_rate": "float32",
}


def load_champ(min_gradable: int = MIN_GRADABLE) -> Dataset:
    """CHAMP's 270 problems, one row each, with a pass rate over the recorded attempts.

    Columns: ``problem_id``, ``problem``, ``category``, ``answer`` (the reference), ``solution``
    (numbered steps), ``answer_gradable`` (the reference can be matched automatically),
    ``n_attempts``, ``n_gradable``, ``n_correct`` and ``pass_rate``. ``pass_rate`` is
    ``n_correct / n_gradable``, or None when the answer is not gradable or fewer than
    ``min_gradable`` attempts are. The grading rule is in this module's docstring.

    Example:
        >>> ds = load_champ()  # doctest: +SKIP
        >>> labelled = ds.filter(lambda row: row["pass_rate"] is not None)  # doctest: +SKIP
    """
    counts: dict[str, list[int]] = {}
    for record in _attempts():
        n = counts.setdefault(record["problem_id"], [0, 0, 0])
        n[0] += 1
        n[1] += record["correct"] is not None
        n[2] += record["correct"] is True
    rows = []
    for pid, problem in _raw()["problems"].items():
        n_attempts, n_gradable, n_correct = counts[pid]
        rows.append(
            {
                "problem_id": pid,
                "problem": problem["_text"],
                "category": problem["category"],
                "answer": problem["_answer"],
                "solution": _solution_text(problem),
                "answer_gradable": parse_reference(problem["_answer"]) is not None,
                "n_attempts": n_attempts,
                "n_gradable": n_gradable,
                "n_correct": n_correct,
                "pass_rate": n_correct / n_gradable if n_gradable >= max(min_gradable, 1) else None,
            }
        )
    return _dataset(rows, _PROBLEM_FEATURES)


_ATTEMPT_FEATURES = {
    "problem_id": "string",
    "category": "string",
    "model": "string",
    "setting": "string",
    "prompt": "string",
    "response": "string",
    "summary": "string",
    "truncated": "bool",
    "correct": "bool",
    "mistake_free": "bool",
}


def load_champ_attempts() -> Dataset:
    """CHAMP's 19,440 recorded attempts (270 problems x 4 models x 18 settings), one row each.

    Columns:
    * ``problem_id``, ``category``, ``model`` and ``setting`` (the prompt setting).
    * ``prompt``: the user message the response answers.
    * ``response``: the full solution.
    * ``summary``: the one-sentence answer summary, None when the response was truncated.
    * ``truncated``.
    * ``correct``: the automatic grade (True, False, or None when not gradable).
    * ``mistake_free``: CHAMP's human first-wrong-step annotation (True when the solution has no
      wrong step), None for the 18,900 attempts without one.

    Example:
        >>> attempts = load_champ_attempts()  # doctest: +SKIP
        >>> graded = attempts.filter(lambda row: row["correct"] is not None)  # doctest: +SKIP
    """
    return _dataset(list(_attempts()), _ATTEMPT_FEATURES)


_TEXT_FEATURES = {"text": "string", "kind": "string", "source_id": "string", "category": "string"}


def load_champ_texts() -> Dataset:
    """CHAMP's non-problem texts: 456 hints (``kind="hint"``) and 89 concepts (``kind="concept"``).

    They are negatives for a quality probe: on-topic mathematical prose that is not a problem.
    Columns: ``text``, ``kind``, ``source_id`` (the CHAMP id) and ``category`` (the problem category
    for a hint, the concept's own category, such as "Algebra", for a concept). The columns match
    :func:`corrupt_problems`, so the two concatenate.

    Example:
        >>> texts = load_champ_texts()  # doctest: +SKIP
        >>> sorted(set(texts["kind"]))  # doctest: +SKIP
        ['concept', 'hint']
    """
    raw = _raw()
    rows = [
        {"text": h["_text"], "kind": "hint", "source_id": hid, "category": hid.split("_")[1]}
        for hid, h in raw["hints"].items()
    ]
    rows += [
        {"text": c["_text"], "kind": "concept", "source_id": cid, "category": c["category"]}
        for cid, c in raw["concepts"].items()
    ]
    return _dataset(rows, _TEXT_FEATURES)


def _shuffled_words(words: list[str], rng: random.Random) -> str | None:
    if len(set(words)) < 2:
        return None
    shuffled = words[:]
    while shuffled == words:
        rng.shuffle(shuffled)
    return " ".join(shuffled)


def _truncated(words: list[str], rng: random.Random) -> str | None:
    if len(words) < 2:
        return None
    return " ".join(words[: min(len(words) - 1, max(1, round(len(words) * rng.uniform(0.3, 0.6))))])


_CORRUPTIONS = {"shuffled_words": _shuffled_words, "truncated": _truncated}


def corrupt_problems(
    dataset: Dataset | None = None,
    seed: int = 0,
    kinds: tuple[str, ...] = ("shuffled_words", "truncated"),
    text_column: str = "problem",
) -> Dataset:
    """Corrupted copies of problem texts, as quality-probe negatives: one row per problem and kind.

    The kinds are:
    * ``"shuffled_words"``: the words in a random order.
    * ``"truncated"``: the first 30-60% of the words.

    ``dataset`` defaults to :func:`load_champ`. The output has the columns of
    :func:`load_champ_texts`: ``text``, ``kind``, ``source_id`` (the ``problem_id``, or the row
    index) and ``category``. A one-word text is skipped. The result is a pure function
    of the input and ``seed``.

    Example:
        >>> corrupt_problems(seed=0)["kind"][:2]  # doctest: +SKIP
        ['shuffled_words', 'truncated']
    """
    unknown = set(kinds) - set(_CORRUPTIONS)
    if unknown:
        raise ValueError(f"Unknown corruption kinds {sorted(unknown)}; choose from {sorted(_CORRUPTIONS)}.")
    dataset = load_champ() if dataset is None else dataset
    if text_column not in dataset.column_names:
        raise ValueError(f"No column {text_column!r} in the dataset (columns: {dataset.column_names}).")
    ids = dataset["problem_id"] if "problem_id" in dataset.column_names else None
    categories = dataset["category"] if "category" in dataset.column_names else None
    rows = []
    for i, text in enumerate(dataset[text_column]):
        words = text.split()
        for kind in kinds:
            corrupted = _CORRUPTIONS[kind](words, random.Random(f"{seed}:{i}:{kind}"))
            if corrupted is not None:
                source = ids[i] if ids is not None else str(i)
                category = categories[i] if categories is not None else None
                rows.append({"text": corrupted, "kind": kind, "source_id": source, "category": category})
    return _dataset(rows, _TEXT_FEATURES)


def champ_preference_pairs(
    seed: int = 0,
    settings: tuple[str, ...] | None = STANDALONE_SETTINGS,
    chosen_from: Literal["attempt", "reference"] = "attempt",
    pairs_per_problem: int = 1,
) -> Dataset:
    """Preference pairs from CHAMP: a correct and an incorrect solution to the same problem.

    Columns:
    * ``problem_id``, ``category``.
    * ``prompt``: CHAMP's plain prompt for the problem, ``CHAMP_PROMPT``.
    * ``chosen``: a correct attempt.
    * ``rejected``: an attempt graded incorrect.
    * ``chosen_source`` and ``rejected_source``: ``"model|setting"``, or ``"reference"``.

    Details:
    * The chosen attempt is one whose final answer is graded correct and which CHAMP's annotators
      did not mark as having a wrong step. With ``chosen_from="reference"``, or when no such attempt
      exists, the chosen text is the reference solution.
    * Attempts come from ``settings``. The default is the settings whose response solves the bare
      problem; None means all 18.
    * Only problems with a gradable reference and at least one incorrect attempt give pairs.
    * At most ``pairs_per_problem`` pairs come from each problem. Their rejected attempts differ.
    * The pairs are a pure function of the arguments.

    Example:
        >>> pairs = champ_preference_pairs(seed=0)  # doctest: +SKIP
        >>> pairs.column_names[:3]  # doctest: +SKIP
        ['problem_id', 'category', 'prompt']
    """
    if chosen_from not in ("attempt", "reference"):
        raise ValueError(f"chosen_from must be 'attempt' or 'reference', got {chosen_from!r}.")
    if pairs_per_problem < 1:
        raise ValueError(f"pairs_per_problem must be at least 1, got {pairs_per_problem}.")
    problems = _raw()["problems"]
    by_problem: dict[str, list[dict[str, Any]]] = {}
    for record in _attempts():
        if settings is None or record["setting"] in settings:
            by_problem.setdefault(record["problem_id"], []).append(record)
    rows = []
    for pid, records in by_problem.items():
        rejected = [r for r in records if r["correct"] is False]
        chosen = [r for r in records if r["correct"] is True and r["mistake_free"] is not False]
        if not rejected:
            continue
        rng = random.Random(f"{seed}:{pid}")
        rng.shuffle(rejected)
        rng.shuffle(chosen)
        for k, bad in enumerate(rejected[:pairs_per_problem]):
            if chosen_from == "attempt" and chosen:
                good = chosen[k % len(chosen)]
                chosen_text, chosen_source = good["response"], f"{good['model']}|{good['setting']}"
            else:
                chosen_text, chosen_source = _solution_text(problems[pid]), "reference"
            rows.append(
                {
                    "problem_id": pid,
                    "category": bad["category"],
                    "prompt": CHAMP_PROMPT.format(problem=problems[pid]["_text"]),
                    "chosen": chosen_text,
                    "rejected": bad["response"],
                    "chosen_source": chosen_source,
                    "rejected_source": f"{bad['model']}|{bad['setting']}",
                }
            )
    names = ("problem_id", "category", "prompt", "chosen", "rejected", "chosen_source", "rejected_source")
    return _dataset(rows, dict.fromkeys(names, "string"))

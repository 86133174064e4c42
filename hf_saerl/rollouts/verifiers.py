"""Verifiers that score completions: math-verify, reasoning-gym's ``score_answer``, any TRL-style reward function.

Every verifier has the shape of a TRL reward function, ``verifier(prompts, completions, **columns) ->
list[float | None]``, with one reward per completion, and ``columns`` holding the dataset's other columns as
lists, aligned with the completions. So one object serves labelling now (:class:`~hf_saerl.rollouts.labeller.
RolloutLabeller` counts a completion as correct when its reward reaches :attr:`Verifier.threshold`) and GRPO
later (``GRPOTrainer(reward_funcs=[verifier])``; the ``__name__`` attribute names it in TRL's logs). A reward
of ``None`` means "cannot score this one" (TRL skips it); the labeller counts it as not correct and says so.

Completions may be strings or, as TRL passes them for conversational data, lists of messages (the last
message's ``content`` is scored).

Example:
    >>> from hf_saerl.rollouts.verifiers import MathVerifier
    >>> verify = MathVerifier()
    >>> verify(["1+1?", "1+1?", "Half of 1?"], ["The answer is 2.", "\\\\boxed{3}", "$\\\\frac{1}{2}$"],
    ...        answer=["2", "2", "0.5"])
    [1.0, 0.0, 1.0]
    >>> verify.threshold, verify.__name__
    (1.0, 'math_verify')
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import math
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..core.columns import require_columns
from ..core.fingerprint import stable_hash
from ..errors import InvalidParameterError, VerificationError

logger = logging.getLogger(__name__)

__all__ = [
    "MathVerifier",
    "ReasoningGymVerifier",
    "RewardFunctionVerifier",
    "VerificationError",
    "Verifier",
    "as_verifier",
    "callable_identity",
    "completion_text",
    "extract_final_answer",
    "find_final_answer",
]


def completion_text(completion: Any) -> str:
    """The text of one completion: a string as is; a TRL conversational completion (a list of ``{"role",
    "content"}`` messages) as its last message's content; ``None`` as ``""``.

    Example:
        >>> completion_text([{"role": "assistant", "content": "42"}]), completion_text("7")
        ('42', '7')
    """
    if completion is None:
        return ""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        return str(completion.get("content", ""))
    if isinstance(completion, Sequence) and completion:
        return completion_text(completion[-1])
    return str(completion)


_ANSWER_TAG = re.compile(r"<answer>\s?(.*?)\s?</answer>", re.DOTALL)
_ANSWER_MARKER = re.compile(r"(?:final\s+)?answer\s*(?:is\s*:?|:)\s*", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?(?:/\d+)?")


def _last_boxed(text: str) -> str | None:
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        return None
    i = text.index("{", start) + 1
    depth, j = 1, i
    while j < len(text) and depth:
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        j += 1
    return text[i : j - 1].strip() if depth == 0 else None


def find_final_answer(text: Any) -> str | None:
    """The final answer by rules 1-4 of :func:`extract_final_answer`, or ``None`` when none applies (no answer tag,
    no ``\\boxed{}``, no "answer:" phrase, no number): the completion gave no extractable answer.

    Example:
        >>> find_final_answer("So the answer is 12."), find_final_answer("I am not sure what to do")
        ('12', None)
    """
    text = completion_text(text)
    tags = _ANSWER_TAG.findall(text)
    if tags:
        return tags[-1].strip()
    boxed = _last_boxed(text)
    if boxed is not None:
        return boxed
    markers = list(_ANSWER_MARKER.finditer(text))
    if markers:
        rest = text[markers[-1].end() :].split("\n", 1)[0]
        rest = rest.replace("**", "").strip().strip("$").strip()
        rest = rest[:-1].rstrip() if rest.endswith(".") else rest
        if rest:
            return rest
    numbers = _NUMBER.findall(text)
    if numbers:
        return numbers[-1].replace(",", "")
    return None


#: a completion of one line up to this long counts as an answer by itself (rule 5 of extract_final_answer)
SHORT_ANSWER_CHARS = 32


def extract_final_answer(text: str) -> str:
    """The final answer in a completion, for exact-match scorers such as reasoning-gym's ``score_answer``.

    The first rule that applies wins:

    1. the content of the last ``<answer>...</answer>`` tag (reasoning-gym's own format);
    2. the content of the last ``\\boxed{...}`` (braces balanced);
    3. the rest of the line after the last "answer:" / "answer is" (any case), without ``$``, ``**`` and a final
       period;
    4. the last number (``-12``, ``3.5``, ``1,000`` read as ``1000``, ``2/3``);
    5. the whole text, stripped.

    Example:
        >>> [extract_final_answer(t) for t in ["<answer>cat</answer>", "so \\\\boxed{\\\\frac{1}{2}}.",
        ...                                    "The answer is 9.", "3 + 6 = 9, done", "blue"]]
        ['cat', '\\\\frac{1}{2}', '9', '9', 'blue']
    """
    text = completion_text(text)
    found = find_final_answer(text)
    return text.strip() if found is None else found


def callable_identity(fn: Any) -> str:
    """A short, stable digest of a function or callable object, for fingerprints: its ``fingerprint`` attribute
    when it has one, else its module, qualified name and source code (bytecode when the source is not available),
    plus the attributes of a callable object. The same code gives the same digest in every process.

    Example:
        >>> callable_identity(len) == callable_identity(len)
        True
    """
    own = getattr(fn, "fingerprint", None)
    if isinstance(own, str):
        return own
    target = fn if inspect.isfunction(fn) or inspect.ismethod(fn) or inspect.isbuiltin(fn) else type(fn)
    parts: list[Any] = [getattr(target, "__module__", None), getattr(target, "__qualname__", repr(target))]
    try:
        parts.append(hashlib.sha256(inspect.getsource(target).encode()).hexdigest())
    except (OSError, TypeError):
        code = getattr(target, "__code__", None)
        if code is not None:
            parts.append(hashlib.sha256(code.co_code + repr(code.co_consts).encode()).hexdigest())
    if target is not fn and hasattr(fn, "__dict__"):  # a callable object: its settings matter too
        parts.append(sorted((k, repr(v)) for k, v in vars(fn).items() if not k.startswith("_")))
    return stable_hash(parts)


class Verifier:
    """Base class: a TRL-style reward function plus a success threshold.

    Subclasses implement :meth:`score` (rewards for a batch of completions) and :meth:`config`. Calling a
    verifier checks that the columns it reads are present (:class:`~hf_saerl.errors.MissingColumnError`
    otherwise) and that it returned one finite reward (or ``None``) per completion.

    Attributes:
        threshold: a completion counts as correct when its reward is ``>= threshold``.
        columns: the dataset columns the verifier reads (checked before any generation runs).
        __name__: the name TRL logs its rewards under.
    """

    __name__ = "verifier"
    threshold: float = 1.0
    columns: tuple[str, ...] = ()

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **columns: Any) -> list[float | None]:
        """One reward per completion (``None``: cannot be scored)."""
        require_columns(
            columns,
            list(self.columns),
            f"reference answers {self.__name__} checks against",
            f"Pass the column name to {type(self).__name__}(answer_column=...), or add the column.",
        )
        rewards = self.score(list(prompts), list(completions), columns)
        return check_rewards(rewards, len(completions), self.__name__)

    def score(
        self, prompts: list[Any], completions: list[Any], columns: Mapping[str, Sequence[Any]]
    ) -> list[float | None]:
        """One reward per completion; ``columns`` holds the dataset's columns, aligned with the completions."""
        raise NotImplementedError  # pragma: no cover - abstract

    def is_correct(self, reward: float | None) -> bool:
        """Whether one reward counts as a success (``None`` never does)."""
        return reward is not None and reward >= self.threshold

    def has_answer(self, completion: Any) -> bool:
        """Whether the completion states an answer the verifier can read (the labeller counts incorrect ones
        without one in ``n_no_answer``, apart from wrong answers). By default: :func:`find_final_answer` finds
        one, or the completion is one short line of at most three words (which exact-match scorers read as the
        answer).

        Example:
            >>> v = Verifier()
            >>> v.has_answer("The answer is 7."), v.has_answer("blue"), v.has_answer("Let me think about this step")
            (True, True, False)
        """
        text = completion_text(completion).strip()
        if not text:
            return False
        return find_final_answer(text) is not None or (
            "\n" not in text and len(text) <= SHORT_ANSWER_CHARS and len(text.split()) <= 3
        )

    def config(self) -> dict[str, Any]:
        """The JSON-able settings that decide the rewards."""
        return {"threshold": self.threshold, "columns": list(self.columns)}

    @property
    def fingerprint(self) -> str:
        """A short digest of :meth:`config` and the class."""
        return stable_hash([type(self).__qualname__, self.config()])

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({settings})"


def check_rewards(rewards: Any, expected: int, name: str) -> list[float | None]:
    """``rewards`` as a list of floats (or ``None``), or a :class:`VerificationError` if it is not one finite
    number or ``None`` per completion.

    Example:
        >>> check_rewards([1, None, 0.5], 3, "f")
        [1.0, None, 0.5]
    """
    try:
        out = [None if r is None else float(r) for r in rewards]
    except (TypeError, ValueError) as err:
        raise VerificationError(
            f"Verifier {name!r} returned {type(rewards).__name__} {str(rewards)[:80]!r}, not a list of numbers. "
            "Return one float (or None) per completion, or wrap the function to convert its output."
        ) from err
    if len(out) != expected:
        raise VerificationError(
            f"Verifier {name!r} returned {len(out)} rewards for {expected} completions. Return exactly one reward per "
            "completion (None for ones it cannot score), or check that it reads `completions`, not `prompts`."
        )
    bad = [i for i, r in enumerate(out) if r is not None and not math.isfinite(r)]
    if bad:
        raise VerificationError(
            f"Verifier {name!r} returned non-finite rewards at positions {bad[:10]} ({out[bad[0]]}). Return finite "
            "numbers, or None for completions it cannot score."
        )
    return out


# ---------------------------------------------------------------------- math-verify
class MathVerifier(Verifier):
    """Math answers checked with Hugging Face's ``math-verify``: 1.0 when the completion's answer equals the
    reference (numbers, fractions, LaTeX expressions, sets, intervals...), else 0.0.

    The completion is parsed with math-verify's default extraction (``\\boxed{}`` first, then LaTeX, then plain
    expressions, e.g. "the answer is 9"). The reference is parsed as given, then as LaTeX ``$reference$``; a
    reference that parses neither way gives ``None`` (not scored, as TRL's ``accuracy_reward`` does).
    math-verify's timeouts use ``signal.alarm``, so they are on in the main thread and off elsewhere (as in TRL).

    Args:
        answer_column: the column holding the reference answers.
        threshold: reward counted as correct (the rewards are 0 or 1).
        float_rounding, numeric_precision, strict: passed to ``math_verify.verify``.
        timeout_seconds: per parse and per comparison, main thread only.

    Example:
        >>> MathVerifier(answer_column="solution")(["q"] * 2, ["x = 3", "I get 4"], solution=["3", "3"])
        [1.0, 0.0]
    """

    __name__ = "math_verify"

    def __init__(
        self,
        answer_column: str = "answer",
        *,
        threshold: float = 1.0,
        float_rounding: int = 6,
        numeric_precision: int = 15,
        strict: bool = True,
        timeout_seconds: int | None = 5,
    ):
        self.answer_column = answer_column
        self.threshold = float(threshold)
        self.float_rounding, self.numeric_precision, self.strict = float_rounding, numeric_precision, strict
        self.timeout_seconds = timeout_seconds

    @property
    def columns(self) -> tuple[str, ...]:  # type: ignore[override]
        return (self.answer_column,)

    def score(self, prompts, completions, columns):
        from math_verify import parse, verify

        timeout = self.timeout_seconds if threading.current_thread() is threading.main_thread() else None
        golds: dict[str, Any] = {}
        rewards: list[float | None] = []
        for completion, gold in zip(completions, columns[self.answer_column], strict=True):
            key = "" if gold is None else str(gold)
            if key not in golds:
                parsed = parse(key, parsing_timeout=timeout) if key.strip() else []
                if not parsed and key.strip():
                    parsed = parse(f"${key}$", fallback_mode="no_fallback", parsing_timeout=timeout)
                golds[key] = parsed
            gold_parsed = golds[key]
            if not gold_parsed:
                rewards.append(None)
                continue
            answer = parse(completion_text(completion), parsing_timeout=timeout)
            rewards.append(
                float(
                    verify(
                        gold_parsed,
                        answer,
                        float_rounding=self.float_rounding,
                        numeric_precision=self.numeric_precision,
                        strict=self.strict,
                        timeout_seconds=timeout,
                    )
                )
            )
        unparsed = sorted({k for k, v in golds.items() if not v})
        if unparsed:
            logger.warning(
                "MathVerifier could not parse %d reference answer(s) in column %r (e.g. %r); their "
                "completions get reward None (not scored).",
                len(unparsed),
                self.answer_column,
                unparsed[0][:60],
            )
        return rewards

    def has_answer(self, completion: Any) -> bool:
        """Whether math-verify parses any answer out of the completion.

        Example:
            >>> MathVerifier().has_answer("so x = 3"), MathVerifier().has_answer("I do not know")
            (True, False)
        """
        from math_verify import parse

        timeout = self.timeout_seconds if threading.current_thread() is threading.main_thread() else None
        text = completion_text(completion)
        return bool(text.strip()) and bool(parse(text, parsing_timeout=timeout))

    def config(self) -> dict[str, Any]:
        return {
            "answer_column": self.answer_column,
            "threshold": self.threshold,
            "float_rounding": self.float_rounding,
            "numeric_precision": self.numeric_precision,
            "strict": self.strict,
        }


# ---------------------------------------------------------------------- reasoning-gym
class ReasoningGymVerifier(Verifier):
    """reasoning-gym's own scorer, ``score_answer(answer, entry)``, as a reward function.

    reasoning-gym scores strictly (reference "9": "9" gets 1.0, "The answer is 9" about 0.07), so the final
    answer is extracted from the completion first, by :func:`extract_final_answer` (an ``<answer>`` tag, then
    ``\\boxed{}``, then "answer:", then the last number), or by your own ``extract=`` (``None``: score the raw
    text). The entry handed to the scorer is ``{"question": prompt, "answer": reference, "metadata": metadata}``
    built from the row; ``metadata`` may be a dict or a JSON string (as :func:`~hf_saerl.rollouts.tasks.
    reasoning_gym_dataset` stores it, since task families' metadata do not share one Arrow type).

    Args:
        dataset: a registered reasoning-gym dataset name (``"basic_arithmetic"``), a reasoning-gym dataset
            object, or ``None`` (default): each row's ``metadata["source_dataset"]`` names its scorer, so a mixed
            pool works.
        answer_column, metadata_column: where the reference answer and the task metadata are.
        extract: completion text -> the answer string to score.
        threshold: reward counted as correct (1.0: the scorer's exact match).

    Example:
        >>> v = ReasoningGymVerifier("basic_arithmetic")
        >>> v(["Calculate 2 - -1."] * 3, ["<answer>3</answer>", "2 - -1 = 3", "I think 4"], answer=["3"] * 3,
        ...   metadata=["{}"] * 3)
        [1.0, 1.0, 0.0]
    """

    __name__ = "reasoning_gym"

    def __init__(
        self,
        dataset: Any = None,
        *,
        answer_column: str = "answer",
        metadata_column: str | None = "metadata",
        extract: Callable[[str], str] | None = extract_final_answer,
        threshold: float = 1.0,
    ):
        if dataset is not None and not isinstance(dataset, str) and not hasattr(dataset, "score_answer"):
            raise InvalidParameterError(
                f"dataset must be a reasoning-gym dataset name, a reasoning-gym dataset object or None, got "
                f"{type(dataset).__name__}. Pass e.g. 'basic_arithmetic', or None to read metadata['source_dataset']."
            )
        if dataset is None and metadata_column is None:
            raise InvalidParameterError(
                "ReasoningGymVerifier(dataset=None) reads each row's metadata['source_dataset'], so it needs "
                "metadata_column=. Pass a metadata column, or name the dataset, e.g. dataset='basic_arithmetic'."
            )
        self.dataset = dataset
        self.answer_column, self.metadata_column = answer_column, metadata_column
        self.extract = extract
        self.threshold = float(threshold)
        self._scorers: dict[str, Callable[..., float]] = {}

    @property
    def columns(self) -> tuple[str, ...]:  # type: ignore[override]
        if self.dataset is None and self.metadata_column:
            return (self.answer_column, self.metadata_column)
        return (self.answer_column,)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_scorers": {}}  # bound methods of reasoning-gym datasets: rebuilt on demand

    def _scorer(self, name: str | None) -> Callable[..., float]:
        if hasattr(self.dataset, "score_answer"):
            return self.dataset.score_answer
        name = self.dataset or name
        if not name:
            raise InvalidParameterError(
                f"A row's {self.metadata_column!r} has no 'source_dataset', so its reasoning-gym scorer is unknown. "
                "Name the dataset: ReasoningGymVerifier('basic_arithmetic'), or keep reasoning-gym's metadata column."
            )
        if name not in self._scorers:
            import reasoning_gym

            try:
                self._scorers[name] = reasoning_gym.get_score_answer_fn(name)
            except ValueError as err:
                raise InvalidParameterError(f"{err}. Use a name registered in reasoning_gym.factory.DATASETS.") from err
        return self._scorers[name]

    def score(self, prompts, completions, columns):
        metadata_values = columns.get(self.metadata_column) if self.metadata_column else None
        rewards: list[float | None] = []
        for i, completion in enumerate(completions):
            metadata = _metadata(metadata_values[i] if metadata_values is not None else None)
            entry = {
                "question": completion_text(prompts[i]) if i < len(prompts) else "",
                "answer": columns[self.answer_column][i],
                "metadata": metadata,
            }
            text = completion_text(completion)
            answer = self.extract(text) if self.extract is not None else text
            rewards.append(float(self._scorer(metadata.get("source_dataset"))(answer, entry)))
        return rewards

    def has_answer(self, completion: Any) -> bool:
        """With the default ``extract``: as :meth:`Verifier.has_answer`; with your own, whether it returns a non-empty
        answer; with ``extract=None`` (the raw text is scored), whether the completion is not empty."""
        if self.extract is extract_final_answer:
            return super().has_answer(completion)
        text = completion_text(completion)
        answer = self.extract(text) if self.extract is not None else text
        return bool(str(answer or "").strip())

    def config(self) -> dict[str, Any]:
        dataset = (
            self.dataset
            if self.dataset is None or isinstance(self.dataset, str)
            else {"class": type(self.dataset).__qualname__, "config": repr(getattr(self.dataset, "config", None))}
        )
        return {
            "dataset": dataset,
            "answer_column": self.answer_column,
            "metadata_column": self.metadata_column,
            "extract": None if self.extract is None else callable_identity(self.extract),
            "threshold": self.threshold,
        }


def _metadata(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as err:
            raise InvalidParameterError(
                f"The metadata value {value[:60]!r} is not JSON. Store reasoning-gym metadata as a dict or json.dumps "
                "of it, or pass metadata_column=None with a named dataset."
            ) from err
    return dict(value) if isinstance(value, Mapping) else {}


# ---------------------------------------------------------------------- any reward function
class RewardFunctionVerifier(Verifier):
    """Any TRL-style reward function ``f(prompts, completions, **columns) -> list[float]`` with a threshold.

    The function is called as TRL's ``GRPOTrainer`` calls it: keyword arguments ``prompts=`` and
    ``completions=``, plus every other column as a list (the labeller also passes ``completion_ids=``), so it
    should accept ``**kwargs``. ``columns`` lists the columns it needs, checked before generation.

    Example:
        >>> def exact(prompts, completions, answer, **kwargs):
        ...     return [float(c.strip() == a) for c, a in zip(completions, answer)]
        >>> v = RewardFunctionVerifier(exact, columns=["answer"])
        >>> v(["q", "q"], [" 4", "5"], answer=["4", "4"]), v.__name__
        ([1.0, 0.0], 'exact')
    """

    def __init__(
        self,
        function: Callable[..., Sequence[float | None]],
        *,
        threshold: float = 1.0,
        columns: Sequence[str] = (),
        name: str | None = None,
    ):
        if not callable(function):
            raise InvalidParameterError(
                f"function must be a callable f(prompts, completions, **columns) -> list[float], got "
                f"{type(function).__name__}. Pass a function, or a Verifier."
            )
        self.function = function
        self.threshold = float(threshold)
        self.columns = tuple(columns)
        self.__name__ = name or getattr(function, "__name__", None) or type(function).__name__

    def score(self, prompts, completions, columns):
        return self.function(prompts=prompts, completions=completions, **columns)

    def config(self) -> dict[str, Any]:
        return {
            "function": callable_identity(self.function),
            "name": self.__name__,
            "threshold": self.threshold,
            "columns": list(self.columns),
        }


def as_verifier(verifier: Any) -> Verifier:
    """A :class:`Verifier` from ``"math"``, ``"reasoning_gym"`` (or ``"reasoning-gym"``), a verifier, or a plain
    reward function (wrapped in :class:`RewardFunctionVerifier`, threshold 1.0).

    Example:
        >>> as_verifier("math")
        MathVerifier(answer_column='answer', threshold=1.0, float_rounding=6, numeric_precision=15, strict=True)
    """
    if isinstance(verifier, Verifier):
        return verifier
    if isinstance(verifier, str):
        name = verifier.replace("-", "_").lower()
        if name in ("math", "math_verify"):
            return MathVerifier()
        if name == "reasoning_gym":
            return ReasoningGymVerifier()
        raise InvalidParameterError(
            f"Unknown verifier {verifier!r}; use 'math' or 'reasoning_gym', pass a Verifier, or a reward function "
            "f(prompts, completions, **columns) -> list[float]."
        )
    if callable(verifier):
        return RewardFunctionVerifier(verifier)
    raise InvalidParameterError(
        f"verifier must be 'math', 'reasoning_gym', a Verifier or a reward function, got {type(verifier).__name__}."
    )

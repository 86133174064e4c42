"""The conservative answer grader for CHAMP's recorded answer summaries (sympy), which gives CHAMP its pass rates.

It stays apart from :class:`hf_saerl.rollouts.MathVerifier` because math-verify does not grade CHAMP's summaries
the same way. On a seeded sample of 400 summaries (``docs/results/calibration/champ_grader_vs_math_verify.json``)
the two disagree on 30 of the 185 attempts this grader grades (25 graded correct here that math-verify scores 0,
e.g. answers stated inside a sentence; 5 the other way), and math-verify has no "not gradable" verdict: it scores
the 215 summaries this grader leaves out (yes/no answers, tuples, prose) as 0 or 1, which would bias pass rates.

**Pass rates.** CHAMP has no per-attempt labels for the final answer. Its only labels are
first-wrong-step annotations, on 2 attempts per problem (``mistake_free`` in
:func:`~hf_saerl.demo.champ.load_champ_attempts`). So
the summaries are graded here, automatically and conservatively, since a wrong grade is worse than
none. :func:`grade_answer` implements the rule:

1. *Which references are gradable.* A reference is gradable when it is a number, a closed-form
   expression, or a set of them:
   * integers, fractions, decimals, ``sqrt``, powers, ``n!``, ``C(n, k)`` and ``floor``;
   * expressions in the problem's variables, e.g. ``2^(n-1)``;
   * sets written "376 and 625".

   These wrappers are peeled off: "X, or equivalently Y", "X (i.e., ...)", "X values", "X is the
   only possible value", "The limit exists and is equal to X".

   Not gradable:
   * yes/no answers, tuples, ``x=...`` assignments, ranges and prose;
   * factorisations, where an expanded form would be equal but wrong.

   Yes/no answers are left out on purpose. About half of the summaries state them without a
   leading "Yes"/"No", and whether they do depends on the answer. Grading only the explicit ones
   would bias the pass rate.
2. *What a summary answers.*
   * LaTeX and unicode are first reduced to plain math: ``\\frac``, ``\\boxed``, ``\\sqrt``,
     ``\\binom``, ``$``, ``√``, ``−``, thousands separators, and the number words zero to ten.
   * The stated answers are the expressions, or lists of expressions ("1, 4 and 9"), right after a
     copula: "is", "are", "equals", "equal to", "was", "be" or "given by". Examples: "The smallest
     value ... is 2, which occurs when x = 0." and "There are 29 strings ...".
   * An equality chain such as "2^6 = 64" gives one answer per member.
   * A statement copied from the problem text is skipped ("... differing by less than or equal to
     1").
   * So is one about other variables ("when a equals b"), and a bound ("less than or equal to").
   * If anything continues a stated expression, the summary is not gradable. That covers "or",
     "to", "times", "mod", "%", "±", an operator, a case split ("for even n"), or a word glued to
     the expression ("2abc").
3. *The verdict.* An attempt is gradable when its stated answers all agree.
   * It is correct when the answer equals the reference, or one of the reference's equivalent
     forms, as a set of values.
   * Numbers are compared exactly: ``1/2 == 0.5``, ``3 != 13``, ``-9 != 9``.
   * A decimal that matches only after rounding (``0.357`` for ``5/14``) is not gradable.
   * Expressions in ``n`` are compared at several integer points. A number given for an
     expression in ``n`` is wrong.
   * Truncated attempts, which have no summary, are not gradable.
4. A problem's ``pass_rate`` is ``n_correct / n_gradable``. It is None when the reference is not
   gradable, or when fewer than ``min_gradable`` attempts (default 12) could be graded. The
   threshold exists because which attempts are gradable depends on their phrasing; over a few of
   them, the rate would mostly reflect that selection.

Result: 180 of the 270 references are gradable, and 171 problems get a pass rate. 8,883 of the
19,440 attempts are graded. As a check against CHAMP's annotations: 67 attempts are annotated as
free of mistakes and have a gradable reference. 58 of them are graded correct and 8 are not
gradable. The remaining one is graded incorrect, and rightly so: its response ends in
"n(n+1)(2n+1)/6 - 1", and the annotation missed the "- 1".

Example:
    >>> grade_answer("The smallest value is 1/2.", "0.5"), grade_answer("There are 13 ways.", "3")
    (True, False)
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["Reference", "extract_answers", "grade_answer", "normalize_math", "parse_reference"]

# ------------------------------------------------------------------------------ answer matching

_UNICODE = {"−": "-", "–": "-", "×": "*", "·": "*", "⋅": "*", "√": "sqrt", "π": "pi", "²": "^2", "³": "^3"}
_LATEX = {r"\cdot": "*", r"\times": "*", r"\pi": "pi", r"\left": "", r"\right": "", r"\,": "", r"\!": "", r"\;": " "}


def normalize_math(text: str) -> str:
    """Plain-text math from LaTeX and unicode.

    Example:
        >>> normalize_math(r"is $\\boxed{\\frac{1}{2}}$ or 2,001,000 or 2√3")
        'is  ((1)/(2))  or 2001000 or 2sqrt(3)'
    """
    text = re.sub(r"√ *(\d+(?:\.\d+)?|[A-Za-z](?![A-Za-z]))", r"sqrt(\1)", text)  # √3 -> sqrt(3)
    for a, b in _UNICODE.items():
        text = text.replace(a, b)
    text = re.sub(r"\\[()\[\]]|\$", " ", text)
    for a, b in _LATEX.items():
        text = text.replace(a, b)
    for _ in range(4 if "\\" in text else 0):  # nested commands, innermost first
        text = re.sub(r"\\[dt]?frac\{([^{}]*)\}\{([^{}]*)\}", r"((\1)/(\2))", text)
        text = re.sub(r"\\binom\{([^{}]*)\}\{([^{}]*)\}", r"C(\1, \2)", text)
        text = re.sub(r"\\sqrt\{([^{}]*)\}", r"sqrt(\1)", text)
        text = re.sub(r"\\(?:boxed|text|mathrm|mathbf|textbf)\{([^{}]*)\}", r"\1", text)
    text = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", text)  # thousands separators
    return text.replace("{", "(").replace("}", ")")


_TOKEN = re.compile(
    r" *(?:(?P<num>\d+(?:\.\d+)?)|(?P<func>(?:sqrt|floor|ceil|C)(?=\())"
    r"|(?P<var>pi(?![A-Za-z])|[A-Za-z](?![A-Za-z_]))|(?P<op>[-+*/^(),!]))"
)
_ANCHOR = re.compile(
    r"\b(?:is|are|equal to|equals?|was|were|be|becomes|given by(?: the (?:formula|expression))?)\s+", re.IGNORECASE
)
_NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_NUMBER_WORD = re.compile(rf"({_ANCHOR.pattern})({'|'.join(_NUMBER_WORDS)})\b(?!-| +of\b)", re.IGNORECASE)
_LIST_SEPARATOR = re.compile(r" *,? +and +| *, *")
# After a stated answer: anything that makes it part of something larger (an operator, a glued
# word as in "2abc", a juxtaposed factor as in "1/2 C(n, 2)"), an alternative, a range, a unit
# that changes the value, a case split, or a list that goes on.
_CONTINUATION = re.compile(
    r"[\w\\]| *,? *(?:or|to|through|plus|minus|times|divided|multiplied|over|percent|degrees?|mod|modulo)\b"
    r"| *,? *(?:for|if|when)(?: \w+ is)? (?:even|odd|positive|negative)\b"  # piecewise answers
    r"| *(?:[-+*/^<>≤≥±%=!]|,\s*(?:\.\.\.|…|[-+(]?\d)|\.\d|\d"
    r"|(?:sqrt|floor|ceil|C)\(|\((?!i\.e\.|[A-Za-z]{2,}))",
    re.IGNORECASE,
)
_PROSE_PARENTHETICAL = re.compile(r" *\((?:i\.e\.|[A-Za-z]{2,})[^()]*\)")


def _scan_expression(text: str, start: int) -> tuple[str, int]:
    """The longest balanced math expression at ``text[start:]`` and the index where it ends."""
    pos, depth, prev, best = start, 0, None, ("", start)
    while m := _TOKEN.match(text, pos):
        tok, kind = m.group().strip(), m.lastgroup
        if m.group().startswith(" ") and prev in ("atom", ")", "!") and (kind != "op" or tok == "("):
            break  # "2 valid strings", "3 (i.e. ...)": juxtaposition across a space is prose
        if tok == "," and depth == 0:
            break
        depth += (tok == "(") - (tok == ")")
        if depth < 0:
            break
        pos, prev = m.end(), tok if kind == "op" else "atom"
        if depth == 0 and kind != "func" and prev in ("atom", ")", "!"):
            best = (text[start:pos].strip(), pos)
    return best


@functools.cache
def _sympify(expr: str) -> Any:
    """A sympy expression for the restricted math of ``_scan_expression``, or None."""
    import sympy
    from sympy.parsing.sympy_parser import (
        convert_xor,
        factorial_notation,
        implicit_multiplication,
        parse_expr,
        standard_transformations,
    )

    if re.search(r"\^\(?\d{4,}\)?\^|\^\(?\d{5,}|\d{4,}!", expr):
        return None  # towers, huge powers and factorials are not worth evaluating exactly
    names = {c: sympy.Symbol(c) for c in "abcdefghijklmnopqrstuvwxyzABDEFGHIJKLMNOPQRSTUVWXYZ"}
    names.update(C=sympy.binomial, sqrt=sympy.sqrt, floor=sympy.floor, ceil=sympy.ceiling, pi=sympy.pi)
    builtins = {name: getattr(sympy, name) for name in ("Integer", "Float", "Rational", "Symbol", "factorial")}
    transformations = (*standard_transformations, factorial_notation, convert_xor, implicit_multiplication)
    try:
        value = parse_expr(expr, local_dict=names, global_dict=builtins, transformations=transformations)
    except Exception:  # noqa: BLE001 - sympy's parser raises anything on free text: not gradable
        return None
    return value if isinstance(value, sympy.Expr) else None


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text).lower()


@functools.lru_cache(maxsize=1024)
def _echo_text(problem: str) -> str:
    return _squash(normalize_math(problem))


def _scan_statement(text: str, start: int) -> tuple[list[tuple[str, ...]], int]:
    """The answers stated at ``text[start:]``: an expression, a list ("1, 4 and 9") or an equality
    chain ("2^6 = 64", one answer per member); and the index where the statement ends."""
    answers, items, pos, end = [], [], start, start
    while True:
        expr, expr_end = _scan_expression(text, pos)
        if not expr:
            break
        items.append(expr)
        end = expr_end
        if equals := re.match(r" *= *", text[end:]):
            answers.append(tuple(items))
            items, pos = [], end + equals.end()
        elif (separator := _LIST_SEPARATOR.match(text, end)) and _scan_expression(text, separator.end())[0]:
            pos = separator.end()
        else:
            break
    if items:
        answers.append(tuple(items))
    return answers, end


def extract_answers(summary: str, problem: str | None = None) -> list[tuple[str, ...]] | None:
    """The answers a one-sentence summary states, each a tuple of expressions (a set of values).

    Returns None when the summary states an answer that cannot be graded, and an empty list when
    it states none. Statements copied from ``problem`` are skipped.

    Example:
        >>> extract_answers("The smallest value of f(x) for real x is 2, which occurs when x = 0.")
        [('2',)]
        >>> extract_answers("The number of such strings is 2^6 = 64.")
        [('2^6',), ('64',)]
        >>> extract_answers("The possible values are 1, 4 and 9.")
        [('1', '4', '9')]
        >>> extract_answers("The value is 0 or 1.") is None
        True
    """
    text = normalize_math(summary)
    text = _NUMBER_WORD.sub(lambda m: m.group(1) + str(_NUMBER_WORDS.index(m.group(2).lower())), text)
    echo = _echo_text(problem) if problem else ""
    found: list[tuple[str, ...]] = []
    for anchor in _ANCHOR.finditer(text):
        if re.search(r"\bthan or $", text[: anchor.start()]):
            continue  # "less than or equal to 1" bounds a value, it does not state one
        answers, end = _scan_statement(text, anchor.end())
        if not answers:
            continue
        statement = _squash(text[anchor.start() : end])
        if echo and re.search(re.escape(statement) + r"(?![\w.])", echo):
            continue  # copied from the problem ("less than or equal to 1")
        if re.fullmatch(r"[A-Za-z]", answers[0][0]) and re.match(r" +[A-Za-z]", text[end:]):
            continue  # "is a prime", "is n times": a lone letter before a word is prose
        if len(answers) > 1 and any(len(items) > 1 for items in answers):
            return None  # "x = 5 and x = 16": lists inside an equality chain
        if parenthetical := _PROSE_PARENTHETICAL.match(text, end):
            end = parenthetical.end()  # "4 (only for p = 2), 9": what follows still counts
        if _CONTINUATION.match(text, end):
            return None
        found.extend(answers)
    return found


@dataclass(frozen=True)
class Reference:
    """A reference answer that can be matched automatically.

    ``forms`` are equivalent forms of the answer, each a tuple of values (one value, or a set).
    """

    text: str
    forms: tuple[tuple[Any, ...], ...]

    @property
    def symbols(self) -> frozenset[str]:
        return frozenset(str(s) for form in self.forms for value in form for s in value.free_symbols)


_REFERENCE_PREFIX = re.compile(r"^(?:The limit exists and is equal to|The only possible value for the limit is) ")
_REFERENCE_SUFFIX = re.compile(r" (?:is the only possible value|inequalities|values|pairs|roots|times|numbers)$")


def _strip_trailing_parenthetical(text: str) -> str:
    """``"100 (i.e., all values)"`` -> ``"100"``; ``"(x+1)(x-1)"`` stays."""
    depth = 0
    for i in range(len(text) - 1, 0, -1) if text.endswith(")") else ():
        depth += (text[i] == ")") - (text[i] == "(")
        if depth == 0:
            return text[:i].rstrip() if text[i - 1] == " " else text
    return text


@functools.cache
def parse_reference(answer: str) -> Reference | None:
    """The gradable form of a CHAMP reference answer, or None when it cannot be matched automatically.

    Example:
        >>> parse_reference("@@C(10, 5)@@, or equivalently @@252@@").forms
        ((252,), (252,))
        >>> parse_reference("376 and 625").forms
        ((376, 625),)
        >>> parse_reference("No integer solutions") is None
        True
    """
    text = _strip_trailing_parenthetical(normalize_math(answer.replace("@@", "")).strip().rstrip("."))
    forms = []
    for part in re.split(r", or (?:equivalently|an equivalent form such as|approximately) ", text):
        part = _REFERENCE_SUFFIX.sub("", _REFERENCE_PREFIX.sub("", part.strip()))
        if re.fullmatch(r"(?:\([^()]*\))+", part):
            return None  # a factorisation: an expanded answer would be equal but wrong
        answers, end = _scan_statement(part, 0)
        if len(answers) == 1 and end == len(part):
            values = tuple(_sympify(expr) for expr in answers[0])
            if all(value is not None for value in values):
                forms.append(values)
    return Reference(answer, tuple(forms)) if forms else None


def _numbers_equal(a: Any, b: Any, a_text: str = "") -> bool | None:
    """Exact equality of two constants; None when undecidable or equal only after rounding."""
    import sympy

    try:
        if a.is_Rational and b.is_Rational:
            return bool(a == b)
        if not all(x.is_real and x.is_finite for x in (a, b)):
            return None
        diff, scale = abs(sympy.N(a - b, 50)), max(1, abs(sympy.N(b, 50)))
    except Exception:  # noqa: BLE001 - sympy raises anything on expressions it cannot evaluate: no verdict
        return None
    if diff <= 1e-12 * scale:
        return True
    decimals = max((len(d) for d in re.findall(r"\.(\d+)", a_text)), default=0)
    if decimals and diff <= 0.5 * 10.0**-decimals * (1 + 1e-9):
        return None  # 0.357 for 5/14: equal only after rounding
    return False


def _integer_points(symbols: list[str]) -> list[dict[str, int]]:
    """Evaluation points: n in 5..13 (both parities), other variables small and distinct."""
    others = [s for s in symbols if s != "n"]
    return [
        {"n": n, **{s: small + rank for rank, s in enumerate(others)}}
        for n, small in zip((5, 6, 7, 10, 13), (2, 3, 1, 4, 5), strict=True)
    ]


@functools.cache
def _values_equal(a: Any, b: Any, a_text: str = "") -> bool | None:
    """Equality of two values: exact for numbers, at integer points for expressions."""
    import sympy

    if not a.free_symbols and not b.free_symbols:
        return _numbers_equal(a, b, a_text)
    if not a.free_symbols or not b.free_symbols:
        return False  # a number for an expression in n, or the reverse
    for point in _integer_points(sorted(str(s) for s in a.free_symbols | b.free_symbols)):
        subs = {sympy.Symbol(s): v for s, v in point.items()}
        try:
            verdict = _numbers_equal(a.subs(subs), b.subs(subs))
        except Exception:  # noqa: BLE001 - substitution may fail in any way sympy likes: no verdict
            return None
        if verdict is not True:
            return verdict
    return True


def _distinct(values: tuple[Any, ...], texts: tuple[str, ...]) -> list[tuple[Any, str]]:
    kept: list[tuple[Any, str]] = []
    for value, text in zip(values, texts, strict=True):
        if not any(_values_equal(value, other) is True for other, _ in kept):
            kept.append((value, text))
    return kept


def _sets_equal(a: tuple[Any, ...], b: tuple[Any, ...], a_texts: tuple[str, ...] = ()) -> bool | None:
    """Equality of two sets of values, each given as a tuple (duplicates allowed)."""
    a_set = _distinct(a, a_texts or ("",) * len(a))
    b_set = [value for value, _ in _distinct(b, ("",) * len(b))]
    if len(a_set) != len(b_set):
        return False
    found = []
    for value, text in a_set:
        matches = [_values_equal(value, other, text) for other in b_set]
        found.append(True if True in matches else False if all(m is False for m in matches) else None)
    if all(f is True for f in found):
        return True
    return None if None in found else False


def grade_answer(summary: str, reference: Reference | str, problem: str | None = None) -> bool | None:
    """Whether a summary's final answer equals the reference: True, False or None (not gradable).

    ``reference`` is a CHAMP reference answer (or its :func:`parse_reference`); ``problem``, the
    problem text, lets statements copied from it be skipped. The rule is in the module docstring.

    Example:
        >>> grade_answer("The smallest value is 1/2.", "0.5"), grade_answer("There are 13 ways.", "3")
        (True, False)
        >>> print(grade_answer("The smallest value is approximately 0.36.", "5/14"))
        None
    """
    parsed = parse_reference(reference) if isinstance(reference, str) else reference
    if parsed is None or not summary:
        return None
    answers = extract_answers(summary, problem)
    if not answers:
        return None
    candidates = []
    for texts in answers:
        values = tuple(_sympify(text) for text in texts)
        if any(value is None for value in values):
            return None
        # An expression in other variables is a condition ("when a = b"), not the answer.
        if all({str(s) for s in value.free_symbols} <= parsed.symbols for value in values):
            candidates.append((values, texts))
    if not candidates:
        return None
    (first, first_texts), rest = candidates[0], candidates[1:]
    if any(_sets_equal(values, first, texts) is not True for values, texts in rest):
        return None  # the summary states different answers
    verdicts = [_sets_equal(first, form, first_texts) for form in parsed.forms]
    if True in verdicts:
        return True
    return False if all(v is False for v in verdicts) else None

"""Real, offline data for the embedded default: CHAMP competition math (``champ-dataset`` on PyPI).

Example:
    >>> from hf_saerl.data import load_champ, grade_answer
    >>> grade_answer("The smallest value is 1/2.", "0.5")
    True
"""

from .champ import (
    CHAMP_CATEGORIES,
    CHAMP_MODELS,
    CHAMP_PROMPT,
    STANDALONE_SETTINGS,
    champ_preference_pairs,
    corrupt_problems,
    extract_answers,
    grade_answer,
    load_champ,
    load_champ_attempts,
    load_champ_texts,
    parse_reference,
)

__all__ = [
    "CHAMP_CATEGORIES",
    "CHAMP_MODELS",
    "CHAMP_PROMPT",
    "STANDALONE_SETTINGS",
    "champ_preference_pairs",
    "corrupt_problems",
    "extract_answers",
    "grade_answer",
    "load_champ",
    "load_champ_attempts",
    "load_champ_texts",
    "parse_reference",
]

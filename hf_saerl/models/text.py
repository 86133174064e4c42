"""Build the text an encoder reads from a batch: one column, or a template over several columns,
optionally rendered through the tokenizer's chat template.

Every value is checked at this edge, naming its column and row: a text is a ``str`` (or ``None``: empty); with
``chat_template=True`` also a list of ``{"role", "content"}`` messages. Anything else (an int, a list of strings,
bytes) is a :class:`~hf_saerl.errors.ParameterTypeError`, never ``str()``-ed into text. Missing values are empty
text (the encoder's ``on_empty`` decides): a template whose column holds ``None`` (not the word "None"), and a
conversation none of whose messages has content (not the bare chat scaffolding).
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from typing import Any

from ..core.validation import check_bool, is_missing
from ..errors import InvalidParameterError, MissingColumnError, ParameterTypeError

__all__ = ["TextBuilder", "check_text_values", "is_chat", "render_chat", "tokenize_texts"]


class TextBuilder:
    """Turns a batch dict into a list of strings.

    Example:
        >>> TextBuilder(template="Q: {question}\\nA: {answer}").build({"question": ["1+1?"], "answer": ["2"]})
        ['Q: 1+1?\\nA: 2']
    """

    def __init__(self, text_column: str | None = "text", template: str | None = None, chat_template: bool = False):
        for name, value in (("text_column", text_column), ("template", template)):
            if value is not None and not isinstance(value, str):
                raise ParameterTypeError(
                    f"{name} must be a str or None, got {value!r} ({type(value).__name__}). "
                    "Pass text_column='prompt' for one column, or template='{question} {answer}' "
                    "over several."
                )
        check_bool(
            "chat_template",
            chat_template,
            "Pass chat_template=True to render chat messages through the "
            "tokenizer's chat template, or chat_template=False to read plain text.",
        )
        if template is not None:
            fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
            if not fields or any(f == "" or f.isdigit() for f in fields):
                raise InvalidParameterError(
                    f"template={template!r} must name its columns, e.g. '{{question}}\\n{{answer}}', or pass "
                    "text_column= to read one column as is."
                )
            self.columns = list(dict.fromkeys(f.split(".")[0].split("[")[0] for f in fields))
        elif text_column is None:
            raise InvalidParameterError(
                "Pass text_column= (a column holding the text) or template= over several columns."
            )
        else:
            self.columns = [text_column]
        self.text_column = text_column
        self.template = template
        self.chat_template = chat_template

    def check_columns(self, available: Sequence[str] | None) -> None:
        """Raise :class:`~hf_saerl.errors.MissingColumnError` if a column the text is read from is not in
        ``available`` (``None``: unknown, nothing to check)."""
        if available is None:
            return
        missing = [c for c in self.columns if c not in available]
        if missing:
            raise MissingColumnError(
                f"Missing column(s) {missing}; the dataset has {sorted(available)}. "
                "Set text_column= or template= to columns that exist."
            )

    def build(self, batch: Mapping[str, Sequence[Any]], tokenizer: Any = None) -> list[Any]:
        """The text of each row of ``batch``: the column, or the template filled in, rendered through
        ``tokenizer``'s chat template when ``chat_template`` is set. Empty rows (``None``, a template over a
        missing value, a conversation without content) come back as ``None``; values of another type raise a
        :class:`~hf_saerl.errors.ParameterTypeError` naming the column and the row."""
        self.check_columns(list(batch.keys()))
        if self.template is not None:
            n = len(batch[self.columns[0]])
            texts: list[Any] = []
            for i in range(n):
                values = {c: batch[c][i] for c in self.columns}
                if any(is_missing(v) for v in values.values()):
                    texts.append(None)  # never the literal "None" / "nan": an empty row, on_empty decides
                    continue
                texts.append(self.template.format(**values))
            return check_text_values(texts, "template " + repr(self.template), tokenizer, self.chat_template)
        return check_text_values(
            list(batch[self.columns[0]]), f"column {self.columns[0]!r}", tokenizer, self.chat_template
        )

    def to_dict(self) -> dict[str, Any]:
        """The constructor options, as :meth:`hf_saerl.SAEEncoder.config` records them."""
        return {"text_column": self.text_column, "template": self.template, "chat_template": self.chat_template}


def is_chat(value: Any) -> bool:
    """Whether ``value`` is a conversation: a non-empty list (or tuple) of dicts each holding a ``role``."""
    return (
        isinstance(value, (list, tuple))
        and len(value) > 0
        and all(isinstance(m, Mapping) and "role" in m for m in value)
    )


def _chat_is_empty(messages: Sequence[Mapping[str, Any]]) -> bool:
    return all(
        m.get("content") is None or (isinstance(m.get("content"), str) and not m["content"].strip()) for m in messages
    )


def check_text_values(
    values: Sequence[Any], where: str, tokenizer: Any = None, chat_template: bool = False
) -> list[Any]:
    """``values`` as texts an encoder can tokenize: ``str`` kept, missing values (``None``, NaN) as ``None``;
    with ``chat_template`` a string becomes one user message and a conversation is rendered through
    ``tokenizer``'s chat template (``None`` when no message has content). Anything else raises a
    :class:`~hf_saerl.errors.ParameterTypeError` naming ``where`` (the column or template) and the row.

    Example:
        >>> check_text_values(["a", None], "column 'text'")
        ['a', None]
        >>> check_text_values(["a", 3], "column 'text'")
        Traceback (most recent call last):
        ...
        hf_saerl.errors.ParameterTypeError: column 'text' holds 3 (int) in batch row 1, not text. Cast the column to strings first, e.g. dataset.cast_column('text', datasets.Value('string')), or point text_column= at a column of strings.
    """
    if chat_template and (tokenizer is None or getattr(tokenizer, "chat_template", None) is None):
        raise InvalidParameterError(
            "chat_template=True, but the tokenizer has no chat template. Set "
            "tokenizer.chat_template, or pass chat_template=False to read the text as is."
        )
    column = where.split("'")[1] if where.startswith("column '") else "text"
    out: list[Any] = []
    for row, value in enumerate(values):
        if is_missing(value):
            out.append(None)
        elif isinstance(value, str):
            out.append(render_chat(tokenizer, value) if chat_template and value.strip() else value)
        elif is_chat(value):
            if not chat_template:
                raise InvalidParameterError(
                    f"{where} holds chat messages (lists of dicts) in batch row {row}; pass chat_template=True, or "
                    "point text_column= at a column of plain strings."
                )
            out.append(None if _chat_is_empty(value) else render_chat(tokenizer, value))
        elif isinstance(value, (list, tuple)):
            kinds = sorted({type(v).__name__ for v in value}) or ["nothing"]
            raise ParameterTypeError(
                f"{where} holds a list of {'/'.join(kinds)} in batch row {row}, which is neither text nor chat "
                "messages ([{'role': ..., 'content': ...}, ...]). Join the parts into one string first, e.g. "
                f"dataset.map(lambda r: {{{column!r}: ' '.join(r[{column!r}])}}), or build the messages as dicts."
            )
        else:
            raise ParameterTypeError(
                f"{where} holds {value!r} ({type(value).__name__}) in batch row {row}, not text. Cast the column to "
                f"strings first, e.g. dataset.cast_column({column!r}, datasets.Value('string')), or point "
                "text_column= at a column of strings."
            )
    return out


def tokenize_texts(
    tokenizer: Any,
    texts: Sequence[Any],
    *,
    max_length: int,
    on_empty: str = "error",
    on_overlong: str = "truncate",
    add_special_tokens: bool = True,
    column: str = "text",
) -> tuple[list[list[int]], list[bool]]:
    """Token ids of each text cut to ``max_length``, and whether it was cut: the encoder's length rules.

    Empty texts (``None`` or blank) are refused with ``on_empty="error"``, else give no tokens; texts longer than
    ``max_length`` are refused with ``on_overlong="error"``. ``column`` names the text column in error messages.

    Example:
        >>> from hf_saerl.testing import tiny_tokenizer
        >>> ids, cut = tokenize_texts(tiny_tokenizer(), ["abc", "", "abcdefgh"], max_length=4, on_empty="zeros")
        >>> [len(row) for row in ids], cut
        ([4, 0, 4], [False, False, True])
    """
    empty = [i for i, t in enumerate(texts) if t is None or not str(t).strip()]
    if empty and on_empty == "error":
        raise InvalidParameterError(
            f"{len(empty)} empty text(s) in this batch (batch rows {empty[:10]}). Filter them first, e.g. "
            f"dataset.filter(lambda r: bool(r[{column!r}] and r[{column!r}].strip())), "
            "or give them no features (sae_n_tokens=0) with SAEEncoder(tokens=TokenPolicy(on_empty='zeros'))."
        )
    encoded = tokenizer(
        [t if i not in empty else "" for i, t in enumerate(texts)],
        add_special_tokens=add_special_tokens,
        truncation=False,
    )["input_ids"]
    truncated = [len(ids) > max_length for ids in encoded]
    if any(truncated) and on_overlong == "error":
        rows = [i for i, t in enumerate(truncated) if t]
        longest = max(len(encoded[i]) for i in rows)
        raise InvalidParameterError(
            f"{len(rows)} text(s) exceed max_length={max_length} tokens (batch rows {rows[:10]}, longest "
            f"{longest}). Raise max_length=, shorten the texts, or cut them: tokens=TokenPolicy(on_overlong='truncate')."
        )
    token_ids = [ids[:max_length] if i not in empty else [] for i, ids in enumerate(encoded)]
    return token_ids, truncated


def render_chat(tokenizer: Any, text_or_messages: Any, add_generation_prompt: bool = False) -> str:
    """Render a user message (a string) or a list of ``{"role", "content"}`` messages as chat text (with the
    assistant's turn opened when ``add_generation_prompt``)."""
    if isinstance(text_or_messages, str):
        messages = [{"role": "user", "content": text_or_messages}]
    elif is_chat(text_or_messages):
        messages = [dict(m, content="" if m.get("content") is None else m["content"]) for m in text_or_messages]
    else:
        raise ParameterTypeError(
            f"A chat is a string or a list of {{'role', 'content'}} dicts, got "
            f"{text_or_messages!r} ({type(text_or_messages).__name__}). Build the messages as "
            "[{'role': 'user', 'content': text}], or pass plain strings."
        )
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)

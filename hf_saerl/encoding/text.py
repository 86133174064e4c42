"""Build the text an encoder reads from a batch: one column, or a template over several columns,
optionally rendered through the tokenizer's chat template."""

from __future__ import annotations

import string
from typing import Any, Mapping, Sequence

from ..errors import InvalidParameterError, MissingColumnError


class TextBuilder:
    """Turns a batch dict into a list of strings.

    Example:
        >>> TextBuilder(template="Q: {question}\\nA: {answer}").build({"question": ["1+1?"], "answer": ["2"]})
        ['Q: 1+1?\\nA: 2']
    """

    def __init__(self, text_column: str | None = "text", template: str | None = None, chat_template: bool = False):
        if template is not None:
            fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
            if not fields or any(f == "" or f.isdigit() for f in fields):
                raise InvalidParameterError(
                    f"template={template!r} must name its columns, e.g. '{{question}}\\n{{answer}}', or pass "
                    "text_column= to read one column as is."
                )
            self.columns = list(dict.fromkeys(f.split(".")[0].split("[")[0] for f in fields))
        elif text_column is None:
            raise InvalidParameterError("Pass text_column= (a column holding the text) or template= over several "
                                        "columns.")
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
        ``tokenizer``'s chat template when ``chat_template`` is set (``None`` rows stay ``None``)."""
        self.check_columns(list(batch.keys()))
        if self.template is not None:
            n = len(batch[self.columns[0]])
            texts: list[Any] = [
                self.template.format(**{c: batch[c][i] for c in self.columns}) for i in range(n)
            ]
        else:
            texts = list(batch[self.columns[0]])
        if self.chat_template:
            if tokenizer is None or getattr(tokenizer, "chat_template", None) is None:
                raise InvalidParameterError("chat_template=True, but the tokenizer has no chat template. Set "
                                            "tokenizer.chat_template, or pass chat_template=False to read the text "
                                            "as is.")
            texts = [None if t is None else render_chat(tokenizer, t) for t in texts]
        elif any(isinstance(t, list) for t in texts):
            raise InvalidParameterError(
                f"Column {self.columns[0]!r} holds chat messages (lists of dicts); pass chat_template=True, or "
                "point text_column= at a column of plain strings."
            )
        return texts

    def to_dict(self) -> dict[str, Any]:
        """The constructor options, as :meth:`hf_saerl.SAEEncoder.config` records them."""
        return {"text_column": self.text_column, "template": self.template, "chat_template": self.chat_template}


def tokenize_texts(tokenizer: Any, texts: Sequence[Any], *, max_length: int, on_empty: str = "error",
                   on_overlong: str = "truncate", add_special_tokens: bool = True,
                   column: str = "text") -> tuple[list[list[int]], list[bool]]:
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
            "or pass on_empty='zeros' to give them no features (sae_n_tokens=0)."
        )
    encoded = tokenizer([t if i not in empty else "" for i, t in enumerate(texts)],
                        add_special_tokens=add_special_tokens, truncation=False)["input_ids"]
    truncated = [len(ids) > max_length for ids in encoded]
    if any(truncated) and on_overlong == "error":
        rows = [i for i, t in enumerate(truncated) if t]
        longest = max(len(encoded[i]) for i in rows)
        raise InvalidParameterError(
            f"{len(rows)} text(s) exceed max_length={max_length} tokens (batch rows {rows[:10]}, longest "
            f"{longest}). Raise max_length=, shorten the texts, or pass on_overlong='truncate'."
        )
    token_ids = [ids[:max_length] if i not in empty else [] for i, ids in enumerate(encoded)]
    return token_ids, truncated


def render_chat(tokenizer: Any, text_or_messages: Any, add_generation_prompt: bool = False) -> str:
    """Render a user message (a string) or a list of ``{"role", "content"}`` messages as chat text (with the
    assistant's turn opened when ``add_generation_prompt``)."""
    messages = (
        [{"role": "user", "content": text_or_messages}] if isinstance(text_or_messages, str) else list(text_or_messages)
    )
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)

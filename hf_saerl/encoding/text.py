"""Build the text an encoder reads from a batch: one column, or a template over several columns,
optionally rendered through the tokenizer's chat template."""

from __future__ import annotations

import string
from typing import Any, Mapping, Sequence


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
                raise ValueError(
                    f"template={template!r} must name its columns, e.g. '{{question}}\\n{{answer}}'."
                )
            self.columns = list(dict.fromkeys(f.split(".")[0].split("[")[0] for f in fields))
        elif text_column is None:
            raise ValueError("Pass text_column= (a column holding the text) or template= over several columns.")
        else:
            self.columns = [text_column]
        self.text_column = text_column
        self.template = template
        self.chat_template = chat_template

    def check_columns(self, available: Sequence[str] | None) -> None:
        if available is None:
            return
        missing = [c for c in self.columns if c not in available]
        if missing:
            raise KeyError(
                f"Missing column(s) {missing}; the dataset has {sorted(available)}. "
                "Set text_column= or template= to columns that exist."
            )

    def build(self, batch: Mapping[str, Sequence[Any]], tokenizer: Any = None) -> list[Any]:
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
                raise ValueError("chat_template=True, but the tokenizer has no chat template.")
            texts = [None if t is None else render_chat(tokenizer, t) for t in texts]
        elif any(isinstance(t, list) for t in texts):
            raise ValueError(
                f"Column {self.columns[0]!r} holds chat messages (lists of dicts); pass chat_template=True."
            )
        return texts

    def to_dict(self) -> dict[str, Any]:
        return {"text_column": self.text_column, "template": self.template, "chat_template": self.chat_template}


def render_chat(tokenizer: Any, text_or_messages: Any, add_generation_prompt: bool = False) -> str:
    """Render a user message (a string) or a list of ``{"role", "content"}`` messages as chat text (with the
    assistant's turn opened when ``add_generation_prompt``)."""
    messages = (
        [{"role": "user", "content": text_or_messages}] if isinstance(text_or_messages, str) else list(text_or_messages)
    )
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)

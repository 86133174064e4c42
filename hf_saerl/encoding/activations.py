"""Read a model's activations at one hook, for real tokens only, with a truncated forward pass.

:class:`ActivationReader` is the single implementation of "run the model up to the hook and keep the
activations of the tokens that matter" shared by :class:`hf_saerl.SAEEncoder` (which pools them
through an SAE) and :func:`hf_saerl.encoding.sae_training.train_sae` (which trains an SAE on them):

* texts are grouped into length-sorted micro-batches of at most ``token_budget`` padded tokens
  (:func:`hf_saerl.encoding.batching.plan_microbatches`);
* the forward pass stops at the hooked module (:mod:`hf_saerl.encoding.hooks`), so later layers and the LM head
  never run, under ``torch.inference_mode``;
* padding, and the BOS position when ``exclude_bos`` is set, are dropped.

Example:
    >>> from hf_saerl.encoding.activations import ActivationReader
    >>> from hf_saerl.testing import tiny_llama, tiny_tokenizer
    >>> reader = ActivationReader(tiny_llama(), tiny_tokenizer(), "blocks.1.hook_resid_post", max_length=64)
    >>> acts = torch.cat(list(reader.iter_activations(["2 + 2 = 4", "The sky is blue."])))
    >>> tuple(acts.shape)  # 9 + 16 characters; the BOS of each text is left out
    (25, 32)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import torch

from ..core.validation import check_finite
from ..errors import InvalidParameterError
from .batching import plan_microbatches
from .hooks import ResolvedHook, resolve_hook


def _bad_rows(keep: torch.Tensor, flat: torch.Tensor) -> list[int]:
    """The micro-batch rows whose kept tokens in ``flat`` (``hidden[keep]``) hold a non-finite value."""
    row_ids = torch.arange(keep.shape[0], device=keep.device)[:, None].expand_as(keep)[keep]
    return row_ids[~flat.isfinite().all(-1)].unique().tolist()


class ActivationBatch(NamedTuple):
    """One micro-batch of hooked activations.

    ``rows``: the indices (into the ``token_ids`` given) of the texts in this micro-batch;
    ``flat``: ``(n_tokens, d)`` activations of their kept tokens, text after text, in token order;
    ``row_ids``: for each kept token, its text's position within ``rows``;
    ``is_last``: whether the token is the last kept token of its text.
    """

    rows: list[int]
    flat: torch.Tensor
    row_ids: torch.Tensor
    is_last: torch.Tensor


class ActivationReader:
    """Run ``model`` up to ``hook_name`` and yield the activations of real tokens.

    Args:
        model: a loaded ``transformers`` causal LM (put it on its device and dtype first).
        tokenizer: its tokenizer.
        hook_name: ``blocks.{L}.hook_resid_pre|resid_post|mlp_out|attn_out`` or an HF module path
            (see :mod:`hf_saerl.encoding.hooks`); an unknown hook raises a
            :class:`~hf_saerl.errors.HookMismatchError` naming the choices.
        max_length: texts are cut to this many tokens (BOS included) by :meth:`tokenize`.
        token_budget: padded tokens per micro-batch (rows × longest row).
        exclude_bos: leave out position 0 when it holds the BOS token (its norm is huge and its
            activation is the same for every text).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        hook_name: str,
        *,
        max_length: int = 512,
        token_budget: int = 4096,
        exclude_bos: bool = True,
    ):
        if max_length < 2:
            raise InvalidParameterError(f"max_length must be at least 2 tokens, got {max_length}; the default is 512.")
        if token_budget < 1:
            raise InvalidParameterError(
                f"token_budget must be >= 1 (padded tokens per micro-batch), got {token_budget}; the default is 4096."
            )
        self.model, self.tokenizer, self.hook_name = model, tokenizer, hook_name
        self.max_length, self.token_budget, self.exclude_bos = max_length, token_budget, exclude_bos
        self.hook: ResolvedHook = resolve_hook(model, hook_name)
        self.device = next(model.parameters()).device

    def tokenize(self, texts: Sequence[str], add_special_tokens: bool = True) -> tuple[list[list[int]], list[bool]]:
        """Token ids of each text cut to ``max_length``, and whether it was cut."""
        encoded = self.tokenizer([str(t) for t in texts], add_special_tokens=add_special_tokens, truncation=False)[
            "input_ids"
        ]
        return [ids[: self.max_length] for ids in encoded], [len(ids) > self.max_length for ids in encoded]

    def microbatches(
        self, token_ids: Sequence[Sequence[int]], pool_from: Sequence[int] | None = None
    ) -> Iterator[ActivationBatch]:
        """Run the truncated forward over ``token_ids`` (already tokenized, any lengths; empty ones are
        skipped) and yield one :class:`ActivationBatch` per micro-batch. With ``pool_from``, tokens
        before position ``pool_from[i]`` of text ``i`` are left out too."""
        bos = self.tokenizer.bos_token_id if self.exclude_bos else None
        pad = self.tokenizer.pad_token_id
        pad = pad if pad is not None else (self.tokenizer.eos_token_id or 0)
        lengths = [len(t) for t in token_ids]
        for rows in plan_microbatches(lengths, self.token_budget):
            rows = [r for r in rows if lengths[r] > 0]
            if not rows:
                continue
            width = lengths[rows[0]]
            input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
            attention = torch.zeros((len(rows), width), dtype=torch.long)
            for j, r in enumerate(rows):
                input_ids[j, : lengths[r]] = torch.as_tensor(list(token_ids[r]), dtype=torch.long)
                attention[j, : lengths[r]] = 1
            keep = attention.bool()
            if bos is not None:
                keep[:, 0] &= input_ids[:, 0] != bos
            if pool_from is not None:
                positions = torch.arange(width)[None, :]
                keep &= positions >= torch.tensor([pool_from[r] for r in rows])[:, None]
            with torch.inference_mode():
                hidden = self.hook.capture(
                    self.model,
                    input_ids=input_ids.to(self.device),
                    attention_mask=attention.to(self.device),
                    use_cache=False,
                )
                keep = keep.to(hidden.device)
                flat = hidden[keep]
                if not bool(flat.isfinite().all()):
                    bad = sorted({rows[int(j)] for j in _bad_rows(keep, flat)})
                    check_finite(
                        flat,
                        f"The activations at {self.hook_name!r} (texts {bad[:10]} of this call)",
                        "The model's weights or its dtype overflow here: load the model in float32 "
                        "(dtype='float32'), or check its weights (load_model refuses non-finite ones).",
                    )
                row_ids = torch.arange(len(rows), device=hidden.device)[:, None].expand_as(keep)[keep]
            is_last = torch.ones_like(row_ids, dtype=torch.bool)
            is_last[:-1] = row_ids[1:] != row_ids[:-1]
            yield ActivationBatch(rows, flat, row_ids, is_last)

    def iter_activations(
        self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False, add_special_tokens: bool = True
    ) -> Iterator[torch.Tensor]:
        """Yield ``(n_tokens, d)`` activation tensors (on the model's device and dtype) for ``texts``,
        micro-batch by micro-batch. Texts are tokenized ``batch_size`` at a time and cut to
        ``max_length``; a progress bar counts texts when ``progress`` is set."""
        from tqdm.auto import tqdm

        with tqdm(total=len(texts), desc=f"activations @ {self.hook_name}", unit="text", disable=not progress) as bar:
            for start in range(0, len(texts), batch_size):
                chunk = list(texts[start : start + batch_size])
                ids, _ = self.tokenize(chunk, add_special_tokens=add_special_tokens)
                for batch in self.microbatches(ids):
                    yield batch.flat
                bar.update(len(chunk))

    def __repr__(self) -> str:
        return (
            f"ActivationReader({type(self.model).__name__}, hook_name={self.hook_name!r}, "
            f"max_length={self.max_length}, token_budget={self.token_budget}, exclude_bos={self.exclude_bos})"
        )

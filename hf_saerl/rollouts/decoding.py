"""Continuous batched sampling for causal LMs on a KV cache: finished rows leave, waiting rows join, every step.

``transformers``' ``generate`` runs a batch until its longest row ends, so one long completion holds the whole
batch back, and every sample of a prompt recomputes the prompt. :func:`decode` keeps up to ``max_batch`` rows in
flight on one left-padded ``DynamicCache``:

- a prompt is prefilled once and its cache is copied to each of its samples' rows;
- a row that emits an end-of-sequence token or reaches ``max_new_tokens`` is dropped from the cache at once;
- free slots are refilled from the queue (the newcomers' prefilled cache is left-padded to the width of the
  running one, or the other way round, and concatenated along the batch), and all-padding columns are trimmed;
- each row samples from its own ``torch.Generator`` by the Gumbel-max trick of
  :class:`~hf_saerl.rollouts.backends.SeededSampling`, which draws one uniform vector per row and step whatever
  the batch holds. A row's tokens therefore depend on its seed, not on its neighbours, row order or
  ``max_batch``, up to the floating-point differences between batch shapes (the same caveat as ``generate``).

Why not ``generate_batch`` (transformers' continuous batching)? It samples all requests from one global random
stream, so a prompt's samples would depend on what else is in flight; the labels must be seeded per prompt.

Example:
    >>> from hf_saerl.rollouts.decoding import decode
    >>> from hf_saerl.testing import tiny_llama
    >>> model = tiny_llama()
    >>> rows = decode(model, [[1, 5, 6], [1, 7]], [(0, 11), (0, 12), (1, 13)], max_new_tokens=4, eos_ids=[2],
    ...               max_batch=2)
    >>> [len(tokens) <= 4 for tokens, _ in rows]
    [True, True, True]
    >>> rows == decode(model, [[1, 5, 6], [1, 7]], [(0, 11), (0, 12), (1, 13)], max_new_tokens=4, eos_ids=[2],
    ...                max_batch=3)
    True
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["decode", "supports_decode"]

#: generation_config fields whose non-default values add logits processors ``decode`` does not apply
_UNSUPPORTED_GENERATION = {
    "repetition_penalty": 1.0,
    "no_repeat_ngram_size": 0,
    "bad_words_ids": None,
    "suppress_tokens": None,
    "begin_suppress_tokens": None,
    "min_new_tokens": None,
    "min_length": 0,
    "forced_bos_token_id": None,
    "forced_eos_token_id": None,
    "sequence_bias": None,
    "encoder_repetition_penalty": 1.0,
}


def supports_decode(model: Any) -> bool:
    """Whether :func:`decode` samples exactly what ``model.generate`` would: a decoder-only model with a dynamic
    (non-sliding) cache, whose generation config adds no logits processor (repetition penalty, banned words...).

    Example:
        >>> from hf_saerl.testing import tiny_llama
        >>> supports_decode(tiny_llama())
        True
    """
    config = getattr(model, "config", None)
    if config is None or getattr(config, "is_encoder_decoder", False):
        return False
    if getattr(config, "sliding_window", None) or (
        getattr(config, "layer_types", None) and any(t != "full_attention" for t in config.layer_types)
    ):
        return False
    generation = getattr(model, "generation_config", None)
    for key, neutral in _UNSUPPORTED_GENERATION.items():
        value = getattr(generation, key, neutral) if generation is not None else neutral
        if value not in (neutral, None) and not (isinstance(value, (list, tuple)) and not value):
            return False
    return True


def decode(
    model: Any,
    prompt_ids: Sequence[Sequence[int]],
    rows: Sequence[tuple[int, int]],
    *,
    max_new_tokens: int,
    eos_ids: Sequence[int],
    max_batch: int = 32,
    sampler: Any = None,
    on_step: Callable[[int, int], None] | None = None,
) -> list[tuple[list[int], bool]]:
    """Sample one completion per row: ``rows[r] = (prompt index, row seed)``; returns ``(token ids, cut off)``
    per row, in the order of ``rows``. ``cut off`` is True when the row reached ``max_new_tokens`` without an
    end-of-sequence token (the ids then hold ``max_new_tokens`` tokens; otherwise they end with the EOS id).

    Args:
        model: a causal LM (``model(input_ids, attention_mask, position_ids, past_key_values, logits_to_keep)``).
        prompt_ids: token ids of each prompt (special tokens included).
        max_batch: rows in flight.
        sampler: a :class:`~hf_saerl.rollouts.backends.SeededSampling` (its warpers are used, its generators are
            replaced by the rows'); ``None`` decodes greedily.
        on_step: called after every step with (tokens generated in the step, rows finished in the step).
    """
    import inspect

    import torch
    from transformers import DynamicCache

    device = next(model.parameters()).device
    # transformers >= 5.2x names the cache argument ``cache`` (``past_key_values`` is deprecated)
    cache_kw = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    eos = torch.tensor(sorted({int(e) for e in eos_ids}), dtype=torch.long, device=device)
    out: list[tuple[list[int], bool]] = [([], False)] * len(rows)
    # waiting rows, grouped by prompt, longest prompts first (neighbours in the queue have similar widths)
    queue = deque(sorted(range(len(rows)), key=lambda r: (-len(prompt_ids[rows[r][0]]), rows[r][0], r)))
    active: list[int] = []
    generators: list[Any] = []
    tokens: list[list[int]] = []
    cache: Any = None
    # tensors once the first prompts are admitted (the loop reads them only then), None while no row is active
    mask: Any = None
    last: Any = None
    pos: Any = None
    refill_at = max(1, max_batch // 4)  # admit newcomers once this many slots are free (a prefill has overhead)

    def layers(c: Any) -> list[Any]:
        return list(c.layers)

    def prefill(admitted: list[int]) -> tuple[Any, Any, Any, Any]:
        prompts = list(dict.fromkeys(rows[r][0] for r in admitted))
        width = max(len(prompt_ids[p]) for p in prompts)
        ids = torch.zeros((len(prompts), width), dtype=torch.long)
        att = torch.zeros((len(prompts), width), dtype=torch.long)
        for k, p in enumerate(prompts):
            seq = prompt_ids[p]
            ids[k, width - len(seq) :] = torch.tensor(list(seq), dtype=torch.long)
            att[k, width - len(seq) :] = 1
        ids, att = ids.to(device), att.to(device)
        positions = (att.cumsum(-1) - 1).clamp_(min=0)
        new_cache = DynamicCache()
        logits = (
            model(
                input_ids=ids,
                attention_mask=att,
                position_ids=positions,
                use_cache=True,
                logits_to_keep=1,
                **{cache_kw: new_cache},
            )
            .logits[:, -1]
            .to(dtype=torch.float32)
        )
        index = torch.tensor([prompts.index(rows[r][0]) for r in admitted], dtype=torch.long, device=device)
        for layer in layers(new_cache):  # one prefilled prompt -> each of its samples' rows
            layer.keys, layer.values = layer.keys.index_select(0, index), layer.values.index_select(0, index)
        return new_cache, att.index_select(0, index), logits.index_select(0, index), att.sum(-1).index_select(0, index)

    def sample(scores: Any, gens: list[Any]) -> Any:
        if sampler is None:
            return scores.argmax(-1)
        return sampler.noisy_scores(scores, gens).argmax(-1)

    with torch.inference_mode():
        while queue or active:
            free = max_batch - len(active)
            if queue and (free >= refill_at or not active):
                admitted = [queue.popleft() for _ in range(min(free, len(queue)))]
                new_cache, new_mask, scores, new_pos = prefill(admitted)
                new_gens = [torch.Generator(device=device).manual_seed(int(rows[r][1])) for r in admitted]
                new_last = sample(scores, new_gens)
                if cache is None:
                    cache, mask, pos = new_cache, new_mask, new_pos
                    last = new_last
                else:
                    width = max(mask.shape[1], new_mask.shape[1])
                    old_pad, new_pad = width - mask.shape[1], width - new_mask.shape[1]
                    for old_layer, new_layer in zip(layers(cache), layers(new_cache), strict=True):
                        for name in ("keys", "values"):
                            a, b = getattr(old_layer, name), getattr(new_layer, name)
                            a = torch.nn.functional.pad(a, (0, 0, old_pad, 0)) if old_pad else a
                            b = torch.nn.functional.pad(b, (0, 0, new_pad, 0)) if new_pad else b
                            setattr(old_layer, name, torch.cat([a, b], dim=0))
                    mask = torch.cat(
                        [torch.nn.functional.pad(mask, (old_pad, 0)), torch.nn.functional.pad(new_mask, (new_pad, 0))],
                        dim=0,
                    )
                    pos, last = torch.cat([pos, new_pos]), torch.cat([last, new_last])
                active += admitted
                generators += new_gens
                tokens += [[] for _ in admitted]
                step_rows = len(admitted)
                chosen = new_last
                offset = len(active) - len(admitted)
            else:
                mask = torch.cat([mask, torch.ones((mask.shape[0], 1), dtype=mask.dtype, device=device)], dim=1)
                logits = model(
                    input_ids=last[:, None],
                    attention_mask=mask,
                    position_ids=pos[:, None],
                    use_cache=True,
                    logits_to_keep=1,
                    **{cache_kw: cache},
                ).logits[:, -1]
                pos = pos + 1
                chosen = sample(logits.to(dtype=torch.float32), generators)
                last = chosen
                step_rows, offset = len(active), 0
            # record the step's tokens and find the rows that finished
            chosen_list = chosen.tolist()
            is_eos = torch.isin(chosen, eos).tolist()
            done: list[int] = []
            for k in range(step_rows):
                slot = offset + k
                tokens[slot].append(chosen_list[k])
                if is_eos[k] or len(tokens[slot]) >= max_new_tokens:
                    out[active[slot]] = (tokens[slot], not is_eos[k])
                    done.append(slot)
            if on_step is not None:
                on_step(step_rows, len(done))
            if done:
                keep = [s for s in range(len(active)) if s not in set(done)]
                active = [active[s] for s in keep]
                generators = [generators[s] for s in keep]
                tokens = [tokens[s] for s in keep]
                if not active:
                    cache = mask = last = pos = None
                    continue
                index = torch.tensor(keep, dtype=torch.long, device=device)
                mask, last, pos = mask.index_select(0, index), last.index_select(0, index), pos.index_select(0, index)
                start = int(mask.any(0).to(torch.long).argmax())  # the first column some row still reads
                for layer in layers(cache):
                    layer.keys = layer.keys.index_select(0, index)[:, :, start:]
                    layer.values = layer.values.index_select(0, index)[:, :, start:]
                mask = mask[:, start:]
    return out

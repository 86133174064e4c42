"""Train a TopK SAE locally, with sae-lens's own trainer, for a model that has no pretrained SAE.

:func:`train_sae` reads the model's activations at one hook over a list of texts once
(:class:`hf_saerl.encoding.activations.ActivationReader`: truncated forward, padding and BOS left out), keeps
them in memory (float32, shuffled), holds out whole texts for evaluation, and feeds random batches to
``sae_lens.SAETrainer`` with a ``TopKTrainingSAE`` for ``total_tokens`` samples (several passes over the
activations are fine). The result is a sae-lens inference ``TopKSAE`` with ``cfg.metadata.hook_name``
and ``model_name`` set, plus honest quality numbers measured on the held-out texts.

Results are cached under ``cache_dir`` (default ``saes/`` in ``$HF_SAERL_CACHE`` or ``~/.cache/hf_saerl``) in
a folder named by a hash of everything that decides them (model weights or id, tokenizer, hook,
hyper-parameters, texts, format version); the folder is a plain sae-lens folder
(``cfg.json`` + ``sae_weights.safetensors``, loadable with ``SAE.load_from_disk`` or
:func:`hf_saerl.load_sae`) plus ``training.json`` with the stats and the configuration.

The defaults (:data:`DEFAULT_SAE_TRAINING`) were measured on SmolLM2-135M over CHAMP text: held-out explained
variance 0.85, a few minutes on 2 CPU cores. The worked example's CHAMP texts and its smaller CI preset live in
:mod:`hf_saerl.demo.presets`.

Example:
    >>> from hf_saerl import SAEEncoder
    >>> from hf_saerl.encoding.sae_training import train_sae
    >>> from hf_saerl.testing import tiny_llama, tiny_tokenizer
    >>> model, tok = tiny_llama(), tiny_tokenizer()
    >>> texts = [f"{a} + {b} = {a + b}" for a in range(12) for b in range(12)]
    >>> sae, stats = train_sae(model, tok, texts, d_sae=64, k=8, total_tokens=20_000, lr=3e-3,
    ...                        batch_size_tokens=256, cache=False, progress=False)
    >>> sae.cfg.metadata.hook_name, sae.cfg.d_sae, stats["explained_variance"] > 0.5
    ('blocks.1.hook_resid_post', 64, True)
    >>> SAEEncoder(model, sae, tokenizer=tok, top_k=4).encode(["1 + 1 = 2"]).shape
    (1, 64)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from ..core.fingerprint import module_digest, stable_hash
from ..core.validation import check_integer, check_real
from ..errors import HookMismatchError, InvalidParameterError
from ..models.identity import tokenizer_identity
from .activations import ActivationReader
from .config import DEFAULT_SAE_TRAINING

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
TRAINING_FILE = "training.json"


#: Above this share of dead latents a trained SAE is reported as starved of data.
DEAD_WARNING = 0.05


def default_cache_dir() -> Path:
    """``saes/`` under :func:`hf_saerl.core.cache.cache_root` (``$HF_SAERL_CACHE`` or ``~/.cache/hf_saerl``)."""
    from ..core.cache import cache_root

    return cache_root() / "saes"


def middle_hook(model: Any, site: str = "resid_post") -> str:
    """``blocks.{n_layers // 2}.hook_{site}``: the default hook (layer 15 of SmolLM2's 30)."""
    n_layers = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    if not n_layers:
        from .hooks import find_decoder_layers

        n_layers = len(find_decoder_layers(model)[1])
    return f"blocks.{n_layers // 2}.hook_{site}"


def train_sae(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    hook_name: str | None = None,
    d_sae: int = DEFAULT_SAE_TRAINING["d_sae"],
    k: int = DEFAULT_SAE_TRAINING["k"],
    total_tokens: int = DEFAULT_SAE_TRAINING["total_tokens"],
    batch_size_tokens: int = DEFAULT_SAE_TRAINING["batch_size_tokens"],
    lr: float = DEFAULT_SAE_TRAINING["lr"],
    seed: int = 0,
    max_length: int = DEFAULT_SAE_TRAINING["max_length"],
    max_activation_tokens: int | None = DEFAULT_SAE_TRAINING["max_activation_tokens"],
    exclude_first_token: bool = True,
    eval_fraction: float = 0.1,
    token_budget: int = 4096,
    threads: int | None = DEFAULT_SAE_TRAINING["threads"],
    model_id: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    cache: bool = True,
    progress: bool = True,
) -> tuple[Any, dict[str, Any]]:
    """Train a TopK SAE on ``model``'s activations at ``hook_name`` over ``texts``; cached.

    Args:
        model, tokenizer: a loaded ``transformers`` causal LM (on its device and dtype) and its
            tokenizer. Texts are tokenized as :class:`hf_saerl.SAEEncoder` does (special tokens added).
        texts: the training text; empty ones are skipped. Read in order, until
            ``max_activation_tokens`` tokens are collected (``None`` reads all), each cut to
            ``max_length`` tokens. Whole texts (every ``round(1/eval_fraction)``-th) are held out.
        hook_name: where to read; defaults to the middle layer's residual stream (:func:`middle_hook`).
        d_sae, k: SAE width and the number of latents active per token (``1 <= k <= d_sae``).
        total_tokens: training samples seen by the trainer (passes = total_tokens / training tokens).
        batch_size_tokens, lr: trainer batch (tokens) and Adam learning rate (5% warm-up, the last 20%
            of steps decay linearly to 0). Activations are scaled to mean norm ``sqrt(d_in)`` while
            training and the scale is folded into the weights afterwards.
        seed: seeds the SAE initialisation and the batch order (through its own generators: the caller's global
            RNG is left as it was). With the same seed, texts, ``threads`` and torch build, a CPU run is
            reproducible bit for bit (see "Reproducibility" below).
        threads: the torch intra-op thread count while collecting activations and training (restored after);
            ``None`` keeps the caller's. Part of the cache key, because on CPU the thread count decides how matrix
            products are split, and so the last bits of every sum.
        exclude_first_token: leave out position 0 of every text (BOS when the tokenizer adds one; for
            tokenizers without BOS, e.g. SmolLM2, the first token is an attention sink whose norm is
            ~100x the others and would dominate the reconstruction loss). Recorded in the SAE's
            ``cfg.metadata.seqpos_slice``.
        model_id: a Hub id or path identifying the model's weights for the cache key (and
            ``cfg.metadata.model_name``); otherwise the weights are digested with
            :func:`hf_saerl.core.fingerprint.module_digest`.
        cache_dir: where cached SAEs live; ``None`` uses :func:`default_cache_dir`.
        cache: ``False`` neither reads nor writes the cache.
        progress: tqdm bars for collection and training.

    Returns:
        ``(sae, stats)``: a sae-lens ``TopKSAE`` (eval mode, on the model's device) and a dict with
        ``explained_variance`` (1 - FVU on held-out texts), ``mse``, ``mean_l0``, ``dead_fraction``
        (latents that never fire on the held-out tokens), ``n_tokens``, ``n_train_tokens``,
        ``n_eval_tokens``, ``n_texts``, ``collect_seconds``, ``train_seconds``, ``train_steps``,
        ``passes``, ``cache_hit``, ``path`` (the cache folder, or None) and ``key``.

    Raises:
        InvalidParameterError: (a ``ValueError``) no non-empty text, or ``k``/``d_sae``/``total_tokens``/
            ``batch_size_tokens``/``lr``/``threads`` out of range or not numbers of the right kind.
        NonFiniteError: (a ``ValueError``) the activations hold NaN or infinity (named by hook and text).
        HookMismatchError: (a ``ValueError``) an unknown ``hook_name``.

    Reproducibility:
        Training runs under :func:`reproducible` (a fixed thread count, ``torch.use_deterministic_algorithms``,
        seeded generators, the global RNG forked), so two CPU runs with the same arguments on the same torch build
        give bit-identical weights (``tests/reliability/test_reproducibility.py``). Torch does not promise the same
        bits across CPU kinds (another SIMD width picks other kernels), torch versions, or on GPU (cuBLAS
        reductions), so the cache key records the torch version and ``threads``, and reports quote the spread over
        seeds rather than one run's numbers. On SmolLM2-135M (layer 15, d_sae 1536) 1 and 2 threads gave the same
        activations and bit-identical SAEs on one 2-core x86_64 machine; across CPU kinds it is not promised.
    """
    texts = [str(t) for t in texts if t is not None and str(t).strip()]
    if not texts:
        raise InvalidParameterError(
            "train_sae needs at least one non-empty text; pass e.g. the text column of your "
            "prompts, or any text from the same domain."
        )
    _check_args(d_sae, k, total_tokens, batch_size_tokens, lr, eval_fraction, max_activation_tokens)
    check_integer("seed", seed, "Pass a whole-number seed, e.g. seed=0.")
    if threads is not None:
        check_integer(
            "threads", threads, "Pass a thread count, e.g. threads=2, or threads=None to keep the caller's.", minimum=1
        )
    hook_name = hook_name or middle_hook(model)
    reader = ActivationReader(
        model, tokenizer, hook_name, max_length=max_length, token_budget=token_budget, exclude_bos=True
    )  # unknown hooks raise here
    config = {
        "hook_name": hook_name,
        "d_sae": d_sae,
        "k": k,
        "total_tokens": total_tokens,
        "batch_size_tokens": batch_size_tokens,
        "lr": lr,
        "seed": seed,
        "max_length": max_length,
        "max_activation_tokens": max_activation_tokens,
        "exclude_first_token": exclude_first_token,
        "eval_fraction": eval_fraction,
        "architecture": "topk",
        "threads": threads,
    }
    model_name = model_id or str(getattr(getattr(model, "config", None), "_name_or_path", "") or type(model).__name__)
    identity = {
        **config,
        "model": model_id or module_digest(model),
        "tokenizer": tokenizer_identity(tokenizer),
        "texts": texts_digest(texts),
        "format": FORMAT_VERSION,
        "torch": torch.__version__,
    }
    key = stable_hash(identity, 20)
    folder = None
    if cache:
        folder = (default_cache_dir() if cache_dir is None else Path(cache_dir)) / key
        cached = _load_cached(folder, hook_name)
        if cached is not None:
            sae, stats = cached
            sae = sae.to(reader.device)
            return sae.eval(), {**stats, "cache_hit": True, "path": str(folder)}

    seqpos = 1 if exclude_first_token else 0
    with reproducible(seed, threads):
        used_threads = torch.get_num_threads()
        t0 = time.perf_counter()
        train_acts, eval_acts, n_texts = _collect(reader, texts, max_activation_tokens, eval_fraction, seqpos, progress)
        collect_seconds = time.perf_counter() - t0

        t0 = time.perf_counter()
        training_sae, steps = _fit(train_acts, config, seed, progress, reader.device)
        train_seconds = time.perf_counter() - t0
    training_sae.cfg.metadata.hook_name = hook_name
    training_sae.cfg.metadata.model_name = model_name
    training_sae.cfg.metadata.context_size = max_length
    training_sae.cfg.metadata.prepend_bos = _adds_bos(tokenizer)
    training_sae.cfg.metadata.seqpos_slice = [seqpos, None]

    stats = {
        **evaluate_sae(training_sae, eval_acts),
        "n_tokens": int(train_acts.shape[0] + eval_acts.shape[0]),
        "n_train_tokens": int(train_acts.shape[0]),
        "n_eval_tokens": int(eval_acts.shape[0]),
        "n_texts": n_texts,
        "d_in": int(train_acts.shape[1]),
        "collect_seconds": round(collect_seconds, 2),
        "train_seconds": round(train_seconds, 2),
        "train_steps": steps,
        "passes": round(total_tokens / max(1, train_acts.shape[0]), 2),
        "key": key,
        "cache_hit": False,
        "threads": used_threads,
    }
    if stats["dead_fraction"] > DEAD_WARNING:
        logger.warning(
            "train_sae: %.0f%% of the SAE's %d latents never fired on the held-out activations; it saw %d tokens. "
            "Train on more text (more or longer texts, max_activation_tokens=) or with fewer latents (d_sae=).",
            100 * stats["dead_fraction"],
            training_sae.cfg.d_sae,
            stats["n_tokens"],
        )
    record = {
        "stats": stats,
        "config": config,
        "identity": identity,
        "model_name": model_name,
        "format": FORMAT_VERSION,
    }
    sae = _save_and_load(training_sae, record, folder)
    return sae.to(reader.device).eval(), {**stats, "path": None if folder is None else str(folder)}


@torch.no_grad()
def evaluate_sae(sae: Any, acts: torch.Tensor, chunk: int = 8192) -> dict[str, float]:
    """Reconstruction quality of ``sae`` on activations ``acts`` (``(n, d_in)``): ``explained_variance``
    = 1 - sum ||x - x̂||² / sum ||x - mean(x)||², ``mse`` (per token, summed over dims), ``mean_l0``
    (active latents per token), ``dead_fraction`` and ``n_dead`` (latents that never fire on ``acts``)."""
    if acts.shape[0] == 0:
        raise InvalidParameterError(
            "evaluate_sae needs at least one activation row; pass acts of shape "
            "(n >= 1, d_in), e.g. from ActivationReader.iter_activations."
        )
    was_training = sae.training
    sae.eval()
    dtype = next(sae.parameters()).dtype
    device = next(sae.parameters()).device
    acts = acts.to(device)
    mean = acts.float().mean(0)
    err = var = l0 = 0.0
    fired = torch.zeros(sae.cfg.d_sae, dtype=torch.bool, device=device)
    for s in range(0, acts.shape[0], chunk):
        x = acts[s : s + chunk]
        z = sae.encode(x.to(dtype))
        x_hat = sae.decode(z).float()
        err += (x.float() - x_hat).pow(2).sum().item()
        var += (x.float() - mean).pow(2).sum().item()
        active = z != 0
        l0 += active.sum().item()
        fired |= active.any(0)
    sae.train(was_training)
    n_dead = int((~fired).sum().item())
    return {
        "explained_variance": float(1.0 - err / var) if var > 0 else float("nan"),
        "mse": err / acts.shape[0],
        "mean_l0": l0 / acts.shape[0],
        "dead_fraction": n_dead / sae.cfg.d_sae,
        "n_dead": n_dead,
    }


@contextlib.contextmanager
def reproducible(seed: int, threads: int | None = None) -> Iterator[None]:
    """Run the body as reproducibly as torch allows on CPU, and leave the caller's settings as they were: the global
    RNG forked and seeded with ``seed``, ``threads`` intra-op threads (``None``: unchanged), and
    ``torch.use_deterministic_algorithms(True, warn_only=True)`` (operations without a deterministic version warn).

    Example:
        >>> import torch
        >>> with reproducible(0, threads=1):
        ...     a = torch.rand(2)
        >>> with reproducible(0, threads=1):
        ...     b = torch.rand(2)
        >>> torch.equal(a, b)
        True
    """
    old_threads = torch.get_num_threads()
    old_deterministic = torch.are_deterministic_algorithms_enabled()
    old_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            if threads is not None and threads != old_threads:
                torch.set_num_threads(threads)
            torch.use_deterministic_algorithms(True, warn_only=True)
            yield
        finally:
            torch.use_deterministic_algorithms(old_deterministic, warn_only=old_warn_only)
            if torch.get_num_threads() != old_threads:
                torch.set_num_threads(old_threads)


def texts_digest(texts: Sequence[str]) -> str:
    """A digest of the texts, in order."""
    h = hashlib.sha256()
    for t in texts:
        b = t.encode("utf-8", "surrogatepass")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()[:20]


# ---------------------------------------------------------------------- internals
def _check_args(
    d_sae: int,
    k: int,
    total_tokens: int,
    batch_size_tokens: int,
    lr: float,
    eval_fraction: float,
    max_activation_tokens: int | None,
) -> None:
    if not isinstance(d_sae, int) or isinstance(d_sae, bool) or d_sae < 1:
        raise InvalidParameterError(f"d_sae must be a positive int (e.g. 4-8x the hidden size), got {d_sae!r}.")
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= d_sae:
        raise InvalidParameterError(
            f"k (latents active per token) must be an int with 1 <= k <= d_sae={d_sae}, got {k!r}."
        )
    check_integer("batch_size_tokens", batch_size_tokens, "Pass a whole number of tokens, e.g. 1024.")
    check_integer("total_tokens", total_tokens, "Pass a whole number of training samples, e.g. 250_000.")
    if batch_size_tokens < 1:
        raise InvalidParameterError(f"batch_size_tokens must be >= 1, got {batch_size_tokens}.")
    if total_tokens < batch_size_tokens:
        raise InvalidParameterError(
            f"total_tokens={total_tokens} is less than one batch (batch_size_tokens="
            f"{batch_size_tokens}); raise total_tokens, or lower batch_size_tokens."
        )
    check_real("lr", lr, "Pass a positive learning rate, e.g. lr=2e-3.")
    if not lr > 0:
        raise InvalidParameterError(f"lr must be > 0, got {lr}.")
    check_real("eval_fraction", eval_fraction, "Pass a fraction in (0, 1), e.g. eval_fraction=0.1.")
    if not 0 < eval_fraction < 1:
        raise InvalidParameterError(f"eval_fraction must be in (0, 1), got {eval_fraction}.")
    if max_activation_tokens is not None:
        check_integer("max_activation_tokens", max_activation_tokens, "Pass a whole number of tokens, or None.")
    if max_activation_tokens is not None and max_activation_tokens < 2:
        raise InvalidParameterError(
            f"max_activation_tokens must be >= 2 or None (read every text), got {max_activation_tokens}."
        )


def _collect(
    reader: ActivationReader,
    texts: list[str],
    max_tokens: int | None,
    eval_fraction: float,
    seqpos: int,
    progress: bool,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Activations of the texts, float32 on CPU, split by text into (train, eval)."""
    from tqdm.auto import tqdm

    every = max(2, round(1 / eval_fraction))
    parts: dict[bool, list[torch.Tensor]] = {True: [], False: []}
    n_tokens = n_texts = 0
    chunk_size = 8 if max_tokens is not None else 64  # small chunks: stop close to max_tokens
    # the bar counts texts, which exist; a token cap may stop it early, and tokens show as a postfix
    with tqdm(total=len(texts), desc=f"activations @ {reader.hook_name}", unit="text", disable=not progress) as bar:
        for start in range(0, len(texts), chunk_size):
            if max_tokens is not None and n_tokens >= max_tokens:
                break
            chunk = texts[start : start + chunk_size]
            ids, _ = reader.tokenize(chunk)
            for batch in reader.microbatches(ids, pool_from=[seqpos] * len(ids)):
                flat = batch.flat.detach().to("cpu", torch.float32)
                text_idx = torch.tensor([start + r for r in batch.rows])[batch.row_ids.cpu()]
                held_out = text_idx % every == every // 2
                parts[True].append(flat[held_out])
                parts[False].append(flat[~held_out])
                n_tokens += flat.shape[0]
            n_texts += len(chunk)
            bar.update(len(chunk))
            bar.set_postfix(tokens=n_tokens, refresh=False)
    cat = {h: torch.cat(p) if p else torch.zeros(0, 0) for h, p in parts.items()}
    train, held = cat[False], cat[True]
    if train.shape[0] == 0 or held.shape[0] == 0:  # too few texts to hold whole ones out: split tokens
        everything = torch.cat([t for t in (train, held) if t.numel()])
        n_eval = max(1, round(eval_fraction * everything.shape[0]))
        if everything.shape[0] < 2:
            raise InvalidParameterError(
                "The texts gave fewer than 2 activation tokens; pass more or longer texts, or raise max_length=."
            )
        perm = torch.randperm(everything.shape[0], generator=torch.Generator().manual_seed(0))
        held, train = everything[perm[:n_eval]], everything[perm[n_eval:]]
    return train, held, n_texts


class _ShuffledBatches(Iterator[torch.Tensor]):
    """Endless random batches from in-memory activations: a fresh seeded permutation every pass."""

    def __init__(self, acts: torch.Tensor, batch_size: int, seed: int):
        self.acts, self.batch_size = acts, batch_size
        self.gen = torch.Generator().manual_seed(seed)
        self.order, self.pos = torch.randperm(acts.shape[0], generator=self.gen), 0

    def __iter__(self) -> _ShuffledBatches:
        return self

    def __next__(self) -> torch.Tensor:
        idx = []
        need = self.batch_size
        while need > 0:
            if self.pos >= len(self.order):
                self.order, self.pos = torch.randperm(self.acts.shape[0], generator=self.gen), 0
            take = self.order[self.pos : self.pos + need]
            self.pos += len(take)
            need -= len(take)
            idx.append(take)
        return self.acts[torch.cat(idx)]


def _fit(
    acts: torch.Tensor, config: dict[str, Any], seed: int, progress: bool, device: torch.device
) -> tuple[Any, int]:
    from sae_lens import SAETrainer, TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.config import LoggingConfig, SAETrainerConfig

    d_in = int(acts.shape[1])
    batch, total = config["batch_size_tokens"], config["total_tokens"]
    steps = total // batch
    torch.manual_seed(config["seed"])  # sae-lens initialises from the global RNG (forked by reproducible())
    sae = TopKTrainingSAE(
        TopKTrainingSAEConfig(
            d_in=d_in,
            d_sae=config["d_sae"],
            k=config["k"],
            device=str(device),
            normalize_activations="expected_average_only_in",
        )
    )
    # Scale activations to mean norm sqrt(d_in) (sae-lens folds the factor into the weights after
    # fit()); computed exactly here rather than from the trainer's sample of batches.
    scaling = math.sqrt(d_in) / acts.norm(dim=-1).mean().item()
    with torch.no_grad():
        sae.b_dec.copy_((acts.mean(0) * scaling).to(sae.b_dec))  # start from the mean activation
    trainer_cfg = SAETrainerConfig(
        total_training_samples=total,
        train_batch_size_samples=batch,
        lr=config["lr"],
        lr_end=config["lr"],
        lr_warm_up_steps=max(0, steps // 20),
        lr_decay_steps=max(0, steps // 5),
        lr_scheduler_name="constant",
        device=str(device),
        dead_feature_window=max(5, min(1000, steps // 20)),
        feature_sampling_window=steps + 1,
        n_checkpoints=0,
        checkpoint_path=None,
        save_final_checkpoint=False,
        logger=LoggingConfig(log_to_wandb=False, eval_every_n_wandb_logs=2**31 - 1),
        n_batches_for_norm_estimate=1,
    )
    trainer = SAETrainer(cfg=trainer_cfg, sae=sae, data_provider=_ShuffledBatches(acts, batch, seed))
    trainer.activation_scaler.scaling_factor = scaling
    with _quiet_trainer(progress):
        trained = trainer.fit()
    return trained.eval(), trainer.n_training_steps


@contextlib.contextmanager
def _quiet_trainer(progress: bool):
    """sae-lens's trainer always draws a tqdm bar; hide it when ``progress`` is off."""
    if progress:
        yield
        return
    import functools

    from sae_lens.training import sae_trainer

    original = sae_trainer.tqdm
    sae_trainer.tqdm = functools.partial(original, disable=True)
    try:
        yield
    finally:
        sae_trainer.tqdm = original


def _save_and_load(training_sae: Any, record: dict[str, Any], folder: Path | None) -> Any:
    """Write the inference SAE (+ training.json) to ``folder`` atomically and load it back as an
    inference ``SAE``; without a folder, go through a temporary one."""
    from sae_lens import SAE

    parent = folder.parent if folder is not None else None
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-sae-", dir=parent))
    try:
        training_sae.save_inference_model(tmp)
        (tmp / TRAINING_FILE).write_text(json.dumps(record, indent=1, default=str))
        sae = SAE.load_from_disk(tmp)
        if folder is not None:
            if folder.exists():  # a corrupt entry (or a concurrent writer): replace it
                shutil.rmtree(folder, ignore_errors=True)
            try:
                os.replace(tmp, folder)
            except OSError:  # another process finished the same entry first: keep theirs
                logger.info("SAE cache entry %s was written concurrently; keeping it.", folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return sae


def _load_cached(folder: Path, hook_name: str) -> tuple[Any, dict[str, Any]] | None:
    if not folder.exists():
        return None
    try:
        from sae_lens import SAE

        record = json.loads((folder / TRAINING_FILE).read_text())
        if record.get("format") != FORMAT_VERSION:
            raise ValueError(f"format {record.get('format')} != {FORMAT_VERSION}")
        sae = SAE.load_from_disk(folder)
        if sae.cfg.metadata.hook_name != hook_name:
            raise HookMismatchError(f"hook {sae.cfg.metadata.hook_name!r} != {hook_name!r}")
        return sae, dict(record["stats"])
    except Exception as err:  # noqa: BLE001 - any damage means: train again
        logger.warning("SAE cache entry %s is unreadable (%s: %s); training again.", folder, type(err).__name__, err)
        shutil.rmtree(folder, ignore_errors=True)
        return None


def _adds_bos(tokenizer: Any) -> bool:
    bos = tokenizer.bos_token_id
    if bos is None:
        return False
    ids = tokenizer("a")["input_ids"]
    return bool(ids) and ids[0] == bos

"""verl: the curriculum as a pre-ordered Parquet in verl's row format.

verl (0.9+) has no sampler hook any more: with ``data.shuffle=False`` its ``SequentialSampler`` reads the train
files in row order, ``data.train_batch_size`` prompts per step (``drop_last=True``). So the schedule is written
out in order, one curriculum batch per verl step, and :func:`verl_overrides` gives the switches that keep it so.
verl itself is not needed to write the file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from typing import Any

from ..core.columns import require_columns
from ..core.validation import check_integer
from ..curriculum.dataset import CurriculumDataset

logger = logging.getLogger(__name__)


def to_verl_parquet(
    curriculum: CurriculumDataset,
    path: str | os.PathLike,
    *,
    prompt_column: str = "prompt",
    answer_column: str = "answer",
    data_source: str = "hf_saerl",
    ability: str = "math",
    split: str = "train",
    epoch: int | None = None,
    num_epochs: int = 1,
    extra_info_columns: Sequence[str] = (),
):
    """Write the curriculum order of ``num_epochs`` epochs to ``path`` as verl rows; return them as a ``Dataset``.

    Each row is ``{"data_source", "prompt": [{"role": "user", "content": ...}], "ability",
    "reward_model": {"style": "rule", "ground_truth": <answer>}, "extra_info": {"split", "index",
    "source_index", "curriculum_epoch", "curriculum_batch", ...}}``; ``extra_info`` also carries the cluster and
    difficulty columns when the curriculum yields them, and ``extra_info_columns``. A prompt that is already a list
    of chat messages is kept as is. Train verl on it with :func:`verl_overrides` (``data.train_batch_size`` equal
    to the curriculum ``batch_size``, ``data.shuffle=False``). Several epochs are written one after the other, each
    with its own schedule; train on them with ``trainer.total_epochs=1``. Each epoch must then end on a whole
    batch (an :class:`~hf_saerl.errors.InvalidParameterError` says so otherwise): build the curriculum with
    ``drop_last=True``, or write one epoch. Missing columns raise :class:`~hf_saerl.errors.MissingColumnError`.

    Example:
        >>> import datasets, tempfile, os
        >>> from hf_saerl.curriculum import CurriculumDataset
        >>> from hf_saerl.integrations.verl import to_verl_parquet
        >>> ds = datasets.Dataset.from_dict({"prompt": ["1+1?", "2+2?"], "answer": ["2", "4"],
        ...                                  "cluster_id": [0, 0], "difficulty": [0.9, 0.1]})
        >>> rows = to_verl_parquet(CurriculumDataset(ds, 2), os.path.join(tempfile.mkdtemp(), "train.parquet"))
        >>> rows[0]["prompt"], rows[0]["reward_model"]
        ([{'role': 'user', 'content': '2+2?'}], {'style': 'rule', 'ground_truth': '4'})
    """
    import datasets
    from datasets.fingerprint import generate_random_fingerprint

    names = curriculum.output_columns
    if names is not None:
        require_columns(
            dict.fromkeys(names),
            [prompt_column, answer_column, *extra_info_columns],
            "verl row fields (prompt, answer, extra info)",
            "The curriculum does not yield them: keep them in CurriculumDataset(columns=...), or pass "
            "prompt_column= / answer_column= / extra_info_columns= naming columns it yields.",
        )
    epochs = curriculum.export_epochs(epoch, num_epochs)
    schedule_columns = [c for c in (curriculum.cluster_column, curriculum.difficulty_column) if c is not None]
    info_columns = [c for c in schedule_columns if names is None or c in names] + [
        c for c in extra_info_columns if c not in schedule_columns
    ]
    features = None
    if curriculum.features is not None:
        f = curriculum.features
        features = datasets.Features(
            {
                "data_source": datasets.Value("string"),
                "prompt": datasets.List({"role": datasets.Value("string"), "content": datasets.Value("string")}),
                "ability": datasets.Value("string"),
                "reward_model": {"style": datasets.Value("string"), "ground_truth": f[answer_column]},
                "extra_info": {
                    "split": datasets.Value("string"),
                    "index": datasets.Value("int64"),
                    "source_index": datasets.Value("int64"),
                    "curriculum_epoch": datasets.Value("int64"),
                    "curriculum_batch": datasets.Value("int64"),
                    **{c: f[c] for c in info_columns},
                },
            }
        )
    rows = datasets.Dataset.from_generator(
        _verl_rows,
        features=features,
        gen_kwargs=dict(
            curriculum=curriculum,
            epochs=epochs,
            prompt_column=prompt_column,
            answer_column=answer_column,
            data_source=data_source,
            ability=ability,
            split=split,
            info_columns=tuple(info_columns),
        ),
        fingerprint=generate_random_fingerprint(),
    )
    write_atomically(rows, path)
    return rows


def write_atomically(rows: Any, path: str | os.PathLike) -> None:
    """Write ``rows`` (a ``datasets.Dataset``) to the Parquet file ``path`` through a temporary file in the same
    folder, renamed into place only once it is complete: a failure leaves no partial file (and an existing file at
    ``path`` as it was).

    Example:
        >>> import datasets, os, tempfile
        >>> from hf_saerl.integrations.verl import write_atomically
        >>> path = os.path.join(tempfile.mkdtemp(), "rows.parquet")
        >>> write_atomically(datasets.Dataset.from_dict({"x": [1, 2]}), path)
        >>> sorted(os.listdir(os.path.dirname(path)))
        ['rows.parquet']
    """
    import tempfile

    target = os.path.abspath(os.fspath(path))
    handle, temporary = tempfile.mkstemp(
        prefix=f".{os.path.basename(target)}.", suffix=".partial", dir=os.path.dirname(target)
    )
    os.close(handle)
    try:
        rows.to_parquet(temporary)
        os.replace(temporary, target)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def _verl_rows(
    curriculum: CurriculumDataset,
    epochs: tuple[int, ...],
    prompt_column: str,
    answer_column: str,
    data_source: str,
    ability: str,
    split: str,
    info_columns: tuple[str, ...],
) -> Iterator[dict[str, Any]]:
    index = 0
    for epoch, g, sources, rows in curriculum.iter_epoch_batches(epochs):
        for source_index, row in zip(sources, rows, strict=True):
            prompt = row[prompt_column]
            if isinstance(prompt, str):
                prompt = [{"role": "user", "content": prompt}]
            yield {
                "data_source": data_source,
                "prompt": prompt,
                "ability": ability,
                "reward_model": {"style": "rule", "ground_truth": row[answer_column]},
                "extra_info": {
                    "split": split,
                    "index": index,
                    "source_index": source_index,
                    "curriculum_epoch": epoch,
                    "curriculum_batch": g,
                    **{c: row[c] for c in info_columns},
                },
            }
            index += 1


def verl_overrides(batch_size: int, train_files: str | os.PathLike, total_epochs: int = 1) -> list[str]:
    """Hydra overrides that make verl read a :func:`to_verl_parquet` file in order, one curriculum batch per step.

    ``batch_size`` is the curriculum ``batch_size`` (prompts per step; verl generates
    ``actor_rollout_ref.rollout.n`` completions for each). ``filter_overlong_prompts`` is turned off because
    dropping rows would shift every later batch: filter long prompts before building the curriculum instead. Do
    not set ``data.gen_batch_size`` (dynamic sampling), which would cut the file into batches of another size.

    Example:
        >>> from hf_saerl.integrations.verl import verl_overrides
        >>> verl_overrides(64, "curriculum.parquet")  # doctest: +NORMALIZE_WHITESPACE
        ['data.train_files=curriculum.parquet', 'data.shuffle=False', 'data.train_batch_size=64',
         'data.filter_overlong_prompts=False', 'trainer.total_epochs=1']
    """
    batch_size = check_integer(
        "batch_size",
        batch_size,
        "Pass the curriculum's batch_size (prompts per verl step), e.g. curriculum.params.batch_size.",
        minimum=1,
    )
    total_epochs = check_integer(
        "total_epochs",
        total_epochs,
        "Pass total_epochs=1 for a file written with num_epochs epochs one after the other.",
        minimum=1,
    )
    return [
        f"data.train_files={os.fspath(train_files)}",
        "data.shuffle=False",
        f"data.train_batch_size={batch_size}",
        "data.filter_overlong_prompts=False",
        f"trainer.total_epochs={total_epochs}",
    ]

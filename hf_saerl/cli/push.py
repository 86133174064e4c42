"""``hf-saerl push``: upload a saved pipeline folder to a Hub model repo (it is checked first).

Example:
    hf-saerl push ./my-pipeline your-name/my-pipeline --private
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import hub_repo_id

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "push",
        help="upload a saved pipeline folder to the Hub",
        description="Check a pipeline folder (files, widths, hooks, format version) and upload it, as one commit, "
        "to a Hub model repo (created if needed). Log in first with 'hf auth login' or pass --token.",
        epilog="example: hf-saerl push ./my-pipeline your-name/my-pipeline --private",
    )
    p.add_argument("folder", type=Path, help="the pipeline folder (written by 'hf-saerl fit' or save_pretrained)")
    p.add_argument("repo_id", type=hub_repo_id, help="the Hub model repo, e.g. your-name/my-pipeline")
    p.add_argument("--private", action="store_true", help="create the repo as private")
    p.add_argument("--token", help="a Hugging Face token (default: the saved login or HF_TOKEN)")
    p.add_argument("--commit-message", default="Upload SAERLPipeline", help="the commit message")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Check the folder, then upload it; an unreachable Hub (a ``ConnectionError``, ``HF_HUB_OFFLINE=1`` included) is
    one line and exit code 1, as every failure (:func:`hf_saerl.cli.common.guard`)."""
    from ..core.hub import upload_folder
    from ..pipeline.bundle import check_bundle

    if not args.folder.is_dir():
        raise FileNotFoundError(
            f"{args.folder} is not a folder. Pass the folder written by 'hf-saerl fit --output' or "
            "SAERLPipeline.save_pretrained."
        )
    check_bundle(args.folder)
    upload_folder(
        args.folder, args.repo_id, private=args.private or None, token=args.token, commit_message=args.commit_message
    )
    print(f"Pushed {args.folder} to https://huggingface.co/{args.repo_id}")
    return 0

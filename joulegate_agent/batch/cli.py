"""The `serve` flags of the batch queue."""

from __future__ import annotations

import argparse
from typing import Any


def add_batch_flags(serve: argparse.ArgumentParser) -> None:
    group = serve.add_argument_group("batch queue (/v1/files, /v1/batches)")
    group.add_argument(
        "--batch-concurrency", type=int, help="batch requests run at once (default: 1)"
    )
    group.add_argument(
        "--batch-retention-days", type=int, help="keep batch files this long (default: 30)"
    )
    group.add_argument(
        "--batch-quota-bytes", type=int, help="room for all batch files (default: 10 GiB)"
    )
    group.add_argument(
        "--batch-max-file-bytes", type=int, help="largest upload (default: 200 MB, as OpenAI)"
    )


def batch_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The config overrides the batch flags gave (None: not given)."""
    return {
        "batch_concurrency": getattr(args, "batch_concurrency", None),
        "batch_retention_days": getattr(args, "batch_retention_days", None),
        "batch_quota_bytes": getattr(args, "batch_quota_bytes", None),
        "batch_max_file_bytes": getattr(args, "batch_max_file_bytes", None),
    }

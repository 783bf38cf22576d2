"""`python -m pose2id`: one entry point, one sub-command per task.

Each command lives beside the code it drives; a module listed here provides
``register(subparsers)``, which adds its sub-commands and sets ``func`` on them. The argument
types and checks they share live in :mod:`pose2id._options`.
"""

import argparse
import os
import sys
from importlib import import_module

COMMAND_MODULES = ("pose2id.ipg.cli", "pose2id.ipg.convert", "pose2id.experiments")

# What a user can cause (a wrong path, a non-image, missing weights, no GPU, out of GPU memory):
# reported as one message, not a traceback. POSE2ID_DEBUG=1 shows the traceback.
USER_ERRORS = (ValueError, OSError, RuntimeError)

from pose2id._options import (  # noqa: F401  (the shared option types, importable from here too)
    DEVICE_CHOICES,
    check_device,
    device,
    in_option_terms,
    non_negative_float,
    positive_int,
)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m pose2id",
        description="Pose2ID: training-free person re-identification via feature centralization.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        import_module(name).register(subparsers)
    return parser


def is_user_error(error):
    """Whether ``error`` is one a user caused (and is told in one line) rather than a bug.

    A failure of the GPU itself (``torch.AcceleratorError``: an illegal memory access, a launch
    failure; out of memory excepted, which is ``torch.OutOfMemoryError``) is never the user's: it
    keeps its traceback.
    """
    if not isinstance(error, USER_ERRORS):
        return False
    torch = sys.modules.get("torch")
    accelerator_error = getattr(torch, "AcceleratorError", None) if torch is not None else None
    return accelerator_error is None or not isinstance(error, accelerator_error)


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except USER_ERRORS as error:
        if os.environ.get("POSE2ID_DEBUG") or not is_user_error(error):
            raise
        print(f"error: {error}", file=sys.stderr)
        return 1

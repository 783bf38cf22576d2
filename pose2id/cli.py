"""`python -m pose2id`: one entry point, one sub-command per task.

Each command lives beside the code it drives; a module listed here provides
``register(subparsers)``, which adds its sub-commands and sets ``func`` on them.
"""

import argparse
import os
import sys
from importlib import import_module

COMMAND_MODULES = ("pose2id.ipg.cli", "pose2id.experiments")

# What a user can cause (a wrong path, a non-image, missing weights, no GPU): reported as one
# message, not a traceback. POSE2ID_DEBUG=1 shows the traceback.
USER_ERRORS = (ValueError, OSError, RuntimeError)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m pose2id",
        description="Pose2ID: training-free person re-identification via feature centralization.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        import_module(name).register(subparsers)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except USER_ERRORS as error:
        if os.environ.get("POSE2ID_DEBUG"):
            raise
        print(f"error: {error}", file=sys.stderr)
        return 1

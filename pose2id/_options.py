"""The option types and checks every sub-command shares, so each words a bad value alike.

The command modules (``pose2id.experiments``, ``pose2id.ipg.cli``, …) import these from here;
:mod:`pose2id.cli` imports the command modules, so keeping them apart keeps imports one way.
"""

import argparse
import math
import re

DEVICE_CHOICES = "cpu, cuda, cuda:N (the GPU numbered N) or mps"


def positive_int(name):
    """argparse type for a whole number >= 1; the message names the value as the user wrote it."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < 1:
            raise argparse.ArgumentTypeError(f"{name} must be a positive integer, got {text}")
        return value

    return parse


def non_negative_float(name):
    """argparse type for a finite number >= 0."""
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            value = None
        if value is None or not (math.isfinite(value) and value >= 0):
            raise argparse.ArgumentTypeError(f"{name} must be a number >= 0, got {text}")
        return value

    return parse


def device(text):
    """argparse type for a torch device name; whether this machine has it is :func:`check_device`'s job."""
    if not re.fullmatch(r"cpu|cuda(:\d+)?|mps", text):
        raise argparse.ArgumentTypeError(f"unknown device {text!r}; choose {DEVICE_CHOICES}")
    return text


def check_device(name):
    """Refuse, before any slow work, a device this machine does not have."""
    if name == "cpu":
        return
    import torch

    if name == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError("--device mps: Apple's MPS backend is not available on this machine; use --device cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(f"--device {name}: CUDA is not available on this machine (no NVIDIA GPU, or a "
                               "CPU-only torch build); use --device cpu")
        count, index = torch.cuda.device_count(), int(name.partition(":")[2] or 0)
        if index >= count:
            raise RuntimeError(f"--device {name}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}")


def in_option_terms(error, option, argument_names=()):
    """A library error retold with the option the user typed.

    A :class:`pose2id.ArgumentError` (a :class:`pose2id.data.DatasetError` too) about one of
    ``argument_names``, about no argument in particular (a file inside the dataset), or about any
    argument when no names are given, is worded from its fields: ``"--poses x.json: 'people' is
    empty"``, ``"--dataset /x: does not exist; ..."``, ``"--shard must be K/N, got '3/2'"``. Any
    other error is put after the option as it is: ``"--dataset: k1 must be >= 1"``.
    """
    from pose2id import ArgumentError

    if isinstance(error, ArgumentError) and (not argument_names or error.argument is None
                                             or error.argument in argument_names):
        return error.worded(option)
    return f"{option}: {error}"

"""The `dtif` command line: parse arguments, call the library, print and write results."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from dtif.cli import commands
from dtif.cli.parser import build_parser
from dtif.cli.workload import device
from dtif.errors import DtifError, InputError
from dtif.sim import distributed
from dtif.sim.allocator import keep_freed_memory

__all__ = ["build_parser", "main"]

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "train": commands.cmd_train,
    "convert": commands.cmd_convert,
    "evaluate": commands.cmd_evaluate,
    "compare": commands.cmd_compare,
    "paired": commands.cmd_paired,
    "demo": commands.cmd_demo,
    "export": commands.cmd_export,
}
#: Commands that run under torchrun (one process per rank).
DISTRIBUTED_COMMANDS = ("train", "convert", "evaluate", "compare")


def _join_process_group(args: argparse.Namespace) -> bool:
    """Join torchrun's process group (gloo, or NCCL for CUDA); True when this call joined."""
    if args.command in DISTRIBUTED_COMMANDS:
        return distributed.init_from_env(device(args.device))
    if os.environ.get("WORLD_SIZE", "1") not in ("", "1"):
        raise InputError(
            f"dtif {args.command} runs in one process; under torchrun use "
            f"{', '.join(DISTRIBUTED_COMMANDS)}"
        )
    return False


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `dtif` command.

    It keeps freed memory in the process (`dtif.sim.allocator.keep_freed_memory`), which
    makes simulations faster on glibc; DTIF_KEEP_FREED_MEMORY=0 turns that off.
    """
    args = build_parser().parse_args(argv)
    keep_freed_memory()
    joined = False
    try:
        joined = _join_process_group(args)
        code = int(COMMANDS[args.command](args))
        if joined:  # no rank leaves before rank 0 has written its files
            distributed.barrier()
        return code
    except DtifError as err:
        print(f"dtif {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dtif {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        if joined:
            distributed.destroy()

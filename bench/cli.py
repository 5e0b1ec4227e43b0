"""The bench scripts' one error path: bad arguments and missing optional packages end with one
line ``bench/NAME.py: error: ...`` and exit 2 before anything is measured (a benchmark that
fails after minutes on its --json path, or with a traceback, helps no one)."""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from trainables.cli import OneLineParser, folder_problem

VALID_VARIANT_PARTS = ("fp32", "bf16", "channels_last", "compile")


class Parser(OneLineParser):
    """The project's one-line-error parser, named after the bench script."""

    def __init__(self, script: str, **kw):
        super().__init__(prog=f"bench/{Path(script).name}", **kw)

    def parse_checked(self, argv=None):
        """(args, torch device): parse_args, then the --device and --json every bench script
        takes checked, before anything is measured."""
        args = self.parse_args(argv)
        dev = device(self, args.device)
        writable(self, args.json)
        return args, dev


def int_at_least(low: int):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expects an integer, got {text!r}") from None
        if v < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {v}")
        return v
    return parse


def variants(text: str) -> list[str]:
    """'fp32,bf16+channels_last+compile' -> the list; each part fp32 or bf16, then options."""
    out = [v.strip() for v in text.split(",") if v.strip()]
    for v in out:
        parts = v.split("+")
        if parts[0] not in ("fp32", "bf16") or any(p not in VALID_VARIANT_PARTS[2:]
                                                   for p in parts[1:]):
            raise argparse.ArgumentTypeError(
                f"variant {v!r} is not valid: fp32 or bf16, optionally +channels_last and/or "
                "+compile (e.g. bf16+channels_last)")
    if not out:
        raise argparse.ArgumentTypeError("needs at least one variant")
    return out


def device(parser: Parser, name: str):
    """The torch device for --device (auto: cuda if available); an error line if unusable."""
    import torch
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        parser.error(f"argument --device: {name!r} is not a device (auto, cpu, cuda, cuda:N)")
    if dev.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"argument --device: {name} but CUDA is not available here")
    return dev


def writable(parser: Parser, path: str | None) -> None:
    """--json's folder exists and takes files (checked before the minutes of measuring)."""
    if not path:
        return
    folder = Path(path).expanduser().resolve().parent
    if not folder.is_dir():
        parser.error(f"argument --json: folder {folder} does not exist")
    problem = folder_problem(folder, create=False)
    if problem:
        parser.error(f"argument --json: cannot write in {folder} ({problem[1]})")


def need(parser: Parser, module: str, why: str, pip: str | None = None) -> None:
    """An optional package this run needs, or the one error line saying which."""
    try:
        importlib.import_module(module)
    except ImportError:
        parser.error(f"{why} needs the package '{module}' (pip install {pip or module}); "
                     f"it is not installed in {sys.prefix}")


def engine_options(parser: Parser, *, workers: int, variants_default, json_what: str) -> None:
    """The options the engine benchmarks share (train_throughput, profile_step): the device,
    the reference loop's DataLoader workers, the engine variants, the JSON output."""
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--workers", type=int_at_least(0), default=workers)
    parser.add_argument("--variants", type=variants, default=variants_default,
                        help=f"comma-separated engine variants (default: {variants_default})")
    parser.add_argument("--json", help=f"write the {json_what} here as JSON")


def parse_engine_args(parser: Parser, argv):
    """(args, device) of an engine benchmark; refused (exit 2, one line) without the
    reference loop's packages."""
    args, dev = parser.parse_checked(argv)
    for module, pip in (("torchvision", None), ("PIL", "pillow")):
        need(parser, module, "the reference loop (PIL transforms)", pip)
    return args, dev

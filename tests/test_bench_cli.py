"""Bench scripts refuse bad arguments with one line ``bench/NAME.py: error: ...`` and exit 2,
before measuring anything (each case returns in milliseconds: nothing is built)."""
from __future__ import annotations

import pytest
import torch

from bench import packing, profile_step, train_throughput

SCRIPTS = {"train_throughput": train_throughput, "profile_step": profile_step,
           "packing": packing}
CASES = [
    ("train_throughput", ["--steps", "0"], "argument --steps: must be >= 1, got 0"),
    ("train_throughput", ["--reps", "two"], "argument --reps: expects an integer"),
    ("train_throughput", ["--variants", "fp32,fp16"], "variant 'fp16' is not valid"),
    ("train_throughput", ["--variants", "bf16+turbo"], "variant 'bf16+turbo' is not valid"),
    ("train_throughput", ["--device", "nope"], "'nope' is not a device"),
    ("train_throughput", ["--json", "/nonexistent/x.json"], "folder /nonexistent does not"),
    ("train_throughput", ["--json", "/proc/x.json"], "cannot write in /proc"),
    ("profile_step", ["--warmup", "-1"], "argument --warmup: must be >= 0"),
    ("profile_step", ["--variants", ""], "needs at least one variant"),
    ("profile_step", ["--workers", "-2"], "argument --workers: must be >= 0"),
    ("packing", ["--ks", "1,0"], "argument --ks: must be >= 1, got 0"),
    ("packing", ["--variant", "fp32,bf16"], "takes one variant, got 2"),
    ("packing", ["--json", "/proc/y.json"], "cannot write in /proc"),
    ("packing", ["--bogus"], "unrecognized arguments: --bogus"),
]
if not torch.cuda.is_available():
    CASES.append(("train_throughput", ["--device", "cuda"], "CUDA is not available here"))


@pytest.mark.parametrize("script, args, fragment", CASES)
def test_bad_argument_is_one_line_exit_2(script, args, fragment, capsys):
    with pytest.raises(SystemExit) as e:
        SCRIPTS[script].main(args)
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert err.count("\n") == 1 and err.startswith(f"bench/{script}.py: error: "), err
    assert fragment in err, err


def test_a_missing_optional_package_is_one_line(capsys):
    from bench import cli
    p = cli.Parser("bench/train_throughput.py")
    with pytest.raises(SystemExit) as e:
        cli.need(p, "no_such_package_xyz", "the reference loop", pip="no-such-package")
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1
    assert err.startswith("bench/train_throughput.py: error: the reference loop needs the "
                          "package 'no_such_package_xyz' (pip install no-such-package)")

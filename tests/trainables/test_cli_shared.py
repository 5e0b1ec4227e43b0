"""The one-line argparse error and the one writable-folder test every CLI uses (issue 39)."""
import pytest

from trainables.cli import OneLineParser, folder_problem


def test_the_parser_error_is_one_line_with_its_hint(capsys):
    p = OneLineParser(prog="tool", hint=" (see tool --help)")
    p.add_argument("--n", type=int)
    with pytest.raises(SystemExit) as e:
        p.parse_args(["--n", "x"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err == "tool: error: argument --n: invalid int value: 'x' (see tool --help)\n"


def test_a_writable_folder_has_no_problem_and_is_made_only_when_asked(tmp_path):
    new = tmp_path / "a" / "b"
    assert folder_problem(new, create=False) is None and not new.exists()
    assert folder_problem(new) is None and new.is_dir()
    assert list(new.iterdir()) == []                 # the probe leaves nothing behind


def test_a_file_in_the_way_and_an_unwritable_place_are_named(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    assert folder_problem(f, create=False) == (f, "not a folder")
    where, why = folder_problem("/proc/elm-test-folder", create=False)
    assert str(where) == "/proc" and why            # root may write almost anywhere: not /proc
    where, why = folder_problem(f / "sub")           # cannot be made under a file
    assert why and where == f / "sub"

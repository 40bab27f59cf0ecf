"""The CLI's answer to every bad flag: one `error:` line on stderr, exit code 2, no traceback, nothing started."""

from __future__ import annotations

import logging

import pytest

from graph.cli.main import OWN_LOGGERS, configure_logging, main


def run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's own errors exit from inside parse_args
        return int(exc.code)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--formats", "mp3"], "unknown output format(s) ['mp3']"),
        (["--formats", ","], "--formats needs at least one of wav, flac, srt, vtt, mp4"),
        (["--speakers", "0"], "num_speakers must be from 1 to 32, got 0"),
        (["--speakers", "two"], "argument --speakers: invalid int value: 'two'"),
        (["--min-speakers", "3", "--max-speakers", "2"], "min_speakers (3) > max_speakers (2)"),
        (["--max-speakers", "1000"], "max_speakers must be from 1 to 32"),
        (["--seed", "-1"], "seed must be from 0 to 4294967295"),
        (["--to", "xx"], "unsupported target language 'xx'"),
        (["--source-language", "xx"], "unsupported source language 'xx'"),
        (["--profile", "nope"], "nope"),
        (["--synth-replicas", "0"], "synthesizer 0"),
        (["--batch-lines", "100000"], "synthesizer batch 100000"),
        (["--colour", "red"], "unrecognized arguments: --colour red"),
        ([], "audio file not found"),  # the flags are fine: the input is missing
    ],
)
def test_every_bad_flag_is_one_error_line_and_exit_2(flags, message, capsys, tmp_path):
    argv = ["dub", str(tmp_path / "missing.wav"), "--to", "pt-br", "--out", str(tmp_path / "out"), *flags]
    if "--to" in flags:
        argv[3:5] = []
    code = run(argv)
    out, err = capsys.readouterr()
    assert code == 2 and not out, (code, out, err)
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv", [["bogus"], [], ["dub"], ["models", "--profile"]])
def test_bad_commands_are_one_error_line_too(argv, capsys):
    assert run(argv) == 2
    out, err = capsys.readouterr()
    assert not out and err.startswith("error: ") and err.count("\n") == 1, err


def test_verbose_means_dubgraphs_own_loggers_only():
    try:
        configure_logging(verbose=True)
        assert all(logging.getLogger(f"{name}.anything").isEnabledFor(logging.DEBUG) for name in OWN_LOGGERS)
        for library in ("numba", "numba.core.ssa", "ray", "urllib3", "matplotlib"):
            assert not logging.getLogger(library).isEnabledFor(logging.DEBUG), library
        configure_logging(verbose=False)
        assert not logging.getLogger("graph.audio").isEnabledFor(logging.DEBUG)
    finally:
        configure_logging(verbose=False)

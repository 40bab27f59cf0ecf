"""The backfill's voices and words flags, parsed into DubOptions (no Ray: bad ones end the run before any work)."""

from __future__ import annotations

import json

import pytest

from graph.backfill.job import _options, _parser, main
from graph.errors import BadInput, UnsupportedLanguage


def parse(*argv):
    return _options(_parser().parse_args(["--input", "x", "--out", "y", "--to", "pt-br", *argv]))


def test_match_voices_and_glossary_flags_become_options(tmp_path):
    glossary = tmp_path / "terms.yaml"
    glossary.write_text("terms:\n  pt-br:\n    report: relato\nkeep: [Acme]\n")
    settings = tmp_path / "options.json"
    settings.write_text(json.dumps({"voices": {"library": {"SPEAKER_00": "narrator"}}}))
    options = parse("--match-voices", "--match-threshold", "0.9", "--glossary", str(glossary),
                    "--options", str(settings))
    assert options.voices.match and options.voices.match_threshold == 0.9
    assert options.voices.library == {"SPEAKER_00": "narrator"}  # the file's, with the flags on top
    assert options.glossary.terms == {"pt-br": {"report": "relato"}} and options.glossary.keep == ("Acme",)
    assert not parse().voices.match and parse().glossary.terms == {}


def test_bad_glossaries_are_refused_with_exit_code_2(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"terms": {"xx": {"a": "b"}}}))
    with pytest.raises(UnsupportedLanguage, match="glossary terms language 'xx'"):
        parse("--glossary", str(bad))
    with pytest.raises(BadInput, match="cannot read --glossary"):
        parse("--glossary", str(tmp_path / "missing.yaml"))
    assert main(["--input", "x", "--out", str(tmp_path / "out"), "--to", "pt-br", "--glossary", str(bad)]) == 2
    assert "error: unsupported glossary terms language 'xx'" in capsys.readouterr().err

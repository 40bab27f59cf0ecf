import pytest

from graph.errors import BadInput, UnsupportedLanguage
from graph.languages import language, parse_targets
from graph.options import DiarizeOptions, DubOptions, from_dict, to_dict


def test_from_dict_builds_nested_and_rejects_unknown_fields():
    opts = from_dict(DubOptions, {"targets": ["pt-br", "es"], "tts": {"seed": 7}, "diarize": {"num_speakers": 2}})
    assert opts.targets == ("pt-br", "es") and opts.tts.seed == 7 and opts.diarize.num_speakers == 2
    assert from_dict(DubOptions, to_dict(opts)) == opts
    with pytest.raises(BadInput, match="unknown DubOptions field.*colour"):
        from_dict(DubOptions, {"colour": "red"})
    with pytest.raises(BadInput, match="unknown TtsOptions field"):
        from_dict(DubOptions, {"tts": {"speed": 2}})


def test_invalid_values_are_rejected_with_reason():
    with pytest.raises(ValueError, match="min_speakers"):
        DiarizeOptions(min_speakers=3, max_speakers=2)
    with pytest.raises(ValueError, match="positive integer"):
        DiarizeOptions(num_speakers=0)
    with pytest.raises(BadInput, match="unknown output format"):
        from_dict(DubOptions, {"formats": ["mp3"]})


def test_languages_normalised_and_unsupported_listed():
    assert parse_targets("PT_BR, es ,pt-br", ("pt-br", "es")) == ("pt-br", "es")
    with pytest.raises(UnsupportedLanguage) as err:
        parse_targets("pt-br,xx", ("pt-br", "es"))
    assert "'xx'" in str(err.value) and "es, pt-br" in str(err.value)
    with pytest.raises(UnsupportedLanguage, match="unsupported source language 'de'"):
        language("de", ("en",), what="source")

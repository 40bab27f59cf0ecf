import dataclasses
import typing

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
    with pytest.raises(ValueError, match="num_speakers must be from 1 to 32, got 0"):
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


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"line_retries": 1000}, "line_retries must be from 0 to 5, got 1000"),
        ({"line_retries": "many"}, "line_retries must be a whole number, got 'many'"),
        ({"line_retries": True}, "line_retries must be a whole number, got True"),
        ({"translate": {"num_beams": 10**6}}, "num_beams must be from 1 to 16"),
        ({"translate": {"n_best": 0}}, "n_best must be from 1 to 8"),
        ({"translate": {"max_batch": 100000}}, "max_batch must be from 1 to 256"),
        ({"asr": {"beam_size": 500}}, "beam_size must be from 1 to 10"),
        ({"tts": {"seed": -1}}, "seed must be from 0 to 4294967295"),
        ({"tts": {"temperature": float("inf")}}, "temperature must be a number"),
        ({"tts": {"reference_min_s": 20, "reference_max_s": 8}}, r"reference_min_s \(20\) > reference_max_s"),
        ({"timing": {"max_stretch": 50}}, "max_stretch must be from 1 to 4"),
        ({"diarize": {"max_speakers": 10**9}}, "max_speakers must be from 1 to 32"),
        ({"tts": 5}, "tts must be an object of TtsOptions fields, got 5"),
        ({"formats": "wav"}, "formats must be a list of text values"),
        ({"background": "yes"}, "background must be true or false"),
        ({"asr": {"language": 3}}, "language must be text or null"),
    ],
)
def test_every_option_is_typed_and_bounded(data, message):
    with pytest.raises(BadInput, match=message):
        from_dict(DubOptions, data)


def test_no_numeric_option_takes_an_absurd_value():
    """Whatever bounds a class states (``bounded`` ranges or its own checks), none lets 10**12 or -10**12 through."""
    classes = [DubOptions, *(type(getattr(DubOptions(), f.name)) for f in dataclasses.fields(DubOptions))]
    checked = 0
    for cls in filter(dataclasses.is_dataclass, classes):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if hints[f.name] not in (int, float, int | None, float | None):
                continue
            for absurd in (10**12, -(10**12)):
                with pytest.raises((ValueError, BadInput)):
                    dataclasses.replace(cls(), **{f.name: absurd})
            checked += 1
    assert checked >= 15

"""Glossary placeholders, the split fallback, the check, and pronunciations: pure text functions."""

from graph.timeline.glossary import join, missing, protect, required, respell, restore, split

TABLE = required({"report": "relato", "team meeting": "reunião de equipe"}, ["Acme", "Maria Silva"])


def test_terms_become_tokens_longest_first_whole_words_any_case():
    p = protect("The TEAM MEETING about the Acme report, not the reporter.", TABLE)
    assert p.text == "The [0] about the [1] [2], not the reporter."
    assert p.targets == ("reunião de equipe", "Acme", "relato")
    assert p.pieces == ("The ", " about the ", " ", ", not the reporter.")


def test_a_line_without_terms_is_left_alone():
    p = protect("Nothing to see here.", TABLE)
    assert p.text == "Nothing to see here." and p.targets == () and restore("Nada.", p) == "Nada."


def test_restore_puts_the_glossary_spelling_back_wherever_the_model_moved_the_token():
    p = protect("Send the report to maria silva.", TABLE)
    assert restore("Envie o [ 0 ] para [1].", p) == "Envie o relato para Maria Silva."
    assert restore("Para [1], envie o [0].", p) == "Para Maria Silva, envie o relato."


def test_a_candidate_that_lost_or_doubled_a_token_is_refused():
    p = protect("Send the report to Maria Silva.", TABLE)
    assert restore("Envie o relatório para [1].", p) is None
    assert restore("Envie o [0] [0] para [1].", p) is None
    assert restore("Envie o [0] para [1] e [7].", p) is None


def test_tokens_start_above_numbers_in_brackets_the_line_already_has():
    p = protect("See note [3] in the report.", TABLE)
    assert p.text == "See note [3] in the [4]." and restore("Veja a nota [3] no [4].", p) == "Veja a nota [3] no relato."


def test_split_and_join_put_the_terms_between_the_translated_pieces():
    p = protect("Acme sent the report yesterday.", TABLE)
    assert split(p) == [" sent the ", " yesterday."]
    assert join(p, ["enviou o.", "ontem."]) == "Acme enviou o relato ontem."  # a piece's added full stop goes
    assert missing(join(p, ["enviou o.", "ontem."]), p.targets) == []


def test_missing_names_the_absent_terms_case_insensitively():
    assert missing("O relato da ACME.", ["relato", "Acme", "Maria Silva"]) == ["Maria Silva"]
    assert missing("Os relatos.", ["relato"]) == []  # an inflected form contains the term


def test_respell_changes_only_whole_words():
    table = {"Acme": "Ácmi", "GIF": "[[dZ'If]]"}
    assert respell("acme's GIF, not a GIFT.", table) == "Ácmi's [[dZ'If]], not a GIFT."
    assert respell("Nothing.", {}) == "Nothing."

"""Language codes: dubgraph's user-facing codes and what each model library calls them."""

from __future__ import annotations

from dataclasses import dataclass

from graph.errors import UnsupportedLanguage


@dataclass(frozen=True)
class Language:
    code: str  # dubgraph's code (BCP-47-like, lower case): "pt-br", "es"
    name: str
    nllb: str  # NLLB-200 / flores code
    chatterbox: str | None  # ChatterBox multilingual language_id, None when it cannot speak it
    espeak: str  # espeak-ng voice
    whisper: str  # whisper language code (source side)
    iso639_2: str  # ISO 639-2/T, what MP4/MOV language tags hold ("por", "fra"); see ``iso639_2b``

    @property
    def iso639_2b(self) -> str:
        """ISO 639-2/B, what Matroska language tags hold ("fre", "ger"); the same as /T for most languages."""
        return ISO639_2B.get(self.iso639_2, self.iso639_2)


ISO639_2B = {"fra": "fre", "deu": "ger", "nld": "dut", "zho": "chi", "ell": "gre", "msa": "may"}


LANGUAGES: dict[str, Language] = {
    lang.code: lang
    for lang in (
        Language("en", "English", "eng_Latn", "en", "en-us", "en", "eng"),
        Language("pt-br", "Portuguese (Brazil)", "por_Latn", "pt", "pt-br", "pt", "por"),
        Language("pt", "Portuguese", "por_Latn", "pt", "pt", "pt", "por"),
        Language("es", "Spanish", "spa_Latn", "es", "es", "es", "spa"),
        Language("fr", "French", "fra_Latn", "fr", "fr", "fr", "fra"),
        Language("de", "German", "deu_Latn", "de", "de", "de", "deu"),
        Language("it", "Italian", "ita_Latn", "it", "it", "it", "ita"),
        Language("nl", "Dutch", "nld_Latn", "nl", "nl", "nl", "nld"),
        Language("pl", "Polish", "pol_Latn", "pl", "pl", "pl", "pol"),
        Language("ru", "Russian", "rus_Cyrl", "ru", "ru", "ru", "rus"),
        Language("tr", "Turkish", "tur_Latn", "tr", "tr", "tr", "tur"),
        Language("ja", "Japanese", "jpn_Jpan", "ja", "ja", "ja", "jpn"),
        Language("ko", "Korean", "kor_Hang", "ko", "ko", "ko", "kor"),
        Language("zh", "Chinese", "zho_Hans", "zh", "cmn", "zh", "zho"),
        Language("hi", "Hindi", "hin_Deva", "hi", "hi", "hi", "hin"),
        Language("ar", "Arabic", "arb_Arab", "ar", "ar", "ar", "ara"),
        Language("sv", "Swedish", "swe_Latn", "sv", "sv", "sv", "swe"),
        Language("da", "Danish", "dan_Latn", "da", "da", "da", "dan"),
        Language("fi", "Finnish", "fin_Latn", "fi", "fi", "fi", "fin"),
        Language("el", "Greek", "ell_Grek", "el", "el", "el", "ell"),
        Language("he", "Hebrew", "heb_Hebr", "he", "he", "he", "heb"),
        Language("no", "Norwegian", "nob_Latn", "no", "nb", "no", "nor"),
        Language("ms", "Malay", "zsm_Latn", "ms", "ms", "ms", "msa"),
        Language("sw", "Swahili", "swh_Latn", "sw", "sw", "sw", "swa"),
    )
}


def language(code: str, supported: tuple[str, ...] | None = None, what: str = "target") -> Language:
    """Look a code up (case-insensitive, '_' or '-'), checking it against ``supported`` when given."""
    key = code.strip().lower().replace("_", "-")
    allowed = tuple(LANGUAGES) if supported is None else supported
    if key not in LANGUAGES or key not in allowed:
        raise UnsupportedLanguage(code, allowed, what)
    return LANGUAGES[key]


def parse_targets(text: str | list[str] | tuple[str, ...], supported: tuple[str, ...]) -> tuple[str, ...]:
    """'pt-br, es' -> ('pt-br', 'es'), each checked, duplicates dropped, order kept."""
    items = text.split(",") if isinstance(text, str) else list(text)
    codes = [language(item, supported).code for item in items if item.strip()]
    if not codes:
        raise UnsupportedLanguage("", supported)
    return tuple(dict.fromkeys(codes))

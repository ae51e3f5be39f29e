"""Language of a text: a script check first (reliable for Korean/Chinese/Japanese),
then py3langid for Latin-script text."""

from __future__ import annotations

import re

from .text import HAN, HANGUL, KANA

_HANGUL = re.compile(f"[{HANGUL}]")
_KANA = re.compile(f"[{KANA}]")
_HAN = re.compile(f"[{HAN}]")
_LETTER = re.compile(r"[^\W\d_]", re.UNICODE)

_identifier = None


def _langid():
    global _identifier
    if _identifier is None:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        _identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    return _identifier


def detect_language(text: str, default: str = "en") -> str:
    """ISO 639-1 code of the dominant language of ``text`` (``default`` when unsure)."""
    sample = text[:2000]
    letters = len(_LETTER.findall(sample))
    if not letters:
        return default
    hangul = len(_HANGUL.findall(sample))
    han = len(_HAN.findall(sample))
    kana = len(_KANA.findall(sample))
    # CJK scripts carry a lot per character: a modest share already means the
    # text is written in that language (code and English terms are mixed in).
    if hangul / letters > 0.15:
        return "ko"
    if kana / letters > 0.1:
        return "ja"
    if han / letters > 0.15:
        return "zh"
    lang, prob = _langid().classify(sample)
    if len(sample.split()) < 4 and prob < 0.9:
        return default
    return lang

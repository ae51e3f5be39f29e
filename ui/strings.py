"""The page's own sentences in the languages the corpus is asked in (en, ko, zh, it).

Notices about one answer (refusal, stop, progress, unsupported sentences) speak the
language of the question, so an Italian question gets a wholly Italian refusal notice;
the page chrome stays English. A language without its own table falls back to English.

    text("refusal_title", "it")   # -> "Non trovato nei tuoi documenti"
"""

from __future__ import annotations

STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "refusal_title": "Not found in your documents",
        "refusal_hint": "No source passage was close enough to the question, so nothing was made up.",
        "refusal_sources": "No sources: your documents do not cover this question. "
                           "Try other words, or upload a document that does.",
        "loading_model": "Loading the model {model} (first question only)…",
        "searching": "Searching your documents…",
        "generating": "Writing the answer…",
        "waiting": "Waiting",
        "stopped": "Stopped",
        "stopped_empty": "Stopped before the answer began.",
        "unsupported": "not supported by the cited source",
        "not_cited": "not cited",
        "open_pdf": "Open PDF at p. {page}",
    },
    "ko": {
        "refusal_title": "문서에서 찾을 수 없습니다",
        "refusal_hint": "질문과 충분히 가까운 원문 구절이 없어서 아무것도 지어내지 않았습니다.",
        "refusal_sources": "출처 없음: 문서가 이 질문을 다루지 않습니다. 다른 단어로 묻거나 관련 문서를 올려 주세요.",
        "loading_model": "모델 {model}을(를) 불러오는 중입니다 (첫 질문에서만)…",
        "searching": "문서를 검색하는 중…",
        "generating": "답변을 작성하는 중…",
        "waiting": "대기 중",
        "stopped": "중지됨",
        "stopped_empty": "답변이 시작되기 전에 중지되었습니다.",
        "unsupported": "인용한 출처가 뒷받침하지 않음",
        "not_cited": "인용되지 않음",
        "open_pdf": "PDF {page}쪽 열기",
    },
    "zh": {
        "refusal_title": "文档中未找到",
        "refusal_hint": "没有与问题足够接近的原文段落，因此没有编造任何内容。",
        "refusal_sources": "没有来源：您的文档不涉及这个问题。请换个说法，或上传相关文档。",
        "loading_model": "正在加载模型 {model}（仅第一个问题）…",
        "searching": "正在搜索您的文档…",
        "generating": "正在撰写回答…",
        "waiting": "排队中",
        "stopped": "已停止",
        "stopped_empty": "回答开始前已停止。",
        "unsupported": "引用的来源不支持这句话",
        "not_cited": "未引用",
        "open_pdf": "打开 PDF 第 {page} 页",
    },
    "it": {
        "refusal_title": "Non trovato nei tuoi documenti",
        "refusal_hint": "Nessun passo dei documenti era abbastanza vicino alla domanda, quindi non è stato inventato nulla.",
        "refusal_sources": "Nessuna fonte: i tuoi documenti non trattano questa domanda. "
                           "Prova con altre parole o carica un documento che ne parli.",
        "loading_model": "Caricamento del modello {model} (solo alla prima domanda)…",
        "searching": "Ricerca nei tuoi documenti…",
        "generating": "Scrittura della risposta…",
        "waiting": "In attesa",
        "stopped": "Interrotto",
        "stopped_empty": "Interrotto prima che la risposta iniziasse.",
        "unsupported": "non confermata dalla fonte citata",
        "not_cited": "non citata",
        "open_pdf": "Apri il PDF a p. {page}",
    },
}
LANGUAGES = tuple(STRINGS)


def text(key: str, lang: str | None = "en", **values) -> str:
    """The sentence ``key`` in ``lang`` (English when the language has no table)."""
    table = STRINGS.get((lang or "en").split("-")[0].lower(), STRINGS["en"])
    template = table.get(key) or STRINGS["en"][key]
    return template.format(**values) if values else template


__all__ = ["STRINGS", "LANGUAGES", "text"]

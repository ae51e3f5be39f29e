"""The kind of answer a question asks for, and whether a passage holds one.

"How many layers?" wants a number the question does not already give; "which endpoint?"
wants an address. A passage that holds no such thing does not answer, however close its
words: the extractive reader prefers passages that do, and a reader's best passage
holding none is one of the answerability signals (rag/answerability.py).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Protocol

# A question for a point in time: "when was it released", "quando è stato pubblicato", "언제
# 발표됐나요", "是什么时候发布的", "what time does it open". Only in the past tense, or with a
# date or a clock word: "when should I use LoRA?", "quando si parla di…" and "什么时候用" ask
# for a condition, not a date.
_WHEN = (r"\bwhen (?:was|were|did|had)\b|\b(?:on |by )?what (?:date|day)\b(?!-|\s+(?:formats?|types?|strings?|columns?|fields?)\b)|"
         r"\b(?:at )?what time (?:does|do|did|is|was|will)\b|\bas of when\b|"
         # (Italian puts "quando" first when it asks: "…il modello quando è stato rilasciato" is a clause)
         r"(?:^|[,;:¿]\s*)quando (?:è stat|sono stat|fu\b|furono\b|venne\b|vennero\b|uscì\b)|\bin (?:che|quale) (?:data|giorno)\b|"
         r"\ba che ora\b|언제[^?\n]{0,20}?(?:었|았|였|됐|했|났|나왔)|몇 ?시(?:에|쯤|부터|까지|경)?(?![\uac00-\ud7a3])|몇 ?월|며칠에|"
         # (not "什么时候使用…的效果", when to use; nor "有几点需要注意", how many points)
         r"(?:什么时候|何时)[^?？\n]{0,15}?(?:发布|提出|推出|成立|上线|出版|发表|开源|创建|建立|诞生|完成|部署)|"
         r"哪一?天|(?<![哪有这那])几点|几号|几月")
# Answer types a question announces, and what a passage needs to hold one: a question
# for a number wants a number the question does not already give; one for an address
# wants a URL or an IP address.
_ASKS_QUANTITY = re.compile(
    # ("what temperature value…", not "what do these values mean?")
    r"\b(how (many|much|long|big|large)|what (?:(?!(?:do|does|did|is|are|was|were|has|have|can|should|would|will)\b)"
    r"[\w-]+ ){0,2}?(?:values?|number|size|percentage)|quant[oaie]|numero|valore|percentuale)\b"
    # 哪几 asks "which ones", 几乎 means "almost": neither asks a number.
    r"|몇|얼마|多少|(?<!哪)几(?!乎)|百分之|(?<![很许更诸众好])多(?:[长久高远]|大(?!程度))"
    # a year is a number too ("In quale anno…", "哪一年…")
    r"|\b(?:what|which) year\b|\b(?:quale|che) anno\b|몇 ?년도|어느 해|哪一?年"
    # "what's the maximum input length…" wants the figure ("which model is the largest" a name)
    r"|\bwhat(?:'s|’s|\s+is|\s+was|\s+are|\s+were)\s+the\s+(?:max(?:imum)?|min(?:imum)?)\b"
    r"|\bqual(?:e|\s+è|'è|’è|\s+era)\s+(?:il|la|l'|l’)\s*(?:\w+\s+)?(?:massim[oa]|minim[oa])\b"
    # and so is a point in time (_WHEN)
    r"|" + _WHEN,
    re.IGNORECASE)
# A metric's name usually asks for its value ("what recall did it reach?"), but not always
# ("can accuracy be the metric on imbalanced data?"): see answer_type_match's ``metrics``.
_NAMES_METRIC = re.compile(
    # (a file's name is no metric: "score.py", "score_model")
    r"\b(accuracy|precision|recall|score|rate|size|runtime|accuratezza|precisione|log[ -]?loss|auc|"
    r"f1|bleu|rouge|perplexity|perplessità|mse|rmse|mae|latency|latenza)\b(?![._-]\w)|정확도|재현율|정밀도|准确率|召回|困惑度",
    re.IGNORECASE)
# Questions that usually want a number but may well be answered without one: a version or ID
# ("v2", "similarity_model:6": versions are often written as names) and a frequency ("every 42
# days", but also "weekly"). A fair preference for the reader, no test to refuse by.
_HINTS_NUMBER = re.compile(r"\bversion number\b|\bnumero di versione\b|번호|版本号|编号|"
                           r"\bhow often\b|\bogni quanto\b|얼마나 자주|多久一次|多长时间一次", re.IGNORECASE)
_ASKS_ADDRESS = re.compile(r"\b(url|uri|address|endpoint|indirizzo|link)\b|주소|地址|网址|接口", re.IGNORECASE)
# A value answers a question for a number only with some of the question's words beside it:
# at least BOUND_COVERAGE of them (rarity-weighted) within BOUND_WINDOW characters either
# side. Chosen by `python bench/calibrate.py` over 40/60/90 characters and 0.1-0.3: a wider
# window or a higher share fails more answerable questions whose figure sits in a table far
# from its label.
BOUND_WINDOW = 60
BOUND_COVERAGE = 0.15
# A value in a passage: digits; a Chinese numeral with a magnitude ("十亿", "百亿级", "三十":
# reports write sizes in words; "千万", "by all means", and "万一", "in case", are idioms); an
# English or Italian number word before the word it counts ("six hours", "sei ore"; "one" and
# "uno" are mostly articles, "due to" is no number).
_NUMBER_WORDS = (
    # (not "hundreds", "millions", "dozens": "hundreds of millions of users" is a size, like 数万至数亿)
    "two three four five six seven eight nine ten eleven twelve fifteen twenty thirty forty fifty "
    "hundred thousand million billion dozen "
    "tre quattro cinque sei sette otto nove dieci undici dodici quindici venti trenta quaranta "
    "cinquanta cento mille milioni miliardi due").split()
_NUMBER = re.compile(
    # digits glued or hyphened to a word are part of a name ("patch16", "gpt2", "실습2",
    # "T5-11B", "ResNet-50"), not a value
    r"(?<![A-Za-z_\uac00-\ud7a3\d])(?<![A-Za-z0-9]-)\d+(?:[.,]\d+)*"
    r"|(?<![一二两三四五六七八九十百千万亿])(?!千万(?![亿元])|万一)[一二两三四五六七八九十百千万亿]*[十百千万亿][一二两三四五六七八九十百千万亿]*"
    r"|\b(?:" + "|".join(_NUMBER_WORDS) + r")\b(?!\s+to\b)(?=\s+[^\W\d_])",
    re.IGNORECASE)
_ADDRESS = re.compile(r"https?://|\b\d{1,3}(?:\.\d{1,3}){3}\b|\w+\.\w+/\w+")
# A number that names a part of the document ("Exercise 2", "Figure 3", "图2", "第3章",
# a notebook cell "In [31]", a list's "7.") is a label, not a value: it must not pass for the
# number a question asks.
_LABEL_NUMBER = re.compile(
    r"(?i)\b(?:exercises?|esercizi[oa]?|figure|fig\.|table|tabella|chapter|capitolo|section|sezione|"
    r"step|passo|part|parte|cell)\s*[\[(（［]?\s*\d+(?:\.\d+)*|\bin\s*[\[［]\s*\d+|[图表第]\s*\d+|"
    r"^\s*#*\s*\d+\.(?!\d)"
    # nor a registered model's version ("ranking_factorization_model:1", ".../ranking_factorization_model/1")
    r"|\b[A-Za-z]\w*_\w*[:/]\d+(?![\d.])"
    # nor does a format placeholder ("{0:.4f}", "%.2f")
    r"|\{[\w.\[\]]*:[<>^=+\-#0,_ ]{0,4}\d*(?:\.\d+)?[bcdeEfFgGnosxX%]\}|%[-+#]*\d*(?:\.\d+)?[dfegs]\b",
    re.MULTILINE)


_BARE_MAGNITUDES = set("万亿")
# A question that names what its number measures ("how much does it cost", "quanta memoria",
# "多长时间", "in quale anno") wants a value with that unit: (what the question says, the unit
# right after the value). Only with a number asked for (asks_quantity): "which memory
# technique…" asks no figure.
# (one optional multiplier with its own space: two bare \s* in a row backtrack quadratically)
_AFTER = r"\s*(?:(?:[kKmM]|万|亿|千|thousand|million|billion)\s*)?"
# Checked in this order: "how much time did they spend" is a duration, not money.
_DIMENSIONS = {
    "duration": (
        re.compile(r"\bhow long\b[^?.!\n]{0,80}?\b(?:take|took|takes|last|lasted|run|ran|train|trained)\b|\bhow much time\b|"
                   r"\bhow many (?:seconds|minutes|hours|days|weeks)\b|\bquanto tempo\b|\bdur(?:a|ano|ata|ava)\b|"
                   r"\bquant[ie] (?:secondi|minuti|ore|giorni|settimane)\b|얼마나 걸|몇 ?(?:초|시간)|며칠|"
                   r"多长时间|多久|耗时|几个?(?:小时|分钟|秒|天|星期)", re.IGNORECASE),
        re.compile(r"\s*(?:ms|s|sec|secs|seconds?|min|mins|minutes?|h|hr|hrs|hours?|days?|weeks?|months?|"
                   r"secondi|minuti|ore|ora|giorni|settimane|mesi)(?![A-Za-z0-9])|\s*(?:秒|分钟|小时|天|周|个月|초|분|시간|일|주|개월)"
                   r"|:\d\d", re.IGNORECASE)),
    "money": (
        re.compile(r"\b(?:costs?|costing|price[ds]?|pricing|spen[dt]|fees?|money|costo|costa|costano|"
                   r"prezzo|spesa|soldi)\b|비용|가격|요금|费用|价格|成本|花费|多少钱|价钱", re.IGNORECASE),
        re.compile(_AFTER + r"(?:\$|€|£|(?:USD|EUR|GBP|dollars?|euros?|cents?|centesimi)\b|元|美元|欧元|원|달러|유로)",
                   re.IGNORECASE)),
    "memory": (
        re.compile(r"\b(?:memory|ram|vram|memoria|disk space)\b|메모리|内存|显存|存储空间", re.IGNORECASE),
        re.compile(r"\s*(?:(?i:[kmgtp]i?b)\b|[KMGTP]i\b|bytes?\b|字节|바이트)")),
    "year": (
        re.compile(r"\b(?:what|which) year\b|\b(?:quale|che) anno\b|몇 ?년도|어느 해|哪一?年|年份", re.IGNORECASE),
        None),
    # a point in time: a year, a day, a month or an hour ("2022年11月30日", "March 3", "7 am", "9시")
    "date": (re.compile(_WHEN, re.IGNORECASE), None),
}
_UNIT_BEFORE = {"money": re.compile(r"(?:[$€£¥￥]|USD|EUR)\s*$")}
# ... or a label just before it that names the dimension: logs and configs put the unit in the
# key ("'train_runtime': 545.7", "memory_gb=1", "Wall time: 3.2").
_LABEL_BEFORE = {
    # (a whole word or a key's part: "memory_gb", not "number" or "parameters")
    "money": re.compile(r"(?i)(?:(?<![a-z])(?:cost|price|prezzo|costo)(?![a-z])|费用|价格|成本|비용|가격)[^\n.;]{0,20}$"),
    "memory": re.compile(r"(?i)(?:(?<![a-z])(?:memory|mem|ram|gb|mb|memoria)(?![a-z])|内存|显存|메모리)[^\n.;]{0,20}$"),
    "year": re.compile(r"(?i)(?:(?<![a-z])(?:year|anno)(?![a-z])|年份|연도)[^\n.;]{0,20}$"),
    "date": re.compile(r"(?i)(?:(?<![a-z])(?:date|day|data|giorno|released|published|created)(?![a-z])|日期|时间|날짜|일자)[^\n.;]{0,20}$"),
    "duration": re.compile(r"(?i)(?:(?<![a-z])(?:runtime|time|duration|elapsed|seconds|secs|minutes|hours|latency|"
                           r"tempo|durata)(?![a-z])|耗时|时间|시간)[^\n.;]{0,20}$"),
}
_LABEL_WINDOW = 30
# A value written as a key's ("axis=1", "'train_runtime': 545.7", "Wall time: 42.9", "准确率：0.82"):
# the key is what stands before "=" or ":" since the last delimiter (a dotted name's last part),
# from a word's start, up to 30 characters.
_KEY_BEFORE = re.compile(r"(?<!\w)([^\W\d][^\n,;.(){}\[\]=:：]{0,30}?)['\"]?\s*[:=：]\s*['\"]?$")
_KEY_CHARS = 60
KEY_MATCH = 0.8  # "스코어" for "score", "users" for "user"; not "decay" for "loss" (0.68)
# ... with what the value is of, right after it ("Result: 342 passengers survived")
_VALUE_NOUN = re.compile(r"[^\n,;:=(){}\[\].。，；]{0,30}")
# Keys that name no attribute: the value is of whatever the text around it says.
_GENERIC_KEY = re.compile(r"(?i)results?|output|out|total|value|answer|count|number|risultato|totale|valore|"
                          r"结果|输出|总计|결과|출력|합계")
_CALLEE = re.compile(r"(\w+)\s*$")
_KWARG = re.compile(r"(\w+)\s*=(?!=)")
_NEVER = re.compile(r"(?!)")
_YEAR = re.compile(r"1[89]\d\d|20\d\d")
_MONTHS = (r"jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|june?|july?|aug(?:ust)?|sep(?:t|tember)?|"
           r"oct(?:ober)?|nov(?:ember)?|dec(?:ember)?|gennaio|febbraio|marzo|aprile|maggio|giugno|luglio|agosto|"
           r"settembre|ottobre|novembre|dicembre")
_DATE_AFTER = re.compile(r"\s*(?:年|月|日|号|點|点|時|时|년|월|일|시(?!간)|:\d\d|(?i:a\.?m\.?|p\.?m\.?|o'clock)(?![a-z])|"
                         # ("May" only capitalized: "3 may be combined" is no date)
                         r"(?i:" + _MONTHS + r")\b|May\b)")
_DATE_BEFORE = re.compile(r"(?:\b(?i:" + _MONTHS + r")|\bMay)\.?\s*$")


def asks_quantity(question: str, metrics: bool = False) -> bool:
    """Whether ``question`` asks for a number (with ``metrics``, a metric's name counts)."""
    return bool(_ASKS_QUANTITY.search(question) or (metrics and _NAMES_METRIC.search(question)))


def asks_address(question: str) -> bool:
    """Whether ``question`` asks for a URL or an address."""
    return bool(_ASKS_ADDRESS.search(question))


def new_values(question: str, passage: str) -> list[tuple[int, int]]:
    """The spans of ``passage`` holding a value ``question`` does not already give, labels
    ("Exercise 2", "图2", "In [31]") aside."""
    given = set(_NUMBER.findall(question))
    # Blank the labels out in place, so the spans stay those of ``passage``.
    plain = _LABEL_NUMBER.sub(lambda m: " " * len(m.group()), passage)
    # A bare magnitude ("数万至数亿", "亿级") is an order of size, not a figure.
    return [m.span() for m in _NUMBER.finditer(plain)
            if m.group() not in given and not set(m.group()) <= _BARE_MAGNITUDES]


class Evidence(Protocol):
    """What :func:`bound_value` needs of rag.citations.TermEvidence."""

    def coverage(self, passage: str) -> float: ...

    def matches(self, passage: str): ...  # per question term, its best similarity in ``passage``


@lru_cache(maxsize=1024)  # asked once per candidate passage
def dimension(question: str) -> str | None:
    """What the number ``question`` asks for measures, when it says so: "money", "memory",
    "duration", "year" or "date" (:data:`_DIMENSIONS`); None for a plain count or figure."""
    for name, (asks, _) in _DIMENSIONS.items():
        if asks.search(question):
            return name
    return None


def _measures(name: str, passage: str, start: int, end: int) -> bool:
    """Whether the value at ``passage[start:end]`` carries the unit of dimension ``name``."""
    if name == "year":
        return bool(_YEAR.fullmatch(passage[start:end]))
    if name == "date":
        return bool(_YEAR.fullmatch(passage[start:end]) or _DATE_AFTER.match(passage, end)
                    or _DATE_BEFORE.search(passage[max(0, start - 12):start]))
    unit = _DIMENSIONS[name][1]
    return bool(unit.match(passage, end) or _UNIT_BEFORE.get(name, _NEVER).search(passage[max(0, start - 5):start])
                or _LABEL_BEFORE[name].search(passage[max(0, start - _LABEL_WINDOW):start]))


def _call_words(before: str) -> str:
    """The name of the call whose open parenthesis ``before`` ends inside, with its keyword
    arguments' names; "" when ``before`` is inside no call."""
    depth = 0
    for i in range(len(before) - 1, -1, -1):
        if before[i] in ")]}":
            depth += 1
        elif before[i] in "([{":
            if depth == 0:
                if before[i] != "(":
                    return ""
                callee = _CALLEE.search(before[:i])
                return " ".join(([callee.group(1)] if callee else []) + _KWARG.findall(before[i + 1:]))
            depth -= 1
    return ""


def bound_value(question: str, passage: str, evidence: Evidence) -> bool:
    """Whether ``passage`` holds a value ``question`` does not give with the question's words
    beside it: "log loss: 0.45" answers "what log loss…", "accuracy: 0.82" does not. A question
    that says what its number measures wants that unit on it: "how much memory…" is not
    answered by "3 replicas", nor "in what year…" by "70000 images"."""
    measured = dimension(question) if asks_quantity(question) else None
    for start, end in new_values(question, passage):
        if measured and not _measures(measured, passage, start, end):
            continue
        before = passage[max(0, start - _KEY_CHARS):start]
        key = _KEY_BEFORE.search(before)
        if key and not _GENERIC_KEY.fullmatch(key.group(1).strip()) and not (
                measured and _LABEL_BEFORE[measured].search(key.group(1))):
            # A key's value belongs to its key: "axis=1" answers nothing about the Titanic
            # passengers beside it; "num_train_epochs=3" and "정확도: 0.82" answer what they name.
            # (A key that names the unit asked for, "'train_runtime': 545.7" for "how long…",
            # "Date: 2022-11-30" for "when…", or nothing at all, "Result: 314", is read like
            # prose, below.)
            name = key.group(1)
            if len(name) <= 2:
                # A one- or two-letter key names nothing alone: the call it is passed to does,
                # with its other arguments' names ("recommend(users=list(data[...]), k=10)"),
                # not the object it is called on ("titanic_df.sample(n=5)").
                name = _call_words(before) or name
            # The key (or what the value is of, right after it) must name one of the question's
            # words or a translation, not share a fraction of all of them: a key names the
            # attribute, not the subject around it.
            matched = evidence.matches(name + " " + _VALUE_NOUN.match(passage, end).group())
            if len(matched) and matched.max() >= KEY_MATCH:
                return True
            continue
        if evidence.coverage(passage[max(0, start - BOUND_WINDOW):end + BOUND_WINDOW]) >= BOUND_COVERAGE:
            return True
    return False


def answer_type_match(question: str, passage: str, metrics: bool = True, hints: bool = True) -> float:
    """1 when ``passage`` holds the kind of answer ``question`` asks for (a new number, an
    address), 0 when it does not, 0.5 when the question announces no type. With ``metrics``
    a metric's name alone ("what recall ...") asks for a number, with ``hints`` a version number
    or a frequency ("how often") does: fair preferences among passages, too loose to refuse a
    question by (rag/answerability.py decides when a metric's name counts)."""
    wants = []
    if asks_address(question):
        wants.append(bool(_ADDRESS.search(passage)))
    elif asks_quantity(question, metrics) or (hints and _HINTS_NUMBER.search(question)):
        wants.append(bool(new_values(question, passage)))
    if not wants:
        return 0.5
    return 1.0 if all(wants) else 0.0


__all__ = ["answer_type_match", "asks_address", "asks_quantity", "bound_value", "dimension", "new_values",
           "BOUND_WINDOW", "BOUND_COVERAGE"]

"""The default embedder (multilingual USE through sentence-transformers), with the real model."""

from __future__ import annotations

import numpy as np

SAMPLES = [
    "불균형한 레이블 데이터 세트에서 정확도를 평가 지표로 사용하면 안된다",
    "检索增强生成特别适用于客服问答、内容查询与推荐等场景。",
    "Quanto tempo ha richiesto l'addestramento del fine-tuning completo?",
    "per_device_train_batch_size=16, learning_rate=2e-5",
    "", " ", "tab\tand newline\n", "control\x00\x01chars", "😀 ﬁ Ａ ①",
]


def test_fast_tokenizer_gives_the_packages_own_ids(embedder):
    module = embedder.model[0]
    for text in SAMPLES:
        assert module._ids(text) == module.tokenizer.encode(text, out_type=int, add_bos=True, add_eos=True), text


def test_vectors_are_normalized_and_translations_are_close(embedder):
    vectors = embedder.embed_passages(["The weather is nice today.", "오늘은 날씨가 좋다.", "今天天气很好。",
                                       "Il modello è stato addestrato per tre epoche."])
    assert vectors.shape == (4, embedder.dim) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    sims = vectors @ vectors.T
    assert min(sims[0, 1], sims[0, 2], sims[1, 2]) > sims[0, 3] + 0.2


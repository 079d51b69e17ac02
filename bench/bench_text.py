"""Benchmarks of the text layers on the Austen paragraphs shipped with minidl (issue 16),
beside scikit-learn's CountVectorizer doing the same work in the same run.

- text-adapt: learning a vocabulary (TextVectorization.adapt / CountVectorizer.fit), both
  lowercasing and splitting on whitespace;
- text-count: bag-of-words counts over a given vocabulary (TextVectorization(
  output_mode='count') / CountVectorizer.transform, whose output stays sparse);
- string-hash: FarmHash64 buckets of distinct tokens (Hashing's hash, pure Python) beside
  Python's own hash of the same strings, the floor any per-string Python loop has.

The corpus is the 1,405 training paragraphs repeated 10 times (14,050 texts, about 700,000
tokens); 2 times in a plain ``pytest`` run (benchmarks disabled, a smoke test).
"""
import numpy as np
import pytest

from minidl.datasets import austen
from minidl.layers import TextVectorization
from minidl.layers.preprocessing.string_hash import hash_buckets


@pytest.fixture(scope="module")
def corpus(request):
    (texts, _), _ = austen.load_data()
    enabled = not request.config.getoption("benchmark_disable", False)
    return np.concatenate([texts] * (10 if enabled else 2))


def _sklearn():
    feature_extraction = pytest.importorskip("sklearn.feature_extraction.text")
    # TextVectorization(standardize='lower', split='whitespace')'s tokens.
    return lambda **kw: feature_extraction.CountVectorizer(lowercase=True,
                                                           token_pattern=r"\S+", **kw)


@pytest.mark.benchmark(group="text-adapt")
def test_text_adapt_minidl(benchmark, corpus):
    benchmark.extra_info["impl"] = "minidl"
    layer = TextVectorization(standardize="lower")
    benchmark(layer.adapt, corpus)
    assert layer.vocabulary_size() > 1000


@pytest.mark.benchmark(group="text-adapt")
def test_text_adapt_sklearn(benchmark, corpus):
    benchmark.extra_info["impl"] = "sklearn"
    vectorizer = _sklearn()()
    benchmark(vectorizer.fit, corpus)
    assert len(vectorizer.vocabulary_) > 1000


@pytest.fixture(scope="module")
def vocabulary(corpus):
    layer = TextVectorization(standardize="lower", max_tokens=5002)
    layer.adapt(corpus)
    return layer.get_vocabulary(include_special_tokens=False)


@pytest.mark.benchmark(group="text-count")
def test_text_count_minidl(benchmark, corpus, vocabulary):
    benchmark.extra_info["impl"] = "minidl"
    layer = TextVectorization(standardize="lower", output_mode="count",
                              vocabulary=vocabulary)
    out = benchmark(layer, corpus)
    assert out.shape == (len(corpus), len(vocabulary) + 1)


@pytest.mark.benchmark(group="text-count")
def test_text_count_sklearn(benchmark, corpus, vocabulary):
    benchmark.extra_info["impl"] = "sklearn"
    vectorizer = _sklearn()(vocabulary=vocabulary)
    out = benchmark(vectorizer.transform, corpus)
    assert out.shape == (len(corpus), len(vocabulary))


@pytest.fixture(scope="module")
def tokens(vocabulary):
    return np.asarray(vocabulary, dtype=object)


@pytest.mark.benchmark(group="string-hash")
def test_string_hash_minidl(benchmark, tokens):
    benchmark.extra_info["impl"] = "minidl"
    benchmark(hash_buckets, tokens, 1000)


@pytest.mark.benchmark(group="string-hash")
def test_string_hash_python(benchmark, tokens):
    benchmark.extra_info["impl"] = "python-hash"
    benchmark(lambda t: np.asarray([hash(s) % 1000 for s in np.unique(t).tolist()]), tokens)

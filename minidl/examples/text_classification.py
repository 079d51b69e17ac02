"""Text classification on minidl: which Jane Austen novel does a paragraph come from?

Reads the paragraphs of *Pride and Prejudice* and *Sense and Sensibility* shipped with
minidl (``minidl.datasets.austen``, so it runs offline), learns a vocabulary with
``TextVectorization.adapt``, and trains a model whose first layer takes the raw strings
(``Input(shape=(), dtype="string")``), so the trained model classifies text as it is:

- ``--model embedding`` (the default):
  TextVectorization(int) -> Embedding -> GlobalAveragePooling1D -> Dense(sigmoid);
- ``--model lstm``: TextVectorization(int) -> Embedding(mask_zero=True) -> LSTM ->
  Dense(sigmoid), the padding masked out;
- ``--model bow``: TextVectorization(tf_idf) -> Dense(relu) -> Dense(sigmoid), a
  bag-of-words model.

Usage:
    minidl-text-classification [--model embedding|lstm|bow] [--epochs N] [--max-tokens 5000]
"""
import argparse
import sys
import time

import numpy as np

import minidl
from minidl import layers
from minidl.datasets import austen


def build(model_kind, vectorizer, max_tokens, sequence_length):
    """The classifier over raw strings, ``vectorizer`` (adapted) its first layer."""
    inputs = layers.Input(shape=(), dtype="string")
    x = vectorizer(inputs)
    if model_kind == "embedding":
        x = layers.Embedding(max_tokens, 16)(x)
        x = layers.GlobalAveragePooling1D()(x)
    elif model_kind == "lstm":
        x = layers.Embedding(max_tokens, 32, mask_zero=True)(x)
        x = layers.LSTM(32)(x)
    else:
        x = layers.Dense(16, activation="relu")(x)
    outputs = layers.Dense(1, activation="sigmoid")(x)
    return minidl.Model(inputs, outputs, name=f"austen_{model_kind}")


def make_vectorizer(model_kind, max_tokens, sequence_length):
    if model_kind in ("embedding", "lstm"):
        return layers.TextVectorization(max_tokens=max_tokens, output_mode="int",
                                        output_sequence_length=sequence_length)
    return layers.TextVectorization(max_tokens=max_tokens, output_mode="tf_idf")


def train(x_train, y_train, x_test, y_test, model_kind="bow", epochs=10, batch_size=32,
          max_tokens=5000, sequence_length=80, verbose=1):
    """Adapts a vectorizer on ``x_train``, trains the classifier and evaluates it.

    Returns:
        ``(model, test_loss, test_accuracy, seconds)``.
    """
    vectorizer = make_vectorizer(model_kind, max_tokens, sequence_length)
    vectorizer.adapt(x_train)
    model = build(model_kind, vectorizer, max_tokens, sequence_length)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(x_train, y_train, epochs=epochs, batch_size=batch_size,
              validation_data=(x_test, y_test), verbose=verbose)
    seconds = time.perf_counter() - start
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    return model, loss, accuracy, seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="embedding", choices=["embedding", "lstm", "bow"])
    parser.add_argument("--epochs", type=int, default=None,
                        help="default: 30 for the embedding model, 8 for the LSTM, 10 for "
                             "bag-of-words")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=5000)
    parser.add_argument("--sequence-length", type=int, default=80)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2])
    args = parser.parse_args(argv)
    if args.epochs is None:
        # Averaged embeddings start from noise and learn slower than tf-idf features.
        args.epochs = {"embedding": 30, "lstm": 8, "bow": 10}[args.model]
    minidl.utils.set_random_seed(args.seed)
    (x_train, y_train), (x_test, y_test) = austen.load_data()
    print(f"austen: {len(x_train)} training and {len(x_test)} test paragraphs of "
          f"{' / '.join(austen.CLASS_NAMES)}")
    model, loss, accuracy, seconds = train(
        x_train, y_train, x_test, y_test, model_kind=args.model, epochs=args.epochs,
        batch_size=args.batch_size, max_tokens=args.max_tokens,
        sequence_length=args.sequence_length, verbose=args.verbose)
    print(f"Trained {args.epochs} epochs in {seconds:.2f} s. "
          f"Test loss {loss:.4f}, test accuracy {accuracy:.4f}")
    samples = np.array(["It is a truth universally acknowledged, that a single man in "
                        "possession of a good fortune, must be in want of a wife.",
                        "Elinor and Marianne walked out together after breakfast."],
                       dtype=object)
    for text, p in zip(samples, model.predict(samples, verbose=0)[:, 0]):
        print(f"  {austen.CLASS_NAMES[int(p > 0.5)]:>22} ({p:.2f}): {text[:60]}...")
    return 0


if __name__ == "__main__":
    sys.exit(main())

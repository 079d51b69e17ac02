"""Random weights for the inference tests (test_inference_folding.py,
test_inference_chain.py): normal weights, and moving variances in [0.5, 1.5], so that
a batch-normalization fold that ignored the moving statistics would show."""
import numpy as np


def randomize(model, seed):
    """``model`` with every weight drawn from a generator seeded with ``seed``."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.uniform(0.5, 1.5, w.shape).astype(w.dtype) if "variance" in name
                       else rng.normal(0, 0.3, w.shape).astype(w.dtype)
                       for name, w in zip(model.weight_names, model.get_weights())])
    return model

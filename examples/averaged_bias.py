"""The essay's second bug planted in bpcheck's own engine, to see what `report --engine` says about it.

The essay's script sums its weight gradients over the batch (X.T @ dz) but averages its bias gradients
(np.mean(dz, axis=0)), so every db is 1/batch of the truth. A function of (arch, params, x, y) can be
checked over random architectures:

    python -m bpcheck report --engine examples/averaged_bias.py:grads --cases 40 --out reports/averaged_bias
"""

from bpcheck import engine
from bpcheck.spec import Case


def grads(arch, params, x, y):
    g = engine.gradients(Case(arch, params, x, y)).grads
    return {k: v / x.shape[0] if k.startswith("b") else v for k, v in g.items()}

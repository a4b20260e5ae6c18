"""ssmbook: the package behind the book *sequence models as linear recurrences*.

Every model in the book is a linear recurrence ``h_t = Ā_t h_{t-1} + B̄_t x_t, y_t = C_t h_t``.
One module per topic: ``hmm``, ``ssm``, ``discretize``, ``derive``, ``s4``, ``selective``,
``adjoint``, ``mamba``, ``scan``, ``mambaout``, ``rwkv``, ``ssd``, ``delta``; ``kernels`` holds the
Triton kernels.  What several chapters share: ``baselines`` (attention, the Transformer), ``lm``
(``ResidualLM``), ``tasks`` (corpora and synthetic tasks), ``train`` (the training loop ``fit``),
``measure`` (parameter, FLOP, memory and operator counts); ``notebook`` (the setup cell, ``show``),
``widgets`` and ``plot`` serve the chapters; ``benchmarks`` reads the committed GPU results (package
data, ``ssmbook.benchmark_results()``); ``_checks`` holds the argument validators of every module.
Submodules are imported on demand (``import ssmbook.hmm``).
"""

from ._version import __version__  # noqa: F401
from .benchmarks import benchmark_results  # noqa: F401
from .notebook import sections, setup, show, source  # noqa: F401

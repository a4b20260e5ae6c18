"""ssmbook: the package behind the book *sequence models as linear recurrences*.

Every model in the book is a linear recurrence ``h_t = Ā_t h_{t-1} + B̄_t x_t, y_t = C_t h_t``.
One module per topic: ``hmm``, ``ssm``, ``discretize``, ``derive``, ``s4``, ``selective``,
``scan``, ``mambaout``, ``rwkv``; ``kernels`` holds the Triton kernels; ``widgets`` and ``plot``
serve the chapters; ``benchmarks`` reads the committed GPU results (package data,
``ssmbook.benchmark_results()``).  Submodules are imported on demand (``import ssmbook.hmm``).
"""

from ._version import __version__  # noqa: F401
from .benchmarks import benchmark_results  # noqa: F401
from .notebook import sections, setup, show, source  # noqa: F401

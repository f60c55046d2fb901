"""Side-by-side benchmarks: needle vs numpy by hand, PyTorch and HIPS autograd.

``python -m bench.run`` (or ``make bench``) runs the workloads of ``bench.workloads`` and
writes ``bench/RESULTS.md`` and ``docs/bench.png``.
"""

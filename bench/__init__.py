"""Side-by-side benchmarks: needle vs numpy by hand, PyTorch and HIPS autograd.

``python -m bench.run`` (or ``make bench``) runs the workloads of ``bench.workloads`` and
writes ``RESULTS.md`` and ``bench.png`` into ``bench/out/`` (untracked); ``--save`` also
rewrites the committed ``bench/RESULTS.md`` and ``docs/bench.png``.
"""

"""Speed and memory measurements (never timed tests); the results and commands are in docs/benchmarks.md.

Run each as a module from the repository root (``python -m benchmarks.NAME``), so ``hsrecon`` (this
checkout's) and ``tools`` import as packages without touching ``sys.path``.
"""

"""One-off generators and measurements behind the docs; not part of the package.

Run each as a module from the repository root (``python -m tools.NAME``), so ``hsrecon`` and ``tools``
import as packages without touching ``sys.path``; each file's docstring gives its command.
"""

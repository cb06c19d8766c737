"""``python -m hsrecon`` (and ``torchrun -m hsrecon``) runs the command-line interface."""

from hsrecon.cli import main

if __name__ == "__main__":
    main()

"""``python -m hsrecon`` (and ``torchrun -m hsrecon``) runs the command-line interface."""

from hsrecon._entry import main

if __name__ == "__main__":
    main()

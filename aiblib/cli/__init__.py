"""The command line, ``python -m aiblib <command>``: one module per command, each with ``main(argv) -> int``."""

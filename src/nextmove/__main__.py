"""``python -m nextmove``: the same command line as ``nextmove``."""

from nextmove.cli import main

if __name__ == "__main__":
    main()

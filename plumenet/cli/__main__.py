"""``python -m plumenet.cli``: the same as the ``plumenet`` console script."""

from plumenet.cli import main

if __name__ == "__main__":
    main()

"""`python -m flashsale` and the `flashsale` command."""

from flashsale import stopping


def run() -> int:
    # First, before the imports: a signal at any later moment stops the command.
    stopping.install()
    try:
        from flashsale.cli import main

        return main()
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(run())

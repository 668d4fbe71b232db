"""`python -m flashsale` and the `flashsale` command."""


def run() -> int:
    # Ctrl-C while the imports are still running ends the command quietly too.
    try:
        from flashsale.cli import main

        return main()
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(run())

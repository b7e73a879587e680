"""``python -m infra [-c key=value ...]``: synthesize the Ferry app offline into $CDK_OUTDIR."""

from __future__ import annotations

import argparse

from infra.app import main


def _parse(argv: list[str] | None = None) -> dict[str, str]:
    parser = argparse.ArgumentParser(prog="python -m infra", description=__doc__)
    parser.add_argument(
        "-c",
        "--context",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="CDK context value (e.g. -c bundle=false -c regions=us-gov-west-1,us-gov-east-1)",
    )
    args = parser.parse_args(argv)
    context = {}
    for item in args.context:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"-c expects KEY=VALUE, got {item!r}")
        context[key] = value
    return context


if __name__ == "__main__":
    main(_parse())

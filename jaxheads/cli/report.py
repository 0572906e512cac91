"""``jaxheads report``: publish a run's results as files, regenerate the tables quoting them."""

from __future__ import annotations

import argparse
import sys

from jaxheads.cli.help import add_command, field_default
from jaxheads.study.publish import ReportRequest


def report_command(args: argparse.Namespace) -> int:
    """Exit 0; 1 when ``--check`` finds a table that differs; 2 for bad input."""
    from jaxheads.study.publish import make_report

    request = ReportRequest(
        run=args.run_dir,
        publish=args.publish,
        command=args.command_line,
        seconds=args.seconds,
        note=args.note,
        check=args.check,
        root=args.root,
    )
    try:
        changed = make_report(request)
    except (ValueError, OSError) as err:
        print(f"jaxheads report: {err}", file=sys.stderr)
        return 2
    if request.publish:
        print(f"published {request.run} to {request.publish}")
    if request.check and changed:
        print(
            "tables that differ from their results files (run `jaxheads report`): "
            + ", ".join(changed),
            file=sys.stderr,
        )
        return 1
    verb = "differ" if request.check else "rewritten"
    print(f"tables {verb}: {', '.join(changed) or 'none'}")
    return 0


def add_commands(sub) -> None:
    """``jaxheads report``."""
    p = add_command(
        sub,
        "report",
        "publish results as files; regenerate the tables that quote them",
        "Regenerate every results table of README.md and docs/*.md between its "
        "<!-- results:KEY --> markers from docs/results/KEY/results.json; with --run and "
        "--publish, first publish a finished `jaxheads train` or `jaxheads compare` work "
        "directory there (results.json, results.md, plots, learning curves as CSV).",
    )
    p.add_argument(
        "--run", dest="run_dir", default=None, help="a finished train or compare work directory"
    )
    p.add_argument("--publish", default=None, help="the folder to publish --run into")
    p.add_argument(
        "--command",
        dest="command_line",
        default=None,
        help="the command that made --run, as typed (a study's is read from its results)",
    )
    p.add_argument(
        "--seconds", type=float, default=None, help="that command's wall time, when measured"
    )
    p.add_argument(
        "--note", default=None, help="a remark kept with a training run's record (e.g. the load)"
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if a table differs from what its results file gives",
    )
    p.add_argument(
        "--root",
        default=field_default(ReportRequest, "root"),
        help="the project's root (README.md and docs/)",
    )
    p.set_defaults(run=report_command)

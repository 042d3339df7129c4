from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from labeling.models import Project
from labeling.services.exports import EXPORT_FORMATS, export_stream


class Command(BaseCommand):
    help = "Export a whole project (streamed, constant memory) as Label Studio JSON, JSON Lines or CSV."

    def add_arguments(self, parser):
        parser.add_argument("project", type=int, help="project id")
        parser.add_argument("--format", choices=EXPORT_FORMATS, default="jsonl")
        parser.add_argument("--output", "-o", help="file to write (default: standard output)")

    def handle(self, *args, **options):
        project = Project.objects.filter(pk=options["project"]).first()
        if project is None:
            raise CommandError(f"no project with id {options['project']}")
        total = project.items.count()
        out = open(options["output"], "w", encoding="utf-8") if options["output"] else sys.stdout
        try:
            with tqdm(total=total, unit=" items", desc="exporting", file=sys.stderr,
                      disable=options["verbosity"] == 0 or not options["output"]) as bar:
                for chunk in export_stream(project=project, fmt=options["format"]):
                    out.write(chunk)
                    bar.update(min(chunk.count("\n"), total - bar.n))
        finally:
            if out is not sys.stdout:
                out.close()

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from labeling.formats.readers import FORMATS
from labeling.models import Project
from labeling.services.imports import import_file


class Command(BaseCommand):
    help = "Import items into a project from Label Studio JSON, JSON Lines (trace log v1 or plain) or CSV."

    def add_arguments(self, parser):
        parser.add_argument("project", type=int, help="project id")
        parser.add_argument("file", help="the file to import (or a zip holding it and its images)")
        parser.add_argument("--format", choices=FORMATS, help="default: detected from the name and content")
        parser.add_argument("--on-error", choices=["fail", "skip"], default="fail")
        parser.add_argument("--user", help="username recorded as the importer")

    def handle(self, *args, **options):
        project = Project.objects.filter(pk=options["project"]).first()
        if project is None:
            raise CommandError(f"no project with id {options['project']}")
        user = None
        if options["user"]:
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"no user {options['user']!r}")
        with tqdm(unit=" rows", desc="importing", disable=options["verbosity"] == 0) as bar:
            job = import_file(project=project, path=options["file"], user=user, fmt=options["format"],
                              on_error=options["on_error"], progress=lambda n: bar.update(n - bar.n))
        for error in job.errors:
            self.stderr.write(f"{options['file']}: line {error['line']}: {error['field']}: {error['message']}")
        summary = (f"import {job.pk}: {job.status}: {job.rows_imported} of {job.rows_total} rows imported, "
                   f"{job.error_count} error(s)")
        if job.status == "failed":
            raise CommandError(summary)
        self.stdout.write(summary)

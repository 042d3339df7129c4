from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from labeling.management.progress import follow_run
from labeling.models import Project, RoutingRun
from labeling.services.runs import RunError, routing_run_create


class Command(BaseCommand):
    help = "Send N random pending items through the judge to completion and then to humans (the labelled set)."

    def add_arguments(self, parser):
        parser.add_argument("project", type=int)
        parser.add_argument("--items", type=int, required=True, help="how many random pending items")
        parser.add_argument("--batch", type=int)

    def handle(self, *args, **options):
        project = Project.objects.filter(pk=options["project"]).first()
        if project is None:
            raise CommandError(f"no project with id {options['project']}")
        batch = project.batches.filter(pk=options["batch"]).first() if options["batch"] else None
        try:
            run = routing_run_create(project=project, batch=batch, kind=RoutingRun.Kind.SEED,
                                     seed_size=options["items"])
        except RunError as exc:
            raise CommandError(str(exc)) from None
        progress = follow_run(run, disable=options["verbosity"] == 0)
        self.stdout.write(json.dumps(progress, default=str))
        self.stderr.write(f"{progress['by_tier']['human']} items now wait in the review queue for their human labels")

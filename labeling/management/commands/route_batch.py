from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from labeling.management.progress import follow_run
from labeling.models import Project, RoutingRun
from labeling.services.ledger import BudgetError
from labeling.services.runs import RunError, routing_run_create


class Command(BaseCommand):
    help = "Route a batch's pending items through the three tiers (a routing run), with a progress bar."

    def add_arguments(self, parser):
        parser.add_argument("project", type=int)
        parser.add_argument("--batch", type=int, help="batch id (default: every pending item of the project)")
        budget = parser.add_mutually_exclusive_group()
        budget.add_argument("--budget", type=float, help="ρ: the share of items humans may review")
        budget.add_argument("--cap", type=int, help="an absolute number of human reviews")

    def handle(self, *args, **options):
        project = Project.objects.filter(pk=options["project"]).first()
        if project is None:
            raise CommandError(f"no project with id {options['project']}")
        batch = project.batches.filter(pk=options["batch"]).first() if options["batch"] else None
        if options["batch"] and batch is None:
            raise CommandError(f"no batch {options['batch']} in project {project.pk}")
        try:
            run = routing_run_create(project=project, batch=batch, kind=RoutingRun.Kind.ROUTE,
                                     rate=options["budget"], cap=options["cap"])
        except (RunError, BudgetError) as exc:
            raise CommandError(str(exc)) from None
        progress = follow_run(run, disable=options["verbosity"] == 0)
        self.stdout.write(json.dumps(progress, default=str))

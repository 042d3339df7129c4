from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from labeling.models import Project
from labeling.services.training import models_train


class Command(BaseCommand):
    help = "Fit f_θ, select the router design and certify the surrogate on the project's labelled history."

    def add_arguments(self, parser):
        parser.add_argument("project", type=int)
        parser.add_argument("--no-activate", action="store_true", help="store the new versions without activating")

    def handle(self, *args, **options):
        project = Project.objects.filter(pk=options["project"]).first()
        if project is None:
            raise CommandError(f"no project with id {options['project']}")
        self.stderr.write("training: features, disagreement scorer, router selection, surrogate certification …")
        try:
            summary = models_train(project=project, activate=not options["no_activate"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(json.dumps(summary, default=str))

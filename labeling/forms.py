"""HTML forms of the browser UI: they validate input; the services do the work."""

from __future__ import annotations

from django import forms

from labeling.models import ImportJob, ItemKind, JudgeFailurePolicy, ModelArtifact, RoutingRun


class ProjectCreateForm(forms.Form):
    name = forms.CharField(max_length=200)
    question = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}),
                               help_text="What the judge and the annotators answer for each item.")
    labels = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}),
                             help_text="One label per line, in display order (keys 1–9 follow this order).")
    instructions = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    item_kind = forms.ChoiceField(choices=ItemKind.choices, initial=ItemKind.TEXT)
    judge_model = forms.CharField(max_length=200, required=False)
    judge_base_url = forms.URLField(required=False, assume_scheme="http",
                                    help_text="OpenAI-compatible endpoint; the key comes from the environment.")
    judge_failure_policy = forms.ChoiceField(choices=JudgeFailurePolicy.choices, initial=JudgeFailurePolicy.FAIL)
    default_budget_rate = forms.FloatField(min_value=0.0, max_value=1.0, initial=0.3, label="Default budget ρ")
    blind_review = forms.BooleanField(required=False, help_text="Hide the judge's reasoning from annotators.")

    def clean_labels(self) -> list[str]:
        labels = [line.strip() for line in self.cleaned_data["labels"].splitlines() if line.strip()]
        if len(labels) < 2:
            raise forms.ValidationError("Give at least two labels, one per line.")
        if len(set(labels)) != len(labels):
            raise forms.ValidationError("Labels must not repeat.")
        return labels


class ProjectSettingsForm(ProjectCreateForm):
    """The same settings minus the item kind, which imported items depend on."""

    default_budget_cap = forms.IntegerField(min_value=0, required=False, label="Default budget cap",
                                            help_text="When set, routing runs default to this cap instead of ρ.")

    def __init__(self, *args, project, **kwargs):
        initial = {name: getattr(project, name) for name in self.base_fields if name != "labels"}
        initial["labels"] = "\n".join(project.labels)
        super().__init__(*args, initial=initial, **kwargs)
        del self.fields["item_kind"]


class BudgetCapForm(forms.Form):
    cap = forms.IntegerField(min_value=0, label="New cap")


class RunStartForm(forms.Form):
    BUDGET_CHOICES = [("default", "Project default"), ("rate", "A share ρ of the items"), ("cap", "An absolute cap")]

    kind = forms.ChoiceField(choices=RoutingRun.Kind.choices, initial=RoutingRun.Kind.ROUTE)
    batch = forms.TypedChoiceField(coerce=int, required=False, empty_value=None,
                                   help_text="Only pending items of the batch are routed.")
    budget_mode = forms.ChoiceField(choices=BUDGET_CHOICES, initial="default", widget=forms.RadioSelect,
                                    label="Human budget")
    rate = forms.FloatField(min_value=0.0, max_value=1.0, required=False, label="ρ (0–1)")
    cap = forms.IntegerField(min_value=0, required=False, label="Cap (items)")
    seed_size = forms.IntegerField(min_value=1, required=False, label="Seed sample size",
                                   help_text="Seed runs only: a random sample of the pending items.")

    def __init__(self, *args, batches=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["batch"].choices = [("", "All pending items")] + [
            (b.pk, f"{b.name} ({b.pending} pending)") for b in batches]

    def clean(self):
        data = super().clean()
        mode, kind = data.get("budget_mode"), data.get("kind")
        if kind == RoutingRun.Kind.ROUTE:
            if mode == "rate" and data.get("rate") is None:
                self.add_error("rate", "Give ρ between 0 and 1.")
            if mode == "cap" and data.get("cap") is None:
                self.add_error("cap", "Give a cap of 0 or more items.")
        elif mode != "default":
            self.add_error("budget_mode", "A seed run's budget is its number of items; leave the project default.")
        if kind != RoutingRun.Kind.SEED and data.get("seed_size") is not None:
            self.add_error("seed_size", "A sample size applies to seed runs only.")
        return data

    def service_kwargs(self) -> dict:
        data = self.cleaned_data
        kwargs = {"kind": data["kind"], "seed_size": data.get("seed_size")}
        if data["kind"] == RoutingRun.Kind.ROUTE and data["budget_mode"] != "default":
            kwargs[data["budget_mode"]] = data[data["budget_mode"]]
        return kwargs


class ImportForm(forms.Form):
    file = forms.FileField(help_text="Label Studio JSON, JSON Lines, CSV, or a zip with one of them and its images.")
    format = forms.ChoiceField(choices=[("", "Detect from the file")] + list(ImportJob.Format.choices), required=False)
    on_error = forms.ChoiceField(choices=ImportJob.OnError.choices, initial=ImportJob.OnError.SKIP,
                                 label="When rows are invalid")


class RollbackForm(forms.Form):
    kind = forms.ChoiceField(choices=ModelArtifact.Kind.choices)


class PriceForm(forms.Form):
    price_in = forms.FloatField(min_value=0, initial=2.5, required=False, label="$ per 1M input tokens")
    price_out = forms.FloatField(min_value=0, initial=10.0, required=False, label="$ per 1M output tokens")

    def prices(self) -> tuple[float, float]:
        data = self.cleaned_data if self.is_valid() else {}
        return (data.get("price_in") if data.get("price_in") is not None else self.fields["price_in"].initial,
                data.get("price_out") if data.get("price_out") is not None else self.fields["price_out"].initial)

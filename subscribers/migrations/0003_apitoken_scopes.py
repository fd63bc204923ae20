"""API keys get a list of scopes (read, write, publish) instead of one scope."""
from __future__ import annotations

from django.db import migrations, models

import subscribers.models

# The old single scope -> the new list: a write key could always read.
_FORWARD = {"read": ["read"], "write": ["read", "write"]}


def scopes_from_scope(apps, schema_editor) -> None:
    ApiToken = apps.get_model("subscribers", "ApiToken")
    for token in ApiToken.objects.all().only("pk", "scope"):
        ApiToken.objects.filter(pk=token.pk).update(scopes=_FORWARD.get(token.scope, ["read"]))


def scope_from_scopes(apps, schema_editor) -> None:
    # Going back loses publish: the old field has no such value, and write is the nearest.
    ApiToken = apps.get_model("subscribers", "ApiToken")
    for token in ApiToken.objects.all().only("pk", "scopes"):
        ApiToken.objects.filter(pk=token.pk).update(scope="write" if "write" in (token.scopes or []) else "read")


class Migration(migrations.Migration):
    dependencies = [
        ("subscribers", "0002_endpoint_quarantine"),
    ]

    operations = [
        migrations.AddField(
            model_name="apitoken",
            name="scopes",
            field=models.JSONField(
                default=list, validators=[subscribers.models.validate_scopes],
                help_text="read: GET only; write: also create and change; publish: also approve and publish updates.",
            ),
        ),
        migrations.RunPython(scopes_from_scope, scope_from_scopes),
        migrations.RemoveField(model_name="apitoken", name="scope"),
        migrations.AlterModelOptions(name="apitoken", options={"ordering": ["-created"], "verbose_name": "API key"}),
    ]

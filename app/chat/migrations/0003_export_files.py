"""Export files move out of Postgres into EXPORT_ROOT (docs/design.md: Room exports)."""

from typing import Any

from django.db import migrations, models


def expire_stored_files(apps: Any, schema_editor: Any) -> None:
    # Their bytes go with the column; they would be pruned within EXPORT_RETENTION_HOURS.
    apps.get_model("chat", "RoomExport").objects.filter(status="succeeded").update(
        status="failed", error="Made by an earlier version, which kept files elsewhere: ask for a new export."
    )


class Migration(migrations.Migration):
    dependencies = [("chat", "0002_roomexport")]

    operations = [
        migrations.RunPython(expire_stored_files, migrations.RunPython.noop),
        migrations.RemoveField(model_name="roomexport", name="content"),
        migrations.AddField(
            model_name="roomexport",
            name="last_message_id",
            field=models.PositiveBigIntegerField(blank=True, null=True),
        ),
    ]

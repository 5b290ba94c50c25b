# The heartbeat model moved here from core (core 0002): its table is renamed, nothing
# else changes.

from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ("core", "0002_workerheartbeat_moved_to_worker"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="WorkerHeartbeat",
                    fields=[
                        ("worker_id", models.CharField(max_length=64, primary_key=True, serialize=False)),
                        ("hostname", models.CharField(max_length=255)),
                        ("pid", models.PositiveIntegerField()),
                        ("started_at", models.DateTimeField()),
                        ("seen_at", models.DateTimeField(db_index=True)),
                    ],
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    "ALTER TABLE core_workerheartbeat RENAME TO worker_workerheartbeat",
                    reverse_sql="ALTER TABLE worker_workerheartbeat RENAME TO core_workerheartbeat",
                ),
            ],
        ),
    ]

# WorkerHeartbeat belongs to the worker app now (worker 0001 renames its table).

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("core", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[migrations.DeleteModel(name="WorkerHeartbeat")]),
    ]

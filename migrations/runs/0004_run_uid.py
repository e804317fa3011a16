"""Run.uid: a deployment-unique id that names and claims the run's directory.

Added nullable without a default first, so existing rows stay NULL (they keep their old ``<id>/``
directory) instead of all receiving the one default value, which the unique index would refuse.
"""

import uuid

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("runs", "0003_max_seq_backfill")]
    operations = [
        migrations.AddField(
            model_name="run", name="uid",
            field=models.UUIDField(null=True, unique=True, editable=False),
        ),
        migrations.AlterField(
            model_name="run", name="uid",
            field=models.UUIDField(default=uuid.uuid4, null=True, unique=True, editable=False),
        ),
    ]

"""StreamItem joins the runs app, taking over the table ``tracking_streamitem`` as it is.

State only (``tracking`` 0005 removed the model from that app's state): no table, row, index or
constraint changes, so an existing database keeps its stream and a fresh one has the table from
``tracking`` 0001. The model's content type (and so its permissions) follows it to ``runs``.
"""

import django.db.models.deletion
from django.db import migrations, models


def move_content_type(apps, schema_editor):
    """Relabel ``tracking.streamitem`` as ``runs.streamitem`` unless the new one already exists
    (on a fresh database neither exists yet: post_migrate creates the new one)."""
    ContentType = apps.get_model("contenttypes", "ContentType")
    db = schema_editor.connection.alias
    if not ContentType.objects.using(db).filter(app_label="runs", model="streamitem").exists():
        ContentType.objects.using(db).filter(app_label="tracking", model="streamitem").update(app_label="runs")


def restore_content_type(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    db = schema_editor.connection.alias
    if not ContentType.objects.using(db).filter(app_label="tracking", model="streamitem").exists():
        ContentType.objects.using(db).filter(app_label="runs", model="streamitem").update(app_label="tracking")


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0004_run_uid"),
        ("tracking", "0005_streamitem_to_runs"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="StreamItem",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False,
                                                   verbose_name="ID")),
                        ("pos", models.BigIntegerField()),
                        ("seq", models.BigIntegerField(blank=True, null=True)),
                        ("type", models.CharField(max_length=16)),
                        ("data", models.JSONField()),
                        ("at", models.DateTimeField(auto_now_add=True)),
                        ("run", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE,
                                                  related_name="stream_items", to="runs.run")),
                    ],
                    options={
                        "db_table": "tracking_streamitem",
                        "ordering": ("run", "pos"),
                        "constraints": [
                            models.UniqueConstraint(fields=("run", "pos"), name="streamitem_run_pos_unique"),
                            models.UniqueConstraint(condition=models.Q(("seq__isnull", False)),
                                                    fields=("run", "seq"), name="streamitem_run_seq_unique"),
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(move_content_type, restore_content_type),
    ]

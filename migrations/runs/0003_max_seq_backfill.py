"""Fill Run.max_seq (added in 0002) from the stream: ingest trusts it to skip the duplicate check."""

from django.db import migrations
from django.db.models import Max


def backfill(apps, schema_editor):
    Run = apps.get_model("runs", "Run")
    StreamItem = apps.get_model("tracking", "StreamItem")
    for row in StreamItem.objects.filter(seq__isnull=False).values("run_id").annotate(top=Max("seq")):
        Run.objects.filter(pk=row["run_id"]).update(max_seq=row["top"])


class Migration(migrations.Migration):
    dependencies = [("runs", "0002_run_max_seq"), ("tracking", "0001_initial")]
    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]

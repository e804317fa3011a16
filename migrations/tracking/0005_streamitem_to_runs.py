"""StreamItem moves to the runs app (issue 16: the run stream has one owner, runs; tracking uses it).

State only: the table ``tracking_streamitem`` and its rows stay where they are; ``runs`` 0005 takes
the model over with ``db_table`` set to that name. This runs after ``runs`` 0004 so that ``runs``
0003 (which reads ``tracking.StreamItem``) always sees the model, on a fresh database as on an old.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("tracking", "0004_sample_minibatch"), ("runs", "0004_run_uid")]
    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="StreamItem")],
            database_operations=[],
        ),
    ]

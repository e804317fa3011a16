"""What a run reports: metric points and samples. (The per-run stream that websockets replay is
``webapp.runs.models.StreamItem``, owned by the runs app: see ``webapp.runs.stream``.)

Metrics are stored narrow: one ``MetricKey`` row per (run, name) and one ``MetricPoint`` row per
(key, step) -> value, whose composite primary key *is* the (key, step) index every chart query uses.
Samples keep their text in columns and their per-token arrays as one zlib-compressed float16 blob
(``webapp.tracking.codec``).
"""

from __future__ import annotations

from django.db import models


class MetricKey(models.Model):
    run = models.ForeignKey("runs.Run", on_delete=models.CASCADE, related_name="metric_keys")
    name = models.CharField(max_length=200)

    class Meta:
        ordering = ("name",)
        constraints = (models.UniqueConstraint(fields=("run", "name"), name="metrickey_run_name_unique"),)


class MetricPoint(models.Model):
    """One value. Write points only through ``webapp.tracking.services.events_ingest`` (or call
    ``webapp.tracking.tiles.refresh_tiles`` after writing): chart queries read tiles for whole step
    ranges and would miss points that have none."""

    pk = models.CompositePrimaryKey("key", "step")
    # No separate index: the primary key (key, step) already starts with key. No database constraint
    # either: PostgreSQL checked it once per point at COMMIT, a third of a tracking batch's database
    # time (bench/ingest.py). Points are written only by the ingest path, which resolves key ids
    # under the run's row lock in the same statement; deletes cascade through the ORM.
    key = models.ForeignKey(MetricKey, on_delete=models.CASCADE, db_index=False, db_constraint=False,
                            related_name="+")
    step = models.IntegerField()
    value = models.FloatField()

    class Meta:
        ordering = ("key", "step")


class Sample(models.Model):
    run = models.ForeignKey("runs.Run", on_delete=models.CASCADE, related_name="samples")
    step = models.IntegerField()
    index = models.IntegerField()
    prompt = models.TextField()
    response = models.TextField()
    reward = models.FloatField(null=True)
    correct = models.BooleanField(null=True)
    length = models.IntegerField()
    # Which mini-batch of its rollout batch trained the sample (0-based) and how many there were; null
    # when the trainer did not say (FIPO's future-KL is 0 in mini-batch 0).
    minibatch = models.IntegerField(null=True)
    num_minibatches = models.IntegerField(null=True)
    # zlib(header JSON + float16 arrays): tokens and per-token channels (codec.pack_sample_arrays).
    arrays = models.BinaryField()

    class Meta:
        ordering = ("step", "index")
        constraints = (
            models.UniqueConstraint(fields=("run", "step", "index"), name="sample_run_step_index_unique"),
        )


class MetricTile(models.Model):
    """Aggregate of the points of one key in a fixed step tile [tile*width, (tile+1)*width).

    Kept exact at ingest (each batch re-aggregates the tiles it touched from the points), so a chart
    over a million points reads a few thousand tiles instead of every point. ``width`` is one of
    ``webapp.tracking.selectors.TILE_WIDTHS``; ``last_step`` is the step of the tile's last point.
    """

    pk = models.CompositePrimaryKey("key", "width", "tile")
    key = models.ForeignKey(MetricKey, on_delete=models.CASCADE, db_index=False, db_constraint=False,
                            related_name="+")  # written with the points: see MetricPoint.key
    width = models.IntegerField()
    tile = models.IntegerField()
    vmin = models.FloatField()
    vmax = models.FloatField()
    last_step = models.IntegerField()
    cnt = models.IntegerField()

    class Meta:
        ordering = ("key", "width", "tile")

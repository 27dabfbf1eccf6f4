"""``ListMetrics`` lists each metric once, as AWS does.

A metric is a namespace, a name and a set of dimensions.  moto 5.2.5 dedupes
the datapoints it lists with ``are_dimensions_same``, which compares every
dimension with every other one, so a metric with two or more dimensions is
listed once per datapoint put.  We replace
``CloudWatchBackend.get_filtered_metrics`` (used by ``ListMetrics``): same
filter (``MetricDatumBase.filter``), one entry per (namespace, name,
dimension set), in the order first seen.
"""

from __future__ import annotations

import functools
from typing import Any

_MARK = "_dm_cloudwatch_list_metrics"


def install() -> None:
    from moto.cloudwatch.models import CloudWatchBackend

    original = CloudWatchBackend.get_filtered_metrics
    if getattr(original, _MARK, False):
        return

    @functools.wraps(original)
    def get_filtered_metrics(
        self: Any, metric_name: str, namespace: str, dimensions: list[dict[str, str]]
    ) -> list[Any]:
        seen: set[tuple[str, str, tuple[tuple[str, str], ...]]] = set()
        found = []
        for md in self.get_all_metrics():
            if not md.filter(namespace=namespace, name=metric_name, dimensions=dimensions):
                continue
            key = (md.namespace, md.name, tuple(sorted((str(d.name), str(d.value)) for d in md.dimensions)))
            if key not in seen:
                seen.add(key)
                found.append(md)
        return found

    setattr(get_filtered_metrics, _MARK, True)
    CloudWatchBackend.get_filtered_metrics = get_filtered_metrics  # type: ignore[method-assign]

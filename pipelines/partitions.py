"""Century partitions C013…C021 (DESIGN.md §3). Imports nothing from assets/."""

import dagster as dg

FIRST_CENTURY = 13
LAST_CENTURY = 21
CENTURIES = [f"C{c:03d}" for c in range(FIRST_CENTURY, LAST_CENTURY + 1)]

century_partitions = dg.StaticPartitionsDefinition(CENTURIES)

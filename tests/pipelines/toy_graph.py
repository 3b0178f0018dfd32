"""A small graph with every edge shape of the real one, whose data versions a test dictates."""

import dagster as dg

from pipelines.metadata import ProgressLog

PARTS = dg.StaticPartitionsDefinition(["C018", "C019"])
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def make_graph(versions: dict, code_version: str = "1", fail: set | None = None, checks: list | None = None):
    """raw -> docs[p] -> clean[p] -> index -> report[p]. `versions` maps "name" / "name[partition]" to the data
    version the asset returns (default "v0"); `fail` names the "name[partition]"s that raise."""

    def version(name, context=None):
        key = f"{name}[{context.partition_key}]" if context is not None and context.has_partition_key else name
        if key in (fail or set()):
            raise RuntimeError(f"{key} broke")
        return dg.MaterializeResult(
            data_version=dg.DataVersion(versions.get(key, "v0")), metadata={"dagster/row_count": 2}
        )

    @dg.asset(code_version="1", group_name="sources")
    def raw():
        return version("raw")

    @dg.asset(partitions_def=PARTS, deps=[raw], code_version="1", group_name="sources")
    def docs(context):
        return version("docs", context)

    @dg.asset(partitions_def=PARTS, deps=[docs], code_version=code_version, group_name="quality")
    def clean(context):
        return version("clean", context)

    @dg.asset(deps=[clean], code_version="1", group_name="quality")
    def index():
        return version("index")

    @dg.asset(partitions_def=PARTS, deps=[index, clean], code_version="1", group_name="teacher")
    def report(context: dg.AssetExecutionContext):
        ProgressLog(context, "report", total=3).update(3, unit="situations", teacher_calls=3)
        result = version("report", context)
        return dg.MaterializeResult(data_version=result.data_version, metadata={"teacher_calls": 3})

    return dg.Definitions(assets=[raw, docs, clean, index, report], asset_checks=checks or [])


def run(defs, instance, keys, partition=None):
    job = defs.resolve_implicit_global_asset_job_def()
    job.execute_in_process(
        instance=instance, asset_selection=[dg.AssetKey(k) for k in keys], partition_key=partition, run_config=QUIET
    )


def build_all(defs, instance):
    run(defs, instance, ["raw"])
    for p in PARTS.get_partition_keys():
        run(defs, instance, ["docs", "clean"], p)
    run(defs, instance, ["index"])
    for p in PARTS.get_partition_keys():
        run(defs, instance, ["report"], p)

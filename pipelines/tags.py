"""Run tags chronoprism writes and reads, one name each (the UI filters runs by them)."""

BUILD_ID_TAG = "chronoprism/build_id"  # every run of one `chronoprism build` (automation ignores their updates)
SOURCE_TAG = "chronoprism/source"  # who started the run: cli, weekly_rebuild, ...
PROCESS_TAG = "chronoprism/process"  # host:pid of the build process, to reap the runs of a killed build

"""A driver process for the Ray executor's tests:
`python driver.py PIPELINE CONFIG OUT CACHE [ADDRESS REMOTE]` runs a fixture pipeline (kinds.py)
through trtbuild.api, on the Ray cluster at ADDRESS if given (else locally), and prints one JSON
document: the exit status, events and notices, or the config error."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

import ray.cloudpickle

from tests.exec.ray_cluster import kinds
from trtbuild import api
from trtbuild.errors import TrtbuildError
from trtbuild.exec.ray.cluster import RaySettings
from trtbuild.store.remote.settings import parse_remote_url

KEEP_GOING = "TRTBUILD_TEST_KEEP_GOING"  # "1": the run keeps going after a failure
NODES_GONE = "TRTBUILD_TEST_NODES_GONE_S"  # seconds before a task no live node can take fails
# The nodes cannot import the tests' modules: the kinds travel by value.
ray.cloudpickle.register_pickle_by_value(kinds)


def _test_timings() -> None:
    """Shorter waits for a task no live node can take (exec/ray/executor.py), where a test asks."""
    from trtbuild.exec.ray import executor

    if os.environ.get(NODES_GONE):
        executor.NODES_GONE_S = float(os.environ[NODES_GONE])
        executor.PLACEMENT_CHECK_S = min(executor.PLACEMENT_CHECK_S, executor.NODES_GONE_S / 4)


def main(pipeline: str, config: str, out: str, cache: str, address: str = "", remote: str = "") -> None:
    _test_timings()
    try:
        result = api.run(
            [config],
            cache_dir=Path(cache),
            out_dir=Path(out),
            pipeline=getattr(kinds, pipeline),
            ray=RaySettings(address) if address else None,
            remote=parse_remote_url(remote, source="test") if remote else None,
            keep_going=os.environ.get(KEEP_GOING) == "1",
        )
    except TrtbuildError as error:
        print(json.dumps({"error": str(error), "exit": error.exit_status}))
        return
    events = [event.to_json() for event in result.events]
    print(json.dumps({"exit": result.exit_status, "events": events, "notices": result.notices}))


if __name__ == "__main__":
    main(*sys.argv[1:])

# Benchmark helper (not part of the collection): append one JSON line per finished task to
# $TASK_TIMES_FILE with the wall-clock end time, so hack/measure_waits.py can compare it with the
# moment the operator made a CR ready.
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = """
name: task_times
type: aggregate
short_description: write task end times as JSON lines
description: Benchmark helper of this repository; writes to the file named by TASK_TIMES_FILE.
"""

import json
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "task_times"
    CALLBACK_NEEDS_ENABLED = True

    def _record(self, result, status):
        path = os.environ.get("TASK_TIMES_FILE")
        if path:
            with open(path, "a") as out:
                out.write(json.dumps({"task": result.task_name, "status": status, "end": time.time()}) + "\n")

    def v2_runner_on_ok(self, result):
        self._record(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "failed")

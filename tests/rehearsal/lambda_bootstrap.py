"""Stand-in for the Lambda Python runtime's bootstrap, run as ``python -I -S lambda_bootstrap.py``.

Usage: ``lambda_bootstrap.py OPT_DIR OUTCOME_FILE (invoke|init)``; the event arrives on stdin.

Like the real runtime it puts the function code (``LAMBDA_TASK_ROOT``) and the layers (``/opt``,
here ``OPT_DIR``) on ``sys.path`` and nothing else but the standard library, imports the module of
``_HANDLER`` and calls the handler once. Stdout and stderr are the function's logs; the outcome (the
result, or ``errorType``/``errorMessage`` as the runtime reports them, plus where every imported module
came from) goes to OUTCOME_FILE. ``init`` stops after the import: a cold start with no invocation.

Standard library only: nothing of the project or the test environment may be importable here.
"""

import importlib
import json
import os
import sys
import time
import traceback
from pathlib import Path


class LambdaContext:
    """The attributes and method of the runtime's context object that handlers (Powertools) read."""

    def __init__(self) -> None:
        self.function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = os.environ["AWS_LAMBDA_FUNCTION_VERSION"]
        self.memory_limit_in_mb = int(os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"])
        self.log_group_name = os.environ["AWS_LAMBDA_LOG_GROUP_NAME"]
        self.log_stream_name = os.environ["AWS_LAMBDA_LOG_STREAM_NAME"]
        self.invoked_function_arn = os.environ["REHEARSAL_FUNCTION_ARN"]
        self.aws_request_id = os.environ["REHEARSAL_REQUEST_ID"]
        self._deadline = time.monotonic() + int(os.environ["REHEARSAL_TIMEOUT_SECONDS"])

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def module_origins() -> dict[str, str]:
    return {
        name: module.__file__
        for name, module in list(sys.modules.items())
        if getattr(module, "__file__", None) is not None
    }


def main() -> int:
    opt, outcome_path, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    # The runtime's search path: /var/task, then the layers' /opt/python/lib/pythonX.Y/site-packages and
    # /opt/python (the runtime's own /var/runtime has nothing the rehearsal provides).
    sys.path[:0] = [
        os.environ["LAMBDA_TASK_ROOT"],
        str(opt / "python" / "lib" / version / "site-packages"),
        str(opt / "python"),
    ]
    module_name, _, attribute = os.environ["_HANDLER"].rpartition(".")
    try:
        module = importlib.import_module(module_name)
        handler = getattr(module, attribute)
    except Exception as error:  # reported the way the runtime reports a failed init
        outcome = {
            "errorType": "Runtime.ImportModuleError",
            "errorMessage": f"Unable to import module '{module_name}': {error}",
            "stackTrace": traceback.format_exc(),
        }
    else:
        if mode == "init":
            outcome = {"result": None}
        else:
            try:
                outcome = {"result": handler(json.load(sys.stdin), LambdaContext())}
            except Exception as error:
                outcome = {
                    "errorType": type(error).__name__,
                    "errorMessage": str(error),
                    "stackTrace": traceback.format_exc(),
                }
    outcome["modules"] = module_origins()
    outcome_path.write_text(json.dumps(outcome, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A flow run's process as our process worker starts it (deployments/prefect_worker.py):
Prefect's engine, `python -m prefect.engine`, in a session of its own, so that stopping the
worker (its whole process group, `registre worker` drains so) leaves the run to finish. Prefect's
own workspace supervisor does the same for the runs it starts."""

import os
import runpy

if __name__ == "__main__":
    os.setsid()
    runpy.run_module("prefect.engine", run_name="__main__", alter_sys=True)

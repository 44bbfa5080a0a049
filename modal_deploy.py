"""The Modal app: `modal deploy modal_deploy.py`.

It runs the very handlers the local runtime runs (`functions.cloud.execute_task`: skip if done -> claim ->
run -> done marker) against the S3 bucket, in a pinned CPU image, with the AWS credentials from a Modal
secret. Importing this file needs no credentials and no network; tests call `run_task.local(...)`.

In this build the app holds the task runner. Intake from S3 (an SQS poller on a schedule and an
EventBridge web endpoint), one function per phase with its GPU choice and the weight volume, and the
provisioning of bucket notifications come with the cloud path (README, "Status of this build").
"""

from __future__ import annotations

from typing import Any

import modal

APP_NAME = "dropfit"
AWS_SECRET = "dropfit-aws"  # AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION; DROPFIT_* settings

app = modal.App(APP_NAME)

cpu_image = (
    modal.Image.debian_slim(python_version="3.11")
    .pip_install(
        "pydantic>=2.9,<3",
        "pydantic-settings>=2.5,<3",
        "structlog>=24.4",
        "boto3>=1.35.40,<2",
        "watchdog>=5,<8",
        "typer>=0.12,<1",
        "rich>=13",
        "pillow>=10.4,<14",
        "numpy>=1.26,<2",
    )
    .env({"DROPFIT_LOG_FORMAT": "json"})
    .add_local_python_source("functions", "pipeline", "events", "infra")
)


@app.function(
    image=cpu_image,
    secrets=[modal.Secret.from_name(AWS_SECRET)],
    retries=modal.Retries(max_retries=3, backoff_coefficient=2.0, initial_delay=2.0),
    timeout=600,
    max_containers=50,
)
def run_task(step: str, subject: str, bucket: str) -> dict[str, Any]:
    """Run one task (intake, batch, a phase run, publish, fail, report) against the S3 bucket."""
    from functions.cloud import execute_task
    from functions.logs import configure
    from infra.settings import Settings

    settings = Settings()
    configure(settings.log_format, settings.log_level)
    return execute_task(step, subject, bucket, settings)

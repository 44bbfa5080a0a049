"""boto3 clients for the services beside S3 (SQS, SNS, EventBridge, IAM, STS), one way, at the edge.

`endpoint_url` points every service at one endpoint (moto's server in tests); None means AWS. Credentials
come from the default chain (environment, profile, instance role), never from here.
"""

from __future__ import annotations

from typing import Any

import boto3

from infra.s3_store import client_config


def client(service: str, *, endpoint_url: str | None = None, region: str | None = None) -> Any:
    return boto3.client(service, endpoint_url=endpoint_url, region_name=region, config=client_config())



"""`dropfit infra plan|apply|destroy|policy` and `dropfit worker`: the cloud path from the command line.

`register(app)` adds them to the main CLI. `registry` is the seam for the phases the worker runs (the
product's by default; tests give test phases).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from typing import Annotated, Any, TypeVar

import typer
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from rich.console import Console

from functions.handlers import Handlers
from functions.logs import configure
from functions.progress import ProgressPrinter
from functions.runtime import LocalRuntime
from functions.sqs_worker import DrainStats, drain
from infra import aws, policies
from infra.notifications import build_notifier, redeliver_due
from infra.provision import Provisioner, ProvisionSpec, Route
from infra.resources import Change
from infra.s3_store import S3Store
from infra.settings import Settings
from pipeline.phase_api import PhaseRegistry
from pipeline.registry import product_registry

console = Console()
T = TypeVar("T")

Bucket = Annotated[str, typer.Option("--bucket", "-b", help="the S3 bucket")]
EndpointUrl = Annotated[str | None, typer.Option("--endpoint-url", help="AWS API endpoint (moto); default: AWS")]
Region = Annotated[str | None, typer.Option("--region", help="AWS region; default: the AWS configuration")]
RouteOpt = Annotated[str, typer.Option("--route", help="sqs (S3 -> SQS -> poller) or eventbridge (-> web endpoint)")]
Endpoint = Annotated[str | None, typer.Option("--endpoint", help="the Modal web endpoint URL (eventbridge route)")]
MaxReceives = Annotated[int, typer.Option("--max-receives", min=1, max=1000, help="receives before the DLQ")]
LogLevel = Annotated[str, typer.Option("--log-level", help="debug, info, warning or error (logs go to stderr)")]


def _settings(endpoint_url: str | None, region: str | None, log_level: str = "warning") -> Settings:
    overrides: dict[str, Any] = {"log_level": log_level}
    if endpoint_url:
        overrides["s3_endpoint_url"] = endpoint_url
    if region:
        overrides["aws_region"] = region
    settings = Settings(**overrides)
    configure(settings.log_format, settings.log_level)
    return settings


def _clients(settings: Settings) -> Callable[[str], Any]:
    return cache(lambda service: aws.client(service, endpoint_url=settings.s3_endpoint_url, region=settings.aws_region))


def _provisioner(bucket: str, endpoint_url: str | None, region: str | None, route: str, endpoint: str | None,
                 max_receives: int) -> Provisioner:
    settings = _settings(endpoint_url, region)
    if route not in ("sqs", "eventbridge"):
        raise typer.BadParameter("use sqs or eventbridge", param_hint="--route")
    token = settings.endpoint_token.get_secret_value() if settings.endpoint_token else None
    try:
        spec = ProvisionSpec(bucket=bucket, route=route_of(route), endpoint=endpoint, token=token,
                             max_receives=max_receives)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--endpoint") from exc
    return Provisioner(spec, _clients(settings))


def route_of(value: str) -> Route:
    return "eventbridge" if value == "eventbridge" else "sqs"


def _report(changes: list[Change], done: bool) -> None:
    for change in changes:
        console.print(f"  {change}", highlight=False)
    verb = "changed" if done else "would change"
    console.print(f"{len(changes)} {verb}" if changes else "no changes: everything is as it should be")


def _aws_errors(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except NoCredentialsError as exc:
        console.print("[red]no AWS credentials[/]: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile")
        raise typer.Exit(2) from exc
    except (ClientError, BotoCoreError) as exc:
        console.print(f"[red]AWS refused[/]: {exc}", highlight=False)
        raise typer.Exit(1) from exc


infra_app = typer.Typer(help="The bucket's event wiring on AWS: plan shows, apply makes, destroy removes. "
                        "Idempotent; every change is printed.", no_args_is_help=True)


@infra_app.command()
def plan(bucket: Bucket, endpoint_url: EndpointUrl = None, region: Region = None, route: RouteOpt = "sqs",
         endpoint: Endpoint = None, max_receives: MaxReceives = 5) -> None:
    """Show what `apply` would change (nothing is changed)."""
    p = _provisioner(bucket, endpoint_url, region, route, endpoint, max_receives)
    _report(_aws_errors(p.plan), done=False)


@infra_app.command()
def apply(bucket: Bucket, endpoint_url: EndpointUrl = None, region: Region = None, route: RouteOpt = "sqs",
          endpoint: Endpoint = None, max_receives: MaxReceives = 5) -> None:
    """Make the queue, its dead-letter queue, the notification rules (and the EventBridge route)."""
    p = _provisioner(bucket, endpoint_url, region, route, endpoint, max_receives)
    _report(_aws_errors(p.apply), done=True)
    url = _aws_errors(lambda: p.queue_url(p.names.queue))
    if url:
        console.print(f"event queue: {url}\n  run: dropfit worker --bucket {bucket} --queue-url {url}",
                      highlight=False)


@infra_app.command()
def destroy(bucket: Bucket, endpoint_url: EndpointUrl = None, region: Region = None,
            dry_run: Annotated[bool, typer.Option("--dry-run", help="only show what would go")] = False) -> None:
    """Remove what `apply` made (queues, our notification rules, the EventBridge route). The bucket and
    its objects stay."""
    p = _provisioner(bucket, endpoint_url, region, "sqs", None, 5)
    _report(_aws_errors(lambda: p.destroy(dry=dry_run)), done=not dry_run)


@infra_app.command()
def policy(bucket: Bucket, endpoint_url: EndpointUrl = None, region: Region = None) -> None:
    """Print the least-privilege IAM policy for the credentials in the Modal secret (or a worker)."""
    settings = _settings(endpoint_url, region)
    p = _provisioner(bucket, endpoint_url, region, "sqs", None, 5)
    queue, account = _aws_errors(lambda: (p.arn_of(p.names.queue), p.account))
    bus = settings.notify_eventbridge_bus
    notify_queue = settings.notify_sqs_queue_url
    document = policies.worker_policy(
        bucket, queue, sns_topic=settings.notify_sns_topic_arn,
        notify_queue=policies.queue_arn_from_url(notify_queue) if notify_queue else None,
        bus_arn=f"arn:aws:events:{p.region}:{account}:event-bus/{bus}" if bus else None)
    typer.echo(json.dumps(document, indent=2))


def register(app: typer.Typer, *, registry: Callable[[], PhaseRegistry] = product_registry) -> None:
    app.add_typer(infra_app, name="infra")
    app.command("worker")(make_worker(registry))


def make_worker(registry: Callable[[], PhaseRegistry]) -> Callable[..., None]:
    def worker(bucket: Bucket,
               queue_url: Annotated[str | None, typer.Option("--queue-url", help="default: the one apply made")] = None,
               endpoint_url: EndpointUrl = None, region: Region = None,
               until_idle: Annotated[bool, typer.Option("--until-idle", help="stop when the queue is empty")] = False,
               log_level: LogLevel = "warning") -> None:
        """Drain the bucket's SQS event queue and run the phases here, against S3 (no Modal needed)."""
        settings = _settings(endpoint_url, region, log_level)
        clients = _clients(settings)
        store = S3Store.connect(bucket, endpoint_url=settings.s3_endpoint_url, region=settings.aws_region)
        url = queue_url or _queue_url(bucket, clients)
        handlers = Handlers(store, registry(), build_notifier(store, settings),
                            lease_s=settings.lease_s, prices=settings.prices())
        progress = ProgressPrinter(console)
        runtime = LocalRuntime(handlers, workers=settings.workers, max_attempts=settings.max_attempts,
                               retry_base_s=settings.retry_base_s, on_outcome=progress, on_start=progress.started,
                               preload=settings.preload)
        console.print(f"worker: bucket {bucket}, queue {url}" + (" (until idle)" if until_idle else ""))
        with runtime, progress:
            stats = serve(clients("sqs"), url, runtime, settings, until_idle=until_idle)
        console.print(f"worker stopped: {stats.received} messages, {stats.events} events, {stats.tasks} tasks, "
                      f"{stats.kept} kept for redelivery", highlight=False)

    return worker


def _queue_url(bucket: str, clients: Callable[[str], Any]) -> str:
    name = policies.names_for(bucket).queue
    try:
        return str(clients("sqs").get_queue_url(QueueName=name)["QueueUrl"])
    except ClientError as exc:
        raise typer.BadParameter(f"no queue {name}: run `dropfit infra apply --bucket {bucket}` first, or give "
                                 "--queue-url", param_hint="--queue-url") from exc


def serve(sqs: Any, queue_url: str, runtime: LocalRuntime, settings: Settings, *, until_idle: bool) -> DrainStats:
    """Until idle: drain, sweep what events missed, drain what that wrote, retry due deliveries. Otherwise
    the same on a loop (long polls, a sweep every `sweep_interval_s`) until Ctrl-C."""
    total = DrainStats()
    try:
        while True:
            if until_idle:
                _add(total, drain(sqs, queue_url, runtime, wait_s=1, idle_polls=2))
                runtime.run_until(lambda: False, timeout=settings.job_timeout_s)
                _add(total, drain(sqs, queue_url, runtime, wait_s=0, idle_polls=1))
            else:
                _add(total, drain(sqs, queue_url, runtime, wait_s=20, idle_polls=10**9,
                                  deadline_s=settings.sweep_interval_s))
                runtime.sweep()
            redeliver_due(runtime.store, settings)
            if until_idle:
                return total
    except KeyboardInterrupt:
        console.print("stopping: finishing the tasks in hand")
        return total


def _add(total: DrainStats, more: DrainStats) -> None:
    total.received += more.received
    total.deleted += more.deleted
    total.kept += more.kept
    total.events += more.events
    total.tasks += more.tasks
    total.errors += more.errors

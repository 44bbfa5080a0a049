"""Adapters to the world outside the pipeline: storage backends, settings and provisioning.

`infra.folder_store.FolderStore` (a local folder as a bucket, with in-process events),
`infra.s3_store.S3Store` (S3 or any S3-compatible endpoint through boto3) and `infra.watcher.FolderWatcher`
(files dropped into a folder by anyone become object events) implement the protocols of `pipeline` and emit
the contracts of `events`. `infra.provision` makes the bucket's event wiring on AWS and `infra.subscribers`
delivers job events (webhooks, SNS, SQS, EventBridge). Imports go one way: `infra` may import `pipeline`
and `events`, never `functions`; boto3 is imported by the AWS adapters only (`s3_store`, `aws`).
"""

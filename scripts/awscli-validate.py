#!/usr/bin/env python3
"""The AWS CLI's own CloudTrail log file validator, run as a library: the independent check of
`connect-audit verify` (tests/tests/e2e/integrity.rs).

It runs awscli's `DigestTraverser` (awscli/customizations/cloudtrail/validation.py, the code
behind `aws cloudtrail validate-logs`) over one trail in an S3 bucket, then checks the log
files of every valid digest as `validate-logs` does, and prints one JSON line per verdict:

    {"kind": "digest", "key": "...", "verdict": "valid" | "invalid" | "missing"}
    {"kind": "log", "key": "...", "verdict": "valid" | "invalid" | "missing"}
    {"kind": "gap", "from": "...", "until": "..."}

Usage: awscli-validate.py TRAIL_ARN BUCKET PREFIX START END
The S3 and CloudTrail endpoints come from AWS_ENDPOINT_URL_S3 and AWS_ENDPOINT_URL_CLOUDTRAIL;
credentials and region from the usual AWS variables.
"""

import gzip
import hashlib
import json
import os
import sys

import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError
from awscli.customizations.cloudtrail.validation import (
    create_digest_traverser,
    parse_date,
)


def emit(**fields):
    print(json.dumps(fields), flush=True)


class OneClient:
    """awscli's S3ClientProvider, for one endpoint (no GetBucketLocation)."""

    def __init__(self, client):
        self._client = client

    def get_client(self, bucket_name):
        return self._client


def main():
    trail_arn, bucket, prefix, start, end = sys.argv[1:6]
    session = botocore.session.get_session()
    region = os.environ.get("AWS_REGION", "us-east-1")
    s3 = session.create_client(
        "s3",
        region_name=region,
        endpoint_url=os.environ["AWS_ENDPOINT_URL_S3"],
        config=Config(s3={"addressing_style": "path"}),
    )
    cloudtrail = session.create_client(
        "cloudtrail",
        region_name=region,
        endpoint_url=os.environ["AWS_ENDPOINT_URL_CLOUDTRAIL"],
    )

    def on_invalid(bucket, last_key, message=None, **kwargs):
        emit(kind="digest", key=last_key, verdict="invalid", message=message)

    def on_missing(bucket, last_key, **kwargs):
        emit(kind="digest", key=last_key, verdict="missing")

    def on_gap(bucket, next_key, last_key, next_end_date, last_start_date, **kwargs):
        emit(kind="gap", from_key=next_key, until_key=last_key)

    traverser = create_digest_traverser(
        cloudtrail_client=cloudtrail,
        organization_client=None,
        s3_client_provider=OneClient(s3),
        trail_arn=trail_arn,
        on_invalid=on_invalid,
        on_gap=on_gap,
        on_missing=on_missing,
        bucket=bucket,
        prefix=prefix or None,
    )
    for digest in traverser.traverse_digests(parse_date(start), parse_date(end)):
        emit(kind="digest", key=digest["digestS3Object"], verdict="valid")
        # As `validate-logs` checks the log files of a valid digest.
        for log in digest["logFiles"]:
            try:
                body = s3.get_object(Bucket=log["s3Bucket"], Key=log["s3Object"])["Body"].read()
            except ClientError as e:
                if e.response["Error"]["Code"] != "NoSuchKey":
                    raise
                emit(kind="log", key=log["s3Object"], verdict="missing")
                continue
            actual = hashlib.sha256(gzip.decompress(body)).hexdigest()
            verdict = "valid" if actual == log["hashValue"] else "invalid"
            emit(kind="log", key=log["s3Object"], verdict=verdict)


if __name__ == "__main__":
    main()

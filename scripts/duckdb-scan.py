#!/usr/bin/env python3
"""DuckDB's side of the scan benchmark (bench/src/bin/bench-scan.rs runs it):

    duckdb-scan.py [--form today|narrow] [--threads N] TRAIL_DIR OUT.csv EVENT,NAMES,...

Reads every CloudTrail file under TRAIL_DIR/AWSLogs with read_json and explicit column types
(schema inference fails on real CloudTrail: `maxResults` and `MaxResults` both occur),
unnests Records, keeps the audited Connect calls, left-joins a users table on the target user
id, and writes CSV sorted by event id. Prints one JSON line: wall seconds, peak RSS (KiB),
rows, the form, the threads and DuckDB's version. `SET threads` is the number of cores this
process may run on, unless --threads says otherwise.

Two forms of the same query, which write the same CSV byte for byte (bench-scan checks it):

- `today` (the default): the query as the benchmark first ran it. Every record field the
  filter or the output reads, and two it does not (eventVersion, eventType), typed, with
  `userIdentity`, `requestParameters` and `responseElements` as JSON; read_json's format
  'auto', records left to 'auto', maximum_object_size 1 GiB (a CloudTrail file is one JSON
  object; the largest generated ones are 60–140 MB).
- `narrow`: the fastest correct form found, as a data engineer would tune it. Only the fields
  the query reads; `userIdentity` a STRUCT of the one field it reads (arn); JSON only for
  `requestParameters` and `responseElements`, whose keys vary by service; records = 'true'
  (the file's top-level object holds the columns); format 'newline_delimited' (CloudTrail
  writes each file as one object on one line).

What was tried (DuckDB 2.0.1 from PyPI, 2 threads, 2 vCPU Xeon, files in the page cache,
2026-12-07; each variant 3–7 times interleaved, the machine shared with builds: ranges). Two
100 MB trails from `gen-trail --size 100M`: many-small (91 files, 12.2 MB gzip) and few-large
(`--shape few-large`, 25 files, 15.5 MB gzip, largest 63.7 MB of JSON). Every variant that ran
wrote the same CSV (40 and 35 rows) as `today`.

| variant | many-small (s) | few-large (s) |
|---|---|---|
| today (format 'auto', records 'auto') | 4.0–5.7 | 6.6–10.0 |
| today's types + records = 'true' | 0.77–0.90 | 0.67–1.10 |
| narrow types, format 'auto', records 'auto' | 3.8–5.6 | 6.7–9.1 |
| narrow + `requestParameters`/`responseElements` as STRUCTs too | 4.3–5.0 | 6.8–8.7 |
| narrow, format 'unstructured' | 4.1–4.8 | 7.1–8.4 |
| narrow, format 'newline_delimited' | 3.9–4.3 | 6.6–7.2 |
| narrow, format 'array' | error: the top level is an object | same |
| narrow, maximum_object_size 200 MB | 3.8–3.9 | 6.7–7.7 |
| narrow, union_by_name = true | 5.9–6.2 | 6.7–8.2 |
| narrow, sample_size = 1 (no effect: types are given) | 4.0–5.0 | 6.9–7.5 |
| narrow, auto_detect = false | 3.9–5.1 | 6.6–7.2 |
| narrow, SET preserve_insertion_order = false | 4.0–4.2 | 6.6–7.8 |
| narrow + records 'true', format 'auto' | 0.52–0.85 | 0.64–1.17 |
| narrow + records 'true', format 'unstructured' | 0.62–0.81 | 0.56–0.85 |
| **narrow + records 'true', format 'newline_delimited'** (kept) | 0.63–0.83 | 0.52–0.71 |
| the same + STRUCTs for `requestParameters`/`responseElements` | 0.64–0.79 | 0.49–0.69 |
| the same, maximum_object_size 256 MiB / 128 MiB | 0.38–0.89 / 0.60–0.66 | 0.49–0.68 / 0.57–0.71 |
| the same + union_by_name / sample_size = 1 / preserve_insertion_order off (format 'auto') | 0.82–0.95 / 0.82–0.86 / 0.75–0.86 | 0.88–0.90 / 0.86–0.95 / 0.87–0.97 |

What matters is `records = 'true'`: 6–10× on its own, with today's types or narrow ones. Narrow
types and the line-delimited format add 10–20 % to it; the rest is within the noise. STRUCTs
for `requestParameters` and `responseElements` are not kept: no faster, and not the same
query (a STRUCT matches keys case-insensitively, `json_extract_string` does not, and a key
whose value is an object in some service's records would fail the cast). A smaller
maximum_object_size is not kept either: no clear gain, and a file larger than it fails.

Needs duckdb from PyPI (`pip install duckdb==2.0.1`; BENCHMARKS.md installs it in a virtual
environment beside the build, where bench-scan looks for it).
"""
import argparse
import json
import os
import resource
import time

import duckdb

# Today's form: the record as the benchmark first typed it.
TODAY_RECORD = (
    "STRUCT("
    "eventVersion VARCHAR, userIdentity JSON, eventTime VARCHAR, eventSource VARCHAR, "
    "eventName VARCHAR, awsRegion VARCHAR, sourceIPAddress VARCHAR, userAgent VARCHAR, "
    "errorCode VARCHAR, errorMessage VARCHAR, requestParameters JSON, responseElements JSON, "
    "eventID VARCHAR, eventType VARCHAR, recipientAccountId VARCHAR)"
)

# The narrow form: only what the query reads, userIdentity reduced to its arn.
NARROW_RECORD = (
    "STRUCT("
    "userIdentity STRUCT(arn VARCHAR), eventTime VARCHAR, eventSource VARCHAR, "
    "eventName VARCHAR, awsRegion VARCHAR, sourceIPAddress VARCHAR, userAgent VARCHAR, "
    "errorCode VARCHAR, errorMessage VARCHAR, requestParameters JSON, responseElements JSON, "
    "eventID VARCHAR, recipientAccountId VARCHAR)"
)

FORMS = {
    "today": {
        "record": TODAY_RECORD,
        "options": "format = 'auto', compression = 'gzip', maximum_object_size = 1073741824",
        "actor": "json_extract_string(r.userIdentity, '$.arn')",
    },
    "narrow": {
        "record": NARROW_RECORD,
        "options": (
            "format = 'newline_delimited', records = 'true', compression = 'gzip', "
            "maximum_object_size = 1073741824"
        ),
        "actor": "r.userIdentity.arn",
    },
}


def cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def sql_text(text):
    return "'" + text.replace("'", "''") + "'"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--form", choices=sorted(FORMS), default="today")
    parser.add_argument("--threads", type=int, default=cores())
    parser.add_argument("trail")
    parser.add_argument("out")
    parser.add_argument("names")
    args = parser.parse_args()
    form = FORMS[args.form]
    started = time.monotonic()
    con = duckdb.connect()
    con.execute(f"SET threads = {args.threads}")
    con.execute("CREATE TABLE users (id VARCHAR, username VARCHAR)")
    names_sql = ", ".join(sql_text(n) for n in args.names.split(","))
    files = sql_text(f"{args.trail}/AWSLogs/*/CloudTrail/*/*/*/*/*.json.gz")
    query = f"""
        COPY (
            WITH files AS (
                SELECT unnest(Records) AS r
                FROM read_json({files},
                               columns = {{'Records': '{form["record"]}[]'}},
                               {form["options"]})
            ),
            audited AS (
                SELECT r.eventTime AS event_time, r.eventID AS event_id, r.eventName AS event_name,
                       r.recipientAccountId AS account_id, r.awsRegion AS region,
                       json_extract_string(r.requestParameters, '$.InstanceId') AS instance_id,
                       {form["actor"]} AS actor_arn,
                       coalesce(json_extract_string(r.requestParameters, '$.UserId'),
                                json_extract_string(r.responseElements, '$.UserId')) AS target_id,
                       r.sourceIPAddress AS source_ip, r.userAgent AS user_agent,
                       r.errorCode AS error_code, r.errorMessage AS error_message
                FROM files
                WHERE r.eventSource = 'connect.amazonaws.com' AND r.eventName IN ({names_sql})
            )
            SELECT DISTINCT ON (event_id) a.*, u.username AS target_name
            FROM audited a LEFT JOIN users u ON u.id = a.target_id
            ORDER BY event_id
        ) TO {sql_text(args.out)} (HEADER, DELIMITER ',')
    """
    con.execute(query)
    rows = con.execute(f"SELECT count(*) FROM read_csv({sql_text(args.out)})").fetchone()[0]
    wall = time.monotonic() - started
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "wall": wall,
                "rss_kib": rss,
                "rows": rows,
                "form": args.form,
                "threads": args.threads,
                "duckdb": duckdb.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()

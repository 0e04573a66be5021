#!/usr/bin/env python3
"""DuckDB's side of the scan benchmark (bench/src/bin/bench-scan.rs runs it):

    duckdb-scan.py TRAIL_DIR OUT.csv EVENT,NAMES,...

Reads every CloudTrail file under TRAIL_DIR/AWSLogs with read_json and explicit column types
(schema inference fails on real CloudTrail: `maxResults` and `MaxResults` both occur),
unnests Records, keeps the audited Connect calls, left-joins a users table on the target user
id, and writes CSV. Prints one JSON line: wall seconds, peak RSS (KiB), rows.

Needs `pip install duckdb`.
"""
import json
import resource
import sys
import time

import duckdb

RECORD = (
    "STRUCT("
    "eventVersion VARCHAR, userIdentity JSON, eventTime VARCHAR, eventSource VARCHAR, "
    "eventName VARCHAR, awsRegion VARCHAR, sourceIPAddress VARCHAR, userAgent VARCHAR, "
    "errorCode VARCHAR, errorMessage VARCHAR, requestParameters JSON, responseElements JSON, "
    "eventID VARCHAR, eventType VARCHAR, recipientAccountId VARCHAR)"
)


def main():
    trail, out, names = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
    started = time.monotonic()
    con = duckdb.connect()
    con.execute("CREATE TABLE users (id VARCHAR, username VARCHAR)")
    names_sql = ", ".join("'" + n.replace("'", "''") + "'" for n in names)
    query = f"""
        COPY (
            WITH files AS (
                SELECT unnest(Records) AS r
                FROM read_json('{trail}/AWSLogs/*/CloudTrail/*/*/*/*/*.json.gz',
                               columns = {{'Records': '{RECORD}[]'}},
                               format = 'auto', compression = 'gzip',
                               maximum_object_size = 1073741824)
            ),
            audited AS (
                SELECT r.eventTime AS event_time, r.eventID AS event_id, r.eventName AS event_name,
                       r.recipientAccountId AS account_id, r.awsRegion AS region,
                       json_extract_string(r.requestParameters, '$.InstanceId') AS instance_id,
                       json_extract_string(r.userIdentity, '$.arn') AS actor_arn,
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
        ) TO '{out}' (HEADER, DELIMITER ',')
    """
    con.execute(query)
    rows = con.execute(f"SELECT count(*) FROM read_csv('{out}')").fetchone()[0]
    wall = time.monotonic() - started
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"wall": wall, "rss_kib": rss, "rows": rows}))


if __name__ == "__main__":
    main()

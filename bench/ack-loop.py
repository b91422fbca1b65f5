#!/usr/bin/python3
"""The smallest Azure poll-and-ack loop: the reference row of make bench.

ack-loop.py BASE_URL INTERVAL_MS -- polls Scheduled Events on one kept-alive
connection and approves every Scheduled event the first time it sees it.
What an agent with no hooks, no state and no checks does, and nothing more."""

import http.client
import json
import sys
import time
import urllib.parse

PATH = "/metadata/scheduledevents?api-version=2020-07-01"


def main():
    url = urllib.parse.urlsplit(sys.argv[1])
    interval = int(sys.argv[2]) / 1000.0
    conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=5)
    acked = set()
    while True:
        conn.request("GET", PATH, headers={"Metadata": "true"})
        doc = json.loads(conn.getresponse().read())
        for ev in doc.get("Events", []):
            if ev.get("EventStatus") == "Scheduled" and ev["EventId"] not in acked:
                acked.add(ev["EventId"])
                body = json.dumps({"StartRequests": [{"EventId": ev["EventId"]}]})
                conn.request("POST", PATH, body=body, headers={"Metadata": "true",
                                                               "Content-Type": "application/json"})
                conn.getresponse().read()
        time.sleep(interval)


if __name__ == "__main__":
    main()

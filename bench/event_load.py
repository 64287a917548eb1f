"""The load of bench/event.sh: coordinators (threads, one keep-alive connection each) taking
their own cases through the pathway; prints latency percentiles per event and overall."""
import datetime
import http.client
import os
import json
import sys
import threading
import time
import urllib.parse

base, coordinators, cases = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
url = urllib.parse.urlparse(base)
lock = threading.Lock()
timings = {}  # event -> [seconds]
failures = []
TOKEN = os.environ["FLS_TOKEN"]  # bench/event.sh exports the server's development token
today = datetime.date.today().isoformat()


def call(conn, method, path, body=None):
    conn.request(method, path, body=json.dumps(body) if body is not None else None,
                 headers={"Content-Type": "application/fhir+json", "Authorization": "Bearer " + TOKEN})
    r = conn.getresponse()
    data = r.read()
    return r.status, json.loads(data) if data else None


def params(event, **parts):
    p = [{"name": "event", "valueCode": event}]
    for name, value in parts.items():
        p.append(dict({"name": name.replace("_", "-")}, **value))
    return {"resourceType": "Parameters", "parameter": p}


def event(conn, episode, body):
    t0 = time.perf_counter()
    status, answer = call(conn, "POST", "/EpisodeOfCare/%s/$event" % episode, body)
    dt = time.perf_counter() - t0
    name = body["parameter"][0]["valueCode"]
    with lock:
        timings.setdefault(name, []).append(dt)
        if status != 200:
            failures.append((name, status, answer))
    return status


def coordinator(index):
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
    _, doctor = call(conn, "POST", "/Practitioner", {"resourceType": "Practitioner", "name": [{"family": "Martin"}]})
    for n in range(cases):
        _, patient = call(conn, "POST", "/Patient", {"resourceType": "Patient", "gender": "female", "birthDate": "1941-01-01"})
        pid = patient["id"]
        call(conn, "POST", "/Condition", {"resourceType": "Condition", "subject": {"reference": "Patient/" + pid},
                                          "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "S72.001A"}]},
                                          "onsetDateTime": today})
        _, found = call(conn, "GET", "/EpisodeOfCare?patient=Patient/" + pid)
        ep = found["entry"][0]["resource"]["id"]
        event(conn, ep, params("enrol", consent_programme={"valueBoolean": True}, consent_report={"valueBoolean": True},
                               phone={"valueString": "+33 6 00 00 00 00"},
                               referring_physician={"valueReference": {"reference": "Practitioner/" + doctor["id"]}}))
        if n % 4 == 3:
            event(conn, ep, params("withdraw", reason={"valueString": "the patient asked"}))
            continue
        _, srs = call(conn, "GET", "/ServiceRequest?patient=Patient/%s&_count=100" % pid)
        for e in srs.get("entry", []):
            code = e["resource"]["code"]["coding"][0]["code"]
            if code == "falls-assessment":
                continue
            event(conn, ep, params("waive", item={"valueReference": {"reference": "ServiceRequest/" + e["resource"]["id"]}},
                                   reason={"valueString": "bench"}))
        event(conn, ep, params("exercise-started"))
        event(conn, ep, params("falls-assessment", at_risk={"valueBoolean": n % 2 == 0}))
        event(conn, ep, params("decide-treatment", drug={"valueCodeableConcept": {"coding": [{"system": "http://www.whocc.no/atc", "code": "M05BA08"}]}}))
        event(conn, ep, params("treatment-started"))


start = time.perf_counter()
threads = [threading.Thread(target=coordinator, args=(i,)) for i in range(coordinators)]
for t in threads:
    t.start()
for t in threads:
    t.join()
elapsed = time.perf_counter() - start


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100.0 * (len(values) - 1))))]


everything = [v for vs in timings.values() for v in vs]
print("%-20s %7s %9s %9s %9s" % ("event", "count", "p50 ms", "p99 ms", "max ms"))
for name in ["enrol", "waive", "exercise-started", "falls-assessment", "decide-treatment", "treatment-started", "withdraw"]:
    v = timings.get(name, [])
    if v:
        print("%-20s %7d %9.1f %9.1f %9.1f" % (name, len(v), pct(v, 50) * 1000, pct(v, 99) * 1000, max(v) * 1000))
print("%-20s %7d %9.1f %9.1f %9.1f" % ("all", len(everything), pct(everything, 50) * 1000, pct(everything, 99) * 1000, max(everything) * 1000))
print("events/s (with the set-up requests between them): %.0f over %.1f s; failures: %d" % (len(everything) / elapsed, elapsed, len(failures)))
for f in failures[:5]:
    print("failure:", f)
sys.exit(1 if failures else 0)

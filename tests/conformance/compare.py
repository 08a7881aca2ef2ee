"""Diff a kosoku/Autobahn index.json against the committed expected results.

Usage: compare.py RESULTS_INDEX_JSON EXPECTED_JSON [--update]

Every case in the run must be in expected.json with the same `behavior` and `behaviorClose`,
and every expected case must have run; any difference fails (exit 1), an improvement as
much as a regression, so expected.json always states what Raptor does. A case that is not
OK/OK must carry a `reason`. With --update, expected.json is rewritten from the run, keeping
the reasons already written (a new non-OK case gets an empty reason, which then fails until
someone writes one).
"""

import json
import sys
from collections import Counter

# How good a verdict is, to tell a regression from an improvement in the message.
RANK = {"OK": 4, "NON-STRICT": 3, "INFORMATIONAL": 3, "UNIMPLEMENTED": 1, "FAILED": 0}
FIELDS = ("behavior", "behaviorClose")


def case_key(case_id):
    return tuple(int(p) for p in case_id.split("."))


def load_results(path):
    with open(path) as f:
        index = json.load(f)
    if len(index) != 1:
        sys.exit(f"{path}: expected one agent, found {sorted(index)}")
    (cases,) = index.values()
    return {cid: {k: c[k] for k in FIELDS} for cid, c in cases.items()}


def dump(doc):
    """expected.json with one line per case, so a diff shows exactly which verdict moved."""
    head = {k: v for k, v in doc.items() if k != "cases"}
    text = json.dumps(head, indent=1)[:-2] + ',\n "cases": {\n'
    lines = [f"  {json.dumps(cid)}: {json.dumps(c)}" for cid, c in doc["cases"].items()]
    return text + ",\n".join(lines) + "\n }\n}\n"


def main(argv):
    if len(argv) not in (3, 4) or (len(argv) == 4 and argv[3] != "--update"):
        sys.exit(__doc__)
    results_path, expected_path = argv[1], argv[2]
    got = load_results(results_path)
    with open(expected_path) as f:
        doc = json.load(f)
    want = doc["cases"]

    counts = Counter(f"{c['behavior']}/{c['behaviorClose']}" for c in got.values())
    print(f"{len(got)} cases: " + ", ".join(f"{v} {k}" for k, v in counts.most_common()))

    if len(argv) == 4:
        cases = {}
        for cid in sorted(got, key=case_key):
            entry = dict(got[cid])
            if entry != {"behavior": "OK", "behaviorClose": "OK"}:
                entry["reason"] = want.get(cid, {}).get("reason", "")
            cases[cid] = entry
        doc["cases"] = cases
        with open(expected_path, "w") as f:
            f.write(dump(doc))
        print(f"rewrote {expected_path}")
        want = cases

    problems = []
    for cid in sorted(set(got) | set(want), key=case_key):
        if cid not in got:
            problems.append(f"{cid}: expected but did not run")
            continue
        if cid not in want:
            problems.append(f"{cid}: ran but is not in expected.json: {got[cid]}")
            continue
        for field in FIELDS:
            g, w = got[cid][field], want[cid][field]
            if g != w:
                kind = "improved" if RANK.get(g, 0) > RANK.get(w, 0) else "REGRESSION"
                problems.append(f"{cid}: {field} {w} -> {g} ({kind})")
        ok = all(want[cid][f] == "OK" for f in FIELDS)
        if not ok and not want[cid].get("reason"):
            problems.append(f"{cid}: not OK and expected.json gives no reason")

    if problems:
        print("conformance differs from expected.json:")
        for p in problems:
            print("  " + p)
        print("fix the regression, or (for an intended change) rerun with UPDATE_EXPECTED=1")
        print("and write the reason for every case that is not OK/OK")
        return 1
    print("conformance matches expected.json")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

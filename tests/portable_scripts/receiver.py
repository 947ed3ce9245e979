"""Load every payload a sender wrote and exercise it, in a folder without the sender's modules.

argv: the sender's JSON. Prints ``{"python": ..., "results": {case: result}}`` as JSON.
"""

import base64
import json
import sys

import anypickle
import exercise


def main(path):
    with open(path) as f:
        sent = json.load(f)
    assert "portable_helper" not in sys.modules
    results = {}
    for name, payload in sent["payloads"].items():
        if payload is None:
            results[name] = {"error": "not dumped"}
            continue
        try:
            obj = anypickle.loads(base64.b64decode(payload))
        except Exception as exc:  # noqa: BLE001 - every failure is a result to compare
            results[name] = {"error": f"load: {type(exc).__name__}: {exc}"}
            continue
        results[name] = exercise.run(name, obj)
    results["_helper_importable"] = "portable_helper" in sys.modules
    print(json.dumps({"python": "%d.%d" % sys.version_info[:2], "results": results}))


if __name__ == "__main__":
    main(sys.argv[1])

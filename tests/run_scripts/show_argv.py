"""Prints what a script sees of how it was started, as JSON. For the runner's tests."""
import json
import sys

print(json.dumps({"argv": sys.argv, "path0": sys.path[0], "name": __name__}))

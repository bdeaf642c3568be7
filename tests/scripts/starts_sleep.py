# Starts `sleep 30` without waiting for it, and a second one in its own session (as a daemon would),
# on every candle.  COMPONENT_PARAMS {"pids": FILE} appends their pids there.
import json
import os
import subprocess

children = [subprocess.Popen(["sleep", "30"]), subprocess.Popen(["sleep", "30"], start_new_session=True)]
pids = json.loads(os.environ["COMPONENT_PARAMS"]).get("pids")
if pids:
    with open(pids, "a") as handle:
        handle.write("".join(f"{child.pid}\n" for child in children))
print("INDICATOR_START")
print('{"current": %s}' % os.environ["GLOBAL_INDEX"])
print("INDICATOR_END")

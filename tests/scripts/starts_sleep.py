# Starts `sleep 30` without waiting for it, and a second one in a session of its own (as a daemon would),
# on every candle.  COMPONENT_PARAMS {"pids": FILE} appends their pids to FILE; the candle's value is then
# how many of the processes listed there by earlier candles are still running (0 when each candle's
# processes end with it and candles run one at a time).
import json
import os
import subprocess


def running(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:  # gone, or going (ESRCH while reading)
        return False


pids = json.loads(os.environ["COMPONENT_PARAMS"]).get("pids")
earlier = []
if pids and os.path.exists(pids):
    with open(pids) as handle:
        earlier = [int(line) for line in handle]
children = [subprocess.Popen(["sleep", "30"]), subprocess.Popen(["sleep", "30"], start_new_session=True)]
if pids:
    with open(pids, "a") as handle:
        handle.write("".join(f"{child.pid}\n" for child in children))
print("INDICATOR_START")
print('{"current": %d}' % sum(running(pid) for pid in earlier))
print("INDICATOR_END")

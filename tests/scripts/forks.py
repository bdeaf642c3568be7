# Forks on every candle: the copy prints (to sys.stdout and straight to fd 1) and sleeps, while the
# original prints the candle's block.  A forked copy must never return into the worker, and nothing it
# prints may reach candleflow's output.  COMPONENT_PARAMS {"pids": FILE} appends the copy's pid there.
import json
import os
import time

pid = os.fork()
if pid == 0:
    print("FORKED COPY ON SYS.STDOUT")
    os.write(1, b"FORKED COPY ON FD 1\n")
    time.sleep(0.2)  # then returns from the script, into whatever called it
else:
    pids = json.loads(os.environ["COMPONENT_PARAMS"]).get("pids")
    if pids:
        with open(pids, "a") as handle:
            handle.write(f"{pid}\n")
    print("INDICATOR_START")
    print('{"current": %s}' % os.environ["GLOBAL_INDEX"])
    print("INDICATOR_END")

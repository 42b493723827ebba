"""Test worker: logs a line per second."""

import os
import time

while True:
    print(f"worker {os.environ.get('DYNO')} tick", flush=True)
    time.sleep(1)

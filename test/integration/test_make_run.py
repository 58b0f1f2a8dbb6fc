"""`make run` (deploy/run-local.sh) as a person uses it: it starts everything, pairs the demo
device through the real pairing flow, and the lines it prints work, the front door included.
Its own ports and run directory, so it disturbs nothing else; stopped with SIGTERM as Ctrl-C
would, and restarted once to show that the paired device is kept."""
import os
import re
import signal
import subprocess
import tempfile
import time

from harness import ROOT, WORK, check, eq, free_port, require_services

HELLO = open(os.path.join(ROOT, "deploy/demo/hello"), "rb").read().decode()


class MakeRun:
    def __init__(self, run_dir):
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEGATE_")}
        self.env.update({"EDGEGATE_RUN_DIR": run_dir,
                         "EDGEGATE_RUN_PG_PORT": str(free_port()),
                         "EDGEGATE_RUN_REDIS_PORT": str(free_port()),
                         "EDGEGATE_RUN_API_PORT": str(free_port()),
                         "EDGEGATE_RUN_DEMO_PORT": str(free_port()),
                         "EDGEGATE_RUN_TUNNEL_PORT": str(free_port()),
                         "EDGEGATE_RUN_INTERNAL_PORT": str(free_port())})
        self.log_path = os.path.join(WORK, f"make-run-{os.getpid()}-{time.time_ns()}.log")

    def __enter__(self):
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(["sh", "deploy/run-local.sh"], cwd=ROOT, env=self.env,
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.time() + 120
        while "== edgegate is running" not in self.text():
            check(self.proc.poll() is None, f"make run exited:\n{self.text()[-3000:]}")
            check(time.time() < deadline, f"make run did not come up:\n{self.text()[-3000:]}")
            time.sleep(0.2)
        return self

    def text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def __exit__(self, *exc):
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            raise
        check("== stopped" in self.text(), self.text()[-2000:])

    def printed(self, pattern):
        return [line.strip() for line in self.text().splitlines() if re.search(pattern, line)]


def test_make_run_pairs_the_demo_device_and_the_printed_lines_work():
    require_services()
    with tempfile.TemporaryDirectory(dir=WORK) as run_dir:
        os.chmod(run_dir, 0o755)  # PostgreSQL runs as user postgres
        with MakeRun(run_dir) as run:
            check("== pairing the demo device" in run.text(), "the first run pairs the device")
            device = run.printed(r"demo device\s")[0].split()[-1]
            login = run.printed(r"^\s+S=")[0]
            proxy_hello = next(line for line in run.printed(r"proxy/hello"))
            devices = next(line for line in run.printed(r"/api/devices$"))
            time.sleep(1)  # "its agent connects within a second"
            script = f"{login}\n{proxy_hello}\necho\n{devices}\n"
            out = subprocess.run(["sh", "-c", script], capture_output=True, text=True,
                                 timeout=30).stdout
            first, _, listing = out.partition("\n")
            eq(first + "\n", HELLO, "the device's page through the printed front-door line")
            check(f'"device_id":"{device}"' in listing.replace(" ", ""), listing)
            check('"online":true' in listing.replace(" ", ""), listing)
        # Again on the same run directory: the paired device is kept, not paired anew.
        with MakeRun(run_dir) as run:
            check("== pairing the demo device" not in run.text(), run.text()[-2000:])
            eq(run.printed(r"demo device\s")[0].split()[-1], device)

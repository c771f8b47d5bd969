"""maaslab CLI: up | down | serve | status | env | fault | operator.

`up` starts `serve` detached in its own session and returns once the child reports READY on a
pipe (no polling, no sleeps); `down` stops exactly the process recorded in <dir>/lab.pid.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _lab_pid(directory: Path) -> int | None:
    """The pid of this dir's lab, only if that process is really `maaslab serve --dir <dir>`."""
    try:
        pid = int((directory / "lab.pid").read_text())
    except (FileNotFoundError, ValueError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return None
    if b"serve" in cmdline and str(directory).encode() in cmdline:
        return pid
    return None


def cmd_serve(args) -> int:
    from .lab import Lab
    directory = Path(args.dir).resolve()
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    lab = Lab(directory, _overrides(args))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    ready = os.fdopen(args.ready_fd, "w") if args.ready_fd is not None else None
    try:
        lab.start()
    except Exception as exc:  # report to `up` and exit non-zero; the log has the traceback
        logging.getLogger("maaslab").exception("lab failed to start")
        lab.stop()
        if ready:
            ready.write(f"ERROR {exc}\n")
            ready.close()
        return 1
    # `maaslab operator stop|start`: SIGUSR1 / SIGUSR2, acted on here, in the main thread
    wake = threading.Event()
    actions: list[str] = []

    def request(action: str):
        def handler(*_):
            actions.append(action)
            wake.set()
        return handler
    signal.signal(signal.SIGUSR1, request("stop"))
    signal.signal(signal.SIGUSR2, request("start"))
    signal.signal(signal.SIGTERM, lambda *_: (stop.set(), wake.set()))
    signal.signal(signal.SIGINT, lambda *_: (stop.set(), wake.set()))
    (directory / "lab.pid").write_text(str(os.getpid()))
    if ready:
        ready.write("READY\n")
        ready.close()
    while not stop.is_set():
        wake.wait()
        wake.clear()
        while actions and not stop.is_set():
            try:
                lab.operator_control(actions.pop(0))
            except Exception:  # reported in the state file; the lab keeps serving
                logging.getLogger("maaslab").exception("operator control failed")
    lab.stop()
    (directory / "lab.pid").unlink(missing_ok=True)
    return 0


def _overrides(args) -> dict:
    return {"users": args.users, "apicast_refresh": args.apicast_refresh, "porta_release": args.porta_release}


def cmd_up(args) -> int:
    directory = Path(args.dir).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    if _lab_pid(directory):
        print(f"lab already running in {directory}")
        return 0
    t0 = time.monotonic()
    rfd, wfd = os.pipe()
    cmd = [sys.executable, "-m", "maaslab", "serve", "--dir", str(directory), "--ready-fd", str(wfd)]
    for flag in ("users", "apicast_refresh", "porta_release"):
        if getattr(args, flag) is not None:
            cmd += ["--" + flag.replace("_", "-"), str(getattr(args, flag))]
    log = open(directory / "lab.log", "ab")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, pass_fds=(wfd,),
                            start_new_session=True, close_fds=True)
    os.close(wfd)
    ready, _, _ = select.select([rfd], [], [], args.timeout)
    line = os.read(rfd, 4096).decode().strip() if ready else ""
    os.close(rfd)
    if not line.startswith("READY"):
        if proc.poll() is None:
            proc.terminate()
        print(f"lab failed to start ({line or 'timeout'}); see {directory / 'lab.log'}", file=sys.stderr)
        return 1
    info = json.loads((directory / "lab.json").read_text())
    print(f"lab up in {time.monotonic() - t0:.2f}s (pid {proc.pid}); env: source {directory / 'lab.env'}")
    for name, url in sorted(info["urls"].items()):
        print(f"  {name:8} {url}")
    return 0


def cmd_down(args) -> int:
    directory = Path(args.dir).resolve()
    pid = _lab_pid(directory)
    if not pid:
        print(f"no lab running in {directory}")
        return 0
    os.kill(pid, signal.SIGTERM)
    fd = os.pidfd_open(pid)
    try:
        if not select.select([fd], [], [], args.timeout)[0]:
            os.kill(pid, signal.SIGKILL)
            select.select([fd], [], [], 5)
    finally:
        os.close(fd)
    print(f"lab in {directory} stopped (pid {pid})")
    return 0


def cmd_status(args) -> int:
    directory = Path(args.dir).resolve()
    pid = _lab_pid(directory)
    print(f"running (pid {pid})" if pid else "stopped")
    return 0 if pid else 3


def cmd_env(args) -> int:
    sys.stdout.write((Path(args.dir) / "lab.env").read_text())
    return 0


def cmd_fault(args) -> int:
    from .context import FAULT_SWITCHES, check_fault_switches
    path = Path(args.dir) / "faults.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    if args.component == "operator":
        print("maaslab fault: the 3scale operator is the real one and has no fault switches of ours: fail what it "
              "calls (`fault porta ... exclude_operator=false`) or stop it (`maaslab operator stop|start`)",
              file=sys.stderr)
        return 2
    if args.component == "clear":
        data = {}
    else:
        section = {} if args.reset else dict(data.get(args.component, {}))
        for item in args.settings:
            key, eq, value = item.partition("=")
            if not eq:
                print(f"maaslab fault: {item!r} is not key=value", file=sys.stderr)
                return 2
            try:
                section[key] = json.loads(value)
            except ValueError:
                section[key] = value
        errors = check_fault_switches(args.component, section)
        if errors:
            valid = FAULT_SWITCHES.get(args.component, {})
            for e in errors:
                print(f"maaslab fault: {e}", file=sys.stderr)
            for k, (kind, meaning) in valid.items():
                print(f"  {k} ({kind}): {meaning}", file=sys.stderr)
            return 2
        data[args.component] = section
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)
    print(json.dumps(data))
    return 0


def cmd_operator(args) -> int:
    """Stop or start the lab's 3scale operator (what a rescheduled operator pod looks like), or show it."""
    directory = Path(args.dir).resolve()
    pid = _lab_pid(directory)
    if not pid:
        print(f"no lab running in {directory}", file=sys.stderr)
        return 3
    state_file = directory / "operator" / "state.json"

    def state() -> dict:
        try:
            return json.loads(state_file.read_text())
        except (FileNotFoundError, ValueError):
            return {}
    before = state()
    if args.action != "status":
        if not before:
            print(f"maaslab operator: no operator state in {state_file} (lab still starting?)", file=sys.stderr)
            return 2
        os.kill(pid, signal.SIGUSR1 if args.action == "stop" else signal.SIGUSR2)
        deadline = time.monotonic() + args.timeout
        while state().get("serial") == before.get("serial"):  # the lab rewrites it once done
            if time.monotonic() > deadline:
                print(f"maaslab operator: no answer from the lab in {args.timeout}s", file=sys.stderr)
                return 1
            time.sleep(0.02)
    now = state()
    print(json.dumps(now))
    if now.get("error"):
        print(f"maaslab operator: {now['error']}", file=sys.stderr)
        return 1
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="maaslab", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("up", "serve"):
        s = sub.add_parser(name)
        s.add_argument("--users", type=int, help="developer accounts user1..userN (default 5)")
        s.add_argument("--apicast-refresh", type=float, help="production APIcast config refresh (s)")
        s.add_argument("--porta-release", choices=["2.16", "next"],
                       help="porta behaviour: 2.16 (default) or next (porta master: 15-character passwords)")
    sub.choices["up"].add_argument("--timeout", type=float, default=120)
    sub.choices["serve"].add_argument("--ready-fd", type=int)
    sub.choices["serve"].add_argument("-v", "--verbose", action="store_true")
    d = sub.add_parser("down")
    d.add_argument("--timeout", type=float, default=20)
    sub.add_parser("status")
    sub.add_parser("env")
    f = sub.add_parser("fault", help="set fault switches: fault porta error_rate=0.3 error_status=503 | fault clear")
    f.add_argument("component", help="porta | kube | model | clear (switches: README \"Fault injection\")")
    f.add_argument("settings", nargs="*")
    f.add_argument("--reset", action="store_true", help="replace the component's switches instead of merging")
    o = sub.add_parser("operator", help="stop | start | status of the lab's 3scale operator")
    o.add_argument("action", choices=["stop", "start", "status"])
    o.add_argument("--timeout", type=float, default=60)
    for s in sub.choices.values():
        s.add_argument("--dir", required=True, help="lab directory (state, lab.env, lab.json)")
    args = p.parse_args(argv)
    return {"up": cmd_up, "down": cmd_down, "serve": cmd_serve, "status": cmd_status, "env": cmd_env,
            "fault": cmd_fault, "operator": cmd_operator}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())

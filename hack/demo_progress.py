#!/usr/bin/env python
"""`make demo`'s compact progress: reads ansible-playbook's output on stdin, keeps all of it in the log
file given, and shows one line per play and a task counter (rewritten in place on a terminal, a line
every 20 tasks otherwise)."""
import sys

EVERY = 20


def main(log_path):
    tty = sys.stdout.isatty()
    tasks, width = 0, 0
    with open(log_path, "w", encoding="utf-8") as log:
        for line in sys.stdin:
            log.write(line)
            log.flush()
            if line.startswith("PLAY [") and not line.startswith("PLAY RECAP"):
                if tty and width:
                    sys.stdout.write("\n")
                    width = 0
                print("  " + line.split("]")[0].replace("PLAY [", "play: "), flush=True)
            elif line.startswith("TASK ["):
                tasks += 1
                name = line[len("TASK ["):].split("]")[0]
                text = "    task %d: %s" % (tasks, name[:90])
                if tty:
                    sys.stdout.write("\r" + text.ljust(width))
                    sys.stdout.flush()
                    width = len(text)
                elif tasks % EVERY == 0:
                    print(text, flush=True)
    if tty and width:
        sys.stdout.write("\r" + ("    %d tasks" % tasks).ljust(width) + "\n")
    elif not tty:
        print("    %d tasks" % tasks)


if __name__ == "__main__":
    main(sys.argv[1])

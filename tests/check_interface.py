#!/usr/bin/env python3
"""docs/interface.md must list exactly the config keys and metrics the code
has: its generated blocks (between "<!-- BEGIN NAME -->" and "<!-- END NAME
-->") must equal what `keydoc NAME` prints. With --write, rewrite them
instead (cmake --build build --target interface-doc).

usage: check_interface.py KEYDOC DOCS/INTERFACE.MD [--write]"""
import re
import subprocess
import sys

BLOCKS = ("keys-md", "metrics-md")


def main():
    keydoc, path = sys.argv[1], sys.argv[2]
    write = "--write" in sys.argv[3:]
    text = open(path, encoding="utf-8").read()
    out, stale = text, []
    for name in BLOCKS:
        want = subprocess.run([keydoc, name], check=True, capture_output=True,
                              text=True).stdout
        rx = re.compile(r"(<!-- BEGIN %s -->\n)(.*?)(<!-- END %s -->)" % (name, name), re.S)
        m = rx.search(out)
        if m is None:
            print("%s: no <!-- BEGIN %s --> ... <!-- END %s --> block" % (path, name, name))
            return 1
        if m.group(2) != want:
            stale.append(name)
            out = out[:m.start(2)] + want + out[m.end(2):]
    if write:
        if out != text:
            open(path, "w", encoding="utf-8").write(out)
        return 0
    if stale:
        print("%s is stale (%s): run cmake --build BUILD --target interface-doc" %
              (path, ", ".join(stale)))
        return 1
    print("%s matches the key table and the metrics" % path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Take kubernetes.core out of an `ansible` community wheel (the collection folder only): Galaxy is out
of reach, and kubernetes.core is not on PyPI on its own. Used by hack/setup.sh and hack/compat.sh.

    python hack/kcore_from_wheel.py ANSIBLE_WHEEL COLLECTIONS_DIR/ansible_collections [EXPECTED_VERSION]
"""
import json
import os
import sys
import zipfile

PREFIX = "ansible_collections/kubernetes/core/"


def main(wheel, dest, want=None):
    with zipfile.ZipFile(wheel) as z:
        version = json.loads(z.read(PREFIX + "MANIFEST.json"))["collection_info"]["version"]
        if want and version != want:
            sys.exit("%s ships kubernetes.core %s, not %s" % (os.path.basename(wheel), version, want))
        files = [n for n in z.namelist() if n.startswith(PREFIX) and not n.endswith("/")]
        for name in files:
            target = os.path.join(dest, name[len("ansible_collections/"):])
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with z.open(name) as src, open(target, "wb") as out:
                out.write(src.read())
    print("kubernetes.core %s extracted (%d files)" % (version, len(files)))


if __name__ == "__main__":
    main(*sys.argv[1:4])

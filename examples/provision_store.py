"""Provisioning a store from Python: create it, print its progress until it is ready, show
where to log in, and delete it again.

    cargo run -p storefactory-testkit -- up --dir /tmp/sf-cluster &     # or any cluster
    pip install ./storefactory-py                                        # or maturin develop
    python examples/provision_store.py --kubeconfig /tmp/sf-cluster/kubeconfig
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import storefactory as sf


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: the usual places)")
    parser.add_argument("--database", help="the platform's database (default: a temporary one)")
    parser.add_argument("--owner", default="example")
    args = parser.parse_args()

    database = args.database or str(Path(tempfile.mkdtemp()) / "storefactory.db")
    db = sf.Database(database)
    if db.get_user(args.owner) is None:
        db.create_user(args.owner, "example-password", max_stores=1)

    spec = sf.StoreSpec(args.owner, sample_products="T-Shirt|5.99|Cotton t-shirt\n"
                                                    "Jeans|12.99|Denim jeans")
    started = time.monotonic()
    with sf.Provisioner(db, kubeconfig=args.kubeconfig) as provisioner:
        store = provisioner.create(spec, name="Example store")
        print(f"created store {store.id} ({store.url})")
        for event in provisioner.events(store.id, timeout=600):
            elapsed = f"{time.monotonic() - started:6.1f}s"
            if event.kind == "status":
                print(f"{elapsed} {store.id} is {event.status}"
                      + (f": {event.reason}" if event.reason else ""))
            else:
                print(f"{elapsed}   {event.step or 'warning'}: {event.message}")
        if provisioner.get(store.id).status != "ready":
            print(f"store {store.id} did not become ready", file=sys.stderr)
            return 1
        credentials = provisioner.credentials(store.id)
        print(f"log in at {credentials.admin_url} as {credentials.username}")
        provisioner.delete(store.id)
        provisioner.wait(store.id, until="deleted", timeout=300)
        print(f"{store.id} is deleted")
    return 0


if __name__ == "__main__":
    sys.exit(main())

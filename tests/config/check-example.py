#!/usr/bin/env python3
"""The shipped examples/autoscale.yaml passes `virt-autoscaler check`, with
no warning, where it is meant to be installed: beside the files it names
(tls.crt, tls.key: empty stand-ins here) and with VA_ADMIN_TOKEN set as
the daemon's environment would have it.

  check-example.py VIRT_AUTOSCALER EXAMPLE
"""
import os
import shutil
import subprocess
import sys
import tempfile


def main():
    binary, example = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory(prefix='va-example-') as d:
        cfg = os.path.join(d, 'autoscale.yaml')
        shutil.copy(example, cfg)
        for name in ('tls.crt', 'tls.key'):
            with open(os.path.join(d, name), 'w'):
                pass
        env = dict(os.environ, VA_ADMIN_TOKEN=os.urandom(16).hex())
        p = subprocess.run([binary, 'check', '-c', cfg], env=env,
                           capture_output=True, text=True, timeout=60)
    if p.returncode != 0 or p.stderr:
        print('check exited %d; stderr:\n%s' % (p.returncode, p.stderr))
        return 1
    print('ok: %s passes check without warnings' % example)
    return 0


if __name__ == '__main__':
    sys.exit(main())

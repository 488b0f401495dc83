#!/usr/bin/env python3
"""The shipped examples/autoscale.yaml passes `virt-autoscaler check`, with
no warning, where it is meant to be installed: beside the files it names
(tls.crt, tls.key: empty stand-ins here) and with VA_ADMIN_TOKEN set as
the daemon's environment would have it.

  check-example.py VIRT_AUTOSCALER EXAMPLE [ALLOWED_WARNING [EXPECT]]

ALLOWED_WARNING: a text every warning line must contain (examples/web*.yaml
listen on the libvirt bridge without TLS, which check warns about on
purpose); EXPECT: a text the printed effective configuration must hold.
"""
import os
import shutil
import subprocess
import sys
import tempfile


def main():
    binary, example = sys.argv[1], sys.argv[2]
    allowed = sys.argv[3] if len(sys.argv) > 3 else None
    expect = sys.argv[4] if len(sys.argv) > 4 else None
    with tempfile.TemporaryDirectory(prefix='va-example-') as d:
        cfg = os.path.join(d, 'autoscale.yaml')
        shutil.copy(example, cfg)
        for name in ('tls.crt', 'tls.key'):
            with open(os.path.join(d, name), 'w'):
                pass
        env = dict(os.environ, VA_ADMIN_TOKEN=os.urandom(16).hex())
        p = subprocess.run([binary, 'check', '-c', cfg], env=env,
                           capture_output=True, text=True, timeout=60)
    unexpected = [l for l in p.stderr.splitlines()
                  if not allowed or allowed not in l]
    if p.returncode != 0 or unexpected:
        print('check exited %d; stderr:\n%s' % (p.returncode, p.stderr))
        return 1
    if expect and expect not in p.stdout:
        print('the effective configuration lacks %r:\n%s' % (expect,
                                                            p.stdout))
        return 1
    print('ok: %s passes check without warnings' % example)
    return 0


if __name__ == '__main__':
    sys.exit(main())

#!/usr/bin/env python3
"""Regenerate the KEYS list of man/autoscale.yaml.5 from the option tables.

  tests/config/man-keys.py BUILD/src/virt-autoscaler [man/autoscale.yaml.5]

Runs `virt-autoscaler check --schema` and replaces everything from the
first '.SS "Top level"' up to '.SH NOTES' with one .SS per section and one
.TP entry per key. tests/unit/test_config.c fails when the page and the
tables disagree (a key missing, a stale key, a changed default).
"""
import collections
import os
import subprocess
import sys


def esc(t):
    t = t.replace('\\', '\\e').replace('-', '\\-')
    # a line must not start with a control character
    return '\\&' + t if t[:1] in ('.', "'") else t


def generate(binary):
    out = subprocess.run([binary, 'check', '--schema'], check=True,
                         capture_output=True, text=True).stdout
    bysec = collections.OrderedDict()
    for line in out.splitlines():
        key, typ, default, bounds, reload, doc = line.split('\t')
        parent, name = key.rsplit('.', 1) if '.' in key else ('', key)
        bysec.setdefault(parent, []).append(
            (name, typ, default, bounds, reload, doc))
    lines = []
    for sec, items in bysec.items():
        lines.append('.SS "%s"' % (sec or 'Top level'))
        for name, typ, default, bounds, reload, doc in items:
            info = [typ]
            if default == 'required':
                info.append('required')
            elif default != '-':
                info.append('default: ' + default)
            if bounds != '-':
                info.append(bounds)
            if reload == 'restart' and typ not in ('mapping', 'sequence'):
                info.append('restart to change')
            lines.append('.TP')
            lines.append('.BR %s " (%s)"' % (name, esc(', '.join(info))))
            d = doc[:1].upper() + doc[1:]
            if not d.endswith('.'):
                d += '.'
            lines.append(esc(d))
    return '\n'.join(lines) + '\n'


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    page = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), '..', '..', 'man',
        'autoscale.yaml.5')
    text = open(page).read()
    start = text.index('.SS "Top level"')
    end = text.index('.SH NOTES')
    text = text[:start] + generate(sys.argv[1]) + text[end:]
    open(page, 'w').write(text)


if __name__ == '__main__':
    main()

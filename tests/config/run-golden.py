#!/usr/bin/env python3
"""Golden-file tests of autoscale.yaml parsing through `virt-autoscaler check`.

Cases (paths relative to this directory, which is the working directory of
every run so that messages name files machine-independently):
  valid/NAME.yaml    must pass: exit 0, stdout == valid/NAME.out, stderr ==
                     valid/NAME.warn (warnings; no stderr when there is no
                     .warn), and that output, checked again, prints
                     identically (with the same warnings).
  invalid/NAME.yaml  must fail: exit 1, no stdout, stderr == invalid/NAME.err
  invalid/NAME.path  the same, but the file given to -c is the path written
                     in NAME.path (missing files, directories, devices).

  run-golden.py --bin BUILD/src/virt-autoscaler            all cases
  run-golden.py --bin ... --case invalid/unknown-key       one case
  run-golden.py --list                                      case names
  run-golden.py --bin ... --regen   (or REGEN=1)           rewrite .out/.err
"""
import argparse
import difflib
import glob
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def cases():
    out = []
    for f in sorted(glob.glob(os.path.join(HERE, 'valid', '*.yaml'))):
        out.append('valid/' + os.path.basename(f)[:-5])
    for f in sorted(glob.glob(os.path.join(HERE, 'invalid', '*.yaml')) +
                    glob.glob(os.path.join(HERE, 'invalid', '*.path'))):
        out.append('invalid/' + os.path.basename(f).rsplit('.', 1)[0])
    return sorted(set(out))


# The variables secrets in the cases come from ({ env: NAME }): check
# reads them (an unset one is an error, as it is for run). Nothing else
# from the caller's environment reaches a case.
SECRET_ENV = {
    'VA_ADMIN_TOKEN': '0123456789abcdef0123456789abcdef',  # 128 bits
    'VA_INFLUX_PASSWORD': 'influx-password',
    'DB_PASSWORD': 'db-password',
}


def run(binary, path):
    env = {k: v for k, v in os.environ.items()
           if k in ('PATH', 'LANG', 'LC_ALL', 'ASAN_OPTIONS', 'UBSAN_OPTIONS',
                    'TSAN_OPTIONS', 'MALLOC_PERTURB_')}
    env.update(SECRET_ENV)
    p = subprocess.run([binary, 'check', '-c', path], cwd=HERE,
                       capture_output=True, env=env, timeout=60)
    return p.returncode, p.stdout.decode('utf-8', 'replace'), \
        p.stderr.decode('utf-8', 'replace')


def diff(want, got, name):
    return ''.join(difflib.unified_diff(
        want.splitlines(True), got.splitlines(True),
        'expected ' + name, 'actual'))


def read(path):
    try:
        with open(os.path.join(HERE, path), encoding='utf-8') as f:
            return f.read()
    except FileNotFoundError:
        return None


def write(path, text):
    with open(os.path.join(HERE, path), 'w', encoding='utf-8') as f:
        f.write(text)


def check_valid(binary, name, regen):
    rc, out, err = run(binary, name + '.yaml')
    problems = []
    if rc != 0:
        problems.append('exit status %d, expected 0; stderr:\n%s' % (rc, err))
        return problems
    want_err = read(name + '.warn') or ''
    if regen:
        if err:
            write(name + '.warn', err)
        elif os.path.exists(os.path.join(HERE, name + '.warn')):
            os.unlink(os.path.join(HERE, name + '.warn'))
        want_err = err
    if err != want_err:
        problems.append('stderr (warnings) differs:\n' +
                        diff(want_err, err, name + '.warn'))
    if regen:
        write(name + '.out', out)
    want = read(name + '.out')
    if want is None:
        problems.append('%s.out is missing (run with --regen)' % name)
    elif want != out:
        problems.append(diff(want, out, name + '.out'))
    # Round trip: the printed config passes check and prints identically.
    # Written next to the original so relative paths resolve the same way.
    tmp = os.path.join(os.path.dirname(name),
                       '.roundtrip-%d-%s.yaml' % (os.getpid(),
                                                  os.path.basename(name)))
    write(tmp, out)
    try:
        rc2, out2, err2 = run(binary, tmp)
    finally:
        os.unlink(os.path.join(HERE, tmp))
    if rc2 != 0:
        problems.append('round trip: the printed config fails check:\n' +
                        err2.replace(tmp, '<printed>'))
    elif out2 != out:
        problems.append('round trip: printed differently the second time:\n' +
                        diff(out, out2, 'first print'))
    elif err2.count('warning:') != err.count('warning:'):
        problems.append('round trip: other warnings the second time:\n' +
                        err2)
    return problems


def check_invalid(binary, name, regen):
    path_file = read(name + '.path')
    path = path_file.strip() if path_file is not None else name + '.yaml'
    rc, out, err = run(binary, path)
    problems = []
    if rc != 1:
        problems.append('exit status %d, expected 1' % rc)
    if out:
        problems.append('unexpected stdout:\n' + out)
    if not err:
        problems.append('no error message on stderr')
    if regen:
        write(name + '.err', err)
    want = read(name + '.err')
    if want is None:
        problems.append('%s.err is missing (run with --regen)' % name)
    elif want != err:
        problems.append(diff(want, err, name + '.err'))
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument('--bin', help='the virt-autoscaler binary')
    ap.add_argument('--case', action='append', help='run only this case')
    ap.add_argument('--list', action='store_true', help='list the cases')
    ap.add_argument('--regen', action='store_true',
                    help='rewrite the expected files (also REGEN=1)')
    a = ap.parse_args()
    if a.list:
        print('\n'.join(cases()))
        return 0
    if not a.bin:
        ap.error('--bin is required')
    binary = os.path.abspath(a.bin)
    regen = a.regen or os.environ.get('REGEN') == '1'
    failed = 0
    todo = a.case or cases()
    for name in todo:
        if name.startswith('valid/'):
            problems = check_valid(binary, name, regen)
        else:
            problems = check_invalid(binary, name, regen)
        if problems:
            failed += 1
            print('FAIL %s' % name)
            for p in problems:
                print('  ' + p.replace('\n', '\n  ').rstrip())
        else:
            print('ok   %s%s' % (name, ' (regenerated)' if regen else ''))
    print('%d passed, %d failed' % (len(todo) - failed, failed))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())

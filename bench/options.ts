/**
 * Benchmark options: `--name=value` or `--name value` on the command line (a bare `--name` is `1`),
 * else the environment variable, else unset.
 */
const argv = process.argv.slice(2);

export function option(name: string, envName: string): string | undefined {
  const index = argv.findIndex((arg) => arg === `--${name}` || arg.startsWith(`--${name}=`));
  if (index >= 0) {
    const flag = argv[index]!;
    if (flag.includes('=')) return flag.slice(flag.indexOf('=') + 1);
    const next = argv[index + 1];
    return next !== undefined && !next.startsWith('--') ? next : '1';
  }
  const value = process.env[envName];
  return value === undefined || value === '' ? undefined : value;
}

export const truthy = (value: string | undefined): boolean => value !== undefined && !['0', 'false', 'no'].includes(value.toLowerCase());

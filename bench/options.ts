/** Benchmark options: `--name[=value]` on the command line, else the environment variable, else unset. */
const argv = process.argv.slice(2);

export function option(name: string, envName: string): string | undefined {
  const flag = argv.find((arg) => arg === `--${name}` || arg.startsWith(`--${name}=`));
  if (flag) return flag.includes('=') ? flag.slice(flag.indexOf('=') + 1) : '1';
  const value = process.env[envName];
  return value === undefined || value === '' ? undefined : value;
}

export const truthy = (value: string | undefined): boolean => value !== undefined && !['0', 'false', 'no'].includes(value.toLowerCase());

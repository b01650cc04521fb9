import type { z } from 'zod';
import { InvalidRequestError } from '../errors.ts';

/** `messages[0].content` style, as OpenAI names parameters. */
function paramName(path: PropertyKey[]): string {
  return path.reduce<string>((name, key) => (typeof key === 'number' ? `${name}[${key}]` : name ? `${name}.${String(key)}` : String(key)), '');
}

/** Parses a request body or query with a zod schema; a failure becomes a 400 naming the parameter. */
export function parseRequest<Schema extends z.ZodType>(schema: Schema, input: unknown): z.infer<Schema> {
  if (input === undefined || input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw new InvalidRequestError(
      'We could not parse the JSON body of your request. The body must be a JSON object sent with Content-Type: application/json.',
    );
  }
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const param = paramName(issue.path);
  throw new InvalidRequestError(param ? `Invalid '${param}': ${issue.message}` : issue.message, { param: param || null });
}

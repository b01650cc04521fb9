/**
 * Token-array embeddings input: clients that count tokens before embedding (LangChain's
 * OpenAIEmbeddings by default) send tiktoken ids instead of text. Cairn's models have their own
 * tokenizers, so the ids are decoded back to text with the tokenizer the client used.
 */
import { getEncodingNameForModel, Tiktoken, type TiktokenBPE, type TiktokenModel } from 'js-tiktoken/lite';
import { InvalidRequestError } from '../errors.ts';

export type TokenEncoding = 'cl100k_base' | 'o200k_base';

/** Families tiktoken maps to o200k_base by prefix (dated and suffixed variants of these names). */
const O200K_PREFIXES = /^(gpt-4o|chatgpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|o1|o3|o4)(-|$)/;

/**
 * The encoding a client used for `model`: tiktoken's mapping where it knows the name
 * (cl100k_base for text-embedding-ada-002 / 3-small / 3-large), o200k_base for the 4o/o-series
 * families, and cl100k_base otherwise, as LangChain Python falls back to for names tiktoken lacks.
 */
export function encodingForModel(model: string): TokenEncoding {
  try {
    const name = getEncodingNameForModel(model as TiktokenModel);
    if (name === 'o200k_base' || name === 'cl100k_base') return name;
  } catch {
    // Not a name tiktoken knows: fall through.
  }
  return O200K_PREFIXES.test(model) ? 'o200k_base' : 'cl100k_base';
}

/** Loads each encoding's ranks (several MB) on first use only, so that startup and text-only servers never pay for them. */
export class TokenIdDecoder {
  private readonly loaded = new Map<TokenEncoding, Promise<Tiktoken>>();

  private encoding(name: TokenEncoding): Promise<Tiktoken> {
    let pending = this.loaded.get(name);
    if (!pending) {
      pending = (name === 'o200k_base' ? import('js-tiktoken/ranks/o200k_base') : import('js-tiktoken/ranks/cl100k_base')).then(
        (module: { default: TiktokenBPE }) => new Tiktoken(module.default),
      );
      this.loaded.set(name, pending);
    }
    return pending;
  }

  /**
   * Decodes each input's ids to text. `flat` says the request sent one array of ids (`[1, 2]`)
   * rather than a list of them (`[[1, 2]]`), which changes how a bad id is named.
   */
  async decode(model: string, inputs: number[][], flat: boolean): Promise<string[]> {
    const name = encodingForModel(model);
    const tiktoken = await this.encoding(name);
    return inputs.map((ids, i) => {
      for (const [j, id] of ids.entries()) {
        // tiktoken's decode skips ids it does not know; a known id always decodes to at least one character.
        if (tiktoken.decode([id]) === '') {
          const where = flat ? `input[${j}]` : `input[${i}][${j}]`;
          throw new InvalidRequestError(`${where} is ${id}, which is not a token id of ${name} (the tokenizer for '${model}').`, {
            param: flat ? where : `input[${i}]`,
          });
        }
      }
      return tiktoken.decode(ids);
    });
  }
}

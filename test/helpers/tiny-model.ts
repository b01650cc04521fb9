/**
 * Writes a tiny BERT-shaped feature-extraction model that transformers.js loads offline.
 * No pretrained weights exist on dev/CI machines, so the graph is a single
 * Gather(embedding_table, input_ids): context-free token vectors drawn from a seeded PRNG.
 * Mean-pooled, texts that share words end up closer than texts that do not, which is
 * enough to test the real loading, tokenising, pooling and batching code.
 */
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

/** The real tokenizer (all-MiniLM-L6-v2's WordPiece, vocabulary size 30522), shipped in the repository. */
export const TOKENIZER_DIR = path.resolve(import.meta.dirname, '../../assets/tokenizer');
const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'vocab.txt'];
const VOCAB_SIZE = 30522;
/** In BERT's vocabulary, ids below 999 are [PAD], [UNK], [CLS], [SEP], [MASK] and [unusedN]. */
const FIRST_WORD_TOKEN_ID = 999;
const SPECIAL_TOKEN_SCALE = 0.1;

/** transformers.js picks `onnx/model{suffix}.onnx` by dtype (3.x naming). */
const DTYPE_FILE_SUFFIX = {
  fp32: '',
  fp16: '_fp16',
  q8: '_quantized',
  int8: '_int8',
  uint8: '_uint8',
  q4: '_q4',
  q4f16: '_q4f16',
  bnb4: '_bnb4',
} as const;
export type TinyModelDtype = keyof typeof DTYPE_FILE_SUFFIX;

export interface TinyModelOptions {
  dimensions?: number;
  /** Model id, also its directory under modelsDir. */
  name?: string;
  /** Which dtype files to write (each holds the same fp32 graph). */
  dtypes?: TinyModelDtype[];
  /** Writes `1_Pooling/config.json` and `modules.json` like a sentence-transformers export; false writes neither. */
  sentenceTransformers?: { pooling: 'mean' | 'cls'; normalize: boolean } | false;
  seed?: number;
  /** Overrides tokenizer_config.json's model_max_length (some real tokenizers say 1e30, meaning "unlimited"). */
  modelMaxLength?: number;
}

export interface TinyModel {
  modelsDir: string;
  modelId: string;
  dimensions: number;
}

/** mulberry32: small, fast, and identical on every machine. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function embeddingTable(dimensions: number, seed: number): Float32Array {
  const random = seededRandom(seed);
  const table = new Float32Array(VOCAB_SIZE * dimensions);
  // Centred uniform values: random token vectors are then nearly orthogonal in expectation.
  for (let index = 0; index < table.length; index += 1) table[index] = random() * 2 - 1;
  // Every text has [CLS] and [SEP]; short vectors keep them from dominating similarity.
  for (let index = 0; index < FIRST_WORD_TOKEN_ID * dimensions; index += 1) table[index]! *= SPECIAL_TOKEN_SCALE;
  return table;
}

function int64Input(name: string): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: onnx.TensorProto.DataType.INT64,
        shape: { dim: [{ dimParam: 'batch_size' }, { dimParam: 'sequence_length' }] },
      },
    },
  };
}

export function encodeTinyModel(dimensions: number, seed: number): Uint8Array {
  const table = embeddingTable(dimensions, seed);
  const graph: onnxProto.onnx.IGraphProto = {
    name: 'tiny-embedding',
    // BERT exports declare all three; transformers.js feeds exactly the inputs the session declares.
    input: [int64Input('input_ids'), int64Input('attention_mask'), int64Input('token_type_ids')],
    output: [
      {
        name: 'last_hidden_state',
        type: {
          tensorType: {
            elemType: onnx.TensorProto.DataType.FLOAT,
            shape: { dim: [{ dimParam: 'batch_size' }, { dimParam: 'sequence_length' }, { dimValue: dimensions }] },
          },
        },
      },
    ],
    initializer: [
      {
        name: 'word_embeddings',
        dataType: onnx.TensorProto.DataType.FLOAT,
        dims: [VOCAB_SIZE, dimensions],
        // ONNX raw_data is little-endian, as is every machine this runs on.
        rawData: new Uint8Array(table.buffer, table.byteOffset, table.byteLength),
      },
    ],
    node: [
      {
        opType: 'Gather',
        input: ['word_embeddings', 'input_ids'],
        output: ['last_hidden_state'],
        attribute: [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: 0 }],
      },
    ],
  };
  return onnx.ModelProto.encode({
    irVersion: 8,
    producerName: 'cairn-test',
    opsetImport: [{ domain: '', version: 13 }],
    graph,
  }).finish();
}

export async function createTinyEmbeddingModel(dir: string, options: TinyModelOptions = {}): Promise<TinyModel> {
  const dimensions = options.dimensions ?? 32;
  const modelId = options.name ?? 'cairn-test/tiny-embedder';
  const dtypes = options.dtypes ?? ['fp32', 'q8'];
  const sentenceTransformers = options.sentenceTransformers ?? { pooling: 'mean', normalize: true };
  const modelDir = path.join(dir, modelId);
  await mkdir(path.join(modelDir, 'onnx'), { recursive: true });

  for (const file of TOKENIZER_FILES) await copyFile(path.join(TOKENIZER_DIR, file), path.join(modelDir, file));
  if (options.modelMaxLength !== undefined) {
    const tokenizerConfigFile = path.join(modelDir, 'tokenizer_config.json');
    const tokenizerConfig = JSON.parse(await readFile(tokenizerConfigFile, 'utf8')) as Record<string, unknown>;
    await writeFile(tokenizerConfigFile, JSON.stringify({ ...tokenizerConfig, model_max_length: options.modelMaxLength }, null, 2));
  }
  const config = JSON.parse(await readFile(path.join(TOKENIZER_DIR, 'config.json'), 'utf8')) as Record<string, unknown>;
  await writeFile(path.join(modelDir, 'config.json'), JSON.stringify({ ...config, hidden_size: dimensions }, null, 2));

  const model = encodeTinyModel(dimensions, options.seed ?? 42);
  for (const dtype of dtypes) await writeFile(path.join(modelDir, 'onnx', `model${DTYPE_FILE_SUFFIX[dtype]}.onnx`), model);

  if (sentenceTransformers) {
    await mkdir(path.join(modelDir, '1_Pooling'), { recursive: true });
    await writeFile(
      path.join(modelDir, '1_Pooling', 'config.json'),
      JSON.stringify({
        word_embedding_dimension: dimensions,
        pooling_mode_cls_token: sentenceTransformers.pooling === 'cls',
        pooling_mode_mean_tokens: sentenceTransformers.pooling === 'mean',
        pooling_mode_max_tokens: false,
      }),
    );
    const modules = [
      { idx: 0, name: '0', path: '', type: 'sentence_transformers.models.Transformer' },
      { idx: 1, name: '1', path: '1_Pooling', type: 'sentence_transformers.models.Pooling' },
    ];
    if (sentenceTransformers.normalize) {
      modules.push({ idx: 2, name: '2', path: '2_Normalize', type: 'sentence_transformers.models.Normalize' });
    }
    await writeFile(path.join(modelDir, 'modules.json'), JSON.stringify(modules, null, 2));
  }
  return { modelsDir: dir, modelId, dimensions };
}

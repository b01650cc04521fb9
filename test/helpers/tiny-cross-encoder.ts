/**
 * Writes a tiny BertForSequenceClassification-shaped reranker that transformers.js loads offline.
 * No pretrained weights exist on dev/CI machines, so the graph has no weights at all: its logit
 * is the number of (query word-piece, text word-piece) pairs with the same token id.
 *
 *   word   = (input_ids > 998) · attention_mask        ids below 999 are [PAD] [UNK] [CLS] [SEP] [MASK] [unusedN]
 *   a      = word · (1 − token_type_ids)                 the query segment
 *   b      = word · token_type_ids                       the text segment
 *   logit  = Σᵢⱼ a[i] · b[j] · (input_ids[i] == input_ids[j])  −  Σᵢ attention_mask[i] · (input_ids[i] == 0)
 *
 * So "cats chase mice" / "mice fear cats" has logit 2 and an unrelated text logit 0, exactly:
 * tests can assert precise scores, and anything the reranker does to segments (truncation,
 * batching, token types) shows up in them. The second term, zero for a correct attention mask,
 * makes padding that the model attends to lower the score. With `numLabels: 2` the logits are
 * [−count, count], so the positive-class probability is sigmoid(2 · count).
 */
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import onnxProto from 'onnx-proto';
import { TOKENIZER_DIR } from './tiny-model.ts';

const { onnx } = onnxProto;
const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'vocab.txt'];
const FIRST_WORD_TOKEN_ID = 999;
const { FLOAT, INT64 } = onnx.TensorProto.DataType;

export interface TinyCrossEncoderOptions {
  /** Model id, also its directory under modelsDir. */
  name?: string;
  numLabels?: 1 | 2;
  /** Token limit written to tokenizer_config.json (model_max_length) and config.json (max_position_embeddings). */
  maxLength?: number;
}

export interface TinyCrossEncoder {
  modelsDir: string;
  modelId: string;
  maxLength: number;
}

function tensorInfo(name: string, elemType: number, dims: Array<string | number>): onnxProto.onnx.IValueInfoProto {
  const dim = dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d }));
  return { name, type: { tensorType: { elemType, shape: { dim } } } };
}

function int64Constant(name: string, values: number[], scalar = false): onnxProto.onnx.ITensorProto {
  return { name, dataType: INT64, dims: scalar ? [] : [values.length], int64Data: values };
}

function node(opType: string, input: string[], output: string, attribute: onnxProto.onnx.IAttributeProto[] = []): onnxProto.onnx.INodeProto {
  return { opType, input, output: [output], attribute };
}

const toFloat = [{ name: 'to', type: onnx.AttributeProto.AttributeType.INT, i: FLOAT }];
const keepNoDims = { name: 'keepdims', type: onnx.AttributeProto.AttributeType.INT, i: 0 };

export function encodeTinyCrossEncoder(numLabels: 1 | 2): Uint8Array {
  const nodes = [
    node('Greater', ['input_ids', 'last_special_id'], 'is_word'),
    node('Cast', ['is_word'], 'is_word_f', toFloat),
    node('Cast', ['attention_mask'], 'attention_f', toFloat),
    node('Cast', ['token_type_ids'], 'type_f', toFloat),
    node('Mul', ['is_word_f', 'attention_f'], 'words'),
    node('Mul', ['words', 'type_f'], 'segment_b'),
    node('Sub', ['words', 'segment_b'], 'segment_a'),
    node('Unsqueeze', ['input_ids', 'axis_last'], 'ids_column'),
    node('Unsqueeze', ['input_ids', 'axis_1'], 'ids_row'),
    node('Equal', ['ids_column', 'ids_row'], 'same_id'),
    node('Cast', ['same_id'], 'same_id_f', toFloat),
    node('Unsqueeze', ['segment_a', 'axis_last'], 'a_column'),
    node('Unsqueeze', ['segment_b', 'axis_1'], 'b_row'),
    node('Mul', ['a_column', 'b_row'], 'cross_segment'),
    node('Mul', ['same_id_f', 'cross_segment'], 'matches'),
    node('ReduceSum', ['matches', 'axes_pair'], 'count', [keepNoDims]),
    // Attended [PAD] tokens (id 0) cost 1 each, so a wrong attention mask on padding shows in batched scores.
    node('Equal', ['input_ids', 'pad_id'], 'is_pad'),
    node('Cast', ['is_pad'], 'is_pad_f', toFloat),
    node('Mul', ['is_pad_f', 'attention_f'], 'attended_pad'),
    node('ReduceSum', ['attended_pad', 'axis_1'], 'attended_pads', [keepNoDims]),
    node('Sub', ['count', 'attended_pads'], 'score'),
    node('Unsqueeze', ['score', 'axis_1'], numLabels === 1 ? 'logits' : 'positive'),
  ];
  if (numLabels === 2) {
    nodes.push(node('Neg', ['positive'], 'negative'));
    nodes.push(node('Concat', ['negative', 'positive'], 'logits', [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: 1 }]));
  }
  const graph: onnxProto.onnx.IGraphProto = {
    name: 'tiny-cross-encoder',
    // BERT exports declare all three; transformers.js feeds exactly the inputs the session declares.
    input: ['input_ids', 'attention_mask', 'token_type_ids'].map((name) => tensorInfo(name, INT64, ['batch_size', 'sequence_length'])),
    output: [tensorInfo('logits', FLOAT, ['batch_size', numLabels])],
    initializer: [
      int64Constant('last_special_id', [FIRST_WORD_TOKEN_ID - 1], true),
      int64Constant('pad_id', [0], true),
      int64Constant('axis_last', [-1]),
      int64Constant('axis_1', [1]),
      int64Constant('axes_pair', [1, 2]),
    ],
    node: nodes,
  };
  // Opset 13: Unsqueeze and ReduceSum take their axes as inputs.
  return onnx.ModelProto.encode({ irVersion: 8, producerName: 'cairn-test', opsetImport: [{ domain: '', version: 13 }], graph }).finish();
}

export async function createTinyCrossEncoder(dir: string, options: TinyCrossEncoderOptions = {}): Promise<TinyCrossEncoder> {
  const modelId = options.name ?? 'cairn-test/tiny-cross-encoder';
  const numLabels = options.numLabels ?? 1;
  const maxLength = options.maxLength ?? 512;
  const modelDir = path.join(dir, modelId);
  await mkdir(path.join(modelDir, 'onnx'), { recursive: true });

  for (const file of TOKENIZER_FILES) await copyFile(path.join(TOKENIZER_DIR, file), path.join(modelDir, file));
  const tokenizerConfigFile = path.join(modelDir, 'tokenizer_config.json');
  const tokenizerConfig = JSON.parse(await readFile(tokenizerConfigFile, 'utf8')) as Record<string, unknown>;
  await writeFile(tokenizerConfigFile, JSON.stringify({ ...tokenizerConfig, model_max_length: maxLength }, null, 2));

  const base = JSON.parse(await readFile(path.join(TOKENIZER_DIR, 'config.json'), 'utf8')) as Record<string, unknown>;
  const labels = Array.from({ length: numLabels }, (_, index) => `LABEL_${index}`);
  const config = {
    ...base,
    architectures: ['BertForSequenceClassification'],
    model_type: 'bert',
    num_labels: numLabels,
    id2label: Object.fromEntries(labels.map((label, index) => [String(index), label])),
    label2id: Object.fromEntries(labels.map((label, index) => [label, index])),
    max_position_embeddings: maxLength,
  };
  await writeFile(path.join(modelDir, 'config.json'), JSON.stringify(config, null, 2));

  // transformers.js picks onnx/model.onnx for fp32 and onnx/model_quantized.onnx for q8 (3.x naming).
  const model = encodeTinyCrossEncoder(numLabels);
  for (const file of ['model.onnx', 'model_quantized.onnx']) await writeFile(path.join(modelDir, 'onnx', file), model);
  return { modelsDir: dir, modelId, maxLength };
}

/**
 * Response shapes. The same resources are served under /v1/knowledge_bases (Cairn's names) and
 * /v1/vector_stores (OpenAI's names, so `client.vectorStores.*` works); only object names differ.
 */
import type { FileBatch, KbFile } from '../store/kb-files.ts';
import type { KnowledgeBase } from '../store/knowledge-bases.ts';

export interface Flavor {
  kb: 'knowledge_base' | 'vector_store';
  file: string;
  batch: string;
  searchPage: string;
  contentPage: string;
  /** Field naming the parent on files and batches. */
  parent: 'knowledge_base_id' | 'vector_store_id';
}

export const KNOWLEDGE_BASE_FLAVOR: Flavor = {
  kb: 'knowledge_base',
  file: 'knowledge_base.file',
  batch: 'knowledge_base.file_batch',
  searchPage: 'knowledge_base.search_results.page',
  contentPage: 'knowledge_base.file_content.page',
  parent: 'knowledge_base_id',
};

export const VECTOR_STORE_FLAVOR: Flavor = {
  kb: 'vector_store',
  file: 'vector_store.file',
  batch: 'vector_store.files_batch',
  searchPage: 'vector_store.search_results.page',
  contentPage: 'vector_store.file_content.page',
  parent: 'vector_store_id',
};

const seconds = (date: Date): number => Math.floor(date.getTime() / 1000);

export function knowledgeBaseObject(kb: KnowledgeBase, flavor: Flavor) {
  return {
    id: kb.id,
    object: flavor.kb,
    created_at: seconds(kb.createdAt),
    name: kb.name,
    description: kb.description,
    usage_bytes: kb.usageBytes,
    file_counts: kb.fileCounts,
    status: kb.expired ? 'expired' : kb.fileCounts.in_progress > 0 ? 'in_progress' : 'completed',
    expires_after: kb.expiresAfterDays === null ? null : { anchor: 'last_active_at', days: kb.expiresAfterDays },
    expires_at: kb.expiresAt && seconds(kb.expiresAt),
    last_active_at: seconds(kb.lastActiveAt),
    metadata: kb.metadata,
    embedding_model: kb.embeddingModel,
    chunking_strategy: kb.chunkingStrategy,
    chunk_count: kb.chunkCount,
  };
}

export function knowledgeBaseFileObject(file: KbFile, flavor: Flavor) {
  return {
    id: file.fileId,
    object: flavor.file,
    [flavor.parent]: file.kbId,
    status: file.status,
    last_error: file.lastError,
    usage_bytes: file.usageBytes,
    chunk_count: file.chunkCount,
    progress: file.progress,
    created_at: seconds(file.createdAt),
    attributes: file.attributes,
    chunking_strategy: file.chunkingStrategy,
  };
}

function batchStatus(batch: FileBatch): string {
  if (batch.cancelled) return 'cancelled';
  if (batch.fileCounts.in_progress > 0) return 'in_progress';
  return batch.fileCounts.completed === 0 && batch.fileCounts.failed > 0 ? 'failed' : 'completed';
}

export function fileBatchObject(batch: FileBatch, flavor: Flavor) {
  return {
    id: batch.id,
    object: flavor.batch,
    [flavor.parent]: batch.kbId,
    created_at: seconds(batch.createdAt),
    status: batchStatus(batch),
    file_counts: batch.fileCounts,
  };
}

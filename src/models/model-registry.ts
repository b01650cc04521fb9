/** Which models exist: ids, aliases, their replicas and fallbacks, from the model config. */
import type { ModelConfig, Retries, Timeouts } from '../config.ts';
import { Replica, ReplicaPicker } from './replica.ts';

export interface ModelRoute {
  id: string;
  contextWindow: number;
  replicas: Replica[];
  picker: ReplicaPicker;
  timeouts: Timeouts;
  retries: Retries;
  fallbacks: string[];
}

export interface ModelListing {
  id: string;
  object: 'model';
  created: number;
  owned_by: string;
}

export class ModelRegistry {
  private readonly byId = new Map<string, ModelRoute>();
  private readonly byName = new Map<string, ModelRoute>();
  private readonly listing: ModelListing[] = [];

  constructor(models: ModelConfig[], startedAt = Math.floor(Date.now() / 1000)) {
    for (const model of models) {
      const replicas = model.upstreams.map((upstream) => new Replica(upstream, model.timeouts.connect_ms));
      const route: ModelRoute = {
        id: model.id,
        contextWindow: model.contextWindow,
        replicas,
        picker: new ReplicaPicker(replicas),
        timeouts: model.timeouts,
        retries: model.retries,
        fallbacks: model.fallbacks,
      };
      this.byId.set(model.id, route);
      for (const name of [model.id, ...model.aliases]) {
        this.byName.set(name, route);
        this.listing.push({ id: name, object: 'model', created: startedAt, owned_by: 'cairn' });
      }
    }
  }

  hasModels(): boolean {
    return this.byId.size > 0;
  }

  /** By id or alias. */
  resolve(name: string): ModelRoute | undefined {
    return this.byName.get(name);
  }

  /** The model itself, then its fallbacks in order (each once). */
  chain(name: string): ModelRoute[] {
    const first = this.resolve(name);
    if (!first) return [];
    const chain = [first];
    for (const fallback of first.fallbacks) {
      const route = this.resolve(fallback);
      if (route && !chain.includes(route)) chain.push(route);
    }
    return chain;
  }

  list(): ModelListing[] {
    return this.listing;
  }

  routes(): ModelRoute[] {
    return [...this.byId.values()];
  }

  allReplicas(): Replica[] {
    return this.routes().flatMap((route) => route.replicas);
  }

  async close(): Promise<void> {
    await Promise.all(this.allReplicas().map((replica) => replica.close()));
  }
}

/** Choosing a replica for one attempt of a request: least in flight, avoiding failed ones, never a timed-out one. */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Replica, ReplicaPicker } from '../src/models/replica.ts';

describe('ReplicaPicker', () => {
  const [a, b, c] = ['a', 'b', 'c'].map((name) => new Replica({ base_url: `http://127.0.0.1:1/${name}`, model: name }, 1_000)) as [Replica, Replica, Replica];
  const picker = new ReplicaPicker([a, b, c]);
  after(() => Promise.all([a, b, c].map((replica) => replica.close())));

  it('sends to the replica with the fewest requests in flight', () => {
    a.inFlight = 2;
    b.inFlight = 0;
    c.inFlight = 1;
    assert.equal(picker.pick(new Set()), b);
    a.inFlight = b.inFlight = c.inFlight = 0;
  });

  it('uses a failed replica again only when every replica has failed', () => {
    assert.equal(picker.pick(new Set([a, b])), c);
    assert.ok([a, b, c].includes(picker.pick(new Set([a, b, c]))!));
  });

  it('never returns a replica that timed out in this request, even when all others failed too', () => {
    for (let i = 0; i < 6; i += 1) assert.equal(picker.pick(new Set([a, b, c]), new Set([a, c])), b);
    assert.equal(picker.pick(new Set(), new Set([a, b, c])), undefined);
  });
});
